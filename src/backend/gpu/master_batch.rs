//! Batched exact master equation on the GPU: B states of the same N (one [`Model`] and one
//! initial state per batch element), integrated from `times[0]` to every save time by adaptive
//! Dormand-Prince 5(4), in one kernel (`shaders/master_batch.wgsl`), for two equations:
//!
//! * [`MasterBatchGpu::run`]: the collective master equation in j = N/2 (PHYSICS.md sections
//!   1-2; stencil in the module doc of [`crate::solver::master`]), CPU twin
//!   [`crate::solver::master::evolve`]:
//!
//!   ```text
//!   drho/dt = -i[H, rho] + Gamma D[J-] rho + w D[J+] rho + Gamma_phi D[Jz] rho
//!   H = omega0 Jz + Omega (cos phi Jx + sin phi Jy) + chi J+J- + chi_z Jz^2
//!   ```
//!
//! * [`MasterBatchGpu::run_blocks`]: the permutation-invariant block master equation with the
//!   single-atom rates gamma_down, gamma_up, gamma_phi (PHYSICS.md section 3; module doc of
//!   [`crate::solver::blocks`]), CPU twin [`crate::solver::blocks::evolve`]. The state is the
//!   blocks R_j, 2j = N, N-2, ...; each block evolves under the collective-shaped stencil with
//!   its own coefficients (`blocks.rs` merges the single-atom terms' within-block parts into
//!   the jump weights and a per-level loss) plus up to six inflow terms from j +- 1,
//!   `(R_j)_{r,c} += f(r+s) f(c+s) (R_src)_{r+s,c+s}`.
//!
//! # One kernel for both
//!
//! A batch element is a set of blocks sharing one layout across the batch ([`MasterBatchBlock`]:
//! size, offsets, and the list of inflow terms with source block and shift). The collective
//! equation is the one-block case with no inflow, so both run the same kernel and the same
//! arithmetic: the stencil code is that of the collective kernel with the block's size in place
//! of N + 1, and an inflow term is one more product per element. (Alternatives: a second kernel
//! for the blocks would have duplicated the integrator, the dispatch logic and the loop
//! budget; a per-element layout would have let elements differ in which inflow terms they have,
//! but the layout is the union over the batch instead: an element without a term gets zero
//! factors, and adding 0 changes nothing, so the arithmetic still equals the CPU twin's, which
//! skips the term.) The host computes every number in f64 as the CPU twin does
//! ([`crate::solver::blocks`]'s `stencil`, the same `BlockOp` the CPU applies) and rounds it
//! once: the kernel evaluates no transcendental function. The pipeline constant `INFLOW`
//! compiles the inflow out of the collective pipeline: llvmpipe runs branches under masks, and
//! the dead inflow branch made the collective batch measurably slower on lavapipe (timings in
//! BENCHMARKS.md, "Batched master equation").
//!
//! # Same algorithm as the CPU twin
//!
//! * **Frame**: the drive phase is a gauge, so the host rotates rho0 into the phi = 0 frame
//!   (`g_r conj(g_c) rho_rc`, `g_k = e^{i phi k}`, in f64) and the results back, exactly as
//!   `master::evolve` does; the kernel's couplings are real.
//! * **Stencil coefficients** (`ure, E, m, sqrt(Gamma) jm, sqrt(w) jm, h_{k-1}, h_k,
//!   Gamma_phi/2` per level of every block, `master.rs::Coeffs`) and the inflow factors f per
//!   source level are computed on the host in f64 and rounded once to the working precision,
//!   so the kernel needs no sqrt, sin or cos at all. The inflow adds its terms after the
//!   stencil, in the CPU's order, each as `(f(r+s) f(c+s)) rho_src`.
//! * **Integrator**: the tableau, the error norm
//!   `sqrt(mean_i (e_i / (atol + rtol max(|y_i|, |ynew_i|)))^2)`, the PI controller, the
//!   clipping onto save times, the rejection rule, the step-size floor and Hairer's initial
//!   step are those of [`crate::solver::ode`]. The kernel stores full blocks; for a Hermitian
//!   rho0 (the CPU twin's criterion) it weights the components so that the mean runs over
//!   exactly the real components of the CPU's packed upper triangles (sum over blocks of
//!   d(d+1)), so both compute the same norm and take the same steps up to rounding. Measured
//!   on the block equation (`tests/gpu_blocks_batch.rs`, every term on, N = 5 and 8, rtol
//!   1e-10): equal step counts and <= 5e-16 deviation in f64; f32 within 1.4e-7.
//! * **f64 kernel**: only arithmetic and sqrt run in f64 (DESIGN.md: WGSL's f64 pow/exp/log
//!   are broken). The two powers of the controller (`err^0.17`, `err_old^0.04`) and the
//!   initial-step power `(0.01/d)^0.2` are evaluated in f32 with the argument clamped to
//!   [1e-30, 1e30]: they only choose step sizes (relative error ~1e-7 in h, absorbed by the
//!   error control), never enter the solution. Measured: at rtol 1e-10 the f64 kernel takes
//!   exactly the CPU twin's steps and agrees to ~1e-15; at rtol 1e-6 on stiff, often-rejecting
//!   problems a near-threshold accept/reject decision can flip, and the two solutions then
//!   differ at the tolerance level (1e-8 - 2e-7 seen at N = 50), as two runs of any adaptive
//!   integrator with slightly different step sizes do.
//! * **f32 kernel**: the error estimate itself is computed in f32, so tolerances below
//!   rtol ~ 1e-6 measure rounding rather than truncation; use rtol >= 1e-6 (the tests use
//!   rtol 1e-6, atol 1e-9 and see 1e-7 - 1e-6 deviations from the f64 CPU twin).
//! * **Time** is kept as an unevaluated pair hi + lo of elapsed time since `times[0]`, and the
//!   save times are passed the same way: in f32 the clock is exact to ~2^-48 relative and each
//!   saved state is at its requested time to the rounding of one step size, not of t.
//! * **Result**: for a Hermitian rho0 the returned matrices are Hermitised ((rho + rho^dag)/2,
//!   which the CPU twin's packed storage gives by construction); the anti-Hermitian rounding
//!   removed is reported as [`BatchStats::max_hermiticity_error`].
//!
//! # Schedules
//!
//! [`MasterBatchGpu::run_protocols`] takes one time-dependent protocol (`model::schedule`)
//! per element of the collective equation, CPU twin
//! [`crate::solver::master::evolve_protocol`]. Every schedule is affine on the pieces between
//! the protocol's breaks, so the host sends per element a table of pieces: each piece's start
//! `at` (a time pair since `times[0]`) and the values at `at` and rates of omega0, Omega, chi,
//! chi_z, Gamma, w, Gamma_phi (`v(t) = v(at) + rate (t - at)`). The stencil's coefficients are
//! affine in these parameters once the square roots are gone from what is stored:
//!
//! ```text
//! ure_k = -(Gamma jpjm_k + w jmjp_k)/2      E_k = omega0 m_k + chi jpjm_k + chi_z m_k^2
//! h_k = (Omega/2) jp_k                     Gamma_phi/2
//! dn_r dn_c = Gamma jm_{r+1} jm_{c+1}      up_r up_c = w jm_r jm_c
//! ```
//!
//! so the kernel's scheduled pipeline (pipeline constant `SCHED`) reads the level numbers
//! `(m, jpjm, jmjp, jp_{k-1}, jp_k, jm_{k+1}, jm_k)` instead of the coefficients and forms the
//! coefficients per element from the piece's parameters at each stage's time
//! `(t - at) + c_i h` (no sqrt, no transcendental: only arithmetic, safe in f64). The CPU twin
//! forms `(sqrt(Gamma) jm)(sqrt(Gamma) jm)` and evaluates the schedule's own formula at the
//! absolute stage time: the same numbers to a few ulp. The step control follows
//! `ode::integrate_real_pieces` rule for rule, so both take the same steps: breaks strictly
//! inside `(times[0], t_end)`; the first piece starts at the last break within
//! `tiny = 64 eps max(|t0|, |t_end|, span)` of `times[0]`; the next break is the step's target
//! when it lies more than `tiny` before the next save (a break within `tiny` of a save is that
//! save's); after an accepted step ending within `tiny` of the next break the element moves to
//! the next piece and recomputes its first stage with the new formula (one more right-hand
//! side, counted). The piece index lives in the control block, so a split into dispatches
//! changes nothing. A scheduled `phi` is refused by name (the drive-phase frame is no longer
//! one constant gauge: the kernel's couplings would be complex and time-dependent), and so are
//! single-atom rates (the block equation's inflow factors `f` are square roots of rates built
//! on the host; its batch stays constant-parameter). A batch of constant protocols runs the
//! constant pipeline, bit for bit the output of [`MasterBatchGpu::run`]. Measured on lavapipe
//! (`tests/gpu_master_batch_schedule.rs`): see that file's module doc.
//!
//! # Mapping
//!
//! One workgroup of [`DEFAULT_LANES`] invocations per batch element; in each block invocation
//! `l` owns the block's elements `e = l, l + lanes, ...` (row-major, (r, c) stepped without a
//! division), so neighbouring invocations touch neighbouring addresses. A pass loops over the
//! blocks, then over the block's elements: a flat loop over all blocks' elements that finds
//! its block inside the loop body was tried first and broke llvmpipe's loop budget (below):
//! llvmpipe runs both sides of a branch under masks, so the block search's loop ran for every
//! element. Small blocks leave lanes idle (N = 30 at 256 lanes: 29 rounds per pass instead of
//! 22). Each element keeps [`SLOTS`] vectors of `len` = sum_j (2j+1)^2 complex numbers in
//! storage (n^2 for the collective equation; y, two ping-pong stage inputs, k1..k7): the
//! stencil reads neighbours written by other invocations, and one stage vector of N = 50
//! (n^2 = 2601 complex, 21 KB in f32) already fills most of lavapipe's 32 KiB of workgroup
//! memory, so workgroup memory would cap N near 60 and two ping-pong inputs would not fit at
//! all. A stage pass computes `k_s = L(Y_s)` for the invocation's elements and, in the same
//! loop, the next stage input `Y_{s+1}` (it needs only those elements), so one storage
//! barrier separates stages; the error norm is a workgroup tree reduction whose result every
//! invocation reads with `workgroupUniformLoad`, so the accept/reject decision and all control
//! flow stay uniform. FSAL and y/ynew swap slot indices, not data. The kind of pass (which
//! stage combination, error norm, initial-step sums) is a uniform `switch` *outside* the
//! element loop, one loop per case: llvmpipe executes control flow under SIMD masks, and with
//! the switch inside the loop every case cost every element (measurably slower).
//!
//! 64, 128 and 256 lanes run within the machine's noise of each other on lavapipe
//! (BENCHMARKS.md); 256 is the default (more invocations per element for large N on real
//! GPUs); [`MasterBatchOptions::lanes`] overrides it. lavapipe is for testing the kernel, never
//! for speed (timings against the CPU twin: BENCHMARKS.md, "Batched master equation"). On a
//! real GPU a batch is one workgroup per point: batches of hundreds of points are needed to
//! fill a large GPU.
//!
//! # Dispatches, and llvmpipe's loop limit
//!
//! The integration state of every element (time pair, h, err_old, counters, slot indices)
//! lives in a storage array of [`MasterBatchCtrlF32`]/[`MasterBatchCtrlF64`] between
//! dispatches. A dispatch runs at most `attempts` step attempts per element (auto: about 2^21
//! matrix elements of stage work per workgroup, so a dispatch stays short of any watchdog),
//! and the host re-dispatches through the batch driver ([`super::driver`], `UntilDone`: 1, 2,
//! 4, ... up to 16 dispatches per submission) until every element is done or failed; a round
//! in which no element makes progress is an error, never a hang. Finished workgroups return
//! at once, so a batch costs what its slowest element costs.
//!
//! llvmpipe ends every loop of a shader invocation after 65535 loop iterations in total
//! ([`super::driver`]); a long dispatch then integrates with half-done stage passes (found
//! here: N = 50 at 64 lanes went wrong after ~200 attempts in one dispatch). So the kernel
//! counts its own loop iterations (`LoopCosts`, the kernel's twin) and, on a software adapter,
//! ends the dispatch before [`SOFTWARE_LOOP_BUDGET`]; pending saves resume first in the next
//! one. Real GPUs have no such limit (budget `u32::MAX`). A
//! problem whose single step needs more than the budget (N > ~1300 at 256 lanes, beyond
//! lavapipe's binding size anyway) is refused on a software adapter. The test
//! `gpu_split_into_dispatches_changes_nothing` fails without the budget.
//!
//! # Memory
//!
//! Per element: `SLOTS len` complex numbers of work and `saves x out_len` complex numbers of
//! output (`out_len` = len, or 5 sum_j (2j+1) for [`BatchOutput::Band`]), in one binding each;
//! the block equation needs ~N^3/6 instead of N^2 per vector (N = 100: 176,851 complex, 14 MB
//! of f32 work per element; lavapipe's 128 MiB binding takes N <= ~200 in f32). The batch
//! runs in chunks of elements that fit the device's storage binding size
//! (`max_storage_buffer_binding_size`, 128 MiB on lavapipe), checked before any allocation:
//! an element that does not fit alone is refused with [`GpuError::TooLarge`] (e.g. f32 work
//! of one element needs 80 n^2 bytes: N <= 1294 on lavapipe). Buffers, the bind group and the
//! pipelines are kept between calls and grown when a call needs more.
//!
//! # Failures
//!
//! Input errors (individual rates given to [`MasterBatchGpu::run`], mismatched dimensions, bad
//! tolerances or times) are refused
//! before any GPU work ([`MasterBatchError::Input`]); device errors are
//! [`MasterBatchError::Gpu`]; an element whose integration fails (step size too small, too
//! many steps, a non-finite state) reports its own [`SolverError`] in
//! [`MasterBatch::elements`] while the others complete.

use super::driver::{
    self, Chunk, ElementState, Grown, Names, ReadBack, ST_DONE, ST_INIT, ST_MAXSTEPS, ST_NONFINITE, ST_SMALL,
    UntilDone,
};
use super::shaders::{self, ShaderDef};
use super::{GpuContext, GpuError, lock};
use crate::basis::Irrep;
use crate::error::SolverError;
use crate::model::{Model, Protocol};
use crate::precision::Precision;
use crate::solver::blocks::BlockStencil;
use crate::solver::ode::OdeOptions;
use crate::state::{BlockState, DensityMatrix};
use bytemuck::{Pod, Zeroable};
use num_complex::Complex64 as c64;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use thiserror::Error;

/// Work vectors per batch element: y, the stage inputs A and B, k1..k7 (twin of `SLOTS` in
/// the kernel).
pub const SLOTS: u64 = 10;
/// Invocations per batch element unless [`MasterBatchOptions::lanes`] says otherwise.
pub const DEFAULT_LANES: u32 = 256;
/// Matrix elements of stage work per workgroup and dispatch that set the automatic number of
/// step attempts per dispatch (module doc).
const ATTEMPT_ELEMS: u64 = 1 << 21;
/// Most step attempts per dispatch.
const MAX_ATTEMPTS: u64 = 4096;
/// Largest work buffer of one chunk even where the binding limit allows more.
const MAX_CHUNK_WORK_BYTES: u64 = 1 << 30;
/// Loop iterations per invocation and dispatch on a software adapter (the driver's, module
/// doc of [`super::driver`]).
pub use super::driver::SOFTWARE_LOOP_BUDGET;

/// Initial slot indices of y, A, B, k1, k7 (k2..k6 are fixed at 4..8).
const SLOT_INIT: [u32; 5] = [0, 1, 2, 3, 9];

/// What each batch element returns per save time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchOutput {
    /// The whole density matrix.
    #[default]
    Full,
    /// The five central diagonals q = c - r = -2..2 ([`Band`]): everything the first and second
    /// moments of J need, 5n instead of n^2 numbers per save.
    Band,
}

/// Options of [`MasterBatchGpu::run`] besides the integrator's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MasterBatchOptions {
    /// Working precision of the kernel (F64 needs SHADER_F64).
    pub precision: Precision,
    /// Full matrices or the central band.
    pub output: BatchOutput,
    /// Invocations per element (a power of two, 1..=256); 0: [`DEFAULT_LANES`].
    pub lanes: u32,
    /// Step attempts per element and dispatch; 0: automatic (module doc).
    pub attempts_per_dispatch: u32,
}

impl Default for MasterBatchOptions {
    fn default() -> Self {
        MasterBatchOptions {
            precision: Precision::F32,
            output: BatchOutput::Full,
            lanes: 0,
            attempts_per_dispatch: 0,
        }
    }
}

/// The central band of a density matrix: `data[(q + 2) dim + min(r, c)]` = rho_rc for
/// q = c - r in -2..=2 (entries past the end of a short diagonal are 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub dim: usize,
    pub data: Vec<c64>,
}

impl Band {
    /// rho_rc if |c - r| <= 2, else None.
    pub fn get(&self, r: usize, c: usize) -> Option<c64> {
        let q = c as isize - r as isize;
        (q.abs() <= 2 && r < self.dim && c < self.dim)
            .then(|| self.data[(q + 2) as usize * self.dim + r.min(c)])
    }

    /// The trace.
    pub fn trace(&self) -> c64 {
        self.data[2 * self.dim..3 * self.dim].iter().sum()
    }

    /// A density matrix with the band filled and zeros elsewhere: exact for every observable
    /// up to second order in J ([`crate::observe::moments`] reads only |c - r| <= 2).
    pub fn to_density_matrix(&self) -> DensityMatrix {
        let n = self.dim;
        let mut dm = DensityMatrix::zeros(n);
        for r in 0..n {
            for c in r.saturating_sub(2)..(r + 3).min(n) {
                if let Some(v) = self.get(r, c) {
                    dm.data[r * n + c] = v;
                }
            }
        }
        dm
    }
}

/// The saved states of one batch element, one per requested time.
#[derive(Debug, Clone, PartialEq)]
pub enum Saves {
    Full(Vec<DensityMatrix>),
    Band(Vec<Band>),
    /// Block batch ([`MasterBatchGpu::run_blocks`]): every block R_j whole.
    Blocks(Vec<BlockState>),
    /// Block batch, band output: per save the band of every block (largest j first).
    BlockBands(Vec<Vec<Band>>),
}

/// A block state with the bands of `bands` (one per block, largest j first) filled and zeros
/// elsewhere: exact for every observable up to second order in J, <J^2> and P_m.
pub fn block_state_from_bands(bands: &[Band]) -> BlockState {
    let n_atoms = bands.first().map_or(0, |b| b.dim.saturating_sub(1));
    let mut st = BlockState::zeros(n_atoms);
    for (b, band) in bands.iter().enumerate() {
        let o = st.offsets[b];
        let d = band.dim;
        for r in 0..d {
            for c in r.saturating_sub(2)..(r + 3).min(d) {
                if let Some(v) = band.get(r, c) {
                    st.data[o + r * d + c] = v;
                }
            }
        }
    }
    st
}

impl Saves {
    /// Number of saved states.
    pub fn len(&self) -> usize {
        match self {
            Saves::Full(v) => v.len(),
            Saves::Band(v) => v.len(),
            Saves::Blocks(v) => v.len(),
            Saves::BlockBands(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moments of J of every saved state ([`crate::observe::moments`], summed over the blocks
    /// for a block batch).
    pub fn moments(&self) -> Vec<crate::observe::Moments> {
        match self {
            Saves::Full(v) => v.iter().map(crate::observe::moments).collect(),
            Saves::Band(v) => v
                .iter()
                .map(|b| crate::observe::moments(&b.to_density_matrix()))
                .collect(),
            Saves::Blocks(v) => v.iter().map(crate::observe::moments_blocks).collect(),
            Saves::BlockBands(v) => v
                .iter()
                .map(|b| crate::observe::moments_blocks(&block_state_from_bands(b)))
                .collect(),
        }
    }

    /// Every save as a block state (a collective save as its j = N/2 block; bands expanded
    /// with zeros off the band).
    pub fn block_states(&self) -> Vec<BlockState> {
        match self {
            Saves::Full(v) => v.iter().map(BlockState::from_symmetric).collect(),
            Saves::Band(v) => v
                .iter()
                .map(|b| BlockState::from_symmetric(&b.to_density_matrix()))
                .collect(),
            Saves::Blocks(v) => v.clone(),
            Saves::BlockBands(v) => v.iter().map(|b| block_state_from_bands(b)).collect(),
        }
    }
}

/// Work and accuracy of one batch element (the fields of [`crate::solver::master::EvolveStats`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BatchStats {
    /// Accepted steps.
    pub steps: usize,
    /// Rejected step attempts.
    pub rejected: usize,
    /// Liouvillian applications.
    pub rhs_evals: usize,
    /// max over the saves of |tr rho(t) - tr rho0|.
    pub max_trace_error: f64,
    /// max over the saves of max |rho - rho^dag| as integrated (before the Hermitisation of a
    /// Hermitian problem's result; for a non-Hermitian rho0 that of the result itself).
    pub max_hermiticity_error: f64,
    /// rho0 was Hermitian (the CPU twin's criterion): packed-triangle error norm, Hermitised
    /// result.
    pub hermitian: bool,
}

/// One batch element's result.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchElement {
    pub saves: Saves,
    pub stats: BatchStats,
}

/// The result of [`MasterBatchGpu::run`].
#[derive(Debug)]
pub struct MasterBatch {
    /// The precision that ran.
    pub precision: Precision,
    /// The adapter it ran on.
    pub adapter: String,
    /// Invocations per element.
    pub lanes: u32,
    /// Step attempts per element and dispatch.
    pub attempts_per_dispatch: u32,
    /// Chunks of elements run one after the other (memory limits).
    pub chunks: usize,
    /// Dispatches over all chunks.
    pub dispatches: usize,
    /// Per element, in input order: its saves or why its integration failed.
    pub elements: Vec<Result<BatchElement, SolverError>>,
}

impl MasterBatch {
    /// The full matrices of every element (`Vec` per element, one matrix per save time), or the
    /// first element's error. Band output is expanded with zeros off the band.
    pub fn into_matrices(self) -> Result<Vec<Vec<DensityMatrix>>, SolverError> {
        self.elements
            .into_iter()
            .map(|e| {
                e.and_then(|el| match el.saves {
                    Saves::Full(v) => Ok(v),
                    Saves::Band(v) => Ok(v.iter().map(Band::to_density_matrix).collect()),
                    Saves::Blocks(_) | Saves::BlockBands(_) => Err(SolverError::Unsupported {
                        solver: "master_batch",
                        message: "a block batch's saves are block states (Saves::block_states)".to_string(),
                    }),
                })
            })
            .collect()
    }
}

/// Errors of [`MasterBatchGpu::run`]: refused input, or the device.
#[derive(Debug, Error)]
pub enum MasterBatchError {
    #[error(transparent)]
    Input(#[from] SolverError),
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

/// Per-element control block fields common to both precisions (tail of the WGSL `Ctrl`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct CtrlState {
    pub status: u32,
    pub next_save: u32,
    pub attempts: u32,
    pub steps: u32,
    pub rejected: u32,
    pub rhs_evals: u32,
    pub last_rejected: u32,
    pub herm: u32,
    pub slot_y: u32,
    pub slot_a: u32,
    pub slot_b: u32,
    pub slot_k1: u32,
    pub slot_k7: u32,
    /// The protocol piece the element is on (scheduled batches, [`MasterBatchGpu::run_protocols`]).
    pub piece: u32,
    pub _pad: [u32; 2],
}

macro_rules! twin_structs {
    ($params:ident, $ctrl:ident, $r:ty, $size_p:literal, $size_c:literal) => {
        /// Uniform parameters of the master_batch kernel. WGSL twin: `struct Params` in
        #[doc = concat!("`shaders/master_batch.wgsl` with R = ", stringify!($r), " (", $size_p, " bytes).")]
        #[repr(C)]
        #[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
        pub struct $params {
            /// Blocks per state (1: collective).
            pub n_blocks: u32,
            /// Complex elements per state, sum of d^2 over the blocks.
            pub len: u32,
            /// Levels per state, sum of d.
            pub levels: u32,
            /// Inflow factors per element.
            pub icoef_len: u32,
            /// Real components of the CPU twin's packed Hermitian vector, sum of d (d + 1).
            pub herm_len: u32,
            /// Elements (workgroups) in this chunk.
            pub batch: u32,
            pub n_saves: u32,
            /// 0: full matrix, 1: band.
            pub out_mode: u32,
            pub out_len: u32,
            /// Step attempts per dispatch.
            pub attempts: u32,
            pub max_steps: u32,
            /// Loop iterations per invocation and dispatch (module doc, "llvmpipe").
            pub loop_budget: u32,
            pub rtol: $r,
            pub atol: $r,
            /// First step; 0: Hairer's estimate.
            pub h0: $r,
            pub t0: $r,
            /// `times[last] - times[0]`.
            pub span: $r,
            /// The step-size floor relative to max(|t|, span): 16 f64::EPSILON, as ode.rs.
            pub hmin_rel: $r,
            /// A break within this of a save is that save's; a step ending within it of a
            /// break ends on it (`ode::integrate_real_pieces`).
            pub tiny: $r,
            pub _pad: $r,
        }

        /// Per-element integration state. WGSL twin: `struct Ctrl` in
        #[doc = concat!("`shaders/master_batch.wgsl` with R = ", stringify!($r), " (", $size_c, " bytes).")]
        #[repr(C)]
        #[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
        pub struct $ctrl {
            /// Elapsed time since `times[0]` as hi + lo.
            pub t: [$r; 2],
            /// Next step size (after a failure: the step that failed).
            pub h: $r,
            pub err_old: $r,
            pub state: CtrlState,
        }

        impl ElementState for $ctrl {
            fn status(&self) -> u32 {
                self.state.status
            }
            fn progress(&self) -> (u32, u32, u32) {
                self.state.progress()
            }
        }
    };
}
twin_structs!(MasterBatchParamsF32, MasterBatchCtrlF32, f32, "80", "80");
twin_structs!(MasterBatchParamsF64, MasterBatchCtrlF64, f64, "112", "96");

/// The working precision as a host type (f32 or f64).
trait Real: Pod + Copy + Default {
    const PRECISION: Precision;
    type Params: Pod;
    type Ctrl: ElementState;
    fn of(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn params(u: [u32; 12], r: [f64; 7]) -> Self::Params;
    fn ctrl(herm: bool) -> Self::Ctrl;
    /// (state, elapsed time, h).
    fn read_ctrl(c: &Self::Ctrl) -> ElementEnd;
    /// x as an unevaluated pair hi + lo.
    fn pair(x: f64) -> [Self; 2] {
        let hi = Self::of(x);
        [hi, Self::of(x - hi.to_f64())]
    }
}

fn init_state(herm: bool) -> CtrlState {
    let [slot_y, slot_a, slot_b, slot_k1, slot_k7] = SLOT_INIT;
    CtrlState {
        status: ST_INIT,
        next_save: 0,
        attempts: 0,
        steps: 0,
        rejected: 0,
        rhs_evals: 0,
        last_rejected: 0,
        herm: u32::from(herm),
        slot_y,
        slot_a,
        slot_b,
        slot_k1,
        slot_k7,
        piece: 0,
        _pad: [0; 2],
    }
}

macro_rules! impl_real {
    ($r:ty, $prec:expr, $params:ident, $ctrl:ident) => {
        impl Real for $r {
            const PRECISION: Precision = $prec;
            type Params = $params;
            type Ctrl = $ctrl;
            fn of(x: f64) -> Self {
                x as $r
            }
            fn to_f64(self) -> f64 {
                f64::from(self)
            }
            fn params(u: [u32; 12], r: [f64; 7]) -> $params {
                let [
                    n_blocks,
                    len,
                    levels,
                    icoef_len,
                    herm_len,
                    batch,
                    n_saves,
                    out_mode,
                    out_len,
                    attempts,
                    max_steps,
                    loop_budget,
                ] = u;
                let [rtol, atol, h0, t0, span, hmin_rel, tiny] = r.map(|x| x as $r);
                $params {
                    n_blocks,
                    len,
                    levels,
                    icoef_len,
                    herm_len,
                    batch,
                    n_saves,
                    out_mode,
                    out_len,
                    attempts,
                    max_steps,
                    loop_budget,
                    rtol,
                    atol,
                    h0,
                    t0,
                    span,
                    hmin_rel,
                    tiny,
                    _pad: 0.0,
                }
            }
            fn ctrl(herm: bool) -> $ctrl {
                $ctrl {
                    t: [0.0; 2],
                    h: 0.0,
                    err_old: 1e-4,
                    state: init_state(herm),
                }
            }
            fn read_ctrl(c: &$ctrl) -> ElementEnd {
                (
                    c.state,
                    f64::from(c.t[0]) + f64::from(c.t[1]),
                    f64::from(c.h),
                )
            }
        }
    };
}
impl_real!(f32, Precision::F32, MasterBatchParamsF32, MasterBatchCtrlF32);
impl_real!(f64, Precision::F64, MasterBatchParamsF64, MasterBatchCtrlF64);

impl CtrlState {
    /// (status, attempts, next save): what moves whenever the element makes progress.
    fn progress(&self) -> (u32, u32, u32) {
        (self.status, self.attempts, self.next_save)
    }
}

/// Loop iterations per invocation of the kernel's phases, counted as the kernel does (twin of
/// `per_pass`, `red_cost`, `attempt_cost`, `save_cost` in `main`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LoopCosts {
    init: u64,
    attempt: u64,
    save: u64,
}

impl LoopCosts {
    /// For states of `len` complex elements in `n_blocks` blocks; `sched`: a scheduled batch
    /// (one pass more per attempt: the first stage again after a break).
    fn new(len: usize, n_blocks: usize, lanes: u32, sched: bool) -> Self {
        let per_pass = (len as u64).div_ceil(u64::from(lanes)) + 3 * n_blocks as u64 + 9;
        let red = u64::from(lanes.trailing_zeros()) + 1;
        LoopCosts {
            init: 3 * per_pass + 2 * red,
            attempt: 7 * per_pass + red + 2 + if sched { per_pass } else { 0 },
            save: per_pass + 1,
        }
    }
}

/// Bytes a collective batch element needs on the device: (work, output per element), for `n`
/// levels, `saves` save times. Both must fit one storage binding.
pub fn element_bytes(n: usize, saves: usize, output: BatchOutput, precision: Precision) -> (u64, u64) {
    Layout::collective(n).element_bytes(saves, output, precision)
}

/// Bytes a batch element of the block master equation of `n_atoms` atoms needs on the device
/// (work, output per element); the inflow factors (a few sum_j (2j+1) numbers) are not counted.
pub fn block_element_bytes(
    n_atoms: usize,
    saves: usize,
    output: BatchOutput,
    precision: Precision,
) -> (u64, u64) {
    let dims: Vec<usize> = crate::basis::two_js(n_atoms).iter().map(|t| t + 1).collect();
    Layout::new(dims, Vec::new(), 0).element_bytes(saves, output, precision)
}

/// Block `b` of every state of a batch, as the kernel reads it. WGSL twin: `struct Block` in
/// `shaders/master_batch.wgsl` (128 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct MasterBatchBlock {
    /// 2j + 1.
    pub d: u32,
    /// First flat element of the block in a state vector.
    pub voff: u32,
    /// First entry of the block's band in a band save.
    pub band_off: u32,
    /// First level of the block in an element's coefficients.
    pub lvl: u32,
    /// Inflow terms in `tr`.
    pub ntr: u32,
    pub _pad: [u32; 3],
    /// (first flat element of the source block, shift as i32 bits, offset of the factors in
    /// the element's inflow coefficients, source block's d), in the order the CPU twin adds
    /// them.
    pub tr: [[u32; 4]; 6],
}

/// The block structure shared by every state of a batch: one block for the collective master
/// equation, the irreps 2j = N, N-2, ... for the block master equation.
#[derive(Debug, Clone, PartialEq)]
struct Layout {
    dims: Vec<usize>,
    /// Per block b (and one past the last): first flat element, first band entry, first level.
    voff: Vec<usize>,
    band_off: Vec<usize>,
    lvl: Vec<usize>,
    /// Per block its inflow terms: (channel of `blocks::CHANNELS`, source block, shift, offset
    /// of the factors in an element's inflow coefficients).
    tr: Vec<Vec<(usize, usize, isize, usize)>>,
    icoef_len: usize,
}

impl Layout {
    fn new(dims: Vec<usize>, tr: Vec<Vec<(usize, usize, isize, usize)>>, icoef_len: usize) -> Layout {
        let mut voff = vec![0];
        let mut band_off = vec![0];
        let mut lvl = vec![0];
        for &d in &dims {
            voff.push(voff.last().unwrap_or(&0) + d * d);
            band_off.push(band_off.last().unwrap_or(&0) + 5 * d);
            lvl.push(lvl.last().unwrap_or(&0) + d);
        }
        let tr = if tr.is_empty() {
            vec![Vec::new(); dims.len()]
        } else {
            tr
        };
        Layout {
            dims,
            voff,
            band_off,
            lvl,
            tr,
            icoef_len,
        }
    }

    fn collective(n: usize) -> Layout {
        Layout::new(vec![n], Vec::new(), 0)
    }

    /// The blocks of N atoms with an inflow term wherever any element of the batch has one (an
    /// element without it gets zero factors there: adding 0 changes nothing).
    fn blocks(stencils: &[crate::solver::blocks::BlockStencil]) -> Layout {
        let dims = stencils[0].dims.clone();
        let mut tr = Vec::with_capacity(dims.len());
        let mut off = 0;
        for b in 0..dims.len() {
            let mut terms = Vec::new();
            for (ch, &(rel, shift)) in crate::solver::blocks::CHANNELS.iter().enumerate() {
                if stencils.iter().any(|s| s.inflow[b][ch].is_some()) {
                    let src = (b as isize + rel) as usize;
                    terms.push((ch, src, shift, off));
                    off += dims[src];
                }
            }
            tr.push(terms);
        }
        Layout::new(dims, tr, off)
    }

    fn n_blocks(&self) -> usize {
        self.dims.len()
    }

    fn len(&self) -> usize {
        self.voff[self.n_blocks()]
    }

    fn levels(&self) -> usize {
        self.lvl[self.n_blocks()]
    }

    /// Real components of the CPU twin's packed vector (each block's upper triangle, re and im).
    fn herm_len(&self) -> usize {
        self.dims.iter().map(|d| d * (d + 1)).sum()
    }

    fn out_len(&self, output: BatchOutput) -> usize {
        match output {
            BatchOutput::Full => self.len(),
            BatchOutput::Band => self.band_off[self.n_blocks()],
        }
    }

    fn element_bytes(&self, saves: usize, output: BatchOutput, precision: Precision) -> (u64, u64) {
        let c = 2 * precision.real_bytes();
        (
            SLOTS * self.len() as u64 * c,
            saves as u64 * self.out_len(output) as u64 * c,
        )
    }

    fn gpu_blocks(&self) -> Vec<MasterBatchBlock> {
        (0..self.n_blocks())
            .map(|b| {
                let mut tr = [[0u32; 4]; 6];
                for (k, &(_, src, shift, ioff)) in self.tr[b].iter().enumerate() {
                    tr[k] = [
                        self.voff[src] as u32,
                        (shift as i32) as u32,
                        ioff as u32,
                        self.dims[src] as u32,
                    ];
                }
                MasterBatchBlock {
                    d: self.dims[b] as u32,
                    voff: self.voff[b] as u32,
                    band_off: self.band_off[b] as u32,
                    lvl: self.lvl[b] as u32,
                    ntr: self.tr[b].len() as u32,
                    _pad: [0; 3],
                    tr,
                }
            })
            .collect()
    }
}

/// Buffers kept between calls, grown when a call needs more.
struct Buffers {
    params: wgpu::Buffer,
    coef: wgpu::Buffer,
    times: wgpu::Buffer,
    ctrl: wgpu::Buffer,
    work: wgpu::Buffer,
    out: wgpu::Buffer,
    blocks: wgpu::Buffer,
    icoef: wgpu::Buffer,
    ctrl_staging: wgpu::Buffer,
    out_staging: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

/// [`Buffers`] with the sizes of params, coef, times, ctrl, work, out, blocks, icoef.
type CachedBuffers = Grown<Buffers, 8>;

/// Labels and operations of this kernel's GPU work.
const NAMES: Names = driver::names!("master_batch");

/// A pipeline built for (precision, lanes, inflow, sched).
type PipelineEntry = ((Precision, u32, bool, bool), Arc<wgpu::ComputePipeline>);

/// An element's state after its last dispatch: (state, elapsed time since `times[0]`, h).
type ElementEnd = (CtrlState, f64, f64);

/// The batched master-equation kernel on one GPU: modules compiled once, pipelines built once
/// per (precision, lanes) and cached, buffers reused. Create it once per device.
pub struct MasterBatchGpu {
    ctx: Arc<GpuContext>,
    layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    modules: Vec<(Precision, ShaderDef, wgpu::ShaderModule)>,
    pipelines: Mutex<Vec<PipelineEntry>>,
    buffers: Mutex<Option<CachedBuffers>>,
}

impl std::fmt::Debug for MasterBatchGpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterBatchGpu")
            .field("device", &self.ctx.info().name)
            .finish_non_exhaustive()
    }
}

/// A batch element prepared on the host.
struct Prepared {
    /// Per level of every block: (ure, E, m, dn, up, h_{k-1}, h_k, Gamma_phi / 2).
    coef: Vec<[f64; 8]>,
    /// Inflow factors (`Layout::tr` order).
    icoef: Vec<f64>,
    /// Initial state in the phi = 0 frame, the blocks row-major one after the other.
    y0: Vec<c64>,
    /// Gauge factors e^{i phi k} (for the largest block; smaller ones use its start).
    gauge: Vec<c64>,
    hermitian: bool,
    trace0: c64,
}

/// The initial states of a batch: collective matrices or block states.
#[derive(Clone, Copy)]
enum Rho0s<'a> {
    Sym(&'a [DensityMatrix]),
    Blocks(&'a [BlockState]),
}

impl Rho0s<'_> {
    fn len(&self) -> usize {
        match self {
            Rho0s::Sym(v) => v.len(),
            Rho0s::Blocks(v) => v.len(),
        }
    }

    /// Element b's state (the only one when one is given for all): flat data, is Hermitian.
    fn get(&self, b: usize) -> (&[c64], bool) {
        let i = if self.len() == 1 { 0 } else { b };
        let (data, herm) = match self {
            Rho0s::Sym(v) => (&v[i].data, v[i].hermiticity_error()),
            Rho0s::Blocks(v) => (&v[i].data, v[i].hermiticity_error()),
        };
        let scale = data.iter().map(|z| z.norm()).fold(0.0, f64::max);
        (data, herm <= 1e-12 * scale.max(1e-300))
    }
}

/// Element b prepared for the kernel: `levels` are its stencil coefficients (all blocks) and
/// `inflow` its factors per block and channel (None: collective).
fn prepare(
    model: &Model,
    rho0: &[c64],
    hermitian: bool,
    layout: &Layout,
    levels: Vec<[f64; 8]>,
    inflow: Option<&[[Option<Vec<f64>>; 6]]>,
) -> Prepared {
    let gauge = crate::solver::master::gauge(layout.dims[0], model.phi);
    let mut icoef = vec![0.0; layout.icoef_len];
    if let Some(inflow) = inflow {
        for (b, terms) in layout.tr.iter().enumerate() {
            for &(ch, _, _, off) in terms {
                if let Some(f) = &inflow[b][ch] {
                    icoef[off..off + f.len()].copy_from_slice(f);
                }
            }
        }
    }
    let mut y0 = vec![c64::new(0.0, 0.0); layout.len()];
    let mut trace0 = c64::new(0.0, 0.0);
    for (b, &n) in layout.dims.iter().enumerate() {
        let o = layout.voff[b];
        let get = |r: usize, c: usize| rho0[o + r * n + c];
        for r in 0..n {
            trace0 += get(r, r);
            for c in 0..n {
                let rot = gauge[r] * gauge[c].conj();
                if !hermitian {
                    y0[o + r * n + c] = rot * get(r, c);
                } else if r <= c {
                    // As the CPU twins: master::evolve takes the Hermitian part and rotates,
                    // blocks::evolve rotates and takes the Hermitian part.
                    let mut v = if inflow.is_none() {
                        rot * 0.5 * (get(r, c) + get(c, r).conj())
                    } else {
                        0.5 * (rot * get(r, c) + (rot.conj() * get(c, r)).conj())
                    };
                    if r == c {
                        v.im = 0.0;
                    }
                    y0[o + r * n + c] = v;
                    y0[o + c * n + r] = v.conj();
                }
            }
        }
    }
    Prepared {
        coef: levels,
        icoef,
        y0,
        gauge,
        hermitian,
        trace0,
    }
}

impl MasterBatchGpu {
    /// Compile the modules on `ctx`'s device (the f64 one when it has SHADER_F64) and build the
    /// default pipelines.
    pub fn new(ctx: Arc<GpuContext>) -> Result<Self, GpuError> {
        let (uniform, read, write) = (
            wgpu::BufferBindingType::Uniform,
            wgpu::BufferBindingType::Storage { read_only: true },
            wgpu::BufferBindingType::Storage { read_only: false },
        );
        let (layout, pipeline_layout) = ctx.compute_layouts(
            "dicke.master_batch",
            &[uniform, read, read, write, write, write, read, read],
        );
        let mut defs = vec![(Precision::F32, shaders::MASTER_BATCH_F32)];
        if ctx.info().has_f64 {
            defs.push((Precision::F64, shaders::MASTER_BATCH_F64));
        }
        let mut modules = Vec::new();
        for (p, def) in defs {
            modules.push((p, def, ctx.shader_module(&def)?));
        }
        let this = MasterBatchGpu {
            ctx,
            layout,
            pipeline_layout,
            modules,
            pipelines: Mutex::new(Vec::new()),
            buffers: Mutex::new(None),
        };
        for p in [Precision::F32, Precision::F64] {
            if this.modules.iter().any(|m| m.0 == p) {
                this.pipeline_for(p, DEFAULT_LANES, false, false)?;
            }
        }
        Ok(this)
    }

    /// The context this kernel runs on.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// The pipeline for (precision, lanes), with the inflow terms compiled in (`inflow`, the
    /// block equation) or out (the collective equation), and the scheduled coefficients in
    /// (`sched`) or out.
    fn pipeline_for(
        &self,
        p: Precision,
        lanes: u32,
        inflow: bool,
        sched: bool,
    ) -> Result<Arc<wgpu::ComputePipeline>, GpuError> {
        let mut cache = lock(&self.pipelines);
        if let Some((_, pl)) = cache.iter().find(|(k, _)| *k == (p, lanes, inflow, sched)) {
            return Ok(Arc::clone(pl));
        }
        let (_, def, module) = self
            .modules
            .iter()
            .find(|m| m.0 == p)
            .ok_or_else(|| GpuError::NoF64 {
                what: "master_batch in f64",
                adapter: self.ctx.info().name.clone(),
            })?;
        let label = format!(
            "dicke.{}.lanes{lanes}.inflow{}.sched{}",
            def.name,
            u8::from(inflow),
            u8::from(sched)
        );
        let constants = [
            ("WG", f64::from(lanes)),
            ("INFLOW", f64::from(u8::from(inflow))),
            ("SCHED", f64::from(u8::from(sched))),
        ];
        let pl = Arc::new(driver::pipeline(
            self.ctx.device(),
            &self.pipeline_layout,
            def,
            module,
            &label,
            &constants,
            true,
        )?);
        cache.push(((p, lanes, inflow, sched), Arc::clone(&pl)));
        Ok(pl)
    }

    /// Integrate every `(models[b], rho0s[b])` (or the single `rho0s[0]` for all) from
    /// `times[0]` and return the states at every time in `times` (the first is rho0 itself),
    /// with the algorithm and tolerances of [`crate::solver::master::evolve`] (module doc).
    /// All models must be collective with the same N.
    pub fn run(
        &self,
        models: &[Model],
        rho0s: &[DensityMatrix],
        times: &[f64],
        opts: &OdeOptions,
        options: &MasterBatchOptions,
    ) -> Result<MasterBatch, MasterBatchError> {
        match options.precision {
            Precision::F32 => self.run_t::<f32>(models, None, Rho0s::Sym(rho0s), times, opts, options),
            Precision::F64 => self.run_t::<f64>(models, None, Rho0s::Sym(rho0s), times, opts, options),
        }
    }

    /// [`run`](Self::run) under time-dependent protocols (`model::schedule`), with the algorithm
    /// of the CPU twin [`crate::solver::master::evolve_protocol`]: every element lands on its
    /// protocol's breaks and evaluates each stage with its piece's parameters (module doc,
    /// "Schedules"). A batch of constant protocols runs exactly as [`run`](Self::run). Refused
    /// by name: a scheduled `phi` (the drive-phase frame would no longer be constant) and
    /// single-atom rates (collective equation only).
    pub fn run_protocols(
        &self,
        protocols: &[Protocol],
        rho0s: &[DensityMatrix],
        times: &[f64],
        opts: &OdeOptions,
        options: &MasterBatchOptions,
    ) -> Result<MasterBatch, MasterBatchError> {
        check_protocols(protocols)?;
        let models: Vec<Model> = protocols.iter().map(|p| p.base).collect();
        let sched = (!protocols.iter().all(Protocol::is_constant)).then_some(protocols);
        match options.precision {
            Precision::F32 => self.run_t::<f32>(&models, sched, Rho0s::Sym(rho0s), times, opts, options),
            Precision::F64 => self.run_t::<f64>(&models, sched, Rho0s::Sym(rho0s), times, opts, options),
        }
    }

    /// The block master equation (single-atom rates allowed, [`crate::solver::blocks`]): integrate
    /// every `(models[b], rho0s[b])` (or the single `rho0s[0]` for all) as [`run`](Self::run)
    /// does, with the algorithm of the CPU twin [`crate::solver::blocks::evolve`]. The saves
    /// are [`Saves::Blocks`] or [`Saves::BlockBands`]. All models must have the same N.
    pub fn run_blocks(
        &self,
        models: &[Model],
        rho0s: &[BlockState],
        times: &[f64],
        opts: &OdeOptions,
        options: &MasterBatchOptions,
    ) -> Result<MasterBatch, MasterBatchError> {
        match options.precision {
            Precision::F32 => self.run_t::<f32>(models, None, Rho0s::Blocks(rho0s), times, opts, options),
            Precision::F64 => self.run_t::<f64>(models, None, Rho0s::Blocks(rho0s), times, opts, options),
        }
    }

    /// `sched`: the elements' protocols when any is time-dependent (collective batch only).
    fn run_t<R: Real>(
        &self,
        models: &[Model],
        sched: Option<&[Protocol]>,
        rho0s: Rho0s,
        times: &[f64],
        opts: &OdeOptions,
        options: &MasterBatchOptions,
    ) -> Result<MasterBatch, MasterBatchError> {
        let precision = R::PRECISION;
        let is_blocks = matches!(rho0s, Rho0s::Blocks(_));
        let lanes = if options.lanes == 0 {
            DEFAULT_LANES
        } else {
            options.lanes
        };
        if !(lanes.is_power_of_two() && lanes <= 256) {
            return Err(bad(format!("lanes = {lanes}: expected a power of two <= 256")).into());
        }
        crate::solver::ode::check_options("master_batch", times, opts)?;
        let mut result = MasterBatch {
            precision,
            adapter: self.ctx.info().name.clone(),
            lanes,
            attempts_per_dispatch: 0,
            chunks: 0,
            dispatches: 0,
            elements: Vec::new(),
        };
        if models.is_empty() {
            return Ok(result);
        }
        let n_atoms = check_input(models, rho0s, times)?;
        if precision == Precision::F64 && !self.ctx.info().has_f64 {
            return Err(GpuError::NoF64 {
                what: "master_batch in f64",
                adapter: self.ctx.info().name.clone(),
            }
            .into());
        }
        if times.is_empty() {
            result.elements = (0..models.len())
                .map(|b| Ok(empty_element(is_blocks, options.output, rho0s.get(b).1)))
                .collect();
            return Ok(result);
        }
        let pieces = match sched {
            Some(protocols) => Some(piece_tables(protocols, times)?),
            None => None,
        };
        let call = self.plan_call::<R>(models, n_atoms, is_blocks, pieces, times, opts, options, lanes)?;
        result.attempts_per_dispatch = call.attempts;
        let pipeline = self.pipeline_for(precision, lanes, is_blocks, call.pieces.is_some())?;
        let mut guard = lock(&self.buffers);
        for range in driver::chunks(models.len(), call.chunk) {
            let sizes = call.buffer_sizes(range.len());
            let cached = driver::reuse_or_grow(guard.take(), sizes, |s| self.buffers(s))?;
            let res = self.run_chunk::<R>(&cached.bufs, &pipeline, &call, models, rho0s, range.clone());
            *guard = Some(cached);
            let (dispatches, elements) = res?;
            result.dispatches += dispatches;
            result.chunks += 1;
            result.elements.extend(elements);
        }
        Ok(result)
    }

    /// The shared part of a call: block layout, sizes, chunk, dispatch settings, with every
    /// limit checked before anything is allocated.
    #[allow(clippy::too_many_arguments)]
    fn plan_call<R: Real>(
        &self,
        models: &[Model],
        n_atoms: usize,
        is_blocks: bool,
        pieces: Option<Vec<Vec<Piece>>>,
        times: &[f64],
        opts: &OdeOptions,
        options: &MasterBatchOptions,
        lanes: u32,
    ) -> Result<CallPlan<R>, MasterBatchError> {
        let precision = R::PRECISION;
        // The block structure (the stencils are needed for the union of inflow terms).
        let stencils: Vec<BlockStencil> = if is_blocks {
            models.iter().map(crate::solver::blocks::stencil).collect()
        } else {
            Vec::new()
        };
        let n = Irrep::symmetric(n_atoms).dim();
        let layout = match (&pieces, is_blocks) {
            (_, true) => Layout::blocks(&stencils),
            (None, false) => Layout::collective(n),
            // A scheduled batch carries its piece tables where the inflow factors would be.
            (Some(p), false) => {
                let most = p.iter().map(Vec::len).max().unwrap_or(1);
                Layout::new(vec![n], Vec::new(), most * PIECE_WORDS)
            }
        };
        let n_saves = times.len();
        let (work_per, out_per) = layout.element_bytes(n_saves, options.output, precision);
        self.check_memory(&layout, n_atoms, is_blocks, n_saves, options.output, precision)?;
        let sizes = PerElement {
            work: work_per,
            out: out_per,
            coef: 2 * layout.levels() as u64 * 4 * precision.real_bytes(),
            icoef: layout.icoef_len as u64 * precision.real_bytes(),
            ctrl: std::mem::size_of::<R::Ctrl>() as u64,
        };
        let binding = driver::binding_limit(&self.ctx);
        if sizes.icoef > binding {
            return Err(GpuError::TooLarge {
                what: format!(
                    "master_batch: the piece table of a protocol with {} pieces in {}",
                    layout.icoef_len / PIECE_WORDS,
                    precision.name()
                ),
                bytes: sizes.icoef,
                limit: binding,
            }
            .into());
        }
        let chunk = driver::chunk_len(
            models.len() as u64,
            [
                u64::from(self.ctx.limits().max_compute_workgroups_per_dimension),
                driver::fit(sizes.work, binding.min(MAX_CHUNK_WORK_BYTES)),
                driver::fit(sizes.out, binding),
                driver::fit(sizes.coef, binding),
                driver::fit(sizes.icoef, binding),
                driver::fit(sizes.ctrl, binding),
            ],
        );
        let attempts = if options.attempts_per_dispatch > 0 {
            options.attempts_per_dispatch
        } else {
            (ATTEMPT_ELEMS / layout.len() as u64).clamp(1, MAX_ATTEMPTS) as u32
        };
        let loop_budget = driver::loop_budget(&self.ctx);
        let costs = LoopCosts::new(layout.len(), layout.n_blocks(), lanes, pieces.is_some());
        if costs.init.max(costs.attempt).max(costs.save) > u64::from(loop_budget) {
            return Err(bad(format!(
                "N = {n_atoms}: one step needs {} loop iterations per invocation, more than the \
                 {loop_budget} that adapter `{}` runs per dispatch (llvmpipe ends loops after \
                 65535); use a real GPU or the CPU backend",
                costs.attempt,
                self.ctx.info().name
            ))
            .into());
        }
        let t0 = times[0];
        let params = ParamsTemplate::new(&layout, times, opts, options.output, attempts, loop_budget);
        Ok(CallPlan {
            gpu_blocks: layout.gpu_blocks(),
            save_t: times.iter().map(|&t| R::pair(t - t0)).collect(),
            layout,
            stencils,
            pieces,
            irrep: Irrep::symmetric(n_atoms),
            n_atoms,
            is_blocks,
            n_saves,
            output: options.output,
            t0,
            max_steps: opts.max_steps,
            sizes,
            chunk,
            attempts,
            params,
        })
    }

    /// Refuse an element whose work or output does not fit one storage binding.
    fn check_memory(
        &self,
        layout: &Layout,
        n_atoms: usize,
        is_blocks: bool,
        n_saves: usize,
        output: BatchOutput,
        precision: Precision,
    ) -> Result<(), GpuError> {
        let binding_limit = driver::binding_limit(&self.ctx);
        let (work_per, out_per) = layout.element_bytes(n_saves, output, precision);
        let n = layout.dims[0];
        let what_state = if is_blocks {
            format!("the {} blocks R_j of N = {n_atoms}", layout.n_blocks())
        } else {
            format!("a {n} x {n} density matrix")
        };
        if work_per > binding_limit {
            return Err(GpuError::TooLarge {
                what: format!(
                    "master_batch: {SLOTS} work vectors of {what_state} ({} complex elements) in {}",
                    layout.len(),
                    precision.name()
                ),
                bytes: work_per,
                limit: binding_limit,
            });
        }
        if out_per > binding_limit {
            return Err(GpuError::TooLarge {
                what: format!(
                    "master_batch: {n_saves} saved {} of {what_state} per element in {} \
                     (ask for the band output, or fewer save times)",
                    match output {
                        BatchOutput::Full => "states",
                        BatchOutput::Band => "bands",
                    },
                    precision.name()
                ),
                bytes: out_per,
                limit: binding_limit,
            });
        }
        Ok(())
    }

    /// Prepare, upload and run the elements `range` of the batch; each element's result in
    /// order, and the number of dispatches.
    fn run_chunk<R: Real>(
        &self,
        bufs: &Buffers,
        pipeline: &wgpu::ComputePipeline,
        call: &CallPlan<R>,
        models: &[Model],
        rho0s: Rho0s,
        range: std::ops::Range<usize>,
    ) -> Result<(usize, Vec<Result<BatchElement, SolverError>>), GpuError> {
        let start = range.start;
        let cb = range.len();
        let prepared: Vec<Prepared> = range.map(|b| call.prepare(&models[b], rho0s, b)).collect();
        let chunk = Chunk {
            ctx: &self.ctx,
            names: &NAMES,
            pipeline,
            bind_group: &bufs.bind_group,
            groups: cb as u32,
        };
        let init: Vec<R::Ctrl> = prepared.iter().map(|p| R::ctrl(p.hermitian)).collect();
        chunk.upload(|queue| upload::<R>(queue, bufs, call, &prepared, &init))?;
        let ctrl = ReadBack {
            src: &bufs.ctrl,
            staging: &bufs.ctrl_staging,
            label: "dicke.master_batch.ctrl_staging",
        };
        let kernel = format!("{} attempts", call.attempts);
        let mut until_done = UntilDone::new(&init, NAMES.dispatch, "elements", kernel);
        let ctrl_bytes = std::mem::size_of_val(init.as_slice()) as u64;
        let (dispatches, ctrls) = chunk.resume(ctrl, ctrl_bytes, &mut until_done)?;
        let out = ReadBack {
            src: &bufs.out,
            staging: &bufs.out_staging,
            label: "dicke.master_batch.out_staging",
        };
        let raw = chunk.read(out, cb as u64 * call.sizes.out)?;
        let vals: Vec<R> = bytemuck::pod_collect_to_vec(&raw);
        let per = call.n_saves * call.layout.out_len(call.output) * 2;
        let elements = prepared
            .iter()
            .zip(&ctrls)
            .enumerate()
            .map(|(i, (p, c))| call.element(&vals[i * per..(i + 1) * per], p, R::read_ctrl(c), start + i))
            .collect();
        Ok((dispatches, elements))
    }

    fn buffers(&self, sizes: [u64; 8]) -> Result<Buffers, GpuError> {
        self.ctx.scoped(NAMES.alloc, || {
            use wgpu::BufferUsages as U;
            let mk = |label, size, usage| self.ctx.padded_buffer(label, size, usage);
            let params = mk("dicke.master_batch.params", sizes[0], U::UNIFORM | U::COPY_DST);
            let coef = mk("dicke.master_batch.coef", sizes[1], U::STORAGE | U::COPY_DST);
            let times = mk("dicke.master_batch.times", sizes[2], U::STORAGE | U::COPY_DST);
            let ctrl = mk(
                "dicke.master_batch.ctrl",
                sizes[3],
                U::STORAGE | U::COPY_DST | U::COPY_SRC,
            );
            let work = mk("dicke.master_batch.work", sizes[4], U::STORAGE | U::COPY_DST);
            let out = mk("dicke.master_batch.out", sizes[5], U::STORAGE | U::COPY_SRC);
            let blocks = mk("dicke.master_batch.blocks", sizes[6], U::STORAGE | U::COPY_DST);
            let icoef = mk("dicke.master_batch.icoef", sizes[7], U::STORAGE | U::COPY_DST);
            let ctrl_staging = mk(
                "dicke.master_batch.ctrl_staging",
                sizes[3],
                U::MAP_READ | U::COPY_DST,
            );
            let out_staging = mk(
                "dicke.master_batch.out_staging",
                sizes[5],
                U::MAP_READ | U::COPY_DST,
            );
            let bind_group = driver::bind_buffers(
                &self.ctx,
                NAMES.bind_group,
                &self.layout,
                &[&params, &coef, &times, &ctrl, &work, &out, &blocks, &icoef],
            );
            Ok(Buffers {
                params,
                coef,
                times,
                ctrl,
                work,
                out,
                blocks,
                icoef,
                ctrl_staging,
                out_staging,
                bind_group,
            })
        })
    }
}

/// Words per piece of a scheduled element's table (twin of `PIECE` in the kernel): start as a
/// time pair, then the values and the rates of [`SCHED_PARAMS`].
const PIECE_WORDS: usize = 16;

/// The parameters a scheduled collective batch evaluates per stage, in the kernel's order.
const SCHED_PARAMS: [&str; 7] = ["omega0", "Omega", "chi", "chi_z", "Gamma", "w", "Gamma_phi"];

/// One piece of an element's protocol: its start `at` (absolute time; the `at` of
/// `ode::integrate_real_pieces`), the [`SCHED_PARAMS`] at `at` and their rates on the piece.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Piece {
    at: f64,
    value: [f64; 7],
    rate: [f64; 7],
}

/// `ode::integrate_real_pieces`'s tolerance between a break and a save or a step's end.
fn break_snap(times: &[f64]) -> f64 {
    let (t0, t_end) = (times[0], times[times.len() - 1]);
    64.0 * f64::EPSILON * t0.abs().max(t_end.abs()).max(t_end - t0)
}

/// Refuse what the scheduled batch cannot carry, by name: a scheduled `phi`, single-atom rates.
fn check_protocols(protocols: &[Protocol]) -> Result<(), SolverError> {
    for (b, p) in protocols.iter().enumerate() {
        if p.names().contains(&"phi") {
            return Err(bad(format!(
                "protocols[{b}] schedules model.phi: the batched master equation integrates in \
                 the frame of one constant drive phase (its gauge); a scheduled phi runs on the \
                 CPU (solver::master::evolve_protocol)"
            )));
        }
        if !p.is_collective() {
            return Err(bad(format!(
                "protocols[{b}] has individual (single-atom) rates {} (nonzero or scheduled); the \
                 scheduled GPU batch takes the collective master equation only (constant models \
                 with single-atom rates: run_blocks; scheduled ones: the CPU)",
                p.individual_terms().join(", ")
            )));
        }
        if let Some(name) = p.names().into_iter().find(|n| !SCHED_PARAMS.contains(n)) {
            return Err(bad(format!(
                "protocols[{b}] schedules model.{name}, which the batch cannot carry"
            )));
        }
    }
    Ok(())
}

/// Every protocol's pieces on the span of `times`, by the rules of
/// `ode::integrate_real_pieces` (breaks strictly inside the span; those within the snap of
/// `times[0]` pass before the first step, the first piece then starts at the last of them).
fn piece_tables(protocols: &[Protocol], times: &[f64]) -> Result<Vec<Vec<Piece>>, SolverError> {
    let (t0, t_end) = (times[0], times[times.len() - 1]);
    let tiny = break_snap(times);
    protocols
        .iter()
        .map(|p| {
            let breaks: Vec<f64> = crate::solver::ode::protocol_breaks(p, times, "master_batch")?
                .into_iter()
                .filter(|&b| b > t0 && b < t_end)
                .collect();
            let nb = breaks.partition_point(|&b| b <= t0 + tiny);
            let first = if nb > 0 { breaks[nb - 1] } else { t0 };
            let names = p.names();
            Ok(std::iter::once(first)
                .chain(breaks[nb..].iter().copied())
                .map(|at| {
                    let m = p.model_in(at, at);
                    let mut piece = Piece {
                        at,
                        value: SCHED_PARAMS.map(|name| m.get(name).unwrap_or(0.0)),
                        rate: [0.0; 7],
                    };
                    for (name, r) in names.iter().zip(p.rates_in(at)) {
                        if let Some(j) = SCHED_PARAMS.iter().position(|s| s == name) {
                            piece.rate[j] = r;
                        }
                    }
                    piece
                })
                .collect())
        })
        .collect()
}

/// An element's piece table as the kernel reads it (`len` words: the pieces, then unused pieces
/// that start past the last save so that they are never reached).
fn piece_words<R: Real>(pieces: &[Piece], t0: f64, span: f64, len: usize) -> Vec<f64> {
    let mut words = Vec::with_capacity(len);
    for p in pieces {
        let [hi, lo] = R::pair(p.at - t0);
        words.extend([hi.to_f64(), lo.to_f64()]);
        words.extend(p.value);
        words.extend(p.rate);
    }
    while words.len() < len {
        words.extend([2.0 * span + 1.0, 0.0]);
        words.extend([0.0; PIECE_WORDS - 2]);
    }
    words
}

/// The model-independent numbers per level of the j = N/2 irrep that a scheduled batch's
/// kernel forms its stencil from (`lapply_sched`): `[m, jpjm, jmjp, jp_{k-1}, jp_k, jm_{k+1},
/// jm_k, 0]` with jp_{-1} = 0 and jm_{k+1} = 0 at the top (twin of `Coeffs::with_rates`).
fn level_numbers(irrep: &Irrep) -> Vec<[f64; 8]> {
    let n = irrep.dim();
    (0..n)
        .map(|k| {
            [
                irrep.m[k],
                irrep.jpjm[k],
                irrep.jmjp[k],
                if k > 0 { irrep.jp[k - 1] } else { 0.0 },
                irrep.jp[k],
                if k + 1 < n { irrep.jm[k + 1] } else { 0.0 },
                irrep.jm[k],
                0.0,
            ]
        })
        .collect()
}

fn bad(message: String) -> SolverError {
    SolverError::Unsupported {
        solver: "master_batch",
        message,
    }
}

/// Check that the models share N (and are collective for a collective batch) and the initial
/// states match it and are finite; returns N.
fn check_input(models: &[Model], rho0s: Rho0s, times: &[f64]) -> Result<usize, SolverError> {
    let is_blocks = matches!(rho0s, Rho0s::Blocks(_));
    if rho0s.len() != models.len() && rho0s.len() != 1 {
        return Err(bad(format!(
            "{} initial states for {} models: expected one per model, or one for all",
            rho0s.len(),
            models.len()
        )));
    }
    let n_atoms = models[0].n;
    for (b, m) in models.iter().enumerate() {
        if m.n != n_atoms {
            return Err(bad(format!(
                "models[{b}] has N = {}, models[0] N = {n_atoms}: a batch shares N",
                m.n
            )));
        }
        if !is_blocks && !m.is_collective() {
            return Err(bad(format!(
                "models[{b}] has individual (single-atom) rates {} > 0; the collective master \
                 equation keeps only the j = N/2 irrep (use run_blocks)",
                m.individual_terms().join(", ")
            )));
        }
    }
    check_rho0s(rho0s, n_atoms)?;
    for b in 0..rho0s.len() {
        if !rho0s
            .get(b)
            .0
            .iter()
            .all(|z| z.re.is_finite() && z.im.is_finite())
        {
            return Err(SolverError::NonFinite {
                t: times.first().copied().unwrap_or(0.0),
            });
        }
    }
    Ok(n_atoms)
}

/// Check the initial states' dimensions against N.
fn check_rho0s(rho0s: Rho0s, n_atoms: usize) -> Result<(), SolverError> {
    let n = Irrep::symmetric(n_atoms).dim();
    match rho0s {
        Rho0s::Sym(v) => {
            for (b, rho) in v.iter().enumerate() {
                if rho.dim != n || rho.data.len() != n * n {
                    return Err(bad(format!(
                        "rho0s[{b}] is {0} x {0}, N = {n_atoms} needs {n} x {n}",
                        rho.dim
                    )));
                }
            }
        }
        Rho0s::Blocks(v) => {
            for (b, st) in v.iter().enumerate() {
                let want = crate::state::blocks::block_elements(n_atoms);
                if st.n != n_atoms || st.data.len() != want {
                    return Err(bad(format!(
                        "rho0s[{b}] holds the blocks of N = {} ({} elements), N = {n_atoms} \
                         needs {want}",
                        st.n,
                        st.data.len()
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The result of an element when there are no save times.
fn empty_element(is_blocks: bool, output: BatchOutput, hermitian: bool) -> BatchElement {
    BatchElement {
        saves: match (is_blocks, output) {
            (false, BatchOutput::Full) => Saves::Full(Vec::new()),
            (false, BatchOutput::Band) => Saves::Band(Vec::new()),
            (true, BatchOutput::Full) => Saves::Blocks(Vec::new()),
            (true, BatchOutput::Band) => Saves::BlockBands(Vec::new()),
        },
        stats: BatchStats {
            steps: 0,
            rejected: 0,
            rhs_evals: 0,
            max_trace_error: 0.0,
            max_hermiticity_error: 0.0,
            hermitian,
        },
    }
}

/// Write one chunk's inputs: parameters, coefficients, blocks, inflow factors, save times,
/// control states and each element's y0 (slot `SLOT_INIT[0]`).
fn upload<R: Real>(
    queue: &wgpu::Queue,
    bufs: &Buffers,
    call: &CallPlan<R>,
    prepared: &[Prepared],
    init: &[R::Ctrl],
) {
    let params = call.params.params::<R>(prepared.len());
    queue.write_buffer(&bufs.params, 0, bytemuck::bytes_of(&params));
    let coef: Vec<R> = prepared
        .iter()
        .flat_map(|p| p.coef.iter().flatten().map(|&x| R::of(x)))
        .collect();
    queue.write_buffer(&bufs.coef, 0, bytemuck::cast_slice(&coef));
    queue.write_buffer(&bufs.blocks, 0, bytemuck::cast_slice(&call.gpu_blocks));
    let icoef: Vec<R> = prepared
        .iter()
        .flat_map(|p| p.icoef.iter().map(|&x| R::of(x)))
        .collect();
    if !icoef.is_empty() {
        queue.write_buffer(&bufs.icoef, 0, bytemuck::cast_slice(&icoef));
    }
    queue.write_buffer(&bufs.times, 0, bytemuck::cast_slice(&call.save_t));
    queue.write_buffer(&bufs.ctrl, 0, bytemuck::cast_slice(init));
    let nn = prepared[0].y0.len() as u64;
    let csize = 2 * std::mem::size_of::<R>() as u64;
    for (i, p) in prepared.iter().enumerate() {
        let y: Vec<R> = p.y0.iter().flat_map(|z| [R::of(z.re), R::of(z.im)]).collect();
        let offset = (i as u64 * SLOTS + u64::from(SLOT_INIT[0])) * nn * csize;
        queue.write_buffer(&bufs.work, offset, bytemuck::cast_slice(&y));
    }
}

/// Device bytes per element of each buffer that scales with the chunk.
#[derive(Debug, Clone, Copy)]
struct PerElement {
    work: u64,
    out: u64,
    coef: u64,
    icoef: u64,
    ctrl: u64,
}

/// The kernel parameters of a call but the chunk's element count (`Real::params` order).
#[derive(Debug, Clone, Copy)]
struct ParamsTemplate {
    u: [u32; 12],
    r: [f64; 7],
}

impl ParamsTemplate {
    /// Index of `batch` in `u`.
    const BATCH: usize = 5;

    fn new(
        layout: &Layout,
        times: &[f64],
        opts: &OdeOptions,
        output: BatchOutput,
        attempts: u32,
        loop_budget: u32,
    ) -> Self {
        let (t0, n_saves) = (times[0], times.len());
        ParamsTemplate {
            u: [
                layout.n_blocks() as u32,
                layout.len() as u32,
                layout.levels() as u32,
                layout.icoef_len as u32,
                layout.herm_len() as u32,
                0, // the chunk's elements, set per chunk
                n_saves as u32,
                match output {
                    BatchOutput::Full => 0,
                    BatchOutput::Band => 1,
                },
                layout.out_len(output) as u32,
                attempts,
                u32::try_from(opts.max_steps).unwrap_or(u32::MAX),
                loop_budget,
            ],
            r: [
                opts.rtol,
                opts.atol,
                opts.h0.unwrap_or(0.0),
                t0,
                times[n_saves - 1] - t0,
                16.0 * f64::EPSILON,
                break_snap(times),
            ],
        }
    }

    fn params<R: Real>(&self, batch: usize) -> R::Params {
        let mut u = self.u;
        u[Self::BATCH] = batch as u32;
        R::params(u, self.r)
    }
}

/// What one call shares across its chunks (built by `MasterBatchGpu::plan_call`).
struct CallPlan<R: Real> {
    layout: Layout,
    /// Per model its block stencil (block batch; empty for a collective one).
    stencils: Vec<BlockStencil>,
    /// Per element its protocol's pieces (a scheduled batch).
    pieces: Option<Vec<Vec<Piece>>>,
    irrep: Irrep,
    n_atoms: usize,
    is_blocks: bool,
    n_saves: usize,
    output: BatchOutput,
    t0: f64,
    max_steps: usize,
    sizes: PerElement,
    /// Elements per chunk.
    chunk: usize,
    attempts: u32,
    params: ParamsTemplate,
    /// The save times as elapsed pairs.
    save_t: Vec<[R; 2]>,
    gpu_blocks: Vec<MasterBatchBlock>,
}

impl<R: Real> CallPlan<R> {
    /// Buffer sizes for a chunk of `cb` elements (`MasterBatchGpu::buffers` order).
    fn buffer_sizes(&self, cb: usize) -> [u64; 8] {
        let cb = cb as u64;
        [
            std::mem::size_of::<R::Params>() as u64,
            cb * self.sizes.coef,
            (self.n_saves * 2) as u64 * R::PRECISION.real_bytes(),
            cb * self.sizes.ctrl,
            cb * self.sizes.work,
            cb * self.sizes.out,
            std::mem::size_of_val(self.gpu_blocks.as_slice()) as u64,
            cb * self.sizes.icoef,
        ]
    }

    /// Element `b` prepared for the kernel.
    fn prepare(&self, model: &Model, rho0s: Rho0s, b: usize) -> Prepared {
        let (data, herm) = rho0s.get(b);
        if self.is_blocks {
            let st = &self.stencils[b];
            let levels = st.levels.iter().flatten().copied().collect();
            prepare(model, data, herm, &self.layout, levels, Some(&st.inflow))
        } else if let Some(pieces) = &self.pieces {
            let mut p = prepare(model, data, herm, &self.layout, level_numbers(&self.irrep), None);
            p.icoef = piece_words::<R>(&pieces[b], self.t0, self.params.r[4], self.layout.icoef_len);
            p
        } else {
            let levels = crate::solver::master::Coeffs::collective(model, &self.irrep).levels();
            prepare(model, data, herm, &self.layout, levels, None)
        }
    }

    /// Element `index`'s result from its output `vals` and its final control state.
    fn element(
        &self,
        vals: &[R],
        p: &Prepared,
        (state, t_el, h): ElementEnd,
        index: usize,
    ) -> Result<BatchElement, SolverError> {
        let t = self.t0 + t_el;
        match state.status {
            ST_DONE => Ok(convert::<R>(
                vals,
                p,
                &self.layout,
                self.is_blocks.then_some(self.n_atoms),
                self.n_saves,
                self.output,
                state,
            )),
            ST_SMALL => Err(SolverError::StepSizeTooSmall { t, dt: h }),
            ST_MAXSTEPS => Err(SolverError::TooManySteps {
                t,
                max_steps: self.max_steps,
            }),
            ST_NONFINITE => Err(SolverError::NonFinite { t }),
            other => Err(SolverError::Unsupported {
                solver: "master_batch",
                message: format!("element {index} ended in unknown status {other}"),
            }),
        }
    }
}

/// One element's saves from the kernel's output (phi = 0 frame, working precision) to
/// density matrices, block states or bands in the model's frame, with the statistics.
/// `blocks_of`: Some(N) for a block batch.
fn convert<R: Real>(
    vals: &[R],
    p: &Prepared,
    layout: &Layout,
    blocks_of: Option<usize>,
    n_saves: usize,
    output: BatchOutput,
    state: CtrlState,
) -> BatchElement {
    let olen = layout.out_len(output);
    let mut max_tr: f64 = 0.0;
    let mut max_herm: f64 = 0.0;
    // Per save, per block: the full block (row-major) or its band.
    let mut per_save: Vec<Vec<Vec<c64>>> = Vec::with_capacity(n_saves);
    for s in 0..n_saves {
        let at = |j: usize| {
            let i = 2 * (s * olen + j);
            c64::new(vals[i].to_f64(), vals[i + 1].to_f64())
        };
        let mut blocks = Vec::with_capacity(layout.n_blocks());
        let mut tr = c64::new(0.0, 0.0);
        for (b, &n) in layout.dims.iter().enumerate() {
            let (data, block_tr) = match output {
                BatchOutput::Full => full_block(&at, layout.voff[b], n, p, &mut max_herm),
                BatchOutput::Band => band_block(&at, layout.band_off[b], n, p, &mut max_herm),
            };
            tr += block_tr;
            blocks.push(data);
        }
        max_tr = max_tr.max((tr - p.trace0).norm());
        per_save.push(blocks);
    }
    BatchElement {
        saves: assemble_saves(per_save, layout, blocks_of, output),
        stats: BatchStats {
            steps: state.steps as usize,
            rejected: state.rejected as usize,
            rhs_evals: state.rhs_evals as usize,
            max_trace_error: max_tr,
            max_hermiticity_error: max_herm,
            hermitian: p.hermitian,
        },
    }
}

/// The n x n block at output offset `o` (`at(j)`: output entry j of the save) rotated back to
/// the model's frame, Hermitised for a Hermitian problem; and its trace. Raises `max_herm` to
/// the block's anti-Hermitian part as integrated.
fn full_block(
    at: &dyn Fn(usize) -> c64,
    o: usize,
    n: usize,
    p: &Prepared,
    max_herm: &mut f64,
) -> (Vec<c64>, c64) {
    let g = &p.gauge;
    let mut m = vec![c64::new(0.0, 0.0); n * n];
    for r in 0..n {
        for c in 0..n {
            m[r * n + c] = g[r].conj() * g[c] * at(o + r * n + c);
        }
    }
    for r in 0..n {
        for c in r..n {
            *max_herm = max_herm.max((m[r * n + c] - m[c * n + r].conj()).norm());
        }
    }
    if p.hermitian {
        for r in 0..n {
            for c in r..n {
                let mut x = 0.5 * (m[r * n + c] + m[c * n + r].conj());
                if r == c {
                    x.im = 0.0;
                }
                m[r * n + c] = x;
                m[c * n + r] = x.conj();
            }
        }
    }
    let tr = (0..n).map(|k| m[k * n + k]).sum::<c64>();
    (m, tr)
}

/// As [`full_block`] for the band of an n x n block at output offset `o` ([`Band`] layout).
fn band_block(
    at: &dyn Fn(usize) -> c64,
    o: usize,
    n: usize,
    p: &Prepared,
    max_herm: &mut f64,
) -> (Vec<c64>, c64) {
    let g = &p.gauge;
    let mut data = vec![c64::new(0.0, 0.0); 5 * n];
    for q in -2isize..=2 {
        let len = n.saturating_sub(q.unsigned_abs());
        for k in 0..len {
            let (r, c) = if q >= 0 {
                (k, k + q as usize)
            } else {
                (k + q.unsigned_abs(), k)
            };
            let j = (q + 2) as usize * n + k;
            data[j] = g[r].conj() * g[c] * at(o + j);
        }
    }
    for q in 0..=2usize {
        for k in 0..n.saturating_sub(q) {
            let (up, lo) = ((q + 2) * n + k, (2 - q) * n + k);
            *max_herm = max_herm.max((data[up] - data[lo].conj()).norm());
            if p.hermitian {
                let mut x = 0.5 * (data[up] + data[lo].conj());
                if q == 0 {
                    x.im = 0.0;
                }
                data[up] = x;
                data[lo] = x.conj();
            }
        }
    }
    let tr = data[2 * n..3 * n].iter().sum::<c64>();
    (data, tr)
}

/// The saves of an element from its blocks per save (collective or block batch, full or band).
fn assemble_saves(
    per_save: Vec<Vec<Vec<c64>>>,
    layout: &Layout,
    blocks_of: Option<usize>,
    output: BatchOutput,
) -> Saves {
    match (blocks_of, output) {
        (None, BatchOutput::Full) => Saves::Full(
            per_save
                .into_iter()
                .map(|mut v| DensityMatrix {
                    dim: layout.dims[0],
                    data: v.swap_remove(0),
                })
                .collect(),
        ),
        (None, BatchOutput::Band) => Saves::Band(
            per_save
                .into_iter()
                .map(|mut v| Band {
                    dim: layout.dims[0],
                    data: v.swap_remove(0),
                })
                .collect(),
        ),
        (Some(n_atoms), BatchOutput::Full) => Saves::Blocks(
            per_save
                .into_iter()
                .map(|v| {
                    let mut st = BlockState::zeros(n_atoms);
                    st.data = v.concat();
                    st
                })
                .collect(),
        ),
        (Some(_), BatchOutput::Band) => Saves::BlockBands(
            per_save
                .into_iter()
                .map(|v| {
                    v.into_iter()
                        .zip(&layout.dims)
                        .map(|(data, &dim)| Band { dim, data })
                        .collect()
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Rust twins and the WGSL structs (as naga lays them out) agree field by field, for
    /// both precisions.
    #[test]
    fn params_and_ctrl_match_naga_layout() {
        use std::mem::{offset_of, size_of};
        let tail = offset_of!(MasterBatchCtrlF32, state);
        let tail64 = offset_of!(MasterBatchCtrlF64, state);
        let state_fields = |base: usize| {
            vec![
                ("status", base + offset_of!(CtrlState, status)),
                ("next_save", base + offset_of!(CtrlState, next_save)),
                ("attempts", base + offset_of!(CtrlState, attempts)),
                ("steps", base + offset_of!(CtrlState, steps)),
                ("rejected", base + offset_of!(CtrlState, rejected)),
                ("rhs_evals", base + offset_of!(CtrlState, rhs_evals)),
                ("last_rejected", base + offset_of!(CtrlState, last_rejected)),
                ("herm", base + offset_of!(CtrlState, herm)),
                ("slot_y", base + offset_of!(CtrlState, slot_y)),
                ("slot_a", base + offset_of!(CtrlState, slot_a)),
                ("slot_b", base + offset_of!(CtrlState, slot_b)),
                ("slot_k1", base + offset_of!(CtrlState, slot_k1)),
                ("slot_k7", base + offset_of!(CtrlState, slot_k7)),
                ("piece", base + offset_of!(CtrlState, piece)),
            ]
        };
        macro_rules! params_fields {
            ($t:ty) => {
                vec![
                    ("n_blocks", offset_of!($t, n_blocks)),
                    ("len", offset_of!($t, len)),
                    ("levels", offset_of!($t, levels)),
                    ("icoef_len", offset_of!($t, icoef_len)),
                    ("herm_len", offset_of!($t, herm_len)),
                    ("batch", offset_of!($t, batch)),
                    ("n_saves", offset_of!($t, n_saves)),
                    ("out_mode", offset_of!($t, out_mode)),
                    ("out_len", offset_of!($t, out_len)),
                    ("attempts", offset_of!($t, attempts)),
                    ("max_steps", offset_of!($t, max_steps)),
                    ("loop_budget", offset_of!($t, loop_budget)),
                    ("rtol", offset_of!($t, rtol)),
                    ("atol", offset_of!($t, atol)),
                    ("h0", offset_of!($t, h0)),
                    ("t0", offset_of!($t, t0)),
                    ("span", offset_of!($t, span)),
                    ("hmin_rel", offset_of!($t, hmin_rel)),
                    ("tiny", offset_of!($t, tiny)),
                ]
            };
        }
        let mut ctrl32 = vec![
            ("t", offset_of!(MasterBatchCtrlF32, t)),
            ("h", offset_of!(MasterBatchCtrlF32, h)),
            ("err_old", offset_of!(MasterBatchCtrlF32, err_old)),
        ];
        ctrl32.extend(state_fields(tail));
        let mut ctrl64 = vec![
            ("t", offset_of!(MasterBatchCtrlF64, t)),
            ("h", offset_of!(MasterBatchCtrlF64, h)),
            ("err_old", offset_of!(MasterBatchCtrlF64, err_old)),
        ];
        ctrl64.extend(state_fields(tail64));
        let cases = [
            (
                shaders::MASTER_BATCH_F32,
                "Params",
                size_of::<MasterBatchParamsF32>(),
                params_fields!(MasterBatchParamsF32),
            ),
            (
                shaders::MASTER_BATCH_F64,
                "Params",
                size_of::<MasterBatchParamsF64>(),
                params_fields!(MasterBatchParamsF64),
            ),
            (
                shaders::MASTER_BATCH_F32,
                "Ctrl",
                size_of::<MasterBatchCtrlF32>(),
                ctrl32,
            ),
            (
                shaders::MASTER_BATCH_F64,
                "Ctrl",
                size_of::<MasterBatchCtrlF64>(),
                ctrl64,
            ),
        ];
        for def in [shaders::MASTER_BATCH_F32, shaders::MASTER_BATCH_F64] {
            def.assert_struct_layout(
                "Block",
                size_of::<MasterBatchBlock>(),
                &[
                    ("d", offset_of!(MasterBatchBlock, d)),
                    ("voff", offset_of!(MasterBatchBlock, voff)),
                    ("band_off", offset_of!(MasterBatchBlock, band_off)),
                    ("lvl", offset_of!(MasterBatchBlock, lvl)),
                    ("ntr", offset_of!(MasterBatchBlock, ntr)),
                    ("tr", offset_of!(MasterBatchBlock, tr)),
                ],
            );
        }
        assert_eq!(size_of::<MasterBatchBlock>(), 128);
        assert_eq!(size_of::<MasterBatchParamsF32>(), 80);
        assert_eq!(size_of::<MasterBatchParamsF64>(), 112);
        assert_eq!(size_of::<MasterBatchCtrlF32>(), 80);
        assert_eq!(size_of::<MasterBatchCtrlF64>(), 96);
        for (def, name, size, fields) in cases {
            def.assert_struct_layout(name, size, &fields);
        }
    }

    #[test]
    fn band_indexing_and_expansion() {
        let n = 4;
        let mut data = vec![c64::new(0.0, 0.0); 5 * n];
        for q in -2isize..=2 {
            for k in 0..n - q.unsigned_abs() {
                data[(q + 2) as usize * n + k] = c64::new(q as f64, k as f64);
            }
        }
        let band = Band { dim: n, data };
        assert_eq!(band.get(1, 3), Some(c64::new(2.0, 1.0)));
        assert_eq!(band.get(3, 1), Some(c64::new(-2.0, 1.0)));
        assert_eq!(band.get(0, 3), None);
        let dm = band.to_density_matrix();
        assert_eq!(dm.get(2, 1), c64::new(-1.0, 1.0));
        assert_eq!(dm.get(0, 3), c64::new(0.0, 0.0));
        assert_eq!(band.trace(), c64::new(0.0, 6.0));
    }

    #[test]
    fn element_bytes_scale() {
        // f32 work: 10 vectors x 8 bytes per complex.
        let (w, o) = element_bytes(51, 11, BatchOutput::Full, Precision::F32);
        assert_eq!(w, 10 * 51 * 51 * 8);
        assert_eq!(o, 11 * 51 * 51 * 8);
        let (_, ob) = element_bytes(51, 11, BatchOutput::Band, Precision::F64);
        assert_eq!(ob, 11 * 5 * 51 * 16);
    }
}
