//! Maintenance windows: the inventory's `maintenance_window = "Sat 22:00-02:00 Europe/London"`,
//! parsed once (with a message that says what is wrong and what would be right), and the next
//! occurrence of a window after a given instant, in the window's own time zone (IANA names,
//! from jiff's bundled database, so the answer does not depend on the machine).
//!
//! Grammar: `DAYS START-END ZONE`. DAYS is `daily`, a day (`Sat`, `saturday`), a list
//! (`Sat,Sun`) or a range (`Mon-Fri`); START and END are `HH:MM`, and an END at or before START
//! means the window ends the next day; ZONE is an IANA name (`Europe/London`) or `UTC`.

use std::fmt;

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, ZonedDateTime as Zoned};

/// A weekly maintenance window.
#[derive(Clone)]
pub struct MaintenanceWindow {
    text: String,
    /// Which days the window opens on (Monday = index 0).
    days: [bool; 7],
    start: Time,
    /// Minutes from start to end (1 ..= 1440).
    length_minutes: i64,
    zone: TimeZone,
    zone_name: String,
}

impl fmt::Debug for MaintenanceWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for MaintenanceWindow {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// One occurrence of a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Occurrence {
    pub start: Zoned,
    pub end: Zoned,
}

const EXAMPLE: &str = "\"Sat 22:00-02:00 Europe/London\"";

fn weekday_index(word: &str) -> Option<usize> {
    const NAMES: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let w = word.to_ascii_lowercase();
    if w.len() < 3 {
        return None;
    }
    NAMES.iter().position(|n| n.starts_with(&w))
}

fn parse_days(text: &str) -> Result<[bool; 7], String> {
    let mut days = [false; 7];
    if matches!(
        text.to_ascii_lowercase().as_str(),
        "daily" | "everyday" | "mon-sun"
    ) {
        return Ok([true; 7]);
    }
    for part in text.split(',') {
        let bad = || {
            format!(
                "`{part}` is not a day: use Mon, Tue, Wed, Thu, Fri, Sat, Sun, a list (Sat,Sun), a range (Mon-Fri) or daily"
            )
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let a = weekday_index(a).ok_or_else(bad)?;
                let b = weekday_index(b).ok_or_else(bad)?;
                let mut i = a;
                loop {
                    days[i] = true;
                    if i == b {
                        break;
                    }
                    i = (i + 1) % 7;
                }
            }
            None => days[weekday_index(part).ok_or_else(bad)?] = true,
        }
    }
    Ok(days)
}

fn parse_time(text: &str) -> Result<Time, String> {
    let bad = || format!("`{text}` is not a time of day: use HH:MM (24-hour), e.g. 22:00");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: i8 = h.parse().map_err(|_| bad())?;
    let m: i8 = m.parse().map_err(|_| bad())?;
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

impl MaintenanceWindow {
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [days, times, zone_name] = parts.as_slice() else {
            return Err(format!(
                "`{text}` is not a maintenance window: write DAYS START-END ZONE, e.g. {EXAMPLE}"
            ));
        };
        let days = parse_days(days)?;
        let (start, end) = times.split_once('-').ok_or_else(|| {
            format!("`{times}` is not a time range: write START-END, e.g. 22:00-02:00")
        })?;
        let start = parse_time(start)?;
        let end = parse_time(end)?;
        let minutes = |t: Time| i64::from(t.hour()) * 60 + i64::from(t.minute());
        let mut length_minutes = minutes(end) - minutes(start);
        if length_minutes <= 0 {
            length_minutes += 24 * 60; // ends the next day
        }
        let zone = if zone_name.eq_ignore_ascii_case("utc") {
            TimeZone::UTC
        } else {
            TimeZone::get(zone_name).map_err(|_| {
                format!("`{zone_name}` is not a time zone: use an IANA name such as Europe/London, America/New_York or UTC")
            })?
        };
        Ok(MaintenanceWindow {
            text: text.to_string(),
            days,
            start,
            length_minutes,
            zone,
            zone_name: zone_name.to_string(),
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn zone_name(&self) -> &str {
        &self.zone_name
    }

    /// The occurrence that is open at `after` or opens next. Local times that do not exist
    /// (a DST gap) move forward; ambiguous ones (a DST overlap) take the earlier instant.
    pub fn next_after(&self, after: Timestamp) -> Occurrence {
        self.checked_next_after(after)
            .expect("a window with at least one day opens within eight days")
    }

    /// [`next_after`](Self::next_after), or `None` at the end of the calendar (an instant
    /// read from a file may be anything).
    pub fn checked_next_after(&self, after: Timestamp) -> Option<Occurrence> {
        let today: Date = after.to_zoned_datetime(self.zone.clone()).date();
        // Yesterday's window may still be open; a week and a day ahead always holds one.
        for offset in -1..=8i64 {
            let Ok(date) = today.checked_add(offset.days()) else {
                continue;
            };
            if !self.days[weekday_slot(date.weekday())] {
                continue;
            }
            let start_civil = date.to_datetime(self.start);
            let Ok(start) = start_civil.to_zoned_datetime(self.zone.clone()) else {
                continue;
            };
            // The end is on the wall clock too: 22:00-02:00 ends at 02:00 local, DST or not.
            let Ok(end_civil) = start_civil.checked_add(self.length_minutes.minutes()) else {
                continue;
            };
            let Ok(end) = end_civil.to_zoned_datetime(self.zone.clone()) else {
                continue;
            };
            if end.timestamp() > after {
                return Some(Occurrence { start, end });
            }
        }
        None
    }
}

fn weekday_slot(w: Weekday) -> usize {
    w.to_monday_zero_offset() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn next_saturday_night_in_london_across_midnight() {
        let w = MaintenanceWindow::parse("Sat 22:00-02:00 Europe/London").unwrap();
        // Tuesday 24 Nov 2026 (GMT, UTC+0).
        let next = w.next_after(at("2026-11-24T09:00:00Z"));
        assert_eq!(next.start.timestamp(), at("2026-11-28T22:00:00Z"));
        assert_eq!(next.end.timestamp(), at("2026-11-29T02:00:00Z"));
        // In summer London is UTC+1.
        let next = w.next_after(at("2026-07-01T00:00:00Z"));
        assert_eq!(next.start.timestamp(), at("2026-07-04T21:00:00Z"));
    }

    #[test]
    fn a_window_that_is_open_now_is_the_next_one() {
        let w = MaintenanceWindow::parse("Sat 22:00-02:00 UTC").unwrap();
        let next = w.next_after(at("2026-11-29T01:00:00Z"));
        assert_eq!(next.start.timestamp(), at("2026-11-28T22:00:00Z"));
        let after_it = w.next_after(at("2026-11-29T02:00:00Z"));
        assert_eq!(after_it.start.timestamp(), at("2026-12-05T22:00:00Z"));
    }

    #[test]
    fn lists_ranges_and_daily() {
        let weekdays = MaintenanceWindow::parse("Mon-Fri 01:00-03:00 America/New_York").unwrap();
        // Saturday 28 Nov 2026 12:00 UTC → Monday 30 Nov 01:00 EST = 06:00Z.
        assert_eq!(
            weekdays
                .next_after(at("2026-11-28T12:00:00Z"))
                .start
                .timestamp(),
            at("2026-11-30T06:00:00Z")
        );
        let weekend = MaintenanceWindow::parse("sat,SUN 23:30-00:30 UTC").unwrap();
        assert_eq!(
            weekend
                .next_after(at("2026-11-29T00:45:00Z"))
                .start
                .timestamp(),
            at("2026-11-29T23:30:00Z")
        );
        let wrap = MaintenanceWindow::parse("Fri-Mon 10:00-11:00 UTC").unwrap();
        assert_eq!(wrap.days, [true, false, false, false, true, true, true]);
        let daily = MaintenanceWindow::parse("daily 04:00-05:00 Asia/Tokyo").unwrap();
        assert_eq!(
            daily
                .next_after(at("2026-11-24T20:00:00Z"))
                .start
                .timestamp(),
            at("2026-11-24T19:00:00Z") + 24.hours()
        );
    }

    #[test]
    fn daylight_saving_gap_moves_forward() {
        // 29 Mar 2026: London clocks go from 01:00 to 02:00.
        let w = MaintenanceWindow::parse("Sun 01:30-03:00 Europe/London").unwrap();
        let next = w.next_after(at("2026-03-28T12:00:00Z"));
        assert_eq!(next.start.timestamp(), at("2026-03-29T01:30:00Z"));
        assert_eq!(next.end.timestamp(), at("2026-03-29T02:00:00Z"));
    }

    #[test]
    fn bad_windows_say_what_is_wrong() {
        for (text, says) in [
            ("Sat 22:00-02:00", "DAYS START-END ZONE"),
            ("Sta 22:00-02:00 UTC", "`Sta` is not a day"),
            ("Sat 25:00-02:00 UTC", "`25:00` is not a time"),
            ("Sat 22:00 UTC", "not a time range"),
            (
                "Sat 22:00-02:00 Europe/Londn",
                "`Europe/Londn` is not a time zone",
            ),
        ] {
            let err = MaintenanceWindow::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
