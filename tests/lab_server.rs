//! The in-process lab server (`ecfleet lab up`) serves a fleet that the real binary audits.

mod common;

use std::io::BufRead;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// `ecfleet lab up --hosts N` in `dir`, once it says it is serving.
fn lab_up(dir: &std::path::Path, hosts: usize) -> std::process::Child {
    let mut lab = ecfleet()
        .args(["lab", "up", "--hosts", &hosts.to_string(), "--dir"])
        .arg(dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = lab.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = lines.next().expect("lab up exited").unwrap();
        if line.starts_with(&format!("serving {hosts} lab hosts")) {
            break;
        }
        assert!(Instant::now() < deadline);
    }
    lab
}

#[test]
fn lab_up_serves_hosts_that_audit_over_ssh() {
    let dir = tempfile::tempdir().unwrap();
    let agents = agent_dir();
    let mut lab = lab_up(dir.path(), 16);
    let inventory = dir.path().join("inventory.toml");
    let events = dir.path().join("events.jsonl");
    let out = ecfleet()
        .args(["audit", "--format", "json", "--agent-dir"])
        .arg(&agents)
        .arg("-i")
        .arg(&inventory)
        .arg("--events")
        .arg(&events)
        .output()
        .unwrap();
    // An events file that cannot be created is refused before any host is touched.
    let refused = ecfleet()
        .args(["audit", "--agent-dir"])
        .arg(&agents)
        .arg("-i")
        .arg(&inventory)
        .arg("--events")
        .arg(dir.path().join("no/such/dir/events.jsonl"))
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

    // --events: one JSON line per event, every host started and finished once.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["event"], "run-started");
    assert_eq!(lines[0]["hosts"], 16);
    assert_eq!(lines.last().unwrap()["event"], "run-finished");
    let finished: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|e| e["event"] == "host-finished")
        .collect();
    assert_eq!(finished.len(), 16);
    assert!(finished.iter().all(|e| e["ok"] == true), "{finished:?}");
    let started = lines
        .iter()
        .filter(|e| e["event"] == "host-started")
        .count();
    assert_eq!(started, 16);
    assert_eq!(refused.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--events") && stderr.contains("no/such/dir/events.jsonl"),
        "{stderr}"
    );
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let ps = std::process::Command::new("ps")
        .args(["-eo", "pid,args"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.contains(needle) && !l.contains(" ps -eo"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_lab_server_kills_an_agent_whose_client_gave_up() {
    let dir = tempfile::tempdir().unwrap();
    let agents = agent_dir();
    let mut lab = lab_up(dir.path(), 2);
    let machine = dir.path().join("hosts/t01-current/machine.toml");
    let text = std::fs::read_to_string(&machine)
        .unwrap()
        .replace("hang_seconds = 0", "hang_seconds = 120");
    std::fs::write(&machine, text).unwrap();
    let playbook = dir.path().join("audit.toml");
    std::fs::write(&playbook, "schema_version = 1\nretiring_days = 90\nmin_free_gib = 2.0\nmax_sync_age_hours = 3.0\nhost_deadline_secs = 8\n").unwrap();
    let out = ecfleet()
        .args(["audit", "--format", "json", "--no-share", "--agent-dir"])
        .arg(&agents)
        .arg("--playbook")
        .arg(&playbook)
        .arg("-i")
        .arg(dir.path().join("inventory.toml"))
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hung = host(&report, "t01-current");
    assert_eq!(hung["error_kind"], "timeout", "{hung}");
    // The controller gave up on the hung agent; the lab server must not leave it running.
    let lab_root = dir.path().join("hosts/t01-current").display().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = processes_mentioning(&lab_root);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        left = processes_mentioning(&lab_root);
    }
    let _ = lab.kill();
    let _ = lab.wait();
    assert!(left.is_empty(), "agent processes left running: {left:?}");
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
