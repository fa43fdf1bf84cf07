//! `ecfleet stage`: the installer, read once, to every selected host (docs/stage.md).

use std::time::Duration;

use super::{Context, Io, load_inventory};
use crate::cli::{PlanFormatArg, StageArgs};
use crate::exit::audit as exit;
use crate::report::render_stage;
use crate::stage::Installer;

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
    let installer = match Installer::load(&args.msi, args.sha256.as_deref()) {
        Ok(i) => i,
        Err(e) => return io.error(exit::INVALID_INPUT, e),
    };
    let mut fleet = match super::fleet(&args.fleet, &inventory, cx, io) {
        Ok(f) => f,
        Err((code, e)) => return io.error(code, e),
    };
    if let Some(path) = &args.plan {
        // A plan of this inventory and this installer: only the hosts it upgrades in place.
        let plan = match super::run::load_plan(path).and_then(|plan| {
            crate::plan::binding::check(&plan, &path.display().to_string(), &inventory)?;
            super::run::check_installer(&plan, &installer)?;
            Ok(plan)
        }) {
            Ok(p) => p,
            Err(e) => return io.error(exit::INVALID_INPUT, e),
        };
        fleet.selected.retain(|h| {
            plan.hosts
                .iter()
                .any(|p| p.host == h.name && p.action == crate::plan::Action::InPlace)
        });
        let n = fleet.selected.len();
        let _ = writeln!(
            io.err,
            "stage: {n} {} the plan {} upgrades in place",
            if n == 1 { "host" } else { "hosts" },
            path.display()
        );
    }
    let report = crate::stage::fleet::run(
        &fleet.selected,
        &installer,
        fleet.concurrency,
        Duration::from_secs(args.host_deadline),
        &fleet.connector,
        cx.shutdown.clone(),
        fleet.reporters.sink(),
    )
    .await;
    fleet.reporters.finish().await;
    let json = matches!(args.format, PlanFormatArg::Json);
    if let Err(e) = render_stage(&report, json, io.look(), io.out) {
        return io.error(exit::FAILURE, format!("cannot write the report: {e}"));
    }
    super::unless_detached(&cx.shutdown, report.exit_code())
}
