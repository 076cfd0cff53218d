//! The cost of a schedule against constant parameters in the deterministic solvers: each
//! solver's `evolve_protocol` with constant parameters, against the same run with `Omega` and
//! `Gamma` given as flat ramps of the same values (the same steps and results: what is timed
//! is the protocol machinery alone), and with a real `Omega` ramp (timed per right-hand side).
//! Interleaved repetitions, the best of each (the machine may be shared):
//!
//!     cargo run --release --example schedule_cost -- [master|blocks|meanfield|cumulant] [N] [reps]
//!
//! Problems: master, seed 001 (Gamma = 1, chi = 0.9375, Omega = 1.48 N/2, t in [0, 0.05],
//! N = 200); blocks, Gamma = 1, gamma_down = 0.5, Omega = N/4, t in [0, 1], N = 30; mean field
//! and cumulants, the seed 001 model at N = 1000 over t in [0, 200] (a long run of cheap
//! steps, where per-step overheads show most). A timing program, not a test (BENCHMARKS.md,
//! "Time-dependent protocols").
use dicke::c64;
use dicke::model::{Model, Protocol, Schedule};
use dicke::solver::meanfield::{self, Factorisation};
use dicke::solver::ode::OdeOptions;
use dicke::solver::{blocks, cumulant, master};
use dicke::state::{BlockState, DensityMatrix, pure};
use std::time::Instant;

/// One timed run: (seconds, right-hand-side evaluations).
type Run<'a> = Box<dyn Fn(&Protocol) -> usize + 'a>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map(String::as_str).unwrap_or("master");
    let n_arg = args.get(2).and_then(|s| s.parse().ok());
    let reps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let opts = OdeOptions::default();
    let (n, t_end, model) = match what {
        "blocks" => {
            let n = n_arg.unwrap_or(30);
            let m = Model {
                n,
                gamma_coll: 1.0,
                gamma_down: 0.5,
                drive: n as f64 / 4.0,
                ..Default::default()
            };
            (n, 1.0, m)
        }
        _ => {
            let n = n_arg.unwrap_or(if what == "master" { 200 } else { 1000 });
            let m = Model {
                n,
                gamma_coll: 1.0,
                chi: 0.9375,
                drive: 1.48 * n as f64 / 2.0,
                ..Default::default()
            };
            (n, if what == "master" { 0.05 } else { 200.0 }, m)
        }
    };
    let times: Vec<f64> = (0..51).map(|i| t_end * i as f64 / 50.0).collect();
    let mut south = vec![c64::new(0.0, 0.0); n + 1];
    south[0] = c64::new(1.0, 0.0);
    let rho0 = DensityMatrix::from_pure(&south);
    let run: Run = match what {
        "master" => Box::new(|p| {
            master::evolve_protocol(p, &rho0, &times, &opts, master::Storage::Auto, &mut |_, _, _| {})
                .expect("master")
                .rhs_evals
        }),
        "blocks" => {
            let b0 = BlockState::from_symmetric(&rho0);
            Box::new(move |p| {
                blocks::evolve_protocol(p, &b0, &times, &opts, &mut |_, _, _| {})
                    .expect("blocks")
                    .rhs_evals
            })
        }
        "meanfield" => Box::new(|p| {
            meanfield::evolve_protocol(
                p,
                Factorisation::Individual,
                [0.0, 0.0, -1.0],
                &times,
                &opts,
                |_, _, _| {},
            )
            .expect("meanfield")
            .rhs_evals
        }),
        "cumulant" => {
            let y0 = cumulant::from_pure(&pure::coherent(n, std::f64::consts::PI, 0.0));
            Box::new(move |p| {
                cumulant::evolve_protocol(p, &y0, &times, &opts, &mut |_, _, _| {})
                    .expect("cumulant")
                    .rhs_evals
            })
        }
        other => panic!("unknown solver {other} (master, blocks, meanfield, cumulant)"),
    };
    let flat = |v: f64| Schedule::Ramp(vec![(0.0, v), (t_end, v)]);
    let cases = [
        ("constant", Protocol::from(model)),
        (
            "flat Omega and Gamma ramps",
            Protocol {
                base: model,
                schedules: vec![("Omega", flat(model.drive)), ("Gamma", flat(model.gamma_coll))],
            },
        ),
        (
            "Omega ramp 0.8 -> 1",
            Protocol {
                base: model,
                schedules: vec![(
                    "Omega",
                    Schedule::Ramp(vec![(0.0, 0.8 * model.drive), (t_end, model.drive)]),
                )],
            },
        ),
    ];
    let mut best = [f64::INFINITY; 3];
    let mut rhs = [0usize; 3];
    for _ in 0..reps {
        for (k, (_, p)) in cases.iter().enumerate() {
            let t0 = Instant::now();
            rhs[k] = run(p);
            best[k] = best[k].min(t0.elapsed().as_secs_f64());
        }
    }
    for (k, (name, _)) in cases.iter().enumerate() {
        let per = 1e9 * best[k] / rhs[k] as f64;
        let over = 100.0 * (per / (1e9 * best[0] / rhs[0] as f64) - 1.0);
        println!(
            "{what} N={n} {name}: {:.4} s (best of {reps}), {} rhs, {per:.0} ns per rhs ({over:+.1} %)",
            best[k], rhs[k]
        );
    }
}
