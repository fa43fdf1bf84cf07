//! `ecfleet stage` end to end: lab hosts behind real OpenSSH sshd, a real MSI database, real
//! SFTP transfers, the real agent checking SHA-256 on the host. What stands in: the lab backend
//! has no Authenticode to check (Windows hosts do).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use sha2::{Digest, Sha256};

fn stage(inventory: &Path, msi: &Path, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let out = ecfleet()
        .args(["stage", "--format", "json", "--agent-dir"])
        .arg(agent_dir())
        .arg("-i")
        .arg(inventory)
        .arg("--msi")
        .arg(msi)
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json, stderr)
}

fn staged_file(fleet: &Fleet, host: &str, data: &[u8]) -> PathBuf {
    let sha: String = Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    fleet
        .host_dir(host)
        .join(".ecfleet/staged")
        .join(&sha[..16])
        .join("AzureADConnect.msi")
}

#[test]
fn staging_sends_each_host_what_it_lacks_and_verifies_it_there() {
    let fleet = Fleet::new(4, 2);
    let inventory = fleet.write_inventory("");
    let (msi, data) = lab_msi(fleet.dir.path(), 3);
    let size = data.len() as u64;
    let names: Vec<String> = fleet.hosts.iter().map(|(n, _)| n.clone()).collect();

    let (code, first, stderr) = stage(&inventory, &msi, &[]);
    assert_eq!(code, 0, "{stderr}\n{first:#}");
    assert_eq!(first["summary"]["bytes_sent"], size * 4);
    for name in &names {
        let on_host = std::fs::read(staged_file(&fleet, name, &data)).unwrap();
        assert!(on_host == data, "{name}: the staged installer differs");
    }

    // Again: the same content is there everywhere, nothing moves.
    let (code, again, _) = stage(&inventory, &msi, &[]);
    assert_eq!(code, 0);
    assert_eq!(again["summary"]["bytes_sent"], 0);
    assert_eq!(again["summary"]["already_there"], 4);

    // A cut transfer on one host resumes; a staged copy altered on another is sent again.
    let cut = staged_file(&fleet, &names[0], &data);
    std::fs::remove_file(&cut).unwrap();
    let partial = PathBuf::from(format!("{}.ecfleet-partial", cut.display()));
    std::fs::write(&partial, &data[..1 << 20]).unwrap();
    let altered = staged_file(&fleet, &names[1], &data);
    let mut bytes = data.clone();
    bytes[size as usize / 2] ^= 0xff;
    std::fs::write(&altered, &bytes).unwrap();
    // A cut transfer whose kept beginning is wrong: resumed, refused by its hash, sent again.
    let wrong = staged_file(&fleet, &names[2], &data);
    std::fs::remove_file(&wrong).unwrap();
    let mut beginning = data[..1 << 20].to_vec();
    beginning[10] ^= 0xff;
    std::fs::write(format!("{}.ecfleet-partial", wrong.display()), &beginning).unwrap();
    let (code, third, stderr) = stage(&inventory, &msi, &[]);
    assert_eq!(code, 0, "{stderr}\n{third:#}");
    let row = |n: &str| {
        third["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == n)
            .unwrap()["staged"]
            .clone()
    };
    let resumed = row(&names[0]);
    assert_eq!(resumed["resumed_from"], 1u64 << 20);
    assert_eq!(resumed["sent"], size - (1 << 20));
    assert_eq!(row(&names[1])["sent"], size);
    assert!(std::fs::read(&cut).unwrap() == data && !partial.exists());
    assert!(std::fs::read(&altered).unwrap() == data);
    let redone = row(&names[2]);
    assert_eq!(redone["sent"], size - (1 << 20) + size, "{redone:#}");
    assert_eq!(redone["resumed_from"], 0, "{redone:#}");
    let why = redone["interruptions"][0].as_str().unwrap();
    assert!(
        why.contains("did not match the installer") && why.contains("sent again"),
        "{why}"
    );
    assert!(std::fs::read(&wrong).unwrap() == data);
    assert_eq!(third["summary"]["bytes_sent"], size * 4 - (1 << 21));
}

#[test]
fn a_host_without_room_is_refused_before_any_byte_moves_and_a_wrong_pin_is_refused() {
    let fleet = Fleet::new(2, 1);
    let inventory = fleet.write_inventory("");
    let (msi, data) = lab_msi(fleet.dir.path(), 1);
    let full = &fleet.hosts[0].0;
    let machine = fleet.host_dir(full).join("machine.toml");
    let text = std::fs::read_to_string(&machine).unwrap();
    let free_line = text
        .lines()
        .find(|l| l.starts_with("free_bytes"))
        .unwrap()
        .to_string();
    std::fs::write(
        &machine,
        text.replace(&free_line, "free_bytes = 1073741824"),
    )
    .unwrap();
    let (code, report, stderr) = stage(&inventory, &msi, &[]);
    assert_eq!(code, 2, "{stderr}\n{report:#}");
    let host = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == full.as_str())
        .unwrap();
    assert_eq!(host["error_kind"], "refused");
    assert!(
        host["error"].as_str().unwrap().contains("1.0 GiB free"),
        "{host:#}"
    );
    assert!(
        !staged_file(&fleet, full, &data).parent().unwrap().exists(),
        "nothing was sent"
    );
    assert_eq!(report["summary"]["staged"], 1);

    let (code, _, stderr) = stage(&inventory, &msi, &["--sha256", &"0".repeat(64)]);
    assert_eq!(code, 3);
    assert!(stderr.contains("--sha256 pins"), "{stderr}");
}
