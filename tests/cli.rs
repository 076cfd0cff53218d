//! End-to-end tests of the `dicke` binary: the output contract and error reporting.

mod common;
use common::{Toml, run_scenario, run_scenario_env};

#[test]
fn evolve_writes_the_output_contract() {
    let run = run_scenario(
        Toml::File("scenarios/quickstart.toml"),
        &[
            "--set",
            "N=10",
            "--set",
            "task.t_end=0.1",
            "--set",
            "task.n_times=11",
        ],
    );
    run.assert_ok();
    let (header, rows) = run.csv("observables.csv");
    assert_eq!(header, ["t", "Jx", "Jy", "Jz", "xi2", "J2", "var_Jz", "N_eff"]);
    assert_eq!(rows.len(), 11);
    // t = 0 is the south pole of N = 10: <Jz> = -5, <J^2> = j(j+1) = 30, N_eff = N.
    assert_eq!(rows[0][0], 0.0);
    assert!((rows[0][3] + 5.0).abs() < 1e-12);
    assert!((rows[0][5] - 30.0).abs() < 1e-9);
    assert!((rows[0][7] - 10.0).abs() < 1e-9);
    assert!((rows[10][0] - 0.1).abs() < 1e-12);
    let res = run.result();
    assert_eq!(res["backend"]["name"], "cpu");
    assert_eq!(res["scenario"]["model"]["N"], 10);
    assert_eq!(res["overrides"][0], "N=10");
    assert!(res["wall_time_s"].as_f64().unwrap() > 0.0);
    assert!(res["dicke_version"].is_string());
    run.assert_png("plot.png");
}

#[test]
fn pinned_scan_writes_one_row_with_varying_parameters() {
    let run = run_scenario(
        Toml::File("scenarios/exchange_steady_state.toml"),
        &["--set", "N=10", "--set", "x=0.5"],
    );
    run.assert_ok();
    let (header, rows) = run.csv("observables.csv");
    assert_eq!(&header[..7], ["x", "Jx", "Jy", "Jz", "xi2", "J2", "var_Jz"]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0], 0.5);
}

#[test]
fn scan_lists_the_scanned_variable_and_the_parameters_it_moves() {
    let run = run_scenario(
        Toml::File("scenarios/pumping_steady_state.toml"),
        &["--set", "N=8", "--set", "task.num=5"],
    );
    run.assert_ok();
    let (header, rows) = run.csv("observables.csv");
    assert_eq!(&header[..4], ["r", "w", "Jx", "Jy"]);
    assert_eq!(rows.len(), 5);
    // w = r * Gamma with Gamma = 1.
    for r in &rows {
        assert_eq!(r[0], r[1]);
    }
    assert!(run.path("pm.csv").exists());
}

#[test]
fn errors_are_messages_not_panics() {
    let cases: [(&str, &[&str], &str); 5] = [
        ("scenarios/quickstart.toml", &["--set", "Gamma=-1"], "model.Gamma"),
        ("scenarios/quickstart.toml", &["--set", "N=0"], "model.N"),
        ("no/such/file.toml", &[], "no/such/file.toml"),
        (
            "scenarios/quickstart.toml",
            &["--backend", "gpu", "--set", "N=4"],
            "GPU",
        ),
        ("scenarios/quickstart.toml", &["--backend", "tpu"], "--backend"),
    ];
    for (file, args, needle) in cases {
        let run = run_scenario(Toml::File(file), args);
        let stderr = &run.stderr;
        assert!(!run.ok, "{file} {args:?} should fail");
        assert!(stderr.contains(needle), "{file} {args:?}: stderr {stderr}");
        assert!(!stderr.contains("panicked"), "{file} {args:?} panicked: {stderr}");
    }
}

#[test]
fn trajectories_write_means_standard_errors_and_single_trajectories() {
    let run = run_scenario(
        Toml::File("scenarios/exchange_trajectories.toml"),
        &[
            "--backend",
            "cpu",
            "--set",
            "N=10",
            "--set",
            "task.ntraj=64",
            "--set",
            "task.t_end=0.05",
            "--set",
            "task.n_times=11",
            "--set",
            "task.save_trajectories=2",
        ],
    );
    run.assert_ok();
    let (header, rows) = run.csv("observables.csv");
    assert_eq!(&header[..6], ["t", "Jx", "Jy", "Jz", "xi2", "J2"]);
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    let (jz, jz_se, jumps) = (col("Jz"), col("Jz_se"), col("jumps"));
    assert_eq!(rows.len(), 11);
    // t = 0: every trajectory starts at the south pole, so the mean is exact and the SE zero.
    assert!((rows[0][jz] + 5.0).abs() < 1e-6 && rows[0][jz_se] == 0.0);
    // Later the ensemble spreads: a positive SE, and jumps have happened (rate ~ Gamma N).
    assert!(rows[10][jz_se] > 0.0 && rows[10][jumps] > 0.0);
    let (th, trows) = run.csv("trajectories.csv");
    assert_eq!(&th[..3], ["traj", "t", "Jx"]);
    assert_eq!(trows.len(), 2 * 11);
    let res = run.result();
    assert_eq!(res["task"], "trajectories");
    assert_eq!(res["backend"]["name"], "cpu");
    assert_eq!(res["backend"]["precision"], "f32");
}

#[test]
fn scan_of_evolutions_writes_final_rows_and_the_long_format() {
    let run = run_scenario(
        Toml::File("scenarios/exchange_scan_dynamics.toml"),
        &[
            "--backend",
            "cpu",
            "--set",
            "N=10",
            "--set",
            "task.num=3",
            "--set",
            "task.n_times=5",
            "--set",
            "task.t_end=0.1",
        ],
    );
    run.assert_ok();
    for f in ["observables.csv", "scan_evolution.csv", "result.json", "plot.png"] {
        assert!(run.path(f).exists(), "{f} missing");
    }
    let (header, rows) = run.csv("observables.csv");
    assert_eq!(&header[..6], ["u", "Omega", "Jx", "Jy", "Jz", "xi2"]);
    assert_eq!(rows.len(), 3);
    let (eh, erows) = run.csv("scan_evolution.csv");
    assert_eq!(&eh[..3], ["u", "t", "Jx"]);
    assert_eq!(erows.len(), 3 * 5);
    // <Jz> at t = 0.1 of each point against master::evolve of that point, with the scenario's
    // tolerances: the same code path, so agreement to rounding (1e-12 of j = 5).
    let jz = header.iter().position(|h| h == "Jz").unwrap();
    let times: Vec<f64> = (0..5).map(|i| 0.1 * i as f64 / 4.0).collect();
    let ode = dicke::solver::ode::OdeOptions {
        rtol: 1e-8,
        atol: 1e-10,
        max_steps: 10_000_000,
        h0: None,
    };
    for (i, u) in [0.5, 1.625, 2.75].iter().enumerate() {
        assert!((rows[i][0] - u).abs() < 1e-12, "u grid: {}", rows[i][0]);
        let model = dicke::model::Model {
            n: 10,
            gamma_coll: 1.0,
            chi: 1.875 / 2.0,
            drive: u * 10.0 / 2.0,
            ..Default::default()
        };
        let rho0 = dicke::state::DensityMatrix::from_pure(&dicke::state::pure::dicke(10, -5.0).unwrap());
        let mut fin = f64::NAN;
        dicke::solver::master::evolve(&model, &rho0, &times, &ode, &mut |_, _, rho| {
            fin = dicke::observe::moments(rho).mean[2];
        })
        .unwrap();
        assert!(
            (rows[i][jz] - fin).abs() < 1e-12 * 5.0,
            "u = {u}: {} vs {fin}",
            rows[i][jz]
        );
        // Sane physics: the drive has lifted the spin off the south pole, within -j..j.
        assert!(fin > -5.0 && fin < 5.0, "{fin}");
    }
    let res = run.result();
    assert_eq!(res["task"], "scan");
    assert_eq!(res["results"]["mode"], "evolve");
    assert_eq!(res["backend"]["name"], "cpu");
    assert_eq!(res["backend"]["precision"], "f64");
    assert_eq!(res["stats"]["points"].as_array().unwrap().len(), 3);
    assert!(res["stats"]["points"][0]["steps"].as_u64().unwrap() > 0);
    assert!(
        res["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "scan_evolution.csv")
    );
}

/// Requests that would not fit are refused before anything is allocated: the CPU path by the
/// per-point estimate of one evolution, the GPU path by what the host holds of the batch.
#[test]
fn scan_of_evolutions_refuses_what_does_not_fit() {
    let run = |backend: &str| {
        let run = run_scenario_env(
            Toml::File("scenarios/exchange_scan_dynamics.toml"),
            &["--set", "N=200", "--backend", backend],
            &[("DICKE_MEMORY_LIMIT_MIB", "1")],
        );
        (run.ok, run.stderr)
    };
    let (ok, stderr) = run("cpu");
    assert!(
        !ok && stderr.contains("request needs about") && stderr.contains("limit 1 MiB"),
        "{stderr}"
    );
    assert!(stderr.contains("scan point"), "{stderr}");
    if common::gpu_available("scan_of_evolutions_refuses_what_does_not_fit") {
        let (ok, stderr) = run("gpu");
        assert!(
            !ok && stderr.contains("request needs about") && stderr.contains("GPU scan of 16 points"),
            "{stderr}"
        );
    }
}

/// A model with single-atom rates runs on the block solver (evolve and steady-state scan),
/// and says so in result.json.
#[test]
fn single_atom_rates_run_on_the_block_solver() {
    let run = run_scenario(
        Toml::File("scenarios/quickstart.toml"),
        &["--set", "gamma_down=0.3", "--set", "N=6"],
    );
    run.assert_ok();
    let res = run.result();
    assert!(
        res["solver"].as_str().unwrap().starts_with("blocks"),
        "{}",
        res["solver"]
    );
    let run = run_scenario(
        Toml::File("scenarios/bistability_steady_state.toml"),
        &["--set", "N=18", "--set", "x=0.75"],
    );
    run.assert_ok();
    let res = run.result();
    assert!(
        res["solver"].as_str().unwrap().starts_with("blocks"),
        "{}",
        res["solver"]
    );
    // gamma_1D = 15.5 / (N - 1) derived from the overridden N.
    assert!((res["model"]["Gamma"].as_f64().unwrap() - 15.5 / 17.0).abs() < 1e-12);
    let pm = std::fs::read_to_string(run.path("pm.csv")).unwrap();
    let row: Vec<f64> = pm
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(row.len(), 1 + 19);
    assert!((row[1..].iter().sum::<f64>() - 1.0).abs() < 1e-12);
}

/// The shipped seed 000 Fig. 4 scenario, shortened: irrep-changing trajectories (single-atom
/// decay) run on `backend` (no flag: the default, auto), write the single trajectories with their own xi2 and
/// N_eff, and leave j = N/2 (N_eff < N at the end for some trajectory: the single-atom
/// channels fire; with gamma_F = 1/11 and 8 trajectories to t = 60 the chance that none does
/// is negligible, and the seed is fixed), with the fidelity with the CRSS along each (0 there).
fn switching_trajectories(backend: Option<&str>) -> serde_json::Value {
    let mut args = vec!["--set", "task.t_end=60", "--set", "task.n_times=61"];
    if let Some(b) = backend {
        args.extend(["--backend", b]);
    }
    let run = run_scenario(Toml::File("scenarios/bistability_trajectories.toml"), &args);
    run.assert_ok();
    let (h, rows) = run.csv("trajectories.csv");
    let col = |name: &str| {
        h.iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let (neff, xi2, jz, fid) = (col("N_eff"), col("xi2"), col("Jz"), col("fidelity"));
    assert_eq!(
        fid,
        h.len() - 1,
        "fidelity (with the CRSS, Fig. 4b) is the last column"
    );
    assert_eq!(rows.len(), 8 * 61);
    // The CRSS lies in j = N/2: the fidelity is 0 wherever a trajectory has left it, and
    // close to 1 on the lower metastable state in j = N/2.
    assert!(rows.iter().all(|r| (0.0..=1.0 + 1e-9).contains(&r[fid])));
    assert!(rows.iter().filter(|r| r[neff] < 17.5).all(|r| r[fid] == 0.0));
    assert!(rows.iter().any(|r| r[fid] > 0.9), "never near the CRSS");
    assert!(
        rows.iter()
            .all(|r| r[neff] <= 18.0 + 1e-9 && r[neff] >= 0.0 && r[jz].abs() <= 9.0 + 1e-9)
    );
    assert!(rows.iter().all(|r| r[xi2] > 0.0));
    assert!(rows.iter().any(|r| r[neff] < 17.5), "no trajectory left j = N/2");
    assert!(run.path("trajectories.png").exists());
    run.result()
}

/// Default backend (auto): a real GPU when there is one, else the CPU with the reason.
#[test]
fn switching_trajectories_change_irrep_and_write_single_trajectories() {
    let res = switching_trajectories(None);
    let note = res["backend"]["note"].as_str().unwrap_or_default();
    assert!(
        res["backend"]["name"] == "gpu" || note.starts_with("auto: no real GPU adapter"),
        "auto picked {} ({note})",
        res["backend"]["name"]
    );
}

/// `--backend gpu` (lavapipe in CI): the irrep-changing GPU kernel behind the CLI.
#[test]
fn switching_trajectories_on_the_gpu() {
    if !common::gpu_available("switching_trajectories_on_the_gpu") {
        return;
    }
    let res = switching_trajectories(Some("gpu"));
    assert_eq!(res["backend"]["name"], "gpu");
}

/// The shipped mean-field scenario (seed 000 Fig. 1b): files, columns, the fixed points at
/// x = 0.75 and the boundaries. Bisection tolerance 1.2e-9 (1e-9 of the scan span): the window
/// edges agree with seed 000 eq. (S24), 0.69290 and 0.80523, to 1e-6; the Dicke curve's only
/// change is at x = 1 (Omega_c), where its stable point gives way to two centers.
#[test]
fn fixed_points_scenario_reproduces_the_bistability_window() {
    let run = run_scenario(Toml::File("scenarios/bistability_meanfield.toml"), &[]);
    run.assert_ok();
    let (header, rows) = run.csv("fixed_points.csv");
    assert_eq!(
        header,
        [
            "x",
            "Omega",
            "sx",
            "sy",
            "sz",
            "stable",
            "center",
            "max_re_eig",
            "eig1_re",
            "eig1_im",
            "eig2_re",
            "eig2_im",
            "eig3_re",
            "eig3_im"
        ]
    );
    eigenvalue_columns_are_the_jacobians(&rows, 15.5);
    let at = |rows: &[Vec<f64>], x: f64| -> Vec<Vec<f64>> {
        rows.iter()
            .filter(|r| (r[0] - x).abs() < 1e-12)
            .cloned()
            .collect()
    };
    let r = at(&rows, 0.75);
    assert_eq!(r.len(), 3, "{r:?}");
    let sz: Vec<f64> = r.iter().map(|r| r[4]).collect();
    let stable: Vec<f64> = r.iter().map(|r| r[5]).collect();
    assert_eq!(stable, [1.0, 0.0, 1.0]);
    assert!(
        (sz[0] + 0.635).abs() < 5e-4 && (sz[2] + 0.032).abs() < 5e-4,
        "{sz:?}"
    );
    assert!((r[0][1] - 2.0 * 0.75 * 15.5 / 4.0).abs() < 1e-12, "Omega column");
    let (hc, rc) = run.csv("fixed_points_collective.csv");
    assert_eq!(hc, header);
    let c = at(&rc, 0.75);
    let st: Vec<&Vec<f64>> = c.iter().filter(|r| r[5] == 1.0).collect();
    assert_eq!(st.len(), 1);
    assert!(
        (st[0][4] + (1.0f64 - 0.75 * 0.75).sqrt()).abs() < 1e-12,
        "Dicke curve: {:?}",
        st[0]
    );
    let res = run.result();
    assert_eq!(res["task"], "fixed_points");
    let b = res["results"]["individual"]["boundaries"].as_array().unwrap();
    assert_eq!(b.len(), 2, "{b:?}");
    let g: f64 = 1.0 / 15.5;
    for (bd, sgn) in b.iter().zip([-1.0, 1.0]) {
        let x = ((1.0 + 20.0 * g - 8.0 * g * g + sgn * (1.0 - 8.0 * g).powf(1.5)) / 4.0).sqrt();
        assert!((bd["at"].as_f64().unwrap() - x).abs() < 1e-6, "{bd} vs {x}");
    }
    let bc = res["results"]["collective"]["boundaries"].as_array().unwrap();
    assert_eq!(bc.len(), 1, "{bc:?}");
    assert!((bc[0]["at"].as_f64().unwrap() - 1.0).abs() < 1e-6);
    run.assert_png("plot.png");
}

/// Every row's eigenvalue columns (seed 000 Fig. S2c): led by `max_re_eig`, by decreasing real
/// part, negative for stable points, and equal to the eigenvalues of the Jacobian of the
/// individual mean-field equations taken by central differences of `meanfield::rhs` (an
/// independent route to the analytic Jacobian the solver uses): their sum is its trace, their
/// product its determinant (to 1e-8 of the rate scale (cubed): central differences with h = 1e-6
/// are good to ~1e-10 relative, rounding over h).
fn eigenvalue_columns_are_the_jacobians(rows: &[Vec<f64>], gamma_mf: f64) {
    use dicke::solver::meanfield::{self, Factorisation};
    let sc =
        dicke::scenario::load(std::path::Path::new("scenarios/bistability_meanfield.toml"), &[]).unwrap();
    for r in rows {
        let e: Vec<(f64, f64)> = (0..3).map(|k| (r[8 + 2 * k], r[9 + 2 * k])).collect();
        assert_eq!(e[0].0, r[7], "eig1_re is max_re_eig: {r:?}");
        assert!(e[0].0 >= e[1].0 && e[1].0 >= e[2].0, "sorted: {r:?}");
        if r[5] == 1.0 {
            assert!(e.iter().all(|z| z.0 < 0.0), "stable: {r:?}");
        }
        let p = sc.point(&[("x", r[0])]).unwrap();
        let co = meanfield::Coeffs::new(&p.model, Factorisation::Individual);
        let s = [r[2], r[3], r[4]];
        let h = 1e-6;
        let mut jac = [[0.0; 3]; 3];
        for k in 0..3 {
            let (mut a, mut b) = (s, s);
            a[k] += h;
            b[k] -= h;
            let (fa, fb) = (meanfield::rhs(&co, a), meanfield::rhs(&co, b));
            for i in 0..3 {
                jac[i][k] = (fa[i] - fb[i]) / (2.0 * h);
            }
        }
        let tr = jac[0][0] + jac[1][1] + jac[2][2];
        let det = jac[0][0] * (jac[1][1] * jac[2][2] - jac[1][2] * jac[2][1])
            - jac[0][1] * (jac[1][0] * jac[2][2] - jac[1][2] * jac[2][0])
            + jac[0][2] * (jac[1][0] * jac[2][1] - jac[1][1] * jac[2][0]);
        let z: Vec<dicke::c64> = e.iter().map(|(a, b)| dicke::c64::new(*a, *b)).collect();
        let sum = z[0] + z[1] + z[2];
        let prod = z[0] * z[1] * z[2];
        let scale = gamma_mf.max(1.0);
        assert!(
            (sum.re - tr).abs() < 1e-8 * scale && sum.im.abs() < 1e-8 * scale,
            "trace: {r:?} {tr}"
        );
        assert!(
            (prod.re - det).abs() < 1e-8 * scale.powi(3) && prod.im.abs() < 1e-8 * scale.powi(3),
            "det: {r:?} {det}"
        );
    }
}

/// kind = "fixed_points" with [initial] and t_end: each point is also integrated from the south
/// pole. Individual factorisation (seed 000): every run ends on a stable fixed point (distance
/// < 1e-6 after t = 200/gamma, slowest rate ~0.2 gamma away from the folds), on the lower
/// branch up to the upper edge of the window (hysteresis: inside the window the south pole
/// picks the lower state) and on the upper one (sz > -0.1) beyond it. Collective (Dicke) above
/// Omega_c: no stable fixed point, the distance column is NaN.
#[test]
fn fixed_points_with_runs_from_the_initial_state() {
    let text = std::fs::read_to_string("scenarios/bistability_meanfield.toml")
        .unwrap()
        .replace(
            "[task]",
            "[initial]\nstate = \"dicke\"\nm = \"-N/2\"\n\n[task]\nt_end = 200",
        );
    let run = run_scenario(Toml::Text(&text), &["--set", "task.num=61"]);
    run.assert_ok();
    let (header, rows) = run.csv("meanfield_final.csv");
    assert_eq!(header, ["x", "Omega", "sx", "sy", "sz", "distance_to_stable"]);
    assert_eq!(rows.len(), 61);
    for r in &rows {
        assert!(r[5] < 1e-6, "run did not end on a stable fixed point: {r:?}");
        if r[0] < 0.8052 {
            assert!(r[4] < -0.3, "lower branch expected: {r:?}");
        } else {
            assert!(r[4] > -0.1, "upper branch expected: {r:?}");
        }
    }
    let (_, rc) = run.csv("meanfield_final_collective.csv");
    for r in rc.iter().filter(|r| r[0] > 1.0) {
        assert!(r[5].is_nan(), "{r:?}");
    }
}

/// `kind = "sweep"` end to end on a small version of the shipped Fig. S1a scenario (N = 40,
/// chi pinned to 1 by --set so the sweep runs along y only, t_end = 0.5, 51 saves): the
/// header names the axes, the parameter they move and the per-point quantities; every point
/// finishes; one row is recomputed here through the library (same model, same initial state,
/// same tolerances through `cumulant::evolve`, whose steps the batch reproduces), so the
/// wiring of parameters, initial state and reductions is checked to rounding (1e-9).
#[test]
fn sweep_writes_one_row_per_point_and_a_figure() {
    use dicke::model::Model;
    use dicke::solver::cumulant;
    use dicke::solver::ode::OdeOptions;
    use dicke::state::pure;
    let scenario = "scenarios/exchange_cumulant_phase_diagram.toml";
    let run = run_scenario(
        Toml::File(scenario),
        &[
            "--set",
            "N=40",
            "--set",
            "chi=1",
            "--set",
            "task.t_end=0.5",
            "--set",
            "task.n_times=51",
            "--set",
            "task.t_min=0.05",
        ],
    );
    run.assert_ok();
    let (header, rows) = run.csv("sweep.csv");
    assert_eq!(&header[..3], ["chi", "y", "Omega"]);
    assert_eq!(
        &header[3..],
        [
            "xi2_min",
            "xi2_min_dB",
            "t_xi2_min",
            "Jz_late",
            "Jx",
            "Jy",
            "Jz",
            "xi2",
            "J2",
            "N_eff",
            "steps",
            "rejected",
            "status"
        ]
    );
    assert_eq!(rows.len(), 41);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    for r in &rows {
        assert_eq!(r[0], 1.0);
        assert_eq!(r[col("status")], 0.0);
        assert!((r[col("Omega")] - r[1] * 20.0).abs() < 1e-9);
        assert!(r[col("t_xi2_min")] >= 0.05 - 1e-12);
    }
    // Row 20 through the library.
    let r = &rows[20];
    let model = Model {
        n: 40,
        drive: r[col("Omega")],
        chi: 1.0,
        gamma_coll: 1.0,
        gamma_down: 20.0,
        ..Model::default()
    };
    let y0 = cumulant::from_pure(&pure::coherent(
        40,
        std::f64::consts::FRAC_PI_2,
        std::f64::consts::PI,
    ));
    let times: Vec<f64> = (0..=50).map(|k| 0.01 * k as f64).collect();
    let opts = OdeOptions {
        rtol: 1e-8,
        atol: 1e-10,
        ..OdeOptions::default()
    };
    let (mut xmin, mut last) = (f64::INFINITY, [0.0; 9]);
    cumulant::evolve(&model, &y0, &times, &opts, &mut |_, t, y| {
        if t >= 0.05 - 1e-12 {
            xmin = xmin.min(cumulant::to_moments(40, y).xi2());
        }
        last = *y;
    })
    .unwrap();
    let m = cumulant::to_moments(40, &last);
    assert!(
        (r[col("Jz")] - m.mean[2]).abs() < 1e-9,
        "{} vs {}",
        r[col("Jz")],
        m.mean[2]
    );
    assert!((r[col("xi2")] - m.xi2()).abs() < 1e-9);
    assert!((r[col("xi2_min")] - xmin).abs() < 1e-9);
    let res = run.result();
    assert_eq!(res["task"], "sweep");
    assert_eq!(res["results"]["points"], 41);
    assert_eq!(res["results"]["failed"], 0);
    run.assert_png("sweep.png");
    // The memory estimate is checked before anything runs (a 0 MiB limit refuses any sweep).
    let mem = run_scenario_env(Toml::File(scenario), &[], &[("DICKE_MEMORY_LIMIT_MIB", "0")]);
    let stderr = &mem.stderr;
    assert!(
        !mem.ok && stderr.contains("MiB") && stderr.contains("1681 points"),
        "{stderr}"
    );
    assert!(!mem.path(dicke::task::sweep::SWEEP_CSV).exists());
    // An f32 (GPU) sweep at the scenario's rtol = 1e-8 is refused before anything runs, with
    // the field, value and floor (the GPU sweep itself: tests/gpu_cumulant_batch.rs).
    let f32 = run_scenario(
        Toml::File(scenario),
        &["--backend", "gpu", "--set", "task.precision=f32"],
    );
    let stderr = &f32.stderr;
    assert!(
        !f32.ok && stderr.contains("`task.rtol` = 0.00000001") && stderr.contains("rtol >= 1e-6"),
        "{stderr}"
    );
    assert!(!f32.out.exists());
}

/// The shipped seed 002 scan of exact evolutions (single-atom decay, block master equation),
/// shortened: the collective point gamma_s = 0 keeps N_eff = N, the others lose atoms from
/// j = N/2 (N_eff < N) and squeeze less at the end; the run records the solver it used.
#[test]
fn emission_squeezing_scan_runs_the_block_solver() {
    let run = run_scenario(
        Toml::File("scenarios/emission_squeezing_scan.toml"),
        &[
            "--backend",
            "cpu",
            "--set",
            "N=10",
            "--set",
            "task.num=3",
            "--set",
            "task.n_times=6",
            "--set",
            "task.t_end=0.5",
        ],
    );
    run.assert_ok();
    let (h, rows) = run.csv("observables.csv");
    assert_eq!(rows.len(), 3);
    let ne = h.iter().position(|c| c == "N_eff").unwrap();
    assert!(
        (rows[0][ne] - 10.0).abs() < 1e-9,
        "gamma_s = 0: N_eff {}",
        rows[0][ne]
    );
    assert!(rows[1][ne] < 10.0 - 1e-3 && rows[2][ne] < rows[1][ne], "{rows:?}");
    let res = run.result();
    assert!(
        res["stats"]["integrator"]
            .as_str()
            .unwrap()
            .contains("blocks::evolve"),
        "{}",
        res["stats"]["integrator"]
    );
}

/// Without a terminal (batch jobs), progress is a log line every DICKE_PROGRESS_INTERVAL_S
/// seconds with done/total and the rate, also while a phase does not advance.
#[test]
fn progress_is_logged_without_a_terminal() {
    let run = run_scenario_env(
        Toml::File("scenarios/exchange_steady_state.toml"),
        &["--set", "N=100"],
        &[("DICKE_PROGRESS_INTERVAL_S", "0.02")],
    );
    run.assert_ok();
    assert!(run.stderr.contains("progress: scan "), "{}", run.stderr);
    assert!(run.stderr.contains("/34 after"), "{}", run.stderr);
}
