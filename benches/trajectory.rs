//! Criterion benchmarks of the Monte-Carlo wave-function ensembles (issue 3's problem):
//! seed 001's model (H = chi J+J- + Omega Jx, Gamma D[J-], 2 chi = 1.875 Gamma,
//! 2 Omega/(N Gamma) = 1.48), N = 100 from the south pole, t in [0, 0.2/Gamma], 201 saves,
//! NTRAJ trajectories per sample:
//! - the CPU twin (rayon over trajectories, every core), f32 and f64;
//! - the WGSL kernel on a GPU, only with DICKE_BENCH_GPU=1 (any adapter `--backend gpu`
//!   accepts, lavapipe included: there a sample takes ~10 s).
//!
//! Trajectories per second = NTRAJ / median. Run: `cargo bench --bench trajectory`; the
//! same-run comparison with QuTiP's mcsolve is `bench/qutip_mcsolve.sh` (BENCHMARKS.md).

use criterion::{Criterion, criterion_group, criterion_main};
use dicke::backend::gpu::trajectory::{TrajectoryGpu, run_gpu};
use dicke::backend::gpu::{GpuContext, GpuOptions};
use dicke::model::Model;
use dicke::solver::trajectory::{self, Precision, TrajectoryOptions};
use dicke::state::pure;
use std::sync::Arc;
use std::time::Duration;

const N: usize = 100;
const NTRAJ: u64 = 200;

fn benches(c: &mut Criterion) {
    let model = Model {
        n: N,
        gamma_coll: 1.0,
        chi: 1.875 / 2.0,
        drive: 1.48 * N as f64 / 2.0,
        ..Model::default()
    };
    let psi0 = pure::dicke(N, -(N as f64) / 2.0).expect("south pole");
    let times: Vec<f64> = (0..201).map(|i| 0.2 * i as f64 / 200.0).collect();
    let mut g = c.benchmark_group("trajectory");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(1));
    for precision in [Precision::F32, Precision::F64] {
        let opts = TrajectoryOptions {
            ntraj: NTRAJ,
            precision,
            ..Default::default()
        };
        g.bench_function(format!("cpu/{}/N={N}/ntraj={NTRAJ}", precision.name()), |b| {
            b.iter(|| trajectory::run_cpu(&model, &psi0, &times, &opts).expect("cpu ensemble"))
        });
    }
    if std::env::var("DICKE_BENCH_GPU").is_ok_and(|v| v == "1") {
        let ctx = Arc::new(GpuContext::new(&GpuOptions::explicit()).expect("a GPU adapter"));
        let engine = TrajectoryGpu::new(Arc::clone(&ctx)).expect("trajectory kernels");
        for precision in [Precision::F32, Precision::F64] {
            if precision == Precision::F64 && !ctx.info().has_f64 {
                continue;
            }
            let opts = TrajectoryOptions {
                ntraj: NTRAJ,
                precision,
                ..Default::default()
            };
            g.bench_function(format!("gpu/{}/N={N}/ntraj={NTRAJ}", precision.name()), |b| {
                b.iter(|| run_gpu(&engine, &model, &psi0, &times, &opts).expect("gpu ensemble"))
            });
        }
    }
    g.finish();
}

criterion_group!(trajectory_benches, benches);
criterion_main!(trajectory_benches);
