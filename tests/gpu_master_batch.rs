//! Batched master equation on the GPU (`backend::gpu::master_batch`) against its CPU twin
//! `solver::master::evolve`, on batches of different models (every collective term: omega0,
//! Omega with phi, chi, chi_z, Gamma, w, Gamma_phi) and different initial states (Dicke,
//! coherent, mixed, and a non-Hermitian operator that takes the full-storage path).
//!
//! GPU tests use `backend::gpu::test_context`: without an adapter they print
//! `SKIPPED: no GPU adapter ...` to stderr and return; with `DICKE_REQUIRE_GPU=1` (CI, with
//! Mesa's lavapipe installed) a missing adapter fails them.
//!
//! # Tolerances (stated, not tuned)
//!
//! Both sides run the same algorithm (module doc of `master_batch`): same stencil, same
//! tableau, same error norm and controller, so they take the same steps and their truncation
//! errors largely cancel in the difference. What is left:
//!
//! * **f32**: rounding. Each step rounds every element to u = 2^-24 ~ 6e-8 relative to the
//!   matrix's scale |rho|_max, and the f32 coefficients perturb L by ~u relative; over S
//!   steps the rounding accumulates at most ~S u |rho|_max (linearly, the worst case) and the
//!   coefficient error ~u |L| t |rho|_max for the stiffest (dissipative, hence damped) part.
//!   If a step near err = 1 is accepted on one side and rejected on the other, the two
//!   solutions differ by the difference of two tolerance-controlled solutions, a few times
//!   rtol |rho|_max + atol. The bound used is therefore
//!   `8 (rtol |rho0|_max + atol) + 2 S u |rho0|_max` per element, with rtol = 1e-6,
//!   atol = 1e-9 (the f32 kernel needs rtol >= ~1e-6: the error estimate itself is computed
//!   in f32, and below that it measures rounding), which is ~1e-5 of the matrix scale for
//!   the S ~ 50-150 steps here. Trace: the same rounding argument bounds |tr rho - 1| by
//!   S u n (n rounded diagonal entries per step, added linearly).
//!   Observed on lavapipe: 6e-8 - 3.5e-7 against bounds of 1.8e-6 - 1.6e-5, trace errors
//!   <= 5e-7; the step counts equal the CPU's or differ by one.
//! * **f64**: same algorithm in f64 (the controller's powers in f32, module doc), rtol = 1e-10,
//!   atol = 1e-12: within 1e-8 of the CPU twin (the task's f64 bound), trace within 1e-10.
//!   Observed: identical step counts and <= 1.5e-15 deviation, trace errors <= 3e-15.
//!
//! # Measured (not asserted): lavapipe vs CPU, batch of 64 at N = 50
//!
//! `cargo test --release --test gpu_master_batch -- --ignored --nocapture measure` times a
//! batch of 64 parameter points (seed 001's model, Omega/Omega_c from 0.5 to 2.1, chi = 0.5,
//! from the south pole, t in [0, 0.5], 11 saves, rtol 1e-6, atol 1e-9) on the GPU in f32 and
//! f64 (full matrices) against `master::evolve` of the same 64 one after the other (f64, rayon
//! inside each). Measured on the 2-core EPYC: CPU 1.25 - 1.31 s; lavapipe f32 20.6 - 21.4 s
//! (64 - 256 lanes), f64 41 - 49 s (table in the module doc of `backend::gpu::master_batch`).
//! Environment: `MB_LANES=64,128,256` (lanes to time), `MB_COUNT` (batch size, default 64),
//! `MB_F32_ONLY=1`, `MB_VERBOSE=1` (per-element deviations and step counts).
#![cfg(feature = "gpu")] // GPU kernels only exist in builds with the `gpu` feature

use dicke::backend::gpu::master_batch::{
    BatchOutput, MasterBatchError, MasterBatchGpu, MasterBatchOptions, Saves,
};
use dicke::backend::gpu::{GpuError, report_skip};
use dicke::error::SolverError;
use dicke::model::Model;
use dicke::precision::Precision;
use dicke::solver::master;
use dicke::solver::ode::OdeOptions;
use dicke::state::DensityMatrix;
use dicke::state::pure::{coherent, dicke};
use gpu_batch::{U32, every_collective_term, f32_bounds, kernel, max_abs};

#[path = "common/gpu_batch.rs"]
mod gpu_batch;

/// Six models covering every collective term between them (and all of them in the first).
fn models(n: usize) -> Vec<Model> {
    let half = n as f64 / 2.0;
    let base = Model {
        n,
        ..Default::default()
    };
    vec![
        every_collective_term(n),
        // seed 001: Omega = 1.48 Omega_c with Omega_c = (N/2) sqrt(Gamma^2 + 4 chi^2)
        Model {
            drive: 1.48 * half * (1.0f64 + 4.0 * 0.25).sqrt(),
            chi: 0.5,
            gamma_coll: 1.0,
            ..base
        },
        // seed 004: collective pumping above decay
        Model {
            gamma_coll: 1.0,
            pump_coll: 1.2,
            ..base
        },
        // one-axis twisting with collective dephasing
        Model {
            omega0: -0.5,
            chi_z: 0.8,
            dephase_coll: 0.3,
            ..base
        },
        // phased drive with decay
        Model {
            drive: 2.0,
            phi: -1.1,
            gamma_coll: 0.5,
            ..base
        },
        // unitary
        Model {
            omega0: 1.0,
            drive: 0.5,
            phi: 2.0,
            ..base
        },
    ]
}

/// Six initial states: Dicke south pole, coherent states, a mixture, and the non-Hermitian
/// |a><b| (full-matrix path on both sides).
fn states(n: usize) -> Vec<DensityMatrix> {
    let half = n as f64 / 2.0;
    let south = DensityMatrix::from_pure(&dicke(n, -half).unwrap());
    let coh1 = DensityMatrix::from_pure(&coherent(n, 1.0, 0.3));
    let coh2 = DensityMatrix::from_pure(&coherent(n, 2.5, -0.7));
    let mid = DensityMatrix::from_pure(&dicke(n, half - (n / 2) as f64).unwrap());
    let mut mixed = DensityMatrix::zeros(n + 1);
    for i in 0..mixed.data.len() {
        mixed.data[i] = 0.6 * coh1.data[i] + 0.4 * mid.data[i];
    }
    let a = coherent(n, 0.8, 0.1);
    let b = coherent(n, 1.9, 1.2);
    let mut offdiag = DensityMatrix::zeros(n + 1);
    for (r, ar) in a.iter().enumerate() {
        for (c, bc) in b.iter().enumerate() {
            offdiag.data[r * (n + 1) + c] = ar * bc.conj();
        }
    }
    vec![south, coh1, mixed, coh2, mid, offdiag]
}

fn cpu(model: &Model, rho0: &DensityMatrix, times: &[f64], opts: &OdeOptions) -> (Vec<DensityMatrix>, usize) {
    let mut out = Vec::new();
    let st =
        master::evolve(model, rho0, times, opts, &mut |_, _, rho| out.push(rho.clone())).expect("cpu evolve");
    (out, st.steps)
}

/// GPU batch vs CPU twin, element by element, within the bound of the module doc.
fn compare(gpu: &MasterBatchGpu, n: usize, precision: Precision, times: &[f64], opts: &OdeOptions) {
    let models = models(n);
    let rho0s = states(n);
    let options = MasterBatchOptions {
        precision,
        ..Default::default()
    };
    let res = gpu
        .run(&models, &rho0s, times, opts, &options)
        .expect("gpu batch");
    assert_eq!(res.precision, precision);
    assert_eq!(res.elements.len(), models.len());
    for (b, el) in res.elements.iter().enumerate() {
        let el = el.as_ref().unwrap_or_else(|e| panic!("element {b}: {e}"));
        let Saves::Full(got) = &el.saves else {
            panic!("full output expected")
        };
        let (want, cpu_steps) = cpu(&models[b], &rho0s[b], times, opts);
        assert_eq!(got.len(), times.len());
        let scale = max_abs(&rho0s[b].data);
        let dev = got
            .iter()
            .zip(&want)
            .map(|(g, w)| g.max_abs_diff(w))
            .fold(0.0, f64::max);
        let (bound, trace_bound) = match precision {
            Precision::F32 => f32_bounds(opts, scale, el.stats.steps, n + 1),
            Precision::F64 => (1e-8 * scale, 1e-10),
        };
        eprintln!(
            "N={n} {precision:?} element {b}: max dev {dev:.2e} (bound {bound:.2e}), steps GPU {} CPU {cpu_steps}, \
             rejected {}, trace err {:.2e} (bound {trace_bound:.2e}), herm err {:.2e}",
            el.stats.steps, el.stats.rejected, el.stats.max_trace_error, el.stats.max_hermiticity_error
        );
        assert!(
            dev <= bound,
            "N={n} {precision:?} element {b}: deviation {dev:e} > bound {bound:e}"
        );
        if el.stats.hermitian {
            assert!(
                el.stats.max_trace_error <= trace_bound,
                "N={n} {precision:?} element {b}: trace error {:e} > {trace_bound:e}",
                el.stats.max_trace_error
            );
            for g in got {
                assert_eq!(g.hermiticity_error(), 0.0, "Hermitian result");
            }
        }
        // The first save is rho0 itself (rounded to the working precision).
        let d0 = got[0].max_abs_diff(&rho0s[b]);
        assert!(
            d0 <= 2.0 * U32 * scale,
            "element {b}: first save differs by {d0:e}"
        );
    }
}

fn f32_opts() -> OdeOptions {
    gpu_batch::opts(Precision::F32)
}

fn f64_opts() -> OdeOptions {
    gpu_batch::opts(Precision::F64)
}

const TIMES: [f64; 6] = [0.0, 0.05, 0.1, 0.2, 0.3, 0.4];

#[test]
fn gpu_f32_matches_cpu_n10() {
    let Some(gpu) = kernel("gpu_f32_matches_cpu_n10") else {
        return;
    };
    compare(&gpu, 10, Precision::F32, &TIMES, &f32_opts());
}

#[test]
fn gpu_f32_matches_cpu_n30() {
    let Some(gpu) = kernel("gpu_f32_matches_cpu_n30") else {
        return;
    };
    compare(&gpu, 30, Precision::F32, &TIMES[..4], &f32_opts());
}

#[test]
fn gpu_f64_matches_cpu_n10_and_n30() {
    let Some(gpu) = kernel("gpu_f64_matches_cpu_n10_and_n30") else {
        return;
    };
    if !gpu.context().info().has_f64 {
        report_skip(&format!(
            "SKIPPED: adapter `{}` has no SHADER_F64: gpu_f64_matches_cpu_n10_and_n30",
            gpu.context().info().name
        ));
        let r = gpu.run(
            &models(4),
            &states(4),
            &TIMES,
            &f64_opts(),
            &MasterBatchOptions {
                precision: Precision::F64,
                ..Default::default()
            },
        );
        assert!(matches!(r, Err(MasterBatchError::Gpu(GpuError::NoF64 { .. }))));
        return;
    }
    compare(&gpu, 10, Precision::F64, &TIMES, &f64_opts());
    compare(&gpu, 30, Precision::F64, &TIMES[..3], &f64_opts());
}

/// The band output is the band of the full output, and gives the same moments.
#[test]
fn gpu_band_output_is_the_band_of_the_full_output() {
    let Some(gpu) = kernel("gpu_band_output_is_the_band_of_the_full_output") else {
        return;
    };
    let (models, rho0s) = (models(8), states(8));
    let opts = f32_opts();
    let run = |output| {
        gpu.run(
            &models,
            &rho0s,
            &TIMES[..3],
            &opts,
            &MasterBatchOptions {
                output,
                ..Default::default()
            },
        )
        .expect("gpu batch")
    };
    let (full, band) = (run(BatchOutput::Full), run(BatchOutput::Band));
    for (f, b) in full.elements.iter().zip(&band.elements) {
        let (f, b) = (f.as_ref().unwrap(), b.as_ref().unwrap());
        // Same integration; the hermiticity error of a band is measured on the band only.
        assert_eq!(
            (
                f.stats.steps,
                f.stats.rejected,
                f.stats.rhs_evals,
                f.stats.hermitian
            ),
            (
                b.stats.steps,
                b.stats.rejected,
                b.stats.rhs_evals,
                b.stats.hermitian
            )
        );
        assert_eq!(f.stats.max_trace_error, b.stats.max_trace_error);
        let (Saves::Full(fm), Saves::Band(bm)) = (&f.saves, &b.saves) else {
            panic!("output kinds")
        };
        for (m, band) in fm.iter().zip(bm) {
            for r in 0..m.dim {
                for c in 0..m.dim {
                    match band.get(r, c) {
                        Some(v) => assert_eq!(v, m.get(r, c), "({r},{c})"),
                        None => assert!(r.abs_diff(c) > 2),
                    }
                }
            }
        }
        let (mf, mb) = (f.saves.moments(), b.saves.moments());
        assert_eq!(mf, mb);
    }
}

/// A shared rho0, repeated and zero-length times, and an element that fails alone: the stiff
/// one runs out of steps while the others finish.
#[test]
fn gpu_per_element_failure_and_shared_initial_state() {
    let Some(gpu) = kernel("gpu_per_element_failure_and_shared_initial_state") else {
        return;
    };
    let n = 6;
    let easy = Model {
        n,
        gamma_coll: 0.2,
        ..Default::default()
    };
    let stiff = Model { drive: 400.0, ..easy };
    let rho0 = DensityMatrix::from_pure(&dicke(n, 3.0).unwrap());
    let times = [0.0, 0.0, 0.1, 0.1, 0.2];
    let opts = OdeOptions {
        max_steps: 40,
        ..f32_opts()
    };
    let res = gpu
        .run(
            &[easy, stiff, easy],
            std::slice::from_ref(&rho0),
            &times,
            &opts,
            &MasterBatchOptions::default(),
        )
        .expect("batch");
    assert!(
        matches!(res.elements[1], Err(SolverError::TooManySteps { .. })),
        "{:?}",
        res.elements[1]
    );
    let (want, _) = cpu(&easy, &rho0, &times, &opts);
    for b in [0, 2] {
        let el = res.elements[b].as_ref().expect("easy element");
        let Saves::Full(got) = &el.saves else { panic!() };
        assert_eq!(got.len(), times.len());
        assert_eq!(got[0], got[1]);
        assert_eq!(got[2], got[3]);
        for (g, w) in got.iter().zip(&want) {
            assert!(g.max_abs_diff(w) < 1e-5);
        }
    }
    // Nothing to integrate.
    let empty = gpu
        .run(
            &[easy],
            std::slice::from_ref(&rho0),
            &[],
            &opts,
            &MasterBatchOptions::default(),
        )
        .expect("empty times");
    assert!(empty.elements[0].as_ref().unwrap().saves.is_empty());
    assert!(
        gpu.run(&[], &[], &times, &opts, &MasterBatchOptions::default())
            .unwrap()
            .elements
            .is_empty()
    );
}

/// Refusals before any GPU work: individual rates, mixed N, wrong rho0 size, bad times, and a
/// request beyond the device's storage binding size.
#[test]
fn gpu_refuses_bad_input_and_oversized_requests() {
    let Some(gpu) = kernel("gpu_refuses_bad_input_and_oversized_requests") else {
        return;
    };
    let n = 4;
    let m = Model {
        n,
        gamma_coll: 1.0,
        ..Default::default()
    };
    let rho0 = DensityMatrix::from_pure(&dicke(n, 0.0).unwrap());
    let opts = f32_opts();
    let o = MasterBatchOptions::default();
    let refused = |r: Result<_, MasterBatchError>| {
        matches!(r, Err(MasterBatchError::Input(SolverError::Unsupported { .. })))
    };
    let individual = Model { gamma_down: 0.1, ..m };
    assert!(refused(gpu.run(
        &[m, individual],
        std::slice::from_ref(&rho0),
        &TIMES,
        &opts,
        &o
    )));
    assert!(refused(gpu.run(
        &[m, Model { n: 5, ..m }],
        std::slice::from_ref(&rho0),
        &TIMES,
        &opts,
        &o
    )));
    assert!(refused(gpu.run(
        &[m],
        &[DensityMatrix::zeros(3)],
        &TIMES,
        &opts,
        &o
    )));
    assert!(refused(gpu.run(
        &[m],
        std::slice::from_ref(&rho0),
        &[0.0, 1.0, 0.5],
        &opts,
        &o
    )));
    assert!(refused(gpu.run(
        &[m, m],
        &[rho0.clone(), rho0.clone(), rho0.clone()],
        &TIMES,
        &opts,
        &o
    )));
    // Output beyond one binding: saves x 25 levels^2 x 8 bytes.
    let limit = gpu.context().limits().max_storage_buffer_binding_size;
    let saves = (limit / (25 * 8) + 2) as usize;
    let times: Vec<f64> = (0..saves).map(|i| i as f64 * 1e-3).collect();
    let r = gpu.run(&[m], std::slice::from_ref(&rho0), &times, &opts, &o);
    assert!(
        matches!(r, Err(MasterBatchError::Gpu(GpuError::TooLarge { .. }))),
        "{r:?}"
    );
}

/// The split of an integration into dispatches changes nothing: with 32 lanes an invocation
/// owns ~30 elements at N = 30, so the ~400 step attempts of this problem need ~90,000 loop
/// iterations per invocation, past llvmpipe's limit of 65535 per dispatch (module doc of
/// `master_batch`); the kernel's loop budget splits them. One attempt per dispatch, the
/// automatic split and 256 lanes give the same numbers, and the CPU twin's within 1e-8.
#[test]
fn gpu_split_into_dispatches_changes_nothing() {
    let Some(gpu) = kernel("gpu_split_into_dispatches_changes_nothing") else {
        return;
    };
    if !gpu.context().info().has_f64 {
        report_skip(&format!(
            "SKIPPED: adapter `{}` has no SHADER_F64: gpu_split_into_dispatches_changes_nothing",
            gpu.context().info().name
        ));
        return;
    }
    let n = 30;
    let (models, rho0s) = (&models(n)[1..2], &states(n)[0..1]);
    let times = &TIMES[..3];
    let opts = f64_opts();
    let run = |lanes, attempts_per_dispatch| {
        let o = MasterBatchOptions {
            precision: Precision::F64,
            lanes,
            attempts_per_dispatch,
            ..Default::default()
        };
        let r = gpu.run(models, rho0s, times, &opts, &o).expect("gpu batch");
        let dispatches = r.dispatches;
        let el = r.elements.into_iter().next().unwrap().expect("element");
        let Saves::Full(m) = el.saves else { panic!() };
        (m, el.stats.steps + el.stats.rejected, dispatches)
    };
    let (auto, attempts, d_auto) = run(32, 0);
    let (one, _, d_one) = run(32, 1);
    let (wide, _, _) = run(256, 0);
    assert!(
        attempts > 300,
        "{attempts} attempts: the test needs a long integration"
    );
    assert!(
        d_one > d_auto && d_auto > 1,
        "dispatches: {d_one} (one attempt each), {d_auto} (auto)"
    );
    let split = auto
        .iter()
        .zip(&one)
        .map(|(a, b)| a.max_abs_diff(b))
        .fold(0.0, f64::max);
    assert_eq!(split, 0.0, "automatic split vs one attempt per dispatch");
    // 256 lanes sum the error norm in another order: equal to rounding.
    let (want, _) = cpu(&models[0], &rho0s[0], times, &opts);
    for ((a, w), g) in auto.iter().zip(&wide).zip(&want) {
        assert!(a.max_abs_diff(w) < 1e-12);
        assert!(a.max_abs_diff(g) < 1e-8, "vs CPU: {:e}", a.max_abs_diff(g));
    }
}

/// Manual measurement (module doc): 64 parameter points at N = 50, GPU f32 / f64 vs CPU.
#[test]
#[ignore = "measurement, run by hand with --ignored --nocapture"]
fn measure_batch64_n50() {
    let Some(gpu) = kernel("measure_batch64_n50") else {
        return;
    };
    let n = 50;
    let half = n as f64 / 2.0;
    let omega_c = half * (1.0f64 + 4.0 * 0.25).sqrt();
    let count: usize = std::env::var("MB_COUNT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let models: Vec<Model> = (0..count)
        .map(|i| Model {
            n,
            chi: 0.5,
            gamma_coll: 1.0,
            drive: omega_c * (0.5 + 1.6 * i as f64 / (count.max(2) - 1) as f64),
            ..Default::default()
        })
        .collect();
    let rho0 = DensityMatrix::from_pure(&dicke(n, -half).unwrap());
    let times: Vec<f64> = (0..=10).map(|i| 0.05 * i as f64).collect();
    let opts = f32_opts();
    let lanes: Vec<u32> = std::env::var("MB_LANES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![256]);
    let mut precisions = vec![Precision::F32];
    if gpu.context().info().has_f64 && std::env::var("MB_F32_ONLY").is_err() {
        precisions.push(Precision::F64);
    }
    // Warm-up: compile the pipelines (Mesa compiles at first dispatch).
    for &p in &precisions {
        for &l in &lanes {
            let o = MasterBatchOptions {
                precision: p,
                lanes: l,
                ..Default::default()
            };
            gpu.run(&models[..1], std::slice::from_ref(&rho0), &times[..2], &opts, &o)
                .unwrap();
        }
    }
    let t = std::time::Instant::now();
    let mut want = Vec::new();
    let mut cpu_steps = 0;
    let mut cpu_steps_each = Vec::new();
    for m in &models {
        let (w, s) = cpu(m, &rho0, &times, &opts);
        cpu_steps += s;
        cpu_steps_each.push(s);
        want.push(w);
    }
    let cpu_s = t.elapsed().as_secs_f64();
    eprintln!(
        "CPU master::evolve x64 sequential (f64, {} rayon threads): {cpu_s:.3} s, {cpu_steps} steps",
        rayon::current_num_threads()
    );
    for &p in &precisions {
        for &l in &lanes {
            let o = MasterBatchOptions {
                precision: p,
                lanes: l,
                ..Default::default()
            };
            let t = std::time::Instant::now();
            let res = gpu
                .run(&models, std::slice::from_ref(&rho0), &times, &opts, &o)
                .unwrap();
            let gpu_s = t.elapsed().as_secs_f64();
            let mut dev: f64 = 0.0;
            let mut steps = 0;
            let mut flips = 0;
            for (i, (el, w)) in res.elements.iter().zip(&want).enumerate() {
                let el = el.as_ref().unwrap();
                steps += el.stats.steps;
                let Saves::Full(g) = &el.saves else { panic!() };
                let mut d: f64 = 0.0;
                for (a, b) in g.iter().zip(w) {
                    d = d.max(a.max_abs_diff(b));
                }
                if el.stats.steps != cpu_steps_each[i] {
                    flips += 1;
                }
                if std::env::var("MB_VERBOSE").is_ok() {
                    eprintln!(
                        "  element {i}: dev {d:.2e} steps {} / CPU {}, rejected {}",
                        el.stats.steps, cpu_steps_each[i], el.stats.rejected
                    );
                }
                dev = dev.max(d);
            }
            eprintln!(
                "GPU {} {p:?} lanes {l}: {gpu_s:.3} s ({:.2}x CPU), {steps} steps ({flips} elements differ in step count), {} dispatches, max dev vs CPU {dev:.2e}",
                res.adapter,
                gpu_s / cpu_s,
                res.dispatches
            );
        }
    }
}
