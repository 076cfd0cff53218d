//! Scenario files: TOML -> raw structs (serde, unknown keys rejected) -> validated [`Scenario`].
//!
//! The format is documented for users in `docs/scenarios.md`. In short:
//!
//! ```toml
//! [variables]            # named numbers or expressions, usable everywhere below
//! x = 0.75
//! Omega_c = "N/2 * sqrt(Gamma^2 + 4*chi^2)"
//! [model]                # PHYSICS.md sec. 1 names; numbers or expressions
//! N = 200
//! Gamma = 1
//! Omega = "x * Omega_c"
//! [initial]              # for `evolve`: dicke (m), coherent (theta, phi), crss, thermal, steady_state or { from = "DIR" }
//! state = "dicke"
//! m = "-N/2"
//! [task]                 # evolve | trajectories | steady_state | scan (mode = steady_state | evolve) | fixed_points | sweep | spectrum | metastable | correlation | fisher
//! kind = "evolve"
//! t_end = 0.2
//! n_times = 201
//! [observables]
//! columns = ["var_Jz"]   # beyond the always-written Jx, Jy, Jz, xi2, J2
//! ```
//!
//! `--set key=value` overrides are applied to the TOML tree before deserialisation, so they
//! go through exactly the same validation as the file. Expressions are resolved after the
//! overrides: model parameters and variables form one namespace, evaluated in dependency
//! order (cycles and unknown names are errors naming the key).
//!
//! # Layout
//!
//! The public names live here ([`Scenario`], [`Point`], [`load`], [`parse`]) or are re-exported
//! from the submodule of their concern:
//!
//! - `raw`: the serde structs of the file as written;
//! - `overrides`: `--set key=value` on the TOML tree ([`apply_override`]);
//! - `validate`: raw -> [`Scenario`], and the checks that span tables (pins, `[initial]`);
//! - `points`: evaluating definitions at a point ([`Scenario::point`], [`Point::eval`]);
//! - `initial`: `[initial]` and `[observables.fidelity]` ([`StateSpec`] -> [`State`], the
//!   initial pure state of a point: [`Scenario::initial_state`]);
//! - `observables`: `[observables]` ([`ObservableSpec`], the column names);
//! - `task`: `[task]` per kind ([`Task`], [`EvolveSpec`], [`ScanMode`]);
//! - `response`: the fields of `kind = "correlation"` and `kind = "fisher"`
//!   ([`CorrelationSpec`], [`FisherSpec`]);
//! - `fields`: the number checks of task fields (positive, counts, time grids, precision);
//! - `axes`: scan and sweep axes ([`SweepSpec`]);
//! - [`expr`]: the expression language.

mod analysis;
mod axes;
pub mod expr;
mod fields;
mod initial;
mod method;
mod observables;
mod overrides;
mod points;
mod raw;
mod response;
mod schedule;
mod task;
mod validate;

/// A resolved pure state specification (numbers): the state layer's [`PureSpec`](crate::state::PureSpec).
pub use crate::state::PureSpec as State;
pub use analysis::{HysteresisSpec, SwitchingSpec};
pub use axes::{EXACT_SWEEP_QUANTITIES, MAX_SWEEP_POINTS, SWEEP_QUANTITIES, SweepAxis, SweepSpec};
pub use fields::TimeDefs;
pub use initial::{Mixed, StateSpec};
pub use observables::{BASE_OBSERVABLES, EXTRA_OBSERVABLES, ObservableSpec};
pub use overrides::apply_override;
pub use response::{CorrelationSpec, FisherSpec, OmegaGrid};
pub use task::{EvolveSpec, F32_MIN_ATOL, F32_MIN_RTOL, Minimize, ScanMode, Task};

use crate::error::InputError;
use crate::model::Model;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A number or an expression, as written in the file. Deserialised by hand (not an untagged
/// enum, whose error says only "data did not match any variant") so that a wrong type reads
/// e.g. "invalid type: boolean `true`, expected a number or an expression string" with the
/// key's path.
#[derive(Debug, Clone, PartialEq)]
pub enum Num {
    Int(i64),
    Float(f64),
    Text(String),
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Num, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number or an expression string (e.g. 0.5 or \"N/2\")")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Num, E> {
                Ok(Num::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(i64::try_from(v).map(Num::Int).unwrap_or(Num::Float(v as f64)))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Num, E> {
                Ok(Num::Float(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Num, E> {
                Ok(Num::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl Num {
    fn to_toml_string(&self) -> String {
        match self {
            Num::Int(i) => i.to_string(),
            Num::Float(f) => f.to_string(),
            Num::Text(s) => format!("\"{s}\""),
        }
    }
}

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub title: String,
    pub description: String,
    /// The scenario as run (after `--set` overrides), for provenance in result.json.
    pub as_run: toml::Value,
    /// Definitions of model parameters (by PHYSICS.md name) and variables.
    defs: BTreeMap<String, Num>,
    /// Scheduled model parameters (`[model] w = { ramp = ... }`), evaluated per point.
    schedules: BTreeMap<String, schedule::RawSchedule>,
    pub variable_names: Vec<String>,
    pub initial: Option<StateSpec>,
    pub task: Task,
    /// The physics method of an `evolve`, `steady_state` or `scan` task (`task.method`).
    pub method: crate::solver::Method,
    pub observables: ObservableSpec,
    pub plot: bool,
    /// `[output] final_state = true`: write the state at the last save (kind = "evolve" only;
    /// [`crate::output::final_state`]).
    pub final_state: bool,
    /// `[analysis.switching]` (kind = "trajectories" only).
    pub switching: Option<SwitchingSpec>,
    /// `[analysis.hysteresis]` (kind = "evolve" with a scheduled parameter).
    pub hysteresis: Option<HysteresisSpec>,
}

/// Parameters and variables evaluated at one point.
#[derive(Debug, Clone)]
pub struct Point {
    /// The model; a scheduled parameter holds its value at t = 0 ([`Point::protocol`] has the
    /// schedules).
    pub model: Model,
    /// The scheduled parameters' schedules at this point, in `PARAM_NAMES` order.
    pub schedules: Vec<(&'static str, crate::model::Schedule)>,
    /// Every named quantity (model parameters and variables) with its value.
    pub values: BTreeMap<String, f64>,
}

/// Largest scenario file accepted, bytes (a scenario is a few kB; this keeps `dicke run
/// /dev/zero` or a mistaken data file from being read into memory).
pub const MAX_SCENARIO_BYTES: u64 = 1024 * 1024;

/// Read, override and validate a scenario file (at most [`MAX_SCENARIO_BYTES`], read through
/// a bounded reader).
pub fn load(path: &std::path::Path, overrides: &[String]) -> Result<Scenario, InputError> {
    use std::io::Read;
    let read_err = |source| InputError::Read {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_SCENARIO_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_SCENARIO_BYTES {
        return Err(InputError::invalid(
            format!("scenario file `{}`", path.display()),
            format!("more than {MAX_SCENARIO_BYTES} bytes"),
            format!("a scenario file of at most {MAX_SCENARIO_BYTES} bytes (1 MiB)"),
        ));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        read_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text ({e})"),
        ))
    })?;
    parse(&text, &path.display().to_string(), overrides)
}

/// Parse scenario text (`origin` names it in errors), apply `--set` overrides, validate.
pub fn parse(text: &str, origin: &str, overrides: &[String]) -> Result<Scenario, InputError> {
    let mut tree: toml::Value = toml::from_str(text).map_err(|e| InputError::Parse {
        path: origin.to_string(),
        message: e.to_string(),
    })?;
    for o in overrides {
        apply_override(&mut tree, o)?;
    }
    let raw: raw::RawScenario = tree
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| InputError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
    validate::validate(raw, tree, &overrides::pinned_names(overrides))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[variables]
x = 0.5
Omega_c = "N/2 * sqrt(Gamma^2 + 4*chi^2)"
[model]
N = 10
Gamma = 1
chi = 0.5
Omega = "x * Omega_c"
[task]
kind = "scan"
variable = "x"
start = 0.1
stop = 0.3
num = 3
"#;

    #[test]
    fn resolves_expressions_in_dependency_order() {
        let sc = parse(BASE, "t", &[]).unwrap();
        let pts = sc.points().unwrap();
        assert_eq!(pts.len(), 3);
        let oc = 5.0 * 2f64.sqrt();
        assert!((pts[2].model.drive - 0.3 * oc).abs() < 1e-12);
        assert_eq!(sc.varying_parameters().unwrap(), vec!["Omega"]);
    }

    #[test]
    fn set_overrides_model_and_variables() {
        let sc = parse(BASE, "t", &["N=20".into(), "x=0.25".into()]).unwrap();
        let p = sc.point(&[]).unwrap();
        assert_eq!(p.model.n, 20);
        assert!((p.values["x"] - 0.25).abs() < 1e-15);
        let sc = parse(BASE, "t", &["Omega=2*Gamma".into()]).unwrap();
        assert_eq!(sc.point(&[]).unwrap().model.drive, 2.0);
    }

    #[test]
    fn value_and_time_lists_are_capped() {
        let scan = "[model]\nN = 2\nGamma = 1\n[task]\nkind = \"scan\"\nvariable = \"Omega\"\n";
        let list = vec!["1"; 1_000_001].join(",");
        let e = parse(&format!("{scan}values = [{list}]\n"), "t", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("task.values") && e.contains("1000001 entries") && e.contains("at most 1000000"),
            "{e}"
        );
        let evolve = "[model]\nN = 2\nGamma = 1\n[task]\nkind = \"evolve\"\n";
        let e = parse(&format!("{evolve}times = [{list}]\n"), "t", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("task.times") && e.contains("1000001 entries") && e.contains("at most 1000000"),
            "{e}"
        );
    }

    #[test]
    fn cycles_and_unknown_names_are_errors() {
        let e = parse(BASE, "t", &["x=Omega/Omega_c".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("circular"), "{e}");
        let e = parse(BASE, "t", &["Omega=y*2".into()]).unwrap_err().to_string();
        assert!(e.contains("model.Omega") && e.contains("`y`"), "{e}");
    }
}
