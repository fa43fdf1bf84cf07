//! The `backup` step: the host's sync-engine configuration gathered into one folder for the
//! controller to fetch (it never writes to a share itself: over WinRM that would be a second
//! hop). The backend ([`crate::backend::gather_backup`]) makes the migration export folder as
//! Microsoft's `MigrateSettings.ps1` does (the `Get-ADSyncServerConfiguration` dump,
//! `PersistedState.xml`, `MigratedPolicy.json`), finds the wizard's newest
//! `Applied-SynchronizationPolicy-*.json` and the engine's and proxy's configuration files,
//! and reads the configuration; this module copies the files into the out folder, packs the
//! export folder's dump as one tar archive (the same bytes for the same dump), reads the applied policy's creation time, hashes
//! everything and prints an [`ecfleet_proto::backup::BackupResult`].

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
    /// The migration export folder (the dump, and `PersistedState.xml` and
    /// `MigratedPolicy.json` when they could be made), or why there is none.
    pub dump_dir: Result<PathBuf, String>,
    /// How the export folder was made (`MigrateSettings.ps1 …`, or the agent's own steps and
    /// why).
    pub export_method: Option<String>,
    /// Why `MigratedPolicy.json` or `PersistedState.xml` is missing from the folder.
    pub export_problem: Option<String>,
    /// The newest configuration change the host shows (RFC 3339 UTC).
    pub configuration_changed_at: Option<String>,
    /// `miiserver.exe.config`.
    pub engine_config: Option<PathBuf>,
    /// A file holding `machine.config`'s `<system.net>` section.
    pub proxy_config: Option<PathBuf>,
    pub configuration: Result<Configuration, String>,
}

/// The archive's name in the out folder.
pub const DUMP_ARCHIVE: &str = "server-configuration.tar";
/// The file the wizard's "Import synchronization settings" takes, in the export folder.
pub const MIGRATED_POLICY: &str = "MigratedPolicy.json";
/// The wizard's persisted state, copied into the export folder.
pub const PERSISTED_STATE: &str = "PersistedState.xml";

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
    // The process id too: two backups of one host at once (two controllers) never share a folder.
    let out = out_root.join(format!(
        "{}-{}",
        now.strftime("%Y%m%dT%H%M%S%.3fZ"),
        std::process::id()
    ));
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let gathered = crate::backend::gather_backup(backend, &out)?;
    let result = assemble(backend, gathered, &out, now)?;
    serde_json::to_string(&result).map_err(|e| format!("cannot encode the backup result: {e}"))
}

/// The result from what was gathered: the policy copied into `out`, the export folder packed
/// there (its two small files also copied on their own), the configuration files copied.
pub fn assemble(
    backend: &Backend,
    gathered: Gathered,
    out: &Path,
    now: Timestamp,
) -> Result<BackupResult, String> {
    let mut errors = Vec::new();
    let applied_policy = match &gathered.applied_policy {
        Some(source) => Some(copy_in(source, out, "Applied-SynchronizationPolicy.json")?),
        None => None,
    };
    let applied_policy_created = applied_policy
        .as_ref()
        .and_then(|f| policy_created(Path::new(&f.path)));
    let (mut migrated_policy, mut persisted_state) = (None, None);
    let server_configuration = match gathered.dump_dir {
        Ok(dir) => {
            for (name, slot) in [
                (MIGRATED_POLICY, &mut migrated_policy),
                (PERSISTED_STATE, &mut persisted_state),
            ] {
                let file = dir.join(name);
                if file.is_file() {
                    *slot = Some(copy_in(&file, out, name)?);
                }
            }
            // The dump alone: the two small files are kept on their own, and
            // `MigratedPolicy.json` is new every night (its `timeCreated`), so an archive
            // holding it would never be the same bytes twice (docs/backup.md, Deduplication).
            let files: Vec<_> = tar::files_under(&dir)?
                .into_iter()
                .filter(|(name, _)| name != MIGRATED_POLICY && name != PERSISTED_STATE)
                .collect();
            let archive = out.join(DUMP_ARCHIVE);
            let mut file = std::io::BufWriter::new(
                std::fs::File::create(&archive)
                    .map_err(|e| format!("cannot create {}: {e}", archive.display()))?,
            );
            tar::write(&mut file, &files, tar::FIXED_MTIME)?;
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
    if server_configuration.is_some() && migrated_policy.is_none() {
        errors.push(ProbeError {
            probe: "migrated_policy".into(),
            message: gathered
                .export_problem
                .clone()
                .unwrap_or_else(|| format!("the export folder has no {MIGRATED_POLICY}")),
        });
    }
    // Copies for a rebuild by hand: one that cannot be read is said, not fatal.
    let mut optional = |probe: &str, source: &Option<PathBuf>, fallback: &str| {
        let source = source.as_ref()?;
        copy_in(source, out, fallback)
            .map_err(|message| {
                errors.push(ProbeError {
                    probe: probe.into(),
                    message,
                })
            })
            .ok()
    };
    let engine_config = optional(
        "engine_config",
        &gathered.engine_config,
        "miiserver.exe.config",
    );
    let proxy_config = optional(
        "proxy_config",
        &gathered.proxy_config,
        "machine.config-system.net.xml",
    );
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
        applied_policy_created,
        server_configuration,
        migrated_policy,
        persisted_state,
        export_method: gathered.export_method,
        configuration_changed_at: gathered.configuration_changed_at,
        engine_config,
        proxy_config,
        configuration,
        errors,
    })
}

/// `source` copied into `out` under its own name (else `fallback`), described.
fn copy_in(source: &Path, out: &Path, fallback: &str) -> Result<BackupFile, String> {
    let name = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| fallback.into());
    let copy = out.join(&name);
    if source != copy {
        std::fs::copy(source, &copy)
            .map_err(|e| format!("cannot copy {}: {e}", source.display()))?;
    }
    describe(&copy, name)
}

/// The wizard's `policyMetadata.timeCreated` in a policy file (UTF-8 or, as Windows
/// PowerShell's `Out-File` writes, UTF-16 with a byte-order mark), as RFC 3339 UTC.
pub fn policy_created(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let text = decode_text(&bytes)?;
    let doc: serde_json::Value = serde_json::from_str(text.trim_start_matches('\u{feff}')).ok()?;
    let created = doc["policyMetadata"]["timeCreated"].as_str()?;
    parse_time(created)
}

/// UTF-8, or UTF-16 (LE or BE) with its byte-order mark.
fn decode_text(bytes: &[u8]) -> Option<String> {
    let utf16 = |le: bool| -> Option<String> {
        let units: Vec<u16> = bytes[2..]
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16(&units).ok()
    };
    match bytes {
        [0xFF, 0xFE, ..] => utf16(true),
        [0xFE, 0xFF, ..] => utf16(false),
        _ => String::from_utf8(bytes.to_vec()).ok(),
    }
}

/// A time as the wizard and `MigrateSettings.ps1` write it (`2026-10-02 08:15:12Z`, the
/// invariant "u" format) or as RFC 3339, as RFC 3339 UTC.
fn parse_time(text: &str) -> Option<String> {
    let text = text.trim();
    let t: Timestamp = text
        .parse()
        .ok()
        .or_else(|| text.replacen(' ', "T", 1).parse().ok())?;
    Some(t.round(jiff::Unit::Second).unwrap_or(t).to_string())
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
