//! One host's way through the four phases (docs/run.md), on one engine step:
//!
//! 1. **preflight**: fresh facts; the plan's fingerprint must still match (else `refused`, with
//!    the fields that changed), and the rules must still say `in-place`; the baseline readings
//!    are recorded.
//! 2. **backup**: the pre-upgrade backup, fetched and verified on the share. The gate: nothing
//!    below runs without it.
//! 3. **stage**, then **upgrade**: the installer staged and verified on the host; an active
//!    server waits for its tenant's staging server to have passed phase 4; then the operator is
//!    told exactly what to do, and the host is watched (through the session kept since
//!    preflight, a fresh one when it broke, so a reboot or a dropped connection only delays the
//!    watch) until the new version is in place. At the deadline the host is
//!    `operator-timeout`: never interrupted.
//! 4. **verify**: engine version = target; the configuration version agrees (else ADSync is
//!    restarted once); a successful Delta Import and, off staging, Export that started after the
//!    host was last seen on the old version.

use std::time::Duration;

use ecfleet_proto::Facts;
use ecfleet_proto::step::Step;
use ecfleet_proto::upgrade::{HandoffResult, RestartResult};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{HostOutcome, HostRecord, PhaseRecord, RunContext};
use crate::backup::{self, BackupSettings, Tag};
use crate::catalog::EcVersion;
use crate::checks::{self, is_export, is_import};
use crate::engine::{Event, StepContext};
use crate::error::{ErrorKind, HostError, Phase};
use crate::inventory::Host;
use crate::plan::{Action, Basis, PlannedHost, rules};
use crate::session::HostSession;

/// A phase's end: the host goes on, or stops with an outcome and why.
type PhaseResult<T> = Result<T, (HostOutcome, String)>;

fn failed(e: HostError) -> (HostOutcome, String) {
    let outcome = match e.kind {
        ErrorKind::Interrupted => HostOutcome::Interrupted,
        _ => HostOutcome::Failed,
    };
    (outcome, e.message)
}

fn now() -> String {
    let t = jiff::Timestamp::now();
    t.round(jiff::Unit::Second).unwrap_or(t).to_string()
}

/// Everything one host's phases share.
struct Walk<'c, 'h> {
    host: &'h Host,
    planned: &'h PlannedHost,
    cx: &'c RunContext<'c>,
    ctx: &'c StepContext,
    record: HostRecord,
}

impl Walk<'_, '_> {
    fn notice(&self, message: impl Into<String>) {
        self.cx.events.send(Event::Notice {
            host: self.host.name.clone(),
            message: message.into(),
        });
    }

    /// Starts a phase: ledger event, record.
    fn start(&mut self, phase: Phase) {
        self.record.phases.push(PhaseRecord {
            phase,
            started_at: now(),
            ended_at: None,
            outcome: None,
            detail: None,
        });
        self.cx.log(self.host, phase, "start", None, None);
        self.cx.save(&self.record);
    }

    /// Ends the current phase with `outcome` and `detail`. The record goes to the ledger
    /// before the journal's line: a line on the share means its record is there too (the
    /// ledger's writer writes a group's records before its lines), so a resumed run never
    /// does again a phase the journal says ended well.
    fn end(&mut self, outcome: &str, detail: Option<String>) {
        let Some(p) = self.record.phases.last_mut() else {
            self.cx.save(&self.record);
            return;
        };
        p.ended_at = Some(now());
        p.outcome = Some(outcome.into());
        // A detail the phase's `keep` gave stays unless the end has its own.
        if detail.is_some() {
            p.detail = detail.clone();
        }
        let phase = p.phase;
        self.cx.save(&self.record);
        self.cx.log(self.host, phase, "end", Some(outcome), detail);
    }

    /// Runs phase `name` within `limit`, recording its end; on success `keep` first puts what
    /// the phase gave into the record, so that the phase's end and its result are one record.
    async fn phase<T>(
        &mut self,
        name: Phase,
        limit: Duration,
        work: impl Future<Output = PhaseResult<T>>,
        keep: impl FnOnce(&mut HostRecord, &T),
    ) -> PhaseResult<T> {
        self.start(name);
        let until = self.ctx.deadline.min(Instant::now() + limit);
        let result = match tokio::time::timeout_at(until, work).await {
            Ok(r) => r,
            Err(_) => Err((
                HostOutcome::Failed,
                format!("{name} did not finish within {} s", limit.as_secs()),
            )),
        };
        match &result {
            Ok(value) => {
                keep(&mut self.record, value);
                self.end("ok", None)
            }
            Err((outcome, why)) => self.end(outcome.as_str(), Some(why.clone())),
        }
        result
    }
}

/// Runs the four phases on one in-place host. The record always comes back (also when a phase
/// failed): it is what the ledger and the report show.
pub async fn upgrade_host(
    host: &Host,
    planned: &PlannedHost,
    cx: &RunContext<'_>,
    ctx: StepContext,
    earlier: Option<HostRecord>,
) -> HostRecord {
    let record = earlier.unwrap_or_else(|| HostRecord::new(host, planned));
    let mut walk = Walk {
        host,
        planned,
        cx,
        ctx: &ctx,
        record,
    };
    let outcome = walk_phases(&mut walk).await;
    let (outcome, message) = match outcome {
        Ok(()) => (
            HostOutcome::Verified,
            format!("verified on {}", walk.cx.target),
        ),
        Err(e) => e,
    };
    walk.record.outcome = outcome;
    walk.record.message = message;
    walk.record.finished_at = Some(now());
    walk.cx.save(&walk.record);
    walk.record
}

/// The phases through one session, kept from preflight to verify (a fresh one when it broke:
/// a host that reboots during its upgrade).
async fn walk_phases(w: &mut Walk<'_, '_>) -> PhaseResult<()> {
    let mut looker = Looker::new(w.host, w.cx.connector);
    let walked = walk_phases_with(w, &mut looker).await;
    looker.close().await;
    walked
}

async fn walk_phases_with<'c: 's, 'h: 's, 's>(
    w: &mut Walk<'c, 'h>,
    looker: &mut Looker<'s>,
) -> PhaseResult<()> {
    let d = w.cx.playbook.deadlines.clone();
    let (host, cx) = (w.host, w.cx);
    if w.record.handed_off_at.is_none() {
        looker.keep(before_handoff(w).await?);
    } else {
        // Re-attached to a host already handed to the operator: watch, never hand off again.
        w.cx.events.send(Event::HandedOff {
            host: host.name.clone(),
            address: host.address.clone(),
        });
        w.notice(format!(
            "still handed to the operator (since {}): watching. What the operator was told: {}",
            w.record.handed_off_at.clone().unwrap_or_default(),
            w.record.operator.clone().unwrap_or_default()
        ));
    }
    if !w.record.done(Phase::Upgrade) {
        let from = w
            .record
            .last_old_seen
            .clone()
            .or(w.record.handed_off_at.clone())
            .unwrap_or_default();
        let backup = w.record.backup.clone().unwrap_or_default();
        // Told about when it waits longer than `handoff_after`; cancelled when it ends.
        let _waiting = cx.handoff_notices.watch(
            &host.tenant,
            &host.name,
            w.record.handed_off_at.as_deref().unwrap_or_default(),
            w.record.operator.as_deref(),
        );
        w.phase(
            Phase::Upgrade,
            Duration::from_secs(d.upgrade),
            watch_upgrade(looker, host, cx, from, &backup),
            |record, last_old| record.last_old_seen = Some(last_old.clone()),
        )
        .await?;
        // What verify counts from: on disk before it starts (a failure is in ledger_errors).
        let _ = cx.durable(host).await;
        cx.events.send(Event::OperatorDone {
            host: host.name.clone(),
        });
        w.notice(format!("{} is in place; verifying", cx.target));
    }
    let since = w.record.last_old_seen.clone().unwrap_or_default();
    let warnings = w
        .phase(
            Phase::Verify,
            Duration::from_secs(d.verify),
            verify(looker, host, cx, since),
            |record, warnings| record.warnings.extend(warnings.iter().cloned()),
        )
        .await?;
    for warning in warnings {
        w.notice(warning);
    }
    Ok(())
}

/// Phases 1, 2 and 3's staging, each unless a run before this one (`--resume`) completed it;
/// then the hand-off. The session comes back open, for the watch.
async fn before_handoff<'c: 's, 'h: 's, 's>(w: &mut Walk<'c, 'h>) -> PhaseResult<HostSession<'s>> {
    let d = w.cx.playbook.deadlines.clone();
    let (host, cx) = (w.host, w.cx);
    let mut session = HostSession::open(host, cx.connector, w.ctx.deadline)
        .await
        .map_err(failed)?;
    let facts = if w.record.done(Phase::Preflight) {
        // Only for the free space staging needs; preflight is not done twice.
        session.agent::<Facts>(&Step::Facts).await.ok()
    } else {
        let s = &mut session;
        // What the operator must know before the wizard: an MFA sign-in that can hang.
        let mut wizard_warnings = Vec::new();
        let facts = w
            .phase(
                Phase::Preflight,
                Duration::from_secs(d.preflight),
                preflight(s, w.planned, cx),
                |record, facts| {
                    record.baseline = Some(Baseline::of(facts));
                    wizard_warnings = before_the_wizard(facts, host, cx);
                    record.warnings.extend(wizard_warnings.iter().cloned());
                },
            )
            .await?;
        for warning in wizard_warnings {
            w.notice(warning);
        }
        Some(facts)
    };
    // The pre-upgrade backup is taken when the window is open: a host that waits for its
    // window is backed up after the wait (again, if an earlier run took one before it).
    let mut waited = false;
    if let Some((opens, why)) = cx.window_closed(host) {
        if !cx.wait_for_window {
            if !w.record.done(Phase::Backup) {
                take_backup(w, &mut session, false).await?;
            }
            session.close().await;
            return Err((HostOutcome::Deferred, why));
        }
        session.close().await;
        wait_for_window(w, opens).await?;
        waited = true;
        // A fresh session once the window is open: the last one may have idled out.
        session = HostSession::open(host, cx.connector, w.ctx.deadline)
            .await
            .map_err(failed)?;
    }
    if !w.record.done(Phase::Backup) || waited || !recorded_backup_holds(w) {
        take_backup(w, &mut session, waited).await?;
    }
    if w.ctx.stopping() {
        session.close().await;
        return Err((
            HostOutcome::Interrupted,
            "stopped before phase 3 (Ctrl-C): carry on with --resume".into(),
        ));
    }
    let disk = facts.as_ref().and_then(|f| f.disk.as_ref());
    let (free, drive) = disk
        .map(|d| (Some(d.free_bytes), d.system_drive.clone()))
        .unwrap_or((None, "the system drive".into()));
    let staged = if w.record.done(Phase::Stage)
        && let Some(path) = w.record.staged.clone()
    {
        path
    } else {
        let s = &mut session;
        let staged = w
            .phase(
                Phase::Stage,
                Duration::from_secs(d.stage),
                async {
                    let staged = crate::stage::stage(s, cx.installer, free, &drive)
                        .await
                        .map_err(failed)?;
                    // In the journal within the phase, before its end.
                    if let Some(how) = staged.transfer.as_ref().filter(|h| h.contains("failed")) {
                        cx.log(host, Phase::Stage, "fallback", None, Some(how.clone()));
                    }
                    if !staged.interruptions.is_empty() {
                        let evidence = staged.interruptions.join("; ");
                        cx.log(host, Phase::Stage, "resumed", None, Some(evidence));
                    }
                    Ok(staged)
                },
                |record, staged| {
                    record.staged = Some(staged.path.clone());
                    // Host pull that did not work, or a dropped connection resumed: said with the
                    // phase.
                    let detail = match (&staged.transfer, staged.interruptions.is_empty()) {
                        (_, false) => Some(staged.interruptions.join("; ")),
                        (Some(how), true) if how.contains("failed") => {
                            Some(format!("sent by {how}"))
                        }
                        _ => None,
                    };
                    if let Some(p) = record.phases.last_mut() {
                        p.detail = detail;
                    }
                },
            )
            .await?;
        staged.path
    };
    if let Some(held_back) = cx.staging_not_verified(host) {
        session.close().await;
        return Err(held_back);
    }
    let handoff: HandoffResult = session
        .agent(&Step::Handoff {
            installer: staged.clone(),
            version: cx.target.to_string(),
        })
        .await
        .map_err(failed)?;
    // Recorded, record before line, and on disk before the operator is told: a resumed run
    // finds it handed off and only watches (a detach while this waits still writes both, and
    // the resumed run shows the instructions).
    let instructions = operator_instructions(host, &staged, cx.target);
    w.record.operator = Some(instructions.clone());
    w.record.handed_off_at = Some(handoff.at);
    cx.save(&w.record);
    cx.log(
        host,
        Phase::Upgrade,
        "handoff",
        None,
        Some(instructions.clone()),
    );
    if !cx.durable(host).await {
        session.close().await;
        return Err((
            HostOutcome::Failed,
            "the hand-off could not be recorded on the share (a failed write, or no answer within a minute), so the operator was not told: check the share (the run's ledger_errors say what failed), then ecfleet run --resume".into(),
        ));
    }
    w.notice(instructions);
    cx.events.send(Event::HandedOff {
        host: host.name.clone(),
        address: host.address.clone(),
    });
    Ok(session)
}

/// Phase 2 in `session`: the pre-upgrade backup, verified on the share and importable by the
/// wizard; `fresh` takes a new one even if this run stored one already (the window opened
/// since).
async fn take_backup(
    w: &mut Walk<'_, '_>,
    session: &mut HostSession<'_>,
    fresh: bool,
) -> PhaseResult<()> {
    let (host, cx) = (w.host, w.cx);
    let limit = Duration::from_secs(cx.playbook.deadlines.backup);
    w.phase(
        Phase::Backup,
        limit,
        pre_upgrade_backup(session, host, cx, fresh),
        |record, done| record.backup = Some(done.clone()),
    )
    .await?;
    Ok(())
}

/// Whether the backup an earlier controller recorded (`--resume`) is still on the share, whole:
/// its manifest is there and every file verifies. If not, the ledger says why and phase 2 is
/// done again (the gate relies on it).
fn recorded_backup_holds(w: &Walk<'_, '_>) -> bool {
    let Some(recorded) = w.record.backup.as_deref() else {
        return false;
    };
    let name = recorded.rsplit(['/', '\\']).next().unwrap_or(recorded);
    let backups = backup::HostBackups::new(w.cx.share, &w.host.tenant, &w.host.name);
    let why = match backups.list().into_iter().find(|s| s.manifest.name == name) {
        None => format!("the recorded backup {name} is not on the share (no verified manifest)"),
        Some(s) => match s.verify() {
            Ok(()) => return true,
            Err(e) => format!("the recorded backup {name} does not verify: {e}"),
        },
    };
    w.cx.log(
        w.host,
        Phase::Backup,
        "not-believed",
        None,
        Some(why.clone()),
    );
    w.notice(format!("{why}: taking the pre-upgrade backup again"));
    false
}

/// `--wait-for-window`: until the tenant's window opens (a Ctrl-C stops the wait: the host is
/// `interrupted` before phase 3).
async fn wait_for_window(w: &Walk<'_, '_>, opens: jiff::Timestamp) -> PhaseResult<()> {
    w.notice(format!(
        "waiting for the maintenance window: it opens {opens}"
    ));
    w.cx.log(w.host, Phase::Window, "wait", None, Some(opens.to_string()));
    loop {
        let left = opens.duration_since(jiff::Timestamp::now());
        if left.is_zero() || left.is_negative() {
            w.cx.log(w.host, Phase::Window, "open", None, None);
            return Ok(());
        }
        if w.ctx.stopping() {
            return Err((
                HostOutcome::Interrupted,
                "stopped while waiting for the maintenance window (Ctrl-C): carry on with --resume"
                    .into(),
            ));
        }
        let step =
            Duration::from_secs(left.as_secs().clamp(0, 1) as u64).max(Duration::from_millis(200));
        tokio::time::sleep(step).await;
    }
}

/// Phase 2: this run's pre-upgrade backup. A backup of this run that is already complete on
/// the share (the controller died after storing it) is taken as it is, never taken twice
/// (unless `fresh`). The gate: the backup must hold something the wizard can import on a new
/// server (`MigratedPolicy.json`, or an applied policy JSON newer than the last change), else
/// the host goes no further.
async fn pre_upgrade_backup(
    session: &mut HostSession<'_>,
    host: &Host,
    cx: &RunContext<'_>,
    fresh: bool,
) -> PhaseResult<String> {
    let backups = backup::HostBackups::new(cx.share, &host.tenant, &host.name);
    let name = |s: &backup::store::Stored| format!("{}/{}", s.dir.display(), s.manifest.name);
    if !fresh
        && let Some(s) = backups.list().into_iter().rev().find(|s| {
            s.manifest.tag == Tag::PreUpgrade
                && s.manifest.run_id.as_deref() == Some(cx.run_id)
                && s.verify().is_ok()
        })
    {
        return importable(&s).map(|_| name(&s));
    }
    let settings = BackupSettings {
        tag: Tag::PreUpgrade,
        share: cx.share.to_path_buf(),
        retention: backup::Retention::default(),
        concurrency: 1,
        host_deadline: Duration::from_secs(cx.playbook.deadlines.backup),
        date: cx.today,
        run_id: Some(cx.run_id.to_string()),
    };
    let deadline = Instant::now() + Duration::from_secs(cx.playbook.deadlines.backup);
    let done = backup::back_up_in_session(session, host, &settings, deadline)
        .await
        .map_err(|e| {
            (
                HostOutcome::Failed,
                format!("no verified backup, so no upgrade: {}", e.message),
            )
        })?;
    importable(&done.stored)?;
    Ok(name(&done.stored))
}

/// The pre-upgrade gate's second half: a verified backup a new server's wizard can import.
fn importable(stored: &backup::store::Stored) -> PhaseResult<()> {
    if stored.manifest.importable.is_some() {
        return Ok(());
    }
    let why: Vec<String> = stored
        .manifest
        .warnings
        .iter()
        .map(|w| crate::checks::shown(w))
        .collect();
    Err((
        HostOutcome::Refused,
        format!(
            "the pre-upgrade backup {} is verified but holds nothing the wizard can import on a new server ({}), so no upgrade: if the upgrade failed, the server could not be rebuilt from it; fix: on the host, find out why MigrateSettings.ps1 made no MigratedPolicy.json (usually %ProgramData%\\AADConnect\\PersistedState.xml is missing), or have the wizard write a current Applied-SynchronizationPolicy JSON, then run again",
            stored.manifest.name,
            why.join("; ")
        ),
    ))
}

/// Phase 1: facts, the fingerprint, the rules.
async fn preflight(
    session: &mut HostSession<'_>,
    planned: &PlannedHost,
    cx: &RunContext<'_>,
) -> PhaseResult<Facts> {
    let facts: Facts = session.agent(&Step::Facts).await.map_err(failed)?;
    let basis = Basis::of(Some(&facts));
    if basis.fingerprint() != planned.fingerprint {
        let changed = planned.basis.differences(&basis);
        return Err((
            HostOutcome::Refused,
            format!(
                "the host changed since the plan was made ({}): plan again",
                changed.join("; ")
            ),
        ));
    }
    let decision = rules::decide(
        rules::HostInput {
            role: planned.role,
            facts: Ok(&facts),
            min_os: None,
        },
        rules::Context {
            catalog: cx.catalog,
            target: cx.target,
            policy: &cx.plan.policy,
            as_of: cx.today,
        },
    );
    if decision.action != Action::InPlace {
        let reasons: Vec<String> = decision
            .reasons
            .iter()
            .map(|r| match &r.fix {
                Some(fix) => format!("{} ({}; fix: {fix})", r.code, r.message),
                None => format!("{} ({})", r.code, r.message),
            })
            .collect();
        return Err((
            HostOutcome::Refused,
            format!(
                "the host is now {}: {}",
                decision.action.as_str(),
                reasons.join("; ")
            ),
        ));
    }
    Ok(facts)
}

/// What the shared checks ([`checks::assess`]) judge this host's facts by during the run: the
/// plan's policy, the host's role and the run's target; no sync-age limit (a run judges the runs
/// since the upgrade itself).
fn limits<'a>(host: &Host, cx: &RunContext<'a>) -> checks::Limits<'a> {
    checks::Limits {
        catalog: cx.catalog,
        as_of: cx.today,
        retiring_days: cx.plan.policy.retiring_days,
        min_free_gib: cx.plan.policy.min_free_gib,
        max_sync_age_hours: f64::INFINITY,
        role: host.role,
        target: Some(cx.target),
    }
}

/// Checks whose message the operator needs before running the wizard (docs/design/DOMAIN.md §7 #7).
fn before_the_wizard(facts: &Facts, host: &Host, cx: &RunContext<'_>) -> Vec<String> {
    checks::assess(facts, &limits(host, cx))
        .checks
        .into_iter()
        .filter(|c| c.code == checks::Code::MfaSiteNotTrusted)
        .map(|c| format!("{}; fix: {}", c.message, c.fix))
        .collect()
}

/// What the operator must do on the host, exactly (docs/run.md, "The hand-off";
/// docs/design/DOMAIN.md §5 "Credentials", "MFA on the wizard", §8b S45).
pub fn operator_instructions(host: &Host, installer: &str, target: EcVersion) -> String {
    format!(
        "on {} ({}, tenant {}): (1) sign in to the server as a local administrator who is also in ADSyncAdmins; \
(2) open Windows PowerShell with Run as administrator and run: msiexec /i \"{installer}\" (Explorer offers no Run as administrator for an .msi); \
(3) in the wizard choose Upgrade and sign in as a Global Administrator or Hybrid Identity Administrator assigned directly (not through a group); with MFA, https://secure.aadcdn.microsoftonline-p.com must be a Trusted Site or the sign-in can hang; \
keep 'Start the synchronization process when configuration completes' ticked; if the wizard offers a fresh install instead of an upgrade, STOP and do not proceed; \
(4) when it is done, confirm application-based authentication: Get-ADSyncEntraConnectorCredential must show ConnectorIdentityType Application (otherwise: wizard, Additional tasks, Configure application-based authentication to Microsoft Entra ID). \
ecfleet watches the host until {target} is in place and the wizard has migrated the configuration; it touches nothing while the wizard runs.",
        host.name, host.address, host.tenant
    )
}

/// The watch's and verify's look at a host, poll after poll: fresh facts each time, through
/// one session kept open between polls and phases (the hand-off's: one login per host instead
/// of one per poll: fewer handshakes for the controller, fewer logons in the host's security
/// log), and a fresh session when the kept one broke (the host may be rebooting: a host that
/// cannot be reached is an answer to wait on).
struct Looker<'a> {
    host: &'a Host,
    connector: &'a crate::session::Connector,
    session: Option<HostSession<'a>>,
}

impl<'a> Looker<'a> {
    fn new(host: &'a Host, connector: &'a crate::session::Connector) -> Self {
        Looker {
            host,
            connector,
            session: None,
        }
    }

    /// Looks through `session` from now on (the one the hand-off used).
    fn keep(&mut self, session: HostSession<'a>) {
        self.session = Some(session);
    }

    /// The host's facts within `limit`.
    async fn look(&mut self, limit: Duration) -> Result<Facts, HostError> {
        let deadline = Instant::now() + limit;
        if let Some(session) = self.session.as_mut() {
            session.set_deadline(deadline);
            match session.agent::<Facts>(&Step::Facts).await {
                Ok(facts) => return Ok(facts),
                Err(e) if e.kind == ErrorKind::Interrupted => return Err(e),
                // Broken (a reboot, a dropped connection): a fresh session below.
                Err(_) => {
                    if let Some(old) = self.session.take() {
                        let _ = tokio::time::timeout(Duration::from_secs(2), old.close()).await;
                    }
                }
            }
        }
        let mut session = HostSession::open(self.host, self.connector, deadline).await?;
        match session.agent::<Facts>(&Step::Facts).await {
            Ok(facts) => {
                self.session = Some(session);
                Ok(facts)
            }
            Err(e) => {
                session.close().await;
                Err(e)
            }
        }
    }

    async fn close(self) {
        if let Some(session) = self.session {
            session.close().await;
        }
    }
}

/// Phase 3's watch. Microsoft's upgrade replaces the binaries first and migrates the
/// configuration afterwards, in the same wizard session (docs/design/DOMAIN.md §8b, S41): an
/// engine on the target with the configuration still on the old build is the normal state
/// while the wizard runs. So the watch ends only when the engine **and** the configuration
/// read the target, or when the engine reads the target and the wizard and the installer have
/// both exited (then verify judges what is left). Returns the host's clock when it was last
/// seen on the old version (runs that started after it count for verify).
async fn watch_upgrade(
    looker: &mut Looker<'_>,
    host: &Host,
    cx: &RunContext<'_>,
    handed_off_at: String,
    backup: &str,
) -> PhaseResult<String> {
    let poll = Duration::from_secs(cx.playbook.watch.poll_seconds);
    // Report a moment before the phase's own deadline, with what was seen last.
    let limit = Duration::from_secs(cx.playbook.deadlines.upgrade);
    let until = Instant::now() + limit.saturating_sub(poll + Duration::from_secs(2));
    let since: jiff::Timestamp = handed_off_at.parse().unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let mut last_old = handed_off_at;
    let mut said = String::new();
    let mut shown_events: Vec<String> = Vec::new();
    loop {
        if Instant::now() >= until {
            return Err((
                HostOutcome::OperatorTimeout,
                format!(
                    "{} was not in place within {} s of the hand-off (last seen: {}); the upgrade was not touched: it may be waiting at a sign-in (an MFA prompt that hangs), or half done, with the configuration schema half-migrated. Look at the wizard on the host before anything else; do not start a second upgrade; if it cannot finish, restore from the pre-upgrade backup {}",
                    cx.target,
                    limit.as_secs(),
                    if said.is_empty() {
                        "nothing"
                    } else {
                        said.as_str()
                    },
                    if backup.is_empty() {
                        "on the share"
                    } else {
                        backup
                    }
                ),
            ));
        }
        let state = match looker.look(poll.max(Duration::from_secs(30))).await {
            Ok(facts) => {
                show_installer_events(host, cx, &facts, since, &mut shown_events);
                let readings = checks::Readings::of(&facts);
                let running = facts.upgrade_running();
                if readings.engine_build() == Some(cx.target)
                    && (readings.config_build() == Some(cx.target) || !running)
                {
                    return Ok(last_old);
                }
                if !checks::install::installed(&facts) && !running {
                    return Err((
                        HostOutcome::Failed,
                        format!(
                            "the sync engine is gone since the hand-off: the installer left a half-removed install (MSI 25019/1603, docs/design/DOMAIN.md §7 #4){}; remove the stale product, reinstall and import the pre-upgrade backup",
                            installer_failure(&facts, since)
                                .map(|e| format!(" ({e})"))
                                .unwrap_or_default()
                        ),
                    ));
                }
                if readings.engine_build() == Some(cx.target) {
                    format!(
                        "upgrade running: the binaries are {}, the wizard is migrating the configuration (still {}); ADSync is not touched until it ends",
                        cx.target,
                        readings.config.as_deref().unwrap_or("unreadable")
                    )
                } else {
                    last_old = facts.collected_at.clone();
                    if !running && let Some(failure) = installer_failure(&facts, since) {
                        return Err((
                            HostOutcome::Failed,
                            format!(
                                "the installer failed and the wizard has exited: {failure}; the host still runs {}; read the wizard's log in %ProgramData%\\AADConnect before trying again; the pre-upgrade backup is {}",
                                readings
                                    .engine
                                    .as_deref()
                                    .unwrap_or("an unreadable version"),
                                if backup.is_empty() {
                                    "on the share"
                                } else {
                                    backup
                                }
                            ),
                        ));
                    }
                    let suspended = facts
                        .scheduler
                        .as_ref()
                        .and_then(|s| s.scheduler_suspended)
                        .unwrap_or(false);
                    if running || suspended {
                        "upgrade running (installer or wizard running, or scheduler suspended)"
                            .to_string()
                    } else {
                        "waiting for operator".to_string()
                    }
                }
            }
            Err(e) if e.kind == ErrorKind::Interrupted => return Err(failed(e)),
            Err(_) => "not answering (rebooting?)".to_string(),
        };
        if state != said {
            cx.events.send(Event::Notice {
                host: host.name.clone(),
                message: state.clone(),
            });
            said = state;
        }
        tokio::time::sleep(poll).await;
    }
}

/// Events of each kind looked at per poll (the host's probe sends at most 20 of each).
const MAX_EVENTS_SHOWN: usize = 20;

/// The Windows Installer's events for the product since `since` that the operator has not been
/// shown yet: evidence of what the installer did (docs/design/DOMAIN.md §8b, S50).
fn show_installer_events(
    host: &Host,
    cx: &RunContext<'_>,
    facts: &Facts,
    since: jiff::Timestamp,
    shown: &mut Vec<String>,
) {
    let Some(activity) = &facts.upgrade_activity else {
        return;
    };
    // At most the newest few of each: a host sends data, not a flood of notices.
    for event in activity
        .installer_events
        .iter()
        .take(MAX_EVENTS_SHOWN)
        .chain(activity.events.iter().take(MAX_EVENTS_SHOWN))
        .filter(|e| e.time.parse::<jiff::Timestamp>().is_ok_and(|t| t >= since))
        .rev()
    {
        let key = format!("{}|{}|{}", event.time, event.id, event.message);
        if shown.contains(&key) {
            continue;
        }
        shown.push(key);
        let message = format!(
            "Application log: {} ({}, event {})",
            crate::checks::shown(&event.message),
            event.time,
            event.id
        );
        cx.log(
            host,
            Phase::Upgrade,
            "evidence",
            None,
            Some(message.clone()),
        );
        cx.events.send(Event::Notice {
            host: host.name.clone(),
            message,
        });
    }
}

/// The installer's failure since `since` (MsiInstaller event 11708, or 1033 with a non-zero
/// status), with the wizard's last trace lines when the host sent them.
fn installer_failure(facts: &Facts, since: jiff::Timestamp) -> Option<String> {
    let activity = facts.upgrade_activity.as_ref()?;
    let failed = activity.installer_events.iter().find(|e| {
        e.time.parse::<jiff::Timestamp>().is_ok_and(|t| t >= since)
            && (e.id == 11708 || (e.id == 1033 && !e.message.contains("error status: 0")))
    })?;
    let mut why = format!(
        "Windows Installer event {} at {}: {}",
        failed.id,
        failed.time,
        crate::checks::shown(&failed.message)
    );
    if let Some(last) = activity.wizard_log_tail.last() {
        why.push_str(&format!(
            "; the wizard's trace ends: {}",
            crate::checks::shown(last)
        ));
    }
    Some(why)
}

/// Phase 4: ADSync runs and the versions agree (one ADSync restart allowed for either, never
/// while an upgrade runs), then a successful import and export that started after `last_old`.
/// A full import and synchronization that the upgrade queued (or that runs) when the deadline
/// comes ends the host `sync-pending`, not failed. Returns what the operator should still look
/// at (a Health Agent left disabled, application-based authentication not configured).
async fn verify(
    looker: &mut Looker<'_>,
    host: &Host,
    cx: &RunContext<'_>,
    last_old: String,
) -> PhaseResult<Vec<String>> {
    let poll = Duration::from_secs(cx.playbook.watch.poll_seconds);
    // Give up a moment before the phase's own deadline, so that the report says what was seen.
    let limit = Duration::from_secs(cx.playbook.deadlines.verify);
    let until = Instant::now() + limit.saturating_sub(poll + Duration::from_secs(2));
    let mut state = VerifyState {
        restarted: false,
        disagreement: None,
    };
    let mut seen = String::from("the host did not answer");
    let mut full_sync: Option<String> = None;
    let since: jiff::Timestamp = last_old.parse().unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    loop {
        if Instant::now() >= until {
            return Err(match full_sync {
                Some(what) => (
                    HostOutcome::SyncPending,
                    format!(
                        "the upgrade is in place and the versions agree, but {what}: Microsoft's upgrade runs a full import and full synchronization when the out-of-box rules changed, which can take hours, and no delta cycle runs until they end; re-check later with ecfleet run --resume (it touches nothing)"
                    ),
                ),
                None => (
                    HostOutcome::Failed,
                    format!(
                        "no successful Delta Import and Export since the upgrade within {} s: {seen}",
                        cx.playbook.deadlines.verify
                    ),
                ),
            });
        }
        let facts = match looker.look(poll.max(Duration::from_secs(30))).await {
            Ok(f) => f,
            Err(e) if e.kind == ErrorKind::Interrupted => return Err(failed(e)),
            Err(e) => {
                seen = format!("the host did not answer ({})", e.message);
                tokio::time::sleep(poll).await;
                continue;
            }
        };
        match judge(host, cx, &facts, since, &mut state, poll) {
            Judged::Verified(warnings) => return Ok(warnings),
            Judged::Failed(outcome, why) => return Err((outcome, why)),
            Judged::Restart(justification) => {
                state.restarted = true;
                // Recorded before it is done, with the facts that justified it.
                cx.log(
                    host,
                    Phase::Verify,
                    "restart-adsync",
                    None,
                    Some(justification.clone()),
                );
                tell(cx, host, format!("restarting ADSync once: {justification}"));
                let r = restart_adsync(host, cx).await.map_err(failed)?;
                if r.refused_upgrade_running {
                    // The host saw the wizard or the installer start again: not now.
                    cx.log(
                        host,
                        Phase::Verify,
                        "restart-refused",
                        None,
                        Some(crate::checks::shown(&r.message)),
                    );
                    state.restarted = false;
                    state.disagreement = None;
                    seen = "the host refused the restart: an upgrade is running again".into();
                    tokio::time::sleep(poll).await;
                    continue;
                }
                cx.log(
                    host,
                    Phase::Verify,
                    "restarted-adsync",
                    None,
                    Some(format!(
                        "running: {}; {}",
                        r.running,
                        crate::checks::shown(&r.message)
                    )),
                );
                if !r.running {
                    return Err((
                        HostOutcome::Failed,
                        format!(
                            "ADSync is not running after the upgrade, nor after one restart: {} (check the Application log; restore from the pre-upgrade backup if needed)",
                            crate::checks::shown(&r.message)
                        ),
                    ));
                }
            }
            Judged::Waiting {
                what,
                full,
                failing,
            } => {
                seen = what;
                // A full synchronization seen once stays the reason to wait (a gap between
                // its steps shows none), unless runs since failed.
                if failing {
                    full_sync = None;
                } else if full.is_some() {
                    full_sync = full;
                }
                tokio::time::sleep(poll).await;
            }
        }
    }
}

/// A notice about `host` for the operator's screen and `--events`.
fn tell(cx: &RunContext<'_>, host: &Host, message: String) {
    cx.events.send(Event::Notice {
        host: host.name.clone(),
        message,
    });
}

/// What verify remembers between looks.
struct VerifyState {
    /// ADSync was restarted (once is all verify may do).
    restarted: bool,
    /// When the versions (or ADSync's state) were first seen wrong with no upgrade running,
    /// and what was seen: a restart needs the same on two looks at least a poll apart.
    disagreement: Option<(Instant, String)>,
}

enum Judged {
    Verified(Vec<String>),
    Failed(HostOutcome, String),
    /// Restart ADSync once (why, from the facts) and look again.
    Restart(String),
    /// Not yet; what was seen, a full import or synchronization running or pending since the
    /// upgrade, and whether runs since the upgrade ended with errors.
    Waiting {
        what: String,
        full: Option<String>,
        failing: bool,
    },
}

/// One look at the host during verify.
fn judge(
    host: &Host,
    cx: &RunContext<'_>,
    facts: &Facts,
    since: jiff::Timestamp,
    state: &mut VerifyState,
    poll: Duration,
) -> Judged {
    let readings = checks::Readings::of(facts);
    if facts.upgrade_running() {
        // The wizard or the installer runs (again): nothing is judged, nothing is touched.
        state.disagreement = None;
        return Judged::Waiting {
            what: "the wizard or the installer is running on the host: ADSync is not touched while it runs".into(),
            full: None,
            failing: false,
        };
    }
    if readings.engine_build() != Some(cx.target) {
        return Judged::Failed(
            HostOutcome::Failed,
            format!(
                "the engine reads {} after the upgrade, not {}",
                readings.engine.as_deref().unwrap_or("nothing"),
                cx.target
            ),
        );
    }
    // ADSync's state and the versions' agreement are the shared checks' verdicts; verify adds
    // only that the configuration's version must have been read at all to agree.
    let assessment = checks::assess(facts, &limits(host, cx));
    let found = |code: checks::Code| assessment.checks.iter().any(|c| c.code == code);
    let adsync_running = !found(checks::Code::AdsyncStopped);
    let versions_agree = !found(checks::Code::VersionMismatch)
        && !found(checks::Code::VersionUnreadable)
        && readings.config.is_some();
    if !adsync_running || !versions_agree {
        let seen = format!(
            "engine {}, configuration {}, ADSync {}, scheduler suspended: {}",
            cx.target,
            readings.config.as_deref().unwrap_or("unreadable"),
            facts
                .adsync_service
                .as_ref()
                .map(|s| s.state.as_str())
                .unwrap_or("unknown"),
            facts
                .scheduler
                .as_ref()
                .and_then(|s| s.scheduler_suspended)
                .map(|b| b.to_string())
                .unwrap_or_else(|| "unknown".into())
        );
        if !state.restarted && cx.playbook.verify.restart_adsync_once {
            return match &state.disagreement {
                Some((first, was)) if first.elapsed() >= poll => Judged::Restart(format!(
                    "neither the wizard nor the installer runs, and two looks {} s apart saw the same: {was}; then {seen} at {}",
                    first.elapsed().as_secs(),
                    facts.collected_at
                )),
                Some(_) => Judged::Waiting {
                    what: seen,
                    full: None,
                    failing: false,
                },
                None => {
                    state.disagreement =
                        Some((Instant::now(), format!("{seen} at {}", facts.collected_at)));
                    Judged::Waiting {
                        what: format!("{seen}: looking again before any restart"),
                        full: None,
                        failing: false,
                    }
                }
            };
        }
        if !versions_agree {
            return Judged::Failed(
                HostOutcome::VersionMismatch,
                format!(
                    "the configuration version is {} but the engine is {}{}: rerun the wizard and choose Upgrade; the pre-upgrade backup is on the share",
                    readings.config.as_deref().unwrap_or("unreadable"),
                    cx.target,
                    if state.restarted {
                        ", also after one ADSync restart"
                    } else {
                        ""
                    }
                ),
            );
        }
    }
    state.disagreement = None;
    let staging = checks::sync::staging_mode(facts, host.role);
    let since_upgrade: Vec<&ecfleet_proto::RunResult> = facts
        .run_history
        .iter()
        .flatten()
        .filter(|r| {
            r.start
                .as_deref()
                .and_then(|s| s.parse::<jiff::Timestamp>().ok())
                .is_some_and(|s| s >= since)
        })
        .collect();
    // Only ended runs count: a run in progress is neither a success nor a failure.
    let ended: Vec<&&ecfleet_proto::RunResult> =
        since_upgrade.iter().filter(|r| r.ended()).collect();
    let ok = |pred: fn(&str) -> bool| {
        ended
            .iter()
            .any(|r| pred(&r.run_profile) && r.result == "success")
    };
    let failures: Vec<String> = ended
        .iter()
        .filter(|r| r.result != "success")
        .map(|r| format!("{} on {} ended {}", r.run_profile, r.connector, r.result))
        .collect();
    if ok(is_import) && (staging || ok(is_export)) {
        let mut notes = health_warnings(&assessment);
        notes.extend(app_auth_note(facts, cx));
        if !failures.is_empty() {
            // Verified by the three checks, but a run since the upgrade had errors (a sync
            // step with sync-rule errors): the operator should look before calling it done.
            notes.push(format!(
                "runs with errors since the upgrade: {} (sync rules incompatible? check the Synchronization Service Manager; docs/design/DOMAIN.md §7 #6)",
                crate::checks::shown(&failures.join("; "))
            ));
        }
        if staging {
            notes.push(
                "staging server: it never exports, so the Delta Export check does not apply (a successful Delta Import since the upgrade was required)".into(),
            );
        }
        return Judged::Verified(notes);
    }
    let full = full_sync_pending(facts, &since_upgrade);
    let what = if failures.is_empty() {
        match &full {
            Some(f) => f.clone(),
            None => format!(
                "{} runs ended since the upgrade, none of them yet the import and export it needs",
                ended.len()
            ),
        }
    } else {
        format!(
            "since the upgrade: {} (sync rules incompatible? docs/design/DOMAIN.md §7 #6)",
            crate::checks::shown(&failures.join("; "))
        )
    };
    // Failed runs since the upgrade: not pending, failing.
    Judged::Waiting {
        what,
        full: if failures.is_empty() { full } else { None },
        failing: !failures.is_empty(),
    }
}

/// A full import or full synchronization the upgrade queued and that has not ended: running
/// since the upgrade (`IsRunComplete` false), or still an override of the scheduler
/// (`Get-ADSyncSchedulerConnectorOverride`; docs/design/DOMAIN.md §8b, S42).
fn full_sync_pending(facts: &Facts, since_upgrade: &[&ecfleet_proto::RunResult]) -> Option<String> {
    let full = |p: &str| {
        p.eq_ignore_ascii_case("Full Import") || p.eq_ignore_ascii_case("Full Synchronization")
    };
    if let Some(r) = since_upgrade
        .iter()
        .find(|r| full(&r.run_profile) && !r.ended())
    {
        return Some(format!(
            "a {} on {} is running since {}",
            crate::checks::shown(&r.run_profile),
            crate::checks::shown(&r.connector),
            r.start.as_deref().unwrap_or("?")
        ));
    }
    let pending: Vec<String> = facts
        .connector_overrides
        .iter()
        .flatten()
        .filter(|o| o.full_import_required || o.full_sync_required)
        .map(|o| {
            format!(
                "{} ({})",
                crate::checks::shown(&o.connector),
                match (o.full_import_required, o.full_sync_required) {
                    (true, true) => "full import and full synchronization",
                    (true, false) => "full import",
                    _ => "full synchronization",
                }
            )
        })
        .collect();
    (!pending.is_empty()).then(|| {
        format!(
            "the scheduler still owes {} (Get-ADSyncSchedulerConnectorOverride)",
            pending.join(", ")
        )
    })
}

/// After an upgrade to a build that can use application-based authentication, whether the Entra
/// connector does (required by 2027-04-07; docs/design/DOMAIN.md §8b, S45).
fn app_auth_note(facts: &Facts, cx: &RunContext<'_>) -> Option<String> {
    let check = checks::app_auth(facts, cx.today)?;
    Some(format!("{}; fix: {}", check.message, check.fix))
}

/// A Health Agent left disabled after the upgrade (the shared check `health-agent-stopped`),
/// with the documented way back.
fn health_warnings(assessment: &checks::Assessment) -> Vec<String> {
    assessment
        .checks
        .iter()
        .filter(|c| c.code == checks::Code::HealthAgentStopped)
        .map(|c| format!("{} after the upgrade: {}", c.message, c.fix))
        .collect()
}

async fn restart_adsync(host: &Host, cx: &RunContext<'_>) -> Result<RestartResult, HostError> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut session = HostSession::open(host, cx.connector, deadline).await?;
    let r = session.agent::<RestartResult>(&Step::RestartAdsync).await;
    session.close().await;
    r
}

/// The three version readings before the upgrade, as a host record shows them: the sync
/// engine's, the configuration's, and the wizard's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baseline {
    pub engine: Option<String>,
    pub config: Option<String>,
    #[serde(default)]
    pub wizard: Option<String>,
}

impl Baseline {
    fn of(facts: &Facts) -> Self {
        let r = checks::Readings::of(facts);
        Baseline {
            engine: r.engine,
            config: r.config,
            wizard: facts.ec.as_ref().and_then(|e| e.wizard_version.clone()),
        }
    }
}
