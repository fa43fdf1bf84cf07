//! The run report as a table (per host: role, from → to, each phase's outcome and time, the
//! backup, what is left to do) or JSON (docs/json-output.md). `ecfleet run` prints it at the
//! end; the same document is the ledger's `summary.json`.

use std::io::{self, Write};

use comfy_table::Color;

use crate::run::{HostOutcome, HostRecord, RunReport};

pub fn render_run(
    report: &RunReport,
    json: bool,
    look: super::Look,
    out: &mut dyn Write,
) -> io::Result<()> {
    if json {
        return super::write_json(out, report);
    }
    if let Some(width) = look.width {
        return fitted(report, width, out);
    }
    let color = look.color;
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
    summary(report, out)
}

/// The run fitted to `width` columns: the host and its outcome, then in words its tenant, the
/// versions, the phases, why it ended so and its backup.
fn fitted(report: &RunReport, width: usize, out: &mut dyn Write) -> io::Result<()> {
    use super::fit::Col;
    let cols = [
        Col::new("host", 22),
        Col::new("outcome", 16),
        Col::new("tenant · from → to · phases · why", 0),
    ];
    let rows: Vec<Vec<String>> = report
        .hosts
        .iter()
        .map(|h| {
            let mut parts = vec![
                h.tenant.clone(),
                format!(
                    "{} → {}",
                    h.from.as_deref().unwrap_or("?"),
                    h.to.as_deref().unwrap_or("-")
                ),
            ];
            parts.extend(one_line_phases(h));
            if h.outcome != HostOutcome::Verified {
                parts.push(h.message.clone());
            }
            if let Some(b) = &h.backup {
                parts.push(format!(
                    "backup {}",
                    b.rsplit(['/', '\\']).next().unwrap_or(b)
                ));
            }
            [
                h.host.clone(),
                h.outcome.as_str().to_string(),
                parts.join(" · "),
            ]
            .to_vec()
        })
        .collect();
    let mut under = Vec::new();
    summary(report, &mut under)?;
    super::fit::write_fitted(out, &cols, rows, width, &under)
}

/// A host's phases in a few words: "5 phases ok in 31 min", or the phase that did not end
/// `ok` ("backup FAILED after 38s", "upgrade …" while open).
fn one_line_phases(h: &HostRecord) -> Option<String> {
    let short =
        |s: i64| super::live::short_duration(std::time::Duration::from_secs(s.max(0) as u64));
    let first = h.phases.first()?;
    match h.phases.iter().find(|p| p.outcome.as_deref() != Some("ok")) {
        Some(p) => Some(
            match (&p.outcome, seconds(&p.started_at, p.ended_at.as_ref())) {
                (Some(o), Some(t)) => {
                    format!("{} {} after {}", p.phase, o.to_ascii_uppercase(), short(t))
                }
                (Some(o), None) => format!("{} {}", p.phase, o.to_ascii_uppercase()),
                (None, _) => format!("{} …", p.phase),
            },
        ),
        None => {
            let last = h.phases.last()?;
            let total = seconds(&first.started_at, last.ended_at.as_ref());
            Some(format!(
                "{} ok{}",
                super::count(h.phases.len(), "phase"),
                total
                    .map(|t| format!(" in {}", short(t)))
                    .unwrap_or_default()
            ))
        }
    }
}

/// The lines under the run table: the counts, where the ledger is, what is in progress.
fn summary(report: &RunReport, out: &mut dyn Write) -> io::Result<()> {
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
