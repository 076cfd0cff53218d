//! Irrep-changing trajectories (`solver::trajectory` with single-atom rates, PHYSICS.md sec. 4)
//! against the exact permutation-invariant block master equation (`solver::blocks`, sec. 3):
//! issue 4's cross-check on seed 002's model (N = 20, chi = Gamma, Upsilon/Upsilon_c = 0.9,
//! gamma_down = gamma_s in {0.5, 2} Gamma, all spins along -x).
//!
//! Tolerances: every saved mean (<J>, second moments, <J^2>) within 4 of the ensemble's own
//! standard errors (2500 trajectories, f64), as the issue asks; a floor of 1e-6 covers t = 0
//! where the SE is 0. xi^2 of the ensemble-averaged state is not a mean over trajectories, so
//! its standard error comes from batch means: 10 independent sub-ensembles of 250 (disjoint
//! trajectory indices, i.e. disjoint random streams), SE = sample std of their xi^2 / sqrt(10).

#[path = "common/ensemble.rs"]
mod ensemble;

#[cfg(feature = "gpu")]
use dicke::backend::gpu::trajectory::{TrajectoryGpu, run_gpu};
#[cfg(feature = "gpu")]
use dicke::backend::gpu::{report_skip, test_context};
use dicke::c64;
use dicke::model::Model;
use dicke::observe::{j2_blocks, moments_blocks};
use dicke::solver::blocks;
use dicke::solver::ode::OdeOptions;
use dicke::solver::trajectory::{self, EnsembleResult, OBS_NAMES, Precision, TrajectoryOptions};
use dicke::state::DensityMatrix;
use dicke::state::blocks::BlockState;
use dicke::state::pure;
use ensemble::Pooled;
#[cfg(feature = "gpu")]
use std::sync::Arc;

fn seed002(n: usize, gamma_s: f64) -> Model {
    let (gamma, chi) = (1.0f64, 1.0f64);
    let upsilon_c = (gamma * gamma + 4.0 * chi * chi).sqrt();
    Model {
        n,
        gamma_coll: gamma,
        chi,
        drive: 0.9 * upsilon_c * n as f64 / 2.0,
        gamma_down: gamma_s,
        ..Default::default()
    }
}

/// An ensemble runner on one backend: (model, psi0, times, options) -> ensemble.
type RunFn<'a> = dyn Fn(&Model, &[c64], &[f64], &TrajectoryOptions) -> EnsembleResult + 'a;

/// Issue 4's check on seed 002 at N = 20 for gamma_s in {0.5, 2} Gamma: `batches` ensembles of
/// `per` trajectories each (disjoint trajectory indices), pooled into the whole ensemble
/// (exactly the ensemble of `batches * per` trajectories: means and sample variances combine
/// from the batch means and standard errors), every mean within 4 SE + `floor` of the blocks
/// and xi^2 within 4 batch-means SE + `floor`; panics with the observable, time and values.
fn seed002_against_blocks(
    backend: &str,
    run: &RunFn<'_>,
    times: &[f64],
    (batches, per): (u64, u64),
    precision: Precision,
    floor: f64,
) {
    let n = 20;
    let psi0 = pure::coherent(n, std::f64::consts::FRAC_PI_2, std::f64::consts::PI);
    let nt = times.len();
    for gamma_s in [0.5, 2.0] {
        let model = seed002(n, gamma_s);
        // Exact: blocks from the pure j = N/2 initial state.
        let rho0 = BlockState::from_symmetric(&DensityMatrix::from_pure(&psi0));
        let mut exact = vec![[0.0; 11]; nt];
        let mut xi2_exact = vec![0.0; nt];
        let opts = OdeOptions {
            rtol: 1e-10,
            atol: 1e-12,
            ..Default::default()
        };
        blocks::evolve(&model, &rho0, times, &opts, &mut |i, _t, s| {
            let m = moments_blocks(s);
            exact[i] = [
                m.mean[0],
                m.mean[1],
                m.mean[2],
                m.second[0][0],
                m.second[1][1],
                m.second[2][2],
                m.second[0][1],
                m.second[0][2],
                m.second[1][2],
                f64::NAN,
                j2_blocks(s),
            ];
            xi2_exact[i] = m.xi2();
        })
        .expect("blocks evolve");

        let ens: Vec<EnsembleResult> = (0..batches)
            .map(|b| {
                let o = TrajectoryOptions {
                    ntraj: per,
                    first_traj: b * per,
                    seed: 2024,
                    precision,
                    ..Default::default()
                };
                run(&model, &psi0, times, &o)
            })
            .collect();
        let pooled = Pooled { batches: &ens, per };
        let what = format!(
            "{backend}: seed 002 N = {n}, gamma_s = {gamma_s}, {} trajectories",
            batches * per
        );
        let (mut worst, mut worst_at) = (0.0f64, String::new());
        for (k, name) in OBS_NAMES.iter().enumerate() {
            if *name == "jumps" {
                continue;
            }
            for t in 0..nt {
                let ((m, se), ex) = (pooled.mean_se(k, t), exact[t][k]);
                // At t = 0 every trajectory is the initial state: the SE is 0 up to the pooling's
                // rounding, and only the floor applies.
                if t > 0 && (m - ex).abs() / se > worst {
                    worst = (m - ex).abs() / se;
                    worst_at = format!("{name} at t = {}", times[t]);
                }
                assert!(
                    (m - ex).abs() <= 4.0 * se + floor,
                    "{what}: {name} at t = {}: trajectories {m} +- {se}, blocks {ex}",
                    times[t]
                );
            }
        }
        for t in 1..nt {
            let (xi2, se) = pooled.xi2_se(t, n);
            let d = (xi2 - xi2_exact[t]).abs();
            if d / se > worst {
                worst = d / se;
                worst_at = format!("xi2 at t = {}", times[t]);
            }
            assert!(
                d <= 4.0 * se + floor,
                "{what}: xi2 at t = {}: trajectories {xi2} (batch SE {se}), blocks {}",
                times[t],
                xi2_exact[t]
            );
        }
        eprintln!(
            "{what}: worst |trajectories - blocks| = {worst:.2} SE over every mean and xi2 ({worst_at})"
        );
    }
}

/// CPU twin: 2500 trajectories (10 batches of 250), t in [0, 1.5], 16 saves, f64.
#[test]
fn irrep_changing_trajectories_match_blocks_seed002() {
    let times: Vec<f64> = (0..16).map(|i| 0.1 * i as f64).collect();
    let run = |m: &Model, p: &[c64], t: &[f64], o: &TrajectoryOptions| {
        trajectory::run_cpu(m, p, t, o).expect("run_cpu")
    };
    seed002_against_blocks("cpu", &run, &times, (10, 250), Precision::F64, 1e-6);
}

/// The GPU kernel (lavapipe in CI, default lane mapping): 2000 trajectories (10 batches of
/// 200), the minimum, over t in [0, 0.8] with 9 saves; the window is shortened from the
/// CPU test's 1.5 to keep this test near 30 s on lavapipe (measured on a loaded dev-2c: 250
/// trajectories to t = 1.5 took 3.5 s in f64). f64 where the adapter has it (floor 1e-6 as on
/// the CPU); else f32, floor 1e-4: f32 rounding of moments up to ~110 (eps 6e-8 over some tens
/// of operations), which matters only at t = 0 where the SE is 0.
#[test]
#[cfg(feature = "gpu")]
fn gpu_irrep_changing_trajectories_match_blocks_seed002() {
    let test = "gpu_irrep_changing_trajectories_match_blocks_seed002";
    let Some(ctx) = test_context(test) else {
        return;
    };
    let gpu = TrajectoryGpu::new(Arc::clone(&ctx)).expect("trajectory pipelines");
    let (precision, floor) = if ctx.info().has_f64 {
        (Precision::F64, 1e-6)
    } else {
        report_skip(&format!("{test}: adapter has no SHADER_F64, f32 only"));
        (Precision::F32, 1e-4)
    };
    let times: Vec<f64> = (0..9).map(|i| 0.1 * i as f64).collect();
    let run =
        |m: &Model, p: &[c64], t: &[f64], o: &TrajectoryOptions| run_gpu(&gpu, m, p, t, o).expect("run_gpu");
    let start = std::time::Instant::now();
    seed002_against_blocks("gpu", &run, &times, (10, 200), precision, floor);
    report_skip(&format!(
        "{test}: {:.1} s on {}",
        start.elapsed().as_secs_f64(),
        ctx.info().name
    ));
}

/// P_m assembled from irrep-changing trajectories (|<j,m|psi>|^2 summed over the trajectories'
/// irreps) against the blocks' P_m = sum_j <j,m|R_j|j,m>, seed 002's model at N = 12 with
/// gamma_s = 2 Gamma: every m at every save within 4 of the ensemble's own standard errors
/// (2000 trajectories, f64), floor 1e-9 where a population is exactly 0 in both.
#[test]
#[allow(clippy::needless_range_loop)] // m indexes the trajectory means, their SEs and the blocks'
fn pm_from_trajectories_matches_blocks() {
    let n = 12;
    let model = seed002(n, 2.0);
    let times: Vec<f64> = (0..6).map(|i| 0.25 * i as f64).collect();
    let psi0 = pure::coherent(n, std::f64::consts::FRAC_PI_2, std::f64::consts::PI);
    let rho0 = BlockState::from_symmetric(&DensityMatrix::from_pure(&psi0));
    let mut exact = vec![Vec::new(); times.len()];
    let opts = OdeOptions {
        rtol: 1e-10,
        atol: 1e-12,
        ..Default::default()
    };
    blocks::evolve(&model, &rho0, &times, &opts, &mut |i, _t, s| {
        exact[i] = dicke::observe::pm_blocks(s);
    })
    .expect("blocks evolve");
    let o = TrajectoryOptions {
        ntraj: 2000,
        seed: 12,
        precision: Precision::F64,
        pm: true,
        ..Default::default()
    };
    let ens = trajectory::run_cpu(&model, &psi0, &times, &o).expect("run_cpu");
    assert_eq!(ens.pm_mean.len(), times.len());
    let mut worst = 0.0f64;
    for t in 0..times.len() {
        assert_eq!(ens.pm_mean[t].len(), n + 1);
        let total: f64 = ens.pm_mean[t].iter().sum();
        assert!(
            (total - 1.0).abs() < 1e-9,
            "sum of P_m at t = {}: {total}",
            times[t]
        );
        for m in 0..=n {
            let (p, se, ex) = (ens.pm_mean[t][m], ens.pm_se[t][m], exact[t][m]);
            assert!(
                (p - ex).abs() <= 4.0 * se + 1e-9,
                "P(m = {}) at t = {}: trajectories {p} +- {se}, blocks {ex}",
                m as f64 - n as f64 / 2.0,
                times[t]
            );
            if se > 0.0 {
                worst = worst.max((p - ex).abs() / se);
            }
        }
    }
    eprintln!("P_m from trajectories vs blocks, N = {n}: worst {worst:.2} SE");
}
