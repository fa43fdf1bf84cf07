//! Numbers for the monitor (issue 19 §3; docs/monitoring.md) against real parts: lab hosts
//! audited by the real binary; the `--metrics` file read back by the Prometheus project's own
//! Python parser (`prometheus_client`, from PyPI, in a venv); `--nagios` lines and exit codes
//! for each plugin state.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::str::FromStr;
use std::sync::OnceLock;

use common::{ecfleet, json_of};

/// A venv with prometheus_client, made once per target directory.
fn prometheus_python() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("prometheus-venv");
        if !venv.join(".ready").exists() {
            let tmp = venv.with_extension(format!("tmp{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            assert!(
                Command::new("python3")
                    .args(["-m", "venv"])
                    .arg(&tmp)
                    .status()
                    .expect("python3 -m venv (apt-get install python3-venv)")
                    .success()
            );
            assert!(
                Command::new(tmp.join("bin/pip"))
                    .args(["install", "-q", "prometheus_client==0.21.1"])
                    .status()
                    .unwrap()
                    .success(),
                "pip install prometheus_client"
            );
            std::fs::write(tmp.join(".ready"), "").unwrap();
            if std::fs::rename(&tmp, &venv).is_err() {
                let _ = std::fs::remove_dir_all(&tmp);
            }
        }
        venv.join("bin/python")
    })
    .clone()
}

/// Every sample of a text-format file, as prometheus_client's parser reads it:
/// `(name, labels, value)`.
fn parsed(file: &Path) -> Vec<(String, serde_json::Value, f64)> {
    let script = "import json, sys\nfrom prometheus_client.parser import text_string_to_metric_families\nout = []\nfor family in text_string_to_metric_families(open(sys.argv[1]).read()):\n    for s in family.samples:\n        out.append([s.name, s.labels, s.value])\nprint(json.dumps(out))\n";
    let out = Command::new(prometheus_python())
        .args(["-c", script])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused the file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<(String, serde_json::Value, f64)>>(&out.stdout).unwrap()
}

fn audit(inventory: &Path, extra: &[&str]) -> Output {
    ecfleet()
        .args([
            "audit",
            "--as-of",
            "2026-11-24",
            "--no-share",
            "--agent-dir",
        ])
        .arg(common::agent_dir())
        .arg("-i")
        .arg(inventory)
        .args(extra)
        .output()
        .unwrap()
}

/// The plugin's line and exit code.
fn nagios(inventory: &Path, extra: &[&str]) -> (String, Option<i32>) {
    let out = audit(inventory, &[&["--nagios"], extra].concat());
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code(),
    )
}

#[test]
fn metrics_parse_as_prometheus_reads_them_and_match_the_audit() {
    let dir = tempfile::tempdir().unwrap();
    let lab = common::winrm::lab_up(&dir.path().join("lab"), 6, 0, &[]);
    let inventory = dir.path().join("lab/inventory.toml");
    let (report, _) = json_of(&audit(&inventory, &["--format", "json"]));
    let prom = dir.path().join("ecfleet.prom");
    std::fs::write(&prom, "stale\n").unwrap();
    let out = audit(&inventory, &["--metrics", prom.to_str().unwrap()]);
    drop(lab);
    assert_eq!(out.status.code(), Some(1), "findings: the audit's own code");
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(text.ends_with('\n') && !text.contains("stale"));
    let samples = parsed(&prom);
    let value = |name: &str, host: &str, extra: Option<(&str, &str)>| {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name && l["host"] == host && extra.is_none_or(|(k, v)| l[k] == v)
            })
            .map(|s| s.2)
    };
    for h in report["hosts"].as_array().unwrap() {
        let host = h["host"].as_str().unwrap();
        let info = samples
            .iter()
            .find(|(n, l, _)| n == "ecfleet_server_info" && l["host"] == host)
            .unwrap_or_else(|| panic!("no server_info for {host}"));
        assert_eq!(info.1["version"], h["version"]["product"], "{host}");
        assert_eq!(info.1["tenant"], h["tenant"], "{host}");
        assert_eq!(value("ecfleet_server_reachable", host, None), Some(1.0));
        for severity in ["critical", "warning", "info"] {
            let expected = h["findings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["severity"] == severity)
                .count() as f64;
            assert_eq!(
                value(
                    "ecfleet_server_findings",
                    host,
                    Some(("severity", severity))
                ),
                Some(expected),
                "{host} {severity}"
            );
        }
        if let Some(end) = h["support"]["end_of_support"].as_str() {
            let end: jiff::civil::Date = end.parse().unwrap();
            let days = jiff::civil::date(2026, 11, 24)
                .until(end)
                .unwrap()
                .get_days();
            assert_eq!(
                value("ecfleet_server_support_days_left", host, None),
                Some(f64::from(days)),
                "{host}"
            );
        }
    }
    let fleet = |name: &str| {
        samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|s| s.2)
            .collect::<Vec<_>>()
    };
    assert_eq!(fleet("ecfleet_audit_exit_code"), vec![1.0]);
    assert_eq!(
        fleet("ecfleet_server_unsupported").iter().sum::<f64>(),
        2.0,
        "t04 (sync stopped) and t05 (V1 on 2012 R2)"
    );

    // A folder that does not exist: the controller's own failure, said, and nothing half-written.
    let out = audit(
        &inventory,
        &[
            "--metrics",
            dir.path().join("missing/ecfleet.prom").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot write the metrics file"));
}

#[test]
fn nagios_answers_each_plugin_state_with_its_exit_code_and_perfdata() {
    let dir = tempfile::tempdir().unwrap();
    let lab = common::winrm::lab_up(&dir.path().join("lab"), 6, 0, &[]);
    let inventory = dir.path().join("lab/inventory.toml");

    let (line, code) = nagios(&inventory, &["--host", "t01-current"]);
    assert_eq!(code, Some(0), "{line}");
    assert!(
        line.starts_with("ECFLEET OK - 1 server audited, none needs attention | 'servers'=1;;;0 "),
        "{line}"
    );

    let (line, code) = nagios(&inventory, &["--host", "t03-retiring"]);
    assert_eq!(code, Some(1), "{line}");
    assert!(
        line.starts_with("ECFLEET WARNING - 1 server with warnings (t03-retiring) |")
            && line.contains("'retiring'=1;0;;0;1"),
        "{line}"
    );

    let (line, code) = nagios(&inventory, &[]);
    assert_eq!(code, Some(2), "{line}");
    assert!(
        line.starts_with(
            "ECFLEET CRITICAL - 2 servers with critical findings (t04-sync-stopped, t05-v1-2012r2)"
        ),
        "{line}"
    );
    assert!(line.contains("'unsupported'=2;;0;0;6"), "{line}");
    assert_eq!(line.lines().count(), 1, "one line: {line}");

    // Bad input: nothing to judge.
    let (line, code) = nagios(&inventory, &["--host", "t01-curent"]);
    assert_eq!(code, Some(3), "{line}");
    assert!(line.starts_with("ECFLEET UNKNOWN - "), "{line}");

    // No server reachable: the audit saw nothing.
    drop(lab);
    let (line, code) = nagios(&inventory, &["--host", "t01-current"]);
    assert_eq!(code, Some(3), "{line}");
    assert!(
        line.starts_with(
            "ECFLEET UNKNOWN - no server could be audited (1 unreachable: t01-current)"
        ),
        "{line}"
    );
}

#[test]
fn backup_and_run_metrics_follow_the_share_and_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let lab = common::winrm::lab_up(&lab_dir, 3, 0, &[]);
    let inventory = lab_dir.join("inventory.toml");
    let fleet = |args: &[&str]| {
        ecfleet()
            .args(args)
            .arg("--agent-dir")
            .arg(common::agent_dir())
            .arg("-i")
            .arg(&inventory)
            .output()
            .unwrap()
    };
    let prom = dir.path().join("backup.prom");
    let prom_arg = prom.to_str().unwrap();
    let sample = |samples: &[(String, serde_json::Value, f64)], name: &str, host: &str| {
        samples
            .iter()
            .find(|(n, l, _)| n == name && l["host"] == host)
            .map(|s| s.2)
    };

    // The upgrade night first (its pre-upgrade backups are on the share too).
    let run_prom = dir.path().join("run.prom");
    let out = common::plan_and_run(
        dir.path(),
        &lab_dir,
        &fleet,
        &["--metrics", run_prom.to_str().unwrap()],
    );
    let (run, stderr) = json_of(&out);
    let samples = parsed(&run_prom);
    for h in run["hosts"].as_array().unwrap() {
        let host = h["host"].as_str().unwrap();
        let outcome = samples
            .iter()
            .find(|(n, l, _)| n == "ecfleet_run_server_outcome" && l["host"] == host)
            .unwrap_or_else(|| panic!("no outcome for {host}: {stderr}"));
        assert_eq!(outcome.1["outcome"], h["outcome"], "{host}");
        assert_eq!(outcome.1["run_id"], run["run_id"]);
    }
    let verified = samples
        .iter()
        .find(|(n, l, _)| n == "ecfleet_run_hosts" && l["outcome"] == "verified")
        .unwrap()
        .2;
    assert_eq!(verified, run["summary"]["verified"].as_f64().unwrap());
    assert!(verified >= 1.0, "{run:#}");

    // A nightly backup: every server stored, each with its newest backup's time.
    let out = fleet(&["backup", "--metrics", prom_arg]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = parsed(&prom);
    let hosts = ["t01-current", "t02-behind", "t02-staging"];
    let mut last_good = Vec::new();
    for host in hosts {
        assert_eq!(
            sample(&first, "ecfleet_server_backup_ok", host),
            Some(1.0),
            "{host}"
        );
        let at = sample(
            &first,
            "ecfleet_server_last_backup_success_timestamp_seconds",
            host,
        )
        .unwrap_or_else(|| panic!("no backup time for {host}"));
        let now = jiff::Timestamp::now().as_second() as f64;
        assert!((now - at).abs() < 600.0, "{host}: {at} vs {now}");
        last_good.push(at);
    }

    // An audit that reaches them, kept on the share.
    let out = fleet(&["audit", "--as-of", "2026-11-24", "--format", "json"]);
    let (reached, _) = json_of(&out);
    let reached_at = jiff::Timestamp::from_str(reached["generated_at"].as_str().unwrap())
        .unwrap()
        .as_millisecond() as f64
        / 1000.0;

    // The hosts gone: tonight failed, and the last good backup is still the one on the share.
    drop(lab);
    let out = fleet(&["backup", "--metrics", prom_arg, "--host-deadline", "5"]);
    assert_eq!(out.status.code(), Some(2));
    let second = parsed(&prom);
    for (host, at) in hosts.iter().zip(&last_good) {
        assert_eq!(
            sample(&second, "ecfleet_server_backup_ok", host),
            Some(0.0),
            "{host}"
        );
        assert_eq!(
            sample(
                &second,
                "ecfleet_server_last_backup_success_timestamp_seconds",
                host
            ),
            Some(*at),
            "{host}"
        );
    }
    let failed = second
        .iter()
        .find(|(n, l, _)| n == "ecfleet_backup_hosts" && l["state"] == "failed")
        .unwrap()
        .2;
    assert_eq!(failed, 3.0);

    // The audit cannot reach them either: each keeps the time the last audit did.
    let audit_prom = dir.path().join("audit.prom");
    let out = fleet(&[
        "audit",
        "--as-of",
        "2026-11-24",
        "--metrics",
        audit_prom.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let audited = parsed(&audit_prom);
    for host in hosts {
        assert_eq!(
            sample(&audited, "ecfleet_server_reachable", host),
            Some(0.0)
        );
        assert_eq!(
            sample(
                &audited,
                "ecfleet_server_last_audit_success_timestamp_seconds",
                host
            ),
            Some(reached_at),
            "{host}"
        );
    }
}
