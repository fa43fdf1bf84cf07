//! What is worth a message, and what it says: the end of an upgrade run (finished, interrupted,
//! or stopped by its failure budget or canary), and an audit that found something new since the
//! last snapshot (a new critical finding, a server that became unsupported). Each message is made
//! for the fleet's channels (every server) or for one tenant's (its servers only).

use super::{HostLine, MAX_LINES, Message, Tone};
use crate::audit::AuditReport;
use crate::checks::Severity;
use crate::run::{HostOutcome, RunReport};

/// The run's end, for the fleet (`tenant` none) or one tenant; `None` when the tenant had no
/// server in the run.
pub fn run_ended(report: &RunReport, tenant: Option<&str>) -> Option<Message> {
    let hosts: Vec<_> = report
        .hosts
        .iter()
        .filter(|h| tenant.is_none_or(|t| h.tenant == t))
        .collect();
    if hosts.is_empty() {
        return None;
    }
    let count = |o: HostOutcome| hosts.iter().filter(|h| h.outcome == o).count();
    let failed: usize = [
        HostOutcome::Failed,
        HostOutcome::Refused,
        HostOutcome::OperatorTimeout,
        HostOutcome::VersionMismatch,
    ]
    .into_iter()
    .map(count)
    .sum();
    let interrupted = count(HostOutcome::Interrupted);
    let skipped = count(HostOutcome::Skipped);
    let (event, how) = if interrupted > 0 {
        ("run-interrupted", "was interrupted")
    } else if skipped > 0 {
        ("run-stopped", "was stopped (failure budget or canary)")
    } else {
        ("run-finished", "finished")
    };
    let tone = if failed > 0 {
        Tone::Bad
    } else if interrupted + skipped + count(HostOutcome::Deferred) + count(HostOutcome::SyncPending)
        > 0
    {
        Tone::Attention
    } else {
        Tone::Good
    };
    let scope = tenant.map(|t| format!(" for {t}")).unwrap_or_default();
    let title = format!(
        "Entra Connect upgrade night{scope} {how}: {} verified, {failed} failed",
        count(HostOutcome::Verified)
    );
    let mut facts = vec![
        ("Servers".to_string(), hosts.len().to_string()),
        ("Verified".into(), count(HostOutcome::Verified).to_string()),
        ("Failed".into(), failed.to_string()),
        (
            "Sync pending".into(),
            count(HostOutcome::SyncPending).to_string(),
        ),
        ("Deferred".into(), count(HostOutcome::Deferred).to_string()),
        ("Not started".into(), (interrupted + skipped).to_string()),
        ("Target".into(), report.target.clone()),
    ];
    facts.retain(|(_, v)| v != "0");
    let attention: Vec<HostLine> = hosts
        .iter()
        .filter(|h| !matches!(h.outcome, HostOutcome::Verified | HostOutcome::Untouched))
        .map(|h| HostLine {
            tenant: h.tenant.clone(),
            host: h.host.clone(),
            status: h.outcome.as_str().into(),
            detail: h.message.clone(),
        })
        .collect();
    let more = attention.len().saturating_sub(MAX_LINES);
    Some(Message {
        event: event.into(),
        title,
        tone,
        tenant: tenant.map(str::to_string),
        facts,
        hosts: attention.into_iter().take(MAX_LINES).collect(),
        more,
        contacts: Vec::new(),
        reference: format!("run {} (ecfleet report {})", report.run_id, report.run_id),
    })
}

/// What an audit found that the last snapshot did not have, for the fleet or one tenant:
/// critical findings new on a server (an unsupported or sync-stopped build among them). `None`
/// when nothing new is critical, or there was no snapshot to compare with.
pub fn audit_found(report: &AuditReport, tenant: Option<&str>) -> Option<Message> {
    let changes = report.changes.as_ref()?;
    let mut lines = Vec::new();
    for c in &changes.hosts {
        if tenant.is_some_and(|t| c.tenant != t) {
            continue;
        }
        let Some(host) = report
            .hosts
            .iter()
            .find(|h| h.host == c.host && h.tenant == c.tenant)
        else {
            continue;
        };
        let new_critical: Vec<&str> = host
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Critical)
            .filter(|f| c.new_findings.iter().any(|n| n == f.code.as_str()))
            .map(|f| f.code.as_str())
            .collect();
        if new_critical.is_empty() {
            continue;
        }
        let detail = host
            .findings
            .iter()
            .filter(|f| new_critical.contains(&f.code.as_str()))
            .map(|f| format!("{}: {}", f.code.as_str(), f.message))
            .collect::<Vec<_>>()
            .join("; ");
        lines.push(HostLine {
            tenant: host.tenant.clone(),
            host: host.host.clone(),
            status: "new critical".into(),
            detail,
        });
    }
    if lines.is_empty() {
        return None;
    }
    let scope = tenant.map(|t| format!(" for {t}")).unwrap_or_default();
    let title = format!(
        "Entra Connect audit{scope}: new critical findings on {} server{}",
        lines.len(),
        if lines.len() == 1 { "" } else { "s" }
    );
    let more = lines.len().saturating_sub(MAX_LINES);
    Some(Message {
        event: "audit-new-findings".into(),
        title,
        tone: Tone::Bad,
        tenant: tenant.map(str::to_string),
        facts: vec![
            ("Servers with new criticals".into(), lines.len().to_string()),
            ("Compared with".into(), changes.since.clone()),
            ("As of".into(), report.as_of.to_string()),
        ],
        hosts: lines.into_iter().take(MAX_LINES).collect(),
        more,
        contacts: Vec::new(),
        reference: format!("audit of {}", report.generated_at),
    })
}
