//! The Liouvillian spectrum (`solver::spectrum`) against the brute-force 2^N Lindbladian
//! (PHYSICS.md sec. 9 rung 2) and at sizes beyond the dense cross-check (residuals).

#[path = "common/brute.rs"]
mod brute;
mod common;

use brute::{Rng, random_model};
use dicke::c64;
use dicke::model::Model;
use dicke::solver::spectrum::{self, Space, SpectrumOptions};

/// Every eigenvalue of the blocks' L (dense, and the sparse ones nearest 0) is an eigenvalue of
/// the 2^N Lindbladian, with every term of the model on at random rates. The full spectrum's
/// eigenvalues are degenerate (many copies of each irrep), which costs the dense solver
/// accuracy there: the tolerance is 1e-8 (measured below 1e-11).
#[test]
fn blocks_spectrum_is_in_the_2n_lindbladian_spectrum() {
    let mut rng = Rng(0x5EED_0013);
    for n in [2, 3, 4, 5] {
        let model = random_model(n, &mut rng);
        let full = spectrum::dense_matrix_eigenvalues(brute::matrix(&model)).unwrap();
        let blocks = spectrum::dense_eigenvalues(&model, Space::Blocks, None).unwrap();
        let sparse = spectrum::eigenvalues(
            &model,
            Space::Blocks,
            &SpectrumOptions {
                k: 8,
                ..Default::default()
            },
        )
        .unwrap();
        let dist = |z: c64| full.iter().map(|w| (w - z).norm()).fold(f64::INFINITY, f64::min);
        let worst_dense = blocks.iter().map(|&z| dist(z)).fold(0.0, f64::max);
        let worst_sparse = sparse.pairs.iter().map(|p| dist(p.value)).fold(0.0, f64::max);
        eprintln!(
            "N = {n}: {} block eigenvalues of {} in the 2^N spectrum to {worst_dense:.1e} (dense), {worst_sparse:.1e} (sparse k = 8)",
            blocks.len(),
            full.len()
        );
        assert!(
            worst_dense < 1e-8 && worst_sparse < 1e-8,
            "N = {n}: {worst_dense:e} {worst_sparse:e}"
        );
        // The collective manifold's eigenvalues too, for the collective part of the model.
        let coll = Model {
            gamma_down: 0.0,
            gamma_up: 0.0,
            gamma_phi: 0.0,
            ..model
        };
        let full = spectrum::dense_matrix_eigenvalues(brute::matrix(&coll)).unwrap();
        let dist = |z: c64| full.iter().map(|w| (w - z).norm()).fold(f64::INFINITY, f64::min);
        let ev = spectrum::dense_eigenvalues(&coll, Space::Collective, None).unwrap();
        let worst = ev.iter().map(|&z| dist(z)).fold(0.0, f64::max);
        eprintln!("N = {n}: collective manifold in the 2^N spectrum to {worst:.1e}");
        assert!(worst < 1e-8, "N = {n}: {worst:e}");
    }
}

/// Beyond the dense cross-check: the k = 10 pairs nearest 0 converge with small residuals
/// (collective N = 100 driven near Omega_c, blocks N = 16 with every rate on).
#[test]
fn larger_sizes_converge_with_small_residuals() {
    let coll = Model {
        n: 100,
        drive: 0.9 * 50.0,
        chi: 0.5,
        gamma_coll: 1.0,
        pump_coll: 0.05,
        ..Model::default()
    };
    let blocks = Model {
        n: 16,
        drive: 0.8 * 8.0,
        gamma_coll: 1.0,
        gamma_down: 0.5,
        gamma_up: 0.1,
        gamma_phi: 0.2,
        ..Model::default()
    };
    for (model, space) in [(coll, Space::Collective), (blocks, Space::Blocks)] {
        let sp = spectrum::eigenvalues(&model, space, &SpectrumOptions::default()).unwrap();
        let worst = sp.pairs.iter().map(|p| p.residual).fold(0.0, f64::max);
        eprintln!(
            "{space:?} N = {}: dim {}, gap {:.6}, worst residual {worst:.1e}, {:.2} s ({:.2} s LU), {} restarts, {} solves",
            model.n,
            sp.stats.dim,
            sp.pairs[1].value.re,
            sp.stats.total_s,
            sp.stats.factor_s,
            sp.stats.restarts,
            sp.stats.solves
        );
        assert_eq!(sp.pairs.len(), 10);
        assert_eq!(sp.stats.converged, sp.stats.wanted);
        assert_eq!(sp.pairs[0].value, c64::new(0.0, 0.0));
        assert!(worst < 1e-10, "{worst:e}");
    }
}

/// `kind = "spectrum"` end to end on the shipped seed 004 scenario: spectrum.csv and the gap
/// (2 Gamma in the population sector, Gamma in q = 1).
#[test]
fn spectrum_task_writes_csv_and_gap() {
    for (set, gap) in [(None, 2.0), (Some("task.sector=1"), 1.0)] {
        let mut args = vec!["--backend", "cpu"];
        if let Some(s) = set {
            args.extend(["--set", s]);
        }
        let o = common::run_scenario(common::Toml::File("scenarios/pumping_spectrum.toml"), &args);
        assert!(o.ok, "{}", o.stderr);
        let (header, rows) = common::read_csv(&o.out.join("spectrum.csv"));
        assert_eq!(header, ["k", "re", "im", "residual"]);
        assert_eq!(rows.len(), 10);
        assert!(rows.iter().all(|r| r[3] < 1e-10));
        let result: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(o.out.join("result.json")).unwrap()).unwrap();
        let g = result["results"]["gap"].as_f64().unwrap();
        assert!((g - gap).abs() < 1e-10, "{set:?}: gap {g}");
        o.assert_png("spectrum.png");
        if set.is_none() {
            assert_eq!(rows[0][1..3], [0.0, 0.0]);
            assert!((rows[1][1] + 2.0).abs() < 1e-10);
        }
    }
}

/// A sector with a drive is an error naming the symmetry; spectrum fields on another kind are
/// refused.
#[test]
fn spectrum_task_refusals() {
    let o = common::run_scenario(
        common::Toml::File("scenarios/pumping_spectrum.toml"),
        &["--backend", "cpu", "--set", "Omega=1"],
    );
    assert!(!o.ok && o.stderr.contains("U(1)"), "{}", o.stderr);
    let o = common::run_scenario(
        common::Toml::Text("[model]\nN = 4\nGamma = 1\n[task]\nkind = \"steady_state\"\nk = 3\n"),
        &["--backend", "cpu"],
    );
    assert!(!o.ok && o.stderr.contains("task.k"), "{}", o.stderr);
    let o = common::run_scenario(
        common::Toml::Text(
            "[model]\nN = 4\nGamma = 1\n[task]\nkind = \"spectrum\"\n[observables]\npm = true\n",
        ),
        &["--backend", "cpu"],
    );
    assert!(
        !o.ok && o.stderr.contains("no [observables] for a spectrum"),
        "{}",
        o.stderr
    );
}

/// `kind = "scan"` with `mode = "spectrum"`: per point the eigenvalues of `kind = "spectrum"`
/// at that point (bit for bit: the same solver and sort), `gap` per point in observables.csv,
/// the two figures; four shards merge to the files of one run.
#[test]
fn spectrum_scan_equals_single_spectra_and_merges() {
    let scan = r#"
title = "spectrum scan"
[variables]
x = 0.5
[model]
N = 12
Gamma = 1.0
chi = 0.9
Omega = "x * 6"
[task]
kind = "scan"
mode = "spectrum"
variable = "x"
values = [0.2, 0.6, 1.0, 1.4]
k = 4
"#;
    let o = common::run_scenario(common::Toml::Text(scan), &["--backend", "cpu"]);
    assert!(o.ok, "{}", o.stderr);
    let (header, rows) = o.csv("spectrum.csv");
    assert_eq!(header, ["x", "k", "re", "im", "residual"]);
    assert_eq!(rows.len(), 16);
    let (oh, obs) = o.csv("observables.csv");
    assert_eq!(oh, ["x", "Omega", "gap", "gap_im"]);
    o.assert_png("spectrum.png");
    o.assert_png("spectrum_im.png");
    o.assert_png("gap.png");
    for (i, x) in [0.2, 0.6, 1.0, 1.4].iter().enumerate() {
        let single = scan
            .replace(
                "kind = \"scan\"\nmode = \"spectrum\"\nvariable = \"x\"\nvalues = [0.2, 0.6, 1.0, 1.4]\n",
                "kind = \"spectrum\"\n",
            )
            .replace("x = 0.5", &format!("x = {x}"));
        let s = common::run_scenario(common::Toml::Text(&single), &["--backend", "cpu"]);
        assert!(s.ok, "{}", s.stderr);
        let (_, srows) = s.csv("spectrum.csv");
        for (j, r) in srows.iter().enumerate() {
            assert_eq!(&rows[4 * i + j][1..], &r[..], "x = {x}, eigenvalue {j}");
        }
        // The gap: the smallest |re| after the steady state (row 0 here).
        assert_eq!(srows[0][1..3], [0.0, 0.0]);
        let gap = srows[1..]
            .iter()
            .map(|r| r[1].abs())
            .fold(f64::INFINITY, f64::min);
        assert_eq!(obs[i][2], gap, "x = {x}");
        // The imaginary gap: the smallest |im| among the complex ones (|im| above rounding).
        let gap_im = srows[1..]
            .iter()
            .filter(|r| r[2].abs() > 1e-9f64.max(r[3].sqrt()) * r[1].hypot(r[2]).max(1.0))
            .map(|r| r[2].abs())
            .fold(f64::INFINITY, f64::min);
        if gap_im.is_finite() {
            assert_eq!(obs[i][3], gap_im, "x = {x}");
        } else {
            assert!(obs[i][3].is_nan(), "x = {x}: {}", obs[i][3]);
        }
    }
    // Shards 0/4..3/4 merged: the same files.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("s.toml"), scan).unwrap();
    let bin = env!("CARGO_BIN_EXE_dicke");
    let go = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .args(args)
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    for k in 0..4 {
        go(&[
            "run",
            "s.toml",
            "--backend",
            "cpu",
            "--out",
            &format!("s{k}"),
            "--shard",
            &format!("{k}/4"),
        ]);
    }
    go(&["merge", "s0", "s1", "s2", "s3", "--out", "m"]);
    for f in ["spectrum.csv", "observables.csv"] {
        let a = std::fs::read(o.path(f)).unwrap();
        let b = std::fs::read(tmp.path().join("m").join(f)).unwrap();
        assert!(a == b, "{f} of the merged shards differs");
    }
}

/// A scan of spectra over N with the gap minimised over a second variable at each N and a
/// power-law fit: each row's gap is the single spectrum's at the reported minimiser, which is
/// a local minimum to the search tolerance (the gap 2 tol either side is not smaller); the
/// fit's exponent is the least-squares slope of ln gap on ln N (recomputed here); scaling.png
/// is drawn. Misplaced keys are refused by name.
#[test]
fn spectrum_scan_over_n_minimises_and_fits() {
    let scan = r#"
title = "gap scaling"
[variables]
x = 0.7
[model]
N = 6
Gamma = 1.0
gamma_down = 0.3
Omega = "x * N / 2"
[task]
kind = "scan"
mode = "spectrum"
variable = "N"
values = [6, 8, 10]
k = 3
fit = "power"
[task.minimize]
variable = "x"
bracket = [0.3, 1.5]
tol = 0.001
"#;
    let o = common::run_scenario(common::Toml::Text(scan), &["--backend", "cpu"]);
    assert!(o.ok, "{}", o.stderr);
    let (h, rows) = o.csv("observables.csv");
    assert_eq!(h, ["N", "Omega", "x", "gap", "gap_im"]);
    o.assert_png("scaling.png");
    let gap_at = |n: f64, x: f64| {
        let single = scan
            .replace(
                "kind = \"scan\"\nmode = \"spectrum\"\nvariable = \"N\"\nvalues = [6, 8, 10]\n",
                "kind = \"spectrum\"\n",
            )
            .replace("fit = \"power\"\n", "")
            .replace(
                "[task.minimize]\nvariable = \"x\"\nbracket = [0.3, 1.5]\ntol = 0.001\n",
                "",
            )
            .replace("N = 6", &format!("N = {n}"))
            .replace("x = 0.7", &format!("x = {x:e}"));
        let s = common::run_scenario(common::Toml::Text(&single), &["--backend", "cpu"]);
        assert!(s.ok, "{}", s.stderr);
        // From spectrum.csv (exact decimal round trip; serde_json's default float parser
        // may be one ulp off): the smallest |re| after the steady state (row 0).
        let (_, srows) = s.csv("spectrum.csv");
        srows[1..]
            .iter()
            .map(|r| r[1].abs())
            .fold(f64::INFINITY, f64::min)
    };
    let (mut lx, mut ly) = (Vec::new(), Vec::new());
    for r in &rows {
        let (n, x, g) = (r[0], r[2], r[3]);
        assert_eq!(gap_at(n, x), g, "N = {n}");
        for dx in [-0.002, 0.002] {
            assert!(gap_at(n, x + dx) >= g, "N = {n}: gap smaller at x = {}", x + dx);
        }
        lx.push(n.ln());
        ly.push(g.ln());
    }
    let (mx, my) = (lx.iter().sum::<f64>() / 3.0, ly.iter().sum::<f64>() / 3.0);
    let slope = lx.iter().zip(&ly).map(|(a, b)| (a - mx) * (b - my)).sum::<f64>()
        / lx.iter().map(|a| (a - mx).powi(2)).sum::<f64>();
    let fit = &o.result()["results"]["fit"];
    assert!((fit["exponent"].as_f64().unwrap() - slope).abs() < 1e-12, "{fit}");
    for (bad, field) in [
        (
            scan.replace("mode = \"spectrum\"", "mode = \"steady_state\"")
                .replace("k = 3\n", ""),
            "task.minimize",
        ),
        (
            scan.replace("variable = \"x\"", "variable = \"N\""),
            "task.minimize.variable",
        ),
        (scan.replace("fit = \"power\"", "fit = \"cubic\""), "task.fit"),
        (
            scan.replace("bracket = [0.3, 1.5]", "bracket = [1.5, 0.3]"),
            "task.minimize.bracket",
        ),
    ] {
        let e = common::run_scenario(common::Toml::Text(&bad), &["--backend", "cpu"]);
        assert!(!e.ok && e.stderr.contains(field), "{field}: {}", e.stderr);
    }
}

/// A complex target (`target` + i `target_im`): the eigenvalues written are the k of the dense
/// spectrum nearest it (seed 001 above Omega_c, N = 16, near an oscillation frequency).
#[test]
fn spectrum_task_complex_target() {
    let text = r#"
title = "complex target"
[model]
N = 16
Gamma = 1.0
chi = 0.9375
Omega = 17.0
[task]
kind = "spectrum"
k = 6
target = -3.0
target_im = 6.0
"#;
    let o = common::run_scenario(common::Toml::Text(text), &["--backend", "cpu"]);
    assert!(o.ok, "{}", o.stderr);
    let (_, rows) = o.csv("spectrum.csv");
    let model = Model {
        n: 16,
        gamma_coll: 1.0,
        chi: 0.9375,
        drive: 17.0,
        ..Model::default()
    };
    let sigma = c64::new(-3.0, 6.0);
    let mut dense = spectrum::dense_eigenvalues(&model, Space::Collective, None).unwrap();
    dense.sort_by(|a, b| (a - sigma).norm().total_cmp(&(b - sigma).norm()));
    assert_eq!(rows.len(), 6);
    for r in &rows {
        let z = c64::new(r[1], r[2]);
        let d = dense[..6]
            .iter()
            .map(|w| (w - z).norm())
            .fold(f64::INFINITY, f64::min);
        assert!(
            d < 1e-9,
            "{z} is not among the 6 dense eigenvalues nearest {sigma} ({d:e})"
        );
    }
    assert!(
        rows.iter().any(|r| r[2].abs() > 1.0),
        "no complex eigenvalue near the target"
    );
    assert_eq!(o.result()["results"]["target_im"].as_f64(), Some(6.0));
}
