//! A private network for jump-host tests: a network namespace (`ip netns`, iproute2) joined to
//! this machine by a veth pair. Only its veth address is reachable from outside; what listens
//! on its own loopback (lab hosts, an inner sshd) can be reached only from inside, through a
//! bastion listening on the veth address. Needs root (the tests run as root, as CI does).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct Netns {
    pub name: String,
    /// This machine's end of the veth pair.
    pub outside: String,
    /// The namespace's end: the only address of it this machine can reach.
    pub inside: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| {
        panic!("ip {args:?}: {e} (install iproute2: apt-get install -y iproute2)")
    });
    assert!(
        out.status.success(),
        "ip {args:?}: {} (network namespaces need root and CAP_NET_ADMIN)",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    pub fn new() -> Netns {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        // The whole pid: test processes run side by side (nextest), each with namespaces.
        let name = format!("ecf{pid}n{n}");
        // One /30 per namespace, numbered by process and namespace within 10.100.0.0 to
        // 10.227.255.255: two processes meet only if their pids differ by a multiple of 2^18
        // (a pid modulo 150 met another process's within one CI run).
        assert!(n < 8, "at most 8 namespaces per test process");
        let index = (u64::from(pid) * 8 + u64::from(n)) % (1 << 21);
        let base = index * 4;
        let (b, c, d) = (100 + (base >> 16), (base >> 8) & 0xff, base & 0xff);
        let outside = format!("10.{b}.{c}.{}", d + 1);
        let inside = format!("10.{b}.{c}.{}", d + 2);
        let (vo, vi) = (format!("{name}o"), format!("{name}i"));
        ip(&["netns", "add", &name]);
        let ns = Netns {
            name,
            outside,
            inside,
        };
        ip(&["link", "add", &vo, "type", "veth", "peer", "name", &vi]);
        ip(&["link", "set", &vi, "netns", &ns.name]);
        ip(&["addr", "add", &format!("{}/30", ns.outside), "dev", &vo]);
        ip(&["link", "set", &vo, "up"]);
        ns.ip(&["addr", "add", &format!("{}/30", ns.inside), "dev", &vi]);
        ns.ip(&["link", "set", &vi, "up"]);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.name, "ip"];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// `program` run inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Waits until something inside accepts TCP connections on `address:port`.
    pub fn wait_for_port(&self, address: &str, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ok = self
                .command("bash")
                .arg("-c")
                .arg(format!("exec 3<>/dev/tcp/{address}/{port}"))
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success();
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nothing listens on {address}:{port} in {}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// An OpenSSH sshd inside, listening on `address:port`, accepting the key in
    /// `authorized_keys`; `extra` is added to its configuration. Its log (LogLevel INFO, one
    /// `Accepted publickey` line per connection) goes to `DIR/NAME.log`.
    pub fn sshd(
        &self,
        dir: &Path,
        name: &str,
        address: &str,
        port: u16,
        authorized_keys: &Path,
        extra: &str,
    ) -> InnerSshd {
        let host_key = dir.join(format!("{name}_host_ed25519"));
        super::keygen(&host_key);
        let config = dir.join(format!("{name}.conf"));
        std::fs::write(
            &config,
            format!(
                "ListenAddress {address}:{port}\nHostKey {hk}\nPidFile {dir}/{name}.pid\nAuthorizedKeysFile {ak}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nUseDNS no\nMaxStartups 200:30:400\nLogLevel INFO\n{extra}",
                hk = host_key.display(),
                dir = dir.display(),
                ak = authorized_keys.display(),
            ),
        )
        .unwrap();
        let log = dir.join(format!("{name}.log"));
        let child = self
            .command(super::sshd_binary())
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start sshd in the namespace");
        self.wait_for_port(address, port);
        let public = std::fs::read_to_string(host_key.with_extension("pub")).unwrap();
        let public = public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        InnerSshd {
            child,
            log,
            known_hosts_line: if port == 22 {
                format!("{address} {public}\n")
            } else {
                format!("[{address}]:{port} {public}\n")
            },
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Whatever still runs inside goes first; the veth pair goes with the namespace.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// An sshd inside a namespace.
pub struct InnerSshd {
    child: Child,
    pub log: PathBuf,
    pub known_hosts_line: String,
}

impl InnerSshd {
    /// Connections this sshd accepted (authenticated), from its log.
    pub fn accepted(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("Accepted publickey"))
            .count()
    }
}

impl Drop for InnerSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
