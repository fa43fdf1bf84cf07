//! Credentials by reference. The inventory names where a secret lives (an environment variable,
//! a file, a command); the value is read only when a connection needs it, under that host's
//! deadline (a password command that waits at a prompt is killed with its process group; a
//! password "file" that is a FIFO or a device is refused), and is held in [`Secret`], whose
//! `Debug` and `Display` never show it.

use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

/// Most a password file or command may yield.
const MAX_SECRET_BYTES: u64 = 64 << 10;

/// Where a secret is kept. Printing a reference is safe: it names the place, not the value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
    Command(String),
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(var) => write!(f, "environment variable {var}"),
            SecretRef::File(path) => write!(f, "file {}", path.display()),
            SecretRef::Command(_) => write!(f, "the configured password command"),
        }
    }
}

/// Debug never shows a password command line (it may carry a vault path or token name).
impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(var) => f.debug_tuple("Env").field(var).finish(),
            SecretRef::File(path) => f.debug_tuple("File").field(path).finish(),
            SecretRef::Command(_) => f.write_str("Command(<redacted>)"),
        }
    }
}

/// A secret value. It can be used, but not printed or logged by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    /// The value itself, for the one place that hands it to the transport.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("{0} is not set")]
    EnvMissing(String),
    #[error("cannot read the secret from {0}: {1}")]
    File(String, String),
    #[error("the password command failed ({0}); run it by hand to see why")]
    Command(String),
    #[error(
        "the password command gave no answer within {0} s and was stopped; run it by hand (does it wait for input or a prompt?)"
    )]
    CommandTimeout(u64),
    #[error("reading the secret from {0} took longer than {1} s")]
    FileTimeout(String, u64),
    #[error("the secret from {0} is empty")]
    Empty(String),
}

impl SecretRef {
    /// Reads the secret within `limit`. Trailing newlines (from files and commands) are not
    /// part of it.
    pub async fn resolve(&self, limit: Duration) -> Result<Secret, SecretError> {
        let raw = match self {
            SecretRef::Env(var) => std::env::var(var)
                .map_err(|_| SecretError::EnvMissing(format!("environment variable {var}")))?,
            SecretRef::File(path) => {
                let p = path.clone();
                let read = tokio::task::spawn_blocking(move || {
                    crate::fsread::read_regular(&p, MAX_SECRET_BYTES)
                });
                let shown = path.display().to_string();
                let bytes = match tokio::time::timeout(limit, read).await {
                    Err(_) => return Err(SecretError::FileTimeout(shown, limit.as_secs())),
                    Ok(Err(join)) => return Err(SecretError::File(shown, join.to_string())),
                    Ok(Ok(Err(e))) => return Err(SecretError::File(shown, e.to_string())),
                    Ok(Ok(Ok(b))) => b,
                };
                String::from_utf8(bytes)
                    .map_err(|_| SecretError::File(shown, "not UTF-8 text".into()))?
            }
            SecretRef::Command(cmd) => run_password_command(cmd, limit).await?,
        };
        let value = raw.trim_end_matches(['\r', '\n']).to_string();
        if value.is_empty() {
            return Err(SecretError::Empty(self.to_string()));
        }
        Ok(Secret(value))
    }
}

/// Runs a password command in a process group of its own (so that it never owns the terminal:
/// a prompt on /dev/tty stops it instead of waiting for a keystroke), with no stdin and stderr
/// discarded (a failing helper may echo what it read); at the deadline the whole group is
/// killed.
async fn run_password_command(cmd: &str, limit: Duration) -> Result<String, SecretError> {
    let mut command = shell_command(cmd);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    #[cfg(unix)]
    command.process_group(0);
    let mut child = command
        .spawn()
        .map_err(|e| SecretError::Command(e.to_string()))?;
    let pid = child.id();
    // Whatever ends this function (an answer, the deadline, or the caller giving up on the
    // whole connection) ends the command's process group too.
    let _group = GroupGuard(pid);
    let mut stdout = child.stdout.take();
    let run = async {
        let mut buf = Vec::new();
        if let Some(out) = stdout.as_mut() {
            out.take(MAX_SECRET_BYTES + 1)
                .read_to_end(&mut buf)
                .await
                .map_err(|e| SecretError::Command(e.to_string()))?;
        }
        let status = child
            .wait()
            .await
            .map_err(|e| SecretError::Command(e.to_string()))?;
        Ok::<_, SecretError>((buf, status))
    };
    let (out, status) = match tokio::time::timeout(limit, run).await {
        Ok(r) => r?,
        Err(_) => return Err(SecretError::CommandTimeout(limit.as_secs())),
    };
    if !status.success() {
        return Err(SecretError::Command(format!("exit status {status}")));
    }
    if out.len() as u64 > MAX_SECRET_BYTES {
        return Err(SecretError::Command("it printed more than 64 KiB".into()));
    }
    String::from_utf8(out).map_err(|_| SecretError::Command("output is not UTF-8".into()))
}

/// Kills the password command's process group when dropped.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_group(self.0);
    }
}

/// Kills a password command's whole process group (what it started too).
fn kill_group(pid: Option<u32>) {
    #[cfg(unix)]
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    #[cfg(not(unix))]
    let _ = pid;
}

#[cfg(unix)]
fn shell_command(cmd: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c").arg(cmd);
    c
}

#[cfg(windows)]
fn shell_command(cmd: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("cmd");
    c.arg("/C").arg(cmd);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_command_is_not_shown_by_debug() {
        let r = SecretRef::Command("vault read -field=pw secret/ec/contoso".into());
        assert_eq!(format!("{r:?}"), "Command(<redacted>)");
        assert_eq!(
            format!("{:?}", SecretRef::Env("EC_PW".into())),
            "Env(\"EC_PW\")"
        );
    }

    #[test]
    fn secrets_never_print_their_value() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s}"), "<redacted>");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{:?}", Some(s.clone())).contains("hunter2"));
    }

    const LIMIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn file_and_command_references_resolve_without_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let file = SecretRef::File(path);
        assert_eq!(file.resolve(LIMIT).await.unwrap().expose(), "s3cret");
        let cmd = SecretRef::Command("printf 'from-cmd\\n'".into());
        assert_eq!(cmd.resolve(LIMIT).await.unwrap().expose(), "from-cmd");
        let failing = SecretRef::Command("echo leaked >&2; exit 3".into());
        let err = failing.resolve(LIMIT).await.unwrap_err().to_string();
        assert!(!err.contains("leaked"), "{err}");
        let missing = SecretRef::Env("ECFLEET_TEST_SURELY_UNSET_VAR".into());
        let err = missing.resolve(LIMIT).await.unwrap_err().to_string();
        assert!(err.contains("is not set"), "{err}");
    }

    #[tokio::test]
    async fn a_waiting_password_command_is_killed_with_its_children_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child-alive");
        // A vault CLI at a prompt: it waits, and so does a child it started.
        let cmd = SecretRef::Command(format!(
            "(sleep 30; touch '{}') & read answer; echo pw",
            marker.display()
        ));
        let started = std::time::Instant::now();
        let err = cmd.resolve(Duration::from_millis(300)).await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert!(matches!(err, SecretError::CommandTimeout(_)), "{err}");
        // The group was killed: `ps` no longer lists the child sleeping for the marker.
        let ps = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ps -eo args | grep -F \"touch '{}'\" | grep -v grep",
                marker.display()
            ))
            .output()
            .unwrap();
        assert!(
            ps.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&ps.stdout)
        );
    }

    #[tokio::test]
    async fn a_fifo_or_a_device_as_password_file_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pw.fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let err = SecretRef::File(fifo)
            .resolve(LIMIT)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("FIFO"), "{err}");
        let err = SecretRef::File("/dev/zero".into())
            .resolve(LIMIT)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("device"), "{err}");
    }
}
