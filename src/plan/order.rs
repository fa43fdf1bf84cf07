//! The order of a plan: tenants are grouped by their next maintenance window (the earliest
//! first; tenants with no window last), and within each group staging servers get a wave before
//! active ones, so a tenant's staging server is always upgraded and checked before its active
//! one. Waves are numbered from 1 with no gaps.

use jiff::Timestamp;

use crate::inventory::Role;

/// One host as ordering sees it.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    /// Index of the host's tenant in `tenant_starts`.
    pub tenant: usize,
    pub role: Role,
}

/// The wave of every host (same order as `hosts`). `tenant_starts[t]` is the start of tenant
/// `t`'s next window, `None` when it has none.
pub fn waves(hosts: &[Slot], tenant_starts: &[Option<Timestamp>]) -> Vec<u32> {
    let mut groups: Vec<Option<Timestamp>> = tenant_starts.to_vec();
    // Earliest window first; no window sorts last.
    groups.sort_by_key(|s| (s.is_none(), *s));
    groups.dedup();
    let mut wave_of = vec![0u32; hosts.len()];
    let mut wave = 0u32;
    for group in groups {
        for role in [Role::Staging, Role::Active] {
            let members: Vec<usize> = hosts
                .iter()
                .enumerate()
                .filter(|(_, h)| h.role == role && tenant_starts[h.tenant] == group)
                .map(|(i, _)| i)
                .collect();
            if members.is_empty() {
                continue;
            }
            wave += 1;
            for i in members {
                wave_of[i] = wave;
            }
        }
    }
    wave_of
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Option<Timestamp> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn staging_first_earliest_window_first_no_window_last_no_gaps() {
        let starts = [
            at("2026-11-28T22:00:00Z"), // tenant 0: Saturday
            at("2026-11-27T23:00:00Z"), // tenant 1: Friday, earlier
            None,                       // tenant 2: no window
            at("2026-11-28T22:00:00Z"), // tenant 3: same slot as tenant 0
        ];
        let hosts = [
            Slot {
                tenant: 0,
                role: Role::Active,
            },
            Slot {
                tenant: 0,
                role: Role::Staging,
            },
            Slot {
                tenant: 1,
                role: Role::Active,
            },
            Slot {
                tenant: 2,
                role: Role::Active,
            },
            Slot {
                tenant: 3,
                role: Role::Active,
            },
        ];
        // Friday: tenant 1 active (wave 1). Saturday: tenant 0 staging (2), then tenant 0 and 3
        // active (3). No window: tenant 2 (4).
        assert_eq!(waves(&hosts, &starts), vec![3, 2, 1, 4, 3]);
    }
}
