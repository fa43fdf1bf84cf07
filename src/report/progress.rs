//! The progress bar on stderr: a reporter of engine events (hosts done out of all, the last
//! host's name), drawn only on a terminal. Host names are inventory names, never host output.

use tokio::sync::mpsc::UnboundedReceiver;

use crate::engine::Event;

/// Draws until the engine's event sink is dropped.
pub async fn draw(mut events: UnboundedReceiver<Event>) {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} hosts {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    while let Some(event) = events.recv().await {
        match event {
            Event::RunStarted { hosts } => bar.set_length(hosts as u64),
            Event::HostFinished { host, .. } => {
                bar.inc(1);
                bar.set_message(host);
            }
            Event::Stopping => bar.println(
                "interrupted: finishing hosts in flight, starting no new ones (Ctrl-C again to stop waiting)",
            ),
            Event::Detached { hosts } => {
                bar.println(format!(
                    "detached from {} still being worked on",
                    super::count(hosts, "host")
                ))
            }
            Event::Notice { host, message } => {
                bar.println(format!("{host}: {}", super::sanitize::terminal_safe(&message)))
            }
            _ => {}
        }
    }
    bar.finish_and_clear();
}

/// Prints the notices (operator instructions and the like) when no progress bar does.
pub async fn notices(mut events: UnboundedReceiver<Event>, mut out: impl std::io::Write) {
    while let Some(event) = events.recv().await {
        if let Event::Notice { host, message } = event {
            let _ = writeln!(out, "{host}: {}", super::sanitize::terminal_safe(&message));
            let _ = out.flush();
        }
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
        sink.send(Event::RunStarted { hosts: 2 });
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
        assert_eq!(lines[0], r#"{"event":"run-started","hosts":2}"#);
        assert_eq!(
            lines[1],
            r#"{"event":"host-finished","host":"ec1","ok":false,"error_kind":"host-key","duration_ms":12}"#
        );
    }
}
