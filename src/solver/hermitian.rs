//! The real form of a Liouvillian on Hermitian matrices (one block in the collective solver (`master`), the
//! blocks R_j in the block solver (`blocks`)) and its steady-state solve: the shared linear algebra of
//! both steady states.
//!
//! # Unknowns
//!
//! L maps Hermitian matrices to Hermitian matrices, so the steady state is found among them:
//! the unknowns are the populations rho_kk and (Re, Im) rho_rc for r < c, one equation per
//! unknown (the real or imaginary part of (L rho)_rc). The solution is Hermitian by
//! construction, and the system is real: a quarter of the work of the complex one.
//!
//! # Normalisation: a pinned population
//!
//! tr(L rho) = 0 for every rho, so the diagonal equations sum to zero identically and any one
//! of them is implied by the others. Replacing the equation of one population rho_kk by
//! `s rho_kk = s` therefore leaves exactly the steady states of L with that population fixed;
//! the matrix is nonsingular whenever the steady state is unique and its rho_kk is not zero,
//! and the result is divided by its trace. A pin (one entry) keeps the matrix a
//! nearest-neighbour stencil, which the nested dissection of [`super::frontal`] needs; the
//! trace row that the previous solver used couples every population to every other and would
//! join all the separators. The caller pins a population that is not small (a tiny pinned
//! population makes the others huge, and a zero one makes the system singular) and pins
//! again at the largest population when the first choice came out below [`PIN_RATIO`] of it.
//! `s` is the 1-norm of the replaced equation, so the pinned row has the scale of the others.
//! The identity "the diagonal equations sum to zero" must hold in floating point too, or the
//! rounding of the rates leaves a flux imbalance that the solution routes into the smallest
//! populations: see `Coeffs::population_rates` in the collective solver (`master`).
//!
//! # Solve and refinement
//!
//! [`solve_pinned`]: nested dissection on the lattice coordinates of the unknowns and
//! multifrontal LU ([`super::frontal`]; the fronts pivot only within themselves), then
//! iterative refinement with residuals in twice the working precision (Dot2, Ogita, Rump &
//! Oishi 2005). A residual in f64 sits at the rounding floor eps |L| |rho| and cannot remove
//! the solve's error: the LU solution alone leaves relative errors of ~1e-11 in populations of
//! ~1e-5 (test `lu_path_keeps_tiny_populations_accurate` in the collective solver (`master`)); refined, 1e-14.
//! Refinement also absorbs the growth that pivoting restricted to a front can bring. The memory
//! of the factorisation is known exactly from the symbolic analysis and checked before the
//! numeric factorisation allocates anything.

use crate::error::SolverError;
use crate::solver::frontal::{self, Analysis};
use num_complex::Complex64 as c64;
use rayon::prelude::*;

/// Memory limit (MiB) above which the exact solvers refuse to factorise or to allocate an
/// evolution's workspace.
pub const STEADY_STATE_MEMORY_LIMIT_MIB: u64 = 16384;

pub(crate) fn check_memory(what: String, bytes: f64) -> Result<(), SolverError> {
    let needed_mib = (bytes / (1024.0 * 1024.0)).ceil() as u64;
    if needed_mib > STEADY_STATE_MEMORY_LIMIT_MIB {
        return Err(SolverError::TooLarge {
            what,
            needed_mib,
            limit_mib: STEADY_STATE_MEMORY_LIMIT_MIB,
            limit_source: ", the steady-state solver's fixed limit".into(),
        });
    }
    Ok(())
}

/// Offset of row r in the packed upper triangle (row r holds columns r..n).
#[inline]
pub(crate) fn packed_offset(n: usize, r: usize) -> usize {
    r * n - r * r.saturating_sub(1) / 2
}

/// Number of elements of the packed upper triangle.
pub(crate) fn packed_len(n: usize) -> usize {
    n * (n + 1) / 2
}

/// A pinned population smaller than this fraction of the largest population is pinned again
/// at the largest one (module doc).
pub(crate) const PIN_RATIO: f64 = 1e-6;

/// The population whose equation the normalisation replaces: level `level` of block `block`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Pin {
    pub block: usize,
    pub level: usize,
}

/// Index of the real unknown Re rho_rc (r <= c) in the Hermitian real form; Im rho_rc (r < c)
/// is the next one. Row r holds rho_rr then the pairs (Re, Im) of rho_rc, c > r:
/// rows before r hold sum_{r' < r} (2(n - r') - 1) = r (2n - r) unknowns.
#[inline]
pub(crate) fn hidx(n: usize, r: usize, c: usize) -> usize {
    let base = r * (2 * n - r);
    if c == r { base } else { base + 1 + 2 * (c - r - 1) }
}

/// Compressed sparse rows: (row pointers, column indices, values).
pub(crate) type Csr = (Vec<usize>, Vec<usize>, Vec<f64>);

/// One term of a complex equation: coefficient `.3` times the element (`.1`, `.2`) of block
/// `.0`, any (r, c) in range (an element below the diagonal is the conjugate of its upper
/// twin, so it maps onto the same real unknowns).
pub(crate) type Coupling = (usize, usize, usize, c64);

/// Assemble the real form of a Liouvillian acting on Hermitian blocks (one block here; the
/// blocks R_j in the block solver (`blocks`)) in CSR. Block b (dimension `dims[b]`) owns the real
/// unknowns `offset_b + hidx(dims[b], r, c)`, offset_b = sum of dims^2 before it; equation i
/// is the real (or imaginary) part of the element the unknown i belongs to, whose complex
/// equation `couplings(b, r, c, &mut terms)` lists. The equation of the population `pin`
/// is replaced by `s x_pin = s` (module doc: why that is exact).
///
/// With `parity`, the solution is known to obey rho_rc = (-1)^(c-r) conj(rho_rc) (real for
/// even c - r, imaginary for odd; see the block solver (`blocks`) for when): each element r <= c then has
/// one real unknown (packed upper triangle, `offset_b` = sum of d(d+1)/2), and its equation is
/// the real part (even c - r) or the imaginary part (odd), the other part vanishing
/// identically on such matrices. Half the unknowns.
pub(crate) fn assemble_hermitian_blocks(
    dims: &[usize],
    s: f64,
    parity: bool,
    pin: Pin,
    couplings: impl Fn(usize, usize, usize, &mut Vec<Coupling>),
) -> Csr {
    let mut offsets = Vec::with_capacity(dims.len());
    let mut nu = 0;
    for &d in dims {
        offsets.push(nu);
        nu += if parity { packed_len(d) } else { d * d };
    }
    let idx = |b: usize, r: usize, c: usize| {
        if parity {
            offsets[b] + packed_offset(dims[b], r) + c - r
        } else {
            offsets[b] + hidx(dims[b], r, c)
        }
    };
    let mut row_ptr = Vec::with_capacity(nu + 1);
    let mut col_idx = Vec::with_capacity(14 * nu);
    let mut val = Vec::with_capacity(14 * nu);
    row_ptr.push(0);
    let mut re_row: Vec<(usize, f64)> = Vec::with_capacity(32);
    let mut im_row: Vec<(usize, f64)> = Vec::with_capacity(32);
    let mut terms: Vec<Coupling> = Vec::with_capacity(32);
    let flush = |row: &mut Vec<(usize, f64)>, col_idx: &mut Vec<usize>, val: &mut Vec<f64>| {
        row.sort_unstable_by_key(|e| e.0);
        let mut last = usize::MAX;
        for &(j, v) in row.iter() {
            if j == last {
                *val.last_mut().expect("merged entry follows a pushed one") += v;
            } else {
                col_idx.push(j);
                val.push(v);
                last = j;
            }
        }
        row.clear();
    };
    for (b, &n) in dims.iter().enumerate() {
        for r in 0..n {
            for c in r..n {
                if b == pin.block && r == pin.level && c == r {
                    re_row.push((idx(b, r, r), s));
                } else {
                    terms.clear();
                    couplings(b, r, c, &mut terms);
                    for &(bb, rr, cc, k) in &terms {
                        if k == c64::new(0.0, 0.0) {
                            continue;
                        }
                        if parity {
                            // rho' = ph x: ph = 1 (even distance), i above / -i below the
                            // diagonal (odd); keep Re (even c - r) or Im (odd) of k rho'.
                            let (lo, hi) = (rr.min(cc), rr.max(cc));
                            let ph = if (hi - lo) % 2 == 0 {
                                c64::new(1.0, 0.0)
                            } else if rr < cc {
                                c64::new(0.0, 1.0)
                            } else {
                                c64::new(0.0, -1.0)
                            };
                            let kp = k * ph;
                            let v = if (c - r) % 2 == 0 { kp.re } else { kp.im };
                            re_row.push((idx(bb, lo, hi), v));
                            continue;
                        }
                        // rho' = x + i sy * y with the unknowns of the upper element
                        let (x, y, sy) = if rr == cc {
                            (idx(bb, rr, rr), usize::MAX, 0.0)
                        } else if rr < cc {
                            let x = idx(bb, rr, cc);
                            (x, x + 1, 1.0)
                        } else {
                            let x = idx(bb, cc, rr);
                            (x, x + 1, -1.0)
                        };
                        // k rho' = (k.re x - k.im sy y) + i (k.re sy y + k.im x)
                        re_row.push((x, k.re));
                        im_row.push((x, k.im));
                        if y != usize::MAX {
                            re_row.push((y, -k.im * sy));
                            im_row.push((y, k.re * sy));
                        }
                    }
                }
                flush(&mut re_row, &mut col_idx, &mut val);
                row_ptr.push(col_idx.len());
                if c > r && !parity {
                    flush(&mut im_row, &mut col_idx, &mut val);
                    row_ptr.push(col_idx.len());
                }
                im_row.clear();
            }
        }
    }
    (row_ptr, col_idx, val)
}

/// The lattice coordinates of every real unknown of [`assemble_hermitian_blocks`] (same
/// order), from the coordinates `at(b, r, c)` of element (r, c) of block b, whose axes 1 and 2
/// must be r and c shifted alike (so that r = c, a population, reads as equal axes 1 and 2:
/// [`solve_pinned`] eliminates those last). Both unknowns of an off-diagonal element share its
/// coordinates.
pub(crate) fn unknown_coords(
    dims: &[usize],
    parity: bool,
    at: impl Fn(usize, usize, usize) -> [i32; 3],
) -> Vec<[i32; 3]> {
    let mut out = Vec::new();
    for (b, &n) in dims.iter().enumerate() {
        for r in 0..n {
            for c in r..n {
                out.push(at(b, r, c));
                if c > r && !parity {
                    out.push(at(b, r, c));
                }
            }
        }
    }
    out
}

/// Error-free product a b = p + e (Dekker's splitting; exact barring overflow, no FMA needed).
#[inline]
fn two_prod(a: f64, b: f64) -> (f64, f64) {
    const SPLIT: f64 = 134_217_729.0; // 2^27 + 1
    let split = |v: f64| {
        let t = SPLIT * v;
        let hi = t - (t - v);
        (hi, v - hi)
    };
    let p = a * b;
    let ((ah, al), (bh, bl)) = (split(a), split(b));
    (p, al * bl - (((p - ah * bh) - al * bh) - ah * bl))
}

/// Error-free sum a + b = s + e (Knuth's TwoSum).
#[inline]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

/// r = b - A x for a CSR matrix, each row in twice the working precision (Ogita, Rump &
/// Oishi's Dot2), with b zero except `b[b_nz.0] = b_nz.1`.
pub(crate) fn residual_dot2(
    row_ptr: &[usize],
    col_idx: &[usize],
    val: &[f64],
    x: &[f64],
    b_nz: (usize, f64),
) -> Vec<f64> {
    (0..row_ptr.len() - 1)
        .into_par_iter()
        .with_min_len(1024)
        .map(|i| {
            let (mut s, mut c) = (if i == b_nz.0 { b_nz.1 } else { 0.0 }, 0.0);
            for e in row_ptr[i]..row_ptr[i + 1] {
                let (p, ep) = two_prod(-val[e], x[col_idx[e]]);
                let (t, es) = two_sum(s, p);
                s = t;
                c += ep + es;
            }
            s + c
        })
        .collect()
}

/// The elimination tree of [`solve_pinned`]: nested dissection with the populations last.
fn tree(coords: &[[i32; 3]]) -> frontal::Tree {
    // Populations (the only unknowns with r = c in their coordinates) last: see
    // `frontal::dissect_last` for why.
    frontal::dissect_last(coords, |v| coords[v][1] == coords[v][2])
}

/// Peak memory (bytes) of [`solve_pinned`] on this pattern: the factorisation's (exact, from
/// its symbolic analysis), the matrix, and four work vectors.
pub(crate) fn solve_memory_estimate(csr: &Csr, coords: &[[i32; 3]]) -> f64 {
    let (row_ptr, col_idx, _) = csr;
    let nu = (row_ptr.len() - 1) as f64;
    let matrix = 16.0 * col_idx.len() as f64 + 8.0 * nu;
    match Analysis::new(&tree(coords), row_ptr, col_idx) {
        Ok(an) => an.memory_bytes::<f64>() + matrix + 4.0 * 8.0 * nu,
        Err(_) => f64::INFINITY,
    }
}

/// Solve the pinned system `A x = s e_pin` (A from [`assemble_hermitian_blocks`], `coords`
/// from [`unknown_coords`]) by nested dissection and multifrontal LU, then refine (module
/// doc). `what` names the problem in a refusal. Returns x (not normalised), the residual
/// `residual_of(x)` of the unrefined solution, the refinement steps, and the factor's entries.
pub(crate) fn solve_pinned(
    csr: &Csr,
    coords: &[[i32; 3]],
    pin: usize,
    s: f64,
    what: &str,
    residual_of: impl Fn(&[f64]) -> f64,
) -> Result<(Vec<f64>, f64, usize, usize), SolverError> {
    let (row_ptr, col_idx, val) = csr;
    let nu = row_ptr.len() - 1;
    let singular =
        |e: frontal::FrontalError| SolverError::Factorization(format!("{e} (is the steady state unique?)"));
    // Populations (the only unknowns with r = c in their coordinates) last: see
    // `frontal::dissect_last` for why.
    let tree = frontal::dissect_last(coords, |v| coords[v][1] == coords[v][2]);
    let analysis = Analysis::new(&tree, row_ptr, col_idx).map_err(singular)?;
    check_memory(
        format!("multifrontal LU of the {nu} x {nu} real Liouvillian ({what})"),
        analysis.memory_bytes::<f64>(),
    )?;
    let lu = analysis.factor(val).map_err(singular)?;
    let mut x = vec![0.0; nu];
    x[pin] = s;
    lu.solve_in_place(&mut x);
    if !x.iter().all(|v| v.is_finite()) {
        return Err(SolverError::Factorization(
            "the LU solution is not finite: the Liouvillian is singular (is the steady state unique?)"
                .to_string(),
        ));
    }
    let residual_unrefined = residual_of(&x);
    // Refine until the correction is below the rounding of x (or three steps).
    let mut refinement_steps = 0;
    for _ in 0..3 {
        let mut d = residual_dot2(row_ptr, col_idx, val, &x, (pin, s));
        lu.solve_in_place(&mut d);
        if !d.iter().all(|v| v.is_finite()) {
            break;
        }
        x.iter_mut().zip(&d).for_each(|(xi, di)| *xi += di);
        refinement_steps += 1;
        let size = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if d.iter().all(|di| di.abs() <= f64::EPSILON * size) {
            break;
        }
    }
    Ok((x, residual_unrefined, refinement_steps, analysis.factor_entries()))
}
