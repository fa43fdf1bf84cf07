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
    /// Creates `runs/<run_id>/` (it must not exist), takes its lock and writes `run.json`.
    pub fn create(
        share: &Path,
        run_id: &str,
        header: &impl Serialize,
    ) -> Result<Ledger, ShareError> {
        let runs = share.join("runs");
        fs::create_dir_all(&runs).map_err(share_error(&runs))?;
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
        let dir = self.dir.join("hosts").join(tenant);
        fs::create_dir_all(&dir).map_err(share_error(&dir))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ledger_is_created_once_appended_to_and_finished() {
        let share = tempfile::tempdir().unwrap();
        let id = new_run_id();
        let ledger = Ledger::create(share.path(), &id, &serde_json::json!({"run_id": id})).unwrap();
        assert!(
            Ledger::create(share.path(), &id, &serde_json::json!({})).is_err(),
            "one run per id"
        );
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
