//! `ecfleet plan --from-audit FILE`: the facts of a saved audit (`audit.json` from the share or
//! `ecfleet audit --format json`), matched to the inventory's hosts by tenant and name.

use std::path::Path;

use ecfleet_proto::Facts;
use jiff::civil::Date;
use serde::Deserialize;

use crate::audit::AUDIT_SCHEMA_VERSION;
use crate::inventory::Host;

use super::PlanInput;

#[derive(Debug, Deserialize)]
pub struct SavedAudit {
    pub schema_version: u32,
    #[serde(default)]
    pub kind: Option<String>,
    pub as_of: Date,
    pub generated_at: String,
    pub hosts: Vec<SavedHost>,
}

#[derive(Debug, Deserialize)]
pub struct SavedHost {
    pub tenant: String,
    pub host: String,
    pub reachable: bool,
    pub error: Option<String>,
    pub facts: Option<Facts>,
}

pub fn load(path: &Path) -> Result<SavedAudit, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let audit: SavedAudit = serde_json::from_slice(&text).map_err(|e| {
        format!(
            "{} is not an ecfleet audit (JSON from `ecfleet audit --format json` or the share's audit.json): {e}",
            path.display()
        )
    })?;
    if audit.kind.is_some() {
        return Err(format!(
            "{} is a {}, not an audit; give the audit.json the plan should read",
            path.display(),
            audit.kind.as_deref().unwrap_or("document")
        ));
    }
    if audit.schema_version != AUDIT_SCHEMA_VERSION {
        return Err(format!(
            "{} has audit schema {}, this ecfleet reads {AUDIT_SCHEMA_VERSION}",
            path.display(),
            audit.schema_version
        ));
    }
    Ok(audit)
}

/// The inputs for the selected hosts. A host the audit does not cover, or could not read, is
/// planned as blocked with the reason.
pub fn inputs(audit: &SavedAudit, path: &Path, hosts: &[&Host]) -> Vec<PlanInput> {
    let by_name: std::collections::HashMap<(&str, &str), &SavedHost> = audit
        .hosts
        .iter()
        .map(|s| ((s.tenant.as_str(), s.host.as_str()), s))
        .collect();
    hosts
        .iter()
        .map(|h| {
            let saved = by_name.get(&(h.tenant.as_str(), h.name.as_str()));
            let facts = match saved {
                None => Err(format!(
                    "not in the audit {} (made {}); audit this host, then plan again",
                    path.display(),
                    audit.generated_at
                )),
                Some(s) => match (&s.facts, s.reachable) {
                    (Some(f), true) => Ok(f.clone()),
                    _ => Err(s
                        .error
                        .clone()
                        .unwrap_or_else(|| "the audit has no facts for this host".into())),
                },
            };
            PlanInput::for_host(h, facts)
        })
        .collect()
}
