//! `kind = "correlation"`: the two-time correlation
//! C(tau) = <A(t+tau)B(t)> - <A(t+tau)><B(t)> by the quantum regression theorem
//! ([`crate::solver::correlation`]), in the steady state (`at = "steady_state"`, the default)
//! or at a time t after `[initial]`; the j = N/2 manifold for collective models, the blocks R_j
//! with single-atom rates. CPU only, f64.
//!
//! Outputs:
//! - `correlation.csv`: `tau, C_re, C_im, AB_re, AB_im` (AB = <A(t+tau)B(t)>), with the scanned
//!   variable first when the task scans one;
//! - result.json: `C0`, `<A>`, `<B>`, and `relaxation_rate`, the late-time decay rate of Re C
//!   fitted by [`crate::analysis::decay::fit`] (window and error terms there), with
//!   `relaxation_rate_err`; the accuracy of C it uses is
//!   sigma = max(atol, 1e-13) max(|C|, 1) (the integrator's absolute tolerance on the entries
//!   of Y, carried to an observable of scale |C|); for a steady-state correlation of a model
//!   without a drive `population_gap` (below). For seed 004's pumping model (only Gamma
//!   and w) also `rate_estimate`, lambda(w) = N (w - Gamma)/tanh(N (w/Gamma - 1)/2) (2 Gamma
//!   at w = Gamma);
//! - with a scan, `relaxation.csv`: the variable, the fitted rate and its error, the estimate,
//!   and for a stationary correlation of a model without a drive the gap of L's population
//!   sector (q = m - m' = 0, [`super::spectrum`]: the exact asymptotic rate of C_zz; seed 004
//!   Fig. 2b compares it with the estimate), and `relaxation.png`;
//! - `correlation.png`: Re C(tau) and ln|Re C(tau)/C(0)| per point;
//! - with `spectrum = true`: `correlation_spectrum.csv`, `omega, S` with
//!   S(omega) = 2 Re int_0^{tau_end} C(tau) e^{i omega tau} dtau (trapezoid over the tau grid;
//!   a = b^dag, steady state), on `n_omega` frequencies in [-omega_max, omega_max]; by default
//!   omega_max = min(pi/dtau, 10 max(rate, 2 pi/tau_end)); `correlation_spectrum.png`.

use super::context::Context;
use super::memory;
use super::policy::{self, Kernel};
use super::report::{Report, jnum};
use crate::analysis::decay::{self, DecayFit};
use crate::c64;
use crate::error::{Error, SolverError};
use crate::model::Model;
use crate::output::CsvWriter;
use crate::output::plot::{self, Series};
use crate::scenario::{CorrelationSpec, Point, Scenario};
use crate::solver::correlation::{self as qrt, Correlation};
use serde_json::{Value, json};

/// The columns of correlation.csv after the scanned variable (if any).
pub const COLUMNS: [&str; 5] = ["tau", "C_re", "C_im", "AB_re", "AB_im"];

/// The smallest atol the accuracy of C uses (below it f64 rounding).
const MIN_ATOL: f64 = 1e-13;

/// One point's correlation, with its fit and the seed-004 estimate.
struct PointResult {
    x: f64,
    model: Model,
    corr: Correlation,
    fit: Result<DecayFit, decay::NoFit>,
    sigma: f64,
    estimate: Option<f64>,
    /// The smallest nonzero |Re lambda| of the population sector q = 0 of L (models without a
    /// drive, where L keeps q = m - m'), the exact asymptotic rate of a stationary C_zz.
    population_gap: Option<f64>,
}

/// Run `kind = "correlation"` (module doc).
pub fn run(sc: &Scenario, spec: &CorrelationSpec, ctx: &mut Context) -> Result<Report, Error> {
    let engine = policy::resolve(
        ctx.backend,
        &Kernel::CpuOnly {
            solver: "correlation",
        },
        ctx.gpu.clone(),
    )?;
    let points = sc.points()?;
    for p in &points {
        // Y and (away from the steady state) rho evolve one after the other: one evolution's
        // memory at a time, plus the state and Y.
        memory::refuse_evolution(&p.model, "the correlation's evolution")?;
    }
    ctx.progress.start(points.len() as u64, "correlation");
    let mut results = Vec::with_capacity(points.len());
    for (i, p) in points.iter().enumerate() {
        let r = point(sc, spec, p).map_err(|e| super::checks::at_point("correlation", p, e))?;
        results.push(r);
        ctx.progress.set(i as u64 + 1);
    }
    ctx.progress.finish();
    let variable = spec.scan.as_ref().map(|(v, _)| v.as_str());
    let mut files = write_csv(ctx, variable, &results)?;
    if variable.is_some() {
        files.extend(write_relaxation(sc, ctx, variable.unwrap_or(""), &results)?);
    }
    if let Some(grid) = spec.spectrum {
        files.extend(write_spectrum(sc, ctx, variable, &results, grid)?);
    }
    if sc.plot {
        draw(ctx, spec, &results)?;
        files.push("correlation.png".into());
    }
    let mut columns: Vec<String> = variable.into_iter().map(str::to_string).collect();
    columns.extend(COLUMNS.iter().map(|s| s.to_string()));
    let summaries: Vec<Value> = results.iter().map(|r| summary(r, variable)).collect();
    let mut out = if summaries.len() == 1 {
        summaries[0].clone()
    } else {
        json!({ "points": summaries })
    };
    out["a"] = json!(spec.a.name());
    out["b"] = json!(spec.b.name());
    out["at"] = spec.at.map_or(json!("steady_state"), jnum);
    let stats: Vec<_> = results.iter().map(|r| r.corr.stats).collect();
    Ok(Report {
        coverage: None,
        task: "correlation",
        solver: solver_name(&points[0].model),
        backend: engine.used(None),
        model: points[0].model,
        columns,
        results: out,
        stats: serde_json::to_value(stats).ok(),
        files,
    })
}

fn solver_name(model: &Model) -> String {
    let space = if model.is_collective() {
        "the j = N/2 master equation"
    } else {
        "the permutation-invariant blocks"
    };
    format!("correlation (quantum regression theorem on {space}, Dormand-Prince 5(4), f64)")
}

/// The correlation at one point, fitted.
fn point(sc: &Scenario, spec: &CorrelationSpec, p: &Point) -> Result<PointResult, SolverError> {
    let model = p.model;
    let opts = qrt::ode_options(spec.rtol, spec.atol, spec.max_steps);
    let (rho, stationary) = match spec.at {
        None => (qrt::steady_state(&model)?, true),
        Some(t) => {
            let psi0 = sc.initial_state(p).map_err(|e| SolverError::Unsupported {
                solver: "correlation",
                message: e.to_string(),
            })?;
            (qrt::state_at(&model, &psi0, t, &opts)?, false)
        }
    };
    let corr = qrt::correlation(&model, &rho, spec.a, spec.b, &spec.taus, stationary, &opts)?;
    let re: Vec<f64> = corr.c.iter().map(|z| z.re).collect();
    let scale = re.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let sigma = spec.atol.max(MIN_ATOL) * scale;
    let fit = decay::fit(&corr.taus, &re, sigma);
    let estimate = qrt::is_pumping_model(&model)
        .then(|| qrt::pumping_rate_estimate(model.n, model.gamma_coll, model.pump_coll));
    // The reference rate is a comparison, not the task: a spectrum that fails leaves it null.
    let population_gap = if model.drive == 0.0 && stationary {
        super::spectrum::solve(&model, 4, c64::new(0.0, 0.0), Some(0))
            .ok()
            .and_then(|sp| {
                let pairs: Vec<(c64, f64)> = sp.pairs.iter().map(|p| (p.value, p.residual)).collect();
                super::spectrum::gap(&pairs).re
            })
    } else {
        None
    };
    let x = spec
        .scan
        .as_ref()
        .and_then(|(v, _)| p.values.get(v).copied())
        .unwrap_or(f64::NAN);
    Ok(PointResult {
        x,
        model,
        corr,
        fit,
        sigma,
        estimate,
        population_gap,
    })
}

/// result.json's entry of one point.
fn summary(r: &PointResult, variable: Option<&str>) -> Value {
    let nan = c64::new(f64::NAN, f64::NAN);
    let c0 = r.corr.c.first().copied().unwrap_or(nan);
    // <A(t)> (at tau = 0), complex for J+ and J-.
    let a0 = r.corr.a_mean.first().copied().unwrap_or(nan);
    let mut v = json!({
        "C0": jnum(c0.re),
        "C0_im": jnum(c0.im),
        "mean_a": jnum(a0.re),
        "mean_a_im": jnum(a0.im),
        "mean_b": jnum(r.corr.b_mean.re),
        "mean_b_im": jnum(r.corr.b_mean.im),
        "rate_estimate": r.estimate.map_or(Value::Null, jnum),
        "population_gap": r.population_gap.map_or(Value::Null, jnum),
        "sigma": jnum(r.sigma),
    });
    match &r.fit {
        Ok(f) => {
            v["relaxation_rate"] = jnum(f.lambda);
            v["relaxation_rate_err"] = jnum(f.lambda_err);
            v["fit"] = json!({
                "status": "ok",
                "window": [jnum(r.corr.taus[f.window.0]), jnum(r.corr.taus[f.window.1])],
                "stderr": jnum(f.stderr),
                "systematic": jnum(f.systematic),
                "accuracy": jnum(f.accuracy),
            });
        }
        Err(e) => {
            v["relaxation_rate"] = Value::Null;
            v["relaxation_rate_err"] = Value::Null;
            let mut fit = json!({"status": e.code(), "reason": e.to_string()});
            if let Some(t) = e.t_needed() {
                fit["tau_end_needed"] = jnum(t);
            }
            v["fit"] = fit;
        }
    }
    if let Some(name) = variable {
        v[name] = jnum(r.x);
    }
    v
}

/// correlation.csv (module doc).
fn write_csv(ctx: &Context, variable: Option<&str>, results: &[PointResult]) -> Result<Vec<String>, Error> {
    let mut columns: Vec<String> = variable.into_iter().map(str::to_string).collect();
    columns.extend(COLUMNS.iter().map(|s| s.to_string()));
    let mut csv = CsvWriter::create(&ctx.path("correlation.csv")?, &columns)?;
    for r in results {
        for (k, tau) in r.corr.taus.iter().enumerate() {
            let (c, ab) = (r.corr.c[k], r.corr.ab[k]);
            let row = [*tau, c.re, c.im, ab.re, ab.im];
            if variable.is_some() {
                let mut full = vec![r.x];
                full.extend(row);
                csv.row(&full)?;
            } else {
                csv.row(&row)?;
            }
        }
    }
    Ok(vec!["correlation.csv".into()])
}

/// relaxation.csv and relaxation.png of a scan: rate against the variable (seed 004 Fig. 2b).
fn write_relaxation(
    sc: &Scenario,
    ctx: &Context,
    variable: &str,
    results: &[PointResult],
) -> Result<Vec<String>, Error> {
    let columns: Vec<String> = [
        variable,
        "relaxation_rate",
        "relaxation_rate_err",
        "rate_estimate",
        "population_gap",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut csv = CsvWriter::create(&ctx.path("relaxation.csv")?, &columns)?;
    let (mut x, mut rate, mut est, mut gap) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in results {
        let (l, e) = r
            .fit
            .as_ref()
            .map_or((f64::NAN, f64::NAN), |f| (f.lambda, f.lambda_err));
        let estimate = r.estimate.unwrap_or(f64::NAN);
        let g = r.population_gap.unwrap_or(f64::NAN);
        csv.row(&[r.x, l, e, estimate, g])?;
        x.push(r.x);
        rate.push(l);
        est.push(estimate);
        gap.push(g);
    }
    let mut files = vec!["relaxation.csv".to_string()];
    if sc.plot {
        // The fit is drawn last, over the gap it lies on; the second panel shows their
        // difference (where a gap exists).
        let mut series = Vec::new();
        if est.iter().any(|v| v.is_finite()) {
            series.push(Series {
                name: "seed 004 estimate N(w - Gamma)/tanh(N(w/Gamma - 1)/2)",
                y: &est,
            });
        }
        let has_gap = gap.iter().any(|v| v.is_finite());
        if has_gap {
            series.push(Series {
                name: "population-sector gap of L (q = 0)",
                y: &gap,
            });
        }
        series.push(Series {
            name: "fitted decay rate of Re C(tau)",
            y: &rate,
        });
        let diff: Vec<f64> = rate.iter().zip(&gap).map(|(a, b)| a - b).collect();
        let mut panels = vec![("lambda (rate unit of the model)", series)];
        if has_gap {
            panels.push((
                "lambda_fit - gap",
                vec![Series {
                    name: "fitted rate - population gap",
                    y: &diff,
                }],
            ));
        }
        plot::line_plot(
            &ctx.path("relaxation.png")?,
            &format!(
                "Relaxation rate lambda of C(tau) ~ e^(-lambda tau), N = {}",
                results[0].model.n
            ),
            variable,
            &x,
            &panels,
        )?;
        files.push("relaxation.png".into());
    }
    Ok(files)
}

/// The default largest frequency (module doc).
fn default_omega_max(r: &PointResult) -> f64 {
    let t = &r.corr.taus;
    let end = t.last().copied().unwrap_or(1.0).max(f64::MIN_POSITIVE);
    let dtau = t.windows(2).map(|w| w[1] - w[0]).fold(f64::INFINITY, f64::min);
    let rate = r.fit.as_ref().map_or(0.0, |f| f.lambda.abs());
    (10.0 * rate.max(2.0 * std::f64::consts::PI / end)).min(std::f64::consts::PI / dtau)
}

/// correlation_spectrum.csv (and .png): S(omega) per point.
fn write_spectrum(
    sc: &Scenario,
    ctx: &Context,
    variable: Option<&str>,
    results: &[PointResult],
    grid: crate::scenario::OmegaGrid,
) -> Result<Vec<String>, Error> {
    let mut columns: Vec<String> = variable.into_iter().map(str::to_string).collect();
    columns.extend(["omega".to_string(), "S".to_string()]);
    let mut csv = CsvWriter::create(&ctx.path("correlation_spectrum.csv")?, &columns)?;
    let omega_max = grid.omega_max.unwrap_or_else(|| default_omega_max(&results[0]));
    let n = grid.n_omega;
    let omegas: Vec<f64> = (0..n)
        .map(|k| {
            if n == 1 {
                0.0
            } else {
                -omega_max + 2.0 * omega_max * k as f64 / (n - 1) as f64
            }
        })
        .collect();
    let mut curves = Vec::new();
    for r in results {
        let s = qrt::spectrum(&r.corr.taus, &r.corr.c, &omegas);
        for (w, v) in omegas.iter().zip(&s) {
            match variable {
                Some(_) => csv.row(&[r.x, *w, *v])?,
                None => csv.row(&[*w, *v])?,
            }
        }
        curves.push(s);
    }
    let mut files = vec!["correlation_spectrum.csv".to_string()];
    if sc.plot {
        let names = point_names(variable, results);
        let series: Vec<Series> = curves
            .iter()
            .zip(&names)
            .map(|(y, name)| Series { name, y })
            .collect();
        plot::line_plot(
            &ctx.path("correlation_spectrum.png")?,
            &format!(
                "S(omega) = 2 Re int_0^tau_end C(tau) e^(i omega tau) dtau, N = {}",
                results[0].model.n
            ),
            "omega (rate unit of the model)",
            &omegas,
            &[("S(omega) (1/rate unit)", series)],
        )?;
        files.push("correlation_spectrum.png".into());
    }
    Ok(files)
}

/// Legend names of the points: "w = 1" per scanned value, or "" for a single point.
fn point_names(variable: Option<&str>, results: &[PointResult]) -> Vec<String> {
    results
        .iter()
        .map(|r| variable.map_or(String::new(), |v| format!("{v} = {}", short(r.x))))
        .collect()
}

/// A value for a legend: six significant digits, trailing zeros dropped.
fn short(v: f64) -> String {
    let s = format!("{v:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// correlation.png: Re C(tau) and ln|Re C(tau) / C(0)| per point (a straight line of slope
/// -lambda where the decay is single-exponential).
fn draw(ctx: &Context, spec: &CorrelationSpec, results: &[PointResult]) -> Result<(), Error> {
    let variable = spec.scan.as_ref().map(|(v, _)| v.as_str());
    let names = point_names(variable, results);
    let re: Vec<Vec<f64>> = results
        .iter()
        .map(|r| r.corr.c.iter().map(|z| z.re).collect())
        .collect();
    let logs: Vec<Vec<f64>> = re
        .iter()
        .map(|c| {
            let c0 = c[0].abs();
            c.iter()
                .map(|v| {
                    if *v != 0.0 && c0 > 0.0 {
                        (v.abs() / c0).ln()
                    } else {
                        f64::NAN
                    }
                })
                .collect()
        })
        .collect();
    let lin_s: Vec<Series> = re
        .iter()
        .zip(&names)
        .map(|(y, n)| Series { name: n, y })
        .collect();
    let log_s: Vec<Series> = logs
        .iter()
        .zip(&names)
        .map(|(y, n)| Series { name: n, y })
        .collect();
    let (a, b) = (spec.a.name(), spec.b.name());
    let at = spec.at.map_or("steady state".to_string(), |t| format!("t = {t}"));
    plot::line_plot(
        &ctx.path("correlation.png")?,
        &format!(
            "C(tau) = <{a}(t+tau) {b}(t)> - <{a}><{b}>, {at}, N = {}",
            results[0].model.n
        ),
        "tau (1/rate unit of the model)",
        &results[0].corr.taus,
        &[("Re C(tau)", lin_s), ("ln |Re C(tau) / C(0)|", log_s)],
    )?;
    Ok(())
}
