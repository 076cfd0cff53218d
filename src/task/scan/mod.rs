//! `kind = "scan"`: one model parameter or variable over a list of values, at each value the
//! steady state (`mode = "steady_state"`, [`super::steady_state`]) or the evolution from
//! `[initial]` (`mode = "evolve"`, [`evolve`]), or the Liouvillian eigenvalues nearest a
//! target (`mode = "spectrum"`, `spectrum`).
//!
//! `observables.csv` has one row per point: the scanned variable, every model parameter it
//! moves, then the observables (of the steady state, or at the final time).
//!
//! Each point is a unit of the run's checkpoint ([`super::checkpoint`]): its payload
//! ([`unit::PointUnit`]) holds what the files need of the point, and the files are written
//! from the payloads in point order, so an interrupted and resumed scan, or a merge of shards,
//! writes the files of an uninterrupted run byte for byte.

pub mod evolve;
#[cfg(feature = "gpu")]
mod evolve_gpu;
mod gap_min;
mod metastable;
mod sink;
mod spectrum;
mod steady;
mod unit;

use super::context::Context;
use super::report::{Report, jnum, named};
use crate::error::Error;
use crate::scenario::{ScanMode, Scenario};
use serde_json::{Value, json};

/// Run `kind = "scan"`.
pub fn run(sc: &Scenario, variable: &str, mode: &ScanMode, ctx: &mut Context) -> Result<Report, Error> {
    match mode {
        ScanMode::SteadyState => steady::run(sc, variable, ctx),
        ScanMode::Evolve { spec, precision } => evolve::run(sc, variable, spec, *precision, ctx),
        ScanMode::Spectrum { .. } => spectrum::run(sc, variable, mode, ctx),
        ScanMode::Metastable => metastable::run(sc, variable, ctx),
    }
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
