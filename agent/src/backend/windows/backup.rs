//! The `windows` backend's `backup` step: runs the embedded `backup.ps1` (the same launch as the
//! facts script: Windows PowerShell by full path, under a deadline, ASCII JSON to a file) and
//! turns its output into what [`crate::backup`] packs. The parsing is plain code, tested on
//! fixture output (agent/tests/fixtures/backup-*.json) on any platform.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ecfleet_proto::backup::{Configuration, Connector, Partition, SchedulerSettings, SyncRule};
use serde_json::Value;

use super::parse::{bool_of, document, list, minutes_of, object, str_of, u64_of, version_of};
use crate::backup::Gathered;

const SCRIPT: &str = include_str!("backup.ps1");

/// `Get-ADSyncServerConfiguration` on a large configuration takes minutes; the controller's
/// backup deadline (playbook) is longer.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(300);

pub fn gather(out: &Path) -> Result<Gathered, String> {
    let script = out.join("ecfleet-backup.ps1");
    let result = out.join("ecfleet-backup-result.json");
    let (written, finished) = super::run_script(
        SCRIPT,
        &script,
        &result,
        &[("-OutDir", out)],
        SCRIPT_DEADLINE,
    )?;
    let Some(bytes) = written else {
        return Err(format!(
            "the backup script wrote no result: {}",
            String::from_utf8_lossy(&finished.stderr).trim()
        ));
    };
    gathered_from_output(&String::from_utf8_lossy(&bytes))
}

/// What the script's JSON says: where the policy and the dump are, and the configuration.
pub fn gathered_from_output(text: &str) -> Result<Gathered, String> {
    let doc = document(text)?;
    let error_of = |part: &str| {
        list(&doc["errors"])
            .into_iter()
            .find(|e| e["probe"].as_str() == Some(part))
            .and_then(|e| str_of(&e["message"]))
    };
    let dump_dir = match str_of(&doc["dump"]) {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => Err(error_of("dump")
            .or_else(|| error_of("adsync_module"))
            .unwrap_or_else(|| "Get-ADSyncServerConfiguration wrote nothing".into())),
    };
    let configuration = if doc["connectors"].is_null() && doc["rules"].is_null() {
        Err(error_of("connectors")
            .or_else(|| error_of("adsync_module"))
            .unwrap_or_else(|| "the configuration could not be read".into()))
    } else {
        Ok(configuration(&doc))
    };
    Ok(Gathered {
        host_name: str_of(&doc["host_name"]),
        engine_version: version_of(&doc["engine_version"]),
        applied_policy: str_of(&doc["applied_policy"]).map(PathBuf::from),
        dump_dir,
        export_method: str_of(&doc["export_method"]),
        export_problem: str_of(&doc["export_problem"]).or_else(|| error_of("export_method")),
        configuration_changed_at: str_of(&doc["configuration_changed_at"]),
        engine_config: str_of(&doc["engine_config"]).map(PathBuf::from),
        proxy_config: str_of(&doc["proxy_config"]).map(PathBuf::from),
        configuration,
    })
}

fn strings(v: &Value) -> Vec<String> {
    list(v).into_iter().filter_map(str_of).collect()
}

fn configuration(doc: &Value) -> Configuration {
    let rules: Vec<(bool, SyncRule)> = list(&doc["rules"])
        .into_iter()
        .filter_map(|r| {
            let standard = str_of(&r["ImmutableTag"]).is_some_and(|t| !t.is_empty());
            Some((
                standard,
                SyncRule {
                    identifier: str_of(&r["Identifier"])?.trim().to_lowercase(),
                    name: str_of(&r["Name"]).unwrap_or_default(),
                    direction: str_of(&r["Direction"]).unwrap_or_default(),
                    precedence: u64_of(&r["Precedence"]).unwrap_or(0) as u32,
                    connector: str_of(&r["Connector"]).unwrap_or_default(),
                    disabled: bool_of(&r["Disabled"]).unwrap_or(false),
                    scoping: strings(&r["Scoping"]),
                    join: strings(&r["Join"]),
                    attribute_flows: strings(&r["Flows"]),
                },
            ))
        })
        .collect();
    let connectors = list(&doc["connectors"])
        .into_iter()
        .filter_map(|c| {
            Some(Connector {
                identifier: str_of(&c["Identifier"])?.trim().to_lowercase(),
                name: str_of(&c["Name"]).unwrap_or_default(),
                connector_type: str_of(&c["Type"]).filter(|t| !t.is_empty()),
                partitions: list(&c["Partitions"])
                    .into_iter()
                    .map(|p| Partition {
                        name: str_of(&p["Name"]).unwrap_or_default(),
                        selected: bool_of(&p["Selected"]).unwrap_or(false),
                        inclusions: strings(&p["Inclusions"]),
                        exclusions: strings(&p["Exclusions"]),
                    })
                    .collect(),
            })
        })
        .collect();
    let scheduler = object(&doc["scheduler"])
        .map(|s| SchedulerSettings {
            interval_minutes: minutes_of(&s["CustomizedSyncCycleInterval"])
                .or_else(|| minutes_of(&s["CurrentlyEffectiveSyncCycleInterval"])),
            staging_mode_enabled: bool_of(&s["StagingModeEnabled"]),
            sync_cycle_enabled: bool_of(&s["SyncCycleEnabled"]),
        })
        .unwrap_or_default();
    let global_settings = list(&doc["global_settings"])
        .into_iter()
        .filter_map(|p| Some((str_of(&p["Name"])?, str_of(&p["Value"]).unwrap_or_default())))
        .collect();
    let (standard, custom): (Vec<_>, Vec<_>) = rules.into_iter().partition(|(s, _)| *s);
    Configuration {
        custom_rules: custom.into_iter().map(|(_, r)| r).collect(),
        customised_default_rules: standard.into_iter().map(|(_, r)| r).collect(),
        connectors,
        scheduler,
        global_settings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/windows")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn a_full_backup_output_becomes_paths_and_the_configuration() {
        let g = gathered_from_output(&fixture("backup-windows.json")).unwrap();
        assert_eq!(g.host_name.as_deref(), Some("EC01"));
        assert_eq!(g.engine_version.as_deref(), Some("2.4.18.0"));
        // Windows paths: compared as text (on this Linux build a `\` is no separator).
        let policy = g.applied_policy.unwrap().to_string_lossy().into_owned();
        assert_eq!(
            policy,
            r"C:\ProgramData\AADConnect\Applied-SynchronizationPolicy-2026-10-02-081512.json"
        );
        let dump = g.dump_dir.unwrap().to_string_lossy().into_owned();
        assert!(dump.contains(r"\Exported-ServerConfiguration-"), "{dump}");
        let c = g.configuration.unwrap();
        // One custom rule came as a single object, not a list (PS 5.1 unrolls one-item arrays).
        assert_eq!(c.custom_rules.len(), 2);
        let dept = &c.custom_rules[0];
        assert_eq!(dept.identifier, "5e1d0000-7a1c-4d2e-8f30-000000000004");
        assert_eq!(dept.direction, "Inbound");
        assert_eq!(dept.connector, "contoso.com");
        assert_eq!(dept.scoping, vec!["objectClass EQUAL user".to_string()]);
        assert_eq!(c.customised_default_rules.len(), 1);
        assert!(c.customised_default_rules[0].disabled);
        let ad = c
            .connectors
            .iter()
            .find(|x| x.name == "contoso.com")
            .unwrap();
        assert_eq!(ad.partitions[0].inclusions.len(), 2);
        assert_eq!(
            ad.partitions[0].exclusions,
            vec!["OU=Service Accounts,DC=contoso,DC=com".to_string()]
        );
        // The localized name arrives \u-escaped and is read back as UTF-8.
        assert!(
            c.custom_rules[1].name.contains("Bür"),
            "{}",
            c.custom_rules[1].name
        );
        assert_eq!(c.scheduler.interval_minutes, Some(30));
        assert_eq!(c.scheduler.staging_mode_enabled, Some(false));
        assert_eq!(
            c.global_settings
                .get("Microsoft.Synchronize.ServerConfigurationVersion")
                .map(String::as_str),
            Some("2.4.18.0")
        );
    }

    #[test]
    fn a_failed_dump_and_a_missing_module_are_reasons_not_silence() {
        let g = gathered_from_output(&fixture("backup-windows-dump-failed.json")).unwrap();
        let why = g.dump_dir.unwrap_err();
        assert!(why.contains("Access to the path"), "{why}");
        assert!(g.applied_policy.is_none());
        let g = gathered_from_output(&fixture("backup-windows-no-module.json")).unwrap();
        assert!(g.configuration.unwrap_err().contains("ADSync"));
        assert!(g.dump_dir.unwrap_err().contains("ADSync"));
    }

    #[test]
    fn the_export_method_and_the_extra_files_are_read() {
        let g = gathered_from_output(&fixture("backup-windows.json")).unwrap();
        assert!(
            g.export_method
                .unwrap()
                .starts_with(ecfleet_proto::backup::BY_MIGRATE_SETTINGS)
        );
        assert!(g.export_problem.is_none());
        assert_eq!(
            g.configuration_changed_at.as_deref(),
            Some("2026-11-20T14:31:07Z")
        );
        let config = g.engine_config.unwrap().to_string_lossy().into_owned();
        assert!(config.ends_with(r"\Bin\miiserver.exe.config"), "{config}");
        assert!(g.proxy_config.is_some());
        let dump = g.dump_dir.unwrap().to_string_lossy().into_owned();
        assert!(dump.contains(r"\Exported-ServerConfiguration-"), "{dump}");
        // The script was missing and PersistedState.xml too: said, with the reason.
        let g = gathered_from_output(&fixture("backup-windows-no-persisted-state.json")).unwrap();
        assert!(g.export_method.unwrap().contains("own steps"));
        assert!(g.export_problem.unwrap().contains("PersistedState.xml"));
        assert!(g.applied_policy.is_none() && g.proxy_config.is_none());
    }

    #[test]
    fn the_script_gathers_what_the_parser_reads() {
        for needle in [
            "Applied-SynchronizationPolicy-*.json",
            "Get-ADSyncServerConfiguration -Path $DumpDir",
            "Tools\\MigrateSettings.ps1",
            "\"MigrateSettings.ps1 ($script)\"",
            "-ServerConfiguration $DumpDir",
            "'PersistedState.xml'",
            "'MigratedPolicy.json'",
            "type = 'migration'",
            "ToString('u', $Invariant)",
            "SelectSingleNode('system.net')",
            "LastModificationTime",
            "ConnectorPartitionScope.ContainerInclusionList",
            "[System.Text.Encoding]::ASCII",
            "Bin\\ADSync\\ADSync.psd1",
            "CustomizedSyncCycleInterval",
        ] {
            assert!(SCRIPT.contains(needle), "backup.ps1 lacks {needle}");
        }
    }
}
