//! The TOML inventory: defaults, the central share, tenants and their hosts. Parsed with spans
//! and validated into domain types in one pass that collects every error (file, line, key and a
//! fix) instead of stopping at the first. Secrets are references, never values.

pub mod krb5_conf;
mod parse;
pub mod secret;

pub(crate) use parse::valid_name;
pub use parse::{InventoryError, InventoryErrors};
pub use secret::{Secret, SecretRef};

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::platform::MinOs;
use crate::window::MaintenanceWindow;

/// `active` exports to Entra; `staging` imports and syncs but never exports.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Active,
    Staging,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Active => "active",
            Role::Staging => "staging",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    Ssh,
    WinRm,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Ssh => "ssh",
            TransportKind::WinRm => "winrm",
        })
    }
}

/// What the remote side runs, when the inventory says so; otherwise it is detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteOs {
    Linux,
    Windows,
}

/// How a host is reached, with the settings only that protocol has.
#[derive(Debug, Clone, PartialEq)]
pub enum HostTransport {
    Ssh(SshSettings),
    /// WS-Management; needs no known_hosts (its settings come with the WinRM transport).
    WinRm(WinRmSettings),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SshSettings {
    pub identity_file: Option<PathBuf>,
    /// Host keys are checked against this file.
    pub known_hosts: PathBuf,
}

/// How a WinRM host is reached (docs/inventory.md, docs/winrm.md).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WinRmSettings {
    /// HTTPS (5986) instead of HTTP with message encryption (5985).
    pub https: bool,
    pub auth: WinRmAuth,
    /// The realm and KDC (tenant, host or `[defaults]`) and the host's SPN: with them,
    /// `negotiate` tries Kerberos first; `kerberos` needs them.
    pub kerberos: Option<KerberosSettings>,
    /// The host's certificate, pinned by its SHA-256 (hex), for self-signed listeners.
    pub cert_sha256: Option<String>,
    /// Accept any certificate (explicit, and warned about).
    pub insecure: bool,
    /// How big files reach the host.
    pub file_transfer: FileTransfer,
}

/// Where a WinRM host's Kerberos tickets come from (docs/winrm.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KerberosSettings {
    /// Upper case, as Kerberos spells it.
    pub realm: String,
    /// A KDC of the realm: name or address, and port (88).
    pub kdc: (String, u16),
    /// The host's service principal; `HTTP/<address>` when not given.
    pub spn: Option<String>,
    /// A keytab holding the user's key: Kerberos without a password.
    pub keytab: Option<PathBuf>,
}

/// How big files (the agent, the installer) reach a WinRM host (docs/winrm.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FileTransfer {
    /// The host fetches them from the controller's own HTTPS; over stdin when it cannot.
    #[default]
    Pull,
    /// Always over WinRS stdin: the controller opens no port.
    Stdin,
}

/// WinRM authentication.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WinRmAuth {
    /// Kerberos inside the Negotiate scheme when a realm and KDC are known, NTLM when Kerberos
    /// cannot be had (as Windows does).
    #[default]
    Negotiate,
    /// Kerberos only: never NTLM.
    Kerberos,
    /// NTLM (the same exchange, named as the host's WinRM configuration names it).
    Ntlm,
    /// User name and password in the request (HTTPS only; local accounts only).
    Basic,
}

impl HostTransport {
    pub fn kind(&self) -> TransportKind {
        match self {
            HostTransport::Ssh(_) => TransportKind::Ssh,
            HostTransport::WinRm(_) => TransportKind::WinRm,
        }
    }
}

/// One Entra Connect server, with every default already applied.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub tenant: String,
    pub address: String,
    pub port: u16,
    pub role: Role,
    pub transport: HostTransport,
    pub user: String,
    pub password: Option<SecretRef>,
    /// Set for simulated hosts: the directory (on that host) holding `machine.toml`.
    pub lab_root: Option<String>,
    pub os: Option<RemoteOs>,
    /// Policy: below this OS the host is migrated, not upgraded in place (host, else tenant,
    /// else `[defaults]`; the plan playbook's `min_os` applies when none is set).
    pub min_os: Option<MinOs>,
    pub connect_timeout: Duration,
    /// The SSH servers the host is reached through, first hop first (OpenSSH's ProxyJump);
    /// empty: directly. The host's own `jump`, else its tenant's (docs/jump-hosts.md).
    pub jump: Vec<JumpHop>,
    /// Line of the `[[tenant.host]]` header, for messages.
    pub line: usize,
}

/// One SSH server on the way to a host: its own address, account, credentials by reference,
/// known_hosts and connect deadline. Hops with equal fields are one shared connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JumpHop {
    pub address: String,
    pub port: u16,
    pub user: String,
    pub identity_file: Option<PathBuf>,
    /// Only when the hop says so: a host's or `[defaults]` password is never sent to a bastion.
    pub password: Option<SecretRef>,
    pub known_hosts: PathBuf,
    pub connect_timeout: Duration,
    /// The last hop only: its address as the hosts behind it reach it. Set, WinRM hosts pull
    /// big files through a remote forward on it (docs/jump-hosts.md).
    pub pull_address: Option<String>,
}

impl JumpHop {
    /// `user@address:port` (an IPv6 address in brackets), as the inventory and messages name it.
    pub fn label(&self) -> String {
        if self.address.contains(':') {
            format!("{}@[{}]:{}", self.user, self.address, self.port)
        } else {
            format!("{}@{}:{}", self.user, self.address, self.port)
        }
    }
}

impl Host {
    /// `address:port`, with an IPv6 address in brackets (`[::1]:22`).
    pub fn endpoint(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }

    /// The files the controller reads for this host (identity, known_hosts, password file).
    pub fn local_files(&self) -> Vec<(&'static str, &Path)> {
        let mut files = Vec::new();
        if let HostTransport::Ssh(ssh) = &self.transport {
            if let Some(id) = &ssh.identity_file {
                files.push(("identity_file", id.as_path()));
            }
            files.push(("known_hosts", ssh.known_hosts.as_path()));
        }
        if let Some(SecretRef::File(p)) = &self.password {
            files.push(("password file", p.as_path()));
        }
        for hop in &self.jump {
            if let Some(id) = &hop.identity_file {
                files.push(("jump host identity_file", id.as_path()));
            }
            files.push(("jump host known_hosts", hop.known_hosts.as_path()));
            if let Some(SecretRef::File(p)) = &hop.password {
                files.push(("jump host password file", p.as_path()));
            }
        }
        files
    }
}

#[derive(Debug, Clone)]
pub struct Tenant {
    pub name: String,
    pub maintenance_window: Option<MaintenanceWindow>,
    /// Policy: hosts of this tenant below this OS are migrated (unless a host says otherwise).
    pub min_os: Option<MinOs>,
    pub contacts: Vec<String>,
    /// The tenant's own channels (`[tenant.notify]`): its customer's, told about its hosts.
    pub notify: Notify,
    pub hosts: Vec<Host>,
}

/// `[notify]` (fleet-wide) or `[tenant.notify]`: where messages go when a night ends, an
/// operator hand-off waits too long, or an audit finds something new (docs/notify.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notify {
    pub channels: Vec<NotifyChannel>,
    /// Each message's deadline per channel, retries included.
    pub timeout: Duration,
    /// A hand-off to the operator that waits longer than this is told about.
    pub handoff_after: Option<Duration>,
}

/// One webhook: its kind and its URL, by reference (a webhook URL is a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyChannel {
    pub kind: NotifyKind,
    pub url: SecretRef,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyKind {
    /// A Teams Workflows webhook ("When a Teams webhook request is received"): an Adaptive Card.
    Teams,
    /// A Slack incoming webhook: Block Kit blocks.
    Slack,
    /// Any endpoint: the documented JSON.
    Webhook,
}

impl NotifyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyKind::Teams => "teams",
            NotifyKind::Slack => "slack",
            NotifyKind::Webhook => "webhook",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Inventory {
    pub path: PathBuf,
    /// Central share (a local or mounted directory).
    pub share: Option<PathBuf>,
    /// `[backup]`: how many nightly backups each host keeps on the share.
    pub backup_retention: crate::backup::Retention,
    /// How many hosts are worked on at once.
    pub concurrency: usize,
    /// `[notify]`: the fleet's channels (the MSP's), told about every host.
    pub notify: Notify,
    pub tenants: Vec<Tenant>,
}

impl Inventory {
    /// Reads and validates an inventory file; every problem is reported at once.
    /// `user_known_hosts` is used for hosts whose inventory entry names no known_hosts file.
    pub fn load(
        path: &Path,
        user_known_hosts: Option<&Path>,
    ) -> Result<Inventory, InventoryErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            InventoryErrors(vec![InventoryError::whole_file(
                path,
                format!("cannot read the inventory: {e}"),
                "check the path given with -i/--inventory",
            )])
        })?;
        Self::parse(&text, path, user_known_hosts)
    }

    /// Validates inventory text; `path` names the file in messages and anchors relative paths.
    pub fn parse(
        text: &str,
        path: &Path,
        user_known_hosts: Option<&Path>,
    ) -> Result<Inventory, InventoryErrors> {
        parse::parse_inventory(text, path, user_known_hosts.map(Path::to_path_buf))
    }

    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        self.tenants.iter().flat_map(|t| t.hosts.iter())
    }

    pub fn host_count(&self) -> usize {
        self.tenants.iter().map(|t| t.hosts.len()).sum()
    }

    /// Problems that do not make the inventory invalid but will bite at run time: a key,
    /// known_hosts or password file that is not a regular file (a FIFO blocks its reader, a
    /// device never ends; missing files are not warned about: known_hosts may not exist yet),
    /// and a WinRM host whose port is the other scheme's default (HTTPS on 5985, HTTP on 5986).
    pub fn warnings(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for host in self.hosts() {
            let HostTransport::WinRm(w) = &host.transport else {
                continue;
            };
            let (port, said, fix) = match (w.https, host.port) {
                (true, 5985) => (5985, "https = true", "port = 5986, or https = false"),
                (false, 5986) => (5986, "https = false", "https = true, or port = 5985"),
                _ => continue,
            };
            out.push(format!(
                "{}:{}: host {}: {said} on port {port}, WinRM's default port for the other scheme: the listener there likely does not speak it; set {fix}",
                self.path.display(),
                host.line,
                host.name
            ));
        }
        for host in self.hosts() {
            for (what, path) in host.local_files() {
                if !seen.insert(path.to_path_buf()) {
                    continue;
                }
                if let Ok(meta) = std::fs::metadata(path)
                    && let Some(why) = crate::fsread::not_regular_reason(&meta)
                {
                    out.push(format!(
                        "{}: {what} {} of host {} is {why}; ecfleet will refuse to read it (give a regular file)",
                        self.path.display(),
                        path.display(),
                        host.name
                    ));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
