//! Credentials by reference. The inventory names where a secret lives (an environment variable,
//! a file, a command); the value is read only when a connection needs it and is held in
//! [`Secret`], whose `Debug` and `Display` never show it.

use std::fmt;
use std::path::PathBuf;
use std::process::Command;

/// Where a secret is kept. Printing a reference is safe: it names the place, not the value.
#[derive(Clone, PartialEq, Eq)]
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

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{0} is not set")]
    EnvMissing(String),
    #[error("cannot read the secret from {0}: {1}")]
    File(String, std::io::Error),
    #[error("the password command failed ({0}); run it by hand to see why")]
    Command(String),
    #[error("the secret from {0} is empty")]
    Empty(String),
}

impl SecretRef {
    /// Reads the secret. Trailing newlines (from files and commands) are not part of it.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        let raw = match self {
            SecretRef::Env(var) => std::env::var(var)
                .map_err(|_| SecretError::EnvMissing(format!("environment variable {var}")))?,
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map_err(|e| SecretError::File(path.display().to_string(), e))?,
            SecretRef::Command(cmd) => {
                let out = shell_command(cmd)
                    .output()
                    .map_err(|e| SecretError::Command(e.to_string()))?;
                if !out.status.success() {
                    // stderr is not shown: a failing password helper may echo what it read.
                    return Err(SecretError::Command(format!("exit status {}", out.status)));
                }
                String::from_utf8(out.stdout)
                    .map_err(|_| SecretError::Command("output is not UTF-8".into()))?
            }
        };
        let value = raw.trim_end_matches(['\r', '\n']).to_string();
        if value.is_empty() {
            return Err(SecretError::Empty(self.to_string()));
        }
        Ok(Secret(value))
    }
}

#[cfg(unix)]
fn shell_command(cmd: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd);
    c
}

#[cfg(windows)]
fn shell_command(cmd: &str) -> Command {
    let mut c = Command::new("cmd");
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

    #[test]
    fn file_and_command_references_resolve_without_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(SecretRef::File(path).resolve().unwrap().expose(), "s3cret");
        let cmd = SecretRef::Command("printf 'from-cmd\\n'".into());
        assert_eq!(cmd.resolve().unwrap().expose(), "from-cmd");
        let failing = SecretRef::Command("echo leaked >&2; exit 3".into());
        let err = failing.resolve().unwrap_err().to_string();
        assert!(!err.contains("leaked"), "{err}");
        let missing = SecretRef::Env("ECFLEET_TEST_SURELY_UNSET_VAR".into());
        assert!(
            missing
                .resolve()
                .unwrap_err()
                .to_string()
                .contains("is not set")
        );
    }
}
