//! Analysis of computed series: pure numerics on numbers the tasks already hold (no states,
//! no files). [`decay`]: the late-time decay rate of a relaxing observable (the Liouvillian
//! gap from dynamics, `[task] decay_fit`).

pub mod decay;
