//! The backup report as a table (per host: the backup's name and size, what drifted since the
//! previous one, what retention removed) or JSON (the documented contract,
//! docs/json-output.md).

use std::io::{self, Write};

use comfy_table::Color;

use crate::backup::{BackupReport, HostBackup};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupFormat {
    Table,
    Json,
}

pub fn render_backup(
    report: &BackupReport,
    format: BackupFormat,
    look: super::Look,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        BackupFormat::Json => super::write_json(out, report),
        BackupFormat::Table => match look.width {
            Some(w) => fitted(report, w, out),
            None => table(report, look.color, out),
        },
    }
}

/// The backups fitted to `width` columns.
fn fitted(report: &BackupReport, width: usize, out: &mut dyn Write) -> io::Result<()> {
    use super::fit::Col;
    let cols = [
        Col::new("host", 22),
        Col::new("backup", 14),
        Col::new("tenant · name · since the previous one · notes", 0),
    ];
    let rows: Vec<Vec<String>> = report
        .hosts
        .iter()
        .map(|h| {
            let total: u64 = h.files.iter().map(|f| f.size).sum();
            let mut parts = vec![h.tenant.clone()];
            let verdict = match (&h.backup, &h.error) {
                (Some(name), _) => {
                    parts.push(name.clone());
                    parts.push(drift_cell(h));
                    format!("ok, {}", size(total))
                }
                (None, Some(e)) => {
                    parts.push(e.clone());
                    "FAILED".to_string()
                }
                (None, None) => "-".to_string(),
            };
            let notes = notes_cell(h);
            if notes != "-" {
                parts.push(notes);
            }
            vec![h.host.clone(), verdict, parts.join(" · ")]
        })
        .collect();
    let mut under = Vec::new();
    summary(report, &mut under)?;
    super::fit::write_fitted(out, &cols, rows, width, &under)
}

pub(super) fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn backup_cell(h: &HostBackup) -> String {
    match (&h.backup, &h.error) {
        (Some(name), _) => {
            let total: u64 = h.files.iter().map(|f| f.size).sum();
            format!("{name} ({}, verified)", size(total))
        }
        (None, Some(e)) => format!("FAILED: {e}"),
        (None, None) => "-".into(),
    }
}

fn drift_cell(h: &HostBackup) -> String {
    if !h.ok {
        return "-".into();
    }
    match &h.drift {
        None => "first backup".into(),
        Some(d) if d.is_empty() => "no change".into(),
        Some(d) if !d.changes_configuration() => format!(
            "no configuration change (an upgrade: {})",
            d.lines().join("; ")
        ),
        Some(d) => d.lines().join("\n"),
    }
}

fn notes_cell(h: &HostBackup) -> String {
    let mut notes: Vec<String> = h.warnings.clone();
    if !h.removed.is_empty() {
        notes.push(format!("retention removed {}", h.removed.join(", ")));
    }
    if notes.is_empty() {
        "-".into()
    } else {
        notes.join("\n")
    }
}

fn table(report: &BackupReport, color: bool, out: &mut dyn Write) -> io::Result<()> {
    let mut t = super::new_table(color);
    t.set_header(vec![
        "tenant",
        "host",
        "backup",
        "since the previous backup",
        "notes",
    ]);
    for h in &report.hosts {
        let tint = match (color, h.ok, h.drift.as_ref().is_some_and(|d| !d.is_empty())) {
            (false, _, _) => None,
            (true, false, _) => Some(Color::Red),
            (true, true, true) => Some(Color::Yellow),
            (true, true, false) => Some(Color::Green),
        };
        let host = match tint {
            Some(c) => super::cell(&h.host).fg(c),
            None => super::cell(&h.host),
        };
        t.add_row(vec![
            super::cell(&h.tenant),
            host,
            super::cell(backup_cell(h)),
            super::cell(drift_cell(h)),
            super::cell(notes_cell(h)),
        ]);
    }
    writeln!(out, "{t}")?;
    summary(report, out)
}

/// The line under the backups: the counts.
fn summary(report: &BackupReport, out: &mut dyn Write) -> io::Result<()> {
    let s = &report.summary;
    writeln!(
        out,
        "{}: {} backed up and verified on {}, {} failed; {} with configuration drift",
        super::count(s.hosts, "host"),
        s.backed_up,
        report.share,
        s.failed,
        s.drifted
    )?;
    if s.reused_bytes > 0 {
        writeln!(
            out,
            "{} new on the share; {} unchanged since the hosts' previous backups, kept once",
            size(s.new_bytes),
            size(s.reused_bytes)
        )?;
    }
    Ok(())
}
