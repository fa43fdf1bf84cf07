//! `ecfleet merge audit`: the audits of the shards of one fleet (`audit --shard i/n`, run by n
//! jobs) put together into one audit, as one unsharded audit would have written it. Refused,
//! naming each fault, unless the shards are 1..n of one split, each exactly once, audited from
//! the same inventory file on the same day within a day of each other, with no host in two of
//! them, and together every host of the inventory (docs/scale-out.md).

use std::collections::BTreeMap;

use super::{AuditReport, AuditSummary};
use crate::inventory::Inventory;

/// The shards' audits may have run this far apart (the jobs of one night).
pub const WINDOW_HOURS: i64 = 24;

/// One shard's audit and where it was read from (for messages).
pub struct ShardAudit {
    pub name: String,
    pub report: AuditReport,
}

/// Puts `shards` together for `inventory`: the hosts in the inventory's order, the summary
/// counted again, the newest shard's time; or every reason it cannot be done.
pub fn merge(inventory: &Inventory, shards: Vec<ShardAudit>) -> Result<AuditReport, Vec<String>> {
    let mut faults = Vec::new();
    if shards.is_empty() {
        return Err(vec!["no audits to merge".into()]);
    }
    let mut unsharded = Vec::new();
    let mut by_index: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    let mut counts: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for s in &shards {
        match s.report.shard {
            Some(shard) => {
                by_index.entry(shard.index).or_default().push(&s.name);
                counts.entry(shard.count).or_default().push(&s.name);
            }
            None => unsharded.push(s.name.as_str()),
        }
    }
    if !unsharded.is_empty() {
        faults.push(format!(
            "not the audit of a shard (no --shard): {}",
            unsharded.join(", ")
        ));
    }
    if counts.len() > 1 {
        let split: Vec<String> = counts
            .iter()
            .map(|(n, names)| format!("{n} shards: {}", names.join(", ")))
            .collect();
        faults.push(format!(
            "the audits come from different splits ({})",
            split.join("; ")
        ));
    }
    if let Some((&n, _)) = counts.iter().next().filter(|_| counts.len() == 1) {
        for i in 1..=n {
            match by_index.get(&i).map(Vec::as_slice) {
                None | Some([]) => faults.push(format!(
                    "shard {i}/{n} is missing: run `ecfleet audit --shard {i}/{n}` and give its snapshot"
                )),
                Some([_]) => {}
                Some(twice) => faults.push(format!(
                    "shard {i}/{n} is given {} times: {}",
                    twice.len(),
                    twice.join(", ")
                )),
            }
        }
    }
    // One inventory file, as `-i` reads it now.
    let current = std::fs::read(&inventory.path)
        .ok()
        .map(|b| crate::digest::sha256_hex(&b));
    for s in &shards {
        if s.report.inventory_sha256 != current {
            faults.push(format!(
                "{} was audited from another inventory than {} (its SHA-256 differs): audit every shard from the same file",
                s.name,
                inventory.path.display()
            ));
        }
    }
    // The same day, within a night, judged with the same catalog.
    let first = &shards[0].report;
    for s in &shards[1..] {
        let (a, b) = (&s.report.catalog, &first.catalog);
        if a.source != b.source || a.checked_on != b.checked_on {
            faults.push(format!(
                "{} was judged with the catalog {} (checked {}), {} with {} (checked {}): give every shard the same --catalog",
                s.name, a.source, a.checked_on, shards[0].name, b.source, b.checked_on
            ));
        }
    }
    for s in &shards[1..] {
        if s.report.as_of != first.as_of {
            faults.push(format!(
                "{} judged support on {}, {} on {}: give every shard the same --as-of",
                s.name, s.report.as_of, shards[0].name, first.as_of
            ));
        }
    }
    let times: Vec<jiff::Timestamp> = shards
        .iter()
        .filter_map(|s| s.report.generated_at.parse().ok())
        .collect();
    if let (Some(earliest), Some(latest)) = (times.iter().min(), times.iter().max())
        && latest.as_second() - earliest.as_second() > WINDOW_HOURS * 3600
    {
        faults.push(format!(
            "the audits ran more than {WINDOW_HOURS} hours apart ({earliest} to {latest}): merge the shards of one night"
        ));
    }
    // Each host once, and every host of the inventory.
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for s in &shards {
        for h in &s.report.hosts {
            if let Some(other) = seen.insert(h.host.as_str(), s.name.as_str()) {
                faults.push(format!(
                    "{} is in two audits: {other} and {}",
                    h.host, s.name
                ));
            }
        }
    }
    // Hosts in no audit, named with the shard that should have had them (one audited with
    // --host or --tenant as well, or from an older inventory).
    if faults.is_empty()
        && let Some((&n, _)) = counts.iter().next()
    {
        let mut missing: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
        for h in inventory
            .hosts()
            .filter(|h| !seen.contains_key(h.name.as_str()))
        {
            missing
                .entry(crate::shard::Shard::of_tenant(&h.tenant, n))
                .or_default()
                .push(&h.name);
        }
        for (i, hosts) in missing {
            let name = by_index
                .get(&i)
                .and_then(|names| names.first())
                .copied()
                .unwrap_or("?");
            faults.push(format!(
                "shard {i}/{n} ({name}) lacks {} of its hosts (was it audited with --host or --tenant too?): {}",
                hosts.len(),
                hosts.iter().take(10).copied().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    if !faults.is_empty() {
        return Err(faults);
    }
    let mut by_name: BTreeMap<String, super::HostAudit> = BTreeMap::new();
    let mut names = Vec::new();
    let newest = shards
        .iter()
        .max_by_key(|s| s.report.generated_at.parse::<jiff::Timestamp>().ok())
        .map(|s| s.report.clone());
    for s in shards {
        names.push(s.name);
        for h in s.report.hosts {
            by_name.insert(h.host.clone(), h);
        }
    }
    let hosts: Vec<super::HostAudit> = inventory
        .hosts()
        .filter_map(|h| by_name.remove(&h.name))
        .collect();
    let Some(mut merged) = newest else {
        return Err(vec!["no audits to merge".into()]);
    };
    merged.summary = AuditSummary::of(&hosts);
    merged.hosts = hosts;
    merged.whole_inventory = true;
    merged.shard = None;
    merged.changes = None;
    merged.merged_from = names;
    Ok(merged)
}
