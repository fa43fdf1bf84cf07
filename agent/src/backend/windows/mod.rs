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

/// Where the agent writes its scripts: its own folder (`C:\ProgramData\ecfleet`), so that one
/// AppLocker or App Control rule for that folder lets them run in FullLanguage; the temporary
/// folder only when the agent's own cannot be found.
fn script_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(PathBuf::from))
        .unwrap_or_else(std::env::temp_dir)
}

pub fn collect() -> Result<Facts, String> {
    let dir = script_dir();
    let id = std::process::id();
    let script = dir.join(format!("ecfleet-facts-{id}.ps1"));
    let result = dir.join(format!("ecfleet-facts-{id}.json"));
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
        schema_version: ecfleet_proto::upgrade::UPGRADE_SCHEMA_VERSION,
        at: now.round(jiff::Unit::Second).unwrap_or(now).to_string(),
        installer_present: installer.is_file(),
    })
}

/// The processes of an Entra Connect upgrade: the wizard, or `msiexec.exe` installing the
/// product's packages (facts.ps1 looks for the same).
pub const UPGRADE_PROCESS_CHECK: &str = "@(Get-CimInstance -ClassName Win32_Process -Filter \"Name = 'msiexec.exe' OR Name = 'AzureADConnect.exe'\" | Where-Object { $_.Name -eq 'AzureADConnect.exe' -or $_.CommandLine -match 'AzureADConnect\\.msi|Synchronization Service\\.msi' }).Count -gt 0";

/// What the restart script prints when an upgrade runs.
const UPGRADE_RUNNING_MARK: &str = "ecfleet-upgrade-running";

/// `Restart-Service ADSync`, then whether it runs; refused while the wizard or the installer
/// runs.
pub fn restart_adsync() -> Result<ecfleet_proto::upgrade::RestartResult, String> {
    let script = format!(
        "$ErrorActionPreference = 'Stop'; if ({UPGRADE_PROCESS_CHECK}) {{ '{UPGRADE_RUNNING_MARK}'; exit 3 }}; \
         Restart-Service -Name ADSync -ErrorAction Stop; [string](Get-Service -Name ADSync).Status"
    );
    let mut command = Command::new(powershell_path(std::env::var("SystemRoot").ok()));
    command.args(["-NoProfile", "-NonInteractive", "-Command", &script]);
    let finished = run_with_deadline(command, Duration::from_secs(300))?;
    let out = String::from_utf8_lossy(&finished.stdout).trim().to_string();
    let err = String::from_utf8_lossy(&finished.stderr).trim().to_string();
    if out.lines().any(|l| l.trim() == UPGRADE_RUNNING_MARK) {
        return Ok(ecfleet_proto::upgrade::RestartResult::refused(
            super::UPGRADE_RUNNING_REFUSAL,
        ));
    }
    Ok(ecfleet_proto::upgrade::RestartResult {
        kind: ecfleet_proto::upgrade::RESTART_KIND.into(),
        schema_version: ecfleet_proto::upgrade::UPGRADE_SCHEMA_VERSION,
        running: finished.status.success() && out.lines().last() == Some("Running"),
        message: if err.is_empty() { out } else { err },
        refused_upgrade_running: false,
    })
}

/// `Get-AuthenticodeSignature` on `path`: its status, status message, signature type, signer
/// and the root its chain ends in (docs/design/DOMAIN.md §8b, S51). Each field is printed as
/// one line of base64 (UTF-8), so no code page and no line break in a message can garble it.
pub fn signature(path: &std::path::Path) -> Result<ecfleet_proto::stage::Signature, String> {
    let script = format!(
        "$ErrorActionPreference = 'Stop'; $s = Get-AuthenticodeSignature -LiteralPath '{}'; \
         $root = ''; if ($s.SignerCertificate) {{ $c = New-Object System.Security.Cryptography.X509Certificates.X509Chain; \
         $c.ChainPolicy.RevocationMode = 'NoCheck'; \
         [void]$c.Build($s.SignerCertificate); if ($c.ChainElements.Count -gt 0) {{ $root = $c.ChainElements[$c.ChainElements.Count - 1].Certificate.Subject }} }}; \
         foreach ($v in [string]$s.Status, [string]$s.StatusMessage, [string]$s.SignatureType, [string]$s.SignerCertificate.Subject, [string]$root) \
         {{ 'f:' + [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($v)) }}",
        single_quoted_body(&path.display().to_string())
    );
    let mut command = Command::new(powershell_path(std::env::var("SystemRoot").ok()));
    command.args(["-NoProfile", "-NonInteractive", "-Command", &script]);
    let finished = run_with_deadline(command, Duration::from_secs(60)).map_err(|e| {
        format!("{e}; checking the installer's signature needs Windows PowerShell 5.1")
    })?;
    parse_signature(&String::from_utf8_lossy(&finished.stdout))
        .map_err(|e| format!("{e} ({})", String::from_utf8_lossy(&finished.stderr).trim()))
}

/// `text` for the inside of a PowerShell single-quoted string: every quote PowerShell takes as a
/// single quote (`'` and the typographic ‘ ’ ‚ ‛) doubled.
fn single_quoted_body(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}') {
            out.push(c);
        }
        out.push(c);
    }
    out
}

/// The five `f:<base64>` lines the signature command prints: status, status message,
/// signature type, signer subject, chain root subject (an empty field is `f:`).
fn parse_signature(text: &str) -> Result<ecfleet_proto::stage::Signature, String> {
    let fields: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let b64 = l
                .strip_prefix("f:")
                .ok_or_else(|| format!("Get-AuthenticodeSignature printed something else: {l}"))?;
            data_encoding::BASE64
                .decode(b64.as_bytes())
                .map(|b| String::from_utf8_lossy(&b).trim().to_string())
                .map_err(|_| format!("Get-AuthenticodeSignature printed something else: {l}"))
        })
        .collect::<Result<_, _>>()?;
    if fields.len() != 5 {
        return Err(format!(
            "Get-AuthenticodeSignature printed {} fields, not 5",
            fields.len()
        ));
    }
    let some = |s: &String| (!s.is_empty()).then(|| s.clone());
    Ok(ecfleet_proto::stage::Signature {
        status: fields[0].clone(),
        status_message: some(&fields[1]),
        signature_type: some(&fields[2]),
        signer: some(&fields[3]),
        root: some(&fields[4]),
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
        let b64 = |v: &str| data_encoding::BASE64.encode(v.as_bytes());
        let lines = |f: [&str; 5]| {
            f.iter()
                .map(|v| format!("f:{}", b64(v)))
                .collect::<Vec<_>>()
                .join("\r\n")
        };
        let ms = "CN=Microsoft Corporation, O=Microsoft Corporation, L=Redmond, S=Washington, C=US";
        let root = "CN=Microsoft Root Certificate Authority 2011, O=Microsoft Corporation, L=Redmond, S=Washington, C=US";
        let s = parse_signature(&lines([
            "Valid",
            "Signature verified.",
            "Authenticode",
            ms,
            root,
        ]))
        .unwrap();
        assert!(s.is_microsoft());
        assert_eq!(s.signature_type.as_deref(), Some("Authenticode"));
        let s = parse_signature(&lines([
            "NotSigned",
            "The file is not digitally signed.",
            "None",
            "",
            "",
        ]))
        .unwrap();
        assert!(!s.is_microsoft() && s.signer.is_none() && s.root.is_none());
        let s = parse_signature(&lines([
            "Valid",
            "Signature verified.",
            "Authenticode",
            "CN=Contoso Ltd, O=Contoso Ltd",
            root,
        ]))
        .unwrap();
        assert!(s.problem().unwrap().contains("Contoso"));
        // A message in another language, with a line break inside, survives the trip.
        let s = parse_signature(&lines([
            "UnknownError",
            "Une cha\u{ee}ne de certificats\r\nracine non approuv\u{e9}e",
            "Authenticode",
            ms,
            "",
        ]))
        .unwrap();
        assert!(s.status_message.unwrap().contains("approuv\u{e9}e"));
        assert!(parse_signature("").is_err());
        assert!(parse_signature("Valid\nCN=x\n").is_err());
    }

    #[test]
    fn every_kind_of_single_quote_is_doubled_in_a_quoted_path() {
        assert_eq!(single_quoted_body(r"C:\it's"), r"C:\it''s");
        assert_eq!(single_quoted_body("a\u{2019}b"), "a\u{2019}\u{2019}b");
        assert_eq!(single_quoted_body("plain"), "plain");
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
