//! Messages when a night ends, and when an audit finds something new (docs/notify.md): what to
//! say ([`Message`], made from a run's report or an audit's changes in [`events`]), how each
//! kind of webhook wants it ([`payload`]: a Teams Adaptive Card, Slack blocks, the documented
//! JSON), and the sending ([`send`]): every channel at once, each within its deadline and with
//! bounded retries. A message that cannot be delivered is reported, never fatal: the job's own
//! result and exit code do not change.

pub mod events;
pub mod handoff;
pub mod payload;
pub mod send;

use serde::Serialize;

use crate::inventory::{Inventory, Notify, NotifyChannel};

/// How a message looks: all well, something needs a look, something failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tone {
    Good,
    Attention,
    Bad,
}

/// One server's line in a message. `detail` may come from the host: it is data, shown as plain
/// text by every payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostLine {
    pub tenant: String,
    pub host: String,
    pub status: String,
    pub detail: String,
}

/// What a message says, whatever the channel.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    /// `run-finished`, `run-interrupted`, `run-stopped`, `audit-new-findings`.
    pub event: String,
    pub title: String,
    pub tone: Tone,
    /// The tenant this message is for (its own channels), or none (the fleet's).
    pub tenant: Option<String>,
    /// Name–value pairs of the summary, in order.
    pub facts: Vec<(String, String)>,
    /// The servers that need a look (at most [`MAX_LINES`]; `more` counts the rest).
    pub hosts: Vec<HostLine>,
    pub more: usize,
    /// The people to tell: the tenant's `contacts` on its own channels; none on the fleet's
    /// (the MSP's own channel).
    pub contacts: Vec<String>,
    /// The run or snapshot it is about.
    pub reference: String,
}

/// At most this many server lines in one message; the rest are counted.
pub const MAX_LINES: usize = 20;

/// Where one message goes: the channels and their deadline.
pub struct Audience<'a> {
    pub notify: &'a Notify,
    pub message: Message,
}

/// The fleet's channels get the whole message; each tenant's channels get the part about its
/// servers, naming its contacts. `make` builds a message for a tenant (`Some(name)`) or the
/// fleet (`None`); it returns `None` when there is nothing to say to that audience.
pub fn audiences<'a>(
    inventory: &'a Inventory,
    mut make: impl FnMut(Option<&str>) -> Option<Message>,
) -> Vec<Audience<'a>> {
    let mut out = Vec::new();
    if !inventory.notify.channels.is_empty()
        && let Some(message) = make(None)
    {
        out.push(Audience {
            notify: &inventory.notify,
            message,
        });
    }
    for t in &inventory.tenants {
        if t.notify.channels.is_empty() {
            continue;
        }
        if let Some(mut message) = make(Some(&t.name)) {
            message.contacts = t.contacts.clone();
            out.push(Audience {
                notify: &t.notify,
                message,
            });
        }
    }
    out
}

/// The outcome of one message on one channel, as the output and the ledger record it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Delivery {
    /// `teams`, `slack` or `webhook`.
    pub channel: String,
    /// Where its URL comes from (`environment variable TEAMS_URL`), never the URL.
    pub url_from: String,
    /// The tenant whose channel it is, or none (the fleet's).
    pub tenant: Option<String>,
    pub event: String,
    pub delivered: bool,
    /// `sent (HTTP 202)`, or what went wrong.
    pub detail: String,
    pub attempts: u32,
}

/// Sends every audience's message on each of its channels, all at once; each channel within
/// its audience's deadline. Returns every delivery, in order.
pub async fn deliver_all(audiences: &[Audience<'_>]) -> Vec<Delivery> {
    let client = match send::client() {
        Ok(c) => c,
        Err(e) => {
            return audiences
                .iter()
                .flat_map(|a| a.notify.channels.iter().map(|c| failed(c, &a.message, &e)))
                .collect();
        }
    };
    let sends = audiences.iter().flat_map(|a| {
        a.notify
            .channels
            .iter()
            .map(|channel| send::deliver(&client, channel, &a.message, a.notify.timeout))
    });
    futures::future::join_all(sends).await
}

fn failed(channel: &NotifyChannel, message: &Message, why: &str) -> Delivery {
    Delivery {
        channel: channel.kind.as_str().into(),
        url_from: url_from(&channel.url),
        tenant: message.tenant.clone(),
        event: message.event.clone(),
        delivered: false,
        detail: why.to_string(),
        attempts: 0,
    }
}

/// The deliveries as the job's output says them, one line each (on stderr).
pub fn say(deliveries: &[Delivery], out: &mut dyn std::io::Write) {
    for d in deliveries {
        let to = match &d.tenant {
            Some(t) => format!("{} of tenant {t}", d.channel),
            None => d.channel.clone(),
        };
        let _ = if d.delivered {
            writeln!(out, "notified: {to} ({}): {}", d.url_from, d.detail)
        } else {
            writeln!(
                out,
                "warning: notification not delivered: {to} ({}): {}",
                d.url_from, d.detail
            )
        };
    }
}

/// The ledger's record of a run's notifications (`notifications.json`): every delivery so far,
/// the new ones added, written whole.
pub fn record(ledger_dir: &std::path::Path, deliveries: &[Delivery]) -> std::io::Result<()> {
    let path = ledger_dir.join(RECORD);
    let mut all = recorded(ledger_dir);
    all.extend(deliveries.iter().cloned());
    let text = serde_json::to_string_pretty(&all).map_err(std::io::Error::other)?;
    crate::report::metrics::write_atomically(&path, &(text + "\n"))
}

/// The deliveries a run's ledger records (none when it has no record).
pub fn recorded(ledger_dir: &std::path::Path) -> Vec<Delivery> {
    crate::fsread::read_regular(&ledger_dir.join(RECORD), 16 << 20)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The ledger file of a run's notifications.
pub const RECORD: &str = "notifications.json";

/// Where a webhook's URL comes from, for messages (never the URL, never a command line).
pub fn url_from(reference: &crate::inventory::SecretRef) -> String {
    match reference {
        crate::inventory::SecretRef::Command(_) => "the configured URL command".into(),
        other => other.to_string(),
    }
}
