//! Criterion benchmarks of the exact collective master equation (CPU, f64), on seed 001's
//! model (H = chi J+J- + Omega Jx, Gamma D[J-], 2 chi = 1.875 Gamma):
//! - steady state at Omega = 0.938 Omega_c (sparse LU with the trace constraint);
//! - evolution from the south pole at 2 Omega/(N Gamma) = 1.48 to t_end (51 save points),
//!   rtol 1e-6 / atol 1e-8 (QuTiP's mesolve defaults), with t_end shortened at large N so
//!   a sample stays under a minute (the cost is linear in t_end at fixed N).
//!
//! Sizes are listed once in SIZES; N = 1000 (about 50 s and 9 GB per steady state, 25 s per
//! evolution sample) joins only with DICKE_BENCH_LARGE=1, since criterion takes at least 10
//! samples. Run: `cargo bench --bench master`; single-shot timings at any N:
//! `cargo run --release --example master_timing -- evolve|steady N ...`.

use criterion::{Criterion, criterion_group, criterion_main};
use dicke::model::Model;
use dicke::solver::master;
use dicke::solver::ode::OdeOptions;
use dicke::state::{DensityMatrix, pure};
use std::time::Duration;

/// (N, t_end of the evolution benchmark)
const SIZES: [(usize, f64); 3] = [(100, 0.05), (400, 0.05), (1000, 0.005)];
const LARGE_N: usize = 1000;

fn model(n: usize, omega: f64) -> Model {
    Model {
        n,
        drive: omega,
        chi: 1.875 / 2.0,
        gamma_coll: 1.0,
        ..Model::default()
    }
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("master");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(1));
    let large = std::env::var("DICKE_BENCH_LARGE").is_ok_and(|v| v == "1");
    for (n, t_end) in SIZES {
        if n >= LARGE_N && !large {
            continue;
        }
        let omega_c = n as f64 / 2.0 * (1.0f64 + 4.0 * (1.875f64 / 2.0).powi(2)).sqrt();
        let m = model(n, 0.938 * omega_c);
        g.bench_function(format!("steady_state/N={n}"), |b| {
            b.iter(|| master::steady_state(&m).expect("steady state"))
        });
        let m = model(n, 1.48 * n as f64 / 2.0);
        let rho0 = DensityMatrix::from_pure(&pure::dicke(n, -(n as f64) / 2.0).expect("south pole"));
        let times: Vec<f64> = (0..51).map(|i| t_end * i as f64 / 50.0).collect();
        let opts = OdeOptions {
            rtol: 1e-6,
            atol: 1e-8,
            ..OdeOptions::default()
        };
        g.bench_function(format!("evolve/N={n}/t_end={t_end}"), |b| {
            b.iter(|| master::evolve(&m, &rho0, &times, &opts, &mut |_, _, _| {}).expect("evolve"))
        });
    }
    g.finish();
}

criterion_group!(master_benches, benches);
criterion_main!(master_benches);
