//! Statistics over results that the solvers produce, independent of how they were computed
//! (pure numerics on numbers the tasks already hold: no states, no files):
//! [`decay`] (the late-time decay rate of a relaxing observable: the Liouvillian gap from
//! dynamics, `[task] decay_fit`), [`switching`] (dwell times, switching rates and the telegraph
//! fit of a two-phase signal), [`hysteresis`] (the crossings and width of a loop
//! under a ramped parameter), [`scaling`] (power-law and exponential fits of a quantity
//! against the system size). A leaf of the crate: it imports no other module of it.

pub mod decay;
pub mod hysteresis;
pub mod scaling;
pub mod switching;
