//! The `lab` backend: facts from a simulated Windows host described by `<lab_root>/machine.toml`
//! (format: `ecfleet_proto::lab::Machine`, documented in docs/lab.md). Injected faults (hang,
//! failing probes, crash, garbage output) run through the same code path as real answers. The
//! backup step's side is [`super::lab_backup`].

use std::path::Path;
use std::time::Duration;

use ecfleet_proto::Facts;
use ecfleet_proto::lab::Machine;
use jiff::Timestamp;

pub enum LabOutput {
    Facts(Box<Facts>),
    Raw(String),
}

/// `machine.toml` as it is now, without acting on its faults.
pub fn read_machine(root: &Path) -> Result<Machine, String> {
    let path = root.join("machine.toml");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut machine: Machine =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    // The disk filled while the installer was staged (the lab server left the mark).
    if root
        .join(".ecfleet")
        .join(ecfleet_proto::lab::DISK_FULL_MARK)
        .exists()
    {
        machine.disk.free_bytes = 0;
    }
    Ok(machine)
}

/// `machine.toml`, after acting on its faults: a hang, a broken agent, a host restarting.
pub fn machine(root: &Path) -> Result<Machine, String> {
    let machine = read_machine(root)?;
    let faults = &machine.faults;
    if faults.hang_seconds > 0 {
        std::thread::sleep(Duration::from_secs(faults.hang_seconds));
    }
    if let Some(code) = faults.exit_code {
        eprintln!("ecfleet-agent: simulated failure (faults.exit_code = {code})");
        std::process::exit(code);
    }
    super::lab_operator::refuse_while_rebooting(&machine)?;
    Ok(machine)
}

/// The PowerShell language mode when it is not FullLanguage (AppLocker or App Control): the
/// agent's scripts then fail on the host.
pub fn constrained(m: &Machine) -> Option<&str> {
    (!m.language_mode.eq_ignore_ascii_case("FullLanguage")).then_some(m.language_mode.as_str())
}

pub fn collect(root: &Path) -> Result<LabOutput, String> {
    let machine = super::lab_operator::apply_due_upgrade(root, machine(root)?)?;
    // An upgrade that ends in a restart: the host stops answering from that moment.
    super::lab_operator::refuse_while_rebooting(&machine)?;
    let faults = &machine.faults;
    if let Some(garbage) = &faults.garbage_output {
        return Ok(LabOutput::Raw(garbage.clone()));
    }
    let now = Timestamp::now();
    if let Some(mode) = constrained(&machine) {
        // As facts.ps1 answers there: its language mode, and nothing else it could read.
        let mut f = ecfleet_proto::Facts::new("lab", env!("CARGO_PKG_VERSION"), {
            let t = now.round(jiff::Unit::Second).unwrap_or(now);
            t.to_string()
        });
        f.host_name = Some(machine.host.name.clone());
        f.language_mode = Some(mode.to_string());
        f.probe_failed(
            "language_mode",
            format!("PowerShell runs this script in {mode} mode"),
        );
        return Ok(LabOutput::Facts(Box::new(f)));
    }
    Ok(LabOutput::Facts(Box::new(facts_from_machine(
        &machine, now,
    ))))
}

/// Renders the simulated machine as the facts a real host would report at `now`, with the
/// machine's failing probes applied.
pub fn facts_from_machine(m: &Machine, now: Timestamp) -> Facts {
    let mut f = m.facts_at(now, env!("CARGO_PKG_VERSION"));
    for probe in &m.faults.fail_probes {
        fail_probe(&mut f, probe);
    }
    f
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
        "trusted_sites" => f.trusted_sites = None,
        "upgrade_activity" => f.upgrade_activity = None,
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
    use ecfleet_proto::ENTRA_CONNECTOR_ID;

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
