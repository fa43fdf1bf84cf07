//! The in-place upgrade's playbook (`playbooks/in-place-upgrade.toml`): per-phase deadlines and
//! how the host is watched, as data. Embedded; `ecfleet run --playbook FILE` reads another.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub const EMBEDDED_RUN_PLAYBOOK: &str = include_str!("../../playbooks/in-place-upgrade.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deadlines {
    pub preflight: u64,
    pub backup: u64,
    pub stage: u64,
    pub upgrade: u64,
    pub verify: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    pub poll_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    pub restart_adsync_once: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunPlaybook {
    pub schema_version: u32,
    pub deadlines: Deadlines,
    pub watch: Watch,
    pub verify: Verify,
}

impl RunPlaybook {
    pub fn embedded() -> Self {
        Self::parse(EMBEDDED_RUN_PLAYBOOK, "embedded run playbook")
            .expect("the embedded run playbook is valid")
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read playbook {}: {e}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, String> {
        let p: RunPlaybook = toml::from_str(text).map_err(|e| format!("playbook {origin}: {e}"))?;
        if p.schema_version != 1 {
            return Err(format!(
                "playbook {origin}: schema_version {} is not supported (expected 1)",
                p.schema_version
            ));
        }
        let d = &p.deadlines;
        if [
            d.preflight,
            d.backup,
            d.stage,
            d.upgrade,
            d.verify,
            p.watch.poll_seconds,
        ]
        .contains(&0)
        {
            return Err(format!(
                "playbook {origin}: every deadline and watch.poll_seconds must be at least 1 second"
            ));
        }
        Ok(p)
    }

    /// Everything one host may take, all phases together.
    pub fn host_deadline(&self) -> Duration {
        let d = &self.deadlines;
        Duration::from_secs(d.preflight + d.backup + d.stage + d.upgrade + d.verify)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_playbook_and_its_errors() {
        let p = RunPlaybook::embedded();
        assert_eq!(p.deadlines.backup, 600);
        assert_eq!(
            p.host_deadline(),
            Duration::from_secs(120 + 600 + 1800 + 3600 + 1200)
        );
        let typo = EMBEDDED_RUN_PLAYBOOK.replace("upgrade = 3600", "upgrde = 3600");
        assert!(
            RunPlaybook::parse(&typo, "x")
                .unwrap_err()
                .contains("upgrde")
        );
        let zero = EMBEDDED_RUN_PLAYBOOK.replace("verify = 1200", "verify = 0");
        assert!(
            RunPlaybook::parse(&zero, "x")
                .unwrap_err()
                .contains("at least 1 second")
        );
    }
}
