//! The planning policy (`playbooks/plan.toml`): the OS floor, free-space minimum, swing-migration
//! age and the like. Embedded by default, replaceable with `--playbook FILE`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::platform::MinOs;

pub const EMBEDDED_PLAN_PLAYBOOK: &str = include_str!("../../playbooks/plan.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    schema_version: u32,
    min_os: toml::Value,
    min_free_gib: f64,
    swing_after_months: i64,
    retiring_days: i64,
    host_deadline_secs: u64,
}

/// The policy a plan is made under; it is recorded in the plan file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanPolicy {
    /// Build number of the lowest OS kept in place.
    pub min_os_build: u32,
    pub min_free_gib: f64,
    pub swing_after_months: i64,
    pub retiring_days: i64,
    #[serde(skip)]
    pub host_deadline_secs: u64,
}

impl PlanPolicy {
    pub fn embedded() -> Self {
        Self::parse(EMBEDDED_PLAN_PLAYBOOK, "embedded plan playbook")
            .expect("embedded plan playbook is valid")
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read playbook {}: {e}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, String> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| format!("playbook {origin}: {e}"))?;
        if raw.schema_version != 1 {
            return Err(format!(
                "playbook {origin}: schema_version {} is not supported (expected 1)",
                raw.schema_version
            ));
        }
        let min_os_text = match &raw.min_os {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            other => other.to_string(),
        };
        let min_os =
            MinOs::parse(&min_os_text).map_err(|e| format!("playbook {origin}: min_os: {e}"))?;
        if raw.min_free_gib < 0.0
            || raw.swing_after_months <= 0
            || raw.retiring_days < 0
            || raw.host_deadline_secs == 0
        {
            return Err(format!(
                "playbook {origin}: min_free_gib, swing_after_months, retiring_days and host_deadline_secs must be positive"
            ));
        }
        Ok(PlanPolicy {
            min_os_build: min_os.build,
            min_free_gib: raw.min_free_gib,
            swing_after_months: raw.swing_after_months,
            retiring_days: raw.retiring_days,
            host_deadline_secs: raw.host_deadline_secs,
        })
    }
}

impl PlanPolicy {
    /// The audit thresholds for gathering facts live under this policy.
    pub fn audit_playbook(&self) -> crate::audit::AuditPlaybook {
        let mut playbook = crate::audit::AuditPlaybook::embedded();
        playbook.retiring_days = self.retiring_days;
        playbook.min_free_gib = self.min_free_gib;
        playbook.host_deadline_secs = self.host_deadline_secs;
        playbook
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_policy_and_errors() {
        let p = PlanPolicy::embedded();
        assert_eq!(p.min_os_build, 14393);
        assert_eq!(p.swing_after_months, 12);
        let bad = EMBEDDED_PLAN_PLAYBOOK.replace("min_os = \"2016\"", "min_os = \"2020\"");
        assert!(PlanPolicy::parse(&bad, "x").unwrap_err().contains("min_os"));
        let typo = format!("{EMBEDDED_PLAN_PLAYBOOK}\nmin_free_gb = 3\n");
        assert!(
            PlanPolicy::parse(&typo, "x")
                .unwrap_err()
                .contains("min_free_gb")
        );
    }
}
