//! Monte-Carlo wave-function trajectories (PHYSICS.md sections 1, 2, 4 and 8): one pure state
//! in one irrep j at a time, CPU (this module, rayon over trajectories) and GPU
//! ([`crate::backend::gpu::trajectory`], `shaders/trajectory.wgsl`), with the same algorithm,
//! the same indexing and the same random numbers. Collective-only models stay in j = N/2; with
//! single-atom rates a jump may change j (below, "Irrep-changing jumps"). Both run on both
//! backends (P_m accumulation, [`TrajectoryOptions::pm`], is CPU only).
//!
//! # Unravelling
//!
//! Jump operators `C_1 = sqrt(Gamma) J-`, `C_2 = sqrt(w) J+`, `C_3 = sqrt(Gamma_phi) Jz` and
//!
//! ```text
//! H_eff = H - (i/2) Gamma_op,   Gamma_op = sum_k C_k^dag C_k = Gamma J+J- + w J-J+ + Gamma_phi Jz^2
//! H     = omega0 Jz + chi J+J- + chi_z Jz^2  +  V,    V = Omega (cos phi Jx + sin phi Jy)
//! ```
//!
//! Everything but V is diagonal in m: `H_eff = D + V` with
//! `D_i = omega0 m + chi jpjm + chi_z m^2 - (i/2) gamma_i`,
//! `gamma_i = Gamma jpjm + w jmjp + Gamma_phi m^2` (index i = m + j, [`crate::basis`]), and
//! `(V u)_i = cm jp_{i-1} u_{i-1} + cp jp_i u_{i+1}`, `cm = (Omega/2) e^{-i phi}`,
//! `cp = conj(cm)`: a two-neighbour stencil generated from (j, m) in the kernel.
//!
//! # Irrep-changing jumps (single-atom rates; Zhang, Zhang & Molmer, NJP 20, 112001)
//!
//! With gamma_down, gamma_up, gamma_phi > 0 a trajectory in irrep j has, besides the collective
//! channels (rates `Gamma + gamma_down a0(j)`, `w + gamma_up a0(j)`, `Gamma_phi + 4 gamma_phi
//! a0(j)` on J-, J+, Jz), the six irrep-changing channels `A-, A+, B-, B+, D-, D+` of
//! PHYSICS.md sec. 3 with rates `gamma_down a-+(j)`, `gamma_up a-+(j)`, `4 gamma_phi a-+(j)`
//! ([`twin::IND_CHANNELS`], [`irrep_rates`]). Their weights join gamma_i ([`irrep_diag`]:
//! the sum equals `Gamma_op + gamma_down (Jz + N/2) + gamma_up (N/2 - Jz) + gamma_phi N`,
//! test `irrep_rates_sum_to_h_eff`), so H_eff stays diagonal plus V, and everything below
//! holds per irrep: each irrep gets its own twin (coefficients and exponential tables, built
//! the first time a trajectory enters it), the state vector is sized for j = N/2, and a jump
//! into j' re-indexes the amplitudes (level i = m + j to i' = m' + j') and switches twin; every
//! sum over levels then covers the new irrep's levels only (the work vectors' tail still holds
//! the longer irrep's terms). The GPU kernel does the same with the irrep's 2j in the
//! trajectory's state (module doc of [`crate::backend::gpu::trajectory`]). One step grid
//! serves every irrep: the rate bound below is the maximum over all irreps a trajectory can
//! reach, so h does not change at a jump and the tables of all irreps share their step sizes. The
//! record carries 2j (slot 11), from which `J2 = j(j+1)` per trajectory; the ensemble mean of
//! J2 is `<J^2>` of the permutation-invariant state (sum over its blocks). Validated against
//! independent atoms (tests/trajectory.rs `cpu_individual_channels_match_independent_atoms`):
//! with only single-atom dissipation the exact state is a product, known from N = 1.
//!
//! # Waiting-time algorithm
//!
//! Draw r in (0, 1); integrate the unnormalised psi under H_eff, `d|psi|^2/dt = -psi^dag
//! Gamma_op psi`; when |psi|^2 falls to r, jump: channel k with probability
//! `|C_k psi|^2 / sum_k |C_k psi|^2`, apply `C_k`, renormalise, draw a new r.
//!
//! **Norm tracking.** The state is renormalised after every step and the kernel carries
//! `b = r / |psi_unnormalised|^2 = exp(ln r - ln |psi|^2)`: the ln-norm gap to the jump
//! threshold, kept as its exponential. A step whose norm factor is `f1 = |psi(t+h)|^2/|psi(t)|^2`
//! is accepted while `f1 > b` and updates `b <- b / f1`; the jump is inside the step when
//! `f1 <= b`. Because the jump happens as soon as |psi|^2 reaches r, b stays in (r, 1]: it never
//! underflows however long the wait (r >= 2^-24 in f32), and unlike an accumulated ln|psi|^2
//! its relative precision does not degrade as the sum grows. It needs no logarithm, which
//! keeps the f64 kernel free of transcendentals (DESIGN.md: f64 `exp`/`log` are broken in
//! WGSL).
//!
//! **Jump time.** Inside the step the squared norm is interpolated by the cubic Hermite
//! polynomial through its values and derivatives at both ends (`p(0) = 1, p'(0) = -<Gamma_op>
//! tau, p(1) = f1, p'(1) = -psi^dag Gamma_op psi tau`), and the crossing `p = b` is located by
//! bisection on a grid of `2^QUANTUM_BITS` quanta per step: the jump happens at the first
//! quantum where the interpolated norm has fallen to r (bias at most one quantum, h/65536;
//! the interpolation error is `(gamma h)^4/384` in the norm, below 1.6e-4 h in time for the
//! default step). The step is then redone from its start up to that quantum, the jump
//! applied there, and the rest of the step (its remaining quanta) integrated afterwards, so
//! the state stays on the step grid and hits every save time exactly.
//!
//! # Integrator: Lawson RK4 with exact diagonal, fixed step
//!
//! The anti-Hermitian part of H_eff is diagonal (PHYSICS.md sec. 4, stiffness: gamma_i reaches
//! Gamma N^2/4), and so is most of H. The diagonal part D is taken exactly by an integrating
//! factor, and only V is left to the Runge-Kutta stages: Lawson's generalised RK4
//!
//! ```text
//! psi_{n+1} = E(h) psi_n + h/6 (E(h) k1 + 2 E(h/2) (k2 + k3) + k4),   E(tau) = exp(-i D tau)
//! k1 = N(psi_n), k2 = N(E(h/2)(psi_n + h/2 k1)), k3 = N(E(h/2) psi_n + h/2 k2),
//! k4 = N(E(h) psi_n + h E(h/2) k3),   N(u) = -i (V - c) u.
//! ```
//!
//! The real shift `c = <psi|V|psi>` (from the previous step's reductions) changes psi only by
//! a global phase, but it centres V's spectrum on the state: RK4's error is set by the spread
//! of V over psi (~ Omega sqrt(j) for a coherent state) instead of its norm Omega j. Stability
//! of RK4 on the imaginary axis needs `h |lambda - c| <= 2.8` for every eigenvalue of V, i.e.
//! `h Omega 2j <= 2.8`.
//!
//! **Why a fixed step.** The step is `h = cfl / Lambda` with the rate bound
//! `Lambda = max(|Omega| j, max_i |D_{i+1} - D_i|, max_i gamma_i)` (the spectral radius of V,
//! the fastest relative phase or damping between neighbouring levels that the integrating
//! factor makes time-dependent in the interaction picture, and the fastest norm decay that the
//! Hermite interpolation must follow), shortened so that every save interval is a whole number
//! of steps ([`TrajectoryOptions::cfl`], or [`TrajectoryOptions::dt`] to set it by hand). A
//! fixed step grid makes every exponential a host-side table: `E(h 2^-k)` for
//! `k = 0..QUANTUM_BITS+1`, from which the factors of any partial step of `L` quanta are
//! products over the set bits of L. The kernel then needs no `exp`, `sin` or `cos` at all, in
//! f32 or f64, and the CPU twin and the GPU kernel execute the same arithmetic: an adaptive
//! controller would make the step sequence depend on rounding (accept/reject decisions flip on
//! ulp-level differences between devices), and would need run-time exponentials.
//!
//! # Exponential tables per irrep (single-atom rates)
//!
//! The diagonal of H_eff depends on j only through a constant: with `jpjm = j(j+1) - m(m-1)`,
//! `jmjp = j(j+1) - m(m+1)` and the single-atom weights summing to `gamma_down (m + N/2) +
//! gamma_up (N/2 - m) + gamma_phi N` (test `irrep_rates_sum_to_h_eff`),
//!
//! ```text
//! D_j(m) = D_{N/2}(m) + c_j - c_{N/2},   c_j = (chi - i (Gamma + w)/2) j(j+1),
//! E_j(tau)_m = S_j(tau) E_{N/2}(tau)_m,  S_j(tau) = exp(-i (c_j - c_{N/2}) tau).
//! ```
//!
//! So the tables are the top irrep's `(N + 1) x TABLE_DEPTH` entries per step size plus one
//! complex scale per irrep and row (`Plan::kernel_table`): at N = 2000 and one step size
//! 36 K + 18 K complex numbers (0.8 MiB in f64), where every irrep's own table would be
//! `sum_j (2j + 1) x TABLE_DEPTH` = 1.8e7 complex numbers (144 MB in f32, 288 MB in f64:
//! above lavapipe's 128 MiB storage binding, so N = 2000 could not run there at all, and a
//! quarter of a 1 GiB binding elsewhere) and 1.8e7 host exponentials per run. Restricting to
//! the irreps reachable in the run would not help: a trajectory's j has no bound known in
//! advance. The kernel forms `cmul(S_j, E_top)` when it reads an entry (one
//! complex product more per level and table read, against ~200 flops per level and step); the
//! twin's lower irreps take the same product in the working precision (`Plan::inputs_for`), so
//! CPU and GPU see the same numbers; the top irrep (and every collective model) keeps its
//! directly rounded table, unchanged. Cost: the lower irreps' entries carry two roundings
//! instead of one (1e-7 / 2e-16 relative, as the table itself). The factors must stay in f32's
//! range: `|S_j| <= exp((Gamma + w) J(J+1) h/2)`, `|E_top| >= exp(-max gamma h/2)`, both
//! ~exp(cfl/2) at the default step; a step making either exceed `exp(MAX_TABLE_EXPONENT)` is
//! refused with a message (only a hand-set `dt` far beyond the rate bound can).
//!
//! # Random numbers
//!
//! Trajectory `t` (global index, `first_traj + i`) draws from `PhiloxStream::new(seed, t)`
//! ([`crate::rng`]): block 0 gives the first r (first uniform), and the block drawn at the
//! n-th jump gives (channel uniform, next r). f32 uses words 0 and 1 of each block, f64 the
//! pairs (0, 1) and (2, 3). Identical on CPU and GPU, for any batch split.
//!
//! # Records and reduction
//!
//! At each save time the kernel writes [`RECORD_LEN`] numbers per trajectory: the stencil
//! sums `|psi|^2, sum m|psi_i|^2, sum m^2|psi_i|^2, sum (jpjm + jmjp)|psi_i|^2, <J+>, <J+^2>,
//! <{J+, Jz}>` (complex ones as two reals) and the jump count ([`crate::observe`] has the
//! formulas). The host turns them into the ten observables [`OBS_NAMES`] (in f64), and
//! reduces over trajectories in trajectory order, whatever the thread count or batch split:
//! the mean, the standard error `sample std / sqrt(ntraj)` of every observable, and xi^2 of
//! the ensemble-averaged state ([`Moments::xi2`] of the averaged first and second moments).
//!
//! # Fidelity along saved trajectories
//!
//! With a reference pure state ([`TrajectoryOptions::reference`], in j = N/2) the twin also
//! writes, at every save of each of the first `save_trajectories` trajectories (and of no
//! other), `F_k(t) = |<ref|psi_k(t)>|^2` of the normalised state: the overlap summed level by
//! level in the working precision, then its squared modulus (`Twin::fidelity`, next to the P_m
//! hook `Twin::populations`). While a trajectory is in an irrep j < N/2 it is exactly 0 (that
//! irrep is orthogonal to j = N/2). The mean of F_k over all trajectories is the exact
//! `<ref|rho|ref>` (tests/trajectory_fidelity.rs). The GPU kernel records moments only; a GPU
//! ensemble gets its saved trajectories' fidelity from [`replay_fidelity`].
//!
//! # Switching classifier
//!
//! With [`TrajectoryOptions::classifier`] each trajectory is classified on line, at every save,
//! in the twin ([`twin::PhaseLog`]) and in the kernel (`classify` in `shaders/trajectory.wgsl`)
//! with the same operations in the working precision: `x = S_m (1 / |psi|^2)` (Jz from the
//! record just written), an exponential moving average `s = x` at save 0 and
//! `s <- s + alpha (x - s)` after (`alpha = 1 - exp(-dt_save / window)`, from the host: no
//! transcendental in the kernel), and hysteresis: the phase becomes upper when `s > hi`, lower
//! when `s < lo`, and is otherwise unchanged (undefined until the first crossing). A change
//! appends `2 save + upper` to the trajectory's event list (at most
//! [`Classifier::max_events`]; the count goes on, so an overflow is seen, never a silent
//! truncation). Nothing else is kept per save; the statistics are
//! [`crate::analysis::switching`]'s. The GPU keeps the smoothed value in the resumable state
//! (`rstate` slot 3), the phase and the count in the event buffer itself.
//!
//! # Precision
//!
//! [`Precision::F32`] or [`Precision::F64`], the same on both backends: the CPU twin
//! ([`twin`]) is generic over the working precision and mirrors the kernel operation by
//! operation, including its summation order ([`TrajectoryOptions::lanes`]). Exponentials are
//! tabulated in f64 on the host and rounded once to the working precision; the kernels use only
//! +, -, *, /, sqrt and comparisons. On lavapipe GPU and CPU agree to the last bit in the
//! workgroup mapping and to 1e-5 (f32) / 1e-14 (f64) relative otherwise (module doc of
//! [`crate::backend::gpu::trajectory`]); on real GPUs (fused multiply-adds, approximate sqrt
//! and division) to a few ulp per operation carried along the trajectory.
//!
//! # Step size and accuracy (measured)
//!
//! Seed 001, N = 100, Gamma = 0 (one deterministic trajectory, so the ensemble cannot hide
//! anything), max |<Jz>_traj - <Jz>_ME| over t in [0, 0.2]: cfl 0.25: 6e-4 / 2e-4
//! (2 Omega/N = 1.48 / 2.09), cfl 0.5: 1.8e-2 / 7e-3, cfl 1: 0.55 / 0.21. With Gamma = 1 the
//! ensembles at cfl 0.25 and 0.5 agree to 0.002 (same seed), far below the 2000-trajectory SE
//! (0.02-0.8); 20000 trajectories at cfl 0.5 agree with the master equation within 1.5 SE at
//! every save.
//!
//! # Level window (opt-in, CPU twin only)
//!
//! With [`TrajectoryOptions::level_window`] (scenario `task.level_window = true`) a trajectory
//! integrates only a window `W = [a, b)` of levels instead of the whole irrep. After every
//! accepted step and every jump, with psi normalised, level i is *occupied* when `|Re psi_i|`
//! or `|Im psi_i|` exceeds `sqrt(tol)`; W is the span from the first to the last occupied
//! level, widened by `margin` levels on each side and rounded out to multiples of
//! [`twin::CHUNK`] = 16, so every pass is still whole SIMD vectors and every sum keeps its lane
//! order ([`LevelWindow`]: tol = 1e-16 and margin = 8 by default). Outside W every work vector
//! holds exact zeros (levels leaving W are zeroed; passes read and write W only), so the
//! stencil reads zeros past W's edges and the trajectory evolves under `P H_eff P`, P the
//! projector on W. The check scans inward from W's edges to the first occupied level: a few
//! dozen levels per step.
//!
//! **Dropped amplitude.** `e = psi_full - psi_W` obeys `de/dt = -i H_eff e - i (1 - P) V P
//! psi_W`, and `-i H_eff` is a contraction (its Hermitian part `-Gamma_op/2 <= 0`), so
//! `||e(t)|| <= int ||(1 - P) V P psi_W|| ds`. That vector has two components, `cp jp_{a-1}
//! psi_a` and `cm jp_{b-1} psi_{b-1}`, each at most `(|Omega|/2)(j + 1/2) |psi_edge|`. The edge
//! levels and their four inner neighbours are unoccupied at the start of a step (margin >= 5),
//! `|psi_i| <= sqrt(2 tol)`, and within the step (h Lambda = cfl) they grow at most by
//! `e^cfl`. Hence, between jumps, per step and relative to the norm,
//!
//! ```text
//! ||e|| grows by at most  cfl e^cfl sqrt(2 tol)   (1.2e-8 at the defaults),
//! |<O>_full - <O>_W| <= 2 ||O|| n_steps cfl e^cfl sqrt(2 tol)   (normalised states),
//! ```
//!
//! for j >= 3/2 (where `sqrt(2) (|Omega|/2)(j + 1/2) <= |Omega| j <= Lambda`). A jump applies
//! the same C_k to both, scaling the relative error by `||C_k e|| / ||C_k psi||`, of order one
//! for the jumps that happen (they come where `||C_k psi||` is large). The norm sets the jump
//! times, so a difference can also move a jump by a quantum when the norm passes r within
//! `||e||` of a quantum's edge. The bound is loose: the margin puts the edge amplitudes far
//! below `sqrt(tol)`. Measured (tests/trajectory_window.rs): seed 001, N = 1000 from the south
//! pole, f64, ~3000 steps: `max |d<Jz>| / j = 1.1e-12` with the same jumps, against the bound
//! 6.9e-5; 4000-trajectory windowed ensembles at N = 40 agree with the master equation within
//! 4 SE in `<Jz>` and `<J+J->`. With `tol = 0` every nonzero amplitude is occupied and a step
//! spreads amplitude at most four levels (four stencil applications), a jump one more: with
//! margin >= [`MIN_WINDOW_MARGIN`] = 5 nothing the full run creates leaves W, and the run is
//! the full run bit for bit (tested for both precisions, lanes 1, 16, 64 and an
//! irrep-changing model). A jump into another irrep resets W to that irrep's levels.
//!
//! **Why opt-in.** Without it the twin is the GPU kernel's reference, bit for bit on lavapipe;
//! the window changes results by the bound above (far below the ensemble's statistical
//! error, but not zero), the WGSL kernel does not implement it (`run_gpu` refuses a window
//! plan, naming `task.level_window`), and it gains nothing where the state fills the irrep:
//! seed 001 at N = 100 (the QuTiP mcsolve benchmark) occupies most levels (the window
//! averages 104 of 112 padded levels there, 405 of 2016 at N = 2000: `measure_window` in
//! tests/trajectory_window.rs). Where the state is
//! localised it pays. Measured on 2 shared cores (load 5-9, CLI, 2 rayon threads, f32): the
//! QuTiP benchmark's problem (N = 100, 500 trajectories) 1.45 s without, 1.39 s with the
//! window; the same model at N = 2000 (4 trajectories to t = 0.02) 4.0 s / 0.92 s (4.4x);
//! `scenarios/emission_squeezing_trajectories.toml` (N = 2000, single-atom decay) 95 s / 72 s
//! (1.3x; its 2 trajectories diverge at the rounding level over ~5e5 jumps, so that scenario
//! keeps the window off). Single-thread widths and times: `measure_window` in
//! tests/trajectory_window.rs (`--ignored --nocapture`).
//!
//! # Performance
//!
//! Measured rates (CPU twin, lavapipe, QuTiP mcsolve) and the commands: BENCHMARKS.md,
//! "Trajectories vs QuTiP mcsolve" and "Irrep-changing trajectories". The twin's layout
//! ([`twin`]) is what makes it fast; the step count is set by accuracy (above), so the next gain
//! must come from fewer flops per trajectory, not from tuning.

pub mod sched;
pub mod twin;

use crate::basis::Irrep;
use crate::error::{GpuError, OutputError, SolverError};
use crate::model::{Model, Protocol};
use crate::observe::Moments;
use crate::output::checkpoint::{Dec, Enc};
use num_complex::Complex64 as c64;
use rayon::prelude::*;
use serde::Serialize;
use thiserror::Error;
use twin::{Cx, PhaseLog, Real, Twin, TwinInputs};

/// Names of the recorded observables, in the order of [`EnsembleResult::mean`]: the first
/// moments, the symmetrised second moments `<{Ja, Jb}>/2`, the number of jumps so far, and
/// `J2 = j(j+1)` of the trajectory's irrep.
pub const OBS_NAMES: [&str; 11] = [
    "Jx", "Jy", "Jz", "JxJx", "JyJy", "JzJz", "JxJy", "JxJz", "JyJz", "jumps", "J2",
];
/// Number of observables per save.
pub const N_OBS: usize = OBS_NAMES.len();
/// Numbers per trajectory and save time written by the kernel:
/// `[|psi|^2, S_m, S_m2, S_pm, Re J+, Im J+, Re J+^2, Im J+^2, Re X, Im X, jumps, 2j]`.
pub const RECORD_LEN: usize = 12;
/// log2 of the number of quanta per step on which jump times are located.
pub const QUANTUM_BITS: u32 = 16;
/// Quanta per step.
pub const FULL: u32 = 1 << QUANTUM_BITS;
/// Table entries per level and step size: `E(h 2^-k)`, k = 0..=QUANTUM_BITS+1.
pub const TABLE_DEPTH: usize = QUANTUM_BITS as usize + 2;
/// Length of the header of the real parameter array (then h, q per step-size set): the model
/// and RK constants (12), then the switching classifier's `alpha, lo, hi` (zeros without one).
pub const HEAD_LEN: usize = 15;
/// Default `cfl` (see [`TrajectoryOptions::cfl`]).
pub const DEFAULT_CFL: f64 = 0.5;
/// Largest |ln| of a factorised table factor (irrep scale or top-irrep entry) per step with
/// single-atom rates: both stay inside f32's normal range with room for their product
/// (module doc, "Exponential tables per irrep"). The default step gives at most ~cfl/2.
pub const MAX_TABLE_EXPONENT: f64 = 40.0;

pub use crate::precision::Precision;

/// Options of a trajectory ensemble.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrajectoryOptions {
    /// Number of trajectories (>= 1).
    pub ntraj: u64,
    /// Global index of the first trajectory: an ensemble split over runs or machines as
    /// `first_traj = 0, k, 2k, ...` reproduces the unsplit one exactly.
    pub first_traj: u64,
    /// Philox seed.
    pub seed: u64,
    /// Working precision (the same on CPU and GPU).
    pub precision: Precision,
    /// Largest step h; `None`: `cfl / Lambda` (module doc). Every save interval is split into
    /// equal steps no longer than this.
    pub dt: Option<f64>,
    /// Step as a fraction of the inverse rate bound Lambda (module doc); RK4 is stable up to
    /// cfl = 1.4. The default 0.5 keeps the deterministic error far below the ensemble's
    /// standard error at 10^4 trajectories (tests/trajectory.rs).
    pub cfl: f64,
    /// Keep the records of the first this many trajectories in the result.
    pub save_trajectories: usize,
    /// Also accumulate the magnetisation distribution P_m (summed over irreps) at every save,
    /// with its standard errors (CPU only in this version: `run_gpu` refuses it, and
    /// `--backend auto` then runs on the CPU).
    pub pm: bool,
    /// Invocations per trajectory on the GPU, and hence the order of every sum over levels
    /// on both backends (a power of two, 1..=256). 0: [`default_lanes`] on the GPU,
    /// [`CPU_LANES`] on the CPU (so by default the two backends differ by rounding only; set
    /// the same value on both to get the same arithmetic).
    pub lanes: u32,
    /// A reference pure state in j = N/2 (N + 1 amplitudes, normalised here): the fidelity
    /// `|<ref|psi_k(t)>|^2` of each saved trajectory at every save
    /// ([`SingleTrajectory::fidelity`]; [`run_cpu`] computes it in the twin as it runs, the GPU
    /// replays the saved trajectories on the twin: [`replay_fidelity`]). `None`: not computed.
    #[serde(skip)]
    pub reference: Option<Vec<c64>>,
    /// The on-line switching classifier (module doc, "Switching classifier"); `None`: off.
    pub classifier: Option<Classifier>,
    /// Integrate only the levels where the state has amplitude (module doc, "Level window");
    /// CPU only (`run_gpu` refuses it). `None`: every level, the kernel's algorithm.
    pub level_window: Option<LevelWindow>,
}

/// The level window of a trajectory (module doc, "Level window").
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LevelWindow {
    /// A level is occupied while `|psi_i|^2 > tol` for the normalised state (precisely: a
    /// real or imaginary part above `sqrt(tol)`); 0 keeps every nonzero amplitude, which
    /// reproduces the run without a window exactly (tests/trajectory_window.rs).
    pub tol: f64,
    /// Levels kept on each side of the occupied ones (at least [`MIN_WINDOW_MARGIN`]).
    pub margin: usize,
}

/// The smallest [`LevelWindow::margin`]: one step of Lawson RK4 spreads amplitude four levels
/// (four applications of the V stencil) and a jump shifts it by one more, so with five levels
/// no amplitude the full run would create ever reaches past the window's edge within a step.
pub const MIN_WINDOW_MARGIN: usize = 5;

impl Default for LevelWindow {
    /// `task.level_window = true`: tol = 1e-16 (an amplitude of 1e-8, below RK4's own error
    /// per step at the default cfl by orders of magnitude) and a margin of 8 levels.
    fn default() -> Self {
        LevelWindow {
            tol: 1e-16,
            margin: 8,
        }
    }
}

/// Parameters of the on-line switching classifier (module doc, "Switching classifier").
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Classifier {
    /// Smoothing weight per save, `1 - exp(-dt_save / window)` (computed on the host).
    pub alpha: f64,
    /// Hysteresis thresholds on the smoothed Jz: lower phase below `lo`, upper above `hi`.
    pub lo: f64,
    pub hi: f64,
    /// Phase changes kept per trajectory; more is an overflow (reported, never truncated
    /// silently).
    pub max_events: u32,
}

/// Largest [`Classifier::max_events`] (the kernel's event buffer is
/// `(max_events + 2) x 4` bytes per trajectory of a chunk).
pub const MAX_EVENTS_LIMIT: u32 = 1 << 20;

/// One trajectory's phase changes as the classifier emitted them: `count` changes, of which
/// the first `min(count, max_events)` are in `events`, each `2 save + upper`
/// ([`decode_event`]). `count > events.len()` is an overflow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseChanges {
    pub index: u64,
    pub count: u32,
    pub events: Vec<u32>,
}

/// `(save, upper)` of an event word `2 save + upper`.
pub fn decode_event(e: u32) -> (usize, bool) {
    ((e >> 1) as usize, e & 1 == 1)
}

impl Default for TrajectoryOptions {
    fn default() -> Self {
        TrajectoryOptions {
            ntraj: 1000,
            first_traj: 0,
            seed: 0,
            precision: Precision::F32,
            dt: None,
            cfl: DEFAULT_CFL,
            save_trajectories: 0,
            pm: false,
            lanes: 0,
            reference: None,
            classifier: None,
            level_window: None,
        }
    }
}

/// The CPU's default summation order: 16 lanes, i.e. the lane accumulators of every sum over
/// levels are one or two SIMD registers ([`twin`] module doc). A sequential sum (`lanes = 1`,
/// the GPU's default below 257 levels) is a chain of dependent additions and costs the CPU
/// twin about a third of its time at N = 100.
pub const CPU_LANES: u32 = 16;

/// Invocations per trajectory for `n_levels` levels: 1 (one invocation per trajectory, the
/// "lane" mapping) up to 256 levels, else 256 (one workgroup per trajectory): on lavapipe
/// the lane mapping was the fastest at N = 100 (BENCHMARKS.md, "Trajectories vs QuTiP
/// mcsolve").
pub fn default_lanes(n_levels: usize) -> u32 {
    if n_levels <= 256 { 1 } else { 256 }
}

/// One trajectory's observables at every save time (`[save][OBS_NAMES index]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SingleTrajectory {
    /// Global trajectory index.
    pub index: u64,
    pub values: Vec<[f64; N_OBS]>,
    /// With [`TrajectoryOptions::reference`]: `|<ref|psi(t)>|^2` at every save (0 while the
    /// trajectory is in an irrep j < N/2); empty otherwise.
    pub fidelity: Vec<f64>,
}

/// The reduced ensemble.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnsembleResult {
    pub times: Vec<f64>,
    pub ntraj: u64,
    pub first_traj: u64,
    pub seed: u64,
    pub precision: Precision,
    /// "cpu" or "gpu".
    pub backend: &'static str,
    /// Rayon threads, or the adapter name.
    pub device: String,
    /// Invocations per trajectory / reduction order used.
    pub lanes: u32,
    /// Steps per save interval and their size.
    pub steps: Vec<u32>,
    pub step_sizes: Vec<f64>,
    /// The rate bound Lambda of the module doc.
    pub rate_bound: f64,
    /// `mean[k][t]`: ensemble mean of observable `OBS_NAMES[k]` at `times[t]`.
    pub mean: Vec<Vec<f64>>,
    /// `se[k][t]`: its standard error, sample std / sqrt(ntraj) (NaN for one trajectory).
    pub se: Vec<Vec<f64>>,
    /// Wineland xi^2 of the ensemble-averaged state at each time.
    pub xi2: Vec<f64>,
    /// The first `save_trajectories` trajectories.
    pub trajectories: Vec<SingleTrajectory>,
    /// With [`TrajectoryOptions::classifier`]: every trajectory's phase changes, in trajectory
    /// order; empty otherwise.
    pub changes: Vec<PhaseChanges>,
    /// With [`TrajectoryOptions::pm`]: `pm_mean[t][m + N/2]` = P_m at `times[t]` (the mean
    /// over trajectories of |<j,m|psi>|^2) and its standard error `pm_se`; empty otherwise.
    pub pm_mean: Vec<Vec<f64>>,
    pub pm_se: Vec<Vec<f64>>,
    /// Wall-clock seconds of the ensemble (kernels + reduction).
    pub wall_s: f64,
}

impl EnsembleResult {
    fn index(name: &str) -> Option<usize> {
        OBS_NAMES.iter().position(|&n| n == name)
    }
    /// Mean of an observable by name (see [`OBS_NAMES`]).
    pub fn mean_of(&self, name: &str) -> Option<&[f64]> {
        Self::index(name).map(|k| self.mean[k].as_slice())
    }
    /// Standard error of an observable by name.
    pub fn se_of(&self, name: &str) -> Option<&[f64]> {
        Self::index(name).map(|k| self.se[k].as_slice())
    }
    /// The ensemble-averaged moments at save `t`.
    pub fn moments(&self, t: usize, n_atoms: usize) -> Moments {
        let v: [f64; N_OBS] = std::array::from_fn(|k| self.mean[k][t]);
        moments_of(&v, n_atoms)
    }
}

/// Errors of a GPU trajectory run.
#[derive(Debug, Error)]
pub enum TrajectoryError {
    #[error(transparent)]
    Solver(#[from] SolverError),
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

fn unsupported(message: String) -> SolverError {
    SolverError::Unsupported {
        solver: "trajectories",
        message,
    }
}

/// Everything the kernels need, in f64, built and checked once per run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub n_atoms: usize,
    pub n_levels: usize,
    pub lanes: u32,
    pub precision: Precision,
    pub seed: u64,
    pub first_traj: u64,
    pub ntraj: u64,
    pub save_trajectories: usize,
    pub pm: bool,
    pub times: Vec<f64>,
    /// Step size of each set, and (set, steps) per save interval.
    pub set_steps: Vec<f64>,
    pub intervals: Vec<[u32; 2]>,
    pub rate_bound: f64,
    head: [f64; HEAD_LEN],
    table: Vec<c64>,
    /// With single-atom rates: `S_j(tau) = exp(-i (c_j - c_{N/2}) tau)`,
    /// `c_j = (chi - i (Gamma + w)/2) j(j+1)`, at `[(set * TABLE_DEPTH + k) * n_irreps + ji]`,
    /// `ji = (N - 2j)/2` (module doc); empty for collective models.
    scale: Vec<c64>,
    psi0: Vec<c64>,
    model: Model,
    /// Single-atom rates: jumps change the irrep.
    pub individual: bool,
    /// The fidelity reference ([`TrajectoryOptions::reference`]), normalised.
    pub reference: Option<Vec<c64>>,
    /// The switching classifier ([`TrajectoryOptions::classifier`]), checked.
    pub classifier: Option<Classifier>,
    /// The level window ([`TrajectoryOptions::level_window`]), checked.
    pub level_window: Option<LevelWindow>,
    /// Time-dependent parameters ([`sched`]): the protocol and its step grid (CPU twin only);
    /// `None` for a constant model.
    pub sched: Option<std::sync::Arc<sched::Sched>>,
}

impl Plan {
    /// Validate the inputs and precompute the step grid and the exponential tables.
    pub fn new(
        model: &Model,
        psi0: &[c64],
        times: &[f64],
        opts: &TrajectoryOptions,
    ) -> Result<Plan, SolverError> {
        Plan::new_protocol(&Protocol::from(*model), psi0, times, opts)
    }

    /// As [`Plan::new`] for a protocol (time-dependent parameters, [`sched`]): a constant
    /// protocol gives exactly [`Plan::new`]'s plan of its base model.
    pub fn new_protocol(
        protocol: &Protocol,
        psi0: &[c64],
        times: &[f64],
        opts: &TrajectoryOptions,
    ) -> Result<Plan, SolverError> {
        let model = &protocol.base;
        let n = Irrep::symmetric(model.n).dim();
        let (norm2, lanes) = check_inputs(model, psi0, times, opts)?;

        // Diagonal of H_eff and the rate bound, over every irrep a trajectory can reach.
        let individual = !model.is_collective();
        let (energy, gamma) = irrep_diag(model, model.n);
        let two_js: Vec<usize> = if individual {
            crate::basis::two_js(model.n)
        } else {
            vec![model.n]
        };
        let mut rate_bound = rate_bound(model, &two_js, &energy, &gamma)?;
        let sched = if protocol.is_constant() {
            None
        } else {
            let (s, bound) = sched::build(protocol, &two_js, times, opts)?;
            rate_bound = bound;
            Some(std::sync::Arc::new(s))
        };
        let hmax = max_step(opts, rate_bound)?;
        let (set_steps, intervals) = step_grid(times, hmax)?;
        if set_steps.len() * TABLE_DEPTH * n > 1 << 26 {
            return Err(unsupported(format!(
                "{} distinct save-interval lengths at N = {}: the exponential tables would be too large; \
                 use equally spaced save times",
                set_steps.len(),
                model.n
            )));
        }
        let table = exp_table(&set_steps, &energy, &gamma);
        // Irrep-changing models: the other irreps' tables are the top irrep's times one
        // complex scale per irrep and table row (module doc, "Exponential tables per irrep").
        let scale = if individual {
            irrep_scales(model, &two_js, &set_steps, &gamma)?
        } else {
            Vec::new()
        };
        let reference = opts
            .reference
            .as_deref()
            .map(|r| check_reference(r, n))
            .transpose()?;
        let classifier = opts.classifier.map(check_classifier).transpose()?;
        let level_window = opts.level_window.map(check_window).transpose()?;
        let inv = 1.0 / norm2.sqrt();
        Ok(Plan {
            n_atoms: model.n,
            n_levels: n,
            lanes,
            precision: opts.precision,
            seed: opts.seed,
            first_traj: opts.first_traj,
            ntraj: opts.ntraj,
            save_trajectories: opts.save_trajectories,
            pm: opts.pm,
            times: times.to_vec(),
            set_steps,
            intervals,
            rate_bound,
            head: head(model, classifier.as_ref()),
            table,
            scale,
            psi0: psi0.iter().map(|z| z * inv).collect(),
            model: *model,
            individual,
            reference,
            classifier,
            level_window,
            sched,
        })
    }

    /// The fidelity reference rounded to T (after normalising in f64), if any.
    pub fn reference_in<T: Real>(&self) -> Option<Vec<Cx<T>>> {
        self.reference.as_ref().map(|r| {
            r.iter()
                .map(|z| Cx::new(T::from_f64(z.re), T::from_f64(z.im)))
                .collect()
        })
    }

    /// Trajectories whose fidelity is written: the saved ones, with a reference.
    pub fn fidelity_count(&self) -> u64 {
        if self.reference.is_some() {
            (self.save_trajectories as u64).min(self.ntraj)
        } else {
            0
        }
    }

    /// The trajectories `offset ..+ count` of this plan as a plan of their own (a unit of the
    /// task's checkpoint): the same streams, and the saved trajectories among them.
    pub fn slice(&self, offset: u64, count: u64) -> Plan {
        let keep = (self.save_trajectories as u64).saturating_sub(offset).min(count);
        Plan {
            first_traj: self.first_traj + offset,
            ntraj: count,
            save_trajectories: keep as usize,
            ..self.clone()
        }
    }

    /// Saves per trajectory.
    pub fn n_saves(&self) -> usize {
        self.times.len()
    }

    /// Phase changes kept per trajectory by the classifier (0: no classifier).
    pub fn max_events(&self) -> u32 {
        self.classifier.map_or(0, |c| c.max_events)
    }

    /// The real parameters: `[Gamma, w, Gamma_phi, Re cm, Im cm, Re cp, Im cp, 1/3, 1/6, 1, 2, 3,
    /// alpha, lo, hi]`, then `(h, q = h 2^-QUANTUM_BITS)` per step-size set. Twin: `rp` in trajectory.wgsl.
    pub fn real_params<T: Real>(&self) -> Vec<T> {
        let mut v: Vec<T> = self.head.iter().map(|&x| T::from_f64(x)).collect();
        for &h in &self.set_steps {
            v.push(T::from_f64(h));
            v.push(T::from_f64(h * (FULL as f64).recip()));
        }
        v
    }

    /// The kernel inputs in precision T (the irrep j = N/2 of the initial state).
    pub fn inputs<T: Real>(&self) -> TwinInputs<T> {
        self.inputs_for(self.n_atoms as u32)
    }

    /// The inputs of the twin for irrep 2j = `two_j` (j < N/2 only with single-atom rates):
    /// its effective collective rates, irrep-changing rates and exponential table.
    pub fn inputs_for<T: Real>(&self, two_j: u32) -> TwinInputs<T> {
        let cx = |z: &c64| Cx::new(T::from_f64(z.re), T::from_f64(z.im));
        let n = two_j as usize + 1;
        let (coll, ind) = irrep_rates(&self.model, two_j as usize);
        let mut rp: Vec<T> = self.real_params();
        for k in 0..3 {
            rp[k] = T::from_f64(coll[k]);
        }
        let table = if two_j as usize == self.n_atoms {
            self.table.iter().map(cx).collect()
        } else {
            // The kernel's `tab`: the top irrep's entry of the same m times the irrep's scale,
            // both rounded to T, multiplied in T (S first, as WGSL `cmul(S, e)`).
            let ji = (self.n_atoms - two_j as usize) / 2;
            let (nir, ntop) = (self.n_irreps(), self.n_levels);
            let rows = self.set_steps.len() * TABLE_DEPTH;
            let mut t = Vec::with_capacity(rows * n);
            for row in 0..rows {
                let s = cx(&self.scale[row * nir + ji]);
                for i in 0..n {
                    let e = cx(&self.table[row * ntop + i + ji]);
                    t.push(Cx::new(s.re * e.re - s.im * e.im, s.re * e.im + s.im * e.re));
                }
            }
            t
        };
        TwinInputs {
            n_levels: n,
            two_j,
            lanes: self.lanes as usize,
            seed: self.seed,
            rp,
            table,
            psi0: if two_j as usize == self.n_atoms {
                self.psi0.iter().map(cx).collect()
            } else {
                vec![Cx::new(T::ZERO, T::ZERO); n]
            },
            intervals: self.intervals.clone(),
            ind: ind.map(T::from_f64),
            max_events: self.max_events(),
            window: self.level_window.map(|w| (T::from_f64(w.tol.sqrt()), w.margin)),
        }
    }

    /// Irreps a trajectory can visit: 2j = N, N-2, ..., 1 or 0 with single-atom rates (N/2 + 1
    /// of them), else only j = N/2.
    pub fn n_irreps(&self) -> usize {
        if self.individual { self.n_atoms / 2 + 1 } else { 1 }
    }

    /// The GPU kernel's real parameters: [`Plan::real_params`], then per irrep
    /// `ji = (N - 2j)/2 = 0..n_irreps` the collective rates with the a0 parts and the six
    /// irrep-changing rates ([`irrep_rates`], [`twin::IND_CHANNELS`] order): nine numbers, the
    /// very values of that irrep's [`TwinInputs::rp`]`[0..3]` and [`TwinInputs::ind`].
    pub fn kernel_rp<T: Real>(&self) -> Vec<T> {
        let mut v = self.real_params::<T>();
        for ji in 0..self.n_irreps() {
            let (coll, ind) = irrep_rates(&self.model, self.n_atoms - 2 * ji);
            v.extend(coll.iter().chain(&ind).map(|&x| T::from_f64(x)));
        }
        v
    }

    /// The GPU kernel's table: the top irrep's `exp(-i D tau)` rows
    /// (`[row * (N + 1) + m + N/2]`, row = set * TABLE_DEPTH + k), then with single-atom rates
    /// the irrep scales `[rows * (N + 1) + row * n_irreps + ji]`, all rounded to T.
    pub fn kernel_table<T: Real>(&self) -> Vec<Cx<T>> {
        let cx = |z: &c64| Cx::new(T::from_f64(z.re), T::from_f64(z.im));
        self.table.iter().chain(&self.scale).map(cx).collect()
    }

    /// Entries of [`kernel_table`](Self::kernel_table), without building it.
    pub fn kernel_table_len(&self) -> usize {
        self.table.len() + self.scale.len()
    }

    /// Steps per save interval.
    pub fn steps(&self) -> Vec<u32> {
        if let Some(s) = &self.sched {
            let mut v = vec![0u32; self.intervals.len()];
            let mut k = 0;
            for g in &s.segments {
                if k < v.len() {
                    v[k] += g.steps;
                }
                k += usize::from(g.save.is_some());
            }
            return v;
        }
        self.intervals.iter().map(|iv| iv[1]).collect()
    }

    /// Step size per save interval (0 for an empty interval).
    pub fn step_sizes(&self) -> Vec<f64> {
        if let Some(s) = &self.sched {
            // The longest step of each save interval.
            let mut v = vec![0.0f64; self.intervals.len()];
            let mut k = 0;
            for g in &s.segments {
                if k < v.len() {
                    v[k] = v[k].max(g.h);
                }
                k += usize::from(g.save.is_some());
            }
            return v;
        }
        self.intervals
            .iter()
            .map(|iv| {
                if iv[1] == 0 {
                    0.0
                } else {
                    self.set_steps[iv[0] as usize]
                }
            })
            .collect()
    }
}

/// Rates in irrep 2j = `two_j` (PHYSICS.md sec. 4): the collective channels J-, J+, Jz with
/// the single-atom a0 parts added (`Gamma + gamma_down a0`, `w + gamma_up a0`,
/// `Gamma_phi + 4 gamma_phi a0`), and the six irrep-changing ones in [`twin::IND_CHANNELS`]
/// order. A collective-only model gets its own rates and zeros.
pub fn irrep_rates(model: &Model, two_j: usize) -> ([f64; 3], [f64; 6]) {
    let coll = [model.gamma_coll, model.pump_coll, model.dephase_coll];
    if model.is_collective() {
        return (coll, [0.0; 6]);
    }
    let (a0, am, ap) = crate::basis::individual_weights(model.n, two_j);
    let (gd, gu, gp) = (model.gamma_down, model.gamma_up, 4.0 * model.gamma_phi);
    (
        [coll[0] + gd * a0, coll[1] + gu * a0, coll[2] + gp * a0],
        [gd * am, gd * ap, gu * am, gu * ap, gp * am, gp * ap],
    )
}

/// Energies and decay rates (the diagonal of H_eff = energy - i gamma/2) of irrep 2j: gamma is
/// the sum of every channel's weight `rate |<j'm'|C|jm>|^2`, so the jump probabilities add up
/// to one exactly (and equal Gamma J+J- + w J-J+ + Gamma_phi Jz^2 + gamma_down (Jz + N/2) +
/// gamma_up (N/2 - Jz) + gamma_phi N, PHYSICS.md sec. 4; test `irrep_rates_sum_to_h_eff`).
pub fn irrep_diag(model: &Model, two_j: usize) -> (Vec<f64>, Vec<f64>) {
    let irrep = Irrep::new(two_j);
    let n = irrep.dim();
    let ([g, w, gphi], ind) = irrep_rates(model, two_j);
    let j = irrep.j();
    let energy = (0..n)
        .map(|k| {
            let m = irrep.m[k];
            model.omega0 * m + model.chi * irrep.jpjm[k] + model.chi_z * m * m
        })
        .collect();
    let gamma = (0..n)
        .map(|k| {
            let m = irrep.m[k];
            let c = g * irrep.jpjm[k] + w * irrep.jmjp[k] + gphi * m * m;
            if model.is_collective() {
                return c;
            }
            let prods = [
                (j + m) * (j + m - 1.0),
                (j - m + 1.0) * (j - m + 2.0),
                (j - m) * (j - m - 1.0),
                (j + m + 1.0) * (j + m + 2.0),
                j * j - m * m,
                (j + 1.0) * (j + 1.0) - m * m,
            ];
            c + ind.iter().zip(prods).map(|(r, p)| r * p.max(0.0)).sum::<f64>()
        })
        .collect();
    (energy, gamma)
}
/// The level window: `tol` in [0, 1e-6] (beyond it the dropped amplitude, up to sqrt(tol) per
/// level and step, would rival RK4's own error: module doc, "Level window"), a margin of at
/// least [`MIN_WINDOW_MARGIN`] levels.
fn check_window(w: LevelWindow) -> Result<LevelWindow, SolverError> {
    if !(0.0..=1e-6).contains(&w.tol) {
        return Err(unsupported(format!(
            "level window tol = {}: expected a number in [0, 1e-6]",
            w.tol
        )));
    }
    if w.margin < MIN_WINDOW_MARGIN {
        return Err(unsupported(format!(
            "level window margin = {}: expected at least {MIN_WINDOW_MARGIN} levels (one step \
             spreads amplitude 4 levels, a jump 1 more)",
            w.margin
        )));
    }
    Ok(w)
}

/// The fidelity reference: N + 1 amplitudes (`n`) with a finite, positive norm; normalised.
fn check_reference(r: &[c64], n: usize) -> Result<Vec<c64>, SolverError> {
    if r.len() != n {
        return Err(unsupported(format!(
            "fidelity reference has {} amplitudes, j = N/2 has {n}",
            r.len()
        )));
    }
    let norm2: f64 = r.iter().map(|z| z.norm_sqr()).sum();
    if !(norm2.is_finite() && norm2 > 0.0) {
        return Err(unsupported(format!("fidelity reference has norm^2 = {norm2}")));
    }
    let inv = 1.0 / norm2.sqrt();
    Ok(r.iter().map(|z| z * inv).collect())
}

/// Check the initial state, the trajectory count, the save times and the lanes; returns
/// |psi0|^2 and the lanes (0 resolved to the default).
fn check_inputs(
    model: &Model,
    psi0: &[c64],
    times: &[f64],
    opts: &TrajectoryOptions,
) -> Result<(f64, u32), SolverError> {
    let n = Irrep::symmetric(model.n).dim();
    if psi0.len() != n {
        return Err(unsupported(format!(
            "initial state has {} amplitudes, the model's N = {} needs {n}",
            psi0.len(),
            model.n
        )));
    }
    let norm2: f64 = psi0.iter().map(|z| z.norm_sqr()).sum();
    if !(norm2.is_finite() && norm2 > 0.0) {
        return Err(unsupported(format!("initial state has norm^2 = {norm2}")));
    }
    if opts.ntraj == 0 {
        return Err(unsupported("ntraj must be at least 1".into()));
    }
    if times.is_empty() || times.iter().any(|t| !t.is_finite()) || times.windows(2).any(|w| w[1] < w[0]) {
        return Err(unsupported(
            "save times must be finite, non-decreasing, and at least one".into(),
        ));
    }
    let lanes = if opts.lanes == 0 {
        default_lanes(n)
    } else {
        opts.lanes
    };
    if !lanes.is_power_of_two() || lanes > 256 {
        return Err(unsupported(format!(
            "lanes = {lanes}: expected a power of two in 1..=256, or 0 for the default"
        )));
    }
    Ok((norm2, lanes))
}

/// The rate bound Lambda over the irreps `two_js` (`energy`, `gamma`: the top irrep's diagonal
/// of H_eff).
fn rate_bound(model: &Model, two_js: &[usize], energy: &[f64], gamma: &[f64]) -> Result<f64, SolverError> {
    let mut rate_bound = 0.0f64;
    for &two_j in two_js {
        let (e, g) = if two_j == model.n {
            (energy.to_vec(), gamma.to_vec())
        } else {
            irrep_diag(model, two_j)
        };
        let rho_v = model.drive.abs() * two_j as f64 / 2.0;
        let dd = (1..e.len())
            .map(|k| c64::new(e[k] - e[k - 1], -0.5 * (g[k] - g[k - 1])).norm())
            .fold(0.0, f64::max);
        let gmax = g.iter().cloned().fold(0.0, f64::max);
        rate_bound = rate_bound.max(rho_v.max(dd).max(gmax));
    }
    if !rate_bound.is_finite() {
        return Err(unsupported("model rates are not finite".into()));
    }
    Ok(rate_bound)
}

/// The largest step: `opts.dt`, else `cfl / Lambda`.
fn max_step(opts: &TrajectoryOptions, rate_bound: f64) -> Result<f64, SolverError> {
    Ok(match opts.dt {
        Some(dt) if dt.is_finite() && dt > 0.0 => dt,
        Some(dt) => return Err(unsupported(format!("dt = {dt}: expected a step > 0"))),
        None => {
            if !(opts.cfl.is_finite() && opts.cfl > 0.0) {
                return Err(unsupported(format!("cfl = {}: expected a number > 0", opts.cfl)));
            }
            if rate_bound > 0.0 {
                opts.cfl / rate_bound
            } else {
                f64::INFINITY
            }
        }
    })
}

/// Step grid: each save interval in equal steps <= hmax; intervals of equal length (to 1e-9
/// relative) share a step-size set and its table. Returns the step of each set and
/// (set, steps) per interval.
#[allow(clippy::type_complexity)]
fn step_grid(times: &[f64], hmax: f64) -> Result<(Vec<f64>, Vec<[u32; 2]>), SolverError> {
    let mut set_len: Vec<(f64, u32)> = Vec::new();
    let mut intervals = Vec::with_capacity(times.len().saturating_sub(1));
    let mut total_steps = 0u64;
    for wdw in times.windows(2) {
        let len = wdw[1] - wdw[0];
        if len == 0.0 {
            intervals.push([0, 0]);
            continue;
        }
        let steps_f = (len / hmax * (1.0 - 1e-12)).ceil().max(1.0);
        if steps_f > u32::MAX as f64 {
            return Err(unsupported(format!(
                "a save interval of {len} needs {steps_f:e} steps of {hmax:e}; save more often"
            )));
        }
        let steps = steps_f as u32;
        total_steps += u64::from(steps);
        let set = match set_len
            .iter()
            .position(|&(l, s)| s == steps && (l - len).abs() <= 1e-9 * l)
        {
            Some(s) => s,
            None => {
                set_len.push((len, steps));
                set_len.len() - 1
            }
        };
        intervals.push([set as u32, steps]);
    }
    if total_steps > 1 << 40 {
        return Err(unsupported(format!(
            "{total_steps} steps per trajectory requested (step {hmax:e}); shorten the run"
        )));
    }
    let set_steps: Vec<f64> = set_len.iter().map(|&(l, s)| l / f64::from(s)).collect();
    Ok((set_steps, intervals))
}

/// With single-atom rates: the scale of every irrep's exponential table relative to the top
/// irrep's, per table row (module doc, "Exponential tables per irrep"); refused where a factor
/// would leave f32's range.
fn irrep_scales(
    model: &Model,
    two_js: &[usize],
    set_steps: &[f64],
    gamma: &[f64],
) -> Result<Vec<c64>, SolverError> {
    let big_j = model.n as f64 / 2.0;
    let top = big_j * (big_j + 1.0);
    let (de, dg): (Vec<f64>, Vec<f64>) = two_js
        .iter()
        .map(|&tj| {
            let j = tj as f64 / 2.0;
            let d = j * (j + 1.0) - top;
            (model.chi * d, (model.gamma_coll + model.pump_coll) * d)
        })
        .unzip();
    // Both factors must stay far inside f32's range (e^+-87): |S| grows to
    // exp((Gamma + w) J(J+1) h/2) at j = 0, the top table falls to exp(-max gamma h/2).
    let hbig = set_steps.iter().cloned().fold(0.0, f64::max);
    let gtop = gamma.iter().cloned().fold(0.0, f64::max);
    let expo = 0.5 * hbig * gtop.max(-dg.iter().cloned().fold(0.0, f64::min));
    if !expo.is_finite() || expo > MAX_TABLE_EXPONENT {
        return Err(unsupported(format!(
            "with single-atom rates the step h = {hbig:e} is too long for the factorised \
             exponential tables: exp(+-{expo:.1}) per step (at most exp(+-{MAX_TABLE_EXPONENT})); \
             use a smaller dt or the default cfl"
        )));
    }
    Ok(exp_table(set_steps, &de, &dg))
}

/// The classifier's parameters, checked: `alpha` in (0, 1], finite `lo < hi`, `max_events` in
/// 1..=[`MAX_EVENTS_LIMIT`].
fn check_classifier(c: Classifier) -> Result<Classifier, SolverError> {
    if !(c.alpha > 0.0 && c.alpha <= 1.0) {
        return Err(unsupported(format!(
            "switching classifier: smoothing weight alpha = {}: expected a number in (0, 1]",
            c.alpha
        )));
    }
    if !(c.lo.is_finite() && c.hi.is_finite() && c.lo < c.hi) {
        return Err(unsupported(format!(
            "switching classifier: thresholds [{}, {}]: expected finite lo < hi",
            c.lo, c.hi
        )));
    }
    if c.max_events == 0 || c.max_events > MAX_EVENTS_LIMIT {
        return Err(unsupported(format!(
            "switching classifier: max_events = {}: expected 1..={MAX_EVENTS_LIMIT}",
            c.max_events
        )));
    }
    Ok(c)
}

/// The header of the real parameters: `[Gamma, w, Gamma_phi, Re cm, Im cm, Re cp, Im cp, 1/3,
/// 1/6, 1, 2, 3, alpha, lo, hi]` ([`Plan::real_params`]; the classifier's three are 0 without one).
fn head(model: &Model, classifier: Option<&Classifier>) -> [f64; HEAD_LEN] {
    let cm = c64::from_polar(0.5 * model.drive, -model.phi);
    let ([g, w, gphi], _) = irrep_rates(model, model.n);
    let c = classifier.map_or([0.0; 3], |c| [c.alpha, c.lo, c.hi]);
    [
        g,
        w,
        gphi,
        cm.re,
        cm.im,
        cm.re,
        -cm.im,
        1.0 / 3.0,
        1.0 / 6.0,
        1.0,
        2.0,
        3.0,
        c[0],
        c[1],
        c[2],
    ]
}

/// exp(-i D tau), D = energy - i gamma/2, for tau = h 2^-k, k = 0..TABLE_DEPTH, per step-size
/// set h: `[(set * TABLE_DEPTH + k) * n + i]`, in f64.
fn exp_table(set_steps: &[f64], energy: &[f64], gamma: &[f64]) -> Vec<c64> {
    let n = energy.len();
    let mut table = Vec::with_capacity(set_steps.len() * TABLE_DEPTH * n);
    for &h in set_steps {
        for k in 0..TABLE_DEPTH {
            let tau = h * 0.5f64.powi(k as i32);
            table.extend((0..n).map(|i| c64::from_polar((-0.5 * gamma[i] * tau).exp(), -energy[i] * tau)));
        }
    }
    table
}

/// The observables ([`OBS_NAMES`]) from one record (`RECORD_LEN` numbers), in f64.
pub fn record_observables(r: &[f64]) -> [f64; N_OBS] {
    let norm = r[0];
    let inv = 1.0 / norm;
    let (pm, p2re, p2im) = (r[3], r[6], r[7]);
    [
        r[4] * inv,
        r[5] * inv,
        r[1] * inv,
        0.25 * (pm + 2.0 * p2re) * inv,
        0.25 * (pm - 2.0 * p2re) * inv,
        r[2] * inv,
        0.5 * p2im * inv,
        0.5 * r[8] * inv,
        0.5 * r[9] * inv,
        r[10],
        0.25 * r[11] * (r[11] + 2.0),
    ]
}

/// Moments from the observable vector (`OBS_NAMES` order).
pub fn moments_of(v: &[f64; N_OBS], n_atoms: usize) -> Moments {
    Moments {
        n: n_atoms,
        mean: [v[0], v[1], v[2]],
        second: [[v[3], v[6], v[7]], [v[6], v[4], v[8]], [v[7], v[8], v[5]]],
    }
}

/// A unit payload that does not hold an accumulator of this run.
fn bad_unit() -> OutputError {
    OutputError::Write {
        path: crate::output::checkpoint::CHECKPOINT_DIR.into(),
        message: "unreadable checkpoint: a trajectory unit does not match this run's save times".into(),
    }
}

/// Streaming reduction over trajectories, fed in trajectory order (shifted sums: the first
/// trajectory's values are subtracted before squaring, so the variance does not cancel).
#[derive(Debug, Clone)]
pub struct Accumulator {
    nsave: usize,
    count: u64,
    shift: Vec<[f64; N_OBS]>,
    s1: Vec<[f64; N_OBS]>,
    s2: Vec<[f64; N_OBS]>,
    keep: usize,
    kept: Vec<SingleTrajectory>,
    /// Sums of the populations and of their squares, `[save * (N + 1) + m + N/2]`.
    pm_s1: Vec<f64>,
    pm_s2: Vec<f64>,
    /// With a classifier ([`Accumulator::classified`]): the phase changes of every trajectory
    /// pushed, in trajectory order (encoded in the checkpoint payload).
    classify: bool,
    changes: Vec<PhaseChanges>,
}

impl Accumulator {
    /// This accumulator also holds the classifier's phase changes (`on`), and its payload
    /// carries them ([`Accumulator::encode`]).
    pub fn classified(mut self, on: bool) -> Self {
        self.classify = on;
        self
    }

    /// Add the phase changes of trajectory `index` (after its records, in trajectory order).
    pub fn push_changes(&mut self, index: u64, count: u32, events: Vec<u32>) {
        self.changes.push(PhaseChanges { index, count, events });
    }

    /// The first trajectory whose phase changes overflowed the classifier's buffer, as
    /// (index, changes).
    pub fn overflow(&self) -> Option<(u64, u32)> {
        self.changes
            .iter()
            .find(|c| c.count as usize > c.events.len())
            .map(|c| (c.index, c.count))
    }

    /// Trajectories pushed so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Add the sums of `other` (later trajectories, e.g. the next unit of a checkpointed run):
    /// its shifted sums are re-shifted onto this accumulator's shift,
    /// `sum (v - a) = S1 + c d`, `sum (v - a)^2 = S2 + 2 d S1 + c d^2` with `d = b - a` (exact
    /// algebra; `d` is of the size of the spread, so nothing cancels). Into an empty
    /// accumulator `other` is copied exactly.
    pub fn absorb(&mut self, other: Accumulator) {
        if other.count == 0 {
            return;
        }
        let keep = self.keep;
        let mut kept = std::mem::take(&mut self.kept);
        if self.count == 0 {
            *self = Accumulator { keep, ..other };
        } else {
            let c = other.count as f64;
            for t in 0..self.nsave {
                for k in 0..N_OBS {
                    let d = other.shift[t][k] - self.shift[t][k];
                    let s1 = other.s1[t][k];
                    self.s2[t][k] += other.s2[t][k] + 2.0 * d * s1 + c * d * d;
                    self.s1[t][k] += s1 + c * d;
                }
            }
            if self.pm_s1.is_empty() {
                self.pm_s1 = other.pm_s1;
                self.pm_s2 = other.pm_s2;
            } else {
                for (a, b) in self.pm_s1.iter_mut().zip(&other.pm_s1) {
                    *a += b;
                }
                for (a, b) in self.pm_s2.iter_mut().zip(&other.pm_s2) {
                    *a += b;
                }
            }
            self.count += other.count;
            self.changes.extend(other.changes);
            kept.extend(other.kept);
        }
        kept.append(&mut self.kept);
        kept.truncate(keep);
        self.kept = kept;
    }

    /// The exact state (f64 bits) as a checkpoint payload ([`Accumulator::decode`]).
    pub fn encode(&self, e: &mut Enc) {
        let flat = |v: &[[f64; N_OBS]]| v.iter().flatten().copied().collect::<Vec<f64>>();
        e.u64(self.nsave as u64).u64(self.count);
        e.f64s(&flat(&self.shift))
            .f64s(&flat(&self.s1))
            .f64s(&flat(&self.s2));
        e.f64s(&self.pm_s1).f64s(&self.pm_s2);
        e.u64(self.kept.len() as u64);
        for tr in &self.kept {
            e.u64(tr.index).f64s(&flat(&tr.values)).f64s(&tr.fidelity);
        }
        if self.classify {
            // Event words are u32: exact as f64.
            e.u64(self.changes.len() as u64);
            for c in &self.changes {
                let ev: Vec<f64> = c.events.iter().map(|&x| f64::from(x)).collect();
                e.u64(c.index).u64(u64::from(c.count)).f64s(&ev);
            }
        }
    }

    /// The accumulator [`Accumulator::encode`] wrote, keeping up to `keep` trajectories; with
    /// `classify`, the phase changes follow.
    pub fn decode(d: &mut Dec, keep: usize, classify: bool) -> Result<Accumulator, OutputError> {
        let (nsave, count) = (d.u64()? as usize, d.u64()?);
        let rows = |v: Vec<f64>| -> Result<Vec<[f64; N_OBS]>, OutputError> {
            v.chunks_exact(N_OBS)
                .map(|c| c.try_into().map_err(|_| bad_unit()))
                .collect()
        };
        let (shift, s1, s2) = (rows(d.f64s()?)?, rows(d.f64s()?)?, rows(d.f64s()?)?);
        if [shift.len(), s1.len(), s2.len()] != [nsave; 3] {
            return Err(bad_unit());
        }
        let (pm_s1, pm_s2) = (d.f64s()?, d.f64s()?);
        let nkept = d.u64()? as usize;
        let mut kept = Vec::new();
        for _ in 0..nkept {
            let index = d.u64()?;
            let values = rows(d.f64s()?)?;
            let fidelity = d.f64s()?;
            kept.push(SingleTrajectory {
                index,
                values,
                fidelity,
            });
        }
        kept.truncate(keep);
        let mut changes = Vec::new();
        if classify {
            for _ in 0..d.u64()? {
                let (index, count) = (d.u64()?, d.u64()?);
                let events = d.f64s()?;
                if count > u64::from(u32::MAX)
                    || events.iter().any(|&x| !(0.0..=f64::from(u32::MAX)).contains(&x))
                {
                    return Err(bad_unit());
                }
                changes.push(PhaseChanges {
                    index,
                    count: count as u32,
                    events: events.into_iter().map(|x| x as u32).collect(),
                });
            }
        }
        Ok(Accumulator {
            nsave,
            count,
            shift,
            s1,
            s2,
            keep,
            kept,
            pm_s1,
            pm_s2,
            classify,
            changes,
        })
    }

    /// Attach the fidelity rows (trajectory order) to the kept trajectories.
    pub fn attach_fidelity(&mut self, fidelity: Vec<Vec<f64>>) {
        for (tr, f) in self.kept.iter_mut().zip(fidelity) {
            tr.fidelity = f;
        }
    }

    pub fn new(nsave: usize, keep: usize) -> Self {
        Accumulator {
            nsave,
            count: 0,
            shift: vec![[0.0; N_OBS]; nsave],
            s1: vec![[0.0; N_OBS]; nsave],
            s2: vec![[0.0; N_OBS]; nsave],
            keep,
            kept: Vec::new(),
            pm_s1: Vec::new(),
            pm_s2: Vec::new(),
            classify: false,
            changes: Vec::new(),
        }
    }

    /// Add trajectory `index` from its records (`nsave * RECORD_LEN` numbers, any precision
    /// already widened to f64).
    /// Add one trajectory's populations (`nsave * (N + 1)` numbers), any order relative to
    /// [`Accumulator::push`].
    pub fn push_pm(&mut self, pm: &[f64]) {
        if self.pm_s1.is_empty() {
            self.pm_s1 = vec![0.0; pm.len()];
            self.pm_s2 = vec![0.0; pm.len()];
        }
        for ((a, b), &p) in self.pm_s1.iter_mut().zip(self.pm_s2.iter_mut()).zip(pm) {
            *a += p;
            *b += p * p;
        }
    }

    /// Means and standard errors of P_m per save (empty without [`Accumulator::push_pm`]).
    fn pm_stats(&self) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        if self.pm_s1.is_empty() || self.nsave == 0 {
            return (Vec::new(), Vec::new());
        }
        let n = self.count as f64;
        let npm = self.pm_s1.len() / self.nsave;
        let mut mean = Vec::with_capacity(self.nsave);
        let mut se = Vec::with_capacity(self.nsave);
        for t in 0..self.nsave {
            let r = t * npm..(t + 1) * npm;
            let m: Vec<f64> = self.pm_s1[r.clone()].iter().map(|s| s / n).collect();
            let e = self.pm_s2[r]
                .iter()
                .zip(&m)
                .map(|(s2, mu)| {
                    if self.count > 1 {
                        (((s2 - n * mu * mu) / (n - 1.0)).max(0.0) / n).sqrt()
                    } else {
                        f64::NAN
                    }
                })
                .collect();
            mean.push(m);
            se.push(e);
        }
        (mean, se)
    }

    pub fn push(&mut self, index: u64, records: &[f64]) {
        debug_assert_eq!(records.len(), self.nsave * RECORD_LEN);
        let first = self.count == 0;
        let mut values = Vec::new();
        for t in 0..self.nsave {
            let v = record_observables(&records[t * RECORD_LEN..(t + 1) * RECORD_LEN]);
            if first {
                self.shift[t] = v;
            }
            for (k, &vk) in v.iter().enumerate() {
                let d = vk - self.shift[t][k];
                self.s1[t][k] += d;
                self.s2[t][k] += d * d;
            }
            if self.kept.len() < self.keep {
                values.push(v);
            }
        }
        if self.kept.len() < self.keep {
            self.kept.push(SingleTrajectory {
                index,
                values,
                fidelity: Vec::new(),
            });
        }
        self.count += 1;
    }

    /// Means, standard errors and xi^2 per save: `(mean[k][t], se[k][t], xi2[t], kept)`.
    #[allow(clippy::type_complexity)]
    pub fn finish(self, n_atoms: usize) -> (Vec<Vec<f64>>, Vec<Vec<f64>>, Vec<f64>, Vec<SingleTrajectory>) {
        let n = self.count as f64;
        let mut mean = vec![vec![0.0; self.nsave]; N_OBS];
        let mut se = vec![vec![f64::NAN; self.nsave]; N_OBS];
        let mut xi2 = Vec::with_capacity(self.nsave);
        for t in 0..self.nsave {
            let mut v = [0.0; N_OBS];
            for k in 0..N_OBS {
                let m1 = self.s1[t][k] / n;
                v[k] = self.shift[t][k] + m1;
                mean[k][t] = v[k];
                if self.count > 1 {
                    let var = ((self.s2[t][k] - self.s1[t][k] * m1) / (n - 1.0)).max(0.0);
                    se[k][t] = (var / n).sqrt();
                }
            }
            xi2.push(moments_of(&v, n_atoms).xi2());
        }
        (mean, se, xi2, self.kept)
    }
}

/// Trajectories per rayon batch on the CPU (bounds the records held at once).
const CPU_BATCH: u64 = 1024;

/// Bytes the host holds for an ensemble of `ntraj` trajectories of `n_atoms` atoms saved at
/// `n_saves` times with `opts` (what grows with the input; checked before anything runs):
/// - one batch of `min(ntraj, CPU_BATCH)` trajectories' records (`n_saves * RECORD_LEN`) and,
///   with [`TrajectoryOptions::pm`], populations (`n_saves * (N + 1)`), in the working
///   precision and again widened to f64 (`cpu_records_t`; the GPU path reads back batches of
///   the same records);
/// - the accumulator: three `n_saves * N_OBS` sums and, with `pm`, the two `n_saves * (N + 1)`
///   population sums; the means and standard errors of P_m (two more) and their rows as
///   written (two more);
/// - the kept trajectories (`save_trajectories * n_saves * N_OBS`), the rows of the means.
pub fn memory_estimate(n_atoms: usize, n_saves: usize, ntraj: u64, opts: &TrajectoryOptions) -> f64 {
    let (s, levels) = (n_saves as f64, n_atoms as f64 + 1.0);
    let word = match opts.precision {
        Precision::F32 => 4.0,
        Precision::F64 => 8.0,
    };
    let pm = if opts.pm { s * levels } else { 0.0 };
    let batch = ntraj.min(CPU_BATCH) as f64 * (s * RECORD_LEN as f64 + pm) * (word + 8.0);
    let sums = 8.0 * (3.0 * s * N_OBS as f64 + 6.0 * pm);
    let kept = 8.0 * opts.save_trajectories as f64 * s * N_OBS as f64;
    let rows = 8.0 * 2.0 * s * N_OBS as f64;
    batch + sums + kept + rows
}

/// Records of trajectories `plan.first_traj + offset ..+ count` from the CPU twin, in f64,
/// trajectory-major (`count * n_saves * RECORD_LEN`).
pub fn cpu_records(plan: &Plan, offset: u64, count: u64) -> Vec<f64> {
    match plan.precision {
        Precision::F32 => cpu_records_t(&Twins::<f32>::new(plan), plan, offset, count).rec,
        Precision::F64 => cpu_records_t(&Twins::<f64>::new(plan), plan, offset, count).rec,
    }
}

/// The twins of a run: the initial irrep's, and with single-atom rates every other irrep's,
/// each built the first time a trajectory jumps into it (shared by all threads).
struct Twins<'p, T> {
    plan: &'p Plan,
    top: Twin<T>,
    /// The fidelity reference in T.
    reference: Option<Vec<Cx<T>>>,
    /// Index (N - 2j)/2 - 1 for 2j = N-2, N-4, ...
    lower: Vec<std::sync::OnceLock<Twin<T>>>,
}

impl<'p, T: Real> Twins<'p, T> {
    fn new(plan: &'p Plan) -> Self {
        let count = if plan.individual { plan.n_atoms / 2 } else { 0 };
        Twins {
            plan,
            top: Twin::new(plan.inputs()),
            reference: plan.reference_in(),
            lower: (0..count).map(|_| std::sync::OnceLock::new()).collect(),
        }
    }

    fn get(&self, two_j: u32) -> &Twin<T> {
        let n = self.plan.n_atoms as u32;
        if two_j >= n {
            return &self.top;
        }
        self.lower[((n - two_j) / 2 - 1) as usize].get_or_init(|| Twin::new(self.plan.inputs_for(two_j)))
    }

    fn run(
        &self,
        traj: u64,
        out: &mut [T],
        pm: Option<&mut [T]>,
        fidelity: Option<&mut [T]>,
        log: Option<&mut PhaseLog<T>>,
    ) {
        let fidelity = fidelity.and_then(|f| self.reference.as_deref().map(|r| (r, f)));
        if let Some(s) = &self.plan.sched {
            self.top
                .run_sched(s, &|tj| self.get(tj), traj, out, pm, fidelity, log);
        } else if self.plan.individual || pm.is_some() || fidelity.is_some() || log.is_some() {
            self.top
                .run_with(&|tj| self.get(tj), traj, out, pm, fidelity, log);
        } else {
            self.top.run(traj, out);
        }
    }
}

/// What the twin wrote for a batch of trajectories, in f64, trajectory-major: the records,
/// with `plan.pm` the populations (`n_saves * (N + 1)` per trajectory; else empty), and the
/// fidelity (`n_saves` per trajectory) of those among them that are saved, with a reference,
/// and with a classifier every trajectory's phase changes (count, events).
struct Batch {
    rec: Vec<f64>,
    pm: Vec<f64>,
    fidelity: Vec<Vec<f64>>,
    changes: Vec<(u32, Vec<u32>)>,
}

/// The twin's output for trajectories `plan.first_traj + offset ..+ count` ([`Batch`]).
fn cpu_records_t<T: Real>(tw: &Twins<'_, T>, plan: &Plan, offset: u64, count: u64) -> Batch {
    let len = plan.n_saves() * RECORD_LEN;
    let npm = if plan.pm {
        plan.n_saves() * (plan.n_atoms + 1)
    } else {
        0
    };
    // The fidelity costs nothing for the trajectories that are not saved.
    let nfid = plan.fidelity_count();
    let classify = plan.classifier.is_some();
    #[allow(clippy::type_complexity)]
    let per: Vec<(Vec<T>, Vec<T>, Vec<T>, Option<PhaseLog<T>>)> = (0..count)
        .into_par_iter()
        .map(|i| {
            let mut out = vec![T::ZERO; len];
            let mut pm = vec![T::ZERO; npm];
            let pm_slot = if plan.pm { Some(pm.as_mut_slice()) } else { None };
            let saved = offset + i < nfid;
            let mut fid = vec![T::ZERO; if saved { plan.n_saves() } else { 0 }];
            let fid_slot = if saved { Some(fid.as_mut_slice()) } else { None };
            let mut log = classify.then(PhaseLog::default);
            tw.run(
                plan.first_traj + offset + i,
                &mut out,
                pm_slot,
                fid_slot,
                log.as_mut(),
            );
            (out, pm, fid, log)
        })
        .collect();
    let mut b = Batch {
        rec: Vec::with_capacity(per.len() * len),
        pm: Vec::with_capacity(per.len() * npm),
        fidelity: Vec::new(),
        changes: Vec::new(),
    };
    for (r, p, f, log) in per {
        b.rec.extend(r.into_iter().map(T::to_f64));
        b.pm.extend(p.into_iter().map(T::to_f64));
        if !f.is_empty() {
            b.fidelity.push(f.into_iter().map(T::to_f64).collect());
        }
        if let Some(l) = log {
            b.changes.push((l.count, l.events));
        }
    }
    b
}

/// The fidelity along the saved trajectories of `plan` (with a reference; else empty), from
/// the CPU twin: trajectory `plan.first_traj + k` replayed from its own Philox stream
/// (seed, index), with `plan`'s lanes and precision. For an ensemble run on the GPU with the
/// same `plan`, the twin follows each GPU trajectory to rounding (the same jumps at the same
/// quanta; module doc of `backend::gpu::trajectory`, "Agreement with the CPU twin").
pub fn replay_fidelity(plan: &Plan) -> Vec<Vec<f64>> {
    let count = plan.fidelity_count();
    if count == 0 {
        return Vec::new();
    }
    match plan.precision {
        Precision::F32 => cpu_records_t(&Twins::<f32>::new(plan), plan, 0, count).fidelity,
        Precision::F64 => cpu_records_t(&Twins::<f64>::new(plan), plan, 0, count).fidelity,
    }
}

/// Attach the fidelity rows (trajectory order, from [`replay_fidelity`] or the CPU run) to
/// the saved trajectories of `ens`.
pub fn attach_fidelity(ens: &mut EnsembleResult, fidelity: Vec<Vec<f64>>) {
    for (tr, f) in ens.trajectories.iter_mut().zip(fidelity) {
        tr.fidelity = f;
    }
}

/// The plan of an ensemble on the CPU (the CPU's default lanes, [`CPU_LANES`]).
pub fn cpu_plan(
    model: &Model,
    psi0: &[c64],
    times: &[f64],
    opts: &TrajectoryOptions,
) -> Result<Plan, SolverError> {
    let opts = TrajectoryOptions {
        lanes: if opts.lanes == 0 { CPU_LANES } else { opts.lanes },
        ..opts.clone()
    };
    Plan::new(model, psi0, times, &opts)
}

/// As [`cpu_plan`] for a protocol (time-dependent parameters, [`sched`]).
pub fn cpu_plan_protocol(
    protocol: &Protocol,
    psi0: &[c64],
    times: &[f64],
    opts: &TrajectoryOptions,
) -> Result<Plan, SolverError> {
    let opts = TrajectoryOptions {
        lanes: if opts.lanes == 0 { CPU_LANES } else { opts.lanes },
        ..opts.clone()
    };
    Plan::new_protocol(protocol, psi0, times, &opts)
}

/// As [`run_cpu`] for a protocol (time-dependent parameters, [`sched`]).
pub fn run_cpu_protocol(
    protocol: &Protocol,
    psi0: &[c64],
    times: &[f64],
    opts: &TrajectoryOptions,
) -> Result<EnsembleResult, SolverError> {
    let start = std::time::Instant::now();
    let plan = cpu_plan_protocol(protocol, psi0, times, opts)?;
    let acc = cpu_unit(&plan, 0, plan.ntraj);
    let device = format!("{} rayon threads", rayon::current_num_threads());
    Ok(finish(&plan, acc, "cpu", device, start))
}

/// The trajectories `offset ..+ count` of `plan` on the CPU, reduced (with the fidelity of
/// the saved ones among them).
pub fn cpu_unit(plan: &Plan, offset: u64, count: u64) -> Accumulator {
    let sub = plan.slice(offset, count);
    let mut acc = Accumulator::new(sub.n_saves(), sub.save_trajectories).classified(sub.classifier.is_some());
    let fidelity = match sub.precision {
        Precision::F32 => cpu_ensemble::<f32>(&sub, &mut acc),
        Precision::F64 => cpu_ensemble::<f64>(&sub, &mut acc),
    };
    acc.attach_fidelity(fidelity);
    acc
}

/// Run the ensemble on the CPU (rayon over trajectories).
pub fn run_cpu(
    model: &Model,
    psi0: &[c64],
    times: &[f64],
    opts: &TrajectoryOptions,
) -> Result<EnsembleResult, SolverError> {
    let start = std::time::Instant::now();
    let plan = cpu_plan(model, psi0, times, opts)?;
    let acc = cpu_unit(&plan, 0, plan.ntraj);
    let device = format!("{} rayon threads", rayon::current_num_threads());
    Ok(finish(&plan, acc, "cpu", device, start))
}

/// Push the ensemble into `acc`; returns the fidelity rows of the saved trajectories.
fn cpu_ensemble<T: Real>(plan: &Plan, acc: &mut Accumulator) -> Vec<Vec<f64>> {
    let tw = Twins::<T>::new(plan);
    let len = plan.n_saves() * RECORD_LEN;
    let mut fidelity = Vec::new();
    let mut done = 0;
    while done < plan.ntraj {
        let count = CPU_BATCH.min(plan.ntraj - done);
        let b = cpu_records_t(&tw, plan, done, count);
        for (i, r) in b.rec.chunks_exact(len).enumerate() {
            acc.push(plan.first_traj + done + i as u64, r);
        }
        if plan.pm {
            for p in b.pm.chunks_exact(plan.n_saves() * (plan.n_atoms + 1)) {
                acc.push_pm(p);
            }
        }
        for (i, (count, events)) in b.changes.into_iter().enumerate() {
            acc.push_changes(plan.first_traj + done + i as u64, count, events);
        }
        fidelity.extend(b.fidelity);
        done += count;
    }
    fidelity
}

/// The ensemble result of `plan` from the records pushed into `acc` (its count is the
/// ensemble's size: a shard or an interrupted run holds part of the plan), for
/// the backend `backend` on `device`, timed from `start`: the last step of every backend's
/// ensemble run ([`run_cpu`], and the GPU's `backend::gpu::trajectory::run_gpu`).
pub fn finish(
    plan: &Plan,
    mut acc: Accumulator,
    backend: &'static str,
    device: String,
    start: std::time::Instant,
) -> EnsembleResult {
    let (pm_mean, pm_se) = acc.pm_stats();
    let ntraj = acc.count;
    let changes = std::mem::take(&mut acc.changes);
    let (mean, se, xi2, trajectories) = acc.finish(plan.n_atoms);
    EnsembleResult {
        times: plan.times.clone(),
        ntraj,
        first_traj: plan.first_traj,
        seed: plan.seed,
        precision: plan.precision,
        backend,
        device,
        lanes: plan.lanes,
        steps: plan.steps(),
        step_sizes: plan.step_sizes(),
        rate_bound: plan.rate_bound,
        mean,
        se,
        xi2,
        trajectories,
        changes,
        pm_mean,
        pm_se,
        wall_s: start.elapsed().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::moments_pure;
    use crate::state::pure::coherent;

    /// The record layout and `record_observables` reproduce `observe::moments_pure` (f64).
    #[test]
    fn record_matches_moments_pure() {
        let n = 9;
        let psi: Vec<c64> = coherent(n, 1.1, 0.7)
            .iter()
            .enumerate()
            .map(|(k, z)| z * c64::from_polar(1.0 + 0.05 * k as f64, 0.3 * (k * k) as f64))
            .collect();
        let model = Model {
            n,
            gamma_coll: 1.0,
            ..Default::default()
        };
        let opts = TrajectoryOptions {
            ntraj: 1,
            precision: Precision::F64,
            lanes: 4,
            ..Default::default()
        };
        let plan = Plan::new(&model, &psi, &[0.0], &opts).unwrap();
        let rec = cpu_records(&plan, 0, 1);
        let v = record_observables(&rec);
        let nrm: f64 = psi.iter().map(|z| z.norm_sqr()).sum();
        let unit: Vec<c64> = psi.iter().map(|z| z / nrm.sqrt()).collect();
        let m = moments_pure(&unit);
        let want = [
            m.mean[0],
            m.mean[1],
            m.mean[2],
            m.second[0][0],
            m.second[1][1],
            m.second[2][2],
            m.second[0][1],
            m.second[0][2],
            m.second[1][2],
            0.0,
            4.5 * 5.5, // j(j+1) of the record's irrep, j = N/2
        ];
        for k in 0..N_OBS {
            assert!(
                (v[k] - want[k]).abs() < 1e-12,
                "{}: {} vs {}",
                OBS_NAMES[k],
                v[k],
                want[k]
            );
        }
    }

    /// The reduction order changes only rounding, and lanes = 1 is the plain sequential sum.
    #[test]
    fn reduction_lanes_change_only_rounding() {
        let model = Model {
            n: 40,
            gamma_coll: 1.0,
            drive: 30.0,
            chi: 0.5,
            ..Default::default()
        };
        let psi = coherent(40, 2.0, 0.0);
        let times: Vec<f64> = (0..5).map(|i| 0.01 * i as f64).collect();
        let mut out = Vec::new();
        for lanes in [1, 8, 16, 64, 256] {
            let opts = TrajectoryOptions {
                ntraj: 3,
                precision: Precision::F64,
                lanes,
                ..Default::default()
            };
            let plan = Plan::new(&model, &psi, &times, &opts).unwrap();
            out.push(cpu_records(&plan, 0, 3));
        }
        for o in &out[1..] {
            for (a, b) in o.iter().zip(&out[0]) {
                assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }

    /// As above with irrep-changing jumps that shrink the ladder past a multiple of the twin's
    /// padding (2j + 1 = 21 -> 15 levels: 32 -> 16 padded): the sums must cover only the
    /// current irrep's levels. Before the fix, lanes >= 8 also summed the longer irrep's stale
    /// terms left in the work vectors, and these records differed by 1e-4 and more.
    #[test]
    fn reduction_lanes_change_only_rounding_after_irrep_changes() {
        let model = Model {
            n: 20,
            gamma_coll: 1.0,
            drive: 10.0,
            chi: 0.5,
            gamma_down: 20.0,
            gamma_phi: 5.0,
            ..Default::default()
        };
        let psi = coherent(20, 2.0, 0.0);
        let times: Vec<f64> = (0..9).map(|i| 0.01 * i as f64).collect();
        let mut out = Vec::new();
        for lanes in [1, 8, 16, 64] {
            let opts = TrajectoryOptions {
                ntraj: 4,
                precision: Precision::F64,
                lanes,
                ..Default::default()
            };
            let plan = Plan::new(&model, &psi, &times, &opts).unwrap();
            out.push(cpu_records(&plan, 0, 4));
        }
        let lowest = out[0].chunks(RECORD_LEN).map(|r| r[11]).fold(20.0, f64::min);
        assert!(lowest <= 14.0, "no trajectory reached 2j <= 14 (lowest {lowest})");
        for o in &out[1..] {
            for (a, b) in o.iter().zip(&out[0]) {
                assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }

    /// H_eff's decay rates in every irrep are the sum of the channel weights, which must equal
    /// Gamma J+J- + w J-J+ + Gamma_phi Jz^2 + gamma_down (Jz + N/2) + gamma_up (N/2 - Jz) +
    /// gamma_phi N (PHYSICS.md sec. 4): the a0/a-/a+ weights preserve the trace.
    #[test]
    fn irrep_rates_sum_to_h_eff() {
        for n in [1usize, 4, 5, 30] {
            let model = Model {
                n,
                gamma_coll: 0.6,
                pump_coll: 0.2,
                dephase_coll: 0.3,
                gamma_down: 0.7,
                gamma_up: 0.4,
                gamma_phi: 0.25,
                ..Default::default()
            };
            for two_j in crate::basis::two_js(n) {
                let (_, g) = irrep_diag(&model, two_j);
                let irrep = Irrep::new(two_j);
                for (k, &gk) in g.iter().enumerate() {
                    let m = irrep.m[k];
                    let want = 0.6 * irrep.jpjm[k]
                        + 0.2 * irrep.jmjp[k]
                        + 0.3 * m * m
                        + 0.7 * (m + n as f64 / 2.0)
                        + 0.4 * (n as f64 / 2.0 - m)
                        + 0.25 * n as f64;
                    assert!(
                        (gk - want).abs() < 1e-12 * want.max(1.0),
                        "N={n} 2j={two_j} m={m}: {gk} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn accepts_individual_rates_refuses_bad_input() {
        let model = Model {
            n: 4,
            gamma_down: 0.1,
            ..Default::default()
        };
        let psi = coherent(4, 1.0, 0.0);
        let opts = TrajectoryOptions::default();
        assert!(Plan::new(&model, &psi, &[0.0, 1.0], &opts).unwrap().individual);
        // A hand-set step far beyond the rate bound would push the factorised tables out of
        // f32's range: refused, naming the step.
        let coll = Model {
            gamma_coll: 1.0,
            ..model
        };
        let long = TrajectoryOptions {
            dt: Some(100.0),
            ..Default::default()
        };
        let err = Plan::new(&coll, &psi, &[0.0, 100.0], &long)
            .unwrap_err()
            .to_string();
        assert!(err.contains("step h = 1e2") && err.contains("dt"), "{err}");
        assert!(Plan::new(&coll, &psi, &[0.0, 1.0], &opts).is_ok());
        let model = Model { n: 4, ..model };
        let model = Model {
            gamma_down: 0.0,
            ..model
        };
        assert!(Plan::new(&model, &psi[..3], &[0.0], &opts).is_err());
        assert!(Plan::new(&model, &psi, &[1.0, 0.0], &opts).is_err());
        let bad = TrajectoryOptions {
            lanes: 3,
            ..Default::default()
        };
        assert!(Plan::new(&model, &psi, &[0.0], &bad).is_err());
    }
}
