//! A private MIT Kerberos KDC (Debian's `krb5-kdc`) on loopback for the Kerberos tests: its own
//! realm, database, krb5.conf and kdc.conf in a temporary folder, a user principal that needs
//! pre-authentication (as Active Directory does; `sspi` needs it) and service keytabs for
//! `HTTP/<name>`. Optionally its clock runs ahead (libfaketime), to play a skewed KDC.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REALM: &str = "ECFLEET.TEST";

pub struct Kdc {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl Drop for Kdc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn need(program: &str, package: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin"] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return p;
        }
    }
    let _ = Command::new("apt-get")
        .args(["install", "-y", "-qq", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    let p = Path::new("/usr/sbin").join(program);
    assert!(
        p.exists(),
        "{program} is required: apt-get install -y {package}"
    );
    p
}

/// Runs `command` with its clock `offset` ahead (libfaketime preloaded into the program itself:
/// the `faketime` wrapper forks, and killing it would leave the program running).
pub fn clock_ahead(command: &mut Command, offset: &str) {
    need("faketime", "faketime");
    let lib = std::fs::read_dir("/usr/lib")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.exists())
        .expect("libfaketime.so.1 under /usr/lib/<arch>/faketime (apt-get install faketime)");
    command
        .env("LD_PRELOAD", lib)
        .env("FAKETIME", offset)
        .env("DONT_FAKE_MONOTONIC", "1");
}

impl Kdc {
    /// A KDC whose clock is `ahead` (none: the machine's).
    pub fn start(ahead: Option<&str>) -> Kdc {
        Kdc::start_in(None, ahead)
    }

    /// [`Kdc::start`] inside a network namespace (on its own loopback).
    pub fn start_in(netns: Option<&super::netns::Netns>, ahead: Option<&str>) -> Kdc {
        let krb5kdc = need("krb5kdc", "krb5-kdc");
        let kdb5_util = need("kdb5_util", "krb5-kdc");
        need("kadmin.local", "krb5-admin-server");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let d = d.as_path();
        let port = super::free_port();
        std::fs::write(
            d.join("krb5.conf"),
            format!(
                "[libdefaults]\n default_realm = {REALM}\n dns_lookup_kdc = false\n dns_lookup_realm = false\n rdns = false\n ignore_acceptor_hostname = true\n\n[realms]\n {REALM} = {{\n  kdc = 127.0.0.1:{port}\n }}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("kdc.conf"),
            format!(
                "[kdcdefaults]\n kdc_listen = 127.0.0.1:{port}\n kdc_tcp_listen = 127.0.0.1:{port}\n\n[realms]\n {REALM} = {{\n  database_name = {db}\n  key_stash_file = {stash}\n  acl_file = {acl}\n  supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal\n  max_life = 10h\n }}\n\n[logging]\n kdc = FILE:{log}\n",
                db = d.join("principal").display(),
                stash = d.join("stash").display(),
                acl = d.join("kadm5.acl").display(),
                log = d.join("kdc.log").display(),
            ),
        )
        .unwrap();
        std::fs::write(d.join("kadm5.acl"), "").unwrap();
        let env = |c: &mut Command| {
            c.env("KRB5_CONFIG", d.join("krb5.conf"))
                .env("KRB5_KDC_PROFILE", d.join("kdc.conf"));
        };
        let mut create = Command::new(kdb5_util);
        create.args(["create", "-s", "-r", REALM, "-P", "master-key-of-a-test"]);
        env(&mut create);
        let out = create.output().unwrap();
        assert!(
            out.status.success(),
            "kdb5_util create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut kdc = Kdc {
            dir,
            port,
            child: Command::new("true").spawn().unwrap(),
        };
        let program = |p: &Path| match netns {
            None => Command::new(p),
            Some(ns) => ns.command(p),
        };
        let mut start = program(&krb5kdc);
        if let Some(offset) = ahead {
            clock_ahead(&mut start, offset);
        }
        start.args(["-n", "-r", REALM]);
        env(&mut start);
        kdc.child = start
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start krb5kdc");
        if let Some(ns) = netns {
            ns.wait_for_port("127.0.0.1", port);
            return kdc;
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "krb5kdc did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        kdc
    }

    fn kadmin_path(&self, kadmin: &Path, query: &str) -> String {
        let d = self.dir.path();
        let out = Command::new(kadmin)
            .args(["-r", REALM, "-q", query])
            .env("KRB5_CONFIG", d.join("krb5.conf"))
            .env("KRB5_KDC_PROFILE", d.join("kdc.conf"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kadmin.local -q {query}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn kadmin(&self, query: &str) -> String {
        self.kadmin_path(&need("kadmin.local", "krb5-admin-server"), query)
    }

    /// A user that must pre-authenticate (as Active Directory's users do).
    pub fn add_user(&self, user: &str, password: &str) {
        self.kadmin(&format!("addprinc -pw {password} +requires_preauth {user}"));
    }

    /// `HTTP/<name>` with a random key, exported to a keytab of its own; returns its path.
    pub fn add_service(&self, name: &str) -> PathBuf {
        let principal = format!("HTTP/{name}");
        self.kadmin(&format!("addprinc -randkey {principal}"));
        let keytab = self.dir.path().join(format!("{name}.keytab"));
        self.kadmin(&format!("ktadd -k {} {principal}", keytab.display()));
        keytab
    }

    pub fn krb5_conf(&self) -> PathBuf {
        self.dir.path().join("krb5.conf")
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}
