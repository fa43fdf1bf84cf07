//! The lab plays the operator of phase 3 (docs/lab.md): `handoff` on a lab host schedules the
//! operator `[operator] delay_seconds` later (unless `acts = false`: an MFA prompt that never
//! finishes). From then on, each time the host is looked at, the upgrade advances as
//! Microsoft's does (docs/design/DOMAIN.md §8b, S41): the installer runs; the wizard opens and
//! suspends the scheduler; the wizard replaces the binaries (the engine reads the new build, the
//! configuration still the old one); later it migrates the configuration (both read the new
//! build, or the configuration lags per `faults.config_version_lags`), resumes the scheduler
//! and closes. The first sync cycle follows, or, when the new build changes the out-of-box
//! rules (`[upgrade_effects]`), a full import and full synchronization that last lab hours
//! (S42). `restart-adsync` fixes a lagging configuration version when the fault says one
//! restart does. Every step, and every restart asked for, goes to the host's own log
//! (`lab-log.jsonl` beside `machine.toml`), with whether the wizard or the installer ran at
//! that moment: the tests read it to prove ADSync was never touched during an upgrade. The
//! controller's code path is the same as for a real host: it hands off, then watches the facts.

use std::io::Write;
use std::path::{Path, PathBuf};

use ecfleet_proto::lab::{Machine, MachineRun, MachineUpgrade};
use ecfleet_proto::upgrade::{HANDOFF_KIND, HandoffResult, RESTART_KIND, RestartResult};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The host's own log of what was done to it.
pub const LAB_LOG: &str = "lab-log.jsonl";

/// Where the scheduled upgrade stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Stage {
    /// The operator has not started yet.
    Scheduled,
    /// `msiexec.exe` runs `AzureADConnect.msi`.
    Installing,
    /// The wizard is open; the scheduler suspended.
    Wizard,
    /// The binaries are the new build; the configuration is being migrated.
    Migrating,
}

/// The scheduled operator, kept beside the agent on the lab host.
#[derive(Debug, Serialize, Deserialize)]
struct Scheduled {
    version: String,
    due_at: String,
    #[serde(default = "scheduled")]
    stage: Stage,
}

fn scheduled() -> Stage {
    Stage::Scheduled
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

fn write_schedule(root: &Path, s: &Scheduled) -> Result<(), String> {
    let path = schedule_file(root);
    std::fs::write(&path, serde_json::to_vec(s).unwrap_or_default())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn now() -> Timestamp {
    let t = Timestamp::now();
    t.round(jiff::Unit::Second).unwrap_or(t)
}

/// One line of the host's log.
#[derive(Debug, Serialize, Deserialize)]
pub struct LogEntry {
    pub at: String,
    pub event: String,
    pub detail: String,
    /// The wizard (`AzureADConnect.exe`) ran at that moment.
    pub wizard_running: bool,
    /// The Entra Connect installer ran at that moment.
    pub installer_running: bool,
}

/// Appends `event` to the host's log, with the machine's state at that moment.
pub fn log(root: &Path, m: &Machine, event: &str, detail: impl Into<String>) {
    let entry = LogEntry {
        at: Timestamp::now().to_string(),
        event: event.into(),
        detail: detail.into(),
        wizard_running: m.open_ui.wizard,
        installer_running: m.activity.installer_running,
    };
    let Ok(mut line) = serde_json::to_vec(&entry) else {
        return;
    };
    line.push(b'\n');
    // One write of one line: appends from concurrent agents do not interleave.
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join(LAB_LOG))
    {
        let _ = f.write_all(&line);
    }
}

/// Records the hand-off; schedules the lab's operator.
pub fn handoff(root: &Path, installer: &Path, version: &str) -> Result<HandoffResult, String> {
    let m = super::lab::machine(root)?;
    let at = now();
    let already = std::fs::read(schedule_file(root))
        .ok()
        .and_then(|b| serde_json::from_slice::<Scheduled>(&b).ok())
        .is_some_and(|s| s.version == version);
    // Told twice, the operator goes on with the upgrade already under way.
    if m.operator.acts && !already {
        let due = at + m.real(m.operator.delay_seconds);
        write_schedule(
            root,
            &Scheduled {
                version: version.to_string(),
                due_at: due.to_string(),
                stage: Stage::Scheduled,
            },
        )?;
    }
    log(
        root,
        &m,
        "handoff",
        format!(
            "to {version}; the operator starts at lab delay {} s",
            m.operator.delay_seconds
        ),
    );
    Ok(HandoffResult {
        kind: HANDOFF_KIND.into(),
        schema_version: ecfleet_proto::upgrade::UPGRADE_SCHEMA_VERSION,
        at: at.to_string(),
        installer_present: installer.is_file(),
    })
}

/// Advances the scheduled upgrade to where it stands now; returns the machine as it is now.
pub fn apply_due_upgrade(root: &Path, m: Machine) -> Result<Machine, String> {
    advance(root, m, now())
}

/// Advances the scheduled upgrade to where it stands at `at`.
fn advance(root: &Path, mut m: Machine, at: Timestamp) -> Result<Machine, String> {
    let path = schedule_file(root);
    let Ok(text) = std::fs::read(&path) else {
        return Ok(m);
    };
    let Ok(mut scheduled) = serde_json::from_slice::<Scheduled>(&text) else {
        return Ok(m);
    };
    let due: Timestamp = scheduled
        .due_at
        .parse()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if at < due {
        return Ok(m);
    }
    let op = m.operator.clone();
    let installing_ends = due + m.real(op.installer_seconds);
    let wizard_ends = installing_ends + m.real(op.wizard_seconds);
    let migration_ends = wizard_ends + m.real(op.config_migration_seconds);
    let before = scheduled.stage;
    if scheduled.stage < Stage::Installing {
        scheduled.stage = Stage::Installing;
        m.activity.installer_running = true;
        log(
            root,
            &m,
            "installer-started",
            "msiexec /i AzureADConnect.msi",
        );
    }
    if at >= installing_ends && scheduled.stage < Stage::Wizard {
        scheduled.stage = Stage::Wizard;
        m.activity.installer_running = false;
        m.open_ui.wizard = true;
        m.scheduler.scheduler_suspended = true;
        log(
            root,
            &m,
            "wizard-opened",
            "the wizard suspends the scheduler",
        );
    }
    if at >= wizard_ends && scheduled.stage < Stage::Migrating {
        if let Some(code) = m.faults.installer_fails.clone() {
            installer_failed(root, &mut m, &code, &scheduled.version, at);
            write_machine(root, &m)?;
            let _ = std::fs::remove_file(&path);
            return Ok(m);
        }
        scheduled.stage = Stage::Migrating;
        if let Some(ec) = m.ec.as_mut() {
            ec.engine_version = scheduled.version.clone();
            ec.wizard_version = Some(scheduled.version.clone());
        }
        let product = "Microsoft Azure AD Connect synchronization services";
        m.installer_events.push(ecfleet_proto::lab::MachineEvent {
            at: at.to_string(),
            id: 11707,
            message: format!("Product: {product} -- Installation completed successfully."),
        });
        m.installer_events.push(ecfleet_proto::lab::MachineEvent {
            at: at.to_string(),
            id: 1033,
            message: format!("Windows Installer installed the product. Product Name: {product}. Product Version: {}. Product Language: 1033. Manufacturer: Microsoft Corporation. Installation success or error status: 0.", scheduled.version),
        });
        log(
            root,
            &m,
            "binaries-replaced",
            format!(
                "the engine is {}; the configuration is being migrated",
                scheduled.version
            ),
        );
    }
    if at >= migration_ends {
        configuration_migrated(root, &mut m, &scheduled.version, at);
        write_machine(root, &m)?;
        let _ = std::fs::remove_file(&path);
        return Ok(m);
    }
    if scheduled.stage != before {
        write_machine(root, &m)?;
        write_schedule(root, &scheduled)?;
    }
    Ok(m)
}

/// The wizard's last step: the configuration migrated (unless it lags), the scheduler
/// resumed, the wizard closed; then the first cycle, or the full import and synchronization.
fn configuration_migrated(root: &Path, m: &mut Machine, version: &str, at: Timestamp) {
    let mut from = String::new();
    if let Some(ec) = m.ec.as_mut() {
        from = ec.config_version.clone();
        // Skipped states (a host not looked at for a while) still end in the new build.
        ec.engine_version = version.to_string();
        ec.wizard_version = Some(version.to_string());
        if m.faults.config_version_lags.is_none() {
            ec.config_version = version.to_string();
        }
    }
    m.activity.installer_running = false;
    m.scheduler.scheduler_suspended = false;
    m.open_ui.wizard = false;
    // An upgrade does not switch an existing server to application-based authentication
    // (docs/design/DOMAIN.md §8b, S45): a build that gains the cmdlet reports the legacy account.
    if m.entra_auth.is_none() && build(version) >= [2, 5, 3, 0] {
        m.entra_auth = Some("ServiceAccount".into());
    }
    // A wizard upgrade writes no "Entra Connect Upgrade" event: those (300-399) are the
    // automatic upgrade's (docs/design/DOMAIN.md §8b, S49).
    m.upgrade = Some(MachineUpgrade {
        event_message: String::new(),
        event_id: 0,
        from,
        to: version.to_string(),
        completed_at: at.to_string(),
    });
    m.runs = if m.upgrade_effects.default_rules_change {
        full_cycle(m)
    } else {
        first_cycle(m)
    };
    if m.faults.adsync_stops_after_upgrade {
        m.service.state = "Stopped".into();
        m.runs.clear();
    }
    if m.faults.rules_conflict_after_upgrade {
        for r in &mut m.runs {
            match r.run_profile.as_str() {
                "Export" => r.result = "completed-export-errors".into(),
                "Delta Synchronization" | "Full Synchronization" => {
                    r.result = "completed-sync-errors".into()
                }
                _ => {}
            }
        }
        m.sync_rules.customised_default_rules = m.sync_rules.customised_default_rules.max(1);
    }
    log(
        root,
        m,
        "configuration-migrated",
        format!(
            "the wizard closed; the scheduler resumed{}",
            if m.upgrade_effects.default_rules_change {
                "; the out-of-box rules changed: full import and full synchronization on every connector"
            } else {
                ""
            }
        ),
    );
}

/// A build number as four numbers (missing or unreadable parts are 0).
fn build(version: &str) -> [u32; 4] {
    let mut out = [0; 4];
    for (slot, part) in out.iter_mut().zip(version.split('.')) {
        *slot = part.parse().unwrap_or(0);
    }
    out
}

/// The installer failed when the wizard installed the sync engine: `1603` rolls back (the old
/// build stays); `25019` leaves the engine half removed: no ADSync service and no engine, the
/// uninstall entries still there. The wizard shows the error and the operator closes it.
fn installer_failed(root: &Path, m: &mut Machine, code: &str, version: &str, at: Timestamp) {
    if code == "25019" {
        m.ec = None;
        m.service.state = "NotFound".into();
        m.runs.clear();
    }
    m.open_ui.wizard = false;
    m.activity.installer_running = false;
    m.scheduler.scheduler_suspended = false;
    m.installer_events.push(ecfleet_proto::lab::MachineEvent {
        at: at.to_string(),
        id: 11708,
        message: format!("Product: Microsoft Azure AD Connect synchronization services -- Installation failed. (error {code}, upgrading to {version}, simulated)"),
    });
    log(root, m, "installer-failed", format!("MSI error {code}"));
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

/// The machine's connectors, as the cycle after an upgrade runs them.
fn connector_names(m: &Machine) -> Vec<String> {
    let mut connectors: Vec<String> = m.runs.iter().map(|r| r.connector.clone()).collect();
    connectors.sort();
    connectors.dedup();
    connectors
}

fn after_upgrade(connector: &str, profile: &str, after: u64, duration: u64) -> MachineRun {
    MachineRun {
        connector: connector.into(),
        run_profile: profile.into(),
        result: "success".into(),
        age_minutes: 0,
        duration_seconds: duration.min(u32::MAX as u64) as u32,
        after_upgrade_seconds: Some(after.min(u32::MAX as u64) as u32),
    }
}

/// The first sync cycle after the upgrade, minutes after it (lab time), on every connector: a
/// Delta Import, a Delta Synchronization and, off staging, an Export.
fn first_cycle(m: &Machine) -> Vec<MachineRun> {
    let mut out = Vec::new();
    for (i, c) in connector_names(m).iter().enumerate() {
        let mut profiles = vec!["Delta Import", "Delta Synchronization"];
        if !m.scheduler.staging_mode_enabled {
            profiles.push("Export");
        }
        for (j, profile) in profiles.iter().enumerate() {
            // Two minutes after the upgrade, then a minute apart, half a minute each.
            let after = 120 + 60 * (i * 3 + j) as u64;
            out.push(after_upgrade(c, profile, after, 30));
        }
    }
    out
}

/// The cycle after an upgrade that changed the out-of-box rules (Microsoft's upgrade doc,
/// docs/design/DOMAIN.md §8b S42): a Full Import, then a Full Synchronization on every
/// connector, together `[upgrade_effects] full_sync_seconds` (lab time), then, off staging,
/// an Export. Until they end, the connectors' overrides stay and no delta cycle runs.
fn full_cycle(m: &Machine) -> Vec<MachineRun> {
    let half = (m.upgrade_effects.full_sync_seconds / 2).max(1);
    let mut out = Vec::new();
    for c in connector_names(m) {
        out.push(after_upgrade(&c, "Full Import", 120 + half, half));
        out.push(after_upgrade(
            &c,
            "Full Synchronization",
            150 + 2 * half,
            half,
        ));
        if !m.scheduler.staging_mode_enabled {
            out.push(after_upgrade(&c, "Export", 210 + 2 * half, 30));
        }
    }
    out
}

/// Restarts the simulated ADSync service: a configuration version that lags behind the
/// engine's catches up when the fault says one restart fixes it. Refused while the wizard or
/// the installer runs, as the Windows agent refuses it: the host's log keeps every request
/// with what ran at that moment.
pub fn restart_adsync(root: &Path) -> Result<RestartResult, String> {
    let mut m = apply_due_upgrade(root, super::lab::machine(root)?)?;
    let (engine, config) =
        m.ec.as_ref()
            .map(|ec| (ec.engine_version.clone(), ec.config_version.clone()))
            .unwrap_or_default();
    log(
        root,
        &m,
        "adsync-restart-requested",
        format!("engine {engine}, configuration {config}"),
    );
    if m.open_ui.wizard || m.activity.installer_running {
        return Ok(RestartResult::refused(
            crate::backend::UPGRADE_RUNNING_REFUSAL,
        ));
    }
    let fixed = m.faults.config_version_lags.as_deref() == Some("fixed-by-restart");
    // A service that does not start after the upgrade does not start on a restart either.
    if fixed && let Some(ec) = m.ec.as_mut() {
        ec.config_version = ec.engine_version.clone();
        m.faults.config_version_lags = None;
        write_machine(root, &m)?;
    }
    let running = m.service.state == "Running";
    log(
        root,
        &m,
        "adsync-restarted",
        if running { "running" } else { "did not start" },
    );
    Ok(RestartResult {
        kind: RESTART_KIND.into(),
        schema_version: ecfleet_proto::upgrade::UPGRADE_SCHEMA_VERSION,
        running,
        message: if running {
            "Restart-Service ADSync (simulated)".into()
        } else {
            "Restart-Service : Service 'Microsoft Azure AD Sync (ADSync)' cannot be started (simulated: faults.adsync_stops_after_upgrade)".into()
        },
        refused_upgrade_running: false,
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
installer_seconds = 0
wizard_seconds = 0
config_migration_seconds = 0
"#;
        std::fs::write(dir.path().join("machine.toml"), text).unwrap();
        dir
    }

    fn log_events(root: &Path) -> Vec<LogEntry> {
        std::fs::read_to_string(root.join(LAB_LOG))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn an_upgrade_replaces_the_binaries_first_and_migrates_the_configuration_later() {
        let dir = lab_host();
        let root = dir.path();
        let text = std::fs::read_to_string(root.join("machine.toml")).unwrap();
        // One lab second per real second: each stage a minute.
        let text = text
            .replace("installer_seconds = 0", "installer_seconds = 60")
            .replace("wizard_seconds = 0", "wizard_seconds = 60")
            .replace(
                "config_migration_seconds = 0",
                "config_migration_seconds = 60",
            );
        std::fs::write(
            root.join("machine.toml"),
            format!("{text}[lab]\nclock_scale = 1\n"),
        )
        .unwrap();
        let h = handoff(root, &root.join("x.msi"), "2.6.91.0").unwrap();
        let t0: Timestamp = h.at.parse().unwrap();
        let at = |secs: i64| t0 + jiff::SignedDuration::from_secs(secs);
        let look = |secs: i64| {
            advance(
                root,
                super::super::lab::read_machine(root).unwrap(),
                at(secs),
            )
            .unwrap()
        };
        let m = look(10);
        assert!(m.activity.installer_running && !m.open_ui.wizard);
        let m = look(70);
        assert!(
            !m.activity.installer_running && m.open_ui.wizard && m.scheduler.scheduler_suspended
        );
        assert_eq!(m.ec.as_ref().unwrap().engine_version, "2.4.18.0");
        // The binaries are the new build; the configuration is still the old one, the wizard
        // still open, the scheduler still suspended.
        let m = look(130);
        let ec = m.ec.as_ref().unwrap();
        assert_eq!(
            (ec.engine_version.as_str(), ec.config_version.as_str()),
            ("2.6.91.0", "2.4.18.0")
        );
        assert!(m.open_ui.wizard && m.scheduler.scheduler_suspended);
        assert!(m.installer_events.iter().any(|e| e.id == 11707));
        let m = look(190);
        let ec = m.ec.as_ref().unwrap();
        assert_eq!(ec.config_version, "2.6.91.0");
        assert!(!m.open_ui.wizard && !m.scheduler.scheduler_suspended);
        assert!(!schedule_file(root).exists());
        let events: Vec<String> = log_events(root).into_iter().map(|e| e.event).collect();
        assert_eq!(
            events,
            [
                "handoff",
                "installer-started",
                "wizard-opened",
                "binaries-replaced",
                "configuration-migrated"
            ]
        );
    }

    #[test]
    fn a_restart_asked_for_while_the_wizard_runs_is_refused_and_logged() {
        let dir = lab_host();
        let root = dir.path();
        let text = std::fs::read_to_string(root.join("machine.toml")).unwrap();
        std::fs::write(
            root.join("machine.toml"),
            text.replace(
                "[operator]",
                "[open_ui]\nwizard = true\nsync_service_manager = false\n[operator]",
            ),
        )
        .unwrap();
        let r = restart_adsync(root).unwrap();
        assert!(r.refused_upgrade_running && !r.running);
        assert!(r.message.contains("wizard"), "{}", r.message);
        let log = log_events(root);
        assert_eq!(log.len(), 1);
        assert!(log[0].event == "adsync-restart-requested" && log[0].wizard_running);
    }

    #[test]
    fn an_upgrade_that_changes_the_default_rules_runs_a_full_sync_for_lab_hours() {
        let dir = lab_host();
        let root = dir.path();
        let text = std::fs::read_to_string(root.join("machine.toml")).unwrap();
        std::fs::write(
            root.join("machine.toml"),
            format!(
                "{text}[upgrade_effects]\ndefault_rules_change = true\nfull_sync_seconds = 7200\n"
            ),
        )
        .unwrap();
        handoff(root, &root.join("x.msi"), "2.6.91.0").unwrap();
        let m = apply_due_upgrade(root, super::super::lab::machine(root).unwrap()).unwrap();
        let profiles: Vec<&str> = m.runs.iter().map(|r| r.run_profile.as_str()).collect();
        assert_eq!(profiles, ["Full Import", "Full Synchronization", "Export"]);
        // Rendered a lab hour after the upgrade: the full import runs, the overrides stay.
        let done: Timestamp = m.upgrade.as_ref().unwrap().completed_at.parse().unwrap();
        let f = m.facts_at(done + m.real(3600), "test");
        let running = &f.run_history.as_ref().unwrap()[0];
        assert_eq!(
            (
                running.run_profile.as_str(),
                running.result.as_str(),
                running.complete
            ),
            ("Full Import", "in-progress", Some(false))
        );
        let o = &f.connector_overrides.as_ref().unwrap()[0];
        assert!(o.full_import_required && o.full_sync_required);
        // Three lab hours later it is all done.
        let f = m.facts_at(done + m.real(3 * 3600), "test");
        assert!(f.connector_overrides.unwrap().is_empty());
        assert!(
            f.run_history
                .unwrap()
                .iter()
                .all(|r| r.complete == Some(true) && r.result == "success")
        );
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
            .replace("delay_seconds = 0", "delay_seconds = 600")
            + "[lab]\nclock_scale = 600\n";
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
