//! What is wrong with one host, as the audit reports it: the host's [`checks`](crate::checks)
//! rendered as findings. Every finding has a stable `code` (documented in
//! docs/json-output.md), a severity, a message naming what was seen and a fix; the table's sync
//! summary is read off the same checks.

use ecfleet_proto::Facts;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, SupportStatus};
use crate::checks::{self, Check, Code, Limits};
use crate::inventory::Role;

use super::playbook::AuditPlaybook;

pub use crate::checks::Severity;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub code: String,
    pub severity: Severity,
    pub message: String,
    pub fix: String,
    /// What on the host the finding is about when the same condition can hold for several
    /// (the connector of a failed run), as the host named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl From<Check> for Finding {
    fn from(c: Check) -> Finding {
        Finding {
            code: c.code.as_str().into(),
            severity: c.severity,
            message: c.message,
            fix: c.fix,
            subject: c.subject,
        }
    }
}

/// The two readings of the installed version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionReadings {
    /// Sync engine (`miiserver.exe`) product version, else its file version.
    pub product: Option<String>,
    /// `ServerConfigurationVersion`.
    pub config: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportVerdict {
    pub status: Option<SupportStatus>,
    pub end_of_support: Option<Date>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub version: VersionReadings,
    pub support: SupportVerdict,
    pub findings: Vec<Finding>,
    /// Short sync-health summary for tables (`ok`, `export failed`, `stale`, …).
    pub sync_summary: String,
}

pub fn evaluate(
    facts: &Facts,
    role: Role,
    catalog: &Catalog,
    as_of: Date,
    playbook: &AuditPlaybook,
) -> Evaluation {
    let limits = Limits {
        catalog,
        as_of,
        retiring_days: playbook.retiring_days,
        min_free_gib: playbook.min_free_gib,
        max_sync_age_hours: playbook.max_sync_age_hours,
        role,
        target: None,
    };
    let assessment = checks::assess(facts, &limits);
    let sync_summary = sync_summary(facts, role, &assessment.checks);
    let support = match assessment.support {
        Some(s) => SupportVerdict {
            status: Some(s.status),
            end_of_support: s.end_of_support,
            reason: s.reason,
        },
        None => SupportVerdict {
            status: None,
            end_of_support: None,
            reason: "version unknown".into(),
        },
    };
    let mut findings: Vec<Finding> = assessment.checks.into_iter().map(Finding::from).collect();
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.code.cmp(&b.code))
    });
    Evaluation {
        version: VersionReadings {
            product: assessment.readings.engine,
            config: assessment.readings.config,
        },
        support,
        findings,
        sync_summary,
    }
}

/// `ok`, `ok (staging)`, `unknown`, or the run problems, each named once.
fn sync_summary(facts: &Facts, role: Role, checks: &[Check]) -> String {
    if facts.run_history.is_none() {
        return "unknown".into();
    }
    let mut summary: Vec<&str> = Vec::new();
    for check in checks {
        let word = match check.code {
            Code::ExportFailed => "export failed",
            Code::DeltaImportFailed => "import failed",
            Code::SyncStale => "stale",
            Code::NoSuccessfulImport => "no import",
            _ => continue,
        };
        if !summary.contains(&word) {
            summary.push(word);
        }
    }
    match summary.is_empty() {
        false => summary.join(", "),
        true if checks::sync::staging_mode(facts, role) => "ok (staging)".into(),
        true => "ok".into(),
    }
}

#[cfg(test)]
mod tests;
