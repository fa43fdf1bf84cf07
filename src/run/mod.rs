//! `ecfleet run`: the in-place upgrade, phase by phase, across the fleet (docs/run.md). The plan
//! says which hosts and in which waves (staging servers a wave before their tenant's active
//! server); the fleet engine runs the waves with the failure budget; each in-place host walks
//! the four phases ([`host`]); everything is written to the run's ledger on the share as it
//! happens ([`ledger`]). Hosts the plan does not upgrade in place are never touched.

pub mod host;
pub mod ledger;
pub mod merge;
pub mod options;
pub mod playbook;
mod record;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use jiff::civil::Date;

use crate::catalog::{Catalog, EcVersion};
use crate::engine::{self, EngineSettings, EventSink, FailureBudget, Shutdown, Unit};
use crate::error::{ErrorKind, HostError, Phase};
use crate::inventory::{Host, Inventory, Role};
use crate::plan::{Action, Plan, PlannedHost};
use crate::session::Connector;
use crate::stage::Installer;

pub use playbook::RunPlaybook;
pub use record::{
    HostOutcome, HostRecord, PhaseRecord, REPORT_SCHEMA_VERSION, RunReport, RunSummary,
};

/// What every host's phases share.
pub struct RunContext<'a> {
    pub run_id: &'a str,
    pub plan: &'a Plan,
    pub target: EcVersion,
    pub installer: &'a Installer,
    pub playbook: &'a RunPlaybook,
    pub share: &'a Path,
    pub catalog: &'a Catalog,
    pub today: Date,
    pub connector: &'a Connector,
    pub events: &'a EventSink,
    pub ledger: &'a ledger::Ledger,
    /// Each tenant's maintenance window; `None` with `--ignore-windows`.
    pub windows: Option<HashMap<String, crate::window::MaintenanceWindow>>,
    /// `--wait-for-window`: a host whose window is closed waits for it instead of `deferred`.
    pub wait_for_window: bool,
    /// Per tenant: its staging hosts in this run and whether each passed phase 4.
    staging: Mutex<HashMap<String, Vec<(String, StagingState)>>>,
    /// The messages when a hand-off waits longer than `handoff_after` (docs/notify.md).
    pub handoff_notices: crate::notify::handoff::HandoffNotices,
}

impl RunContext<'_> {
    /// Why phase 3 may not start now on `host`: its tenant's window is closed (and when it
    /// opens).
    fn window_closed(&self, host: &Host) -> Option<(jiff::Timestamp, String)> {
        let window = self.windows.as_ref()?.get(&host.tenant)?;
        let now = jiff::Timestamp::now();
        let next = window.next_after(now);
        (next.start.timestamp() > now).then(|| {
            (
                next.start.timestamp(),
                format!(
                    "the maintenance window ({}) is closed; it opens {}: run again then, or use --wait-for-window or --ignore-windows",
                    window.text(),
                    next.start
                ),
            )
        })
    }

    /// With `--wait-for-window`: how much longer than the phases a host may take, the wait for
    /// the latest window to open (at most 8 days: every window opens within a week).
    fn longest_wait(&self) -> std::time::Duration {
        if !self.wait_for_window {
            return std::time::Duration::ZERO;
        }
        let now = jiff::Timestamp::now();
        let latest = self
            .windows
            .iter()
            .flat_map(|w| w.values())
            .map(|w| {
                w.next_after(now)
                    .start
                    .timestamp()
                    .duration_since(now)
                    .as_secs()
            })
            .max()
            .unwrap_or(0);
        std::time::Duration::from_secs(latest.clamp(0, 8 * 86_400) as u64 + 60)
    }

    /// Tells the reporters of a step of `host`'s `phase` (`start`, `end`, or a step within):
    /// the journal on the share (its writer has the line before this returns, in order);
    /// `--events` and the live view get it too.
    fn log(
        &self,
        host: &Host,
        phase: Phase,
        event: &str,
        outcome: Option<&str>,
        detail: Option<String>,
    ) {
        let at = {
            let t = jiff::Timestamp::now();
            t.round(jiff::Unit::Millisecond).unwrap_or(t).to_string()
        };
        let (tenant, host) = (host.tenant.clone(), host.name.clone());
        self.events.send(match event {
            "start" => engine::Event::PhaseStarted {
                at,
                tenant,
                host,
                phase,
            },
            "end" => engine::Event::PhaseEnded {
                at,
                tenant,
                host,
                phase,
                outcome: outcome.unwrap_or("ok").to_string(),
                detail,
            },
            step => engine::Event::PhaseStep {
                at,
                tenant,
                host,
                phase,
                step: step.to_string(),
                outcome: outcome.map(str::to_string),
                detail,
            },
        });
    }

    /// Takes the host's hold on the share (`locks/<tenant>/<host>`): no other controller drives
    /// it while this run does. A hold this run's earlier controller left is taken over; another
    /// run's is left alone, named.
    fn hold(&self, host: &Host) -> Result<crate::lock::Hold, (HostOutcome, String)> {
        use crate::lock::HoldError;
        crate::lock::acquire(
            self.share,
            &["locks", &host.tenant, &host.name],
            &self.ledger.holder,
            |h| h.run_id == self.run_id,
        )
        .map_err(|e| match e {
            HoldError::Held { holder, .. } => (
                HostOutcome::Locked,
                format!(
                    "another controller drives this host: {}; left alone (run it again once that run has ended)",
                    holder.describe()
                ),
            ),
            HoldError::Abandoned { holder, path } => (
                HostOutcome::Locked,
                format!(
                    "{} left this host in the middle of its upgrade and its controller is gone; left alone: carry that run on with `ecfleet run --resume {}`, or remove {} if it is abandoned",
                    holder.describe(),
                    holder.run_id,
                    path.parent().unwrap_or(&path).display()
                ),
            ),
            HoldError::Share(e) => (
                HostOutcome::Failed,
                format!("cannot take the host's hold on the share: {e}"),
            ),
        })
    }

    /// Lets go of the host's hold at its end. A host left with the operator (handed off, then
    /// the run was interrupted) stays held for `--resume` of this run: no other run hands it
    /// off a second time.
    fn let_go(&self, hold: crate::lock::Hold, record: &HostRecord) {
        if record.handed_off_at.is_some() && record.outcome == HostOutcome::Interrupted {
            return;
        }
        if let Err(e) = hold.release() {
            self.ledger_error(e.to_string());
        }
    }

    /// The host's record to the ledger, on disk within moments.
    fn save(&self, record: &HostRecord) {
        if let Err(err) = self.ledger.host(&record.tenant, &record.host, record) {
            self.ledger_error(err.to_string());
        }
    }

    /// Whether `host`'s newest record and the journal so far are on disk (what a resumed run
    /// must find: the hand-off, the watch's end).
    async fn durable(&self, host: &Host) -> bool {
        self.ledger.durable(&host.tenant, &host.name).await
    }

    fn ledger_error(&self, message: String) {
        self.ledger.error(message);
    }

    /// A staging host's end, for its tenant's active servers.
    fn staging_ended(&self, record: &HostRecord) {
        let mut staging = self.staging.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = staging.get_mut(&record.tenant) {
            for (name, state) in list.iter_mut() {
                if *name == record.host {
                    *state = StagingState::of(record);
                }
            }
        }
    }

    /// Why an active host is not touched at all: another controller drives its tenant's
    /// staging server (`locked`), or that server failed in this run (`refused`). Waves are
    /// barriers, so the staging servers have ended when an active server starts.
    fn staging_holds_back(&self, host: &Host) -> Option<(HostOutcome, String)> {
        if host.role != Role::Active {
            return None;
        }
        let staging = self.staging.lock().unwrap_or_else(|p| p.into_inner());
        staging.get(&host.tenant)?.iter().find_map(|(name, s)| match s {
            StagingState::Locked(why) => Some((
                HostOutcome::Locked,
                format!("its tenant's staging server {name} is not this run's ({why})"),
            )),
            StagingState::Failed(outcome) => Some((
                HostOutcome::Refused,
                format!(
                    "the tenant's staging server {name} did not pass verification in this run ({}): the active server is not upgraded before it",
                    outcome.as_str()
                ),
            )),
            _ => None,
        })
    }

    /// Why an active host may not start phase 3 yet: its tenant's staging server has not been
    /// verified. One still on its way (deferred, sync-pending, interrupted) holds it back as
    /// `skipped`, for `--resume` to carry on; one that never ran refuses it.
    fn staging_not_verified(&self, host: &Host) -> Option<(HostOutcome, String)> {
        if host.role != Role::Active {
            return None;
        }
        let staging = self.staging.lock().unwrap_or_else(|p| p.into_inner());
        let (name, state) = staging
            .get(&host.tenant)?
            .iter()
            .find(|(_, s)| *s != StagingState::Verified)?;
        Some(match state {
            StagingState::Waiting(outcome) => (
                HostOutcome::Skipped,
                format!(
                    "waits for its tenant's staging server {name} ({}): the active server is upgraded after it is verified; `ecfleet run --resume` carries both on",
                    outcome.as_str()
                ),
            ),
            _ => (
                HostOutcome::Refused,
                format!(
                    "the tenant's staging server {name} did not pass verification in this run: the active server is not upgraded before it"
                ),
            ),
        })
    }
}

/// Where a tenant's staging server stands in this run.
#[derive(Debug, Clone, PartialEq)]
enum StagingState {
    /// Not ended yet (or not known).
    NotVerified,
    Verified,
    /// Ended as a failure.
    Failed(HostOutcome),
    /// Still on its way: deferred, skipped, interrupted, sync-pending.
    Waiting(HostOutcome),
    /// Another controller drives it: why.
    Locked(String),
}

impl StagingState {
    fn of(record: &HostRecord) -> StagingState {
        match record.outcome {
            HostOutcome::Verified => StagingState::Verified,
            HostOutcome::Locked => StagingState::Locked(record.message.clone()),
            o if o.is_failure() => StagingState::Failed(o),
            o => StagingState::Waiting(o),
        }
    }
}

pub struct RunInputs<'a> {
    pub run_id: &'a str,
    pub inventory: &'a Inventory,
    pub plan: &'a Plan,
    pub installer: &'a Installer,
    pub playbook: &'a RunPlaybook,
    pub share: &'a Path,
    pub catalog: &'a Catalog,
    pub today: Date,
    pub concurrency: usize,
    pub failure_budget: FailureBudget,
    pub connector: &'a Connector,
    pub ledger: &'a ledger::Ledger,
    pub ignore_windows: bool,
    pub wait_for_window: bool,
    /// `--resume`: each host's record as the earlier controller left it.
    pub previous: HashMap<String, HostRecord>,
    /// `--resume`: hosts whose record is in the ledger but cannot be read, and why: left
    /// alone (`failed`), their record never overwritten.
    pub unreadable: HashMap<String, String>,
    /// `--canary N`: the first N hosts first; the rest only when they all passed.
    pub canary: Option<usize>,
    pub continue_after_canary: bool,
}

/// A host of the plan, with its inventory entry.
type Planned<'a> = (&'a Host, &'a PlannedHost);
/// A host to work on, with what an earlier controller left of it (`--resume`).
type Pending<'a> = (&'a Host, &'a PlannedHost, Option<HostRecord>);

/// Which hosts this run works on.
struct Selection<'a> {
    /// Every planned host found in the inventory, in plan order.
    hosts: Vec<Planned<'a>>,
    /// In-place hosts a resumed run finds finished: left as they are.
    finished: HashMap<String, HostRecord>,
    /// In-place hosts to work on, in plan order.
    pending: Vec<Pending<'a>>,
    /// Per tenant: its staging hosts and whether each was verified already.
    staging: HashMap<String, Vec<(String, StagingState)>>,
}

fn select<'a>(
    inventory: &'a Inventory,
    plan: &'a Plan,
    mut previous: HashMap<String, HostRecord>,
    unreadable: HashMap<String, String>,
) -> Selection<'a> {
    let by_name: HashMap<&str, &Host> = inventory.hosts().map(|h| (h.name.as_str(), h)).collect();
    let hosts: Vec<Planned<'a>> = plan
        .hosts
        .iter()
        .filter_map(|p| by_name.get(p.host.as_str()).map(|h| (*h, p)))
        .collect();
    let in_place = hosts
        .iter()
        .copied()
        .filter(|(_, p)| p.action == Action::InPlace);
    let mut staging: HashMap<String, Vec<(String, StagingState)>> = HashMap::new();
    for (h, _) in in_place.clone().filter(|(h, _)| h.role == Role::Staging) {
        let state = match previous.get(&h.name) {
            Some(r) if r.outcome == HostOutcome::Verified => StagingState::Verified,
            _ => StagingState::NotVerified,
        };
        // (A staging host not finished in an earlier run runs again in this one first: its
        // tenant's active server waits for its new end.)
        staging
            .entry(h.tenant.clone())
            .or_default()
            .push((h.name.clone(), state));
    }
    let mut finished: HashMap<String, HostRecord> = in_place
        .clone()
        .filter_map(|(h, _)| {
            let r = previous.get(&h.name)?;
            (r.outcome.is_final() && r.finished_at.is_some()).then(|| (h.name.clone(), r.clone()))
        })
        .collect();
    // A record that cannot be read: the host is reported, not worked on (its file is kept).
    for (h, p) in in_place.clone() {
        if let Some(why) = unreadable.get(&h.name) {
            let mut r = HostRecord::new(h, p);
            r.outcome = HostOutcome::Failed;
            r.message = why.clone();
            finished.insert(h.name.clone(), r);
        }
    }
    let pending = in_place
        .filter(|(h, _)| !finished.contains_key(&h.name))
        .map(|(h, p)| (h, p, previous.remove(&h.name).map(HostRecord::resumed)))
        .collect();
    Selection {
        hosts,
        finished,
        pending,
        staging,
    }
}

/// A host's end as the operator reads it while the run goes on.
fn ended_line(record: &HostRecord, took: std::time::Duration) -> String {
    let took = crate::report::live::short_duration(took);
    match record.outcome {
        HostOutcome::Verified => format!(
            "verified on {} ({} → {}, {took})",
            record.host,
            record.from.as_deref().unwrap_or("?"),
            record.to.as_deref().unwrap_or("?")
        ),
        o => format!(
            "{} on {} ({took}): {}",
            o.as_str(),
            record.host,
            record.message
        ),
    }
}

/// What the engine's failure count and `host-finished` events call a host's end: its
/// outcome's kind (a backup failure, a version mismatch, an operator timeout are not alike).
fn failure_kind(record: &HostRecord) -> Option<ErrorKind> {
    match record.outcome {
        HostOutcome::Refused => Some(ErrorKind::Refused),
        HostOutcome::OperatorTimeout => Some(ErrorKind::OperatorTimeout),
        HostOutcome::VersionMismatch => Some(ErrorKind::VersionMismatch),
        HostOutcome::Failed => Some(
            record
                .phases
                .last()
                .map(|p| ErrorKind::of_failed_phase(p.phase))
                .unwrap_or(ErrorKind::Agent),
        ),
        _ => None,
    }
}

/// The engine's units: each pending host in its plan wave; with a canary of `canary` hosts,
/// the canary's waves first and every other host's after them, so that a gate between them
/// decides. Returns the units and the canary's last wave.
fn units<'a>(pending: &[Pending<'a>], canary: usize) -> (Vec<Unit<Pending<'a>>>, Option<u32>) {
    let canary_last = pending[..canary].iter().map(|(_, p, _)| p.wave).max();
    let offset = canary_last.unwrap_or(0);
    let units = pending
        .iter()
        .enumerate()
        .map(|(i, (h, p, earlier))| Unit {
            name: h.name.clone(),
            wave: if i < canary { p.wave } else { p.wave + offset },
            item: (*h, *p, earlier.clone()),
        })
        .collect();
    (units, canary_last)
}

/// Runs the plan's in-place hosts on the engine, once, in the plan's waves; with a canary, its
/// first `canary` hosts first, and the rest only when they all passed (or
/// `continue_after_canary`). One failure budget across all of it.
pub async fn run(inputs: RunInputs<'_>, shutdown: Shutdown, events: &EventSink) -> RunReport {
    let started_at = jiff::Timestamp::now();
    let selection = select(
        inputs.inventory,
        inputs.plan,
        inputs.previous,
        inputs.unreadable,
    );
    let cx = RunContext {
        run_id: inputs.run_id,
        plan: inputs.plan,
        target: inputs.installer.version,
        installer: inputs.installer,
        playbook: inputs.playbook,
        share: inputs.share,
        catalog: inputs.catalog,
        today: inputs.today,
        connector: inputs.connector,
        events,
        ledger: inputs.ledger,
        windows: (!inputs.ignore_windows).then(|| {
            inputs
                .inventory
                .tenants
                .iter()
                .filter_map(|t| Some((t.name.clone(), t.maintenance_window.clone()?)))
                .collect()
        }),
        wait_for_window: inputs.wait_for_window,
        staging: Mutex::new(selection.staging),
        handoff_notices: crate::notify::handoff::HandoffNotices::new(
            inputs.inventory,
            inputs.run_id,
            inputs.ledger.dir.clone(),
            events.clone(),
        ),
    };
    let settings = EngineSettings {
        concurrency: inputs.concurrency,
        host_deadline: inputs.playbook.host_deadline() + cx.longest_wait(),
        failure_budget: inputs.failure_budget,
    };
    let pending = &selection.pending;
    let canary = inputs.canary.map(|n| n.min(pending.len())).unwrap_or(0);
    let (units, canary_last) = units(pending, canary);
    let canary_names: Vec<String> = pending[..canary]
        .iter()
        .map(|(h, _, _)| h.name.clone())
        .collect();
    let gate = canary_last
        .filter(|_| !inputs.continue_after_canary)
        .map(|after| engine::Gate {
            after,
            check: Box::new(move |so_far: &[&Result<HostRecord, HostError>]| {
                let passed = |name: &str| {
                    so_far.iter().any(|r| {
                        r.as_ref()
                            .is_ok_and(|r| r.host == name && r.outcome == HostOutcome::Verified)
                    })
                };
                let failed: Vec<&str> = canary_names
                    .iter()
                    .map(String::as_str)
                    .filter(|n| !passed(n))
                    .collect();
                (!failed.is_empty()).then(|| {
                    format!(
                        "not started: the canary ({}) did not all pass; give --continue-after-canary to go on anyway",
                        failed.join(", ")
                    )
                })
            }) as _,
        });
    let judge = engine::Judge {
        failure: Box::new(|r: &Result<HostRecord, HostError>| match r {
            Ok(record) => failure_kind(record),
            Err(e) => {
                (!matches!(e.kind, ErrorKind::Interrupted | ErrorKind::Skipped)).then_some(e.kind)
            }
        }),
        gate,
    };
    let cx = &cx;
    let outcomes = engine::run_judged(
        units,
        &settings,
        shutdown,
        cx.events,
        judge,
        |(h, p, earlier), ctx| async move {
            let began = tokio::time::Instant::now();
            let record = match cx.staging_holds_back(h).map_or_else(|| cx.hold(h), Err) {
                Ok(hold) => {
                    let record = host::upgrade_host(h, p, cx, ctx, earlier).await;
                    cx.let_go(hold, &record);
                    record
                }
                Err((outcome, message)) => {
                    let mut r = earlier.unwrap_or_else(|| HostRecord::new(h, p));
                    r.outcome = outcome;
                    r.message = message;
                    r.finished_at = Some(jiff::Timestamp::now().to_string());
                    cx.log(
                        h,
                        Phase::Preflight,
                        "not-started",
                        Some(outcome.as_str()),
                        Some(r.message.clone()),
                    );
                    cx.save(&r);
                    r
                }
            };
            if h.role == Role::Staging {
                cx.staging_ended(&record);
            }
            cx.events.send(engine::Event::HostEnded {
                host: h.name.clone(),
                ok: !record.outcome.is_failure(),
                line: ended_line(&record, began.elapsed()),
            });
            Ok(record)
        },
    )
    .await;
    cx.handoff_notices.finish().await;
    report(
        cx,
        &selection.hosts,
        selection.finished,
        pending,
        outcomes,
        started_at,
    )
}

/// The report from every host's record (and the engine's word for hosts that never started).
fn report(
    cx: &RunContext<'_>,
    hosts: &[Planned<'_>],
    finished: HashMap<String, HostRecord>,
    pending: &[Pending<'_>],
    outcomes: Vec<engine::Outcome<HostRecord>>,
    started_at: jiff::Timestamp,
) -> RunReport {
    // The records the ledger's writer still has, on disk before they are read below.
    let _ = cx.ledger.flush();
    let mut by_host = finished;
    for ((h, p, earlier), o) in pending.iter().zip(outcomes) {
        let r = match o.result {
            Ok(record) => record,
            Err(e) => {
                // Never started: the budget was spent, the canary failed, or the run was
                // interrupted; or dropped in flight by a detach or at the host's deadline.
                // A host dropped in flight has its newest record in the ledger (a hand-off
                // included): that one, never an older copy over it.
                let newest = cx
                    .ledger
                    .read(&format!("hosts/{}/{}.json", h.tenant, h.name))
                    .and_then(|b| serde_json::from_slice::<HostRecord>(&b).ok());
                let mut r = newest
                    .or_else(|| earlier.clone())
                    .unwrap_or_else(|| HostRecord::new(h, p));
                r.outcome = match e.kind {
                    ErrorKind::Skipped => HostOutcome::Skipped,
                    ErrorKind::Interrupted => HostOutcome::Interrupted,
                    _ => HostOutcome::Failed,
                };
                r.message = e.message;
                if e.kind != ErrorKind::Interrupted {
                    cx.save(&r);
                }
                r
            }
        };
        by_host.insert(h.name.clone(), r);
    }
    let records: Vec<HostRecord> = hosts
        .iter()
        .map(|(h, p)| {
            by_host.remove(&h.name).unwrap_or_else(|| {
                let mut r = HostRecord::new(h, p);
                if p.action == Action::TwoHop {
                    // Not run yet: refused, clearly, rather than silently left alone.
                    r.outcome = HostOutcome::Refused;
                    r.message = format!(
                        "a two-hop host ({} → {} → {}): runs take one hop; run it to {} first (plan with --target {}), then to {}",
                        p.from.as_deref().unwrap_or("?"),
                        p.via.as_deref().unwrap_or("?"),
                        p.to.as_deref().unwrap_or("?"),
                        p.via.as_deref().unwrap_or("?"),
                        p.via.as_deref().unwrap_or("?"),
                        p.to.as_deref().unwrap_or("?")
                    );
                } else {
                    r.outcome = HostOutcome::Untouched;
                    r.message = format!("the plan says {}: not touched", p.action.as_str());
                }
                r
            })
        })
        .collect();
    let stamp = |t: jiff::Timestamp| t.round(jiff::Unit::Second).unwrap_or(t).to_string();
    RunReport {
        schema_version: REPORT_SCHEMA_VERSION,
        kind: "ecfleet-run-report".into(),
        run_id: cx.run_id.into(),
        ledger: cx.ledger.dir.display().to_string(),
        target: cx.target.to_string(),
        started_at: stamp(started_at),
        finished_at: stamp(jiff::Timestamp::now()),
        summary: RunSummary::of(&records),
        hosts: records,
        ledger_errors: cx.ledger.errors(),
        in_progress: None,
    }
}

/// A run as its ledger has it (`ecfleet report`): the summary when the run finished, else the
/// plan and the host records so far: a run a live controller drives (`in_progress`, each
/// unfinished host `in-progress` at its open phase), or one whose controller stopped.
pub fn report_from_ledger(dir: &Path, this_controller: &str) -> Result<RunReport, String> {
    let read = |name: &str| crate::fsread::read_regular(&dir.join(name), 256 << 20).ok();
    let driver = crate::lock::held_by_live(&dir.join("lock"), this_controller);
    if driver.is_none()
        && let Some(bytes) = read("summary.json")
    {
        return serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}/summary.json: {e}", dir.display()));
    }
    let plan: Plan = read("plan.json")
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| format!("{} is not a run's ledger (no plan.json)", dir.display()))?;
    let header: serde_json::Value = read("run.json")
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let run_id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let records: Vec<HostRecord> = plan
        .hosts
        .iter()
        .map(|p| {
            let mut r = read(&format!("hosts/{}/{}.json", p.tenant, p.host))
                .and_then(|b| serde_json::from_slice::<HostRecord>(&b).ok())
                .unwrap_or_else(|| HostRecord {
                    outcome: if p.action == Action::InPlace {
                        HostOutcome::Interrupted
                    } else {
                        HostOutcome::Untouched
                    },
                    message: if p.action == Action::InPlace {
                        "not started yet".into()
                    } else {
                        format!("the plan says {}: not touched", p.action.as_str())
                    },
                    ..HostRecord::from_plan(p)
                });
            if driver.is_some() && p.action == Action::InPlace && r.finished_at.is_none() {
                r.outcome = HostOutcome::InProgress;
                r.message = match r.phases.iter().rev().find(|ph| ph.ended_at.is_none()) {
                    Some(open) => format!("in {} since {}", open.phase, open.started_at),
                    None if r.handed_off_at.is_some() => "with the operator".into(),
                    None => "not started yet".into(),
                };
            }
            r
        })
        .collect();
    let (in_progress, note) = match &driver {
        Some(h) => (
            Some(format!(
                "in progress (pid {} on {}{}, since {})",
                h.pid,
                h.controller,
                h.user
                    .as_deref()
                    .map(|u| format!(", user {u}"))
                    .unwrap_or_default(),
                h.since
            )),
            Vec::new(),
        ),
        None => (
            None,
            vec![format!(
                "the run has no summary: its controller stopped; carry it on with `ecfleet run --resume {run_id}`"
            )],
        ),
    };
    Ok(RunReport {
        schema_version: REPORT_SCHEMA_VERSION,
        kind: "ecfleet-run-report".into(),
        run_id,
        ledger: dir.display().to_string(),
        target: plan.target.version.to_string(),
        started_at: header["started_at"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        finished_at: String::new(),
        summary: RunSummary::of(&records),
        hosts: records,
        ledger_errors: note,
        in_progress,
    })
}
