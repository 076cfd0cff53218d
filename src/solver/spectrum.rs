//! The Liouvillian's eigenvalues nearest a target (PHYSICS.md sections 1-3 for L; issue 13),
//! on the CPU in f64: `L rho = lambda rho` for the collective manifold j = N/2
//! ([`Space::Collective`], (N+1)^2 unknowns, the operator of [`super::master`]) or the
//! permutation-invariant blocks R_j ([`Space::Blocks`], sum_j (2j+1)^2 unknowns, the operator of
//! [`super::blocks`]).
//!
//! # The operator
//!
//! L is assembled as a complex sparse matrix (CSR) on the elements (b, r, c) of the blocks (one
//! block for the collective manifold), row (b, r, c) being the equation of that element, from
//! the same couplings the steady-state assemblies use ([`super::master::collective_couplings`],
//! [`super::blocks::SparseBlocks`]), in the phi = 0 frame: the drive phase is a gauge
//! `rho -> U rho U^dag`, U = exp(-i phi Jz), which leaves the eigenvalues unchanged and maps
//! the eigenvectors by `rho_rc -> e^{-i phi (r - c)} rho_rc` (applied to the returned vectors).
//!
//! **Sectors.** Without a drive (Omega = 0) every term of the engine model keeps q = c - r
//! (the Hamiltonian is diagonal in m, every jump moves r and c together), so L is block
//! diagonal in q and `sector = q` restricts the unknowns to the elements with c - r = q (seed
//! 004 App. C: populations q = 0, coherences q != 0). The assembly refuses a sector when a
//! coupling leaves it.
//!
//! # The algorithm: shift-invert Arnoldi with thick restarts
//!
//! The eigenvalues nearest sigma are the largest `theta = 1/(lambda - sigma)` of
//! `T = (L - sigma)^-1`, applied through one sparse LU: nested dissection of the (b, m_r, m_c)
//! lattice and a multifrontal factorisation in complex arithmetic ([`crate::solver::frontal`];
//! the populations, which the trace row couples, are eliminated last).
//! The Krylov decomposition `T V_m = V_m H_m + v_m h^T` (orthonormal V, CGS with one
//! reorthogonalisation, H_m dense m x m) is expanded to m = `ncv` vectors; the Ritz pairs
//! (theta_i, V_m y_i) come from faer's dense complex eigendecomposition of H_m, with residual
//! estimates |h^T y_i| (|y_i| = 1). A pair has converged when |h^T y_i| <= tol |theta_i|
//! (tol = 1e-12 by default: the estimate's rounding floor, ~eps cond(L - sigma) |theta|, was
//! measured up to 5e-13 |theta|; a Krylov space as large as the range of T counts as converged
//! whatever the estimates). Until the k wanted (largest |theta|) have converged, the decomposition is restarted with the p
//! best Ritz vectors (Morgan, Math. Comp. 65, 1213 (1996); Stewart's Krylov-Schur restart,
//! SIAM J. Matrix Anal. Appl. 23, 601 (2001), with an orthonormalised Ritz basis Q in place
//! of Schur vectors): `V <- V_m Q`, `H <- Q^H H_m Q`, `h^T <- h^T Q`, and v_m stays the next
//! basis vector; a Krylov decomposition again, so the expansion continues from p.
//!
//! **The steady state (deflation).** L is trace preserving, so lambda = 0 is an eigenvalue
//! with left eigenvector the trace, and shift-invert at sigma = 0 would factor a singular
//! matrix: the Arnoldi relation's backward error is then relative to |T| ~ 1/(pivot), which
//! ruins every other eigenvalue. Instead, wherever the unknowns include the populations
//! (no sector or q = 0) and the steady state is unique, T acts on the traceless subspace, which
//! L leaves invariant and on which L - sigma is invertible for every sigma that is not another
//! eigenvalue: the equation of the first population is replaced by `s tr rho = 0` (as in the
//! steady-state solvers; s = 1-norm of the replaced row), i.e.
//! `T b = M_sigma^-1 P b` with P zeroing that entry. For traceless b, the solution x is
//! traceless and satisfies every other row of (L - sigma) x = b, and the replaced row then
//! holds too (the rows of L sum to tr(L x) = 0). The steady state is added back explicitly as
//! lambda = 0 (exact: trace preservation), its vector from `M_0 x = s e_0` (tr x = 1; the same
//! LU when sigma = 0, a second one otherwise), and enters the result if it is among the k
//! nearest sigma.
//!
//! # Reported pairs
//!
//! Each Ritz vector v is mapped back to an eigenvalue of L by its Rayleigh quotient
//! `lambda = v^H L v / v^H v` (the lambda minimising |L v - lambda v| for that v), and its
//! residual is `|L v - lambda v| / (|v| max(|lambda|, nu sqrt(eps)))`, nu = the infinity norm of
//! L: relative to |lambda| (issue 13), except for eigenvalues that are zero to working accuracy
//! (the steady state), whose residual is relative to nu instead (a backward error).
//! Eigenvectors have unit 2-norm with their largest element real and positive; the steady state
//! has trace 1. Pairs are sorted by |Re lambda| then Im lambda (|Re| equal within 1e-9 (1 +
//! |Re|) counting as equal, so that conjugate pairs sort by Im).
//!
//! [`dense_eigenvalues`] diagonalises the same matrix densely (faer): the cross-check at small
//! dimensions.

use crate::error::SolverError;
use crate::model::Model;
use crate::solver::blocks;
use crate::solver::frontal::{self, Analysis, Factor};
use crate::solver::hermitian::{Coupling, check_memory};
use crate::solver::master::{self, Coeffs, gauge};
use faer::Mat;
use num_complex::Complex64 as c64;
use rayon::prelude::*;
use serde::Serialize;
use std::time::Instant;

/// Which representation of L: the j = N/2 manifold (collective models only) or the
/// permutation-invariant blocks R_j.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Space {
    Collective,
    Blocks,
}

/// What to compute (see the module doc).
#[derive(Debug, Clone)]
pub struct SpectrumOptions {
    /// How many eigenvalues (>= 1).
    pub k: usize,
    /// The target sigma: the eigenvalues nearest it.
    pub target: c64,
    /// Restrict to the coherences c - r = q (models with the U(1) symmetry: no drive).
    pub sector: Option<i64>,
    /// Krylov dimension m (0: max(2k + 1, k + 20), capped by the dimension).
    pub ncv: usize,
    /// Convergence: |h^T y| <= tol |theta| (default 1e-12).
    pub tol: f64,
    /// Restarts before giving up (the result then says how many converged).
    pub max_restarts: usize,
}

impl Default for SpectrumOptions {
    fn default() -> Self {
        SpectrumOptions {
            k: 10,
            target: c64::new(0.0, 0.0),
            sector: None,
            ncv: 0,
            tol: 1e-12,
            max_restarts: 500,
        }
    }
}

/// One eigenvalue of L with its right eigenvector (layout: [`Spectrum::elements`], model frame).
#[derive(Debug, Clone)]
pub struct EigenPair {
    pub value: c64,
    /// |L v - lambda v| / (|v| max(|lambda|, nu sqrt(eps))) (module doc).
    pub residual: f64,
    pub vector: Vec<c64>,
}

/// How the computation went.
#[derive(Debug, Clone, Serialize)]
pub struct SpectrumStats {
    /// Number of complex unknowns and nonzeros of L.
    pub dim: usize,
    pub nnz: usize,
    /// Krylov dimension, restarts, applications of (L - sigma)^-1.
    pub ncv: usize,
    pub restarts: usize,
    pub solves: usize,
    /// Wanted pairs of the Arnoldi iteration and how many met the tolerance.
    pub wanted: usize,
    pub converged: usize,
    /// Whether the steady state was deflated (and added back exactly).
    pub deflated: bool,
    /// nu = |L|_inf.
    pub norm_estimate: f64,
    /// Seconds in the LU factorisation(s) and in total.
    pub factor_s: f64,
    pub total_s: f64,
}

/// The k eigenpairs nearest the target, sorted by |Re| then Im.
#[derive(Debug, Clone)]
pub struct Spectrum {
    pub pairs: Vec<EigenPair>,
    /// Element (block, r, c) of each unknown (block 0 = the largest j; one block for
    /// [`Space::Collective`]).
    pub elements: Vec<(usize, usize, usize)>,
    /// 2j + 1 of each block.
    pub dims: Vec<usize>,
    pub stats: SpectrumStats,
}

/// L (phi = 0 frame) as a complex CSR matrix on a set of elements. Every row stores its
/// diagonal entry (possibly zero).
struct SparseL {
    dims: Vec<usize>,
    elements: Vec<(usize, usize, usize)>,
    row_ptr: Vec<usize>,
    col_idx: Vec<usize>,
    val: Vec<c64>,
    /// Position in `val` of each row's diagonal entry.
    diag: Vec<usize>,
    /// Unknowns that are populations (r = c).
    populations: Vec<usize>,
}

/// Index of element (b, r, c) among the unknowns (None outside the sector).
fn element_index(
    offsets: &[usize],
    dims: &[usize],
    sector: Option<i64>,
    b: usize,
    r: usize,
    c: usize,
) -> Option<usize> {
    let d = dims[b];
    match sector {
        None => Some(offsets[b] + r * d + c),
        Some(q) if c as i64 - r as i64 == q => Some(offsets[b] + r - (-q).max(0) as usize),
        Some(_) => None,
    }
}

impl SparseL {
    /// Assemble L on the elements of `dims` (restricted to `sector`) from the equations
    /// `couplings(b, r, c, terms)`.
    fn assemble(
        dims: Vec<usize>,
        sector: Option<i64>,
        couplings: impl Fn(usize, usize, usize, &mut Vec<Coupling>),
    ) -> Result<SparseL, SolverError> {
        let mut offsets = Vec::with_capacity(dims.len());
        let mut elements = Vec::new();
        for (b, &d) in dims.iter().enumerate() {
            offsets.push(elements.len());
            for r in 0..d {
                for c in 0..d {
                    if sector.is_none_or(|q| c as i64 - r as i64 == q) {
                        elements.push((b, r, c));
                    }
                }
            }
        }
        if elements.is_empty() {
            return Err(SolverError::Unsupported {
                solver: "spectrum",
                message: format!(
                    "sector {sector:?} holds no element (|q| must be below 2j + 1 = {})",
                    dims[0]
                ),
            });
        }
        let mut row_ptr = vec![0];
        let (mut col_idx, mut val, mut diag, mut populations) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut terms = Vec::with_capacity(32);
        let mut row: Vec<(usize, c64)> = Vec::with_capacity(32);
        for (i, &(b, r, c)) in elements.iter().enumerate() {
            terms.clear();
            couplings(b, r, c, &mut terms);
            row.clear();
            row.push((i, c64::new(0.0, 0.0)));
            for &(bb, rr, cc, k) in &terms {
                if k == c64::new(0.0, 0.0) {
                    continue;
                }
                let Some(j) = element_index(&offsets, &dims, sector, bb, rr, cc) else {
                    return Err(SolverError::Unsupported {
                        solver: "spectrum",
                        message: format!(
                            "sector = {} needs the U(1) symmetry (no drive, Omega = 0): L couples q = {} to q = {}",
                            sector.unwrap_or(0),
                            c as i64 - r as i64,
                            cc as i64 - rr as i64
                        ),
                    });
                };
                row.push((j, k));
            }
            row.sort_unstable_by_key(|e| e.0);
            let mut last = usize::MAX;
            for &(j, v) in &row {
                if j == last {
                    *val.last_mut().expect("merged entry follows a pushed one") += v;
                } else {
                    if j == i {
                        diag.push(col_idx.len());
                    }
                    col_idx.push(j);
                    val.push(v);
                    last = j;
                }
            }
            row_ptr.push(col_idx.len());
            if r == c {
                populations.push(i);
            }
        }
        Ok(SparseL {
            dims,
            elements,
            row_ptr,
            col_idx,
            val,
            diag,
            populations,
        })
    }

    fn dim(&self) -> usize {
        self.elements.len()
    }

    /// out = L x.
    fn apply(&self, x: &[c64], out: &mut [c64]) {
        out.par_iter_mut()
            .enumerate()
            .with_min_len(1024)
            .for_each(|(i, o)| {
                *o = (self.row_ptr[i]..self.row_ptr[i + 1])
                    .map(|e| self.val[e] * x[self.col_idx[e]])
                    .sum();
            });
    }

    /// |L|_inf (largest row 1-norm).
    fn norm_inf(&self) -> f64 {
        (0..self.dim())
            .map(|i| {
                (self.row_ptr[i]..self.row_ptr[i + 1])
                    .map(|e| self.val[e].norm())
                    .sum::<f64>()
            })
            .fold(0.0, f64::max)
    }

    /// L - sigma as CSR, with row `trace_row` (if any) replaced by `s tr` (returns s).
    fn shifted(&self, sigma: c64, trace_row: Option<usize>) -> (Vec<usize>, Vec<usize>, Vec<c64>, f64) {
        let mut val = self.val.clone();
        for &e in &self.diag {
            val[e] -= sigma;
        }
        let Some(t) = trace_row else {
            return (self.row_ptr.clone(), self.col_idx.clone(), val, 1.0);
        };
        let s = (self.row_ptr[t]..self.row_ptr[t + 1])
            .map(|e| val[e].norm())
            .sum::<f64>()
            .max(f64::MIN_POSITIVE.sqrt());
        let (mut rp, mut ci, mut v) = (
            vec![0],
            Vec::with_capacity(val.len()),
            Vec::with_capacity(val.len()),
        );
        for i in 0..self.dim() {
            if i == t {
                ci.extend_from_slice(&self.populations);
                v.extend(self.populations.iter().map(|_| c64::new(s, 0.0)));
            } else {
                ci.extend_from_slice(&self.col_idx[self.row_ptr[i]..self.row_ptr[i + 1]]);
                v.extend_from_slice(&val[self.row_ptr[i]..self.row_ptr[i + 1]]);
            }
            rp.push(ci.len());
        }
        (rp, ci, v, s)
    }

    /// Lattice coordinates of every unknown for the nested dissection: element (r, c) of block
    /// b at (b, r + b, c + b), as in [`crate::solver::blocks`] (every coupling moves each by
    /// at most one).
    fn coords(&self) -> Vec<[i32; 3]> {
        self.elements
            .iter()
            .map(|&(b, r, c)| [b as i32, (r + b) as i32, (c + b) as i32])
            .collect()
    }

    /// Nested dissection (populations last, so that the trace row, which couples all of
    /// them, stays inside the root front) and the symbolic analysis of [`SparseL::shifted`]'s
    /// pattern, refused when its memory exceeds the limit.
    fn analyse(&self, row_ptr: &[usize], col_idx: &[usize]) -> Result<Analysis, SolverError> {
        let coords = self.coords();
        let tree = frontal::dissect_last(&coords, |v| coords[v][1] == coords[v][2]);
        let an =
            Analysis::new(&tree, row_ptr, col_idx).map_err(|e| SolverError::Factorization(e.to_string()))?;
        check_memory(
            format!("multifrontal complex LU of the {0} x {0} Liouvillian", self.dim()),
            an.memory_bytes::<c64>() + 40.0 * col_idx.len() as f64,
        )?;
        Ok(an)
    }
}

/// The factorisation of L - sigma (with the trace row when deflating): its analysis, its
/// values, and s.
struct Shifted {
    analysis: Analysis,
    val: Vec<c64>,
    s: f64,
}

impl Shifted {
    fn new(l: &SparseL, sigma: c64, trace_row: Option<usize>) -> Result<Shifted, SolverError> {
        let (rp, ci, val, s) = l.shifted(sigma, trace_row);
        Ok(Shifted {
            analysis: l.analyse(&rp, &ci)?,
            val,
            s,
        })
    }

    fn factor(&self) -> Result<Factor<'_, c64>, SolverError> {
        self.analysis.factor(&self.val).map_err(|e| {
            SolverError::Factorization(format!(
                "{e} (L - sigma is singular: is the target an eigenvalue?)"
            ))
        })
    }
}

/// Assemble L for `model` in `space`, restricted to `sector`.
fn assemble(model: &Model, space: Space, sector: Option<i64>) -> Result<SparseL, SolverError> {
    match space {
        Space::Collective => {
            if !model.is_collective() {
                return Err(SolverError::Unsupported {
                    solver: "spectrum",
                    message: format!(
                        "the j = N/2 manifold is not invariant with single-atom rates ({}); use the blocks",
                        model.individual_terms().join(", ")
                    ),
                });
            }
            let irrep = crate::basis::Irrep::new(model.n);
            let co = Coeffs::collective(model, &irrep);
            check_memory(
                format!(
                    "sparse complex LU of the {0}^2 x {0}^2 Liouvillian (estimated from the real form)",
                    model.n + 1
                ),
                2.0 * master::steady_state_memory_estimate(model.n + 1),
            )?;
            SparseL::assemble(vec![model.n + 1], sector, |_, r, c, t| {
                master::collective_couplings(&co, r, c, t)
            })
        }
        Space::Blocks => {
            check_memory(
                format!(
                    "sparse complex LU of the block Liouvillian (N = {}, estimated from the real form)",
                    model.n
                ),
                2.0 * blocks::steady_state_memory_estimate(model),
            )?;
            let op = blocks::SparseBlocks::new(model);
            SparseL::assemble(op.dims().to_vec(), sector, |b, r, c, t| op.couplings(b, r, c, t))
        }
    }
}

/// Rotate a phi = 0 frame vector into the model's frame: element (r, c) times e^{-i phi (r - c)}.
fn to_model_frame(v: &mut [c64], elements: &[(usize, usize, usize)], dims: &[usize], phi: f64) {
    if phi == 0.0 {
        return;
    }
    let g = gauge(dims[0], phi);
    for (x, &(_, r, c)) in v.iter_mut().zip(elements) {
        *x *= g[r].conj() * g[c];
    }
}

fn dot(a: &[c64], b: &[c64]) -> c64 {
    a.par_iter()
        .zip(b)
        .with_min_len(4096)
        .map(|(x, y)| x.conj() * y)
        .sum()
}

fn norm(a: &[c64]) -> f64 {
    a.par_iter()
        .with_min_len(4096)
        .map(|x| x.norm_sqr())
        .sum::<f64>()
        .sqrt()
}

/// A deterministic pseudo-random start vector (splitmix64).
fn start_vector(n: usize) -> Vec<c64> {
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    (0..n).map(|_| c64::new(next(), next())).collect()
}

/// Orthogonalise `w` against `basis` (classical Gram-Schmidt, twice); returns the coefficients.
fn orthogonalise(basis: &[Vec<c64>], w: &mut [c64]) -> Vec<c64> {
    let mut h = vec![c64::new(0.0, 0.0); basis.len()];
    for _ in 0..2 {
        let g: Vec<c64> = basis.par_iter().map(|v| dot(v, w)).collect();
        w.par_iter_mut()
            .enumerate()
            .with_min_len(2048)
            .for_each(|(i, x)| {
                for (v, gi) in basis.iter().zip(&g) {
                    *x -= gi * v[i];
                }
            });
        h.iter_mut().zip(&g).for_each(|(a, b)| *a += b);
    }
    h
}

/// The result of the Arnoldi iteration: the wanted Ritz vectors (largest |theta| first).
struct Ritz {
    vectors: Vec<Vec<c64>>,
    restarts: usize,
    solves: usize,
    converged: usize,
}

/// Ritz pairs of the m x m matrix h (row-major (m+1) x m, last row the residual row): values
/// sorted by |theta| descending, unit eigenvectors, residual estimates.
fn ritz_pairs(h: &Mat<c64>, m: usize) -> Result<Vec<(c64, Vec<c64>, f64)>, SolverError> {
    let hm = h.as_ref().submatrix(0, 0, m, m).to_owned();
    let evd = hm.eigen().map_err(|e| {
        SolverError::Factorization(format!("dense eigendecomposition of the Krylov matrix: {e:?}"))
    })?;
    let mut out: Vec<(c64, Vec<c64>, f64)> = (0..m)
        .map(|i| {
            let mut y: Vec<c64> = (0..m).map(|l| evd.U()[(l, i)]).collect();
            let ny = y.iter().map(|x| x.norm_sqr()).sum::<f64>().sqrt();
            y.iter_mut().for_each(|x| *x /= ny);
            let res = (0..m).map(|l| h[(m, l)] * y[l]).sum::<c64>().norm();
            (evd.S()[i], y, res)
        })
        .collect();
    out.sort_by(|a, b| b.0.norm().total_cmp(&a.0.norm()));
    Ok(out)
}

/// Orthonormal basis (columns, length m) of the span of `ys` (modified Gram-Schmidt twice;
/// vectors that are dependent to 1e-8 are dropped).
fn orthonormal_columns(ys: &[&Vec<c64>]) -> Vec<Vec<c64>> {
    let mut q: Vec<Vec<c64>> = Vec::with_capacity(ys.len());
    for y in ys {
        let mut v = (*y).clone();
        for _ in 0..2 {
            for u in &q {
                let g: c64 = u.iter().zip(&v).map(|(a, b)| a.conj() * b).sum();
                v.iter_mut().zip(u).for_each(|(x, a)| *x -= g * a);
            }
        }
        let nv = v.iter().map(|x| x.norm_sqr()).sum::<f64>().sqrt();
        if nv > 1e-8 {
            v.iter_mut().for_each(|x| *x /= nv);
            q.push(v);
        }
    }
    q
}

/// Linear combinations `out_i = sum_l basis_l q_i[l]`.
fn combine(basis: &[Vec<c64>], q: &[Vec<c64>], n: usize) -> Vec<Vec<c64>> {
    q.iter()
        .map(|qi| {
            let mut v = vec![c64::new(0.0, 0.0); n];
            v.par_iter_mut()
                .enumerate()
                .with_min_len(2048)
                .for_each(|(i, x)| {
                    for (b, c) in basis.iter().zip(qi) {
                        *x += c * b[i];
                    }
                });
            v
        })
        .collect()
}

/// Shift-invert Arnoldi with thick restarts (module doc) for the `nev` largest |theta| of
/// `op`, Krylov dimension `m` (<= n).
fn arnoldi(
    op: &dyn Fn(&[c64], &mut [c64]),
    n: usize,
    nev: usize,
    m: usize,
    opts: &SpectrumOptions,
) -> Result<Ritz, SolverError> {
    let mut solves = 0;
    let mut v0 = vec![c64::new(0.0, 0.0); n];
    op(&start_vector(n), &mut v0);
    solves += 1;
    let nv = norm(&v0);
    v0.iter_mut().for_each(|x| *x /= nv);
    let mut basis: Vec<Vec<c64>> = vec![v0];
    let mut h = Mat::<c64>::zeros(m + 1, m);
    let mut p = 0;
    let mut w = vec![c64::new(0.0, 0.0); n];
    for restart in 0..=opts.max_restarts {
        for j in p..m {
            op(&basis[j], &mut w);
            solves += 1;
            let coef = orthogonalise(&basis, &mut w);
            let scale = coef.iter().map(|x| x.norm_sqr()).sum::<f64>().sqrt();
            coef.iter().enumerate().for_each(|(l, &x)| h[(l, j)] = x);
            let mut beta = norm(&w);
            if beta <= 1e-14 * scale {
                // Invariant subspace: continue with a fresh direction in the range of T (so
                // traceless where T is deflated), H[j+1, j] = 0.
                op(&start_vector(n + j + 1)[j + 1..], &mut w);
                solves += 1;
                orthogonalise(&basis, &mut w);
                let nw = norm(&w);
                w.iter_mut().for_each(|x| *x /= nw);
                beta = 0.0;
            } else {
                w.iter_mut().for_each(|x| *x /= beta);
            }
            h[(j + 1, j)] = c64::new(beta, 0.0);
            basis.push(w.clone());
        }
        let pairs = ritz_pairs(&h, m)?;
        let converged = pairs[..nev]
            .iter()
            .take_while(|(t, _, res)| *res <= opts.tol * t.norm())
            .count();
        if converged == nev || restart == opts.max_restarts || m <= nev {
            let ys: Vec<Vec<c64>> = pairs[..nev].iter().map(|x| x.1.clone()).collect();
            return Ok(Ritz {
                vectors: combine(&basis[..m], &ys, n),
                restarts: restart,
                solves,
                converged,
            });
        }
        // Thick restart with the p best Ritz vectors.
        let keep = ((nev + m) / 2).clamp(nev, m - 1);
        let q = orthonormal_columns(&pairs[..keep].iter().map(|x| &x.1).collect::<Vec<_>>());
        p = q.len();
        let mut new_h = Mat::<c64>::zeros(m + 1, m);
        for a in 0..p {
            for b in 0..p {
                let mut s = c64::new(0.0, 0.0);
                for l in 0..m {
                    let hq: c64 = (0..m).map(|t| h[(l, t)] * q[b][t]).sum();
                    s += q[a][l].conj() * hq;
                }
                new_h[(a, b)] = s;
            }
            new_h[(p, a)] = (0..m).map(|t| h[(m, t)] * q[a][t]).sum();
        }
        let last = basis.pop().expect("the basis has m + 1 vectors");
        let mut new_basis = combine(&basis, &q, n);
        new_basis.push(last);
        basis = new_basis;
        h = new_h;
    }
    unreachable!("the loop returns at its last restart")
}

/// Unit norm, largest element real and positive.
fn normalise(v: &mut [c64]) {
    let big = v
        .iter()
        .copied()
        .max_by(|a, b| a.norm().total_cmp(&b.norm()))
        .unwrap_or(c64::new(1.0, 0.0));
    let ph = if big.norm() > 0.0 {
        big.conj() / big.norm()
    } else {
        c64::new(1.0, 0.0)
    };
    let nv = norm(v).max(f64::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x *= ph / nv);
}

/// Rayleigh quotient and residual (module doc) of v.
fn rayleigh(l: &SparseL, v: &[c64], nu: f64) -> (c64, f64) {
    let mut lv = vec![c64::new(0.0, 0.0); v.len()];
    l.apply(v, &mut lv);
    let vv = dot(v, v).re;
    let lambda = dot(v, &lv) / vv;
    let r = lv
        .iter()
        .zip(v)
        .map(|(a, b)| (a - lambda * b).norm_sqr())
        .sum::<f64>()
        .sqrt();
    (
        lambda,
        r / (vv.sqrt() * lambda.norm().max(nu * f64::EPSILON.sqrt())),
    )
}

/// Sort by |Re| then Im, |Re| within 1e-9 (1 + |Re|) counting as equal.
pub fn sort_spectrum<T>(items: &mut Vec<T>, value: impl Fn(&T) -> c64) {
    items.sort_by(|a, b| value(a).re.abs().total_cmp(&value(b).re.abs()));
    let mut out = Vec::with_capacity(items.len());
    let mut cluster: Vec<T> = Vec::new();
    for it in items.drain(..) {
        if let Some(first) = cluster.first() {
            let (x, y) = (value(first).re.abs(), value(&it).re.abs());
            if y - x > 1e-9 * (1.0 + x) {
                cluster.sort_by(|a, b| value(a).im.total_cmp(&value(b).im));
                out.append(&mut cluster);
            }
        }
        cluster.push(it);
    }
    cluster.sort_by(|a, b| value(a).im.total_cmp(&value(b).im));
    out.append(&mut cluster);
    *items = out;
}

/// Whether L has a unique steady state in the unknowns of `space`/`sector` that carry the
/// trace (so that it can be deflated).
fn deflatable(model: &Model, space: Space, sector: Option<i64>) -> bool {
    sector.is_none_or(|q| q == 0)
        && model.no_unique_steady_state().is_none()
        && !(space == Space::Blocks && model.is_collective())
}

/// The `opts.k` eigenvalues of the Liouvillian of `model` nearest `opts.target`, with right
/// eigenvectors and residuals (module doc).
pub fn eigenvalues(model: &Model, space: Space, opts: &SpectrumOptions) -> Result<Spectrum, SolverError> {
    let t0 = Instant::now();
    let l = assemble(model, space, opts.sector)?;
    let n = l.dim();
    let nu = l.norm_inf();
    let deflate = deflatable(model, space, opts.sector);
    let sigma = opts.target;
    if !deflate && opts.sector.is_none_or(|q| q == 0) && sigma == c64::new(0.0, 0.0) {
        let why = model.no_unique_steady_state().unwrap_or(
            "every single-atom rate is 0, so each block's trace is conserved and lambda = 0 is degenerate \
             (one steady state per block); use the collective space",
        );
        return Err(SolverError::Unsupported {
            solver: "spectrum",
            message: format!("target 0 is an exact, degenerate eigenvalue of L: {why}; choose a target != 0"),
        });
    }
    let trace_row = deflate.then_some(0);
    let shifted = Shifted::new(&l, sigma, trace_row)?;
    let (lu, s) = (shifted.factor()?, shifted.s);
    let mut factor_s = t0.elapsed().as_secs_f64();
    let op = |x: &[c64], out: &mut [c64]| {
        out.copy_from_slice(x);
        if let Some(t) = trace_row {
            out[t] = c64::new(0.0, 0.0);
        }
        lu.solve_in_place(out);
    };
    let n_eff = if deflate { n - 1 } else { n };
    let k = opts.k.max(1).min(n);
    let nev = k.min(n_eff);
    let mut pairs = Vec::new();
    let mut stats = SpectrumStats {
        dim: n,
        nnz: l.val.len(),
        ncv: 0,
        restarts: 0,
        solves: 0,
        wanted: nev,
        converged: 0,
        deflated: deflate,
        norm_estimate: nu,
        factor_s: 0.0,
        total_s: 0.0,
    };
    if nev > 0 {
        let m = if opts.ncv > 0 {
            opts.ncv
        } else {
            (2 * nev + 1).max(nev + 20)
        }
        .clamp(nev + 1, n_eff.max(nev + 1))
        .min(n_eff);
        let ritz = arnoldi(&op, n, nev, m.max(nev), opts)?;
        stats.ncv = m;
        stats.restarts = ritz.restarts;
        stats.solves = ritz.solves;
        // A Krylov space as large as the range of T is invariant: every Ritz pair is exact to
        // rounding (whose floor, ~eps cond(L - sigma) |theta|, may sit above tol).
        stats.converged = if m == n_eff { nev } else { ritz.converged };
        for mut v in ritz.vectors {
            normalise(&mut v);
            let (value, residual) = rayleigh(&l, &v, nu);
            pairs.push(EigenPair {
                value,
                residual,
                vector: v,
            });
        }
    }
    if deflate {
        let mut x = vec![c64::new(0.0, 0.0); n];
        x[0] = c64::new(s, 0.0);
        if sigma == c64::new(0.0, 0.0) {
            lu.solve_in_place(&mut x);
        } else {
            let t1 = Instant::now();
            let shifted0 = Shifted::new(&l, c64::new(0.0, 0.0), trace_row)?;
            let lu0 = shifted0.factor()?;
            factor_s += t1.elapsed().as_secs_f64();
            x[0] = c64::new(shifted0.s, 0.0);
            lu0.solve_in_place(&mut x);
        }
        let mut lx = vec![c64::new(0.0, 0.0); n];
        l.apply(&x, &mut lx);
        let residual = norm(&lx) / (norm(&x) * nu);
        pairs.push(EigenPair {
            value: c64::new(0.0, 0.0),
            residual,
            vector: x,
        });
    }
    pairs.sort_by(|a, b| (a.value - sigma).norm().total_cmp(&(b.value - sigma).norm()));
    pairs.truncate(k);
    for p in &mut pairs {
        to_model_frame(&mut p.vector, &l.elements, &l.dims, model.phi);
    }
    sort_spectrum(&mut pairs, |p| p.value);
    stats.factor_s = factor_s;
    stats.total_s = t0.elapsed().as_secs_f64();
    Ok(Spectrum {
        pairs,
        elements: l.elements,
        dims: l.dims,
        stats,
    })
}

/// Largest dimension [`dense_eigenvalues`] accepts (a dense complex eigendecomposition:
/// 16 n^2 bytes, O(n^3) work; n = 3000 takes about a minute).
pub const DENSE_MAX_DIM: usize = 3000;

/// All eigenvalues of the same L (dense, faer), sorted by |Re| then Im: the cross-check of
/// [`eigenvalues`] at small dimensions.
pub fn dense_eigenvalues(model: &Model, space: Space, sector: Option<i64>) -> Result<Vec<c64>, SolverError> {
    let l = assemble(model, space, sector)?;
    let n = l.dim();
    if n > DENSE_MAX_DIM {
        return Err(SolverError::Unsupported {
            solver: "spectrum (dense)",
            message: format!("dimension {n} is above {DENSE_MAX_DIM}; use the sparse eigenvalues"),
        });
    }
    let mut a = Mat::<c64>::zeros(n, n);
    for i in 0..n {
        for e in l.row_ptr[i]..l.row_ptr[i + 1] {
            a[(i, l.col_idx[e])] += l.val[e];
        }
    }
    let mut ev = dense_matrix_eigenvalues(a)?;
    sort_spectrum(&mut ev, |z| *z);
    Ok(ev)
}

/// Eigenvalues of a dense complex matrix (faer), unsorted.
pub fn dense_matrix_eigenvalues(a: Mat<c64>) -> Result<Vec<c64>, SolverError> {
    a.eigenvalues()
        .map_err(|e| SolverError::Factorization(format!("dense eigendecomposition: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every term of the collective model on (drive with a phase included).
    fn collective_model(n: usize) -> Model {
        Model {
            n,
            omega0: 0.3,
            drive: 0.9 * n as f64 / 2.0,
            phi: 0.7,
            chi: 0.2,
            chi_z: -0.1,
            gamma_coll: 1.0,
            pump_coll: 0.15,
            dephase_coll: 0.25,
            ..Model::default()
        }
    }

    fn blocks_model(n: usize) -> Model {
        Model {
            gamma_down: 0.6,
            gamma_up: 0.2,
            gamma_phi: 0.3,
            ..collective_model(n)
        }
    }

    /// Largest distance from a sparse eigenvalue to the nearest dense one, and checks that the
    /// sparse set is the k nearest the target (no dense eigenvalue clearly closer is missing).
    fn compare(model: &Model, space: Space, k: usize, target: c64, sector: Option<i64>) -> (f64, f64) {
        let opts = SpectrumOptions {
            k,
            target,
            sector,
            ..Default::default()
        };
        let sp = eigenvalues(model, space, &opts).unwrap();
        let dense = dense_eigenvalues(model, space, sector).unwrap();
        assert_eq!(sp.pairs.len(), k.min(dense.len()));
        assert_eq!(sp.stats.converged, sp.stats.wanted, "{:?}", sp.stats);
        let mut max_diff: f64 = 0.0;
        let mut max_res: f64 = 0.0;
        for p in &sp.pairs {
            let d = dense
                .iter()
                .map(|z| (z - p.value).norm())
                .fold(f64::INFINITY, f64::min);
            max_diff = max_diff.max(d);
            max_res = max_res.max(p.residual);
        }
        let far = sp
            .pairs
            .iter()
            .map(|p| (p.value - target).norm())
            .fold(0.0, f64::max);
        let closer = dense.iter().filter(|z| (*z - target).norm() < far - 1e-8).count();
        assert!(
            closer < sp.pairs.len(),
            "a dense eigenvalue nearer the target is missing"
        );
        (max_diff, max_res)
    }

    #[test]
    fn spectrum_collective_sparse_matches_dense() {
        for (n, k, target) in [
            (10, 4, c64::new(0.0, 0.0)),
            (12, 10, c64::new(0.0, 0.0)),
            (16, 6, c64::new(-2.0, 3.0)),
            (20, 12, c64::new(0.0, 0.0)),
        ] {
            let (diff, res) = compare(&collective_model(n), Space::Collective, k, target, None);
            eprintln!(
                "collective N = {n} k = {k} target = {target}: max |d lambda| = {diff:.2e}, max residual = {res:.2e}"
            );
            assert!(diff < 1e-10 && res < 1e-10, "N = {n}: {diff:e} {res:e}");
        }
    }

    #[test]
    fn spectrum_blocks_sparse_matches_dense() {
        for (n, k, target) in [
            (4, 5, c64::new(0.0, 0.0)),
            (5, 10, c64::new(-1.0, 0.5)),
            (6, 8, c64::new(0.0, 0.0)),
        ] {
            let (diff, res) = compare(&blocks_model(n), Space::Blocks, k, target, None);
            eprintln!(
                "blocks N = {n} k = {k} target = {target}: max |d lambda| = {diff:.2e}, max residual = {res:.2e}"
            );
            assert!(diff < 1e-10 && res < 1e-10, "N = {n}: {diff:e} {res:e}");
        }
    }

    #[test]
    fn spectrum_steady_state_is_eigenvalue_zero_with_trace_one() {
        let model = collective_model(14);
        let sp = eigenvalues(
            &model,
            Space::Collective,
            &SpectrumOptions {
                k: 3,
                ..Default::default()
            },
        )
        .unwrap();
        let ss = &sp.pairs[0];
        assert_eq!(ss.value, c64::new(0.0, 0.0));
        assert!(ss.residual < 1e-13, "{}", ss.residual);
        let tr: c64 = sp
            .elements
            .iter()
            .zip(&ss.vector)
            .filter(|(e, _)| e.1 == e.2)
            .map(|(_, v)| v)
            .sum();
        assert!((tr - 1.0).norm() < 1e-12);
        // The same state as the steady-state solver's.
        let (rho, _) = master::steady_state(&model).unwrap();
        let d = rho
            .data
            .iter()
            .zip(&ss.vector)
            .map(|(a, b)| (a - b).norm())
            .fold(0.0, f64::max);
        assert!(d < 1e-10, "{d:e}");
    }

    #[test]
    fn spectrum_sector_refused_with_a_drive() {
        let e = eigenvalues(
            &collective_model(6),
            Space::Collective,
            &SpectrumOptions {
                sector: Some(1),
                ..Default::default()
            },
        );
        assert!(e.unwrap_err().to_string().contains("U(1)"));
    }

    /// Seed 000 in its bistable window (Omega = 0.75 Omega_c, Gamma_MF/gamma = 15.5, N = 18): a
    /// small, nearly real gap (the metastable switching) under strong non-normality; blocks.
    #[test]
    fn spectrum_seed000_bistable_sparse_matches_dense() {
        let n = 18;
        let g1d = 15.5 / (n as f64 - 1.0);
        let model = Model {
            n,
            drive: 2.0 * 0.75 * 15.5 / 4.0,
            gamma_coll: g1d,
            gamma_down: 1.0 - g1d,
            ..Model::default()
        };
        let (diff, res) = compare(&model, Space::Blocks, 6, c64::new(0.0, 0.0), None);
        let sp = eigenvalues(
            &model,
            Space::Blocks,
            &SpectrumOptions {
                k: 3,
                ..Default::default()
            },
        )
        .unwrap();
        eprintln!(
            "seed 000 N = {n}: gap {:.6e}, max |d lambda| = {diff:.2e}, max residual = {res:.2e}, {:.2} s",
            sp.pairs[1].value, sp.stats.total_s
        );
        assert!(diff < 1e-10 && res < 1e-10, "{diff:e} {res:e}");
    }

    /// Tiny spaces: k at or above the dimension returns the whole spectrum (the Krylov space
    /// is then the whole traceless space).
    #[test]
    fn spectrum_whole_space_when_k_exceeds_the_dimension() {
        for (model, space) in [
            (collective_model(1), Space::Collective),
            (collective_model(2), Space::Collective),
            (blocks_model(2), Space::Blocks),
        ] {
            let dense = dense_eigenvalues(&model, space, None).unwrap();
            let (diff, res) = compare(&model, space, dense.len() + 3, c64::new(0.0, 0.0), None);
            assert!(diff < 1e-10 && res < 1e-10, "N = {}: {diff:e} {res:e}", model.n);
        }
    }

    /// Sectors of an undriven block model: sparse = dense within each sector, and the sectors'
    /// eigenvalues together are the whole space's.
    #[test]
    fn spectrum_blocks_sectors_partition_the_spectrum() {
        let model = Model {
            drive: 0.0,
            ..blocks_model(4)
        };
        let full = dense_eigenvalues(&model, Space::Blocks, None).unwrap();
        let mut union = Vec::new();
        for q in -4..=4 {
            let (diff, res) = compare(&model, Space::Blocks, 4, c64::new(0.0, 0.0), Some(q));
            assert!(diff < 1e-10 && res < 1e-10, "q = {q}: {diff:e} {res:e}");
            union.extend(dense_eigenvalues(&model, Space::Blocks, Some(q)).unwrap());
        }
        assert_eq!(union.len(), full.len());
        for z in &union {
            let d = full.iter().map(|w| (w - z).norm()).fold(f64::INFINITY, f64::min);
            assert!(d < 1e-10, "{z}: {d:e}");
        }
    }

    /// Seed 004 (PHYSICS.md sec. 6): collective pumping at w = Gamma, N = 100. The population
    /// sector's gap is 2 Gamma, the q = +-1 sectors' is Gamma.
    #[test]
    fn spectrum_seed004_pumping_gaps() {
        let model = Model {
            n: 100,
            gamma_coll: 1.0,
            pump_coll: 1.0,
            ..Model::default()
        };
        let gap = |sector: Option<i64>| {
            let sp = eigenvalues(
                &model,
                Space::Collective,
                &SpectrumOptions {
                    k: 4,
                    sector,
                    ..Default::default()
                },
            )
            .unwrap();
            assert!(
                sp.pairs.iter().all(|p| p.residual < 1e-10),
                "{:?}",
                sp.pairs.iter().map(|p| p.residual).collect::<Vec<_>>()
            );
            let vals: Vec<c64> = sp.pairs.iter().map(|p| p.value).collect();
            eprintln!(
                "seed 004 N = 100, sector {sector:?}: {vals:?} ({:.3} s)",
                sp.stats.total_s
            );
            vals
        };
        let pop = gap(Some(0));
        assert_eq!(pop[0], c64::new(0.0, 0.0));
        assert!((pop[1] - c64::new(-2.0, 0.0)).norm() < 1e-10, "{:?}", pop[1]);
        for q in [1, -1] {
            let coh = gap(Some(q));
            assert!((coh[0].re + 1.0).abs() < 1e-10, "{:?}", coh[0]);
        }
        // Unrestricted: the steady state, then the q = +-1 pair at -Gamma.
        let all = gap(None);
        assert_eq!(all[0], c64::new(0.0, 0.0));
        assert!((all[1].re + 1.0).abs() < 1e-10 && (all[2].re + 1.0).abs() < 1e-10);
    }
}
