//! The metastable decomposition (`solver::metastable`, `kind = "metastable"`): the same
//! decomposition of the full 2^N Lindbladian's slow eigenmode (PHYSICS.md sec. 9 rung 2), the
//! seed 000 physics at N = 18, and the task's files.

#[path = "common/brute.rs"]
mod brute;
mod common;

use brute::brute;
use dicke::c64;
use dicke::model::Model;
use dicke::solver::metastable::decompose;
use dicke::solver::spectrum::Space;

/// The Hermitian matrix in the span of the row-major d x d matrix `v` (X + X^dag or
/// i (X - X^dag), the larger), as a faer matrix.
fn hermitian(v: &[c64], d: usize) -> faer::Mat<c64> {
    let x = |r: usize, c: usize| v[r * d + c];
    let a = faer::Mat::<c64>::from_fn(d, d, |r, c| x(r, c) + x(c, r).conj());
    let b = faer::Mat::<c64>::from_fn(d, d, |r, c| c64::new(0.0, 1.0) * (x(r, c) - x(c, r).conj()));
    if a.norm_l2() >= b.norm_l2() { a } else { b }
}

/// Positive and negative parts of a Hermitian matrix, each normalised to trace 1.
fn split(h: &faer::Mat<c64>) -> (faer::Mat<c64>, faer::Mat<c64>) {
    let d = h.nrows();
    let eig = h.self_adjoint_eigen(faer::Side::Lower).unwrap();
    let (u, s) = (eig.U(), eig.S());
    let part = |sign: f64| {
        let mut m = faer::Mat::<c64>::zeros(d, d);
        for k in 0..d {
            let e = sign * s[k].re;
            if e > 0.0 {
                for r in 0..d {
                    for c in 0..d {
                        m[(r, c)] += e * u[(r, k)] * u[(c, k)].conj();
                    }
                }
            }
        }
        let t: c64 = (0..d).map(|i| m[(i, i)]).sum();
        m * faer::Scale(c64::new(1.0 / t.re, 0.0))
    };
    (part(1.0), part(-1.0))
}

fn tr_prod(a: &faer::Mat<c64>, b: &faer::Mat<c64>) -> f64 {
    let d = a.nrows();
    (0..d)
        .flat_map(|r| (0..d).map(move |c| (r, c)))
        .map(|(r, c)| (a[(r, c)] * b[(c, r)]).re)
        .sum()
}

/// N = 4 with every kind of term on: the slowest mode of the full 2^N Lindbladian (a simple
/// eigenvalue there, checked) decomposed densely in the 2^N space gives the same lambda_1,
/// weights a_+-, and <Jz> of rho_+- as the block decomposition. Tolerance 1e-8: the dense
/// non-Hermitian eigenvectors of the 256 x 256 Lindbladian (condition ~1e3) carry ~1e-12.
#[test]
fn blocks_decomposition_equals_the_2n_one() {
    for drive in [0.5, 1.2, 2.0] {
        let model = Model {
            n: 4,
            drive,
            chi: 0.3,
            gamma_coll: 1.0,
            gamma_down: 0.3,
            gamma_up: 0.05,
            gamma_phi: 0.1,
            ..Model::default()
        };
        let m = decompose(&model, Space::Blocks).unwrap();
        let a = brute::matrix(&model);
        let eig = a.eigen().unwrap();
        let (u, s) = (eig.U(), eig.S());
        let dd = a.nrows();
        let near = |z: c64| (0..dd).filter(|&i| (s[i] - z).norm() < 1e-6).collect::<Vec<_>>();
        let (i0, i1) = (near(c64::new(0.0, 0.0)), near(m.lambda1));
        assert_eq!(
            (i0.len(), i1.len()),
            (1, 1),
            "Omega = {drive}: zero and lambda_1 simple in 2^N"
        );
        assert!(
            (s[i1[0]] - m.lambda1).norm() < 1e-8,
            "{} vs {}",
            s[i1[0]],
            m.lambda1
        );
        let d = 1usize << model.n;
        let col = |i: usize| (0..dd).map(|r| u[(r, i)]).collect::<Vec<c64>>();
        let mut ss = hermitian(&col(i0[0]), d);
        let t: c64 = (0..d).map(|i| ss[(i, i)]).sum();
        ss *= faer::Scale(c64::new(1.0 / t.re, 0.0));
        let (mut p, mut q) = split(&hermitian(&col(i1[0]), d));
        let b = brute(&model);
        let jz = |rho: &faer::Mat<c64>| {
            let flat: Vec<c64> = (0..d * d).map(|k| rho[(k / d, k % d)]).collect();
            b.obs[2].expect(&flat).re
        };
        if jz(&p) > jz(&q) {
            std::mem::swap(&mut p, &mut q);
        }
        let a_plus = tr_prod(&ss, &p) / tr_prod(&p, &p);
        let a_minus = tr_prod(&ss, &q) / tr_prod(&q, &q);
        let jz_plus = dicke::observe::moments_blocks(&m.plus).mean[2];
        let jz_minus = dicke::observe::moments_blocks(&m.minus).mean[2];
        eprintln!(
            "Omega = {drive}: lambda_1 = {:.6}, a+ = {a_plus:.6} ({:.6}), a- = {a_minus:.6} ({:.6})",
            m.lambda1.re, m.a_plus, m.a_minus
        );
        for (x, y, what) in [
            (a_plus, m.a_plus, "a_+"),
            (a_minus, m.a_minus, "a_-"),
            (jz(&p), jz_plus, "<Jz>_+"),
            (jz(&q), jz_minus, "<Jz>_-"),
            (
                jz(&ss),
                dicke::observe::moments_blocks(&m.steady).mean[2],
                "<Jz>_ss",
            ),
        ] {
            assert!(
                (x - y).abs() < 1e-8,
                "Omega = {drive}, {what}: 2^N {x} vs blocks {y}"
            );
        }
    }
}

/// Seed 000 at N = 18 (gamma_1D = 10 gamma_F, gamma = gamma_F + gamma_1D = 1, the bistable
/// window of Fig. 3): a_+ + a_- = 1 up to the metastability's separation of time scales,
/// |a_+ + a_- - 1| <= |lambda_1 / lambda_2| (the decomposition's error is of that order,
/// Macieszczak et al. 2016; measured 0.076 and 0.069 against 0.157 and 0.18); the rates are
/// |lambda_1| a_-+; rho_+ (lower <Jz>) lies below rho_ss and rho_-, is closer to the CRSS than
/// rho_ss, and its j = N/2 part is the CRSS to 1e-3 (Fig. 3c). At x = 0.70 the two-state
/// picture fails at this N (a_+ + a_- = 1.36).
#[test]
fn seed000_weights_sum_to_one_and_match_the_paper_in_block_traces() {
    let (g1d, gf) = (10.0 / 11.0, 1.0 / 11.0);
    let n = 18;
    let omega_c = (n as f64 - 1.0) * g1d / 4.0;
    for x in [0.73, 0.76] {
        let model = Model {
            n,
            drive: 2.0 * x * omega_c,
            gamma_coll: g1d,
            gamma_down: gf,
            ..Model::default()
        };
        let m = decompose(&model, Space::Blocks).unwrap();
        let l2 = m.lambda2.unwrap();
        let sep = (m.lambda1.re / l2.re).abs();
        let sum = m.a_plus + m.a_minus;
        let psi = dicke::state::pure::crss(n, model.drive, g1d);
        let fid = dicke::observe::fidelity_blocks(&m.plus, &psi);
        eprintln!(
            "x = {x}: lambda_1 = {:.6}, lambda_2 = {:.6}, a+ = {:.4}, a- = {:.4}, sum - 1 = {:.4}, \
             fidelity(rho_+) = {fid:.4}, pm distance {:.3}",
            m.lambda1.re,
            l2.re,
            m.a_plus,
            m.a_minus,
            sum - 1.0,
            m.pm_distance
        );
        assert!(
            (sum - 1.0).abs() <= sep,
            "x = {x}: a+ + a- = {sum}, |lambda1/lambda2| = {sep}"
        );
        assert_eq!(m.rate_plus, m.lambda1.re.abs() * m.a_minus);
        let fid_ss = dicke::observe::fidelity_blocks(&m.steady, &psi);
        assert!(
            fid > fid_ss,
            "x = {x}: CRSS fidelity of rho_+ {fid} <= that of rho_ss {fid_ss}"
        );
        // Fig. 3c: rho_+'s j = N/2 part is the CRSS (measured 0.9997 at 0.73, 0.9994 at 0.76);
        // the rest of rho_+ (28 % / 36 %) lies in j < N/2, which the CRSS cannot overlap.
        let top = m.plus.block_trace(0).re;
        assert!(
            fid / top > 0.999,
            "x = {x}: fidelity of rho_+'s j = N/2 part {}",
            fid / top
        );
        if x == 0.73 {
            // The paper's weights (quoted to one digit) are the block-trace ones (module doc of
            // solver::metastable): within half its last digit.
            assert!((m.a_plus_blocks - 0.4).abs() < 0.05, "{}", m.a_plus_blocks);
            assert!((m.a_minus_blocks - 0.5).abs() < 0.05, "{}", m.a_minus_blocks);
        }
        let jz = |s| dicke::observe::moments_blocks(s).mean[2];
        assert!(jz(&m.plus) < jz(&m.steady) && jz(&m.steady) < jz(&m.minus));
    }
}

/// `kind = "metastable"` writes metastable.csv (ss, plus, minus with weight and rate_out),
/// pm.csv (the mixture) and the figure; a scan with mode = "metastable" has the same rows per
/// point; a complex slowest mode is refused by name.
#[test]
fn metastable_task_files_and_scan() {
    let single = r#"
title = "metastable"
[variables]
x = 0.73
[model]
N = 10
Gamma = 1.0
gamma_down = 0.2
Omega = "x * 5"
[task]
kind = "metastable"
[observables]
columns = ["N_eff", "fidelity"]
[observables.fidelity]
state = "crss"
"#;
    let o = common::run_scenario(common::Toml::Text(single), &["--backend", "cpu"]);
    assert!(o.ok, "{}", o.stderr);
    let text = std::fs::read_to_string(o.path("metastable.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "state,Jx,Jy,Jz,xi2,J2,N_eff,fidelity,weight,rate_out");
    assert!(lines[1].starts_with("ss,") && lines[2].starts_with("plus,") && lines[3].starts_with("minus,"));
    assert!(lines[1].ends_with(",1,NaN"));
    let (h, pm) = o.csv("pm.csv");
    assert_eq!(h, ["m", "ss", "plus", "minus", "mixture"]);
    assert_eq!(pm.len(), 11);
    for c in 1..4 {
        let s: f64 = pm.iter().map(|r| r[c]).sum();
        assert!((s - 1.0).abs() < 1e-10, "P_m of column {c} sums to {s}");
    }
    o.assert_png("metastable.png");
    let scan = single.replace(
        "kind = \"metastable\"",
        "kind = \"scan\"\nmode = \"metastable\"\nvariable = \"x\"\nvalues = [0.5, 0.73]",
    );
    let s = common::run_scenario(common::Toml::Text(&scan), &["--backend", "cpu"]);
    assert!(s.ok, "{}", s.stderr);
    let scan_text = std::fs::read_to_string(s.path("metastable.csv")).unwrap();
    let scan_lines: Vec<&str> = scan_text.lines().collect();
    assert_eq!(scan_lines.len(), 7);
    for k in 1..4 {
        assert_eq!(scan_lines[3 + k], format!("7.3e-1,3.65e0,{}", lines[k]));
    }
    let (oh, _) = s.csv("observables.csv");
    assert_eq!(oh[..3], ["x", "Omega", "lambda1"]);
    s.assert_png("metastable.png");
    // Single-atom decay and a level splitting, no drive: the slowest mode is a coherence,
    // lambda = -gamma/2 +- i omega0.
    let osc =
        "title = \"osc\"\n[model]\nN = 2\nomega0 = 5.0\ngamma_down = 1.0\n[task]\nkind = \"metastable\"\n";
    let e = common::run_scenario(common::Toml::Text(osc), &["--backend", "cpu"]);
    assert!(!e.ok);
    assert!(e.stderr.contains("oscillatory"), "{}", e.stderr);
}
