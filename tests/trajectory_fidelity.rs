//! The fidelity `|<ref|psi_k(t)>|^2` along saved single trajectories (`kind = "trajectories"`
//! with `[observables.fidelity]`, trajectories.csv's `fidelity` column; seed 000 Fig. 4b):
//! its ensemble mean against the exact master equation's `fidelity` column (`kind = "evolve"`
//! with the same reference, through `run::execute_on`), its value 0 outside j = N/2 with
//! single-atom decay, the GPU ensemble's replayed fidelity against the CPU ensemble's, and the
//! scenario validation around it.
//!
//! Tolerance: 4 standard errors of the mean (sample std / sqrt(ntraj)) at every save, as in
//! tests/trajectory.rs. GPU tests use `backend::gpu::test_context`: without an adapter they
//! print `SKIPPED: ...` and return; with `DICKE_REQUIRE_GPU=1` a missing adapter fails them.

use dicke::backend::BackendChoice;
#[cfg(feature = "gpu")]
use dicke::backend::gpu::trajectory::{TrajectoryGpu, run_gpu};
#[cfg(feature = "gpu")]
use dicke::backend::gpu::{report_skip, test_context};
use dicke::model::Model;
use dicke::run::{self, NoProgress, RunOptions};
use dicke::scenario::parse;
use dicke::solver::trajectory::{self, Precision, TrajectoryOptions};
use dicke::state::pure;
use std::path::Path;
#[cfg(feature = "gpu")]
use std::sync::Arc;

/// N = 8, collective decay and drive, from the ground state |j, -j> (the reference); f64.
/// The drive rotates the state away and decay pulls it back, so the fidelity falls from 1 to
/// 0.29 and recovers partly over t in [0, 2].
const COLLECTIVE: &str = r#"
title = "fidelity along trajectories"
[model]
N = 8
Gamma = 1
Omega = 3
[initial]
state = "dicke"
m = "-N/2"
[task]
kind = "trajectories"
ntraj = 400
save_trajectories = 400
seed = 7
t_end = 2
n_times = 21
precision = "f64"
[observables.fidelity]
state = "dicke"
m = "-N/2"
[output]
plot = false
"#;

/// Run a scenario text into `dir` on the CPU.
/// Print a measured number (visible under libtest's capture with --nocapture).
#[cfg(not(feature = "gpu"))]
fn report_skip(message: &str) {
    eprintln!("{message}");
}

fn run_text(text: &str, dir: &Path) -> Result<run::RunSummary, dicke::error::Error> {
    let sc = parse(text, "trajectory_fidelity.toml", &[]).expect("valid scenario");
    let opts = RunOptions {
        out_dir: dir.to_path_buf(),
        backend: BackendChoice::Cpu,
        overrides: Vec::new(),
        resume: false,
        shard: None,
    };
    run::execute_on(&sc, &opts, None, &mut NoProgress)
}

/// A CSV file: its header and rows.
fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .expect("header")
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(|x| x.parse().expect("number")).collect())
        .collect();
    (header, rows)
}

fn col(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("dicke_fid_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// All 400 trajectories saved, reference = the initial state: every fidelity is 1 at t = 0;
/// at every save the mean of trajectories.csv's `fidelity` over the trajectories is within
/// 4 SE of the exact `fidelity` column of `kind = "evolve"`; and the exact fidelity changes
/// by more than 0.5 over the window (the test cannot pass on constants).
#[test]
fn mean_fidelity_along_trajectories_matches_master_equation() {
    let dir = tempdir("collective");
    run_text(COLLECTIVE, &dir.join("traj")).expect("trajectories run");
    let evolve = COLLECTIVE
        .replace("kind = \"trajectories\"", "kind = \"evolve\"")
        .replace("ntraj = 400\nsave_trajectories = 400\nseed = 7\n", "")
        .replace("precision = \"f64\"\n", "")
        .replace("[output]", "[observables]\ncolumns = [\"fidelity\"]\n[output]");
    run_text(&evolve, &dir.join("exact")).expect("evolve run");

    let (h, rows) = read_csv(&dir.join("traj/trajectories.csv"));
    assert_eq!(
        h.last().map(String::as_str),
        Some("fidelity"),
        "fidelity is the last column"
    );
    let (kt, kf, ktr) = (col(&h, "t"), col(&h, "fidelity"), col(&h, "traj"));
    let (he, exact) = read_csv(&dir.join("exact/observables.csv"));
    let (ket, kef) = (col(&he, "t"), col(&he, "fidelity"));
    let nsave = exact.len();
    assert_eq!(rows.len(), 400 * nsave, "400 trajectories x {nsave} saves");

    let mut worst: f64 = 0.0;
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (s, ex) in exact.iter().enumerate() {
        let f: Vec<f64> = rows.iter().skip(s).step_by(nsave).map(|r| r[kf]).collect();
        for r in rows.iter().skip(s).step_by(nsave) {
            assert_eq!(r[kt], ex[ket], "save times agree");
        }
        assert!(
            f.iter().all(|x| (0.0..=1.0 + 1e-12).contains(x)),
            "fidelity in [0, 1]"
        );
        let n = f.len() as f64;
        let mean = f.iter().sum::<f64>() / n;
        let var = f.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
        let se = (var / n).sqrt();
        let d = (mean - ex[kef]).abs();
        if s == 0 {
            assert!(
                f.iter().all(|x| (x - 1.0).abs() < 1e-12),
                "fidelity 1 at t = 0: {f:?}"
            );
            assert!((ex[kef] - 1.0).abs() < 1e-12);
        } else {
            assert!(
                d <= 4.0 * se,
                "t = {}: mean fidelity {mean} +- {se}, exact {} ({:.2} SE)",
                ex[ket],
                ex[kef],
                d / se
            );
            worst = worst.max(d / se);
        }
        lo = lo.min(ex[kef]);
        hi = hi.max(ex[kef]);
    }
    // Trajectory indices 0..400, each with its nsave rows in order.
    assert_eq!(rows[0][ktr], 0.0);
    assert_eq!(rows[rows.len() - 1][ktr], 399.0);
    assert!(hi - lo > 0.5, "exact fidelity barely changes: {lo} .. {hi}");
    report_skip(&format!(
        "mean_fidelity_along_trajectories_matches_master_equation: worst |z| = {worst:.2} over {} saves, exact fidelity {lo:.3} .. {hi:.3}",
        nsave - 1
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

/// With single-atom decay a trajectory leaves j = N/2 at its first irrep-changing jump: there
/// (J2 < N/2 (N/2 + 1)) its fidelity with the reference (in j = N/2) is exactly 0, and while it
/// is still in j = N/2 the fidelity is the twin's overlap (positive somewhere). The ensemble's
/// moments do not depend on whether a reference is given.
#[test]
fn fidelity_is_zero_outside_the_symmetric_irrep() {
    let n = 6;
    let model = Model {
        n,
        gamma_coll: 0.5,
        gamma_down: 1.0,
        drive: 4.0,
        ..Default::default()
    };
    let psi0 = pure::dicke(n, -(n as f64) / 2.0).unwrap();
    let times: Vec<f64> = (0..=30).map(|i| 0.1 * i as f64).collect();
    let base = TrajectoryOptions {
        ntraj: 64,
        seed: 3,
        precision: Precision::F64,
        save_trajectories: 64,
        ..Default::default()
    };
    let opts = TrajectoryOptions {
        reference: Some(pure::crss(n, model.drive, model.gamma_coll)),
        ..base.clone()
    };
    let ens = trajectory::run_cpu(&model, &psi0, &times, &opts).expect("run_cpu");
    let plain = trajectory::run_cpu(&model, &psi0, &times, &base).expect("run_cpu");
    assert_eq!(ens.mean, plain.mean, "the reference changes no moment");
    assert!(plain.trajectories.iter().all(|t| t.fidelity.is_empty()));
    let kj = trajectory::OBS_NAMES.iter().position(|&o| o == "J2").unwrap();
    let top = n as f64 / 2.0 * (n as f64 / 2.0 + 1.0);
    let (mut outside, mut inside_positive) = (0, 0);
    for tr in &ens.trajectories {
        assert_eq!(tr.fidelity.len(), times.len());
        for (v, &f) in tr.values.iter().zip(&tr.fidelity) {
            if v[kj] < top - 1e-9 {
                assert_eq!(f, 0.0, "trajectory {} in j < N/2 has fidelity {f}", tr.index);
                outside += 1;
            } else if f > 1e-3 {
                inside_positive += 1;
            }
        }
    }
    assert!(outside > 100, "too few saves outside j = N/2: {outside}");
    assert!(
        inside_positive > 100,
        "too few saves with positive fidelity: {inside_positive}"
    );
    report_skip(&format!(
        "fidelity_is_zero_outside_the_symmetric_irrep: {outside} saves in j < N/2 (all 0), {inside_positive} in j = N/2 with F > 1e-3"
    ));
}

/// The GPU ensemble's fidelity (the kernel records moments; the twin replays the saved
/// trajectories) against the CPU ensemble's, with the same lanes (so the same arithmetic):
/// within 1e-10 (1 + F) at every save, as tests/trajectory.rs bounds the records of the two
/// (measured there 1e-14 on lavapipe), with equal jump counts; for a collective model (the
/// kernel's three-way channel choice) and one with single-atom decay (irrep changes).
#[test]
#[cfg(feature = "gpu")]
fn gpu_replayed_fidelity_matches_cpu() {
    let test = "gpu_replayed_fidelity_matches_cpu";
    let Some(ctx) = test_context(test) else {
        return;
    };
    if !ctx.info().has_f64 {
        report_skip(&format!("{test}: adapter has no SHADER_F64"));
        return;
    }
    let gpu = TrajectoryGpu::new(Arc::clone(&ctx)).expect("trajectory pipelines");
    let n = 8;
    let psi0 = pure::dicke(n, -(n as f64) / 2.0).unwrap();
    let times: Vec<f64> = (0..=10).map(|i| 0.1 * i as f64).collect();
    let collective = Model {
        n,
        gamma_coll: 1.0,
        drive: 3.0,
        ..Default::default()
    };
    let individual = Model {
        gamma_down: 0.3,
        ..collective
    };
    for (what, model) in [("collective", collective), ("single-atom decay", individual)] {
        let opts = TrajectoryOptions {
            ntraj: 48,
            seed: 5,
            precision: Precision::F64,
            save_trajectories: 16,
            lanes: 1,
            reference: Some(pure::crss(n, model.drive, model.gamma_coll)),
            ..Default::default()
        };
        let c = trajectory::run_cpu(&model, &psi0, &times, &opts).expect("run_cpu");
        let g = run_gpu(&gpu, &model, &psi0, &times, &opts).expect("run_gpu");
        assert_eq!(g.trajectories.len(), 16);
        let kjumps = trajectory::OBS_NAMES.iter().position(|&o| o == "jumps").unwrap();
        let mut worst: f64 = 0.0;
        for (a, b) in g.trajectories.iter().zip(&c.trajectories) {
            assert_eq!(a.index, b.index);
            assert_eq!(a.fidelity.len(), times.len());
            for s in 0..times.len() {
                assert_eq!(a.values[s][kjumps], b.values[s][kjumps], "{what}: jump counts");
                let (fa, fb) = (a.fidelity[s], b.fidelity[s]);
                let rel = (fa - fb).abs() / (1.0 + fb.abs());
                assert!(
                    rel <= 1e-10,
                    "{what}: trajectory {} save {s}: gpu {fa} cpu {fb}",
                    a.index
                );
                worst = worst.max(rel);
            }
        }
        report_skip(&format!("{test} {what}: max relative difference {worst:e}"));
    }
}

/// Validation: `[observables.fidelity]` with trajectories needs saved trajectories (the error
/// names the field and says why); the `fidelity` column stays refused for trajectories with
/// its message unchanged.
#[test]
fn validation_of_fidelity_for_trajectories() {
    let unsaved = COLLECTIVE.replace("save_trajectories = 400\n", "");
    let e = parse(&unsaved, "x.toml", &[]).expect_err("refused").to_string();
    assert!(
        e.contains("observables.fidelity")
            && e.contains("save_trajectories")
            && e.contains("saved single trajectories"),
        "{e}"
    );
    let column = COLLECTIVE.replace("[output]", "[observables]\ncolumns = [\"fidelity\"]\n[output]");
    let e = parse(&column, "x.toml", &[]).expect_err("refused").to_string();
    assert!(
        e.contains("observables.columns")
            && e.contains(
                "observables computed from the ensemble moments (not purity, lambda_max, fidelity)"
            ),
        "{e}"
    );
    parse(COLLECTIVE, "x.toml", &[]).expect("saved trajectories with a reference are valid");
}
