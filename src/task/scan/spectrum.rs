//! `kind = "scan"`, `mode = "spectrum"`: the `k` Liouvillian eigenvalues nearest `target` at
//! every scan point ([`crate::task::spectrum::solve`], as `kind = "spectrum"`), one point a
//! unit of the run's checkpoint (payload: the point's `(re, im, residual)` triples, exact).
//!
//! Outputs: `spectrum.csv` (`<variable>, k, re, im, residual` per point and eigenvalue, sorted
//! as `kind = "spectrum"`: by |re| then im, k = 0 the steady state where it is among them),
//! `observables.csv` (`<variable>`, the parameters it moves, `gap` = the smallest |re| among
//! the eigenvalues other than the steady state), and `spectrum.png` / `spectrum_im.png`: Re
//! and |Im| of the lowest eigenvalues against the scanned variable (seed 001 Figs. 11-12). A shard writes its points'
//! rows and no figure.

use crate::c64;
use crate::error::{Error, SolverError};
use crate::output::{CsvWriter, plot};
use crate::scenario::Scenario;
use crate::task::checkpoint::{Dec, Enc};
use crate::task::context::Context;
use crate::task::policy::{self, Kernel};
use crate::task::report::{Report, jnum, named};
use crate::task::rows;
use crate::task::spectrum::{gap, solve};
use serde_json::json;

/// Eigenvalues drawn against the scanned variable (besides the steady state).
const PLOTTED: usize = 4;

/// Run a scan of spectra (module doc).
pub fn run(
    sc: &Scenario,
    variable: &str,
    k: usize,
    target: f64,
    sector: Option<i64>,
    ctx: &mut Context,
) -> Result<Report, Error> {
    let engine = policy::resolve(
        ctx.backend,
        &Kernel::CpuOnly { solver: "spectrum" },
        ctx.gpu.clone(),
    )?;
    let points = sc.points()?;
    let x_names = rows::scan_x_names(sc, variable)?;
    let xvals = |i: usize| rows::x_values(&points[i], &x_names);
    let mut units = ctx.units("scan", engine.tag(), points.len() as u64, 1, "points")?;
    let sp_header: Vec<String> = [variable, "k", "re", "im", "residual"].map(String::from).to_vec();
    let mut sp_csv = CsvWriter::create(&ctx.path("spectrum.csv")?, &sp_header)?;
    let mut columns = x_names.clone();
    columns.push("gap".into());
    let mut obs_csv = CsvWriter::create(&ctx.path("observables.csv")?, &columns)?;
    let mut table: Vec<Vec<f64>> = Vec::new();
    let mut lowest: Vec<(f64, Vec<c64>)> = Vec::new();
    let mut worst: f64 = 0.0;
    units.run(
        ctx.progress,
        "scan (spectrum)",
        |i| {
            let sp = solve(&points[i].model, k, target, sector).map_err(|cause| SolverError::ScanPoint {
                index: i,
                variable: variable.to_string(),
                value: xvals(i)[0],
                cause: Box::new(cause),
                others: String::new(),
            })?;
            let flat: Vec<f64> = sp
                .pairs
                .iter()
                .flat_map(|p| [p.value.re, p.value.im, p.residual])
                .collect();
            let mut e = Enc::default();
            e.f64s(&flat);
            Ok(e.0)
        },
        |i, payload| {
            let flat = Dec(&payload).f64s()?;
            let x = xvals(i);
            let values: Vec<c64> = flat.chunks_exact(3).map(|c| c64::new(c[0], c[1])).collect();
            for (j, c) in flat.chunks_exact(3).enumerate() {
                sp_csv.row(&[x[0], j as f64, c[0], c[1], c[2]])?;
                worst = worst.max(c[2]);
            }
            let (has_steady, g) = gap(&values);
            let mut row = x.clone();
            row.push(g.unwrap_or(f64::NAN));
            obs_csv.row(&row)?;
            table.push(row);
            lowest.push((x[0], values[usize::from(has_steady)..].to_vec()));
            Ok(())
        },
    )?;
    let mut files = vec!["spectrum.csv".to_string(), "observables.csv".to_string()];
    if sc.plot && units.whole() && !lowest.is_empty() {
        files.extend(draw(ctx, variable, points[0].model.n, &lowest)?);
    }
    let best = table
        .iter()
        .filter(|r| r[r.len() - 1].is_finite())
        .min_by(|a, b| a[a.len() - 1].total_cmp(&b[b.len() - 1]));
    let results = json!({
        "points": table.len(),
        "mode": "spectrum",
        "min_gap": best.map(|r| jnum(r[r.len() - 1])),
        "min_gap_at": best.map(|r| named(&x_names, r)),
        "max_residual": jnum(worst),
        "k": k,
        "target": target,
        "sector": sector,
    });
    Ok(Report {
        coverage: Some(units.coverage()),
        task: "scan",
        solver: "spectrum per scan point (shift-invert Arnoldi on the exact Liouvillian, f64)".into(),
        backend: engine.used(None),
        model: points[0].model,
        columns,
        results,
        stats: None,
        files,
    })
}

/// `spectrum.png` (Re lambda) and `spectrum_im.png` (|Im lambda|) of the lowest [`PLOTTED`]
/// eigenvalues (steady state excluded) against the scanned variable, as markers: the k-th
/// eigenvalue by |Re| changes branch where two cross, so lines would join different modes.
fn draw(ctx: &Context, variable: &str, n: usize, lowest: &[(f64, Vec<c64>)]) -> Result<Vec<String>, Error> {
    let count = lowest.iter().map(|p| p.1.len()).max().unwrap_or(0).min(PLOTTED);
    let names: Vec<String> = (1..=count).map(|j| format!("lambda_{j}")).collect();
    let mut files = Vec::new();
    // Conjugate pairs sort by im within a pair, so |Im| keeps a pair on one point.
    for (file, label, part) in [
        ("spectrum.png", "Re lambda", (|v: &c64| v.re) as fn(&c64) -> f64),
        ("spectrum_im.png", "|Im lambda|", |v: &c64| v.im.abs()),
    ] {
        let points: Vec<Vec<(f64, f64, bool)>> = (0..count)
            .map(|j| {
                lowest
                    .iter()
                    .filter_map(|(x, vs)| vs.get(j).map(|v| (*x, part(v), true)))
                    .collect()
            })
            .collect();
        let sets: Vec<plot::BranchSet> = points
            .iter()
            .zip(&names)
            .enumerate()
            .map(|(j, (pts, name))| plot::BranchSet {
                name,
                colour: j,
                points: pts,
                markers: true,
            })
            .collect();
        plot::branch_plot(
            &ctx.path(file)?,
            &format!("lowest Liouvillian eigenvalues (steady state excluded), N = {n}"),
            variable,
            &format!("{label} (rate units of the model)"),
            &sets,
        )?;
        files.push(file.to_string());
    }
    Ok(files)
}
