//! Trajectories under schedules (time-dependent parameters; `solver::trajectory::sched`):
//! the CPU twin against the exact master equation under ramps, kinks and steps, a chirped
//! free precession against its closed form, and a constant protocol against the constant
//! path (bit for bit); the WGSL kernel against the twin trajectory by trajectory (same
//! Philox streams) and against the master equation.
//!
//! GPU tests use `backend::gpu::test_context`: without an adapter they print `SKIPPED: ...`
//! and return; with `DICKE_REQUIRE_GPU=1` (CI, lavapipe) a missing adapter fails them.

#[cfg(feature = "gpu")]
use dicke::backend::gpu::trajectory::{TrajectoryGpu, gpu_plan_protocol, run_gpu_protocol};
#[cfg(feature = "gpu")]
use dicke::backend::gpu::{report_skip, test_context};
use dicke::c64;
use dicke::model::{Model, Protocol, Schedule};
use dicke::observe::moments;
use dicke::solver::master::{self, Storage};
use dicke::solver::ode::OdeOptions;
#[cfg_attr(not(feature = "gpu"), allow(unused_imports))]
use dicke::solver::trajectory::{self, EnsembleResult, Precision, RECORD_LEN, TrajectoryOptions};
use dicke::state::{DensityMatrix, pure};
use std::f64::consts::PI;

fn linspace(t0: f64, t1: f64, k: usize) -> Vec<f64> {
    (0..k)
        .map(|i| t0 + (t1 - t0) * i as f64 / (k - 1) as f64)
        .collect()
}

/// <Jx>, <Jy>, <Jz> of the exact master equation under `p` at `times`.
fn master_means(p: &Protocol, psi0: &[c64], times: &[f64]) -> Vec<[f64; 3]> {
    let rho0 = DensityMatrix::from_pure(psi0);
    let mut out = vec![[0.0; 3]; times.len()];
    let opts = OdeOptions {
        rtol: 1e-10,
        atol: 1e-12,
        ..Default::default()
    };
    master::evolve_protocol(p, &rho0, times, &opts, Storage::Auto, &mut |i, _t, rho| {
        let m = moments(rho);
        out[i] = [m.mean[0], m.mean[1], m.mean[2]];
    })
    .expect("master equation");
    out
}

/// Every save of Jx, Jy, Jz within `k` of the ensemble's own standard errors (floor `floor`).
fn assert_within(ens: &EnsembleResult, exact: &[[f64; 3]], k: f64, floor: f64) {
    for (c, name) in ["Jx", "Jy", "Jz"].iter().enumerate() {
        let (mean, se) = (ens.mean_of(name).unwrap(), ens.se_of(name).unwrap());
        for (i, ex) in exact.iter().enumerate() {
            let d = (mean[i] - ex[c]).abs();
            assert!(
                d <= k * se[i] + floor,
                "{name} at t = {}: trajectories {} +- {}, master {} ({:.1} SE)",
                ens.times[i],
                mean[i],
                se[i],
                ex[c],
                d / se[i]
            );
        }
    }
}

/// N = 10, Gamma = 1 from the ground state: Omega ramped 0 -> 3 (kink at 0.6) -> 1, and a
/// step of omega0 at t = 0.9 (neither on a save time), 4000 trajectories in f64.
#[test]
fn ramp_kink_and_step_match_master_equation() {
    let p = ramp_and_step(10);
    let psi0 = pure::coherent(10, PI, 0.0);
    let times = linspace(0.0, 1.8, 13);
    let exact = master_means(&p, &psi0, &times);
    let opts = TrajectoryOptions {
        ntraj: 4000,
        seed: 11,
        precision: Precision::F64,
        ..Default::default()
    };
    let ens = trajectory::run_cpu_protocol(&p, &psi0, &times, &opts).expect("run");
    assert_within(&ens, &exact, 4.0, 1e-9);
}

/// Scheduled rates and diagonal (Gamma linear, w ramp, chi steps) with a drive, N = 6 from a
/// tilted coherent state, 4000 trajectories in f32.
#[test]
fn scheduled_rates_match_master_equation_f32() {
    let base = Model {
        n: 6,
        drive: 1.5,
        phi: 0.3,
        dephase_coll: 0.2,
        ..Default::default()
    };
    let p = Protocol {
        base,
        schedules: vec![
            ("chi", Schedule::Steps(vec![(0.0, 0.0), (0.5, 0.6)])),
            (
                "Gamma",
                Schedule::Linear {
                    start: 0.2,
                    rate: 1.0,
                    t0: 0.0,
                },
            ),
            ("w", Schedule::Ramp(vec![(0.0, 0.5), (0.7, 0.0)])),
        ],
    };
    let psi0 = pure::coherent(6, 2.0, 0.4);
    let times = linspace(0.0, 1.5, 11);
    let exact = master_means(&p, &psi0, &times);
    let opts = TrajectoryOptions {
        ntraj: 4000,
        seed: 5,
        precision: Precision::F32,
        ..Default::default()
    };
    let ens = trajectory::run_cpu_protocol(&p, &psi0, &times, &opts).expect("run");
    assert_within(&ens, &exact, 4.0, 1e-4);
}

/// Free precession under a chirp omega0(t) = 1 + 2 t, no dissipation, from a coherent state
/// on the equator: the state stays coherent and <J+> = j e^{i theta(t)}, theta = int omega0 dt
/// = t + t^2 (H = omega0 Jz: psi_m picks up e^{-i m theta}, and the coherent state's azimuth
/// enters as e^{-i m phi}, so the azimuth advances by +theta).
#[test]
fn chirped_precession_follows_closed_form() {
    let n = 20;
    let base = Model {
        n,
        ..Default::default()
    };
    let p = Protocol {
        base,
        schedules: vec![(
            "omega0",
            Schedule::Linear {
                start: 1.0,
                rate: 2.0,
                t0: 0.0,
            },
        )],
    };
    let psi0 = pure::coherent(n, PI / 2.0, 0.0);
    let times = linspace(0.0, 2.0, 9);
    for (prec, tol) in [(Precision::F64, 1e-9), (Precision::F32, 2e-4)] {
        let opts = TrajectoryOptions {
            ntraj: 1,
            precision: prec,
            dt: Some(0.01),
            ..Default::default()
        };
        let ens = trajectory::run_cpu_protocol(&p, &psi0, &times, &opts).expect("run");
        let (jx, jy) = (ens.mean_of("Jx").unwrap(), ens.mean_of("Jy").unwrap());
        for (i, &t) in times.iter().enumerate() {
            let theta = t + t * t;
            let want = (10.0 * theta.cos(), 10.0 * theta.sin());
            let err = ((jx[i] - want.0).powi(2) + (jy[i] - want.1).powi(2)).sqrt() / 10.0;
            assert!(
                err < tol,
                "{prec:?} t = {t}: <J+> = ({}, {}), closed form {want:?}",
                jx[i],
                jy[i]
            );
        }
    }
}

/// A protocol without schedules runs the constant path: the same records, bit for bit.
#[test]
fn constant_protocol_is_bit_identical() {
    let model = Model {
        n: 8,
        drive: 2.0,
        gamma_coll: 1.0,
        gamma_down: 0.3,
        ..Default::default()
    };
    let psi0 = pure::coherent(8, 2.5, 0.1);
    let times = linspace(0.0, 1.0, 6);
    for prec in [Precision::F32, Precision::F64] {
        let opts = TrajectoryOptions {
            ntraj: 64,
            precision: prec,
            save_trajectories: 3,
            ..Default::default()
        };
        let a = trajectory::run_cpu(&model, &psi0, &times, &opts).unwrap();
        let b = trajectory::run_cpu_protocol(&Protocol::from(model), &psi0, &times, &opts).unwrap();
        assert_eq!((a.mean, a.se, a.xi2), (b.mean, b.se, b.xi2));
        assert_eq!(a.steps, b.steps);
    }
}

/// Irrep-changing trajectories (constant gamma_down) under an Omega ramp run and stay
/// normalised; a scheduled single-atom rate is refused naming the parameter.
#[test]
fn irrep_changing_schedules_and_refusals() {
    let base = Model {
        n: 6,
        gamma_down: 0.5,
        gamma_coll: 0.5,
        ..Default::default()
    };
    let ramp = Schedule::Ramp(vec![(0.0, 0.0), (0.5, 2.0)]);
    let p = Protocol {
        base,
        schedules: vec![("Omega", ramp.clone())],
    };
    let psi0 = pure::coherent(6, PI, 0.0);
    let times = linspace(0.0, 1.0, 5);
    let opts = TrajectoryOptions {
        ntraj: 200,
        ..Default::default()
    };
    let ens = trajectory::run_cpu_protocol(&p, &psi0, &times, &opts).expect("run");
    assert!(ens.mean_of("jumps").unwrap()[4] > 0.0);
    // A schedule holding Omega = 2 against the constant model: the same ensemble statistics.
    let held = Protocol {
        base,
        schedules: vec![("Omega", Schedule::Steps(vec![(0.0, 2.0)]))],
    };
    let a = trajectory::run_cpu_protocol(&held, &psi0, &times, &opts).expect("run");
    let b = trajectory::run_cpu(&held.at(0.0), &psi0, &times, &opts).expect("run");
    for name in ["Jz", "J2", "jumps"] {
        let (ma, mb) = (a.mean_of(name).unwrap(), b.mean_of(name).unwrap());
        let (sa, sb) = (a.se_of(name).unwrap(), b.se_of(name).unwrap());
        eprintln!("{name}: held {ma:?} const {mb:?}");
        for i in 0..times.len() {
            assert!(
                (ma[i] - mb[i]).abs() <= 4.0 * (sa[i] + sb[i]) + 1e-9,
                "{name} at {i}: {} vs {}",
                ma[i],
                mb[i]
            );
        }
    }
    assert!(a.mean_of("J2").unwrap()[4] < 12.0);
    let bad = Protocol {
        base,
        schedules: vec![("gamma_down", ramp)],
    };
    let e = trajectory::run_cpu_protocol(&bad, &psi0, &times, &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.gamma_down"), "{e}");
}

/// The trajectory engine on the test context, built once per test binary.
#[cfg(feature = "gpu")]
fn engine(test: &str) -> Option<&'static TrajectoryGpu> {
    use std::sync::{Arc, OnceLock};
    static ENGINE: OnceLock<Option<TrajectoryGpu>> = OnceLock::new();
    let ctx = test_context(test)?;
    ENGINE
        .get_or_init(|| Some(TrajectoryGpu::new(Arc::clone(&ctx)).expect("trajectory pipelines")))
        .as_ref()
}

/// The protocol of `ramp_kink_and_step_match_master_equation`: N = 10, Gamma = 1, Omega
/// ramped 0 -> 3 (kink at 0.6) -> 1, omega0 stepped 0 -> 2 at t = 0.9 (neither on a save).
fn ramp_and_step(n: usize) -> Protocol {
    Protocol {
        base: Model {
            n,
            gamma_coll: 1.0,
            ..Default::default()
        },
        schedules: vec![
            ("omega0", Schedule::Steps(vec![(0.0, 0.0), (0.9, 2.0)])),
            ("Omega", Schedule::Ramp(vec![(0.0, 0.0), (0.6, 3.0), (1.5, 1.0)])),
        ],
    }
}

#[cfg(feature = "gpu")]
/// Scheduled rates and diagonal with a drive: w ramped down with a kink, Gamma_phi linear,
/// chi stepped, omega0 a triangle (the restencil of every step's start, the frozen weights).
fn rates_and_diagonal(n: usize) -> Protocol {
    Protocol {
        base: Model {
            n,
            drive: 1.5,
            phi: 0.3,
            gamma_coll: 0.6,
            ..Default::default()
        },
        schedules: vec![
            (
                "omega0",
                Schedule::Triangle {
                    low: -1.0,
                    high: 1.0,
                    period: 0.8,
                    t0: 0.1,
                },
            ),
            ("chi", Schedule::Steps(vec![(0.0, 0.0), (0.5, 0.4)])),
            ("w", Schedule::Ramp(vec![(0.0, 0.8), (0.7, 0.1), (1.2, 0.5)])),
            (
                "Gamma_phi",
                Schedule::Linear {
                    start: 0.0,
                    rate: 0.3,
                    t0: 0.2,
                },
            ),
        ],
    }
}

/// The kernel against its twin trajectory by trajectory (same Philox streams, same plan), in
/// the lane mapping (one invocation per trajectory, sequential sums: the twin's lanes = 1)
/// and the wg mapping with one level per invocation (lanes = 16 >= 11 levels), over t <= 1.2
/// (every kink and step of both protocols inside). Every jump count agrees exactly and every
/// record to `tol` relative: the kernel evaluates the twin's expressions in the twin's order,
/// and what is left are the roundings that Mesa's compiler changes (as for constant
/// parameters, tests/trajectory.rs `gpu_matches_cpu_twin_per_trajectory`, whose tolerances
/// these are), carried along the trajectory. Measured on lavapipe: the printed maxima.
#[test]
#[cfg(feature = "gpu")]
fn gpu_matches_twin_under_schedules() {
    let test = "gpu_matches_twin_under_schedules";
    let Some(gpu) = engine(test) else {
        return;
    };
    let n = 10;
    let psi0 = pure::coherent(n, 2.5, 0.3);
    let times = linspace(0.0, 1.2, 9);
    let mut precisions = vec![(Precision::F32, 5e-4)];
    if gpu.context().info().has_f64 {
        precisions.push((Precision::F64, 1e-10));
    } else {
        report_skip(&format!("{test}: adapter has no SHADER_F64, f32 only"));
    }
    let mut failures = Vec::new();
    for (what, p) in [
        ("ramp and step", ramp_and_step(n)),
        ("rates", rates_and_diagonal(n)),
    ] {
        for &(precision, tol) in &precisions {
            for lanes in [1, 16] {
                let opts = TrajectoryOptions {
                    ntraj: 48,
                    seed: 7,
                    precision,
                    lanes,
                    ..Default::default()
                };
                let plan = gpu_plan_protocol(&p, &psi0, &times, &opts).expect("plan");
                assert!(plan.sched.is_some());
                let g = gpu.records(&plan).expect("gpu records");
                let c = trajectory::cpu_records(&plan, 0, opts.ntraj);
                assert_eq!(g.len(), c.len());
                let (mut worst, mut jumps, mut at) = (0.0f64, 0.0, String::new());
                for (k, (a, b)) in g.iter().zip(&c).enumerate() {
                    let here = format!(
                        "trajectory {} save {} slot {}",
                        k / (times.len() * RECORD_LEN),
                        (k / RECORD_LEN) % times.len(),
                        k % RECORD_LEN
                    );
                    if k % RECORD_LEN == 10 {
                        if a != b {
                            failures.push(format!(
                                "{what} {precision:?} lanes {lanes}: {here}: jumps {a} vs {b}"
                            ));
                        }
                        if (k / RECORD_LEN) % times.len() == times.len() - 1 {
                            jumps += b;
                        }
                    } else {
                        let rel = (a - b).abs() / (1.0 + b.abs());
                        if rel > worst {
                            (worst, at) = (rel, format!("{here}: gpu {a} cpu {b}"));
                        }
                    }
                }
                let line = format!(
                    "{what} {precision:?} lanes {lanes} ({:?}): max relative {worst:e} at {at}, {jumps} jumps",
                    gpu.variant(&plan)
                );
                report_skip(&format!("{test}: {line}"));
                if worst > tol {
                    failures.push(format!("{line} > {tol:e}"));
                }
                if jumps < 48.0 * 2.0 {
                    failures.push(format!("{what}: too few jumps to test anything: {jumps}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The kernel's ensemble under the ramp, kink and step against the exact master equation:
/// every save of Jx, Jy, Jz within 4 SE (floor: f32 rounding of moments ~5, 1e-4), in f32
/// (the default) and f64 where the adapter has it.
#[test]
#[cfg(feature = "gpu")]
fn gpu_schedule_matches_master_equation() {
    let test = "gpu_schedule_matches_master_equation";
    let Some(gpu) = engine(test) else {
        return;
    };
    let n = 10;
    let p = ramp_and_step(n);
    let psi0 = pure::coherent(n, PI, 0.0);
    let times = linspace(0.0, 1.8, 13);
    let exact = master_means(&p, &psi0, &times);
    let mut precisions = vec![(Precision::F32, 1e-4)];
    if gpu.context().info().has_f64 {
        precisions.push((Precision::F64, 1e-9));
    }
    for (precision, floor) in precisions {
        let opts = TrajectoryOptions {
            ntraj: 2000,
            seed: 13,
            precision,
            ..Default::default()
        };
        let ens = run_gpu_protocol(gpu, &p, &psi0, &times, &opts).expect("gpu run");
        assert_eq!(ens.backend, "gpu");
        assert_within(&ens, &exact, 4.0, floor);
    }
    // The same protocol on the twin's side of the policy: phi scheduled is refused by name.
    let mut phased = p.clone();
    phased.schedules.push((
        "phi",
        Schedule::Linear {
            start: 0.0,
            rate: 1.0,
            t0: 0.0,
        },
    ));
    let opts = TrajectoryOptions {
        ntraj: 8,
        ..Default::default()
    };
    let e = gpu_plan_protocol(&phased, &psi0, &times, &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("phi") && e.contains("CPU"), "{e}");
    // Irrep-changing trajectories (a single-atom rate) under a schedule: refused, naming why.
    let mut blocks = p.clone();
    blocks.base.gamma_down = 0.2;
    let e = gpu_plan_protocol(&blocks, &psi0, &times, &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("single-atom") && e.contains("CPU"), "{e}");
}
