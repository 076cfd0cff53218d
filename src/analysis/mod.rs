//! Statistics over results that the solvers produce, independent of how they were computed:
//! [`switching`] (dwell times, switching rates and the telegraph fit of a two-phase signal).
//! A leaf of the crate: it imports no other module of it.

pub mod switching;
