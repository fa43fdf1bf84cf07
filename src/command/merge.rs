//! `ecfleet merge`: the results of the shards of one fleet (`--shard i/n`, one job each) put
//! together. `merge audit`: the shards' audit snapshots into one snapshot on the share, printed
//! as `ecfleet audit` prints its report and with its exit code (docs/scale-out.md).

use std::path::Path;

use super::fleet::Refusal;
use super::{Context, Io};
use crate::audit::AuditReport;
use crate::audit::merge::{ShardAudit, merge};
use crate::cli::MergeAuditArgs;
use crate::report::render_audit;
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
