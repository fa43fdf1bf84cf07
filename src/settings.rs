//! Settings resolved once, at the start of a command, with an explicit precedence: the command
//! line, then the environment, then the inventory, then the playbook, then the built-in default.
//! The binary reads argv and the environment and passes the raw values here; the library never
//! reads either itself.

use jiff::civil::Date;

/// Environment variables ecfleet reads (documented in docs/inventory.md), as the edge found them.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `$HOME`, for `~/.ssh/known_hosts`.
    pub home: Option<std::path::PathBuf>,
    /// `ECFLEET_CONCURRENCY`.
    pub concurrency: Option<String>,
    /// Who runs ecfleet (`$USER`, `%USERNAME%` on Windows), for the run's ledger.
    pub user: Option<String>,
    /// This controller's host name (`/etc/hostname` or `$HOSTNAME`, `%COMPUTERNAME%` on
    /// Windows), for the run's ledger.
    pub host_name: Option<String>,
}

impl Environment {
    pub fn user_known_hosts(&self) -> Option<std::path::PathBuf> {
        self.home
            .as_ref()
            .map(|h| h.join(".ssh").join("known_hosts"))
    }
}

/// The range every concurrency setting must be in (the inventory checks the same).
pub const CONCURRENCY_RANGE: std::ops::RangeInclusive<usize> = 1..=4096;

/// Hosts worked on at once: `--concurrency`, else `ECFLEET_CONCURRENCY`, else the inventory's
/// (which defaults to 64); then lowered to what the open-files limit allows, with a warning.
pub fn concurrency(
    cli: Option<usize>,
    env: Option<&str>,
    inventory: usize,
    open_files: Option<u64>,
) -> Result<(usize, Option<String>), String> {
    let wanted = match (cli, env) {
        (Some(n), _) if CONCURRENCY_RANGE.contains(&n) => n,
        (Some(n), _) => {
            return Err(format!(
                "--concurrency {n} is out of range: use a number from 1 to 4096"
            ));
        }
        (None, Some(text)) => match text.trim().parse::<usize>() {
            Ok(n) if CONCURRENCY_RANGE.contains(&n) => n,
            _ => {
                return Err(format!(
                    "ECFLEET_CONCURRENCY={text:?} is not a number from 1 to 4096"
                ));
            }
        },
        (None, None) => inventory,
    };
    if let Some(files) = open_files {
        let most = crate::limits::concurrency_for(files);
        if wanted > most {
            return Ok((
                most,
                Some(format!(
                    "concurrency lowered from {wanted} to {most}: this process may open {files} files (raise it with ulimit -n)"
                )),
            ));
        }
    }
    Ok((wanted, None))
}

/// `--as-of`, else today (UTC).
pub fn as_of(text: Option<&str>, today: Date) -> Result<Date, String> {
    match text {
        Some(t) => t
            .parse::<Date>()
            .map_err(|_| format!("--as-of `{t}` is not a date like 2026-11-24")),
        None => Ok(today),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_beats_the_environment_beats_the_inventory() {
        assert_eq!(concurrency(Some(8), Some("16"), 64, None).unwrap().0, 8);
        assert_eq!(concurrency(None, Some("16"), 64, None).unwrap().0, 16);
        assert_eq!(concurrency(None, None, 64, None).unwrap().0, 64);
    }

    #[test]
    fn out_of_range_values_are_refused_wherever_they_come_from() {
        for bad in [0, 99_999_999] {
            let e = concurrency(Some(bad), None, 64, None).unwrap_err();
            assert!(
                e.contains("--concurrency") && e.contains("1 to 4096"),
                "{e}"
            );
        }
        assert!(concurrency(None, Some("lots"), 64, None).is_err());
        assert!(concurrency(None, Some("0"), 64, None).is_err());
    }

    #[test]
    fn concurrency_is_lowered_to_what_the_open_files_limit_allows() {
        let (n, warning) = concurrency(Some(4000), None, 64, Some(1024)).unwrap();
        assert_eq!(n, 480);
        assert!(warning.unwrap().contains("ulimit -n"));
        assert_eq!(
            concurrency(Some(32), None, 64, Some(1024)).unwrap(),
            (32, None)
        );
    }

    #[test]
    fn as_of_defaults_to_today() {
        let today: Date = "2026-12-02".parse().unwrap();
        assert_eq!(as_of(None, today).unwrap(), today);
        assert!(as_of(Some("someday"), today).is_err());
    }
}
