//! The lab backend's `backup` step: the shapes a real host's backup has, generated from
//! `machine.toml` (docs/lab.md): the wizard's newest `Applied-SynchronizationPolicy-*.json`
//! (its `policyMetadata.timeCreated` `[backup] applied_policy_age_days` ago, or none), the
//! migration export folder as Microsoft's `MigrateSettings.ps1` leaves it (a
//! `Get-ADSyncServerConfiguration` dump of XML files, `PersistedState.xml`, a metadata-only
//! `MigratedPolicy.json` in UTF-16; without `[backup] persisted_state` the script fails before
//! the JSON), `miiserver.exe.config`, and ecfleet's reading of the configuration.
//! `faults.backup_fails` makes the dump fail as `Get-ADSyncServerConfiguration` would.

use std::path::Path;

use ecfleet_proto::backup::{Configuration, Connector, Partition, SchedulerSettings, SyncRule};
use ecfleet_proto::lab::{Machine, MachineConnector};
use serde_json::json;

use crate::backup::Gathered;

pub fn gather(root: &Path, out: &Path) -> Result<Gathered, String> {
    let m = super::lab::machine(root)?;
    if let Some(mode) = super::lab::constrained(&m) {
        return Err(format!(
            "the backup script cannot run: PowerShell runs it in {mode} mode (an AppLocker or App Control policy; simulated)"
        ));
    }
    let Some(ec) = &m.ec else {
        return Err(
            "Entra Connect is not installed: there is no configuration to back up (the ADSync module is not installed)"
                .into(),
        );
    };
    let now = jiff::Timestamp::now();
    let days_ago = |d: u32| now - jiff::SignedDuration::from_hours(24 * i64::from(d));
    let configuration = configuration(&m);
    let applied_policy = match m.backup.applied_policy_age_days {
        Some(age) => {
            // The wizard wrote it once, `age` days ago: the same file every night of the
            // day (to the day, so that a lab host's unchanged policy is the same bytes).
            let written = start_of_day(days_ago(age));
            let policy = out.join(format!(
                "Applied-SynchronizationPolicy-{}.json",
                written.strftime("%Y-%m-%d-%H%M%S")
            ));
            let doc = policy_json(
                &configuration,
                &metadata("applied", written, &ec.engine_version),
            );
            let text = serde_json::to_string_pretty(&doc)
                .map_err(|e| format!("cannot encode the policy: {e}"))?;
            std::fs::write(&policy, text)
                .map_err(|e| format!("cannot write {}: {e}", policy.display()))?;
            Some(policy)
        }
        None => None,
    };
    let (script, method) = if m.backup.migrate_settings_script {
        (
            true,
            format!(
                "{}{MIGRATE_SETTINGS}; simulated)",
                ecfleet_proto::backup::BY_MIGRATE_SETTINGS
            ),
        )
    } else {
        (
            false,
            format!(
                "the agent's own steps, as {MIGRATE_SETTINGS} takes them: the script is not in the product's Tools folder (simulated)"
            ),
        )
    };
    let export = out.join(format!(
        "Exported-ServerConfiguration-{}",
        lab_guid(&m.host.name, now)
    ));
    let mut export_problem = None;
    let dump_dir = if m.faults.backup_fails {
        Err("Get-ADSyncServerConfiguration : The operation failed because the sync engine did not answer (simulated: faults.backup_fails)".to_string())
    } else {
        write_dump(&configuration, &export).and_then(|dir| {
            if let Some(mb) = m.backup.dump_padding_mb {
                pad(&dir.join("lab-padding.xml"), mb)?;
            }
            if m.backup.persisted_state {
                write_export_extras(&m, &dir, now)?;
            } else {
                let why = r"Cannot find path 'C:\ProgramData\AADConnect\PersistedState.xml' because it does not exist.";
                export_problem = Some(if script {
                    format!("{MIGRATE_SETTINGS}: Unable to export the server configuration due to an unexpected error. Message: {why} (simulated)")
                } else {
                    format!("copying PersistedState.xml: {why} (simulated)")
                });
            }
            Ok(dir)
        })
    };
    let engine_config = out.join("miiserver.exe.config");
    std::fs::write(&engine_config, ENGINE_CONFIG)
        .map_err(|e| format!("cannot write {}: {e}", engine_config.display()))?;
    super::lab_operator::log(root, &m, "backup-taken", method.clone());
    Ok(Gathered {
        host_name: Some(m.host.name.clone()),
        engine_version: Some(ec.engine_version.clone()),
        applied_policy,
        dump_dir,
        export_method: Some(method),
        export_problem,
        configuration_changed_at: m.backup.changed_outside_wizard_days.map(|d| {
            days_ago(d)
                .round(jiff::Unit::Second)
                .unwrap_or(now)
                .to_string()
        }),
        engine_config: Some(engine_config),
        proxy_config: None,
        configuration: Ok(configuration),
    })
}

/// Midnight UTC of the day of `t`.
fn start_of_day(t: jiff::Timestamp) -> jiff::Timestamp {
    let s = t.as_second();
    jiff::Timestamp::from_second(s - s.rem_euclid(86_400)).unwrap_or(t)
}

/// An XML file of `mb` MiB of varied text (so it does not compress to nothing on the way).
fn pad(path: &Path, mb: u64) -> Result<(), String> {
    use std::io::Write;
    let file = std::fs::File::create(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut written = 0u64;
    let mut n = 0u64;
    let target = mb << 20;
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    out.write_all(b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<objects>\n")
        .map_err(fail)?;
    while written < target {
        let line = format!(
            "  <object id=\"{n:016x}\" dn=\"CN=User {n},OU=Users,DC=contoso,DC=local\" hash=\"{:016x}\"/>\n",
            n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        );
        out.write_all(line.as_bytes()).map_err(fail)?;
        written += line.len() as u64;
        n += 1;
    }
    out.write_all(b"</objects>\n").map_err(fail)?;
    out.flush().map_err(fail)
}

/// Where Microsoft installs the migration script (docs/design/DOMAIN.md §8b, S44).
const MIGRATE_SETTINGS: &str =
    r"C:\Program Files\Microsoft Azure Active Directory Connect\Tools\MigrateSettings.ps1";

/// A lab `miiserver.exe.config`: the shape of the engine's .NET configuration file.
const ENGINE_CONFIG: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<configuration>\n  <startup useLegacyV2RuntimeActivationPolicy=\"true\">\n    <supportedRuntime version=\"v4.0\" sku=\".NETFramework,Version=v4.7.2\" />\n  </startup>\n  <runtime>\n    <assemblyBinding xmlns=\"urn:schemas-microsoft-com:asm.v1\" />\n  </runtime>\n</configuration>\n";

/// A GUID-shaped name for the export folder, as `MigrateSettings.ps1` makes with
/// `[Guid]::NewGuid()`.
fn lab_guid(host: &str, now: jiff::Timestamp) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{host}{}", now.as_nanosecond()).as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `policyMetadata` as the wizard and `MigrateSettings.ps1` write it: `timeCreated` in the
/// invariant "u" format.
fn metadata(kind: &str, created: jiff::Timestamp, version: &str) -> serde_json::Value {
    json!({
        "type": kind,
        "author": r"CONTOSO\ecadmin",
        "timeCreated": created.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
        "azureADConnectVersion": version,
    })
}

/// `PersistedState.xml` and `MigratedPolicy.json` in the export folder, as `MigrateSettings.ps1`
/// leaves them: the JSON holds metadata only (the settings are the dump and the persisted
/// state beside it) and is written by `Out-File`, UTF-16 LE with a byte-order mark.
fn write_export_extras(m: &Machine, dir: &Path, now: jiff::Timestamp) -> Result<(), String> {
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    let version =
        m.ec.as_ref()
            .map(|e| e.engine_version.as_str())
            .unwrap_or("");
    let staging = m.scheduler.staging_mode_enabled;
    write(
        crate::backup::PERSISTED_STATE,
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<PersistedStateContainer>\n  <Elements>\n    <PersistedStateElement><Key>IAadConnectivityOptions.StagingMode</Key><Value>{staging}</Value></PersistedStateElement>\n    <PersistedStateElement><Key>IInstallationOptions.ProductVersion</Key><Value>{}</Value></PersistedStateElement>\n  </Elements>\n</PersistedStateContainer>\n",
            xml_escape(version)
        )
        .as_bytes(),
    )?;
    let connector_ids: Vec<String> = m
        .connectors
        .iter()
        .flatten()
        .map(|c| c.identifier.to_lowercase())
        .collect();
    let doc = json!({
        "policyMetadata": metadata("migration", now, version),
        "deploymentMetadata": {
            "hostName": format!("{}.{}", m.host.name.to_lowercase(), "contoso.local"),
            "serviceAccount": r"NT SERVICE\ADSync",
            "serviceAccountType": "Unknown",
            "databaseServer": if m.database.local_db { "(localdb)" } else { m.database.sql_server.as_str() },
            "databaseInstance": if m.database.local_db { ".\\ADSync2019" } else { "" },
            "databaseName": "ADSync",
            "connectorIds": connector_ids,
        },
    });
    let text = serde_json::to_string_pretty(&doc).map_err(|e| format!("cannot encode: {e}"))?;
    let mut bytes = vec![0xFF, 0xFE];
    for unit in text.replace('\n', "\r\n").encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    write(crate::backup::MIGRATED_POLICY, &bytes)
}

/// The machine's configuration as ecfleet reads it.
pub fn configuration(m: &Machine) -> Configuration {
    let listed: Vec<MachineConnector> = m.connectors.clone().unwrap_or_default();
    let connectors = listed
        .iter()
        .map(|c| Connector {
            identifier: c.identifier.to_lowercase(),
            name: c.name.clone(),
            connector_type: c.connector_type.clone(),
            partitions: if c.partition_inclusions.is_empty() && c.partition_exclusions.is_empty() {
                Vec::new()
            } else {
                vec![Partition {
                    name: domain_dn(&c.name),
                    selected: true,
                    inclusions: c.partition_inclusions.clone(),
                    exclusions: c.partition_exclusions.clone(),
                }]
            },
        })
        .collect();
    let custom_rules = m
        .custom_rules
        .iter()
        .map(|r| SyncRule {
            identifier: r.identifier.to_lowercase(),
            name: r.name.clone(),
            direction: r.direction.clone(),
            precedence: r.precedence,
            connector: r.connector.clone(),
            disabled: r.disabled,
            scoping: r.scoping.clone(),
            join: Vec::new(),
            attribute_flows: r.attribute_flows.clone(),
        })
        .collect();
    let mut global_settings = std::collections::BTreeMap::new();
    if let Some(ec) = &m.ec {
        global_settings.insert(
            "Microsoft.Synchronize.ServerConfigurationVersion".into(),
            ec.config_version.clone(),
        );
    }
    global_settings.insert(
        "Microsoft.Synchronize.StagingMode".into(),
        m.scheduler.staging_mode_enabled.to_string(),
    );
    Configuration {
        custom_rules,
        customised_default_rules: Vec::new(),
        connectors,
        scheduler: SchedulerSettings {
            interval_minutes: Some(m.scheduler.interval_minutes),
            staging_mode_enabled: Some(m.scheduler.staging_mode_enabled),
            sync_cycle_enabled: Some(m.scheduler.sync_cycle_enabled),
        },
        global_settings,
    }
}

/// `contoso.local` → `DC=contoso,DC=local`.
fn domain_dn(name: &str) -> String {
    name.split('.')
        .map(|part| format!("DC={part}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn rule_json(r: &SyncRule) -> serde_json::Value {
    json!({
        "name": r.name,
        "identifier": r.identifier,
        "precedence": r.precedence,
        "direction": r.direction,
        "disabled": r.disabled,
        "scopingFilter": r.scoping,
        "attributeFlowMappings": r.attribute_flows,
    })
}

/// The wizard's JSON, in the shape docs/design/DOMAIN.md §4 records, with its metadata.
fn policy_json(c: &Configuration, metadata: &serde_json::Value) -> serde_json::Value {
    let on_premises: Vec<serde_json::Value> = c
        .connectors
        .iter()
        .filter(|x| x.connector_type.as_deref() == Some("AD"))
        .map(|x| {
            json!({
                "fullyQualifiedDomainName": x.name,
                "partitionFilters": x.partitions.iter().map(|p| json!({
                    "distinguishedName": p.name,
                    "containerInclusions": p.inclusions,
                    "containerExclusions": p.exclusions,
                })).collect::<Vec<_>>(),
                "customSynchronizationRules": c.custom_rules.iter()
                    .filter(|r| r.connector == x.name).map(rule_json).collect::<Vec<_>>(),
                "standardSynchronizationRules": [],
            })
        })
        .collect();
    json!({
        "policyMetadata": metadata,
        "onpremisesDirectoryPolicy": on_premises,
        "azureDirectoryPolicy": { "customSynchronizationRules": [], "standardSynchronizationRules": [] },
    })
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// How many attribute types a lab AD connector's schema lists: about 1 MB of DSML, a little
/// over half the 1.8 MB that the schema (attribute types and classes) of Microsoft's sample
/// Exchange forest takes.
const LAB_SCHEMA_ATTRIBUTES: u32 = 8000;

/// The forest's schema as an AD connector's export carries it, DSML inside `<schema>`: the
/// bulk of a real dump (1.8 MB of the AD connector's 1.8 MB in Microsoft's sample export of
/// an Exchange-extended forest, docs/design/DOMAIN.md §8b.1, S52), so that a lab backup weighs
/// in proportion to its small files. The same text every time, as a forest whose schema did
/// not change.
fn directory_schema() -> String {
    const SYNTAXES: [&str; 5] = [
        "1.3.6.1.4.1.1466.115.121.1.15",
        "1.3.6.1.4.1.1466.115.121.1.27",
        "1.3.6.1.4.1.1466.115.121.1.7",
        "1.3.6.1.4.1.1466.115.121.1.12",
        "1.3.6.1.4.1.1466.115.121.1.40",
    ];
    let mut out = String::from(
        "  <schema><dsml xmlns=\"http://www.dsml.org/DSML\" xmlns:m=\"http://www.microsoft.com/MMS/DSML\"><directory-schema>",
    );
    for n in 0..LAB_SCHEMA_ATTRIBUTES {
        let single = if n % 3 == 0 {
            " single-value=\"true\""
        } else {
            ""
        };
        out.push_str(&format!(
            "<attribute-type id=\"A{n:x}\"{single}><name>labAttribute{n:04}</name><syntax>{}</syntax></attribute-type>",
            SYNTAXES[n as usize % SYNTAXES.len()]
        ));
    }
    out.push_str("</directory-schema></dsml></schema>\n");
    out
}

/// The dump folder: one XML file per connector and per rule, and the global settings, as
/// `Get-ADSyncServerConfiguration` lays them out.
fn write_dump(c: &Configuration, dir: &Path) -> Result<std::path::PathBuf, String> {
    let write = |relative: String, text: String| -> Result<(), String> {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    for x in &c.connectors {
        let partitions: String = x
            .partitions
            .iter()
            .map(|p| {
                let list = |tag: &str, items: &[String]| {
                    items
                        .iter()
                        .map(|i| format!("      <{tag}>{}</{tag}>\n", xml_escape(i)))
                        .collect::<String>()
                };
                format!(
                    "    <partition name=\"{}\" selected=\"{}\">\n{}{}    </partition>\n",
                    xml_escape(&p.name),
                    p.selected,
                    list("inclusion", &p.inclusions),
                    list("exclusion", &p.exclusions)
                )
            })
            .collect();
        write(
            format!(
                "Connectors/Connector_{{{}}}.xml",
                x.identifier.to_uppercase()
            ),
            format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ma-data id=\"{}\" name=\"{}\" type=\"{}\">\n{}  <ma-partition-data>\n{partitions}  </ma-partition-data>\n</ma-data>\n",
                xml_escape(&x.identifier),
                xml_escape(&x.name),
                xml_escape(x.connector_type.as_deref().unwrap_or("")),
                if x.connector_type.as_deref() == Some("AD") {
                    directory_schema()
                } else {
                    String::new()
                }
            ),
        )?;
    }
    for r in &c.custom_rules {
        let flows: String = r
            .attribute_flows
            .iter()
            .map(|f| format!("  <attribute-flow>{}</attribute-flow>\n", xml_escape(f)))
            .collect();
        write(
            format!(
                "SynchronizationRules/SynchronizationRule_{{{}}}.xml",
                r.identifier.to_uppercase()
            ),
            format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<synchronizationRule id=\"{}\" name=\"{}\" direction=\"{}\" precedence=\"{}\" connector=\"{}\" disabled=\"{}\">\n{flows}</synchronizationRule>\n",
                xml_escape(&r.identifier),
                xml_escape(&r.name),
                xml_escape(&r.direction),
                r.precedence,
                xml_escape(&r.connector),
                r.disabled
            ),
        )?;
    }
    let settings: String = c
        .global_settings
        .iter()
        .map(|(k, v)| {
            format!(
                "  <parameter name=\"{}\">{}</parameter>\n",
                xml_escape(k),
                xml_escape(v)
            )
        })
        .collect();
    write(
        "GlobalSettings/GlobalSettings.xml".into(),
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<globalSettings>\n{settings}</globalSettings>\n"
        ),
    )?;
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;

    const MACHINE: &str = r#"
[host]
name = "T02-BEHIND"
[os]
caption = "Microsoft Windows Server 2022 Standard"
version = "10.0.20348"
build = 20348
[disk]
system_drive = "C:"
free_bytes = 60000000000
total_bytes = 127000000000
[ec]
engine_version = "2.4.18.0"
config_version = "2.4.18.0"
[[connectors]]
name = "tenant02.local"
identifier = "2F6B1C3E-5D5B-4B0E-9E84-000000000002"
connector_type = "AD"
partition_inclusions = ["OU=Users,OU=Corp,DC=tenant02,DC=local"]
[[connectors]]
name = "tenant02.onmicrosoft.com - AAD"
identifier = "b891884f-051e-4a83-95af-2544101c9083"
connector_type = "Extensible2"
[[custom_rules]]
identifier = "5E1D0000-7A1C-4D2E-8F30-000000000002"
name = "In from AD - User <Department> & Office"
connector = "tenant02.local"
precedence = 50
"#;

    fn lab(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("machine.toml"), text).unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        (dir, out)
    }

    #[test]
    fn a_lab_backup_has_the_policy_the_dump_and_the_configuration() {
        let (dir, out) = lab(MACHINE);
        let backend = Backend::Lab(dir.path().to_path_buf());
        let gathered = gather(dir.path(), &out).unwrap();
        let now: jiff::Timestamp = "2026-12-02T01:00:00Z".parse().unwrap();
        let result = crate::backup::assemble(&backend, gathered, &out, now).unwrap();
        assert_eq!(result.kind, "ecfleet-backup");
        assert_eq!(result.engine_version.as_deref(), Some("2.4.18.0"));
        let config = result.configuration.unwrap();
        assert_eq!(
            config.custom_rules[0].identifier,
            "5e1d0000-7a1c-4d2e-8f30-000000000002"
        );
        assert_eq!(
            config.connectors[0].partitions[0].name,
            "DC=tenant02,DC=local"
        );
        // The policy is the wizard's shape, importable JSON.
        let policy = result.applied_policy.unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&policy.path).unwrap()).unwrap();
        let ad = &json["onpremisesDirectoryPolicy"][0];
        assert_eq!(ad["fullyQualifiedDomainName"], "tenant02.local");
        assert_eq!(ad["customSynchronizationRules"][0]["precedence"], 50);
        // When the wizard wrote it, read from its own metadata.
        assert!(result.applied_policy_created.is_some());
        // The migration export as MigrateSettings.ps1 leaves it: MigratedPolicy.json (UTF-16,
        // metadata only) and PersistedState.xml, also on their own.
        let migrated = result.migrated_policy.as_ref().unwrap();
        let bytes = std::fs::read(&migrated.path).unwrap();
        assert_eq!(
            &bytes[..2],
            &[0xFF, 0xFE],
            "UTF-16 LE, as Out-File writes it"
        );
        assert!(crate::backup::policy_created(std::path::Path::new(&migrated.path)).is_some());
        assert!(result.persisted_state.is_some());
        assert!(
            result
                .export_method
                .as_deref()
                .unwrap()
                .starts_with(r"MigrateSettings.ps1 (C:\Program Files")
        );
        assert!(result.engine_config.is_some());
        // The dump is one archive of XML files, its folder gone, its hash the file's.
        let dump = result.server_configuration.unwrap();
        assert!(
            dump.source_name
                .starts_with("Exported-ServerConfiguration-")
        );
        assert!(!out.join(&dump.source_name).exists());
        let listed = std::process::Command::new("tar")
            .arg("-tf")
            .arg(&dump.path)
            .output()
            .unwrap();
        let names = String::from_utf8_lossy(&listed.stdout);
        assert!(
            names.contains("Connectors/Connector_{2F6B1C3E-5D5B-4B0E-9E84-000000000002}.xml"),
            "{names}"
        );
        assert!(names.contains("SynchronizationRules/SynchronizationRule_{5E1D0000-7A1C-4D2E-8F30-000000000002}.xml"), "{names}");
        // The dump alone: the two small files are kept on their own (MigratedPolicy.json is
        // new every night, and would make every archive different).
        assert!(
            !names.contains("MigratedPolicy.json") && !names.contains("PersistedState.xml"),
            "{names}"
        );
        use sha2::Digest;
        let bytes = std::fs::read(&dump.path).unwrap();
        let sha: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!((dump.sha256, dump.size), (sha, bytes.len() as u64));
        // Names with XML's special characters are escaped in the dump.
        let rule = std::process::Command::new("tar")
            .arg("-xOf")
            .arg(&dump.path)
            .arg("SynchronizationRules/SynchronizationRule_{5E1D0000-7A1C-4D2E-8F30-000000000002}.xml")
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&rule.stdout).contains("User &lt;Department&gt; &amp; Office")
        );
    }

    /// The nightly backup of an unchanged host is the same archive, policy, state and engine
    /// configuration, byte for byte: what lets the share keep one copy (docs/backup.md).
    #[test]
    fn an_unchanged_host_backs_up_to_the_same_bytes_but_its_migrated_policy() {
        let (dir, _) = lab(MACHINE);
        let backend = Backend::Lab(dir.path().to_path_buf());
        let night = |n: u32| {
            let out = dir.path().join(format!("night{n}"));
            std::fs::create_dir(&out).unwrap();
            let gathered = gather(dir.path(), &out).unwrap();
            let now = jiff::Timestamp::now();
            crate::backup::assemble(&backend, gathered, &out, now).unwrap()
        };
        let first = night(1);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let second = night(2);
        let sha =
            |f: &Option<ecfleet_proto::backup::BackupFile>| f.as_ref().unwrap().sha256.clone();
        assert_eq!(
            sha(&first.server_configuration),
            sha(&second.server_configuration)
        );
        assert_eq!(sha(&first.applied_policy), sha(&second.applied_policy));
        assert_eq!(sha(&first.persisted_state), sha(&second.persisted_state));
        assert_eq!(sha(&first.engine_config), sha(&second.engine_config));
        // MigrateSettings.ps1 stamps its JSON with the time it ran.
        assert_ne!(sha(&first.migrated_policy), sha(&second.migrated_policy));
    }

    #[test]
    fn without_persisted_state_there_is_no_migrated_policy_and_the_reason_is_kept() {
        let (dir, out) = lab(&format!(
            "{MACHINE}\n[backup]\npersisted_state = false\nmigrate_settings_script = false\n"
        ));
        let backend = Backend::Lab(dir.path().to_path_buf());
        let gathered = gather(dir.path(), &out).unwrap();
        let result =
            crate::backup::assemble(&backend, gathered, &out, jiff::Timestamp::now()).unwrap();
        assert!(result.migrated_policy.is_none() && result.persisted_state.is_none());
        assert!(
            result.server_configuration.is_some(),
            "the dump is still there"
        );
        let why = result
            .errors
            .iter()
            .find(|e| e.probe == "migrated_policy")
            .unwrap();
        assert!(
            why.message.contains("PersistedState.xml"),
            "{}",
            why.message
        );
        assert!(result.export_method.unwrap().contains("own steps"));
    }

    #[test]
    fn a_failing_export_and_a_host_without_entra_connect_say_why() {
        let (dir, out) = lab(&format!("{MACHINE}\n[faults]\nbackup_fails = true\n"));
        let gathered = gather(dir.path(), &out).unwrap();
        assert!(
            gathered
                .dump_dir
                .unwrap_err()
                .contains("faults.backup_fails")
        );
        let without_ec = MACHINE.split("[ec]").next().unwrap();
        let (dir, out) = lab(without_ec);
        let err = gather(dir.path(), &out).err().unwrap();
        assert!(err.contains("not installed"), "{err}");
    }
}
