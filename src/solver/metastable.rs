//! Metastable decomposition of the steady state (seed 000 eqs. 4-5 and 9-10; Macieszczak et
//! al., PRL 116, 240404 (2016); Minganti et al., PRA 98, 042118 (2018)).
//!
//! Near a first-order dissipative transition the slowest nonzero eigenvalue lambda_1 of L is
//! real and small, and at long times `rho(t) = rho_ss + c_1 rho_1 e^{lambda_1 t}`. The
//! eigenmode rho_1 (traceless, Hermitian up to a phase for real lambda_1, since
//! `L(rho^dag) = (L rho)^dag`) splits into its positive and negative parts,
//!
//! ```text
//! rho_1 = P - M,  P, M >= 0,  P M = 0,  tr P = tr M
//! rho_+ = P / tr P,  rho_- = M / tr M,
//! a_+- = tr(rho_ss rho_+-) / tr(rho_+-^2),      rho_ss ~ a_+ rho_+ + a_- rho_-,  a_+ + a_- ~ 1
//! dp_+-/dt = -Gamma_+- p_+- + Gamma_-+ p_-+,    Gamma_+- = |lambda_1| a_-+   (eq. 10)
//! ```
//!
//! Gamma_+ is the rate out of rho_+. The sign of rho_1 is arbitrary; here rho_+ is the part with
//! the lower <Jz> (seed 000's lower, CRSS-like branch, its Fig. 3a).
//!
//! **Permutation-invariant states.** With single-atom rates the states are blocks R_j
//! ([`crate::state::BlockState`]): the full 2^N operator is `sum_j R_j (x) 1_{d_j} / d_j`, so its
//! eigen-decomposition is that of each block (eigenvalues e / d_j, each d_j-fold); the positive
//! part is taken block by block, `tr P = sum_j tr P_j`, and a trace of a product of two such
//! operators is `sum_j tr(A_j B_j) / d_j` (weights d_min / d_j, exact ratios without overflow:
//! d_j reaches 1e14 at N = 54). A collective model's states are the j = N/2 block alone (d = 1),
//! so one code serves both spaces. Checked against the same decomposition of the full 2^N
//! Lindbladian's eigenvector (tests/metastable.rs).
//!
//! **How good is the decomposition.** `a_+ + a_- -> 1` and `pm_distance` = sum_m |P_m(rho_ss) -
//! a_+ P_m(rho_+) - a_- P_m(rho_-)| measure how well two states span the slow manifold (both
//! -> 0 as the gap to lambda_2 opens, i.e. as N grows).

use crate::basis::ln_degeneracy;
use crate::error::SolverError;
use crate::model::Model;
use crate::observe;
use crate::solver::spectrum::{self, Space, Spectrum, SpectrumOptions};
use crate::state::BlockState;
use faer::Mat;
use num_complex::Complex64 as c64;

/// How many eigenvalues nearest 0 are computed to find lambda_1 (the smallest |Re| among the
/// nonzero ones); a complex lambda_1 would come with its conjugate, so a few suffice.
const K_NEAREST: usize = 6;

/// The decomposition (module doc). States are normalised (trace 1) block states.
#[derive(Debug, Clone)]
pub struct Metastable {
    /// The slowest nonzero eigenvalue (real part < 0, imaginary part at rounding).
    pub lambda1: c64,
    /// The next one by |Re|: |Re lambda_2| / |Re lambda_1| is the metastability's separation of
    /// time scales.
    pub lambda2: Option<c64>,
    pub steady: BlockState,
    pub plus: BlockState,
    pub minus: BlockState,
    pub a_plus: f64,
    pub a_minus: f64,
    /// The same weights with the traces taken over the blocks without their degeneracies,
    /// `sum_j tr(A_j B_j)`: what a code that stores R_j and squares it directly computes (QuTiP
    /// PIQS, its issue 993). Not a property of the 2^N state; kept because seed 000's quoted
    /// weights (a_+ = 0.4, a_- = 0.5 at N = 18, Omega = 0.73 Omega_c) are these.
    pub a_plus_blocks: f64,
    pub a_minus_blocks: f64,
    /// Gamma_+ = |lambda_1| a_-: the rate out of rho_+; Gamma_- = |lambda_1| a_+.
    pub rate_plus: f64,
    pub rate_minus: f64,
    /// sum_m |P_m(rho_ss) - a_+ P_m(rho_+) - a_- P_m(rho_-)|.
    pub pm_distance: f64,
    /// Residuals of the two eigenpairs (module doc of [`crate::solver::spectrum`]).
    pub residual_steady: f64,
    pub residual_1: f64,
    pub spectrum_stats: spectrum::SpectrumStats,
}

/// Imaginary parts below this fraction of |lambda| (or of 1) count as rounding: lambda real.
pub const REAL_TOL: f64 = 1e-8;

/// Decompose the steady state of `model` (module doc).
pub fn decompose(model: &Model, space: Space) -> Result<Metastable, SolverError> {
    let opts = SpectrumOptions {
        k: K_NEAREST,
        ..Default::default()
    };
    let sp = spectrum::eigenvalues(model, space, &opts)?;
    let unsupported = |message: String| SolverError::Unsupported {
        solver: "metastable",
        message,
    };
    let ss = sp
        .pairs
        .iter()
        .find(|p| p.value == c64::new(0.0, 0.0))
        .ok_or_else(|| unsupported("the steady state (lambda = 0) was not found".into()))?;
    let mut others = sp.pairs.iter().filter(|p| p.value != c64::new(0.0, 0.0));
    let first = others
        .next()
        .ok_or_else(|| unsupported("L has no eigenvalue besides 0 (dimension 1)".into()))?;
    let l1 = first.value;
    if l1.im.abs() > REAL_TOL * l1.norm().max(1.0) {
        return Err(unsupported(format!(
            "the slowest mode is oscillatory (lambda_1 = {:.6e} {:+.6e} i): no metastable pair of \
             states; the decomposition needs a real lambda_1",
            l1.re, l1.im
        )));
    }
    let lambda2 = others.next().map(|p| p.value);
    // Hermitian, then trace 1 (X + X^dag doubles a Hermitian X).
    let mut steady = hermitian(&to_blocks(&sp, &ss.vector, model.n))?;
    let t = steady.trace().re;
    steady.data.iter_mut().for_each(|z| *z /= t);
    let rho1 = hermitian(&to_blocks(&sp, &first.vector, model.n))?;
    let (mut plus, mut minus) = split(&rho1)?;
    if observe::moments_blocks(&plus).mean[2] > observe::moments_blocks(&minus).mean[2] {
        std::mem::swap(&mut plus, &mut minus);
    }
    let weight =
        |s: &BlockState, degeneracy: bool| overlap(&steady, s, degeneracy) / overlap(s, s, degeneracy);
    let (a_plus, a_minus) = (weight(&plus, true), weight(&minus, true));
    let (a_plus_blocks, a_minus_blocks) = (weight(&plus, false), weight(&minus, false));
    let (p_ss, p_p, p_m) = (
        observe::pm_blocks(&steady),
        observe::pm_blocks(&plus),
        observe::pm_blocks(&minus),
    );
    let pm_distance = (0..p_ss.len())
        .map(|i| (p_ss[i] - a_plus * p_p[i] - a_minus * p_m[i]).abs())
        .sum();
    let rate = l1.re.abs();
    Ok(Metastable {
        lambda1: l1,
        lambda2,
        steady,
        plus,
        minus,
        a_plus,
        a_minus,
        a_plus_blocks,
        a_minus_blocks,
        rate_plus: rate * a_minus,
        rate_minus: rate * a_plus,
        pm_distance,
        residual_steady: ss.residual,
        residual_1: first.residual,
        spectrum_stats: sp.stats.clone(),
    })
}

/// An eigenvector of [`spectrum::eigenvalues`] (elements (block, r, c)) as block matrices.
/// The blocks are those of the spectrum's space: every R_j, or the j = N/2 block alone for
/// the collective space (never all N^3/6 elements of a collective model).
fn to_blocks(sp: &Spectrum, v: &[c64], n: usize) -> BlockState {
    let two_j: Vec<usize> = sp.dims.iter().map(|d| d - 1).collect();
    let mut offsets = vec![0];
    for d in &sp.dims {
        offsets.push(offsets[offsets.len() - 1] + d * d);
    }
    let mut s = BlockState {
        n,
        two_j,
        data: vec![c64::new(0.0, 0.0); offsets[offsets.len() - 1]],
        offsets,
    };
    for (&(b, r, c), z) in sp.elements.iter().zip(v) {
        let d = s.dim(b);
        s.data[s.offsets[b] + r * d + c] = *z;
    }
    s
}

/// The Hermitian eigenvector in the span of X: X + X^dag or i (X - X^dag), whichever is larger
/// (X is Hermitian up to a phase for a real, simple eigenvalue; both are eigenvectors).
fn hermitian(x: &BlockState) -> Result<BlockState, SolverError> {
    let mut a = x.clone();
    let mut b = x.clone();
    for blk in 0..x.num_blocks() {
        let (d, o) = (x.dim(blk), x.offsets[blk]);
        for r in 0..d {
            for c in 0..d {
                let (u, w) = (x.data[o + r * d + c], x.data[o + c * d + r].conj());
                a.data[o + r * d + c] = u + w;
                b.data[o + r * d + c] = c64::new(0.0, 1.0) * (u - w);
            }
        }
    }
    let size = |s: &BlockState| s.data.iter().map(|z| z.norm_sqr()).sum::<f64>();
    let h = if size(&a) >= size(&b) { a } else { b };
    if size(&h) == 0.0 {
        return Err(SolverError::Unsupported {
            solver: "metastable",
            message: "the eigenvector is zero".into(),
        });
    }
    Ok(h)
}

/// The normalised positive and negative parts (rho_+, rho_-) of a Hermitian block state, block
/// by block (module doc); a normalised state for the steady state's own sign convention.
fn split(h: &BlockState) -> Result<(BlockState, BlockState), SolverError> {
    let mut pos = h.clone();
    pos.data.iter_mut().for_each(|z| *z = c64::new(0.0, 0.0));
    let mut neg = pos.clone();
    for b in 0..h.num_blocks() {
        let d = h.dim(b);
        let blk = h.block(b);
        let m = Mat::<c64>::from_fn(d, d, |r, c| blk[r * d + c]);
        let eig = m.self_adjoint_eigen(faer::Side::Lower).map_err(|e| {
            SolverError::Factorization(format!("Hermitian eigendecomposition of block {b}: {e:?}"))
        })?;
        let (u, s) = (eig.U(), eig.S());
        let o = h.offsets[b];
        for k in 0..d {
            let e = s[k].re;
            let target = if e > 0.0 { &mut pos } else { &mut neg };
            let w = e.abs();
            for r in 0..d {
                for c in 0..d {
                    target.data[o + r * d + c] += w * u[(r, k)] * u[(c, k)].conj();
                }
            }
        }
    }
    for s in [&mut pos, &mut neg] {
        let t = s.trace().re;
        if t <= 0.0 {
            return Err(SolverError::Unsupported {
                solver: "metastable",
                message: "the slow eigenmode is semidefinite, not traceless: no pair of states".into(),
            });
        }
        s.data.iter_mut().for_each(|z| *z /= t);
    }
    Ok((pos, neg))
}

/// tr(A B) of the full 2^N operators, up to a common factor (module doc: sum_j tr(A_j B_j)/d_j
/// with weights d_min/d_j); A and B Hermitian. Without `degeneracy`: sum_j tr(A_j B_j)
/// ([`Metastable::a_plus_blocks`]).
fn overlap(a: &BlockState, b: &BlockState, degeneracy: bool) -> f64 {
    let ln_d: Vec<f64> = a.two_j.iter().map(|&t| ln_degeneracy(a.n, t)).collect();
    let ln_min = ln_d.iter().cloned().fold(f64::INFINITY, f64::min);
    (0..a.num_blocks())
        .map(|k| {
            let s: f64 = a
                .block(k)
                .iter()
                .zip(b.block(k))
                .map(|(x, y)| (x * y.conj()).re)
                .sum();
            if degeneracy {
                s * (ln_min - ln_d[k]).exp()
            } else {
                s
            }
        })
        .sum()
}
