//! Where facts come from: the real Windows host (`windows`) or a simulated one kept in a
//! directory (`lab`). Both produce the same [`ecfleet_proto::Facts`] document.

pub mod lab;
mod lab_backup;
mod lab_operator;
mod runner;
mod windows;

use std::path::PathBuf;

pub enum Backend {
    Windows,
    Lab(PathBuf),
}

impl Backend {
    /// The backend for the machine the agent runs on, when none is named.
    pub fn native() -> Self {
        Backend::Windows
    }
}

pub use ecfleet_proto::edited_after_install;

/// Collects facts and renders them as JSON (or, for injected faults, whatever the fault says).
pub fn collect_facts(backend: &Backend) -> Result<String, String> {
    let facts = match backend {
        Backend::Windows => windows::collect()?,
        Backend::Lab(root) => match lab::collect(root)? {
            lab::LabOutput::Facts(f) => *f,
            lab::LabOutput::Raw(text) => return Ok(text),
        },
    };
    serde_json::to_string(&facts).map_err(|e| format!("cannot encode facts: {e}"))
}

/// Gathers a configuration backup into `out` (see [`crate::backup`]).
pub fn gather_backup(
    backend: &Backend,
    out: &std::path::Path,
) -> Result<crate::backup::Gathered, String> {
    match backend {
        Backend::Windows => windows::backup::gather(out),
        Backend::Lab(root) => lab_backup::gather(root, out),
    }
}

/// The installer's Authenticode signature: checked on Windows (`Get-AuthenticodeSignature`);
/// a lab host has none to check unless `faults.installer_signature` says what its
/// `Get-AuthenticodeSignature` would answer.
pub fn signature(
    backend: &Backend,
    path: &std::path::Path,
) -> Result<Option<ecfleet_proto::stage::Signature>, String> {
    match backend {
        Backend::Windows => windows::signature(path).map(Some),
        Backend::Lab(root) => Ok(lab::read_machine(root)
            .ok()
            .and_then(|m| m.faults.installer_signature)),
    }
}

/// Free space on the volume that holds `path`'s folder, when the host can tell: the system
/// drive of `machine.toml` on a lab host.
pub fn free_bytes(backend: &Backend, path: &std::path::Path) -> Option<u64> {
    match backend {
        Backend::Windows => windows::disk::free_bytes(path),
        Backend::Lab(root) => lab::read_machine(root).ok().map(|m| m.disk.free_bytes),
    }
}

/// Records that the operator was asked to run `installer` (version `version`); on a lab host the
/// lab's operator is scheduled too.
pub fn handoff(
    backend: &Backend,
    installer: &std::path::Path,
    version: &str,
) -> Result<ecfleet_proto::upgrade::HandoffResult, String> {
    match backend {
        Backend::Windows => windows::handoff(installer),
        Backend::Lab(root) => lab_operator::handoff(root, installer, version),
    }
}

/// What `restart-adsync` answers when the wizard or the Entra Connect installer runs: the
/// wizard migrates the configuration after it replaced the binaries, and a restart then would
/// cut into it (docs/design/DOMAIN.md §8b, S41). The controller never asks then; this is the
/// host's own guard.
pub const UPGRADE_RUNNING_REFUSAL: &str = "refused to restart ADSync: the Entra Connect wizard (AzureADConnect.exe) or its installer is running; an upgrade is under way";

/// Restarts the ADSync service (once; the controller decides when), never while an upgrade
/// runs ([`UPGRADE_RUNNING_REFUSAL`]).
pub fn restart_adsync(backend: &Backend) -> Result<ecfleet_proto::upgrade::RestartResult, String> {
    match backend {
        Backend::Windows => windows::restart_adsync(),
        Backend::Lab(root) => lab_operator::restart_adsync(root),
    }
}
