//! Staging the installer: the first half of phase 3, and `ecfleet stage` on its own (to put the
//! installer on every host ahead of the window). The installer is read once on the controller
//! and shared by every host's transfer ([`Installer`]). Per host ([`stage`]): a host without
//! room for it plus 2 GiB is refused before any byte moves; the agent says whether the same
//! content (by SHA-256) is already staged (then nothing moves) or how much of a cut transfer
//! arrived (then only the rest is sent); after the transfer the agent checks the SHA-256, moves
//! the file into place in one rename, and on Windows checks that it is signed by Microsoft.
//! Where: `C:\ProgramData\ecfleet\staged\<sha256 prefix>\AzureADConnect.msi`, or the same below
//! `<lab_root>/.ecfleet/` on lab hosts.

pub mod fleet;

use std::path::Path;

use bytes::Bytes;
use ecfleet_proto::stage::{PARTIAL_SUFFIX, STAGE_KIND, Signature, StageResult, StageState};
use serde::Serialize;

use crate::catalog::EcVersion;
use crate::error::{ErrorKind, HostError, Phase};
use crate::msi::MsiInfo;
use crate::session::HostSession;
use crate::transport::Payload;

/// Room a host needs beyond the installer: the wizard unpacks and installs (docs/design/DOMAIN.md §3.4).
pub const HEADROOM_BYTES: u64 = 2 << 30;

/// The installer, read once, verified as Entra Connect, shared by every host's transfer.
pub struct Installer {
    pub info: MsiInfo,
    pub version: EcVersion,
    pub payload: Payload,
}

impl Installer {
    /// Reads `path` once (the MSI's own Property table for its identity, then the bytes), and
    /// refuses a file that is not Entra Connect, has no usable version, or misses `pin`.
    pub fn load(path: &Path, pin: Option<&str>) -> Result<Installer, String> {
        let info = crate::msi::read(path).map_err(|e| e.to_string())?;
        info.check_is_entra_connect().map_err(|e| e.to_string())?;
        if let Some(pin) = pin {
            info.check_pin(pin).map_err(|e| e.to_string())?;
        }
        let version = info.version().ok_or_else(|| {
            format!(
                "{}: ProductVersion {:?} is not a build number",
                path.display(),
                info.product_version
            )
        })?;
        let data =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let payload = Payload::new(Bytes::from(data));
        if payload.sha256 != info.sha256 {
            return Err(format!(
                "{} changed while it was read (SHA-256 {} then {}); stage a file nobody is writing",
                path.display(),
                info.sha256,
                payload.sha256
            ));
        }
        Ok(Installer {
            info,
            version,
            payload,
        })
    }

    pub fn size(&self) -> u64 {
        self.payload.data.len() as u64
    }
}

/// What staging did on one host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Staged {
    /// Where the verified installer is on the host.
    pub path: String,
    /// The same content was already there: nothing was sent.
    pub already_there: bool,
    /// Bytes sent in this run.
    pub sent: u64,
    /// Bytes of a cut transfer that were kept (sent earlier).
    pub resumed_from: u64,
    /// The Authenticode check on Windows hosts (null on lab hosts).
    pub signature: Option<Signature>,
}

fn stage_error(kind: ErrorKind, message: impl Into<String>) -> HostError {
    HostError::new(kind, Phase::Stage, message)
}

async fn check(
    session: &mut HostSession<'_>,
    path: &str,
    installer: &Installer,
) -> Result<StageResult, HostError> {
    let size = installer.size().to_string();
    let result: StageResult = session
        .agent(
            "stage",
            &[
                "--path",
                path,
                "--sha256",
                &installer.payload.sha256,
                "--size",
                &size,
            ],
        )
        .await?;
    if result.kind != STAGE_KIND {
        return Err(stage_error(
            ErrorKind::Agent,
            format!(
                "the agent answered a {} document, not {STAGE_KIND}",
                crate::checks::shown(&result.kind)
            ),
        ));
    }
    Ok(result)
}

/// Stages the installer on the session's host. `free_bytes`: the system drive's free space from
/// the host's facts, when known.
pub async fn stage(
    session: &mut HostSession<'_>,
    installer: &Installer,
    free_bytes: Option<u64>,
    drive: &str,
) -> Result<Staged, HostError> {
    let needed = installer.size() + HEADROOM_BYTES;
    if let Some(free) = free_bytes
        && free < needed
    {
        return Err(stage_error(
            ErrorKind::Refused,
            format!(
                "{drive} has {:.1} GiB free; staging and installing {} ({:.0} MiB) needs {:.1} GiB: free space first",
                free as f64 / (1u64 << 30) as f64,
                installer.info.product_version,
                installer.size() as f64 / (1u64 << 20) as f64,
                needed as f64 / (1u64 << 30) as f64
            ),
        ));
    }
    let path = session
        .staged_path(&installer.payload.sha256, "AzureADConnect.msi")
        .await?;
    let first = check(session, &path, installer).await?;
    let (mut sent, mut resumed_from) = match first.state {
        StageState::Present | StageState::Verified => {
            let already_there = first.state == StageState::Present;
            return finish(path, first, 0, 0, already_there);
        }
        StageState::Partial => (0, first.bytes),
        StageState::Absent => (0, 0),
    };
    let partial = format!("{path}{PARTIAL_SUFFIX}");
    sent += session.put_from(&installer.payload, &partial).await?;
    let mut second = check(session, &path, installer).await?;
    if second.state == StageState::Absent && resumed_from > 0 {
        // The kept beginning was wrong (the agent removed it): send the whole file once more.
        resumed_from = 0;
        sent += session.put_from(&installer.payload, &partial).await?;
        second = check(session, &path, installer).await?;
    }
    match second.state {
        StageState::Present | StageState::Verified => {
            finish(path, second, sent, resumed_from, false)
        }
        state => Err(stage_error(
            ErrorKind::Protocol,
            format!(
                "the installer did not arrive intact at {path} ({state:?} after sending {sent} bytes{})",
                second
                    .removed
                    .map(|r| format!(": {}", crate::checks::shown(&r)))
                    .unwrap_or_default()
            ),
        )),
    }
}

fn finish(
    path: String,
    result: StageResult,
    sent: u64,
    resumed_from: u64,
    already_there: bool,
) -> Result<Staged, HostError> {
    if let Some(sig) = &result.signature
        && !sig.is_microsoft()
    {
        return Err(stage_error(
            ErrorKind::Refused,
            format!(
                "the staged installer's Authenticode signature is {} (signer {}): not signed by Microsoft Corporation; download AzureADConnect.msi again",
                crate::checks::shown(&sig.status),
                crate::checks::shown(sig.signer.as_deref().unwrap_or("none"))
            ),
        ));
    }
    Ok(Staged {
        path,
        already_there,
        sent,
        resumed_from,
        signature: result.signature,
    })
}

/// Where a staged installer's folder is named from: the first 16 hex digits of its SHA-256.
pub fn staged_folder(sha256: &str) -> String {
    sha256
        .chars()
        .take(16)
        .collect::<String>()
        .to_ascii_lowercase()
}
