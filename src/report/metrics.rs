//! `--metrics FILE.prom` (audit, backup, run): a fleet job's numbers in Prometheus' text exposition format (0.0.4),
//! for node_exporter's and windows_exporter's textfile collectors (docs/monitoring.md). The file
//! is written whole or not at all: a temporary file in the same folder, then renamed over the
//! old one, so a collector never reads half of it. Label values from hosts are escaped as the
//! format says (backslash, double quote, newline) and stripped of other control characters.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::audit::AuditReport;
use crate::backup::BackupReport;
use crate::checks::Severity;
use crate::inventory::Role;
use crate::run::RunReport;

/// The longest label value written (a host's version string is the host's to choose).
const MAX_LABEL: usize = 128;

/// One metric family: its help, its type, its samples.
struct Family {
    name: String,
    help: String,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Family {
    fn gauge(name: impl Into<String>, help: impl Into<String>) -> Family {
        Family {
            name: name.into(),
            help: help.into(),
            samples: Vec::new(),
        }
    }

    fn add(&mut self, labels: Vec<(&'static str, String)>, value: f64) {
        self.samples.push((labels, value));
    }
}

/// The exposition text of `families` (families without samples are left out).
fn render(families: &[Family]) -> String {
    let mut out = String::new();
    for f in families.iter().filter(|f| !f.samples.is_empty()) {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} gauge", f.name);
        for (labels, value) in &f.samples {
            out.push_str(&f.name);
            if !labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{k}=\"{}\"", label_value(v));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", number(*value));
        }
    }
    out
}

/// A label value as the format wants it: `\\`, `\"` and `\n` escaped; other control
/// characters dropped; at most [`MAX_LABEL`] characters.
fn label_value(v: &str) -> String {
    let mut out = String::new();
    for c in v.chars().take(MAX_LABEL) {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn role(r: Role) -> &'static str {
    match r {
        Role::Active => "active",
        Role::Staging => "staging",
    }
}

/// Seconds since 1970 of an RFC 3339 time as the reports write it.
fn epoch(rfc3339: &str) -> Option<f64> {
    rfc3339
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond() as f64 / 1000.0)
}

/// The audit's numbers: per server its build, support days left, findings by severity,
/// whether it was reached and when; for the run, the hosts by state, the exit code and when.
///
/// `earlier`: for servers this audit did not reach, when an earlier audit on the share last did
/// (tenant, host, its `generated_at`), so that their last success does not vanish.
pub fn audit(report: &AuditReport, earlier: &[(String, String, String)]) -> String {
    let mut info = Family::gauge(
        "ecfleet_server_info",
        "An Entra Connect server and the build the audit read (always 1).",
    );
    let mut reachable = Family::gauge(
        "ecfleet_server_reachable",
        "1 when the last audit reached the server, 0 when it could not.",
    );
    let mut days_left = Family::gauge(
        "ecfleet_server_support_days_left",
        "Days until the server's build leaves support (negative: past it). Absent when the build or its end is unknown.",
    );
    let mut unsupported = Family::gauge(
        "ecfleet_server_unsupported",
        "1 when the server's build is unsupported, sync-stopped or recalled.",
    );
    let mut findings = Family::gauge(
        "ecfleet_server_findings",
        "Findings of the last audit by severity.",
    );
    let mut audited_at = Family::gauge(
        "ecfleet_server_last_audit_success_timestamp_seconds",
        "When the server was last audited successfully: this audit, or for a server it did not reach the newest audit on the share that did.",
    );
    for h in &report.hosts {
        let who = || vec![("tenant", h.tenant.clone()), ("host", h.host.clone())];
        reachable.add(who(), if h.reachable { 1.0 } else { 0.0 });
        if !h.reachable {
            let before = earlier
                .iter()
                .find(|(t, n, _)| *t == h.tenant && *n == h.host)
                .and_then(|(_, _, at)| epoch(at));
            if let Some(at) = before {
                audited_at.add(who(), at);
            }
            continue;
        }
        let mut labels = who();
        labels.push((
            "version",
            h.version
                .product
                .clone()
                .unwrap_or_else(|| "unknown".into()),
        ));
        labels.push(("role", role(h.role).into()));
        info.add(labels, 1.0);
        if let Some(end) = h.support.end_of_support
            && let Ok(span) = report.as_of.until(end)
        {
            days_left.add(who(), f64::from(span.get_days()));
        }
        let gone = matches!(
            h.support.status,
            Some(
                crate::catalog::SupportStatus::Unsupported
                    | crate::catalog::SupportStatus::SyncStopped
                    | crate::catalog::SupportStatus::Recalled
            )
        );
        unsupported.add(who(), if gone { 1.0 } else { 0.0 });
        for (severity, name) in [
            (Severity::Critical, "critical"),
            (Severity::Warning, "warning"),
            (Severity::Info, "info"),
        ] {
            let n = h.findings.iter().filter(|f| f.severity == severity).count();
            let mut labels = who();
            labels.push(("severity", name.into()));
            findings.add(labels, n as f64);
        }
        if let Some(at) = epoch(&report.generated_at) {
            audited_at.add(who(), at);
        }
    }
    let mut hosts = Family::gauge(
        "ecfleet_audit_hosts",
        "Servers in the last audit, by whether it reached them.",
    );
    hosts.add(
        vec![("state", "reachable".into())],
        report.summary.reachable as f64,
    );
    hosts.add(
        vec![("state", "unreachable".into())],
        report.summary.unreachable as f64,
    );
    let [code, finished] = ending(
        "audit",
        "0 fine, 1 findings, 2 servers not audited",
        report.exit_code(),
        &report.generated_at,
    );
    render(&[
        info,
        reachable,
        days_left,
        unsupported,
        findings,
        audited_at,
        hosts,
        code,
        finished,
    ])
}

/// The nightly backup's numbers: per server whether tonight's backup was stored and verified,
/// and when its newest complete backup on the share was made (`newest`: by tenant and host,
/// read from the share after the run, so a server that failed tonight shows its last good
/// one); for the run, the servers by result, the exit code and when.
pub fn backup(report: &BackupReport, newest: &[(String, String, Option<String>)]) -> String {
    let mut ok = Family::gauge(
        "ecfleet_server_backup_ok",
        "1 when tonight's backup of the server was stored on the share and verified, 0 when not.",
    );
    let mut last = Family::gauge(
        "ecfleet_server_last_backup_success_timestamp_seconds",
        "When the server's newest complete backup on the share was made.",
    );
    for h in &report.hosts {
        ok.add(
            vec![("tenant", h.tenant.clone()), ("host", h.host.clone())],
            if h.ok { 1.0 } else { 0.0 },
        );
    }
    for (tenant, host, created) in newest {
        if let Some(at) = created.as_deref().and_then(epoch) {
            last.add(vec![("tenant", tenant.clone()), ("host", host.clone())], at);
        }
    }
    let mut hosts = Family::gauge(
        "ecfleet_backup_hosts",
        "Servers in the last backup run, by result (drifted: configuration changed since the previous backup).",
    );
    for (state, n) in [
        ("backed_up", report.summary.backed_up),
        ("failed", report.summary.failed),
        ("drifted", report.summary.drifted),
    ] {
        hosts.add(vec![("state", state.into())], n as f64);
    }
    let [code, finished] = ending(
        "backup",
        "0 all backed up, 2 some not",
        report.exit_code(),
        &report.generated_at,
    );
    render(&[ok, last, hosts, code, finished])
}

/// An upgrade run's numbers: per server its outcome (one sample per server, the outcome as a
/// label), the servers by outcome, the exit code and when the run ended.
pub fn run(report: &RunReport) -> String {
    let mut outcome = Family::gauge(
        "ecfleet_run_server_outcome",
        "The server's outcome in the last upgrade run (always 1; the outcome is the label).",
    );
    for h in &report.hosts {
        outcome.add(
            vec![
                ("tenant", h.tenant.clone()),
                ("host", h.host.clone()),
                ("outcome", h.outcome.as_str().into()),
                ("run_id", report.run_id.clone()),
            ],
            1.0,
        );
    }
    let mut hosts = Family::gauge(
        "ecfleet_run_hosts",
        "Servers of the last upgrade run, by outcome.",
    );
    for (state, n) in [
        ("verified", report.summary.verified),
        ("failed", report.summary.failed),
        ("untouched", report.summary.untouched),
        ("waiting", report.summary.waiting),
        ("sync_pending", report.summary.sync_pending),
    ] {
        hosts.add(vec![("outcome", state.into())], n as f64);
    }
    let [code, finished] = ending(
        "run",
        "0 all verified, 1 some failed, 2 some waiting, 5 sync pending",
        report.exit_code(),
        &report.finished_at,
    );
    render(&[outcome, hosts, code, finished])
}

/// A job's last two families: its exit code (`what` says what the codes mean) and when it ran
/// (`ecfleet_<job>_exit_code`, `ecfleet_<job>_timestamp_seconds`).
fn ending(job: &str, what: &str, code: u8, when: &str) -> [Family; 2] {
    let mut exit = Family::gauge(
        format!("ecfleet_{job}_exit_code"),
        format!("The last {job}'s exit code (docs/exit-codes.md: {what})."),
    );
    exit.add(Vec::new(), f64::from(code));
    let mut at = Family::gauge(
        format!("ecfleet_{job}_timestamp_seconds"),
        format!("When the last {job} ran."),
    );
    if let Some(t) = epoch(when) {
        at.add(Vec::new(), t);
    }
    [exit, at]
}

/// Writes `text` to `path` as one step for readers: a temporary file beside it (a collector
/// reads only `*.prom`), flushed, then renamed over `path`.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "metrics".into());
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    // A leftover of a crashed run of the same pid goes first; the file is made new, never
    // opened through a link someone left at that name.
    let _ = std::fs::remove_file(&temp);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_capped() {
        assert_eq!(label_value("a\\b\"c\nd\u{1b}[31m"), "a\\\\b\\\"c\\nd[31m");
        assert_eq!(label_value(&"x".repeat(500)).len(), MAX_LABEL);
    }

    #[test]
    fn families_render_in_the_exposition_format() {
        let mut f = Family::gauge("ecfleet_x", "An example.");
        f.add(vec![("host", "h\"1".into())], 2.0);
        f.add(Vec::new(), 0.5);
        let empty = Family::gauge("ecfleet_empty", "Nothing.");
        assert_eq!(
            render(&[f, empty]),
            "# HELP ecfleet_x An example.\n# TYPE ecfleet_x gauge\necfleet_x{host=\"h\\\"1\"} 2\necfleet_x 0.5\n"
        );
    }

    #[test]
    fn a_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ecfleet.prom");
        std::fs::write(&path, "old\n").unwrap();
        write_atomically(&path, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left");
        assert!(write_atomically(&dir.path().join("missing/x.prom"), "y\n").is_err());
    }
}
