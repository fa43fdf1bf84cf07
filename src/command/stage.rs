//! `ecfleet stage`: the installer, read once, to every selected host (docs/stage.md).

use std::time::Duration;

use super::{Context, Io, discover_agents, load_inventory, select_hosts};
use crate::cli::{PlanFormatArg, StageArgs};
use crate::exit::audit as exit;
use crate::report::render_stage;
use crate::session::Connector;
use crate::stage::Installer;
use crate::{settings, transport};

pub async fn run(args: &StageArgs, cx: &Context, io: &mut Io<'_>) -> u8 {
    let inventory = match load_inventory(&args.fleet.inventory, cx) {
        Ok(i) => i,
        Err(errors) => {
            let _ = writeln!(io.err, "{errors}");
            return exit::INVALID_INPUT;
        }
    };
    if args.host_deadline == 0 {
        return io.error(
            exit::INVALID_INPUT,
            "--host-deadline takes at least 1 second",
        );
    }
    let (concurrency, warning) = match settings::concurrency(
        args.fleet.concurrency,
        cx.env.concurrency.as_deref(),
        inventory.concurrency,
        cx.open_files,
    ) {
        Ok(c) => c,
        Err(e) => return io.error(exit::INVALID_INPUT, e),
    };
    if let Some(w) = warning {
        let _ = writeln!(io.err, "warning: {w}");
    }
    let selected = match select_hosts(&inventory, &args.fleet.hosts, &args.fleet.tenants) {
        Ok(s) => s,
        Err(e) => return io.error(exit::INVALID_INPUT, e),
    };
    let installer = match Installer::load(&args.msi, args.sha256.as_deref()) {
        Ok(i) => i,
        Err(e) => return io.error(exit::INVALID_INPUT, e),
    };
    let agents = match discover_agents(args.fleet.agent_dir.as_deref(), cx) {
        Ok(a) => a,
        Err(e) => return io.error(exit::FAILURE, e),
    };
    let reporters = match super::reporters(io, args.fleet.events.as_deref()) {
        Ok(r) => r,
        Err(e) => return io.error(exit::INVALID_INPUT, e),
    };
    let connector = Connector::new(
        transport::Connector::new(args.fleet.accept_new_host_keys),
        agents,
    );
    let report = crate::stage::fleet::run(
        &selected,
        &installer,
        concurrency,
        Duration::from_secs(args.host_deadline),
        &connector,
        cx.shutdown.clone(),
        reporters.sink(),
    )
    .await;
    reporters.finish().await;
    let json = matches!(args.format, PlanFormatArg::Json);
    if let Err(e) = render_stage(&report, json, io.color, io.out) {
        return io.error(exit::FAILURE, format!("cannot write the report: {e}"));
    }
    super::unless_detached(&cx.shutdown, report.exit_code())
}
