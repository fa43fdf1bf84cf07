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
    service_by(Command::new(python()), extra)
}

/// A venv of Debian's own Python with its `python3-gssapi` (`--system-site-packages`) and
/// pyspnego from PyPI: pyspnego accepts Kerberos only when gssapi (or krb5) is importable, and
/// otherwise silently offers NTLM alone. Made once per target directory.
pub fn kerberos_python() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let system = Path::new("/usr/bin/python3");
        let has_gssapi = |python: &Path| {
            Command::new(python)
                .args(["-c", "import gssapi"])
                .status()
                .is_ok_and(|s| s.success())
        };
        if !has_gssapi(system) {
            let _ = Command::new("apt-get")
                .args(["install", "-y", "-qq", "python3-gssapi", "python3-venv"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status();
        }
        assert!(
            has_gssapi(system),
            "Debian's python3-gssapi is required: apt-get install -y python3-gssapi python3-venv"
        );
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kerberos-venv");
        let python = venv.join("bin/python");
        if !venv.join(".ready").exists() {
            let tmp = venv.with_extension(format!("tmp{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            let ok = Command::new(system)
                .args(["-m", "venv", "--system-site-packages"])
                .arg(&tmp)
                .status()
                .unwrap()
                .success();
            assert!(
                ok,
                "/usr/bin/python3 -m venv failed (apt-get install python3-venv)"
            );
            let ok = Command::new(tmp.join("bin/pip"))
                .args(["install", "-q", "pyspnego==0.12.4"])
                .status()
                .unwrap()
                .success();
            assert!(ok, "pip install pyspnego failed");
            std::fs::write(tmp.join(".ready"), "").unwrap();
            if std::fs::rename(&tmp, &venv).is_err() {
                let _ = std::fs::remove_dir_all(&tmp);
            }
        }
        assert!(has_gssapi(&python), "the venv does not see gssapi");
        python
    })
    .clone()
}

/// The endpoint run by `python` (its environment set by the caller).
pub fn service_by(mut python: Command, extra: &[&str]) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, format!(":{USER}:{PASSWORD}\n")).unwrap();
    let mut child = python
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

// --- A fleet's night over WinRM, compared with the same over SSH ------------------------------------

/// `ecfleet audit --format json` of `inventory` with the WinRM password in the environment and
/// everything logged (RUST_LOG=trace): the report and stderr.
pub fn audit(inventory: &Path, extra: &[&str]) -> (serde_json::Value, String) {
    let out = super::ecfleet()
        .args(["audit", "--format", "json", "--agent-dir"])
        .arg(super::agent_dir())
        .arg("-i")
        .arg(inventory)
        .args(extra)
        .env("EC_TEST_WINRM_PASSWORD", PASSWORD)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    super::json_of(&out)
}

pub fn verdicts(report: &serde_json::Value) -> Vec<(String, bool, Vec<String>)> {
    let mut v: Vec<(String, bool, Vec<String>)> = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let mut codes: Vec<String> = h["findings"]
                .as_array()
                .map(|f| {
                    f.iter()
                        .map(|x| x["code"].as_str().unwrap().to_string())
                        .collect()
                })
                .unwrap_or_default();
            codes.sort();
            (
                h["host"].as_str().unwrap().to_string(),
                h["reachable"].as_bool().unwrap(),
                codes,
            )
        })
        .collect();
    v.sort();
    v
}

/// What a fleet's night says per host: the audit's verdicts, the plan's action and reasons, the
/// backup's result, the run's outcome; and the hosts the run verified.
#[derive(Debug, PartialEq)]
pub struct Night {
    pub audit: Vec<(String, bool, Vec<String>)>,
    pub plan: Vec<(String, String, Vec<String>)>,
    pub backup: Vec<(String, bool, String)>,
    pub run: Vec<(String, String, String)>,
}

/// A night as it went: its [`Night`], the backup's exit code, the run's report, and everything
/// the commands wrote on stderr.
pub struct NightRun {
    pub night: Night,
    pub backup_code: Option<i32>,
    pub run: serde_json::Value,
    pub stderr: String,
}

/// audit, plan, backup and run on the lab in `dir` through `inventory`, as an operator would in
/// one night; every in-place host must end verified.
pub fn night(dir: &Path, inventory: &Path) -> NightRun {
    let mut all_stderr = String::new();
    let mut ecfleet = |args: &[&str]| {
        let out = super::ecfleet()
            .args(args)
            .arg("--agent-dir")
            .arg(super::agent_dir())
            .arg("-i")
            .arg(inventory)
            .env("EC_TEST_WINRM_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        all_stderr.push_str(&stderr);
        (out, stderr)
    };
    let json = |bytes: &[u8], stderr: &str| -> serde_json::Value {
        serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{e}: {stderr}"))
    };
    let rows = |v: &serde_json::Value,
                f: &dyn Fn(&serde_json::Value) -> (String, String, String)| {
        let mut r: Vec<_> = v["hosts"].as_array().unwrap().iter().map(f).collect();
        r.sort();
        r
    };
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
    let (report, audit_stderr) = audit(inventory, &["--as-of", "2026-11-24"]);
    let (msi, _) = super::lab_msi(dir, 1);
    let plan_file = dir.join("tonight.json");
    let (out, stderr) = ecfleet(&[
        "plan",
        "--as-of",
        "2026-11-24",
        "--msi",
        msi.to_str().unwrap(),
        "--out",
        plan_file.to_str().unwrap(),
    ]);
    assert!(out.status.code().is_some_and(|c| c <= 2), "{stderr}");
    let plan = json(&std::fs::read(&plan_file).unwrap(), &stderr);
    let (out, stderr) = ecfleet(&["backup", "--format", "json"]);
    let backup = json(&out.stdout, &stderr);
    let backup_code = out.status.code();
    let (out, stderr) = ecfleet(&[
        "run",
        "--yes",
        "--ignore-windows",
        "--format",
        "json",
        "--plan",
        plan_file.to_str().unwrap(),
        "--msi",
        msi.to_str().unwrap(),
        "--playbook",
        dir.join("run-playbook.toml").to_str().unwrap(),
    ]);
    let run = json(&out.stdout, &stderr);
    for h in run["hosts"].as_array().unwrap() {
        if h["action"] == "in-place" {
            assert_eq!(h["outcome"], "verified", "{h:#}\n{stderr}");
        }
    }
    let night = Night {
        audit: verdicts(&report),
        plan: {
            let mut p: Vec<_> = plan["hosts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    let mut codes: Vec<String> = h["reasons"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|n| text(&n["code"]))
                        .collect();
                    codes.sort();
                    (text(&h["host"]), text(&h["action"]), codes)
                })
                .collect();
            p.sort();
            p
        },
        backup: rows(&backup, &|h| {
            (
                text(&h["host"]),
                h["ok"].to_string(),
                text(&h["error_kind"]),
            )
        })
        .into_iter()
        .map(|(h, ok, kind)| (h, ok == "true", kind))
        .collect(),
        run: rows(&run, &|h| {
            (text(&h["host"]), text(&h["action"]), text(&h["outcome"]))
        }),
    };
    all_stderr.push_str(&audit_stderr);
    NightRun {
        night,
        backup_code,
        run,
        stderr: all_stderr,
    }
}
