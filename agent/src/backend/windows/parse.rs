//! Turns the probe script's `ConvertTo-Json` output into [`Facts`]. Copes with what Windows
//! PowerShell 5.1 really emits: `/Date(ms)/` dates, a single object where a list was expected,
//! `$null` for an empty list, numbers as strings (`BuildNumber`), TimeSpans as objects, and
//! probes that failed (null plus an entry in `errors`).

use ecfleet_proto::{
    AutoUpgradeFacts, ConnectorFacts, DatabaseFacts, DiskFacts, DotNetFacts, DotNetTls, EcFacts,
    EngineConfigFacts, Facts, OpenUi, OsFacts, RunResult, SchannelTls, SchedulerFacts,
    ServiceFacts, SyncRuleFacts, Tls12Facts, UninstallEntry,
};
use serde_json::Value;

pub fn facts_from_probe_output(text: &str, agent_version: &str) -> Result<Facts, String> {
    let doc = document(text)?;
    let collected_at = str_of(&doc["collected_at"]).unwrap_or_default();
    let mut f = Facts::new("windows", agent_version, collected_at);
    for e in list(&doc["errors"]) {
        let probe = str_of(&e["probe"]).unwrap_or_else(|| "unknown".into());
        let message = str_of(&e["message"]).unwrap_or_default();
        f.probe_failed(&probe, message);
    }

    platform(&doc, &mut f);
    installation(&doc, &mut f);
    sync(&doc, &mut f);
    sync_engine(&doc, &mut f);
    Ok(f)
}

/// The JSON document: PowerShell may print a BOM or warnings before it, so it is the last line
/// that starts with `{`.
pub(super) fn document(text: &str) -> Result<Value, String> {
    let json = text
        .lines()
        .rev()
        .map(|l| l.trim_start_matches('\u{feff}').trim())
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| format!("the facts script printed no JSON: {}", excerpt(text)))?;
    serde_json::from_str(json).map_err(|e| {
        format!(
            "the facts script printed invalid JSON ({e}): {}",
            excerpt(json)
        )
    })
}

/// Whether the script reported `probe` as failed (its facts stay null).
fn failed(f: &Facts, probe: &str) -> bool {
    f.errors.iter().any(|e| e.probe == probe)
}

/// The host name, OS, .NET, TLS 1.2 and the system drive.
fn platform(doc: &Value, f: &mut Facts) {
    f.host_name = str_of(&doc["host_name"]);
    f.os = object(&doc["os"]).and_then(|os| {
        Some(OsFacts {
            caption: str_of(&os["Caption"])?.trim().to_string(),
            version: str_of(&os["Version"])?,
            build: u64_of(&os["BuildNumber"])? as u32,
            installation_type: str_of(&os["InstallationType"]),
        })
    });
    f.dotnet = object(&doc["dotnet"]).map(|d| DotNetFacts {
        release: u64_of(&d["Release"]).map(|r| r as u32),
    });
    f.tls12 = object(&doc["tls12"]).map(|t| Tls12Facts {
        dotnet_x64: dotnet_tls(&t["DotNetX64"]),
        dotnet_x86: dotnet_tls(&t["DotNetX86"]),
        schannel_client: schannel(&t["SchannelClient"]),
        schannel_server: schannel(&t["SchannelServer"]),
    });
    f.disk = first(&doc["disk"]).and_then(|d| {
        Some(DiskFacts {
            system_drive: str_of(&d["DeviceID"])?,
            free_bytes: u64_of(&d["FreeSpace"])?,
            total_bytes: u64_of(&d["Size"]).unwrap_or(0),
        })
    });
}

/// The ADSync service, the versions and the uninstall entries.
fn installation(doc: &Value, f: &mut Facts) {
    f.adsync_service = first(&doc["adsync_service"]).map(service);
    let engine = object(&doc["engine"]);
    let settings = object(&doc["global_settings"]);
    if engine.is_some() || settings.is_some() {
        f.ec = Some(EcFacts {
            engine_path: engine.and_then(|e| str_of(&e["Path"])),
            engine_file_version: engine.and_then(|e| version_of(&e["FileVersion"])),
            engine_product_version: engine.and_then(|e| version_of(&e["ProductVersion"])),
            config_version: settings.and_then(|s| version_of(&s["ServerConfigurationVersion"])),
            wizard_version: version_of(&doc["wizard"]),
        });
    }
    if !failed(f, "uninstall") {
        f.uninstall = Some(
            list(&doc["uninstall"])
                .iter()
                .filter_map(|u| {
                    Some(UninstallEntry {
                        display_name: str_of(&u["DisplayName"])?,
                        display_version: str_of(&u["DisplayVersion"]),
                        key: str_of(&u["Key"]),
                        wow6432: u["Wow6432"].as_bool().unwrap_or(false),
                    })
                })
                .collect(),
        );
    }
}

/// The scheduler, run history, auto-upgrade, Health Agent, open windows and sync rules.
fn sync(doc: &Value, f: &mut Facts) {
    let settings = object(&doc["global_settings"]);
    f.scheduler = object(&doc["scheduler"]).map(|s| SchedulerFacts {
        sync_cycle_enabled: bool_of(&s["SyncCycleEnabled"]),
        staging_mode_enabled: bool_of(&s["StagingModeEnabled"]),
        scheduler_suspended: bool_of(&s["SchedulerSuspended"]),
        sync_cycle_in_progress: bool_of(&s["SyncCycleInProgress"]),
        maintenance_enabled: bool_of(&s["MaintenanceEnabled"]),
        next_sync_cycle_start_utc: date_of(&s["NextSyncCycleStartTimeInUTC"]),
        effective_interval_minutes: minutes_of(&s["CurrentlyEffectiveSyncCycleInterval"]),
    });
    if !failed(f, "run_history") && !failed(f, "adsync_module") {
        let mut runs: Vec<RunResult> = list(&doc["run_history"])
            .iter()
            .filter_map(|r| {
                Some(RunResult {
                    connector: str_of(&r["ConnectorName"])?,
                    run_profile: str_of(&r["RunProfileName"])?,
                    result: str_of(&r["Result"]).unwrap_or_default().to_lowercase(),
                    start: date_of(&r["StartDate"]),
                    end: date_of(&r["EndDate"]),
                    complete: bool_of(&r["IsRunComplete"]),
                })
            })
            .collect();
        // Newest first: a run in progress (no end yet) before every ended one.
        runs.sort_by(|a, b| match (&a.end, &b.end) {
            (None, None) => b.start.cmp(&a.start),
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => y.cmp(x),
        });
        f.run_history = Some(runs);
    }
    f.auto_upgrade = str_of(&doc["auto_upgrade"]).map(|state| AutoUpgradeFacts {
        state,
        suspension_reason: settings
            .and_then(|s| str_of(&s["AutoUpgradeSuspensionReason"]))
            .filter(|r| !r.is_empty()),
    });
    if !failed(f, "health_agent") {
        f.health_agent = Some(
            list(&doc["health_agent"])
                .iter()
                .map(|s| service(s))
                .filter(|s| is_sync_health_service(&s.name))
                .collect(),
        );
    }
    if !failed(f, "open_ui") {
        let names: Vec<String> = list(&doc["open_ui"])
            .iter()
            .filter_map(|v| str_of(v))
            .collect();
        let open = |n: &str| names.iter().any(|p| p.eq_ignore_ascii_case(n));
        f.open_ui = Some(OpenUi {
            wizard: open("AzureADConnect"),
            sync_service_manager: open("miisclient"),
        });
    }
    if !failed(f, "sync_rules") && !failed(f, "adsync_module") {
        let mut rules = SyncRuleFacts::default();
        for r in list(&doc["sync_rules"]) {
            let standard = str_of(&r["ImmutableTag"]).is_some_and(|t| !t.is_empty());
            if standard {
                if bool_of(&r["Disabled"]) == Some(true) {
                    rules.customised_default_rules += 1;
                }
            } else {
                rules.custom_rules += 1;
                if u64_of(&r["Precedence"]).is_some_and(|p| p > 99) {
                    rules.custom_rules_outside_0_99 += 1;
                }
            }
        }
        f.sync_rules = Some(rules);
    }
}

/// The database, the engine's configuration file, the connectors, and the wizard's sign-in
/// page among the Trusted Sites.
fn sync_engine(doc: &Value, f: &mut Facts) {
    f.upgrade_activity = object(&doc["upgrade_activity"]).map(|u| ecfleet_proto::UpgradeActivity {
        installer_running: bool_of(&u["InstallerRunning"]).unwrap_or(false),
        events: events_of(&u["Events"]),
        installer_events: events_of(&u["InstallerEvents"]),
        wizard_log_tail: list(&u["WizardLogTail"])
            .into_iter()
            .filter_map(str_of)
            .map(|l| l.chars().take(MAX_LOG_LINE).collect())
            .collect(),
    });
    f.language_mode = str_of(&doc["language_mode"]);
    if !failed(f, "connector_overrides") && !failed(f, "adsync_module") {
        // An empty list comes as null (PowerShell unrolls it), one override as an object.
        f.connector_overrides = Some({
            list(&doc["connector_overrides"])
                .into_iter()
                .filter_map(|o| {
                    Some(ecfleet_proto::ConnectorOverride {
                        connector: str_of(&o["Connector"])?,
                        full_import_required: bool_of(&o["FullImportRequired"]).unwrap_or(false),
                        full_sync_required: bool_of(&o["FullSyncRequired"]).unwrap_or(false),
                    })
                })
                .collect()
        });
    }
    f.entra_auth = object(&doc["entra_auth"]).and_then(|a| {
        Some(ecfleet_proto::EntraAuthFacts {
            identity_type: str_of(&a["ConnectorIdentityType"])?,
        })
    });
    f.trusted_sites = object(&doc["trusted_sites"]).map(|t| ecfleet_proto::TrustedSitesFacts {
        policy: bool_of(&t["Policy"]).unwrap_or(false),
        profiles: list(&t["Profiles"])
            .into_iter()
            .filter_map(str_of)
            .collect(),
        profiles_checked: u64_of(&t["ProfilesChecked"]).unwrap_or(0) as u32,
    });
    f.database = object(&doc["database"]).map(database);
    let denied: Vec<String> = object(&doc["database"])
        .map(|d| {
            list(&d["SearchErrors"])
                .into_iter()
                .filter_map(str_of)
                .collect()
        })
        .unwrap_or_default();
    if !denied.is_empty() {
        // The search for ADSync.mdf could not enter some folders: said, never skipped.
        f.probe_failed(
            "database_files",
            format!(
                "searching for the LocalDB data file: {}",
                denied.join(" | ")
            ),
        );
    }
    f.engine_config = object(&doc["engine_config"]).and_then(|c| {
        let last_write = date_of(&c["LastWriteTimeUtc"]);
        let engine_last_write = date_of(&c["EngineLastWriteTimeUtc"]);
        Some(EngineConfigFacts {
            path: str_of(&c["Path"])?,
            edited_after_install: match (&last_write, &engine_last_write) {
                (Some(config), Some(engine)) => {
                    crate::backend::edited_after_install(config, engine)
                }
                _ => false,
            },
            last_write,
            engine_last_write,
            diagnostic_source_redirect: bool_of(&c["DiagnosticSourceRedirect"]).unwrap_or(false),
        })
    });
    if !failed(f, "connectors") && !failed(f, "adsync_module") {
        f.connectors = Some(
            list(&doc["connectors"])
                .iter()
                .filter_map(|c| {
                    Some(ConnectorFacts {
                        name: str_of(&c["Name"])?,
                        identifier: str_of(&c["Identifier"])?.trim().to_lowercase(),
                        connector_type: str_of(&c["Type"]).filter(|t| !t.is_empty()),
                    })
                })
                .collect(),
        );
    }
}

/// The longest line of the wizard's trace kept.
const MAX_LOG_LINE: usize = 300;

/// Application log events as the script renders them (`Time`, `Id`, `Message`), newest first.
fn events_of(v: &Value) -> Vec<ecfleet_proto::UpgradeEvent> {
    let mut events: Vec<ecfleet_proto::UpgradeEvent> = list(v)
        .into_iter()
        .filter_map(|e| {
            Some(ecfleet_proto::UpgradeEvent {
                time: date_of(&e["Time"])?,
                id: u64_of(&e["Id"])? as u32,
                message: str_of(&e["Message"]).unwrap_or_default(),
            })
        })
        .collect();
    events.sort_by(|a, b| b.time.cmp(&a.time));
    events
}

/// The sync Health Agent's services. The "Agent Updater" that cloud sync and pass-through
/// authentication install (`AzureADConnectAgentUpdater`) is not one of them: its state says
/// nothing about this server's Health Agent.
pub fn is_sync_health_service(name: &str) -> bool {
    [
        "AzureADConnectHealthSyncInsights",
        "AzureADConnectHealthSyncMonitor",
        "AzureADConnectHealthAgent",
    ]
    .iter()
    .any(|n| n.eq_ignore_ascii_case(name))
}

/// LocalDB when the service's `Server` parameter says so (`(localdb)`), or, without that
/// value, when a LocalDB data file sits under the install directory.
fn database(d: &Value) -> DatabaseFacts {
    let server = str_of(&d["Server"]).filter(|s| !s.trim().is_empty());
    let data_file = str_of(&d["DataFile"]).filter(|s| !s.is_empty());
    let local_db = match &server {
        Some(s) => s.to_lowercase().contains("localdb"),
        None => data_file.is_some(),
    };
    DatabaseFacts {
        local_db,
        server,
        instance: str_of(&d["SQLInstance"]).filter(|s| !s.trim().is_empty()),
        data_file_bytes: data_file.as_ref().and_then(|_| u64_of(&d["DataFileBytes"])),
        data_file,
    }
}

fn excerpt(text: &str) -> String {
    let t = text.trim();
    if t.len() > 200 {
        format!("{}…", &t[..t.floor_char_boundary(200)])
    } else {
        t.to_string()
    }
}

/// A list from what PowerShell emits for zero, one or many objects.
pub(super) fn list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Null => Vec::new(),
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

fn first(v: &Value) -> Option<&Value> {
    list(v).into_iter().find(|x| x.is_object())
}

pub(super) fn object(v: &Value) -> Option<&Value> {
    v.is_object().then_some(v)
}

pub(super) fn str_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn u64_of(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn bool_of(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// A version string, without the build-lab suffix some FileVersion strings carry.
pub(super) fn version_of(v: &Value) -> Option<String> {
    str_of(v)
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .filter(|s| !s.is_empty())
}

/// A TimeSpan as PS 5.1 serialises it (an object with TotalMinutes) or as a `hh:mm:ss` string.
pub(super) fn minutes_of(v: &Value) -> Option<u32> {
    match v {
        Value::Object(_) => v["TotalMinutes"].as_f64().map(|m| m.round() as u32),
        Value::String(s) => {
            let parts: Vec<u32> = s.split(':').filter_map(|p| p.parse().ok()).collect();
            match parts.as_slice() {
                [h, m, _s] => Some(h * 60 + m),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A date as RFC 3339 UTC, from `/Date(1732406400000)/` (PS 5.1, optionally with an offset
/// such as `+0100`, which does not change the instant) or an ISO 8601 string (PS 7).
pub fn date_of(v: &Value) -> Option<String> {
    let s = v.as_str()?.trim();
    if let Some(inner) = s.strip_prefix("/Date(").and_then(|r| r.strip_suffix(")/")) {
        let digits_end = inner
            .char_indices()
            .skip(1)
            .find(|(_, c)| *c == '+' || *c == '-')
            .map(|(i, _)| i)
            .unwrap_or(inner.len());
        let ms: i64 = inner[..digits_end].parse().ok()?;
        let ts = jiff::Timestamp::from_millisecond(ms).ok()?;
        return Some(ts.round(jiff::Unit::Second).unwrap_or(ts).to_string());
    }
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Some(ts.to_string());
    }
    // A local time without offset: keep it as UTC (ADSync reports UTC).
    s.parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|dt| format!("{dt}Z").parse::<jiff::Timestamp>().ok())
        .map(|ts| ts.to_string())
}

fn dotnet_tls(v: &Value) -> DotNetTls {
    DotNetTls {
        system_default_tls_versions: u64_of(&v["SystemDefaultTlsVersions"]).map(|n| n as u32),
        sch_use_strong_crypto: u64_of(&v["SchUseStrongCrypto"]).map(|n| n as u32),
    }
}

fn schannel(v: &Value) -> SchannelTls {
    SchannelTls {
        enabled: u64_of(&v["Enabled"]).map(|n| n as u32),
        disabled_by_default: u64_of(&v["DisabledByDefault"]).map(|n| n as u32),
    }
}

/// A service from Win32_Service (`State` is a string there; Get-Service would give a number).
fn service(v: &Value) -> ServiceFacts {
    let state = match &v["State"] {
        Value::Number(n) => match n.as_u64() {
            Some(1) => "Stopped".to_string(),
            Some(2) => "StartPending".to_string(),
            Some(3) => "StopPending".to_string(),
            Some(4) => "Running".to_string(),
            Some(7) => "Paused".to_string(),
            _ => format!("State{n}"),
        },
        other => str_of(other).unwrap_or_else(|| "Unknown".into()),
    };
    ServiceFacts {
        name: str_of(&v["Name"]).unwrap_or_default(),
        display_name: str_of(&v["DisplayName"]),
        state,
        start_mode: str_of(&v["StartMode"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn fixture(name: &str) -> Facts {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/windows")
            .join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        facts_from_probe_output(&text, "test").unwrap()
    }

    #[test]
    fn a_host_in_the_middle_of_its_upgrade_reads_as_one() {
        let f = fixture("upgrade-migrating.json");
        // The binaries are the new build, the configuration is not yet: the wizard is open.
        let ec = f.ec.as_ref().unwrap();
        assert_eq!(ec.engine_product_version.as_deref(), Some("2.6.92.0"));
        assert_eq!(ec.config_version.as_deref(), Some("2.6.3.0"));
        assert!(f.upgrade_running(), "the wizard runs");
        let a = f.upgrade_activity.as_ref().unwrap();
        assert!(!a.installer_running);
        // One installer event came as an object, not a list.
        assert_eq!(a.installer_events.len(), 1);
        assert_eq!(a.installer_events[0].id, 11707);
        assert_eq!(a.wizard_log_tail.len(), 2);
        // The full import the upgrade queued runs: not ended, not a result.
        let running = &f.run_history.as_ref().unwrap()[0];
        assert_eq!(running.run_profile, "Full Import");
        assert!(!running.ended());
        let o = f.connector_overrides.as_ref().unwrap();
        assert_eq!(o.len(), 1, "one override came as an object");
        assert!(o[0].full_import_required && o[0].full_sync_required);
        assert_eq!(
            f.entra_auth.as_ref().unwrap().identity_type,
            "ServiceAccount"
        );
        assert_eq!(f.language_mode.as_deref(), Some("FullLanguage"));
        // The LocalDB search that was denied is reported, not skipped.
        let denied = f
            .errors
            .iter()
            .find(|e| e.probe == "database_files")
            .unwrap();
        assert!(denied.message.contains("is denied"), "{}", denied.message);
    }

    #[test]
    fn constrained_language_is_reported_with_nothing_else() {
        let f = fixture("constrained-language.json");
        assert_eq!(f.language_mode.as_deref(), Some("ConstrainedLanguage"));
        assert!(f.ec.is_none() && f.os.is_none());
        assert!(f.errors.iter().any(|e| e.probe == "language_mode"));
    }

    #[test]
    fn the_facts_script_looks_for_what_the_upgrade_shows() {
        for needle in [
            "$ExecutionContext.SessionState.LanguageMode",
            "Set-Content -LiteralPath $OutFile -Encoding Ascii",
            "ProviderName = 'MsiInstaller'; Id = 11707, 11708, 1033",
            "'Microsoft Entra Connect Upgrade', 'Azure AD Connect Upgrade'",
            "trace-*.log",
            "Get-ADSyncSchedulerConnectorOverride",
            "Get-ADSyncEntraConnectorCredential",
            "-ErrorVariable denied",
        ] {
            assert!(
                super::super::SCRIPT.contains(needle),
                "facts.ps1 lacks {needle}"
            );
        }
    }

    #[test]
    fn upgrade_activity_is_read_newest_first_and_a_lone_event_is_a_list() {
        let running = fixture("half-upgraded-single-objects.json")
            .upgrade_activity
            .unwrap();
        assert!(running.installer_running);
        assert_eq!(running.events[0].message, "UpgradeFailedRollbackSuccess");
        assert_eq!(running.events[0].id, 302);
        let done = fixture("localized-utc10.json").upgrade_activity.unwrap();
        assert!(!done.installer_running);
        assert_eq!(done.events.len(), 1);
        assert_eq!(done.events[0].time, "2026-11-24T09:12:00Z");
        assert!(fixture("access-denied.json").upgrade_activity.is_none());
    }

    #[test]
    fn trusted_sites_by_policy_or_by_no_profile_at_all() {
        let by_policy = fixture("half-upgraded-single-objects.json")
            .trusted_sites
            .unwrap();
        assert!(by_policy.policy && by_policy.profiles.is_empty());
        let nowhere = fixture("localized-utc10.json").trusted_sites.unwrap();
        assert!(!nowhere.policy && nowhere.profiles.is_empty());
        assert_eq!(nowhere.profiles_checked, 1);
        // An older script's output has no such probe: unknown, not "untrusted".
        assert!(fixture("access-denied.json").trusted_sites.is_none());
    }

    #[test]
    fn a_healthy_server_2022_host_parses_completely() {
        let f = fixture("healthy-2022.json");
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        // One profile (a single string, not a list) has the sign-in page in Trusted Sites.
        let t = f.trusted_sites.clone().unwrap();
        assert_eq!(
            (t.policy, t.profiles.len(), t.profiles_checked),
            (false, 1, 2)
        );
        let os = f.os.unwrap();
        assert_eq!(
            (os.build, os.installation_type.as_deref()),
            (20348, Some("Server"))
        );
        assert_eq!(f.dotnet.unwrap().release, Some(528449));
        let ec = f.ec.unwrap();
        assert_eq!(ec.engine_file_version.as_deref(), Some("2.6.91.0"));
        assert_eq!(ec.config_version.as_deref(), Some("2.6.91.0"));
        assert_eq!(
            ec.engine_path.as_deref(),
            Some(r"C:\Program Files\Microsoft Azure AD Sync\Bin\miiserver.exe")
        );
        let s = f.scheduler.unwrap();
        assert_eq!(
            s.next_sync_cycle_start_utc.as_deref(),
            Some("2026-11-24T10:30:00Z")
        );
        assert_eq!(s.effective_interval_minutes, Some(30));
        let runs = f.run_history.unwrap();
        assert_eq!(runs.len(), 3);
        assert_eq!(runs[0].run_profile, "Export", "sorted newest first");
        assert_eq!(f.tls12.unwrap().schannel_client.enabled, Some(1));
        assert_eq!(f.disk.unwrap().free_bytes, 48_318_382_080);
        assert_eq!(f.uninstall.unwrap().len(), 2);
        assert_eq!(f.health_agent.unwrap()[0].state, "Running");
        assert_eq!(
            f.open_ui.unwrap(),
            OpenUi {
                wizard: false,
                sync_service_manager: false
            }
        );
        assert_eq!(f.sync_rules.unwrap().custom_rules, 1);
    }

    #[test]
    fn single_objects_offset_dates_and_numeric_states_are_understood() {
        let f = fixture("half-upgraded-single-objects.json");
        let ec = f.ec.unwrap();
        assert_eq!(ec.engine_file_version.as_deref(), Some("2.6.84.0"));
        assert_eq!(ec.config_version.as_deref(), Some("2.6.3.0"));
        let runs = f.run_history.unwrap();
        assert_eq!(runs.len(), 1, "one run comes as an object, not a list");
        assert_eq!(runs[0].end.as_deref(), Some("2026-11-23T08:00:00Z"));
        assert_eq!(runs[0].result, "completed-export-errors");
        assert!(f.open_ui.unwrap().sync_service_manager);
        assert_eq!(f.health_agent.unwrap()[0].state, "Stopped");
        assert_eq!(
            f.auto_upgrade.unwrap().suspension_reason.as_deref(),
            Some("UpgradeNotSupportedCustomizedSyncRules")
        );
        assert_eq!(f.sync_rules.unwrap().customised_default_rules, 1);
    }

    #[test]
    fn a_missing_adsync_module_leaves_nulls_and_errors_but_keeps_the_rest() {
        let f = fixture("no-adsync-module.json");
        assert!(f.scheduler.is_none() && f.run_history.is_none() && f.sync_rules.is_none());
        assert!(
            f.errors
                .iter()
                .any(|e| e.probe == "adsync_module" && e.message.contains("ADSync"))
        );
        assert_eq!(f.os.unwrap().build, 9600);
        assert_eq!(f.dotnet.unwrap().release, Some(394802));
        assert_eq!(
            f.ec.unwrap().engine_file_version.as_deref(),
            Some("1.6.16.0")
        );
    }

    #[test]
    fn access_denied_on_registry_probes_is_reported_per_probe() {
        let f = fixture("access-denied.json");
        assert!(f.tls12.is_none() && f.dotnet.is_none());
        let denied: Vec<&str> = f
            .errors
            .iter()
            .filter(|e| e.message.contains("denied"))
            .map(|e| e.probe.as_str())
            .collect();
        assert_eq!(denied, ["dotnet", "tls12"]);
        assert!(f.disk.is_some());
    }

    #[test]
    fn database_engine_config_and_connectors_of_a_healthy_host() {
        let f = fixture("healthy-2022.json");
        let db = f.database.unwrap();
        assert!(db.local_db);
        assert_eq!(db.instance.as_deref(), Some(r".\ADSync2019"));
        assert_eq!(db.data_file_bytes, Some(1_288_490_188));
        let config = f.engine_config.unwrap();
        assert_eq!(config.last_write.as_deref(), Some("2025-08-14T09:12:34Z"));
        assert!(!config.edited_after_install, "written with the install");
        let connectors = f.connectors.unwrap();
        assert_eq!(connectors.len(), 2);
        assert_eq!(connectors[1].identifier, ecfleet_proto::ENTRA_CONNECTOR_ID);
        assert_eq!(connectors[0].connector_type.as_deref(), Some("AD"));
    }

    #[test]
    fn a_full_localdb_an_edited_config_and_a_lone_connector_object() {
        let f = fixture("localdb-full-edited-config.json");
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        let db = f.database.unwrap();
        assert!(db.local_db);
        assert_eq!(db.data_file_bytes, Some(10_737_352_704));
        let config = f.engine_config.unwrap();
        assert!(config.edited_after_install);
        assert!(!config.diagnostic_source_redirect);
        assert_eq!(
            config.engine_last_write.as_deref(),
            Some("2025-12-04T10:31:12Z")
        );
        let connectors = f.connectors.unwrap();
        assert_eq!(connectors.len(), 1, "one connector comes as an object");
        assert_eq!(connectors[0].name, "fabrikam.com");
        assert_eq!(
            f.run_history.unwrap()[0].result,
            "stopped-database-disk-full"
        );
    }

    #[test]
    fn full_sql_and_upper_case_identifiers_are_understood() {
        let f = fixture("half-upgraded-single-objects.json");
        let db = f.database.unwrap();
        assert!(!db.local_db);
        assert_eq!(db.server.as_deref(), Some("SQL01.fabrikam.local"));
        assert_eq!(db.data_file_bytes, None);
        let config = f.engine_config.unwrap();
        assert!(config.edited_after_install && config.diagnostic_source_redirect);
        assert!(
            f.connectors
                .unwrap()
                .iter()
                .any(|c| c.identifier == ecfleet_proto::ENTRA_CONNECTOR_ID)
        );
    }

    #[test]
    fn a_denied_parameters_key_and_a_missing_module_leave_those_probes_null() {
        let denied = fixture("access-denied.json");
        assert!(denied.database.is_none());
        assert!(denied.errors.iter().any(|e| e.probe == "database"));
        assert!(denied.engine_config.is_some() && denied.connectors.is_some());
        let v1 = fixture("no-adsync-module.json");
        assert!(v1.connectors.is_none());
        assert_eq!(v1.database.unwrap().instance.as_deref(), Some(r".\ADSync"));
    }

    #[test]
    fn warnings_before_the_json_and_garbage_are_handled() {
        let ok = facts_from_probe_output(
            "WARNING: something\r\n{\"collected_at\":\"2026-11-24T00:00:00Z\",\"errors\":null}\r\n",
            "t",
        )
        .unwrap();
        assert_eq!(ok.collected_at, "2026-11-24T00:00:00Z");
        assert!(
            facts_from_probe_output("Access is denied.", "t")
                .unwrap_err()
                .contains("no JSON")
        );
        assert!(
            facts_from_probe_output("{\"a\":", "t")
                .unwrap_err()
                .contains("invalid JSON")
        );
    }

    #[test]
    fn localized_text_in_ascii_escapes_and_utc_dates_from_a_utc_plus_10_host() {
        // What the fixed script writes on a Japanese host at UTC+10: every non-ASCII character
        // as \uXXXX (never raw OEM bytes, where a Shift-JIS trail byte 0x5C can end a string),
        // and ADSync's times as the UTC they hold, not shifted by the host's offset.
        let f = fixture("localized-utc10.json");
        let denied = f.errors.iter().find(|e| e.probe == "dotnet").unwrap();
        assert_eq!(denied.message, "アクセスが拒否されました。");
        assert!(
            f.dotnet.is_none(),
            "denied is a probe error, not a missing .NET"
        );
        assert_eq!(
            f.os.as_ref().unwrap().caption,
            "Microsoft Windows Server 2022 Standard Évaluation"
        );
        let runs = f.run_history.unwrap();
        assert_eq!(runs[0].end.as_deref(), Some("2026-11-24T09:50:00Z"));
        assert_eq!(runs[0].complete, Some(true));
        assert_eq!(f.collected_at, "2026-11-24T10:00:00Z");
    }

    #[test]
    fn raw_oem_code_page_output_is_why_the_result_goes_through_a_file() {
        // "Zugriff verweigert" with CP850's ü (0x81) on stdout: not UTF-8, so read that way the
        // message is damaged. The script therefore writes ASCII JSON to a file (see mod.rs).
        let mut raw = b"{\"collected_at\":\"2026-11-24T10:00:00Z\",\"errors\":[{\"probe\":\"dotnet\",\"message\":\"Zugriff verweigert (R".to_vec();
        raw.push(0x81);
        raw.extend_from_slice(b"ckfrage)\"}]}");
        let lossy = String::from_utf8_lossy(&raw);
        let f = facts_from_probe_output(&lossy, "t").unwrap();
        assert!(f.errors[0].message.contains('\u{fffd}'));
        let escaped = facts_from_probe_output(
            "{\"collected_at\":\"2026-11-24T10:00:00Z\",\"errors\":[{\"probe\":\"dotnet\",\"message\":\"Zugriff verweigert (R\\u00fcckfrage)\"}]}",
            "t",
        )
        .unwrap();
        assert_eq!(escaped.errors[0].message, "Zugriff verweigert (Rückfrage)");
    }

    #[test]
    fn a_stopped_cloud_sync_updater_is_not_the_health_agent() {
        let f = fixture("cloud-sync-updater-stopped.json");
        let health = f.health_agent.unwrap();
        assert_eq!(health.len(), 1, "{health:?}");
        assert_eq!(health[0].name, "AzureADConnectHealthAgent");
        assert_eq!(health[0].state, "Running");
    }

    #[test]
    fn ps_dates_in_every_shape() {
        let d = |s: &str| date_of(&Value::String(s.into()));
        assert_eq!(
            d("/Date(1764000000000)/").as_deref(),
            Some("2025-11-24T16:00:00Z")
        );
        assert_eq!(
            d("/Date(1764000000000+0100)/").as_deref(),
            Some("2025-11-24T16:00:00Z")
        );
        assert_eq!(d("/Date(-1000)/").as_deref(), Some("1969-12-31T23:59:59Z"));
        assert_eq!(
            d("2026-11-24T10:30:00Z").as_deref(),
            Some("2026-11-24T10:30:00Z")
        );
        assert_eq!(
            d("2026-11-24T10:30:00").as_deref(),
            Some("2026-11-24T10:30:00Z")
        );
        assert_eq!(d("yesterday"), None);
    }
}
