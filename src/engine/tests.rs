//! The engine under tokio's paused clock, with hosts from the in-memory fake transport
//! (`transport::fake`, a stand-in: no sockets) opened through the real `HostSession`: deadlines,
//! cancellation, waves, the failure budget and the concurrency bound, each in well under a
//! second of real time.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::inventory::Host;
use crate::session::{AgentBuild, AgentBuilds, Connector, HostSession, LazyBuild};
use crate::transport::fake::{FakeHost, FakeNetwork};
use crate::transport::{self, Payload};

fn agents() -> AgentBuilds {
    AgentBuilds {
        linux: Some(LazyBuild::ready(AgentBuild {
            path: "ecfleet-agent".into(),
            payload: Payload::new(Bytes::from_static(b"fake agent")),
        })),
        windows: None,
    }
}

/// A fleet of fake hosts: `behave(i)` says how host `i` behaves.
fn fleet(n: usize, behave: impl Fn(usize) -> FakeHost) -> (Vec<Host>, Connector) {
    let agents = agents();
    let mut network = FakeNetwork::new(agents.linux.as_ref().unwrap().get().unwrap().sha256());
    let hosts: Vec<Host> = (0..n)
        .map(|i| crate::testing::lab_host(&format!("h{i:03}"), "t"))
        .collect();
    for (i, h) in hosts.iter().enumerate() {
        network.hosts.insert(h.name.clone(), behave(i));
    }
    (
        hosts,
        Connector::new(transport::Connector::fake(network), agents),
    )
}

fn settings(concurrency: usize) -> EngineSettings {
    EngineSettings {
        concurrency,
        host_deadline: Duration::from_secs(30),
        failure_budget: FailureBudget::Unlimited,
    }
}

/// Any JSON the fake hosts answer, taken as an agent document (the fakes speak no real one).
#[derive(Debug, serde::Deserialize)]
#[serde(transparent)]
struct AnyAnswer(serde_json::Value);

impl ecfleet_proto::step::Document for AnyAnswer {
    const KIND: &'static str = "any";
    const SCHEMA_VERSION: u32 = 1;
    fn kind(&self) -> &str {
        Self::KIND
    }
    fn schema_version(&self) -> u32 {
        Self::SCHEMA_VERSION
    }
}

async fn facts_of(
    host: &Host,
    connector: &Connector,
    ctx: StepContext,
) -> Result<AnyAnswer, HostError> {
    let mut session = HostSession::open(host, connector, ctx.deadline).await?;
    let answer = session.agent(&ecfleet_proto::step::Step::Facts).await;
    session.close().await;
    answer
}

fn units(hosts: &[Host], wave_of: impl Fn(usize) -> u32) -> Vec<Unit<&Host>> {
    hosts
        .iter()
        .enumerate()
        .map(|(i, h)| Unit {
            name: h.name.clone(),
            wave: wave_of(i),
            item: h,
        })
        .collect()
}

fn quick() -> FakeHost {
    FakeHost::answering("{\"ok\":true}", Duration::from_millis(100))
}

#[tokio::test(start_paused = true)]
async fn a_hung_host_hits_its_deadline_while_99_others_finish() {
    let (hosts, connector) = fleet(100, |i| {
        if i == 42 {
            FakeHost::answering("{}", Duration::from_secs(3600))
        } else {
            quick()
        }
    });
    let started = Instant::now();
    let out = run(
        units(&hosts, |_| 1),
        &settings(16),
        Shutdown::never(),
        &EventSink::none(),
        |h, ctx| facts_of(h, &connector, ctx),
    )
    .await;
    assert_eq!(out.iter().filter(|o| o.result.is_ok()).count(), 99);
    let hung = out[42].result.as_ref().unwrap_err();
    assert_eq!(hung.kind, ErrorKind::Timeout, "{hung:?}");
    assert!(hung.message.contains("30 s"), "{}", hung.message);
    // The other 99 did not wait for it: the run took the deadline, not an hour.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_secs(32),
        "{took:?}"
    );
    assert_eq!(out[0].result.as_ref().unwrap().0["ok"], true);
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_never_exceeded() {
    let (hosts, connector) = fleet(50, |_| quick());
    let most = connector_most_open(&connector);
    let out = run(
        units(&hosts, |_| 1),
        &settings(7),
        Shutdown::never(),
        &EventSink::none(),
        |h, ctx| facts_of(h, &connector, ctx),
    )
    .await;
    assert!(out.iter().all(|o| o.result.is_ok()));
    let most = most.load(Ordering::SeqCst);
    assert!((1..=7).contains(&most), "{most} connections at once");
}

fn connector_most_open(connector: &Connector) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    connector.fake_network().expect("fake").most_open.clone()
}

#[tokio::test(start_paused = true)]
async fn waves_are_barriers() {
    // Wave 1's hosts are slow; wave 2's are quick. Nothing of wave 2 may start before all of
    // wave 1 has finished.
    let (hosts, connector) = fleet(12, |i| {
        if i < 6 {
            FakeHost::answering("{}", Duration::from_secs(5 + i as u64))
        } else {
            quick()
        }
    });
    let (sink, mut rx) = EventSink::channel();
    let out = run(
        units(&hosts, |i| if i < 6 { 1 } else { 2 }),
        &settings(20),
        Shutdown::never(),
        &sink,
        |h, ctx| facts_of(h, &connector, ctx),
    )
    .await;
    assert!(out.iter().all(|o| o.result.is_ok()));
    drop(sink);
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    let last_wave1_finish = events
        .iter()
        .rposition(|e| matches!(e, Event::HostFinished { host, .. } if host.as_str() < "h006"))
        .unwrap();
    let first_wave2_start = events
        .iter()
        .position(|e| matches!(e, Event::HostStarted { wave: 2, .. }))
        .unwrap();
    assert!(last_wave1_finish < first_wave2_start, "{events:#?}");
}

#[tokio::test(start_paused = true)]
async fn a_spent_failure_budget_stops_the_next_wave() {
    let (hosts, connector) = fleet(10, |i| {
        if i < 3 {
            FakeHost::refusing(ErrorKind::Auth, "authentication failed")
        } else {
            quick()
        }
    });
    let mut s = settings(10);
    s.failure_budget = FailureBudget::Count(2);
    let (sink, mut rx) = EventSink::channel();
    let out = run(
        units(&hosts, |i| if i < 5 { 1 } else { 2 }),
        &s,
        Shutdown::never(),
        &sink,
        |h, ctx| facts_of(h, &connector, ctx),
    )
    .await;
    for o in &out[..3] {
        assert_eq!(o.result.as_ref().unwrap_err().kind, ErrorKind::Auth);
    }
    for o in &out[5..] {
        let e = o.result.as_ref().unwrap_err();
        assert_eq!(e.kind, ErrorKind::Skipped, "{e:?}");
    }
    drop(sink);
    let mut spent = false;
    while let Ok(e) = rx.try_recv() {
        spent |= matches!(
            e,
            Event::BudgetSpent {
                failures: 2,
                allowed: 2
            }
        );
        assert!(
            !matches!(e, Event::HostStarted { wave: 2, .. }),
            "wave 2 started"
        );
    }
    assert!(spent);
}

#[tokio::test(start_paused = true)]
async fn the_first_stop_lets_running_hosts_finish_and_starts_no_more() {
    let (hosts, connector) = fleet(10, |_| FakeHost::answering("{}", Duration::from_secs(10)));
    let (trigger, shutdown) = shutdown::channel();
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        trigger.escalate();
    });
    let out = run(
        units(&hosts, |_| 1),
        &settings(4),
        shutdown,
        &EventSink::none(),
        |h, ctx| facts_of(h, &connector, ctx),
    )
    .await;
    stopper.await.unwrap();
    assert!(
        out[..4].iter().all(|o| o.result.is_ok()),
        "in-flight hosts finished: {out:?}"
    );
    for o in &out[4..] {
        assert_eq!(o.result.as_ref().unwrap_err().kind, ErrorKind::Interrupted);
    }
}

#[tokio::test(start_paused = true)]
async fn the_second_stop_detaches_mid_step_at_once() {
    let (hosts, connector) = fleet(6, |_| FakeHost::answering("{}", Duration::from_secs(600)));
    let (trigger, shutdown) = shutdown::channel();
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        trigger.escalate();
        tokio::time::sleep(Duration::from_secs(1)).await;
        trigger.escalate();
    });
    let started = Instant::now();
    let out = run(
        units(&hosts, |_| 1),
        &settings(3),
        shutdown,
        &EventSink::none(),
        |h, ctx| facts_of(h, &connector, ctx),
    )
    .await;
    stopper.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    for o in &out {
        assert_eq!(o.result.as_ref().unwrap_err().kind, ErrorKind::Interrupted);
    }
    assert!(
        out[0]
            .result
            .as_ref()
            .unwrap_err()
            .message
            .contains("detached")
    );
    assert_eq!(
        connector
            .fake_network()
            .unwrap()
            .open
            .load(Ordering::SeqCst),
        0,
        "every connection was dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn a_step_deadline_is_shorter_than_the_hosts() {
    let (trigger, shutdown) = shutdown::channel();
    drop(trigger);
    let ctx = StepContext {
        deadline: Instant::now() + Duration::from_secs(60),
        shutdown,
    };
    let err = ctx
        .within(
            Phase::Agent,
            "the backup export",
            Duration::from_secs(5),
            async {
                tokio::time::sleep(Duration::from_secs(20)).await;
                Ok(())
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout);
    assert!(
        err.message
            .contains("the backup export did not finish within 5 s")
    );
}

/// Work that fails the hosts `failing` says, at once: the engine alone, no transport.
async fn outcome_of(i: usize, failing: fn(usize) -> bool) -> Result<usize, HostError> {
    tokio::time::sleep(Duration::from_millis(10)).await;
    if failing(i) {
        Err(HostError::new(ErrorKind::Agent, Phase::Agent, "failed"))
    } else {
        Ok(i)
    }
}

fn numbered(n: usize, wave_of: impl Fn(usize) -> u32) -> Vec<Unit<usize>> {
    (0..n)
        .map(|i| Unit {
            name: format!("h{i:03}"),
            wave: wave_of(i),
            item: i,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn once_n_hosts_have_failed_no_new_host_starts() {
    // One at a time, every host failing: --max-failures 2 means two hosts ran, not three.
    let mut s = settings(1);
    s.failure_budget = FailureBudget::Count(2);
    let out = run(
        numbered(6, |_| 1),
        &s,
        Shutdown::never(),
        &EventSink::none(),
        |i, _| outcome_of(i, |_| true),
    )
    .await;
    let kinds: Vec<ErrorKind> = out
        .iter()
        .map(|o| o.result.as_ref().unwrap_err().kind)
        .collect();
    assert_eq!(
        kinds,
        [
            ErrorKind::Agent,
            ErrorKind::Agent,
            ErrorKind::Skipped,
            ErrorKind::Skipped,
            ErrorKind::Skipped,
            ErrorKind::Skipped
        ]
    );
    // 25% of 8 hosts: the second failure spends it.
    s.failure_budget = FailureBudget::Percent(25);
    let out = run(
        numbered(8, |_| 1),
        &s,
        Shutdown::never(),
        &EventSink::none(),
        |i, _| outcome_of(i, |_| true),
    )
    .await;
    let ran = out
        .iter()
        .filter(|o| o.result.as_ref().unwrap_err().kind == ErrorKind::Agent)
        .count();
    assert_eq!(ran, 2);
}

#[tokio::test(start_paused = true)]
async fn a_gate_stops_the_later_waves_and_the_budget_spans_the_gate() {
    // Waves 1 (the canary) and 2, 3: the gate after wave 1 passes (nothing failed there), and
    // the one budget of 2 counts wave 1's failure with wave 2's.
    let mut s = settings(1);
    s.failure_budget = FailureBudget::Count(2);
    let (sink, mut rx) = EventSink::channel();
    let judge = Judge {
        gate: Some(Gate {
            after: 1,
            check: Box::new(|so_far: &[&Result<usize, HostError>]| {
                (so_far.iter().filter(|r| r.is_err()).count() > 1).then(|| "canary".to_string())
            }),
        }),
        ..Judge::default()
    };
    let out = run_judged(
        numbered(6, |i| if i < 2 { 1 } else { 2 + (i as u32 % 2) }),
        &s,
        Shutdown::never(),
        &sink,
        judge,
        |i, _| outcome_of(i, |i| i == 1 || i == 2),
    )
    .await;
    let failed: Vec<usize> = (0..6)
        .filter(|i| {
            out[*i]
                .result
                .as_ref()
                .is_err_and(|e| e.kind == ErrorKind::Agent)
        })
        .collect();
    assert_eq!(
        failed,
        [1, 2],
        "one budget across the gate: spent at the second failure"
    );
    assert!(out[3..].iter().all(|o| {
        o.result
            .as_ref()
            .is_err_and(|e| e.kind == ErrorKind::Skipped)
    }));
    drop(sink);
    let mut started = 0;
    let mut finished = 0;
    while let Ok(e) = rx.try_recv() {
        match e {
            Event::RunStarted { hosts, waves } => {
                assert_eq!((hosts, waves), (6, 3));
                started += 1;
            }
            Event::RunFinished {
                hosts,
                failures,
                not_finished,
            } => {
                assert_eq!((hosts, failures, not_finished), (6, 2, 3));
                finished += 1;
            }
            _ => {}
        }
    }
    assert_eq!((started, finished), (1, 1));

    // A gate that closes: the later waves are skipped with its reason.
    let judge = Judge {
        gate: Some(Gate {
            after: 1,
            check: Box::new(|so_far: &[&Result<usize, HostError>]| {
                so_far
                    .iter()
                    .any(|r| r.is_err())
                    .then(|| "the canary did not pass".to_string())
            }),
        }),
        ..Judge::default()
    };
    let out = run_judged(
        numbered(4, |i| if i < 2 { 1 } else { 2 }),
        &settings(4),
        Shutdown::never(),
        &EventSink::none(),
        judge,
        |i, _| outcome_of(i, |i| i == 0),
    )
    .await;
    for o in &out[2..] {
        let e = o.result.as_ref().unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::Skipped, "the canary did not pass")
        );
    }
}
