//! Test harness: private OpenSSH sshd instances on loopback (own configs, high ports, own host
//! keys), client keys, lab hosts and inventories, and the `ecfleet` binary.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod kdc;
pub mod netns;
pub mod winrm;

pub fn ecfleet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ecfleet"))
}

/// The agent's build directory; builds the agent once per test process.
pub fn agent_dir() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-q", "-p", "ecfleet-agent"])
                .status()
                .expect("run cargo build");
            assert!(status.success(), "building the agent failed");
            PathBuf::from(env!("CARGO_BIN_EXE_ecfleet"))
                .parent()
                .unwrap()
                .to_path_buf()
        })
        .clone()
}

pub fn sshd_binary() -> PathBuf {
    let path = PathBuf::from("/usr/sbin/sshd");
    if !path.exists() {
        // Install what the test needs, as CI does (.ci/run); fails loudly if that is impossible.
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-qq", "openssh-server"])
            .status();
    }
    assert!(
        path.exists(),
        "OpenSSH sshd is required: apt-get install -y openssh-server"
    );
    let _ = std::fs::create_dir_all("/run/sshd");
    path
}

pub fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", ""])
        .arg("-f")
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn whoami() -> String {
    String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string()
}

/// One private sshd.
pub struct Sshd {
    pub port: u16,
    pub host_pub: String,
    child: Child,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    pub fn start(dir: &Path, name: &str, authorized_keys: &Path) -> Sshd {
        let auth = format!(
            "AuthorizedKeysFile {}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n",
            authorized_keys.display()
        );
        Self::start_with(dir, name, &auth, true, None)
    }

    /// An sshd that accepts only `password` for the current user (root). The password lives in
    /// a copy of /etc/shadow that only this sshd sees: it runs in its own mount namespace with
    /// the copy bind-mounted over /etc/shadow, so the system's accounts are never touched.
    pub fn start_with_password(dir: &Path, name: &str, password: &str) -> Sshd {
        let hash = Command::new("openssl")
            .args(["passwd", "-6", password])
            .output()
            .expect("openssl passwd");
        assert!(hash.status.success());
        let hash = String::from_utf8(hash.stdout).unwrap().trim().to_string();
        let user = whoami();
        let shadow: String = std::fs::read_to_string("/etc/shadow")
            .expect("read /etc/shadow (the tests run as root)")
            .lines()
            .map(|l| {
                let mut f: Vec<&str> = l.split(':').collect();
                if f.first() == Some(&user.as_str()) && f.len() > 1 {
                    f[1] = &hash;
                }
                f.join(":") + "\n"
            })
            .collect();
        let shadow_path = dir.join(format!("{name}.shadow"));
        std::fs::write(&shadow_path, shadow).unwrap();
        let auth = "PermitRootLogin yes\nPasswordAuthentication yes\nPubkeyAuthentication no\n";
        Self::start_with(dir, name, auth, true, Some(&shadow_path))
    }

    /// An sshd with the given authentication lines, with or without the SFTP subsystem.
    pub fn start_with(
        dir: &Path,
        name: &str,
        auth: &str,
        sftp: bool,
        shadow: Option<&Path>,
    ) -> Sshd {
        let sshd = sshd_binary();
        let host_key = dir.join(format!("{name}_host_ed25519"));
        keygen(&host_key);
        let port = free_port();
        let config = dir.join(format!("{name}.conf"));
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1:{port}\nHostKey {hk}\nPidFile {dir}/{name}.pid\n{auth}KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nUseDNS no\nMaxStartups 200:30:400\nMaxSessions 50\nLogLevel ERROR\n{sftp}",
                hk = host_key.display(),
                dir = dir.display(),
                sftp = if sftp { "Subsystem sftp /usr/lib/openssh/sftp-server\n" } else { "" },
            ),
        )
        .unwrap();
        let mut command = match shadow {
            None => Command::new(sshd),
            Some(shadow) => {
                // unshare execs sh, which execs sshd: the child is sshd itself.
                let mut c = Command::new("unshare");
                c.args(["-m", "sh", "-c"]).arg(format!(
                    "mount --bind '{}' /etc/shadow && exec '{}' \"$@\"",
                    shadow.display(),
                    sshd.display()
                ));
                c.arg("sshd");
                c
            }
        };
        let child = command
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sshd");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd on port {port} did not come up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let host_pub = std::fs::read_to_string(host_key.with_extension("pub")).unwrap();
        let host_pub = host_pub
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        Sshd {
            port,
            host_pub,
            child,
        }
    }

    /// The listening sshd's process id (each connection is a child of it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}\n", self.port, self.host_pub)
    }
}

/// A lab fleet behind several sshd instances, with a client key and an inventory.
pub struct Fleet {
    pub dir: tempfile::TempDir,
    pub sshds: Vec<Sshd>,
    pub hosts: Vec<(String, String)>, // (name, tenant)
    pub key: PathBuf,
    pub known_hosts: PathBuf,
}

impl Fleet {
    /// `lab init --hosts N`: the audit scenarios, then filler.
    pub fn new(hosts: usize, instances: usize) -> Fleet {
        Fleet::made(hosts, instances, &[])
    }

    /// `lab init --hosts N --faults`: also the scenarios that fail during a run.
    pub fn with_faults(hosts: usize, instances: usize) -> Fleet {
        Fleet::made(hosts, instances, &["--faults"])
    }

    fn made(hosts: usize, instances: usize, extra: &[&str]) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id_ed25519");
        keygen(&key);
        let authorized = dir.path().join("authorized_keys");
        std::fs::copy(key.with_extension("pub"), &authorized).unwrap();
        let sshds: Vec<Sshd> = (0..instances)
            .map(|i| Sshd::start(dir.path(), &format!("sshd{i}"), &authorized))
            .collect();
        let known_hosts = dir.path().join("known_hosts");
        std::fs::write(
            &known_hosts,
            sshds
                .iter()
                .map(|s| s.known_hosts_line())
                .collect::<String>(),
        )
        .unwrap();
        let out = ecfleet()
            .args([
                "lab",
                "init",
                "--hosts",
                &hosts.to_string(),
                "--as-of",
                "2026-11-24",
            ])
            .args(extra)
            .arg("--dir")
            .arg(dir.path().join("lab"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "lab init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut names: Vec<String> = std::fs::read_dir(dir.path().join("lab/hosts"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let hosts = names
            .into_iter()
            .map(|n| (n.clone(), format!("tenant{}", &n[1..n.find('-').unwrap()])))
            .collect();
        Fleet {
            dir,
            sshds,
            hosts,
            key,
            known_hosts,
        }
    }

    pub fn host_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join("lab/hosts").join(name)
    }

    /// An inventory for every host; `extra` is appended (more tenants or hosts).
    pub fn write_inventory(&self, extra: &str) -> PathBuf {
        // The share exists, as a mounted one would: ecfleet never creates a share's root.
        std::fs::create_dir_all(self.dir.path().join("share")).unwrap();
        let mut s = format!(
            "[defaults]\nuser = \"{}\"\nidentity_file = \"{}\"\nknown_hosts = \"{}\"\nos = \"linux\"\nconnect_timeout = 10\n\n[share]\npath = \"{}\"\n\n",
            whoami(),
            self.key.display(),
            self.known_hosts.display(),
            self.dir.path().join("share").display()
        );
        let mut tenants: Vec<&str> = self.hosts.iter().map(|(_, t)| t.as_str()).collect();
        tenants.dedup();
        for (ti, tenant) in tenants.iter().enumerate() {
            s.push_str(&format!("[[tenant]]\nname = \"{tenant}\"\n\n"));
            for (hi, (name, _)) in self
                .hosts
                .iter()
                .enumerate()
                .filter(|(_, (_, t))| t == tenant)
            {
                let role = if name.contains("staging") {
                    "staging"
                } else {
                    "active"
                };
                let sshd = &self.sshds[(ti + hi) % self.sshds.len()];
                s.push_str(&format!("[[tenant.host]]\nname = \"{name}\"\naddress = \"127.0.0.1\"\nport = {}\nrole = \"{role}\"\nlab_root = \"{}\"\n\n", sshd.port, self.host_dir(name).display()));
            }
        }
        s.push_str(extra);
        let path = self.dir.path().join("inventory.toml");
        std::fs::write(&path, s).unwrap();
        path
    }

    pub fn audit(&self, inventory: &Path, extra_args: &[&str]) -> (i32, serde_json::Value, String) {
        let out: Output = audit_command(inventory)
            .args(["--format", "json"])
            .args(extra_args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "audit JSON: {e}\nstdout: {}\nstderr: {stderr}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        (out.status.code().unwrap_or(-1), json, stderr)
    }
}

/// `ecfleet audit --as-of 2026-11-24 --agent-dir <the test build> -i <inventory>`, ready for more
/// arguments.
pub fn audit_command(inventory: &Path) -> Command {
    let mut c = ecfleet();
    c.args(["audit", "--as-of", "2026-11-24", "--agent-dir"])
        .arg(agent_dir())
        .arg("-i")
        .arg(inventory);
    c
}

pub fn host<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == name)
        .unwrap_or_else(|| panic!("{name} not in report"))
}

pub fn codes(h: &serde_json::Value) -> Vec<String> {
    h["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

/// `ecfleet lab msi --version 2.6.92.0 --size-mb MIB` into `dir/AzureADConnect.msi`: its path and
/// bytes.
#[allow(dead_code)] // not every test binary stages an installer
pub fn lab_msi(dir: &Path, mib: u64) -> (PathBuf, Vec<u8>) {
    let path = dir.join("AzureADConnect.msi");
    let out = ecfleet()
        .args([
            "lab",
            "msi",
            "--version",
            "2.6.92.0",
            "--size-mb",
            &mib.to_string(),
            "--out",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = std::fs::read(&path).unwrap();
    (path, data)
}

/// `ecfleet lab up --hosts N [extra…]` in `dir`, once it says it is serving.
pub fn lab_up(dir: &Path, hosts: usize, extra: &[&str]) -> std::process::Child {
    lab_up_by(ecfleet(), dir, hosts, extra)
}

/// [`lab_up`] run by `ecfleet` as given (inside a network namespace, say).
pub fn lab_up_by(
    mut ecfleet: Command,
    dir: &Path,
    hosts: usize,
    extra: &[&str],
) -> std::process::Child {
    let mut lab = ecfleet
        .args(["lab", "up", "--hosts", &hosts.to_string()])
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = lab.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = lines.next().expect("lab up exited").unwrap();
        if line.starts_with(&format!("serving {hosts} lab hosts")) {
            break;
        }
        assert!(Instant::now() < deadline);
    }
    lab
}

/// A command's stdout as JSON, and its stderr; a stdout that is not JSON fails the test with the
/// stderr that explains it.
pub fn json_of(out: &Output) -> (serde_json::Value, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    (json, stderr)
}

/// What `ecfleet run` makes of each lab scenario (docs/lab.md, docs/run.md). `disk-fills` is a
/// fault only the lab server plays: behind a real sshd it stages normally.
pub fn expected_outcome(scenario: &str, action: &str, lab_server: bool) -> &'static str {
    if scenario == "disk-fills" && lab_server {
        return "failed";
    }
    match (scenario, action) {
        (
            "backup-fails"
            | "installer-fails"
            | "adsync-wont-start"
            | "rules-conflict"
            | "installer-foreign-signer",
            _,
        ) => "failed",
        ("full-sync-after-upgrade", _) => "sync-pending",
        ("no-importable-backup", _) => "refused",
        ("versions-lag-sticky", _) => "version-mismatch",
        ("mfa-hangs", _) => "operator-timeout",
        (_, "two-hop") => "refused",
        (_, "in-place") => "verified",
        _ => "untouched",
    }
}

/// Ctrl-C twice, as an operator detaches a run: SIGINT, a moment, SIGINT again.
pub fn detach(child: &std::process::Child) {
    let press = || {
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    };
    assert!(press());
    std::thread::sleep(Duration::from_millis(250));
    assert!(press());
    // Two presses that reach a loaded machine's controller together are one signal to it (the
    // kernel keeps one pending SIGINT): a person whose run still goes presses again.
    let alive = || {
        Command::new("kill")
            .args(["-0", &child.id().to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    std::thread::sleep(Duration::from_millis(1500));
    if alive() {
        press();
    }
}

/// A lab upgrade night as `fleet` runs ecfleet (its inventory, agent dir and environment): a
/// plan for a 1 MiB lab installer of 2.6.92.0 as of 2026-11-24, then `run --yes
/// --ignore-windows --format json` with the lab's run playbook (fast clock) and `extra`.
/// Returns the run's output.
pub fn plan_and_run(
    dir: &Path,
    lab_dir: &Path,
    fleet: &dyn Fn(&[&str]) -> Output,
    extra: &[&str],
) -> Output {
    let (msi, _) = lab_msi(dir, 1);
    let plan = dir.join("plan.json");
    let out = fleet(&[
        "plan",
        "--as-of",
        "2026-11-24",
        "--msi",
        msi.to_str().unwrap(),
        "--out",
        plan.to_str().unwrap(),
    ]);
    assert!(
        out.status.code().is_some_and(|c| c <= 2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let playbook = lab_dir.join("run-playbook.toml");
    let mut args = vec![
        "run",
        "--yes",
        "--ignore-windows",
        "--format",
        "json",
        "--plan",
        plan.to_str().unwrap(),
        "--msi",
        msi.to_str().unwrap(),
        "--playbook",
        playbook.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    fleet(&args)
}

/// An audit's verdict per host (its name; reachable, version, support status, finding codes
/// sorted): what a merged or sharded audit must give as one whole audit does.
pub fn audit_verdicts(audit: &serde_json::Value) -> Vec<(String, String)> {
    audit["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let mut codes: Vec<&str> = h["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["code"].as_str().unwrap())
                .collect();
            codes.sort();
            (
                h["host"].as_str().unwrap().to_string(),
                format!(
                    "{} {} {} {codes:?}",
                    h["reachable"], h["version"]["product"], h["support"]["status"]
                ),
            )
        })
        .collect()
}

/// Every file under `dir`, at any depth (none when `dir` cannot be read).
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The snapshot's folder name from an audit's `snapshot: …/audits/<name>/audit.json` line in
/// its stderr.
pub fn snapshot_name(stderr: &str) -> String {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("snapshot: "))
        .unwrap_or_else(|| panic!("no snapshot line: {stderr}"));
    Path::new(line)
        .parent()
        .and_then(|d| d.file_name())
        .unwrap()
        .to_string_lossy()
        .into_owned()
}
