//! A real job engine runs the shards (issue 20 §1; docs/scale-out.md): Slurm from Debian's
//! packages (`slurm-wlm`, `munge`, installed with apt when missing, as CI installs them),
//! configured for this one machine in the test's own folder (its own munge key and socket, its
//! own ports, state and logs), runs `ecfleet audit --shard $SLURM_ARRAY_TASK_ID/4` as a job
//! array of 4 against one lab; `ecfleet merge audit` of the four snapshots gives the verdicts of
//! one unsharded audit.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{audit_verdicts, ecfleet, json_of};

/// The daemons of this test's cluster, stopped when it ends.
struct Cluster {
    daemons: Vec<Child>,
}

impl Drop for Cluster {
    /// Asked to stop (slurmctld then stops its slurmscriptd), then killed if still there.
    fn drop(&mut self) {
        for d in self.daemons.iter_mut().rev() {
            let _ = Command::new("kill").arg(d.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while d.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

fn slurm_installed() -> bool {
    [
        "/usr/sbin/slurmctld",
        "/usr/sbin/slurmd",
        "/usr/sbin/munged",
        "/usr/bin/sbatch",
    ]
    .iter()
    .all(|p| Path::new(p).exists())
}

fn ensure_slurm() {
    if !slurm_installed() {
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-qq", "slurm-wlm", "munge"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
    assert!(
        slurm_installed(),
        "Slurm is required: apt-get install -y slurm-wlm munge"
    );
}

/// munged, slurmctld and slurmd in the foreground, for this machine only; returns the cluster
/// and its `slurm.conf`.
fn start_cluster(dir: &Path) -> (Cluster, PathBuf) {
    let munge = dir.join("munge");
    std::fs::create_dir_all(&munge).unwrap();
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::fs::create_dir_all(dir.join("spool")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&munge, std::fs::Permissions::from_mode(0o700)).unwrap();
    let key: Vec<u8> = (0..1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ std::process::id() as u8)
        .collect();
    let key_path = munge.join("munge.key");
    std::fs::write(&key_path, key).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o400)).unwrap();
    let socket = munge.join("munge.sock");
    let mut daemons = Vec::new();
    daemons.push(
        Command::new("/usr/sbin/munged")
            .arg("--foreground")
            .arg("--force")
            .arg(format!("--key-file={}", key_path.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", munge.join("munged.pid").display()))
            .arg(format!("--log-file={}", munge.join("munged.log").display()))
            .arg(format!(
                "--seed-file={}",
                munge.join("munge.seed").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "munged did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let host = String::from_utf8(Command::new("hostname").arg("-s").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    let (ctld_port, d_port) = (common::free_port(), common::free_port());
    // The CPUs slurmd finds: a node configured with more is drained as invalid.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let d = dir.display();
    let conf = dir.join("slurm.conf");
    std::fs::write(
        &conf,
        format!(
            "ClusterName=ecfleet\nSlurmctldHost={host}(127.0.0.1)\nSlurmUser=root\nSlurmdUser=root\n\
             SlurmctldPort={ctld_port}\nSlurmdPort={d_port}\nAuthType=auth/munge\n\
             AuthInfo=socket={}\nCredType=cred/munge\nStateSaveLocation={d}/state\n\
             SlurmdSpoolDir={d}/spool\nSlurmctldPidFile={d}/slurmctld.pid\n\
             SlurmdPidFile={d}/slurmd.pid\nSlurmctldLogFile={d}/slurmctld.log\n\
             SlurmdLogFile={d}/slurmd.log\nProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n\
             JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\n\
             SchedulerType=sched/builtin\nSelectType=select/cons_tres\nSelectTypeParameters=CR_CPU\n\
             ReturnToService=2\nMpiDefault=none\n\
             NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN\n\
             PartitionName=ecfleet Nodes={host} Default=YES MaxTime=INFINITE State=UP\n",
            socket.display()
        ),
    )
    .unwrap();
    for daemon in ["/usr/sbin/slurmctld", "/usr/sbin/slurmd"] {
        daemons.push(
            Command::new(daemon)
                .arg("-D")
                .arg("-f")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    let cluster = Cluster { daemons };
    // The node is up when sinfo says it is idle.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = Command::new("sinfo")
            .args(["-h", "-o", "%T"])
            .env("SLURM_CONF", &conf)
            .output()
            .unwrap();
        let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if state.starts_with("idle") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Slurm node did not come up ({state}): {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.join("slurmd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    (cluster, conf)
}

#[test]
fn a_slurm_job_array_of_four_shards_merges_into_the_audit_of_the_whole_fleet() {
    ensure_slurm();
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let _lab = common::winrm::lab_up(&lab_dir, 12, 0, &[]);
    let inventory = lab_dir.join("inventory.toml");
    let (_cluster, conf) = start_cluster(&dir.path().join("slurm"));

    // The job: one shard per array task, its stderr (the snapshot line) kept per task.
    let job = dir.path().join("audit.sh");
    std::fs::write(
        &job,
        format!(
            "#!/bin/sh\n{} audit --as-of 2026-11-24 --format json --agent-dir {} -i {} --shard \"$SLURM_ARRAY_TASK_ID/4\" > /dev/null\ncode=$?\n[ $code -le 2 ]\n",
            env!("CARGO_BIN_EXE_ecfleet"),
            common::agent_dir().display(),
            inventory.display()
        ),
    )
    .unwrap();
    let out = Command::new("timeout")
        .arg("180")
        .arg("sbatch")
        .args(["--wait", "--array=1-4", "--job-name=ecfleet-audit"])
        .arg(format!("--output={}/task-%a.out", dir.path().display()))
        .arg(format!("--error={}/task-%a.err", dir.path().display()))
        .arg(&job)
        .current_dir(dir.path())
        .env("SLURM_CONF", &conf)
        .output()
        .unwrap();
    let tasks: Vec<String> = (1..=4)
        .map(|i| {
            std::fs::read_to_string(dir.path().join(format!("task-{i}.err"))).unwrap_or_default()
        })
        .collect();
    assert!(
        out.status.success(),
        "sbatch: {}\n{tasks:#?}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = tasks.iter().map(|err| common::snapshot_name(err)).collect();

    let out = ecfleet()
        .args(["merge", "audit", "--format", "json", "-i"])
        .arg(&inventory)
        .args(&names)
        .output()
        .unwrap();
    let (merged, stderr) = json_of(&out);
    let merged_code = out.status.code();
    let out = ecfleet()
        .args([
            "audit",
            "--as-of",
            "2026-11-24",
            "--format",
            "json",
            "--no-share",
        ])
        .arg("--agent-dir")
        .arg(common::agent_dir())
        .arg("-i")
        .arg(&inventory)
        .output()
        .unwrap();
    let (whole, _) = json_of(&out);
    assert_eq!(merged_code, out.status.code(), "{stderr}");
    assert_eq!(audit_verdicts(&merged), audit_verdicts(&whole), "{stderr}");
    assert_eq!(merged["summary"], whole["summary"]);
}
