//! `--shard i/n`: the fleet split between several controllers (a Kubernetes Indexed Job, a CI
//! matrix, a Slurm job array; docs/scale-out.md) by tenant, so that a tenant's waves, canary,
//! failure budget and backups stay in one shard. A tenant's shard is the first 8 bytes of the
//! SHA-256 of its name, read as a big-endian number, mod n, plus one: the same on every machine
//! and in every version of ecfleet (never Rust's `DefaultHasher`, which is neither).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One shard of `count`, 1-based. Read from a file, it is checked as `--shard` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "RawShard")]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// A shard as a file writes it, before it is checked.
#[derive(Deserialize)]
struct RawShard {
    index: u32,
    count: u32,
}

impl TryFrom<RawShard> for Shard {
    type Error = String;

    fn try_from(raw: RawShard) -> Result<Shard, String> {
        format!("{}/{}", raw.index, raw.count).parse()
    }
}

/// The most shards a fleet is split into.
pub const MAX_SHARDS: u32 = 1024;

impl Shard {
    /// The shard (1-based) that `tenant` falls in when the fleet is split `count` ways.
    pub fn of_tenant(tenant: &str, count: u32) -> u32 {
        let digest = Sha256::digest(tenant.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(first) % u64::from(count.max(1))) as u32 + 1
    }

    /// Whether `tenant`'s servers are this shard's.
    pub fn holds(&self, tenant: &str) -> bool {
        Shard::of_tenant(tenant, self.count) == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let bad = || {
            format!(
                "--shard {text}: give i/n, the shard (from 1) and how many there are, e.g. --shard 2/4 (a Kubernetes Indexed Job's 0-based JOB_COMPLETION_INDEX is i-1)"
            )
        };
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || count > MAX_SHARDS {
            return Err(format!(
                "--shard {text}: between 1 and {MAX_SHARDS} shards, not {count}"
            ));
        }
        if index == 0 || index > count {
            return Err(format!(
                "--shard {text}: the shard is 1 to {count} (shards count from 1; a 0-based index is i-1)"
            ));
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_s_shard_is_sha256_s_first_eight_bytes_mod_n_from_one() {
        // `printf contoso | sha256sum` begins 11f0b04eda61baeb = 1292726945773107947, whose
        // remainders by 1, 2, 3, 4, 7 and 1024, plus one, are these (worked out by Python).
        for (count, shard) in [(1, 1), (2, 2), (3, 3), (4, 4), (7, 5), (1024, 748)] {
            assert_eq!(Shard::of_tenant("contoso", count), shard, "of {count}");
        }
        assert_eq!(Shard::of_tenant("anything", 1), 1);
        // Every tenant in exactly one of n shards.
        let tenants: Vec<String> = (0..200).map(|i| format!("tenant{i:03}")).collect();
        let shards: Vec<Shard> = (1..=4).map(|index| Shard { index, count: 4 }).collect();
        for t in &tenants {
            assert_eq!(shards.iter().filter(|s| s.holds(t)).count(), 1, "{t}");
        }
        // Not all in one: the split spreads.
        assert!(
            shards
                .iter()
                .all(|s| tenants.iter().filter(|t| s.holds(t)).count() > 20)
        );
    }

    #[test]
    fn shard_flags_read_as_one_based_i_of_n() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        assert_eq!("1/1".parse::<Shard>().unwrap().to_string(), "1/1");
        for bad in ["0/4", "5/4", "1/0", "x/4", "2", "2/4/1", "-1/4", "1/2000"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert!("0/4".parse::<Shard>().unwrap_err().contains("count from 1"));
        // From a file: checked the same way (a huge count cannot make merge count to it).
        let read = |json: &str| serde_json::from_str::<Shard>(json);
        assert_eq!(
            read(r#"{"index":2,"count":4}"#).unwrap(),
            Shard { index: 2, count: 4 }
        );
        assert!(read(r#"{"index":1,"count":4294967295}"#).is_err());
        assert!(read(r#"{"index":5,"count":4}"#).is_err());
    }
}
