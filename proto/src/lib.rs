//! The contract between the ecfleet controller and `ecfleet-agent`: the JSON documents the agent
//! prints on stdout, with their schema version. Both sides depend on this crate and nothing else
//! of each other, so a field added here is the whole change to the wire format.
//!
//! Every probe result is an `Option`: `None` means the probe failed or did not apply, and the
//! reason is in [`Facts::errors`]. Partial facts are normal; a crash is not.

use serde::{Deserialize, Serialize};

pub mod backup;
pub mod lab;
pub mod simulate;
pub mod stage;
pub mod step;
pub mod upgrade;

/// Version of the [`Facts`] document. Bump on any change that an older controller would misread.
pub const FACTS_SCHEMA_VERSION: u32 = 1;
/// What a [`Facts`] document says it is.
pub const FACTS_KIND: &str = "ecfleet-facts";

/// The agent's self-check. `ecfleet-agent --expect-sha256 HEX <command>` first hashes its own
/// executable. When that is HEX, it prints [`AGENT_READY_PREFIX`], a space and the hash as its
/// first line on stdout, then runs the command. Otherwise (an older or damaged copy) it prints
/// [`AGENT_MISMATCH_MARKER`] and exits with [`AGENT_MISMATCH_EXIT`] without doing anything. The
/// controller's launch command prints the marker too when the file is missing. The controller
/// trusts a command's output only after the ready line with the right hash; anything else (a
/// missing, foreign, truncated or unrunnable file) means: upload the right build, ask again.
pub const AGENT_READY_PREFIX: &str = "ecfleet-agent-ok";
/// What a copy that is not the expected build (or a missing file) prints instead.
pub const AGENT_MISMATCH_MARKER: &str = "ecfleet-agent-mismatch";
/// Exit status that goes with [`AGENT_MISMATCH_MARKER`].
pub const AGENT_MISMATCH_EXIT: u8 = 97;

/// Everything the agent could learn about one Entra Connect host, in one document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    pub schema_version: u32,
    /// `ecfleet-facts` ([`FACTS_KIND`]).
    #[serde(default)]
    pub kind: String,
    /// Version of the agent binary that collected the facts.
    pub agent_version: String,
    /// `windows` or `lab`.
    pub backend: String,
    /// The host's own clock when collection started (RFC 3339, UTC). Ages of sync runs are
    /// measured against this, so clock skew between controller and host does not matter.
    pub collected_at: String,
    pub host_name: Option<String>,
    pub os: Option<OsFacts>,
    pub dotnet: Option<DotNetFacts>,
    pub tls12: Option<Tls12Facts>,
    pub disk: Option<DiskFacts>,
    pub ec: Option<EcFacts>,
    /// Uninstall entries that belong to Entra Connect (both brandings, both registry views).
    pub uninstall: Option<Vec<UninstallEntry>>,
    pub adsync_service: Option<ServiceFacts>,
    pub scheduler: Option<SchedulerFacts>,
    /// Latest run-profile results, newest first.
    pub run_history: Option<Vec<RunResult>>,
    pub auto_upgrade: Option<AutoUpgradeFacts>,
    /// Health Agent services (empty when none is installed).
    pub health_agent: Option<Vec<ServiceFacts>>,
    pub open_ui: Option<OpenUi>,
    /// Configuration facts the upgrade cares about (customised default rules and the like).
    pub sync_rules: Option<SyncRuleFacts>,
    /// The sync engine's database: LocalDB or full SQL, and the LocalDB data file's size.
    pub database: Option<DatabaseFacts>,
    /// `miiserver.exe.config`: edited since the install, and whether it redirects
    /// `System.Diagnostics.DiagnosticSource` (docs/design/DOMAIN.md §7 #11).
    pub engine_config: Option<EngineConfigFacts>,
    /// The sync engine's connectors (`Get-ADSyncConnector`).
    pub connectors: Option<Vec<ConnectorFacts>>,
    /// Whether the wizard's MFA sign-in page is a Trusted Site (docs/design/DOMAIN.md §5, §7 #7).
    pub trusted_sites: Option<TrustedSitesFacts>,
    /// An upgrade in progress or just done: the installer running, the upgrade's events in the
    /// Application log (docs/design/DOMAIN.md §5 "Where to look").
    pub upgrade_activity: Option<UpgradeActivity>,
    /// `Get-ADSyncSchedulerConnectorOverride`: connectors with a full import or full
    /// synchronization still required, as an upgrade that changed the out-of-box rules leaves
    /// them (docs/design/DOMAIN.md §8b, S42).
    #[serde(default)]
    pub connector_overrides: Option<Vec<ConnectorOverride>>,
    /// `Get-ADSyncEntraConnectorCredential`: how the Entra connector authenticates
    /// (application-based authentication, required from 2027-04-07; docs/design/DOMAIN.md §8b,
    /// S45). `None` where the cmdlet does not exist (builds before 2.5.76.0) or failed.
    #[serde(default)]
    pub entra_auth: Option<EntraAuthFacts>,
    /// The PowerShell language mode the agent's scripts run in (`FullLanguage`,
    /// `ConstrainedLanguage`, …): AppLocker or App Control put unsigned scripts in
    /// ConstrainedLanguage, where the agent's probes fail (docs/design/DOMAIN.md §8b, S47).
    #[serde(default)]
    pub language_mode: Option<String>,
    /// One entry per probe that failed.
    pub errors: Vec<ProbeError>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OsFacts {
    /// e.g. `Microsoft Windows Server 2022 Standard`.
    pub caption: String,
    /// e.g. `10.0.20348`.
    pub version: String,
    /// The build number, the part decisions key on (14393 = Server 2016).
    pub build: u32,
    /// `Server`, `Server Core`, …
    pub installation_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DotNetFacts {
    /// `HKLM\SOFTWARE\Microsoft\NET Framework Setup\NDP\v4\Full` `Release`; `None` when the key
    /// is missing (no .NET 4.5+).
    pub release: Option<u32>,
}

/// The TLS 1.2 registry values. Each value is `None` when it is not set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tls12Facts {
    /// `HKLM\SOFTWARE\Microsoft\.NETFramework\v4.0.30319`
    pub dotnet_x64: DotNetTls,
    /// `HKLM\SOFTWARE\WOW6432Node\Microsoft\.NETFramework\v4.0.30319`
    pub dotnet_x86: DotNetTls,
    /// `...\SCHANNEL\Protocols\TLS 1.2\Client`
    pub schannel_client: SchannelTls,
    /// `...\SCHANNEL\Protocols\TLS 1.2\Server`
    pub schannel_server: SchannelTls,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DotNetTls {
    pub system_default_tls_versions: Option<u32>,
    pub sch_use_strong_crypto: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SchannelTls {
    pub enabled: Option<u32>,
    pub disabled_by_default: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskFacts {
    /// e.g. `C:`.
    pub system_drive: String,
    pub free_bytes: u64,
    pub total_bytes: u64,
}

/// The installed version, read two ways. A mismatch means a half-finished upgrade.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EcFacts {
    /// Path of the sync engine (`miiserver.exe`), from the ADSync service's image path.
    pub engine_path: Option<String>,
    pub engine_file_version: Option<String>,
    pub engine_product_version: Option<String>,
    /// `Microsoft.Synchronize.ServerConfigurationVersion` from `Get-ADSyncGlobalSettings`.
    pub config_version: Option<String>,
    /// Product version of `AzureADConnect.exe` (the wizard), when present.
    pub wizard_version: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UninstallEntry {
    pub display_name: String,
    pub display_version: Option<String>,
    /// The registry key name (the product code for MSI installs).
    pub key: Option<String>,
    /// `true` for entries under `WOW6432Node`.
    pub wow6432: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceFacts {
    pub name: String,
    pub display_name: Option<String>,
    /// `Running`, `Stopped`, `StartPending`, … (`NotFound` when the service does not exist).
    pub state: String,
    /// `Auto`, `Manual`, `Disabled`, …
    pub start_mode: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SchedulerFacts {
    pub sync_cycle_enabled: Option<bool>,
    pub staging_mode_enabled: Option<bool>,
    pub scheduler_suspended: Option<bool>,
    pub sync_cycle_in_progress: Option<bool>,
    pub maintenance_enabled: Option<bool>,
    /// RFC 3339, UTC.
    pub next_sync_cycle_start_utc: Option<String>,
    /// Minutes between cycles, as currently in effect.
    pub effective_interval_minutes: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub connector: String,
    /// `Delta Import`, `Delta Synchronization`, `Export`, `Full Import`, …
    pub run_profile: String,
    /// `success`, `completed-export-errors`, `no-start-connection`, … (lower case as ADSync says).
    pub result: String,
    /// RFC 3339, UTC.
    pub start: Option<String>,
    /// RFC 3339, UTC.
    pub end: Option<String>,
    /// `IsRunComplete` (Windows); `None` where the source does not say (older agents).
    #[serde(default)]
    pub complete: Option<bool>,
}

impl RunResult {
    /// The run has ended: only ended runs are a success or a failure (a run in progress reads
    /// `in-progress` with `IsRunComplete` false).
    pub fn ended(&self) -> bool {
        self.complete != Some(false) && !self.result.eq_ignore_ascii_case("in-progress")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AutoUpgradeFacts {
    /// `Enabled`, `Disabled` or `Suspended`.
    pub state: String,
    pub suspension_reason: Option<String>,
}

/// What shows an upgrade on the host while `ecfleet run` watches it. The wizard itself
/// (`AzureADConnect.exe`) is [`OpenUi::wizard`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpgradeActivity {
    /// `msiexec.exe` installing the Entra Connect product (`AzureADConnect.msi` or one of the
    /// packages the wizard installs, such as `Synchronization Service.msi`).
    pub installer_running: bool,
    /// Application log events of source "Microsoft Entra Connect Upgrade" (older: "Azure AD
    /// Connect Upgrade") of the last day, newest first.
    pub events: Vec<UpgradeEvent>,
    /// The Windows Installer's own events (source `MsiInstaller`: 11707 installed, 11708
    /// failed, 1033 the product's status) for the Entra Connect product, of the last day,
    /// newest first (docs/design/DOMAIN.md §8b, S50).
    #[serde(default)]
    pub installer_events: Vec<UpgradeEvent>,
    /// The last lines of the wizard's newest trace log (`%ProgramData%\AADConnect\trace-*.log`).
    #[serde(default)]
    pub wizard_log_tail: Vec<String>,
}

/// One connector's scheduler override (`Get-ADSyncSchedulerConnectorOverride`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectorOverride {
    /// The connector's name (its identifier when the name could not be read).
    pub connector: String,
    pub full_import_required: bool,
    pub full_sync_required: bool,
}

/// The Entra connector's identity (`Get-ADSyncEntraConnectorCredential`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EntraAuthFacts {
    /// `ConnectorIdentityType`: `Application` with application-based authentication,
    /// `ServiceAccount` with the legacy `Sync_*` account.
    pub identity_type: String,
}

impl Facts {
    /// The wizard or the Entra Connect installer runs on the host: an upgrade is under way and
    /// nothing may touch ADSync (docs/design/DOMAIN.md §8b, S41).
    pub fn upgrade_running(&self) -> bool {
        self.open_ui.as_ref().is_some_and(|u| u.wizard)
            || self
                .upgrade_activity
                .as_ref()
                .is_some_and(|a| a.installer_running)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpgradeEvent {
    /// RFC 3339 UTC.
    pub time: String,
    pub id: u32,
    /// The message's first line.
    pub message: String,
}

/// Where `https://secure.aadcdn.microsoftonline-p.com` (the wizard's MFA sign-in page) is a
/// Trusted Site (zone 2): by a zone-map policy, or in the loaded user profiles. Without it the
/// wizard's MFA prompt can hang (docs/design/DOMAIN.md §5, §7 #7).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrustedSitesFacts {
    /// The Site to Zone Assignment List policy (HKLM) puts it in zone 2.
    pub policy: bool,
    /// The loaded profiles (SIDs) whose ZoneMap puts it in zone 2.
    pub profiles: Vec<String>,
    /// How many loaded profiles were examined.
    pub profiles_checked: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenUi {
    /// `AzureADConnect.exe` is running.
    pub wizard: bool,
    /// `miisclient.exe` (Synchronization Service Manager) is running.
    pub sync_service_manager: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncRuleFacts {
    /// Out-of-box rules (with an `ImmutableTag`) that were edited; the upgrade resets them.
    pub customised_default_rules: u32,
    /// Rules without an `ImmutableTag`.
    pub custom_rules: u32,
    /// Custom rules with a precedence outside 0–99, where the upgrade may collide with them.
    pub custom_rules_outside_0_99: u32,
}

/// The sync engine's database (docs/design/DOMAIN.md §3.4). SQL Server Express LocalDB stops at 10 GB a
/// database; auto-upgrade refuses from 8 GB.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatabaseFacts {
    /// `true` for LocalDB, `false` for a full SQL Server (local or remote), which has no such
    /// limit.
    pub local_db: bool,
    /// `Server` and `SQLInstance` of the ADSync service's parameters, e.g. `(localdb)` and
    /// `.\ADSync2019`, or a SQL Server name.
    pub server: Option<String>,
    pub instance: Option<String>,
    /// The LocalDB data file (`ADSync.mdf`) and its size; `None` with full SQL.
    pub data_file: Option<String>,
    pub data_file_bytes: Option<u64>,
}

/// The sync engine's .NET configuration file, `<install dir>\Bin\miiserver.exe.config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineConfigFacts {
    pub path: String,
    /// RFC 3339, UTC.
    pub last_write: Option<String>,
    /// When `miiserver.exe` beside it was last written (RFC 3339, UTC): the install's time.
    pub engine_last_write: Option<String>,
    /// The file was written more than 10 minutes after the engine: someone edited it (FIPS
    /// guidance for password hash sync does this).
    pub edited_after_install: bool,
    /// It has an `<assemblyBinding>` redirect for `System.Diagnostics.DiagnosticSource`, without
    /// which an edited file stops the engine after an upgrade to 2.5.190.0–2.6.x.
    pub diagnostic_source_redirect: bool,
}

/// The Microsoft Entra ID connector's fixed identifier (docs/design/DOMAIN.md §7 #12).
pub const ENTRA_CONNECTOR_ID: &str = "b891884f-051e-4a83-95af-2544101c9083";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectorFacts {
    pub name: String,
    /// The connector's GUID, lower case.
    pub identifier: String,
    /// `AD`, `Extensible2`, … as `Get-ADSyncConnector` says.
    pub connector_type: Option<String>,
}

/// A probe that failed: which one, and what it said.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeError {
    /// The probe's name, the same as the `Facts` field it fills (`dotnet`, `scheduler`, …).
    pub probe: String,
    pub message: String,
}

impl Facts {
    /// An empty document stamped with the current schema.
    pub fn new(backend: &str, agent_version: &str, collected_at: String) -> Self {
        Facts {
            schema_version: FACTS_SCHEMA_VERSION,
            kind: FACTS_KIND.to_string(),
            agent_version: agent_version.to_string(),
            backend: backend.to_string(),
            collected_at,
            ..Facts::default()
        }
    }

    /// Records a failed probe.
    pub fn probe_failed(&mut self, probe: &str, message: impl Into<String>) {
        self.errors.push(ProbeError {
            probe: probe.to_string(),
            message: message.into(),
        });
    }
}

/// Whether `miiserver.exe.config`, last written at `config` (RFC 3339), was edited after the
/// install that wrote `miiserver.exe` at `engine`: later by more than [`EDIT_GRACE_MINUTES`].
/// The install writes both files within moments of each other.
pub fn edited_after_install(config: &str, engine: &str) -> bool {
    match (
        config.parse::<jiff::Timestamp>(),
        engine.parse::<jiff::Timestamp>(),
    ) {
        (Ok(c), Ok(e)) => c - e > jiff::SignedDuration::from_mins(EDIT_GRACE_MINUTES),
        _ => false,
    }
}

/// How much later than the engine the configuration file may be written and still count as
/// part of the install.
pub const EDIT_GRACE_MINUTES: i64 = 10;

#[cfg(test)]
mod tests {
    #[test]
    fn a_config_written_with_the_install_is_not_edited_and_a_later_one_is() {
        let engine = "2026-03-01T10:00:00Z";
        assert!(!edited_after_install("2026-03-01T10:00:00Z", engine));
        assert!(!edited_after_install("2026-03-01T10:09:00Z", engine));
        assert!(edited_after_install("2026-03-01T10:11:00Z", engine));
        assert!(edited_after_install("2026-07-14T08:30:00Z", engine));
        assert!(!edited_after_install("2026-02-01T10:00:00Z", engine));
        assert!(!edited_after_install("not a date", engine));
    }

    use super::*;

    #[test]
    fn facts_round_trip_through_json_with_nulls_for_missing_probes() {
        let mut facts = Facts::new("lab", "0.1.0", "2026-11-24T00:00:00Z".into());
        facts.dotnet = Some(DotNetFacts {
            release: Some(528449),
        });
        facts.probe_failed("scheduler", "ADSync module not found");
        let json = serde_json::to_string(&facts).unwrap();
        assert!(json.contains("\"scheduler\":null"), "{json}");
        assert!(json.contains("\"schema_version\":1"), "{json}");
        let back: Facts = serde_json::from_str(&json).unwrap();
        assert_eq!(back, facts);
    }
}
