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
        catalog: CatalogInfo {
            source: "embedded catalog".into(),
            checked_on: "2026-11-24".parse().unwrap(),
        },
        summary: AuditSummary {
            hosts: 4,
            reachable: 3,
            unreachable: 1,
            critical: 1,
            warning: 3,
            info: 0,
        },
        hosts,
        changes: None,
    }
}

#[test]
fn the_audit_table() {
    let mut out = Vec::new();
    super::render_audit(&audit_report(), super::AuditFormat::Table, false, &mut out).unwrap();
    check("audit-table.txt", &String::from_utf8(out).unwrap());
}

#[test]
fn the_audit_csv() {
    let mut out = Vec::new();
    super::render_audit(&audit_report(), super::AuditFormat::Csv, false, &mut out).unwrap();
    check("audit.csv", &String::from_utf8(out).unwrap());
}

#[test]
fn the_plan_table() {
    let plan = crate::plan::tests::small_plan();
    let mut out = Vec::new();
    super::render_plan(&plan, super::PlanFormat::Table, false, &mut out).unwrap();
    check("plan-table.txt", &String::from_utf8(out).unwrap());
}
