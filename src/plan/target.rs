//! The build a plan upgrades to: `--target VERSION`, the version inside `--msi PATH` (read from
//! the installer's own Property table, hashed, optionally pinned with `--sha256`), or by default
//! the newest confirmed, not recalled build in the catalog.

use std::path::Path;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, EcVersion};
use crate::msi::{self, MsiInfo};

use super::rules::{Note, target_warnings};

/// Where the target came from and what the plan knows of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub version: EcVersion,
    /// `catalog` (the default), `option` (`--target`) or `msi` (`--msi`).
    pub source: String,
    /// SHA-256 of the installer, when one was given.
    pub sha256: Option<String>,
    pub msi: Option<MsiInfo>,
    pub warnings: Vec<Note>,
}

/// How the user asked for the target.
#[derive(Debug, Clone, Copy)]
pub enum TargetRequest<'a> {
    Newest,
    Version(&'a str),
    Msi {
        path: &'a Path,
        sha256: Option<&'a str>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("--target {0}: {1}")]
    BadVersion(String, String),
    #[error(
        "--target {version} is not in the catalog ({catalog}, checked {checked_on}); use a newer catalog with --catalog FILE, or give the installer with --msi"
    )]
    NotInCatalog {
        version: String,
        catalog: String,
        checked_on: Date,
    },
    #[error("{0} was recalled by Microsoft and is never a target; the newest build is {1}")]
    Recalled(String, String),
    #[error("the catalog has no confirmed, non-recalled build to default to; give --target")]
    NoDefault,
    #[error(transparent)]
    Msi(#[from] msi::MsiError),
    #[error("{path}: ProductVersion `{version}` is not a four-part build number")]
    MsiVersion { path: String, version: String },
}

pub fn resolve(
    catalog: &Catalog,
    as_of: Date,
    request: TargetRequest<'_>,
) -> Result<Target, TargetError> {
    let newest = || {
        catalog
            .newest()
            .map(|r| r.version.to_string())
            .unwrap_or_default()
    };
    let (version, source, msi) = match request {
        TargetRequest::Newest => (
            catalog.newest().ok_or(TargetError::NoDefault)?.version,
            "catalog",
            None,
        ),
        TargetRequest::Version(text) => {
            let v: EcVersion = text
                .parse()
                .map_err(|e: crate::catalog::VersionParseError| {
                    TargetError::BadVersion(text.to_string(), e.to_string())
                })?;
            if catalog.release(v).is_none() {
                return Err(TargetError::NotInCatalog {
                    version: v.to_string(),
                    catalog: catalog.source.clone(),
                    checked_on: catalog.checked_on,
                });
            }
            (v, "option", None)
        }
        TargetRequest::Msi { path, sha256 } => {
            let info = msi::read(path)?;
            info.check_is_entra_connect()?;
            if let Some(pin) = sha256 {
                info.check_pin(pin)?;
            }
            let v = info.version().ok_or_else(|| TargetError::MsiVersion {
                path: path.display().to_string(),
                version: info.product_version.clone(),
            })?;
            (v, "msi", Some(info))
        }
    };
    if catalog.release(version).is_some_and(|r| r.recalled) {
        return Err(TargetError::Recalled(version.to_string(), newest()));
    }
    Ok(Target {
        version,
        source: source.into(),
        sha256: msi.as_ref().map(|m| m.sha256.clone()),
        msi,
        warnings: target_warnings(catalog, version, as_of),
    })
}
