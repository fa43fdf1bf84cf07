//! The share is the share: an inventory whose `[share] path` is not there (an SMB share that is
//! not mounted) is refused by every command, naming the path and the fix, before any host is
//! contacted, and the folder is never created on the controller's own disk. Real: the binary,
//! files, a loopback listener standing for the host (it must never be called).

mod common;

use std::net::TcpListener;

use common::*;

#[test]
fn a_share_that_is_not_there_is_refused_by_every_command_before_any_host() {
    let dir = tempfile::tempdir().unwrap();
    let host = TcpListener::bind("127.0.0.1:0").unwrap();
    host.set_nonblocking(true).unwrap();
    let port = host.local_addr().unwrap().port();
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, "").unwrap();
    let key = dir.path().join("id_ed25519");
    keygen(&key);
    let missing = dir.path().join("mnt").join("ecfleet-share");
    let inventory = dir.path().join("fleet.toml");
    std::fs::write(
        &inventory,
        format!(
            "[defaults]\nuser = \"ecfleet\"\nidentity_file = {key:?}\nknown_hosts = {known_hosts:?}\n\n[share]\npath = {missing:?}\n\n[[tenant]]\nname = \"contoso\"\n\n[[tenant.host]]\nname = \"ec01\"\naddress = \"127.0.0.1\"\nport = {port}\n"
        ),
    )
    .unwrap();
    let (msi, _) = lab_msi(dir.path(), 1);
    let inv = inventory.to_str().unwrap();
    let msi = msi.to_str().unwrap();
    let commands: Vec<Vec<&str>> = vec![
        vec!["inventory", "check", "-i", inv],
        vec!["audit", "-i", inv],
        vec!["plan", "-i", inv, "--target", "2.6.92.0"],
        vec!["backup", "-i", inv],
        vec!["stage", "-i", inv, "--msi", msi],
        vec!["run", "-i", inv, "--msi", msi, "--yes"],
        vec!["report", "latest", "-i", inv],
    ];
    for args in commands {
        let out = ecfleet().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(
            stderr.contains(missing.to_str().unwrap()) && stderr.contains("mount"),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("fleet.toml:"),
            "{args:?} names the file and line: {stderr}"
        );
    }
    assert!(!missing.exists(), "the share's root was created");
    assert!(!dir.path().join("mnt").exists());
    assert!(host.accept().is_err(), "a host was contacted");
}
