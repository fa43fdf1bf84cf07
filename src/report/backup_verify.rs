//! `ecfleet backup verify`'s report: per backup on the share, verified (its files and size),
//! damaged (what does not match) or incomplete (no manifest), then what the share holds as the
//! backups name it and as the disk stores it; or JSON (docs/json-output.md).

use std::io::{self, Write};

use comfy_table::Color;

use super::backup::{BackupFormat, size};
use crate::backup::verify::{CheckStatus, VerifyReport};

pub fn render_backup_verify(
    report: &VerifyReport,
    format: BackupFormat,
    color: bool,
    out: &mut dyn Write,
) -> io::Result<()> {
    if format == BackupFormat::Json {
        return super::write_json(out, report);
    }
    let mut t = super::new_table(color);
    t.set_header(vec!["tenant", "host", "backup", "result"]);
    for b in &report.backups {
        let (result, tint) = match b.status {
            CheckStatus::Verified => (
                format!("verified: {} files, {}", b.files, size(b.bytes)),
                Color::Green,
            ),
            CheckStatus::Damaged => (
                format!("DAMAGED: {}", b.error.as_deref().unwrap_or("-")),
                Color::Red,
            ),
            CheckStatus::Incomplete => (
                "incomplete: no manifest (an interrupted backup; never used, safe to remove)"
                    .to_string(),
                Color::Yellow,
            ),
            CheckStatus::Unchecked => (
                format!("NOT CHECKED: {}", b.error.as_deref().unwrap_or("-")),
                Color::Yellow,
            ),
        };
        let result = if color {
            super::cell(result).fg(tint)
        } else {
            super::cell(result)
        };
        t.add_row(vec![
            super::cell(&b.tenant),
            super::cell(&b.host),
            super::cell(&b.backup),
            result,
        ]);
    }
    writeln!(out, "{t}")?;
    let s = &report.summary;
    writeln!(
        out,
        "{} of {}: {} verified, {} damaged, {} incomplete{}",
        super::count(s.backups, "backup"),
        super::count(s.hosts, "host"),
        s.verified,
        s.damaged,
        s.incomplete,
        if s.unchecked > 0 {
            format!(", {} hosts not checked", s.unchecked)
        } else {
            String::new()
        }
    )?;
    match s.stored_bytes {
        Some(stored) => writeln!(
            out,
            "the verified backups name {} on {}; the disk holds {} of it (unchanged files are kept once)",
            size(s.named_bytes),
            report.share,
            size(stored)
        ),
        None => writeln!(
            out,
            "the verified backups name {} on {}",
            size(s.named_bytes),
            report.share
        ),
    }
}
