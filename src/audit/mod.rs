//! `ecfleet audit`: facts from every host, concurrently and bounded, each host under its own
//! deadline, judged against the catalog. A host's failure is a row in the report, never an
//! error of the run. The report's JSON form is a documented contract (docs/json-output.md).

pub mod changes;
pub mod findings;
pub mod merge;
pub mod playbook;

use std::time::Duration;

use ecfleet_proto::Facts;
use ecfleet_proto::step::Step;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::engine::{self, EngineSettings, EventSink, FailureBudget, Shutdown, StepContext};
use crate::error::{ErrorKind, HostError};
use crate::inventory::{Host, Inventory, Role};
use crate::session::{Connector, HostSession};

pub use findings::{Finding, Severity, SupportVerdict, VersionReadings};
pub use playbook::AuditPlaybook;

/// Version of the audit JSON document.
pub const AUDIT_SCHEMA_VERSION: u32 = 1;

/// Everything one audit run needs besides the inventory and the connector.
pub struct AuditSettings {
    pub catalog: Catalog,
    pub playbook: AuditPlaybook,
    pub as_of: Date,
    pub concurrency: usize,
}

/// One host's row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostAudit {
    pub tenant: String,
    pub host: String,
    pub role: Role,
    pub address: String,
    pub reachable: bool,
    pub error: Option<String>,
    /// What kind of failure `error` is (`unreachable`, `host-key`, `auth`, `timeout`, …).
    pub error_kind: Option<ErrorKind>,
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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditSummary {
    pub hosts: usize,
    pub reachable: usize,
    pub unreachable: usize,
    pub critical: usize,
    pub warning: usize,
    pub info: usize,
}

impl AuditSummary {
    /// The counts of `hosts`: reached or not, and their findings by severity.
    pub fn of(hosts: &[HostAudit]) -> AuditSummary {
        let count = |s: Severity| {
            hosts
                .iter()
                .flat_map(|h| &h.findings)
                .filter(|f| f.severity == s)
                .count()
        };
        let reachable = hosts.iter().filter(|h| h.reachable).count();
        AuditSummary {
            hosts: hosts.len(),
            reachable,
            unreachable: hosts.len() - reachable,
            critical: count(Severity::Critical),
            warning: count(Severity::Warning),
            info: count(Severity::Info),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CatalogInfo {
    pub source: String,
    pub checked_on: Date,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditReport {
    pub schema_version: u32,
    pub as_of: Date,
    pub generated_at: String,
    pub inventory: String,
    /// Whether this run covered the whole inventory (no `--host`/`--tenant`/`--shard`).
    pub whole_inventory: bool,
    /// SHA-256 of the inventory file as read: `ecfleet merge` puts together only shards of one
    /// inventory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory_sha256: Option<String>,
    /// The shard this audit covered (`--shard i/n`); absent for a whole or hand-picked audit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::Shard>,
    /// The shard snapshots `ecfleet merge` put together into this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<String>,
    pub catalog: CatalogInfo,
    pub summary: AuditSummary,
    pub hosts: Vec<HostAudit>,
    /// What changed since the newest audit on the share (null when there is none).
    pub changes: Option<changes::Changes>,
}

impl AuditReport {
    /// 0 all fine; 1 warnings or criticals found; 2 some hosts could not be audited (first:
    /// what the audit could not see may be worse than what it saw).
    pub fn exit_code(&self) -> u8 {
        if self.summary.unreachable > 0 {
            crate::exit::INCOMPLETE
        } else if self.summary.critical + self.summary.warning > 0 {
            crate::exit::ATTENTION
        } else {
            crate::exit::OK
        }
    }
}

/// Audits the given hosts on the fleet engine. `shutdown` stops scheduling new hosts (hosts
/// already started finish under their deadline; the rest are reported as not audited), and a
/// second level detaches; progress goes to `events`.
pub async fn run(
    inventory: &Inventory,
    hosts: &[&Host],
    settings: &AuditSettings,
    connector: &Connector,
    shutdown: Shutdown,
    events: &EventSink,
) -> AuditReport {
    let engine_settings = EngineSettings {
        concurrency: settings.concurrency,
        host_deadline: Duration::from_secs(settings.playbook.host_deadline_secs),
        failure_budget: FailureBudget::Unlimited,
    };
    let units = engine::one_wave(hosts.iter().copied(), |h| h.name.clone());
    let outcomes = engine::run(units, &engine_settings, shutdown, events, |host, ctx| {
        collect_facts(host, connector, ctx)
    })
    .await;
    let hosts: Vec<HostAudit> = hosts
        .iter()
        .zip(outcomes)
        .map(|(host, o)| judge(host, o.result, settings, o.duration))
        .collect();
    AuditReport::new(inventory, settings, hosts)
}

impl AuditReport {
    /// The report for judged rows: counts and the catalog it was judged against.
    pub fn new(inventory: &Inventory, settings: &AuditSettings, hosts: Vec<HostAudit>) -> Self {
        AuditReport {
            schema_version: AUDIT_SCHEMA_VERSION,
            as_of: settings.as_of,
            generated_at: jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .unwrap_or(jiff::Timestamp::now())
                .to_string(),
            inventory: inventory.path.display().to_string(),
            whole_inventory: true,
            inventory_sha256: std::fs::read(&inventory.path)
                .ok()
                .map(|b| crate::digest::sha256_hex(&b)),
            shard: None,
            merged_from: Vec::new(),
            catalog: CatalogInfo {
                source: settings.catalog.source.clone(),
                checked_on: settings.catalog.checked_on,
            },
            summary: AuditSummary::of(&hosts),
            hosts,
            changes: None,
        }
    }
}

fn judge(
    host: &Host,
    outcome: Result<Facts, HostError>,
    settings: &AuditSettings,
    took: Duration,
) -> HostAudit {
    let mut row = HostAudit {
        tenant: host.tenant.clone(),
        host: host.name.clone(),
        role: host.role,
        address: host.endpoint(),
        reachable: false,
        error: None,
        error_kind: None,
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
        Err(e) => {
            row.error_kind = Some(e.kind);
            row.error = Some(e.message);
        }
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
    host: &Host,
    connector: &Connector,
    ctx: StepContext,
) -> Result<Facts, HostError> {
    let mut session = HostSession::open(host, connector, ctx.deadline).await?;
    let facts: Result<Facts, HostError> = session.agent(&Step::Facts).await;
    session.close().await;
    facts
}
