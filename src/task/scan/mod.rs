//! `kind = "scan"`: one model parameter or variable over a list of values, at each value the
//! steady state (`mode = "steady_state"`, [`super::steady_state`]) or the evolution from
//! `[initial]` (`mode = "evolve"`, [`evolve`]).
//!
//! `observables.csv` has one row per point: the scanned variable, every model parameter it
//! moves, then the observables (of the steady state, or at the final time).

pub mod evolve;
#[cfg(feature = "gpu")]
mod evolve_gpu;
mod sink;

use super::context::Context;
use super::policy::{self, Kernel};
use super::report::{Report, jnum, named};
use super::rows;
use super::steady_state;
use crate::error::Error;
use crate::scenario::{ScanMode, Scenario};
use serde_json::{Value, json};

/// Run `kind = "scan"`.
pub fn run(sc: &Scenario, variable: &str, mode: &ScanMode, ctx: &mut Context) -> Result<Report, Error> {
    match mode {
        ScanMode::SteadyState => steady_states(sc, variable, ctx),
        ScanMode::Evolve { spec, precision } => evolve::run(sc, variable, spec, *precision, ctx),
    }
}

/// The steady state at every scan point.
fn steady_states(sc: &Scenario, variable: &str, ctx: &mut Context) -> Result<Report, Error> {
    let engine = policy::resolve(
        ctx.backend,
        &Kernel::CpuOnly {
            solver: super::approx::cpu_solver(sc.method),
        },
        ctx.gpu.clone(),
    )?;
    let points = sc.points()?;
    let x_names = rows::scan_x_names(sc, variable)?;
    let (table, mut stats) = steady_state::solve_points(sc, &points, x_names, variable, ctx, "scan")?;
    let stats = if stats.len() == 1 {
        stats.pop().unwrap_or_default()
    } else {
        Value::Array(stats)
    };
    Ok(Report {
        coverage: None,
        task: "scan",
        solver: steady_state::solver_name(sc, &points),
        backend: engine.used(None),
        model: points[0].model,
        columns: steady_state::header(sc, &table.x_names, &table.names),
        results: scalars(&table.x_names, &table.rows),
        stats: Some(stats),
        files: steady_state::standard_files(sc, ctx, &table)?,
    })
}

/// result.json scalars of a scan: the best squeezing over the points and where.
pub fn scalars(x_names: &[String], rows: &[Vec<f64>]) -> Value {
    let xi = x_names.len() + 3; // xi2 column
    let best = rows
        .iter()
        .filter(|r| r[xi].is_finite())
        .min_by(|a, b| a[xi].total_cmp(&b[xi]));
    json!({
        "points": rows.len(),
        "min_xi2": best.map(|r| jnum(r[xi])),
        "min_xi2_dB": best.map(|r| jnum(10.0 * r[xi].log10())),
        "min_xi2_at": best.map(|r| named(x_names, r)),
    })
}
