//! Every exit code of every command, in one table (docs/exit-codes.md). Library code returns
//! these; only `main.rs` turns them into the process's status.

/// `ecfleet audit` and `ecfleet inventory check` (and the default codes of the other commands).
pub mod audit {
    /// Every host audited, no warning or critical finding; the inventory is valid.
    pub const OK: u8 = 0;
    /// Warnings or criticals found (every host reached).
    pub const FINDINGS: u8 = 1;
    /// Some hosts could not be audited; takes precedence over 1.
    pub const UNREACHABLE: u8 = 2;
    /// Invalid input: inventory, flags, dates, catalog, playbook, selection.
    pub const INVALID_INPUT: u8 = 3;
    /// The controller itself failed (no agent build, share not writable, out of resources).
    pub const FAILURE: u8 = 4;
}

/// `ecfleet plan`: 0 (the plan was made), 3 and 4 as for the audit; with `--detailed-exitcode`
/// 0 nothing to do, 2 changes pending, 1 any error.
pub mod plan {
    pub const OK: u8 = 0;
    pub const DETAILED_ERROR: u8 = 1;
    pub const DETAILED_PENDING: u8 = 2;
}

/// `ecfleet backup`: 0 every selected host backed up and verified on the share; 2 some hosts
/// could not be; 3 and 4 as for the audit.
pub mod backup {
    pub const OK: u8 = 0;
    pub const FAILED_HOSTS: u8 = 2;
}

/// `ecfleet run`: 0 every host upgraded in place was verified; 1 some failed (a phase failed,
/// refused, operator timeout, version mismatch); 2 none failed but some are waiting (not
/// started: interrupted, budget spent); 3 invalid input or the run refused as a whole; 4 the
/// controller failed; 5 none failed or waiting, some `sync-pending`.
pub mod run {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const WAITING: u8 = 2;
    /// None failed or waiting, but some hosts are `sync-pending`: upgraded, with the full
    /// synchronization Microsoft's upgrade queued still running (re-check with `--resume`).
    pub const SYNC_PENDING: u8 = 5;
}

/// Interrupted twice (Ctrl-C): the run detached from the hosts still being worked on.
pub const INTERRUPTED: u8 = 130;
