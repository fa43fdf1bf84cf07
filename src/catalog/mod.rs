//! The Entra Connect version catalog: every known build with its dates, recalls and the hard
//! deadlines, loaded from `catalog/versions.toml` (embedded, or a newer file given by the user),
//! and the support verdict for any build on any date.

mod version;

pub use version::{EcVersion, VersionParseError};

use std::path::Path;

use jiff::ToSpan;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The catalog that ships inside the binary.
pub const EMBEDDED_CATALOG: &str = include_str!("../../catalog/versions.toml");

/// One released build.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    pub version: EcVersion,
    pub released: Date,
    pub channel: String,
    pub eos: Option<Date>,
    pub recalled: bool,
    pub confirmed: bool,
    pub notes: String,
}

/// What a hard deadline does to a build below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeadlineEffect {
    SyncStops,
    WizardBlocked,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Deadline {
    pub id: String,
    pub below: EcVersion,
    pub date: Date,
    pub effect: DeadlineEffect,
    pub message: String,
}

/// Minimum platform for builds from `from` on.
#[derive(Debug, Clone, PartialEq)]
pub struct Requirement {
    pub from: EcVersion,
    pub min_os_build: u32,
    pub min_dotnet_release: u32,
}

/// A build range that cannot jump straight to a target: it goes through `via` first.
#[derive(Debug, Clone, PartialEq)]
pub struct UpgradePath {
    /// Applies to installed builds below this one ...
    pub below: EcVersion,
    /// ... going to this build or newer.
    pub to_at_least: EcVersion,
    pub via: EcVersion,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    /// Where it came from (`embedded` or a path), for messages.
    pub source: String,
    /// SHA-256 of the catalog file as read: which catalog a plan was made with.
    pub sha256: String,
    pub checked_on: Date,
    pub upgrade_paths: Vec<UpgradePath>,
    /// Newest first.
    pub releases: Vec<Release>,
    pub deadlines: Vec<Deadline>,
    pub requirements: Vec<Requirement>,
}

/// The support verdict for one build on one date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum SupportStatus {
    Supported,
    Retiring,
    Unsupported,
    SyncStopped,
    Recalled,
    UnknownBuild,
}

impl SupportStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            SupportStatus::Supported => "supported",
            SupportStatus::Retiring => "retiring",
            SupportStatus::Unsupported => "unsupported",
            SupportStatus::SyncStopped => "sync-stopped",
            SupportStatus::Recalled => "recalled",
            SupportStatus::UnknownBuild => "unknown-build",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Support {
    pub status: SupportStatus,
    /// The date support ends (or ended): the earlier of the build's end of support and any
    /// sync-stop deadline that applies to it.
    pub end_of_support: Option<Date>,
    /// One sentence saying why, for findings and tables.
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read catalog {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("catalog {path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    schema_version: u32,
    checked_on: String,
    #[serde(default)]
    deadline: Vec<RawDeadline>,
    #[serde(default)]
    requirement: Vec<RawRequirement>,
    #[serde(default)]
    upgrade_path: Vec<RawUpgradePath>,
    release: Vec<RawRelease>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpgradePath {
    below: String,
    to_at_least: String,
    via: String,
    reason: String,
    #[serde(default)]
    #[allow(dead_code)]
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeadline {
    id: String,
    below: String,
    date: String,
    effect: DeadlineEffect,
    message: String,
    #[serde(default)]
    #[allow(dead_code)]
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequirement {
    from: String,
    min_os_build: u32,
    min_dotnet_release: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelease {
    version: String,
    released: String,
    channel: String,
    eos: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    eos_src: String,
    #[serde(default)]
    recalled: bool,
    #[serde(default = "yes")]
    confirmed: bool,
    #[serde(default)]
    notes: String,
}

fn yes() -> bool {
    true
}

/// Parses `YYYY-MM-DD`, or `YYYY-MM` as the first of that month.
pub fn parse_date(text: &str) -> Option<Date> {
    if let Ok(d) = text.parse::<Date>() {
        return Some(d);
    }
    format!("{text}-01").parse::<Date>().ok()
}

impl Catalog {
    /// The catalog compiled into this binary.
    pub fn embedded() -> Self {
        // The embedded file is checked by a unit test, so this cannot fail in a released build.
        Self::parse(EMBEDDED_CATALOG, "embedded catalog").expect("embedded catalog is valid")
    }

    pub fn load(path: &Path) -> Result<Self, CatalogError> {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, CatalogError> {
        let invalid = |message: String| CatalogError::Invalid {
            path: origin.to_string(),
            message,
        };
        let raw: RawCatalog = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if raw.schema_version != 1 {
            return Err(invalid(format!(
                "schema_version {} is not supported by this ecfleet (expected 1); upgrade ecfleet",
                raw.schema_version
            )));
        }
        let version = |s: &str, what: &str| {
            s.parse::<EcVersion>()
                .map_err(|e| invalid(format!("{what}: {e}")))
        };
        let date = |s: &str, what: &str| {
            parse_date(s).ok_or_else(|| invalid(format!("{what}: `{s}` is not a YYYY-MM-DD date")))
        };
        let mut releases = Vec::with_capacity(raw.release.len());
        for r in &raw.release {
            let what = format!("release {}", r.version);
            releases.push(Release {
                version: version(&r.version, &what)?,
                released: date(&r.released, &what)?,
                channel: r.channel.clone(),
                eos: match &r.eos {
                    Some(e) if !e.is_empty() => Some(date(e, &what)?),
                    _ => None,
                },
                recalled: r.recalled,
                confirmed: r.confirmed,
                notes: r.notes.clone(),
            });
        }
        releases.sort_by_key(|r| std::cmp::Reverse(r.version));
        if let Some(w) = releases.windows(2).find(|w| w[0].version == w[1].version) {
            return Err(invalid(format!("release {} is listed twice", w[0].version)));
        }
        let mut deadlines = Vec::new();
        for d in &raw.deadline {
            let what = format!("deadline {}", d.id);
            deadlines.push(Deadline {
                id: d.id.clone(),
                below: version(&d.below, &what)?,
                date: date(&d.date, &what)?,
                effect: d.effect,
                message: d.message.clone(),
            });
        }
        deadlines.sort_by_key(|d| d.date);
        let mut requirements = Vec::new();
        for r in &raw.requirement {
            requirements.push(Requirement {
                from: version(&r.from, "requirement")?,
                min_os_build: r.min_os_build,
                min_dotnet_release: r.min_dotnet_release,
            });
        }
        requirements.sort_by_key(|r| r.from);
        let mut upgrade_paths = Vec::new();
        for p in &raw.upgrade_path {
            let what = format!("upgrade_path via {}", p.via);
            let path = UpgradePath {
                below: version(&p.below, &what)?,
                to_at_least: version(&p.to_at_least, &what)?,
                via: version(&p.via, &what)?,
                reason: p.reason.clone(),
            };
            if !releases
                .iter()
                .any(|r| r.version == path.via && !r.recalled)
            {
                return Err(invalid(format!(
                    "{what}: {} is not a (non-recalled) release in this catalog",
                    path.via
                )));
            }
            upgrade_paths.push(path);
        }
        Ok(Catalog {
            sha256: crate::digest::hex(&Sha256::digest(text.as_bytes())),
            upgrade_paths,
            source: origin.to_string(),
            checked_on: date(&raw.checked_on, "checked_on")?,
            releases,
            deadlines,
            requirements,
        })
    }

    pub fn release(&self, version: EcVersion) -> Option<&Release> {
        self.releases.iter().find(|r| r.version == version)
    }

    /// The newest confirmed, not recalled build.
    pub fn newest(&self) -> Option<&Release> {
        self.releases.iter().find(|r| r.confirmed && !r.recalled)
    }

    /// The intermediate build for going from `installed` to `target`, when the catalog's upgrade
    /// paths require one.
    pub fn hop_for(&self, installed: EcVersion, target: EcVersion) -> Option<&UpgradePath> {
        self.upgrade_paths
            .iter()
            .find(|p| installed < p.below && target >= p.to_at_least && installed < p.via)
    }

    /// The platform minimums for a build.
    pub fn requirement_for(&self, version: EcVersion) -> Option<&Requirement> {
        self.requirements.iter().rev().find(|r| r.from <= version)
    }

    /// Deadlines of the given effect that apply to `version` (it is below them), earliest first.
    pub fn deadlines_for(
        &self,
        version: EcVersion,
        effect: DeadlineEffect,
    ) -> impl Iterator<Item = &Deadline> {
        self.deadlines
            .iter()
            .filter(move |d| d.effect == effect && version < d.below)
    }

    /// The support verdict for `version` on `as_of`, with `retiring_days` of warning.
    pub fn support(&self, version: EcVersion, as_of: Date, retiring_days: i64) -> Support {
        let release = self.release(version);
        if release.is_some_and(|r| r.recalled) {
            return Support {
                status: SupportStatus::Recalled,
                end_of_support: None,
                reason: format!(
                    "{version} was recalled by Microsoft: uninstall it and install the current build"
                ),
            };
        }
        let sync_stop = self
            .deadlines_for(version, DeadlineEffect::SyncStops)
            .next();
        if let Some(d) = sync_stop
            && as_of >= d.date
        {
            return Support {
                status: SupportStatus::SyncStopped,
                end_of_support: Some(d.date),
                reason: format!("{}: sync stopped on {}", d.message, d.date),
            };
        }
        let Some(release) = release else {
            return Support {
                status: SupportStatus::UnknownBuild,
                end_of_support: sync_stop.map(|d| d.date),
                reason: format!(
                    "{version} is not in the catalog ({}, checked {}): a newer catalog may know it",
                    self.source, self.checked_on
                ),
            };
        };
        // The effective end is the earlier of the build's own end of support and the next
        // sync-stop deadline that applies to it.
        let (end, why) = match (release.eos, sync_stop) {
            (Some(eos), Some(d)) if d.date < eos => (Some(d.date), d.message.clone()),
            (None, Some(d)) => (Some(d.date), d.message.clone()),
            (Some(eos), _) => (Some(eos), format!("{version} reaches end of support")),
            (None, None) => (None, String::new()),
        };
        match end {
            Some(end) if as_of > end => Support {
                status: SupportStatus::Unsupported,
                end_of_support: Some(end),
                reason: format!("{version} left support on {end}"),
            },
            Some(end) if as_of.saturating_add(retiring_days.days()) >= end => Support {
                status: SupportStatus::Retiring,
                end_of_support: Some(end),
                reason: format!("{why} on {end}"),
            },
            _ => Support {
                status: SupportStatus::Supported,
                end_of_support: end,
                reason: match end {
                    Some(end) => format!("supported until {end}"),
                    None => "supported (newest build; no end of support announced)".into(),
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> EcVersion {
        s.parse().unwrap()
    }
    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn embedded_catalog_holds_every_build_of_the_domain_table() {
        let c = Catalog::embedded();
        assert_eq!(c.releases.len(), 46);
        assert!(c.release(v("2.6.79.0")).unwrap().recalled);
        // 2.6.92.0: a download-only hotfix of 2026-09-23, confirmed on 2026-12-07.
        assert_eq!(c.newest().unwrap().version, v("2.6.92.0"));
        assert_eq!(c.release(v("2.6.92.0")).unwrap().channel, "dl-only");
        assert_eq!(
            c.requirement_for(v("2.6.91.0")).unwrap().min_dotnet_release,
            461808
        );
        assert_eq!(c.requirement_for(v("1.6.16.0")).unwrap().min_os_build, 9200);
    }

    #[test]
    fn verdicts_follow_end_of_support_and_the_hard_deadlines() {
        let c = Catalog::embedded();
        let today = d("2026-11-24");
        let status = |ver: &str, on: Date| c.support(v(ver), on, 90).status;
        assert_eq!(status("2.6.91.0", today), SupportStatus::Supported);
        assert_eq!(status("2.6.3.0", today), SupportStatus::Supported);
        // 2.5.190.0 ends 2027-02-02, within 90 days.
        assert_eq!(status("2.5.190.0", today), SupportStatus::Retiring);
        // 2.5.79.0 is above the 2026-09-30 floor but left support on 2026-10-23.
        assert_eq!(status("2.5.79.0", today), SupportStatus::Unsupported);
        assert_eq!(status("2.4.131.0", today), SupportStatus::SyncStopped);
        assert_eq!(
            status("2.4.131.0", d("2026-09-29")),
            SupportStatus::Unsupported
        );
        assert_eq!(status("1.6.16.0", today), SupportStatus::SyncStopped);
        assert_eq!(status("2.6.79.0", today), SupportStatus::Recalled);
        assert_eq!(status("2.6.55.0", today), SupportStatus::UnknownBuild);
        // Below the floor and unknown: the deadline still decides.
        assert_eq!(status("2.4.99.0", today), SupportStatus::SyncStopped);
    }

    #[test]
    fn the_aba_deadline_ends_support_before_the_builds_own_date() {
        let c = Catalog::embedded();
        // 2.6.3.0's own end of support is 2027-07-07, but below 2.6.84.0 sync stops 2027-04-07.
        let s = c.support(v("2.6.3.0"), d("2027-02-01"), 90);
        assert_eq!(s.status, SupportStatus::Retiring);
        assert_eq!(s.end_of_support, Some(d("2027-04-07")));
        let s = c.support(v("2.6.3.0"), d("2027-04-07"), 90);
        assert_eq!(s.status, SupportStatus::SyncStopped);
        // 2.6.84.0 is not touched by that deadline.
        let s = c.support(v("2.6.84.0"), d("2027-04-07"), 90);
        assert_eq!(s.end_of_support, Some(d("2027-09-16")));
    }

    #[test]
    fn a_broken_catalog_file_is_reported_with_its_name() {
        let err = Catalog::parse("schema_version = 1\nchecked_on = \"2026-01-01\"\nrelease = [{ version = \"2.x\", released = \"2026-01-01\", channel = \"dl\" }]", "my.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("my.toml") && err.contains("2.x"), "{err}");
        let err = Catalog::parse(
            "schema_version = 1\nchecked_on = \"2026-01-01\"\nrelese = []",
            "my.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("relese"), "{err}");
    }
}
