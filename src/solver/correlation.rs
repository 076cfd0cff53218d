//! Two-time correlations by the quantum regression theorem (PHYSICS.md sec. 8; seed 004's
//! C_zz(tau)), on the exact master-equation solvers.
//!
//! For a Markovian master equation drho/dt = L rho and collective operators A, B,
//!
//! ```text
//! <A(t+tau) B(t)> = tr( A e^{L tau} (B rho(t)) )                      (QRT)
//! C(tau) = <A(t+tau) B(t)> - <A(t+tau)> <B(t)> = tr( A e^{L tau} Y ),  Y = (B - <B(t)>) rho(t)
//! ```
//!
//! (the second line by linearity of e^{L tau}: tr(A e^{L tau} rho(t)) = <A(t+tau)>). The
//! engine evolves Y, not B rho: C then decays to 0 with the integrator's absolute error
//! relative to |Y|, instead of being the small difference of two numbers of size <A><B>
//! (at N = 100, w = 0.8 Gamma, <Jz>^2 ~ 2e3 against C(0) = Var Jz ~ 20). The raw
//! <A(t+tau)B(t)> is C + <A(t+tau)><B(t)>; at the steady state <A(t+tau)> = <A> and only Y is
//! evolved, at a time t from a pure initial state rho(t) is evolved as well.
//!
//! Y is not Hermitian in general (B rho), which the solvers take as it is: the collective one
//! ([`master::evolve_with`]) with [`Storage::Full`], the block one ([`blocks::evolve`]) picks the
//! full complex storage for a non-Hermitian operator itself. The blocks represent any
//! permutation-invariant operator, not only states: a collective B acts within each irrep,
//! B (sum_j R_j (x) 1/d_j) = sum_j (B^(j) R_j) (x) 1/d_j, so Y's blocks are B^(j) R_j - <B> R_j
//! and tr(A X) = sum_j tr(A^(j) X_j).
//!
//! # Operators
//!
//! [`Op`]: Jx, Jy, Jz, J+ and J-, each tridiagonal in m. In irrep j (index k = m + j, `jp[k]`
//! = <k+1|J+|k>), left multiplication and the trace are stencils, O(dim^2) and O(dim):
//!
//! ```text
//! (A X)_rc = s_r X_{r-1,c} + d_r X_rc + u_r X_{r+1,c},   tr(A X) = sum_r s_r X_{r-1,r} + d_r X_rr + u_r X_{r+1,r}
//! Jz: d = m;  J+: s_r = jp[r-1];  J-: u_r = jp[r];  Jx = (J+ + J-)/2;  Jy = (J+ - J-)/(2i)
//! ```
//!
//! # Spectrum
//!
//! For a stationary correlation with A = B^dag (C_zz, C_xx, C_+-), C(-tau) = conj C(tau), so
//! the Fourier transform S(omega) = int_{-inf}^{inf} C(tau) e^{i omega tau} dtau is real and
//! equals 2 Re int_0^inf C(tau) e^{i omega tau} dtau; [`spectrum`] evaluates it by the
//! trapezoid rule over the computed tau grid (truncated at tau_end: C must have decayed there,
//! and the grid step dtau must resolve omega dtau << 1).
//!
//! # Relaxation-rate estimate of the pumping model
//!
//! Seed 004 eq. (7), from the QRT with third-order cumulants dropped:
//! lambda(w) = N (w - Gamma) / tanh(N (w/Gamma - 1)/2) = 2 Gamma x / tanh x with
//! x = N (w/Gamma - 1)/2, whose limit at w = Gamma is 2 Gamma ([`pumping_rate_estimate`]). At
//! w = Gamma exactly, d<Jz>/dt = (w - Gamma)<J^2 - Jz^2> - (w + Gamma)<Jz> = -2 Gamma <Jz>, so Jz
//! is a left eigenvector of L: C_zz(tau) = Var(Jz) e^{-2 Gamma tau} without any approximation.

use crate::basis::Irrep;
use crate::error::SolverError;
use crate::model::Model;
use crate::solver::master::{self, Storage};
use crate::solver::ode::OdeOptions;
use crate::solver::{blocks, ode};
use crate::state::{BlockState, DensityMatrix};
use num_complex::Complex64 as c64;
use serde::Serialize;

/// A collective operator of the model's algebra.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Jx,
    Jy,
    Jz,
    /// J+ = Jx + i Jy.
    Jp,
    /// J- = Jx - i Jy.
    Jm,
}

/// The names [`Op::parse`] accepts, for error messages.
pub const OP_NAMES: &str = "\"Jx\", \"Jy\", \"Jz\", \"Jp\" (or \"J+\"), \"Jm\" (or \"J-\")";

impl Op {
    /// "Jx", "Jy", "Jz", "Jp" or "J+", "Jm" or "J-".
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "Jx" => Op::Jx,
            "Jy" => Op::Jy,
            "Jz" => Op::Jz,
            "Jp" | "J+" => Op::Jp,
            "Jm" | "J-" => Op::Jm,
            _ => return None,
        })
    }

    /// The operator's name as written in output.
    pub fn name(self) -> &'static str {
        match self {
            Op::Jx => "Jx",
            Op::Jy => "Jy",
            Op::Jz => "Jz",
            Op::Jp => "J+",
            Op::Jm => "J-",
        }
    }

    /// The adjoint operator.
    pub fn adjoint(self) -> Op {
        match self {
            Op::Jp => Op::Jm,
            Op::Jm => Op::Jp,
            o => o,
        }
    }

    /// The three diagonals (sub, diag, super) of the operator in `irrep` (module doc).
    fn stencil(self, irrep: &Irrep) -> [Vec<c64>; 3] {
        let d = irrep.dim();
        let zero = vec![c64::new(0.0, 0.0); d];
        let (mut s, mut m, mut u) = (zero.clone(), zero.clone(), zero);
        // J+ below the diagonal (s_r = jp[r-1]) and J- above it (u_r = jp[r]), weighted.
        let (wp, wm) = match self {
            Op::Jz => {
                for (k, mk) in m.iter_mut().enumerate() {
                    *mk = c64::new(irrep.m[k], 0.0);
                }
                return [s, m, u];
            }
            Op::Jp => (c64::new(1.0, 0.0), c64::new(0.0, 0.0)),
            Op::Jm => (c64::new(0.0, 0.0), c64::new(1.0, 0.0)),
            Op::Jx => (c64::new(0.5, 0.0), c64::new(0.5, 0.0)),
            // (J+ - J-)/(2i) = -i J+/2 + i J-/2.
            Op::Jy => (c64::new(0.0, -0.5), c64::new(0.0, 0.5)),
        };
        for r in 0..d {
            if r > 0 {
                s[r] = wp * irrep.jp[r - 1];
            }
            if r + 1 < d {
                u[r] = wm * irrep.jp[r];
            }
        }
        [s, m, u]
    }
}

/// A permutation-invariant operator: the j = N/2 matrix of a collective model, or the blocks
/// R_j of a model with single-atom rates (module doc).
#[derive(Debug, Clone, PartialEq)]
pub enum PiOperator {
    Sym(DensityMatrix),
    Blocks(BlockState),
}

impl PiOperator {
    /// Every block as (2j, row-major data).
    pub fn blocks(&self) -> Vec<(usize, &[c64])> {
        match self {
            PiOperator::Sym(m) => vec![(m.dim.saturating_sub(1), &m.data[..])],
            PiOperator::Blocks(s) => (0..s.num_blocks()).map(|b| (s.two_j[b], s.block(b))).collect(),
        }
    }

    /// The flat data of all blocks.
    pub fn data(&self) -> &[c64] {
        match self {
            PiOperator::Sym(m) => &m.data,
            PiOperator::Blocks(s) => &s.data,
        }
    }

    /// The flat data of all blocks, mutable.
    pub fn data_mut(&mut self) -> &mut [c64] {
        match self {
            PiOperator::Sym(m) => &mut m.data,
            PiOperator::Blocks(s) => &mut s.data,
        }
    }

    /// sum_j tr X_j.
    pub fn trace(&self) -> c64 {
        match self {
            PiOperator::Sym(m) => m.trace(),
            PiOperator::Blocks(s) => s.trace(),
        }
    }
}

/// tr(A X) = sum_j tr(A^(j) X_j).
pub fn expect(op: Op, x: &PiOperator) -> c64 {
    let mut sum = c64::new(0.0, 0.0);
    for (two_j, blk) in x.blocks() {
        let irrep = Irrep::new(two_j);
        let d = irrep.dim();
        let [s, m, u] = op.stencil(&irrep);
        for r in 0..d {
            sum += m[r] * blk[r * d + r];
            if r > 0 {
                sum += s[r] * blk[(r - 1) * d + r];
            }
            if r + 1 < d {
                sum += u[r] * blk[(r + 1) * d + r];
            }
        }
    }
    sum
}

/// A X, block by block.
pub fn left_mul(op: Op, x: &PiOperator) -> PiOperator {
    let mut out = x.clone();
    let mut offset = 0;
    let mut results = Vec::new();
    for (two_j, blk) in x.blocks() {
        let irrep = Irrep::new(two_j);
        let d = irrep.dim();
        let [s, m, u] = op.stencil(&irrep);
        let mut y = vec![c64::new(0.0, 0.0); d * d];
        for r in 0..d {
            for c in 0..d {
                let mut v = m[r] * blk[r * d + c];
                if r > 0 {
                    v += s[r] * blk[(r - 1) * d + c];
                }
                if r + 1 < d {
                    v += u[r] * blk[(r + 1) * d + c];
                }
                y[r * d + c] = v;
            }
        }
        results.push((offset, y));
        offset += d * d;
    }
    let data = out.data_mut();
    for (o, y) in results {
        data[o..o + y.len()].copy_from_slice(&y);
    }
    out
}

/// The steady state: [`master::steady_state`] for a collective model, [`blocks::steady_state`]
/// with single-atom rates.
pub fn steady_state(model: &Model) -> Result<PiOperator, SolverError> {
    if model.is_collective() {
        Ok(PiOperator::Sym(master::steady_state(model)?.0))
    } else {
        Ok(PiOperator::Blocks(blocks::steady_state(model)?.0))
    }
}

/// Work of the evolutions of one correlation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CorrelationStats {
    /// Accepted Runge-Kutta steps (all evolutions).
    pub steps: usize,
    /// Liouvillian applications (all evolutions).
    pub rhs_evals: usize,
    /// max |tr Y(tau) - tr Y(0)| (tr Y = 0: the dissipator preserves traces).
    pub max_trace_error: f64,
    /// Whether rho(t + tau) was evolved too (a correlation away from the steady state).
    pub evolved_state: bool,
}

/// Evolve `x0` from `times[0]` under `model`, calling `on_save` at every time (the first
/// with `x0`): the collective solver with full storage, or the blocks.
pub fn evolve(
    model: &Model,
    x0: &PiOperator,
    times: &[f64],
    opts: &OdeOptions,
    on_save: &mut dyn FnMut(usize, &PiOperator),
) -> Result<CorrelationStats, SolverError> {
    let (steps, rhs_evals, max_trace_error) = match x0 {
        PiOperator::Sym(m) => {
            let mut wrap = PiOperator::Sym(DensityMatrix::zeros(0));
            let st = master::evolve_with(model, m, times, opts, Storage::Full, &mut |i, _t, x| {
                wrap = PiOperator::Sym(x.clone());
                on_save(i, &wrap)
            })?;
            (st.steps, st.rhs_evals, st.max_trace_error)
        }
        PiOperator::Blocks(s) => {
            let mut wrap = PiOperator::Blocks(BlockState::zeros(0));
            let st = blocks::evolve(model, s, times, opts, &mut |i, _t, x| {
                wrap = PiOperator::Blocks(x.clone());
                on_save(i, &wrap)
            })?;
            (st.steps, st.rhs_evals, st.max_trace_error)
        }
    };
    Ok(CorrelationStats {
        steps,
        rhs_evals,
        max_trace_error,
        evolved_state: false,
    })
}

/// The state at time `t` from the pure state `psi0` at 0 (R_{N/2} = |psi0><psi0| with
/// single-atom rates).
pub fn state_at(model: &Model, psi0: &[c64], t: f64, opts: &OdeOptions) -> Result<PiOperator, SolverError> {
    let rho0 = DensityMatrix::from_pure(psi0);
    let x0 = if model.is_collective() {
        PiOperator::Sym(rho0)
    } else {
        PiOperator::Blocks(BlockState::from_symmetric(&rho0))
    };
    let mut last = x0.clone();
    evolve(model, &x0, &[0.0, t], opts, &mut |_, x| last = x.clone())?;
    Ok(last)
}

/// C(tau) and <A(t+tau)B(t)> on a tau grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Correlation {
    pub taus: Vec<f64>,
    /// C(tau) = <A(t+tau)B(t)> - <A(t+tau)><B(t)>.
    pub c: Vec<c64>,
    /// <A(t+tau)B(t)>.
    pub ab: Vec<c64>,
    /// <A(t+tau)>.
    pub a_mean: Vec<c64>,
    /// <B(t)>.
    pub b_mean: c64,
    pub stats: CorrelationStats,
}

/// The correlation of `a` at t + tau with `b` at t, for the state `rho` = rho(t) (module doc);
/// `stationary`: rho is the steady state, so <A(t+tau)> = <A> (otherwise rho is evolved too).
/// `taus` must be finite, >= 0 and non-decreasing.
pub fn correlation(
    model: &Model,
    rho: &PiOperator,
    a: Op,
    b: Op,
    taus: &[f64],
    stationary: bool,
    opts: &OdeOptions,
) -> Result<Correlation, SolverError> {
    let bad = taus.is_empty()
        || taus.iter().any(|t| !t.is_finite() || *t < 0.0)
        || taus.windows(2).any(|w| w[1] < w[0]);
    if bad {
        return Err(SolverError::Unsupported {
            solver: "correlation",
            message: "the tau grid must be finite, >= 0 and non-decreasing".into(),
        });
    }
    // Integrate from tau = 0 (the state at t); a grid that starts later drops that save.
    let skip = usize::from(taus[0] > 0.0);
    let mut times = Vec::with_capacity(taus.len() + 1);
    if skip == 1 {
        times.push(0.0);
    }
    times.extend_from_slice(taus);

    let b_mean = expect(b, rho);
    let mut y0 = left_mul(b, rho);
    for (y, r) in y0.data_mut().iter_mut().zip(rho.data()) {
        *y -= b_mean * r;
    }
    let mut c = vec![c64::new(0.0, 0.0); taus.len()];
    let mut stats = evolve(model, &y0, &times, opts, &mut |i, y| {
        if i >= skip {
            c[i - skip] = expect(a, y);
        }
    })?;
    drop(y0);
    let a_mean = if stationary {
        vec![expect(a, rho); taus.len()]
    } else {
        let mut am = vec![c64::new(0.0, 0.0); taus.len()];
        let st = evolve(model, rho, &times, opts, &mut |i, x| {
            if i >= skip {
                am[i - skip] = expect(a, x);
            }
        })?;
        stats.steps += st.steps;
        stats.rhs_evals += st.rhs_evals;
        stats.evolved_state = true;
        am
    };
    let ab = c.iter().zip(&a_mean).map(|(ci, ai)| ci + ai * b_mean).collect();
    Ok(Correlation {
        taus: taus.to_vec(),
        c,
        ab,
        a_mean,
        b_mean,
        stats,
    })
}

/// S(omega) = 2 Re int_0^{tau_end} C(tau) e^{i omega tau} dtau by the trapezoid rule over the
/// grid (module doc: meaningful for a stationary C with A = B^dag).
pub fn spectrum(taus: &[f64], c: &[c64], omegas: &[f64]) -> Vec<f64> {
    omegas
        .iter()
        .map(|&w| {
            let f = |k: usize| c[k] * c64::new(0.0, w * taus[k]).exp();
            let integral: c64 = (1..taus.len().min(c.len()))
                .map(|k| (f(k) + f(k - 1)) * (0.5 * (taus[k] - taus[k - 1])))
                .sum();
            2.0 * integral.re
        })
        .collect()
}

/// Seed 004's relaxation-rate estimate lambda(w) = N (w - Gamma)/tanh(N (w/Gamma - 1)/2)
/// (module doc), continued to 2 Gamma at w = Gamma.
pub fn pumping_rate_estimate(n: usize, gamma: f64, w: f64) -> f64 {
    let x = n as f64 * (w / gamma - 1.0) / 2.0;
    if x.abs() < 1e-6 {
        // x / tanh x = 1 + x^2/3 - ...
        2.0 * gamma * (1.0 + x * x / 3.0)
    } else {
        2.0 * gamma * x / x.tanh()
    }
}

/// Whether `model` is seed 004's pumping model: Gamma > 0, w > 0 and every other term 0 (the
/// drive phase phi is irrelevant without a drive).
pub fn is_pumping_model(model: &Model) -> bool {
    model.gamma_coll > 0.0
        && model.pump_coll > 0.0
        && model.omega0 == 0.0
        && model.drive == 0.0
        && model.chi == 0.0
        && model.chi_z == 0.0
        && model.dephase_coll == 0.0
        && model.is_collective()
}

/// The ODE options of the correlation evolutions (tolerances as given, the first step from
/// the right-hand side).
pub fn ode_options(rtol: f64, atol: f64, max_steps: usize) -> OdeOptions {
    OdeOptions {
        rtol,
        atol,
        max_steps,
        ..ode::OdeOptions::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stencils against dense products: J+ J- = J^2 - Jz^2 + Jz, and tr(Jx X) = Re tr(J+ X)
    /// for Hermitian X.
    #[test]
    fn stencils_compose_to_the_casimir() {
        let n = 5;
        let irrep = Irrep::symmetric(n);
        let d = irrep.dim();
        let mut x = DensityMatrix::zeros(d);
        for r in 0..d {
            for c in 0..d {
                x.data[r * d + c] = c64::new((r * 7 + c * 3) as f64 * 0.01, (r as f64 - c as f64) * 0.02);
            }
        }
        let xo = PiOperator::Sym(x.clone());
        let jpjm = expect(Op::Jp, &left_mul(Op::Jm, &xo));
        let direct: c64 = (0..d).map(|k| irrep.jpjm[k] * x.data[k * d + k]).sum();
        assert!((jpjm - direct).norm() < 1e-12, "{jpjm} {direct}");
        // Jx = (J+ + J-)/2, Jy = (J+ - J-)/(2i).
        let (p, m) = (expect(Op::Jp, &xo), expect(Op::Jm, &xo));
        assert!((expect(Op::Jx, &xo) - (p + m) * 0.5).norm() < 1e-13);
        assert!((expect(Op::Jy, &xo) - (p - m) / c64::new(0.0, 2.0)).norm() < 1e-13);
    }

    #[test]
    fn rate_estimate_is_continuous_at_criticality() {
        assert!((pumping_rate_estimate(100, 1.0, 1.0) - 2.0).abs() < 1e-15);
        let near = pumping_rate_estimate(100, 1.0, 1.0 + 2e-8);
        assert!((near - 2.0).abs() < 1e-9, "{near}");
        // Far from it: N |w - Gamma|.
        let far = pumping_rate_estimate(100, 1.0, 1.5);
        assert!((far - 50.0).abs() < 1e-9, "{far}");
    }

    #[test]
    fn spectrum_of_an_exponential_is_a_lorentzian() {
        let g = 2.0;
        let taus: Vec<f64> = (0..20001).map(|k| k as f64 * 1e-3).collect();
        let c: Vec<c64> = taus.iter().map(|t| c64::new((-g * t).exp(), 0.0)).collect();
        let s = spectrum(&taus, &c, &[0.0, 1.0]);
        // 2 g / (g^2 + omega^2); trapezoid error ~ dtau^2.
        assert!((s[0] - 1.0).abs() < 1e-6, "{}", s[0]);
        assert!((s[1] - 0.8).abs() < 1e-6, "{}", s[1]);
    }
}
