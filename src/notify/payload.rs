//! The body each webhook kind wants for a [`Message`]:
//! - Teams (a Workflows webhook, "When a Teams webhook request is received", then "Post card in
//!   a chat or channel"): a message with one attachment of content type
//!   `application/vnd.microsoft.card.adaptive` holding an Adaptive Card 1.4. Text that may come
//!   from a host goes in `TextRun`s of a `RichTextBlock`, which Adaptive Cards never read as
//!   markdown, so a host cannot put a link or formatting into the card.
//! - Slack (an incoming webhook): `text` (the notification's fallback) and Block Kit `blocks`;
//!   host text goes in `plain_text` objects.
//! - A generic webhook: the message itself as documented JSON (docs/notify.md).
//!
//! Every text is stripped of control characters and capped, so that one host cannot make a
//! message too big for the service to take.

use serde_json::{Value, json};

use super::{Message, Tone};

/// The longest text taken from one field.
const MAX_TEXT: usize = 300;

/// One line, printable, capped.
fn clean(s: &str) -> String {
    let mut kept = s
        .chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .filter(|c| !c.is_control());
    let mut out: String = kept.by_ref().take(MAX_TEXT).collect();
    if kept.next().is_some() {
        out.push('…');
    }
    out
}

fn contacts_line(m: &Message) -> Option<String> {
    (!m.contacts.is_empty()).then(|| format!("Contacts: {}", clean(&m.contacts.join(", "))))
}

/// A Teams Workflows webhook body: one Adaptive Card.
pub fn teams(m: &Message) -> Value {
    let color = match m.tone {
        Tone::Good => "Good",
        Tone::Attention => "Warning",
        Tone::Bad => "Attention",
    };
    let mut body = vec![
        json!({
            "type": "TextBlock",
            "text": clean(&m.title),
            "weight": "Bolder",
            "size": "Medium",
            "color": color,
            "wrap": true
        }),
        json!({
            "type": "FactSet",
            "facts": m.facts.iter().map(|(k, v)| json!({"title": clean(k), "value": clean(v)})).collect::<Vec<_>>()
        }),
    ];
    for h in &m.hosts {
        body.push(json!({
            "type": "RichTextBlock",
            "inlines": [
                {"type": "TextRun", "text": format!("{}/{}", clean(&h.tenant), clean(&h.host)), "weight": "Bolder"},
                {"type": "TextRun", "text": format!(" {}: ", clean(&h.status))},
                {"type": "TextRun", "text": clean(&h.detail)}
            ]
        }));
    }
    if m.more > 0 {
        body.push(json!({"type": "TextBlock", "text": format!("and {} more servers", m.more), "isSubtle": true, "wrap": true}));
    }
    if let Some(c) = contacts_line(m) {
        body.push(json!({"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": c, "isSubtle": true}]}));
    }
    body.push(json!({"type": "TextBlock", "text": format!("ecfleet · {}", clean(&m.reference)), "isSubtle": true, "size": "Small", "wrap": true}));
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body
            }
        }]
    })
}

/// A Slack incoming-webhook body: the fallback text and Block Kit blocks.
pub fn slack(m: &Message) -> Value {
    let plain = |s: String| json!({"type": "plain_text", "text": s, "emoji": false});
    let mut blocks =
        vec![json!({"type": "header", "text": plain(clean(&m.title).chars().take(150).collect())})];
    if !m.facts.is_empty() {
        // A section takes at most 10 fields.
        let fields: Vec<Value> = m
            .facts
            .iter()
            .take(10)
            .map(|(k, v)| plain(format!("{}: {}", clean(k), clean(v))))
            .collect();
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    for h in &m.hosts {
        blocks.push(json!({
            "type": "section",
            "text": plain(format!("{}/{} {}: {}", clean(&h.tenant), clean(&h.host), clean(&h.status), clean(&h.detail)))
        }));
    }
    let mut context = Vec::new();
    if m.more > 0 {
        context.push(plain(format!("and {} more servers", m.more)));
    }
    if let Some(c) = contacts_line(m) {
        context.push(plain(c));
    }
    context.push(plain(format!("ecfleet · {}", clean(&m.reference))));
    blocks.push(json!({"type": "context", "elements": context}));
    json!({"text": clean(&m.title), "blocks": blocks})
}

/// A generic webhook's body: the message as documented JSON (docs/notify.md).
pub fn webhook(m: &Message) -> Value {
    json!({
        "schema_version": 1,
        "source": "ecfleet",
        "event": m.event,
        "title": clean(&m.title),
        "tone": m.tone,
        "tenant": m.tenant,
        "facts": m.facts.iter().map(|(k, v)| json!({"name": clean(k), "value": clean(v)})).collect::<Vec<_>>(),
        "hosts": m.hosts.iter().map(|h| json!({
            "tenant": clean(&h.tenant), "host": clean(&h.host), "status": clean(&h.status), "detail": clean(&h.detail)
        })).collect::<Vec<_>>(),
        "more_hosts": m.more,
        "contacts": m.contacts.iter().map(|c| clean(c)).collect::<Vec<_>>(),
        "reference": clean(&m.reference),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::HostLine;

    fn message() -> Message {
        Message {
            event: "run-finished".into(),
            title: "Upgrade night: 1 failed".into(),
            tone: Tone::Bad,
            tenant: Some("contoso".into()),
            facts: vec![
                ("Verified".into(), "2".into()),
                ("Failed".into(), "1".into()),
            ],
            hosts: vec![HostLine {
                tenant: "contoso".into(),
                host: "ec1".into(),
                status: "failed".into(),
                detail: "[click](http://evil.example) **now**\u{1b}[31m\nsecond line".into(),
            }],
            more: 0,
            contacts: vec!["ops@contoso.example".into()],
            reference: "run 2026-12-07T0100Z-ab12".into(),
        }
    }

    #[test]
    fn teams_gets_an_adaptive_card_with_host_text_as_plain_text_runs() {
        let v = teams(&message());
        let a = &v["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(a["content"]["type"], "AdaptiveCard");
        assert_eq!(a["content"]["version"], "1.4");
        let body = a["content"]["body"].as_array().unwrap();
        let host = body.iter().find(|b| b["type"] == "RichTextBlock").unwrap();
        let detail = host["inlines"][2]["text"].as_str().unwrap();
        assert_eq!(
            detail,
            "[click](http://evil.example) **now**[31m second line"
        );
        assert!(
            body.iter()
                .all(|b| b["type"] != "TextBlock" || !b["text"].as_str().unwrap().contains("evil"))
        );
    }

    #[test]
    fn slack_gets_blocks_with_plain_text() {
        let v = slack(&message());
        assert_eq!(v["text"], "Upgrade night: 1 failed");
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        let host = &blocks[2]["text"];
        assert_eq!(host["type"], "plain_text");
        assert!(
            host["text"]
                .as_str()
                .unwrap()
                .starts_with("contoso/ec1 failed: [click]")
        );
    }

    #[test]
    fn long_host_text_is_capped() {
        let mut m = message();
        m.hosts[0].detail = "x".repeat(10_000);
        let v = webhook(&m);
        assert_eq!(
            v["hosts"][0]["detail"].as_str().unwrap().chars().count(),
            MAX_TEXT + 1
        );
    }
}
