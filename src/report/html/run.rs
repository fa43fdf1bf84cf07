//! The run's customer reports: per tenant, what was done to each server that night (versions
//! before and after, when and how long, the pre-upgrade backup and its SHA-256, the checks
//! after the upgrade), the exceptions with their next action, support before and after, the
//! next deadlines and the next window; and the fleet's page across tenants. Everything comes
//! from the ledger (`summary.json` or the host records, `plan.json`, `run.json`), the backup
//! manifests on the share and the built-in catalog, judged on the run's day.

use std::collections::BTreeMap;
use std::path::Path;

use askama::Template;
use jiff::civil::Date;

use crate::backup::store::{HostBackups, Role as FileRole, Tag};
use crate::catalog::{Catalog, EcVersion, SupportStatus};
use crate::plan::{Action, Plan};
use crate::run::{HostOutcome, HostRecord, RunReport};

use super::chart::{self, BarChart};
use super::deadlines::{Concern, DeadlineRow, within};
use super::text::{catalog_name, duration, minute, or_dash, share_of, shown, tone};
use super::{FLEET_FILE, Page, Stat, stat, stat_if, tenant_files};

/// What a run report is rendered from.
pub struct RunSource<'a> {
    pub report: &'a RunReport,
    /// The ledger's `plan.json` (windows, the plan's day).
    pub plan: Option<&'a Plan>,
    /// The SHA-256 of the ledger's plan, from `run.json`: the plan's identifier.
    pub plan_sha256: Option<String>,
    pub share: &'a Path,
    pub catalog: &'a Catalog,
    pub retiring_days: i64,
    /// Tenant → its contacts (the inventory's), named on its page.
    pub contacts: BTreeMap<String, Vec<String>>,
    pub generated_at: String,
}

/// One check after the upgrade: passed, failed, or not reached.
pub struct CheckCell {
    pub label: &'static str,
    pub state: &'static str,
    pub text: String,
}

pub struct ServerRow {
    pub host: String,
    pub role: String,
    pub before: String,
    pub after: String,
    pub when: String,
    pub took: String,
    pub result: String,
    pub tone: &'static str,
    pub backup_name: String,
    pub backup_sha256: String,
    pub checks: Vec<CheckCell>,
}

pub struct Exception {
    pub host: String,
    pub result: String,
    pub tone: &'static str,
    pub what: String,
    pub next: String,
}

#[derive(Template)]
#[template(path = "report/run_tenant.html")]
struct TenantPage {
    tenant: String,
    contacts: String,
    run_id: String,
    plan_id: String,
    target: String,
    window: String,
    started: String,
    finished: String,
    generated_at: String,
    in_progress: String,
    stats: Vec<Stat>,
    supported_before: String,
    supported_after: String,
    servers: Vec<ServerRow>,
    exceptions: Vec<Exception>,
    deadlines: Vec<DeadlineRow>,
    next_window: String,
    ledger_errors: Vec<String>,
    catalog: String,
}

pub struct TenantRow {
    pub tenant: String,
    pub file: String,
    pub servers: usize,
    pub verified: usize,
    pub failed: usize,
    pub deferred: usize,
    pub sync_pending: usize,
    pub supported_before: String,
    pub supported_after: String,
    /// `attention` (a server failed), `waiting` (deferred or sync pending), `done`.
    pub state: &'static str,
    pub tone: &'static str,
}

#[derive(Template)]
#[template(path = "report/run_fleet.html")]
struct FleetPage {
    run_id: String,
    plan_id: String,
    target: String,
    started: String,
    finished: String,
    generated_at: String,
    in_progress: String,
    stats: Vec<Stat>,
    supported_before: String,
    supported_after: String,
    tenants: Vec<TenantRow>,
    versions: BarChart,
    bar_left: u32,
    deadlines: Vec<DeadlineRow>,
    catalog: String,
}

/// The run's pages: one per tenant (in the ledger's order), then the fleet's.
pub fn run_pages(source: &RunSource<'_>) -> Result<Vec<Page>, String> {
    let report = source.report;
    let day = run_day(report, source.plan);
    let mut tenants: Vec<&str> = Vec::new();
    for h in &report.hosts {
        if !tenants.contains(&h.tenant.as_str()) {
            tenants.push(&h.tenant);
        }
    }
    let plan_id = source
        .plan_sha256
        .as_deref()
        .map(|s| format!("sha256:{}", shown(s)))
        .unwrap_or_else(|| "–".into());
    let in_progress = report.in_progress.as_deref().map(shown).unwrap_or_default();
    let mut pages = Vec::new();
    let mut rows = Vec::new();
    let files = tenant_files(&tenants);
    for (tenant, file) in tenants.iter().zip(&files) {
        let hosts: Vec<&HostRecord> = report
            .hosts
            .iter()
            .filter(|h| h.tenant == *tenant)
            .collect();
        let (before, after) = supported_counts(&hosts, source, day);
        let count = |f: &dyn Fn(HostOutcome) -> bool| hosts.iter().filter(|h| f(h.outcome)).count();
        let verified = count(&|o| o == HostOutcome::Verified);
        let failed = count(&|o| o.is_failure());
        let deferred = count(&|o| o == HostOutcome::Deferred);
        let sync_pending = count(&|o| o == HostOutcome::SyncPending);
        let servers: Vec<ServerRow> = hosts.iter().map(|h| server_row(h, source)).collect();
        let exceptions: Vec<Exception> = hosts
            .iter()
            .filter_map(|h| exception(h, source.plan))
            .collect();
        let page = TenantPage {
            tenant: shown(tenant),
            contacts: source
                .contacts
                .get(*tenant)
                .map(|c| c.iter().map(|c| shown(c)).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            run_id: shown(&report.run_id),
            plan_id: plan_id.clone(),
            target: shown(&report.target),
            window: window_of(source.plan, tenant),
            started: minute(&report.started_at),
            finished: minute(&report.finished_at),
            generated_at: minute(&source.generated_at),
            in_progress: in_progress.clone(),
            stats: vec![
                stat("Servers in scope", hosts.len(), "neutral"),
                stat("Upgraded and verified", verified, "good"),
                stat_if("Failed", failed, "bad", "neutral"),
                stat_if("Deferred", deferred, "warn", "neutral"),
                stat_if("Sync pending", sync_pending, "warn", "neutral"),
            ],
            supported_before: share_of(before, hosts.len()),
            supported_after: share_of(after, hosts.len()),
            servers,
            exceptions,
            deadlines: deadlines(&hosts, source, day, 365),
            next_window: next_window(source.plan, tenant, report),
            ledger_errors: report.ledger_errors.iter().map(|e| shown(e)).collect(),
            catalog: catalog_line(source.catalog, day, source.plan),
        };
        pages.push(Page {
            file: file.clone(),
            html: page
                .render()
                .map_err(|e| format!("cannot render the report: {e}"))?,
        });
        rows.push(TenantRow {
            tenant: shown(tenant),
            file: file.clone(),
            servers: hosts.len(),
            verified,
            failed,
            deferred,
            sync_pending,
            supported_before: share_of(before, hosts.len()),
            supported_after: share_of(after, hosts.len()),
            state: if failed > 0 {
                "attention"
            } else if deferred + sync_pending > 0 {
                "waiting"
            } else {
                "done"
            },
            tone: if failed > 0 {
                "bad"
            } else if deferred + sync_pending > 0 {
                "warn"
            } else {
                "good"
            },
        });
    }
    // Tenants that need a look first (failed, then waiting), then by name.
    rows.sort_by(|a, b| {
        (b.failed, b.deferred + b.sync_pending)
            .cmp(&(a.failed, a.deferred + a.sync_pending))
            .then_with(|| a.tenant.cmp(&b.tenant))
    });
    let all: Vec<&HostRecord> = report.hosts.iter().collect();
    let (before, after) = supported_counts(&all, source, day);
    let s = &report.summary;
    let deferred_all = all
        .iter()
        .filter(|h| h.outcome == HostOutcome::Deferred)
        .count();
    let fleet = FleetPage {
        run_id: shown(&report.run_id),
        plan_id,
        target: shown(&report.target),
        started: minute(&report.started_at),
        finished: minute(&report.finished_at),
        generated_at: minute(&source.generated_at),
        in_progress,
        stats: vec![
            stat("Tenants", tenants.len(), "neutral"),
            stat("Servers", s.hosts, "neutral"),
            stat("Verified", s.verified, "good"),
            stat_if("Failed", s.failed, "bad", "neutral"),
            stat_if("Deferred", deferred_all, "warn", "neutral"),
            stat_if("Sync pending", s.sync_pending, "warn", "neutral"),
        ],
        supported_before: share_of(before, all.len()),
        supported_after: share_of(after, all.len()),
        tenants: rows,
        versions: chart::bar_chart(version_counts(&all, source, day)),
        bar_left: chart::BAR_LEFT,
        deadlines: deadlines(&all, source, day, 180),
        catalog: catalog_line(source.catalog, day, source.plan),
    };
    pages.push(Page {
        file: FLEET_FILE.into(),
        html: fleet
            .render()
            .map_err(|e| format!("cannot render the report: {e}"))?,
    });
    Ok(pages)
}

/// The day support is judged on: the run's start (UTC), else the plan's day.
fn run_day(report: &RunReport, plan: Option<&Plan>) -> Date {
    report
        .started_at
        .parse::<jiff::Timestamp>()
        .map(|t| t.to_zoned_datetime(jiff::tz::TimeZone::UTC).date())
        .ok()
        .or(plan.map(|p| p.as_of))
        .unwrap_or(jiff::civil::date(2000, 1, 1))
}

/// Which catalog judged support, and whether it is the one the run's plan was made with.
fn catalog_line(catalog: &Catalog, day: Date, plan: Option<&Plan>) -> String {
    let which = catalog_name(&catalog.source);
    let mut line = format!(
        "Support judged on {day} with the catalog of Entra Connect builds {which} (checked {})",
        catalog.checked_on
    );
    if let Some(p) = plan.filter(|p| p.catalog.sha256 != catalog.sha256) {
        line.push_str(&format!(
            "; the run's plan was made with another catalog ({}, checked {}), give it with --catalog to judge as the plan did",
            catalog_name(&p.catalog.source),
            p.catalog.checked_on
        ));
    }
    line
}

/// The version a host ran before the run, and after it.
fn versions(h: &HostRecord) -> (Option<String>, Option<String>) {
    let before = h
        .baseline
        .as_ref()
        .and_then(|b| b.engine.clone())
        .or_else(|| h.from.clone());
    let after = match h.outcome {
        HostOutcome::Verified | HostOutcome::SyncPending | HostOutcome::VersionMismatch => {
            h.to.clone().or_else(|| before.clone())
        }
        _ => before.clone(),
    };
    (before, after)
}

fn status_of(
    version: Option<&str>,
    source: &RunSource<'_>,
    day: Date,
) -> Option<crate::catalog::Support> {
    let v: EcVersion = version?.parse().ok()?;
    Some(source.catalog.support(v, day, source.retiring_days))
}

fn is_supported(version: Option<&str>, source: &RunSource<'_>, day: Date) -> bool {
    status_of(version, source, day)
        .is_some_and(|s| matches!(s.status, SupportStatus::Supported | SupportStatus::Retiring))
}

fn supported_counts(hosts: &[&HostRecord], source: &RunSource<'_>, day: Date) -> (usize, usize) {
    hosts.iter().fold((0, 0), |(b, a), h| {
        let (before, after) = versions(h);
        (
            b + usize::from(is_supported(before.as_deref(), source, day)),
            a + usize::from(is_supported(after.as_deref(), source, day)),
        )
    })
}

fn version_counts(
    hosts: &[&HostRecord],
    source: &RunSource<'_>,
    day: Date,
) -> Vec<(String, usize, &'static str)> {
    let mut counts: BTreeMap<(Option<EcVersion>, String), usize> = BTreeMap::new();
    for h in hosts {
        let after = versions(h).1.unwrap_or_else(|| "unknown".into());
        *counts.entry((after.parse().ok(), after)).or_default() += 1;
    }
    counts
        .into_iter()
        .rev()
        .map(|((_, label), n)| {
            let t = status_of(Some(&label), source, day)
                .map(|s| tone(s.status.as_str()))
                .unwrap_or("neutral");
            (shown(&label), n, t)
        })
        .collect()
}

fn server_row(h: &HostRecord, source: &RunSource<'_>) -> ServerRow {
    let (before, after) = versions(h);
    let first = h.phases.first().map(|p| p.started_at.as_str());
    let last = h
        .finished_at
        .as_deref()
        .or_else(|| h.phases.last().and_then(|p| p.ended_at.as_deref()));
    let (backup_name, backup_sha256) = pre_upgrade_backup(h, source)
        .map(|(n, s)| (shown(&n), shown(&s)))
        .unwrap_or_else(|| ("–".into(), String::new()));
    ServerRow {
        host: shown(&h.host),
        role: h.role.to_string(),
        before: or_dash(before.as_deref()),
        after: or_dash(after.as_deref()),
        when: first.map(minute).unwrap_or_else(|| "–".into()),
        took: match (first, last) {
            (Some(a), Some(b)) => duration(a, b),
            _ => "–".into(),
        },
        result: h.outcome.as_str().into(),
        tone: tone(h.outcome.as_str()),
        backup_name,
        backup_sha256,
        checks: checks_after(h),
    }
}

/// The run's verified pre-upgrade backup of the host, from its manifest on the share: its
/// name and the SHA-256 of its configuration export.
/// The record names it (its folder and name); names that are no inventory's (a forged
/// ledger's) are not looked up.
fn pre_upgrade_backup(h: &HostRecord, source: &RunSource<'_>) -> Option<(String, String)> {
    let named = h.backup.as_deref()?;
    if !(crate::inventory::valid_name(&h.tenant) && crate::inventory::valid_name(&h.host)) {
        return None;
    }
    // The one the record names (a merged run's backups carry their shard's run id), else
    // this run's newest.
    let pre_upgrade: Vec<_> = HostBackups::new(source.share, &h.tenant, &h.host)
        .list()
        .into_iter()
        .rev()
        .filter(|s| s.manifest.tag == Tag::PreUpgrade)
        .collect();
    let stored = pre_upgrade
        .iter()
        .find(|s| named.ends_with(s.manifest.name.as_str()))
        .or_else(|| {
            pre_upgrade
                .iter()
                .find(|s| s.manifest.run_id.as_deref() == Some(source.report.run_id.as_str()))
        })?;
    let sha = stored
        .manifest
        .files
        .iter()
        .find(|f| f.role == FileRole::ServerConfiguration)
        .map(|f| f.sha256.clone())
        .unwrap_or_default();
    Some((stored.manifest.name.clone(), sha))
}

/// The three checks after an upgrade, as the record shows them.
fn checks_after(h: &HostRecord) -> Vec<CheckCell> {
    let upgraded = matches!(
        h.outcome,
        HostOutcome::Verified | HostOutcome::SyncPending | HostOutcome::VersionMismatch
    );
    let cell = |label, state, text: &str| CheckCell {
        label,
        state,
        text: text.into(),
    };
    if !upgraded {
        let why = match h.outcome {
            HostOutcome::Untouched | HostOutcome::Deferred | HostOutcome::Skipped => "not upgraded",
            _ => "not reached",
        };
        return vec![
            cell("Versions agree", "none", why),
            cell("Import and export since", "none", why),
            cell("Health Agent", "none", why),
        ];
    }
    let versions = match h.outcome {
        HostOutcome::VersionMismatch => cell("Versions agree", "bad", "no"),
        _ => cell("Versions agree", "good", "yes"),
    };
    let syncs = match h.outcome {
        HostOutcome::Verified => cell("Import and export since", "good", "yes"),
        HostOutcome::SyncPending => cell("Import and export since", "warn", "full sync running"),
        _ => cell("Import and export since", "none", "not reached"),
    };
    let health_warning = h
        .warnings
        .iter()
        .any(|w| w.to_ascii_lowercase().contains("health agent"));
    let health = match (h.outcome, health_warning) {
        (_, true) => cell("Health Agent", "warn", "disabled"),
        (HostOutcome::Verified, false) => cell("Health Agent", "good", "ok"),
        _ => cell("Health Agent", "none", "not checked"),
    };
    vec![versions, syncs, health]
}

/// A host that needs someone's attention: what happened and what to do next.
fn exception(h: &HostRecord, plan: Option<&Plan>) -> Option<Exception> {
    // What the plan said of a server it does not upgrade in place, and its fix.
    let planned = plan
        .and_then(|p| {
            p.hosts
                .iter()
                .find(|p| p.tenant == h.tenant && p.host == h.host)
        })
        .map(|p| {
            p.reasons
                .iter()
                .map(|r| match &r.fix {
                    Some(fix) => format!("{} (fix: {})", shown(&r.message), shown(fix)),
                    None => shown(&r.message),
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|reasons| !reasons.is_empty());
    let next = match h.outcome {
        HostOutcome::Untouched if h.action != Action::UpToDate => match h.action {
            Action::Blocked => format!(
                "Blocked: {}; then plan again.",
                planned.as_deref().unwrap_or("fix what the plan names")
            ),
            Action::Migrate => format!(
                "Needs a migration to a new server, not an in-place upgrade: {}.",
                planned.as_deref().unwrap_or("see the plan")
            ),
            _ => format!(
                "Upgrades in two steps{}: {}.",
                h.to.as_deref()
                    .map(|v| format!(" (to {})", shown(v)))
                    .unwrap_or_default(),
                planned.as_deref().unwrap_or("see the plan")
            ),
        },
        HostOutcome::Verified | HostOutcome::Untouched if h.warnings.is_empty() => return None,
        HostOutcome::Verified | HostOutcome::Untouched => h
            .warnings
            .iter()
            .map(|w| shown(w))
            .collect::<Vec<_>>()
            .join(" "),
        HostOutcome::Deferred => {
            "Upgraded in the next maintenance window: run the plan again then (phases 1 and 2 are done).".into()
        }
        HostOutcome::SyncPending => {
            "Microsoft's upgrade runs a full import and synchronization; re-check with `ecfleet run --resume` (it touches nothing).".into()
        }
        HostOutcome::Failed | HostOutcome::VersionMismatch if h.handed_off_at.is_none() => {
            "Nothing was installed: fix the cause above, then plan and run again.".into()
        }
        HostOutcome::Failed | HostOutcome::VersionMismatch => {
            "Check the server (Synchronization Service Manager, Application log); if it does not sync, restore it from the pre-upgrade backup.".into()
        }
        HostOutcome::Refused => {
            "Plan again: the server changed since the plan, or its tenant's staging server did not verify.".into()
        }
        HostOutcome::OperatorTimeout => {
            "The upgrade was handed to the operator and not finished: schedule it again.".into()
        }
        HostOutcome::Skipped | HostOutcome::Interrupted => {
            "Not upgraded: carry the run on with `ecfleet run --resume`.".into()
        }
        HostOutcome::Locked => "Another controller drove this server: see that run's report.".into(),
        HostOutcome::InProgress => "The run is still going.".into(),
    };
    // The phase that ended it, when its detail says more than the message.
    let what = match h.phases.iter().rev().find(|p| p.detail.is_some()) {
        Some(p)
            if h.outcome.is_failure()
                && p.detail.as_deref().is_some_and(|d| !h.message.contains(d)) =>
        {
            format!(
                "{} ({}: {})",
                shown(&h.message),
                p.phase,
                shown(p.detail.as_deref().unwrap_or_default())
            )
        }
        Some(p) if h.outcome.is_failure() => format!("{} (in {})", shown(&h.message), p.phase),
        _ => shown(&h.message),
    };
    Some(Exception {
        host: shown(&h.host),
        result: h.outcome.as_str().into(),
        tone: tone(h.outcome.as_str()),
        what,
        next,
    })
}

/// Ends of support and Microsoft's hard deadlines within `days` of `day` that concern these
/// servers (their version after the run).
fn deadlines(
    hosts: &[&HostRecord],
    source: &RunSource<'_>,
    day: Date,
    days: i64,
) -> Vec<DeadlineRow> {
    let afters: Vec<(String, Option<String>)> = hosts
        .iter()
        .map(|h| (shown(&h.host), versions(h).1))
        .collect();
    let concerns = afters.iter().map(|(label, after)| Concern {
        label: label.clone(),
        version: after.as_deref(),
        end_of_support: status_of(after.as_deref(), source, day).and_then(|s| s.end_of_support),
    });
    within(concerns, source.catalog, day, days)
}

fn window_of(plan: Option<&Plan>, tenant: &str) -> String {
    plan.and_then(|p| p.tenants.iter().find(|t| t.name == tenant))
        .and_then(|t| t.maintenance_window.as_deref())
        .map(shown)
        .unwrap_or_else(|| "none set (any time)".into())
}

/// The tenant's next maintenance window after the run ended (counted from its window as
/// the ledger's plan records it, so that the report does not change from day to day).
fn next_window(plan: Option<&Plan>, tenant: &str, report: &RunReport) -> String {
    let Some(t) = plan.and_then(|p| p.tenants.iter().find(|t| t.name == tenant)) else {
        return "–".into();
    };
    let Some(text) = t.maintenance_window.as_deref() else {
        return "none set: any time".into();
    };
    let (Ok(window), Ok(ended)) = (
        crate::window::MaintenanceWindow::parse(text),
        report.finished_at.parse::<jiff::Timestamp>(),
    ) else {
        return shown(text);
    };
    // The first window that opens after the run ended (not the one it may have ended in).
    let next = window.checked_next_after(ended).and_then(|open| {
        if open.start.timestamp() > ended {
            Some(open)
        } else {
            window.checked_next_after(open.end.timestamp())
        }
    });
    let Some(next) = next else {
        return "–".into();
    };
    format!(
        "{} to {} ({})",
        next.start.strftime("%a %Y-%m-%d %H:%M"),
        next.end.strftime("%a %Y-%m-%d %H:%M"),
        shown(window.zone_name())
    )
}
