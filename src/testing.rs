//! Test fixtures shared by the unit tests of several modules (compiled for tests only).

use ecfleet_proto::Facts;

/// The lab seed that gives the healthy host Server 2022 and auto-upgrade off.
const HEALTHY_SEED: usize = 4;

/// When the healthy host's facts are collected: its runs and file times are relative to it.
pub const HEALTHY_COLLECTED_AT: &str = "2026-11-24T10:00:00Z";

/// A healthy host running `version`: the lab's healthy machine
/// ([`crate::lab::scenarios::healthy_machine`], the host every lab scenario is a change to),
/// as it reports itself at [`HEALTHY_COLLECTED_AT`]. So the unit tests, the lab and the
/// integration tests share one description of "healthy": Server 2022, both readings agreeing,
/// .NET 4.8, TLS 1.2 enforced, 48 GiB free, nothing open, scheduler idle, every connector's last
/// import and export successful minutes ago, auto-upgrade off, Health Agent running, a LocalDB
/// well below its limits, the engine's configuration file as installed, an AD and the Entra
/// connector.
pub fn healthy_facts(version: &str) -> Facts {
    let version = version.parse().expect("a test's version is a build number");
    let machine = crate::lab::scenarios::healthy_machine(
        "ec01",
        "contoso",
        version,
        crate::inventory::Role::Active,
        HEALTHY_SEED,
    );
    machine.facts_at(HEALTHY_COLLECTED_AT.parse().unwrap(), "test")
}

/// A lab host reached over SSH (Linux shell, `lab_root` set), for tests that need an inventory
/// host without an inventory file.
pub fn lab_host(name: &str, tenant: &str) -> crate::inventory::Host {
    use crate::inventory::*;
    Host {
        name: name.into(),
        tenant: tenant.into(),
        address: "127.0.0.1".into(),
        port: 22,
        role: Role::Active,
        transport: HostTransport::Ssh(SshSettings {
            identity_file: None,
            known_hosts: "/nonexistent/known_hosts".into(),
        }),
        user: "ecfleet".into(),
        password: None,
        lab_root: Some(format!("/srv/lab/{name}")),
        os: Some(RemoteOs::Linux),
        min_os: None,
        connect_timeout: std::time::Duration::from_secs(10),
        jump: Vec::new(),
        line: 1,
    }
}

/// The newest run of `profile` (on any connector) in the facts' run history.
pub fn newest_run<'a>(f: &'a mut Facts, profile: &str) -> &'a mut ecfleet_proto::RunResult {
    f.run_history
        .as_mut()
        .and_then(|runs| runs.iter_mut().find(|r| r.run_profile == profile))
        .expect("the healthy host has runs of every profile")
}
