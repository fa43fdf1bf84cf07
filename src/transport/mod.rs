//! How the controller reaches a host: one small API (connect, run a command, upload, download,
//! close) with one implementation per protocol. Only `ssh` exists so far; `winrm` is planned
//! (design/WINRM.md). Errors here are per-host results, never reasons to stop a run.

pub mod remote;
pub mod ssh;

use std::time::Duration;

use bytes::Bytes;

/// What a remote command produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// `None` when the command died without an exit status (see `signal`).
    pub exit_status: Option<u32>,
    pub signal: Option<String>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit_status == Some(0)
    }
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    /// The last lines of stderr, for an error message.
    pub fn stderr_tail(&self) -> String {
        let text = String::from_utf8_lossy(&self.stderr);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(3)..].join(" | ")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("{what} timed out after {secs} s")]
    Timeout { what: String, secs: u64 },
    #[error(
        "host key of {host} ({fingerprint}) is not in {file}; check the fingerprint on the host (ssh-keygen -lf on its host key), then run again with --accept-new-host-keys to record it"
    )]
    HostKeyUnknown {
        host: String,
        fingerprint: String,
        file: String,
    },
    #[error(
        "HOST KEY CHANGED for {host}: it offered {fingerprint}, but {file}:{line} records another key; this can be an attack. If the host was rebuilt, verify the new key and remove line {line}"
    )]
    HostKeyChanged {
        host: String,
        fingerprint: String,
        file: String,
        line: usize,
    },
    #[error("host key {fingerprint} of {host} is revoked in {file}:{line}")]
    HostKeyRevoked {
        host: String,
        fingerprint: String,
        file: String,
        line: usize,
    },
    #[error(
        "authentication as {user} on {host} failed (tried: {tried}); check the user and that the key is in the host's authorized_keys"
    )]
    Auth {
        user: String,
        host: String,
        tried: String,
    },
    #[error("{0}")]
    Credential(String),
    #[error("ssh: {0}")]
    Protocol(String),
    #[error("sftp {path}: {message}")]
    Sftp { path: String, message: String },
    #[error(transparent)]
    Quote(#[from] remote::QuoteError),
    #[error("{0}")]
    Unsupported(String),
}

/// The operations every transport offers. Hosts are driven through this, never through a
/// concrete protocol type.
pub trait Transport: Send + Sync {
    fn exec(
        &self,
        command: &str,
        limit: Duration,
    ) -> impl Future<Output = Result<ExecOutput, TransportError>> + Send;
    fn upload(
        &self,
        data: Bytes,
        path: &str,
        mode: Option<u32>,
        limit: Duration,
    ) -> impl Future<Output = Result<(), TransportError>> + Send;
    fn download(
        &self,
        path: &str,
        limit: Duration,
    ) -> impl Future<Output = Result<Vec<u8>, TransportError>> + Send;
}

impl Transport for ssh::SshConnection {
    async fn exec(&self, command: &str, limit: Duration) -> Result<ExecOutput, TransportError> {
        ssh::SshConnection::exec(self, command, limit).await
    }
    async fn upload(
        &self,
        data: Bytes,
        path: &str,
        mode: Option<u32>,
        limit: Duration,
    ) -> Result<(), TransportError> {
        ssh::SshConnection::upload(self, data, path, mode, limit).await
    }
    async fn download(&self, path: &str, limit: Duration) -> Result<Vec<u8>, TransportError> {
        ssh::SshConnection::download(self, path, limit).await
    }
}
