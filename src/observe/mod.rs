//! Observables of a state in one irrep (PHYSICS.md section 8), index k = m + j.
//!
//! **Moments by stencils.** Collective operators are banded in m, so the first and second
//! moments of J need only the diagonal and the first two off-diagonals of rho. With
//! `jp[k]` = <k+1|J+|k> (see [`crate::basis::Irrep`]) and tr(rho A) = sum_ab rho_ba A_ab:
//!
//! ```text
//! <Jz>   = sum_k m_k rho_kk                  <Jz^2> = sum_k m_k^2 rho_kk
//! <J+>   = sum_k jp_k rho_{k,k+1}            <Jx> = Re <J+>,  <Jy> = Im <J+>
//! <J+^2> = sum_k jp_k jp_{k+1} rho_{k,k+2}
//! <J+J-> = sum_k jpjm_k rho_kk,  <J-J+> = sum_k jmjp_k rho_kk
//! X      = <{J+, Jz}> = sum_k jp_k (m_k + m_{k+1}) rho_{k,k+1}
//!
//! <Jx^2> = (<J+J-> + <J-J+> + 2 Re <J+^2>) / 4
//! <Jy^2> = (<J+J-> + <J-J+> - 2 Re <J+^2>) / 4
//! <{Jx,Jy}>/2 = Im <J+^2> / 2,  <{Jx,Jz}>/2 = Re X / 2,  <{Jy,Jz}>/2 = Im X / 2
//! ```
//!
//! (from Jx = (J+ + J-)/2, Jy = (J+ - J-)/(2i)). All of it is O(dim); dense operator
//! products are never formed. Expectations are tr(rho A) *without* dividing by tr rho (so
//! that moments of blocks or of trajectory members can be added with weights); a physical
//! state has tr rho = 1. The off-diagonals used are those of the Hermitian part
//! (rho + rho^dag)/2, i.e. every moment is Re tr(rho A), well defined if a numerical rho has
//! drifted slightly from Hermiticity.
//!
//! **Wineland squeezing**
//!
//! ```text
//! xi^2 = N min_{n perp <J>} Var(n.J) / |<J>|^2
//! ```
//!
//! is N times the smaller eigenvalue of the covariance `Cov_ab = <{Ja,Jb}>/2 - <Ja><Jb>`
//! restricted to the plane perpendicular to `<J>`, over `|<J>|^2`. When `|<J>| = 0` exactly the
//! mean-spin direction is undefined and xi^2 is returned as `f64::INFINITY` (its limit as
//! `|<J>| -> 0` at finite variance; never reported as squeezed).
//!
//! **Magnetisation and spin length.** `P_m = rho_kk`; `<J^2> = j(j+1) tr rho` in one irrep;
//! `N_eff = 2 sqrt(1/4 + <J^2>) - 1` (seed 002), which is N in the symmetric irrep.
//!
//! **Husimi Q** (seed 001 eq. 13): Q(θ, φ) = (2j+1)/(4π) <θ,φ|rho|θ,φ> with the coherent state
//! of [`crate::state::pure::coherent`], <k|θ,φ> = a_k(θ) e^{-i(k-j)φ}, a real. Grouping by
//! q = k - l,
//!
//! ```text
//! <θ,φ|rho|θ,φ> = sum_q F_q(θ) e^{iqφ},   F_q(θ) = sum_l a_{l+q} a_l rho_{l+q,l},
//! ```
//!
//! F_{-q} = F_q^* for Hermitian rho, so Q = F_0 + 2 Re sum_{q>0} F_q e^{iqφ}. Cost
//! O(n_θ dim^2 / 2 + n_θ n_φ dim) instead of O(n_θ n_φ dim^2); rows run in parallel (rayon).
//! Only the lower triangle of rho is read (rho is taken Hermitian).
//!
//! **Permutation-invariant states** ([`BlockState`], PHYSICS.md sections 3 and 8): every
//! collective expectation is sum_j tr(R_j A^(j)), so moments add block by block
//! ([`moments_blocks`]); P_m = sum_j <j,m|R_j|j,m> ([`pm_blocks`]); <J^2> = sum_j j(j+1) tr R_j.
//! A pure reference state of the symmetric subspace overlaps only the j = N/2 block
//! ([`fidelity_blocks`]), and so does every spin coherent state: the Husimi Q of the full
//! state is exactly that of R_{N/2} (whose integral is tr R_{N/2}, the weight of j = N/2).
//! The spectrum of rho = sum_j R_j (x) 1_{d_j}/d_j is that of each R_j divided by d_j, with
//! multiplicity d_j, so purity = sum_j tr(R_j^2)/d_j and lambda_max = max_j lambda_max(R_j)/d_j,
//! with d_j from ln-gamma ([`crate::basis::ln_degeneracy`]; it overflows f64 near N = 1030).

use num_complex::Complex64 as c64;
use rayon::prelude::*;

use crate::basis::Irrep;
use crate::basis::ln_degeneracy;
use crate::state::pure::coherent_real;
use crate::state::{BlockState, DensityMatrix};

/// First and second moments of the collective spin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    /// Number of atoms N (enters xi^2). `moments` sets it to dim - 1 (symmetric irrep).
    pub n: usize,
    /// `<Jx>, <Jy>, <Jz>`.
    pub mean: [f64; 3],
    /// `second[a][b]` = <{Ja, Jb}>/2 (symmetric).
    pub second: [[f64; 3]; 3],
}

impl Moments {
    /// All moments zero (an accumulator for weighted sums).
    pub fn zero(n: usize) -> Moments {
        Moments {
            n,
            mean: [0.0; 3],
            second: [[0.0; 3]; 3],
        }
    }

    /// self += w * other (moments are linear in rho: averaging trajectories or summing blocks).
    pub fn add_scaled(&mut self, w: f64, other: &Moments) {
        for a in 0..3 {
            self.mean[a] += w * other.mean[a];
            for b in 0..3 {
                self.second[a][b] += w * other.second[a][b];
            }
        }
    }

    /// `Cov_ab = <{Ja,Jb}>/2 - <Ja><Jb>`.
    pub fn covariance(&self) -> [[f64; 3]; 3] {
        let mut c = [[0.0; 3]; 3];
        for (a, row) in c.iter_mut().enumerate() {
            for (b, x) in row.iter_mut().enumerate() {
                *x = self.second[a][b] - self.mean[a] * self.mean[b];
            }
        }
        c
    }

    /// Var(n.J) = n^T Cov n along the direction `n` (normalised here).
    pub fn var_along(&self, n: [f64; 3]) -> f64 {
        let len = dot(n, n).sqrt();
        let n = [n[0] / len, n[1] / len, n[2] / len];
        let c = self.covariance();
        quad(&c, n, n)
    }

    /// Var Jz.
    pub fn var_jz(&self) -> f64 {
        self.second[2][2] - self.mean[2] * self.mean[2]
    }

    /// `|<J>|`.
    pub fn mean_length(&self) -> f64 {
        dot(self.mean, self.mean).sqrt()
    }

    /// min over unit n perpendicular to `<J>` of Var(n.J), and the minimising n.
    /// `None` when `|<J>| = 0`.
    pub fn min_perp_variance(&self) -> Option<(f64, [f64; 3])> {
        let len = self.mean_length();
        if len == 0.0 || !len.is_finite() {
            return None;
        }
        let u = [self.mean[0] / len, self.mean[1] / len, self.mean[2] / len];
        // e1: cross u with the axis least aligned with it; e2 = u x e1.
        let axis = (0..3)
            .min_by(|&a, &b| u[a].abs().total_cmp(&u[b].abs()))
            .unwrap_or(0);
        let mut ax = [0.0; 3];
        ax[axis] = 1.0;
        let e1 = cross(u, ax);
        let l1 = dot(e1, e1).sqrt();
        let e1 = [e1[0] / l1, e1[1] / l1, e1[2] / l1];
        let e2 = cross(u, e1);
        let c = self.covariance();
        let (a, b, d) = (quad(&c, e1, e1), quad(&c, e1, e2), quad(&c, e2, e2));
        let half_diff = 0.5 * (a - d);
        let r = half_diff.hypot(b);
        let lam = 0.5 * (a + d) - r;
        // Eigenvector of [[a, b], [b, d]] for lam, in the (e1, e2) plane.
        let (x, y) = if half_diff <= 0.0 {
            (r - half_diff, -b)
        } else {
            (-b, r + half_diff)
        };
        let nrm = x.hypot(y);
        let dir = if nrm == 0.0 {
            e1
        } else {
            let (x, y) = (x / nrm, y / nrm);
            [
                x * e1[0] + y * e2[0],
                x * e1[1] + y * e2[1],
                x * e1[2] + y * e2[2],
            ]
        };
        Some((lam, dir))
    }

    /// Wineland squeezing parameter `xi^2 = N min_{n perp <J>} Var(n.J) / |<J>|^2`;
    /// `f64::INFINITY` when `|<J>| = 0` (module doc).
    pub fn xi2(&self) -> f64 {
        match self.min_perp_variance() {
            Some((lam, _)) => self.n as f64 * lam / dot(self.mean, self.mean),
            None => f64::INFINITY,
        }
    }
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn quad(c: &[[f64; 3]; 3], x: [f64; 3], y: [f64; 3]) -> f64 {
    let mut s = 0.0;
    for a in 0..3 {
        for b in 0..3 {
            s += x[a] * c[a][b] * y[b];
        }
    }
    s
}

/// The stencil sums of the module doc from accessors for rho_kk (real part), rho_{k,k+1}
/// and rho_{k,k+2}.
fn moments_from_bands(
    n: usize,
    irrep: &Irrep,
    diag: impl Fn(usize) -> f64,
    off1: impl Fn(usize) -> c64,
    off2: impl Fn(usize) -> c64,
) -> Moments {
    let dim = irrep.dim();
    let (mut jz, mut jz2, mut pm_sum) = (0.0, 0.0, 0.0);
    let mut jplus = c64::new(0.0, 0.0);
    let mut jplus2 = c64::new(0.0, 0.0);
    let mut x = c64::new(0.0, 0.0);
    for k in 0..dim {
        let p = diag(k);
        let m = irrep.m[k];
        jz += m * p;
        jz2 += m * m * p;
        pm_sum += (irrep.jpjm[k] + irrep.jmjp[k]) * p;
        if k + 1 < dim {
            let r1 = off1(k);
            jplus += irrep.jp[k] * r1;
            x += irrep.jp[k] * (m + irrep.m[k + 1]) * r1;
        }
        if k + 2 < dim {
            jplus2 += irrep.jp[k] * irrep.jp[k + 1] * off2(k);
        }
    }
    let jx2 = 0.25 * (pm_sum + 2.0 * jplus2.re);
    let jy2 = 0.25 * (pm_sum - 2.0 * jplus2.re);
    let (sxy, sxz, syz) = (0.5 * jplus2.im, 0.5 * x.re, 0.5 * x.im);
    Moments {
        n,
        mean: [jplus.re, jplus.im, jz],
        second: [[jx2, sxy, sxz], [sxy, jy2, syz], [sxz, syz, jz2]],
    }
}

/// Moments of a density matrix in the symmetric irrep (N = dim - 1), O(dim) (module doc).
pub fn moments(rho: &DensityMatrix) -> Moments {
    let dim = rho.dim;
    let irrep = Irrep::new(dim.saturating_sub(1));
    // Hermitian part of the off-diagonals: (rho_{k,k+q} + conj rho_{k+q,k}) / 2.
    let herm = |r: usize, c: usize| 0.5 * (rho.get(r, c) + rho.get(c, r).conj());
    moments_from_bands(
        dim.saturating_sub(1),
        &irrep,
        |k| rho.get(k, k).re,
        |k| herm(k, k + 1),
        |k| herm(k, k + 2),
    )
}

/// Moments of the pure state |psi><psi| (psi used as given, not renormalised), O(dim). `psi`
/// lives in the irrep 2j = len - 1; `n` is set to len - 1 (overwrite the field for an irrep
/// j < N/2).
pub fn moments_pure(psi: &[c64]) -> Moments {
    let two_j = psi.len().saturating_sub(1);
    let irrep = Irrep::new(two_j);
    moments_from_bands(
        two_j,
        &irrep,
        |k| psi[k].norm_sqr(),
        |k| psi[k] * psi[k + 1].conj(),
        |k| psi[k] * psi[k + 2].conj(),
    )
}

/// <J+> = sum_k jp_k rho_{k,k+1} (Hermitian part of rho, as in [`moments`]).
pub fn expect_jplus(rho: &DensityMatrix) -> c64 {
    let m = moments(rho);
    c64::new(m.mean[0], m.mean[1])
}

/// Magnetisation distribution P_m = rho_kk at index k = m + j.
pub fn pm(rho: &DensityMatrix) -> Vec<f64> {
    (0..rho.dim).map(|k| rho.get(k, k).re).collect()
}

/// <J^2> = j(j+1) tr rho (rho in one irrep with 2j = dim - 1).
pub fn j2(rho: &DensityMatrix) -> f64 {
    let j = rho.dim.saturating_sub(1) as f64 / 2.0;
    j * (j + 1.0) * rho.trace().re
}

/// Effective atom number N_eff = 2 sqrt(1/4 + <J^2>) - 1 (seed 002), the 2j of a state with
/// that <J^2>.
pub fn n_eff(j2: f64) -> f64 {
    2.0 * (0.25 + j2).sqrt() - 1.0
}

/// <psi|rho|psi> (psi taken as normalised; the real part is returned).
/// Panics if `psi.len() != rho.dim` (a caller bug, never user input).
pub fn fidelity_pure(rho: &DensityMatrix, psi: &[c64]) -> f64 {
    assert_eq!(psi.len(), rho.dim, "fidelity_pure: psi and rho dimensions differ");
    let d = rho.dim;
    let mut s = c64::new(0.0, 0.0);
    for r in 0..d {
        let row = &rho.data[r * d..(r + 1) * d];
        let rc: c64 = row.iter().zip(psi).map(|(a, p)| a * p).sum();
        s += psi[r].conj() * rc;
    }
    s.re
}

/// Husimi Q(θ_i, φ_l) = (2j+1)/(4π) <θ,φ|rho|θ,φ>, row-major `[i * phis.len() + l]`
/// (module doc for the algorithm).
pub fn husimi_q(rho: &DensityMatrix, thetas: &[f64], phis: &[f64]) -> Vec<f64> {
    let d = rho.dim;
    let two_j = d.saturating_sub(1);
    let pref = d as f64 / (4.0 * std::f64::consts::PI);
    let nphi = phis.len();
    let mut out = vec![0.0; thetas.len() * nphi];
    if nphi == 0 || d == 0 {
        return out;
    }
    // cis[l * d + q] = e^{i q φ_l}, q = 0..2j
    let cis: Vec<c64> = phis
        .iter()
        .flat_map(|&phi| (0..d).map(move |q| c64::from_polar(1.0, q as f64 * phi)))
        .collect();
    out.par_chunks_mut(nphi)
        .zip(thetas.par_iter())
        .for_each(|(row, &theta)| {
            let a = coherent_real(two_j, theta);
            let mut f = vec![c64::new(0.0, 0.0); d];
            for k in 0..d {
                if a[k] == 0.0 {
                    continue;
                }
                let rrow = &rho.data[k * d..k * d + k + 1];
                for (l, r) in rrow.iter().enumerate() {
                    f[k - l] += a[k] * a[l] * r;
                }
            }
            for (l, q) in row.iter_mut().enumerate() {
                let c = &cis[l * d..(l + 1) * d];
                let s: f64 = f[1..].iter().zip(&c[1..]).map(|(fq, e)| (fq * e).re).sum();
                *q = pref * (f[0].re + 2.0 * s);
            }
        });
    out
}

/// Largest eigenvalue of the Hermitian matrix rho (dense self-adjoint eigensolver of faer,
/// reading the lower triangle). NaN if the eigensolver does not converge or dim = 0.
pub fn largest_eigenvalue(rho: &DensityMatrix) -> f64 {
    let d = rho.dim;
    if d == 0 {
        return f64::NAN;
    }
    let m = faer::Mat::<c64>::from_fn(d, d, |r, c| rho.get(r, c));
    match m.self_adjoint_eigenvalues(faer::Side::Lower) {
        Ok(ev) => ev.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        Err(_) => f64::NAN,
    }
}

/// Moments of block b of a permutation-invariant state (irrep 2j = `s.two_j[b]`,
/// `Moments::n` = N), unnormalised like [`moments`].
pub fn moments_block(s: &BlockState, b: usize) -> Moments {
    let d = s.dim(b);
    let irrep = Irrep::new(s.two_j[b]);
    let blk = s.block(b);
    let herm = |r: usize, c: usize| 0.5 * (blk[r * d + c] + blk[c * d + r].conj());
    moments_from_bands(
        s.n,
        &irrep,
        |k| blk[k * d + k].re,
        |k| herm(k, k + 1),
        |k| herm(k, k + 2),
    )
}

/// Moments of a permutation-invariant state: the sum over blocks of [`moments_block`].
pub fn moments_blocks(s: &BlockState) -> Moments {
    let mut m = Moments::zero(s.n);
    for b in 0..s.num_blocks() {
        m.add_scaled(1.0, &moments_block(s, b));
    }
    m
}

/// P_m = sum_j <j,m|R_j|j,m> for m = -N/2..N/2 (index m + N/2, like [`pm`] in j = N/2).
pub fn pm_blocks(s: &BlockState) -> Vec<f64> {
    let mut p = vec![0.0; s.n + 1];
    for b in 0..s.num_blocks() {
        let (d, shift) = (s.dim(b), (s.n - s.two_j[b]) / 2); // index of m = -j is N/2 - j
        let blk = s.block(b);
        for k in 0..d {
            p[k + shift] += blk[k * d + k].re;
        }
    }
    p
}

/// <J^2> = sum_j j(j+1) tr R_j.
pub fn j2_blocks(s: &BlockState) -> f64 {
    (0..s.num_blocks())
        .map(|b| {
            let j = s.two_j[b] as f64 / 2.0;
            j * (j + 1.0) * s.block_trace(b).re
        })
        .sum()
}

/// <psi|rho|psi> for a pure state psi of the symmetric subspace (length N + 1): only R_{N/2}
/// overlaps it. Panics if `psi.len() != N + 1` (a caller bug).
pub fn fidelity_blocks(s: &BlockState, psi: &[c64]) -> f64 {
    fidelity_pure(&s.block_matrix(0), psi)
}

/// tr rho^2 = sum_j tr(R_j^2) / d_N(j) of the full 2^N-dimensional state (module doc).
pub fn purity_blocks(s: &BlockState) -> f64 {
    (0..s.num_blocks())
        .map(|b| {
            let sq: f64 = s.block(b).iter().map(|z| z.norm_sqr()).sum();
            if sq == 0.0 {
                0.0
            } else {
                (sq.ln() - ln_degeneracy(s.n, s.two_j[b])).exp()
            }
        })
        .sum()
}

/// Largest eigenvalue of the full state, max_j lambda_max(R_j) / d_N(j) (module doc). Blocks
/// that are exactly zero are skipped.
pub fn largest_eigenvalue_blocks(s: &BlockState) -> f64 {
    (0..s.num_blocks())
        .filter(|&b| s.block(b).iter().any(|z| *z != c64::new(0.0, 0.0)))
        .map(|b| {
            let l = largest_eigenvalue(&s.block_matrix(b));
            if l > 0.0 {
                (l.ln() - ln_degeneracy(s.n, s.two_j[b])).exp()
            } else {
                l
            }
        })
        .fold(f64::NEG_INFINITY, f64::max)
}
