//! What a run records and reports: each host's outcome and phases (its record in the ledger,
//! `hosts/<tenant>/<host>.json`), and the run's report (the ledger's `summary.json`, the
//! JSON of `run --format json`, docs/json-output.md).

use serde::{Deserialize, Serialize};

use crate::error::Phase;
use crate::inventory::{Host, Role};
use crate::plan::{Action, PlannedHost};

pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// How a host's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostOutcome {
    /// On the target, the versions agree, the first syncs since the upgrade succeeded.
    Verified,
    /// A phase failed; the record says which and why.
    Failed,
    /// Not upgraded: its facts changed since the plan, it is no longer an in-place host, or its
    /// tenant's staging server did not pass verification.
    Refused,
    /// The operator did not finish within the upgrade deadline (the upgrade was not touched).
    OperatorTimeout,
    /// The configuration version still disagrees with the engine's (after one ADSync restart).
    VersionMismatch,
    /// The plan does not upgrade it in place (`migrate`, `two-hop`, `blocked`, `up-to-date`).
    Untouched,
    /// Not started: the failure budget was spent.
    Skipped,
    /// Not started or stopped at a safe point: the run was interrupted.
    Interrupted,
    /// Its tenant's maintenance window is closed: phases 1 and 2 ran, phase 3 did not; the
    /// message says when the window opens.
    Deferred,
    /// Upgraded, the versions agree, but the full import and full synchronization Microsoft's
    /// upgrade queued (out-of-box rules changed) had not ended by verify's deadline: neither
    /// failed nor verified. `run --resume` re-checks it without touching the host.
    SyncPending,
    /// Not touched: another controller drives the host (another run, or a resume of this one),
    /// or a run whose controller is gone left it in the middle of its upgrade. The message names
    /// that run and controller.
    Locked,
    /// Only in `ecfleet report` of a run whose controller is still working: the host is not
    /// finished yet; its open phase says where it stands.
    InProgress,
}

impl HostOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            HostOutcome::Verified => "verified",
            HostOutcome::Failed => "failed",
            HostOutcome::Refused => "refused",
            HostOutcome::OperatorTimeout => "operator-timeout",
            HostOutcome::VersionMismatch => "version-mismatch",
            HostOutcome::Untouched => "untouched",
            HostOutcome::Skipped => "skipped",
            HostOutcome::Interrupted => "interrupted",
            HostOutcome::Deferred => "deferred",
            HostOutcome::SyncPending => "sync-pending",
            HostOutcome::Locked => "locked",
            HostOutcome::InProgress => "in-progress",
        }
    }

    /// Whether the host's run is over (a resumed run leaves it as it is).
    pub fn is_final(self) -> bool {
        self.is_failure() || matches!(self, HostOutcome::Verified | HostOutcome::Untouched)
    }

    pub fn is_failure(self) -> bool {
        matches!(
            self,
            HostOutcome::Failed
                | HostOutcome::Refused
                | HostOutcome::OperatorTimeout
                | HostOutcome::VersionMismatch
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseRecord {
    /// `preflight`, `backup`, `stage`, `upgrade`, `verify`.
    pub phase: Phase,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// `ok`, or the host's outcome when the phase ended it.
    pub outcome: Option<String>,
    pub detail: Option<String>,
}

/// One host's record: in the ledger (`hosts/<tenant>/<host>.json`) and in the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostRecord {
    pub tenant: String,
    pub host: String,
    pub role: Role,
    pub action: Action,
    pub from: Option<String>,
    pub to: Option<String>,
    pub wave: u32,
    pub outcome: HostOutcome,
    pub message: String,
    pub phases: Vec<PhaseRecord>,
    /// The versions before the upgrade.
    pub baseline: Option<super::host::Baseline>,
    /// The verified pre-upgrade backup (its folder and name).
    pub backup: Option<String>,
    /// Where the verified installer is on the host.
    pub staged: Option<String>,
    /// What the operator was told to do.
    pub operator: Option<String>,
    /// When the upgrade was handed to the operator (the host's clock): from then on a resumed
    /// run only watches; it never hands off a second time.
    #[serde(default)]
    pub handed_off_at: Option<String>,
    /// When the host was last seen on the old version (the host's clock): syncs that started
    /// after it count for verify.
    #[serde(default)]
    pub last_old_seen: Option<String>,
    /// What the operator should still look at after a verified upgrade (a Health Agent left
    /// disabled, with the command that re-enables it).
    #[serde(default)]
    pub warnings: Vec<String>,
    pub finished_at: Option<String>,
}

impl HostRecord {
    pub(super) fn new(host: &Host, planned: &PlannedHost) -> Self {
        HostRecord {
            role: host.role,
            ..HostRecord::from_plan(planned)
        }
    }

    /// A record with what the plan says of a host.
    pub(super) fn from_plan(planned: &PlannedHost) -> Self {
        HostRecord {
            tenant: planned.tenant.clone(),
            host: planned.host.clone(),
            role: planned.role,
            action: planned.action,
            from: planned.from.clone(),
            to: planned.to.clone(),
            wave: planned.wave,
            outcome: HostOutcome::Interrupted,
            message: "in progress".into(),
            phases: Vec::new(),
            baseline: None,
            backup: None,
            staged: None,
            operator: None,
            handed_off_at: None,
            last_old_seen: None,
            warnings: Vec::new(),
            finished_at: None,
        }
    }

    /// Whether `phase` ended well (a resumed run does not do it again).
    pub fn done(&self, phase: Phase) -> bool {
        self.phases
            .iter()
            .any(|p| p.phase == phase && p.outcome.as_deref() == Some("ok"))
    }

    /// A record picked up by `--resume`: a phase the killed controller left open is closed as
    /// `interrupted`.
    pub(super) fn resumed(mut self) -> Self {
        let now = {
            let t = jiff::Timestamp::now();
            t.round(jiff::Unit::Second).unwrap_or(t).to_string()
        };
        for p in self.phases.iter_mut().filter(|p| p.ended_at.is_none()) {
            p.ended_at = Some(now.clone());
            p.outcome = Some("interrupted".into());
            p.detail = Some("the controller stopped; carried on by --resume".into());
        }
        self.outcome = HostOutcome::Interrupted;
        self
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    pub hosts: usize,
    pub verified: usize,
    pub failed: usize,
    pub untouched: usize,
    pub waiting: usize,
    /// Upgraded, waiting for the full synchronization Microsoft's upgrade queued.
    #[serde(default)]
    pub sync_pending: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub schema_version: u32,
    pub kind: String,
    pub run_id: String,
    /// The ledger's folder on the share.
    pub ledger: String,
    pub target: String,
    pub started_at: String,
    pub finished_at: String,
    pub summary: RunSummary,
    pub hosts: Vec<HostRecord>,
    /// Ledger writes that failed (the share was unwritable for a while).
    pub ledger_errors: Vec<String>,
    /// `ecfleet report` of a run a live controller still drives: which (`in progress (pid …)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<String>,
}

impl RunReport {
    /// 0 every upgraded host verified; 1 some failed; 2 some waiting (interrupted, skipped);
    /// 5 none failed or waiting, some `sync-pending` (docs/exit-codes.md).
    pub fn exit_code(&self) -> u8 {
        if self.summary.failed > 0 {
            crate::exit::ATTENTION
        } else if self.summary.waiting > 0 {
            crate::exit::INCOMPLETE
        } else if self.summary.sync_pending > 0 {
            crate::exit::SYNC_PENDING
        } else {
            crate::exit::OK
        }
    }
}

impl RunSummary {
    pub fn of(records: &[HostRecord]) -> RunSummary {
        let count = |f: fn(HostOutcome) -> bool| records.iter().filter(|r| f(r.outcome)).count();
        RunSummary {
            hosts: records.len(),
            verified: count(|o| o == HostOutcome::Verified),
            failed: count(HostOutcome::is_failure),
            untouched: count(|o| o == HostOutcome::Untouched),
            waiting: count(|o| {
                matches!(
                    o,
                    HostOutcome::Skipped
                        | HostOutcome::Interrupted
                        | HostOutcome::Deferred
                        | HostOutcome::Locked
                        | HostOutcome::InProgress
                )
            }),
            sync_pending: count(|o| o == HostOutcome::SyncPending),
        }
    }
}
