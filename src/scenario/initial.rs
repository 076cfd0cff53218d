//! States named in a scenario: `[initial]` (where an evolution starts: pure states, and the
//! mixed `thermal`, `steady_state` and `{ from = "DIR" }`, the final state an earlier run saved) and
//! `[observables.fidelity]` (the reference state). A table is parsed into a [`StateSpec`]
//! (numbers still definitions), resolved at a point into a [`State`] (the state layer's
//! `PureSpec`), which checks itself against the model and builds its amplitudes.
//!
//! `[initial]` is validated once, at load: present for every task that evolves from it
//! ([`Task::needs_initial`]), refused by `kind = "fixed_points"` without `t_end`, and
//! range-checked at every point. A task then takes its start in one call:
//! [`Scenario::initial_state`] (amplitudes) or [`Scenario::initial_spec`] (the resolved spec).

use super::raw::{RawState, RawStateName};
use super::{Num, Point, ScanMode, Scenario, State, Task};
use crate::c64;
use crate::error::InputError;

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
    /// The mixed state exp(-beta Jz)/Z in j = N/2 (seed 004's steady state at w/Gamma = e^-beta).
    Thermal { beta: Num },
    /// The steady state of the model with some parameters overridden (mixed in general).
    SteadyState { overrides: Vec<(String, Num)> },
    /// The final state a previous run saved in `dir` (`state = { from = "DIR" }`; the path as
    /// written, relative to the current directory).
    From { dir: String },
}

impl StateSpec {
    /// A mixed state (thermal, steady_state, from): the exact solvers, mean field and
    /// cumulants start from it; trajectories, fidelity references and the GPU batch do not.
    pub fn is_mixed(&self) -> bool {
        matches!(
            self,
            StateSpec::Thermal { .. } | StateSpec::SteadyState { .. } | StateSpec::From { .. }
        )
    }

    /// The `state` value as written (`"thermal"`, `{ from = "DIR" }`, ...).
    fn shown(&self) -> String {
        match self {
            StateSpec::Dicke { .. } => "\"dicke\"".into(),
            StateSpec::Coherent { .. } => "\"coherent\"".into(),
            StateSpec::Crss => "\"crss\"".into(),
            StateSpec::Thermal { .. } => "\"thermal\"".into(),
            StateSpec::SteadyState { .. } => "\"steady_state\"".into(),
            StateSpec::From { dir } => format!("{{ from = \"{dir}\" }}"),
        }
    }
}

/// A mixed initial state resolved at a point (built by the task layer, which has the solvers).
#[derive(Debug, Clone, PartialEq)]
pub enum Mixed {
    /// exp(-beta Jz)/Z in j = N/2.
    Thermal { beta: f64 },
    /// The steady state of this model (the point's model with the overrides applied).
    SteadyState(crate::model::Model),
    /// The final state saved in this directory (as written; read by the task layer).
    From { dir: String },
}

impl Task {
    /// The task that evolves from `[initial]` (named as in errors, e.g. `kind = "evolve"`), or
    /// None when this task does not read it.
    pub fn needs_initial(&self) -> Option<&'static str> {
        match self {
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
            Task::Correlation(spec) if spec.at.is_some() => Some("kind = \"correlation\" with a time `at`"),
            Task::Scan { .. }
            | Task::SteadyState
            | Task::FixedPoints { .. }
            | Task::Spectrum { .. }
            | Task::Metastable
            | Task::Correlation(_)
            | Task::Fisher(_) => None,
        }
    }
}

impl Point {
    /// Resolve a mixed state specification at this point: None for a pure one.
    pub fn mixed(&self, field: &str, spec: &StateSpec) -> Result<Option<Mixed>, InputError> {
        Ok(match spec {
            StateSpec::Thermal { beta } => Some(Mixed::Thermal {
                beta: self.eval(&format!("{field}.beta"), beta)?,
            }),
            StateSpec::SteadyState { overrides } => {
                let mut values = self.model.values();
                for (name, n) in overrides {
                    let v = self.eval(&format!("{field}.{name}"), n)?;
                    values
                        .iter_mut()
                        .filter(|(k, _)| k == name)
                        .for_each(|(_, x)| *x = v);
                }
                let m = crate::model::Model::from_values(values).map_err(|e| {
                    InputError::invalid(format!("{field}.state"), "\"steady_state\"", e.to_string())
                })?;
                if let Some(why) = m.no_unique_steady_state() {
                    return Err(InputError::invalid(
                        format!("{field}.state"),
                        "\"steady_state\"",
                        format!("a model with a unique steady state: {why}"),
                    ));
                }
                Some(Mixed::SteadyState(m))
            }
            StateSpec::From { dir } => Some(Mixed::From { dir: dir.clone() }),
            _ => None,
        })
    }

    /// Resolve a state specification at this point.
    pub fn state(&self, field: &str, spec: &StateSpec) -> Result<State, InputError> {
        Ok(match spec {
            StateSpec::Thermal { .. } | StateSpec::SteadyState { .. } | StateSpec::From { .. } => {
                return Err(InputError::invalid(
                    format!("{field}.state"),
                    spec.shown(),
                    "a pure state (\"dicke\", \"coherent\", \"crss\") here: mixed initial states \
                     (thermal, steady_state, from) start kind = \"evolve\" (every method but \
                     trajectories) and scans of evolutions",
                ));
            }
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

    /// Resolve a state specification at this point and build its amplitudes for this point's
    /// model (`field` names the table in errors).
    pub fn pure_state(&self, field: &str, spec: &StateSpec) -> Result<Vec<c64>, InputError> {
        self.state(field, spec)?.amplitudes(&self.model, field)
    }
}

impl Scenario {
    /// The `[initial]` specification, resolved at `p`. Validation guarantees it for every task
    /// with [`Task::needs_initial`]; otherwise the error is the one validation gives.
    pub fn initial_spec(&self, p: &Point) -> Result<State, InputError> {
        p.state("initial", self.initial_table()?)
    }

    /// The initial pure state at `p` (amplitudes for `p`'s model): where an evolution starts.
    pub fn initial_state(&self, p: &Point) -> Result<Vec<c64>, InputError> {
        p.pure_state("initial", self.initial_table()?)
    }

    /// The `[observables.fidelity]` reference state at `p`, when the scenario names one.
    pub fn reference_state(&self, p: &Point) -> Result<Option<Vec<c64>>, InputError> {
        self.observables
            .fidelity
            .as_ref()
            .map(|spec| p.pure_state("observables.fidelity", spec))
            .transpose()
    }

    fn initial_table(&self) -> Result<&StateSpec, InputError> {
        self.initial
            .as_ref()
            .ok_or_else(|| missing_initial(self.task.needs_initial().unwrap_or("this task")))
    }
}

/// `[initial]` is absent but `what` (e.g. `kind = "evolve"`) evolves from it.
pub(super) fn missing_initial(what: &str) -> InputError {
    InputError::invalid(
        "initial",
        "(missing)",
        format!("an [initial] table (state = \"dicke\" | \"coherent\" | \"crss\") for {what}"),
    )
}

/// Parse a state table (`field` = `initial` or `observables.fidelity`): the fields its `state`
/// takes, no others.
pub(super) fn state_spec(field: &str, s: &RawState) -> Result<StateSpec, InputError> {
    let unused = |name: &str, present: bool| -> Result<(), InputError> {
        if present {
            Err(InputError::invalid(
                format!("{field}.{name}"),
                "(given)",
                format!("no `{name}` for state = {}", s.state),
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
                format!("a number or expression for state = {}", s.state),
            )
        })
    };
    let name = match &s.state {
        RawStateName::Name(name) => name.as_str(),
        RawStateName::From(dir) => {
            for (k, present) in [
                ("m", s.m.is_some()),
                ("theta", s.theta.is_some()),
                ("phi", s.phi.is_some()),
                ("beta", s.beta.is_some()),
            ] {
                unused(k, present)?;
            }
            if let Some(k) = s.rest.keys().next() {
                unused(k, true)?;
            }
            if dir.trim().is_empty() {
                return Err(InputError::invalid(
                    format!("{field}.state.from"),
                    "\"\"",
                    "the output directory of an earlier run (with [output] final_state = true)",
                ));
            }
            return Ok(StateSpec::From { dir: dir.clone() });
        }
    };
    match name {
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
        "thermal" => {
            unused("m", s.m.is_some())?;
            unused("theta", s.theta.is_some())?;
            unused("phi", s.phi.is_some())?;
            Ok(StateSpec::Thermal {
                beta: need("beta", &s.beta)?,
            })
        }
        "steady_state" => steady_state_spec(field, s),
        other => Err(InputError::invalid(
            format!("{field}.state"),
            format!("\"{other}\""),
            "one of \"dicke\", \"coherent\", \"crss\", \"thermal\", \"steady_state\", or { from = \"DIR\" }",
        )),
    }
    .and_then(|spec| match s.rest.keys().next() {
        // Keys beyond the state's own: only `steady_state` takes them (parameter overrides).
        Some(k) if !matches!(spec, StateSpec::SteadyState { .. }) => Err(InputError::invalid(
            format!("{field}.{k}"),
            "(given)",
            format!("no `{k}` for state = {}", s.state),
        )),
        _ => Ok(spec),
    })
}

/// `state = "steady_state"` with model-parameter overrides as further keys (`w = 0.8`; `phi`
/// is the drive phase here). N cannot be overridden (the Hilbert space is the run's).
fn steady_state_spec(field: &str, s: &RawState) -> Result<StateSpec, InputError> {
    if s.m.is_some() || s.theta.is_some() || s.beta.is_some() {
        let k = if s.m.is_some() {
            "m"
        } else if s.theta.is_some() {
            "theta"
        } else {
            "beta"
        };
        return Err(InputError::invalid(
            format!("{field}.{k}"),
            "(given)",
            format!("no `{k}` for state = \"steady_state\" (further keys are model parameters)"),
        ));
    }
    let mut overrides: Vec<(String, Num)> = s.phi.iter().map(|v| ("phi".to_string(), v.clone())).collect();
    for (k, v) in &s.rest {
        if k == "N" || !crate::model::PARAM_NAMES.contains(&k.as_str()) {
            return Err(InputError::invalid(
                format!("{field}.{k}"),
                v.to_toml_string(),
                "a model parameter other than N (the steady state of the model with it overridden)",
            ));
        }
        overrides.push((k.clone(), v.clone()));
    }
    Ok(StateSpec::SteadyState { overrides })
}

/// `kind = "fixed_points"` reads `[initial]` exactly when it has `t_end` (`integrate`).
pub(super) fn check_fixed_points_initial(sc: &Scenario) -> Result<(), InputError> {
    let Task::FixedPoints { integrate, .. } = &sc.task else {
        return Ok(());
    };
    match (integrate, &sc.initial) {
        (None, Some(_)) => Err(InputError::invalid(
            "initial",
            "(given)",
            "no [initial] table for kind = \"fixed_points\" without task.t_end (fixed points do \
             not depend on an initial state; with t_end each point is also integrated from it)",
        )),
        (Some(_), None) => Err(InputError::invalid(
            "task.t_end",
            "(given)",
            "an [initial] table to integrate from (or no t_end) for kind = \"fixed_points\"",
        )),
        _ => Ok(()),
    }
}

/// `[output] final_state = true` only where there is one final state to save: kind = "evolve"
/// (every method it runs: the exact solvers' density matrix, mean field's and cumulants'
/// moments).
pub(super) fn check_final_state(sc: &Scenario) -> Result<(), InputError> {
    if sc.final_state && !matches!(sc.task, Task::Evolve { .. }) {
        return Err(InputError::invalid(
            "output.final_state",
            "true",
            format!(
                "final_state = true only for kind = \"evolve\" (one evolution, one final state to \
                 save); this task is kind = \"{}\"",
                sc.task.kind()
            ),
        ));
    }
    Ok(())
}

/// `[initial]` present for every task that evolves from it, and the initial and reference
/// states in range at every point (cheap: no amplitudes are built).
pub(super) fn check_states(sc: &Scenario) -> Result<(), InputError> {
    let evolves = sc.task.needs_initial();
    if let (Some(what), None) = (evolves, &sc.initial) {
        return Err(missing_initial(what));
    }
    for p in sc.points()? {
        if let (Some(spec), Some(_)) = (&sc.initial, evolves)
            && p.mixed("initial", spec)?.is_none()
        {
            p.state("initial", spec)?.check(&p.model, "initial")?;
        }
        if let Some(spec) = &sc.observables.fidelity {
            p.state("observables.fidelity", spec)?
                .check(&p.model, "observables.fidelity")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;
    use crate::state::pure;

    const EVOLVE: &str = r#"
[model]
N = 10
Gamma = 1
Omega = 2
[initial]
state = "dicke"
m = "-N/2 + 1"
[observables]
columns = ["fidelity"]
fidelity = { state = "coherent", theta = "pi/2" }
[task]
kind = "evolve"
t_end = 1.0
"#;

    #[test]
    fn the_initial_state_of_a_point_in_one_call() {
        let sc = parse(EVOLVE, "t", &[]).unwrap();
        let p = sc.point(&[]).unwrap();
        assert_eq!(sc.task.needs_initial(), Some("kind = \"evolve\""));
        assert_eq!(sc.initial_spec(&p).unwrap(), State::Dicke { m: -4.0 });
        assert_eq!(sc.initial_state(&p).unwrap(), pure::dicke(10, -4.0).unwrap());
        let reference = sc.reference_state(&p).unwrap().unwrap();
        assert_eq!(reference, pure::coherent(10, std::f64::consts::FRAC_PI_2, 0.0));
    }

    #[test]
    fn a_task_without_initial_gets_the_validation_error() {
        let text = EVOLVE
            .replace("[initial]\nstate = \"dicke\"\nm = \"-N/2 + 1\"\n", "")
            .replace("kind = \"evolve\"\nt_end = 1.0", "kind = \"steady_state\"");
        let sc = parse(&text, "t", &[]).unwrap();
        assert_eq!(sc.task.needs_initial(), None);
        let p = sc.point(&[]).unwrap();
        let e = sc.initial_state(&p).unwrap_err().to_string();
        assert!(
            e.contains("`initial`") && e.contains("(missing)") && e.contains("[initial] table"),
            "{e}"
        );
        // An evolution without [initial] is refused at load, with the same message.
        let e = parse(
            &text.replace("kind = \"steady_state\"", "kind = \"evolve\"\nt_end = 1"),
            "t",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, missing_initial("kind = \"evolve\"").to_string());
    }
}
