//! Dense linear algebra for the brute-force checks of superoperators (4^N x 4^N at N <= 4):
//! the steady state as the normalised null vector of L, and e^{L tau} by Taylor series with
//! scaling and squaring. Used by `tests/correlation.rs` and `tests/fisher.rs` (each includes
//! this file with `#[path = "common/dense.rs"] mod dense;`).
#![allow(dead_code)]

use dicke::c64;
use faer::Mat;

/// Solve A x = b by Gaussian elimination with partial pivoting (A square, dense).
pub fn solve(a: &Mat<c64>, b: &[c64]) -> Vec<c64> {
    let n = a.nrows();
    let mut m: Vec<Vec<c64>> = (0..n)
        .map(|r| {
            let mut row: Vec<c64> = (0..n).map(|c| a[(r, c)]).collect();
            row.push(b[r]);
            row
        })
        .collect();
    for k in 0..n {
        let p = (k..n)
            .max_by(|&i, &j| m[i][k].norm().total_cmp(&m[j][k].norm()))
            .unwrap();
        m.swap(k, p);
        let pivot_row = m[k].clone();
        for row in m.iter_mut().skip(k + 1) {
            let f = row[k] / pivot_row[k];
            if f != c64::new(0.0, 0.0) {
                for (x, v) in row[k..].iter_mut().zip(&pivot_row[k..]) {
                    *x -= f * v;
                }
            }
        }
    }
    let mut x = vec![c64::new(0.0, 0.0); n];
    for k in (0..n).rev() {
        let mut s = m[k][n];
        for c in k + 1..n {
            s -= m[k][c] * x[c];
        }
        x[k] = s / m[k][k];
    }
    x
}

/// The steady state of the superoperator `l` (4^N x 4^N, row-major vectorisation of a d x d
/// matrix): L x = 0 with the first equation replaced by tr x = 1.
pub fn steady_state(l: &Mat<c64>, d: usize) -> Vec<c64> {
    let n = l.nrows();
    let mut a = l.clone();
    for c in 0..n {
        a[(0, c)] = c64::new(0.0, 0.0);
    }
    for k in 0..d {
        a[(0, k * d + k)] = c64::new(1.0, 0.0);
    }
    let mut b = vec![c64::new(0.0, 0.0); n];
    b[0] = c64::new(1.0, 0.0);
    solve(&a, &b)
}

/// e^{t L} by scaling and squaring of a 24-term Taylor series.
pub fn expm(l: &Mat<c64>, t: f64) -> Mat<c64> {
    let n = l.nrows();
    let norm = (0..n)
        .map(|r| (0..n).map(|c| l[(r, c)].norm()).sum::<f64>())
        .fold(0.0, f64::max)
        * t.abs();
    let s = if norm > 0.25 {
        (norm / 0.25).log2().ceil() as i32
    } else {
        0
    };
    let scale = t / 2f64.powi(s);
    let a = Mat::<c64>::from_fn(n, n, |r, c| l[(r, c)] * scale);
    let mut e = Mat::<c64>::identity(n, n);
    let mut term = Mat::<c64>::identity(n, n);
    for k in 1..=24 {
        term = &term * &a;
        let inv = 1.0 / k as f64;
        term = Mat::<c64>::from_fn(n, n, |r, c| term[(r, c)] * inv);
        e = &e + &term;
    }
    for _ in 0..s {
        e = &e * &e;
    }
    e
}

/// y = M x.
pub fn apply(m: &Mat<c64>, x: &[c64]) -> Vec<c64> {
    (0..m.nrows())
        .map(|r| (0..m.ncols()).map(|c| m[(r, c)] * x[c]).sum())
        .collect()
}
