//! The agent's steps around the upgrade itself (phase 3's second half and phase 4): `handoff`
//! records on the host that the operator was asked to run the installer (and on a lab host
//! schedules the lab's operator), `restart-adsync` restarts the sync service once when the
//! configuration version lags behind the engine's.

use serde::{Deserialize, Serialize};

pub const HANDOFF_KIND: &str = "ecfleet-handoff";
pub const RESTART_KIND: &str = "ecfleet-restart";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoffResult {
    pub kind: String,
    /// When the hand-off was recorded (RFC 3339 UTC, the host's clock).
    pub at: String,
    /// The staged installer is where the operator is told to find it.
    pub installer_present: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartResult {
    pub kind: String,
    /// The ADSync service is running again.
    pub running: bool,
    pub message: String,
}
