//! The controller–agent contract: the agent's steps as one type, to its command line and back,
//! and the document each step answers with ([`Document`]: its kind and schema version, checked
//! once by the controller's host session for every step).

use serde::de::DeserializeOwned;

/// One agent step, with its arguments. The backend's own arguments (`--backend lab
/// --lab-root DIR`) are not a step's: they follow it on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Everything the agent can learn about the host: answers [`crate::Facts`].
    Facts,
    /// The configuration backup (into `out_dir`, else a folder of its own): answers
    /// [`crate::backup::BackupResult`].
    Backup { out_dir: Option<String> },
    /// Where the installer stands at `path` (expected `sha256`, `size` bytes); `discard`
    /// removes a partial file: answers [`crate::stage::StageResult`].
    Stage {
        path: String,
        sha256: String,
        size: u64,
        discard: bool,
    },
    /// The upgrade handed to the operator: answers [`crate::upgrade::HandoffResult`].
    Handoff { installer: String, version: String },
    /// ADSync restarted once (refused while an upgrade runs): answers
    /// [`crate::upgrade::RestartResult`].
    RestartAdsync,
}

impl Step {
    /// The step's name on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Facts => "facts",
            Step::Backup { .. } => "backup",
            Step::Stage { .. } => "stage",
            Step::Handoff { .. } => "handoff",
            Step::RestartAdsync => "restart-adsync",
        }
    }

    /// The step as the agent's arguments.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![self.name().to_string()];
        match self {
            Step::Facts | Step::RestartAdsync => {}
            Step::Backup { out_dir } => {
                if let Some(dir) = out_dir {
                    args.extend(["--out-dir".into(), dir.clone()]);
                }
            }
            Step::Stage {
                path,
                sha256,
                size,
                discard,
            } => {
                args.extend([
                    "--path".into(),
                    path.clone(),
                    "--sha256".into(),
                    sha256.clone(),
                    "--size".into(),
                    size.to_string(),
                ]);
                if *discard {
                    args.push("--discard".into());
                }
            }
            Step::Handoff { installer, version } => {
                args.extend([
                    "--installer".into(),
                    installer.clone(),
                    "--version".into(),
                    version.clone(),
                ]);
            }
        }
        args
    }

    /// The step from the agent's arguments, and the arguments left (the backend's). An
    /// unknown step, a missing or repeated option, or a bad number is an error saying which.
    pub fn parse(args: &[String]) -> Result<(Step, Vec<String>), String> {
        let Some((name, rest)) = args.split_first() else {
            return Err("no step given".into());
        };
        let mut rest = rest.to_vec();
        let mut take = |option: &str| -> Result<Option<String>, String> {
            let Some(i) = rest.iter().position(|a| a == option) else {
                return Ok(None);
            };
            let value = rest
                .get(i + 1)
                .cloned()
                .ok_or_else(|| format!("{option} needs a value"))?;
            rest.drain(i..i + 2);
            if rest.iter().any(|a| a == option) {
                return Err(format!("{option} given twice"));
            }
            Ok(Some(value))
        };
        let need =
            |v: Option<String>, option: &str| v.ok_or_else(|| format!("{name} needs {option}"));
        let step = match name.as_str() {
            "facts" => Step::Facts,
            "restart-adsync" => Step::RestartAdsync,
            "backup" => Step::Backup {
                out_dir: take("--out-dir")?,
            },
            "stage" => {
                let path = need(take("--path")?, "--path")?;
                let sha256 = need(take("--sha256")?, "--sha256")?;
                let size = need(take("--size")?, "--size")?
                    .parse()
                    .map_err(|_| "--size takes a number of bytes".to_string())?;
                let discard = match rest.iter().position(|a| a == "--discard") {
                    Some(i) => {
                        rest.remove(i);
                        true
                    }
                    None => false,
                };
                Step::Stage {
                    path,
                    sha256,
                    size,
                    discard,
                }
            }
            "handoff" => Step::Handoff {
                installer: need(take("--installer")?, "--installer")?,
                version: need(take("--version")?, "--version")?,
            },
            other => return Err(format!("unknown step `{other}`")),
        };
        Ok((step, rest))
    }
}

/// A document an agent step answers with: it says its kind and schema version, and the
/// controller checks both once, in its host session, for every step.
pub trait Document: DeserializeOwned {
    const KIND: &'static str;
    const SCHEMA_VERSION: u32;
    fn kind(&self) -> &str;
    fn schema_version(&self) -> u32;
}

macro_rules! document {
    ($type:ty, $kind:expr, $version:expr) => {
        impl Document for $type {
            const KIND: &'static str = $kind;
            const SCHEMA_VERSION: u32 = $version;
            fn kind(&self) -> &str {
                &self.kind
            }
            fn schema_version(&self) -> u32 {
                self.schema_version
            }
        }
    };
}

document!(crate::Facts, crate::FACTS_KIND, crate::FACTS_SCHEMA_VERSION);
document!(
    crate::backup::BackupResult,
    crate::backup::BACKUP_KIND,
    crate::backup::BACKUP_SCHEMA_VERSION
);
document!(
    crate::stage::StageResult,
    crate::stage::STAGE_KIND,
    crate::stage::STAGE_SCHEMA_VERSION
);
document!(
    crate::upgrade::HandoffResult,
    crate::upgrade::HANDOFF_KIND,
    crate::upgrade::UPGRADE_SCHEMA_VERSION
);
document!(
    crate::upgrade::RestartResult,
    crate::upgrade::RESTART_KIND,
    crate::upgrade::UPGRADE_SCHEMA_VERSION
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_goes_to_its_arguments_and_back() {
        let steps = [
            Step::Facts,
            Step::RestartAdsync,
            Step::Backup { out_dir: None },
            Step::Backup {
                out_dir: Some(r"C:\ProgramData\ecfleet\backup".into()),
            },
            Step::Stage {
                path: "/srv/AzureADConnect.msi".into(),
                sha256: "ab".repeat(32),
                size: 157_286_400,
                discard: true,
            },
            Step::Handoff {
                installer: r"C:\staged\AzureADConnect.msi".into(),
                version: "2.6.92.0".into(),
            },
        ];
        for step in steps {
            let mut args = step.to_args();
            args.extend(["--backend".into(), "lab".into()]);
            let (back, rest) = Step::parse(&args).unwrap();
            assert_eq!(back, step);
            assert_eq!(rest, ["--backend", "lab"]);
        }
        let bad = |args: &[&str]| {
            Step::parse(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>()).unwrap_err()
        };
        assert_eq!(bad(&["reboot"]), "unknown step `reboot`");
        assert_eq!(
            bad(&["handoff", "--version", "2.6.92.0"]),
            "handoff needs --installer"
        );
        assert_eq!(
            bad(&["stage", "--path", "p", "--sha256", "x", "--size", "big"]),
            "--size takes a number of bytes"
        );
        assert_eq!(bad(&["backup", "--out-dir"]), "--out-dir needs a value");
    }
}
