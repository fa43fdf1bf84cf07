//! Nightly backups of unchanged servers keep one copy of what did not change (issue 20 §3;
//! docs/backup.md, Deduplication): thirty nights of a lab fleet grow the share by less than
//! twice one night, as `du` counts it; `ecfleet backup verify` reads back every kept backup's
//! every file; `sha256sum -c` still checks a backup's folder; retention that removes the
//! backup which first stored the content leaves it to the kept ones; a damaged shared file is
//! found in every backup that names it and the next backup fetches a fresh copy; a controller
//! killed (SIGKILL) in the middle of a night leaves no backup that claims content it does not
//! have. Real parts: `ecfleet lab up`, the real binary and agent, a real share, coreutils'
//! `du` and `sha256sum`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ecfleet, json_of, walk};
use serde_json::Value;

const HOSTS: usize = 40;
const NIGHTS: usize = 30;

fn backup(inventory: &Path, extra: &[&str]) -> Command {
    let mut c = ecfleet();
    c.args(["backup", "--format", "json", "--no-progress"])
        .args(extra)
        .arg("--agent-dir")
        .arg(common::agent_dir())
        .arg("-i")
        .arg(inventory);
    c
}

fn night(inventory: &Path, lab: &Path, extra: &[&str]) -> Value {
    let out = backup(inventory, extra).output().unwrap();
    let (report, stderr) = json_of(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(report["summary"]["backed_up"], HOSTS, "{stderr}");
    forget_host_side_folders(lab);
    report
}

/// The agent keeps each night's folder on the host for an hour (then its next run removes
/// it); these nights are seconds apart, so the test removes them as a day would.
fn forget_host_side_folders(lab: &Path) {
    for host in std::fs::read_dir(lab.join("hosts")).unwrap() {
        let dir = host.unwrap().path().join(".ecfleet/backup");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `du -s` of the share's backups in bytes: blocks, or `--apparent-size` (a file with several
/// names counts once either way, as du counts it).
fn du(share: &Path, apparent: bool) -> u64 {
    let mut c = Command::new("du");
    c.args(["-s", "-B1"]);
    if apparent {
        c.arg("--apparent-size");
    }
    let out = c.arg(share.join("tenants")).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn verify(inventory: &Path) -> (Option<i32>, Value) {
    let out = ecfleet()
        .args(["backup", "verify", "--format", "json", "-i"])
        .arg(inventory)
        .output()
        .unwrap();
    let (report, _) = json_of(&out);
    (out.status.code(), report)
}

fn backups_dir(share: &Path, tenant: &str, host: &str) -> PathBuf {
    share
        .join("tenants")
        .join(tenant)
        .join(host)
        .join("backups")
}

/// How many backups have a manifest on the share.
fn manifests(share: &Path) -> usize {
    walk(&share.join("tenants"))
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".manifest.json"))
        .count()
}

#[test]
fn thirty_unchanged_nights_cost_less_than_two_and_every_kept_backup_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let mut lab = common::lab_up(&lab_dir, HOSTS, &[]);
    let inventory = lab_dir.join("inventory.toml");
    let share = lab_dir.join("share");

    // The first night stores everything.
    let first = night(&inventory, &lab_dir, &[]);
    assert_eq!(first["summary"]["reused_bytes"], 0);
    let (one_blocks, one_bytes) = (du(&share, false), du(&share, true));

    // The second night fetches and stores only what changed on the host: MigrateSettings.ps1
    // stamps MigratedPolicy.json with the time it ran.
    let second = night(&inventory, &lab_dir, &[]);
    let (new, reused) = (
        second["summary"]["new_bytes"].as_u64().unwrap(),
        second["summary"]["reused_bytes"].as_u64().unwrap(),
    );
    assert!(reused > 20 * new, "new {new}, reused {reused}");
    let h = &second["hosts"][0];
    let dump = h["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["role"] == "server-configuration")
        .unwrap();
    assert_eq!(dump["reused"]["by"], "hard-link");
    assert_eq!(
        dump["reused"]["from"], first["hosts"][0]["backup"],
        "{dump:#}"
    );
    for _ in 3..=NIGHTS {
        night(&inventory, &lab_dir, &[]);
    }
    let (blocks, bytes) = (du(&share, false), du(&share, true));
    let ratio = |after: u64, one: u64| after as f64 / one as f64;
    eprintln!(
        "{NIGHTS} nights of {HOSTS} hosts: {:.2}x one night on disk (du), {:.2}x in bytes (du --apparent-size)",
        ratio(blocks, one_blocks),
        ratio(bytes, one_bytes)
    );
    assert!(
        blocks < 2 * one_blocks,
        "{blocks} vs one night {one_blocks}"
    );
    assert!(bytes < 2 * one_bytes, "{bytes} vs one night {one_bytes}");

    // Every kept backup's every file, read back.
    let (code, report) = verify(&inventory);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["summary"]["backups"], HOSTS * NIGHTS);
    assert_eq!(report["summary"]["verified"], HOSTS * NIGHTS);
    let named = report["summary"]["named_bytes"].as_u64().unwrap();
    let stored = report["summary"]["stored_bytes"].as_u64().unwrap();
    assert!(named > 10 * stored, "named {named}, stored {stored}");
    // verify checks every kept backup: a --tag that would narrow it is refused, not ignored.
    let narrowed = ecfleet()
        .args(["backup", "verify", "--tag", "pre-upgrade", "-i"])
        .arg(&inventory)
        .output()
        .unwrap();
    assert_eq!(narrowed.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&narrowed.stderr).contains("takes no --tag"));
    // sha256sum checks a backup's folder as it always did.
    let t01 = backups_dir(&share, "tenant01", "t01-current");
    let sums = Command::new("sh")
        .arg("-c")
        .arg("sha256sum -c EntraConnect-config-*-nightly-17.sha256")
        .current_dir(&t01)
        .output()
        .unwrap();
    assert!(
        sums.status.success(),
        "{}",
        String::from_utf8_lossy(&sums.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&sums.stdout)
            .matches(": OK")
            .count(),
        6
    );

    // Retention removes the night that first stored the content; the kept ones still have it.
    night(&inventory, &lab_dir, &["--keep", "3"]);
    assert!(
        !t01.join(format!(
            "{}.manifest.json",
            first["hosts"][0]["backup"].as_str().unwrap()
        ))
        .exists()
    );
    let (code, report) = verify(&inventory);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["summary"]["verified"], HOSTS * 3);

    // A shared file damaged on the share shows in every backup that names it, and the next
    // night fetches a fresh copy for that host instead of taking the damaged one.
    let newest = std::fs::read_dir(&t01)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".server-configuration.tar"))
        .max()
        .unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes[600] ^= 0x20;
    std::fs::write(&newest, &bytes).unwrap();
    let (code, report) = verify(&inventory);
    assert_eq!(code, Some(1), "{report:#}");
    let damaged: Vec<&Value> = report["backups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["status"] == "damaged")
        .collect();
    assert_eq!(damaged.len(), 3, "{damaged:#?}");
    assert!(damaged.iter().all(|b| b["host"] == "t01-current"));
    assert!(damaged[0]["error"].as_str().unwrap().contains("SHA-256"));
    let after = night(&inventory, &lab_dir, &["--keep", "3"]);
    let t01_row = after["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "t01-current")
        .unwrap();
    let dump = t01_row["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["role"] == "server-configuration")
        .unwrap();
    assert_eq!(dump["reused"], Value::Null, "fetched again: {dump:#}");
    let path = t01.join(dump["name"].as_str().unwrap());
    assert_ne!(std::fs::read(&path).unwrap(), bytes);

    // SIGKILL in the middle of a night: whatever each host had reached, every backup with a
    // manifest has all its content, and the next night carries on from the complete ones.
    let mut killed_mid_night = false;
    for _ in 0..5 {
        let before = manifests(&share);
        let mut child = backup(&inventory, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if manifests(&share) > before {
                break;
            }
            assert!(Instant::now() < deadline, "no backup was stored");
            std::thread::sleep(Duration::from_millis(2));
        }
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        child.wait().unwrap();
        forget_host_side_folders(&lab_dir);
        if manifests(&share) - before < HOSTS {
            killed_mid_night = true;
            break;
        }
    }
    assert!(
        killed_mid_night,
        "every kill came after the night had ended"
    );
    let (code, report) = verify(&inventory);
    assert_eq!(code, Some(1), "only t01's damaged backups: {report:#}");
    let damaged_hosts: std::collections::BTreeSet<&str> = report["backups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["status"] == "damaged")
        .map(|b| b["host"].as_str().unwrap())
        .collect();
    assert_eq!(
        damaged_hosts.into_iter().collect::<Vec<_>>(),
        vec!["t01-current"]
    );
    let last = night(&inventory, &lab_dir, &[]);
    assert_eq!(last["summary"]["failed"], 0);

    let _ = lab.kill();
    let _ = lab.wait();
}
