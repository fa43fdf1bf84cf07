//! A fleet split between jobs (issue 20 §1; docs/scale-out.md): four `ecfleet audit --shard
//! i/4` processes started together against one lab (as a job engine's array would start them:
//! this is the documented fallback for CI, where no Slurm runs), then `ecfleet merge audit`
//! gives the very verdicts of one unsharded audit; a missing or doubled shard is refused and
//! named; a shard with no tenant is a valid, empty audit. Real parts: `ecfleet lab up`, the
//! real binary and agent, a real share.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{audit_verdicts, ecfleet, json_of};
use sha2::{Digest, Sha256};

fn audit(inventory: &Path, extra: &[&str]) -> Command {
    let mut c = ecfleet();
    c.args(["audit", "--as-of", "2026-11-24", "--format", "json"])
        .args(extra)
        .arg("--agent-dir")
        .arg(common::agent_dir())
        .arg("-i")
        .arg(inventory);
    c
}

/// The snapshot's folder name from the `snapshot: …/audits/<name>/audit.json` line.
fn snapshot_of(out: &Output) -> String {
    common::snapshot_name(&String::from_utf8_lossy(&out.stderr))
}

fn merge(inventory: &Path, snapshots: &[&str]) -> Output {
    ecfleet()
        .args(["merge", "audit", "--format", "json", "-i"])
        .arg(inventory)
        .args(snapshots)
        .output()
        .unwrap()
}

#[test]
fn four_shards_audited_apart_merge_into_the_audit_of_the_whole_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let _lab = common::winrm::lab_up(&lab_dir, 16, 0, &[]);
    let inventory = lab_dir.join("inventory.toml");

    // The four jobs, started together.
    let jobs: Vec<_> = (1..=4)
        .map(|i| {
            audit(&inventory, &["--shard", &format!("{i}/4")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<Output> = jobs
        .into_iter()
        .map(|j| j.wait_with_output().unwrap())
        .collect();
    let mut names = Vec::new();
    let mut tenants_seen = Vec::new();
    for (i, out) in outs.iter().enumerate() {
        let (report, stderr) = json_of(out);
        assert!(out.status.code().is_some_and(|c| c <= 2), "{stderr}");
        assert_eq!(report["shard"]["index"], i + 1, "{report:#}");
        assert_eq!(report["shard"]["count"], 4);
        assert_eq!(report["whole_inventory"], false);
        for h in report["hosts"].as_array().unwrap() {
            let tenant = h["tenant"].as_str().unwrap().to_string();
            // The split is the documented one: SHA-256's first 8 bytes, mod 4, plus one.
            let sha = Sha256::digest(tenant.as_bytes());
            let n = u64::from_be_bytes(sha[..8].try_into().unwrap());
            assert_eq!(n % 4 + 1, i as u64 + 1, "{tenant}");
            tenants_seen.push(tenant);
        }
        names.push(snapshot_of(out));
    }
    let out = audit(&inventory, &["--no-share"]).output().unwrap();
    let (whole, stderr) = json_of(&out);
    let whole_code = out.status.code();
    assert_eq!(
        tenants_seen.len(),
        whole["hosts"].as_array().unwrap().len(),
        "{stderr}"
    );

    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let out = merge(&inventory, &name_refs);
    let (merged, stderr) = json_of(&out);
    assert_eq!(out.status.code(), whole_code, "{stderr}");
    assert_eq!(audit_verdicts(&merged), audit_verdicts(&whole), "{stderr}");
    assert_eq!(merged["whole_inventory"], true);
    assert!(merged.get("shard").is_none());
    assert_eq!(merged["merged_from"].as_array().unwrap().len(), 4);
    assert_eq!(merged["summary"], whole["summary"]);
    // The merged snapshot is the share's newest: the morning's report reads it.
    let merged_name = snapshot_of(&out);
    let out = ecfleet()
        .args(["report", "audit", "latest", "-i"])
        .arg(&inventory)
        .output()
        .unwrap();
    let (latest, _) = json_of(&out);
    assert_eq!(
        latest["merged_from"], merged["merged_from"],
        "{merged_name}"
    );

    // A missing shard and a doubled one are refused, named.
    let out = merge(&inventory, &[name_refs[0], name_refs[1], name_refs[3]]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("shard 3/4 is missing"), "{stderr}");
    let out = merge(
        &inventory,
        &[
            name_refs[0],
            name_refs[1],
            name_refs[1],
            name_refs[2],
            name_refs[3],
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("shard 2/4 is given 2 times"), "{stderr}");
    // The unsharded audit is not a shard.
    let whole_snapshot = dir.path().join("whole.json");
    std::fs::write(&whole_snapshot, serde_json::to_vec(&whole).unwrap()).unwrap();
    let out = merge(&inventory, &[whole_snapshot.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not the audit of a shard"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A shard that holds no tenant: a valid, empty audit.
    let count = 64u64;
    let empty = (1..=count)
        .find(|i| {
            !tenants_seen.iter().any(|t| {
                let sha = Sha256::digest(t.as_bytes());
                u64::from_be_bytes(sha[..8].try_into().unwrap()) % count + 1 == *i
            })
        })
        .expect("some shard of 64 holds none of the lab's tenants");
    let out = audit(
        &inventory,
        &["--no-share", "--shard", &format!("{empty}/{count}")],
    )
    .output()
    .unwrap();
    let (report, stderr) = json_of(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(report["hosts"].as_array().unwrap().len(), 0);
}

/// The runs of two shards of one plan, started together, merged into one night: every host of
/// the plan once, with its shard's outcome, as the share's newest run; a missing shard refused.
#[test]
fn two_shards_of_one_plan_run_apart_merge_into_one_night() {
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let _lab = common::winrm::lab_up(&lab_dir, 6, 0, &[]);
    let inventory = lab_dir.join("inventory.toml");
    let fleet = |args: &[&str]| {
        let mut c = ecfleet();
        c.args(args)
            .arg("--agent-dir")
            .arg(common::agent_dir())
            .arg("-i")
            .arg(&inventory);
        c
    };
    let (msi, _) = common::lab_msi(dir.path(), 1);
    let (msi, plan) = (msi.to_str().unwrap(), dir.path().join("plan.json"));
    let plan_arg = plan.to_str().unwrap();
    let out = fleet(&[
        "plan",
        "--as-of",
        "2026-11-24",
        "--msi",
        msi,
        "--out",
        plan_arg,
    ])
    .output()
    .unwrap();
    assert!(
        out.status.code().is_some_and(|c| c <= 2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let playbook = lab_dir.join("run-playbook.toml");
    let jobs: Vec<_> = (1..=2)
        .map(|i| {
            let shard = format!("{i}/2");
            fleet(&[
                "run",
                "--yes",
                "--ignore-windows",
                "--format",
                "json",
                "--plan",
                plan_arg,
                "--msi",
                msi,
                "--playbook",
                playbook.to_str().unwrap(),
                "--shard",
                &shard,
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let runs: Vec<(serde_json::Value, Option<i32>)> = jobs
        .into_iter()
        .map(|j| {
            let out = j.wait_with_output().unwrap();
            (json_of(&out).0, out.status.code())
        })
        .collect();
    let ids: Vec<&str> = runs
        .iter()
        .map(|r| r.0["run_id"].as_str().unwrap())
        .collect();
    let merge = |ids: &[&str]| {
        ecfleet()
            .args(["merge", "run", "--format", "json", "--plan"])
            .arg(&plan)
            .arg("-i")
            .arg(&inventory)
            .args(ids)
            .output()
            .unwrap()
    };
    let out = merge(&ids);
    let (merged, stderr) = json_of(&out);
    let planned: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
    let hosts = merged["hosts"].as_array().unwrap();
    assert_eq!(
        hosts.len(),
        planned["hosts"].as_array().unwrap().len(),
        "{stderr}"
    );
    for h in hosts {
        let shard_outcome = runs
            .iter()
            .flat_map(|r| r.0["hosts"].as_array().unwrap())
            .find(|s| s["host"] == h["host"])
            .unwrap()["outcome"]
            .clone();
        assert_eq!(h["outcome"], shard_outcome, "{h:#}");
    }
    // The worst as `run` orders its codes: 1 failed, then 2 waiting, then 5 sync pending.
    let codes: Vec<i32> = runs.iter().map(|r| r.1.unwrap()).collect();
    let worst = [1, 2, 5]
        .into_iter()
        .find(|c| codes.contains(c))
        .unwrap_or(0);
    assert_eq!(out.status.code(), Some(worst), "{stderr}");
    // The merged night is the share's newest run.
    let out = ecfleet()
        .args(["report", "latest", "--format", "json", "-i"])
        .arg(&inventory)
        .output()
        .unwrap();
    let (latest, _) = json_of(&out);
    assert_eq!(latest["run_id"], merged["run_id"]);
    // Its customer pages name each upgraded server's pre-upgrade backup, taken by its shard.
    let pages = dir.path().join("pages");
    let out = ecfleet()
        .args(["report", "latest", "--format", "html", "--out"])
        .arg(&pages)
        .arg("-i")
        .arg(&inventory)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(worst),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for h in hosts.iter().filter(|h| h["outcome"] == "verified") {
        let page = std::fs::read_to_string(
            pages.join(format!("tenant-{}.html", h["tenant"].as_str().unwrap())),
        )
        .unwrap();
        assert!(
            page.contains("EntraConnect-config-") && page.contains("SHA-256"),
            "{h:#}"
        );
    }
    // The merged night is a report: it is not carried on.
    let merged_id = merged["run_id"].as_str().unwrap();
    let out = fleet(&["run", "--resume", merged_id]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("is the merge of its shards' runs"),
        "{stderr}"
    );
    // One shard alone is not the night.
    let out = merge(&ids[..1]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("is missing"), "{stderr}");
}
