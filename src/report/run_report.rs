//! The run report as a table (per host: role, from → to, each phase's outcome and time, the
//! backup, what is left to do) or JSON (docs/json-output.md). `ecfleet run` prints it at the
//! end; the same document is the ledger's `summary.json`.

use std::io::{self, Write};

use comfy_table::Color;

use crate::run::{HostOutcome, HostRecord, RunReport};

pub fn render_run(
    report: &RunReport,
    json: bool,
    color: bool,
    out: &mut dyn Write,
) -> io::Result<()> {
    if json {
        return super::write_json(out, report);
    }
    let mut t = super::new_table(color);
    t.set_header(vec![
        "tenant",
        "host",
        "role",
        "from → to",
        "outcome",
        "phases",
        "backup / notes",
    ]);
    for h in &report.hosts {
        let c = match h.outcome {
            HostOutcome::Verified => Some(Color::Green),
            HostOutcome::Untouched => None,
            HostOutcome::Deferred
            | HostOutcome::Skipped
            | HostOutcome::Interrupted
            | HostOutcome::Locked
            | HostOutcome::InProgress
            | HostOutcome::SyncPending => Some(Color::Yellow),
            _ => Some(Color::Red),
        };
        let outcome = super::cell(h.outcome.as_str());
        t.add_row(vec![
            super::cell(&h.tenant),
            super::cell(&h.host),
            super::cell(h.role.to_string()),
            super::cell(format!(
                "{} → {}",
                h.from.as_deref().unwrap_or("?"),
                h.to.as_deref().unwrap_or("-")
            )),
            match (color, c) {
                (true, Some(c)) => outcome.fg(c),
                _ => outcome,
            },
            super::cell(phases(h)),
            super::cell(notes(h)),
        ]);
    }
    writeln!(out, "{t}")?;
    let s = &report.summary;
    writeln!(
        out,
        "run {}: {}: {} verified on {}, {} failed, {} waiting, {} not touched{}; ledger {}",
        report.run_id,
        super::count(s.hosts, "host"),
        s.verified,
        report.target,
        s.failed,
        s.waiting,
        s.untouched,
        if s.sync_pending > 0 {
            format!(
                ", {} sync pending (re-check with ecfleet run --resume {})",
                s.sync_pending, report.run_id
            )
        } else {
            String::new()
        },
        report.ledger
    )?;
    if let Some(p) = &report.in_progress {
        writeln!(out, "run {}: {p}", report.run_id)?;
    }
    for e in &report.ledger_errors {
        writeln!(out, "warning: ledger: {e}")?;
    }
    Ok(())
}

fn seconds(start: &str, end: Option<&String>) -> Option<i64> {
    let a: jiff::Timestamp = start.parse().ok()?;
    let b: jiff::Timestamp = end?.parse().ok()?;
    Some(b.duration_since(a).as_secs())
}

fn phases(h: &HostRecord) -> String {
    if h.phases.is_empty() {
        return "-".into();
    }
    h.phases
        .iter()
        .map(|p| {
            let took = seconds(&p.started_at, p.ended_at.as_ref())
                .map(|s| format!(" {s}s"))
                .unwrap_or_default();
            format!("{} {}{took}", p.phase, p.outcome.as_deref().unwrap_or("…"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn notes(h: &HostRecord) -> String {
    let mut lines = Vec::new();
    // The backup's name; its folder on the share is in the JSON and the ledger.
    if let Some(b) = &h.backup {
        let name = b.rsplit(['/', '\\']).next().unwrap_or(b);
        lines.push(format!("backup: {name}"));
    }
    if h.outcome != HostOutcome::Verified {
        lines.push(h.message.clone());
    }
    if h.outcome == HostOutcome::OperatorTimeout {
        lines.push(
            "the upgrade may be half done: check the wizard on the host; the schema may be half-migrated; restore from the backup above if needed".into(),
        );
    }
    lines.join("\n")
}
