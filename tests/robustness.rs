//! Bad input must end in an error naming the field, the value and what was expected: never a
//! panic (exit 101), a stack overflow or abort (134), a hang or an unbounded allocation.

mod common;
use common::{Outputs, Toml, run_scenario};

/// The run failed with exit status 1 (an error, not a crash) and stderr contains every part.
fn assert_error(run: &Outputs, parts: &[&str]) {
    assert!(!run.ok, "expected an error; stdout: {}", run.stdout);
    assert!(
        run.stderr.starts_with("error:") && !run.stderr.contains("panicked"),
        "expected an error message, not a crash: {}",
        run.stderr
    );
    for p in parts {
        assert!(run.stderr.contains(p), "stderr lacks `{p}`: {}", run.stderr);
    }
}

#[test]
fn steady_state_without_dissipation_is_refused() {
    let base = "[model]\nN = 10\nOmega = 1.0\n[task]\nkind = \"steady_state\"\n";
    let run = run_scenario(Toml::Text(base), &[]);
    assert_error(&run, &["no dissipation", "not unique"]);
    // The blocks solver: single-atom dephasing alone without a drive conserves populations.
    let run = run_scenario(Toml::Text(base), &["--set", "Omega=0", "--set", "gamma_phi=1"]);
    assert_error(&run, &["only dephasing", "not unique"]);
    let run = run_scenario(Toml::Text(base), &["--set", "Omega=0", "--set", "Gamma_phi=1"]);
    assert_error(&run, &["only dephasing", "not unique"]);
    // Pure dephasing with a drive has the unique maximally mixed state: accepted.
    let run = run_scenario(Toml::Text(base), &["--set", "N=4", "--set", "Gamma_phi=1"]);
    run.assert_ok();
    let run = run_scenario(Toml::Text(base), &["--set", "N=4", "--set", "gamma_phi=1"]);
    run.assert_ok();
}

#[test]
fn a_scan_reaching_zero_dissipation_names_the_point() {
    let toml = "[model]\nN = 10\nOmega = 1.0\nGamma = 1\n[task]\nkind = \"scan\"\nvariable = \"Gamma\"\nvalues = [1, 0]\n";
    let run = run_scenario(Toml::Text(toml), &[]);
    assert_error(&run, &["scan point 1", "Gamma = 0", "no dissipation"]);
}
