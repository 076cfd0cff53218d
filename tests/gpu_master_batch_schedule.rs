//! The batched master equation on the GPU under time-dependent protocols
//! (`MasterBatchGpu::run_protocols`, `model::schedule`) against its CPU twin
//! `solver::master::evolve_protocol`, per element, for ramps, steps, linear and triangle
//! schedules of every collective parameter but phi, a break that coincides with a save, and
//! the refusal of a scheduled phi.
//!
//! GPU tests use `backend::gpu::test_context`: without an adapter they print `SKIPPED: ...`
//! and return; with `DICKE_REQUIRE_GPU=1` (CI, lavapipe) a missing adapter fails them.
//!
//! # Tolerances (stated, not tuned)
//!
//! Both sides land on the same breaks by the same rules (`ode::integrate_real_pieces`: a
//! break within 64 eps of a save is that save, the first stage is recomputed after a break)
//! and evaluate each stage with the piece's affine parameters; they differ in rounding only:
//! the kernel forms `Gamma jm jm` where the CPU multiplies `(sqrt(Gamma) jm)(sqrt(Gamma) jm)`,
//! and evaluates a piece as `v + rate (t - at)` where the CPU uses the schedule's own formula,
//! a few ulp of each coefficient. So:
//!
//! * **f64** (rtol 1e-10, atol 1e-12): equal step, rejection and right-hand-side counts (a
//!   flipped accept/reject decision would need an error norm within ~1e-13 of 1), and per
//!   entry within `1e-12 |rho0|_max`: the per-step rounding ~10 eps |rho| accumulated over the
//!   S <= ~300 steps here (~1e-12 worst case, linear growth; observed far below). Trace within
//!   1e-10 as in `tests/gpu_master_batch.rs`.
//! * **f32** (rtol 1e-6, atol 1e-9): the bound of `tests/gpu_master_batch.rs`
//!   (`8 (rtol scale + atol) + 2 S u scale`, `common/gpu_batch.rs::f32_bounds`); step counts
//!   may differ by a few (an f32 error norm decides).
#![cfg(feature = "gpu")]

use dicke::backend::gpu::master_batch::{MasterBatchError, MasterBatchGpu, MasterBatchOptions, Saves};
use dicke::backend::gpu::report_skip;
use dicke::error::SolverError;
use dicke::model::{Model, Protocol, Schedule};
use dicke::precision::Precision;
use dicke::solver::master::{self, EvolveStats, Storage};
use dicke::solver::ode::OdeOptions;
use dicke::state::DensityMatrix;
use dicke::state::pure::{coherent, dicke};
use gpu_batch::{f32_bounds, kernel, max_abs};

#[path = "common/gpu_batch.rs"]
mod gpu_batch;

/// Save times; 0.3 is also the step schedule's break `3.0 * 0.1 = 0.30000000000000004`,
/// within rounding of the save: one step onto both on either side.
const TIMES: [f64; 6] = [0.0, 0.05, 0.1, 0.2, 0.3, 0.4];

/// Protocols of N atoms: every collective parameter but phi scheduled in one of them, ramps,
/// steps, linear and triangle schedules, a constant protocol among them, and breaks on
/// (0.1, 0.2) and off the save grid.
fn protocols(n: usize) -> Vec<Protocol> {
    let half = n as f64 / 2.0;
    let base = Model {
        n,
        gamma_coll: 1.0,
        chi: 0.5,
        ..Default::default()
    };
    let p = |base: Model, schedules: Vec<(&'static str, Schedule)>| Protocol { base, schedules };
    vec![
        // A drive ramp up and down across Omega_c (seed 001's model), knots at 0.1 and 0.25.
        p(
            base,
            vec![(
                "Omega",
                Schedule::Ramp(vec![(0.0, 0.5 * half), (0.1, 1.8 * half), (0.25, 0.9 * half)]),
            )],
        ),
        // Pump steps, one of them on a save within rounding (3 * 0.1), drive constant with a
        // phase (the constant gauge).
        p(
            Model {
                drive: 1.3,
                phi: 0.7,
                ..base
            },
            vec![(
                "w",
                Schedule::Steps(vec![(0.0, 0.2), (0.13, 1.5), (3.0 * 0.1, 0.4)]),
            )],
        ),
        // Decay rate linear from t0 = 0.05, chi_z triangle, Gamma_phi ramp, omega0 steps.
        p(
            Model { drive: 2.0, ..base },
            vec![
                ("omega0", Schedule::Steps(vec![(0.0, -0.5), (0.2, 0.8)])),
                (
                    "chi_z",
                    Schedule::Triangle {
                        low: -0.4,
                        high: 0.9,
                        period: 0.16,
                        t0: 0.0,
                    },
                ),
                (
                    "Gamma",
                    Schedule::Linear {
                        start: 1.0,
                        rate: -2.0,
                        t0: 0.05,
                    },
                ),
                ("w", Schedule::Ramp(vec![(0.0, 0.1), (0.4, 0.6)])),
                ("Gamma_phi", Schedule::Ramp(vec![(0.07, 0.0), (0.33, 0.8)])),
            ],
        ),
        // A constant protocol in a scheduled batch.
        p(
            Model {
                drive: 1.0,
                pump_coll: 0.3,
                ..base
            },
            vec![],
        ),
        // Every collective term (phase 0.4 in the constant gauge), Gamma_phi a triangle.
        p(
            gpu_batch::every_collective_term(n),
            vec![(
                "Gamma_phi",
                Schedule::Triangle {
                    low: 0.1,
                    high: 1.2,
                    period: 0.3,
                    t0: 0.05,
                },
            )],
        ),
        // chi steps and a drive chirp, starting after t0.
        p(
            Model {
                drive: 1.5,
                phi: -1.1,
                ..base
            },
            vec![
                ("Omega", Schedule::Ramp(vec![(0.02, 1.5), (0.37, 3.5)])),
                ("chi", Schedule::Steps(vec![(0.0, 0.5), (0.21, -0.7)])),
            ],
        ),
    ]
}

/// Initial states: south pole, coherent states, a mixture (Hermitian storage on the CPU).
fn states(n: usize) -> Vec<DensityMatrix> {
    let half = n as f64 / 2.0;
    let south = DensityMatrix::from_pure(&dicke(n, -half).unwrap());
    let coh1 = DensityMatrix::from_pure(&coherent(n, 1.0, 0.3));
    let coh2 = DensityMatrix::from_pure(&coherent(n, 2.5, -0.7));
    let mut mixed = DensityMatrix::zeros(n + 1);
    for i in 0..mixed.data.len() {
        mixed.data[i] = 0.6 * coh1.data[i] + 0.4 * south.data[i];
    }
    vec![south.clone(), coh1.clone(), mixed, coh2, coh1, south]
}

fn cpu(
    p: &Protocol,
    rho0: &DensityMatrix,
    times: &[f64],
    opts: &OdeOptions,
) -> (Vec<DensityMatrix>, EvolveStats) {
    let mut out = Vec::new();
    let st = master::evolve_protocol(p, rho0, times, opts, Storage::Auto, &mut |_, _, rho| {
        out.push(rho.clone())
    })
    .expect("cpu evolve_protocol");
    (out, st)
}

/// GPU batch vs CPU twin per element (module doc: the bounds); returns the largest deviation
/// relative to |rho0|_max.
fn compare(gpu: &MasterBatchGpu, n: usize, precision: Precision, times: &[f64]) -> f64 {
    let (protocols, rho0s) = (protocols(n), states(n));
    let opts = gpu_batch::opts(precision);
    let options = MasterBatchOptions {
        precision,
        ..Default::default()
    };
    let res = gpu
        .run_protocols(&protocols, &rho0s, times, &opts, &options)
        .expect("gpu batch");
    assert_eq!(res.elements.len(), protocols.len());
    let mut worst: f64 = 0.0;
    for (b, el) in res.elements.iter().enumerate() {
        let el = el.as_ref().unwrap_or_else(|e| panic!("element {b}: {e}"));
        let Saves::Full(got) = &el.saves else {
            panic!("full output expected")
        };
        let (want, st) = cpu(&protocols[b], &rho0s[b], times, &opts);
        let scale = max_abs(&rho0s[b].data);
        let dev = got
            .iter()
            .zip(&want)
            .map(|(g, w)| g.max_abs_diff(w))
            .fold(0.0, f64::max);
        worst = worst.max(dev / scale);
        let (bound, trace_bound) = match precision {
            Precision::F32 => f32_bounds(&opts, scale, el.stats.steps, n + 1),
            Precision::F64 => (1e-12 * scale, 1e-10),
        };
        eprintln!(
            "N={n} {precision:?} element {b}: max dev {dev:.2e} (bound {bound:.2e}), steps GPU {} CPU {}, \
             rejected {} / {}, rhs {} / {}, trace err {:.2e}",
            el.stats.steps,
            st.steps,
            el.stats.rejected,
            st.rejected,
            el.stats.rhs_evals,
            st.rhs_evals,
            el.stats.max_trace_error
        );
        assert!(
            dev <= bound,
            "N={n} {precision:?} element {b}: deviation {dev:e} > {bound:e}"
        );
        assert!(
            el.stats.max_trace_error <= trace_bound,
            "element {b}: trace error {:e} > {trace_bound:e}",
            el.stats.max_trace_error
        );
        if precision == Precision::F64 {
            assert_eq!(
                (el.stats.steps, el.stats.rejected, el.stats.rhs_evals),
                (st.steps, st.rejected, st.rhs_evals),
                "element {b}: (steps, rejected, rhs evaluations) GPU vs CPU"
            );
        }
    }
    worst
}

fn has_f64(gpu: &MasterBatchGpu, test: &str) -> bool {
    if gpu.context().info().has_f64 {
        return true;
    }
    report_skip(&format!(
        "SKIPPED: adapter `{}` has no SHADER_F64: {test}",
        gpu.context().info().name
    ));
    false
}

#[test]
fn gpu_f64_scheduled_batch_matches_evolve_protocol() {
    let Some(gpu) = kernel("gpu_f64_scheduled_batch_matches_evolve_protocol") else {
        return;
    };
    if !has_f64(&gpu, "gpu_f64_scheduled_batch_matches_evolve_protocol") {
        return;
    }
    let w8 = compare(&gpu, 8, Precision::F64, &TIMES);
    let w20 = compare(&gpu, 20, Precision::F64, &TIMES[..5]);
    eprintln!("worst relative deviation: N=8 {w8:.2e}, N=20 {w20:.2e}");
}

#[test]
fn gpu_f32_scheduled_batch_matches_evolve_protocol() {
    let Some(gpu) = kernel("gpu_f32_scheduled_batch_matches_evolve_protocol") else {
        return;
    };
    let w = compare(&gpu, 10, Precision::F32, &TIMES);
    eprintln!("worst relative deviation: N=10 f32 {w:.2e}");
}

/// The piece an element is on survives the split into dispatches (one attempt per dispatch
/// gives the same bits as the automatic split), and a batch of constant protocols is the
/// constant batch bit for bit.
#[test]
fn gpu_scheduled_split_and_constant_protocols() {
    let Some(gpu) = kernel("gpu_scheduled_split_and_constant_protocols") else {
        return;
    };
    let n = 6;
    let (protocols, rho0s) = (protocols(n), states(n));
    let opts = gpu_batch::opts(Precision::F32);
    let run = |ps: &[Protocol], attempts_per_dispatch| {
        let o = MasterBatchOptions {
            attempts_per_dispatch,
            ..Default::default()
        };
        let r = gpu
            .run_protocols(ps, &rho0s, &TIMES, &opts, &o)
            .expect("gpu batch");
        let d = r.dispatches;
        (r.into_matrices().expect("elements"), d)
    };
    let (auto, d_auto) = run(&protocols, 0);
    let (one, d_one) = run(&protocols, 1);
    assert!(
        d_one > d_auto,
        "dispatches: {d_one} (one attempt each), {d_auto} (auto)"
    );
    assert_eq!(auto, one, "automatic split vs one attempt per dispatch");
    // Constant protocols: the bits of `run` on their models.
    let constant: Vec<Protocol> = protocols.iter().map(|p| Protocol::from(p.base)).collect();
    let models: Vec<Model> = protocols.iter().map(|p| p.base).collect();
    let (c, _) = run(&constant, 0);
    let plain = gpu
        .run(&models, &rho0s, &TIMES, &opts, &MasterBatchOptions::default())
        .expect("gpu batch")
        .into_matrices()
        .expect("elements");
    assert_eq!(c, plain);
    // And the scheduled elements differ from their t = 0 models (the schedules act).
    assert_ne!(auto[0], plain[0]);
}

/// A scheduled phi (and a scheduled single-atom rate) is refused by name before any GPU work.
#[test]
fn gpu_scheduled_phi_is_refused_by_name() {
    let Some(gpu) = kernel("gpu_scheduled_phi_is_refused_by_name") else {
        return;
    };
    let n = 4;
    let mut ps = protocols(n);
    ps[1]
        .schedules
        .push(("phi", Schedule::Steps(vec![(0.0, 0.0), (0.2, 1.0)])));
    let rho0s = states(n);
    let opts = gpu_batch::opts(Precision::F32);
    let o = MasterBatchOptions::default();
    let err = |ps: &[Protocol]| match gpu.run_protocols(ps, &rho0s, &TIMES, &opts, &o) {
        Err(MasterBatchError::Input(SolverError::Unsupported { message, .. })) => message,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let e = err(&ps);
    assert!(e.contains("model.phi") && e.contains("protocols[1]"), "{e}");
    let mut single = protocols(n);
    single[2]
        .schedules
        .push(("gamma_down", Schedule::Steps(vec![(0.0, 0.0), (0.2, 1.0)])));
    let e = err(&single);
    assert!(e.contains("gamma_down") && e.contains("protocols[2]"), "{e}");
}
