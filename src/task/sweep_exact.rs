//! `kind = "sweep"` with `method = "exact"`: one exact evolution per point of one or two axes,
//! for models whose populations obey a closed rate equation ([`crate::solver::populations`]:
//! no drive, no single-atom process; collective decay and pumping, possibly scheduled), with
//! the hysteresis loop of `[analysis.hysteresis]` per point. Seed 004 Fig. 4: the loop width
//! over a grid of ramp rate r and atom number N, and its collapse in units of 2 Gamma/N.
//!
//! Each point evaluates its own model, schedules, save grid (`t_end` may depend on the point:
//! a ramp's duration is (w_hi - w_lo) N / (2 r Gamma)) and initial populations (a Dicke state,
//! `thermal`, or `steady_state` with overrides: detailed balance), integrates them with the
//! L-stable TR-BDF2 of the solver, and keeps the final <Jz>, Var Jz and the loop
//! ([`crate::analysis::hysteresis`] on the saves of <Jz> or Var Jz against the scheduled
//! parameter). sweep.csv: the axes, the model parameters that vary, then
//! [`EXACT_SWEEP_QUANTITIES`].
//!
//! Points run in chunks of [`CHUNK`] (rayon inside a chunk); each chunk is a unit of the run's
//! checkpoint (engine "cpu f64"), its payload the points' quantities exactly, so an interrupted
//! and resumed sweep writes the files of an uninterrupted one. A point whose integration fails
//! (step size, step budget, non-finite) gets `status` 1, 2 or 3 and NaN quantities and the sweep
//! goes on; an input error at a point (an expression, an initial state out of range) stops it.
//!
//! Figure (`sweep.png`): with `[analysis.hysteresis]`, the loop width against the first axis,
//! one curve per value of the second (at most [`MAX_CURVES`]), on logarithmic axes where the
//! axis is log-spaced and the widths positive (Fig. 4b's axes); `width_scaled` when the
//! parameter is w. Otherwise the `heatmap` column as a heat map (two axes) or a line (one).

use super::checkpoint::{CHECKPOINT_DIR, Dec, Enc};
use super::context::Context;
use super::policy::{self, Kernel};
use super::report::{Report, jnum, named};
use super::sweep::{SWEEP_CSV, ascending, chunk_extras, pins, varying_parameters};
use crate::analysis::hysteresis::crossings;
use crate::error::{Error, InputError, SolverError};
use crate::output::{CsvWriter, plot};
use crate::scenario::{EXACT_SWEEP_QUANTITIES, Mixed, Point, Scenario, State, SweepSpec};
use crate::solver::ode::OdeOptions;
use crate::solver::populations;
use rayon::prelude::*;
use serde_json::json;
use std::time::Instant;

/// Points per chunk (integrated in parallel, then written).
pub const CHUNK: usize = 256;

/// Most curves in the width figure (more values on the second axis: a heat map).
pub const MAX_CURVES: usize = 12;

/// Quantities per point (the columns after the axes and varying parameters).
const NQ: usize = EXACT_SWEEP_QUANTITIES.len();

/// Run a validated `kind = "sweep"`, `method = "exact"` scenario.
pub fn run(sc: &Scenario, spec: &SweepSpec, ctx: &mut Context) -> Result<Report, Error> {
    let solver = "populations (the j = N/2 rate equation, TR-BDF2, CPU f64)";
    let engine = policy::resolve(ctx.backend, &Kernel::CpuOnly { solver }, ctx.gpu.clone())?;
    let total = spec.len();
    let varying = varying_parameters(sc, spec)?;
    let mut header: Vec<String> = spec.axes.iter().map(|a| a.variable.clone()).collect();
    header.extend(varying.iter().map(|s| s.to_string()));
    header.extend(EXACT_SWEEP_QUANTITIES.iter().map(|s| s.to_string()));
    super::memory::refuse_bytes(
        memory_estimate(sc, spec)?,
        format!("an exact sweep of {total} points (their quantities, and the saves of the points in flight)"),
    )?;
    let mut units = ctx.units("sweep", engine.tag(), total as u64, CHUNK as u64, "points")?;
    let mut csv = CsvWriter::create(&ctx.path(SWEEP_CSV)?, &header)?;
    let chunk = |u: usize| u * CHUNK..((u + 1) * CHUNK).min(total);
    let mut rows: Vec<[f64; NQ]> = Vec::with_capacity(total);
    let (mut wall, mut computed) = (0.0, 0usize);
    units.run(
        ctx.progress,
        "sweep",
        |u| {
            let t = Instant::now();
            let out = chunk(u)
                .into_par_iter()
                .map(|i| point(sc, spec, i))
                .collect::<Result<Vec<_>, Error>>()?;
            wall += t.elapsed().as_secs_f64();
            computed += out.len();
            let mut e = Enc::default();
            e.f64s(&out.concat());
            Ok(e.0)
        },
        |u, payload| {
            let q = decode(&payload, chunk(u).len())?;
            let extras = chunk_extras(sc, spec, &varying, chunk(u))?;
            for (k, i) in chunk(u).enumerate() {
                let mut row = spec.coords(i);
                row.extend(&extras[k]);
                row.extend(q[k]);
                csv.row(&row)?;
            }
            rows.extend(q);
            Ok(())
        },
    )?;
    let mut files = vec![SWEEP_CSV.to_string()];
    if sc.plot && units.whole() && draw(sc, spec, ctx.dir, &rows)? {
        files.push("sweep.png".into());
    }
    let steps: f64 = rows.iter().map(|r| r[6]).sum();
    Ok(Report {
        coverage: Some(units.coverage()),
        task: "sweep",
        solver: solver.into(),
        backend: engine.used(None),
        model: sc.point(&[])?.model,
        columns: header,
        results: results_json(sc, spec, &rows),
        stats: Some(json!({
            "integrator": options(spec),
            "steps": steps,
            "mean_steps_per_point": steps / rows.len().max(1) as f64,
            "integrate_wall_s": wall,
            "points_integrated": computed,
            "points_per_s": computed as f64 / f64::max(wall, 1e-9),
        })),
        files,
    })
}

/// Estimated bytes: the quantities of every point (kept for the figure and the summary),
/// and per point in flight (a chunk at most) its populations, rate coefficients and saved
/// observable and parameter, at the first point's N and save count.
pub fn memory_estimate(sc: &Scenario, spec: &SweepSpec) -> Result<f64, Error> {
    let p = sc.point(&pins(spec, &spec.coords(0)))?;
    let nsave = spec.time_defs.grid(&p, "kind = \"sweep\"")?.len() as f64;
    let levels = p.model.n as f64 + 1.0;
    let in_flight = CHUNK.min(spec.len()) as f64 * (2.0 * nsave + 9.0 * levels) * 8.0;
    Ok(spec.len() as f64 * (NQ as f64 * 8.0 + 64.0) + in_flight)
}

fn options(spec: &SweepSpec) -> OdeOptions {
    OdeOptions {
        rtol: spec.rtol,
        atol: spec.atol,
        max_steps: spec.max_steps,
        h0: None,
    }
}

/// The mirror of the payload written by [`run`]'s compute step, for `len` points.
fn decode(payload: &[u8], len: usize) -> Result<Vec<[f64; NQ]>, Error> {
    let v = Dec(payload).f64s()?;
    if v.len() != len * NQ {
        let what = format!(
            "a sweep chunk of {} numbers where {} were expected",
            v.len(),
            len * NQ
        );
        return Err(crate::output::checkpoint::corrupt(std::path::Path::new(CHECKPOINT_DIR), what).into());
    }
    Ok(v.chunks_exact(NQ)
        .map(|c| c.try_into().expect("chunks of NQ"))
        .collect())
}

/// Point `i`: its quantities (module doc), or the input error that stops the sweep.
fn point(sc: &Scenario, spec: &SweepSpec, i: usize) -> Result<[f64; NQ], Error> {
    let p = sc.point(&pins(spec, &spec.coords(i)))?;
    let protocol = p.protocol();
    if let Some((name, v)) = populations::protocol_support(&protocol) {
        return Err(InputError::invalid(
            format!("model.{name}"),
            if v.is_nan() {
                "(a schedule)".to_string()
            } else {
                v.to_string()
            },
            format!("0 at every point of a sweep with method = \"exact\" (point {i})"),
        )
        .into());
    }
    let times = spec.time_defs.grid(&p, "kind = \"sweep\"")?;
    let p0 = initial(sc, &p)?;
    let observable = sc.hysteresis.as_ref().map(|h| h.observable.as_str());
    let parameter = sc.hysteresis.as_ref().map(|h| h.parameter.as_str());
    let (mut y, mut par) = (Vec::with_capacity(times.len()), Vec::with_capacity(times.len()));
    let mut last = (f64::NAN, f64::NAN);
    let result = populations::evolve_protocol(&protocol, &p0, &times, &options(spec), |_, t, pop| {
        let (jz, jz2) = populations::jz_moments(pop);
        last = (jz, jz2 - jz * jz);
        y.push(if observable == Some("var_Jz") {
            last.1
        } else {
            last.0
        });
        if let Some(name) = parameter {
            par.push(protocol.at(t).get(name).unwrap_or(f64::NAN));
        }
    });
    let (status, steps, rejected) = match result {
        Ok(s) => (0.0, s.steps as f64, s.rejected as f64),
        Err(SolverError::Interrupted { t }) => return Err(SolverError::Interrupted { t }.into()),
        Err(SolverError::StepSizeTooSmall { .. }) => (1.0, f64::NAN, f64::NAN),
        Err(SolverError::TooManySteps { .. }) => (2.0, f64::NAN, f64::NAN),
        Err(_) => (3.0, f64::NAN, f64::NAN),
    };
    let mut q = [f64::NAN; NQ];
    q[6..].copy_from_slice(&[steps, rejected, status]);
    if status != 0.0 {
        return Ok(q);
    }
    q[0] = last.0;
    q[1] = last.1;
    if let Some(h) = &sc.hysteresis {
        let lp = crossings(&times, &par, &y, h.level);
        q[2..5].copy_from_slice(&[lp.p_up, lp.p_down, lp.width]);
        let g = p.model.gamma_coll;
        if h.parameter == "w" && g > 0.0 {
            q[5] = lp.width * p.model.n as f64 / (2.0 * g);
        }
    }
    Ok(q)
}

/// The initial populations at `p`: a Dicke state, `thermal`, or `steady_state` (validation
/// refuses the states with coherences).
fn initial(sc: &Scenario, p: &Point) -> Result<Vec<f64>, InputError> {
    let spec = sc.initial.as_ref().ok_or_else(|| {
        InputError::invalid("initial", "(missing)", "an [initial] table for kind = \"sweep\"")
    })?;
    let n = p.model.n;
    match p.mixed("initial", spec)? {
        Some(Mixed::Thermal { beta }) => Ok(populations::thermal(n, beta)),
        Some(Mixed::From { dir }) => Err(InputError::invalid(
            "initial.state.from",
            format!("\"{dir}\""),
            "\"dicke\", \"thermal\" or \"steady_state\" for a sweep (each point has its own N \
             and model; a saved state belongs to one run)",
        )),
        Some(Mixed::SteadyState(m)) => {
            let refuse = |why: String| InputError::invalid("initial.state", "\"steady_state\"", why);
            if let Some((name, v)) = populations::support(&m) {
                return Err(refuse(format!(
                    "a steady state without coherences for method = \"exact\" ({name} = {v} couples them)"
                )));
            }
            populations::steady(n, m.gamma_coll, m.pump_coll)
                .ok_or_else(|| refuse("Gamma > 0 or w > 0 (a unique steady state)".into()))
        }
        None => match sc.initial_spec(p)? {
            State::Dicke { m } => {
                let psi = crate::state::pure::dicke(n, m)?;
                Ok(psi.iter().map(|a| a.norm_sqr()).collect())
            }
            _ => Err(InputError::invalid(
                "initial.state",
                "(a state with coherences)",
                "\"dicke\", \"thermal\" or \"steady_state\" for method = \"exact\"",
            )),
        },
    }
}

/// The column of [`EXACT_SWEEP_QUANTITIES`] named `name`.
fn col(name: &str) -> usize {
    EXACT_SWEEP_QUANTITIES
        .iter()
        .position(|q| *q == name)
        .unwrap_or(0)
}

fn results_json(sc: &Scenario, spec: &SweepSpec, rows: &[[f64; NQ]]) -> serde_json::Value {
    let names: Vec<String> = spec.axes.iter().map(|a| a.variable.clone()).collect();
    let failures: Vec<_> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r[col("status")] != 0.0)
        .take(10)
        .map(|(i, r)| json!({"point": i, "at": named(&names, &spec.coords(i)), "status": r[col("status")]}))
        .collect();
    let failed = rows.iter().filter(|r| r[col("status")] != 0.0).count();
    let mut out = json!({
        "points": rows.len(),
        "layout": if spec.grid { "grid" } else { "list" },
        "axes": spec.axes.iter().map(|a| json!({"variable": a.variable, "n": a.values.len(), "spacing": if a.log { "log" } else { "linear" }})).collect::<Vec<_>>(),
        "failed": failed,
        "failures": failures,
    });
    if let Some(h) = &sc.hysteresis {
        let w = rows.iter().map(|r| r[col("width")]).filter(|v| v.is_finite());
        let (lo, hi) = w.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
        out["hysteresis"] = json!({
            "observable": h.observable,
            "level": h.level,
            "parameter": h.parameter,
            "width_min": jnum(lo),
            "width_max": jnum(hi),
            "slopes": slopes(spec, rows),
        });
    }
    out
}

/// Power laws of the loop width along a log-spaced first axis of a grid (seed 004 Fig. 4a:
/// width ~ r^eta, eta = 1 for r << Gamma, ~0.6 for r >> Gamma): for each value of the second
/// axis, the least-squares slope of ln width against ln x over the lowest and the highest
/// quarter of the first axis (at least 3 points each, so 12 values or more), with the
/// prefactor. Empty otherwise.
fn slopes(spec: &SweepSpec, rows: &[[f64; NQ]]) -> Vec<serde_json::Value> {
    let ax = &spec.axes[0];
    let n = ax.values.len();
    if !(ax.log && spec.grid && n >= 12) {
        return Vec::new();
    }
    let nb = spec.axes.get(1).map_or(1, |b| b.values.len());
    let (Some(ox), q) = (ascending(&ax.values), n / 4) else {
        return Vec::new();
    };
    (0..nb)
        .map(|j| {
            let pts = |idx: &[usize]| -> Vec<(f64, f64)> {
                idx.iter()
                    .map(|&i| (ax.values[i].ln(), rows[i * nb + j][col("width")].ln()))
                    .filter(|p| p.0.is_finite() && p.1.is_finite())
                    .collect()
            };
            let (low, high) = (power_law(&pts(&ox[..q])), power_law(&pts(&ox[n - q..])));
            let mut v = json!({
                "slope_low": jnum(low.0), "prefactor_low": jnum(low.1),
                "slope_high": jnum(high.0), "prefactor_high": jnum(high.1),
                "range_low": [ax.values[ox[0]], ax.values[ox[q - 1]]],
                "range_high": [ax.values[ox[n - q]], ax.values[ox[n - 1]]],
            });
            if let Some(b) = spec.axes.get(1) {
                v[&b.variable] = json!(b.values[j]);
            }
            v
        })
        .collect()
}

/// Dashed power laws through the lowest and highest quarter of `pts` (the last curve, sorted
/// in x; at least 12 points on a log axis), each over its half of the x range.
fn asymptotes(log: bool, x: &str, pts: &[(f64, f64)]) -> Vec<(String, Vec<(f64, f64)>)> {
    let n = pts.len();
    if !log || n < 12 {
        return Vec::new();
    }
    let q = n / 4;
    let ln = |p: &[(f64, f64)]| -> Vec<(f64, f64)> {
        p.iter()
            .map(|p| (p.0.ln(), p.1.ln()))
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect()
    };
    let half = [(&pts[..q], &pts[..n / 2 + 1]), (&pts[n - q..], &pts[n / 2..])];
    half.iter()
        .filter_map(|(fit, span)| {
            let (eta, a) = power_law(&ln(fit));
            eta.is_finite().then(|| {
                let line = span.iter().map(|p| (p.0, a * p.0.powf(eta))).collect();
                (format!("~ {x}^{eta:.2}"), line)
            })
        })
        .collect()
}

/// Least-squares line through (ln x, ln y): (slope, prefactor e^intercept); NaN for fewer
/// than 3 points.
fn power_law(p: &[(f64, f64)]) -> (f64, f64) {
    if p.len() < 3 {
        return (f64::NAN, f64::NAN);
    }
    let m = p.len() as f64;
    let (sx, sy) = p.iter().fold((0.0, 0.0), |(a, b), q| (a + q.0, b + q.1));
    let (mx, my) = (sx / m, sy / m);
    let (sxy, sxx) = p.iter().fold((0.0, 0.0), |(a, b), q| {
        (a + (q.0 - mx) * (q.1 - my), b + (q.0 - mx).powi(2))
    });
    let slope = sxy / sxx;
    (slope, (my - slope * mx).exp())
}

/// The figure of the module doc; true when one was written.
fn draw(sc: &Scenario, spec: &SweepSpec, dir: &std::path::Path, rows: &[[f64; NQ]]) -> Result<bool, Error> {
    let path = dir.join("sweep.png");
    let ax = &spec.axes[0];
    let second = spec.axes.get(1);
    let fits = second.is_none_or(|b| b.values.len() <= MAX_CURVES);
    if let (Some(h), true, true) = (&sc.hysteresis, spec.grid, fits) {
        let scaled = rows.iter().any(|r| r[col("width_scaled")].is_finite());
        let c = if scaled { col("width_scaled") } else { col("width") };
        let Some(ox) = ascending(&ax.values) else {
            return Ok(false);
        };
        let nb = second.map_or(1, |b| b.values.len());
        let labels: Vec<String> = (0..nb)
            .map(|j| second.map_or(String::new(), |b| format!("{} = {}", b.variable, b.values[j])))
            .collect();
        let points: Vec<Vec<(f64, f64)>> = (0..nb)
            .map(|j| ox.iter().map(|&i| (ax.values[i], rows[i * nb + j][c])).collect())
            .collect();
        let mut curves: Vec<plot::Curve> = (0..nb)
            .map(|j| plot::Curve {
                name: &labels[j],
                colour: j,
                points: &points[j],
                dashed: false,
            })
            .collect();
        let asymptotes = asymptotes(ax.log, &ax.variable, &points[nb - 1]);
        for (k, (name, pts)) in asymptotes.iter().enumerate() {
            curves.push(plot::Curve {
                name,
                colour: 7 + k,
                points: pts,
                dashed: true,
            });
        }
        let y_label = if scaled {
            format!(
                "loop width of <{}> = {} in {}, units of 2 Gamma/N",
                h.observable, h.level, h.parameter
            )
        } else {
            format!(
                "loop width of <{}> = {} in {}",
                h.observable, h.level, h.parameter
            )
        };
        let title = sc.title.clone();
        plot::loglog_curves(&path, &title, (&ax.variable, &y_label), &curves, ax.log)?;
        return Ok(true);
    }
    // No loop: the cumulant sweep's figure of one column (heat map or line).
    let heat: Vec<f64> = rows.iter().map(|r| r[col(&spec.heatmap)]).collect();
    Ok(super::sweep::draw(sc, spec, dir, &heat)?.is_some())
}
