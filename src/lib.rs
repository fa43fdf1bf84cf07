//! ecfleet: audit, plan and upgrade Microsoft Entra Connect sync servers across a fleet.
//! The library holds all logic; `main.rs` only wires the command line to it.

pub mod catalog;
pub mod inventory;
pub mod transport;
