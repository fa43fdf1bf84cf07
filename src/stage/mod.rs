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
use ecfleet_proto::stage::{PARTIAL_SUFFIX, Signature, StageResult, StageState};
use ecfleet_proto::step::Step;
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
        // Read and hashed once: what is checked below is what will be sent.
        let data =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let payload = Payload::new(Bytes::from(data));
        let info = crate::msi::read_bytes(path, &payload.data, payload.sha256.clone())
            .map_err(|e| e.to_string())?;
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
    /// Where the transfer stopped and was resumed within this stage (a dropped connection).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interruptions: Vec<String>,
    /// The Authenticode check on Windows hosts (null on lab hosts).
    pub signature: Option<Signature>,
    /// How the bytes went where the transport has more than one way (WinRM: `host pull
    /// (HTTPS from the controller)`, or `WinRM stdin (host pull failed: <why>)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<String>,
}

fn stage_error(kind: ErrorKind, message: impl Into<String>) -> HostError {
    HostError::new(kind, Phase::Stage, message)
}

async fn check(
    session: &mut HostSession<'_>,
    path: &str,
    installer: &Installer,
    discard: bool,
) -> Result<StageResult, HostError> {
    session
        .agent::<StageResult>(&Step::Stage {
            path: path.to_string(),
            sha256: installer.payload.sha256.clone(),
            size: installer.size(),
            discard,
        })
        .await
}

/// How many times one stage sends (or resumes) the installer before it gives up: a dropped
/// connection is resumed where it stopped; after the last try `--resume` still goes on from
/// there.
pub const TRANSFER_ATTEMPTS: u32 = 3;

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
                "{drive} has {} free; staging and installing {} ({:.0} MiB) needs {}: free space first",
                gib(free),
                installer.info.product_version,
                installer.size() as f64 / (1u64 << 20) as f64,
                gib(needed)
            ),
        ));
    }
    let path = session
        .staged_path(&installer.payload.sha256, "AzureADConnect.msi")
        .await?;
    let mut now = check(session, &path, installer, false).await?;
    if matches!(now.state, StageState::Present | StageState::Verified) {
        let already_there = now.state == StageState::Present;
        return finish(path, now, Transfer::default(), already_there);
    }
    let mut transfer = Transfer {
        resumed_from: if now.state == StageState::Partial {
            now.bytes
        } else {
            0
        },
        ..Transfer::default()
    };
    let partial = format!("{path}{PARTIAL_SUFFIX}");
    for _ in 0..TRANSFER_ATTEMPTS {
        let had = if now.state == StageState::Partial {
            now.bytes
        } else {
            0
        };
        match session.put_from(&installer.payload, &partial).await {
            Ok(sent) => {
                transfer.sent += sent;
                transfer.method = session.transfer_method();
                now = check(session, &path, installer, false).await?;
            }
            Err(cut) => {
                now = after_cut(session, &path, installer, drive, &cut).await?;
                transfer.sent += now.bytes.saturating_sub(had);
                transfer.interruptions.push(format!(
                    "the transfer stopped at {} of {} bytes ({}); resumed",
                    now.bytes,
                    installer.size(),
                    cut.message
                ));
            }
        }
        match now.state {
            StageState::Present | StageState::Verified => {
                return finish(path, now, transfer, false);
            }
            // The kept beginning was wrong (the agent removed it): the next try sends it all,
            // and the result says why the bytes sent exceed the file's size.
            StageState::Absent => {
                transfer.resumed_from = 0;
                transfer.interruptions.push(format!(
                    "what arrived did not match the installer{}; sent again from the start",
                    now.removed
                        .as_deref()
                        .map(|r| format!(" ({})", crate::checks::shown(r)))
                        .unwrap_or_default()
                ));
            }
            StageState::Partial => {}
        }
    }
    Err(stage_error(
        ErrorKind::Protocol,
        format!(
            "the installer did not arrive intact at {path} after {TRANSFER_ATTEMPTS} tries ({:?}, {} bytes there{}{}); `ecfleet run --resume` goes on from there",
            now.state,
            now.bytes,
            now.removed
                .as_deref()
                .map(|r| format!(": {}", crate::checks::shown(r)))
                .unwrap_or_default(),
            transfer
                .interruptions
                .last()
                .map(|i| format!("; {i}"))
                .unwrap_or_default()
        ),
    ))
}

/// After a transfer stopped: a fresh connection (the old one may be gone), and what arrived.
/// A host whose disk filled gets the received part removed, and the stage fails with why.
async fn after_cut(
    session: &mut HostSession<'_>,
    path: &str,
    installer: &Installer,
    drive: &str,
    cut: &HostError,
) -> Result<StageResult, HostError> {
    session.reconnect().await.map_err(|e| {
        stage_error(
            e.kind,
            format!(
                "the transfer stopped ({}) and the host cannot be reached again: {}",
                cut.message, e.message
            ),
        )
    })?;
    let now = check(session, path, installer, false).await?;
    let missing = installer.size().saturating_sub(now.bytes);
    let Some(free) = now.free_bytes.filter(|free| *free < missing) else {
        return Ok(now);
    };
    let discarded = check(session, path, installer, true).await;
    Err(stage_error(
        ErrorKind::Refused,
        format!(
            "{drive} filled while the installer was staged: {} of {} bytes arrived, then the host refused the rest ({}) and has {} free; {}. Free space on {drive}, then run again",
            now.bytes,
            installer.size(),
            cut.message,
            gib(free),
            match discarded {
                Ok(_) => "the received part was removed to give the space back".to_string(),
                Err(e) => format!(
                    "the received part could not be removed ({}): delete {path}{PARTIAL_SUFFIX}",
                    e.message
                ),
            }
        ),
    ))
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// What moved during one stage.
#[derive(Debug, Default)]
struct Transfer {
    sent: u64,
    resumed_from: u64,
    interruptions: Vec<String>,
    method: Option<String>,
}

fn finish(
    path: String,
    result: StageResult,
    transfer: Transfer,
    already_there: bool,
) -> Result<Staged, HostError> {
    if let Some(sig) = &result.signature
        && let Some(why) = sig.problem()
    {
        return Err(stage_error(
            ErrorKind::Refused,
            format!(
                "the staged installer's Authenticode signature is not Microsoft's ({}, type {}): {}",
                crate::checks::shown(&sig.status),
                crate::checks::shown(sig.signature_type.as_deref().unwrap_or("unknown")),
                crate::checks::shown(&why)
            ),
        ));
    }
    Ok(Staged {
        path,
        already_there,
        sent: transfer.sent,
        resumed_from: transfer.resumed_from,
        interruptions: transfer.interruptions,
        signature: result.signature,
        transfer: transfer.method,
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
