//! The cost of a schedule against constant parameters on the trajectories' CPU twin
//! (N = 100, 500 trajectories from the ground state, Gamma = 1, Omega = 60, f32), best of 3:
//!
//!     cargo run --release --example schedule_overhead
//!
//! A timing program, not a test (BENCHMARKS.md, "Time-dependent protocols").

use dicke::model::{Model, Protocol, Schedule};
use dicke::solver::trajectory::{self, Precision, TrajectoryOptions};
use dicke::state::pure;
use std::f64::consts::PI;

fn linspace(t0: f64, t1: f64, k: usize) -> Vec<f64> {
    (0..k)
        .map(|i| t0 + (t1 - t0) * i as f64 / (k - 1) as f64)
        .collect()
}

fn main() {
    let base = Model {
        n: 100,
        gamma_coll: 1.0,
        drive: 60.0,
        ..Default::default()
    };
    let psi0 = pure::coherent(100, PI, 0.0);
    let times = linspace(0.0, 0.2, 11);
    let opts = TrajectoryOptions {
        ntraj: 500,
        precision: Precision::F32,
        ..Default::default()
    };
    let time = |p: &Protocol| {
        let t = std::time::Instant::now();
        trajectory::run_cpu_protocol(p, &psi0, &times, &opts).unwrap();
        t.elapsed().as_secs_f64()
    };
    let cases = [
        ("constant", Protocol::from(base)),
        (
            "Omega ramp",
            Protocol {
                base,
                schedules: vec![("Omega", Schedule::Ramp(vec![(0.0, 40.0), (0.2, 60.0)]))],
            },
        ),
        (
            "w ramp",
            Protocol {
                base,
                schedules: vec![("w", Schedule::Ramp(vec![(0.0, 0.0), (0.2, 0.5)]))],
            },
        ),
        (
            "omega0 linear",
            Protocol {
                base,
                schedules: vec![(
                    "omega0",
                    Schedule::Linear {
                        start: 0.0,
                        rate: 10.0,
                        t0: 0.0,
                    },
                )],
            },
        ),
    ];
    for (name, p) in &cases {
        let s = (0..3).map(|_| time(p)).fold(f64::INFINITY, f64::min);
        eprintln!("{name}: {s:.3} s (best of 3)");
    }
}
