//! What is wrong with one host: a pure function of its facts, its inventory role, the catalog,
//! the date and the audit thresholds. Every finding has a stable `code` (documented in
//! docs/json-output.md), a severity, a message naming what was seen and a fix.

use ecfleet_proto::{ENTRA_CONNECTOR_ID, Facts};
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, EcVersion, SupportStatus};
use crate::inventory::Role;

use super::playbook::AuditPlaybook;
use crate::checks::sync_engine::{self as engine, LocalDbLevel};
use crate::checks::{
    failed_last_runs, is_engine_entry, is_export, is_import, stopped_services, tls12_gaps,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub code: String,
    pub severity: Severity,
    pub message: String,
    pub fix: String,
}

/// The two readings of the installed version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionReadings {
    /// Sync engine (`miiserver.exe`) product version, else its file version.
    pub product: Option<String>,
    /// `ServerConfigurationVersion`.
    pub config: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportVerdict {
    pub status: Option<SupportStatus>,
    pub end_of_support: Option<Date>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub version: VersionReadings,
    pub support: SupportVerdict,
    pub findings: Vec<Finding>,
    /// Short sync-health summary for tables (`ok`, `export failed`, `stale 5h`, …).
    pub sync_summary: String,
}

use crate::platform::{MIN_DOTNET_RELEASE, MIN_OS_BUILD_V2};

fn finding(
    code: &str,
    severity: Severity,
    message: impl Into<String>,
    fix: impl Into<String>,
) -> Finding {
    Finding {
        code: code.into(),
        severity,
        message: message.into(),
        fix: fix.into(),
    }
}

/// The version that decides support: the engine's, else the configuration's.
pub fn running_version(v: &VersionReadings) -> Option<EcVersion> {
    v.product
        .as_deref()
        .or(v.config.as_deref())
        .and_then(|s| s.parse().ok())
}

pub fn evaluate(
    facts: &Facts,
    role: Role,
    catalog: &Catalog,
    as_of: Date,
    playbook: &AuditPlaybook,
) -> Evaluation {
    let mut out = Vec::new();
    let ec = facts.ec.as_ref();
    let version = VersionReadings {
        product: crate::checks::engine_version(facts),
        config: ec.and_then(|e| e.config_version.clone()),
    };
    let installed = ec.is_some()
        || facts
            .adsync_service
            .as_ref()
            .is_some_and(|s| s.state != "NotFound");

    for e in &facts.errors {
        out.push(finding("probe-failed", Severity::Warning, format!("could not read {}: {}", e.probe, e.message), "check that the ecfleet account is a local administrator and in ADSyncAdmins; rerun the audit"));
    }

    // Installation state.
    let uninstall_engine = facts
        .uninstall
        .as_ref()
        .and_then(|u| u.iter().find(|e| is_engine_entry(&e.display_name)));
    if !installed {
        if let Some(stale) = uninstall_engine {
            out.push(finding("half-removed-install", Severity::Critical, format!("Programs and Features lists \"{}\" {} but the ADSync service does not exist", stale.display_name, stale.display_version.as_deref().unwrap_or("")), "remove the stale product (msiexec /x {ProductCode}, reboot) before installing; see DOMAIN.md §7 #4"));
        } else {
            out.push(finding(
                "ec-not-installed",
                Severity::Critical,
                "Entra Connect is not installed (no ADSync service)",
                "check the inventory: is this the right server?",
            ));
        }
    }
    if let Some(svc) = facts
        .adsync_service
        .as_ref()
        .filter(|s| s.state != "NotFound" && s.state != "Running")
    {
        out.push(finding(
            "adsync-stopped",
            Severity::Critical,
            format!("the ADSync service is {}", svc.state),
            "start it (Start-Service ADSync) and check the Application log if it stops again",
        ));
    }

    // Version agreement and support.
    let product = version
        .product
        .as_deref()
        .and_then(|s| s.parse::<EcVersion>().ok());
    let config = version
        .config
        .as_deref()
        .and_then(|s| s.parse::<EcVersion>().ok());
    if let (Some(p), Some(c)) = (product, config)
        && p != c
    {
        out.push(finding("version-mismatch", Severity::Critical, format!("half-upgraded: the sync engine is {p} but the configuration version is {c}"), "rerun the Entra Connect wizard and choose Upgrade, then confirm password hash sync and writeback are still enabled"));
    }
    for (what, reading) in [
        ("sync engine", &version.product),
        ("configuration", &version.config),
    ] {
        if let Some(raw) = reading
            && raw.parse::<EcVersion>().is_err()
        {
            out.push(finding(
                "version-unreadable",
                Severity::Warning,
                format!(
                    "the {what} version reads {} (escaped), which is not a build number like 2.6.91.0",
                    crate::checks::shown(raw)
                ),
                "check the Entra Connect installation on the server (Programs and Features, miiserver.exe's version); support cannot be judged from this reading",
            ));
        }
    }
    let support = match running_version(&version) {
        Some(v) => {
            let s = catalog.support(v, as_of, playbook.retiring_days);
            let (code, severity, fix) = match s.status {
                SupportStatus::Supported => ("", Severity::Info, ""),
                SupportStatus::Retiring => (
                    "retiring-build",
                    Severity::Warning,
                    "plan the upgrade to the current build before that date",
                ),
                SupportStatus::Unsupported => (
                    "unsupported-build",
                    Severity::Critical,
                    "upgrade to the current build",
                ),
                SupportStatus::SyncStopped => (
                    "sync-stopped",
                    Severity::Critical,
                    "upgrade now (1.x hosts: swing-migrate to a new Server 2022/2025)",
                ),
                SupportStatus::Recalled => (
                    "recalled-build",
                    Severity::Critical,
                    "uninstall this build, then install the current one with the configuration backup",
                ),
                SupportStatus::UnknownBuild => (
                    "unknown-build",
                    Severity::Warning,
                    "update the catalog (--catalog FILE) or check the version reading",
                ),
            };
            if !code.is_empty() {
                out.push(finding(code, severity, s.reason.clone(), fix));
            }
            SupportVerdict {
                status: Some(s.status),
                end_of_support: s.end_of_support,
                reason: s.reason,
            }
        }
        None => SupportVerdict {
            status: None,
            end_of_support: None,
            reason: "version unknown".into(),
        },
    };

    // Prerequisites.
    if let Some(os) = &facts.os {
        if os.build < MIN_OS_BUILD_V2 {
            out.push(finding("os-too-old", Severity::Critical, format!("{} (build {}) cannot run Entra Connect V2", os.caption, os.build), "swing-migrate to a new Server 2022 or 2025 (an in-place OS upgrade from 2012 R2 is unsupported)"));
        }
        if os
            .installation_type
            .as_deref()
            .is_some_and(|t| t.contains("Core"))
        {
            out.push(finding(
                "server-core",
                Severity::Critical,
                "Server Core is not supported by Entra Connect",
                "migrate to a server with the full GUI",
            ));
        }
    }
    if let Some(dotnet) = &facts.dotnet {
        match dotnet.release {
            Some(r) if r >= MIN_DOTNET_RELEASE => {}
            other => out.push(finding(
                "dotnet-too-old",
                Severity::Critical,
                format!(
                    ".NET Framework release {} is below 4.7.2 (461808)",
                    other
                        .map(|r| r.to_string())
                        .unwrap_or_else(|| "none".into())
                ),
                "install .NET Framework 4.8 and reboot",
            )),
        }
    }
    if let Some(tls) = &facts.tls12 {
        let missing = tls12_gaps(tls);
        if !missing.is_empty() {
            out.push(finding("tls12-not-enforced", Severity::Warning, format!("TLS 1.2 is not enforced for {}", missing.join(", ")), "set SystemDefaultTlsVersions=1 and SchUseStrongCrypto=1 under both .NET v4.0.30319 keys (and enable TLS 1.2 in SCHANNEL), then reboot"));
        }
    }
    if let Some(disk) = &facts.disk {
        let min = (playbook.min_free_gib * (1u64 << 30) as f64) as u64;
        if disk.free_bytes < min {
            out.push(finding(
                "disk-low",
                Severity::Critical,
                format!(
                    "{} has {:.1} GiB free (minimum {:.1} GiB)",
                    disk.system_drive,
                    disk.free_bytes as f64 / (1u64 << 30) as f64,
                    playbook.min_free_gib
                ),
                format!(
                    "free space on {} (purge old run history, logs, temp files)",
                    disk.system_drive
                ),
            ));
        }
    }
    if let Some(ui) = &facts.open_ui {
        if ui.wizard {
            out.push(finding(
                "wizard-open",
                Severity::Warning,
                "the Entra Connect wizard is open; the scheduler is suspended while it is",
                "close AzureADConnect.exe on the server",
            ));
        }
        if ui.sync_service_manager {
            out.push(finding("sync-service-manager-open", Severity::Warning, "Synchronization Service Manager is open; upgrades abort with UpgradeAbortedSyncExeInUse", "close miisclient.exe on the server"));
        }
    }

    // Scheduler and staging.
    let staging = facts
        .scheduler
        .as_ref()
        .and_then(|s| s.staging_mode_enabled)
        .unwrap_or(false);
    if let Some(s) = &facts.scheduler {
        match (s.staging_mode_enabled, role) {
            (Some(true), Role::Active) => out.push(finding("staging-mode-on-active", Severity::Critical, "the server is in staging mode but the inventory says it is the active server: nothing is exported to Entra", "check which server should export; switch modes in the wizard, or fix role in the inventory")),
            (Some(false), Role::Staging) => out.push(finding("staging-server-exporting", Severity::Critical, "the inventory says staging, but staging mode is off: this server exports, perhaps alongside the active one", "enable staging mode in the wizard, or fix role in the inventory")),
            (Some(true), Role::Staging) => out.push(finding("staging-mode", Severity::Info, "staging mode: imports and syncs, never exports", "")),
            _ => {}
        }
        if s.sync_cycle_enabled == Some(false) {
            out.push(finding("sync-cycle-disabled", Severity::Critical, "the sync scheduler is disabled (SyncCycleEnabled = False); auto-upgrade aborts too", "Set-ADSyncScheduler -SyncCycleEnabled $true"));
        }
        if s.scheduler_suspended == Some(true) {
            out.push(finding("scheduler-suspended", Severity::Warning, "the scheduler is suspended (SchedulerSuspended = True), typical of an unfinished upgrade", "finish the upgrade in the wizard; do not clear the flag by hand"));
        }
        if s.sync_cycle_in_progress == Some(true) {
            out.push(finding(
                "sync-in-progress",
                Severity::Info,
                "a sync cycle is running now",
                "",
            ));
        }
    }

    // Run history.
    let sync_summary = match &facts.run_history {
        Some(runs) => run_findings(runs, staging, facts, playbook, &mut out),
        None => "unknown".to_string(),
    };

    // Health Agent and auto-upgrade.
    if let Some(health) = &facts.health_agent {
        let stopped = stopped_services(health);
        if !stopped.is_empty() {
            out.push(finding(
                "health-agent-stopped",
                Severity::Warning,
                format!("Health Agent service not running: {}", stopped.join(", ")),
                "start the services and re-register: Register-MicrosoftEntraConnectHealthAgent",
            ));
        } else if health.is_empty() && installed {
            out.push(finding("health-agent-missing", Severity::Info, "no Connect Health Agent service is installed", "install it (it ships inside Connect from 2.5.79.0) if the tenant has Entra ID P1/P2"));
        }
    }
    if let Some(au) = &facts.auto_upgrade
        && au.state.eq_ignore_ascii_case("suspended")
    {
        out.push(finding("auto-upgrade-suspended", Severity::Warning, format!("auto-upgrade is suspended{}", au.suspension_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()), "fix the reason, then Set-ADSyncAutoUpgrade -AutoUpgradeState Enabled (or keep upgrading with ecfleet)"));
    }
    if let Some(rules) = &facts.sync_rules
        && rules.customised_default_rules > 0
    {
        out.push(finding("customised-default-rules", Severity::Warning, format!("{} default sync rule(s) were changed; an upgrade resets them and forces a full sync", rules.customised_default_rules), "move the changes into cloned rules (precedence 0–99) before upgrading"));
    }

    engine_findings(facts, &mut out);

    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.code.cmp(&b.code))
    });
    Evaluation {
        version,
        support,
        findings: out,
        sync_summary,
    }
}

/// The sync engine's own state: LocalDB against its limits, an edited `miiserver.exe.config`,
/// the Entra connector (DOMAIN.md §7 #10–#12).
fn engine_findings(facts: &Facts, out: &mut Vec<Finding>) {
    if let Some(db) = engine::localdb_state(facts) {
        out.push(match db.level {
            LocalDbLevel::Full => finding(
                "localdb-full",
                Severity::Critical,
                format!("{}: the sync engine stops at 10 GB", db.describe()),
                engine::LOCALDB_FIX,
            ),
            LocalDbLevel::Large => finding(
                "localdb-large",
                Severity::Warning,
                format!(
                    "{}: auto-upgrade refuses 8 GB and more (UpgradeNotSupportedLocalDbSizeExceeded), and a full sync after an upgrade may fill it",
                    db.describe()
                ),
                engine::LOCALDB_FIX,
            ),
        });
    }
    if let Some(config) = engine::edited_engine_config(facts) {
        let when = config.last_write.as_deref().unwrap_or("an unknown time");
        out.push(if config.diagnostic_source_redirect {
            finding(
                "engine-config-edited",
                Severity::Info,
                format!("{} was edited after the install ({when}) and has the DiagnosticSource redirect; auto-upgrade skips such hosts from 2.6.3.0", config.path),
                "keep a copy of the file: check it again after each upgrade",
            )
        } else {
            finding(
                "engine-config-edited",
                Severity::Warning,
                format!("{} was edited after the install ({when}) without a System.Diagnostics.DiagnosticSource redirect: an upgrade to 2.5.190.0–2.6.x stops the sync engine (FileLoadException), and auto-upgrade skips such hosts from 2.6.3.0", config.path),
                engine::REDIRECT_FIX,
            )
        });
    }
    if engine::entra_connector_missing(facts) {
        out.push(finding(
            "entra-connector-missing",
            Severity::Critical,
            format!("the Microsoft Entra ID connector ({ENTRA_CONNECTOR_ID}) is missing: nothing reaches Entra, and the upgrade wizard fails at its start"),
            "unsupported configuration: uninstall Entra Connect and install it clean, importing the configuration backup (DOMAIN.md §7 #12)",
        ));
    }
}

/// Findings from the run history (newest first); returns the table summary.
fn run_findings(
    runs: &[ecfleet_proto::RunResult],
    staging: bool,
    facts: &Facts,
    playbook: &AuditPlaybook,
    out: &mut Vec<Finding>,
) -> String {
    let mut summary = Vec::new();
    for r in failed_last_runs(runs, staging) {
        if is_export(&r.run_profile) {
            out.push(finding(
                "export-failed",
                Severity::Critical,
                format!("the last Export on {} ended with {}", r.connector, r.result),
                "open Synchronization Service Manager → Operations and fix the export errors",
            ));
            summary.push("export failed");
        } else {
            out.push(finding("delta-import-failed", Severity::Critical, format!("the last {} on {} ended with {}", r.run_profile, r.connector, r.result), "open Synchronization Service Manager → Operations on the server and fix the connector's errors"));
            summary.push("import failed");
        }
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
            if age_h > playbook.max_sync_age_hours {
                out.push(finding("sync-stale", Severity::Warning, format!("the last successful import ended {age_h:.1} h ago (threshold {} h)", playbook.max_sync_age_hours), "check that the scheduler runs (Get-ADSyncScheduler) and that no cycle is stuck"));
                summary.push("stale");
            }
        }
        (None, _) if !runs.is_empty() || facts.scheduler.is_some() => {
            out.push(finding(
                "no-successful-import",
                Severity::Warning,
                "the run history holds no successful import",
                "run Start-ADSyncSyncCycle -PolicyType Delta and check the result",
            ));
            summary.push("no import");
        }
        _ => {}
    }
    let mut seen = std::collections::HashSet::new();
    summary.retain(|s| seen.insert(*s));
    if summary.is_empty() {
        if staging {
            "ok (staging)".into()
        } else {
            "ok".into()
        }
    } else {
        summary.join(", ")
    }
}

#[cfg(test)]
mod tests;
