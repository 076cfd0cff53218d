//! The Dicke basis (PHYSICS.md section 2).
//!
//! States |j, m>, m = -j..j, stored at index `k = m + j` (k = 0 is m = -j, the ground state
//! "south pole"; k = 2j is m = +j). In this basis
//!
//! ```text
//! Jz |j,m>  = m |j,m>
//! J+ |j,m>  = sqrt((j - m)(j + m + 1)) |j, m+1>
//! J- |j,m>  = sqrt((j + m)(j - m + 1)) |j, m-1>
//! J+J-|j,m> = (j + m)(j - m + 1) |j,m>
//! ```
//!
//! so every collective operator is banded in m: Jx, Jy are tridiagonal, Jz, Jz^2, J+J- are
//! diagonal. Operators are never stored dense; solvers apply them as stencils using the
//! coefficient tables of [`Irrep`].

/// One irreducible representation j of the N-atom collective spin (j = N/2 for the
/// symmetric subspace). `two_j` is stored so half-integer j is exact.
#[derive(Debug, Clone, PartialEq)]
pub struct Irrep {
    /// 2j (an integer).
    pub two_j: usize,
    /// m(k) = k - j for k = 0..=2j.
    pub m: Vec<f64>,
    /// `jp[k]` = <k+1| J+ |k> = sqrt((j - m)(j + m + 1)); `jp[2j]` = 0.
    pub jp: Vec<f64>,
    /// `jm[k]` = <k-1| J- |k> = sqrt((j + m)(j - m + 1)) = `jp[k-1]`; `jm[0]` = 0.
    pub jm: Vec<f64>,
    /// `jpjm[k]` = <k| J+J- |k> = (j + m)(j - m + 1).
    pub jpjm: Vec<f64>,
    /// `jmjp[k]` = <k| J-J+ |k> = (j - m)(j + m + 1).
    pub jmjp: Vec<f64>,
}

impl Irrep {
    /// The irrep with 2j = `two_j`.
    pub fn new(two_j: usize) -> Irrep {
        let j = two_j as f64 / 2.0;
        let dim = two_j + 1;
        let m: Vec<f64> = (0..dim).map(|k| k as f64 - j).collect();
        let jmjp: Vec<f64> = m.iter().map(|&m| (j - m) * (j + m + 1.0)).collect();
        let jpjm: Vec<f64> = m.iter().map(|&m| (j + m) * (j - m + 1.0)).collect();
        let jp: Vec<f64> = jmjp.iter().map(|&x| x.max(0.0).sqrt()).collect();
        let jm: Vec<f64> = jpjm.iter().map(|&x| x.max(0.0).sqrt()).collect();
        Irrep {
            two_j,
            m,
            jp,
            jm,
            jpjm,
            jmjp,
        }
    }

    /// The fully symmetric irrep j = N/2 of N atoms (N + 1 levels).
    pub fn symmetric(n: usize) -> Irrep {
        Irrep::new(n)
    }

    /// j as a float.
    pub fn j(&self) -> f64 {
        self.two_j as f64 / 2.0
    }

    /// Number of levels 2j + 1.
    pub fn dim(&self) -> usize {
        self.two_j + 1
    }

    /// Index k of magnetic quantum number m (None if m is not in -j..j in integer steps).
    pub fn index_of(&self, m: f64) -> Option<usize> {
        let k = m + self.j();
        if !k.is_finite() || (k - k.round()).abs() > 1e-9 || k.round() < 0.0 || k.round() > self.two_j as f64
        {
            None
        } else {
            Some(k.round() as usize)
        }
    }
}

/// Weights of the single-atom jump channels in the permutation-invariant basis (PHYSICS.md
/// section 3), for N atoms and irrep 2j = `two_j`:
///
/// ```text
/// a0(j) = (N/2 + 1) / (2 j (j+1))          within the block (J-, J+, Jz)
/// a-(j) = (N/2 + j + 1) / (2 j (2j+1))     block j -> j-1 (A-, B-, D-)
/// a+(j) = (N/2 - j) / (2 (j+1) (2j+1))     block j -> j+1 (A+, B+, D+)
/// ```
///
/// A channel with j = 0 in its denominator carries weight 0: its operator vanishes there
/// (J-, Jz and A-, D- annihilate the one state of j = 0), so 0 is exact, not a cutoff.
/// Returned as (a0, a-, a+).
pub fn individual_weights(n: usize, two_j: usize) -> (f64, f64, f64) {
    let j = two_j as f64 / 2.0;
    let h = n as f64 / 2.0;
    if two_j == 0 {
        return (0.0, 0.0, h / 2.0);
    }
    let a0 = (h + 1.0) / (2.0 * j * (j + 1.0));
    let am = (h + j + 1.0) / (2.0 * j * (2.0 * j + 1.0));
    let ap = (h - j) / (2.0 * (j + 1.0) * (2.0 * j + 1.0));
    (a0, am, ap)
}

/// The irreps 2j = N, N-2, ..., 1 or 0 of N spins-1/2, largest first (the block order of the
/// permutation-invariant state).
pub fn two_js(n: usize) -> Vec<usize> {
    (0..=n / 2).map(|i| n - 2 * i).collect()
}

/// ln of the degeneracy of irrep j among N spins-1/2:
/// d_N(j) = (2j+1) N! / ((N/2 + j + 1)! (N/2 - j)!).
/// Computed with ln-gamma because d_N(j) overflows u64 near N = 80 and f64 near N = 1030.
pub fn ln_degeneracy(n: usize, two_j: usize) -> f64 {
    assert!(
        two_j <= n && (n - two_j).is_multiple_of(2),
        "2j must be N, N-2, ..."
    );
    let a = (n + two_j) / 2 + 1; // N/2 + j + 1
    let b = (n - two_j) / 2; // N/2 - j
    ((two_j + 1) as f64).ln() + ln_factorial(n) - ln_factorial(a) - ln_factorial(b)
}

/// ln(n!) by summation for small n and Stirling's series beyond (relative error < 1e-15).
pub fn ln_factorial(n: usize) -> f64 {
    if n < 256 {
        (2..=n).map(|k| (k as f64).ln()).sum()
    } else {
        let x = n as f64 + 1.0; // ln Gamma(x)
        let x2 = x * x;
        (x - 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln() + 1.0 / (12.0 * x)
            - 1.0 / (360.0 * x * x2)
            + 1.0 / (1260.0 * x2 * x2 * x)
            - 1.0 / (1680.0 * x2 * x2 * x2 * x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_coefficients_match_definition() {
        let irr = Irrep::symmetric(7);
        let j = 3.5;
        for k in 0..irr.dim() {
            let m = irr.m[k];
            assert_eq!(m, k as f64 - j);
            assert!((irr.jp[k] - ((j - m) * (j + m + 1.0)).sqrt()).abs() < 1e-14);
            if k > 0 {
                assert_eq!(irr.jm[k], irr.jp[k - 1]);
            }
            assert!((irr.jp[k] * irr.jp[k] - irr.jmjp[k]).abs() < 1e-12);
        }
        assert_eq!(irr.jp[7], 0.0);
        assert_eq!(irr.jm[0], 0.0);
    }

    #[test]
    fn degeneracies_sum_to_hilbert_space() {
        // sum_j d_N(j) (2j+1) = 2^N, checked in log space for N up to 2000 (d overflows u64 at N ~ 80).
        for n in [1usize, 2, 5, 10, 80, 300, 2000] {
            let mut terms = Vec::new();
            let mut two_j = n;
            loop {
                terms.push(ln_degeneracy(n, two_j) + ((two_j + 1) as f64).ln());
                if two_j < 2 {
                    break;
                }
                two_j -= 2;
            }
            let mx = terms.iter().cloned().fold(f64::MIN, f64::max);
            let lse = mx + terms.iter().map(|t| (t - mx).exp()).sum::<f64>().ln();
            let expect = n as f64 * 2f64.ln();
            assert!(
                (lse - expect).abs() < 1e-9 * expect.max(1.0),
                "N={n}: {lse} vs {expect}"
            );
        }
        // Small exact values: N = 4: d(2) = 1, d(1) = 3, d(0) = 2.
        assert!((ln_degeneracy(4, 4)).abs() < 1e-14);
        assert!((ln_degeneracy(4, 2) - 3f64.ln()).abs() < 1e-14);
        assert!((ln_degeneracy(4, 0) - 2f64.ln()).abs() < 1e-14);
    }

    /// Trace preservation of the emission channel (PHYSICS.md sec. 3): for every j and m,
    /// a0 x y + a- x (x-1) + a+ y (y+1) = x + N/2 - j with x = j+m, y = j-m+1, i.e. the three
    /// jump parts remove exactly the anticommutator's <j,m| Jz + N/2 |j,m>.
    #[test]
    fn individual_weights_preserve_trace() {
        for n in [1usize, 2, 3, 6, 11, 54] {
            for two_j in two_js(n) {
                let (a0, am, ap) = individual_weights(n, two_j);
                let j = two_j as f64 / 2.0;
                for k in 0..=two_j {
                    let m = k as f64 - j;
                    let (x, y) = (j + m, j - m + 1.0);
                    let lhs = a0 * x * y + am * x * (x - 1.0) + ap * y * (y + 1.0);
                    let rhs = x + n as f64 / 2.0 - j;
                    assert!(
                        (lhs - rhs).abs() < 1e-12 * rhs.max(1.0),
                        "N={n} 2j={two_j} m={m}: {lhs} vs {rhs}"
                    );
                }
            }
        }
        assert_eq!(two_js(5), vec![5, 3, 1]);
        assert_eq!(two_js(4), vec![4, 2, 0]);
    }

    #[test]
    fn stirling_matches_sum() {
        let sum: f64 = (2..=300).map(|k| (k as f64).ln()).sum();
        assert!((ln_factorial(300) - sum).abs() < 1e-10 * sum);
    }
}
