//! The cumulant batch ([`super::batch`]) with eight points integrated at once in SIMD lanes: a
//! CPU memory layout of the same algorithm, not a different integrator.
//!
//! # Layout
//!
//! Struct of arrays: every state component, stage and parameter is an [`F64x8`], one point
//! per lane. The right-hand side, the Runge-Kutta stages and the error norm run on all eight
//! lanes together (the generic [`super::rhs`], [`super::batch`]'s `dp5_stages` and
//! `error_norm` over [`F64x8`]); everything else is per lane: each lane has its own step size,
//! error norm, accept/reject decision, save index and end, through the scalar path's own step
//! control (`batch::Control`), so the two cannot drift apart. A lane whose point has ended is
//! refilled at once with the next point of its chunk, so the lanes stay busy while points of
//! very different cost (stiffness, rejections) pass through. Chunks of points go to rayon's
//! threads; results come back in input order.
//!
//! # Bit-identical to the scalar batch
//!
//! Every lane performs the operations of [`super::batch::integrate_point`] in the same order:
//! [`F64x8`]'s operators are element-wise IEEE operations, the generic code is the one the
//! scalar path instantiates at `f64`, nothing is fused into multiply-adds (Rust never contracts
//! `a * b + c`, and no `mul_add` is written) and nothing is reassociated (no horizontal sums:
//! the error norm sums over the nine components within each lane). Starting a point (the
//! first right-hand side and Hairer's starting step) runs the scalar code itself. So each
//! point's result, failures included, is bit for bit that of
//! [`super::batch::integrate_batch`] (`tests/cumulant.rs` compares the f64 bits), whatever the
//! instruction set and whichever points share its lanes.
//!
//! # Schedules
//!
//! Scheduled points ([`integrate_batch_lanes_pieces`]) carry each lane's piece rates and the
//! attempt's time since its piece's start as two more vectors, and the stages evaluate
//! `par + rate (tau0 + c_i h)` per lane (`batch::dp5_stages`); a lane whose step lands on a
//! break loads its next piece and recomputes its first stage with the scalar right-hand side,
//! as the scalar batch does. Bit for bit that batch's [`batch::integrate_batch_pieces`]
//! (`tests/schedule.rs`).
//!
//! # Instruction sets
//!
//! The step is compiled three times from the same generic code: for AVX-512 (one `zmm`
//! register per [`F64x8`]), AVX2 (two `ymm`) and the baseline (SSE2), chosen at run time
//! ([`Isa::detect`]). Only the register width differs, so all three give the same bits.
//!
//! # Why lanes, and not an implicit method
//!
//! A point costs ~9,000 step attempts at N = 2000 (BENCHMARKS.md). A Rosenbrock method
//! (RODAS4 with the analytic Jacobian) was measured to take more time, not less: in the
//! oscillating phase of the dynamics (near and above Upsilon_c, period ~1/(N Gamma)) the step
//! is bound by accuracy, not stability, so an implicit step buys no longer steps and costs a
//! 9 x 9 factorisation each. The lanes instead cut the cost per step attempt (measured in
//! `notes_cumlanes.md` / BENCHMARKS.md). The WGSL kernel (`shaders/cumulant_batch.wgsl`, one
//! invocation per point) stays the twin of the scalar algorithm; a GPU already runs points in
//! lockstep lanes of its own.

use super::batch::{self, BatchOptions, Control, PointResult, SaveGrid};
use super::pieces::Pieces;
use super::{NPAR, NVAR, Real, rhs};
use rayon::prelude::*;
use std::ops::{Add, Div, Mul, Neg, Sub};

/// Points per lane block.
pub const LANES: usize = 8;

/// Eight f64 in one (AVX-512) register: one lane per point; every operation is element-wise.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C, align(64))]
pub struct F64x8(pub [f64; LANES]);

/// An element-wise operation on all lanes: a loop the compiler turns into vector instructions
/// (an index loop over the fixed 8 lanes, the form measured to vectorise).
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn map2(a: F64x8, b: F64x8, f: impl Fn(f64, f64) -> f64) -> F64x8 {
    let mut r = [0.0; LANES];
    for l in 0..LANES {
        r[l] = f(a.0[l], b.0[l]);
    }
    F64x8(r)
}

#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn map1(a: F64x8, f: impl Fn(f64) -> f64) -> F64x8 {
    let mut r = [0.0; LANES];
    for l in 0..LANES {
        r[l] = f(a.0[l]);
    }
    F64x8(r)
}

impl Add for F64x8 {
    type Output = F64x8;
    #[inline(always)]
    fn add(self, o: F64x8) -> F64x8 {
        map2(self, o, |a, b| a + b)
    }
}

impl Sub for F64x8 {
    type Output = F64x8;
    #[inline(always)]
    fn sub(self, o: F64x8) -> F64x8 {
        map2(self, o, |a, b| a - b)
    }
}

impl Mul for F64x8 {
    type Output = F64x8;
    #[inline(always)]
    fn mul(self, o: F64x8) -> F64x8 {
        map2(self, o, |a, b| a * b)
    }
}

impl Div for F64x8 {
    type Output = F64x8;
    #[inline(always)]
    fn div(self, o: F64x8) -> F64x8 {
        map2(self, o, |a, b| a / b)
    }
}

impl Neg for F64x8 {
    type Output = F64x8;
    #[inline(always)]
    fn neg(self) -> F64x8 {
        map1(self, |a| -a)
    }
}

impl Real for F64x8 {
    #[inline(always)]
    fn splat(x: f64) -> F64x8 {
        F64x8([x; LANES])
    }
    #[inline(always)]
    fn abs(self) -> F64x8 {
        map1(self, f64::abs)
    }
    #[inline(always)]
    fn max(self, o: F64x8) -> F64x8 {
        map2(self, o, f64::max)
    }
    #[inline(always)]
    fn sqrt(self) -> F64x8 {
        map1(self, f64::sqrt)
    }
}

/// The instruction set the lane step is compiled for (module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// The baseline target (SSE2 on x86-64).
    Plain,
    Avx2,
    Avx512,
}

impl Isa {
    /// Every variant, widest last.
    pub const ALL: [Isa; 3] = [Isa::Plain, Isa::Avx2, Isa::Avx512];

    /// Whether the running CPU supports it.
    pub fn available(self) -> bool {
        match self {
            Isa::Plain => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The widest available one.
    pub fn detect() -> Isa {
        *Isa::ALL
            .iter()
            .rev()
            .find(|i| i.available())
            .unwrap_or(&Isa::Plain)
    }
}

/// The vector state of eight lanes.
struct Block {
    par: [F64x8; NPAR],
    y: [F64x8; NVAR],
    k: [[F64x8; NVAR]; 7],
    ytmp: [F64x8; NVAR],
    ynew: [F64x8; NVAR],
    /// Each lane's step for this attempt (0 in an empty lane).
    hs: F64x8,
    /// Scheduled points: each lane's parameter rates on its piece and the attempt's start
    /// after the piece's start (`batch::Ramp`; zeros in an empty lane).
    rate: [F64x8; NPAR],
    tau0: F64x8,
}

/// One step attempt on every lane: the stages and the error norm per lane; `sched`: the
/// lanes hold scheduled points (their stages at c_i h into the step).
#[inline(always)]
fn attempt_body(b: &mut Block, o: &BatchOptions, sched: bool) -> F64x8 {
    if sched {
        let mut st = batch::Ramp::new(&b.par, &b.rate, b.tau0, b.hs);
        batch::dp5_stages(&mut st, &b.y, b.hs, &mut b.k, &mut b.ytmp, &mut b.ynew);
    } else {
        batch::dp5_stages(&mut &b.par, &b.y, b.hs, &mut b.k, &mut b.ytmp, &mut b.ynew);
    }
    batch::error_norm(&b.y, &b.ynew, &b.k, b.hs, o)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn attempt_avx512(b: &mut Block, o: &BatchOptions, sched: bool) -> F64x8 {
    attempt_body(b, o, sched)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn attempt_avx2(b: &mut Block, o: &BatchOptions, sched: bool) -> F64x8 {
    attempt_body(b, o, sched)
}

/// [`attempt_body`] compiled for `isa` (which the caller checked is available).
fn attempt(b: &mut Block, o: &BatchOptions, isa: Isa, sched: bool) -> F64x8 {
    match isa {
        // SAFETY: `isa` is available on this CPU (integrate_batch_lanes_with checks it).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { attempt_avx512(b, o, sched) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { attempt_avx2(b, o, sched) },
        _ => attempt_body(b, o, sched),
    }
}

fn gather(v: &[F64x8; NVAR], l: usize) -> [f64; NVAR] {
    std::array::from_fn(|i| v[i].0[l])
}

fn scatter(v: &mut [F64x8], l: usize, x: &[f64]) {
    for (vi, xi) in v.iter_mut().zip(x) {
        vi.0[l] = *xi;
    }
}

/// A lane's point: its index in the chunk and its step control.
struct Slot {
    point: usize,
    ctl: Control,
}

/// The points of one chunk flowing through the eight lanes.
struct Chunk<'a> {
    pars: &'a [[f64; NPAR]],
    /// Scheduled points: each point's pieces (`pars` then holds their first pieces' p0).
    pieces: Option<&'a [Pieces]>,
    y0s: &'a [[f64; NVAR]],
    grid: &'a SaveGrid,
    o: &'a BatchOptions,
    /// The next point to load.
    next: usize,
    out: Vec<Option<PointResult>>,
}

impl Chunk<'_> {
    /// Give lane `l` its next attempt: keep its point if that has one, else record the point's
    /// result and load points until one has an attempt to make (a point can end at its start:
    /// a non-finite initial state). Leaves the lane empty, with zeros and `hs` = 0 (harmless
    /// arithmetic, no NaN or subnormal left behind), when the chunk has no point left.
    fn feed(&mut self, b: &mut Block, slot: &mut Option<Slot>, l: usize) {
        loop {
            if let Some(s) = slot {
                let pc = self.pieces.map(|p| &p[s.point]);
                if s.ctl
                    .propose(self.grid, self.o, pc.map_or(&[][..], Pieces::breaks))
                {
                    b.hs.0[l] = s.ctl.hs;
                    if let Some(pc) = pc {
                        b.tau0.0[l] = s.ctl.t() - pc.starts[s.ctl.piece];
                    }
                    return;
                }
                self.out[s.point] = Some(s.ctl.result(gather(&b.y, l)));
                *slot = None;
            }
            if self.next == self.pars.len() {
                scatter(&mut b.par, l, &[0.0; NPAR]);
                scatter(&mut b.rate, l, &[0.0; NPAR]);
                b.tau0.0[l] = 0.0;
                scatter(&mut b.y, l, &[0.0; NVAR]);
                scatter(&mut b.k[0], l, &[0.0; NVAR]);
                b.hs.0[l] = 0.0;
                return;
            }
            let i = self.next;
            self.next += 1;
            // The start runs the scalar code: it is 2 of a point's ~10^4 right-hand sides.
            let mut k = [[0.0; NVAR]; 7];
            let mut ytmp = [0.0; NVAR];
            let rate = self.pieces.map(|p| &p[i].p1[0]);
            let ctl = Control::start(
                &self.pars[i],
                rate,
                &self.y0s[i],
                &mut k,
                &mut ytmp,
                self.grid,
                self.o,
            );
            scatter(&mut b.par, l, &self.pars[i]);
            scatter(&mut b.rate, l, rate.unwrap_or(&[0.0; NPAR]));
            scatter(&mut b.y, l, &self.y0s[i]);
            scatter(&mut b.k[0], l, &k[0]);
            *slot = Some(Slot { point: i, ctl });
        }
    }

    /// Integrate every point of the chunk; results in the chunk's order.
    fn run(mut self, isa: Isa) -> Vec<PointResult> {
        let zero = F64x8::splat(0.0);
        let mut b = Block {
            par: [zero; NPAR],
            y: [zero; NVAR],
            k: [[zero; NVAR]; 7],
            ytmp: [zero; NVAR],
            ynew: [zero; NVAR],
            hs: zero,
            rate: [zero; NPAR],
            tau0: zero,
        };
        let mut slots: [Option<Slot>; LANES] = std::array::from_fn(|_| None);
        loop {
            for (l, slot) in slots.iter_mut().enumerate() {
                self.feed(&mut b, slot, l);
            }
            if slots.iter().all(Option::is_none) {
                break;
            }
            let err = attempt(&mut b, self.o, isa, self.pieces.is_some());
            for (l, slot) in slots.iter_mut().enumerate() {
                let Some(s) = slot else { continue };
                let ynew = gather(&b.ynew, l);
                if s.ctl.conclude(err.0[l], &gather(&b.y, l), &ynew, self.grid) {
                    scatter(&mut b.y, l, &ynew);
                    let k7 = gather(&b.k[6], l);
                    scatter(&mut b.k[0], l, &k7);
                    if let Some(p) = self.pieces
                        && s.ctl.take_new_piece()
                    {
                        // Onto a break: the next piece (batch::run_point), f(y) recomputed.
                        let pc = &p[s.point];
                        let mut k0 = [0.0; NVAR];
                        rhs(&pc.p0[s.ctl.piece], &ynew, &mut k0);
                        scatter(&mut b.par, l, &pc.p0[s.ctl.piece]);
                        scatter(&mut b.rate, l, &pc.p1[s.ctl.piece]);
                        scatter(&mut b.k[0], l, &k0);
                    }
                }
            }
        }
        // Every point was loaded (next == len) and every slot emptied after its result.
        self.out
            .into_iter()
            .map(|r| r.expect("every point of the chunk has a result"))
            .collect()
    }
}

/// Points per chunk: about 4 chunks per thread for balance, at most 512 (a chunk's lanes
/// drain at its end, ~1 % of its time at 512) and at least one block.
fn chunk_len(points: usize) -> usize {
    points
        .div_ceil(4 * rayon::current_num_threads())
        .clamp(LANES, 512)
}

/// [`batch::integrate_batch`] in SIMD lanes on the widest instruction set of this CPU: the
/// same results, bit for bit (module doc).
pub fn integrate_batch_lanes(
    pars: &[[f64; NPAR]],
    y0s: &[[f64; NVAR]],
    grid: &SaveGrid,
    o: &BatchOptions,
) -> Vec<PointResult> {
    integrate_batch_lanes_with(pars, y0s, grid, o, Isa::detect(), chunk_len(pars.len()))
}

/// [`batch::integrate_batch_pieces`] in SIMD lanes (scheduled points, module doc): the same
/// results, bit for bit.
pub fn integrate_batch_lanes_pieces(
    pieces: &[Pieces],
    y0s: &[[f64; NVAR]],
    grid: &SaveGrid,
    o: &BatchOptions,
) -> Vec<PointResult> {
    integrate_batch_lanes_pieces_with(pieces, y0s, grid, o, Isa::detect(), chunk_len(pieces.len()))
}

/// [`integrate_batch_lanes_pieces`] compiled for `isa` with `chunk` points per chunk (as
/// [`integrate_batch_lanes_with`]): for tests.
pub fn integrate_batch_lanes_pieces_with(
    pieces: &[Pieces],
    y0s: &[[f64; NVAR]],
    grid: &SaveGrid,
    o: &BatchOptions,
    isa: Isa,
    chunk: usize,
) -> Vec<PointResult> {
    let first: Vec<[f64; NPAR]> = pieces.iter().map(|p| p.p0[0]).collect();
    run_chunks(&first, Some(pieces), y0s, grid, o, isa, chunk)
}

/// [`integrate_batch_lanes`] compiled for `isa` (the baseline if this CPU lacks it) with
/// `chunk` points per chunk (at least 1): for tests and benchmarks. Panics if the two slices
/// differ in length (a caller bug).
pub fn integrate_batch_lanes_with(
    pars: &[[f64; NPAR]],
    y0s: &[[f64; NVAR]],
    grid: &SaveGrid,
    o: &BatchOptions,
    isa: Isa,
    chunk: usize,
) -> Vec<PointResult> {
    run_chunks(pars, None, y0s, grid, o, isa, chunk)
}

/// The chunks of constant points, or of scheduled ones (`pieces`; `pars` their first
/// pieces' parameters), in parallel; results in input order. Panics if the lengths differ
/// (a caller bug).
fn run_chunks(
    pars: &[[f64; NPAR]],
    pieces: Option<&[Pieces]>,
    y0s: &[[f64; NVAR]],
    grid: &SaveGrid,
    o: &BatchOptions,
    isa: Isa,
    chunk: usize,
) -> Vec<PointResult> {
    assert_eq!(
        pars.len(),
        y0s.len(),
        "integrate_batch_lanes: one initial state per point"
    );
    let isa = if isa.available() { isa } else { Isa::Plain };
    let chunk = chunk.max(1);
    pars.par_chunks(chunk)
        .zip(y0s.par_chunks(chunk))
        .enumerate()
        .flat_map_iter(|(c, (pars, y0s))| {
            Chunk {
                pars,
                pieces: pieces.map(|p| &p[c * chunk..c * chunk + pars.len()]),
                y0s,
                grid,
                o,
                next: 0,
                out: vec![None; pars.len()],
            }
            .run(isa)
        })
        .collect()
}
