//! `task.method`: task and method orthogonal (exact | meanfield | cumulant | trajectories for
//! evolve, steady_state and scan), each writing the exact solver's columns.
//!
//! The checks are cases where the approximate method is exact, so its columns must equal the
//! exact solver's to the integrators' tolerance (rtol 1e-10 / atol 1e-12 on both sides, so
//! 1e-7 of each column's scale bounds the difference of two independent integrations with
//! room to spare):
//! - single-atom processes only (a drive is a sum of single-atom terms): the state stays a
//!   product state, which is mean field's ansatz, so mean field (individual factorisation)
//!   is exact in every column, second moments and J2 included;
//! - N = 2: the second-order cumulant equations have no third atom to close over, so they are
//!   exact (solver::cumulant module doc).

mod common;

use common::{Toml, run_scenario};

/// Drive, single-atom decay, pumping and dephasing, no collective terms: a product state.
const PRODUCT: &str = r#"
[model]
N = 6
Omega = 1.3
omega0 = 0.4
gamma_down = 0.7
gamma_up = 0.2
gamma_phi = 0.3

[initial]
state = "coherent"
theta = 2.0
phi = 0.5

[task]
kind = "evolve"
t_end = 4.0
n_times = 41
rtol = 1e-10
atol = 1e-12

[observables]
columns = ["JxJx", "JyJz", "var_Jz", "N_eff", "xi2_dB"]
"#;

/// Every entry of two tables agrees to `rel` of its column's largest magnitude.
fn assert_tables_close(a: &[Vec<f64>], b: &[Vec<f64>], header: &[String], rel: f64) {
    assert_eq!(a.len(), b.len());
    for k in 0..header.len() {
        let scale = a.iter().map(|r| r[k].abs()).fold(1e-300, f64::max);
        for (ra, rb) in a.iter().zip(b) {
            let d = (ra[k] - rb[k]).abs();
            assert!(
                d <= rel * scale,
                "column {}: {} vs {} (scale {scale})",
                header[k],
                ra[k],
                rb[k]
            );
        }
    }
}

/// Mean field equals the exact block solver on a product-state model, over time, in every
/// column.
#[test]
fn meanfield_evolution_is_exact_for_single_atom_processes() {
    let exact = run_scenario(Toml::Text(PRODUCT), &[]);
    exact.assert_ok();
    let mf = run_scenario(Toml::Text(PRODUCT), &["--set", "task.method=meanfield"]);
    mf.assert_ok();
    let (h1, r1) = exact.csv("observables.csv");
    let (h2, r2) = mf.csv("observables.csv");
    assert_eq!(h1, h2, "same columns");
    assert_tables_close(&r1, &r2, &h1, 1e-7);
    let res = mf.result();
    assert_eq!(res["results"]["method"], "meanfield");
    assert!(res["solver"].as_str().unwrap().starts_with("meanfield"));
    // The state did move (a vacuous comparison would pass on constants).
    let jz: Vec<f64> = r1.iter().map(|r| r[3]).collect();
    assert!((jz[0] - jz[jz.len() - 1]).abs() > 0.5, "{jz:?}");
}

/// Mean field's steady state (its one stable fixed point) equals the exact steady state of
/// the product-state model; the `branch` column reads 0.
#[test]
fn meanfield_steady_state_is_exact_for_single_atom_processes() {
    let text = PRODUCT.replace(
        "kind = \"evolve\"\nt_end = 4.0\nn_times = 41\nrtol = 1e-10\natol = 1e-12",
        "kind = \"steady_state\"",
    );
    let exact = run_scenario(Toml::Text(&text), &[]);
    exact.assert_ok();
    let mf = run_scenario(Toml::Text(&text), &["--set", "task.method=meanfield"]);
    mf.assert_ok();
    let (h1, r1) = exact.csv("observables.csv");
    let (h2, r2) = mf.csv("observables.csv");
    assert_eq!(h2.last().map(String::as_str), Some("branch"));
    assert_eq!(&h2[..h1.len()], &h1[..]);
    assert_eq!(r2.len(), 1);
    assert_eq!(r2[0][h1.len()], 0.0);
    // The sparse LU is exact to ~1e-12; the fixed point comes from a polynomial root.
    let r2: Vec<Vec<f64>> = r2.iter().map(|r| r[..h1.len()].to_vec()).collect();
    assert_tables_close(&r1, &r2, &h1, 1e-9);
}

/// At N = 2 the cumulant equations are exact: cumulant = exact over time (every collective
/// and single-atom term on) and in the steady state.
#[test]
fn cumulants_are_exact_at_two_atoms() {
    let text = PRODUCT.replace(
        "N = 6",
        "N = 2\nGamma = 0.9\nchi = 0.35\nchi_z = -0.2\nw = 0.15\nGamma_phi = 0.25",
    );
    let exact = run_scenario(Toml::Text(&text), &[]);
    exact.assert_ok();
    let cu = run_scenario(Toml::Text(&text), &["--set", "task.method=cumulant"]);
    cu.assert_ok();
    let (h, r1) = exact.csv("observables.csv");
    let (_, r2) = cu.csv("observables.csv");
    assert_tables_close(&r1, &r2, &h, 1e-7);

    let ss = text.replace(
        "kind = \"evolve\"\nt_end = 4.0\nn_times = 41\nrtol = 1e-10\natol = 1e-12",
        "kind = \"steady_state\"",
    );
    let exact = run_scenario(Toml::Text(&ss), &[]);
    exact.assert_ok();
    let cu = run_scenario(Toml::Text(&ss), &["--set", "task.method=cumulant"]);
    cu.assert_ok();
    let (h, r1) = exact.csv("observables.csv");
    let (_, r2) = cu.csv("observables.csv");
    // Pseudo-transient continuation converges to a relative residual < 1e-10.
    assert_tables_close(&r1, &r2, &h, 1e-8);
}

/// Seed 000's bistable window (x = 0.75): a mean-field steady-state scan writes both stable
/// branches as rows, branch 0 and 1, at the fixed_points task's sz (-0.635 and -0.032).
#[test]
fn meanfield_steady_state_scan_has_both_branches_in_the_bistable_window() {
    let text = std::fs::read_to_string("scenarios/bistability_meanfield.toml").unwrap();
    let start = text.find("[task]").unwrap();
    let text = format!(
        "{}[task]\nkind = \"scan\"\nvariable = \"x\"\nvalues = [0.5, 0.75, 0.9]\nmethod = \"meanfield\"\n",
        &text[..start]
    );
    let out = run_scenario(Toml::Text(&text), &[]);
    out.assert_ok();
    let (h, rows) = out.csv("observables.csv");
    let (ix, iz, ib) = (0, h.iter().position(|c| c == "Jz").unwrap(), h.len() - 1);
    assert_eq!(h[ib], "branch");
    let at = |x: f64| rows.iter().filter(|r| r[ix] == x).cloned().collect::<Vec<_>>();
    assert_eq!(at(0.5).len(), 1);
    assert_eq!(at(0.9).len(), 1);
    let b = at(0.75);
    assert_eq!(b.len(), 2, "{b:?}");
    let sz: Vec<f64> = b.iter().map(|r| r[iz] / 27.0).collect(); // <Jz> = N sz / 2, N = 54
    assert!(
        (sz[0] + 0.635).abs() < 5e-4 && (sz[1] + 0.032).abs() < 5e-4,
        "{sz:?}"
    );
    assert_eq!((b[0][ib], b[1][ib]), (0.0, 1.0));
}

/// `method = "trajectories"` for kind = "evolve" is the trajectory ensemble itself:
/// observables.csv bit-identical to kind = "trajectories" with the same seed.
#[test]
fn evolve_with_trajectories_is_the_trajectory_task() {
    let base = r#"
[model]
N = 10
Omega = 2.0
Gamma = 1.0

[initial]
state = "dicke"
m = -5

[task]
kind = KIND
t_end = 1.0
n_times = 11
ntraj = 64
seed = 7
"#;
    let a = run_scenario(
        Toml::Text(&base.replace("KIND", "\"trajectories\"")),
        &["--backend", "cpu"],
    );
    a.assert_ok();
    let b = run_scenario(
        Toml::Text(&base.replace("KIND", "\"evolve\"\nmethod = \"trajectories\"")),
        &["--backend", "cpu"],
    );
    b.assert_ok();
    assert_eq!(
        std::fs::read_to_string(a.path("observables.csv")).unwrap(),
        std::fs::read_to_string(b.path("observables.csv")).unwrap()
    );
}

/// Refusals name the field, the value and what was expected.
#[test]
fn method_refusals_name_the_field() {
    let cases: [(&[&str], &str); 6] = [
        (&["--set", "task.method=fast"], "task.method"),
        (
            &["--set", "task.method=meanfield", "--set", "observables.pm=true"],
            "observables.pm",
        ),
        (
            &[
                "--set",
                "task.method=cumulant",
                "--set",
                "observables.columns=[\"purity\"]",
            ],
            "purity",
        ),
        (&["--set", "task.factorisation=collective"], "task.factorisation"),
        (
            &["--set", "task.method=cumulant", "--backend", "gpu"],
            "no GPU kernel",
        ),
        (
            &[
                "--set",
                "task.method=meanfield",
                "--set",
                "task.factorisation=both",
            ],
            "task.factorisation",
        ),
    ];
    for (args, needle) in cases {
        let out = run_scenario(Toml::Text(PRODUCT), args);
        assert!(!out.ok, "{args:?} should fail");
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
    }
    // Trajectories are a method of evolve only; a cumulant steady state needs [initial], mean
    // field's does not.
    let steady = PRODUCT.replace(
        "kind = \"evolve\"\nt_end = 4.0\nn_times = 41\nrtol = 1e-10\natol = 1e-12",
        "kind = \"steady_state\"",
    );
    let out = run_scenario(Toml::Text(&steady), &["--set", "task.method=trajectories"]);
    assert!(
        !out.ok && out.stderr.contains("task.method") && out.stderr.contains("steady_state"),
        "{}",
        out.stderr
    );
    let start = steady.find("[initial]").unwrap();
    let end = steady.find("[task]").unwrap();
    let no_initial = format!("{}{}", &steady[..start], &steady[end..]);
    let out = run_scenario(Toml::Text(&no_initial), &["--set", "task.method=cumulant"]);
    assert!(!out.ok && out.stderr.contains("`initial`"), "{}", out.stderr);
    let out = run_scenario(Toml::Text(&no_initial), &["--set", "task.method=meanfield"]);
    out.assert_ok();
}
