//! The `windows` backend: runs the embedded PowerShell 5.1 probe script (`facts.ps1`) and turns
//! its JSON into [`Facts`]. Running PowerShell is the only Windows-specific step; the parsing in
//! [`parse`] is plain code, tested on fixture output on any platform.
//!
//! The launch: Windows PowerShell by its full path (`%SystemRoot%\System32\WindowsPowerShell\
//! v1.0\powershell.exe`, never a PATH search that starts in the agent's own folder), under a
//! deadline; the script writes its ASCII-only JSON to a file the agent names and the agent reads
//! it as UTF-8 (stdout would come in the OEM code page). See docs/agent.md for what a Group
//! Policy execution policy of AllSigned does to the temporary script.

pub mod backup;
pub mod disk;
mod parse;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use ecfleet_proto::Facts;

use super::runner::run_with_deadline;

const SCRIPT: &str = include_str!("facts.ps1");

/// How long the probe script may run (the controller's host deadline is 60 s by default).
const SCRIPT_DEADLINE: Duration = Duration::from_secs(45);

/// `%SystemRoot%\System32\WindowsPowerShell\v1.0\powershell.exe`.
fn powershell_path(system_root: Option<String>) -> PathBuf {
    let root = system_root.unwrap_or_else(|| r"C:\Windows".to_string());
    PathBuf::from(root)
        .join("System32")
        .join("WindowsPowerShell")
        .join("v1.0")
        .join("powershell.exe")
}

pub fn collect() -> Result<Facts, String> {
    let temp = std::env::temp_dir();
    let id = std::process::id();
    let script = temp.join(format!("ecfleet-facts-{id}.ps1"));
    let result = temp.join(format!("ecfleet-facts-{id}.json"));
    let (written, finished) = run_script(SCRIPT, &script, &result, &[], SCRIPT_DEADLINE)?;
    interpret(
        written,
        &finished.stdout,
        &finished.stderr,
        finished.status.success(),
    )
}

/// Writes `text` to `script` (UTF-8 with a byte-order mark, so Windows PowerShell 5.1 does not
/// read it as ANSI), runs it with `-OutFile result` and `extra` arguments under `deadline`, and
/// returns what it wrote to `result` (then removed, with the script) and how it ended.
pub(super) fn run_script(
    text: &str,
    script: &std::path::Path,
    result: &std::path::Path,
    extra: &[(&str, &std::path::Path)],
    deadline: Duration,
) -> Result<(Option<Vec<u8>>, super::runner::Finished), String> {
    let mut bytes = vec![0xEF, 0xBB, 0xBF];
    bytes.extend_from_slice(text.as_bytes());
    std::fs::write(script, bytes).map_err(|e| format!("cannot write {}: {e}", script.display()))?;
    let mut command = Command::new(powershell_path(std::env::var("SystemRoot").ok()));
    command
        .args([
            "-NoProfile",
            "-NonInteractive",
            "-ExecutionPolicy",
            "Bypass",
            "-File",
        ])
        .arg(script)
        .arg("-OutFile")
        .arg(result);
    for (name, value) in extra {
        command.arg(name).arg(value);
    }
    let finished = run_with_deadline(command, deadline);
    let _ = std::fs::remove_file(script);
    let written = std::fs::read(result).ok().filter(|b| !b.is_empty());
    let _ = std::fs::remove_file(result);
    let finished =
        finished.map_err(|e| format!("{e}; the windows backend needs Windows PowerShell 5.1"))?;
    Ok((written, finished))
}

/// The hand-off on a Windows host: the operator runs the installer; the agent only notes the
/// time (the host's clock) and whether the installer is where the operator is told to look.
pub fn handoff(
    installer: &std::path::Path,
) -> Result<ecfleet_proto::upgrade::HandoffResult, String> {
    let now = jiff::Timestamp::now();
    Ok(ecfleet_proto::upgrade::HandoffResult {
        kind: ecfleet_proto::upgrade::HANDOFF_KIND.into(),
        at: now.round(jiff::Unit::Second).unwrap_or(now).to_string(),
        installer_present: installer.is_file(),
    })
}

/// `Restart-Service ADSync`, then whether it runs.
pub fn restart_adsync() -> Result<ecfleet_proto::upgrade::RestartResult, String> {
    let mut command = Command::new(powershell_path(std::env::var("SystemRoot").ok()));
    command.args([
        "-NoProfile",
        "-NonInteractive",
        "-Command",
        "Restart-Service -Name ADSync -ErrorAction Stop; [string](Get-Service -Name ADSync).Status",
    ]);
    let finished = run_with_deadline(command, Duration::from_secs(300))?;
    let out = String::from_utf8_lossy(&finished.stdout).trim().to_string();
    let err = String::from_utf8_lossy(&finished.stderr).trim().to_string();
    Ok(ecfleet_proto::upgrade::RestartResult {
        kind: ecfleet_proto::upgrade::RESTART_KIND.into(),
        running: finished.status.success() && out.lines().last() == Some("Running"),
        message: if err.is_empty() { out } else { err },
    })
}

/// `Get-AuthenticodeSignature` on `path`: its status and signer subject.
pub fn signature(path: &std::path::Path) -> Result<ecfleet_proto::stage::Signature, String> {
    let script = format!(
        "$s = Get-AuthenticodeSignature -LiteralPath '{}'; [string]$s.Status; [string]$s.SignerCertificate.Subject",
        path.display().to_string().replace('\'', "''")
    );
    let mut command = Command::new(powershell_path(std::env::var("SystemRoot").ok()));
    command.args(["-NoProfile", "-NonInteractive", "-Command", &script]);
    let finished = run_with_deadline(command, Duration::from_secs(60)).map_err(|e| {
        format!("{e}; checking the installer's signature needs Windows PowerShell 5.1")
    })?;
    parse_signature(&String::from_utf8_lossy(&finished.stdout))
}

/// The two lines the signature command prints: status, then the signer's subject.
fn parse_signature(text: &str) -> Result<ecfleet_proto::stage::Signature, String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let status = lines
        .next()
        .ok_or("Get-AuthenticodeSignature printed nothing")?
        .to_string();
    Ok(ecfleet_proto::stage::Signature {
        status,
        signer: lines.next().map(str::to_string),
    })
}

/// The facts from what the script left: its result file (ASCII JSON, read as UTF-8), else its
/// stdout. stderr is kept in the error when there is no document, and its last lines are added
/// to the facts' errors when there is one (a warning that did not stop the script).
fn interpret(
    file: Option<Vec<u8>>,
    stdout: &[u8],
    stderr: &[u8],
    success: bool,
) -> Result<Facts, String> {
    let stderr_text = String::from_utf8_lossy(stderr);
    let document = match file {
        Some(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).into_owned(),
        _ => String::from_utf8_lossy(stdout).into_owned(),
    };
    if document.trim().is_empty() {
        return Err(format!(
            "the facts script {} and wrote no result: {}",
            if success { "finished" } else { "failed" },
            stderr_text.trim()
        ));
    }
    let mut facts = parse::facts_from_probe_output(&document, env!("CARGO_PKG_VERSION"))?;
    let tail: Vec<&str> = stderr_text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    if !tail.is_empty() {
        let last = &tail[tail.len().saturating_sub(3)..];
        facts.probe_failed("script", last.join(" | "));
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_microsoft_only_when_valid_and_signed_by_microsoft() {
        let s = parse_signature("Valid\r\nCN=Microsoft Corporation, O=Microsoft Corporation, L=Redmond, S=Washington, C=US\r\n").unwrap();
        assert!(s.is_microsoft());
        let s = parse_signature("NotSigned\r\n\r\n").unwrap();
        assert!(!s.is_microsoft() && s.signer.is_none());
        let s = parse_signature("Valid\nCN=Contoso Ltd, O=Contoso Ltd\n").unwrap();
        assert!(!s.is_microsoft());
        assert!(parse_signature("").is_err());
    }

    #[test]
    fn powershell_is_started_by_its_full_path() {
        assert_eq!(
            powershell_path(Some(r"D:\WINDOWS".into())),
            PathBuf::from(r"D:\WINDOWS")
                .join("System32")
                .join("WindowsPowerShell")
                .join("v1.0")
                .join("powershell.exe")
        );
        assert!(powershell_path(None).starts_with(r"C:\Windows"));
    }

    #[test]
    fn the_result_file_wins_and_stderr_is_kept_beside_a_document() {
        let doc = br#"{"collected_at":"2026-11-24T10:00:00Z","errors":[]}"#;
        let f = interpret(
            Some(doc.to_vec()),
            b"garbage",
            b"WARNING: slow WMI\r\n",
            true,
        )
        .unwrap();
        assert_eq!(f.collected_at, "2026-11-24T10:00:00Z");
        assert!(
            f.errors
                .iter()
                .any(|e| e.probe == "script" && e.message.contains("slow WMI"))
        );
        let err = interpret(None, b"", b"Access is denied.", false).unwrap_err();
        assert!(
            err.contains("failed") && err.contains("Access is denied"),
            "{err}"
        );
    }

    #[test]
    fn the_script_formats_dates_itself_and_writes_ascii() {
        // The script's contract with the parser, checked on its text (no PowerShell here).
        for needle in [
            "IsoUtc $_.StartDate",
            "IsoUtc $_.EndDate",
            "IsoUtc $_.NextSyncCycleStartTimeInUTC",
            "ToString('yyyy-MM-ddTHH:mm:ssZ', $Invariant)",
            "[System.Text.Encoding]::ASCII",
            "$WarningPreference = 'SilentlyContinue'",
            "-ConnectorId $c.Identifier",
            "IsRunComplete",
            "Microsoft Azure Active Directory Connect",
            "Bin\\ADSync\\ADSync.psd1",
        ] {
            assert!(SCRIPT.contains(needle), "facts.ps1 lacks {needle}");
        }
        assert!(
            !SCRIPT.contains("SilentlyContinue\n    if ($null -eq $item)"),
            "old registry reader"
        );
        assert!(
            !SCRIPT.contains("*Connect Agent Updater*"),
            "updater filter too broad"
        );
    }
}
