//! One set of checks: every condition of docs/design/DOMAIN.md §3 and §7 that a host's facts can show is
//! judged here once, as a pure function of the facts and the [`Limits`] (catalog, date,
//! thresholds, role, target), into typed [`Check`]s. The audit renders them as findings, the
//! plan as reasons and warnings (choosing which block), the plan's fingerprint reads the same
//! helpers, and `run`'s preflight and verify are to map from them too.
//!
//! - [`model`]: what a check is (code, severity, message, fix, the facts it rests on);
//! - [`install`]: probes, install state, ADSync, version readings, support;
//! - [`prerequisites`]: OS, .NET, TLS 1.2, disk, open windows, the engine config for a target;
//! - [`sync`]: scheduler and staging, run history, Health Agent, auto-upgrade, sync rules;
//! - [`sync_engine`]: LocalDB, an edited `miiserver.exe.config`, the Entra connector.

pub mod entra_auth;
pub mod install;
pub mod model;
pub mod prerequisites;
pub mod sync;
pub mod sync_engine;

use ecfleet_proto::Facts;

use crate::catalog::{EcVersion, Support};

pub use entra_auth::app_auth;
pub use install::Readings;
pub use model::{Check, Code, Limits, Severity};

/// Everything the checks found on one host.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub readings: Readings,
    /// The installed build's support verdict (`None` when no reading is a build).
    pub support: Option<Support>,
    /// Whether Entra Connect is installed at all.
    pub installed: bool,
    /// In a fixed order (install, versions, support, prerequisites, sync, sync engine).
    pub checks: Vec<Check>,
}

impl Assessment {
    pub fn has(&self, code: Code) -> bool {
        self.checks.iter().any(|c| c.code == code)
    }

    pub fn find(&self, code: Code) -> Option<&Check> {
        self.checks.iter().find(|c| c.code == code)
    }

    /// The installed build: the engine's reading, else the configuration's.
    pub fn installed_build(&self) -> Option<EcVersion> {
        self.readings.installed()
    }
}

/// Judges one host's facts.
pub fn assess(facts: &Facts, limits: &Limits<'_>) -> Assessment {
    let mut checks = Vec::new();
    let readings = Readings::of(facts);
    let installed = install::installed(facts);
    install::probe_errors(facts, &mut checks);
    install::installation(facts, &mut checks);
    install::versions(&readings, &mut checks);
    let support = install::support(&readings, limits, &mut checks);
    prerequisites::os(facts, limits, &mut checks);
    prerequisites::dotnet(facts, limits, &mut checks);
    prerequisites::tls12(facts, &mut checks);
    prerequisites::disk(facts, limits, &mut checks);
    prerequisites::open_ui(facts, &mut checks);
    prerequisites::engine_config_for_target(facts, limits, &mut checks);
    prerequisites::sign_in(facts, &mut checks);
    sync::scheduler(facts, limits.role, &mut checks);
    sync::run_history(facts, limits, &mut checks);
    sync::health_agent(facts, installed, &mut checks);
    sync::auto_upgrade(facts, &mut checks);
    sync::sync_rules(facts, &mut checks);
    sync_engine::checks(facts, &mut checks);
    checks.extend(entra_auth::app_auth(facts, limits.as_of));
    if let Some(clm) = entra_auth::language_mode(facts) {
        // The agent's scripts could not run: nothing else was read, so nothing else is judged
        // (an absent ADSync reading is no "not installed").
        checks = vec![clm];
    }
    Assessment {
        readings,
        support,
        installed,
        checks,
    }
}

/// A value a host reported, quoted and with control characters escaped, for a message.
pub fn shown(raw: &str) -> String {
    format!("{raw:?}")
}

/// The sync engine's version: `miiserver.exe`'s product version, else its file version.
pub fn engine_version(facts: &Facts) -> Option<String> {
    facts.ec.as_ref().and_then(|e| {
        e.engine_product_version
            .clone()
            .or_else(|| e.engine_file_version.clone())
    })
}

/// The four places TLS 1.2 must be enforced and whether it is: the .NET values in either hive
/// (both must be 1), and SCHANNEL client and server (absent keys mean the OS default, which is
/// TLS 1.2 on Server 2016+; only an explicit disable counts).
pub fn tls12_places(tls: &ecfleet_proto::Tls12Facts) -> [(&'static str, bool); 4] {
    let dotnet = |d: &ecfleet_proto::DotNetTls| {
        d.system_default_tls_versions == Some(1) && d.sch_use_strong_crypto == Some(1)
    };
    let schannel =
        |s: &ecfleet_proto::SchannelTls| s.enabled != Some(0) && s.disabled_by_default != Some(1);
    [
        ("dotnet-x64", dotnet(&tls.dotnet_x64)),
        ("dotnet-x86", dotnet(&tls.dotnet_x86)),
        ("schannel-client", schannel(&tls.schannel_client)),
        ("schannel-server", schannel(&tls.schannel_server)),
    ]
}

/// Where TLS 1.2 is not enforced, in words for messages.
pub fn tls12_gaps(tls: &ecfleet_proto::Tls12Facts) -> Vec<&'static str> {
    tls12_places(tls)
        .iter()
        .filter(|(_, on)| !on)
        .map(|(place, _)| match *place {
            "dotnet-x64" => "64-bit .NET",
            "dotnet-x86" => "32-bit .NET",
            "schannel-client" => "SCHANNEL client",
            _ => "SCHANNEL server",
        })
        .collect()
}

/// Whether an uninstall entry is the sync engine's (either branding).
pub fn is_engine_entry(name: &str) -> bool {
    let n = name.to_lowercase();
    n.contains("synchronization services")
        || n.contains("connect sync")
        || n.contains("azure ad sync")
}

/// The newest import and the newest export of each connector (runs are newest first), where
/// they did not succeed; by connector name, import before export. A staging server's exports
/// are not judged: it never exports.
pub fn failed_last_runs(
    runs: &[ecfleet_proto::RunResult],
    staging: bool,
) -> Vec<&ecfleet_proto::RunResult> {
    let mut connectors: Vec<&str> = runs.iter().map(|r| r.connector.as_str()).collect();
    connectors.sort_unstable();
    connectors.dedup();
    let mut failed = Vec::new();
    for connector in connectors {
        let newest = |pred: fn(&str) -> bool| {
            runs.iter()
                .find(|r| r.connector == connector && pred(&r.run_profile))
        };
        let export = if staging { None } else { newest(is_export) };
        for r in [newest(is_import), export].into_iter().flatten() {
            if r.result != "success" {
                failed.push(r);
            }
        }
    }
    failed
}

/// Names of the Health Agent services that are not running.
pub fn stopped_services(services: &[ecfleet_proto::ServiceFacts]) -> Vec<&str> {
    services
        .iter()
        .filter(|s| s.state != "Running")
        .map(|s| s.name.as_str())
        .collect()
}

pub fn is_import(profile: &str) -> bool {
    profile.eq_ignore_ascii_case("Delta Import") || profile.eq_ignore_ascii_case("Full Import")
}

pub fn is_export(profile: &str) -> bool {
    profile.eq_ignore_ascii_case("Export")
}

#[cfg(test)]
mod tests;
