//! The agent's steps around the upgrade itself (phase 3's second half and phase 4): `handoff`
//! records on the host that the operator was asked to run the installer (and on a lab host
//! schedules the lab's operator), `restart-adsync` restarts the sync service once when the
//! configuration version lags behind the engine's.

use serde::{Deserialize, Serialize};

pub const HANDOFF_KIND: &str = "ecfleet-handoff";
pub const RESTART_KIND: &str = "ecfleet-restart";
/// The schema of both documents.
pub const UPGRADE_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoffResult {
    pub kind: String,
    #[serde(default)]
    pub schema_version: u32,
    /// When the hand-off was recorded (RFC 3339 UTC, the host's clock).
    pub at: String,
    /// The staged installer is where the operator is told to find it.
    pub installer_present: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartResult {
    pub kind: String,
    #[serde(default)]
    pub schema_version: u32,
    /// The ADSync service is running again.
    pub running: bool,
    pub message: String,
    /// Nothing was done: the wizard or the Entra Connect installer runs on the host, and a
    /// restart would cut into the wizard's configuration migration (docs/design/DOMAIN.md §8b,
    /// S41). The host's own guard; the controller never asks then.
    #[serde(default)]
    pub refused_upgrade_running: bool,
}

impl RestartResult {
    /// The answer of a host that refused the restart because an upgrade runs.
    pub fn refused(message: &str) -> Self {
        RestartResult {
            kind: RESTART_KIND.into(),
            schema_version: UPGRADE_SCHEMA_VERSION,
            running: false,
            message: message.into(),
            refused_upgrade_running: true,
        }
    }
}
