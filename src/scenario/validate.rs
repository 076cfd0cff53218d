//! Raw scenario -> validated [`Scenario`]: the definitions (model parameters and variables),
//! the state tables, `[observables]`, the base point (every expression error surfaces before
//! any compute), the task, and the checks that span tables: `--set` pins of scan and sweep
//! axes, the collective scenario of a `fixed_points` task, what each task can write, and
//! `[initial]` (present where the task evolves from it, in range at every point).

use super::initial::{self, state_spec};
use super::observables;
use super::overrides::apply_override;
use super::raw::RawScenario;
use super::schedule::ParamDef;
use super::task::task;
use super::{Num, Scenario, StateSpec, Task};
use crate::error::InputError;
use crate::model::PARAM_NAMES;
use crate::model::schedule::schedulable;

/// Scheduled `[model]` parameters as written, by name.
pub(super) type Schedules = BTreeMap<String, super::schedule::RawSchedule>;
use std::collections::BTreeMap;

/// Validate `raw` (`as_run`: the tree it came from; `pinned`: names set by `--set`).
pub(super) fn validate(
    raw: RawScenario,
    as_run: toml::Value,
    pinned: &[String],
) -> Result<Scenario, InputError> {
    let (defs, schedules) = definitions(&raw)?;
    let variable_names: Vec<String> = raw.variables.keys().cloned().collect();
    let initial = raw
        .initial
        .as_ref()
        .map(|s| state_spec("initial", s))
        .transpose()?;
    let observables = observables::spec(&raw.observables)?;
    let mut scenario = Scenario {
        title: raw.title.clone().unwrap_or_default(),
        description: raw.description.clone().unwrap_or_default(),
        as_run,
        defs,
        schedules,
        variable_names,
        initial,
        task: Task::SteadyState,
        method: crate::solver::Method::Exact,
        observables,
        plot: raw.output.plot,
        final_state: raw.output.final_state,
        switching: None,
        hysteresis: None,
    };

    // Resolve the base point once: every expression error surfaces before any compute.
    let base = scenario.point(&[])?;
    scenario.observables.husimi = observables::husimi(&raw.observables, &base)?;
    scenario.task = task(&raw.task, &scenario, &base)?;
    scenario.method = super::method::method(&raw.task, &scenario)?;
    pin_axes(&mut scenario.task, &base.values, pinned)?;
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
    check_schedules(&scenario)?;
    initial::check_final_state(&scenario)?;
    initial::check_fixed_points_initial(&scenario)?;
    observables::check_for_task(&scenario)?;
    initial::check_states(&scenario)?;
    check_exact_sweep(&scenario, &base)?;
    scenario.switching = super::analysis::switching(raw.analysis.as_ref(), &scenario.task, &base)?;
    scenario.hysteresis = super::analysis::hysteresis(raw.analysis.as_ref(), &scenario, &base)?;
    Ok(scenario)
}

/// Definitions of model parameters (by PHYSICS.md name; N required) and variables (names
/// that are identifiers, not parameters, not `pi`).
fn definitions(raw: &RawScenario) -> Result<(BTreeMap<String, Num>, Schedules), InputError> {
    let mut defs = BTreeMap::new();
    let mut schedules = Schedules::new();
    for (k, v) in &raw.model {
        let shown = match v {
            ParamDef::Value(n) => n.to_toml_string(),
            ParamDef::Schedule(_) => "(a schedule)".to_string(),
        };
        if !PARAM_NAMES.contains(&k.as_str()) {
            return Err(InputError::invalid(
                format!("model.{k}"),
                shown,
                format!("one of the model parameters {}", PARAM_NAMES.join(", ")),
            ));
        }
        match v {
            ParamDef::Value(n) => {
                defs.insert(k.clone(), n.clone());
            }
            ParamDef::Schedule(_) if !schedulable(k) => {
                return Err(InputError::invalid(
                    format!("model.{k}"),
                    shown,
                    "a number: N sets the Hilbert space and cannot change in time",
                ));
            }
            ParamDef::Schedule(s) => {
                schedules.insert(k.clone(), s.clone());
            }
        }
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
    Ok((defs, schedules))
}

/// `kind = "sweep"` with `method = "exact"` integrates populations
/// ([`crate::solver::populations`]): a model (at the first point; each point is checked again
/// when it runs) without the terms that couple them to coherences, and a diagonal initial state.
fn check_exact_sweep(sc: &Scenario, base: &super::Point) -> Result<(), InputError> {
    if !matches!(&sc.task, Task::Sweep(s) if s.method == "exact") {
        return Ok(());
    }
    if let Some((name, v)) = crate::solver::populations::protocol_support(&base.protocol()) {
        return Err(InputError::invalid(
            format!("model.{name}"),
            if v.is_nan() {
                "(a schedule)".to_string()
            } else {
                v.to_string()
            },
            "0 for kind = \"sweep\" with method = \"exact\": the population rate equation holds \
             without drive and single-atom processes (they couple populations to coherences); \
             use method = \"cumulant\" or a scan of evolutions",
        ));
    }
    match &sc.initial {
        Some(StateSpec::Coherent { .. } | StateSpec::Crss) => Err(InputError::invalid(
            "initial.state",
            "(a state with coherences)",
            "a diagonal state (\"dicke\", \"thermal\" or \"steady_state\") for kind = \"sweep\" \
             with method = \"exact\" (the population rate equation carries no coherences)",
        )),
        _ => Ok(()),
    }
}

/// Schedules (`[model] p = { ramp = ... }`) need a task that evolves in time and honours them:
/// `evolve` (exact, mean field, cumulants), scans of evolutions and cumulant sweeps (every
/// parameter but phi: `solver::cumulant::pieces`). Elsewhere, and on a scanned parameter or a
/// sweep axis, they are an error naming the parameter.
fn check_schedules(sc: &Scenario) -> Result<(), InputError> {
    let Some(name) = sc.schedules.keys().next() else {
        return Ok(());
    };
    let field = format!("model.{name}");
    let honoured = match &sc.task {
        Task::Evolve { .. } => sc.method != crate::solver::Method::Trajectories,
        Task::Trajectories { .. } => {
            // Trajectories honour every schedule but the single-atom rates'
            // (solver::trajectory::sched).
            if let Some(r) = sc
                .schedules
                .keys()
                .find(|k| crate::solver::trajectory::sched::REFUSED.contains(&k.as_str()))
            {
                return Err(InputError::invalid(
                    format!("model.{r}"),
                    "(a schedule)",
                    "a number for kind = \"trajectories\": a schedule of a single-atom rate would \
                     rebuild every irrep's irrep-changing weights and table scales every step; \
                     use kind = \"evolve\" (method exact) for it",
                ));
            }
            true
        }
        Task::Scan { mode, variable, .. } => {
            if sc.schedules.contains_key(variable) {
                return Err(InputError::invalid(
                    format!("model.{variable}"),
                    "(a schedule)",
                    format!("a number: the scan sets `{variable}` at each point"),
                ));
            }
            matches!(mode, super::ScanMode::Evolve { .. })
        }
        Task::Sweep(spec) => {
            if let Some(a) = spec.axes.iter().find(|a| sc.schedules.contains_key(&a.variable)) {
                return Err(InputError::invalid(
                    format!("model.{}", a.variable),
                    "(a schedule)",
                    format!("a number: the sweep sets `{}` at each point", a.variable),
                ));
            }
            if spec.method == "cumulant"
                && let Some(r) = sc
                    .schedules
                    .keys()
                    .find(|k| crate::solver::cumulant::pieces::NOT_AFFINE.contains(&k.as_str()))
            {
                return Err(InputError::invalid(
                    format!("model.{r}"),
                    "(a schedule)",
                    "a number for kind = \"sweep\": the batched integrators carry each piece of a \
                     protocol as affine functions of time, and phi enters through cos phi and \
                     sin phi; schedule phi in kind = \"evolve\" (method cumulant) or a scan with \
                     mode = \"evolve\"",
                ));
            }
            // The cumulant sweep (pieces) and the exact sweep (populations) honour them.
            spec.method == "cumulant" || spec.method == "exact"
        }
        _ => false,
    };
    if honoured {
        return Ok(());
    }
    Err(InputError::invalid(
        field,
        "(a schedule)",
        format!(
            "a number for kind = \"{}\"{}: schedules are honoured by kind = \"evolve\" \
             (method exact, meanfield or cumulant), scans with mode = \"evolve\" and \
             kind = \"sweep\"; to start from a steady state use \
             [initial] state = \"steady_state\"",
            sc.task.kind(),
            if sc.method == crate::solver::Method::Trajectories {
                " with method = \"trajectories\""
            } else {
                ""
            }
        ),
    ))
}

/// A scan, fixed-points or sweep axis whose variable `--set` pins runs that single value (from
/// the base point's values `base`); a list sweep must then have all its axes pinned or none.
fn pin_axes(task: &mut Task, base: &BTreeMap<String, f64>, pinned: &[String]) -> Result<(), InputError> {
    let pin = |variable: &str| vec![base.get(variable).copied().unwrap_or(f64::NAN)];
    match task {
        Task::Scan { variable, values, .. } | Task::FixedPoints { variable, values, .. }
            if pinned.contains(variable) =>
        {
            *values = pin(variable);
        }
        Task::Correlation(super::CorrelationSpec {
            scan: Some((variable, values)),
            ..
        })
        | Task::Fisher(super::FisherSpec {
            scan: Some((variable, values)),
            ..
        }) if pinned.contains(variable) => {
            *values = pin(variable);
        }
        Task::Sweep(spec) => {
            for a in spec.axes.iter_mut() {
                if pinned.contains(&a.variable) {
                    a.values = pin(&a.variable);
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
        }
        _ => {}
    }
    Ok(())
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

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}
