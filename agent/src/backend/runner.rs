//! Runs a child process (PowerShell, on Windows) under a deadline: its stdout and stderr are
//! read on their own threads (so a full pipe never stalls it), and at the deadline it is
//! killed. A hung sync service must never hang the agent, and so the host's whole step.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What the child left.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Most output kept from each stream.
const MAX_STREAM_BYTES: u64 = 16 << 20;

fn reader(stream: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stream {
            let _ = s.take(MAX_STREAM_BYTES).read_to_end(&mut buf);
        }
        buf
    })
}

fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `command` with no stdin; kills it when it outlives `limit`.
pub fn run_with_deadline(mut command: Command, limit: Duration) -> Result<Finished, String> {
    let what = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let status = wait_until(&mut child, Instant::now() + limit)
        .map_err(|e| format!("waiting for {what}: {e}"))?;
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "{what} did not finish within {} s and was stopped (is a service it queries hung?)",
            limit.as_secs()
        ));
    };
    Ok(Finished {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_child_that_outlives_its_deadline_is_killed_and_said_so() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo started; sleep 30"]);
        let started = Instant::now();
        let err = run_with_deadline(c, Duration::from_millis(300)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(err.contains("did not finish within 0 s"), "{err}");
    }

    #[test]
    fn both_streams_are_kept() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo out; echo warn >&2; exit 3"]);
        let f = run_with_deadline(c, Duration::from_secs(10)).unwrap();
        assert_eq!(f.status.code(), Some(3));
        assert_eq!(f.stdout, b"out\n");
        assert_eq!(f.stderr, b"warn\n");
    }
}
