//! The population rate equation (`solver::populations`) against the ladder of PHYSICS.md:
//! - analytic: N = 1 under a pump switched by steps (piecewise-constant closed form), and the
//!   detailed-balance steady state against exp(-beta Jz)/Z;
//! - cross-solver: the diagonal of the exact master equation on the full (N+1)^2 density
//!   matrix under a ramp of w with kinks and a scheduled Gamma, from a Dicke state and from a
//!   thermal state;
//! - refusals: a drive or a single-atom rate (fixed or scheduled) is named.

use dicke::model::{Model, Protocol, Schedule};
use dicke::solver::ode::OdeOptions;
use dicke::solver::{master, populations};
use dicke::state::DensityMatrix;

fn times(t_end: f64, n: usize) -> Vec<f64> {
    (0..n).map(|i| t_end * i as f64 / (n - 1) as f64).collect()
}

fn pumping(n: usize) -> Model {
    Model {
        n,
        gamma_coll: 1.0,
        pump_coll: 0.8,
        ..Model::default()
    }
}

/// N = 1: dP_up/dt = -(Gamma + w) P_up + w, so on a piece of constant w,
/// P_up(t) = p* + (P_up(t_a) - p*) exp(-(Gamma + w)(t - t_a)), p* = w/(Gamma + w).
#[test]
fn two_level_under_steps_matches_the_closed_form() {
    let steps = vec![(0.0, 0.5), (0.7, 3.0), (1.3, 0.0)];
    let protocol = Protocol {
        base: pumping(1),
        schedules: vec![("w", Schedule::Steps(steps.clone()))],
    };
    let ts = times(2.0, 41);
    let exact = |t: f64| {
        let (mut p, mut ta) = (0.0, 0.0);
        for (i, &(t0, w)) in steps.iter().enumerate() {
            let t1 = steps.get(i + 1).map_or(f64::INFINITY, |s| s.0).min(t);
            if t0 >= t {
                break;
            }
            let ps = w / (1.0 + w);
            p = ps + (p - ps) * (-(1.0 + w) * (t1 - ta)).exp();
            ta = t1;
        }
        p
    };
    let worst = |rtol: f64| {
        let opts = OdeOptions {
            rtol,
            atol: 1e-3 * rtol,
            ..Default::default()
        };
        let mut worst = 0.0f64;
        let st = populations::evolve_protocol(&protocol, &[1.0, 0.0], &ts, &opts, |_, t, p| {
            worst = worst.max((p[1] - exact(t)).abs());
            assert!((p[0] + p[1] - 1.0).abs() < 1e-13, "trace at t = {t}");
        })
        .unwrap();
        assert!(st.steps > 0);
        worst
    };
    // TR-BDF2 is second order with a third-order local error control, so the global error
    // goes as rtol^(2/3) (measured: 0.08 rtol^(2/3) here): a factor 100 per factor 1000 in
    // rtol. A wrong stage weight or a step that straddles a jump breaks this order.
    let (coarse, fine) = (worst(1e-6), worst(1e-9));
    let ratio = coarse / fine;
    assert!(
        (30.0..300.0).contains(&ratio),
        "error ratio {ratio} for rtol 1e-6 / 1e-9"
    );
    assert!(fine < 0.3 * 1e-6, "worst deviation {fine:e} at rtol 1e-9");
}

#[test]
fn steady_state_is_the_thermal_state() {
    for (n, w) in [(10, 0.8), (100, 1.0), (100, 1.3), (401, 0.97)] {
        let p = populations::steady(n, 1.0, w).unwrap();
        let q = populations::thermal(n, -w.ln());
        let d = p.iter().zip(&q).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(d < 1e-14, "N = {n}, w = {w}: {d:e}");
        let (jz, jz2) = populations::jz_moments(&p);
        if w == 1.0 {
            // Uniform over N + 1 levels: <Jz> = 0, Var Jz = N (N + 2)/12.
            assert!(jz.abs() < 1e-12 && (jz2 - (n * (n + 2)) as f64 / 12.0).abs() < 1e-9);
        }
        // A generator with zero column sums and this P: A P = 0.
        let rates = populations::Rates::new(n);
        let mut dp = vec![0.0; n + 1];
        rates.apply(1.0, w, &p, &mut dp);
        let r = dp.iter().map(|v| v.abs()).fold(0.0, f64::max);
        assert!(r < 1e-12 * (n * n) as f64, "residual {r:e}");
    }
    assert!(populations::steady(5, 0.0, 0.0).is_none());
    assert_eq!(
        populations::steady(3, 0.0, 1.0).unwrap(),
        vec![0.0, 0.0, 0.0, 1.0]
    );
}

/// The diagonal of the master equation's density matrix under the same protocol (ramps with
/// kinks in w and in Gamma, exchange and dephasing present: they do not touch populations).
#[test]
fn matches_the_master_equation_under_ramps() {
    let n = 24;
    let base = Model {
        omega0: 1.5,
        chi: 0.4,
        dephase_coll: 0.3,
        ..pumping(n)
    };
    let protocol = Protocol {
        base,
        schedules: vec![
            ("Gamma", Schedule::Ramp(vec![(0.0, 1.0), (1.5, 0.6), (3.0, 1.0)])),
            (
                "w",
                Schedule::Ramp(vec![(0.0, 0.8), (1.0, 1.2), (2.0, 0.8), (2.5, 1.1)]),
            ),
        ],
    };
    let ts = times(3.0, 31);
    let tight = OdeOptions {
        rtol: 1e-10,
        atol: 1e-12,
        ..Default::default()
    };
    for start in ["dicke", "thermal"] {
        let p0: Vec<f64> = if start == "dicke" {
            let mut p = vec![0.0; n + 1];
            p[n - 3] = 1.0;
            p
        } else {
            populations::thermal(n, 0.7)
        };
        let mut rho0 = DensityMatrix::zeros(n + 1);
        for (k, v) in p0.iter().enumerate() {
            rho0.data[k * (n + 1) + k] = dicke::c64::new(*v, 0.0);
        }
        let mut reference = Vec::new();
        master::evolve_protocol(
            &protocol,
            &rho0,
            &ts,
            &tight,
            master::Storage::Auto,
            &mut |_, _, rho| {
                reference.push((0..=n).map(|k| rho.get(k, k).re).collect::<Vec<f64>>());
            },
        )
        .unwrap();
        let opts = OdeOptions {
            rtol: 1e-9,
            atol: 1e-12,
            ..Default::default()
        };
        let mut worst = 0.0f64;
        let stats = populations::evolve_protocol(&protocol, &p0, &ts, &opts, |i, _, p| {
            let d = p
                .iter()
                .zip(&reference[i])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            worst = worst.max(d);
        })
        .unwrap();
        // Both solvers at rtol <= 1e-9 on populations <= 1: their difference is a few 1e-8
        // at most after 30 saves; 1e-7 leaves room for the accumulation, not for an error in
        // a rate (which shows at 1e-3).
        assert!(
            worst < 1e-7,
            "{start}: worst population deviation {worst:e} ({stats:?})"
        );
    }
}

#[test]
fn terms_that_couple_coherences_are_refused() {
    let ts = times(1.0, 3);
    let p0 = vec![0.0, 0.0, 1.0];
    let opts = OdeOptions::default();
    let driven = Protocol::from(Model {
        drive: 0.5,
        ..pumping(2)
    });
    let e = populations::evolve_protocol(&driven, &p0, &ts, &opts, |_, _, _| {}).unwrap_err();
    assert!(e.to_string().contains("`Omega`"), "{e}");
    let scheduled = Protocol {
        base: pumping(2),
        schedules: vec![("gamma_down", Schedule::Ramp(vec![(0.0, 0.0), (1.0, 0.5)]))],
    };
    let e = populations::evolve_protocol(&scheduled, &p0, &ts, &opts, |_, _, _| {}).unwrap_err();
    assert!(e.to_string().contains("`gamma_down`"), "{e}");
}

/// A break a rounding away from a save time (a ramp's turning point T and the save
/// 2T i/(n-1) at i = (n-1)/2 can differ in the last bit) is stepped onto as one, by the
/// populations' TR-BDF2 and the master equation's DP5 alike (it used to leave a sliver step
/// below rounding: StepSizeTooSmall).
#[test]
fn a_break_a_rounding_off_a_save_is_one_stop() {
    let n_times = 2001;
    let turn = (1..10_000)
        .map(|k| 1.0 + k as f64 * 1e-3 / 3.0)
        .find(|&tt| {
            let s = 2.0 * tt * 1000.0 / (n_times - 1) as f64;
            s != tt && (s - tt).abs() < 4.0 * f64::EPSILON * tt
        })
        .expect("a turning point whose save is off by a rounding");
    let n = 6;
    let protocol = Protocol {
        base: pumping(n),
        schedules: vec![(
            "w",
            Schedule::Ramp(vec![(0.0, 0.5), (turn, 1.5), (2.0 * turn, 0.5)]),
        )],
    };
    let ts = times(2.0 * turn, n_times);
    let p0 = populations::steady(n, 1.0, 0.5).unwrap();
    let mut last = Vec::new();
    populations::evolve_protocol(&protocol, &p0, &ts, &OdeOptions::default(), |_, _, p| {
        last = p.to_vec()
    })
    .unwrap();
    let mut rho0 = DensityMatrix::zeros(n + 1);
    for (k, v) in p0.iter().enumerate() {
        rho0.data[k * (n + 1) + k] = dicke::c64::new(*v, 0.0);
    }
    let mut diag = Vec::new();
    master::evolve_protocol(
        &protocol,
        &rho0,
        &ts,
        &OdeOptions::default(),
        master::Storage::Auto,
        &mut |_, _, rho| {
            diag = (0..=n).map(|k| rho.get(k, k).re).collect();
        },
    )
    .unwrap();
    let d = last
        .iter()
        .zip(&diag)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    // Default tolerances (rtol 1e-8): both within ~1e-6 of the truth after 2000 saves.
    assert!(d < 1e-5, "{d:e}");
}
