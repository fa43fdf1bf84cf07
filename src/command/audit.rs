//! `ecfleet audit`: inventory → engine → facts → findings → report, compared with the newest
//! snapshot on the share that covered each host, then saved as the next snapshot.

use super::{Context, Io, discover_agents, load_catalog, load_inventory, select_hosts};
use crate::audit::{self, AuditPlaybook, AuditReport, AuditSettings};
use crate::cli::{AuditArgs, FormatArg};
use crate::exit::audit as exit;
use crate::inventory::{Host, Inventory};
use crate::report::{AuditFormat, render_audit};
use crate::session::Connector;
use crate::share::Share;
use crate::{settings, transport};

pub fn format_of(f: FormatArg) -> AuditFormat {
    match f {
        FormatArg::Table => AuditFormat::Table,
        FormatArg::Json => AuditFormat::Json,
        FormatArg::Csv => AuditFormat::Csv,
    }
}

/// The facts of the selected hosts, gathered on the engine, its events going to `reporters`:
/// shared by the audit and the live plan.
pub(super) async fn gather(
    inventory: &Inventory,
    selected: &[&Host],
    settings: &AuditSettings,
    connector: &Connector,
    cx: &Context,
    reporters: super::Reporters,
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

/// The audit's settings from the command line, the environment, the inventory and the
/// playbook, resolved once.
pub(super) fn resolve(
    args: &crate::cli::FleetArgs,
    inventory: &Inventory,
    playbook: AuditPlaybook,
    cx: &Context,
    io: &mut Io<'_>,
) -> Result<AuditSettings, String> {
    let as_of = settings::as_of(args.as_of.as_deref(), cx.today)?;
    let catalog = load_catalog(args.catalog.as_deref())?;
    let (concurrency, warning) = settings::concurrency(
        args.concurrency,
        cx.env.concurrency.as_deref(),
        inventory.concurrency,
        cx.open_files,
    )?;
    if let Some(w) = warning {
        let _ = writeln!(io.err, "warning: {w}");
    }
    Ok(AuditSettings {
        catalog,
        playbook,
        as_of,
        concurrency,
    })
}

pub async fn run(args: &AuditArgs, cx: &Context, io: &mut Io<'_>) -> u8 {
    let inventory = match load_inventory(&args.fleet.inventory, cx) {
        Ok(i) => i,
        Err(errors) => {
            let _ = writeln!(io.err, "{errors}");
            return exit::INVALID_INPUT;
        }
    };
    let playbook = match &args.playbook {
        Some(p) => match AuditPlaybook::load(p) {
            Ok(c) => c,
            Err(e) => return io.error(exit::INVALID_INPUT, e),
        },
        None => AuditPlaybook::embedded(),
    };
    let settings = match resolve(&args.fleet, &inventory, playbook, cx, io) {
        Ok(s) => s,
        Err(e) => return io.error(exit::INVALID_INPUT, e),
    };
    let selected = match select_hosts(&inventory, &args.fleet.hosts, &args.fleet.tenants) {
        Ok(s) => s,
        Err(e) => return io.error(exit::INVALID_INPUT, e),
    };
    let agents = match discover_agents(args.fleet.agent_dir.as_deref(), cx) {
        Ok(a) => a,
        Err(e) => return io.error(exit::FAILURE, e),
    };
    let connector = Connector::new(
        transport::Connector::new(args.fleet.accept_new_host_keys),
        agents,
    );
    let reporters = match super::reporters(io, args.fleet.events.as_deref()) {
        Ok(r) => r,
        Err(e) => return io.error(exit::INVALID_INPUT, e),
    };
    let mut report = gather(&inventory, &selected, &settings, &connector, cx, reporters).await;
    let whole = args.fleet.hosts.is_empty() && args.fleet.tenants.is_empty();
    report.whole_inventory = whole;
    if let Some(share_dir) = &inventory.share {
        let share = Share::new(share_dir);
        match audit::changes::compare_with_share(&share, &report) {
            Ok(changes) => report.changes = changes,
            Err(e) => {
                let _ = writeln!(io.err, "warning: not compared with the last audit: {e}");
            }
        }
    }
    if let Err(e) = render_audit(&report, format_of(args.format), io.look(), io.out) {
        return io.error(exit::FAILURE, format!("cannot write the report: {e}"));
    }
    if !args.no_share
        && let Some(share_dir) = &inventory.share
    {
        let json = match serde_json::to_vec_pretty(&report) {
            Ok(j) => j,
            Err(e) => return io.error(exit::FAILURE, e),
        };
        let stamp = report.generated_at.replace(':', "");
        let share = Share::new(share_dir);
        share.clean_stale_temp_files();
        match share.write_audit(&stamp, &json) {
            Ok(path) => {
                let _ = writeln!(io.err, "snapshot: {}", super::relative(&path));
            }
            Err(e) => return io.error(exit::FAILURE, e),
        }
    }
    super::unless_detached(&cx.shutdown, report.exit_code())
}
