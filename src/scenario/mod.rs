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
//! [initial]              # for `evolve`: dicke (m), coherent (theta, phi) or crss
//! state = "dicke"
//! m = "-N/2"
//! [task]                 # evolve | trajectories | steady_state | scan (mode = steady_state | evolve) | fixed_points
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

pub mod expr;

use crate::error::InputError;
use crate::model::{Model, PARAM_NAMES};
use crate::precision::Precision;
use expr::{Expr, Scope};
use serde::Deserialize;
use std::collections::BTreeMap;

/// A number or an expression, as written in the file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Num {
    Int(i64),
    Float(f64),
    Text(String),
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    title: Option<String>,
    description: Option<String>,
    #[serde(default)]
    variables: BTreeMap<String, Num>,
    model: BTreeMap<String, Num>,
    initial: Option<RawState>,
    task: RawTask,
    #[serde(default)]
    observables: RawObservables,
    #[serde(default)]
    output: RawOutput,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    state: String,
    m: Option<Num>,
    theta: Option<Num>,
    phi: Option<Num>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    kind: String,
    // evolve
    t_start: Option<Num>,
    t_end: Option<Num>,
    n_times: Option<Num>,
    times: Option<Vec<Num>>,
    rtol: Option<Num>,
    atol: Option<Num>,
    max_steps: Option<Num>,
    // trajectories
    ntraj: Option<Num>,
    seed: Option<Num>,
    save_trajectories: Option<Num>,
    precision: Option<String>,
    dt: Option<Num>,
    cfl: Option<Num>,
    // scan
    mode: Option<String>,
    variable: Option<String>,
    values: Option<Vec<Num>>,
    start: Option<Num>,
    stop: Option<Num>,
    num: Option<Num>,
    // fixed_points
    factorisation: Option<String>,
    boundary_tol: Option<Num>,
    collective_set: Option<Vec<String>>,
    // sweep
    method: Option<String>,
    layout: Option<String>,
    axes: Option<Vec<RawAxis>>,
    t_min: Option<Num>,
    t_late: Option<Num>,
    heatmap: Option<String>,
}

/// One axis of a `kind = "sweep"` task (`[[task.axes]]`): the scan's value fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAxis {
    variable: Option<String>,
    values: Option<Vec<Num>>,
    start: Option<Num>,
    stop: Option<Num>,
    num: Option<Num>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObservables {
    #[serde(default)]
    columns: Vec<String>,
    #[serde(default)]
    pm: bool,
    husimi: Option<RawHusimi>,
    fidelity: Option<RawState>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHusimi {
    n_theta: Option<Num>,
    n_phi: Option<Num>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    #[serde(default = "yes")]
    plot: bool,
}

impl Default for RawOutput {
    fn default() -> Self {
        RawOutput { plot: true }
    }
}

fn yes() -> bool {
    true
}

/// Observables that may be requested in `observables.columns`, beyond the always-written
/// `Jx, Jy, Jz, xi2, J2`.
pub const EXTRA_OBSERVABLES: [&str; 15] = [
    "JxJx",
    "JyJy",
    "JzJz",
    "JxJy",
    "JxJz",
    "JyJz",
    "var_Jx",
    "var_Jy",
    "var_Jz",
    "xi2_dB",
    "N_eff",
    "purity",
    "lambda_max",
    "fidelity",
    "Jp_abs",
];

/// The always-written observable columns.
pub const BASE_OBSERVABLES: [&str; 5] = ["Jx", "Jy", "Jz", "xi2", "J2"];

/// A pure state specification, with its numeric fields still as definitions (they may depend
/// on N and the other parameters).
#[derive(Debug, Clone)]
pub enum StateSpec {
    /// |j = N/2, m>.
    Dicke { m: Num },
    /// Spin coherent state along (sin theta cos phi, sin theta sin phi, cos theta).
    Coherent { theta: Num, phi: Num },
    /// The coherently radiating spin state (PHYSICS.md sec. 8) for the model's Omega, Gamma.
    Crss,
}

/// A resolved pure state specification (numbers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum State {
    Dicke { m: f64 },
    Coherent { theta: f64, phi: f64 },
    Crss,
}

/// What to compute.
#[derive(Debug, Clone)]
pub enum Task {
    /// Time evolution from the initial state, saving at `times`.
    Evolve {
        times: Vec<f64>,
        rtol: f64,
        atol: f64,
        max_steps: usize,
    },
    /// A Monte-Carlo wave-function ensemble from the initial state, saving at `times`.
    Trajectories {
        times: Vec<f64>,
        ntraj: u64,
        seed: u64,
        save_trajectories: usize,
        f64: bool,
        dt: Option<f64>,
        cfl: Option<f64>,
    },
    /// The steady state of the model.
    SteadyState,
    /// At each value of `variable`: the steady state, or the evolution from the initial state
    /// ([`ScanMode`]).
    Scan {
        variable: String,
        values: Vec<f64>,
        mode: ScanMode,
    },
    /// Mean field (`solver::meanfield`): every fixed point and its stability at each value of
    /// `variable`, and the boundaries where the number of stable fixed points changes.
    FixedPoints {
        variable: String,
        values: Vec<f64>,
        factorisations: Vec<crate::solver::meanfield::Factorisation>,
        /// Bisection tolerance of the boundaries, in units of the scanned variable.
        boundary_tol: f64,
        /// With `[initial]` and `task.t_end`: also integrate the mean-field ODEs from the
        /// initial state's Bloch vector to t_end at every point (times = [0, t_end]).
        integrate: Option<EvolveSpec>,
        /// The scenario the collective factorisation runs on when `task.collective_set`
        /// changes the model for it (e.g. seed 000's Dicke curve: single-atom decay off).
        collective: Option<Box<Scenario>>,
        /// The overrides that made `collective`, as written.
        collective_set: Vec<String>,
    },
    /// An approximate method (cumulants) over one or two parameter axes ([`SweepSpec`]).
    Sweep(SweepSpec),
}

/// A sweep axis: a variable or model parameter and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepAxis {
    pub variable: String,
    pub values: Vec<f64>,
}

/// `kind = "sweep"`: the points, the method, the save grid and the per-point reductions.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepSpec {
    /// One or two axes.
    pub axes: Vec<SweepAxis>,
    /// `layout = "grid"` (every combination, first axis slowest) or `"list"` (the i-th values
    /// of all axes together; equal lengths).
    pub grid: bool,
    /// `method`: only `"cumulant"` in this version.
    pub method: String,
    pub t0: f64,
    pub t_end: f64,
    /// Number of saves (`n_times`), both ends included.
    pub nsave: usize,
    /// xi^2 minimum over saves with t >= t_min.
    pub t_min: f64,
    /// <Jz> averaged over saves with t >= t_late.
    pub t_late: f64,
    pub rtol: f64,
    pub atol: f64,
    pub max_steps: usize,
    /// The column drawn in the heat map of a two-axis grid.
    pub heatmap: String,
    /// `precision`: the GPU kernel's (None: f64 where the adapter has SHADER_F64, else f32);
    /// the CPU batch always runs in f64 (an f32 request is then recorded and ignored, as for a
    /// scan of evolutions). f32 needs rtol >= [`F32_MIN_RTOL`] and atol >= [`F32_MIN_ATOL`].
    pub precision: Option<Precision>,
}

/// Per-point quantities of a sweep (columns of sweep.csv after the axes and the model
/// parameters that vary), in order.
pub const SWEEP_QUANTITIES: [&str; 13] = [
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
    "status",
];

impl SweepSpec {
    /// Number of points.
    pub fn len(&self) -> usize {
        if self.grid {
            self.axes.iter().map(|a| a.values.len()).product()
        } else {
            self.axes[0].values.len()
        }
    }

    /// True when there are no points (never after validation).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The axis values of point `i` (grid: first axis slowest).
    pub fn coords(&self, i: usize) -> Vec<f64> {
        if self.grid {
            let mut rest = i;
            let mut out = vec![0.0; self.axes.len()];
            for (k, a) in self.axes.iter().enumerate().rev() {
                out[k] = a.values[rest % a.values.len()];
                rest /= a.values.len();
            }
            out
        } else {
            self.axes.iter().map(|a| a.values[i]).collect()
        }
    }
}

/// Save times and integrator settings of a time evolution: `kind = "evolve"` and a scan with
/// `mode = "evolve"` take the same fields, parsed and checked by one function.
#[derive(Debug, Clone, PartialEq)]
pub struct EvolveSpec {
    pub times: Vec<f64>,
    pub rtol: f64,
    pub atol: f64,
    pub max_steps: usize,
}

/// What a `kind = "scan"` task computes at each point (`task.mode`).
#[derive(Debug, Clone, PartialEq)]
pub enum ScanMode {
    /// The steady state (`mode = "steady_state"`, the default).
    SteadyState,
    /// The evolution from the initial state over `spec.times` (`mode = "evolve"`). `precision`
    /// is the GPU kernel's (None: f64 where the adapter has SHADER_F64, else f32); the CPU
    /// integrator always runs in f64.
    Evolve {
        spec: EvolveSpec,
        precision: Option<Precision>,
    },
}

/// The f32 GPU kernel computes its error estimate in f32, so below this rtol the estimate
/// measures rounding rather than truncation (module doc of `backend::gpu::master_batch`).
pub const F32_MIN_RTOL: f64 = 1e-6;

/// The f32 cumulant batch kernel's atol floor: its variables are O(1) moments whose f32
/// rounding (~6e-8) an atol below ~1e-8 would measure (module doc of
/// `backend::gpu::cumulant_batch`).
pub const F32_MIN_ATOL: f64 = 1e-8;

/// Which observables to write beyond the base columns.
#[derive(Debug, Clone, Default)]
pub struct ObservableSpec {
    pub columns: Vec<String>,
    pub pm: bool,
    /// (n_theta, n_phi) for a Husimi Q grid of the final / steady state.
    pub husimi: Option<(usize, usize)>,
    pub fidelity: Option<StateSpec>,
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
    pub variable_names: Vec<String>,
    pub initial: Option<StateSpec>,
    pub task: Task,
    pub observables: ObservableSpec,
    pub plot: bool,
}

/// Parameters and variables evaluated at one point.
#[derive(Debug, Clone)]
pub struct Point {
    pub model: Model,
    /// Every named quantity (model parameters and variables) with its value.
    pub values: BTreeMap<String, f64>,
}

impl Point {
    fn scope(&self) -> Scope {
        let mut s = Scope::new();
        for (k, v) in &self.values {
            s.set(k, *v);
        }
        s
    }

    /// Evaluate a number-or-expression field against this point.
    pub fn eval(&self, field: &str, n: &Num) -> Result<f64, InputError> {
        match n {
            Num::Int(i) => Ok(*i as f64),
            Num::Float(f) => {
                if f.is_finite() {
                    Ok(*f)
                } else {
                    Err(InputError::invalid(field, f, "a finite number"))
                }
            }
            Num::Text(t) => Expr::parse(field, t)?.eval(field, &self.scope()),
        }
    }

    /// Resolve a state specification at this point.
    pub fn state(&self, field: &str, spec: &StateSpec) -> Result<State, InputError> {
        Ok(match spec {
            StateSpec::Dicke { m } => State::Dicke {
                m: self.eval(&format!("{field}.m"), m)?,
            },
            StateSpec::Coherent { theta, phi } => State::Coherent {
                theta: self.eval(&format!("{field}.theta"), theta)?,
                phi: self.eval(&format!("{field}.phi"), phi)?,
            },
            StateSpec::Crss => State::Crss,
        })
    }
}

/// Read, override and validate a scenario file.
pub fn load(path: &std::path::Path, overrides: &[String]) -> Result<Scenario, InputError> {
    let text = std::fs::read_to_string(path).map_err(|source| InputError::Read {
        path: path.display().to_string(),
        source,
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
    let raw: RawScenario = tree
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| InputError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
    // Names pinned by `--set` (a scan over one of them runs that single point).
    let pinned: Vec<String> = overrides
        .iter()
        .filter_map(|o| o.split_once('=').map(|(k, _)| k.trim()))
        .map(|k| {
            k.trim_start_matches("variables.")
                .trim_start_matches("model.")
                .to_string()
        })
        .collect();
    validate(raw, tree, &pinned)
}

/// Apply one `key=value` override to the TOML tree. A bare key is a model parameter (by its
/// PHYSICS.md name) or a variable of `[variables]`; a dotted key (`task.t_end`) addresses any
/// scalar, and `name[k]` in it element k of an existing list (`task.axes[0].num`). The value is read as a TOML number or boolean when it parses as one, otherwise as a
/// string (an expression, or a name such as `coherent`).
pub fn apply_override(tree: &mut toml::Value, text: &str) -> Result<(), InputError> {
    let oerr = |message: String| InputError::Override {
        text: text.to_string(),
        message,
    };
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| oerr("expected key=value".to_string()))?;
    let key = key.trim();
    let value = value.trim();
    if key.is_empty() || value.is_empty() {
        return Err(oerr(
            "expected key=value with a non-empty key and value".to_string(),
        ));
    }
    let parsed: toml::Value = if let Ok(i) = value.parse::<i64>() {
        toml::Value::Integer(i)
    } else if let Ok(f) = value.parse::<f64>() {
        toml::Value::Float(f)
    } else if value == "true" || value == "false" {
        toml::Value::Boolean(value == "true")
    } else {
        toml::Value::String(value.trim_matches('"').to_string())
    };
    let path: Vec<&str> = if key.contains('.') {
        key.split('.').collect()
    } else {
        let in_vars = tree.get("variables").and_then(|v| v.get(key)).is_some();
        if PARAM_NAMES.contains(&key) {
            vec!["model", key]
        } else if in_vars {
            vec!["variables", key]
        } else {
            let vars: Vec<String> = tree
                .get("variables")
                .and_then(|v| v.as_table())
                .map(|t| t.keys().cloned().collect())
                .unwrap_or_default();
            return Err(oerr(format!(
                "`{key}` is neither a model parameter ({}) nor a variable of this scenario ({}); \
                 use a dotted key such as task.t_end for other fields",
                PARAM_NAMES.join(", "),
                if vars.is_empty() {
                    "none".to_string()
                } else {
                    vars.join(", ")
                }
            )));
        }
    };
    let mut node = tree;
    for (i, part) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        let table = node
            .as_table_mut()
            .ok_or_else(|| oerr(format!("`{}` is not a table", path[..i].join("."))))?;
        // `name[k]`: element k of an existing list (e.g. task.axes[0].num, task.values[2]).
        if let Some((name, index)) = part.strip_suffix(']').and_then(|p| p.split_once('[')) {
            let k: usize = index
                .parse()
                .map_err(|_| oerr(format!("`{part}`: the index must be a whole number >= 0")))?;
            let list = table
                .get_mut(name)
                .and_then(|v| v.as_array_mut())
                .ok_or_else(|| oerr(format!("`{name}` in `{key}` is not a list of this scenario")))?;
            let len = list.len();
            let elem = list
                .get_mut(k)
                .ok_or_else(|| oerr(format!("`{part}`: the list has {len} entries (indices 0..{len})")))?;
            if last {
                if elem.is_table() || elem.is_array() {
                    return Err(oerr(format!("`{key}` is a table or list, not a scalar")));
                }
                *elem = parsed;
                return Ok(());
            }
            node = elem;
            continue;
        }
        if last {
            if let Some(old) = table.get(*part)
                && (old.is_table() || old.is_array())
            {
                return Err(oerr(format!("`{key}` is a table or list, not a scalar")));
            }
            table.insert(part.to_string(), parsed);
            return Ok(());
        }
        node = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()));
    }
    Ok(())
}

fn validate(raw: RawScenario, as_run: toml::Value, pinned: &[String]) -> Result<Scenario, InputError> {
    let mut defs = BTreeMap::new();
    for (k, v) in &raw.model {
        if !PARAM_NAMES.contains(&k.as_str()) {
            return Err(InputError::invalid(
                format!("model.{k}"),
                v.to_toml_string(),
                format!("one of the model parameters {}", PARAM_NAMES.join(", ")),
            ));
        }
        defs.insert(k.clone(), v.clone());
    }
    if !raw.model.contains_key("N") {
        return Err(InputError::invalid(
            "model.N",
            "(missing)",
            "the number of atoms N >= 1",
        ));
    }
    for (k, v) in &raw.variables {
        if PARAM_NAMES.contains(&k.as_str()) {
            return Err(InputError::invalid(
                format!("variables.{k}"),
                v.to_toml_string(),
                "a name that is not a model parameter (set model parameters in [model])",
            ));
        }
        if !is_identifier(k) || k == "pi" {
            return Err(InputError::invalid(
                format!("variables.{k}"),
                v.to_toml_string(),
                "a variable name made of letters, digits and _ (not starting with a digit, not `pi`)",
            ));
        }
        defs.insert(k.clone(), v.clone());
    }
    let variable_names: Vec<String> = raw.variables.keys().cloned().collect();

    let initial = raw
        .initial
        .as_ref()
        .map(|s| state_spec("initial", s))
        .transpose()?;
    let fidelity = raw
        .observables
        .fidelity
        .as_ref()
        .map(|s| state_spec("observables.fidelity", s))
        .transpose()?;

    for c in &raw.observables.columns {
        if !EXTRA_OBSERVABLES.contains(&c.as_str()) && !BASE_OBSERVABLES.contains(&c.as_str()) {
            return Err(InputError::invalid(
                "observables.columns",
                format!("\"{c}\""),
                format!("observable names from {}", EXTRA_OBSERVABLES.join(", ")),
            ));
        }
    }
    if raw.observables.columns.iter().any(|c| c == "fidelity") && fidelity.is_none() {
        return Err(InputError::invalid(
            "observables.columns",
            "\"fidelity\"",
            "an [observables.fidelity] table naming the reference state",
        ));
    }
    let mut columns: Vec<String> = Vec::new();
    for c in &raw.observables.columns {
        if !BASE_OBSERVABLES.contains(&c.as_str()) && !columns.contains(c) {
            columns.push(c.clone());
        }
    }

    let mut scenario = Scenario {
        title: raw.title.clone().unwrap_or_default(),
        description: raw.description.clone().unwrap_or_default(),
        as_run,
        defs,
        variable_names,
        initial,
        task: Task::SteadyState,
        observables: ObservableSpec {
            columns,
            pm: raw.observables.pm,
            husimi: None,
            fidelity,
        },
        plot: raw.output.plot,
    };

    // Resolve the base point once: every expression error surfaces before any compute.
    let base = scenario.point(&[])?;
    if let Some(h) = &raw.observables.husimi {
        let nt = grid_size(&base, "observables.husimi.n_theta", h.n_theta.as_ref(), 64)?;
        let np = grid_size(&base, "observables.husimi.n_phi", h.n_phi.as_ref(), 128)?;
        scenario.observables.husimi = Some((nt, np));
    }
    scenario.task = task(&raw.task, &scenario, &base)?;
    if let Task::Scan { variable, values, .. } | Task::FixedPoints { variable, values, .. } =
        &mut scenario.task
        && pinned.contains(variable)
    {
        *values = vec![base.values.get(variable.as_str()).copied().unwrap_or(f64::NAN)];
    }
    if let Task::FixedPoints {
        collective,
        collective_set,
        ..
    } = &mut scenario.task
        && !collective_set.is_empty()
    {
        *collective = Some(Box::new(collective_scenario(
            &scenario.as_run,
            collective_set,
            pinned,
        )?));
    }
    if let Task::FixedPoints { integrate, .. } = &scenario.task {
        match (integrate, &raw.initial) {
            (None, Some(_)) => {
                return Err(InputError::invalid(
                    "initial",
                    "(given)",
                    "no [initial] table for kind = \"fixed_points\" without task.t_end (fixed points do \
                     not depend on an initial state; with t_end each point is also integrated from it)",
                ));
            }
            (Some(_), None) => {
                return Err(InputError::invalid(
                    "task.t_end",
                    "(given)",
                    "an [initial] table to integrate from (or no t_end) for kind = \"fixed_points\"",
                ));
            }
            _ => {}
        }
    }
    if let Task::Sweep(spec) = &mut scenario.task {
        for a in spec.axes.iter_mut() {
            if pinned.contains(&a.variable) {
                a.values = vec![base.values.get(a.variable.as_str()).copied().unwrap_or(f64::NAN)];
            }
        }
        if !spec.grid
            && spec
                .axes
                .iter()
                .any(|a| a.values.len() != spec.axes[0].values.len())
        {
            return Err(InputError::invalid(
                "task.layout",
                "\"list\"",
                "no --set of one axis of a list sweep (pin all axes or none)",
            ));
        }
        if scenario.observables.husimi.is_some()
            || scenario.observables.pm
            || scenario.observables.fidelity.is_some()
        {
            return Err(InputError::invalid(
                "observables",
                "(given)",
                "no [observables] tables or pm for kind = \"sweep\" (its columns are fixed: docs/scenarios.md)",
            ));
        }
        if !scenario.observables.columns.is_empty() {
            return Err(InputError::invalid(
                "observables.columns",
                format!("{:?}", scenario.observables.columns),
                "no extra columns for kind = \"sweep\" (its columns are fixed: docs/scenarios.md)",
            ));
        }
    }
    if let (Task::Scan { values, .. }, Some(_)) = (&scenario.task, scenario.observables.husimi)
        && values.len() > 1
    {
        return Err(InputError::invalid(
            "observables.husimi",
            "(given)",
            "a Husimi grid only for kind = \"evolve\" (final state) or \"steady_state\"; pin a scan point with --set",
        ));
    }
    if let Task::Trajectories { .. } = scenario.task {
        let needs_rho = ["purity", "lambda_max", "fidelity"];
        if let Some(c) = scenario
            .observables
            .columns
            .iter()
            .find(|c| needs_rho.contains(&c.as_str()))
        {
            return Err(InputError::invalid(
                "observables.columns",
                format!("\"{c}\""),
                "for kind = \"trajectories\", observables computed from the ensemble moments \
                 (not purity, lambda_max, fidelity); the moments' standard errors are always written",
            ));
        }
        if scenario.observables.husimi.is_some() {
            return Err(InputError::invalid(
                "observables.husimi",
                "(given)",
                "no Husimi output for kind = \"trajectories\" in this version (P_m is: observables.pm)",
            ));
        }
    }
    let evolves = match &scenario.task {
        Task::Evolve { .. } => Some("kind = \"evolve\""),
        Task::Trajectories { .. } => Some("kind = \"trajectories\""),
        Task::Scan {
            mode: ScanMode::Evolve { .. },
            ..
        } => Some("kind = \"scan\" with mode = \"evolve\""),
        Task::FixedPoints {
            integrate: Some(_), ..
        } => Some("kind = \"fixed_points\" with t_end"),
        Task::Sweep(_) => Some("kind = \"sweep\""),
        Task::Scan { .. } | Task::SteadyState | Task::FixedPoints { .. } => None,
    };
    if let (Some(what), None) = (evolves, &scenario.initial) {
        return Err(InputError::invalid(
            "initial",
            "(missing)",
            format!("an [initial] table (state = \"dicke\" | \"coherent\" | \"crss\") for {what}"),
        ));
    }
    // Validate every point of a scan (cheap) and the initial / reference states.
    for p in scenario.points()? {
        if let (Some(spec), Some(_)) = (&scenario.initial, evolves) {
            check_state(&p, "initial", p.state("initial", spec)?)?;
        }
        if let Some(spec) = &scenario.observables.fidelity {
            check_state(&p, "observables.fidelity", p.state("observables.fidelity", spec)?)?;
        }
    }
    Ok(scenario)
}

/// The scenario of the collective curve of a `fixed_points` task: the scenario as run with the
/// overrides of `task.collective_set` applied (like `--set`), run with factorisation =
/// "collective". Errors name `task.collective_set[i]`.
fn collective_scenario(
    as_run: &toml::Value,
    set: &[String],
    pinned: &[String],
) -> Result<Scenario, InputError> {
    let mut tree = as_run.clone();
    if let Some(task) = tree.get_mut("task").and_then(|t| t.as_table_mut()) {
        task.remove("collective_set");
        task.insert("factorisation".into(), toml::Value::String("collective".into()));
    }
    for (i, o) in set.iter().enumerate() {
        apply_override(&mut tree, o).map_err(|e| {
            InputError::invalid(
                format!("task.collective_set[{i}]"),
                format!("\"{o}\""),
                e.to_string(),
            )
        })?;
    }
    let raw: RawScenario = tree
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| InputError::Parse {
            path: "task.collective_set".to_string(),
            message: e.to_string(),
        })?;
    validate(raw, tree, pinned)
}

/// Range checks of a resolved state against the model (N, Gamma).
fn check_state(p: &Point, field: &str, st: State) -> Result<(), InputError> {
    let j = p.model.n as f64 / 2.0;
    match st {
        State::Dicke { m } => {
            let k = m + j;
            if k < 0.0 || k > 2.0 * j || k.fract() != 0.0 {
                return Err(InputError::invalid(
                    format!("{field}.m"),
                    m,
                    format!("a value in -N/2..N/2 = {}..{} in integer steps", -j, j),
                ));
            }
        }
        State::Coherent { .. } => {}
        State::Crss => {
            if p.model.gamma_coll <= 0.0 {
                return Err(InputError::invalid(
                    format!("{field}.state"),
                    "\"crss\"",
                    "a model with Gamma > 0 (the CRSS amplitude is b = -i Omega/Gamma)",
                ));
            }
        }
    }
    Ok(())
}

fn grid_size(p: &Point, field: &str, n: Option<&Num>, default: usize) -> Result<usize, InputError> {
    let v = match n {
        None => return Ok(default),
        Some(n) => p.eval(field, n)?,
    };
    if !(4.0..=4096.0).contains(&v) || v.fract() != 0.0 {
        return Err(InputError::invalid(
            field,
            v,
            "a whole number of grid points in 4..=4096",
        ));
    }
    Ok(v as usize)
}

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

fn state_spec(field: &str, s: &RawState) -> Result<StateSpec, InputError> {
    let unused = |name: &str, present: bool| -> Result<(), InputError> {
        if present {
            Err(InputError::invalid(
                format!("{field}.{name}"),
                "(given)",
                format!("no `{name}` for state = \"{}\"", s.state),
            ))
        } else {
            Ok(())
        }
    };
    let need = |name: &str, v: &Option<Num>| -> Result<Num, InputError> {
        v.clone().ok_or_else(|| {
            InputError::invalid(
                format!("{field}.{name}"),
                "(missing)",
                format!("a number or expression for state = \"{}\"", s.state),
            )
        })
    };
    match s.state.as_str() {
        "dicke" => {
            unused("theta", s.theta.is_some())?;
            unused("phi", s.phi.is_some())?;
            Ok(StateSpec::Dicke { m: need("m", &s.m)? })
        }
        "coherent" => {
            unused("m", s.m.is_some())?;
            Ok(StateSpec::Coherent {
                theta: need("theta", &s.theta)?,
                phi: s.phi.clone().unwrap_or(Num::Int(0)),
            })
        }
        "crss" => {
            unused("m", s.m.is_some())?;
            unused("theta", s.theta.is_some())?;
            unused("phi", s.phi.is_some())?;
            Ok(StateSpec::Crss)
        }
        other => Err(InputError::invalid(
            format!("{field}.state"),
            format!("\"{other}\""),
            "one of \"dicke\", \"coherent\", \"crss\"",
        )),
    }
}

/// A number > 0 (`default` when absent).
fn positive(base: &Point, field: &str, n: &Option<Num>, default: f64) -> Result<f64, InputError> {
    let v = match n {
        None => default,
        Some(n) => base.eval(field, n)?,
    };
    if v <= 0.0 {
        return Err(InputError::invalid(field, v, "a number > 0"));
    }
    Ok(v)
}

/// A whole number in 1..=max (`default` when absent).
fn count(base: &Point, field: &str, n: &Option<Num>, default: f64, max: f64) -> Result<usize, InputError> {
    let v = match n {
        None => default,
        Some(n) => base.eval(field, n)?,
    };
    if v < 1.0 || v.fract() != 0.0 || v > max {
        return Err(InputError::invalid(
            field,
            v,
            format!("a whole number in 1..={max}"),
        ));
    }
    Ok(v as usize)
}

/// Refuse every field of `names` that is present: it has no meaning for `context`
/// (e.g. `kind = "evolve"`); `hint` (may be empty) says what to do instead.
fn refuse(names: &[(&str, bool)], context: &str, hint: &str) -> Result<(), InputError> {
    for (name, present) in names {
        if *present {
            return Err(InputError::invalid(
                format!("task.{name}"),
                "(given)",
                format!("no `{name}` for {context}{hint}"),
            ));
        }
    }
    Ok(())
}

/// `task.precision`: "f32" | "f64", None when absent.
fn precision(t: &RawTask) -> Result<Option<Precision>, InputError> {
    match t.precision.as_deref() {
        None => Ok(None),
        Some("f32") => Ok(Some(Precision::F32)),
        Some("f64") => Ok(Some(Precision::F64)),
        Some(other) => Err(InputError::invalid(
            "task.precision",
            format!("\"{other}\""),
            "\"f32\" or \"f64\"",
        )),
    }
}

/// The time grid and integrator fields of `kind = "evolve"` and of a scan with
/// `mode = "evolve"` (`context` names the task in errors).
fn evolve_spec(t: &RawTask, base: &Point, context: &str) -> Result<EvolveSpec, InputError> {
    Ok(EvolveSpec {
        times: time_grid(t, base, context)?,
        rtol: positive(base, "task.rtol", &t.rtol, 1e-8)?,
        atol: positive(base, "task.atol", &t.atol, 1e-10)?,
        max_steps: count(base, "task.max_steps", &t.max_steps, 10_000_000.0, 1e12)?,
    })
}

fn task(t: &RawTask, sc: &Scenario, base: &Point) -> Result<Task, InputError> {
    let evolve_fields = [
        ("t_start", t.t_start.is_some()),
        ("t_end", t.t_end.is_some()),
        ("n_times", t.n_times.is_some()),
        ("times", t.times.is_some()),
        ("rtol", t.rtol.is_some()),
        ("atol", t.atol.is_some()),
        ("max_steps", t.max_steps.is_some()),
    ];
    let traj_fields = [
        ("ntraj", t.ntraj.is_some()),
        ("seed", t.seed.is_some()),
        ("save_trajectories", t.save_trajectories.is_some()),
        ("dt", t.dt.is_some()),
        ("cfl", t.cfl.is_some()),
    ];
    let precision_field = [("precision", t.precision.is_some())];
    let sweep_fields = [
        ("method", t.method.is_some()),
        ("layout", t.layout.is_some()),
        ("axes", t.axes.is_some()),
        ("t_min", t.t_min.is_some()),
        ("t_late", t.t_late.is_some()),
        ("heatmap", t.heatmap.is_some()),
    ];
    refuse(
        if t.kind == "sweep" { &[] } else { &sweep_fields },
        &format!("kind = \"{}\"", t.kind),
        " (sweep fields: kind = \"sweep\")",
    )?;
    let scan_fields = [
        ("mode", t.mode.is_some()),
        ("variable", t.variable.is_some()),
        ("values", t.values.is_some()),
        ("start", t.start.is_some()),
        ("stop", t.stop.is_some()),
        ("num", t.num.is_some()),
    ];
    let fixed_point_fields = [
        ("factorisation", t.factorisation.is_some()),
        ("boundary_tol", t.boundary_tol.is_some()),
        ("collective_set", t.collective_set.is_some()),
    ];
    if t.kind != "fixed_points" {
        refuse(
            &fixed_point_fields,
            &format!("kind = \"{}\"", t.kind),
            " (mean-field fields, for kind = \"fixed_points\")",
        )?;
    }
    match t.kind.as_str() {
        "evolve" => {
            let ctx = "kind = \"evolve\"";
            refuse(&scan_fields, ctx, "")?;
            refuse(&traj_fields, ctx, "")?;
            refuse(&precision_field, ctx, " (the CPU integrator runs in f64)")?;
            let EvolveSpec {
                times,
                rtol,
                atol,
                max_steps,
            } = evolve_spec(t, base, ctx)?;
            Ok(Task::Evolve {
                times,
                rtol,
                atol,
                max_steps,
            })
        }
        "trajectories" => {
            let ctx = "kind = \"trajectories\"";
            refuse(&scan_fields, ctx, "")?;
            refuse(&evolve_fields[4..], ctx, "")?; // rtol, atol, max_steps
            let times = time_grid(t, base, ctx)?;
            let ntraj = count(base, "task.ntraj", &t.ntraj, 1000.0, 1e9)?;
            let seed = match &t.seed {
                None => 0.0,
                Some(n) => base.eval("task.seed", n)?,
            };
            if !(0.0..=9.007_199_254_740_992e15).contains(&seed) || seed.fract() != 0.0 {
                return Err(InputError::invalid(
                    "task.seed",
                    seed,
                    "a whole number in 0..=2^53",
                ));
            }
            let save = match &t.save_trajectories {
                None => 0,
                Some(n) => {
                    let v = base.eval("task.save_trajectories", n)?;
                    if v < 0.0 || v.fract() != 0.0 || v > (ntraj as f64).min(10_000.0) {
                        return Err(InputError::invalid(
                            "task.save_trajectories",
                            v,
                            format!("a whole number in 0..={}", ntraj.min(10_000)),
                        ));
                    }
                    v as usize
                }
            };
            let opt_pos = |field: &str, n: &Option<Num>| -> Result<Option<f64>, InputError> {
                n.as_ref().map(|_| positive(base, field, n, 1.0)).transpose()
            };
            Ok(Task::Trajectories {
                times,
                ntraj: ntraj as u64,
                seed: seed as u64,
                save_trajectories: save,
                f64: precision(t)? == Some(Precision::F64),
                dt: opt_pos("task.dt", &t.dt)?,
                cfl: opt_pos("task.cfl", &t.cfl)?,
            })
        }
        "steady_state" => {
            let ctx = "kind = \"steady_state\"";
            refuse(&traj_fields, ctx, "")?;
            refuse(&precision_field, ctx, "")?;
            refuse(&scan_fields, ctx, "")?;
            refuse(&evolve_fields, ctx, "")?;
            Ok(Task::SteadyState)
        }
        "scan" => {
            refuse(&traj_fields, "kind = \"scan\"", "")?;
            let mode = match t.mode.as_deref() {
                None | Some("steady_state") => {
                    let hint = " (set mode = \"evolve\" for a scan of time evolutions)";
                    let ctx = "kind = \"scan\" with mode = \"steady_state\"";
                    refuse(&evolve_fields, ctx, hint)?;
                    refuse(&precision_field, ctx, hint)?;
                    ScanMode::SteadyState
                }
                Some("evolve") => {
                    let spec = evolve_spec(t, base, "kind = \"scan\" with mode = \"evolve\"")?;
                    let precision = precision(t)?;
                    if precision == Some(Precision::F32) && spec.rtol < F32_MIN_RTOL {
                        return Err(InputError::invalid(
                            "task.rtol",
                            spec.rtol,
                            format!(
                                "rtol >= {F32_MIN_RTOL:e} with precision = \"f32\" (the f32 GPU \
                                 kernel computes its error estimate in f32, so a tighter rtol \
                                 measures rounding); use precision = \"f64\" for tighter tolerances"
                            ),
                        ));
                    }
                    ScanMode::Evolve { spec, precision }
                }
                Some(other) => {
                    return Err(InputError::invalid(
                        "task.mode",
                        format!("\"{other}\""),
                        "\"steady_state\" (the default: one steady state per point) or \"evolve\" \
                         (the evolution from [initial] at each point)",
                    ));
                }
            };
            let (variable, values) = scan_axis(t, sc, base, "kind = \"scan\"")?;
            Ok(Task::Scan {
                variable,
                values,
                mode,
            })
        }
        "fixed_points" => {
            let ctx = "kind = \"fixed_points\"";
            refuse(&traj_fields, ctx, "")?;
            refuse(&precision_field, ctx, "")?;
            // t_start, n_times, times: only the end point of a run is kept.
            refuse(
                &evolve_fields[..4]
                    .iter()
                    .filter(|f| f.0 != "t_end")
                    .copied()
                    .collect::<Vec<_>>(),
                ctx,
                " (a run from [initial] keeps only its end point: give t_end)",
            )?;
            refuse(&scan_fields[..1], ctx, "")?; // mode
            let integrate = match &t.t_end {
                None => {
                    refuse(
                        &evolve_fields[4..],
                        ctx,
                        " without t_end (they set the run from [initial])",
                    )?;
                    None
                }
                Some(_) => {
                    let t_end = positive(base, "task.t_end", &t.t_end, 1.0)?;
                    Some(EvolveSpec {
                        times: vec![0.0, t_end],
                        rtol: positive(base, "task.rtol", &t.rtol, 1e-10)?,
                        atol: positive(base, "task.atol", &t.atol, 1e-12)?,
                        max_steps: count(base, "task.max_steps", &t.max_steps, 10_000_000.0, 1e12)?,
                    })
                }
            };
            use crate::solver::meanfield::Factorisation;
            let factorisations = match t.factorisation.as_deref() {
                None | Some("individual") => vec![Factorisation::Individual],
                Some("collective") => vec![Factorisation::Collective],
                Some("both") => vec![Factorisation::Individual, Factorisation::Collective],
                Some(other) => {
                    return Err(InputError::invalid(
                        "task.factorisation",
                        format!("\"{other}\""),
                        "\"individual\" (the default), \"collective\" or \"both\"",
                    ));
                }
            };
            let (variable, values) = scan_axis(t, sc, base, ctx)?;
            let span = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let boundary_tol = positive(
                base,
                "task.boundary_tol",
                &t.boundary_tol,
                1e-9 * span.max(1e-300),
            )?;
            let collective_set = t.collective_set.clone().unwrap_or_default();
            if !collective_set.is_empty() && !factorisations.contains(&Factorisation::Collective) {
                return Err(InputError::invalid(
                    "task.collective_set",
                    format!("{collective_set:?}"),
                    "no `collective_set` unless factorisation = \"collective\" or \"both\" (it changes the model of the collective curve)",
                ));
            }
            Ok(Task::FixedPoints {
                variable,
                values,
                factorisations,
                boundary_tol,
                integrate,
                collective: None,
                collective_set,
            })
        }
        "sweep" => {
            let ctx = "kind = \"sweep\"";
            refuse(&scan_fields, ctx, " (its axes are [[task.axes]] tables)")?;
            refuse(&traj_fields, ctx, "")?;
            Ok(Task::Sweep(sweep_spec(t, sc, base)?))
        }
        other => Err(InputError::invalid(
            "task.kind",
            format!("\"{other}\""),
            "one of \"evolve\", \"trajectories\", \"steady_state\", \"scan\", \"fixed_points\", \"sweep\"",
        )),
    }
}

/// The scanned variable and its values (`variable` with `values = [...]` or `start`, `stop`,
/// `num`), shared by `kind = "scan"` and `kind = "fixed_points"` (`context` names the task).
fn scan_axis(
    t: &RawTask,
    sc: &Scenario,
    base: &Point,
    context: &str,
) -> Result<(String, Vec<f64>), InputError> {
    let variable = axis_variable(sc, "task.variable", &t.variable)?;
    if variable == "N" {
        return Err(InputError::invalid(
            "task.variable",
            "\"N\"",
            "a continuous parameter (scans over N are not supported: run one scenario per N)",
        ));
    }
    let values = axis_values(base, "task", context, &t.values, &t.start, &t.stop, &t.num)?;
    Ok((variable, values))
}

/// The `variable` field of a scan or sweep axis: a variable of [variables] or a model parameter.
fn axis_variable(sc: &Scenario, field: &str, v: &Option<String>) -> Result<String, InputError> {
    let variable = v.clone().ok_or_else(|| {
        InputError::invalid(
            field,
            "(missing)",
            "the name of the variable or model parameter to scan",
        )
    })?;
    if !sc.defs.contains_key(&variable) && !PARAM_NAMES.contains(&variable.as_str()) {
        return Err(InputError::invalid(
            field,
            format!("\"{variable}\""),
            format!(
                "a variable of [variables] ({}) or a model parameter",
                sc.variable_names.join(", ")
            ),
        ));
    }
    Ok(variable)
}

/// The values of a scan or sweep axis: `values = [..]` or `start`, `stop`, `num` (evenly
/// spaced, both ends included); `prefix` is the table (`task`, `task.axes[0]`), `what` names
/// the task in errors.
fn axis_values(
    base: &Point,
    prefix: &str,
    what: &str,
    values: &Option<Vec<Num>>,
    start: &Option<Num>,
    stop: &Option<Num>,
    num: &Option<Num>,
) -> Result<Vec<f64>, InputError> {
    let out: Vec<f64> = if let Some(list) = values {
        if start.is_some() || stop.is_some() || num.is_some() {
            return Err(InputError::invalid(
                format!("{prefix}.values"),
                "(given)",
                "either `values` or `start`/`stop`/`num`, not both",
            ));
        }
        list.iter()
            .enumerate()
            .map(|(i, n)| base.eval(&format!("{prefix}.values[{i}]"), n))
            .collect::<Result<_, _>>()?
    } else {
        let need = |name: &str, v: &Option<Num>| -> Result<f64, InputError> {
            match v {
                None => Err(InputError::invalid(
                    format!("{prefix}.{name}"),
                    "(missing)",
                    format!("`values = [...]` or `start`, `stop` and `num` for {what}"),
                )),
                Some(n) => base.eval(&format!("{prefix}.{name}"), n),
            }
        };
        let a = need("start", start)?;
        let b = need("stop", stop)?;
        let n = count(base, &format!("{prefix}.num"), num, 0.0, 1e6)?;
        if n == 1 {
            vec![a]
        } else {
            (0..n).map(|i| a + (b - a) * i as f64 / (n - 1) as f64).collect()
        }
    };
    if out.is_empty() {
        return Err(InputError::invalid(
            format!("{prefix}.values"),
            "[]",
            "at least one value",
        ));
    }
    Ok(out)
}

/// Most points a sweep accepts (the per-point results stream to disk; the heat map and the
/// summary hold a few numbers per point).
pub const MAX_SWEEP_POINTS: f64 = 1e8;

/// `kind = "sweep"` (validated; `t` already checked for fields of other kinds).
fn sweep_spec(t: &RawTask, sc: &Scenario, base: &Point) -> Result<SweepSpec, InputError> {
    let what = "kind = \"sweep\"";
    let method = t.method.clone().unwrap_or_else(|| "cumulant".into());
    if method != "cumulant" {
        return Err(InputError::invalid(
            "task.method",
            format!("\"{method}\""),
            "\"cumulant\" (the second-order cumulant expansion; the only sweep method in this version)",
        ));
    }
    let grid = match t.layout.as_deref() {
        None | Some("grid") => true,
        Some("list") => false,
        Some(other) => {
            return Err(InputError::invalid(
                "task.layout",
                format!("\"{other}\""),
                "\"grid\" (every combination of the axes' values) or \"list\" (the i-th values together)",
            ));
        }
    };
    let raw_axes = t.axes.as_deref().unwrap_or(&[]);
    if raw_axes.is_empty() || raw_axes.len() > 2 {
        return Err(InputError::invalid(
            "task.axes",
            format!("{} axes", raw_axes.len()),
            "one or two [[task.axes]] tables, each with `variable` and `values` or `start`/`stop`/`num`",
        ));
    }
    let mut axes = Vec::new();
    for (k, a) in raw_axes.iter().enumerate() {
        let prefix = format!("task.axes[{k}]");
        let variable = axis_variable(sc, &format!("{prefix}.variable"), &a.variable)?;
        if axes.iter().any(|b: &SweepAxis| b.variable == variable) {
            return Err(InputError::invalid(
                format!("{prefix}.variable"),
                format!("\"{variable}\""),
                "a different variable on each axis",
            ));
        }
        let values = axis_values(base, &prefix, what, &a.values, &a.start, &a.stop, &a.num)?;
        if variable == "N"
            && let Some(v) = values
                .iter()
                .find(|v| **v < 1.0 || v.fract() != 0.0 || **v > crate::model::MAX_N as f64)
        {
            return Err(InputError::invalid(
                format!("{prefix}.values"),
                v,
                format!(
                    "whole numbers of atoms 1 <= N <= {} on an N axis",
                    crate::model::MAX_N
                ),
            ));
        }
        axes.push(SweepAxis { variable, values });
    }
    if !grid && axes.iter().any(|a| a.values.len() != axes[0].values.len()) {
        return Err(InputError::invalid(
            "task.layout",
            "\"list\"",
            format!(
                "axes of equal length for layout = \"list\" (lengths {})",
                axes.iter()
                    .map(|a| a.values.len().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let npoints: f64 = if grid {
        axes.iter().map(|a| a.values.len() as f64).product()
    } else {
        axes[0].values.len() as f64
    };
    if npoints > MAX_SWEEP_POINTS {
        return Err(InputError::invalid(
            "task.axes",
            format!("{npoints} points"),
            format!("at most {MAX_SWEEP_POINTS:e} points"),
        ));
    }
    if t.times.is_some() {
        return Err(InputError::invalid(
            "task.times",
            "(given)",
            "an evenly spaced save grid `t_start`, `t_end`, `n_times` for kind = \"sweep\" (the \
             per-point reductions run on a uniform grid)",
        ));
    }
    let times = time_grid(t, base, what)?;
    let (t0, t_end) = (times[0], times[times.len() - 1]);
    let opt_time = |field: &str, n: &Option<Num>, default: f64| -> Result<f64, InputError> {
        let v = match n {
            None => return Ok(default),
            Some(n) => base.eval(field, n)?,
        };
        if !(t0..=t_end).contains(&v) {
            return Err(InputError::invalid(
                field,
                v,
                format!("a time in [t_start, t_end] = [{t0}, {t_end}]"),
            ));
        }
        Ok(v)
    };
    let t_min = opt_time("task.t_min", &t.t_min, t0)?;
    let t_late = opt_time("task.t_late", &t.t_late, t0 + 0.9 * (t_end - t0))?;
    let heatmap = t.heatmap.clone().unwrap_or_else(|| "xi2_min_dB".into());
    if !SWEEP_QUANTITIES.contains(&heatmap.as_str()) {
        return Err(InputError::invalid(
            "task.heatmap",
            format!("\"{heatmap}\""),
            format!("one of the sweep columns {}", SWEEP_QUANTITIES.join(", ")),
        ));
    }
    let rtol = positive(base, "task.rtol", &t.rtol, 1e-8)?;
    let atol = positive(base, "task.atol", &t.atol, 1e-10)?;
    let precision = precision(t)?;
    if precision == Some(Precision::F32) {
        for (field, value, floor, what) in [
            ("task.rtol", rtol, F32_MIN_RTOL, "rtol"),
            ("task.atol", atol, F32_MIN_ATOL, "atol"),
        ] {
            if value < floor {
                return Err(InputError::invalid(
                    field,
                    value,
                    format!(
                        "{what} >= {floor:e} with precision = \"f32\" (the f32 GPU kernel computes \
                         its error estimate in f32, so a tighter tolerance measures rounding; \
                         the defaults are rtol = 1e-8, atol = 1e-10); use precision = \"f64\" \
                         for tighter tolerances"
                    ),
                ));
            }
        }
    }
    Ok(SweepSpec {
        axes,
        grid,
        method,
        t0,
        t_end,
        nsave: times.len(),
        t_min,
        t_late,
        rtol,
        atol,
        max_steps: count(base, "task.max_steps", &t.max_steps, 10_000_000.0, 1e12)?,
        heatmap,
        precision,
    })
}

/// The save times of a time evolution (`context`, e.g. `kind = "evolve"`, names the task in
/// errors): `times = [..]` or `t_start`, `t_end`, `n_times`.
fn time_grid(t: &RawTask, base: &Point, context: &str) -> Result<Vec<f64>, InputError> {
    let times: Vec<f64> = if let Some(list) = &t.times {
        if t.t_start.is_some() || t.t_end.is_some() || t.n_times.is_some() {
            return Err(InputError::invalid(
                "task.times",
                "(given)",
                "either `times` or `t_start`/`t_end`/`n_times`, not both",
            ));
        }
        list.iter()
            .enumerate()
            .map(|(i, n)| base.eval(&format!("task.times[{i}]"), n))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        let t0 = match &t.t_start {
            None => 0.0,
            Some(n) => base.eval("task.t_start", n)?,
        };
        let t1 = match &t.t_end {
            None => {
                return Err(InputError::invalid(
                    "task.t_end",
                    "(missing)",
                    format!("the final time (a number or expression) for {context}"),
                ));
            }
            Some(n) => base.eval("task.t_end", n)?,
        };
        if t1 <= t0 {
            return Err(InputError::invalid(
                "task.t_end",
                t1,
                format!("a time > t_start = {t0}"),
            ));
        }
        let n = count(base, "task.n_times", &t.n_times, 101.0, 1e6)?;
        if n < 2 {
            return Err(InputError::invalid("task.n_times", n, "at least 2 save points"));
        }
        (0..n)
            .map(|i| t0 + (t1 - t0) * i as f64 / (n - 1) as f64)
            .collect()
    };
    if times.is_empty() || times.windows(2).any(|w| w[1] <= w[0]) {
        return Err(InputError::invalid(
            "task.times",
            format!("{times:?}"),
            "a non-empty, strictly increasing list of times",
        ));
    }
    Ok(times)
}

impl Scenario {
    /// Evaluate every model parameter and variable with the given pinned values (a scan
    /// variable's value), in dependency order.
    pub fn point(&self, pins: &[(&str, f64)]) -> Result<Point, InputError> {
        let mut known: BTreeMap<String, f64> = BTreeMap::new();
        let mut pending: Vec<(String, Expr)> = Vec::new();
        for (k, v) in &self.defs {
            if let Some((_, pv)) = pins.iter().find(|(n, _)| n == k) {
                known.insert(k.clone(), *pv);
                continue;
            }
            let field = self.field_name(k);
            match v {
                Num::Int(i) => {
                    known.insert(k.clone(), *i as f64);
                }
                Num::Float(f) => {
                    if !f.is_finite() {
                        return Err(InputError::invalid(field, f, "a finite number"));
                    }
                    known.insert(k.clone(), *f);
                }
                Num::Text(t) => {
                    pending.push((k.clone(), Expr::parse(&field, t)?));
                }
            }
        }
        for (n, v) in pins {
            known.entry(n.to_string()).or_insert(*v);
        }
        // Model parameters not given default to 0 and may be referenced.
        for p in PARAM_NAMES {
            if p != "N" && !self.defs.contains_key(p) {
                known.entry(p.to_string()).or_insert(0.0);
            }
        }
        // Unknown names are reported before cycles.
        for (k, e) in &pending {
            for id in e.identifiers() {
                if !known.contains_key(&id) && !pending.iter().any(|(n, _)| *n == id) {
                    return Err(InputError::Expression {
                        field: self.field_name(k),
                        text: e.text().to_string(),
                        message: format!(
                            "unknown name `{id}` (known: model parameters and variables {})",
                            self.variable_names.join(", ")
                        ),
                    });
                }
            }
        }
        while !pending.is_empty() {
            let ready = pending
                .iter()
                .position(|(_, e)| e.identifiers().iter().all(|id| known.contains_key(id)));
            let Some(i) = ready else {
                let (k, e) = &pending[0];
                let names: Vec<&str> = pending.iter().map(|(n, _)| n.as_str()).collect();
                return Err(InputError::Expression {
                    field: self.field_name(k),
                    text: e.text().to_string(),
                    message: format!("circular definitions among {}", names.join(", ")),
                });
            };
            let (k, e) = pending.swap_remove(i);
            let mut scope = Scope::new();
            for (n, v) in &known {
                scope.set(n, *v);
            }
            let v = e.eval(&self.field_name(&k), &scope)?;
            known.insert(k, v);
        }
        let model = Model::from_values(PARAM_NAMES.iter().filter_map(|p| known.get(*p).map(|v| (*p, *v))))?;
        Ok(Point { model, values: known })
    }

    fn field_name(&self, k: &str) -> String {
        if PARAM_NAMES.contains(&k) {
            format!("model.{k}")
        } else {
            format!("variables.{k}")
        }
    }

    /// The points this scenario runs: one per scan value, or the single base point.
    pub fn points(&self) -> Result<Vec<Point>, InputError> {
        match &self.task {
            Task::Scan { variable, values, .. } | Task::FixedPoints { variable, values, .. } => values
                .iter()
                .map(|v| self.point(&[(variable.as_str(), *v)]))
                .collect(),
            _ => Ok(vec![self.point(&[])?]),
        }
    }

    /// For a scan: the model parameters whose value changes across the scan (in
    /// PARAM_NAMES order), written as columns after the scanned variable.
    pub fn varying_parameters(&self) -> Result<Vec<&'static str>, InputError> {
        let pts = self.points()?;
        Ok(PARAM_NAMES
            .iter()
            .copied()
            .filter(|p| {
                let first = pts[0].model.get(p);
                pts.iter().any(|q| q.model.get(p) != first)
            })
            .collect())
    }
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
    fn cycles_and_unknown_names_are_errors() {
        let e = parse(BASE, "t", &["x=Omega/Omega_c".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("circular"), "{e}");
        let e = parse(BASE, "t", &["Omega=y*2".into()]).unwrap_err().to_string();
        assert!(e.contains("model.Omega") && e.contains("`y`"), "{e}");
    }
}
