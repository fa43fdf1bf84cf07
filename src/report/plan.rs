//! The plan for people (a table grouped by tenant, with each tenant's next window and a summary
//! line, like `terraform plan`) and for machines (the plan document as JSON).

use std::io::{self, Write};

use comfy_table::Color;

use crate::plan::{Action, Plan, PlannedHost};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanFormat {
    Table,
    Json,
}

pub fn render_plan(
    plan: &Plan,
    format: PlanFormat,
    look: super::Look,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        PlanFormat::Json => super::write_json(out, plan),
        PlanFormat::Table => match look.width {
            Some(w) => fitted(plan, w, out),
            None => table(plan, look.color, out),
        },
    }
}

/// The plan fitted to `width` columns: a host a row, the tenant's window on its first.
fn fitted(plan: &Plan, width: usize, out: &mut dyn Write) -> io::Result<()> {
    use super::fit::Col;
    let cols = [
        Col::new("tenant", 14),
        Col::new("wave", 4),
        Col::new("host", 22),
        Col::new("action", 10),
        Col::new("version", 21),
        Col::new("why", 0),
    ];
    let rows: Vec<Vec<String>> = plan
        .hosts
        .iter()
        .map(|h| {
            let why = details_cell(h);
            vec![
                h.tenant.clone(),
                h.wave.to_string(),
                h.host.clone(),
                h.action.as_str().to_string(),
                change_cell(h).replace(" → ", "→"),
                if why == "-" { String::new() } else { why },
            ]
        })
        .collect();
    let mut under = Vec::new();
    footer(plan, &mut under)?;
    super::fit::write_fitted(out, &cols, rows, width, &under)
}

fn change_cell(h: &PlannedHost) -> String {
    match (h.action, &h.from, &h.to, &h.via) {
        (Action::UpToDate, Some(from), _, _) => from.clone(),
        (_, Some(from), Some(to), Some(via)) => format!("{from} → {via} → {to}"),
        (_, Some(from), Some(to), None) => format!("{from} → {to}"),
        (_, None, Some(to), _) => format!("? → {to}"),
        _ => "-".into(),
    }
}

fn details_cell(h: &PlannedHost) -> String {
    let mut lines = Vec::new();
    for r in &h.reasons {
        if h.action == Action::Blocked {
            lines.push(format!("✗ {}", r.message));
            if let Some(fix) = &r.fix {
                lines.push(format!("  fix: {fix}"));
            }
        } else if h.action != Action::InPlace && h.action != Action::UpToDate {
            lines.push(r.message.clone());
            if let Some(fix) = &r.fix {
                lines.push(format!("  how: {fix}"));
            }
        }
    }
    for w in &h.warnings {
        lines.push(format!("! {}: {}", w.code, w.message));
    }
    if lines.is_empty() {
        "-".into()
    } else {
        lines.join("\n")
    }
}

fn action_color(a: Action) -> Color {
    match a {
        Action::InPlace => Color::Green,
        Action::Migrate | Action::TwoHop => Color::Yellow,
        Action::UpToDate => Color::DarkGrey,
        Action::Blocked => Color::Red,
    }
}

fn table(plan: &Plan, color: bool, out: &mut dyn Write) -> io::Result<()> {
    let mut t = super::new_table(color);
    t.set_header(vec![
        "tenant / next window",
        "wave",
        "host",
        "role",
        "action",
        "version",
        "reasons, fixes, warnings",
    ]);
    // Tenants in the order their first wave comes.
    let mut tenants: Vec<&str> = Vec::new();
    for h in &plan.hosts {
        if !tenants.contains(&h.tenant.as_str()) {
            tenants.push(&h.tenant);
        }
    }
    for tenant in tenants {
        let window = plan
            .tenants
            .iter()
            .find(|t| t.name == tenant)
            .map(|t| match (&t.maintenance_window, &t.next_window) {
                (Some(w), Some(next)) => {
                    format!(
                        "{w}\nnext: {}",
                        next.start_utc.strftime("%a %Y-%m-%d %H:%M UTC")
                    )
                }
                _ => "no maintenance window".to_string(),
            })
            .unwrap_or_default();
        for (i, h) in plan.hosts.iter().filter(|h| h.tenant == tenant).enumerate() {
            let first = if i == 0 {
                format!("{tenant}\n{window}")
            } else {
                String::new()
            };
            let action = super::cell(h.action.as_str());
            t.add_row(vec![
                super::cell(first),
                super::cell(h.wave.to_string()),
                super::cell(&h.host),
                super::cell(h.role.to_string()),
                if color {
                    action.fg(action_color(h.action))
                } else {
                    action
                },
                super::cell(change_cell(h)),
                super::cell(details_cell(h)),
            ]);
        }
    }
    writeln!(out, "{t}")?;
    footer(plan, out)
}

/// The lines under the plan: the target and the summary.
fn footer(plan: &Plan, out: &mut dyn Write) -> io::Result<()> {
    let target = &plan.target;
    let origin = match (&target.msi, target.source.as_str()) {
        (Some(m), _) => format!("from {} (sha256 {})", m.path.display(), m.sha256),
        (None, "option") => "from --target".to_string(),
        _ => "newest supported build in the catalog".to_string(),
    };
    writeln!(out, "target: {} ({origin})", target.version)?;
    for w in &target.warnings {
        writeln!(out, "  ! {}: {}", w.code, w.message)?;
    }
    writeln!(out, "Plan: {}.", plan.summary.line())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::small_plan;

    #[test]
    fn the_table_groups_by_tenant_and_ends_with_the_summary_line() {
        let plan = small_plan();
        let mut out = Vec::new();
        render_plan(
            &plan,
            PlanFormat::Table,
            super::super::Look::plain(),
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("tenant0"), "{text}");
        assert!(text.contains("2.6.3.0 → 2.6.92.0"), "{text}");
        assert!(
            text.contains("fix: install .NET Framework 4.8 and reboot"),
            "{text}"
        );
        assert!(
            text.trim_end()
                .ends_with("Plan: 1 in-place, 0 migrate, 0 two-hop, 1 up-to-date, 1 blocked."),
            "{text}"
        );
        let mut json = Vec::new();
        render_plan(
            &plan,
            PlanFormat::Json,
            super::super::Look::plain(),
            &mut json,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["hosts"].as_array().unwrap().len(), 3);
    }
}
