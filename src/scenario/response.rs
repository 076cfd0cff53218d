//! `[task]` fields of the two response kinds: `kind = "correlation"` (two-time correlations by
//! the quantum regression theorem, `solver::correlation`) and `kind = "fisher"` (Fisher
//! information of the steady state, `solver::fisher`). Both may scan a variable or model
//! parameter (`variable` with `values` or `start`, `stop`, `num`), one result per point.
//! `super::task` refuses the other kinds' fields before these run.

use super::axes::scan_axis;
use super::fields::{atol, count, positive, rtol};
use super::raw::RawTask;
use super::{Num, Point, Scenario};
use crate::error::InputError;
use crate::model::PARAM_NAMES;
use crate::solver::correlation::{OP_NAMES, Op};

/// Most tau samples of a correlation (each is one save of the evolution).
pub const MAX_TAUS: f64 = 1e6;
/// Most frequencies of a correlation spectrum.
pub const MAX_OMEGAS: f64 = 1e6;
/// Most frequencies x delays of a spectrum (each a complex exponential, per point).
pub const MAX_TRANSFORM: f64 = 1e9;

/// `kind = "correlation"`: C(tau) = <A(t+tau)B(t)> - <A(t+tau)><B(t)> on a tau grid.
#[derive(Debug, Clone, PartialEq)]
pub struct CorrelationSpec {
    pub a: Op,
    pub b: Op,
    /// 0 = tau_0 < ... (from `tau_end` and `n_tau`, or `taus`).
    pub taus: Vec<f64>,
    /// None: in the steady state (`at = "steady_state"`, the default); Some(t): at time t
    /// after the `[initial]` state.
    pub at: Option<f64>,
    /// `spectrum = true`: S(omega) of C to correlation_spectrum.csv.
    pub spectrum: Option<OmegaGrid>,
    pub rtol: f64,
    pub atol: f64,
    pub max_steps: usize,
    /// An optional scan: one correlation per value.
    pub scan: Option<(String, Vec<f64>)>,
}

/// The frequencies of a correlation spectrum: `n_omega` values evenly in
/// [-omega_max, omega_max] (None: chosen from the decay rate and the tau grid).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OmegaGrid {
    pub omega_max: Option<f64>,
    pub n_omega: usize,
}

/// `kind = "fisher"`: Fisher information of the steady state with respect to `parameter`.
#[derive(Debug, Clone, PartialEq)]
pub struct FisherSpec {
    pub parameter: String,
    /// The measured observable of the error-propagation sensitivity (Jx, Jy or Jz).
    pub observable: Op,
    /// The start step h0 of the differences (None: the solver's default).
    pub step: Option<f64>,
    /// Compute the quantum Fisher information (dense per-block eigendecompositions).
    pub qfi: bool,
    pub scan: Option<(String, Vec<f64>)>,
}

/// An operator field (`task.a`, `task.b`, `task.observable`).
fn operator(field: &str, v: &Option<String>, default: Op, hermitian: bool) -> Result<Op, InputError> {
    let Some(name) = v else { return Ok(default) };
    match Op::parse(name) {
        Some(op) if !hermitian || matches!(op, Op::Jx | Op::Jy | Op::Jz) => Ok(op),
        Some(_) => Err(InputError::invalid(
            field,
            format!("\"{name}\""),
            "a Hermitian observable: \"Jx\", \"Jy\" or \"Jz\"",
        )),
        None => Err(InputError::invalid(
            field,
            format!("\"{name}\""),
            format!("one of {OP_NAMES}"),
        )),
    }
}

/// A boolean field, `default` when absent.
fn boolean(field: &str, v: &Option<toml::Value>, default: bool, what: &str) -> Result<bool, InputError> {
    match v {
        None => Ok(default),
        Some(toml::Value::Boolean(b)) => Ok(*b),
        Some(other) => Err(InputError::invalid(
            field,
            other,
            format!("true or false ({what})"),
        )),
    }
}

/// The optional scan axis: present when any of `variable`, `values`, `start`, `stop`, `num` is.
fn optional_axis(
    t: &RawTask,
    sc: &Scenario,
    base: &Point,
    ctx: &str,
) -> Result<Option<(String, Vec<f64>)>, InputError> {
    let any = t.variable.is_some()
        || t.values.is_some()
        || t.start.is_some()
        || t.stop.is_some()
        || t.num.is_some();
    if !any {
        return Ok(None);
    }
    scan_axis(t, sc, base, ctx, false).map(Some)
}

/// The tau grid: `taus = [..]` (>= 0, increasing) or `tau_end` (> 0) with `n_tau` (default
/// 201) evenly from 0.
fn tau_grid(t: &RawTask, base: &Point) -> Result<Vec<f64>, InputError> {
    if let Some(list) = &t.taus {
        if t.tau_end.is_some() || t.n_tau.is_some() {
            return Err(InputError::invalid(
                "task.taus",
                "(given)",
                "either `taus` or `tau_end`/`n_tau`, not both",
            ));
        }
        if list.is_empty() || list.len() as f64 > MAX_TAUS {
            return Err(InputError::invalid(
                "task.taus",
                format!("{} entries", list.len()),
                format!("1 to {MAX_TAUS} delays"),
            ));
        }
        let taus = list
            .iter()
            .map(|n| base.eval("task.taus", n))
            .collect::<Result<Vec<f64>, _>>()?;
        let bad = taus.iter().any(|v| !v.is_finite() || *v < 0.0) || taus.windows(2).any(|w| w[1] <= w[0]);
        if bad {
            return Err(InputError::invalid(
                "task.taus",
                format!("{taus:?}"),
                "finite delays tau >= 0 in increasing order",
            ));
        }
        return Ok(taus);
    }
    let end = match &t.tau_end {
        None => {
            return Err(InputError::invalid(
                "task.tau_end",
                "(missing)",
                "the largest delay tau_end > 0 (or a list `taus`)",
            ));
        }
        Some(n) => base.eval("task.tau_end", n)?,
    };
    if !(end.is_finite() && end > 0.0) {
        return Err(InputError::invalid(
            "task.tau_end",
            end,
            "a finite delay tau_end > 0",
        ));
    }
    let n = count(base, "task.n_tau", &t.n_tau, 201.0, MAX_TAUS)?;
    if n < 2 {
        return Err(InputError::invalid(
            "task.n_tau",
            n,
            "at least 2 delays (0 and tau_end)",
        ));
    }
    Ok((0..n).map(|k| end * k as f64 / (n - 1) as f64).collect())
}

/// `task.at`: "steady_state" (the default) or a time t >= 0 after `[initial]`.
fn at_field(t: &RawTask, base: &Point) -> Result<Option<f64>, InputError> {
    match &t.at {
        None => Ok(None),
        Some(Num::Text(s)) if s == "steady_state" => Ok(None),
        Some(n) => {
            let v = base.eval("task.at", n)?;
            if !(v.is_finite() && v >= 0.0) {
                return Err(InputError::invalid(
                    "task.at",
                    v,
                    "\"steady_state\" or a time t >= 0 after the [initial] state",
                ));
            }
            Ok(Some(v))
        }
    }
}

/// `spectrum = true` with `omega_max` (> 0, optional) and `n_omega` (default 401); only for a
/// stationary correlation with A = B^dag (solver::correlation: then S(omega) is real).
fn omega_grid(
    t: &RawTask,
    base: &Point,
    a: Op,
    b: Op,
    at: Option<f64>,
    n_tau: usize,
) -> Result<Option<OmegaGrid>, InputError> {
    let on = boolean(
        "task.spectrum",
        &t.spectrum,
        false,
        "the Fourier transform of C(tau)",
    )?;
    if !on {
        for (name, present) in [
            ("omega_max", t.omega_max.is_some()),
            ("n_omega", t.n_omega.is_some()),
        ] {
            if present {
                return Err(InputError::invalid(
                    format!("task.{name}"),
                    "(given)",
                    format!("no `{name}` without spectrum = true (the frequencies of S(omega))"),
                ));
            }
        }
        return Ok(None);
    }
    if at.is_some() || a != b.adjoint() {
        return Err(InputError::invalid(
            "task.spectrum",
            "true",
            format!(
                "a spectrum only of a steady-state correlation with a = b^dag (real S(omega)); \
                 this is a = \"{}\", b = \"{}\"{}",
                a.name(),
                b.name(),
                if at.is_some() { " at a time t" } else { "" }
            ),
        ));
    }
    let omega_max = match &t.omega_max {
        None => None,
        Some(_) => Some(positive(base, "task.omega_max", &t.omega_max, 1.0)?),
    };
    let n_omega = count(base, "task.n_omega", &t.n_omega, 401.0, MAX_OMEGAS)?;
    // The transform costs n_omega x n_tau complex exponentials per point.
    if n_omega as f64 * n_tau as f64 > MAX_TRANSFORM {
        return Err(InputError::invalid(
            "task.n_omega",
            n_omega,
            format!("at most {MAX_TRANSFORM:e} frequencies x delays ({n_tau} delays here)"),
        ));
    }
    Ok(Some(OmegaGrid { omega_max, n_omega }))
}

/// `kind = "correlation"` (module doc; docs/scenarios.md).
pub(super) fn correlation_task(
    t: &RawTask,
    sc: &Scenario,
    base: &Point,
) -> Result<CorrelationSpec, InputError> {
    let a = operator("task.a", &t.a, Op::Jz, false)?;
    let b = operator("task.b", &t.b, Op::Jz, false)?;
    let taus = tau_grid(t, base)?;
    let at = at_field(t, base)?;
    let spectrum = omega_grid(t, base, a, b, at, taus.len())?;
    Ok(CorrelationSpec {
        a,
        b,
        taus,
        at,
        spectrum,
        rtol: rtol(base, &t.rtol, 1e-10)?,
        atol: atol(base, &t.atol, 1e-12)?,
        max_steps: count(base, "task.max_steps", &t.max_steps, 10_000_000.0, 1e12)?,
        scan: optional_axis(t, sc, base, "kind = \"correlation\"")?,
    })
}

/// `kind = "fisher"` (module doc; docs/scenarios.md).
pub(super) fn fisher_task(t: &RawTask, sc: &Scenario, base: &Point) -> Result<FisherSpec, InputError> {
    let parameter = t.parameter.clone().ok_or_else(|| {
        InputError::invalid(
            "task.parameter",
            "(missing)",
            "the model parameter to estimate, e.g. \"w\"",
        )
    })?;
    if parameter == "N" || !PARAM_NAMES.contains(&parameter.as_str()) {
        return Err(InputError::invalid(
            "task.parameter",
            format!("\"{parameter}\""),
            format!(
                "a continuous model parameter: one of {}",
                PARAM_NAMES[1..].join(", ")
            ),
        ));
    }
    let step = match &t.step {
        None => None,
        Some(_) => Some(positive(base, "task.step", &t.step, 1.0)?),
    };
    Ok(FisherSpec {
        parameter,
        observable: operator("task.observable", &t.observable, Op::Jz, true)?,
        step,
        qfi: boolean("task.qfi", &t.qfi, true, "compute the quantum Fisher information")?,
        scan: optional_axis(t, sc, base, "kind = \"fisher\"")?,
    })
}
