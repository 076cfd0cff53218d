//! Points per second of the batched cumulant integrator, CPU twin and GPU in the same run, on
//! seed 002's model (Fig. 3a / S1a style): H = chi J+J- + Omega Jx, Gamma D[J-], single-atom
//! decay gamma_s, N = 2000, chi = Gamma = 1, Omega = u Upsilon_c N / 2, from the coherent state
//! along -x, t in [0, 3/Gamma], saves every 1e-3/Gamma (3001), xi^2 minimum after t_min = 0.003,
//! <Jz> averaged over t >= 2. The grid: u = Upsilon/Upsilon_c in [0.5, 1.1] x
//! log10(gamma_s/Gamma) in [-1, 2.5], `side` x `side` points.
//!
//! ```text
//! cargo run --release --example cumulant_batch_bench -- [side] [what]
//! ```
//!
//! `what` (comma-separated, default `cpu8,cpu6,gpu32,gpu64`): `cpu8` integrate_batch at rtol
//! 1e-8 / atol 1e-10 (the scenarios' tolerances), `cpu6` at 1e-6 / 1e-8, `gpu32` the f32 kernel
//! at 1e-6 / 1e-8, `gpu32t` the f32 kernel at 1e-8 / 1e-10 (below its accuracy floor: for
//! comparison only), `gpu64` the f64 kernel at 1e-8 / 1e-10. The GPU is a
//! real one if present, else lavapipe. Prints points/s and the largest |xi2_min| difference
//! (dB) of each run from the first.
use dicke::backend::gpu::cumulant_batch::CumulantBatchGpu;
use dicke::backend::gpu::{GpuContext, GpuOptions};
use dicke::model::Model;
use dicke::solver::cumulant::batch::{BatchOptions, PointResult, SaveGrid, Status, integrate_batch};
use dicke::solver::cumulant::{self, NPAR, NVAR, params};
use dicke::solver::trajectory::Precision;
use dicke::state::pure;
use std::sync::Arc;
use std::time::Instant;

fn db(x: f64) -> f64 {
    10.0 * x.log10()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let side: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let what = args.get(2).map(String::as_str).unwrap_or("cpu8,cpu6,gpu32,gpu64");
    let n = 2000usize;
    let (gamma, chi) = (1.0f64, 1.0f64);
    let upsilon_c = (gamma * gamma + 4.0 * chi * chi).sqrt();
    let y0 = cumulant::from_pure(&pure::coherent(
        n,
        std::f64::consts::FRAC_PI_2,
        std::f64::consts::PI,
    ));
    let mut pars: Vec<[f64; NPAR]> = Vec::new();
    for i in 0..side {
        for j in 0..side {
            let f = |k: usize| {
                if side > 1 {
                    k as f64 / (side - 1) as f64
                } else {
                    0.5
                }
            };
            let u = 0.5 + 0.6 * f(i);
            let gamma_s = 10f64.powf(-1.0 + 3.5 * f(j));
            let m = Model {
                n,
                gamma_coll: gamma,
                chi,
                drive: u * upsilon_c * n as f64 / 2.0,
                gamma_down: gamma_s,
                ..Default::default()
            };
            pars.push(params(&m));
        }
    }
    let y0s: Vec<[f64; NVAR]> = vec![y0; pars.len()];
    let grid = SaveGrid {
        t0: 0.0,
        t_end: 3.0,
        nsave: 3001,
        t_min: 0.003,
        t_late: 2.0,
    };
    let tol = |rtol: f64, atol: f64| BatchOptions {
        rtol,
        atol,
        max_steps: 10_000_000,
    };
    let gpu = if what.contains("gpu") {
        match GpuContext::new(&GpuOptions::explicit()) {
            Ok(ctx) => {
                let ctx = Arc::new(ctx);
                eprintln!("GPU adapter: {}", ctx.info().name);
                Some(CumulantBatchGpu::new(ctx).expect("cumulant_batch kernel"))
            }
            Err(e) => {
                eprintln!("no GPU: {e}");
                None
            }
        }
    } else {
        None
    };
    println!(
        "{} points (N = {n}, t_end = 3, {} saves), {} CPU threads",
        pars.len(),
        grid.nsave,
        rayon::current_num_threads()
    );
    let mut first: Option<Vec<PointResult>> = None;
    for w in what.split(',') {
        let t = Instant::now();
        let (label, res) = match w {
            "cpu8" => (
                "CPU f64 rtol 1e-8",
                integrate_batch(&pars, &y0s, &grid, &tol(1e-8, 1e-10)),
            ),
            "cpu6" => (
                "CPU f64 rtol 1e-6",
                integrate_batch(&pars, &y0s, &grid, &tol(1e-6, 1e-8)),
            ),
            "gpu32" | "gpu32t" | "gpu64" => {
                let Some(k) = &gpu else { continue };
                let (p, o, label) = match w {
                    "gpu32" => (Precision::F32, tol(1e-6, 1e-8), "GPU f32 rtol 1e-6"),
                    "gpu32t" => (Precision::F32, tol(1e-8, 1e-10), "GPU f32 rtol 1e-8"),
                    _ => (Precision::F64, tol(1e-8, 1e-10), "GPU f64 rtol 1e-8"),
                };
                match k.run(&pars, &y0s, &grid, &o, p) {
                    Ok(r) => (label, r),
                    Err(e) => {
                        eprintln!("{label}: {e}");
                        continue;
                    }
                }
            }
            other => panic!("unknown run `{other}`"),
        };
        let secs = t.elapsed().as_secs_f64();
        let ok = res.iter().filter(|r| r.status == Status::Ok).count();
        let steps: u64 = res.iter().map(|r| r.steps + r.rejected).sum();
        let dev = first.as_ref().map(|f| {
            f.iter()
                .zip(&res)
                .map(|(a, b)| (db(a.xi2_min) - db(b.xi2_min)).abs())
                .fold(0.0, f64::max)
        });
        println!(
            "{label}: {secs:.2} s, {:.1} points/s, {ok}/{} ok, {:.0} attempts/point{}",
            res.len() as f64 / secs,
            res.len(),
            steps as f64 / res.len() as f64,
            dev.map(|d| format!(", max |d xi2_min| vs first run {d:.3} dB"))
                .unwrap_or_default()
        );
        if first.is_none() {
            first = Some(res);
        }
    }
}
