//! The `windows` backend: runs the embedded PowerShell 5.1 probe script (`facts.ps1`) and turns
//! its JSON into [`Facts`]. Running PowerShell is the only Windows-specific step; the parsing in
//! [`parse`] is plain code, tested on fixture output on any platform.

mod parse;

use std::process::Command;

use ecfleet_proto::Facts;

const SCRIPT: &str = include_str!("facts.ps1");

pub fn collect() -> Result<Facts, String> {
    let script = std::env::temp_dir().join(format!("ecfleet-facts-{}.ps1", std::process::id()));
    // UTF-8 with a byte-order mark, so Windows PowerShell 5.1 does not read it as ANSI.
    let mut bytes = vec![0xEF, 0xBB, 0xBF];
    bytes.extend_from_slice(SCRIPT.as_bytes());
    std::fs::write(&script, bytes)
        .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
    let output = Command::new("powershell.exe")
        .args([
            "-NoProfile",
            "-NonInteractive",
            "-ExecutionPolicy",
            "Bypass",
            "-File",
        ])
        .arg(&script)
        .output();
    let _ = std::fs::remove_file(&script);
    let output = output.map_err(|e| {
        format!(
            "cannot start powershell.exe ({e}); the windows backend needs Windows PowerShell 5.1"
        )
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() && stdout.trim().is_empty() {
        return Err(format!(
            "the facts script failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    parse::facts_from_probe_output(&stdout, env!("CARGO_PKG_VERSION"))
}
