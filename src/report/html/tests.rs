//! The HTML reports from hand-made records: hostile names and messages stay text, the pages
//! are self-contained, and the same records give the same bytes. (The pages in a real browser,
//! from a real lab night: tests/report_html.rs.)

use std::collections::BTreeMap;

use super::*;
use crate::catalog::Catalog;
use crate::run::RunReport;

const HOSTILE: &str = "<script>alert(1)</script>\"'&\u{1b}[31m";

fn run_report() -> RunReport {
    let record = |host: &str, outcome: &str, message: &str| {
        serde_json::json!({
            "tenant": HOSTILE, "host": host, "role": "active", "action": "in-place",
            "from": "2.3.20.0", "to": "2.5.190.0", "wave": 1, "outcome": outcome,
            "message": message,
            "phases": [
                {"phase": "preflight", "started_at": "2026-11-24T22:00:05Z",
                 "ended_at": "2026-11-24T22:00:09Z", "outcome": "ok", "detail": null},
                {"phase": "verify", "started_at": "2026-11-24T22:10:00Z",
                 "ended_at": "2026-11-24T22:12:30Z", "outcome": outcome, "detail": message}
            ],
            // The hostile server's version reading is hostile too: it is drawn in the chart.
            "baseline": {"engine": if host == HOSTILE { HOSTILE } else { "2.3.20.0" },
                         "config": "2.3.20.0"},
            "backup": null, "staged": null, "operator": null,
            "finished_at": "2026-11-24T22:12:30Z"
        })
    };
    serde_json::from_value(serde_json::json!({
        "schema_version": 1, "kind": "ecfleet-run", "run_id": "20261124T220000Z-00aa",
        "ledger": "runs/20261124T220000Z-00aa", "target": "2.5.190.0",
        "started_at": "2026-11-24T22:00:00Z", "finished_at": "2026-11-24T22:13:00Z",
        "summary": {"hosts": 2, "verified": 1, "failed": 1, "untouched": 0, "waiting": 0},
        "hosts": [
            record("ec01", "verified", "verified"),
            record(HOSTILE, "failed", HOSTILE),
        ],
        "ledger_errors": [HOSTILE]
    }))
    .unwrap()
}

fn pages() -> Vec<Page> {
    let report = run_report();
    let share = tempfile::tempdir().unwrap();
    let catalog = Catalog::embedded();
    let source = RunSource {
        report: &report,
        plan: None,
        plan_sha256: Some("ab".repeat(32)),
        share: share.path(),
        catalog: &catalog,
        retiring_days: 90,
        contacts: BTreeMap::from([(HOSTILE.to_string(), vec![HOSTILE.to_string()])]),
        generated_at: "2026-11-25T06:00:00Z".into(),
    };
    run_pages(&source).unwrap()
}

#[test]
fn hostile_names_and_messages_are_text_in_every_page() {
    let pages = pages();
    assert_eq!(pages.len(), 2, "one tenant page and the fleet's");
    assert_eq!(pages[1].file, FLEET_FILE);
    assert!(
        pages[0].file.starts_with("tenant-_script_alert"),
        "{}",
        pages[0].file
    );
    for page in &pages {
        let html = &page.html;
        assert!(!html.contains("<script"), "{}: {html}", page.file);
        assert!(!html.contains('\u{1b}'), "{}", page.file);
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
                || html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{}: the hostile name is shown as text",
            page.file
        );
        assert!(html.contains("\\u{1b}[31m"), "{}", page.file);
        // Self-contained: nothing fetched, nothing run.
        for fetch in ["src=", "<link", "@import", "url(", "http://", "https://"] {
            assert!(!html.contains(fetch), "{}: {fetch}", page.file);
        }
    }
}

#[test]
fn the_same_records_render_the_same_bytes() {
    let (a, b) = (pages(), pages());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.html, y.html, "{}", x.file);
    }
}

#[test]
fn the_tenant_page_says_what_happened_to_each_server() {
    let pages = pages();
    let html = &pages[0].html;
    assert!(html.contains("2.3.20.0<span class=\"arrow\">→</span>2.5.190.0"));
    assert!(html.contains("Servers on a supported build: <b>0 of 2 (0%)</b> before the run"));
    assert!(html.contains("<b>1 of 2 (50%)</b> after it"));
    assert!(html.contains("12 min 25 s"), "how long ec01 took");
    assert!(html.contains("Versions agree: yes"));
}

#[test]
fn hostile_audit_values_are_text_and_a_far_date_renders() {
    let host = |name: &str, as_host: bool| {
        serde_json::json!({
            "tenant": if as_host { HOSTILE } else { "contoso" }, "host": name, "role": HOSTILE,
            "reachable": name != "gone", "error": HOSTILE,
            "version": {"product": HOSTILE},
            "support": {"status": HOSTILE, "end_of_support": "9999-12-31", "reason": HOSTILE},
            "os": HOSTILE,
            "findings": [{"code": HOSTILE, "severity": "critical", "message": HOSTILE, "fix": HOSTILE}],
            "facts": {"entra_auth": {"identity_type": HOSTILE}}
        })
    };
    let audit: StoredAudit = serde_json::from_value(serde_json::json!({
        "as_of": "9999-12-01", "generated_at": HOSTILE,
        "catalog": {"source": HOSTILE, "checked_on": "2026-11-24"},
        "hosts": [host(HOSTILE, true), host("gone", false), host("../../etc", false)]
    }))
    .unwrap();
    let share = tempfile::tempdir().unwrap();
    let catalog = Catalog::embedded();
    let source = AuditSource {
        audit: &audit,
        snapshot: HOSTILE.into(),
        share: share.path(),
        catalog: &catalog,
        contacts: BTreeMap::new(),
        generated_at: "2026-11-25T06:00:00Z".into(),
    };
    let pages = audit_pages(&source).unwrap();
    assert_eq!(pages.len(), 3);
    for page in &pages {
        assert!(!page.html.contains("<script"), "{}", page.file);
        assert!(!page.html.contains('\u{1b}'), "{}", page.file);
        assert!(page.html.contains("\\u{1b}[31m"), "{}", page.file);
    }
}

#[test]
fn tenants_whose_names_would_share_a_page_each_get_their_own() {
    let files = tenant_files(&["contoso", "Contoso", "a b", "a_b", "fabrikam"]);
    assert_eq!(files[4], "tenant-fabrikam.html");
    let mut unique = files.clone();
    unique.sort_by_key(|f| f.to_ascii_lowercase());
    unique.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    assert_eq!(unique.len(), files.len(), "{files:?}");
    assert!(files[0].starts_with("tenant-contoso-") && files[2].starts_with("tenant-a_b-"));
}
