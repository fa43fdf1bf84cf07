//! `[notify]` and `[tenant.notify]`: the webhooks messages go to (`teams`, `slack`, `webhook`,
//! each a URL by reference, never written in the file), each message's deadline (`timeout`,
//! seconds) and when a waiting operator hand-off is told about (`handoff_after`, minutes, whole or not).

use std::time::Duration;

use super::{Ctx, Table, get_int, get_table, join, secret_ref};
use crate::inventory::{Notify, NotifyChannel, NotifyKind};

const NOTIFY_KEYS: &[&str] = &["teams", "slack", "webhook", "timeout", "handoff_after"];
/// The default deadline of one message on one channel, retries included.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The `notify` table of `t` (the document's root or a tenant) at `path`.
pub(super) fn notify(ctx: &mut Ctx<'_>, t: &Table<'_>, path: &str) -> Notify {
    let Some(table) = get_table(ctx, t, path, "notify") else {
        return Notify {
            timeout: DEFAULT_TIMEOUT,
            ..Notify::default()
        };
    };
    let key = join(path, "notify");
    ctx.check_keys(table, &key, NOTIFY_KEYS);
    let mut channels = Vec::new();
    for kind in [NotifyKind::Teams, NotifyKind::Slack, NotifyKind::Webhook] {
        if let Some(url) = secret_ref(ctx, table, &key, kind.as_str(), "webhook URL") {
            channels.push(NotifyChannel { kind, url });
        }
    }
    let number = |ctx: &mut Ctx<'_>, name: &str, max: i64, fix: &str| -> Option<i64> {
        let (n, span) = get_int(ctx, table, &key, name)?;
        if (1..=max).contains(&n) {
            Some(n)
        } else {
            ctx.error(
                span,
                &join(&key, name),
                format!("{n} is outside 1 to {max}"),
                fix.to_string(),
            );
            None
        }
    };
    let timeout = number(ctx, "timeout", 300, "give seconds, e.g. timeout = 10")
        .map(|s| Duration::from_secs(s as u64))
        .unwrap_or(DEFAULT_TIMEOUT);
    // Minutes, whole (`30`) or not (`0.5`: thirty seconds).
    let fraction = super::get(table, "handoff_after").and_then(|v| {
        let f = v.get_ref().as_float()?;
        Some((f.as_str().parse::<f64>().ok(), v.span()))
    });
    let handoff_after = match fraction {
        Some((Some(m), _)) if m > 0.0 && m <= 7.0 * 24.0 * 60.0 => {
            Some(Duration::from_secs_f64(m * 60.0).max(Duration::from_secs(1)))
        }
        Some((_, span)) => {
            ctx.error(
                span,
                &join(&key, "handoff_after"),
                "is not a number of minutes between 0 and 10080",
                "give minutes, e.g. handoff_after = 30 (or 0.5 for thirty seconds)",
            );
            None
        }
        None => number(
            ctx,
            "handoff_after",
            7 * 24 * 60,
            "give minutes, e.g. handoff_after = 30",
        )
        .map(|m| Duration::from_secs(m as u64 * 60)),
    };
    Notify {
        channels,
        timeout,
        handoff_after,
    }
}
