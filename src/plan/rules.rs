//! The decision for one host: `in-place`, `migrate`, `two-hop`, `up-to-date` or `blocked`, with
//! the reasons, the fixes and the warnings. One pure, deterministic function of the host's facts
//! (or why there are none), its role and OS policy, the catalog, the target, the policy and the
//! date; no I/O. The rules follow the field procedure (DOMAIN.md §1, §3, §5, §7); every code is
//! listed in docs/json-output.md.

use ecfleet_proto::Facts;
use jiff::ToSpan;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, DeadlineEffect, EcVersion, SupportStatus};
use crate::checks::sync_engine::{self as engine, LocalDbLevel};
use crate::checks::{failed_last_runs, is_engine_entry, stopped_services, tls12_gaps};
use crate::inventory::Role;
use crate::platform::{MIN_DOTNET_RELEASE, MIN_OS_BUILD_V2, MinOs, server_name};

use super::policy::PlanPolicy;

/// What a host needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    InPlace,
    Migrate,
    TwoHop,
    UpToDate,
    Blocked,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::InPlace,
        Action::Migrate,
        Action::TwoHop,
        Action::UpToDate,
        Action::Blocked,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Action::InPlace => "in-place",
            Action::Migrate => "migrate",
            Action::TwoHop => "two-hop",
            Action::UpToDate => "up-to-date",
            Action::Blocked => "blocked",
        }
    }

    /// Whether the action changes the host (or needs someone to act first).
    pub fn is_pending(&self) -> bool {
        !matches!(self, Action::UpToDate)
    }
}

/// A reason or a warning: a stable code, what was seen, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub code: String,
    pub message: String,
    pub fix: Option<String>,
}

fn note(code: &str, message: impl Into<String>, fix: Option<String>) -> Note {
    Note {
        code: code.into(),
        message: message.into(),
        fix,
    }
}

/// What the rules are given about one host.
#[derive(Debug, Clone, Copy)]
pub struct HostInput<'a> {
    pub role: Role,
    /// The facts, or why there are none (unreachable, not audited, …).
    pub facts: Result<&'a Facts, &'a str>,
    /// The host's OS policy from the inventory; `None`: the playbook's.
    pub min_os: Option<MinOs>,
}

/// Everything the rules need besides the host.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub catalog: &'a Catalog,
    pub target: EcVersion,
    pub policy: &'a PlanPolicy,
    pub as_of: Date,
}

/// The decision for one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub action: Action,
    /// The installed build (the sync engine's reading, else the configuration's).
    pub from: Option<String>,
    /// The build the host goes to; `None` for `up-to-date`.
    pub to: Option<String>,
    /// The intermediate build of a `two-hop`.
    pub via: Option<String>,
    pub reasons: Vec<Note>,
    pub warnings: Vec<Note>,
}

fn blocked(from: Option<String>, to: Option<String>, reasons: Vec<Note>) -> Decision {
    Decision {
        action: Action::Blocked,
        from,
        to,
        via: None,
        reasons,
        warnings: Vec::new(),
    }
}

fn os_label(build: u32) -> String {
    match server_name(build) {
        Some(n) => format!("Windows Server {n} (build {build})"),
        None => format!("OS build {build}"),
    }
}

fn probe_error(facts: &Facts, probe: &str) -> String {
    facts
        .errors
        .iter()
        .find(|e| e.probe == probe)
        .map(|e| e.message.clone())
        .unwrap_or_else(|| "no answer".into())
}

/// Decides what to do with one host.
pub fn decide(host: HostInput<'_>, cx: Context<'_>) -> Decision {
    let target = cx.target;
    let to = Some(target.to_string());
    let facts = match host.facts {
        Ok(f) => f,
        Err(why) => {
            return blocked(
                None,
                to,
                vec![note(
                    "unreachable",
                    format!("no facts from the host: {why}"),
                    Some("make the host reachable (check it with `ecfleet audit --host NAME`), then plan again".into()),
                )],
            );
        }
    };

    // Is Entra Connect there at all?
    let ec = facts.ec.as_ref();
    let service_present = facts
        .adsync_service
        .as_ref()
        .is_some_and(|s| s.state != "NotFound");
    if ec.is_none() && !service_present {
        let stale = facts
            .uninstall
            .as_ref()
            .and_then(|u| u.iter().find(|e| is_engine_entry(&e.display_name)));
        let reason = match stale {
            Some(entry) => note(
                "half-removed-install",
                format!(
                    "Programs and Features lists \"{}\" {} but the ADSync service does not exist: an earlier install was half removed",
                    entry.display_name,
                    entry.display_version.as_deref().unwrap_or("")
                ),
                Some("remove the stale product (msiexec /x {ProductCode} /qn, reboot; see DOMAIN.md §7 #4), then plan again".into()),
            ),
            None => note(
                "ec-not-installed",
                "Entra Connect is not installed on this host (no ADSync service)",
                Some("check the inventory: is this the right server?".into()),
            ),
        };
        return blocked(None, to, vec![reason]);
    }

    // The two readings of the version.
    let parse = |s: Option<&String>| s.and_then(|v| v.parse::<EcVersion>().ok());
    let engine = crate::checks::engine_version(facts);
    let product = parse(engine.as_ref());
    let config = parse(ec.and_then(|e| e.config_version.as_ref()));
    let Some(installed) = product.or(config) else {
        return blocked(
            None,
            to,
            vec![note(
                "version-unknown",
                format!(
                    "the installed version could not be read ({})",
                    probe_error(facts, "ec")
                ),
                Some("check that the ecfleet account is a local administrator and in ADSyncAdmins, then plan again".into()),
            )],
        );
    };
    let from = Some(installed.to_string());
    let mismatch = matches!((product, config), (Some(p), Some(c)) if p != c);

    let mut warnings = host_warnings(facts, host.role, installed, cx);

    // A new server: the OS cannot take the target, or policy wants a newer OS.
    let requirement = cx.catalog.requirement_for(target);
    let target_min_build = requirement
        .map(|r| r.min_os_build)
        .unwrap_or(if target.major() >= 2 {
            MIN_OS_BUILD_V2
        } else {
            0
        });
    let min_os = host
        .min_os
        .map(|m| m.build)
        .unwrap_or(cx.policy.min_os_build);
    let mut new_server = Vec::new();
    let mut blockers = Vec::new();
    match &facts.os {
        Some(os) => {
            if os.build < target_min_build {
                new_server.push(note(
                    "os-unsupported",
                    format!(
                        "{} cannot run {target}, which needs {}; an in-place OS upgrade from it is unsupported",
                        os_label(os.build),
                        os_label(target_min_build)
                    ),
                    Some("build a new Windows Server 2022 or 2025, import the configuration backup there in staging mode, then switch roles (swing migration)".into()),
                ));
            } else if os.build < min_os {
                new_server.push(note(
                    "os-policy",
                    format!(
                        "{} is below the policy minimum {}",
                        os_label(os.build),
                        os_label(min_os)
                    ),
                    Some("swing-migrate to a new server on a supported OS (in-place OS upgrades are supported only from 2016/2019/2022 to 2025)".into()),
                ));
            }
            if os
                .installation_type
                .as_deref()
                .is_some_and(|t| t.contains("Core"))
            {
                new_server.push(note(
                    "server-core",
                    "Server Core is not supported by Entra Connect",
                    Some("swing-migrate to a server with the full GUI".into()),
                ));
            }
        }
        None => blockers.push(note(
            "prerequisite-unknown",
            format!("the OS could not be read ({})", probe_error(facts, "os")),
            Some("rerun `ecfleet audit --host NAME` and fix the probe error it shows".into()),
        )),
    }
    if !new_server.is_empty() && blockers.is_empty() {
        warnings.retain(|w| w.code != "swing-suggested");
        return Decision {
            action: Action::Migrate,
            from,
            to,
            via: None,
            reasons: new_server,
            warnings,
        };
    }

    let recalled = cx.catalog.release(installed).is_some_and(|r| r.recalled);
    let at_target = installed >= target && !recalled;
    if at_target && !mismatch && blockers.is_empty() {
        if config.is_none() {
            warnings.push(note(
                "version-unconfirmed",
                format!(
                    "the configuration version could not be read ({}), so the two readings were not compared",
                    probe_error(facts, "ec")
                ),
                Some("check the ADSync PowerShell module on the host".into()),
            ));
        }
        warnings.retain(|w| UP_TO_DATE_WARNINGS.contains(&w.code.as_str()));
        return Decision {
            action: Action::UpToDate,
            from,
            to: None,
            via: None,
            reasons: vec![note(
                "at-target",
                format!("{installed} is at or above the target {target}"),
                None,
            )],
            warnings,
        };
    }

    // Everything that stops a change on this server: the prerequisites, and the host warnings
    // that block once a change is due.
    blockers.extend(prerequisite_blockers(
        facts, target, mismatch, product, config, cx,
    ));
    let (blocking, rest): (Vec<Note>, Vec<Note>) = warnings
        .into_iter()
        .partition(|w| BLOCKING_WARNINGS.contains(&w.code.as_str()));
    blockers.extend(blocking);
    let mut warnings = rest;
    let hop = cx.catalog.hop_for(installed, target);
    let via = hop.map(|h| h.via.to_string());
    if !blockers.is_empty() {
        return Decision {
            action: Action::Blocked,
            from,
            to,
            via,
            reasons: blockers,
            warnings,
        };
    }
    if recalled {
        warnings.retain(|w| w.code != "swing-suggested");
        return Decision {
            action: Action::Migrate,
            from,
            to,
            via: None,
            reasons: vec![note(
                "recalled-build",
                format!("{installed} was recalled by Microsoft and cannot be upgraded in place"),
                Some(format!(
                    "on the same server: back up the configuration, uninstall {installed}, install {target} and import the backup"
                )),
            )],
            warnings,
        };
    }
    if let Some(h) = hop {
        return Decision {
            action: Action::TwoHop,
            from,
            to,
            via,
            reasons: vec![note(
                "two-hop",
                format!("{installed} → {} → {target}: {}", h.via, h.reason),
                None,
            )],
            warnings,
        };
    }
    Decision {
        action: Action::InPlace,
        from,
        to,
        via: None,
        reasons: vec![note("newer-build", format!("{installed} → {target}"), None)],
        warnings,
    }
}

/// Host warnings that block a change on the server itself: an up-to-date or migrating host
/// keeps them as warnings.
const BLOCKING_WARNINGS: &[&str] = &["localdb-full", "entra-connector-missing"];

/// Warnings that still matter on a host that needs no upgrade.
const UP_TO_DATE_WARNINGS: &[&str] = &[
    "engine-config-edited",
    "entra-connector-missing",
    "health-agent-disabled",
    "localdb-full",
    "localdb-large",
    "sync-errors",
    "sync-cycle-disabled",
    "version-unconfirmed",
];

fn prerequisite_blockers(
    facts: &Facts,
    target: EcVersion,
    mismatch: bool,
    product: Option<EcVersion>,
    config: Option<EcVersion>,
    cx: Context<'_>,
) -> Vec<Note> {
    let mut out = Vec::new();
    let unknown = |what: &str, probe: &str| {
        note(
            "prerequisite-unknown",
            format!("{what} could not be read ({})", probe_error(facts, probe)),
            Some("rerun `ecfleet audit --host NAME` and fix the probe error it shows".into()),
        )
    };
    if mismatch && let (Some(p), Some(c)) = (product, config) {
        out.push(note(
            "version-mismatch",
            format!("half-upgraded: the sync engine is {p} but the configuration version is {c}"),
            Some("finish the earlier upgrade: run the Entra Connect wizard and choose Upgrade, then confirm password hash sync and writeback are still on".into()),
        ));
    }
    if let Some(svc) = facts
        .adsync_service
        .as_ref()
        .filter(|s| s.state != "Running" && s.state != "NotFound")
    {
        out.push(note(
            "adsync-not-running",
            format!("the ADSync service is {}: the configuration cannot be exported", svc.state),
            Some("start it (Start-Service ADSync); if it does not start, check the Application log (LocalDB, DOMAIN.md §7 #9, #10)".into()),
        ));
    }
    let min_release = cx
        .catalog
        .requirement_for(target)
        .map(|r| r.min_dotnet_release.max(MIN_DOTNET_RELEASE))
        .unwrap_or(MIN_DOTNET_RELEASE);
    match facts.dotnet.as_ref().map(|d| d.release) {
        Some(Some(r)) if r >= min_release => {}
        Some(release) => out.push(note(
            "dotnet-too-old",
            format!(
                ".NET Framework release {} is below 4.7.2 ({min_release})",
                release
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "none".into())
            ),
            Some("install .NET Framework 4.8 and reboot".into()),
        )),
        None => out.push(unknown(".NET Framework", "dotnet")),
    }
    match &facts.tls12 {
        Some(tls) => {
            let gaps = tls12_gaps(tls);
            if !gaps.is_empty() {
                out.push(note(
                    "tls12-not-enforced",
                    format!("TLS 1.2 is not enforced for {}", gaps.join(", ")),
                    Some("set the TLS 1.2 registry values for .NET (SystemDefaultTlsVersions=1 and SchUseStrongCrypto=1 in both hives; Set-ADSyncToolsTls12) and reboot".into()),
                ));
            }
        }
        None => out.push(unknown("TLS 1.2 settings", "tls12")),
    }
    match &facts.disk {
        Some(disk) => {
            let min = (cx.policy.min_free_gib * (1u64 << 30) as f64) as u64;
            if disk.free_bytes < min {
                out.push(note(
                    "disk-low",
                    format!(
                        "{} has {:.1} GiB free; the upgrade needs {:.1} GiB",
                        disk.system_drive,
                        disk.free_bytes as f64 / (1u64 << 30) as f64,
                        cx.policy.min_free_gib
                    ),
                    Some(format!(
                        "free space on {} (purge old run history, logs and temp files) and plan again",
                        disk.system_drive
                    )),
                ));
            }
        }
        None => out.push(unknown("free disk space", "disk")),
    }
    match &facts.open_ui {
        Some(ui) => {
            if ui.wizard {
                out.push(note(
                    "wizard-open",
                    "the Entra Connect wizard is open (the scheduler is suspended while it is)",
                    Some("close AzureADConnect.exe on the server, then plan again".into()),
                ));
            }
            if ui.sync_service_manager {
                out.push(note(
                    "sync-service-manager-open",
                    "Synchronization Service Manager is open (upgrades abort with UpgradeAbortedSyncExeInUse)",
                    Some("close miisclient.exe on the server, then plan again".into()),
                ));
            }
        }
        None => out.push(unknown("open Entra Connect windows", "open_ui")),
    }
    if let Some(config) = engine::edited_engine_config(facts)
        && !config.diagnostic_source_redirect
        && engine::target_needs_redirect(target)
    {
        out.push(note(
            "engine-config-needs-redirect",
            format!("{} was edited after the install and has no System.Diagnostics.DiagnosticSource redirect: the sync engine of {target} would not start (FileLoadException)", config.path),
            Some(format!("{}; or choose a target of 2.6.84.0 or newer, which merges the file", engine::REDIRECT_FIX)),
        ));
    }
    match &facts.scheduler {
        Some(s) if s.sync_cycle_in_progress == Some(true) => out.push(note(
            "sync-in-progress",
            "a sync cycle is running now",
            Some("let it finish (Get-ADSyncConnectorRunStatus returns nothing when idle), then plan again".into()),
        )),
        Some(_) => {}
        None => out.push(unknown("the sync scheduler", "scheduler")),
    }
    out
}

/// Warnings: they do not block, but the operator must see them.
fn host_warnings(facts: &Facts, role: Role, installed: EcVersion, cx: Context<'_>) -> Vec<Note> {
    let mut out = Vec::new();
    let support = cx
        .catalog
        .support(installed, cx.as_of, cx.policy.retiring_days);
    match support.status {
        SupportStatus::Retiring => out.push(note("retiring-build", support.reason, None)),
        SupportStatus::Unsupported => out.push(note("unsupported-build", support.reason, None)),
        SupportStatus::SyncStopped => out.push(note(
            "sync-stopped",
            support.reason,
            Some("upgrade in the first possible window: this server no longer synchronises".into()),
        )),
        SupportStatus::UnknownBuild => out.push(note(
            "unknown-build",
            support.reason,
            Some("update the catalog (--catalog FILE) or check the version reading".into()),
        )),
        SupportStatus::Supported | SupportStatus::Recalled => {}
    }
    if let Some(release) = cx.catalog.release(installed)
        && let Ok(cutoff) = cx.as_of.checked_sub(cx.policy.swing_after_months.months())
        && release.released <= cutoff
    {
        out.push(note(
            "swing-suggested",
            format!(
                "{installed} was released on {}, {}+ months ago: Microsoft suggests a swing migration (new server in staging, then switch) over an in-place upgrade this large",
                release.released, cx.policy.swing_after_months
            ),
            None,
        ));
    }
    if let Some(rules) = &facts.sync_rules {
        if rules.customised_default_rules > 0 {
            out.push(note(
                "customised-default-rules",
                format!(
                    "{} default sync rule(s) were edited: the upgrade resets them to defaults and forces a full import and full sync",
                    rules.customised_default_rules
                ),
                Some("move the changes into cloned rules (precedence 0–99) before the window, or plan the time for a full sync".into()),
            ));
        }
        if rules.custom_rules_outside_0_99 > 0 {
            out.push(note(
                "custom-rules-precedence",
                format!(
                    "{} custom sync rule(s) have a precedence outside 0–99",
                    rules.custom_rules_outside_0_99
                ),
                Some("renumber custom rules into 0–99 (DOMAIN.md §4, §7 #6)".into()),
            ));
        }
    }
    if let Some(db) = engine::localdb_state(facts) {
        let (code, consequence) = match db.level {
            LocalDbLevel::Full => (
                "localdb-full",
                "sync has stopped, and an upgrade cannot write its changes",
            ),
            LocalDbLevel::Large => (
                "localdb-large",
                "auto-upgrade refuses it, and the full sync an upgrade may queue can fill it",
            ),
        };
        out.push(note(
            code,
            format!("{}: {consequence}", db.describe()),
            Some(engine::LOCALDB_FIX.into()),
        ));
    }
    if engine::entra_connector_missing(facts) {
        out.push(note(
            "entra-connector-missing",
            format!("the Microsoft Entra ID connector ({}) is missing: nothing reaches Entra, and the upgrade wizard fails at its start", ecfleet_proto::ENTRA_CONNECTOR_ID),
            Some("unsupported configuration: uninstall Entra Connect and install it clean, importing the configuration backup (DOMAIN.md §7 #12)".into()),
        ));
    }
    if let Some(config) = engine::edited_engine_config(facts) {
        out.push(note(
            "engine-config-edited",
            format!(
                "{} was edited after the install{}: auto-upgrade skips this host from 2.6.3.0",
                config.path,
                if config.diagnostic_source_redirect {
                    " (it has the DiagnosticSource redirect)"
                } else {
                    ""
                }
            ),
            Some("keep a copy of the file and check it after the upgrade (2.6.84.0 and newer merge it)".into()),
        ));
    }
    if let Some(health) = &facts.health_agent {
        let stopped = stopped_services(health);
        if !stopped.is_empty() {
            out.push(note(
                "health-agent-disabled",
                format!("Connect Health Agent not running: {}", stopped.join(", ")),
                Some("re-enable after the upgrade: start the services and Register-MicrosoftEntraConnectHealthAgent".into()),
            ));
        }
    }
    if let Some(au) = &facts.auto_upgrade
        && au.state.eq_ignore_ascii_case("enabled")
    {
        out.push(note(
            "auto-upgrade-enabled",
            "auto-upgrade is enabled: the host may upgrade itself before or during the window",
            Some("Set-ADSyncAutoUpgrade -AutoUpgradeState Disabled before the window if you want ecfleet's order; enable it again after".into()),
        ));
    }
    if role == Role::Staging {
        out.push(note(
            "staging-server",
            "staging server: it never exports, so the Delta Export check does not apply after the upgrade",
            None,
        ));
    }
    if let Some(s) = &facts.scheduler {
        if s.sync_cycle_enabled == Some(false) {
            out.push(note(
                "sync-cycle-disabled",
                "the sync scheduler is disabled (SyncCycleEnabled = False)",
                Some("Set-ADSyncScheduler -SyncCycleEnabled $true after the upgrade".into()),
            ));
        }
        if s.scheduler_suspended == Some(true) {
            out.push(note(
                "scheduler-suspended",
                "the scheduler is suspended (SchedulerSuspended = True), typical of an unfinished upgrade or an open wizard",
                None,
            ));
        }
    }
    if let Some(runs) = &facts.run_history {
        let staging = facts
            .scheduler
            .as_ref()
            .and_then(|s| s.staging_mode_enabled)
            .unwrap_or(role == Role::Staging);
        let failed: Vec<String> = failed_last_runs(runs, staging)
            .iter()
            .map(|r| format!("{} on {}: {}", r.run_profile, r.connector, r.result))
            .collect();
        if !failed.is_empty() {
            out.push(note(
                "sync-errors",
                format!("the last runs failed: {}", failed.join("; ")),
                Some("fix the connector errors (Synchronization Service Manager → Operations) so that the post-upgrade check can pass".into()),
            ));
        }
    }
    out
}

/// Warnings about the target itself, shown once per plan: an unconfirmed build, or one that
/// misses a coming sync-stop deadline.
pub fn target_warnings(catalog: &Catalog, target: EcVersion, as_of: Date) -> Vec<Note> {
    let mut out = Vec::new();
    match catalog.release(target) {
        None => out.push(note(
            "target-not-in-catalog",
            format!(
                "{target} is not in the catalog ({}, checked {})",
                catalog.source, catalog.checked_on
            ),
            Some("use a newer catalog (--catalog FILE) if this build is real".into()),
        )),
        Some(r) if !r.confirmed => out.push(note(
            "target-unconfirmed",
            format!("{target} is known only from community material, not from Microsoft"),
            Some(format!(
                "prefer {}",
                catalog
                    .newest()
                    .map(|n| n.version.to_string())
                    .unwrap_or_default()
            )),
        )),
        Some(_) => {}
    }
    if let Some(d) = catalog
        .deadlines_for(target, DeadlineEffect::SyncStops)
        .find(|d| d.date > as_of)
    {
        out.push(note(
            "target-below-deadline",
            format!(
                "the target {target} does not meet the next deadline: {}",
                d.message
            ),
            Some(format!("choose a target of {} or newer", d.below)),
        ));
    }
    out
}

#[cfg(test)]
mod tests;
