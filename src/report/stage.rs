//! The staging report as a table (per host: where the installer is and what moved) or JSON
//! (docs/json-output.md).

use std::io::{self, Write};

use crate::stage::fleet::{HostStage, StageReport};

pub fn render_stage(
    report: &StageReport,
    json: bool,
    look: super::Look,
    out: &mut dyn Write,
) -> io::Result<()> {
    if json {
        return super::write_json(out, report);
    }
    if let Some(width) = look.width {
        use super::fit::Col;
        let cols = [
            Col::new("tenant", 14),
            Col::new("host", 22),
            Col::new("sent", 24),
            Col::new("installer on the host", 0),
        ];
        let rows: Vec<Vec<String>> = report
            .hosts
            .iter()
            .map(|h| {
                vec![
                    h.tenant.clone(),
                    h.host.clone(),
                    sent_cell(h),
                    where_cell(h),
                ]
            })
            .collect();
        let mut under = Vec::new();
        summary(report, &mut under)?;
        return super::fit::write_fitted(out, &cols, rows, width, &under);
    }
    let mut t = super::new_table(look.color);
    t.set_header(vec!["tenant", "host", "installer on the host", "sent"]);
    for h in &report.hosts {
        t.add_row(vec![
            super::cell(&h.tenant),
            super::cell(&h.host),
            super::cell(where_cell(h)),
            super::cell(sent_cell(h)),
        ]);
    }
    writeln!(out, "{t}")?;
    summary(report, out)
}

/// The line under the stage table: what moved, how fast.
fn summary(report: &StageReport, out: &mut dyn Write) -> io::Result<()> {
    let s = &report.summary;
    let mib = s.bytes_sent as f64 / (1u64 << 20) as f64;
    writeln!(
        out,
        "{} {}: staged on {} of {} ({} already had it), {} failed; {mib:.1} MiB sent in {:.1} s ({:.1} MiB/s)",
        report.installer.product_name,
        report.installer.product_version,
        s.staged,
        super::count(s.hosts, "host"),
        s.already_there,
        s.failed,
        s.seconds,
        if s.seconds > 0.0 {
            mib / s.seconds
        } else {
            0.0
        }
    )
}

fn where_cell(h: &HostStage) -> String {
    match (&h.staged, &h.error) {
        (Some(s), _) => {
            let sig = match &s.signature {
                Some(sig) => format!(", signature {}", sig.status),
                None => String::new(),
            };
            format!("{} (SHA-256 verified{sig})", s.path)
        }
        (None, Some(e)) => format!("FAILED: {e}"),
        (None, None) => "-".into(),
    }
}

fn sent_cell(h: &HostStage) -> String {
    match &h.staged {
        Some(s) if s.already_there => "nothing (already there)".into(),
        Some(s) if s.resumed_from > 0 => format!(
            "{:.1} MiB (resumed after {:.1} MiB)",
            s.sent as f64 / (1u64 << 20) as f64,
            s.resumed_from as f64 / (1u64 << 20) as f64
        ),
        Some(s) if !s.interruptions.is_empty() => format!(
            "{:.1} MiB (the connection dropped {}×; resumed)",
            s.sent as f64 / (1u64 << 20) as f64,
            s.interruptions.len()
        ),
        Some(s) => format!("{:.1} MiB", s.sent as f64 / (1u64 << 20) as f64),
        None => "-".into(),
    }
}
