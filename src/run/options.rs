//! The options a run was started with, kept in its ledger (`run.json` `options`, and the
//! playbook's text as `playbook.toml`) so that `run --resume` carries the run on exactly as it
//! began: an option left out is the recorded one, an option given must agree with it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cli::RunArgs;

/// What a run was started with, as `run.json` keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOptions {
    /// The installer's absolute path when the run started.
    pub msi: PathBuf,
    /// The installer's SHA-256 (its payload's, as `Installer::load` read it).
    pub sha256: String,
    pub ignore_windows: bool,
    pub wait_for_window: bool,
    pub max_failures: Option<String>,
    pub canary: Option<u32>,
    pub continue_after_canary: bool,
    /// The playbook file given (its text is the ledger's `playbook.toml`); `None`: the built-in.
    pub playbook: Option<PathBuf>,
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

impl RunOptions {
    /// A new run's options, from its command line and the installer it loaded.
    pub fn of_new_run(args: &RunArgs, msi: &Path, sha256: &str) -> RunOptions {
        RunOptions {
            msi: absolute(msi),
            sha256: sha256.to_ascii_lowercase(),
            ignore_windows: args.ignore_windows,
            wait_for_window: args.wait_for_window,
            max_failures: args.max_failures.clone(),
            canary: args.canary,
            continue_after_canary: args.continue_after_canary,
            playbook: args.playbook.as_deref().map(absolute),
        }
    }

    /// A resumed run's options: the recorded ones, with every option given on the command line
    /// checked against them. A conflict is an error naming the option and what the run started
    /// with. (The installer given is checked by its hash, where it is loaded.)
    pub fn resumed(recorded: RunOptions, args: &RunArgs, run_id: &str) -> Result<Self, String> {
        let mut conflicts = Vec::new();
        let mut flag = |name: &str, given: bool, kept: bool| {
            if given && !kept {
                conflicts.push(format!("{name} (the run started without it)"));
            }
        };
        flag(
            "--ignore-windows",
            args.ignore_windows,
            recorded.ignore_windows,
        );
        flag(
            "--wait-for-window",
            args.wait_for_window,
            recorded.wait_for_window,
        );
        flag(
            "--continue-after-canary",
            args.continue_after_canary,
            recorded.continue_after_canary,
        );
        let mut value = |name: &str, given: Option<String>, kept: Option<String>| {
            if let Some(g) = given
                && Some(&g) != kept.as_ref()
            {
                conflicts.push(format!(
                    "{name} {g} (the run started with {})",
                    kept.unwrap_or_else(|| "none".into())
                ));
            }
        };
        value(
            "--max-failures",
            args.max_failures.clone(),
            recorded.max_failures.clone(),
        );
        value(
            "--canary",
            args.canary.map(|n| n.to_string()),
            recorded.canary.map(|n| n.to_string()),
        );
        value(
            "--sha256",
            args.sha256.as_deref().map(str::to_ascii_lowercase),
            Some(recorded.sha256.clone()),
        );
        if !conflicts.is_empty() {
            return Err(format!(
                "run {run_id} keeps the options it started with, and these differ: {}; leave them out (a resumed run takes them from its ledger)",
                conflicts.join(", ")
            ));
        }
        Ok(recorded)
    }

    /// The command that carries the run on: the recorded options come from the ledger.
    pub fn resume_command(inventory: &Path, run_id: &str) -> String {
        format!(
            "ecfleet run -i {} --resume {run_id}",
            shell_word(&absolute(inventory).display().to_string())
        )
    }
}

/// `text` as one word for a POSIX shell: quoted when it holds anything but plain characters.
fn shell_word(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:+@,=".contains(c))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> RunArgs {
        let mut argv = vec!["ecfleet", "run", "-i", "inv.toml", "--resume", "latest"];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::parse_from(argv).command {
            crate::cli::Command::Run(a) => a,
            _ => unreachable!(),
        }
    }

    fn recorded() -> RunOptions {
        RunOptions {
            msi: "/srv/AzureADConnect.msi".into(),
            sha256: "ab".repeat(32),
            ignore_windows: false,
            wait_for_window: true,
            max_failures: Some("2".into()),
            canary: None,
            continue_after_canary: false,
            playbook: None,
        }
    }

    #[test]
    fn a_resume_keeps_the_options_and_refuses_a_conflicting_one() {
        let kept = RunOptions::resumed(recorded(), &args(&[]), "r1").unwrap();
        assert_eq!(kept, recorded());
        // The same value again is no conflict.
        let same = RunOptions::resumed(
            recorded(),
            &args(&["--wait-for-window", "--max-failures", "2"]),
            "r1",
        );
        assert!(same.is_ok());
        let err = RunOptions::resumed(
            recorded(),
            &args(&["--ignore-windows", "--max-failures", "5"]),
            "r1",
        )
        .err()
        .unwrap();
        assert!(
            err.contains("--ignore-windows (the run started without it)"),
            "{err}"
        );
        assert!(
            err.contains("--max-failures 5 (the run started with 2)"),
            "{err}"
        );
    }

    #[test]
    fn the_resume_command_is_one_shell_word_per_path() {
        assert_eq!(
            RunOptions::resume_command(Path::new("/srv/my fleet/inv.toml"), "r1"),
            "ecfleet run -i '/srv/my fleet/inv.toml' --resume r1"
        );
    }
}
