//! Trajectories under schedules (time-dependent parameters; `solver::trajectory::sched`):
//! the CPU twin against the exact master equation under ramps, kinks and steps, a chirped
//! free precession against its closed form, and a constant protocol against the constant
//! path (bit for bit).

use dicke::c64;
use dicke::model::{Model, Protocol, Schedule};
use dicke::observe::moments;
use dicke::solver::master::{self, Storage};
use dicke::solver::ode::OdeOptions;
use dicke::solver::trajectory::{self, EnsembleResult, Precision, TrajectoryOptions};
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
    let base = Model {
        n: 10,
        gamma_coll: 1.0,
        ..Default::default()
    };
    let p = Protocol {
        base,
        schedules: vec![
            ("omega0", Schedule::Steps(vec![(0.0, 0.0), (0.9, 2.0)])),
            ("Omega", Schedule::Ramp(vec![(0.0, 0.0), (0.6, 3.0), (1.5, 1.0)])),
        ],
    };
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
