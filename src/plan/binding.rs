//! What binds a saved plan to the inventory it was made from (docs/plan.md, "A plan runs only
//! against its inventory"): the plan keeps each inventory host's identity (tenant, name,
//! address, port, transport, role, user); `run --plan` and `stage --plan` refuse a plan whose
//! inventory differs, naming the hosts added, removed and changed, as terraform refuses a stale
//! saved plan. The plan's own entries are checked as input too: a host twice, or a tenant or
//! host name that is not a plain name (it becomes a folder on the share), is refused.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::Plan;
use crate::inventory::{HostTransport, Inventory};

/// One inventory host as a plan remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryHost {
    pub tenant: String,
    pub host: String,
    pub address: String,
    pub port: u16,
    /// `ssh` or `winrm`.
    pub transport: String,
    pub role: String,
    pub user: String,
}

/// Every host of `inventory`, in inventory order.
pub fn snapshot(inventory: &Inventory) -> Vec<InventoryHost> {
    inventory
        .hosts()
        .map(|h| InventoryHost {
            tenant: h.tenant.clone(),
            host: h.name.clone(),
            address: h.address.clone(),
            port: h.port,
            transport: match h.transport {
                HostTransport::Ssh(_) => "ssh".into(),
                HostTransport::WinRm(_) => "winrm".into(),
            },
            role: h.role.to_string(),
            user: h.user.clone(),
        })
        .collect()
}

/// A tenant or host name that can be a folder on the share: the inventory's own rule.
pub fn plain_name(name: &str) -> bool {
    crate::inventory::valid_name(name)
}

/// The plan's own entries: each host once, every name plain.
pub fn check_entries(plan: &Plan) -> Result<(), String> {
    let mut seen = HashSet::new();
    let mut problems = Vec::new();
    for (i, h) in plan.hosts.iter().enumerate() {
        for (what, name) in [("tenant", &h.tenant), ("host", &h.host)] {
            if !plain_name(name) {
                problems.push(format!(
                    "hosts[{i}]: the {what} {name:?} is not a plain name (letters, digits, '.', '-', '_')"
                ));
            }
        }
        if !seen.insert(h.host.as_str()) {
            problems.push(format!("hosts[{i}]: {:?} is in the plan twice", h.host));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the plan is not a valid ecfleet plan: {}; fix: make it again with ecfleet plan --out",
            problems.join("; ")
        ))
    }
}

/// What differs between the inventory the plan was made from and `inventory` now.
#[derive(Debug, Default, PartialEq)]
pub struct Differences {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl Differences {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    fn describe(&self) -> String {
        let list = |label: &str, names: &[String]| {
            (!names.is_empty()).then(|| format!("{label} {}", names.join(", ")))
        };
        [
            list("hosts added:", &self.added),
            list("hosts removed:", &self.removed),
            list("hosts changed:", &self.changed),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; ")
    }
}

/// Compares the plan's inventory with `now`.
pub fn differences(then: &[InventoryHost], now: &[InventoryHost]) -> Differences {
    let by_name = |list: &[InventoryHost]| -> BTreeMap<String, InventoryHost> {
        list.iter().map(|h| (h.host.clone(), h.clone())).collect()
    };
    let (then, now) = (by_name(then), by_name(now));
    let mut d = Differences::default();
    for (name, was) in &then {
        match now.get(name) {
            None => d.removed.push(name.clone()),
            Some(is) if is != was => {
                let mut what = Vec::new();
                let mut field = |label: &str, a: String, b: String| {
                    if a != b {
                        what.push(format!("{label} {a} → {b}"));
                    }
                };
                field("tenant", was.tenant.clone(), is.tenant.clone());
                field(
                    "address",
                    format!("{}:{}", was.address, was.port),
                    format!("{}:{}", is.address, is.port),
                );
                field("transport", was.transport.clone(), is.transport.clone());
                field("role", was.role.clone(), is.role.clone());
                field("user", was.user.clone(), is.user.clone());
                d.changed.push(format!("{name} ({})", what.join(", ")));
            }
            Some(_) => {}
        }
    }
    d.added = now
        .keys()
        .filter(|n| !then.contains_key(*n))
        .cloned()
        .collect();
    d
}

/// `plan` may run against `inventory`: its entries are valid, it remembers its inventory, and
/// that inventory's hosts are today's. `plan_file` is named in the messages.
pub fn check(plan: &Plan, plan_file: &str, inventory: &Inventory) -> Result<(), String> {
    check_entries(plan)?;
    let again = format!(
        "fix: plan again (ecfleet plan -i {} --out {plan_file})",
        inventory.path.display()
    );
    let Some(then) = &plan.inventory_hosts else {
        return Err(format!(
            "{plan_file} does not record the inventory it was made from (an older ecfleet made it), so it cannot be checked against {}; {again}",
            inventory.path.display()
        ));
    };
    let d = differences(then, &snapshot(inventory));
    if d.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{plan_file} was made from the inventory {} and {} differs from it ({}): the saved plan is stale; {again}",
        plan.inventory,
        inventory.path.display(),
        d.describe()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, address: &str) -> InventoryHost {
        InventoryHost {
            tenant: "contoso".into(),
            host: name.into(),
            address: address.into(),
            port: 22,
            transport: "ssh".into(),
            role: "active".into(),
            user: "ecfleet".into(),
        }
    }

    #[test]
    fn added_removed_and_changed_hosts_are_named() {
        let then = [
            host("a", "10.0.0.1"),
            host("b", "10.0.0.2"),
            host("c", "10.0.0.3"),
        ];
        let now = [
            host("a", "10.0.0.1"),
            host("c", "10.0.0.9"),
            host("d", "10.0.0.4"),
        ];
        let d = differences(&then, &now);
        assert_eq!(d.added, ["d"]);
        assert_eq!(d.removed, ["b"]);
        assert_eq!(d.changed, ["c (address 10.0.0.3:22 → 10.0.0.9:22)"]);
        assert!(differences(&then, &then).is_empty());
    }

    #[test]
    fn names_that_would_leave_the_share_are_not_plain() {
        for bad in ["../../etc", "..", ".hidden", "a/b", "a\\b", "", "tab\there"] {
            assert!(!plain_name(bad), "{bad:?}");
        }
        for good in ["t01-current", "EC01.contoso.local", "tenant_9"] {
            assert!(plain_name(good), "{good}");
        }
    }
}
