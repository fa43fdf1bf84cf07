//! The `ecfleet` binary: parses the command line and wires it to the library. No logic here.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use ecfleet::audit::{self, AuditEvent, AuditPlaybook, AuditSettings, exit};
use ecfleet::catalog::Catalog;
use ecfleet::cli::{
    AuditArgs, Cli, Command, FleetArgs, FormatArg, InventoryCommand, LabCommand, PlanArgs,
    PlanFormatArg,
};
use ecfleet::inventory::{Host, Inventory};
use ecfleet::plan::{self, PlanPolicy};
use ecfleet::provision::AgentBuilds;
use ecfleet::report::{AuditFormat, PlanFormat, render_audit, render_plan};
use ecfleet::share::Share;
use jiff::civil::Date;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // Help and version are not errors; bad flags are invalid input.
            return if e.use_stderr() {
                ExitCode::from(exit::INVALID_INPUT)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let filter = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| filter.into()),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let code = runtime.block_on(run(cli.command));
    ExitCode::from(code)
}

fn fail(code: u8, message: impl std::fmt::Display) -> u8 {
    eprintln!("error: {message}");
    code
}

fn user_known_hosts() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ssh").join("known_hosts"))
}

fn parse_as_of(text: Option<&str>) -> Result<Date, String> {
    match text {
        Some(t) => t
            .parse::<Date>()
            .map_err(|_| format!("--as-of `{t}` is not a date like 2026-11-24")),
        None => Ok(today()),
    }
}

/// Today's date in UTC.
fn today() -> Date {
    jiff::tz::TimeZone::UTC
        .to_datetime(jiff::Timestamp::now())
        .date()
}

fn format_of(f: FormatArg) -> AuditFormat {
    match f {
        FormatArg::Table => AuditFormat::Table,
        FormatArg::Json => AuditFormat::Json,
        FormatArg::Csv => AuditFormat::Csv,
    }
}

async fn run(command: Command) -> u8 {
    match command {
        Command::Inventory(InventoryCommand::Check { inventory }) => {
            match Inventory::load(&inventory, user_known_hosts().as_deref()) {
                Ok(inv) => {
                    println!(
                        "{}: ok ({} tenants, {} hosts)",
                        inventory.display(),
                        inv.tenants.len(),
                        inv.host_count()
                    );
                    exit::OK
                }
                Err(errors) => {
                    eprintln!("{errors}");
                    exit::INVALID_INPUT
                }
            }
        }
        Command::Audit(args) => audit_command(&args).await,
        Command::Plan(args) => plan_command(&args).await,
        Command::Lab(LabCommand::Msi {
            version,
            out,
            size_mb,
            product_name,
        }) => match ecfleet::msi::write_lab_msi(
            &out,
            &version,
            product_name.as_deref(),
            size_mb << 20,
        ) {
            Ok(info) => {
                println!(
                    "wrote {} ({} {}, {} bytes, sha256 {})",
                    out.display(),
                    info.product_name,
                    info.product_version,
                    info.size,
                    info.sha256
                );
                exit::OK
            }
            Err(e) => fail(exit::FAILURE, e),
        },
        Command::Lab(LabCommand::Init { hosts, dir, as_of }) => {
            let as_of = match parse_as_of(as_of.as_deref()) {
                Ok(d) => d,
                Err(e) => return fail(exit::INVALID_INPUT, e),
            };
            match ecfleet::lab::init(&dir, hosts, &Catalog::embedded(), as_of) {
                Ok(fleet) => {
                    println!(
                        "wrote {} lab hosts to {}",
                        fleet.len(),
                        dir.join("hosts").display()
                    );
                    exit::OK
                }
                Err(e) => fail(exit::FAILURE, e),
            }
        }
        Command::Lab(LabCommand::Up {
            hosts,
            dir,
            port_base,
        }) => {
            let (inventory, served, client) =
                match ecfleet::lab::up(&dir, hosts, port_base, &Catalog::embedded(), today()).await
                {
                    Ok(x) => x,
                    Err(e) => return fail(exit::FAILURE, e),
                };
            eprintln!(
                "serving {hosts} lab hosts on 127.0.0.1; inventory: {}",
                inventory.display()
            );
            eprintln!(
                "try: ecfleet audit -i {}    (Ctrl-C stops the lab)",
                inventory.display()
            );
            ecfleet::lab::server::serve(served, client, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await;
            exit::OK
        }
        Command::Lab(LabCommand::Demo { hosts, dir, format }) => {
            let (inventory, served, client) =
                match ecfleet::lab::up(&dir, hosts, 0, &Catalog::embedded(), today()).await {
                    Ok(x) => x,
                    Err(e) => return fail(exit::FAILURE, e),
                };
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(ecfleet::lab::server::serve(served, client, async {
                let _ = stopped.await;
            }));
            eprintln!(
                "lab: {hosts} simulated hosts served over SSH on 127.0.0.1 (inventory {})",
                inventory.display()
            );
            let args = AuditArgs {
                fleet: FleetArgs {
                    inventory,
                    as_of: None,
                    hosts: vec![],
                    tenants: vec![],
                    concurrency: None,
                    catalog: None,
                    accept_new_host_keys: false,
                    agent_dir: None,
                    no_progress: false,
                },
                format,
                playbook: None,
                no_share: false,
            };
            let code = audit_command(&args).await;
            let _ = stop.send(());
            let _ = server.await;
            code
        }
    }
}

fn load_inventory(path: &Path) -> Result<Inventory, String> {
    Inventory::load(path, user_known_hosts().as_deref()).map_err(|errors| errors.to_string())
}

fn load_catalog(path: Option<&Path>) -> Result<Catalog, String> {
    match path {
        Some(p) => Catalog::load(p).map_err(|e| e.to_string()),
        None => Ok(Catalog::embedded()),
    }
}

/// The hosts `--host` and `--tenant` select (all when neither is given).
fn select_hosts<'a>(
    inventory: &'a Inventory,
    hosts: &[String],
    tenants: &[String],
) -> Result<Vec<&'a Host>, String> {
    for name in hosts {
        if !inventory.hosts().any(|h| &h.name == name) {
            return Err(format!(
                "--host {name}: no such host in {}",
                inventory.path.display()
            ));
        }
    }
    for name in tenants {
        if !inventory.tenants.iter().any(|t| &t.name == name) {
            return Err(format!(
                "--tenant {name}: no such tenant in {}",
                inventory.path.display()
            ));
        }
    }
    Ok(inventory
        .hosts()
        .filter(|h| {
            (hosts.is_empty() || hosts.contains(&h.name))
                && (tenants.is_empty() || tenants.contains(&h.tenant))
        })
        .collect())
}

fn discover_agents(agent_dir: Option<&Path>) -> Result<AgentBuilds, String> {
    let exe = std::env::current_exe().ok();
    let agents = AgentBuilds::discover(exe.as_deref(), agent_dir);
    if agents.linux.is_none() && agents.windows.is_none() {
        return Err("no agent build found: run `cargo build --release` (and for Windows hosts `cargo build --release -p ecfleet-agent --target x86_64-pc-windows-gnu`), or give --agent-dir".into());
    }
    Ok(agents)
}

/// Facts from the selected hosts with the audit's fan-out: Ctrl-C stops scheduling, a progress
/// bar on a terminal.
async fn gather(
    inventory: &Inventory,
    selected: &[&Host],
    settings: &AuditSettings,
    no_progress: bool,
) -> audit::AuditReport {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "\ninterrupted: finishing hosts in flight, starting no new ones (Ctrl-C again to quit now)"
            );
            flag.store(true, Ordering::SeqCst);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let show_progress = !no_progress && std::io::stderr().is_terminal();
    let bar = indicatif::ProgressBar::hidden();
    if show_progress {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} hosts {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
    }
    let report = audit::run(inventory, selected, settings, cancel, |event| match event {
        AuditEvent::Started { hosts } => bar.set_length(hosts as u64),
        AuditEvent::HostDone(row) => {
            bar.inc(1);
            bar.set_message(row.host.clone());
        }
    })
    .await;
    bar.finish_and_clear();
    report
}

async fn audit_command(args: &AuditArgs) -> u8 {
    let inventory = match load_inventory(&args.fleet.inventory) {
        Ok(i) => i,
        Err(errors) => {
            eprintln!("{errors}");
            return exit::INVALID_INPUT;
        }
    };
    let as_of = match parse_as_of(args.fleet.as_of.as_deref()) {
        Ok(d) => d,
        Err(e) => return fail(exit::INVALID_INPUT, e),
    };
    let catalog = match load_catalog(args.fleet.catalog.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(exit::INVALID_INPUT, e),
    };
    let playbook = match &args.playbook {
        Some(p) => match AuditPlaybook::load(p) {
            Ok(c) => c,
            Err(e) => return fail(exit::INVALID_INPUT, e),
        },
        None => AuditPlaybook::embedded(),
    };
    let selected = match select_hosts(&inventory, &args.fleet.hosts, &args.fleet.tenants) {
        Ok(s) => s,
        Err(e) => return fail(exit::INVALID_INPUT, e),
    };
    let agents = match discover_agents(args.fleet.agent_dir.as_deref()) {
        Ok(a) => a,
        Err(e) => return fail(exit::FAILURE, e),
    };
    let settings = AuditSettings {
        catalog,
        playbook,
        as_of,
        concurrency: args.fleet.concurrency.unwrap_or(inventory.concurrency),
        agents,
        accept_new_host_keys: args.fleet.accept_new_host_keys,
    };
    let mut report = gather(&inventory, &selected, &settings, args.fleet.no_progress).await;
    if let Some(share_dir) = &inventory.share
        && let Some(previous) = Share::new(share_dir).latest_audit()
    {
        match audit::changes::PreviousAudit::load(&previous) {
            Ok(p) => {
                let whole = args.fleet.hosts.is_empty() && args.fleet.tenants.is_empty();
                report.changes = Some(audit::changes::diff(
                    &p,
                    &previous.display().to_string(),
                    &report,
                    whole,
                ));
            }
            Err(e) => eprintln!("warning: not compared with the last audit: {e}"),
        }
    }

    let mut stdout = std::io::stdout().lock();
    let color = std::io::stdout().is_terminal();
    if let Err(e) = render_audit(&report, format_of(args.format), color, &mut stdout) {
        return fail(exit::FAILURE, format!("cannot write the report: {e}"));
    }
    if !args.no_share
        && let Some(share_dir) = &inventory.share
    {
        let json = match serde_json::to_vec_pretty(&report) {
            Ok(j) => j,
            Err(e) => return fail(exit::FAILURE, e),
        };
        let stamp = report.generated_at.replace(':', "");
        match Share::new(share_dir).write_audit(&stamp, &json) {
            Ok(path) => eprintln!("snapshot: {}", relative(&path)),
            Err(e) => return fail(exit::FAILURE, e),
        }
    }
    report.exit_code()
}

fn relative(p: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|d| p.strip_prefix(d).ok().map(|r| r.display().to_string()))
        .unwrap_or_else(|| p.display().to_string())
}

/// `ecfleet plan`: facts (live or from a saved audit) → decisions → waves → table/JSON/file.
async fn plan_command(args: &PlanArgs) -> u8 {
    // With --detailed-exitcode every error is 1; otherwise the audit's codes (3 input, 4 failure).
    let code = |c: u8| {
        if args.detailed_exitcode {
            plan::exit::DETAILED_ERROR
        } else {
            c
        }
    };
    let inventory = match load_inventory(&args.fleet.inventory) {
        Ok(i) => i,
        Err(errors) => {
            eprintln!("{errors}");
            return code(exit::INVALID_INPUT);
        }
    };
    let as_of = match parse_as_of(args.fleet.as_of.as_deref()) {
        Ok(d) => d,
        Err(e) => return fail(code(exit::INVALID_INPUT), e),
    };
    let reference_time = plan::reference_time(as_of, jiff::Timestamp::now());
    let catalog = match load_catalog(args.fleet.catalog.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(code(exit::INVALID_INPUT), e),
    };
    let policy = match &args.playbook {
        Some(p) => match PlanPolicy::load(p) {
            Ok(p) => p,
            Err(e) => return fail(code(exit::INVALID_INPUT), e),
        },
        None => PlanPolicy::embedded(),
    };
    let selected = match select_hosts(&inventory, &args.fleet.hosts, &args.fleet.tenants) {
        Ok(s) => s,
        Err(e) => return fail(code(exit::INVALID_INPUT), e),
    };
    let request = match (&args.target, &args.msi) {
        (Some(v), _) => plan::target::TargetRequest::Version(v),
        (None, Some(path)) => plan::target::TargetRequest::Msi {
            path,
            sha256: args.sha256.as_deref(),
        },
        (None, None) => plan::target::TargetRequest::Newest,
    };
    let target = match plan::target::resolve(&catalog, as_of, request) {
        Ok(t) => t,
        Err(e) => return fail(code(exit::INVALID_INPUT), e),
    };

    let (inputs, facts_source) = match &args.from_audit {
        Some(path) => {
            let saved = match plan::from_audit::load(path) {
                Ok(a) => a,
                Err(e) => return fail(code(exit::INVALID_INPUT), e),
            };
            let age = (as_of - saved.as_of).get_days();
            if age > 7 {
                eprintln!(
                    "warning: the audit {} is for {}, {age} days before --as-of; facts may have changed (audit again)",
                    path.display(),
                    saved.as_of
                );
            }
            (
                plan::from_audit::inputs(&saved, path, &selected),
                plan::FactsSource {
                    kind: "audit".into(),
                    path: Some(path.display().to_string()),
                    audit_generated_at: Some(saved.generated_at.clone()),
                },
            )
        }
        None => {
            let agents = match discover_agents(args.fleet.agent_dir.as_deref()) {
                Ok(a) => a,
                Err(e) => return fail(code(exit::FAILURE), e),
            };
            let settings = AuditSettings {
                catalog: catalog.clone(),
                playbook: policy.audit_playbook(),
                as_of,
                concurrency: args.fleet.concurrency.unwrap_or(inventory.concurrency),
                agents,
                accept_new_host_keys: args.fleet.accept_new_host_keys,
            };
            let report = gather(&inventory, &selected, &settings, args.fleet.no_progress).await;
            let inputs = selected
                .iter()
                .zip(report.hosts)
                .map(|(h, row)| {
                    let facts = row
                        .facts
                        .ok_or_else(|| row.error.unwrap_or_else(|| "no facts".into()));
                    plan::PlanInput::for_host(h, facts)
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
    };

    let mut result = plan::build(
        &plan::TenantWindow::of(&inventory),
        &inputs,
        plan::PlanSettings {
            catalog: &catalog,
            target,
            policy,
            as_of,
            reference_time,
            inventory_path: inventory.path.display().to_string(),
            facts_source,
        },
    );
    result.generated_at = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or(jiff::Timestamp::now())
        .to_string();

    if let Some(out) = &args.out {
        let json = match serde_json::to_vec_pretty(&result) {
            Ok(j) => j,
            Err(e) => return fail(code(exit::FAILURE), e),
        };
        if let Err(e) = ecfleet::share::replace_file(out, &json) {
            return fail(code(exit::FAILURE), e);
        }
        eprintln!("plan written to {}", relative(out));
    }
    let format = match args.format {
        PlanFormatArg::Table => PlanFormat::Table,
        PlanFormatArg::Json => PlanFormat::Json,
    };
    let mut stdout = std::io::stdout().lock();
    let color = std::io::stdout().is_terminal();
    if let Err(e) = render_plan(&result, format, color, &mut stdout) {
        return fail(code(exit::FAILURE), format!("cannot write the plan: {e}"));
    }
    if args.detailed_exitcode {
        result.detailed_exit_code()
    } else {
        plan::exit::OK
    }
}
