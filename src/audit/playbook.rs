//! The audit's thresholds (`playbooks/audit.toml`): embedded by default, replaceable with
//! `--playbook FILE`.

use std::path::Path;

use serde::Deserialize;

pub const EMBEDDED_AUDIT_PLAYBOOK: &str = include_str!("../../playbooks/audit.toml");

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditPlaybook {
    pub schema_version: u32,
    pub retiring_days: i64,
    pub min_free_gib: f64,
    pub max_sync_age_hours: f64,
    pub host_deadline_secs: u64,
}

impl AuditPlaybook {
    pub fn embedded() -> Self {
        Self::parse(EMBEDDED_AUDIT_PLAYBOOK, "embedded audit playbook")
            .expect("embedded playbook is valid")
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read playbook {}: {e}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, String> {
        let p: AuditPlaybook =
            toml::from_str(text).map_err(|e| format!("playbook {origin}: {e}"))?;
        if p.schema_version != 1 {
            return Err(format!(
                "playbook {origin}: schema_version {} is not supported (expected 1)",
                p.schema_version
            ));
        }
        if p.retiring_days < 0
            || p.min_free_gib < 0.0
            || p.max_sync_age_hours <= 0.0
            || p.host_deadline_secs == 0
        {
            return Err(format!("playbook {origin}: thresholds must be positive"));
        }
        Ok(p)
    }
}
