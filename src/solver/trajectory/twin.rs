//! The CPU twin of `shaders/trajectory.wgsl`: one trajectory, generic over the working
//! precision ([`Real`]: f32 or f64), with the kernel's arithmetic written out operation by
//! operation in the kernel's order.
//!
//! Every per-level formula here has a WGSL line that evaluates the same expression tree
//! (same operands, same association, no fused multiply-adds), and every sum over levels is
//! taken in the kernel's order: lane `l` of a workgroup of `lanes` invocations adds the levels
//! `l, l + lanes, l + 2 lanes, ...` in that order into a zero, then the lanes are combined by
//! the pairwise tree `p[l] += p[l + s]` for `s = lanes/2, lanes/4, ..., 1` ([`Twin::reduce`];
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
    /// `max(self, 0)` as the kernel writes it (`select`-free: larger of the two).
    fn max0(self) -> Self {
        if self > Self::ZERO { self } else { Self::ZERO }
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
    #[inline(always)]
    fn zero() -> Self {
        Cx::new(T::ZERO, T::ZERO)
    }
    #[inline(always)]
    fn one() -> Self {
        Cx::new(T::ONE, T::ZERO)
    }
    /// `a + b` (WGSL vec2 add).
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        Cx::new(self.re + b.re, self.im + b.im)
    }
    /// `a - b`.
    #[inline(always)]
    fn sub(self, b: Self) -> Self {
        Cx::new(self.re - b.re, self.im - b.im)
    }
    /// `a * s` for a real s.
    #[inline(always)]
    fn scale(self, s: T) -> Self {
        Cx::new(self.re * s, self.im * s)
    }
    /// WGSL `cmul`: `(a.x b.x - a.y b.y, a.x b.y + a.y b.x)`.
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        Cx::new(self.re * b.re - self.im * b.im, self.re * b.im + self.im * b.re)
    }
    /// WGSL `mneg_i`: `-i z = (z.y, -z.x)`.
    #[inline(always)]
    fn mneg_i(self) -> Self {
        Cx::new(self.im, -self.re)
    }
    /// `a.x a.x + a.y a.y`.
    #[inline(always)]
    fn norm2(self) -> T {
        self.re * self.re + self.im * self.im
    }
    /// `Re(conj(a) b) = a.x b.x + a.y b.y`.
    #[inline(always)]
    fn re_dot(self, b: Self) -> T {
        self.re * b.re + self.im * b.im
    }
    /// `a conj(b) = (a.x b.x + a.y b.y, a.y b.x - a.x b.y)`.
    #[inline(always)]
    fn mul_conj(self, b: Self) -> Self {
        Cx::new(self.re * b.re + self.im * b.im, self.im * b.re - self.re * b.im)
    }
}

#[inline(always)]
fn add4<T: Real>(a: [T; 4], b: [T; 4]) -> [T; 4] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]]
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
}

/// One trajectory engine: inputs plus per-level coefficients.
pub struct Twin<T> {
    inp: TwinInputs<T>,
    cm: Cx<T>,
    cp: Cx<T>,
    third: T,
    sixth: T,
    m: Vec<T>,
    /// jp_i = <i+1|J+|i>, jp_{i-1}, jp_{i+1}.
    jp: Vec<T>,
    jpm1: Vec<T>,
    jpp1: Vec<T>,
    /// Channel weights per level: Gamma jpjm, w jmjp, Gamma_phi m^2, and their sum gamma.
    wd: Vec<T>,
    wu: Vec<T>,
    wz: Vec<T>,
    gam: Vec<T>,
    /// jpjm + jmjp (for <Jx^2> + <Jy^2>), and m + (m + 1).
    pm: Vec<T>,
    mm: Vec<T>,
}

/// Per-trajectory work vectors (the kernel's private vectors and its shared `u`).
struct Work<T> {
    psi: Vec<Cx<T>>,
    kvp: Vec<Cx<T>>,
    acc: Vec<Cx<T>>,
    kt: Vec<Cx<T>>,
    kva: Vec<Cx<T>>,
    e1: Vec<Cx<T>>,
    e2: Vec<Cx<T>>,
    u: Vec<Cx<T>>,
    red: Vec<[T; 4]>,
}

impl<T: Real> Twin<T> {
    pub fn new(inp: TwinInputs<T>) -> Self {
        let n = inp.n_levels;
        let jr = T::from_u32(inp.two_j) * T::HALF;
        let jp_of = |m: T| ((jr - m) * (jr + m + T::ONE)).max0().sqrt();
        let rp = &inp.rp;
        let m: Vec<T> = (0..n).map(|i| T::from_u32(i as u32) - jr).collect();
        let jp = m.iter().map(|&m| jp_of(m)).collect();
        let jpm1 = m.iter().map(|&m| jp_of(m - T::ONE)).collect();
        let jpp1 = m.iter().map(|&m| jp_of(m + T::ONE)).collect();
        let jpjm = |m: T| (jr + m) * (jr - m + T::ONE);
        let jmjp = |m: T| (jr - m) * (jr + m + T::ONE);
        let wd: Vec<T> = m.iter().map(|&m| rp[0] * jpjm(m)).collect();
        let wu: Vec<T> = m.iter().map(|&m| rp[1] * jmjp(m)).collect();
        let wz: Vec<T> = m.iter().map(|&m| rp[2] * (m * m)).collect();
        let gam = (0..n).map(|i| (wd[i] + wu[i]) + wz[i]).collect();
        let pm = m.iter().map(|&m| jpjm(m) + jmjp(m)).collect();
        let mm = m.iter().map(|&m| m + (m + T::ONE)).collect();
        Twin {
            cm: Cx::new(rp[3], rp[4]),
            cp: Cx::new(rp[5], rp[6]),
            third: rp[7],
            sixth: rp[8],
            inp,
            m,
            jp,
            jpm1,
            jpp1,
            wd,
            wu,
            wz,
            gam,
            pm,
            mm,
        }
    }

    /// Save points per trajectory (intervals + 1).
    pub fn n_saves(&self) -> usize {
        self.inp.intervals.len() + 1
    }

    fn work(&self) -> Work<T> {
        let z = vec![Cx::zero(); self.inp.n_levels];
        Work {
            psi: z.clone(),
            kvp: z.clone(),
            acc: z.clone(),
            kt: z.clone(),
            kva: z.clone(),
            e1: z.clone(),
            e2: z.clone(),
            u: z,
            red: vec![[T::ZERO; 4]; self.inp.lanes],
        }
    }

    /// Sum of `f(i)` over the levels in the kernel's order (module doc).
    #[inline]
    fn reduce(&self, red: &mut [[T; 4]], f: impl Fn(usize) -> [T; 4]) -> [T; 4] {
        let n = self.inp.n_levels;
        let lanes = red.len();
        for (l, slot) in red.iter_mut().enumerate() {
            let mut a = [T::ZERO; 4];
            let mut i = l;
            while i < n {
                a = add4(a, f(i));
                i += lanes;
            }
            *slot = a;
        }
        let mut s = lanes / 2;
        while s > 0 {
            for l in 0..s {
                red[l] = add4(red[l], red[l + s]);
            }
            s /= 2;
        }
        red[0]
    }

    /// (V u)_i = cm (jp_{i-1} u_{i-1}) + cp (jp_i u_{i+1}), neighbours outside the ladder 0.
    #[inline(always)]
    fn vapply(&self, u: &[Cx<T>], i: usize) -> Cx<T> {
        let n = self.inp.n_levels;
        let ul = if i > 0 { u[i - 1] } else { Cx::zero() };
        let ur = if i + 1 < n { u[i + 1] } else { Cx::zero() };
        let t1 = ul.scale(self.jpm1[i]);
        let t2 = ur.scale(self.jp[i]);
        self.cm.mul(t1).add(self.cp.mul(t2))
    }

    /// The Lawson factors exp(-i D tau) (e2) and exp(-i D tau/2) (e1) for `rq` quanta of
    /// step-size set `set`: straight from the table for a full step, else the product of the
    /// table entries of the set bits of `rq` (lowest bit first).
    fn factors(&self, w: &mut Work<T>, set: usize, rq: u32) {
        let n = self.inp.n_levels;
        let t = &self.inp.table;
        let base = set * TABLE_DEPTH;
        if rq == FULL {
            w.e2.copy_from_slice(&t[base * n..(base + 1) * n]);
            w.e1.copy_from_slice(&t[(base + 1) * n..(base + 2) * n]);
            return;
        }
        let qb = QUANTUM_BITS as usize;
        for i in 0..n {
            let mut e2 = Cx::one();
            let mut e1 = Cx::one();
            for p in 0..=qb {
                if (rq >> p) & 1 != 0 {
                    e2 = e2.mul(t[(base + qb - p) * n + i]);
                    e1 = e1.mul(t[(base + qb - p + 1) * n + i]);
                }
            }
            w.e2[i] = e2;
            w.e1[i] = e1;
        }
    }

    /// One Lawson (integrating-factor) RK4 step of size `tau` from the normalised `psi`
    /// (with `kvp` = V psi) into `acc`, the diagonal part exact through `e1`, `e2`; `c` is the
    /// energy shift <V> (module doc of [`super`]). Leaves `u` = the last stage input.
    fn lawson(&self, w: &mut Work<T>, tau: T, c: T) {
        let n = self.inp.n_levels;
        let h2 = tau * T::HALF;
        let h3 = tau * self.third;
        let h6 = tau * self.sixth;
        for i in 0..n {
            let ps = w.psi[i];
            let k1 = w.kvp[i].sub(ps.scale(c)).mneg_i();
            w.acc[i] = w.e2[i].mul(ps).add(w.e2[i].mul(k1).scale(h6));
            w.u[i] = w.e1[i].mul(ps).add(w.e1[i].mul(k1).scale(h2));
        }
        // k2
        for i in 0..n {
            w.kt[i] = self.vapply(&w.u, i).sub(w.u[i].scale(c)).mneg_i();
        }
        for i in 0..n {
            let k = w.kt[i];
            w.acc[i] = w.acc[i].add(w.e1[i].mul(k).scale(h3));
            w.u[i] = w.e1[i].mul(w.psi[i]).add(k.scale(h2));
        }
        // k3
        for i in 0..n {
            w.kt[i] = self.vapply(&w.u, i).sub(w.u[i].scale(c)).mneg_i();
        }
        for i in 0..n {
            let k = w.kt[i];
            w.acc[i] = w.acc[i].add(w.e1[i].mul(k).scale(h3));
            w.u[i] = w.e2[i].mul(w.psi[i]).add(w.e1[i].mul(k).scale(tau));
        }
        // k4
        for i in 0..n {
            w.kt[i] = self.vapply(&w.u, i).sub(w.u[i].scale(c)).mneg_i();
        }
        for i in 0..n {
            w.acc[i] = w.acc[i].add(w.kt[i].scale(h6));
        }
    }

    /// u = acc, kva = V acc, and the sums (|acc|^2, acc^dag Gamma acc, Re acc^dag V acc).
    fn end_of_step(&self, w: &mut Work<T>) -> [T; 4] {
        let n = self.inp.n_levels;
        w.u.copy_from_slice(&w.acc);
        for i in 0..n {
            w.kva[i] = self.vapply(&w.u, i);
        }
        let (acc, kva) = (&w.acc, &w.kva);
        self.reduce(&mut w.red, |i| {
            let a2 = acc[i].norm2();
            [a2, self.gam[i] * a2, acc[i].re_dot(kva[i]), T::ZERO]
        })
    }

    /// psi = u / |u|, kvp = V psi; returns (<Gamma>, <V>) of psi.
    fn renorm_from_u(&self, w: &mut Work<T>) -> (T, T) {
        let n = self.inp.n_levels;
        for i in 0..n {
            w.kt[i] = self.vapply(&w.u, i);
        }
        let (u, kt) = (&w.u, &w.kt);
        let s = self.reduce(&mut w.red, |i| {
            let a2 = u[i].norm2();
            [a2, self.gam[i] * a2, u[i].re_dot(kt[i]), T::ZERO]
        });
        let inv = T::ONE / s[0].sqrt();
        let in2 = inv * inv;
        for i in 0..n {
            w.psi[i] = w.u[i].scale(inv);
            w.kvp[i] = w.kt[i].scale(inv);
        }
        (s[1] * in2, s[2] * in2)
    }

    /// The ten stencil sums of `psi` (record layout in [`super::RECORD_LEN`]).
    fn record(&self, w: &mut Work<T>, out: &mut [T], jumps: u32) {
        let n = self.inp.n_levels;
        w.u.copy_from_slice(&w.psi);
        let u = &w.u;
        let r1 = self.reduce(&mut w.red, |i| {
            let a2 = u[i].norm2();
            [a2, self.m[i] * a2, (self.m[i] * self.m[i]) * a2, self.pm[i] * a2]
        });
        let r2 = self.reduce(&mut w.red, |i| {
            let p1 = if i + 1 < n {
                u[i].mul_conj(u[i + 1]).scale(self.jp[i])
            } else {
                Cx::zero()
            };
            let p2 = if i + 2 < n {
                u[i].mul_conj(u[i + 2]).scale(self.jp[i] * self.jpp1[i])
            } else {
                Cx::zero()
            };
            [p1.re, p1.im, p2.re, p2.im]
        });
        let r3 = self.reduce(&mut w.red, |i| {
            let x = if i + 1 < n {
                u[i].mul_conj(u[i + 1]).scale(self.jp[i] * self.mm[i])
            } else {
                Cx::zero()
            };
            [x.re, x.im, T::ZERO, T::ZERO]
        });
        out[..4].copy_from_slice(&r1);
        out[4..8].copy_from_slice(&r2);
        out[8] = r3[0];
        out[9] = r3[1];
        out[10] = T::from_u32(jumps);
        out[11] = T::ZERO;
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

    /// Run trajectory `traj` (global index) and write its `n_saves() * RECORD_LEN` record
    /// values into `out`.
    pub fn run(&self, traj: u64, out: &mut [T]) {
        let n = self.inp.n_levels;
        let nsave = self.n_saves();
        assert_eq!(out.len(), nsave * RECORD_LEN, "record buffer length");
        let mut w = self.work();
        let mut rng = PhiloxStream::new(self.inp.seed, traj);
        w.u.copy_from_slice(&self.inp.psi0);
        let (mut g0, mut c) = self.renorm_from_u(&mut w);
        let mut b = T::draw2(&mut rng)[0];
        let mut jumps = 0u32;
        self.record(&mut w, &mut out[..RECORD_LEN], jumps);
        for (iv, &[set, steps]) in self.inp.intervals.iter().enumerate() {
            let set = set as usize;
            let h = self.inp.rp[HEAD_LEN + 2 * set];
            let q = self.inp.rp[HEAD_LEN + 2 * set + 1];
            for _ in 0..steps {
                let mut rq = FULL;
                loop {
                    let tau = if rq == FULL { h } else { T::from_u32(rq) * q };
                    self.factors(&mut w, set, rq);
                    self.lawson(&mut w, tau, c);
                    let [f1, g1, v1, _] = self.end_of_step(&mut w);
                    if f1 > b {
                        let inv = T::ONE / f1.sqrt();
                        let in2 = inv * inv;
                        for i in 0..n {
                            w.psi[i] = w.acc[i].scale(inv);
                            w.kvp[i] = w.kva[i].scale(inv);
                        }
                        g0 = g1 * in2;
                        c = v1 * in2;
                        b = b * (T::ONE / f1);
                        break;
                    }
                    // The norm reaches r inside this step: locate the quantum, redo the step
                    // up to it (u = acc there), jump.
                    let l = self.crossing(rq, tau, g0, f1, g1, b);
                    if l < rq {
                        self.factors(&mut w, set, l);
                        self.lawson(&mut w, T::from_u32(l) * q, c);
                        self.end_of_step(&mut w);
                    }
                    let acc = &w.acc;
                    let wt = self.reduce(&mut w.red, |i| {
                        let a2 = acc[i].norm2();
                        [self.wd[i] * a2, self.wu[i] * a2, self.wz[i] * a2, T::ZERO]
                    });
                    let [uc, ur] = T::draw2(&mut rng);
                    let tot = (wt[0] + wt[1]) + wt[2];
                    if tot > T::ZERO {
                        let x = uc * tot;
                        let mut ch = 2u32;
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
                        for i in 0..n {
                            w.kt[i] = match ch {
                                0 => {
                                    if i + 1 < n {
                                        w.u[i + 1].scale(self.jp[i])
                                    } else {
                                        Cx::zero()
                                    }
                                }
                                1 => {
                                    if i > 0 {
                                        w.u[i - 1].scale(self.jpm1[i])
                                    } else {
                                        Cx::zero()
                                    }
                                }
                                _ => w.u[i].scale(self.m[i]),
                            };
                        }
                        w.u.copy_from_slice(&w.kt);
                        jumps += 1;
                    }
                    (g0, c) = self.renorm_from_u(&mut w);
                    b = ur;
                    rq -= l;
                    if rq == 0 {
                        break;
                    }
                }
            }
            self.record(
                &mut w,
                &mut out[(iv + 1) * RECORD_LEN..(iv + 2) * RECORD_LEN],
                jumps,
            );
        }
    }
}
