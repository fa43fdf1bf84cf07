//! ecfleet's WinRM client against the project's WinRM test endpoint
//! (tests/winrm_endpoint/endpoint.py), which pywinrm — an independent client — checks first, so
//! that our client and our server cannot share one bug. Real: HTTP/1.1 over loopback TCP, NTLMv2
//! accepted by pyspnego, MS-WSMV message encryption, the WinRS operations and faults, processes
//! run by the endpoint. Stands in: Windows (commands run under /bin/sh). The test installs
//! pyspnego and pywinrm from PyPI into a venv under the target directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ecfleet::error::ErrorKind;
use ecfleet::transport::winrm::envelope::{Session, ShellOptions};
use ecfleet::transport::winrm::http::{Endpoint, HttpExchange};
use ecfleet::transport::winrm::ntlm::Identity;
use ecfleet::transport::winrm::response::{FAULT_QUOTA, Operation};
use ecfleet::transport::winrm::shell::{self, Run, ShellError, Stdin};
use sha2::Digest;

mod common;

use common::winrm::{PASSWORD, USER, audit, lab_up, night, over_winrm, pywinrm, service, verdicts};

/// pywinrm, an independent client, against a WinRM service on `port`: a command with stdout,
/// stderr and an exit code, a command quieter than OperationTimeout, 512 KiB of stdin hashed on
/// the other side, and a wrong password.
fn pywinrm_check(port: u16, user: &str, password: &str) {
    let script = format!(
        r#"
import hashlib, winrm
url = 'http://127.0.0.1:{port}/wsman'
s = winrm.Session(url, auth=('{user}', '{password}'), transport='ntlm', operation_timeout_sec=1, read_timeout_sec=3)
r = s.run_cmd('echo hi; echo err >&2; exit 7')
print('run', r.status_code, r.std_out, r.std_err)
print('quiet', s.run_cmd('sleep 1.5; echo slept').std_out)
p = s.protocol
shell = p.open_shell()
cid = p.run_command(shell, 'sha256sum')
data = bytes(range(256)) * 2048
for i in range(0, len(data), 100000):
    p.send_command_input(shell, cid, data[i:i + 100000], end=i + 100000 >= len(data))
out, err, rc = p.get_command_output(shell, cid)
print('stdin', out.split()[0].decode() == hashlib.sha256(data).hexdigest())
p.cleanup_command(shell, cid)
p.close_shell(shell)
try:
    winrm.Session(url, auth=('{user}', 'wrong'), transport='ntlm').run_cmd('true')
except Exception as e:
    print('wrong', type(e).__name__)
"#
    );
    let text = pywinrm(&script);
    assert!(text.contains("run 7 b'hi\\n' b'err\\n'"), "{text}");
    assert!(text.contains("quiet b'slept\\n'"), "{text}");
    assert!(text.contains("stdin True"), "{text}");
    assert!(text.contains("wrong InvalidCredentialsError"), "{text}");
}

#[test]
fn pywinrm_cross_checks_the_endpoint() {
    let s = service(&[]);
    pywinrm_check(s.port, USER, PASSWORD);
}

fn exchange(port: u16, password: &str) -> HttpExchange {
    HttpExchange::new(
        Endpoint {
            host: "127.0.0.1".into(),
            port,
            https: false,
        },
        Identity::new(USER, password).into(),
        Duration::from_secs(5),
        Duration::from_secs(8),
    )
}

fn session(port: u16, operation_timeout_secs: u32) -> Session {
    Session {
        to: format!("http://127.0.0.1:{port}/wsman"),
        max_envelope_size: 153_600,
        operation_timeout_secs,
        session_id: uuid::Uuid::new_v4(),
    }
}

fn sh<'a>(line: &'a [&'a str], stdin: Option<&'a [u8]>) -> Run<'a> {
    Run {
        command: line[0],
        arguments: &line[1..],
        skip_cmd_shell: false,
        stdin: stdin.map(Stdin::Raw),
        max_output: 4 << 20,
        envelope_quota: 150 << 10,
    }
}

#[tokio::test]
async fn our_client_runs_commands_over_ntlm_with_message_encryption() {
    let s = service(&[]);
    let mut x = exchange(s.port, PASSWORD);
    let opts = ShellOptions {
        codepage: Some(65001),
        no_profile: Some(true),
        ..Default::default()
    };
    let done = shell::run(
        &mut x,
        &session(s.port, 5),
        &opts,
        &sh(&["echo", "hi;", "echo", "err", ">&2;", "exit", "7"], None),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            done.stdout.as_slice(),
            done.stderr.as_slice(),
            done.exit_code
        ),
        (&b"hi\n"[..], &b"err\n"[..], Some(7))
    );
    // Quiet for longer than OperationTimeout: the timeout fault is a keep-alive.
    let quiet = shell::run(
        &mut x,
        &session(s.port, 1),
        &opts,
        &sh(&["sleep", "2.5;", "echo", "slept"], None),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert!(quiet.keep_alives >= 1, "{quiet:?}");
    assert_eq!(quiet.stdout, b"slept\n");
    // 3 MiB of stdin in envelope-sized Sends, hashed on the other side.
    let data: Vec<u8> = (0..3 << 20).map(|i: u32| (i * 7 % 251) as u8).collect();
    let hashed = shell::run(
        &mut x,
        &session(s.port, 5),
        &opts,
        &sh(&["sha256sum"], Some(&data)),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let want = data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(&data));
    assert!(
        String::from_utf8_lossy(&hashed.stdout).starts_with(&want),
        "{:?}",
        String::from_utf8_lossy(&hashed.stdout)
    );
}

#[tokio::test]
async fn a_wrong_password_is_an_auth_error_that_shows_no_secret() {
    let s = service(&[]);
    let wrong = "Wr0ng-Secret-Value";
    let mut x = exchange(s.port, wrong);
    let err = shell::run(
        &mut x,
        &session(s.port, 5),
        &ShellOptions::default(),
        &sh(&["true"], None),
        Duration::from_secs(20),
    )
    .await
    .unwrap_err();
    let ShellError::Exchange(e) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains(wrong) && !shown.contains(PASSWORD),
        "{shown}"
    );
}

#[tokio::test]
async fn a_shell_quota_fault_is_typed() {
    let s = service(&["--max-shells", "0"]);
    let mut x = exchange(s.port, PASSWORD);
    let err = shell::run(
        &mut x,
        &session(s.port, 5),
        &ShellOptions::default(),
        &sh(&["true"], None),
        Duration::from_secs(20),
    )
    .await
    .unwrap_err();
    let ShellError::Fault { operation, fault } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (*operation, fault.code),
        (Operation::Create, Some(FAULT_QUOTA))
    );
    assert!(
        err.to_string()
            .contains("maximum number of concurrent shells"),
        "{err}"
    );
}

#[tokio::test]
async fn a_service_that_stops_answering_mid_receive_hits_the_deadline() {
    let s = service(&[]);
    let pid = s.child.id().to_string();
    let mut x = exchange(s.port, PASSWORD);
    let stopper = {
        let pid = pid.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            Command::new("kill").args(["-STOP", &pid]).status().unwrap();
        })
    };
    let started = Instant::now();
    let err = shell::run(
        &mut x,
        &session(s.port, 1),
        &ShellOptions::default(),
        &sh(&["sleep", "60"], None),
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    stopper.join().unwrap();
    Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    assert!(
        matches!(err, ShellError::Timeout(_))
            || matches!(&err, ShellError::Exchange(e) if e.kind == ErrorKind::Timeout),
        "{err:?}"
    );
    // The deadline, plus at most the bounded clean-up.
    assert!(
        started.elapsed() < Duration::from_secs(5 + 11),
        "{:?}",
        started.elapsed()
    );
}

/// The faults above, each on a host of one fleet audit: each is that host's error, of its kind,
/// and the rest of the fleet is audited as usual.
#[test]
fn winrm_faults_are_per_host_errors_and_the_rest_of_the_fleet_is_audited() {
    let healthy = service(&[]);
    let no_shells = service(&["--max-shells", "0"]);
    let frozen = service(&[]);
    Command::new("kill")
        .args(["-STOP", &frozen.child.id().to_string()])
        .status()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_up(dir.path(), 5, 0, &[]);
    let names = common::winrm::host_names(&dir.path().join("inventory.toml"));
    let keys = |pairs: &[(&str, toml::Value)]| -> toml::Table {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    };
    let mut wrong = toml::Table::new();
    wrong.insert("env".into(), "EC_TEST_WRONG_PASSWORD".into());
    let inventory = common::winrm::over_winrm(
        &dir.path().join("inventory.toml"),
        &[
            None,
            Some((healthy.port, keys(&[]))),
            Some((healthy.port, keys(&[("password", wrong.into())]))),
            Some((no_shells.port, keys(&[]))),
            Some((frozen.port, keys(&[("connect_timeout", 3.into())]))),
        ],
    );
    let started = Instant::now();
    let out = common::ecfleet()
        .args([
            "audit",
            "--format",
            "json",
            "--as-of",
            "2026-11-24",
            "--agent-dir",
        ])
        .arg(common::agent_dir())
        .arg("-i")
        .arg(&inventory)
        .env("EC_TEST_WINRM_PASSWORD", PASSWORD)
        .env("EC_TEST_WRONG_PASSWORD", "Wr0ng-Secret-Value")
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    Command::new("kill")
        .args(["-CONT", &frozen.child.id().to_string()])
        .status()
        .unwrap();
    drop(lab);
    let (report, stderr) = common::json_of(&out);
    let host = |i: usize| common::host(&report, &names[i]).clone();
    for i in [0, 1] {
        assert_eq!(host(i)["reachable"], true, "{:#}", host(i));
    }
    let failed = |i: usize, kind: &str, says: &str| {
        let h = host(i);
        assert_eq!(h["reachable"], false, "{h:#}");
        assert_eq!(h["error_kind"], kind, "{h:#}");
        assert!(h["error"].as_str().unwrap().contains(says), "{h:#}");
    };
    failed(2, "auth", "refused the credentials");
    failed(3, "protocol", "maximum number of concurrent shells");
    failed(4, "timeout", "");
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    assert!(!stderr.contains("Wr0ng-Secret-Value") && !stderr.contains(PASSWORD));
    assert!(!report.to_string().contains("Wr0ng-Secret-Value"));
}

// --- A mixed fleet: the same lab hosts over SSH (the lab server) and over WinRM ---------------

/// Every second host of `inventory` reached over WinRM through `port` instead of SSH.
fn half_over_winrm(inventory: &Path, port: u16) -> PathBuf {
    let hosts: Vec<_> = (0..common::winrm::hosts(inventory).len())
        .map(|n| (n % 2 == 1).then(|| (port, toml::Table::new())))
        .collect();
    over_winrm(inventory, &hosts)
}

#[test]
fn a_mixed_fleet_audits_the_same_over_winrm_as_over_ssh() {
    let s = service(&[]);
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_up(dir.path(), 12, 0, &[]);
    let ssh_only = dir.path().join("inventory.toml");
    let mixed = half_over_winrm(&ssh_only, s.port);
    let (over_ssh, _) = audit(&ssh_only, &["--as-of", "2026-11-24"]);
    let (mixed_report, stderr) = audit(&mixed, &["--as-of", "2026-11-24", "-vv"]);
    drop(lab);
    assert_eq!(
        mixed_report["summary"]["reachable"], 12,
        "{stderr}\n{mixed_report:#}"
    );
    assert_eq!(verdicts(&mixed_report), verdicts(&over_ssh));
    // The WinRM password is never shown, at any verbosity (-vv, RUST_LOG=trace).
    assert!(!stderr.contains(PASSWORD) && !mixed_report.to_string().contains(PASSWORD));
}

#[test]
fn a_mixed_fleet_is_backed_up_and_upgraded_over_winrm_as_over_ssh() {
    let s = service(&[]);
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_up(dir.path(), 12, 0, &[]);
    let mixed = half_over_winrm(&dir.path().join("inventory.toml"), s.port);
    let done = night(dir.path(), &mixed);
    drop(lab);
    assert_eq!(done.backup_code, Some(0), "{}", done.stderr);
    let hosts = done.run["hosts"].as_array().unwrap();
    let winrm: Vec<String> = winrm_hosts(&mixed).into_iter().map(|(n, _)| n).collect();
    let in_place: Vec<&serde_json::Value> =
        hosts.iter().filter(|h| h["action"] == "in-place").collect();
    assert!(
        in_place
            .iter()
            .filter(|h| winrm.iter().any(|w| h["host"] == w.as_str()))
            .count()
            >= 2,
        "some in-place hosts are WinRM hosts: {winrm:?}"
    );
    for h in in_place {
        assert_eq!(h["outcome"], "verified", "{h:#}\n{}", done.stderr);
        assert!(h["backup"].as_str().unwrap().ends_with("-pre-upgrade"));
    }
    assert!(!done.stderr.contains(PASSWORD));
}

// --- The lab's own WinRM server (`lab up --winrm N`) ---------------------------------------------

/// The WinRM hosts of a lab inventory: (name, port).
fn winrm_hosts(inventory: &Path) -> Vec<(String, u16)> {
    common::winrm::hosts(inventory)
        .iter()
        .filter(|h| h.get("transport").and_then(|t| t.as_str()) == Some("winrm"))
        .map(|h| {
            (
                h["name"].as_str().unwrap().to_string(),
                h["port"].as_integer().unwrap() as u16,
            )
        })
        .collect()
}

#[test]
fn pywinrm_cross_checks_the_lab_winrm_server() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_up(dir.path(), 2, 2, &[]);
    let hosts = winrm_hosts(&dir.path().join("inventory.toml"));
    assert_eq!(hosts.len(), 2);
    let password = std::fs::read_to_string(dir.path().join("keys/winrm-password")).unwrap();
    pywinrm_check(hosts[0].1, "ecfleet", password.trim());
    drop(lab);
}

/// Issue 10's acceptance on the lab: 24 hosts, half over WinRM (the lab's own WinRM server),
/// give the same audit verdicts, plan, backups and upgrade outcomes per host as all over SSH;
/// WinRM hosts are among those upgraded and verified.
#[test]
fn a_24_host_lab_half_over_winrm_audits_plans_backs_up_and_upgrades_as_all_over_ssh() {
    let ssh_dir = tempfile::tempdir().unwrap();
    let mixed_dir = tempfile::tempdir().unwrap();
    let ssh_lab = lab_up(ssh_dir.path(), 24, 0, &[]);
    let mixed_lab = lab_up(mixed_dir.path(), 24, 12, &[]);
    let winrm: Vec<String> = winrm_hosts(&mixed_dir.path().join("inventory.toml"))
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(winrm.len(), 12);
    let over_ssh = night(ssh_dir.path(), &ssh_dir.path().join("inventory.toml")).night;
    drop(ssh_lab);
    let mixed = night(mixed_dir.path(), &mixed_dir.path().join("inventory.toml")).night;
    drop(mixed_lab);
    assert_eq!(mixed.audit.iter().filter(|h| h.1).count(), 24);
    // A night with something in it: several actions planned, backups made, hosts upgraded.
    let actions: std::collections::BTreeSet<&str> =
        mixed.plan.iter().map(|p| p.1.as_str()).collect();
    assert!(actions.len() >= 3, "{actions:?}");
    assert!(
        mixed.backup.iter().filter(|b| b.1).count() >= 12,
        "{mixed:#?}"
    );
    assert_eq!(mixed.run.len(), 24);
    assert_eq!(mixed, over_ssh);
    let verified_over_winrm = mixed
        .run
        .iter()
        .filter(|(host, action, outcome)| {
            action == "in-place" && outcome == "verified" && winrm.contains(host)
        })
        .count();
    assert!(verified_over_winrm >= 4, "{verified_over_winrm}");
}

/// A backup of 100 MB (a large directory's configuration) comes back from a host over WinRM,
/// verified: files are read in pieces, never as one command's output (which stops at 32 MiB).
#[test]
fn a_100_mb_backup_comes_back_over_winrm_verified() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_up(dir.path(), 2, 2, &[]);
    let inventory = dir.path().join("inventory.toml");
    let (host, _) = winrm_hosts(&inventory).into_iter().next().unwrap();
    let machine = dir.path().join("hosts").join(&host).join("machine.toml");
    let text = std::fs::read_to_string(&machine).unwrap();
    assert!(text.contains("[backup]\n"), "{text}");
    std::fs::write(
        &machine,
        text.replacen("[backup]\n", "[backup]\ndump_padding_mb = 100\n", 1),
    )
    .unwrap();
    let out = common::ecfleet()
        .args([
            "backup",
            "--format",
            "json",
            "--host-deadline",
            "600",
            "--host",
            &host,
            "-i",
        ])
        .arg(&inventory)
        .arg("--agent-dir")
        .arg(common::agent_dir())
        .output()
        .unwrap();
    drop(lab);
    let (report, stderr) = common::json_of(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}\n{report:#}");
    let h = &report["hosts"][0];
    assert_eq!(h["ok"], true, "{h:#}");
    let dump = h["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["role"] == "server-configuration")
        .unwrap();
    assert!(dump["size"].as_u64().unwrap() > 100 << 20, "{dump:#}");
    // What is on the share is what the host hashed.
    let stored = dir
        .path()
        .join("share")
        .join(h["path"].as_str().unwrap())
        .join(dump["name"].as_str().unwrap());
    let sha: String = sha2::Sha256::digest(std::fs::read(&stored).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(sha, dump["sha256"].as_str().unwrap());
}

/// A man in the middle on a WinRM host over HTTP: a plain (unencrypted) HTTP 500 carrying
/// altered command output on the sealed connection, or replies that do not say which request
/// they answer. Each host fails with a protocol error naming the forgery; nothing it said is
/// reported as fact; the honest host beside them is audited.
#[test]
fn a_forged_winrm_reply_is_a_protocol_error_and_nothing_it_said_is_taken() {
    let honest = service(&[]);
    let plain_500 = service(&["--forge", "plain-500"]);
    let unrelated = service(&["--forge", "no-relates-to"]);
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_up(dir.path(), 3, 0, &[]);
    let names = common::winrm::host_names(&dir.path().join("inventory.toml"));
    let inventory = common::winrm::over_winrm(
        &dir.path().join("inventory.toml"),
        &[
            Some((honest.port, toml::Table::new())),
            Some((plain_500.port, toml::Table::new())),
            Some((unrelated.port, toml::Table::new())),
        ],
    );
    let (report, stderr) = audit(&inventory, &[]);
    drop(lab);
    let host = |i: usize| common::host(&report, &names[i]).clone();
    assert_eq!(host(0)["reachable"], true, "{:#}\n{stderr}", host(0));
    for (i, says) in [(1, "forgery"), (2, "RelatesTo")] {
        let h = host(i);
        assert_eq!(h["reachable"], false, "{h:#}");
        assert_eq!(h["error_kind"], "protocol", "{h:#}");
        assert!(h["error"].as_str().unwrap().contains(says), "{h:#}");
        assert!(
            h["version"].is_null() || h["version"]["product"].is_null(),
            "{h:#}"
        );
    }
    assert!(!report.to_string().contains("FORGED-OUTPUT"));
    assert!(!stderr.contains("FORGED-OUTPUT"));
}
