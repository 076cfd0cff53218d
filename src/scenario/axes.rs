//! Scan and sweep axes: the variable (a variable of [variables] or a model parameter) and its
//! values (`values = [..]` or `start`, `stop`, `num`) of `kind = "scan"` / `"fixed_points"`,
//! and the one or two `[[task.axes]]` of `kind = "sweep"` with its save grid and reductions
//! ([`SweepSpec`]).

use super::fields::{TimeDefs, atol, count, precision, rtol, time_grid};
use super::raw::{RawAxis, RawTask};
use super::{F32_MIN_ATOL, F32_MIN_RTOL, Num, Point, Scenario};
use crate::error::InputError;
use crate::model::PARAM_NAMES;
use crate::precision::Precision;

/// A sweep axis: a variable or model parameter and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepAxis {
    pub variable: String,
    pub values: Vec<f64>,
    /// `spacing = "log"`: the values are a geometric progression (figures use a log axis).
    pub log: bool,
}

/// `kind = "sweep"`: the points, the method, the save grid and the per-point reductions.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepSpec {
    /// One or two axes.
    pub axes: Vec<SweepAxis>,
    /// `layout = "grid"` (every combination, first axis slowest) or `"list"` (the i-th values
    /// of all axes together; equal lengths).
    pub grid: bool,
    /// `method`: `"cumulant"` (the default) or `"exact"` (the population rate equation,
    /// `solver::populations`, for models that keep populations closed).
    pub method: String,
    /// The save grid as written: `method = "exact"` evaluates it at each point (a ramp's
    /// duration may depend on the point); the cumulant batch uses `t0`, `t_end`, `nsave`.
    pub time_defs: TimeDefs,
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

/// Per-point quantities of a sweep with `method = "exact"` (columns of sweep.csv after the
/// axes and the varying model parameters): the final <Jz> and Var Jz, the hysteresis loop of
/// `[analysis.hysteresis]` (NaN without it), the step counts and the status (0 = done).
pub const EXACT_SWEEP_QUANTITIES: [&str; 9] = [
    "Jz",
    "var_Jz",
    "p_up",
    "p_down",
    "width",
    "width_scaled",
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

/// Most points a sweep accepts (the per-point results stream to disk; the heat map and the
/// summary hold a few numbers per point).
pub const MAX_SWEEP_POINTS: f64 = 1e8;

/// Most values of one scan or sweep axis (`values = [..]` or `num`).
pub const MAX_AXIS_VALUES: f64 = 1e6;

/// The scanned variable and its values (`variable` with `values = [...]` or `start`, `stop`,
/// `num`), shared by `kind = "scan"` and `kind = "fixed_points"` (`context` names the task).
pub(super) fn scan_axis(
    t: &RawTask,
    sc: &Scenario,
    base: &Point,
    context: &str,
    over_n: bool,
) -> Result<(String, Vec<f64>), InputError> {
    let variable = axis_variable(sc, "task.variable", &t.variable)?;
    if variable == "N" && !over_n {
        return Err(InputError::invalid(
            "task.variable",
            "\"N\"",
            "a continuous parameter (scans over N only with mode = \"spectrum\" or \"metastable\": run one scenario per N)",
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
        if list.len() as f64 > MAX_AXIS_VALUES {
            return Err(InputError::invalid(
                format!("{prefix}.values"),
                format!("a list of {} entries", list.len()),
                format!("at most {MAX_AXIS_VALUES} values (the limit of `num`)"),
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
        let n = count(base, &format!("{prefix}.num"), num, 0.0, MAX_AXIS_VALUES)?;
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

/// `kind = "sweep"` (validated; `t` already checked for fields of other kinds).
pub(super) fn sweep_spec(t: &RawTask, sc: &Scenario, base: &Point) -> Result<SweepSpec, InputError> {
    let what = "kind = \"sweep\"";
    let method = t.method.clone().unwrap_or_else(|| "cumulant".into());
    if method != "cumulant" && method != "exact" {
        return Err(InputError::invalid(
            "task.method",
            format!("\"{method}\""),
            "\"cumulant\" (the second-order cumulant expansion) or \"exact\" (the population \
             rate equation of the Dicke manifold, for models without drive or single-atom \
             processes)",
        ));
    }
    let exact = method == "exact";
    let grid = sweep_layout(t)?;
    let axes = sweep_axes(t.axes.as_deref().unwrap_or(&[]), sc, base, what)?;
    check_sweep_points(&axes, grid)?;
    let (times, t_min, t_late) = sweep_times(t, base, what)?;
    let columns: &[&str] = if exact {
        &EXACT_SWEEP_QUANTITIES
    } else {
        &SWEEP_QUANTITIES
    };
    let default = if exact { "Jz" } else { "xi2_min_dB" };
    let heatmap = t.heatmap.clone().unwrap_or_else(|| default.into());
    if !columns.contains(&heatmap.as_str()) {
        return Err(InputError::invalid(
            "task.heatmap",
            format!("\"{heatmap}\""),
            format!("one of the sweep columns {}", columns.join(", ")),
        ));
    }
    let rtol = rtol(base, &t.rtol, 1e-8)?;
    let atol = atol(base, &t.atol, 1e-10)?;
    let precision = precision(t)?;
    if exact && precision.is_some() {
        return Err(InputError::invalid(
            "task.precision",
            "(given)",
            "no precision for method = \"exact\" (the population rate equation runs on the CPU in f64)",
        ));
    }
    if precision == Some(Precision::F32) {
        check_f32_tolerances(rtol, atol)?;
    }
    Ok(SweepSpec {
        axes,
        grid,
        method,
        time_defs: TimeDefs::of(t),
        t0: times[0],
        t_end: times[times.len() - 1],
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

/// `task.layout`: true for "grid" (the default), false for "list".
fn sweep_layout(t: &RawTask) -> Result<bool, InputError> {
    match t.layout.as_deref() {
        None | Some("grid") => Ok(true),
        Some("list") => Ok(false),
        Some(other) => Err(InputError::invalid(
            "task.layout",
            format!("\"{other}\""),
            "\"grid\" (every combination of the axes' values) or \"list\" (the i-th values together)",
        )),
    }
}

/// The one or two `[[task.axes]]`: distinct variables, N axes of whole atom numbers.
fn sweep_axes(
    raw_axes: &[RawAxis],
    sc: &Scenario,
    base: &Point,
    what: &str,
) -> Result<Vec<SweepAxis>, InputError> {
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
        let log = log_spacing(&prefix, a)?;
        let mut values = axis_values(base, &prefix, what, &a.values, &a.start, &a.stop, &a.num)?;
        if log {
            values = geometric(&prefix, &values)?;
        }
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
        axes.push(SweepAxis {
            variable,
            values,
            log,
        });
    }
    Ok(axes)
}

/// `spacing` of a sweep axis: true for `"log"` (needs `start`, `stop`, `num`).
fn log_spacing(prefix: &str, a: &RawAxis) -> Result<bool, InputError> {
    match a.spacing.as_deref() {
        None | Some("linear") => Ok(false),
        Some("log") if a.values.is_some() => Err(InputError::invalid(
            format!("{prefix}.spacing"),
            "\"log\"",
            "`start`, `stop` and `num` with spacing = \"log\" (a `values` list is used as given)",
        )),
        Some("log") => Ok(true),
        Some(other) => Err(InputError::invalid(
            format!("{prefix}.spacing"),
            format!("\"{other}\""),
            "\"linear\" or \"log\"",
        )),
    }
}

/// The evenly spaced `lin` (from `start` to `stop`) mapped to the geometric progression with
/// the same ends, which must be positive.
fn geometric(prefix: &str, lin: &[f64]) -> Result<Vec<f64>, InputError> {
    let (a, b) = (lin[0], lin[lin.len() - 1]);
    for (name, v) in [("start", a), ("stop", b)] {
        if !(v > 0.0 && v.is_finite()) {
            return Err(InputError::invalid(
                format!("{prefix}.{name}"),
                v,
                "a positive number with spacing = \"log\"",
            ));
        }
    }
    let n = lin.len();
    Ok((0..n)
        .map(|i| {
            if n == 1 {
                a
            } else {
                a * (b / a).powf(i as f64 / (n - 1) as f64)
            }
        })
        .collect())
}

/// Equal lengths for a list, at most [`MAX_SWEEP_POINTS`] points.
fn check_sweep_points(axes: &[SweepAxis], grid: bool) -> Result<(), InputError> {
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
    Ok(())
}

/// The uniform save grid of a sweep and its reduction times (`t_min`, `t_late`) in it.
fn sweep_times(t: &RawTask, base: &Point, what: &str) -> Result<(Vec<f64>, f64, f64), InputError> {
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
    Ok((times, t_min, t_late))
}

/// The f32 GPU kernel's floors on rtol and atol.
fn check_f32_tolerances(rtol: f64, atol: f64) -> Result<(), InputError> {
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
    Ok(())
}
