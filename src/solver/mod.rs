//! Solvers (the physics is in PHYSICS.md; each module states the equations it implements).
//!
//! - [`master`]: the exact collective master equation, (N+1) x (N+1) density matrix in the
//!   j = N/2 irrep, CPU f64: time evolution ([`master::evolve`]) and the steady state by a
//!   sparse direct solve ([`master::steady_state`]). Collective terms only; models with
//!   individual rates go to [`blocks`].
//! - [`blocks`]: the exact permutation-invariant master equation with single-atom decay,
//!   pumping and dephasing (PHYSICS.md sec. 3): one block R_j per irrep, CPU f64, time
//!   evolution ([`blocks::evolve`]) and steady state ([`blocks::steady_state`]).
//! - [`cumulant`]: second-order cumulant expansion (PHYSICS.md sec. 5) of the whole engine
//!   model, nine real moments per parameter point; [`cumulant::batch`] integrates many points
//!   at once (CPU twin of a compute kernel).
//! - [`frontal`]: sparse LU by geometric nested dissection and a multifrontal factorisation,
//!   for the lattice-structured Liouvillians of [`master`] and [`blocks`] (f64 and c64).
//! - [`hermitian`]: the real form of a Liouvillian on Hermitian matrices and its pinned,
//!   refined steady-state solve on [`frontal`] (shared by [`master`] and [`blocks`]).
//! - [`ode`]: the shared adaptive integrator (Dormand-Prince 5(4), FSAL, PI step control,
//!   exact stepping onto save times) used by the solvers above.
//! - [`populations`]: the birth-death rate equation of the j = N/2 populations, exact for
//!   models without drive or single-atom processes (seed 004's pump ramps), L-stable TR-BDF2
//!   in O(N) per step.
//! - [`spectrum`]: the Liouvillian's eigenvalues nearest a target (shift-invert Arnoldi with
//!   thick restarts on a sparse LU) in the j = N/2 manifold or the blocks, with a dense
//!   cross-check for small dimensions.
//! - [`meanfield`]: mean field (PHYSICS.md sec. 5) for the whole engine model in the individual
//!   and the collective factorisation: ODEs, integration, all fixed points and their stability,
//!   boundaries along a scan.
//! - [`correlation`]: two-time correlations by the quantum regression theorem on [`master`]
//!   or [`blocks`] (seed 004's C_zz(tau)), their Fourier transform.
//! - [`fisher`]: classical and quantum Fisher information of the steady state with respect to
//!   a model parameter (Ridders-extrapolated differences of exact steady states).
pub mod blocks;
pub mod correlation;
pub mod cumulant;
pub mod fisher;
pub mod frontal;
pub mod hermitian;
pub mod master;
pub mod meanfield;
pub mod metastable;
pub mod ode;
pub mod populations;
pub mod spectrum;
pub mod trajectory;

/// The physics method a task runs (`task.method`; orthogonal to the task kind, as in
/// dynamiqs' `solver(problem, times, method)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Method {
    /// The exact master equation: the j = N/2 solver [`master`] for collective-only models,
    /// the blocks R_j ([`blocks`]) with single-atom rates.
    Exact,
    /// Mean field ([`meanfield`]) in the given factorisation.
    MeanField(meanfield::Factorisation),
    /// Second-order cumulants ([`cumulant`]).
    Cumulant,
    /// A quantum-trajectory ensemble ([`trajectory`]).
    Trajectories,
}

impl Method {
    /// The name used in scenario files and outputs.
    pub fn name(self) -> &'static str {
        match self {
            Method::Exact => "exact",
            Method::MeanField(_) => "meanfield",
            Method::Cumulant => "cumulant",
            Method::Trajectories => "trajectories",
        }
    }
}
