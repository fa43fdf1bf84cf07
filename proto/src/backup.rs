//! The agent's `backup` step and what it reports: the configuration of a host's sync engine,
//! gathered on the host into files the controller brings back (the wizard's importable
//! `Applied-SynchronizationPolicy-*.json` and a `Get-ADSyncServerConfiguration` dump packed as
//! one tar archive), plus ecfleet's own reading of the configuration (rules, connectors,
//! scheduler, global settings) that configuration drift is judged on.

use serde::{Deserialize, Serialize};

use crate::ProbeError;

/// Version of the backup document; fields are only added within it.
pub const BACKUP_SCHEMA_VERSION: u32 = 1;
/// The document's `kind`, so a backup is never read as facts.
pub const BACKUP_KIND: &str = "ecfleet-backup";

/// What `ecfleet-agent backup --out-dir DIR` prints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackupResult {
    pub schema_version: u32,
    pub kind: String,
    /// `windows` or `lab`.
    pub backend: String,
    pub host_name: Option<String>,
    /// RFC 3339 UTC, host clock.
    pub collected_at: String,
    /// The sync engine's version when the backup was taken.
    pub engine_version: Option<String>,
    /// The newest `%ProgramData%\AADConnect\Applied-SynchronizationPolicy-*.json` (what the
    /// wizard imports on a new server), copied into the out dir; `None` when the host has none.
    pub applied_policy: Option<BackupFile>,
    /// The `Get-ADSyncServerConfiguration` dump, packed as one tar archive in the out dir.
    pub server_configuration: Option<BackupFile>,
    /// ecfleet's reading of the configuration, for drift; `None` when it could not be read.
    pub configuration: Option<Configuration>,
    /// What could not be gathered, and why.
    pub errors: Vec<ProbeError>,
}

/// A file the agent left for the controller to fetch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackupFile {
    /// Its path on the host (native form).
    pub path: String,
    /// Its name where it came from (e.g. `Applied-SynchronizationPolicy-2026-11-20-…json`).
    pub source_name: String,
    pub size: u64,
    /// SHA-256 (hex) as computed on the host.
    pub sha256: String,
}

/// The configuration that drift is judged on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Configuration {
    /// Custom sync rules (no `ImmutableTag`), by identifier.
    pub custom_rules: Vec<SyncRule>,
    /// Out-of-box rules that were edited (or disabled).
    pub customised_default_rules: Vec<SyncRule>,
    pub connectors: Vec<Connector>,
    pub scheduler: SchedulerSettings,
    /// `Get-ADSyncGlobalSettings` parameters: name → value.
    pub global_settings: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRule {
    pub identifier: String,
    pub name: String,
    /// `Inbound` or `Outbound`.
    pub direction: String,
    pub precedence: u32,
    /// The connector's name.
    pub connector: String,
    pub disabled: bool,
    /// Scoping filter, one clause per line (`attribute OPERATOR value`), as ecfleet renders it.
    pub scoping: Vec<String>,
    /// Join conditions, rendered like the scoping filter.
    pub join: Vec<String>,
    /// Attribute flows, `source -> destination (flow type)`.
    pub attribute_flows: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connector {
    pub identifier: String,
    pub name: String,
    pub connector_type: Option<String>,
    /// Partition (domain) filters: each `partition: +included OU, -excluded OU`.
    pub partitions: Vec<Partition>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub name: String,
    pub selected: bool,
    pub inclusions: Vec<String>,
    pub exclusions: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerSettings {
    /// `CustomizedSyncCycleInterval`, else the effective interval, in minutes.
    pub interval_minutes: Option<u32>,
    pub staging_mode_enabled: Option<bool>,
    pub sync_cycle_enabled: Option<bool>,
}
