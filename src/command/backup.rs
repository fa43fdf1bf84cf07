//! `ecfleet backup`: inventory → engine → agent `backup` step → files fetched, verified and
//! stored on the share → drift and retention → report.

use std::time::Duration;

use super::{Context, Io, load_inventory};
use crate::backup::{self, BackupSettings, Retention, Tag};
use crate::cli::{BackupArgs, PlanFormatArg, TagArg};
use crate::exit::audit as exit;
use crate::report::{BackupFormat, render_backup};

pub async fn run(args: &BackupArgs, cx: &Context, io: &mut Io<'_>) -> u8 {
    let inventory = match load_inventory(&args.fleet.inventory, cx) {
        Ok(i) => i,
        Err(errors) => {
            let _ = writeln!(io.err, "{errors}");
            return exit::INVALID_INPUT;
        }
    };
    let Some(share) = inventory.share.clone() else {
        return io.error(
            exit::INVALID_INPUT,
            format!(
                "{}: backups go to the central share, and the inventory names none: add [share] path = \"/mnt/ecfleet-share\"",
                inventory.path.display()
            ),
        );
    };
    if args.keep == Some(0) || args.keep_days == Some(0) || args.host_deadline == 0 {
        return io.error(
            exit::INVALID_INPUT,
            "--keep, --keep-days and --host-deadline take a number of at least 1",
        );
    }
    let fleet = match super::fleet(&args.fleet, &inventory, cx, io) {
        Ok(f) => f,
        Err((code, e)) => return io.error(code, e),
    };
    let settings = BackupSettings {
        tag: match args.tag {
            TagArg::Nightly => Tag::Nightly,
            TagArg::PreUpgrade => Tag::PreUpgrade,
        },
        share,
        retention: Retention {
            keep: args.keep.or(inventory.backup_retention.keep),
            keep_days: args.keep_days.or(inventory.backup_retention.keep_days),
        },
        concurrency: fleet.concurrency,
        host_deadline: Duration::from_secs(args.host_deadline),
        date: cx.today,
        run_id: None,
    };
    let report = backup::run(
        &inventory,
        &fleet.selected,
        &settings,
        &fleet.connector,
        cx.shutdown.clone(),
        fleet.reporters.sink(),
    )
    .await;
    fleet.reporters.finish().await;
    let format = match args.format {
        PlanFormatArg::Table => BackupFormat::Table,
        PlanFormatArg::Json => BackupFormat::Json,
    };
    if let Err(e) = render_backup(&report, format, io.look(), io.out) {
        return io.error(exit::FAILURE, format!("cannot write the report: {e}"));
    }
    super::unless_detached(&cx.shutdown, report.exit_code())
}
