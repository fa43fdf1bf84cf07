//! `ecfleet run`: the plan (from a file, or made now for the selected hosts) → the installer →
//! a new ledger on the share → the phases on the engine → the report (docs/run.md).

use std::collections::HashMap;
use std::io::IsTerminal;

use super::fleet::{Fleet, Refusal};
use super::{Context, Io};
use crate::cli::{PlanFormatArg, RunArgs};
use crate::engine::FailureBudget;
use crate::exit;
use crate::plan::{self, Action, Plan, PlanPolicy};
use crate::report::render_run;
use crate::run::options::RunOptions;
use crate::run::{self, RunPlaybook, ledger};
use crate::session::Connector;
use crate::stage::Installer;

/// `--max-failures`: `N` hosts or `P%` of them.
pub fn parse_budget(text: Option<&str>) -> Result<FailureBudget, String> {
    let Some(t) = text else {
        return Ok(FailureBudget::Unlimited);
    };
    let bad = || format!("--max-failures {t}: give a number of hosts (3) or a share (10%)");
    match t.trim().strip_suffix('%') {
        Some(p) => p
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= 100)
            .map(FailureBudget::Percent)
            .ok_or_else(bad),
        None => t
            .trim()
            .parse()
            .map(FailureBudget::Count)
            .map_err(|_| bad()),
    }
}

pub(super) fn load_plan(path: &std::path::Path) -> Result<Plan, String> {
    let bytes = crate::fsread::read_regular(path, 256 << 20)
        .map_err(|e| format!("cannot read the plan {}: {e}", path.display()))?;
    let plan: Plan = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{} is not an ecfleet plan: {e}", path.display()))?;
    if plan.kind != plan::PLAN_KIND || plan.schema_version != plan::PLAN_SCHEMA_VERSION {
        return Err(format!(
            "{} is a {} document of schema {}, not an {} of schema {}",
            path.display(),
            plan.kind,
            plan.schema_version,
            plan::PLAN_KIND,
            plan::PLAN_SCHEMA_VERSION
        ));
    }
    Ok(plan)
}

/// The installer must be what the plan targets (its version, and its hash when the plan has
/// one).
pub(super) fn check_installer(plan: &Plan, installer: &Installer) -> Result<(), String> {
    if plan.target.version != installer.version {
        return Err(format!(
            "the plan upgrades to {} but {} is {}: give the plan's installer, or plan again with --msi",
            plan.target.version,
            installer.info.path.display(),
            installer.version
        ));
    }
    if let Some(sha) = &plan.target.sha256
        && !sha.eq_ignore_ascii_case(&installer.payload.sha256)
    {
        return Err(format!(
            "the plan was made with an installer of SHA-256 {sha}; {} is {}",
            installer.info.path.display(),
            installer.payload.sha256
        ));
    }
    Ok(())
}

pub async fn run(args: &RunArgs, cx: &Context, io: &mut Io<'_>) -> u8 {
    match prepare_and_run(args, cx, io).await {
        Ok(code) => code,
        Err(refusal) => refusal.say(io),
    }
}

async fn prepare_and_run(args: &RunArgs, cx: &Context, io: &mut Io<'_>) -> Result<u8, Refusal> {
    let input = |e: String| (exit::INVALID_INPUT, e);
    let fleet = Fleet::open(&args.fleet, cx, io)?;
    let share = fleet.share("a run keeps its ledger and backups on the central share")?;
    let budget_text = |o: &RunOptions| parse_budget(o.max_failures.as_deref()).map_err(input);
    let settings = super::audit::settings(&fleet, PlanPolicy::embedded().audit_playbook());
    let connector = fleet.connector(cx)?;
    let inventory = &fleet.inventory;
    let selected = fleet.selected();
    let mut unreadable = HashMap::new();
    let (ledger, plan, previous, options, playbook, installer) = match &args.resume {
        Some(which) => {
            let ledger =
                ledger::Ledger::resume(&share, which, &controller(&cx.env)).map_err(input)?;
            // A shard's run is carried on as that shard.
            let recorded: Option<crate::shard::Shard> =
                serde_json::from_value(ledger::header_of(&ledger.dir)["shard"].clone())
                    .ok()
                    .flatten();
            let shard_differs = args.fleet.shard.is_some() && args.fleet.shard != recorded;
            let setup = if shard_differs {
                Err((
                    exit::INVALID_INPUT,
                    format!(
                        "run {} ran {}, not --shard {}: resume each shard's run by its id",
                        ledger.run_id(),
                        recorded.map_or("the whole plan".to_string(), |s| format!("shard {s}")),
                        args.fleet.shard.map(|s| s.to_string()).unwrap_or_default()
                    ),
                ))
            } else {
                resume_setup(&ledger, args, inventory, io)
            };
            match setup {
                Ok((options, playbook, installer, r)) => {
                    unreadable = r.unreadable;
                    (ledger, r.plan, r.previous, options, playbook, installer)
                }
                Err(e) => {
                    // Refused before any host: the run is let go for the next resume.
                    let _ = ledger.let_go();
                    return Err(e.into());
                }
            }
        }
        None => {
            let playbook = match &args.playbook {
                Some(p) => RunPlaybook::load(p).map_err(input)?,
                None => RunPlaybook::embedded(),
            };
            let msi = args.msi.as_deref().ok_or_else(|| {
                input("give the installer with --msi (or carry a run on with --resume)".into())
            })?;
            let installer = Installer::load(msi, args.sha256.as_deref()).map_err(input)?;
            let options = RunOptions::of_new_run(args, msi, &installer.payload.sha256);
            budget_text(&options)?;
            let plan = match &args.plan {
                Some(path) => {
                    let plan = load_plan(path).map_err(input)?;
                    plan::binding::check(&plan, &path.display().to_string(), inventory)
                        .map_err(input)?;
                    plan
                }
                None => {
                    plan_now(
                        inventory, &selected, &settings, &installer, &connector, cx, io,
                    )
                    .await?
                }
            };
            let (ledger, plan, previous) = new_run(
                args, inventory, &share, plan, &selected, &installer, &options, &cx.env, io,
            )
            .await?;
            (ledger, plan, previous, options, playbook, installer)
        }
    };
    let budget = budget_text(&options)?;
    let run_id = ledger.run_id();
    let reporters = fleet.reporters(io)?;
    let reporters = reporters.with_notices(io).with_journal(ledger.journal());
    let report = run::run(
        run::RunInputs {
            run_id: &run_id,
            inventory,
            plan: &plan,
            installer: &installer,
            playbook: &playbook,
            share: &share,
            catalog: &settings.catalog,
            today: cx.today,
            concurrency: settings.concurrency,
            failure_budget: budget,
            connector: &connector,
            ledger: &ledger,
            ignore_windows: options.ignore_windows,
            wait_for_window: options.wait_for_window,
            previous,
            unreadable,
            canary: options.canary.map(|n| n as usize),
            continue_after_canary: options.continue_after_canary,
        },
        cx.shutdown.clone(),
        reporters.sink(),
    )
    .await;
    reporters.finish().await;
    let ledger_dir = ledger.dir.clone();
    if let Err(e) = ledger.finish(&report) {
        let _ = writeln!(io.err, "warning: the run's summary was not written: {e}");
    }
    let json = matches!(args.format, PlanFormatArg::Json);
    render_run(&report, json, io.look(), io.out)
        .map_err(|e| (exit::FAILURE, format!("cannot write the report: {e}")))?;
    if let Some(path) = &args.metrics {
        super::write_metrics(path, &crate::report::metrics::run(&report))?;
    }
    // The night's message: after the report, so that a slow channel delays no one reading it.
    let audiences = crate::notify::audiences(inventory, |tenant| {
        crate::notify::events::run_ended(&report, tenant)
    });
    if !audiences.is_empty() {
        let deliveries = crate::notify::deliver_all(&audiences).await;
        crate::notify::say(&deliveries, io.err);
        if let Err(e) = crate::notify::record(&ledger_dir, &deliveries) {
            let _ = writeln!(
                io.err,
                "warning: the notifications were not recorded in the ledger: {e}"
            );
        }
    }
    let detached = cx.shutdown.level() == crate::engine::Level::Detach;
    if detached || report.summary.waiting > 0 || report.summary.sync_pending > 0 {
        let _ = writeln!(
            io.err,
            "to carry the run on (its options are kept in the ledger): {}",
            RunOptions::resume_command(&inventory.path, &run_id)
        );
    }
    Ok(super::unless_detached(&cx.shutdown, report.exit_code()))
}

/// A new run: the plan checked against the installer and narrowed to the selection, shown and
/// confirmed, then its ledger created.
#[allow(clippy::too_many_arguments)]
async fn new_run(
    args: &RunArgs,
    inventory: &crate::inventory::Inventory,
    share: &std::path::Path,
    mut plan: Plan,
    selected: &[&crate::inventory::Host],
    installer: &Installer,
    options: &RunOptions,
    who: &crate::settings::Environment,
    io: &mut Io<'_>,
) -> Result<(ledger::Ledger, Plan, HashMap<String, run::HostRecord>), (u8, String)> {
    check_installer(&plan, installer).map_err(|e| (exit::INVALID_INPUT, e))?;
    if args.plan.is_some()
        && (!args.fleet.hosts.is_empty()
            || !args.fleet.tenants.is_empty()
            || args.fleet.shard.is_some())
    {
        plan.hosts
            .retain(|h| selected.iter().any(|s| s.name == h.host));
    }
    let upgrading = plan
        .hosts
        .iter()
        .filter(|h| h.action == Action::InPlace)
        .count();
    let _ = writeln!(
        io.err,
        "run: {} of {} to upgrade in place to {} ({}); the others are not touched",
        upgrading,
        crate::report::count(plan.hosts.len(), "host"),
        installer.version,
        plan.summary.line()
    );
    for line in per_tenant(&plan, inventory, options) {
        let _ = writeln!(io.err, "{line}");
    }
    if !args.yes && !confirm(io).await {
        return Err((
            exit::INVALID_INPUT,
            "not confirmed: nothing was done (give --yes for unattended runs)".into(),
        ));
    }
    let run_id = ledger::new_run_id();
    let header = header(&run_id, inventory, args, installer, options, who);
    let ledger = ledger::Ledger::create(share, &run_id, &header, &plan, &controller(who))
        .map_err(|e| (exit::FAILURE, format!("cannot start the run's ledger: {e}")))?;
    if let Some(path) = &args.playbook {
        // The playbook's very text, so that a resumed run does not depend on the file.
        let text = crate::fsread::read_regular(path, 1 << 20)
            .map_err(|e| (exit::INVALID_INPUT, format!("{}: {e}", path.display())))?;
        crate::share::write_new_file(&ledger.dir.join("playbook.toml"), &text)
            .map_err(|e| (exit::FAILURE, format!("cannot start the run's ledger: {e}")))?;
    }
    let _ = writeln!(io.err, "run {run_id}: ledger {}", ledger.dir.display());
    Ok((ledger, plan, HashMap::new()))
}

/// What the run will do per tenant: its hosts in wave order and its window, and a plain warning
/// when `--ignore-windows` works outside the customers' windows.
fn per_tenant(
    plan: &Plan,
    inventory: &crate::inventory::Inventory,
    options: &RunOptions,
) -> Vec<String> {
    let now = jiff::Timestamp::now();
    let mut lines = Vec::new();
    let mut outside = Vec::new();
    let mut tenants: Vec<&str> = Vec::new();
    for h in plan.hosts.iter().filter(|h| h.action == Action::InPlace) {
        if !tenants.contains(&h.tenant.as_str()) {
            tenants.push(&h.tenant);
        }
    }
    for tenant in tenants {
        let mut hosts: Vec<&plan::PlannedHost> = plan
            .hosts
            .iter()
            .filter(|h| h.tenant == tenant && h.action == Action::InPlace)
            .collect();
        hosts.sort_by_key(|h| h.wave);
        let order = hosts
            .iter()
            .map(|h| format!("{} (wave {})", h.host, h.wave))
            .collect::<Vec<_>>()
            .join(", ");
        let window = inventory
            .tenants
            .iter()
            .find(|t| t.name == tenant)
            .and_then(|t| t.maintenance_window.as_ref());
        let when = match window {
            None => "no maintenance window".to_string(),
            Some(w) => {
                let next = w.next_after(now);
                let open = next.start.timestamp() <= now;
                if !open && options.ignore_windows {
                    outside.push(format!("{tenant} ({})", w.text()));
                }
                match (open, options.ignore_windows, options.wait_for_window) {
                    (true, _, _) => format!("window {} open now", w.text()),
                    (false, true, _) => format!("window {} closed: IGNORED", w.text()),
                    (false, false, true) => {
                        format!("window {} closed: waits for it ({})", w.text(), next.start)
                    }
                    (false, false, false) => format!(
                        "window {} closed: backed up, then deferred (opens {})",
                        w.text(),
                        next.start
                    ),
                }
            }
        };
        lines.push(format!(
            "  {tenant}: {}: {order}; {when}",
            crate::report::count(hosts.len(), "host")
        ));
    }
    if !outside.is_empty() {
        lines.push(format!(
            "warning: --ignore-windows: upgrading outside the customers' maintenance windows of {}",
            outside.join(", ")
        ));
    }
    lines
}

/// This controller, as its holds on the share name it.
pub(super) fn controller(who: &crate::settings::Environment) -> ledger::Controller {
    ledger::Controller {
        host_name: who.host_name.clone(),
        user: who.user.clone(),
    }
}

/// `run.json` for a new run: who ran what, when.
fn header(
    run_id: &str,
    inventory: &crate::inventory::Inventory,
    args: &RunArgs,
    installer: &Installer,
    options: &RunOptions,
    who: &crate::settings::Environment,
) -> serde_json::Value {
    let absolute = |p: &std::path::Path| {
        std::path::absolute(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    let sha_of = |p: &std::path::Path| std::fs::read(p).ok().map(|b| crate::digest::sha256_hex(&b));
    serde_json::json!({
        "schema_version": 1,
        "kind": "ecfleet-run",
        "run_id": run_id,
        "started_at": jiff::Timestamp::now().to_string(),
        "inventory": absolute(&inventory.path),
        "inventory_sha256": sha_of(&inventory.path),
        "plan": args.plan.as_deref().map(absolute),
        "plan_sha256": args.plan.as_deref().and_then(sha_of),
        "shard": args.fleet.shard,
        "installer": installer.info,
        "arguments": std::env::args().skip(1).collect::<Vec<_>>(),
        "options": options,
        "user": who.user,
        "controller": {
            "pid": std::process::id(),
            "version": env!("CARGO_PKG_VERSION"),
            "host": who.host_name,
        },
    })
}

/// What a resumed run is carried on with, from its ledger: its options, its playbook (the
/// text kept in the ledger), its installer (the same SHA-256), its plan and host records.
fn resume_setup(
    ledger: &ledger::Ledger,
    args: &RunArgs,
    inventory: &crate::inventory::Inventory,
    io: &mut Io<'_>,
) -> Result<(RunOptions, RunPlaybook, Installer, Resumed), (u8, String)> {
    let input = |e: String| (exit::INVALID_INPUT, e);
    let options = resumed_options(ledger, args)?;
    let playbook = match ledger.read("playbook.toml") {
        Some(text) => RunPlaybook::parse(
            &String::from_utf8_lossy(&text),
            &format!("{}/playbook.toml", ledger.dir.display()),
        )
        .map_err(input)?,
        None => RunPlaybook::embedded(),
    };
    if let Some(given) = &args.playbook
        && std::fs::read(given).ok() != ledger.read("playbook.toml")
    {
        return Err(input(format!(
            "run {} keeps the playbook it started with ({}), and --playbook {} differs: leave it out",
            ledger.run_id(),
            options
                .playbook
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "the built-in one".into()),
            given.display()
        )));
    }
    let msi = args.msi.clone().unwrap_or_else(|| options.msi.clone());
    let pinned = Some(options.sha256.as_str()).filter(|s| !s.is_empty());
    let installer = Installer::load(&msi, pinned).map_err(|e| {
        input(format!(
            "run {} upgrades with {} (SHA-256 {}): {e}",
            ledger.run_id(),
            options.msi.display(),
            options.sha256
        ))
    })?;
    let resumed = resumed(ledger, inventory, &installer, io).map_err(input)?;
    Ok((options, playbook, installer, resumed))
}

/// A resumed run's options: the ones `run.json` kept, checked against those given now (a run
/// from before options were kept takes the command line's).
fn resumed_options(ledger: &ledger::Ledger, args: &RunArgs) -> Result<RunOptions, (u8, String)> {
    let header: serde_json::Value = ledger
        .read("run.json")
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    match serde_json::from_value::<RunOptions>(header["options"].clone()) {
        Ok(recorded) => RunOptions::resumed(recorded, args, &ledger.run_id())
            .map_err(|e| (exit::INVALID_INPUT, e)),
        Err(_) => {
            let msi = args.msi.clone().ok_or_else(|| {
                (
                    exit::INVALID_INPUT,
                    format!(
                        "run {} was started by an ecfleet that did not keep its options: give --msi",
                        ledger.run_id()
                    ),
                )
            })?;
            Ok(RunOptions {
                sha256: header["installer"]["sha256"]
                    .as_str()
                    .or(args.sha256.as_deref())
                    .unwrap_or_default()
                    .to_string(),
                ..RunOptions::of_new_run(args, &msi, "")
            })
        }
    }
}

/// What `--resume` found in the ledger: the run's plan, each host's record, and the hosts whose
/// record is there but cannot be read (they are left alone, never started over).
struct Resumed {
    plan: Plan,
    previous: HashMap<String, run::HostRecord>,
    unreadable: HashMap<String, String>,
}

/// A resumed run's plan (as the ledger kept it, checked against the SHA-256 `run.json` keeps
/// of it) and each host's record; the installer must be the one the run started with.
fn resumed(
    ledger: &ledger::Ledger,
    inventory: &crate::inventory::Inventory,
    installer: &Installer,
    io: &mut Io<'_>,
) -> Result<Resumed, String> {
    let plan_bytes = ledger
        .read("plan.json")
        .ok_or_else(|| format!("{} has no plan.json", ledger.dir.display()))?;
    let header: serde_json::Value = ledger
        .read("run.json")
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if let Some(kept) = header[ledger::PLAN_SHA256_FIELD].as_str() {
        let now = crate::digest::sha256_hex(&plan_bytes);
        if !now.eq_ignore_ascii_case(kept) {
            return Err(format!(
                "{}/plan.json changed since the run started (SHA-256 {now}; run.json says {kept}): a ledger that was edited is not carried on; start a new run from a plan",
                ledger.dir.display()
            ));
        }
    }
    let plan: Plan = serde_json::from_slice(&plan_bytes)
        .map_err(|e| format!("{}/plan.json: {e}", ledger.dir.display()))?;
    // The run's plan against the inventory given now: the same rule as a new run's.
    plan::binding::check(
        &plan,
        &format!("{}/plan.json", ledger.dir.display()),
        inventory,
    )?;
    check_installer(&plan, installer)?;
    if let Some(sha) = header["installer"]["sha256"].as_str()
        && !sha.eq_ignore_ascii_case(&installer.payload.sha256)
    {
        return Err(format!(
            "run {} started with the installer of SHA-256 {sha}; {} is {}: give that installer",
            ledger.run_id(),
            installer.info.path.display(),
            installer.payload.sha256
        ));
    }
    let mut previous = HashMap::new();
    let mut unreadable = HashMap::new();
    for h in &plan.hosts {
        let path = ledger
            .dir
            .join("hosts")
            .join(&h.tenant)
            .join(format!("{}.json", h.host));
        let read = crate::fsread::read_regular(&path, 16 << 20)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<run::HostRecord>(&b).map_err(|e| e.to_string()));
        match read {
            Ok(record) => {
                previous.insert(h.host.clone(), record);
            }
            Err(_) if !path.exists() && std::fs::symlink_metadata(&path).is_err() => {}
            Err(e) => {
                unreadable.insert(
                    h.host.clone(),
                    format!(
                        "its record in the run's ledger cannot be read ({}: {e}); nothing was done to it: repair or remove that file, then resume again",
                        path.display()
                    ),
                );
            }
        }
    }
    let _ = writeln!(
        io.err,
        "run {}: resumed ({} with a record{}); ledger {}",
        ledger.run_id(),
        crate::report::count(previous.len(), "host"),
        if unreadable.is_empty() {
            String::new()
        } else {
            format!(
                ", {} whose record cannot be read: left alone",
                crate::report::count(unreadable.len(), "host")
            )
        },
        ledger.dir.display()
    );
    Ok(Resumed {
        plan,
        previous,
        unreadable,
    })
}

/// No plan file: plan the selected hosts now, against the installer.
async fn plan_now(
    inventory: &crate::inventory::Inventory,
    selected: &[&crate::inventory::Host],
    settings: &crate::audit::AuditSettings,
    installer: &Installer,
    connector: &Connector,
    cx: &Context,
    io: &mut Io<'_>,
) -> Result<Plan, (u8, String)> {
    let target = plan::target::resolve(
        &settings.catalog,
        settings.as_of,
        plan::target::TargetRequest::Msi {
            path: &installer.info.path,
            sha256: Some(&installer.payload.sha256),
        },
    )
    .map_err(|e| (exit::INVALID_INPUT, e.to_string()))?;
    let reporters =
        super::fleet::Reporters::start(io, None).map_err(|e| (exit::INVALID_INPUT, e))?;
    let report =
        super::audit::gather(inventory, selected, settings, connector, cx, reporters).await;
    let inputs: Vec<plan::PlanInput> = selected
        .iter()
        .zip(report.hosts)
        .map(|(h, row)| {
            plan::PlanInput::for_host(h, row.facts.ok_or_else(|| row.error.unwrap_or_default()))
        })
        .collect();
    let mut made = plan::build(
        &plan::TenantWindow::of(inventory),
        &inputs,
        plan::PlanSettings {
            catalog: &settings.catalog,
            target,
            policy: PlanPolicy::embedded(),
            as_of: settings.as_of,
            reference_time: plan::reference_time(settings.as_of, jiff::Timestamp::now()),
            inventory_path: inventory.path.display().to_string(),
            inventory_hosts: plan::binding::snapshot(inventory),
            facts_source: plan::FactsSource {
                kind: "live".into(),
                path: None,
                audit_generated_at: None,
            },
        },
    );
    made.generated_at = jiff::Timestamp::now().to_string();
    Ok(made)
}

/// Asks on the terminal; anything but `y`/`yes` (or no terminal) is no.
async fn confirm(io: &mut Io<'_>) -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    let _ = write!(io.err, "Proceed? [y/N] ");
    let _ = io.err.flush();
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    });
    match tokio::time::timeout(std::time::Duration::from_secs(600), line).await {
        Ok(Ok(Ok(answer))) => matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"),
        _ => false,
    }
}
