//! The commands' workflows, between the command line and the library: load and validate the
//! inputs, resolve the settings once ([`crate::settings`]), run the fleet on the engine, render
//! the report. Each returns the exit code ([`crate::exit`]) and writes only to the [`Io`] it is
//! given, so it is tested without spawning the binary.

pub mod audit;
pub mod backup;
pub mod lab;
pub mod plan;
pub mod run;
pub mod stage;

use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::civil::Date;

use crate::catalog::Catalog;
use crate::engine::{EventSink, Level, Shutdown};
use crate::exit;
use crate::inventory::{Host, Inventory};
use crate::report::progress;
use crate::session::AgentBuilds;
use crate::settings::Environment;

/// Where a command writes: results on `out`, progress and diagnostics on `err`.
pub struct Io<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    /// Colour tables (stdout is a terminal).
    pub color: bool,
    /// Draw a progress bar (stderr is a terminal and `--no-progress` was not given).
    pub progress: bool,
    /// Fit tables to this width (stdout is a terminal of this width and `--wide` was not
    /// given); `None`: the full tables.
    pub width: Option<usize>,
}

impl Io<'_> {
    /// How tables are drawn for this output.
    pub fn look(&self) -> crate::report::Look {
        crate::report::Look {
            color: self.color,
            width: self.width,
        }
    }
}

/// What the edge knows about the process: the environment, the controller's own path, the
/// open-files limit, today.
pub struct Context {
    pub env: Environment,
    pub controller_exe: Option<PathBuf>,
    pub open_files: Option<u64>,
    pub today: Date,
    pub shutdown: Shutdown,
}

impl Io<'_> {
    fn error(&mut self, code: u8, message: impl std::fmt::Display) -> u8 {
        let _ = writeln!(self.err, "error: {message}");
        code
    }
}

fn load_inventory(path: &Path, cx: &Context) -> Result<Inventory, String> {
    Inventory::load(path, cx.env.user_known_hosts().as_deref()).map_err(|e| e.to_string())
}

fn load_catalog(path: Option<&Path>) -> Result<Catalog, String> {
    match path {
        Some(p) => Catalog::load(p).map_err(|e| e.to_string()),
        None => Ok(Catalog::embedded()),
    }
}

/// The hosts `--host` and `--tenant` select (all when neither is given).
pub fn select_hosts<'a>(
    inventory: &'a Inventory,
    hosts: &[String],
    tenants: &[String],
) -> Result<Vec<&'a Host>, String> {
    let host_names: Vec<&str> = inventory.hosts().map(|h| h.name.as_str()).collect();
    for name in hosts {
        if !host_names.contains(&name.as_str()) {
            return Err(format!(
                "--host {name}: no such host in {}{}",
                inventory.path.display(),
                did_you_mean(name, &host_names)
            ));
        }
    }
    let tenant_names: Vec<&str> = inventory.tenants.iter().map(|t| t.name.as_str()).collect();
    for name in tenants {
        if !tenant_names.contains(&name.as_str()) {
            return Err(format!(
                "--tenant {name}: no such tenant in {}{}",
                inventory.path.display(),
                did_you_mean(name, &tenant_names)
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

/// "; did you mean …?" with up to three of `names` closest to `name` (by Jaro-Winkler, or
/// containing it), else nothing.
fn did_you_mean(name: &str, names: &[&str]) -> String {
    let lower = name.to_lowercase();
    let mut scored: Vec<(f64, &str)> = names
        .iter()
        .map(|n| {
            let contains = n.to_lowercase().contains(&lower);
            let score = strsim::jaro_winkler(&lower, &n.to_lowercase());
            (if contains { score.max(0.9) } else { score }, *n)
        })
        .filter(|(score, _)| *score > 0.8)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let best: Vec<&str> = scored.iter().take(3).map(|(_, n)| *n).collect();
    if best.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", best.join(", "))
    }
}

fn discover_agents(agent_dir: Option<&Path>, cx: &Context) -> Result<AgentBuilds, String> {
    let agents = AgentBuilds::discover(cx.controller_exe.as_deref(), agent_dir);
    if agents.linux.is_none() && agents.windows.is_none() {
        return Err("no agent build found: run `cargo build --release` (and for Windows hosts `cargo build --release -p ecfleet-agent --target x86_64-pc-windows-gnu`), or give --agent-dir".into());
    }
    Ok(agents)
}

/// An event sink drawing a progress bar on stderr while the engine runs (or none), and the
/// task that draws it.
/// What a fleet command has once its inputs are read: how many hosts at once, the selected
/// hosts, a connector with the agent builds, and the reporters of its events.
pub(super) struct Fleet<'a> {
    pub concurrency: usize,
    pub selected: Vec<&'a Host>,
    pub connector: crate::session::Connector,
    pub reporters: Reporters,
}

/// Resolves a fleet command's common flags against its inventory; an error carries its exit
/// code.
pub(super) fn fleet<'a>(
    args: &crate::cli::FleetArgs,
    inventory: &'a Inventory,
    cx: &Context,
    io: &mut Io<'_>,
) -> Result<Fleet<'a>, (u8, String)> {
    let input = |e: String| (exit::audit::INVALID_INPUT, e);
    let (concurrency, warning) = crate::settings::concurrency(
        args.concurrency,
        cx.env.concurrency.as_deref(),
        inventory.concurrency,
        cx.open_files,
    )
    .map_err(input)?;
    if let Some(w) = warning {
        let _ = writeln!(io.err, "warning: {w}");
    }
    let selected = select_hosts(inventory, &args.hosts, &args.tenants).map_err(input)?;
    let agents =
        discover_agents(args.agent_dir.as_deref(), cx).map_err(|e| (exit::audit::FAILURE, e))?;
    let reporters = reporters(io, args.events.as_deref()).map_err(input)?;
    Ok(Fleet {
        concurrency,
        selected,
        connector: crate::session::Connector::new(
            crate::transport::Connector::new(args.accept_new_host_keys),
            agents,
        ),
        reporters,
    })
}

/// The reporters of a fleet command's engine events: the progress bar (on a terminal) and,
/// with `--events FILE`, JSON Lines. Finishing drops the sink and waits for them to drain.
pub(super) struct Reporters {
    sink: EventSink,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Reporters {
    pub(super) fn sink(&self) -> &EventSink {
        &self.sink
    }

    /// Also prints notices (operator instructions) on stderr when no progress bar does.
    pub(super) fn with_notices(mut self, io: &Io<'_>) -> Self {
        if !io.progress {
            self.tasks.push(tokio::spawn(progress::notices(
                self.sink.add(),
                std::io::stderr(),
            )));
        }
        self
    }

    /// Also records events in line (the run's journal on the share).
    pub(super) fn with_journal(mut self, journal: crate::engine::events::Journal) -> Self {
        self.sink.add_journal(journal);
        self
    }

    pub(super) async fn finish(self) {
        drop(self.sink);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Starts the reporters; an events file that cannot be created is an error naming it.
fn reporters(io: &Io<'_>, events: Option<&Path>) -> Result<Reporters, String> {
    let mut sink = EventSink::none();
    let mut tasks = Vec::new();
    if let Some(path) = events {
        let out: Box<dyn Write + Send> = if path == Path::new("-") {
            Box::new(std::io::stderr())
        } else {
            let file = std::fs::File::create(path).map_err(|e| {
                format!(
                    "--events {}: cannot create the events file: {e}",
                    path.display()
                )
            })?;
            Box::new(std::io::BufWriter::new(file))
        };
        tasks.push(tokio::spawn(progress::json_lines(sink.add(), out)));
    }
    if io.progress {
        tasks.push(tokio::spawn(progress::draw(sink.add())));
    }
    Ok(Reporters { sink, tasks })
}

/// `inventory check`: the inventory is valid (with warnings about files that will not be read),
/// or every error with its line.
pub fn inventory_check(path: &Path, cx: &Context, io: &mut Io<'_>) -> u8 {
    match Inventory::load(path, cx.env.user_known_hosts().as_deref()) {
        Ok(inv) => {
            for w in inv.warnings() {
                let _ = writeln!(io.err, "warning: {w}");
            }
            let _ = writeln!(
                io.out,
                "{}: ok ({}, {})",
                path.display(),
                crate::report::count(inv.tenants.len(), "tenant"),
                crate::report::count(inv.host_count(), "host")
            );
            exit::audit::OK
        }
        Err(errors) => {
            let _ = writeln!(io.err, "{errors}");
            exit::audit::INVALID_INPUT
        }
    }
}

/// A path relative to the working directory when it is under it, for messages.
fn relative(p: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|d| p.strip_prefix(d).ok().map(|r| r.display().to_string()))
        .unwrap_or_else(|| p.display().to_string())
}

/// 130 once the run detached (a second Ctrl-C), else `code`.
fn unless_detached(shutdown: &Shutdown, code: u8) -> u8 {
    if shutdown.level() == Level::Detach {
        exit::INTERRUPTED
    } else {
        code
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_misspelt_name_gets_the_nearest_names() {
        let names = ["t01-current", "t02-behind", "t02-staging", "tenant09-ec"];
        assert_eq!(
            super::did_you_mean("t02-behnd", &names),
            "; did you mean t02-behind?"
        );
        assert!(super::did_you_mean("staging", &names).contains("t02-staging"));
        assert_eq!(super::did_you_mean("zzzz", &names), "");
    }
}
