//! `ecfleet lab …`: write a simulated fleet, serve it over SSH in-process, write a lab MSI, or
//! run the whole demo (serve, audit, stop) in one command.

use super::{Context, Io};
use crate::catalog::Catalog;
use crate::lab::Shape;
use std::path::Path;

use crate::cli::{AuditArgs, FleetArgs, FormatArg, LabCommand};
use crate::exit;

/// Why the lab serves no hosts on this controller: its hosts run the Linux agent under `sh`.
const UNIX_ONLY: &str = "the lab serves its hosts on Linux (or another Unix) only: they run the Linux agent under sh. Run `ecfleet lab up` there, and point this controller at its inventory";

pub async fn run(command: LabCommand, cx: &Context, io: &mut Io<'_>) -> u8 {
    if cfg!(not(unix)) && matches!(command, LabCommand::Up { .. } | LabCommand::Demo { .. }) {
        return io.error(exit::INVALID_INPUT, UNIX_ONLY);
    }
    match command {
        LabCommand::Msi {
            version,
            out,
            size_mb,
            product_name,
        } => msi(&out, &version, product_name.as_deref(), size_mb, io),
        LabCommand::Init { shape, dir, as_of } => {
            init(&dir, shape.shape(), as_of.as_deref(), cx, io)
        }
        LabCommand::Up {
            shape,
            dir,
            port_base,
        } => up(&dir, shape.shape(), port_base, cx, io).await,
        LabCommand::Demo { shape, dir, format } => demo(&dir, shape.shape(), format, cx, io).await,
    }
}

fn msi(out: &Path, version: &str, product_name: Option<&str>, size_mb: u64, io: &mut Io<'_>) -> u8 {
    match crate::msi::write_lab_msi(out, version, product_name, size_mb << 20) {
        Ok(info) => {
            let _ = writeln!(
                io.out,
                "wrote {} ({} {}, {} bytes, sha256 {})",
                out.display(),
                info.product_name,
                info.product_version,
                info.size,
                info.sha256
            );
            exit::OK
        }
        Err(e) => io.error(exit::FAILURE, e),
    }
}

fn init(dir: &Path, shape: Shape, as_of: Option<&str>, cx: &Context, io: &mut Io<'_>) -> u8 {
    if shape.winrm > 0 {
        return io.error(
            exit::INVALID_INPUT,
            "--winrm is how `lab up` and `lab demo` serve the hosts; `lab init` only writes them: drop --winrm, or use lab up --winrm N",
        );
    }
    let as_of = match crate::settings::as_of(as_of, cx.today) {
        Ok(d) => d,
        Err(e) => return io.error(exit::INVALID_INPUT, e),
    };
    match crate::lab::init(dir, shape, &Catalog::embedded(), as_of) {
        Ok(fleet) => {
            let _ = writeln!(
                io.out,
                "wrote {} lab hosts to {}",
                fleet.len(),
                dir.join("hosts").display()
            );
            exit::OK
        }
        Err(e) => io.error(exit::FAILURE, e),
    }
}

async fn up(dir: &Path, shape: Shape, port_base: u16, cx: &Context, io: &mut Io<'_>) -> u8 {
    let lab = match crate::lab::up(dir, shape, port_base, &Catalog::embedded(), cx.today).await {
        Ok(x) => x,
        Err(e) => return io.error(exit::FAILURE, e),
    };
    let inventory = lab.inventory.clone();
    let _ = writeln!(
        io.err,
        "serving {} lab hosts on 127.0.0.1{}; inventory: {}",
        shape.hosts,
        over_winrm(shape),
        inventory.display()
    );
    let _ = writeln!(
        io.err,
        "try: ecfleet audit -i {}    (Ctrl-C stops the lab)",
        inventory.display()
    );
    let mut stop = cx.shutdown.clone();
    lab.serve(async move {
        stop.reached(crate::engine::Level::Stopping).await;
    })
    .await;
    exit::OK
}

async fn demo(dir: &Path, shape: Shape, format: FormatArg, cx: &Context, io: &mut Io<'_>) -> u8 {
    let lab = match crate::lab::up(dir, shape, 0, &Catalog::embedded(), cx.today).await {
        Ok(x) => x,
        Err(e) => return io.error(exit::FAILURE, e),
    };
    let inventory = lab.inventory.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(lab.serve(async {
        let _ = stopped.await;
    }));
    let _ = writeln!(
        io.err,
        "lab: {} simulated hosts served on 127.0.0.1{} (inventory {})",
        shape.hosts,
        over_winrm(shape),
        inventory.display()
    );
    let args = AuditArgs {
        fleet: FleetArgs {
            inventory,
            as_of: None,
            hosts: vec![],
            tenants: vec![],
            shard: None,
            concurrency: None,
            catalog: None,
            accept_new_host_keys: false,
            agent_dir: None,
            no_progress: false,
            wide: false,
            events: None,
        },
        format,
        playbook: None,
        no_share: false,
        metrics: None,
        nagios: false,
    };
    let code = super::audit::run(&args, cx, io).await;
    let _ = stop.send(());
    let _ = server.await;
    code
}

/// ` (N over WinRM)` when the lab serves some hosts over WinRM.
fn over_winrm(shape: Shape) -> String {
    match shape.winrm.min(shape.hosts) {
        0 => String::new(),
        n => format!(" ({n} over WinRM)"),
    }
}
