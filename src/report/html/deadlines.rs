//! The "coming up" tables of the reports: each end of support and each of Microsoft's hard
//! deadlines that falls within a window from the report's day and concerns a server, with the
//! servers it concerns, earliest first.

use std::collections::BTreeMap;

use jiff::ToSpan;
use jiff::civil::Date;

use super::text::{days_between, days_words, shown};
use crate::catalog::{Catalog, EcVersion};

pub struct DeadlineRow {
    pub date: String,
    pub when: String,
    pub what: String,
    pub servers: String,
}

/// One server as the deadlines see it: how it is named in the table, its build, its end of
/// support.
pub struct Concern<'a> {
    pub label: String,
    pub version: Option<&'a str>,
    pub end_of_support: Option<Date>,
}

/// The rows for `servers` between `day` and `days` later.
pub fn within<'a>(
    servers: impl IntoIterator<Item = Concern<'a>>,
    catalog: &Catalog,
    day: Date,
    days: i64,
) -> Vec<DeadlineRow> {
    let until = day.saturating_add(days.days());
    let in_window = |d: Date| d >= day && d <= until;
    let mut by_date: BTreeMap<(Date, String), Vec<String>> = BTreeMap::new();
    for s in servers {
        if let Some(end) = s.end_of_support.filter(|d| in_window(*d)) {
            let what = match s.version {
                Some(v) => format!("End of support for {}", shown(v)),
                None => "End of support".into(),
            };
            by_date
                .entry((end, what))
                .or_default()
                .push(s.label.clone());
        }
        let Some(v) = s.version.and_then(|v| v.parse::<EcVersion>().ok()) else {
            continue;
        };
        for d in catalog
            .deadlines
            .iter()
            .filter(|d| v < d.below && in_window(d.date))
        {
            by_date
                .entry((d.date, shown(&d.message)))
                .or_default()
                .push(s.label.clone());
        }
    }
    by_date
        .into_iter()
        .map(|((date, what), mut servers)| {
            servers.sort();
            servers.dedup();
            DeadlineRow {
                date: date.to_string(),
                when: days_words(days_between(day, date)),
                what,
                servers: servers.join(", "),
            }
        })
        .collect()
}
