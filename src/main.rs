//! The `ecfleet` binary: parses the command line and wires it to the library. No logic here.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use ecfleet::audit::{self, AuditEvent, AuditPlaybook, AuditSettings, exit};
use ecfleet::catalog::Catalog;
use ecfleet::cli::{AuditArgs, Cli, Command, FormatArg, InventoryCommand, LabCommand};
use ecfleet::inventory::Inventory;
use ecfleet::provision::AgentBuilds;
use ecfleet::report::{AuditFormat, render_audit};
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
                inventory,
                as_of: None,
                format,
                hosts: vec![],
                tenants: vec![],
                concurrency: None,
                catalog: None,
                playbook: None,
                accept_new_host_keys: false,
                agent_dir: None,
                no_share: false,
                no_progress: false,
            };
            let code = audit_command(&args).await;
            let _ = stop.send(());
            let _ = server.await;
            code
        }
    }
}

async fn audit_command(args: &AuditArgs) -> u8 {
    let inventory = match Inventory::load(&args.inventory, user_known_hosts().as_deref()) {
        Ok(i) => i,
        Err(errors) => {
            eprintln!("{errors}");
            return exit::INVALID_INPUT;
        }
    };
    let as_of = match parse_as_of(args.as_of.as_deref()) {
        Ok(d) => d,
        Err(e) => return fail(exit::INVALID_INPUT, e),
    };
    let catalog = match &args.catalog {
        Some(p) => match Catalog::load(p) {
            Ok(c) => c,
            Err(e) => return fail(exit::INVALID_INPUT, e),
        },
        None => Catalog::embedded(),
    };
    let playbook = match &args.playbook {
        Some(p) => match AuditPlaybook::load(p) {
            Ok(c) => c,
            Err(e) => return fail(exit::INVALID_INPUT, e),
        },
        None => AuditPlaybook::embedded(),
    };
    for name in &args.hosts {
        if !inventory.hosts().any(|h| &h.name == name) {
            return fail(
                exit::INVALID_INPUT,
                format!(
                    "--host {name}: no such host in {}",
                    args.inventory.display()
                ),
            );
        }
    }
    for name in &args.tenants {
        if !inventory.tenants.iter().any(|t| &t.name == name) {
            return fail(
                exit::INVALID_INPUT,
                format!(
                    "--tenant {name}: no such tenant in {}",
                    args.inventory.display()
                ),
            );
        }
    }
    let selected: Vec<_> = inventory
        .hosts()
        .filter(|h| {
            (args.hosts.is_empty() || args.hosts.contains(&h.name))
                && (args.tenants.is_empty() || args.tenants.contains(&h.tenant))
        })
        .collect();
    let exe = std::env::current_exe().ok();
    let agents = AgentBuilds::discover(exe.as_deref(), args.agent_dir.as_deref());
    if agents.linux.is_none() && agents.windows.is_none() {
        return fail(
            exit::FAILURE,
            "no agent build found: run `cargo build --release` (and for Windows hosts `cargo build --release -p ecfleet-agent --target x86_64-pc-windows-gnu`), or give --agent-dir",
        );
    }
    let settings = AuditSettings {
        catalog,
        playbook,
        as_of,
        concurrency: args.concurrency.unwrap_or(inventory.concurrency),
        agents,
        accept_new_host_keys: args.accept_new_host_keys,
    };

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
    let show_progress = !args.no_progress && std::io::stderr().is_terminal();
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
    let report = audit::run(
        &inventory,
        &selected,
        &settings,
        cancel,
        |event| match event {
            AuditEvent::Started { hosts } => bar.set_length(hosts as u64),
            AuditEvent::HostDone(row) => {
                bar.inc(1);
                bar.set_message(row.host.clone());
            }
        },
    )
    .await;
    bar.finish_and_clear();

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
