//! Statistics over results that the solvers produce, independent of how they were computed:
//! [`switching`] (dwell times, switching rates and the telegraph fit of a two-phase signal),
//! [`scaling`] (power-law and exponential fits of a quantity against the system size).
//! A leaf of the crate: it imports no other module of it.

pub mod scaling;
pub mod switching;
