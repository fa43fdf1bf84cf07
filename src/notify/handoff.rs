//! A message when an operator hand-off waits too long (`handoff_after` in `[notify]` or a
//! tenant's `notify`): while a run watches a host that was handed to the operator, a timer per
//! audience that wants it; when it fires before the operator finishes, the message is sent on
//! that audience's channels, said on the run's screen and recorded in the ledger
//! (`notifications.json`). The timer is cancelled when the hand-off ends; a message already
//! being sent finishes within its deadline. Nothing here waits in the host's path: the run
//! never waits for a notification, except at its very end, for those already under way.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::{Audience, HostLine, Message, Tone};
use crate::engine::events::{Event, EventSink};
use crate::inventory::{Inventory, Notify};

/// One audience that wants hand-off messages: its channels, deadline and delay.
#[derive(Clone)]
struct Listener {
    notify: Notify,
    after: Duration,
    /// The tenant whose channel it is (it hears of its own servers only), or none (the fleet's).
    tenant: Option<String>,
    contacts: Vec<String>,
}

/// The run's hand-off timers.
pub struct HandoffNotices {
    listeners: Vec<Listener>,
    run_id: String,
    ledger_dir: PathBuf,
    events: EventSink,
    /// Every timer; [`finish`] stops those still sleeping and waits for the messages under way.
    ///
    /// [`finish`]: HandoffNotices::finish
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Set by [`finish`](HandoffNotices::finish): timers that have not fired stop.
    stop: watch::Sender<bool>,
    /// One writer of the ledger's `notifications.json` at a time.
    record: Arc<Mutex<()>>,
}

/// Cancels a host's timers when dropped (the hand-off ended: upgraded, failed, timed out).
pub struct Watch {
    cancel: Vec<oneshot::Sender<()>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        for c in self.cancel.drain(..) {
            let _ = c.send(());
        }
    }
}

impl HandoffNotices {
    pub fn new(
        inventory: &Inventory,
        run_id: &str,
        ledger_dir: PathBuf,
        events: EventSink,
    ) -> Self {
        let mut listeners = Vec::new();
        if let Some(after) = inventory.notify.handoff_after
            && !inventory.notify.channels.is_empty()
        {
            listeners.push(Listener {
                notify: inventory.notify.clone(),
                after,
                tenant: None,
                contacts: Vec::new(),
            });
        }
        for t in &inventory.tenants {
            if let Some(after) = t.notify.handoff_after
                && !t.notify.channels.is_empty()
            {
                listeners.push(Listener {
                    notify: t.notify.clone(),
                    after,
                    tenant: Some(t.name.clone()),
                    contacts: t.contacts.clone(),
                });
            }
        }
        HandoffNotices {
            listeners,
            run_id: run_id.to_string(),
            ledger_dir,
            events,
            tasks: Mutex::new(Vec::new()),
            stop: watch::channel(false).0,
            record: Arc::default(),
        }
    }

    /// Starts the timers for `host` of `tenant`, handed to the operator at `handed_off_at`
    /// (the host's clock) and told `instructions`; they count from now. Dropping the returned
    /// [`Watch`] cancels the ones that have not fired.
    pub fn watch(
        &self,
        tenant: &str,
        host: &str,
        handed_off_at: &str,
        instructions: Option<&str>,
    ) -> Watch {
        let mut cancel = Vec::new();
        for listener in self
            .listeners
            .iter()
            .filter(|l| l.tenant.as_deref().is_none_or(|t| t == tenant))
        {
            let (tx, rx) = oneshot::channel::<()>();
            cancel.push(tx);
            let message = handoff_waiting(
                &self.run_id,
                listener,
                tenant,
                host,
                handed_off_at,
                instructions,
            );
            let (listener, ledger_dir, events, record) = (
                listener.clone(),
                self.ledger_dir.clone(),
                self.events.clone(),
                self.record.clone(),
            );
            let host = host.to_string();
            let mut stop = self.stop.subscribe();
            let task = tokio::spawn(async move {
                // An ended hand-off or the run's end wins over a timer due at the same moment.
                tokio::select! {
                    biased;
                    _ = rx => return,
                    _ = stop.wait_for(|stopping| *stopping) => return,
                    _ = tokio::time::sleep(listener.after) => {}
                }
                let audience = Audience {
                    notify: &listener.notify,
                    message,
                };
                let deliveries = super::deliver_all(std::slice::from_ref(&audience)).await;
                let mut said = Vec::new();
                super::say(&deliveries, &mut said);
                for line in String::from_utf8_lossy(&said).lines() {
                    events.send(Event::Notice {
                        host: host.clone(),
                        message: line.to_string(),
                    });
                }
                // The share may be slow: written off the runtime's threads, one writer at a time.
                let written = tokio::task::spawn_blocking(move || {
                    let _one_writer = record.lock().unwrap_or_else(|e| e.into_inner());
                    super::record(&ledger_dir, &deliveries)
                })
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
                if let Err(e) = written {
                    events.send(Event::Notice {
                        host,
                        message: format!(
                            "warning: the notification was not recorded in the ledger: {e}"
                        ),
                    });
                }
            });
            self.tasks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(task);
        }
        Watch { cancel }
    }

    /// Stops the timers still sleeping (a detached run leaves hosts with the operator) and
    /// waits for the messages under way, each within its channels' deadline.
    pub async fn finish(&self) {
        self.stop.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// What the message says: which server waits, since when, for how long, and what the
/// operator was told.
fn handoff_waiting(
    run_id: &str,
    listener: &Listener,
    tenant: &str,
    host: &str,
    handed_off_at: &str,
    instructions: Option<&str>,
) -> Message {
    let waited = minutes(listener.after);
    Message {
        event: "handoff-waiting".into(),
        title: format!("{host} ({tenant}): the upgrade has waited {waited} for the operator"),
        tone: Tone::Attention,
        tenant: listener.tenant.clone(),
        facts: vec![
            ("Server".into(), host.to_string()),
            ("Tenant".into(), tenant.to_string()),
            ("Handed off".into(), handed_off_at.to_string()),
            ("Waiting".into(), format!("more than {waited}")),
            ("Run".into(), run_id.to_string()),
        ],
        hosts: vec![HostLine {
            tenant: tenant.to_string(),
            host: host.to_string(),
            status: "waiting for the operator".into(),
            detail: instructions.unwrap_or_default().to_string(),
        }],
        more: 0,
        contacts: listener.contacts.clone(),
        reference: format!("run {run_id} (ecfleet report {run_id})"),
    }
}

/// `30 min`, `1 min`, `45 s`.
fn minutes(d: Duration) -> String {
    match d.as_secs() {
        s if s < 60 => format!("{s} s"),
        s => format!("{} min", s / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_server_the_wait_and_the_tenant_s_contacts() {
        let listener = Listener {
            notify: Notify::default(),
            after: Duration::from_secs(1800),
            tenant: Some("contoso".into()),
            contacts: vec!["ops@contoso.example".into()],
        };
        let m = handoff_waiting(
            "20261124T220000Z-00aa",
            &listener,
            "contoso",
            "ec01",
            "2026-11-24T22:05:00Z",
            Some("open the wizard"),
        );
        assert_eq!(m.event, "handoff-waiting");
        assert_eq!(
            m.title,
            "ec01 (contoso): the upgrade has waited 30 min for the operator"
        );
        assert_eq!(m.contacts, ["ops@contoso.example"]);
        assert_eq!(m.hosts[0].detail, "open the wizard");
        assert_eq!(minutes(Duration::from_secs(3)), "3 s");
    }
}
