//! Batched second-order cumulant equations on the GPU: the WGSL twin of
//! [`crate::solver::cumulant::batch`] (`shaders/cumulant_batch.wgsl`). One invocation per
//! parameter point integrates the nine closed cumulant variables of
//! [`crate::solver::cumulant::rhs`] with adaptive Dormand-Prince 5(4) over the save grid and
//! keeps the per-point reductions; the host turns the result into the CPU twin's
//! [`PointResult`], so a caller swaps [`integrate_batch`](crate::solver::cumulant::batch::integrate_batch)
//! for [`CumulantBatchGpu::run`] and nothing else changes.
//! The CPU sweep runs [`crate::solver::cumulant::lanes`], a SIMD layout of the same scalar
//! algorithm (bit-identical to `integrate_point`), so this kernel stays the twin of the scalar
//! code: a GPU already runs its invocations in lockstep lanes of its own.
//!
//! # Mapping
//!
//! * **Point -> invocation** (workgroups of [`WORKGROUP`]); the integration state of a point
//!   (y, k1 for FSAL, the time as an f32/f64 pair hi + lo, h, err_old, counters and the running
//!   reductions) lives in one [`CumulantBatchStateF32`]/[`CumulantBatchStateF64`] in a storage
//!   array between dispatches. Points of a workgroup take different numbers of steps; a finished
//!   invocation just idles (divergence costs only on SIMD hardware, and only within a
//!   workgroup).
//! * **Same algorithm as `integrate_point`**, line by line: the right-hand side (closure, then
//!   the open equations, term by term in the same order), the tableau, the error norm
//!   `sqrt(mean_i (e_i / (atol + rtol max(|y_i|, |ynew_i|)))^2)`, the PI controller, the
//!   rejection rule, the step-size floor `16 f64::EPSILON max(|t|, span)`, Hairer's starting
//!   step and the clipping onto save times (`t + 1.01 h >= t_k`).
//! * **Saves and reductions**: the save times (minus t0, as hi + lo pairs) and for each save
//!   whether it lies in the xi^2 window (`t_k >= t_min`) and the <Jz> window (`t_k >= t_late`)
//!   are decided on the host in f64 from [`SaveGrid::time`], so both sides reduce over exactly
//!   the same saves. At each save the kernel evaluates [`crate::solver::cumulant::to_moments`]
//!   and [`crate::observe::Moments::xi2`] (the minimum variance perpendicular to <J> in the
//!   plane spanned by `e1 = u x axis`, `e2 = u x e1`, the axis least aligned with u chosen as
//!   `Iterator::min_by` does, `hypot` by scaling) and keeps the minimum and its *save index*;
//!   `t_xi2_min` is then `grid.time(k)` in f64, bit-identical to the CPU's when both pick the
//!   same save. <Jz> over the late window is summed in the working precision.
//! * **Final values**: the kernel returns y at t_end; <J>, xi^2 and <J^2> at t_end are computed
//!   on the host in f64 from that y by the CPU's own `to_moments` / `xi2`.
//!
//! # Schedules
//!
//! [`CumulantBatchGpu::run_pieces_with`] takes each point's protocol as the CPU twin's
//! [`Pieces`] ([`crate::solver::cumulant::pieces`]). The host uploads a table of piece records
//! (`PIECE_RECORD` numbers each: the start as a time pair elapsed since t0, the 12 parameters
//! at the start, their 12 rates) and per point (first record, count); identical tables (by
//! their f64 bits) are uploaded once, so a schedule that does not depend on the point's values
//! costs one table. (Every record carries all 12 parameters, so tables are per point as soon
//! as the sweep moves any parameter.) The current piece is part of the point's state, so a
//! schedule survives dispatch boundaries and chunks unchanged (tested bit for bit). The kernel
//! follows the twin: the step is clipped onto the next break (or its save, within
//! `pieces::snap`), stage i uses `p0 + p1 ((t - start) + c_i h)` (written out, no loop:
//! llvmpipe's loop budget), and after landing on a break k1 is recomputed with the next piece.
//! A point with no pieces (count 0, the path of [`CumulantBatchGpu::run_with`]) reads its
//! constant parameters as before. Accuracy against the twin is that of constant parameters
//! (`tests/gpu_cumulant_batch.rs`; measured on 64 random points with eight pieces each: f64 at
//! rtol 1e-10 takes the twin's steps at every point, max |dy| = 1.6e-15; f32 at rtol 1e-6 max
//! |dy| = 5.2e-7, 1.2 % of the stated bound).
//!
//! # Precision and the stated f32 error
//!
//! f64: arithmetic and sqrt in f64; the controller's powers (`err^0.17`, `err_old^0.04`,
//! `(0.01/d)^0.2`) are evaluated in f32 (DESIGN.md: WGSL f64 pow is broken on the drivers
//! measured), which only chooses step sizes. At tight tolerances it takes the CPU's steps and
//! agrees to rounding (tests/gpu_cumulant_batch.rs).
//!
//! f32: the error estimate itself is computed in f32, so rtol below ~1e-6 measures rounding,
//! not truncation: use rtol >= 1e-6, atol >= 1e-8 (measured at N = 2000: rtol 1e-8 in f32
//! takes 1.6x the f64 steps and is no more accurate). The variables are O(1) moments; against
//! the f64 twin at the same tolerances their f32 error is bounded by
//!
//! ```text
//! delta = 10 (rtol + atol) + 2 S u + 40 u Lambda T        (u = 2^-24, S steps, span T)
//! Lambda = |Omega| + |omega0| + N (Gamma + w + Gamma_phi + |chi| + |chi_z|) + single-atom rates
//! ```
//!
//! (tolerance-level disagreement of two step sequences; the state's rounding per step; the f32
//! right-hand side, whose terms of size up to ~Lambda cancel to an O(1) derivative: k M u
//! Lambda per unit time with ~k = 8 roundings per chain and closed third moments whose
//! monomials sum to M <= 5; derivation in tests/gpu_cumulant_batch.rs). The last term is the one
//! that matters at large N: where the terms nearly cancel for a long time (a fixed point close
//! to a bifurcation, e.g. seed 002 at N = 2000, Upsilon = 0.74 Upsilon_c, gamma_s = 0.5) the
//! f32 state ends 5.9e-3 from the f64 truth, while f64 with the f32-rounded parameters stays
//! within 2e-6: it is the f32 arithmetic of the right-hand side, not the parameters.
//! The collective second moments are N(N-1) times pair moments, so an absolute error delta of
//! the variables becomes at most ~ 4 N^2 delta in the covariance and
//!
//! ```text
//! |d xi^2| <~ 4 N delta / r^2 + 2 xi^2 delta / r,    r = |<J>| / N  (Bloch-vector length)
//! ```
//!
//! a worst case that is far from attained: xi^2 is rotation invariant and the f32 errors seen
//! are mostly rotations. Measured: |d xi2_min| <= 0.013 dB on the seed 002 grid at N = 2000
//! (36 points, up to 18,000 steps), <= 1.7e-3 absolute on 10^3 random points up to N = 10^4,
//! 0.017 dB on the 900-point benchmark grid. Good for phase diagrams in dB; for more, use f64.

//! # llvmpipe's loop limit and dispatches
//!
//! llvmpipe ends every loop of an invocation after 65535 loop iterations in total
//! (DESIGN.md; [`super::driver`]). The kernel charges [`LOOP_ATTEMPT`] iterations per step attempt (seven
//! 9-component loops, a finiteness check and the outer loops' tests, 82, rounded up), [`LOOP_SAVE`] per save and
//! [`LOOP_INIT`] for the start, stops a dispatch before the budget ([`SOFTWARE_LOOP_BUDGET`] on a
//! software adapter, unlimited on real GPUs), and resumes in the next dispatch; pending saves
//! resume first. The host re-dispatches through the batch driver ([`super::driver`],
//! `UntilDone`: 1, 2, 4 ... up to 16 per submission) until every point is done or failed; a
//! round with no progress anywhere is an error, never a hang. A dispatch
//! also stops after `attempts_per_dispatch` attempts (default [`DEFAULT_ATTEMPTS`]) so one
//! dispatch stays short of a desktop watchdog. The accounting is conservative: llvmpipe (LLVM)
//! unrolls the fixed 9-component loops, and a run of 3,192 attempts in one dispatch with the
//! budget off gave bit-identical results; the budget is kept because unrolling is the
//! compiler's choice, and the outer loop alone would hit the limit past 65535 attempts.
//!
//! # Memory
//!
//! Per point: one state (144 bytes in f32, 240 in f64), 12 parameters and a piece range (8
//! bytes); a scheduled point adds `26 x pieces` numbers unless its table is shared. Chunks also
//! respect the binding limit for the largest point's table (a table larger than one binding is
//! refused with [`GpuError::TooLarge`]). Points run in chunks
//! that fit the storage binding limit and the workgroup-count limit (a million points per chunk
//! at most); 10^5 points are one chunk (12.8 MB in f32).
//!
//! # Measured accuracy (lavapipe; no real GPU was available)
//!
//! Accuracy (`tests/gpu_cumulant_batch.rs`): on 10^3 random points (every term on, N in
//! [2, 10^4]) the f32 kernel at rtol 1e-6 / atol 1e-8 against the f64 CPU twin at the same
//! tolerances: max |dy| = 7.1e-7 (1.3 % of the stated bound), |d xi^2| <= 2.0e-3 and
//! |d xi2_min| <= 1.7e-3 (the largest at N ~ 10^4, as the N delta estimate says), equal step
//! counts at 726 of 1000 points; on seed 002's grid at N = 2000 (36 points, up to 18,000
//! steps) max |dy| up to 15 % of the bound and |d xi2_min| <= 0.013 dB. f64 at rtol 1e-10 on
//! 250 random points: equal step counts at every point, max |dy| = 1.7e-15,
//! |d xi2_min| <= 5.6e-12.
//!
//! Speed: BENCHMARKS.md, "Batched cumulant equations" (lavapipe against the CPU twin, and the
//! command for a real GPU). lavapipe is for testing the kernel; the speed that matters is a
//! real GPU's.

use super::driver::{
    self, Chunk, ElementState, Grown, Names, ReadBack, ST_DONE, ST_INIT, ST_MAXSTEPS, ST_SMALL, UntilDone,
};
use super::shaders::{self, ShaderDef};
use super::{GpuContext, GpuError, lock};
use crate::precision::Precision;
use crate::solver::cumulant::batch::{BatchOptions, PointResult, SaveGrid, Status};
use crate::solver::cumulant::pieces::{Pieces, snap};
use crate::solver::cumulant::{NPAR, NVAR, to_moments};
use bytemuck::{Pod, Zeroable};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Invocations per workgroup.
pub const WORKGROUP: u32 = 64;
/// Step attempts per point and dispatch unless [`CumulantGpuOptions`] says otherwise.
pub const DEFAULT_ATTEMPTS: u32 = 4096;
/// Loop iterations per invocation and dispatch on a software adapter (llvmpipe stops at 65535;
/// the driver's, [`super::driver`]).
pub use super::driver::SOFTWARE_LOOP_BUDGET;
/// Loop iterations the kernel charges for its start (twin of COST_INIT).
pub const LOOP_INIT: u32 = 60;
/// ... per step attempt (twin of COST_ATTEMPT).
pub const LOOP_ATTEMPT: u32 = 90;
/// ... per save (twin of COST_SAVE).
pub const LOOP_SAVE: u32 = 2;
/// Most points per chunk.
const MAX_CHUNK: u64 = 1 << 20;

// State.status: the driver's ST_* codes; ST_NONFINITE (a non-finite state or derivative) is
// every final status other than ST_DONE, ST_SMALL and ST_MAXSTEPS.
/// State.k_min before any qualifying save.
const NO_SAVE: u32 = u32::MAX;

/// How a GPU batch runs besides the integrator's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CumulantGpuOptions {
    /// Working precision (F64 needs SHADER_F64).
    pub precision: Precision,
    /// Step attempts per point and dispatch; 0: [`DEFAULT_ATTEMPTS`].
    pub attempts_per_dispatch: u32,
    /// Loop iterations per invocation and dispatch; 0: automatic ([`SOFTWARE_LOOP_BUDGET`] on
    /// a software adapter, unlimited otherwise). Tests use small values to force resumption.
    pub loop_budget: u32,
    /// Most points per chunk; 0: as many as the device limits allow (module doc, "Memory").
    /// Tests use small values to exercise chunking.
    pub chunk_points: u32,
}

/// A batch's results with how it ran.
#[derive(Debug, Clone)]
pub struct CumulantGpuRun {
    /// Per point, in input order (the CPU twin's type).
    pub points: Vec<PointResult>,
    pub precision: Precision,
    pub adapter: String,
    pub chunks: usize,
    pub dispatches: usize,
}

/// The u32 block of the kernel's tail, common to both precisions.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct StateCounters {
    pub status: u32,
    pub next_save: u32,
    pub attempts: u32,
    pub steps: u32,
    pub rejected: u32,
    pub last_rejected: u32,
    pub k_min: u32,
    pub jz_count: u32,
    /// The current piece of a scheduled point.
    pub piece: u32,
    pub _pad: [u32; 3],
}

/// Numbers per piece record of the kernel's `pieces` (twin of REC): the start as a time pair
/// (elapsed since t0), the 12 parameters at the start, their 12 rates.
pub const PIECE_RECORD: usize = 2 + 2 * NPAR;

macro_rules! twin_structs {
    ($params:ident, $state:ident, $r:ty, $size_p:literal, $size_s:literal) => {
        /// Uniform parameters of the cumulant_batch kernel. WGSL twin: `struct Params` in
        #[doc = concat!("`shaders/cumulant_batch.wgsl` with R = ", stringify!($r), " (", $size_p, " bytes).")]
        #[repr(C)]
        #[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
        pub struct $params {
            /// Points in this chunk.
            pub points: u32,
            pub n_saves: u32,
            /// Step attempts per dispatch.
            pub attempts: u32,
            pub max_steps: u32,
            /// Loop iterations per invocation and dispatch.
            pub loop_budget: u32,
            pub _pad_u: [u32; 3],
            pub rtol: $r,
            pub atol: $r,
            pub t0: $r,
            pub span: $r,
            /// 16 f64::EPSILON (batch.rs's step-size floor).
            pub hmin_rel: $r,
            /// Breaks within this of a save are taken at the save (`pieces::snap`).
            pub snap: $r,
            pub _pad: [$r; 2],
        }

        /// Integration state of one point. WGSL twin: `struct State` in
        #[doc = concat!("`shaders/cumulant_batch.wgsl` with R = ", stringify!($r), " (", $size_s, " bytes).")]
        #[repr(C)]
        #[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
        pub struct $state {
            pub y: [$r; NVAR],
            /// f(y) (first stage of the next step, FSAL).
            pub k1: [$r; NVAR],
            /// Time since t0 as hi + lo.
            pub t: [$r; 2],
            /// Next step size (after a failure: the step that failed).
            pub h: $r,
            pub err_old: $r,
            pub xi2_min: $r,
            pub jz_sum: $r,
            pub c: StateCounters,
        }

        impl ElementState for $state {
            fn status(&self) -> u32 {
                self.c.status
            }
            fn progress(&self) -> (u32, u32, u32) {
                (self.c.status, self.c.attempts, self.c.next_save)
            }
        }
    };
}
twin_structs!(CumulantBatchParamsF32, CumulantBatchStateF32, f32, "64", "144");
twin_structs!(CumulantBatchParamsF64, CumulantBatchStateF64, f64, "96", "240");

/// The working precision as a host type.
trait Real: Pod + Copy + Default {
    const PRECISION: Precision;
    const R_MAX: f64;
    type Params: Pod;
    type State: ElementState;
    fn of(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn params(u: [u32; 5], r: [f64; 6]) -> Self::Params;
    fn state(y0: &[f64; NVAR]) -> Self::State;
    fn counters(s: &Self::State) -> StateCounters;
    /// (y, elapsed time, xi2_min, jz_sum).
    fn read(s: &Self::State) -> ([f64; NVAR], f64, f64, f64);
    fn pair(x: f64) -> [Self; 2] {
        let hi = Self::of(x);
        [hi, Self::of(x - hi.to_f64())]
    }
}

macro_rules! impl_real {
    ($r:ty, $prec:expr, $params:ident, $state:ident) => {
        impl Real for $r {
            const PRECISION: Precision = $prec;
            const R_MAX: f64 = <$r>::MAX as f64;
            type Params = $params;
            type State = $state;
            fn of(x: f64) -> Self {
                x as $r
            }
            fn to_f64(self) -> f64 {
                f64::from(self)
            }
            fn params(u: [u32; 5], r: [f64; 6]) -> $params {
                let [points, n_saves, attempts, max_steps, loop_budget] = u;
                let [rtol, atol, t0, span, hmin_rel, snap] = r.map(|x| x as $r);
                $params {
                    points,
                    n_saves,
                    attempts,
                    max_steps,
                    loop_budget,
                    _pad_u: [0; 3],
                    rtol,
                    atol,
                    t0,
                    span,
                    hmin_rel,
                    snap,
                    _pad: [0.0; 2],
                }
            }
            fn state(y0: &[f64; NVAR]) -> $state {
                $state {
                    y: y0.map(|x| x as $r),
                    k1: [0.0; NVAR],
                    t: [0.0; 2],
                    h: 0.0,
                    err_old: 1e-4,
                    xi2_min: <$r>::MAX,
                    jz_sum: 0.0,
                    c: StateCounters {
                        status: ST_INIT,
                        next_save: 0,
                        attempts: 0,
                        steps: 0,
                        rejected: 0,
                        last_rejected: 0,
                        k_min: NO_SAVE,
                        jz_count: 0,
                        piece: 0,
                        _pad: [0; 3],
                    },
                }
            }
            fn counters(s: &$state) -> StateCounters {
                s.c
            }
            fn read(s: &$state) -> ([f64; NVAR], f64, f64, f64) {
                (
                    s.y.map(f64::from),
                    f64::from(s.t[0]) + f64::from(s.t[1]),
                    f64::from(s.xi2_min),
                    f64::from(s.jz_sum),
                )
            }
        }
    };
}
impl_real!(f32, Precision::F32, CumulantBatchParamsF32, CumulantBatchStateF32);
impl_real!(f64, Precision::F64, CumulantBatchParamsF64, CumulantBatchStateF64);

fn state_size(p: Precision) -> u64 {
    match p {
        Precision::F32 => std::mem::size_of::<CumulantBatchStateF32>() as u64,
        Precision::F64 => std::mem::size_of::<CumulantBatchStateF64>() as u64,
    }
}

/// Buffers kept between calls, grown when a call needs more.
struct Buffers {
    params: wgpu::Buffer,
    par: wgpu::Buffer,
    times: wgpu::Buffer,
    flags: wgpu::Buffer,
    state: wgpu::Buffer,
    staging: wgpu::Buffer,
    pieces: wgpu::Buffer,
    pidx: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

/// [`Buffers`] with the sizes of params, par, times, flags, state, pieces, pidx.
type CachedBuffers = Grown<Buffers, 7>;

/// Labels and operations of this kernel's GPU work.
const NAMES: Names = driver::names!("cumulant_batch");

/// The batched cumulant kernel on one GPU: modules and pipelines built once, buffers reused.
pub struct CumulantBatchGpu {
    ctx: Arc<GpuContext>,
    layout: wgpu::BindGroupLayout,
    pipelines: Vec<(Precision, ShaderDef, wgpu::ComputePipeline)>,
    buffers: Mutex<Option<CachedBuffers>>,
}

impl std::fmt::Debug for CumulantBatchGpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CumulantBatchGpu")
            .field("device", &self.ctx.info().name)
            .finish_non_exhaustive()
    }
}

fn bad_input(message: String) -> GpuError {
    GpuError::Validation {
        operation: "cumulant_batch input",
        message,
    }
}

impl CumulantBatchGpu {
    /// Compile the f32 kernel (and the f64 one where the device has SHADER_F64).
    pub fn new(ctx: Arc<GpuContext>) -> Result<Self, GpuError> {
        let (read, write) = (
            wgpu::BufferBindingType::Storage { read_only: true },
            wgpu::BufferBindingType::Storage { read_only: false },
        );
        let (layout, pipeline_layout) = ctx.compute_layouts(
            "dicke.cumulant_batch",
            &[
                wgpu::BufferBindingType::Uniform,
                read,
                read,
                read,
                write,
                read,
                read,
            ],
        );
        let mut defs = vec![(Precision::F32, shaders::CUMULANT_BATCH_F32)];
        if ctx.info().has_f64 {
            defs.push((Precision::F64, shaders::CUMULANT_BATCH_F64));
        }
        let mut pipelines = Vec::new();
        for (p, def) in defs {
            let module = ctx.shader_module(&def)?;
            let label = format!("dicke.{}", def.name);
            let constants = [("WG", f64::from(WORKGROUP))];
            let pipeline = driver::pipeline(
                ctx.device(),
                &pipeline_layout,
                &def,
                &module,
                &label,
                &constants,
                true,
            )?;
            pipelines.push((p, def, pipeline));
        }
        Ok(CumulantBatchGpu {
            ctx,
            layout,
            pipelines,
            buffers: Mutex::new(None),
        })
    }

    /// The context this kernel runs on.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// The GPU twin of [`integrate_batch`](crate::solver::cumulant::batch::integrate_batch):
    /// point `i` integrates `pars[i]` from `y0s[i]` over `grid` with the options `o`; results in
    /// input order. Errors: mismatched lengths, bad tolerances or grid (refused before any GPU
    /// work), a missing f64 capability, or the device.
    pub fn run(
        &self,
        pars: &[[f64; NPAR]],
        y0s: &[[f64; NVAR]],
        grid: &SaveGrid,
        o: &BatchOptions,
        precision: Precision,
    ) -> Result<Vec<PointResult>, GpuError> {
        let opts = CumulantGpuOptions {
            precision,
            ..Default::default()
        };
        Ok(self.run_with(pars, y0s, grid, o, &opts)?.points)
    }

    /// [`run`](Self::run) with the dispatch options, returning how it ran.
    pub fn run_with(
        &self,
        pars: &[[f64; NPAR]],
        y0s: &[[f64; NVAR]],
        grid: &SaveGrid,
        o: &BatchOptions,
        opts: &CumulantGpuOptions,
    ) -> Result<CumulantGpuRun, GpuError> {
        match opts.precision {
            Precision::F32 => self.run_t::<f32>(pars, None, y0s, grid, o, opts),
            Precision::F64 => self.run_t::<f64>(pars, None, y0s, grid, o, opts),
        }
    }

    /// The GPU twin of
    /// [`integrate_batch_pieces`](crate::solver::cumulant::batch::integrate_batch_pieces):
    /// point `i` runs the scheduled protocol `pieces[i]` (built on the grid's span) from
    /// `y0s[i]` (module doc, "Schedules"); otherwise as [`run_with`](Self::run_with).
    pub fn run_pieces_with(
        &self,
        pieces: &[Pieces],
        y0s: &[[f64; NVAR]],
        grid: &SaveGrid,
        o: &BatchOptions,
        opts: &CumulantGpuOptions,
    ) -> Result<CumulantGpuRun, GpuError> {
        let pars: Vec<[f64; NPAR]> = pieces.iter().map(|p| p.p0[0]).collect();
        match opts.precision {
            Precision::F32 => self.run_t::<f32>(&pars, Some(pieces), y0s, grid, o, opts),
            Precision::F64 => self.run_t::<f64>(&pars, Some(pieces), y0s, grid, o, opts),
        }
    }

    fn run_t<R: Real>(
        &self,
        pars: &[[f64; NPAR]],
        pieces: Option<&[Pieces]>,
        y0s: &[[f64; NVAR]],
        grid: &SaveGrid,
        o: &BatchOptions,
        opts: &CumulantGpuOptions,
    ) -> Result<CumulantGpuRun, GpuError> {
        let precision = R::PRECISION;
        check_input(pars, y0s, grid, o)?;
        check_pieces(pieces, pars.len(), grid)?;
        let (_, def, pipeline) =
            self.pipelines
                .iter()
                .find(|p| p.0 == precision)
                .ok_or_else(|| GpuError::NoF64 {
                    what: "cumulant_batch in f64",
                    adapter: self.ctx.info().name.clone(),
                })?;
        let mut run = CumulantGpuRun {
            points: Vec::with_capacity(pars.len()),
            precision,
            adapter: self.ctx.info().name.clone(),
            chunks: 0,
            dispatches: 0,
        };
        if pars.is_empty() {
            return Ok(run);
        }
        let most_pieces = pieces.map_or(1, |p| p.iter().map(|q| q.starts.len()).max().unwrap_or(1));
        let call = self.plan_call::<R>(pars.len(), most_pieces, grid, o, opts)?;
        let mut guard = lock(&self.buffers);
        for range in driver::chunks(pars.len(), call.chunk) {
            let cb = range.len();
            let (records, pidx) = piece_records::<R>(pieces.map(|p| &p[range.clone()]), cb, grid.t0);
            let sizes = [
                std::mem::size_of::<R::Params>() as u64,
                (cb * NPAR) as u64 * precision.real_bytes(),
                (grid.nsave * 2) as u64 * precision.real_bytes(),
                grid.nsave as u64 * 4,
                cb as u64 * state_size(precision),
                std::mem::size_of_val(records.as_slice()) as u64,
                std::mem::size_of_val(pidx.as_slice()) as u64,
            ];
            let cached = driver::reuse_or_grow(guard.take(), sizes, |s| self.buffers(s))?;
            let data = ChunkData {
                par: pars[range.clone()].iter().flatten().map(|&x| R::of(x)).collect(),
                init: y0s[range.clone()].iter().map(R::state).collect(),
                records,
                pidx,
            };
            let params = call.params(cb);
            let res = self.run_chunk::<R>(&cached.bufs, pipeline, def, &params, &call, &data);
            *guard = Some(cached);
            let (dispatches, states) = res?;
            run.dispatches += dispatches;
            run.chunks += 1;
            for (s, par) in states.iter().zip(&pars[range]) {
                run.points.push(point_result::<R>(s, par, grid, &call.times));
            }
        }
        Ok(run)
    }

    /// What a call shares across its chunks, with the budget and sizes checked.
    fn plan_call<R: Real>(
        &self,
        points: usize,
        most_pieces: usize,
        grid: &SaveGrid,
        o: &BatchOptions,
        opts: &CumulantGpuOptions,
    ) -> Result<CallPlan<R>, GpuError> {
        let precision = R::PRECISION;
        let loop_budget = match opts.loop_budget {
            0 => driver::loop_budget(&self.ctx),
            b => b,
        };
        if loop_budget < LOOP_INIT.max(LOOP_ATTEMPT + LOOP_SAVE) {
            return Err(bad_input(format!(
                "loop budget {loop_budget}: one step needs {}",
                LOOP_INIT.max(LOOP_ATTEMPT + LOOP_SAVE)
            )));
        }
        let attempts = match opts.attempts_per_dispatch {
            0 => DEFAULT_ATTEMPTS,
            a => a,
        };
        let binding = driver::binding_limit(&self.ctx);
        let nsave = grid.nsave;
        if (nsave as u64) * 2 * precision.real_bytes() > binding {
            return Err(GpuError::TooLarge {
                what: format!("cumulant_batch: {nsave} save times"),
                bytes: nsave as u64 * 2 * precision.real_bytes(),
                limit: binding,
            });
        }
        let record_bytes = (most_pieces * PIECE_RECORD) as u64 * precision.real_bytes();
        if record_bytes > binding {
            return Err(GpuError::TooLarge {
                what: format!("cumulant_batch: a protocol of {most_pieces} pieces"),
                bytes: record_bytes,
                limit: binding,
            });
        }
        let groups = u64::from(self.ctx.limits().max_compute_workgroups_per_dimension);
        let chunk = driver::chunk_len(
            points as u64,
            [
                binding / state_size(precision),
                binding / (NPAR as u64 * precision.real_bytes()),
                binding / record_bytes,
                groups * u64::from(WORKGROUP),
                MAX_CHUNK,
                match opts.chunk_points {
                    0 => u64::MAX,
                    c => u64::from(c),
                },
            ],
        );
        // Save times (elapsed, as pairs) and window flags, decided in f64.
        let times: Vec<f64> = (0..nsave).map(|k| grid.time(k)).collect();
        Ok(CallPlan {
            save_t: times.iter().map(|&t| R::pair(t - grid.t0)).collect(),
            flags: times
                .iter()
                .map(|&t| u32::from(t >= grid.t_min) | (u32::from(t >= grid.t_late) << 1))
                .collect(),
            times,
            chunk,
            u: [
                0, // the chunk's points, set per chunk
                nsave as u32,
                attempts,
                u32::try_from(o.max_steps).unwrap_or(u32::MAX),
                loop_budget,
            ],
            r: [
                o.rtol,
                o.atol,
                grid.t0,
                grid.t_end - grid.t0,
                16.0 * f64::EPSILON,
                snap(grid.t0, grid.t_end),
            ],
        })
    }

    /// Upload one chunk and dispatch until every point is done or failed.
    fn run_chunk<R: Real>(
        &self,
        bufs: &Buffers,
        pipeline: &wgpu::ComputePipeline,
        def: &ShaderDef,
        params: &R::Params,
        call: &CallPlan<R>,
        data: &ChunkData<R>,
    ) -> Result<(usize, Vec<R::State>), GpuError> {
        let init = data.init.as_slice();
        let chunk = Chunk {
            ctx: &self.ctx,
            names: &NAMES,
            pipeline,
            bind_group: &bufs.bind_group,
            groups: (init.len() as u32).div_ceil(WORKGROUP),
        };
        chunk.upload(|queue| {
            queue.write_buffer(&bufs.params, 0, bytemuck::bytes_of(params));
            queue.write_buffer(&bufs.par, 0, bytemuck::cast_slice(&data.par));
            queue.write_buffer(&bufs.times, 0, bytemuck::cast_slice(&call.save_t));
            queue.write_buffer(&bufs.flags, 0, bytemuck::cast_slice(&call.flags));
            queue.write_buffer(&bufs.state, 0, bytemuck::cast_slice(init));
            queue.write_buffer(&bufs.pieces, 0, bytemuck::cast_slice(&data.records));
            queue.write_buffer(&bufs.pidx, 0, bytemuck::cast_slice(&data.pidx));
        })?;
        let state = ReadBack {
            src: &bufs.state,
            staging: &bufs.staging,
            label: "dicke.cumulant_batch.staging",
        };
        let mut until_done = UntilDone::new(init, NAMES.dispatch, "points", format!("`{}`", def.name));
        chunk.resume(state, std::mem::size_of_val(init) as u64, &mut until_done)
    }

    fn buffers(&self, sizes: [u64; 7]) -> Result<Buffers, GpuError> {
        self.ctx.scoped(NAMES.alloc, || {
            use wgpu::BufferUsages as U;
            let mk = |label, size, usage| self.ctx.padded_buffer(label, size, usage);
            let params = mk("dicke.cumulant_batch.params", sizes[0], U::UNIFORM | U::COPY_DST);
            let par = mk("dicke.cumulant_batch.par", sizes[1], U::STORAGE | U::COPY_DST);
            let times = mk("dicke.cumulant_batch.times", sizes[2], U::STORAGE | U::COPY_DST);
            let flags = mk("dicke.cumulant_batch.flags", sizes[3], U::STORAGE | U::COPY_DST);
            let state = mk(
                "dicke.cumulant_batch.state",
                sizes[4],
                U::STORAGE | U::COPY_DST | U::COPY_SRC,
            );
            let staging = mk(
                "dicke.cumulant_batch.staging",
                sizes[4],
                U::MAP_READ | U::COPY_DST,
            );
            let pieces = mk("dicke.cumulant_batch.pieces", sizes[5], U::STORAGE | U::COPY_DST);
            let pidx = mk("dicke.cumulant_batch.pidx", sizes[6], U::STORAGE | U::COPY_DST);
            let bind_group = driver::bind_buffers(
                &self.ctx,
                NAMES.bind_group,
                &self.layout,
                &[&params, &par, &times, &flags, &state, &pieces, &pidx],
            );
            Ok(Buffers {
                params,
                par,
                times,
                flags,
                state,
                staging,
                pieces,
                pidx,
                bind_group,
            })
        })
    }
}

/// Refuse mismatched lengths, a bad save grid or bad tolerances before any GPU work.
fn check_input(
    pars: &[[f64; NPAR]],
    y0s: &[[f64; NVAR]],
    grid: &SaveGrid,
    o: &BatchOptions,
) -> Result<(), GpuError> {
    if pars.len() != y0s.len() {
        return Err(bad_input(format!(
            "{} parameter points but {} initial states: expected one per point",
            pars.len(),
            y0s.len()
        )));
    }
    if grid.nsave < 2 || !(grid.t0.is_finite() && grid.t_end.is_finite() && grid.t_end > grid.t0) {
        return Err(bad_input(format!(
            "save grid t0 = {}, t_end = {}, nsave = {}: expected finite t_end > t0 and nsave >= 2",
            grid.t0, grid.t_end, grid.nsave
        )));
    }
    if !(o.rtol > 0.0 && o.atol > 0.0 && o.rtol.is_finite() && o.atol.is_finite()) {
        return Err(bad_input(format!(
            "rtol = {}, atol = {}: expected positive finite tolerances",
            o.rtol, o.atol
        )));
    }
    Ok(())
}

/// Refuse piece tables that do not fit the points or the grid (one per point, starting at
/// t0, every break inside the span) before any GPU work.
fn check_pieces(pieces: Option<&[Pieces]>, points: usize, grid: &SaveGrid) -> Result<(), GpuError> {
    let Some(pieces) = pieces else {
        return Ok(());
    };
    if pieces.len() != points {
        return Err(bad_input(format!(
            "{} piece tables for {points} points: expected one per point",
            pieces.len()
        )));
    }
    for (i, p) in pieces.iter().enumerate() {
        let inside = p.breaks().iter().all(|&b| b > grid.t0 && b < grid.t_end);
        let increasing = p.starts.windows(2).all(|w| w[0] < w[1]);
        if p.starts.first() != Some(&grid.t0) || !inside || !increasing {
            return Err(bad_input(format!(
                "point {i}: pieces starting at {:?}: expected the grid's t0 = {} then increasing \
                 breaks inside (t0, t_end = {})",
                p.starts.first(),
                grid.t0,
                grid.t_end
            )));
        }
    }
    Ok(())
}

/// The kernel's piece records of one chunk and each point's (first record, count); identical
/// tables are uploaded once (module doc). A constant chunk: one zero record, every count 0.
fn piece_records<R: Real>(pieces: Option<&[Pieces]>, points: usize, t0: f64) -> (Vec<R>, Vec<[u32; 2]>) {
    let Some(pieces) = pieces else {
        return (vec![R::of(0.0); PIECE_RECORD], vec![[0, 0]; points]);
    };
    let mut records: Vec<R> = Vec::new();
    let mut seen: HashMap<Vec<u64>, u32> = HashMap::new();
    let mut pidx = Vec::with_capacity(points);
    for p in pieces {
        let key: Vec<u64> = p
            .starts
            .iter()
            .chain(p.p0.iter().flatten())
            .chain(p.p1.iter().flatten())
            .map(|x| x.to_bits())
            .collect();
        let first = *seen.entry(key).or_insert_with(|| {
            let first = (records.len() / PIECE_RECORD) as u32;
            for k in 0..p.starts.len() {
                records.extend(R::pair(p.starts[k] - t0));
                records.extend(p.p0[k].iter().chain(&p.p1[k]).map(|&x| R::of(x)));
            }
            first
        });
        pidx.push([first, p.starts.len() as u32]);
    }
    (records, pidx)
}

/// One chunk's uploads besides the call's: parameters, initial states, piece records and
/// per-point piece ranges.
struct ChunkData<R: Real> {
    par: Vec<R>,
    init: Vec<R::State>,
    records: Vec<R>,
    pidx: Vec<[u32; 2]>,
}

/// What one call shares across its chunks (built by `CumulantBatchGpu::plan_call`).
struct CallPlan<R> {
    /// Save times in f64, as the CPU twin computes them.
    times: Vec<f64>,
    /// The same, elapsed since t0, as pairs hi + lo.
    save_t: Vec<[R; 2]>,
    /// Per save: bit 0 in the xi^2 window, bit 1 in the <Jz> window.
    flags: Vec<u32>,
    /// Points per chunk.
    chunk: usize,
    /// The kernel parameters but the chunk's point count (`Real::params` order).
    u: [u32; 5],
    r: [f64; 6],
}

impl<R: Real> CallPlan<R> {
    fn params(&self, points: usize) -> R::Params {
        let mut u = self.u;
        u[0] = points as u32;
        R::params(u, self.r)
    }
}

/// A point's [`PointResult`] from its final kernel state; the values at t_end in f64 from the
/// kernel's y by the CPU's own functions.
fn point_result<R: Real>(s: &R::State, par: &[f64; NPAR], grid: &SaveGrid, times: &[f64]) -> PointResult {
    let c = R::counters(s);
    let (y, t_el, xi2_min, jz_sum) = R::read(s);
    let status = match c.status {
        ST_DONE => Status::Ok,
        ST_SMALL => Status::StepSizeTooSmall,
        ST_MAXSTEPS => Status::TooManySteps,
        _ => Status::NonFinite,
    };
    let m = to_moments(par[0] as usize, &y);
    let found = c.k_min != NO_SAVE && (c.k_min as usize) < times.len() && xi2_min < R::R_MAX;
    PointResult {
        status,
        t_reached: if status == Status::Ok {
            grid.t_end
        } else {
            grid.t0 + t_el
        },
        y,
        mean: m.mean,
        xi2: m.xi2(),
        j2: m.second[0][0] + m.second[1][1] + m.second[2][2],
        xi2_min: if found { xi2_min } else { f64::NAN },
        t_xi2_min: if found { times[c.k_min as usize] } else { f64::NAN },
        jz_late: if c.jz_count > 0 {
            jz_sum / f64::from(c.jz_count)
        } else {
            f64::NAN
        },
        steps: u64::from(c.steps),
        rejected: u64::from(c.rejected),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// The Rust twins and the WGSL structs (as naga lays them out) agree field by field.
    #[test]
    fn params_and_state_match_naga_layout() {
        macro_rules! params_fields {
            ($t:ty) => {
                [
                    ("points", offset_of!($t, points)),
                    ("n_saves", offset_of!($t, n_saves)),
                    ("attempts", offset_of!($t, attempts)),
                    ("max_steps", offset_of!($t, max_steps)),
                    ("loop_budget", offset_of!($t, loop_budget)),
                    ("rtol", offset_of!($t, rtol)),
                    ("atol", offset_of!($t, atol)),
                    ("t0", offset_of!($t, t0)),
                    ("span", offset_of!($t, span)),
                    ("hmin_rel", offset_of!($t, hmin_rel)),
                    ("snap", offset_of!($t, snap)),
                ]
            };
        }
        macro_rules! state_fields {
            ($t:ty) => {{
                let c = offset_of!($t, c);
                [
                    ("y", offset_of!($t, y)),
                    ("k1", offset_of!($t, k1)),
                    ("t", offset_of!($t, t)),
                    ("h", offset_of!($t, h)),
                    ("err_old", offset_of!($t, err_old)),
                    ("xi2_min", offset_of!($t, xi2_min)),
                    ("jz_sum", offset_of!($t, jz_sum)),
                    ("status", c + offset_of!(StateCounters, status)),
                    ("next_save", c + offset_of!(StateCounters, next_save)),
                    ("attempts", c + offset_of!(StateCounters, attempts)),
                    ("steps", c + offset_of!(StateCounters, steps)),
                    ("rejected", c + offset_of!(StateCounters, rejected)),
                    (
                        "last_rejected",
                        c + offset_of!(StateCounters, last_rejected),
                    ),
                    ("k_min", c + offset_of!(StateCounters, k_min)),
                    ("jz_count", c + offset_of!(StateCounters, jz_count)),
                    ("piece", c + offset_of!(StateCounters, piece)),
                ]
            }};
        }
        assert_eq!(size_of::<CumulantBatchParamsF32>(), 64);
        assert_eq!(size_of::<CumulantBatchParamsF64>(), 96);
        assert_eq!(size_of::<CumulantBatchStateF32>(), 144);
        assert_eq!(size_of::<CumulantBatchStateF64>(), 240);
        shaders::CUMULANT_BATCH_F32.assert_struct_layout(
            "Params",
            size_of::<CumulantBatchParamsF32>(),
            &params_fields!(CumulantBatchParamsF32),
        );
        shaders::CUMULANT_BATCH_F64.assert_struct_layout(
            "Params",
            size_of::<CumulantBatchParamsF64>(),
            &params_fields!(CumulantBatchParamsF64),
        );
        shaders::CUMULANT_BATCH_F32.assert_struct_layout(
            "State",
            size_of::<CumulantBatchStateF32>(),
            &state_fields!(CumulantBatchStateF32),
        );
        shaders::CUMULANT_BATCH_F64.assert_struct_layout(
            "State",
            size_of::<CumulantBatchStateF64>(),
            &state_fields!(CumulantBatchStateF64),
        );
    }
}
