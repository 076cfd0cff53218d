//! The cost of a schedule against constant parameters on the trajectories' CPU twin
//! (N = 100, 500 trajectories from the ground state, Gamma = 1, Omega = 60, f32), best of 3:
//!
//!     cargo run --release --example schedule_overhead
//!
//! A timing program, not a test (BENCHMARKS.md, "Time-dependent protocols"). Two kinds of
//! cases:
//!
//! - *flat* schedules, holding exactly the constant values (`Omega` 60 -> 60, `w` 0 -> 0,
//!   `omega0` at rate 0): the same physics on the same step grid, so the same work; their
//!   time against the constant run is the pure machinery overhead of the scheduled path (the
//!   jump counts differ only through roundings);
//! - real ramps, whose physics (and so jump count) differ from the constant run: compared per
//!   *trial*, `wall / (ntraj (steps + jumps))` per trajectory (every step is a trial, and
//!   every jump adds about one partial trial), the figure the overhead column uses.
//!
//! Overhead = (time per trial of the case) / (time per trial of the constant run) - 1, from the
//! wall time and from the process's CPU time (user + system, all threads: less disturbed by
//! other processes on a shared machine).

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
    // Best of 3 wall and CPU seconds, steps per trajectory, mean jumps per trajectory.
    let time = |p: &Protocol| {
        let (mut best, mut best_cpu) = (f64::INFINITY, f64::INFINITY);
        let mut work = (0.0, 0.0);
        for _ in 0..3 {
            let (t, c) = (std::time::Instant::now(), cpu_seconds());
            let r = trajectory::run_cpu_protocol(p, &psi0, &times, &opts).unwrap();
            best = best.min(t.elapsed().as_secs_f64());
            best_cpu = best_cpu.min(cpu_seconds() - c);
            let steps: f64 = r.steps.iter().map(|&s| f64::from(s)).sum();
            let jumps = *r.mean_of("jumps").unwrap().last().unwrap();
            work = (steps, jumps);
        }
        (best, best_cpu, work.0, work.1)
    };
    let with = |name: &'static str, s: Schedule| Protocol {
        base,
        schedules: vec![(name, s)],
    };
    let cases = [
        ("constant", Protocol::from(base)),
        (
            "Omega flat",
            with("Omega", Schedule::Ramp(vec![(0.0, 60.0), (0.2, 60.0)])),
        ),
        ("w flat", with("w", Schedule::Ramp(vec![(0.0, 0.0), (0.2, 0.0)]))),
        (
            "omega0 flat",
            with(
                "omega0",
                Schedule::Linear {
                    start: 0.0,
                    rate: 0.0,
                    t0: 0.0,
                },
            ),
        ),
        (
            "Omega ramp",
            with("Omega", Schedule::Ramp(vec![(0.0, 40.0), (0.2, 60.0)])),
        ),
        ("w ramp", with("w", Schedule::Ramp(vec![(0.0, 0.0), (0.2, 0.5)]))),
        (
            "omega0 linear",
            with(
                "omega0",
                Schedule::Linear {
                    start: 0.0,
                    rate: 10.0,
                    t0: 0.0,
                },
            ),
        ),
    ];
    let ntraj = opts.ntraj as f64;
    let mut reference = None;
    for (name, p) in &cases {
        let (s, cpu, steps, jumps) = time(p);
        let trials = ntraj * (steps + jumps);
        let (per, per_cpu) = (s / trials, cpu / trials);
        let (r, r_cpu) = *reference.get_or_insert((per, per_cpu));
        eprintln!(
            "{name:>14}: {s:.3} s wall, {cpu:.2} s CPU (best of 3); {steps} steps + {jumps:.1} \
             jumps per trajectory; per trial {:.3} us wall ({:+.1} %), {:.3} us CPU ({:+.1} %)",
            per * 1e6,
            100.0 * (per / r - 1.0),
            per_cpu * 1e6,
            100.0 * (per_cpu / r_cpu - 1.0)
        );
    }
}

/// User + system CPU seconds of this process so far (all threads; Linux `/proc/self/stat`,
/// in clock ticks of 1/100 s), NaN where unavailable.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the command name (which ends with the last ')'): state is field 3, utime
    // and stime fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |k: usize| f.get(k - 3).and_then(|v| v.parse::<f64>().ok());
    match (tick(14), tick(15)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => f64::NAN,
    }
}
