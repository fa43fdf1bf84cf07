//! The two-level shutdown: the first request stops scheduling and lets running steps reach a
//! safe point; the second detaches (in-flight work is dropped where it stands and reported as
//! interrupted). The trigger is a parameter: Ctrl-C in the binary, anything in tests.

use tokio::sync::watch;

/// How far a shutdown has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Running,
    /// Start nothing new; let what runs finish.
    Stopping,
    /// Stop waiting: drop in-flight work now.
    Detach,
}

/// Asks for a shutdown, one level per call.
#[derive(Clone)]
pub struct ShutdownTrigger {
    tx: std::sync::Arc<watch::Sender<Level>>,
}

/// What the engine and the steps watch.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<Level>,
}

/// A trigger and the signal it drives.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(Level::Running);
    (
        ShutdownTrigger {
            tx: std::sync::Arc::new(tx),
        },
        Shutdown { rx },
    )
}

impl ShutdownTrigger {
    /// Moves one level on (`Running` → `Stopping` → `Detach`) and returns the new level.
    pub fn escalate(&self) -> Level {
        let mut level = Level::Running;
        self.tx.send_modify(|l| {
            *l = match *l {
                Level::Running => Level::Stopping,
                _ => Level::Detach,
            };
            level = *l;
        });
        level
    }
}

impl Shutdown {
    /// A signal that never fires.
    pub fn never() -> Shutdown {
        let (_trigger, shutdown) = channel();
        shutdown
    }

    pub fn level(&self) -> Level {
        *self.rx.borrow()
    }

    /// Resolves once the level is at least `level`; never, when the trigger is gone first.
    pub async fn reached(&mut self, level: Level) {
        if self.rx.wait_for(|l| *l >= level).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
