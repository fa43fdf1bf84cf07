//! `ecfleet stage`: the installer, read once, to every selected host, or to the hosts a plan
//! upgrades in place (docs/stage.md).

use std::time::Duration;

use super::fleet::{Fleet, Refusal};
use super::{Context, Io};
use crate::cli::{PlanFormatArg, StageArgs};
use crate::report::render_stage;
use crate::stage::Installer;

pub async fn run(args: &StageArgs, cx: &Context, io: &mut Io<'_>) -> u8 {
    match stage_fleet(args, cx, io).await {
        Ok(code) => code,
        Err(refusal) => refusal.say(io),
    }
}

async fn stage_fleet(args: &StageArgs, cx: &Context, io: &mut Io<'_>) -> Result<u8, Refusal> {
    let mut fleet = Fleet::open(&args.fleet, cx, io)?;
    if args.host_deadline == 0 {
        return Err(Refusal::input("--host-deadline takes at least 1 second"));
    }
    let installer = Installer::load(&args.msi, args.sha256.as_deref()).map_err(Refusal::input)?;
    if let Some(path) = &args.plan {
        // A plan of this inventory and this installer: only the hosts it upgrades in place.
        let plan = super::run::load_plan(path)
            .and_then(|plan| {
                crate::plan::binding::check(&plan, &path.display().to_string(), &fleet.inventory)?;
                super::run::check_installer(&plan, &installer)?;
                Ok(plan)
            })
            .map_err(Refusal::input)?;
        fleet.narrow(|h| {
            plan.hosts
                .iter()
                .any(|p| p.host == h.name && p.action == crate::plan::Action::InPlace)
        });
        let _ = writeln!(
            io.err,
            "stage: {} the plan {} upgrades in place",
            crate::report::count(fleet.selected().len(), "host"),
            path.display()
        );
    }
    let connector = fleet.connector(cx)?;
    let reporters = fleet.reporters(io)?;
    let report = crate::stage::fleet::run(
        &fleet.selected(),
        &installer,
        fleet.concurrency,
        Duration::from_secs(args.host_deadline),
        &connector,
        cx.shutdown.clone(),
        reporters.sink(),
    )
    .await;
    reporters.finish().await;
    let json = matches!(args.format, PlanFormatArg::Json);
    render_stage(&report, json, io.look(), io.out)
        .map_err(|e| Refusal::failure(format!("cannot write the report: {e}")))?;
    Ok(super::unless_detached(&cx.shutdown, report.exit_code()))
}
