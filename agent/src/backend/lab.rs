//! The `lab` backend: facts from a simulated Windows host described by `<lab_root>/machine.toml`
//! (format: `ecfleet_proto::lab::Machine`, documented in docs/lab.md). Injected faults (hang,
//! failing probes, crash, garbage output) run through the same code path as real answers.

use std::path::Path;
use std::time::Duration;

use ecfleet_proto::lab::{Machine, MachineConnector};
use ecfleet_proto::{
    ConnectorFacts, DatabaseFacts, DotNetFacts, ENTRA_CONNECTOR_ID, EcFacts, EngineConfigFacts,
    Facts, OsFacts, RunResult, SchedulerFacts, ServiceFacts,
};
use jiff::{SignedDuration, Timestamp};

pub enum LabOutput {
    Facts(Box<Facts>),
    Raw(String),
}

pub fn collect(root: &Path) -> Result<LabOutput, String> {
    let path = root.join("machine.toml");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let machine: Machine = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let faults = &machine.faults;
    if faults.hang_seconds > 0 {
        std::thread::sleep(Duration::from_secs(faults.hang_seconds));
    }
    if let Some(code) = faults.exit_code {
        eprintln!("ecfleet-agent: simulated failure (faults.exit_code = {code})");
        std::process::exit(code);
    }
    if let Some(garbage) = &faults.garbage_output {
        return Ok(LabOutput::Raw(garbage.clone()));
    }
    let now = Timestamp::now();
    Ok(LabOutput::Facts(Box::new(facts_from_machine(
        &machine, now,
    ))))
}

fn minutes_before(now: Timestamp, minutes: u32) -> String {
    (now - SignedDuration::from_mins(minutes as i64)).to_string()
}

/// Renders the simulated machine as the facts a real host would report at `now`.
pub fn facts_from_machine(m: &Machine, now: Timestamp) -> Facts {
    let now = now.round(jiff::Unit::Second).unwrap_or(now);
    let mut f = Facts::new("lab", env!("CARGO_PKG_VERSION"), now.to_string());
    f.host_name = Some(m.host.name.clone());
    f.os = Some(OsFacts {
        caption: m.os.caption.clone(),
        version: m.os.version.clone(),
        build: m.os.build,
        installation_type: m.os.installation_type.clone(),
    });
    f.dotnet = Some(DotNetFacts {
        release: m.dotnet.release,
    });
    f.tls12 = Some(m.tls12.clone());
    f.disk = Some(m.disk.clone());
    f.uninstall = Some(m.uninstall.clone());
    f.open_ui = Some(m.open_ui.clone());
    match &m.ec {
        Some(ec) => {
            let engine = format!(r"{}\Bin\miiserver.exe", ec.install_dir);
            f.ec = Some(EcFacts {
                engine_path: Some(engine),
                engine_file_version: Some(ec.engine_version.clone()),
                engine_product_version: Some(ec.engine_version.clone()),
                config_version: Some(ec.config_version.clone()),
                wizard_version: ec.wizard_version.clone(),
            });
            f.adsync_service = Some(ServiceFacts {
                name: "ADSync".into(),
                display_name: Some("Microsoft Azure AD Sync".into()),
                state: m.service.state.clone(),
                start_mode: Some(m.service.start_mode.clone()),
            });
            let s = &m.scheduler;
            f.scheduler = Some(SchedulerFacts {
                sync_cycle_enabled: Some(s.sync_cycle_enabled),
                staging_mode_enabled: Some(s.staging_mode_enabled),
                scheduler_suspended: Some(s.scheduler_suspended),
                sync_cycle_in_progress: Some(s.sync_cycle_in_progress),
                maintenance_enabled: Some(s.maintenance_enabled),
                next_sync_cycle_start_utc: Some(
                    (now + SignedDuration::from_mins(s.next_cycle_in_minutes as i64)).to_string(),
                ),
                effective_interval_minutes: Some(s.interval_minutes),
            });
            let mut runs: Vec<RunResult> = m
                .runs
                .iter()
                .map(|r| RunResult {
                    connector: r.connector.clone(),
                    run_profile: r.run_profile.clone(),
                    result: r.result.clone(),
                    start: Some(
                        (now - SignedDuration::from_mins(r.age_minutes as i64)
                            - SignedDuration::from_secs(r.duration_seconds as i64))
                        .to_string(),
                    ),
                    end: Some(minutes_before(now, r.age_minutes)),
                    complete: None,
                })
                .collect();
            runs.sort_by(|a, b| b.end.cmp(&a.end));
            f.run_history = Some(runs);
            f.auto_upgrade = m.auto_upgrade.clone();
            f.health_agent = Some(
                m.health_agent
                    .iter()
                    .map(|h| ServiceFacts {
                        name: h.name.clone(),
                        display_name: Some(h.display_name.clone()),
                        state: h.state.clone(),
                        start_mode: Some(h.start_mode.clone()),
                    })
                    .collect(),
            );
            f.sync_rules = Some(m.sync_rules.clone());
            f.database = Some(database(m, &ec.install_dir));
            f.engine_config = Some(engine_config(m, &ec.install_dir, now));
            f.connectors = Some(connectors(m.connectors.as_deref()));
        }
        None => {
            f.adsync_service = Some(ServiceFacts {
                name: "ADSync".into(),
                display_name: None,
                state: "NotFound".into(),
                start_mode: None,
            });
            for probe in [
                "ec",
                "scheduler",
                "run_history",
                "auto_upgrade",
                "sync_rules",
                "database",
                "engine_config",
                "connectors",
            ] {
                f.probe_failed(probe, "The term 'Get-ADSyncScheduler' is not recognized: the ADSync module is not installed");
            }
        }
    }
    for probe in &m.faults.fail_probes {
        fail_probe(&mut f, probe);
    }
    f
}

fn database(m: &Machine, install_dir: &str) -> DatabaseFacts {
    let db = &m.database;
    if db.local_db {
        DatabaseFacts {
            local_db: true,
            server: Some("(localdb)".into()),
            instance: Some(r".\ADSync2019".into()),
            data_file: Some(format!(r"{install_dir}\Data\ADSync2019\ADSync.mdf")),
            data_file_bytes: Some(db.size_mb.saturating_mul(1 << 20)),
        }
    } else {
        DatabaseFacts {
            local_db: false,
            server: Some(db.sql_server.clone()),
            instance: None,
            data_file: None,
            data_file_bytes: None,
        }
    }
}

/// The engine was installed 90 days before collection; an edited configuration file was
/// written 30 days later.
fn engine_config(m: &Machine, install_dir: &str, now: Timestamp) -> EngineConfigFacts {
    let installed = minutes_before(now, 90 * 24 * 60);
    let written = if m.engine_config.edited {
        minutes_before(now, 60 * 24 * 60)
    } else {
        installed.clone()
    };
    EngineConfigFacts {
        path: format!(r"{install_dir}\Bin\miiserver.exe.config"),
        edited_after_install: super::edited_after_install(&written, &installed),
        last_write: Some(written),
        engine_last_write: Some(installed),
        diagnostic_source_redirect: m.engine_config.diagnostic_source_redirect,
    }
}

/// The machine's connectors, or the usual pair: one AD forest and Microsoft Entra ID.
fn connectors(listed: Option<&[MachineConnector]>) -> Vec<ConnectorFacts> {
    match listed {
        Some(list) => list
            .iter()
            .map(|c| ConnectorFacts {
                name: c.name.clone(),
                identifier: c.identifier.to_lowercase(),
                connector_type: c.connector_type.clone(),
            })
            .collect(),
        None => vec![
            ConnectorFacts {
                name: "contoso.com".into(),
                identifier: "9a7b2c0e-6a1f-4f4e-8d0b-3c5e7f9a1b2d".into(),
                connector_type: Some("AD".into()),
            },
            ConnectorFacts {
                name: "contoso.onmicrosoft.com - AAD".into(),
                identifier: ENTRA_CONNECTOR_ID.into(),
                connector_type: Some("Extensible2".into()),
            },
        ],
    }
}

/// Blanks one probe's facts and records the error, as a failing probe on Windows would.
fn fail_probe(f: &mut Facts, probe: &str) {
    match probe {
        "host_name" => f.host_name = None,
        "os" => f.os = None,
        "dotnet" => f.dotnet = None,
        "tls12" => f.tls12 = None,
        "disk" => f.disk = None,
        "ec" => f.ec = None,
        "uninstall" => f.uninstall = None,
        "adsync_service" => f.adsync_service = None,
        "scheduler" => f.scheduler = None,
        "run_history" => f.run_history = None,
        "auto_upgrade" => f.auto_upgrade = None,
        "health_agent" => f.health_agent = None,
        "open_ui" => f.open_ui = None,
        "sync_rules" => f.sync_rules = None,
        "database" => f.database = None,
        "engine_config" => f.engine_config = None,
        "connectors" => f.connectors = None,
        _ => {
            f.probe_failed(probe, "unknown probe named in faults.fail_probes");
            return;
        }
    }
    f.probe_failed(probe, "Access is denied. (simulated: faults.fail_probes)");
}

#[cfg(test)]
mod tests {
    use super::*;

    const MACHINE: &str = r#"
[host]
name = "T01-CURRENT"
scenario = "current"
[os]
caption = "Microsoft Windows Server 2022 Standard"
version = "10.0.20348"
build = 20348
[dotnet]
release = 528449
[disk]
system_drive = "C:"
free_bytes = 60000000000
total_bytes = 127000000000
[ec]
engine_version = "2.6.91.0"
config_version = "2.6.91.0"
[[runs]]
connector = "contoso.com"
run_profile = "Delta Import"
result = "success"
age_minutes = 12
[[runs]]
connector = "contoso.onmicrosoft.com - AAD"
run_profile = "Export"
result = "success"
age_minutes = 5
[faults]
fail_probes = ["dotnet"]
"#;

    #[test]
    fn machine_toml_becomes_facts_with_times_relative_to_collection() {
        let m: Machine = toml::from_str(MACHINE).unwrap();
        let now: Timestamp = "2026-11-24T10:00:00Z".parse().unwrap();
        let f = facts_from_machine(&m, now);
        assert_eq!(f.collected_at, "2026-11-24T10:00:00Z");
        let runs = f.run_history.unwrap();
        assert_eq!(runs[0].run_profile, "Export", "newest first");
        assert_eq!(runs[0].end.as_deref(), Some("2026-11-24T09:55:00Z"));
        assert_eq!(f.ec.unwrap().config_version.as_deref(), Some("2.6.91.0"));
        // The failing probe is null, with an error entry, and the rest is intact.
        assert!(f.dotnet.is_none());
        assert_eq!(f.errors[0].probe, "dotnet");
        assert_eq!(f.os.unwrap().build, 20348);
    }

    #[test]
    fn database_engine_config_and_connectors_default_to_a_healthy_install() {
        let m: Machine = toml::from_str(MACHINE).unwrap();
        let f = facts_from_machine(&m, "2026-11-24T10:00:00Z".parse().unwrap());
        let db = f.database.unwrap();
        assert!(db.local_db);
        assert_eq!(db.data_file_bytes, Some(640 << 20));
        let config = f.engine_config.unwrap();
        assert!(!config.edited_after_install && !config.diagnostic_source_redirect);
        assert_eq!(config.engine_last_write, config.last_write);
        let connectors = f.connectors.unwrap();
        assert!(
            connectors
                .iter()
                .any(|c| c.identifier == ENTRA_CONNECTOR_ID)
        );
    }

    #[test]
    fn an_edited_config_a_full_localdb_and_no_entra_connector_show_in_the_facts() {
        let text = MACHINE.replace(
            "[faults]",
            r#"[database]
size_mb = 10240
[engine_config]
edited = true
[[connectors]]
name = "contoso.com"
identifier = "9A7B2C0E-6A1F-4F4E-8D0B-3C5E7F9A1B2D"
[faults]"#,
        );
        let m: Machine = toml::from_str(&text).unwrap();
        let f = facts_from_machine(&m, "2026-11-24T10:00:00Z".parse().unwrap());
        assert_eq!(f.database.unwrap().data_file_bytes, Some(10 << 30));
        let config = f.engine_config.unwrap();
        assert!(config.edited_after_install);
        assert_eq!(config.last_write.as_deref(), Some("2026-09-25T10:00:00Z"));
        let connectors = f.connectors.unwrap();
        assert_eq!(connectors.len(), 1);
        assert_eq!(
            connectors[0].identifier,
            "9a7b2c0e-6a1f-4f4e-8d0b-3c5e7f9a1b2d"
        );
    }

    #[test]
    fn a_host_without_entra_connect_reports_the_module_missing() {
        let text = MACHINE.split("[ec]").next().unwrap();
        let m: Machine = toml::from_str(text).unwrap();
        let f = facts_from_machine(&m, Timestamp::now());
        assert!(f.ec.is_none() && f.scheduler.is_none());
        assert_eq!(f.adsync_service.unwrap().state, "NotFound");
        assert!(f.errors.iter().any(|e| e.probe == "scheduler"));
    }
}
