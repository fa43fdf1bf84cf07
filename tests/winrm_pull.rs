//! Host pull over WinRM: the controller offers a file over its own HTTPS and the host fetches
//! it. Real: the controller's file server (rustls), curl on the "host" (the lab host's POSIX
//! side, as curl.exe or .NET would be on Windows) pinning its key, the project's WinRM endpoint
//! running the fetch, the agent verifying what arrived. Stands in: Windows (its PowerShell
//! fetcher is not run here: docs/winrm.md), a firewall (the endpoint's `--no-egress` points the
//! host's outbound HTTPS at a closed port).

use std::process::Command;

use bytes::Bytes;
use ecfleet::transport::winrm::pull;

mod common;

use common::winrm::{PASSWORD, lab_up, over_winrm, service};

fn curl(url: &str, pin: &str, out: &std::path::Path) -> (Option<i32>, String) {
    curl_from("127.0.0.1", url, pin, out)
}

/// curl from the loopback address `source` (127.0.0.0/8 is all this machine's).
fn curl_from(source: &str, url: &str, pin: &str, out: &std::path::Path) -> (Option<i32>, String) {
    let o = Command::new("curl")
        .args([
            "--interface",
            source,
            "-sS",
            "--fail",
            "--max-time",
            "20",
            "-k",
            "--pinnedpubkey",
            pin,
        ])
        .arg("-o")
        .arg(out)
        .arg(url)
        .output()
        .expect("curl (apt-get install curl)");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_offer_is_served_once_to_a_client_that_pins_the_controller_s_key() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let localhost = "127.0.0.1".parse().unwrap();
    let offer = pull::offer(localhost, localhost, Bytes::from(data.clone()))
        .await
        .unwrap();
    let url = offer.url();
    let pin = offer.pinned_public_key().to_string();
    // A wrong pin: curl refuses the server (exit 90), and the token is not spent by that.
    let wrong = format!("sha256//{}", data_encoding::BASE64.encode(&[0u8; 32]));
    let got = dir.path().join("got");
    let (code, _) = tokio::task::spawn_blocking({
        let (url, got) = (url.clone(), got.clone());
        move || curl(&url, &wrong, &got)
    })
    .await
    .unwrap();
    assert_eq!(code, Some(90));
    // The right pin: the whole file.
    let (code, err) = tokio::task::spawn_blocking({
        let (url, pin, got) = (url.clone(), pin.clone(), got.clone());
        move || curl(&url, &pin, &got)
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(std::fs::read(&got).unwrap(), data);
    // The token is spent: a second fetch is refused (404), as is an unknown token.
    let (code, err) = tokio::task::spawn_blocking({
        let (url, pin, got) = (url.clone(), pin.clone(), got.clone());
        move || curl(&url, &pin, &got)
    })
    .await
    .unwrap();
    assert_eq!(code, Some(22), "{err}");
    assert!(err.contains("404"), "{err}");
    drop(offer);
    // An offer to the host at 127.0.0.2: the token presented from 127.0.0.1 (another process
    // that read the host's command line, elsewhere) is refused and not spent; the host gets it.
    let host = "127.0.0.2".parse().unwrap();
    let offer = pull::offer(localhost, host, Bytes::from(data.clone()))
        .await
        .unwrap();
    let (url, pin) = (offer.url(), offer.pinned_public_key().to_string());
    let (code, err) = tokio::task::spawn_blocking({
        let (url, pin, got) = (url.clone(), pin.clone(), got.clone());
        move || curl_from("127.0.0.1", &url, &pin, &got)
    })
    .await
    .unwrap();
    assert_eq!(code, Some(22), "{err}");
    assert!(err.contains("403"), "{err}");
    let _ = std::fs::remove_file(&got);
    let (code, err) = tokio::task::spawn_blocking({
        let (url, pin, got) = (url.clone(), pin.clone(), got.clone());
        move || curl_from("127.0.0.2", &url, &pin, &got)
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(std::fs::read(&got).unwrap(), data);
    drop(offer);
}

#[test]
fn winrm_hosts_pull_files_from_the_controller_and_fall_back_when_they_cannot() {
    let reachable = service(&[]);
    let walled = service(&["--no-egress"]);
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_up(dir.path(), 3, 0, &[]);
    let names = common::winrm::host_names(&dir.path().join("inventory.toml"));
    let inventory = over_winrm(
        &dir.path().join("inventory.toml"),
        &[
            None,
            Some((reachable.port, toml::Table::new())),
            Some((walled.port, toml::Table::new())),
        ],
    );
    let (msi, data) = common::lab_msi(dir.path(), 4);
    // A transfer cut short earlier on the pulling host: only the rest is fetched (a Range).
    let sha = {
        use sha2::Digest;
        data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(&data))
    };
    let staged = dir
        .path()
        .join("hosts")
        .join(&names[1])
        .join(".ecfleet/staged")
        .join(&sha[..16]);
    std::fs::create_dir_all(&staged).unwrap();
    std::fs::write(
        staged.join("AzureADConnect.msi.ecfleet-partial"),
        &data[..1_000_000],
    )
    .unwrap();
    let out = common::ecfleet()
        .args(["stage", "--format", "json", "--agent-dir"])
        .arg(common::agent_dir())
        .arg("-i")
        .arg(&inventory)
        .arg("--msi")
        .arg(&msi)
        .env("EC_TEST_WINRM_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    drop(lab);
    let (report, stderr) = common::json_of(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}\n{stderr}");
    let staged_of = |i: usize| common::host(&report, &names[i])["staged"].clone();
    // SSH: SFTP, no transfer method to tell.
    assert!(staged_of(0).get("transfer").is_none(), "{report:#}");
    // Pulled, resumed after the kept million bytes.
    let pulled = staged_of(1);
    assert_eq!(
        pulled["transfer"], "host pull (HTTPS from the controller)",
        "{pulled:#}"
    );
    assert_eq!(pulled["resumed_from"], 1_000_000);
    assert_eq!(pulled["sent"], data.len() as u64 - 1_000_000);
    // Walled off: detected, sent over stdin, and said so, with curl's reason.
    let walled_off = staged_of(2);
    let how = walled_off["transfer"].as_str().unwrap();
    assert!(
        how.starts_with("WinRM stdin (host pull failed: ") && how.contains("127.0.0.1 port 9"),
        "{how}"
    );
    assert!(stderr.contains("host pull failed"), "{stderr}");
    // Both arrived whole (the agent checked the SHA-256 before moving them into place).
    for i in [1, 2] {
        let path = staged_of(i)["path"].as_str().unwrap().to_string();
        assert_eq!(std::fs::read(&path).unwrap(), data, "{}", names[i]);
    }
}
