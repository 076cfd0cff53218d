//! Second-order cumulants (`solver::cumulant`) against irrep-changing quantum trajectories
//! (`solver::trajectory`, CPU twin) at N = 2000: issue 5's validation "agreement up to the
//! dynamical transition", in the style of seed 002's Fig. S1 (b)-(g) (cumulant and MCWF
//! squeezing dynamics at gamma_s / Gamma = 20, N = 2000). The paper gives its panels'
//! (chi, 2 Omega / (N Gamma)) points only as marks on Fig. S1a; this test takes chi = Gamma
//! and Upsilon = 2 Omega / N = 0.95 Upsilon_c (2 Omega / (N Gamma) = 2.124), inside the squeezing
//! band of Fig. S1a (deepest squeezing at 0.9 - 0.97 Upsilon_c, scenario
//! exchange_cumulant_phase_diagram.toml), all spins along -x.
//!
//! # The dynamical transition
//!
//! Seed 002: single-atom decay shrinks the effective atom number
//! `N_eff(t) = 2 sqrt(1/4 + <J^2>) - 1`, so `Upsilon_eff = 2 Omega / N_eff` grows and crosses
//! Upsilon_c at t*, where `N_eff(t*) = N_c = 2 Omega / Upsilon_c = 0.95 N = 1900`; squeezing is
//! lost after t* (its Fig. 2 and S2), and "there is close agreement [of cumulants and MCWF] up
//! to the crossing of the dynamical phase transition". Here (measured): the cumulants' N_eff
//! crosses 1900 at t* = 0.0075 / Gamma, the trajectories' (pooled <J^2>) at the same save.
//! The squeezing minimum comes just before: cumulant xi^2 = 0.168 at t = 0.0055 / Gamma.
//!
//! # What is asserted (CI test, window t in [0, 0.006 / Gamma])
//!
//! At every save (13, every 0.0005 / Gamma), for <Jx>, <Jy>, <Jz> (over N/2), <J^2> (over
//! (N/2)(N/2 + 1)) and xi^2 of the ensemble-averaged state:
//! `|trajectories - cumulants| <= 4 SE + allowance`, the SE being the ensemble's own (pooled
//! standard error of the mean; batch means for xi^2: 10 batches of 10 trajectories,
//! tests/common/ensemble.rs). The closure allowance is the cumulant approximation's own error,
//! which no statistics can remove; its size comes from the exact-solver rung
//! (tests/cumulant.rs on seed 002's model): the <J>/(N/2) deviation in the first collective
//! transient falls roughly as 1/N (3.5e-3, 1.8e-3, 6.4e-4 at N = 20, 40, 80), 1.2e-2 at N = 80
//! over N Gamma t <= 10, i.e. ~5e-4 at N = 2000 by 1/N; allowance 2e-3 on the normalised means
//! (4x that). The minimum of xi^2 agreed with the exact solver to 1.6 - 2.3 % at N = 10 - 30;
//! allowance 3 % of the cumulant xi^2. Neither allowance is what makes the test pass (measured
//! deviations below, all within 2 SE); they say how far a correct closure may be off.
//! The window ends before t* (asserted: cumulant N_eff(0.006) > N_c) and reaches the
//! squeezing minimum (asserted: xi^2 < 0.2 on both sides).
//!
//! Trajectories: f32 (rounding ~1e-7 per step, renormalised every step: far below the SE),
//! cfl = 1.0 instead of the default 0.5 (half the steps; RK4 is stable to 1.4). Measured with
//! the same random streams (128 trajectories to t = 0.006): cfl 1.0 and 0.5 differ by <= 1e-4
//! in <J>/(N/2) and <= 2e-4 in xi^2, <= 0.05 SE. Cumulants: rtol 1e-10.
//!
//! Measured (the test prints them): worst |d| / SE over t in (0, 0.006] is Jx 1.69, Jy 1.20,
//! Jz 1.74, J2 1.54, xi^2 1.44; min xi^2 over the window 0.1825 (trajectories) and 0.1678
//! (cumulants, at t = 0.0055; 1.4 SE apart). Runtime on dev-2c (2 cores shared with other
//! builds): 111 s wall at load ~5.7, 60 s wall at load ~3.4, 75 - 77 s CPU; 100 x 12756
//! trajectory steps, estimated ~17 s on two idle cores at the 3.8e4 steps/s per core measured
//! earlier for this model.
//!
//! # After the transition (measurement, not run in CI)
//!
//! `cargo test --release --test cumulant_trajectories -- --ignored --nocapture` runs the same
//! 100 trajectories to t = 0.012 / Gamma (25 saves; 243 s wall on the loaded dev-2c). Measured:
//!
//! ```text
//!   t      | <Jx>/(N/2)           | <Jz>/(N/2)           | xi^2                 | N_eff traj / cum
//!          | traj    cum   d/SE   | traj    cum   d/SE   | traj    cum   d/SE   |
//!  0.0055  | -0.8313 -0.8334 +1.4 | -0.0035 -0.0111 +1.1 |  0.1884  0.1678 +1.4 | 1945.2 / 1946.6
//!  0.0060  | -0.8219 -0.8253 +1.1 |  0.0441  0.0352 +0.8 |  0.1825  0.1739 +0.7 | 1935.0 / 1936.5
//!  0.0065  | -0.8089 -0.8118 +0.6 |  0.0955  0.0869 +0.6 |  0.5369  0.2012 +4.5 | 1923.6 / 1925.4
//!  0.0070  | -0.7881 -0.7923 +0.6 |  0.1605  0.1459 +0.7 |  3.4612  0.2713 +4.3 | 1910.5 / 1912.9
//!  0.0075  | -0.7729 -0.7692 -0.5 |  0.2180  0.2093 +0.4 | 16.8917  0.4485 +3.1 | 1895.8 / 1898.8
//!  0.0080  | -0.7683 -0.7548 -2.1 |  0.2538  0.2614 -0.3 | 42.5363  0.9291 +5.9 | 1880.0 / 1882.9
//!  0.0090  | -0.7786 -0.8276 +7.9 |  0.1972  0.1831 +0.5 | 73.8936  6.3842 +9.9 | 1847.9 / 1850.7
//!  0.0100  | -0.7877 -0.8247 +4.7 |  0.0305 -0.1322 +5.0 | 72.8815  7.0833 +19.3| 1822.4 / 1830.7
//!  0.0120  | -0.7503 -0.7472 -0.5 | -0.1205 -0.0614 -2.1 | 42.2746  2.5335 +7.4 | 1789.1 / 1804.3
//! ```
//!
//! Both N_eff cross N_c = 1900 at the save t = 0.0075. xi^2 leaves 4 SE + allowance first at
//! t = 0.0065, one save before the crossing: the trajectories lose their squeezing earlier
//! than the cumulants, as seed 002 explains with Fig. S2 (each trajectory crosses at its own
//! t*, and enough of them have crossed before the ensemble-average N_eff does), and the
//! cumulants' xi^2 stays below 1 until t = 0.008 and then oscillates (2 - 13) where the
//! trajectories give 40 - 74. The means follow a little longer: worst |d| / SE over
//! (0.006, 0.012] is Jx 9.5, Jy 7.1, Jz 5.0, J2 4.2, xi^2 19.3, the first mean beyond 4 SE at
//! t = 0.009. (A first run with 128 trajectories and cfl 0.5 gave the same picture: all within
//! 2 SE to t = 0.006, xi^2 3.3 SE at 0.0065, 5 - 12 SE from 0.008.)

#[path = "common/ensemble.rs"]
mod ensemble;

use dicke::model::Model;
use dicke::solver::cumulant;
use dicke::solver::ode::OdeOptions;
use dicke::solver::trajectory::{self, OBS_NAMES, Precision, TrajectoryOptions};
use dicke::state::pure;
use ensemble::Pooled;

const N: usize = 2000;
/// Upsilon / Upsilon_c.
const RATIO: f64 = 0.95;
const CHI: f64 = 1.0;
const GAMMA_S: f64 = 20.0;
/// Closure allowance on <J_a>/(N/2) and <J^2>/((N/2)(N/2+1)) (module doc).
const ALLOW_MEAN: f64 = 2e-3;
/// Closure allowance on xi^2, relative to the cumulant value (module doc).
const ALLOW_XI2: f64 = 0.03;
/// Trajectory step as a fraction of the inverse rate bound (module doc).
const CFL: f64 = 1.0;

/// Seed 002's model (PHYSICS.md sec. 1): H = chi J+J- + Omega Jx, Gamma D[J-],
/// gamma_s sum_n D[sigma_n^-], Gamma = 1, Omega = RATIO Upsilon_c N / 2.
fn model() -> Model {
    let upsilon_c = (1.0 + 4.0 * CHI * CHI).sqrt();
    Model {
        n: N,
        gamma_coll: 1.0,
        chi: CHI,
        drive: RATIO * upsilon_c * N as f64 / 2.0,
        gamma_down: GAMMA_S,
        ..Model::default()
    }
}

fn n_eff(j2: f64) -> f64 {
    2.0 * (0.25 + j2).sqrt() - 1.0
}

/// Compared quantities: the normalised means and xi^2.
const NAMES: [&str; 5] = ["Jx", "Jy", "Jz", "J2", "xi2"];

/// One save: trajectories (value, SE) and cumulants for each of [`NAMES`], and both N_eff.
struct Row {
    t: f64,
    traj: [(f64, f64); 5],
    cum: [f64; 5],
    n_eff: (f64, f64),
}

impl Row {
    /// |trajectories - cumulants| / SE.
    fn dev_se(&self, k: usize) -> f64 {
        (self.traj[k].0 - self.cum[k]).abs() / self.traj[k].1
    }
    /// The bound of the module doc: 4 SE + closure allowance.
    fn bound(&self, k: usize) -> f64 {
        let allow = if k == 4 {
            ALLOW_XI2 * self.cum[4]
        } else {
            ALLOW_MEAN
        };
        4.0 * self.traj[k].1 + allow
    }
}

/// Cumulants and `batches x per` trajectories (disjoint indices, f32) on `n_saves + 1` equally
/// spaced times in [0, t_end]; prints the table and the wall time.
fn compare(t_end: f64, n_saves: usize, batches: u64, per: u64) -> Vec<Row> {
    let model = model();
    let psi0 = pure::coherent(N, std::f64::consts::FRAC_PI_2, std::f64::consts::PI);
    let times: Vec<f64> = (0..=n_saves).map(|i| t_end * i as f64 / n_saves as f64).collect();
    let half = N as f64 / 2.0;
    let j2_max = half * (half + 1.0);

    let opts = OdeOptions {
        rtol: 1e-10,
        atol: 1e-12,
        ..OdeOptions::default()
    };
    let mut cum = Vec::with_capacity(times.len());
    cumulant::evolve(
        &model,
        &cumulant::from_pure(&psi0),
        &times,
        &opts,
        &mut |_, _, y| {
            let m = cumulant::to_moments(N, y);
            let j2 = cumulant::j2(N, y);
            cum.push((
                [
                    m.mean[0] / half,
                    m.mean[1] / half,
                    m.mean[2] / half,
                    j2 / j2_max,
                    m.xi2(),
                ],
                n_eff(j2),
            ));
        },
    )
    .expect("cumulant evolve");

    let start = std::time::Instant::now();
    let ens: Vec<_> = (0..batches)
        .map(|b| {
            let o = TrajectoryOptions {
                ntraj: per,
                first_traj: b * per,
                seed: 2002,
                precision: Precision::F32,
                cfl: CFL,
                ..TrajectoryOptions::default()
            };
            trajectory::run_cpu(&model, &psi0, &times, &o).expect("run_cpu")
        })
        .collect();
    let wall = start.elapsed().as_secs_f64();
    let pooled = Pooled { batches: &ens, per };
    let idx = |name: &str| OBS_NAMES.iter().position(|&s| s == name).unwrap();
    eprintln!(
        "seed 002 N = {N}, chi = {CHI}, Upsilon = {RATIO} Upsilon_c, gamma_s = {GAMMA_S}: {} trajectories ({batches} x {per}, f32, cfl {CFL}, {} steps each) in {wall:.1} s",
        batches * per,
        ens[0].steps.iter().sum::<u32>()
    );
    eprintln!(
        "   t      | <Jx>/(N/2)           | <Jz>/(N/2)           | xi^2                 | N_eff traj / cum"
    );
    let mut rows = Vec::with_capacity(times.len());
    for (i, &t) in times.iter().enumerate() {
        let mut traj = [(0.0, 0.0); 5];
        for (k, name) in NAMES[..4].iter().enumerate() {
            let (m, se) = pooled.mean_se(idx(name), i);
            let scale = if k == 3 { j2_max } else { half };
            traj[k] = (m / scale, se / scale);
        }
        traj[4] = pooled.xi2_se(i, N);
        let n_eff_traj = n_eff(traj[3].0 * j2_max);
        let row = Row {
            t,
            traj,
            cum: cum[i].0,
            n_eff: (n_eff_traj, cum[i].1),
        };
        let cell = |k: usize| {
            // At t = 0 the SE is 0 (every trajectory is the initial state).
            let d = if t > 0.0 {
                format!("{:+5.1}", (row.traj[k].0 - row.cum[k]) / row.traj[k].1)
            } else {
                "    -".to_string()
            };
            format!("{:8.4} {:7.4} {d}", row.traj[k].0, row.cum[k])
        };
        eprintln!(
            "  {t:.4}  | {} | {} | {} | {:.1} / {:.1}",
            cell(0),
            cell(2),
            cell(4),
            row.n_eff.0,
            row.n_eff.1
        );
        rows.push(row);
    }
    eprintln!("  (columns: trajectories, cumulants, (traj - cum)/SE)");
    rows
}

/// Asserts the bound of the module doc at every save with t <= t_max; returns the worst
/// |d| / SE per observable over 0 < t <= t_max (at t = 0 both sides are the initial state and
/// the SE is 0: only the allowance applies there).
fn assert_agreement(rows: &[Row], t_max: f64) -> [f64; 5] {
    let mut worst = [0.0f64; 5];
    for row in rows.iter().filter(|r| r.t <= t_max + 1e-12) {
        for (k, name) in NAMES.iter().enumerate() {
            let d = (row.traj[k].0 - row.cum[k]).abs();
            assert!(
                d <= row.bound(k),
                "{name} at t = {}: trajectories {} +- {}, cumulants {} (|d| = {d:e} > 4 SE + allowance = {:e})",
                row.t,
                row.traj[k].0,
                row.traj[k].1,
                row.cum[k],
                row.bound(k)
            );
            if row.t > 0.0 {
                worst[k] = worst[k].max(row.dev_se(k));
            }
        }
    }
    worst
}

fn report(worst: &[f64; 5], window: &str) {
    let list: Vec<String> = NAMES
        .iter()
        .zip(worst)
        .map(|(n, w)| format!("{n} {w:.2}"))
        .collect();
    eprintln!("worst |traj - cum| / SE over t in {window}: {}", list.join(", "));
}

/// CI: t in [0, 0.006 / Gamma] (before t* = 0.0075, through the squeezing minimum), 100
/// trajectories (10 batches of 10). Module doc for the bounds.
#[test]
fn cumulants_match_trajectories_before_the_dynamical_transition_n2000() {
    let start = std::time::Instant::now();
    let t_end = 0.006;
    let rows = compare(t_end, 12, 10, 10);
    let worst = assert_agreement(&rows, t_end);
    report(&worst, "(0, 0.006]");
    let n_c = RATIO * N as f64;
    let last = rows.last().unwrap();
    assert!(
        last.n_eff.1 > n_c,
        "window not before the transition: cumulant N_eff({t_end}) = {} <= N_c = {n_c}",
        last.n_eff.1
    );
    let min = |f: &dyn Fn(&Row) -> f64| rows.iter().map(f).fold(f64::INFINITY, f64::min);
    let (min_traj, min_cum) = (min(&|r| r.traj[4].0), min(&|r| r.cum[4]));
    assert!(
        min_traj < 0.2 && min_cum < 0.2,
        "no squeezing reached in the window: min xi^2 trajectories {min_traj}, cumulants {min_cum}"
    );
    eprintln!(
        "min xi^2: trajectories {min_traj:.4}, cumulants {min_cum:.4}; test took {:.1} s",
        start.elapsed().as_secs_f64()
    );
}

/// Measurement through the transition (ignored in CI: minutes on 2 cores): t in
/// [0, 0.012 / Gamma], 100 trajectories. Asserts the CI test's agreement up to t = 0.006 and
/// that the two disagree after the transition (xi^2 beyond 4 SE + allowance somewhere in
/// t > t*, the cumulants' N_eff crossing N_c), and prints the table.
#[test]
#[ignore = "minutes on 2 cores; run with: cargo test --release --test cumulant_trajectories -- --ignored --nocapture"]
fn cumulants_vs_trajectories_through_the_transition_n2000() {
    let rows = compare(0.012, 24, 10, 10);
    let worst = assert_agreement(&rows, 0.006);
    report(&worst, "(0, 0.006]");
    let n_c = RATIO * N as f64;
    let t_star = rows
        .iter()
        .find(|r| r.n_eff.1 < n_c)
        .expect("cumulant N_eff crosses N_c in the window")
        .t;
    let t_star_traj = rows.iter().find(|r| r.n_eff.0 < n_c).map(|r| r.t);
    let after: Vec<&Row> = rows.iter().filter(|r| r.t > 0.006).collect();
    let mut worst_after = [0.0f64; 5];
    for r in &after {
        for (k, w) in worst_after.iter_mut().enumerate() {
            *w = w.max(r.dev_se(k));
        }
    }
    eprintln!("first save with N_eff < N_c: cumulants t = {t_star}, trajectories {t_star_traj:?}");
    report(&worst_after, "(0.006, 0.012]");
    let first_fail = rows
        .iter()
        .find(|r| (r.traj[4].0 - r.cum[4]).abs() > r.bound(4))
        .map(|r| r.t);
    eprintln!("first save where xi^2 leaves 4 SE + allowance: {first_fail:?}");
    assert!(
        rows.iter()
            .any(|r| r.t >= t_star && (r.traj[4].0 - r.cum[4]).abs() > r.bound(4)),
        "cumulants and trajectories still agree after the transition"
    );
}
