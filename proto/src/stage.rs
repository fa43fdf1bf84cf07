//! The agent's `stage` step: where the installer stands on the host. The controller sends the
//! installer to `<path>.ecfleet-partial` (resuming a cut transfer); the agent checks its SHA-256
//! and moves it to `<path>` in one rename, and on Windows checks its Authenticode signature.

use serde::{Deserialize, Serialize};

pub const STAGE_SCHEMA_VERSION: u32 = 1;
pub const STAGE_KIND: &str = "ecfleet-stage";
/// The suffix of the file being received.
pub const PARTIAL_SUFFIX: &str = ".ecfleet-partial";

/// Where the installer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageState {
    /// `<path>` holds the expected content (it was already there).
    Present,
    /// The received file had the expected content and was moved to `<path>` now.
    Verified,
    /// Part of it arrived: `bytes` of it, to be continued.
    Partial,
    /// Nothing usable there (a wrong or oversized file was removed).
    Absent,
}

/// The installer's Authenticode signature (Windows hosts only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// `Get-AuthenticodeSignature`'s Status: `Valid`, `NotSigned`, `HashMismatch`, …
    pub status: String,
    /// The signer certificate's subject.
    pub signer: Option<String>,
}

impl Signature {
    /// Valid, and signed by Microsoft Corporation.
    pub fn is_microsoft(&self) -> bool {
        self.status == "Valid"
            && self
                .signer
                .as_deref()
                .is_some_and(|s| s.contains("O=Microsoft Corporation"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageResult {
    pub schema_version: u32,
    pub kind: String,
    pub path: String,
    pub state: StageState,
    /// Bytes of the file (partial: how many arrived).
    pub bytes: u64,
    /// Why a file that was there was removed (wrong content, too large).
    pub removed: Option<String>,
    /// On Windows, once the content is right; `None` on lab hosts (nothing to check there).
    pub signature: Option<Signature>,
    /// Free space on the volume the installer is received on, when the host can tell: how the
    /// controller tells a full disk from a cut transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_bytes: Option<u64>,
}
