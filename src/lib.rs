//! # dicke
//!
//! Driven-dissipative collective spin systems: N two-level atoms radiating together into a
//! cavity, with drive, cavity-mediated exchange, collective and single-atom decay, pumping and
//! dephasing. The physics and its conventions are in `PHYSICS.md` (shared with the project);
//! every module states the equations it implements.
//!
//! Data flow: scenario TOML -> [`scenario::Scenario`] (validated) -> [`model::Model`] +
//! initial state -> a solver in [`solver`] -> observables ([`observe`]) -> [`output`].
//! The library never prints or exits; `main.rs` is a thin CLI over [`run`].

pub mod analysis;
pub mod backend;
pub mod basis;
pub mod error;
pub mod interrupt;
pub mod model;
pub mod observe;
pub mod output;
pub mod precision;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod solver;
pub mod state;
pub mod task;

pub use error::{Error, Result};
pub use num_complex::Complex64 as c64;

/// Crate version, recorded in every result.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
