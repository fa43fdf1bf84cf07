//! What changed since the last audit on the share: versions, reachability, findings that
//! appeared or went away, hosts that came or went. Each host is compared with the newest
//! snapshot that covered it (an `audit --host X` in between covers only X), and hosts that left
//! the inventory are found against the newest full-inventory snapshot. A pure diff, so that a
//! nightly run can say "t03 went from 2.5.190.0 to 2.6.91.0, t10 has a new disk-low" without
//! anyone comparing tables by eye.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::AuditReport;

/// The parts of an earlier `audit.json` the diff needs (any schema-1 audit has them).
#[derive(Debug, Deserialize)]
pub struct PreviousAudit {
    pub generated_at: String,
    /// Whether that run covered the whole inventory (absent in audits written before this field
    /// existed: taken as true).
    #[serde(default = "covered_everything")]
    pub whole_inventory: bool,
    pub hosts: Vec<PreviousHost>,
}

fn covered_everything() -> bool {
    true
}

#[derive(Debug, Deserialize)]
pub struct PreviousHost {
    pub tenant: String,
    pub host: String,
    pub reachable: bool,
    #[serde(default)]
    pub version: PreviousVersion,
    #[serde(default)]
    pub findings: Vec<PreviousFinding>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PreviousVersion {
    pub product: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct PreviousFinding {
    pub code: String,
}

impl PreviousAudit {
    pub fn load(path: &Path) -> Result<Self, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&bytes, path)
    }

    /// An audit already read from `path`.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, String> {
        serde_json::from_slice(bytes)
            .map_err(|e| format!("{} is not a readable audit: {e}", path.display()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change<T> {
    pub from: T,
    pub to: T,
}

/// One host's changes; only hosts with at least one change are listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostChanges {
    pub tenant: String,
    pub host: String,
    /// Not in the previous audit.
    pub new_host: bool,
    pub version: Option<Change<Option<String>>>,
    pub reachable: Option<Change<bool>>,
    pub new_findings: Vec<String>,
    pub resolved_findings: Vec<String>,
    /// `generated_at` of the snapshot this host was compared with, when that is not the one in
    /// [`Changes::since`] (the newest full audit did not cover the host, a newer partial did).
    pub compared_with: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// `generated_at` of the audit compared with.
    pub since: String,
    /// Where that audit is.
    pub snapshot: String,
    pub hosts: Vec<HostChanges>,
    /// Hosts in the previous audit but not in this one (only reported when this run covered
    /// the whole inventory, not a `--host`/`--tenant` selection).
    pub removed_hosts: Vec<String>,
}

/// Compares `current` with earlier audits, newest first, each with where it is. Each host is
/// compared with the newest audit that has it; hosts that left are those of the newest
/// full-inventory audit that `current` lacks (only when `current` covers the whole inventory).
pub fn diff(previous: &[(PreviousAudit, String)], current: &AuditReport) -> Option<Changes> {
    let base = previous
        .iter()
        .find(|(p, _)| p.whole_inventory)
        .or_else(|| previous.first())?;
    let mut by_name: std::collections::HashMap<&str, (&PreviousHost, &str)> =
        std::collections::HashMap::new();
    // Oldest first, so that the newest audit covering a host wins.
    for (audit, _) in previous.iter().rev() {
        for h in &audit.hosts {
            by_name.insert(h.host.as_str(), (h, audit.generated_at.as_str()));
        }
    }
    let mut hosts = Vec::new();
    for now in &current.hosts {
        let before = by_name.get(now.host.as_str()).copied();
        let codes_now: BTreeSet<&str> = now.findings.iter().map(|f| f.code.as_str()).collect();
        let change = match before {
            None => HostChanges {
                tenant: now.tenant.clone(),
                host: now.host.clone(),
                new_host: true,
                version: None,
                reachable: None,
                new_findings: Vec::new(),
                resolved_findings: Vec::new(),
                compared_with: None,
            },
            Some((before, since)) => {
                let codes_before: BTreeSet<&str> =
                    before.findings.iter().map(|f| f.code.as_str()).collect();
                // Findings are only comparable between two runs that both reached the host.
                let comparable = before.reachable && now.reachable;
                let listed = |a: &BTreeSet<&str>, b: &BTreeSet<&str>| -> Vec<String> {
                    if comparable {
                        a.difference(b).map(|c| c.to_string()).collect()
                    } else {
                        Vec::new()
                    }
                };
                HostChanges {
                    tenant: now.tenant.clone(),
                    host: now.host.clone(),
                    new_host: false,
                    version: (comparable && before.version.product != now.version.product).then(
                        || Change {
                            from: before.version.product.clone(),
                            to: now.version.product.clone(),
                        },
                    ),
                    reachable: (before.reachable != now.reachable).then_some(Change {
                        from: before.reachable,
                        to: now.reachable,
                    }),
                    new_findings: listed(&codes_now, &codes_before),
                    resolved_findings: listed(&codes_before, &codes_now),
                    compared_with: (since != base.0.generated_at).then(|| since.to_string()),
                }
            }
        };
        if change.new_host
            || change.version.is_some()
            || change.reachable.is_some()
            || !change.new_findings.is_empty()
            || !change.resolved_findings.is_empty()
        {
            hosts.push(change);
        }
    }
    let removed_hosts = if current.whole_inventory {
        let current_names: std::collections::HashSet<&str> =
            current.hosts.iter().map(|h| h.host.as_str()).collect();
        base.0
            .hosts
            .iter()
            .filter(|p| !current_names.contains(p.host.as_str()))
            .map(|p| p.host.clone())
            .collect()
    } else {
        Vec::new()
    };
    Some(Changes {
        since: base.0.generated_at.clone(),
        snapshot: base.1.clone(),
        hosts,
        removed_hosts,
    })
}

/// How many earlier snapshots are read at most to find the newest one covering each host.
const MAX_SNAPSHOTS_READ: usize = 60;

/// The changes since the share's earlier audits (`None` when there is none).
/// Snapshots are read newest first, and only until every host is covered (and, for a run over
/// the whole inventory, a full-inventory audit is among them).
/// For each server `current` did not reach: when the newest audit on the share that reached it
/// ran (tenant, host, `generated_at`); servers no kept audit reached are left out.
pub fn last_reached(
    share: &crate::share::Share,
    current: &AuditReport,
) -> Vec<(String, String, String)> {
    let mut wanted: Vec<(&str, &str)> = current
        .hosts
        .iter()
        .filter(|h| !h.reachable)
        .map(|h| (h.tenant.as_str(), h.host.as_str()))
        .collect();
    let mut found = Vec::new();
    if wanted.is_empty() {
        return found;
    }
    for (path, bytes) in share.audits_newest_first().take(MAX_SNAPSHOTS_READ) {
        let Ok(audit) = PreviousAudit::parse(&bytes, &path) else {
            continue;
        };
        wanted.retain(|(tenant, host)| {
            let reached = audit
                .hosts
                .iter()
                .any(|h| h.reachable && h.tenant == *tenant && h.host == *host);
            if reached {
                found.push((
                    tenant.to_string(),
                    host.to_string(),
                    audit.generated_at.clone(),
                ));
            }
            !reached
        });
        if wanted.is_empty() {
            break;
        }
    }
    found
}

pub fn compare_with_share(
    share: &crate::share::Share,
    current: &AuditReport,
) -> Result<Option<Changes>, String> {
    let mut previous: Vec<(PreviousAudit, String)> = Vec::new();
    let mut uncovered: std::collections::HashSet<&str> =
        current.hosts.iter().map(|h| h.host.as_str()).collect();
    let mut have_full = false;
    for (path, bytes) in share.audits_newest_first().take(MAX_SNAPSHOTS_READ) {
        let audit = PreviousAudit::parse(&bytes, &path)?;
        have_full |= audit.whole_inventory;
        for h in &audit.hosts {
            uncovered.remove(h.host.as_str());
        }
        previous.push((audit, path.display().to_string()));
        if uncovered.is_empty() && (have_full || !current.whole_inventory) {
            break;
        }
    }
    Ok(diff(&previous, current))
}

impl HostChanges {
    /// One line for the table: `2.5.190.0 → 2.6.91.0; new: disk-low; resolved: retiring-build`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.new_host {
            parts.push("new in the inventory".to_string());
        }
        if let Some(r) = &self.reachable {
            parts.push(
                if r.to {
                    "reachable again"
                } else {
                    "now unreachable"
                }
                .to_string(),
            );
        }
        if let Some(v) = &self.version {
            let show = |s: &Option<String>| s.clone().unwrap_or_else(|| "?".into());
            parts.push(format!("{} → {}", show(&v.from), show(&v.to)));
        }
        if !self.new_findings.is_empty() {
            parts.push(format!("new: {}", self.new_findings.join(", ")));
        }
        if !self.resolved_findings.is_empty() {
            parts.push(format!("resolved: {}", self.resolved_findings.join(", ")));
        }
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditSummary, CatalogInfo, HostAudit, SupportVerdict, VersionReadings};
    use crate::inventory::Role;

    fn row(host: &str, reachable: bool) -> HostAudit {
        HostAudit {
            tenant: "t".into(),
            host: host.into(),
            role: Role::Active,
            address: String::new(),
            reachable,
            error: (!reachable).then(|| "cannot connect".into()),
            duration_ms: 0,
            version: VersionReadings {
                product: reachable.then(|| "2.6.91.0".into()),
                config: None,
            },
            support: SupportVerdict {
                status: None,
                end_of_support: None,
                reason: String::new(),
            },
            os: None,
            sync: String::new(),
            findings: Vec::new(),
            facts: None,
            error_kind: None,
        }
    }

    fn report(hosts: Vec<HostAudit>) -> AuditReport {
        AuditReport {
            schema_version: 1,
            as_of: "2026-11-24".parse().unwrap(),
            generated_at: "2026-11-24T02:00:00Z".into(),
            inventory: String::new(),
            whole_inventory: true,
            inventory_sha256: None,
            shard: None,
            merged_from: Vec::new(),
            catalog: CatalogInfo {
                source: String::new(),
                checked_on: "2026-11-24".parse().unwrap(),
            },
            summary: AuditSummary {
                hosts: hosts.len(),
                reachable: 0,
                unreachable: 0,
                critical: 0,
                warning: 0,
                info: 0,
            },
            hosts,
            changes: None,
        }
    }

    #[test]
    fn reachability_new_and_removed_hosts() {
        let previous: PreviousAudit = serde_json::from_value(serde_json::json!({
            "generated_at": "2026-11-23T02:00:00Z",
            "hosts": [
                { "tenant": "t", "host": "a", "reachable": true, "version": { "product": "2.6.91.0" },
                  "findings": [ { "code": "sync-stale" } ] },
                { "tenant": "t", "host": "b", "reachable": false },
                { "tenant": "t", "host": "gone", "reachable": true }
            ]
        }))
        .unwrap();
        let now = report(vec![row("a", false), row("b", true), row("new", true)]);
        let previous = vec![(previous, "x".to_string())];
        let c = diff(&previous, &now).unwrap();
        assert_eq!(c.removed_hosts, vec!["gone".to_string()]);
        let a = c.hosts.iter().find(|h| h.host == "a").unwrap();
        assert_eq!(
            a.summary(),
            "now unreachable",
            "findings are not compared with a failed run"
        );
        let b = c.hosts.iter().find(|h| h.host == "b").unwrap();
        assert_eq!(b.summary(), "reachable again");
        assert!(c.hosts.iter().any(|h| h.host == "new" && h.new_host));
        // A --host selection never reports the others as removed.
        let mut selection = now;
        selection.whole_inventory = false;
        assert!(
            diff(&previous, &selection)
                .unwrap()
                .removed_hosts
                .is_empty()
        );
    }

    #[test]
    fn a_partial_audit_in_between_does_not_hide_the_others_or_a_downgrade() {
        let audit =
            |json: serde_json::Value| serde_json::from_value::<PreviousAudit>(json).unwrap();
        // Monday: the whole fleet. Tuesday: `audit --host a` only.
        let monday = audit(serde_json::json!({
            "generated_at": "2026-11-23T02:00:00Z", "whole_inventory": true,
            "hosts": [
                { "tenant": "t", "host": "a", "reachable": true, "version": { "product": "2.6.91.0" } },
                { "tenant": "t", "host": "b", "reachable": true, "version": { "product": "2.6.91.0" } }
            ]
        }));
        let tuesday = audit(serde_json::json!({
            "generated_at": "2026-11-24T01:00:00Z", "whole_inventory": false,
            "hosts": [ { "tenant": "t", "host": "a", "reachable": true, "version": { "product": "2.6.91.0" } } ]
        }));
        let mut b = row("b", true);
        b.version.product = Some("2.5.190.0".into());
        let now = report(vec![row("a", true), b]);
        let previous = vec![(tuesday, "tue".to_string()), (monday, "mon".to_string())];
        let c = diff(&previous, &now).unwrap();
        assert_eq!(
            c.since, "2026-11-23T02:00:00Z",
            "based on the newest full audit"
        );
        assert!(c.removed_hosts.is_empty());
        assert_eq!(c.hosts.len(), 1, "{:#?}", c.hosts);
        let b = &c.hosts[0];
        assert!(!b.new_host, "b is not new");
        assert_eq!(b.summary(), "2.6.91.0 → 2.5.190.0", "the downgrade is seen");
    }
}
