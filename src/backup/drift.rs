//! Configuration drift: what changed in a host's sync configuration between its previous backup
//! and this one. Custom (and edited default) sync rules added, removed or changed, by
//! identifier, with the attributes that changed; connectors added, removed or changed (partition
//! filters above all); the scheduler's interval, staging mode and cycle switch; global settings.
//! A pure function of two readings ([`ecfleet_proto::backup::Configuration`]).

use std::collections::BTreeMap;

use ecfleet_proto::backup::{Configuration, Connector, SyncRule};
use serde::Serialize;

/// One attribute that changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub from: String,
    pub to: String,
}

/// A rule or connector, by identifier and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub identifier: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changed {
    pub identifier: String,
    pub name: String,
    pub changes: Vec<FieldChange>,
}

/// The global setting an upgrade changes by itself.
pub const SERVER_CONFIGURATION_VERSION: &str = "Microsoft.Synchronize.ServerConfigurationVersion";

/// What changed since `compared_with`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// The previous backup's name.
    pub compared_with: String,
    pub rules_added: Vec<Item>,
    pub rules_removed: Vec<Item>,
    pub rules_changed: Vec<Changed>,
    pub connectors_added: Vec<Item>,
    pub connectors_removed: Vec<Item>,
    pub connectors_changed: Vec<Changed>,
    /// `interval_minutes`, `staging_mode_enabled`, `sync_cycle_enabled`.
    pub scheduler: Vec<FieldChange>,
    pub global_settings: Vec<FieldChange>,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.only_global_settings() && self.global_settings.is_empty()
    }

    /// No rule, connector or scheduler change (global settings aside).
    fn only_global_settings(&self) -> bool {
        self.rules_added.is_empty()
            && self.rules_removed.is_empty()
            && self.rules_changed.is_empty()
            && self.connectors_added.is_empty()
            && self.connectors_removed.is_empty()
            && self.connectors_changed.is_empty()
            && self.scheduler.is_empty()
    }

    /// Whether an administrator changed something: any change but the configuration version
    /// an upgrade moves (`Microsoft.Synchronize.ServerConfigurationVersion`).
    pub fn changes_configuration(&self) -> bool {
        !self.only_global_settings()
            || self
                .global_settings
                .iter()
                .any(|c| c.field != SERVER_CONFIGURATION_VERSION)
    }

    /// One line per change, for a table.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let changes = |c: &[FieldChange]| {
            c.iter()
                .map(|f| format!("{} {} → {}", f.field, f.from, f.to))
                .collect::<Vec<_>>()
                .join("; ")
        };
        for r in &self.rules_added {
            out.push(format!("rule added: {} ({})", r.name, r.identifier));
        }
        for r in &self.rules_removed {
            out.push(format!("rule removed: {} ({})", r.name, r.identifier));
        }
        for r in &self.rules_changed {
            out.push(format!("rule changed: {}: {}", r.name, changes(&r.changes)));
        }
        for c in &self.connectors_added {
            out.push(format!("connector added: {}", c.name));
        }
        for c in &self.connectors_removed {
            out.push(format!("connector removed: {}", c.name));
        }
        for c in &self.connectors_changed {
            out.push(format!(
                "connector changed: {}: {}",
                c.name,
                changes(&c.changes)
            ));
        }
        if !self.scheduler.is_empty() {
            out.push(format!("scheduler: {}", changes(&self.scheduler)));
        }
        if !self.global_settings.is_empty() {
            out.push(format!(
                "global settings: {}",
                changes(&self.global_settings)
            ));
        }
        out
    }
}

fn field(out: &mut Vec<FieldChange>, name: &str, from: impl ToString, to: impl ToString) {
    let (from, to) = (from.to_string(), to.to_string());
    if from != to {
        out.push(FieldChange {
            field: name.into(),
            from,
            to,
        });
    }
}

/// A list as text: `[]` when empty, else its items joined by `; `.
fn listed(items: &[String]) -> String {
    if items.is_empty() {
        "[]".into()
    } else {
        items.join("; ")
    }
}

fn rule_changes(a: &SyncRule, b: &SyncRule) -> Vec<FieldChange> {
    let mut out = Vec::new();
    field(&mut out, "name", &a.name, &b.name);
    field(&mut out, "direction", &a.direction, &b.direction);
    field(&mut out, "precedence", a.precedence, b.precedence);
    field(&mut out, "connector", &a.connector, &b.connector);
    field(&mut out, "disabled", a.disabled, b.disabled);
    field(&mut out, "scoping", listed(&a.scoping), listed(&b.scoping));
    field(&mut out, "join", listed(&a.join), listed(&b.join));
    field(
        &mut out,
        "attribute flows",
        listed(&a.attribute_flows),
        listed(&b.attribute_flows),
    );
    out
}

fn connector_changes(a: &Connector, b: &Connector) -> Vec<FieldChange> {
    let mut out = Vec::new();
    field(&mut out, "name", &a.name, &b.name);
    field(
        &mut out,
        "type",
        a.connector_type.as_deref().unwrap_or("-"),
        b.connector_type.as_deref().unwrap_or("-"),
    );
    let by_name = |c: &Connector| {
        c.partitions
            .iter()
            .map(|p| (p.name.clone(), p.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    let (before, after) = (by_name(a), by_name(b));
    for name in before
        .keys()
        .chain(after.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let label = format!("partition {name}");
        match (before.get(name), after.get(name)) {
            (Some(p), Some(q)) => {
                field(
                    &mut out,
                    &format!("{label} selected"),
                    p.selected,
                    q.selected,
                );
                field(
                    &mut out,
                    &format!("{label} inclusions"),
                    listed(&p.inclusions),
                    listed(&q.inclusions),
                );
                field(
                    &mut out,
                    &format!("{label} exclusions"),
                    listed(&p.exclusions),
                    listed(&q.exclusions),
                );
            }
            (Some(_), None) => field(&mut out, &label, "present", "gone"),
            (None, Some(_)) => field(&mut out, &label, "absent", "added"),
            (None, None) => {}
        }
    }
    out
}

/// Items keyed by identifier: added, removed, and changed (with their field changes).
fn compare<T>(
    before: &[T],
    after: &[T],
    key: impl Fn(&T) -> (&str, &str),
    changes: impl Fn(&T, &T) -> Vec<FieldChange>,
) -> (Vec<Item>, Vec<Item>, Vec<Changed>) {
    fn index<'a, T>(items: &'a [T], key: &impl Fn(&T) -> (&str, &str)) -> BTreeMap<String, &'a T> {
        items.iter().map(|i| (key(i).0.to_lowercase(), i)).collect()
    }
    let (old, new) = (index(before, &key), index(after, &key));
    let item = |t: &T| Item {
        identifier: key(t).0.to_string(),
        name: key(t).1.to_string(),
    };
    let added = new
        .iter()
        .filter(|(k, _)| !old.contains_key(*k))
        .map(|(_, t)| item(t))
        .collect();
    let removed = old
        .iter()
        .filter(|(k, _)| !new.contains_key(*k))
        .map(|(_, t)| item(t))
        .collect();
    let changed = new
        .iter()
        .filter_map(|(k, t)| {
            let was = old.get(k)?;
            let c = changes(was, t);
            (!c.is_empty()).then(|| Changed {
                identifier: key(t).0.to_string(),
                name: key(t).1.to_string(),
                changes: c,
            })
        })
        .collect();
    (added, removed, changed)
}

/// What changed from `before` (the backup named `compared_with`) to `after`.
pub fn diff(compared_with: &str, before: &Configuration, after: &Configuration) -> Drift {
    let rules = |c: &Configuration| -> Vec<SyncRule> {
        c.custom_rules
            .iter()
            .chain(&c.customised_default_rules)
            .cloned()
            .collect()
    };
    let (rules_added, rules_removed, rules_changed) = compare(
        &rules(before),
        &rules(after),
        |r: &SyncRule| (r.identifier.as_str(), r.name.as_str()),
        rule_changes,
    );
    let (connectors_added, connectors_removed, connectors_changed) = compare(
        &before.connectors,
        &after.connectors,
        |c: &Connector| (c.identifier.as_str(), c.name.as_str()),
        connector_changes,
    );
    let opt = |v: Option<String>| v.unwrap_or_else(|| "unknown".into());
    let mut scheduler = Vec::new();
    let (s, t) = (&before.scheduler, &after.scheduler);
    field(
        &mut scheduler,
        "interval_minutes",
        opt(s.interval_minutes.map(|m| m.to_string())),
        opt(t.interval_minutes.map(|m| m.to_string())),
    );
    field(
        &mut scheduler,
        "staging_mode_enabled",
        opt(s.staging_mode_enabled.map(|m| m.to_string())),
        opt(t.staging_mode_enabled.map(|m| m.to_string())),
    );
    field(
        &mut scheduler,
        "sync_cycle_enabled",
        opt(s.sync_cycle_enabled.map(|m| m.to_string())),
        opt(t.sync_cycle_enabled.map(|m| m.to_string())),
    );
    let mut global_settings = Vec::new();
    let keys: std::collections::BTreeSet<&String> = before
        .global_settings
        .keys()
        .chain(after.global_settings.keys())
        .collect();
    for key in keys {
        let get = |c: &Configuration| {
            c.global_settings
                .get(key)
                .cloned()
                .unwrap_or_else(|| "-".into())
        };
        field(&mut global_settings, key, get(before), get(after));
    }
    Drift {
        compared_with: compared_with.into(),
        rules_added,
        rules_removed,
        rules_changed,
        connectors_added,
        connectors_removed,
        connectors_changed,
        scheduler,
        global_settings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecfleet_proto::backup::{Partition, SchedulerSettings};

    #[test]
    fn an_upgrade_s_own_version_change_is_no_configuration_change() {
        let version = |from: &str, to: &str| FieldChange {
            field: SERVER_CONFIGURATION_VERSION.into(),
            from: from.into(),
            to: to.into(),
        };
        let upgraded = Drift {
            global_settings: vec![version("2.6.3.0", "2.6.92.0")],
            ..Drift::default()
        };
        assert!(!upgraded.is_empty() && !upgraded.changes_configuration());
        let edited = Drift {
            scheduler: vec![FieldChange {
                field: "interval_minutes".into(),
                from: "30".into(),
                to: "60".into(),
            }],
            ..upgraded.clone()
        };
        assert!(edited.changes_configuration());
        let setting = Drift {
            global_settings: vec![FieldChange {
                field: "Microsoft.Synchronize.StagingMode".into(),
                from: "False".into(),
                to: "True".into(),
            }],
            ..Drift::default()
        };
        assert!(setting.changes_configuration());
    }

    fn rule(id: &str, name: &str, precedence: u32) -> SyncRule {
        SyncRule {
            identifier: id.into(),
            name: name.into(),
            direction: "Inbound".into(),
            precedence,
            connector: "contoso.local".into(),
            disabled: false,
            scoping: vec!["objectClass EQUAL user".into()],
            join: vec![],
            attribute_flows: vec!["department -> department (Direct)".into()],
        }
    }

    fn config() -> Configuration {
        Configuration {
            custom_rules: vec![rule("r1", "Department", 50), rule("r2", "Office", 51)],
            customised_default_rules: vec![],
            connectors: vec![Connector {
                identifier: "c1".into(),
                name: "contoso.local".into(),
                connector_type: Some("AD".into()),
                partitions: vec![Partition {
                    name: "DC=contoso,DC=local".into(),
                    selected: true,
                    inclusions: vec!["OU=Users".into()],
                    exclusions: vec![],
                }],
            }],
            scheduler: SchedulerSettings {
                interval_minutes: Some(30),
                staging_mode_enabled: Some(false),
                sync_cycle_enabled: Some(true),
            },
            global_settings: [(
                "Microsoft.Synchronize.ServerConfigurationVersion".to_string(),
                "2.4.18.0".to_string(),
            )]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn the_same_configuration_has_no_drift() {
        let d = diff("prev", &config(), &config());
        assert!(d.is_empty(), "{d:?}");
        assert!(d.lines().is_empty());
    }

    #[test]
    fn rules_are_matched_by_identifier_whatever_their_case_and_order() {
        let mut after = config();
        after.custom_rules.reverse();
        after.custom_rules[0].identifier = "R2".into();
        assert!(diff("prev", &config(), &after).is_empty());
    }

    #[test]
    fn added_removed_and_changed_rules_connectors_and_scheduler_are_named() {
        let mut after = config();
        after.custom_rules.remove(1);
        after.custom_rules[0].precedence = 60;
        after.custom_rules[0]
            .scoping
            .push("department EQUAL Sales".into());
        after.custom_rules.push(rule("r3", "Extension", 52));
        after.connectors[0].partitions[0]
            .inclusions
            .push("OU=Contractors".into());
        after.scheduler.interval_minutes = Some(60);
        after.scheduler.staging_mode_enabled = Some(true);
        let d = diff("EntraConnect-config-2026-12-01-nightly", &config(), &after);
        assert_eq!(
            d.rules_added,
            vec![Item {
                identifier: "r3".into(),
                name: "Extension".into()
            }]
        );
        assert_eq!(d.rules_removed[0].name, "Office");
        let changed = &d.rules_changed[0];
        assert_eq!(changed.name, "Department");
        let fields: Vec<&str> = changed.changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["precedence", "scoping"]);
        assert_eq!(changed.changes[0].from, "50");
        assert_eq!(changed.changes[0].to, "60");
        assert_eq!(
            d.connectors_changed[0].changes[0].field,
            "partition DC=contoso,DC=local inclusions"
        );
        assert_eq!(d.scheduler.len(), 2);
        let lines = d.lines();
        assert!(
            lines.contains(&"rule added: Extension (r3)".to_string()),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l
                    == "scheduler: interval_minutes 30 → 60; staging_mode_enabled false → true"),
            "{lines:?}"
        );
    }
}
