//! `kind = "steady_state"` (and the points of `kind = "scan"`, `mode = "steady_state"`): the
//! exact steady state by sparse LU, observables, P_m, Husimi Q.
//!
//! Collective-only models: [`master::steady_state`] on the (N+1)^2 Liouvillian of the
//! j = N/2 irrep. Single-atom rates: [`blocks::steady_state`] on the blocks R_j (memory
//! estimated, fill included, and refused before the factorisation). CPU only: one sparse LU
//! has no batch to fill a GPU with.

use super::context::Context;
use super::memory;
use super::policy::{self, Kernel};
use super::report::{Report, named};
use super::rows::{self, OwnedState, Table};
use crate::error::Error;
use crate::model::Model;
use crate::output::CsvWriter;
use crate::scenario::{Point, Scenario};
use crate::solver::{blocks, master};
use serde_json::json;

/// The steady state of one model and its solver statistics.
pub fn solve(model: &Model) -> Result<(OwnedState, serde_json::Value), Error> {
    if model.is_collective() {
        let (rho, st) = master::steady_state(model)?;
        return Ok((OwnedState::Sym(rho), serde_json::to_value(st).unwrap_or_default()));
    }
    memory::refuse_bytes(
        blocks::steady_state_memory_estimate(model),
        format!(
            "block steady state at N = {} (sparse LU, estimated fill included)",
            model.n
        ),
    )?;
    let (s, st) = blocks::steady_state(model)?;
    Ok((
        OwnedState::Blocks(s),
        serde_json::to_value(st).unwrap_or_default(),
    ))
}

/// Steady states of `points`, one `observables.csv` row each (x columns `x_names`; `pm.csv`
/// led by `pm_x`, the point index when `x_names` is empty). Returns the table and the
/// per-point statistics.
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
    let mut csv = CsvWriter::create(
        &ctx.path("observables.csv")?,
        &rows::header(&table.x_names, &table.names),
    )?;
    let mut pm_csv = rows::pm_writer(sc, ctx.dir, pm_x, points[0].model.n)?;
    let mut stats = Vec::new();
    ctx.progress.start(points.len() as u64, what);
    for (i, p) in points.iter().enumerate() {
        let reference = rows::reference_state(sc, p)?;
        let (owned, st) = solve(&p.model)?;
        let state = owned.as_ref();
        let xvals: Vec<f64> = table
            .x_names
            .iter()
            .map(|n| p.values.get(n).copied().unwrap_or(f64::NAN))
            .collect();
        let mut full = xvals.clone();
        full.extend(rows::observable_row(
            state,
            &sc.observables.columns,
            reference.as_deref(),
        ));
        csv.row(&full)?;
        if let Some(w) = pm_csv.as_mut() {
            let mut r = vec![xvals.first().copied().unwrap_or(i as f64)];
            r.extend(state.pm());
            w.row(&r)?;
        }
        table.rows.push(full);
        stats.push(st);
        if sc.observables.husimi.is_some() {
            table.last = Some(state.husimi_matrix());
        }
        ctx.progress.set(i as u64 + 1);
    }
    ctx.progress.finish();
    Ok((table, stats))
}

/// Run `kind = "steady_state"`.
pub fn run(sc: &Scenario, ctx: &mut Context) -> Result<Report, Error> {
    let engine = policy::resolve(
        ctx.backend,
        &Kernel::CpuOnly { solver: "master" },
        ctx.gpu.clone(),
    )?;
    let points = sc.points()?;
    let (table, mut stats) = solve_points(sc, &points, vec![], "point", ctx, "steady state")?;
    let results = json!({ "steady_state": named(&table.names, &table.rows[0]) });
    Ok(Report {
        task: "steady_state",
        solver: super::evolve::solver_name(&points[0].model),
        backend: engine.used(None),
        model: points[0].model,
        columns: rows::header(&table.x_names, &table.names),
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
