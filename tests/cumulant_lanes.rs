//! The lane integrator (`solver::cumulant::lanes`) against the scalar batch
//! (`solver::cumulant::batch::integrate_batch`): the same results BIT FOR BIT (every f64 of
//! every `PointResult` compared by its bits, counters and status exactly), on every instruction
//! set this CPU has, for points of very different stiffness sharing lanes, for fewer points
//! than lanes, counts that are not a multiple of 8, one chunk (lanes refilled many times) and
//! many, and for points that fail (non-finite start, blow-up, step limit): each failure is
//! reported for its point exactly as the scalar path reports it.

use dicke::model::Model;
use dicke::solver::cumulant::batch::{BatchOptions, PointResult, SaveGrid, Status, integrate_batch};
use dicke::solver::cumulant::lanes::{Isa, LANES, integrate_batch_lanes, integrate_batch_lanes_with};
use dicke::solver::cumulant::{self, NPAR, NVAR, params};
use dicke::state::pure;

/// Every f64 of a result as bits, with the status and counters.
fn bits(r: &PointResult) -> Vec<u64> {
    let mut v = vec![r.status as u64, r.steps, r.rejected, r.t_reached.to_bits()];
    v.extend(r.y.iter().map(|x| x.to_bits()));
    v.extend(r.mean.iter().map(|x| x.to_bits()));
    v.extend([r.xi2, r.j2, r.xi2_min, r.t_xi2_min, r.jz_late].map(f64::to_bits));
    v
}

/// Seed 002's model at N = 2000 across the transition (u = Upsilon/Upsilon_c 0.3 .. 1.2,
/// gamma_s 0 .. 300: steps from ~1/(N Gamma) to longer, many rejections near u = 1), a few
/// small models with every term on, and three failing points: a NaN initial state (ends at
/// its start), a growing mode (gamma_down < 0: overflows to a non-finite state) and, through
/// `max_steps`, the stiffest points run out of steps.
fn points() -> (Vec<[f64; NPAR]>, Vec<[f64; NVAR]>) {
    let n = 2000;
    let y0 = cumulant::from_pure(&pure::coherent(
        n,
        std::f64::consts::FRAC_PI_2,
        std::f64::consts::PI,
    ));
    let upsilon_c = 5f64.sqrt();
    let (mut pars, mut y0s) = (Vec::new(), Vec::new());
    for i in 0..7 {
        for gs in [0.0, 3.0, 30.0, 300.0] {
            let m = Model {
                n,
                drive: (0.3 + 0.15 * i as f64) * upsilon_c * n as f64 / 2.0,
                chi: 1.0,
                gamma_coll: 1.0,
                gamma_down: gs,
                ..Model::default()
            };
            pars.push(params(&m));
            y0s.push(y0);
        }
    }
    for i in 0..5 {
        let m = Model {
            n: 3 + 7 * i,
            omega0: 0.3 * i as f64,
            drive: 1.0 + i as f64,
            phi: 0.4,
            chi: 0.5,
            chi_z: 0.2,
            gamma_coll: 1.0,
            pump_coll: 0.1,
            dephase_coll: 0.2,
            gamma_down: 0.5,
            gamma_up: 0.1 * i as f64,
            gamma_phi: 0.3,
        };
        pars.push(params(&m));
        y0s.push(cumulant::from_pure(&pure::coherent(m.n, 1.0, 0.5)));
    }
    let mut nan = y0;
    nan[3] = f64::NAN;
    pars.insert(5, pars[5]);
    y0s.insert(5, nan);
    let grow = Model {
        n: 100,
        drive: 10.0,
        gamma_coll: 1.0,
        gamma_down: -3000.0,
        ..Model::default()
    };
    pars.insert(11, params(&grow));
    y0s.insert(11, cumulant::from_pure(&pure::coherent(100, 1.0, 0.0)));
    (pars, y0s)
}

fn grid() -> SaveGrid {
    SaveGrid {
        t0: 0.0,
        t_end: 0.6,
        nsave: 121,
        t_min: 0.003,
        t_late: 0.3,
    }
}

fn assert_same(scalar: &[PointResult], lanes: &[PointResult], what: &str) {
    assert_eq!(scalar.len(), lanes.len(), "{what}: result count");
    for (i, (a, b)) in scalar.iter().zip(lanes).enumerate() {
        assert_eq!(
            bits(a),
            bits(b),
            "{what}: point {i} differs\nscalar {a:?}\nlanes  {b:?}"
        );
    }
}

#[test]
fn lanes_equal_the_scalar_batch_bit_for_bit() {
    let (pars, y0s) = points();
    let g = grid();
    // Enough attempts for the gentle points, not for the fast oscillating ones.
    let o = BatchOptions {
        rtol: 1e-8,
        atol: 1e-10,
        max_steps: 3000,
    };
    let scalar = integrate_batch(&pars, &y0s, &g, &o);
    let count = |s: Status| scalar.iter().filter(|r| r.status == s).count();
    assert!(count(Status::Ok) >= 10, "too few points succeed: {scalar:?}");
    assert!(count(Status::TooManySteps) >= 3, "the step limit must bite");
    assert_eq!(scalar[5].status, Status::NonFinite, "NaN start");
    assert!(scalar[11].status != Status::Ok, "blow-up: {:?}", scalar[11]);
    assert!(pars.len() % LANES != 0);
    let isas: Vec<Isa> = Isa::ALL.into_iter().filter(|i| i.available()).collect();
    eprintln!("instruction sets here: {isas:?}; {} points", pars.len());
    for &isa in &isas {
        for chunk in [pars.len(), 8, 13] {
            let lanes = integrate_batch_lanes_with(&pars, &y0s, &g, &o, isa, chunk);
            assert_same(&scalar, &lanes, &format!("{isa:?}, chunk {chunk}"));
        }
    }
    assert_same(&scalar, &integrate_batch_lanes(&pars, &y0s, &g, &o), "default");
}

/// Fewer points than lanes, and 9 (one full block plus one), at the scenarios' tolerances
/// without a step limit.
#[test]
fn lanes_with_fewer_points_than_lanes_and_a_partial_block() {
    let (pars, y0s) = points();
    let g = grid();
    let o = BatchOptions::default();
    for take in [1usize, 3, 9] {
        let (p, y) = (&pars[..take], &y0s[..take]);
        let scalar = integrate_batch(p, y, &g, &o);
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            let lanes = integrate_batch_lanes_with(p, y, &g, &o, isa, take);
            assert_same(&scalar, &lanes, &format!("{take} points, {isa:?}"));
        }
    }
}
