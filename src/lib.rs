//! ecfleet: audit, plan and upgrade Microsoft Entra Connect sync servers across a fleet.
//! The library holds all logic; `main.rs` only wires the command line to it. The layout and the
//! way data flows are drawn in docs/design/architecture.md.

pub mod audit;
pub mod backup;
pub mod catalog;
pub mod checks;
pub mod cli;
pub mod command;
pub mod digest;
pub mod engine;
pub mod error;
pub mod exit;
pub mod fsread;
pub mod identity;
pub mod inventory;
pub mod lab;
pub mod limits;
pub mod lock;
pub mod msi;
pub mod notify;
pub mod plan;
pub mod platform;
pub mod report;
pub mod run;
pub mod session;
pub mod settings;
pub mod shard;
pub mod share;
pub mod stage;
#[cfg(test)]
pub(crate) mod testing;
pub mod transport;
pub mod window;
