//! The checks as one set: every code documented, every check citing real facts, and one
//! condition judged once whatever reads it (audit or plan).

use std::collections::HashSet;

use ecfleet_proto::*;

use super::*;
use crate::catalog::Catalog;
use crate::inventory::Role;

fn limits(catalog: &Catalog, target: Option<EcVersion>) -> Limits<'_> {
    Limits {
        catalog,
        as_of: "2026-11-24".parse().unwrap(),
        retiring_days: 90,
        min_free_gib: 2.0,
        max_sync_age_hours: 3.0,
        role: Role::Active,
        target,
    }
}

/// A host with as many conditions at once as the facts allow.
fn everything_wrong() -> Facts {
    let mut f = crate::testing::healthy_facts("2.4.18.0");
    f.ec.as_mut().unwrap().config_version = Some("2.3.20.0".into());
    f.adsync_service.as_mut().unwrap().state = "Stopped".into();
    f.errors.push(ProbeError {
        probe: "wizard".into(),
        message: "access denied".into(),
    });
    let os = f.os.as_mut().unwrap();
    os.build = 9600;
    os.installation_type = Some("Server Core".into());
    f.dotnet = Some(DotNetFacts {
        release: Some(461308),
    });
    f.tls12 = Some(Tls12Facts::default());
    f.disk.as_mut().unwrap().free_bytes = 1 << 20;
    f.open_ui = Some(OpenUi {
        wizard: true,
        sync_service_manager: true,
    });
    let s = f.scheduler.as_mut().unwrap();
    s.staging_mode_enabled = Some(true);
    s.sync_cycle_enabled = Some(false);
    s.scheduler_suspended = Some(true);
    s.sync_cycle_in_progress = Some(true);
    for r in f.run_history.as_mut().unwrap() {
        r.result = "stopped-extension-dll-exception".into();
    }
    f.health_agent.as_mut().unwrap()[0].state = "Stopped".into();
    f.auto_upgrade = Some(AutoUpgradeFacts {
        state: "Suspended".into(),
        suspension_reason: Some("UpgradeNotSupportedCustomizedSyncRules".into()),
    });
    f.sync_rules = Some(SyncRuleFacts {
        customised_default_rules: 2,
        custom_rules_outside_0_99: 1,
        ..SyncRuleFacts::default()
    });
    f.database.as_mut().unwrap().data_file_bytes = Some(9 << 30);
    let config = f.engine_config.as_mut().unwrap();
    config.edited_after_install = true;
    config.diagnostic_source_redirect = false;
    f.connectors = Some(Vec::new());
    f.trusted_sites = Some(TrustedSitesFacts {
        policy: false,
        profiles: vec![],
        profiles_checked: 3,
    });
    f
}

#[test]
fn every_code_is_distinct_and_documented_with_its_plan_alias() {
    let docs = include_str!("../../docs/json-output.md");
    let mut seen = HashSet::new();
    for code in Code::ALL {
        assert!(seen.insert(code.as_str()), "{} twice", code.as_str());
        for name in [code.as_str(), code.plan_code()] {
            assert!(
                docs.contains(&format!("`{name}`")),
                "docs/json-output.md does not document `{name}`"
            );
        }
    }
}

#[test]
fn every_check_cites_facts_that_exist() {
    let facts = everything_wrong();
    let fields = serde_json::to_value(&facts).unwrap();
    let catalog = Catalog::embedded();
    let target = Some("2.5.190.0".parse().unwrap());
    let a = assess(&facts, &limits(&catalog, target));
    assert!(a.checks.len() >= 25, "{:#?}", a.checks);
    for check in &a.checks {
        assert!(
            !check.rests_on.is_empty(),
            "{:?} cites no facts",
            check.code
        );
        for field in check.rests_on {
            assert!(
                fields.get(field).is_some(),
                "{:?} cites `{field}`, which Facts does not have",
                check.code
            );
        }
        if check.severity != Severity::Info {
            assert!(!check.fix.is_empty(), "{:?} has no fix", check.code);
        }
    }
}

#[test]
fn the_target_decides_the_os_and_engine_config_checks() {
    let catalog = Catalog::embedded();
    let mut facts = crate::testing::healthy_facts("1.6.16.0");
    facts.os.as_mut().unwrap().build = 9600;
    // The audit judges against any V2 build: 2012 R2 is too old.
    let audit = assess(&facts, &limits(&catalog, None));
    assert!(audit.has(Code::OsTooOld));
    assert!(
        audit
            .find(Code::OsTooOld)
            .unwrap()
            .message
            .contains("Entra Connect V2"),
        "{:?}",
        audit.find(Code::OsTooOld)
    );
    // A 1.x target runs there.
    let v1 = assess(&facts, &limits(&catalog, Some("1.6.16.0".parse().unwrap())));
    assert!(!v1.has(Code::OsTooOld));
    // The edited-config check needs a target to judge.
    let mut edited = crate::testing::healthy_facts("2.4.18.0");
    edited.engine_config.as_mut().unwrap().edited_after_install = true;
    assert!(!assess(&edited, &limits(&catalog, None)).has(Code::EngineConfigNeedsRedirect));
    let to = |v: &str| assess(&edited, &limits(&catalog, Some(v.parse().unwrap())));
    assert!(to("2.5.190.0").has(Code::EngineConfigNeedsRedirect));
    assert!(!to("2.6.91.0").has(Code::EngineConfigNeedsRedirect));
}

#[test]
fn a_garbage_engine_reading_is_not_replaced_by_the_configuration_reading() {
    let catalog = Catalog::embedded();
    let mut facts = crate::testing::healthy_facts("2.6.91.0");
    facts.ec.as_mut().unwrap().engine_product_version = Some("v2.6.91.0".into());
    let a = assess(&facts, &limits(&catalog, None));
    assert_eq!(a.installed_build(), None);
    assert!(a.support.is_none());
    assert!(a.has(Code::VersionUnreadable));
    // No engine reading at all: the configuration's is the build.
    facts.ec.as_mut().unwrap().engine_product_version = None;
    facts.ec.as_mut().unwrap().engine_file_version = None;
    let a = assess(&facts, &limits(&catalog, None));
    assert_eq!(a.installed_build(), Some("2.6.91.0".parse().unwrap()));
}

/// One condition, judged once: the audit's finding and the plan's reason carry the same words,
/// under the code each has always used.
#[test]
fn audit_and_plan_render_the_same_check() {
    use crate::audit::{AuditPlaybook, findings};
    use crate::plan::rules::{Context, HostInput, decide};
    let catalog = Catalog::embedded();
    let mut facts = crate::testing::healthy_facts("2.4.18.0");
    facts.adsync_service.as_mut().unwrap().state = "Stopped".into();
    let audit = findings::evaluate(
        &facts,
        Role::Active,
        &catalog,
        "2026-11-24".parse().unwrap(),
        &AuditPlaybook::embedded(),
    );
    let finding = audit
        .findings
        .iter()
        .find(|f| f.code == "adsync-stopped")
        .unwrap();
    let policy = crate::plan::PlanPolicy::embedded();
    let decision = decide(
        HostInput {
            role: Role::Active,
            facts: Ok(&facts),
            min_os: None,
        },
        Context {
            catalog: &catalog,
            target: "2.6.91.0".parse().unwrap(),
            policy: &policy,
            as_of: "2026-11-24".parse().unwrap(),
        },
    );
    let reason = decision
        .reasons
        .iter()
        .find(|r| r.code == "adsync-not-running")
        .unwrap();
    assert_eq!(reason.message, finding.message);
    assert_eq!(reason.fix.as_deref(), Some(finding.fix.as_str()));
}

#[test]
fn the_mfa_page_must_be_trusted_by_policy_or_for_some_profile() {
    let catalog = Catalog::embedded();
    let mut facts = crate::testing::healthy_facts("2.6.91.0");
    assert!(!assess(&facts, &limits(&catalog, None)).has(Code::MfaSiteNotTrusted));
    let t = facts.trusted_sites.as_mut().unwrap();
    t.profiles.clear();
    let found = assess(&facts, &limits(&catalog, None));
    let check = found.find(Code::MfaSiteNotTrusted).unwrap();
    assert_eq!(
        check.severity,
        Severity::Info,
        "sync is not affected: no audit warning"
    );
    assert!(
        check
            .message
            .contains("secure.aadcdn.microsoftonline-p.com")
    );
    facts.trusted_sites.as_mut().unwrap().policy = true;
    assert!(!assess(&facts, &limits(&catalog, None)).has(Code::MfaSiteNotTrusted));
    // Not read (an older agent): unknown, not untrusted.
    facts.trusted_sites = None;
    assert!(!assess(&facts, &limits(&catalog, None)).has(Code::MfaSiteNotTrusted));
}

#[test]
fn under_constrained_language_the_one_finding_is_the_language_mode() {
    // What facts.ps1 answers there: its mode, and nothing else it could read.
    let mut facts = Facts::new("windows", "test", "2026-12-07T10:00:00Z".into());
    facts.language_mode = Some("ConstrainedLanguage".into());
    facts.probe_failed(
        "language_mode",
        "PowerShell runs this script in ConstrainedLanguage mode",
    );
    let catalog = Catalog::embedded();
    let a = assess(&facts, &limits(&catalog, None));
    let codes: Vec<Code> = a.checks.iter().map(|c| c.code).collect();
    assert_eq!(
        codes,
        [Code::ConstrainedLanguage],
        "not 'not installed': {:#?}",
        a.checks
    );
}

#[test]
fn adsync_missing_from_an_installed_product_or_in_a_strange_state_is_stopped_and_escaped() {
    let catalog = Catalog::embedded();
    let codes_and_text = |f: &Facts| {
        let a = assess(f, &limits(&catalog, None));
        let stopped: Vec<String> = a
            .checks
            .iter()
            .filter(|c| c.code == Code::AdsyncStopped)
            .map(|c| c.message.clone())
            .collect();
        let absent = a
            .checks
            .iter()
            .any(|c| matches!(c.code, Code::EcNotInstalled | Code::HalfRemovedInstall));
        (absent, stopped)
    };
    // Entra Connect's facts read, its service gone: nothing syncs.
    let mut missing = crate::testing::healthy_facts("2.6.91.0");
    missing.adsync_service.as_mut().unwrap().state = "NotFound".into();
    let (not_installed, stopped) = codes_and_text(&missing);
    assert!(!not_installed);
    assert_eq!(stopped.len(), 1);
    assert!(stopped[0].contains("missing although Entra Connect is installed"));
    // No Entra Connect facts either: not installed (or half removed), not "stopped".
    missing.ec = None;
    let (not_installed, stopped) = codes_and_text(&missing);
    assert!(not_installed && stopped.is_empty(), "{stopped:?}");
    // A state the host made up reaches the terminal escaped.
    let mut odd = crate::testing::healthy_facts("2.6.91.0");
    odd.adsync_service.as_mut().unwrap().state = "Paused\u{1b}[2J".into();
    let (_, stopped) = codes_and_text(&odd);
    assert!(!stopped[0].contains('\u{1b}'), "{stopped:?}");
}

#[test]
fn a_stopped_health_agent_is_named_escaped() {
    let catalog = Catalog::embedded();
    let mut f = crate::testing::healthy_facts("2.6.91.0");
    let agent = &mut f.health_agent.as_mut().unwrap()[0];
    agent.state = "Stopped".into();
    agent.name = "Health\u{1b}]0;owned\u{7}".into();
    let a = assess(&f, &limits(&catalog, None));
    let check = a
        .checks
        .iter()
        .find(|c| c.code == Code::HealthAgentStopped)
        .unwrap();
    assert!(check.message.contains("Health"), "{}", check.message);
    assert!(
        !check.message.contains('\u{1b}') && !check.message.contains('\u{7}'),
        "{}",
        check.message
    );
}
