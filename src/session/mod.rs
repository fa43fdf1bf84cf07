//! One host session, whatever its transport: [`HostSession::open`] connects through the run's
//! [`Connector`], and the session can run a command, put a file (given its SHA-256), get a file,
//! and run an agent step (`session.agent(step, args)` → a typed JSON document), then close.
//! Shell detection and agent provisioning live here; how the agent is started (with
//! `--backend lab --lab-root …` for a simulated host) is the only thing that differs between a
//! lab host and a real one. Every failure is a [`HostError`] with its kind and phase.

pub mod agent;
pub mod shell;

use std::time::Duration;

use tokio::time::Instant;

pub use agent::{AgentBuild, AgentBuilds, LazyBuild};
pub use shell::RemoteShell;

use ecfleet_proto::step::{Document, Step};

use crate::error::{ErrorKind, HostError, Phase};
use crate::inventory::{Host, RemoteOs};
use crate::transport::{self, Connection, ExecOutput, Payload, TransportError};

/// How long after the session's deadline its own operations give up (see `remaining`).
const DEADLINE_GRACE: Duration = Duration::from_millis(500);

/// What every host session of one run shares: the transports' caches and the agent builds.
pub struct Connector {
    transports: transport::Connector,
    agents: AgentBuilds,
}

impl Connector {
    pub fn new(transports: transport::Connector, agents: AgentBuilds) -> Self {
        Connector { transports, agents }
    }

    /// The fake network behind a test connector.
    #[cfg(test)]
    pub fn fake_network(&self) -> Option<&transport::fake::FakeNetwork> {
        self.transports.fake_network()
    }
}

/// An open session with one host. Every operation runs within what is left of the session's
/// deadline.
pub struct HostSession<'a> {
    host: &'a Host,
    connector: &'a Connector,
    conn: Box<dyn Connection>,
    shell: Option<RemoteShell>,
    deadline: Instant,
}

fn host_error(phase: Phase) -> impl Fn(TransportError) -> HostError {
    move |e| HostError::new(e.kind, phase, e.message)
}

impl<'a> HostSession<'a> {
    /// Connects to `host`; the session's operations share the time until `deadline`.
    pub async fn open(
        host: &'a Host,
        connector: &'a Connector,
        deadline: Instant,
    ) -> Result<HostSession<'a>, HostError> {
        let limit = deadline.saturating_duration_since(Instant::now()) + DEADLINE_GRACE;
        let conn = connector
            .transports
            .connect(host, limit)
            .await
            .map_err(host_error(Phase::Connect))?;
        Ok(HostSession {
            host,
            connector,
            conn,
            shell: match host.os {
                Some(RemoteOs::Linux) => Some(RemoteShell::Posix),
                _ => None,
            },
            deadline,
        })
    }

    /// Replaces the session's connection with a new one (after a transfer was cut: the old one
    /// may be dead, or half-alive). The shell and the deadline stay.
    pub async fn reconnect(&mut self) -> Result<(), HostError> {
        let conn = self
            .connector
            .transports
            .connect(self.host, self.remaining())
            .await
            .map_err(host_error(Phase::Connect))?;
        let old = std::mem::replace(&mut self.conn, conn);
        // Bounded, and the old connection may be gone already: nothing to wait for.
        let _ = tokio::time::timeout(Duration::from_secs(2), old.close()).await;
        Ok(())
    }

    /// Moves the session's deadline (a session kept open across a watch's polls: each poll has
    /// its own).
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    /// What is left of the session's deadline, plus a moment: the engine's host deadline is
    /// the one that reports a hung host, so the session's own timeouts fire just after it.
    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now()) + DEADLINE_GRACE
    }

    pub async fn exec(&self, command: &str) -> Result<ExecOutput, HostError> {
        self.conn
            .exec(command, self.remaining())
            .await
            .map_err(host_error(Phase::Agent))
    }

    pub async fn put(
        &self,
        file: &Payload,
        path: &str,
        mode: Option<u32>,
    ) -> Result<(), HostError> {
        self.conn
            .put(file, path, mode, self.remaining())
            .await
            .map_err(host_error(Phase::Provision))
    }

    /// Sends the part of `file` that `path` on the host lacks ([`Connection::put_from`]);
    /// returns the bytes sent.
    pub async fn put_from(&self, file: &Payload, path: &str) -> Result<u64, HostError> {
        self.conn
            .put_from(file, path, self.remaining())
            .await
            .map_err(host_error(Phase::Stage))
    }

    /// How the last file went, where the transport has more than one way
    /// ([`Connection::transfer_method`]).
    pub fn transfer_method(&self) -> Option<String> {
        self.conn.transfer_method()
    }

    /// Where a file of content `sha256` is staged on the host: `staged\<sha256 prefix>\name`
    /// in the agent's folder (`C:\ProgramData\ecfleet`, or `<lab_root>/.ecfleet`).
    pub async fn staged_path(&mut self, sha256: &str, name: &str) -> Result<String, HostError> {
        let shell = self.shell().await?;
        let agent = agent::agent_path(shell, self.host.lab_root.as_deref())
            .map_err(|m| HostError::new(ErrorKind::Unsupported, Phase::Stage, m))?;
        let dir = agent
            .rsplit_once(['/', '\\'])
            .map(|(d, _)| d.to_string())
            .unwrap_or_default();
        let staged = shell.join(
            &shell.join(&dir, "staged"),
            &crate::stage::staged_folder(sha256),
        );
        Ok(shell.join(&staged, name))
    }

    /// Reads the host's file `path` (at most `max_bytes`) into `out` as it arrives.
    pub async fn get(
        &self,
        path: &str,
        max_bytes: u64,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<u64, HostError> {
        self.conn
            .get(path, max_bytes, self.remaining(), out)
            .await
            .map_err(host_error(Phase::Agent))
    }

    /// The host's shell: from the inventory's `os`, else detected once per session (Windows
    /// hosts run PowerShell as the OpenSSH default shell in most fleets, but cmd needs other
    /// quoting).
    pub async fn shell(&mut self) -> Result<RemoteShell, HostError> {
        if let Some(shell) = self.shell {
            return Ok(shell);
        }
        let shell = agent::detect_shell(self.conn.as_ref(), self.remaining())
            .await
            .map_err(host_error(Phase::Provision))?;
        self.shell = Some(shell);
        Ok(shell)
    }

    /// Runs agent step `step` (the agent provisioned first when the host's copy is not the
    /// expected build) and reads its JSON document, which must say it is a `T` of the schema
    /// this controller speaks: checked here, once, for every step.
    pub async fn agent<T: Document>(&mut self, step: &Step) -> Result<T, HostError> {
        let shell = self.shell().await?;
        let provision =
            |message: String| HostError::new(ErrorKind::Agent, Phase::Provision, message);
        let build = self.connector.agents.for_shell(shell).ok_or_else(|| {
            let which = if shell.is_windows() {
                "ecfleet-agent.exe (cargo build --release -p ecfleet-agent --target x86_64-pc-windows-gnu)"
            } else {
                "ecfleet-agent (cargo build --release)"
            };
            provision(format!(
                "no agent build for a {shell} host: build {which}, or point --agent-dir at it"
            ))
        })?;
        let path = agent::agent_path(shell, self.host.lab_root.as_deref())
            .map_err(|m| HostError::new(ErrorKind::Unsupported, Phase::Provision, m))?;
        let args = step.to_args();
        let mut full: Vec<&str> = args.iter().map(String::as_str).collect();
        if let Some(root) = &self.host.lab_root {
            full.extend(["--backend", "lab", "--lab-root", root.as_str()]);
        }
        let out = agent::run_agent(
            self.conn.as_ref(),
            shell,
            build,
            &path,
            &full,
            self.remaining(),
        )
        .await
        .map_err(|e| match e {
            agent::ProvisionError::Transport(t) => HostError::new(
                t.kind,
                Phase::Provision,
                format!("agent provisioning: {}", t.message),
            ),
            other => provision(format!("agent provisioning: {other}")),
        })?;
        let failed = |message: String| HostError::new(ErrorKind::Agent, Phase::Agent, message);
        if !out.success() {
            let status = out
                .exit_status
                .map(|s| format!("exit status {s}"))
                .or(out.signal.clone())
                .unwrap_or_else(|| "no exit status".into());
            return Err(failed(format!(
                "the agent failed ({status}): {}",
                out.stderr_tail()
            )));
        }
        let text = out.stdout_text();
        let step = step.name();
        let document: T = serde_json::from_str(text.trim()).map_err(|e| {
            failed(format!(
                "the agent's answer to {step} is not a {} document ({e}): {}",
                T::KIND,
                crate::checks::shown(&text.chars().take(120).collect::<String>())
            ))
        })?;
        if document.kind() != T::KIND || document.schema_version() != T::SCHEMA_VERSION {
            return Err(failed(format!(
                "the agent answered {step} with a {} document of schema {}, not a {} of schema {}: an agent of another ecfleet version",
                crate::checks::shown(document.kind()),
                document.schema_version(),
                T::KIND,
                T::SCHEMA_VERSION
            )));
        }
        Ok(document)
    }

    /// Ends the session (bounded).
    pub async fn close(self) {
        self.conn.close().await;
    }
}
