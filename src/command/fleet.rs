//! The one way into the fleet for every command: the inventory read and validated, the flags
//! every fleet command shares (`--host`, `--tenant`, `--as-of`, `--catalog`, `--concurrency`)
//! resolved once against it and the environment, the share each command needs, the agent
//! builds (found only by commands that reach hosts), and the reporters of the engine's events.
//! A command that cannot start gets a [`Refusal`] with its exit code ([`crate::exit`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::civil::Date;

use super::{Context, Io};
use crate::catalog::Catalog;
use crate::cli::FleetArgs;
use crate::engine::EventSink;
use crate::exit;
use crate::inventory::{Host, Inventory};
use crate::report::progress;
use crate::session::{AgentBuilds, Connector};

/// Why a command stopped before touching a host: its exit code and what to print (whole lines,
/// each starting `error: `).
#[derive(Debug)]
pub struct Refusal {
    pub code: u8,
    pub text: String,
}

impl Refusal {
    /// Invalid input (3): an inventory, flag, file or selection that cannot be used as given.
    pub fn input(message: impl std::fmt::Display) -> Refusal {
        Refusal {
            code: exit::INVALID_INPUT,
            text: format!("error: {message}"),
        }
    }

    /// The controller itself failed (4): no agent build, a file it cannot write.
    pub fn failure(message: impl std::fmt::Display) -> Refusal {
        Refusal {
            code: exit::FAILURE,
            text: format!("error: {message}"),
        }
    }

    /// Printed on stderr; returns the exit code.
    pub fn say(self, io: &mut Io<'_>) -> u8 {
        let _ = writeln!(io.err, "{}", self.text);
        self.code
    }
}

/// The older form of a refusal (code, message), as the run's helpers return it.
impl From<(u8, String)> for Refusal {
    fn from((code, message): (u8, String)) -> Refusal {
        Refusal {
            code,
            text: format!("error: {message}"),
        }
    }
}

/// The inventory `path`, read and validated (with the share checked: it exists and this
/// account can write to it), or every error with its line.
pub fn inventory(path: &Path, cx: &Context) -> Result<Inventory, Refusal> {
    Inventory::load(path, cx.env.user_known_hosts().as_deref()).map_err(|errors| Refusal {
        code: exit::INVALID_INPUT,
        text: errors.to_string(),
    })
}

/// The share of `inventory`, which `needs` it (e.g. "backups go to the central share").
pub fn share(inventory: &Inventory, needs: &str) -> Result<PathBuf, Refusal> {
    inventory.share.clone().ok_or_else(|| {
        Refusal::input(format!(
            "{}: {needs}, and the inventory names none: add [share] path = \"/mnt/ecfleet-share\"",
            inventory.path.display()
        ))
    })
}

/// A fleet command's inputs, resolved once.
pub struct Fleet<'a> {
    args: &'a FleetArgs,
    pub inventory: Inventory,
    /// Which of the inventory's hosts (in its order) were selected.
    selected: Vec<bool>,
    /// Hosts worked on at once.
    pub concurrency: usize,
    /// The date support and deadlines are judged for.
    pub as_of: Date,
    pub catalog: Catalog,
}

impl<'a> Fleet<'a> {
    /// Reads the inventory and resolves the common flags; warnings (what in the inventory will
    /// bite at run time, a concurrency above the open-files limit) go to stderr.
    pub fn open(args: &'a FleetArgs, cx: &Context, io: &mut Io<'_>) -> Result<Self, Refusal> {
        let inventory = inventory(&args.inventory, cx)?;
        for w in inventory.warnings() {
            let _ = writeln!(io.err, "warning: {w}");
        }
        let as_of =
            crate::settings::as_of(args.as_of.as_deref(), cx.today).map_err(Refusal::input)?;
        let catalog = match &args.catalog {
            Some(p) => Catalog::load(p).map_err(Refusal::input)?,
            None => Catalog::embedded(),
        };
        let (concurrency, warning) = crate::settings::concurrency(
            args.concurrency,
            cx.env.concurrency.as_deref(),
            inventory.concurrency,
            cx.open_files,
        )
        .map_err(Refusal::input)?;
        if let Some(w) = warning {
            let _ = writeln!(io.err, "warning: {w}");
        }
        let mut selected =
            select(&inventory, &args.hosts, &args.tenants).map_err(Refusal::input)?;
        if let Some(shard) = args.shard {
            for (h, on) in inventory.hosts().zip(selected.iter_mut()) {
                *on = *on && shard.holds(&h.tenant);
            }
        }
        Ok(Fleet {
            args,
            inventory,
            selected,
            concurrency,
            as_of,
            catalog,
        })
    }

    /// The selected hosts, in the inventory's order.
    pub fn selected(&self) -> Vec<&Host> {
        self.inventory
            .hosts()
            .zip(&self.selected)
            .filter_map(|(h, on)| on.then_some(h))
            .collect()
    }

    /// Narrows the selection to the hosts `keep` accepts (`stage --plan`).
    pub fn narrow(&mut self, keep: impl Fn(&Host) -> bool) {
        for (h, on) in self.inventory.hosts().zip(self.selected.iter_mut()) {
            *on = *on && keep(h);
        }
    }

    /// Neither `--host`, `--tenant` nor `--shard` was given: the whole inventory.
    pub fn whole(&self) -> bool {
        self.args.hosts.is_empty() && self.args.tenants.is_empty() && self.args.shard.is_none()
    }

    /// `--shard`, if given.
    pub fn shard(&self) -> Option<crate::shard::Shard> {
        self.args.shard
    }

    /// The share, which the command `needs` ([`share`]).
    pub fn share(&self, needs: &str) -> Result<PathBuf, Refusal> {
        share(&self.inventory, needs)
    }

    /// A connector to the hosts, with the agent builds to push (found now: a command that
    /// reaches no host never needs them).
    pub fn connector(&self, cx: &Context) -> Result<Connector, Refusal> {
        let agents =
            AgentBuilds::discover(cx.controller_exe.as_deref(), self.args.agent_dir.as_deref());
        if agents.linux.is_none() && agents.windows.is_none() {
            return Err(Refusal::failure(
                "no agent build found: run `cargo build --release` (and for Windows hosts `cargo build --release -p ecfleet-agent --target x86_64-pc-windows-gnu`), or give --agent-dir",
            ));
        }
        Ok(Connector::new(
            crate::transport::Connector::new(self.args.accept_new_host_keys),
            agents,
        ))
    }

    /// The reporters of the engine's events: the progress bar (on a terminal) and, with
    /// `--events FILE`, JSON Lines.
    pub fn reporters(&self, io: &Io<'_>) -> Result<Reporters, Refusal> {
        Reporters::start(io, self.args.events.as_deref()).map_err(Refusal::input)
    }
}

/// Which hosts `--host` and `--tenant` select (all when neither is given), one flag per host of
/// the inventory in its order; a name that does not exist is an error with the nearest names.
fn select(
    inventory: &Inventory,
    hosts: &[String],
    tenants: &[String],
) -> Result<Vec<bool>, String> {
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
        .map(|h| {
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

/// The reporters of a fleet command's engine events: the progress bar (on a terminal) and,
/// with `--events FILE`, JSON Lines. Finishing drops the sink and waits for them to drain.
pub struct Reporters {
    sink: EventSink,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Reporters {
    /// Starts them; an events file that cannot be created is an error naming it.
    pub fn start(io: &Io<'_>, events: Option<&Path>) -> Result<Reporters, String> {
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

    pub fn sink(&self) -> &EventSink {
        &self.sink
    }

    /// Also prints notices (operator instructions) on stderr when no progress bar does.
    pub fn with_notices(mut self, io: &Io<'_>) -> Self {
        if !io.progress {
            self.tasks.push(tokio::spawn(progress::notices(
                self.sink.add(),
                std::io::stderr(),
            )));
        }
        self
    }

    /// Also records events in line (the run's journal on the share).
    pub fn with_journal(mut self, journal: crate::engine::events::Journal) -> Self {
        self.sink.add_journal(journal);
        self
    }

    pub async fn finish(self) {
        drop(self.sink);
        for task in self.tasks {
            let _ = task.await;
        }
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
