//! The run's ledger on the share, written as the run goes (docs/run.md):
//!
//! ```text
//! runs/<run-id>/run.json                   who ran what: plan and inventory hashes, arguments, start
//! runs/<run-id>/lock                       held while a controller drives the run
//! runs/<run-id>/events.jsonl               append-only, one flushed line per phase start and end
//! runs/<run-id>/hosts/<tenant>/<host>.json each host's record, replaced atomically
//! runs/<run-id>/summary.json               at the end
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use crate::share::{ShareError, replace_file, write_new_file};

pub struct Ledger {
    pub dir: PathBuf,
    events: Mutex<File>,
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
        header: &impl Serialize,
        plan: &impl Serialize,
    ) -> Result<Ledger, ShareError> {
        let runs = crate::share::dirs_below(share, &["runs"])?;
        let dir = runs.join(run_id);
        fs::create_dir(&dir).map_err(share_error(&dir))?;
        let lock = format!(
            "{{\"pid\": {}, \"started_at\": \"{}\"}}\n",
            std::process::id(),
            jiff::Timestamp::now()
        );
        write_new_file(&dir.join("lock"), lock.as_bytes())?;
        let json = serde_json::to_vec_pretty(header).map_err(|e| ShareError {
            path: dir.join("run.json"),
            source: std::io::Error::other(e),
        })?;
        write_new_file(&dir.join("run.json"), &json)?;
        let plan = serde_json::to_vec_pretty(plan).map_err(|e| ShareError {
            path: dir.join("plan.json"),
            source: std::io::Error::other(e),
        })?;
        write_new_file(&dir.join("plan.json"), &plan)?;
        let events_path = dir.join("events.jsonl");
        let events = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&events_path)
            .map_err(share_error(&events_path))?;
        Ok(Ledger {
            dir,
            events: Mutex::new(events),
        })
    }

    /// Opens an existing run to carry it on (`--resume`): `latest` is the newest run on the
    /// share. Its lock is taken over only when the controller that held it is gone (same
    /// machine: its process no longer exists); another live controller is an error.
    pub fn resume(share: &Path, which: &str) -> Result<Ledger, String> {
        let dir = find(share, which)?;
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let lock = dir.join("lock");
        if let Ok(text) = fs::read_to_string(&lock) {
            let pid = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["pid"].as_u64());
            if let Some(pid) = pid
                && pid as u32 != std::process::id()
                && process_alive(pid as u32)
            {
                return Err(format!(
                    "run {id} is being driven by another controller (process {pid}); wait for it or stop it first"
                ));
            }
        }
        let taken = format!(
            "{{\"pid\": {}, \"started_at\": \"{}\", \"resumed\": true}}\n",
            std::process::id(),
            jiff::Timestamp::now()
        );
        replace_file(&lock, taken.as_bytes()).map_err(|e| e.to_string())?;
        let events_path = dir.join("events.jsonl");
        let events = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&events_path)
            .map_err(|e| format!("cannot append to {}: {e}", events_path.display()))?;
        Ok(Ledger {
            dir,
            events: Mutex::new(events),
        })
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

    /// Appends one event as a line, flushed and synced before this returns.
    pub fn event(&self, event: &impl Serialize) -> Result<(), ShareError> {
        let path = self.dir.join("events.jsonl");
        let mut line = serde_json::to_vec(event).map_err(|e| ShareError {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        let mut file = self.events.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(&line)
            .and_then(|_| file.sync_data())
            .map_err(share_error(&path))
    }

    /// Replaces `hosts/<tenant>/<host>.json` atomically.
    pub fn host(
        &self,
        tenant: &str,
        host: &str,
        record: &impl Serialize,
    ) -> Result<(), ShareError> {
        let dir = crate::share::dirs_below(&self.dir, &["hosts", tenant])?;
        let path = dir.join(format!("{host}.json"));
        let json = serde_json::to_vec_pretty(record).map_err(|e| ShareError {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        replace_file(&path, &json)
    }

    /// Writes `summary.json` and lets go of the lock.
    pub fn finish(self, summary: &impl Serialize) -> Result<(), ShareError> {
        let path = self.dir.join("summary.json");
        let json = serde_json::to_vec_pretty(summary).map_err(|e| ShareError {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        replace_file(&path, &json)?;
        let lock = self.dir.join("lock");
        fs::remove_file(&lock).map_err(share_error(&lock))
    }
}

/// The folder of run `which` (an id, or `latest`: the newest) on the share.
pub fn find(share: &Path, which: &str) -> Result<PathBuf, String> {
    let runs = share.join("runs");
    let id = if which == "latest" {
        // The run started last (run.json's `started_at`, to the nanosecond: two runs can share
        // an id's second), then by id.
        let mut runs_found: Vec<(Option<jiff::Timestamp>, String)> = fs::read_dir(&runs)
            .map_err(|e| format!("no runs on the share ({}): {e}", runs.display()))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("run.json").is_file())
            .map(|e| {
                let started = crate::fsread::read_regular(&e.path().join("run.json"), 1 << 20)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .and_then(|v| v["started_at"].as_str()?.parse().ok());
                (started, e.file_name().to_string_lossy().into_owned())
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

/// Whether a process with this id exists on this machine.
fn process_alive(pid: u32) -> bool {
    // kill(pid, 0) delivers nothing; it only says whether the process exists.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
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
        let ledger = Ledger::create(share.path(), &id, &header, &plan).unwrap();
        assert!(
            Ledger::create(share.path(), &id, &header, &plan).is_err(),
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
        assert!(dir.join("lock").exists());
        ledger.finish(&serde_json::json!({"verified": 1})).unwrap();
        assert!(!dir.join("lock").exists());
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
        let a = Ledger::create(share.path(), "20261202T010000Z-0001", &plan, &plan).unwrap();
        a.event(&serde_json::json!({"n": 1})).unwrap();
        // This process holds it: resuming it here is taking it over (as after a crash).
        let lock = a.dir.join("lock");
        // A live other process (pid 1) holds it: refused.
        std::fs::write(&lock, "{\"pid\": 1}").unwrap();
        let err = Ledger::resume(share.path(), "latest").err().unwrap();
        assert!(err.contains("another controller"), "{err}");
        // A dead one: taken over, and events are appended after the old ones.
        std::fs::write(&lock, "{\"pid\": 4194303}").unwrap();
        let b = Ledger::resume(share.path(), "latest").unwrap();
        assert_eq!(b.run_id(), "20261202T010000Z-0001");
        b.event(&serde_json::json!({"n": 2})).unwrap();
        let events = std::fs::read_to_string(b.dir.join("events.jsonl")).unwrap();
        assert_eq!(events.lines().count(), 2);
        assert!(Ledger::resume(share.path(), "../etc").is_err());
        assert!(Ledger::resume(share.path(), "20991231T000000Z-ffff").is_err());
    }
}
