//! Batched integration of the closed cumulant equations over parameter points (CPU, rayon):
//! one 9-variable ODE system per point, f64, and per-point reductions on a fixed save grid.
//! This is the CPU twin of a compute kernel: everything a point does is a function of that
//! point alone ([`integrate_point`]: fixed-size arrays, no allocation, no closures), so a GPU
//! invocation per point can follow it line by line.
//!
//! # Scheme
//!
//! Adaptive Dormand-Prince 5(4) with exactly the tableau, error norm
//! (`sqrt(mean_i (e_i / (atol + rtol max(|y_i|, |ynew_i|)))^2)` over the nine components), PI
//! controller, rejection rule, Hairer starting step and clipping onto save times of
//! [`crate::solver::ode`] (its constants are shared). Chosen over a fixed step because the
//! cumulant dynamics are stiff only in bursts: the collective rate N Gamma sets the step
//! during the superradiant transient, the much slower single-atom rates afterwards, and a
//! fixed step bounded by the largest rate would spend most of its steps where nothing happens.
//! The step sequence depends only on the point (its parameters, initial state and tolerances),
//! never on the batch or the thread.
//!
//! # Schedules
//!
//! A scheduled point ([`integrate_point_pieces`]) carries its protocol as affine pieces of the
//! flat parameters ([`super::pieces`]): `par(t) = p0_k + p1_k (t - s_k)` on piece k. The step
//! control clips a step onto the next break exactly as onto a save time (the earlier of the
//! two; a break within [`super::pieces::snap`] of a save is taken at the save), stage i of a
//! step from t evaluates the right-hand side with the piece's parameters at
//! `tau = (t - s_k) + c_i h` (the system is no longer autonomous), and after a step lands on a
//! break the next piece's parameters are loaded and the first stage recomputed (the FSAL stage
//! of the step belongs to the old piece). Hairer's starting step evaluates its second
//! right-hand side at `tau = h0`. This is the scheme of `ode::integrate_real_pieces`, so each
//! point takes the steps of the single-point [`super::evolve_protocol`] and agrees with it to
//! rounding (`tests/schedule.rs`). A constant point runs the constant code: its results are
//! those of before schedules existed, bit for bit.
//!
//! # Save grid and reductions
//!
//! Saves at `t_k = t0 + k (t_end - t0)/(nsave - 1)`, k = 0..nsave-1 (the integrator lands on
//! each exactly). At every save the collective moments follow from the nine variables
//! ([`super::to_moments`]) and the point records:
//!
//! * the final values (the nine variables, <J>, xi^2, <J^2> at t_end);
//! * `xi2_min`: the minimum of xi^2 over saves with `t_k >= t_min`, and `t_xi2_min`, the first
//!   save time where it is attained (NaN when no save qualifies; infinite xi^2, |<J>| = 0, is
//!   never a minimum);
//! * `jz_late`: the mean of <Jz> over the saves with `t_k >= t_late` (the long-time inversion;
//!   it averages over an oscillating phase instead of reading one phase of it).
//!
//! Reductions see only the saves: the save spacing must resolve the dynamics (near
//! Upsilon_c the collective oscillation has period ~2 pi / Omega ~ 1/(N Gamma), and a coarser
//! grid aliases it; the shipped phase-diagram scenarios save every 1e-4 / Gamma).
//!
//! # Cost and precision (measured; BENCHMARKS.md)
//!
//! A point costs ~1.5 N Gamma t_end step attempts (seed 002 model: ~9,000 at N = 2000 and
//! ~45,000 at N = 10^4 to t = 3/Gamma; time per attempt in BENCHMARKS.md): the collective
//! rates and the drive put eigenvalues of size ~N Gamma on the Jacobian, and in the oscillating
//! phase (near and above Upsilon_c, period ~1/(N Gamma)) the step must also resolve the
//! oscillation, so there it is bound by accuracy as much as by stability (rtol 1e-6 takes
//! 0.6-0.75x the attempts of 1e-8). That is why an implicit method does not pay here: a
//! Rosenbrock scheme (RODAS4, analytic Jacobian) was measured slower than this DP5 by an
//! earlier attempt (its numbers were lost with its branch; not re-measured). The CPU sweep
//! instead runs this same algorithm on eight points at once in SIMD lanes
//! ([`super::lanes`]: bit-identical results, ~3x the points per second).
//!
//! xi^2 comes from covariances such as
//! `<Jz^2> - <Jz>^2 = N/4 + N(N-1) v/4 - N^2 z^2/4`, a difference of terms ~N^2/4 whose result
//! is ~N xi^2/4: an absolute error e in the moments becomes ~N^2 e/4 in the variance, so at
//! N = 10^4 the moments need e ~ 1e-8 for 1e-3 relative accuracy in xi^2 (hence atol 1e-10),
//! and an f32 twin (rounding 6e-8) is limited to ~1 % in xi^2 there.

use super::pieces::Pieces;
use super::{NPAR, NVAR, Real, rhs, to_moments};
use crate::solver::ode::{
    A21, A31, A32, A41, A42, A43, A51, A52, A53, A54, A61, A62, A63, A64, A65, A71, A73, A74, A75, A76, BETA,
    C2, C3, C4, C5, E1, E3, E4, E5, E6, E7, FAC_MIN, SAFE, controller,
};
use rayon::prelude::*;
use serde::Serialize;

/// Tolerances and step limit of the per-point integrator.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BatchOptions {
    /// Relative tolerance per component.
    pub rtol: f64,
    /// Absolute tolerance per component (the variables are O(1) moments of Pauli operators).
    pub atol: f64,
    /// Step attempts (accepted + rejected) allowed per point.
    pub max_steps: u64,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            rtol: 1e-8,
            atol: 1e-10,
            max_steps: 10_000_000,
        }
    }
}

/// The save grid and the windows of the reductions (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SaveGrid {
    pub t0: f64,
    pub t_end: f64,
    /// Number of saves (>= 2), both ends included.
    pub nsave: usize,
    /// xi^2 minimum over saves with t >= t_min.
    pub t_min: f64,
    /// <Jz> averaged over saves with t >= t_late.
    pub t_late: f64,
}

impl SaveGrid {
    /// The k-th save time.
    pub fn time(&self, k: usize) -> f64 {
        if k + 1 == self.nsave {
            self.t_end
        } else {
            self.t0 + (self.t_end - self.t0) * k as f64 / (self.nsave - 1) as f64
        }
    }
}

/// How a point's integration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[repr(u32)]
pub enum Status {
    Ok = 0,
    /// The step size fell below 16 eps |t|.
    StepSizeTooSmall = 1,
    /// More than `max_steps` attempts.
    TooManySteps = 2,
    /// A non-finite state or derivative.
    NonFinite = 3,
}

/// Per-point results (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PointResult {
    pub status: Status,
    /// Time reached (t_end when `status` is Ok).
    pub t_reached: f64,
    /// The nine variables at t_end (at `t_reached` on failure).
    pub y: [f64; NVAR],
    /// <Jx>, <Jy>, <Jz> at t_end.
    pub mean: [f64; 3],
    /// xi^2 at t_end.
    pub xi2: f64,
    /// <J^2> at t_end.
    pub j2: f64,
    pub xi2_min: f64,
    pub t_xi2_min: f64,
    pub jz_late: f64,
    pub steps: u64,
    pub rejected: u64,
}

/// Running reductions over the save grid.
struct Reduce {
    xi2_min: f64,
    t_xi2_min: f64,
    jz_sum: f64,
    jz_count: u64,
}

impl Reduce {
    fn save(&mut self, n: usize, grid: &SaveGrid, t: f64, y: &[f64; NVAR]) {
        let m = to_moments(n, y);
        if t >= grid.t_min {
            let x = m.xi2();
            if x < self.xi2_min {
                self.xi2_min = x;
                self.t_xi2_min = t;
            }
        }
        if t >= grid.t_late {
            self.jz_sum += m.mean[2];
            self.jz_count += 1;
        }
    }
}

/// y_out = y + sum_j a_j k_j over the nine components.
#[inline(always)]
fn combo<T: Real, const M: usize>(out: &mut [T; NVAR], y: &[T; NVAR], a: [T; M], ks: [&[T; NVAR]; M]) {
    for i in 0..NVAR {
        let mut acc = y[i];
        for j in 0..M {
            acc = acc + a[j] * ks[j][i];
        }
        out[i] = acc;
    }
}

fn all_finite(v: &[f64; NVAR]) -> bool {
    v.iter().all(|x| x.is_finite())
}

/// The step control of one point: everything the integrator carries between step attempts
/// except the state and the stages (time, step proposal, PI memory, save index, counters,
/// reductions, status). [`integrate_point`] and the lane integrator ([`super::lanes`]) both
/// drive their points through it, so their control cannot drift apart: they differ only in
/// where y and the stages are stored.
pub(crate) struct Control {
    n: usize,
    red: Reduce,
    t: f64,
    span: f64,
    /// The controller's proposal (not clipped onto a save).
    h: f64,
    /// The step of the current attempt (`h` clipped onto the next save).
    pub(crate) hs: f64,
    clipped: bool,
    target: f64,
    err_old: f64,
    last_rejected: bool,
    /// Index of the next save.
    next: usize,
    steps: u64,
    rejected: u64,
    attempts: u64,
    status: Status,
    /// The current piece of a scheduled point (the breaks passed; 0 for a constant one).
    pub(crate) piece: usize,
    /// The current attempt is clipped onto the next break (not only a save).
    to_break: bool,
    /// The last accepted step landed on a break: the caller switches to the next piece.
    new_piece: bool,
}

impl Control {
    /// Start a point at `grid.t0` from `y`: sets `k[0] = f(y)`, takes the first save and picks
    /// Hairer's starting step (`k[1]` and `ytmp` are scratch). `rate`: the first piece's
    /// parameter rates of a scheduled point (its second evaluation is at t0 + h0).
    pub(crate) fn start(
        par: &[f64; NPAR],
        rate: Option<&[f64; NPAR]>,
        y: &[f64; NVAR],
        k: &mut [[f64; NVAR]; 7],
        ytmp: &mut [f64; NVAR],
        grid: &SaveGrid,
        o: &BatchOptions,
    ) -> Control {
        let span = grid.t_end - grid.t0;
        let mut c = Control {
            n: par[0] as usize,
            red: Reduce {
                xi2_min: f64::INFINITY,
                t_xi2_min: f64::NAN,
                jz_sum: 0.0,
                jz_count: 0,
            },
            t: grid.t0,
            span,
            h: span,
            hs: 0.0,
            clipped: false,
            target: grid.t0,
            err_old: 1e-4,
            last_rejected: false,
            next: 1,
            steps: 0,
            rejected: 0,
            attempts: 0,
            status: Status::Ok,
            piece: 0,
            to_break: false,
            new_piece: false,
        };
        rhs(par, y, &mut k[0]);
        c.red.save(c.n, grid, c.t, y);
        if !all_finite(y) || !all_finite(&k[0]) {
            c.status = Status::NonFinite;
        } else {
            c.h = initial_step(par, rate, y, k, ytmp, span, o);
        }
        c
    }

    /// Prepare the next attempt: `hs` is the proposal clipped onto the next save or the next
    /// of the point's `breaks` (empty for a constant point), whichever comes first. False when
    /// the point has ended (every save taken, or a failure now in the status).
    pub(crate) fn propose(&mut self, grid: &SaveGrid, o: &BatchOptions, breaks: &[f64]) -> bool {
        if self.status != Status::Ok || self.next >= grid.nsave {
            return false;
        }
        self.target = grid.time(self.next);
        self.to_break = false;
        if let Some(&b) = breaks.get(self.piece) {
            // A break within rounding of the save is taken at the save (pieces::snap).
            let snap = super::pieces::snap(grid.t0, grid.t_end);
            if b - self.target <= snap {
                if b - self.target < -snap {
                    self.target = b;
                }
                self.to_break = true;
            }
        }
        let mut hs = self.h;
        self.clipped = self.t + 1.01 * hs >= self.target;
        if self.clipped {
            hs = self.target - self.t;
        }
        if hs <= 16.0 * f64::EPSILON * self.t.abs().max(self.span) {
            self.status = Status::StepSizeTooSmall;
            return false;
        }
        self.attempts += 1;
        if self.attempts > o.max_steps {
            self.status = Status::TooManySteps;
            return false;
        }
        self.hs = hs;
        true
    }

    /// Conclude the attempt of size `hs` from `y` to `ynew` with error norm `err`. True when
    /// accepted: the caller then sets y = ynew and k[0] = k[6] (FSAL); the saves the step
    /// reached are taken from `ynew` here.
    pub(crate) fn conclude(
        &mut self,
        err: f64,
        y: &[f64; NVAR],
        ynew: &[f64; NVAR],
        grid: &SaveGrid,
    ) -> bool {
        if err.is_finite() && err <= 1.0 {
            self.steps += 1;
            self.t = if self.clipped {
                self.target
            } else {
                self.t + self.hs
            };
            let fac = controller(err, self.err_old);
            self.err_old = err.max(1e-4);
            let mut h_new = self.hs / fac;
            if self.last_rejected {
                h_new = h_new.min(self.hs);
            }
            self.last_rejected = false;
            // After a clipped step resume from the unclipped proposal.
            self.h = if self.clipped { h_new.max(self.h) } else { h_new };
            if self.clipped && self.to_break {
                // On a break: the next piece's formula from here on.
                self.piece += 1;
                self.new_piece = true;
            }
            while self.next < grid.nsave && grid.time(self.next) <= self.t {
                self.red.save(self.n, grid, grid.time(self.next), ynew);
                self.next += 1;
            }
            true
        } else {
            self.rejected += 1;
            self.last_rejected = true;
            match rejected_step(err, self.hs, y, self.t, self.span) {
                Ok(h_next) => self.h = h_next,
                Err(failure) => self.status = failure,
            }
            false
        }
    }

    /// Whether the last accepted step landed on a break (then the caller loads the next
    /// piece's parameters and recomputes `k[0]` with them: the FSAL stage belongs to the old
    /// piece); clears the flag.
    pub(crate) fn take_new_piece(&mut self) -> bool {
        std::mem::take(&mut self.new_piece)
    }

    /// The time reached.
    pub(crate) fn t(&self) -> f64 {
        self.t
    }

    /// The point's result, `y` being its state at the time reached.
    pub(crate) fn result(&self, y: [f64; NVAR]) -> PointResult {
        point_result(
            self.n,
            self.status,
            self.t,
            y,
            &self.red,
            self.steps,
            self.rejected,
        )
    }
}

/// Integrate one point from `y0` at `grid.t0` over the save grid (module doc). Never panics;
/// a failure is reported in `status` with the results up to `t_reached`.
pub fn integrate_point(
    par: &[f64; NPAR],
    y0: &[f64; NVAR],
    grid: &SaveGrid,
    o: &BatchOptions,
) -> PointResult {
    run_point(par, None, y0, grid, o)
}

/// [`integrate_point`] for a scheduled point (module doc, "Schedules"): `pieces` on the
/// grid's span ([`Pieces::new`] with `grid.t0`, `grid.t_end`).
pub fn integrate_point_pieces(
    pieces: &Pieces,
    y0: &[f64; NVAR],
    grid: &SaveGrid,
    o: &BatchOptions,
) -> PointResult {
    run_point(&pieces.p0[0], Some(pieces), y0, grid, o)
}

/// The step loop of [`integrate_point`] (`pieces` None: `par` throughout) and
/// [`integrate_point_pieces`].
fn run_point(
    par: &[f64; NPAR],
    pieces: Option<&Pieces>,
    y0: &[f64; NVAR],
    grid: &SaveGrid,
    o: &BatchOptions,
) -> PointResult {
    let breaks = pieces.map_or(&[][..], Pieces::breaks);
    let mut par = *par;
    let mut y = *y0;
    let mut ynew = [0.0; NVAR];
    let mut ytmp = [0.0; NVAR];
    let mut k = [[0.0; NVAR]; 7];
    let rate = pieces.map(|p| &p.p1[0]);
    let mut ctl = Control::start(&par, rate, &y, &mut k, &mut ytmp, grid, o);
    while ctl.propose(grid, o, breaks) {
        match pieces {
            None => dp5_stages(&mut &par, &y, ctl.hs, &mut k, &mut ytmp, &mut ynew),
            Some(p) => {
                let tau0 = ctl.t() - p.starts[ctl.piece];
                let mut st = Ramp::new(&par, &p.p1[ctl.piece], tau0, ctl.hs);
                dp5_stages(&mut st, &y, ctl.hs, &mut k, &mut ytmp, &mut ynew);
            }
        }
        let err = error_norm(&y, &ynew, &k, ctl.hs, o);
        if ctl.conclude(err, &y, &ynew, grid) {
            y = ynew;
            k[0] = k[6];
            if let Some(p) = pieces
                && ctl.take_new_piece()
            {
                par = p.p0[ctl.piece];
                rhs(&par, &y, &mut k[0]);
            }
        }
    }
    ctl.result(y)
}

/// Hairer's starting step (as crate::solver::ode::initial_step), from `y` and `k[0] = f(y)`;
/// uses `k[1]` and `ytmp` as scratch. `rate`: a scheduled point's first-piece rates (the
/// second evaluation is at t0 + h0, on that piece's formula).
fn initial_step(
    par: &[f64; NPAR],
    rate: Option<&[f64; NPAR]>,
    y: &[f64; NVAR],
    k: &mut [[f64; NVAR]; 7],
    ytmp: &mut [f64; NVAR],
    span: f64,
    o: &BatchOptions,
) -> f64 {
    let sc = |v: f64| o.atol + o.rtol * v.abs();
    let rms = |f: &dyn Fn(usize) -> f64| ((0..NVAR).map(f).map(|x| x * x).sum::<f64>() / NVAR as f64).sqrt();
    let d0 = rms(&|i| y[i] / sc(y[i]));
    let d1 = rms(&|i| k[0][i] / sc(y[i]));
    let mut h0 = if d0 < 1e-5 || d1 < 1e-5 {
        1e-6
    } else {
        0.01 * d0 / d1
    };
    h0 = h0.min(span);
    combo(ytmp, y, [h0], [&k[0]]);
    let [k1, k2, ..] = k;
    match rate {
        None => rhs(par, ytmp, k2),
        Some(r) => rhs(Ramp::new(par, r, 0.0, h0).at(1.0), ytmp, k2),
    }
    let d2 = rms(&|i| (k2[i] - k1[i]) / sc(y[i])) / h0;
    let h1 = if d1.max(d2) <= 1e-15 {
        (h0 * 1e-3).max(1e-6)
    } else {
        (0.01 / d1.max(d2)).powf(0.2)
    };
    (100.0 * h0).min(h1).min(span)
}

/// The parameters of each stage of a step: constant (`&[T; NPAR]`: the system is autonomous,
/// the stage times are not needed) or a scheduled point's ([`Ramp`]). Static dispatch, so the
/// constant path compiles to the code it had before schedules (the sweep's hot loop).
pub(crate) trait StagePar<T: Real> {
    /// The parameters at `c hs` into the step.
    fn at(&mut self, c: f64) -> &[T; NPAR];
}

impl<T: Real> StagePar<T> for &[T; NPAR] {
    #[inline(always)]
    fn at(&mut self, _c: f64) -> &[T; NPAR] {
        self
    }
}

/// A scheduled point's stage parameters on its piece: `par + rate tau`, `tau = tau0 + hs c`
/// ([`super::pieces`]; tau0 the step's start after its piece's start).
pub(crate) struct Ramp<'a, T> {
    par: &'a [T; NPAR],
    rate: &'a [T; NPAR],
    tau0: T,
    hs: T,
    buf: [T; NPAR],
}

impl<'a, T: Real> Ramp<'a, T> {
    #[inline(always)]
    pub(crate) fn new(par: &'a [T; NPAR], rate: &'a [T; NPAR], tau0: T, hs: T) -> Self {
        Ramp {
            par,
            rate,
            tau0,
            hs,
            buf: *par,
        }
    }
}

impl<T: Real> StagePar<T> for Ramp<'_, T> {
    #[inline(always)]
    fn at(&mut self, c: f64) -> &[T; NPAR] {
        let tau = self.tau0 + self.hs * T::splat(c);
        for j in 0..NPAR {
            self.buf[j] = self.par[j] + self.rate[j] * tau;
        }
        &self.buf
    }
}

/// One DP5 step of size `hs` from `y` with `k[0] = f(y)`: the stages k2..k7 and the 5th-order
/// solution `ynew` (stages as in ode::Work::step), stage i with the parameters `st.at(c_i)`
/// ([`StagePar`]). Generic over [`Real`]: the lane integrator runs it on eight points at once,
/// each lane with its own `hs`.
#[inline(always)]
pub(crate) fn dp5_stages<T: Real, P: StagePar<T>>(
    st: &mut P,
    y: &[T; NVAR],
    hs: T,
    k: &mut [[T; NVAR]; 7],
    ytmp: &mut [T; NVAR],
    ynew: &mut [T; NVAR],
) {
    let a = |c: f64| hs * T::splat(c);
    let [k1, k2, k3, k4, k5, k6, k7] = k;
    combo(ytmp, y, [a(A21)], [k1]);
    rhs(st.at(C2), ytmp, k2);
    combo(ytmp, y, [a(A31), a(A32)], [k1, k2]);
    rhs(st.at(C3), ytmp, k3);
    combo(ytmp, y, [a(A41), a(A42), a(A43)], [k1, k2, k3]);
    rhs(st.at(C4), ytmp, k4);
    combo(ytmp, y, [a(A51), a(A52), a(A53), a(A54)], [k1, k2, k3, k4]);
    rhs(st.at(C5), ytmp, k5);
    combo(
        ytmp,
        y,
        [a(A61), a(A62), a(A63), a(A64), a(A65)],
        [k1, k2, k3, k4, k5],
    );
    rhs(st.at(1.0), ytmp, k6);
    combo(
        ynew,
        y,
        [a(A71), a(A73), a(A74), a(A75), a(A76)],
        [k1, k3, k4, k5, k6],
    );
    rhs(st.at(1.0), ynew, k7);
}

/// The error norm `sqrt(mean_i (e_i / (atol + rtol max(|y_i|, |ynew_i|)))^2)` of a step
/// (generic as [`dp5_stages`]).
#[inline(always)]
pub(crate) fn error_norm<T: Real>(
    y: &[T; NVAR],
    ynew: &[T; NVAR],
    k: &[[T; NVAR]; 7],
    hs: T,
    o: &BatchOptions,
) -> T {
    let c = T::splat;
    let e = [
        hs * c(E1),
        hs * c(E3),
        hs * c(E4),
        hs * c(E5),
        hs * c(E6),
        hs * c(E7),
    ];
    let (atol, rtol) = (c(o.atol), c(o.rtol));
    let mut sum = c(0.0);
    for i in 0..NVAR {
        let acc = e[0] * k[0][i]
            + e[1] * k[2][i]
            + e[2] * k[3][i]
            + e[3] * k[4][i]
            + e[4] * k[5][i]
            + e[5] * k[6][i];
        let q = acc / (atol + rtol * y[i].abs().max(ynew[i].abs()));
        sum = sum + q * q;
    }
    (sum / c(NVAR as f64)).sqrt()
}

/// After a rejected step of size `hs` with error `err`: the next step size, or the failure.
fn rejected_step(err: f64, hs: f64, y: &[f64; NVAR], t: f64, span: f64) -> Result<f64, Status> {
    let h = if !err.is_finite() {
        if !all_finite(y) {
            return Err(Status::NonFinite);
        }
        hs * 0.1
    } else {
        let fac11 = err.powf(0.2 - 0.75 * BETA);
        hs / (1.0 / FAC_MIN).min(fac11 / SAFE)
    };
    if h <= 16.0 * f64::EPSILON * t.abs().max(span) {
        return Err(if err.is_finite() {
            Status::StepSizeTooSmall
        } else {
            Status::NonFinite
        });
    }
    Ok(h)
}

/// The point's result from its final state and reductions.
fn point_result(
    n: usize,
    status: Status,
    t: f64,
    y: [f64; NVAR],
    red: &Reduce,
    steps: u64,
    rejected: u64,
) -> PointResult {
    let m = to_moments(n, &y);
    PointResult {
        status,
        t_reached: t,
        y,
        mean: m.mean,
        xi2: m.xi2(),
        j2: m.second[0][0] + m.second[1][1] + m.second[2][2],
        xi2_min: if red.xi2_min.is_finite() {
            red.xi2_min
        } else {
            f64::NAN
        },
        t_xi2_min: red.t_xi2_min,
        jz_late: if red.jz_count > 0 {
            red.jz_sum / red.jz_count as f64
        } else {
            f64::NAN
        },
        steps,
        rejected,
    }
}

/// Integrate every point (`pars[i]` from `y0s[i]`) in parallel; results in input order.
/// Panics if the two slices differ in length (a caller bug).
pub fn integrate_batch(
    pars: &[[f64; NPAR]],
    y0s: &[[f64; NVAR]],
    grid: &SaveGrid,
    o: &BatchOptions,
) -> Vec<PointResult> {
    assert_eq!(
        pars.len(),
        y0s.len(),
        "integrate_batch: one initial state per point"
    );
    pars.par_iter()
        .zip(y0s.par_iter())
        .with_min_len(16)
        .map(|(p, y0)| integrate_point(p, y0, grid, o))
        .collect()
}

/// [`integrate_batch`] for scheduled points: point `i` runs `pieces[i]` (module doc,
/// "Schedules"). Panics if the two slices differ in length (a caller bug).
pub fn integrate_batch_pieces(
    pieces: &[Pieces],
    y0s: &[[f64; NVAR]],
    grid: &SaveGrid,
    o: &BatchOptions,
) -> Vec<PointResult> {
    assert_eq!(
        pieces.len(),
        y0s.len(),
        "integrate_batch_pieces: one initial state per point"
    );
    pieces
        .par_iter()
        .zip(y0s.par_iter())
        .with_min_len(16)
        .map(|(p, y0)| integrate_point_pieces(p, y0, grid, o))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Model;
    use crate::solver::cumulant::{self, params};
    use crate::solver::ode::OdeOptions;
    use crate::state::pure;

    /// The batch follows `crate::solver::ode` step for step (same tableau, norm, controller,
    /// starting step and clipping), so each point equals `cumulant::evolve` with the same
    /// tolerances to rounding (1e-12 on O(1) moments), and its reductions equal those taken
    /// from the evolve saves (the same numbers, so exactly, but compared to 1e-12).
    #[test]
    fn batch_point_equals_single_evolution_and_reductions() {
        let grid = SaveGrid {
            t0: 0.0,
            t_end: 1.5,
            nsave: 31,
            t_min: 0.2,
            t_late: 1.0,
        };
        let o = BatchOptions {
            rtol: 1e-8,
            atol: 1e-10,
            max_steps: 1_000_000,
        };
        let models: Vec<Model> = (0..4)
            .map(|i| Model {
                n: 20 + 10 * i,
                drive: (0.5 + 0.15 * i as f64) * 5f64.sqrt() * (20 + 10 * i) as f64 / 2.0,
                chi: 1.0,
                gamma_coll: 1.0,
                gamma_down: 0.5 + i as f64,
                gamma_phi: 0.1 * i as f64,
                omega0: 0.3,
                phi: 0.2,
                ..Model::default()
            })
            .collect();
        let pars: Vec<_> = models.iter().map(params).collect();
        let y0s: Vec<_> = models
            .iter()
            .map(|m| {
                cumulant::from_pure(&pure::coherent(
                    m.n,
                    std::f64::consts::FRAC_PI_2,
                    std::f64::consts::PI,
                ))
            })
            .collect();
        let res = integrate_batch(&pars, &y0s, &grid, &o);
        let times: Vec<f64> = (0..grid.nsave).map(|k| grid.time(k)).collect();
        for (i, m) in models.iter().enumerate() {
            let r = &res[i];
            assert_eq!(r.status, Status::Ok);
            let mut saves = Vec::new();
            let opts = OdeOptions {
                rtol: o.rtol,
                atol: o.atol,
                ..OdeOptions::default()
            };
            let st = cumulant::evolve(m, &y0s[i], &times, &opts, &mut |_, t, y| saves.push((t, *y))).unwrap();
            assert_eq!(st.steps as u64, r.steps, "point {i}: step counts differ");
            let last = saves.last().unwrap().1;
            for (k, (a, b)) in last.iter().zip(&r.y).enumerate() {
                assert!((a - b).abs() < 1e-12, "point {i} var {k}");
            }
            let (mut xmin, mut tmin, mut jz, mut cnt) = (f64::INFINITY, f64::NAN, 0.0, 0);
            for (t, y) in &saves {
                let mm = to_moments(m.n, y);
                if *t >= grid.t_min && mm.xi2() < xmin {
                    xmin = mm.xi2();
                    tmin = *t;
                }
                if *t >= grid.t_late {
                    jz += mm.mean[2];
                    cnt += 1;
                }
            }
            assert!(
                (xmin - r.xi2_min).abs() < 1e-12 && tmin == r.t_xi2_min,
                "point {i} xi2 min"
            );
            assert!((jz / cnt as f64 - r.jz_late).abs() < 1e-9, "point {i} jz_late");
            assert_eq!(cnt, 11);
        }
    }
}
