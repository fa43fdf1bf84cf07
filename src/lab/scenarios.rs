//! The simulated fleet: which hosts `ecfleet lab init` writes, in which tenants, and what each
//! scenario's machine looks like. Versions are picked from the catalog for the given date, so
//! `retiring` is retiring and `behind` is still supported whatever day the lab is made.

use ecfleet_proto::lab::*;
use ecfleet_proto::{
    AutoUpgradeFacts, DiskFacts, DotNetTls, ENTRA_CONNECTOR_ID, OpenUi, SchannelTls, SyncRuleFacts,
    Tls12Facts, UninstallEntry,
};
use jiff::civil::Date;

use crate::catalog::{Catalog, EcVersion, SupportStatus};
use crate::inventory::Role;

/// The named scenarios, in the order the first hosts get them. The first [`AUDIT_SCENARIOS`]
/// are the lab's fleet; the rest (what bites during `ecfleet run`) join it with `--faults`.
pub const SCENARIOS: &[&str] = &[
    "current",
    "behind",
    "staging",
    "retiring",
    "sync-stopped",
    "v1-2012r2",
    "dotnet-old",
    "tls-missing",
    "half-upgraded",
    "recalled",
    "disk-low",
    "wizard-open",
    "health-agent-off",
    "sync-errors",
    "v1-old",
    "localdb-full",
    "config-edited",
    "no-entra-connector",
    // What bites during `ecfleet run` (docs/lab.md): healthy for an audit, in-place in a plan.
    "installer-fails",
    "versions-lag",
    "versions-lag-sticky",
    "adsync-wont-start",
    "rules-conflict",
    "mfa-hangs",
    "reboot-mid-upgrade",
    "backup-fails",
    "staging-drops",
    "disk-fills",
    // What Microsoft documents and the lab plays since (issue 16, docs/lab.md).
    "full-sync-after-upgrade",
    "no-applied-json",
    "applied-json-stale",
    "no-migrate-script",
    "no-importable-backup",
    "constrained-language",
    "app-auth-missing",
    "installer-foreign-signer",
];

/// How many of [`SCENARIOS`] a lab made without `--faults` has: those that describe a host as
/// an audit finds it. The others are healthy for an audit and fail during a run.
pub const AUDIT_SCENARIOS: usize = 18;

/// The lab's maintenance windows, spread over the tenants so that a plan has several waves.
const WINDOWS: &[&str] = &[
    "Sat 22:00-02:00 Europe/London",
    "Sun 01:00-05:00 Europe/Berlin",
    "Fri 23:00-03:00 America/New_York",
    "Sat 22:00-02:00 Europe/London",
    "Wed 20:00-23:00 Australia/Sydney",
];

/// The maintenance window of lab tenant `tenantNN`.
pub fn maintenance_window(tenant: &str) -> &'static str {
    let n: usize = tenant
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or(0);
    WINDOWS[n.saturating_sub(1) % WINDOWS.len()]
}

/// What follows the named scenarios: mostly healthy hosts, some with staging partners.
const FILLER: &[&str] = &[
    "current",
    "behind",
    "staging",
    "current",
    "retiring",
    "behind",
    "current",
    "sync-errors",
    "current",
    "behind",
    "staging",
    "tls-missing",
];

/// One host of the lab fleet.
#[derive(Debug, PartialEq)]
pub struct LabHost {
    pub name: String,
    pub tenant: String,
    pub scenario: String,
    pub role: Role,
    pub machine: Machine,
}

/// Versions chosen for the lab's date.
struct Picks {
    current: EcVersion,
    behind: Vec<EcVersion>,
    retiring: EcVersion,
    sync_stopped: EcVersion,
    recalled: EcVersion,
}

fn picks(catalog: &Catalog, as_of: Date) -> Picks {
    let newest = catalog
        .newest()
        .map(|r| r.version)
        .unwrap_or(EcVersion([2, 6, 91, 0]));
    let status = |v| catalog.support(v, as_of, 90).status;
    let usable = |r: &&crate::catalog::Release| r.confirmed && !r.recalled;
    let behind: Vec<EcVersion> = catalog
        .releases
        .iter()
        .filter(usable)
        .map(|r| r.version)
        .filter(|v| *v < newest && status(*v) == SupportStatus::Supported)
        .collect();
    let pick = |wanted: SupportStatus, fallback: &str| {
        catalog
            .releases
            .iter()
            .filter(usable)
            .map(|r| r.version)
            .find(|v| v.major() >= 2 && status(*v) == wanted)
            .unwrap_or_else(|| fallback.parse().unwrap_or(newest))
    };
    Picks {
        current: newest,
        behind: if behind.is_empty() {
            vec![newest]
        } else {
            behind
        },
        retiring: pick(SupportStatus::Retiring, "2.5.190.0"),
        sync_stopped: pick(SupportStatus::SyncStopped, "2.5.76.0"),
        recalled: catalog
            .releases
            .iter()
            .find(|r| r.recalled)
            .map(|r| r.version)
            .unwrap_or(EcVersion([2, 6, 79, 0])),
    }
}

const OSES: &[(&str, &str, u32)] = &[
    (
        "Microsoft Windows Server 2022 Standard",
        "10.0.20348",
        20348,
    ),
    (
        "Microsoft Windows Server 2019 Standard",
        "10.0.17763",
        17763,
    ),
    (
        "Microsoft Windows Server 2025 Standard",
        "10.0.26100",
        26100,
    ),
    (
        "Microsoft Windows Server 2016 Standard",
        "10.0.14393",
        14393,
    ),
];

fn tls(enforced: bool) -> Tls12Facts {
    let v = |on: bool| if on { Some(1) } else { None };
    let dotnet = DotNetTls {
        system_default_tls_versions: v(enforced),
        sch_use_strong_crypto: v(enforced),
    };
    let sc = if enforced {
        SchannelTls {
            enabled: Some(1),
            disabled_by_default: Some(0),
        }
    } else {
        SchannelTls::default()
    };
    Tls12Facts {
        dotnet_x64: dotnet.clone(),
        dotnet_x86: dotnet,
        schannel_client: sc.clone(),
        schannel_server: sc,
    }
}

fn runs(tenant: &str, staging: bool, seed: usize) -> Vec<MachineRun> {
    let ad = format!("{tenant}.local");
    let aad = format!("{tenant}.onmicrosoft.com - AAD");
    let base = (seed % 20) as u32;
    let run = |connector: &str, profile: &str, age: u32| MachineRun {
        connector: connector.into(),
        run_profile: profile.into(),
        result: "success".into(),
        age_minutes: base + age,
        duration_seconds: 20 + (seed % 40) as u32,
        after_upgrade_seconds: None,
    };
    let mut v = vec![
        run(&ad, "Delta Import", 9),
        run(&aad, "Delta Import", 8),
        run(&ad, "Delta Synchronization", 6),
        run(&aad, "Delta Synchronization", 5),
    ];
    if !staging {
        v.push(run(&aad, "Export", 3));
        v.push(run(&ad, "Export", 2));
    }
    v
}

/// The sync engine's connectors: the tenant's AD forest (named as in [`runs`]) and Microsoft
/// Entra ID, whose identifier is fixed.
fn connectors(tenant: &str, seed: usize) -> Vec<MachineConnector> {
    vec![
        MachineConnector {
            name: format!("{tenant}.local"),
            identifier: format!("{:08x}-5d5b-4b0e-9e84-{:012x}", 0x2f6b_1c3e + seed, seed),
            connector_type: Some("AD".into()),
            partition_inclusions: vec![
                format!("OU=Users,OU=Corp,DC={tenant},DC=local"),
                format!("OU=Groups,OU=Corp,DC={tenant},DC=local"),
            ],
            partition_exclusions: vec![format!("OU=Service Accounts,OU=Corp,DC={tenant},DC=local")],
        },
        MachineConnector {
            name: format!("{tenant}.onmicrosoft.com - AAD"),
            identifier: ENTRA_CONNECTOR_ID.into(),
            connector_type: Some("Extensible2".into()),
            ..MachineConnector::default()
        },
    ]
}

/// `count` custom sync rules on the tenant's AD connector, precedence 50 upwards.
fn custom_rules(tenant: &str, seed: usize, count: usize) -> Vec<MachineRule> {
    const RULES: [(&str, &str); 4] = [
        (
            "In from AD - User Department",
            "department -> department (Direct)",
        ),
        (
            "In from AD - User Office Location",
            "physicalDeliveryOfficeName -> physicalDeliveryOfficeName (Direct)",
        ),
        (
            "In from AD - Group Filter",
            "cn -> cloudFiltered (Expression)",
        ),
        (
            "In from AD - User Extension",
            "extensionAttribute10 -> extensionAttribute10 (Direct)",
        ),
    ];
    RULES
        .iter()
        .take(count)
        .enumerate()
        .map(|(i, (name, flow))| MachineRule {
            identifier: format!("{:08x}-7a1c-4d2e-8f30-{:012x}", 0x5e1d_0000 + i, seed),
            name: (*name).into(),
            connector: format!("{tenant}.local"),
            precedence: 50 + i as u32,
            direction: "Inbound".into(),
            disabled: false,
            scoping: vec!["objectClass EQUAL user".into()],
            attribute_flows: vec![(*flow).into()],
        })
        .collect()
}

fn machine(
    name: &str,
    tenant: &str,
    scenario: &str,
    role: Role,
    seed: usize,
    p: &Picks,
) -> Machine {
    let behind = p.behind[seed % p.behind.len()];
    let version = match scenario {
        "current" => p.current,
        "retiring" => p.retiring,
        "sync-stopped" => p.sync_stopped,
        "recalled" => p.recalled,
        "app-auth-missing" => p.current,
        "v1-2012r2" => EcVersion([1, 6, 16, 0]),
        "v1-old" => EcVersion([1, 5, 30, 0]),
        _ => behind,
    };
    let mut m = healthy_machine(name, tenant, version, role, seed);
    m.host.scenario = scenario.into();
    m.host.description = description(scenario).into();
    apply_scenario(&mut m, scenario, p, behind);
    m
}

/// How a healthy host's Entra connector authenticates: new installs are set up with
/// application-based authentication from 2.5.76.0; `Get-ADSyncEntraConnectorCredential` exists
/// from 2.5.3.0 (docs/design/DOMAIN.md §8b, S45); older builds have no such cmdlet.
pub fn entra_auth_of(version: EcVersion) -> Option<String> {
    if version >= EcVersion([2, 5, 76, 0]) {
        Some("Application".into())
    } else if version >= EcVersion([2, 5, 3, 0]) {
        Some("ServiceAccount".into())
    } else {
        None
    }
}

/// A healthy host of the lab: `version` on a supported OS picked by `seed`, both readings
/// agreeing, .NET 4.8, TLS 1.2 enforced, space to spare, its last runs successful, Health
/// Agent running, a LocalDB well below its limits, the configuration file as installed, an AD
/// and the Entra connector. The scenarios are changes to it.
pub fn healthy_machine(
    name: &str,
    tenant: &str,
    version: EcVersion,
    role: Role,
    seed: usize,
) -> Machine {
    let os = OSES[seed % OSES.len()];
    let staging = role == Role::Staging;
    Machine {
        host: MachineHost {
            name: name.to_uppercase(),
            scenario: "current".into(),
            description: description("current").into(),
        },
        os: MachineOs {
            caption: os.0.into(),
            version: os.1.into(),
            build: os.2,
            installation_type: Some("Server".into()),
        },
        dotnet: MachineDotNet {
            release: Some(if os.2 >= 20348 { 528449 } else { 528040 }),
        },
        tls12: tls(true),
        disk: DiskFacts {
            system_drive: "C:".into(),
            free_bytes: (20 + (seed as u64 * 7) % 80) << 30,
            total_bytes: 127 << 30,
        },
        ec: Some(MachineEc {
            engine_version: version.to_string(),
            config_version: version.to_string(),
            wizard_version: Some(version.to_string()),
            install_dir: r"C:\Program Files\Microsoft Azure AD Sync".into(),
        }),
        uninstall: vec![
            UninstallEntry {
                display_name: "Microsoft Azure AD Connect".into(),
                display_version: Some(version.to_string()),
                key: Some("{4C9F6A7E-5D5B-4B0E-9E84-0A9A2C1D0B11}".into()),
                wow6432: false,
            },
            UninstallEntry {
                display_name: "Microsoft Azure AD Connect synchronization services".into(),
                display_version: Some(version.to_string()),
                key: Some("{A0E2B5C4-7F1D-4E3A-8B9C-6D5E4F3A2B10}".into()),
                wow6432: false,
            },
        ],
        service: MachineService::default(),
        scheduler: MachineScheduler {
            staging_mode_enabled: staging,
            next_cycle_in_minutes: 1 + (seed % 29) as u32,
            ..MachineScheduler::default()
        },
        runs: runs(tenant, staging, seed),
        auto_upgrade: Some(AutoUpgradeFacts {
            state: if seed.is_multiple_of(3) {
                "Enabled"
            } else {
                "Disabled"
            }
            .into(),
            suspension_reason: None,
        }),
        health_agent: vec![
            MachineHealthService {
                name: "AzureADConnectHealthAgent".into(),
                display_name: "Microsoft Entra Connect Health Agent".into(),
                state: "Running".into(),
                start_mode: "Auto".into(),
            },
            MachineHealthService {
                name: "AzureADConnectAgentUpdater".into(),
                display_name: "Microsoft Entra Connect Agent Updater".into(),
                state: "Running".into(),
                start_mode: "Auto".into(),
            },
        ],
        open_ui: OpenUi::default(),
        sync_rules: SyncRuleFacts {
            customised_default_rules: 0,
            custom_rules: (seed % 4) as u32,
            custom_rules_outside_0_99: 0,
        },
        custom_rules: custom_rules(tenant, seed, seed % 4),
        wizard_sign_in: Default::default(),
        operator: Default::default(),
        upgrade: None,
        database: MachineDatabase {
            size_mb: 300 + (seed as u64 * 97) % 2500,
            ..MachineDatabase::default()
        },
        engine_config: MachineEngineConfig::default(),
        connectors: Some(connectors(tenant, seed)),
        faults: Faults::default(),
        lab: MachineLab::default(),
        activity: MachineActivity::default(),
        installer_events: Vec::new(),
        upgrade_effects: MachineUpgradeEffects::default(),
        backup: MachineBackup::default(),
        entra_auth: entra_auth_of(version),
        language_mode: "FullLanguage".into(),
    }
}

/// Where `staging-drops` and `disk-fills` cut the installer's transfer: early enough for any
/// real or lab installer of 1 MiB and more.
const STAGING_FAULT_AT: u64 = 512 << 10;

/// What makes a scenario: its changes to the healthy host.
fn apply_scenario(m: &mut Machine, scenario: &str, p: &Picks, behind: EcVersion) {
    match scenario {
        "v1-2012r2" => {
            m.os = MachineOs {
                caption: "Microsoft Windows Server 2012 R2 Standard".into(),
                version: "6.3.9600".into(),
                build: 9600,
                installation_type: Some("Server".into()),
            };
            m.dotnet.release = Some(528040);
            m.tls12 = tls(false);
            m.health_agent.truncate(1);
            m.health_agent[0].name = "AzureADConnectHealthSyncMonitor".into();
            m.health_agent[0].display_name =
                "Azure AD Connect Health Sync Monitoring Service".into();
        }
        "v1-old" => {
            m.os = MachineOs {
                caption: "Microsoft Windows Server 2019 Standard".into(),
                version: "10.0.17763".into(),
                build: 17763,
                installation_type: Some("Server".into()),
            };
        }
        "dotnet-old" => m.dotnet.release = Some(461308),
        "tls-missing" => m.tls12 = tls(false),
        "half-upgraded" => {
            let from = p.behind.last().copied().unwrap_or(behind);
            let to = p.behind.first().copied().unwrap_or(p.current);
            if let Some(ec) = m.ec.as_mut() {
                ec.engine_version = to.to_string();
                ec.config_version = from.to_string();
            }
            m.scheduler.scheduler_suspended = true;
        }
        "disk-low" => m.disk.free_bytes = 1_288_490_188,
        "wizard-open" => {
            m.open_ui.wizard = true;
            m.scheduler.scheduler_suspended = true;
        }
        "localdb-full" => {
            // 9.95 GB of LocalDB's 10: every run since has stopped on it.
            m.database.size_mb = 10_190;
            for r in &mut m.runs {
                r.result = crate::checks::sync_engine::DISK_FULL_RESULT.into();
            }
        }
        "config-edited" => m.engine_config.edited = true,
        "installer-fails" => m.faults.installer_fails = Some("25019".into()),
        "versions-lag" => m.faults.config_version_lags = Some("fixed-by-restart".into()),
        "versions-lag-sticky" => m.faults.config_version_lags = Some("sticky".into()),
        "adsync-wont-start" => m.faults.adsync_stops_after_upgrade = true,
        "rules-conflict" => m.faults.rules_conflict_after_upgrade = true,
        "mfa-hangs" => m.operator.acts = false,
        // Six minutes of lab time: 3 s at the default clock scale.
        "reboot-mid-upgrade" => m.faults.reboot_seconds = 360,
        "backup-fails" => m.faults.backup_fails = true,
        "staging-drops" => m.faults.staging_drops_at_bytes = Some(STAGING_FAULT_AT),
        "disk-fills" => m.faults.disk_fills_at_bytes = Some(STAGING_FAULT_AT),
        "full-sync-after-upgrade" => {
            m.upgrade_effects.default_rules_change = true;
            // Two lab hours: a minute at the default clock scale.
            m.upgrade_effects.full_sync_seconds = 7200;
        }
        "no-applied-json" => m.backup.applied_policy_age_days = None,
        "applied-json-stale" => {
            m.backup.applied_policy_age_days = Some(200);
            m.backup.changed_outside_wizard_days = Some(10);
        }
        "no-migrate-script" => m.backup.migrate_settings_script = false,
        "no-importable-backup" => {
            m.backup.persisted_state = false;
            m.backup.applied_policy_age_days = Some(200);
            m.backup.changed_outside_wizard_days = Some(10);
        }
        "constrained-language" => m.language_mode = "ConstrainedLanguage".into(),
        "app-auth-missing" => m.entra_auth = Some("ServiceAccount".into()),
        "installer-foreign-signer" => {
            m.faults.installer_signature = Some(ecfleet_proto::stage::Signature {
                status: "Valid".into(),
                signer: Some("CN=Contoso Software Ltd, O=Contoso Software Ltd, C=GB".into()),
                status_message: Some("Signature verified.".into()),
                signature_type: Some("Authenticode".into()),
                root: Some("CN=Contoso Root CA, O=Contoso Software Ltd, C=GB".into()),
            })
        }
        "sync-errors" => {
            for r in &mut m.runs {
                if r.run_profile == "Export" && r.connector.ends_with(" - AAD") {
                    r.result = "completed-export-errors".into();
                }
            }
        }
        "no-entra-connector" => {
            if let Some(list) = m.connectors.as_mut() {
                list.retain(|c| c.identifier != ENTRA_CONNECTOR_ID);
            }
            m.runs.retain(|r| !r.connector.ends_with(" - AAD"));
        }
        "health-agent-off" => {
            for h in &mut m.health_agent {
                h.state = "Stopped".into();
                h.start_mode = "Disabled".into();
            }
        }
        _ => {}
    }
}

fn description(scenario: &str) -> &'static str {
    match scenario {
        "current" => "newest build, healthy",
        "behind" => "older build, still supported",
        "staging" => "staging server (imports and syncs, never exports)",
        "retiring" => "end of support within 90 days",
        "sync-stopped" => "below 2.5.79.0: sync stopped on 30 Sep 2026",
        "v1-2012r2" => "1.x on Server 2012 R2: needs a swing migration",
        "dotnet-old" => ".NET Framework 4.7.1",
        "tls-missing" => "TLS 1.2 registry values not set",
        "half-upgraded" => "engine and configuration versions disagree",
        "recalled" => "recalled build 2.6.79.0",
        "disk-low" => "about 1.2 GiB free on C:",
        "wizard-open" => "the Entra Connect wizard is open",
        "health-agent-off" => "Health Agent services stopped and disabled",
        "sync-errors" => "last export ended with errors",
        "v1-old" => "1.5.30.0 on Server 2019: two hops, via 1.6.16.0",
        "localdb-full" => "LocalDB at 9.95 of its 10 GB: every run stops with database-disk-full",
        "config-edited" => {
            "miiserver.exe.config edited after the install, no DiagnosticSource redirect"
        }
        "no-entra-connector" => "the Microsoft Entra ID connector is missing",
        "installer-fails" => "the installer fails with 25019 and leaves a half-removed install",
        "versions-lag" => "after the upgrade the configuration version lags until ADSync restarts",
        "versions-lag-sticky" => "after the upgrade the configuration version lags for good",
        "adsync-wont-start" => "ADSync does not start after the upgrade",
        "rules-conflict" => "customised default rules conflict: exports fail after the upgrade",
        "mfa-hangs" => "the wizard's MFA sign-in hangs: the operator never finishes",
        "reboot-mid-upgrade" => "the host restarts at the end of the upgrade (6 lab minutes: 3 s)",
        "backup-fails" => "the configuration export fails",
        "staging-drops" => "the connection drops once, 512 KiB into the installer (lab server)",
        "disk-fills" => "the disk fills 512 KiB into the installer (lab server)",
        "full-sync-after-upgrade" => {
            "the new build changes the out-of-box rules: a full import and full sync of two lab hours follow the upgrade"
        }
        "no-applied-json" => {
            "no Applied-SynchronizationPolicy JSON: the wizard never changed the configuration"
        }
        "applied-json-stale" => {
            "the applied JSON is 200 days old; a rule was changed outside the wizard 10 days ago"
        }
        "no-migrate-script" => "MigrateSettings.ps1 is not in the product's Tools folder",
        "no-importable-backup" => {
            "no PersistedState.xml (no MigratedPolicy.json can be made) and a stale applied JSON"
        }
        "constrained-language" => "AppLocker puts the agent's scripts in ConstrainedLanguage mode",
        "app-auth-missing" => "newest build, the Entra connector still on the legacy account",
        "installer-foreign-signer" => {
            "the staged installer's signature is Contoso's, not Microsoft's"
        }
        _ => "",
    }
}

/// The fleet for `n` hosts: the named scenarios first (with `faults`, also those that fail
/// during a run), then realistic filler. A `staging` host joins the tenant of the host before
/// it (that tenant's active server).
pub fn fleet(n: usize, faults: bool, catalog: &Catalog, as_of: Date) -> Vec<LabHost> {
    let p = picks(catalog, as_of);
    let named = if faults {
        SCENARIOS
    } else {
        &SCENARIOS[..AUDIT_SCENARIOS]
    };
    let mut hosts: Vec<LabHost> = Vec::with_capacity(n);
    let mut tenant_no = 0;
    for i in 0..n {
        let scenario = if i < named.len() {
            named[i]
        } else {
            FILLER[(i - named.len()) % FILLER.len()]
        };
        let joins_previous = scenario == "staging"
            && hosts
                .last()
                .is_some_and(|h| h.role == Role::Active && h.scenario != "staging");
        if !joins_previous {
            tenant_no += 1;
        }
        let tenant = format!("tenant{tenant_no:02}");
        let role = if scenario == "staging" && joins_previous {
            Role::Staging
        } else {
            Role::Active
        };
        let scenario_label = if role == Role::Staging || scenario != "staging" {
            scenario
        } else {
            "behind"
        };
        let name = format!("t{tenant_no:02}-{scenario_label}");
        let machine = machine(&name, &tenant, scenario_label, role, i, &p);
        hosts.push(LabHost {
            name,
            tenant,
            scenario: scenario_label.to_string(),
            role,
            machine,
        });
    }
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_scenario_is_present_once_the_fleet_is_big_enough() {
        let fleet = fleet(
            40,
            true,
            &Catalog::embedded(),
            "2026-11-24".parse().unwrap(),
        );
        for s in SCENARIOS {
            assert!(fleet.iter().any(|h| h.scenario == *s), "{s} missing");
        }
        let mut names: Vec<&str> = fleet.iter().map(|h| h.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 40, "names are unique");
        // The first 18 keep their names and order (scripts and docs name them).
        assert_eq!(SCENARIOS[17], "no-entra-connector");
        let run = fleet.iter().find(|h| h.scenario == "mfa-hangs").unwrap();
        assert!(!run.machine.operator.acts);
        let staging = fleet.iter().find(|h| h.scenario == "staging").unwrap();
        assert_eq!(staging.role, Role::Staging);
        assert!(
            fleet
                .iter()
                .any(|h| h.tenant == staging.tenant && h.role == Role::Active),
            "a staging host shares its tenant with an active one"
        );
        assert_eq!(
            fleet
                .iter()
                .find(|h| h.scenario == "half-upgraded")
                .unwrap()
                .name,
            "t08-half-upgraded"
        );
    }

    #[test]
    fn without_faults_the_fleet_is_the_audit_scenarios_then_filler() {
        let as_of = "2026-11-24".parse().unwrap();
        let plain = fleet(24, false, &Catalog::embedded(), as_of);
        let with = fleet(24, true, &Catalog::embedded(), as_of);
        assert_eq!(plain[..AUDIT_SCENARIOS], with[..AUDIT_SCENARIOS]);
        for h in &plain[AUDIT_SCENARIOS..] {
            assert!(
                !SCENARIOS[AUDIT_SCENARIOS..].contains(&h.scenario.as_str()),
                "{} is a run fault",
                h.name
            );
            assert_eq!(h.machine.faults, Faults::default(), "{}", h.name);
            assert!(h.machine.operator.acts);
        }
        assert_eq!(with[AUDIT_SCENARIOS].scenario, "installer-fails");
    }
}
