//! `ecfleet stage`: the installer to every selected host on the fleet engine, ahead of the
//! window: facts for the free space, then [`super::stage`]. The report says per host what moved
//! (nothing when the same content was there, the rest of a cut transfer, or all of it).

use std::time::Duration;

use ecfleet_proto::Facts;
use serde::Serialize;

use super::{Installer, Staged};
use crate::engine::{self, EngineSettings, EventSink, FailureBudget, Shutdown, StepContext};
use crate::error::{ErrorKind, HostError};
use crate::inventory::Host;
use crate::session::{Connector, HostSession};

pub const REPORT_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct HostStage {
    pub tenant: String,
    pub host: String,
    pub address: String,
    pub ok: bool,
    pub error: Option<String>,
    pub error_kind: Option<ErrorKind>,
    pub duration_ms: u64,
    pub staged: Option<Staged>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageSummary {
    pub hosts: usize,
    pub staged: usize,
    pub failed: usize,
    /// Hosts that already had the same content: nothing sent.
    pub already_there: usize,
    pub bytes_sent: u64,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    pub schema_version: u32,
    pub kind: String,
    pub generated_at: String,
    pub installer: crate::msi::MsiInfo,
    pub summary: StageSummary,
    pub hosts: Vec<HostStage>,
}

impl StageReport {
    /// 0 staged everywhere; 2 some hosts failed.
    pub fn exit_code(&self) -> u8 {
        if self.summary.failed > 0 {
            crate::exit::INCOMPLETE
        } else {
            crate::exit::OK
        }
    }
}

/// Stages `installer` on `hosts`.
pub async fn run(
    hosts: &[&Host],
    installer: &Installer,
    concurrency: usize,
    host_deadline: Duration,
    connector: &Connector,
    shutdown: Shutdown,
    events: &EventSink,
) -> StageReport {
    let started = std::time::Instant::now();
    let settings = EngineSettings {
        concurrency,
        host_deadline,
        failure_budget: FailureBudget::Unlimited,
    };
    let units = engine::one_wave(hosts.iter().copied(), |h| h.name.clone());
    let outcomes = engine::run(units, &settings, shutdown, events, |host, ctx| {
        stage_host(host, installer, connector, ctx)
    })
    .await;
    let rows: Vec<HostStage> = hosts
        .iter()
        .zip(outcomes)
        .map(|(h, o)| {
            let (staged, error) = match o.result {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(e)),
            };
            HostStage {
                tenant: h.tenant.clone(),
                host: h.name.clone(),
                address: h.endpoint(),
                ok: staged.is_some(),
                error_kind: error.as_ref().map(|e| e.kind),
                error: error.map(|e| e.message),
                duration_ms: o.duration.as_millis() as u64,
                staged,
            }
        })
        .collect();
    let staged = rows.iter().filter(|r| r.ok).count();
    StageReport {
        schema_version: REPORT_SCHEMA_VERSION,
        kind: "ecfleet-stage-report".into(),
        generated_at: {
            let now = jiff::Timestamp::now();
            now.round(jiff::Unit::Second).unwrap_or(now).to_string()
        },
        installer: installer.info.clone(),
        summary: StageSummary {
            hosts: rows.len(),
            staged,
            failed: rows.len() - staged,
            already_there: rows
                .iter()
                .filter(|r| r.staged.as_ref().is_some_and(|s| s.already_there))
                .count(),
            bytes_sent: rows
                .iter()
                .filter_map(|r| r.staged.as_ref())
                .map(|s| s.sent)
                .sum(),
            seconds: started.elapsed().as_secs_f64(),
        },
        hosts: rows,
    }
}

async fn stage_host(
    host: &Host,
    installer: &Installer,
    connector: &Connector,
    ctx: StepContext,
) -> Result<Staged, HostError> {
    let mut session = HostSession::open(host, connector, ctx.deadline).await?;
    let result = async {
        let facts: Facts = session.agent(&ecfleet_proto::step::Step::Facts).await?;
        let (free, drive) = match &facts.disk {
            Some(d) => (Some(d.free_bytes), d.system_drive.clone()),
            None => (None, "the system drive".to_string()),
        };
        super::stage(&mut session, installer, free, &drive).await
    }
    .await;
    session.close().await;
    result
}
