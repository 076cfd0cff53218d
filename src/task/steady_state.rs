//! `kind = "steady_state"` (and the points of `kind = "scan"`, `mode = "steady_state"`): the
//! exact steady state by sparse LU, observables, P_m, Husimi Q.
//!
//! Collective-only models: [`master::steady_state`] on the (N+1)^2 Liouvillian of the
//! j = N/2 irrep. Single-atom rates: [`blocks::steady_state`] on the blocks R_j (memory
//! estimated, fill included, and refused before the factorisation). CPU only: one sparse LU
//! has no batch to fill a GPU with.

use super::approx;
use super::checks::{self, Budget, Guard};
use super::context::Context;
use super::policy::{self, Kernel};
use super::report::{Report, named};
use super::rows::{self, OwnedState, Table};
use crate::error::{Error, SolverError};
use crate::output::CsvWriter;
use crate::scenario::{BASE_OBSERVABLES, Point, Scenario};
use crate::solver::Method;

use serde_json::json;

pub use super::exact_steady::solve;

/// One point's steady state(s): observable rows (mean field: one per stable fixed point,
/// with the trailing `branch` column), the exact state if there is one (P_m, Husimi), the
/// solver statistics.
pub struct PointSolution {
    pub rows: Vec<Vec<f64>>,
    pub state: Option<OwnedState>,
    pub stats: serde_json::Value,
}

pub fn solve_point(sc: &Scenario, p: &Point) -> Result<PointSolution, Error> {
    let extras = &sc.observables.columns;
    match sc.method {
        Method::MeanField(f) => {
            let stable = approx::meanfield_steady_states(&p.model, f);
            let mut rows: Vec<Vec<f64>> = stable
                .iter()
                .enumerate()
                .map(|(b, s)| {
                    let mut r = approx::meanfield_row(p.model.n, *s, extras);
                    r.push(b as f64);
                    r
                })
                .collect();
            if rows.is_empty() {
                // No stable fixed point (centers, limit cycles): one row of NaN keeps the point.
                rows.push(vec![f64::NAN; BASE_OBSERVABLES.len() + extras.len() + 1]);
            }
            let mut stats = json!({ "stable_fixed_points": stable.len() });
            approx::check_steady_rows(p.model.n, &rows, sc.method, &mut stats);
            Ok(PointSolution {
                rows,
                state: None,
                stats,
            })
        }
        Method::Cumulant => {
            let approx::Start::Cumulant(y0) = approx::start(sc, p, Method::Cumulant)? else {
                unreachable!("cumulant start")
            };
            let (y, residual) = approx::cumulant_steady_state(&p.model, &y0)?;
            let rows = vec![approx::cumulant_row(p.model.n, &y, extras)];
            let mut stats = json!({ "relative_residual": residual });
            approx::check_steady_rows(p.model.n, &rows, sc.method, &mut stats);
            Ok(PointSolution {
                rows,
                state: None,
                stats,
            })
        }
        _ => {
            let reference = sc.reference_state(p)?;
            let (owned, mut stats) = solve(&p.model)?;
            let mut guard = Guard::new(Budget::steady_state());
            guard.exact(|| "the steady state".into(), owned.as_ref());
            checks::record(&mut stats, &guard.finish()?);
            let rows = vec![rows::observable_row(owned.as_ref(), extras, reference.as_deref())];
            Ok(PointSolution {
                rows,
                state: Some(owned),
                stats,
            })
        }
    }
}

/// The observable names and the CSV header of a steady-state table (mean field adds the
/// trailing `branch` column).
pub fn header(sc: &Scenario, x_names: &[String], names: &[String]) -> Vec<String> {
    let mut h = rows::header(x_names, names);
    if let Method::MeanField(_) = sc.method {
        h.push("branch".into());
    }
    h
}

/// Steady states of `points`, one `observables.csv` row each (x columns `x_names`; `pm.csv`
/// led by `pm_x`, the point index when `x_names` is empty). Returns the table and the
/// per-point statistics. A failed point of a scan is an error naming it; the points before it
/// are written.
pub fn solve_points(
    sc: &Scenario,
    points: &[Point],
    x_names: Vec<String>,
    pm_x: &str,
    ctx: &mut Context,
    what: &str,
) -> Result<(Table, Vec<serde_json::Value>), Error> {
    let mut table = Table {
        x_names,
        names: rows::observable_names(sc),
        rows: Vec::new(),
        last: None,
    };
    let header = header(sc, &table.x_names, &table.names);
    let mut csv = CsvWriter::create(&ctx.path("observables.csv")?, &header)?;
    let mut pm_csv = rows::pm_writer(sc, ctx.dir, pm_x, points[0].model.n)?;
    let mut stats = Vec::new();
    ctx.progress.start(points.len() as u64, what);
    for (i, p) in points.iter().enumerate() {
        let xvals = rows::x_values(p, &table.x_names);
        let sol = solve_point(sc, p).map_err(|e| name_point(e, i, &table.x_names, &xvals, points))?;
        for r in &sol.rows {
            let mut full = xvals.clone();
            full.extend(r);
            csv.row(&full)?;
            table.rows.push(full);
        }
        if let (Some(w), Some(state)) = (pm_csv.as_mut(), &sol.state) {
            let mut r = vec![xvals.first().copied().unwrap_or(i as f64)];
            r.extend(state.as_ref().pm());
            w.row(&r)?;
        }
        stats.push(sol.stats);
        if let (true, Some(state)) = (sc.observables.husimi.is_some(), &sol.state) {
            table.last = Some(state.as_ref().husimi_matrix());
        }
        ctx.progress.set(i as u64 + 1);
    }
    ctx.progress.finish();
    Ok((table, stats))
}

/// A solver error of point `index` names the point: a scan point by its index and value, a
/// single steady state (or a scan of one point) by the task and the point's parameters.
pub fn name_point(e: Error, index: usize, x_names: &[String], xvals: &[f64], points: &[Point]) -> Error {
    let Error::Solver(cause) = e else { return e };
    match x_names.first() {
        Some(variable) if points.len() > 1 => SolverError::ScanPoint {
            index,
            variable: variable.clone(),
            value: xvals[0],
            cause: Box::new(cause),
            others: String::new(),
        }
        .into(),
        Some(_) => checks::at_point("scan", &points[index], cause).into(),
        None => checks::at_point("steady_state", &points[index], cause).into(),
    }
}

/// Run `kind = "steady_state"`.
pub fn run(sc: &Scenario, ctx: &mut Context) -> Result<Report, Error> {
    let engine = policy::resolve(
        ctx.backend,
        &Kernel::CpuOnly {
            solver: approx::cpu_solver(sc.method),
        },
        ctx.gpu.clone(),
    )?;
    let points = sc.points()?;
    let (table, mut stats) = solve_points(sc, &points, vec![], "point", ctx, "steady state")?;
    let mut results = json!({ "steady_state": named(&table.names, &table.rows[0]) });
    if sc.method != Method::Exact {
        results["method"] = json!(sc.method.name());
        results["branches"] = json!(table.rows.len());
    }
    Ok(Report {
        coverage: None,
        task: "steady_state",
        solver: solver_name(sc, &points),
        backend: engine.used(None),
        model: points[0].model,
        columns: header(sc, &table.x_names, &table.names),
        results,
        stats: stats.pop(),
        files: standard_files(sc, ctx, &table)?,
    })
}

/// observables.csv, pm.csv and the figures of a master-equation table.
pub fn standard_files(sc: &Scenario, ctx: &Context, table: &Table) -> Result<Vec<String>, Error> {
    let mut files = vec!["observables.csv".to_string()];
    if sc.observables.pm {
        files.push("pm.csv".into());
    }
    files.extend(rows::write_figures(sc, ctx.dir, table)?);
    Ok(files)
}

/// The solver in words: exact (collective or blocks, as any point needs) or the approximate
/// method.
pub fn solver_name(sc: &Scenario, points: &[Point]) -> String {
    match sc.method {
        Method::MeanField(_) | Method::Cumulant => approx::solver_name(sc.method),
        _ if points.iter().any(|p| !p.model.is_collective()) => {
            "blocks (exact permutation-invariant master equation, single-atom rates, f64)".into()
        }
        _ => "master (exact collective, f64)".into(),
    }
}
