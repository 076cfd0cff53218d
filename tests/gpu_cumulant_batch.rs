//! Batched cumulant equations on the GPU (`backend::gpu::cumulant_batch`) against their CPU
//! twin `solver::cumulant::batch::integrate_batch`, on 10^3 random parameter points with every
//! term of the engine model switched on, and the resumption across dispatches.
//!
//! GPU tests use `backend::gpu::test_context`: without an adapter they print
//! `SKIPPED: no GPU adapter ...` and return; with `DICKE_REQUIRE_GPU=1` (CI, lavapipe) a
//! missing adapter fails them.
//!
//! # Random points ("physical ranges")
//!
//! N log-uniform in [2, 10^4]; collective rates scaled with 1/N so that the collective time
//! scale 1/(N Gamma) stays O(1) and every point needs a modest number of steps on [0, 2]:
//! Gamma = g/N, g in [0.5, 3]; w in [0, 0.3] Gamma; Gamma_phi in [0, 1]/N; chi, chi_z in
//! [-2, 2] Gamma and [-1, 1] Gamma; Omega = u N Gamma / 2, u in [0, 1.5] (below and above the
//! transitions); omega0 in [-1, 1]; phi in [0, 2 pi); gamma_down in [0, 2], gamma_up in
//! [0, 0.5], gamma_phi in [0, 0.5]; a coherent initial state in a uniformly random direction.
//! Save grid t in [0, 2], 41 saves, xi^2 window t >= 0.5, <Jz> window t >= 1.5.
//!
//! # Bounds (stated, not tuned)
//!
//! Both sides run the same algorithm step for step, so the difference is rounding plus, where
//! rounding flips an accept/reject decision near err = 1, the difference of two
//! tolerance-controlled solutions.
//!
//! * **f32**, rtol = 1e-6, atol = 1e-8 (the f32 error estimate has a floor near u = 6e-8
//!   relative per component, so tolerances below ~1e-6 would measure rounding): the nine
//!   variables are O(1) (|y| <= 1), so per variable
//!   `delta = 10 (rtol + atol) + 2 S u + 40 u Lambda T`, S the CPU's step count, T the span:
//!   10 tolerance units for two solutions that took different step sequences (each within a
//!   few tolerances of the exact solution); one rounding of the state per step, accumulated
//!   linearly; and the f32 right-hand side. Its terms are coefficients (rates summing to
//!   Lambda = |Omega| + |omega0| + N (Gamma + w + Gamma_phi + |chi| + |chi_z|) + single-atom
//!   rates) times closed third moments whose monomials sum to at most M = 5 for |y| <= 1 (e.g.
//!   |T1| <= |p z| + 2 |u s| + 2 |s|^2 |z|), each rounded along a chain of about k = 8
//!   operations: an error <= k M u Lambda = 40 u Lambda per unit time, integrated over T
//!   without assuming damping. Where the terms nearly cancel (a fixed point close to a
//!   bifurcation) this is what the f32 solution shows: measured at N = 2000, u = 0.74,
//!   gamma_s = 0.5 (test `..._seed002_grid`), 5.9e-3 from the f64 truth, while the CPU twin at
//!   the same tolerances, and even the CPU with the f32-rounded parameters, are within 2e-6 of
//!   it, and 2 S u = 3.5e-4 alone would not cover it (bound there 4.4e-2).
//!   xi^2 amplifies an absolute error delta of the variables into the covariance as
//!   ~4 N^2 delta (N(N-1) times pair moments, N^2 times products of means); with
//!   r = |<J>|/N, `|d xi^2| <= 4 N delta / r^2 + 2 xi^2 delta / r` (module doc of
//!   cumulant_batch). <Jz>/N = z/2 is a variable: `|d jz_late| / N <= delta`.
//!   Compared where the CPU has r >= 0.05 at the save in question (a collapsed Bloch vector
//!   makes xi^2 ill-conditioned on both sides). This worst-case amplification is loose (xi^2
//!   changes far less than 4 N delta under the errors actually seen); the tests print the
//!   observed deviations, recorded in the module doc of cumulant_batch.
//! * **f64**, rtol = 1e-10, atol = 1e-12: the controller's powers run in f32 (the only
//!   difference), so the steps differ by ~1e-7 relative in h. Variables within 1e-9 (10
//!   tolerance units, as above; rounding is ~1e-16 per step), equal step counts for at least
//!   95 % of the points (a near-threshold decision may flip), xi2_min within the same
//!   amplification of delta.
//! * **t_xi2_min**: when two saves hold near-equal minima the two sides may pick different
//!   ones; the test then accepts the GPU's time only if the CPU's own xi^2 at the GPU's save
//!   (from `cumulant::evolve` with the same tolerances, which takes the twin's steps: unit test
//!   in `solver::cumulant::batch`) equals the CPU's minimum within the xi^2 bound.
//!
//! Observed on lavapipe (2-core EPYC), recorded here, not asserted: see the `eprintln!` lines
//! of each test (`--nocapture`) and the module doc of `backend::gpu::cumulant_batch`.
#![cfg(feature = "gpu")] // GPU kernels only exist in builds with the `gpu` feature

use dicke::backend::gpu::cumulant_batch::{CumulantBatchGpu, CumulantGpuOptions, LOOP_ATTEMPT, LOOP_SAVE};
use dicke::backend::gpu::test_context;
use dicke::model::{Model, Protocol, Schedule};
use dicke::solver::cumulant::batch::{
    BatchOptions, PointResult, SaveGrid, Status, integrate_batch, integrate_batch_pieces,
};
use dicke::solver::cumulant::pieces::Pieces;
use dicke::solver::cumulant::{self, NPAR, NVAR, params, to_moments};
use dicke::solver::ode::OdeOptions;
use dicke::solver::trajectory::Precision;
use dicke::state::pure;
use std::sync::{Arc, OnceLock};

fn kernel(test: &str) -> Option<Arc<CumulantBatchGpu>> {
    let ctx = test_context(test)?;
    static K: OnceLock<Arc<CumulantBatchGpu>> = OnceLock::new();
    Some(Arc::clone(K.get_or_init(|| {
        Arc::new(CumulantBatchGpu::new(ctx).expect("cumulant_batch pipelines"))
    })))
}

/// SplitMix64: a fixed, platform-independent stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn u(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Points {
    models: Vec<Model>,
    pars: Vec<[f64; NPAR]>,
    y0s: Vec<[f64; NVAR]>,
}

/// `count` random points (ranges in the module doc).
fn random_points(count: usize, seed: u64) -> Points {
    let mut rng = Rng(seed);
    let mut p = Points {
        models: Vec::new(),
        pars: Vec::new(),
        y0s: Vec::new(),
    };
    for _ in 0..count {
        let n = (rng.u(2f64.ln(), 1e4f64.ln()).exp().round() as usize).max(2);
        let nf = n as f64;
        let gam = rng.u(0.5, 3.0) / nf;
        // Every field of the model set (no `..Default::default()`): every term is on.
        let m = Model {
            n,
            gamma_coll: gam,
            pump_coll: rng.u(0.0, 0.3) * gam,
            dephase_coll: rng.u(0.0, 1.0) / nf,
            chi: rng.u(-2.0, 2.0) * gam,
            chi_z: rng.u(-1.0, 1.0) * gam,
            drive: rng.u(0.0, 1.5) * nf * gam / 2.0,
            omega0: rng.u(-1.0, 1.0),
            phi: rng.u(0.0, 2.0 * std::f64::consts::PI),
            gamma_down: rng.u(0.0, 2.0),
            gamma_up: rng.u(0.0, 0.5),
            gamma_phi: rng.u(0.0, 0.5),
        };
        let theta = rng.u(-1.0, 1.0).acos();
        let az = rng.u(0.0, 2.0 * std::f64::consts::PI);
        p.pars.push(params(&m));
        p.y0s.push(cumulant::from_pure(&pure::coherent(n, theta, az)));
        p.models.push(m);
    }
    p
}

const GRID: SaveGrid = SaveGrid {
    t0: 0.0,
    t_end: 2.0,
    nsave: 41,
    t_min: 0.5,
    t_late: 1.5,
};

/// (xi^2, r = |<J>|/N) at every save of `GRID` on the CPU (cumulant::evolve: the twin's steps).
fn cpu_saves(m: &Model, y0: &[f64; NVAR], o: &BatchOptions) -> Vec<(f64, f64)> {
    let times: Vec<f64> = (0..GRID.nsave).map(|k| GRID.time(k)).collect();
    let opts = OdeOptions {
        rtol: o.rtol,
        atol: o.atol,
        ..OdeOptions::default()
    };
    let mut out = Vec::new();
    cumulant::evolve(m, y0, &times, &opts, &mut |_, _, y| {
        let mm = to_moments(m.n, y);
        let r = mm.mean.iter().map(|x| x * x).sum::<f64>().sqrt() / m.n as f64;
        out.push((mm.xi2(), r));
    })
    .expect("cpu evolve");
    out
}

fn save_index(t: f64) -> usize {
    (0..GRID.nsave).find(|&k| GRID.time(k) == t).expect("a save time")
}

/// Lambda of the module doc: the sum of the right-hand side's coefficient magnitudes (a rate).
fn rate_scale(par: &[f64; NPAR]) -> f64 {
    let n = par[0];
    par[2].hypot(par[3])
        + par[1].abs()
        + n * (par[6] + par[7] + par[8] + par[4].abs() + par[5].abs())
        + par[9]
        + par[10]
        + par[11]
}

/// Per-variable f32 bound delta (module doc): tolerance disagreement, the state's rounding
/// per step, the f32 right-hand side (k M u Lambda T with k M = 40) over the span T.
fn delta_f32(o: &BatchOptions, steps: u64, par: &[f64; NPAR], span: f64) -> f64 {
    let u = f32::EPSILON as f64 / 2.0;
    10.0 * (o.rtol + o.atol) + 2.0 * steps as f64 * u + 40.0 * u * rate_scale(par) * span
}

/// xi^2 bound for an absolute error `delta` of the variables at Bloch length r (module doc).
fn xi2_bound(n: f64, delta: f64, xi2: f64, r: f64) -> f64 {
    4.0 * n * delta / (r * r) + 2.0 * xi2.abs() * delta / r
}

/// Smallest Bloch length at which xi^2 is compared (module doc).
const R_MIN: f64 = 0.05;

/// Compare GPU with CPU point by point within `delta(point)`; prints the worst deviation /
/// bound ratios and absolute deviations.
fn compare(
    label: &str,
    p: &Points,
    cpu: &[PointResult],
    gpu: &[PointResult],
    o: &BatchOptions,
    delta: &dyn Fn(usize, &PointResult, &PointResult) -> f64,
) {
    let (mut wy, mut wx, mut wm, mut wj) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let (mut ay, mut ax, mut am) = (0.0f64, 0.0f64, 0.0f64);
    let (mut moved, mut skipped) = (0, 0);
    for (i, (c, g)) in cpu.iter().zip(gpu).enumerate() {
        let n = p.pars[i][0];
        assert_eq!(c.status, Status::Ok, "{label} point {i}: CPU status");
        assert_eq!(g.status, Status::Ok, "{label} point {i}: GPU status");
        let d = delta(i, c, g);
        let dy =
            c.y.iter()
                .zip(&g.y)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
        assert!(dy <= d, "{label} point {i} (N = {n}): max |dy| = {dy:e} > {d:e}");
        (wy, ay) = (wy.max(dy / d), ay.max(dy));
        let mm = to_moments(n as usize, &c.y);
        let r = mm.mean.iter().map(|x| x * x).sum::<f64>().sqrt() / n;
        if r >= R_MIN {
            let b = xi2_bound(n, d, c.xi2, r);
            let dx = (c.xi2 - g.xi2).abs();
            assert!(dx <= b, "{label} point {i} (N = {n}): xi2 {} vs {}", c.xi2, g.xi2);
            (wx, ax) = (wx.max(dx / b), ax.max(dx));
        }
        let dj = (c.jz_late - g.jz_late).abs() / n;
        assert!(dj <= d, "{label} point {i}: |d jz_late|/N = {dj:e} > {d:e}");
        wj = wj.max(dj / d);

        // xi2_min and its time.
        assert_eq!(
            c.xi2_min.is_finite(),
            g.xi2_min.is_finite(),
            "{label} point {i}: xi2_min found"
        );
        if !c.xi2_min.is_finite() {
            continue;
        }
        let saves = cpu_saves(&p.models[i], &p.y0s[i], o);
        let (kc, kg) = (save_index(c.t_xi2_min), save_index(g.t_xi2_min));
        assert!(
            GRID.time(kg) >= GRID.t_min,
            "{label} point {i}: GPU minimum outside the window"
        );
        let r = saves[kc].1.min(saves[kg].1);
        if r < R_MIN {
            skipped += 1;
            continue;
        }
        let b = xi2_bound(n, d, c.xi2_min, r);
        let dm = (c.xi2_min - g.xi2_min).abs();
        assert!(
            dm <= b,
            "{label} point {i} (N = {n}): xi2_min {} vs {}",
            c.xi2_min,
            g.xi2_min
        );
        (wm, am) = (wm.max(dm / b), am.max(dm));
        if kc != kg {
            // Near-equal minima at two saves: the CPU's own xi^2 at the GPU's save must be its
            // minimum within the bound.
            moved += 1;
            let dk = (saves[kg].0 - c.xi2_min).abs();
            assert!(
                dk <= b,
                "{label} point {i}: minimum at save {kc} (CPU) vs {kg} (GPU); CPU xi2 there {} vs \
                 its minimum {}",
                saves[kg].0,
                c.xi2_min
            );
        }
    }
    eprintln!(
        "{label}: worst deviation/bound: y {wy:.2e}, xi2 {wx:.2e}, xi2_min {wm:.2e}, jz_late {wj:.2e}; \
         max |dy| {ay:.2e}, |d xi2| {ax:.2e}, |d xi2_min| {am:.2e}; t_xi2_min moved at {moved} \
         points; {skipped} minima at r < {R_MIN} not compared"
    );
}

/// 10^3 random points, f32 kernel vs the f64 CPU twin at the same tolerances.
#[test]
fn gpu_f32_matches_cpu_twin_on_random_points() {
    let Some(k) = kernel("gpu_f32_matches_cpu_twin_on_random_points") else {
        return;
    };
    let p = random_points(1000, 0x5eed_c0ffee);
    let o = BatchOptions {
        rtol: 1e-6,
        atol: 1e-8,
        max_steps: 1_000_000,
    };
    let t = std::time::Instant::now();
    let cpu = integrate_batch(&p.pars, &p.y0s, &GRID, &o);
    let t_cpu = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let run = k
        .run_with(&p.pars, &p.y0s, &GRID, &o, &CumulantGpuOptions::default())
        .expect("gpu f32");
    let t_gpu = t.elapsed().as_secs_f64();
    let steps: u64 = cpu.iter().map(|r| r.steps).sum();
    let gsteps: u64 = run.points.iter().map(|r| r.steps).sum();
    let same = cpu
        .iter()
        .zip(&run.points)
        .filter(|(c, g)| c.steps == g.steps)
        .count();
    eprintln!(
        "f32: cpu {t_cpu:.2} s, gpu {t_gpu:.2} s ({} dispatches), steps cpu {steps} gpu {gsteps}, \
         equal step counts at {same} of {} points",
        run.dispatches,
        cpu.len()
    );
    compare("f32", &p, &cpu, &run.points, &o, &|i, c, _| {
        delta_f32(&o, c.steps, &p.pars[i], GRID.t_end - GRID.t0)
    });
}

/// f64 kernel vs CPU twin at tight tolerances (module doc: rounding-level agreement with equal
/// steps; tolerance-level where a near-threshold decision flips).
#[test]
fn gpu_f64_matches_cpu_twin() {
    let Some(k) = kernel("gpu_f64_matches_cpu_twin") else {
        return;
    };
    if !k.context().info().has_f64 {
        eprintln!("SKIPPED f64 part: adapter has no SHADER_F64");
        return;
    }
    let p = random_points(250, 0xf64);
    let o = BatchOptions {
        rtol: 1e-10,
        atol: 1e-12,
        max_steps: 1_000_000,
    };
    let cpu = integrate_batch(&p.pars, &p.y0s, &GRID, &o);
    let gpu = k
        .run(&p.pars, &p.y0s, &GRID, &o, Precision::F64)
        .expect("gpu f64");
    let same = cpu.iter().zip(&gpu).filter(|(c, g)| c.steps == g.steps).count();
    eprintln!("f64: equal step counts at {same} of {} points", cpu.len());
    assert!(
        same * 100 >= 95 * cpu.len(),
        "f64: equal steps at only {same} points"
    );
    // Equal steps: rounding only, 1e-12 (S ~ 10^2-10^3 steps of ~1e-16); else 10 tolerances.
    compare("f64", &p, &cpu, &gpu, &o, &|_, c, g| {
        if c.steps == g.steps {
            1e-12
        } else {
            10.0 * (o.rtol + o.atol)
        }
    });
}

/// Seed 002's regime (Fig. 3a grid at N = 2000: chi = Gamma = 1, Omega = u Upsilon_c N/2,
/// gamma_s from 0.1 to 300, from the coherent state along -x, t to 3/Gamma): thousands of
/// stiff steps per point, where the rounding term 2 S u of the bound matters. Same bounds as
/// the random points (module doc), compared at the same tolerances.
#[test]
fn gpu_f32_matches_cpu_twin_on_seed002_grid() {
    let Some(k) = kernel("gpu_f32_matches_cpu_twin_on_seed002_grid") else {
        return;
    };
    let n = 2000usize;
    let upsilon_c = 5f64.sqrt();
    let y0 = cumulant::from_pure(&pure::coherent(
        n,
        std::f64::consts::FRAC_PI_2,
        std::f64::consts::PI,
    ));
    let mut p = Points {
        models: Vec::new(),
        pars: Vec::new(),
        y0s: Vec::new(),
    };
    for i in 0..6 {
        for j in 0..6 {
            let m = Model {
                n,
                gamma_coll: 1.0,
                chi: 1.0,
                drive: (0.5 + 0.12 * i as f64) * upsilon_c * n as f64 / 2.0,
                gamma_down: 10f64.powf(-1.0 + 0.7 * j as f64),
                ..Model::default()
            };
            p.pars.push(params(&m));
            p.y0s.push(y0);
            p.models.push(m);
        }
    }
    let grid = SaveGrid {
        t0: 0.0,
        t_end: 3.0,
        nsave: 301,
        t_min: 0.003,
        t_late: 2.0,
    };
    let o = BatchOptions {
        rtol: 1e-6,
        atol: 1e-8,
        max_steps: 1_000_000,
    };
    let cpu = integrate_batch(&p.pars, &p.y0s, &grid, &o);
    let gpu = k
        .run(&p.pars, &p.y0s, &grid, &o, Precision::F32)
        .expect("gpu f32");
    let (mut wy, mut wm, mut ddb) = (0.0f64, 0.0f64, 0.0f64);
    let steps = cpu.iter().map(|r| r.steps).max().unwrap();
    for (i, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
        assert_eq!((c.status, g.status), (Status::Ok, Status::Ok), "point {i}");
        let d = delta_f32(&o, c.steps, &p.pars[i], grid.t_end - grid.t0);
        let dy =
            c.y.iter()
                .zip(&g.y)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
        assert!(dy <= d, "point {i}: max |dy| = {dy:e} > {d:e}");
        wy = wy.max(dy / d);
        assert!(
            (c.jz_late - g.jz_late).abs() / n as f64 <= d,
            "point {i}: jz_late"
        );
        // The minimum's Bloch length on the CPU (the same steps: cumulant::evolve).
        let times: Vec<f64> = (0..grid.nsave).map(|k| grid.time(k)).collect();
        let kc = times.iter().position(|&t| t == c.t_xi2_min).expect("save");
        let kg = times.iter().position(|&t| t == g.t_xi2_min).expect("save");
        let mut rs = Vec::new();
        let opts = OdeOptions {
            rtol: o.rtol,
            atol: o.atol,
            ..OdeOptions::default()
        };
        cumulant::evolve(&p.models[i], &y0, &times, &opts, &mut |_, _, y| {
            let mm = to_moments(n, y);
            rs.push((
                mm.xi2(),
                mm.mean.iter().map(|x| x * x).sum::<f64>().sqrt() / n as f64,
            ));
        })
        .expect("evolve");
        let r = rs[kc].1.min(rs[kg].1);
        if r < R_MIN {
            continue;
        }
        let b = xi2_bound(n as f64, d, c.xi2_min, r);
        let dm = (c.xi2_min - g.xi2_min).abs();
        assert!(dm <= b, "point {i}: xi2_min {} vs {}", c.xi2_min, g.xi2_min);
        if kc != kg {
            assert!(
                (rs[kg].0 - c.xi2_min).abs() <= b,
                "point {i}: minimum moved to save {kg}"
            );
        }
        wm = wm.max(dm / b);
        ddb = ddb.max((10.0 * c.xi2_min.log10() - 10.0 * g.xi2_min.log10()).abs());
    }
    eprintln!(
        "seed002 grid: up to {steps} steps per point; worst deviation/bound y {wy:.2e}, xi2_min \
         {wm:.2e}; max |d xi2_min| {ddb:.4} dB"
    );
}

fn same_bits(a: &PointResult, b: &PointResult) -> bool {
    let f = |r: &PointResult| {
        let mut v: Vec<u64> = r.y.iter().map(|x| x.to_bits()).collect();
        v.extend(
            [r.t_reached, r.xi2, r.j2, r.xi2_min, r.t_xi2_min, r.jz_late]
                .iter()
                .map(|x| x.to_bits()),
        );
        v.extend([r.steps, r.rejected, r.status as u64]);
        v
    };
    f(a) == f(b)
}

/// Resumption across dispatches: a loop budget of one attempt per dispatch (and a separate
/// run with 3 attempts per dispatch) gives bit-identical results to one long dispatch; so does
/// a run in chunks of 10 points (buffers reused, results in input order). Fails
/// if any part of the state (k1, err_old, last_rejected, the time pair, a pending save, the
/// reductions) were not carried across.
#[test]
fn gpu_split_into_dispatches_changes_nothing() {
    let Some(k) = kernel("gpu_split_into_dispatches_changes_nothing") else {
        return;
    };
    let p = random_points(64, 0x0005_9117);
    let o = BatchOptions {
        rtol: 1e-6,
        atol: 1e-8,
        max_steps: 1_000_000,
    };
    let one = k
        .run_with(
            &p.pars,
            &p.y0s,
            &GRID,
            &o,
            &CumulantGpuOptions {
                attempts_per_dispatch: 1_000_000,
                loop_budget: u32::MAX,
                ..Default::default()
            },
        )
        .expect("one dispatch");
    let tiny = k
        .run_with(
            &p.pars,
            &p.y0s,
            &GRID,
            &o,
            &CumulantGpuOptions {
                loop_budget: LOOP_ATTEMPT + LOOP_SAVE + 1,
                ..Default::default()
            },
        )
        .expect("budget-split");
    let three = k
        .run_with(
            &p.pars,
            &p.y0s,
            &GRID,
            &o,
            &CumulantGpuOptions {
                attempts_per_dispatch: 3,
                ..Default::default()
            },
        )
        .expect("attempt-split");
    let chunked = k
        .run_with(
            &p.pars,
            &p.y0s,
            &GRID,
            &o,
            &CumulantGpuOptions {
                chunk_points: 10,
                ..Default::default()
            },
        )
        .expect("chunked");
    assert_eq!(chunked.chunks, 7);
    let max_steps = one.points.iter().map(|r| r.steps + r.rejected).max().unwrap();
    eprintln!(
        "dispatches: one {}, budget-split {}, attempt-split {}; most attempts at a point {max_steps}",
        one.dispatches, tiny.dispatches, three.dispatches
    );
    assert!(
        tiny.dispatches as u64 > max_steps,
        "the budget did not split the run"
    );
    assert!(
        three.dispatches as u64 >= max_steps / 3,
        "attempts did not split the run"
    );
    for (i, a) in one.points.iter().enumerate() {
        assert_eq!(a.status, Status::Ok);
        assert!(same_bits(a, &tiny.points[i]), "point {i}: budget-split differs");
        assert!(same_bits(a, &three.points[i]), "point {i}: attempt-split differs");
        assert!(same_bits(a, &chunked.points[i]), "point {i}: chunked run differs");
    }
}

/// Failures are reported per point as the CPU reports them, and bad input is refused.
#[test]
fn gpu_reports_failures_and_refuses_bad_input() {
    let Some(k) = kernel("gpu_reports_failures_and_refuses_bad_input") else {
        return;
    };
    let p = random_points(16, 7);
    let o = BatchOptions {
        rtol: 1e-6,
        atol: 1e-8,
        max_steps: 5,
    };
    let cpu = integrate_batch(&p.pars, &p.y0s, &GRID, &o);
    let gpu = k.run(&p.pars, &p.y0s, &GRID, &o, Precision::F32).expect("gpu");
    for (c, g) in cpu.iter().zip(&gpu) {
        assert_eq!(c.status, Status::TooManySteps);
        assert_eq!(g.status, Status::TooManySteps);
        assert!(g.t_reached < GRID.t_end && g.steps + g.rejected == 5);
    }
    assert!(k.run(&p.pars, &p.y0s[..3], &GRID, &o, Precision::F32).is_err());
    let bad = BatchOptions { rtol: 0.0, ..o };
    assert!(k.run(&p.pars, &p.y0s, &GRID, &bad, Precision::F32).is_err());
    let g1 = SaveGrid { nsave: 1, ..GRID };
    assert!(k.run(&p.pars, &p.y0s, &g1, &o, Precision::F32).is_err());
}

/// A small seed 002 sweep (`kind = "sweep"`, 4 x 4 points: Omega = u Upsilon_c N / 2 with
/// u = 0.5, 0.7, 0.9, 1.1 and gamma_s = 0, 1, 10, 100; N = 200, chi = Gamma = 1, coherent
/// along -x, t to 1/Gamma) through `run::execute_on`, once per backend; the two sweep.csv are
/// compared row by row with the bounds of the module doc.
const SWEEP: &str = r#"
title = "gpu sweep"
[model]
N = 200
Gamma = 1.0
chi = 1.0
Omega = 100.0
gamma_down = 0.0
[initial]
state = "coherent"
theta = "pi / 2"
phi = "pi"
[task]
kind = "sweep"
t_end = 1.0
n_times = 101
t_min = 0.05
t_late = 0.8
[[task.axes]]
variable = "Omega"
values = [111.80339887498948, 156.52475842498527, 201.24611797498107, 245.96747752497686]
[[task.axes]]
variable = "gamma_down"
values = [0.0, 1.0, 10.0, 100.0]
[output]
plot = false
"#;

/// Run SWEEP with `extra` task lines on `backend`; (result.json's backend, rows of sweep.csv).
fn run_sweep(
    extra: &str,
    backend: dicke::backend::BackendChoice,
    gpu: Option<Arc<dicke::backend::gpu::GpuContext>>,
) -> (serde_json::Value, Vec<String>, Vec<Vec<f64>>) {
    let text = SWEEP.replace("kind = \"sweep\"", &format!("kind = \"sweep\"\n{extra}"));
    let sc = dicke::scenario::parse(&text, "sweep.toml", &[]).expect("valid sweep");
    let dir = tempfile::tempdir().unwrap();
    let opts = dicke::run::RunOptions {
        out_dir: dir.path().to_path_buf(),
        backend,
        overrides: vec![],
        resume: false,
        shard: None,
    };
    let s = dicke::run::execute_on(&sc, &opts, gpu, &mut dicke::run::NoProgress).expect("sweep runs");
    let text = std::fs::read_to_string(dir.path().join("sweep.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(str::to_string).collect();
    let rows = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    (serde_json::to_value(&s.backend).unwrap(), header, rows)
}

/// GPU sweep vs CPU sweep, row by row. `delta(model, cpu steps, gpu steps)` is the per-variable
/// bound; <J>/N and Jz_late/N within delta (they are N/2 times variables), xi^2 and xi2_min
/// within `xi2_bound` where the CPU's Bloch length is >= R_MIN (xi2_min: at both sides'
/// saves, recomputed with cumulant::evolve at the same tolerances), <J^2> within 3 x 4 N^2
/// delta (three second moments, each ~4 N^2 delta, module doc of cumulant_batch).
fn compare_sweeps(
    label: &str,
    o: &BatchOptions,
    cpu: &(Vec<String>, Vec<Vec<f64>>),
    gpu: &(Vec<String>, Vec<Vec<f64>>),
    delta: &dyn Fn(&Model, f64, f64) -> f64,
) {
    assert_eq!(cpu.0, gpu.0, "{label}: headers");
    assert_eq!(cpu.1.len(), 16, "{label}: rows");
    let col = |name: &str| cpu.0.iter().position(|h| h == name).unwrap();
    let n = 200usize;
    let nf = n as f64;
    let grid = SaveGrid {
        t0: 0.0,
        t_end: 1.0,
        nsave: 101,
        t_min: 0.05,
        t_late: 0.8,
    };
    let times: Vec<f64> = (0..grid.nsave).map(|k| grid.time(k)).collect();
    let y0 = cumulant::from_pure(&pure::coherent(
        n,
        std::f64::consts::FRAC_PI_2,
        std::f64::consts::PI,
    ));
    let (mut worst, mut ddb, mut same) = (0.0f64, 0.0f64, 0);
    for (i, (c, g)) in cpu.1.iter().zip(&gpu.1).enumerate() {
        assert_eq!(c[..2], g[..2], "{label} row {i}: coordinates");
        assert_eq!(
            (c[col("status")], g[col("status")]),
            (0.0, 0.0),
            "{label} row {i}"
        );
        let m = Model {
            n,
            gamma_coll: 1.0,
            chi: 1.0,
            drive: c[0],
            gamma_down: c[1],
            ..Model::default()
        };
        let (sc, sg) = (c[col("steps")], g[col("steps")]);
        same += usize::from(sc == sg);
        let d = delta(&m, sc, sg);
        let mut check = |name: &str, bound: f64| {
            let dv = (c[col(name)] - g[col(name)]).abs();
            assert!(
                dv <= bound,
                "{label} row {i} ({:?}, steps {sc} / {sg}): {name} {} vs {} (bound {bound:e})",
                &c[..2],
                c[col(name)],
                g[col(name)]
            );
            worst = worst.max(dv / bound);
        };
        for name in ["Jx", "Jy", "Jz", "Jz_late"] {
            check(name, nf * d);
        }
        check("J2", 12.0 * nf * nf * d);
        let r = [c[col("Jx")], c[col("Jy")], c[col("Jz")]]
            .iter()
            .map(|x| x * x)
            .sum::<f64>()
            .sqrt()
            / nf;
        if r >= R_MIN {
            check("xi2", xi2_bound(nf, d, c[col("xi2")], r));
        }
        // xi2_min at the saves both sides picked.
        let mut saves = Vec::new();
        let opts = OdeOptions {
            rtol: o.rtol,
            atol: o.atol,
            ..OdeOptions::default()
        };
        cumulant::evolve(&m, &y0, &times, &opts, &mut |_, _, y| {
            let mm = to_moments(n, y);
            saves.push((mm.xi2(), mm.mean.iter().map(|x| x * x).sum::<f64>().sqrt() / nf));
        })
        .expect("evolve");
        let at = |t: f64| times.iter().position(|&s| s == t).expect("a save time");
        let (kc, kg) = (at(c[col("t_xi2_min")]), at(g[col("t_xi2_min")]));
        assert!(
            times[kg] >= grid.t_min,
            "{label} row {i}: GPU minimum outside the window"
        );
        let r = saves[kc].1.min(saves[kg].1);
        if r < R_MIN {
            continue;
        }
        let b = xi2_bound(nf, d, c[col("xi2_min")], r);
        check("xi2_min", b);
        if kc != kg {
            assert!(
                (saves[kg].0 - c[col("xi2_min")]).abs() <= b,
                "{label} row {i}: minimum moved from save {kc} to {kg}"
            );
        }
        ddb = ddb.max((c[col("xi2_min_dB")] - g[col("xi2_min_dB")]).abs());
    }
    eprintln!(
        "{label}: worst deviation/bound {worst:.2e}; max |d xi2_min| {ddb:.2e} dB; equal step \
         counts at {same} of {} points",
        cpu.1.len()
    );
}

/// `kind = "sweep"` with `--backend gpu` in f64 and f32 against the CPU sweep, result.json's
/// backend, and `auto`, which never takes a software adapter. Bounds per variable (module doc):
/// f64 at rtol 1e-10, atol 1e-12: 10 tolerance units plus the rounding terms of `delta_f32`
/// with u = 2^-53 (`2 S u + 40 u Lambda T`). Equal step counts do not make the step sequences
/// equal (the f32 controller powers move h by ~1e-7 relative): at gamma_s = 100 with equal
/// step counts the variables were seen to differ by up to ~1e-11, above pure rounding
/// (~3e-12 there), so the f64 bound is the tolerance-level one of two step sequences, as in
/// `gpu_f64_matches_cpu_twin` for flipped decisions. f32: `delta_f32` at rtol 1e-6, atol 1e-8.
#[test]
fn gpu_sweep_matches_cpu_sweep() {
    use dicke::backend::BackendChoice;
    let test = "gpu_sweep_matches_cpu_sweep";
    let Some(ctx) = test_context(test) else {
        return;
    };
    let t = std::time::Instant::now();
    // f64 at tight tolerances.
    let tight = "rtol = 1e-10\natol = 1e-12";
    let o64 = BatchOptions {
        rtol: 1e-10,
        atol: 1e-12,
        max_steps: 10_000_000,
    };
    let (bc, hc, rc) = run_sweep(tight, BackendChoice::Cpu, None);
    assert_eq!(
        (bc["name"].as_str(), bc["precision"].as_str()),
        (Some("cpu"), Some("f64"))
    );
    if ctx.info().has_f64 {
        let (bg, hg, rg) = run_sweep(
            &format!("{tight}\nprecision = \"f64\""),
            BackendChoice::Gpu,
            Some(Arc::clone(&ctx)),
        );
        assert_eq!(
            (bg["name"].as_str(), bg["precision"].as_str()),
            (Some("gpu"), Some("f64"))
        );
        // 10 tolerance units plus the rounding terms of delta_f32 with the f64 unit roundoff.
        compare_sweeps("sweep f64", &o64, &(hc.clone(), rc), &(hg, rg), &|m, sc, _| {
            let u = f64::EPSILON / 2.0;
            10.0 * (o64.rtol + o64.atol) + 2.0 * sc * u + 40.0 * u * rate_scale(&params(m)) * 1.0
        });
    } else {
        eprintln!("SKIPPED f64 part of {test}: adapter has no SHADER_F64");
    }
    // f32 at its floor; the CPU run of the same scenario ignores precision = "f32" and says so.
    let loose = "rtol = 1e-6\natol = 1e-8\nprecision = \"f32\"";
    let o32 = BatchOptions {
        rtol: 1e-6,
        atol: 1e-8,
        max_steps: 10_000_000,
    };
    let (bc, hc, rc) = run_sweep(loose, BackendChoice::Cpu, None);
    assert_eq!(bc["precision"], "f64");
    assert!(bc["note"].as_str().unwrap().contains("f32"), "{bc}");
    let (bg, hg, rg) = run_sweep(loose, BackendChoice::Gpu, Some(Arc::clone(&ctx)));
    assert_eq!(
        (bg["name"].as_str(), bg["precision"].as_str()),
        (Some("gpu"), Some("f32"))
    );
    compare_sweeps("sweep f32", &o32, &(hc, rc), &(hg, rg), &|m, sc, _| {
        delta_f32(&o32, sc as u64, &params(m), 1.0)
    });
    // auto with a software adapter: the CPU, with the reason.
    if ctx.info().software {
        let (ba, _, _) = run_sweep(loose, BackendChoice::Auto, Some(Arc::clone(&ctx)));
        assert_eq!(ba["name"], "cpu");
        assert!(ba["note"].as_str().unwrap().contains("software"), "{ba}");
    }
    eprintln!("{test}: {:.1} s", t.elapsed().as_secs_f64());
}

// ---- Schedules (issue 15): piece tables in the kernel against the CPU twin's pieces ----

/// `count` random points (module doc) under a protocol: Omega ramps from 0.2 of its value up
/// to it at t = 0.7 (a save time) and down to half at 1.234 (between saves), Gamma steps up by
/// half at t = 0.9, chi follows a triangle of period 0.8 around its value; so each point has
/// eight pieces on [0, 2], kinks and jumps both on and between saves.
fn scheduled_points(count: usize, seed: u64) -> (Points, Vec<Pieces>) {
    let p = random_points(count, seed);
    let pieces = p
        .models
        .iter()
        .map(|m| {
            let pr = Protocol {
                base: *m,
                schedules: vec![
                    (
                        "Omega",
                        Schedule::Ramp(vec![(0.0, 0.2 * m.drive), (0.7, m.drive), (1.234, 0.5 * m.drive)]),
                    ),
                    (
                        "chi",
                        Schedule::Triangle {
                            low: 0.5 * m.chi,
                            high: 1.5 * m.chi,
                            period: 0.8,
                            t0: 0.0,
                        },
                    ),
                    (
                        "Gamma",
                        Schedule::Steps(vec![(0.0, m.gamma_coll), (0.9, 1.5 * m.gamma_coll)]),
                    ),
                ],
            };
            Pieces::new(&pr, GRID.t0, GRID.t_end).expect("pieces")
        })
        .collect();
    (p, pieces)
}

/// The largest rate scale Lambda over a point's pieces (at their starts and ends: each
/// parameter is affine on a piece, so its extremes are there).
fn pieces_rate_scale(pc: &Pieces) -> f64 {
    (0..pc.starts.len())
        .flat_map(|k| {
            let end = pc.starts.get(k + 1).copied().unwrap_or(GRID.t_end);
            [
                rate_scale(&pc.at(k, 0.0)),
                rate_scale(&pc.at(k, end - pc.starts[k])),
            ]
        })
        .fold(0.0, f64::max)
}

/// Scheduled points: the GPU's y and <Jz> late mean against the CPU twin's pieces within the
/// bound `d` per point (module doc; xi^2 at t_end compared where r >= R_MIN). Returns the
/// number of points with equal step counts.
fn compare_scheduled(
    label: &str,
    cpu: &[PointResult],
    gpu: &[PointResult],
    d: &dyn Fn(usize, &PointResult, &PointResult) -> f64,
) -> usize {
    let (mut wy, mut ay, mut same) = (0.0f64, 0.0f64, 0);
    for (i, (c, g)) in cpu.iter().zip(gpu).enumerate() {
        assert_eq!(
            (c.status, g.status),
            (Status::Ok, Status::Ok),
            "{label} point {i}"
        );
        let n = c.mean[2].abs().max(1.0); // only for the message
        let d = d(i, c, g);
        let dy =
            c.y.iter()
                .zip(&g.y)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
        assert!(dy <= d, "{label} point {i}: max |dy| = {dy:e} > {d:e} (|Jz| {n})");
        (wy, ay) = (wy.max(dy / d), ay.max(dy));
        same += usize::from(c.steps == g.steps);
    }
    eprintln!(
        "{label}: worst |dy|/bound {wy:.2e}, max |dy| {ay:.2e}, equal steps at {same} of {}",
        cpu.len()
    );
    same
}

/// f64 kernel with piece tables vs the CPU twin's `integrate_batch_pieces` at rtol 1e-10: the
/// same bounds as for constant parameters (module doc): equal step counts at >= 95 % of the
/// points, 1e-12 where the steps are equal, else 10 tolerance units.
#[test]
fn gpu_f64_scheduled_matches_cpu_twin() {
    let Some(k) = kernel("gpu_f64_scheduled_matches_cpu_twin") else {
        return;
    };
    if !k.context().info().has_f64 {
        eprintln!("SKIPPED: adapter has no SHADER_F64");
        return;
    }
    let (p, pieces) = scheduled_points(64, 0x05c4_ed64);
    assert!(pieces.iter().all(|q| q.starts.len() == 8));
    let o = BatchOptions {
        rtol: 1e-10,
        atol: 1e-12,
        max_steps: 1_000_000,
    };
    let cpu = integrate_batch_pieces(&pieces, &p.y0s, &GRID, &o);
    let opts = CumulantGpuOptions {
        precision: Precision::F64,
        ..Default::default()
    };
    let gpu = k
        .run_pieces_with(&pieces, &p.y0s, &GRID, &o, &opts)
        .expect("gpu f64")
        .points;
    let same = compare_scheduled("f64 scheduled", &cpu, &gpu, &|_, c, g| {
        if c.steps == g.steps {
            1e-12
        } else {
            10.0 * (o.rtol + o.atol)
        }
    });
    assert!(same * 100 >= 95 * cpu.len(), "equal steps at only {same} points");
    for (i, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
        // <Jz>/N = z/2 is a variable: the same bound.
        let dj = (c.jz_late - g.jz_late).abs() / p.pars[i][0];
        assert!(
            dj <= 10.0 * (o.rtol + o.atol),
            "jz_late {} vs {}",
            c.jz_late,
            g.jz_late
        );
    }
    // The schedules matter: the constant protocol ends elsewhere.
    let constant = integrate_batch(&p.pars, &p.y0s, &GRID, &o);
    let moved = constant
        .iter()
        .zip(&cpu)
        .filter(|(a, b)| (a.y[2] - b.y[2]).abs() > 1e-3)
        .count();
    assert!(moved * 2 > cpu.len(), "only {moved} points moved");
}

/// f32 kernel with piece tables vs the f64 CPU twin at rtol 1e-6: the f32 bound delta of the
/// module doc with Lambda the largest over the protocol's pieces.
#[test]
fn gpu_f32_scheduled_matches_cpu_twin() {
    let Some(k) = kernel("gpu_f32_scheduled_matches_cpu_twin") else {
        return;
    };
    let (p, pieces) = scheduled_points(64, 0x05c4_ed32);
    let o = BatchOptions {
        rtol: 1e-6,
        atol: 1e-8,
        max_steps: 1_000_000,
    };
    let cpu = integrate_batch_pieces(&pieces, &p.y0s, &GRID, &o);
    let gpu = k
        .run_pieces_with(&pieces, &p.y0s, &GRID, &o, &CumulantGpuOptions::default())
        .expect("gpu f32")
        .points;
    let u = f32::EPSILON as f64 / 2.0;
    compare_scheduled("f32 scheduled", &cpu, &gpu, &|i, c, _| {
        10.0 * (o.rtol + o.atol)
            + 2.0 * c.steps as f64 * u
            + 40.0 * u * pieces_rate_scale(&pieces[i]) * (GRID.t_end - GRID.t0)
    });
}

/// Piece tables survive dispatch boundaries and chunks (the current piece lives in the
/// state): a budget-split, an attempt-split and a chunked run give the bits of one long
/// dispatch; a constant protocol as one piece gives the bits of the constant path (count-0
/// points read `par`, as before schedules existed); identical tables are uploaded once.
#[test]
fn gpu_scheduled_split_and_constant_pieces_change_nothing() {
    let Some(k) = kernel("gpu_scheduled_split_and_constant_pieces_change_nothing") else {
        return;
    };
    let (p, pieces) = scheduled_points(24, 0x005c_4ed5);
    let o = BatchOptions {
        rtol: 1e-6,
        atol: 1e-8,
        max_steps: 1_000_000,
    };
    let run = |pc: &[Pieces], opts: CumulantGpuOptions| {
        k.run_pieces_with(pc, &p.y0s, &GRID, &o, &opts).expect("gpu")
    };
    let one = run(
        &pieces,
        CumulantGpuOptions {
            attempts_per_dispatch: 1_000_000,
            loop_budget: u32::MAX,
            ..Default::default()
        },
    );
    let tiny = run(
        &pieces,
        CumulantGpuOptions {
            loop_budget: LOOP_ATTEMPT + LOOP_SAVE + 1,
            ..Default::default()
        },
    );
    let three = run(
        &pieces,
        CumulantGpuOptions {
            attempts_per_dispatch: 3,
            chunk_points: 10,
            ..Default::default()
        },
    );
    // One attempt per dispatch under the tiny budget: at least as many dispatches as the
    // most attempts at a point.
    let most = one.points.iter().map(|r| r.steps + r.rejected).max().unwrap();
    assert!(
        tiny.dispatches as u64 >= most,
        "{} dispatches, {most} attempts",
        tiny.dispatches
    );
    assert_eq!(three.chunks, 3);
    for (i, a) in one.points.iter().enumerate() {
        assert_eq!(a.status, Status::Ok);
        assert!(same_bits(a, &tiny.points[i]), "point {i}: budget-split differs");
        assert!(
            same_bits(a, &three.points[i]),
            "point {i}: attempt-split/chunked differs"
        );
    }
    let constant: Vec<Pieces> = p.pars.iter().map(|&q| Pieces::constant(q, GRID.t0)).collect();
    let as_pieces = run(&constant, CumulantGpuOptions::default());
    let plain = k
        .run_with(&p.pars, &p.y0s, &GRID, &o, &CumulantGpuOptions::default())
        .expect("gpu");
    for (i, a) in plain.points.iter().enumerate() {
        assert!(
            same_bits(a, &as_pieces.points[i]),
            "point {i}: constant pieces differ"
        );
    }
    // One shared table for all points gives each point's own result.
    let shared: Vec<Pieces> = vec![pieces[0].clone(); p.pars.len()];
    let y0 = vec![p.y0s[0]; p.pars.len()];
    let s = k
        .run_pieces_with(&shared, &y0, &GRID, &o, &CumulantGpuOptions::default())
        .expect("gpu");
    assert!(s.points.iter().all(|r| same_bits(r, &s.points[0])));
    assert!(same_bits(&s.points[0], &one.points[0]));
}
