//! Property-based tests of untrusted input (issue 12 item 7): the scenario parser, expressions
//! and `--set` never panic, hang or allocate past the limit on generated input; they return a
//! scenario or an error. Each case is parsed on the test thread (libtest's 2 MiB stack, smaller
//! than a main thread's, so a stack-hungry path would show) and timed: a parse that allocates
//! or recurses with the input shows up as a slow case.
//!
//! Inputs are mutations of a valid scenario (so the generator reaches validation, not only the
//! TOML reader): a value replaced by a generated expression, number or string; `--set`
//! overrides with known and generated keys; and token soups of expressions with deep
//! parentheses. 256 cases per property keep the run to a few seconds.

use dicke::scenario::parse;
use proptest::prelude::*;
use std::time::{Duration, Instant};

const BASE: &str = r#"
title = "fuzz"
[variables]
x = 0.5
[model]
N = 12
Gamma = 1.0
Omega = "2 * x * N / 4"
gamma_down = 0.1
[initial]
state = "coherent"
theta = "pi / 2"
[task]
kind = "evolve"
t_end = 1.0
n_times = 11
[observables]
columns = ["var_Jz"]
"#;

/// Parse with a time limit: every generated case must be decided quickly (no hang, no work
/// growing with a number in the input before a cap).
fn parse_quickly(text: &str, overrides: &[String]) -> Result<(), String> {
    let t0 = Instant::now();
    let r = std::panic::catch_unwind(|| parse(text, "fuzz.toml", overrides).map(|_| ()));
    let dt = t0.elapsed();
    if dt > Duration::from_secs(2) {
        return Err(format!("took {dt:?}"));
    }
    match r {
        Ok(_) => Ok(()),
        Err(_) => Err("panicked".into()),
    }
}

/// Expression-ish text: numbers, names, operators, functions, parentheses.
fn expr() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("N".to_string()),
        Just("x".to_string()),
        Just("Omega".to_string()),
        Just("pi".to_string()),
        Just("sqrt(".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just("+".to_string()),
        Just("-".to_string()),
        Just("*".to_string()),
        Just("/".to_string()),
        Just("^".to_string()),
        Just(",".to_string()),
        Just("\"".to_string()),
        any::<f64>().prop_map(|v| format!("{v:e}")),
        any::<i64>().prop_map(|v| v.to_string()),
        "[a-z_]{1,6}",
    ];
    prop::collection::vec(token, 0..40).prop_map(|v| v.join(" "))
}

/// A TOML value: a number, a quoted expression, a list, a boolean or junk.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f64>().prop_map(|v| format!("{v:e}")),
        any::<i64>().prop_map(|v| v.to_string()),
        expr().prop_map(|e| format!("\"{}\"", e.replace('"', ""))),
        prop::collection::vec(any::<i32>(), 0..8).prop_map(|v| format!("{v:?}")),
        Just("true".to_string()),
        Just("\"crss\"".to_string()),
        "[ -~]{0,12}",
    ]
}

/// Keys the parser knows (so overrides reach validation) and generated ones.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "N",
            "Omega",
            "Gamma",
            "gamma_down",
            "gamma_up",
            "gamma_phi",
            "chi",
            "w",
            "x",
            "task.t_end",
            "task.n_times",
            "task.rtol",
            "task.atol",
            "task.kind",
            "task.method",
            "task.values",
            "task.num",
            "task.ntraj",
            "task.cfl",
            "initial.state",
            "initial.m",
            "initial.theta",
            "observables.pm",
            "task.axes[0].num",
            "task..t_end",
        ])
        .prop_map(str::to_string),
        "[a-z_.\\[\\]0-9]{0,16}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// A line of the base scenario replaced by `key = value`.
    #[test]
    fn mutated_scenarios_never_panic(line in 0usize..20, k in "[a-zA-Z_]{1,10}", v in value()) {
        let mut lines: Vec<String> = BASE.lines().map(str::to_string).collect();
        let i = line % lines.len();
        lines[i] = format!("{k} = {v}");
        prop_assert_eq!(parse_quickly(&lines.join("\n"), &[]), Ok(()));
    }

    /// A value of the base scenario replaced by a generated one, in place.
    #[test]
    fn mutated_values_never_panic(line in 0usize..20, v in value()) {
        let mut lines: Vec<String> = BASE.lines().map(str::to_string).collect();
        let i = line % lines.len();
        if let Some((k, _)) = lines[i].clone().split_once('=') {
            lines[i] = format!("{k}= {v}");
        }
        prop_assert_eq!(parse_quickly(&lines.join("\n"), &[]), Ok(()));
    }

    /// `--set key=value` overrides, several at once.
    #[test]
    fn overrides_never_panic(sets in prop::collection::vec((key(), value()), 1..4)) {
        let o: Vec<String> = sets.iter().map(|(k, v)| format!("{k}={v}")).collect();
        prop_assert_eq!(parse_quickly(BASE, &o), Ok(()));
    }

    /// Expressions, also nested far beyond the cap, through --set.
    #[test]
    fn expressions_never_panic(e in expr(), depth in 0usize..5000) {
        let nested = format!("{}{}{}", "(".repeat(depth), e, ")".repeat(depth));
        prop_assert_eq!(parse_quickly(BASE, &[format!("Omega={e}")]), Ok(()));
        prop_assert_eq!(parse_quickly(BASE, &[format!("Omega={nested}")]), Ok(()));
    }
}
