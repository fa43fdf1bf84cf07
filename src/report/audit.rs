//! The audit report as a table, JSON (the documented contract) or CSV (one row per host).

use std::io::{self, Write};

use comfy_table::{Cell, Color};

use crate::audit::{AuditReport, HostAudit, Severity};
use crate::catalog::SupportStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditFormat {
    Table,
    Json,
    Csv,
}

pub fn render_audit(
    report: &AuditReport,
    format: AuditFormat,
    look: super::Look,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        AuditFormat::Json => super::write_json(out, report),
        AuditFormat::Csv => csv(report, out),
        AuditFormat::Table => match look.width {
            Some(w) => fitted(report, w, out),
            None => table(report, look.color, out),
        },
    }
}

/// The findings with their severity in words ("critical: os-too-old; warning: …"), and the
/// sync state when it is not healthy: for a table that has no colour to say it.
fn findings_text(h: &HostAudit) -> String {
    if let Some(e) = &h.error {
        return format!("UNREACHABLE: {e}");
    }
    let mut parts = Vec::new();
    for (severity, word) in [
        (Severity::Critical, "critical"),
        (Severity::Warning, "warning"),
    ] {
        // One entry per code; a code found on several subjects (two connectors) names them.
        let mut codes: Vec<String> = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for f in h.findings.iter().filter(|f| f.severity == severity) {
            if seen.contains(&f.code.as_str()) {
                continue;
            }
            seen.push(&f.code);
            let subjects: Vec<&str> = h
                .findings
                .iter()
                .filter(|g| g.severity == severity && g.code == f.code)
                .filter_map(|g| g.subject.as_deref())
                .collect();
            codes.push(if subjects.len() > 1 {
                format!("{} ({})", f.code, subjects.join(", "))
            } else {
                f.code.clone()
            });
        }
        if !codes.is_empty() {
            parts.push(format!("{word}: {}", codes.join(", ")));
        }
    }
    if parts.is_empty() {
        "ok".into()
    } else {
        parts.join("; ")
    }
}

/// The audit fitted to `width` columns.
fn fitted(report: &AuditReport, width: usize, out: &mut dyn Write) -> io::Result<()> {
    use super::fit::Col;
    let cols = [
        Col::new("tenant", 14),
        Col::new("host", 22),
        Col::new("version", 20),
        Col::new("sync", 10),
        Col::new("findings", 0),
    ];
    let rows: Vec<Vec<String>> = report
        .hosts
        .iter()
        .map(|h| {
            vec![
                h.tenant.clone(),
                h.host.clone(),
                version_cell(h),
                if h.reachable {
                    h.sync.as_str().to_string()
                } else {
                    "-".into()
                },
                findings_text(h),
            ]
        })
        .collect();
    let mut under = Vec::new();
    summary(report, &mut under)?;
    super::fit::write_fitted(out, &cols, rows, width, &under)
}

fn version_cell(h: &HostAudit) -> String {
    match (&h.version.product, &h.version.config) {
        (Some(p), Some(c)) if p == c => p.clone(),
        (Some(p), Some(c)) => format!("{p} / config {c}"),
        (Some(p), None) => p.clone(),
        (None, Some(c)) => format!("config {c}"),
        (None, None) => "-".into(),
    }
}

fn support_cell(h: &HostAudit) -> String {
    match (h.support.status, h.support.end_of_support) {
        (Some(SupportStatus::Supported), Some(d)) => format!("supported (to {d})"),
        (Some(s), Some(d)) => format!("{} ({d})", s.as_str()),
        (Some(s), None) => s.as_str().to_string(),
        (None, _) => "-".into(),
    }
}

const PREREQ_CODES: &[(&str, &str)] = &[
    ("os-too-old", "OS"),
    ("server-core", "Server Core"),
    ("dotnet-too-old", ".NET"),
    ("tls12-not-enforced", "TLS 1.2"),
    ("disk-low", "disk"),
    ("wizard-open", "wizard open"),
    ("sync-service-manager-open", "SSM open"),
];

fn prereq_cell(h: &HostAudit) -> String {
    if !h.reachable {
        return "-".into();
    }
    let problems: Vec<&str> = PREREQ_CODES
        .iter()
        .filter(|(code, _)| h.findings.iter().any(|f| f.code == *code))
        .map(|(_, label)| *label)
        .collect();
    if problems.is_empty() {
        "ok".into()
    } else {
        problems.join(", ")
    }
}

fn table(report: &AuditReport, color: bool, out: &mut dyn Write) -> io::Result<()> {
    let mut t = super::new_table(color);
    t.set_header(vec![
        "tenant",
        "host",
        "role",
        "version",
        "support",
        "prerequisites",
        "sync",
        "findings",
    ]);
    for h in &report.hosts {
        let tint = |cell: Cell, c: Option<Color>| match (color, c) {
            (true, Some(c)) => cell.fg(c),
            _ => cell,
        };
        let worst = if h.reachable {
            h.worst_severity()
        } else {
            Some(Severity::Critical)
        };
        let c = match worst {
            Some(Severity::Critical) => Some(Color::Red),
            Some(Severity::Warning) => Some(Color::Yellow),
            _ => Some(Color::Green),
        };
        t.add_row(vec![
            super::cell(&h.tenant),
            tint(super::cell(&h.host), c),
            super::cell(h.role.to_string()),
            super::cell(version_cell(h)),
            super::cell(support_cell(h)),
            super::cell(prereq_cell(h)),
            super::cell(if h.reachable { h.sync.as_str() } else { "-" }),
            tint(super::cell(findings_text(h)), c),
        ]);
    }
    writeln!(out, "{t}")?;
    summary(report, out)
}

/// The lines under the audit table: the counts and what changed since the last audit.
fn summary(report: &AuditReport, out: &mut dyn Write) -> io::Result<()> {
    let s = &report.summary;
    writeln!(
        out,
        "{}: {} reachable, {} unreachable; findings: {} critical, {} warning, {} info (as of {}, catalog checked {})",
        super::count(s.hosts, "host"),
        s.reachable,
        s.unreachable,
        s.critical,
        s.warning,
        s.info,
        report.as_of,
        report.catalog.checked_on
    )?;
    if let Some(c) = &report.changes {
        if c.hosts.is_empty() && c.removed_hosts.is_empty() {
            writeln!(out, "no changes since the last audit ({})", c.since)?;
        } else {
            writeln!(out, "since the last audit ({}):", c.since)?;
            for h in &c.hosts {
                writeln!(
                    out,
                    "  {} ({}): {}",
                    h.host,
                    h.tenant,
                    super::sanitize::terminal_safe(&h.summary())
                )?;
            }
            for gone in &c.removed_hosts {
                writeln!(out, "  {gone}: no longer in the inventory")?;
            }
        }
    }
    Ok(())
}

fn csv(report: &AuditReport, out: &mut dyn Write) -> io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let header = [
        "tenant",
        "host",
        "role",
        "address",
        "reachable",
        "error",
        "version_product",
        "version_config",
        "support_status",
        "end_of_support",
        "os",
        "sync",
        "critical",
        "warning",
        "finding_codes",
    ];
    w.write_record(header).map_err(io::Error::other)?;
    let safe = |s: &str| super::sanitize::csv_safe(s).into_owned();
    for h in &report.hosts {
        let count = |s: Severity| {
            h.findings
                .iter()
                .filter(|f| f.severity == s)
                .count()
                .to_string()
        };
        let codes: Vec<&str> = h.findings.iter().map(|f| f.code.as_str()).collect();
        let record = [
            h.tenant.clone(),
            h.host.clone(),
            h.role.to_string(),
            h.address.clone(),
            (if h.reachable { "true" } else { "false" }).to_string(),
            h.error.clone().unwrap_or_default(),
            h.version.product.clone().unwrap_or_default(),
            h.version.config.clone().unwrap_or_default(),
            h.support
                .status
                .map(|s| s.as_str())
                .unwrap_or("")
                .to_string(),
            h.support
                .end_of_support
                .map(|d| d.to_string())
                .unwrap_or_default(),
            h.os.clone().unwrap_or_default(),
            h.sync.clone(),
            count(Severity::Critical),
            count(Severity::Warning),
            codes.join(";"),
        ];
        w.write_record(record.iter().map(|c| safe(c)))
            .map_err(io::Error::other)?;
    }
    w.flush()
}
