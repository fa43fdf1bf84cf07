//! The facts a plan decision rests on, and their fingerprint. `ecfleet run --plan` gathers
//! fresh facts, computes the same basis and refuses a host whose fingerprint changed, naming the
//! fields that differ. The basis holds what decides the action and stays put on its own (versions,
//! OS, .NET, TLS, install state, staging mode, sync-rule edits, auto-upgrade, Health Agent, the
//! database's level against its limits, an edited engine configuration, the Entra connector),
//! not what moves all the time (free bytes, run history, an open window, a running cycle): those
//! are checked again, live, when the host's turn comes.

use ecfleet_proto::Facts;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::checks::sync_engine::{self as engine, LocalDbLevel};
use crate::digest::hex;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Basis {
    pub reachable: bool,
    pub engine_version: Option<String>,
    pub config_version: Option<String>,
    pub os_build: Option<u32>,
    pub os_installation_type: Option<String>,
    pub dotnet_release: Option<u32>,
    /// The four TLS 1.2 places, each `enforced` or `not enforced`.
    pub tls12: Option<Vec<String>>,
    pub adsync_service: Option<String>,
    /// Display names and versions of the Entra Connect uninstall entries.
    pub uninstall: Vec<String>,
    pub staging_mode: Option<bool>,
    pub customised_default_rules: Option<u32>,
    pub auto_upgrade: Option<String>,
    pub health_agent_running: Option<bool>,
    /// `ok`, `large` (8 GB or more), `full`, or `full-sql` (no LocalDB limit).
    pub database: Option<String>,
    /// `miiserver.exe.config`: `as installed`, `edited` or `edited, with redirect`.
    pub engine_config: Option<String>,
    pub entra_connector: Option<bool>,
}

impl Basis {
    pub fn of(facts: Option<&Facts>) -> Basis {
        let Some(f) = facts else {
            return Basis::default();
        };
        let ec = f.ec.as_ref();
        let tls = f.tls12.as_ref().map(|t| {
            crate::checks::tls12_places(t)
                .iter()
                .map(|(k, on)| format!("{k}: {}", if *on { "enforced" } else { "not enforced" }))
                .collect()
        });
        let mut uninstall: Vec<String> = f
            .uninstall
            .iter()
            .flatten()
            .map(|e| {
                format!(
                    "{} {}",
                    e.display_name,
                    e.display_version.as_deref().unwrap_or("")
                )
                .trim()
                .to_string()
            })
            .collect();
        uninstall.sort();
        Basis {
            reachable: true,
            engine_version: crate::checks::engine_version(f),
            config_version: ec.and_then(|e| e.config_version.clone()),
            os_build: f.os.as_ref().map(|o| o.build),
            os_installation_type: f.os.as_ref().and_then(|o| o.installation_type.clone()),
            dotnet_release: f.dotnet.as_ref().and_then(|d| d.release),
            tls12: tls,
            adsync_service: f.adsync_service.as_ref().map(|s| s.state.clone()),
            uninstall,
            staging_mode: f.scheduler.as_ref().and_then(|s| s.staging_mode_enabled),
            customised_default_rules: f.sync_rules.as_ref().map(|r| r.customised_default_rules),
            auto_upgrade: f.auto_upgrade.as_ref().map(|a| a.state.clone()),
            health_agent_running: f
                .health_agent
                .as_ref()
                .map(|h| h.iter().all(|s| s.state == "Running")),
            database: f.database.as_ref().map(|d| {
                let level = engine::localdb_state(f).map(|s| s.level);
                match (d.local_db, level) {
                    (false, _) => "full-sql",
                    (true, None) => "ok",
                    (true, Some(LocalDbLevel::Large)) => "large",
                    (true, Some(LocalDbLevel::Full)) => "full",
                }
                .to_string()
            }),
            engine_config: f.engine_config.as_ref().map(|c| {
                match (c.edited_after_install, c.diagnostic_source_redirect) {
                    (false, _) => "as installed",
                    (true, false) => "edited",
                    (true, true) => "edited, with redirect",
                }
                .to_string()
            }),
            entra_connector: f
                .connectors
                .as_ref()
                .map(|_| !engine::entra_connector_missing(f)),
        }
    }

    /// `sha256:<hex>` of the basis in its JSON form (fields in declaration order).
    pub fn fingerprint(&self) -> String {
        let json = serde_json::to_vec(self).expect("a basis always serialises");
        format!("sha256:{}", hex(&Sha256::digest(&json)))
    }

    /// The names of the fields that differ from `other`, for a refusal message.
    pub fn differences(&self, other: &Basis) -> Vec<String> {
        let a = serde_json::to_value(self).unwrap_or_default();
        let b = serde_json::to_value(other).unwrap_or_default();
        let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
            return Vec::new();
        };
        a.iter()
            .filter(|(k, v)| b.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k}: {v} → {}", b.get(k).cloned().unwrap_or_default()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecfleet_proto::{DiskFacts, EcFacts, RunResult};

    fn facts() -> Facts {
        let mut f = Facts::new("lab", "0.1.0", "2026-11-24T00:00:00Z".into());
        f.ec = Some(EcFacts {
            engine_product_version: Some("2.5.79.0".into()),
            config_version: Some("2.5.79.0".into()),
            ..EcFacts::default()
        });
        f.disk = Some(DiskFacts {
            system_drive: "C:".into(),
            free_bytes: 50 << 30,
            total_bytes: 100 << 30,
        });
        f
    }

    #[test]
    fn the_fingerprint_follows_what_decides_and_ignores_what_moves() {
        let base = facts();
        let print = Basis::of(Some(&base)).fingerprint();
        assert!(print.starts_with("sha256:") && print.len() == 71, "{print}");
        // Time passes: a new run, less free space, a new collection time.
        let mut later = base.clone();
        later.collected_at = "2026-11-25T03:00:00Z".into();
        later.disk.as_mut().unwrap().free_bytes -= 1 << 30;
        later.run_history = Some(vec![RunResult {
            connector: "x".into(),
            run_profile: "Delta Import".into(),
            result: "success".into(),
            start: None,
            end: None,
            complete: None,
        }]);
        assert_eq!(Basis::of(Some(&later)).fingerprint(), print);
        // Someone upgraded the host meanwhile.
        let mut upgraded = base.clone();
        upgraded.ec.as_mut().unwrap().engine_product_version = Some("2.6.91.0".into());
        let changed = Basis::of(Some(&upgraded));
        assert_ne!(changed.fingerprint(), print);
        assert_eq!(
            Basis::of(Some(&base)).differences(&changed),
            vec!["engine_version: \"2.5.79.0\" → \"2.6.91.0\"".to_string()]
        );
        assert_ne!(Basis::of(None).fingerprint(), print);
    }
}
