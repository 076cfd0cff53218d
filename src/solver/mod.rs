//! Solvers. (being written)
pub mod master;
pub mod ode;
