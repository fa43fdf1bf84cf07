//! The decision for one host: `in-place`, `migrate`, `two-hop`, `up-to-date` or `blocked`, with
//! the reasons, the fixes and the warnings. One pure, deterministic function of the host's facts
//! (or why there are none), its role and OS policy, the catalog, the target, the policy and the
//! date; no I/O. The conditions are the shared [`checks`](crate::checks); these rules choose which
//! of them block, which migrate and which only warn, following the field procedure (docs/design/DOMAIN.md
//! §1, §3, §5, §7). Every code is listed in docs/json-output.md.

use ecfleet_proto::Facts;
use jiff::ToSpan;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, DeadlineEffect, EcVersion, UpgradePath};
use crate::checks::prerequisites::os_label;
use crate::checks::{self, Assessment, Check, Code, Limits};
use crate::inventory::Role;
use crate::platform::MinOs;

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

impl From<&Check> for Note {
    fn from(c: &Check) -> Note {
        Note {
            code: c.code.plan_code().into(),
            message: c.message.clone(),
            fix: (!c.fix.is_empty()).then(|| c.fix.clone()),
        }
    }
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

fn probe_error(facts: &Facts, probe: &str) -> String {
    facts
        .errors
        .iter()
        .find(|e| e.probe == probe)
        .map(|e| e.message.clone())
        .unwrap_or_else(|| "no answer".into())
}

/// The checks' limits for this host and target under the plan's policy.
fn limits<'a>(role: Role, cx: &Context<'a>) -> Limits<'a> {
    Limits {
        catalog: cx.catalog,
        as_of: cx.as_of,
        retiring_days: cx.policy.retiring_days,
        min_free_gib: cx.policy.min_free_gib,
        // The plan does not judge how recent the last sync is; only whether the last runs failed.
        max_sync_age_hours: f64::INFINITY,
        role,
        target: Some(cx.target),
    }
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
    let assessment = checks::assess(facts, &limits(host.role, &cx));
    // Under ConstrainedLanguage the agent read nothing else: that is the one reason.
    if let Some(clm) = assessment.find(Code::ConstrainedLanguage) {
        return blocked(None, to, vec![clm.into()]);
    }
    if let Some(absent) = assessment
        .find(Code::HalfRemovedInstall)
        .or(assessment.find(Code::EcNotInstalled))
    {
        return blocked(None, to, vec![absent.into()]);
    }
    let Some(installed) = assessment.installed_build() else {
        let why = match assessment.find(Code::VersionUnreadable) {
            Some(unreadable) => unreadable.message.clone(),
            None => probe_error(facts, "ec"),
        };
        return blocked(
            None,
            to,
            vec![note(
                "version-unknown",
                format!("the installed version could not be read ({why})"),
                Some("check that the ecfleet account is a local administrator and in ADSyncAdmins, then plan again".into()),
            )],
        );
    };
    let from = Some(installed.to_string());
    let mut warnings = host_warnings(facts, &assessment, host.role, installed, cx);

    // A new server: the OS cannot take the target, or policy wants a newer OS.
    let new_server = new_server_reasons(facts, &assessment, host.min_os, cx);
    let os_unknown = facts.os.is_none();
    if !new_server.is_empty() && !os_unknown {
        return migrate(from, to, new_server, warnings);
    }

    let recalled = cx.catalog.release(installed).is_some_and(|r| r.recalled);
    let mismatch = assessment.readings.mismatch().is_some();
    if installed >= target && !recalled && !mismatch && !os_unknown {
        return up_to_date(facts, &assessment, installed, target, warnings);
    }

    // Everything that stops a change on this server: the prerequisites, and the host warnings
    // that block once a change is due.
    let mut blockers = prerequisite_blockers(facts, &assessment);
    let (blocking, rest): (Vec<Note>, Vec<Note>) = warnings
        .into_iter()
        .partition(|w| BLOCKING_WARNINGS.contains(&w.code.as_str()));
    blockers.extend(blocking);
    warnings = rest;
    let hop = cx.catalog.hop_for(installed, target);
    if !blockers.is_empty() {
        return Decision {
            action: Action::Blocked,
            from,
            to,
            via: hop.map(|h| h.via.to_string()),
            reasons: blockers,
            warnings,
        };
    }
    if recalled {
        let reason = note(
            "recalled-build",
            format!("{installed} was recalled by Microsoft and cannot be upgraded in place"),
            Some(format!(
                "on the same server: back up the configuration, uninstall {installed}, install {target} and import the backup"
            )),
        );
        return migrate(from, to, vec![reason], warnings);
    }
    change(from, to, installed, target, hop, warnings)
}

/// An in-place or two-hop upgrade: nothing stands in the way.
fn change(
    from: Option<String>,
    to: Option<String>,
    installed: EcVersion,
    target: EcVersion,
    hop: Option<&UpgradePath>,
    warnings: Vec<Note>,
) -> Decision {
    let (action, via, reason) = match hop {
        Some(h) => (
            Action::TwoHop,
            Some(h.via.to_string()),
            note(
                "two-hop",
                format!("{installed} → {} → {target}: {}", h.via, h.reason),
                None,
            ),
        ),
        None => (
            Action::InPlace,
            None,
            note("newer-build", format!("{installed} → {target}"), None),
        ),
    };
    Decision {
        action,
        from,
        to,
        via,
        reasons: vec![reason],
        warnings,
    }
}

fn migrate(
    from: Option<String>,
    to: Option<String>,
    reasons: Vec<Note>,
    mut warnings: Vec<Note>,
) -> Decision {
    warnings.retain(|w| w.code != "swing-suggested");
    Decision {
        action: Action::Migrate,
        from,
        to,
        via: None,
        reasons,
        warnings,
    }
}

fn up_to_date(
    facts: &Facts,
    assessment: &Assessment,
    installed: EcVersion,
    target: EcVersion,
    mut warnings: Vec<Note>,
) -> Decision {
    if assessment.readings.config_build().is_none() {
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
    Decision {
        action: Action::UpToDate,
        from: Some(installed.to_string()),
        to: None,
        via: None,
        reasons: vec![note(
            "at-target",
            format!("{installed} is at or above the target {target}"),
            None,
        )],
        warnings,
    }
}

/// Why the host needs a new server: its OS cannot run the target or is Server Core (checks),
/// or it is below the OS policy (inventory `min_os`, else the playbook's).
fn new_server_reasons(
    facts: &Facts,
    assessment: &Assessment,
    min_os: Option<MinOs>,
    cx: Context<'_>,
) -> Vec<Note> {
    let mut out: Vec<Note> = [Code::OsTooOld, Code::ServerCore]
        .into_iter()
        .filter_map(|code| assessment.find(code).map(Note::from))
        .collect();
    let min_os = min_os.map(|m| m.build).unwrap_or(cx.policy.min_os_build);
    if let Some(os) = &facts.os
        && !assessment.has(Code::OsTooOld)
        && os.build < min_os
    {
        out.insert(0, note(
            "os-policy",
            format!("{} is below the policy minimum {}", os_label(os.build), os_label(min_os)),
            Some("swing-migrate to a new server on a supported OS (in-place OS upgrades are supported only from 2016/2019/2022 to 2025)".into()),
        ));
    }
    out
}

/// Host conditions that stop a change on the server, in the order the plan lists them.
const BLOCKING_CHECKS: &[Code] = &[
    Code::VersionMismatch,
    Code::AdsyncStopped,
    Code::DotnetTooOld,
    Code::Tls12NotEnforced,
    Code::DiskLow,
    Code::WizardOpen,
    Code::SyncServiceManagerOpen,
    Code::EngineConfigNeedsRedirect,
    Code::SyncInProgress,
];

/// Host warnings that block a change on the server itself: an up-to-date or migrating host
/// keeps them as warnings.
const BLOCKING_WARNINGS: &[&str] = &["localdb-full", "entra-connector-missing"];

/// Warnings that still matter on a host that needs no upgrade.
const UP_TO_DATE_WARNINGS: &[&str] = &[
    "app-auth-missing",
    "engine-config-edited",
    "entra-connector-missing",
    "health-agent-disabled",
    "localdb-full",
    "localdb-large",
    "sync-errors",
    "sync-cycle-disabled",
    "version-unconfirmed",
];

/// The facts a change needs, by probe, and what they are called: without them the plan cannot
/// say the host is ready.
fn missing_facts(facts: &Facts) -> impl Iterator<Item = (&'static str, &'static str)> {
    [
        ("os", "the OS", facts.os.is_none()),
        ("dotnet", ".NET Framework", facts.dotnet.is_none()),
        ("tls12", "TLS 1.2 settings", facts.tls12.is_none()),
        ("disk", "free disk space", facts.disk.is_none()),
        (
            "open_ui",
            "open Entra Connect windows",
            facts.open_ui.is_none(),
        ),
        ("scheduler", "the sync scheduler", facts.scheduler.is_none()),
    ]
    .into_iter()
    .filter(|(_, _, missing)| *missing)
    .map(|(probe, what, _)| (probe, what))
}

fn prerequisite_blockers(facts: &Facts, assessment: &Assessment) -> Vec<Note> {
    let mut out: Vec<Note> = BLOCKING_CHECKS
        .iter()
        .filter_map(|code| assessment.find(*code).map(Note::from))
        .collect();
    for (probe, what) in missing_facts(facts) {
        out.push(note(
            "prerequisite-unknown",
            format!("{what} could not be read ({})", probe_error(facts, probe)),
            Some("rerun `ecfleet audit --host NAME` and fix the probe error it shows".into()),
        ));
    }
    out
}

/// Host conditions the plan shows as warnings (they never block on their own), in its order.
const WARNING_CHECKS: &[Code] = &[
    Code::RetiringBuild,
    Code::UnsupportedBuild,
    Code::SyncStopped,
    Code::UnknownBuild,
    Code::CustomisedDefaultRules,
    Code::CustomRulesPrecedence,
    Code::LocalDbFull,
    Code::LocalDbLarge,
    Code::EntraConnectorMissing,
    Code::EngineConfigEdited,
    Code::HealthAgentStopped,
    Code::SyncCycleDisabled,
    Code::SchedulerSuspended,
    Code::MfaSiteNotTrusted,
    Code::AppAuthMissing,
];

/// Warnings: they do not block, but the operator must see them.
fn host_warnings(
    facts: &Facts,
    assessment: &Assessment,
    role: Role,
    installed: EcVersion,
    cx: Context<'_>,
) -> Vec<Note> {
    let mut out: Vec<Note> = WARNING_CHECKS
        .iter()
        .filter_map(|code| assessment.find(*code).map(Note::from))
        .collect();
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
    let failed: Vec<&str> = assessment
        .checks
        .iter()
        .filter(|c| matches!(c.code, Code::DeltaImportFailed | Code::ExportFailed))
        .map(|c| c.message.as_str())
        .collect();
    if !failed.is_empty() {
        out.push(note(
            "sync-errors",
            failed.join("; "),
            Some("fix the connector errors (Synchronization Service Manager → Operations) so that the post-upgrade check can pass".into()),
        ));
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
