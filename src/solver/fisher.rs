//! Fisher information of the steady state with respect to a model parameter p (seed 004,
//! App. D: the metrology of collectively pumped superradiance).
//!
//! # The derivative d rho/dp
//!
//! Central differences of exact steady states ([`super::correlation::steady_state`]: the
//! collective solver, or the blocks with single-atom rates), extrapolated by Ridders' method
//! (Richardson on a tableau of steps h0, h0/2, h0/4, ...; Press et al., Numerical Recipes
//! sec. 5.7, `dfridr`), applied to the whole state vector with the max norm:
//!
//! ```text
//! D(h) = (rho(p + h) - rho(p - h)) / (2h) = rho' + rho''' h^2/6 + O(h^4)
//! D_{k}(h) = (4^k D_{k-1}(h/2) - D_{k-1}(h)) / (4^k - 1)        (error O(h^{2k+2}))
//! ```
//!
//! The tableau stops when the extrapolation stops improving (its error estimate, the larger
//! change against the two neighbouring entries, grows by 2x), and returns its best entry and
//! that estimate ([`Fisher::derivative_error`], relative to max |d rho/dp|). Each step costs
//! two steady states; at most [`MAX_LEVELS`] levels. The steady states are accurate to ~1e-14
//! relative (iterative refinement), so rounding limits the derivative to ~1e-14/h relative.
//! Start step: h0 = 0.1 |p| / sqrt(N) (p != 0), else 0.1 x the largest rate or frequency of
//! the model / sqrt(N); the steady state of a collective model near a transition varies on a
//! parameter scale ~ p/N (seed 004: the transition's width is 2 Gamma/N, and the thermal
//! state's tanh has complex poles at |w/Gamma - 1| = 2 pi/N, which bounds the Taylor series of
//! rho(p +- h)), and Ridders halves h from there. A rate must stay >= 0 at p - h: h0 <= p/2.
//! (The exact linear response L drho = -(dL/dp) rho would need the steady-state factorisation
//! with a general right-hand side; the differences reuse the validated solvers as they are.)
//!
//! # The informations
//!
//! - Classical, of the magnetisation distribution P_m = sum_j <j,m|R_j|j,m>:
//!   F_C = sum_m (dP_m/dp)^2 / P_m (terms with P_m = 0 dropped).
//! - Quantum (symmetric logarithmic derivative): with rho = sum_k p_k |k><k|,
//!   F_Q = 2 sum_{k,l: p_k + p_l > 0} |<k| d rho |l>|^2 / (p_k + p_l).
//!   For the permutation-invariant rho = sum_j R_j (x) 1_{d_j}/d_j (and d rho alike), the
//!   eigenvalues are those of R_j/d_j, d_j-fold, so F_Q = sum_j F_Q(R_j, dR_j) with the same
//!   formula on the unnormalised blocks (the d_j cancel): a dense Hermitian eigendecomposition
//!   per block (faer). Pairs with p_k + p_l <= [`EIGEN_CUTOFF`] (eigenvalues at the rounding
//!   level of the eigensolver) are dropped.
//! - When rho and d rho are diagonal in m (to [`DIAGONAL_TOL`] relative; e.g. every model
//!   without a drive), F_Q = sum_{j,m} (d(R_j)_mm)^2/(R_j)_mm exactly, no eigensolver; for a
//!   collective model this is F_C (seed 004 App. D: F_Q = F_C = Var(Jz)/w^2 for the thermal
//!   state exp(-beta Jz)/Z, beta = -ln(w/Gamma)).
//! - Error propagation for an observable O: delta p = sqrt(Var O) / |d<O>/dp|, with
//!   d<O>/dp = tr(O d rho/dp). Cramer-Rao: delta p >= 1/sqrt(F_Q) (single shot), and
//!   delta p >= 1/sqrt(F_C) for any estimator from P_m.

use super::correlation::{self, Op, PiOperator};
use crate::error::SolverError;
use crate::model::Model;
use num_complex::Complex64 as c64;
use serde::Serialize;

/// Most Ridders levels (two steady states each).
pub const MAX_LEVELS: usize = 8;
/// Off-diagonal elements below this fraction of the largest element count as zero.
pub const DIAGONAL_TOL: f64 = 1e-13;
/// Eigenvalue pairs with p_k + p_l at or below this (tr rho = 1) are dropped from F_Q.
pub const EIGEN_CUTOFF: f64 = 1e-13;

/// The Fisher informations and the error-propagation sensitivity at one parameter value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Fisher {
    /// The parameter's value p.
    pub value: f64,
    /// F_C of P_m.
    pub f_classical: f64,
    /// F_Q (None when not computed).
    pub f_quantum: Option<f64>,
    /// Whether F_Q came from the diagonal shortcut (no eigendecomposition).
    pub diagonal: bool,
    /// <O>, d<O>/dp and Var O of the observable.
    pub mean: f64,
    pub d_mean: f64,
    pub variance: f64,
    /// sqrt(Var O)/|d<O>/dp|.
    pub delta_error_propagation: f64,
    /// The derivative's error estimate relative to max |d rho/dp| (module doc).
    pub derivative_error: f64,
    /// The start step h0 and the number of steady states solved.
    pub step: f64,
    pub solves: usize,
}

/// `model` with parameter `name` set to `value` (validated like a scenario's model).
fn with_param(model: &Model, name: &str, value: f64) -> Result<Model, SolverError> {
    let values = model
        .values()
        .into_iter()
        .map(|(k, v)| (k, if k == name { value } else { v }));
    Model::from_values(values).map_err(|e| SolverError::Unsupported {
        solver: "fisher",
        message: format!("the steady state at {name} = {value}: {e}"),
    })
}

/// Whether `name` is a rate (>= 0) of the model.
fn is_rate(name: &str) -> bool {
    matches!(
        name,
        "Gamma" | "w" | "Gamma_phi" | "gamma_down" | "gamma_up" | "gamma_phi"
    )
}

/// The default start step (module doc).
pub fn default_step(model: &Model, name: &str) -> f64 {
    let p = model.get(name).unwrap_or(0.0);
    let scale = if p != 0.0 {
        p.abs()
    } else {
        model
            .values()
            .iter()
            .filter(|(k, _)| *k != "N" && *k != "phi")
            .map(|(_, v)| v.abs())
            .fold(0.0, f64::max)
            .max(f64::MIN_POSITIVE)
    };
    let h = 0.1 * scale / (model.n as f64).sqrt().max(1.0);
    if is_rate(name) { h.min(0.5 * p) } else { h }
}

/// The steady state's data at parameter value `v`, as re/im pairs (the differences' vector).
fn flat(model: &Model, name: &str, v: f64) -> Result<Vec<f64>, SolverError> {
    let s = correlation::steady_state(&with_param(model, name, v)?)?;
    Ok(s.data().iter().flat_map(|z| [z.re, z.im]).collect())
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// d rho/dp by Ridders' extrapolation from the start step `h0` (module doc): the derivative
/// (re/im pairs), its absolute error estimate, and the number of solves.
fn ridders(model: &Model, name: &str, h0: f64) -> Result<(Vec<f64>, f64, usize), SolverError> {
    let p = model.get(name).unwrap_or(f64::NAN);
    let central = |h: f64| -> Result<Vec<f64>, SolverError> {
        let (hi, lo) = (flat(model, name, p + h)?, flat(model, name, p - h)?);
        Ok(hi.iter().zip(&lo).map(|(a, b)| (a - b) / (2.0 * h)).collect())
    };
    let mut prev: Vec<Vec<f64>> = vec![central(h0)?];
    let mut best = prev[0].clone();
    let mut err = f64::INFINITY;
    let mut h = h0;
    for level in 1..MAX_LEVELS {
        h /= 2.0;
        let mut row = vec![central(h)?];
        let mut fac = 4.0;
        for j in 1..=level {
            let next: Vec<f64> = row[j - 1]
                .iter()
                .zip(&prev[j - 1])
                .map(|(a, b)| (a * fac - b) / (fac - 1.0))
                .collect();
            fac *= 4.0;
            let d1 = next.iter().zip(&row[j - 1]).map(|(a, b)| (a - b).abs());
            let d2 = next.iter().zip(&prev[j - 1]).map(|(a, b)| (a - b).abs());
            let e = d1.chain(d2).fold(0.0, f64::max);
            if e <= err {
                err = e;
                best = next.clone();
            }
            row.push(next);
        }
        // Higher orders stopped helping: the tableau's diagonal moved by more than 2 err.
        let diag = row[level]
            .iter()
            .zip(&prev[level - 1])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        prev = row;
        if diag >= 2.0 * err {
            return Ok((best, err, 2 * (level + 1)));
        }
    }
    Ok((best, err, 2 * MAX_LEVELS))
}

/// re/im pairs back to complex numbers, in the layout of `like`.
fn to_operator(like: &PiOperator, v: &[f64]) -> PiOperator {
    let mut out = like.clone();
    for (k, z) in out.data_mut().iter_mut().enumerate() {
        *z = c64::new(v[2 * k], v[2 * k + 1]);
    }
    out
}

/// Whether every off-diagonal element is below [`DIAGONAL_TOL`] of the largest element.
fn is_diagonal(x: &PiOperator) -> bool {
    let big = x.data().iter().fold(0.0f64, |m, z| m.max(z.norm()));
    x.blocks().iter().all(|(two_j, blk)| {
        let d = two_j + 1;
        (0..d).all(|r| (0..d).all(|c| r == c || blk[r * d + c].norm() <= DIAGONAL_TOL * big))
    })
}

/// F_C of P_m = sum_j (R_j)_mm, and the diagonal sum_{j,m} (dR_j)_mm^2/(R_j)_mm.
fn diagonal_informations(rho: &PiOperator, drho: &PiOperator) -> (f64, f64) {
    let nm = rho.blocks().first().map_or(0, |b| b.0 + 1);
    let (mut p, mut dp) = (vec![0.0; nm], vec![0.0; nm]);
    let mut joint = 0.0;
    for ((two_j, r), (_, dr)) in rho.blocks().into_iter().zip(drho.blocks()) {
        let d = two_j + 1;
        // Block j's level k has m = k - j; index m + N/2 = k + (N - 2j)/2 in P_m.
        let shift = (nm - d) / 2;
        for k in 0..d {
            let (x, dx) = (r[k * d + k].re, dr[k * d + k].re);
            p[k + shift] += x;
            dp[k + shift] += dx;
            if x > 0.0 {
                joint += dx * dx / x;
            }
        }
    }
    let fc = p
        .iter()
        .zip(&dp)
        .filter(|(x, _)| **x > 0.0)
        .map(|(x, dx)| dx * dx / x)
        .sum();
    (fc, joint)
}

/// F_Q = sum_j 2 sum_{kl} |<k|dR_j|l>|^2/(p_k + p_l) (module doc).
fn sld_information(rho: &PiOperator, drho: &PiOperator) -> Result<f64, SolverError> {
    let mut f = 0.0;
    for ((two_j, r), (_, dr)) in rho.blocks().into_iter().zip(drho.blocks()) {
        let d = two_j + 1;
        // The Hermitian parts (the solvers' states are Hermitian to rounding).
        let m = faer::Mat::<c64>::from_fn(d, d, |a, b| 0.5 * (r[a * d + b] + r[b * d + a].conj()));
        let dm = faer::Mat::<c64>::from_fn(d, d, |a, b| 0.5 * (dr[a * d + b] + dr[b * d + a].conj()));
        let eig = m.self_adjoint_eigen(faer::Side::Lower).map_err(|e| {
            SolverError::Factorization(format!("eigendecomposition of the block 2j = {two_j}: {e:?}"))
        })?;
        let (u, s) = (eig.U(), eig.S());
        let rot = u.adjoint() * &dm * u;
        for k in 0..d {
            for l in 0..d {
                let sum = s[k].re + s[l].re;
                if sum > EIGEN_CUTOFF {
                    f += 2.0 * rot[(k, l)].norm_sqr() / sum;
                }
            }
        }
    }
    Ok(f)
}

/// The Fisher informations of the steady state of `model` with respect to `parameter` (not
/// N), and the error-propagation sensitivity of `observable` (Hermitian: Jx, Jy, Jz); `step`:
/// the start step h0 (None: [`default_step`]); `quantum`: compute F_Q.
pub fn fisher(
    model: &Model,
    parameter: &str,
    observable: Op,
    step: Option<f64>,
    quantum: bool,
) -> Result<Fisher, SolverError> {
    let value =
        model
            .get(parameter)
            .filter(|_| parameter != "N")
            .ok_or_else(|| SolverError::Unsupported {
                solver: "fisher",
                message: format!("`{parameter}` is not a continuous model parameter"),
            })?;
    let h0 = step.unwrap_or_else(|| default_step(model, parameter));
    if !(h0 > 0.0 && h0.is_finite()) || (is_rate(parameter) && value - h0 < 0.0) {
        return Err(SolverError::Unsupported {
            solver: "fisher",
            message: format!(
                "the central differences need a step 0 < h <= {parameter} for a rate \
                 ({parameter} = {value}, h = {h0}): a rate of 0 has no two-sided neighbourhood"
            ),
        });
    }
    let rho = correlation::steady_state(model)?;
    let (d, err, solves) = ridders(model, parameter, h0)?;
    let drho = to_operator(&rho, &d);
    let (f_classical, joint) = diagonal_informations(&rho, &drho);
    let diagonal = is_diagonal(&rho) && is_diagonal(&drho);
    let f_quantum = match (quantum, diagonal) {
        (false, _) => None,
        (true, true) => Some(joint),
        (true, false) => Some(sld_information(&rho, &drho)?),
    };
    let mean = correlation::expect(observable, &rho).re;
    let second = correlation::expect(observable, &correlation::left_mul(observable, &rho)).re;
    let d_mean = correlation::expect(observable, &drho).re;
    let variance = second - mean * mean;
    Ok(Fisher {
        value,
        f_classical,
        f_quantum,
        diagonal,
        mean,
        d_mean,
        variance,
        delta_error_propagation: variance.max(0.0).sqrt() / d_mean.abs(),
        derivative_error: err / max_abs(&d).max(f64::MIN_POSITIVE),
        step: h0,
        solves: solves + 1,
    })
}

/// Bytes of the differences besides the steady-state solves: two rows of the Ridders tableau
/// (at most [`MAX_LEVELS`] vectors each), the best entry, rho, d rho and the two states of a
/// difference, each as many complex numbers as the state has elements.
pub fn difference_bytes(model: &Model) -> f64 {
    let elements = if model.is_collective() {
        ((model.n + 1) * (model.n + 1)) as f64
    } else {
        crate::state::blocks::block_elements(model.n) as f64
    };
    (2 * MAX_LEVELS + 5) as f64 * 16.0 * elements
}

/// Bytes of the F_Q eigendecompositions: the largest block's dense matrix, its derivative,
/// the eigenvectors and the rotated derivative (complex), and faer's workspace (as much again).
pub fn quantum_memory_bytes(model: &Model) -> f64 {
    let d = (model.n + 1) as f64;
    8.0 * 16.0 * d * d
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The diagonal and the SLD forms agree on a diagonal state (F_Q = sum dp^2/p).
    #[test]
    fn sld_reduces_to_the_classical_form_on_diagonal_states() {
        let mut rho = crate::state::DensityMatrix::zeros(3);
        let mut drho = rho.clone();
        for (k, (p, dp)) in [(0.5, 0.1), (0.3, -0.04), (0.2, -0.06)].iter().enumerate() {
            rho.data[k * 3 + k] = c64::new(*p, 0.0);
            drho.data[k * 3 + k] = c64::new(*dp, 0.0);
        }
        let (r, dr) = (PiOperator::Sym(rho), PiOperator::Sym(drho));
        let (fc, joint) = diagonal_informations(&r, &dr);
        let sld = sld_information(&r, &dr).unwrap();
        let expect = 0.01 / 0.5 + 0.0016 / 0.3 + 0.0036 / 0.2;
        assert!((fc - expect).abs() < 1e-15 && (joint - expect).abs() < 1e-15);
        assert!((sld - expect).abs() < 1e-14, "{sld} {expect}");
    }
}
