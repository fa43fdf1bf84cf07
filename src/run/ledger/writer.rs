//! The ledger's writer: one thread puts the journal's lines and the hosts' records on the share,
//! so that no host's task waits on the share's disk for its steps, and it commits in groups,
//! as a database does: what arrives within [`GATHER`] of a first write goes
//! to disk together. The journal's new lines take one `fdatasync` between them, and of one
//! host's records only the newest is written (each atomically, `share::replace_file`). A run
//! night's phase ending and the next one starting are then one write, and 200 hosts' steps in
//! the same moment one sync of the journal (docs/performance.md).
//!
//! [`Writer::durable`] (async, for one host) and [`Writer::flush`] (blocking, for the run's end)
//! wait until everything sent before them was written: the hand-off's record (a resumed run
//! must never hand a host off twice), the watch's end, the run's end and a detach. `durable`
//! says whether that host's newest record and the journal are on disk; `flush` whether the
//! writer answered at all (what failed is in the ledger's errors).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the writer gathers after a first write before it commits (a flush does not wait).
const GATHER: Duration = Duration::from_millis(5);

/// How long a flush waits for the share before it gives up, saying so in the ledger's errors.
const FLUSH_DEADLINE: Duration = Duration::from_secs(60);

enum Job {
    /// A journal line, with its newline.
    Line(Vec<u8>),
    /// A host's record, replacing the one before it.
    Record {
        tenant: String,
        host: String,
        json: Vec<u8>,
    },
    /// Answered once everything sent before it was written.
    Flush(Answer),
}

/// Who waits for a flush.
enum Answer {
    /// The run's end: answered once written, whatever failed.
    Blocking(mpsc::SyncSender<()>),
    /// One host's step: answered whether that host's newest record and the journal are on disk.
    Host {
        key: (String, String),
        done: tokio::sync::oneshot::Sender<bool>,
    },
}

/// The sending side, shared by the ledger and its journal.
pub(super) struct Writer {
    tx: Sender<Job>,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Writer {
    /// Starts the writer of the run folder `dir`, appending to `events` (`events.jsonl`).
    pub fn start(
        dir: PathBuf,
        events: File,
        errors: Arc<Mutex<Vec<String>>>,
    ) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::channel();
        let thread_errors = errors.clone();
        std::thread::Builder::new()
            .name("ecfleet-ledger".into())
            .spawn(move || {
                Committer {
                    events_path: dir.join("events.jsonl"),
                    dir,
                    events,
                    errors: thread_errors,
                    failed_records: BTreeSet::new(),
                    journal_failed: false,
                }
                .run(rx)
            })?;
        Ok(Writer { tx, errors })
    }

    /// A journal line (`line` without its newline), on disk within moments.
    pub fn line(&self, mut line: Vec<u8>) {
        line.push(b'\n');
        self.send(Job::Line(line));
    }

    /// A host's record, on disk within moments (or replaced by a newer one before that).
    pub fn record(&self, tenant: &str, host: &str, json: Vec<u8>) {
        self.send(Job::Record {
            tenant: tenant.into(),
            host: host.into(),
            json,
        });
    }

    /// Whether `host`'s newest record and the journal's lines sent so far are on disk, waiting
    /// at most [`FLUSH_DEADLINE`] without holding up other hosts. `false`: not known to be
    /// (why is in the ledger's errors).
    pub async fn durable(&self, tenant: &str, host: &str) -> bool {
        let (done, wait) = tokio::sync::oneshot::channel();
        let key = (tenant.to_string(), host.to_string());
        if !self.send(Job::Flush(Answer::Host { key, done })) {
            return false;
        }
        match tokio::time::timeout(FLUSH_DEADLINE, wait).await {
            Ok(Ok(written)) => written,
            _ => self.said(false),
        }
    }

    /// Waits, blocking this thread, until everything sent before was written (or failed: said
    /// in the ledger's errors): for the run's end, when no host is left to hold up. Whether
    /// the writer answered within [`FLUSH_DEADLINE`].
    pub fn flush(&self) -> bool {
        let (done, wait) = mpsc::sync_channel(1);
        if !self.send(Job::Flush(Answer::Blocking(done))) {
            return false;
        }
        let answered = wait.recv_timeout(FLUSH_DEADLINE);
        self.said(answered.is_ok())
    }

    /// A flush's answer, a missing one said in the ledger's errors.
    fn said(&self, answered: bool) -> bool {
        if !answered {
            self.error(format!(
                "the share did not take the run's ledger writes within {} s (or its writer stopped)",
                FLUSH_DEADLINE.as_secs()
            ));
        }
        answered
    }

    fn send(&self, job: Job) -> bool {
        let sent = self.tx.send(job).is_ok();
        if !sent {
            self.error("the run's ledger writer has stopped: a write was lost".into());
        }
        sent
    }

    fn error(&self, message: String) {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(message);
    }
}

/// The last holder gone (a run that ended early, through an error): what was given is still
/// written before the process can exit.
impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// The writer's thread.
struct Committer {
    dir: PathBuf,
    events_path: PathBuf,
    events: File,
    errors: Arc<Mutex<Vec<String>>>,
    /// Hosts whose newest record could not be written.
    failed_records: BTreeSet<(String, String)>,
    /// Whether the journal's last write failed.
    journal_failed: bool,
}

/// What one commit writes.
#[derive(Default)]
struct Group {
    lines: Vec<u8>,
    /// The newest record of each host.
    records: BTreeMap<(String, String), Vec<u8>>,
    flushes: Vec<Answer>,
}

impl Group {
    fn add(&mut self, job: Job) {
        match job {
            Job::Line(line) => self.lines.extend_from_slice(&line),
            Job::Record { tenant, host, json } => {
                self.records.insert((tenant, host), json);
            }
            Job::Flush(done) => self.flushes.push(done),
        }
    }
}

impl Committer {
    fn run(mut self, rx: Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut group = Group::default();
            group.add(first);
            let until = Instant::now() + GATHER;
            while group.flushes.is_empty() {
                match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                    Ok(job) => group.add(job),
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
            while let Ok(job) = rx.try_recv() {
                group.add(job);
            }
            self.commit(group);
        }
    }

    /// The records first, then the lines: a line on the share means that every record given
    /// before it is there too (a host's record says a phase ended well before the journal
    /// does, so a resumed run never does that phase again). A record that could not be written is
    /// said in the ledger's errors, and the lines are written all the same: a journal kept
    /// back could be lost whole.
    fn commit(&mut self, group: Group) {
        for (key, json) in group.records {
            match write_record(&self.dir, &key.0, &key.1, &json) {
                Ok(()) => {
                    self.failed_records.remove(&key);
                }
                Err(e) => {
                    self.failed_records.insert(key);
                    self.error(e);
                }
            }
        }
        if !group.lines.is_empty() {
            let written = self
                .events
                .write_all(&group.lines)
                .and_then(|_| self.events.sync_data());
            self.journal_failed = written.is_err();
            if let Err(source) = written {
                self.error(crate::share::ShareError {
                    path: self.events_path.clone(),
                    source,
                });
            }
        }
        for answer in group.flushes {
            match answer {
                Answer::Blocking(done) => {
                    let _ = done.send(());
                }
                Answer::Host { key, done } => {
                    let _ = done.send(!self.journal_failed && !self.failed_records.contains(&key));
                }
            }
        }
    }

    fn error(&self, e: crate::share::ShareError) {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e.to_string());
    }
}

/// `hosts/<tenant>/<host>.json`, replaced atomically.
fn write_record(
    dir: &Path,
    tenant: &str,
    host: &str,
    json: &[u8],
) -> Result<(), crate::share::ShareError> {
    let folder = crate::share::dirs_below(dir, &["hosts", tenant])?;
    crate::share::replace_file(&folder.join(format!("{host}.json")), json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(dir: &Path) -> (Writer, Arc<Mutex<Vec<String>>>) {
        let events = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("events.jsonl"))
            .unwrap();
        let errors = Arc::new(Mutex::new(Vec::new()));
        (
            Writer::start(dir.to_path_buf(), events, errors.clone()).unwrap(),
            errors,
        )
    }

    #[test]
    fn a_flush_finds_every_line_in_order_and_each_hosts_newest_record_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (w, errors) = writer(dir.path());
        for n in 0..500 {
            w.line(format!("{{\"n\":{n}}}").into_bytes());
            w.record("contoso", "ec01", format!("{{\"n\":{n}}}").into_bytes());
            w.record("fabrikam", "ec02", b"{}".to_vec());
        }
        assert!(w.flush());
        let journal = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
        let numbers: Vec<usize> = journal
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["n"]
                    .as_u64()
                    .unwrap() as usize
            })
            .collect();
        assert_eq!(numbers, (0..500).collect::<Vec<_>>());
        let record = std::fs::read_to_string(dir.path().join("hosts/contoso/ec01.json")).unwrap();
        assert_eq!(record, "{\"n\":499}");
        assert!(dir.path().join("hosts/fabrikam/ec02.json").is_file());
        assert!(errors.lock().unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn durable_answers_once_the_record_and_the_line_after_it_are_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (w, _) = writer(dir.path());
        w.record("contoso", "ec01", b"{\"handed_off_at\":\"now\"}".to_vec());
        w.line(b"{\"event\":\"handoff\"}".to_vec());
        assert!(w.durable("contoso", "ec01").await);
        assert!(
            std::fs::read_to_string(dir.path().join("hosts/contoso/ec01.json"))
                .unwrap()
                .contains("handed_off_at")
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap(),
            "{\"event\":\"handoff\"}\n"
        );
    }

    #[test]
    fn a_record_that_cannot_be_written_is_an_error_of_the_ledger_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let (w, errors) = writer(dir.path());
        // A file where the tenant's folder should be.
        std::fs::create_dir(dir.path().join("hosts")).unwrap();
        std::fs::write(dir.path().join("hosts/contoso"), b"not a folder").unwrap();
        w.record("contoso", "ec01", b"{}".to_vec());
        assert!(w.flush(), "answered, though the record failed");
        let errors = errors.lock().unwrap();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("contoso"), "{errors:?}");
    }

    #[tokio::test]
    async fn a_hand_off_whose_record_did_not_reach_the_share_is_not_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (w, _) = writer(dir.path());
        std::fs::create_dir(dir.path().join("hosts")).unwrap();
        std::fs::write(dir.path().join("hosts/contoso"), b"not a folder").unwrap();
        w.record("contoso", "ec01", b"{}".to_vec());
        w.record("fabrikam", "ec02", b"{}".to_vec());
        assert!(!w.durable("contoso", "ec01").await, "its record failed");
        assert!(
            w.durable("fabrikam", "ec02").await,
            "another host's failure is not its own"
        );
        // The share is mended: the host's next record is written, and it is durable again.
        std::fs::remove_file(dir.path().join("hosts/contoso")).unwrap();
        w.record("contoso", "ec01", b"{\"again\":true}".to_vec());
        assert!(w.durable("contoso", "ec01").await);
    }
}
