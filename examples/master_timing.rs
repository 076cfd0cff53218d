//! Timing of the collective master-equation solver on the lead's benchmark problem
//! (seed 001: Gamma = 1, chi = 0.9375, Omega = 1.48 N/2, from the south pole).
//!
//! ```text
//! cargo run --release --example master_timing -- evolve 400 [t_end] [rtol] [atol]
//! cargo run --release --example master_timing -- steady 400 [Omega/Omega_c]
//! ```
use dicke::c64;
use dicke::model::Model;
use dicke::solver::master::{evolve, steady_state};
use dicke::solver::ode::OdeOptions;
use dicke::state::DensityMatrix;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map(String::as_str).unwrap_or("evolve");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(400);
    let arg = |i: usize, d: f64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (gamma, chi) = (1.0, 0.9375);
    let mut model = Model {
        n,
        gamma_coll: gamma,
        chi,
        drive: 1.48 * n as f64 / 2.0,
        ..Default::default()
    };
    match what {
        "evolve" => {
            let t_end = arg(3, 0.05);
            let opts = OdeOptions {
                rtol: arg(4, 1e-6),
                atol: arg(5, 1e-8),
                ..Default::default()
            };
            let mut psi = vec![c64::new(0.0, 0.0); n + 1];
            psi[0] = c64::new(1.0, 0.0);
            let rho0 = DensityMatrix::from_pure(&psi);
            let times: Vec<f64> = (0..51).map(|i| t_end * i as f64 / 50.0).collect();
            let mut jz_last = 0.0;
            let t0 = Instant::now();
            let stats = evolve(&model, &rho0, &times, &opts, &mut |_, _, rho| {
                jz_last = (0..=n)
                    .map(|k| (k as f64 - n as f64 / 2.0) * rho.get(k, k).re)
                    .sum();
            })
            .expect("evolve");
            println!(
                "evolve N={n} t_end={t_end} rtol={} atol={}: {:.3} s, <Jz>(t_end) = {jz_last:.10}, {stats:?}",
                opts.rtol,
                opts.atol,
                t0.elapsed().as_secs_f64()
            );
        }
        "steady" => {
            let omega_c = n as f64 / 2.0 * (gamma * gamma + 4.0 * chi * chi).sqrt();
            model.drive = arg(3, 0.9) * omega_c;
            let t0 = Instant::now();
            let (rho, stats) = steady_state(&model).expect("steady_state");
            let jz: f64 = (0..=n)
                .map(|k| (k as f64 - n as f64 / 2.0) * rho.get(k, k).re)
                .sum();
            println!(
                "steady N={n} Omega/Omega_c={}: {:.3} s, <Jz> = {jz:.10}, {stats:?}",
                arg(3, 0.9),
                t0.elapsed().as_secs_f64()
            );
        }
        other => panic!("unknown mode {other}"),
    }
}
