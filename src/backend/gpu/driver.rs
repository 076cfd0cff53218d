//! One driver for the resumable batch kernels (`master_batch`, `cumulant_batch`,
//! `trajectory`): chunking a batch to the device's limits, dispatching rounds until every
//! element is finished, the loop budget of software adapters, the status codes, pipelines with
//! pipeline constants, buffers kept between calls, and the read-back of results.
//!
//! # Why kernels suspend and resume
//!
//! llvmpipe (Mesa's software rasteriser behind lavapipe) ends every loop of a shader
//! invocation once [`LAVAPIPE_LOOP_LIMIT`] loop iterations *in total, over all loops of the
//! invocation* have run (`LP_MAX_TGSI_LOOP_ITERATIONS`, "shared between every loop", gallivm
//! `lp_bld_limits.h`), silently: the remaining iterations are skipped and the kernel computes
//! garbage. So every batch kernel counts its own loop iterations at a worst-case cost per
//! phase and, before it would pass the budget of the dispatch ([`loop_budget`]:
//! [`SOFTWARE_LOOP_BUDGET`] on a software adapter, unlimited on real GPUs), persists its state
//! in storage and returns unfinished; the host dispatches again (`Chunk::resume`) until
//! nothing is left. Suspending changes no arithmetic, so results do not depend on the budget.
//!
//! # Rounds
//!
//! A round is one submission of several dispatches followed by the read-back of a small
//! buffer that says what is left. Two protocols (`Resumption`):
//!
//! * `UntilDone` (`master_batch`, `cumulant_batch`): every element has its own state with a
//!   status code ([`ST_INIT`] ... [`ST_NONFINITE`], twins of `shaders/common/status.wgsl`);
//!   rounds of 1, 2, 4, ... up to [`MAX_ROUNDS`] dispatches run until every status is
//!   [`ST_DONE`] or a failure. Every dispatch advances every unfinished element (its start, a
//!   save or a step attempt: the budget admits each alone), so a round in which no element's
//!   (status, attempts, next save) changes means the device did not run the kernel: an error,
//!   never a hang.
//! * `SuspendCount` (`trajectory`): invocations that suspend count themselves in one atomic
//!   word, cleared before the last dispatch of a round; the first round is sized for the
//!   expected work, later ones shrink, and a ceiling on the dispatches turns a stuck device
//!   into an error.
//!
//! # Chunks
//!
//! A batch runs in chunks of consecutive elements (`chunk_len`, `chunks`), each small
//! enough for one storage binding (`binding_limit`) and the workgroup-count limit, in input
//! order; a kernel keys everything (random streams included) by the global element index, so
//! the split changes nothing.

use super::shaders::ShaderDef;
use super::{GpuContext, GpuError};
use bytemuck::Pod;
use std::marker::PhantomData;

// Status codes of an element's resumable state: twins of `shaders/common/status.wgsl`
// (prepended to every batch kernel by the shader registry). A status >= ST_DONE is final.
/// Not started: the kernel initialises the element in its next dispatch.
pub const ST_INIT: u32 = 0;
/// Started and suspended (or running).
pub const ST_RUN: u32 = 1;
/// Finished: every save written.
pub const ST_DONE: u32 = 2;
/// Failed: the step size fell below its floor.
pub const ST_SMALL: u32 = 3;
/// Failed: more step attempts than allowed.
pub const ST_MAXSTEPS: u32 = 4;
/// Failed: a non-finite state or derivative.
pub const ST_NONFINITE: u32 = 5;

/// The loop limiter of Mesa's llvmpipe (lavapipe): every loop of a shader invocation is cut
/// short once the invocation has run this many loop iterations in total
/// (`LP_MAX_TGSI_LOOP_ITERATIONS`, shared between all loops; silently wrong results, no error).
pub const LAVAPIPE_LOOP_LIMIT: u32 = 65_535;
/// Loop iterations an invocation may spend per dispatch on a software adapter: below
/// [`LAVAPIPE_LOOP_LIMIT`] with 8% left for loops a kernel's own count does not see.
pub const SOFTWARE_LOOP_BUDGET: u32 = 60_000;
/// Most dispatches per round of `UntilDone`.
pub const MAX_ROUNDS: u32 = 16;

/// The loop budget per invocation and dispatch on `ctx`'s adapter: [`SOFTWARE_LOOP_BUDGET`]
/// on a software adapter, unlimited (`u32::MAX`) on a real GPU.
pub fn loop_budget(ctx: &GpuContext) -> u32 {
    if ctx.info().software {
        SOFTWARE_LOOP_BUDGET
    } else {
        u32::MAX
    }
}

/// The largest storage binding the device allows (binding size and buffer size limits).
pub(crate) fn binding_limit(ctx: &GpuContext) -> u64 {
    let limits = ctx.limits();
    limits.max_storage_buffer_binding_size.min(limits.max_buffer_size)
}

/// How many items of `per` bytes fit into `cap` bytes; at least 1 (a single item that does not
/// fit is refused by the caller before this).
pub(crate) fn fit(per: u64, cap: u64) -> u64 {
    (cap / per.max(1)).max(1)
}

/// Items per chunk: all `items`, capped by each of `caps`, at least 1.
pub(crate) fn chunk_len(items: u64, caps: impl IntoIterator<Item = u64>) -> usize {
    caps.into_iter().fold(items, u64::min).max(1) as usize
}

/// The consecutive chunks of `items` items, `chunk` at a time (the last may be shorter).
pub(crate) fn chunks(items: usize, chunk: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..items)
        .step_by(chunk.max(1))
        .map(move |start| start..items.min(start + chunk.max(1)))
}

/// The names one kernel host's labels and error messages carry; build with `names!`.
#[derive(Debug)]
pub(crate) struct Names {
    pub alloc: &'static str,
    pub upload: &'static str,
    pub dispatch: &'static str,
    pub read_back: &'static str,
    pub encoder: &'static str,
    pub pass: &'static str,
    pub copy: &'static str,
    pub bind_group: &'static str,
}

/// `names!("master_batch")`: the `Names` of a kernel host (operations `"master_batch
/// dispatch"`, labels `"dicke.master_batch.pass"`, ...).
macro_rules! names {
    ($k:literal) => {
        $crate::backend::gpu::driver::Names {
            alloc: concat!($k, " buffer allocation"),
            upload: concat!($k, " upload"),
            dispatch: concat!($k, " dispatch"),
            read_back: concat!($k, " read-back"),
            encoder: concat!("dicke.", $k, ".encoder"),
            pass: concat!("dicke.", $k, ".pass"),
            copy: concat!("dicke.", $k, ".readback_encoder"),
            bind_group: concat!("dicke.", $k, ".bind_group"),
        }
    };
}
pub(crate) use names;

/// The bind-group layout and pipeline layout of a compute kernel whose bindings 0, 1, ... are
/// buffers of the given types, labelled `{label}.bind_group_layout` and
/// `{label}.pipeline_layout` (`label` e.g. `"dicke.master_batch"`).
pub(crate) fn compute_layouts(
    device: &wgpu::Device,
    label: &str,
    buffers: &[wgpu::BufferBindingType],
) -> (wgpu::BindGroupLayout, wgpu::PipelineLayout) {
    let entries: Vec<wgpu::BindGroupLayoutEntry> = buffers
        .iter()
        .enumerate()
        .map(|(binding, &ty)| wgpu::BindGroupLayoutEntry {
            binding: binding as u32,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        })
        .collect();
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(&format!("{label}.bind_group_layout")),
        entries: &entries,
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(&format!("{label}.pipeline_layout")),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    (layout, pipeline_layout)
}

/// A compute pipeline of `module` (registered as `def`) with the pipeline constants
/// `constants`, built inside a validation scope: an error names the module.
/// `zero_workgroup_memory: false` only where every workgroup word is written before it is read.
pub(crate) fn pipeline(
    device: &wgpu::Device,
    layout: &wgpu::PipelineLayout,
    def: &ShaderDef,
    module: &wgpu::ShaderModule,
    label: &str,
    constants: &[(&str, f64)],
    zero_workgroup_memory: bool,
) -> Result<wgpu::ComputePipeline, GpuError> {
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(label),
        layout: Some(layout),
        module,
        entry_point: Some(def.entry),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants,
            zero_initialize_workgroup_memory: zero_workgroup_memory,
        },
        cache: None,
    });
    match pollster::block_on(scope.pop()) {
        None => Ok(pipeline),
        Some(e) => Err(GpuError::Shader {
            module: def.name,
            message: e.to_string(),
        }),
    }
}

/// A bind group of `buffers` at bindings 0, 1, ... (each bound whole).
pub(crate) fn bind_buffers(
    ctx: &GpuContext,
    label: &str,
    layout: &wgpu::BindGroupLayout,
    buffers: &[&wgpu::Buffer],
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry> = buffers
        .iter()
        .enumerate()
        .map(|(binding, b)| wgpu::BindGroupEntry {
            binding: binding as u32,
            resource: b.as_entire_binding(),
        })
        .collect();
    ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries: &entries,
    })
}

/// Buffers kept between calls with the sizes they were made for.
pub(crate) struct Grown<B, const K: usize> {
    pub bufs: B,
    pub sizes: [u64; K],
}

/// `old` if each of its sizes covers `need`, else new buffers from `make`, each at least as
/// large as before (so that calls of alternating shapes settle instead of reallocating).
pub(crate) fn reuse_or_grow<B, const K: usize>(
    old: Option<Grown<B, K>>,
    need: [u64; K],
    make: impl FnOnce([u64; K]) -> Result<B, GpuError>,
) -> Result<Grown<B, K>, GpuError> {
    match old {
        Some(g) if g.sizes.iter().zip(&need).all(|(have, want)| have >= want) => Ok(g),
        old => {
            let sizes = match &old {
                Some(g) => std::array::from_fn(|i| need[i].max(g.sizes[i])),
                None => need,
            };
            drop(old);
            Ok(Grown {
                bufs: make(sizes)?,
                sizes,
            })
        }
    }
}

/// A device buffer the host reads back, with its mappable staging copy.
#[derive(Clone, Copy)]
pub(crate) struct ReadBack<'a> {
    pub src: &'a wgpu::Buffer,
    pub staging: &'a wgpu::Buffer,
    /// The staging buffer's label, for errors.
    pub label: &'static str,
}

/// One chunk of a batch ready to dispatch: the kernel's pipeline and bind group.
pub(crate) struct Chunk<'a> {
    pub ctx: &'a GpuContext,
    pub names: &'a Names,
    pub pipeline: &'a wgpu::ComputePipeline,
    pub bind_group: &'a wgpu::BindGroup,
    /// Workgroups per dispatch.
    pub groups: u32,
}

impl Chunk<'_> {
    /// Write the chunk's inputs (`write` calls `queue.write_buffer`) in one error scope.
    pub fn upload(&self, write: impl FnOnce(&wgpu::Queue)) -> Result<(), GpuError> {
        self.ctx.scoped(self.names.upload, || {
            write(self.ctx.queue());
            Ok(())
        })
    }

    /// Dispatch rounds until `protocol` says the chunk is finished; returns the number of
    /// dispatches and the protocol's result. After every round the first `bytes` of
    /// `watch.src` are read back and handed to `Resumption::check`.
    pub fn resume<P: Resumption>(
        &self,
        watch: ReadBack<'_>,
        bytes: u64,
        protocol: &mut P,
    ) -> Result<(usize, P::Out), GpuError> {
        let mut rounds = protocol.first_rounds().max(1);
        let mut first = true;
        let mut dispatches = 0usize;
        loop {
            self.ctx.scoped(self.names.dispatch, || {
                let mut enc = self.encoder(self.names.encoder);
                protocol.begin_round(&mut enc, first);
                for k in 0..rounds {
                    if k + 1 == rounds {
                        protocol.before_last_dispatch(&mut enc);
                    }
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(self.names.pass),
                        timestamp_writes: None,
                    });
                    pass.set_pipeline(self.pipeline);
                    pass.set_bind_group(0, self.bind_group, &[]);
                    pass.dispatch_workgroups(self.groups, 1, 1);
                }
                enc.copy_buffer_to_buffer(watch.src, 0, watch.staging, 0, bytes);
                self.ctx.queue().submit([enc.finish()]);
                Ok(())
            })?;
            first = false;
            dispatches += rounds as usize;
            let raw = self.ctx.read_back(watch.staging, watch.label, bytes)?;
            if let Some(out) = protocol.check(&raw, rounds, dispatches)? {
                return Ok((dispatches, out));
            }
            rounds = protocol.next_rounds(rounds).max(1);
        }
    }

    /// Copy the first `bytes` of `from.src` to its staging buffer and read them back.
    pub fn read(&self, from: ReadBack<'_>, bytes: u64) -> Result<Vec<u8>, GpuError> {
        self.ctx.scoped(self.names.read_back, || {
            let mut enc = self.encoder(self.names.copy);
            enc.copy_buffer_to_buffer(from.src, 0, from.staging, 0, bytes);
            self.ctx.queue().submit([enc.finish()]);
            Ok(())
        })?;
        self.ctx.read_back(from.staging, from.label, bytes)
    }

    fn encoder(&self, label: &str) -> wgpu::CommandEncoder {
        self.ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) })
    }
}

/// How a kernel says what is left after a round, and how the rounds are sized (module doc).
pub(crate) trait Resumption {
    type Out;
    /// Dispatches in the first round.
    fn first_rounds(&self) -> u32 {
        1
    }
    /// Commands recorded at the start of a round (`first`: the chunk's first round).
    fn begin_round(&mut self, _enc: &mut wgpu::CommandEncoder, _first: bool) {}
    /// Commands recorded before the last dispatch of a round.
    fn before_last_dispatch(&mut self, _enc: &mut wgpu::CommandEncoder) {}
    /// The watched buffer after a round of `rounds` dispatches (`dispatches` so far):
    /// `Some(result)` when the chunk is finished, `None` to go on, `Err` when it is stuck.
    fn check(
        &mut self,
        watched: &[u8],
        rounds: u32,
        dispatches: usize,
    ) -> Result<Option<Self::Out>, GpuError>;
    /// Dispatches in the round after one of `rounds`.
    fn next_rounds(&self, rounds: u32) -> u32 {
        (rounds * 2).min(MAX_ROUNDS)
    }
}

/// The resumable state of one element of a batch kernel as the host reads it back (a twin of
/// the kernel's WGSL struct).
pub(crate) trait ElementState: Pod {
    /// Its status code (`ST_*`).
    fn status(&self) -> u32;
    /// What moves whenever the element makes progress: (status, step attempts, next save).
    fn progress(&self) -> (u32, u32, u32);
}

/// `Resumption` of kernels with one `ElementState` per element (module doc): done when every
/// status is final; the result is every element's last state.
pub(crate) struct UntilDone<S> {
    last: Vec<(u32, u32, u32)>,
    operation: &'static str,
    unit: &'static str,
    kernel: String,
    _state: PhantomData<S>,
}

impl<S: ElementState> UntilDone<S> {
    /// For the elements uploaded as `init`; errors name `operation`, the elements as `unit`
    /// ("elements", "points") and the kernel as `kernel`.
    pub fn new(init: &[S], operation: &'static str, unit: &'static str, kernel: String) -> Self {
        UntilDone {
            last: init.iter().map(S::progress).collect(),
            operation,
            unit,
            kernel,
            _state: PhantomData,
        }
    }
}

impl<S: ElementState> Resumption for UntilDone<S> {
    type Out = Vec<S>;

    fn check(&mut self, watched: &[u8], rounds: u32, _dispatches: usize) -> Result<Option<Vec<S>>, GpuError> {
        let states: Vec<S> = bytemuck::pod_collect_to_vec(watched);
        if states.iter().all(|s| s.status() >= ST_DONE) {
            return Ok(Some(states));
        }
        let now: Vec<(u32, u32, u32)> = states.iter().map(S::progress).collect();
        if now == self.last {
            let stuck = states.iter().filter(|s| s.status() < ST_DONE).count();
            return Err(GpuError::Validation {
                operation: self.operation,
                message: format!(
                    "{stuck} of {} {} made no progress in {rounds} dispatches of {}: the device \
                     did not run the kernel",
                    states.len(),
                    self.unit,
                    self.kernel
                ),
            });
        }
        self.last = now;
        Ok(None)
    }
}

/// `Resumption` of kernels whose suspended invocations count themselves in one atomic `u32`
/// (module doc): `state` (the per-element resumable state, zero = not started) is cleared at
/// the chunk's start, `counter` before the last dispatch of every round.
pub(crate) struct SuspendCount<'a> {
    pub state: &'a wgpu::Buffer,
    pub counter: &'a wgpu::Buffer,
    /// Dispatches in the first round (sized for the expected work).
    pub first: u32,
    /// More dispatches than this is an error.
    pub max_dispatches: u64,
    pub operation: &'static str,
    /// What the kernel's invocations run, for errors ("trajectories").
    pub unit: &'static str,
}

impl Resumption for SuspendCount<'_> {
    type Out = ();

    fn first_rounds(&self) -> u32 {
        self.first
    }

    fn begin_round(&mut self, enc: &mut wgpu::CommandEncoder, first: bool) {
        if first {
            enc.clear_buffer(self.state, 0, None);
        }
    }

    fn before_last_dispatch(&mut self, enc: &mut wgpu::CommandEncoder) {
        enc.clear_buffer(self.counter, 0, None);
    }

    fn check(&mut self, watched: &[u8], _rounds: u32, dispatches: usize) -> Result<Option<()>, GpuError> {
        let unfinished = u32::from_le_bytes([watched[0], watched[1], watched[2], watched[3]]);
        if unfinished == 0 {
            return Ok(Some(()));
        }
        if dispatches as u64 > self.max_dispatches {
            return Err(GpuError::Validation {
                operation: self.operation,
                message: format!(
                    "{unfinished} {} still unfinished after {dispatches} dispatches",
                    self.unit
                ),
            });
        }
        Ok(None)
    }

    fn next_rounds(&self, rounds: u32) -> u32 {
        (rounds / 4).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_in_order() {
        let c: Vec<_> = chunks(10, 4).collect();
        assert_eq!(c, vec![0..4, 4..8, 8..10]);
        assert_eq!(chunks(0, 4).count(), 0);
        assert_eq!(chunk_len(10, [7, 3, 100]), 3);
        assert_eq!(chunk_len(0, [7]), 1);
        assert_eq!(fit(0, 5), 5);
        assert_eq!(fit(10, 5), 1);
    }

    /// The status codes are those of the WGSL file every batch kernel is prepended with.
    #[test]
    fn status_codes_match_wgsl() {
        let wgsl = include_str!("../../../shaders/common/status.wgsl");
        for (name, v) in [
            ("ST_INIT", ST_INIT),
            ("ST_RUN", ST_RUN),
            ("ST_DONE", ST_DONE),
            ("ST_SMALL", ST_SMALL),
            ("ST_MAXSTEPS", ST_MAXSTEPS),
            ("ST_NONFINITE", ST_NONFINITE),
        ] {
            assert!(wgsl.contains(&format!("const {name}: u32 = {v}u;")), "{name}");
        }
    }

    #[test]
    fn until_done_finishes_and_detects_a_stuck_device() {
        #[repr(C)]
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        struct St([u32; 3]);
        impl ElementState for St {
            fn status(&self) -> u32 {
                self.0[0]
            }
            fn progress(&self) -> (u32, u32, u32) {
                (self.0[0], self.0[1], self.0[2])
            }
        }
        let bytes = |v: &[St]| bytemuck::cast_slice::<St, u8>(v).to_vec();
        let init = [St([ST_INIT, 0, 0]); 2];
        let mut p = UntilDone::new(&init, "test dispatch", "elements", "`k`".into());
        let running = [St([ST_RUN, 1, 0]), St([ST_DONE, 2, 1])];
        assert!(p.check(&bytes(&running), 1, 1).unwrap().is_none());
        assert!(p.check(&bytes(&running), 2, 3).is_err());
        let mut p = UntilDone::new(&init, "test dispatch", "elements", "`k`".into());
        let done = [St([ST_SMALL, 1, 0]), St([ST_DONE, 2, 1])];
        assert_eq!(p.check(&bytes(&done), 1, 1).unwrap().unwrap().len(), 2);
        assert_eq!(p.next_rounds(1), 2);
        assert_eq!(p.next_rounds(MAX_ROUNDS), MAX_ROUNDS);
    }
}
