//! `ecfleet backup`: phase 2 of the upgrade on its own, for every selected host, nightly and
//! independent of upgrades (docs/backup.md). On the fleet engine, per host: the agent's
//! `backup` step gathers the configuration on the host, the controller brings the files back
//! through the session (never a write from the host to the share: over WinRM that is a second
//! hop), checks each against the SHA-256 the host computed, and stores them on the share
//! ([`store`]): written atomically, re-read and verified, never overwritten. Then the
//! configuration is compared with the host's previous backup ([`drift`]) and retention is
//! applied. `ecfleet run` calls [`back_up_host`] for its pre-upgrade backup.

pub mod drift;
pub mod reuse;
pub mod spool;
pub mod store;
pub mod verify;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ecfleet_proto::backup::{BackupFile, BackupResult};
use ecfleet_proto::step::Step;
use jiff::civil::Date;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::digest::hex;
use crate::engine::{self, EngineSettings, EventSink, FailureBudget, Shutdown, StepContext};
use crate::error::{ErrorKind, HostError, Phase};
use crate::inventory::{Host, Inventory, Role};
use crate::session::{Connector, HostSession};

pub use drift::Drift;
pub use store::{HostBackups, Retention, Tag};

/// Version of the backup report (`ecfleet backup --format json`).
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// The largest wizard policy file fetched from a host.
const MAX_POLICY_BYTES: u64 = 64 << 20;
/// The largest configuration file (`miiserver.exe.config`, `PersistedState.xml`, the proxy
/// section) fetched from a host.
const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// The largest server-configuration archive fetched from a host.
const MAX_DUMP_BYTES: u64 = 1 << 30;

pub struct BackupSettings {
    pub tag: Tag,
    pub share: PathBuf,
    pub retention: Retention,
    pub concurrency: usize,
    /// Everything one host's backup may take (gather, fetch, store).
    pub host_deadline: Duration,
    /// The day the backups are named after (the controller's, UTC).
    pub date: Date,
    pub run_id: Option<String>,
}

/// One host's line in the report.
#[derive(Debug, Clone, Serialize)]
pub struct HostBackup {
    pub tenant: String,
    pub host: String,
    pub role: Role,
    pub address: String,
    /// Backed up and verified on the share.
    pub ok: bool,
    pub error: Option<String>,
    pub error_kind: Option<ErrorKind>,
    pub duration_ms: u64,
    /// The backup's name (`EntraConnect-config-2026-12-02-nightly`), its folder on the share.
    pub backup: Option<String>,
    pub path: Option<String>,
    pub files: Vec<store::ManifestFile>,
    pub engine_version: Option<String>,
    pub warnings: Vec<String>,
    /// What changed since the previous backup (null for a host's first backup).
    pub drift: Option<Drift>,
    /// Older nightly backups that retention removed.
    pub removed: Vec<String>,
    /// Bytes of this backup's files that are new content on the share (fetched from the host,
    /// made on the controller, or copied on the share).
    pub new_bytes: u64,
    /// Bytes of this backup's files that are an earlier backup's content under a second name:
    /// unchanged since the host's newest backup, neither fetched nor stored again.
    pub reused_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupSummary {
    pub hosts: usize,
    pub backed_up: usize,
    pub failed: usize,
    /// Hosts whose configuration changed since their previous backup.
    pub drifted: usize,
    /// The hosts' `new_bytes` and `reused_bytes`, added up.
    pub new_bytes: u64,
    pub reused_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub schema_version: u32,
    pub kind: String,
    pub generated_at: String,
    pub inventory: String,
    pub share: String,
    pub tag: Tag,
    pub retention: Retention,
    pub summary: BackupSummary,
    pub hosts: Vec<HostBackup>,
}

impl BackupReport {
    /// 0 every host backed up; 2 some could not be (docs/exit-codes.md).
    pub fn exit_code(&self) -> u8 {
        if self.summary.failed > 0 {
            crate::exit::INCOMPLETE
        } else {
            crate::exit::OK
        }
    }
}

/// A backup that was stored, and what it changed.
pub struct Done {
    pub stored: store::Stored,
    pub drift: Option<Drift>,
    pub removed: Vec<String>,
}

/// Backs up the given hosts on the fleet engine.
pub async fn run(
    inventory: &Inventory,
    hosts: &[&Host],
    settings: &BackupSettings,
    connector: &Connector,
    shutdown: Shutdown,
    events: &EventSink,
) -> BackupReport {
    let engine_settings = EngineSettings {
        concurrency: settings.concurrency,
        host_deadline: settings.host_deadline,
        failure_budget: FailureBudget::Unlimited,
    };
    let units = engine::one_wave(hosts.iter().copied(), |h| h.name.clone());
    let outcomes = engine::run(units, &engine_settings, shutdown, events, |host, ctx| {
        back_up_host(host, connector, settings, ctx)
    })
    .await;
    let rows: Vec<HostBackup> = hosts
        .iter()
        .zip(outcomes)
        .map(|(host, o)| row(host, o.result, o.duration, &settings.share))
        .collect();
    let backed_up = rows.iter().filter(|r| r.ok).count();
    BackupReport {
        schema_version: REPORT_SCHEMA_VERSION,
        kind: "ecfleet-backup-report".into(),
        generated_at: {
            let now = jiff::Timestamp::now();
            now.round(jiff::Unit::Second).unwrap_or(now).to_string()
        },
        inventory: inventory.path.display().to_string(),
        share: settings.share.display().to_string(),
        tag: settings.tag,
        retention: settings.retention,
        summary: BackupSummary {
            hosts: rows.len(),
            backed_up,
            failed: rows.len() - backed_up,
            drifted: rows
                .iter()
                // The upgrade's own configuration version is not drift.
                .filter(|r| r.drift.as_ref().is_some_and(|d| d.changes_configuration()))
                .count(),
            new_bytes: rows.iter().map(|r| r.new_bytes).sum(),
            reused_bytes: rows.iter().map(|r| r.reused_bytes).sum(),
        },
        hosts: rows,
    }
}

fn row(host: &Host, outcome: Result<Done, HostError>, took: Duration, share: &Path) -> HostBackup {
    let mut r = HostBackup {
        tenant: host.tenant.clone(),
        host: host.name.clone(),
        role: host.role,
        address: host.endpoint(),
        ok: false,
        error: None,
        error_kind: None,
        duration_ms: took.as_millis() as u64,
        backup: None,
        path: None,
        files: Vec::new(),
        engine_version: None,
        warnings: Vec::new(),
        drift: None,
        removed: Vec::new(),
        new_bytes: 0,
        reused_bytes: 0,
    };
    match outcome {
        Err(e) => {
            r.error_kind = Some(e.kind);
            r.error = Some(e.message);
        }
        Ok(done) => {
            let m = done.stored.manifest;
            r.ok = true;
            r.path = Some(relative_to(&done.stored.dir, share));
            r.backup = Some(m.name);
            for f in &m.files {
                match &f.reused {
                    Some(reuse::Reused {
                        by: reuse::ReusedBy::HardLink,
                        ..
                    }) => r.reused_bytes += f.size,
                    _ => r.new_bytes += f.size,
                }
            }
            r.files = m.files;
            r.engine_version = m.engine_version;
            r.warnings = m.warnings;
            r.drift = done.drift;
            r.removed = done.removed;
        }
    }
    r
}

fn relative_to(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn backup_error(kind: ErrorKind, message: impl Into<String>) -> HostError {
    HostError::new(kind, Phase::Backup, message)
}

/// One host: gather on the host, fetch, verify, store, compare, prune.
pub async fn back_up_host(
    host: &Host,
    connector: &Connector,
    settings: &BackupSettings,
    ctx: StepContext,
) -> Result<Done, HostError> {
    let mut session = HostSession::open(host, connector, ctx.deadline).await?;
    let done = back_up_in_session(&mut session, host, settings, ctx.deadline).await;
    session.close().await;
    done
}

/// [`back_up_host`] over a session that is already open (`ecfleet run`'s phase 2), by
/// `deadline`.
pub async fn back_up_in_session(
    session: &mut HostSession<'_>,
    host: &Host,
    settings: &BackupSettings,
    deadline: tokio::time::Instant,
) -> Result<Done, HostError> {
    let backups = store::HostBackups::new(&settings.share, &host.tenant, &host.name);
    let folder = backups
        .folder()
        .map_err(|e| backup_error(ErrorKind::Share, e.to_string()))?;
    // The newest backup: what drift is judged against, and what the host need not send again.
    let previous = on_share(deadline, move || backups.newest()).await?;
    let reusable = reuse::Reusable::of(previous.as_ref());
    let (result, files) = gather_and_fetch(session, &folder, &reusable, deadline).await?;
    let share = settings.share.clone();
    let (tenant, name) = (host.tenant.clone(), host.name.clone());
    let (tag, date, run_id, retention) = (
        settings.tag,
        settings.date,
        settings.run_id.clone(),
        settings.retention,
    );
    // The share is a file system (perhaps a slow mount): its work runs off the async threads.
    on_share(deadline, move || {
        store_and_compare(
            &share, &tenant, &name, tag, date, run_id, retention, previous, result, files,
        )
    })
    .await?
    .map_err(|e| backup_error(ErrorKind::Share, e.to_string()))
}

/// Runs `work` on the share (perhaps a slow mount) off the async threads, by `deadline`.
async fn on_share<T: Send + 'static>(
    deadline: tokio::time::Instant,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HostError> {
    match tokio::time::timeout_at(deadline, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(e)) => Err(backup_error(
            ErrorKind::Share,
            format!("storing the backup: {e}"),
        )),
        Err(_) => Err(backup_error(
            ErrorKind::Timeout,
            "the share did not take the backup before the host's deadline",
        )),
    }
}

/// The largest file of `role` fetched from a host.
fn largest(role: store::Role) -> u64 {
    match role {
        store::Role::ServerConfiguration => MAX_DUMP_BYTES,
        store::Role::AppliedPolicy | store::Role::MigratedPolicy | store::Role::Configuration => {
            MAX_POLICY_BYTES
        }
        store::Role::PersistedState | store::Role::EngineConfig | store::Role::ProxyConfig => {
            MAX_CONFIG_BYTES
        }
    }
}

/// The agent's `backup` step and its files, each checked against the host's SHA-256.
async fn gather_and_fetch(
    session: &mut HostSession<'_>,
    folder: &Path,
    reusable: &reuse::Reusable,
    deadline: tokio::time::Instant,
) -> Result<(BackupResult, Vec<store::NewFile>), HostError> {
    let result: BackupResult = session.agent(&Step::Backup { out_dir: None }).await?;
    let failed = |part: &str| {
        result
            .errors
            .iter()
            .find(|e| e.probe == part)
            .map(|e| crate::checks::shown(&e.message))
            .unwrap_or_else(|| "no reason given".into())
    };
    let Some(dump) = &result.server_configuration else {
        return Err(backup_error(
            ErrorKind::Agent,
            format!(
                "the configuration export failed on the host: {}",
                failed("server_configuration")
            ),
        ));
    };
    if result.configuration.is_none() {
        return Err(backup_error(
            ErrorKind::Agent,
            format!(
                "the configuration could not be read on the host: {}",
                failed("configuration")
            ),
        ));
    }
    let wanted = [
        (Some(dump), store::Role::ServerConfiguration),
        (result.applied_policy.as_ref(), store::Role::AppliedPolicy),
        (result.migrated_policy.as_ref(), store::Role::MigratedPolicy),
        (result.persisted_state.as_ref(), store::Role::PersistedState),
        (result.engine_config.as_ref(), store::Role::EngineConfig),
        (result.proxy_config.as_ref(), store::Role::ProxyConfig),
    ];
    let wanted: Vec<(&BackupFile, store::Role)> = wanted
        .into_iter()
        .filter_map(|(file, role)| file.map(|f| (f, role)))
        .collect();
    // What the newest backup already has, taken on the share in one go (one hand-off to a
    // blocking thread per host, not one per file).
    let candidates: Vec<Option<(reuse::Candidate, u64, String)>> = wanted
        .iter()
        .map(|(file, role)| {
            reusable
                .find(&file.sha256, file.size)
                .filter(|_| file.size <= largest(*role))
                .map(|c| (c.clone(), file.size, file.sha256.clone()))
        })
        .collect();
    let taken = if candidates.iter().any(Option::is_some) {
        let dir = folder.to_path_buf();
        on_share(deadline, move || {
            candidates
                .into_iter()
                .map(|c| {
                    c.and_then(|(candidate, size, sha)| reuse::take(&dir, &candidate, size, &sha))
                })
                .collect::<Vec<_>>()
        })
        .await?
    } else {
        wanted.iter().map(|_| None).collect()
    };
    let mut files = Vec::new();
    for ((file, role), taken) in wanted.into_iter().zip(taken) {
        files.push(match taken {
            Some((spooled, reused)) => store::NewFile {
                role,
                sha256: spooled.sha256.clone(),
                content: store::Content::Spooled(spooled),
                source_name: Some(file.source_name.clone()),
                reused: Some(reused),
            },
            None => fetch(session, file, role, largest(role), folder).await?,
        });
    }
    Ok((result, files))
}

/// Fetches `file` into a temporary file in `dir` (the host's backup folder on the share),
/// hashed on the way and never past the size the host declared, and checks it against the
/// host's SHA-256. The store links it into place and verifies it from disk.
async fn fetch(
    session: &HostSession<'_>,
    file: &BackupFile,
    role: store::Role,
    max: u64,
    dir: &Path,
) -> Result<store::NewFile, HostError> {
    let share_failed = |e: std::io::Error| {
        backup_error(
            ErrorKind::Share,
            format!("receiving into {}: {e}", dir.display()),
        )
    };
    let mut spool = spool::Spool::create(dir, file.size.min(max)).map_err(share_failed)?;
    session.get(&file.path, max, &mut spool).await?;
    let got = spool.finish().map_err(share_failed)?;
    if !got.sha256.eq_ignore_ascii_case(&file.sha256) || got.size != file.size {
        return Err(backup_error(
            ErrorKind::Protocol,
            format!(
                "{} arrived as {} bytes with SHA-256 {}; the host reported {} bytes, {}",
                crate::checks::shown(&file.path),
                got.size,
                got.sha256,
                file.size,
                crate::checks::shown(&file.sha256)
            ),
        ));
    }
    Ok(store::NewFile {
        role,
        sha256: got.sha256.clone(),
        content: store::Content::Spooled(got),
        source_name: Some(file.source_name.clone()),
        reused: None,
    })
}

#[allow(clippy::too_many_arguments)]
fn store_and_compare(
    share: &Path,
    tenant: &str,
    host: &str,
    tag: Tag,
    date: Date,
    run_id: Option<String>,
    retention: Retention,
    previous: Option<store::Stored>,
    result: BackupResult,
    mut files: Vec<store::NewFile>,
) -> Result<Done, crate::share::ShareError> {
    let backups = HostBackups::new(share, tenant, host);
    let reading = serde_json::to_vec_pretty(&result).map_err(|e| crate::share::ShareError {
        path: backups.dir.clone(),
        source: std::io::Error::other(e),
    })?;
    files.push(store::NewFile {
        role: store::Role::Configuration,
        sha256: hex(&Sha256::digest(&reading)),
        content: store::Content::Bytes(reading),
        source_name: None,
        reused: None,
    });
    let drift = previous.as_ref().and_then(|p| {
        let before = read_configuration(p)?;
        let after = result.configuration.as_ref()?;
        Some(drift::diff(&p.manifest.name, &before, after))
    });
    let judged = judge_importable(&result, previous.as_ref(), drift.as_ref());
    let stored = backups.store(
        store::Meta {
            tenant,
            host,
            tag,
            date,
            collected_at: result.collected_at.clone(),
            engine_version: result.engine_version.clone(),
            run_id,
            warnings: judged.warnings,
            export_method: result.export_method.clone(),
            applied_policy_created: result.applied_policy_created.clone(),
            importable: judged.importable,
        },
        files,
    )?;
    let removed = backups.prune(retention, date);
    Ok(Done {
        stored,
        drift,
        removed,
    })
}

/// What a new server's wizard can import from a backup, and what the backup should say.
struct Importable {
    importable: Option<String>,
    warnings: Vec<String>,
}

/// The wizard imports `MigratedPolicy.json` (with its export folder), or an applied policy
/// JSON; an applied JSON older than a configuration change the host or the previous backup
/// shows misses that change (Microsoft's import/export doc: only the wizard's own changes are
/// in it; docs/design/DOMAIN.md §8b S43).
fn judge_importable(
    result: &BackupResult,
    previous: Option<&store::Stored>,
    drift: Option<&Drift>,
) -> Importable {
    let mut warnings = Vec::new();
    let parse = |t: &Option<String>| t.as_deref().and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let created = parse(&result.applied_policy_created);
    // The newest change seen: the host's own word, and a change since the previous backup.
    let mut changes: Vec<(jiff::Timestamp, String)> = Vec::new();
    if let Some(at) = parse(&result.configuration_changed_at) {
        changes.push((at, format!("the host shows a configuration change at {at}")));
    }
    if let (Some(p), Some(d)) = (previous, drift)
        && d.changes_configuration()
        && let Ok(at) = p.manifest.collected_at.parse::<jiff::Timestamp>()
    {
        changes.push((
            at,
            format!(
                "the configuration changed since the backup {} of {at}",
                p.manifest.name
            ),
        ));
    }
    let newest_change = changes.into_iter().max_by_key(|(at, _)| *at);
    let applied_fresh = match (&result.applied_policy, created, &newest_change) {
        (None, _, _) => false,
        (Some(_), Some(c), Some((at, why))) if c < *at => {
            warnings.push(format!(
                "the wizard's Applied-SynchronizationPolicy JSON was written {c}, before a later change ({why}): it misses that change; MigratedPolicy.json and the server-configuration dump have it"
            ));
            false
        }
        (Some(_), Some(_), _) => true,
        (Some(_), None, Some(_)) => {
            warnings.push("the wizard's Applied-SynchronizationPolicy JSON has no creation time (policyMetadata): whether it has the latest changes is unknown".into());
            false
        }
        (Some(_), None, None) => true,
    };
    if result.applied_policy.is_none() {
        warnings
            .push("the host has no Applied-SynchronizationPolicy-*.json from the wizard".into());
    }
    if let Some(method) = &result.export_method
        && !ecfleet_proto::backup::by_migrate_settings(method)
    {
        warnings.push(format!(
            "the migration export was not made by Microsoft's MigrateSettings.ps1 but by {}",
            crate::checks::shown(method)
        ));
    }
    let importable = if result.migrated_policy.is_some() {
        Some(
            "MigratedPolicy.json, with the export folder in the .server-configuration.tar"
                .to_string(),
        )
    } else {
        let why = result
            .errors
            .iter()
            .find(|e| e.probe == "migrated_policy")
            .map(|e| crate::checks::shown(&e.message))
            .unwrap_or_else(|| "not made".into());
        warnings.push(format!("no MigratedPolicy.json: {why}"));
        applied_fresh.then(|| {
            format!(
                "the applied policy JSON {}",
                result
                    .applied_policy
                    .as_ref()
                    .map(|f| crate::checks::shown(&f.source_name))
                    .unwrap_or_default()
            )
        })
    };
    if importable.is_none() {
        warnings.push("nothing in this backup can be imported by the wizard on a new server: rebuild by hand from the server-configuration dump".into());
    }
    Importable {
        importable,
        warnings,
    }
}

/// The configuration a stored backup recorded.
pub fn read_configuration(stored: &store::Stored) -> Option<ecfleet_proto::backup::Configuration> {
    let path = stored.path_of(store::Role::Configuration)?;
    let bytes = crate::fsread::read_regular(&path, MAX_POLICY_BYTES).ok()?;
    let result: BackupResult = serde_json::from_slice(&bytes).ok()?;
    result.configuration
}
