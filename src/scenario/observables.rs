//! `[observables]`: which columns to write beyond the base ones, P_m, the Husimi grid and the
//! fidelity reference, and which of them each task kind can write.

use super::initial::{StateSpec, state_spec};
use super::raw::RawObservables;
use super::{Num, Point, ScanMode, Scenario, Task};
use crate::error::InputError;

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

/// Which observables to write beyond the base columns.
#[derive(Debug, Clone, Default)]
pub struct ObservableSpec {
    pub columns: Vec<String>,
    pub pm: bool,
    /// (n_theta, n_phi) for a Husimi Q grid of the final / steady state.
    pub husimi: Option<(usize, usize)>,
    pub fidelity: Option<StateSpec>,
}

/// `[observables]` checked on its own: the fidelity table, the column names (a fidelity column
/// needs the table), extra columns deduplicated in order. The Husimi grid is read at the base
/// point ([`husimi`]).
pub(super) fn spec(raw: &RawObservables) -> Result<ObservableSpec, InputError> {
    let fidelity = raw
        .fidelity
        .as_ref()
        .map(|s| state_spec("observables.fidelity", s))
        .transpose()?;
    for c in &raw.columns {
        if !EXTRA_OBSERVABLES.contains(&c.as_str()) && !BASE_OBSERVABLES.contains(&c.as_str()) {
            return Err(InputError::invalid(
                "observables.columns",
                format!("\"{c}\""),
                format!("observable names from {}", EXTRA_OBSERVABLES.join(", ")),
            ));
        }
    }
    if raw.columns.iter().any(|c| c == "fidelity") && fidelity.is_none() {
        return Err(InputError::invalid(
            "observables.columns",
            "\"fidelity\"",
            "an [observables.fidelity] table naming the reference state",
        ));
    }
    let mut columns: Vec<String> = Vec::new();
    for c in &raw.columns {
        if !BASE_OBSERVABLES.contains(&c.as_str()) && !columns.contains(c) {
            columns.push(c.clone());
        }
    }
    Ok(ObservableSpec {
        columns,
        pm: raw.pm,
        husimi: None,
        fidelity,
    })
}

/// `[observables.husimi]` at the base point: (n_theta, n_phi), defaults 64 x 128.
pub(super) fn husimi(raw: &RawObservables, base: &Point) -> Result<Option<(usize, usize)>, InputError> {
    let Some(h) = &raw.husimi else {
        return Ok(None);
    };
    let nt = grid_size(base, "observables.husimi.n_theta", h.n_theta.as_ref(), 64)?;
    let np = grid_size(base, "observables.husimi.n_phi", h.n_phi.as_ref(), 128)?;
    Ok(Some((nt, np)))
}

/// What the task can write: a sweep's columns are fixed, a spectrum has no observables, a
/// Husimi grid needs one final or steady state, trajectories have the ensemble moments (and a fidelity reference only with
/// saved trajectories).
pub(super) fn check_for_task(sc: &Scenario) -> Result<(), InputError> {
    let obs = &sc.observables;
    match &sc.task {
        Task::Sweep(_) => {
            if obs.husimi.is_some() || obs.pm || obs.fidelity.is_some() {
                return Err(InputError::invalid(
                    "observables",
                    "(given)",
                    "no [observables] tables or pm for kind = \"sweep\" (its columns are fixed: docs/scenarios.md)",
                ));
            }
            if !obs.columns.is_empty() {
                return Err(InputError::invalid(
                    "observables.columns",
                    format!("{:?}", obs.columns),
                    "no extra columns for kind = \"sweep\" (its columns are fixed: docs/scenarios.md)",
                ));
            }
        }
        Task::Spectrum { .. }
        | Task::Scan {
            mode: ScanMode::Spectrum { .. },
            ..
        } if obs.husimi.is_some() || obs.pm || obs.fidelity.is_some() || !obs.columns.is_empty() => {
            return Err(InputError::invalid(
                "observables",
                "(given)",
                "no [observables] for a spectrum (it writes eigenvalues: spectrum.csv, and a scan \
                 the gap per point)",
            ));
        }
        Task::Metastable
        | Task::Scan {
            mode: ScanMode::Metastable,
            ..
        } if obs.husimi.is_some() || obs.pm => {
            return Err(InputError::invalid(
                if obs.pm {
                    "observables.pm"
                } else {
                    "observables.husimi"
                },
                "(given)",
                "none for a metastable decomposition: it always writes P_m of its three states \
                 (pm.csv); columns and [observables.fidelity] are taken",
            ));
        }
        Task::Scan { values, .. } if obs.husimi.is_some() && values.len() > 1 => {
            return Err(InputError::invalid(
                "observables.husimi",
                "(given)",
                "a Husimi grid only for kind = \"evolve\" (final state) or \"steady_state\"; pin a scan point with --set",
            ));
        }
        Task::Trajectories {
            save_trajectories, ..
        } => check_for_trajectories(obs, *save_trajectories)?,
        Task::Correlation(_) | Task::Fisher(_)
            if obs.husimi.is_some() || obs.pm || obs.fidelity.is_some() || !obs.columns.is_empty() =>
        {
            return Err(InputError::invalid(
                "observables",
                "(given)",
                format!(
                    "no [observables] for kind = \"{}\" (its columns are fixed: docs/scenarios.md)",
                    sc.task.kind()
                ),
            ));
        }
        _ => {}
    }
    Ok(())
}

/// Trajectories have the ensemble moments, and with `[observables.fidelity]` the fidelity
/// along the saved single trajectories (trajectories.csv), so the table needs
/// `save_trajectories > 0`; the `fidelity` column (an ensemble column) stays refused.
fn check_for_trajectories(obs: &ObservableSpec, save_trajectories: usize) -> Result<(), InputError> {
    let needs_rho = ["purity", "lambda_max", "fidelity"];
    if let Some(c) = obs.columns.iter().find(|c| needs_rho.contains(&c.as_str())) {
        return Err(InputError::invalid(
            "observables.columns",
            format!("\"{c}\""),
            "for kind = \"trajectories\", observables computed from the ensemble moments \
             (not purity, lambda_max, fidelity); the moments' standard errors are always written",
        ));
    }
    if obs.husimi.is_some() {
        return Err(InputError::invalid(
            "observables.husimi",
            "(given)",
            "no Husimi output for kind = \"trajectories\" in this version (P_m is: observables.pm)",
        ));
    }
    if obs.fidelity.is_some() && save_trajectories == 0 {
        return Err(InputError::invalid(
            "observables.fidelity",
            "(given) with task.save_trajectories = 0",
            "for kind = \"trajectories\", a reference state only with task.save_trajectories > 0: \
             the fidelity is written along the saved single trajectories (trajectories.csv), \
             not as an ensemble column",
        ));
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
