//! A host's failure as a typed value: what kind of failure (so that retries, failure budgets and
//! exit codes can tell a refused host key from a timeout from a broken agent), in which phase,
//! and a message for people. A host's failure is a result of the run, never an error of it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What went wrong, in the words JSON carries as `error_kind` (docs/json-output.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// No connection: refused, no route, DNS, reset before the handshake finished.
    Unreachable,
    /// The host key is unknown, changed or revoked (SSH), or the certificate is not trusted.
    HostKey,
    /// The host refused the credentials.
    Auth,
    /// The credential could not be read on the controller (variable unset, file or password
    /// command failed).
    Credential,
    /// A deadline passed.
    Timeout,
    /// The agent did not start, failed, or answered something that is not its document.
    Agent,
    /// The protocol broke (handshake, channel, output too large).
    Protocol,
    /// The host refused a request (a subsystem, a file write).
    Refused,
    /// What the inventory asks for cannot be done (a transport not built yet, a Linux host
    /// without `lab_root`).
    Unsupported,
    /// The run was interrupted before or while this host was worked on.
    Interrupted,
    /// Not started: the failure budget was spent.
    Skipped,
    /// The central share could not be written, or what was written did not read back the same.
    Share,
    /// `ecfleet run`: the phase a host failed in (docs/run.md) ...
    Preflight,
    Backup,
    Stage,
    Upgrade,
    Verify,
    /// ... or how its upgrade ended: the operator did not finish in time, or the versions
    /// still disagree.
    OperatorTimeout,
    VersionMismatch,
}

impl ErrorKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::HostKey => "host-key",
            ErrorKind::Auth => "auth",
            ErrorKind::Credential => "credential",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Agent => "agent",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Refused => "refused",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::Skipped => "skipped",
            ErrorKind::Share => "share",
            ErrorKind::Preflight => "preflight",
            ErrorKind::Backup => "backup",
            ErrorKind::Stage => "stage",
            ErrorKind::Upgrade => "upgrade",
            ErrorKind::Verify => "verify",
            ErrorKind::OperatorTimeout => "operator-timeout",
            ErrorKind::VersionMismatch => "version-mismatch",
        }
    }

    /// The kind of a run's host that failed in `phase` (a phase of docs/run.md).
    pub fn of_failed_phase(phase: Phase) -> ErrorKind {
        match phase {
            Phase::Preflight => ErrorKind::Preflight,
            Phase::Backup => ErrorKind::Backup,
            Phase::Stage => ErrorKind::Stage,
            Phase::Upgrade => ErrorKind::Upgrade,
            Phase::Verify => ErrorKind::Verify,
            _ => ErrorKind::Agent,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in a host's work something happened or failed: one enum for errors, the run's
/// records and the engine's events (serialized as kebab-case words, `preflight`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Opening the session: TCP, handshake, host key, credentials, authentication.
    Connect,
    /// Finding the shell and putting the agent on the host.
    Provision,
    /// Running an agent step.
    Agent,
    /// Before the host's work started (interrupted, budget spent).
    Schedule,
    /// `ecfleet run` phase 1: fresh facts against the plan.
    Preflight,
    /// Fetching a backup from the host and storing it on the share (`ecfleet run` phase 2).
    Backup,
    /// Sending the installer to the host and checking it there (phase 3's first half).
    Stage,
    /// The operator's upgrade, watched (phase 3).
    Upgrade,
    /// Phase 4.
    Verify,
    /// `--wait-for-window`: waiting for the tenant's maintenance window.
    Window,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Provision => "provision",
            Phase::Agent => "agent",
            Phase::Schedule => "schedule",
            Phase::Preflight => "preflight",
            Phase::Backup => "backup",
            Phase::Stage => "stage",
            Phase::Upgrade => "upgrade",
            Phase::Verify => "verify",
            Phase::Window => "window",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One host's failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError {
    pub kind: ErrorKind,
    pub phase: Phase,
    pub message: String,
}

impl HostError {
    pub fn new(kind: ErrorKind, phase: Phase, message: impl Into<String>) -> Self {
        HostError {
            kind,
            phase,
            message: message.into(),
        }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HostError {}
