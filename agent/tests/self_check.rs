//! The agent's self-check (`--expect-sha256`), run on real copies of the built agent: the right
//! hash gets the ready line before anything else, a copy that differs by one byte gets the
//! mismatch marker and exit code 97, whatever case the expected hash is written in.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

fn agent_copy(dir: &Path, extra: &[u8]) -> (PathBuf, String) {
    let mut bytes = std::fs::read(env!("CARGO_BIN_EXE_ecfleet-agent")).unwrap();
    bytes.extend_from_slice(extra);
    let path = dir.join("ecfleet-agent");
    std::fs::write(&path, &bytes).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (path, digest)
}

#[test]
fn the_right_hash_is_proved_on_the_first_line_before_the_command_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, digest) = agent_copy(dir.path(), b"");
    let out = Command::new(&agent)
        .args(["--expect-sha256", &digest.to_uppercase(), "--version"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some(format!("{} {digest}", ecfleet_proto::AGENT_READY_PREFIX).as_str())
    );
    assert!(lines.next().unwrap().starts_with("ecfleet-agent "));
}

#[test]
fn a_copy_that_differs_by_one_byte_is_refused_with_the_marker_and_exit_97() {
    let dir = tempfile::tempdir().unwrap();
    let (_, expected) = agent_copy(dir.path(), b"");
    // Bytes after the end of an ELF or PE image do not stop it from running, so this copy runs
    // and must catch the difference itself.
    let (agent, actual) = agent_copy(dir.path(), b"x");
    let out = Command::new(&agent)
        .args(["--expect-sha256", &expected, "--version"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(i32::from(ecfleet_proto::AGENT_MISMATCH_EXIT))
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.trim_end(), ecfleet_proto::AGENT_MISMATCH_MARKER);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&actual) && stderr.contains(&expected),
        "{stderr}"
    );
}
