//! Test fixtures shared by the unit tests of several modules (compiled for tests only).

use ecfleet_proto::*;

/// A healthy Server 2022 host running `version` (both readings agree): .NET 4.8, TLS 1.2
/// enforced, 50 GiB free, nothing open, scheduler idle, the last export and import successful
/// (collected at 10:00Z, runs at 09:45–09:50Z), auto-upgrade off, Health Agent running, no
/// uninstall entries, a 1 GiB LocalDB, the engine's configuration file as installed, an AD and
/// the Entra connector.
pub fn healthy_facts(version: &str) -> Facts {
    let mut f = Facts::new("test", "0", "2026-11-24T10:00:00Z".into());
    f.os = Some(OsFacts {
        caption: "Microsoft Windows Server 2022 Standard".into(),
        version: "10.0.20348".into(),
        build: 20348,
        installation_type: Some("Server".into()),
    });
    f.dotnet = Some(DotNetFacts {
        release: Some(528449),
    });
    let on = DotNetTls {
        system_default_tls_versions: Some(1),
        sch_use_strong_crypto: Some(1),
    };
    let sc = SchannelTls {
        enabled: Some(1),
        disabled_by_default: Some(0),
    };
    f.tls12 = Some(Tls12Facts {
        dotnet_x64: on.clone(),
        dotnet_x86: on,
        schannel_client: sc.clone(),
        schannel_server: sc,
    });
    f.disk = Some(DiskFacts {
        system_drive: "C:".into(),
        free_bytes: 50 << 30,
        total_bytes: 120 << 30,
    });
    f.ec = Some(EcFacts {
        engine_path: None,
        engine_file_version: Some(version.into()),
        engine_product_version: Some(version.into()),
        config_version: Some(version.into()),
        wizard_version: None,
    });
    f.adsync_service = Some(ServiceFacts {
        name: "ADSync".into(),
        display_name: None,
        state: "Running".into(),
        start_mode: Some("Auto".into()),
    });
    f.scheduler = Some(SchedulerFacts {
        sync_cycle_enabled: Some(true),
        staging_mode_enabled: Some(false),
        scheduler_suspended: Some(false),
        sync_cycle_in_progress: Some(false),
        maintenance_enabled: Some(true),
        next_sync_cycle_start_utc: None,
        effective_interval_minutes: Some(30),
    });
    let run = |profile: &str, end: &str| RunResult {
        connector: "contoso.com".into(),
        run_profile: profile.into(),
        result: "success".into(),
        start: None,
        end: Some(end.into()),
        complete: None,
    };
    f.run_history = Some(vec![
        run("Export", "2026-11-24T09:50:00Z"),
        run("Delta Import", "2026-11-24T09:45:00Z"),
    ]);
    f.auto_upgrade = Some(AutoUpgradeFacts {
        state: "Disabled".into(),
        suspension_reason: None,
    });
    f.health_agent = Some(vec![ServiceFacts {
        name: "AzureADConnectHealthAgent".into(),
        display_name: None,
        state: "Running".into(),
        start_mode: None,
    }]);
    f.open_ui = Some(OpenUi::default());
    f.uninstall = Some(vec![]);
    f.sync_rules = Some(SyncRuleFacts::default());
    f.database = Some(DatabaseFacts {
        local_db: true,
        server: Some("(localdb)".into()),
        instance: Some(r".\ADSync2019".into()),
        data_file: Some(
            r"C:\Program Files\Microsoft Azure AD Sync\Data\ADSync2019\ADSync.mdf".into(),
        ),
        data_file_bytes: Some(1 << 30),
    });
    f.engine_config = Some(EngineConfigFacts {
        path: r"C:\Program Files\Microsoft Azure AD Sync\Bin\miiserver.exe.config".into(),
        last_write: Some("2026-03-01T10:00:00Z".into()),
        engine_last_write: Some("2026-03-01T10:00:00Z".into()),
        edited_after_install: false,
        diagnostic_source_redirect: false,
    });
    f.connectors = Some(vec![
        ConnectorFacts {
            name: "contoso.com".into(),
            identifier: "2f6b1c3e-8a4d-4e5f-9b7a-0c1d2e3f4a5b".into(),
            connector_type: Some("AD".into()),
        },
        ConnectorFacts {
            name: "contoso.onmicrosoft.com - AAD".into(),
            identifier: ENTRA_CONNECTOR_ID.into(),
            connector_type: Some("Extensible2".into()),
        },
    ]);
    f
}

/// A lab host reached over SSH (Linux shell, `lab_root` set), for tests that need an inventory
/// host without an inventory file.
pub fn lab_host(name: &str, tenant: &str) -> crate::inventory::Host {
    use crate::inventory::*;
    Host {
        name: name.into(),
        tenant: tenant.into(),
        address: "127.0.0.1".into(),
        port: 22,
        role: Role::Active,
        transport: HostTransport::Ssh(SshSettings {
            identity_file: None,
            known_hosts: "/nonexistent/known_hosts".into(),
        }),
        user: "ecfleet".into(),
        password: None,
        lab_root: Some(format!("/srv/lab/{name}")),
        os: Some(RemoteOs::Linux),
        min_os: None,
        connect_timeout: std::time::Duration::from_secs(10),
        line: 1,
    }
}
