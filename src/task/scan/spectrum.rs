//! `kind = "scan"`, `mode = "spectrum"`: the `k` Liouvillian eigenvalues nearest `target` at
//! every scan point ([`crate::task::spectrum::solve`], as `kind = "spectrum"`), one point a
//! unit of the run's checkpoint (payload: the point's `(re, im, residual)` triples, exact).
//!
//! Outputs: `spectrum.csv` (`<variable>, k, re, im, residual` per point and eigenvalue, sorted
//! as `kind = "spectrum"`: by |re| then im, k = 0 the steady state where it is among them),
//! `observables.csv` (`<variable>`, the parameters it moves, `gap` = the smallest |re| among
//! the eigenvalues other than the steady state, `gap_im` = the smallest nonzero |im| among
//! them, [`crate::task::spectrum::Gaps`]), and the figures of seed 001 Figs. 11-12:
//! `spectrum.png` / `spectrum_im.png`, Re and Im of every computed eigenvalue (steady state
//! excluded) against the scanned variable, and `gap.png`, both gaps against it. A shard
//! writes its points' rows and no figure.

use super::gap_min;
use crate::analysis::scaling::{self, Fit, Law};
use crate::c64;
use crate::error::{Error, SolverError};
use crate::output::{CsvWriter, plot};
use crate::scenario::{ScanMode, Scenario};
use crate::task::checkpoint::{Dec, Enc};
use crate::task::context::Context;
use crate::task::policy::{self, Kernel};
use crate::task::report::{Report, jnum, named};
use crate::task::rows;
use crate::task::spectrum::{gap, solve};
use serde_json::json;

/// Run a scan of spectra (module doc).
pub fn run(sc: &Scenario, variable: &str, mode: &ScanMode, ctx: &mut Context) -> Result<Report, Error> {
    let ScanMode::Spectrum {
        k,
        target,
        sector,
        minimize,
        fit,
    } = mode
    else {
        unreachable!("scan::run dispatches mode = \"spectrum\" here")
    };
    let (k, target, sector) = (*k, *target, *sector);
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
    if let Some(m) = minimize {
        columns.push(m.variable.clone());
    }
    columns.push("gap".into());
    columns.push("gap_im".into());
    let mut obs_csv = CsvWriter::create(&ctx.path("observables.csv")?, &columns)?;
    let mut table: Vec<Vec<f64>> = Vec::new();
    let mut lowest: Vec<(f64, Vec<c64>)> = Vec::new();
    let mut worst: f64 = 0.0;
    units.run(
        ctx.progress,
        "scan (spectrum)",
        |i| {
            let at_point = |cause| SolverError::ScanPoint {
                index: i,
                variable: variable.to_string(),
                value: xvals(i)[0],
                cause: Box::new(cause),
                others: String::new(),
            };
            let one = |model: &crate::model::Model| solve(model, k, target, sector);
            let (x_min, sp) = match minimize {
                None => (f64::NAN, one(&points[i].model).map_err(at_point)?),
                Some(m) => gap_min::minimize(sc, variable, xvals(i)[0], m, one).map_err(|e| match e {
                    Error::Solver(cause) => at_point(cause).into(),
                    other => other,
                })?,
            };
            let flat: Vec<f64> = sp
                .pairs
                .iter()
                .flat_map(|p| [p.value.re, p.value.im, p.residual])
                .collect();
            let mut e = Enc::default();
            e.f64s(&flat).f64s(&[x_min]);
            Ok(e.0)
        },
        |i, payload| {
            let mut dec = Dec(&payload);
            let flat = dec.f64s()?;
            let x_min = dec.f64s()?;
            let x = xvals(i);
            let values: Vec<c64> = flat.chunks_exact(3).map(|c| c64::new(c[0], c[1])).collect();
            for (j, c) in flat.chunks_exact(3).enumerate() {
                sp_csv.row(&[x[0], j as f64, c[0], c[1], c[2]])?;
                worst = worst.max(c[2]);
            }
            let pairs: Vec<(c64, f64)> = flat
                .chunks_exact(3)
                .map(|c| (c64::new(c[0], c[1]), c[2]))
                .collect();
            let g = gap(&pairs);
            let mut row = x.clone();
            if minimize.is_some() {
                row.extend(&x_min);
            }
            row.push(g.re.unwrap_or(f64::NAN));
            row.push(g.im.unwrap_or(f64::NAN));
            obs_csv.row(&row)?;
            table.push(row);
            lowest.push((x[0], values[usize::from(g.has_steady)..].to_vec()));
            Ok(())
        },
    )?;
    let mut files = vec!["spectrum.csv".to_string(), "observables.csv".to_string()];
    if sc.plot && units.whole() && !lowest.is_empty() {
        files.extend(draw(ctx, variable, points[0].model.n, &lowest)?);
        files.push(draw_gaps(ctx, variable, points[0].model.n, &table)?);
    }
    let gi = columns.len() - 2; // the gap column
    let fitted = fit.and_then(|law| {
        let (v, g): (Vec<f64>, Vec<f64>) = table.iter().map(|r| (r[0], r[gi])).unzip();
        scaling::fit(law, &v, &g)
    });
    if let (Some(f), true) = (&fitted, sc.plot && units.whole()) {
        files.push(draw_scaling(ctx, variable, &table, gi, f)?);
    }
    let best = table
        .iter()
        .filter(|r| r[gi].is_finite())
        .min_by(|a, b| a[gi].total_cmp(&b[gi]));
    let results = json!({
        "points": table.len(),
        "mode": "spectrum",
        "min_gap": best.map(|r| jnum(r[gi])),
        "min_gap_at": best.map(|r| named(&x_names, r)),
        "max_residual": jnum(worst),
        "k": k,
        "target": target.re,
        "target_im": target.im,
        "sector": sector,
        "minimize": minimize.as_ref().map(|m| json!({"variable": m.variable, "bracket": [m.lo, m.hi], "tol": m.tol})),
        "fit": fitted.map(|f| json!({
            "law": f.law.name(),
            "quantity": "gap",
            "prefactor": jnum(f.prefactor),
            "prefactor_err": jnum(f.prefactor_err),
            "exponent": jnum(f.exponent),
            "exponent_err": jnum(f.exponent_err),
            "points": f.points,
            "rms_ln_residual": jnum(f.rms_ln),
        })),
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

/// `spectrum.png` (Re lambda) and `spectrum_im.png` (Im lambda) of every computed eigenvalue
/// (steady state excluded) against the scanned variable, as markers (seed 001 Fig. 11): the
/// k-th eigenvalue changes branch where two cross, so lines would join different modes.
fn draw(ctx: &Context, variable: &str, n: usize, lowest: &[(f64, Vec<c64>)]) -> Result<Vec<String>, Error> {
    let count = lowest.iter().map(|p| p.1.len()).max().unwrap_or(0);
    let mut files = Vec::new();
    for (file, label, part) in [
        ("spectrum.png", "Re lambda", (|v: &c64| v.re) as fn(&c64) -> f64),
        ("spectrum_im.png", "Im lambda", |v: &c64| v.im),
    ] {
        let points: Vec<(f64, f64, bool)> = lowest
            .iter()
            .flat_map(|(x, vs)| vs.iter().map(move |v| (*x, part(v), true)))
            .collect();
        let set = plot::BranchSet {
            name: "eigenvalues of L",
            colour: 0,
            points: &points,
            markers: true,
        };
        plot::branch_plot(
            &ctx.path(file)?,
            &format!("{label} of the {count} Liouvillian eigenvalues nearest the target, N = {n}"),
            variable,
            &format!("{label} (rate units of the model)"),
            &[set],
        )?;
        files.push(file.to_string());
    }
    Ok(files)
}

/// `gap.png`: the real gap and the imaginary gap (smallest nonzero |Im|) against the scanned
/// variable (seed 001 Fig. 12), as markers.
fn draw_gaps(ctx: &Context, variable: &str, n: usize, table: &[Vec<f64>]) -> Result<String, Error> {
    let gi = table.first().map_or(0, |r| r.len() - 2);
    let re: Vec<(f64, f64, bool)> = table.iter().map(|r| (r[0], r[gi], true)).collect();
    let im: Vec<(f64, f64, bool)> = table.iter().map(|r| (r[0], r[gi + 1], true)).collect();
    let sets = [
        plot::BranchSet {
            name: "gap: min |Re lambda|",
            colour: 0,
            points: &re,
            markers: true,
        },
        plot::BranchSet {
            name: "imaginary gap: min nonzero |Im lambda|",
            colour: 3,
            points: &im,
            markers: true,
        },
    ];
    plot::branch_plot(
        &ctx.path("gap.png")?,
        &format!("Liouvillian gaps against {variable}, N = {n}"),
        variable,
        "gap (rate units of the model)",
        &sets,
    )?;
    Ok("gap.png".into())
}

/// `scaling.png`: the gap against the scanned variable with the fitted law (log-log for a
/// power law, semi-log for an exponential; seed 000 Fig. 2d).
fn draw_scaling(
    ctx: &Context,
    variable: &str,
    table: &[Vec<f64>],
    gi: usize,
    f: &Fit,
) -> Result<String, Error> {
    let pts: Vec<(f64, f64)> = table.iter().map(|r| (r[0], r[gi])).collect();
    let (lo, hi) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
        (a.min(p.0), b.max(p.0))
    });
    let line: Vec<(f64, f64)> = (0..=100)
        .map(|i| {
            let v = match f.law {
                Law::Power => lo * (hi / lo).powf(i as f64 / 100.0),
                Law::Exponential => lo + (hi - lo) * i as f64 / 100.0,
            };
            (v, f.at(v))
        })
        .collect();
    let name = match f.law {
        Law::Power => format!(
            "gap = {:.3} {variable}^({:.3} +- {:.3})",
            f.prefactor, f.exponent, f.exponent_err
        ),
        Law::Exponential => format!(
            "gap = {:.3} exp(({:.4} +- {:.4}) {variable})",
            f.prefactor, f.exponent, f.exponent_err
        ),
    };
    plot::scaling_plot(
        &ctx.path("scaling.png")?,
        &format!("Liouvillian gap against {variable}: {} fit", f.law.name()),
        (variable, "gap: min |Re lambda| (rate units of the model)"),
        &pts,
        Some((&name, &line)),
        f.law == Law::Power,
    )?;
    Ok("scaling.png".into())
}
