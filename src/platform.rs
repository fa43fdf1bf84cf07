//! Windows Server releases as Entra Connect cares about them: build numbers and names
//! (docs/design/DOMAIN.md §3.1), the V2 floor, and the `min_os` policy value (a name like `"2019"` or a build
//! number like `17763`).

use std::fmt;

/// Windows Server releases by build number, oldest first.
pub const SERVER_RELEASES: &[(&str, u32)] = &[
    ("2012", 9200),
    ("2012 R2", 9600),
    ("2016", 14393),
    ("2019", 17763),
    ("2022", 20348),
    ("2025", 26100),
];

/// Entra Connect V2 needs Server 2016 or newer.
pub const MIN_OS_BUILD_V2: u32 = 14393;

/// .NET Framework 4.7.2 (`Release` value); the gate for current builds (docs/design/DOMAIN.md §3.2).
pub const MIN_DOTNET_RELEASE: u32 = 461808;

/// The Server release name for a build, e.g. `"2019"`, or `None` for a build not in the table.
pub fn server_name(build: u32) -> Option<&'static str> {
    SERVER_RELEASES
        .iter()
        .find(|(_, b)| *b == build)
        .map(|(n, _)| *n)
}

/// A minimum OS (policy): hosts below it are replaced (swing migration), not upgraded in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MinOs {
    pub build: u32,
}

impl fmt::Display for MinOs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match server_name(self.build) {
            Some(name) => write!(f, "Windows Server {name} (build {})", self.build),
            None => write!(f, "OS build {}", self.build),
        }
    }
}

impl MinOs {
    /// `"2019"`, `"Server 2019"`, `"2012R2"`, `"17763"` or `"10.0.17763"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let t = t
            .strip_prefix("Windows ")
            .unwrap_or(t)
            .trim_start_matches("Server ")
            .trim();
        let squashed: String = t
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        if let Some((_, build)) = SERVER_RELEASES
            .iter()
            .find(|(n, _)| n.replace(' ', "").to_ascii_lowercase() == squashed)
        {
            return Ok(MinOs { build: *build });
        }
        let digits = squashed.strip_prefix("10.0.").unwrap_or(&squashed);
        match digits.parse::<u32>() {
            Ok(build) if build >= 6000 => Ok(MinOs { build }),
            _ => Err(format!(
                "`{text}` is not a Windows Server release: use 2016, 2019, 2022 or 2025, or a build number such as 17763"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_builds() {
        for (text, build) in [
            ("2019", 17763),
            ("Server 2022", 20348),
            ("Windows Server 2016", 14393),
            ("2012R2", 9600),
            ("2012 r2", 9600),
            ("17763", 17763),
            ("10.0.26100", 26100),
        ] {
            assert_eq!(MinOs::parse(text), Ok(MinOs { build }), "{text}");
        }
        assert!(
            MinOs::parse("2020")
                .unwrap_err()
                .contains("not a Windows Server release")
        );
        assert!(MinOs::parse("vista").is_err());
        assert_eq!(
            MinOs { build: 20348 }.to_string(),
            "Windows Server 2022 (build 20348)"
        );
    }
}
