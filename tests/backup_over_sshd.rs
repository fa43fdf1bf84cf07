//! `ecfleet backup` end to end: lab hosts behind real OpenSSH sshd, the real binary and agent,
//! files on a real share. What stands in: the lab backend plays the Windows host's side
//! (machine.toml instead of the ADSync cmdlets).

mod common;

use std::process::Output;

use common::*;
use sha2::{Digest, Sha256};

fn backup(
    fleet: &Fleet,
    inventory: &std::path::Path,
    extra: &[&str],
) -> (i32, serde_json::Value, String) {
    let out: Output = ecfleet()
        .args(["backup", "--format", "json", "--agent-dir"])
        .arg(agent_dir())
        .arg("-i")
        .arg(inventory)
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "backup JSON: {e}\nstdout: {}\nstderr: {stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let _ = fleet;
    (out.status.code().unwrap_or(-1), json, stderr)
}

fn backups_dir(fleet: &Fleet, tenant: &str, host: &str) -> std::path::PathBuf {
    fleet
        .dir
        .path()
        .join("share/tenants")
        .join(tenant)
        .join(host)
        .join("backups")
}

fn manifests(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".manifest.json"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn two_backups_report_drift_for_the_changed_host_alone_and_keep_what_matters() {
    let fleet = Fleet::new(6, 2);
    let inventory = fleet.write_inventory("");
    let (code, first, stderr) = backup(&fleet, &inventory, &[]);
    assert_eq!(code, 0, "{stderr}\n{first:#}");
    assert_eq!(first["summary"]["backed_up"], 6, "{first:#}");
    assert_eq!(first["summary"]["drifted"], 0);
    for h in first["hosts"].as_array().unwrap() {
        assert!(
            h["drift"].is_null(),
            "a first backup has nothing to compare with"
        );
        // The export archive, MigratedPolicy.json, PersistedState.xml, the applied JSON,
        // miiserver.exe.config and ecfleet's reading.
        let roles: Vec<&str> = h["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["role"].as_str().unwrap())
            .collect();
        assert_eq!(
            roles,
            [
                "server-configuration",
                "applied-policy",
                "migrated-policy",
                "persisted-state",
                "engine-config",
                "configuration"
            ],
            "{h:#}"
        );
    }
    // Every stored file matches its .sha256 and the manifest; the dump is a tar archive.
    let (name, tenant) = fleet.hosts[1].clone();
    let dir = backups_dir(&fleet, &tenant, &name);
    let host = first["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == name)
        .unwrap();
    for f in host["files"].as_array().unwrap() {
        let file = f["name"].as_str().unwrap();
        let data = std::fs::read(dir.join(file)).unwrap();
        let sha: String = Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(f["sha256"], sha.as_str());
    }
    // The backup's .sha256: a sha256sum line per file, which sha256sum itself checks.
    let sums_file = format!("{}.sha256", host["backup"].as_str().unwrap());
    let sums = std::fs::read_to_string(dir.join(&sums_file)).unwrap();
    assert_eq!(
        sums.lines().count(),
        host["files"].as_array().unwrap().len()
    );
    let checked = std::process::Command::new("sha256sum")
        .args(["-c", &sums_file])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(checked.status.success(), "{checked:?}");
    let tar = dir.join(format!(
        "{}.server-configuration.tar",
        host["backup"].as_str().unwrap()
    ));
    let listed = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&tar)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("GlobalSettings/GlobalSettings.xml"));
    let policy: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join(format!("{}.json", host["backup"].as_str().unwrap()))).unwrap(),
    )
    .unwrap();
    assert!(
        policy["onpremisesDirectoryPolicy"].is_array(),
        "the wizard's importable shape"
    );
    let first_bytes = std::fs::read(&tar).unwrap();
    let first_tar = tar.clone();

    // Between the nights someone changes one host's rules and scheduler, and a pre-upgrade
    // backup is taken by hand.
    let changed = &fleet.hosts[1].0;
    let machine = fleet.host_dir(changed).join("machine.toml");
    let text = std::fs::read_to_string(&machine).unwrap();
    let text = text.replace("interval_minutes = 30", "interval_minutes = 60").replace(
        "[faults]",
        "[[custom_rules]]\nidentifier = \"6a000000-0000-4000-8000-000000000001\"\nname = \"In from AD - Contractors\"\nconnector = \"x.local\"\nprecedence = 70\n\n[faults]",
    );
    std::fs::write(&machine, text).unwrap();
    let (code, pre, stderr) = backup(
        &fleet,
        &inventory,
        &["--tag", "pre-upgrade", "--host", changed],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        pre["hosts"][0]["backup"]
            .as_str()
            .unwrap()
            .ends_with("-pre-upgrade")
    );

    let (code, second, stderr) = backup(&fleet, &inventory, &["--keep", "1"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        second["summary"]["drifted"], 0,
        "compared with the pre-upgrade backup: {second:#}"
    );

    // A third night, the same host changes again: drift for it alone.
    let text = std::fs::read_to_string(&machine)
        .unwrap()
        .replace("precedence = 70", "precedence = 75");
    std::fs::write(&machine, text).unwrap();
    let (code, third, stderr) = backup(&fleet, &inventory, &["--keep", "1"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(third["summary"]["drifted"], 1, "{third:#}");
    for h in third["hosts"].as_array().unwrap() {
        let drift = &h["drift"];
        if h["host"] == changed.as_str() {
            let rule = &drift["rules_changed"][0];
            assert_eq!(rule["name"], "In from AD - Contractors");
            assert_eq!(rule["changes"][0]["field"], "precedence");
            assert_eq!(
                (
                    rule["changes"][0]["from"].as_str(),
                    rule["changes"][0]["to"].as_str()
                ),
                (Some("70"), Some("75"))
            );
        } else {
            for key in [
                "rules_added",
                "rules_removed",
                "rules_changed",
                "connectors_changed",
                "scheduler",
            ] {
                assert!(
                    drift[key].as_array().unwrap().is_empty(),
                    "{}: {drift:#}",
                    h["host"]
                );
            }
        }
    }
    // The second backup (against the pre-upgrade one) saw the scheduler and the new rule.
    let second_drift = &second["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == changed.as_str())
        .unwrap()["drift"];
    assert!(
        second_drift["rules_added"].as_array().unwrap().is_empty(),
        "already in the pre-upgrade backup"
    );

    // Retention (--keep 1): the pre-upgrade backup and the newest nightly stay; the older
    // nightly ones are gone, files and all. Nothing was overwritten.
    let dir = backups_dir(&fleet, &fleet.hosts[1].1, changed);
    let kept = manifests(&dir);
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept.iter().any(|m| m.contains("-pre-upgrade")), "{kept:?}");
    assert!(
        kept.iter().any(|m| m.ends_with("-nightly-3.manifest.json")),
        "{kept:?}"
    );
    let other = backups_dir(&fleet, &fleet.hosts[0].1, &fleet.hosts[0].0);
    let other_kept = manifests(&other);
    assert_eq!(other_kept.len(), 1, "{other_kept:?}");
    assert!(
        other_kept[0].ends_with("-nightly-3.manifest.json"),
        "{other_kept:?}"
    );
    // The first backup of the host that was not pruned yet... is gone only through retention;
    // while it existed its bytes never changed (checked before the second run removed it).
    assert!(!first_tar.exists() || std::fs::read(&first_tar).unwrap() == first_bytes);
}

#[test]
fn a_failed_export_fails_its_host_alone_and_writes_nothing_for_it() {
    let fleet = Fleet::new(3, 1);
    let inventory = fleet.write_inventory("");
    let (broken, tenant) = fleet.hosts[2].clone();
    let machine = fleet.host_dir(&broken).join("machine.toml");
    let text = std::fs::read_to_string(&machine)
        .unwrap()
        .replace("backup_fails = false", "backup_fails = true");
    std::fs::write(&machine, text).unwrap();
    let (code, report, stderr) = backup(&fleet, &inventory, &[]);
    assert_eq!(code, 2, "{stderr}\n{report:#}");
    assert_eq!(report["summary"]["backed_up"], 2);
    let h = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == broken.as_str())
        .unwrap();
    assert_eq!(h["ok"], false);
    assert_eq!(h["error_kind"], "agent");
    let error = h["error"].as_str().unwrap();
    assert!(
        error.contains("configuration export failed") && error.contains("backup_fails"),
        "{error}"
    );
    assert!(manifests(&backups_dir(&fleet, &tenant, &broken)).is_empty());
    let listed: Vec<_> = std::fs::read_dir(backups_dir(&fleet, &tenant, &broken))
        .map(|d| d.count())
        .into_iter()
        .collect();
    assert!(
        listed.iter().all(|n| *n == 0),
        "nothing written for the failed host"
    );
}

#[test]
fn an_inventory_without_a_share_is_refused_with_the_fix() {
    let fleet = Fleet::new(1, 1);
    let inventory = fleet.write_inventory("");
    let text = std::fs::read_to_string(&inventory).unwrap();
    let share_line = text
        .lines()
        .find(|l| l.starts_with("path = "))
        .unwrap()
        .to_string();
    std::fs::write(
        &inventory,
        text.replace("[share]\n", "").replace(&share_line, ""),
    )
    .unwrap();
    let out = ecfleet()
        .args(["backup", "-i"])
        .arg(&inventory)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[share]") && stderr.contains("inventory.toml"),
        "{stderr}"
    );
}

/// A symbolic link planted inside the share (a tenant's folder pointing elsewhere) is never
/// followed: that host's backup fails naming the link, nothing is written where it points, and
/// the other host is backed up.
#[test]
fn a_link_inside_the_share_is_an_error_naming_it_and_is_never_followed() {
    let fleet = Fleet::new(2, 1);
    let inventory = fleet.write_inventory("");
    let (victim, tenant) = fleet.hosts[1].clone();
    let elsewhere = fleet.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let tenants = fleet.dir.path().join("share/tenants");
    std::fs::create_dir_all(&tenants).unwrap();
    std::os::unix::fs::symlink(&elsewhere, tenants.join(&tenant)).unwrap();
    let (code, report, stderr) = backup(&fleet, &inventory, &[]);
    assert_eq!(code, 2, "{stderr}\n{report:#}");
    let h = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == victim.as_str())
        .unwrap();
    assert_eq!(h["ok"], false, "{h:#}");
    let error = h["error"].as_str().unwrap();
    assert!(
        error.contains("symbolic link") && error.contains(&tenant),
        "{error}"
    );
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "written through the link"
    );
    assert_eq!(report["summary"]["backed_up"], 1, "{report:#}");
}
