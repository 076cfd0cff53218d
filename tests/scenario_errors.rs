//! Bad input: every class of mistake gets an error naming the field (or key), the offending
//! value and what was expected — never a panic.

use dicke::scenario::{load, parse};

const GOOD: &str = r#"
[variables]
x = 0.5
[model]
N = 10
Gamma = 1
Omega = "x * N/2"
[initial]
state = "dicke"
m = "-N/2"
[task]
kind = "evolve"
t_end = 1.0
n_times = 11
"#;

fn err(text: &str, overrides: &[&str]) -> String {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    match parse(text, "test.toml", &o) {
        Ok(_) => panic!("expected an error for overrides {overrides:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn good_scenario_parses() {
    let sc = parse(GOOD, "test.toml", &[]).unwrap();
    assert_eq!(sc.point(&[]).unwrap().model.drive, 2.5);
}

#[test]
fn unknown_key_names_the_key() {
    let e = err(&GOOD.replace("[task]", "[task]\ntend = 3"), &[]);
    assert!(e.contains("tend"), "{e}");
    let e = err(&format!("{GOOD}\n[solver]\nfoo = 1\n"), &[]);
    assert!(e.contains("solver"), "{e}");
    let e = err(&GOOD.replace("Gamma = 1", "Gama = 1"), &[]);
    assert!(
        e.contains("model.Gama") && e.contains("one of the model parameters"),
        "{e}"
    );
}

#[test]
fn negative_rate_names_field_and_value() {
    let e = err(GOOD, &["Gamma=-0.5"]);
    assert!(
        e.contains("model.Gamma") && e.contains("-0.5") && e.contains(">= 0"),
        "{e}"
    );
    let e = err(&GOOD.replace("Gamma = 1", "Gamma = 1\ngamma_phi = \"-x\""), &[]);
    assert!(e.contains("model.gamma_phi") && e.contains("-0.5"), "{e}");
}

#[test]
fn zero_or_fractional_n_is_refused() {
    let e = err(GOOD, &["N=0"]);
    assert!(
        e.contains("model.N") && e.contains("0") && e.contains("N >= 1") || e.contains("1 <= N"),
        "{e}"
    );
    let e = err(GOOD, &["N=2.5"]);
    assert!(e.contains("model.N") && e.contains("2.5"), "{e}");
    let e = err(&GOOD.replace("N = 10\n", ""), &[]);
    assert!(e.contains("model.N") && e.contains("missing"), "{e}");
}

#[test]
fn non_numeric_value_names_field() {
    // A string that is not an expression of known names.
    let e = err(&GOOD.replace("Gamma = 1", "Gamma = \"one\""), &[]);
    assert!(e.contains("model.Gamma") && e.contains("one"), "{e}");
    // A boolean where a number is expected: the TOML layer names the key.
    let e = err(&GOOD.replace("Gamma = 1", "Gamma = true"), &[]);
    assert!(e.contains("Gamma"), "{e}");
    // A malformed expression names the key and the text.
    let e = err(GOOD, &["Omega=x*(N"]);
    assert!(e.contains("model.Omega") && e.contains("x*(N"), "{e}");
    // An expression that evaluates to infinity.
    let e = err(GOOD, &["Omega=1/0"]);
    assert!(e.contains("model.Omega") && e.contains("finite"), "{e}");
}

#[test]
fn missing_file_names_the_path() {
    let e = load(std::path::Path::new("/nonexistent/dir/scenario.toml"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/dir/scenario.toml"), "{e}");
}

#[test]
fn bad_overrides_and_task_fields() {
    let e = err(GOOD, &["bogus=3"]);
    assert!(
        e.contains("bogus") && e.contains("neither a model parameter"),
        "{e}"
    );
    let e = err(GOOD, &["Omega"]);
    assert!(e.contains("key=value"), "{e}");
    let e = err(GOOD, &["task.kind=relax"]);
    assert!(e.contains("task.kind") && e.contains("relax"), "{e}");
    let e = err(GOOD, &["task.t_end=-1"]);
    assert!(e.contains("task.t_end") && e.contains("-1"), "{e}");
    let e = err(GOOD, &["initial.m=0.5"]);
    // m = 0.5 is not in -5..5 in integer steps for N = 10: caught when the state is built.
    assert!(e.contains("initial.m"), "{e}");
    let e = err(GOOD, &["initial.state=ghz"]);
    assert!(e.contains("initial.state") && e.contains("ghz"), "{e}");
    let e = err(
        &GOOD.replace(
            "[task]\nkind = \"evolve\"\nt_end = 1.0\nn_times = 11",
            "[task]\nkind = \"scan\"\nvariable = \"y\"\nvalues = [1, 2]",
        ),
        &[],
    );
    assert!(e.contains("task.variable") && e.contains("\"y\""), "{e}");
    let e = err(
        &GOOD.replace(
            "[variables]",
            "[observables]\ncolumns = [\"entropy\"]\n[variables]",
        ),
        &[],
    );
    assert!(e.contains("observables.columns") && e.contains("entropy"), "{e}");
}

#[test]
fn set_pins_a_scan_variable() {
    let text = GOOD.replace(
        "[task]\nkind = \"evolve\"\nt_end = 1.0\nn_times = 11",
        "[task]\nkind = \"scan\"\nvariable = \"x\"\nstart = 0.1\nstop = 1.0\nnum = 10",
    );
    let sc = parse(&text, "t", &[]).unwrap();
    assert_eq!(sc.points().unwrap().len(), 10);
    // `--set x=...` on the scanned variable pins it: one point at that value.
    let sc = parse(&text, "t", &["x=0.25".into()]).unwrap();
    let pts = sc.points().unwrap();
    assert_eq!(pts.len(), 1);
    assert_eq!(pts[0].values["x"], 0.25);
}

/// A scan of evolutions over x, built from GOOD (which has [initial]).
fn scan_evolve(extra: &str) -> String {
    GOOD.replace(
        "[task]\nkind = \"evolve\"\nt_end = 1.0\nn_times = 11",
        &format!(
            "[task]\nkind = \"scan\"\nmode = \"evolve\"\nvariable = \"x\"\nvalues = [0.25, 0.5]\n\
             t_end = 1.0\nn_times = 11\n{extra}"
        ),
    )
}

#[test]
fn scan_evolve_parses_and_shares_the_evolve_fields() {
    use dicke::scenario::{ScanMode, Task};
    use dicke::solver::trajectory::Precision;
    let sc = parse(&scan_evolve("rtol = 2e-6\nprecision = \"f32\""), "t", &[]).unwrap();
    let Task::Scan { values, mode, .. } = &sc.task else {
        panic!("a scan: {:?}", sc.task);
    };
    assert_eq!(values, &[0.25, 0.5]);
    let ScanMode::Evolve { spec, precision } = mode else {
        panic!("mode evolve: {mode:?}");
    };
    assert_eq!(spec.times.len(), 11);
    assert_eq!(spec.times[10], 1.0);
    assert_eq!((spec.rtol, spec.atol, spec.max_steps), (2e-6, 1e-10, 10_000_000));
    assert_eq!(*precision, Some(Precision::F32));
    // No precision: chosen at run time (f64 where the GPU has it).
    let sc = parse(&scan_evolve(""), "t", &[]).unwrap();
    assert!(matches!(
        sc.task,
        Task::Scan {
            mode: ScanMode::Evolve { precision: None, .. },
            ..
        }
    ));
    // The default mode is today's steady-state scan.
    let text = GOOD.replace(
        "[task]\nkind = \"evolve\"\nt_end = 1.0\nn_times = 11",
        "[task]\nkind = \"scan\"\nvariable = \"x\"\nvalues = [0.25]",
    );
    let sc = parse(&text, "t", &[]).unwrap();
    assert!(matches!(
        sc.task,
        Task::Scan {
            mode: ScanMode::SteadyState,
            ..
        }
    ));
}

#[test]
fn scan_mode_errors_name_the_field_value_and_expectation() {
    // A bad mode.
    let e = err(&scan_evolve(""), &["task.mode=relax"]);
    assert!(
        e.contains("task.mode")
            && e.contains("\"relax\"")
            && e.contains("\"evolve\"")
            && e.contains("\"steady_state\""),
        "{e}"
    );
    // Evolve fields in a steady-state scan (the default mode, and the explicit one).
    let e = err(&scan_evolve(""), &["task.mode=steady_state"]);
    assert!(
        e.contains("task.t_end") && e.contains("mode = \"steady_state\"") && e.contains("mode = \"evolve\""),
        "{e}"
    );
    let steady = GOOD.replace(
        "[task]\nkind = \"evolve\"\nt_end = 1.0\nn_times = 11",
        "[task]\nkind = \"scan\"\nvariable = \"x\"\nvalues = [0.25]",
    );
    for (key, field) in [
        ("task.rtol=1e-6", "task.rtol"),
        ("task.max_steps=10", "task.max_steps"),
        ("task.precision=f32", "task.precision"),
    ] {
        let e = err(&steady, &[key]);
        assert!(e.contains(field) && e.contains("steady_state"), "{key}: {e}");
    }
    // `mode` belongs to scans only.
    let e = err(GOOD, &["task.mode=evolve"]);
    assert!(e.contains("task.mode") && e.contains("kind = \"evolve\""), "{e}");
    // A bad precision value, and f32 with a tolerance the f32 kernel cannot resolve.
    let e = err(&scan_evolve(""), &["task.precision=f16"]);
    assert!(
        e.contains("task.precision") && e.contains("\"f16\"") && e.contains("\"f32\" or \"f64\""),
        "{e}"
    );
    let e = err(&scan_evolve("precision = \"f32\""), &[]);
    assert!(
        e.contains("task.rtol") && e.contains("0.00000001") && e.contains("f32") && e.contains("1e-6"),
        "{e}"
    );
    // Trajectory fields are errors in either mode.
    let e = err(&scan_evolve(""), &["task.ntraj=10"]);
    assert!(e.contains("task.ntraj") && e.contains("kind = \"scan\""), "{e}");
    // The shared time-grid checks, naming this task.
    let e = err(&scan_evolve(""), &["task.t_end=-1"]);
    assert!(e.contains("task.t_end") && e.contains("-1"), "{e}");
    let e = err(&scan_evolve("").replace("t_end = 1.0\n", ""), &[]);
    assert!(
        e.contains("task.t_end") && e.contains("missing") && e.contains("mode = \"evolve\""),
        "{e}"
    );
    let e = err(&scan_evolve(""), &["task.atol=0"]);
    assert!(e.contains("task.atol") && e.contains("> 0"), "{e}");
    // An evolution needs a start.
    let no_initial = scan_evolve("").replace("[initial]\nstate = \"dicke\"\nm = \"-N/2\"\n", "");
    let e = err(&no_initial, &[]);
    assert!(
        e.contains("initial") && e.contains("missing") && e.contains("mode = \"evolve\""),
        "{e}"
    );
    // The initial state is checked at every point.
    let e = err(&scan_evolve(""), &["initial.m=7"]);
    assert!(e.contains("initial.m") && e.contains('7'), "{e}");
}

const FIXED_POINTS: &str = r#"
[variables]
x = 0.5
[model]
N = 10
Gamma = 1
gamma_down = 0.5
Omega = "x * N/2"
[task]
kind = "fixed_points"
variable = "x"
start = 0.1
stop = 1.0
num = 10
factorisation = "both"
"#;

#[test]
fn fixed_points_task_fields_are_checked() {
    let sc = parse(FIXED_POINTS, "test.toml", &[]).unwrap();
    assert_eq!(sc.points().unwrap().len(), 10);
    let e = err(FIXED_POINTS, &["task.factorisation=cumulant"]);
    assert!(
        e.contains("task.factorisation") && e.contains("cumulant") && e.contains("\"both\""),
        "{e}"
    );
    let e = err(
        &FIXED_POINTS.replace("[task]", "[initial]\nstate = \"dicke\"\nm = \"-N/2\"\n[task]"),
        &[],
    );
    assert!(e.contains("initial") && e.contains("fixed_points"), "{e}");
    let e = err(FIXED_POINTS, &["task.t_end=3"]);
    assert!(e.contains("task.t_end") && e.contains("[initial]"), "{e}");
    let e = err(FIXED_POINTS, &["task.rtol=1e-6"]);
    assert!(e.contains("task.rtol") && e.contains("t_end"), "{e}");
    let with_initial = FIXED_POINTS.replace(
        "[task]",
        "[initial]\nstate = \"dicke\"\nm = \"-N/2\"\n[task]\nt_end = 5",
    );
    assert!(parse(&with_initial, "test.toml", &[]).is_ok());
    let e = err(&with_initial, &["task.n_times=11"]);
    assert!(e.contains("task.n_times") && e.contains("end point"), "{e}");
    let e = err(&with_initial, &["initial.m=7"]);
    assert!(e.contains("initial.m") && e.contains("7"), "{e}");
    let e = err(FIXED_POINTS, &["task.boundary_tol=-1"]);
    assert!(e.contains("task.boundary_tol") && e.contains("> 0"), "{e}");
    // Mean-field fields on another kind.
    let e = err(GOOD, &["task.factorisation=both"]);
    assert!(
        e.contains("task.factorisation") && e.contains("fixed_points"),
        "{e}"
    );
    // collective_set: applied like --set, errors name the entry.
    let with_set = FIXED_POINTS.replace(
        "factorisation = \"both\"",
        "factorisation = \"both\"\ncollective_set = [\"gamma_down=0\", \"Gamma=-1\"]",
    );
    let e = err(&with_set, &[]);
    assert!(e.contains("model.Gamma") && e.contains("-1"), "{e}");
    let with_set = FIXED_POINTS.replace("factorisation = \"both\"", "collective_set = [\"gamma_down=0\"]");
    let e = err(&with_set, &[]);
    assert!(e.contains("task.collective_set"), "{e}");
    let with_set = FIXED_POINTS.replace(
        "factorisation = \"both\"",
        "factorisation = \"collective\"\ncollective_set = [\"nonsense\"]",
    );
    let e = err(&with_set, &[]);
    assert!(e.contains("task.collective_set[0]"), "{e}");
}

const SWEEP: &str = r#"
[variables]
u = 0.5
[model]
N = 100
Gamma = 1
Omega = "u * N/2"
[initial]
state = "coherent"
theta = "pi/2"
[task]
kind = "sweep"
t_end = 1.0
n_times = 11
[[task.axes]]
variable = "u"
start = 0.1
stop = 1.0
num = 4
[[task.axes]]
variable = "gamma_down"
values = [0.0, 1.0, 2.0]
"#;

#[test]
fn sweep_parses_and_counts_points() {
    let sc = parse(SWEEP, "test.toml", &[]).unwrap();
    let dicke::scenario::Task::Sweep(spec) = &sc.task else {
        panic!("not a sweep")
    };
    assert_eq!(spec.len(), 12);
    assert_eq!(spec.coords(0), [0.1, 0.0]);
    assert_eq!(spec.coords(5), [0.4, 2.0]);
    assert_eq!(spec.t_min, 0.0);
    assert!((spec.t_late - 0.9).abs() < 1e-12);
    // --set pins an axis to one value.
    let sc = parse(SWEEP, "test.toml", &["u=0.3".to_string()]).unwrap();
    let dicke::scenario::Task::Sweep(spec) = &sc.task else {
        panic!("not a sweep")
    };
    assert_eq!(spec.len(), 3);
    // `name[k]` in a dotted key addresses element k of a list: resize an axis, change a value.
    let set = |o: &[&str]| {
        let o: Vec<String> = o.iter().map(|s| s.to_string()).collect();
        let sc = parse(SWEEP, "test.toml", &o).unwrap();
        let dicke::scenario::Task::Sweep(spec) = sc.task else {
            panic!("not a sweep")
        };
        spec
    };
    let spec = set(&["task.axes[0].num=2", "task.axes[1].values[2]=5"]);
    assert_eq!(spec.len(), 6);
    assert_eq!(spec.coords(5), [1.0, 5.0]); // axis 0: start 0.1, stop 1.0
    for (o, want) in [
        ("task.axes[2].num=3", "2 entries"),
        ("task.axes[x].num=3", "whole number"),
        ("task.axes.num=3", "not a table"),
        ("task.t_end[0]=3", "not a list"),
        ("task.axes[0]=3", "not a scalar"),
    ] {
        let e = err(SWEEP, &[o]);
        assert!(
            e.contains(o.split('=').next().unwrap()) && e.contains(want),
            "{o}: {e}"
        );
    }
}

#[test]
fn sweep_errors_name_field_value_and_expectation() {
    let cases: [(String, &str); 12] = [
        (
            SWEEP.replace("kind = \"sweep\"", "kind = \"sweep\"\nmethod = \"trajectories\""),
            "task.method",
        ),
        (
            SWEEP.replace("kind = \"sweep\"", "kind = \"sweep\"\nprecision = \"f16\""),
            "task.precision",
        ),
        // f32 (GPU) with the default rtol 1e-8, then with rtol at its floor and the default
        // atol 1e-10: each names the field and the floor.
        (
            SWEEP.replace("kind = \"sweep\"", "kind = \"sweep\"\nprecision = \"f32\""),
            "task.rtol",
        ),
        (
            SWEEP.replace(
                "kind = \"sweep\"",
                "kind = \"sweep\"\nprecision = \"f32\"\nrtol = 1e-6",
            ),
            "atol >= 1e-8",
        ),
        (
            SWEEP.replace("kind = \"sweep\"", "kind = \"sweep\"\nlayout = \"zip\""),
            "task.layout",
        ),
        (
            SWEEP.replace("kind = \"sweep\"", "kind = \"sweep\"\nlayout = \"list\""),
            "equal length",
        ),
        (
            SWEEP.replace("n_times = 11", "n_times = 11\nt_min = 5"),
            "task.t_min",
        ),
        (
            SWEEP.replace("n_times = 11", "n_times = 11\nheatmap = \"purity\""),
            "task.heatmap",
        ),
        (
            SWEEP.replace("variable = \"gamma_down\"", "variable = \"u\""),
            "task.axes[1].variable",
        ),
        (
            SWEEP.replace("variable = \"gamma_down\"", "variable = \"nope\""),
            "task.axes[1].variable",
        ),
        (
            SWEEP.replace("values = [0.0, 1.0, 2.0]", "values = [0.0]\nnum = 3"),
            "task.axes[1].values",
        ),
        (
            SWEEP.replace("kind = \"sweep\"", "kind = \"evolve\""),
            "task.axes",
        ),
    ];
    for (text, needle) in &cases {
        let e = err(text, &[]);
        assert!(e.contains(needle), "expected `{needle}` in: {e}");
    }
    let e = err(
        &SWEEP.replace(
            "[[task.axes]]\nvariable = \"u\"\nstart = 0.1\nstop = 1.0\nnum = 4\n",
            "",
        ),
        &["gamma_down=-1"],
    );
    assert!(e.contains("model.gamma_down"), "{e}");
    let e = err(
        &SWEEP.replace(
            "variable = \"gamma_down\"\nvalues = [0.0, 1.0, 2.0]",
            "variable = \"N\"\nvalues = [10, 20.5]",
        ),
        &[],
    );
    assert!(e.contains("task.axes[1].values") && e.contains("20.5"), "{e}");
    let e = err(&SWEEP.replace("t_end = 1.0\nn_times = 11", "times = [0, 1]"), &[]);
    assert!(e.contains("task.times"), "{e}");
}

/// `[initial]` is validated once, at load: every task that evolves from it refuses a scenario
/// without it, naming the field, the value and what was expected for that kind.
#[test]
fn every_evolving_kind_needs_initial_at_load() {
    let drop_initial = |text: &str| {
        let out = text
            .replace("[initial]\nstate = \"dicke\"\nm = \"-N/2\"\n", "")
            .replace("[initial]\nstate = \"coherent\"\ntheta = \"pi/2\"\n", "");
        assert!(!out.contains("[initial]"), "{out}");
        out
    };
    let trajectories = GOOD.replace("kind = \"evolve\"", "kind = \"trajectories\"");
    let cases = [
        (drop_initial(GOOD), "kind = \"evolve\""),
        (drop_initial(&trajectories), "kind = \"trajectories\""),
        (
            drop_initial(&scan_evolve("")),
            "kind = \"scan\" with mode = \"evolve\"",
        ),
        (drop_initial(SWEEP), "kind = \"sweep\""),
    ];
    for (text, kind) in &cases {
        let e = err(text, &[]);
        assert!(
            e.contains("`initial`")
                && e.contains("(missing)")
                && e.contains("an [initial] table")
                && e.contains(kind),
            "{kind}: {e}"
        );
    }
    // fixed_points reads [initial] only with t_end: then it names t_end and the table.
    let e = err(FIXED_POINTS, &["task.t_end=5"]);
    assert!(
        e.contains("task.t_end") && e.contains("an [initial] table"),
        "{e}"
    );
    // Kinds that do not evolve parse without it.
    assert!(parse(FIXED_POINTS, "t", &[]).is_ok());
    let steady = drop_initial(GOOD).replace(
        "kind = \"evolve\"\nt_end = 1.0\nn_times = 11",
        "kind = \"steady_state\"",
    );
    assert!(parse(&steady, "t", &[]).is_ok());
}
