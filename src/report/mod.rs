//! Rendering results for people and machines: tables (comfy-table), JSON and CSV, always into
//! a writer so tests render into a `Vec<u8>`. stdout gets results; progress goes elsewhere.

mod audit;
mod plan;

pub use audit::{AuditFormat, render_audit};
pub use plan::{PlanFormat, render_plan};
