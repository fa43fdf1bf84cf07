//! The TOML inventory: defaults, the central share, tenants and their hosts. Parsed with spans
//! and validated into domain types in one pass that collects every error (file, line, key and a
//! fix) instead of stopping at the first. Secrets are references, never values.

mod parse;
pub mod secret;

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

/// One Entra Connect server, with every default already applied.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub tenant: String,
    pub address: String,
    pub port: u16,
    pub role: Role,
    pub transport: TransportKind,
    pub user: String,
    pub identity_file: Option<PathBuf>,
    pub known_hosts: PathBuf,
    pub password: Option<SecretRef>,
    /// Set for simulated hosts: the directory (on that host) holding `machine.toml`.
    pub lab_root: Option<String>,
    pub os: Option<RemoteOs>,
    /// Policy: below this OS the host is migrated, not upgraded in place (host, else tenant,
    /// else `[defaults]`; the plan playbook's `min_os` applies when none is set).
    pub min_os: Option<MinOs>,
    pub connect_timeout: Duration,
    /// Line of the `[[tenant.host]]` header, for messages.
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct Tenant {
    pub name: String,
    pub maintenance_window: Option<MaintenanceWindow>,
    /// Policy: hosts of this tenant below this OS are migrated (unless a host says otherwise).
    pub min_os: Option<MinOs>,
    pub contacts: Vec<String>,
    pub hosts: Vec<Host>,
}

#[derive(Debug, Clone)]
pub struct Inventory {
    pub path: PathBuf,
    /// Central share (a local or mounted directory).
    pub share: Option<PathBuf>,
    /// How many hosts are worked on at once.
    pub concurrency: usize,
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
}

#[cfg(test)]
mod tests;
