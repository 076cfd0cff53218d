//! Mean field for the whole engine model (PHYSICS.md sections 1 and 5), CPU f64: the ODEs in
//! two factorisations, their integration, all fixed points with their stability, and the
//! boundaries along a scanned parameter where the number of stable fixed points changes.
//!
//! Variables: the per-atom Bloch vector `s = (sx, sy, sz) = (<sigma^x>, <sigma^y>, <sigma^z>)`
//! (identical atoms), so `<J> = (N/2) s`.
//!
//! # Derivation
//!
//! Heisenberg picture: `d<O>/dt = <L^dag O>` with, for `drho/dt = -i[H, rho] + sum_k g_k D[L_k] rho`,
//!
//! ```text
//! L^dag O = i[H, O] + sum_k g_k ( L_k^dag O L_k - {L_k^dag L_k, O}/2 )
//!         = i[H, O] + sum_k (g_k/2) ( L_k^dag [O, L_k] + [L_k^dag, O] L_k ).
//! ```
//!
//! Take `O = sigma_1^a` (atom 1; all atoms are alike). Every collective operator is a sum over
//! atoms, `J- = sum_n sigma_n^-`, `Jz = sum_n sigma_n^z/2`, so each term of the second form is a
//! sum over n of (an operator of atom n) x (an operator of atom 1): `J+ [sigma_1^a, J-] =
//! sum_n sigma_n^+ [sigma_1^a, sigma_1^-]` because only `sigma_1^-` fails to commute with
//! `sigma_1^a`. The two factorisations differ only in how these products are closed:
//!
//! * **individual**: `<sigma_n^a sigma_1^b> = <sigma^a><sigma^b>` for n != 1 (N - 1 terms);
//!   the n = 1 term is a product on one atom, reduced exactly by the Pauli algebra
//!   (`sigma^+ sigma^- = (1 + sigma^z)/2`, `sigma^a sigma^a = 1`, ...). Single-atom processes
//!   `D[sigma_n^-]` etc. act on atom 1 only through n = 1 and are exact. On a product state
//!   `rho_1^{(x)N}` every step is exact, so this right-hand side *is* `Tr(sigma_1^a L rho)` there
//!   (tested against the block solver's Liouvillian, `tests/meanfield.rs`).
//! * **collective**: `<J_a J_b> = <J_a><J_b>`, i.e. the n = 1 term is factorised too (all N
//!   terms). This is the classical-spin limit: the same-atom parts it drops are O(1/N) of the
//!   collective terms, the order of the quantum fluctuations it also drops. Single-atom
//!   processes are not products of collective operators (`sum_n sigma_n^+ sigma_n^- = Jz + N/2`)
//!   and stay exact and linear. Seed 001 eq. (15) and seed 000 eq. (S21) are its special cases.
//!
//! Term by term (`b x s` is a precession `ds/dt = b x s`; for a single atom `H = (1/2) b.sigma`
//! gives exactly that):
//!
//! | term | exact on atom 1 | individual | collective |
//! |---|---|---|---|
//! | `omega0 Jz` | precession about `omega0 z` | same | same |
//! | `Omega (cos phi Jx + sin phi Jy)` | precession about `Omega (cos phi, sin phi, 0)` | same | same |
//! | `chi J+J- = chi (N/2 + Jz + sum_{n!=m} sigma_n^+ sigma_m^-)` | precession about `chi z + chi sum_{m!=1} (sigma_m^x, sigma_m^y, 0)` | `chi (z + (N-1)(sx, sy, 0))` | `chi N (sx, sy, 0)` |
//! | `chi_z Jz^2 = chi_z (N + sum_{n!=m} sigma_n^z sigma_m^z)/4` | about `chi_z sum_{m!=1} sigma_m^z z` | `chi_z (N-1) sz z` | `chi_z N sz z` |
//! | `Gamma D[J-]`, on `sigma_1^z`: `-(J+ sigma_1^- + sigma_1^+ J-)` | | `-Gamma (1+sz) - Gamma (N-1)(sx^2+sy^2)/2` | `-Gamma N (sx^2+sy^2)/2` |
//! | `Gamma D[J-]`, on `sigma_1^x`: `(J+ sigma_1^z + sigma_1^z J-)/2` (y alike) | | `-Gamma sx/2 + Gamma (N-1) sz sx/2` | `Gamma N sz sx/2` |
//! | `w D[J+]` | `Gamma D[J-]` under the flip `(x, y, z) -> (x, -y, -z)` | `+w (1-sz) + w (N-1)(sx^2+sy^2)/2`; `-w sx/2 - w (N-1) sz sx/2` | `+w N (sx^2+sy^2)/2`; `-w N sz sx/2` |
//! | `Gamma_phi D[Jz] = -(Gamma_phi/2)[Jz,[Jz, .]]` | only n = 1 survives: `(Gamma_phi/4) D[sigma_1^z]` | `-Gamma_phi sx/2` (x, y) | 0 (`Jz [J_a, Jz] + [Jz, J_a] Jz` factorises to 0) |
//! | `gamma_down D[sigma_n^-]` | single atom | `-gamma_down sx/2`; `-gamma_down (1+sz)` | same |
//! | `gamma_up D[sigma_n^+]` | single atom | `-gamma_up sx/2`; `+gamma_up (1-sz)` | same |
//! | `gamma_phi D[sigma_n^z]` | single atom | `-2 gamma_phi sx` (x, y) | same |
//!
//! Collected, both factorisations have one form ([`Coeffs`]), with `kappa(sz) = kappa0 +
//! kappa1 sz` (transverse damping) and `Delta(sz) = Delta0 + Delta1 sz` (precession about z):
//!
//! ```text
//! dsx/dt = -kappa(sz) sx - Delta(sz) sy + Omega sin(phi) sz
//! dsy/dt =  Delta(sz) sx - kappa(sz) sy - Omega cos(phi) sz
//! dsz/dt =  Omega (cos(phi) sy - sin(phi) sx) - A (1 + sz) + B (1 - sz) - C (sx^2 + sy^2)/2
//! ```
//!
//! | | individual (M = N - 1) | collective (M = N) |
//! |---|---|---|
//! | kappa0 | `(Gamma + w + Gamma_phi + gamma_down + gamma_up)/2 + 2 gamma_phi` | `(gamma_down + gamma_up)/2 + 2 gamma_phi` |
//! | kappa1 | `-M (Gamma - w)/2` | same |
//! | Delta0 | `omega0 + chi` | `omega0` |
//! | Delta1 | `M (chi_z - chi)` | same |
//! | A, B | `Gamma + gamma_down`, `w + gamma_up` | `gamma_down`, `gamma_up` |
//! | C | `M (Gamma - w)` | same |
//!
//! **Seed 000** (PHYSICS.md sec. 5): `Omega = 2 Omega_paper`, `Gamma = gamma_1D`, `gamma_down =
//! gamma_F`, phi = 0: individual gives `kappa = (gamma - Gamma_MF sz)/2`, `A = gamma`,
//! `C = Gamma_MF` with `gamma = gamma_F + gamma_1D`, `Gamma_MF = (N-1) gamma_1D`, i.e.
//! `dsx = -(gamma/2) sx + (Gamma_MF/2) sz sx`, `dsy = -(gamma/2) sy - 2 Omega_p sz +
//! (Gamma_MF/2) sz sy`, `dsz = -gamma (1 + sz) + 2 Omega_p sy - (Gamma_MF/2)(sx^2 + sy^2)`,
//! sec. 5's equations. **Seed 001**: collective with `Gamma, chi, Omega` gives exactly its
//! eq. (15) (`s_i` there is `sqrt(N) s_i / 2` here). **Seed 002**: individual with
//! `Gamma, chi, Omega, gamma_down = gamma_s` gives its (S2)-(S4) for `<sigma^+> = r e^{i phi}`
//! (`r = sqrt(sx^2 + sy^2)/2`, phase rate `chi (1 - (N-1) sz)` from `Delta`).
//!
//! # Fixed points
//!
//! At fixed sz the first two equations are **linear** in (sx, sy) for every term of the model
//! (the table: no term multiplies sx or sy by anything but sz): `M (sx, sy) = -Omega sz (sin phi,
//! -cos phi)` with `M = [[-kappa, -Delta], [Delta, -kappa]]`, `det M = D(sz) = kappa^2 + Delta^2`:
//!
//! ```text
//! sx = Omega sz (kappa sin phi + Delta cos phi) / D,   sy = Omega sz (Delta sin phi - kappa cos phi) / D,
//! sx^2 + sy^2 = Omega^2 sz^2 / D,   Omega (cos phi sy - sin phi sx) = -Omega^2 sz kappa / D.
//! ```
//!
//! * **Bloch ball** (individual factorisation; collective with single-atom rates): substituted
//!   into dsz/dt = 0 and multiplied by D > 0, a cubic `G(sz) = -Omega^2 sz (kappa(sz) + C sz/2) +
//!   D(sz) (B (1 - sz) - A (1 + sz))` (for seed 000 this is `-(gamma/4)` times sec. 5's
//!   `(1 + sz)(gamma - Gamma_MF sz)^2 + 8 sz Omega_p^2`). Roots with |s| <= 1 are physical; the
//!   others are dropped and counted.
//! * **Sphere** (collective factorisation of a collective-only model): `d|s|^2/dt = 0`
//!   identically, so every fixed point of the (sx, sy) equations with sz != 0 also solves
//!   dsz/dt = 0: the fixed points are not isolated in R^3 but are on each sphere. We take
//!   |s| = R = 1 (the j = N/2 irrep, where coherent states have |s| = 1) and solve the quartic
//!   `P(sz) = Omega^2 sz^2 + (sz^2 - R^2) D(sz)`.
//! * **Singular sz***: where kappa and Delta vanish together, M = 0 and the (sx, sy)
//!   equations need `Omega sz* = 0`. Then G or P has spurious roots at sz* (from clearing the
//!   denominator), which are divided out, and sz* is solved directly: on the sphere with sz* = 0
//!   (e.g. seed 001 with omega0 = 0) dsz/dt = 0 fixes `u = cos phi sy - sin phi sx = C R^2/(2
//!   Omega)` and `v = +-sqrt(R^2 - u^2)` along (cos phi, sin phi): seed 001's SS2 and SS3
//!   (eq. 23). Otherwise (Omega = 0: a U(1)-symmetric model) the fixed points form a ring,
//!   reported in [`FixedPoints::degenerate`] rather than as points.
//!
//! Roots of the polynomial on [-R, R] are found completely, not by sampling: between
//! consecutive roots of p' (found recursively the same way; degree <= 4) p is monotone, so each
//! piece holds at most one root, bracketed by a sign change and bisected to the last bit. A
//! critical point where |p| is within the rounding bound of its evaluation is a double root (a
//! tangency: the fold of a saddle-node), reported once with `double = true`.
//!
//! **Stability**: eigenvalues of the 3x3 Jacobian ([`jacobian`], analytic, checked against
//! finite differences) by faer. On the sphere `J^T s = 0` at a fixed point (differentiate
//! `s . f(s) = 0`), so J has a zero eigenvalue (radial, the conserved length) and maps into the
//! tangent plane: stability is judged from the 2x2 restriction `E^T J E` to the tangent plane
//! (orthonormal E perpendicular to s), and only those two eigenvalues are reported. With `tol =
//! 1e-9 x` the largest rate of the equations: stable if max Re(lambda) < -tol, unstable if
//! max Re(lambda) > tol, a **center** if all |Re| <= tol with an imaginary part (seed 001's
//! SS3: closed orbits around it, the oscillating solutions), marginal otherwise (a zero
//! eigenvalue at a fold).
//!
//! **Boundaries** along a scan ([`boundaries`]): between consecutive scan values whose
//! (number of stable fixed points, number of centers) differ, bisection on the scanned value
//! until the bracket is below the tolerance; several changes inside one bracket are separated
//! recursively. Two changes that cancel between two scan points are not seen: the scan must
//! resolve each window.
//!
//! # Integration
//!
//! [`evolve`] integrates the three ODEs with the shared Dormand-Prince 5(4) ([`super::ode`]).
//! Initial states ([`bloch_vector`]): a coherent state has `s = (sin theta cos phi, sin theta
//! sin phi, cos theta)`, a Dicke state `s = (0, 0, 2m/N)`, a CRSS its Bloch vector `<J>/(N/2)`
//! computed from its amplitudes (a mean-field state can only carry the mean; the CRSS's
//! squeezing is lost).
//!
//! The scenario task is `kind = "fixed_points"` (`crate::run`, `docs/scenarios.md`); the
//! validation is in `tests/meanfield.rs` (exactness of the individual factorisation on product
//! states against the block solver's Liouvillian, the collective one as the classical limit,
//! seeds 000-002, completeness against integration at random parameters).

use crate::error::{InputError, SolverError};
use crate::model::{Model, Protocol};
use crate::solver::ode::{self, OdeOptions, OdeStats};
use crate::state::PureSpec;
use serde::Serialize;

/// How two-atom moments are closed (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Factorisation {
    /// `<sigma_n^a sigma_m^b> = <sigma^a><sigma^b>` for n != m; same-atom products exact.
    Individual,
    /// `<J_a J_b> = <J_a><J_b>` (classical-spin limit of the collective terms).
    Collective,
}

impl Factorisation {
    /// The name used in scenario files and outputs.
    pub fn name(self) -> &'static str {
        match self {
            Factorisation::Individual => "individual",
            Factorisation::Collective => "collective",
        }
    }
}

/// The coefficients of the mean-field equations (module doc): one form for both
/// factorisations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Coeffs {
    pub kappa0: f64,
    pub kappa1: f64,
    pub delta0: f64,
    pub delta1: f64,
    pub a: f64,
    pub b: f64,
    pub c: f64,
    /// Drive amplitude Omega and phase phi.
    pub omega: f64,
    pub phi: f64,
    /// True when |s| is conserved (collective factorisation of a collective-only model).
    pub conserves_length: bool,
}

impl Coeffs {
    /// The coefficients of `model` in factorisation `f` (the table of the module doc).
    pub fn new(model: &Model, f: Factorisation) -> Coeffs {
        let n = model.n as f64;
        let (gd, gu, gp) = (model.gamma_down, model.gamma_up, model.gamma_phi);
        let (g, w, gphi) = (model.gamma_coll, model.pump_coll, model.dephase_coll);
        let single = 0.5 * (gd + gu) + 2.0 * gp;
        let (m, kappa0, delta0, a, b) = match f {
            Factorisation::Individual => (
                n - 1.0,
                0.5 * (g + w + gphi) + single,
                model.omega0 + model.chi,
                g + gd,
                w + gu,
            ),
            Factorisation::Collective => (n, single, model.omega0, gd, gu),
        };
        Coeffs {
            kappa0,
            kappa1: -0.5 * m * (g - w),
            delta0,
            delta1: m * (model.chi_z - model.chi),
            a,
            b,
            c: m * (g - w),
            omega: model.drive,
            phi: model.phi,
            conserves_length: f == Factorisation::Collective && model.is_collective(),
        }
    }

    /// `self + tau slope`, field by field: the coefficients on a protocol's piece, where
    /// `self` holds them at the piece's start and `slope` their rates (`Coeffs::new` of the
    /// protocol's rates model with the run's N: every coefficient is linear in the parameters
    /// at fixed N, and phi enters the right-hand side only through its own value).
    fn along(&self, slope: &Coeffs, tau: f64) -> Coeffs {
        let f = |a: f64, b: f64| a + b * tau;
        Coeffs {
            kappa0: f(self.kappa0, slope.kappa0),
            kappa1: f(self.kappa1, slope.kappa1),
            delta0: f(self.delta0, slope.delta0),
            delta1: f(self.delta1, slope.delta1),
            a: f(self.a, slope.a),
            b: f(self.b, slope.b),
            c: f(self.c, slope.c),
            omega: f(self.omega, slope.omega),
            phi: f(self.phi, slope.phi),
            conserves_length: self.conserves_length,
        }
    }

    fn kappa(&self, sz: f64) -> f64 {
        self.kappa0 + self.kappa1 * sz
    }

    fn delta(&self, sz: f64) -> f64 {
        self.delta0 + self.delta1 * sz
    }

    /// Largest magnitude among the rates of the equations (sets the stability tolerance).
    pub fn scale(&self) -> f64 {
        [
            self.kappa0,
            self.kappa1,
            self.delta0,
            self.delta1,
            self.a,
            self.b,
            self.c,
            self.omega,
        ]
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()))
    }
}

/// ds/dt at s (module doc).
pub fn rhs(co: &Coeffs, s: [f64; 3]) -> [f64; 3] {
    let [sx, sy, sz] = s;
    let (k, d) = (co.kappa(sz), co.delta(sz));
    let (sp, cp) = co.phi.sin_cos();
    [
        -k * sx - d * sy + co.omega * sp * sz,
        d * sx - k * sy - co.omega * cp * sz,
        co.omega * (cp * sy - sp * sx) - co.a * (1.0 + sz) + co.b * (1.0 - sz)
            - 0.5 * co.c * (sx * sx + sy * sy),
    ]
}

/// The Jacobian d(ds/dt)/ds at s, `jac[i][j] = d f_i / d s_j`.
pub fn jacobian(co: &Coeffs, s: [f64; 3]) -> [[f64; 3]; 3] {
    let [sx, sy, sz] = s;
    let (k, d) = (co.kappa(sz), co.delta(sz));
    let (sp, cp) = co.phi.sin_cos();
    [
        [-k, -d, -co.kappa1 * sx - co.delta1 * sy + co.omega * sp],
        [d, -k, co.delta1 * sx - co.kappa1 * sy - co.omega * cp],
        [
            -co.omega * sp - co.c * sx,
            co.omega * cp - co.c * sy,
            -co.a - co.b,
        ],
    ]
}

/// Stability class of a fixed point (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stability {
    /// Every (tangent) eigenvalue has Re < -tol: attracting.
    Stable,
    /// Some eigenvalue has Re > tol.
    Unstable,
    /// All |Re| <= tol and some imaginary part: neutrally stable, surrounded by closed orbits.
    Center,
    /// A zero eigenvalue (e.g. at a fold), otherwise not attracting.
    Marginal,
}

/// One isolated fixed point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FixedPoint {
    /// (sx, sy, sz).
    pub s: [f64; 3],
    /// Eigenvalues of the Jacobian (3), or of its tangent-plane restriction (2) when |s| is
    /// conserved; as (re, im).
    pub eigenvalues: Vec<(f64, f64)>,
    pub stability: Stability,
    /// A double root of the fixed-point polynomial (a tangency / fold).
    pub double: bool,
}

impl FixedPoint {
    /// Largest real part of the eigenvalues.
    pub fn max_re(&self) -> f64 {
        self.eigenvalues.iter().fold(f64::NEG_INFINITY, |m, e| m.max(e.0))
    }

    /// Largest |imaginary part| of the eigenvalues.
    pub fn max_abs_im(&self) -> f64 {
        self.eigenvalues.iter().fold(0.0f64, |m, e| m.max(e.1.abs()))
    }
}

/// All fixed points of one model in one factorisation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FixedPoints {
    pub factorisation: Factorisation,
    /// Isolated fixed points, by increasing sz.
    pub points: Vec<FixedPoint>,
    /// Radius of the sphere the points lie on when |s| is conserved (1: the j = N/2 irrep).
    pub sphere_radius: Option<f64>,
    /// Roots of the fixed-point polynomial outside the Bloch ball (|s| > 1), dropped.
    pub unphysical_roots: usize,
    /// Non-isolated fixed points (rings of a U(1)-symmetric model), described in words.
    pub degenerate: Vec<String>,
}

impl FixedPoints {
    pub fn count(&self, st: Stability) -> usize {
        self.points.iter().filter(|p| p.stability == st).count()
    }

    /// (number of stable fixed points, number of centers): what [`boundaries`] tracks.
    pub fn signature(&self) -> (usize, usize) {
        (self.count(Stability::Stable), self.count(Stability::Center))
    }
}

// ---------------------------------------------------------------------------------------
// Polynomials (ascending coefficients) and their real roots on an interval.

fn poly_eval(p: &[f64], x: f64) -> f64 {
    p.iter().rev().fold(0.0, |acc, &c| acc * x + c)
}

/// Rounding bound of Horner's evaluation of p at x.
fn poly_err(p: &[f64], x: f64) -> f64 {
    let mag = p.iter().rev().fold(0.0, |acc, &c| acc * x.abs() + c.abs());
    16.0 * (p.len() as f64) * f64::EPSILON * mag
}

fn poly_mul(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut r = vec![0.0; a.len() + b.len() - 1];
    for (i, x) in a.iter().enumerate() {
        for (j, y) in b.iter().enumerate() {
            r[i + j] += x * y;
        }
    }
    r
}

fn poly_add(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut r = vec![0.0; a.len().max(b.len())];
    for (i, x) in a.iter().enumerate() {
        r[i] += x;
    }
    for (i, x) in b.iter().enumerate() {
        r[i] += x;
    }
    r
}

fn poly_deriv(p: &[f64]) -> Vec<f64> {
    p.iter().enumerate().skip(1).map(|(k, c)| k as f64 * c).collect()
}

/// Drop leading coefficients that are zero (exactly).
fn poly_trim(mut p: Vec<f64>) -> Vec<f64> {
    while p.len() > 1 && p[p.len() - 1] == 0.0 {
        p.pop();
    }
    p
}

/// p / (x - r) by synthetic division (the remainder, p(r), is discarded).
fn poly_deflate(p: &[f64], r: f64) -> Vec<f64> {
    let n = p.len();
    if n <= 1 {
        return vec![0.0];
    }
    let mut q = vec![0.0; n - 1];
    let mut acc = p[n - 1];
    for k in (0..n - 1).rev() {
        q[k] = acc;
        acc = acc * r + p[k];
    }
    q
}

/// A real root of a polynomial on an interval.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Root {
    x: f64,
    double: bool,
}

/// Bisection of a sign change of p on [a, b] (p(a), p(b) of opposite signs) to the last bit.
fn bisect(p: &[f64], mut a: f64, mut b: f64) -> f64 {
    let mut fa = poly_eval(p, a);
    loop {
        let m = 0.5 * (a + b);
        if m <= a || m >= b {
            return if poly_eval(p, a).abs() <= poly_eval(p, b).abs() {
                a
            } else {
                b
            };
        }
        let fm = poly_eval(p, m);
        if fm == 0.0 {
            return m;
        }
        if (fm < 0.0) == (fa < 0.0) {
            a = m;
            fa = fm;
        } else {
            b = m;
        }
    }
}

/// All real roots of p in [lo, hi] (module doc: monotone pieces between the roots of p').
/// A polynomial that vanishes identically has no isolated roots: returns None.
fn poly_roots(p: &[f64], lo: f64, hi: f64) -> Option<Vec<Root>> {
    let p = poly_trim(p.to_vec());
    if p.len() == 1 {
        return if p[0] == 0.0 { None } else { Some(Vec::new()) };
    }
    // Critical points: roots of p' (a nonzero polynomial of lower degree).
    let crit: Vec<f64> = poly_roots(&poly_deriv(&p), lo, hi)
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.x)
        .filter(|&x| x > lo && x < hi)
        .collect();
    let mut nodes = vec![lo];
    nodes.extend(crit.iter().copied());
    nodes.push(hi);
    let vals: Vec<f64> = nodes.iter().map(|&x| poly_eval(&p, x)).collect();
    let zero: Vec<bool> = nodes
        .iter()
        .zip(&vals)
        .map(|(&x, &v)| v.abs() <= poly_err(&p, x))
        .collect();
    let dp = poly_deriv(&p);
    let mut roots = Vec::new();
    for i in 0..nodes.len() {
        if zero[i] {
            // Interior nodes are critical points: a root there is (at least) double. At the
            // ends it is double only if p' vanishes there too.
            let interior = i > 0 && i + 1 < nodes.len();
            let double = interior || poly_eval(&dp, nodes[i]).abs() <= poly_err(&dp, nodes[i]);
            roots.push(Root { x: nodes[i], double });
        }
        if i + 1 < nodes.len() && !zero[i] && !zero[i + 1] && (vals[i] < 0.0) != (vals[i + 1] < 0.0) {
            roots.push(Root {
                x: bisect(&p, nodes[i], nodes[i + 1]),
                double: false,
            });
        }
    }
    roots.sort_by(|a, b| a.x.total_cmp(&b.x));
    roots.dedup_by(|a, b| a.x == b.x);
    Some(roots)
}

// ---------------------------------------------------------------------------------------

/// (sx, sy) at sz from the linear 2x2 system (module doc); None where det M = 0.
fn transverse(co: &Coeffs, sz: f64) -> Option<(f64, f64)> {
    let (k, d) = (co.kappa(sz), co.delta(sz));
    let det = k * k + d * d;
    if det == 0.0 {
        return None;
    }
    let (sp, cp) = co.phi.sin_cos();
    Some((
        co.omega * sz * (k * sp + d * cp) / det,
        co.omega * sz * (d * sp - k * cp) / det,
    ))
}

/// The common root sz* of kappa(sz) and Delta(sz), if they have one (module doc). `Some(None)`
/// means both vanish identically.
fn singular_point(co: &Coeffs) -> Option<Option<f64>> {
    let close = |v: f64, scale: f64| v.abs() <= 64.0 * f64::EPSILON * scale;
    let candidate = if co.kappa1 != 0.0 {
        Some(-co.kappa0 / co.kappa1)
    } else if co.kappa0 == 0.0 {
        if co.delta1 != 0.0 {
            Some(-co.delta0 / co.delta1)
        } else if co.delta0 == 0.0 {
            return Some(None);
        } else {
            None
        }
    } else {
        None
    };
    let z = candidate?;
    let k_ok = close(co.kappa(z), co.kappa0.abs() + (co.kappa1 * z).abs());
    let d_ok = close(co.delta(z), co.delta0.abs() + (co.delta1 * z).abs());
    (k_ok && d_ok).then_some(Some(z))
}

/// Stability of a fixed point from the Jacobian (module doc).
fn classify(co: &Coeffs, s: [f64; 3]) -> (Vec<(f64, f64)>, Stability) {
    let jac = jacobian(co, s);
    let eig: Vec<(f64, f64)> = if co.conserves_length {
        // Tangent-plane restriction E^T J E with E = (e1, e2) orthonormal, perpendicular to s.
        let r = (s[0] * s[0] + s[1] * s[1] + s[2] * s[2]).sqrt();
        let n = [s[0] / r, s[1] / r, s[2] / r];
        // A vector not parallel to n, made perpendicular.
        let t = if n[0].abs() < 0.9 {
            [1.0, 0.0, 0.0]
        } else {
            [0.0, 1.0, 0.0]
        };
        let dot = t[0] * n[0] + t[1] * n[1] + t[2] * n[2];
        let e1 = normalise([t[0] - dot * n[0], t[1] - dot * n[1], t[2] - dot * n[2]]);
        let e2 = [
            n[1] * e1[2] - n[2] * e1[1],
            n[2] * e1[0] - n[0] * e1[2],
            n[0] * e1[1] - n[1] * e1[0],
        ];
        let je = |e: [f64; 3]| -> [f64; 3] {
            [0, 1, 2].map(|i| jac[i][0] * e[0] + jac[i][1] * e[1] + jac[i][2] * e[2])
        };
        let d = |a: [f64; 3], b: [f64; 3]| a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
        let (j1, j2) = (je(e1), je(e2));
        let (a11, a12, a21, a22) = (d(e1, j1), d(e1, j2), d(e2, j1), d(e2, j2));
        let half_tr = 0.5 * (a11 + a22);
        let disc = 0.25 * (a11 - a22) * (a11 - a22) + a12 * a21;
        if disc >= 0.0 {
            let q = disc.sqrt();
            vec![(half_tr - q, 0.0), (half_tr + q, 0.0)]
        } else {
            let q = (-disc).sqrt();
            vec![(half_tr, -q), (half_tr, q)]
        }
    } else {
        let m = faer::Mat::<f64>::from_fn(3, 3, |i, j| jac[i][j]);
        match m.eigenvalues() {
            Ok(v) => v.iter().map(|z| (z.re, z.im)).collect(),
            Err(_) => vec![(f64::NAN, f64::NAN); 3],
        }
    };
    let tol = 1e-9 * co.scale().max(f64::MIN_POSITIVE);
    let max_re = eig.iter().fold(f64::NEG_INFINITY, |m, e| m.max(e.0));
    let any_im = eig.iter().any(|e| e.1.abs() > tol);
    let st = if max_re < -tol {
        Stability::Stable
    } else if max_re > tol || max_re.is_nan() {
        Stability::Unstable
    } else if any_im && eig.iter().all(|e| e.0.abs() <= tol) {
        Stability::Center
    } else {
        Stability::Marginal
    };
    (eig, st)
}

fn normalise(v: [f64; 3]) -> [f64; 3] {
    let r = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    [v[0] / r, v[1] / r, v[2] / r]
}

/// Every fixed point of `model` in factorisation `f`, with its stability (module doc).
pub fn fixed_points(model: &Model, f: Factorisation) -> FixedPoints {
    fixed_points_of(&Coeffs::new(model, f), f)
}

/// [`fixed_points`] from the coefficients.
pub fn fixed_points_of(co: &Coeffs, f: Factorisation) -> FixedPoints {
    let radius = 1.0;
    let (k0, k1, d0, d1) = (co.kappa0, co.kappa1, co.delta0, co.delta1);
    // D(sz) = kappa^2 + Delta^2.
    let dpoly = vec![k0 * k0 + d0 * d0, 2.0 * (k0 * k1 + d0 * d1), k1 * k1 + d1 * d1];
    let om2 = co.omega * co.omega;
    let mut poly = if co.conserves_length {
        // P = Omega^2 sz^2 + (sz^2 - R^2) D.
        poly_add(&[0.0, 0.0, om2], &poly_mul(&[-radius * radius, 0.0, 1.0], &dpoly))
    } else {
        // G = -Omega^2 sz (kappa0 + (kappa1 + C/2) sz) + D ((B - A) - (A + B) sz).
        poly_add(
            &[0.0, -om2 * k0, -om2 * (k1 + 0.5 * co.c)],
            &poly_mul(&dpoly, &[co.b - co.a, -(co.a + co.b)]),
        )
    };
    let mut out = FixedPoints {
        factorisation: f,
        points: Vec::new(),
        sphere_radius: co.conserves_length.then_some(radius),
        unphysical_roots: 0,
        degenerate: Vec::new(),
    };
    let (lo, hi) = (-radius, radius);
    let mut push = |s: [f64; 3], double: bool, out: &mut FixedPoints| {
        let (eigenvalues, stability) = classify(co, s);
        out.points.push(FixedPoint {
            s,
            eigenvalues,
            stability,
            double,
        });
    };

    let singular = singular_point(co);
    if let Some(Some(z)) = singular {
        // Divide out the spurious roots at sz* (module doc).
        for _ in 0..4 {
            let p = poly_trim(poly.clone());
            if p.len() > 1 && poly_eval(&p, z).abs() <= poly_err(&p, z) {
                poly = poly_deflate(&p, z);
            } else {
                break;
            }
        }
        if (lo..=hi).contains(&z) {
            singular_fixed_points(co, z, radius, &mut out, &mut push);
        }
    }
    if let Some(None) = singular {
        // kappa = Delta = 0 for every sz: the (sx, sy) equations read Omega sz = 0.
        if co.omega != 0.0 {
            singular_fixed_points(co, 0.0, radius, &mut out, &mut push);
        } else {
            out.degenerate.push(
                "no damping, no precession about z and no drive: every state on the z axis is stationary"
                    .to_string(),
            );
        }
    } else {
        match poly_roots(&poly, lo, hi) {
            None => out.degenerate.push(
                "the fixed-point polynomial vanishes identically: a continuum of fixed points".to_string(),
            ),
            Some(roots) => {
                for r in roots {
                    let Some((sx, sy)) = transverse(co, r.x) else {
                        continue;
                    };
                    let s = [sx, sy, r.x];
                    let len2 = sx * sx + sy * sy + r.x * r.x;
                    if !co.conserves_length && len2 > 1.0 + 1e-9 {
                        out.unphysical_roots += 1;
                        continue;
                    }
                    push(s, r.double, &mut out);
                }
            }
        }
    }
    out.points
        .sort_by(|a, b| a.s[2].total_cmp(&b.s[2]).then(a.s[1].total_cmp(&b.s[1])));
    out
}

/// Fixed points at the singular sz* where kappa = Delta = 0 (module doc).
fn singular_fixed_points(
    co: &Coeffs,
    z: f64,
    radius: f64,
    out: &mut FixedPoints,
    push: &mut impl FnMut([f64; 3], bool, &mut FixedPoints),
) {
    if co.omega * z != 0.0 {
        return; // the (sx, sy) equations have no solution there
    }
    let (sp, cp) = co.phi.sin_cos();
    if co.conserves_length {
        let rho2 = radius * radius - z * z;
        if z != 0.0 || co.omega == 0.0 {
            // dsz/dt = -C rho^2/2 at sz = 0 with Omega = 0; automatically 0 for sz* != 0.
            if z == 0.0 && co.c != 0.0 {
                return;
            }
            out.degenerate.push(format!(
                "ring of fixed points at sz = {z} (radius {}) on the sphere |s| = {radius}",
                rho2.max(0.0).sqrt()
            ));
            return;
        }
        // sz* = 0, Omega != 0: u = C R^2 / (2 Omega), v = +-sqrt(R^2 - u^2).
        let u = co.c * rho2 / (2.0 * co.omega);
        let v2 = rho2 - u * u;
        let tol = 64.0 * f64::EPSILON * rho2;
        if v2 < -tol {
            return;
        }
        let v = v2.max(0.0).sqrt();
        let point = |v: f64| [v * cp - u * sp, v * sp + u * cp, 0.0];
        if v2 <= tol {
            push(point(0.0), true, out);
        } else {
            push(point(-v), false, out);
            push(point(v), false, out);
        }
    } else {
        // dsz/dt = Omega u - A(1+z) + B(1-z) - C rho^2/2 = 0 in the disk rho^2 <= 1 - z^2: a
        // curve (or nothing, or everything).
        let base = -co.a * (1.0 + z) + co.b * (1.0 - z);
        let exists = if co.c != 0.0 {
            // Circle centred at u = Omega/C (along the u axis), radius^2 = (Omega/C)^2 + 2 base / C.
            let r2 = (co.omega / co.c).powi(2) + 2.0 * base / co.c;
            r2 >= 0.0
        } else {
            co.omega != 0.0 || base == 0.0
        };
        if exists {
            out.degenerate.push(format!(
                "a curve of fixed points in the plane sz = {z} (kappa = Delta = 0 there: a U(1)-symmetric model)"
            ));
        }
    }
}

/// The Bloch vector `s = <J>/(N/2)` of an initial state (module doc).
pub fn bloch_vector(model: &Model, state: PureSpec) -> Result<[f64; 3], InputError> {
    state.check(model, "initial")?;
    let n = model.n as f64;
    match state {
        PureSpec::Coherent { theta, phi } => {
            Ok([theta.sin() * phi.cos(), theta.sin() * phi.sin(), theta.cos()])
        }
        PureSpec::Dicke { m } => Ok([0.0, 0.0, 2.0 * m / n]),
        PureSpec::Crss => {
            let psi = crate::state::pure::crss(model.n, model.drive, model.gamma_coll);
            let mom = crate::observe::moments_pure(&psi);
            Ok(mom.mean.map(|v| v / (n / 2.0)))
        }
    }
}

/// Integrate the mean-field ODEs of `model` (factorisation `f`) from `s0`, calling
/// `on_save(i, t, s)` at every requested time (the first with `s0`).
pub fn evolve(
    model: &Model,
    f: Factorisation,
    s0: [f64; 3],
    times: &[f64],
    opts: &OdeOptions,
    on_save: impl FnMut(usize, f64, [f64; 3]),
) -> Result<OdeStats, SolverError> {
    evolve_protocol(&Protocol::from(*model), f, s0, times, opts, on_save)
}

/// [`evolve`] under a time-dependent protocol (`model::schedule`): steps land on every
/// break, each step uses its piece's coefficients, affine in t on the piece
/// ([`Coeffs::along`]: nine products per right-hand side instead of a model rebuilt).
pub fn evolve_protocol(
    protocol: &Protocol,
    f: Factorisation,
    s0: [f64; 3],
    times: &[f64],
    opts: &OdeOptions,
    mut on_save: impl FnMut(usize, f64, [f64; 3]),
) -> Result<OdeStats, SolverError> {
    let breaks = ode::protocol_breaks(protocol, times, "meanfield")?;
    // The coefficients on the piece starting at `at` and their rates, computed when the
    // piece changes ([`Coeffs::along`]).
    let piece = |at: f64| {
        let rates = Model {
            n: protocol.base.n,
            ..protocol.rates_model(at)
        };
        (
            at,
            Coeffs::new(&protocol.model_in(at, at), f),
            Coeffs::new(&rates, f),
        )
    };
    let mut cur = piece(times.first().copied().unwrap_or(0.0));
    ode::integrate_real_pieces(
        |at, t, y: &[f64], dy: &mut [f64]| {
            let s = [y[0], y[1], y[2]];
            let d = if protocol.is_constant() {
                rhs(&cur.1, s)
            } else {
                if cur.0 != at {
                    cur = piece(at);
                }
                rhs(&cur.1.along(&cur.2, t - at), s)
            };
            dy.copy_from_slice(&d);
        },
        &s0,
        times,
        &breaks,
        opts,
        |i, t, y: &[f64]| on_save(i, t, [y[0], y[1], y[2]]),
    )
}

/// One located change of the fixed-point signature along a scan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Boundary {
    /// The located value (middle of the final bracket) and the bracket's half-width.
    pub at: f64,
    pub tol: f64,
    /// (stable, centers) on the side of the smaller and of the larger scan index.
    pub before: (usize, usize),
    pub after: (usize, usize),
}

/// Boundaries along the scan values `xs` (in the given order) where
/// [`FixedPoints::signature`] changes, each located by bisection to a bracket of width <=
/// 2 `tol` (module doc); changes found within a few `tol` of each other are merged into one
/// boundary. `at(x)` computes the signature at the scanned value x.
pub fn boundaries<E>(
    xs: &[f64],
    sigs: &[(usize, usize)],
    tol: f64,
    mut at: impl FnMut(f64) -> Result<(usize, usize), E>,
) -> Result<Vec<Boundary>, E> {
    let mut out: Vec<Boundary> = Vec::new();
    for i in 1..xs.len().min(sigs.len()) {
        if sigs[i - 1] != sigs[i] {
            let mut found = Vec::new();
            locate(
                xs[i - 1],
                sigs[i - 1],
                xs[i],
                sigs[i],
                tol,
                &mut at,
                &mut found,
                0,
            )?;
            // Changes closer than the tolerance are one boundary (e.g. seed 001 at Omega_c,
            // where the stable fixed point merges with a saddle that turns into a center).
            for b in found {
                match out.last_mut() {
                    Some(last) if (b.at - last.at).abs() <= 2.0 * (b.tol + last.tol) => {
                        let (lo, hi) = (last.at - last.tol, b.at + b.tol);
                        last.after = b.after;
                        last.at = 0.5 * (lo + hi);
                        last.tol = 0.5 * (hi - lo).abs();
                    }
                    _ => out.push(b),
                }
            }
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn locate<E>(
    mut a: f64,
    sa: (usize, usize),
    mut b: f64,
    sb: (usize, usize),
    tol: f64,
    at: &mut impl FnMut(f64) -> Result<(usize, usize), E>,
    out: &mut Vec<Boundary>,
    depth: usize,
) -> Result<(), E> {
    while (b - a).abs() > 2.0 * tol {
        let m = 0.5 * (a + b);
        if m == a || m == b {
            break;
        }
        let sm = at(m)?;
        if sm == sa {
            a = m;
        } else if sm == sb {
            b = m;
        } else if depth < 8 {
            // Two changes inside the bracket: locate both.
            locate(a, sa, m, sm, tol, at, out, depth + 1)?;
            locate(m, sm, b, sb, tol, at, out, depth + 1)?;
            return Ok(());
        } else {
            b = m; // give up separating; report the first change
            break;
        }
    }
    out.push(Boundary {
        at: 0.5 * (a + b),
        tol: 0.5 * (b - a).abs(),
        before: sa,
        after: sb,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polynomial_roots_are_complete_and_find_double_roots() {
        // (x - 0.5)(x + 0.25)(x - 0.75): three simple roots.
        let p = poly_mul(&poly_mul(&[-0.5, 1.0], &[0.25, 1.0]), &[-0.75, 1.0]);
        let r = poly_roots(&p, -1.0, 1.0).unwrap();
        let xs: Vec<f64> = r.iter().map(|r| r.x).collect();
        assert_eq!(xs.len(), 3, "{xs:?}");
        for (x, e) in xs.iter().zip([-0.25, 0.5, 0.75]) {
            assert!((x - e).abs() < 1e-15, "{x} vs {e}");
        }
        // (x - 0.3)^2 (x + 0.6): a tangency at 0.3, invisible to sign changes.
        let p = poly_mul(&poly_mul(&[-0.3, 1.0], &[-0.3, 1.0]), &[0.6, 1.0]);
        let r = poly_roots(&p, -1.0, 1.0).unwrap();
        assert_eq!(r.len(), 2, "{r:?}");
        assert!((r[0].x + 0.6).abs() < 1e-15 && !r[0].double);
        assert!((r[1].x - 0.3).abs() < 1e-12 && r[1].double, "{r:?}");
        // A root at the interval's end.
        let r = poly_roots(&[1.0, 1.0], -1.0, 1.0).unwrap();
        assert_eq!(
            r,
            vec![Root {
                x: -1.0,
                double: false
            }]
        );
    }

    #[test]
    fn jacobian_matches_finite_differences() {
        let model = Model {
            n: 7,
            omega0: 0.3,
            drive: 1.7,
            phi: 0.4,
            chi: 0.21,
            chi_z: -0.13,
            gamma_coll: 0.8,
            pump_coll: 0.15,
            dephase_coll: 0.27,
            gamma_down: 0.33,
            gamma_up: 0.07,
            gamma_phi: 0.11,
        };
        for f in [Factorisation::Individual, Factorisation::Collective] {
            let co = Coeffs::new(&model, f);
            let s = [0.3, -0.4, 0.5];
            let jac = jacobian(&co, s);
            let h = 1e-6;
            for j in 0..3 {
                let (mut sp, mut sm) = (s, s);
                sp[j] += h;
                sm[j] -= h;
                let (fp, fm) = (rhs(&co, sp), rhs(&co, sm));
                for i in 0..3 {
                    let fd = (fp[i] - fm[i]) / (2.0 * h);
                    // Central differences of a quadratic are exact up to rounding ~ eps/h.
                    assert!(
                        (fd - jac[i][j]).abs() < 1e-8,
                        "{f:?} J[{i}][{j}] = {} vs {fd}",
                        jac[i][j]
                    );
                }
            }
        }
    }
}
