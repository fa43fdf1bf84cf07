//! Rendering results for people and machines: tables (comfy-table), JSON and CSV, always into
//! a writer so tests render into a `Vec<u8>`. stdout gets results; progress goes elsewhere.

mod audit;
mod backup;
mod backup_verify;
pub mod fit;
pub mod html;
pub mod live;
pub mod metrics;
pub mod nagios;
mod plan;
pub mod progress;
mod run_report;
pub mod sanitize;
mod stage;

pub use audit::{AuditFormat, render_audit};
pub use backup::{BackupFormat, render_backup};
pub use backup_verify::render_backup_verify;
pub use plan::{PlanFormat, render_plan};
pub use run_report::render_run;
pub use stage::render_stage;

/// How tables are drawn: in colour (stdout is a terminal), and fitted to a width (a terminal
/// without `--wide`: at most three lines per host, [`fit`]). Piped output, or `--wide`, gets the
/// full tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Look {
    pub color: bool,
    pub width: Option<usize>,
}

impl Look {
    /// Full tables, no colour: what a pipe gets.
    pub fn plain() -> Look {
        Look::default()
    }
}

/// A report as pretty JSON and a newline: every command's `--format json`.
/// `n` of `noun` in words: "1 host", "3 hosts", "0 hosts".
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn write_json(out: &mut dyn std::io::Write, report: &impl serde::Serialize) -> std::io::Result<()> {
    // Buffered: stdout is line-buffered, and a pretty report is a line per field (220,000
    // writes for a 1,000-host audit, measured; one per 8 KiB now).
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(64 << 10, out);
    serde_json::to_writer_pretty(&mut out, report).map_err(std::io::Error::other)?;
    writeln!(out)?;
    out.flush()
}

/// A table cell holding text that may come from a host: control characters escaped.
fn cell(text: impl AsRef<str>) -> comfy_table::Cell {
    comfy_table::Cell::new(sanitize::terminal_safe(text.as_ref()))
}

/// A table in the house style; without `color` it stays plain even on a terminal.
fn new_table(color: bool) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    if !color {
        t.force_no_tty();
    }
    t
}

#[cfg(test)]
mod snapshots;
