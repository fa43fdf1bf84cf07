//! Two operators at once (issue 17 §8): two `ecfleet run` of one plan started together, and two
//! `--resume latest` of one detached run started together, 20 trials each, over a lab fleet
//! behind a real OpenSSH sshd with the real binary, agent and share. Every trial: each host the
//! plan upgrades is upgraded exactly once, with one hand-off (the ledgers' journals and the
//! host's own log agree) and one pre-upgrade backup. What stands in: the lab plays the Windows
//! host and the operator.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const TRIALS: usize = 20;

/// A playbook for tests: deadlines in seconds, a one-second watch.
const FAST: &str = "schema_version = 1\n[deadlines]\npreflight = 60\nbackup = 60\nstage = 60\nupgrade = 30\nverify = 20\n[watch]\npoll_seconds = 1\n[verify]\nrestart_adsync_once = true\n";

struct Bench {
    fleet: Fleet,
    inventory: PathBuf,
    msi: PathBuf,
    plan: PathBuf,
    playbook: PathBuf,
    /// The lab hosts as `lab init` made them, restored before each trial.
    pristine: PathBuf,
    in_place: Vec<(String, String)>, // (tenant, host)
}

fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

impl Bench {
    /// Three lab hosts (one up to date; a tenant's staging and active servers, upgraded in
    /// place), the operator `delay` lab seconds after the hand-off (the lab's clock runs 120
    /// times faster).
    fn new(delay: u32) -> Bench {
        let fleet = Fleet::new(3, 1);
        let inventory = fleet.write_inventory("");
        let dir = fleet.dir.path().to_path_buf();
        let (msi, _) = lab_msi(&dir, 1);
        let playbook = dir.join("fast.toml");
        std::fs::write(&playbook, FAST).unwrap();
        for (name, _) in &fleet.hosts {
            let path = fleet.host_dir(name).join("machine.toml");
            // The upgrade itself in under a real second: the race is what is tested.
            let text = std::fs::read_to_string(&path)
                .unwrap()
                .replacen(
                    "delay_seconds = 120",
                    &format!("delay_seconds = {delay}"),
                    1,
                )
                .replacen("installer_seconds = 60", "installer_seconds = 12", 1)
                .replacen("wizard_seconds = 120", "wizard_seconds = 24", 1)
                .replacen(
                    "config_migration_seconds = 180",
                    "config_migration_seconds = 24",
                    1,
                )
                .replacen("interval_minutes = 30", "interval_minutes = 1", 1);
            std::fs::write(&path, text).unwrap();
        }
        let plan = dir.join("tonight.json");
        let out = ecfleet()
            .args(["plan", "--as-of", "2026-11-24", "--agent-dir"])
            .arg(agent_dir())
            .arg("-i")
            .arg(&inventory)
            .arg("--msi")
            .arg(&msi)
            .arg("--out")
            .arg(&plan)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
        let in_place: Vec<(String, String)> = doc["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["action"] == "in-place")
            .map(|h| {
                (
                    h["tenant"].as_str().unwrap().to_string(),
                    h["host"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert!(in_place.len() >= 2, "{doc:#}");
        let pristine = dir.join("pristine-hosts");
        copy_tree(&dir.join("lab/hosts"), &pristine);
        Bench {
            fleet,
            inventory,
            msi,
            plan,
            playbook,
            pristine,
            in_place,
        }
    }

    fn share(&self) -> PathBuf {
        self.fleet.dir.path().join("share")
    }

    /// The lab hosts as they were, an empty share.
    fn reset(&self) {
        let hosts = self.fleet.dir.path().join("lab/hosts");
        std::fs::remove_dir_all(&hosts).unwrap();
        copy_tree(&self.pristine, &hosts);
        for entry in std::fs::read_dir(self.share()).unwrap() {
            std::fs::remove_dir_all(entry.unwrap().path()).unwrap();
        }
    }

    fn command(&self, resume: bool) -> Command {
        let mut c = ecfleet();
        c.args([
            "run",
            "--format",
            "json",
            "--as-of",
            "2026-11-24",
            "--agent-dir",
        ])
        .arg(agent_dir())
        .arg("-i")
        .arg(&self.inventory)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        if resume {
            // Only the inventory and the run: the run keeps its options.
            c.args(["--resume", "latest"]);
        } else {
            c.args(["--yes", "--ignore-windows", "--plan"])
                .arg(&self.plan)
                .arg("--msi")
                .arg(&self.msi)
                .arg("--playbook")
                .arg(&self.playbook);
        }
        c
    }

    fn ledgers(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.share().join("runs"))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    }

    /// Journal lines of every run on the share.
    fn journal(&self) -> Vec<serde_json::Value> {
        self.ledgers()
            .iter()
            .flat_map(|l| {
                std::fs::read_to_string(l.join("events.jsonl"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|line| serde_json::from_str(line).ok())
                    .collect::<Vec<serde_json::Value>>()
            })
            .collect()
    }

    /// What the trial must leave: each in-place host handed off once (by the journals and by
    /// the host's own log), one pre-upgrade backup, upgraded to the target.
    fn assert_once(&self, trial: &str) {
        let journal = self.journal();
        for (tenant, host) in &self.in_place {
            let handoffs = journal
                .iter()
                .filter(|e| e["host"] == host.as_str() && e["event"] == "handoff")
                .count();
            assert_eq!(handoffs, 1, "{trial}: {host} handed off {handoffs} times");
            let lab_log = std::fs::read_to_string(self.fleet.host_dir(host).join("lab-log.jsonl"))
                .unwrap_or_default();
            let told = lab_log
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|e| e["event"] == "handoff")
                .count();
            assert_eq!(told, 1, "{trial}: {host}'s own log has {told} hand-offs");
            let backups = std::fs::read_dir(
                self.share()
                    .join("tenants")
                    .join(tenant)
                    .join(host)
                    .join("backups"),
            )
            .map(|d| {
                d.filter(|e| {
                    let name = e
                        .as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .into_owned();
                    name.ends_with(".manifest.json") && name.contains("pre-upgrade")
                })
                .count()
            })
            .unwrap_or(0);
            assert_eq!(
                backups, 1,
                "{trial}: {host} has {backups} pre-upgrade backups"
            );
            let verified = journal
                .iter()
                .filter(|e| {
                    e["host"] == host.as_str() && e["phase"] == "verify" && e["outcome"] == "ok"
                })
                .count();
            assert_eq!(verified, 1, "{trial}: {host} verified {verified} times");
        }
    }
}

fn wait_all(children: Vec<Child>) -> Vec<(i32, String, String)> {
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
        .collect()
}

#[test]
fn two_runs_of_one_plan_started_together_upgrade_each_host_once() {
    let bench = Bench::new(12);
    for trial in 0..TRIALS {
        bench.reset();
        let children = vec![
            bench.command(false).spawn().unwrap(),
            bench.command(false).spawn().unwrap(),
        ];
        let results = wait_all(children);
        let name = format!("trial {trial}");
        bench.assert_once(&name);
        // Each host was driven by one of them; the other found it locked, naming the run.
        for (_, host) in &bench.in_place {
            let outcomes: Vec<(String, String)> = results
                .iter()
                .map(|(_, stdout, stderr)| {
                    let report: serde_json::Value = serde_json::from_str(stdout)
                        .unwrap_or_else(|e| panic!("{name}: {e}: {stderr}"));
                    let h = report["hosts"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|h| h["host"] == host.as_str())
                        .unwrap()
                        .clone();
                    (
                        h["outcome"].as_str().unwrap().to_string(),
                        h["message"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            let verified = outcomes.iter().filter(|(o, _)| o == "verified").count();
            assert_eq!(verified, 1, "{name}: {host}: {outcomes:?}");
            // The other run never touched it (locked), or its tenant's staging server was the
            // other run's: refused before phase 3 (no hand-off, no backup, counted above).
            assert!(
                outcomes.iter().any(|(o, m)| o == "locked"
                    && m.contains("another controller drives this host: run ")),
                "{name}: {host}: {outcomes:?}"
            );
        }
    }
}

#[test]
fn two_resumes_of_a_detached_run_started_together_carry_it_on_once() {
    // The operator starts 2 real seconds after the hand-off: time to detach while hosts wait.
    let bench = Bench::new(240);
    for trial in 0..TRIALS {
        bench.reset();
        let name = format!("trial {trial}");
        let run = bench.command(false).spawn().unwrap();
        // Detach (Ctrl-C twice) once the tenant's first host is with the operator.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !bench.journal().iter().any(|e| e["event"] == "handoff") {
            assert!(Instant::now() < deadline, "{name}: no hand-off");
            std::thread::sleep(Duration::from_millis(20));
        }
        if trial == 0 {
            // While it runs, its report says so: the controller and each host's phase.
            let out = ecfleet()
                .args(["report", "latest", "--format", "json", "-i"])
                .arg(&bench.inventory)
                .output()
                .unwrap();
            let (report, stderr) = json_of(&out);
            let live = report["in_progress"].as_str().unwrap_or_default();
            assert!(
                live.starts_with(&format!("in progress (pid {}", run.id())),
                "{stderr}\n{report:#}"
            );
            let outcomes: Vec<&str> = report["hosts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["outcome"].as_str().unwrap())
                .collect();
            assert!(outcomes.contains(&"in-progress"), "{report:#}");
            assert!(!outcomes.contains(&"interrupted"), "{report:#}");
        }
        detach(&run);
        let (code, _, stderr) = wait_all(vec![run]).remove(0);
        assert_eq!(code, 130, "{name}: {stderr}");
        assert!(
            stderr.contains("ecfleet run -i ") && stderr.contains(" --resume "),
            "{name}: the resume command is printed: {stderr}"
        );
        let children = vec![
            bench.command(true).spawn().unwrap(),
            bench.command(true).spawn().unwrap(),
        ];
        let results = wait_all(children);
        // One carried the run on; the other, if it overlapped, was told who does (exit 3).
        let carried = results.iter().filter(|(c, _, _)| *c == 0).count();
        assert!(carried >= 1, "{name}: {results:?}");
        for (code, _, stderr) in &results {
            assert!(
                *code == 0 || (*code == 3 && stderr.contains("driven by another controller")),
                "{name}: exit {code}: {stderr}"
            );
        }
        bench.assert_once(&name);
    }
}

/// A ledger changed behind the run's back is not believed (issue 17 §8): an edited `plan.json`
/// stops the resume; a host record that cannot be read leaves that host alone (its file kept);
/// a record's "backup ok" whose backup no longer verifies on the share is taken again before
/// anything else is done to the host.
#[test]
fn a_tampered_ledger_is_not_believed() {
    let bench = Bench::new(240);
    bench.reset();
    let mut run = bench.command(false).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !bench
        .journal()
        .iter()
        .any(|e| e["host"] == "t02-staging" && e["phase"] == "stage" && e["event"] == "start")
    {
        assert!(Instant::now() < deadline, "the stage never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    run.kill().unwrap();
    let _ = run.wait();
    let ledger = bench.ledgers().pop().unwrap();
    // The staging server's pre-upgrade dump, altered on the share.
    let backups = bench.share().join("tenants/tenant02/t02-staging/backups");
    let dump = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".server-configuration.tar"))
        .unwrap();
    let mut bytes = std::fs::read(&dump).unwrap();
    bytes.extend_from_slice(b"tampered");
    std::fs::write(&dump, bytes).unwrap();
    // An edited plan.json: refused, naming it.
    let plan = ledger.join("plan.json");
    let original = std::fs::read(&plan).unwrap();
    let mut edited = original.clone();
    edited.extend_from_slice(b"\n");
    std::fs::write(&plan, &edited).unwrap();
    let out = bench.command(true).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("plan.json changed since the run started"),
        "{stderr}"
    );
    std::fs::write(&plan, &original).unwrap();
    // A host record that cannot be read.
    let record = ledger.join("hosts/tenant02/t02-behind.json");
    std::fs::create_dir_all(record.parent().unwrap()).unwrap();
    std::fs::write(&record, "{ not json").unwrap();
    let out = bench.command(true).output().unwrap();
    let (report, stderr) = json_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}\n{report:#}");
    let host = |name: &str| {
        report["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == name)
            .unwrap()
            .clone()
    };
    let behind = host("t02-behind");
    assert_eq!(behind["outcome"], "failed", "{behind:#}");
    assert!(
        behind["message"]
            .as_str()
            .unwrap()
            .contains("its record in the run's ledger cannot be read"),
        "{behind:#}"
    );
    assert_eq!(std::fs::read_to_string(&record).unwrap(), "{ not json");
    // The staging server: its backup not believed, taken again, then upgraded.
    assert_eq!(host("t02-staging")["outcome"], "verified", "{report:#}");
    let journal = bench.journal();
    let not_believed = journal
        .iter()
        .find(|e| e["host"] == "t02-staging" && e["event"] == "not-believed")
        .unwrap_or_else(|| panic!("no not-believed event: {journal:#?}"));
    assert!(
        not_believed["detail"]
            .as_str()
            .unwrap()
            .contains("does not verify"),
        "{not_believed}"
    );
    let manifests = std::fs::read_dir(&backups)
        .unwrap()
        .filter(|e| {
            let n = e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .into_owned();
            n.ends_with(".manifest.json") && n.contains("pre-upgrade")
        })
        .count();
    assert_eq!(manifests, 2, "a second pre-upgrade backup");
}
