//! Judgements of a host's facts that more than one command needs (the audit's findings, the
//! plan's reasons and warnings, the plan's fingerprint, and later run's preflight and verify):
//! each written once, here, as a pure function of the facts. The sync engine's own state is in
//! [`sync_engine`].

pub mod sync_engine;

use ecfleet_proto::Facts;

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
