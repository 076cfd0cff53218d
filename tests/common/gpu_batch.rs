//! Shared set-up of the batched master-equation GPU tests (`tests/gpu_master_batch.rs`,
//! `tests/gpu_blocks_batch.rs`): the kernel built once per test binary, the tolerances of each
//! precision and the f32 bound both files state in their module docs. Included with
//! `#[path = "common/gpu_batch.rs"] mod gpu_batch;`.

use dicke::backend::gpu::master_batch::MasterBatchGpu;
use dicke::backend::gpu::test_context;
use dicke::c64;
use dicke::model::Model;
use dicke::precision::Precision;
use dicke::solver::ode::OdeOptions;
use std::sync::{Arc, OnceLock};

/// The unit roundoff of f32, 2^-24.
pub const U32: f64 = 5.960_464_477_539_063e-8;

/// The kernel, built once per test binary (None: skipped, reported by `test_context`).
pub fn kernel(test: &str) -> Option<Arc<MasterBatchGpu>> {
    let ctx = test_context(test)?;
    static K: OnceLock<Arc<MasterBatchGpu>> = OnceLock::new();
    Some(Arc::clone(K.get_or_init(|| {
        Arc::new(MasterBatchGpu::new(ctx).expect("master_batch pipelines"))
    })))
}

/// The tolerances of each precision: rtol 1e-6, atol 1e-9 in f32 (the f32 kernel needs
/// rtol >= ~1e-6); rtol 1e-10, atol 1e-12 in f64.
pub fn opts(precision: Precision) -> OdeOptions {
    match precision {
        Precision::F32 => OdeOptions {
            rtol: 1e-6,
            atol: 1e-9,
            ..Default::default()
        },
        Precision::F64 => OdeOptions {
            rtol: 1e-10,
            atol: 1e-12,
            ..Default::default()
        },
    }
}

/// The f32 bounds of the module docs for an element of scale `scale` (|rho0|_max) after
/// `steps` accepted steps with `levels` diagonal entries: per entry
/// `8 (rtol scale + atol) + 2 S u scale`, and `S u levels` for the trace.
pub fn f32_bounds(opts: &OdeOptions, scale: f64, steps: usize, levels: usize) -> (f64, f64) {
    let s = steps as f64;
    (
        8.0 * (opts.rtol * scale + opts.atol) + 2.0 * s * U32 * scale,
        s * U32 * levels as f64,
    )
}

/// max |z| over the entries.
pub fn max_abs(data: &[c64]) -> f64 {
    data.iter().map(|z| z.norm()).fold(0.0, f64::max)
}

/// N atoms with every collective term on (omega0, Omega with phi, chi, chi_z, Gamma, w,
/// Gamma_phi): the first model of both batches (the block batch adds single-atom rates).
pub fn every_collective_term(n: usize) -> Model {
    Model {
        n,
        omega0: 0.7,
        drive: 1.3,
        phi: 0.4,
        chi: 0.9,
        chi_z: -0.35,
        gamma_coll: 1.1,
        pump_coll: 0.45,
        dephase_coll: 0.6,
        ..Default::default()
    }
}
