//! `[task] decay_fit = "<column>"` of `kind = "evolve"` (exact method): the Liouvillian gap
//! from dynamics (seed 000: "we found the Liouvillian gap lambda_1 by fitting the long-time
//! dynamics of the magnetization, <S_z(t)> - <S_z(inf)> ~ e^{-lambda_1 t}").
//!
//! d(t) = <O>(t) - <O>(inf), with <O>(inf) from the exact steady state of the same model
//! ([`steady_state::solve_point`], the same columns as the evolution's rows), not from the last
//! sample: the late-time tail then fits exactly, with no offset to guess. ln|d| = c - lambda t
//! is fitted by [`analysis::decay::fit`](crate::analysis::decay::fit) over a window chosen
//! there (its module doc: the floor, the window rule, the error terms), with the accuracy of d
//!
//! ```text
//! sigma = max(atol, 1e-13) x s,   s = max(|<O>(inf)|, max_t |<O>(t)|, 1)
//! ```
//!
//! (the integrator's absolute tolerance on the state's entries, carried to an observable of
//! scale s), so the floor of usable |d| is 1e3 sigma (>= 1e-10 s).
//!
//! Outcomes are results, not errors: result.json's `decay_fit` has `status` "ok" and the fit,
//! or the reason there is none (`reason`; `t_end_needed` where a longer run would help), and
//! the run keeps its files. `decay_fit.png`: ln|d| against t, the fitted line over the window.

use super::rows::Table;
use super::steady_state;
use crate::analysis::decay::{self, DecayFit};
use crate::error::Error;
use crate::output::plot::{self, Series};
use crate::scenario::{EvolveSpec, Point, Scenario};
use serde_json::{Value, json};
use std::path::Path;

/// The figure's file name.
pub const FIGURE: &str = "decay_fit.png";

/// The smallest atol the accuracy estimate uses (below it f64 rounding of the observable).
const MIN_ATOL: f64 = 1e-13;

/// The fit of column `observable` of the evolution `table` (times in column 0) at point `p`:
/// result.json's `decay_fit` object and the figure's file name (when plots are on).
pub fn run(
    sc: &Scenario,
    p: &Point,
    spec: &EvolveSpec,
    table: &Table,
    observable: &str,
    dir: &Path,
) -> Result<(Value, Vec<String>), Error> {
    let Some(col) = table.names.iter().position(|n| n == observable) else {
        return Ok((
            no_fit(observable, f64::NAN, "bad_input", "no such column"),
            vec![],
        ));
    };
    let t: Vec<f64> = table.rows.iter().map(|r| r[0]).collect();
    let o: Vec<f64> = table.rows.iter().map(|r| r[col + 1]).collect();
    let o_inf = match steady_state::solve_point(sc, p) {
        Ok(sol) => sol
            .rows
            .first()
            .and_then(|r| r.get(col))
            .copied()
            .unwrap_or(f64::NAN),
        Err(e) => {
            let reason = format!("the exact steady state (<O>(inf)) could not be computed: {e}");
            return Ok((no_fit(observable, f64::NAN, "no_steady_state", &reason), vec![]));
        }
    };
    let d: Vec<f64> = o.iter().map(|v| v - o_inf).collect();
    let scale = o.iter().fold(o_inf.abs().max(1.0), |m, v| m.max(v.abs()));
    let sigma = spec.atol.max(MIN_ATOL) * scale;
    let fit = decay::fit(&t, &d, sigma);
    let mut out = match &fit {
        Ok(f) => fitted(observable, o_inf, f, &t),
        Err(e) => {
            let mut v = no_fit(observable, o_inf, e.code(), &e.to_string());
            if let Some(t_needed) = e.t_needed() {
                v["t_end_needed"] = super::report::jnum(t_needed);
            }
            v
        }
    };
    out["sigma"] = super::report::jnum(sigma);
    out["floor"] = super::report::jnum(decay::FLOOR_FACTOR * sigma);
    let mut files = Vec::new();
    if sc.plot {
        figure(&dir.join(FIGURE), observable, &t, &d, fit.as_ref().ok(), sigma)?;
        files.push(FIGURE.to_string());
    }
    Ok((out, files))
}

/// result.json's `decay_fit` of a fit.
fn fitted(observable: &str, o_inf: f64, f: &DecayFit, t: &[f64]) -> Value {
    use super::report::jnum;
    json!({
        "observable": observable,
        "status": "ok",
        "lambda": jnum(f.lambda),
        "lambda_err": jnum(f.lambda_err),
        "stderr": jnum(f.stderr),
        "systematic": jnum(f.systematic),
        "accuracy": jnum(f.accuracy),
        "window": [jnum(t[f.window.0]), jnum(t[f.window.1])],
        "samples": f.window.1 + 1 - f.window.0,
        "amplitude": jnum(f.sign * f.intercept.exp()),
        "o_inf": jnum(o_inf),
    })
}

/// result.json's `decay_fit` without a fit: the status code and the reason.
fn no_fit(observable: &str, o_inf: f64, status: &str, reason: &str) -> Value {
    json!({
        "observable": observable,
        "status": status,
        "reason": reason,
        "lambda": null,
        "lambda_err": null,
        "o_inf": super::report::jnum(o_inf),
    })
}

/// A time for a title: four decimals, trailing zeros dropped.
fn short(v: f64) -> String {
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// decay_fit.png, two panels against t: ln|d(t)| with the fitted line over its window (and the
/// accuracy floor where the data come within 3 e-folds of it); the residual of the fit over
/// the window, ln|d| - (c - lambda t).
fn figure(
    path: &Path,
    observable: &str,
    t: &[f64],
    d: &[f64],
    fit: Option<&DecayFit>,
    sigma: f64,
) -> Result<(), Error> {
    let ln_d: Vec<f64> = d
        .iter()
        .map(|v| if *v != 0.0 { v.abs().ln() } else { f64::NAN })
        .collect();
    let in_window = |i: usize| fit.is_some_and(|f| (f.window.0..=f.window.1).contains(&i));
    let model = |i: usize| fit.map_or(f64::NAN, |f| f.intercept - f.lambda * t[i]);
    let line: Vec<f64> = (0..t.len())
        .map(|i| if in_window(i) { model(i) } else { f64::NAN })
        .collect();
    let residual: Vec<f64> = (0..t.len())
        .map(|i| {
            if in_window(i) {
                ln_d[i] - model(i)
            } else {
                f64::NAN
            }
        })
        .collect();
    let ln_floor = (decay::FLOOR_FACTOR * sigma).ln();
    let lowest = ln_d
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f64::INFINITY, f64::min);
    let floor = vec![ln_floor; t.len()];
    let mut top = vec![
        Series {
            name: "ln |d(t)|, exact evolution",
            y: &ln_d,
        },
        Series {
            name: "fit c - lambda t over its window",
            y: &line,
        },
    ];
    if lowest < ln_floor + 3.0 {
        top.push(Series {
            name: "accuracy floor",
            y: &floor,
        });
    }
    let title = match fit {
        Some(f) => format!(
            "<{observable}>(t) - <{observable}>(inf) ~ exp(-lambda t): lambda = {:.5e} ± {:.1e}, \
             t in [{}, {}]",
            f.lambda,
            f.lambda_err,
            short(t[f.window.0]),
            short(t[f.window.1])
        ),
        None => format!("<{observable}>: no single-exponential tail (result.json: decay_fit)"),
    };
    let y_top = format!("ln |<{observable}>(t) - <{observable}>(inf)|");
    let mut panels = vec![(y_top.as_str(), top)];
    if fit.is_some() {
        panels.push((
            "residual of the fit",
            vec![Series {
                name: "ln |d| - (c - lambda t), window",
                y: &residual,
            }],
        ));
    }
    plot::line_plot(path, &title, "t (1/rate unit of the model)", t, &panels)?;
    Ok(())
}
