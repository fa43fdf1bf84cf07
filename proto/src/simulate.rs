//! How a simulated machine reports itself: a [`Machine`] (`machine.toml`) rendered as the
//! [`Facts`] a real Windows host would report at a given instant, with run and file times
//! relative to it. The agent's lab backend serves these (and applies the machine's faults);
//! the controller's tests describe their healthy host with the same rendering.

use jiff::{SignedDuration, Timestamp};

use crate::lab::{Machine, MachineConnector, MachineEc};
use crate::{
    ConnectorFacts, DatabaseFacts, DotNetFacts, ENTRA_CONNECTOR_ID, EcFacts, EngineConfigFacts,
    Facts, OsFacts, RunResult, SchedulerFacts, ServiceFacts,
};

fn minutes_before(now: Timestamp, minutes: u32) -> String {
    (now - SignedDuration::from_mins(minutes as i64)).to_string()
}

impl Machine {
    /// The facts the simulated machine reports at `now` (to the second), as agent
    /// `agent_version` of the lab backend; injected faults are the agent's to apply.
    pub fn facts_at(&self, now: Timestamp, agent_version: &str) -> Facts {
        facts_at(self, now, agent_version)
    }
}

fn facts_at(m: &Machine, now: Timestamp, agent_version: &str) -> Facts {
    let now = now.round(jiff::Unit::Second).unwrap_or(now);
    let mut f = Facts::new("lab", agent_version, now.to_string());
    f.host_name = Some(m.host.name.clone());
    f.os = Some(OsFacts {
        caption: m.os.caption.clone(),
        version: m.os.version.clone(),
        build: m.os.build,
        installation_type: m.os.installation_type.clone(),
    });
    f.dotnet = Some(DotNetFacts {
        release: m.dotnet.release,
    });
    f.tls12 = Some(m.tls12.clone());
    f.disk = Some(m.disk.clone());
    f.uninstall = Some(m.uninstall.clone());
    f.open_ui = Some(m.open_ui.clone());
    f.language_mode = Some(m.language_mode.clone());
    f.upgrade_activity = Some(crate::UpgradeActivity {
        installer_running: m.activity.installer_running,
        installer_events: m
            .installer_events
            .iter()
            .rev()
            .map(|e| crate::UpgradeEvent {
                time: e.at.clone(),
                id: e.id,
                message: e.message.clone(),
            })
            .collect(),
        wizard_log_tail: Vec::new(),
        events: m
            .upgrade
            .iter()
            .filter(|u| u.event_id != 0)
            .map(|u| crate::UpgradeEvent {
                time: u.completed_at.clone(),
                id: u.event_id,
                message: u.event_message.clone(),
            })
            .collect(),
    });
    f.trusted_sites = Some(crate::TrustedSitesFacts {
        policy: m.wizard_sign_in.trusted_by_policy,
        profiles: m.wizard_sign_in.trusted_for_profiles.clone(),
        profiles_checked: m.wizard_sign_in.loaded_profiles,
    });
    match &m.ec {
        Some(ec) => installed(m, ec, now, &mut f),
        None => not_installed(&mut f),
    }
    f
}

/// What an installed Entra Connect reports: versions, services, scheduler, runs and the rest.
fn installed(m: &Machine, ec: &MachineEc, now: Timestamp, f: &mut Facts) {
    let engine = format!(r"{}\Bin\miiserver.exe", ec.install_dir);
    f.ec = Some(EcFacts {
        engine_path: Some(engine),
        engine_file_version: Some(ec.engine_version.clone()),
        engine_product_version: Some(ec.engine_version.clone()),
        config_version: Some(ec.config_version.clone()),
        wizard_version: ec.wizard_version.clone(),
    });
    f.adsync_service = Some(ServiceFacts {
        name: "ADSync".into(),
        display_name: Some("Microsoft Azure AD Sync".into()),
        state: m.service.state.clone(),
        start_mode: Some(m.service.start_mode.clone()),
    });
    let s = &m.scheduler;
    f.scheduler = Some(SchedulerFacts {
        sync_cycle_enabled: Some(s.sync_cycle_enabled),
        staging_mode_enabled: Some(s.staging_mode_enabled),
        scheduler_suspended: Some(s.scheduler_suspended),
        sync_cycle_in_progress: Some(s.sync_cycle_in_progress),
        maintenance_enabled: Some(s.maintenance_enabled),
        next_sync_cycle_start_utc: Some(
            (now + SignedDuration::from_mins(s.next_cycle_in_minutes as i64)).to_string(),
        ),
        effective_interval_minutes: Some(s.interval_minutes),
    });
    let upgraded: Option<Timestamp> = m.upgrade.as_ref().and_then(|u| u.completed_at.parse().ok());
    let mut overrides: Vec<crate::ConnectorOverride> = Vec::new();
    let mut runs: Vec<RunResult> = Vec::new();
    for r in &m.runs {
        let (end, took) = match (r.after_upgrade_seconds, upgraded) {
            (Some(after), Some(at)) => {
                (at + m.real(after.into()), m.real(r.duration_seconds.into()))
            }
            (Some(_), None) => continue,
            (None, _) => (
                now - SignedDuration::from_mins(r.age_minutes as i64),
                SignedDuration::from_secs(r.duration_seconds as i64),
            ),
        };
        let start = end - took;
        // A full step of the cycle after the upgrade that has not ended is still an override
        // (Get-ADSyncSchedulerConnectorOverride) until it ends.
        let full_import = r.run_profile == "Full Import";
        let full_sync = r.run_profile == "Full Synchronization";
        if r.after_upgrade_seconds.is_some() && (full_import || full_sync) && end > now {
            match overrides.iter_mut().find(|o| o.connector == r.connector) {
                Some(o) => {
                    o.full_import_required |= full_import;
                    o.full_sync_required |= full_sync;
                }
                None => overrides.push(crate::ConnectorOverride {
                    connector: r.connector.clone(),
                    full_import_required: full_import,
                    full_sync_required: full_sync,
                }),
            }
        }
        if start > now {
            // Not started yet.
            continue;
        }
        let ended = end <= now;
        // A run in progress reads as Windows shows it: `in-progress`, IsRunComplete false.
        runs.push(RunResult {
            connector: r.connector.clone(),
            run_profile: r.run_profile.clone(),
            result: if ended {
                r.result.clone()
            } else {
                "in-progress".into()
            },
            start: Some(start.to_string()),
            end: ended.then(|| end.to_string()),
            complete: Some(ended),
        });
    }
    f.connector_overrides = Some(overrides);
    f.entra_auth = m.entra_auth.as_ref().map(|t| crate::EntraAuthFacts {
        identity_type: t.clone(),
    });
    // Newest first: a run in progress before every ended one.
    runs.sort_by(|a, b| match (&a.end, &b.end) {
        (None, None) => b.start.cmp(&a.start),
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(x), Some(y)) => y.cmp(x),
    });
    f.run_history = Some(runs);
    f.auto_upgrade = m.auto_upgrade.clone();
    f.health_agent = Some(
        m.health_agent
            .iter()
            .map(|h| ServiceFacts {
                name: h.name.clone(),
                display_name: Some(h.display_name.clone()),
                state: h.state.clone(),
                start_mode: Some(h.start_mode.clone()),
            })
            .collect(),
    );
    f.sync_rules = Some(m.sync_rules.clone());
    f.database = Some(database(m, &ec.install_dir));
    f.engine_config = Some(engine_config(m, &ec.install_dir, now));
    f.connectors = Some(connectors(m.connectors.as_deref()));
}

/// Without Entra Connect: no ADSync service, and every ADSync probe fails as on Windows.
fn not_installed(f: &mut Facts) {
    f.adsync_service = Some(ServiceFacts {
        name: "ADSync".into(),
        display_name: None,
        state: "NotFound".into(),
        start_mode: None,
    });
    for probe in [
        "ec",
        "scheduler",
        "run_history",
        "auto_upgrade",
        "sync_rules",
        "database",
        "engine_config",
        "connectors",
        "connector_overrides",
        "entra_auth",
    ] {
        f.probe_failed(
            probe,
            "The term 'Get-ADSyncScheduler' is not recognized: the ADSync module is not installed",
        );
    }
}

fn database(m: &Machine, install_dir: &str) -> DatabaseFacts {
    let db = &m.database;
    if db.local_db {
        DatabaseFacts {
            local_db: true,
            server: Some("(localdb)".into()),
            instance: Some(r".\ADSync2019".into()),
            data_file: Some(format!(r"{install_dir}\Data\ADSync2019\ADSync.mdf")),
            data_file_bytes: Some(db.size_mb.saturating_mul(1 << 20)),
        }
    } else {
        DatabaseFacts {
            local_db: false,
            server: Some(db.sql_server.clone()),
            instance: None,
            data_file: None,
            data_file_bytes: None,
        }
    }
}

/// The engine was installed 90 days before collection; an edited configuration file was
/// written 30 days later.
fn engine_config(m: &Machine, install_dir: &str, now: Timestamp) -> EngineConfigFacts {
    let installed = minutes_before(now, 90 * 24 * 60);
    let written = if m.engine_config.edited {
        minutes_before(now, 60 * 24 * 60)
    } else {
        installed.clone()
    };
    EngineConfigFacts {
        path: format!(r"{install_dir}\Bin\miiserver.exe.config"),
        edited_after_install: crate::edited_after_install(&written, &installed),
        last_write: Some(written),
        engine_last_write: Some(installed),
        diagnostic_source_redirect: m.engine_config.diagnostic_source_redirect,
    }
}

/// The machine's connectors, or the usual pair: one AD forest and Microsoft Entra ID.
fn connectors(listed: Option<&[MachineConnector]>) -> Vec<ConnectorFacts> {
    match listed {
        Some(list) => list
            .iter()
            .map(|c| ConnectorFacts {
                name: c.name.clone(),
                identifier: c.identifier.to_lowercase(),
                connector_type: c.connector_type.clone(),
            })
            .collect(),
        None => vec![
            ConnectorFacts {
                name: "contoso.com".into(),
                identifier: "9a7b2c0e-6a1f-4f4e-8d0b-3c5e7f9a1b2d".into(),
                connector_type: Some("AD".into()),
            },
            ConnectorFacts {
                name: "contoso.onmicrosoft.com - AAD".into(),
                identifier: ENTRA_CONNECTOR_ID.into(),
                connector_type: Some("Extensible2".into()),
            },
        ],
    }
}
