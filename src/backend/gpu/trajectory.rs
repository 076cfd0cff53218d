//! Host side of the trajectory kernel (`shaders/trajectory.wgsl`); the algorithm, its CPU twin
//! and the ensemble reduction are in [`crate::solver::trajectory`].
//!
//! # Mappings (kernel variants)
//!
//! The kernel body is shared; a variant file says where a trajectory's vectors live and how
//! invocations cooperate ([`Variant`]), chosen by `lanes` ([`TrajectoryOptions::lanes`],
//! default [`default_lanes`]):
//!
//! * **lane** (`lanes = 1`): one invocation per trajectory, 64 trajectories per workgroup, no
//!   barriers; the per-level vectors in a storage scratch region interleaved over the
//!   trajectories of the dispatch (neighbouring invocations touch neighbouring words). Sums over
//!   levels are sequential: the twin's `lanes = 1`.
//! * **wg** (`lanes` = 2..=256): one workgroup per trajectory, invocation `l` owning the levels
//!   `l, l + lanes, ...`; the stage vector u (read across invocations by the V stencil) in
//!   workgroup memory, the other six vectors in private slots. For 2j + 1 <= min(WG_CAP,
//!   lanes x PER_LANE): 2048 levels in f32, 1024 in f64 at 256 lanes (20 / 24 KiB of workgroup
//!   memory with the reduction scratch; a device offering less gets **st**).
//! * **st**: as **wg** with every vector in storage, for longer ladders.
//!
//! On lavapipe one invocation per trajectory wins, since every barrier switches between
//! coroutines (timings per mapping: BENCHMARKS.md, "GPU mappings on lavapipe"). On a real GPU
//! the workgroup mapping should win for long ladders (u in on-chip memory); unmeasured.
//!
//! # Irrep-changing trajectories (single-atom rates)
//!
//! The kernel follows the twin's `run_with` ([`crate::solver::trajectory`], "Irrep-changing
//! jumps"): every per-level buffer is laid out for j = N/2 (`TrajParams::n_levels` = N + 1 is
//! the stride; the lane, st and wg variants index by it), and a trajectory carries its current
//! 2j in private variables (ladder length, j, the irrep's nine rates at its offset in the real
//! parameters: `Plan::kernel_rp`) and in slot 7 of its resumable state. At a jump the nine
//! channel weights (J-, J+, Jz, then A-, A+, B-, B+, D-, D+) are reduced as the twin reduces
//! them, the channel chosen by the twin's `choose` (collective models keep the original
//! three-way selection, bit for bit), and an irrep-changing jump writes level `i' = i + di` of
//! the new irrep from level i of the old one times `sqrt(|<j'm'|A|jm>|^2)`, then switches irrep.
//! Exponential tables: the top irrep's and one scale per irrep and row, multiplied when read
//! (module doc of the solver, "Exponential tables per irrep"; 0.8 MiB at N = 2000 in f64,
//! checked against the binding limit before allocation). Collective models read the same
//! numbers at the same addresses as before (one irrep, scale never read). Measured against the
//! twin on lavapipe (tests/trajectory.rs
//! `gpu_matches_cpu_twin_per_trajectory_irrep_changing`, N = 20, all six irrep-changing
//! channels): the same jumps into the same irreps; records bit for bit with one level per
//! invocation, within 1.5e-5 (f32) / 4e-14 (f64) relative in the other mappings.
//!
//! On lavapipe (256-bit llvmpipe) the fastest mapping at N = 2000 is a workgroup of 8
//! (`lanes = 8`, st): every barrier of a workgroup wider than the 8 SIMD lanes switches
//! coroutines (timings: BENCHMARKS.md, "Irrep-changing trajectories"); `lanes` <= 2 cannot fit
//! one trial in the loop budget and is refused.
//!
//! # Schedules (time-dependent parameters)
//!
//! A scheduled plan (`Plan::sched`; module doc of [`crate::solver::trajectory::sched`]) runs
//! the twin's `run_sched` step for step: the host appends the schedule's
//! [`KernelBlock`] (the complex exponential's constants, then per segment `h`, `q` and the
//! `a, b` of the rates and of `cm`) to the real parameters at `TrajParams::sched_rp`, puts
//! the segments `(save index or 0, steps)` in place of the save intervals and the segments'
//! diagonals (`(e_a, g_a)`, `(e_b, g_b)` rows per segment) in place of the exponential table
//! (`TrajParams::sched`: bit 0 scheduled, bit 1 the stencil or rates scheduled). A trial then
//! sets the step's rates and the stencil at its start, recomputes V psi and the sums at a
//! step's start (bit 1), evaluates the three factors of its span with `cexp` (+, -, *, floor
//! only, f32 and f64 alike) and runs Lawson RK4 with the second half-step's factor in KVA's
//! slot (free until `end_of_step`) and the stencil at the stage times; nothing new persists
//! across a suspension (everything is a function of segment, step and remaining quanta). A
//! trial costs [`sched_cost`] more loop iterations. Collective models with `phi` constant:
//! irrep-changing trajectories and a scheduled `phi` are refused
//! ([`crate::solver::trajectory::sched::gpu_refusal`]). Measured against the twin on lavapipe
//! (tests/trajectory_schedule.rs `gpu_matches_twin_under_schedules`, N = 10, 48 trajectories,
//! ~20 jumps each): the same jumps, records within 1e-4 (f32) and 1.2e-13 (f64) relative in
//! the lane and wg mappings; the ensemble within 4 SE of the master equation at every save.
//!
//! # Lavapipe's loop limiter, and resumable trajectories
//!
//! Mesa's llvmpipe (lavapipe) ends every loop of a shader invocation once the invocation has
//! executed [`LAVAPIPE_LOOP_LIMIT`] = 65535 loop iterations in total, over all its loops
//! ([`super::driver`]), silently: the kernel then computes garbage (here: a collapsed norm
//! after ~60 steps in the lane mapping, ~500 in the workgroup mapping). So a trajectory is
//! **resumable**: the kernel
//! charges each trial (a step or the rest of one, with its crossing, partial step, jump and
//! record) at the worst-case iteration count [`trial_cost`] and suspends before it would exceed
//! `TrajParams::budget`, persisting its state (position, remaining quanta, jump count, RNG draw
//! index, b, <Gamma_op>, <V>; psi and V psi stay in storage; the phase word uses the status
//! codes ST_INIT / ST_RUN / ST_DONE of `shaders/common/status.wgsl`); the host repeats the
//! dispatch through the batch driver (`driver::SuspendCount`: suspended invocations count
//! themselves in one atomic word) until no trajectory reports itself unfinished. The budget is [`LAVAPIPE_LOOP_BUDGET`] on software
//! adapters and `u32::MAX` elsewhere (one dispatch, or a few for very long runs). Suspending
//! changes no arithmetic, so the results do not depend on the budget.
//!
//! # Agreement with the CPU twin
//!
//! On lavapipe the wg mapping with one level per invocation reproduces the twin bit for bit (f32
//! and f64, 64 trajectories over the full t = 0.2 of seed 001); the lane and st mappings, and
//! wg with several levels per invocation, agree to 1e-5 (f32) / 1e-14 (f64) relative, with equal
//! jump counts over short runs. Getting there needed two things (documented in the kernel):
//! divisions written as `a * (1 / b)` (Mesa lowers `a / b` that way), and the Hermite crossing
//! polynomial in Horner form with its constants read from the parameters (Mesa's algebraic
//! optimiser reassociates sums around literal constants, which changed one rounding in 10^3
//! crossings and hence the trajectory).
//!
//! # Fidelity along saved trajectories
//!
//! The kernel records moments only (`RECORD_LEN` numbers; the WGSL is unchanged). With a
//! fidelity reference ([`TrajectoryOptions::reference`]) [`run_gpu`] replays the
//! `save_trajectories` saved trajectories on the CPU twin with the same [`Plan`] (precision,
//! lanes, step grid, tables) and the same Philox streams (trajectory i always draws from
//! (seed, i)): `solver::trajectory::replay_fidelity`, which writes `|<ref|psi_k(t)>|^2` at
//! every save. The replay follows the GPU trajectory to rounding: the two take the same jumps
//! at the same quanta (above, and tests/trajectory.rs `gpu_matches_cpu_twin_per_trajectory`:
//! bit for bit in the wg mapping with one level per invocation, 1e-5 (f32) / 1e-14 (f64)
//! relative otherwise on lavapipe), so the replayed fidelity belongs to the trajectory whose
//! moments the kernel wrote (tests/trajectory_fidelity.rs compares it with a CPU ensemble's).
//! The replay costs `save_trajectories` CPU trajectories and nothing for the others.
//!
//! # Buffers and dispatches
//!
//! Per run: the uniform [`TrajParams`], the real parameters, the exponential table, psi0 and the
//! step grid (read-only storage); per chunk of trajectories the records (`RECORD_LEN` numbers
//! per trajectory and save), the scratch, the resumable state, a status word and a staging copy.
//! A chunk is at most 65535 workgroups and at most the device's storage binding size (128 MiB on
//! lavapipe) of records or scratch; chunks run in trajectory order, and every trajectory's
//! random stream is keyed by its global index, so the split changes nothing. Pipelines are built
//! once per (precision, variant, lanes) and cached in [`TrajectoryGpu`].
//!
//! [`TrajectoryOptions::lanes`]: crate::solver::trajectory::TrajectoryOptions::lanes
//! [`TrajectoryOptions::reference`]: crate::solver::trajectory::TrajectoryOptions::reference
//! [`default_lanes`]: crate::solver::trajectory::default_lanes

use super::driver::{self, Chunk, Names, ReadBack, SuspendCount};
use super::shaders::{self, ShaderDef};
use super::{GpuContext, GpuError, lock};
use crate::error::SolverError;
use crate::model::Model;
use crate::model::Protocol;
use crate::precision::Precision;
use crate::solver::trajectory::sched::KernelBlock;
use crate::solver::trajectory::twin::{Cx, Real, TwinInputs};
use crate::solver::trajectory::{
    self, Accumulator, EnsembleResult, Plan, RECORD_LEN, TrajectoryError, TrajectoryOptions,
};
use bytemuck::{Pod, Zeroable};
use num_complex::Complex64 as c64;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt;

/// Uniform parameters of the trajectory kernel. WGSL twin: `struct TrajParams` in
/// `shaders/trajectory.wgsl` (64 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct TrajParams {
    /// Philox seed, low word first.
    pub seed: [u32; 2],
    /// Global index of this dispatch's first trajectory, low word first.
    pub first_traj: [u32; 2],
    /// Trajectories (workgroups) in this dispatch.
    pub ntraj: u32,
    /// 2j + 1.
    pub n_levels: u32,
    pub two_j: u32,
    /// Save intervals (saves - 1).
    pub n_intervals: u32,
    pub n_saves: u32,
    /// Step-size sets (tables).
    pub n_sets: u32,
    /// Loop iterations an invocation may spend in this dispatch before it suspends.
    pub budget: u32,
    /// Always 0 (an opaque constant for the kernel).
    pub zero: u32,
    /// Phase changes the switching classifier keeps per trajectory (0: no classifier).
    pub max_events: u32,
    /// 0: constant parameters; bit 0: a scheduled run, bit 1: the stencil or the rates
    /// scheduled (module doc, "Schedules").
    pub sched: u32,
    /// Offset of the scheduled block in the real parameters.
    pub sched_rp: u32,
    pub pad: u32,
}

/// Where the kernel keeps a trajectory's vectors (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// One invocation per trajectory, vectors in interleaved storage scratch (`lanes = 1`).
    Lane,
    /// One workgroup per trajectory, stage vector in workgroup memory, the rest in private slots.
    Wg,
    /// One workgroup per trajectory, everything in a storage scratch region.
    St,
}

/// Capacities of the wg variant (twins of WG_CAP, PER_LANE in trajectory_f32/f64.wgsl).
fn wg_capacity(p: Precision) -> (usize, usize) {
    match p {
        Precision::F32 => (2048, 8),
        Precision::F64 => (1024, 4),
    }
}

/// Trajectories per workgroup in the lane variant (twin: LANE_GROUP in trajectory_lane.wgsl).
pub const LANE_GROUP: u32 = 64;
/// The loop limiter of Mesa's llvmpipe and the budget per dispatch on a software adapter (the
/// driver's, [`super::driver`]).
pub use super::driver::{LAVAPIPE_LOOP_LIMIT, SOFTWARE_LOOP_BUDGET as LAVAPIPE_LOOP_BUDGET};

/// Twin of `trial_cost` in trajectory.wgsl: an upper bound of the loop iterations one trial
/// costs an invocation (`l` level-loop iterations, `rc` iterations of a reduction).
pub fn trial_cost(l: u32, rc: u32) -> u32 {
    28 * l + 9 * rc + 96
}

/// Twin of `sched_cost` in trajectory.wgsl: what a scheduled trial adds to [`trial_cost`].
pub fn sched_cost(l: u32, rc: u32) -> u32 {
    4 * l + 2 * rc
}

/// Labels and operations of this kernel's GPU work.
const NAMES: Names = driver::names!("trajectory");

/// Buffers of one run that the dispatch loop touches.
struct Buffers {
    params: wgpu::Buffer,
    records: wgpu::Buffer,
    tstate: wgpu::Buffer,
    status: wgpu::Buffer,
    staging: wgpu::Buffer,
    status_staging: wgpu::Buffer,
    events: wgpu::Buffer,
    events_staging: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

/// Largest records buffer per dispatch (bytes).
const MAX_CHUNK_BYTES: u64 = 64 << 20;
/// Per-level vectors in the st scratch region (7 private ones and u).
const ST_VECTORS: u64 = 8;

type PipelineKey = (Precision, Variant, u32);

/// The trajectory kernel on one GPU: shader modules compiled once, pipelines built once per
/// (precision, variant, lanes) and cached. Create it once per device and reuse it.
pub struct TrajectoryGpu {
    ctx: Arc<GpuContext>,
    layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    modules: Vec<(Precision, Variant, ShaderDef, wgpu::ShaderModule)>,
    pipelines: Mutex<Vec<(PipelineKey, wgpu::ComputePipeline)>>,
}

impl std::fmt::Debug for TrajectoryGpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrajectoryGpu")
            .field("device", &self.ctx.info().name)
            .finish_non_exhaustive()
    }
}

impl TrajectoryGpu {
    /// Compile the trajectory modules on `ctx`'s device (the f64 ones when it has SHADER_F64).
    pub fn new(ctx: Arc<GpuContext>) -> Result<Self, GpuError> {
        let (read, write) = (
            wgpu::BufferBindingType::Storage { read_only: true },
            wgpu::BufferBindingType::Storage { read_only: false },
        );
        let (layout, pipeline_layout) = ctx.compute_layouts(
            "dicke.trajectory",
            &[
                wgpu::BufferBindingType::Uniform,
                read,
                read,
                read,
                read,
                write,
                write,
                write,
                write,
                write,
                write,
                write,
            ],
        );
        let mut defs = vec![
            (Precision::F32, Variant::Lane, shaders::TRAJECTORY_LANE_F32),
            (Precision::F32, Variant::Wg, shaders::TRAJECTORY_WG_F32),
            (Precision::F32, Variant::St, shaders::TRAJECTORY_ST_F32),
        ];
        if ctx.info().has_f64 {
            defs.push((Precision::F64, Variant::Lane, shaders::TRAJECTORY_LANE_F64));
            defs.push((Precision::F64, Variant::Wg, shaders::TRAJECTORY_WG_F64));
            defs.push((Precision::F64, Variant::St, shaders::TRAJECTORY_ST_F64));
        }
        let mut modules = Vec::new();
        for (p, v, def) in defs {
            modules.push((p, v, def, ctx.shader_module(&def)?));
        }
        Ok(Self {
            ctx,
            layout,
            pipeline_layout,
            modules,
            pipelines: Mutex::new(Vec::new()),
        })
    }

    /// The device this engine runs on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// The storage variant `plan` runs with on this device.
    pub fn variant(&self, plan: &Plan) -> Variant {
        if plan.lanes == 1 {
            return Variant::Lane;
        }
        let (cap, per_lane) = wg_capacity(plan.precision);
        let r = plan.precision.real_bytes();
        let need = cap as u64 * 2 * r + 256 * 4 * r;
        let fits = plan.n_levels <= cap.min(plan.lanes as usize * per_lane);
        if fits && u64::from(self.ctx.limits().max_compute_workgroup_storage_size) >= need {
            Variant::Wg
        } else {
            Variant::St
        }
    }

    fn pipeline(&self, key: PipelineKey) -> Result<wgpu::ComputePipeline, GpuError> {
        let mut cache = lock(&self.pipelines);
        if let Some((_, p)) = cache.iter().find(|(k, _)| *k == key) {
            return Ok(p.clone());
        }
        let (prec, variant, lanes) = key;
        let Some((_, _, def, module)) = self.modules.iter().find(|(p, v, ..)| *p == prec && *v == variant)
        else {
            return Err(GpuError::NoF64 {
                what: "f64 trajectories",
                adapter: self.ctx.info().name.clone(),
            });
        };
        let wg_constant = [("WG", f64::from(lanes))];
        let constants: &[(&str, f64)] = if variant == Variant::Lane {
            &[]
        } else {
            &wg_constant
        };
        // Every workgroup word is written before it is read: no zero initialisation.
        let pipeline = driver::pipeline(
            self.ctx.device(),
            &self.pipeline_layout,
            def,
            module,
            "dicke.trajectory",
            constants,
            false,
        )?;
        cache.push((key, pipeline.clone()));
        Ok(pipeline)
    }

    /// Run every trajectory of `plan`, handing the records of each chunk (trajectory-major,
    /// `n_saves * RECORD_LEN` numbers per trajectory, widened to f64) to `sink` in trajectory
    /// order, with the chunk's classifier words (`max_events + 2` per trajectory: changes,
    /// phase, events; empty without a classifier).
    pub fn run(&self, plan: &Plan, sink: &mut dyn FnMut(&[f64], &[u32])) -> Result<(), GpuError> {
        match plan.precision {
            Precision::F32 => self.run_t::<f32>(plan, sink),
            Precision::F64 => self.run_t::<f64>(plan, sink),
        }
    }

    /// All records of `plan` in one vector (tests, small ensembles).
    pub fn records(&self, plan: &Plan) -> Result<Vec<f64>, GpuError> {
        let mut out = Vec::new();
        self.run(plan, &mut |r, _| out.extend_from_slice(r))?;
        Ok(out)
    }

    /// All records and the classifier words of `plan` (tests).
    pub fn records_and_events(&self, plan: &Plan) -> Result<(Vec<f64>, Vec<u32>), GpuError> {
        let (mut out, mut ev) = (Vec::new(), Vec::new());
        self.run(plan, &mut |r, e| {
            out.extend_from_slice(r);
            ev.extend_from_slice(e);
        })?;
        Ok((out, ev))
    }

    fn run_t<T: Real>(&self, plan: &Plan, sink: &mut dyn FnMut(&[f64], &[u32])) -> Result<(), GpuError> {
        let variant = self.variant(plan);
        let pipeline = self.pipeline((plan.precision, variant, plan.lanes))?;
        let budget = Budget::new(&self.ctx, plan, variant)?;
        let sizes = Sizes::new::<T>(&self.ctx, plan, variant)?;
        let inp = plan.inputs::<T>();
        let block = plan.sched.as_ref().map(|s| s.kernel_block(plan.n_atoms));
        let bufs = self.buffers::<T>(plan, &inp, block.as_ref(), &sizes)?;
        let (sched, sched_rp, n_intervals) = match (&plan.sched, &block) {
            (Some(s), Some(b)) => (
                1 | (u32::from(s.drive || s.rates) << 1),
                plan.kernel_rp::<T>().len() as u32,
                b.segs.len() as u32,
            ),
            _ => (0, 0, inp.intervals.len() as u32),
        };
        let groups_of = |count: u64| count.div_ceil(sizes.per_group) as u32;
        for range in driver::chunks(plan.ntraj as usize, sizes.chunk as usize) {
            let (done, count) = (range.start as u64, range.len() as u64);
            let first = plan.first_traj.wrapping_add(done);
            let params = TrajParams {
                seed: crate::rng::key_for_seed(plan.seed),
                first_traj: [first as u32, (first >> 32) as u32],
                ntraj: count as u32,
                n_levels: plan.n_levels as u32,
                two_j: inp.two_j,
                n_intervals,
                n_saves: plan.n_saves() as u32,
                n_sets: plan.set_steps.len() as u32,
                budget: budget.budget,
                zero: 0,
                max_events: plan.max_events(),
                sched,
                sched_rp,
                pad: 0,
            };
            let chunk = Chunk {
                ctx: &self.ctx,
                names: &NAMES,
                pipeline: &pipeline,
                bind_group: &bufs.bind_group,
                groups: groups_of(count),
            };
            chunk.upload(|queue| queue.write_buffer(&bufs.params, 0, bytemuck::bytes_of(&params)))?;
            let mut suspended = SuspendCount {
                state: &bufs.tstate,
                counter: &bufs.status,
                first: budget.first_round,
                max_dispatches: budget.trials.saturating_mul(64) + 1024,
                operation: NAMES.dispatch,
                unit: "trajectories",
            };
            let status = ReadBack {
                src: &bufs.status,
                staging: &bufs.status_staging,
                label: "dicke.trajectory.status_staging",
            };
            chunk.resume(status, 4, &mut suspended)?;
            let records = ReadBack {
                src: &bufs.records,
                staging: &bufs.staging,
                label: "dicke.trajectory.staging",
            };
            let raw = chunk.read(records, count * sizes.rec_per_traj)?;
            let vals: Vec<T> = bytemuck::pod_collect_to_vec(&raw);
            let wide: Vec<f64> = vals.into_iter().map(T::to_f64).collect();
            let words = if plan.max_events() > 0 {
                let events = ReadBack {
                    src: &bufs.events,
                    staging: &bufs.events_staging,
                    label: "dicke.trajectory.events_staging",
                };
                let raw = chunk.read(events, count * sizes.events_per_traj)?;
                bytemuck::pod_collect_to_vec(&raw)
            } else {
                Vec::new()
            };
            sink(&wide, &words);
        }
        Ok(())
    }

    /// The buffers of one run: the inputs (initialised), and the per-chunk records, scratch,
    /// resumable state and status word with their staging copies.
    fn buffers<T: Real>(
        &self,
        plan: &Plan,
        inp: &TwinInputs<T>,
        block: Option<&KernelBlock>,
        sizes: &Sizes,
    ) -> Result<Buffers, GpuError> {
        let device = self.ctx.device();
        let flat = |v: &[Cx<T>]| -> Vec<T> { v.iter().flat_map(|z| [z.re, z.im]).collect() };
        let storage = |label: &'static str, contents: &[u8]| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::STORAGE,
            })
        };
        let rw = |label: &'static str, size: u64, extra: wgpu::BufferUsages| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: size.max(16),
                usage: wgpu::BufferUsages::STORAGE | extra,
                mapped_at_creation: false,
            })
        };
        let mapped = |label: &'static str, size: u64| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let mut rp = plan.kernel_rp::<T>();
        let (table, segs) = match block {
            // Scheduled runs (module doc, "Schedules"): the block's reals after rp, the
            // segments' diagonals for the table, the segments for the intervals.
            Some(b) => {
                rp.extend(b.rp.iter().map(|&x| T::from_f64(x)));
                let diag: Vec<Cx<T>> = b
                    .diag
                    .iter()
                    .map(|z| Cx::new(T::from_f64(z.re), T::from_f64(z.im)))
                    .collect();
                (flat(&diag), b.segs.clone())
            }
            None => (flat(&plan.kernel_table::<T>()), inp.intervals.clone()),
        };
        let table = if table.is_empty() { vec![T::ZERO; 2] } else { table };
        let psi0 = flat(&inp.psi0);
        let intervals: Vec<u32> = if segs.is_empty() {
            vec![0, 0] // a binding may not be empty
        } else {
            segs.iter().flatten().copied().collect()
        };
        let chunk = sizes.chunk;
        let rec_bytes = chunk * sizes.rec_per_traj;
        let r = std::mem::size_of::<T>() as u64;
        self.ctx.scoped(NAMES.alloc, || {
            use wgpu::BufferUsages as U;
            let params = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("dicke.trajectory.params"),
                size: std::mem::size_of::<TrajParams>() as u64,
                usage: U::UNIFORM | U::COPY_DST,
                mapped_at_creation: false,
            });
            let rp = storage("dicke.trajectory.rp", bytemuck::cast_slice(&rp));
            let table = storage("dicke.trajectory.table", bytemuck::cast_slice(&table));
            let psi0 = storage("dicke.trajectory.psi0", bytemuck::cast_slice(&psi0));
            let intervals = storage("dicke.trajectory.intervals", bytemuck::cast_slice(&intervals));
            let records = rw("dicke.trajectory.records", rec_bytes, U::COPY_SRC);
            let scratch = rw(
                "dicke.trajectory.scratch",
                chunk * sizes.scratch_per_traj,
                U::empty(),
            );
            let tstate = rw("dicke.trajectory.tstate", chunk * 8 * 4, U::COPY_DST);
            let rstate = rw("dicke.trajectory.rstate", chunk * 4 * r, U::empty());
            let status = rw("dicke.trajectory.status", 4, U::COPY_SRC | U::COPY_DST);
            let vsave = rw("dicke.trajectory.vsave", chunk * sizes.vsave_per_traj, U::empty());
            let staging = mapped("dicke.trajectory.staging", rec_bytes);
            let status_staging = mapped("dicke.trajectory.status_staging", 4);
            let ev_bytes = (chunk * sizes.events_per_traj).max(16);
            let events = rw("dicke.trajectory.events", ev_bytes, U::COPY_SRC);
            let events_staging = mapped("dicke.trajectory.events_staging", ev_bytes);
            let bind_group = driver::bind_buffers(
                &self.ctx,
                NAMES.bind_group,
                &self.layout,
                &[
                    &params, &rp, &table, &psi0, &intervals, &records, &scratch, &tstate, &rstate, &status,
                    &vsave, &events,
                ],
            );
            Ok(Buffers {
                params,
                records,
                tstate,
                status,
                staging,
                status_staging,
                events,
                events_staging,
                bind_group,
            })
        })
    }
}

/// The loop budget of a run and how its dispatch rounds are sized (module doc, "Lavapipe's
/// loop limiter").
struct Budget {
    /// Loop iterations per invocation and dispatch.
    budget: u32,
    /// Trials a trajectory is expected to need: one per step and save, charged at the worst
    /// case (the ceiling on dispatches is a multiple of it).
    trials: u64,
    /// Dispatches in a chunk's first round.
    first_round: u32,
}

impl Budget {
    /// Refuses a trajectory step that does not fit one dispatch of the adapter's budget.
    fn new(ctx: &GpuContext, plan: &Plan, variant: Variant) -> Result<Budget, GpuError> {
        let budget = driver::loop_budget(ctx);
        let wg = match variant {
            Variant::Lane => 1,
            Variant::Wg | Variant::St => plan.lanes,
        };
        let levels_loop = (plan.n_levels as u32).div_ceil(wg) + 1;
        let mut cost = trial_cost(levels_loop, wg.trailing_zeros() + 1);
        if plan.sched.is_some() {
            cost += sched_cost(levels_loop, wg.trailing_zeros() + 1);
        }
        // The kernel reserves one trial and the start-up (cost + 4 l) before its first trial
        // and runs a trial only while a whole cost is left: a dispatch advances a trajectory
        // only if 2 cost + 4 l fit (with less, every dispatch would suspend at once).
        if 2 * u64::from(cost) + 4 * u64::from(levels_loop) > u64::from(budget) {
            return Err(GpuError::TooLarge {
                what: format!(
                    "one trajectory step of {} levels on {} invocations ({} loop iterations; this \
                     software adapter stops every loop after {LAVAPIPE_LOOP_LIMIT} in a dispatch); \
                     use more lanes",
                    plan.n_levels, wg, cost
                ),
                bytes: u64::from(cost),
                limit: u64::from(budget),
            });
        }
        // Dispatches per round: enough for the expected work at the budget (a trial per step
        // and one per expected jump, charged at the worst case), then re-checked.
        let segments = plan.sched.as_ref().map_or(0, |s| s.segments.len() as u64);
        let trials =
            plan.steps().iter().map(|&s| u64::from(s)).sum::<u64>() + plan.n_saves() as u64 + segments;
        let per_dispatch = u64::from((budget - 4 * levels_loop) / cost - 1).max(1);
        let first_round = (trials.saturating_mul(3) / 2)
            .div_ceil(per_dispatch)
            .clamp(1, 4096) as u32;
        Ok(Budget {
            budget,
            trials,
            first_round,
        })
    }
}

/// Bytes per trajectory of the chunked buffers, and the chunk.
struct Sizes {
    rec_per_traj: u64,
    /// The classifier's words (`max_events + 2` u32; 0 without a classifier).
    events_per_traj: u64,
    scratch_per_traj: u64,
    vsave_per_traj: u64,
    /// Trajectories per workgroup.
    per_group: u64,
    /// Trajectories per chunk.
    chunk: u64,
}

impl Sizes {
    /// Checks one trajectory's buffers and the exponential table against the binding limit
    /// before anything is allocated.
    fn new<T: Real>(ctx: &GpuContext, plan: &Plan, variant: Variant) -> Result<Sizes, GpuError> {
        let r = std::mem::size_of::<T>() as u64;
        let n = plan.n_levels as u64;
        let binding = driver::binding_limit(ctx);
        let rec_per_traj = plan.n_saves() as u64 * RECORD_LEN as u64 * r;
        let events_per_traj = match plan.max_events() {
            0 => 0,
            m => (u64::from(m) + 2) * 4,
        };
        let scratch_per_traj = match variant {
            Variant::Wg => 0,
            Variant::St | Variant::Lane => ST_VECTORS * n * 2 * r,
        };
        let vsave_per_traj = match variant {
            Variant::Wg => 2 * n * 2 * r,
            Variant::St | Variant::Lane => 0,
        };
        // The exponential tables of every irrep: the top irrep's rows and one scale per irrep
        // and row (solver::trajectory module doc, "Exponential tables per irrep").
        let table_bytes = match &plan.sched {
            Some(s) => (2 * s.segments.len() * plan.n_levels) as u64 * 2 * r,
            None => plan.kernel_table_len() as u64 * 2 * r,
        };
        for (what, bytes) in [
            ("trajectory records of one trajectory", rec_per_traj),
            ("switching events of one trajectory", events_per_traj),
            (
                "trajectory scratch of one trajectory",
                scratch_per_traj + vsave_per_traj,
            ),
            ("trajectory exponential table", table_bytes),
        ] {
            if bytes > binding {
                return Err(GpuError::TooLarge {
                    what: what.into(),
                    bytes,
                    limit: binding,
                });
            }
        }
        let per_group = match variant {
            Variant::Lane => u64::from(LANE_GROUP),
            Variant::Wg | Variant::St => 1,
        };
        let mut chunk = plan
            .ntraj
            .min(u64::from(ctx.limits().max_compute_workgroups_per_dimension) * per_group)
            .min((binding.min(MAX_CHUNK_BYTES) / rec_per_traj).max(1));
        if let Some(fit) = binding.checked_div(scratch_per_traj + vsave_per_traj) {
            chunk = chunk.min(fit);
        }
        if let Some(fit) = binding.checked_div(events_per_traj) {
            chunk = chunk.min(fit);
        }
        Ok(Sizes {
            rec_per_traj,
            events_per_traj,
            scratch_per_traj,
            vsave_per_traj,
            per_group,
            chunk,
        })
    }
}

/// The plan of an ensemble on the GPU (P_m and the level window are CPU only).
pub fn gpu_plan(
    model: &Model,
    psi0: &[c64],
    times: &[f64],
    opts: &TrajectoryOptions,
) -> Result<Plan, TrajectoryError> {
    gpu_plan_protocol(&Protocol::from(*model), psi0, times, opts)
}

/// As [`gpu_plan`] for a protocol (module doc, "Schedules"): a constant protocol gives
/// [`gpu_plan`]'s plan; schedules of collective models with `phi` constant.
pub fn gpu_plan_protocol(
    protocol: &Protocol,
    psi0: &[c64],
    times: &[f64],
    opts: &TrajectoryOptions,
) -> Result<Plan, TrajectoryError> {
    let plan = Plan::new_protocol(protocol, psi0, times, opts)?;
    if plan.pm {
        return Err(SolverError::Unsupported {
            solver: "trajectories",
            message: "P_m from trajectories (observables.pm) is accumulated on the CPU only in \
                      this version (--backend cpu)"
                .into(),
        }
        .into());
    }
    if plan.sched.is_some()
        && let Some(why) = trajectory::sched::gpu_refusal(protocol)
    {
        return Err(SolverError::Unsupported {
            solver: "trajectories",
            message: why.into(),
        }
        .into());
    }
    if let Some(w) = plan.level_window {
        return Err(SolverError::Unsupported {
            solver: "trajectories",
            message: format!(
                "task.level_window = true (tol = {:e}, margin = {}): supported on the CPU backend \
                 only, the WGSL kernel integrates every level (--backend cpu, or \
                 task.level_window = false)",
                w.tol, w.margin
            ),
        }
        .into());
    }
    Ok(plan)
}

/// Consecutive units of `plan`, starting at trajectory `offset`, of `counts` trajectories
/// each, in one GPU run (the device wants many trajectories at once), reduced per unit in
/// trajectory order; the saved trajectories' fidelity comes from the twin replaying them
/// (module doc, "Fidelity along saved trajectories").
pub fn gpu_units(
    engine: &TrajectoryGpu,
    plan: &Plan,
    offset: u64,
    counts: &[u64],
) -> Result<Vec<Accumulator>, GpuError> {
    let total: u64 = counts.iter().sum();
    let mut starts = Vec::with_capacity(counts.len());
    let mut accs = Vec::with_capacity(counts.len());
    let mut at = offset;
    for &c in counts {
        starts.push(at);
        accs.push(
            Accumulator::new(plan.n_saves(), plan.slice(at, c).save_trajectories)
                .classified(plan.classifier.is_some()),
        );
        at += c;
    }
    let len = plan.n_saves() * RECORD_LEN;
    let (mut unit, mut left, mut next) = (0, counts.first().copied().unwrap_or(0), plan.first_traj + offset);
    let words = plan.max_events() as usize + 2;
    engine.run(&plan.slice(offset, total), &mut |rec: &[f64], ev: &[u32]| {
        for (k, r) in rec.chunks_exact(len).enumerate() {
            while left == 0 && unit + 1 < counts.len() {
                unit += 1;
                left = counts[unit];
            }
            accs[unit].push(next, r);
            if let Some(w) = ev.get(k * words..(k + 1) * words) {
                let kept = (w[0] as usize).min(words - 2);
                accs[unit].push_changes(next, w[0], w[2..2 + kept].to_vec());
            }
            next += 1;
            left -= 1;
        }
    })?;
    for ((acc, &start), &c) in accs.iter_mut().zip(&starts).zip(counts) {
        acc.attach_fidelity(trajectory::replay_fidelity(&plan.slice(start, c)));
    }
    Ok(accs)
}

/// The device description of a GPU ensemble (result.json's backend).
pub fn device(engine: &TrajectoryGpu, plan: &Plan) -> String {
    format!(
        "{} ({:?} mapping)",
        engine.context().info().name,
        engine.variant(plan)
    )
}

/// Run the ensemble of `model` from `psi0` on the GPU (`engine` holds the device and the
/// pipelines, built once) and reduce it as the CPU backend does
/// ([`crate::solver::trajectory::run_cpu`]): the same plan, the same trajectory-order reduction.
pub fn run_gpu(
    engine: &TrajectoryGpu,
    model: &Model,
    psi0: &[c64],
    times: &[f64],
    opts: &TrajectoryOptions,
) -> Result<EnsembleResult, TrajectoryError> {
    run_gpu_protocol(engine, &Protocol::from(*model), psi0, times, opts)
}

/// As [`run_gpu`] for a protocol (time-dependent parameters; module doc, "Schedules").
pub fn run_gpu_protocol(
    engine: &TrajectoryGpu,
    protocol: &Protocol,
    psi0: &[c64],
    times: &[f64],
    opts: &TrajectoryOptions,
) -> Result<EnsembleResult, TrajectoryError> {
    let start = std::time::Instant::now();
    let plan = gpu_plan_protocol(protocol, psi0, times, opts)?;
    let mut accs = gpu_units(engine, &plan, 0, &[plan.ntraj])?;
    let acc = accs.pop().unwrap_or_else(|| Accumulator::new(plan.n_saves(), 0));
    Ok(trajectory::finish(
        &plan,
        acc,
        "gpu",
        device(engine, &plan),
        start,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Rust struct and its WGSL twin (as naga lays it out) agree field by field.
    #[test]
    fn traj_params_match_naga_layout() {
        assert_eq!(std::mem::size_of::<TrajParams>(), 64);
        let rust = [
            ("seed", std::mem::offset_of!(TrajParams, seed)),
            ("first_traj", std::mem::offset_of!(TrajParams, first_traj)),
            ("ntraj", std::mem::offset_of!(TrajParams, ntraj)),
            ("n_levels", std::mem::offset_of!(TrajParams, n_levels)),
            ("two_j", std::mem::offset_of!(TrajParams, two_j)),
            ("n_intervals", std::mem::offset_of!(TrajParams, n_intervals)),
            ("n_saves", std::mem::offset_of!(TrajParams, n_saves)),
            ("n_sets", std::mem::offset_of!(TrajParams, n_sets)),
            ("budget", std::mem::offset_of!(TrajParams, budget)),
            ("zero", std::mem::offset_of!(TrajParams, zero)),
            ("max_events", std::mem::offset_of!(TrajParams, max_events)),
            ("sched", std::mem::offset_of!(TrajParams, sched)),
            ("sched_rp", std::mem::offset_of!(TrajParams, sched_rp)),
            ("pad0", std::mem::offset_of!(TrajParams, pad)),
        ];
        for def in [
            shaders::TRAJECTORY_LANE_F32,
            shaders::TRAJECTORY_LANE_F64,
            shaders::TRAJECTORY_WG_F32,
            shaders::TRAJECTORY_ST_F32,
            shaders::TRAJECTORY_WG_F64,
            shaders::TRAJECTORY_ST_F64,
        ] {
            def.assert_struct_layout("TrajParams", std::mem::size_of::<TrajParams>(), &rust);
        }
    }

    /// The capacities of the wg variant match the WGSL preludes.
    #[test]
    fn wg_capacities_match_wgsl() {
        for (p, src) in [
            (
                Precision::F32,
                include_str!("../../../shaders/trajectory_f32.wgsl"),
            ),
            (
                Precision::F64,
                include_str!("../../../shaders/trajectory_f64.wgsl"),
            ),
        ] {
            let (cap, per_lane) = wg_capacity(p);
            assert!(src.contains(&format!("const WG_CAP: u32 = {cap}u;")), "{p:?}");
            assert!(
                src.contains(&format!("const PER_LANE: u32 = {per_lane}u;")),
                "{p:?}"
            );
            assert!(
                src.contains(&format!("const PV_LEN: u32 = {}u;", 7 * per_lane)),
                "{p:?}"
            );
        }
        let lane = include_str!("../../../shaders/trajectory_lane.wgsl");
        assert!(lane.contains(&format!("const LANE_GROUP: u32 = {LANE_GROUP}u;")));
        let body = include_str!("../../../shaders/trajectory.wgsl");
        assert!(
            body.contains("    return 28u * l + 9u * rc + 96u;"),
            "trial_cost differs from the WGSL twin"
        );
        assert_eq!(trial_cost(1, 1), 28 + 9 + 96);
        assert!(
            body.contains("    return 4u * l + 2u * rc;"),
            "sched_cost differs from the WGSL twin"
        );
        assert_eq!(sched_cost(1, 1), 4 + 2);
        for (name, v) in [
            ("CEXP_LEN", tr::sched::cexp_constants().len()),
            ("SEG_REALS", tr::sched::SEG_REALS),
        ] {
            assert!(body.contains(&format!("const {name}: u32 = {v}u;")), "{name}");
        }
        use crate::solver::trajectory as tr;
        for (name, v) in [
            ("QB", tr::QUANTUM_BITS as usize),
            ("DEPTH", tr::TABLE_DEPTH),
            ("FULL", tr::FULL as usize),
            ("HEAD", tr::HEAD_LEN),
            ("RECLEN", tr::RECORD_LEN),
        ] {
            assert!(body.contains(&format!("const {name}: u32 = {v}u;")), "{name}");
        }
    }
}
