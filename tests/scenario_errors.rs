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
