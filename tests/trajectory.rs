//! Monte-Carlo wave-function trajectories (`solver::trajectory`, PHYSICS.md sec. 4 and 9):
//! ensembles against the exact master equation (`solver::master`) and a closed form, the GPU
//! kernel against its CPU twin trajectory by trajectory, and the independence of the results
//! from thread count and ensemble split.
//!
//! Statistical tolerances are k standard errors that the engine itself reports (sample std /
//! sqrt(ntraj)), with k = 4 as the issue asks. At seed 001's parameters the per-trajectory
//! distribution of <Jz> is heavy-tailed: ~98% of the trajectories sit within 0.3 of the median
//! while ~0.3% make large excursions (up to +36), so with 2000 trajectories the z statistic is
//! not Gaussian (measured worst |z| over the 21 saves: 3.7, 2.1, 2.8 for three seeds at
//! 2000-4000 trajectories; 1.5 at 20000, i.e. no bias at the 0.015 level). The deterministic
//! errors (Lawson RK4 at cfl 0.5: max |d<Jz>| = 0.018 for the Hamiltonian part alone, against SEs
//! of 0.02-0.8; jump-time quantisation h/65536; f32 rounding) are far below that.
//!
//! GPU tests use `backend::gpu::test_context`: without an adapter they print `SKIPPED: ...`
//! and return; with `DICKE_REQUIRE_GPU=1` (CI, lavapipe) a missing adapter fails them.

#[cfg(feature = "gpu")]
use dicke::backend::gpu::trajectory::{TrajectoryGpu, run_gpu};
#[cfg(feature = "gpu")]
use dicke::backend::gpu::{report_skip, test_context};
use dicke::c64;
use dicke::model::Model;
use dicke::observe::moments;
use dicke::solver::master;
use dicke::solver::ode::OdeOptions;
#[cfg_attr(not(feature = "gpu"), allow(unused_imports))]
use dicke::solver::trajectory::{
    self, EnsembleResult, OBS_NAMES, Plan, Precision, RECORD_LEN, TrajectoryOptions,
};
use dicke::state::{DensityMatrix, pure};
#[cfg(feature = "gpu")]
use std::sync::{Arc, OnceLock};

/// An ensemble runner on one backend (CPU twin or GPU).
type RunFn = dyn Fn(&Model, &[c64], &[f64], &TrajectoryOptions) -> EnsembleResult;

/// Seed 001's model (PHYSICS.md sec. 1): Gamma = 1, chi = 0.9375, Omega = u N/2.
fn seed001(n: usize, u: f64) -> Model {
    Model {
        n,
        gamma_coll: 1.0,
        chi: 0.9375,
        drive: u * n as f64 / 2.0,
        ..Default::default()
    }
}

fn linspace(t0: f64, t1: f64, k: usize) -> Vec<f64> {
    (0..k)
        .map(|i| t0 + (t1 - t0) * i as f64 / (k - 1) as f64)
        .collect()
}

/// The nine moments (OBS_NAMES[..9] order) of the exact master equation at `times`.
fn master_moments(model: &Model, psi0: &[c64], times: &[f64]) -> Vec<[f64; 9]> {
    let rho0 = DensityMatrix::from_pure(psi0);
    let mut out = vec![[0.0; 9]; times.len()];
    let opts = OdeOptions {
        rtol: 1e-10,
        atol: 1e-12,
        ..Default::default()
    };
    master::evolve(model, &rho0, times, &opts, &mut |i, _t, rho| {
        let m = moments(rho);
        out[i] = [
            m.mean[0],
            m.mean[1],
            m.mean[2],
            m.second[0][0],
            m.second[1][1],
            m.second[2][2],
            m.second[0][1],
            m.second[0][2],
            m.second[1][2],
        ];
    })
    .expect("master equation");
    out
}

/// Assert |mean - exact| <= k SE + floor for observable `k_obs` at every save; returns the
/// worst |z|. `floor` covers the deterministic rounding where the SE is 0 (t = 0).
fn assert_within_se(
    what: &str,
    ens: &EnsembleResult,
    k_obs: usize,
    exact: &[f64],
    k: f64,
    floor: f64,
) -> f64 {
    let mut worst: f64 = 0.0;
    for (t, &ex) in exact.iter().enumerate() {
        let (m, se) = (ens.mean[k_obs][t], ens.se[k_obs][t]);
        let d = (m - ex).abs();
        assert!(
            d <= k * se + floor,
            "{what}: {} at t = {}: ensemble {m} +- {se}, exact {ex} ({:.2} SE)",
            OBS_NAMES[k_obs],
            ens.times[t],
            d / se
        );
        if se > 0.0 {
            worst = worst.max(d / se);
        }
    }
    worst
}

/// The trajectory engine on the test context, built once per test binary.
#[cfg(feature = "gpu")]
fn engine(test: &str) -> Option<&'static TrajectoryGpu> {
    static ENGINE: OnceLock<Option<TrajectoryGpu>> = OnceLock::new();
    let ctx = test_context(test)?;
    ENGINE
        .get_or_init(|| Some(TrajectoryGpu::new(Arc::clone(&ctx)).expect("trajectory pipelines")))
        .as_ref()
}

/// Seed 001 at N = 100 from the south pole, 2000 trajectories, t in [0, 0.2] (21 saves): every
/// <Jz>(t) within 4 SE of the master equation, for 2 Omega/(N Gamma) = 1.48 and 2.09. Floor:
/// f32 rounding of <Jz> ~ 50, 1e-4.
fn seed001_against_master(what: &str, run: &RunFn) {
    let n = 100;
    let psi0 = pure::dicke(n, -(n as f64) / 2.0).unwrap();
    let times = linspace(0.0, 0.2, 21);
    for u in [1.48, 2.09] {
        let model = seed001(n, u);
        let exact: Vec<f64> = master_moments(&model, &psi0, &times)
            .iter()
            .map(|m| m[2])
            .collect();
        let opts = TrajectoryOptions {
            ntraj: 2000,
            seed: 1,
            ..Default::default()
        };
        let ens = run(&model, &psi0, &times, &opts);
        let worst = assert_within_se(&format!("{what} u = {u}"), &ens, 2, &exact, 4.0, 1e-4);
        eprintln!(
            "{what} u = {u}: worst |z| = {worst:.2}, {:.1} s ({:.0} trajectories/s, {})",
            ens.wall_s,
            ens.ntraj as f64 / ens.wall_s,
            ens.device
        );
    }
}

#[test]
fn cpu_ensemble_matches_master_equation_seed001() {
    seed001_against_master("cpu", &|m, p, t, o| {
        trajectory::run_cpu(m, p, t, o).expect("run_cpu")
    });
}

/// The same on the GPU (f32, one invocation per trajectory). On lavapipe (2-core EPYC) the two
/// parameter points take about 40 s and 52 s (50 and 39 trajectories/s).
#[test]
#[cfg(feature = "gpu")]
fn gpu_ensemble_matches_master_equation_seed001() {
    let Some(gpu) = engine("gpu_ensemble_matches_master_equation_seed001") else {
        return;
    };
    seed001_against_master("gpu", &|m, p, t, o| run_gpu(gpu, m, p, t, o).expect("run_gpu"));
}

/// Every collective channel (J-, J+, Jz) and every Hamiltonian term, N = 4 from a tilted
/// coherent state, 4000 trajectories, t in [0, 1.5]: all nine moments within 4 SE of the
/// master equation, and the mean jump count within 4 SE of the exact expectation
/// int_0^t tr(Gamma_op rho) dt (trapezoid on 601 master-equation points: error < 1e-4).
/// Floor 1e-5 (f64 rounding; SE = 0 at t = 0).
fn small_n_all_channels(what: &str, run: &RunFn) {
    let model = Model {
        n: 4,
        omega0: 0.8,
        drive: 2.3,
        phi: 0.4,
        chi: 0.5,
        chi_z: -0.3,
        gamma_coll: 1.0,
        pump_coll: 0.4,
        dephase_coll: 0.7,
        ..Default::default()
    };
    let psi0 = pure::coherent(4, 2.0, 0.3);
    let times = linspace(0.0, 1.5, 16);
    let exact = master_moments(&model, &psi0, &times);
    let opts = TrajectoryOptions {
        ntraj: 4000,
        seed: 7,
        precision: Precision::F64,
        ..Default::default()
    };
    let ens = run(&model, &psi0, &times, &opts);
    for k in 0..9 {
        let ex: Vec<f64> = exact.iter().map(|m| m[k]).collect();
        assert_within_se(what, &ens, k, &ex, 4.0, 1e-5);
    }
    // Expected jumps: d<n>/dt = tr(Gamma_op rho), Gamma_op = Gamma J+J- + w J-J+ + Gamma_phi Jz^2
    // = (Gamma + w)(Jx^2 + Jy^2) + (Gamma - w) Jz + Gamma_phi Jz^2 (J+J- = Jx^2 + Jy^2 + Jz).
    let fine = linspace(0.0, 1.5, 601);
    let rate: Vec<f64> = master_moments(&model, &psi0, &fine)
        .iter()
        .map(|m| {
            (model.gamma_coll + model.pump_coll) * (m[3] + m[4])
                + (model.gamma_coll - model.pump_coll) * m[2]
                + model.dephase_coll * m[5]
        })
        .collect();
    let dt = fine[1] - fine[0];
    let mut cum = vec![0.0];
    for w in rate.windows(2) {
        cum.push(cum.last().unwrap() + 0.5 * dt * (w[0] + w[1]));
    }
    let expected: Vec<f64> = (0..times.len()).map(|t| cum[40 * t]).collect();
    assert_within_se(what, &ens, 9, &expected, 4.0, 1e-4);
}

#[test]
fn cpu_small_n_all_channels_match_master() {
    small_n_all_channels("cpu", &|m, p, t, o| {
        trajectory::run_cpu(m, p, t, o).expect("run_cpu")
    });
}

#[test]
#[cfg(feature = "gpu")]
fn gpu_small_n_all_channels_match_master() {
    let Some(gpu) = engine("gpu_small_n_all_channels_match_master") else {
        return;
    };
    if !gpu.context().info().has_f64 {
        report_skip("gpu_small_n_all_channels_match_master: adapter has no SHADER_F64, running f32");
    }
    small_n_all_channels("gpu", &|m, p, t, o| {
        let mut o = o.clone();
        if !gpu.context().info().has_f64 {
            o.precision = Precision::F32;
        }
        run_gpu(gpu, m, p, t, &o).expect("run_gpu")
    });
}

/// A two-level atom (N = 1) decaying at Gamma = 1 from the excited state: <Jz>(t) =
/// -1/2 + e^{-Gamma t} exactly (and <Jx> = <Jy> = 0). 4000 trajectories, t in [0, 4]: within
/// 4 SE (floor 1e-6 for the f32 rounding of +-1/2 where the SE vanishes).
fn two_level_decay(what: &str, run: &RunFn) {
    let model = Model {
        n: 1,
        gamma_coll: 1.0,
        ..Default::default()
    };
    let psi0 = pure::dicke(1, 0.5).unwrap();
    let times = linspace(0.0, 4.0, 21);
    let opts = TrajectoryOptions {
        ntraj: 4000,
        seed: 3,
        ..Default::default()
    };
    let ens = run(&model, &psi0, &times, &opts);
    let exact: Vec<f64> = times.iter().map(|t| -0.5 + (-t).exp()).collect();
    assert_within_se(what, &ens, 2, &exact, 4.0, 1e-6);
    for k in [0, 1] {
        assert!(
            ens.mean[k].iter().all(|x| x.abs() < 1e-6),
            "{what}: {}",
            OBS_NAMES[k]
        );
    }
    // Each trajectory jumps exactly once, at an exponential time: <jumps> = 1 - e^{-t}.
    let jumps: Vec<f64> = times.iter().map(|t| 1.0 - (-t).exp()).collect();
    assert_within_se(what, &ens, 9, &jumps, 4.0, 1e-6);
}

#[test]
fn cpu_two_level_atom_decays_exponentially() {
    two_level_decay("cpu", &|m, p, t, o| {
        trajectory::run_cpu(m, p, t, o).expect("run_cpu")
    });
}

#[test]
#[cfg(feature = "gpu")]
fn gpu_two_level_atom_decays_exponentially() {
    let Some(gpu) = engine("gpu_two_level_atom_decays_exponentially") else {
        return;
    };
    two_level_decay("gpu", &|m, p, t, o| run_gpu(gpu, m, p, t, o).expect("run_gpu"));
}

/// GPU records against the CPU twin, trajectory by trajectory: seed 001 at N = 100, u = 2.09
/// (the busiest case: ~25 jumps per trajectory up to t = 0.02), 64 trajectories, 11 saves, for
/// every kernel variant (lanes 1: one invocation per trajectory; 8: a workgroup with the
/// vectors in storage, 13 levels per invocation; 128: a workgroup with the stage vector in
/// workgroup memory, one level per invocation) and both precisions. Every record number within `tol (1 + |value|)` and the jump
/// counts equal.
///
/// Bound: the twin mirrors every operation, so the difference is rounding that the dynamics
/// carries along: f32 eps 6e-8 per operation, ~150 steps and 25 renormalisations per
/// trajectory here; on lavapipe the workgroup mapping with one level per invocation agrees to
/// the last bit, the others to 1.5e-6 (f32) / 2e-15 (f64) here and 1.3e-5 / 9e-15 over the
/// full t = 0.2. tol = 5e-4 (f32) and
/// 1e-10 (f64) leave room for real GPUs (fused multiply-adds, approximate sqrt and division).
#[test]
#[cfg(feature = "gpu")]
fn gpu_matches_cpu_twin_per_trajectory() {
    let Some(gpu) = engine("gpu_matches_cpu_twin_per_trajectory") else {
        return;
    };
    let n = 100;
    let model = seed001(n, 2.09);
    let psi0 = pure::dicke(n, -(n as f64) / 2.0).unwrap();
    let times = linspace(0.0, 0.02, 11);
    let mut precisions = vec![(Precision::F32, 5e-4)];
    if gpu.context().info().has_f64 {
        precisions.push((Precision::F64, 1e-10));
    } else {
        report_skip("gpu_matches_cpu_twin_per_trajectory: adapter has no SHADER_F64, f32 only");
    }
    for (precision, tol) in precisions {
        for lanes in [1, 8, 128] {
            let opts = TrajectoryOptions {
                ntraj: 64,
                seed: 11,
                precision,
                lanes,
                ..Default::default()
            };
            let plan = Plan::new(&model, &psi0, &times, &opts).unwrap();
            let g = gpu.records(&plan).expect("gpu records");
            let c = trajectory::cpu_records(&plan, 0, 64);
            assert_eq!(g.len(), c.len());
            let mut worst: f64 = 0.0;
            let mut total_jumps = 0.0;
            for (k, (a, b)) in g.iter().zip(&c).enumerate() {
                let what = format!(
                    "{precision:?} lanes {lanes}: trajectory {} save {} slot {}",
                    k / (times.len() * RECORD_LEN),
                    (k / RECORD_LEN) % times.len(),
                    k % RECORD_LEN
                );
                if k % RECORD_LEN == 10 {
                    assert_eq!(a, b, "{what}: jump counts differ");
                    if (k / RECORD_LEN) % times.len() == times.len() - 1 {
                        total_jumps += b;
                    }
                } else {
                    let rel = (a - b).abs() / (1.0 + b.abs());
                    assert!(rel <= tol, "{what}: gpu {a} cpu {b} (relative {rel:e})");
                    worst = worst.max(rel);
                }
            }
            assert!(
                total_jumps > 64.0 * 10.0,
                "too few jumps to test anything: {total_jumps}"
            );
            report_skip(&format!(
                "gpu_matches_cpu_twin_per_trajectory {precision:?} lanes {lanes} ({:?}): max relative {worst:e}, {} jumps",
                gpu.variant(&plan),
                total_jumps
            ));
        }
    }
}

/// Splitting the ensemble (first_traj) or changing the dispatch size changes nothing: the GPU
/// records of 0..40 and 40..100 are those of 0..100, bit for bit.
#[test]
#[cfg(feature = "gpu")]
fn gpu_split_of_the_ensemble_does_not_change_the_records() {
    let Some(gpu) = engine("gpu_split_of_the_ensemble_does_not_change_the_records") else {
        return;
    };
    let model = seed001(20, 2.09);
    let psi0 = pure::dicke(20, -10.0).unwrap();
    let times = linspace(0.0, 0.5, 6);
    let opts = |first_traj, ntraj| TrajectoryOptions {
        ntraj,
        first_traj,
        seed: 5,
        ..Default::default()
    };
    let rec = |o: TrajectoryOptions| {
        gpu.records(&Plan::new(&model, &psi0, &times, &o).unwrap())
            .unwrap()
    };
    let whole = rec(opts(0, 100));
    let mut split = rec(opts(0, 40));
    split.extend(rec(opts(40, 60)));
    assert_eq!(whole, split);
}

/// The CPU ensemble is the same for any thread count and any split into runs: per-trajectory
/// records bit for bit, and the reduced means (reduction in trajectory order).
#[test]
fn cpu_results_do_not_depend_on_threads_or_split() {
    let model = seed001(30, 2.09);
    let psi0 = pure::dicke(30, -15.0).unwrap();
    let times = linspace(0.0, 0.3, 7);
    let opts = TrajectoryOptions {
        ntraj: 300,
        seed: 9,
        ..Default::default()
    };
    let plan = Plan::new(&model, &psi0, &times, &opts).unwrap();
    let whole = trajectory::cpu_records(&plan, 0, 300);
    let mut split = trajectory::cpu_records(&plan, 0, 123);
    split.extend(trajectory::cpu_records(&plan, 123, 177));
    assert_eq!(whole, split);
    let a = trajectory::run_cpu(&model, &psi0, &times, &opts).unwrap();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let b = pool.install(|| trajectory::run_cpu(&model, &psi0, &times, &opts).unwrap());
    assert_eq!(a.mean, b.mean);
    assert_eq!(a.se, b.se);
    // xi^2 is that of the averaged moments.
    for t in 0..times.len() {
        let x = a.moments(t, 30).xi2();
        assert!(x == a.xi2[t] || (x.is_infinite() && a.xi2[t].is_infinite()));
    }
}

/// Throughput on this machine (not a test of correctness): seed 001, N = 100, u = 1.48, 500
/// trajectories, t in [0, 0.2], 201 saves, CPU twin (f32 and f64) and the GPU kernel.
#[test]
#[ignore = "measurement; run with --ignored --nocapture"]
fn measure_throughput() {
    let n = 100;
    let model = seed001(n, 1.48);
    let psi0 = pure::dicke(n, -50.0).unwrap();
    let times = linspace(0.0, 0.2, 201);
    for precision in [Precision::F32, Precision::F64] {
        let opts = TrajectoryOptions {
            ntraj: 500,
            seed: 1,
            precision,
            ..Default::default()
        };
        let e = trajectory::run_cpu(&model, &psi0, &times, &opts).unwrap();
        println!(
            "cpu {precision:?}: {:.2} s, {:.0} trajectories/s ({}, steps/save {}, mean jumps {:.0})",
            e.wall_s,
            500.0 / e.wall_s,
            e.device,
            e.steps[0],
            e.mean[9][200]
        );
        #[cfg(feature = "gpu")]
        if let Some(gpu) = engine("measure_throughput") {
            for lanes in [1, 128] {
                if precision == Precision::F64 && !gpu.context().info().has_f64 {
                    continue;
                }
                let o = TrajectoryOptions {
                    lanes,
                    ..opts.clone()
                };
                let e = run_gpu(gpu, &model, &psi0, &times, &o).unwrap();
                println!(
                    "gpu {precision:?} lanes {lanes}: {:.2} s, {:.1} trajectories/s ({})",
                    e.wall_s,
                    500.0 / e.wall_s,
                    e.device
                );
            }
        }
    }
}

/// Irrep-changing throughput at N = 2000 (not a test of correctness): seed 002's model
/// (Gamma = chi = 1, Upsilon/Upsilon_c = 0.9, gamma_down = gamma_s = 2 Gamma, all spins along
/// -x), f32, the CPU twin and the GPU kernel in one run. Environment: DICKE_MEASURE_NTRAJ
/// (default 8), DICKE_MEASURE_T (t_end, default 5e-4: ~2000 steps of 2.5e-7), DICKE_MEASURE_GPU_NTRAJ
/// (default 2: lavapipe is slow), DICKE_MEASURE_LANES (GPU lanes, default 0 = 256 at N = 2000).
#[test]
#[ignore = "measurement; run with --ignored --nocapture"]
fn measure_irrep_changing_throughput_n2000() {
    let env = |k: &str, d: f64| std::env::var(k).map(|v| v.parse().expect(k)).unwrap_or(d);
    let n = 2000;
    let upsilon_c = 5f64.sqrt();
    let model = Model {
        n,
        gamma_coll: 1.0,
        chi: 1.0,
        drive: 0.9 * upsilon_c * n as f64 / 2.0,
        gamma_down: 2.0,
        ..Default::default()
    };
    let psi0 = pure::coherent(n, std::f64::consts::FRAC_PI_2, std::f64::consts::PI);
    let t_end = env("DICKE_MEASURE_T", 5e-4);
    let times = linspace(0.0, t_end, 6);
    let report = |what: &str, e: &EnsembleResult| {
        let steps: u32 = e.steps.iter().sum();
        let last = times.len() - 1;
        println!(
            "{what}: {} trajectories to t = {t_end:e} in {:.2} s: {:.3} trajectories/s ({}; {steps} steps of \
             {:.3e}; mean jumps {:.1}, mean 2j at the end {:.1})",
            e.ntraj,
            e.wall_s,
            e.ntraj as f64 / e.wall_s,
            e.device,
            e.step_sizes[0],
            e.mean[9][last],
            (4.0 * e.mean[10][last] + 1.0).sqrt() - 1.0
        );
    };
    let opts = TrajectoryOptions {
        ntraj: env("DICKE_MEASURE_NTRAJ", 8.0) as u64,
        seed: 2002,
        precision: Precision::F32,
        ..Default::default()
    };
    let e = trajectory::run_cpu(&model, &psi0, &times, &opts).unwrap();
    report("cpu twin f32", &e);
    #[cfg(feature = "gpu")]
    if let Some(gpu) = engine("measure_irrep_changing_throughput_n2000") {
        let o = TrajectoryOptions {
            ntraj: env("DICKE_MEASURE_GPU_NTRAJ", 2.0) as u64,
            lanes: env("DICKE_MEASURE_LANES", 0.0) as u32,
            ..opts
        };
        let e = run_gpu(gpu, &model, &psi0, &times, &o).unwrap();
        report("gpu f32", &e);
    }
}

/// Irrep-changing (J-changing, Zhang-Zhang-Molmer) trajectories against an exact result that
/// uses no permutation-invariant algebra at all: with only single-atom dissipation (gamma_down,
/// gamma_up, gamma_phi) and a single-atom Hamiltonian (omega0 Jz + Omega Jx is a sum over
/// atoms), the atoms evolve independently, so a product initial state (spin coherent) stays a
/// product of identical single-atom states with Bloch vector s(t). Then
/// `<J_a> = N s_a / 2`, `<{J_a, J_b}>/2 = N delta_ab / 4 + N (N-1) s_a s_b / 4` and
/// `<J^2> = 3N/4 + N(N-1)|s|^2/4`. s(t) comes from the exact solver at N = 1, where
/// D[J-] = D[sigma-], D[J+] = D[sigma+] and D[Jz] = D[sigma_z]/4 (so Gamma_phi = 4 gamma_phi).
/// Every irrep-changing channel (A+-, B+-, D+-) fires here, and the trajectories leave j = N/2
/// at the first such jump. Tolerance: 4 SE of 4000 trajectories (f64), floor 1e-6 at t = 0.
#[test]
fn cpu_individual_channels_match_independent_atoms() {
    let (gd, gu, gp, omega0, drive) = (0.7, 0.3, 0.4, 0.9, 1.7);
    let times = linspace(0.0, 2.0, 21);
    let single = Model {
        n: 1,
        omega0,
        drive,
        gamma_coll: gd,
        pump_coll: gu,
        dephase_coll: 4.0 * gp,
        ..Default::default()
    };
    let s1 = master_moments(&single, &pure::coherent(1, 2.2, 0.5), &times);
    for n in [5usize, 6] {
        let model = Model {
            n,
            omega0,
            drive,
            gamma_down: gd,
            gamma_up: gu,
            gamma_phi: gp,
            ..Default::default()
        };
        let nf = n as f64;
        // Bloch vector s = 2 <J> of the single atom.
        let s: Vec<[f64; 3]> = s1.iter().map(|m| [2.0 * m[0], 2.0 * m[1], 2.0 * m[2]]).collect();
        let pair = |a: usize, b: usize| -> Vec<f64> {
            s.iter()
                .map(|v| if a == b { nf / 4.0 } else { 0.0 } + nf * (nf - 1.0) / 4.0 * v[a] * v[b])
                .collect()
        };
        let opts = TrajectoryOptions {
            ntraj: 4000,
            seed: 21,
            precision: Precision::F64,
            ..Default::default()
        };
        let ens = trajectory::run_cpu(&model, &pure::coherent(n, 2.2, 0.5), &times, &opts).expect("run_cpu");
        let what = format!("independent atoms N = {n}");
        for a in 0..3 {
            let mean: Vec<f64> = s.iter().map(|v| nf / 2.0 * v[a]).collect();
            assert_within_se(&what, &ens, a, &mean, 4.0, 1e-6);
        }
        for (k, (a, b)) in [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]
            .into_iter()
            .enumerate()
        {
            assert_within_se(&what, &ens, 3 + k, &pair(a, b), 4.0, 1e-6);
        }
        let j2: Vec<f64> = s
            .iter()
            .map(|v| 0.75 * nf + nf * (nf - 1.0) / 4.0 * (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]))
            .collect();
        let kj2 = OBS_NAMES.iter().position(|&o| o == "J2").expect("J2 observable");
        assert_within_se(&what, &ens, kj2, &j2, 4.0, 1e-6);
    }
}

/// Irrep-changing trajectories: the GPU kernel against its CPU twin trajectory by trajectory,
/// for a model with every single-atom channel (gamma_down, gamma_up, gamma_phi: all six
/// irrep-changing jumps A+-, B+-, D+-) on top of collective decay, exchange and drive, N = 20
/// from the coherent state along -x, in the three storage mappings (lane: lanes = 1; st:
/// 2 lanes; wg: 8 lanes with up to 3 levels per invocation, 128 lanes with one) and both
/// precisions. Every
/// record number within `tol (1 + |value|)`, the jump counts and the irrep (2j, record slot
/// 11) equal at every save: the trajectories take the same jumps into the same irreps.
///
/// Bound: as `gpu_matches_cpu_twin_per_trajectory` (the twin mirrors every operation,
/// including the factorised per-irrep tables `S_j * E_top` multiplied in the working
/// precision); measured on lavapipe: bit for bit with one level per invocation, 1.5e-5 (f32) /
/// 4e-14 (f64) relative otherwise. tol = 5e-4 (f32) and 1e-10 (f64) leave room for real GPUs.
#[test]
#[cfg(feature = "gpu")]
fn gpu_matches_cpu_twin_per_trajectory_irrep_changing() {
    let test = "gpu_matches_cpu_twin_per_trajectory_irrep_changing";
    let Some(gpu) = engine(test) else {
        return;
    };
    let n = 20;
    let model = Model {
        gamma_down: 2.0,
        gamma_up: 0.5,
        gamma_phi: 0.5,
        omega0: 0.3,
        ..seed001(n, 2.09)
    };
    let psi0 = pure::coherent(n, std::f64::consts::FRAC_PI_2, std::f64::consts::PI);
    let times = linspace(0.0, 0.2, 11);
    let mut precisions = vec![(Precision::F32, 5e-4)];
    if gpu.context().info().has_f64 {
        precisions.push((Precision::F64, 1e-10));
    } else {
        report_skip(&format!("{test}: adapter has no SHADER_F64, f32 only"));
    }
    let ntraj = 64;
    for (precision, tol) in precisions {
        for lanes in [1, 2, 8, 128] {
            let opts = TrajectoryOptions {
                ntraj,
                seed: 17,
                precision,
                lanes,
                ..Default::default()
            };
            let plan = Plan::new(&model, &psi0, &times, &opts).unwrap();
            assert!(plan.individual);
            let g = gpu.records(&plan).expect("gpu records");
            let c = trajectory::cpu_records(&plan, 0, ntraj);
            assert_eq!(g.len(), c.len());
            let mut worst: f64 = 0.0;
            let (mut total_jumps, mut irrep_changes, mut lowest) = (0.0, 0u32, n as f64);
            for (k, (a, b)) in g.iter().zip(&c).enumerate() {
                let save = (k / RECORD_LEN) % times.len();
                let what = format!(
                    "{precision:?} lanes {lanes}: trajectory {} save {save} slot {}",
                    k / (times.len() * RECORD_LEN),
                    k % RECORD_LEN
                );
                match k % RECORD_LEN {
                    10 => {
                        assert_eq!(a, b, "{what}: jump counts differ");
                        if save == times.len() - 1 {
                            total_jumps += b;
                        }
                    }
                    11 => {
                        assert_eq!(a, b, "{what}: irreps (2j) differ");
                        if save > 0 && *b != c[k - RECORD_LEN] {
                            irrep_changes += 1;
                        }
                        lowest = lowest.min(*b);
                    }
                    _ => {
                        let rel = (a - b).abs() / (1.0 + b.abs());
                        assert!(rel <= tol, "{what}: gpu {a} cpu {b} (relative {rel:e})");
                        worst = worst.max(rel);
                    }
                }
            }
            // Enough happens to test the irrep-changing path: many jumps, 2j changing between
            // saves, and trajectories that went several irreps down.
            assert!(total_jumps > ntraj as f64 * 10.0, "too few jumps: {total_jumps}");
            assert!(
                irrep_changes > ntraj as u32,
                "too few irrep changes: {irrep_changes}"
            );
            assert!(
                lowest <= n as f64 - 6.0,
                "no trajectory left the top irreps: 2j >= {lowest}"
            );
            report_skip(&format!(
                "{test} {precision:?} lanes {lanes} ({:?}): max relative {worst:e}, {total_jumps} jumps, \
                 {irrep_changes} save intervals with a changed irrep, lowest 2j {lowest}",
                gpu.variant(&plan)
            ));
        }
    }
}
