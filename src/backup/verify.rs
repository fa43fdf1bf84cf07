//! `ecfleet backup verify`: every kept backup's every file on the share read back and matched
//! against its manifest (present, a regular file, its size and SHA-256), whatever took it and
//! whether its content is its own or an earlier backup's under a second name. Also found:
//! manifests that cannot be read (damage), and backups without a manifest (left by a backup
//! that was interrupted: never counted, compared with or used as a source, safe to remove).
//! The share's space is counted twice: as the backups name it, and as the disk holds it (a
//! file with several names once).

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::store::{HostBackups, Stored};

/// Version of the report (`ecfleet backup verify --format json`).
pub const VERIFY_SCHEMA_VERSION: u32 = 1;

/// One backup's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct BackupCheck {
    pub tenant: String,
    pub host: String,
    /// The backup's name (`EntraConnect-config-2026-12-02-nightly`).
    pub backup: String,
    /// `verified`: every file matched; `damaged`: a file is missing, changed or the manifest
    /// cannot be read; `incomplete`: no manifest (an interrupted backup, never used);
    /// `unchecked`: the share did not give the host's backups in time (`backup` is `-`).
    pub status: CheckStatus,
    pub files: usize,
    pub bytes: u64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckStatus {
    Verified,
    Damaged,
    Incomplete,
    Unchecked,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifySummary {
    pub hosts: usize,
    pub backups: usize,
    pub verified: usize,
    pub damaged: usize,
    pub incomplete: usize,
    pub unchecked: usize,
    /// The verified backups' files, added up as they are named.
    pub named_bytes: u64,
    /// The same files as the disk holds them (a file with several names once); null where the
    /// controller cannot tell (Windows).
    pub stored_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub schema_version: u32,
    pub kind: String,
    pub generated_at: String,
    pub share: String,
    pub summary: VerifySummary,
    pub backups: Vec<BackupCheck>,
}

impl VerifyReport {
    /// 0 every complete backup verified; 1 some are damaged; 2 some hosts' backups could not
    /// be checked in time (docs/exit-codes.md).
    pub fn exit_code(&self) -> u8 {
        if self.summary.damaged > 0 {
            crate::exit::ATTENTION
        } else if self.summary.unchecked > 0 {
            crate::exit::INCOMPLETE
        } else {
            crate::exit::OK
        }
    }
}

/// The hosts with a backup folder on the share: (tenant, host), sorted.
pub fn hosts_on_share(share: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for tenant in read_dir_names(&share.join("tenants")) {
        for host in read_dir_names(&share.join("tenants").join(&tenant)) {
            let backups = share
                .join("tenants")
                .join(&tenant)
                .join(&host)
                .join("backups");
            if fs::symlink_metadata(&backups).is_ok_and(|m| m.is_dir()) {
                out.push((tenant.clone(), host));
            }
        }
    }
    out.sort();
    out
}

fn read_dir_names(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// What one host's folder holds, checked.
pub struct HostChecks {
    pub checks: Vec<BackupCheck>,
    /// The verified files' identities on disk and sizes (for the share's count).
    pub files: Vec<(Option<(u64, u64)>, u64)>,
}

/// Checks every backup of one host (blocking: it reads every file).
pub fn check_host(share: &Path, tenant: &str, host: &str) -> HostChecks {
    let backups = HostBackups::new(share, tenant, host);
    let listed = backups.list();
    let mut checks = Vec::new();
    let mut files = Vec::new();
    let check = |backup: String, status, files: usize, bytes, error| BackupCheck {
        tenant: tenant.into(),
        host: host.into(),
        backup,
        status,
        files,
        bytes,
        error,
    };
    for stored in &listed {
        let bytes = stored.manifest.files.iter().map(|f| f.size).sum();
        let n = stored.manifest.files.len();
        match stored.verify() {
            Ok(()) => {
                files.extend(identities(stored));
                checks.push(check(
                    stored.manifest.name.clone(),
                    CheckStatus::Verified,
                    n,
                    bytes,
                    None,
                ));
            }
            Err(e) => checks.push(check(
                stored.manifest.name.clone(),
                CheckStatus::Damaged,
                n,
                bytes,
                Some(crate::checks::shown(&e)),
            )),
        }
    }
    let listed: HashSet<&str> = listed.iter().map(|s| s.manifest.name.as_str()).collect();
    for (name, problem) in unlisted(&backups.dir, &listed) {
        let status = match problem {
            Some(_) => CheckStatus::Damaged,
            None => CheckStatus::Incomplete,
        };
        checks.push(check(name, status, 0, 0, problem));
    }
    checks.sort_by(|a, b| a.backup.cmp(&b.backup));
    HostChecks { checks, files }
}

/// Backups in `dir` that [`HostBackups::list`] does not give: a manifest that cannot be read
/// or says it is not verified (with the problem), or files without a manifest (none).
fn unlisted(dir: &Path, listed: &HashSet<&str>) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for entry in fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(base) = name.strip_suffix(".manifest.json") {
            if listed.contains(base) || !seen.insert(base.to_string()) {
                continue;
            }
            out.push((
                base.to_string(),
                Some(format!(
                    "{} cannot be read as a verified backup manifest",
                    entry.path().display()
                )),
            ));
        } else if let Some(base) = name.strip_suffix(".ecfleet.json") {
            // The file that claims a backup's name: there is one per backup, complete or not.
            let manifest = dir.join(format!("{base}.manifest.json"));
            if !manifest.exists() && seen.insert(base.to_string()) {
                out.push((base.to_string(), None));
            }
        }
    }
    out
}

/// Each verified file's identity on disk (device and inode where the controller can tell) and
/// size.
fn identities(stored: &Stored) -> Vec<(Option<(u64, u64)>, u64)> {
    stored
        .manifest
        .files
        .iter()
        .filter_map(|f| {
            let path = stored.path_of_file(&f.name)?;
            Some((identity(&path), f.size))
        })
        .collect()
}

#[cfg(unix)]
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn identity(_: &Path) -> Option<(u64, u64)> {
    None
}

/// Checks the given hosts' backups, `concurrency` hosts at once, each within `deadline`.
pub async fn verify(
    share: &Path,
    hosts: Vec<(String, String)>,
    concurrency: usize,
    deadline: Duration,
) -> VerifyReport {
    use futures::StreamExt;
    let results: Vec<((String, String), Result<HostChecks, String>)> =
        futures::stream::iter(hosts.into_iter().map(|(tenant, host)| {
            let share = share.to_path_buf();
            async move {
                let (t, h) = (tenant.clone(), host.clone());
                let work = tokio::task::spawn_blocking(move || check_host(&share, &t, &h));
                let result = match tokio::time::timeout(deadline, work).await {
                    Ok(Ok(checks)) => Ok(checks),
                    Ok(Err(e)) => Err(format!("the check stopped: {e}")),
                    Err(_) => Err(format!(
                        "the share did not give this host's backups within {} s (--host-deadline)",
                        deadline.as_secs()
                    )),
                };
                ((tenant, host), result)
            }
        }))
        .buffered(concurrency.max(1))
        .collect()
        .await;
    report(share, results)
}

fn report(
    share: &Path,
    results: Vec<((String, String), Result<HostChecks, String>)>,
) -> VerifyReport {
    let hosts = results.len();
    let mut backups = Vec::new();
    let mut named_bytes = 0;
    let mut distinct = HashSet::new();
    let mut stored_bytes = Some(0u64);
    for ((tenant, host), result) in results {
        match result {
            Ok(h) => {
                for (id, size) in h.files {
                    named_bytes += size;
                    match id {
                        Some(id) => {
                            if distinct.insert(id) {
                                stored_bytes = stored_bytes.map(|b| b + size);
                            }
                        }
                        None => stored_bytes = None,
                    }
                }
                backups.extend(h.checks);
            }
            Err(error) => backups.push(BackupCheck {
                tenant,
                host,
                backup: "-".into(),
                status: CheckStatus::Unchecked,
                files: 0,
                bytes: 0,
                error: Some(error),
            }),
        }
    }
    let count = |s: CheckStatus| backups.iter().filter(|b| b.status == s).count();
    VerifyReport {
        schema_version: VERIFY_SCHEMA_VERSION,
        kind: "ecfleet-backup-verify".into(),
        generated_at: {
            let now = jiff::Timestamp::now();
            now.round(jiff::Unit::Second).unwrap_or(now).to_string()
        },
        share: share.display().to_string(),
        summary: VerifySummary {
            hosts,
            backups: backups.len(),
            verified: count(CheckStatus::Verified),
            damaged: count(CheckStatus::Damaged),
            incomplete: count(CheckStatus::Incomplete),
            unchecked: count(CheckStatus::Unchecked),
            named_bytes,
            stored_bytes,
        },
        backups,
    }
}
