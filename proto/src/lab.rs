//! The simulated host format, `<lab_root>/machine.toml`: what `ecfleet lab init` writes and the
//! agent's `lab` backend reads. It describes a Windows server running Entra Connect, plus faults
//! to inject. Documented for users in `docs/lab.md`.

use serde::{Deserialize, Serialize};

use crate::{AutoUpgradeFacts, DiskFacts, OpenUi, SyncRuleFacts, Tls12Facts, UninstallEntry};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    pub host: MachineHost,
    pub os: MachineOs,
    #[serde(default)]
    pub dotnet: MachineDotNet,
    #[serde(default)]
    pub tls12: Tls12Facts,
    pub disk: DiskFacts,
    /// Absent when Entra Connect is not installed.
    pub ec: Option<MachineEc>,
    #[serde(default)]
    pub uninstall: Vec<UninstallEntry>,
    #[serde(default)]
    pub service: MachineService,
    #[serde(default)]
    pub scheduler: MachineScheduler,
    #[serde(default)]
    pub runs: Vec<MachineRun>,
    pub auto_upgrade: Option<AutoUpgradeFacts>,
    #[serde(default)]
    pub health_agent: Vec<MachineHealthService>,
    #[serde(default)]
    pub open_ui: OpenUi,
    #[serde(default)]
    pub sync_rules: SyncRuleFacts,
    #[serde(default)]
    pub database: MachineDatabase,
    #[serde(default)]
    pub engine_config: MachineEngineConfig,
    /// The sync engine's connectors; absent: one AD connector and the Entra connector.
    #[serde(default)]
    pub connectors: Option<Vec<MachineConnector>>,
    /// The custom sync rules a backup exports (the audit reads the counts in `[sync_rules]`).
    #[serde(default)]
    pub custom_rules: Vec<MachineRule>,
    /// Where the wizard's MFA sign-in page is a Trusted Site.
    #[serde(default)]
    pub wizard_sign_in: MachineSignIn,
    #[serde(default)]
    pub operator: MachineOperator,
    /// The last upgrade the lab's operator ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<MachineUpgrade>,
    /// What runs on the host besides the services (the installer during an upgrade).
    #[serde(default)]
    pub activity: MachineActivity,
    /// The Windows Installer's events for the Entra Connect product (Application log, source
    /// `MsiInstaller`), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub installer_events: Vec<MachineEvent>,
    /// What an upgrade does after the wizard: a full import and full synchronization when the
    /// new build changes the out-of-box sync rules (docs/lab.md).
    #[serde(default)]
    pub upgrade_effects: MachineUpgradeEffects,
    /// What a configuration backup finds on the host (docs/lab.md).
    #[serde(default)]
    pub backup: MachineBackup,
    /// `Get-ADSyncEntraConnectorCredential`'s `ConnectorIdentityType` (`Application` or
    /// `ServiceAccount`); absent: the cmdlet does not exist on this build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entra_auth: Option<String>,
    /// The PowerShell language mode scripts run in (`ConstrainedLanguage` under AppLocker or
    /// App Control).
    #[serde(default = "full_language")]
    pub language_mode: String,
    #[serde(default)]
    pub faults: Faults,
    #[serde(default)]
    pub lab: MachineLab,
}

/// How the lab's clock relates to real time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MachineLab {
    /// The lab's clock runs this many times faster than real time for what happens during a
    /// run: the operator's wizard (`[operator] delay_seconds`), a restart
    /// (`faults.reboot_seconds`) and the first sync cycle after an upgrade
    /// (`after_upgrade_seconds`, `duration_seconds` of those runs). Those durations are lab
    /// time; 120 makes a 10-minute upgrade take 5 real seconds. Past run history and
    /// `faults.hang_seconds` (which tests the controller's real deadlines) are real time.
    pub clock_scale: u32,
}

impl Default for MachineLab {
    fn default() -> Self {
        MachineLab {
            clock_scale: DEFAULT_CLOCK_SCALE,
        }
    }
}

/// Two lab minutes per real second.
pub const DEFAULT_CLOCK_SCALE: u32 = 120;

impl Machine {
    /// The real duration of `seconds` of lab time ([`MachineLab::clock_scale`]).
    pub fn real(&self, seconds: u64) -> jiff::SignedDuration {
        let scale = u64::from(self.lab.clock_scale.max(1));
        jiff::SignedDuration::from_millis((seconds.saturating_mul(1000) / scale) as i64)
    }
}

/// `https://secure.aadcdn.microsoftonline-p.com` in Trusted Sites: by policy, and/or for these
/// loaded profiles. Default: the local Administrator's profile has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MachineSignIn {
    pub trusted_by_policy: bool,
    pub trusted_for_profiles: Vec<String>,
    pub loaded_profiles: u32,
}

impl Default for MachineSignIn {
    fn default() -> Self {
        MachineSignIn {
            trusted_by_policy: false,
            trusted_for_profiles: vec!["S-1-5-21-3623811015-3361044348-30300820-500".into()],
            loaded_profiles: 2,
        }
    }
}

/// A custom sync rule (no `ImmutableTag`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineRule {
    pub identifier: String,
    pub name: String,
    /// The connector's name.
    pub connector: String,
    pub precedence: u32,
    /// `Inbound` (default) or `Outbound`.
    #[serde(default = "inbound")]
    pub direction: String,
    #[serde(default)]
    pub disabled: bool,
    /// Scoping clauses, e.g. `["department EQUAL Sales"]`.
    #[serde(default)]
    pub scoping: Vec<String>,
    /// Attribute flows, e.g. `["department -> extensionAttribute1 (Direct)"]`.
    #[serde(default)]
    pub attribute_flows: Vec<String>,
}

fn full_language() -> String {
    "FullLanguage".to_string()
}

/// Processes of an upgrade in progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MachineActivity {
    /// `msiexec.exe` is installing the Entra Connect product.
    pub installer_running: bool,
}

/// An Application log event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineEvent {
    /// RFC 3339 UTC, the host's clock.
    pub at: String,
    pub id: u32,
    pub message: String,
}

/// What the lab's upgrade does once the wizard has migrated the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MachineUpgradeEffects {
    /// The new build changes the out-of-box sync rules: a full import and a full
    /// synchronization run on every connector before any delta cycle (Microsoft's upgrade
    /// doc, docs/design/DOMAIN.md §8b S42).
    pub default_rules_change: bool,
    /// How long the full import and full synchronization take together (lab time).
    pub full_sync_seconds: u64,
}

impl Default for MachineUpgradeEffects {
    fn default() -> Self {
        MachineUpgradeEffects {
            default_rules_change: false,
            // Two hours: a large directory.
            full_sync_seconds: 7200,
        }
    }
}

/// What a backup finds on the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MachineBackup {
    /// Days since the wizard wrote its newest `Applied-SynchronizationPolicy-*.json`; absent:
    /// the host has none (the wizard never changed the configuration since 1.5.42.0).
    pub applied_policy_age_days: Option<u32>,
    /// Days since the configuration was last changed outside the wizard (PowerShell, the
    /// Rules Editor, Synchronization Service Manager); absent: never.
    pub changed_outside_wizard_days: Option<u32>,
    /// `MigrateSettings.ps1` is in the installed product's `Tools` folder.
    pub migrate_settings_script: bool,
    /// `%ProgramData%\AADConnect\PersistedState.xml` exists (the wizard writes it); without
    /// it `MigrateSettings.ps1` fails and no `MigratedPolicy.json` is made.
    pub persisted_state: bool,
    /// Pads the server-configuration dump with one XML file of this many MiB
    /// (`lab-padding.xml`), standing in for the configuration of a large directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dump_padding_mb: Option<u64>,
}

impl Default for MachineBackup {
    fn default() -> Self {
        MachineBackup {
            applied_policy_age_days: Some(30),
            changed_outside_wizard_days: None,
            migrate_settings_script: true,
            persisted_state: true,
            dump_padding_mb: None,
        }
    }
}

fn inbound() -> String {
    "Inbound".to_string()
}

/// The sync engine's database. LocalDB by default, with a data file of `size_mb`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MachineDatabase {
    pub local_db: bool,
    /// Size of `ADSync.mdf` in MiB (LocalDB only).
    pub size_mb: u64,
    /// The SQL Server for `local_db = false`.
    pub sql_server: String,
}

impl Default for MachineDatabase {
    fn default() -> Self {
        MachineDatabase {
            local_db: true,
            size_mb: 640,
            sql_server: String::new(),
        }
    }
}

/// `miiserver.exe.config`: edited after the install, and whether it has the
/// `System.Diagnostics.DiagnosticSource` binding redirect.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MachineEngineConfig {
    pub edited: bool,
    pub diagnostic_source_redirect: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConnector {
    pub name: String,
    pub identifier: String,
    #[serde(default)]
    pub connector_type: Option<String>,
    /// OUs synced from this connector's partition (AD connectors); a backup exports them.
    #[serde(default)]
    pub partition_inclusions: Vec<String>,
    #[serde(default)]
    pub partition_exclusions: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineHost {
    /// The Windows computer name.
    pub name: String,
    /// The scenario this host was generated for (`current`, `half-upgraded`, …).
    #[serde(default)]
    pub scenario: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineOs {
    pub caption: String,
    pub version: String,
    pub build: u32,
    #[serde(default)]
    pub installation_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineDotNet {
    pub release: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineEc {
    /// File/product version of `miiserver.exe`.
    pub engine_version: String,
    /// `ServerConfigurationVersion`; differs from `engine_version` on a half-upgraded host.
    pub config_version: String,
    #[serde(default)]
    pub wizard_version: Option<String>,
    #[serde(default = "default_install_dir")]
    pub install_dir: String,
}

fn default_install_dir() -> String {
    r"C:\Program Files\Microsoft Azure AD Sync".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineService {
    /// ADSync service state: `Running`, `Stopped`, …
    pub state: String,
    pub start_mode: String,
}

impl Default for MachineService {
    fn default() -> Self {
        MachineService {
            state: "Running".into(),
            start_mode: "Auto".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MachineScheduler {
    pub sync_cycle_enabled: bool,
    pub staging_mode_enabled: bool,
    pub scheduler_suspended: bool,
    pub sync_cycle_in_progress: bool,
    pub maintenance_enabled: bool,
    pub interval_minutes: u32,
    /// The next cycle starts this many minutes after the facts are collected.
    pub next_cycle_in_minutes: u32,
}

impl Default for MachineScheduler {
    fn default() -> Self {
        MachineScheduler {
            sync_cycle_enabled: true,
            staging_mode_enabled: false,
            scheduler_suspended: false,
            sync_cycle_in_progress: false,
            maintenance_enabled: true,
            interval_minutes: 30,
            next_cycle_in_minutes: 17,
        }
    }
}

/// One run-profile result. Times are relative to when facts are collected, so a lab host stays
/// "alive" whenever it is audited.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineRun {
    pub connector: String,
    pub run_profile: String,
    pub result: String,
    /// Minutes between the run's end and the collection of facts.
    #[serde(default)]
    pub age_minutes: u32,
    #[serde(default)]
    pub duration_seconds: u32,
    /// A run of the first cycle after an upgrade: it ends this many seconds (lab time, as its
    /// `duration_seconds` is then) after `[upgrade] completed_at` (and is not shown before
    /// then) instead of `age_minutes` ago.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_upgrade_seconds: Option<u32>,
}

/// The last upgrade the lab's operator ran on this host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineUpgrade {
    pub from: String,
    pub to: String,
    /// RFC 3339 UTC, the host's clock.
    pub completed_at: String,
    /// The Application log's event for it (id 300: success).
    #[serde(default)]
    pub event_id: u32,
    #[serde(default)]
    pub event_message: String,
}

/// How the lab plays the operator of phase 3 (docs/lab.md): after `ecfleet run` hands the
/// upgrade to the operator, the operator starts the installer `delay_seconds` (lab time)
/// later. Then, as Microsoft's upgrade does it (docs/design/DOMAIN.md §8b S41): the installer
/// runs for `installer_seconds`; the wizard opens (scheduler suspended) and after
/// `wizard_seconds` replaces the binaries (the engine reads the new build, the configuration
/// still the old one); `config_migration_seconds` later the configuration is migrated, the
/// scheduler resumes and the wizard closes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MachineOperator {
    /// The operator runs the wizard (false: never finishes, e.g. an MFA prompt that hangs).
    pub acts: bool,
    pub delay_seconds: u64,
    pub installer_seconds: u64,
    pub wizard_seconds: u64,
    pub config_migration_seconds: u64,
}

impl Default for MachineOperator {
    fn default() -> Self {
        MachineOperator {
            acts: true,
            // Two minutes until the operator starts, eight of upgrade, in lab time.
            delay_seconds: 120,
            installer_seconds: 60,
            wizard_seconds: 120,
            config_migration_seconds: 180,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineHealthService {
    pub name: String,
    pub display_name: String,
    pub state: String,
    pub start_mode: String,
}

/// Left in the lab host's agent folder (`<lab_root>/.ecfleet/`) by the lab server once the
/// disk filled during staging (`faults.disk_fills_at_bytes`): from then on the host reports no
/// free space on its system drive.
pub const DISK_FULL_MARK: &str = "lab-disk-full";

/// Left beside it once the one dropped connection of `faults.staging_drops_at_bytes` happened.
pub const STAGING_DROPPED_MARK: &str = "lab-staging-dropped";

/// Faults to inject, so that failure handling is tested on the real code path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// The agent sleeps this long before answering (a hung host).
    pub hang_seconds: u64,
    /// Probes that fail (their facts become null with an error entry), e.g. `["dotnet"]`.
    pub fail_probes: Vec<String>,
    /// The agent exits with this code after printing an error on stderr (a broken agent).
    pub exit_code: Option<i32>,
    /// The agent prints this instead of JSON.
    pub garbage_output: Option<String>,
    /// The configuration export fails on the host (`Get-ADSyncServerConfiguration` throws).
    pub backup_fails: bool,
    /// After an upgrade the configuration version stays at the old build: `fixed-by-restart`
    /// (one ADSync restart fixes it) or `sticky` (it does not).
    pub config_version_lags: Option<String>,
    /// The installer fails when the lab's operator runs it: `1603` (it rolls back: the old
    /// version stays) or `25019` (it leaves a half-removed install: no ADSync service, the
    /// uninstall entries still there; docs/design/DOMAIN.md §7 #4).
    pub installer_fails: Option<String>,
    /// After the upgrade the ADSync service does not start (and no restart helps).
    pub adsync_stops_after_upgrade: bool,
    /// Customised default rules conflict after the upgrade: the first exports end
    /// `completed-export-errors`.
    pub rules_conflict_after_upgrade: bool,
    /// The host restarts at the end of the upgrade and answers nothing for this many seconds
    /// (lab time).
    pub reboot_seconds: u64,
    /// The connection drops once, when the installer's transfer reaches this many bytes. Only
    /// the lab server does this (`ecfleet lab up`); behind a real sshd nothing happens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staging_drops_at_bytes: Option<u64>,
    /// The system drive fills while the installer is staged: writes past this many bytes of it
    /// fail as on a full disk, and the host reports no free space from then on. Only the lab
    /// server fails the writes; behind a real sshd nothing happens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_fills_at_bytes: Option<u64>,
    /// What `Get-AuthenticodeSignature` says of the staged installer on this host (a lab host
    /// otherwise has no signature to check).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installer_signature: Option<crate::stage::Signature>,
}
