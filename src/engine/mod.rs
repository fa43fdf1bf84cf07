//! The fleet executor: every command that works on many hosts runs them here. Bounded
//! concurrency, a deadline per host (and per step, through [`StepContext::within`]), waves as
//! barriers (wave n+1 starts when all of wave n has finished), a failure budget (once spent, no
//! new host starts), and the two-level shutdown ([`shutdown`]). Results come back in input order
//! whatever order hosts finish in; progress goes out as [`Event`]s. One stuck host never holds
//! up another: it only holds its own slot until its deadline.

pub mod events;
pub mod shutdown;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;

pub use events::{Event, EventSink};
pub use shutdown::{Level, Shutdown, ShutdownTrigger};

use crate::error::{ErrorKind, HostError, Phase};

/// How many failures a run may have before no new host starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureBudget {
    Unlimited,
    /// At most this many failed hosts; the next failure spends it.
    Count(usize),
    /// At most this percentage of the run's hosts.
    Percent(u8),
}

impl FailureBudget {
    /// Whether `failures` of a run of `hosts` spend the budget: once N hosts (or P% of them)
    /// have failed, no new host starts.
    fn spent_by(&self, failures: usize, hosts: usize) -> bool {
        match self {
            FailureBudget::Unlimited => false,
            FailureBudget::Count(n) => failures >= (*n).max(1),
            FailureBudget::Percent(p) => failures >= 1 && failures * 100 >= hosts * *p as usize,
        }
    }

    /// The failures it allows before it is spent, for people (`None`: unlimited).
    fn allowed(&self, hosts: usize) -> Option<usize> {
        match self {
            FailureBudget::Unlimited => None,
            FailureBudget::Count(n) => Some((*n).max(1)),
            FailureBudget::Percent(p) => Some((hosts * *p as usize).div_ceil(100).max(1)),
        }
    }
}

/// How a run judges its hosts' results beyond "an error is a failure": for runs whose work
/// returns a record also when the host failed (`ecfleet run`), and for a gate between waves
/// (the canary).
pub struct Judge<'j, O> {
    /// A result's failure, by kind (`None`: not a failure). Counts against the budget, and is
    /// the `error_kind` of its `host-finished` event.
    pub failure: FailureOf<'j, O>,
    /// After wave `after` has finished, `check` sees the results of every wave so far; a reason
    /// it returns stops the run there: every later host is `skipped` with that reason.
    pub gate: Option<Gate<'j, O>>,
}

/// A result's failure kind, if it is one.
pub type FailureOf<'j, O> =
    Box<dyn Fn(&Result<O, HostError>) -> Option<ErrorKind> + Send + Sync + 'j>;

/// Why the results so far close a gate, if they do.
pub type GateCheck<'j, O> =
    Box<dyn Fn(&[&Result<O, HostError>]) -> Option<String> + Send + Sync + 'j>;

pub struct Gate<'j, O> {
    pub after: u32,
    pub check: GateCheck<'j, O>,
}

impl<O> Default for Judge<'_, O> {
    /// An error is a failure of its own kind, except `interrupted` and `skipped`; no gate.
    fn default() -> Self {
        Judge {
            failure: Box::new(|r| {
                r.as_ref()
                    .err()
                    .filter(|e| counts_as_failure(e))
                    .map(|e| e.kind)
            }),
            gate: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Hosts worked on at once (at least 1).
    pub concurrency: usize,
    /// Everything one host does must finish within this.
    pub host_deadline: Duration,
    pub failure_budget: FailureBudget,
}

/// One host's work item, with the wave it belongs to (waves run in ascending order).
pub struct Unit<T> {
    pub name: String,
    pub wave: u32,
    pub item: T,
}

/// Every item in one wave, named by `name`: for the runs that have no waves (audit, backup,
/// stage).
pub fn one_wave<T>(
    items: impl IntoIterator<Item = T>,
    name: impl Fn(&T) -> String,
) -> Vec<Unit<T>> {
    items
        .into_iter()
        .map(|item| Unit {
            name: name(&item),
            wave: 1,
            item,
        })
        .collect()
}

/// What a host's work sees of the run: its deadline and the shutdown signal.
pub struct StepContext {
    pub deadline: Instant,
    shutdown: Shutdown,
}

impl StepContext {
    /// Whether the run is shutting down: a step at a safe point should stop there.
    pub fn stopping(&self) -> bool {
        self.shutdown.level() >= Level::Stopping
    }

    /// Runs `step` within `limit` (and the host's own deadline, whichever is sooner).
    pub async fn within<T>(
        &self,
        phase: Phase,
        what: &str,
        limit: Duration,
        step: impl Future<Output = Result<T, HostError>>,
    ) -> Result<T, HostError> {
        let until = self.deadline.min(Instant::now() + limit);
        match tokio::time::timeout_at(until, step).await {
            Ok(r) => r,
            Err(_) => Err(HostError::new(
                ErrorKind::Timeout,
                phase,
                format!("{what} did not finish within {} s", limit.as_secs()),
            )),
        }
    }
}

/// One host's result and how long it took.
#[derive(Debug)]
pub struct Outcome<O> {
    pub result: Result<O, HostError>,
    pub duration: Duration,
}

fn counts_as_failure(e: &HostError) -> bool {
    !matches!(e.kind, ErrorKind::Interrupted | ErrorKind::Skipped)
}

/// Outcome of a unit that never ran.
fn not_run<O>(kind: ErrorKind, message: &str) -> Outcome<O> {
    Outcome {
        result: Err(HostError::new(kind, Phase::Schedule, message)),
        duration: Duration::ZERO,
    }
}

/// What the run has seen so far, across waves.
struct RunState<'j, O> {
    outcomes: Vec<Option<Outcome<O>>>,
    failures: usize,
    hosts: usize,
    budget: FailureBudget,
    budget_spent: bool,
    /// Why a gate stopped the run, once one did.
    gated: Option<String>,
    stopping_announced: bool,
    judge: Judge<'j, O>,
}

impl<O> RunState<'_, O> {
    /// Records a unit that will not start: skipped (gate, budget) or interrupted (shutdown).
    fn not_started(&mut self, i: usize) {
        self.outcomes[i] = Some(if let Some(why) = &self.gated {
            not_run(ErrorKind::Skipped, why)
        } else if self.budget_spent {
            not_run(
                ErrorKind::Skipped,
                "not started: the failure budget was spent",
            )
        } else {
            not_run(
                ErrorKind::Interrupted,
                "not started: the run was interrupted",
            )
        });
    }

    /// Records a finished unit, counts it against the budget, tells the reporters.
    fn finished(
        &mut self,
        i: usize,
        name: String,
        result: Result<O, HostError>,
        duration: Duration,
        events: &EventSink,
    ) {
        let failure = (self.judge.failure)(&result);
        if failure.is_some() {
            self.failures += 1;
        }
        events.send(Event::HostFinished {
            host: name,
            ok: failure.is_none(),
            error_kind: failure.or(result.as_ref().err().map(|e| e.kind)),
            duration_ms: duration.as_millis() as u64,
        });
        self.outcomes[i] = Some(Outcome { result, duration });
        if !self.budget_spent && self.budget.spent_by(self.failures, self.hosts) {
            self.budget_spent = true;
            events.send(Event::BudgetSpent {
                failures: self.failures,
                allowed: self.budget.allowed(self.hosts).unwrap_or(usize::MAX),
            });
        }
    }

    /// Whether no new host may start: the budget is spent or a gate closed.
    fn closed(&self) -> bool {
        self.budget_spent || self.gated.is_some()
    }

    /// After wave `wave`: the gate's check, if it is this wave's.
    fn pass_gate(&mut self, wave: u32, events: &EventSink) {
        let Some(gate) = self.judge.gate.as_ref().filter(|g| g.after == wave) else {
            return;
        };
        let so_far: Vec<&Result<O, HostError>> =
            self.outcomes.iter().flatten().map(|o| &o.result).collect();
        if let Some(why) = (gate.check)(&so_far) {
            events.send(Event::GateClosed {
                after_wave: wave,
                reason: why.clone(),
            });
            self.gated = Some(why);
        }
    }
}

/// Runs `work` for every unit and returns the outcomes in the units' order: an error is a
/// failure, no gate ([`run_judged`] for more).
pub async fn run<T, O, F, Fut>(
    units: Vec<Unit<T>>,
    settings: &EngineSettings,
    shutdown: Shutdown,
    events: &EventSink,
    work: F,
) -> Vec<Outcome<O>>
where
    F: Fn(T, StepContext) -> Fut,
    Fut: Future<Output = Result<O, HostError>>,
{
    run_judged(units, settings, shutdown, events, Judge::default(), work).await
}

/// Runs `work` for every unit, judging results with `judge`, and returns the outcomes in the
/// units' order. One `run-started` and one `run-finished`; one failure budget across every
/// wave, gate or not.
pub async fn run_judged<T, O, F, Fut>(
    units: Vec<Unit<T>>,
    settings: &EngineSettings,
    mut shutdown: Shutdown,
    events: &EventSink,
    judge: Judge<'_, O>,
    work: F,
) -> Vec<Outcome<O>>
where
    F: Fn(T, StepContext) -> Fut,
    Fut: Future<Output = Result<O, HostError>>,
{
    let total = units.len();
    let waves = units
        .iter()
        .map(|u| u.wave)
        .collect::<std::collections::BTreeSet<_>>()
        .len() as u32;
    events.send(Event::RunStarted {
        hosts: total,
        waves,
    });
    let mut state = RunState {
        outcomes: (0..total).map(|_| None).collect(),
        failures: 0,
        hosts: total,
        budget: settings.failure_budget,
        budget_spent: false,
        gated: None,
        stopping_announced: false,
        judge,
    };
    let mut waves: BTreeMap<u32, Vec<(usize, String, T)>> = BTreeMap::new();
    for (i, u) in units.into_iter().enumerate() {
        waves.entry(u.wave).or_default().push((i, u.name, u.item));
    }
    for (wave, members) in waves {
        if shutdown.level() >= Level::Stopping || state.closed() {
            for (i, _, _) in members {
                state.not_started(i);
            }
            continue;
        }
        let before = state.failures;
        events.send(Event::WaveStarted {
            wave,
            hosts: members.len(),
        });
        run_wave(
            wave,
            members,
            settings,
            &mut shutdown,
            events,
            &work,
            &mut state,
        )
        .await;
        events.send(Event::WaveFinished {
            wave,
            failures: state.failures - before,
        });
        state.pass_gate(wave, events);
    }
    let outcomes: Vec<Outcome<O>> = state
        .outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| not_run(ErrorKind::Interrupted, "not started")))
        .collect();
    let not_started = outcomes
        .iter()
        .filter(|o| {
            o.result
                .as_ref()
                .is_err_and(|e| matches!(e.kind, ErrorKind::Interrupted | ErrorKind::Skipped))
        })
        .count();
    events.send(Event::RunFinished {
        hosts: total,
        failures: state.failures,
        not_finished: not_started,
    });
    outcomes
}

/// One wave: start units while a slot is free (and no shutdown or spent budget says stop),
/// collect them as they finish, and on a detach drop what is in flight.
async fn run_wave<T, O, F, Fut>(
    wave: u32,
    members: Vec<(usize, String, T)>,
    settings: &EngineSettings,
    shutdown: &mut Shutdown,
    events: &EventSink,
    work: &F,
    state: &mut RunState<'_, O>,
) where
    F: Fn(T, StepContext) -> Fut,
    Fut: Future<Output = Result<O, HostError>>,
{
    let mut pending = members.into_iter();
    let mut running = FuturesUnordered::new();
    let mut in_flight: Vec<usize> = Vec::new();
    loop {
        while running.len() < settings.concurrency.max(1)
            && shutdown.level() < Level::Stopping
            && !state.closed()
        {
            let Some((i, name, item)) = pending.next() else {
                break;
            };
            events.send(Event::HostStarted {
                host: name.clone(),
                wave,
            });
            in_flight.push(i);
            running.push(start(i, name, item, settings, shutdown.clone(), work));
        }
        if running.is_empty() {
            break;
        }
        let watched = if state.stopping_announced {
            Level::Detach
        } else {
            Level::Stopping
        };
        tokio::select! {
            Some((i, name, result, duration)) = running.next() => {
                in_flight.retain(|j| *j != i);
                state.finished(i, name, result, duration, events);
            }
            _ = shutdown.reached(watched) => {
                if watched == Level::Stopping {
                    state.stopping_announced = true;
                    events.send(Event::Stopping);
                } else {
                    // Detach: the in-flight futures are dropped here, where they stand.
                    drop(running);
                    events.send(Event::Detached { hosts: in_flight.len() });
                    for i in in_flight.drain(..) {
                        state.outcomes[i] = Some(not_run(
                            ErrorKind::Interrupted,
                            "interrupted while it was being worked on (the run was detached)",
                        ));
                    }
                    break;
                }
            }
        }
    }
    for (i, _, _) in pending {
        state.not_started(i);
    }
}

/// One unit's work under its host deadline.
async fn start<T, O, F, Fut>(
    i: usize,
    name: String,
    item: T,
    settings: &EngineSettings,
    shutdown: Shutdown,
    work: &F,
) -> (usize, String, Result<O, HostError>, Duration)
where
    F: Fn(T, StepContext) -> Fut,
    Fut: Future<Output = Result<O, HostError>>,
{
    let started = Instant::now();
    let deadline = started + settings.host_deadline;
    let ctx = StepContext { deadline, shutdown };
    let result = match tokio::time::timeout_at(deadline, work(item, ctx)).await {
        Ok(r) => r,
        Err(_) => Err(HostError::new(
            ErrorKind::Timeout,
            Phase::Agent,
            format!(
                "no answer within the host deadline of {} s (host_deadline_secs)",
                settings.host_deadline.as_secs()
            ),
        )),
    };
    (i, name, result, started.elapsed())
}
