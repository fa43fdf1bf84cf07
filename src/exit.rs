//! Every exit code of every command, in one table (docs/exit-codes.md): a code means the same
//! whatever the command. Library code returns these; only `main.rs` turns them into the
//! process's status.

/// Done: every selected host was worked on and nothing needs anyone (audit: no warning or
/// critical finding; backup, stage: every host done and verified; run: every host upgraded in
/// place verified; plan: the plan was made; inventory check: valid).
pub const OK: u8 = 0;

/// A host needs a person: the audit found warnings or criticals, or a run's host failed (a
/// phase failed, refused, operator timeout, version mismatch).
pub const ATTENTION: u8 = 1;

/// Not finished: some hosts could not be worked on (audit: unreachable; backup, stage: the
/// host's backup or staging failed) or are waiting (run: deferred, skipped, interrupted,
/// locked); running again, or `run --resume`, carries on.
pub const INCOMPLETE: u8 = 2;

/// Invalid input, or refused before any host was touched: inventory, flags, dates, catalog,
/// playbook, plan, installer, selection, share, not confirmed, a run another controller drives.
pub const INVALID_INPUT: u8 = 3;

/// The controller itself failed: no agent build, a report, ledger or plan file it cannot write.
pub const FAILURE: u8 = 4;

/// Upgraded, with the full synchronization Microsoft's upgrade queued still running at verify's
/// deadline (run: `sync-pending`, nothing failed or waiting); re-check with `run --resume`.
pub const SYNC_PENDING: u8 = 5;

/// Interrupted twice (Ctrl-C): the command detached from the hosts still being worked on.
pub const INTERRUPTED: u8 = 130;

/// `ecfleet plan --detailed-exitcode`: terraform's own table, asked for by that flag's name
/// (scripts written for `terraform plan -detailed-exitcode` read it): 0 nothing to do, 1 any
/// error, 2 changes pending.
pub mod terraform {
    pub const NO_CHANGES: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const CHANGES_PENDING: u8 = 2;
}
