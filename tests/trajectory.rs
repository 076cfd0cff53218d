use dicke::c64;
use dicke::model::Model;
use dicke::solver::master;
use dicke::solver::ode::OdeOptions;
use dicke::solver::trajectory::{self, Precision, TrajectoryOptions};
use dicke::state::{DensityMatrix, pure};

fn seed001(n: usize, u: f64) -> Model {
    Model {
        n,
        gamma_coll: 1.0,
        chi: 0.9375,
        drive: u * n as f64 / 2.0,
        ..Default::default()
    }
}

fn linspace(t1: f64, k: usize) -> Vec<f64> {
    (0..k).map(|i| t1 * i as f64 / (k - 1) as f64).collect()
}

fn me_jz(model: &Model, psi0: &[c64], times: &[f64]) -> Vec<f64> {
    let rho0 = DensityMatrix::from_pure(psi0);
    let mut out = vec![0.0; times.len()];
    let opts = OdeOptions {
        rtol: 1e-10,
        atol: 1e-12,
        ..Default::default()
    };
    master::evolve(model, &rho0, times, &opts, &mut |i, _t, rho| {
        out[i] = dicke::observe::moments(rho).mean[2];
    })
    .unwrap();
    out
}

#[test]
#[ignore]
fn exp_hamiltonian_only() {
    for &u in &[1.48, 2.09] {
        let model = Model {
            gamma_coll: 0.0,
            ..seed001(100, u)
        };
        let psi0 = pure::dicke(100, -50.0).unwrap();
        let times = linspace(0.2, 21);
        let exact = me_jz(&model, &psi0, &times);
        for cfl in [0.25, 0.5, 1.0, 1.3] {
            let opts = TrajectoryOptions {
                ntraj: 1,
                precision: Precision::F64,
                cfl,
                ..Default::default()
            };
            let r = trajectory::run_cpu(&model, &psi0, &times, &opts).unwrap();
            let err = r.mean[2]
                .iter()
                .zip(&exact)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            println!("u {u} cfl {cfl} steps/save {} max|dJz| {err:e}", r.steps[0]);
        }
    }
}

#[test]
#[ignore]
fn exp_ensemble() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let ntraj: u64 = std::env::var("NTRAJ")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let cfl: f64 = std::env::var("CFL")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.5);
    let us: Vec<f64> = std::env::var("US")
        .ok()
        .map(|s| s.split(',').map(|x| x.parse().unwrap()).collect())
        .unwrap_or(vec![1.48, 2.09]);
    for &u in &us {
        let model = seed001(n, u);
        let psi0 = pure::dicke(n, -(n as f64) / 2.0).unwrap();
        let times = linspace(0.2, 21);
        let t0 = std::time::Instant::now();
        let exact = me_jz(&model, &psi0, &times);
        let tme = t0.elapsed().as_secs_f64();
        let seed: u64 = std::env::var("SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        let precision = if std::env::var("F64").is_ok() {
            Precision::F64
        } else {
            Precision::F32
        };
        let opts = TrajectoryOptions {
            ntraj,
            precision,
            cfl,
            seed,
            ..Default::default()
        };
        let r = trajectory::run_cpu(&model, &psi0, &times, &opts).unwrap();
        let mut worst: f64 = 0.0;
        for t in 0..times.len() {
            let z = (r.mean[2][t] - exact[t]) / r.se[2][t];
            worst = worst.max(z.abs());
            println!(
                "t {:.3} me {:9.4} traj {:9.4} se {:.4} z {:+.2} jumps {:.1}",
                times[t], exact[t], r.mean[2][t], r.se[2][t], z, r.mean[9][t]
            );
        }
        println!(
            "u {u} N {n} ntraj {ntraj} cfl {cfl}: worst |z| {worst:.2}, steps/save {}, wall {:.2}s ({:.0} traj/s), ME {tme:.2}s",
            r.steps[0],
            r.wall_s,
            ntraj as f64 / r.wall_s
        );
    }
}

#[test]
#[ignore]
fn exp_distribution() {
    let model = seed001(100, 1.48);
    let psi0 = pure::dicke(100, -50.0).unwrap();
    let times = linspace(0.2, 21);
    let opts = TrajectoryOptions {
        ntraj: 2000,
        seed: 1,
        save_trajectories: 2000,
        ..Default::default()
    };
    let r = trajectory::run_cpu(&model, &psi0, &times, &opts).unwrap();
    for t in [10usize, 13, 16, 20] {
        let mut v: Vec<f64> = r.trajectories.iter().map(|s| s.values[t][2]).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let q = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let far: Vec<f64> = v.iter().cloned().filter(|x| (x - mean).abs() > 3.0).collect();
        println!(
            "t {:.2}: min {:.2} q01 {:.2} q50 {:.3} q99 {:.2} max {:.2}; |x-mean|>3: {} {:?}",
            times[t],
            q(0.0),
            q(0.01),
            q(0.5),
            q(0.99),
            q(1.0),
            far.len(),
            &far[..far.len().min(8)]
        );
    }
}

#[test]
#[ignore]
fn exp_gpu() {
    use dicke::backend::gpu::{test_context, trajectory::TrajectoryGpu};
    let ctx = test_context("exp_gpu").unwrap();
    println!("{:?}", ctx.info());
    let gpu = TrajectoryGpu::new(ctx).unwrap();
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let ntraj: u64 = std::env::var("NTRAJ")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let lanes: u32 = std::env::var("LANES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let nsave: usize = std::env::var("NSAVE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(21);
    let t1: f64 = std::env::var("T1")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.2);
    let precision = if std::env::var("F64").is_ok() {
        Precision::F64
    } else {
        Precision::F32
    };
    let model = seed001(n, 1.48);
    let psi0 = pure::dicke(n, -(n as f64) / 2.0).unwrap();
    let times = linspace(t1, nsave);
    let opts = TrajectoryOptions {
        ntraj,
        seed: 1,
        lanes,
        precision,
        ..Default::default()
    };
    let plan = trajectory::Plan::new(&model, &psi0, &times, &opts).unwrap();
    println!("variant {:?} lanes {}", gpu.variant(&plan), plan.lanes);
    let t0 = std::time::Instant::now();
    let g = gpu.records(&plan).unwrap();
    let tg = t0.elapsed().as_secs_f64();
    let t0 = std::time::Instant::now();
    let c = trajectory::cpu_records(&plan, 0, ntraj);
    let tc = t0.elapsed().as_secs_f64();
    let mut maxd: f64 = 0.0;
    let mut neq = 0;
    for (a, b) in g.iter().zip(&c) {
        if a != b {
            neq += 1;
        }
        maxd = maxd.max((a - b).abs() / (1.0 + b.abs()));
    }
    println!(
        "N {n} ntraj {ntraj}: gpu {tg:.2}s ({:.1} traj/s) cpu {tc:.2}s ({:.1} traj/s); differing {neq}/{} max rel {maxd:e}",
        ntraj as f64 / tg,
        ntraj as f64 / tc,
        g.len()
    );
}
