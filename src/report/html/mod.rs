//! `ecfleet report … --format html`: the customer reports, one self-contained HTML file per
//! tenant and one for the whole fleet, rendered only from what the share holds (the run's
//! ledger, an audit snapshot, the backup manifests) and the catalog built into ecfleet, never
//! from live hosts: the same report renders to the same bytes tomorrow, apart from the stated
//! generation time (docs/report.md).
//!
//! The pages are askama templates (`templates/report/`), checked at compile time and escaping
//! every value by default; text that came from a host or the share also has its control
//! characters spelled out ([`shown`]). Inline CSS, inline SVG, no script, no fetches.

mod audit;
mod chart;
mod deadlines;
mod run;
mod text;

use std::path::{Path, PathBuf};

pub use audit::{AuditSource, StoredAudit, audit_pages};
pub use run::{RunSource, run_pages};

/// One figure of a page's summary, and its tone (a CSS class: `good`, `warn`, `bad`, `neutral`).
pub struct Stat {
    pub label: &'static str,
    pub value: String,
    pub tone: &'static str,
}

fn stat(label: &'static str, n: usize, tone: &'static str) -> Stat {
    Stat {
        label,
        value: n.to_string(),
        tone,
    }
}

/// A count whose tone is `some` when there are any, `none` when there are none.
fn stat_if(label: &'static str, n: usize, some: &'static str, none: &'static str) -> Stat {
    stat(label, n, if n > 0 { some } else { none })
}

/// One page to write: its file name in the output folder and its HTML.
pub struct Page {
    pub file: String,
    pub html: String,
}

/// The file of the fleet page.
pub const FLEET_FILE: &str = "fleet.html";

/// The files of the tenants' pages, in order: `tenant-<name>.html`, the name kept to letters,
/// digits, `.`, `-` and `_` (inventory names are; a forged ledger's need not be). Two names
/// that would share a file (after that, or by case on a case-insensitive share) each get the
/// first 8 hex digits of their name's SHA-256 added: no customer's page replaces another's.
pub fn tenant_files(tenants: &[&str]) -> Vec<String> {
    let plain = |tenant: &str| -> String {
        tenant
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let names: Vec<String> = tenants.iter().map(|t| plain(t)).collect();
    tenants
        .iter()
        .zip(&names)
        .map(|(tenant, name)| {
            let clashes = names
                .iter()
                .filter(|other| other.eq_ignore_ascii_case(name))
                .count()
                > 1;
            if clashes || name.as_str() != *tenant {
                let sha = crate::digest::sha256_hex(tenant.as_bytes());
                format!("tenant-{name}-{}.html", &sha[..8])
            } else {
                format!("tenant-{name}.html")
            }
        })
        .collect()
}

/// Writes `pages` into `dir` (made where missing), each through a temp file renamed into
/// place; returns the files written, in order.
pub fn write_pages(dir: &Path, pages: &[Page]) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for page in pages {
        let path = dir.join(&page.file);
        let tmp = dir.join(format!(".{}.tmp-{}", page.file, std::process::id()));
        std::fs::write(&tmp, page.html.as_bytes())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                format!("cannot write {}: {e}", path.display())
            })?;
        written.push(path);
    }
    Ok(written)
}

pub use text::shown;

#[cfg(test)]
mod tests;
