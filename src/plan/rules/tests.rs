//! Table-driven tests of the decision rules: every row of issue #3's table and every failure mode
//! of docs/design/DOMAIN.md §7 that facts can show, each as a change to one healthy host.

use ecfleet_proto::*;

use super::*;
use crate::plan::policy::PlanPolicy;

const AS_OF: &str = "2026-11-24";

fn healthy(version: &str) -> Facts {
    crate::testing::healthy_facts(version)
}

struct Row {
    name: &'static str,
    version: &'static str,
    change: fn(&mut Facts),
    role: Role,
    min_os: Option<&'static str>,
    action: Action,
    /// Codes that must be among the reasons.
    reasons: &'static [&'static str],
    /// Codes that must be among the warnings.
    warnings: &'static [&'static str],
    via: Option<&'static str>,
}

fn nothing(_: &mut Facts) {}

const fn row(
    name: &'static str,
    version: &'static str,
    change: fn(&mut Facts),
    action: Action,
    reasons: &'static [&'static str],
) -> Row {
    Row {
        name,
        version,
        change,
        role: Role::Active,
        min_os: None,
        action,
        reasons,
        warnings: &[],
        via: None,
    }
}

fn rows() -> Vec<Row> {
    vec![
        // The table.
        row(
            "newer build available",
            "2.6.3.0",
            nothing,
            Action::InPlace,
            &["newer-build"],
        ),
        row(
            "2012 R2 with a 1.x build, target 2.x",
            "1.6.16.0",
            |f| {
                let os = f.os.as_mut().unwrap();
                os.build = 9600;
                os.caption = "Microsoft Windows Server 2012 R2 Standard".into();
            },
            Action::Migrate,
            &["os-unsupported"],
        ),
        Row {
            min_os: Some("2022"),
            ..row(
                "OS below the inventory's min_os",
                "2.6.3.0",
                |f| f.os.as_mut().unwrap().build = 17763,
                Action::Migrate,
                &["os-policy"],
            )
        },
        Row {
            min_os: Some("2019"),
            ..row(
                "a current host below policy still migrates",
                "2.6.91.0",
                |f| f.os.as_mut().unwrap().build = 14393,
                Action::Migrate,
                &["os-policy"],
            )
        },
        Row {
            via: Some("1.6.16.0"),
            ..row(
                "very old 1.x on Server 2019: two hops",
                "1.5.30.0",
                |f| f.os.as_mut().unwrap().build = 17763,
                Action::TwoHop,
                &["two-hop"],
            )
        },
        row(
            "recalled build",
            "2.6.79.0",
            nothing,
            Action::Migrate,
            &["recalled-build"],
        ),
        row(
            "at the target, readings agree",
            "2.6.91.0",
            nothing,
            Action::UpToDate,
            &["at-target"],
        ),
        row(
            "above the target",
            "2.6.92.0",
            nothing,
            Action::UpToDate,
            &["at-target"],
        ),
        row(
            ".NET below 4.7.2",
            "2.6.3.0",
            |f| {
                f.dotnet = Some(DotNetFacts {
                    release: Some(461308),
                })
            },
            Action::Blocked,
            &["dotnet-too-old"],
        ),
        row(
            "TLS 1.2 not enforced for .NET",
            "2.6.3.0",
            |f| {
                f.tls12.as_mut().unwrap().dotnet_x86.sch_use_strong_crypto = None;
            },
            Action::Blocked,
            &["tls12-not-enforced"],
        ),
        row(
            "TLS 1.2 disabled in SCHANNEL",
            "2.6.3.0",
            |f| {
                f.tls12.as_mut().unwrap().schannel_client.enabled = Some(0);
            },
            Action::Blocked,
            &["tls12-not-enforced"],
        ),
        row(
            "less than 2 GB free",
            "2.6.3.0",
            |f| f.disk.as_mut().unwrap().free_bytes = 1 << 30,
            Action::Blocked,
            &["disk-low"],
        ),
        row(
            "versions disagree (half-upgraded)",
            "2.6.3.0",
            |f| {
                f.ec.as_mut().unwrap().engine_product_version = Some("2.6.84.0".into());
                f.scheduler.as_mut().unwrap().scheduler_suspended = Some(true);
            },
            Action::Blocked,
            &["version-mismatch"],
        ),
        row(
            "half-upgraded to the target is not up to date",
            "2.6.84.0",
            |f| {
                f.ec.as_mut().unwrap().engine_product_version = Some("2.6.91.0".into());
            },
            Action::Blocked,
            &["version-mismatch"],
        ),
        row(
            "half-removed earlier install",
            "2.6.3.0",
            |f| {
                f.uninstall = Some(vec![UninstallEntry {
                    display_name: "Microsoft Azure AD Connect synchronization services".into(),
                    display_version: Some("2.6.3.0".into()),
                    key: None,
                    wow6432: false,
                }]);
                f.ec = None;
                f.adsync_service.as_mut().unwrap().state = "NotFound".into();
            },
            Action::Blocked,
            &["half-removed-install"],
        ),
        row(
            "nothing installed",
            "2.6.3.0",
            |f| {
                f.ec = None;
                f.uninstall = Some(vec![]);
                f.adsync_service = None;
            },
            Action::Blocked,
            &["ec-not-installed"],
        ),
        row(
            "wizard open",
            "2.6.3.0",
            |f| f.open_ui.as_mut().unwrap().wizard = true,
            Action::Blocked,
            &["wizard-open"],
        ),
        row(
            "Sync Service Manager open",
            "2.6.3.0",
            |f| f.open_ui.as_mut().unwrap().sync_service_manager = true,
            Action::Blocked,
            &["sync-service-manager-open"],
        ),
        row(
            "sync run in progress",
            "2.6.3.0",
            |f| f.scheduler.as_mut().unwrap().sync_cycle_in_progress = Some(true),
            Action::Blocked,
            &["sync-in-progress"],
        ),
        // docs/design/DOMAIN.md §7 failure modes facts can show, beyond the table.
        row(
            "ADSync service stopped (LocalDB trouble, §7 #9/#10)",
            "2.6.3.0",
            |f| f.adsync_service.as_mut().unwrap().state = "Stopped".into(),
            Action::Blocked,
            &["adsync-not-running"],
        ),
        row(
            "Server Core",
            "2.6.3.0",
            |f| f.os.as_mut().unwrap().installation_type = Some("Server Core".into()),
            Action::Migrate,
            &["server-core"],
        ),
        row(
            "several prerequisites at once",
            "2.6.3.0",
            |f| {
                f.dotnet = Some(DotNetFacts {
                    release: Some(394802),
                });
                f.tls12
                    .as_mut()
                    .unwrap()
                    .dotnet_x64
                    .system_default_tls_versions = Some(0);
                f.disk.as_mut().unwrap().free_bytes = 100 << 20;
            },
            Action::Blocked,
            &["dotnet-too-old", "tls12-not-enforced", "disk-low"],
        ),
        row(
            "a probe failed: .NET unknown",
            "2.6.3.0",
            |f| {
                f.dotnet = None;
                f.probe_failed("dotnet", "access denied");
            },
            Action::Blocked,
            &["prerequisite-unknown"],
        ),
        row(
            "the version could not be read",
            "2.6.3.0",
            |f| {
                f.ec = Some(EcFacts::default());
                f.probe_failed("ec", "ADSync module not found");
            },
            Action::Blocked,
            &["version-unknown"],
        ),
        row(
            "a 2012 R2 host migrates whatever its old prerequisites",
            "1.6.16.0",
            |f| {
                f.os.as_mut().unwrap().build = 9600;
                f.dotnet = Some(DotNetFacts {
                    release: Some(378675),
                });
                f.tls12 = Some(Tls12Facts::default());
            },
            Action::Migrate,
            &["os-unsupported"],
        ),
        // Warnings that do not block.
        Row {
            warnings: &["customised-default-rules", "custom-rules-precedence"],
            ..row(
                "customised default rules (§7 #6)",
                "2.6.3.0",
                |f| {
                    f.sync_rules = Some(SyncRuleFacts {
                        customised_default_rules: 2,
                        custom_rules: 5,
                        custom_rules_outside_0_99: 1,
                    });
                },
                Action::InPlace,
                &["newer-build"],
            )
        },
        Row {
            warnings: &["health-agent-disabled"],
            ..row(
                "Health Agent disabled (§7 #8)",
                "2.6.3.0",
                |f| {
                    f.health_agent.as_mut().unwrap()[0].state = "Stopped".into();
                },
                Action::InPlace,
                &["newer-build"],
            )
        },
        Row {
            warnings: &["auto-upgrade-enabled"],
            ..row(
                "auto-upgrade enabled",
                "2.6.3.0",
                |f| f.auto_upgrade.as_mut().unwrap().state = "Enabled".into(),
                Action::InPlace,
                &["newer-build"],
            )
        },
        Row {
            warnings: &["swing-suggested", "sync-stopped"],
            ..row(
                "not upgraded in 12+ months, sync stopped",
                "2.4.18.0",
                nothing,
                Action::InPlace,
                &["newer-build"],
            )
        },
        Row {
            warnings: &["retiring-build"],
            ..row(
                "retiring build",
                "2.5.190.0",
                nothing,
                Action::InPlace,
                &["newer-build"],
            )
        },
        Row {
            role: Role::Staging,
            warnings: &["staging-server"],
            ..row(
                "staging server",
                "2.6.3.0",
                |f| f.scheduler.as_mut().unwrap().staging_mode_enabled = Some(true),
                Action::InPlace,
                &["newer-build"],
            )
        },
        Row {
            warnings: &["sync-errors"],
            ..row(
                "last export failed",
                "2.6.3.0",
                |f| {
                    crate::testing::newest_run(f, "Export").result =
                        "completed-export-errors".into()
                },
                Action::InPlace,
                &["newer-build"],
            )
        },
        Row {
            warnings: &["sync-errors"],
            ..row(
                "LocalDB full (§7 #10) shows in the runs",
                "2.6.3.0",
                |f| {
                    crate::testing::newest_run(f, "Delta Import").result =
                        "stopped-database-disk-full".into()
                },
                Action::InPlace,
                &["newer-build"],
            )
        },
        Row {
            warnings: &["sync-cycle-disabled"],
            ..row(
                "scheduler disabled",
                "2.6.3.0",
                |f| f.scheduler.as_mut().unwrap().sync_cycle_enabled = Some(false),
                Action::InPlace,
                &["newer-build"],
            )
        },
        Row {
            warnings: &["health-agent-disabled"],
            ..row(
                "up to date keeps the warnings that still matter",
                "2.6.91.0",
                |f| {
                    f.health_agent.as_mut().unwrap()[0].state = "Stopped".into();
                    f.auto_upgrade.as_mut().unwrap().state = "Enabled".into();
                },
                Action::UpToDate,
                &["at-target"],
            )
        },
        // docs/design/DOMAIN.md §7 #10–#12: the sync engine's own state.
        row(
            "LocalDB at its 10 GB limit",
            "2.6.3.0",
            |f| f.database.as_mut().unwrap().data_file_bytes = Some(10_400_000_000),
            Action::Blocked,
            &["localdb-full"],
        ),
        row(
            "the last run stopped on a full database",
            "2.6.3.0",
            |f| f.run_history.as_mut().unwrap()[0].result = "stopped-database-disk-full".into(),
            Action::Blocked,
            &["localdb-full"],
        ),
        Row {
            warnings: &["localdb-large"],
            ..row(
                "LocalDB over 8 GB",
                "2.6.3.0",
                |f| f.database.as_mut().unwrap().data_file_bytes = Some(9 << 30),
                Action::InPlace,
                &["newer-build"],
            )
        },
        Row {
            warnings: &["localdb-full"],
            ..row(
                "up to date with a full LocalDB",
                "2.6.91.0",
                |f| f.database.as_mut().unwrap().data_file_bytes = Some(10_400_000_000),
                Action::UpToDate,
                &["at-target"],
            )
        },
        row(
            "the Entra connector is missing",
            "2.6.3.0",
            |f| f.connectors.as_mut().unwrap().truncate(1),
            Action::Blocked,
            &["entra-connector-missing"],
        ),
        Row {
            warnings: &["engine-config-edited"],
            ..row(
                "miiserver.exe.config edited, target 2.6.91.0 merges it",
                "2.6.3.0",
                |f| f.engine_config.as_mut().unwrap().edited_after_install = true,
                Action::InPlace,
                &["newer-build"],
            )
        },
    ]
}

fn context<'a>(catalog: &'a Catalog, policy: &'a PlanPolicy, target: &str) -> Context<'a> {
    Context {
        catalog,
        target: target.parse().unwrap(),
        policy,
        as_of: AS_OF.parse().unwrap(),
    }
}

fn codes(notes: &[Note]) -> Vec<&str> {
    notes.iter().map(|n| n.code.as_str()).collect()
}

#[test]
fn every_row_of_the_table() {
    let catalog = Catalog::embedded();
    let policy = PlanPolicy::embedded();
    let cx = context(&catalog, &policy, "2.6.91.0");
    for r in rows() {
        let mut facts = healthy(r.version);
        (r.change)(&mut facts);
        let d = decide(
            HostInput {
                role: r.role,
                facts: Ok(&facts),
                min_os: r.min_os.map(|m| MinOs::parse(m).unwrap()),
            },
            cx,
        );
        assert_eq!(d.action, r.action, "{}: {d:#?}", r.name);
        for code in r.reasons {
            assert!(
                codes(&d.reasons).contains(code),
                "{}: reason {code} missing in {:?}",
                r.name,
                codes(&d.reasons)
            );
        }
        for code in r.warnings {
            assert!(
                codes(&d.warnings).contains(code),
                "{}: warning {code} missing in {:?}",
                r.name,
                codes(&d.warnings)
            );
        }
        assert_eq!(d.via.as_deref(), r.via, "{}", r.name);
        if d.action == Action::Blocked {
            for reason in &d.reasons {
                assert!(
                    reason.fix.as_deref().is_some_and(|f| !f.is_empty()),
                    "{}: {} has no fix",
                    r.name,
                    reason.code
                );
            }
        }
        match d.action {
            Action::UpToDate => assert_eq!(d.to, None, "{}", r.name),
            _ => assert_eq!(d.to.as_deref(), Some("2.6.91.0"), "{}", r.name),
        }
    }
}

#[test]
fn the_fixes_say_what_to_do() {
    let catalog = Catalog::embedded();
    let policy = PlanPolicy::embedded();
    let cx = context(&catalog, &policy, "2.6.91.0");
    let fix_for = |change: fn(&mut Facts)| {
        let mut f = healthy("2.6.3.0");
        change(&mut f);
        let d = decide(
            HostInput {
                role: Role::Active,
                facts: Ok(&f),
                min_os: None,
            },
            cx,
        );
        d.reasons[0].fix.clone().unwrap()
    };
    assert!(
        fix_for(|f| f.dotnet = Some(DotNetFacts {
            release: Some(461308)
        }))
        .contains("install .NET Framework 4.8 and reboot")
    );
    let tls = fix_for(|f| f.tls12 = Some(Tls12Facts::default()));
    assert!(
        tls.contains("TLS 1.2 registry values for .NET")
            && tls.contains("both hives")
            && tls.ends_with("and reboot"),
        "{tls}"
    );
}

#[test]
fn an_unreachable_host_is_blocked_with_the_reason() {
    let catalog = Catalog::embedded();
    let policy = PlanPolicy::embedded();
    let d = decide(
        HostInput {
            role: Role::Active,
            facts: Err("cannot connect to 10.0.0.5:22: connection refused"),
            min_os: None,
        },
        context(&catalog, &policy, "2.6.91.0"),
    );
    assert_eq!(d.action, Action::Blocked);
    assert_eq!(d.reasons[0].code, "unreachable");
    assert!(d.reasons[0].message.contains("connection refused"));
    assert_eq!(d.from, None);
}

#[test]
fn the_playbook_min_os_applies_when_the_inventory_sets_none() {
    let catalog = Catalog::embedded();
    let mut policy = PlanPolicy::embedded();
    policy.min_os_build = 17763;
    let mut f = healthy("2.6.3.0");
    f.os.as_mut().unwrap().build = 14393;
    let d = decide(
        HostInput {
            role: Role::Active,
            facts: Ok(&f),
            min_os: None,
        },
        context(&catalog, &policy, "2.6.91.0"),
    );
    assert_eq!(
        (d.action, d.reasons[0].code.as_str()),
        (Action::Migrate, "os-policy")
    );
    // The inventory's own value wins over the playbook's.
    let d = decide(
        HostInput {
            role: Role::Active,
            facts: Ok(&f),
            min_os: Some(MinOs { build: 14393 }),
        },
        context(&catalog, &policy, "2.6.91.0"),
    );
    assert_eq!(d.action, Action::InPlace);
}

#[test]
fn target_warnings_name_unconfirmed_and_deadline_missing_targets() {
    let mut catalog = Catalog::embedded();
    let as_of = AS_OF.parse().unwrap();
    assert!(target_warnings(&catalog, "2.6.91.0".parse().unwrap(), as_of).is_empty());
    // A build seen only in community material (none is, on 2026-12-07: pretend).
    catalog.releases[0].confirmed = false;
    assert_eq!(
        codes(&target_warnings(
            &catalog,
            "2.6.92.0".parse().unwrap(),
            as_of
        )),
        ["target-unconfirmed"]
    );
    let old = target_warnings(&catalog, "2.6.3.0".parse().unwrap(), as_of);
    assert_eq!(codes(&old), ["target-below-deadline"]);
    assert!(old[0].message.contains("2027"), "{}", old[0].message);
}

#[test]
fn an_edited_engine_config_blocks_only_targets_that_need_the_redirect() {
    let catalog = Catalog::embedded();
    let policy = PlanPolicy::embedded();
    let decide_for = |target: &str, redirect: bool| {
        let mut f = healthy("2.5.79.0");
        let config = f.engine_config.as_mut().unwrap();
        config.edited_after_install = true;
        config.diagnostic_source_redirect = redirect;
        decide(
            HostInput {
                role: Role::Active,
                facts: Ok(&f),
                min_os: None,
            },
            context(&catalog, &policy, target),
        )
    };
    let d = decide_for("2.5.190.0", false);
    assert_eq!(d.action, Action::Blocked);
    assert_eq!(codes(&d.reasons), ["engine-config-needs-redirect"]);
    let fix = d.reasons[0].fix.as_deref().unwrap();
    assert!(fix.contains("cc7b13ffcd2ddd51") && fix.contains("2.6.84.0 or newer"));
    assert!(codes(&d.warnings).contains(&"engine-config-edited"));
    assert_eq!(decide_for("2.5.190.0", true).action, Action::InPlace);
    assert_eq!(decide_for("2.6.91.0", false).action, Action::InPlace);
}

#[test]
fn a_blocked_host_does_not_repeat_a_reason_as_a_warning() {
    let catalog = Catalog::embedded();
    let policy = PlanPolicy::embedded();
    let mut f = healthy("2.6.3.0");
    f.database.as_mut().unwrap().data_file_bytes = Some(10_400_000_000);
    f.connectors.as_mut().unwrap().truncate(1);
    let d = decide(
        HostInput {
            role: Role::Active,
            facts: Ok(&f),
            min_os: None,
        },
        context(&catalog, &policy, "2.6.91.0"),
    );
    assert_eq!(
        codes(&d.reasons),
        ["localdb-full", "entra-connector-missing"]
    );
    assert!(
        !codes(&d.warnings)
            .iter()
            .any(|w| codes(&d.reasons).contains(w)),
        "{:?}",
        codes(&d.warnings)
    );
}
