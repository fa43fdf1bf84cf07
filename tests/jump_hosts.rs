//! Jump hosts with real parts (docs/jump-hosts.md): lab hosts (SSH and WinRM) serve inside a
//! network namespace on its own loopback, which this machine cannot reach; real OpenSSH sshd
//! bastions inside it are the only way in. Also: a bastion with a changed host key, one that
//! hangs, one that forbids forwarding.

mod common;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use common::netns::{InnerSshd, Netns};
use common::{ecfleet, json_of};

/// A lab of `hosts` (the first `winrm` over WinRM) served inside `ns`.
struct HiddenLab {
    dir: tempfile::TempDir,
    _lab: Killed,
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl HiddenLab {
    fn up(ns: &Netns, hosts: usize, winrm: usize) -> HiddenLab {
        let dir = tempfile::tempdir().unwrap();
        let lab = common::lab_up_by(
            ns.command(env!("CARGO_BIN_EXE_ecfleet")),
            &dir.path().join("lab"),
            hosts,
            &["--winrm", &winrm.to_string()],
        );
        HiddenLab {
            dir,
            _lab: Killed(lab),
        }
    }

    /// [`HiddenLab::up`] with a real sshd bastion on the namespace's veth address (port 22),
    /// trusted in the lab's known_hosts: the only way in.
    fn behind_bastion(ns: &Netns, hosts: usize, winrm: usize) -> (HiddenLab, InnerSshd) {
        let lab = HiddenLab::up(ns, hosts, winrm);
        let bastion = ns.sshd(
            lab.dir.path(),
            "bastion",
            &ns.inside,
            22,
            &lab.client_public_key(),
            // Remote forwards on the address the hosts reach (host pull through the bastion).
            "GatewayPorts clientspecified\n",
        );
        lab.trust(&bastion.known_hosts_line);
        (lab, bastion)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn client_public_key(&self) -> PathBuf {
        self.path("lab/keys/id_ed25519.pub")
    }

    fn trust(&self, known_hosts_line: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path("lab/keys/known_hosts"))
            .unwrap();
        f.write_all(known_hosts_line.as_bytes()).unwrap();
    }

    /// The lab's inventory with `jump = <chain>` on every tenant, written to `name`.
    fn inventory_through(&self, chain: &str, name: &str) -> PathBuf {
        let text = std::fs::read_to_string(self.path("lab/inventory.toml")).unwrap();
        let path = self.path(name);
        std::fs::write(&path, with_jump(&text, chain)).unwrap();
        path
    }
}

/// `jump = <chain>` added to every `[[tenant]]` of an inventory text.
fn with_jump(inventory: &str, chain: &str) -> String {
    let mut parts = inventory.split("[[tenant]]\n");
    let mut out = parts.next().unwrap().to_string();
    for part in parts {
        let (name_line, rest) = part.split_once('\n').unwrap();
        out.push_str(&format!("[[tenant]]\n{name_line}\njump = {chain}\n{rest}"));
    }
    out
}

/// `stage` of `msi` through `inventory` (exit 0): how it reached each of the two WinRM hosts.
fn staged_transfers(inventory: &Path, msi: &Path) -> Vec<String> {
    let out = ecfleet()
        .args(["stage", "--format", "json", "-i"])
        .arg(inventory)
        .arg("--msi")
        .arg(msi)
        .output()
        .unwrap();
    let (staged, stderr) = json_of(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let transfers: Vec<String> = staged["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["staged"]["transfer"].as_str().map(str::to_string))
        .collect();
    assert_eq!(transfers.len(), 2, "{staged}");
    transfers
}

fn audit(inventory: &Path) -> (i32, serde_json::Value, String) {
    let out = ecfleet()
        .args(["audit", "--format", "json", "-i"])
        .arg(inventory)
        .output()
        .unwrap();
    let (json, stderr) = json_of(&out);
    (out.status.code().unwrap(), json, stderr)
}

/// Per host: name, reachable, product version and finding codes, sorted by name.
fn results(report: &serde_json::Value) -> Vec<(String, bool, String, Vec<String>)> {
    let mut rows: Vec<_> = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap().to_string(),
                h["reachable"].as_bool().unwrap(),
                h["version"]["product"].as_str().unwrap_or("-").to_string(),
                common::codes(h),
            )
        })
        .collect();
    rows.sort();
    rows
}

fn errors(report: &serde_json::Value) -> Vec<(String, String, String)> {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap().to_string(),
                h["error_kind"].as_str().unwrap_or("").to_string(),
                h["error"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn hosts_behind_a_bastion_are_audited_staged_and_backed_up_through_it_on_one_connection() {
    let ns = Netns::new();
    let (lab, bastion) = HiddenLab::behind_bastion(&ns, 6, 2);

    // From here the hosts cannot be reached directly: the path really is the bastion.
    let (_, direct, _) = audit(&lab.path("lab/inventory.toml"));
    for (host, kind, error) in errors(&direct) {
        assert_eq!(kind, "unreachable", "{host}: {error}");
    }

    // What an audit run inside the hosts' own network sees, to compare with.
    let inside = ns
        .command(env!("CARGO_BIN_EXE_ecfleet"))
        .args(["audit", "--format", "json", "-i"])
        .arg(lab.path("lab/inventory.toml"))
        .output()
        .unwrap();
    let (baseline, _) = json_of(&inside);
    assert!(results(&baseline).iter().all(|r| r.1), "{baseline}");

    let through = lab.inventory_through(&format!("[\"root@{}\"]", ns.inside), "jump.toml");
    let (code, report, stderr) = audit(&through);
    assert_eq!(results(&report), results(&baseline), "{stderr}");
    assert_eq!(Some(code), inside.status.code());
    assert_eq!(
        bastion.accepted(),
        1,
        "six hosts (four SSH, two WinRM) share one connection to the bastion"
    );

    // Stage and back up through it: the WinRM hosts cannot pull from this controller, and say so.
    let (msi, _) = common::lab_msi(lab.dir.path(), 1);
    let transfers = staged_transfers(&through, &msi);
    let expected = format!(
        "WinRM stdin (reached through jump host root@{}:22: the host cannot reach this controller to pull; set pull_address on the jump host to let it, docs/jump-hosts.md)",
        ns.inside
    );
    assert!(transfers.iter().all(|t| *t == expected), "{transfers:?}");

    // With the bastion's address on the hosts' side, they pull through a port it forwards
    // back to this controller (another installer, so that it moves again).
    let pulling = lab.inventory_through(
        &format!(
            "[{{ address = \"{0}\", user = \"root\", pull_address = \"{0}\" }}]",
            ns.inside
        ),
        "pull.toml",
    );
    let other = lab.path("other");
    std::fs::create_dir_all(&other).unwrap();
    let (msi, _) = common::lab_msi(&other, 2);
    let transfers = staged_transfers(&pulling, &msi);
    let expected = format!(
        "host pull (HTTPS from the controller) through jump host root@{}:22",
        ns.inside
    );
    assert_eq!(transfers, vec![expected; 2]);

    // A bastion that allows tunnels to the hosts but no forward back: stdin, and why.
    let strict = ns.sshd(
        lab.dir.path(),
        "strict",
        &ns.inside,
        2200,
        &lab.client_public_key(),
        "AllowTcpForwarding local\n",
    );
    lab.trust(&strict.known_hosts_line);
    let refusing = lab.inventory_through(
        &format!(
            "[{{ address = \"{0}\", port = 2200, user = \"root\", pull_address = \"{0}\" }}]",
            ns.inside
        ),
        "refusing.toml",
    );
    let third = lab.path("third");
    std::fs::create_dir_all(&third).unwrap();
    let (msi, _) = common::lab_msi(&third, 3);
    for t in staged_transfers(&refusing, &msi) {
        assert!(
            t.starts_with("WinRM stdin (host pull failed: ")
                && t.contains("refused to listen")
                && t.contains("GatewayPorts clientspecified"),
            "{t}"
        );
    }
    let out = ecfleet()
        .args(["backup", "-i"])
        .arg(&through)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("6 hosts: 6 backed up and verified"), "{said}");
}

#[test]
fn a_two_hop_chain_reaches_hosts_that_only_the_inner_hop_can_reach() {
    let ns = Netns::new();
    let lab = HiddenLab::up(&ns, 3, 1);
    let key = lab.client_public_key();
    let outer = ns.sshd(lab.dir.path(), "outer", &ns.inside, 22, &key, "");
    // Reachable only from inside the namespace.
    let inner = ns.sshd(lab.dir.path(), "inner", "127.0.0.1", 2222, &key, "");
    lab.trust(&outer.known_hosts_line);
    lab.trust(&inner.known_hosts_line);

    let chain = format!("[\"root@{}\", \"root@127.0.0.1:2222\"]", ns.inside);
    let (code, report, stderr) = audit(&lab.inventory_through(&chain, "two.toml"));
    assert!(
        results(&report).iter().all(|r| r.1),
        "every host through both hops: {stderr}\n{report}"
    );
    assert_ne!(code, 4, "{stderr}");
    assert_eq!((outer.accepted(), inner.accepted()), (1, 1));

    // The inner hop alone cannot be reached from here: its hosts fail with the hop named.
    let (_, report, _) = audit(&lab.inventory_through("[\"root@127.0.0.1:2222\"]", "inner.toml"));
    for (host, kind, error) in errors(&report) {
        assert_eq!(kind, "unreachable", "{host}: {error}");
        assert!(
            error.contains("jump host root@127.0.0.1:2222: cannot connect to 127.0.0.1:2222"),
            "{host}: {error}"
        );
    }
}

/// A lab on loopback behind a bastion on loopback: the cases below are about the bastion.
fn loopback_lab(hosts: usize) -> (tempfile::TempDir, Killed) {
    let dir = tempfile::tempdir().unwrap();
    let lab = common::lab_up(&dir.path().join("lab"), hosts, &["--winrm", "1"]);
    (dir, Killed(lab))
}

/// `line` added to the loopback lab's known_hosts (in `dir`).
fn trust_in_lab(dir: &Path, line: &str) {
    let known = dir.join("lab/keys/known_hosts");
    let mut text = std::fs::read_to_string(&known).unwrap();
    text.push_str(line);
    std::fs::write(&known, text).unwrap();
}

fn lab_inventory_through(dir: &Path, chain: &str) -> PathBuf {
    let text = std::fs::read_to_string(dir.join("lab/inventory.toml")).unwrap();
    let path = dir.join("jump.toml");
    std::fs::write(&path, with_jump(&text, chain)).unwrap();
    path
}

#[test]
fn a_bastion_whose_host_key_changed_is_refused_for_every_host_behind_it() {
    let (dir, _lab) = loopback_lab(3);
    let key = dir.path().join("lab/keys/id_ed25519.pub");
    let bastion = common::Sshd::start(dir.path(), "bastion", &key);
    // known_hosts records another key for the bastion's address.
    let other = dir.path().join("other_host_key");
    common::keygen(&other);
    let other = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let line = format!(
        "[127.0.0.1]:{} {}\n",
        bastion.port,
        other
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    );
    trust_in_lab(dir.path(), &line);

    let inventory = lab_inventory_through(
        dir.path(),
        &format!("[\"{}@127.0.0.1:{}\"]", common::whoami(), bastion.port),
    );
    let (code, report, _) = audit(&inventory);
    assert_eq!(code, 2, "unreachable hosts: the audit is incomplete");
    for (host, kind, error) in errors(&report) {
        assert_eq!(kind, "host-key", "{host}: {error}");
        assert!(
            error.contains(&format!(
                "HOST KEY CHANGED for jump host {}@127.0.0.1:{}",
                common::whoami(),
                bastion.port
            )),
            "{host}: {error}"
        );
    }
}

#[test]
fn a_bastion_that_hangs_fails_its_hosts_at_its_deadline_not_one_after_another() {
    let (dir, _lab) = loopback_lab(4);
    // Accepts connections and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let chain = format!(
        "[{{ address = \"127.0.0.1\", port = {port}, user = \"ops\", connect_timeout = 2 }}]"
    );
    let inventory = lab_inventory_through(dir.path(), &chain);
    let started = Instant::now();
    let (code, report, _) = audit(&inventory);
    let took = started.elapsed();
    assert_eq!(code, 2);
    for (host, kind, error) in errors(&report) {
        assert_eq!(kind, "timeout", "{host}: {error}");
        assert!(
            error.contains(&format!("jump host ops@127.0.0.1:{port} did not complete the SSH connection within its deadline (2 s)")),
            "{host}: {error}"
        );
    }
    assert!(
        took < Duration::from_secs(8),
        "four hosts behind one hung bastion took {took:?}"
    );
    drop(silent);
}

#[test]
fn a_bastion_that_forbids_forwarding_says_so() {
    let (dir, _lab) = loopback_lab(2);
    let key = dir.path().join("lab/keys/id_ed25519.pub");
    let auth = format!(
        "AuthorizedKeysFile {}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nAllowTcpForwarding no\n",
        key.display()
    );
    let bastion = common::Sshd::start_with(dir.path(), "bastion", &auth, false, None);
    trust_in_lab(dir.path(), &bastion.known_hosts_line());
    let inventory = lab_inventory_through(
        dir.path(),
        &format!("[\"{}@127.0.0.1:{}\"]", common::whoami(), bastion.port),
    );
    let (_, report, _) = audit(&inventory);
    for (host, kind, error) in errors(&report) {
        assert_eq!(kind, "refused", "{host}: {error}");
        assert!(
            error.contains("refused to forward") && error.contains("AllowTcpForwarding"),
            "{host}: {error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_bastion_connection_is_opened_again_for_the_next_host() {
    let (dir, _lab) = loopback_lab(2);
    let key = dir.path().join("lab/keys/id_ed25519.pub");
    let bastion = common::Sshd::start(dir.path(), "bastion", &key);
    trust_in_lab(dir.path(), &bastion.known_hosts_line());
    let inventory = lab_inventory_through(
        dir.path(),
        &format!("[\"{}@127.0.0.1:{}\"]", common::whoami(), bastion.port),
    );
    let inventory = ecfleet::inventory::Inventory::load(&inventory, None).unwrap();
    let connector = ecfleet::transport::Connector::new(false);
    let connect_all = || async {
        for host in inventory.hosts() {
            match connector.connect(host, Duration::from_secs(10)).await {
                Ok(c) => c.close().await,
                Err(e) => panic!("{}: {e}", host.name),
            }
        }
    };
    connect_all().await;
    // The bastion drops every connection it holds (each is a child of the listening sshd).
    let killed = std::process::Command::new("pkill")
        .args(["-P", &bastion.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success(), "the shared connection was open");
    tokio::time::sleep(Duration::from_millis(300)).await;
    connect_all().await;
}

/// Kerberos through a bastion: the KDC and a hardened WinRM host (Kerberos only) are inside the
/// namespace, which only the bastion reaches, so the tickets' traffic goes through the tenant's
/// chain as the host's does.
#[test]
fn kerberos_tickets_come_through_the_tenants_bastion() {
    use common::kdc::{Kdc, REALM};
    use common::winrm::{PASSWORD, USER};
    let ns = Netns::new();
    let (lab, _bastion) = HiddenLab::behind_bastion(&ns, 3, 0);
    let kdc = Kdc::start_in(Some(&ns), None);
    kdc.add_user(USER, PASSWORD);
    let keytab = kdc.add_service("ec1.ecfleet.test");
    let auth_log = lab.path("auth.log");
    let mut python = ns.command(common::winrm::kerberos_python());
    python.env("KRB5_CONFIG", kdc.krb5_conf());
    let endpoint = common::winrm::service_by(
        python,
        &[
            "--keytab",
            keytab.to_str().unwrap(),
            "--refuse-ntlm",
            "--auth-log",
            auth_log.to_str().unwrap(),
        ],
    );
    let mut keys = toml::Table::new();
    keys.insert("auth".into(), "kerberos".into());
    keys.insert("realm".into(), REALM.into());
    keys.insert("kdc".into(), kdc.address().into());
    keys.insert("spn".into(), "HTTP/ec1.ecfleet.test".into());
    let hosts = vec![None, Some((endpoint.port, keys)), None];
    let over_winrm = common::winrm::over_winrm(&lab.path("lab/inventory.toml"), &hosts);
    let text = std::fs::read_to_string(&over_winrm).unwrap();
    let through = lab.path("kerberos-through.toml");
    std::fs::write(
        &through,
        with_jump(&text, &format!("[\"root@{}\"]", ns.inside)),
    )
    .unwrap();
    let out = ecfleet()
        .args(["audit", "--format", "json", "-i"])
        .arg(&through)
        .env("EC_TEST_WINRM_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    let (report, stderr) = json_of(&out);
    assert!(
        results(&report).iter().all(|r| r.1),
        "every host, the Kerberos one too: {stderr}\n{report:#}"
    );
    let logins = std::fs::read_to_string(&auth_log).unwrap_or_default();
    assert!(
        logins.lines().count() >= 1 && logins.lines().all(|l| l.starts_with("kerberos ")),
        "{logins}"
    );
    drop(endpoint);
}

#[test]
fn an_unknown_bastion_is_refused_until_accept_new_host_keys_records_it() {
    let (dir, _lab) = loopback_lab(2);
    let key = dir.path().join("lab/keys/id_ed25519.pub");
    let bastion = common::Sshd::start(dir.path(), "bastion", &key);
    let inventory = lab_inventory_through(
        dir.path(),
        &format!("[\"{}@127.0.0.1:{}\"]", common::whoami(), bastion.port),
    );
    let (code, report, _) = audit(&inventory);
    assert_eq!(code, 2);
    for (host, kind, error) in errors(&report) {
        assert_eq!(kind, "host-key", "{host}: {error}");
        assert!(
            error.contains("host key of jump host") && error.contains("--accept-new-host-keys"),
            "{host}: {error}"
        );
    }
    let out = ecfleet()
        .args(["audit", "--format", "json", "--accept-new-host-keys", "-i"])
        .arg(&inventory)
        .output()
        .unwrap();
    let (report, stderr) = json_of(&out);
    assert!(results(&report).iter().all(|r| r.1), "{stderr}\n{report:#}");
    let known = std::fs::read_to_string(dir.path().join("lab/keys/known_hosts")).unwrap();
    assert!(
        known.contains(&format!(
            "[127.0.0.1]:{} {}",
            bastion.port, bastion.host_pub
        )),
        "the bastion's key is recorded: {known}"
    );
}
