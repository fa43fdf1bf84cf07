//! The `backup` step: the host's sync-engine configuration gathered into one folder for the
//! controller to fetch (it never writes to a share itself: over WinRM that would be a second
//! hop). The backend ([`crate::backend::gather_backup`]) finds the wizard's newest
//! `Applied-SynchronizationPolicy-*.json`, writes a `Get-ADSyncServerConfiguration` dump and
//! reads the configuration; this module copies the policy beside the dump, packs the dump as
//! one tar archive, hashes both and prints an [`ecfleet_proto::backup::BackupResult`].

pub mod tar;

use std::path::{Path, PathBuf};

use ecfleet_proto::ProbeError;
use ecfleet_proto::backup::{
    BACKUP_KIND, BACKUP_SCHEMA_VERSION, BackupFile, BackupResult, Configuration,
};
use jiff::Timestamp;

use crate::backend::Backend;

/// What a backend gathered on the host.
pub struct Gathered {
    pub host_name: Option<String>,
    pub engine_version: Option<String>,
    /// The newest `Applied-SynchronizationPolicy-*.json`, where the wizard left it.
    pub applied_policy: Option<PathBuf>,
    /// The folder the server-configuration dump was written to, or why there is none.
    pub dump_dir: Result<PathBuf, String>,
    pub configuration: Result<Configuration, String>,
}

/// The archive's name in the out folder.
pub const DUMP_ARCHIVE: &str = "server-configuration.tar";

/// Earlier backup folders older than this are removed (the controller fetched or gave up on
/// them); younger ones may belong to another controller's backup in progress.
const KEEP_OLD_FOLDERS_SECS: u64 = 3600;

/// Runs the step: a new folder under `out_root` (default: `backup` beside the agent), the
/// result as JSON.
pub fn run(backend: &Backend, out_root: Option<PathBuf>) -> Result<String, String> {
    let out_root = match out_root {
        Some(dir) => dir,
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find the agent's folder: {e}"))?
            .parent()
            .map(|d| d.join("backup"))
            .ok_or("the agent has no folder")?,
    };
    let now = Timestamp::now();
    remove_old_folders(&out_root);
    let out = out_root.join(now.strftime("%Y%m%dT%H%M%S%.3fZ").to_string());
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let gathered = crate::backend::gather_backup(backend, &out)?;
    let result = assemble(backend, gathered, &out, now)?;
    serde_json::to_string(&result).map_err(|e| format!("cannot encode the backup result: {e}"))
}

/// The result from what was gathered: the policy copied into `out`, the dump packed there.
pub fn assemble(
    backend: &Backend,
    gathered: Gathered,
    out: &Path,
    now: Timestamp,
) -> Result<BackupResult, String> {
    let mut errors = Vec::new();
    let applied_policy = match &gathered.applied_policy {
        Some(source) => {
            let name = source
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "Applied-SynchronizationPolicy.json".into());
            let copy = out.join(&name);
            if source != &copy {
                std::fs::copy(source, &copy)
                    .map_err(|e| format!("cannot copy {}: {e}", source.display()))?;
            }
            Some(describe(&copy, name)?)
        }
        None => None,
    };
    let server_configuration = match gathered.dump_dir {
        Ok(dir) => {
            let files = tar::files_under(&dir)?;
            let archive = out.join(DUMP_ARCHIVE);
            let mut file = std::io::BufWriter::new(
                std::fs::File::create(&archive)
                    .map_err(|e| format!("cannot create {}: {e}", archive.display()))?,
            );
            tar::write(&mut file, &files, now.as_second().max(0) as u64)?;
            drop(file);
            if dir.starts_with(out) {
                let _ = std::fs::remove_dir_all(&dir);
            }
            let source = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Some(describe(&archive, source)?)
        }
        Err(message) => {
            errors.push(ProbeError {
                probe: "server_configuration".into(),
                message,
            });
            None
        }
    };
    let configuration = match gathered.configuration {
        Ok(c) => Some(c),
        Err(message) => {
            errors.push(ProbeError {
                probe: "configuration".into(),
                message,
            });
            None
        }
    };
    Ok(BackupResult {
        schema_version: BACKUP_SCHEMA_VERSION,
        kind: BACKUP_KIND.into(),
        backend: match backend {
            Backend::Windows => "windows",
            Backend::Lab(_) => "lab",
        }
        .into(),
        host_name: gathered.host_name,
        collected_at: now.round(jiff::Unit::Second).unwrap_or(now).to_string(),
        engine_version: gathered.engine_version,
        applied_policy,
        server_configuration,
        configuration,
        errors,
    })
}

/// Size and SHA-256 of a file in the out folder.
fn describe(path: &Path, source_name: String) -> Result<BackupFile, String> {
    let (sha256, size) = crate::digest::sha256_file(path)?;
    Ok(BackupFile {
        path: path.to_string_lossy().into_owned(),
        source_name,
        size,
        sha256,
    })
}

/// Removes backup folders under `root` last changed more than an hour ago.
fn remove_old_folders(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    let limit = std::time::Duration::from_secs(KEEP_OLD_FOLDERS_SECS);
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > limit);
        if old && entry.path().is_dir() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
