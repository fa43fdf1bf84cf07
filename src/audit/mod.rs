//! `ecfleet audit`: facts from every host, concurrently and bounded, each host under its own
//! deadline, judged against the catalog. A host's failure is a row in the report, never an
//! error of the run. The report's JSON form is a documented contract (docs/json-output.md).

pub mod changes;
pub mod engine;
pub mod findings;
pub mod playbook;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ecfleet_proto::{FACTS_SCHEMA_VERSION, Facts};
use futures::StreamExt;
use jiff::civil::Date;
use serde::Serialize;

use crate::catalog::Catalog;
use crate::inventory::{Host, Inventory, RemoteOs, Role, TransportKind};
use crate::provision::{self, AgentBuilds};
use crate::transport::Transport;
use crate::transport::remote::RemoteShell;
use crate::transport::ssh::{SshConnection, SshContext, SshTarget};

pub use findings::{Finding, Severity, SupportVerdict, VersionReadings};
pub use playbook::AuditPlaybook;

/// Version of the audit JSON document.
pub const AUDIT_SCHEMA_VERSION: u32 = 1;

/// Everything one audit run needs besides the inventory.
pub struct AuditSettings {
    pub catalog: Catalog,
    pub playbook: AuditPlaybook,
    pub as_of: Date,
    pub concurrency: usize,
    pub agents: AgentBuilds,
    pub accept_new_host_keys: bool,
}

/// One host's row.
#[derive(Debug, Clone, Serialize)]
pub struct HostAudit {
    pub tenant: String,
    pub host: String,
    pub role: Role,
    pub address: String,
    pub reachable: bool,
    pub error: Option<String>,
    pub duration_ms: u64,
    pub version: VersionReadings,
    pub support: SupportVerdict,
    pub os: Option<String>,
    pub sync: String,
    pub findings: Vec<Finding>,
    /// The facts as the agent reported them (absent when the host could not be read).
    pub facts: Option<Facts>,
}

impl HostAudit {
    pub fn worst_severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditSummary {
    pub hosts: usize,
    pub reachable: usize,
    pub unreachable: usize,
    pub critical: usize,
    pub warning: usize,
    pub info: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct CatalogInfo {
    pub source: String,
    pub checked_on: Date,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub schema_version: u32,
    pub as_of: Date,
    pub generated_at: String,
    pub inventory: String,
    pub catalog: CatalogInfo,
    pub summary: AuditSummary,
    pub hosts: Vec<HostAudit>,
    /// What changed since the newest audit on the share (null when there is none).
    pub changes: Option<changes::Changes>,
}

/// The audit's exit codes (docs/exit-codes.md).
pub mod exit {
    pub const OK: u8 = 0;
    pub const FINDINGS: u8 = 1;
    pub const UNREACHABLE: u8 = 2;
    pub const INVALID_INPUT: u8 = 3;
    pub const FAILURE: u8 = 4;
}

impl AuditReport {
    /// 0 all fine; 1 warnings or criticals found; 2 some hosts could not be audited.
    pub fn exit_code(&self) -> u8 {
        if self.summary.unreachable > 0 {
            exit::UNREACHABLE
        } else if self.summary.critical + self.summary.warning > 0 {
            exit::FINDINGS
        } else {
            exit::OK
        }
    }
}

/// What the engine tells the outside world while it runs (progress bars, logs).
pub enum AuditEvent<'a> {
    Started { hosts: usize },
    HostDone(&'a HostAudit),
}

/// Audits the given hosts. `cancel` stops scheduling new hosts (hosts already started finish
/// under their deadline; the rest are reported as not audited).
pub async fn run(
    inventory: &Inventory,
    hosts: &[&Host],
    settings: &AuditSettings,
    cancel: Arc<AtomicBool>,
    mut on_event: impl FnMut(AuditEvent<'_>),
) -> AuditReport {
    let ctx = SshContext::new(settings.accept_new_host_keys);
    let deadline = Duration::from_secs(settings.playbook.host_deadline_secs);
    on_event(AuditEvent::Started { hosts: hosts.len() });
    let mut results: Vec<(usize, HostAudit)> = Vec::with_capacity(hosts.len());
    let mut stream = futures::stream::iter(hosts.iter().enumerate())
        .map(|(i, host)| {
            let ctx = &ctx;
            let cancel = cancel.clone();
            async move {
                let started = Instant::now();
                let outcome = if cancel.load(Ordering::SeqCst) {
                    Err("not audited: the run was interrupted".to_string())
                } else {
                    match tokio::time::timeout(
                        deadline,
                        collect_facts(ctx, host, settings, deadline),
                    )
                    .await
                    {
                        Ok(r) => r,
                        Err(_) => Err(format!(
                            "no answer within the host deadline of {} s (host_deadline_secs)",
                            deadline.as_secs()
                        )),
                    }
                };
                (i, judge(host, outcome, settings, started.elapsed()))
            }
        })
        .buffer_unordered(settings.concurrency.max(1));
    while let Some((i, row)) = stream.next().await {
        on_event(AuditEvent::HostDone(&row));
        results.push((i, row));
    }
    results.sort_by_key(|(i, _)| *i);
    let hosts: Vec<HostAudit> = results.into_iter().map(|(_, r)| r).collect();
    let count = |s: Severity| {
        hosts
            .iter()
            .flat_map(|h| &h.findings)
            .filter(|f| f.severity == s)
            .count()
    };
    let reachable = hosts.iter().filter(|h| h.reachable).count();
    AuditReport {
        schema_version: AUDIT_SCHEMA_VERSION,
        as_of: settings.as_of,
        generated_at: jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or(jiff::Timestamp::now())
            .to_string(),
        inventory: inventory.path.display().to_string(),
        catalog: CatalogInfo {
            source: settings.catalog.source.clone(),
            checked_on: settings.catalog.checked_on,
        },
        summary: AuditSummary {
            hosts: hosts.len(),
            reachable,
            unreachable: hosts.len() - reachable,
            critical: count(Severity::Critical),
            warning: count(Severity::Warning),
            info: count(Severity::Info),
        },
        hosts,
        changes: None,
    }
}

fn judge(
    host: &Host,
    outcome: Result<Facts, String>,
    settings: &AuditSettings,
    took: Duration,
) -> HostAudit {
    let mut row = HostAudit {
        tenant: host.tenant.clone(),
        host: host.name.clone(),
        role: host.role,
        address: format!("{}:{}", host.address, host.port),
        reachable: false,
        error: None,
        duration_ms: took.as_millis() as u64,
        version: VersionReadings::default(),
        support: SupportVerdict {
            status: None,
            end_of_support: None,
            reason: String::new(),
        },
        os: None,
        sync: String::new(),
        findings: Vec::new(),
        facts: None,
    };
    match outcome {
        Err(e) => row.error = Some(e),
        Ok(facts) => {
            let e = findings::evaluate(
                &facts,
                host.role,
                &settings.catalog,
                settings.as_of,
                &settings.playbook,
            );
            row.reachable = true;
            row.version = e.version;
            row.support = e.support;
            row.findings = e.findings;
            row.sync = e.sync_summary;
            row.os = facts.os.as_ref().map(|o| {
                format!(
                    "{} ({})",
                    o.caption.replace("Microsoft Windows ", ""),
                    o.build
                )
            });
            row.facts = Some(facts);
        }
    }
    row
}

/// Connects, provisions the agent and runs `ecfleet-agent facts`, all per host.
async fn collect_facts(
    ctx: &SshContext,
    host: &Host,
    settings: &AuditSettings,
    limit: Duration,
) -> Result<Facts, String> {
    if host.transport == TransportKind::WinRm {
        return Err("the winrm transport is not available in this version yet; use transport = \"ssh\" (OpenSSH for Windows)".into());
    }
    let target = SshTarget {
        name: host.name.clone(),
        address: host.address.clone(),
        port: host.port,
        user: host.user.clone(),
        identity_file: host.identity_file.clone(),
        password: host.password.clone(),
        known_hosts: host.known_hosts.clone(),
        connect_timeout: host.connect_timeout,
    };
    let conn = SshConnection::connect(ctx, &target)
        .await
        .map_err(|e| e.to_string())?;
    let result = facts_over(&conn, host, settings, limit).await;
    conn.close().await;
    result
}

async fn facts_over<T: Transport>(
    t: &T,
    host: &Host,
    settings: &AuditSettings,
    limit: Duration,
) -> Result<Facts, String> {
    let shell = match host.os {
        Some(RemoteOs::Linux) => RemoteShell::Posix,
        // Windows hosts run PowerShell as the OpenSSH default shell in most fleets; detect to
        // be sure, since cmd needs other quoting.
        _ => provision::detect_shell(t, limit)
            .await
            .map_err(|e| e.to_string())?,
    };
    let build = settings.agents.for_shell(shell).ok_or_else(|| {
        let which = if shell.is_windows() { "ecfleet-agent.exe (cargo build --release -p ecfleet-agent --target x86_64-pc-windows-gnu)" } else { "ecfleet-agent (cargo build --release)" };
        format!("no agent build for a {shell} host: build {which}, or point --agent-dir at it")
    })?;
    let path = provision::agent_path(shell, host.lab_root.as_deref())?;
    let args: Vec<&str> = match &host.lab_root {
        Some(root) => vec!["facts", "--backend", "lab", "--lab-root", root],
        None => vec!["facts"],
    };
    let out = provision::run_agent(t, shell, build, &path, &args, limit)
        .await
        .map_err(|e| format!("agent provisioning: {e}"))?;
    if !out.success() {
        let status = out
            .exit_status
            .map(|s| format!("exit status {s}"))
            .or(out.signal.clone())
            .unwrap_or_else(|| "no exit status".into());
        return Err(format!(
            "the agent failed ({status}): {}",
            out.stderr_tail()
        ));
    }
    let text = out.stdout_text();
    let facts: Facts = serde_json::from_str(text.trim()).map_err(|e| {
        format!(
            "the agent's answer is not a facts document ({e}): {}",
            text.chars().take(120).collect::<String>()
        )
    })?;
    if facts.schema_version != FACTS_SCHEMA_VERSION {
        return Err(format!(
            "the agent speaks facts schema {} but this controller expects {FACTS_SCHEMA_VERSION}",
            facts.schema_version
        ));
    }
    Ok(facts)
}
