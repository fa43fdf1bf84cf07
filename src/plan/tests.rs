//! Properties of whole plans: every host appears exactly once, staging servers come before
//! active ones within each tenant, waves count from 1 without gaps, and the same inputs always
//! give the same plan.

use ecfleet_proto::*;
use proptest::prelude::*;

use super::*;

fn facts(version: &str, dotnet: u32, os_build: u32) -> Facts {
    let mut f = Facts::new("lab", "0.1.0", "2026-11-24T09:00:00Z".into());
    f.os = Some(OsFacts {
        caption: "Windows Server".into(),
        version: format!("10.0.{os_build}"),
        build: os_build,
        installation_type: Some("Server".into()),
    });
    f.dotnet = Some(DotNetFacts {
        release: Some(dotnet),
    });
    let on = DotNetTls {
        system_default_tls_versions: Some(1),
        sch_use_strong_crypto: Some(1),
    };
    f.tls12 = Some(Tls12Facts {
        dotnet_x64: on.clone(),
        dotnet_x86: on,
        ..Tls12Facts::default()
    });
    f.disk = Some(DiskFacts {
        system_drive: "C:".into(),
        free_bytes: 40 << 30,
        total_bytes: 100 << 30,
    });
    f.ec = Some(EcFacts {
        engine_product_version: Some(version.into()),
        config_version: Some(version.into()),
        ..EcFacts::default()
    });
    f.adsync_service = Some(ServiceFacts {
        name: "ADSync".into(),
        state: "Running".into(),
        ..ServiceFacts::default()
    });
    f.scheduler = Some(SchedulerFacts::default());
    f.open_ui = Some(OpenUi::default());
    f
}

const VERSIONS: &[&str] = &[
    "2.6.92.0",
    "2.6.3.0",
    "2.5.190.0",
    "2.6.79.0",
    "1.5.30.0",
    "1.6.16.0",
];
const WINDOWS: &[Option<&str>] = &[
    None,
    Some("Sat 22:00-02:00 Europe/London"),
    Some("Sun 01:00-05:00 Europe/Berlin"),
    Some("Fri 23:00-03:00 America/New_York"),
    Some("daily 03:00-04:00 UTC"),
];

/// A generated host: (tenant, staging?, version index, .NET release, OS build, reachable?).
type GenHost = (usize, bool, usize, u32, u32, bool);

/// Tenant window choices and hosts.
fn fleet() -> impl Strategy<Value = (Vec<usize>, Vec<GenHost>)> {
    (1usize..8).prop_flat_map(|tenants| {
        (
            prop::collection::vec(0..WINDOWS.len(), tenants),
            prop::collection::vec(
                (
                    0..tenants,
                    any::<bool>(),
                    0..VERSIONS.len(),
                    prop::sample::select(vec![461308u32, 528040, 528449]),
                    prop::sample::select(vec![9600u32, 14393, 17763, 20348]),
                    prop::bool::weighted(0.9),
                ),
                0..40,
            ),
        )
    })
}

fn make(
    windows: &[usize],
    hosts: &[(usize, bool, usize, u32, u32, bool)],
    catalog: &Catalog,
) -> Plan {
    let tenants: Vec<TenantWindow> = windows
        .iter()
        .enumerate()
        .map(|(i, w)| TenantWindow {
            name: format!("tenant{i}"),
            window: WINDOWS[*w].map(|t| MaintenanceWindow::parse(t).unwrap()),
        })
        .collect();
    let inputs: Vec<PlanInput> = hosts
        .iter()
        .enumerate()
        .map(|(i, (t, staging, v, dotnet, os, reachable))| PlanInput {
            tenant: format!("tenant{t}"),
            host: format!("h{i:03}"),
            role: if *staging {
                Role::Staging
            } else {
                Role::Active
            },
            min_os: None,
            facts: if *reachable {
                Ok(facts(VERSIONS[*v], *dotnet, *os))
            } else {
                Err("cannot connect".into())
            },
        })
        .collect();
    build(
        &tenants,
        &inputs,
        PlanSettings {
            catalog,
            target: target::resolve(
                catalog,
                "2026-11-24".parse().unwrap(),
                target::TargetRequest::Newest,
            )
            .unwrap(),
            policy: PlanPolicy::embedded(),
            as_of: "2026-11-24".parse().unwrap(),
            reference_time: "2026-11-24T12:00:00Z".parse().unwrap(),
            inventory_path: "inventory.toml".into(),
            inventory_hosts: Vec::new(),
            facts_source: FactsSource {
                kind: "live".into(),
                path: None,
                audit_generated_at: None,
            },
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_host_exactly_once_staging_first_and_deterministic((windows, hosts) in fleet()) {
        let catalog = Catalog::embedded();
        let plan = make(&windows, &hosts, &catalog);
        // Every host exactly once.
        let mut names: Vec<&str> = plan.hosts.iter().map(|h| h.host.as_str()).collect();
        names.sort_unstable();
        let expected: Vec<String> = (0..hosts.len()).map(|i| format!("h{i:03}")).collect();
        prop_assert_eq!(names, expected.iter().map(String::as_str).collect::<Vec<_>>());
        prop_assert_eq!(plan.summary.hosts, hosts.len());
        prop_assert_eq!(
            plan.summary.in_place + plan.summary.migrate + plan.summary.two_hop + plan.summary.up_to_date + plan.summary.blocked,
            hosts.len()
        );
        // Staging before active within each tenant.
        for s in plan.hosts.iter().filter(|h| h.role == Role::Staging) {
            for a in plan.hosts.iter().filter(|h| h.role == Role::Active && h.tenant == s.tenant) {
                prop_assert!(s.wave < a.wave, "{} (wave {}) not before {} (wave {})", s.host, s.wave, a.host, a.wave);
            }
        }
        // Waves count from 1 without gaps, and the hosts are listed in wave order.
        let mut waves: Vec<u32> = plan.hosts.iter().map(|h| h.wave).collect();
        prop_assert!(waves.windows(2).all(|w| w[0] <= w[1]));
        waves.dedup();
        prop_assert_eq!(waves, (1..=plan.hosts.iter().map(|h| h.wave).max().unwrap_or(0)).collect::<Vec<_>>());
        // The same inputs give the same plan, and the plan survives its own JSON.
        prop_assert_eq!(&make(&windows, &hosts, &catalog), &plan);
        let json = serde_json::to_string(&plan).unwrap();
        let back: Plan = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }
}

#[test]
fn tenants_with_the_earlier_window_go_first() {
    let catalog = Catalog::embedded();
    // tenant0: Saturday London; tenant1: Friday New York (earlier); both have a staging server.
    let plan = make(
        &[1, 3],
        &[
            (0, false, 1, 528449, 20348, true),
            (0, true, 1, 528449, 20348, true),
            (1, false, 1, 528449, 20348, true),
            (1, true, 1, 528449, 20348, true),
        ],
        &catalog,
    );
    let wave = |h: &str| plan.hosts.iter().find(|x| x.host == h).unwrap().wave;
    assert_eq!(
        (wave("h003"), wave("h002"), wave("h001"), wave("h000")),
        (1, 2, 3, 4)
    );
    let t1 = plan.tenants.iter().find(|t| t.name == "tenant1").unwrap();
    let next = t1.next_window.as_ref().unwrap();
    // Friday 27 Nov 2026 23:00 in New York (EST, UTC-5).
    assert_eq!(next.start_utc.to_string(), "2026-11-28T04:00:00Z");
    assert!(next.start.ends_with("[America/New_York]"), "{}", next.start);
    assert_eq!(
        plan.summary.line(),
        "4 in-place, 0 migrate, 0 two-hop, 0 up-to-date, 0 blocked"
    );
}

/// Three hosts of one tenant: in-place, up-to-date, blocked (.NET); for report tests.
pub(crate) fn small_plan() -> Plan {
    let catalog = Catalog::embedded();
    make(
        &[1],
        &[
            (0, false, 1, 528449, 20348, true),
            (0, false, 0, 528449, 20348, true),
            (0, false, 1, 461308, 20348, true),
        ],
        &catalog,
    )
}

#[test]
fn windows_are_counted_from_now_today_and_from_midnight_on_another_day() {
    let now: Timestamp = "2026-11-24T09:41:07Z".parse().unwrap();
    assert_eq!(reference_time("2026-11-24".parse().unwrap(), now), now);
    assert_eq!(
        reference_time("2026-11-20".parse().unwrap(), now).to_string(),
        "2026-11-20T00:00:00Z"
    );
}
