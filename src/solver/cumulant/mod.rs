//! Second-order cumulant expansion of the engine model (PHYSICS.md sections 1 and 5), every
//! term included: omega0, Omega, phi, chi, chi_z, Gamma, w, Gamma_phi, gamma_down, gamma_up,
//! gamma_phi.
//!
//! # Variables
//!
//! For a permutation-symmetric state every single-atom moment is the same for all atoms and
//! every two-atom moment the same for all pairs a != b. The state vector is nine real numbers
//! (layout [`S_RE`] .. [`V`]):
//!
//! ```text
//! s = <sigma_a^+>            complex   [s_re, s_im]
//! z = <sigma_a^z>            real
//! p = <sigma_a^+ sigma_b^->  real      (p^* = <sigma_a^- sigma_b^+> = <sigma_b^+ sigma_a^->, = p by a <-> b)
//! q = <sigma_a^+ sigma_b^+>  complex
//! u = <sigma_a^z sigma_b^+>  complex   (= <sigma_a^+ sigma_b^z> by a <-> b)
//! v = <sigma_a^z sigma_b^z>  real      (Hermitian)
//! ```
//!
//! The equations also need four third-order moments of three distinct atoms a, b, c
//! (layout [`T1`] .. [`T4_IM`]; each is symmetric in its atoms):
//!
//! ```text
//! T1 = <sigma^+ sigma^- sigma^z>   real (its conjugate <sigma^- sigma^+ sigma^z> is T1 with a <-> b)
//! T2 = <sigma^+ sigma^+ sigma^z>   T3 = <sigma^+ sigma^+ sigma^->   T4 = <sigma^z sigma^z sigma^+>
//! ```
//!
//! # Derivation (Heisenberg picture, d<O>/dt = <L^dag O>)
//!
//! `L^dag O = i[H, O] + sum_k g_k (L_k^dag O L_k - {L_k^dag L_k, O}/2)`. Write every collective
//! term as a double sum over atoms k, l and split k = l from k != l:
//!
//! * `chi J+J- = chi sum_k (1 + sigma_k^z)/2 + chi sum_{k!=l} sigma_k^+ sigma_l^-`,
//!   `chi_z Jz^2 = chi_z N/4 + (chi_z/4) sum_{k!=l} sigma_k^z sigma_l^z`,
//!   `Gamma D[J-] = Gamma sum_k D[sigma_k^-] + Gamma sum_{k!=l} (sigma_k^+ . sigma_l^- - {sigma_k^+ sigma_l^-, .}/2)`,
//!   likewise `w D[J+]` and `Gamma_phi D[Jz] = (Gamma_phi/4) sum_k D[sigma_k^z] + (Gamma_phi/4) sum_{k!=l} ...`.
//!
//! **One-atom part** (acts on each factor of a product separately): with
//! `delta = omega0 + chi`, `eta = Omega e^{i phi}/2`, `gd = gamma_down + Gamma`,
//! `gu = gamma_up + w`, `gp = gamma_phi + Gamma_phi/4`, `G = gd + gu`, `g = gd - gu`,
//! `Gamma2 = G/2 + 2 gp`:
//!
//! ```text
//! L1(sigma^+) = (i delta - Gamma2) sigma^+ - i eta sigma^z
//! L1(sigma^z) = -2i eta^* sigma^+ + 2i eta sigma^- - G sigma^z - g
//! ```
//!
//! **Pair part with one atom a inside the operator's support and one atom c outside** (both
//! orders (a, c) and (c, a) together; the collective-dephasing pieces cancel):
//!
//! ```text
//! X_a(O_a) = c1 sigma_c^- [sigma_a^+, O_a] + c2 sigma_c^+ [sigma_a^-, O_a] + i (chi_z/2) sigma_c^z [sigma_a^z, O_a]
//! c1 = i chi + kappa,   c2 = i chi - kappa,   kappa = (Gamma - w)/2
//! ```
//!
//! Summed over the N - n atoms outside a support of n atoms, this turns an n-atom moment's
//! equation into (N - n) times (n+1)-atom moments: the hierarchy. With
//! `X(sigma^+) = -c2 sigma_a^z sigma_c^+ + i chi_z sigma_a^+ sigma_c^z`,
//! `X(sigma^z) = -2 c1 sigma_a^+ sigma_c^- + 2 c2 sigma_a^- sigma_c^+`,
//! `X(sigma^-) = c1 sigma_a^z sigma_c^- - i chi_z sigma_a^- sigma_c^z`:
//!
//! ```text
//! ds/dt = (i delta - Gamma2) s - i eta z + (N-1)(kappa - i chi + i chi_z) u
//! dz/dt = -2i eta^* s + 2i eta s^* - G z - g - 4 kappa (N-1) p
//! ```
//!
//! **Pair part with both atoms inside** (two-atom operators O_a O_b; the terms of the pair
//! (a, b) in both orders, evaluated with sigma^+ sigma^- = (1 + sigma^z)/2 etc.):
//!
//! ```text
//! p: Gamma (z + v)/2 + w (v - z)/2 + Gamma_phi p          (chi, chi_z: 0 for a symmetric state)
//! q: -Gamma_phi q
//! u: Gamma(-s/2 - u) + w(s/2 - u) - i chi s + i chi_z s
//! v: 4 (Gamma + w) p
//! ```
//!
//! Together (each two-atom equation: the one-atom part on both factors, the in-pair part, and
//! (N-2) times X on each factor with a third atom):
//!
//! ```text
//! dp/dt = -2 Gamma2 p - 2 Im(eta^* u) + Gamma (z+v)/2 + w (v-z)/2 + Gamma_phi p + 2 kappa (N-2) T1
//! dq/dt = 2(i delta - Gamma2) q - Gamma_phi q - 2i eta u + 2 (N-2)(kappa - i chi + i chi_z) T2
//! du/dt = (i delta - Gamma2 - G) u - g s - 2i eta^* q + 2i eta p - i eta v
//!         + Gamma(-s/2 - u) + w(s/2 - u) + i(chi_z - chi) s
//!         + (N-2) [ -4 kappa T3 + (kappa - i chi + i chi_z) T4 ]
//! dv/dt = -4i eta^* u + 4i eta u^* - 2 G v - 2 g z + 4 (Gamma + w) p - 8 kappa (N-2) T1
//! ```
//!
//! [`open_rhs`] implements exactly these equations given the third-order moments: it is exact
//! for any permutation-symmetric state, which `tests/cumulant.rs` checks against Tr(O L rho) of
//! the 2^N Lindbladian for random symmetric states, N = 3..6, every term on. At N = 2 the
//! (N-2) terms vanish and the equations are exact with no closure.
//!
//! # Closure
//!
//! Third-order cumulants set to zero, `<ABC> ~ <AB><C> + <AC><B> + <BC><A> - 2<A><B><C>`
//! ([`close_third`]):
//!
//! ```text
//! T1 = p z + u s^* + u^* s - 2 |s|^2 z      T2 = q z + 2 u s - 2 s^2 z
//! T3 = q s^* + 2 p s - 2 s^2 s^*            T4 = v s + 2 u z - 2 z^2 s
//! ```
//!
//! and [`rhs`] = [`open_rhs`] after [`close_third`]. The seed 002 equations (S12)-(S17) are the
//! special case w = Gamma_phi = gamma_up = gamma_phi = chi_z = omega0 = phi = 0; e.g. (S12) is
//! the s equation with Gamma2 = (Gamma + gamma_s)/2 and (N-1)(Gamma - 2i chi)/2 in front of u.
//!
//! # Collective observables
//!
//! From permutation symmetry alone (no approximation; [`to_moments`], and [`from_moments`]
//! inverts it):
//!
//! ```text
//! <J+> = N s,  <Jz> = N z/2,  <J+J-> = N (1+z)/2 + N(N-1) p,  <J-J+> = <J+J-> - 2<Jz>,
//! <J+^2> = N(N-1) q,  <{J+, Jz}> = N(N-1) u,  <Jz^2> = N/4 + N(N-1) v/4,
//! ```
//!
//! then `<Jx^2>`, `<Jy^2>`, `<{Ja,Jb}>/2` as in [`crate::observe`] and
//! `<J^2> = <J+J-> - <Jz> + <Jz^2>`. The parameters travel as the flat array of [`params`]
//! (no transcendental function inside the right-hand side: cos phi and sin phi are folded in on
//! the host), so [`rhs`] translates line by line to a compute kernel.
//!
//! # Sweeps: one algorithm, three layouts
//!
//! [`batch`] integrates many parameter points, each an independent 9-variable ODE (adaptive
//! DP5, per-point step control and reductions). [`lanes`] runs the same algorithm on eight
//! points at once in SIMD lanes (struct of arrays; each lane with its own step size,
//! accept/reject and end, refilled with the next point when its point ends), which is why
//! [`rhs`] is generic over [`Real`] (`f64` or [`lanes::F64x8`]): one source for both, and
//! results identical bit for bit (`tests/cumulant_lanes.rs`). The CPU sweep runs the lanes; the
//! WGSL kernel (`shaders/cumulant_batch.wgsl`, one invocation per point) is the twin of the
//! scalar [`batch::integrate_point`]. Time-dependent protocols enter the batch as [`pieces`]
//! (affine pieces of the flat parameters between the breaks; scalar batch and kernel).
//!
//! # Validation
//!
//! `tests/cumulant.rs`: the open right-hand side against the 2^N Lindbladian (N = 3..6, every
//! term), the closed equations exact at N = 2, and seed 002's model against the exact
//! permutation-invariant solver at N = 10 - 80. `tests/cumulant_trajectories.rs`: seed 002's
//! model at N = 2000 (chi = Gamma, Upsilon = 0.95 Upsilon_c, gamma_s = 20 Gamma, Fig. S1 b-g
//! style) against 100 irrep-changing quantum trajectories: <J>/(N/2), <J^2> and xi^2 agree
//! within 2 of the ensemble's standard errors (asserted: 4 SE plus a stated closure allowance)
//! over t in [0, 0.006/Gamma], through the squeezing minimum (xi^2 ~ 0.17) up to the dynamical
//! transition (N_eff = 2 Omega/Upsilon_c at t* = 0.0075/Gamma). There the two part, as the
//! paper reports: xi^2 departs from t = 0.0065 (4.5 SE; one save before t*, the trajectories
//! crossing one by one as in seed 002's Fig. S2) and differs by up to 19 SE by t = 0.01
//! (trajectories ~70, cumulants 2 - 13), the means by up to 9.5 SE from t = 0.009 (measured by
//! the ignored test there, command in its doc).

pub mod batch;
pub mod lanes;
pub mod pieces;

use crate::c64;
use crate::error::SolverError;
use crate::model::{Model, Protocol};
use crate::observe::Moments;
use crate::solver::ode::{self, OdeOptions, OdeStats};
use std::ops::{Add, Div, Mul, Neg, Sub};

/// Number of real state variables.
pub const NVAR: usize = 9;
/// Index of Re s, s = <sigma^+>.
pub const S_RE: usize = 0;
/// Index of Im s.
pub const S_IM: usize = 1;
/// Index of z = <sigma^z>.
pub const Z: usize = 2;
/// Index of p = <sigma_a^+ sigma_b^-> (real).
pub const P: usize = 3;
/// Index of Re q, q = <sigma_a^+ sigma_b^+>.
pub const Q_RE: usize = 4;
/// Index of Im q.
pub const Q_IM: usize = 5;
/// Index of Re u, u = <sigma_a^z sigma_b^+>.
pub const U_RE: usize = 6;
/// Index of Im u.
pub const U_IM: usize = 7;
/// Index of v = <sigma_a^z sigma_b^z> (real).
pub const V: usize = 8;

/// Number of real third-order moments.
pub const NTHIRD: usize = 7;
/// T1 = <sigma^+ sigma^- sigma^z> (real).
pub const T1: usize = 0;
/// Re T2, T2 = <sigma^+ sigma^+ sigma^z>.
pub const T2_RE: usize = 1;
/// Im T2.
pub const T2_IM: usize = 2;
/// Re T3, T3 = <sigma^+ sigma^+ sigma^->.
pub const T3_RE: usize = 3;
/// Im T3.
pub const T3_IM: usize = 4;
/// Re T4, T4 = <sigma^z sigma^z sigma^+>.
pub const T4_RE: usize = 5;
/// Im T4.
pub const T4_IM: usize = 6;

/// Number of parameters in the flat parameter array of [`params`]:
/// `[N, omega0, Omega cos phi, Omega sin phi, chi, chi_z, Gamma, w, Gamma_phi, gamma_down,
/// gamma_up, gamma_phi]`.
pub const NPAR: usize = 12;

/// The arithmetic of [`rhs`] and of the DP5 step ([`batch`]), over one point (`f64`) or eight
/// points in SIMD lanes ([`lanes::F64x8`], element-wise). Only correctly rounded IEEE
/// operations (no fused multiply-add), so every lane rounds exactly as the `f64` instance.
pub trait Real:
    Copy + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Div<Output = Self> + Neg<Output = Self>
{
    /// The constant `x` (in every lane).
    fn splat(x: f64) -> Self;
    /// |x| ([`f64::abs`]).
    fn abs(self) -> Self;
    /// [`f64::max`] (a NaN operand gives the other one).
    fn max(self, o: Self) -> Self;
    /// [`f64::sqrt`] (correctly rounded).
    fn sqrt(self) -> Self;
}

impl Real for f64 {
    #[inline(always)]
    fn splat(x: f64) -> f64 {
        x
    }
    #[inline(always)]
    fn abs(self) -> f64 {
        f64::abs(self)
    }
    #[inline(always)]
    fn max(self, o: f64) -> f64 {
        f64::max(self, o)
    }
    #[inline(always)]
    fn sqrt(self) -> f64 {
        f64::sqrt(self)
    }
}

/// A complex number over [`Real`] with num-complex's formulas (`(a + ib)(c + id) =
/// (ac - bd) + i(ad + bc)`, `x * r = (x.re r, x.im r)`), so that [`rhs`] over `f64` gives the
/// bits it gave with `c64`, and the WGSL twin's `cmul` the same products.
#[derive(Clone, Copy)]
struct Cx<T> {
    re: T,
    im: T,
}

impl<T: Real> Cx<T> {
    #[inline(always)]
    fn new(re: T, im: T) -> Self {
        Cx { re, im }
    }
    #[inline(always)]
    fn conj(self) -> Self {
        Cx::new(self.re, -self.im)
    }
    #[inline(always)]
    fn norm_sqr(self) -> T {
        self.re * self.re + self.im * self.im
    }
}

impl<T: Real> Add for Cx<T> {
    type Output = Self;
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Cx::new(self.re + o.re, self.im + o.im)
    }
}

impl<T: Real> Sub for Cx<T> {
    type Output = Self;
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        Cx::new(self.re - o.re, self.im - o.im)
    }
}

impl<T: Real> Mul for Cx<T> {
    type Output = Self;
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Cx::new(self.re * o.re - self.im * o.im, self.re * o.im + self.im * o.re)
    }
}

impl<T: Real> Mul<T> for Cx<T> {
    type Output = Self;
    #[inline(always)]
    fn mul(self, r: T) -> Self {
        Cx::new(self.re * r, self.im * r)
    }
}

impl<T: Real> Sub<T> for Cx<T> {
    type Output = Self;
    #[inline(always)]
    fn sub(self, r: T) -> Self {
        Cx::new(self.re - r, self.im)
    }
}

/// The model as the flat parameter array the right-hand side reads (cos and sin of the drive
/// phase evaluated here, on the host).
pub fn params(m: &Model) -> [f64; NPAR] {
    let (sp, cp) = m.phi.sin_cos();
    [
        m.n as f64,
        m.omega0,
        m.drive * cp,
        m.drive * sp,
        m.chi,
        m.chi_z,
        m.gamma_coll,
        m.pump_coll,
        m.dephase_coll,
        m.gamma_down,
        m.gamma_up,
        m.gamma_phi,
    ]
}

/// The open right-hand side: d/dt of the nine variables, exact given the state `y` and the
/// third-order moments `t3` of a permutation-symmetric state (module doc). No allocation.
///
/// Generic over [`Real`]: `f64` for one point, [`lanes::F64x8`] for eight points in SIMD
/// lanes. Every lane performs the operations of the `f64` instance in the same order (the
/// complex products are `Cx`'s, num-complex's formulas), so both give the same bits.
#[inline(always)]
pub fn open_rhs<T: Real>(par: &[T; NPAR], y: &[T; NVAR], t3: &[T; NTHIRD], dy: &mut [T; NVAR]) {
    let c = T::splat;
    let n = par[0];
    let omega0 = par[1];
    let eta = Cx::new(c(0.5) * par[2], c(0.5) * par[3]); // Omega e^{i phi} / 2
    let chi = par[4];
    let chi_z = par[5];
    let gam = par[6];
    let w = par[7];
    let gam_phi = par[8];
    let gd = par[9] + gam;
    let gu = par[10] + w;
    let gp = par[11] + c(0.25) * gam_phi;
    let big_g = gd + gu;
    let small_g = gd - gu;
    let gamma2 = c(0.5) * big_g + c(2.0) * gp;
    let delta = omega0 + chi;
    let kappa = c(0.5) * (gam - w);
    let i = Cx::new(c(0.0), c(1.0));
    // kappa - i chi + i chi_z: the coefficient of the outside-atom sigma^+ coupling.
    let cpl = Cx::new(kappa, chi_z - chi);
    let rot = Cx::new(-gamma2, delta); // i delta - Gamma2

    let s = Cx::new(y[S_RE], y[S_IM]);
    let z = y[Z];
    let p = y[P];
    let q = Cx::new(y[Q_RE], y[Q_IM]);
    let u = Cx::new(y[U_RE], y[U_IM]);
    let v = y[V];
    let t1 = t3[T1];
    let t2 = Cx::new(t3[T2_RE], t3[T2_IM]);
    let t3c = Cx::new(t3[T3_RE], t3[T3_IM]);
    let t4 = Cx::new(t3[T4_RE], t3[T4_IM]);
    let n1 = n - c(1.0);
    let n2 = n - c(2.0);

    // A real factor a in front of a complex x is written x * a: (x.re a, x.im a) rounds like
    // (a x.re, a x.im), and the products keep their left-to-right association.
    let ds = rot * s - i * eta * z + cpl * n1 * u;
    // -2i eta^* s + 2i eta s^* = 4 Im(eta^* s), written as the real part of the two products:
    let drive_z = (i * c(-2.0) * eta.conj() * s + i * c(2.0) * eta * s.conj()).re;
    let dz = drive_z - big_g * z - small_g - c(4.0) * kappa * n1 * p;
    let dp = c(-2.0) * gamma2 * p - c(2.0) * (eta.conj() * u).im
        + c(0.5) * gam * (z + v)
        + c(0.5) * w * (v - z)
        + gam_phi * p
        + c(2.0) * kappa * n2 * t1;
    let dq = rot * c(2.0) * q - q * gam_phi - i * c(2.0) * eta * u + cpl * (c(2.0) * n2) * t2;
    let du = (rot - big_g) * u - s * small_g - i * c(2.0) * eta.conj() * q + i * c(2.0) * eta * p
        - i * eta * v
        + (s * c(-0.5) - u) * gam
        + (s * c(0.5) - u) * w
        + i * (chi_z - chi) * s
        + (t3c * (c(-4.0) * kappa) + cpl * t4) * n2;
    let dv = (i * c(-4.0) * eta.conj() * u + i * c(4.0) * eta * u.conj()).re
        - c(2.0) * big_g * v
        - c(2.0) * small_g * z
        + c(4.0) * (gam + w) * p
        - c(8.0) * kappa * n2 * t1;

    dy[S_RE] = ds.re;
    dy[S_IM] = ds.im;
    dy[Z] = dz;
    dy[P] = dp;
    dy[Q_RE] = dq.re;
    dy[Q_IM] = dq.im;
    dy[U_RE] = du.re;
    dy[U_IM] = du.im;
    dy[V] = dv;
}

/// Third-order moments from first and second order by the cumulant closure
/// `<ABC> ~ <AB><C> + <AC><B> + <BC><A> - 2<A><B><C>` (module doc). Generic as [`open_rhs`].
#[inline(always)]
pub fn close_third<T: Real>(y: &[T; NVAR], t3: &mut [T; NTHIRD]) {
    let c = T::splat;
    let s = Cx::new(y[S_RE], y[S_IM]);
    let z = y[Z];
    let p = y[P];
    let q = Cx::new(y[Q_RE], y[Q_IM]);
    let u = Cx::new(y[U_RE], y[U_IM]);
    let v = y[V];
    let t1 = p * z + c(2.0) * (u * s.conj()).re - c(2.0) * s.norm_sqr() * z;
    let t2 = q * z + u * c(2.0) * s - s * c(2.0) * s * z;
    let t3c = q * s.conj() + s * (c(2.0) * p) - s * c(2.0) * s * s.conj();
    let t4 = s * v + u * c(2.0) * z - s * (c(2.0) * z * z);
    t3[T1] = t1;
    t3[T2_RE] = t2.re;
    t3[T2_IM] = t2.im;
    t3[T3_RE] = t3c.re;
    t3[T3_IM] = t3c.im;
    t3[T4_RE] = t4.re;
    t3[T4_IM] = t4.im;
}

/// The closed second-order cumulant equations: [`open_rhs`] after [`close_third`].
#[inline(always)]
pub fn rhs<T: Real>(par: &[T; NPAR], y: &[T; NVAR], dy: &mut [T; NVAR]) {
    let mut t3 = [T::splat(0.0); NTHIRD];
    close_third(y, &mut t3);
    open_rhs(par, y, &t3, dy);
}

/// The nine variables of a permutation-symmetric state of `n` atoms from its collective first
/// and second moments (module doc; exact). For n = 1 the two-atom moments do not exist and are
/// set to 0 (they enter the equations only multiplied by N - 1).
pub fn from_moments(n: usize, m: &Moments) -> [f64; NVAR] {
    let nf = n as f64;
    let s = c64::new(m.mean[0], m.mean[1]) / nf;
    let z = 2.0 * m.mean[2] / nf;
    let mut y = [0.0; NVAR];
    y[S_RE] = s.re;
    y[S_IM] = s.im;
    y[Z] = z;
    if n >= 2 {
        let pairs = nf * (nf - 1.0);
        let [[xx, xy, xz], [_, yy, yz], [_, _, zz]] = m.second;
        let jpjm = xx + yy + m.mean[2];
        let jp2 = c64::new(xx - yy, 2.0 * xy);
        let x = c64::new(2.0 * xz, 2.0 * yz); // <{J+, Jz}>
        y[P] = (jpjm - 0.5 * nf * (1.0 + z)) / pairs;
        y[Q_RE] = jp2.re / pairs;
        y[Q_IM] = jp2.im / pairs;
        y[U_RE] = x.re / pairs;
        y[U_IM] = x.im / pairs;
        y[V] = (4.0 * zz - nf) / pairs;
    }
    y
}

/// Collective first and second moments of the state `y` of `n` atoms (module doc).
pub fn to_moments(n: usize, y: &[f64; NVAR]) -> Moments {
    let nf = n as f64;
    let pairs = nf * (nf - 1.0);
    let jz = 0.5 * nf * y[Z];
    let jpjm = 0.5 * nf * (1.0 + y[Z]) + pairs * y[P];
    let jmjp = jpjm - 2.0 * jz;
    let (jp2_re, jp2_im) = (pairs * y[Q_RE], pairs * y[Q_IM]);
    let (x_re, x_im) = (pairs * y[U_RE], pairs * y[U_IM]);
    let zz = 0.25 * nf + 0.25 * pairs * y[V];
    let xx = 0.25 * (jpjm + jmjp + 2.0 * jp2_re);
    let yy = 0.25 * (jpjm + jmjp - 2.0 * jp2_re);
    let xy = 0.5 * jp2_im;
    let xz = 0.5 * x_re;
    let yz = 0.5 * x_im;
    Moments {
        n,
        mean: [nf * y[S_RE], nf * y[S_IM], jz],
        second: [[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]],
    }
}

/// <J^2> = <J+J-> - <Jz> + <Jz^2> of the state `y` of `n` atoms.
pub fn j2(n: usize, y: &[f64; NVAR]) -> f64 {
    let m = to_moments(n, y);
    m.second[0][0] + m.second[1][1] + m.second[2][2]
}

/// The nine variables of a pure state of the symmetric irrep j = N/2 (amplitudes as in
/// [`crate::state::pure`]: coherent, Dicke, CRSS), from its exact collective moments.
pub fn from_pure(psi: &[c64]) -> [f64; NVAR] {
    let n = psi.len().saturating_sub(1);
    from_moments(n, &crate::observe::moments_pure(psi))
}

/// Integrate the closed cumulant equations from `y0` at `times[0]` with the shared adaptive
/// integrator ([`crate::solver::ode`]), calling `on_save(i, t, y)` at every requested time.
pub fn evolve(
    model: &Model,
    y0: &[f64; NVAR],
    times: &[f64],
    opts: &OdeOptions,
    on_save: &mut dyn FnMut(usize, f64, &[f64; NVAR]),
) -> Result<OdeStats, SolverError> {
    evolve_protocol(&Protocol::from(*model), y0, times, opts, on_save)
}

/// [`evolve`] under a time-dependent protocol (`model::schedule`): steps land on every
/// break, each step uses its piece's parameters, as `p0 + p1 (t - at)` in the batches'
/// form ([`pieces`]) unless phi is scheduled.
pub fn evolve_protocol(
    protocol: &Protocol,
    y0: &[f64; NVAR],
    times: &[f64],
    opts: &OdeOptions,
    on_save: &mut dyn FnMut(usize, f64, &[f64; NVAR]),
) -> Result<OdeStats, SolverError> {
    let breaks = ode::protocol_breaks(protocol, times, "cumulant")?;
    // The flat parameters as `p0 + p1 (t - at)` on the piece starting at `at`, computed when
    // the piece changes ([`pieces`]: exact for every schedulable parameter but phi, which
    // enters through its cosine and sine and is evaluated at each right-hand side instead).
    let affine = !protocol.names().contains(&"phi");
    let piece = |at: f64| {
        let rates = Model {
            phi: protocol.base.phi,
            ..protocol.rates_model(at)
        };
        (at, params(&protocol.model_in(at, at)), params(&rates))
    };
    let mut cur = piece(times.first().copied().unwrap_or(0.0));
    ode::integrate_real_pieces(
        |at, t, y: &[f64], dy: &mut [f64]| {
            let y: &[f64; NVAR] = y.try_into().expect("nine variables");
            let dy: &mut [f64; NVAR] = dy.try_into().expect("nine variables");
            if protocol.is_constant() {
                rhs(&cur.1, y, dy);
            } else if affine {
                if cur.0 != at {
                    cur = piece(at);
                }
                let tau = t - at;
                rhs(&std::array::from_fn(|j| cur.1[j] + cur.2[j] * tau), y, dy);
            } else {
                rhs(&params(&protocol.model_in(at, t)), y, dy);
            }
        },
        y0,
        times,
        &breaks,
        opts,
        |i, t, y: &[f64]| on_save(i, t, y.try_into().expect("nine variables")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::pure;

    /// from_moments and to_moments are inverse (exact relations, rounding only).
    #[test]
    fn moments_round_trip() {
        for n in [2usize, 3, 7, 40] {
            let psi = pure::coherent(n, 1.1, 0.4);
            let m = crate::observe::moments_pure(&psi);
            let y = from_moments(n, &m);
            let back = to_moments(n, &y);
            for a in 0..3 {
                assert!((back.mean[a] - m.mean[a]).abs() < 1e-12 * n as f64);
                for b in 0..3 {
                    let d = (back.second[a][b] - m.second[a][b]).abs();
                    assert!(d < 1e-11 * (n * n) as f64, "n={n} second[{a}][{b}]: {d:e}");
                }
            }
            // A coherent state is a product state: p = |s|^2, q = s^2, u = z s, v = z^2.
            let s = c64::new(y[S_RE], y[S_IM]);
            assert!((y[P] - s.norm_sqr()).abs() < 1e-12);
            assert!((c64::new(y[Q_RE], y[Q_IM]) - s * s).norm() < 1e-12);
            assert!((c64::new(y[U_RE], y[U_IM]) - y[Z] * s).norm() < 1e-12);
            assert!((y[V] - y[Z] * y[Z]).abs() < 1e-12);
        }
    }
}
