//! The central share: a local or mounted directory where results and backups are kept.
//! Writes are atomic (temp file, fsync, rename, fsync of the directory), never overwrite, and
//! each snapshot directory carries a `SHA256SUMS` manifest.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::digest::hex;

#[derive(Debug, thiserror::Error)]
#[error("share {path}: {source}")]
pub struct ShareError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

pub struct Share {
    root: PathBuf,
}

/// `root/a/b/…` as a folder, made where missing, one component at a time and never through a
/// symbolic link: a link inside the share (planted to send ecfleet's writes elsewhere) is an
/// error naming it. `root` itself is the share, checked by [`check_root`].
pub fn dirs_below(root: &Path, components: &[&str]) -> Result<PathBuf, ShareError> {
    let mut dir = root.to_path_buf();
    for c in components {
        dir.push(c);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(ShareError {
                    path: dir.clone(),
                    source: std::io::Error::other(
                        "is a symbolic link: ecfleet does not follow links inside the share; remove it",
                    ),
                });
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(ShareError {
                    path: dir.clone(),
                    source: std::io::Error::other("is not a folder"),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match fs::create_dir(&dir) {
                Ok(()) => {}
                // Another process made it meanwhile: checked on the next look.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if fs::symlink_metadata(&dir).is_ok_and(|m| !m.is_dir()) {
                        return Err(ShareError {
                            path: dir.clone(),
                            source: std::io::Error::other("is not a folder"),
                        });
                    }
                }
                Err(e) => {
                    return Err(ShareError {
                        path: dir,
                        source: e,
                    });
                }
            },
            Err(e) => {
                return Err(ShareError {
                    path: dir,
                    source: e,
                });
            }
        }
    }
    Ok(dir)
}

/// Whether `root` can be the share: an existing folder this account can write to. ecfleet
/// creates folders below the share, never the share itself, so an SMB share that is not
/// mounted never turns into a folder on the controller's own disk.
pub fn check_root(root: &Path) -> Result<(), String> {
    let meta = match fs::metadata(root) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "the share {} does not exist (not mounted?)",
                root.display()
            ));
        }
        Err(e) => return Err(format!("the share {} cannot be read: {e}", root.display())),
    };
    if !meta.is_dir() {
        return Err(format!("the share {} is not a folder", root.display()));
    }
    let probe = root.join(format!(
        ".ecfleet-write-check-{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond()
    ));
    match OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!(
            "the share {} is not writable by this account ({e})",
            root.display()
        )),
    }
}

impl Share {
    pub fn new(root: &Path) -> Self {
        Share {
            root: root.to_path_buf(),
        }
    }

    /// Writes `audits/<stamp>/audit.json` (or `<stamp>-2`, … if that snapshot exists) and its
    /// manifest; returns the file's path.
    pub fn write_audit(&self, stamp: &str, json: &[u8]) -> Result<PathBuf, ShareError> {
        let audits = self.root.join("audits");
        let dir = new_dir(&audits, stamp)?;
        let file = dir.join("audit.json");
        write_new_file(&file, json)?;
        let manifest = format!("{}  audit.json\n", hex(&Sha256::digest(json)));
        write_new_file(&dir.join("SHA256SUMS"), manifest.as_bytes())?;
        Ok(file)
    }
}

impl Share {
    /// Every `audits/<stamp>/audit.json` whose manifest still matches it, newest first, with
    /// its bytes (read once). Lazy: a caller that stops early reads no older snapshot.
    /// Snapshots sort by stamp, then by the `-2`, `-3` … suffix of same-second runs.
    pub fn audits_newest_first(&self) -> impl Iterator<Item = (PathBuf, Vec<u8>)> {
        let audits = self.root.join("audits");
        let mut dirs: Vec<(String, u32, PathBuf)> = fs::read_dir(&audits)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("audit.json").is_file())
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let (stamp, n) = match name.rsplit_once('-') {
                    Some((stamp, n))
                        if n.chars().all(|c| c.is_ascii_digit()) && stamp.ends_with('Z') =>
                    {
                        (stamp.to_string(), n.parse().unwrap_or(1))
                    }
                    _ => (name.clone(), 1),
                };
                (stamp, n, e.path())
            })
            .collect();
        dirs.sort();
        dirs.into_iter().rev().filter_map(|(_, _, dir)| {
            let file = dir.join("audit.json");
            let manifest = fs::read_to_string(dir.join("SHA256SUMS")).unwrap_or_default();
            let bytes = fs::read(&file).ok()?;
            manifest
                .starts_with(&hex(&Sha256::digest(&bytes)))
                .then_some((file, bytes))
        })
    }

    /// Removes temp files (`.NAME.tmp-PID-N`) that a killed ecfleet left in the snapshot
    /// directories more than a day ago; a live writer's temp file is minutes old at most.
    pub fn clean_stale_temp_files(&self) -> usize {
        let Ok(dirs) = fs::read_dir(self.root.join("audits")) else {
            return 0;
        };
        dirs.filter_map(|e| e.ok())
            .map(|e| clean_stale_temp_files_in(&e.path()))
            .sum()
    }
}

/// Removes the temp files in `dir` that a killed writer left there more than a day ago.
pub fn clean_stale_temp_files_in(dir: &Path) -> usize {
    let day = std::time::Duration::from_secs(24 * 3600);
    let Ok(files) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for f in files.filter_map(|e| e.ok()) {
        let name = f.file_name().to_string_lossy().into_owned();
        let stale = f
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > day);
        if name.starts_with('.')
            && name.contains(".tmp-")
            && stale
            && fs::remove_file(f.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

fn err(path: &Path) -> impl FnOnce(std::io::Error) -> ShareError + '_ {
    move |source| ShareError {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates a fresh directory `parent/name`, or `name-2`, `name-3`, … if taken.
fn new_dir(parent: &Path, name: &str) -> Result<PathBuf, ShareError> {
    fs::create_dir_all(parent).map_err(err(parent))?;
    for n in 1..10_000 {
        let dir = if n == 1 {
            parent.join(name)
        } else {
            parent.join(format!("{name}-{n}"))
        };
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(err(&dir)(e)),
        }
    }
    Err(ShareError {
        path: parent.join(name),
        source: std::io::Error::other("too many snapshots with the same name"),
    })
}

/// A temp file's name beside `path`: `.<name>.tmp-<pid>-<n>`, unique within this process too
/// (two tasks writing the same name at once must not share one temp file), and recognised by
/// [`Share::clean_stale_temp_files`] from its `.tmp-`.
fn temp_path(dir: &Path, path: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    dir.join(format!(
        ".{}.tmp-{}-{n}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ))
}

/// Atomic create: temp file, fsync, hard-link into place (fails if the name exists), fsync dir.
pub fn write_new_file(path: &Path, data: &[u8]) -> Result<(), ShareError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_path(dir, path);
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::hard_link(&tmp, path)?;
        fs::remove_file(&tmp)?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        err(path)(e)
    })
}

/// Atomic replace, for files the user names (a plan file): temp file beside it, fsync, rename.
/// A reader sees the old file or the new one, never half of either.
pub fn replace_file(path: &Path, data: &[u8]) -> Result<(), ShareError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = temp_path(dir, path);
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        err(path)(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_intact_snapshot_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let share = Share::new(dir.path());
        assert_eq!(share.audits_newest_first().next(), None);
        share.write_audit("2026-11-23T020000Z", b"{}").unwrap();
        for _ in 0..10 {
            share.write_audit("2026-11-24T020000Z", b"{}").unwrap();
        }
        // `-10` sorts after `-9`, not after `-1`.
        let latest = share.audits_newest_first().next().unwrap().0;
        assert!(
            latest.parent().unwrap().ends_with("2026-11-24T020000Z-10"),
            "{latest:?}"
        );
        // A snapshot that no longer matches its manifest is passed over.
        fs::write(&latest, b"{\"tampered\":true}").unwrap();
        let latest = share.audits_newest_first().next().unwrap().0;
        assert!(
            latest.parent().unwrap().ends_with("2026-11-24T020000Z-9"),
            "{latest:?}"
        );
    }

    #[test]
    fn temp_files_a_killed_run_left_are_removed_after_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let share = Share::new(dir.path());
        let snap = share.write_audit("2026-11-24T020000Z", b"{}").unwrap();
        let snap_dir = snap.parent().unwrap();
        let old = snap_dir.join(".audit.json.tmp-4242");
        let fresh = snap_dir.join(".audit.json.tmp-4243");
        fs::write(&old, b"half").unwrap();
        fs::write(&fresh, b"half").unwrap();
        let two_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86400);
        File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(two_days_ago)
            .unwrap();
        assert_eq!(share.clean_stale_temp_files(), 1);
        assert!(!old.exists() && fresh.exists() && snap.exists());
    }

    #[test]
    fn snapshots_never_overwrite_and_carry_a_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let share = Share::new(dir.path());
        let a = share
            .write_audit("2026-11-24T020000Z", b"{\"a\":1}")
            .unwrap();
        let b = share
            .write_audit("2026-11-24T020000Z", b"{\"b\":2}")
            .unwrap();
        assert_ne!(a, b);
        assert_eq!(fs::read(&a).unwrap(), b"{\"a\":1}");
        assert!(b.parent().unwrap().ends_with("2026-11-24T020000Z-2"));
        let sums = fs::read_to_string(a.parent().unwrap().join("SHA256SUMS")).unwrap();
        assert!(
            sums.ends_with("  audit.json\n") && sums.len() == 64 + 2 + 10 + 1,
            "{sums}"
        );
        assert!(
            write_new_file(&a, b"x").is_err(),
            "an existing file is never replaced"
        );
        assert_eq!(
            fs::read_dir(a.parent().unwrap()).unwrap().count(),
            2,
            "no temp files left"
        );
    }
}
