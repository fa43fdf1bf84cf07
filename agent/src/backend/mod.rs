//! Where facts come from: the real Windows host (`windows`) or a simulated one kept in a
//! directory (`lab`). Both produce the same [`ecfleet_proto::Facts`] document.

mod lab;
mod runner;
mod windows;

use std::path::PathBuf;

pub enum Backend {
    Windows,
    Lab(PathBuf),
}

impl Backend {
    /// The backend for the machine the agent runs on, when none is named.
    pub fn native() -> Self {
        Backend::Windows
    }
}

/// Whether `miiserver.exe.config`, last written at `config` (RFC 3339), was edited after the
/// install that wrote `miiserver.exe` at `engine`: later by more than [`EDIT_GRACE_MINUTES`].
/// The install writes both files within moments of each other.
pub fn edited_after_install(config: &str, engine: &str) -> bool {
    match (
        config.parse::<jiff::Timestamp>(),
        engine.parse::<jiff::Timestamp>(),
    ) {
        (Ok(c), Ok(e)) => c - e > jiff::SignedDuration::from_mins(EDIT_GRACE_MINUTES),
        _ => false,
    }
}

/// How much later than the engine the configuration file may be written and still count as
/// part of the install.
pub const EDIT_GRACE_MINUTES: i64 = 10;

/// Collects facts and renders them as JSON (or, for injected faults, whatever the fault says).
pub fn collect_facts(backend: &Backend) -> Result<String, String> {
    let facts = match backend {
        Backend::Windows => windows::collect()?,
        Backend::Lab(root) => match lab::collect(root)? {
            lab::LabOutput::Facts(f) => *f,
            lab::LabOutput::Raw(text) => return Ok(text),
        },
    };
    serde_json::to_string(&facts).map_err(|e| format!("cannot encode facts: {e}"))
}

#[cfg(test)]
mod tests {
    use super::edited_after_install;

    #[test]
    fn a_config_written_with_the_install_is_not_edited_and_a_later_one_is() {
        let engine = "2026-03-01T10:00:00Z";
        assert!(!edited_after_install("2026-03-01T10:00:00Z", engine));
        assert!(!edited_after_install("2026-03-01T10:09:00Z", engine));
        assert!(edited_after_install("2026-03-01T10:11:00Z", engine));
        assert!(edited_after_install("2026-07-14T08:30:00Z", engine));
        assert!(!edited_after_install("2026-02-01T10:00:00Z", engine));
        assert!(!edited_after_install("not a date", engine));
    }
}
