//! `ecfleet lab …`: write a simulated fleet, serve it over SSH in-process, write a lab MSI, or
//! run the whole demo (serve, audit, stop) in one command.

use super::{Context, Io};
use crate::catalog::Catalog;
use std::path::Path;

use crate::cli::{AuditArgs, FleetArgs, FormatArg, LabCommand};
use crate::exit::audit as exit;

pub async fn run(command: LabCommand, cx: &Context, io: &mut Io<'_>) -> u8 {
    match command {
        LabCommand::Msi {
            version,
            out,
            size_mb,
            product_name,
        } => msi(&out, &version, product_name.as_deref(), size_mb, io),
        LabCommand::Init { hosts, dir, as_of } => init(&dir, hosts, as_of.as_deref(), cx, io),
        LabCommand::Up {
            hosts,
            dir,
            port_base,
        } => up(&dir, hosts, port_base, cx, io).await,
        LabCommand::Demo { hosts, dir, format } => demo(&dir, hosts, format, cx, io).await,
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

fn init(dir: &Path, hosts: usize, as_of: Option<&str>, cx: &Context, io: &mut Io<'_>) -> u8 {
    let as_of = match crate::settings::as_of(as_of, cx.today) {
        Ok(d) => d,
        Err(e) => return io.error(exit::INVALID_INPUT, e),
    };
    match crate::lab::init(dir, hosts, &Catalog::embedded(), as_of) {
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

async fn up(dir: &Path, hosts: usize, port_base: u16, cx: &Context, io: &mut Io<'_>) -> u8 {
    let (inventory, served, client) =
        match crate::lab::up(dir, hosts, port_base, &Catalog::embedded(), cx.today).await {
            Ok(x) => x,
            Err(e) => return io.error(exit::FAILURE, e),
        };
    let _ = writeln!(
        io.err,
        "serving {hosts} lab hosts on 127.0.0.1; inventory: {}",
        inventory.display()
    );
    let _ = writeln!(
        io.err,
        "try: ecfleet audit -i {}    (Ctrl-C stops the lab)",
        inventory.display()
    );
    let mut stop = cx.shutdown.clone();
    crate::lab::server::serve(served, client, async move {
        stop.reached(crate::engine::Level::Stopping).await;
    })
    .await;
    exit::OK
}

async fn demo(dir: &Path, hosts: usize, format: FormatArg, cx: &Context, io: &mut Io<'_>) -> u8 {
    let (inventory, served, client) =
        match crate::lab::up(dir, hosts, 0, &Catalog::embedded(), cx.today).await {
            Ok(x) => x,
            Err(e) => return io.error(exit::FAILURE, e),
        };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::lab::server::serve(served, client, async {
        let _ = stopped.await;
    }));
    let _ = writeln!(
        io.err,
        "lab: {hosts} simulated hosts served over SSH on 127.0.0.1 (inventory {})",
        inventory.display()
    );
    let args = AuditArgs {
        fleet: FleetArgs {
            inventory,
            as_of: None,
            hosts: vec![],
            tenants: vec![],
            concurrency: None,
            catalog: None,
            accept_new_host_keys: false,
            agent_dir: None,
            no_progress: false,
            events: None,
        },
        format,
        playbook: None,
        no_share: false,
    };
    let code = super::audit::run(&args, cx, io).await;
    let _ = stop.send(());
    let _ = server.await;
    code
}
