//! `EcVersion`: a four-part Entra Connect build number (`2.6.91.0`), parsed once and compared
//! numerically, so `2.5.190.0` sorts above `2.5.79.0`.

use std::fmt;
use std::str::FromStr;

/// A build number such as `2.6.91.0`. Missing trailing parts count as zero (`2.6` = `2.6.0.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EcVersion(pub [u32; 4]);

impl EcVersion {
    /// The major version: 1 for the retired V1 line, 2 for V2.
    pub fn major(&self) -> u32 {
        self.0[0]
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a build number like 2.6.91.0")]
pub struct VersionParseError(pub String);

impl FromStr for EcVersion {
    type Err = VersionParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        let mut parts = [0u32; 4];
        let mut count = 0;
        for piece in trimmed.split('.') {
            if count == 4 || piece.is_empty() || !piece.bytes().all(|b| b.is_ascii_digit()) {
                return Err(VersionParseError(s.to_string()));
            }
            parts[count] = piece
                .parse()
                .map_err(|_| VersionParseError(s.to_string()))?;
            count += 1;
        }
        if count < 2 {
            return Err(VersionParseError(s.to_string()));
        }
        Ok(EcVersion(parts))
    }
}

impl fmt::Display for EcVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

impl serde::Serialize for EcVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for EcVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> EcVersion {
        s.parse().unwrap()
    }

    #[test]
    fn compares_numerically_not_as_text() {
        assert!(v("2.5.190.0") > v("2.5.79.0"));
        assert!(v("2.6.3.0") > v("2.5.190.0"));
        assert!(v("1.6.16.0") < v("2.0.3.0"));
        assert_eq!(v("2.6"), v("2.6.0.0"));
    }

    #[test]
    fn rejects_what_is_not_a_build_number() {
        for bad in [
            "",
            "2",
            "2.x.1.0",
            "2..1",
            "1.2.3.4.5",
            "-1.0",
            "2.6.91.0 beta",
        ] {
            assert!(bad.parse::<EcVersion>().is_err(), "{bad:?} parsed");
        }
        assert_eq!(v(" 2.6.91.0\r\n").to_string(), "2.6.91.0");
    }
}
