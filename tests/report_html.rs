//! The customer reports (issue 19 §1; docs/report.md) as a customer sees them: a faulted lab
//! night (`lab up --hosts 28 --faults`, audit, plan, run) on real parts, then `report latest
//! --format html` and `report audit latest --format html`, each page opened in headless
//! Chromium (Debian's `chromium` and `chromium-driver`, through WebDriver) that takes a
//! screenshot and A4 and Letter PDFs of it; what the page says is read through the browser's
//! DOM, not by searching the file. One lab host reports a hostile operating-system name, which
//! must read as text.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{ecfleet, json_of};

/// Markup, quotes and a terminal escape, as a hostile host would send them.
const HOSTILE_OS: &str = "<script>alert(1)</script>\"'&\u{1b}[31m";

/// Debian's Chromium and its ChromeDriver, installed as CI installs them when missing.
fn chromium() -> (PathBuf, PathBuf) {
    let browser = PathBuf::from("/usr/bin/chromium");
    let driver = PathBuf::from("/usr/bin/chromedriver");
    if !browser.exists() || !driver.exists() {
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-qq", "chromium", "chromium-driver"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
    assert!(
        browser.exists() && driver.exists(),
        "Chromium is required: apt-get install -y chromium chromium-driver"
    );
    (browser, driver)
}

/// Every page in `files` as the browser saw it (tests/report_html/browser.py), by file name.
fn in_browser(files: &[PathBuf], out: &Path) -> BTreeMap<String, serde_json::Value> {
    let (browser, driver) = chromium();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/report_html/browser.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(driver)
        .arg(browser)
        .arg(out)
        .args(files)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "browser.py: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        std::fs::read_to_string(out.join("chromedriver.log")).unwrap_or_default()
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The files `report … --format html` says it wrote, one per line.
fn written(out: &Output) -> Vec<PathBuf> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code().is_some_and(|c| c <= 2),
        "exit {:?}: {stderr}",
        out.status.code()
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .collect()
}

/// A table of a page, by its id: (header, rows of cell texts).
fn table<'a>(page: &'a serde_json::Value, id: &str) -> (Vec<&'a str>, Vec<Vec<&'a str>>) {
    let t = page["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no table #{id}: {page:#}"));
    let texts = |v: &'a serde_json::Value| -> Vec<&'a str> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect()
    };
    (
        texts(&t["head"]),
        t["rows"].as_array().unwrap().iter().map(texts).collect(),
    )
}

fn column(head: &[&str], name: &str) -> usize {
    head.iter()
        .position(|h| h.eq_ignore_ascii_case(name))
        .unwrap_or_else(|| panic!("no column {name} in {head:?}"))
}

/// Every page was rendered by the browser, printed on A4 and Letter, and photographed; it runs
/// no script and fetches nothing.
fn assert_self_contained_and_printed(name: &str, page: &serde_json::Value) {
    assert_eq!(page["scripts"], 0, "{name} has a script element");
    assert_eq!(
        page["external"].as_array().unwrap().len(),
        0,
        "{name} fetched {}",
        page["external"]
    );
    let png = std::fs::read(page["png"].as_str().unwrap()).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{name}: screenshot"
    );
    for paper in ["a4", "letter"] {
        let pdf = std::fs::read(page["pdf"][paper]["path"].as_str().unwrap()).unwrap();
        assert!(
            pdf.starts_with(b"%PDF-") && pdf.len() > 5_000,
            "{name}: {paper} PDF"
        );
    }
    assert!(
        page["width"].as_u64().unwrap() <= 1200,
        "{name} is wider than the window: {}",
        page["width"]
    );
}

#[test]
fn a_lab_night_reads_right_in_chromium_for_each_customer_and_the_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let _lab = common::winrm::lab_up(&lab_dir, 28, 0, &["--faults"]);
    let inventory = lab_dir.join("inventory.toml");
    // One host names its operating system with markup, quotes and a terminal escape.
    let machine = lab_dir.join("hosts/t01-current/machine.toml");
    let text = std::fs::read_to_string(&machine).unwrap();
    let toml_hostile = HOSTILE_OS
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\u{1b}', "\\u001b");
    let text = text.replacen(
        "caption = \"Microsoft Windows Server 2022 Standard\"",
        &format!("caption = \"{toml_hostile}\""),
        1,
    );
    assert!(
        text.contains("<script>"),
        "the lab's machine.toml changed shape"
    );
    std::fs::write(&machine, text).unwrap();
    let fleet = |args: &[&str]| {
        ecfleet()
            .args(args)
            .arg("--agent-dir")
            .arg(common::agent_dir())
            .arg("-i")
            .arg(&inventory)
            .output()
            .unwrap()
    };
    let report = |args: &[&str]| {
        ecfleet()
            .args(args)
            .arg("-i")
            .arg(&inventory)
            .output()
            .unwrap()
    };

    // The night: an audit (its snapshot on the share), then the plan and the run.
    let out = fleet(&["audit", "--as-of", "2026-11-24", "--format", "json"]);
    let (audit, stderr) = json_of(&out);
    assert!(out.status.code().is_some_and(|c| c <= 2), "{stderr}");
    let out = common::plan_and_run(dir.path(), &lab_dir, &fleet, &[]);
    let (run, stderr) = json_of(&out);
    assert!(
        run["summary"]["verified"].as_u64().unwrap() >= 1,
        "{stderr}"
    );
    assert!(run["summary"]["failed"].as_u64().unwrap() >= 1, "{stderr}");

    let run_dir = dir.path().join("run-report");
    let run_files = written(&report(&[
        "report",
        "latest",
        "--format",
        "html",
        "--out",
        run_dir.to_str().unwrap(),
    ]));
    let audit_dir = dir.path().join("audit-report");
    let audit_files = written(&report(&[
        "report",
        "audit",
        "latest",
        "--format",
        "html",
        "--out",
        audit_dir.to_str().unwrap(),
    ]));
    let mut tenants: Vec<String> = run["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["tenant"].as_str().unwrap().to_string())
        .collect();
    tenants.dedup();
    assert_eq!(run_files.len(), tenants.len() + 1, "{run_files:?}");
    assert_eq!(audit_files.len(), tenants.len() + 1, "{audit_files:?}");

    let shots = dir.path().join("shots");
    std::fs::create_dir_all(shots.join("run")).unwrap();
    std::fs::create_dir_all(shots.join("audit")).unwrap();
    let run_pages = in_browser(&run_files, &shots.join("run"));
    let audit_pages = in_browser(&audit_files, &shots.join("audit"));
    for (name, page) in run_pages.iter().chain(&audit_pages) {
        assert_self_contained_and_printed(name, page);
    }

    // Each customer's run page: its servers, their versions and outcomes where they belong.
    for tenant in &tenants {
        let page = &run_pages[&format!("tenant-{tenant}.html")];
        assert_eq!(page["h1"], tenant.as_str());
        let (head, rows) = table(page, "servers");
        let (server, version, result) = (
            column(&head, "Server"),
            column(&head, "Version"),
            column(&head, "Result"),
        );
        let hosts: Vec<&serde_json::Value> = run["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["tenant"] == tenant.as_str())
            .collect();
        assert_eq!(rows.len(), hosts.len(), "{tenant}: {rows:?}");
        for h in hosts {
            let row = rows
                .iter()
                .find(|r| r[server] == h["host"].as_str().unwrap())
                .unwrap_or_else(|| panic!("{tenant}: no row for {}: {rows:?}", h["host"]));
            assert_eq!(row[result], h["outcome"].as_str().unwrap(), "{row:?}");
            let from = h["baseline"]["engine"]
                .as_str()
                .or(h["from"].as_str())
                .unwrap_or("–");
            assert!(row[version].starts_with(from), "{row:?} {h:#}");
            if h["outcome"] == "verified" {
                assert!(row[version].ends_with(h["to"].as_str().unwrap()), "{row:?}");
            }
        }
        assert!(
            page["body"]
                .as_str()
                .unwrap()
                .contains(run["run_id"].as_str().unwrap()),
            "{tenant}: the run's id"
        );
    }
    // A failed server is an exception with its next action.
    let failed = run["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["outcome"] == "failed")
        .unwrap();
    let page = &run_pages[&format!("tenant-{}.html", failed["tenant"].as_str().unwrap())];
    let (head, rows) = table(page, "exceptions-table");
    let (server, result, next) = (
        column(&head, "Server"),
        column(&head, "Result"),
        column(&head, "Next action"),
    );
    assert!(
        rows.iter()
            .any(|r| r[server] == failed["host"] && r[result] == "failed" && !r[next].is_empty()),
        "{rows:?}"
    );

    // The fleet's run page: one row per tenant, with its counts.
    let (head, rows) = table(&run_pages["fleet.html"], "tenants");
    assert_eq!(rows.len(), tenants.len());
    let verified = column(&head, "Verified");
    let total: u64 = rows
        .iter()
        .map(|r| r[verified].parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, run["summary"]["verified"].as_u64().unwrap());

    // The audit pages: each server's build and support; the hostile name reads as text.
    let page = &audit_pages["tenant-tenant01.html"];
    let (head, rows) = table(page, "servers");
    let (server, os, build) = (
        column(&head, "Server"),
        column(&head, "Operating system"),
        column(&head, "Build"),
    );
    let row = rows
        .iter()
        .find(|r| r[server].starts_with("t01-current"))
        .unwrap_or_else(|| panic!("{rows:?}"));
    assert!(
        row[os].starts_with("<script>alert(1)</script>\"'&\\u{1b}[31m"),
        "the hostile name reads as text: {row:?}"
    );
    let audited = |host: &str| {
        audit["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == host)
            .unwrap()
            .clone()
    };
    assert_eq!(
        row[build],
        audited("t01-current")["version"]["product"]
            .as_str()
            .unwrap()
    );
    let versions: Vec<&str> = audit_pages["fleet.html"]["svgs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "versions-chart")
        .unwrap()["text"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for h in audit["hosts"].as_array().unwrap() {
        if let Some(v) = h["version"]["product"]
            .as_str()
            .filter(|_| h["reachable"] == true)
        {
            assert!(versions.contains(&v), "{v} not in the chart: {versions:?}");
        }
    }
    let timeline = audit_pages["tenant-tenant01.html"]["svgs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "support-timeline")
        .unwrap();
    assert!(
        timeline["text"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "today"),
        "{timeline:#}"
    );
    // Findings grouped by severity, each with its fix.
    let criticals = audit["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["tenant"] == "tenant01")
        .flat_map(|h| h["findings"].as_array().unwrap())
        .filter(|f| f["severity"] == "critical")
        .count();
    let shown = page["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["severity"] == "Critical")
        .map(|t| t["rows"].as_array().unwrap().len())
        .unwrap_or(0);
    assert_eq!(shown, criticals);

    // The same records give the same report tomorrow, apart from the generation time.
    let again = dir.path().join("run-report-again");
    let files = written(&report(&[
        "report",
        "latest",
        "--format",
        "html",
        "--out",
        again.to_str().unwrap(),
    ]));
    let without_time = |p: &Path| {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .filter(|l| !l.contains("<p>Generated "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (a, b) in run_files.iter().zip(&files) {
        assert_eq!(without_time(a), without_time(b), "{}", a.display());
    }

    // Kept where a person can look at them: target/tmp/report-html/.
    let keep = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-html");
    let _ = std::fs::remove_dir_all(&keep);
    let status = Command::new("cp")
        .arg("-a")
        .arg(&shots)
        .arg(&keep)
        .status()
        .unwrap();
    assert!(status.success());
}
