//! How values read in the reports: host text with control characters spelled out, times to
//! the minute in UTC, durations in words, shares as "3 of 4 (75%)".

use jiff::Timestamp;
use jiff::civil::Date;

/// Text from a host or the share as a reader should see it: control characters spelled out
/// (`\u{1b}`), a newline kept. The template escapes the rest (`<`, `&`, quotes).
pub fn shown(text: &str) -> String {
    crate::report::sanitize::terminal_safe(text).into_owned()
}

/// A catalog's source as a reader says it: `built into ecfleet`, or its file.
pub fn catalog_name(source: &str) -> String {
    match source {
        "embedded" | "embedded catalog" => "built into ecfleet".into(),
        other => shown(other),
    }
}

/// An optional value, or an en dash.
pub fn or_dash(value: Option<&str>) -> String {
    value.map(shown).unwrap_or_else(|| "–".into())
}

/// `2026-11-24T22:03:41Z` → `2026-11-24 22:03 UTC`; what does not parse is shown as it is.
pub fn minute(at: &str) -> String {
    match at.parse::<Timestamp>() {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        Err(_) => shown(at),
    }
}

/// The time between two instants in words: `42 s`, `12 min`, `3 h 05 min`.
pub fn duration(from: &str, to: &str) -> String {
    let (Ok(a), Ok(b)) = (from.parse::<Timestamp>(), to.parse::<Timestamp>()) else {
        return "–".into();
    };
    let seconds = (b.as_second() - a.as_second()).max(0);
    match seconds {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {:02} s", s / 60, s % 60),
        s => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

/// `n of total (p%)`.
pub fn share_of(n: usize, total: usize) -> String {
    if total == 0 {
        return "–".into();
    }
    format!("{n} of {total} ({}%)", (n * 100 + total / 2) / total)
}

/// Days from `from` to `to` (negative when `to` is earlier).
pub fn days_between(from: Date, to: Date) -> i64 {
    from.until(to).map(|s| i64::from(s.get_days())).unwrap_or(0)
}

/// "in 12 days", "today", "12 days ago".
pub fn days_words(days: i64) -> String {
    match days {
        0 => "today".into(),
        1 => "tomorrow".into(),
        -1 => "yesterday".into(),
        d if d > 0 => format!("in {d} days"),
        d => format!("{} days ago", -d),
    }
}

/// A CSS class for a host's outcome, support status or severity: its tone.
pub fn tone(word: &str) -> &'static str {
    match word {
        "verified" | "supported" | "up-to-date" | "ok" | "info" => "good",
        "retiring" | "warning" | "deferred" | "sync-pending" | "skipped" | "interrupted"
        | "locked" | "in-progress" | "untouched" | "unknown-build" => "warn",
        "failed" | "refused" | "operator-timeout" | "version-mismatch" | "unsupported"
        | "sync-stopped" | "recalled" | "critical" | "unreachable" => "bad",
        _ => "neutral",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_durations_and_shares_read_as_words() {
        assert_eq!(minute("2026-11-24T22:03:41Z"), "2026-11-24 22:03 UTC");
        assert_eq!(
            duration("2026-11-24T22:03:41Z", "2026-11-24T22:15:00Z"),
            "11 min 19 s"
        );
        assert_eq!(
            duration("2026-11-24T22:00:00Z", "2026-11-25T01:05:00Z"),
            "3 h 05 min"
        );
        assert_eq!(share_of(3, 4), "3 of 4 (75%)");
        assert_eq!(share_of(0, 0), "–");
        assert_eq!(shown("a\u{1b}[31mb"), "a\\u{1b}[31mb");
        let d = |s: &str| s.parse::<Date>().unwrap();
        assert_eq!(days_between(d("2026-11-24"), d("2027-04-07")), 134);
        assert_eq!(days_words(-3), "3 days ago");
        assert_eq!(
            catalog_name(&crate::catalog::Catalog::embedded().source),
            "built into ecfleet"
        );
    }
}
