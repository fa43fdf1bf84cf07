//! What the engine tells reporters while it runs (progress bars, JSON Lines, later the run
//! journal): events over an unbounded channel, so that a slow reporter never slows a host.

use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::ErrorKind;

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

/// Where events go: every reporter's channel (none: they are dropped).
#[derive(Clone, Default)]
pub struct EventSink {
    tx: Vec<mpsc::UnboundedSender<Event>>,
}

impl EventSink {
    pub fn channel() -> (EventSink, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (EventSink { tx: vec![tx] }, rx)
    }

    pub fn none() -> EventSink {
        EventSink { tx: Vec::new() }
    }

    /// One more reporter: every event goes to it too.
    pub fn add(&mut self) -> mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.tx.push(tx);
        rx
    }

    pub fn send(&self, event: Event) {
        for tx in &self.tx {
            let _ = tx.send(event.clone());
        }
    }
}
