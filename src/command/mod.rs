//! The commands' workflows, between the command line and the library: the fleet opened one way
//! ([`fleet`]: inventory, selection, settings, share, agents, reporters), the work run on the
//! engine, the report rendered. Each returns the exit code ([`crate::exit`]) and writes only to the [`Io`] it is
//! given, so it is tested without spawning the binary.

pub mod audit;
pub mod backup;
pub mod fleet;
pub mod install;
pub mod lab;
pub mod merge;
pub mod plan;
pub mod report;
pub mod run;
pub mod stage;

use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::civil::Date;

use crate::engine::{Level, Shutdown};
use crate::exit;
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

/// `inventory check`: the inventory is valid (with warnings about files that will not be read),
/// or every error with its line.
pub fn inventory_check(path: &Path, cx: &Context, io: &mut Io<'_>) -> u8 {
    match fleet::inventory(path, cx) {
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
            exit::OK
        }
        Err(refusal) => refusal.say(io),
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

/// Writes a `--metrics` file whole (docs/monitoring.md); a file that cannot be written is the
/// controller's failure, said with the fix.
pub(crate) fn write_metrics(path: &std::path::Path, text: &str) -> Result<(), fleet::Refusal> {
    crate::report::metrics::write_atomically(path, text).map_err(|e| {
        fleet::Refusal::failure(format!(
            "cannot write the metrics file {}: {e} (its folder must exist and be writable)",
            path.display()
        ))
    })
}
