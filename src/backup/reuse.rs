//! What a new backup takes from the host's newest backup instead of fetching it again: a file
//! the host reports with the size and SHA-256 of a file of that backup is hard-linked to it on
//! the share (one copy of the content, however many backups name it), or copied from it on
//! the share where no link can be made (a file system without them, or a file at its link
//! limit: 1,024 on NTFS). Either way it is read back and matched before it counts; a file
//! that is gone or no longer matches is fetched from the host as usual (docs/backup.md,
//! Deduplication).
//!
//! Retention needs nothing more: a backup's files are names of the content, and the file
//! system keeps the content while any name is left, so removing an old backup never takes
//! what a kept one still names.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::spool::{self, Spool, Spooled};
use super::store::Stored;

/// How a file came from an earlier backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReusedBy {
    /// A second name of the same file: no new content on the share.
    HardLink,
    /// A copy made on the share (no link could be made): new content, nothing fetched.
    Copy,
}

/// The earlier backup a file's content came from (in the manifest, `files[].reused`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reused {
    /// That backup's name (`EntraConnect-config-2026-12-01-nightly`).
    pub from: String,
    pub by: ReusedBy,
}

/// A file of an earlier backup that a new one may take.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub path: PathBuf,
    pub backup: String,
}

/// The files of the host's newest backup, by SHA-256 and size.
#[derive(Debug, Default)]
pub struct Reusable {
    files: HashMap<(String, u64), Candidate>,
}

impl Reusable {
    /// The files of `newest` (none for a host's first backup).
    pub fn of(newest: Option<&Stored>) -> Reusable {
        let mut files = HashMap::new();
        if let Some(stored) = newest {
            for f in &stored.manifest.files {
                if let Some(path) = stored.path_of_file(&f.name) {
                    files.insert(
                        (f.sha256.to_ascii_lowercase(), f.size),
                        Candidate {
                            path,
                            backup: stored.manifest.name.clone(),
                        },
                    );
                }
            }
        }
        Reusable { files }
    }

    pub fn find(&self, sha256: &str, size: u64) -> Option<&Candidate> {
        self.files.get(&(sha256.to_ascii_lowercase(), size))
    }
}

/// The candidate's content as a temporary file in `dir` (the host's backup folder), linked or
/// copied, read back and matched against `size` and `sha256`; `None` when it is gone or does
/// not match (then the file is fetched).
pub fn take(
    dir: &Path,
    candidate: &Candidate,
    size: u64,
    sha256: &str,
) -> Option<(Spooled, Reused)> {
    take_linking_with(dir, candidate, size, sha256, |from, to| {
        fs::hard_link(from, to)
    })
}

/// [`take`] with the file system's link call given (the tests make it fail as a share
/// without links, or a file at its link limit, does).
fn take_linking_with(
    dir: &Path,
    candidate: &Candidate,
    size: u64,
    sha256: &str,
    link: impl Fn(&Path, &Path) -> io::Result<()>,
) -> Option<(Spooled, Reused)> {
    // A regular file only: a link planted on the share in a backup's name is never taken
    // (a hard link to it would be the link, its content wherever it points).
    if !fs::symlink_metadata(&candidate.path).is_ok_and(|m| m.is_file()) {
        return None;
    }
    let temp = spool::temp_name(dir);
    let (spooled, by) = match link(&candidate.path, &temp) {
        Ok(()) => {
            let linked = Spooled {
                path: temp,
                size,
                sha256: sha256.to_ascii_lowercase(),
                read_back: true,
            };
            // Read back through the new name: what the new backup will hold.
            let matches = fs::metadata(&linked.path).is_ok_and(|m| m.len() == size)
                && spool::sha256_of(&linked.path).is_ok_and(|s| s.eq_ignore_ascii_case(sha256));
            (matches.then_some(linked)?, ReusedBy::HardLink)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(_) => (copy(dir, &candidate.path, size)?, ReusedBy::Copy),
    };
    if spooled.size != size || !spooled.sha256.eq_ignore_ascii_case(sha256) {
        return None;
    }
    Some((
        spooled,
        Reused {
            from: candidate.backup.clone(),
            by,
        },
    ))
}

/// A copy of `source` in a temporary file in `dir`, hashed on the way (the store reads it
/// back once written).
fn copy(dir: &Path, source: &Path, size: u64) -> Option<Spooled> {
    let mut from = fs::File::open(source).ok()?;
    let mut spool = Spool::create(dir, size).ok()?;
    io::copy(&mut from, &mut spool).ok()?;
    spool.finish().ok()
}

#[cfg(test)]
mod tests;
