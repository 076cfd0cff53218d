//! Adaptive explicit Runge-Kutta integration: Dormand-Prince 5(4) with FSAL, a PI step-size
//! controller and exact stepping onto the save times.
//!
//! The integrator works on a flat real vector (`[f64]`); [`integrate`] is the complex
//! (`[c64]`) front end that views each complex number as two reals, which is exact because
//! every operation of the method (linear combinations with real coefficients, the error norm)
//! is real-linear or acts component-wise. Solvers with their own real layout (the master
//! equation's split re/im planes) call [`integrate_real`] directly.
//!
//! Method (Hairer, Norsett & Wanner, *Solving ODEs I*, sec. II.5 and the code DOPRI5):
//!
//! * 7 stages, the 7th evaluated at the new solution and reused as the next step's first
//!   stage (FSAL), so 6 right-hand-side evaluations per step;
//! * the 4th-order embedded solution gives the local error
//!   `err = sqrt(mean_i (e_i / (atol + rtol max(|y_i|, |y_new,i|)))^2)` over the real components,
//!   a step is accepted when `err <= 1`;
//! * PI control `h_new = h / clamp(err^(0.2 - 0.75 beta) / err_old^beta / 0.9, 1/10, 5)`,
//!   beta = 0.04, no growth right after a rejection;
//! * the step is clipped to land exactly on each requested time (no interpolation: the saved
//!   state carries the full 5th-order accuracy); after a clipped step the controller resumes
//!   from the unclipped proposal.
//!
//! # Checkpoints
//!
//! A caller may wrap an integration in [`with_checkpoints`]: after a save (not the last) the
//! integrator asks [`Checkpoints::due`] and hands over a [`Resume`] (time, state, step
//! proposal, last error, counters); given a `Resume` at the start, it continues from there
//! instead of `times[0]`. The step sequence after a resume is the uninterrupted one, bit for
//! bit: the saved quantities are all the controller carries across an accepted step, and the
//! first stage f(t, y) is recomputed from the same (t, y). The hooks travel in a thread-local
//! slot so that the solvers between a task and this integrator need not know of them.
//!
//! Vector operations are fused per stage and split over rayon for long vectors, so a state of
//! 10^5 - 10^6 components (a density matrix at N = 400 - 1000) runs on every core.

use crate::error::SolverError;
use crate::model::Protocol;
use num_complex::Complex64 as c64;
use rayon::prelude::*;
use serde::Serialize;

/// Tolerances and limits of the adaptive integrator.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OdeOptions {
    /// Relative tolerance (per real component).
    pub rtol: f64,
    /// Absolute tolerance (per real component).
    pub atol: f64,
    /// Maximum number of step attempts (accepted + rejected) over the whole integration.
    pub max_steps: usize,
    /// First step size; `None` picks it from the right-hand side (Hairer's estimate).
    pub h0: Option<f64>,
}

impl Default for OdeOptions {
    fn default() -> Self {
        OdeOptions {
            rtol: 1e-8,
            atol: 1e-10,
            max_steps: 10_000_000,
            h0: None,
        }
    }
}

/// Work counters of one integration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OdeStats {
    /// Accepted steps.
    pub steps: usize,
    /// Rejected step attempts.
    pub rejected: usize,
    /// Right-hand-side evaluations.
    pub rhs_evals: usize,
}

// Dormand-Prince 5(4) tableau (Hairer's DOPRI5 constants).
pub(crate) const C2: f64 = 1.0 / 5.0;
pub(crate) const C3: f64 = 3.0 / 10.0;
pub(crate) const C4: f64 = 4.0 / 5.0;
pub(crate) const C5: f64 = 8.0 / 9.0;
pub(crate) const A21: f64 = 1.0 / 5.0;
pub(crate) const A31: f64 = 3.0 / 40.0;
pub(crate) const A32: f64 = 9.0 / 40.0;
pub(crate) const A41: f64 = 44.0 / 45.0;
pub(crate) const A42: f64 = -56.0 / 15.0;
pub(crate) const A43: f64 = 32.0 / 9.0;
pub(crate) const A51: f64 = 19372.0 / 6561.0;
pub(crate) const A52: f64 = -25360.0 / 2187.0;
pub(crate) const A53: f64 = 64448.0 / 6561.0;
pub(crate) const A54: f64 = -212.0 / 729.0;
pub(crate) const A61: f64 = 9017.0 / 3168.0;
pub(crate) const A62: f64 = -355.0 / 33.0;
pub(crate) const A63: f64 = 46732.0 / 5247.0;
pub(crate) const A64: f64 = 49.0 / 176.0;
pub(crate) const A65: f64 = -5103.0 / 18656.0;
pub(crate) const A71: f64 = 35.0 / 384.0;
pub(crate) const A73: f64 = 500.0 / 1113.0;
pub(crate) const A74: f64 = 125.0 / 192.0;
pub(crate) const A75: f64 = -2187.0 / 6784.0;
pub(crate) const A76: f64 = 11.0 / 84.0;
// e = b(5th order) - b(4th order)
pub(crate) const E1: f64 = 71.0 / 57600.0;
pub(crate) const E3: f64 = -71.0 / 16695.0;
pub(crate) const E4: f64 = 71.0 / 1920.0;
pub(crate) const E5: f64 = -17253.0 / 339200.0;
pub(crate) const E6: f64 = 22.0 / 525.0;
pub(crate) const E7: f64 = -1.0 / 40.0;

// Step-size controller (DOPRI5 defaults).
pub(crate) const SAFE: f64 = 0.9;
pub(crate) const FAC_MIN: f64 = 0.2; // a step may shrink h to at most FAC_MIN h ...
pub(crate) const FAC_MAX: f64 = 10.0; // ... and grow it to at most FAC_MAX h
pub(crate) const BETA: f64 = 0.04;

/// Components per rayon task; below `PAR_MIN` components everything runs on one thread.
const CHUNK: usize = 1 << 13;
const PAR_MIN: usize = 1 << 15;

/// Where an integration continues: the state after an accepted step that ended on the save
/// `next - 1`, with the controller's memory (module doc, "Checkpoints").
#[derive(Debug, Clone, PartialEq)]
pub struct Resume {
    /// The next save to reach.
    pub next: usize,
    pub t: f64,
    /// The controller's next step proposal, its last error, the attempts so far.
    pub h: f64,
    pub err_old: f64,
    pub attempts: usize,
    pub stats: OdeStats,
    /// The state in the integrator's own layout.
    pub y: Vec<f64>,
}

/// Checkpoint hooks of an integration (module doc, "Checkpoints").
pub trait Checkpoints {
    /// Continue from this state instead of `times[0]` (asked once, at the start).
    fn resume(&mut self) -> Option<Resume>;
    /// Is a snapshot wanted now? (Asked after each save but the last.)
    fn due(&mut self) -> bool;
    /// Keep this snapshot.
    fn save(&mut self, state: &Resume);
}

thread_local! {
    static HOOKS: std::cell::RefCell<Option<Box<dyn Checkpoints>>> = const { std::cell::RefCell::new(None) };
}

/// Run `f` with `hooks` as the checkpoints of the first integration it starts on this thread
/// (a solver's one outer integration; nested or later ones see none); returns `f`'s result
/// and the hooks.
pub fn with_checkpoints<R>(hooks: Box<dyn Checkpoints>, f: impl FnOnce() -> R) -> (R, Box<dyn Checkpoints>) {
    HOOKS.with(|h| *h.borrow_mut() = Some(hooks));
    let r = f();
    let hooks = HOOKS.with(|h| h.borrow_mut().take());
    (r, hooks.unwrap_or_else(|| Box::new(NoCheckpoints)))
}

struct NoCheckpoints;
impl Checkpoints for NoCheckpoints {
    fn resume(&mut self) -> Option<Resume> {
        None
    }
    fn due(&mut self) -> bool {
        false
    }
    fn save(&mut self, _: &Resume) {}
}

/// The hooks an integration took from [`with_checkpoints`], put back when it ends (however it
/// ends) so that the caller gets them back.
struct Hooks(Option<Box<dyn Checkpoints>>);

impl Hooks {
    fn take() -> Hooks {
        Hooks(HOOKS.with(|h| h.borrow_mut().take()))
    }

    /// The resume state, if it fits this integration (`n` components, `saves` save times).
    fn resume(&mut self, n: usize, saves: usize) -> Option<Resume> {
        let r = self.0.as_mut()?.resume()?;
        (r.y.len() == n && r.next > 0 && r.next < saves).then_some(r)
    }

    fn due(&mut self) -> bool {
        self.0.as_mut().is_some_and(|h| h.due())
    }

    fn save(&mut self, r: &Resume) {
        if let Some(h) = self.0.as_mut() {
            h.save(r);
        }
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            HOOKS.with(|slot| *slot.borrow_mut() = Some(h));
        }
    }
}

/// Integrate the complex system dy/dt = f(t, y) from `times[0]` (where `y0` is given) and call
/// `on_save(i, times[i], y(times[i]))` for every requested time, the first one with `y0`.
///
/// `times` must be finite and non-decreasing. `rhs(t, y, dydt)` writes f(t, y) into `dydt`.
pub fn integrate<F, S>(
    mut rhs: F,
    y0: &[c64],
    times: &[f64],
    opts: &OdeOptions,
    mut on_save: S,
) -> Result<OdeStats, SolverError>
where
    F: FnMut(f64, &[c64], &mut [c64]),
    S: FnMut(usize, f64, &[c64]),
{
    let y0r: &[f64] = bytemuck::cast_slice(y0);
    integrate_real(
        |t, y: &[f64], dy: &mut [f64]| rhs(t, bytemuck::cast_slice(y), bytemuck::cast_slice_mut(dy)),
        y0r,
        times,
        opts,
        |i, t, y: &[f64]| on_save(i, t, bytemuck::cast_slice(y)),
    )
}

/// [`integrate`] on a real state vector.
pub fn integrate_real<F, S>(
    mut rhs: F,
    y0: &[f64],
    times: &[f64],
    opts: &OdeOptions,
    on_save: S,
) -> Result<OdeStats, SolverError>
where
    F: FnMut(f64, &[f64], &mut [f64]),
    S: FnMut(usize, f64, &[f64]),
{
    integrate_real_pieces(|_, t, y, dy| rhs(t, y, dy), y0, times, &[], opts, on_save)
}

/// The breaks of `protocol` strictly inside the span of `times` (what
/// [`integrate_real_pieces`] lands on), a protocol with too many of them as an error of
/// `solver`.
pub fn protocol_breaks(
    protocol: &Protocol,
    times: &[f64],
    solver: &'static str,
) -> Result<Vec<f64>, SolverError> {
    let span = (
        times.first().copied().unwrap_or(0.0),
        times.last().copied().unwrap_or(0.0),
    );
    protocol
        .breaks(span.0, span.1)
        .map_err(|e| SolverError::Unsupported {
            solver,
            message: e.to_string(),
        })
}

/// [`integrate_real`] for a right-hand side that is smooth only between `breaks` (the kinks
/// and jumps of a time-dependent protocol, `model::schedule`): the steps land on every break,
/// and `rhs(at, t, y, dydt)` is told the piece by `at`, the time its piece started (the last
/// break <= the step's start, or `times[0]`), so that a step ending on a break still evaluates
/// its last stage with its own piece's formula. After a break the first stage is recomputed
/// with the new piece (the FSAL stage belongs to the old one). Breaks outside
/// `(times[0], t_end)` are ignored; `breaks` must be increasing.
pub fn integrate_real_pieces<F, S>(
    mut rhs: F,
    y0: &[f64],
    times: &[f64],
    breaks: &[f64],
    opts: &OdeOptions,
    mut on_save: S,
) -> Result<OdeStats, SolverError>
where
    F: FnMut(f64, f64, &[f64], &mut [f64]),
    S: FnMut(usize, f64, &[f64]),
{
    check_inputs(y0, times, opts)?;
    let mut hooks = Hooks::take();
    let mut stats = OdeStats::default();
    if times.is_empty() {
        return Ok(stats);
    }
    let n = y0.len();
    let t_end = times[times.len() - 1];
    let resume = hooks.resume(n, times.len());
    let mut t = resume.as_ref().map_or(times[0], |r| r.t);
    let mut ws = Work::new(resume.as_ref().map_or(y0, |r| &r.y));
    // The breaks still ahead, and the start of the current piece (`at` of the module doc).
    let breaks: Vec<f64> = breaks
        .iter()
        .copied()
        .filter(|&b| b > times[0] && b < t_end)
        .collect();
    // A break within rounding of a save time is that save's (saves t_end i/(n-1) and a break
    // at t_end/2 may differ in the last bit): one step onto both, not a sliver step after.
    let tiny = 64.0 * f64::EPSILON * times[0].abs().max(t_end.abs()).max(t_end - times[0]);
    let mut nb = breaks.partition_point(|&b| b <= t + tiny);
    let at = std::cell::Cell::new(if nb > 0 { breaks[nb - 1] } else { times[0] });
    let mut rhs = |t: f64, y: &[f64], dy: &mut [f64]| rhs(at.get(), t, y, dy);

    // On a resume this evaluation stands in for the FSAL stage of the step that ended at
    // `t` (the same f(t, y) for the time-independent right-hand sides integrated here).
    rhs(t, &ws.y, &mut ws.k[0]);
    if !all_finite(&ws.k[0]) {
        return Err(SolverError::NonFinite { t });
    }

    let mut next = 0; // index of the next time to save
    let span = t_end - times[0];
    let (mut h, mut err_old, mut attempts);
    if let Some(r) = resume {
        (next, h, err_old, attempts, stats) = (r.next, r.h, r.err_old, r.attempts, r.stats);
    } else {
        stats.rhs_evals += 1;
        while next < times.len() && times[next] <= t {
            on_save(next, times[next], &ws.y);
            next += 1;
        }
        if next == times.len() || n == 0 {
            // Nothing to integrate (all times equal t0, or an empty state).
            for (i, &ti) in times.iter().enumerate().skip(next) {
                on_save(i, ti, &ws.y);
            }
            return Ok(stats);
        }
        h = match opts.h0 {
            Some(h0) => h0.min(span),
            None => {
                let h = initial_step(&mut rhs, t, &mut ws, opts, span);
                stats.rhs_evals += 1;
                h
            }
        };
        err_old = 1e-4f64;
        attempts = 0usize;
    }
    let mut last_rejected = false;

    while next < times.len() {
        let target = match breaks.get(nb) {
            Some(&b) if b < times[next] - tiny => b,
            _ => times[next],
        };
        // Clip onto the save time; stretch slightly rather than leave a sliver.
        let mut hs = h;
        let clipped = t + 1.01 * hs >= target;
        if clipped {
            hs = target - t;
        }
        if hs <= 16.0 * f64::EPSILON * t.abs().max(span) {
            return Err(SolverError::StepSizeTooSmall { t, dt: hs });
        }
        if crate::interrupt::requested() {
            // SIGINT/SIGTERM: stop between steps; the saves so far are the caller's.
            return Err(SolverError::Interrupted { t });
        }
        attempts += 1;
        if attempts > opts.max_steps {
            return Err(SolverError::TooManySteps {
                t,
                max_steps: opts.max_steps,
            });
        }

        let err = ws.step(&mut rhs, t, hs, opts);
        stats.rhs_evals += 6;

        if err.is_finite() && err <= 1.0 {
            // Accept.
            stats.steps += 1;
            t = if clipped { target } else { t + hs };
            std::mem::swap(&mut ws.y, &mut ws.ynew);
            ws.k.swap(0, 6);
            let fac = controller(err, err_old);
            err_old = err.max(1e-4);
            let mut h_new = hs / fac;
            if last_rejected {
                h_new = h_new.min(hs);
            }
            last_rejected = false;
            // After a clipped step resume from the unclipped proposal.
            h = if clipped { h_new.max(h) } else { h_new };
            if nb < breaks.len() && t >= breaks[nb] - tiny {
                // Onto a break: the next piece's formula from here on (`at` is the break
                // itself, so that a save a rounding short of it picks the new piece).
                at.set(breaks[nb]);
                nb += 1;
                rhs(t, &ws.y, &mut ws.k[0]);
                stats.rhs_evals += 1;
            }
            let before = next;
            while next < times.len() && times[next] <= t {
                on_save(next, times[next], &ws.y);
                next += 1;
            }
            if next > before && next < times.len() && hooks.due() {
                hooks.save(&Resume {
                    next,
                    t,
                    h,
                    err_old,
                    attempts,
                    stats,
                    y: ws.y.clone(),
                });
            }
        } else {
            stats.rejected += 1;
            last_rejected = true;
            h = after_rejection(err, hs, t, span, &ws.y)?;
        }
    }
    Ok(stats)
}

/// The step after a rejected attempt of size `hs` with error `err` at `t`, or the error that
/// ends the integration (a step below rounding, or a state that stays non-finite).
fn after_rejection(err: f64, hs: f64, t: f64, span: f64, y: &[f64]) -> Result<f64, SolverError> {
    let h = if !err.is_finite() {
        // An overflow or NaN inside the stages: shrink hard; a state that stays
        // non-finite ends in StepSizeTooSmall or is reported here once h is tiny.
        if !all_finite(y) {
            return Err(SolverError::NonFinite { t });
        }
        hs * 0.1
    } else {
        let fac11 = err.powf(0.2 - 0.75 * BETA);
        hs / (1.0 / FAC_MIN).min(fac11 / SAFE)
    };
    if h <= 16.0 * f64::EPSILON * t.abs().max(span) {
        return Err(if err.is_finite() {
            SolverError::StepSizeTooSmall { t, dt: h }
        } else {
            SolverError::NonFinite { t }
        });
    }
    Ok(h)
}

/// h_old / h_new from the PI controller (Hairer's DOPRI5, accepted step).
pub(crate) fn controller(err: f64, err_old: f64) -> f64 {
    let fac11 = err.powf(0.2 - 0.75 * BETA);
    let fac = fac11 / err_old.powf(BETA) / SAFE;
    fac.clamp(1.0 / FAC_MAX, 1.0 / FAC_MIN)
}

/// Checks of the tolerances, initial step and save times shared by every integrator that
/// follows this one (the CPU DP5 here and the GPU batch in `backend::gpu::master_batch`);
/// errors name `solver`.
pub fn check_options(solver: &'static str, times: &[f64], opts: &OdeOptions) -> Result<(), SolverError> {
    let bad = |message: String| SolverError::Unsupported { solver, message };
    let tol_ok = |v: f64| v.is_finite() && v >= 0.0;
    if !(tol_ok(opts.rtol) && tol_ok(opts.atol)) || opts.rtol + opts.atol == 0.0 {
        return Err(bad(format!(
            "tolerances rtol = {}, atol = {}: expected finite values >= 0, not both 0",
            opts.rtol, opts.atol
        )));
    }
    if let Some(h0) = opts.h0
        && !(h0 > 0.0 && h0.is_finite())
    {
        return Err(bad(format!(
            "initial step h0 = {h0}: expected a finite value > 0"
        )));
    }
    if let Some(i) = times.iter().position(|t| !t.is_finite()) {
        return Err(bad(format!("times[{i}] = {} is not finite", times[i])));
    }
    if let Some(i) = times.windows(2).position(|w| w[1] < w[0]) {
        return Err(bad(format!(
            "times must be non-decreasing: times[{}] = {} < times[{i}] = {}",
            i + 1,
            times[i + 1],
            times[i]
        )));
    }
    Ok(())
}

fn check_inputs(y0: &[f64], times: &[f64], opts: &OdeOptions) -> Result<(), SolverError> {
    check_options("ode", times, opts)?;
    if !all_finite(y0) {
        return Err(SolverError::NonFinite {
            t: times.first().copied().unwrap_or(0.0),
        });
    }
    Ok(())
}

fn all_finite(v: &[f64]) -> bool {
    if v.len() >= PAR_MIN {
        v.par_chunks(CHUNK).all(|c| c.iter().all(|x| x.is_finite()))
    } else {
        v.iter().all(|x| x.is_finite())
    }
}

/// Workspace of one integration: the solution, the next solution (stage 7 input), a stage
/// input and the seven stage derivatives.
struct Work {
    y: Vec<f64>,
    ynew: Vec<f64>,
    ytmp: Vec<f64>,
    k: [Vec<f64>; 7],
}

impl Work {
    fn new(y0: &[f64]) -> Work {
        let z = vec![0.0; y0.len()];
        Work {
            y: y0.to_vec(),
            ynew: z.clone(),
            ytmp: z.clone(),
            k: std::array::from_fn(|_| z.clone()),
        }
    }

    /// One DP5 step of size h from (t, y) with k[0] = f(t, y). Leaves y_new in `ynew` and
    /// f(t + h, y_new) in k[6]; returns the scaled error norm.
    fn step<F: FnMut(f64, &[f64], &mut [f64])>(
        &mut self,
        rhs: &mut F,
        t: f64,
        h: f64,
        o: &OdeOptions,
    ) -> f64 {
        let Work { y, ynew, ytmp, k } = self;
        let [k1, k2, k3, k4, k5, k6, k7] = k;
        combo(ytmp, y, [h * A21], [k1]);
        rhs(t + C2 * h, ytmp, k2);
        combo(ytmp, y, [h * A31, h * A32], [k1, k2]);
        rhs(t + C3 * h, ytmp, k3);
        combo(ytmp, y, [h * A41, h * A42, h * A43], [k1, k2, k3]);
        rhs(t + C4 * h, ytmp, k4);
        combo(ytmp, y, [h * A51, h * A52, h * A53, h * A54], [k1, k2, k3, k4]);
        rhs(t + C5 * h, ytmp, k5);
        combo(
            ytmp,
            y,
            [h * A61, h * A62, h * A63, h * A64, h * A65],
            [k1, k2, k3, k4, k5],
        );
        rhs(t + h, ytmp, k6);
        combo(
            ynew,
            y,
            [h * A71, h * A73, h * A74, h * A75, h * A76],
            [k1, k3, k4, k5, k6],
        );
        rhs(t + h, ynew, k7);
        error_norm(
            y,
            ynew,
            [h * E1, h * E3, h * E4, h * E5, h * E6, h * E7],
            [k1, k3, k4, k5, k6, k7],
            o,
        )
    }
}

/// Define `fn name` that runs `body` compiled for AVX2 when the CPU has it (4 doubles per
/// instruction instead of 2) and for the baseline target otherwise. Only the instruction
/// width changes (no FMA contraction, no reassociation), so both give identical results.
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident<$(const $cg:ident: $cty:ty),*>($($arg:ident: $ty:ty),* $(,)?)
        $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name<$(const $cg: $cty),*>($($arg: $ty),*) $(-> $ret)? {
            // The body is pasted into both functions (rather than inlined from one) so that
            // each is vectorised on its own; with an #[inline(always)] helper LLVM sometimes
            // left the AVX2 copy scalar.
            #[allow(clippy::too_many_arguments)]
            fn body<$(const $cg: $cty),*>($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            #[allow(clippy::too_many_arguments)]
            fn body_avx2<$(const $cg: $cty),*>($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the running CPU supports AVX2 (checked just above).
                return unsafe { body_avx2::<$($cg),*>($($arg),*) };
            }
            body::<$($cg),*>($($arg),*)
        }
    };
}
pub(crate) use multiversion;

multiversion! {
    /// out = y + sum_j a_j k_j on one chunk (`start` = offset of `out` in the vectors).
    fn combo_chunk<const M: usize>(out: &mut [f64], start: usize, y: &[f64], a: [f64; M], ks: [&[f64]; M]) {
        let len = out.len();
        let y = &y[start..start + len];
        let ks: [&[f64]; M] = std::array::from_fn(|j| &ks[j][start..start + len]);
        for i in 0..len {
            let mut acc = y[i];
            for j in 0..M {
                acc += a[j] * ks[j][i];
            }
            out[i] = acc;
        }
    }
}

/// out = y + sum_j a_j k_j, fused, in parallel chunks for long vectors.
fn combo<const M: usize>(out: &mut [f64], y: &[f64], a: [f64; M], ks: [&[f64]; M]) {
    if out.len() >= PAR_MIN {
        out.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, o)| combo_chunk(o, c * CHUNK, y, a, ks));
    } else {
        combo_chunk(out, 0, y, a, ks);
    }
}

/// sum over one chunk of (sum_j e_j k_j / (atol + rtol max(|y|, |ynew|)))^2, in eight
/// interleaved partial sums (lane l takes the components = l mod 8) so that it vectorises; the
/// AVX2 twin keeps the same lanes and order, so both give the same bits for finite data.
#[allow(clippy::too_many_arguments)]
fn error_chunk<const M: usize>(
    start: usize,
    len: usize,
    y: &[f64],
    ynew: &[f64],
    e: [f64; M],
    ks: [&[f64]; M],
    atol: f64,
    rtol: f64,
) -> f64 {
    let y = &y[start..start + len];
    let yn = &ynew[start..start + len];
    let ks: [&[f64]; M] = std::array::from_fn(|j| &ks[j][start..start + len]);
    let full = len / 8 * 8;
    let mut lanes = [0.0f64; 8];
    #[cfg(target_arch = "x86_64")]
    let done = if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the running CPU supports AVX2 (checked just above).
        lanes = unsafe { error_lanes_avx2(full, y, yn, e, ks, atol, rtol) };
        true
    } else {
        false
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = false;
    let term = |i: usize| {
        let mut acc = 0.0;
        for j in 0..M {
            acc += e[j] * ks[j][i];
        }
        let q = acc / (atol + rtol * y[i].abs().max(yn[i].abs()));
        q * q
    };
    if !done {
        for base in (0..full).step_by(8) {
            for (l, lane) in lanes.iter_mut().enumerate() {
                *lane += term(base + l);
            }
        }
    }
    let mut s = lanes.iter().sum::<f64>();
    for i in full..len {
        s += term(i);
    }
    s
}

/// The first `full` (a multiple of 8) components of [`error_chunk`] with AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn error_lanes_avx2<const M: usize>(
    full: usize,
    y: &[f64],
    yn: &[f64],
    e: [f64; M],
    ks: [&[f64]; M],
    atol: f64,
    rtol: f64,
) -> [f64; 8] {
    use std::arch::x86_64::*;
    assert!(full <= y.len() && full <= yn.len() && ks.iter().all(|k| full <= k.len()));
    let sign = _mm256_set1_pd(-0.0);
    let (va, vr) = (_mm256_set1_pd(atol), _mm256_set1_pd(rtol));
    let ev: [__m256d; M] = std::array::from_fn(|j| _mm256_set1_pd(e[j]));
    let mut acc = [_mm256_setzero_pd(); 2];
    for base in (0..full).step_by(8) {
        for (h, lane) in acc.iter_mut().enumerate() {
            let i = base + 4 * h;
            // SAFETY: i + 3 < full <= every slice length (asserted above).
            unsafe {
                let mut s = _mm256_setzero_pd();
                for j in 0..M {
                    s = _mm256_add_pd(s, _mm256_mul_pd(ev[j], _mm256_loadu_pd(ks[j].as_ptr().add(i))));
                }
                let ay = _mm256_andnot_pd(sign, _mm256_loadu_pd(y.as_ptr().add(i)));
                let an = _mm256_andnot_pd(sign, _mm256_loadu_pd(yn.as_ptr().add(i)));
                let sc = _mm256_add_pd(va, _mm256_mul_pd(vr, _mm256_max_pd(ay, an)));
                let q = _mm256_div_pd(s, sc);
                *lane = _mm256_add_pd(*lane, _mm256_mul_pd(q, q));
            }
        }
    }
    let mut out = [0.0; 8];
    // SAFETY: out has room for two vectors of 4.
    unsafe {
        _mm256_storeu_pd(out.as_mut_ptr(), acc[0]);
        _mm256_storeu_pd(out.as_mut_ptr().add(4), acc[1]);
    }
    out
}

/// sqrt(mean((sum_j e_j k_j / (atol + rtol max(|y|, |ynew|)))^2)). The chunk sums are added
/// in chunk order, so the result (and the step sequence) does not depend on the thread count.
fn error_norm<const M: usize>(y: &[f64], ynew: &[f64], e: [f64; M], ks: [&[f64]; M], o: &OdeOptions) -> f64 {
    let n = y.len();
    let sum = if n >= PAR_MIN {
        let parts: Vec<f64> = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                let start = c * CHUNK;
                error_chunk(start, CHUNK.min(n - start), y, ynew, e, ks, o.atol, o.rtol)
            })
            .collect();
        parts.iter().sum::<f64>()
    } else {
        error_chunk(0, n, y, ynew, e, ks, o.atol, o.rtol)
    };
    (sum / n.max(1) as f64).sqrt()
}

/// Hairer's starting step: h0 = 0.01 |y0| / |f0|, refined by a second evaluation so that
/// h^5 max(|f0|, |f'|) ~ 0.01 in the error norm.
fn initial_step<F: FnMut(f64, &[f64], &mut [f64])>(
    rhs: &mut F,
    t: f64,
    ws: &mut Work,
    o: &OdeOptions,
    span: f64,
) -> f64 {
    let len = ws.y.len();
    let sc = |y: f64| o.atol + o.rtol * y.abs();
    let rms = |f: &dyn Fn(usize) -> f64| -> f64 {
        ((0..len).map(f).map(|x| x * x).sum::<f64>() / len.max(1) as f64).sqrt()
    };
    let (y, f0) = (&ws.y, &ws.k[0]);
    let d0 = rms(&|i| y[i] / sc(y[i]));
    let d1 = rms(&|i| f0[i] / sc(y[i]));
    let mut h0 = if d0 < 1e-5 || d1 < 1e-5 {
        1e-6
    } else {
        0.01 * d0 / d1
    };
    h0 = h0.min(span);
    combo(&mut ws.ytmp, &ws.y, [h0], [&ws.k[0]]);
    rhs(t + h0, &ws.ytmp, &mut ws.k[1]);
    let (y, f0, f1) = (&ws.y, &ws.k[0], &ws.k[1]);
    let d2 = rms(&|i| (f1[i] - f0[i]) / sc(y[i])) / h0;
    let h1 = if d1.max(d2) <= 1e-15 {
        (h0 * 1e-3).max(1e-6)
    } else {
        (0.01 / d1.max(d2)).powf(0.2)
    };
    (100.0 * h0).min(h1).min(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A right-hand side with jumps (y' = -k(t) y, k a step schedule): landing on the breaks
    /// and evaluating each piece with its own formula gives the exact piecewise exponential to
    /// the tolerance; without the breaks the controller has to find the jumps by rejections.
    #[test]
    fn pieces_land_on_breaks_and_keep_the_order() {
        let k = |at: f64| {
            if at < 1.0 {
                1.0
            } else if at < 2.5 {
                4.0
            } else {
                0.5
            }
        };
        let times = [0.0, 0.7, 2.0, 3.0];
        let opts = OdeOptions {
            rtol: 1e-10,
            atol: 1e-14,
            ..Default::default()
        };
        let exact = |t: f64| {
            let a = t.min(1.0) + 4.0 * (t.min(2.5) - 1.0).max(0.0) + 0.5 * (t - 2.5).max(0.0);
            (-a).exp()
        };
        let mut got = vec![];
        let st = integrate_real_pieces(
            |at, _t, y: &[f64], dy: &mut [f64]| dy[0] = -k(at) * y[0],
            &[1.0],
            &times,
            &[1.0, 2.5],
            &opts,
            |_, t, y| got.push((t, y[0])),
        )
        .unwrap();
        for (t, y) in &got {
            assert!(
                (y - exact(*t)).abs() < 1e-9 * exact(*t),
                "t = {t}: {y} vs {}",
                exact(*t)
            );
        }
        // Without the breaks the same problem costs rejections at each jump.
        let blind = integrate_real(
            |t, y: &[f64], dy: &mut [f64]| dy[0] = -k(t) * y[0],
            &[1.0],
            &times,
            &opts,
            |_, _, _| {},
        )
        .unwrap();
        assert!(st.rejected + 4 <= blind.rejected, "{st:?} vs {blind:?}");
    }

    /// y' = i w y (complex rotation) and y' = -y: exact solutions, error within a small
    /// multiple of the tolerances (global error of a 5th-order method with rtol 1e-10).
    #[test]
    fn rotation_and_decay_match_exact() {
        let w = 3.0;
        let times: Vec<f64> = (0..=20).map(|i| 0.25 * i as f64).collect();
        let opts = OdeOptions {
            rtol: 1e-10,
            atol: 1e-12,
            ..Default::default()
        };
        let y0 = [c64::new(1.0, 0.0), c64::new(0.5, 0.0)];
        let mut worst = 0.0f64;
        let mut saved = 0;
        let stats = integrate(
            |_t, y: &[c64], dy: &mut [c64]| {
                dy[0] = c64::new(0.0, w) * y[0];
                dy[1] = -y[1];
            },
            &y0,
            &times,
            &opts,
            |i, t, y| {
                assert_eq!(t, times[i]);
                saved += 1;
                let e0 = (y[0] - c64::new(0.0, w * t).exp()).norm();
                let e1 = (y[1] - 0.5 * (-t).exp()).norm();
                worst = worst.max(e0).max(e1);
            },
        )
        .unwrap();
        assert_eq!(saved, times.len());
        assert!(worst < 1e-8, "worst error {worst:e}");
        assert_eq!(stats.rhs_evals, 2 + 6 * (stats.steps + stats.rejected));
    }

    /// Error shrinks like rtol^(5/6) or faster when the tolerance is tightened (a broken
    /// tableau or error estimate would stall).
    #[test]
    fn error_converges_with_tolerance() {
        let run = |rtol: f64| {
            let opts = OdeOptions {
                rtol,
                atol: rtol * 1e-2,
                ..Default::default()
            };
            let mut e = 0.0;
            // y' = t cos(y) style nonlinear test with a known solution: y' = -2 t y^2, y = 1/(1+t^2)
            integrate_real(
                |t, y: &[f64], dy: &mut [f64]| dy[0] = -2.0 * t * y[0] * y[0],
                &[1.0],
                &[0.0, 3.0],
                &opts,
                |_, t, y| e = (y[0] - 1.0 / (1.0 + t * t)).abs(),
            )
            .unwrap();
            e
        };
        let (e1, e2) = (run(1e-6), run(1e-9));
        assert!(e1 < 1e-5 && e2 < 1e-8, "{e1:e} {e2:e}");
        assert!(e2 < e1 * 1e-2, "no convergence: {e1:e} -> {e2:e}");
    }

    #[test]
    fn rejects_bad_inputs_and_reports_blowup() {
        let o = OdeOptions::default();
        let f = |_t: f64, y: &[f64], dy: &mut [f64]| dy[0] = y[0];
        assert!(matches!(
            integrate_real(f, &[1.0], &[1.0, 0.0], &o, |_, _, _| {}),
            Err(SolverError::Unsupported { .. })
        ));
        assert!(matches!(
            integrate_real(f, &[f64::NAN], &[0.0, 1.0], &o, |_, _, _| {}),
            Err(SolverError::NonFinite { .. })
        ));
        // y' = y^2 from y = 1 blows up at t = 1.
        let r = integrate_real(
            |_t, y: &[f64], dy: &mut [f64]| dy[0] = y[0] * y[0],
            &[1.0],
            &[0.0, 2.0],
            &o,
            |_, _, _| {},
        );
        assert!(
            matches!(
                r,
                Err(SolverError::StepSizeTooSmall { .. } | SolverError::NonFinite { .. })
            ),
            "{r:?}"
        );
        let tight = OdeOptions { max_steps: 5, ..o };
        assert!(matches!(
            integrate_real(
                |_t, y: &[f64], dy: &mut [f64]| dy[0] = -1e4 * y[0],
                &[1.0],
                &[0.0, 1.0],
                &tight,
                |_, _, _| {}
            ),
            Err(SolverError::TooManySteps { .. })
        ));
    }

    #[test]
    fn saves_repeated_and_initial_times() {
        let mut seen = Vec::new();
        integrate_real(
            |_t, y: &[f64], dy: &mut [f64]| dy[0] = -y[0],
            &[1.0],
            &[0.0, 0.0, 0.5, 0.5, 1.0],
            &OdeOptions::default(),
            |i, t, y| seen.push((i, t, y[0])),
        )
        .unwrap();
        assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        assert_eq!(seen[0].2, 1.0);
        assert!((seen[4].2 - (-1.0f64).exp()).abs() < 1e-9);
    }
}
