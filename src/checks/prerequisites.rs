//! Checks of what an upgrade needs from the server (docs/design/DOMAIN.md §3): the OS and its edition, .NET
//! Framework, TLS 1.2 for .NET and SCHANNEL, free disk, no Entra Connect window open, an
//! engine configuration the target can start with, and a wizard sign-in that will not hang.

use ecfleet_proto::Facts;

use crate::platform::server_name;

use super::model::{Check, Code, Limits, Severity};
use super::sync_engine::{REDIRECT_FIX, edited_engine_config, target_needs_redirect};
use super::tls12_gaps;

const GIB: f64 = (1u64 << 30) as f64;

/// "Windows Server 2019 (build 17763)", or "OS build N" for a build not in the table.
pub fn os_label(build: u32) -> String {
    match server_name(build) {
        Some(n) => format!("Windows Server {n} (build {build})"),
        None => format!("OS build {build}"),
    }
}

pub(super) fn os(facts: &Facts, limits: &Limits<'_>, out: &mut Vec<Check>) {
    let Some(os) = &facts.os else { return };
    let min = limits.min_os_build();
    if os.build < min {
        out.push(Check::new(
            Code::OsTooOld,
            Severity::Critical,
            format!(
                "{} cannot run {}, which needs {}; an in-place OS upgrade from it is unsupported",
                os_label(os.build),
                limits.target_name(),
                os_label(min)
            ),
            "build a new Windows Server 2022 or 2025, import the configuration backup there in staging mode, then switch roles (swing migration)",
            &["os"],
        ));
    }
    if os
        .installation_type
        .as_deref()
        .is_some_and(|t| t.contains("Core"))
    {
        out.push(Check::new(
            Code::ServerCore,
            Severity::Critical,
            "Server Core is not supported by Entra Connect",
            "swing-migrate to a server with the full GUI",
            &["os"],
        ));
    }
}

pub(super) fn dotnet(facts: &Facts, limits: &Limits<'_>, out: &mut Vec<Check>) {
    let Some(dotnet) = &facts.dotnet else { return };
    let min = limits.min_dotnet_release();
    match dotnet.release {
        Some(r) if r >= min => {}
        other => out.push(Check::new(
            Code::DotnetTooOld,
            Severity::Critical,
            format!(
                ".NET Framework release {} is below 4.7.2 ({min})",
                other
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "none".into())
            ),
            "install .NET Framework 4.8 and reboot",
            &["dotnet"],
        )),
    }
}

pub(super) fn tls12(facts: &Facts, out: &mut Vec<Check>) {
    let Some(tls) = &facts.tls12 else { return };
    let gaps = tls12_gaps(tls);
    if !gaps.is_empty() {
        out.push(Check::new(
            Code::Tls12NotEnforced,
            Severity::Warning,
            format!("TLS 1.2 is not enforced for {}", gaps.join(", ")),
            "set the TLS 1.2 registry values for .NET in both hives (SystemDefaultTlsVersions=1 and SchUseStrongCrypto=1 under v4.0.30319; Set-ADSyncToolsTls12), enable TLS 1.2 in SCHANNEL, and reboot",
            &["tls12"],
        ));
    }
}

pub(super) fn disk(facts: &Facts, limits: &Limits<'_>, out: &mut Vec<Check>) {
    let Some(disk) = &facts.disk else { return };
    let min = (limits.min_free_gib * GIB) as u64;
    if disk.free_bytes < min {
        out.push(Check::new(
            Code::DiskLow,
            Severity::Critical,
            format!(
                "{} has {:.1} GiB free (minimum {:.1} GiB)",
                disk.system_drive,
                disk.free_bytes as f64 / GIB,
                limits.min_free_gib
            ),
            format!(
                "free space on {} (purge old run history, logs and temp files)",
                disk.system_drive
            ),
            &["disk"],
        ));
    }
}

pub(super) fn open_ui(facts: &Facts, out: &mut Vec<Check>) {
    let Some(ui) = &facts.open_ui else { return };
    if ui.wizard {
        out.push(Check::new(
            Code::WizardOpen,
            Severity::Warning,
            "the Entra Connect wizard is open; the scheduler is suspended while it is",
            "close AzureADConnect.exe on the server",
            &["open_ui"],
        ));
    }
    if ui.sync_service_manager {
        out.push(Check::new(
            Code::SyncServiceManagerOpen,
            Severity::Warning,
            "Synchronization Service Manager is open; upgrades abort with UpgradeAbortedSyncExeInUse",
            "close miisclient.exe on the server",
            &["open_ui"],
        ));
    }
}

/// An edited `miiserver.exe.config` without the DiagnosticSource redirect stops the sync engine
/// of a target from 2.5.190.0 up to 2.6.84.0 (docs/design/DOMAIN.md §7 #11); judged only against a target.
pub(super) fn engine_config_for_target(facts: &Facts, limits: &Limits<'_>, out: &mut Vec<Check>) {
    let Some(target) = limits.target else { return };
    if let Some(config) = edited_engine_config(facts)
        && !config.diagnostic_source_redirect
        && target_needs_redirect(target)
    {
        out.push(Check::new(
            Code::EngineConfigNeedsRedirect,
            Severity::Critical,
            format!("{} was edited after the install and has no System.Diagnostics.DiagnosticSource redirect: the sync engine of {target} would not start (FileLoadException)", config.path),
            format!("{REDIRECT_FIX}; or choose a target of 2.6.84.0 or newer, which merges the file"),
            &["engine_config"],
        ));
    }
}

/// The site the wizard's MFA sign-in loads; outside Trusted Sites its prompt can hang.
pub const MFA_SITE: &str = "https://secure.aadcdn.microsoftonline-p.com";

/// The wizard's MFA page in Trusted Sites, by policy or for some loaded profile (docs/design/DOMAIN.md §5,
/// §7 #7). Information for the audit (sync is not affected); the plan warns before a window.
pub(super) fn sign_in(facts: &Facts, out: &mut Vec<Check>) {
    let Some(t) = &facts.trusted_sites else {
        return;
    };
    if !t.policy && t.profiles.is_empty() {
        out.push(Check::new(
            Code::MfaSiteNotTrusted,
            Severity::Info,
            format!(
                "{MFA_SITE} is not a Trusted Site, neither by policy nor in the {} loaded user profile(s): the upgrade wizard's MFA sign-in can hang",
                t.profiles_checked
            ),
            "add it to Trusted Sites for the account that will run the wizard (Internet Options → Security → Trusted sites), or for everyone by Group Policy (Site to Zone Assignment List, value 2)",
            &["trusted_sites"],
        ));
    }
}
