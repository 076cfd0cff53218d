//! `[analysis]`: statistics over a task's results. `[analysis.switching]` (kind =
//! "trajectories" only): the on-line phase classifier of the trajectories and the switching
//! statistics of `task::switching` (keys `observable`, `window`, `thresholds`, `max_events`,
//! `t_burn`; README, "Switching statistics").

use super::raw::{RawAnalysis, RawSwitching};
use super::{Point, Scenario, Task};
use crate::error::InputError;

/// Default per-trajectory capacity of the classifier's event list.
pub const DEFAULT_MAX_EVENTS: u32 = 256;
/// Default smoothing window, in save intervals: 0, no smoothing (README, "Switching
/// statistics": the classification is then a function of the trajectory's state, a core-set
/// (milestoning) definition; any smoothing removes genuine core-to-core passages).
pub const DEFAULT_WINDOW_SAVES: f64 = 0.0;

/// `[analysis.switching]`, validated against the task's save times.
#[derive(Debug, Clone, PartialEq)]
pub struct SwitchingSpec {
    /// Smoothing time constant (time units of the scenario).
    pub window: f64,
    /// Whether `window` was given (else 0: no smoothing).
    pub window_given: bool,
    /// Save interval (the saves are equally spaced).
    pub dt_save: f64,
    /// `[lo, hi]` as given; `None`: from the exact steady state's P_m.
    pub thresholds: Option<[f64; 2]>,
    pub max_events: u32,
    /// Dwell statistics start after this time.
    pub t_burn: f64,
}

impl SwitchingSpec {
    /// The smoothing weight per save, `1 - exp(-dt_save / window)` (1, no smoothing, at
    /// window 0).
    pub fn alpha(&self) -> f64 {
        if self.window == 0.0 {
            return 1.0;
        }
        -(-self.dt_save / self.window).exp_m1()
    }
}

/// Validate `[analysis.switching]` (None when absent).
pub(super) fn switching(
    raw: Option<&RawAnalysis>,
    task: &Task,
    base: &Point,
) -> Result<Option<SwitchingSpec>, InputError> {
    let Some(sw) = raw.and_then(|a| a.switching.as_ref()) else {
        return Ok(None);
    };
    let Task::Trajectories { times, .. } = task else {
        return Err(InputError::invalid(
            "analysis.switching",
            format!("a table with kind = \"{}\"", task.kind()),
            "[analysis.switching] only with [task] kind = \"trajectories\"",
        ));
    };
    if let Some(o) = &sw.observable
        && o != "Jz"
    {
        return Err(InputError::invalid(
            "analysis.switching.observable",
            format!("\"{o}\""),
            "\"Jz\" (the only observable the on-line classifier reads in this version)",
        ));
    }
    let dt_save = save_interval(times)?;
    let (window, window_given) = match &sw.window {
        Some(n) => (non_negative(base, "analysis.switching.window", n)?, true),
        None => (DEFAULT_WINDOW_SAVES * dt_save, false),
    };
    Ok(Some(SwitchingSpec {
        window,
        window_given,
        dt_save,
        thresholds: thresholds(sw, base)?,
        max_events: max_events(sw, base)?,
        t_burn: t_burn(sw, base, times)?,
    }))
}

/// `[analysis.hysteresis]`: the crossings of `observable` (a column of observables.csv,
/// default Jz) with `level` (default 0) while the scheduled `parameter` (default: the only
/// scheduled one) goes up and down (`analysis::hysteresis`).
#[derive(Debug, Clone, PartialEq)]
pub struct HysteresisSpec {
    pub observable: String,
    pub level: f64,
    pub parameter: String,
}

/// Validate `[analysis.hysteresis]` (None when absent).
pub(super) fn hysteresis(
    raw: Option<&RawAnalysis>,
    sc: &Scenario,
    base: &Point,
) -> Result<Option<HysteresisSpec>, InputError> {
    let Some(h) = raw.and_then(|a| a.hysteresis.as_ref()) else {
        return Ok(None);
    };
    let field = "analysis.hysteresis";
    let exact_sweep = matches!(&sc.task, Task::Sweep(s) if s.method == "exact");
    let evolve = matches!(sc.task, Task::Evolve { .. }) && sc.method != crate::solver::Method::Trajectories;
    if !(evolve || exact_sweep) {
        return Err(InputError::invalid(
            field,
            format!("a table with kind = \"{}\"", sc.task.kind()),
            "[analysis.hysteresis] only with kind = \"evolve\" (exact, meanfield or cumulant) \
             or kind = \"sweep\" with method = \"exact\"",
        ));
    }
    let scheduled: Vec<&str> = base.schedules.iter().map(|(n, _)| *n).collect();
    let parameter = match (&h.parameter, scheduled.as_slice()) {
        (Some(p), _) if scheduled.contains(&p.as_str()) => p.clone(),
        (None, [only]) => only.to_string(),
        (given, _) => {
            return Err(InputError::invalid(
                format!("{field}.parameter"),
                given
                    .as_deref()
                    .map_or("(missing)".to_string(), |p| format!("\"{p}\"")),
                format!(
                    "one of the scheduled model parameters ({})",
                    if scheduled.is_empty() {
                        "none: schedule one in [model]".to_string()
                    } else {
                        scheduled.join(", ")
                    }
                ),
            ));
        }
    };
    let observable = h.observable.clone().unwrap_or_else(|| "Jz".into());
    let written: Vec<String> = if exact_sweep {
        // The functions of the populations that the sweep's rate equation gives.
        vec!["Jz".into(), "var_Jz".into()]
    } else {
        super::BASE_OBSERVABLES
            .iter()
            .map(|s| s.to_string())
            .chain(sc.observables.columns.iter().cloned())
            .collect()
    };
    if !written.contains(&observable) {
        return Err(InputError::invalid(
            format!("{field}.observable"),
            format!("\"{observable}\""),
            if exact_sweep {
                format!(
                    "{} (a function of the populations) for kind = \"sweep\"",
                    written.join(" or ")
                )
            } else {
                format!("a column of observables.csv: {}", written.join(", "))
            },
        ));
    }
    let level = match &h.level {
        Some(n) => base.eval(&format!("{field}.level"), n)?,
        None => 0.0,
    };
    Ok(Some(HysteresisSpec {
        observable,
        level,
        parameter,
    }))
}

fn non_negative(base: &Point, field: &str, n: &super::Num) -> Result<f64, InputError> {
    let v = base.eval(field, n)?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(InputError::invalid(
            field,
            v,
            "a finite number >= 0 (0: no smoothing)",
        ))
    }
}

/// The save interval: the classifier's smoothing weight is one number, so the saves must be
/// equally spaced (to 1e-9 relative) and at least two.
fn save_interval(times: &[f64]) -> Result<f64, InputError> {
    if times.len() < 2 {
        return Err(InputError::invalid(
            "analysis.switching",
            format!("{} save time", times.len()),
            "at least two save times (task.n_times >= 2)",
        ));
    }
    let dt = times[1] - times[0];
    let uneven = times
        .windows(2)
        .any(|w| ((w[1] - w[0]) - dt).abs() > 1e-9 * dt.abs().max(f64::MIN_POSITIVE));
    if dt.is_nan() || dt <= 0.0 || uneven {
        return Err(InputError::invalid(
            "analysis.switching",
            "unequally spaced save times",
            "equally spaced save times (task.t_end with task.n_times, not task.times)",
        ));
    }
    Ok(dt)
}

fn thresholds(sw: &RawSwitching, base: &Point) -> Result<Option<[f64; 2]>, InputError> {
    let Some(t) = &sw.thresholds else {
        return Ok(None);
    };
    let field = "analysis.switching.thresholds";
    if t.len() != 2 {
        return Err(InputError::invalid(
            field,
            format!("{} numbers", t.len()),
            "two numbers [lo, hi] with lo < hi (Jz values)",
        ));
    }
    let (lo, hi) = (base.eval(field, &t[0])?, base.eval(field, &t[1])?);
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(InputError::invalid(
            field,
            format!("[{lo}, {hi}]"),
            "two finite numbers [lo, hi] with lo < hi (Jz values)",
        ));
    }
    Ok(Some([lo, hi]))
}

fn max_events(sw: &RawSwitching, base: &Point) -> Result<u32, InputError> {
    let field = "analysis.switching.max_events";
    let Some(n) = &sw.max_events else {
        return Ok(DEFAULT_MAX_EVENTS);
    };
    let v = base.eval(field, n)?;
    let limit = crate::solver::trajectory::MAX_EVENTS_LIMIT;
    if !(v >= 1.0 && v <= f64::from(limit) && v.fract() == 0.0) {
        return Err(InputError::invalid(
            field,
            v,
            format!("a whole number in 1..={limit} (phase changes kept per trajectory)"),
        ));
    }
    Ok(v as u32)
}

fn t_burn(sw: &RawSwitching, base: &Point, times: &[f64]) -> Result<f64, InputError> {
    let field = "analysis.switching.t_burn";
    let (t0, t1) = (times[0], times[times.len() - 1]);
    let Some(n) = &sw.t_burn else {
        return Ok(t0);
    };
    let v = base.eval(field, n)?;
    if !(v >= t0 && v < t1) {
        return Err(InputError::invalid(
            field,
            v,
            format!("a time in [{t0}, {t1}) (the save times' range)"),
        ));
    }
    Ok(v)
}
