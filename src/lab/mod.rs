//! The lab: a simulated fleet on this machine. `init` writes one directory per host
//! (`DIR/hosts/<name>/machine.toml`); `up` also serves them over SSH in-process (russh, loopback,
//! a host key per host, a generated client key and known_hosts) and writes `DIR/inventory.toml`
//! and a playbook for `ecfleet run` with lab-sized deadlines (`DIR/run-playbook.toml`).
//! The same host directories work behind a real sshd through `lab_root`.

pub mod scenarios;
pub mod server;
pub mod transfer_faults;
pub mod winrm_server;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use jiff::civil::Date;
use russh::keys::ssh_key::{Algorithm, LineEnding, PrivateKey};

use crate::catalog::Catalog;

pub use scenarios::{LabHost, SCENARIOS};

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LabError + '_ {
    move |source| LabError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `n` simulated hosts under `dir/hosts/`; returns them. Existing host directories are
/// rewritten (the lab is disposable), nothing else in `dir` is touched.
/// Which fleet `lab init`/`up` makes: how many hosts, and whether the scenarios that fail
/// during a run (`--faults`) are among them.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub hosts: usize,
    pub faults: bool,
    /// How many hosts `lab up` serves over WinRM instead of SSH, spread over the fleet.
    pub winrm: usize,
}

impl Shape {
    /// Whether host `i` of the fleet is served over WinRM: `winrm` of them, evenly spread.
    pub fn is_winrm(&self, i: usize) -> bool {
        let n = self.hosts.max(1);
        let w = self.winrm.min(n);
        (i * w) / n != ((i + 1) * w) / n
    }
}

pub fn init(
    dir: &Path,
    shape: Shape,
    catalog: &Catalog,
    as_of: Date,
) -> Result<Vec<LabHost>, LabError> {
    let Shape {
        hosts: n, faults, ..
    } = shape;
    if n == 0 {
        return Err(LabError::Other("--hosts must be at least 1".into()));
    }
    let hosts_dir = dir.join("hosts");
    std::fs::create_dir_all(&hosts_dir).map_err(io(&hosts_dir))?;
    let fleet = scenarios::fleet(n, faults, catalog, as_of);
    for h in &fleet {
        let host_dir = hosts_dir.join(&h.name);
        std::fs::create_dir_all(&host_dir).map_err(io(&host_dir))?;
        let text = toml::to_string_pretty(&h.machine)
            .map_err(|e| LabError::Other(format!("cannot encode {}: {e}", h.name)))?;
        let path = host_dir.join("machine.toml");
        let header = format!(
            "# Simulated Entra Connect host `{}` (scenario: {}). Format: docs/lab.md\n",
            h.name, h.scenario
        );
        std::fs::write(&path, header + &text).map_err(io(&path))?;
    }
    Ok(fleet)
}

/// Absolute path of a lab host's directory.
pub fn host_dir(dir: &Path, name: &str) -> PathBuf {
    dir.join("hosts").join(name)
}

/// A client key for the lab, written in OpenSSH format (mode 0600); reused if present.
pub fn client_key(dir: &Path) -> Result<(PathBuf, PrivateKey), LabError> {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).map_err(io(&keys))?;
    let path = keys.join("id_ed25519");
    if let Ok(existing) = russh::keys::load_secret_key(&path, None) {
        return Ok((path, existing));
    }
    let key = new_key()?;
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| LabError::Other(e.to_string()))?;
    std::fs::write(&path, text.as_bytes()).map_err(io(&path))?;
    restrict(&path)?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| LabError::Other(e.to_string()))?;
    std::fs::write(keys.join("id_ed25519.pub"), public + "\n").map_err(io(&path))?;
    Ok((path, key))
}

pub fn new_key() -> Result<PrivateKey, LabError> {
    PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
        .map_err(|e| LabError::Other(e.to_string()))
}

#[cfg(unix)]
#[cfg(unix)]
fn restrict(path: &Path) -> Result<(), LabError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io(path))
}

/// On Windows the lab's files keep the ACL of the folder they are in (the user's own).
#[cfg(not(unix))]
fn restrict(_path: &Path) -> Result<(), LabError> {
    Ok(())
}

/// Puts a lab command in a process group of its own, so that a client that gives up can have
/// the whole group killed ([`server::kill_group`]); on Windows the lab serves no hosts.
fn own_group(command: &mut tokio::process::Command) -> &mut tokio::process::Command {
    #[cfg(unix)]
    command.process_group(0);
    command
}

/// Where each host is served, for the inventory.
pub struct Endpoint<'a> {
    pub host: &'a LabHost,
    pub address: String,
    pub port: u16,
    /// Served over WinRM: the inventory names the transport and the password file.
    pub winrm: Option<&'a Path>,
}

/// An inventory for lab hosts (used by `lab up`, the tests and the benchmark).
pub fn inventory_text(
    dir: &Path,
    endpoints: &[Endpoint<'_>],
    identity_file: &Path,
    known_hosts: &Path,
    share: &Path,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Written by ecfleet for the lab in {}. Format: docs/inventory.md",
        dir.display()
    );
    let _ = writeln!(
        s,
        "[defaults]\nuser = \"ecfleet\"\nidentity_file = {:?}\nknown_hosts = {:?}\nos = \"linux\"\nconnect_timeout = 10\n",
        identity_file.display().to_string(),
        known_hosts.display().to_string()
    );
    let _ = writeln!(s, "[share]\npath = {:?}\n", share.display().to_string());
    let mut current_tenant = "";
    for e in endpoints {
        if e.host.tenant != current_tenant {
            current_tenant = &e.host.tenant;
            let _ = writeln!(
                s,
                "[[tenant]]\nname = {:?}\nmaintenance_window = {:?}\n",
                e.host.tenant,
                scenarios::maintenance_window(&e.host.tenant)
            );
        }
        let _ = writeln!(
            s,
            "[[tenant.host]]\nname = {:?}\naddress = {:?}\nport = {}\nrole = \"{}\"\nlab_root = {:?}",
            e.host.name,
            e.address,
            e.port,
            e.host.role,
            host_dir(dir, &e.host.name).display().to_string()
        );
        if let Some(password) = e.winrm {
            let _ = writeln!(
                s,
                "transport = \"winrm\"\npassword = {{ file = {:?} }}",
                password.display().to_string()
            );
        }
        s.push('\n');
    }
    s
}

/// A lab ready to serve: its inventory, and the hosts on their listeners.
pub struct Lab {
    pub inventory: PathBuf,
    ssh: Vec<server::ServedHost>,
    client_key: russh::keys::ssh_key::PublicKey,
    winrm: Vec<winrm_server::WinRmHost>,
    account: std::sync::Arc<crate::transport::winrm::ntlm::Identity>,
}

impl Lab {
    /// Serves every host (SSH and WinRM) until `shutdown`.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let ssh = server::serve(self.ssh, self.client_key, wait(stopped.clone()));
        let winrm = winrm_server::serve(self.winrm, self.account, wait(stopped));
        let stopper = async {
            shutdown.await;
            let _ = stop.send(true);
        };
        tokio::join!(ssh, winrm, stopper);
    }
}

/// The password of the lab's WinRM account (`ecfleet`), made once per lab directory.
fn winrm_password(dir: &Path) -> Result<(PathBuf, String), LabError> {
    let path = dir.join("keys").join("winrm-password");
    if let Ok(p) = std::fs::read_to_string(&path)
        && !p.trim().is_empty()
    {
        return Ok((path, p.trim().to_string()));
    }
    let password = format!("lab-{}", uuid::Uuid::new_v4().simple());
    std::fs::write(&path, format!("{password}\n")).map_err(io(&path))?;
    restrict(&path)?;
    Ok((path, password))
}

/// Binds a loopback listener on `port_base + i` (any free port when 0).
async fn listen(port_base: u16, i: usize) -> Result<(tokio::net::TcpListener, u16), LabError> {
    let port = if port_base == 0 {
        0
    } else {
        port_base
            .checked_add(i as u16)
            .ok_or_else(|| LabError::Other("--port-base too high for that many hosts".into()))?
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| LabError::Other(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| LabError::Other(e.to_string()))?
        .port();
    Ok((listener, port))
}

/// Starts the lab's hosts served in-process on 127.0.0.1 (ports from `port_base`, or any free
/// port when 0), `shape.winrm` of them over WinRM, the rest over SSH; writes
/// `dir/inventory.toml` (and `dir/run-playbook.toml`).
pub async fn up(
    dir: &Path,
    shape: Shape,
    port_base: u16,
    catalog: &Catalog,
    as_of: Date,
) -> Result<Lab, LabError> {
    let dir = std::path::absolute(dir).map_err(io(dir))?;
    let fleet = init(&dir, shape, catalog, as_of)?;
    let (key_path, client) = client_key(&dir)?;
    let (password_file, password) = winrm_password(&dir)?;
    let known_hosts = dir.join("keys").join("known_hosts");
    let mut kh = String::new();
    let mut ssh = Vec::new();
    let mut winrm = Vec::new();
    let mut ports = Vec::new();
    for (i, h) in fleet.iter().enumerate() {
        let (listener, port) = listen(port_base, i).await?;
        ports.push(port);
        if shape.is_winrm(i) {
            winrm.push(winrm_server::WinRmHost {
                dir: host_dir(&dir, &h.name),
                listener,
            });
            continue;
        }
        let host_key = new_key()?;
        let public = host_key
            .public_key()
            .to_openssh()
            .map_err(|e| LabError::Other(e.to_string()))?;
        let _ = writeln!(kh, "[127.0.0.1]:{port} {public}");
        ssh.push(server::ServedHost {
            dir: host_dir(&dir, &h.name),
            host_key,
            listener,
        });
    }
    std::fs::write(&known_hosts, kh).map_err(io(&known_hosts))?;
    let endpoints: Vec<Endpoint<'_>> = fleet
        .iter()
        .zip(&ports)
        .enumerate()
        .map(|(i, (host, port))| Endpoint {
            host,
            address: "127.0.0.1".into(),
            port: *port,
            winrm: shape.is_winrm(i).then_some(password_file.as_path()),
        })
        .collect();
    // The lab's share is a folder of the lab (a real fleet's is a mounted share): made here,
    // since ecfleet never creates a share's root.
    let share = dir.join("share");
    std::fs::create_dir_all(&share).map_err(io(&share))?;
    let inventory = dir.join("inventory.toml");
    let text = inventory_text(&dir, &endpoints, &key_path, &known_hosts, &share);
    std::fs::write(&inventory, text).map_err(io(&inventory))?;
    let playbook = dir.join("run-playbook.toml");
    std::fs::write(&playbook, LAB_RUN_PLAYBOOK).map_err(io(&playbook))?;
    Ok(Lab {
        inventory,
        ssh,
        client_key: client.public_key().clone(),
        winrm,
        account: std::sync::Arc::new(crate::transport::winrm::ntlm::Identity::new(
            "ecfleet", &password,
        )),
    })
}

/// `ecfleet run --playbook DIR/run-playbook.toml` on the lab: the lab's operator acts within
/// seconds, so minutes are enough for a host that will never finish (docs/lab.md).
pub const LAB_RUN_PLAYBOOK: &str =
    "# ecfleet run's phases for the lab (docs/run.md): the lab's operator acts within seconds.
schema_version = 1

[deadlines]
preflight = 60
backup = 60
stage = 120
upgrade = 40
verify = 40

[watch]
poll_seconds = 1

[verify]
restart_adsync_once = true
";
