//! Scans of evolutions (`kind = "scan"`, `mode = "evolve"`, `run::execute_on`): the CPU path
//! against `master::evolve` called directly, and the GPU batch (`master_batch`) against the
//! CPU path, through the whole run (scenario, initial states, band or full output, files).
//!
//! GPU tests use `backend::gpu::test_context`: without an adapter they print
//! `SKIPPED: no GPU adapter ...` to stderr and return; with `DICKE_REQUIRE_GPU=1` a missing
//! adapter fails them. They run on lavapipe in a few seconds (N = 12, 3 points, t <= 0.1).
//!
//! # Tolerances (stated, not tuned)
//!
//! * **CPU scan vs `master::evolve`**: the same function on the same inputs, and the CSV
//!   holds shortest round-trip decimals, so the numbers agree to rounding: 1e-12 relative to
//!   each observable's scale (j for first moments, j(j+1) for second moments), which leaves
//!   room for a different summation order inside the integrator (rayon) and nothing more.
//! * **GPU vs CPU**: `master_batch`'s bound per matrix element (module doc of
//!   `tests/gpu_master_batch.rs`): `delta = 8 (rtol |rho0|_max + atol) + 2 S u |rho0|_max`,
//!   with S the point's step attempts (from result.json), u the unit roundoff (2^-24 in f32,
//!   2^-53 in f64) and |rho0|_max = 1 (a Dicke state, or a CRSS whose largest element is at
//!   most 1). An observable tr(A rho) then moves by at most `delta sum_rc |A_rc|` (the sum
//!   over the elements the observable reads): `sum |m|` for Jz, `sum jp_k` for Jx and Jy,
//!   `j(j+1) n` for J2 (the trace), `sum m^2` for JzJz; `var_Jz = JzJz - Jz^2` adds
//!   `2 |Jz| sum |m| delta`. xi2 = N Var_perp / |<J>|^2 moves by at most
//!   `xi2 (dVar / Var + 2 d|J| / |J|)` with `dVar <= 5 n j^2 delta + 2 |J| 3 n j delta`
//!   (entries of (n.J)^2 and n.J are at most j^2 and j, on at most 5n and 3n band elements):
//!   weak in f32, but it still catches a wrong frame or band. Purity sum |rho_rc|^2 moves by
//!   at most `3 n^2 delta` (`2 |rho_rc| delta + delta^2` per element, |rho_rc| <= 1).
//!   f32 runs at rtol 1e-6,
//!   atol 1e-9 (the kernel's floor), f64 at rtol 1e-10, atol 1e-12.

mod common;
use common::read_csv;
use dicke::backend::BackendChoice;
#[cfg(feature = "gpu")]
use dicke::backend::gpu::test_context;
#[cfg(feature = "gpu")]
use dicke::basis::Irrep;
use dicke::observe;
use dicke::run::{self, NoProgress, RunOptions, RunSummary, SCAN_EVOLUTION_CSV};
use dicke::scenario::parse;
use dicke::solver::master;
use dicke::solver::ode::OdeOptions;
use dicke::state::{DensityMatrix, pure};
use std::path::Path;
#[cfg(feature = "gpu")]
use std::sync::Arc;

const SCAN: &str = r#"
title = "test: scan of evolutions"
[variables]
u = 1.0
[model]
N = 12
Gamma = 1.0
chi = "1.875 * Gamma / 2"
Omega = "u * N * Gamma / 2"
[initial]
state = "dicke"
m = "-N/2"
[task]
kind = "scan"
mode = "evolve"
variable = "u"
values = [0.5, 1.48, 2.09]
t_end = 0.1
n_times = 6
[observables]
columns = ["var_Jz", "JzJz"]
[output]
plot = false
"#;

/// Columns compared (after the x columns).
const COLS: [&str; 7] = ["Jx", "Jy", "Jz", "xi2", "J2", "var_Jz", "JzJz"];

fn run_scan(
    text: &str,
    overrides: &[&str],
    backend: BackendChoice,
    gpu: dicke::backend::SharedGpu,
    dir: &Path,
) -> Result<RunSummary, dicke::error::Error> {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    let sc = parse(text, "scan_evolve.toml", &o).expect("valid scenario");
    let opts = RunOptions {
        out_dir: dir.to_path_buf(),
        backend,
        overrides: o,
        resume: false,
        shard: None,
    };
    run::execute_on(&sc, &opts, gpu, &mut NoProgress)
}

/// The COLS of a density matrix, computed here from `observe` (not through `run`).
fn direct_row(rho: &DensityMatrix) -> Vec<f64> {
    let m = observe::moments(rho);
    let cov = m.covariance();
    vec![
        m.mean[0],
        m.mean[1],
        m.mean[2],
        m.xi2(),
        observe::j2(rho),
        cov[2][2],
        m.second[2][2],
    ]
}

fn col(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
}

#[test]
fn cpu_scan_rows_are_master_evolve_of_each_point() {
    let dir = tempfile::tempdir().unwrap();
    let summary = run_scan(SCAN, &[], BackendChoice::Cpu, None, dir.path()).unwrap();
    assert_eq!(summary.backend.name, "cpu");
    assert!(summary.files.contains(&SCAN_EVOLUTION_CSV.to_string()));
    let (oh, orows) = read_csv(&dir.path().join("observables.csv"));
    let (eh, erows) = read_csv(&dir.path().join(SCAN_EVOLUTION_CSV));
    assert_eq!(&oh[..2], ["u", "Omega"]);
    assert_eq!(&eh[..3], ["u", "t", "Jx"]);
    assert_eq!(&oh[2..], &eh[2..], "the same observable columns in both files");
    let values = [0.5, 1.48, 2.09];
    let times: Vec<f64> = (0..6).map(|i| 0.1 * i as f64 / 5.0).collect();
    assert_eq!(orows.len(), values.len());
    assert_eq!(erows.len(), values.len() * times.len(), "every point x save time");

    let sc = parse(SCAN, "t", &[]).unwrap();
    let j = 6.0;
    let scale = [j, j, j, 1.0, j * (j + 1.0), j * (j + 1.0), j * (j + 1.0)];
    let ode = OdeOptions {
        rtol: 1e-8,
        atol: 1e-10,
        max_steps: 10_000_000,
        h0: None,
    };
    let stats = &summary.result["stats"]["points"];
    for (i, u) in values.iter().enumerate() {
        let p = sc.point(&[("u", *u)]).unwrap();
        let rho0 = DensityMatrix::from_pure(&pure::dicke(12, -6.0).unwrap());
        let mut direct = Vec::new();
        let st = master::evolve(&p.model, &rho0, &times, &ode, &mut |_, t, rho| {
            direct.push((t, direct_row(rho)));
        })
        .unwrap();
        assert_eq!(stats[i]["u"], *u);
        assert_eq!(stats[i]["steps"], st.steps, "point {i}: the same integration");
        for (k, (t, want)) in direct.iter().enumerate() {
            let row = &erows[i * times.len() + k];
            assert_eq!((row[0], row[1]), (*u, *t), "long format: point-major, then time");
            for (c, name) in COLS.iter().enumerate() {
                let got = row[col(&eh, name)];
                assert!(
                    (got - want[c]).abs() <= 1e-12 * scale[c],
                    "u = {u}, t = {t}, {name}: scan {got} vs evolve {}",
                    want[c]
                );
            }
        }
        // observables.csv: the final time, with the parameter the scan moves.
        let fin = &orows[i];
        assert_eq!(fin[0], *u);
        assert!((fin[1] - u * 12.0 / 2.0).abs() < 1e-12, "Omega = u N Gamma / 2");
        let last = &erows[i * times.len() + times.len() - 1];
        for name in COLS {
            assert_eq!(fin[col(&oh, name)], last[col(&eh, name)], "{name}");
        }
    }
    // Scalars: the best squeezing over the final rows, and where.
    let xi = col(&oh, "xi2");
    let best = orows.iter().map(|r| r[xi]).fold(f64::INFINITY, f64::min);
    assert_eq!(summary.result["results"]["min_xi2"], best);
    assert_eq!(summary.result["results"]["points"], 3);
    assert_eq!(summary.result["results"]["mode"], "evolve");
}

#[test]
fn cpu_scan_failure_names_the_point() {
    let dir = tempfile::tempdir().unwrap();
    let e = run_scan(SCAN, &["task.max_steps=3"], BackendChoice::Cpu, None, dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("scan point 0 (u = 0.5)") && e.contains("more than 3 steps"),
        "{e}"
    );
}

/// Column sums of |A_rc| of the observables the bound needs (module doc), for N atoms.
#[cfg(feature = "gpu")]
struct Weights {
    j: f64,
    n: f64,
    abs_m: f64,
    m2: f64,
    jp: f64,
}

#[cfg(feature = "gpu")]
impl Weights {
    fn new(atoms: usize) -> Self {
        let irrep = Irrep::symmetric(atoms);
        Weights {
            j: atoms as f64 / 2.0,
            n: (atoms + 1) as f64,
            abs_m: irrep.m.iter().map(|m| m.abs()).sum(),
            m2: irrep.m.iter().map(|m| m * m).sum(),
            jp: irrep.jp.iter().sum(),
        }
    }

    /// The same sums over every irrep of N atoms (j = N/2, N/2 - 1, ...), for block states:
    /// an observable sum_j tr(R_j A^(j)) moves by at most delta times its sum over all blocks;
    /// j = N/2 and n = sum_j (2j + 1) keep the other bounds upper bounds.
    fn blocks(atoms: usize) -> Self {
        let mut w = Weights {
            j: atoms as f64 / 2.0,
            n: 0.0,
            abs_m: 0.0,
            m2: 0.0,
            jp: 0.0,
        };
        for t in dicke::basis::two_js(atoms) {
            let irrep = Irrep::new(t);
            w.n += (t + 1) as f64;
            w.abs_m += irrep.m.iter().map(|m| m.abs()).sum::<f64>();
            w.m2 += irrep.m.iter().map(|m| m * m).sum::<f64>();
            w.jp += irrep.jp.iter().sum::<f64>();
        }
        w
    }

    /// The bound on each of COLS for a CPU row `r` (indexed by COLS) and element bound `d`.
    fn bounds(&self, r: &[f64], d: f64) -> Vec<f64> {
        let (j, n) = (self.j, self.n);
        let jz = r[2].abs();
        let len = (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt();
        let d1 = 3.0 * n * j * d;
        let d_var = 5.0 * n * j * j * d + 2.0 * len * d1;
        let var_perp = r[3] * len * len / (2.0 * j);
        vec![
            self.jp * d,
            self.jp * d,
            self.abs_m * d,
            r[3] * (d_var / var_perp + 2.0 * d1 / len),
            j * (j + 1.0) * n * d,
            self.m2 * d + 2.0 * jz * self.abs_m * d,
            self.m2 * d,
        ]
    }
}

/// Run `text` on the GPU in `precision` and on the CPU with the same tolerances; assert the
/// GPU within the module doc's bound everywhere (both files, every column of COLS and
/// purity when present) and print the largest |GPU - CPU| / bound and / scale. Returns the
/// GPU run and its output directory (None: skipped).
#[cfg(feature = "gpu")]
fn gpu_vs_cpu(
    test: &str,
    text: &str,
    precision: &str,
    rtol: f64,
    atol: f64,
) -> Option<(RunSummary, tempfile::TempDir)> {
    gpu_vs_cpu_with(test, text, precision, rtol, atol, Weights::new(12))
}

/// [`gpu_vs_cpu`] with the observables' weights `w` (the bounds of the module doc).
#[cfg(feature = "gpu")]
fn gpu_vs_cpu_with(
    test: &str,
    text: &str,
    precision: &str,
    rtol: f64,
    atol: f64,
    w: Weights,
) -> Option<(RunSummary, tempfile::TempDir)> {
    let ctx = test_context(test)?;
    let tol = [format!("task.rtol={rtol}"), format!("task.atol={atol}")];
    let mut o: Vec<&str> = tol.iter().map(String::as_str).collect();
    let (cpu_dir, gpu_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run_scan(text, &o, BackendChoice::Cpu, None, cpu_dir.path()).unwrap();
    let prec = format!("task.precision={precision}");
    o.push(&prec);
    let g = run_scan(text, &o, BackendChoice::Gpu, Some(ctx), gpu_dir.path()).unwrap();
    assert_eq!(g.backend.name, "gpu");
    assert_eq!(g.backend.precision, precision);
    let u = match precision {
        "f32" => f64::from(f32::EPSILON) / 2.0,
        _ => f64::EPSILON / 2.0,
    };
    let j = w.j;
    let scale = [j, j, j, 1.0, j * (j + 1.0), j * (j + 1.0), j * (j + 1.0)];
    let (mut worst_bound, mut worst_scale) = (0.0f64, 0.0f64);
    let points = &g.result["stats"]["points"];
    for file in ["observables.csv", SCAN_EVOLUTION_CSV] {
        let (h, c_rows) = read_csv(&cpu_dir.path().join(file));
        let (gh, g_rows) = read_csv(&gpu_dir.path().join(file));
        assert_eq!(h, gh);
        assert_eq!(c_rows.len(), g_rows.len());
        let per_point = c_rows.len() / 3;
        for (i, (c, gr)) in c_rows.iter().zip(&g_rows).enumerate() {
            assert_eq!(c[0], gr[0], "same point order");
            let st = &points[i / per_point];
            let s = (st["steps"].as_u64().unwrap() + st["rejected"].as_u64().unwrap()) as f64;
            let delta = 8.0 * (rtol + atol) + 2.0 * s * u;
            let cv: Vec<f64> = COLS.iter().map(|n| c[col(&h, n)]).collect();
            let bounds = w.bounds(&cv, delta);
            let mut checks: Vec<(&str, f64, f64, f64)> = COLS
                .iter()
                .enumerate()
                .map(|(k, name)| (*name, cv[k], bounds[k], scale[k]))
                .collect();
            if h.iter().any(|c| c == "purity") {
                checks.push(("purity", c[col(&h, "purity")], 3.0 * w.n * w.n * delta, 1.0));
            }
            for (name, want, bound, scale) in checks {
                let got = gr[col(&h, name)];
                let diff = (got - want).abs();
                assert!(
                    diff <= bound,
                    "{file} row {i}, {name}: GPU {got} vs CPU {want} (|diff| {diff:e} > bound {bound:e})"
                );
                worst_bound = worst_bound.max(diff / bound);
                worst_scale = worst_scale.max(diff / scale);
            }
        }
    }
    eprintln!(
        "{test}: max |GPU - CPU| / scale = {worst_scale:.2e}, max |GPU - CPU| / bound = {worst_bound:.2e}"
    );
    Some((g, gpu_dir))
}

#[test]
#[cfg(feature = "gpu")]
fn gpu_f32_scan_matches_cpu_scan() {
    if let Some((g, _dir)) = gpu_vs_cpu("gpu_f32_scan_matches_cpu_scan", SCAN, "f32", 1e-6, 1e-9) {
        // No column needs more than the band: the kernel returned only the band.
        assert_eq!(g.result["stats"]["output"], "band");
    }
}

#[test]
#[cfg(feature = "gpu")]
fn gpu_f64_scan_matches_cpu_scan() {
    if let Some((g, _dir)) = gpu_vs_cpu("gpu_f64_scan_matches_cpu_scan", SCAN, "f64", 1e-10, 1e-12) {
        assert_eq!(g.result["stats"]["output"], "band");
        assert!(g.result["stats"]["adapter"].is_string());
    }
}

/// Per-point initial states (the CRSS depends on Omega) and a column that needs the whole
/// matrix (purity): the full-output path with one rho0 per element.
#[test]
#[cfg(feature = "gpu")]
fn gpu_f64_scan_full_output_and_per_point_initial_states() {
    let text = SCAN
        .replace("state = \"dicke\"\nm = \"-N/2\"", "state = \"crss\"")
        .replace(
            "columns = [\"var_Jz\", \"JzJz\"]",
            "columns = [\"var_Jz\", \"JzJz\", \"purity\"]",
        )
        .replace("values = [0.5, 1.48, 2.09]", "values = [0.05, 0.1, 0.15]");
    let Some((g, _dir)) = gpu_vs_cpu(
        "gpu_f64_scan_full_output_and_per_point_initial_states",
        &text,
        "f64",
        1e-10,
        1e-12,
    ) else {
        return;
    };
    assert_eq!(g.result["stats"]["output"], "full");
    // The CRSS differs from point to point: so do the t = 0 rows.
    let (h, rows) = read_csv(&g.out_dir.join(SCAN_EVOLUTION_CSV));
    assert_ne!(rows[0][col(&h, "Jz")], rows[6][col(&h, "Jz")]);
}

#[test]
#[cfg(feature = "gpu")]
fn gpu_scan_failure_names_the_point_and_counts_the_failures() {
    let Some(ctx) = test_context("gpu_scan_failure_names_the_point_and_counts_the_failures") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let e = run_scan(
        SCAN,
        &["task.max_steps=3", "task.precision=f32", "task.rtol=1e-6"],
        BackendChoice::Gpu,
        Some(ctx),
        dir.path(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("scan point 0 (u = 0.5)")
            && e.contains("more than 3 steps")
            && e.contains("3 of 3 points failed"),
        "{e}"
    );
}

/// `auto` never runs on a software adapter, even one handed in: lavapipe is slower than the
/// CPU twin (DESIGN.md).
#[test]
#[cfg(feature = "gpu")]
fn auto_does_not_take_a_software_adapter() {
    let Some(ctx) = test_context("auto_does_not_take_a_software_adapter") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = run_scan(SCAN, &[], BackendChoice::Auto, Some(Arc::clone(&ctx)), dir.path()).unwrap();
    if ctx.info().software {
        assert_eq!(s.backend.name, "cpu");
        assert!(
            s.backend.note.contains("software rasteriser"),
            "{}",
            s.backend.note
        );
    } else {
        assert_eq!(s.backend.name, "gpu");
    }
}

/// Single-atom rates (every one of them, proportional to the scanned g) on the GPU: the points
/// with g > 0 run as one batch of blocks R_j (`run_blocks`, CPU twin `blocks::evolve`), the
/// collective point g = 0 as the collective batch; both files match the CPU scan within the
/// bounds of the module doc, with the weights summed over every irrep (`Weights::blocks`).
#[cfg(feature = "gpu")]
const SCAN_SINGLE_ATOM: &str = r#"
title = "test: scan of evolutions with single-atom rates"
[variables]
g = 0.5
[model]
N = 12
Gamma = 1.0
chi = 1.0
Omega = "0.9 * N / 2"
w = 0.1
gamma_down = "g"
gamma_up = "0.2 * g"
gamma_phi = "0.5 * g"
[initial]
state = "coherent"
theta = "pi / 2"
phi = "pi"
[task]
kind = "scan"
mode = "evolve"
variable = "g"
values = [0.0, 0.5, 2.0]
t_end = 0.1
n_times = 6
[observables]
columns = ["var_Jz", "JzJz"]
[output]
plot = false
"#;

#[test]
#[cfg(feature = "gpu")]
fn gpu_f64_scan_with_single_atom_rates_matches_cpu_scan() {
    let Some((g, _dir)) = gpu_vs_cpu_with(
        "gpu_f64_scan_with_single_atom_rates_matches_cpu_scan",
        SCAN_SINGLE_ATOM,
        "f64",
        1e-10,
        1e-12,
        Weights::blocks(12),
    ) else {
        return;
    };
    assert_eq!(g.result["stats"]["output"], "band");
    let integrator = g.result["stats"]["integrator"].as_str().unwrap();
    assert!(integrator.contains("blocks R_j"), "{integrator}");
    // The collective point keeps <J^2> = j(j+1) = 42; the single-atom points leave j = N/2.
    let (h, rows) = read_csv(&g.out_dir.join("observables.csv"));
    let j2 = col(&h, "J2");
    assert!((rows[0][j2] - 42.0).abs() < 1e-9, "J2 = {}", rows[0][j2]);
    assert!(rows[2][j2] < 42.0 - 1e-3, "J2 = {}", rows[2][j2]);
}

#[test]
#[cfg(feature = "gpu")]
fn gpu_f32_scan_with_single_atom_rates_matches_cpu_scan() {
    gpu_vs_cpu_with(
        "gpu_f32_scan_with_single_atom_rates_matches_cpu_scan",
        SCAN_SINGLE_ATOM,
        "f32",
        1e-6,
        1e-9,
        Weights::blocks(12),
    );
}

/// Single-atom rates with a column that needs whole blocks (purity of the 2^N state): the
/// full-output path of the block batch (`Saves::Blocks`).
#[test]
#[cfg(feature = "gpu")]
fn gpu_f64_scan_with_single_atom_rates_full_output() {
    let text = SCAN_SINGLE_ATOM.replace(
        "columns = [\"var_Jz\", \"JzJz\"]",
        "columns = [\"var_Jz\", \"JzJz\", \"purity\"]",
    );
    let Some((g, _dir)) = gpu_vs_cpu_with(
        "gpu_f64_scan_with_single_atom_rates_full_output",
        &text,
        "f64",
        1e-10,
        1e-12,
        Weights::blocks(12),
    ) else {
        return;
    };
    assert_eq!(g.result["stats"]["output"], "full");
}

/// A scan of evolutions with scheduled parameters (a drive ramp whose knots depend on the
/// scanned u, pump steps; knots at 0.04 on a save within rounding and at 0.06 between saves):
/// the collective batch under protocols (`run_protocols`, CPU twin `master::evolve_protocol`),
/// both files within the module doc's bounds and with the CPU path's columns (the scheduled
/// parameters' columns included: `gpu_vs_cpu` compares the headers).
#[cfg(feature = "gpu")]
const SCAN_SCHEDULED: &str = r#"
title = "test: scan of evolutions under a protocol"
[variables]
u = 1.0
[model]
N = 12
Gamma = 1.0
chi = "1.875 * Gamma / 2"
Omega = { ramp = [[0.0, "u * N * Gamma / 2"], [0.04, "1.5 * u * N * Gamma / 2"], [0.1, "0.5 * u * N * Gamma / 2"]] }
w = { steps = [[0.0, 0.0], [0.06, 0.5]] }
[initial]
state = "dicke"
m = "-N/2"
[task]
kind = "scan"
mode = "evolve"
variable = "u"
values = [0.5, 1.48, 2.09]
t_end = 0.1
n_times = 6
[observables]
columns = ["var_Jz", "JzJz"]
[output]
plot = false
"#;

#[test]
#[cfg(feature = "gpu")]
fn gpu_f64_scheduled_scan_matches_cpu_scan() {
    let Some((g, _dir)) = gpu_vs_cpu(
        "gpu_f64_scheduled_scan_matches_cpu_scan",
        SCAN_SCHEDULED,
        "f64",
        1e-10,
        1e-12,
    ) else {
        return;
    };
    assert_eq!(g.result["stats"]["output"], "band");
    // The ramp acts: the same scan without it (Omega held at its t = 0 value) ends elsewhere.
    let (h, rows) = read_csv(&g.out_dir.join("observables.csv"));
    assert!(h.iter().any(|c| c == "Omega"), "{h:?}");
    let ctx = test_context("gpu_f64_scheduled_scan_matches_cpu_scan").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let constant = SCAN_SCHEDULED
        .replace("Omega = { ramp", "Omega = \"u * N * Gamma / 2\"\n# { ramp")
        .replace("w = { steps", "# w = { steps");
    run_scan(
        &constant,
        &["task.precision=f64"],
        BackendChoice::Gpu,
        Some(ctx),
        dir.path(),
    )
    .unwrap();
    let (_, c_rows) = read_csv(&dir.path().join("observables.csv"));
    let jz = col(&h, "Jz");
    assert!(
        (rows[2][jz] - c_rows[2][jz]).abs() > 1e-3,
        "{} vs {}",
        rows[2][jz],
        c_rows[2][jz]
    );
}

#[test]
#[cfg(feature = "gpu")]
fn gpu_f32_scheduled_scan_matches_cpu_scan() {
    gpu_vs_cpu(
        "gpu_f32_scheduled_scan_matches_cpu_scan",
        SCAN_SCHEDULED,
        "f32",
        1e-6,
        1e-9,
    );
}

/// A scheduled phi stays on the CPU: `gpu` is refused naming it; `auto` runs the CPU with the
/// reason. A schedule `auto` may run on the GPU gets the GPU's own choice (on a software
/// adapter: the CPU, for that reason, not for the schedule).
#[test]
#[cfg(feature = "gpu")]
fn scheduled_phi_scan_stays_on_the_cpu_and_other_schedules_do_not() {
    let Some(ctx) = test_context("scheduled_phi_scan_stays_on_the_cpu_and_other_schedules_do_not") else {
        return;
    };
    let phi = SCAN_SCHEDULED.replace(
        "w = { steps",
        "phi = { steps = [[0.0, 0.0], [0.05, 1.0]] }\nw = { steps",
    );
    let dir = tempfile::tempdir().unwrap();
    let e = run_scan(&phi, &[], BackendChoice::Gpu, Some(Arc::clone(&ctx)), dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.phi"), "{e}");
    let s = run_scan(&phi, &[], BackendChoice::Auto, Some(Arc::clone(&ctx)), dir.path()).unwrap();
    assert_eq!(s.backend.name, "cpu");
    assert!(s.backend.note.contains("model.phi"), "{}", s.backend.note);
    let dir2 = tempfile::tempdir().unwrap();
    let s = run_scan(
        SCAN_SCHEDULED,
        &[],
        BackendChoice::Auto,
        Some(Arc::clone(&ctx)),
        dir2.path(),
    )
    .unwrap();
    if ctx.info().software {
        assert_eq!(s.backend.name, "cpu");
        assert!(
            s.backend.note.contains("software rasteriser"),
            "{}",
            s.backend.note
        );
    } else {
        assert_eq!(s.backend.name, "gpu");
    }
}
