//! The audit's customer reports: per tenant, every server's build, support status and end of
//! support (with a timeline), its findings by severity with their fixes, how its Entra
//! connector authenticates, and the configuration drift between its two newest backups on the
//! share; and the fleet's page (versions across the fleet, tenants by risk, every deadline in
//! the next 180 days). Everything comes from one audit snapshot (`audits/<stamp>/audit.json`),
//! the backups on the share and the built-in catalog, judged on the audit's day.

use std::collections::BTreeMap;
use std::path::Path;

use askama::Template;
use jiff::civil::Date;
use serde::Deserialize;

use crate::backup::store::HostBackups;
use crate::catalog::{Catalog, EcVersion};

use super::chart::{self, BarChart, Timeline};
use super::deadlines::{Concern, DeadlineRow, within};
use super::text::{catalog_name, days_between, days_words, minute, or_dash, shown, tone};
use super::{FLEET_FILE, Page, Stat, stat, stat_if, tenant_files};

/// The parts of an `audit.json` the report shows (docs/json-output.md).
#[derive(Debug, Deserialize)]
pub struct StoredAudit {
    pub as_of: Date,
    pub generated_at: String,
    #[serde(default)]
    pub whole_inventory: Option<bool>,
    #[serde(default)]
    pub catalog: Option<StoredCatalog>,
    pub hosts: Vec<StoredHost>,
}

/// The catalog the audit judged support with.
#[derive(Debug, Deserialize)]
pub struct StoredCatalog {
    pub source: String,
    pub checked_on: Date,
}

#[derive(Debug, Deserialize)]
pub struct StoredHost {
    pub tenant: String,
    pub host: String,
    #[serde(default)]
    pub role: Option<String>,
    pub reachable: bool,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub version: StoredVersion,
    #[serde(default)]
    pub support: Option<StoredSupport>,
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub findings: Vec<StoredFinding>,
    #[serde(default)]
    pub facts: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct StoredVersion {
    pub product: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct StoredSupport {
    pub status: Option<String>,
    pub end_of_support: Option<Date>,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Deserialize)]
pub struct StoredFinding {
    pub code: String,
    pub severity: String,
    pub message: String,
    #[serde(default)]
    pub fix: String,
}

/// What an audit report is rendered from.
pub struct AuditSource<'a> {
    pub audit: &'a StoredAudit,
    /// Where the snapshot is, as the report names it (`audits/<stamp>/audit.json`).
    pub snapshot: String,
    pub share: &'a Path,
    pub catalog: &'a Catalog,
    pub contacts: BTreeMap<String, Vec<String>>,
    pub generated_at: String,
}

pub struct ServerRow {
    pub host: String,
    pub role: String,
    pub version: String,
    pub status: String,
    pub tone: &'static str,
    pub end: String,
    pub left: String,
    pub auth: String,
    pub auth_tone: &'static str,
    pub os: String,
    pub note: String,
}

pub struct FindingRow {
    pub host: String,
    pub code: String,
    pub message: String,
    pub fix: String,
}

pub struct SeverityGroup {
    pub name: &'static str,
    pub tone: &'static str,
    pub findings: Vec<FindingRow>,
}

pub struct DriftRow {
    pub host: String,
    pub since: String,
    pub lines: Vec<String>,
}

#[derive(Template)]
#[template(path = "report/audit_tenant.html")]
struct TenantPage {
    tenant: String,
    contacts: String,
    as_of: String,
    audited: String,
    snapshot: String,
    generated_at: String,
    stats: Vec<Stat>,
    timeline: Timeline,
    /// Microsoft's hard deadlines the timeline marks, in words.
    legend: Vec<(String, String)>,
    servers: Vec<ServerRow>,
    groups: Vec<SeverityGroup>,
    drift: Vec<DriftRow>,
    drift_unknown: Vec<String>,
    catalog: String,
}

pub struct TenantRisk {
    pub tenant: String,
    pub file: String,
    pub servers: usize,
    pub unsupported: usize,
    pub unreachable: usize,
    pub critical: usize,
    pub warning: usize,
    pub next_end: String,
    pub risk: &'static str,
    pub tone: &'static str,
}

#[derive(Template)]
#[template(path = "report/audit_fleet.html")]
struct FleetPage {
    as_of: String,
    audited: String,
    snapshot: String,
    generated_at: String,
    stats: Vec<Stat>,
    versions: BarChart,
    bar_left: u32,
    tenants: Vec<TenantRisk>,
    deadlines: Vec<DeadlineRow>,
    catalog: String,
}

fn status_word(h: &StoredHost) -> String {
    if !h.reachable {
        return "unreachable".into();
    }
    h.support
        .as_ref()
        .and_then(|s| s.status.as_deref())
        .map(shown)
        .unwrap_or_else(|| "unknown".into())
}

/// Unsupported in the widest sense: out of support, sync stopped, recalled.
fn unsupported(h: &StoredHost) -> bool {
    matches!(
        status_word(h).as_str(),
        "unsupported" | "sync-stopped" | "recalled"
    )
}

fn end_of(h: &StoredHost) -> Option<Date> {
    h.support.as_ref().and_then(|s| s.end_of_support)
}

/// How the Entra connector authenticates, from the facts (`Get-ADSyncEntraConnectorCredential`).
fn auth_state(h: &StoredHost) -> (String, &'static str) {
    let identity = h
        .facts
        .as_ref()
        .and_then(|f| f.get("entra_auth"))
        .and_then(|a| a.get("identity_type"))
        .and_then(|t| t.as_str());
    match identity {
        Some("Application") => ("application (certificate)".into(), "good"),
        Some("ServiceAccount") => ("service account (Sync_* user)".into(), "warn"),
        Some(other) => (shown(other), "neutral"),
        None if !h.reachable => ("–".into(), "none"),
        None => ("not reported (build before 2.5.76.0)".into(), "none"),
    }
}

/// The audit's pages: one per tenant (in the snapshot's order), then the fleet's.
pub fn audit_pages(source: &AuditSource<'_>) -> Result<Vec<Page>, String> {
    let audit = source.audit;
    let day = audit.as_of;
    let mut tenants: Vec<&str> = Vec::new();
    for h in &audit.hosts {
        if !tenants.contains(&h.tenant.as_str()) {
            tenants.push(&h.tenant);
        }
    }
    let hard_deadlines: Vec<(Date, String)> = source
        .catalog
        .deadlines
        .iter()
        .map(|d| (d.date, shown(&d.message)))
        .collect();
    let judged_with = audit
        .catalog
        .as_ref()
        .map(|c| {
            format!(
                " with the catalog {} (checked {})",
                catalog_name(&c.source),
                c.checked_on
            )
        })
        .unwrap_or_default();
    let mut catalog = format!(
        "Support as the audit judged it on {day}{judged_with}; Microsoft's deadlines from the catalog {} (checked {})",
        catalog_name(&source.catalog.source),
        source.catalog.checked_on
    );
    if audit.whole_inventory == Some(false) {
        catalog.push_str(
            "; this audit covered part of the inventory (--host, --tenant or --shard), and so does the report",
        );
    }
    let mut pages = Vec::new();
    let mut risks = Vec::new();
    let files = tenant_files(&tenants);
    for (tenant, file) in tenants.iter().zip(&files) {
        let hosts: Vec<&StoredHost> = audit.hosts.iter().filter(|h| h.tenant == *tenant).collect();
        let count_sev = |s: &str| {
            hosts
                .iter()
                .flat_map(|h| &h.findings)
                .filter(|f| f.severity == s)
                .count()
        };
        let (critical, warning) = (count_sev("critical"), count_sev("warning"));
        let unsupported_n = hosts.iter().filter(|h| unsupported(h)).count();
        let unreachable = hosts.iter().filter(|h| !h.reachable).count();
        let servers: Vec<ServerRow> = hosts.iter().map(|h| server_row(h, day)).collect();
        let timeline = chart::timeline(
            day,
            hosts
                .iter()
                .map(|h| (shown(&h.host), end_of(h), tone(&status_word(h))))
                .collect(),
            hard_deadlines.clone(),
        );
        let groups = ["critical", "warning", "info"]
            .into_iter()
            .map(|sev| SeverityGroup {
                name: match sev {
                    "critical" => "Critical",
                    "warning" => "Warning",
                    _ => "Information",
                },
                tone: tone(sev),
                findings: hosts
                    .iter()
                    .flat_map(|h| {
                        h.findings
                            .iter()
                            .filter(move |f| f.severity == sev)
                            .map(move |f| FindingRow {
                                host: shown(&h.host),
                                code: shown(&f.code),
                                message: shown(&f.message),
                                fix: shown(&f.fix),
                            })
                    })
                    .collect(),
            })
            .collect();
        let (drift, drift_unknown) =
            drift_of(&hosts, source.share, audit.generated_at.parse().ok());
        let page = TenantPage {
            tenant: shown(tenant),
            contacts: source
                .contacts
                .get(*tenant)
                .map(|c| c.iter().map(|c| shown(c)).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            as_of: day.to_string(),
            audited: minute(&audit.generated_at),
            snapshot: shown(&source.snapshot),
            generated_at: minute(&source.generated_at),
            stats: vec![
                stat("Servers", hosts.len(), "neutral"),
                stat_if("Unsupported", unsupported_n, "bad", "good"),
                stat_if("Critical findings", critical, "bad", "good"),
                stat_if("Warnings", warning, "warn", "neutral"),
                stat_if("Not reached", unreachable, "bad", "neutral"),
            ],
            legend: timeline
                .markers
                .iter()
                .map(|m| (m.label.clone(), m.note.clone()))
                .collect(),
            timeline,
            servers,
            groups,
            drift,
            drift_unknown,
            catalog: catalog.clone(),
        };
        pages.push(Page {
            file: file.clone(),
            html: page
                .render()
                .map_err(|e| format!("cannot render the report: {e}"))?,
        });
        // The earliest end of support: one already past says when it ended.
        let next_end = hosts.iter().filter_map(|h| end_of(h)).min();
        let (rank, risk, risk_tone) = if unsupported_n > 0 || critical > 0 || unreachable > 0 {
            (2, "high", "bad")
        } else if warning > 0 || next_end.is_some_and(|d| days_between(day, d) <= 180) {
            (1, "medium", "warn")
        } else {
            (0, "low", "good")
        };
        risks.push((
            (
                rank,
                unsupported_n,
                critical,
                unreachable,
                warning,
                std::cmp::Reverse(next_end.unwrap_or(Date::MAX)),
            ),
            TenantRisk {
                tenant: shown(tenant),
                file: file.clone(),
                servers: hosts.len(),
                unsupported: unsupported_n,
                unreachable,
                critical,
                warning,
                next_end: match next_end {
                    Some(d) if d < day => format!("ended {d}"),
                    Some(d) => format!("{d} ({})", days_words(days_between(day, d))),
                    None => "none announced".into(),
                },
                risk,
                tone: risk_tone,
            },
        ));
    }
    // Tenants by risk: high, medium, low; within each the most unsupported servers first,
    // then criticals, unreachable servers, warnings, the nearest end of support; then by name.
    risks.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.tenant.cmp(&b.1.tenant)));
    let all: Vec<&StoredHost> = audit.hosts.iter().collect();
    let unsupported_n = all.iter().filter(|h| unsupported(h)).count();
    let critical = all
        .iter()
        .flat_map(|h| &h.findings)
        .filter(|f| f.severity == "critical")
        .count();
    let unreachable = all.iter().filter(|h| !h.reachable).count();
    let fleet = FleetPage {
        as_of: day.to_string(),
        audited: minute(&audit.generated_at),
        snapshot: shown(&source.snapshot),
        generated_at: minute(&source.generated_at),
        stats: vec![
            stat("Tenants", tenants.len(), "neutral"),
            stat("Servers", all.len(), "neutral"),
            stat_if("Unsupported", unsupported_n, "bad", "good"),
            stat_if("Critical findings", critical, "bad", "good"),
            stat_if("Not reached", unreachable, "bad", "neutral"),
        ],
        versions: chart::bar_chart(version_counts(&all)),
        bar_left: chart::BAR_LEFT,
        tenants: risks.into_iter().map(|(_, r)| r).collect(),
        deadlines: deadlines(&all, source.catalog, day),
        catalog,
    };
    pages.push(Page {
        file: FLEET_FILE.into(),
        html: fleet
            .render()
            .map_err(|e| format!("cannot render the report: {e}"))?,
    });
    Ok(pages)
}

fn server_row(h: &StoredHost, day: Date) -> ServerRow {
    let status = status_word(h);
    let end = end_of(h);
    let (auth, auth_tone) = auth_state(h);
    ServerRow {
        host: shown(&h.host),
        role: or_dash(h.role.as_deref()),
        version: or_dash(h.version.product.as_deref()),
        tone: tone(&status),
        status,
        end: end.map(|d| d.to_string()).unwrap_or_else(|| "–".into()),
        left: end
            .map(|d| days_words(days_between(day, d)))
            .unwrap_or_default(),
        auth,
        auth_tone,
        os: or_dash(h.os.as_deref()),
        note: if h.reachable {
            h.support
                .as_ref()
                .map(|s| shown(&s.reason))
                .unwrap_or_default()
        } else {
            h.error.as_deref().map(shown).unwrap_or_default()
        },
    }
}

fn version_counts(hosts: &[&StoredHost]) -> Vec<(String, usize, &'static str)> {
    let mut counts: BTreeMap<(Option<EcVersion>, String), (usize, String)> = BTreeMap::new();
    for h in hosts {
        let (label, status) = match h.version.product.as_deref() {
            Some(v) if h.reachable => (v.to_string(), status_word(h)),
            _ => ("not reached".to_string(), "unreachable".to_string()),
        };
        let entry = counts
            .entry((label.parse().ok(), label))
            .or_insert((0, status));
        entry.0 += 1;
    }
    counts
        .into_iter()
        .rev()
        .map(|((_, label), (n, status))| (shown(&label), n, tone(&status)))
        .collect()
}

/// Every end of support and hard deadline between the audit's day and 180 days later that
/// concerns a server, earliest first.
fn deadlines(hosts: &[&StoredHost], catalog: &Catalog, day: Date) -> Vec<DeadlineRow> {
    let concerns = hosts.iter().map(|h| Concern {
        label: format!("{} ({})", shown(&h.host), shown(&h.tenant)),
        version: h.version.product.as_deref(),
        end_of_support: end_of(h),
    });
    within(concerns, catalog, day, 180)
}

/// The configuration drift between each host's two newest complete backups stored by `until`
/// (the audit's time); hosts with fewer than two are named apart ("not known").
fn drift_of(
    hosts: &[&StoredHost],
    share: &Path,
    until: Option<jiff::Timestamp>,
) -> (Vec<DriftRow>, Vec<String>) {
    let mut rows = Vec::new();
    let mut unknown = Vec::new();
    for h in hosts {
        if !(crate::inventory::valid_name(&h.tenant) && crate::inventory::valid_name(&h.host)) {
            unknown.push(shown(&h.host));
            continue;
        }
        // Only backups stored by the time of the audit: a later one does not change its page.
        let list: Vec<_> = HostBackups::new(share, &h.tenant, &h.host)
            .list()
            .into_iter()
            .filter(|b| {
                let stored = b.manifest.created_at.parse::<jiff::Timestamp>().ok();
                matches!((stored, until), (Some(s), Some(u)) if s <= u)
            })
            .collect();
        let n = list.len();
        let pair = (n >= 2).then(|| (&list[n - 2], &list[n - 1]));
        let read = pair.and_then(|(a, b)| {
            Some((
                a,
                b,
                crate::backup::read_configuration(a)?,
                crate::backup::read_configuration(b)?,
            ))
        });
        match read {
            Some((a, b, before, after)) => {
                let d = crate::backup::drift::diff(&a.manifest.name, &before, &after);
                rows.push(DriftRow {
                    host: shown(&h.host),
                    since: format!("{} → {}", shown(&a.manifest.name), shown(&b.manifest.name)),
                    lines: if d.is_empty() {
                        Vec::new()
                    } else {
                        d.lines().iter().map(|l| shown(l)).collect()
                    },
                });
            }
            None => unknown.push(shown(&h.host)),
        }
    }
    (rows, unknown)
}
