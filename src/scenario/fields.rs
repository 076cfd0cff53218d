//! Number checks of `[task]` fields shared by the kinds and the axes: a number > 0, a whole
//! count, the precision name, the save-time grid of an evolution.

use super::raw::RawTask;
use super::{Num, Point};
use crate::error::InputError;
use crate::precision::Precision;

/// Most save times of an evolution (`times = [..]` or `n_times`).
pub const MAX_TIMES: f64 = 1e6;

/// A number > 0 (`default` when absent).
pub(super) fn positive(base: &Point, field: &str, n: &Option<Num>, default: f64) -> Result<f64, InputError> {
    let v = match n {
        None => default,
        Some(n) => base.eval(field, n)?,
    };
    if v <= 0.0 {
        return Err(InputError::invalid(field, v, "a number > 0"));
    }
    Ok(v)
}

/// The range of `task.rtol`. Below 1e-14 the DP5 error estimate (differences of O(1) values
/// near f64's 2.2e-16 rounding, summed over the stages) cannot meet the tolerance and the step
/// shrinks until the integrator gives up; above 1e-2 the controller's estimate (the gap between
/// the embedded 4th- and 5th-order solutions, valid only asymptotically in h) no longer bounds
/// the error, and steps limited only by stability give meaningless results (rtol = atol = 2
/// gave xi^2 = -10).
pub const RTOL_RANGE: (f64, f64) = (1e-14, 1e-2);
/// The largest `task.atol`: the observables are O(1)-normalised moments and density-matrix
/// elements, so an absolute tolerance above 1e-2 lets the controller accept errors of the size
/// of the quantities themselves (for the same reason as [`RTOL_RANGE`]'s upper end).
pub const MAX_ATOL: f64 = 1e-2;

/// `task.rtol` (> 0, then in [`RTOL_RANGE`]).
pub(super) fn rtol(base: &Point, n: &Option<Num>, default: f64) -> Result<f64, InputError> {
    let v = positive(base, "task.rtol", n, default)?;
    let (lo, hi) = RTOL_RANGE;
    if !(lo..=hi).contains(&v) {
        return Err(InputError::invalid(
            "task.rtol",
            v,
            format!(
                "a relative tolerance in [{lo:e}, {hi:e}] (the range where the DP5 error control is meaningful)"
            ),
        ));
    }
    Ok(v)
}

/// `task.atol` (> 0, at most [`MAX_ATOL`]).
pub(super) fn atol(base: &Point, n: &Option<Num>, default: f64) -> Result<f64, InputError> {
    let v = positive(base, "task.atol", n, default)?;
    if v > MAX_ATOL {
        return Err(InputError::invalid(
            "task.atol",
            v,
            format!(
                "an absolute tolerance in (0, {MAX_ATOL:e}] (the range where the DP5 error control is meaningful)"
            ),
        ));
    }
    Ok(v)
}

/// The largest `task.cfl` of a trajectory ensemble: RK4 is stable to cfl = 1.4 on the
/// imaginary axis, but its deterministic error grows like cfl^4 and already dominates the
/// ensemble's standard error well below that (module doc of `solver::trajectory`: max
/// |<Jz>_traj - <Jz>_ME| is 1.8e-2 at cfl 0.5 and 0.55 at cfl 1; cfl = 5 biased the means
/// by 9 standard errors). 1 is the largest step any test or benchmark uses.
pub const MAX_CFL: f64 = 1.0;

/// A whole number in 1..=max (`default` when absent).
pub(super) fn count(
    base: &Point,
    field: &str,
    n: &Option<Num>,
    default: f64,
    max: f64,
) -> Result<usize, InputError> {
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

/// `task.precision`: "f32" | "f64", None when absent.
pub(super) fn precision(t: &RawTask) -> Result<Option<Precision>, InputError> {
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

/// The save times of a time evolution (`context`, e.g. `kind = "evolve"`, names the task in
/// errors): `times = [..]` or `t_start`, `t_end`, `n_times`.
pub(super) fn time_grid(t: &RawTask, base: &Point, context: &str) -> Result<Vec<f64>, InputError> {
    let times: Vec<f64> = if let Some(list) = &t.times {
        if t.t_start.is_some() || t.t_end.is_some() || t.n_times.is_some() {
            return Err(InputError::invalid(
                "task.times",
                "(given)",
                "either `times` or `t_start`/`t_end`/`n_times`, not both",
            ));
        }
        if list.len() as f64 > MAX_TIMES {
            return Err(InputError::invalid(
                "task.times",
                format!("a list of {} entries", list.len()),
                format!("at most {MAX_TIMES} save times (the limit of `n_times`)"),
            ));
        }
        list.iter()
            .enumerate()
            .map(|(i, n)| base.eval(&format!("task.times[{i}]"), n))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        TimeDefs {
            t_start: t.t_start.clone(),
            t_end: t.t_end.clone(),
            n_times: t.n_times.clone(),
        }
        .grid(base, context)?
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

/// `t_start`, `t_end`, `n_times` as written, for a task that evaluates its save grid at each
/// point (a sweep of evolutions whose duration depends on the point, e.g. a ramp's).
#[derive(Debug, Clone, PartialEq)]
pub struct TimeDefs {
    t_start: Option<Num>,
    t_end: Option<Num>,
    n_times: Option<Num>,
}

impl TimeDefs {
    pub(super) fn of(t: &RawTask) -> Self {
        TimeDefs {
            t_start: t.t_start.clone(),
            t_end: t.t_end.clone(),
            n_times: t.n_times.clone(),
        }
    }

    /// The evenly spaced save grid at point `p` (errors name the field; `context` the task).
    pub fn grid(&self, p: &Point, context: &str) -> Result<Vec<f64>, InputError> {
        let t0 = match &self.t_start {
            None => 0.0,
            Some(n) => p.eval("task.t_start", n)?,
        };
        let t1 = match &self.t_end {
            None => {
                return Err(InputError::invalid(
                    "task.t_end",
                    "(missing)",
                    format!("the final time (a number or expression) for {context}"),
                ));
            }
            Some(n) => p.eval("task.t_end", n)?,
        };
        if t1 <= t0 || !t1.is_finite() {
            return Err(InputError::invalid(
                "task.t_end",
                t1,
                format!("a finite time > t_start = {t0}"),
            ));
        }
        let n = count(p, "task.n_times", &self.n_times, 101.0, MAX_TIMES)?;
        if n < 2 {
            return Err(InputError::invalid("task.n_times", n, "at least 2 save points"));
        }
        Ok((0..n)
            .map(|i| t0 + (t1 - t0) * i as f64 / (n - 1) as f64)
            .collect())
    }
}
