//! Trajectories under a protocol (time-dependent parameters, [`crate::model::schedule`]): the
//! step grid on the breaks and the per-step model of the CPU twin (`Twin::run_sched`).
//!
//! # Scheme
//!
//! The run is cut at every save time and at every break of the protocol (a kink of a ramp, a
//! jump of a step) into *segments*, each split into equal steps no longer than the constant
//! case's `h = cfl / Lambda`, with Lambda the rate bound maximised over the protocol's range
//! (the corners of the box of the scheduled parameters' ranges over the run: Lambda is a max of
//! norms of affine functions of the parameters, hence convex, hence largest at a corner). A
//! save that is not a break records after its segment; a break that is not a save records
//! nothing. So every step lies inside one piece of every schedule.
//!
//! Step `n` of a segment, `[t, t + h]`, is the Lawson RK4 of the constant case (module doc of
//! [`super`]) made time-dependent so that it keeps fourth order: the diagonal `D(t)` is
//! affine within the piece, so its integrating factors are exact as `exp(-i D(mid) tau)` at
//! the midpoint of the span they cover: `E(h)` at `t + h/2`, and the two half-step factors
//! separately, `E_a` at `t + h/4` (first half: `E(h/2) psi`, `E(h/2)(psi + h/2 k1)`) and
//! `E_b` at `t + 3h/4` (second half: the k2, k3 terms carried to the step's end); the
//! stencil V enters k1 at `t` (V psi recomputed at each step's start), k2 and k3 at the
//! midpoint, k4 at the end. A partial step (jump location) does the same over its own span
//! from its own start. The channel weights (jump choice, `<Gamma_op>` of the Hermite
//! crossing) are frozen at the step's midpoint (second order, entering only the jump-time
//! interpolation). Measured in tests/trajectory_schedule.rs against the master equation
//! (4 SE at every save, including the early saves where the SE is 1e-5) and a closed-form
//! chirp (1e-9 in f64).
//!
//! # Coefficients and exponentials (shared with the WGSL kernel)
//!
//! Within a segment every scheduled quantity is affine in time, so each is carried as
//! `a + b ds` ([`SegCoef`], per segment and irrep, computed in f64 and rounded once): the
//! diagonal `D_i = e_i - i g_i` (`g` half the decay rate), the three collective rates and the
//! stencil coefficient `cm` (with `phi` constant; a scheduled `phi` takes `cm` from the model
//! in f64, CPU only). `ds = (n + p4 2^-18) h` is the time since the segment's start of the
//! point `p4` quarter-quanta into step `n` (a step has 2^16 quanta), evaluated in the working
//! precision: the start (`p4 = 0`), quarter points, midpoint and end of any sub-step of whole
//! quanta are exact points of this grid. The factors are evaluated directly at every trial,
//! `E = exp(x + i y)`, `x = -g tau`, `y = -e tau`, by one complex exponential of +, -, *,
//! floor and comparisons only ([`super::twin::cexp`] and the kernel's `cexp`: f64 WGSL has no
//! trustworthy exp, sin, cos, DESIGN.md): the phase reduced by whole turns (`2 pi` split in
//! an 8-bit head [`PI2_HI`] and its tail), the argument halved until both parts are within
//! 1/2 (at most [`SQUARINGS`] times: `|x| <= MAX_DAMPING`, checked by [`build`]), the Taylor
//! polynomial of degree [`CEXP_DEG`] (truncation below 1e-17 at |w| = 0.71), squared back.
//! Its error is a few ulp, doubled by each squaring (at most four for the reduced phase, more only for
//! `g h / 2 > 1/2`, i.e. a user `dt` far beyond `cfl / Lambda`). In f32 the phase `e tau`
//! itself is rounded to f32 before the reduction: an error of `|e tau|` ulp per step, which
//! for large energies (`omega0 N/2 h >> 1`, e.g. a detuning far above the rates) exceeds the
//! constant path's (its tables are host exponentials rounded once); f64 has no such limit.
//!
//! # Cost
//!
//! Per step, only what the scheduled parameters touch is updated in the trajectory's own copy
//! of its irrep's coefficients:
//!
//! - `Omega`, `phi`: the two stencil coefficients `cm, cp` (two complex numbers) at the stage
//!   times, and V psi with `<V>` at the step's start (one pass);
//! - `Gamma`, `w`, `Gamma_phi`: also the channel weights and their sum gamma_i (four products
//!   per level), and `<Gamma_op>` of the state at the step's start (the same pass);
//! - the factors `E(h)`, `E_a`, `E_b`: three complex exponentials per level and step when
//!   anything on the diagonal (`omega0`, `chi`, `chi_z` and the three rates) is scheduled,
//!   else once per segment; a partial step (jump location) takes three per level, two in the
//!   twin when nothing on the diagonal is scheduled (the two half-step factors are then the
//!   same numbers: zero slopes, the same `tau/2`; the kernel computes both, equal bit for bit).
//!
//! The twin evaluates the exponentials [`CHUNK`](super::twin::CHUNK) levels at a time
//! (`twin::cexp_lanes`): the kernel's `cexp` with its branches turned into selects, so that
//! the compiler vectorises it, bit for bit the scalar `cexp` (test
//! `cexp_lanes_is_cexp_bit_for_bit`). Measured: BENCHMARKS.md, "Time-dependent protocols"
//! (`examples/schedule_overhead.rs`, which compares flat schedules, the same physics, and
//! real ramps per trial).
//!
//! Single-atom rates (`gamma_down`, `gamma_up`, `gamma_phi`) may not be scheduled: they set
//! every irrep's irrep-changing weights and the per-irrep scales of the tables; they are refused
//! with an error naming the parameter. Irrep-changing trajectories (constant single-atom rates)
//! take every other schedule on the CPU twin.
//!
//! # Backends
//!
//! The CPU twin (`Twin::run_sched`, src/solver/trajectory/twin/scheduled.rs) and the WGSL
//! kernel (`shaders/trajectory.wgsl`, "Scheduled runs"; host: `backend::gpu::trajectory`,
//! "Schedules") run the same scheme on the same numbers: the kernel reads [`KernelBlock`]
//! (the [`cexp_constants`], per segment its `h`, `q` and the rates' and `cm`'s `a, b`; per
//! segment and level the diagonal's) and evaluates every expression above in the twin's
//! order, so that with the same Philox streams a GPU trajectory follows its twin: the same
//! jumps, records within 1e-4 (f32) and 1e-13 (f64) relative on lavapipe over t = 1.2 with
//! 20 jumps per trajectory (tests/trajectory_schedule.rs `gpu_matches_twin_under_schedules`;
//! what is left are roundings Mesa's compiler changes, as for constant parameters). The kernel
//! takes collective models with `phi` constant; it refuses ([`gpu_refusal`]; `--backend auto`
//! then runs on the CPU) irrep-changing trajectories, whose irreps share one exponential table
//! in the kernel while a schedule needs every irrep's diagonal per segment, and a schedule of
//! `phi` (not affine; f64 WGSL has no sine). A constant protocol builds no [`Sched`] and runs
//! the constant path, bit for bit as before, on both backends.

use super::TrajectoryOptions;
use super::{SolverError, irrep_diag, irrep_rates, max_step, rate_bound, unsupported};
use crate::model::{Model, Protocol};
use num_complex::Complex64 as c64;

/// Scheduled parameters that the trajectories refuse (module doc).
pub const REFUSED: [&str; 3] = ["gamma_down", "gamma_up", "gamma_phi"];

/// Largest `|x| = gamma h / 2` (the damping exponent of one step) the kernel's exponential
/// reaches with its [`SQUARINGS`] halvings (module doc, "Exponentials").
pub const MAX_DAMPING: f64 = 16384.0;

/// Halvings (and squarings) of the kernel's complex exponential, unrolled (module doc).
pub const SQUARINGS: u32 = 16;

/// Degree of the Taylor polynomial of the kernel's complex exponential (module doc).
pub const CEXP_DEG: usize = 16;

/// The high part of 2 pi in the kernel's phase reduction (8 bits: `k * PI2_HI` is exact for
/// `|k| < 2^16` in f32).
pub const PI2_HI: f64 = 6.28125;

/// One stretch between consecutive save times or breaks, in `steps` equal steps of `h`
/// from `t0`; `save`: the save index recorded at its end, if its end is a save time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub t0: f64,
    pub h: f64,
    pub steps: u32,
    pub save: Option<usize>,
}

/// The protocol of a trajectory run and its step grid (module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct Sched {
    pub protocol: Protocol,
    pub segments: Vec<Segment>,
    /// `Omega` or `phi` scheduled: the stencil coefficients change.
    pub drive: bool,
    /// `phi` scheduled: the stencil coefficient is not affine in t (CPU twin only).
    pub phase: bool,
    /// `Gamma`, `w` or `Gamma_phi` scheduled: the channel weights change.
    pub rates: bool,
    /// Anything on the diagonal of H_eff scheduled: the exponential factors change per step.
    pub diag: bool,
}

/// The coefficients of one segment in one irrep, each affine in the time since the
/// segment's start `ds = t - t0` (module doc, "Scheme"): `value = a + b ds`.
#[derive(Debug, Clone, PartialEq)]
pub struct SegCoef {
    /// Per level: `[e_a, e_b, g_a, g_b]`, the energy and half the decay rate (`D = e - i g`).
    pub diag: Vec<[f64; 4]>,
    /// `[a, b]` of the irrep's collective rates Gamma, w, Gamma_phi ([`irrep_rates`]).
    pub rates: [[f64; 2]; 3],
    /// `[a, b]` of the stencil coefficient `cm` (with `phi` constant).
    pub cm: [c64; 2],
}

/// The coefficients of segment `seg` for irrep 2j = `two_j`: the values at its start on the
/// formula of its piece, and the slopes `(v(t0 + len) - v(t0)) / len` (zero for an empty
/// segment).
pub fn seg_coef(s: &Sched, seg: &Segment, two_j: usize) -> SegCoef {
    let len = seg.h * f64::from(seg.steps);
    let at = seg.t0 + 0.5 * len;
    let m0 = s.protocol.model_in(at, seg.t0);
    let m1 = s.protocol.model_in(at, seg.t0 + len);
    let slope = |a: f64, b: f64| if len > 0.0 { (b - a) / len } else { 0.0 };
    let (e0, g0) = irrep_diag(&m0, two_j);
    let (e1, g1) = irrep_diag(&m1, two_j);
    let diag = (0..e0.len())
        .map(|i| {
            [
                e0[i],
                slope(e0[i], e1[i]),
                0.5 * g0[i],
                slope(0.5 * g0[i], 0.5 * g1[i]),
            ]
        })
        .collect();
    let (r0, _) = irrep_rates(&m0, two_j);
    let (r1, _) = irrep_rates(&m1, two_j);
    let rates = std::array::from_fn(|k| [r0[k], slope(r0[k], r1[k])]);
    let (c0, c1) = (drive_coefficient(&m0), drive_coefficient(&m1));
    let cm = [c0, c64::new(slope(c0.re, c1.re), slope(c0.im, c1.im))];
    SegCoef { diag, rates, cm }
}

/// The stencil coefficient `cm = (Omega/2) e^{-i phi}` of a model (`cp = conj(cm)`).
pub fn drive_coefficient(m: &Model) -> c64 {
    c64::from_polar(0.5 * m.drive, -m.phi)
}

/// The constants of the kernel's complex exponential in f64 (rounded to the working
/// precision by the twin and the host): `[1/(2 pi), PI2_HI, 2 pi - PI2_HI, 1/0!, ...,
/// 1/CEXP_DEG!]`.
pub fn cexp_constants() -> Vec<f64> {
    let mut v = vec![
        1.0 / std::f64::consts::TAU,
        PI2_HI,
        std::f64::consts::TAU - PI2_HI,
    ];
    let mut f = 1.0f64;
    for k in 0..=CEXP_DEG {
        if k > 0 {
            f *= k as f64;
        }
        v.push(1.0 / f);
    }
    v
}

/// Why the WGSL kernel cannot run the scheduled `protocol`, if it cannot (module doc,
/// "Backends"): single-atom rates (irrep-changing trajectories) or `phi` scheduled.
pub fn gpu_refusal(protocol: &Protocol) -> Option<&'static str> {
    if protocol.is_constant() {
        None
    } else if !protocol.is_collective() {
        Some(
            "schedules with single-atom rates (irrep-changing trajectories) run on the CPU twin \
             only in this version: the kernel's irreps share one exponential table, a schedule \
             would need every irrep's diagonal per segment",
        )
    } else if protocol.names().contains(&"phi") {
        Some(
            "a schedule of phi in trajectories runs on the CPU twin only in this version: the \
             kernel takes the drive's stencil coefficient affine in t (Omega), and f64 WGSL \
             has no sine",
        )
    } else {
        None
    }
}

/// The schedule of a trajectory run: refuses single-atom rate schedules, checks the values
/// over the run, and returns the step grid with the rate bound over the protocol's range
/// (`two_js`: the irreps a trajectory can reach).
pub fn build(
    protocol: &Protocol,
    two_js: &[usize],
    times: &[f64],
    opts: &TrajectoryOptions,
) -> Result<(Sched, f64), SolverError> {
    let names = protocol.names();
    if let Some(name) = names.iter().find(|n| REFUSED.contains(n)) {
        return Err(unsupported(format!(
            "model.{name}: a schedule of a single-atom rate is not supported by trajectories \
             (it sets every irrep's irrep-changing weights and table scales, which would be \
             rebuilt every step); give it a number, or use kind = \"evolve\""
        )));
    }
    let (t0, t1) = (times[0], times[times.len() - 1]);
    protocol
        .check_span(t0, t1)
        .map_err(|e| unsupported(e.to_string()))?;
    let breaks = protocol.breaks(t0, t1).map_err(|e| unsupported(e.to_string()))?;
    // The rate bound at every corner of the box of scheduled ranges.
    let ranges: Vec<(&str, (f64, f64))> = protocol
        .schedules
        .iter()
        .map(|(n, s)| (*n, s.range(t0, t1)))
        .collect();
    let mut bound = 0.0f64;
    for corner in 0..1usize << ranges.len().min(16) {
        let mut m = protocol.base;
        for (k, (name, (lo, hi))) in ranges.iter().enumerate() {
            m.set(name, if (corner >> k) & 1 == 0 { *lo } else { *hi });
        }
        let (e, g) = irrep_diag(&m, m.n);
        bound = bound.max(rate_bound(&m, two_js, &e, &g)?);
    }
    let hmax = max_step(opts, bound)?;
    if bound * hmax > 2.0 * MAX_DAMPING {
        return Err(unsupported(format!(
            "a step of {hmax:e} at the rate bound {bound:e}: the scheduled integrator's \
             exponential takes |gamma h / 2| <= {MAX_DAMPING}; use a smaller dt"
        )));
    }
    let mut segments = Vec::new();
    let mut total = 0u64;
    for (iv, w) in times.windows(2).enumerate() {
        let mut pts = vec![w[0]];
        pts.extend(breaks.iter().copied().filter(|&b| b > w[0] && b < w[1]));
        pts.push(w[1]);
        for (k, p) in pts.windows(2).enumerate() {
            let save = (k + 2 == pts.len()).then_some(iv + 1);
            let len = p[1] - p[0];
            if len == 0.0 {
                segments.push(Segment {
                    t0: p[0],
                    h: 0.0,
                    steps: 0,
                    save,
                });
                continue;
            }
            let steps = (len / hmax * (1.0 - 1e-12)).ceil().max(1.0);
            if steps > f64::from(u32::MAX) {
                return Err(unsupported(format!(
                    "a stretch of {len} needs {steps:e} steps of {hmax:e}; save more often"
                )));
            }
            total += steps as u64;
            segments.push(Segment {
                t0: p[0],
                h: len / steps,
                steps: steps as u32,
                save,
            });
        }
    }
    if total > 1 << 40 {
        return Err(unsupported(format!(
            "{total} steps per trajectory requested (step {hmax:e}); shorten the run"
        )));
    }
    let has = |set: &[&str]| names.iter().any(|n| set.contains(n));
    Ok((
        Sched {
            protocol: protocol.clone(),
            segments,
            drive: has(&["Omega", "phi"]),
            phase: has(&["phi"]),
            rates: has(&["Gamma", "w", "Gamma_phi"]),
            diag: has(&["omega0", "chi", "chi_z", "Gamma", "w", "Gamma_phi"]),
        },
        bound,
    ))
}

/// Reals per segment in the kernel's block: `[h, q, Gamma a, b, w a, b, Gamma_phi a, b,
/// Re cm a, Im cm a, Re cm b, Im cm b]`.
pub const SEG_REALS: usize = 12;

/// The WGSL kernel's inputs of a scheduled run (collective, `phi` constant), in f64 (rounded
/// to the working precision by the host): the twin reads the same numbers from
/// [`seg_coef`] (module doc, "Backends").
#[derive(Debug, Clone, PartialEq)]
pub struct KernelBlock {
    /// [`cexp_constants`], then [`SEG_REALS`] per segment.
    pub rp: Vec<f64>,
    /// `[save (0: none), steps]` per segment.
    pub segs: Vec<[u32; 2]>,
    /// Per segment two rows of `n_levels`: `(e_a, g_a)`, then `(e_b, g_b)`.
    pub diag: Vec<c64>,
}

impl Sched {
    /// The kernel's block for irrep 2j = `two_j` (module doc, "Backends").
    pub fn kernel_block(&self, two_j: usize) -> KernelBlock {
        let mut rp = cexp_constants();
        let mut segs = Vec::with_capacity(self.segments.len());
        let mut diag = Vec::new();
        for seg in &self.segments {
            let c = seg_coef(self, seg, two_j);
            rp.extend([seg.h, seg.h * (super::FULL as f64).recip()]);
            rp.extend(c.rates.iter().flatten());
            rp.extend([c.cm[0].re, c.cm[0].im, c.cm[1].re, c.cm[1].im]);
            segs.push([seg.save.map_or(0, |s| s as u32), seg.steps]);
            diag.extend(c.diag.iter().map(|d| c64::new(d[0], d[2])));
            diag.extend(c.diag.iter().map(|d| c64::new(d[1], d[3])));
        }
        KernelBlock { rp, segs, diag }
    }
}
