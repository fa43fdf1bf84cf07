//! `ecfleet audit`: the fleet → engine → facts → findings → report, compared with the newest
//! snapshot on the share that covered each host, then saved as the next snapshot.

use super::fleet::{Fleet, Refusal, Reporters};
use super::{Context, Io};
use crate::audit::{self, AuditPlaybook, AuditReport, AuditSettings};
use crate::cli::{AuditArgs, FormatArg};
use crate::inventory::{Host, Inventory};
use crate::report::{AuditFormat, metrics, nagios, render_audit};
use crate::session::Connector;
use crate::share::Share;

pub fn format_of(f: FormatArg) -> AuditFormat {
    match f {
        FormatArg::Table => AuditFormat::Table,
        FormatArg::Json => AuditFormat::Json,
        FormatArg::Csv => AuditFormat::Csv,
    }
}

/// The facts of the selected hosts, gathered on the engine, its events going to `reporters`:
/// shared by the audit, the live plan and a run that plans now.
pub(super) async fn gather(
    inventory: &Inventory,
    selected: &[&Host],
    settings: &AuditSettings,
    connector: &Connector,
    cx: &Context,
    reporters: Reporters,
) -> AuditReport {
    let report = audit::run(
        inventory,
        selected,
        settings,
        connector,
        cx.shutdown.clone(),
        reporters.sink(),
    )
    .await;
    reporters.finish().await;
    report
}

/// The audit's settings: the fleet's, with `playbook`.
pub(super) fn settings(fleet: &Fleet<'_>, playbook: AuditPlaybook) -> AuditSettings {
    AuditSettings {
        catalog: fleet.catalog.clone(),
        playbook,
        as_of: fleet.as_of,
        concurrency: fleet.concurrency,
    }
}

pub async fn run(args: &AuditArgs, cx: &Context, io: &mut Io<'_>) -> u8 {
    match audit_fleet(args, cx, io).await {
        Ok(code) => code,
        // A plugin with nothing to judge says UNKNOWN, and why, on its one line.
        Err(refusal) if args.nagios => {
            let check = nagios::unknown(refusal.text.trim_start_matches("error: "));
            let _ = io.out.write_all(check.line.as_bytes());
            refusal.say(io);
            check.state.code()
        }
        Err(refusal) => refusal.say(io),
    }
}

async fn audit_fleet(args: &AuditArgs, cx: &Context, io: &mut Io<'_>) -> Result<u8, Refusal> {
    let fleet = Fleet::open(&args.fleet, cx, io)?;
    let playbook = match &args.playbook {
        Some(p) => AuditPlaybook::load(p).map_err(Refusal::input)?,
        None => AuditPlaybook::embedded(),
    };
    let settings = settings(&fleet, playbook);
    let connector = fleet.connector(cx)?;
    let reporters = fleet.reporters(io)?;
    let mut report = gather(
        &fleet.inventory,
        &fleet.selected(),
        &settings,
        &connector,
        cx,
        reporters,
    )
    .await;
    report.whole_inventory = fleet.whole();
    report.shard = fleet.shard();
    if let Some(share_dir) = &fleet.inventory.share {
        let share = Share::new(share_dir);
        match audit::changes::compare_with_share(&share, &report) {
            Ok(changes) => report.changes = changes,
            Err(e) => {
                let _ = writeln!(io.err, "warning: not compared with the last audit: {e}");
            }
        }
    }
    let nagios = args.nagios.then(|| nagios::audit(&report));
    match &nagios {
        Some(check) => io.out.write_all(check.line.as_bytes()),
        None => render_audit(&report, format_of(args.format), io.look(), io.out),
    }
    .map_err(|e| Refusal::failure(format!("cannot write the report: {e}")))?;
    if let Some(path) = &args.metrics {
        let earlier = match &fleet.inventory.share {
            Some(dir) => audit::changes::last_reached(&Share::new(dir), &report),
            None => Vec::new(),
        };
        super::write_metrics(path, &metrics::audit(&report, &earlier))?;
    }
    // Something new and critical since the last snapshot: told, after the report.
    let audiences = crate::notify::audiences(&fleet.inventory, |tenant| {
        crate::notify::events::audit_found(&report, tenant)
    });
    if !audiences.is_empty() {
        let deliveries = crate::notify::deliver_all(&audiences).await;
        crate::notify::say(&deliveries, io.err);
    }
    if !args.no_share
        && let Some(share_dir) = &fleet.inventory.share
    {
        let json = serde_json::to_vec_pretty(&report).map_err(Refusal::failure)?;
        let stamp = report.generated_at.replace(':', "");
        let share = Share::new(share_dir);
        share.clean_stale_temp_files();
        let path = share.write_audit(&stamp, &json).map_err(Refusal::failure)?;
        let _ = writeln!(io.err, "snapshot: {}", super::relative(&path));
    }
    let code = super::unless_detached(&cx.shutdown, report.exit_code());
    Ok(match nagios {
        // Detached: the audit did not finish, so the plugin cannot judge.
        Some(_) if code == crate::exit::INTERRUPTED => nagios::State::Unknown.code(),
        Some(check) => check.state.code(),
        None => code,
    })
}
