//! ecfleet: audit, plan and upgrade Microsoft Entra Connect sync servers across a fleet.
//! The library holds all logic; `main.rs` only wires the command line to it.

pub mod audit;
pub mod catalog;
pub mod cli;
pub mod inventory;
pub mod lab;
pub mod msi;
pub mod plan;
pub mod platform;
pub mod provision;
pub mod report;
pub mod share;
#[cfg(test)]
pub(crate) mod testing;
pub mod transport;
pub mod window;
