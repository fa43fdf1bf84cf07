//! What changed since the last audit on the share: versions, reachability, findings that
//! appeared or went away, hosts that came or went. A pure diff of two reports, so that a nightly
//! run can say "t03 went from 2.5.190.0 to 2.6.91.0, t10 has a new disk-low" without anyone
//! comparing tables by eye.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::AuditReport;

/// The parts of an earlier `audit.json` the diff needs (any schema-1 audit has them).
#[derive(Debug, Deserialize)]
pub struct PreviousAudit {
    pub generated_at: String,
    pub hosts: Vec<PreviousHost>,
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
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is not a readable audit: {e}", path.display()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change<T> {
    pub from: T,
    pub to: T,
}

/// One host's changes; only hosts with at least one change are listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostChanges {
    pub tenant: String,
    pub host: String,
    /// Not in the previous audit.
    pub new_host: bool,
    pub version: Option<Change<Option<String>>>,
    pub reachable: Option<Change<bool>>,
    pub new_findings: Vec<String>,
    pub resolved_findings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// Compares `current` with `previous`. `whole_inventory`: whether `current` covers every host.
pub fn diff(
    previous: &PreviousAudit,
    snapshot: &str,
    current: &AuditReport,
    whole_inventory: bool,
) -> Changes {
    let before_by_name: std::collections::HashMap<&str, &PreviousHost> = previous
        .hosts
        .iter()
        .map(|p| (p.host.as_str(), p))
        .collect();
    let mut hosts = Vec::new();
    for now in &current.hosts {
        let before = before_by_name.get(now.host.as_str()).copied();
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
            },
            Some(before) => {
                let codes_before: BTreeSet<&str> =
                    before.findings.iter().map(|f| f.code.as_str()).collect();
                // Findings are only comparable between two runs that both reached the host.
                let comparable = before.reachable && now.reachable;
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
                    new_findings: if comparable {
                        codes_now
                            .difference(&codes_before)
                            .map(|c| c.to_string())
                            .collect()
                    } else {
                        Vec::new()
                    },
                    resolved_findings: if comparable {
                        codes_before
                            .difference(&codes_now)
                            .map(|c| c.to_string())
                            .collect()
                    } else {
                        Vec::new()
                    },
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
    let removed_hosts = if whole_inventory {
        let current_names: std::collections::HashSet<&str> =
            current.hosts.iter().map(|h| h.host.as_str()).collect();
        previous
            .hosts
            .iter()
            .filter(|p| !current_names.contains(p.host.as_str()))
            .map(|p| p.host.clone())
            .collect()
    } else {
        Vec::new()
    };
    Changes {
        since: previous.generated_at.clone(),
        snapshot: snapshot.to_string(),
        hosts,
        removed_hosts,
    }
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
        }
    }

    fn report(hosts: Vec<HostAudit>) -> AuditReport {
        AuditReport {
            schema_version: 1,
            as_of: "2026-11-24".parse().unwrap(),
            generated_at: "2026-11-24T02:00:00Z".into(),
            inventory: String::new(),
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
        let c = diff(&previous, "x", &now, true);
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
        assert!(diff(&previous, "x", &now, false).removed_hosts.is_empty());
    }
}
