//! The lab: a simulated fleet on this machine. `init` writes one directory per host
//! (`DIR/hosts/<name>/machine.toml`); `up` also serves them over SSH in-process (russh, loopback,
//! a host key per host, a generated client key and known_hosts) and writes `DIR/inventory.toml`
//! and a playbook for `ecfleet run` with lab-sized deadlines (`DIR/run-playbook.toml`).
//! The same host directories work behind a real sshd through `lab_root`.

pub mod scenarios;
pub mod server;
pub mod transfer_faults;

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
}

pub fn init(
    dir: &Path,
    shape: Shape,
    catalog: &Catalog,
    as_of: Date,
) -> Result<Vec<LabHost>, LabError> {
    let Shape { hosts: n, faults } = shape;
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
fn restrict(path: &Path) -> Result<(), LabError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io(path))
}

/// Where each host is served, for the inventory.
pub struct Endpoint<'a> {
    pub host: &'a LabHost,
    pub address: String,
    pub port: u16,
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
            "[[tenant.host]]\nname = {:?}\naddress = {:?}\nport = {}\nrole = \"{}\"\nlab_root = {:?}\n",
            e.host.name,
            e.address,
            e.port,
            e.host.role,
            host_dir(dir, &e.host.name).display().to_string()
        );
    }
    s
}

/// Starts `n` lab hosts served in-process on 127.0.0.1 (ports from `port_base`, or any free
/// port when 0), writes `dir/inventory.toml` (and `dir/run-playbook.toml`) and returns its path
/// plus a future serving them.
pub async fn up(
    dir: &Path,
    shape: Shape,
    port_base: u16,
    catalog: &Catalog,
    as_of: Date,
) -> Result<
    (
        PathBuf,
        Vec<server::ServedHost>,
        russh::keys::ssh_key::PublicKey,
    ),
    LabError,
> {
    let dir = std::path::absolute(dir).map_err(io(dir))?;
    let fleet = init(&dir, shape, catalog, as_of)?;
    let (key_path, client) = client_key(&dir)?;
    let known_hosts = dir.join("keys").join("known_hosts");
    let mut kh = String::new();
    let mut served = Vec::new();
    let mut ports = Vec::new();
    for (i, h) in fleet.iter().enumerate() {
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
        let host_key = new_key()?;
        let public = host_key
            .public_key()
            .to_openssh()
            .map_err(|e| LabError::Other(e.to_string()))?;
        let _ = writeln!(kh, "[127.0.0.1]:{port} {public}");
        served.push(server::ServedHost {
            dir: host_dir(&dir, &h.name),
            host_key,
            listener,
        });
        ports.push(port);
    }
    std::fs::write(&known_hosts, kh).map_err(io(&known_hosts))?;
    let endpoints: Vec<Endpoint<'_>> = fleet
        .iter()
        .zip(&ports)
        .map(|(host, port)| Endpoint {
            host,
            address: "127.0.0.1".into(),
            port: *port,
        })
        .collect();
    let inventory = dir.join("inventory.toml");
    let text = inventory_text(
        &dir,
        &endpoints,
        &key_path,
        &known_hosts,
        &dir.join("share"),
    );
    std::fs::write(&inventory, text).map_err(io(&inventory))?;
    let playbook = dir.join("run-playbook.toml");
    std::fs::write(&playbook, LAB_RUN_PLAYBOOK).map_err(io(&playbook))?;
    Ok((inventory, served, client.public_key().clone()))
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
