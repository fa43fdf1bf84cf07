//! Posting one message to one webhook (reqwest over rustls): the URL read from its reference,
//! then at most [`MAX_ATTEMPTS`] POSTs, all within the channel's deadline. 429 and 5xx are tried
//! again (after the service's `Retry-After`, or a short pause when it gives none; a pause that
//! would pass the deadline ends the tries); any other refusal is final. The URL is a secret:
//! no message, log line or record shows it (reqwest's errors are stripped of it), and it goes
//! in the clear only to this machine (`http://` to a loopback address; elsewhere `https://`).

use std::time::Duration;

use tokio::time::Instant;

use super::{Delivery, Message, payload};
use crate::inventory::{NotifyChannel, NotifyKind};

pub const MAX_ATTEMPTS: u32 = 3;
/// The pause before another try when the service gives none.
const PAUSE: Duration = Duration::from_secs(1);

/// The client for one job's notifications.
pub fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("ecfleet/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("no HTTP client for notifications: {}", e.without_url()))
}

/// One message on one channel within `limit`.
pub async fn deliver(
    client: &reqwest::Client,
    channel: &NotifyChannel,
    message: &Message,
    limit: Duration,
) -> Delivery {
    let deadline = Instant::now() + limit;
    let mut delivery = Delivery {
        channel: channel.kind.as_str().into(),
        url_from: super::url_from(&channel.url),
        tenant: message.tenant.clone(),
        event: message.event.clone(),
        delivered: false,
        detail: String::new(),
        attempts: 0,
    };
    let url = match channel.url.resolve(limit).await {
        Ok(secret) => secret.expose().trim().to_string(),
        Err(e) => {
            // The secret mechanism speaks of passwords; here it was a webhook's URL.
            let why = e.to_string().replace("password command", "URL command");
            delivery.detail = format!("no URL: {why}");
            return delivery;
        }
    };
    match reqwest::Url::parse(&url) {
        Ok(u) if u.scheme() == "https" => {}
        Ok(u) if u.scheme() == "http" && is_loopback(&u) => {}
        Ok(u) if u.scheme() == "http" => {
            delivery.detail = "the URL it gives is http:// to another machine: the webhook's secret would cross the network in the clear; use its https:// URL".into();
            return delivery;
        }
        _ => {
            delivery.detail = "what it gives is not an https:// URL".into();
            return delivery;
        }
    }
    let body = match channel.kind {
        NotifyKind::Teams => payload::teams(message),
        NotifyKind::Slack => payload::slack(message),
        NotifyKind::Webhook => payload::webhook(message),
    };
    let body = serde_json::to_vec(&body).unwrap_or_default();
    loop {
        delivery.attempts += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            delivery.detail = format!(
                "no answer within {} s ({})",
                limit.as_secs(),
                delivery.detail
            );
            return delivery;
        }
        let post = client
            .post(&url)
            .header("Content-Type", "application/json")
            .body(body.clone())
            .timeout(left)
            .send();
        let again = match post.await {
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    delivery.delivered = true;
                    delivery.detail = format!("sent (HTTP {})", status.as_u16());
                    return delivery;
                }
                delivery.detail = format!("HTTP {}", status.as_u16());
                if status.as_u16() == 429 || status.is_server_error() {
                    Some(retry_after(&response).unwrap_or(PAUSE))
                } else {
                    None
                }
            }
            Err(e) if e.is_timeout() => {
                delivery.detail = format!("no answer within {} s", limit.as_secs().max(1));
                return delivery;
            }
            Err(e) => {
                delivery.detail = e.without_url().to_string();
                Some(PAUSE)
            }
        };
        let Some(pause) = again else {
            delivery.detail.push_str(": refused, not tried again");
            return delivery;
        };
        if delivery.attempts >= MAX_ATTEMPTS {
            delivery.detail = format!("{} after {MAX_ATTEMPTS} tries", delivery.detail);
            return delivery;
        }
        if Instant::now() + pause >= deadline {
            delivery.detail = format!(
                "{} after {} tries (the next would pass the {} s deadline)",
                delivery.detail,
                delivery.attempts,
                limit.as_secs()
            );
            return delivery;
        }
        tokio::time::sleep(pause).await;
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by the webhook services).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(300)))
}
