//! Two-time correlations by the quantum regression theorem (`solver::correlation`,
//! `kind = "correlation"`): the equal-time limit, the exact decay of C_zz at the pumping
//! model's critical point against the Liouvillian gap, the brute-force 2^N Lindbladian, and
//! the scenario's errors.

#[path = "common/brute.rs"]
mod brute;
mod common;
#[path = "common/dense.rs"]
mod dense;

use brute::{Brute, Rng, Sp, random_model};
use common::{Toml, run_scenario};
use dicke::analysis::decay;
use dicke::c64;
use dicke::model::Model;
use dicke::solver::correlation::{self, Op, PiOperator};
use dicke::solver::spectrum::{self, Space, SpectrumOptions};
use dicke::state::pure;

fn pumping(n: usize, w: f64) -> Model {
    Model {
        n,
        gamma_coll: 1.0,
        pump_coll: w,
        ..Model::default()
    }
}

fn taus(end: f64, num: usize) -> Vec<f64> {
    (0..num).map(|k| end * k as f64 / (num - 1) as f64).collect()
}

/// (a) C_zz(0) = Var(Jz) of the steady state; at w = Gamma the thermal state is uniform over
/// m and Var(Jz) = N(N+2)/12 (PHYSICS.md sec. 6).
#[test]
fn equal_time_correlation_is_the_variance() {
    for n in [10, 100] {
        let model = pumping(n, 1.0);
        let rho = correlation::steady_state(&model).unwrap();
        let opts = correlation::ode_options(1e-10, 1e-12, 1_000_000);
        let c = correlation::correlation(&model, &rho, Op::Jz, Op::Jz, &[0.0], true, &opts).unwrap();
        let var = (n * (n + 2)) as f64 / 12.0;
        let err = (c.c[0].re - var).abs() / var;
        eprintln!(
            "N = {n}: C_zz(0) = {} vs N(N+2)/12 = {var}, rel {err:.1e}",
            c.c[0].re
        );
        assert!(err < 1e-10 && c.c[0].im.abs() < 1e-10, "{:?}", c.c[0]);
    }
}

/// The smallest |Re lambda| of the population sector (q = 0) of the pumping model.
fn population_gap(model: &Model) -> f64 {
    let sp = spectrum::eigenvalues(
        model,
        Space::Collective,
        &SpectrumOptions {
            k: 4,
            sector: Some(0),
            ..Default::default()
        },
    )
    .unwrap();
    sp.pairs
        .iter()
        .map(|p| p.value.re.abs())
        .filter(|r| *r > 1e-9)
        .fold(f64::INFINITY, f64::min)
}

/// (b) Pumping model N = 100: the fitted decay rate of C_zz(tau) equals the population
/// sector's gap within the fit's error (at w = Gamma both are 2 Gamma: Jz is an exact left
/// eigenvector of L there), and beside it seed 004's estimate lambda(w).
#[test]
fn czz_decays_with_the_population_gap() {
    for (w, tau_end) in [(1.0, 6.0), (0.97, 4.0)] {
        let model = pumping(100, w);
        let rho = correlation::steady_state(&model).unwrap();
        let atol = 1e-12;
        let opts = correlation::ode_options(1e-10, atol, 10_000_000);
        let t = taus(tau_end, 121);
        let c = correlation::correlation(&model, &rho, Op::Jz, Op::Jz, &t, true, &opts).unwrap();
        let re: Vec<f64> = c.c.iter().map(|z| z.re).collect();
        let fit = decay::fit(&t, &re, atol * re[0].abs().max(1.0)).unwrap();
        let gap = population_gap(&model);
        let estimate = correlation::pumping_rate_estimate(100, 1.0, w);
        eprintln!(
            "w = {w}: fitted {} +- {:.1e}, population gap {gap}, seed-004 estimate {estimate}",
            fit.lambda, fit.lambda_err
        );
        assert!(
            (fit.lambda - gap).abs() <= fit.lambda_err.max(1e-9 * gap) * 2.0,
            "w = {w}: {} +- {} vs {gap}",
            fit.lambda,
            fit.lambda_err
        );
    }
}

/// The 2^N operator of `op` from the brute-force builder's Jx, Jy, Jz.
fn brute_op(b: &Brute, op: Op) -> Sp {
    let i = c64::new(0.0, 1.0);
    let one = c64::new(1.0, 0.0);
    match op {
        Op::Jx => b.obs[0].clone(),
        Op::Jy => b.obs[1].clone(),
        Op::Jz => b.obs[2].clone(),
        Op::Jp => Sp::lin(&[(one, &b.obs[0]), (i, &b.obs[1])]),
        Op::Jm => Sp::lin(&[(one, &b.obs[0]), (-i, &b.obs[1])]),
    }
}

/// C(tau) of the dense 2^N Lindbladian from rho(t) (`rho`), rho(t) evolved alongside for
/// <A(t+tau)>: (C, <A(t+tau)B(t)>) at tau = k dtau.
fn brute_correlation(
    model: &Model,
    rho: &[c64],
    a: Op,
    b: Op,
    dtau: f64,
    num: usize,
) -> (Vec<c64>, Vec<c64>) {
    let bf = brute::brute(model);
    let l = brute::matrix(model);
    let e = dense::expm(&l, dtau);
    let (ao, bo) = (brute_op(&bf, a), brute_op(&bf, b));
    let b_mean = bo.expect(rho);
    let mut x = vec![c64::new(0.0, 0.0); rho.len()];
    bo.left_acc(c64::new(1.0, 0.0), rho, &mut x);
    let mut r = rho.to_vec();
    let (mut c, mut ab) = (Vec::new(), Vec::new());
    for _ in 0..num {
        let (xab, am) = (ao.expect(&x), ao.expect(&r));
        ab.push(xab);
        c.push(xab - am * b_mean);
        x = dense::apply(&e, &x);
        r = dense::apply(&e, &r);
    }
    (c, ab)
}

fn worst(a: &[c64], b: &[c64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).norm()).fold(0.0, f64::max)
}

const PAIRS: [(Op, Op); 4] = [
    (Op::Jz, Op::Jz),
    (Op::Jp, Op::Jm),
    (Op::Jx, Op::Jy),
    (Op::Jm, Op::Jz),
];

/// (c) Against the 2^N Lindbladian (every term of the model on at random rates, N = 3 and 4):
/// the steady-state correlations of the blocks solver, and a correlation at a time t after a
/// coherent state (rho(t) evolved too), to 1e-8.
#[test]
fn blocks_correlations_match_the_2n_lindbladian() {
    let mut rng = Rng(0xC0_22E1);
    for n in [3, 4] {
        let model = random_model(n, &mut rng);
        let l = brute::matrix(&model);
        let d = 1usize << n;
        let rho_full = dense::steady_state(&l, d);
        let rho = correlation::steady_state(&model).unwrap();
        let opts = correlation::ode_options(1e-11, 1e-13, 10_000_000);
        let (dtau, num) = (0.05, 41);
        let t = taus(dtau * (num - 1) as f64, num);
        for (a, b) in PAIRS {
            let ours = correlation::correlation(&model, &rho, a, b, &t, true, &opts).unwrap();
            let (c, ab) = brute_correlation(&model, &rho_full, a, b, dtau, num);
            let err = worst(&ours.c, &c).max(worst(&ours.ab, &ab));
            eprintln!(
                "N = {n}: <{}(tau) {}> steady state, max error {err:.1e}",
                a.name(),
                b.name()
            );
            assert!(err < 1e-8, "N = {n} {a:?} {b:?}: {err:e}");
        }
        // At t = 0.3 after a coherent state (not stationary).
        let psi0 = pure::coherent(n, 1.1, 0.4);
        let at = correlation::state_at(&model, &psi0, 0.3, &opts).unwrap();
        let full0 = brute::embed(n, &psi0);
        let rho0: Vec<c64> = (0..d * d).map(|k| full0[k / d] * full0[k % d].conj()).collect();
        let rho_t = dense::apply(&dense::expm(&l, 0.3), &rho0);
        let ours = correlation::correlation(&model, &at, Op::Jp, Op::Jz, &t, false, &opts).unwrap();
        let (c, ab) = brute_correlation(&model, &rho_t, Op::Jp, Op::Jz, dtau, num);
        let err = worst(&ours.c, &c).max(worst(&ours.ab, &ab));
        eprintln!("N = {n}: <J+(t+tau) Jz(t)> at t = 0.3, max error {err:.1e}");
        assert!(err < 1e-8, "N = {n} at t: {err:e}");
    }
}

/// (c') The collective solver's path (full storage of the non-Hermitian Y, the drive phase's
/// gauge) against the 2^N Lindbladian acting on the embedded symmetric-subspace state, in the
/// steady state and at a time t after a coherent state.
#[test]
fn collective_correlations_match_the_2n_lindbladian() {
    let mut rng = Rng(0xC0_11EC);
    for n in [3, 4] {
        let model = Model {
            gamma_down: 0.0,
            gamma_up: 0.0,
            gamma_phi: 0.0,
            ..random_model(n, &mut rng)
        };
        let rho = correlation::steady_state(&model).unwrap();
        let PiOperator::Sym(sym) = &rho else {
            panic!("collective model gave blocks")
        };
        let d = 1usize << n;
        let basis: Vec<Vec<c64>> = (0..=n)
            .map(|k| {
                let mut e = vec![c64::new(0.0, 0.0); n + 1];
                e[k] = c64::new(1.0, 0.0);
                brute::embed(n, &e)
            })
            .collect();
        let mut full = vec![c64::new(0.0, 0.0); d * d];
        for (k, bk) in basis.iter().enumerate() {
            for (q, bq) in basis.iter().enumerate() {
                let v = sym.get(k, q);
                for x in 0..d {
                    for y in 0..d {
                        full[x * d + y] += v * bk[x] * bq[y].conj();
                    }
                }
            }
        }
        let opts = correlation::ode_options(1e-11, 1e-13, 10_000_000);
        let (dtau, num) = (0.05, 41);
        let t = taus(dtau * (num - 1) as f64, num);
        for (a, b) in PAIRS {
            let ours = correlation::correlation(&model, &rho, a, b, &t, true, &opts).unwrap();
            let (c, ab) = brute_correlation(&model, &full, a, b, dtau, num);
            let err = worst(&ours.c, &c).max(worst(&ours.ab, &ab));
            eprintln!(
                "collective N = {n}: <{}(tau) {}>, max error {err:.1e}",
                a.name(),
                b.name()
            );
            assert!(err < 1e-8, "N = {n} {a:?} {b:?}: {err:e}");
        }
        // At t = 0.3 after a coherent state: rho(t) from the collective solver's evolution.
        let psi0 = pure::coherent(n, 0.7, -0.5);
        let at = correlation::state_at(&model, &psi0, 0.3, &opts).unwrap();
        let full0 = brute::embed(n, &psi0);
        let rho0: Vec<c64> = (0..d * d).map(|k| full0[k / d] * full0[k % d].conj()).collect();
        let rho_t = dense::apply(&dense::expm(&brute::matrix(&model), 0.3), &rho0);
        let ours = correlation::correlation(&model, &at, Op::Jx, Op::Jm, &t, false, &opts).unwrap();
        let (c, ab) = brute_correlation(&model, &rho_t, Op::Jx, Op::Jm, dtau, num);
        let err = worst(&ours.c, &c).max(worst(&ours.ab, &ab));
        eprintln!("collective N = {n}: <Jx(t+tau) J-(t)> at t = 0.3, max error {err:.1e}");
        assert!(err < 1e-8, "collective N = {n} at t: {err:e}");
    }
}

const PUMPING: &str = "[model]\nN = 10\nGamma = 1\nw = 1\n[task]\nkind = \"correlation\"\n";

/// The task end to end at N = 10, w = Gamma: the columns, C(0) = N(N+2)/12 = 10, the fitted
/// rate 2 Gamma beside seed 004's estimate (2 Gamma there), and the spectrum's file.
#[test]
fn correlation_task_writes_its_files() {
    let out = run_scenario(
        Toml::Text(&format!(
            "{PUMPING}tau_end = 6\nn_tau = 241\nspectrum = true\nn_omega = 11\n"
        )),
        &[],
    );
    out.assert_ok();
    let (header, rows) = out.csv("correlation.csv");
    assert_eq!(header, ["tau", "C_re", "C_im", "AB_re", "AB_im"]);
    assert_eq!(rows.len(), 241);
    assert!((rows[0][1] - 10.0).abs() < 1e-10, "{:?}", rows[0]);
    let r = out.result()["results"].clone();
    let (rate, err) = (
        r["relaxation_rate"].as_f64().unwrap(),
        r["relaxation_rate_err"].as_f64().unwrap(),
    );
    assert!((rate - 2.0).abs() <= 2.0 * err.max(1e-9), "{rate} +- {err}");
    assert_eq!(r["rate_estimate"].as_f64(), Some(2.0));
    let (sh, srows) = out.csv("correlation_spectrum.csv");
    assert_eq!(sh, ["omega", "S"]);
    assert_eq!(srows.len(), 11);
    // S(0) = 2 Var / (2 Gamma) for C = Var e^{-2 Gamma tau} (trapezoid, dtau = 0.025).
    assert!((srows[5][1] - 10.0).abs() < 0.01, "{:?}", srows[5]);
    out.assert_png("correlation.png");
}

/// (d) Bad input names the field: an unknown operator, a negative tau_end, a spectrum of a
/// correlation with a != b^dag, a field of another kind, correlation fields on another kind,
/// a time `at` without [initial], delays out of order, a spectrum too large to transform.
#[test]
fn correlation_errors_name_the_field() {
    let cases: [(&str, &[&str]); 7] = [
        ("a = \"Jq\"\ntau_end = 1\n", &["task.a", "\"Jq\"", "Jx"]),
        ("tau_end = -1\n", &["task.tau_end", "-1", "> 0"]),
        (
            "tau_end = 1\nb = \"Jx\"\nspectrum = true\n",
            &["task.spectrum", "a = b^dag"],
        ),
        ("tau_end = 1\nk = 3\n", &["task.k", "kind = \"correlation\""]),
        ("tau_end = 1\nat = 0.5\n", &["initial", "correlation"]),
        ("taus = [0, 0.5, 0.2]\n", &["task.taus", "increasing"]),
        (
            "tau_end = 1\nn_tau = 100001\nspectrum = true\nn_omega = 100000\n",
            &["task.n_omega", "1e9"],
        ),
    ];
    for (extra, needles) in cases {
        let out = run_scenario(Toml::Text(&format!("{PUMPING}{extra}")), &[]);
        assert!(!out.ok, "{extra} was accepted");
        for n in needles {
            assert!(out.stderr.contains(n), "{extra}: `{n}` not in {}", out.stderr);
        }
    }
    let other = "[model]\nN = 4\nGamma = 1\n[task]\nkind = \"steady_state\"\ntau_end = 1\n";
    let out = run_scenario(Toml::Text(other), &[]);
    assert!(!out.ok && out.stderr.contains("task.tau_end"), "{}", out.stderr);
}

/// The shipped scenario at one pinned point (and fewer atoms, for time): the fitted rate is
/// the population gap, 2 Gamma at w = Gamma.
#[test]
fn pumping_relaxation_scenario_runs() {
    let out = run_scenario(
        Toml::File("scenarios/pumping_relaxation.toml"),
        &["--set", "r=1", "--set", "N=20", "--set", "task.n_tau=121"],
    );
    out.assert_ok();
    let r = out.result()["results"].clone();
    let rate = r["relaxation_rate"].as_f64().unwrap();
    assert!((rate - 2.0).abs() < 1e-6, "{r}");
    assert!((r["population_gap"].as_f64().unwrap() - 2.0).abs() < 1e-9, "{r}");
    let (h, rows) = out.csv("relaxation.csv");
    assert_eq!(h[0], "r");
    assert_eq!(rows.len(), 1);
}

/// The quantum regression theorem against trajectories' two-time averages (issue 15). Under
/// Gamma D[J-] + w D[J+] without a Hamiltonian, a trajectory that starts in a Dicke state stays
/// in one (the jumps move m by one, the no-jump evolution is diagonal), so its record of <Jz>
/// is the classical jump process m(t) whose two-time average E[m(t+tau) m(t)] is what the QRT
/// gives for <Jz(t+tau) Jz(t)>. From |m = -3>, N = 8, t = 0.3: C(t, tau) and <Jz(t+tau)Jz(t)>
/// at every tau within 4 standard errors of the 4000-trajectory ensemble (the ensemble's own
/// SE of the product estimator; f64 trajectories, whose step error ~1e-7 is far below it).
#[test]
fn regression_matches_trajectory_two_time_averages() {
    use dicke::solver::ode::OdeOptions;
    use dicke::solver::trajectory::{self, Plan, TrajectoryOptions, record_observables};
    let (n, t0) = (8usize, 0.3);
    let model = Model {
        n,
        gamma_coll: 1.0,
        pump_coll: 0.7,
        ..Model::default()
    };
    let psi0 = dicke::state::pure::dicke(n, -3.0).unwrap();
    let taus: Vec<f64> = (0..9).map(|k| 0.1 * k as f64).collect();
    let times: Vec<f64> = taus.iter().map(|tau| t0 + tau).collect();
    let all_times: Vec<f64> = std::iter::once(0.0).chain(times.iter().copied()).collect();
    let ntraj = 4000u64;
    let opts = TrajectoryOptions {
        ntraj,
        precision: dicke::precision::Precision::F64,
        seed: 11,
        ..Default::default()
    };
    let plan = Plan::new(&model, &psi0, &all_times, &opts).unwrap();
    let rec = trajectory::cpu_records(&plan, 0, ntraj);
    let (ns, len) = (all_times.len(), trajectory::RECORD_LEN);
    let jz = |k: usize, s: usize| record_observables(&rec[(k * ns + s) * len..(k * ns + s + 1) * len])[2];
    let ode = OdeOptions {
        rtol: 1e-10,
        atol: 1e-12,
        ..Default::default()
    };
    let rho_t = correlation::state_at(&model, &psi0, t0, &ode).unwrap();
    let qrt = correlation::correlation(&model, &rho_t, Op::Jz, Op::Jz, &taus, false, &ode).unwrap();
    let nt = ntraj as f64;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / nt;
    let se = |v: &[f64]| {
        let m = mean(v);
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (nt - 1.0) / nt).sqrt()
    };
    for (i, tau) in taus.iter().enumerate() {
        // Jz at t + tau (save i + 1) and at t (save 1), per trajectory.
        let a: Vec<f64> = (0..ntraj as usize).map(|k| jz(k, i + 1)).collect();
        let b: Vec<f64> = (0..ntraj as usize).map(|k| jz(k, 1)).collect();
        let ab: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
        let (ma, mb) = (mean(&a), mean(&b));
        assert!(qrt.ab[i].im.abs() < 1e-9 && qrt.c[i].im.abs() < 1e-9);
        let (got, want, err) = (mean(&ab), qrt.ab[i].re, se(&ab));
        assert!(
            (got - want).abs() < 4.0 * err,
            "tau = {tau}: <Jz Jz> {got} +- {err}, QRT {want}"
        );
        // C = mean(ab) - mean(a) mean(b): its SE by the delta method, from the per-trajectory
        // influence a b - mb a - ma b.
        let infl: Vec<f64> = (0..a.len()).map(|k| ab[k] - mb * a[k] - ma * b[k]).collect();
        let (c_got, c_want, c_err) = (got - ma * mb, qrt.c[i].re, se(&infl));
        assert!(
            (c_got - c_want).abs() < 4.0 * c_err,
            "tau = {tau}: C {c_got} +- {c_err}, QRT {c_want}"
        );
    }
}
