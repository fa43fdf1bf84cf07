//! `ecfleet merge run`: the runs of the shards of one plan (`run --plan P --shard i/n`, one
//! job each) put together into one run report, as one run of the whole plan would have ended.
//! Refused, naming each fault, unless every run is a finished shard of one split of that plan
//! (its SHA-256), from the same inventory file, shards 1..n each exactly once, no host in two,
//! and together every host of the plan (docs/scale-out.md).

use std::collections::BTreeMap;

use super::{HostRecord, REPORT_SCHEMA_VERSION, RunReport, RunSummary};
use crate::plan::Plan;
use crate::shard::Shard;

/// One shard's run: its id, `run.json` and report.
pub struct ShardRun {
    pub id: String,
    pub header: serde_json::Value,
    /// Its ledger has its summary: its controller finished it.
    pub ended: bool,
    pub report: RunReport,
}

/// What the merged run's ledger holds besides its report.
pub struct Merged {
    pub report: RunReport,
    /// The earliest shard's start (the report's start).
    pub started_at: String,
    /// The newest shard's start, as its `run.json` has it.
    pub newest_start: String,
}

/// Puts `runs` together for `plan` (whose SHA-256 is `plan_sha256`) and the inventory whose
/// file's SHA-256 is `inventory_sha256`, as run `id`.
pub fn merge(
    id: &str,
    plan: &Plan,
    plan_sha256: &str,
    inventory_sha256: Option<&str>,
    runs: Vec<ShardRun>,
) -> Result<Merged, Vec<String>> {
    let mut faults = Vec::new();
    if runs.is_empty() {
        return Err(vec!["no runs to merge".into()]);
    }
    let mut by_index: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    let mut counts: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for r in &runs {
        match serde_json::from_value::<Shard>(r.header["shard"].clone()) {
            Ok(s) => {
                by_index.entry(s.index).or_default().push(&r.id);
                counts.entry(s.count).or_default().push(&r.id);
            }
            Err(_) => faults.push(format!("run {} is not a shard's (no --shard)", r.id)),
        }
        match r.header["plan_sha256"].as_str() {
            None => faults.push(format!(
                "run {} ran without --plan: only runs of one plan file merge",
                r.id
            )),
            Some(sha) if sha != plan_sha256 => faults.push(format!(
                "run {} ran another plan (its plan file's SHA-256 differs): give the plan every shard ran",
                r.id
            )),
            Some(_) => {}
        }
        if r.header["inventory_sha256"].as_str() != inventory_sha256 {
            faults.push(format!(
                "run {} ran from another inventory (its SHA-256 differs)",
                r.id
            ));
        }
        if let Some(live) = &r.report.in_progress {
            faults.push(format!(
                "run {} has not ended ({live}): merge when every shard has",
                r.id
            ));
        } else if !r.ended {
            faults.push(format!(
                "run {} has no summary: its controller stopped; carry it on with `ecfleet run --resume {}` first",
                r.id, r.id
            ));
        }
    }
    if counts.len() > 1 {
        let split: Vec<String> = counts
            .iter()
            .map(|(n, ids)| format!("{n} shards: {}", ids.join(", ")))
            .collect();
        faults.push(format!(
            "the runs come from different splits ({})",
            split.join("; ")
        ));
    }
    if let Some((&n, _)) = counts.iter().next().filter(|_| counts.len() == 1) {
        for i in 1..=n {
            match by_index.get(&i).map(Vec::as_slice) {
                None | Some([]) => faults.push(format!(
                    "shard {i}/{n} is missing: run `ecfleet run --plan … --shard {i}/{n}` and give its run id"
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
    let mut seen: BTreeMap<(String, String), &str> = BTreeMap::new();
    for r in &runs {
        for h in &r.report.hosts {
            if let Some(other) = seen.insert((h.tenant.clone(), h.host.clone()), r.id.as_str()) {
                faults.push(format!("{} is in two runs: {other} and {}", h.host, r.id));
            }
        }
    }
    let missing: Vec<&str> = plan
        .hosts
        .iter()
        .filter(|p| !seen.contains_key(&(p.tenant.clone(), p.host.clone())))
        .map(|p| p.host.as_str())
        .collect();
    if !missing.is_empty() && faults.is_empty() {
        faults.push(format!(
            "{} of the plan's hosts are in no run (the shards do not cover it): {}",
            missing.len(),
            missing
                .iter()
                .take(10)
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !faults.is_empty() {
        return Err(faults);
    }
    let stamp = |s: &str| s.parse::<jiff::Timestamp>().ok();
    let started_at = runs
        .iter()
        .min_by_key(|r| stamp(&r.report.started_at))
        .map(|r| r.report.started_at.clone())
        .unwrap_or_default();
    let finished_at = runs
        .iter()
        .max_by_key(|r| stamp(&r.report.finished_at))
        .map(|r| r.report.finished_at.clone())
        .unwrap_or_default();
    let newest_start = runs
        .iter()
        .filter_map(|r| r.header["started_at"].as_str())
        .max_by_key(|s| s.parse::<jiff::Timestamp>().ok())
        .unwrap_or_default()
        .to_string();
    let target = runs[0].report.target.clone();
    let mut records: BTreeMap<(String, String), HostRecord> = BTreeMap::new();
    let mut ledger_errors = Vec::new();
    for r in runs {
        ledger_errors.extend(
            r.report
                .ledger_errors
                .into_iter()
                .map(|e| format!("run {}: {e}", r.id)),
        );
        for h in r.report.hosts {
            records.insert((h.tenant.clone(), h.host.clone()), h);
        }
    }
    // In the plan's order: by wave, then tenant, then host.
    let hosts: Vec<HostRecord> = plan
        .hosts
        .iter()
        .filter_map(|p| records.remove(&(p.tenant.clone(), p.host.clone())))
        .collect();
    Ok(Merged {
        report: RunReport {
            schema_version: REPORT_SCHEMA_VERSION,
            kind: "ecfleet-run-report".into(),
            run_id: id.to_string(),
            ledger: format!("runs/{id}"),
            target,
            started_at: started_at.clone(),
            finished_at,
            summary: RunSummary::of(&hosts),
            hosts,
            ledger_errors,
            in_progress: None,
        },
        started_at,
        newest_start,
    })
}
