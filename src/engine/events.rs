//! What the engine tells reporters while it runs: the progress bar and the live view, JSON
//! Lines (`--events`), and the run's journal on the share. Channel reporters get events over an
//! unbounded channel, so that a slow reporter never slows a host; a journal reporter is called
//! in line ([`EventSink::add_journal`]), so that the events' order is the order they happened.

use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::{ErrorKind, Phase};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    RunStarted {
        hosts: usize,
        /// How many waves the hosts are in.
        waves: u32,
    },
    WaveStarted {
        wave: u32,
        hosts: usize,
    },
    HostStarted {
        host: String,
        wave: u32,
    },
    HostFinished {
        host: String,
        ok: bool,
        error_kind: Option<ErrorKind>,
        duration_ms: u64,
    },
    WaveFinished {
        wave: u32,
        failures: usize,
    },
    /// The failure budget is spent: no new host starts.
    BudgetSpent {
        failures: usize,
        allowed: usize,
    },
    /// First shutdown level: nothing new starts.
    Stopping,
    /// Second level: in-flight hosts were let go.
    Detached {
        hosts: usize,
    },
    /// A gate between waves closed (the canary did not all pass): no later host starts.
    GateClosed {
        after_wave: u32,
        reason: String,
    },
    RunFinished {
        hosts: usize,
        failures: usize,
        /// Hosts skipped or interrupted: never started, or stopped before their end.
        not_finished: usize,
    },
    /// `ecfleet run`: a host's phase began (`preflight`, `backup`, `stage`, `upgrade`, `verify`,
    /// or `window` for a wait). `at` is the controller's clock.
    PhaseStarted {
        at: String,
        tenant: String,
        host: String,
        phase: Phase,
    },
    /// `ecfleet run`: something within a phase the journal keeps (`handoff`, `evidence`,
    /// `resumed`, `fallback`, `restart-adsync`, `not-believed`, `not-started`, …).
    PhaseStep {
        at: String,
        tenant: String,
        host: String,
        phase: Phase,
        step: String,
        outcome: Option<String>,
        detail: Option<String>,
    },
    /// `ecfleet run`: a host's phase ended: `ok`, or the outcome it ended the host with.
    PhaseEnded {
        at: String,
        tenant: String,
        host: String,
        phase: Phase,
        outcome: String,
        detail: Option<String>,
    },
    /// `ecfleet run`: a host's end, as the operator reads it ("verified on t02-behind
    /// (2.6.3.0 → 2.6.92.0, 4m12s)", "failed on …: why").
    HostEnded {
        host: String,
        ok: bool,
        line: String,
    },
    /// `ecfleet run`: the host's upgrade is in the operator's hands (instructions follow).
    HandedOff {
        host: String,
        address: String,
    },
    /// `ecfleet run`: the operator's part on the host is over (the new version is in place).
    OperatorDone {
        host: String,
    },
    /// Something a person must see or do now about a host (the operator's instructions, a
    /// host's progress through a long phase). Printed above the progress bar; never host output
    /// unescaped.
    Notice {
        host: String,
        message: String,
    },
}

/// A reporter called in line with each event: it must be quick (the run's journal hands the
/// line to its writer thread).
pub type Journal = std::sync::Arc<dyn Fn(&Event) + Send + Sync>;

/// Where events go: every reporter's channel, and the journals called in line (none: they are
/// dropped).
#[derive(Clone, Default)]
pub struct EventSink {
    tx: Vec<mpsc::UnboundedSender<Event>>,
    journals: Vec<Journal>,
}

impl EventSink {
    pub fn channel() -> (EventSink, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            EventSink {
                tx: vec![tx],
                journals: Vec::new(),
            },
            rx,
        )
    }

    pub fn none() -> EventSink {
        EventSink::default()
    }

    /// A reporter that is given each event as it happens, before `send` returns (the run's journal
    /// on the share, in the order the events happened).
    pub fn add_journal(&mut self, journal: Journal) {
        self.journals.push(journal);
    }

    /// One more reporter: every event goes to it too.
    pub fn add(&mut self) -> mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.tx.push(tx);
        rx
    }

    pub fn send(&self, event: Event) {
        for journal in &self.journals {
            journal(&event);
        }
        for tx in &self.tx {
            let _ = tx.send(event.clone());
        }
    }
}
