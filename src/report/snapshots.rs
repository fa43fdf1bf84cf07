//! Snapshot tests of the tables people read: the audit and plan tables are rendered for fixed
//! inputs and compared with the files in `src/report/snapshots/`. A layout change fails here and
//! becomes a reviewed diff: rerun with `UPDATE_SNAPSHOTS=1` and commit the changed file.

use std::path::Path;

use crate::audit::findings::evaluate;
use crate::audit::{AuditPlaybook, AuditReport, AuditSummary, CatalogInfo, HostAudit};
use crate::catalog::Catalog;
use crate::error::ErrorKind;
use crate::inventory::Role;

fn check(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/report/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{name} changed; review the diff and rerun with UPDATE_SNAPSHOTS=1 to accept it\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

fn row(host: &str, tweak: impl Fn(&mut ecfleet_proto::Facts)) -> HostAudit {
    let mut facts = crate::testing::healthy_facts("2.6.91.0");
    tweak(&mut facts);
    let e = evaluate(
        &facts,
        Role::Active,
        &Catalog::embedded(),
        "2026-11-24".parse().unwrap(),
        &AuditPlaybook::embedded(),
    );
    HostAudit {
        tenant: "contoso".into(),
        host: host.into(),
        role: Role::Active,
        address: "10.0.0.1:22".into(),
        reachable: true,
        error: None,
        error_kind: None,
        duration_ms: 200,
        version: e.version,
        support: e.support,
        os: Some("Server 2022 Standard (20348)".into()),
        sync: e.sync_summary,
        findings: e.findings,
        facts: None,
    }
}

fn audit_report() -> AuditReport {
    let mut gone = row("ec-gone", |_| {});
    gone.reachable = false;
    gone.error = Some("cannot connect to 10.0.0.9:22: Connection refused (os error 111)".into());
    gone.error_kind = Some(ErrorKind::Unreachable);
    let hosts = vec![
        row("ec-ok", |_| {}),
        row("ec-tls", |f| {
            f.tls12.as_mut().unwrap().dotnet_x86.sch_use_strong_crypto = None;
            f.disk.as_mut().unwrap().free_bytes = 1 << 30;
        }),
        // The same condition on both connectors: one entry naming the two.
        row("ec-two-failed", |f| {
            for r in f.run_history.as_mut().unwrap() {
                if r.run_profile.contains("Import") {
                    r.result = "stopped-server-down".into();
                }
            }
        }),
        row("ec-escape", |f| {
            let ec = f.ec.as_mut().unwrap();
            ec.engine_product_version = Some("2.6.91.0\u{1b}[2J".into());
        }),
        gone,
    ];
    AuditReport {
        schema_version: 1,
        as_of: "2026-11-24".parse().unwrap(),
        generated_at: "2026-11-24T02:00:00Z".into(),
        inventory: "fleet.toml".into(),
        whole_inventory: true,
        inventory_sha256: None,
        shard: None,
        merged_from: Vec::new(),
        catalog: CatalogInfo {
            source: "embedded catalog".into(),
            checked_on: "2026-11-24".parse().unwrap(),
        },
        summary: AuditSummary::of(&hosts),
        hosts,
        changes: None,
    }
}

#[test]
fn the_audit_table() {
    let mut out = Vec::new();
    super::render_audit(
        &audit_report(),
        super::AuditFormat::Table,
        super::Look::plain(),
        &mut out,
    )
    .unwrap();
    check("audit-table.txt", &String::from_utf8(out).unwrap());
}

#[test]
fn the_audit_csv() {
    let mut out = Vec::new();
    super::render_audit(
        &audit_report(),
        super::AuditFormat::Csv,
        super::Look::plain(),
        &mut out,
    )
    .unwrap();
    check("audit.csv", &String::from_utf8(out).unwrap());
}

#[test]
fn the_plan_table() {
    let plan = crate::plan::tests::small_plan();
    let mut out = Vec::new();
    super::render_plan(
        &plan,
        super::PlanFormat::Table,
        super::Look::plain(),
        &mut out,
    )
    .unwrap();
    check("plan-table.txt", &String::from_utf8(out).unwrap());
}

/// `render` at a terminal of `width` columns: every line fits, and none of the `hosts` takes more
/// than three lines (a host's row starts in the first column, its other lines with spaces).
fn fitted(name: &str, width: usize, hosts: usize, render: impl Fn(super::Look, &mut Vec<u8>)) {
    let mut out = Vec::new();
    render(
        super::Look {
            color: false,
            width: Some(width),
        },
        &mut out,
    );
    let text = String::from_utf8(out).unwrap();
    for line in text.lines() {
        assert!(
            line.chars().count() <= width,
            "{name}: a line of {} columns at {width}:\n{line}",
            line.chars().count()
        );
    }
    let mut rows = 0;
    let mut lines_of_row = 0;
    for line in text.lines().skip(1) {
        if line.starts_with(' ') {
            lines_of_row += 1;
            assert!(
                lines_of_row < super::fit::MAX_LINES,
                "{name}: {line}\n{text}"
            );
        } else if rows == hosts {
            break; // the summary under the table
        } else {
            rows += 1;
            lines_of_row = 0;
        }
    }
    assert_eq!(rows, hosts, "{name}\n{text}");
    check(name, &text);
}

#[test]
fn the_audit_table_fits_80_and_200_columns() {
    for width in [80, 200] {
        fitted(
            &format!("audit-{width}.txt"),
            width,
            audit_report().hosts.len(),
            |look, out| {
                super::render_audit(&audit_report(), super::AuditFormat::Table, look, out).unwrap()
            },
        );
    }
}

#[test]
fn the_plan_table_fits_80_and_200_columns() {
    let plan = crate::plan::tests::small_plan();
    for width in [80, 200] {
        fitted(
            &format!("plan-{width}.txt"),
            width,
            plan.hosts.len(),
            |look, out| super::render_plan(&plan, super::PlanFormat::Table, look, out).unwrap(),
        );
    }
}

fn run_report() -> crate::run::RunReport {
    let phase = |name: &str, outcome: &str, start: &str, end: &str| serde_json::json!({"phase": name, "started_at": start, "ended_at": end, "outcome": outcome, "detail": null});
    let host = |tenant: &str,
                host: &str,
                outcome: &str,
                message: &str,
                phases: Vec<serde_json::Value>| {
        serde_json::json!({
            "tenant": tenant, "host": host, "role": "active", "action": "in-place",
            "from": "2.6.3.0", "to": "2.6.92.0", "wave": 1, "outcome": outcome,
            "message": message, "phases": phases, "baseline": null,
            "backup": "/share/tenants/contoso/ec01/backups/EntraConnect-config-2026-12-07-pre-upgrade",
            "staged": null, "operator": null, "finished_at": "2026-12-07T23:40:00Z"
        })
    };
    let all_ok = vec![
        phase(
            "preflight",
            "ok",
            "2026-12-07T23:00:00Z",
            "2026-12-07T23:00:01Z",
        ),
        phase(
            "backup",
            "ok",
            "2026-12-07T23:00:01Z",
            "2026-12-07T23:00:09Z",
        ),
        phase(
            "stage",
            "ok",
            "2026-12-07T23:00:09Z",
            "2026-12-07T23:01:09Z",
        ),
        phase(
            "upgrade",
            "ok",
            "2026-12-07T23:01:09Z",
            "2026-12-07T23:25:00Z",
        ),
        phase(
            "verify",
            "ok",
            "2026-12-07T23:25:00Z",
            "2026-12-07T23:31:00Z",
        ),
    ];
    let report = serde_json::json!({
        "schema_version": 1, "kind": "ecfleet-run-report", "run_id": "20261207T230000Z-3fa1",
        "ledger": "/share/runs/20261207T230000Z-3fa1", "target": "2.6.92.0",
        "started_at": "2026-12-07T23:00:00Z", "finished_at": "2026-12-08T00:10:00Z",
        "summary": {"hosts": 3, "verified": 1, "failed": 2, "untouched": 0, "waiting": 0, "sync_pending": 0},
        "hosts": [
            host("contoso", "ec01-contoso-primary", "verified", "verified on 2.6.92.0", all_ok.clone()),
            host("fabrikam-holdings", "fab-aadc-02", "failed",
                "backup: the configuration export failed on the host: MigrateSettings.ps1 left no MigratedPolicy.json in C:\\ProgramData\\ecfleet\\backup\\20261207T230001Z-4242 (the script always exits 0; its log says: access to the path is denied)",
                vec![
                    phase("preflight", "ok", "2026-12-07T23:00:00Z", "2026-12-07T23:00:02Z"),
                    phase("backup", "failed", "2026-12-07T23:00:02Z", "2026-12-07T23:00:40Z"),
                ]),
            host("tailspin", "tsp-sync", "operator-timeout",
                "the operator did not finish within the upgrade deadline (7200 s); the upgrade was not touched",
                all_ok[..4].to_vec()),
        ],
        "ledger_errors": []
    });
    serde_json::from_value(report).unwrap()
}

#[test]
fn the_run_table_fits_80_and_200_columns() {
    let report = run_report();
    for width in [80, 200] {
        fitted(
            &format!("run-{width}.txt"),
            width,
            report.hosts.len(),
            |look, out| super::render_run(&report, false, look, out).unwrap(),
        );
    }
    // Piped: the full table, as before.
    let mut out = Vec::new();
    super::render_run(&report, false, super::Look::plain(), &mut out).unwrap();
    check("run-table.txt", &String::from_utf8(out).unwrap());
}

#[test]
fn the_backup_and_stage_tables_fit_80_and_200_columns() {
    use crate::backup::{BackupReport, BackupSummary, HostBackup};
    use crate::stage::fleet::{HostStage, StageReport, StageSummary};
    let backup_host = |host: &str, ok: bool, error: Option<&str>| HostBackup {
        tenant: "fabrikam-holdings".into(),
        host: host.into(),
        role: Role::Active,
        address: "10.1.2.3:22".into(),
        ok,
        error: error.map(Into::into),
        error_kind: error.map(|_| ErrorKind::Agent),
        duration_ms: 812,
        backup: ok.then(|| "EntraConnect-config-2026-12-07-nightly".into()),
        path: None,
        files: Vec::new(),
        engine_version: Some("2.6.3.0".into()),
        warnings: vec![
            "the applied policy JSON is older than the last connector change: run the wizard once"
                .into(),
        ],
        drift: None,
        removed: vec!["EntraConnect-config-2026-11-20-nightly".into()],
        new_bytes: 9_216,
        reused_bytes: 214_016,
    };
    let backups = BackupReport {
        schema_version: 1,
        kind: "ecfleet-backup-report".into(),
        generated_at: "2026-12-07T02:00:00Z".into(),
        inventory: "/etc/ecfleet/fleet.toml".into(),
        share: "/mnt/ecfleet-share".into(),
        tag: crate::backup::Tag::Nightly,
        retention: Default::default(),
        summary: BackupSummary {
            hosts: 2,
            backed_up: 1,
            failed: 1,
            drifted: 0,
            new_bytes: 9_216,
            reused_bytes: 214_016,
        },
        hosts: vec![
            backup_host("fab-aadc-01", true, None),
            backup_host(
                "fab-aadc-02",
                false,
                Some(
                    "the configuration export failed on the host: MigrateSettings.ps1 is not installed and Get-ADSyncServerConfiguration failed: access denied",
                ),
            ),
        ],
    };
    let stage_host = |host: &str, error: Option<&str>| HostStage {
        tenant: "contoso".into(),
        host: host.into(),
        address: "10.0.0.4:5986".into(),
        ok: error.is_none(),
        error: error.map(Into::into),
        error_kind: error.map(|_| ErrorKind::Refused),
        duration_ms: 4000,
        staged: error.is_none().then(|| crate::stage::Staged {
            path: r"C:\ProgramData\ecfleet\staged\af339cd79da34509\AzureADConnect.msi".into(),
            already_there: false,
            sent: 150 << 20,
            resumed_from: 0,
            interruptions: Vec::new(),
            signature: None,
            transfer: None,
        }),
    };
    let staged = StageReport {
        schema_version: 1,
        kind: "ecfleet-stage-report".into(),
        generated_at: "2026-12-07T21:00:00Z".into(),
        installer: crate::msi::MsiInfo {
            path: "AzureADConnect.msi".into(),
            sha256: "af339cd7".into(),
            size: 150 << 20,
            product_name: "Microsoft Entra Connect".into(),
            product_version: "2.6.92.0".into(),
            upgrade_code: None,
            product_code: None,
            manufacturer: None,
        },
        summary: StageSummary {
            hosts: 2,
            staged: 1,
            failed: 1,
            already_there: 0,
            bytes_sent: 150 << 20,
            seconds: 4.0,
        },
        hosts: vec![
            stage_host("ec01", None),
            stage_host(
                "ec02",
                Some(
                    "C: filled while the installer was staged: 512 KiB of 150 MiB arrived; free space on C:, then run again",
                ),
            ),
        ],
    };
    for width in [80, 200] {
        fitted(&format!("backup-{width}.txt"), width, 2, |look, out| {
            super::render_backup(&backups, super::BackupFormat::Table, look, out).unwrap()
        });
        fitted(&format!("stage-{width}.txt"), width, 2, |look, out| {
            super::render_stage(&staged, false, look, out).unwrap()
        });
    }
}
