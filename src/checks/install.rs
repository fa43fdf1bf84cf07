//! Checks of the installation itself: failed probes, whether Entra Connect is there (or half
//! removed), the ADSync service, the two version readings and the installed build's support
//! verdict (docs/design/DOMAIN.md §1, §2, §7 #4, #5).

use ecfleet_proto::Facts;

use crate::catalog::{EcVersion, Support, SupportStatus};

use super::model::{Check, Code, Limits, Severity};
use super::{engine_version, is_engine_entry, shown};

/// The two readings of the installed version, and the build they give.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Readings {
    /// The sync engine's (`miiserver.exe`) product version, else its file version, as read.
    pub engine: Option<String>,
    /// `ServerConfigurationVersion`, as read.
    pub config: Option<String>,
}

impl Readings {
    pub fn of(facts: &Facts) -> Readings {
        Readings {
            engine: engine_version(facts),
            config: facts.ec.as_ref().and_then(|e| e.config_version.clone()),
        }
    }

    pub fn engine_build(&self) -> Option<EcVersion> {
        self.engine.as_deref().and_then(|s| s.parse().ok())
    }

    pub fn config_build(&self) -> Option<EcVersion> {
        self.config.as_deref().and_then(|s| s.parse().ok())
    }

    /// The build that runs: the engine's reading, else (only when the engine's could not be read
    /// at all) the configuration's. An engine reading that is not a build gives none: nothing is
    /// judged from a version that may be garbage (`version-unreadable`).
    pub fn installed(&self) -> Option<EcVersion> {
        match &self.engine {
            Some(_) => self.engine_build(),
            None => self.config_build(),
        }
    }

    /// Both readings are builds and they disagree (half-upgraded).
    pub fn mismatch(&self) -> Option<(EcVersion, EcVersion)> {
        match (self.engine_build(), self.config_build()) {
            (Some(e), Some(c)) if e != c => Some((e, c)),
            _ => None,
        }
    }
}

/// Whether Entra Connect is installed: its facts were read, or the ADSync service exists.
pub fn installed(facts: &Facts) -> bool {
    facts.ec.is_some()
        || facts
            .adsync_service
            .as_ref()
            .is_some_and(|s| s.state != "NotFound")
}

pub(super) fn probe_errors(facts: &Facts, out: &mut Vec<Check>) {
    for e in &facts.errors {
        out.push(Check::new(
            Code::ProbeFailed,
            Severity::Warning,
            format!("could not read {}: {}", e.probe, e.message),
            "check that the ecfleet account is a local administrator and in ADSyncAdmins; rerun the audit",
            &["errors"],
        ));
    }
}

pub(super) fn installation(facts: &Facts, out: &mut Vec<Check>) {
    if !installed(facts) {
        let stale = facts
            .uninstall
            .as_ref()
            .and_then(|u| u.iter().find(|e| is_engine_entry(&e.display_name)));
        out.push(match stale {
            Some(entry) => Check::new(
                Code::HalfRemovedInstall,
                Severity::Critical,
                format!(
                    "Programs and Features lists \"{}\" {} but the ADSync service does not exist: an earlier install was half removed",
                    entry.display_name,
                    entry.display_version.as_deref().unwrap_or("")
                ),
                "remove the stale product (msiexec /x {ProductCode} /qn, reboot; docs/design/DOMAIN.md §7 #4) before installing",
                &["ec", "adsync_service", "uninstall"],
            ),
            None => Check::new(
                Code::EcNotInstalled,
                Severity::Critical,
                "Entra Connect is not installed (no ADSync service)",
                "check the inventory: is this the right server?",
                &["ec", "adsync_service"],
            ),
        });
    }
    // A service that does not exist is `ec-not-installed` unless Entra Connect's own facts were
    // read: then the service is missing from an installed product, and nothing syncs either.
    if let Some(svc) = facts
        .adsync_service
        .as_ref()
        .filter(|s| s.state != "Running" && (s.state != "NotFound" || facts.ec.is_some()))
    {
        out.push(Check::new(
            Code::AdsyncStopped,
            Severity::Critical,
            format!(
                "the ADSync service is {}: nothing syncs, and the configuration cannot be exported",
                if svc.state == "NotFound" {
                    "missing although Entra Connect is installed".to_string()
                } else {
                    shown(&svc.state)
                }
            ),
            "start it (Start-Service ADSync); if it stops again, check the Application log (LocalDB, docs/design/DOMAIN.md §7 #9, #10)",
            &["adsync_service"],
        ));
    }
}

pub(super) fn versions(readings: &Readings, out: &mut Vec<Check>) {
    if let Some((engine, config)) = readings.mismatch() {
        out.push(Check::new(
            Code::VersionMismatch,
            Severity::Critical,
            format!("half-upgraded: the sync engine is {engine} but the configuration version is {config}"),
            "finish the earlier upgrade: run the Entra Connect wizard and choose Upgrade, then confirm password hash sync and writeback are still enabled",
            &["ec"],
        ));
    }
    for (what, reading) in [
        ("sync engine", &readings.engine),
        ("configuration", &readings.config),
    ] {
        if let Some(raw) = reading
            && raw.parse::<EcVersion>().is_err()
        {
            out.push(Check::new(
                Code::VersionUnreadable,
                Severity::Warning,
                format!(
                    "the {what} version reads {} (escaped), which is not a build number like 2.6.91.0",
                    shown(raw)
                ),
                "check the Entra Connect installation on the server (Programs and Features, miiserver.exe's version); support cannot be judged from this reading",
                &["ec"],
            ));
        }
    }
}

/// The installed build's support verdict, and its check when it is not plainly supported.
pub(super) fn support(
    readings: &Readings,
    limits: &Limits<'_>,
    out: &mut Vec<Check>,
) -> Option<Support> {
    let build = readings.installed()?;
    let support = limits
        .catalog
        .support(build, limits.as_of, limits.retiring_days);
    let verdict = match support.status {
        SupportStatus::Supported => None,
        SupportStatus::Retiring => Some((
            Code::RetiringBuild,
            Severity::Warning,
            "plan the upgrade to the current build before that date",
        )),
        SupportStatus::Unsupported => Some((
            Code::UnsupportedBuild,
            Severity::Critical,
            "upgrade to the current build",
        )),
        SupportStatus::SyncStopped => Some((
            Code::SyncStopped,
            Severity::Critical,
            "upgrade in the first possible window: this server no longer synchronises (1.x hosts: swing-migrate to a new Server 2022/2025)",
        )),
        SupportStatus::Recalled => Some((
            Code::RecalledBuild,
            Severity::Critical,
            "uninstall this build, then install the current one with the configuration backup",
        )),
        SupportStatus::UnknownBuild => Some((
            Code::UnknownBuild,
            Severity::Warning,
            "update the catalog (--catalog FILE) or check the version reading",
        )),
    };
    if let Some((code, severity, fix)) = verdict {
        out.push(Check::new(
            code,
            severity,
            support.reason.clone(),
            fix,
            &["ec"],
        ));
    }
    Some(support)
}
