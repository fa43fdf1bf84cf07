//! Checks of the sync engine's own state (docs/design/DOMAIN.md §3.4, §7 #10–#12): the LocalDB database
//! against its 8 GB and 10 GB limits, an edited `miiserver.exe.config`, and the Microsoft Entra
//! ID connector. Pure functions of the facts, shared by the checks and the plan's fingerprint.

use ecfleet_proto::{ENTRA_CONNECTOR_ID, EngineConfigFacts, Facts, RunResult};

use crate::catalog::EcVersion;

use super::model::{Check, Code, Severity};

const GIB: u64 = 1 << 30;

/// SQL Server Express LocalDB stops a database at 10 GB; the sync engine then ends its runs with
/// `stopped-database-disk-full` (event 6323).
pub const LOCALDB_LIMIT_BYTES: u64 = 10 * GIB;
/// A data file this close to the limit counts as full: it cannot take a full sync.
pub const LOCALDB_FULL_BYTES: u64 = LOCALDB_LIMIT_BYTES / 20 * 19;
/// Auto-upgrade refuses a LocalDB of 8 GB or more (`UpgradeNotSupportedLocalDbSizeExceeded`).
pub const LOCALDB_LARGE_BYTES: u64 = 8 * GIB;

/// The run result the engine reports when LocalDB is full.
pub const DISK_FULL_RESULT: &str = "stopped-database-disk-full";

/// Where a LocalDB database stands against its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalDbLevel {
    /// At or near 10 GB, or a recent run stopped because it was full.
    Full,
    /// 8 GB or more: auto-upgrade refuses the host, and a full sync may fill it.
    Large,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LocalDbState<'a> {
    pub level: LocalDbLevel,
    pub bytes: Option<u64>,
    /// The newest run that stopped because the database was full.
    pub disk_full_run: Option<&'a RunResult>,
}

impl LocalDbState<'_> {
    /// "9.8 GB of 10 GB" and/or the run that stopped.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(bytes) = self.bytes {
            parts.push(format!(
                "the LocalDB data file is {:.1} GB of its 10 GB limit",
                bytes as f64 / GIB as f64
            ));
        }
        if let Some(run) = self.disk_full_run {
            parts.push(format!(
                "the last {} on {} ended {}",
                run.run_profile, run.connector, run.result
            ));
        }
        parts.join("; ")
    }
}

/// The LocalDB state when it needs attention; `None` when the database is fine, is a full SQL
/// Server, or was not read. A disk-full run counts only when it is a connector's newest run.
pub fn localdb_state(facts: &Facts) -> Option<LocalDbState<'_>> {
    let db = facts.database.as_ref();
    let bytes = db.filter(|d| d.local_db).and_then(|d| d.data_file_bytes);
    let disk_full_run = facts.run_history.as_ref().and_then(|runs| {
        let newest_of = |connector: &str| runs.iter().find(|n| n.connector == connector);
        runs.iter().find(|r| {
            r.result == DISK_FULL_RESULT
                && newest_of(&r.connector).is_some_and(|n| std::ptr::eq(n, *r))
        })
    });
    let level = match bytes {
        _ if disk_full_run.is_some() => LocalDbLevel::Full,
        Some(b) if b >= LOCALDB_FULL_BYTES => LocalDbLevel::Full,
        Some(b) if b >= LOCALDB_LARGE_BYTES => LocalDbLevel::Large,
        _ => return None,
    };
    Some(LocalDbState {
        level,
        bytes,
        disk_full_run,
    })
}

/// The fix for a LocalDB that is large or full.
pub const LOCALDB_FIX: &str = "purge the run history and shorten PurgeRunHistoryInterval (Set-ADSyncScheduler), then shrink the database; or move to a full SQL Server (docs/design/DOMAIN.md §7 #10)";

/// `miiserver.exe.config` when someone edited it after the install.
pub fn edited_engine_config(facts: &Facts) -> Option<&EngineConfigFacts> {
    facts
        .engine_config
        .as_ref()
        .filter(|c| c.edited_after_install)
}

/// Targets that load `System.Diagnostics.DiagnosticSource` 6.0.0.1 without merging an edited
/// configuration file: 2.5.190.0 up to, not including, 2.6.84.0 (docs/design/DOMAIN.md §7 #11).
pub fn target_needs_redirect(target: EcVersion) -> bool {
    target >= EcVersion([2, 5, 190, 0]) && target < EcVersion([2, 6, 84, 0])
}

/// The fix for an edited configuration file without the redirect.
pub const REDIRECT_FIX: &str = "add a bindingRedirect for System.Diagnostics.DiagnosticSource (publicKeyToken cc7b13ffcd2ddd51, oldVersion 0.0.0.0-8.0.0.0, newVersion 8.0.0.0) to <assemblyBinding> in miiserver.exe.config, then restart ADSync";

/// Whether the connectors were read and the Entra connector is not among them.
pub fn entra_connector_missing(facts: &Facts) -> bool {
    facts.connectors.as_ref().is_some_and(|connectors| {
        !connectors
            .iter()
            .any(|c| c.identifier.eq_ignore_ascii_case(ENTRA_CONNECTOR_ID))
    })
}

/// The checks of the sync engine's own state: LocalDB against its limits, an edited
/// `miiserver.exe.config`, the Entra connector.
pub(super) fn checks(facts: &Facts, out: &mut Vec<Check>) {
    if let Some(db) = localdb_state(facts) {
        out.push(match db.level {
            LocalDbLevel::Full => Check::new(
                Code::LocalDbFull,
                Severity::Critical,
                format!(
                    "{}: the sync engine stops at 10 GB, and an upgrade cannot write its changes",
                    db.describe()
                ),
                LOCALDB_FIX,
                &["database", "run_history"],
            ),
            LocalDbLevel::Large => Check::new(
                Code::LocalDbLarge,
                Severity::Warning,
                format!(
                    "{}: auto-upgrade refuses 8 GB and more (UpgradeNotSupportedLocalDbSizeExceeded), and a full sync after an upgrade may fill it",
                    db.describe()
                ),
                LOCALDB_FIX,
                &["database", "run_history"],
            ),
        });
    }
    if let Some(config) = edited_engine_config(facts) {
        let when = config.last_write.as_deref().unwrap_or("an unknown time");
        out.push(if config.diagnostic_source_redirect {
            Check::new(
                Code::EngineConfigEdited,
                Severity::Info,
                format!("{} was edited after the install ({when}) and has the DiagnosticSource redirect; auto-upgrade skips such hosts from 2.6.3.0", config.path),
                "keep a copy of the file: check it again after each upgrade (2.6.84.0 and newer merge it)",
                &["engine_config"],
            )
        } else {
            Check::new(
                Code::EngineConfigEdited,
                Severity::Warning,
                format!("{} was edited after the install ({when}) without a System.Diagnostics.DiagnosticSource redirect: an upgrade to 2.5.190.0–2.6.x stops the sync engine (FileLoadException), and auto-upgrade skips such hosts from 2.6.3.0", config.path),
                REDIRECT_FIX,
                &["engine_config"],
            )
        });
    }
    if entra_connector_missing(facts) {
        out.push(Check::new(
            Code::EntraConnectorMissing,
            Severity::Critical,
            format!("the Microsoft Entra ID connector ({ENTRA_CONNECTOR_ID}) is missing: nothing reaches Entra, and the upgrade wizard fails at its start"),
            "unsupported configuration: uninstall Entra Connect and install it clean, importing the configuration backup (docs/design/DOMAIN.md §7 #12)",
            &["connectors"],
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecfleet_proto::{ConnectorFacts, DatabaseFacts};

    fn with_db(local_db: bool, bytes: u64) -> Facts {
        let mut f = Facts::new("lab", "t", "2026-11-24T00:00:00Z".into());
        f.database = Some(DatabaseFacts {
            local_db,
            data_file_bytes: Some(bytes),
            ..DatabaseFacts::default()
        });
        f
    }

    fn run(connector: &str, result: &str) -> RunResult {
        RunResult {
            connector: connector.into(),
            run_profile: "Delta Import".into(),
            result: result.into(),
            start: None,
            end: None,
            complete: None,
        }
    }

    #[test]
    fn localdb_levels_follow_the_8_and_10_gb_limits() {
        assert_eq!(localdb_state(&with_db(true, 7 * GIB)), None);
        let eight = with_db(true, 8 * GIB);
        let large = localdb_state(&eight).unwrap();
        assert_eq!(large.level, LocalDbLevel::Large);
        assert_eq!(
            large.describe(),
            "the LocalDB data file is 8.0 GB of its 10 GB limit"
        );
        let nearly_ten = with_db(true, 10 * GIB - (64 << 20));
        let full = localdb_state(&nearly_ten).unwrap();
        assert_eq!(full.level, LocalDbLevel::Full);
        assert_eq!(localdb_state(&with_db(false, 40 * GIB)), None, "full SQL");
    }

    #[test]
    fn a_disk_full_run_counts_only_while_it_is_the_newest() {
        let mut f = with_db(true, GIB);
        f.run_history = Some(vec![run("contoso.com", DISK_FULL_RESULT)]);
        let state = localdb_state(&f).unwrap();
        assert_eq!(state.level, LocalDbLevel::Full);
        assert!(
            state
                .describe()
                .contains("ended stopped-database-disk-full")
        );
        // Fixed since: a newer run of the same connector succeeded.
        f.run_history = Some(vec![
            run("contoso.com", "success"),
            run("contoso.com", DISK_FULL_RESULT),
        ]);
        assert_eq!(localdb_state(&f), None);
    }

    #[test]
    fn the_redirect_matters_for_targets_from_2_5_190_to_before_2_6_84() {
        let v = |s: &str| s.parse::<EcVersion>().unwrap();
        assert!(!target_needs_redirect(v("2.5.79.0")));
        assert!(target_needs_redirect(v("2.5.190.0")));
        assert!(target_needs_redirect(v("2.6.3.0")));
        assert!(!target_needs_redirect(v("2.6.84.0")));
    }

    #[test]
    fn the_entra_connector_is_found_in_any_case_and_unknown_is_not_missing() {
        let mut f = Facts::new("lab", "t", "2026-11-24T00:00:00Z".into());
        assert!(!entra_connector_missing(&f), "not read: not missing");
        f.connectors = Some(vec![ConnectorFacts {
            name: "contoso.com".into(),
            identifier: "9a7b2c0e-6a1f-4f4e-8d0b-3c5e7f9a1b2d".into(),
            connector_type: Some("AD".into()),
        }]);
        assert!(entra_connector_missing(&f));
        f.connectors.as_mut().unwrap().push(ConnectorFacts {
            name: "contoso.onmicrosoft.com - AAD".into(),
            identifier: ENTRA_CONNECTOR_ID.to_uppercase(),
            connector_type: None,
        });
        assert!(!entra_connector_missing(&f));
    }
}
