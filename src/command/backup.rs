//! `ecfleet backup`: inventory → engine → agent `backup` step → files fetched, verified and
//! stored on the share → drift and retention → report.

use std::time::Duration;

use super::{Context, Io, discover_agents, load_inventory, select_hosts};
use crate::backup::{self, BackupSettings, Retention, Tag};
use crate::cli::{BackupArgs, PlanFormatArg, TagArg};
use crate::exit::audit as exit;
use crate::report::{BackupFormat, render_backup};
use crate::session::Connector;
use crate::{settings, transport};

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
    let (concurrency, warning) = match settings::concurrency(
        args.fleet.concurrency,
        cx.env.concurrency.as_deref(),
        inventory.concurrency,
        cx.open_files,
    ) {
        Ok(c) => c,
        Err(e) => return io.error(exit::INVALID_INPUT, e),
    };
    if let Some(w) = warning {
        let _ = writeln!(io.err, "warning: {w}");
    }
    if args.keep == Some(0) || args.keep_days == Some(0) || args.host_deadline == 0 {
        return io.error(
            exit::INVALID_INPUT,
            "--keep, --keep-days and --host-deadline take a number of at least 1",
        );
    }
    let selected = match select_hosts(&inventory, &args.fleet.hosts, &args.fleet.tenants) {
        Ok(s) => s,
        Err(e) => return io.error(exit::INVALID_INPUT, e),
    };
    let agents = match discover_agents(args.fleet.agent_dir.as_deref(), cx) {
        Ok(a) => a,
        Err(e) => return io.error(exit::FAILURE, e),
    };
    let reporters = match super::reporters(io, args.fleet.events.as_deref()) {
        Ok(r) => r,
        Err(e) => return io.error(exit::INVALID_INPUT, e),
    };
    let connector = Connector::new(
        transport::Connector::new(args.fleet.accept_new_host_keys),
        agents,
    );
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
        concurrency,
        host_deadline: Duration::from_secs(args.host_deadline),
        date: cx.today,
        run_id: None,
    };
    let report = backup::run(
        &inventory,
        &selected,
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
    if let Err(e) = render_backup(&report, format, io.color, io.out) {
        return io.error(exit::FAILURE, format!("cannot write the report: {e}"));
    }
    super::unless_detached(&cx.shutdown, report.exit_code())
}
