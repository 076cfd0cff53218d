//! Finite-size scaling fits (issue 13 item 5, seed 000 Fig. 2d): a positive quantity y (a
//! Liouvillian gap, a switching rate) against a size v (N), by least squares on ln y:
//!
//! ```text
//! power law:    y = A v^b        ln y = ln A + b ln v
//! exponential:  y = A e^{c v}    ln y = ln A + c v
//! ```
//!
//! Ordinary least squares of ln y on u = ln v (power) or u = v (exponential), equal weights
//! (the gaps come from the eigensolver to ~1e-12, so the scatter about the line is the model's
//! misfit, not noise): slope and intercept with standard errors from the residual variance
//! s^2 = RSS / (n - 2), `se(slope) = s / sqrt(Sxx)`, `se(intercept) = s sqrt(1/n + ubar^2 /
//! Sxx)`; A = e^intercept with se(A) = A se(intercept). With two points the line is exact and
//! the errors are NaN (undefined, not zero). A leaf module: it imports nothing of the crate.

/// The fitted law.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    Power,
    Exponential,
}

impl Law {
    pub fn name(self) -> &'static str {
        match self {
            Law::Power => "power",
            Law::Exponential => "exponential",
        }
    }
}

/// A fit y = A v^b or y = A e^{b v}.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub law: Law,
    pub prefactor: f64,
    pub prefactor_err: f64,
    /// b: the power or the exponential rate.
    pub exponent: f64,
    pub exponent_err: f64,
    pub points: usize,
    /// Root-mean-square residual of ln y.
    pub rms_ln: f64,
}

impl Fit {
    /// The law at v.
    pub fn at(&self, v: f64) -> f64 {
        match self.law {
            Law::Power => self.prefactor * v.powf(self.exponent),
            Law::Exponential => self.prefactor * (self.exponent * v).exp(),
        }
    }
}

/// Fit `law` to the points (v, y) with finite y > 0 (and v > 0 for a power law); None with
/// fewer than two such points or all v equal.
pub fn fit(law: Law, v: &[f64], y: &[f64]) -> Option<Fit> {
    let pts: Vec<(f64, f64)> = v
        .iter()
        .zip(y)
        .filter(|(a, b)| {
            a.is_finite() && b.is_finite() && **b > 0.0 && (law == Law::Exponential || **a > 0.0)
        })
        .map(|(a, b)| {
            let u = if law == Law::Power { a.ln() } else { *a };
            (u, b.ln())
        })
        .collect();
    let n = pts.len();
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let ubar = pts.iter().map(|p| p.0).sum::<f64>() / nf;
    let wbar = pts.iter().map(|p| p.1).sum::<f64>() / nf;
    let sxx: f64 = pts.iter().map(|p| (p.0 - ubar).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = pts.iter().map(|p| (p.0 - ubar) * (p.1 - wbar)).sum();
    let slope = sxy / sxx;
    let intercept = wbar - slope * ubar;
    let rss: f64 = pts.iter().map(|p| (p.1 - intercept - slope * p.0).powi(2)).sum();
    let s = if n > 2 {
        (rss / (nf - 2.0)).sqrt()
    } else {
        f64::NAN
    };
    let se_slope = s / sxx.sqrt();
    let se_intercept = s * (1.0 / nf + ubar * ubar / sxx).sqrt();
    let a = intercept.exp();
    Some(Fit {
        law,
        prefactor: a,
        prefactor_err: a * se_intercept,
        exponent: slope,
        exponent_err: se_slope,
        points: n,
        rms_ln: (rss / nf).sqrt(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exact laws are recovered exactly; a known scatter gives the textbook standard error.
    #[test]
    fn power_and_exponential_laws() {
        let v = [18.0, 24.0, 30.0, 36.0, 42.0];
        let y: Vec<f64> = v.iter().map(|n: &f64| 1.72 * n.powf(-0.9)).collect();
        let f = fit(Law::Power, &v, &y).unwrap();
        assert!((f.exponent + 0.9).abs() < 1e-12 && (f.prefactor - 1.72).abs() < 1e-12);
        assert!(f.exponent_err < 1e-12 && f.rms_ln < 1e-13);
        let ye: Vec<f64> = v.iter().map(|n| 3.0 * (-0.1 * n).exp()).collect();
        let g = fit(Law::Exponential, &v, &ye).unwrap();
        assert!((g.exponent + 0.1).abs() < 1e-12 && (g.prefactor - 3.0).abs() < 1e-11);
        // ln y = u + e_i with e = (+d, -d, -d, +d) at u = 0..3: slope 1 - 0 (symmetric),
        // RSS = 4 d^2, s^2 = 2 d^2, Sxx = 5, se(slope) = d sqrt(2/5).
        let d: f64 = 0.01;
        let u: [f64; 4] = [0.0, 1.0, 2.0, 3.0];
        let w: Vec<f64> = u.iter().zip([d, -d, -d, d]).map(|(a, e)| (a + e).exp()).collect();
        let h = fit(Law::Exponential, &u, &w).unwrap();
        assert!((h.exponent - 1.0).abs() < 1e-12);
        assert!((h.exponent_err - d * (0.4f64).sqrt()).abs() < 1e-12);
        // Two points: exact line, undefined errors; too few or degenerate: None.
        let two = fit(Law::Power, &[1.0, 2.0], &[1.0, 0.5]).unwrap();
        assert!((two.exponent + 1.0).abs() < 1e-12 && two.exponent_err.is_nan());
        assert!(fit(Law::Power, &[1.0], &[1.0]).is_none());
        assert!(fit(Law::Power, &[2.0, 2.0], &[1.0, 3.0]).is_none());
        assert!(fit(Law::Power, &[1.0, 2.0, 3.0], &[1.0, f64::NAN, -1.0]).is_none());
    }
}
