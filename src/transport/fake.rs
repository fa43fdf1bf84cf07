//! An in-memory stand-in for a transport, for unit tests of the session and the engine (their
//! deadlines, cancellation, waves and failure budgets under tokio's paused clock): no sockets,
//! no processes, no real time. A fake host answers every command with the agent's proof line and
//! a scripted document after a scripted delay, or fails to connect. Real transports are tested
//! against real servers (tests/); this is never used outside tests.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;

use super::{Connection, ErrorKind, ExecOutput, Payload, TransportError};

/// How one fake host behaves.
#[derive(Clone)]
pub struct FakeHost {
    /// Fail the connection with this error.
    pub refuse: Option<TransportError>,
    /// How long connecting takes.
    pub connect_delay: Duration,
    /// How long each command takes before it answers.
    pub reply_delay: Duration,
    /// What the agent prints after its proof line.
    pub answer: String,
}

impl FakeHost {
    pub fn answering(answer: impl Into<String>, reply_delay: Duration) -> Self {
        FakeHost {
            refuse: None,
            connect_delay: Duration::ZERO,
            reply_delay,
            answer: answer.into(),
        }
    }

    pub fn refusing(kind: ErrorKind, message: &str) -> Self {
        FakeHost {
            refuse: Some(TransportError::new(kind, message)),
            connect_delay: Duration::ZERO,
            reply_delay: Duration::ZERO,
            answer: String::new(),
        }
    }
}

/// The fake hosts by inventory name, the agent hash their proof lines carry, and counters the
/// tests read (connections open right now, and the most ever open at once).
pub struct FakeNetwork {
    pub hosts: HashMap<String, FakeHost>,
    pub agent_sha256: String,
    pub open: Arc<AtomicUsize>,
    pub most_open: Arc<AtomicUsize>,
}

impl FakeNetwork {
    pub fn new(agent_sha256: &str) -> Self {
        FakeNetwork {
            hosts: HashMap::new(),
            agent_sha256: agent_sha256.to_string(),
            open: Arc::new(AtomicUsize::new(0)),
            most_open: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub(crate) async fn connect(
        &self,
        name: &str,
        limit: Duration,
    ) -> Result<Box<dyn Connection>, TransportError> {
        let host = self.hosts.get(name).cloned().ok_or_else(|| {
            TransportError::new(ErrorKind::Unreachable, format!("no fake host {name}"))
        })?;
        if tokio::time::timeout(limit, tokio::time::sleep(host.connect_delay))
            .await
            .is_err()
        {
            return Err(TransportError::timeout(
                &format!("connecting to {name}"),
                limit,
            ));
        }
        if let Some(e) = host.refuse.clone() {
            return Err(e);
        }
        let now = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_open.fetch_max(now, Ordering::SeqCst);
        Ok(Box::new(FakeConnection {
            host,
            sha256: self.agent_sha256.clone(),
            open: self.open.clone(),
        }))
    }
}

struct FakeConnection {
    host: FakeHost,
    sha256: String,
    open: Arc<AtomicUsize>,
}

impl Drop for FakeConnection {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Connection for FakeConnection {
    fn exec<'a>(
        &'a self,
        _command: &'a str,
        limit: Duration,
    ) -> BoxFuture<'a, Result<ExecOutput, TransportError>> {
        Box::pin(async move {
            tokio::time::timeout(limit, tokio::time::sleep(self.host.reply_delay))
                .await
                .map_err(|_| TransportError::timeout("command", limit))?;
            Ok(ExecOutput {
                stdout: format!(
                    "{} {}\n{}",
                    ecfleet_proto::AGENT_READY_PREFIX,
                    self.sha256,
                    self.host.answer
                )
                .into_bytes(),
                exit_status: Some(0),
                ..ExecOutput::default()
            })
        })
    }
    fn put<'a>(
        &'a self,
        _file: &'a Payload,
        _path: &'a str,
        _mode: Option<u32>,
        _limit: Duration,
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async { Ok(()) })
    }
    fn put_from<'a>(
        &'a self,
        file: &'a Payload,
        _path: &'a str,
        _limit: Duration,
    ) -> BoxFuture<'a, Result<u64, TransportError>> {
        Box::pin(async move { Ok(file.data.len() as u64) })
    }
    fn get<'a>(
        &'a self,
        path: &'a str,
        _max_bytes: u64,
        _limit: Duration,
        _out: &'a mut (dyn std::io::Write + Send),
    ) -> BoxFuture<'a, Result<u64, TransportError>> {
        Box::pin(async move {
            Err(TransportError::new(
                ErrorKind::Refused,
                format!("the fake host has no file {path}"),
            ))
        })
    }
    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}
