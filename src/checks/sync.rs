//! Checks of how the server syncs (docs/design/DOMAIN.md §3.4, §4, §7): the scheduler and staging mode
//! against the inventory's role, the newest runs of each connector, the Health Agent,
//! auto-upgrade and edited sync rules.

use ecfleet_proto::{Facts, RunResult};
use jiff::Timestamp;

use crate::inventory::Role;

use super::model::{Check, Code, Limits, Severity};
use super::{failed_last_runs, is_export, is_import, shown, stopped_services};

/// Whether the server is in staging mode: as it says, else as the inventory's role says.
pub fn staging_mode(facts: &Facts, role: Role) -> bool {
    facts
        .scheduler
        .as_ref()
        .and_then(|s| s.staging_mode_enabled)
        .unwrap_or(role == Role::Staging)
}

pub(super) fn scheduler(facts: &Facts, role: Role, out: &mut Vec<Check>) {
    let Some(s) = &facts.scheduler else { return };
    match (s.staging_mode_enabled, role) {
        (Some(true), Role::Active) => out.push(Check::new(Code::StagingModeOnActive, Severity::Critical, "the server is in staging mode but the inventory says it is the active server: nothing is exported to Entra", "check which server should export; switch modes in the wizard, or fix role in the inventory", &["scheduler"])),
        (Some(false), Role::Staging) => out.push(Check::new(Code::StagingServerExporting, Severity::Critical, "the inventory says staging, but staging mode is off: this server exports, perhaps alongside the active one", "enable staging mode in the wizard, or fix role in the inventory", &["scheduler"])),
        (Some(true), Role::Staging) => out.push(Check::new(Code::StagingMode, Severity::Info, "staging mode: imports and syncs, never exports", "", &["scheduler"])),
        _ => {}
    }
    if s.sync_cycle_enabled == Some(false) {
        out.push(Check::new(
            Code::SyncCycleDisabled,
            Severity::Critical,
            "the sync scheduler is disabled (SyncCycleEnabled = False); auto-upgrade aborts too",
            "Set-ADSyncScheduler -SyncCycleEnabled $true",
            &["scheduler"],
        ));
    }
    if s.scheduler_suspended == Some(true) {
        out.push(Check::new(
            Code::SchedulerSuspended,
            Severity::Warning,
            "the scheduler is suspended (SchedulerSuspended = True), typical of an unfinished upgrade or an open wizard",
            "finish the upgrade in the wizard; do not clear the flag by hand",
            &["scheduler"],
        ));
    }
    if s.sync_cycle_in_progress == Some(true) {
        out.push(Check::new(
            Code::SyncInProgress,
            Severity::Info,
            "a sync cycle is running now",
            "let it finish (Get-ADSyncConnectorRunStatus returns nothing when idle)",
            &["scheduler"],
        ));
    }
}

pub(super) fn run_history(facts: &Facts, limits: &Limits<'_>, out: &mut Vec<Check>) {
    let Some(runs) = &facts.run_history else {
        return;
    };
    for r in failed_last_runs(runs, staging_mode(facts, limits.role)) {
        out.push(failed_run(r));
    }
    let collected: Option<Timestamp> = facts.collected_at.parse().ok();
    let last_import = runs
        .iter()
        .filter(|r| is_import(&r.run_profile) && r.result == "success")
        .filter_map(|r| r.end.as_deref()?.parse::<Timestamp>().ok())
        .max();
    match (last_import, collected) {
        (Some(end), Some(now)) => {
            let age_h = (now - end).as_secs() as f64 / 3600.0;
            if age_h > limits.max_sync_age_hours {
                out.push(Check::new(Code::SyncStale, Severity::Warning, format!("the last successful import ended {age_h:.1} h ago (threshold {} h)", limits.max_sync_age_hours), "check that the scheduler runs (Get-ADSyncScheduler) and that no cycle is stuck", &["run_history", "collected_at"]));
            }
        }
        (None, _) if !runs.is_empty() || facts.scheduler.is_some() => out.push(Check::new(
            Code::NoSuccessfulImport,
            Severity::Warning,
            "the run history holds no successful import",
            "run Start-ADSyncSyncCycle -PolicyType Delta and check the result",
            &["run_history"],
        )),
        _ => {}
    }
}

fn failed_run(r: &RunResult) -> Check {
    let message = format!(
        "the last {} on {} ended with {}",
        shown(&r.run_profile),
        shown(&r.connector),
        shown(&r.result)
    );
    let check = if is_export(&r.run_profile) {
        Check::new(
            Code::ExportFailed,
            Severity::Critical,
            message,
            "open Synchronization Service Manager → Operations and fix the export errors",
            &["run_history"],
        )
    } else {
        Check::new(
            Code::DeltaImportFailed,
            Severity::Critical,
            message,
            "open Synchronization Service Manager → Operations on the server and fix the connector's errors",
            &["run_history"],
        )
    };
    check.on(r.connector.clone())
}

pub(super) fn health_agent(facts: &Facts, installed: bool, out: &mut Vec<Check>) {
    let Some(health) = &facts.health_agent else {
        return;
    };
    let stopped = stopped_services(health);
    if !stopped.is_empty() {
        out.push(Check::new(
            Code::HealthAgentStopped,
            Severity::Warning,
            format!(
                "Health Agent service not running: {}",
                shown(&stopped.join(", "))
            ),
            "on the host run Register-MicrosoftEntraConnectHealthAgent -AttributeFiltering $false -StagingMode (Get-ADSyncScheduler).StagingModeEnabled, with -AttributeFiltering $true instead when this server syncs a filtered attribute set (the wizard's Microsoft Entra app and attribute filtering), signing in as a Global Administrator or Hybrid Identity Administrator; then start the services",
            &["health_agent"],
        ));
    } else if health.is_empty() && installed {
        out.push(Check::new(
            Code::HealthAgentMissing,
            Severity::Info,
            "no Connect Health Agent service is installed",
            "install it (it ships inside Connect from 2.5.79.0) if the tenant has Entra ID P1/P2",
            &["health_agent"],
        ));
    }
}

pub(super) fn auto_upgrade(facts: &Facts, out: &mut Vec<Check>) {
    if let Some(au) = &facts.auto_upgrade
        && au.state.eq_ignore_ascii_case("suspended")
    {
        out.push(Check::new(
            Code::AutoUpgradeSuspended,
            Severity::Warning,
            format!(
                "auto-upgrade is suspended{}",
                au.suspension_reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
            "fix the reason, then Set-ADSyncAutoUpgrade -AutoUpgradeState Enabled (or keep upgrading with ecfleet)",
            &["auto_upgrade"],
        ));
    }
}

pub(super) fn sync_rules(facts: &Facts, out: &mut Vec<Check>) {
    let Some(rules) = &facts.sync_rules else {
        return;
    };
    if rules.customised_default_rules > 0 {
        out.push(Check::new(Code::CustomisedDefaultRules, Severity::Warning, format!("{} default sync rule(s) were changed; an upgrade resets them to defaults and forces a full import and full sync", rules.customised_default_rules), "move the changes into cloned rules (precedence 0–99) before upgrading, or plan the time for a full sync", &["sync_rules"]));
    }
    if rules.custom_rules_outside_0_99 > 0 {
        out.push(Check::new(
            Code::CustomRulesPrecedence,
            Severity::Warning,
            format!(
                "{} custom sync rule(s) have a precedence outside 0–99",
                rules.custom_rules_outside_0_99
            ),
            "renumber custom rules into 0–99 (docs/design/DOMAIN.md §4, §7 #6)",
            &["sync_rules"],
        ));
    }
}
