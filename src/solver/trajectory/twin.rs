//! The CPU twin of `shaders/trajectory.wgsl`: one trajectory, generic over the working
//! precision ([`Real`]: f32 or f64), with the kernel's arithmetic written out operation by
//! operation in the kernel's order.
//!
//! Every per-level formula here has a WGSL line that evaluates the same expression tree
//! (same operands, same association, no fused multiply-adds), and every sum over levels is
//! taken in the kernel's order: lane `l` of a workgroup of `lanes` invocations adds the levels
//! `l, l + lanes, l + 2 lanes, ...` in that order into a zero, then the lanes are combined by
//! the pairwise tree `p[l] += p[l + s]` for `s = lanes/2, lanes/4, ..., 1` (`Twin::reduce`;
//! `lanes = 1` is the plain sequential sum of the one-invocation-per-trajectory kernel).
//!
//! Two rules keep the GPU compiler from changing roundings (found on lavapipe, where the rest
//! agrees to the last bit): a division `a / b` is written `a * (1 / b)`, the form Mesa lowers it
//! to; and the only polynomial with literal constants (the Hermite crossing) takes its
//! constants 1, 2, 3 from the parameter array, because Mesa reassociates sums around literals.
//! The control flow (trials, crossings, jumps) is the kernel's; the kernel can additionally
//! suspend between trials and resume in a later dispatch, which changes no arithmetic.
//!
//! The per-level coefficient tables below are precomputed once per run, but by the very
//! expressions the kernel evaluates on the fly, so the values are identical.
//!
//! Time-dependent parameters: `Twin::run_sched` and the kernel's complex exponential [`cexp`]
//! in `twin/scheduled.rs` (twin of the kernel's "Scheduled runs" section).

use super::{FULL, HEAD_LEN, QUANTUM_BITS, RECORD_LEN, TABLE_DEPTH};
use crate::rng::PhiloxStream;
use bytemuck::Pod;
use std::fmt::Debug;
use std::ops::{Add, Div, Mul, Neg, Sub};

/// Working precision of a trajectory kernel: f32 or f64 (sealed).
pub trait Real:
    Copy
    + Send
    + Sync
    + Debug
    + PartialOrd
    + Pod
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + sealed::Sealed
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    const HALF: Self;
    /// The matching [`super::Precision`].
    const PRECISION: super::Precision;
    /// Round to nearest (`as`).
    fn from_f64(x: f64) -> Self;
    /// Round to nearest (exact below 2^24 for f32).
    fn from_u32(x: u32) -> Self;
    fn to_f64(self) -> f64;
    /// Correctly rounded square root.
    fn sqrt(self) -> Self;
    /// The largest integer <= self (exact; WGSL `floor`).
    fn floor(self) -> Self;
    /// `max(self, 0)` as the kernel writes it (`select`-free: larger of the two).
    fn max0(self) -> Self {
        if self > Self::ZERO { self } else { Self::ZERO }
    }
    /// |self| (the level window's occupancy test; no kernel twin).
    fn abs(self) -> Self {
        if self < Self::ZERO { -self } else { self }
    }
    /// The two uniforms (0, 1) of the next block of the stream: f32 from words 0 and 1
    /// ([`crate::rng::uniform_f32`]), f64 from words (0, 1) and (2, 3)
    /// ([`crate::rng::uniform_f64`]). Twin of `draw2` in `shaders/trajectory_f32.wgsl` /
    /// `trajectory_f64.wgsl`.
    fn draw2(s: &mut PhiloxStream) -> [Self; 2];
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const HALF: Self = 0.5;
    const PRECISION: super::Precision = super::Precision::F32;
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn from_u32(x: u32) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    fn floor(self) -> Self {
        f32::floor(self)
    }
    fn draw2(s: &mut PhiloxStream) -> [Self; 2] {
        let w = s.next_u32x4();
        [crate::rng::uniform_f32(w[0]), crate::rng::uniform_f32(w[1])]
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const HALF: Self = 0.5;
    const PRECISION: super::Precision = super::Precision::F64;
    fn from_f64(x: f64) -> Self {
        x
    }
    fn from_u32(x: u32) -> Self {
        f64::from(x)
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    fn floor(self) -> Self {
        f64::floor(self)
    }
    fn draw2(s: &mut PhiloxStream) -> [Self; 2] {
        s.next_uniform_f64x2()
    }
}

/// A complex number as the kernel's `vec2<R>` (x = re, y = im).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cx<T> {
    pub re: T,
    pub im: T,
}

impl<T: Real> Cx<T> {
    #[inline(always)]
    pub fn new(re: T, im: T) -> Self {
        Cx { re, im }
    }
}

/// The kernel's inputs, converted to the working precision (the very arrays the GPU gets).
#[derive(Debug, Clone)]
pub struct TwinInputs<T> {
    pub n_levels: usize,
    pub two_j: u32,
    pub lanes: usize,
    pub seed: u64,
    /// Header + (h, q) per step-size set; layout in [`super::Plan::real_params`].
    pub rp: Vec<T>,
    /// exp(-i D tau) for tau = h_set 2^-k: `table[(set * TABLE_DEPTH + k) * n + i]`.
    pub table: Vec<Cx<T>>,
    pub psi0: Vec<Cx<T>>,
    /// (set, steps) per save interval.
    pub intervals: Vec<[u32; 2]>,
    /// Rates of the six irrep-changing channels in this irrep ([`IND_CHANNELS`] order):
    /// `gamma_down a-(j), gamma_down a+(j), gamma_up a-(j), gamma_up a+(j), 4 gamma_phi a-(j),
    /// 4 gamma_phi a+(j)`; all zero for a collective-only model (then the twin is exactly the
    /// GPU kernel's). `rp[0..3]` then hold the collective rates with the individual a0 parts.
    pub ind: [T; 6],
    /// Phase changes the switching classifier keeps per trajectory (0: no classifier; its
    /// `alpha, lo, hi` are `rp[12..15]`).
    pub max_events: u32,
    /// The level window (solver module doc, "Level window"), CPU only: `(a, margin)`, where a
    /// level is occupied when `|Re psi_i|` or `|Im psi_i|` of the normalised state exceeds `a`
    /// (`a = sqrt(tol)`), and the integrated levels are the occupied span widened by `margin`
    /// levels on each side and rounded out to whole chunks of [`CHUNK`] levels. `None`: every
    /// level, every step (the kernel's algorithm).
    pub window: Option<(T, usize)>,
}

/// The switching classifier of one trajectory (twin of `classify` in `shaders/trajectory.wgsl`;
/// solver module doc, "Switching classifier"): the smoothed Jz, the phase (0 undefined,
/// 1 lower, 2 upper), the number of phase changes and the first `max_events` of them, each
/// `2 save + upper`.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseLog<T> {
    pub smooth: T,
    pub phase: u32,
    pub count: u32,
    pub events: Vec<u32>,
}

impl<T: Real> Default for PhaseLog<T> {
    fn default() -> Self {
        PhaseLog {
            smooth: T::ZERO,
            phase: 0,
            count: 0,
            events: Vec::new(),
        }
    }
}

impl<T: Real> PhaseLog<T> {
    /// Classify save `save` from its record `rec` (`Jz = rec[1] * (1 / rec[0])`): smooth,
    /// `s <- x` at save 0 and `s <- s + alpha (x - s)` after; the phase becomes upper when
    /// `s > hi`, lower when `s < lo`, else stays; a change is logged. `rp`: the real
    /// parameters (`alpha, lo, hi` at 12..15), in the kernel's order of operations.
    #[inline(always)]
    pub fn update(&mut self, rp: &[T], max_events: u32, save: u32, rec: &[T]) {
        let x = rec[1] * (T::ONE / rec[0]);
        self.smooth = if save == 0 {
            x
        } else {
            self.smooth + rp[12] * (x - self.smooth)
        };
        let mut np = self.phase;
        if self.smooth > rp[14] {
            np = 2;
        }
        if self.smooth < rp[13] {
            np = 1;
        }
        if np != self.phase {
            if self.count < max_events {
                self.events.push(save * 2 + (np - 1));
            }
            self.count += 1;
            self.phase = np;
        }
    }
}

/// The irrep-changing jump operators of PHYSICS.md sec. 4, in the order of
/// [`TwinInputs::ind`]: name, change of 2j, change of the level index i = m + j.
pub const IND_CHANNELS: [(&str, i32, i32); 6] = [
    ("A-", -2, -2),
    ("A+", 2, 0),
    ("B-", -2, 0),
    ("B+", 2, 2),
    ("D-", -2, -1),
    ("D+", 2, 1),
];

/// Levels are padded to a multiple of this (the widest SIMD register holds 16 f32), so every
/// per-level pass is whole vectors with no remainder loop. The level window's edges are
/// multiples of it too, which keeps both the whole-vector passes and the lane order of every
/// sum (`Twin::reduce`) as they are without a window.
pub const CHUNK: usize = 16;

/// The levels a pass covers: padded level indices `a..b`, both multiples of [`CHUNK`]; every
/// work vector is exactly zero outside them (solver module doc, "Level window"). Without a
/// window it is `0..np`, every level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Win {
    a: usize,
    b: usize,
}

/// What one trajectory integrated: `steps` trial steps (full or partial) over `levels` levels
/// in total (padded levels included), so `levels / steps` is the mean window width.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    pub steps: u64,
    pub levels: u64,
}

/// A complex vector in split layout (real parts, imaginary parts), level `i` at index
/// `i + 1`: index 0 and everything past the last level are zero ghosts, so the V stencil and
/// the record's neighbour products need no branch, and each pass over the levels is one
/// straight loop the compiler vectorises. The ghosts stay exactly zero because every
/// coefficient of a padded level is zero (module doc of [`Twin`]).
#[derive(Debug, Clone)]
struct Cv<T> {
    re: Vec<T>,
    im: Vec<T>,
}

impl<T: Real> Cv<T> {
    fn zeros(len: usize) -> Self {
        Cv {
            re: vec![T::ZERO; len],
            im: vec![T::ZERO; len],
        }
    }
}

/// One trajectory engine: inputs plus per-level coefficients, padded to `np` levels
/// (a multiple of `CHUNK`) with zero coefficients on the padding.
///
/// Layout and speed. The arithmetic is the kernel's expression by expression, but the data
/// are laid out for the CPU: split real/imaginary vectors with zero ghosts (`Cv`), the
/// exponential tables in the same split layout, the four stage passes of Lawson RK4 each fused
/// into one loop (the stage input ping-pongs between two vectors, so the stencil never reads a
/// level already overwritten), and the run compiled a second time with AVX2 enabled, chosen at
/// run time. None of this changes a rounding: per-level expressions are evaluated in the same
/// order (Rust never fuses multiply-adds), a padded level adds an exact zero to a sum, and the
/// sums over levels keep the kernel's lane order (`Twin::reduce`), which for `lanes >= 8` is
/// itself the order of an 8-wide vector accumulator.
pub struct Twin<T> {
    inp: TwinInputs<T>,
    np: usize,
    cm: Cx<T>,
    cp: Cx<T>,
    third: T,
    sixth: T,
    m: Vec<T>,
    /// m^2 (for <Jz^2>).
    m2: Vec<T>,
    /// jp_i = <i+1|J+|i>, jp_{i-1}, and jp_i jp_{i+1}.
    jp: Vec<T>,
    jpm1: Vec<T>,
    jpp: Vec<T>,
    /// Channel weights per level: Gamma jpjm, w jmjp, Gamma_phi m^2, and their sum gamma.
    wd: Vec<T>,
    wu: Vec<T>,
    wz: Vec<T>,
    gam: Vec<T>,
    /// Whether any irrep-changing channel has a rate; then their weights `rate * |<j'm'|A|jm>|^2`
    /// and amplitudes `<j'm'|A|jm>` per source level ([`IND_CHANNELS`] order).
    ind_on: bool,
    wi: [Vec<T>; 6],
    ci: [Vec<T>; 6],
    /// jpjm + jmjp (for <Jx^2> + <Jy^2>), and jp_i (m + (m + 1)) (for <{J+, Jz}>).
    pm: Vec<T>,
    jpmm: Vec<T>,
    /// The exponential table in split layout: `tab.re[(set * TABLE_DEPTH + k) * np + i]`.
    tab: Cv<T>,
}

/// Per-trajectory work vectors (ghosted `Cv` of length `np + 4`, factors of length `np`).
struct Work<T> {
    psi: Cv<T>,
    kvp: Cv<T>,
    acc: Cv<T>,
    kva: Cv<T>,
    ua: Cv<T>,
    ub: Cv<T>,
    e1: Cv<T>,
    e2: Cv<T>,
    /// Scheduled runs only: the second half-step's factor of a partial step (`e1` is then the
    /// first half's; module doc of [`super::sched`]).
    e3: Cv<T>,
    /// Per-level terms of up to four sums, reduced in the kernel's order.
    f: [Vec<T>; 4],
}

/// `a * b` as WGSL `cmul` writes it: `(a.x b.x - a.y b.y, a.x b.y + a.y b.x)`.
#[inline(always)]
fn cmul<T: Real>(ar: T, ai: T, br: T, bi: T) -> (T, T) {
    (ar * br - ai * bi, ar * bi + ai * br)
}

/// `(V u)_i - c u_i` times `-i` (`mneg_i(z) = (z.y, -z.x)`), from the left, centre and right
/// neighbours of level i: `(V u)_i = cm (jp_{i-1} u_{i-1}) + cp (jp_i u_{i+1})`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn stage_k<T: Real>(cm: Cx<T>, cp: Cx<T>, jpm1: T, jp: T, l: (T, T), u: (T, T), r: (T, T), c: T) -> (T, T) {
    let (vr, vi) = vstencil(cm, cp, jpm1, jp, l, r);
    (vi - u.1 * c, -(vr - u.0 * c))
}

/// `(V u)_i` (the kernel's `vapply`).
#[inline(always)]
fn vstencil<T: Real>(cm: Cx<T>, cp: Cx<T>, jpm1: T, jp: T, l: (T, T), r: (T, T)) -> (T, T) {
    let (t1r, t1i) = (l.0 * jpm1, l.1 * jpm1);
    let (t2r, t2i) = (r.0 * jp, r.1 * jp);
    let (ar, ai) = cmul(cm.re, cm.im, t1r, t1i);
    let (br, bi) = cmul(cp.re, cp.im, t2r, t2i);
    (ar + br, ai + bi)
}

/// Lane sums of `f` for a compile-time lane count `L` (`f.len()` a multiple of `L`).
#[inline(always)]
fn reduce_lanes<T: Real, const L: usize>(f: &[T]) -> T {
    let mut p = [T::ZERO; L];
    for c in f.chunks_exact(L) {
        for l in 0..L {
            p[l] = p[l] + c[l];
        }
    }
    tree(&mut p)
}

/// The pairwise tree `p[l] += p[l + s]`, `s = len/2, ..., 1`, of the kernel's workgroup
/// reduction; `p.len()` is a power of two.
#[inline(always)]
fn tree<T: Real>(p: &mut [T]) -> T {
    let mut s = p.len() / 2;
    while s > 0 {
        for l in 0..s {
            p[l] = p[l] + p[l + s];
        }
        s /= 2;
    }
    p[0]
}

impl<T: Real> Twin<T> {
    pub fn new(inp: TwinInputs<T>) -> Self {
        let n = inp.n_levels;
        let np = n.div_ceil(CHUNK).max(1) * CHUNK;
        let jr = T::from_u32(inp.two_j) * T::HALF;
        let jp_of = |m: T| ((jr - m) * (jr + m + T::ONE)).max0().sqrt();
        let rp = &inp.rp;
        // Real levels get the kernel's expressions, padded levels zero.
        let level = |f: &dyn Fn(T) -> T| -> Vec<T> {
            (0..np)
                .map(|i| {
                    if i < n {
                        f(T::from_u32(i as u32) - jr)
                    } else {
                        T::ZERO
                    }
                })
                .collect()
        };
        let jpjm = |m: T| (jr + m) * (jr - m + T::ONE);
        let jmjp = |m: T| (jr - m) * (jr + m + T::ONE);
        let m = level(&|m| m);
        let m2 = level(&|m| m * m);
        let jp = level(&jp_of);
        let jpm1 = level(&|m| jp_of(m - T::ONE));
        let jpp = level(&|m| jp_of(m) * jp_of(m + T::ONE));
        let wd = level(&|m| rp[0] * jpjm(m));
        let wu = level(&|m| rp[1] * jmjp(m));
        let wz = level(&|m| rp[2] * (m * m));
        // |<j'm'|A|jm>|^2 of A-, A+, B-, B+, D-, D+ (PHYSICS.md sec. 3).
        let one = T::ONE;
        let prods: [&dyn Fn(T) -> T; 6] = [
            &|m| (jr + m) * (jr + m - one),
            &|m| (jr - m + one) * (jr - m + (one + one)),
            &|m| (jr - m) * (jr - m - one),
            &|m| (jr + m + one) * (jr + m + (one + one)),
            &|m| jr * jr - m * m,
            &|m| (jr + one) * (jr + one) - m * m,
        ];
        let ind = inp.ind;
        let ind_on = ind.iter().any(|&r| r > T::ZERO);
        let wi: [Vec<T>; 6] = std::array::from_fn(|k| level(&|m| ind[k] * prods[k](m).max0()));
        let ci: [Vec<T>; 6] = std::array::from_fn(|k| level(&|m| prods[k](m).max0().sqrt()));
        let gam = (0..np)
            .map(|i| {
                let c = (wd[i] + wu[i]) + wz[i];
                if ind_on {
                    c + (((wi[0][i] + wi[1][i]) + (wi[2][i] + wi[3][i])) + (wi[4][i] + wi[5][i]))
                } else {
                    c
                }
            })
            .collect();
        let pm = level(&|m| jpjm(m) + jmjp(m));
        let jpmm = level(&|m| jp_of(m) * (m + (m + T::ONE)));
        let rows = inp.table.len() / n.max(1);
        let mut tab = Cv::zeros(rows * np);
        for row in 0..rows {
            for i in 0..n {
                let z = inp.table[row * n + i];
                tab.re[row * np + i] = z.re;
                tab.im[row * np + i] = z.im;
            }
        }
        Twin {
            cm: Cx::new(rp[3], rp[4]),
            cp: Cx::new(rp[5], rp[6]),
            third: rp[7],
            sixth: rp[8],
            inp,
            np,
            m,
            m2,
            jp,
            jpm1,
            jpp,
            wd,
            wu,
            wz,
            gam,
            ind_on,
            wi,
            ci,
            pm,
            jpmm,
            tab,
        }
    }

    /// Save points per trajectory (intervals + 1).
    pub fn n_saves(&self) -> usize {
        self.inp.intervals.len() + 1
    }

    fn work(&self) -> Work<T> {
        let g = Cv::zeros(self.np + 4);
        let e = Cv::zeros(self.np);
        Work {
            psi: g.clone(),
            kvp: g.clone(),
            acc: g.clone(),
            kva: g.clone(),
            ua: g.clone(),
            ub: g,
            e1: e.clone(),
            e3: e.clone(),
            e2: e,
            f: std::array::from_fn(|_| vec![T::ZERO; self.np]),
        }
    }

    /// Sums of the per-level terms `f[0..K]` in the kernel's order (module doc): lane `l` of
    /// `lanes` adds levels `l, l + lanes, ...` into a zero, then the pairwise tree. Padded
    /// levels add exact zeros. For one lane the K sums run in one loop (independent chains,
    /// so their add latencies overlap); for 8 or 16 lanes the lane accumulators are one
    /// vector register.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // level-major over K arrays: the K chains interleave
    fn reduce<const K: usize>(&self, f: [&[T]; K], win: Win) -> [T; K] {
        // Only this irrep's levels: the work vectors are sized for j = N/2, and after a jump
        // into a shorter irrep their tail still holds the longer irrep's terms. Within them
        // only the window: the levels outside add exact zeros, and `win.a` is a multiple of
        // CHUNK, so for up to CHUNK lanes each lane still adds its own levels in order.
        let f = f.map(|x| &x[win.a..win.b]);
        match self.inp.lanes {
            1 => {
                let mut a = [T::ZERO; K];
                for i in 0..win.b - win.a {
                    for k in 0..K {
                        a[k] = a[k] + f[k][i];
                    }
                }
                a
            }
            8 => f.map(reduce_lanes::<T, 8>),
            16 => f.map(reduce_lanes::<T, 16>),
            lanes if win.a.is_multiple_of(lanes) => f.map(|f| {
                let mut p = [T::ZERO; 256];
                let p = &mut p[..lanes];
                for chunk in f.chunks(lanes) {
                    for (a, &x) in p.iter_mut().zip(chunk) {
                        *a = *a + x;
                    }
                }
                tree(p)
            }),
            // A window starting inside a lane row (lanes > CHUNK): level a + k is lane
            // (a + k) mod lanes, as without the window.
            lanes => f.map(|f| {
                let mut p = [T::ZERO; 256];
                let p = &mut p[..lanes];
                for (k, &x) in f.iter().enumerate() {
                    let l = (win.a + k) % lanes;
                    p[l] = p[l] + x;
                }
                tree(p)
            }),
        }
    }

    /// The Lawson factors exp(-i D tau) (e2) and exp(-i D tau/2) (e1) of a partial step of
    /// `rq < FULL` quanta of step-size set `set`: the product of the table entries of the set
    /// bits of `rq` (lowest bit first), starting from 1 as the kernel does.
    #[inline(always)]
    fn partial_factors(&self, w: &mut Work<T>, set: usize, rq: u32, win: Win) {
        let (np, Win { a, b }) = (self.np, win);
        let qb = QUANTUM_BITS as usize;
        let base = set * TABLE_DEPTH;
        w.e2.re[a..b].fill(T::ONE);
        w.e2.im[a..b].fill(T::ZERO);
        w.e1.re[a..b].fill(T::ONE);
        w.e1.im[a..b].fill(T::ZERO);
        for p in 0..=qb {
            if (rq >> p) & 1 == 0 {
                continue;
            }
            for (e, row) in [(&mut w.e2, base + qb - p), (&mut w.e1, base + qb - p + 1)] {
                let tr = &self.tab.re[row * np + a..row * np + b];
                let ti = &self.tab.im[row * np + a..row * np + b];
                let (er, ei) = (&mut e.re[a..b], &mut e.im[a..b]);
                for k in 0..b - a {
                    (er[k], ei[k]) = cmul(er[k], ei[k], tr[k], ti[k]);
                }
            }
        }
    }

    /// One Lawson (integrating-factor) RK4 step of size `tau` from the normalised `psi`
    /// (with `kvp` = V psi) into `acc`, the diagonal part exact through the factors
    /// `(e1, e2)` (`full`: the table rows of a whole step of set `set`, else `w.e1`, `w.e2`);
    /// `c` is the energy shift <V> (module doc of [`super`]). Each stage is one pass: it reads
    /// the stage input from one ping-pong vector and writes the next into the other.
    #[inline(always)]
    fn lawson(&self, w: &mut Work<T>, full: Option<usize>, tau: T, c: T, win: Win) {
        self.lawson_t(w, full, tau, c, win, None)
    }

    /// [`Twin::lawson`], or with `tv = Some([mid, end])` the scheduled form (module doc of
    /// [`super::sched`]): the two half-steps take their own factors (`tab` row 2 after rows 0
    /// and 1 for a whole step, `e3` after `e1` for a partial one), and the stages k2, k3 use
    /// the stencil coefficients `mid = (cm, cp)` at the step's midpoint, k4 `end` at its end
    /// (k1 comes from `kvp`, V at its start).
    #[inline(always)]
    fn lawson_t(
        &self,
        w: &mut Work<T>,
        full: Option<usize>,
        tau: T,
        c: T,
        win: Win,
        tv: Option<[(Cx<T>, Cx<T>); 2]>,
    ) {
        let (np, Win { a, b }) = (self.np, win);
        let split = tv.is_some();
        let [vmid, vend] = tv.unwrap_or([(self.cm, self.cp); 2]);
        let h2 = tau * T::HALF;
        let h3 = tau * self.third;
        let h6 = tau * self.sixth;
        let (e1r, e1i, e2r, e2i, ebr, ebi) = match full {
            Some(set) => {
                let r2 = set * TABLE_DEPTH;
                let r1 = r2 + 1;
                let rb = if split { r2 + 2 } else { r1 };
                (
                    &self.tab.re[r1 * np + a..r1 * np + b],
                    &self.tab.im[r1 * np + a..r1 * np + b],
                    &self.tab.re[r2 * np + a..r2 * np + b],
                    &self.tab.im[r2 * np + a..r2 * np + b],
                    &self.tab.re[rb * np + a..rb * np + b],
                    &self.tab.im[rb * np + a..rb * np + b],
                )
            }
            None => {
                let eb = if split { &w.e3 } else { &w.e1 };
                (
                    &w.e1.re[a..b],
                    &w.e1.im[a..b],
                    &w.e2.re[a..b],
                    &w.e2.im[a..b],
                    &eb.re[a..b],
                    &eb.im[a..b],
                )
            }
        };
        let (psr, psi_) = (&w.psi.re[a + 1..b + 1], &w.psi.im[a + 1..b + 1]);
        {
            // k1 from kvp; acc = E(h) psi + h/6 E(h) k1; ua = E(h/2) (psi + h/2 k1).
            let (kvr, kvi) = (&w.kvp.re[a + 1..b + 1], &w.kvp.im[a + 1..b + 1]);
            let (ar, ai) = (&mut w.acc.re[a + 1..b + 1], &mut w.acc.im[a + 1..b + 1]);
            let (ur, ui) = (&mut w.ua.re[a + 1..b + 1], &mut w.ua.im[a + 1..b + 1]);
            for k in 0..b - a {
                let (k1r, k1i) = (kvi[k] - psi_[k] * c, -(kvr[k] - psr[k] * c));
                let (pr, pi) = cmul(e2r[k], e2i[k], psr[k], psi_[k]);
                let (qr, qi) = cmul(e2r[k], e2i[k], k1r, k1i);
                ar[k] = pr + qr * h6;
                ai[k] = pi + qi * h6;
                let (pr, pi) = cmul(e1r[k], e1i[k], psr[k], psi_[k]);
                let (qr, qi) = cmul(e1r[k], e1i[k], k1r, k1i);
                ur[k] = pr + qr * h2;
                ui[k] = pi + qi * h2;
            }
        }
        let (e1, eb) = ((e1r, e1i), (ebr, ebi));
        // k2 from ua; acc += h/3 E(h/2) k2; ub = E(h/2) psi + h/2 k2 (first half: e1;
        // second half: eb, the same as e1 without a schedule).
        self.stage::<true, false, true>(&w.ua, &mut w.ub, &mut w.acc, &w.psi, eb, e1, c, h3, h2, vmid, win);
        // k3 from ub; acc += h/3 E(h/2) k3; ua = E(h) psi + h E(h/2) k3.
        let e2 = (e2r, e2i);
        self.stage::<true, true, true>(
            &w.ub, &mut w.ua, &mut w.acc, &w.psi, eb, e2, c, h3, tau, vmid, win,
        );
        // k4 from ua; acc += h/6 k4 (ub is free and is not written).
        self.stage::<false, false, false>(&w.ua, &mut w.ub, &mut w.acc, &w.psi, eb, eb, c, h6, h6, vend, win);
    }

    /// A later Lawson stage in one pass: `k = -i (V - c) u` from the stage input `u`;
    /// `acc += s_acc (E k)` (`ROT_ACC`, E = `e1`) or `acc += s_acc k`; and when `WRITE`, the
    /// next stage input `out = ep psi + s_out (E k)` (`ROT_OUT`) or `ep psi + s_out k`. The
    /// const flags pick the kernel's expression for each stage without a branch in the loop.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn stage<const ROT_ACC: bool, const ROT_OUT: bool, const WRITE: bool>(
        &self,
        u: &Cv<T>,
        out: &mut Cv<T>,
        acc: &mut Cv<T>,
        psi: &Cv<T>,
        (e1r, e1i): (&[T], &[T]),
        (epr, epi): (&[T], &[T]),
        c: T,
        s_acc: T,
        s_out: T,
        (cm, cp): (Cx<T>, Cx<T>),
        Win { a, b }: Win,
    ) {
        let n = b - a;
        let (jpm1, jp) = (&self.jpm1[a..b], &self.jp[a..b]);
        // The factors are already the window's (`lawson`).
        let (e1r, e1i, epr, epi) = (&e1r[..n], &e1i[..n], &epr[..n], &epi[..n]);
        let (psr, psi_) = (&psi.re[a + 1..b + 1], &psi.im[a + 1..b + 1]);
        let (ar, ai) = (&mut acc.re[a + 1..b + 1], &mut acc.im[a + 1..b + 1]);
        let (ulr, uli, ucr, uci, urr, uri) = (
            &u.re[a..b],
            &u.im[a..b],
            &u.re[a + 1..b + 1],
            &u.im[a + 1..b + 1],
            &u.re[a + 2..b + 2],
            &u.im[a + 2..b + 2],
        );
        let (or, oi) = (&mut out.re[a + 1..b + 1], &mut out.im[a + 1..b + 1]);
        for k in 0..n {
            let (kr, ki) = stage_k(
                cm,
                cp,
                jpm1[k],
                jp[k],
                (ulr[k], uli[k]),
                (ucr[k], uci[k]),
                (urr[k], uri[k]),
                c,
            );
            let (qr, qi) = cmul(e1r[k], e1i[k], kr, ki);
            let (xr, xi) = if ROT_ACC { (qr, qi) } else { (kr, ki) };
            ar[k] = ar[k] + xr * s_acc;
            ai[k] = ai[k] + xi * s_acc;
            if WRITE {
                let (pr, pi) = cmul(epr[k], epi[k], psr[k], psi_[k]);
                let (yr, yi) = if ROT_OUT { (qr, qi) } else { (kr, ki) };
                or[k] = pr + yr * s_out;
                oi[k] = pi + yi * s_out;
            }
        }
    }

    /// `out = V x` and the sums `(|x|^2, x^dag Gamma x, Re x^dag V x)`.
    #[inline(always)]
    fn apply_v_sums(&self, x: &Cv<T>, out: &mut Cv<T>, f: &mut [Vec<T>; 4], win: Win) -> [T; 3] {
        let Win { a, b } = win;
        let (cm, cp) = (self.cm, self.cp);
        let (jpm1, jp, gam) = (&self.jpm1[a..b], &self.jp[a..b], &self.gam[a..b]);
        let (xlr, xli, xcr, xci, xrr, xri) = (
            &x.re[a..b],
            &x.im[a..b],
            &x.re[a + 1..b + 1],
            &x.im[a + 1..b + 1],
            &x.re[a + 2..b + 2],
            &x.im[a + 2..b + 2],
        );
        let (or, oi) = (&mut out.re[a + 1..b + 1], &mut out.im[a + 1..b + 1]);
        let [f0, f1, f2, _] = f;
        let (f0, f1, f2) = (&mut f0[a..b], &mut f1[a..b], &mut f2[a..b]);
        for k in 0..b - a {
            let (vr, vi) = vstencil(cm, cp, jpm1[k], jp[k], (xlr[k], xli[k]), (xrr[k], xri[k]));
            or[k] = vr;
            oi[k] = vi;
            let a2 = xcr[k] * xcr[k] + xci[k] * xci[k];
            f0[k] = a2;
            f1[k] = gam[k] * a2;
            f2[k] = xcr[k] * vr + xci[k] * vi;
        }
        let [f0, f1, f2, _] = &*f;
        self.reduce([f0, f1, f2], win)
    }

    /// `psi = x s`, `kvp = vx s` for the real scale `s`.
    #[inline(always)]
    fn set_psi(&self, w: &mut Work<T>, from_acc: bool, s: T, Win { a, b }: Win) {
        let (x, vx) = if from_acc {
            (&w.acc, &w.kva)
        } else {
            (&w.ua, &w.kva)
        };
        for k in a + 1..b + 1 {
            w.psi.re[k] = x.re[k] * s;
            w.psi.im[k] = x.im[k] * s;
            w.kvp.re[k] = vx.re[k] * s;
            w.kvp.im[k] = vx.im[k] * s;
        }
    }

    /// psi = u / |u|, kvp = V psi for the post-jump vector `u` (in `ua`); returns
    /// (<Gamma>, <V>) of psi.
    #[inline(always)]
    fn renorm_from_u(&self, w: &mut Work<T>, win: Win) -> (T, T) {
        let s = self.apply_v_sums(&w.ua, &mut w.kva, &mut w.f, win);
        let inv = T::ONE / s[0].sqrt();
        let in2 = inv * inv;
        self.set_psi(w, false, inv, win);
        (s[1] * in2, s[2] * in2)
    }

    /// The ten stencil sums of `psi` (record layout in [`super::RECORD_LEN`]).
    /// Over the window only: a level below it is zero, so its neighbour products vanish.
    fn record(&self, w: &mut Work<T>, out: &mut [T], jumps: u32, win: Win) {
        let Win { a, b } = win;
        let u = &w.psi;
        let (cr, ci) = (&u.re[a + 1..b + 1], &u.im[a + 1..b + 1]);
        let (r1r, r1i) = (&u.re[a + 2..b + 2], &u.im[a + 2..b + 2]);
        let (r2r, r2i) = (&u.re[a + 3..b + 3], &u.im[a + 3..b + 3]);
        let (m, m2, pm) = (&self.m[a..b], &self.m2[a..b], &self.pm[a..b]);
        let (jp, jpp, jpmm) = (&self.jp[a..b], &self.jpp[a..b], &self.jpmm[a..b]);
        let mut sums = [T::ZERO; 10];
        {
            let [f0, f1, f2, f3] = &mut w.f;
            for k in 0..b - a {
                let a2 = cr[k] * cr[k] + ci[k] * ci[k];
                f0[a + k] = a2;
                f1[a + k] = m[k] * a2;
                f2[a + k] = m2[k] * a2;
                f3[a + k] = pm[k] * a2;
            }
        }
        let [f0, f1, f2, f3] = &w.f;
        sums[..4].copy_from_slice(&self.reduce([f0, f1, f2, f3], win));
        // a conj(b) = (a.x b.x + a.y b.y, a.y b.x - a.x b.y)
        {
            let [f0, f1, f2, f3] = &mut w.f;
            for k in 0..b - a {
                let (pr, pi) = (cr[k] * r1r[k] + ci[k] * r1i[k], ci[k] * r1r[k] - cr[k] * r1i[k]);
                f0[a + k] = pr * jp[k];
                f1[a + k] = pi * jp[k];
                let (qr, qi) = (cr[k] * r2r[k] + ci[k] * r2i[k], ci[k] * r2r[k] - cr[k] * r2i[k]);
                f2[a + k] = qr * jpp[k];
                f3[a + k] = qi * jpp[k];
            }
        }
        let [f0, f1, f2, f3] = &w.f;
        sums[4..8].copy_from_slice(&self.reduce([f0, f1, f2, f3], win));
        {
            let [f0, f1, _, _] = &mut w.f;
            for k in 0..b - a {
                let (pr, pi) = (cr[k] * r1r[k] + ci[k] * r1i[k], ci[k] * r1r[k] - cr[k] * r1i[k]);
                f0[a + k] = pr * jpmm[k];
                f1[a + k] = pi * jpmm[k];
            }
        }
        let [f0, f1, _, _] = &w.f;
        [sums[8], sums[9]] = self.reduce([f0, f1], win);
        out[..10].copy_from_slice(&sums);
        out[10] = T::from_u32(jumps);
        out[11] = T::from_u32(self.inp.two_j);
    }

    /// Smallest L in 1..=rq (quanta) with p(L/rq) <= b, by bisection (p(0) = 1 > b >= p(1)),
    /// where p is the cubic Hermite interpolant of the squared norm over the trial step,
    /// p(0) = 1, p'(0) = -g0 tau, p(1) = f1, p'(1) = -g1 tau (d|psi|^2/dt = -psi^dag Gamma psi),
    /// in Horner form `1 + s (c1 + s (c2 + s c3))` with the constants 1, 2, 3 read from the
    /// parameters as the kernel does (module doc of `shaders/trajectory.wgsl`, `crossing`).
    fn crossing(&self, rq: u32, tau: T, g0: T, f1: T, g1: T, b: T) -> u32 {
        let (one, two, three) = (self.inp.rp[9], self.inp.rp[10], self.inp.rp[11]);
        let d0 = -(g0 * tau);
        let d1 = -(g1 * tau);
        let c2 = (three * (f1 - one) - two * d0) - d1;
        let c3 = (two * (one - f1) + d0) + d1;
        // a / b written as a * (1 / b), as the kernel does (Mesa lowers a / b that way).
        let rinv = T::ONE / T::from_u32(rq);
        let (mut lo, mut hi) = (0u32, rq);
        while hi - lo > 1 {
            let mid = (lo + hi) >> 1;
            let s = T::from_u32(mid) * rinv;
            let p = one + s * (d0 + s * (c2 + s * c3));
            if p <= b {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    }

    /// Apply jump channel `ch` (0: J-, 1: J+, 2: Jz) to `acc` into `ua` (unnormalised).
    /// Within the window: J- (J+) moves the window's lowest (highest) level out of it, which
    /// the margin keeps empty (module doc of [`super`], "Level window").
    #[inline(always)]
    fn jump(&self, w: &mut Work<T>, ch: u32, Win { a: lo, b: hi }: Win) {
        let ac = &w.acc;
        let (or, oi) = (&mut w.ua.re[lo + 1..hi + 1], &mut w.ua.im[lo + 1..hi + 1]);
        let (src, coef) = match ch {
            0 => (lo + 2, &self.jp[lo..hi]),
            1 => (lo, &self.jpm1[lo..hi]),
            _ => (lo + 1, &self.m[lo..hi]),
        };
        let n = hi - lo;
        let (xr, xi) = (&ac.re[src..src + n], &ac.im[src..src + n]);
        for k in 0..n {
            or[k] = xr[k] * coef[k];
            oi[k] = xi[k] * coef[k];
        }
    }

    /// Apply irrep-changing channel `k` ([`IND_CHANNELS`]) to `acc`: the new irrep's twin
    /// (from `twin_of`, by 2j), with its unnormalised state in `ua`. Every work vector is
    /// cleared first, so the levels and ghosts past the new irrep are exact zeros again.
    #[inline(always)]
    fn jump_irrep<'a>(&self, w: &mut Work<T>, k: usize, twin_of: &dyn Fn(u32) -> &'a Twin<T>) -> &'a Twin<T> {
        let (_, dj, di) = IND_CHANNELS[k];
        let to = twin_of((self.inp.two_j as i32 + dj) as u32);
        for v in [&mut w.ua, &mut w.ub, &mut w.psi, &mut w.kvp, &mut w.kva] {
            v.re.fill(T::ZERO);
            v.im.fill(T::ZERO);
        }
        let n_to = to.inp.n_levels as i32;
        for i in 0..self.inp.n_levels {
            let t = i as i32 + di;
            if (0..n_to).contains(&t) {
                let c = self.ci[k][i];
                w.ua.re[t as usize + 1] = w.acc.re[i + 1] * c;
                w.ua.im[t as usize + 1] = w.acc.im[i + 1] * c;
            }
        }
        w.acc.re.fill(T::ZERO);
        w.acc.im.fill(T::ZERO);
        to
    }

    /// Run trajectory `traj` (global index) and write its `n_saves() * RECORD_LEN` record
    /// values into `out`; returns what it integrated. Uses the AVX2 build of the same code
    /// where the CPU has it.
    pub fn run(&self, traj: u64, out: &mut [T]) -> RunStats {
        self.run_with(&|_| self, traj, out, None, None, None)
    }

    /// As [`Twin::run`] for a model with single-atom processes: `self` is the irrep of the
    /// initial state (j = N/2), `twin_of(2j)` the twin of any other irrep a jump leads to.
    ///
    /// `pm`, if given (`n_saves() * (N + 1)` numbers), receives the trajectory's populations
    /// |<j, m|psi>|^2 at every save, at index `save * (N + 1) + m + N/2` (zero outside its
    /// irrep): summed over trajectories they give P_m of the permutation-invariant state.
    ///
    /// `fidelity`, if given (a reference in j = N/2, N + 1 normalised amplitudes, and
    /// `n_saves()` numbers), receives `|<ref|psi>|^2` of the trajectory at every save
    /// (`Twin::fidelity`).
    ///
    /// `log`, if given, runs the switching classifier on every record as it is written
    /// ([`PhaseLog::update`]; needs `max_events > 0` in the inputs to log anything).
    pub fn run_with<'a>(
        &'a self,
        twin_of: &dyn Fn(u32) -> &'a Twin<T>,
        traj: u64,
        out: &mut [T],
        pm: Option<&mut [T]>,
        fidelity: Option<(&[Cx<T>], &mut [T])>,
        log: Option<&mut PhaseLog<T>>,
    ) -> RunStats {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { self.run_avx2(twin_of, traj, out, pm, fidelity, log) };
        }
        self.run_impl(twin_of, traj, out, pm, fidelity, log)
    }

    /// The populations of the normalised `psi` into `row` (N + 1 numbers, index m + N/2).
    fn populations(&self, w: &Work<T>, row: &mut [T], n_atoms: usize) {
        row.fill(T::ZERO);
        let shift = (n_atoms - self.inp.two_j as usize) / 2;
        for i in 0..self.inp.n_levels {
            let (re, im) = (w.psi.re[i + 1], w.psi.im[i + 1]);
            row[shift + i] = re * re + im * im;
        }
    }

    /// `|<ref|psi>|^2` of the normalised `psi` for a reference in j = N/2 (`reference`: N + 1
    /// amplitudes, index m + N/2): the overlap summed level by level in T (in level order, as
    /// [`Twin::populations`] writes its levels), then its squared modulus. Exactly zero while
    /// the trajectory is in an irrep j < N/2, which is orthogonal to j = N/2.
    fn fidelity(&self, w: &Work<T>, reference: &[Cx<T>], n_atoms: usize) -> T {
        if self.inp.two_j as usize != n_atoms {
            return T::ZERO;
        }
        let (mut sr, mut si) = (T::ZERO, T::ZERO);
        for (i, r) in reference.iter().enumerate().take(self.inp.n_levels) {
            let (pr, pi) = (w.psi.re[i + 1], w.psi.im[i + 1]);
            // conj(r) psi = (r.x p.x + r.y p.y, r.x p.y - r.y p.x)
            sr = sr + (r.re * pr + r.im * pi);
            si = si + (r.re * pi - r.im * pr);
        }
        sr * sr + si * si
    }

    /// The per-save hooks at save `s`, where asked for: the populations (P_m,
    /// [`Twin::populations`]) and the fidelity ([`Twin::fidelity`]).
    #[inline(always)]
    fn save_hooks(
        &self,
        w: &Work<T>,
        s: usize,
        pm: &mut Option<&mut [T]>,
        fidelity: &mut Option<(&[Cx<T>], &mut [T])>,
        n_atoms: usize,
    ) {
        let npm = n_atoms + 1;
        if let Some(p) = pm.as_deref_mut() {
            self.populations(w, &mut p[s * npm..(s + 1) * npm], n_atoms);
        }
        if let Some((r, f)) = fidelity.as_mut() {
            f[s] = self.fidelity(w, r, n_atoms);
        }
    }

    /// The switching classifier, where asked for, on the record of save `s` in `out`.
    #[inline(always)]
    fn classify(&self, log: &mut Option<&mut PhaseLog<T>>, s: usize, out: &[T]) {
        if let Some(l) = log.as_deref_mut() {
            let r = &out[s * RECORD_LEN..(s + 1) * RECORD_LEN];
            l.update(&self.inp.rp, self.inp.max_events, s as u32, r);
        }
    }

    /// [`Twin::run_impl`] compiled with AVX2 (same arithmetic: no fused multiply-adds).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn run_avx2<'a>(
        &'a self,
        twin_of: &dyn Fn(u32) -> &'a Twin<T>,
        traj: u64,
        out: &mut [T],
        pm: Option<&mut [T]>,
        fidelity: Option<(&[Cx<T>], &mut [T])>,
        log: Option<&mut PhaseLog<T>>,
    ) -> RunStats {
        self.run_impl(twin_of, traj, out, pm, fidelity, log)
    }

    /// Every level of this irrep: the window of a run without one, and of a window run
    /// right after a jump into this irrep.
    fn all(&self) -> Win {
        Win { a: 0, b: self.np }
    }

    /// The window for the normalised `psi` (module doc of [`super`], "Level window"): the
    /// occupied levels (a component of magnitude above the threshold) widened by the margin
    /// and rounded out to whole chunks; levels that leave the window are set to exact zeros
    /// in every work vector, so the zeros outside stay exact. Unchanged without a window.
    #[inline(always)]
    fn slide(&self, w: &mut Work<T>, win: Win) -> Win {
        let Some((amp, margin)) = self.inp.window else {
            return win;
        };
        let occupied = |i: usize| w.psi.re[i + 1].abs() > amp || w.psi.im[i + 1].abs() > amp;
        let n = self.inp.n_levels.min(win.b);
        // Nothing occupied only if psi is not finite (then keep the window as it is).
        let Some(first) = (win.a..n).find(|&i| occupied(i)) else {
            return win;
        };
        let last = (first..n).rev().find(|&i| occupied(i)).unwrap_or(first);
        let next = Win {
            a: first.saturating_sub(margin) / CHUNK * CHUNK,
            b: ((last + 1 + margin).div_ceil(CHUNK) * CHUNK).min(self.np),
        };
        for (lo, hi) in [(win.a, next.a), (next.b, win.b)] {
            if lo < hi {
                for v in [
                    &mut w.psi, &mut w.kvp, &mut w.acc, &mut w.kva, &mut w.ua, &mut w.ub,
                ] {
                    v.re[lo + 1..hi + 1].fill(T::ZERO);
                    v.im[lo + 1..hi + 1].fill(T::ZERO);
                }
            }
        }
        next
    }

    /// The jump weights of the state in `acc`: the collective channels `(J-, J+, Jz)` and the
    /// six irrep-changing ones (zeros for a collective model), each summed in the kernel's order.
    #[inline(always)]
    fn jump_weights(&self, w: &mut Work<T>, win: Win) -> ([T; 3], [T; 6]) {
        let Win { a, b } = win;
        {
            let (ar, ai) = (&w.acc.re[a + 1..b + 1], &w.acc.im[a + 1..b + 1]);
            let (wd, wu, wz) = (&self.wd[a..b], &self.wu[a..b], &self.wz[a..b]);
            let [f0, f1, f2, f3] = &mut w.f;
            for k in 0..b - a {
                let a2 = ar[k] * ar[k] + ai[k] * ai[k];
                f0[a + k] = wd[k] * a2;
                f1[a + k] = wu[k] * a2;
                f2[a + k] = wz[k] * a2;
                f3[a + k] = a2;
            }
        }
        let [f0, f1, f2, _] = &w.f;
        let wt = self.reduce([f0, f1, f2], win);
        let mut wi = [T::ZERO; 6];
        if self.ind_on {
            // The irrep-changing weights, two at a time (f0, f1 are free).
            for pair in 0..3 {
                let [g0, g1, _, a2] = &mut w.f;
                for k in a..b {
                    g0[k] = self.wi[2 * pair][k] * a2[k];
                    g1[k] = self.wi[2 * pair + 1][k] * a2[k];
                }
                let [g0, g1, _, _] = &w.f;
                [wi[2 * pair], wi[2 * pair + 1]] = self.reduce([g0, g1], win);
            }
        }
        (wt, wi)
    }

    /// The jump at the end of a trial, the state in `acc`: draw (channel uniform, next r),
    /// pick the channel by its weight and apply it into `ua` (or copy `acc` there when no
    /// channel has weight). Returns the next r, whether a jump happened, and the new irrep's
    /// twin when the channel changed the irrep.
    #[inline(always)]
    fn jump_at<'a>(
        &self,
        w: &mut Work<T>,
        rng: &mut PhiloxStream,
        win: Win,
        twin_of: &dyn Fn(u32) -> &'a Twin<T>,
    ) -> (T, bool, Option<&'a Twin<T>>) {
        let (wt, wi) = self.jump_weights(w, win);
        let [uc, ur] = T::draw2(rng);
        let coll = (wt[0] + wt[1]) + wt[2];
        let tot = if self.ind_on {
            coll + (((wi[0] + wi[1]) + (wi[2] + wi[3])) + (wi[4] + wi[5]))
        } else {
            coll
        };
        if tot > T::ZERO {
            let x = uc * tot;
            let ch = if self.ind_on {
                choose(
                    x,
                    &[wt[0], wt[1], wt[2], wi[0], wi[1], wi[2], wi[3], wi[4], wi[5]],
                )
            } else {
                // The GPU kernel's selection, kept literally (bit-identical twin).
                let mut ch = 2usize;
                if x < wt[0] + wt[1] {
                    ch = 1;
                }
                if x < wt[0] {
                    ch = 0;
                }
                if ch == 2 && wt[2] <= T::ZERO {
                    ch = 1;
                }
                if ch == 1 && wt[1] <= T::ZERO {
                    ch = 0;
                }
                ch
            };
            if ch < 3 {
                self.jump(w, ch as u32, win);
                (ur, true, None)
            } else {
                (ur, true, Some(self.jump_irrep(w, ch - 3, twin_of)))
            }
        } else {
            w.ua.re.copy_from_slice(&w.acc.re);
            w.ua.im.copy_from_slice(&w.acc.im);
            (ur, false, None)
        }
    }

    #[inline(always)]
    fn run_impl<'a>(
        &'a self,
        twin_of: &dyn Fn(u32) -> &'a Twin<T>,
        traj: u64,
        out: &mut [T],
        mut pm: Option<&mut [T]>,
        mut fidelity: Option<(&[Cx<T>], &mut [T])>,
        mut log: Option<&mut PhaseLog<T>>,
    ) -> RunStats {
        // The initial irrep is j = N/2: its 2j is N.
        let n_atoms = self.inp.two_j as usize;
        let npm = n_atoms + 1;
        let nsave = self.n_saves();
        assert_eq!(out.len(), nsave * RECORD_LEN, "record buffer length");
        if let Some((r, f)) = &fidelity {
            assert_eq!((r.len(), f.len()), (npm, nsave), "fidelity lengths");
        }
        let mut w = self.work();
        let mut rng = PhiloxStream::new(self.inp.seed, traj);
        for (i, z) in self.inp.psi0.iter().enumerate() {
            w.ua.re[i + 1] = z.re;
            w.ua.im[i + 1] = z.im;
        }
        // The twin of the current irrep: changes only at an irrep-changing jump.
        let mut tw: &'a Twin<T> = self;
        let mut win = tw.all();
        let (mut g0, mut c) = tw.renorm_from_u(&mut w, win);
        win = tw.slide(&mut w, win);
        let mut b = T::draw2(&mut rng)[0];
        let mut jumps = 0u32;
        let mut stats = RunStats::default();
        tw.record(&mut w, &mut out[..RECORD_LEN], jumps, win);
        tw.save_hooks(&w, 0, &mut pm, &mut fidelity, n_atoms);
        self.classify(&mut log, 0, out);
        for (iv, &[set, steps]) in self.inp.intervals.iter().enumerate() {
            let set = set as usize;
            let h = self.inp.rp[HEAD_LEN + 2 * set];
            let q = self.inp.rp[HEAD_LEN + 2 * set + 1];
            for _ in 0..steps {
                let mut rq = FULL;
                loop {
                    stats.steps += 1;
                    stats.levels += (win.b - win.a) as u64;
                    let (tau, full) = if rq == FULL {
                        (h, Some(set))
                    } else {
                        tw.partial_factors(&mut w, set, rq, win);
                        (T::from_u32(rq) * q, None)
                    };
                    tw.lawson(&mut w, full, tau, c, win);
                    let [f1, g1, v1] = tw.apply_v_sums(&w.acc, &mut w.kva, &mut w.f, win);
                    if f1 > b {
                        let inv = T::ONE / f1.sqrt();
                        let in2 = inv * inv;
                        tw.set_psi(&mut w, true, inv, win);
                        g0 = g1 * in2;
                        c = v1 * in2;
                        b = b * (T::ONE / f1);
                        win = tw.slide(&mut w, win);
                        break;
                    }
                    // The norm reaches r inside this step: locate the quantum, redo the step
                    // up to it (acc is then the state there), jump.
                    let l = tw.crossing(rq, tau, g0, f1, g1, b);
                    if l < rq {
                        tw.partial_factors(&mut w, set, l, win);
                        tw.lawson(&mut w, None, T::from_u32(l) * q, c, win);
                    }
                    let (ur, jumped, to) = tw.jump_at(&mut w, &mut rng, win, twin_of);
                    jumps += u32::from(jumped);
                    if let Some(to) = to {
                        tw = to;
                        win = tw.all();
                    }
                    (g0, c) = tw.renorm_from_u(&mut w, win);
                    win = tw.slide(&mut w, win);
                    b = ur;
                    rq -= l;
                    if rq == 0 {
                        break;
                    }
                }
            }
            let rec = &mut out[(iv + 1) * RECORD_LEN..(iv + 2) * RECORD_LEN];
            tw.record(&mut w, rec, jumps, win);
            tw.save_hooks(&w, iv + 1, &mut pm, &mut fidelity, n_atoms);
            self.classify(&mut log, iv + 1, out);
        }
        stats
    }
}

/// The channel of a jump with several candidate channels: the first k whose cumulative
/// weight exceeds `x = u * total`, among those with positive weight; if rounding leaves `x`
/// at or past the last cumulative sum, the last channel with positive weight.
#[inline(always)]
fn choose<T: Real>(x: T, weights: &[T]) -> usize {
    let mut cum = T::ZERO;
    let mut last = 0;
    for (k, &wk) in weights.iter().enumerate() {
        if wk > T::ZERO {
            cum = cum + wk;
            if x < cum {
                return k;
            }
            last = k;
        }
    }
    last
}

// Scheduled runs (time-dependent parameters): `Twin::run_sched` and the kernel's complex
// exponential, in their own file.
mod scheduled;
pub use scheduled::{SchedConsts, cexp, cexp_lanes};
