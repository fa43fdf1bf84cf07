//! The in-process lab server (`ecfleet lab up`) serves a fleet that the real binary audits.

mod common;

use std::io::BufRead;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn lab_up_serves_hosts_that_audit_over_ssh() {
    let dir = tempfile::tempdir().unwrap();
    let agents = agent_dir();
    let mut lab = ecfleet()
        .args(["lab", "up", "--hosts", "16", "--dir"])
        .arg(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = lab.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = lines.next().expect("lab up exited").unwrap();
        if line.starts_with("serving 16 lab hosts") {
            break;
        }
        assert!(Instant::now() < deadline);
    }
    let inventory = dir.path().join("inventory.toml");
    let out = ecfleet()
        .args(["audit", "--format", "json", "--agent-dir"])
        .arg(&agents)
        .arg("-i")
        .arg(&inventory)
        .output()
        .unwrap();
    let _ = lab.kill();
    let _ = lab.wait();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(report["summary"]["reachable"], 16, "{report:#}");
    assert!(codes(host(&report, "t08-half-upgraded")).contains(&"version-mismatch".to_string()));
    let kh = std::fs::read_to_string(dir.path().join("keys/known_hosts")).unwrap();
    assert_eq!(kh.lines().count(), 16, "one host key per lab host");
}

#[test]
fn bad_inventories_exit_3_with_file_line_and_fix() {
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inventory");
    let out = ecfleet()
        .args(["inventory", "check", "-i"])
        .arg(fixtures.join("bad-many.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad-many.toml:14:8: tenant[0].host[0].port: 70000 is not a TCP port"),
        "{err}"
    );
    assert!(err.contains("did you mean `concurrency`?"), "{err}");
    assert!(!err.contains("Winter2026"), "secret leaked: {err}");
    let out = ecfleet()
        .args(["audit", "-i"])
        .arg(fixtures.join("bad-syntax.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let out = ecfleet()
        .args(["audit", "--as-of", "someday", "-i"])
        .arg(fixtures.join("valid.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let out = ecfleet()
        .args(["inventory", "check", "-i"])
        .arg(fixtures.join("valid.toml"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
