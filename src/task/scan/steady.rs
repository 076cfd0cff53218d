//! `kind = "scan"`, `mode = "steady_state"`: the steady state at every scan point
//! ([`steady_state::solve_point`]), one point a unit of the run's checkpoint
//! ([`crate::task::checkpoint`], engine "cpu f64"). A point's unit ([`PointUnit`]) holds its
//! observable rows (one, or one per stable mean-field branch), P_m and statistics, and for the
//! last point the Husimi matrix when a grid is asked for; `observables.csv` and `pm.csv` are
//! written from the units in point order. A shard writes its points' rows and no figure (nor
//! Husimi grid); the merge draws them.

use super::unit::PointUnit;
use crate::error::Error;
use crate::output::CsvWriter;
use crate::scenario::Scenario;
use crate::task::approx;
use crate::task::context::Context;
use crate::task::policy::{self, Kernel};
use crate::task::report::Report;
use crate::task::rows::{self, Table};
use crate::task::steady_state;
use serde_json::Value;

/// The steady state at every scan point.
pub fn run(sc: &Scenario, variable: &str, ctx: &mut Context) -> Result<Report, Error> {
    let engine = policy::resolve(
        ctx.backend,
        &Kernel::CpuOnly {
            solver: approx::cpu_solver(sc.method),
        },
        ctx.gpu.clone(),
    )?;
    let points = sc.points()?;
    let mut table = Table {
        x_names: rows::scan_x_names(sc, variable)?,
        names: rows::observable_names(sc),
        rows: Vec::new(),
        last: None,
    };
    let header = steady_state::header(sc, &table.x_names, &table.names);
    let mut units = ctx.units("scan", engine.tag(), points.len() as u64, 1, "points")?;
    let mut csv = CsvWriter::create(&ctx.path("observables.csv")?, &header)?;
    let mut pm_csv = rows::pm_writer(sc, ctx.dir, variable, points[0].model.n)?;
    let x_names = table.x_names.clone();
    let xvals = |i: usize| rows::x_values(&points[i], &x_names);
    let mut stats = Vec::new();
    let mut written = Vec::new();
    units.run(
        ctx.progress,
        "scan",
        |i| {
            let x = xvals(i);
            let sol = steady_state::solve_point(sc, &points[i])
                .map_err(|e| steady_state::name_point(e, i, &x_names, &x, &points))?;
            let state = sol.state.as_ref().map(|s| s.as_ref());
            let last = i + 1 == points.len();
            let unit = PointUnit {
                rows: sol.rows,
                pm: state.filter(|_| sc.observables.pm).map(|s| s.pm()),
                stats: sol.stats.to_string(),
                husimi: state
                    .filter(|_| last && sc.observables.husimi.is_some())
                    .map(|s| s.husimi_matrix()),
            };
            Ok(unit.encode())
        },
        |i, payload| {
            let unit = PointUnit::decode(&payload)?;
            let x = xvals(i);
            for r in &unit.rows {
                let mut full = x.clone();
                full.extend(r);
                csv.row(&full)?;
                written.push(full);
            }
            if let (Some(w), Some(pm)) = (pm_csv.as_mut(), &unit.pm) {
                let mut r = vec![x[0]];
                r.extend(pm);
                w.row(&r)?;
            }
            stats.push(unit.stats_json());
            if unit.husimi.is_some() {
                table.last = unit.husimi;
            }
            Ok(())
        },
    )?;
    table.rows = written;
    let mut files = vec!["observables.csv".to_string()];
    if sc.observables.pm {
        files.push("pm.csv".into());
    }
    if units.whole() {
        files.extend(rows::write_figures(sc, ctx.dir, &table)?);
    }
    let stats = if stats.len() == 1 {
        stats.pop().unwrap_or_default()
    } else {
        Value::Array(stats)
    };
    Ok(Report {
        coverage: Some(units.coverage()),
        task: "scan",
        solver: steady_state::solver_name(sc, &points),
        backend: engine.used(None),
        model: points[0].model,
        columns: header,
        results: super::scalars(&table.x_names, &table.rows),
        stats: Some(stats),
        files,
    })
}
