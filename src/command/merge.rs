//! `ecfleet merge`: the results of the shards of one fleet (`--shard i/n`, one job each) put
//! together. `merge audit`: the shards' audit snapshots into one snapshot on the share, printed
//! as `ecfleet audit` prints its report and with its exit code (docs/scale-out.md).

use std::path::Path;

use super::fleet::Refusal;
use super::{Context, Io};
use crate::audit::AuditReport;
use crate::audit::merge::{ShardAudit, merge};
use crate::cli::{MergeAuditArgs, MergeRunArgs, PlanFormatArg};
use crate::report::{render_audit, render_run};
use crate::share::Share;

/// `ecfleet merge audit SNAPSHOT…`.
pub fn audits(args: &MergeAuditArgs, cx: &Context, io: &mut Io<'_>) -> u8 {
    match merge_audits(args, cx, io) {
        Ok(code) => code,
        Err(refusal) => refusal.say(io),
    }
}

fn merge_audits(args: &MergeAuditArgs, cx: &Context, io: &mut Io<'_>) -> Result<u8, Refusal> {
    let inventory = super::fleet::inventory(&args.inventory, cx)?;
    let share = inventory.share.clone();
    let mut shards = Vec::new();
    for which in &args.snapshots {
        let (path, bytes) = read_snapshot(share.as_deref(), which)?;
        let report: AuditReport = serde_json::from_slice(&bytes).map_err(|e| {
            Refusal::input(format!("{} is not an ecfleet audit: {e}", path.display()))
        })?;
        shards.push(ShardAudit {
            name: crate::report::sanitize::terminal_safe(which).into_owned(),
            report,
        });
    }
    let merged = merge(&inventory, shards).map_err(|faults| {
        Refusal::input(format!(
            "the audits do not fit together:\n  - {}",
            faults.join("\n  - ")
        ))
    })?;
    render_audit(
        &merged,
        super::audit::format_of(args.format),
        io.look(),
        io.out,
    )
    .map_err(|e| Refusal::failure(format!("cannot write the report: {e}")))?;
    if let Some(dir) = &share {
        let json = serde_json::to_vec_pretty(&merged).map_err(Refusal::failure)?;
        let stamp = merged.generated_at.replace(':', "");
        let path = Share::new(dir)
            .write_audit(&stamp, &json)
            .map_err(Refusal::failure)?;
        let _ = writeln!(io.err, "snapshot: {}", super::relative(&path));
    }
    Ok(merged.exit_code())
}

/// A snapshot by its folder name under `audits/` on the share (its `SHA256SUMS` checked), or
/// an `audit.json` by path.
fn read_snapshot(
    share: Option<&Path>,
    which: &str,
) -> Result<(std::path::PathBuf, Vec<u8>), Refusal> {
    let path = Path::new(which);
    if path.is_file() {
        let bytes = crate::fsread::read_regular(path, 256 << 20)
            .map_err(|e| Refusal::input(format!("cannot read {which}: {e}")))?;
        return Ok((path.to_path_buf(), bytes));
    }
    match share {
        Some(dir) if which != "latest" => super::report::find_snapshot(dir, which),
        Some(_) => Err(Refusal::input(
            "merge audit takes each shard's snapshot by name (`latest` is one of them)".to_string(),
        )),
        None => Err(Refusal::input(format!(
            "{which}: no such file, and the inventory has no [share] to find a snapshot of that name in"
        ))),
    }
}

/// `ecfleet merge run RUN-ID… --plan FILE`.
pub fn runs(args: &MergeRunArgs, cx: &Context, io: &mut Io<'_>) -> u8 {
    match merge_runs(args, cx, io) {
        Ok(code) => code,
        Err(refusal) => refusal.say(io),
    }
}

fn merge_runs(args: &MergeRunArgs, cx: &Context, io: &mut Io<'_>) -> Result<u8, Refusal> {
    use crate::run::{self, ledger, merge::ShardRun};
    let inventory = super::fleet::inventory(&args.inventory, cx)?;
    let share = super::fleet::share(&inventory, "runs are kept on the central share")?;
    let plan_bytes = crate::fsread::read_regular(&args.plan, 256 << 20)
        .map_err(|e| Refusal::input(format!("cannot read {}: {e}", args.plan.display())))?;
    let plan: crate::plan::Plan = serde_json::from_slice(&plan_bytes).map_err(|e| {
        Refusal::input(format!(
            "{} is not an ecfleet plan: {e}",
            args.plan.display()
        ))
    })?;
    let me = super::run::controller(&cx.env);
    let mut shard_runs = Vec::new();
    for id in &args.runs {
        let dir = ledger::find(&share, id).map_err(Refusal::input)?;
        let folder = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let report = run::report_from_ledger(&dir, me.name()).map_err(Refusal::input)?;
        shard_runs.push(ShardRun {
            id: folder,
            header: ledger::header_of(&dir),
            ended: dir.join("summary.json").is_file(),
            report,
        });
    }
    let inventory_sha256 = std::fs::read(&inventory.path)
        .ok()
        .map(|b| crate::digest::sha256_hex(&b));
    let merged_from: Vec<String> = shard_runs.iter().map(|r| r.id.clone()).collect();
    let id = format!("{}-merged", ledger::new_run_id());
    let merged = run::merge::merge(
        &id,
        &plan,
        &crate::digest::sha256_hex(&plan_bytes),
        inventory_sha256.as_deref(),
        shard_runs,
    )
    .map_err(|faults| {
        Refusal::input(format!(
            "the runs do not fit together:\n  - {}",
            faults.join("\n  - ")
        ))
    })?;
    // A ledger of its own: `report <id>|latest` (and its HTML pages) show the whole night.
    let dir = crate::share::dirs_below(&share, &["runs", id.as_str()]).map_err(Refusal::failure)?;
    let header = serde_json::json!({
        "schema_version": 1,
        "kind": "ecfleet-run",
        "run_id": id,
        // The newest shard's start: `latest` until a later night starts.
        "started_at": merged.newest_start,
        "inventory": inventory.path.display().to_string(),
        "inventory_sha256": inventory_sha256,
        "plan": args.plan.display().to_string(),
        "plan_sha256": crate::digest::sha256_hex(&plan_bytes),
        ledger::PLAN_SHA256_FIELD: crate::digest::sha256_hex(&plan_bytes),
        "merged_from": merged_from,
        "night_started_at": merged.started_at,
    });
    let write = |name: &str, bytes: &[u8]| {
        crate::share::write_new_file(&dir.join(name), bytes).map_err(Refusal::failure)
    };
    write(
        "run.json",
        &serde_json::to_vec_pretty(&header).map_err(Refusal::failure)?,
    )?;
    write("plan.json", &plan_bytes)?;
    write(
        "summary.json",
        &serde_json::to_vec_pretty(&merged.report).map_err(Refusal::failure)?,
    )?;
    // The shards' messages were the night's: `report --notify` of the merge sends only what
    // no shard delivered.
    let delivered: Vec<crate::notify::Delivery> = merged_from
        .iter()
        .flat_map(|id| crate::notify::recorded(&share.join("runs").join(id)))
        .collect();
    if !delivered.is_empty() {
        crate::notify::record(&dir, &delivered).map_err(|e| {
            Refusal::failure(format!(
                "cannot write {}: {e}",
                dir.join(crate::notify::RECORD).display()
            ))
        })?;
    }
    render_run(
        &merged.report,
        matches!(args.format, PlanFormatArg::Json),
        io.look(),
        io.out,
    )
    .map_err(|e| Refusal::failure(format!("cannot write the report: {e}")))?;
    let _ = writeln!(io.err, "merged run: {id} ({})", super::relative(&dir));
    Ok(merged.report.exit_code())
}
