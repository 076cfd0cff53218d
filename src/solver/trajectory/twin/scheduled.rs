//! The twin under a protocol (time-dependent parameters; module doc of
//! [`crate::solver::trajectory::sched`]): `Twin::run_sched`, and the complex exponential
//! [`cexp`] that it shares, operation by operation, with `shaders/trajectory.wgsl` (`cexp`,
//! `sched_factors`), so that a scheduled trajectory on the GPU and here round alike.
//!
//! Every scheduled coefficient is evaluated as `a + b ds` in the working precision, with
//! `ds = (n + p4 2^-18) h` the time since the segment's start of the point `p4` quarter-quanta
//! into step `n` (a step is 2^16 quanta): the kernel evaluates the same expression from the
//! same rounded `a, b, h`, and integers below 2^24 are exact in f32.
//!
//! The factors of a step are computed a chunk of [`CHUNK`] levels at a time by
//! [`cexp_lanes`] (the exponentials are the bulk of a scheduled step's arithmetic: a Horner
//! polynomial of degree 16 per level and factor), inlined into the AVX2 build of the run.

use super::{CHUNK, Cv, Cx, PhaseLog, Real, RunStats, Twin, Win, cmul};
use crate::rng::PhiloxStream;
use crate::solver::trajectory::sched::{self, CEXP_DEG, SQUARINGS, Sched};
use crate::solver::trajectory::{FULL, RECORD_LEN};

/// The constants of [`cexp`] in T (`sched::cexp_constants`, rounded once).
pub struct SchedConsts;

impl SchedConsts {
    /// `[1/(2 pi), 2 pi hi, 2 pi lo, 1/0!, ..., 1/CEXP_DEG!]` in T.
    pub fn of<T: Real>() -> Vec<T> {
        sched::cexp_constants().into_iter().map(T::from_f64).collect()
    }
}

/// `exp(x + i y)` as the kernel's `cexp` computes it (twin, same operations in the same
/// order): the phase reduced by whole turns (`n = floor(y / 2 pi)`, `y - n hi - n lo`), the
/// argument halved until both parts are within 1/2 (at most [`SQUARINGS`] times), the Taylor
/// polynomial of degree [`CEXP_DEG`] in Horner form, then squared back. `k`:
/// [`SchedConsts::of`]. Accurate to a few ulp for `x <= 0` down to `-sched::MAX_DAMPING`.
#[inline(always)]
pub fn cexp<T: Real>(k: &[T], x: T, y: T) -> (T, T) {
    let n = (y * k[0]).floor();
    let y = (y - n * k[1]) - n * k[2];
    let half = T::HALF;
    let (mut wr, mut wi, mut s) = (x, y, 0u32);
    for _ in 0..SQUARINGS {
        if wr > half || wr < -half || wi > half || wi < -half {
            wr = wr * half;
            wi = wi * half;
            s += 1;
        }
    }
    let (mut pr, mut pi) = (k[3 + CEXP_DEG], T::ZERO);
    for j in (0..CEXP_DEG).rev() {
        let (ar, ai) = cmul(wr, wi, pr, pi);
        pr = k[3 + j] + ar;
        pi = ai;
    }
    for j in 0..SQUARINGS {
        if s > j {
            (pr, pi) = cmul(pr, pi, pr, pi);
        }
    }
    (pr, pi)
}

/// [`cexp`] of [`CHUNK`] levels at once: lane `l` gets exactly `cexp(k, x[l], y[l])`, into
/// `(or[l], oi[l])`. The same operations in the same order per lane, written as straight
/// passes over the lanes that the compiler vectorises: a halving or squaring that a lane does
/// not take is a select keeping its value, the halvings stop at the first pass where no lane
/// needs one (a lane within 1/2 stays within, so [`cexp`]'s later tests would all fail), and
/// the squarings stop after the most halvings of any lane. Test
/// `cexp_lanes_is_cexp_bit_for_bit`.
#[inline(always)]
pub fn cexp_lanes<T: Real>(k: &[T], x: &[T; CHUNK], y: &[T; CHUNK], or: &mut [T], oi: &mut [T]) {
    let half = T::HALF;
    let (or, oi) = (&mut or[..CHUNK], &mut oi[..CHUNK]);
    let mut wr = *x;
    let mut wi = [T::ZERO; CHUNK];
    for l in 0..CHUNK {
        let n = (y[l] * k[0]).floor();
        wi[l] = (y[l] - n * k[1]) - n * k[2];
    }
    // Halvings taken per lane, counted in T (exact small integers).
    let mut s = [T::ZERO; CHUNK];
    let mut passes = 0u32;
    while passes < SQUARINGS {
        let mut any = false;
        for l in 0..CHUNK {
            let big = (wr[l] > half) | (wr[l] < -half) | (wi[l] > half) | (wi[l] < -half);
            wr[l] = if big { wr[l] * half } else { wr[l] };
            wi[l] = if big { wi[l] * half } else { wi[l] };
            s[l] = if big { s[l] + T::ONE } else { s[l] };
            any |= big;
        }
        if !any {
            break;
        }
        passes += 1;
    }
    let mut pr = [k[3 + CEXP_DEG]; CHUNK];
    let mut pi = [T::ZERO; CHUNK];
    for j in (0..CEXP_DEG).rev() {
        let c = k[3 + j];
        for l in 0..CHUNK {
            let (ar, ai) = cmul(wr[l], wi[l], pr[l], pi[l]);
            pr[l] = c + ar;
            pi[l] = ai;
        }
    }
    for j in 0..passes {
        let jt = T::from_u32(j);
        for l in 0..CHUNK {
            let (qr, qi) = cmul(pr[l], pi[l], pr[l], pi[l]);
            let sq = s[l] > jt;
            pr[l] = if sq { qr } else { pr[l] };
            pi[l] = if sq { qi } else { pi[l] };
        }
    }
    or.copy_from_slice(&pr);
    oi.copy_from_slice(&pi);
}

/// `ds = (n + p4 2^-18) h`: the time since the segment's start of the point `p4`
/// quarter-quanta into step `n` (kernel: `seg_ds`).
#[inline(always)]
fn seg_ds<T: Real>(n: u32, p4: u32, h: T) -> T {
    let qq = T::from_f64(1.0 / (4.0 * FULL as f64));
    (T::from_u32(n) + T::from_u32(p4) * qq) * h
}

/// One segment's coefficients in one irrep, rounded to T (`sched::SegCoef`), with the
/// segment's step `h` and quantum `q = h 2^-16`.
/// The diagonal is kept per coefficient (`e_a, e_b, g_a, g_b`, each one vector over the
/// levels, zero on the padded levels up to `np`) for [`cexp_lanes`].
struct SegT<T> {
    diag: [Vec<T>; 4],
    /// The diagonal's slopes `e_b`, `g_b` are all zero (nothing on the diagonal scheduled):
    /// the two half-step factors `E_a`, `E_b` of any sub-step are then the same numbers.
    flat: bool,
    rates: [[T; 2]; 3],
    cm: [Cx<T>; 2],
    h: T,
    q: T,
}

impl<T: Real> SegT<T> {
    fn new(s: &Sched, si: usize, two_j: usize, np: usize) -> Self {
        let seg = &s.segments[si];
        let c = sched::seg_coef(s, seg, two_j);
        let f = T::from_f64;
        let diag = std::array::from_fn(|r| {
            let mut v: Vec<T> = c.diag.iter().map(|d| f(d[r])).collect();
            v.resize(np, T::ZERO);
            v
        });
        let flat = diag[1].iter().chain(&diag[3]).all(|&x| x == T::ZERO);
        SegT {
            diag,
            flat,
            rates: c.rates.map(|r| r.map(f)),
            cm: c.cm.map(|z| Cx::new(f(z.re), f(z.im))),
            h: f(seg.h),
            q: f(seg.h * (FULL as f64).recip()),
        }
    }
}

/// One irrep's coefficients as a scheduled trajectory sees them: a copy of the shared twin
/// whose stencil coefficients and channel weights follow the step, and whose `tab` holds the
/// three factors of a whole step (rows 0, 1, 2: `E(h)`, `E_a`, `E_b`; stamped `full`).
struct Local<T> {
    tw: Twin<T>,
    coef: Option<(usize, SegT<T>)>,
    step: Option<(usize, u32)>,
    full: Option<(usize, u32)>,
}

impl<T: Real> Twin<T> {
    /// A trajectory's own copy of this twin for a scheduled run (no table: three rows of
    /// factors).
    fn local(&self) -> Local<T> {
        let tw = Twin {
            inp: self.inp.clone_light(),
            np: self.np,
            cm: self.cm,
            cp: self.cp,
            third: self.third,
            sixth: self.sixth,
            m: self.m.clone(),
            m2: self.m2.clone(),
            jp: self.jp.clone(),
            jpm1: self.jpm1.clone(),
            jpp: self.jpp.clone(),
            wd: self.wd.clone(),
            wu: self.wu.clone(),
            wz: self.wz.clone(),
            gam: self.gam.clone(),
            ind_on: self.ind_on,
            wi: self.wi.clone(),
            ci: self.ci.clone(),
            pm: self.pm.clone(),
            jpmm: self.jpmm.clone(),
            tab: Cv::zeros(3 * self.np),
        };
        Local {
            tw,
            coef: None,
            step: None,
            full: None,
        }
    }
}

impl<T: Real> super::TwinInputs<T> {
    /// A copy without the (large) table and initial state.
    fn clone_light(&self) -> super::TwinInputs<T> {
        super::TwinInputs {
            n_levels: self.n_levels,
            two_j: self.two_j,
            lanes: self.lanes,
            seed: self.seed,
            rp: self.rp.clone(),
            table: Vec::new(),
            psi0: Vec::new(),
            intervals: self.intervals.clone(),
            ind: self.ind,
            max_events: self.max_events,
            window: self.window,
        }
    }
}

impl<T: Real> Local<T> {
    fn seg(&self) -> &SegT<T> {
        &self.coef.as_ref().expect("segment entered").1
    }

    /// Bring the coefficients to step `n` of segment `si`: the segment's coefficients, the
    /// rates at the step's midpoint (channel weights and gamma, as the kernel's `wdown`, `wup`,
    /// `wdeph`, `gam`), the stencil at its start.
    #[inline(always)]
    fn enter(&mut self, s: &Sched, si: usize, n: u32) {
        if self.step == Some((si, n)) {
            (self.tw.cm, self.tw.cp) = self.cm_at(s, si, n, 0);
            return;
        }
        if self.coef.as_ref().map(|c| c.0) != Some(si) {
            let (two_j, np) = (self.tw.inp.two_j as usize, self.tw.np);
            self.coef = Some((si, SegT::new(s, si, two_j, np)));
        }
        if s.rates {
            let c = self.seg();
            let d = seg_ds(n, 2 * FULL, c.h);
            let [g, wp, gz] = c.rates.map(|[a, b]| a + b * d);
            let tw = &mut self.tw;
            let jr = T::from_u32(tw.inp.two_j) * T::HALF;
            for i in 0..tw.inp.n_levels {
                let mm = tw.m[i];
                tw.wd[i] = g * ((jr + mm) * (jr - mm + T::ONE));
                tw.wu[i] = wp * ((jr - mm) * (jr + mm + T::ONE));
                tw.wz[i] = gz * (mm * mm);
                let c = (tw.wd[i] + tw.wu[i]) + tw.wz[i];
                tw.gam[i] = if tw.ind_on {
                    let wi = &tw.wi;
                    c + (((wi[0][i] + wi[1][i]) + (wi[2][i] + wi[3][i])) + (wi[4][i] + wi[5][i]))
                } else {
                    c
                };
            }
        }
        (self.tw.cm, self.tw.cp) = self.cm_at(s, si, n, 0);
        self.step = Some((si, n));
    }

    /// The stencil coefficients `(cm, cp)` at `p4` quarter-quanta into step `n` (kernel:
    /// `cm_at`); with `phi` scheduled (CPU only) from the model at that time in f64.
    #[inline(always)]
    fn cm_at(&self, s: &Sched, si: usize, n: u32, p4: u32) -> (Cx<T>, Cx<T>) {
        let c = if s.phase {
            let seg = &s.segments[si];
            let at = seg.t0 + 0.5 * seg.h * f64::from(seg.steps);
            let t = seg.t0 + (f64::from(n) + f64::from(p4) / (4.0 * FULL as f64)) * seg.h;
            let z = sched::drive_coefficient(&s.protocol.model_in(at, t));
            Cx::new(T::from_f64(z.re), T::from_f64(z.im))
        } else {
            let g = self.seg();
            let d = seg_ds(n, p4, g.h);
            Cx::new(g.cm[0].re + g.cm[1].re * d, g.cm[0].im + g.cm[1].im * d)
        };
        (c, Cx::new(c.re, -c.im))
    }

    /// The stencils at the midpoint and the end of the sub-step of `len` quanta from quantum
    /// `off` of step `n`.
    #[inline(always)]
    fn stencils(&self, s: &Sched, si: usize, n: u32, off: u32, len: u32) -> [(Cx<T>, Cx<T>); 2] {
        [
            self.cm_at(s, si, n, 4 * off + 2 * len),
            self.cm_at(s, si, n, 4 * off + 4 * len),
        ]
    }

    /// The three Lawson factors of the sub-step of `len` quanta (`tau`) from quantum `off` of
    /// step `n` (kernel: `sched_factors`): `E = exp(-i D(mid) tau)` at the midpoint,
    /// `E_a`, `E_b` of `tau/2` at the quarter points, into `(e2, e1, e3)` over the window.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn factors(&self, k: &[T], e: [&mut Cv<T>; 3], n: u32, off: u32, len: u32, tau: T, win: Win) {
        let [e2, e1, e3] = e;
        let out = [
            (&mut e2.re[..], &mut e2.im[..]),
            (&mut e1.re[..], &mut e1.im[..]),
            (&mut e3.re[..], &mut e3.im[..]),
        ];
        seg_factors(self.seg(), k, out, n, off, len, tau, win);
    }

    /// The factors of a whole step `n` into `tab` rows 0, 1, 2 (kept while they stay valid:
    /// within a segment when nothing on the diagonal is scheduled).
    #[inline(always)]
    fn full_factors(&mut self, s: &Sched, k: &[T], si: usize, n: u32) {
        let stamp = (si, if s.diag { n } else { 0 });
        if self.full == Some(stamp) {
            return;
        }
        let np = self.tw.np;
        let all = Win { a: 0, b: np };
        let g = &self.coef.as_ref().expect("segment entered").1;
        let (re, im) = (&mut self.tw.tab.re, &mut self.tw.tab.im);
        let (r0, rest) = re.split_at_mut(np);
        let (r1, r2) = rest.split_at_mut(np);
        let (i0, rest) = im.split_at_mut(np);
        let (i1, i2) = rest.split_at_mut(np);
        seg_factors(g, k, [(r0, i0), (r1, i1), (r2, i2)], n, 0, FULL, g.h, all);
        self.full = Some(stamp);
    }
}

/// The three factors of [`Local::factors`] from the segment's coefficients `g` into `out`
/// (real and imaginary parts indexed by level), a chunk of [`CHUNK`] levels at a time
/// ([`cexp_lanes`]; the window's edges are multiples of it).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn seg_factors<T: Real>(
    g: &SegT<T>,
    k: &[T],
    out: [(&mut [T], &mut [T]); 3],
    n: u32,
    off: u32,
    len: u32,
    tau: T,
    win: Win,
) {
    let th = tau * T::HALF;
    let at = [
        (seg_ds(n, 4 * off + 2 * len, g.h), tau),
        (seg_ds(n, 4 * off + len, g.h), th),
        (seg_ds(n, 4 * off + 3 * len, g.h), th),
    ];
    let [ea, eb, ga, gb] = &g.diag;
    let hi = win.b.min(ea.len());
    let row = |(vr, vi): (&mut [T], &mut [T]), (d, tt): (T, T)| {
        for c in (win.a..hi).step_by(CHUNK) {
            let (mut x, mut y) = ([T::ZERO; CHUNK], [T::ZERO; CHUNK]);
            let (ea, eb) = (&ea[c..c + CHUNK], &eb[c..c + CHUNK]);
            let (ga, gb) = (&ga[c..c + CHUNK], &gb[c..c + CHUNK]);
            for l in 0..CHUNK {
                let en = ea[l] + eb[l] * d;
                let gh = ga[l] + gb[l] * d;
                x[l] = -(gh * tt);
                y[l] = -(en * tt);
            }
            cexp_lanes(k, &x, &y, &mut vr[c..c + CHUNK], &mut vi[c..c + CHUNK]);
        }
    };
    let [o2, (r1, i1), (r3, i3)] = out;
    row(o2, at[0]);
    row((&mut *r1, &mut *i1), at[1]);
    if g.flat {
        // E_b = E_a exactly: with zero slopes `en`, `gh` do not depend on `d` (`b d` is the
        // same zero at both quarter points), and both take tau/2: the kernel's third
        // exponential is bit for bit its second.
        r3[win.a..hi].copy_from_slice(&r1[win.a..hi]);
        i3[win.a..hi].copy_from_slice(&i1[win.a..hi]);
    } else {
        row((r3, i3), at[2]);
    }
}

/// The irrep copies of one scheduled trajectory, by `(N - 2j)/2`, made on first entry.
struct Locals<T>(Vec<Option<Local<T>>>);

impl<T: Real> Locals<T> {
    fn entry(&mut self, n_atoms: u32, from: &Twin<T>) -> usize {
        let ji = ((n_atoms - from.inp.two_j) / 2) as usize;
        if self.0[ji].is_none() {
            self.0[ji] = Some(from.local());
        }
        ji
    }

    fn get(&mut self, ji: usize) -> &mut Local<T> {
        self.0[ji].as_mut().expect("entered")
    }
}

impl<T: Real> Twin<T> {
    /// As [`Twin::run_with`] under the schedule `s` (module doc of
    /// [`crate::solver::trajectory::sched`]): the trajectory's steps follow `s.segments`;
    /// records at the segments that end on a save time.
    #[allow(clippy::too_many_arguments)]
    pub fn run_sched<'a>(
        &'a self,
        s: &Sched,
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
            return unsafe { self.run_sched_avx2(s, twin_of, traj, out, pm, fidelity, log) };
        }
        self.run_sched_impl(s, twin_of, traj, out, pm, fidelity, log)
    }

    /// [`Twin::run_sched_impl`] compiled with AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    fn run_sched_avx2<'a>(
        &'a self,
        s: &Sched,
        twin_of: &dyn Fn(u32) -> &'a Twin<T>,
        traj: u64,
        out: &mut [T],
        pm: Option<&mut [T]>,
        fidelity: Option<(&[Cx<T>], &mut [T])>,
        log: Option<&mut PhaseLog<T>>,
    ) -> RunStats {
        self.run_sched_impl(s, twin_of, traj, out, pm, fidelity, log)
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn run_sched_impl<'a>(
        &'a self,
        s: &Sched,
        twin_of: &dyn Fn(u32) -> &'a Twin<T>,
        traj: u64,
        out: &mut [T],
        mut pm: Option<&mut [T]>,
        mut fidelity: Option<(&[Cx<T>], &mut [T])>,
        mut log: Option<&mut PhaseLog<T>>,
    ) -> RunStats {
        let n_atoms = self.inp.two_j;
        assert_eq!(out.len(), self.n_saves() * RECORD_LEN, "record buffer length");
        let k = SchedConsts::of::<T>();
        let mut w = self.work();
        let mut rng = PhiloxStream::new(self.inp.seed, traj);
        for (i, z) in self.inp.psi0.iter().enumerate() {
            w.ua.re[i + 1] = z.re;
            w.ua.im[i + 1] = z.im;
        }
        // Save 0 with the base model's stencil (the kernel's start from rp); every step then
        // brings the coefficients to its own time.
        let mut locals = Locals((0..=n_atoms / 2).map(|_| None).collect());
        let mut cur = locals.entry(n_atoms, self);
        let mut win = self.all();
        let (mut g0, mut c) = self.renorm_from_u(&mut w, win);
        win = self.slide(&mut w, win);
        self.record(&mut w, &mut out[..RECORD_LEN], 0, win);
        self.save_hooks(&w, 0, &mut pm, &mut fidelity, n_atoms as usize);
        self.classify(&mut log, 0, out);
        let mut b = T::draw2(&mut rng)[0];
        let mut jumps = 0u32;
        let mut stats = RunStats::default();
        for (si, seg) in s.segments.iter().enumerate() {
            for n in 0..seg.steps {
                let lo = locals.get(cur);
                lo.enter(s, si, n);
                if s.drive || s.rates {
                    // k1 = -i (V - c) psi and <Gamma_op> with this step's coefficients
                    // (kernel: `restencil`).
                    let [_, g, v] = lo.tw.apply_v_sums(&w.psi, &mut w.kvp, &mut w.f, win);
                    (g0, c) = (g, v);
                }
                let mut rq = FULL;
                loop {
                    let lo = locals.get(cur);
                    let off = FULL - rq;
                    stats.steps += 1;
                    stats.levels += (win.b - win.a) as u64;
                    let tau = if rq == FULL {
                        lo.full_factors(s, &k, si, n);
                        lo.seg().h
                    } else {
                        let tau = T::from_u32(rq) * lo.seg().q;
                        lo.factors(&k, [&mut w.e2, &mut w.e1, &mut w.e3], n, off, rq, tau, win);
                        tau
                    };
                    let tv = lo.stencils(s, si, n, off, rq);
                    let full = (rq == FULL).then_some(0);
                    lo.tw.lawson_t(&mut w, full, tau, c, win, Some(tv));
                    let [f1, g1, v1] = lo.tw.apply_v_sums(&w.acc, &mut w.kva, &mut w.f, win);
                    if f1 > b {
                        let tw = &lo.tw;
                        let inv = T::ONE / f1.sqrt();
                        tw.set_psi(&mut w, true, inv, win);
                        g0 = g1 * (inv * inv);
                        c = v1 * (inv * inv);
                        b = b * (T::ONE / f1);
                        win = tw.slide(&mut w, win);
                        break;
                    }
                    let l = lo.tw.crossing(rq, tau, g0, f1, g1, b);
                    if l < rq {
                        let tau = T::from_u32(l) * lo.seg().q;
                        lo.factors(&k, [&mut w.e2, &mut w.e1, &mut w.e3], n, off, l, tau, win);
                        let tv = lo.stencils(s, si, n, off, l);
                        lo.tw.lawson_t(&mut w, None, tau, c, win, Some(tv));
                    }
                    let (ur, jumped, to) = lo.tw.jump_at(&mut w, &mut rng, win, twin_of);
                    jumps += u32::from(jumped);
                    if let Some(to) = to {
                        cur = locals.entry(n_atoms, to);
                        win = to.all();
                    }
                    let lo = locals.get(cur);
                    lo.enter(s, si, n);
                    // V at the jump time for the next sub-step's k1.
                    (lo.tw.cm, lo.tw.cp) = lo.cm_at(s, si, n, 4 * (off + l));
                    (g0, c) = lo.tw.renorm_from_u(&mut w, win);
                    win = lo.tw.slide(&mut w, win);
                    b = ur;
                    rq -= l;
                    if rq == 0 {
                        break;
                    }
                }
            }
            if let Some(sv) = seg.save {
                let tw = &locals.get(cur).tw;
                let rec = &mut out[sv * RECORD_LEN..(sv + 1) * RECORD_LEN];
                tw.record(&mut w, rec, jumps, win);
                tw.save_hooks(&w, sv, &mut pm, &mut fidelity, n_atoms as usize);
                self.classify(&mut log, sv, out);
            }
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs over the whole domain of the scheduled factors: damping exponents from 0 down to
    /// `-MAX_DAMPING` (every halving count up to SQUARINGS), phases of either sign up to 1e4
    /// turns, exact zeros, and lanes of very different sizes side by side in one chunk.
    fn inputs(seed: u64, count: usize) -> Vec<(f64, f64)> {
        let mut st = seed;
        let mut next = || {
            st = st
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (st >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..count)
            .map(|i| {
                let scale = 10f64.powf(-6.0 + 10.0 * next());
                let x = match i % 5 {
                    0 => 0.0,
                    1 => -next() * 0.5,
                    _ => -(scale * next()).min(sched::MAX_DAMPING),
                };
                let y = match i % 7 {
                    0 => 0.0,
                    _ => (next() - 0.5) * 2.0 * 10f64.powf(-3.0 + 8.0 * next()),
                };
                (x, y)
            })
            .collect()
    }

    fn check<T: Real>() {
        let k = SchedConsts::of::<T>();
        let v = inputs(7, 64 * CHUNK);
        for chunk in v.chunks(CHUNK) {
            let x: [T; CHUNK] = std::array::from_fn(|l| T::from_f64(chunk[l].0));
            let y: [T; CHUNK] = std::array::from_fn(|l| T::from_f64(chunk[l].1));
            let (mut or, mut oi) = ([T::ZERO; CHUNK], [T::ZERO; CHUNK]);
            cexp_lanes(&k, &x, &y, &mut or, &mut oi);
            for l in 0..CHUNK {
                let (r, i) = cexp(&k, x[l], y[l]);
                assert_eq!(
                    (bytemuck::bytes_of(&r), bytemuck::bytes_of(&i)),
                    (bytemuck::bytes_of(&or[l]), bytemuck::bytes_of(&oi[l])),
                    "lane {l}: cexp({:?}, {:?})",
                    x[l],
                    y[l]
                );
            }
        }
    }

    #[test]
    fn cexp_lanes_is_cexp_bit_for_bit() {
        check::<f32>();
        check::<f64>();
    }
}
