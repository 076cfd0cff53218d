//! Timing of the batched cumulant integrator (`solver::cumulant::batch`) on seed 002's model:
//! a grid of Upsilon/Upsilon_c x gamma_s/Gamma (chi = Gamma = 1), coherent along -x, to
//! t = 3/Gamma with 301 saves. BENCHMARKS.md records the numbers.
//!
//! `cargo run --release --example cumulant_sweep_timing -- N POINTS [RTOL] [RUNS]`
//! (POINTS is rounded to a square grid; RTOL defaults to the sweep task's 1e-8, atol = RTOL/100;
//! RUNS, comma-separated, default `scalar,lanes`: `scalar` the scalar batch `integrate_batch`,
//! `lanes` the lane integrator on this CPU's widest instruction set, `plain`, `avx2`, `avx512`
//! the lane integrator on that one). Each run after the first is checked bit for bit against it.

use dicke::model::Model;
use dicke::solver::cumulant::lanes::{self, Isa};
use dicke::solver::cumulant::{self, batch};
use dicke::state::pure;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let points: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let rtol: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1e-8);
    let side = (points as f64).sqrt().round().max(1.0) as usize;
    let upsilon_c = 5f64.sqrt();
    let mut pars = Vec::new();
    for i in 0..side {
        for k in 0..side {
            let u = 0.2 + 1.0 * i as f64 / (side.max(2) - 1) as f64; // Upsilon/Upsilon_c in [0.2, 1.2]
            let gs = 50.0 * k as f64 / (side.max(2) - 1) as f64; // gamma_s/Gamma in [0, 50]
            let m = Model {
                n,
                drive: u * upsilon_c * n as f64 / 2.0,
                chi: 1.0,
                gamma_coll: 1.0,
                gamma_down: gs,
                ..Model::default()
            };
            pars.push(cumulant::params(&m));
        }
    }
    let y0 = cumulant::from_pure(&pure::coherent(
        n,
        std::f64::consts::FRAC_PI_2,
        std::f64::consts::PI,
    ));
    let y0s = vec![y0; pars.len()];
    let grid = batch::SaveGrid {
        t0: 0.0,
        t_end: 3.0,
        nsave: 301,
        t_min: 0.003,
        t_late: 2.7,
    };
    let o = batch::BatchOptions {
        rtol,
        atol: rtol * 1e-2,
        max_steps: 100_000_000,
    };
    let runs = args.get(4).map(String::as_str).unwrap_or("scalar,lanes");
    let mut first: Option<Vec<batch::PointResult>> = None;
    for run in runs.split(',') {
        let t0 = Instant::now();
        let isa = |i: Isa| lanes::integrate_batch_lanes_with(&pars, &y0s, &grid, &o, i, 512);
        let res = match run {
            "scalar" => batch::integrate_batch(&pars, &y0s, &grid, &o),
            "lanes" => lanes::integrate_batch_lanes(&pars, &y0s, &grid, &o),
            "plain" => isa(Isa::Plain),
            "avx2" => isa(Isa::Avx2),
            "avx512" => isa(Isa::Avx512),
            other => panic!("unknown run `{other}`"),
        };
        let dt = t0.elapsed().as_secs_f64();
        let steps: u64 = res.iter().map(|r| r.steps + r.rejected).sum();
        let rejected: u64 = res.iter().map(|r| r.rejected).sum();
        let failed = res.iter().filter(|r| r.status != batch::Status::Ok).count();
        let best = res.iter().map(|r| r.xi2_min).fold(f64::INFINITY, f64::min);
        let same = first.as_ref().map(|f| {
            let b = |r: &batch::PointResult| {
                format!(
                    "{:?}",
                    (
                        r.y.map(f64::to_bits),
                        r.xi2_min.to_bits(),
                        r.t_xi2_min.to_bits(),
                        r.jz_late.to_bits(),
                        r.steps,
                        r.rejected,
                        r.status
                    )
                )
            };
            f.iter().zip(&res).all(|(a, c)| b(a) == b(c))
        });
        println!(
            "{run}: N = {n}, {} points ({side} x {side}), rtol {rtol:e}: {dt:.2} s, {:.0} points/s, {:.0} step attempts/point ({:.0} rejected), {failed} failed, best xi2_min {best:.4}, threads {}{}",
            pars.len(),
            pars.len() as f64 / dt,
            steps as f64 / pars.len() as f64,
            rejected as f64 / pars.len() as f64,
            rayon::current_num_threads(),
            same.map(|s| format!(", bit-identical to the first run: {s}"))
                .unwrap_or_default()
        );
        if first.is_none() {
            first = Some(res);
        }
    }
}
