//! `ecfleet plan`: facts (live, on the engine, or from a saved audit) → decisions → waves →
//! table/JSON/plan file.

use super::{Context, Io, discover_agents, load_inventory, select_hosts};
use crate::cli::{PlanArgs, PlanFormatArg};
use crate::exit;
use crate::inventory::{Host, Inventory};
use crate::plan::{self, PlanInput, PlanPolicy};
use crate::report::{PlanFormat, render_plan};
use crate::session::Connector;
use crate::transport;

pub async fn run(args: &PlanArgs, cx: &Context, io: &mut Io<'_>) -> u8 {
    // With --detailed-exitcode every error is 1; otherwise the audit's codes (3 input, 4 failure).
    let code = |c: u8| {
        if args.detailed_exitcode {
            exit::plan::DETAILED_ERROR
        } else {
            c
        }
    };
    let inventory = match load_inventory(&args.fleet.inventory, cx) {
        Ok(i) => i,
        Err(errors) => {
            let _ = writeln!(io.err, "{errors}");
            return code(exit::audit::INVALID_INPUT);
        }
    };
    let policy = match &args.playbook {
        Some(p) => match PlanPolicy::load(p) {
            Ok(p) => p,
            Err(e) => return io.error(code(exit::audit::INVALID_INPUT), e),
        },
        None => PlanPolicy::embedded(),
    };
    let settings =
        match super::audit::resolve(&args.fleet, &inventory, policy.audit_playbook(), cx, io) {
            Ok(s) => s,
            Err(e) => return io.error(code(exit::audit::INVALID_INPUT), e),
        };
    let as_of = settings.as_of;
    let selected = match select_hosts(&inventory, &args.fleet.hosts, &args.fleet.tenants) {
        Ok(s) => s,
        Err(e) => return io.error(code(exit::audit::INVALID_INPUT), e),
    };
    let target = match plan::target::resolve(&settings.catalog, as_of, target_request(args)) {
        Ok(t) => t,
        Err(e) => return io.error(code(exit::audit::INVALID_INPUT), e),
    };
    let (inputs, facts_source) = match facts(args, &inventory, &selected, &settings, cx, io).await {
        Ok(f) => f,
        Err((c, e)) => return io.error(code(c), e),
    };
    let mut result = plan::build(
        &plan::TenantWindow::of(&inventory),
        &inputs,
        plan::PlanSettings {
            catalog: &settings.catalog,
            target,
            policy,
            as_of,
            reference_time: plan::reference_time(as_of, jiff::Timestamp::now()),
            inventory_path: inventory.path.display().to_string(),
            inventory_hosts: plan::binding::snapshot(&inventory),
            facts_source,
        },
    );
    result.generated_at = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or(jiff::Timestamp::now())
        .to_string();
    if let Some(out) = &args.out {
        if let Err(e) = write_plan_file(out, &result) {
            return io.error(code(exit::audit::FAILURE), e);
        }
        let _ = writeln!(io.err, "plan written to {}", super::relative(out));
    }
    let format = match args.format {
        PlanFormatArg::Table => PlanFormat::Table,
        PlanFormatArg::Json => PlanFormat::Json,
    };
    if let Err(e) = render_plan(&result, format, io.look(), io.out) {
        return io.error(
            code(exit::audit::FAILURE),
            format!("cannot write the plan: {e}"),
        );
    }
    if let Some(out) = &args.out {
        // The last line: what to do with the plan.
        let in_place = result
            .hosts
            .iter()
            .filter(|h| h.action == plan::Action::InPlace)
            .count();
        let _ = if in_place == 0 {
            writeln!(
                io.err,
                "next: nothing to upgrade in place; the plan above says why for each host"
            )
        } else {
            let msi =
                args.msi.as_deref().map(super::relative).unwrap_or_else(|| {
                    format!("<AzureADConnect.msi of {}>", result.target.version)
                });
            writeln!(
                io.err,
                "next: read the plan, then upgrade {} with: ecfleet run -i {} --plan {} --msi {msi}",
                crate::report::count(in_place, "host"),
                super::relative(&inventory.path),
                super::relative(out)
            )
        };
    }
    let done = if args.detailed_exitcode {
        result.detailed_exit_code()
    } else {
        exit::plan::OK
    };
    super::unless_detached(&cx.shutdown, done)
}

fn target_request(args: &PlanArgs) -> plan::target::TargetRequest<'_> {
    match (&args.target, &args.msi) {
        (Some(v), _) => plan::target::TargetRequest::Version(v),
        (None, Some(path)) => plan::target::TargetRequest::Msi {
            path,
            sha256: args.sha256.as_deref(),
        },
        (None, None) => plan::target::TargetRequest::Newest,
    }
}

/// The plan file, written atomically.
fn write_plan_file(out: &std::path::Path, plan: &plan::Plan) -> Result<(), String> {
    let json = serde_json::to_vec_pretty(plan).map_err(|e| e.to_string())?;
    crate::share::replace_file(out, &json).map_err(|e| e.to_string())
}

/// The facts to plan from: a saved audit (`--from-audit`) or gathered live on the engine. An
/// error carries its exit code.
async fn facts(
    args: &PlanArgs,
    inventory: &Inventory,
    selected: &[&Host],
    settings: &crate::audit::AuditSettings,
    cx: &Context,
    io: &mut Io<'_>,
) -> Result<Inputs, (u8, String)> {
    if let Some(path) = &args.from_audit {
        return from_saved_audit(path, settings.as_of, selected, io)
            .map_err(|e| (exit::audit::INVALID_INPUT, e));
    }
    let agents = discover_agents(args.fleet.agent_dir.as_deref(), cx)
        .map_err(|e| (exit::audit::FAILURE, e))?;
    let reporters = super::reporters(io, args.fleet.events.as_deref())
        .map_err(|e| (exit::audit::INVALID_INPUT, e))?;
    let connector = Connector::new(
        transport::Connector::new(args.fleet.accept_new_host_keys),
        agents,
    );
    Ok(live(inventory, selected, settings, &connector, cx, reporters).await)
}

type Inputs = (Vec<PlanInput>, plan::FactsSource);

fn from_saved_audit(
    path: &std::path::Path,
    as_of: jiff::civil::Date,
    selected: &[&Host],
    io: &mut Io<'_>,
) -> Result<Inputs, String> {
    let saved = plan::from_audit::load(path)?;
    let age = (as_of - saved.as_of).get_days();
    if age > 7 {
        let _ = writeln!(
            io.err,
            "warning: the audit {} is for {}, {age} days before --as-of; facts may have changed (audit again)",
            path.display(),
            saved.as_of
        );
    }
    Ok((
        plan::from_audit::inputs(&saved, path, selected),
        plan::FactsSource {
            kind: "audit".into(),
            path: Some(path.display().to_string()),
            audit_generated_at: Some(saved.generated_at.clone()),
        },
    ))
}

async fn live(
    inventory: &Inventory,
    selected: &[&Host],
    settings: &crate::audit::AuditSettings,
    connector: &Connector,
    cx: &Context,
    reporters: super::Reporters,
) -> Inputs {
    let report =
        super::audit::gather(inventory, selected, settings, connector, cx, reporters).await;
    let inputs = selected
        .iter()
        .zip(report.hosts)
        .map(|(h, row)| {
            let facts = row
                .facts
                .ok_or_else(|| row.error.unwrap_or_else(|| "no facts".into()));
            PlanInput::for_host(h, facts)
        })
        .collect();
    (
        inputs,
        plan::FactsSource {
            kind: "live".into(),
            path: None,
            audit_generated_at: None,
        },
    )
}
