//! Solvers (the physics is in PHYSICS.md; each module states the equations it implements).
//!
//! - [`master`]: the exact collective master equation, (N+1) x (N+1) density matrix in the
//!   j = N/2 irrep, CPU f64: time evolution ([`master::evolve`]) and the steady state by a
//!   sparse direct solve ([`master::steady_state`]). Collective terms only; models with
//!   individual rates are refused (they need the permutation-invariant block solver).
//! - [`ode`]: the shared adaptive integrator (Dormand-Prince 5(4), FSAL, PI step control,
//!   exact stepping onto save times) used by the solvers above.
pub mod master;
pub mod ode;
pub mod trajectory;
