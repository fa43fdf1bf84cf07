//! A host's backups on the central share: `tenants/<tenant>/<host>/backups/`, one backup as a
//! set of files named `EntraConnect-config-YYYY-MM-DD-<tag>[-N].*` (docs/backup.md): the
//! migration export folder as one archive (`.server-configuration.tar`), its
//! `MigratedPolicy.json` and `PersistedState.xml` on their own, the wizard's applied policy
//! JSON (`.json`), `miiserver.exe.config` and the proxy section of `machine.config`, ecfleet's
//! reading (`.ecfleet.json`), the backup's `.sha256` (a `sha256sum` line per file), and the
//! manifest (`.manifest.json`), written last once every file was re-read from the share and
//! matched its hash. A file the host sent unchanged since its newest backup is that backup's
//! file under a second name ([`super::reuse`]). A backup without a manifest is incomplete and
//! is neither compared with nor counted. Files are created, never overwritten (a second backup of the day is `-2`, `-3` …),
//! and retention never removes the newest backup or any `pre-upgrade` one.

use std::fs;
use std::path::{Path, PathBuf};

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::reuse::Reused;
use crate::share::{ShareError, write_new_file};

pub const MANIFEST_KIND: &str = "ecfleet-backup-manifest";
pub const MANIFEST_SCHEMA_VERSION: u32 = 1;

/// Why the backup was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tag {
    /// `ecfleet backup` (nightly, independent of upgrades).
    Nightly,
    /// Phase 2 of `ecfleet run`: retention never removes these.
    PreUpgrade,
}

impl Tag {
    pub fn as_str(self) -> &'static str {
        match self {
            Tag::Nightly => "nightly",
            Tag::PreUpgrade => "pre-upgrade",
        }
    }
}

/// What a file of a backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The wizard's `Applied-SynchronizationPolicy-*.json`, byte for byte: what a new server
    /// imports.
    AppliedPolicy,
    /// The `Get-ADSyncServerConfiguration` dump, as one tar archive.
    ServerConfiguration,
    /// ecfleet's reading of the configuration (drift is judged on it).
    Configuration,
    /// `MigratedPolicy.json` of the migration export: what the wizard imports (with the rest
    /// of the export folder, which the server-configuration archive holds).
    MigratedPolicy,
    /// `PersistedState.xml` of the migration export.
    PersistedState,
    /// The sync engine's `miiserver.exe.config`.
    EngineConfig,
    /// The `<system.net>` (proxy) section of `machine.config`.
    ProxyConfig,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::AppliedPolicy,
        Role::ServerConfiguration,
        Role::Configuration,
        Role::MigratedPolicy,
        Role::PersistedState,
        Role::EngineConfig,
        Role::ProxyConfig,
    ];

    /// The file name's ending after the backup's base name.
    fn suffix(self) -> &'static str {
        match self {
            Role::AppliedPolicy => ".json",
            Role::ServerConfiguration => ".server-configuration.tar",
            Role::Configuration => ".ecfleet.json",
            Role::MigratedPolicy => ".MigratedPolicy.json",
            Role::PersistedState => ".PersistedState.xml",
            Role::EngineConfig => ".miiserver.exe.config",
            Role::ProxyConfig => ".machine.config-system.net.xml",
        }
    }
}

/// One file to store: its content and the SHA-256 it must have (the host's, for fetched files).
pub struct NewFile {
    pub role: Role,
    pub content: Content,
    pub sha256: String,
    /// Its name on the host, for the manifest.
    pub source_name: Option<String>,
    /// Taken from an earlier backup instead of fetched ([`super::reuse`]).
    pub reused: Option<Reused>,
}

/// A new file's bytes: made on the controller (small), or fetched from the host into a
/// temporary file in the backup folder ([`super::spool`]).
pub enum Content {
    Bytes(Vec<u8>),
    Spooled(super::spool::Spooled),
}

impl Content {
    fn size(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::Spooled(s) => s.size,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub name: String,
    pub role: Role,
    pub size: u64,
    pub sha256: String,
    pub source_name: Option<String>,
    /// The host sent the same bytes as the earlier backup named here, so the file is that
    /// backup's content under a second name (`hard-link`) or a copy made on the share
    /// (`copy`); null: fetched from the host.
    #[serde(default)]
    pub reused: Option<Reused>,
}

/// The manifest, written last: its presence means every file is there and matched its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub kind: String,
    pub name: String,
    pub tenant: String,
    pub host: String,
    pub tag: Tag,
    pub date: Date,
    /// When the controller stored it (UTC, to the nanosecond: it orders a host's backups).
    pub created_at: String,
    /// When the host gathered it (host clock).
    pub collected_at: String,
    pub engine_version: Option<String>,
    /// The run it belongs to (`ecfleet run`), if any.
    pub run_id: Option<String>,
    pub files: Vec<ManifestFile>,
    /// Every file was re-read from the share and matched its SHA-256.
    pub verified: bool,
    pub verified_at: String,
    /// What the backup lacks (e.g. no wizard policy on the host).
    pub warnings: Vec<String>,
    /// How the migration export folder was made on the host: Microsoft's installed
    /// `MigrateSettings.ps1`, or the agent following its steps (and why).
    #[serde(default)]
    pub export_method: Option<String>,
    /// When the wizard wrote the applied policy JSON (its `policyMetadata.timeCreated`).
    #[serde(default)]
    pub applied_policy_created: Option<String>,
    /// What a new server's wizard can import from this backup ("Import synchronization
    /// settings"): `MigratedPolicy.json` (with the export folder) or the applied policy JSON;
    /// `None`: nothing importable (the pre-upgrade gate refuses such a host).
    #[serde(default)]
    pub importable: Option<String>,
    /// What no backup holds, for the restore instructions (docs/backup.md, Restoring).
    #[serde(default)]
    pub not_in_backup: Vec<String>,
}

/// A complete backup found on the share.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// The `-N` of the day (1 for none).
    pub number: u32,
}

impl Stored {
    /// Reads every file of the backup back and checks it against the manifest (present, a
    /// regular file, its size and SHA-256): a record that says "backup ok" is believed only
    /// when this holds.
    pub fn verify(&self) -> Result<(), String> {
        for f in &self.manifest.files {
            if !plain_file_name(&f.name) {
                return Err(format!(
                    "{}: the manifest names {:?}, which is not a file of the backup's folder",
                    self.dir.display(),
                    f.name
                ));
            }
            let path = self.dir.join(&f.name);
            let meta = fs::symlink_metadata(&path)
                .map_err(|e| format!("{} cannot be read: {e}", path.display()))?;
            if !meta.is_file() {
                return Err(format!("{} is not a regular file", path.display()));
            }
            if meta.len() != f.size {
                return Err(format!(
                    "{} is {} bytes; its manifest says {}",
                    path.display(),
                    meta.len(),
                    f.size
                ));
            }
            let sha = super::spool::sha256_of(&path)
                .map_err(|e| format!("{} cannot be read: {e}", path.display()))?;
            if !sha.eq_ignore_ascii_case(&f.sha256) {
                return Err(format!(
                    "{} has SHA-256 {sha}; its manifest says {}",
                    path.display(),
                    f.sha256
                ));
            }
        }
        Ok(())
    }

    /// Where the file of `role` is: in the backup's folder, and only there (a manifest that
    /// names a path, absolute or with a separator or `..`, names no file of the backup).
    pub fn path_of(&self, role: Role) -> Option<PathBuf> {
        let file = self.manifest.files.iter().find(|f| f.role == role)?;
        self.path_of_file(&file.name)
    }

    /// Where the manifest's file `name` is, if it is a plain name in the backup's folder.
    pub fn path_of_file(&self, name: &str) -> Option<PathBuf> {
        plain_file_name(name).then(|| self.dir.join(name))
    }
}

/// A name of a file in one folder: no separator, not `.` or `..`, not empty.
fn plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', ':'])
}

/// What a new backup says about itself.
pub struct Meta<'a> {
    pub tenant: &'a str,
    pub host: &'a str,
    pub tag: Tag,
    pub date: Date,
    pub collected_at: String,
    pub engine_version: Option<String>,
    pub run_id: Option<String>,
    pub warnings: Vec<String>,
    pub export_method: Option<String>,
    pub applied_policy_created: Option<String>,
    pub importable: Option<String>,
}

/// The backups of one host.
pub struct HostBackups {
    pub dir: PathBuf,
    /// The share, and the folders below it that lead to `dir`.
    share: PathBuf,
    below: [String; 4],
}

fn now_utc() -> String {
    let now = jiff::Timestamp::now();
    now.round(jiff::Unit::Second).unwrap_or(now).to_string()
}

fn base_name(date: Date, tag: Tag, number: u32) -> String {
    match number {
        1 => format!("EntraConnect-config-{date}-{}", tag.as_str()),
        n => format!("EntraConnect-config-{date}-{}-{n}", tag.as_str()),
    }
}

/// `EntraConnect-config-2026-12-02-pre-upgrade-2.manifest.json` → (date, tag, 2).
fn parse_manifest_name(name: &str) -> Option<(Date, Tag, u32)> {
    let rest = name
        .strip_prefix("EntraConnect-config-")?
        .strip_suffix(".manifest.json")?;
    let date: Date = rest.get(..10)?.parse().ok()?;
    let rest = rest.get(10..)?.strip_prefix('-')?;
    for tag in [Tag::PreUpgrade, Tag::Nightly] {
        if let Some(after) = rest.strip_prefix(tag.as_str()) {
            let number = match after.strip_prefix('-') {
                None if after.is_empty() => 1,
                Some(n) => n.parse().ok().filter(|n| *n >= 2)?,
                None => return None,
            };
            return Some((date, tag, number));
        }
    }
    None
}

fn share_error(path: &Path) -> impl Fn(std::io::Error) -> ShareError + '_ {
    move |source| ShareError {
        path: path.to_path_buf(),
        source,
    }
}

impl HostBackups {
    pub fn new(share: &Path, tenant: &str, host: &str) -> Self {
        HostBackups {
            dir: share
                .join("tenants")
                .join(tenant)
                .join(host)
                .join("backups"),
            share: share.to_path_buf(),
            below: [
                "tenants".into(),
                tenant.into(),
                host.into(),
                "backups".into(),
            ],
        }
    }

    /// The host's backup folder, made where missing (never through a link inside the share):
    /// where fetched files are received before they are stored.
    pub fn folder(&self) -> Result<PathBuf, ShareError> {
        let below: Vec<&str> = self.below.iter().map(String::as_str).collect();
        crate::share::dirs_below(&self.share, &below)
    }

    /// Every complete, verified backup, oldest first (by when it was stored, then by date and
    /// number: a name can come back after retention removed the backup that had it).
    pub fn list(&self) -> Vec<Stored> {
        // Never through a link inside the share: such a host has no backups to read (and
        // storing one fails, naming the link).
        let mut path = self.share.clone();
        for c in &self.below {
            path.push(c);
            if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                return Vec::new();
            }
        }
        let mut out: Vec<Stored> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let (_, _, number) = parse_manifest_name(&name)?;
                let text = crate::fsread::read_regular(&e.path(), 1 << 20).ok()?;
                let manifest: Manifest = serde_json::from_slice(&text).ok()?;
                (manifest.kind == MANIFEST_KIND && manifest.verified).then(|| Stored {
                    dir: self.dir.clone(),
                    manifest,
                    number,
                })
            })
            .collect();
        // By the instant stored (to the nanosecond: two backups of one host within a second
        // must not tie), then by date and number.
        let stored = |s: &Stored| s.manifest.created_at.parse::<jiff::Timestamp>().ok();
        out.sort_by(|a, b| {
            (stored(a), a.manifest.date, a.number).cmp(&(stored(b), b.manifest.date, b.number))
        });
        out
    }

    /// The newest complete backup.
    pub fn newest(&self) -> Option<Stored> {
        self.list().pop()
    }

    /// Stores a new backup: claims the day's first free name (by creating its `.ecfleet.json`,
    /// which fails if the name is taken, also by another process), writes the other files and
    /// their `.sha256`, re-reads every file and checks its hash, then writes the manifest. On
    /// any failure the files of this backup are removed again and nothing else is touched.
    pub fn store(&self, meta: Meta<'_>, files: Vec<NewFile>) -> Result<Stored, ShareError> {
        let below: Vec<&str> = self.below.iter().map(String::as_str).collect();
        crate::share::dirs_below(&self.share, &below)?;
        crate::share::clean_stale_temp_files_in(&self.dir);
        let claim = files
            .iter()
            .position(|f| f.role == Role::Configuration)
            .ok_or_else(|| ShareError {
                path: self.dir.clone(),
                source: std::io::Error::other(
                    "a backup needs ecfleet's reading of the configuration",
                ),
            })?;
        let Content::Bytes(reading) = &files[claim].content else {
            return Err(ShareError {
                path: self.dir.clone(),
                source: std::io::Error::other("ecfleet's reading is made on the controller"),
            });
        };
        let (number, base) = self.claim(meta.date, meta.tag, reading)?;
        let written = self.write_rest(&base, claim, &files);
        let result = written.and_then(|manifest_files| {
            let manifest = Manifest {
                schema_version: MANIFEST_SCHEMA_VERSION,
                kind: MANIFEST_KIND.into(),
                name: base.clone(),
                tenant: meta.tenant.into(),
                host: meta.host.into(),
                tag: meta.tag,
                date: meta.date,
                created_at: jiff::Timestamp::now().to_string(),
                collected_at: meta.collected_at.clone(),
                engine_version: meta.engine_version.clone(),
                run_id: meta.run_id.clone(),
                files: manifest_files,
                verified: true,
                verified_at: now_utc(),
                warnings: meta.warnings.clone(),
                export_method: meta.export_method.clone(),
                applied_policy_created: meta.applied_policy_created.clone(),
                importable: meta.importable.clone(),
                not_in_backup: ecfleet_proto::backup::NOT_IN_BACKUP
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            };
            let json = serde_json::to_vec_pretty(&manifest).map_err(|e| ShareError {
                path: self.dir.clone(),
                source: std::io::Error::other(e),
            })?;
            write_new_file(&self.dir.join(format!("{base}.manifest.json")), &json)?;
            Ok(Stored {
                dir: self.dir.clone(),
                manifest,
                number,
            })
        });
        if result.is_err() {
            self.remove_files(&base);
        }
        result
    }

    /// Creates `<base>.ecfleet.json` under the first number above every one the day's backups
    /// of this tag have used (complete or not), so that a newer backup never takes a lower
    /// number than an older one that is still there.
    fn claim(&self, date: Date, tag: Tag, data: &[u8]) -> Result<(u32, String), ShareError> {
        let prefix = base_name(date, tag, 1);
        let highest = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let rest = name.strip_prefix(&prefix)?;
                match rest.strip_prefix('-') {
                    Some(n) => n.split('.').next()?.parse::<u32>().ok(),
                    None => rest.starts_with('.').then_some(1),
                }
            })
            .max()
            .unwrap_or(0);
        for number in highest + 1..highest + 10_000 {
            let base = base_name(date, tag, number);
            let path = self
                .dir
                .join(format!("{base}{}", Role::Configuration.suffix()));
            match write_new_file(&path, data) {
                Ok(()) => return Ok((number, base)),
                Err(e) if e.source.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ShareError {
            path: self.dir.clone(),
            source: std::io::Error::other("10,000 backups on one day: none more"),
        })
    }

    /// Writes every file but the claimed one, verifies each from the share, then writes the
    /// backup's `.sha256` (one `sha256sum` line per file).
    fn write_rest(
        &self,
        base: &str,
        claimed: usize,
        files: &[NewFile],
    ) -> Result<Vec<ManifestFile>, ShareError> {
        let mut out = Vec::new();
        let mut sums = String::new();
        for (i, f) in files.iter().enumerate() {
            let name = format!("{base}{}", f.role.suffix());
            let path = self.dir.join(&name);
            let mut read_back = false;
            if i != claimed {
                match &f.content {
                    Content::Bytes(data) => write_new_file(&path, data)?,
                    // Synced already: linked into place (never over a file), then verified.
                    Content::Spooled(spooled) => {
                        fs::hard_link(&spooled.path, &path).map_err(share_error(&path))?;
                        read_back = spooled.read_back;
                    }
                }
            }
            if !read_back {
                verify(&path, &f.sha256)?;
            }
            sums.push_str(&format!("{}  {name}\n", f.sha256));
            out.push(ManifestFile {
                name,
                role: f.role,
                size: f.content.size(),
                sha256: f.sha256.clone(),
                source_name: f.source_name.clone(),
                reused: f.reused.clone(),
            });
        }
        write_new_file(&self.dir.join(format!("{base}.sha256")), sums.as_bytes())?;
        Ok(out)
    }

    /// Removes the files of one backup: the manifest first (so a crash leaves an incomplete
    /// backup, never a complete-looking one with files missing), the claim file last.
    fn remove_files(&self, base: &str) {
        let _ = fs::remove_file(self.dir.join(format!("{base}.manifest.json")));
        let _ = fs::remove_file(self.dir.join(format!("{base}.sha256")));
        for role in Role::ALL {
            let name = format!("{base}{}", role.suffix());
            let _ = fs::remove_file(self.dir.join(format!("{name}.sha256")));
            if role != Role::Configuration {
                let _ = fs::remove_file(self.dir.join(&name));
            }
        }
        let _ = fs::remove_file(
            self.dir
                .join(format!("{base}{}", Role::Configuration.suffix())),
        );
    }

    /// Applies `retention` on `today`: returns the names of the backups removed. Never removes
    /// the newest backup, any `pre-upgrade` one, or anything incomplete.
    pub fn prune(&self, retention: Retention, today: Date) -> Vec<String> {
        let all = self.list();
        let Some(newest) = all.last().map(|s| s.manifest.name.clone()) else {
            return Vec::new();
        };
        let nightly: Vec<&Stored> = all
            .iter()
            .filter(|s| s.manifest.tag == Tag::Nightly)
            .collect();
        let mut removed = Vec::new();
        for (i, s) in nightly.iter().enumerate() {
            let from_newest = nightly.len() - 1 - i;
            if s.manifest.name == newest || retention.keeps(from_newest, s.manifest.date, today) {
                continue;
            }
            self.remove_files(&s.manifest.name);
            removed.push(s.manifest.name.clone());
        }
        removed
    }
}

/// Re-reads a stored file and checks its SHA-256.
fn verify(path: &Path, expected: &str) -> Result<(), ShareError> {
    // A buffer at a time: a backup's dump can be gigabytes.
    let actual = super::spool::sha256_of(path).map_err(share_error(path))?;
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(ShareError {
            path: path.to_path_buf(),
            source: std::io::Error::other(format!(
                "read back with SHA-256 {actual}, expected {expected}"
            )),
        })
    }
}

/// How many nightly backups a host keeps: the newest `keep`, and/or those of the last
/// `keep_days` days (a backup either rule keeps stays). Neither: all of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub keep: Option<usize>,
    pub keep_days: Option<u32>,
}

impl Retention {
    /// Whether the nightly backup `from_newest` places from the newest (0 = newest), of `date`,
    /// stays.
    fn keeps(&self, from_newest: usize, date: Date, today: Date) -> bool {
        let by_count = self.keep.map(|n| from_newest < n);
        let by_age = self
            .keep_days
            .map(|d| (today - date).get_days() <= d as i32);
        match (by_count, by_age) {
            (None, None) => true,
            (a, b) => a.unwrap_or(false) || b.unwrap_or(false),
        }
    }
}

#[cfg(test)]
mod tests;
