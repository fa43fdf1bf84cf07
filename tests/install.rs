//! `ecfleet completions` and `ecfleet man` (issue 19 §4): a manual page for every command and
//! subcommand, read back by groff's `man` when present; the bash completion script loaded into
//! a real bash, completing commands and flags.

mod common;

use std::process::Command;

use common::ecfleet;

#[test]
fn every_command_gets_a_manual_page() {
    let dir = tempfile::tempdir().unwrap();
    let out = ecfleet().arg("man").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let mut pages: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    // The commands `ecfleet --help` lists, each with its page, and the nested ones.
    let help = String::from_utf8(ecfleet().arg("--help").output().unwrap().stdout).unwrap();
    let commands: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("Options:")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 10, "{commands:?}");
    for c in commands {
        assert!(
            pages.contains(&format!("ecfleet-{c}.1")),
            "no page for {c}: {pages:?}"
        );
    }
    for nested in ["ecfleet.1", "ecfleet-inventory-check.1", "ecfleet-lab-up.1"] {
        assert!(pages.contains(&nested.to_string()), "{pages:?}");
    }
    let audit = std::fs::read_to_string(dir.path().join("ecfleet-audit.1")).unwrap();
    assert!(
        audit.starts_with(".ie") || audit.contains(".TH ecfleet-audit 1"),
        "{audit}"
    );
    assert!(audit.contains("\\-\\-nagios") && audit.contains("\\-\\-metrics"));
    // Read as a person would, when man is installed.
    if let Ok(out) = Command::new("man")
        .arg("-l")
        .arg(dir.path().join("ecfleet-audit.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        && out.status.success()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("--nagios"), "{text}");
    }
}

#[test]
fn bash_loads_the_completions_and_completes_commands_and_flags() {
    let script = ecfleet().args(["completions", "bash"]).output().unwrap();
    assert_eq!(script.status.code(), Some(0));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ecfleet.bash");
    std::fs::write(&file, &script.stdout).unwrap();
    let complete = |words: &str| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {} && COMP_WORDS=({words}) && COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)) && _ecfleet ecfleet \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\" && echo \"${{COMPREPLY[@]}}\"",
                file.display()
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        complete("ecfleet au")
            .split_whitespace()
            .any(|w| w == "audit")
    );
    assert!(complete("ecfleet audit --nag").contains("--nagios"));
    assert!(complete("ecfleet completions p").contains("powershell"));
    for shell in ["zsh", "fish", "powershell"] {
        let out = ecfleet().args(["completions", shell]).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("audit"),
            "{shell}"
        );
    }
    let out = ecfleet().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "an unknown shell is invalid input"
    );
}
