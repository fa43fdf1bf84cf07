//! How the controller reaches a host: one small, object-safe API ([`Connection`]: run a
//! command, put a file, get a file, close) with one implementation per protocol, opened through
//! one [`Connector`] that holds the per-run caches of every protocol (known_hosts files and keys
//! for SSH) and of credentials. `ssh` and `winrm` (HTTP with NTLM message encryption so far;
//! docs/winrm.md). Protocol types (russh, hyper) never leave this module. Errors here are
//! per-host results, never reasons to stop a run.

mod cache;
mod credentials;
pub mod dial;
#[cfg(test)]
pub mod fake;
pub mod ssh;
pub mod winrm;

use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;

pub use crate::error::ErrorKind;
use crate::inventory::{Host, HostTransport};
pub use credentials::SecretCache;

/// What a remote command produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// `None` when the command died without an exit status (see `signal`).
    pub exit_status: Option<u32>,
    pub signal: Option<String>,
}

/// The most of a host's stderr quoted in an error or a result.
pub const STDERR_TAIL_CHARS: usize = 500;

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit_status == Some(0)
    }
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    /// The last lines of stderr, for an error message.
    /// The last three non-empty lines of stderr, at most [`STDERR_TAIL_CHARS`] characters (a
    /// host's words go into errors and results).
    pub fn stderr_tail(&self) -> String {
        let text = String::from_utf8_lossy(&self.stderr);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
        match tail.char_indices().nth(STDERR_TAIL_CHARS) {
            Some((cut, _)) => format!("{}…", &tail[..cut]),
            None => tail,
        }
    }
}

/// A transport's failure: its kind and a message that names the host and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    pub kind: ErrorKind,
    pub message: String,
}

impl TransportError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        TransportError {
            kind,
            message: message.into(),
        }
    }

    pub fn timeout(what: &str, limit: Duration) -> Self {
        Self::new(
            ErrorKind::Timeout,
            format!("{what} timed out after {} s", limit.as_secs()),
        )
    }
}

/// A file to put on hosts: its bytes (shared by every host's upload, never copied per host)
/// and its SHA-256 (lower-case hex), so that a transport may skip a copy that is already there
/// or let the host pull it.
#[derive(Debug, Clone)]
pub struct Payload {
    pub data: Bytes,
    pub sha256: String,
}

impl Payload {
    pub fn new(data: Bytes) -> Self {
        let sha256 = crate::digest::sha256_hex(&data);
        Payload { data, sha256 }
    }
}

/// One open connection to a host. Paths are the host's own (`C:\ProgramData\…` on Windows,
/// `/srv/…` on POSIX); each transport spells them as its protocol needs.
pub trait Connection: Send + Sync {
    /// Runs one command through the host's shell and collects its output, within `limit`.
    fn exec<'a>(
        &'a self,
        command: &'a str,
        limit: Duration,
    ) -> BoxFuture<'a, Result<ExecOutput, TransportError>>;
    /// Writes `file` to `path` so that no reader ever sees half of it (temp name, rename),
    /// creating missing parent directories; `mode` where the host has Unix permissions.
    fn put<'a>(
        &'a self,
        file: &'a Payload,
        path: &'a str,
        mode: Option<u32>,
        limit: Duration,
    ) -> BoxFuture<'a, Result<(), TransportError>>;
    /// Writes the part of `file` that the host's copy at `path` lacks, for large files sent
    /// once per content (the installer): an existing file no longer than `file` is taken as its
    /// beginning (a transfer cut short) and the rest is written after it; a longer one is
    /// started again. No rename and no check: whoever verifies the content (the agent, by
    /// SHA-256) moves it into place, and a wrong beginning fails that check. Returns the bytes
    /// sent.
    fn put_from<'a>(
        &'a self,
        file: &'a Payload,
        path: &'a str,
        limit: Duration,
    ) -> BoxFuture<'a, Result<u64, TransportError>>;
    /// How the last file went when the transport has more than one way (WinRM: host pull, or
    /// stdin and why), for the host's result.
    fn transfer_method(&self) -> Option<String> {
        None
    }
    /// Reads a file of at most `max_bytes` into `out` as it arrives (never the whole file in
    /// memory): returns the bytes read. An error of `out` fails the read ([`sink_error`]).
    fn get<'a>(
        &'a self,
        path: &'a str,
        max_bytes: u64,
        limit: Duration,
        out: &'a mut (dyn std::io::Write + Send),
    ) -> BoxFuture<'a, Result<u64, TransportError>>;
    /// Ends the connection politely (bounded: it never waits long for a dead host).
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// Opens connections for one run, whatever the host's transport.
pub struct Connector {
    ssh: std::sync::Arc<ssh::SshConnector>,
    secrets: std::sync::Arc<SecretCache>,
    /// Unit tests only: every host is a fake (`fake`).
    #[cfg(test)]
    fake: Option<fake::FakeNetwork>,
}

impl Connector {
    /// `accept_new_host_keys`: record SSH host keys not yet in known_hosts (never changed ones).
    pub fn new(accept_new_host_keys: bool) -> Self {
        Connector {
            ssh: std::sync::Arc::new(ssh::SshConnector::new(accept_new_host_keys)),
            secrets: std::sync::Arc::default(),
            #[cfg(test)]
            fake: None,
        }
    }

    /// A connector whose hosts are all in-memory fakes (unit tests of the engine and session).
    #[cfg(test)]
    pub fn fake(network: fake::FakeNetwork) -> Self {
        Connector {
            fake: Some(network),
            ..Connector::new(false)
        }
    }

    #[cfg(test)]
    pub fn fake_network(&self) -> Option<&fake::FakeNetwork> {
        self.fake.as_ref()
    }

    /// Connects to `host` within `limit` (and the host's own connect timeout, the shorter):
    /// reading its credentials and keys, its jump hosts, the handshake and authentication all
    /// count.
    pub async fn connect(
        &self,
        host: &Host,
        limit: Duration,
    ) -> Result<Box<dyn Connection>, TransportError> {
        let limit = limit.min(host.connect_timeout);
        #[cfg(test)]
        if let Some(fake) = &self.fake {
            return fake.connect(&host.name, limit).await;
        }
        match &host.transport {
            HostTransport::Ssh(settings) => {
                let target = ssh::SshTarget::of(host, settings);
                let conn = self.ssh.connect(&target, &self.secrets, limit).await?;
                Ok(Box::new(conn))
            }
            HostTransport::WinRm(settings) => {
                let dialer =
                    dial::Dialer::through(self.ssh.clone(), self.secrets.clone(), &host.jump);
                let conn = winrm::connect(host, settings, &self.secrets, dialer, limit).await?;
                Ok(Box::new(conn))
            }
        }
    }
}

/// A fetched file's destination refused bytes: more than the host declared (`InvalidData`, the
/// host's doing: a protocol error) or the disk failed (the share's).
pub fn sink_error(path: &str, e: std::io::Error) -> TransportError {
    if e.kind() == std::io::ErrorKind::InvalidData {
        TransportError::new(ErrorKind::Protocol, format!("{path}: {e}"))
    } else {
        TransportError::new(
            ErrorKind::Share,
            format!("writing {path} to the share: {e}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_s_stderr_is_quoted_short() {
        let out = ExecOutput {
            stderr: format!("first\n\nsecond\n{}\n", "é".repeat(5000)).into_bytes(),
            ..ExecOutput::default()
        };
        let tail = out.stderr_tail();
        assert!(tail.starts_with("first | second | éé"), "{tail}");
        assert_eq!(tail.chars().count(), STDERR_TAIL_CHARS + 1);
        assert!(tail.ends_with('…'));
    }
}
