//! The project's WinRM test endpoint (tests/winrm_endpoint/endpoint.py) in a venv with pyspnego
//! and pywinrm from PyPI, and `ecfleet lab up` serving hosts over WinRM: what the WinRM test
//! binaries share.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

pub const USER: &str = "fleet";
pub const PASSWORD: &str = "S3cret!pw-Not-In-Logs";

/// A venv with pyspnego and pywinrm, made once per target directory.
pub fn python() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("winrm-venv");
        let python = venv.join("bin/python");
        let ready = venv.join(".ready");
        if !ready.exists() {
            let tmp = venv.with_extension(format!("tmp{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            let ok = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&tmp)
                .status()
                .expect("python3 -m venv (apt-get install python3-venv)")
                .success();
            assert!(ok, "python3 -m venv failed");
            let ok = Command::new(tmp.join("bin/pip"))
                .args(["install", "-q", "pyspnego==0.12.4", "pywinrm==0.5.0"])
                .status()
                .unwrap()
                .success();
            assert!(ok, "pip install pyspnego pywinrm failed");
            std::fs::write(tmp.join(".ready"), "").unwrap();
            // Another test binary may have made it meanwhile: keep whichever is there.
            if std::fs::rename(&tmp, &venv).is_err() {
                let _ = std::fs::remove_dir_all(&tmp);
            }
        }
        assert!(python.exists());
        python
    })
    .clone()
}

pub struct Service {
    pub child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn endpoint_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/winrm_endpoint/endpoint.py")
}

pub fn service(extra: &[&str]) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, format!(":{USER}:{PASSWORD}\n")).unwrap();
    let mut child = Command::new(python())
        .arg(endpoint_script())
        .arg("--users")
        .arg(&users)
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("endpoint said {line:?}"))
        .parse()
        .unwrap();
    Service {
        child,
        port,
        _dir: dir,
    }
}

pub struct Lab(Child);

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ecfleet lab up --hosts N --winrm W [extra]` in `dir`, once serving.
pub fn lab_up(dir: &Path, hosts: usize, winrm: usize, extra: &[&str]) -> Lab {
    let winrm = winrm.to_string();
    let args: Vec<&str> = ["--winrm", winrm.as_str()]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    Lab(super::lab_up(dir, hosts, &args))
}

/// Runs `script` with pywinrm (the venv's Python); its stdout, the test failing when it does.
pub fn pywinrm(script: &str) -> String {
    let out = Command::new(python())
        .args(["-c", script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// A copy of the lab inventory (`over-winrm.toml` beside it) in which the n-th host (in file
/// order) is reached over WinRM at `hosts[n]`'s port with its extra keys (`None`: unchanged),
/// as `USER` with the password in `EC_TEST_WINRM_PASSWORD`.
pub fn over_winrm(inventory: &Path, hosts: &[Option<(u16, toml::Table)>]) -> PathBuf {
    let mut doc: toml::Table =
        toml::from_str(&std::fs::read_to_string(inventory).unwrap()).unwrap();
    let mut n = 0;
    for tenant in doc["tenant"].as_array_mut().unwrap() {
        for host in tenant["host"].as_array_mut().unwrap() {
            n += 1;
            let Some(Some((port, keys))) = hosts.get(n - 1) else {
                continue;
            };
            let h = host.as_table_mut().unwrap();
            h.insert("transport".into(), "winrm".into());
            h.insert("port".into(), i64::from(*port).into());
            h.insert("user".into(), USER.into());
            let mut pw = toml::Table::new();
            pw.insert("env".into(), "EC_TEST_WINRM_PASSWORD".into());
            h.insert("password".into(), pw.into());
            h.extend(keys.clone());
        }
    }
    let out = inventory.with_file_name("over-winrm.toml");
    std::fs::write(&out, toml::to_string(&doc).unwrap()).unwrap();
    out
}

/// The hosts of an inventory, in file order.
pub fn hosts(inventory: &Path) -> Vec<toml::Value> {
    let doc: toml::Table = toml::from_str(&std::fs::read_to_string(inventory).unwrap()).unwrap();
    doc["tenant"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["host"].as_array().unwrap().clone())
        .collect()
}

/// The host names of an inventory, in file order.
pub fn host_names(inventory: &Path) -> Vec<String> {
    hosts(inventory)
        .iter()
        .map(|h| h["name"].as_str().unwrap().to_string())
        .collect()
}
