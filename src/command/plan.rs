//! `ecfleet plan`: facts (live, on the engine, or from a saved audit) → decisions → waves →
//! table/JSON/plan file.

use super::fleet::{Fleet, Refusal};
use super::{Context, Io};
use crate::cli::{PlanArgs, PlanFormatArg};
use crate::exit;
use crate::inventory::Host;
use crate::plan::{self, PlanInput, PlanPolicy};
use crate::report::{PlanFormat, render_plan};

pub async fn run(args: &PlanArgs, cx: &Context, io: &mut Io<'_>) -> u8 {
    match plan_fleet(args, cx, io).await {
        Ok(code) => code,
        Err(mut refusal) => {
            // With --detailed-exitcode every error is terraform's 1.
            if args.detailed_exitcode {
                refusal.code = exit::terraform::ERROR;
            }
            refusal.say(io)
        }
    }
}

async fn plan_fleet(args: &PlanArgs, cx: &Context, io: &mut Io<'_>) -> Result<u8, Refusal> {
    let fleet = Fleet::open(&args.fleet, cx, io)?;
    let policy = match &args.playbook {
        Some(p) => PlanPolicy::load(p).map_err(Refusal::input)?,
        None => PlanPolicy::embedded(),
    };
    let settings = super::audit::settings(&fleet, policy.audit_playbook());
    let as_of = fleet.as_of;
    let target = plan::target::resolve(&fleet.catalog, as_of, target_request(args))
        .map_err(Refusal::input)?;
    let (inputs, facts_source) = facts(args, &fleet, &settings, cx, io).await?;
    let inventory = &fleet.inventory;
    let mut result = plan::build(
        &plan::TenantWindow::of(inventory),
        &inputs,
        plan::PlanSettings {
            catalog: &fleet.catalog,
            target,
            policy,
            as_of,
            reference_time: plan::reference_time(as_of, jiff::Timestamp::now()),
            inventory_path: inventory.path.display().to_string(),
            inventory_hosts: plan::binding::snapshot(inventory),
            facts_source,
        },
    );
    result.generated_at = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or(jiff::Timestamp::now())
        .to_string();
    if let Some(out) = &args.out {
        write_plan_file(out, &result).map_err(Refusal::failure)?;
        let _ = writeln!(io.err, "plan written to {}", super::relative(out));
    }
    let format = match args.format {
        PlanFormatArg::Table => PlanFormat::Table,
        PlanFormatArg::Json => PlanFormat::Json,
    };
    render_plan(&result, format, io.look(), io.out)
        .map_err(|e| Refusal::failure(format!("cannot write the plan: {e}")))?;
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
        exit::OK
    };
    Ok(super::unless_detached(&cx.shutdown, done))
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

/// The facts to plan from: a saved audit (`--from-audit`, which reaches no host and so needs
/// no agent build) or gathered live on the engine.
async fn facts(
    args: &PlanArgs,
    fleet: &Fleet<'_>,
    settings: &crate::audit::AuditSettings,
    cx: &Context,
    io: &mut Io<'_>,
) -> Result<Inputs, Refusal> {
    let selected = fleet.selected();
    if let Some(path) = &args.from_audit {
        return from_saved_audit(path, settings.as_of, &selected, io).map_err(Refusal::input);
    }
    let connector = fleet.connector(cx)?;
    let reporters = fleet.reporters(io)?;
    let report = super::audit::gather(
        &fleet.inventory,
        &selected,
        settings,
        &connector,
        cx,
        reporters,
    )
    .await;
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
    Ok((
        inputs,
        plan::FactsSource {
            kind: "live".into(),
            path: None,
            audit_generated_at: None,
        },
    ))
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
