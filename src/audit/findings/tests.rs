//! Table-driven tests: a healthy host, then one change per row and the finding it must raise.

use ecfleet_proto::*;

use super::*;

fn healthy() -> Facts {
    crate::testing::healthy_facts("2.6.91.0")
}

fn set_version(f: &mut Facts, v: &str) {
    let ec = f.ec.as_mut().unwrap();
    ec.engine_product_version = Some(v.into());
    ec.config_version = Some(v.into());
}

fn codes(f: &Facts, role: Role) -> Vec<String> {
    let e = evaluate(
        f,
        role,
        &Catalog::embedded(),
        "2026-11-24".parse().unwrap(),
        &AuditPlaybook::embedded(),
    );
    e.findings.into_iter().map(|f| f.code).collect()
}

#[test]
fn a_healthy_host_has_no_findings() {
    assert!(
        codes(&healthy(), Role::Active).is_empty(),
        "{:?}",
        codes(&healthy(), Role::Active)
    );
    let e = evaluate(
        &healthy(),
        Role::Active,
        &Catalog::embedded(),
        "2026-11-24".parse().unwrap(),
        &AuditPlaybook::embedded(),
    );
    assert_eq!(e.sync_summary, "ok");
    assert_eq!(e.support.status, Some(SupportStatus::Supported));
}

#[test]
fn versions_that_are_not_versions_are_a_finding_shown_safely() {
    for raw in [
        "v2.6.91.0",
        "2.6.91.0.1",
        "99999999999.1.1.1",
        "",
        "2.6\u{1b}[31m.91.0",
    ] {
        let mut f = healthy();
        set_version(&mut f, raw);
        let e = evaluate(
            &f,
            Role::Active,
            &Catalog::embedded(),
            "2026-11-24".parse().unwrap(),
            &AuditPlaybook::embedded(),
        );
        let unreadable: Vec<&Finding> = e
            .findings
            .iter()
            .filter(|x| x.code == "version-unreadable")
            .collect();
        assert_eq!(unreadable.len(), 2, "{raw:?}: {:?}", e.findings);
        assert_eq!(unreadable[0].severity, Severity::Warning);
        assert!(
            !unreadable[0].message.contains('\u{1b}'),
            "{}",
            unreadable[0].message
        );
        assert_eq!(e.support.status, None);
    }
}

#[test]
fn each_problem_raises_its_finding() {
    type Change = fn(&mut Facts);
    let rows: Vec<(&str, Change, Role)> = vec![
        (
            "version-mismatch",
            |f| f.ec.as_mut().unwrap().config_version = Some("2.6.3.0".into()),
            Role::Active,
        ),
        (
            "retiring-build",
            |f| set_version(f, "2.5.190.0"),
            Role::Active,
        ),
        (
            "sync-stopped",
            |f| set_version(f, "2.4.131.0"),
            Role::Active,
        ),
        (
            "recalled-build",
            |f| set_version(f, "2.6.79.0"),
            Role::Active,
        ),
        (
            "unknown-build",
            |f| set_version(f, "2.6.55.0"),
            Role::Active,
        ),
        (
            "os-too-old",
            |f| f.os.as_mut().unwrap().build = 9600,
            Role::Active,
        ),
        (
            "dotnet-too-old",
            |f| {
                f.dotnet = Some(DotNetFacts {
                    release: Some(461308),
                })
            },
            Role::Active,
        ),
        (
            "tls12-not-enforced",
            |f| f.tls12.as_mut().unwrap().dotnet_x86.sch_use_strong_crypto = None,
            Role::Active,
        ),
        (
            "disk-low",
            |f| f.disk.as_mut().unwrap().free_bytes = 1 << 30,
            Role::Active,
        ),
        (
            "wizard-open",
            |f| f.open_ui.as_mut().unwrap().wizard = true,
            Role::Active,
        ),
        (
            "sync-service-manager-open",
            |f| f.open_ui.as_mut().unwrap().sync_service_manager = true,
            Role::Active,
        ),
        (
            "staging-mode-on-active",
            |f| f.scheduler.as_mut().unwrap().staging_mode_enabled = Some(true),
            Role::Active,
        ),
        ("staging-server-exporting", |_| {}, Role::Staging),
        (
            "sync-cycle-disabled",
            |f| f.scheduler.as_mut().unwrap().sync_cycle_enabled = Some(false),
            Role::Active,
        ),
        (
            "scheduler-suspended",
            |f| f.scheduler.as_mut().unwrap().scheduler_suspended = Some(true),
            Role::Active,
        ),
        (
            "export-failed",
            |f| crate::testing::newest_run(f, "Export").result = "completed-export-errors".into(),
            Role::Active,
        ),
        (
            "delta-import-failed",
            |f| crate::testing::newest_run(f, "Delta Import").result = "no-start-connection".into(),
            Role::Active,
        ),
        (
            "sync-stale",
            |f| f.collected_at = "2026-11-24T20:00:00Z".into(),
            Role::Active,
        ),
        (
            "health-agent-stopped",
            |f| f.health_agent.as_mut().unwrap()[0].state = "Stopped".into(),
            Role::Active,
        ),
        (
            "auto-upgrade-suspended",
            |f| f.auto_upgrade.as_mut().unwrap().state = "Suspended".into(),
            Role::Active,
        ),
        (
            "adsync-stopped",
            |f| f.adsync_service.as_mut().unwrap().state = "Stopped".into(),
            Role::Active,
        ),
        (
            "customised-default-rules",
            |f| f.sync_rules.as_mut().unwrap().customised_default_rules = 2,
            Role::Active,
        ),
        (
            "probe-failed",
            |f| {
                f.dotnet = None;
                f.probe_failed("dotnet", "Access is denied.");
            },
            Role::Active,
        ),
        (
            "server-core",
            |f| f.os.as_mut().unwrap().installation_type = Some("Server Core".into()),
            Role::Active,
        ),
        (
            "localdb-large",
            |f| f.database.as_mut().unwrap().data_file_bytes = Some(8_700_000_000),
            Role::Active,
        ),
        (
            "localdb-full",
            |f| f.database.as_mut().unwrap().data_file_bytes = Some(10_500_000_000),
            Role::Active,
        ),
        (
            "localdb-full",
            |f| f.run_history.as_mut().unwrap()[0].result = "stopped-database-disk-full".into(),
            Role::Active,
        ),
        (
            "engine-config-edited",
            |f| f.engine_config.as_mut().unwrap().edited_after_install = true,
            Role::Active,
        ),
        (
            "entra-connector-missing",
            |f| f.connectors.as_mut().unwrap().truncate(1),
            Role::Active,
        ),
    ];
    for (code, change, role) in rows {
        let mut f = healthy();
        change(&mut f);
        let got = codes(&f, role);
        assert!(got.contains(&code.to_string()), "{code}: got {got:?}");
    }
}

#[test]
fn a_removed_install_with_a_leftover_entry_is_half_removed() {
    let mut f = healthy();
    f.ec = None;
    f.adsync_service = Some(ServiceFacts {
        name: "ADSync".into(),
        display_name: None,
        state: "NotFound".into(),
        start_mode: None,
    });
    f.uninstall = Some(vec![UninstallEntry {
        display_name: "Microsoft Azure AD Connect synchronization services".into(),
        display_version: Some("1.6.4.0".into()),
        key: None,
        wow6432: false,
    }]);
    assert!(codes(&f, Role::Active).contains(&"half-removed-install".to_string()));
    f.uninstall = Some(vec![]);
    assert!(codes(&f, Role::Active).contains(&"ec-not-installed".to_string()));
}

#[test]
fn a_staging_server_in_staging_mode_is_fine_and_never_judged_on_exports() {
    let mut f = healthy();
    f.scheduler.as_mut().unwrap().staging_mode_enabled = Some(true);
    f.run_history.as_mut().unwrap()[0].result = "stopped-server-down".into();
    let got = codes(&f, Role::Staging);
    assert_eq!(got, vec!["staging-mode"], "{got:?}");
}

#[test]
fn findings_are_sorted_most_severe_first() {
    let mut f = healthy();
    f.open_ui.as_mut().unwrap().wizard = true;
    f.dotnet = Some(DotNetFacts {
        release: Some(394802),
    });
    let got = codes(&f, Role::Active);
    assert_eq!(got, vec!["dotnet-too-old", "wizard-open"]);
}

#[test]
fn an_edited_engine_config_is_a_warning_without_the_redirect_and_info_with_it() {
    let severity = |redirect: bool| {
        let mut f = healthy();
        let config = f.engine_config.as_mut().unwrap();
        config.edited_after_install = true;
        config.diagnostic_source_redirect = redirect;
        let e = evaluate(
            &f,
            Role::Active,
            &Catalog::embedded(),
            "2026-11-24".parse().unwrap(),
            &AuditPlaybook::embedded(),
        );
        let finding = e
            .findings
            .into_iter()
            .find(|f| f.code == "engine-config-edited")
            .unwrap();
        (finding.severity, finding.fix)
    };
    let (without, fix) = severity(false);
    assert_eq!(without, Severity::Warning);
    assert!(fix.contains("bindingRedirect") && fix.contains("cc7b13ffcd2ddd51"));
    assert_eq!(severity(true).0, Severity::Info);
}

#[test]
fn a_full_sql_server_of_any_size_raises_no_localdb_finding() {
    let mut f = healthy();
    let db = f.database.as_mut().unwrap();
    db.local_db = false;
    db.data_file_bytes = Some(50 << 30);
    assert!(codes(&f, Role::Active).is_empty());
}

#[test]
fn the_sync_summary_names_each_problem_once_for_many_connectors() {
    let mut f = healthy();
    let runs = f.run_history.as_mut().unwrap();
    for r in runs.iter_mut() {
        r.result = "stopped-database-disk-full".into();
    }
    let second: Vec<RunResult> = runs
        .iter()
        .map(|r| RunResult {
            connector: "contoso.onmicrosoft.com - AAD".into(),
            ..r.clone()
        })
        .collect();
    runs.extend(second);
    let e = evaluate(
        &f,
        Role::Active,
        &Catalog::embedded(),
        "2026-11-24".parse().unwrap(),
        &AuditPlaybook::embedded(),
    );
    assert_eq!(e.sync_summary, "import failed, export failed, no import");
}
