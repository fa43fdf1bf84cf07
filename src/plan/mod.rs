//! `ecfleet plan`: what to do with every host before the window opens, like `terraform plan`.
//! Facts (gathered live by the audit's fan-out, or read from a saved audit) go through the pure
//! rules ([`rules::decide`]), the hosts are put in waves ([`order::waves`]), and the result is a
//! versioned plan document (docs/json-output.md) that `ecfleet run --plan` can execute and
//! refuse for any host whose facts changed since ([`basis`]).

pub mod basis;
pub mod binding;
pub mod from_audit;
pub mod order;
pub mod policy;
pub mod rules;
pub mod target;

use ecfleet_proto::Facts;
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::inventory::{Inventory, Role};
use crate::platform::MinOs;
use crate::window::MaintenanceWindow;

pub use basis::Basis;
pub use policy::PlanPolicy;
pub use rules::{Action, Decision, Note};
pub use target::Target;

/// Version of the plan document.
pub const PLAN_SCHEMA_VERSION: u32 = 1;
/// The plan document's `kind`, so that a plan is never mistaken for an audit.
pub const PLAN_KIND: &str = "ecfleet-plan";

/// One host to plan: where it sits in the inventory and what is known of it.
#[derive(Debug, Clone)]
pub struct PlanInput {
    pub tenant: String,
    pub host: String,
    pub role: Role,
    pub min_os: Option<MinOs>,
    /// The facts, or why there are none.
    pub facts: Result<Facts, String>,
}

impl PlanInput {
    /// The input for an inventory host, with its facts or why there are none.
    pub fn for_host(host: &crate::inventory::Host, facts: Result<Facts, String>) -> Self {
        PlanInput {
            tenant: host.tenant.clone(),
            host: host.name.clone(),
            role: host.role,
            min_os: host.min_os,
            facts,
        }
    }
}

/// The instant the next maintenance windows are counted from: now, or midnight UTC of `as_of`
/// when the user asked for another day.
pub fn reference_time(as_of: Date, now: Timestamp) -> Timestamp {
    let today = jiff::tz::TimeZone::UTC.to_datetime(now).date();
    if as_of == today {
        return now;
    }
    as_of
        .to_datetime(jiff::civil::Time::midnight())
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp())
        .unwrap_or(now)
}

/// One tenant's maintenance window and where its hosts fall.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantPlan {
    pub name: String,
    pub maintenance_window: Option<String>,
    /// The window open at the plan's reference time, or the next one.
    pub next_window: Option<WindowTimes>,
    pub waves: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowTimes {
    /// RFC 9557 with the zone, e.g. `2026-11-28T22:00:00+00:00[Europe/London]`.
    pub start: String,
    pub end: String,
    /// The same instants in UTC.
    pub start_utc: Timestamp,
    pub end_utc: Timestamp,
}

/// One host's line in the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedHost {
    pub tenant: String,
    pub host: String,
    pub role: Role,
    pub action: Action,
    pub from: Option<String>,
    pub to: Option<String>,
    pub via: Option<String>,
    pub wave: u32,
    pub reasons: Vec<Note>,
    pub warnings: Vec<Note>,
    /// `sha256:` of [`Basis`]; `ecfleet run --plan` refuses the host when it changed.
    pub fingerprint: String,
    pub basis: Basis,
    /// When the facts were collected (absent when there are none).
    pub facts_collected_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub hosts: usize,
    #[serde(rename = "in-place")]
    pub in_place: usize,
    pub migrate: usize,
    #[serde(rename = "two-hop")]
    pub two_hop: usize,
    #[serde(rename = "up-to-date")]
    pub up_to_date: usize,
    pub blocked: usize,
    /// Whether any host needs an action (`--detailed-exitcode` 2).
    pub changes_pending: bool,
}

impl Summary {
    fn of(hosts: &[PlannedHost]) -> Summary {
        let count = |a: Action| hosts.iter().filter(|h| h.action == a).count();
        Summary {
            hosts: hosts.len(),
            in_place: count(Action::InPlace),
            migrate: count(Action::Migrate),
            two_hop: count(Action::TwoHop),
            up_to_date: count(Action::UpToDate),
            blocked: count(Action::Blocked),
            changes_pending: hosts.iter().any(|h| h.action.is_pending()),
        }
    }

    /// `12 in-place, 2 migrate, 1 two-hop, 30 up-to-date, 3 blocked`
    pub fn line(&self) -> String {
        format!(
            "{} in-place, {} migrate, {} two-hop, {} up-to-date, {} blocked",
            self.in_place, self.migrate, self.two_hop, self.up_to_date, self.blocked
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogRef {
    pub source: String,
    pub checked_on: Date,
    pub sha256: String,
}

/// Where the facts came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactsSource {
    /// `live` or `audit`.
    pub kind: String,
    /// The saved audit, for `audit`.
    pub path: Option<String>,
    pub audit_generated_at: Option<String>,
}

/// The plan document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub schema_version: u32,
    pub kind: String,
    pub as_of: Date,
    /// The instant the next maintenance windows are counted from.
    pub reference_time: Timestamp,
    pub generated_at: String,
    pub inventory: String,
    pub facts_source: FactsSource,
    pub catalog: CatalogRef,
    pub target: Target,
    pub policy: PlanPolicy,
    pub summary: Summary,
    pub tenants: Vec<TenantPlan>,
    /// In execution order: by wave, then tenant (inventory order), then host name.
    pub hosts: Vec<PlannedHost>,
    /// Every host of the inventory the plan was made from ([`binding`]): a saved plan runs only
    /// against that inventory. Absent in plans of older ecfleet versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory_hosts: Option<Vec<binding::InventoryHost>>,
}

impl Plan {
    /// With `--detailed-exitcode`: 0 nothing to do, 2 changes pending.
    pub fn detailed_exit_code(&self) -> u8 {
        if self.summary.changes_pending {
            crate::exit::terraform::CHANGES_PENDING
        } else {
            crate::exit::terraform::NO_CHANGES
        }
    }
}

/// A tenant as the plan orders it: its name and maintenance window.
#[derive(Debug, Clone)]
pub struct TenantWindow {
    pub name: String,
    pub window: Option<MaintenanceWindow>,
}

impl TenantWindow {
    /// The inventory's tenants, in inventory order.
    pub fn of(inventory: &Inventory) -> Vec<TenantWindow> {
        inventory
            .tenants
            .iter()
            .map(|t| TenantWindow {
                name: t.name.clone(),
                window: t.maintenance_window.clone(),
            })
            .collect()
    }
}

/// What the plan is made against besides the hosts.
pub struct PlanSettings<'a> {
    pub catalog: &'a Catalog,
    pub target: Target,
    pub policy: PlanPolicy,
    pub as_of: Date,
    pub reference_time: Timestamp,
    pub inventory_path: String,
    /// The whole inventory's hosts ([`binding::snapshot`]).
    pub inventory_hosts: Vec<binding::InventoryHost>,
    pub facts_source: FactsSource,
}

/// Makes the plan: a pure function of its inputs (only `generated_at` is left empty for the
/// caller to stamp, so that the same inputs give the same document).
pub fn build(tenants: &[TenantWindow], inputs: &[PlanInput], settings: PlanSettings<'_>) -> Plan {
    let cx = rules::Context {
        catalog: settings.catalog,
        target: settings.target.version,
        policy: &settings.policy,
        as_of: settings.as_of,
    };
    // Tenants in inventory order, then any tenant only the inputs know.
    let mut tenant_names: Vec<String> = tenants.iter().map(|t| t.name.clone()).collect();
    for i in inputs {
        if !tenant_names.contains(&i.tenant) {
            tenant_names.push(i.tenant.clone());
        }
    }
    let window_of = |name: &str| {
        tenants
            .iter()
            .find(|t| t.name == name)
            .and_then(|t| t.window.as_ref())
    };
    let next_windows: Vec<Option<WindowTimes>> = tenant_names
        .iter()
        .map(|name| window_of(name).map(|w| WindowTimes::next(w, settings.reference_time)))
        .collect();
    let starts: Vec<Option<Timestamp>> = next_windows
        .iter()
        .map(|w| w.as_ref().map(|w| w.start_utc))
        .collect();
    let tenant_positions: std::collections::HashMap<&str, usize> = tenant_names
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let tenant_index = |name: &str| tenant_positions.get(name).copied().unwrap_or(0);
    let slots: Vec<order::Slot> = inputs
        .iter()
        .map(|i| order::Slot {
            tenant: tenant_index(&i.tenant),
            role: i.role,
        })
        .collect();
    let waves = order::waves(&slots, &starts);

    let mut hosts: Vec<PlannedHost> = inputs
        .iter()
        .zip(&waves)
        .map(|(input, wave)| PlannedHost::decide(input, *wave, cx))
        .collect();
    hosts.sort_by_cached_key(|h| (h.wave, tenant_index(&h.tenant), h.host.clone()));
    let tenants = tenant_names
        .iter()
        .zip(next_windows)
        .filter(|(name, _)| hosts.iter().any(|h| &h.tenant == *name))
        .map(|(name, next)| TenantPlan {
            name: name.clone(),
            maintenance_window: window_of(name).map(|w| w.text().to_string()),
            next_window: next,
            waves: waves_of(&hosts, name),
        })
        .collect();
    Plan {
        schema_version: PLAN_SCHEMA_VERSION,
        kind: PLAN_KIND.into(),
        as_of: settings.as_of,
        reference_time: settings.reference_time,
        generated_at: String::new(),
        inventory: settings.inventory_path,
        facts_source: settings.facts_source,
        catalog: CatalogRef {
            source: settings.catalog.source.clone(),
            checked_on: settings.catalog.checked_on,
            sha256: settings.catalog.sha256.clone(),
        },
        target: settings.target,
        policy: settings.policy,
        summary: Summary::of(&hosts),
        tenants,
        hosts,
        inventory_hosts: Some(settings.inventory_hosts),
    }
}

/// The waves a tenant's hosts fall in (the hosts are in wave order).
fn waves_of(hosts: &[PlannedHost], tenant: &str) -> Vec<u32> {
    let mut waves: Vec<u32> = hosts
        .iter()
        .filter(|h| h.tenant == tenant)
        .map(|h| h.wave)
        .collect();
    waves.dedup();
    waves
}

impl WindowTimes {
    /// The window open at `reference`, or the next one.
    fn next(window: &MaintenanceWindow, reference: Timestamp) -> WindowTimes {
        let o = window.next_after(reference);
        WindowTimes {
            start: o.start.to_string(),
            end: o.end.to_string(),
            start_utc: o.start.timestamp(),
            end_utc: o.end.timestamp(),
        }
    }
}

impl PlannedHost {
    /// The rules' decision for one host, with its fingerprint, in the given wave.
    fn decide(input: &PlanInput, wave: u32, cx: rules::Context<'_>) -> PlannedHost {
        let facts = input.facts.as_ref().map_err(String::as_str);
        let decision = rules::decide(
            rules::HostInput {
                role: input.role,
                facts,
                min_os: input.min_os,
            },
            cx,
        );
        let basis = Basis::of(facts.ok());
        PlannedHost {
            tenant: input.tenant.clone(),
            host: input.host.clone(),
            role: input.role,
            action: decision.action,
            from: decision.from,
            to: decision.to,
            via: decision.via,
            wave,
            reasons: decision.reasons,
            warnings: decision.warnings,
            fingerprint: basis.fingerprint(),
            basis,
            facts_collected_at: facts.ok().map(|f| f.collected_at.clone()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
