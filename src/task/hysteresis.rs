//! `[analysis.hysteresis]` of an evolution under a ramped parameter (seed 004 Fig. 3b): the
//! crossings of the observable with its level on the up and down legs and the loop width
//! ([`crate::analysis::hysteresis`]), in result.json as `hysteresis`, and `hysteresis.png`:
//! the observable against the parameter, each leg in its colour, beside the exact steady-state
//! curve along the parameter (the adiabatic limit, seed 004 eq. 4) where the method is exact.
//!
//! A pump ramp's width is also given in units of the transition width 2 Gamma/N
//! (`width_scaled`, seed 004 Fig. 4) when the parameter is w and Gamma > 0.

use super::rows::Table;
use crate::analysis::hysteresis::crossings;
use crate::error::Error;
use crate::output::plot::{Curve, curve_plot};
use crate::scenario::{HysteresisSpec, Point, Scenario};
use crate::solver::Method;
use serde_json::{Value, json};
use std::path::Path;

/// Points of the steady-state curve drawn beside the loop.
const STEADY_POINTS: usize = 41;

/// The analysis of `table` (columns `t`, then `table.names`) and its figure; returns the
/// result.json entry and the files written.
pub fn run(
    sc: &Scenario,
    spec: &HysteresisSpec,
    p: &Point,
    table: &Table,
    dir: &Path,
) -> Result<(Value, Vec<String>), Error> {
    let col = |name: &str| -> Vec<f64> {
        let k = table
            .names
            .iter()
            .position(|n| n == name)
            .map_or(usize::MAX, |k| k + 1);
        table
            .rows
            .iter()
            .map(|r| r.get(k).copied().unwrap_or(f64::NAN))
            .collect()
    };
    let t: Vec<f64> = table.rows.iter().map(|r| r[0]).collect();
    let (par, y) = (col(&spec.parameter), col(&spec.observable));
    let lp = crossings(&t, &par, &y, spec.level);
    let gamma = p.model.gamma_coll;
    let mut out = json!({
        "parameter": spec.parameter,
        "observable": spec.observable,
        "level": spec.level,
        "p_up": super::report::jnum(lp.p_up),
        "p_down": super::report::jnum(lp.p_down),
        "width": super::report::jnum(lp.width),
        "crossings": lp.crossings,
    });
    if gamma > 0.0 && spec.parameter == "w" {
        out["width_scaled"] = super::report::jnum(lp.width * p.model.n as f64 / (2.0 * gamma));
    }
    let mut files = Vec::new();
    if sc.plot {
        let steady = if sc.method == Method::Exact {
            steady_curve(spec, p, &par)
        } else {
            Vec::new()
        };
        let leg = |up: bool| -> Vec<(f64, f64)> {
            (0..t.len())
                .map(|i| {
                    let dp = if i + 1 < t.len() {
                        par[i + 1] - par[i]
                    } else {
                        par[i] - par[i - 1]
                    };
                    if (dp > 0.0) == up && dp != 0.0 {
                        (par[i], y[i])
                    } else {
                        (f64::NAN, f64::NAN)
                    }
                })
                .collect()
        };
        let (up, down) = (leg(true), leg(false));
        let mut curves = vec![
            Curve {
                name: "ramp up",
                colour: 3,
                points: &up,
                dashed: false,
            },
            Curve {
                name: "ramp down",
                colour: 0,
                points: &down,
                dashed: false,
            },
        ];
        if !steady.is_empty() {
            curves.push(Curve {
                name: "steady state",
                colour: 7,
                points: &steady,
                dashed: true,
            });
        }
        let title = format!(
            "hysteresis of <{}> at {}: loop width {:.4} in {} (N = {})",
            spec.observable, spec.level, lp.width, spec.parameter, p.model.n
        );
        let path = dir.join("hysteresis.png");
        curve_plot(
            &path,
            &title,
            &spec.parameter,
            &format!("<{}>", spec.observable),
            &curves,
        )?;
        files.push("hysteresis.png".to_string());
    }
    Ok((out, files))
}

/// The exact steady state's observable along the parameter's range, or nothing when a solve
/// fails or would need much memory (the loop is the result; this curve is its reference).
fn steady_curve(spec: &HysteresisSpec, p: &Point, par: &[f64]) -> Vec<(f64, f64)> {
    let (lo, hi) = par
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let empty_range = lo.partial_cmp(&hi) != Some(std::cmp::Ordering::Less);
    if empty_range || p.model.n > 400 || (!p.model.is_collective() && p.model.n > 40) {
        return Vec::new();
    }
    let mut pts = Vec::new();
    for k in 0..STEADY_POINTS {
        let v = lo + (hi - lo) * k as f64 / (STEADY_POINTS - 1) as f64;
        let mut m = p.model;
        m.set(&spec.parameter, v);
        if m.no_unique_steady_state().is_some() {
            continue;
        }
        let Ok((state, _)) = super::exact_steady::solve(&m) else {
            return Vec::new();
        };
        let base = crate::scenario::BASE_OBSERVABLES
            .iter()
            .position(|n| *n == spec.observable);
        let extras = match base {
            Some(_) => Vec::new(),
            None => vec![spec.observable.clone()],
        };
        let row = super::rows::observable_row(state.as_ref(), &extras, None);
        let value = base.map_or(row.last().copied(), |k| row.get(k).copied());
        pts.push((v, value.unwrap_or(f64::NAN)));
    }
    pts
}
