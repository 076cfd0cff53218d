//! The population rate equation of the Dicke manifold: an exact reduction of the master
//! equation for the models that keep a diagonal density matrix diagonal, integrated with an
//! L-stable implicit Runge-Kutta method in O(N) per step.
//!
//! # When it is exact
//!
//! With no drive (Omega = 0) and no single-atom process, every Hamiltonian term (omega0 Jz,
//! chi J+J-, chi_z Jz^2) is diagonal in |j = N/2, m>, D[Jz] (Gamma_phi) only damps coherences,
//! and D[J-], D[J+] map |m><m| to |m-1><m-1|, |m+1><m+1|. So the populations P_m of a
//! diagonal state obey a closed birth-death equation (PHYSICS.md sec. 6, seed 004 eq. 1),
//! with k = m + N/2 = 0..N:
//!
//! ```text
//! dP_k/dt = Gamma (d_{k+1} P_{k+1} - d_k P_k) + w (u_{k-1} P_{k-1} - u_k P_k),
//! d_k = <k|J+J-|k> = k (N - k + 1),   u_k = <k|J-J+|k> = (N - k)(k + 1),
//! ```
//!
//! with Gamma and w possibly scheduled (any piecewise-affine protocol, `model::schedule`).
//! [`support`] names the first term that breaks the reduction. Its steady state follows from
//! detailed balance, P_{k+1}/P_k = w u_k / (Gamma d_{k+1}) = w / Gamma: exp(-beta Jz)/Z with
//! beta = -ln(w/Gamma) ([`steady`]).
//!
//! # Integrator
//!
//! The generator A(t) is stiff (its largest rate is ~ (Gamma + w) N^2/2, its smallest ~ Gamma)
//! and a ramp lasts up to 10^4 / Gamma, so an explicit method would take N^2 T steps. TR-BDF2
//! (Bank et al. 1985; Hosea & Shampine 1996) written as the stiffly accurate ESDIRK
//!
//! ```text
//! c = (0, g, 1),  g = 2 - sqrt 2,  d = g/2,  w' = sqrt(2)/4
//! Y2 = y + h d (k1 + k2),  Y3 = y + h (w' k1 + w' k2 + d k3),  y_new = Y3,  k_i = A(t_i) Y_i
//! ```
//!
//! is L-stable and second order; each implicit stage is one tridiagonal solve
//! (I - h d A(t_i)) Y = r, which is column diagonally dominant (A is a generator: its columns
//! sum to zero with nonnegative off-diagonal entries), so elimination without pivoting is
//! stable. The embedded third-order weights (1 - w', 3 w' + 1, d)/3 give the local error
//! h sum_i (b_i - b^_i) k_i, filtered by (I - h d A(t + h))^-1 (Shampine's filter: it removes
//! the stiff components that the L-stable solution damps but the raw difference of two
//! explicit sums does not), measured in the RMS norm with atol + rtol |y|. Step control
//! h_new = h min(5, max(0.2, 0.9 err^(-1/3))). Steps land on every save time and every break
//! of the protocol; each step evaluates its stages with its own piece's formulas (the `at` of
//! [`crate::solver::ode::integrate_real_pieces`]).
//!
//! Measured against the master equation on the full (N+1)^2 density matrix (same protocol,
//! tests/populations.rs) and the two-level closed form under steps.

use super::ode::{OdeOptions, OdeStats};
use crate::error::SolverError;
use crate::model::{Model, Protocol};

/// The first parameter (scenario name) whose term breaks the population reduction of `model`
/// (module doc), with its value; None when the reduction is exact.
pub fn support(model: &Model) -> Option<(&'static str, f64)> {
    [
        ("Omega", model.drive),
        ("gamma_down", model.gamma_down),
        ("gamma_up", model.gamma_up),
        ("gamma_phi", model.gamma_phi),
    ]
    .into_iter()
    .find(|(_, v)| *v != 0.0)
}

/// [`support`] for a protocol: a schedule of a term that breaks the reduction counts even where
/// it passes through zero.
pub fn protocol_support(protocol: &Protocol) -> Option<(&'static str, f64)> {
    if let Some(bad) = support(&protocol.base) {
        return Some(bad);
    }
    protocol
        .names()
        .into_iter()
        .find(|n| matches!(*n, "Omega" | "gamma_down" | "gamma_up" | "gamma_phi"))
        .map(|n| (n, f64::NAN))
}

/// The rate coefficients d_k, u_k of the module doc for N atoms.
#[derive(Debug, Clone)]
pub struct Rates {
    down: Vec<f64>,
    up: Vec<f64>,
}

impl Rates {
    pub fn new(n: usize) -> Self {
        let nf = n as f64;
        let down = (0..=n).map(|k| k as f64 * (nf - k as f64 + 1.0)).collect();
        let up = (0..=n).map(|k| (nf - k as f64) * (k as f64 + 1.0)).collect();
        Rates { down, up }
    }

    /// Number of levels, N + 1.
    pub fn len(&self) -> usize {
        self.down.len()
    }

    /// Never true (N >= 0 has one level at least).
    pub fn is_empty(&self) -> bool {
        self.down.is_empty()
    }

    /// dy = A y for decay `g` (Gamma) and pump `w`.
    pub fn apply(&self, g: f64, w: f64, y: &[f64], dy: &mut [f64]) {
        let n = y.len();
        for k in 0..n {
            let mut v = -(g * self.down[k] + w * self.up[k]) * y[k];
            if k + 1 < n {
                v += g * self.down[k + 1] * y[k + 1];
            }
            if k > 0 {
                v += w * self.up[k - 1] * y[k - 1];
            }
            dy[k] = v;
        }
    }

    /// Solve (I - s A) x = r in place (`r` becomes x) for decay `g` and pump `w`, with the
    /// Thomas algorithm (stable without pivoting: module doc); `c` is scratch of length N+1.
    pub fn solve(&self, s: f64, g: f64, w: f64, r: &mut [f64], c: &mut [f64]) {
        let n = r.len();
        // Row k: sub = -s w u_{k-1}, diag = 1 + s (g d_k + w u_k), sup = -s g d_{k+1}.
        let diag = |k: usize| 1.0 + s * (g * self.down[k] + w * self.up[k]);
        let sup = |k: usize| -s * g * self.down[k + 1];
        let sub = |k: usize| -s * w * self.up[k - 1];
        let mut beta = diag(0);
        r[0] /= beta;
        for k in 1..n {
            c[k - 1] = sup(k - 1) / beta;
            beta = diag(k) - sub(k) * c[k - 1];
            r[k] = (r[k] - sub(k) * r[k - 1]) / beta;
        }
        for k in (0..n.saturating_sub(1)).rev() {
            r[k] -= c[k] * r[k + 1];
        }
    }
}

/// Populations P_k (k = m + N/2) of the steady state of Gamma D[J-] + w D[J+] (module doc):
/// exp(-beta Jz)/Z for Gamma, w > 0, the ground (excited) state when w (Gamma) is 0; None when
/// both are 0 (no unique steady state).
pub fn steady(n: usize, gamma: f64, w: f64) -> Option<Vec<f64>> {
    if !(gamma >= 0.0 && w >= 0.0) || (gamma == 0.0 && w == 0.0) {
        return None;
    }
    let mut p = vec![0.0; n + 1];
    if w == 0.0 {
        p[0] = 1.0;
    } else if gamma == 0.0 {
        p[n] = 1.0;
    } else {
        // Geometric in ratio x = w/Gamma; built from the larger end so nothing overflows.
        let x = w / gamma;
        let (ratio, rev) = if x <= 1.0 { (x, false) } else { (1.0 / x, true) };
        let mut v = 1.0;
        for k in 0..=n {
            p[if rev { n - k } else { k }] = v;
            v *= ratio;
        }
        let z: f64 = p.iter().sum();
        p.iter_mut().for_each(|v| *v /= z);
    }
    Some(p)
}

/// Populations of exp(-beta Jz)/Z, k = m + N/2.
pub fn thermal(n: usize, beta: f64) -> Vec<f64> {
    let j = n as f64 / 2.0;
    let e: Vec<f64> = (0..=n).map(|k| -beta * (k as f64 - j)).collect();
    let top = e.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let p: Vec<f64> = e.iter().map(|x| (x - top).exp()).collect();
    let z: f64 = p.iter().sum();
    p.into_iter().map(|v| v / z).collect()
}

/// <Jz> and <Jz^2> of populations P_k.
pub fn jz_moments(p: &[f64]) -> (f64, f64) {
    let j = (p.len() as f64 - 1.0) / 2.0;
    p.iter().enumerate().fold((0.0, 0.0), |(a, b), (k, &v)| {
        let m = k as f64 - j;
        (a + m * v, b + m * m * v)
    })
}

const G: f64 = 2.0 - std::f64::consts::SQRT_2;
const D: f64 = G / 2.0;
const W: f64 = std::f64::consts::SQRT_2 / 4.0;
/// b - b^ (module doc): (w' - (1 - w')/3, w' - (3 w' + 1)/3, d - d/3).
const E: [f64; 3] = [W - (1.0 - W) / 3.0, W - (3.0 * W + 1.0) / 3.0, D - D / 3.0];

/// Work vectors of one integration.
struct Work {
    k: [Vec<f64>; 3],
    y2: Vec<f64>,
    y3: Vec<f64>,
    e: Vec<f64>,
    c: Vec<f64>,
}

/// What every step of one integration reads.
struct System<'a> {
    protocol: &'a Protocol,
    rates: &'a Rates,
    opts: &'a OdeOptions,
}

/// One TR-BDF2 step of `h` from (t, y) on the piece starting at `at`: the new state in
/// `ws.y3` and the error norm (module doc).
fn step(sys: &System, at: f64, t: f64, h: f64, y: &[f64], ws: &mut Work) -> f64 {
    let System {
        protocol,
        rates,
        opts,
    } = *sys;
    let gw = |t: f64| {
        let m = protocol.model_in(at, t);
        (m.gamma_coll, m.pump_coll)
    };
    let (g1, w1) = gw(t);
    let (g2, w2) = gw(t + G * h);
    let (g3, w3) = gw(t + h);
    let Work { k, y2, y3, e, c } = ws;
    rates.apply(g1, w1, y, &mut k[0]);
    for i in 0..y.len() {
        y2[i] = y[i] + h * D * k[0][i];
    }
    rates.solve(h * D, g2, w2, y2, c);
    rates.apply(g2, w2, y2, &mut k[1]);
    for i in 0..y.len() {
        y3[i] = y[i] + h * W * (k[0][i] + k[1][i]);
    }
    rates.solve(h * D, g3, w3, y3, c);
    rates.apply(g3, w3, y3, &mut k[2]);
    for i in 0..y.len() {
        e[i] = h * (E[0] * k[0][i] + E[1] * k[1][i] + E[2] * k[2][i]);
    }
    rates.solve(h * D, g3, w3, e, c);
    let sum: f64 = (0..y.len())
        .map(|i| {
            let sc = opts.atol + opts.rtol * y[i].abs().max(y3[i].abs());
            (e[i] / sc).powi(2)
        })
        .sum();
    (sum / y.len() as f64).sqrt()
}

/// Integrate the population rate equation of `protocol` (which must pass
/// [`protocol_support`]) from `p0` over `times`, calling `on_save(i, t_i, P)` at each save.
/// `opts`: rtol, atol, max_steps, h0 as for the explicit integrator.
pub fn evolve_protocol(
    protocol: &Protocol,
    p0: &[f64],
    times: &[f64],
    opts: &OdeOptions,
    mut on_save: impl FnMut(usize, f64, &[f64]),
) -> Result<OdeStats, SolverError> {
    if let Some((name, _)) = protocol_support(protocol) {
        return Err(SolverError::Unsupported {
            solver: "populations",
            message: format!(
                "`{name}` couples populations to coherences; the population rate equation needs \
                 Omega = 0 and no single-atom process"
            ),
        });
    }
    super::ode::check_options("populations", times, opts)?;
    let n = protocol.base.n + 1;
    if p0.len() != n || times.is_empty() {
        return Err(SolverError::Unsupported {
            solver: "populations",
            message: format!("{} populations for N + 1 = {n} levels", p0.len()),
        });
    }
    let breaks = super::ode::protocol_breaks(protocol, times, "populations")?;
    let rates = Rates::new(protocol.base.n);
    let sys = System {
        protocol,
        rates: &rates,
        opts,
    };
    let mut ws = Work {
        k: [vec![0.0; n], vec![0.0; n], vec![0.0; n]],
        y2: vec![0.0; n],
        y3: vec![0.0; n],
        e: vec![0.0; n],
        c: vec![0.0; n],
    };
    let mut y = p0.to_vec();
    let mut stats = OdeStats::default();
    let mut t = times[0];
    let mut next = 0;
    while next < times.len() && times[next] <= t {
        on_save(next, times[next], &y);
        next += 1;
    }
    let mut nb = breaks.partition_point(|&b| b <= t);
    let span = times[times.len() - 1] - t;
    let mut h = opts.h0.unwrap_or(1e-3 * span.max(f64::MIN_POSITIVE));
    let mut attempts = 0usize;
    let tiny = 64.0 * f64::EPSILON * times[0].abs().max(times[times.len() - 1].abs()).max(span);
    while next < times.len() {
        let at = if nb > 0 { breaks[nb - 1] } else { times[0] };
        // A break within rounding of the next save is that save (saves t_end i/(n-1) and a
        // break at t_end/2 may differ in the last bit): one step, not a sliver.
        let stop = breaks.get(nb).map_or(
            times[next],
            |&b| if b < times[next] - tiny { b } else { times[next] },
        );
        // Clip onto the save or break; stretch slightly rather than leave a sliver.
        let clipped = t + 1.01 * h >= stop;
        let hs = if clipped { stop - t } else { h };
        if hs <= 16.0 * f64::EPSILON * t.abs().max(span) {
            return Err(SolverError::StepSizeTooSmall { t, dt: hs });
        }
        if crate::interrupt::requested() {
            return Err(SolverError::Interrupted { t });
        }
        attempts += 1;
        if attempts > opts.max_steps {
            return Err(SolverError::TooManySteps {
                t,
                max_steps: opts.max_steps,
            });
        }
        let err = step(&sys, at, t, hs, &y, &mut ws);
        stats.rhs_evals += 3;
        if !err.is_finite() {
            return Err(SolverError::NonFinite { t });
        }
        let factor = (0.9 * err.powf(-1.0 / 3.0)).clamp(0.2, 5.0);
        if err > 1.0 {
            stats.rejected += 1;
            h = hs * factor.min(0.9);
            continue;
        }
        stats.steps += 1;
        std::mem::swap(&mut y, &mut ws.y3);
        // A clipped step resumes from the proposal it cut short.
        h = if clipped { h.max(hs * factor) } else { hs * factor };
        t = if clipped { stop } else { t + hs };
        while nb < breaks.len() && breaks[nb] <= t + tiny {
            nb += 1;
        }
        while next < times.len() && times[next] <= t {
            on_save(next, times[next], &y);
            next += 1;
        }
    }
    Ok(stats)
}
