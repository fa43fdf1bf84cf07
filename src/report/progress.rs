//! The progress bar on stderr: a reporter of engine events (hosts done out of all, the last
//! host's name), drawn only on a terminal. Host names are inventory names, never host output.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use super::live::LiveView;
use crate::engine::Event;

/// Draws until the engine's event sink is dropped: the bar (hosts done of all, an elapsed time
/// that moves every second), the live view's lines above it, and the open hand-offs as its
/// message, refreshed while hosts wait for the operator.
pub async fn draw(mut events: UnboundedReceiver<Event>) {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} hosts {wide_msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_secs(1));
    let mut view = LiveView::default();
    let mut refresh = tokio::time::interval(Duration::from_secs(5));
    loop {
        let event = tokio::select! {
            e = events.recv() => match e {
                Some(e) => e,
                None => break,
            },
            _ = refresh.tick() => {
                bar.set_message(view.waiting_line(Instant::now()).unwrap_or_default());
                continue;
            }
        };
        for line in view.on(&event, Instant::now()) {
            bar.println(line);
        }
        if let Event::RunStarted { hosts, .. } = event {
            bar.set_length(hosts as u64);
        }
        if let Event::HostFinished { .. } = event {
            bar.inc(1);
        }
        bar.set_message(view.waiting_line(Instant::now()).unwrap_or_default());
    }
    bar.finish_and_clear();
}

/// Prints the live view's lines (operator instructions, outcomes, waves) when no progress bar
/// does.
pub async fn notices(mut events: UnboundedReceiver<Event>, mut out: impl std::io::Write) {
    let mut view = LiveView::default();
    while let Some(event) = events.recv().await {
        for line in view.on(&event, Instant::now()) {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }
}

/// Writes every event as one JSON line (for machines following a run).
pub async fn json_lines(mut events: UnboundedReceiver<Event>, mut out: impl std::io::Write) {
    while let Some(event) = events.recv().await {
        if let Ok(line) = serde_json::to_string(&event) {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EventSink;

    #[tokio::test]
    async fn events_become_one_json_line_each() {
        let (sink, rx) = EventSink::channel();
        sink.send(Event::RunStarted { hosts: 2, waves: 1 });
        sink.send(Event::HostFinished {
            host: "ec1".into(),
            ok: false,
            error_kind: Some(crate::error::ErrorKind::HostKey),
            duration_ms: 12,
        });
        drop(sink);
        let mut out = Vec::new();
        json_lines(rx, &mut out).await;
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], r#"{"event":"run-started","hosts":2,"waves":1}"#);
        assert_eq!(
            lines[1],
            r#"{"event":"host-finished","host":"ec1","ok":false,"error_kind":"host-key","duration_ms":12}"#
        );
    }
}
