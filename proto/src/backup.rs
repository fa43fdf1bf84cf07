//! The agent's `backup` step and what it reports: the configuration of a host's sync engine,
//! gathered on the host into files the controller brings back, plus ecfleet's own reading of
//! the configuration (rules, connectors, scheduler, global settings) that configuration drift is
//! judged on. The files (docs/backup.md, docs/design/DOMAIN.md §8b S43/S44): what Microsoft's
//! `MigrateSettings.ps1` makes, the folder the wizard's "Import synchronization settings" takes
//! on a new server (the `Get-ADSyncServerConfiguration` dump, `PersistedState.xml`,
//! `MigratedPolicy.json`), packed as one tar archive, with the two small files also on their
//! own; the wizard's newest `Applied-SynchronizationPolicy-*.json`; and what neither captures
//! but a rebuild by hand needs: `miiserver.exe.config` and the proxy section of
//! `machine.config`.

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
    /// When the wizard wrote `applied_policy` (its `policyMetadata.timeCreated`, RFC 3339 UTC).
    #[serde(default)]
    pub applied_policy_created: Option<String>,
    /// The migration export folder (`Get-ADSyncServerConfiguration` dump, `PersistedState.xml`,
    /// `MigratedPolicy.json`), packed as one tar archive in the out dir.
    pub server_configuration: Option<BackupFile>,
    /// `MigratedPolicy.json` from that folder: the file the wizard imports.
    #[serde(default)]
    pub migrated_policy: Option<BackupFile>,
    /// `PersistedState.xml` from that folder (a copy of `%ProgramData%\AADConnect`'s).
    #[serde(default)]
    pub persisted_state: Option<BackupFile>,
    /// How the export folder was made: by the installed `MigrateSettings.ps1`, or by the agent
    /// following its steps (and why).
    #[serde(default)]
    pub export_method: Option<String>,
    /// The newest configuration change the host shows (RFC 3339 UTC): on Windows the
    /// connectors' `LastModificationTime`; what the applied policy is compared with.
    #[serde(default)]
    pub configuration_changed_at: Option<String>,
    /// The sync engine's `miiserver.exe.config`.
    #[serde(default)]
    pub engine_config: Option<BackupFile>,
    /// The `<system.net>` section (the proxy) of the 64-bit .NET `machine.config`, when it has
    /// one.
    #[serde(default)]
    pub proxy_config: Option<BackupFile>,
    /// ecfleet's reading of the configuration, for drift; `None` when it could not be read.
    pub configuration: Option<Configuration>,
    /// What could not be gathered, and why.
    pub errors: Vec<ProbeError>,
}

/// What a backup never holds, so a restore must bring it back by hand (Microsoft's
/// import/export doc and what `MigrateSettings.ps1` leaves out; docs/design/DOMAIN.md §8b S43).
pub const NOT_IN_BACKUP: &[&str] = &[
    "credentials: the AD connector accounts' passwords and the Microsoft Entra sign-in (re-entered in the wizard)",
    "the application-based authentication certificate and its private key (not exportable; the wizard makes a new one)",
    "device writeback settings (cataloged, not applied on import)",
    "object-type and attribute selection (reapply after the import)",
    "custom run profiles",
    "the provisioning hierarchy",
    "AD FS and PingFederate sign-on settings (re-entered in the wizard)",
    "the SQL Server and service-account choices (chosen again on the new server's wizard)",
    "edits to miiserver.exe.config and the proxy in machine.config (copies are in this backup, to reapply by hand)",
];

/// How `export_method` starts when Microsoft's installed `MigrateSettings.ps1` made the export
/// (`MigrateSettings.ps1 (<its path>)`); anything else is the agent following its steps.
pub const BY_MIGRATE_SETTINGS: &str = "MigrateSettings.ps1 (";

/// Whether `export_method` says Microsoft's own script made the export.
pub fn by_migrate_settings(export_method: &str) -> bool {
    export_method.starts_with(BY_MIGRATE_SETTINGS)
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
