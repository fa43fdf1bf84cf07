//! The lab plays the operator of phase 3 (docs/lab.md): `handoff` on a lab host schedules the
//! simulated wizard `[operator] delay_seconds` later (unless `acts = false`: an MFA prompt that
//! never finishes); the next time the host is looked at after that, the upgrade happens to
//! `machine.toml`: the new version in both readings (or the configuration version lagging, per
//! `faults.config_version_lags`), the scheduler resumed, and the first cycle after the upgrade
//! (a Delta Import, a Delta Synchronization and, off staging, an Export on every connector)
//! seconds later. `restart-adsync` fixes a lagging configuration version when the fault says
//! one restart does. The controller's code path is the same as for a real host: it hands off,
//! then watches the facts.

use std::path::{Path, PathBuf};

use ecfleet_proto::lab::{Machine, MachineRun, MachineUpgrade};
use ecfleet_proto::upgrade::{HANDOFF_KIND, HandoffResult, RESTART_KIND, RestartResult};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The scheduled operator, kept beside the agent on the lab host.
#[derive(Debug, Serialize, Deserialize)]
struct Scheduled {
    version: String,
    due_at: String,
}

fn schedule_file(root: &Path) -> PathBuf {
    root.join(".ecfleet").join("lab-operator.json")
}

fn write_machine(root: &Path, m: &Machine) -> Result<(), String> {
    let path = root.join("machine.toml");
    let text =
        toml::to_string_pretty(m).map_err(|e| format!("cannot encode {}: {e}", path.display()))?;
    let tmp = root.join(".machine.toml.tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("cannot replace {}: {e}", path.display()))
}

fn now() -> Timestamp {
    let t = Timestamp::now();
    t.round(jiff::Unit::Second).unwrap_or(t)
}

/// Records the hand-off; schedules the lab's operator.
pub fn handoff(root: &Path, installer: &Path, version: &str) -> Result<HandoffResult, String> {
    let m = super::lab::machine(root)?;
    let at = now();
    if m.operator.acts {
        let due = at + m.real(m.operator.delay_seconds);
        let scheduled = Scheduled {
            version: version.to_string(),
            due_at: due.to_string(),
        };
        let path = schedule_file(root);
        std::fs::write(&path, serde_json::to_vec(&scheduled).unwrap_or_default())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(HandoffResult {
        kind: HANDOFF_KIND.into(),
        at: at.to_string(),
        installer_present: installer.is_file(),
    })
}

/// Runs the scheduled upgrade when it is due; returns the machine as it is now.
pub fn apply_due_upgrade(root: &Path, mut m: Machine) -> Result<Machine, String> {
    let path = schedule_file(root);
    let Ok(text) = std::fs::read(&path) else {
        return Ok(m);
    };
    let Ok(scheduled) = serde_json::from_slice::<Scheduled>(&text) else {
        return Ok(m);
    };
    let at = now();
    let due: Timestamp = scheduled
        .due_at
        .parse()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if at < due {
        return Ok(m);
    }
    if let Some(code) = m.faults.installer_fails.clone() {
        installer_failed(&mut m, &code);
        write_machine(root, &m)?;
        let _ = std::fs::remove_file(&path);
        return Ok(m);
    }
    let Some(ec) = m.ec.as_mut() else {
        return Ok(m);
    };
    let from = ec.engine_version.clone();
    ec.engine_version = scheduled.version.clone();
    ec.wizard_version = Some(scheduled.version.clone());
    if m.faults.config_version_lags.is_none() {
        ec.config_version = scheduled.version.clone();
    }
    m.scheduler.scheduler_suspended = false;
    m.open_ui.wizard = false;
    m.upgrade = Some(MachineUpgrade {
        event_message: format!(
            "Upgrade succeeded from {from} to {} (simulated)",
            scheduled.version
        ),
        event_id: 300,
        from,
        to: scheduled.version,
        completed_at: at.to_string(),
    });
    m.runs = first_cycle(&m);
    if m.faults.adsync_stops_after_upgrade {
        m.service.state = "Stopped".into();
        m.runs.clear();
    }
    if m.faults.rules_conflict_after_upgrade {
        for r in &mut m.runs {
            match r.run_profile.as_str() {
                "Export" => r.result = "completed-export-errors".into(),
                "Delta Synchronization" => r.result = "completed-sync-errors".into(),
                _ => {}
            }
        }
        m.sync_rules.customised_default_rules = m.sync_rules.customised_default_rules.max(1);
    }
    write_machine(root, &m)?;
    let _ = std::fs::remove_file(&path);
    Ok(m)
}

/// The installer failed: `1603` rolls back (nothing changes); `25019` leaves the engine half
/// removed: no ADSync service and no engine, the uninstall entries still there.
fn installer_failed(m: &mut Machine, code: &str) {
    if code == "25019" {
        m.ec = None;
        m.service.state = "NotFound".into();
        m.runs.clear();
    }
}

/// A host restarting after its upgrade answers nothing for `faults.reboot_seconds`.
pub fn refuse_while_rebooting(m: &Machine) -> Result<(), String> {
    let (Some(upgrade), seconds) = (&m.upgrade, m.faults.reboot_seconds) else {
        return Ok(());
    };
    if seconds == 0 {
        return Ok(());
    }
    let Ok(done) = upgrade.completed_at.parse::<Timestamp>() else {
        return Ok(());
    };
    if now() < done + m.real(seconds) {
        return Err("the host is restarting (simulated: faults.reboot_seconds)".into());
    }
    Ok(())
}

/// The first sync cycle after the upgrade, minutes after it (lab time), on every connector.
fn first_cycle(m: &Machine) -> Vec<MachineRun> {
    let mut connectors: Vec<String> = m.runs.iter().map(|r| r.connector.clone()).collect();
    connectors.sort();
    connectors.dedup();
    let mut out = Vec::new();
    for (i, c) in connectors.iter().enumerate() {
        let mut profiles = vec!["Delta Import", "Delta Synchronization"];
        if !m.scheduler.staging_mode_enabled {
            profiles.push("Export");
        }
        for (j, profile) in profiles.iter().enumerate() {
            out.push(MachineRun {
                connector: c.clone(),
                run_profile: (*profile).into(),
                result: "success".into(),
                age_minutes: 0,
                // Two minutes after the upgrade, then a minute apart, half a minute each.
                duration_seconds: 30,
                after_upgrade_seconds: Some(120 + 60 * (i * 3 + j) as u32),
            });
        }
    }
    out
}

/// Restarts the simulated ADSync service: a configuration version that lags behind the
/// engine's catches up when the fault says one restart fixes it.
pub fn restart_adsync(root: &Path) -> Result<RestartResult, String> {
    let mut m = super::lab::machine(root)?;
    let fixed = m.faults.config_version_lags.as_deref() == Some("fixed-by-restart");
    // A service that does not start after the upgrade does not start on a restart either.
    if fixed && let Some(ec) = m.ec.as_mut() {
        ec.config_version = ec.engine_version.clone();
        m.faults.config_version_lags = None;
        write_machine(root, &m)?;
    }
    let running = m.service.state == "Running";
    Ok(RestartResult {
        kind: RESTART_KIND.into(),
        running,
        message: if running {
            "Restart-Service ADSync (simulated)".into()
        } else {
            "Restart-Service : Service 'Microsoft Azure AD Sync (ADSync)' cannot be started (simulated: faults.adsync_stops_after_upgrade)".into()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab_host() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".ecfleet")).unwrap();
        let text = r#"
[host]
name = "EC01"
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
[[runs]]
connector = "contoso.com"
run_profile = "Delta Import"
result = "success"
age_minutes = 5
[operator]
delay_seconds = 0
"#;
        std::fs::write(dir.path().join("machine.toml"), text).unwrap();
        dir
    }

    #[test]
    fn the_lab_operator_upgrades_after_the_handoff_and_the_first_cycle_follows() {
        let dir = lab_host();
        let root = dir.path();
        let m = super::super::lab::machine(root).unwrap();
        let m = apply_due_upgrade(root, m).unwrap();
        assert_eq!(
            m.ec.as_ref().unwrap().engine_version,
            "2.4.18.0",
            "no hand-off yet"
        );
        let h = handoff(root, &root.join("missing.msi"), "2.6.91.0").unwrap();
        assert!(!h.installer_present);
        let m = apply_due_upgrade(root, super::super::lab::machine(root).unwrap()).unwrap();
        let ec = m.ec.as_ref().unwrap();
        assert_eq!(
            (ec.engine_version.as_str(), ec.config_version.as_str()),
            ("2.6.91.0", "2.6.91.0")
        );
        assert_eq!(m.upgrade.as_ref().unwrap().from, "2.4.18.0");
        // Written back: the next look sees the same, and the schedule is gone.
        let again = super::super::lab::machine(root).unwrap();
        assert_eq!(again.ec.unwrap().engine_version, "2.6.91.0");
        assert!(!schedule_file(root).exists());
        // The first cycle after the upgrade: import, sync and export, seconds after it.
        let profiles: Vec<&str> = again.runs.iter().map(|r| r.run_profile.as_str()).collect();
        assert_eq!(
            profiles,
            vec!["Delta Import", "Delta Synchronization", "Export"]
        );
        assert!(again.runs.iter().all(|r| r.after_upgrade_seconds.is_some()));
    }

    #[test]
    fn a_lagging_configuration_version_is_fixed_by_one_restart_or_not() {
        for (fault, fixed) in [("fixed-by-restart", true), ("sticky", false)] {
            let dir = lab_host();
            let root = dir.path();
            let text = std::fs::read_to_string(root.join("machine.toml")).unwrap();
            std::fs::write(
                root.join("machine.toml"),
                format!("{text}[faults]\nconfig_version_lags = \"{fault}\"\n"),
            )
            .unwrap();
            handoff(root, &root.join("x.msi"), "2.6.91.0").unwrap();
            let m = apply_due_upgrade(root, super::super::lab::machine(root).unwrap()).unwrap();
            assert_eq!(m.ec.as_ref().unwrap().config_version, "2.4.18.0", "{fault}");
            restart_adsync(root).unwrap();
            let after = super::super::lab::machine(root).unwrap().ec.unwrap();
            assert_eq!(after.config_version == "2.6.91.0", fixed, "{fault}");
        }
    }

    #[test]
    fn the_lab_clock_runs_faster_than_real_time() {
        let dir = lab_host();
        let root = dir.path();
        // Ten lab minutes of wizard at 600 lab seconds per real second: one real second.
        let text = std::fs::read_to_string(root.join("machine.toml"))
            .unwrap()
            .replace(
                "delay_seconds = 0",
                "delay_seconds = 600\n[lab]\nclock_scale = 600",
            );
        std::fs::write(root.join("machine.toml"), text).unwrap();
        handoff(root, &root.join("x.msi"), "2.6.91.0").unwrap();
        let m = apply_due_upgrade(root, super::super::lab::machine(root).unwrap()).unwrap();
        assert_eq!(m.ec.unwrap().engine_version, "2.4.18.0", "not yet");
        std::thread::sleep(std::time::Duration::from_millis(2100));
        let m = apply_due_upgrade(root, super::super::lab::machine(root).unwrap()).unwrap();
        assert_eq!(
            m.ec.unwrap().engine_version,
            "2.6.91.0",
            "after a real second"
        );
    }

    #[test]
    fn an_operator_who_never_finishes_never_upgrades() {
        let dir = lab_host();
        let root = dir.path();
        let text = std::fs::read_to_string(root.join("machine.toml"))
            .unwrap()
            .replace("delay_seconds = 0", "delay_seconds = 0\nacts = false");
        std::fs::write(root.join("machine.toml"), text).unwrap();
        handoff(root, &root.join("x.msi"), "2.6.91.0").unwrap();
        let m = apply_due_upgrade(root, super::super::lab::machine(root).unwrap()).unwrap();
        assert_eq!(m.ec.unwrap().engine_version, "2.4.18.0");
    }
}
