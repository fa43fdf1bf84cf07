//! What the operator reads while a command runs, from the engine's events: wave headers, each
//! host's outcome as it ends, notices (the hand-off's instructions, the watch's progress), and a
//! standing line of the hand-offs still open with how long each has waited. One model for the
//! progress bar and for plain stderr, so both say the same (and a test can read it).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::sanitize::terminal_safe;
use crate::engine::Event;

/// The live view's state.
#[derive(Default)]
pub struct LiveView {
    waves: u32,
    /// Waves started so far.
    waves_started: u32,
    /// Hosts handed to the operator and not back yet: their address and since when.
    handed_off: BTreeMap<String, (String, Instant)>,
}

/// "4m12s", "12 min", "1 h 05 min": short, for a line that keeps moving.
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=599 => format!("{}m{:02}s", s / 60, s % 60),
        600..=3599 => format!("{} min", s / 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

impl LiveView {
    /// The lines `event` adds to the screen (each one line of text, host text escaped).
    pub fn on(&mut self, event: &Event, now: Instant) -> Vec<String> {
        match event {
            Event::RunStarted { waves, .. } => {
                self.waves = *waves;
                Vec::new()
            }
            Event::WaveStarted { wave, hosts } if self.waves > 1 => {
                // Plan waves are numbered by window group and role, with gaps: its place too.
                self.waves_started += 1;
                vec![format!(
                    "── wave {wave} ({} of {}): {} ──",
                    self.waves_started,
                    self.waves,
                    super::count(*hosts, "host")
                )]
            }
            Event::HostEnded { host, line, .. } => {
                let was_waiting = self.handed_off.remove(host).is_some();
                let mut lines = vec![terminal_safe(line).into_owned()];
                if was_waiting {
                    lines.extend(self.waiting_line(now));
                }
                lines
            }
            Event::HandedOff { host, address } => {
                // After the hand-off's instructions: the list of those still open.
                self.handed_off
                    .insert(host.clone(), (terminal_safe(address).into_owned(), now));
                self.waiting_line(now).into_iter().collect()
            }
            Event::OperatorDone { host } => {
                if self.handed_off.remove(host).is_some() {
                    self.waiting_line(now).into_iter().collect()
                } else {
                    Vec::new()
                }
            }
            Event::Notice { host, message } => {
                let safe = terminal_safe(message);
                safe.lines()
                    .enumerate()
                    .map(|(i, l)| {
                        if i == 0 {
                            format!("{host}: {l}")
                        } else {
                            format!("  {l}")
                        }
                    })
                    .collect()
            }
            Event::BudgetSpent { failures, allowed } => vec![format!(
                "the failure budget is spent ({failures} failed, --max-failures allows {allowed}): no new host starts"
            )],
            Event::GateClosed { reason, .. } => vec![terminal_safe(reason).into_owned()],
            Event::Stopping => vec![
                "interrupted: finishing hosts in flight, starting no new ones (Ctrl-C again to stop waiting)"
                    .into(),
            ],
            Event::Detached { hosts } => vec![format!(
                "detached from {} still being worked on",
                super::count(*hosts, "host")
            )],
            _ => Vec::new(),
        }
    }

    /// "waiting for operator: 3 hosts — t02-behind 12 min, …", while any is open.
    pub fn waiting_line(&self, now: Instant) -> Option<String> {
        if self.handed_off.is_empty() {
            return None;
        }
        let mut by_wait: Vec<(&String, &(String, Instant))> = self.handed_off.iter().collect();
        by_wait.sort_by_key(|(name, (_, since))| (*since, (*name).clone()));
        let each: Vec<String> = by_wait
            .iter()
            .map(|(name, (_, since))| {
                format!(
                    "{name} {}",
                    short_duration(now.saturating_duration_since(*since))
                )
            })
            .collect();
        Some(format!(
            "waiting for operator: {} — {}",
            super::count(self.handed_off.len(), "host"),
            each.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_reads_as_waves_outcomes_and_the_open_hand_offs() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut view = LiveView::default();
        let events = [
            (0, Event::RunStarted { hosts: 3, waves: 2 }),
            (0, Event::WaveStarted { wave: 1, hosts: 1 }),
            (
                40,
                Event::Notice {
                    host: "t02-staging".into(),
                    message:
                        "on t02-staging (10.0.0.5, tenant contoso): (1) sign in\n(2) run msiexec"
                            .into(),
                },
            ),
            (
                40,
                Event::HandedOff {
                    host: "t02-staging".into(),
                    address: "10.0.0.5".into(),
                },
            ),
            (
                280,
                Event::OperatorDone {
                    host: "t02-staging".into(),
                },
            ),
            (
                330,
                Event::HostEnded {
                    host: "t02-staging".into(),
                    ok: true,
                    line: "verified on t02-staging (2.6.3.0 → 2.6.92.0, 5m30s)".into(),
                },
            ),
            (330, Event::WaveStarted { wave: 2, hosts: 2 }),
            (
                400,
                Event::HostEnded {
                    host: "t02-behind".into(),
                    ok: false,
                    line: "failed on t02-behind: backup: the export failed\u{1b}[31m".into(),
                },
            ),
        ];
        let mut screen = Vec::new();
        for (s, e) in &events {
            screen.extend(view.on(e, at(*s)));
        }
        let expected = "\
── wave 1 (1 of 2): 1 host ──
t02-staging: on t02-staging (10.0.0.5, tenant contoso): (1) sign in
  (2) run msiexec
waiting for operator: 1 host — t02-staging 0s
verified on t02-staging (2.6.3.0 → 2.6.92.0, 5m30s)
── wave 2 (2 of 2): 2 hosts ──
failed on t02-behind: backup: the export failed\\u{1b}[31m";
        assert_eq!(screen.join("\n"), expected);
    }

    #[test]
    fn the_standing_line_lists_the_longest_waiting_first() {
        let t0 = Instant::now();
        let mut view = LiveView::default();
        for (i, h) in ["b", "a", "c"].iter().enumerate() {
            view.on(
                &Event::HandedOff {
                    host: h.to_string(),
                    address: "x".into(),
                },
                t0 + Duration::from_secs(i as u64 * 300),
            );
        }
        assert_eq!(
            view.waiting_line(t0 + Duration::from_secs(4000)).unwrap(),
            "waiting for operator: 3 hosts — b 1 h 06 min, a 1 h 01 min, c 56 min"
        );
        assert_eq!(short_duration(Duration::from_secs(252)), "4m12s");
    }
}
