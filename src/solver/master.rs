//! The exact collective master equation in the symmetric irrep j = N/2 (PHYSICS.md sections
//! 1, 2 and 9), on the CPU in f64.
//!
//! ```text
//! drho/dt = L rho = -i[H, rho] + Gamma D[J-] rho + w D[J+] rho + Gamma_phi D[Jz] rho
//! H = omega0 Jz + Omega (cos phi Jx + sin phi Jy) + chi J+J- + chi_z Jz^2
//! D[O] rho = O rho O^dag - {O^dag O, rho}/2
//! ```
//!
//! Only collective terms: J^2 is conserved and rho is (N+1) x (N+1) (index k = m + j). Models
//! with individual rates need the permutation-invariant block solver and are refused.
//!
//! # The stencil
//!
//! With `Omega (cos phi Jx + sin phi Jy) = (Omega/2)(e^{-i phi} J+ + e^{i phi} J-)`,
//! `h_k = (Omega/2) jp[k]`, `E_k = omega0 m_k + chi jpjm[k] + chi_z m_k^2`, every element is
//!
//! ```text
//! (L rho)_rc = D_rc rho_rc - i S_rc + Gamma jm[r+1] jm[c+1] rho_{r+1,c+1} + w jm[r] jm[c] rho_{r-1,c-1}
//! D_rc = -i (E_r - E_c) - Gamma (jpjm[r] + jpjm[c])/2 - w (jmjp[r] + jmjp[c])/2 - Gamma_phi (m_r - m_c)^2/2
//! S_rc = e^{-i phi} (h_{r-1} rho_{r-1,c} - h_c rho_{r,c+1}) + e^{i phi} (h_r rho_{r+1,c} - h_{c-1} rho_{r,c-1})
//! ```
//!
//! (the test `stencil_matches_dense_operators` checks it against dense J matrices). The drive
//! phase is a gauge: with `U = exp(-i phi Jz)`, `L_phi(rho) = U L_0(U^dag rho U) U^dag` because
//! `U J+ U^dag = e^{-i phi} J+` and the dissipators are invariant. [`evolve`] and
//! [`steady_state`] therefore work in the phi = 0 frame, where the drive couplings are real
//! (two multiplications per neighbour instead of six), and rotate in and out once.
//!
//! # Time evolution: choice of method
//!
//! The benchmark problem (seed 001, N = 400, Omega = 1.48 Omega_c, t = 0.05) has eigenvalues up
//! to |lambda| ~ Omega N ~ 1.2e5 (the drive's commutator) and damping rates ~ Gamma N^2/4 ~ 4e4,
//! so an explicit method is stability-limited to h ~ 3/|lambda|. Options considered:
//!
//! * an integrating factor for the diagonal part removes only the smaller terms (the drive,
//!   which dominates |lambda|, is off-diagonal) and makes every coupling time-dependent;
//! * implicit methods need a factorisation per step of a matrix as large as the steady-state
//!   one (seconds each at N = 400);
//! * Krylov/Chebyshev exponentials gain at most ~2x in matrix-vector products over DP5 on an
//!   imaginary-axis spectrum, at the price of spectral bounds or orthogonalisation.
//!
//! So: Dormand-Prince 5(4) ([`super::ode`]), with the cost per step cut instead:
//!
//! 1. Hermitian storage: L maps Hermitian matrices to Hermitian matrices, so for a Hermitian
//!    rho0 only the upper triangle (r <= c, packed by rows) is stored and integrated; elements
//!    below the diagonal are read as conjugates (only the diagonal's neighbours need it).
//!    Half the memory and half the work; the result is Hermitian to the last bit.
//! 2. The phi = 0 gauge (above).
//! 3. Row-parallel stencil (rayon; rows are independent) with per-row scalars and per-column
//!    coefficient vectors precomputed once, the interior of each row in a branch-free loop.
//!
//! A non-Hermitian rho0 (e.g. `J- rho` for a two-time correlation) takes the full-matrix path.
//!
//! # Steady state
//!
//! * Omega = 0: every term preserves q = c - r, the unique steady state is diagonal and its
//!   populations are a birth-death chain solved by detailed balance in O(N) (any N).
//! * Otherwise: the real form of L on Hermitian matrices (unknowns rho_kk and (Re, Im) rho_rc
//!   for r < c, (N+1)^2 reals; the solution is Hermitian by construction) with one population
//!   pinned, solved by nested dissection of the (r, c) grid and a multifrontal LU, then
//!   refined with residuals in twice the working precision: [`crate::solver::hermitian`] and
//!   [`crate::solver::frontal`] (why a pin rather than the trace row, why the populations are
//!   eliminated last, how the refinement brings populations of 1e-5 and below to ~1e-14
//!   relative). The population rates are made exactly conservative in floating point. The
//!   previous solver (faer's supernodal LU under COLAMD) needed 8.8 GB at N = 1000; a
//!   geometric ordering fed to it did worse than COLAMD because its partial pivoting fills
//!   within A^T A, whereas the multifrontal LU pivots within each front and keeps the fill of
//!   the ordering.
//!
//! # Cost
//!
//! Evolution: O(N^2) per step, O(N^2 t) steps (stability-limited: |lambda| ~ N^2), so
//! O(N^4 t); steady state: one LU of (N+1)^2 unknowns, O(N^2 log N) fill and O(N^3) work
//! (nested dissection on a 2-D grid). Measured
//! times and memory, with the commands and the QuTiP runs beside them: BENCHMARKS.md
//! ("Exact collective master equation").

use crate::basis::Irrep;
use crate::error::SolverError;
use crate::model::{Model, Protocol};
pub use crate::solver::hermitian::STEADY_STATE_MEMORY_LIMIT_MIB;
use crate::solver::hermitian::check_memory;
use crate::solver::hermitian::{Coupling, packed_len, packed_offset};
use crate::solver::hermitian::{
    Csr, PIN_RATIO, Pin, assemble_hermitian_blocks, hidx, solve_memory_estimate, solve_pinned, unknown_coords,
};
use crate::solver::ode::{self, OdeOptions, multiversion};
use crate::state::DensityMatrix;
use num_complex::Complex64 as c64;
use rayon::prelude::*;
use serde::Serialize;

/// Elements below which the stencil runs on one thread (rayon's overhead is a few us).
const PAR_MIN_ELEMS: usize = 1 << 14;
/// Target number of elements per rayon task.
const TASK_ELEMS: usize = 1 << 12;

/// Work and accuracy of one [`evolve`] run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EvolveStats {
    /// Accepted Runge-Kutta steps.
    pub steps: usize,
    /// Rejected step attempts.
    pub rejected: usize,
    /// Liouvillian applications.
    pub rhs_evals: usize,
    /// max over the saves of |tr rho(t) - tr rho0| (= |tr rho - 1| for a normalised rho0).
    pub max_trace_error: f64,
    /// max over the saves of max |rho - rho^dag| (exactly 0 with Hermitian storage).
    pub max_hermiticity_error: f64,
    /// True when only the upper triangle was integrated (Hermitian rho0).
    pub hermitian_storage: bool,
}

/// Accuracy report of [`steady_state`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SteadyStats {
    /// Unknowns solved for: (N+1)^2 reals for a driven model, N+1 populations when Omega = 0.
    pub unknowns: usize,
    /// Nonzeros of the factorised sparse matrix (0 when Omega = 0: nothing is factorised).
    pub nnz: usize,
    /// |tr rho - 1| of the returned state.
    pub trace_error: f64,
    /// max |rho - rho^dag| before the final Hermitisation (0: both paths solve for a
    /// Hermitian matrix by construction).
    pub hermiticity_error: f64,
    /// max_rc |(L rho)_rc| of the returned state, from the stencil.
    pub residual: f64,
    /// The same residual straight after the LU solve, before iterative refinement (in the
    /// phi = 0 frame, where it has the same size).
    pub residual_unrefined: f64,
    /// Iterative-refinement steps taken.
    pub refinement_steps: usize,
    /// Scalars stored in the LU factors (the fill of [`crate::solver::frontal`]; 0 when
    /// nothing is factorised).
    pub factor_entries: usize,
}

/// Which storage [`evolve_with`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    /// Upper triangle when rho0 is Hermitian (to 1e-12 relative), else the full matrix.
    #[default]
    Auto,
    /// Always the full matrix (any rho0, e.g. the operators of the quantum regression theorem).
    Full,
}

// ---------------------------------------------------------------------------------------------
// Coefficients and the stencil kernel

/// Per-level coefficients of the stencil (see the module doc), for one model and irrep.
/// The block solver ([`super::blocks`]) builds one per irrep with [`Coeffs::with_rates`]: the
/// single-atom channels' within-block parts have exactly this stencil's shape.
#[derive(Clone)]
pub(crate) struct Coeffs {
    n: usize,
    /// Half the decay + pump loss rate per level, -(Gamma jpjm + w jmjp)/2: the real part of
    /// the diagonal is ure[r] + ure[c] - gph (m_r - m_c)^2.
    ure: Vec<f64>,
    /// Energies E_k (diagonal of H).
    e: Vec<f64>,
    /// m_k, and Gamma_phi/2 (D[Jz] contributes -Gamma_phi (m_r - m_c)^2/2, exactly 0 on the
    /// diagonal, which keeps the populations' equations exactly conservative).
    m: Vec<f64>,
    gph: f64,
    /// hp[k + 1] = h_k = (Omega/2) jp[k], hp[0] = 0, hp[n] = 0: h_{c-1} = hp[c], h_c = hp[c+1].
    hp: Vec<f64>,
    /// sqrt(Gamma) jm[k+1] (0 at the top) and sqrt(w) jm[k] (0 at the bottom).
    dn: Vec<f64>,
    up: Vec<f64>,
    /// e^{i phi}.
    phase: c64,
}

/// Rates of the stencil's jump and loss terms (see [`Coeffs::with_rates`]).
#[derive(Clone)]
pub(crate) struct StencilRates {
    /// Weight of J- rho J+ (Gamma in the collective model).
    pub down_jump: f64,
    /// Weight of J+ rho J- (w in the collective model).
    pub up_jump: f64,
    /// Weight of Jz rho Jz, whose loss -(weight/2)(m_r^2 + m_c^2) comes with it
    /// (Gamma_phi in the collective model).
    pub dephase: f64,
    /// Per-level loss added to the real part of the diagonal: element (r, c) gets
    /// extra_loss[r] + extra_loss[c] (empty: none).
    pub extra_loss: Vec<f64>,
}

impl Coeffs {
    fn new(model: &Model, irrep: &Irrep, with_phase: bool) -> Coeffs {
        let rates = StencilRates {
            down_jump: model.gamma_coll,
            up_jump: model.pump_coll,
            dephase: model.dephase_coll,
            extra_loss: Vec::new(),
        };
        Coeffs::with_rates(model, irrep, with_phase, &rates)
    }

    /// The stencil of the model's Hamiltonian and its collective loss terms
    /// -(Gamma jpjm + w jmjp)/2 per level, with the jump weights and extra losses of `rates`
    /// (the collective model is `down_jump = Gamma, up_jump = w, dephase = Gamma_phi`).
    pub(crate) fn with_rates(model: &Model, irrep: &Irrep, with_phase: bool, rates: &StencilRates) -> Coeffs {
        let n = irrep.dim();
        let mut co = Coeffs {
            n,
            ure: vec![0.0; n],
            e: vec![0.0; n],
            m: irrep.m.clone(),
            gph: 0.0,
            hp: vec![0.0; n + 1],
            dn: vec![0.0; n],
            up: vec![0.0; n],
            phase: c64::new(1.0, 0.0),
        };
        co.fill(model, irrep, with_phase, rates);
        co
    }

    /// Overwrite every coefficient in place for `model` (same irrep as at construction): what
    /// a scheduled run does at each right-hand side, with no allocation. O(n), against the
    /// O(n^2) stencil it feeds.
    pub(crate) fn fill(&mut self, model: &Model, irrep: &Irrep, with_phase: bool, rates: &StencilRates) {
        let n = self.n;
        let (g, w) = (model.gamma_coll, model.pump_coll);
        let (sg, sw) = (rates.down_jump.sqrt(), rates.up_jump.sqrt());
        for k in 0..n {
            let m = self.m[k];
            self.ure[k] = -0.5 * (g * irrep.jpjm[k] + w * irrep.jmjp[k])
                + rates.extra_loss.get(k).copied().unwrap_or(0.0);
            self.e[k] = model.omega0 * m + model.chi * irrep.jpjm[k] + model.chi_z * m * m;
            self.hp[k + 1] = 0.5 * model.drive * irrep.jp[k];
            self.dn[k] = if k + 1 < n { sg * irrep.jm[k + 1] } else { 0.0 };
            self.up[k] = sw * irrep.jm[k];
        }
        self.gph = 0.5 * rates.dephase;
        self.phase = if with_phase {
            c64::new(model.phi.cos(), model.phi.sin())
        } else {
            c64::new(1.0, 0.0)
        };
    }

    /// [`Self::fill`] with the collective model's rates (see [`Coeffs::new`]).
    fn refill(&mut self, model: &Model, irrep: &Irrep, with_phase: bool) {
        let rates = StencilRates {
            down_jump: model.gamma_coll,
            up_jump: model.pump_coll,
            dephase: model.dephase_coll,
            extra_loss: Vec::new(),
        };
        self.fill(model, irrep, with_phase, &rates);
    }

    /// The collective stencil of `model` in the phi = 0 frame (the j = N/2 irrep).
    pub(crate) fn collective(model: &Model, irrep: &Irrep) -> Coeffs {
        Coeffs::new(model, irrep, false)
    }

    /// Per level k the numbers the GPU kernel reads (`shaders/master_batch.wgsl`):
    /// `[ure_k, E_k, m_k, dn_k, up_k, h_{k-1}, h_k, Gamma_phi / 2]` (h_{-1} = 0).
    #[cfg_attr(not(feature = "gpu"), allow(dead_code))] // read by the GPU host only
    pub(crate) fn levels(&self) -> Vec<[f64; 8]> {
        (0..self.n)
            .map(|k| {
                [
                    self.ure[k],
                    self.e[k],
                    self.m[k],
                    self.dn[k],
                    self.up[k],
                    self.hp[k],
                    self.hp[k + 1],
                    self.gph,
                ]
            })
            .collect()
    }

    /// The stencil's couplings of element (r, c): (dr, dc, coefficient) for the neighbour
    /// (r + dr, c + dc). Out-of-range neighbours have zero coefficients.
    pub(crate) fn couplings(&self, r: usize, c: usize) -> [(isize, isize, c64); 7] {
        let (ph, phc) = (self.phase, self.phase.conj());
        let i = c64::new(0.0, 1.0);
        let d = c64::new(
            self.ure[r] + self.ure[c] - self.gph * (self.m[r] - self.m[c]) * (self.m[r] - self.m[c]),
            self.e[c] - self.e[r],
        );
        let (dnr, dnc) = (self.dn[r], self.dn[c]);
        let (upr, upc) = (self.up[r], self.up[c]);
        [
            (0, 0, d),
            (-1, 0, -i * phc * self.hp[r]),
            (1, 0, -i * ph * self.hp[r + 1]),
            (0, -1, i * ph * self.hp[c]),
            (0, 1, i * phc * self.hp[c + 1]),
            (1, 1, c64::new(dnr * dnc, 0.0)),
            (-1, -1, c64::new(upr * upc, 0.0)),
        ]
    }

    /// Population rates (a_k, b_k, c_k): decay k -> k-1, pump k -> k+1 and their total, made
    /// exactly conservative in floating point (a_k + b_k == c_k with no rounding), so that the
    /// assembled diagonal equations sum to zero exactly. Otherwise the rounding of the rates
    /// leaves a flux imbalance ~ eps |L| that accumulates along the ladder towards the trace
    /// row and swamps tiny populations (measured: relative error 4e-10 at m = -j for pumping
    /// at w = 1.1, N = 100; 1e-14 with this and the refinement of `steady_state_lu`).
    fn population_rates(&self, k: usize) -> (f64, f64, f64) {
        let a = if k > 0 {
            self.dn[k - 1] * self.dn[k - 1]
        } else {
            0.0
        };
        let b = if k + 1 < self.n {
            self.up[k + 1] * self.up[k + 1]
        } else {
            0.0
        };
        let c = a + b;
        // Fast2Sum (Dekker): for |a| >= |b|, c - a is exact, so a + (c - a) == c exactly.
        if a.abs() >= b.abs() {
            (a, c - a, c)
        } else {
            (c - b, b, c)
        }
    }

    /// One element from its couplings; `get` returns rho at (r, c) or 0 outside the matrix.
    #[inline]
    fn elem(&self, r: usize, c: usize, get: &impl Fn(isize, isize) -> c64) -> c64 {
        let mut acc = c64::new(0.0, 0.0);
        for (dr, dc, k) in self.couplings(r, c) {
            if k != c64::new(0.0, 0.0) {
                acc += k * get(r as isize + dr, c as isize + dc);
            }
        }
        acc
    }
}

/// The branch-free interior of one output row r over `out.len()` columns starting at c0,
/// where every neighbour exists. Slices (all starting at the columns noted):
/// `a` = row r-1 from c0-1 (len + 1), `z` = row r from c0-1 (len + 2), `b` = row r+1 from c0
/// (len + 1). For a missing row r-1 or r+1 pass any row: its coefficients are zero there.
#[inline(always)]
fn row_interior<const PHASED: bool>(
    co: &Coeffs,
    r: usize,
    c0: usize,
    a: &[c64],
    z: &[c64],
    b: &[c64],
    out: &mut [c64],
) {
    let len = out.len();
    let a = &a[..len + 1];
    let z = &z[..len + 2];
    let b = &b[..len + 1];
    let ure = &co.ure[c0..c0 + len];
    let e = &co.e[c0..c0 + len];
    let m = &co.m[c0..c0 + len];
    let hh = &co.hp[c0..c0 + len + 1]; // hh[i] = h_{c-1}, hh[i+1] = h_c
    let dn = &co.dn[c0..c0 + len];
    let up = &co.up[c0..c0 + len];
    let (ur, er, mr, gph) = (co.ure[r], co.e[r], co.m[r], co.gph);
    let (hrm1, hr) = (co.hp[r], co.hp[r + 1]);
    let (dnr, upr) = (co.dn[r], co.up[r]);
    let (pr, pi) = (co.phase.re, co.phase.im);
    for i in 0..len {
        let zc = z[i + 1];
        let dm = mr - m[i];
        let dre = ur + ure[i] - gph * dm * dm;
        let dim = e[i] - er;
        let (sre, sim) = if PHASED {
            // e^{-i phi} (h_{r-1} rho_{r-1,c} - h_c rho_{r,c+1}) + e^{i phi} (h_r rho_{r+1,c} - h_{c-1} rho_{r,c-1})
            let p = hrm1 * a[i + 1] - hh[i + 1] * z[i + 2];
            let q = hr * b[i] - hh[i] * z[i];
            (
                pr * (p.re + q.re) + pi * (p.im - q.im),
                pr * (p.im + q.im) - pi * (p.re - q.re),
            )
        } else {
            let s = hrm1 * a[i + 1] + hr * b[i] - hh[i] * z[i] - hh[i + 1] * z[i + 2];
            (s.re, s.im)
        };
        let jd = dnr * dn[i];
        let ju = upr * up[i];
        let bn = b[i + 1];
        let am = a[i];
        out[i] = c64::new(
            dre * zc.re - dim * zc.im + sim + jd * bn.re + ju * am.re,
            dre * zc.im + dim * zc.re - sre + jd * bn.im + ju * am.im,
        );
    }
}

/// Split `out` into consecutive row blocks `(r0, r1, slice)` of about TASK_ELEMS elements,
/// row r holding `row_len(r)` elements.
fn row_blocks<T>(out: &mut [T], n: usize, row_len: impl Fn(usize) -> usize) -> Vec<(usize, usize, &mut [T])> {
    let mut blocks = Vec::new();
    let mut rest = out;
    let mut r0 = 0;
    while r0 < n {
        let (mut r1, mut len) = (r0, 0);
        while r1 < n && (len < TASK_ELEMS || r1 == r0) {
            len += row_len(r1);
            r1 += 1;
        }
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(len);
        blocks.push((r0, r1, head));
        rest = tail;
        r0 = r1;
    }
    blocks
}

multiversion! {
    /// Rows r0..r1 of L rho for a full row-major matrix (interleaved complex); `out` holds
    /// exactly those rows.
    fn full_rows<const PHASED: bool>(co: &Coeffs, rho: &[c64], r0: usize, r1: usize, out: &mut [c64]) {
        let n = co.n;
        let row = |r: usize| &rho[r * n..(r + 1) * n];
        let get = |r: isize, c: isize| {
            if r < 0 || c < 0 || r >= n as isize || c >= n as isize {
                c64::new(0.0, 0.0)
            } else {
                rho[r as usize * n + c as usize]
            }
        };
        for r in r0..r1 {
            let o = &mut out[(r - r0) * n..(r - r0 + 1) * n];
            if n >= 3 {
                let a = row(r.saturating_sub(1));
                let b = row((r + 1).min(n - 1));
                row_interior::<PHASED>(co, r, 1, &a[..n - 1], row(r), &b[1..], &mut o[1..n - 1]);
            }
            o[0] = co.elem(r, 0, &get);
            o[n - 1] = co.elem(r, n - 1, &get);
        }
    }
}

/// L rho on a full row-major n x n matrix.
pub(crate) fn apply_full<const PHASED: bool>(co: &Coeffs, rho: &[c64], out: &mut [c64]) {
    let n = co.n;
    if n * n >= PAR_MIN_ELEMS {
        row_blocks(out, n, |_| n)
            .into_par_iter()
            .for_each(|(r0, r1, o)| full_rows::<PHASED>(co, rho, r0, r1, o));
    } else {
        full_rows::<PHASED>(co, rho, 0, n, out);
    }
}

/// [`row_interior`] (phi = 0 frame) on split real/imaginary planes, for the packed Hermitian
/// storage of [`evolve`]: no shuffles, so the loop maps onto plain SIMD lanes. Dispatches to
/// [`row_interior_split_avx2`] when the CPU has AVX2; both do the same operations in the same
/// order (no FMA), so the results are identical.
#[allow(clippy::too_many_arguments)]
fn row_interior_split(
    co: &Coeffs,
    r: usize,
    c0: usize,
    are: &[f64],
    aim: &[f64],
    zre: &[f64],
    zim: &[f64],
    bre: &[f64],
    bim: &[f64],
    ore: &mut [f64],
    oim: &mut [f64],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the running CPU supports AVX2 (checked just above).
        return unsafe { row_interior_split_avx2(co, r, c0, are, aim, zre, zim, bre, bim, ore, oim) };
    }
    row_interior_split_scalar(co, r, c0, are, aim, zre, zim, bre, bim, ore, oim)
}

#[allow(clippy::too_many_arguments)]
fn row_interior_split_scalar(
    co: &Coeffs,
    r: usize,
    c0: usize,
    are: &[f64],
    aim: &[f64],
    zre: &[f64],
    zim: &[f64],
    bre: &[f64],
    bim: &[f64],
    ore: &mut [f64],
    oim: &mut [f64],
) {
    let len = ore.len();
    let (are, aim) = (&are[..len + 1], &aim[..len + 1]);
    let (zre, zim) = (&zre[..len + 2], &zim[..len + 2]);
    let (bre, bim) = (&bre[..len + 1], &bim[..len + 1]);
    let oim = &mut oim[..len];
    let ure = &co.ure[c0..c0 + len];
    let e = &co.e[c0..c0 + len];
    let m = &co.m[c0..c0 + len];
    let hh = &co.hp[c0..c0 + len + 1];
    let dn = &co.dn[c0..c0 + len];
    let up = &co.up[c0..c0 + len];
    let (ur, er, mr, gph) = (co.ure[r], co.e[r], co.m[r], co.gph);
    let (hrm1, hr) = (co.hp[r], co.hp[r + 1]);
    let (dnr, upr) = (co.dn[r], co.up[r]);
    for i in 0..len {
        let dm = mr - m[i];
        let dre = ur + ure[i] - gph * dm * dm;
        let dim = e[i] - er;
        let sre = hrm1 * are[i + 1] + hr * bre[i] - hh[i] * zre[i] - hh[i + 1] * zre[i + 2];
        let sim = hrm1 * aim[i + 1] + hr * bim[i] - hh[i] * zim[i] - hh[i + 1] * zim[i + 2];
        let jd = dnr * dn[i];
        let ju = upr * up[i];
        ore[i] = dre * zre[i + 1] - dim * zim[i + 1] + sim + jd * bre[i + 1] + ju * are[i];
        oim[i] = dre * zim[i + 1] + dim * zre[i + 1] - sre + jd * bim[i + 1] + ju * aim[i];
    }
}

/// AVX2 twin of [`row_interior_split_scalar`], four columns per iteration. Written with
/// intrinsics because LLVM left this 14-stream loop scalar in the multi-codegen-unit release
/// build (it vectorised only with codegen-units = 1).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
fn row_interior_split_avx2(
    co: &Coeffs,
    r: usize,
    c0: usize,
    are: &[f64],
    aim: &[f64],
    zre: &[f64],
    zim: &[f64],
    bre: &[f64],
    bim: &[f64],
    ore: &mut [f64],
    oim: &mut [f64],
) {
    use std::arch::x86_64::*;
    let len = ore.len();
    // Bounds for every load below (the loop reads at most index i + 3 (+2) of each slice).
    let (are, aim) = (&are[..len + 1], &aim[..len + 1]);
    let (zre, zim) = (&zre[..len + 2], &zim[..len + 2]);
    let (bre, bim) = (&bre[..len + 1], &bim[..len + 1]);
    let oim = &mut oim[..len];
    let ure = &co.ure[c0..c0 + len];
    let e = &co.e[c0..c0 + len];
    let m = &co.m[c0..c0 + len];
    let hh = &co.hp[c0..c0 + len + 1];
    let dn = &co.dn[c0..c0 + len];
    let up = &co.up[c0..c0 + len];
    let ur = _mm256_set1_pd(co.ure[r]);
    let er = _mm256_set1_pd(co.e[r]);
    let mr = _mm256_set1_pd(co.m[r]);
    let gph = _mm256_set1_pd(co.gph);
    let hrm1 = _mm256_set1_pd(co.hp[r]);
    let hr = _mm256_set1_pd(co.hp[r + 1]);
    let dnr = _mm256_set1_pd(co.dn[r]);
    let upr = _mm256_set1_pd(co.up[r]);
    let quads = len / 4;
    for q in 0..quads {
        let i = 4 * q;
        // SAFETY: i + 3 < len, so every load of 4 lanes starting at i, i + 1 or i + 2 stays
        // inside the slices sliced to len, len + 1 and len + 2 above; stores likewise.
        unsafe {
            macro_rules! ld {
                ($s:expr, $k:expr) => {
                    _mm256_loadu_pd($s.as_ptr().add($k))
                };
            }
            let (zre1, zim1) = (ld!(zre, i + 1), ld!(zim, i + 1));
            let dm = _mm256_sub_pd(mr, ld!(m, i));
            let dre = _mm256_sub_pd(
                _mm256_add_pd(ur, ld!(ure, i)),
                _mm256_mul_pd(_mm256_mul_pd(gph, dm), dm),
            );
            let dim = _mm256_sub_pd(ld!(e, i), er);
            let (h0, h1) = (ld!(hh, i), ld!(hh, i + 1));
            let sre = _mm256_sub_pd(
                _mm256_sub_pd(
                    _mm256_add_pd(
                        _mm256_mul_pd(hrm1, ld!(are, i + 1)),
                        _mm256_mul_pd(hr, ld!(bre, i)),
                    ),
                    _mm256_mul_pd(h0, ld!(zre, i)),
                ),
                _mm256_mul_pd(h1, ld!(zre, i + 2)),
            );
            let sim = _mm256_sub_pd(
                _mm256_sub_pd(
                    _mm256_add_pd(
                        _mm256_mul_pd(hrm1, ld!(aim, i + 1)),
                        _mm256_mul_pd(hr, ld!(bim, i)),
                    ),
                    _mm256_mul_pd(h0, ld!(zim, i)),
                ),
                _mm256_mul_pd(h1, ld!(zim, i + 2)),
            );
            let jd = _mm256_mul_pd(dnr, ld!(dn, i));
            let ju = _mm256_mul_pd(upr, ld!(up, i));
            let o_re = _mm256_add_pd(
                _mm256_add_pd(
                    _mm256_add_pd(
                        _mm256_sub_pd(_mm256_mul_pd(dre, zre1), _mm256_mul_pd(dim, zim1)),
                        sim,
                    ),
                    _mm256_mul_pd(jd, ld!(bre, i + 1)),
                ),
                _mm256_mul_pd(ju, ld!(are, i)),
            );
            let o_im = _mm256_add_pd(
                _mm256_add_pd(
                    _mm256_sub_pd(
                        _mm256_add_pd(_mm256_mul_pd(dre, zim1), _mm256_mul_pd(dim, zre1)),
                        sre,
                    ),
                    _mm256_mul_pd(jd, ld!(bim, i + 1)),
                ),
                _mm256_mul_pd(ju, ld!(aim, i)),
            );
            _mm256_storeu_pd(ore.as_mut_ptr().add(i), o_re);
            _mm256_storeu_pd(oim.as_mut_ptr().add(i), o_im);
        }
    }
    let i = 4 * quads;
    if i < len {
        row_interior_split_scalar(
            co,
            r,
            c0 + i,
            &are[i..],
            &aim[i..],
            &zre[i..],
            &zim[i..],
            &bre[i..],
            &bim[i..],
            &mut ore[i..],
            &mut oim[i..],
        );
    }
}

multiversion! {
    /// Rows r0..r1 of L rho (phi = 0 frame) for a Hermitian matrix stored as the packed upper
    /// triangle in split planes `re`, `im`; `ore`, `oim` hold exactly those rows.
    fn packed_split_rows<>(co: &Coeffs, re: &[f64], im: &[f64], r0: usize, r1: usize, ore: &mut [f64], oim: &mut [f64]) {
        let n = co.n;
        let row = |r: usize| {
            let o = packed_offset(n, r);
            (&re[o..o + n - r], &im[o..o + n - r])
        };
        let get = |r: isize, c: isize| {
            if r < 0 || c < 0 || r >= n as isize || c >= n as isize {
                c64::new(0.0, 0.0)
            } else if r <= c {
                let i = packed_offset(n, r as usize) + (c - r) as usize;
                c64::new(re[i], im[i])
            } else {
                let i = packed_offset(n, c as usize) + (r - c) as usize;
                c64::new(re[i], -im[i])
            }
        };
        let base = packed_offset(n, r0);
        for r in r0..r1 {
            let o0 = packed_offset(n, r) - base;
            let w = n - r;
            let (ore, oim) = (&mut ore[o0..o0 + w], &mut oim[o0..o0 + w]);
            if w >= 3 {
                // interior columns r+1 .. n-2; a = row r-1 from column r (any row when r = 0)
                let (are, aim) = if r == 0 {
                    row(0)
                } else {
                    let (x, y) = row(r - 1);
                    (&x[1..], &y[1..])
                };
                let ((zre, zim), (bre, bim)) = (row(r), row(r + 1));
                row_interior_split(
                    co,
                    r,
                    r + 1,
                    are,
                    aim,
                    zre,
                    zim,
                    bre,
                    bim,
                    &mut ore[1..w - 1],
                    &mut oim[1..w - 1],
                );
            }
            // L maps Hermitian to Hermitian: the diagonal is real (exactly, not to rounding).
            ore[0] = co.elem(r, r, &get).re;
            oim[0] = 0.0;
            if w > 1 {
                let v = co.elem(r, n - 1, &get);
                ore[w - 1] = v.re;
                oim[w - 1] = v.im;
            }
        }
    }
}

/// L rho (phi = 0 frame) on a Hermitian matrix stored as its packed upper triangle in split
/// planes: `y = [re (P) | im (P)]`, P = n(n+1)/2; output likewise.
pub(crate) fn apply_packed_split(co: &Coeffs, y: &[f64], out: &mut [f64]) {
    let n = co.n;
    let p = packed_len(n);
    let (re, im) = y.split_at(p);
    let (ore, oim) = out.split_at_mut(p);
    if p >= PAR_MIN_ELEMS {
        row_blocks(ore, n, |r| n - r)
            .into_par_iter()
            .zip(row_blocks(oim, n, |r| n - r))
            .for_each(|((r0, r1, ore), (_, _, oim))| packed_split_rows(co, re, im, r0, r1, ore, oim));
    } else {
        packed_split_rows(co, re, im, 0, n, ore, oim);
    }
}

/// `out = L rho` for a collective model in irrep `irrep`: `rho` and `out` are row-major
/// `dim x dim` matrices (any matrix, Hermitian or not). Individual rates of `model` are
/// ignored (they do not act within one irrep as a closed generator); callers check
/// [`Model::is_collective`].
///
/// Panics if the slices are not `dim * dim` long.
pub fn liouvillian_apply(model: &Model, irrep: &Irrep, rho: &[c64], out: &mut [c64]) {
    let n = irrep.dim();
    assert_eq!(rho.len(), n * n, "liouvillian_apply: rho must be dim x dim");
    assert_eq!(out.len(), n * n, "liouvillian_apply: out must be dim x dim");
    let co = Coeffs::new(model, irrep, true);
    if co.phase == c64::new(1.0, 0.0) {
        apply_full::<false>(&co, rho, out);
    } else {
        apply_full::<true>(&co, rho, out);
    }
}

// ---------------------------------------------------------------------------------------------
// Time evolution

fn require_collective(protocol: &Protocol, solver: &'static str) -> Result<(), SolverError> {
    if protocol.is_collective() {
        return Ok(());
    }
    Err(SolverError::Unsupported {
        solver,
        message: format!(
            "the model has individual (single-atom) rates {} > 0; the collective master equation \
             keeps only the j = N/2 irrep; individual processes need the permutation-invariant \
             block solver (solver::blocks)",
            protocol.individual_terms().join(", ")
        ),
    })
}

/// Gauge factors g_k = e^{i phi k}: the phi = 0 frame holds g_r conj(g_c) rho_rc.
pub(crate) fn gauge(n: usize, phi: f64) -> Vec<c64> {
    (0..n).map(|k| c64::new(0.0, phi * k as f64).exp()).collect()
}

/// Integrate the master equation from `rho0` at `times[0]` and call `on_save(i, times[i], rho)`
/// at every requested time (the first with `rho0` itself). `times` must be non-decreasing.
///
/// Refuses models with individual rates ([`SolverError::Unsupported`]).
pub fn evolve(
    model: &Model,
    rho0: &DensityMatrix,
    times: &[f64],
    opts: &OdeOptions,
    on_save: &mut dyn FnMut(usize, f64, &DensityMatrix),
) -> Result<EvolveStats, SolverError> {
    evolve_with(model, rho0, times, opts, Storage::Auto, on_save)
}

/// [`evolve`] with an explicit choice of storage.
pub fn evolve_with(
    model: &Model,
    rho0: &DensityMatrix,
    times: &[f64],
    opts: &OdeOptions,
    storage: Storage,
    on_save: &mut dyn FnMut(usize, f64, &DensityMatrix),
) -> Result<EvolveStats, SolverError> {
    evolve_protocol(&Protocol::from(*model), rho0, times, opts, storage, on_save)
}

/// [`evolve_with`] under a time-dependent protocol (`model::schedule`): the integrator lands
/// on every break and each step uses its piece's model (coefficients refilled in place per
/// right-hand side, O(n) against the O(n^2) stencil). A scheduled drive phase phi cannot be gauged away
/// by one constant frame, so it runs on full matrices with the phase in the stencil.
pub fn evolve_protocol(
    protocol: &Protocol,
    rho0: &DensityMatrix,
    times: &[f64],
    opts: &OdeOptions,
    storage: Storage,
    on_save: &mut dyn FnMut(usize, f64, &DensityMatrix),
) -> Result<EvolveStats, SolverError> {
    let model = &protocol.base;
    require_collective(protocol, "master")?;
    let irrep = Irrep::symmetric(model.n);
    let n = irrep.dim();
    if rho0.dim != n || rho0.data.len() != n * n {
        return Err(SolverError::Unsupported {
            solver: "master",
            message: format!(
                "initial density matrix is {0} x {0}, the model's N = {1} needs {2} x {2}",
                rho0.dim, model.n, n
            ),
        });
    }
    let phase_scheduled = protocol.names().contains(&"phi");
    let scale = rho0.data.iter().map(|z| z.norm()).fold(0.0, f64::max);
    let hermitian =
        storage == Storage::Auto && !phase_scheduled && rho0.hermiticity_error() <= 1e-12 * scale.max(1e-300);
    let len = if hermitian { packed_len(n) } else { n * n };
    // y, y_new, a stage input and 7 stage derivatives, plus one saved matrix.
    check_memory(
        format!("time evolution of a {n} x {n} density matrix (10 work vectors)"),
        (10 * len + n * n) as f64 * 16.0,
    )?;
    let breaks = ode::protocol_breaks(protocol, times, "master")?;
    let mut work = Coeffs::new(model, &irrep, phase_scheduled);
    let constant = protocol.is_constant();
    // The coefficients of the piece starting at `at`, evaluated at t (constant: built once).
    let update = |work: &mut Coeffs, at: f64, t: f64| {
        if !constant {
            work.refill(&protocol.model_in(at, t), &irrep, phase_scheduled);
        }
    };
    let g = gauge(n, if phase_scheduled { 0.0 } else { model.phi });
    let tr0 = rho0.trace();
    let mut max_tr: f64 = 0.0;
    let mut max_herm: f64 = 0.0;
    let mut dm = DensityMatrix::zeros(n);

    let ostats = if hermitian {
        let p = len;
        let mut y0 = vec![0.0; 2 * p];
        for r in 0..n {
            for c in r..n {
                let v = g[r] * g[c].conj() * 0.5 * (rho0.get(r, c) + rho0.get(c, r).conj());
                let i = packed_offset(n, r) + c - r;
                y0[i] = v.re;
                y0[p + i] = if c == r { 0.0 } else { v.im };
            }
        }
        ode::integrate_real_pieces(
            |at, t, y: &[f64], dy: &mut [f64]| {
                update(&mut work, at, t);
                apply_packed_split(&work, y, dy)
            },
            &y0,
            times,
            &breaks,
            opts,
            |i, t, y| {
                for r in 0..n {
                    for c in r..n {
                        let k = packed_offset(n, r) + c - r;
                        let v = g[r].conj() * g[c] * c64::new(y[k], y[p + k]);
                        dm.data[r * n + c] = v;
                        dm.data[c * n + r] = v.conj();
                    }
                    dm.data[r * n + r].im = 0.0;
                }
                max_tr = max_tr.max((dm.trace() - tr0).norm());
                on_save(i, t, &dm);
            },
        )?
    } else {
        let mut y0 = rho0.data.clone();
        for r in 0..n {
            for c in 0..n {
                y0[r * n + c] *= g[r] * g[c].conj();
            }
        }
        let y0r: &[f64] = bytemuck::cast_slice(&y0);
        ode::integrate_real_pieces(
            |at, t, y: &[f64], dy: &mut [f64]| {
                update(&mut work, at, t);
                let co = &work;
                let (y, dy) = (bytemuck::cast_slice(y), bytemuck::cast_slice_mut(dy));
                if phase_scheduled && co.phase != c64::new(1.0, 0.0) {
                    apply_full::<true>(co, y, dy)
                } else {
                    apply_full::<false>(co, y, dy)
                }
            },
            y0r,
            times,
            &breaks,
            opts,
            |i, t, y: &[f64]| {
                let y: &[c64] = bytemuck::cast_slice(y);
                for r in 0..n {
                    for c in 0..n {
                        dm.data[r * n + c] = g[r].conj() * g[c] * y[r * n + c];
                    }
                }
                max_tr = max_tr.max((dm.trace() - tr0).norm());
                max_herm = max_herm.max(dm.hermiticity_error());
                on_save(i, t, &dm);
            },
        )?
    };
    Ok(EvolveStats {
        steps: ostats.steps,
        rejected: ostats.rejected,
        rhs_evals: ostats.rhs_evals,
        max_trace_error: max_tr,
        max_hermiticity_error: max_herm,
        hermitian_storage: hermitian,
    })
}

// ---------------------------------------------------------------------------------------------
// Steady state

/// The complex equation of element (r, c) (any r, c) of the collective L of `co`: the
/// stencil's couplings that stay inside the matrix, as block-0 [`Coupling`]s (the sparse
/// complex assembly of [`super::spectrum`]).
pub(crate) fn collective_couplings(co: &Coeffs, r: usize, c: usize, terms: &mut Vec<Coupling>) {
    let n = co.n as isize;
    for (dr, dc, k) in co.couplings(r, c) {
        let (rr, cc) = (r as isize + dr, c as isize + dc);
        if rr >= 0 && cc >= 0 && rr < n && cc < n {
            terms.push((0, rr as usize, cc as usize, k));
        }
    }
}

/// Assemble the real (N+1)^2 x (N+1)^2 form of L on Hermitian matrices, in CSR, with the
/// equation of rho_kk (k = `pin`) replaced by `s rho_kk = s`.
fn assemble_hermitian(co: &Coeffs, s: f64, pin: usize) -> Csr {
    let n = co.n;
    let pin = Pin { block: 0, level: pin };
    assemble_hermitian_blocks(&[n], s, false, pin, |_, r, c, terms| {
        let diagonal = r == c;
        if diagonal {
            // The population terms, exactly conservative (see `population_rates`).
            terms.push((0, r, r, c64::new(-co.population_rates(r).2, 0.0)));
            if r + 1 < n {
                terms.push((0, r + 1, r + 1, c64::new(co.population_rates(r + 1).0, 0.0)));
            }
            if r > 0 {
                terms.push((0, r - 1, r - 1, c64::new(co.population_rates(r - 1).1, 0.0)));
            }
        }
        for (dr, dc, k) in co.couplings(r, c) {
            if diagonal && dr == dc {
                continue;
            }
            let (rr, cc) = (r as isize + dr, c as isize + dc);
            if rr < 0 || cc < 0 || rr >= n as isize || cc >= n as isize {
                continue;
            }
            terms.push((0, rr as usize, cc as usize, k));
        }
    })
}

/// Peak memory (bytes) of the driven steady-state solve for `n_levels` = N + 1: the exact
/// figure of the factorisation's symbolic analysis ([`crate::solver::frontal`]) on the
/// stencil's pattern with every coupling present, plus the matrix and the solver's vectors
/// ([`crate::solver::hermitian::solve_memory_estimate`]). Measured peak resident memory is
/// within a few percent of it (BENCHMARKS.md).
pub fn steady_state_memory_estimate(n_levels: usize) -> f64 {
    let model = Model {
        n: n_levels.saturating_sub(1),
        omega0: 1.0,
        drive: 1.0,
        chi: 1.0,
        gamma_coll: 1.0,
        pump_coll: 1.0,
        dephase_coll: 1.0,
        ..Default::default()
    };
    let n = n_levels;
    // Beyond the limit's reach (N ~ 2,300) the pattern itself would be gigabytes: extrapolate
    // the nested-dissection fill n^2 log n from the largest analysed size (a lower bound).
    const ANALYSED_LEVELS: usize = 2400;
    if n > ANALYSED_LEVELS {
        let (a, b) = ((ANALYSED_LEVELS * ANALYSED_LEVELS) as f64, (n * n) as f64);
        return steady_state_memory_estimate(ANALYSED_LEVELS) * (b * b.log2()) / (a * a.log2());
    }
    let co = Coeffs::new(&model, &Irrep::symmetric(model.n), false);
    let coords = unknown_coords(&[n], false, |_, r, c| [0, r as i32, c as i32]);
    let csr = assemble_hermitian(&co, 1.0, n / 2);
    solve_memory_estimate(&csr, &coords) + 3.0 * 16.0 * (n * n) as f64
}

/// The driven case of [`steady_state`]: the real Hermitian form of L (phi = 0 frame) with one
/// population pinned, by nested dissection and multifrontal LU, refined
/// ([`crate::solver::hermitian`]). The unknowns sit on the (r, c) grid (both parts of an
/// off-diagonal element at its grid point), and every coupling moves r and c by at most one,
/// also where an element below the diagonal folds onto its upper twin. The pin starts at the
/// middle level, where a driven state has weight; if that population came out below
/// [`PIN_RATIO`] of the largest, the solve is repeated pinned at the largest. Returns rho
/// (phi = 0 frame, full row-major, trace one), nnz, the residual of the unrefined solution,
/// the refinement steps and the factor's entries.
fn steady_state_lu(model: &Model, co: &Coeffs) -> Result<(Vec<c64>, usize, f64, usize, usize), SolverError> {
    let n = co.n;
    let nu = n * n;
    let what = format!("N = {}", model.n);
    check_memory(
        format!("multifrontal LU of the {nu} x {nu} real Liouvillian ({what}), fill included"),
        steady_state_memory_estimate(n),
    )?;
    let coords = unknown_coords(&[n], false, |_, r, c| [0, r as i32, c as i32]);
    let unpack = |x: &[f64]| -> Vec<c64> {
        let trace: f64 = (0..n).map(|k| x[hidx(n, k, k)]).sum();
        let mut rho = vec![c64::new(0.0, 0.0); nu];
        for r in 0..n {
            rho[r * n + r] = c64::new(x[hidx(n, r, r)] / trace, 0.0);
            for c in r + 1..n {
                let i = hidx(n, r, c);
                let v = c64::new(x[i], x[i + 1]) / trace;
                rho[r * n + c] = v;
                rho[c * n + r] = v.conj();
            }
        }
        rho
    };
    let population = |x: &[f64], k: usize| x[hidx(n, k, k)].abs();
    let mut level = n / 2;
    loop {
        // Scale of the pinned row: 1-norm of the equation it replaces.
        let s = co
            .couplings(level, level)
            .iter()
            .map(|x| x.2.norm())
            .sum::<f64>()
            .max(f64::MIN_POSITIVE.sqrt());
        let csr = assemble_hermitian(co, s, level);
        let pin = hidx(n, level, level);
        let (x, residual_unrefined, refinement_steps, entries) =
            solve_pinned(&csr, &coords, pin, s, &what, |x| {
                let mut lrho = vec![c64::new(0.0, 0.0); nu];
                apply_full::<false>(co, &unpack(x), &mut lrho);
                lrho.iter().map(|z| z.norm()).fold(0.0, f64::max)
            })?;
        let largest = (0..n)
            .max_by(|&a, &b| population(&x, a).total_cmp(&population(&x, b)))
            .unwrap_or(0);
        if largest != level && population(&x, level) < PIN_RATIO * population(&x, largest) {
            level = largest;
            continue;
        }
        return Ok((
            unpack(&x),
            csr.2.len(),
            residual_unrefined,
            refinement_steps,
            entries,
        ));
    }
}

/// The undriven case of [`steady_state`]: with Omega = 0 every term of L preserves
/// q = c - r, so the (unique) steady state lies in q = 0 and its populations form a
/// birth-death chain (decay k -> k-1 at a_k, pumping k -> k+1 at b_k; dephasing and the
/// diagonal Hamiltonian do not act on them). Its stationary law obeys detailed balance,
/// P_{k+1}/P_k = b_k / a_{k+1}, summed here in logarithms: O(N), exact to ~N eps relative per
/// population, for any N. Returns rho (full row-major, diagonal).
fn populations_steady_state(model: &Model, co: &Coeffs) -> Result<Vec<c64>, SolverError> {
    let n = co.n;
    let (g, w) = (model.gamma_coll, model.pump_coll);
    let mut p = vec![0.0; n];
    if g == 0.0 && w == 0.0 {
        return Err(SolverError::Factorization(
            "Omega = 0 with no collective decay or pumping: the populations are conserved and the \
             steady state is not unique"
                .to_string(),
        ));
    } else if g == 0.0 {
        p[n - 1] = 1.0;
    } else if w == 0.0 {
        p[0] = 1.0;
    } else {
        let mut lnp = vec![0.0; n];
        for k in 0..n - 1 {
            lnp[k + 1] = lnp[k] + co.population_rates(k).1.ln() - co.population_rates(k + 1).0.ln();
        }
        let mx = lnp.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = lnp.iter().map(|l| (l - mx).exp()).sum();
        for k in 0..n {
            p[k] = (lnp[k] - mx).exp() / z;
        }
    }
    let mut rho = vec![c64::new(0.0, 0.0); n * n];
    for k in 0..n {
        rho[k * n + k] = c64::new(p[k], 0.0);
    }
    Ok(rho)
}

/// The steady state rho_ss (L rho_ss = 0, tr rho_ss = 1) of a collective model, returned
/// Hermitian, with a report of its accuracy. Refuses models with individual rates
/// ([`SolverError::Unsupported`]), and driven problems whose factorisation would exceed
/// [`STEADY_STATE_MEMORY_LIMIT_MIB`] ([`SolverError::TooLarge`], see
/// [`steady_state_memory_estimate`]). A Liouvillian without a unique steady state gives
/// [`SolverError::Factorization`].
///
/// Undriven models (Omega = 0) take the O(N) detailed-balance path; the others a sparse
/// direct solve with iterative refinement (module doc).
///
/// Trace constraint: tr(L rho) = 0 for every rho, so the sum of the diagonal equations
/// Re (L rho)_kk vanishes identically and any one of them is implied by the others. Replacing
/// the equation of rho_00 by `s tr rho = s` therefore leaves exactly the steady states of L
/// and fixes their normalisation; the matrix is nonsingular whenever the steady state is
/// unique. Unlike pinning one element (rho_00 = 1, then renormalising), this stays well
/// conditioned when rho_00 is tiny (e.g. under strong pumping, where the population piles
/// up at m = +j). `s` is the 1-norm of the replaced row, so the trace row has the scale of the
/// others for partial pivoting. The identity "the diagonal equations sum to zero" must hold
/// in floating point too, or the rounding of the rates leaves a flux imbalance that the
/// solution routes into the smallest populations: see `Coeffs::population_rates`.
pub fn steady_state(model: &Model) -> Result<(DensityMatrix, SteadyStats), SolverError> {
    require_collective(&Protocol::from(*model), "master")?;
    if let Some(why) = model.no_unique_steady_state() {
        return Err(SolverError::Unsupported {
            solver: "master steady state",
            message: why.to_string(),
        });
    }
    let irrep = Irrep::symmetric(model.n);
    let n = irrep.dim();
    let nu = n * n;
    // The returned matrix, the state in the solver's frame and L rho for the report.
    check_memory(
        format!(
            "steady state of N = {}: three {n} x {n} complex matrices",
            model.n
        ),
        3.0 * 16.0 * nu as f64,
    )?;
    let co = Coeffs::new(model, &irrep, false);
    let (rho, unknowns, nnz, residual_unrefined, refinement_steps, factor_entries) = if model.drive == 0.0 {
        let rho = populations_steady_state(model, &co)?;
        let mut lrho = vec![c64::new(0.0, 0.0); nu];
        apply_full::<false>(&co, &rho, &mut lrho);
        let r = lrho.iter().map(|z| z.norm()).fold(0.0, f64::max);
        (rho, n, 0, r, 0, 0)
    } else {
        let (rho, nnz, r, steps, entries) = steady_state_lu(model, &co)?;
        (rho, nu, nnz, r, steps, entries)
    };

    // Back to the model's frame and report from the public stencil.
    let g = gauge(n, model.phi);
    let mut dm = DensityMatrix::zeros(n);
    for r in 0..n {
        for c in 0..n {
            dm.data[r * n + c] = g[r].conj() * g[c] * rho[r * n + c];
        }
    }
    let hermiticity_error = dm.hermiticity_error();
    for r in 0..n {
        for c in r..n {
            let v = 0.5 * (dm.data[r * n + c] + dm.data[c * n + r].conj());
            dm.data[r * n + c] = v;
            dm.data[c * n + r] = v.conj();
        }
    }
    let mut lrho = vec![c64::new(0.0, 0.0); nu];
    liouvillian_apply(model, &irrep, &dm.data, &mut lrho);
    let residual = lrho.iter().map(|z| z.norm()).fold(0.0, f64::max);
    let trace_error = (dm.trace() - 1.0).norm();
    Ok((
        dm,
        SteadyStats {
            unknowns,
            nnz,
            trace_error,
            hermiticity_error,
            residual,
            residual_unrefined,
            refinement_steps,
            factor_entries,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small deterministic generator for test data (xorshift64*).
    struct Rng(u64);
    impl Rng {
        fn f(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545F4914F6CDD1D) >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        }
        fn c(&mut self) -> c64 {
            c64::new(self.f(), self.f())
        }
    }

    fn all_terms_model(n: usize) -> Model {
        Model {
            n,
            omega0: 0.7,
            drive: 1.3,
            phi: 0.4,
            chi: 0.9,
            chi_z: -0.35,
            gamma_coll: 1.1,
            pump_coll: 0.45,
            dephase_coll: 0.6,
            ..Default::default()
        }
    }

    type Dense = Vec<Vec<c64>>;
    fn mm(a: &Dense, b: &Dense) -> Dense {
        let n = a.len();
        (0..n)
            .map(|i| (0..n).map(|j| (0..n).map(|k| a[i][k] * b[k][j]).sum()).collect())
            .collect()
    }
    fn dag(a: &Dense) -> Dense {
        let n = a.len();
        (0..n).map(|i| (0..n).map(|j| a[j][i].conj()).collect()).collect()
    }
    fn lin(terms: &[(c64, &Dense)]) -> Dense {
        let n = terms[0].1.len();
        (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| terms.iter().map(|(s, a)| s * a[i][j]).sum())
                    .collect()
            })
            .collect()
    }

    /// Dense reference: L rho from explicit J matrices (no stencil), all collective terms on,
    /// phi != 0, a random non-Hermitian rho; agreement to rounding (1e-12 on entries O(N^2)).
    #[test]
    fn stencil_matches_dense_operators() {
        for n_atoms in [1usize, 2, 5, 6] {
            let model = all_terms_model(n_atoms);
            let irr = Irrep::symmetric(n_atoms);
            let n = irr.dim();
            let z = c64::new(0.0, 0.0);
            let mut jp: Dense = vec![vec![z; n]; n];
            let mut jz: Dense = vec![vec![z; n]; n];
            for k in 0..n {
                jz[k][k] = c64::new(irr.m[k], 0.0);
                if k + 1 < n {
                    jp[k + 1][k] = c64::new(irr.jp[k], 0.0);
                }
            }
            let jm = dag(&jp);
            let one = c64::new(1.0, 0.0);
            let i = c64::new(0.0, 1.0);
            let jx = lin(&[(0.5 * one, &jp), (0.5 * one, &jm)]);
            let jy = lin(&[(-0.5 * i, &jp), (0.5 * i, &jm)]);
            let jpjm = mm(&jp, &jm);
            let jz2 = mm(&jz, &jz);
            let h = lin(&[
                (model.omega0 * one, &jz),
                (model.drive * model.phi.cos() * one, &jx),
                (model.drive * model.phi.sin() * one, &jy),
                (model.chi * one, &jpjm),
                (model.chi_z * one, &jz2),
            ]);
            let mut rng = Rng(0x1234_5678 + n_atoms as u64);
            let rho: Dense = (0..n).map(|_| (0..n).map(|_| rng.c()).collect()).collect();
            let diss = |o: &Dense, rate: f64| {
                let od = dag(o);
                let odo = mm(&od, o);
                lin(&[
                    (rate * one, &mm(&mm(o, &rho), &od)),
                    (-0.5 * rate * one, &mm(&odo, &rho)),
                    (-0.5 * rate * one, &mm(&rho, &odo)),
                ])
            };
            let expect = lin(&[
                (-i, &mm(&h, &rho)),
                (i, &mm(&rho, &h)),
                (one, &diss(&jm, model.gamma_coll)),
                (one, &diss(&jp, model.pump_coll)),
                (one, &diss(&jz, model.dephase_coll)),
            ]);
            let flat: Vec<c64> = rho.iter().flatten().copied().collect();
            let mut out = vec![z; n * n];
            liouvillian_apply(&model, &irr, &flat, &mut out);
            for r in 0..n {
                for c in 0..n {
                    let d = (out[r * n + c] - expect[r][c]).norm();
                    assert!(
                        d < 1e-12,
                        "N={n_atoms} ({r},{c}): {} vs {}",
                        out[r * n + c],
                        expect[r][c]
                    );
                }
            }
        }
    }

    /// The packed Hermitian kernel, the full kernel with and without the phase, the gauge
    /// identity and the parallel split agree on random Hermitian matrices (N up to 200 so that
    /// rayon splits the rows).
    #[test]
    fn packed_full_and_gauge_agree() {
        for n_atoms in [1usize, 2, 3, 7, 200] {
            let model = all_terms_model(n_atoms);
            let irr = Irrep::symmetric(n_atoms);
            let n = irr.dim();
            let mut rng = Rng(99 + n_atoms as u64);
            let mut rho = vec![c64::new(0.0, 0.0); n * n];
            for r in 0..n {
                for c in r..n {
                    let v = if r == c { c64::new(rng.f(), 0.0) } else { rng.c() };
                    rho[r * n + c] = v;
                    rho[c * n + r] = v.conj();
                }
            }
            let mut full = vec![c64::new(0.0, 0.0); n * n];
            liouvillian_apply(&model, &irr, &rho, &mut full);
            // gauge: L_phi(rho) = U L_0(U^dag rho U) U^dag
            let co0 = Coeffs::new(&model, &irr, false);
            let g = gauge(n, model.phi);
            let tilde: Vec<c64> = (0..n * n).map(|i| g[i / n] * g[i % n].conj() * rho[i]).collect();
            let mut out0 = vec![c64::new(0.0, 0.0); n * n];
            apply_full::<false>(&co0, &tilde, &mut out0);
            let p = packed_len(n);
            let mut packed = vec![0.0; 2 * p];
            for r in 0..n {
                for c in r..n {
                    let i = packed_offset(n, r) + c - r;
                    packed[i] = tilde[r * n + c].re;
                    packed[p + i] = tilde[r * n + c].im;
                }
            }
            let mut outp = vec![0.0; 2 * p];
            apply_packed_split(&co0, &packed, &mut outp);
            let scale = full.iter().map(|z| z.norm()).fold(0.0, f64::max);
            for r in 0..n {
                for c in 0..n {
                    let back = g[r].conj() * g[c] * out0[r * n + c];
                    assert!(
                        (back - full[r * n + c]).norm() <= 1e-13 * scale,
                        "gauge N={n_atoms} ({r},{c})"
                    );
                    if r <= c {
                        let i = packed_offset(n, r) + c - r;
                        let v = c64::new(outp[i], outp[p + i]);
                        assert!(
                            (v - out0[r * n + c]).norm() <= 1e-13 * scale,
                            "packed N={n_atoms} ({r},{c})"
                        );
                    }
                }
            }
        }
    }

    /// The assembled real matrix times the Hermitian unknowns equals the stencil (rows other
    /// than the pinned row), and the pinned row gives s rho_kk.
    #[test]
    fn assembled_matrix_matches_stencil() {
        for n_atoms in [1usize, 4, 9] {
            let model = Model {
                phi: 0.0,
                ..all_terms_model(n_atoms)
            };
            let irr = Irrep::symmetric(n_atoms);
            let n = irr.dim();
            let co = Coeffs::new(&model, &irr, false);
            let s = 3.5;
            let k = n / 2;
            let (rp, ci, v) = assemble_hermitian(&co, s, k);
            assert_eq!(rp.len(), n * n + 1);
            let mut rng = Rng(7 + n_atoms as u64);
            let mut x = vec![0.0; n * n];
            x.iter_mut().for_each(|xi| *xi = rng.f());
            let mut rho = vec![c64::new(0.0, 0.0); n * n];
            for r in 0..n {
                rho[r * n + r] = c64::new(x[hidx(n, r, r)], 0.0);
                for c in r + 1..n {
                    let i = hidx(n, r, c);
                    rho[r * n + c] = c64::new(x[i], x[i + 1]);
                    rho[c * n + r] = c64::new(x[i], -x[i + 1]);
                }
            }
            let mut l = vec![c64::new(0.0, 0.0); n * n];
            apply_full::<false>(&co, &rho, &mut l);
            let ax: Vec<f64> = (0..n * n)
                .map(|row| (rp[row]..rp[row + 1]).map(|e| v[e] * x[ci[e]]).sum())
                .collect();
            assert!((ax[hidx(n, k, k)] - s * rho[k * n + k].re).abs() < 1e-12);
            for r in 0..n {
                for c in r..n {
                    if r == k && c == k {
                        continue;
                    }
                    let i = hidx(n, r, c);
                    assert!((ax[i] - l[r * n + c].re).abs() < 1e-11, "re ({r},{c})");
                    if c > r {
                        assert!((ax[i + 1] - l[r * n + c].im).abs() < 1e-11, "im ({r},{c})");
                    }
                }
            }
        }
    }

    /// The LU path on an undriven pumping model (w > Gamma: the populations pile up at m = +j
    /// and fall to ~1e-5 at m = -j) returns the thermal populations to 1e-12 relative each.
    /// This needs both the exactly conservative population rates (without: 4e-10 relative at
    /// m = -j) and the Dot2 refinement (without: 2e-11). The undriven closed form is exp(-beta Jz)/Z,
    /// beta = -ln(w/Gamma) (PHYSICS.md section 6).
    #[test]
    fn lu_path_keeps_tiny_populations_accurate() {
        for w in [0.9, 1.1] {
            let model = Model {
                n: 100,
                gamma_coll: 1.0,
                pump_coll: w,
                ..Default::default()
            };
            let irr = Irrep::symmetric(100);
            let co = Coeffs::new(&model, &irr, false);
            let (rho, ..) = steady_state_lu(&model, &co).unwrap();
            let n = 101;
            let wts: Vec<f64> = (0..n).map(|k| w.powi(k as i32 - 50)).collect();
            let z: f64 = wts.iter().sum();
            for k in 0..n {
                let rel = (rho[k * n + k].re * z / wts[k] - 1.0).abs();
                assert!(rel < 1e-12, "w={w} k={k}: relative error {rel:e}");
            }
            let via_chain = populations_steady_state(&model, &co).unwrap();
            for k in 0..n {
                assert!((via_chain[k * n + k].re * z / wts[k] - 1.0).abs() < 1e-13);
            }
        }
    }
}
