//! What a check is: a stable [`Code`] for one condition of docs/design/DOMAIN.md §3 and §7, its
//! [`Severity`], a message naming what was seen, a fix, and the facts it rests on. The audit
//! renders checks as findings, the plan as reasons and warnings, and `run` will use them for its
//! preflight and verify, so a condition is judged in one place only.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, EcVersion};
use crate::inventory::Role;
use crate::platform::{MIN_DOTNET_RELEASE, MIN_OS_BUILD_V2};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// Every condition the facts can show. [`Code::as_str`] is the audit's finding code (the
/// canonical one); [`Code::plan_code`] is the code the plan has always used for the same
/// condition, kept as an alias (docs/json-output.md, "One set of checks").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    ProbeFailed,
    EcNotInstalled,
    HalfRemovedInstall,
    AdsyncStopped,
    VersionMismatch,
    VersionUnreadable,
    RetiringBuild,
    UnsupportedBuild,
    SyncStopped,
    RecalledBuild,
    UnknownBuild,
    OsTooOld,
    ServerCore,
    DotnetTooOld,
    Tls12NotEnforced,
    DiskLow,
    WizardOpen,
    SyncServiceManagerOpen,
    EngineConfigNeedsRedirect,
    StagingModeOnActive,
    StagingServerExporting,
    StagingMode,
    SyncCycleDisabled,
    SchedulerSuspended,
    SyncInProgress,
    DeltaImportFailed,
    ExportFailed,
    SyncStale,
    NoSuccessfulImport,
    HealthAgentStopped,
    HealthAgentMissing,
    AutoUpgradeSuspended,
    CustomisedDefaultRules,
    CustomRulesPrecedence,
    LocalDbFull,
    LocalDbLarge,
    EngineConfigEdited,
    EntraConnectorMissing,
    MfaSiteNotTrusted,
    AppAuthMissing,
    ConstrainedLanguage,
}

impl Code {
    /// Every code, in declaration order.
    pub const ALL: &[Code] = &[
        Code::ProbeFailed,
        Code::EcNotInstalled,
        Code::HalfRemovedInstall,
        Code::AdsyncStopped,
        Code::VersionMismatch,
        Code::VersionUnreadable,
        Code::RetiringBuild,
        Code::UnsupportedBuild,
        Code::SyncStopped,
        Code::RecalledBuild,
        Code::UnknownBuild,
        Code::OsTooOld,
        Code::ServerCore,
        Code::DotnetTooOld,
        Code::Tls12NotEnforced,
        Code::DiskLow,
        Code::WizardOpen,
        Code::SyncServiceManagerOpen,
        Code::EngineConfigNeedsRedirect,
        Code::StagingModeOnActive,
        Code::StagingServerExporting,
        Code::StagingMode,
        Code::SyncCycleDisabled,
        Code::SchedulerSuspended,
        Code::SyncInProgress,
        Code::DeltaImportFailed,
        Code::ExportFailed,
        Code::SyncStale,
        Code::NoSuccessfulImport,
        Code::HealthAgentStopped,
        Code::HealthAgentMissing,
        Code::AutoUpgradeSuspended,
        Code::CustomisedDefaultRules,
        Code::CustomRulesPrecedence,
        Code::LocalDbFull,
        Code::LocalDbLarge,
        Code::EngineConfigEdited,
        Code::EntraConnectorMissing,
        Code::MfaSiteNotTrusted,
        Code::AppAuthMissing,
        Code::ConstrainedLanguage,
    ];

    /// The code in JSON and tables (the audit's finding code).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::ProbeFailed => "probe-failed",
            Code::EcNotInstalled => "ec-not-installed",
            Code::HalfRemovedInstall => "half-removed-install",
            Code::AdsyncStopped => "adsync-stopped",
            Code::VersionMismatch => "version-mismatch",
            Code::VersionUnreadable => "version-unreadable",
            Code::RetiringBuild => "retiring-build",
            Code::UnsupportedBuild => "unsupported-build",
            Code::SyncStopped => "sync-stopped",
            Code::RecalledBuild => "recalled-build",
            Code::UnknownBuild => "unknown-build",
            Code::OsTooOld => "os-too-old",
            Code::ServerCore => "server-core",
            Code::DotnetTooOld => "dotnet-too-old",
            Code::Tls12NotEnforced => "tls12-not-enforced",
            Code::DiskLow => "disk-low",
            Code::WizardOpen => "wizard-open",
            Code::SyncServiceManagerOpen => "sync-service-manager-open",
            Code::EngineConfigNeedsRedirect => "engine-config-needs-redirect",
            Code::StagingModeOnActive => "staging-mode-on-active",
            Code::StagingServerExporting => "staging-server-exporting",
            Code::StagingMode => "staging-mode",
            Code::SyncCycleDisabled => "sync-cycle-disabled",
            Code::SchedulerSuspended => "scheduler-suspended",
            Code::SyncInProgress => "sync-in-progress",
            Code::DeltaImportFailed => "delta-import-failed",
            Code::ExportFailed => "export-failed",
            Code::SyncStale => "sync-stale",
            Code::NoSuccessfulImport => "no-successful-import",
            Code::HealthAgentStopped => "health-agent-stopped",
            Code::HealthAgentMissing => "health-agent-missing",
            Code::AutoUpgradeSuspended => "auto-upgrade-suspended",
            Code::CustomisedDefaultRules => "customised-default-rules",
            Code::CustomRulesPrecedence => "custom-rules-precedence",
            Code::LocalDbFull => "localdb-full",
            Code::LocalDbLarge => "localdb-large",
            Code::EngineConfigEdited => "engine-config-edited",
            Code::EntraConnectorMissing => "entra-connector-missing",
            Code::MfaSiteNotTrusted => "mfa-site-not-trusted",
            Code::AppAuthMissing => "app-auth-missing",
            Code::ConstrainedLanguage => "constrained-language",
        }
    }

    /// The code the plan uses: the same as [`Code::as_str`] except for the three conditions the
    /// plan named otherwise before the checks were one set.
    pub fn plan_code(self) -> &'static str {
        match self {
            Code::AdsyncStopped => "adsync-not-running",
            Code::OsTooOld => "os-unsupported",
            Code::HealthAgentStopped => "health-agent-disabled",
            other => other.as_str(),
        }
    }
}

/// One condition seen on one host.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub code: Code,
    pub severity: Severity,
    /// What was seen; anything the host reported is quoted or escaped ([`super::shown`]).
    pub message: String,
    /// What to do; empty for information only.
    pub fix: String,
    /// The facts (top-level fields of `ecfleet_proto::Facts`) the condition was read from.
    pub rests_on: &'static [&'static str],
    /// What on the host the condition is about when it can hold for several (the connector
    /// of a failed run), as the host named it: the same condition on two connectors is two
    /// checks with two subjects.
    pub subject: Option<String>,
}

impl Check {
    pub fn new(
        code: Code,
        severity: Severity,
        message: impl Into<String>,
        fix: impl Into<String>,
        rests_on: &'static [&'static str],
    ) -> Check {
        Check {
            code,
            severity,
            message: message.into(),
            fix: fix.into(),
            rests_on,
            subject: None,
        }
    }

    /// The same check, about `subject` ([`Check::subject`]).
    pub fn on(mut self, subject: impl Into<String>) -> Check {
        self.subject = Some(subject.into());
        self
    }
}

/// What the checks judge a host against.
#[derive(Debug, Clone, Copy)]
pub struct Limits<'a> {
    pub catalog: &'a Catalog,
    pub as_of: Date,
    /// A build within this many days of its end of support is `retiring-build`.
    pub retiring_days: i64,
    pub min_free_gib: f64,
    pub max_sync_age_hours: f64,
    /// The inventory's role (staging or active).
    pub role: Role,
    /// The build the host is to run: the OS, .NET and engine-configuration checks judge against
    /// its requirements. `None` (the audit): any V2 build.
    pub target: Option<EcVersion>,
}

impl Limits<'_> {
    /// The lowest OS build that can run the target (Server 2016 for any V2 build).
    pub fn min_os_build(&self) -> u32 {
        match self.target {
            None => MIN_OS_BUILD_V2,
            Some(t) => self
                .catalog
                .requirement_for(t)
                .map(|r| r.min_os_build)
                .unwrap_or(if t.major() >= 2 { MIN_OS_BUILD_V2 } else { 0 }),
        }
    }

    /// The lowest .NET Framework `Release` value the target needs (4.7.2 at least).
    pub fn min_dotnet_release(&self) -> u32 {
        self.target
            .and_then(|t| self.catalog.requirement_for(t))
            .map(|r| r.min_dotnet_release.max(MIN_DOTNET_RELEASE))
            .unwrap_or(MIN_DOTNET_RELEASE)
    }

    /// What the target is called in messages.
    pub fn target_name(&self) -> String {
        self.target
            .map(|t| t.to_string())
            .unwrap_or_else(|| "Entra Connect V2".into())
    }
}
