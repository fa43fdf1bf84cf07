//! `ecfleet report`: a run from its ledger on the share (a table or JSON; with `--notify`, its
//! undelivered messages sent again), or the customer reports of a run or an audit snapshot as
//! HTML files (`--format html --out DIR`, docs/report.md). Reads the share only; never
//! contacts a host.

use std::collections::BTreeMap;
use std::path::Path;

use super::fleet::Refusal;
use super::run::controller;
use super::{Context, Io};
use crate::cli::{ReportArgs, ReportFormatArg};
use crate::report::render_run;
use crate::run::{self, ledger};

/// `ecfleet report RUN-ID|latest`: a run from its ledger; with `--notify`, its undelivered
/// messages sent again.
pub async fn report(args: &ReportArgs, cx: &Context, io: &mut Io<'_>) -> u8 {
    match report_run(args, cx, io).await {
        Ok(code) => code,
        Err(refusal) => refusal.say(io),
    }
}

async fn report_run(args: &ReportArgs, cx: &Context, io: &mut Io<'_>) -> Result<u8, Refusal> {
    let inventory = super::fleet::inventory(&args.inventory, cx)?;
    if args.run == "audit" {
        return report_audit(args, &inventory, io);
    }
    if let Some(extra) = &args.snapshot {
        return Err(Refusal::input(format!(
            "report {}: a run takes no second argument ({}); a snapshot goes after `audit`: ecfleet report audit {} -i …",
            args.run,
            crate::report::sanitize::terminal_safe(extra),
            crate::report::sanitize::terminal_safe(extra)
        )));
    }
    let out_dir = html_out(args)?;
    let share = super::fleet::share(&inventory, "runs are kept on the central share")?;
    let ledger_dir = ledger::find(&share, &args.run).map_err(Refusal::input)?;
    let report =
        run::report_from_ledger(&ledger_dir, controller(&cx.env).name()).map_err(Refusal::input)?;
    match out_dir {
        Some(dir) => {
            let plan: Option<crate::plan::Plan> = read_json(&ledger_dir.join("plan.json"));
            let header: Option<serde_json::Value> = read_json(&ledger_dir.join("run.json"));
            let catalog = catalog_of(args)?;
            let source = crate::report::html::RunSource {
                report: &report,
                plan: plan.as_ref(),
                plan_sha256: header
                    .as_ref()
                    .and_then(|h| h.get(ledger::PLAN_SHA256_FIELD))
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
                share: &share,
                catalog: &catalog,
                retiring_days: crate::audit::AuditPlaybook::embedded().retiring_days,
                contacts: contacts(&inventory),
                generated_at: now(),
            };
            let pages = crate::report::html::run_pages(&source).map_err(Refusal::failure)?;
            write_html(&dir, &pages, io)?;
        }
        None => {
            let json = args.format == Some(ReportFormatArg::Json);
            render_run(&report, json, io.look(), io.out)
                .map_err(|e| Refusal::failure(format!("cannot write the report: {e}")))?;
        }
    }
    if args.notify {
        notify_again(&inventory, &report, &ledger_dir, io).await;
    }
    Ok(report.exit_code())
}

/// The run's messages that no channel has taken yet, sent again (every audience's when the
/// ledger records none); what happened is added to the ledger's record.
async fn notify_again(
    inventory: &crate::inventory::Inventory,
    report: &run::RunReport,
    ledger_dir: &std::path::Path,
    io: &mut Io<'_>,
) {
    use crate::notify;
    // Only the end-of-night messages are sent again (a hand-off's moment has passed).
    let recorded: Vec<notify::Delivery> = notify::recorded(ledger_dir)
        .into_iter()
        .filter(|d| d.event.starts_with("run-"))
        .collect();
    let taken = |kind: &str, tenant: Option<&str>| {
        recorded
            .iter()
            .any(|d| d.delivered && d.channel == kind && d.tenant.as_deref() == tenant)
    };
    let mut audiences = notify::audiences(inventory, |tenant| {
        notify::events::run_ended(report, tenant)
    });
    let mut pending = Vec::new();
    for audience in &mut audiences {
        let tenant = audience.message.tenant.clone();
        let channels: Vec<_> = audience
            .notify
            .channels
            .iter()
            .filter(|c| recorded.is_empty() || !taken(c.kind.as_str(), tenant.as_deref()))
            .cloned()
            .collect();
        if !channels.is_empty() {
            pending.push((
                crate::inventory::Notify {
                    channels,
                    ..audience.notify.clone()
                },
                audience.message.clone(),
            ));
        }
    }
    if pending.is_empty() {
        let _ = writeln!(
            io.err,
            "notify: every message of this run was delivered; nothing to send again"
        );
        return;
    }
    let again: Vec<notify::Audience<'_>> = pending
        .iter()
        .map(|(n, m)| notify::Audience {
            notify: n,
            message: m.clone(),
        })
        .collect();
    let deliveries = notify::deliver_all(&again).await;
    notify::say(&deliveries, io.err);
    if let Err(e) = notify::record(ledger_dir, &deliveries) {
        let _ = writeln!(
            io.err,
            "warning: the notifications were not recorded in the ledger: {e}"
        );
    }
}

/// The folder of `--format html`, which needs `--out`; `--out` without html is refused too.
fn html_out(args: &ReportArgs) -> Result<Option<std::path::PathBuf>, Refusal> {
    if args.catalog.is_some() && args.format != Some(ReportFormatArg::Html) {
        return Err(Refusal::input(
            "--catalog is for --format html (the table and JSON show the run as it was judged)"
                .to_string(),
        ));
    }
    match (args.format.unwrap_or(ReportFormatArg::Table), &args.out) {
        (ReportFormatArg::Html, Some(dir)) => Ok(Some(dir.clone())),
        (ReportFormatArg::Html, None) => Err(Refusal::input(
            "--format html writes one file per tenant and one for the fleet: give the folder with --out DIR".to_string(),
        )),
        (_, Some(_)) => Err(Refusal::input(
            "--out is for --format html (the table and JSON go to stdout)".to_string(),
        )),
        (_, None) => Ok(None),
    }
}

/// `ecfleet report audit [SNAPSHOT|latest]`: the snapshot as its JSON, or its HTML reports.
/// Its exit code is the audit's own (docs/exit-codes.md).
fn report_audit(
    args: &ReportArgs,
    inventory: &crate::inventory::Inventory,
    io: &mut Io<'_>,
) -> Result<u8, Refusal> {
    if args.notify {
        return Err(Refusal::input(
            "--notify resends a run's messages; an audit's are sent by the audit itself"
                .to_string(),
        ));
    }
    let out_dir = html_out(args)?;
    if args.format == Some(ReportFormatArg::Table) {
        return Err(Refusal::input(
            "report audit shows a snapshot as HTML (--format html --out DIR) or as its JSON (--format json); `ecfleet audit` prints the table".to_string(),
        ));
    }
    let share = super::fleet::share(inventory, "audit snapshots are kept on the central share")?;
    let which = args.snapshot.as_deref().unwrap_or("latest");
    let (path, bytes) = find_snapshot(&share, which)?;
    let audit: crate::report::html::StoredAudit = serde_json::from_slice(&bytes)
        .map_err(|e| Refusal::input(format!("{} is not a readable audit: {e}", path.display())))?;
    let relative = path
        .strip_prefix(&share)
        .unwrap_or(&path)
        .display()
        .to_string();
    match out_dir {
        Some(dir) => {
            let catalog = catalog_of(args)?;
            let source = crate::report::html::AuditSource {
                audit: &audit,
                snapshot: relative,
                share: &share,
                catalog: &catalog,
                contacts: contacts(inventory),
                generated_at: now(),
            };
            let pages = crate::report::html::audit_pages(&source).map_err(Refusal::failure)?;
            write_html(&dir, &pages, io)?;
        }
        None => {
            io.out
                .write_all(&bytes)
                .map_err(|e| Refusal::failure(format!("cannot write the report: {e}")))?;
        }
    }
    Ok(audit_exit_code(&audit))
}

/// The stored audit's exit code, as `ecfleet audit` gave it: 2 some hosts not audited, 1
/// warnings or criticals, 0 all fine.
fn audit_exit_code(audit: &crate::report::html::StoredAudit) -> u8 {
    if audit.hosts.iter().any(|h| !h.reachable) {
        crate::exit::INCOMPLETE
    } else if audit
        .hosts
        .iter()
        .flat_map(|h| &h.findings)
        .any(|f| f.severity == "critical" || f.severity == "warning")
    {
        crate::exit::ATTENTION
    } else {
        crate::exit::OK
    }
}

/// `latest` or a snapshot folder's name under `audits/`: its `audit.json`, whose manifest
/// must still match it.
pub(super) fn find_snapshot(
    share: &Path,
    which: &str,
) -> Result<(std::path::PathBuf, Vec<u8>), Refusal> {
    let store = crate::share::Share::new(share);
    let mut names = Vec::new();
    for (path, bytes) in store.audits_newest_first() {
        let name = path
            .parent()
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if which == "latest" || which == name {
            return Ok((path, bytes));
        }
        if names.len() < 5 {
            names.push(name);
        }
    }
    let shown = crate::report::sanitize::terminal_safe(which);
    Err(Refusal::input(if names.is_empty() {
        format!(
            "{}: no audit snapshot on the share (or none whose SHA256SUMS still matches): run `ecfleet audit` first",
            share.join("audits").display()
        )
    } else {
        format!(
            "no audit snapshot {shown} in {} (whose SHA256SUMS matches); the newest are: {}",
            share.join("audits").display(),
            names.join(", ")
        )
    }))
}

fn write_html(
    dir: &Path,
    pages: &[crate::report::html::Page],
    io: &mut Io<'_>,
) -> Result<(), Refusal> {
    let written = crate::report::html::write_pages(dir, pages).map_err(Refusal::failure)?;
    for path in written {
        let _ = writeln!(io.out, "{}", super::relative(&path));
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = crate::fsread::read_regular(path, 256 << 20).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn contacts(inventory: &crate::inventory::Inventory) -> BTreeMap<String, Vec<String>> {
    inventory
        .tenants
        .iter()
        .map(|t| (t.name.clone(), t.contacts.clone()))
        .collect()
}

fn now() -> String {
    let t = jiff::Timestamp::now();
    t.round(jiff::Unit::Second).unwrap_or(t).to_string()
}

/// The catalog of `--catalog`, or the built-in one.
fn catalog_of(args: &ReportArgs) -> Result<crate::catalog::Catalog, Refusal> {
    match &args.catalog {
        Some(path) => crate::catalog::Catalog::load(path).map_err(Refusal::input),
        None => Ok(crate::catalog::Catalog::embedded()),
    }
}
