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
//! # Cost
//!
//! Per step, only what the scheduled parameters touch is updated in the trajectory's own copy
//! of its irrep's coefficients:
//!
//! - `Omega`, `phi`: the two stencil coefficients `cm, cp` (two complex numbers);
//! - `Gamma`, `w`, `Gamma_phi`: also the channel weights and their sum gamma_i (four products
//!   per level), and `<Gamma_op>` of the state at the step's start (one sum);
//! - anything on the diagonal (`omega0`, `chi`, `chi_z` and the three rates): the factors
//!   `E(h)`, `E_a`, `E_b`. `D(t_m)` is affine in the step index within a segment, so
//!   `E_{n+1}(tau) = E_n(tau) R(tau)`, `R(tau) = exp(-i (D(t_m + h) - D(t_m)) tau)`: one
//!   complex product per level and factor, recomputed exactly (host exponentials in f64,
//!   rounded once) at the segment's first step and every [`ANCHOR`] steps, which bounds the
//!   drift of the product to `ANCHOR` roundings. A partial step (jump location) takes its
//!   factors directly (3 (2j + 1) exponentials per partial step, only at jumps: the main cost,
//!   measured 3.7x (Omega ramp) to 9x (omega0 ramp) at N = 100; `measure_schedule_overhead`).
//!
//! Single-atom rates (`gamma_down`, `gamma_up`, `gamma_phi`) may not be scheduled: they set
//! every irrep's irrep-changing weights and the per-irrep scales of the tables; they are refused
//! with an error naming the parameter. Irrep-changing trajectories (constant single-atom rates)
//! take every other schedule.
//!
//! # Backends
//!
//! The CPU twin only in this version: the WGSL kernel refuses a scheduled plan
//! (`gpu_plan`), and `--backend auto` runs such a scenario on the CPU. A constant protocol
//! builds no [`Sched`] and runs the constant path, bit for bit as before.

use super::TrajectoryOptions;
use super::{SolverError, irrep_diag, max_step, rate_bound, unsupported};
use crate::model::{Model, Protocol};
use num_complex::Complex64 as c64;

/// Steps between exact recomputations of the factors of a scheduled diagonal (module doc).
pub const ANCHOR: u32 = 32;

/// Scheduled parameters that the trajectories refuse (module doc).
pub const REFUSED: [&str; 3] = ["gamma_down", "gamma_up", "gamma_phi"];

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
    /// `Gamma`, `w` or `Gamma_phi` scheduled: the channel weights change.
    pub rates: bool,
    /// Anything on the diagonal of H_eff scheduled: the exponential factors change.
    pub diag: bool,
}

impl Sched {
    /// The model frozen for step `n` of segment `seg` (its midpoint).
    #[inline]
    pub fn step_model(&self, seg: &Segment, n: u32) -> Model {
        self.protocol.at(seg.t0 + (f64::from(n) + 0.5) * seg.h)
    }

    /// The same piece's model one step later (for the factor recurrence: affine in t).
    pub fn next_model(&self, seg: &Segment, n: u32) -> Model {
        let tm = seg.t0 + (f64::from(n) + 0.5) * seg.h;
        self.protocol.model_in(tm, tm + seg.h)
    }
}

/// The stencil coefficient `cm = (Omega/2) e^{-i phi}` of a model (`cp = conj(cm)`).
pub fn drive_coefficient(m: &Model) -> c64 {
    c64::from_polar(0.5 * m.drive, -m.phi)
}

/// `exp(-i D tau)`, `D = energy - i gamma/2`, of irrep 2j under `m`, for each `tau` in `taus`
/// (rows of `n` levels).
pub fn factors(m: &Model, two_j: usize, taus: &[f64]) -> Vec<Vec<c64>> {
    let (e, g) = irrep_diag(m, two_j);
    taus.iter()
        .map(|&tau| {
            e.iter()
                .zip(&g)
                .map(|(&e, &g)| c64::from_polar((-0.5 * g * tau).exp(), -e * tau))
                .collect()
        })
        .collect()
}

/// The ratio of the factors of two models: `exp(-i (D_b - D_a) tau)` per level and `tau`.
pub fn ratios(a: &Model, b: &Model, two_j: usize, taus: &[f64]) -> Vec<Vec<c64>> {
    let (ea, ga) = irrep_diag(a, two_j);
    let (eb, gb) = irrep_diag(b, two_j);
    taus.iter()
        .map(|&tau| {
            (0..ea.len())
                .map(|i| c64::from_polar((-0.5 * (gb[i] - ga[i]) * tau).exp(), -(eb[i] - ea[i]) * tau))
                .collect()
        })
        .collect()
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
            rates: has(&["Gamma", "w", "Gamma_phi"]),
            diag: has(&["omega0", "chi", "chi_z", "Gamma", "w", "Gamma_phi"]),
        },
        bound,
    ))
}
