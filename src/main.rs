//! The `ecfleet` binary: the edge. It parses the command line, reads the environment, sets up
//! logging, the runtime and Ctrl-C, calls the library's command and turns its answer into the
//! exit status. No logic here.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use ecfleet::cli::{Cli, Command, InventoryCommand, MergeCommand};
use ecfleet::command::{self, Context, Io};
use ecfleet::engine::{Level, ShutdownTrigger, shutdown};
use ecfleet::exit;
use ecfleet::settings::Environment;

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
    let mut filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| filter.into());
    // The Kerberos library logs keys and tickets at debug and trace, and dumps a KDC's whole
    // KRB-ERROR (its free text included) at error: never shown, whatever RUST_LOG asks. Each
    // of its failures reaches the user once, as ecfleet's own message for that host.
    for quiet in ["sspi=off", "picky=off", "picky_krb=off", "picky_asn1=off"] {
        if let Ok(directive) = quiet.parse() {
            filter = filter.add_directive(directive);
        }
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let code = runtime.block_on(run(cli.command));
    // A detached run may leave tasks behind; do not wait for them.
    runtime.shutdown_background();
    ExitCode::from(code)
}

/// Ctrl-C once: stop scheduling; twice: detach. One listener for the whole run, so that a
/// press that comes while the first is being handled is not missed (a listener made anew after
/// each press could miss one that came in between).
fn on_ctrl_c(trigger: ShutdownTrigger) {
    tokio::spawn(async move {
        #[cfg(unix)]
        let presses = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
        #[cfg(windows)]
        let presses = tokio::signal::windows::ctrl_c();
        let Ok(mut presses) = presses else {
            return;
        };
        while presses.recv().await.is_some() {
            if trigger.escalate() == Level::Detach {
                break;
            }
        }
    });
}

async fn run(command: Command) -> u8 {
    let (trigger, shutdown) = shutdown::channel();
    on_ctrl_c(trigger);
    let no_progress = match &command {
        Command::Audit(a) => a.fleet.no_progress,
        Command::Plan(p) => p.fleet.no_progress,
        Command::Backup(b) => b.fleet.no_progress,
        Command::Stage(s) => s.fleet.no_progress,
        Command::Run(r) => r.fleet.no_progress,
        _ => false,
    };
    let wide = match &command {
        Command::Audit(a) => a.fleet.wide,
        Command::Plan(p) => p.fleet.wide,
        Command::Backup(b) => b.fleet.wide,
        Command::Stage(s) => s.fleet.wide,
        Command::Run(r) => r.fleet.wide,
        Command::Report(r) => r.wide,
        Command::Merge(MergeCommand::Audit(m)) => m.wide,
        Command::Merge(MergeCommand::Run(m)) => m.wide,
        _ => false,
    };
    let cx = Context {
        env: Environment {
            // Windows keeps the user's files (`.ssh\known_hosts` of its OpenSSH client) under
            // %USERPROFILE%; HOME is usually unset there.
            home: std::env::var_os("HOME")
                .or_else(|| std::env::var_os("USERPROFILE"))
                .map(Into::into),
            concurrency: std::env::var("ECFLEET_CONCURRENCY").ok(),
            user: ["USER", "LOGNAME", "USERNAME"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
                .or_else(ecfleet::identity::account_name),
            host_name: std::env::var("COMPUTERNAME")
                .ok()
                .or_else(|| {
                    std::fs::read_to_string("/etc/hostname")
                        .ok()
                        .map(|h| h.trim().to_string())
                })
                .or_else(|| std::env::var("HOSTNAME").ok())
                .filter(|h| !h.is_empty()),
        },
        controller_exe: std::env::current_exe().ok(),
        open_files: ecfleet::limits::raise_open_files_limit(),
        today: jiff::tz::TimeZone::UTC
            .to_datetime(jiff::Timestamp::now())
            .date(),
        shutdown,
    };
    let (mut stdout, mut stderr) = (std::io::stdout().lock(), std::io::stderr());
    let mut io = Io {
        color: std::io::stdout().is_terminal(),
        progress: !no_progress && std::io::stderr().is_terminal(),
        // A terminal's width (comfy-table asks the terminal); piped output: full tables.
        width: (!wide && std::io::stdout().is_terminal())
            .then(|| comfy_table::Table::new().width().map(usize::from))
            .flatten(),
        out: &mut stdout,
        err: &mut stderr,
    };
    match command {
        Command::Inventory(InventoryCommand::Check { inventory }) => {
            command::inventory_check(&inventory, &cx, &mut io)
        }
        Command::Audit(args) => command::audit::run(&args, &cx, &mut io).await,
        Command::Plan(args) => command::plan::run(&args, &cx, &mut io).await,
        Command::Backup(args) => command::backup::run(&args, &cx, &mut io).await,
        Command::Stage(args) => command::stage::run(&args, &cx, &mut io).await,
        Command::Run(args) => command::run::run(&args, &cx, &mut io).await,
        Command::Report(args) => command::report::report(&args, &cx, &mut io).await,
        Command::Merge(MergeCommand::Audit(args)) => command::merge::audits(&args, &cx, &mut io),
        Command::Merge(MergeCommand::Run(args)) => command::merge::runs(&args, &cx, &mut io),
        Command::Lab(lab) => command::lab::run(lab, &cx, &mut io).await,
        Command::Completions { shell } => command::install::completions(shell, &mut io),
        Command::Man { dir } => command::install::man(&dir, &mut io),
    }
}
