//! `kind = "fixed_points"`: mean-field fixed points per scan value and factorisation
//! ([`meanfield`]; the collective curve may run on the model changed by
//! `task.collective_set`), one CSV row per fixed point written as each point finishes, the
//! boundaries (where the number of stable fixed points or centers changes) bisected between
//! scan points into result.json, and the branch plot (stable solid, unstable dashed, one
//! colour per factorisation). With `[initial]` and `task.t_end`, the mean-field ODEs also run
//! from the initial state's Bloch vector to t_end at every point (`meanfield_final.csv`).
//! CPU only (milliseconds per point).

use super::context::Context;
use super::evolve::ode_options;
use super::policy::{self, Kernel};
use super::report::{Report, jnum};
use crate::error::{Error, SolverError};
use crate::output::{CsvWriter, plot};
use crate::scenario::{EvolveSpec, Point, Scenario};
use crate::solver::meanfield::{self, Factorisation, Stability};
use serde_json::{Value, json};

/// The scenario's fixed-point task, as [`super::run`] hands it over.
pub struct Spec<'a> {
    pub variable: &'a str,
    pub values: &'a [f64],
    pub factorisations: &'a [Factorisation],
    pub boundary_tol: f64,
    pub integrate: Option<&'a EvolveSpec>,
    pub collective: Option<&'a Scenario>,
    pub collective_set: &'a [String],
}

/// Every Jacobian eigenvalue of a fixed point (seed 000 Fig. S2c), leading first: three for
/// the Jacobian in the Bloch ball, two (and NaN) for its tangent-plane restriction when |s|
/// is conserved.
pub const EIGEN_COLUMNS: [&str; 6] = ["eig1_re", "eig1_im", "eig2_re", "eig2_im", "eig3_re", "eig3_im"];

/// The eigenvalue columns: by decreasing real part, then increasing imaginary part; NaN where
/// there are fewer than three.
fn eigen_columns(eigenvalues: &[(f64, f64)]) -> [f64; 6] {
    let mut e = eigenvalues.to_vec();
    e.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.total_cmp(&b.1)));
    let mut out = [f64::NAN; 6];
    for (k, (re, im)) in e.iter().take(3).enumerate() {
        out[2 * k] = *re;
        out[2 * k + 1] = *im;
    }
    out
}

/// (x, sz, stable) of every fixed point of one factorisation, for the plot.
type Curve = (Factorisation, Vec<(f64, f64, bool)>);

/// The output file of the fixed points of one factorisation: `fixed_points.csv`, and
/// `fixed_points_collective.csv` for the collective curve when both are asked for.
fn file_name(f: Factorisation, both: bool) -> &'static str {
    match (f, both) {
        (Factorisation::Collective, true) => "fixed_points_collective.csv",
        _ => "fixed_points.csv",
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Run `kind = "fixed_points"`.
pub fn run(sc: &Scenario, spec: &Spec, ctx: &mut Context) -> Result<Report, Error> {
    let engine = policy::resolve(
        ctx.backend,
        &Kernel::CpuOnly { solver: "mean field" },
        ctx.gpu.clone(),
    )?;
    let mut header = strings(&[
        spec.variable,
        "Omega",
        "sx",
        "sy",
        "sz",
        "stable",
        "center",
        "max_re_eig",
    ]);
    header.extend(EIGEN_COLUMNS.iter().map(|s| s.to_string()));
    let mut files = Vec::new();
    let mut results = serde_json::Map::new();
    let (mut curves, mut ends) = (Vec::new(), Vec::new());
    ctx.progress.start(
        (spec.factorisations.len() * spec.values.len()) as u64,
        "fixed points",
    );
    let mut done = 0;
    for &f in spec.factorisations {
        let (r, curve, end) = factorisation(sc, spec, f, &header, ctx, &mut done, &mut files)?;
        results.insert(f.name().to_string(), r);
        curves.push((f, curve));
        if let Some(end) = end {
            ends.push((f, end));
        }
    }
    ctx.progress.finish();
    if sc.plot {
        draw(sc, ctx.dir, spec.variable, &curves, &ends)?;
        files.push("plot.png".into());
    }
    Ok(Report {
        coverage: None,
        task: "fixed_points",
        solver: "meanfield (fixed points of the mean-field equations, CPU f64)".into(),
        backend: engine.used(None),
        model: sc.point(&[])?.model,
        columns: header,
        results: Value::Object(results),
        stats: None,
        files,
    })
}

/// Rows of one factorisation over all scan values, its boundaries and result entry.
#[allow(clippy::type_complexity)]
fn factorisation(
    sc: &Scenario,
    spec: &Spec,
    f: Factorisation,
    header: &[String],
    ctx: &mut Context,
    done: &mut u64,
    files: &mut Vec<String>,
) -> Result<(Value, Vec<(f64, f64, bool)>, Option<Vec<(f64, f64, bool)>>), Error> {
    // The collective curve may run on its own model (task.collective_set).
    let src: &Scenario = match (f, spec.collective) {
        (Factorisation::Collective, Some(c)) => c,
        _ => sc,
    };
    let at = |x: f64| -> Result<(Point, meanfield::FixedPoints), Error> {
        let p = src.point(&[(spec.variable, x)])?;
        let fp = meanfield::fixed_points(&p.model, f);
        Ok((p, fp))
    };
    let file = file_name(f, spec.factorisations.len() > 1);
    let mut csv = CsvWriter::create(&ctx.path(file)?, header)?;
    // With t_end: where a run of the ODE from [initial] ends, next to all fixed points.
    let end_file = file.replace("fixed_points", "meanfield_final");
    let mut end_csv = match spec.integrate {
        Some(_) => {
            let h = strings(&[spec.variable, "Omega", "sx", "sy", "sz", "distance_to_stable"]);
            files.push(end_file.clone());
            Some(CsvWriter::create(&ctx.path(&end_file)?, &h)?)
        }
        None => None,
    };
    let (mut curve, mut end_curve, mut sigs, mut degenerate) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut unphysical, mut radius) = (0, None);
    for (i, &x) in spec.values.iter().enumerate() {
        let (p, fp) = at(x)?;
        for q in &fp.points {
            let stable = q.stability == Stability::Stable;
            let center = q.stability == Stability::Center;
            let mut row = vec![
                x,
                p.model.drive,
                q.s[0],
                q.s[1],
                q.s[2],
                f64::from(u8::from(stable)),
                f64::from(u8::from(center)),
                q.max_re(),
            ];
            row.extend(eigen_columns(&q.eigenvalues));
            csv.row(&row)?;
            curve.push((x, q.s[2], stable));
        }
        for d in &fp.degenerate {
            degenerate.push(json!({ spec.variable: jnum(x), "note": d }));
        }
        if let (Some(ode), Some(w)) = (spec.integrate, end_csv.as_mut()) {
            let s0 = meanfield::bloch_vector(&p.model, src.initial_spec(&p)?)?;
            let fin = integrate_point(&p, f, s0, ode, spec.variable, i, x)?;
            let d = distance_to_stable(&fp, fin);
            w.row(&[x, p.model.drive, fin[0], fin[1], fin[2], d])?;
            end_curve.push((x, fin[2], true));
        }
        unphysical += fp.unphysical_roots;
        radius = fp.sphere_radius;
        sigs.push(fp.signature());
        *done += 1;
        ctx.progress.set(*done);
    }
    let bounds = meanfield::boundaries(spec.values, &sigs, spec.boundary_tol, |x| {
        at(x).map(|(_, fp)| fp.signature())
    })?;
    let mut r = json!({
        "file": file,
        "boundaries": bounds.iter().map(|b| json!({
            "at": jnum(b.at),
            "tol": jnum(b.tol),
            "stable_before": b.before.0,
            "stable_after": b.after.0,
            "centers_before": b.before.1,
            "centers_after": b.after.1,
        })).collect::<Vec<_>>(),
        "boundary_tol": jnum(spec.boundary_tol),
        "unphysical_roots_dropped": unphysical,
        "degenerate": degenerate,
        "sphere_radius": radius.map(jnum),
    });
    if f == Factorisation::Collective && !spec.collective_set.is_empty() {
        r["collective_set"] = json!(spec.collective_set);
        r["model"] = json!(
            src.point(&[])?
                .model
                .values()
                .into_iter()
                .map(|(k, v)| (k.to_string(), jnum(v)))
                .collect::<serde_json::Map<_, _>>()
        );
    }
    if let Some(ode) = spec.integrate {
        r["integration"] = json!({
            "file": end_file,
            "t_end": jnum(ode.times[1]),
            "rtol": jnum(ode.rtol),
            "atol": jnum(ode.atol),
        });
    }
    files.push(file.to_string());
    Ok((r, curve, spec.integrate.map(|_| end_curve)))
}

/// The mean-field ODEs from `s0` to the end of `ode.times`; a failure names the scan point.
fn integrate_point(
    p: &Point,
    f: Factorisation,
    s0: [f64; 3],
    ode: &EvolveSpec,
    variable: &str,
    index: usize,
    x: f64,
) -> Result<[f64; 3], Error> {
    let mut fin = s0;
    meanfield::evolve(&p.model, f, s0, &ode.times, &ode_options(ode), |_, _, s| fin = s).map_err(|e| {
        SolverError::ScanPoint {
            index,
            variable: variable.to_string(),
            value: x,
            cause: Box::new(e),
            others: String::new(),
        }
    })?;
    Ok(fin)
}

/// Distance from `s` to the nearest stable fixed point (NaN if there is none).
fn distance_to_stable(fp: &meanfield::FixedPoints, s: [f64; 3]) -> f64 {
    fp.points
        .iter()
        .filter(|q| q.stability == Stability::Stable)
        .map(|q| (0..3).map(|k| (q.s[k] - s[k]).powi(2)).sum::<f64>().sqrt())
        .fold(f64::NAN, f64::min)
}

/// The branch plot: sz against the scanned variable per factorisation, and where the runs
/// from [initial] end.
fn draw(
    sc: &Scenario,
    dir: &std::path::Path,
    variable: &str,
    curves: &[Curve],
    ends: &[Curve],
) -> Result<(), Error> {
    let mut sets: Vec<plot::BranchSet> = curves
        .iter()
        .map(|(f, c)| plot::BranchSet {
            name: name_colour(f, false).0,
            colour: name_colour(f, false).1,
            points: c,
            markers: false,
        })
        .collect();
    for (f, c) in ends {
        sets.push(plot::BranchSet {
            name: name_colour(f, true).0,
            colour: name_colour(f, true).1,
            points: c,
            markers: true,
        });
    }
    let title = if sc.title.is_empty() {
        "mean-field fixed points"
    } else {
        sc.title.as_str()
    };
    plot::branch_plot(&dir.join("plot.png"), title, variable, "sz = <sigma^z>", &sets)?;
    Ok(())
}

/// Legend name and colour of a factorisation's branches, or of its runs' end points.
fn name_colour(f: &Factorisation, end: bool) -> (&'static str, usize) {
    match (f, end) {
        (Factorisation::Individual, false) => ("individual", 0),
        (Factorisation::Collective, false) => ("collective (Dicke)", 3),
        (Factorisation::Individual, true) => ("individual: run from [initial] ends", 2),
        (Factorisation::Collective, true) => ("collective: run from [initial] ends", 1),
    }
}
