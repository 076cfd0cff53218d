//! `task.method`: the physics method of an `evolve`, `steady_state` or `scan` task (task and
//! method are orthogonal; `crate::solver::Method`), with `task.factorisation` for mean field.
//!
//! `"exact"` (the default), `"meanfield"`, `"cumulant"`, and for `kind = "evolve"`
//! `"trajectories"` (parsed as the trajectory task by `super::task`). The approximate methods
//! carry moments, not a density matrix: the columns that need one (`purity`, `lambda_max`,
//! `fidelity`), P_m and the Husimi grid are refused for them here, as is the GPU kernel's
//! `precision` (they run on the CPU). `kind = "sweep"` reads `method` itself and
//! `kind = "fixed_points"` its `factorisation`.

use super::raw::RawTask;
use super::{ScanMode, Scenario, Task};
use crate::error::InputError;
use crate::solver::Method;
use crate::solver::meanfield::Factorisation;

/// The validated method of `[task]` (after the task itself, whose kind it checks against).
pub(super) fn method(t: &RawTask, sc: &Scenario) -> Result<Method, InputError> {
    if matches!(
        sc.task,
        Task::Sweep(_)
            | Task::FixedPoints { .. }
            | Task::Spectrum { .. }
            | Task::Metastable
            | Task::Correlation(_)
            | Task::Fisher(_)
    ) {
        return Ok(Method::Exact);
    }
    let method = match t.method.as_deref() {
        None | Some("exact") => Method::Exact,
        Some("meanfield") => Method::MeanField(factorisation(t)?),
        Some("cumulant") => Method::Cumulant,
        Some("trajectories") => Method::Trajectories,
        Some(other) => {
            return Err(InputError::invalid(
                "task.method",
                format!("\"{other}\""),
                "one of \"exact\", \"meanfield\", \"cumulant\", \"trajectories\" (kind = \"evolve\" only)",
            ));
        }
    };
    if t.factorisation.is_some() && !matches!(method, Method::MeanField(_)) {
        return Err(InputError::invalid(
            "task.factorisation",
            "(given)",
            "no `factorisation` unless method = \"meanfield\" (or kind = \"fixed_points\", which scans mean-field fixed points)",
        ));
    }
    match (&sc.task, method) {
        (Task::Trajectories { .. }, Method::Exact | Method::Trajectories) => Ok(Method::Trajectories),
        (Task::Trajectories { .. }, _) => Err(InputError::invalid(
            "task.method",
            format!("\"{}\"", method.name()),
            "no method for kind = \"trajectories\" (it is the trajectory method)",
        )),
        (_, Method::Trajectories) => Err(InputError::invalid(
            "task.method",
            "\"trajectories\"",
            format!(
                "\"exact\", \"meanfield\" or \"cumulant\" for kind = \"{}\" (trajectory ensembles: kind = \"evolve\" or \"trajectories\")",
                t.kind
            ),
        )),
        (_, Method::Exact) => Ok(method),
        _ => approximate(t, sc, method),
    }
}

/// `task.factorisation` of mean field: `"individual"` (default) or `"collective"`.
fn factorisation(t: &RawTask) -> Result<Factorisation, InputError> {
    match t.factorisation.as_deref() {
        None | Some("individual") => Ok(Factorisation::Individual),
        Some("collective") => Ok(Factorisation::Collective),
        Some(other) => Err(InputError::invalid(
            "task.factorisation",
            format!("\"{other}\""),
            "\"individual\" or \"collective\" for method = \"meanfield\"",
        )),
    }
}

/// What the approximate methods cannot write (module doc), and what they need.
fn approximate(t: &RawTask, sc: &Scenario, method: Method) -> Result<Method, InputError> {
    let why = format!(
        "method = \"{}\" carries moments, not a density matrix (method = \"exact\" writes it)",
        method.name()
    );
    let obs = &sc.observables;
    if let Some(c) = obs
        .columns
        .iter()
        .find(|c| matches!(c.as_str(), "purity" | "lambda_max" | "fidelity"))
    {
        return Err(InputError::invalid(
            "observables.columns",
            format!("\"{c}\""),
            format!("no `{c}`: {why}"),
        ));
    }
    if obs.pm {
        return Err(InputError::invalid(
            "observables.pm",
            "true",
            format!("false: {why}"),
        ));
    }
    if obs.husimi.is_some() {
        return Err(InputError::invalid(
            "observables.husimi",
            "(given)",
            format!("none: {why}"),
        ));
    }
    if t.precision.is_some() {
        return Err(InputError::invalid(
            "task.precision",
            "(given)",
            format!(
                "no `precision`: method = \"{}\" runs on the CPU in f64",
                method.name()
            ),
        ));
    }
    let steady = matches!(
        sc.task,
        Task::SteadyState
            | Task::Scan {
                mode: ScanMode::SteadyState,
                ..
            }
    );
    if steady && method == Method::Cumulant && sc.initial.is_none() {
        return Err(InputError::invalid(
            "initial",
            "(missing)",
            "an [initial] table for a cumulant steady state (the closed equations are followed from it into its basin's fixed point)",
        ));
    }
    Ok(method)
}
