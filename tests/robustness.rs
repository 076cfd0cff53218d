//! Bad input must end in an error naming the field, the value and what was expected: never a
//! panic (exit 101), a stack overflow or abort (134), a hang or an unbounded allocation.

mod common;
use common::{Outputs, Toml, run_scenario, run_scenario_env};

/// The run failed with exit status 1 (an error, not a crash) and stderr contains every part
/// (after the run's `estimate:` cost line, if it got that far).
fn assert_error(run: &Outputs, parts: &[&str]) {
    assert!(!run.ok, "expected an error; stdout: {}", run.stdout);
    let message = run
        .stderr
        .strip_prefix("estimate: ")
        .and_then(|rest| rest.split_once('\n'))
        .map_or(run.stderr.as_str(), |(_, after)| after);
    assert!(
        message.starts_with("error:") && !run.stderr.contains("panicked"),
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
    assert_error(
        &run,
        &[
            "task steady_state at N = 10, Omega = 1:",
            "no dissipation",
            "not unique",
        ],
    );
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

#[test]
fn deeply_nested_expressions_are_refused_in_a_file_and_through_set() {
    let deep = format!("{}1{}", "(".repeat(50_000), ")".repeat(50_000));
    let toml = format!("[model]\nN = 10\nGamma = 1\nOmega = \"{deep}\"\n[task]\nkind = \"steady_state\"\n");
    let run = run_scenario(Toml::Text(&toml), &[]);
    assert_error(&run, &["model.Omega", "at most 1000 characters"]);
    let nested = format!("{}1{}", "(".repeat(100), ")".repeat(100));
    let set = format!("Omega={nested}");
    let run = run_scenario(
        Toml::Text("[model]\nN = 10\nGamma = 1\n[task]\nkind = \"steady_state\"\n"),
        &["--set", &set],
    );
    assert_error(&run, &["model.Omega", "nested at most 32 deep"]);
}

#[test]
fn oversized_scenario_files_and_lists_are_refused() {
    let run = run_scenario(Toml::File("/dev/zero"), &[]);
    assert_error(&run, &["/dev/zero", "at most 1048576 bytes"]);
    let values = vec!["1"; 5_000_000].join(",");
    let toml = format!(
        "[model]\nN = 2\nGamma = 1\n[task]\nkind = \"scan\"\nvariable = \"Omega\"\nvalues = [{values}]\n"
    );
    let run = run_scenario(Toml::Text(&toml), &[]);
    assert_error(&run, &["scenario.toml", "at most 1048576 bytes"]);
    let scan = "[model]\nN = 2\nGamma = 1\n[task]\nkind = \"scan\"\nvariable = \"Omega\"\nstart = 0\nstop = 1\nnum = 3\n";
    let run = run_scenario(Toml::Text(scan), &["--set", "task.num=1e7"]);
    assert_error(&run, &["task.num", "10000000", "1..=1000000"]);
    let evolve = "[model]\nN = 2\nGamma = 1\n[task]\nkind = \"evolve\"\nt_end = 1\n";
    let run = run_scenario(Toml::Text(evolve), &["--set", "task.n_times=1e12"]);
    assert_error(&run, &["task.n_times", "1000000000000", "1..=1000000"]);
}

#[test]
fn memory_limit_flag_and_variable_are_checked_and_named() {
    let evolve = "[model]\nN = 200\nGamma = 1\n[initial]\nstate = \"dicke\"\nm = \"-N/2\"\n[task]\nkind = \"evolve\"\nt_end = 0.1\nn_times = 3\n";
    let run = run_scenario_env(Toml::Text(evolve), &[], &[("DICKE_MEMORY_LIMIT_MIB", "8G")]);
    assert_error(&run, &["DICKE_MEMORY_LIMIT_MIB", "\"8G\"", "whole number of MiB"]);
    // --memory-limit takes precedence over the variable, and the refusal names it.
    let run = run_scenario_env(
        Toml::Text(evolve),
        &["--memory-limit", "1"],
        &[("DICKE_MEMORY_LIMIT_MIB", "100000")],
    );
    assert_error(&run, &["request needs about", "limit 1 MiB, --memory-limit"]);
    let run = run_scenario_env(Toml::Text(evolve), &[], &[("DICKE_MEMORY_LIMIT_MIB", "1")]);
    assert_error(&run, &["limit 1 MiB, DICKE_MEMORY_LIMIT_MIB"]);
    let run = run_scenario(Toml::Text(evolve), &["--memory-limit", "8G"]);
    assert!(!run.ok && run.stderr.contains("--memory-limit"), "{}", run.stderr);
}

#[test]
fn tolerances_and_cfl_outside_their_ranges_are_refused() {
    let evolve = "[model]\nN = 4\nGamma = 1\nOmega = 1\n[initial]\nstate = \"dicke\"\nm = \"-N/2\"\n[task]\nkind = \"evolve\"\nt_end = 0.1\nn_times = 3\n";
    let run = run_scenario(
        Toml::Text(evolve),
        &["--set", "task.rtol=2", "--set", "task.atol=1e-10"],
    );
    assert_error(&run, &["task.rtol", "= 2", "[1e-14, 1e-2]"]);
    let run = run_scenario(Toml::Text(evolve), &["--set", "task.rtol=1e-16"]);
    assert_error(&run, &["task.rtol", "[1e-14, 1e-2]"]);
    let run = run_scenario(Toml::Text(evolve), &["--set", "task.atol=2"]);
    assert_error(&run, &["task.atol", "= 2", "(0, 1e-2]"]);
    run_scenario(
        Toml::Text(evolve),
        &["--set", "task.rtol=1e-2", "--set", "task.atol=1e-2"],
    )
    .assert_ok();
    let traj = "[model]\nN = 4\nGamma = 1\nOmega = 1\n[initial]\nstate = \"dicke\"\nm = \"-N/2\"\n[task]\nkind = \"trajectories\"\nt_end = 0.1\nn_times = 3\nntraj = 8\n";
    let run = run_scenario(Toml::Text(traj), &["--set", "task.cfl=5", "--backend", "cpu"]);
    assert_error(&run, &["task.cfl", "= 5", "(0, 1]"]);
    run_scenario(Toml::Text(traj), &["--set", "task.cfl=1", "--backend", "cpu"]).assert_ok();
}

#[test]
fn trajectory_memory_covers_the_populations_per_save() {
    let traj = "[model]\nN = 2000\nGamma = 1\nOmega = 1\n[initial]\nstate = \"dicke\"\nm = \"-N/2\"\n[task]\nkind = \"trajectories\"\nt_end = 0.1\nn_times = 5001\nntraj = 1000\n[observables]\npm = true\n";
    let run = run_scenario(Toml::Text(traj), &["--memory-limit", "16384", "--backend", "cpu"]);
    assert_error(
        &run,
        &[
            "request needs about",
            "limit 16384 MiB",
            "N = 2000",
            "5001 save times",
            "P_m",
        ],
    );
    // The same small request runs.
    let run = run_scenario(
        Toml::Text(traj),
        &[
            "--set",
            "N=4",
            "--set",
            "task.n_times=5",
            "--set",
            "task.ntraj=16",
            "--backend",
            "cpu",
        ],
    );
    run.assert_ok();
    assert!(run.path("pm.csv").exists());
}

#[test]
fn vague_messages_name_the_field_and_what_was_expected() {
    let base = "[model]\nN = 10\nGamma = 1\n[task]\nkind = \"steady_state\"\n";
    let run = run_scenario(Toml::Text(&format!("{base}[variables]\nx = true\n")), &[]);
    assert_error(
        &run,
        &[
            "variables.x",
            "boolean `true`",
            "a number or an expression string",
        ],
    );
    let run = run_scenario(Toml::Text(base), &["--set", "Omega=true"]);
    assert_error(
        &run,
        &[
            "model.Omega",
            "boolean `true`",
            "a number or an expression string",
        ],
    );
    // An empty segment of a dotted --set key.
    let run = run_scenario(Toml::Text(base), &["--set", "task..t_end=1"]);
    assert_error(&run, &["task..t_end", "empty segment", "task.t_end"]);
    // --out naming an existing file.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a_file");
    std::fs::write(&file, "x").unwrap();
    let scenario = tmp.path().join("s.toml");
    std::fs::write(&scenario, base).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dicke"))
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for p in ["error: field `--out`", "a_file", "a directory", "existing file"] {
        assert!(stderr.contains(p), "stderr lacks `{p}`: {stderr}");
    }
}
