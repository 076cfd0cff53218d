//! Fisher information of the steady state (`solver::fisher`, `kind = "fisher"`): seed 004's
//! thermal state of the pumping model (F_C = F_Q = Var Jz / w^2, N(N+2)/12 at w = Gamma = 1),
//! the derivative against the thermal state's analytic d<Jz>/dw, and a driven model with
//! single-atom rates against the brute-force 2^N Lindbladian.

#[path = "common/brute.rs"]
mod brute;
mod common;
#[path = "common/dense.rs"]
mod dense;

use brute::{Rng, random_model};
use common::{Toml, run_scenario};
use dicke::c64;
use dicke::model::Model;
use dicke::solver::correlation::Op;
use dicke::solver::fisher;

fn pumping(n: usize, w: f64) -> Model {
    Model {
        n,
        gamma_coll: 1.0,
        pump_coll: w,
        ..Model::default()
    }
}

/// Mean and variance of Jz in the thermal state p_m ~ (w/Gamma)^m (Gamma = 1), by direct sums.
fn thermal(n: usize, w: f64) -> (f64, f64) {
    let j = n as f64 / 2.0;
    let ms: Vec<f64> = (0..=n).map(|k| k as f64 - j).collect();
    // Weights relative to the largest, so that nothing overflows.
    let top = ms.iter().map(|m| m * w.ln()).fold(f64::NEG_INFINITY, f64::max);
    let p: Vec<f64> = ms.iter().map(|m| (m * w.ln() - top).exp()).collect();
    let z: f64 = p.iter().sum();
    let mean = ms.iter().zip(&p).map(|(m, q)| m * q).sum::<f64>() / z;
    let var = ms
        .iter()
        .zip(&p)
        .map(|(m, q)| (m - mean).powi(2) * q)
        .sum::<f64>()
        / z;
    (mean, var)
}

/// The tolerance of a Fisher information from the derivative's error estimate: F is quadratic
/// in d rho, so its relative error is about twice the derivative's; a factor 10 on top, and
/// 1e-9 for the steady states' rounding.
fn tolerance(f: &fisher::Fisher) -> f64 {
    (20.0 * f.derivative_error).max(1e-9)
}

/// Seed 004 App. D: at w = Gamma = 1, F_C = F_Q = Var Jz / w^2 = N(N+2)/12 and the
/// error-propagation sensitivity of Jz saturates it, delta w = sqrt(12) Gamma / sqrt(N(N+2)).
#[test]
fn pumping_model_fisher_is_the_variance_at_criticality() {
    for n in [10, 50, 100] {
        let f = fisher::fisher(&pumping(n, 1.0), "w", Op::Jz, None, true).unwrap();
        let exact = (n * (n + 2)) as f64 / 12.0;
        let fq = f.f_quantum.unwrap();
        let (ec, eq) = ((f.f_classical - exact).abs() / exact, (fq - exact).abs() / exact);
        let dw = 12f64.sqrt() / ((n * (n + 2)) as f64).sqrt();
        let ed = (f.delta_error_propagation - dw).abs() / dw;
        eprintln!(
            "N = {n}: F_C = {} F_Q = {fq} vs N(N+2)/12 = {exact} (rel {ec:.1e}, {eq:.1e}); delta w = {} vs {dw} \
             (rel {ed:.1e}); derivative error {:.1e}, {} solves, h0 = {}",
            f.f_classical, f.delta_error_propagation, f.derivative_error, f.solves, f.step
        );
        let tol = tolerance(&f);
        assert!(f.diagonal, "the thermal state is diagonal");
        assert!(
            ec < tol && eq < tol && ed < tol,
            "N = {n}: {ec:e} {eq:e} {ed:e} (tol {tol:e})"
        );
    }
}

/// Away from criticality (w = 0.8 Gamma): d<Jz>/dw = Var(Jz)/w (beta = -ln w, d<Jz>/dbeta =
/// -Var Jz), and F = Var Jz / w^2, from the thermal distribution by direct sums.
#[test]
fn derivative_matches_the_thermal_state() {
    for n in [10, 100] {
        let w = 0.8;
        let f = fisher::fisher(&pumping(n, w), "w", Op::Jz, None, true).unwrap();
        let (mean, var) = thermal(n, w);
        let (ed, ef) = (
            (f.d_mean - var / w).abs() / (var / w),
            (f.f_classical - var / (w * w)).abs() / (var / (w * w)),
        );
        eprintln!(
            "N = {n}, w = {w}: <Jz> = {} ({mean}), d<Jz>/dw = {} vs {} (rel {ed:.1e}), F_C rel {ef:.1e}, \
             derivative error {:.1e}",
            f.mean,
            f.d_mean,
            var / w,
            f.derivative_error
        );
        assert!((f.mean - mean).abs() < 1e-10 * mean.abs());
        let tol = tolerance(&f);
        assert!(ed < tol && ef < tol, "N = {n}: {ed:e} {ef:e} (tol {tol:e})");
    }
}

/// P_m of a 2^N density matrix (m = number of atoms up - N/2).
fn pm_full(n: usize, rho: &[c64]) -> Vec<f64> {
    let d = 1usize << n;
    let mut p = vec![0.0; n + 1];
    for x in 0..d {
        p[x.count_ones() as usize] += rho[x * d + x].re;
    }
    p
}

/// (F_C, F_Q) of the 2^N steady state by brute force: the dense Lindbladian's null vector at
/// p +- h, p +- 2h (fourth-order central difference), F_Q from the eigendecomposition of the
/// 2^N x 2^N rho.
fn brute_fisher(model: &Model, name: &str) -> (f64, f64) {
    let n = model.n;
    let d = 1usize << n;
    let p = model.get(name).unwrap();
    let at = |v: f64| {
        let m = Model::from_values(
            model
                .values()
                .into_iter()
                .map(|(k, x)| (k, if k == name { v } else { x })),
        )
        .unwrap();
        dense::steady_state(&brute::matrix(&m), d)
    };
    let h = 1e-3 * p;
    let (a, b, c, e) = (at(p + 2.0 * h), at(p + h), at(p - h), at(p - 2.0 * h));
    let drho: Vec<c64> = (0..d * d)
        .map(|k| (-a[k] + 8.0 * b[k] - 8.0 * c[k] + e[k]) / (12.0 * h))
        .collect();
    let rho = at(p);
    let (pm, dpm) = (pm_full(n, &rho), pm_full(n, &drho));
    let fc = pm
        .iter()
        .zip(&dpm)
        .filter(|(x, _)| **x > 0.0)
        .map(|(x, dx)| dx * dx / x)
        .sum();
    let herm = |v: &[c64]| faer::Mat::<c64>::from_fn(d, d, |r, c| 0.5 * (v[r * d + c] + v[c * d + r].conj()));
    let eig = herm(&rho).self_adjoint_eigen(faer::Side::Lower).unwrap();
    let (u, s) = (eig.U(), eig.S());
    let rot = u.adjoint() * herm(&drho) * u;
    let mut fq = 0.0;
    for k in 0..d {
        for l in 0..d {
            let sum = s[k].re + s[l].re;
            if sum > fisher::EIGEN_CUTOFF {
                fq += 2.0 * rot[(k, l)].norm_sqr() / sum;
            }
        }
    }
    (fc, fq)
}

/// A driven model with every term on (random rates, N = 2..4): the steady state has
/// coherences, F_Q >= F_C, and both agree with the 2^N brute force (the block formula
/// F_Q = sum_j F_Q(R_j, dR_j) against the eigendecomposition of the full 2^N rho).
#[test]
fn driven_model_matches_the_2n_brute_force() {
    let mut rng = Rng(0xF15_4E12);
    for n in [2, 3, 4] {
        let model = random_model(n, &mut rng);
        for name in ["Omega", "gamma_down"] {
            let f = fisher::fisher(&model, name, Op::Jx, None, true).unwrap();
            let fq = f.f_quantum.unwrap();
            let (bc, bq) = brute_fisher(&model, name);
            let (ec, eq) = ((f.f_classical - bc).abs() / bc, (fq - bq).abs() / bq);
            eprintln!(
                "N = {n}, p = {name}: F_C = {} (brute {bc}, rel {ec:.1e}), F_Q = {fq} (brute {bq}, rel {eq:.1e}), \
                 derivative error {:.1e}",
                f.f_classical, f.derivative_error
            );
            assert!(!f.diagonal, "a driven steady state has coherences");
            assert!(
                fq >= f.f_classical * (1.0 - 1e-9),
                "F_Q {fq} < F_C {}",
                f.f_classical
            );
            // The brute force's own fourth-order difference is good to ~1e-9.
            let tol = tolerance(&f).max(1e-7);
            assert!(ec < tol && eq < tol, "N = {n} {name}: {ec:e} {eq:e}");
        }
    }
}

/// The task end to end: one row at w = Gamma with the thermal reference, and a scan over w.
#[test]
fn fisher_task_writes_its_files() {
    let base = "[model]\nN = 10\nGamma = 1\nw = 1\n[task]\nkind = \"fisher\"\nparameter = \"w\"\n";
    let out = run_scenario(Toml::Text(base), &[]);
    out.assert_ok();
    let (header, rows) = out.csv("fisher.csv");
    assert_eq!(
        header,
        [
            "w",
            "F_C",
            "F_Q",
            "delta_p_error_propagation",
            "dO_dp",
            "Var_O",
            "O_mean",
            "bound_C",
            "bound_Q",
            "derivative_error"
        ]
    );
    assert!(
        (rows[0][1] - 10.0).abs() < 1e-9 && (rows[0][2] - 10.0).abs() < 1e-9,
        "{:?}",
        rows[0]
    );
    let r = out.result()["results"].clone();
    assert!((r["F_thermal"].as_f64().unwrap() - 10.0).abs() < 1e-12, "{r}");
    let scan = run_scenario(
        Toml::File("scenarios/pumping_fisher.toml"),
        &["--set", "N=20", "--set", "task.num=5"],
    );
    scan.assert_ok();
    let (h, rows) = scan.csv("fisher.csv");
    assert_eq!((h[0].as_str(), h[1].as_str(), rows.len()), ("r", "w", 5));
    for row in &rows {
        let thermal = row[6] / row[1].powi(2);
        assert!((row[2] - thermal).abs() < 1e-8 * thermal, "{row:?}");
    }
    scan.assert_png("fisher.png");
}

/// Bad input names the field: N or an unknown name as the parameter, a non-Hermitian
/// observable, a missing parameter, integrator fields, and the F_Q memory refusal.
#[test]
fn fisher_errors_name_the_field() {
    let head = "[model]\nN = 10\nGamma = 1\nw = 1\n[task]\nkind = \"fisher\"\n";
    let cases: [(&str, &[&str]); 5] = [
        ("parameter = \"N\"\n", &["task.parameter", "\"N\"", "continuous"]),
        ("parameter = \"x\"\n", &["task.parameter", "\"x\""]),
        (
            "parameter = \"w\"\nobservable = \"J+\"\n",
            &["task.observable", "Hermitian"],
        ),
        ("observable = \"Jz\"\n", &["task.parameter", "missing"]),
        (
            "parameter = \"w\"\nrtol = 1e-6\n",
            &["task.rtol", "kind = \"fisher\""],
        ),
    ];
    for (extra, needles) in cases {
        let out = run_scenario(Toml::Text(&format!("{head}{extra}")), &[]);
        assert!(!out.ok, "{extra} was accepted");
        for n in needles {
            assert!(out.stderr.contains(n), "{extra}: `{n}` not in {}", out.stderr);
        }
    }
    let big = "[model]\nN = 3000\nGamma = 1\nw = 1\n[task]\nkind = \"fisher\"\nparameter = \"w\"\n";
    let out = common::run_scenario_env(Toml::Text(big), &[], &[("DICKE_MEMORY_LIMIT_MIB", "1000")]);
    assert!(!out.ok && out.stderr.contains("task.qfi"), "{}", out.stderr);
}
