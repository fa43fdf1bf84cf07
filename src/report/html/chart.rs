//! The geometry of the reports' pictures, as numbers the templates draw as inline SVG: a bar
//! chart (servers per version) and a support timeline (today, each server's end of support,
//! Microsoft's hard deadlines). No text is made here: labels stay data for the template to
//! escape.

use jiff::ToSpan;
use jiff::civil::Date;

use super::text::days_between;

/// A horizontal bar chart, one bar per label.
pub struct BarChart {
    pub width: u32,
    pub height: u32,
    pub bars: Vec<Bar>,
}

pub struct Bar {
    pub label: String,
    pub count: usize,
    /// The bar's top edge and its length.
    pub y: u32,
    pub length: u32,
    /// Where the count is written (just past the bar's end).
    pub count_x: u32,
    pub tone: &'static str,
}

/// Where bars start (the labels sit left of it) and how tall each row is.
pub const BAR_LEFT: u32 = 150;
const BAR_ROW: u32 = 26;
const BAR_SPACE: u32 = 480;

/// `rows` as (label, count, tone), in the order given.
pub fn bar_chart(rows: Vec<(String, usize, &'static str)>) -> BarChart {
    let most = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let bars = rows
        .into_iter()
        .enumerate()
        .map(|(i, (label, count, tone))| {
            let length = ((count as u64 * u64::from(BAR_SPACE)) / most as u64) as u32;
            Bar {
                label,
                count,
                y: 8 + i as u32 * BAR_ROW,
                length: length.max(2),
                count_x: BAR_LEFT + length.max(2) + 6,
                tone,
            }
        })
        .collect::<Vec<_>>();
    BarChart {
        width: BAR_LEFT + BAR_SPACE + 60,
        height: 16 + bars.len() as u32 * BAR_ROW,
        bars,
    }
}

/// A support timeline: one row per server, from the report's day to its end of support.
pub struct Timeline {
    pub width: u32,
    pub height: u32,
    /// The x of the report's day ("today").
    pub today_x: u32,
    pub axis_y: u32,
    pub ticks: Vec<Tick>,
    pub markers: Vec<Marker>,
    pub rows: Vec<TimelineRow>,
}

/// A month on the axis.
pub struct Tick {
    pub x: u32,
    pub label: String,
}

/// A hard deadline of Microsoft's: a dashed line, its date above it, and what it does (for
/// the legend under the chart).
pub struct Marker {
    pub x: u32,
    pub label: String,
    pub note: String,
}

pub struct TimelineRow {
    pub label: String,
    pub y: u32,
    /// From `today_x` to the end of support (or the chart's end).
    pub length: u32,
    /// The end of support, written past the bar.
    pub end_label: String,
    pub end_x: u32,
    pub tone: &'static str,
}

pub const TIMELINE_LEFT: u32 = 170;
const TIMELINE_SPACE: u32 = 470;
const TIMELINE_ROW: u32 = 22;

/// Servers as (label, end of support, tone) and Microsoft's deadlines as (date, label), seen
/// from `today`: the chart spans at least a year and reaches the last end within three.
pub fn timeline(
    today: Date,
    servers: Vec<(String, Option<Date>, &'static str)>,
    deadlines: Vec<(Date, String)>,
) -> Timeline {
    let horizon = today.saturating_add(3.years());
    let latest = servers
        .iter()
        .filter_map(|s| s.1)
        .chain(deadlines.iter().map(|d| d.0))
        .filter(|d| *d > today)
        .max()
        .unwrap_or(today)
        .saturating_add(30.days())
        .min(horizon)
        .max(today.saturating_add(1.year()));
    let span = days_between(today, latest).max(1);
    let x_of = |d: Date| -> u32 {
        let days = days_between(today, d).clamp(0, span);
        TIMELINE_LEFT + ((days * i64::from(TIMELINE_SPACE)) / span) as u32
    };
    let top = 30;
    let rows: Vec<TimelineRow> = servers
        .into_iter()
        .enumerate()
        .map(|(i, (label, end, tone))| {
            let end_x = end.map(&x_of).unwrap_or(TIMELINE_LEFT + TIMELINE_SPACE);
            let end_label = match end {
                Some(d) if d < today => format!("ended {d}"),
                Some(d) if d > latest => format!("{d} →"),
                Some(d) => d.to_string(),
                None => "no end announced".into(),
            };
            TimelineRow {
                label,
                y: top + i as u32 * TIMELINE_ROW,
                length: end_x - TIMELINE_LEFT,
                end_label,
                end_x: end_x + 6,
                tone,
            }
        })
        .collect();
    let axis_y = top + rows.len() as u32 * TIMELINE_ROW + 6;
    let mut ticks = Vec::new();
    let step = if span > 800 { 6 } else { 3 };
    let mut month = today.first_of_month().checked_add(1.month()).ok();
    // At most a tick a quarter over three years (a date from a file may be anything).
    while let Some(m) = month.filter(|m| *m <= latest && ticks.len() < 16) {
        ticks.push(Tick {
            x: x_of(m),
            label: m.strftime("%b %Y").to_string(),
        });
        month = m.checked_add(step.months()).ok();
    }
    let markers = deadlines
        .into_iter()
        .filter(|(d, _)| *d >= today && *d <= latest)
        .map(|(d, note)| Marker {
            x: x_of(d),
            label: d.to_string(),
            note,
        })
        .collect();
    Timeline {
        width: TIMELINE_LEFT + TIMELINE_SPACE + 110,
        height: axis_y + 24,
        today_x: TIMELINE_LEFT,
        axis_y,
        ticks,
        markers,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_as_long_as_their_counts_and_the_timeline_ends_where_support_does() {
        let chart = bar_chart(vec![
            ("2.5.190.0".into(), 4, "good"),
            ("2.3.20.0".into(), 2, "bad"),
        ]);
        assert_eq!(chart.bars[0].length, BAR_SPACE);
        assert_eq!(chart.bars[1].length, BAR_SPACE / 2);
        assert!(chart.bars[1].y > chart.bars[0].y);

        let today: Date = "2026-11-24".parse().unwrap();
        let t = timeline(
            today,
            vec![
                ("old".into(), Some("2026-01-01".parse().unwrap()), "bad"),
                ("soon".into(), Some("2027-04-07".parse().unwrap()), "warn"),
                ("open".into(), None, "good"),
            ],
            vec![("2027-04-07".parse().unwrap(), "sync stops".into())],
        );
        assert_eq!(t.rows[0].length, 0, "support already ended: no bar");
        assert_eq!(t.rows[0].end_label, "ended 2026-01-01");
        assert_eq!(t.markers.len(), 1);
        assert_eq!(t.markers[0].x, TIMELINE_LEFT + t.rows[1].length);
        assert_eq!(t.rows[2].length, TIMELINE_SPACE);
        assert!(!t.ticks.is_empty());
    }

    #[test]
    fn a_date_at_the_end_of_the_calendar_draws_a_short_chart() {
        let far: Date = "9999-12-01".parse().unwrap();
        let t = timeline(
            far,
            vec![("x".into(), Some(Date::MAX), "good")],
            vec![(Date::MAX, "end".into())],
        );
        assert!(t.ticks.len() <= 16);
        assert_eq!(t.rows.len(), 1);
    }
}
