//! `ecfleet plan` end to end: lab hosts behind real OpenSSH sshd instances, facts gathered live
//! and from a saved audit, targets from the catalog and from lab-made MSI files.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use serde_json::Value;

const AS_OF: &str = "2026-11-24";

/// The fleet's inventory with maintenance windows: odd tenants on Saturday in London, even ones
/// on Friday in New York (which comes first).
fn inventory_with_windows(fleet: &Fleet) -> PathBuf {
    let path = fleet.write_inventory("");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if let Some(n) = line
            .strip_prefix("name = \"tenant")
            .and_then(|r| r.strip_suffix('"'))
            .and_then(|n| n.parse::<u32>().ok())
        {
            let window = if n % 2 == 1 {
                "Sat 22:00-02:00 Europe/London"
            } else {
                "Fri 23:00-03:00 America/New_York"
            };
            out.push_str(&format!("maintenance_window = \"{window}\"\n"));
        }
    }
    std::fs::write(&path, out).unwrap();
    path
}

fn plan(inventory: &Path, args: &[&str]) -> Output {
    ecfleet()
        .args(["plan", "--as-of", AS_OF, "--no-progress", "--agent-dir"])
        .arg(agent_dir())
        .arg("-i")
        .arg(inventory)
        .args(args)
        .output()
        .unwrap()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "plan JSON: {e}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn planned<'a>(plan: &'a Value, host: &str) -> &'a Value {
    plan["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == host)
        .unwrap_or_else(|| panic!("{host} not in the plan"))
}

fn codes(notes: &Value) -> Vec<String> {
    notes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn each_lab_scenario_gets_its_action_live_and_from_a_saved_audit() {
    let fleet = Fleet::new(18, 2);
    let inventory = inventory_with_windows(&fleet);
    let plan_file = fleet.dir.path().join("plan.json");
    let out = plan(
        &inventory,
        &[
            "--format",
            "json",
            "--detailed-exitcode",
            "--out",
            plan_file.to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "changes pending: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let live = json_of(&out);
    assert_eq!(live["schema_version"], 1);
    assert_eq!(live["kind"], "ecfleet-plan");
    assert_eq!(live["as_of"], AS_OF);
    assert_eq!(live["target"]["version"], "2.6.92.0");
    assert_eq!(live["target"]["sha256"], Value::Null);
    assert_eq!(live["catalog"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(live["facts_source"]["kind"], "live");
    assert_eq!(live["hosts"].as_array().unwrap().len(), 18);
    // The plan file holds the same document.
    let saved: Value = serde_json::from_slice(&std::fs::read(&plan_file).unwrap()).unwrap();
    assert_eq!(saved, live);

    let expect = [
        ("t01-current", "up-to-date", &[][..]),
        ("t02-behind", "in-place", &[][..]),
        ("t02-staging", "in-place", &["staging-server"][..]),
        ("t03-retiring", "in-place", &["retiring-build"][..]),
        ("t04-sync-stopped", "in-place", &["sync-stopped"][..]),
        ("t05-v1-2012r2", "migrate", &[][..]),
        ("t06-dotnet-old", "blocked", &[][..]),
        ("t07-tls-missing", "blocked", &[][..]),
        ("t08-half-upgraded", "blocked", &[][..]),
        ("t09-recalled", "migrate", &[][..]),
        ("t10-disk-low", "blocked", &[][..]),
        ("t11-wizard-open", "blocked", &[][..]),
        (
            "t12-health-agent-off",
            "in-place",
            &["health-agent-disabled"][..],
        ),
        ("t13-sync-errors", "in-place", &["sync-errors"][..]),
        ("t14-v1-old", "two-hop", &[][..]),
        ("t15-localdb-full", "blocked", &[][..]),
        (
            "t16-config-edited",
            "in-place",
            &["engine-config-edited"][..],
        ),
        ("t17-no-entra-connector", "blocked", &[][..]),
    ];
    for (host, action, warnings) in expect {
        let h = planned(&live, host);
        assert_eq!(h["action"], action, "{host}: {h:#}");
        for w in warnings {
            assert!(
                codes(&h["warnings"]).contains(&w.to_string()),
                "{host}: {h:#}"
            );
        }
        assert!(h["fingerprint"].as_str().unwrap().starts_with("sha256:"));
    }
    let blocked_by = |host: &str| {
        let h = planned(&live, host);
        (
            h["reasons"][0]["code"].as_str().unwrap().to_string(),
            h["reasons"][0]["fix"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(blocked_by("t06-dotnet-old").0, "dotnet-too-old");
    assert!(
        blocked_by("t06-dotnet-old")
            .1
            .contains("install .NET Framework 4.8 and reboot")
    );
    assert_eq!(blocked_by("t07-tls-missing").0, "tls12-not-enforced");
    assert!(
        blocked_by("t07-tls-missing")
            .1
            .contains("TLS 1.2 registry values for .NET")
    );
    assert_eq!(blocked_by("t08-half-upgraded").0, "version-mismatch");
    assert_eq!(blocked_by("t10-disk-low").0, "disk-low");
    assert_eq!(blocked_by("t11-wizard-open").0, "wizard-open");
    assert_eq!(blocked_by("t15-localdb-full").0, "localdb-full");
    assert!(
        blocked_by("t15-localdb-full")
            .1
            .contains("PurgeRunHistoryInterval")
    );
    assert_eq!(
        blocked_by("t17-no-entra-connector").0,
        "entra-connector-missing"
    );
    assert_eq!(
        planned(&live, "t05-v1-2012r2")["reasons"][0]["code"],
        "os-unsupported"
    );
    assert_eq!(
        planned(&live, "t09-recalled")["reasons"][0]["code"],
        "recalled-build"
    );
    assert_eq!(planned(&live, "t14-v1-old")["via"], "1.6.16.0");
    assert_eq!(planned(&live, "t04-sync-stopped")["from"], "2.5.76.0");
    assert_eq!(planned(&live, "t04-sync-stopped")["to"], "2.6.92.0");

    // The staging server goes in an earlier wave than its tenant's active server, and the
    // New York tenants (Friday) come before the London ones (Saturday).
    let wave = |host: &str| planned(&live, host)["wave"].as_u64().unwrap();
    assert!(wave("t02-staging") < wave("t02-behind"));
    assert!(
        wave("t02-behind") < wave("t01-current"),
        "Friday before Saturday"
    );
    let t02 = live["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "tenant02")
        .unwrap();
    assert_eq!(t02["next_window"]["start_utc"], "2026-11-28T04:00:00Z");
    assert_eq!(
        live["summary"]["in-place"].as_u64().unwrap()
            + live["summary"]["migrate"].as_u64().unwrap()
            + live["summary"]["two-hop"].as_u64().unwrap()
            + live["summary"]["up-to-date"].as_u64().unwrap()
            + live["summary"]["blocked"].as_u64().unwrap(),
        18
    );

    // The same plan from a saved audit: same actions, same fingerprints (the basis ignores what
    // moves between two collections).
    let audit = audit_command(&inventory)
        .args(["--format", "json", "--no-share"])
        .output()
        .unwrap();
    let audit_file = fleet.dir.path().join("audit.json");
    std::fs::write(&audit_file, &audit.stdout).unwrap();
    let out = plan(
        &inventory,
        &[
            "--format",
            "json",
            "--from-audit",
            audit_file.to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_audit = json_of(&out);
    assert_eq!(from_audit["facts_source"]["kind"], "audit");
    for h in live["hosts"].as_array().unwrap() {
        let again = planned(&from_audit, h["host"].as_str().unwrap());
        assert_eq!(again["action"], h["action"]);
        assert_eq!(again["wave"], h["wave"]);
        assert_eq!(again["fingerprint"], h["fingerprint"], "{}", h["host"]);
    }

    // The table: grouped by tenant, with the summary line.
    let out = plan(&inventory, &["--from-audit", audit_file.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("Plan: 7 in-place, 2 migrate, 1 two-hop, 1 up-to-date, 7 blocked."),
        "{table}"
    );
    assert!(
        table.contains("Fri 23:00-03:00 America/New_York"),
        "{table}"
    );

    // Nothing to do on an up-to-date host: exit 0 with --detailed-exitcode.
    let out = plan(
        &inventory,
        &[
            "--from-audit",
            audit_file.to_str().unwrap(),
            "--host",
            "t01-current",
            "--detailed-exitcode",
        ],
    );
    assert_eq!(out.status.code(), Some(0));

    // An MSI as the target: its own version, its hash in the plan.
    let msi = fleet.dir.path().join("AzureADConnect.msi");
    let made = ecfleet()
        .args([
            "lab",
            "msi",
            "--version",
            "2.6.91.0",
            "--size-mb",
            "2",
            "--out",
        ])
        .arg(&msi)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let sha = ecfleet::msi::hash_file(&msi).unwrap().0;
    let out = plan(
        &inventory,
        &[
            "--format",
            "json",
            "--from-audit",
            audit_file.to_str().unwrap(),
            "--msi",
            msi.to_str().unwrap(),
            "--sha256",
            &sha.to_uppercase(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let with_msi = json_of(&out);
    assert_eq!(with_msi["target"]["version"], "2.6.91.0");
    assert_eq!(with_msi["target"]["source"], "msi");
    assert_eq!(with_msi["target"]["sha256"], sha.as_str());
    assert_eq!(
        with_msi["target"]["msi"]["product_name"],
        "Microsoft Entra Connect"
    );
    assert_eq!(
        planned(&with_msi, "t01-current")["action"],
        "up-to-date",
        "2.6.92.0 is above 2.6.91.0"
    );
    // t02-behind runs 2.6.84.0 (the lab's second-newest supported build as of 2026-11-24).
    assert_eq!(planned(&with_msi, "t02-behind")["to"], "2.6.91.0");
    assert_eq!(
        with_msi["target"]["warnings"],
        serde_json::json!([]),
        "2.6.91.0 meets the 2027 deadline"
    );
}

#[test]
fn bad_targets_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("known_hosts"), "").unwrap();
    let inventory = dir.path().join("inventory.toml");
    std::fs::write(
        &inventory,
        format!(
            "[defaults]\nuser = \"x\"\nidentity_file = \"id\"\nknown_hosts = \"{}\"\n\n[[tenant]]\nname = \"t\"\n\n[[tenant.host]]\nname = \"h\"\naddress = \"127.0.0.1\"\n",
            dir.path().join("known_hosts").display()
        ),
    )
    .unwrap();
    let audit = dir.path().join("audit.json");
    std::fs::write(
        &audit,
        r#"{"schema_version":1,"as_of":"2026-11-24","generated_at":"2026-11-24T02:00:00Z","hosts":[]}"#,
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = ecfleet()
            .args(["plan", "--as-of", AS_OF, "-i"])
            .arg(&inventory)
            .args(["--from-audit", audit.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let corrupt = dir.path().join("corrupt.msi");
    std::fs::write(&corrupt, vec![0xAB; 4096]).unwrap();
    let (code, err) = run(&["--msi", corrupt.to_str().unwrap()]);
    assert_eq!(code, Some(3));
    assert!(err.contains("is not a valid MSI database"), "{err}");

    let foreign = dir.path().join("7zip.msi");
    ecfleet::msi::write_lab_msi(&foreign, "24.8.0.0", Some("7-Zip 24.08 (x64 edition)"), 0)
        .unwrap();
    let (code, err) = run(&["--msi", foreign.to_str().unwrap()]);
    assert_eq!(code, Some(3));
    assert!(err.contains("is not an Entra Connect installer"), "{err}");
    assert!(err.contains("7-Zip"), "{err}");

    let good = dir.path().join("good.msi");
    ecfleet::msi::write_lab_msi(&good, "2.6.91.0", None, 0).unwrap();
    let (code, err) = run(&["--msi", good.to_str().unwrap(), "--sha256", &"0".repeat(64)]);
    assert_eq!(code, Some(3));
    assert!(err.contains("but --sha256 pins"), "{err}");
    // With --detailed-exitcode every error is 1.
    let (code, _) = run(&[
        "--msi",
        good.to_str().unwrap(),
        "--sha256",
        &"0".repeat(64),
        "--detailed-exitcode",
    ]);
    assert_eq!(code, Some(1));

    let recalled = dir.path().join("recalled.msi");
    ecfleet::msi::write_lab_msi(&recalled, "2.6.79.0", None, 0).unwrap();
    let (code, err) = run(&["--msi", recalled.to_str().unwrap()]);
    assert_eq!(code, Some(3));
    assert!(err.contains("was recalled"), "{err}");

    let (code, err) = run(&["--target", "2.6.90.0"]);
    assert_eq!(code, Some(3));
    assert!(err.contains("not in the catalog"), "{err}");
    let (code, err) = run(&["--target", "2.6"]);
    assert_eq!(code, Some(3));
    assert!(err.contains("--target 2.6"), "{err}");

    // A host the audit does not cover is blocked, not dropped.
    let out = ecfleet()
        .args(["plan", "--as-of", AS_OF, "--format", "json", "-i"])
        .arg(&inventory)
        .args(["--from-audit", audit.to_str().unwrap()])
        .output()
        .unwrap();
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["hosts"][0]["action"], "blocked");
    assert!(
        plan["hosts"][0]["reasons"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not in the audit")
    );

    // ecfleet copied alone (no agent build beside it): a plan from a saved audit reaches no
    // host and needs none; an audit, which does, says what to build.
    let alone = dir.path().join("alone");
    std::fs::create_dir(&alone).unwrap();
    let lone = alone.join("ecfleet");
    std::fs::copy(env!("CARGO_BIN_EXE_ecfleet"), &lone).unwrap();
    let out = std::process::Command::new(&lone)
        .args(["plan", "--as-of", AS_OF, "--format", "json", "-i"])
        .arg(&inventory)
        .args(["--from-audit", audit.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(&lone)
        .args(["audit", "-i"])
        .arg(&inventory)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no agent build found"));
}

#[test]
fn an_unreachable_host_is_planned_as_blocked_and_an_unwritable_plan_file_is_an_error() {
    let fleet = Fleet::new(2, 1);
    let closed = free_port();
    let inventory = fleet.write_inventory(&format!(
        "[[tenant]]\nname = \"gone\"\nmaintenance_window = \"daily 01:00-02:00 UTC\"\n\n[[tenant.host]]\nname = \"gone-ec1\"\naddress = \"127.0.0.1\"\nport = {closed}\nlab_root = \"/nonexistent\"\n"
    ));
    let out = plan(&inventory, &["--format", "json", "--detailed-exitcode"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let live = json_of(&out);
    let gone = planned(&live, "gone-ec1");
    assert_eq!(gone["action"], "blocked");
    assert_eq!(gone["reasons"][0]["code"], "unreachable");
    assert!(
        gone["reasons"][0]["message"]
            .as_str()
            .unwrap()
            .contains("cannot connect to 127.0.0.1"),
        "{gone}"
    );
    assert_eq!(planned(&live, "t01-current")["action"], "up-to-date");
    // The daily window opens first, so that tenant's wave is 1.
    assert_eq!(gone["wave"], 1);

    let nowhere = fleet.dir.path().join("no/such/dir/plan.json");
    let out = plan(
        &inventory,
        &["--host", "t01-current", "--out", nowhere.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/dir"));
    let out = plan(
        &inventory,
        &[
            "--host",
            "t01-current",
            "--out",
            nowhere.to_str().unwrap(),
            "--detailed-exitcode",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
}

/// The inventory's text with only its first `keep` hosts and the share at `share`.
fn narrowed_inventory(inventory: &Path, keep: usize, share: &Path, out: &Path) {
    let mut doc: toml::Table =
        toml::from_str(&std::fs::read_to_string(inventory).unwrap()).unwrap();
    let mut left = keep;
    for tenant in doc["tenant"].as_array_mut().unwrap() {
        let hosts = tenant["host"].as_array_mut().unwrap();
        let n = hosts.len().min(left);
        hosts.truncate(n);
        left -= n;
    }
    doc["tenant"]
        .as_array_mut()
        .unwrap()
        .retain(|t| !t["host"].as_array().unwrap().is_empty());
    doc["share"]["path"] = share.display().to_string().into();
    std::fs::write(out, toml::to_string(&doc).unwrap()).unwrap();
}

fn run_with_plan(inventory: &Path, plan: &Path, msi: &Path) -> Output {
    ecfleet()
        .args(["run", "--yes", "--no-progress", "--agent-dir"])
        .arg(agent_dir())
        .arg("-i")
        .arg(inventory)
        .arg("--plan")
        .arg(plan)
        .arg("--msi")
        .arg(msi)
        .output()
        .unwrap()
}

/// Terraform's "saved plan is stale": a plan made from a 28-host inventory does not run against
/// a 20-host one (or one where a host moved); a plan that names a host twice or a name that
/// would leave the share is invalid input. Nothing is written to either share. `stage --plan`
/// stages only the hosts the plan upgrades.
#[test]
fn a_plan_runs_only_against_the_inventory_it_was_made_from() {
    let fleet = Fleet::new(28, 2);
    let inventory = fleet.write_inventory("");
    let dir = fleet.dir.path();
    let (msi, _) = lab_msi(dir, 1);
    let plan_file = dir.join("tonight.json");
    let out = plan(
        &inventory,
        &[
            "--msi",
            msi.to_str().unwrap(),
            "--out",
            plan_file.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other_share = dir.join("share-20");
    std::fs::create_dir_all(&other_share).unwrap();
    let twenty = dir.join("inventory-20.toml");
    narrowed_inventory(&inventory, 20, &other_share, &twenty);
    let names: Vec<String> = fleet.hosts.iter().map(|(h, _)| h.clone()).collect();
    let out = run_with_plan(&twenty, &plan_file, &msi);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("stale") && stderr.contains("hosts removed:"),
        "{stderr}"
    );
    assert!(
        stderr.contains(inventory.to_str().unwrap()),
        "names the plan's inventory: {stderr}"
    );
    assert!(stderr.contains("plan again"), "{stderr}");
    // The hosts no longer in the inventory are named, every one.
    let written: toml::Table = toml::from_str(&std::fs::read_to_string(&twenty).unwrap()).unwrap();
    let kept: Vec<String> = written["tenant"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| {
            t["host"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["name"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(kept.len(), 20);
    for gone in names.iter().filter(|n| !kept.contains(n)) {
        assert!(stderr.contains(gone.as_str()), "{gone} not named: {stderr}");
    }
    // A host that moved is a change.
    let moved = dir.join("inventory-moved.toml");
    let text = std::fs::read_to_string(&inventory).unwrap();
    std::fs::write(
        &moved,
        text.replacen("address = \"127.0.0.1\"", "address = \"127.0.0.2\"", 1),
    )
    .unwrap();
    let out = run_with_plan(&moved, &plan_file, &msi);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("hosts changed:") && stderr.contains("127.0.0.2"),
        "{stderr}"
    );
    // A plan naming a host twice, or a tenant that would leave the share: invalid input.
    let doc: Value = serde_json::from_slice(&std::fs::read(&plan_file).unwrap()).unwrap();
    for (label, edit) in [
        (
            "twice",
            Box::new(|d: &mut Value| {
                let first = d["hosts"][0].clone();
                d["hosts"].as_array_mut().unwrap().push(first);
            }) as Box<dyn Fn(&mut Value)>,
        ),
        (
            "not a plain name",
            Box::new(|d: &mut Value| {
                d["hosts"][0]["tenant"] = "../../outside".into();
            }),
        ),
    ] {
        let mut bad = doc.clone();
        edit(&mut bad);
        let bad_file = dir.join("bad-plan.json");
        std::fs::write(&bad_file, serde_json::to_vec(&bad).unwrap()).unwrap();
        let out = run_with_plan(&inventory, &bad_file, &msi);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{label}: {stderr}");
        assert!(
            stderr.contains(label) && stderr.contains("hosts["),
            "{stderr}"
        );
    }
    // Nothing was written to either share: no ledger, no backup.
    for share in [dir.join("share"), other_share] {
        assert!(!share.join("runs").exists(), "{}", share.display());
        assert!(!share.join("tenants").exists(), "{}", share.display());
    }
    assert!(!dir.join("outside").exists());
    // stage --plan: only the hosts the plan upgrades in place.
    let in_place: Vec<String> = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["action"] == "in-place")
        .map(|h| h["host"].as_str().unwrap().to_string())
        .collect();
    let out = ecfleet()
        .args(["stage", "--format", "json", "--no-progress", "--agent-dir"])
        .arg(agent_dir())
        .arg("-i")
        .arg(&inventory)
        .arg("--plan")
        .arg(&plan_file)
        .arg("--msi")
        .arg(&msi)
        .output()
        .unwrap();
    let report = json_of(&out);
    let mut staged: Vec<String> = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap().to_string())
        .collect();
    staged.sort();
    let mut want = in_place.clone();
    want.sort();
    assert_eq!(staged, want);
}
