//! The remote side's shell: POSIX `sh` (Linux lab hosts), `cmd.exe` or PowerShell (OpenSSH for
//! Windows, and WinRM). Owns quoting, so that no value is ever pasted into a command line
//! unquoted, and the few commands the controller sends (hash a file, run the agent).

use std::fmt;

pub use ecfleet_proto::{AGENT_MISMATCH_EXIT, AGENT_MISMATCH_MARKER, AGENT_READY_PREFIX};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteShell {
    Posix,
    Cmd,
    PowerShell,
}

impl fmt::Display for RemoteShell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RemoteShell::Posix => "sh",
            RemoteShell::Cmd => "cmd",
            RemoteShell::PowerShell => "powershell",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` cannot be passed safely to {shell}: {why}")]
pub struct QuoteError {
    pub value: String,
    pub shell: RemoteShell,
    pub why: &'static str,
}

impl RemoteShell {
    pub fn is_windows(&self) -> bool {
        !matches!(self, RemoteShell::Posix)
    }

    /// One argument, quoted so the shell passes it through unchanged.
    pub fn quote(&self, value: &str) -> Result<String, QuoteError> {
        let err = |why| QuoteError {
            value: value.to_string(),
            shell: *self,
            why,
        };
        if value.contains(['\0', '\n', '\r']) {
            return Err(err("it contains a control character"));
        }
        match self {
            RemoteShell::Posix => Ok(format!("'{}'", value.replace('\'', r"'\''"))),
            RemoteShell::PowerShell => {
                // Single quotes are literal in PowerShell; typographic quotes count as quotes too.
                let escaped: String = value
                    .chars()
                    .flat_map(|c| match c {
                        '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' => vec![c, c],
                        other => vec![other],
                    })
                    .collect();
                Ok(format!("'{escaped}'"))
            }
            RemoteShell::Cmd => {
                // cmd has no escape inside double quotes; refuse what it would interpret.
                if value.contains(['"', '%', '!', '^']) {
                    return Err(err("cmd.exe cannot quote \", %, ! or ^"));
                }
                Ok(format!("\"{value}\""))
            }
        }
    }

    /// A command line running `program` with `args`, every part quoted.
    pub fn command_line(&self, program: &str, args: &[&str]) -> Result<String, QuoteError> {
        let mut line = match self {
            // `&` makes PowerShell run a quoted path instead of echoing the string.
            RemoteShell::PowerShell => format!("& {}", self.quote(program)?),
            _ => self.quote(program)?,
        };
        for arg in args {
            line.push(' ');
            line.push_str(&self.quote(arg)?);
        }
        Ok(line)
    }

    /// Prints the SHA-256 of `path` as 64 hex digits, or nothing when the file is missing. Not
    /// used by the agent launch any more (the agent checks itself); kept, with its output
    /// parser, for verifying uploaded installers on the host (phase 3).
    pub fn sha256_command(&self, path: &str) -> Result<String, QuoteError> {
        let q = self.quote(path)?;
        Ok(match self {
            RemoteShell::Posix => format!("if [ -f {q} ]; then sha256sum -- {q}; fi"),
            RemoteShell::PowerShell => format!(
                "if (Test-Path -LiteralPath {q} -PathType Leaf) {{ (Get-FileHash -Algorithm SHA256 -LiteralPath {q}).Hash }}"
            ),
            RemoteShell::Cmd => format!("if exist {q} certutil -hashfile {q} SHA256"),
        })
    }

    /// One round trip instead of two: runs the agent at `program` with
    /// `--expect-sha256 SHA256 args…` when the file exists, so that the agent checks its own
    /// hash before doing anything ([`ecfleet_proto::AGENT_MISMATCH_MARKER`]); when the file is
    /// missing, prints the same marker and exits the same way. The check costs no process
    /// beyond the agent itself (the existence tests are shell built-ins).
    pub fn agent_launch_command(
        &self,
        program: &str,
        sha256: &str,
        args: &[&str],
    ) -> Result<String, QuoteError> {
        let q = self.quote(program)?;
        let mut run = self.command_line(program, &["--expect-sha256", sha256])?;
        for arg in args {
            run.push(' ');
            run.push_str(&self.quote(arg)?);
        }
        let marker = AGENT_MISMATCH_MARKER;
        let code = AGENT_MISMATCH_EXIT;
        Ok(match self {
            RemoteShell::Posix => {
                format!("if [ -f {q} ]; then exec {run}; fi; echo {marker}; exit {code}")
            }
            RemoteShell::PowerShell => format!(
                "if (Test-Path -LiteralPath {q} -PathType Leaf) {{ {run}; exit $LASTEXITCODE }}; '{marker}'; exit {code}"
            ),
            RemoteShell::Cmd => {
                format!("if exist {q} ({run}) else (echo {marker}& exit /b {code})")
            }
        })
    }

    /// Joins a directory and a file name with this side's separator.
    pub fn join(&self, dir: &str, name: &str) -> String {
        let sep = if self.is_windows() { '\\' } else { '/' };
        let trimmed = dir.trim_end_matches(['/', '\\']);
        format!("{trimmed}{sep}{name}")
    }
}

/// Finds the 64-hex-digit hash in any of the hash commands' outputs.
pub fn parse_sha256_output(output: &str) -> Option<String> {
    output
        .split(|c: char| !c.is_ascii_hexdigit() && c != ' ')
        .map(|line| line.replace(' ', ""))
        .chain(output.split_whitespace().map(str::to_string))
        .find(|tok| tok.len() == 64 && tok.chars().all(|c| c.is_ascii_hexdigit()))
        .map(|h| h.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posix_quoting_survives_a_real_shell() {
        for value in [
            "plain",
            "it's",
            "$(rm -rf /)",
            "a b\tc",
            "`x`;&|<>*?",
            "'''",
            "",
        ] {
            let q = RemoteShell::Posix.quote(value).unwrap();
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {q}"))
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                value,
                "quoted as {q}"
            );
        }
    }

    #[test]
    fn windows_quoting_doubles_or_refuses() {
        assert_eq!(
            RemoteShell::PowerShell.quote("C:\\it's").unwrap(),
            "'C:\\it''s'"
        );
        assert_eq!(
            RemoteShell::PowerShell.quote("a\u{2019}b").unwrap(),
            "'a\u{2019}\u{2019}b'"
        );
        assert_eq!(
            RemoteShell::Cmd.quote("C:\\Program Files\\x").unwrap(),
            "\"C:\\Program Files\\x\""
        );
        assert!(RemoteShell::Cmd.quote("100%").is_err());
        assert!(RemoteShell::Posix.quote("a\nb").is_err());
        assert_eq!(
            RemoteShell::PowerShell
                .command_line("C:\\ProgramData\\ecfleet\\ecfleet-agent.exe", &["facts"])
                .unwrap(),
            "& 'C:\\ProgramData\\ecfleet\\ecfleet-agent.exe' 'facts'"
        );
    }

    #[test]
    fn hash_outputs_of_all_three_tools_are_read() {
        let h = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(
            parse_sha256_output(&format!("{h}  /srv/agent\n")).as_deref(),
            Some(h)
        );
        assert_eq!(
            parse_sha256_output(&format!("{}\r\n", h.to_uppercase())).as_deref(),
            Some(h)
        );
        let certutil = "SHA256 hash of C:\\x:\r\n9f 86 d0 81 88 4c 7d 65 9a 2f ea a0 c5 5a d0 15 a3 bf 4f 1b 2b 0b 82 2c d1 5d 6c 15 b0 f0 0a 08\r\nCertUtil: -hashfile command completed successfully.\r\n";
        assert_eq!(parse_sha256_output(certutil).as_deref(), Some(h));
        assert_eq!(parse_sha256_output(""), None);
    }

    #[test]
    fn agent_launch_runs_the_file_with_the_self_check_or_reports_it_missing() {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("it's agent");
        // Stands in for the agent: echoes its arguments, exits 3.
        std::fs::write(&program, "#!/bin/sh\nprintf '%s|' \"$@\"\nexit 3\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let run = || {
            let line = RemoteShell::Posix
                .agent_launch_command(program.to_str().unwrap(), "ab12", &["facts", "$x y"])
                .unwrap();
            std::process::Command::new("sh")
                .arg("-c")
                .arg(line)
                .output()
                .unwrap()
        };
        let out = run();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "--expect-sha256|ab12|facts|$x y|"
        );
        assert_eq!(out.status.code(), Some(3), "the program's own exit status");
        std::fs::remove_file(&program).unwrap();
        let out = run();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            AGENT_MISMATCH_MARKER
        );
        assert_eq!(out.status.code(), Some(AGENT_MISMATCH_EXIT as i32));
        assert_eq!(
            RemoteShell::PowerShell
                .agent_launch_command("C:\\e\\a.exe", "ab12", &["facts"])
                .unwrap(),
            "if (Test-Path -LiteralPath 'C:\\e\\a.exe' -PathType Leaf) { & 'C:\\e\\a.exe' '--expect-sha256' 'ab12' 'facts'; exit $LASTEXITCODE }; 'ecfleet-agent-mismatch'; exit 97"
        );
        assert_eq!(
            RemoteShell::Cmd
                .agent_launch_command("C:\\e\\a.exe", "ab12", &["facts"])
                .unwrap(),
            "if exist \"C:\\e\\a.exe\" (\"C:\\e\\a.exe\" \"--expect-sha256\" \"ab12\" \"facts\") else (echo ecfleet-agent-mismatch& exit /b 97)"
        );
    }
}
