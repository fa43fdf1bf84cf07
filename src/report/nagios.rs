//! `ecfleet audit --nagios`: the audit as a monitoring plugin answers (the Monitoring Plugins
//! Development Guidelines, which Nagios, Icinga and Checkmk all read): one line of status,
//! then `|` and performance data (`'label'=value;warn;crit;min;max`), and the plugin exit codes
//! 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (docs/monitoring.md).

use crate::audit::AuditReport;
use crate::catalog::SupportStatus;
use crate::checks::Severity;

/// A plugin's state, its exit code as the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl State {
    fn word(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
            State::Unknown => "UNKNOWN",
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }
}

/// The plugin's answer: its state and its one line (with a newline).
pub struct Check {
    pub state: State,
    pub line: String,
}

/// How many server names a status line lists before "and N more".
const NAMES_SHOWN: usize = 3;

/// The audit as one plugin line. CRITICAL: a critical finding (an unsupported or sync-stopped
/// build among them); WARNING: a warning finding, or a server the audit could not reach;
/// UNKNOWN: no server could be audited at all (or none was selected); else OK. Thresholds
/// in the performance data are plugin ranges: `0` alerts above 0, as the state does.
pub fn audit(report: &AuditReport) -> Check {
    let total = report.hosts.len();
    let reached: Vec<_> = report.hosts.iter().filter(|h| h.reachable).collect();
    let unreachable: Vec<&str> = report
        .hosts
        .iter()
        .filter(|h| !h.reachable)
        .map(|h| h.host.as_str())
        .collect();
    let with = |severity: Severity| -> Vec<&str> {
        reached
            .iter()
            .filter(|h| h.findings.iter().any(|f| f.severity == severity))
            .map(|h| h.host.as_str())
            .collect()
    };
    let critical = with(Severity::Critical);
    let warning = with(Severity::Warning);
    let status_is = |wanted: &[SupportStatus]| {
        reached
            .iter()
            .filter(|h| h.support.status.is_some_and(|s| wanted.contains(&s)))
            .count()
    };
    let unsupported = status_is(&[
        SupportStatus::Unsupported,
        SupportStatus::SyncStopped,
        SupportStatus::Recalled,
    ]);
    let retiring = status_is(&[SupportStatus::Retiring]);
    let count = |severity: Severity| {
        reached
            .iter()
            .flat_map(|h| &h.findings)
            .filter(|f| f.severity == severity)
            .count()
    };

    let state = if reached.is_empty() {
        State::Unknown
    } else if !critical.is_empty() {
        State::Critical
    } else if !warning.is_empty() || !unreachable.is_empty() {
        State::Warning
    } else {
        State::Ok
    };
    let mut said = Vec::new();
    if state == State::Unknown && total == 0 {
        said.push("no server was selected".into());
    } else if state == State::Unknown {
        said.push(format!(
            "no server could be audited ({total} unreachable: {})",
            names(&unreachable)
        ));
    } else {
        if !critical.is_empty() {
            said.push(format!(
                "{} with critical findings ({})",
                servers(critical.len()),
                names(&critical)
            ));
        }
        if !warning.is_empty() {
            said.push(format!(
                "{} with warnings ({})",
                servers(warning.len()),
                names(&warning)
            ));
        }
        if !unreachable.is_empty() {
            said.push(format!(
                "{} not audited ({})",
                servers(unreachable.len()),
                names(&unreachable)
            ));
        }
        if said.is_empty() {
            said.push(format!("{} audited, none needs attention", servers(total)));
        }
    }
    let perfdata = format!(
        "'servers'={total};;;0 'unreachable'={};0;;0;{total} 'unsupported'={unsupported};;0;0;{total} 'retiring'={retiring};0;;0;{total} 'critical'={};;0;0 'warning'={};0;;0",
        unreachable.len(),
        count(Severity::Critical),
        count(Severity::Warning),
    );
    Check {
        state,
        line: format!(
            "ECFLEET {} - {} | {perfdata}\n",
            state.word(),
            said.join("; ")
        ),
    }
}

/// The plugin's answer when there is no audit to judge (bad input, the controller failed).
pub fn unknown(why: &str) -> Check {
    Check {
        state: State::Unknown,
        line: format!("ECFLEET UNKNOWN - {}\n", clean(why, 400)),
    }
}

fn servers(n: usize) -> String {
    if n == 1 {
        "1 server".into()
    } else {
        format!("{n} servers")
    }
}

/// Up to [`NAMES_SHOWN`] names, then how many more.
fn names(all: &[&str]) -> String {
    let mut shown: Vec<String> = all.iter().take(NAMES_SHOWN).map(|n| clean(n, 64)).collect();
    if all.len() > NAMES_SHOWN {
        shown.push(format!("and {} more", all.len() - NAMES_SHOWN));
    }
    shown.join(", ")
}

/// Text a plugin line can carry: one line, no `|` (it starts the performance data), no control
/// characters, at most `max` characters.
fn clean(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| if c == '|' { '/' } else { c })
        .filter(|c| !c.is_control())
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_capped_and_cannot_start_perfdata() {
        assert_eq!(
            names(&["a|b", "c\nd", "e", "f", "g"]),
            "a/b, cd, e, and 2 more"
        );
        assert_eq!(
            unknown("bad\ninput | x").line,
            "ECFLEET UNKNOWN - badinput / x\n"
        );
    }
}
