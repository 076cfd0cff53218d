//! Pure states of the symmetric irrep j = N/2 (PHYSICS.md sections 2 and 8), as amplitude
//! vectors of length N + 1 at index k = m + j (k = 0 is m = -j, all atoms down).
//!
//! **Dicke state** |j, m>: the unit vector at k = m + j.
//!
//! **Spin coherent state** with Bloch vector j (sin θ cos φ, sin θ sin φ, cos θ),
//! |θ, φ> = exp(-i φ Jz) exp(-i θ Jy) |j, +j>:
//!
//! ```text
//! <k|θ,φ> = sqrt(C(2j, k)) cos(θ/2)^k sin(θ/2)^(2j-k) e^{-i (k-j) φ}
//! ```
//!
//! (a Wigner d-matrix column d^j_{m,j}(θ); θ = 0 is |+j>, θ = π is |-j>, and
//! <J+> = j sin θ e^{iφ}). The magnitudes are accumulated in log space from the ratio
//! |c_{k+1}/c_k| = sqrt((2j-k)/(k+1)) |cos(θ/2)/sin(θ/2)| and exponentiated relative to
//! their maximum, then normalised: nothing overflows or underflows for N up to 10^5 and
//! beyond, and unlike ln C(2j,k) = ln(2j)! - ln k! - ln(2j-k)! (differences of numbers of size
//! N ln N) the recurrence adds O(1)-sized terms, so the relative error of each amplitude stays
//! near machine precision times sqrt(N). Amplitudes below ~1e-308 of the peak are 0.
//!
//! **CRSS** (coherently radiating spin state, seed 000; engine convention, H = Omega Jx,
//! Gamma D[J-]): with b = -i Omega/Gamma,
//!
//! ```text
//! c_{-j+k} = b^k / sqrt(k! (2j)! / (2j-k)!),   |c_{k+1}/c_k| = |b| / sqrt((k+1)(2j-k)).
//! ```
//!
//! The series is asymptotic: the ratio is smallest in the middle of the ladder, so |c|
//! rises (while |b|^2 >= (k+1)(2j-k)), falls, and rises again toward m = +j. It is cut at the
//! first local minimum of |c| that follows the first maximum (the smallest term, the optimal
//! truncation of an asymptotic series; the minimum itself is kept), or kept whole if |c| never
//! rises again; then normalised. Amplitudes past the cut are zero, so the vector still has N + 1
//! entries.

use num_complex::Complex64 as c64;

use crate::basis::Irrep;
use crate::error::InputError;

/// The Dicke state |j = N/2, m>. `m` must lie in -N/2..=N/2 in integer steps (half-integer m
/// for odd N).
pub fn dicke(n: usize, m: f64) -> Result<Vec<c64>, InputError> {
    let irrep = Irrep::symmetric(n);
    let k = if m.is_finite() { irrep.index_of(m) } else { None };
    let k = k.ok_or_else(|| InputError::invalid("initial.m", m, "a value in -N/2..N/2 in integer steps"))?;
    let mut psi = vec![c64::new(0.0, 0.0); n + 1];
    psi[k] = c64::new(1.0, 0.0);
    Ok(psi)
}

/// Real amplitudes of the coherent state at polar angle θ and azimuth φ = 0,
/// `a_k = sqrt(C(2j,k)) cos(θ/2)^k sin(θ/2)^(2j-k)` normalised (signs kept, so any real θ
/// works). `coherent(n, θ, φ)[k] = a_k e^{-i (k-j) φ}`.
pub fn coherent_real(n: usize, theta: f64) -> Vec<f64> {
    let (s, c) = (0.5 * theta).sin_cos();
    let mut a = vec![0.0; n + 1];
    // Exact poles first: the log recurrence would need ln 0.
    if s == 0.0 {
        a[n] = 1.0;
        return a;
    }
    if c == 0.0 {
        a[0] = 1.0;
        return a;
    }
    let ln_ratio = c.abs().ln() - s.abs().ln();
    let mut logs = Vec::with_capacity(n + 1);
    let mut l = 0.0;
    logs.push(l);
    for k in 0..n {
        l += 0.5 * ((n - k) as f64 / (k + 1) as f64).ln() + ln_ratio;
        logs.push(l);
    }
    let max = logs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    for (k, (ak, lk)) in a.iter_mut().zip(&logs).enumerate() {
        // sign of cos^k sin^(2j-k)
        let negative = (c < 0.0 && k % 2 == 1) ^ (s < 0.0 && (n - k) % 2 == 1);
        let mag = (lk - max).exp();
        *ak = if negative { -mag } else { mag };
    }
    let norm = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    a.iter_mut().for_each(|x| *x /= norm);
    a
}

/// The spin coherent state |θ, φ> with Bloch vector j (sin θ cos φ, sin θ sin φ, cos θ),
/// normalised (see the module doc for the amplitudes and the phase convention).
pub fn coherent(n: usize, theta: f64, phi: f64) -> Vec<c64> {
    let j = n as f64 / 2.0;
    coherent_real(n, theta)
        .into_iter()
        .enumerate()
        .map(|(k, a)| c64::from_polar(a, -(k as f64 - j) * phi))
        .collect()
}

/// The coherently radiating spin state of seed 000 in engine convention, b = -i Omega/Gamma,
/// cut at the first local minimum of |c| after its first maximum and normalised (module doc).
///
/// `gamma` must be > 0 with Omega/Gamma finite (model validation guarantees Gamma > 0 where a
/// CRSS is requested). Omega = 0 gives the ground state |-j>; a non-finite ratio gives the
/// |b| -> infinity limit of the normalised series, |+j> (times the phase of b^(2j)).
pub fn crss(n: usize, omega: f64, gamma: f64) -> Vec<c64> {
    let ratio = omega / gamma;
    let mut psi = vec![c64::new(0.0, 0.0); n + 1];
    // Unit phase of b = -i Omega/Gamma; multiplying by ±i is exact in floating point.
    let u = if ratio >= 0.0 {
        c64::new(0.0, -1.0)
    } else {
        c64::new(0.0, 1.0)
    };
    if ratio == 0.0 {
        psi[0] = c64::new(1.0, 0.0);
        return psi;
    }
    if !ratio.is_finite() {
        psi[n] = (0..n).fold(c64::new(1.0, 0.0), |p, _| p * u);
        return psi;
    }
    let ln_b = ratio.abs().ln();
    // ln|c_{k+1}| - ln|c_k| for k = 0..2j-1.
    let step = |k: usize| ln_b - 0.5 * (((k + 1) * (n - k)) as f64).ln();
    // Climb to the first maximum, then descend to the first local minimum (plateaus are
    // crossed: >= while climbing, <= while descending).
    let mut k = 0;
    while k < n && step(k) >= 0.0 {
        k += 1;
    }
    while k < n && step(k) <= 0.0 {
        k += 1;
    }
    let cut = k; // keep 0..=cut; cut = 2j keeps everything
    let mut logs = Vec::with_capacity(cut + 1);
    let mut l = 0.0;
    logs.push(l);
    for k in 0..cut {
        l += step(k);
        logs.push(l);
    }
    let max = logs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut phase = c64::new(1.0, 0.0);
    for (p, lk) in psi.iter_mut().zip(&logs) {
        *p = phase * (lk - max).exp();
        phase *= u;
    }
    normalize(&mut psi);
    psi
}

/// Scale `psi` to unit 2-norm (overflow-safe: the norm is taken relative to the largest
/// magnitude). A zero or non-finite vector is left unchanged.
pub fn normalize(psi: &mut [c64]) {
    let big = psi.iter().map(|z| z.norm()).fold(0.0, f64::max);
    if big == 0.0 || !big.is_finite() {
        return;
    }
    let norm = big * psi.iter().map(|z| (z / big).norm_sqr()).sum::<f64>().sqrt();
    psi.iter_mut().for_each(|z| *z /= norm);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coherent_poles_and_equator() {
        let down = coherent(5, std::f64::consts::PI, 0.3);
        assert!((down[0].norm() - 1.0).abs() < 1e-15);
        let up = coherent(5, 0.0, 0.3);
        assert!((up[5].norm() - 1.0).abs() < 1e-15);
        // θ = π/2, φ = 0: |a_k|^2 = C(2j,k)/2^(2j)
        let eq = coherent_real(4, std::f64::consts::FRAC_PI_2);
        for (k, c) in [1.0, 4.0, 6.0, 4.0, 1.0].iter().enumerate() {
            assert!((eq[k] * eq[k] - c / 16.0).abs() < 1e-15);
        }
    }

    #[test]
    fn dicke_rejects_bad_m() {
        assert!(dicke(4, 0.5).is_err());
        assert!(dicke(4, 3.0).is_err());
        assert!(dicke(4, f64::NAN).is_err());
        assert!(dicke(3, 0.5).is_ok());
        assert_eq!(dicke(4, -2.0).unwrap()[0], c64::new(1.0, 0.0));
    }

    #[test]
    fn crss_limits() {
        assert_eq!(crss(6, 0.0, 1.0)[0], c64::new(1.0, 0.0));
        let inf = crss(6, 1.0, 0.0);
        assert!((inf[6].norm() - 1.0).abs() < 1e-15);
    }
}
