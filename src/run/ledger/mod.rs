//! The run's ledger on the share, written as the run goes (docs/run.md):
//!
//! ```text
//! runs/<run-id>/run.json                   who ran what: plan and inventory hashes, arguments, start
//! runs/<run-id>/lock/<generation>.json     which controller drives the run (crate::lock)
//! runs/<run-id>/events.jsonl               append-only, one line per phase start and end
//! runs/<run-id>/hosts/<tenant>/<host>.json each host's record, replaced atomically
//! runs/<run-id>/summary.json               at the end
//! ```
//!
//! The journal's lines and the hosts' records go to disk through one writer thread that
//! commits in groups ([`writer`]).

mod writer;

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::lock::{self, Hold, HoldError, Holder};
use crate::share::{ShareError, replace_file, write_new_file};

/// `run.json`'s field with the SHA-256 of the ledger's `plan.json`.
pub const PLAN_SHA256_FIELD: &str = "ledger_plan_sha256";

pub struct Ledger {
    pub dir: PathBuf,
    /// Puts the journal's lines and the hosts' records on the share.
    writer: Arc<writer::Writer>,
    /// Writes to the ledger that failed (the run goes on; its report says so).
    errors: Arc<Mutex<Vec<String>>>,
    /// This controller's hold of the run, let go by [`Ledger::finish`].
    hold: Hold,
    /// Who drives the run now: also the holder of each host's hold.
    pub holder: Holder,
}

/// Who this controller is, for its holds: its host name and user.
#[derive(Debug, Clone, Default)]
pub struct Controller {
    pub host_name: Option<String>,
    pub user: Option<String>,
}

impl Controller {
    /// Its name in holds: the host name, or `unknown`.
    pub fn name(&self) -> &str {
        self.host_name.as_deref().unwrap_or("unknown")
    }
}

fn share_error(path: &Path) -> impl Fn(std::io::Error) -> ShareError + '_ {
    move |source| ShareError {
        path: path.to_path_buf(),
        source,
    }
}

/// A run id: the UTC start to the second and four hex digits, e.g. `20261202T064700Z-3fa1`.
pub fn new_run_id() -> String {
    let now = jiff::Timestamp::now();
    let noise = (now.subsec_nanosecond() as u32 ^ std::process::id().rotate_left(7)) & 0xffff;
    format!("{}-{noise:04x}", now.strftime("%Y%m%dT%H%M%SZ"))
}

impl Ledger {
    /// Creates `runs/<run_id>/` (it must not exist), takes its lock and writes `run.json` and
    /// the plan being run (`plan.json`, so that a resumed run never depends on the plan file).
    pub fn create(
        share: &Path,
        run_id: &str,
        header: &serde_json::Value,
        plan: &impl Serialize,
        who: &Controller,
    ) -> Result<Ledger, ShareError> {
        let runs = crate::share::dirs_below(share, &["runs"])?;
        let dir = runs.join(run_id);
        fs::create_dir(&dir).map_err(share_error(&dir))?;
        let holder = Holder::me(run_id, Some(who.name()), who.user.as_deref());
        let hold = lock::acquire(&dir, &["lock"], &holder, |_| false).map_err(|e| match e {
            HoldError::Share(e) => e,
            other => ShareError {
                path: dir.join("lock"),
                source: std::io::Error::other(other.to_string()),
            },
        })?;
        let plan = serde_json::to_vec_pretty(plan).map_err(|e| ShareError {
            path: dir.join("plan.json"),
            source: std::io::Error::other(e),
        })?;
        // run.json names the very plan.json beside it: a resume checks it against this.
        let mut header = header.clone();
        if let Some(h) = header.as_object_mut() {
            h.insert(
                PLAN_SHA256_FIELD.into(),
                crate::digest::sha256_hex(&plan).into(),
            );
        }
        let json = serde_json::to_vec_pretty(&header).map_err(|e| ShareError {
            path: dir.join("run.json"),
            source: std::io::Error::other(e),
        })?;
        write_new_file(&dir.join("run.json"), &json)?;
        write_new_file(&dir.join("plan.json"), &plan)?;
        let events_path = dir.join("events.jsonl");
        Ledger::open(dir, true, hold, holder).map_err(share_error(&events_path))
    }

    /// The ledger of run folder `dir`, appending to its journal (`new`: which must not exist),
    /// with its writer started.
    fn open(dir: PathBuf, new: bool, hold: Hold, holder: Holder) -> std::io::Result<Ledger> {
        let events = OpenOptions::new()
            .create(true)
            .create_new(new)
            .append(true)
            .open(dir.join("events.jsonl"))?;
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let writer = writer::Writer::start(dir.clone(), events, errors.clone())?;
        Ok(Ledger {
            dir,
            writer: Arc::new(writer),
            errors,
            hold,
            holder,
        })
    }

    /// Opens an existing run to carry it on (`--resume`): `latest` is the newest run on the
    /// share. Its hold is taken over only when the controller that held it is gone (this
    /// machine: its process no longer exists; another: its heartbeat stopped), and atomically:
    /// of two `--resume` started together exactly one carries the run on, the other is told
    /// which controller does.
    ///
    /// A merged night (`ecfleet merge run`) is a report, not a run: `latest` passes over it,
    /// and naming it is refused.
    pub fn resume(share: &Path, which: &str, who: &Controller) -> Result<Ledger, String> {
        let dir = find_where(share, which, |header| header.get("merged_from").is_none())?;
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if header_of(&dir).get("merged_from").is_some() {
            return Err(format!(
                "run {id} is the merge of its shards' runs (ecfleet merge run), not a run to carry on: resume each shard's run by its id"
            ));
        }
        let holder = Holder::me(&id, Some(who.name()), who.user.as_deref());
        let hold = lock::acquire(&dir, &["lock"], &holder, |_| true).map_err(|e| match e {
            HoldError::Held { holder, .. } => format!(
                "run {id} is being driven by another controller: {}; wait for it or stop it first",
                holder.describe()
            ),
            other => format!("run {id}: {other}"),
        })?;
        let events_path = dir.join("events.jsonl");
        Ledger::open(dir, false, hold, holder)
            .map_err(|e| format!("cannot append to {}: {e}", events_path.display()))
    }

    /// The run's id (its folder's name).
    pub fn run_id(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// A JSON file of the run (`run.json`, `plan.json`, a host's record), if it is there.
    pub fn read(&self, relative: &str) -> Option<Vec<u8>> {
        crate::fsread::read_regular(&self.dir.join(relative), 256 << 20).ok()
    }

    /// Appends one event as a line (on disk within moments; [`Ledger::flush`] waits for it).
    pub fn event(&self, event: &impl Serialize) -> Result<(), ShareError> {
        let line = serde_json::to_vec(event).map_err(|e| ShareError {
            path: self.dir.join("events.jsonl"),
            source: std::io::Error::other(e),
        })?;
        self.writer.line(line);
        Ok(())
    }

    /// Waits, blocking, until every line and record given so far is on disk (or failed: see
    /// [`Ledger::errors`]): for the run's end. Whether the share answered within a minute.
    pub fn flush(&self) -> bool {
        self.writer.flush()
    }

    /// A failed write to the ledger, for the run's report.
    pub fn error(&self, message: String) {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(message);
    }

    /// The writes to the ledger that failed, once everything given so far was written.
    pub fn errors(&self) -> Vec<String> {
        let _ = self.flush();
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The journal as a reporter of the engine's events: each host's phase starts, ends and
    /// steps, and a detach (with the command that carries the run on), one line each, synced
    /// in groups within moments (docs/run.md, "The ledger on the share").
    pub fn journal(&self) -> crate::engine::events::Journal {
        let writer = self.writer.clone();
        let run_id = self.run_id();
        Arc::new(move |event: &crate::engine::Event| {
            if let Some(line) = journal_line(event, &run_id) {
                // A `serde_json::Value` always serialises.
                writer.line(serde_json::to_vec(&line).unwrap_or_default());
            }
        })
    }

    /// Replaces `hosts/<tenant>/<host>.json` atomically, within moments (a newer record given
    /// meanwhile replaces this one unwritten; [`Ledger::durable`] waits for it).
    pub fn host(
        &self,
        tenant: &str,
        host: &str,
        record: &impl Serialize,
    ) -> Result<(), ShareError> {
        let json = serde_json::to_vec_pretty(record).map_err(|e| ShareError {
            path: self
                .dir
                .join("hosts")
                .join(tenant)
                .join(format!("{host}.json")),
            source: std::io::Error::other(e),
        })?;
        self.writer.record(tenant, host, json);
        Ok(())
    }

    /// Whether `host`'s newest record and the journal's lines given so far are on disk,
    /// waiting without holding up other hosts (at most a minute; why not is in
    /// [`Ledger::errors`]).
    pub async fn durable(&self, tenant: &str, host: &str) -> bool {
        self.writer.durable(tenant, host).await
    }

    /// Writes `summary.json` (after everything else) and lets go of the run's hold. A share
    /// that did not take the run's writes keeps the run held (and without a summary), so that
    /// nothing can take it over while its writes may still land.
    pub fn finish(self, summary: &impl Serialize) -> Result<(), ShareError> {
        self.flushed()?;
        let path = self.dir.join("summary.json");
        let json = serde_json::to_vec_pretty(summary).map_err(|e| ShareError {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        replace_file(&path, &json)?;
        self.hold.release()
    }

    /// Lets go of the run's hold without a summary: the run was interrupted and `--resume`
    /// carries it on (the hosts it left handed off keep their own holds).
    pub fn let_go(self) -> Result<(), ShareError> {
        self.flushed()?;
        self.hold.release()
    }

    /// [`Ledger::flush`], failing when the share did not confirm it.
    fn flushed(&self) -> Result<(), ShareError> {
        if self.flush() {
            return Ok(());
        }
        Err(ShareError {
            path: self.dir.clone(),
            source: std::io::Error::other(
                "the share did not take the run's last writes; the run stays held: check the share, then ecfleet run --resume",
            ),
        })
    }
}

/// The journal's line for an engine event (`None`: the journal does not keep it). The format
/// is the ledger's contract: `{at, tenant, host, phase, event, outcome, detail}`.
fn journal_line(event: &crate::engine::Event, run_id: &str) -> Option<serde_json::Value> {
    use crate::engine::Event;
    Some(match event {
        Event::PhaseStarted {
            at,
            tenant,
            host,
            phase,
        } => serde_json::json!({
            "at": at, "tenant": tenant, "host": host, "phase": phase,
            "event": "start", "outcome": null, "detail": null,
        }),
        Event::PhaseEnded {
            at,
            tenant,
            host,
            phase,
            outcome,
            detail,
        } => serde_json::json!({
            "at": at, "tenant": tenant, "host": host, "phase": phase,
            "event": "end", "outcome": outcome, "detail": detail,
        }),
        Event::PhaseStep {
            at,
            tenant,
            host,
            phase,
            step,
            outcome,
            detail,
        } => serde_json::json!({
            "at": at, "tenant": tenant, "host": host, "phase": phase,
            "event": step, "outcome": outcome, "detail": detail,
        }),
        Event::Detached { hosts } => serde_json::json!({
            "at": jiff::Timestamp::now().to_string(),
            "event": "detached",
            "detail": format!(
                "the controller let go of the {} still in progress: ecfleet run --resume {run_id}",
                crate::report::count(*hosts, "host")
            ),
        }),
        _ => return None,
    })
}

/// A ledger's `run.json` (null when it cannot be read).
pub fn header_of(dir: &Path) -> serde_json::Value {
    crate::fsread::read_regular(&dir.join("run.json"), 1 << 20)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The folder of run `which` (an id, or `latest`: the newest) on the share.
pub fn find(share: &Path, which: &str) -> Result<PathBuf, String> {
    find_where(share, which, |_| true)
}

/// [`find`], `latest` being the newest run whose `run.json` `counts`.
fn find_where(
    share: &Path,
    which: &str,
    counts: impl Fn(&serde_json::Value) -> bool,
) -> Result<PathBuf, String> {
    let runs = share.join("runs");
    let id = if which == "latest" {
        // The run started last (run.json's `started_at`, to the nanosecond: two runs can share
        // an id's second), then by id.
        let mut runs_found: Vec<(Option<jiff::Timestamp>, String)> = fs::read_dir(&runs)
            .map_err(|e| format!("no runs on the share ({}): {e}", runs.display()))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("run.json").is_file())
            .filter_map(|e| {
                let header = header_of(&e.path());
                if !counts(&header) {
                    return None;
                }
                let started = header["started_at"].as_str().and_then(|s| s.parse().ok());
                Some((started, e.file_name().to_string_lossy().into_owned()))
            })
            .collect();
        runs_found.sort();
        runs_found
            .pop()
            .map(|(_, id)| id)
            .ok_or_else(|| format!("no runs in {}", runs.display()))?
    } else {
        which.to_string()
    };
    if id.is_empty() || id.contains(['/', '\\']) || id.starts_with('.') {
        return Err(format!("{which}: not a run id"));
    }
    let dir = runs.join(&id);
    if !dir.join("run.json").is_file() {
        return Err(format!("no run {} on the share", dir.display()));
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ledger_is_created_once_appended_to_and_finished() {
        let share = tempfile::tempdir().unwrap();
        let id = new_run_id();
        let plan = serde_json::json!({"kind": "ecfleet-plan"});
        let header = serde_json::json!({"run_id": id});
        let who = Controller::default();
        let ledger = Ledger::create(share.path(), &id, &header, &plan, &who).unwrap();
        assert!(
            Ledger::create(share.path(), &id, &header, &plan, &who).is_err(),
            "one run per id"
        );
        assert!(ledger.read("plan.json").is_some());
        ledger
            .event(&serde_json::json!({"host": "ec01", "phase": "backup"}))
            .unwrap();
        ledger
            .event(&serde_json::json!({"host": "ec02", "phase": "stage"}))
            .unwrap();
        ledger
            .host(
                "contoso",
                "ec01",
                &serde_json::json!({"outcome": "verified"}),
            )
            .unwrap();
        ledger
            .host(
                "contoso",
                "ec01",
                &serde_json::json!({"outcome": "verified", "again": true}),
            )
            .unwrap();
        let dir = ledger.dir.clone();
        assert!(crate::lock::held_by_live(&dir.join("lock"), "unknown").is_some());
        ledger.finish(&serde_json::json!({"verified": 1})).unwrap();
        assert!(crate::lock::held_by_live(&dir.join("lock"), "unknown").is_none());
        let events = fs::read_to_string(dir.join("events.jsonl")).unwrap();
        assert_eq!(events.lines().count(), 2);
        let host: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("hosts/contoso/ec01.json")).unwrap())
                .unwrap();
        assert_eq!(host["again"], true);
        assert!(dir.join("summary.json").exists() && dir.join("run.json").exists());
    }
}

#[cfg(test)]
mod resume_tests {
    use super::*;

    #[test]
    fn a_run_is_resumed_only_when_its_controller_is_gone() {
        let share = tempfile::tempdir().unwrap();
        let plan = serde_json::json!({});
        let who = Controller {
            host_name: Some("ctl".into()),
            user: Some("ops".into()),
        };
        let a = Ledger::create(share.path(), "20261202T010000Z-0001", &plan, &plan, &who).unwrap();
        a.event(&serde_json::json!({"n": 1})).unwrap();
        assert!(a.flush());
        // A live controller (this process) holds it: refused, naming it.
        let err = Ledger::resume(share.path(), "latest", &who).err().unwrap();
        assert!(err.contains("another controller"), "{err}");
        assert!(
            err.contains(&format!("process {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("user ops"), "{err}");
        // A dead one (a newer generation, as a killed resume leaves it): taken over, and
        // events are appended after the old ones.
        let gone = crate::lock::Holder {
            pid: 4_194_303,
            ..crate::lock::Holder::me("20261202T010000Z-0001", Some("ctl"), None)
        };
        std::fs::write(
            a.dir.join("lock/00000002.json"),
            serde_json::to_vec(&gone).unwrap(),
        )
        .unwrap();
        let b = Ledger::resume(share.path(), "latest", &who).unwrap();
        assert_eq!(b.run_id(), "20261202T010000Z-0001");
        b.event(&serde_json::json!({"n": 2})).unwrap();
        assert!(b.flush());
        let events = std::fs::read_to_string(b.dir.join("events.jsonl")).unwrap();
        assert_eq!(events.lines().count(), 2);
        assert!(b.dir.join("lock/00000003.json").is_file());
        assert!(Ledger::resume(share.path(), "../etc", &who).is_err());
        assert!(Ledger::resume(share.path(), "20991231T000000Z-ffff", &who).is_err());
    }
}
