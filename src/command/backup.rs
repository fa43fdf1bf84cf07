//! `ecfleet backup`: the fleet → engine → agent `backup` step → files fetched, verified and
//! stored on the share → drift and retention → report.

use std::time::Duration;

use super::fleet::{Fleet, Refusal};
use super::{Context, Io};
use crate::backup::{self, BackupSettings, Retention, Tag};
use crate::cli::{BackupActionArg, BackupArgs, PlanFormatArg, TagArg};
use crate::report::{BackupFormat, render_backup};

pub async fn run(args: &BackupArgs, cx: &Context, io: &mut Io<'_>) -> u8 {
    let done = match args.action {
        Some(BackupActionArg::Verify) => verify_backups(args, cx, io).await,
        None => backup_fleet(args, cx, io).await,
    };
    match done {
        Ok(code) => code,
        Err(refusal) => refusal.say(io),
    }
}

async fn backup_fleet(args: &BackupArgs, cx: &Context, io: &mut Io<'_>) -> Result<u8, Refusal> {
    let fleet = Fleet::open(&args.fleet, cx, io)?;
    let share = fleet.share("backups go to the central share")?;
    if args.keep == Some(0) || args.keep_days == Some(0) || args.host_deadline == 0 {
        return Err(Refusal::input(
            "--keep, --keep-days and --host-deadline take a number of at least 1",
        ));
    }
    let connector = fleet.connector(cx)?;
    let reporters = fleet.reporters(io)?;
    let settings = BackupSettings {
        tag: match args.tag.unwrap_or(TagArg::Nightly) {
            TagArg::Nightly => Tag::Nightly,
            TagArg::PreUpgrade => Tag::PreUpgrade,
        },
        share,
        retention: Retention {
            keep: args.keep.or(fleet.inventory.backup_retention.keep),
            keep_days: args
                .keep_days
                .or(fleet.inventory.backup_retention.keep_days),
        },
        concurrency: fleet.concurrency,
        host_deadline: Duration::from_secs(args.host_deadline),
        date: cx.today,
        run_id: None,
    };
    let report = backup::run(
        &fleet.inventory,
        &fleet.selected(),
        &settings,
        &connector,
        cx.shutdown.clone(),
        reporters.sink(),
    )
    .await;
    reporters.finish().await;
    let format = match args.format {
        PlanFormatArg::Table => BackupFormat::Table,
        PlanFormatArg::Json => BackupFormat::Json,
    };
    render_backup(&report, format, io.look(), io.out)
        .map_err(|e| Refusal::failure(format!("cannot write the report: {e}")))?;
    if let Some(path) = &args.metrics {
        // Each host's newest complete backup, as the share has it now.
        let newest: Vec<(String, String, Option<String>)> = report
            .hosts
            .iter()
            .map(|h| {
                let stored = crate::backup::HostBackups::new(&settings.share, &h.tenant, &h.host)
                    .newest()
                    .map(|b| b.manifest.created_at);
                (h.tenant.clone(), h.host.clone(), stored)
            })
            .collect();
        super::write_metrics(path, &crate::report::metrics::backup(&report, &newest))?;
    }
    Ok(super::unless_detached(&cx.shutdown, report.exit_code()))
}

/// `ecfleet backup verify`: every kept backup of the selected hosts (all hosts with backups on
/// the share when none is selected) read back and matched against its manifest.
async fn verify_backups(args: &BackupArgs, cx: &Context, io: &mut Io<'_>) -> Result<u8, Refusal> {
    if args.keep.is_some() || args.keep_days.is_some() || args.metrics.is_some() {
        return Err(Refusal::input(
            "backup verify takes no --keep, --keep-days or --metrics: it checks backups, it takes and removes none",
        ));
    }
    if args.tag.is_some() {
        return Err(Refusal::input(
            "backup verify takes no --tag: it checks every kept backup, nightly and pre-upgrade alike",
        ));
    }
    if args.host_deadline == 0 {
        return Err(Refusal::input(
            "--host-deadline takes a number of at least 1",
        ));
    }
    let fleet = Fleet::open(&args.fleet, cx, io)?;
    let share = fleet.share("backups are on the central share")?;
    let f = &args.fleet;
    let hosts: Vec<(String, String)> =
        if f.hosts.is_empty() && f.tenants.is_empty() && f.shard.is_none() {
            // Also hosts that left the inventory: their backups are still kept.
            backup::verify::hosts_on_share(&share)
        } else {
            fleet
                .selected()
                .iter()
                .map(|h| (h.tenant.clone(), h.name.clone()))
                .collect()
        };
    let report = backup::verify::verify(
        &share,
        hosts,
        fleet.concurrency,
        Duration::from_secs(args.host_deadline),
    )
    .await;
    let format = match args.format {
        PlanFormatArg::Table => BackupFormat::Table,
        PlanFormatArg::Json => BackupFormat::Json,
    };
    crate::report::render_backup_verify(&report, format, io.look().color, io.out)
        .map_err(|e| Refusal::failure(format!("cannot write the report: {e}")))?;
    Ok(report.exit_code())
}
