//! Agent provisioning: find the agent builds next to the controller, decide where the agent
//! lives on each host, and run it there, uploading it only when the host's copy cannot prove it
//! is the expected build (docs/agent.md), whatever the transport.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;

use super::shell::{self, QuoteError, RemoteShell};
use crate::transport::{Connection, ExecOutput, Payload, TransportError};

/// Where the Windows agent lives on a real host.
pub const WINDOWS_AGENT_DIR: &str = r"C:\ProgramData\ecfleet";

/// One agent binary, read once and shared by every host's upload.
#[derive(Clone)]
pub struct AgentBuild {
    pub path: PathBuf,
    pub payload: Payload,
}

impl AgentBuild {
    pub fn load(path: &Path) -> std::io::Result<Self> {
        let data = std::fs::read(path)?;
        Ok(AgentBuild {
            path: path.to_path_buf(),
            payload: Payload::new(Bytes::from(data)),
        })
    }

    pub fn sha256(&self) -> &str {
        &self.payload.sha256
    }
}

/// An agent build found on disk, read the first time a host needs it: a fleet without Windows
/// hosts never reads the Windows build (24 MB in a debug build), and every host shares the one
/// copy once it is read.
#[derive(Clone)]
pub struct LazyBuild {
    path: PathBuf,
    loaded: std::sync::Arc<std::sync::OnceLock<Option<AgentBuild>>>,
}

impl LazyBuild {
    pub fn at(path: PathBuf) -> Self {
        LazyBuild {
            path,
            loaded: Default::default(),
        }
    }

    /// A build already in memory (tests).
    pub fn ready(build: AgentBuild) -> Self {
        let loaded = std::sync::OnceLock::new();
        let _ = loaded.set(Some(build.clone()));
        LazyBuild {
            path: build.path,
            loaded: std::sync::Arc::new(loaded),
        }
    }

    /// The build, read now if it was not yet; `None` when it cannot be read.
    pub fn get(&self) -> Option<&AgentBuild> {
        self.loaded
            .get_or_init(|| AgentBuild::load(&self.path).ok())
            .as_ref()
    }
}

/// The Linux and Windows agent builds, either of which may be missing.
#[derive(Clone, Default)]
pub struct AgentBuilds {
    pub linux: Option<LazyBuild>,
    pub windows: Option<LazyBuild>,
}

impl AgentBuilds {
    /// Looks for `ecfleet-agent` and `ecfleet-agent.exe` where the documented build puts them:
    /// beside the controller binary (`target/<profile>/`), and for Windows also
    /// `target/x86_64-pc-windows-gnu/<profile>/`. `explicit_dir` (from `--agent-dir`) wins.
    pub fn discover(controller_exe: Option<&Path>, explicit_dir: Option<&Path>) -> Self {
        let mut dirs: Vec<PathBuf> = Vec::new();
        if let Some(d) = explicit_dir {
            dirs.push(d.to_path_buf());
        }
        if let Some(dir) = controller_exe.and_then(Path::parent) {
            dirs.push(dir.to_path_buf());
            // target/<profile>/ecfleet → target/x86_64-pc-windows-gnu/{release,debug}/
            if let Some(target) = dir.parent() {
                for profile in ["release", "debug"] {
                    dirs.push(target.join("x86_64-pc-windows-gnu").join(profile));
                }
            }
            // Test binaries live in target/<profile>/deps/.
            if dir.ends_with("deps")
                && let Some(profile_dir) = dir.parent()
            {
                dirs.push(profile_dir.to_path_buf());
                if let Some(target) = profile_dir.parent() {
                    for profile in ["release", "debug"] {
                        dirs.push(target.join("x86_64-pc-windows-gnu").join(profile));
                    }
                }
            }
        }
        let find = |name: &str| {
            dirs.iter()
                .map(|d| d.join(name))
                .find(|p| p.is_file())
                .map(LazyBuild::at)
        };
        AgentBuilds {
            linux: find("ecfleet-agent"),
            windows: find("ecfleet-agent.exe"),
        }
    }

    pub fn for_shell(&self, shell: RemoteShell) -> Option<&AgentBuild> {
        if shell.is_windows() {
            self.windows.as_ref()?.get()
        } else {
            self.linux.as_ref()?.get()
        }
    }
}

/// Where the agent goes on a host: under the lab root for simulated hosts, else the Windows
/// default.
pub fn agent_path(shell: RemoteShell, lab_root: Option<&str>) -> Result<String, String> {
    match (shell, lab_root) {
        (_, Some(root)) => Ok(shell.join(&shell.join(root, ".ecfleet"), agent_file_name(shell))),
        (RemoteShell::Posix, None) => {
            Err("a Linux host can only be a lab host: set lab_root for it in the inventory".into())
        }
        (_, None) => Ok(shell.join(WINDOWS_AGENT_DIR, agent_file_name(shell))),
    }
}

fn agent_file_name(shell: RemoteShell) -> &'static str {
    if shell.is_windows() {
        "ecfleet-agent.exe"
    } else {
        "ecfleet-agent"
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Quote(#[from] QuoteError),
    #[error(
        "the agent at {path} did not start even after a fresh upload ({detail}); check that the host can run it (antivirus, AppLocker, noexec mounts)"
    )]
    NotStarted { path: String, detail: String },
}

/// Runs the agent with `args`, provisioning it only when needed, in one round trip when the
/// host's copy is current: the launch command ([`RemoteShell::agent_launch_command`]) makes the
/// agent check its own SHA-256 against `build` and say so on its first line before it does
/// anything (that matters where every remote command starts a new PowerShell). Output without
/// that proof (the file is missing, older, damaged or cannot run) means: upload the build (temp
/// file and rename) and send the command again, which verifies the upload the same way. The
/// returned output starts after the proof line.
pub async fn run_agent(
    t: &dyn Connection,
    shell: RemoteShell,
    build: &AgentBuild,
    path: &str,
    args: &[&str],
    limit: Duration,
) -> Result<ExecOutput, ProvisionError> {
    let command = shell.agent_launch_command(path, build.sha256(), args)?;
    if let Ok(output) = after_ready_line(t.exec(&command, limit).await?, build.sha256()) {
        return Ok(output);
    }
    t.put(&build.payload, path, Some(0o755), limit).await?;
    after_ready_line(t.exec(&command, limit).await?, build.sha256()).map_err(|unproven| {
        ProvisionError::NotStarted {
            path: path.to_string(),
            detail: describe(&unproven),
        }
    })
}

/// The output after the agent's proof line (`ecfleet-agent-ok <sha256>`); the whole output
/// back as `Err` when it does not start with the proof for `sha256`.
fn after_ready_line(mut output: ExecOutput, sha256: &str) -> Result<ExecOutput, ExecOutput> {
    let proof_end = output
        .stdout
        .iter()
        .position(|&b| b == b'\n')
        .filter(|&newline| {
            std::str::from_utf8(&output.stdout[..newline])
                .ok()
                .and_then(|line| line.trim().strip_prefix(shell::AGENT_READY_PREFIX))
                .is_some_and(|proof| proof.trim().eq_ignore_ascii_case(sha256))
        });
    match proof_end {
        Some(newline) => {
            output.stdout.drain(..=newline);
            Ok(output)
        }
        None => Err(output),
    }
}

/// A short account of a launch that gave no proof, for the error message.
fn describe(output: &ExecOutput) -> String {
    let status = match (output.exit_status, &output.signal) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        _ => "no exit status".into(),
    };
    let stdout = output.stdout_text();
    let said = [stdout.trim(), output.stderr_tail().as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.chars().take(200).collect::<String>())
        .collect::<Vec<_>>()
        .join(" | ");
    if said.is_empty() {
        status
    } else {
        format!("{status}: {said}")
    }
}

/// Works out which shell the host runs: `uname` answers on POSIX; on Windows, `%COMSPEC%`
/// expands under cmd and stays literal under PowerShell.
pub async fn detect_shell(
    t: &dyn Connection,
    limit: Duration,
) -> Result<RemoteShell, TransportError> {
    let uname = t.exec("uname -s", limit).await?;
    if uname.success() && !uname.stdout_text().trim().is_empty() {
        return Ok(RemoteShell::Posix);
    }
    let comspec = t.exec("echo %COMSPEC%", limit).await?;
    if comspec.stdout_text().contains("%COMSPEC%") {
        Ok(RemoteShell::PowerShell)
    } else {
        Ok(RemoteShell::Cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(stdout: &str) -> ExecOutput {
        ExecOutput {
            stdout: stdout.as_bytes().to_vec(),
            exit_status: Some(0),
            ..Default::default()
        }
    }

    #[test]
    fn only_output_after_the_right_proof_is_trusted() {
        let sha = "ab".repeat(32);
        let ok = after_ready_line(out(&format!("ecfleet-agent-ok {sha}\n{{\"a\":1}}\n")), &sha)
            .expect("proof accepted");
        assert_eq!(ok.stdout_text(), "{\"a\":1}\n");
        // Upper-case hex from a Windows hash is the same proof.
        let upper = format!("ecfleet-agent-ok {}\r\n{{}}", sha.to_uppercase());
        assert!(after_ready_line(out(&upper), &sha).is_ok());
        for untrusted in [
            format!("ecfleet-agent-ok {}\n{{}}", "cd".repeat(32)), // another build
            "ecfleet-agent-mismatch\n".to_string(),                // missing file
            "{\"schema_version\":1}\n".to_string(),                // an agent without the check
            format!("ecfleet-agent-ok {sha}"),                     // no line end: cut short
            String::new(),
        ] {
            assert!(
                after_ready_line(out(&untrusted), &sha).is_err(),
                "{untrusted:?}"
            );
        }
    }
}
