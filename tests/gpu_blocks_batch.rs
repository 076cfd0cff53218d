//! The batched GPU kernel on the permutation-invariant block master equation
//! (`MasterBatchGpu::run_blocks`, single-atom rates) against its CPU twin `solver::blocks::evolve`,
//! on a batch covering every term of the model: all collective terms (omega0, Omega with phi,
//! chi, chi_z, Gamma, w, Gamma_phi) and the three single-atom rates gamma_down, gamma_up,
//! gamma_phi, on in the first element and in different combinations in the others (so the
//! batch's union of inflow terms gives some elements zero factors), from different initial
//! states: coherent and Dicke states in j = N/2, a mixture with weight in lower blocks, and a
//! non-Hermitian block operator (full-storage path on both sides). N = 5 (odd: the last block
//! is j = 1/2) and N = 8.
//!
//! GPU tests use `backend::gpu::test_context`: without an adapter they print
//! `SKIPPED: no GPU adapter ...` to stderr and return; with `DICKE_REQUIRE_GPU=1` (CI, with
//! Mesa's lavapipe installed) a missing adapter fails them.
//!
//! # Tolerances (stated, not tuned)
//!
//! Same algorithm on both sides (module doc of `master_batch`): the block stencil and the inflow
//! with the CPU's f64 coefficients rounded once, the same tableau, the same error norm over the
//! CPU's packed per-block storage, the same controller. So:
//!
//! * **f64** (rtol 1e-10, atol 1e-12): the two differ by rounding only, ~ (steps) x eps x |L| h
//!   relative to the scale |rho0|_max, far below 1e-12 for the ~10-100 steps here; the bound is
//!   1e-12 |rho0|_max per element, and the step counts must be equal (a near-threshold
//!   accept/reject flip would show as unequal counts: none is expected at rtol 1e-10 on these
//!   short runs). Trace within 1e-12.
//! * **f32** (rtol 1e-6, atol 1e-9): the bound of `tests/gpu_master_batch.rs`,
//!   `8 (rtol |rho0|_max + atol) + 2 S u |rho0|_max` per element (u = 2^-24, S accepted steps):
//!   a few tolerance units for a flipped step decision plus linearly accumulated rounding.
//!   Trace within S u sum_j (2j+1) (every diagonal entry rounded once per step).
#![cfg(feature = "gpu")] // GPU kernels only exist in builds with the `gpu` feature

use dicke::backend::gpu::master_batch::{
    BatchOutput, MasterBatchGpu, MasterBatchOptions, Saves, block_state_from_bands,
};
use dicke::backend::gpu::report_skip;
use dicke::c64;
use dicke::model::Model;
use dicke::precision::Precision;
use dicke::solver::blocks;
use dicke::solver::ode::OdeOptions;
use dicke::state::pure::{coherent, dicke};
use dicke::state::{BlockState, DensityMatrix};
use gpu_batch::{every_collective_term, f32_bounds, kernel, max_abs, opts};

#[path = "common/gpu_batch.rs"]
mod gpu_batch;

/// Four models: every term in the first; then seed 002's (one-axis twisting, drive, gamma_down),
/// a dephasing and pumping mix, and seed 000's (drive, collective and single-atom decay).
fn models(n: usize) -> Vec<Model> {
    let half = n as f64 / 2.0;
    let base = Model {
        n,
        ..Default::default()
    };
    vec![
        Model {
            gamma_down: 0.8,
            gamma_up: 0.3,
            gamma_phi: 0.5,
            ..every_collective_term(n)
        },
        Model {
            chi: 1.0,
            drive: 0.9 * half,
            gamma_coll: 1.0,
            gamma_down: 2.0,
            ..base
        },
        Model {
            omega0: -0.5,
            drive: 1.0,
            phi: -1.1,
            pump_coll: 0.2,
            gamma_up: 0.7,
            gamma_phi: 1.2,
            ..base
        },
        Model {
            drive: 0.75 * half,
            gamma_coll: 2.0,
            gamma_down: 1.0,
            ..base
        },
    ]
}

/// Four initial states: a coherent state along -x, a Dicke state, a mixture with weight in the
/// two largest lower blocks, and the non-Hermitian |a><b| in j = N/2 plus an off-diagonal entry
/// in the next block.
fn states(n: usize) -> Vec<BlockState> {
    let half = n as f64 / 2.0;
    let coh = BlockState::from_symmetric(&DensityMatrix::from_pure(&coherent(
        n,
        std::f64::consts::FRAC_PI_2,
        std::f64::consts::PI,
    )));
    let dk = BlockState::from_symmetric(&DensityMatrix::from_pure(&dicke(n, half - 1.0).unwrap()));
    let mut mixed = BlockState::from_symmetric(&DensityMatrix::from_pure(&coherent(n, 1.0, 0.3)));
    for z in mixed.data.iter_mut() {
        *z *= 0.5;
    }
    for b in 1..mixed.num_blocks().min(3) {
        let d = mixed.dim(b);
        let o = mixed.offsets[b];
        for k in 0..d {
            mixed.data[o + k * d + k] += c64::new(0.25 / d as f64, 0.0);
        }
        if d > 1 {
            mixed.data[o + 1] += c64::new(0.03, 0.02);
            mixed.data[o + d] += c64::new(0.03, -0.02);
        }
    }
    let a = coherent(n, 0.8, 0.1);
    let bb = coherent(n, 1.9, 1.2);
    let mut offdiag = BlockState::zeros(n);
    let d0 = n + 1;
    for (r, ar) in a.iter().enumerate() {
        for (c, bc) in bb.iter().enumerate() {
            offdiag.data[r * d0 + c] = ar * bc.conj();
        }
    }
    let o1 = offdiag.offsets[1];
    offdiag.data[o1 + 1] = c64::new(0.2, 0.1);
    vec![coh, dk, mixed, offdiag]
}

fn cpu(model: &Model, rho0: &BlockState, times: &[f64], opts: &OdeOptions) -> (Vec<BlockState>, usize) {
    let mut out = Vec::new();
    let st =
        blocks::evolve(model, rho0, times, opts, &mut |_, _, s| out.push(s.clone())).expect("cpu evolve");
    (out, st.steps)
}

fn max_diff(a: &BlockState, b: &BlockState) -> f64 {
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).norm())
        .fold(0.0, f64::max)
}

const TIMES: [f64; 5] = [0.0, 0.05, 0.1, 0.2, 0.3];

/// GPU block batch vs `blocks::evolve`, element by element, within the bounds of the module doc.
fn compare(gpu: &MasterBatchGpu, n: usize, precision: Precision, output: BatchOutput) {
    let (models, rho0s) = (models(n), states(n));
    let opts = opts(precision);
    let res = gpu
        .run_blocks(
            &models,
            &rho0s,
            &TIMES,
            &opts,
            &MasterBatchOptions {
                precision,
                output,
                ..Default::default()
            },
        )
        .expect("gpu batch");
    assert_eq!(res.elements.len(), models.len());
    let levels: usize = (0..rho0s[0].num_blocks()).map(|b| rho0s[0].dim(b)).sum();
    for (b, el) in res.elements.iter().enumerate() {
        let el = el.as_ref().unwrap_or_else(|e| panic!("element {b}: {e}"));
        let got: Vec<BlockState> = match &el.saves {
            Saves::Blocks(v) => {
                assert_eq!(output, BatchOutput::Full);
                v.clone()
            }
            Saves::BlockBands(v) => {
                assert_eq!(output, BatchOutput::Band);
                v.iter().map(|x| block_state_from_bands(x)).collect()
            }
            _ => panic!("block saves expected"),
        };
        let (want, cpu_steps) = cpu(&models[b], &rho0s[b], &TIMES, &opts);
        assert_eq!(got.len(), TIMES.len());
        let scale = max_abs(&rho0s[b].data);
        // Band output: compare the band only (the rest is 0 by construction).
        let dev = got
            .iter()
            .zip(&want)
            .map(|(g, w)| {
                let mut w = w.clone();
                if output == BatchOutput::Band {
                    for blk in 0..w.num_blocks() {
                        let (d, o) = (w.dim(blk), w.offsets[blk]);
                        for r in 0..d {
                            for c in 0..d {
                                if r.abs_diff(c) > 2 {
                                    w.data[o + r * d + c] = c64::new(0.0, 0.0);
                                }
                            }
                        }
                    }
                }
                max_diff(g, &w)
            })
            .fold(0.0, f64::max);
        let (bound, trace_bound) = match precision {
            Precision::F32 => f32_bounds(&opts, scale, el.stats.steps, levels),
            Precision::F64 => (1e-12 * scale, 1e-12),
        };
        eprintln!(
            "N={n} {precision:?} {output:?} element {b}: max dev {dev:.2e} (bound {bound:.2e}), steps GPU {} CPU \
             {cpu_steps}, rejected {}, trace err {:.2e}, herm {}",
            el.stats.steps, el.stats.rejected, el.stats.max_trace_error, el.stats.hermitian
        );
        assert!(
            dev <= bound,
            "N={n} {precision:?} element {b}: deviation {dev:e} > {bound:e}"
        );
        assert_eq!(el.stats.hermitian, b != 3, "element {b}: storage kind");
        if precision == Precision::F64 {
            assert_eq!(el.stats.steps, cpu_steps, "N={n} element {b}: steps");
        }
        if el.stats.hermitian {
            assert!(
                el.stats.max_trace_error <= trace_bound,
                "N={n} {precision:?} element {b}: trace error {:e} > {trace_bound:e}",
                el.stats.max_trace_error
            );
        }
    }
}

#[test]
fn gpu_blocks_f32_matches_cpu() {
    let Some(gpu) = kernel("gpu_blocks_f32_matches_cpu") else {
        return;
    };
    compare(&gpu, 8, Precision::F32, BatchOutput::Full);
    compare(&gpu, 5, Precision::F32, BatchOutput::Band);
}

#[test]
fn gpu_blocks_f64_matches_cpu() {
    let Some(gpu) = kernel("gpu_blocks_f64_matches_cpu") else {
        return;
    };
    if !gpu.context().info().has_f64 {
        report_skip(&format!(
            "SKIPPED: adapter `{}` has no SHADER_F64: gpu_blocks_f64_matches_cpu",
            gpu.context().info().name
        ));
        return;
    }
    compare(&gpu, 5, Precision::F64, BatchOutput::Full);
    compare(&gpu, 8, Precision::F64, BatchOutput::Full);
}

/// Refused before any allocation: blocks whose work vectors exceed the device's storage
/// binding (N = 250 in f32: 10 x 2.67e6 complex numbers, 213 MB, against lavapipe's 128 MiB),
/// and initial states of the wrong N.
#[test]
fn gpu_blocks_refuse_oversized_and_mismatched_input() {
    let Some(gpu) = kernel("gpu_blocks_refuse_oversized_and_mismatched_input") else {
        return;
    };
    let o = opts(Precision::F32);
    let mut model = models(4)[0];
    let wrong = gpu.run_blocks(
        &[model],
        &states(5)[..1],
        &TIMES,
        &o,
        &MasterBatchOptions::default(),
    );
    let e = wrong.unwrap_err().to_string();
    assert!(e.contains("rho0s[0]") && e.contains("N = 4"), "{e}");
    let limits = gpu.context().limits();
    let binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
    let (work, _) = dicke::backend::gpu::master_batch::block_element_bytes(
        250,
        TIMES.len(),
        BatchOutput::Band,
        Precision::F32,
    );
    if work > binding {
        model.n = 250;
        let rho = BlockState::from_symmetric(&DensityMatrix::from_pure(&dicke(250, -125.0).unwrap()));
        let e = gpu
            .run_blocks(&[model], &[rho], &TIMES, &o, &MasterBatchOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("blocks R_j of N = 250"), "{e}");
    }
}
