//! The in-process lab server (`ecfleet lab up`) serves a fleet that the real binary audits.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn lab_up_serves_hosts_that_audit_over_ssh() {
    let dir = tempfile::tempdir().unwrap();
    let agents = agent_dir();
    let mut lab = lab_up(dir.path(), 16, &[]);
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
    let mut lab = lab_up(dir.path(), 2, &[]);
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

/// The two staging faults only the lab server can play (a real sshd cannot be told to fail):
/// a connection that drops half-way through the installer is resumed within the same run and
/// the host is upgraded; a disk that fills is a failed host whose received part is removed and
/// which never gets phase 3; a healthy host of the same run is upgraded. Real: the binary, the
/// agent, SSH, SFTP and the files; stand-in: the lab backend for Windows and the operator.
#[test]
fn a_dropped_transfer_is_resumed_and_a_full_disk_stops_the_host_behind_the_lab_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut lab = lab_up(dir.path(), 28, &["--faults"]);
    let (msi, _) = lab_msi(dir.path(), 2);
    let name = |scenario: &str| {
        std::fs::read_dir(dir.path().join("hosts"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .find(|n| n.ends_with(&format!("-{scenario}")))
            .unwrap()
    };
    let (drops, fills, healthy) = (name("staging-drops"), name("disk-fills"), name("behind"));
    let out = ecfleet()
        .args(["run", "--yes", "--ignore-windows", "--format", "json"])
        .arg("--agent-dir")
        .arg(agent_dir())
        .arg("-i")
        .arg(dir.path().join("inventory.toml"))
        .arg("--msi")
        .arg(&msi)
        .arg("--playbook")
        .arg(dir.path().join("run-playbook.toml"))
        .args(["--host", &drops, "--host", &fills, "--host", &healthy])
        .output()
        .unwrap();
    let _ = lab.kill();
    let _ = lab.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(out.status.code(), Some(1), "{stderr}\n{report:#}");
    let record = |host: &str| {
        report["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == host)
            .unwrap()
            .clone()
    };
    assert_eq!(record(&healthy)["outcome"], "verified", "{report:#}");
    let dropped = record(&drops);
    assert_eq!(dropped["outcome"], "verified", "{dropped:#}");
    let ledger = std::path::PathBuf::from(report["ledger"].as_str().unwrap());
    let events = std::fs::read_to_string(ledger.join("events.jsonl")).unwrap();
    let resumed: Vec<&str> = events
        .lines()
        .filter(|l| l.contains(&drops) && l.contains("\"resumed\""))
        .collect();
    assert_eq!(resumed.len(), 1, "{events}");
    // Within the phase: the journal has the resume before the stage's end.
    let of_host: Vec<&str> = events.lines().filter(|l| l.contains(&drops)).collect();
    let resumed_line = of_host.iter().position(|l| l.contains("\"resumed\""));
    let stage_end = of_host
        .iter()
        .position(|l| l.contains("\"phase\":\"stage\"") && l.contains("\"event\":\"end\""));
    assert!(
        resumed_line.is_some() && stage_end.is_some() && resumed_line < stage_end,
        "{events}"
    );
    // Where it stopped: at the fault's 512 KiB, or a little after (writes already in flight).
    let at: u64 = resumed[0]
        .split("stopped at ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the evidence says where: {}", resumed[0]));
    assert!((524_288..2 << 20).contains(&at), "{}", resumed[0]);
    let full = record(&fills);
    assert_eq!(full["outcome"], "failed", "{full:#}");
    let why = full["message"].as_str().unwrap();
    assert!(
        why.contains("filled while the installer was staged") && why.contains("removed"),
        "{why}"
    );
    assert!(full["backup"].as_str().unwrap().ends_with("-pre-upgrade"));
    // Phase 3 never began there: no hand-off, and nothing of the installer left behind.
    assert!(
        !events
            .lines()
            .any(|l| l.contains(&fills) && l.contains("\"handoff\""))
    );
    let staged = dir
        .path()
        .join("hosts")
        .join(&fills)
        .join(".ecfleet/staged");
    let left: Vec<_> = walk(&staged);
    assert!(left.is_empty(), "{left:?}");
}

/// Issue 17's night on the 28-host faulted lab behind the lab server (its transfer faults
/// included): detached with two Ctrl-Cs while hosts wait for the operator, then carried on with
/// only `-i` and `--resume latest`. No host is handed off twice, the run's options hold (its
/// playbook and `--ignore-windows`: no host is deferred), and every host ends as its scenario
/// does in a night never interrupted.
#[test]
fn a_detached_night_on_the_faulted_lab_resumed_with_only_the_inventory_ends_as_never_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    // Built beside ecfleet, where an installed controller finds it: no --agent-dir below.
    agent_dir();
    let mut lab = lab_up(dir.path(), 28, &["--faults"]);
    let (msi, _) = lab_msi(dir.path(), 2);
    let inventory = dir.path().join("inventory.toml");
    let plan = dir.path().join("tonight.json");
    let planned = ecfleet()
        .args(["plan", "--as-of", "2026-11-24", "-i"])
        .arg(&inventory)
        .arg("--msi")
        .arg(&msi)
        .arg("--out")
        .arg(&plan)
        .output()
        .unwrap();
    assert!(
        planned.status.success(),
        "{}",
        String::from_utf8_lossy(&planned.stderr)
    );
    let first = ecfleet()
        .args(["run", "--yes", "--ignore-windows", "-i"])
        .arg(&inventory)
        .arg("--plan")
        .arg(&plan)
        .arg("--msi")
        .arg(&msi)
        .arg("--playbook")
        .arg(dir.path().join("run-playbook.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let runs = dir.path().join("share/runs");
    let handoffs = || -> Vec<serde_json::Value> {
        std::fs::read_dir(&runs)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("events.jsonl")).ok())
            .flat_map(|t| {
                t.lines()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .collect::<Vec<_>>()
            })
            .filter(|e| e["event"] == "handoff")
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    while handoffs().len() < 3 {
        assert!(Instant::now() < deadline, "no hosts with the operator");
        std::thread::sleep(Duration::from_millis(20));
    }
    detach(&first);
    let detached = first.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&detached.stderr);
    assert_eq!(detached.status.code(), Some(130), "{said}");
    assert!(
        said.contains(" --resume "),
        "the resume command is shown: {said}"
    );
    let resumed = ecfleet()
        .args(["run", "--format", "json", "-i"])
        .arg(&inventory)
        .args(["--resume", "latest"])
        .output()
        .unwrap();
    let _ = lab.kill();
    let _ = lab.wait();
    let (report, stderr) = json_of(&resumed);
    assert_eq!(resumed.status.code(), Some(1), "{stderr}\n{report:#}");
    let hosts = report["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 28);
    let handed = handoffs();
    for h in hosts {
        let name = h["host"].as_str().unwrap();
        let scenario = &name[name.find('-').unwrap() + 1..];
        let want = expected_outcome(scenario, h["action"].as_str().unwrap(), true);
        assert_eq!(h["outcome"], want, "{name}: {h:#}\n{stderr}");
        let times = handed.iter().filter(|e| e["host"] == name).count();
        assert!(times <= 1, "{name}: handed off {times} times");
    }
    // The faults struck (the scenarios' outcomes above are not all "verified").
    let struck = hosts
        .iter()
        .filter(|h| !matches!(h["outcome"].as_str(), Some("verified" | "untouched")))
        .count();
    assert!(struck >= 5, "{report:#}");
}

/// `ecfleet stage` over a connection the lab server drops once: the report counts every byte
/// that went out, before the cut and after it, and says where the transfer stopped.
#[test]
fn a_stage_cut_once_reports_every_byte_it_sent() {
    let dir = tempfile::tempdir().unwrap();
    let mut lab = lab_up(dir.path(), 28, &["--faults"]);
    let (msi, data) = lab_msi(dir.path(), 2);
    let drops = std::fs::read_dir(dir.path().join("hosts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with("-staging-drops"))
        .unwrap();
    let out = ecfleet()
        .args(["stage", "--format", "json", "--agent-dir"])
        .arg(agent_dir())
        .arg("-i")
        .arg(dir.path().join("inventory.toml"))
        .arg("--msi")
        .arg(&msi)
        .args(["--host", &drops])
        .output()
        .unwrap();
    let _ = lab.kill();
    let _ = lab.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(out.status.code(), Some(0), "{stderr}\n{report:#}");
    let staged = &report["hosts"][0]["staged"];
    let size = data.len() as u64;
    // Nothing was kept from an earlier stage, the cut is one interruption, and the bytes before
    // it count as sent: the whole file went out once.
    assert_eq!(staged["resumed_from"], 0, "{staged:#}");
    assert_eq!(
        staged["interruptions"].as_array().unwrap().len(),
        1,
        "{staged:#}"
    );
    assert_eq!(staged["sent"], size, "{staged:#}");
    assert_eq!(report["summary"]["bytes_sent"], size, "{report:#}");
}
