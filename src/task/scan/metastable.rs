//! `kind = "scan"`, `mode = "metastable"`: the metastable decomposition
//! ([`crate::task::metastable`]) at every scan point, one point a unit of the run's checkpoint
//! (payload: the point's state rows, P_m of its three states and its scalars, exact).
//!
//! Outputs: `metastable.csv` (`<variable>, state, ...` as `kind = "metastable"`, three rows
//! per point), `observables.csv` (`<variable>`, the parameters it moves, then lambda1,
//! lambda2, a_plus, a_minus, a_sum, rate_plus, rate_minus, pm_distance, fidelity_plus,
//! residual, a_plus_blocks, a_minus_blocks, top_weight_plus, fidelity_plus_top), `pm.csv` (`<variable>, m, ss, plus, minus, mixture`) and `metastable.png`
//! (seed 000 Fig. 3a, c, d and eq. 10 against the variable: <Jz>/(N/2) of rho_ss, rho_+,
//! rho_-; the CRSS fidelity and xi^2 of rho_+; the weights; the rates). A shard writes its
//! points' rows and no figure.

use super::unit::PointUnit;
use crate::error::Error;
use crate::output::{CsvWriter, checkpoint, plot};
use crate::scenario::Scenario;
use crate::task::checkpoint::CHECKPOINT_DIR;
use crate::task::context::Context;
use crate::task::metastable::{self as ms, PM_COLUMNS, PointResult, SCALARS, STATES};
use crate::task::policy::{self, Kernel};
use crate::task::report::{Report, jnum, named};
use crate::task::rows;

/// Run a scan of metastable decompositions (module doc).
pub fn run(sc: &Scenario, variable: &str, ctx: &mut Context) -> Result<Report, Error> {
    let engine = policy::resolve(
        ctx.backend,
        &Kernel::CpuOnly { solver: "metastable" },
        ctx.gpu.clone(),
    )?;
    let points = sc.points()?;
    let x_names = rows::scan_x_names(sc, variable)?;
    let xvals = |i: usize| rows::x_values(&points[i], &x_names);
    let mut units = ctx.units("scan", engine.tag(), points.len() as u64, 1, "points")?;
    let names = ms::row_names(sc);
    let mut ms_header = x_names.clone();
    ms_header.push("state".into());
    ms_header.extend(names.iter().cloned());
    let mut ms_csv = CsvWriter::create(&ctx.path("metastable.csv")?, &ms_header)?;
    let mut columns = x_names.clone();
    columns.extend(SCALARS.iter().map(|s| s.to_string()));
    let mut obs_csv = CsvWriter::create(&ctx.path("observables.csv")?, &columns)?;
    let mut pm_header = x_names.clone();
    pm_header.extend(PM_COLUMNS.iter().map(|s| s.to_string()));
    let mut pm_csv = CsvWriter::create(&ctx.path("pm.csv")?, &pm_header)?;
    let mut table: Vec<(Vec<f64>, PointResult)> = Vec::new();
    units.run(
        ctx.progress,
        "scan (metastable)",
        |i| {
            let r = ms::solve_point(sc, &points[i])
                .map_err(|e| crate::task::steady_state::name_point(e, i, &x_names, &xvals(i), &points))?;
            let mut unit_rows = r.rows.clone();
            unit_rows.push(r.scalars.clone());
            let unit = PointUnit {
                rows: unit_rows,
                pm: Some(r.pm.concat()),
                ..Default::default()
            };
            Ok(unit.encode())
        },
        |i, payload| {
            let unit = PointUnit::decode(&payload)?;
            let x = xvals(i);
            let r = decode(unit)?;
            for (label, row) in STATES.iter().zip(&r.rows) {
                ms_csv.row_labelled(&x, label, row)?;
            }
            let mut row = x.clone();
            row.extend(&r.scalars);
            obs_csv.row(&row)?;
            for row in ms::pm_rows(&x, &r) {
                pm_csv.row(&row)?;
            }
            table.push((x, r));
            Ok(())
        },
    )?;
    let mut files = vec![
        "metastable.csv".to_string(),
        "observables.csv".to_string(),
        "pm.csv".to_string(),
    ];
    if sc.plot && units.whole() && !table.is_empty() {
        draw(ctx, sc, variable, points[0].model.n, &names, &table)?;
        files.push("metastable.png".into());
    }
    let best = table
        .iter()
        .filter(|(_, r)| r.scalars[0].is_finite())
        .max_by(|a, b| a.1.scalars[0].total_cmp(&b.1.scalars[0]));
    let results = serde_json::json!({
        "points": table.len(),
        "mode": "metastable",
        "slowest_lambda1": best.map(|(_, r)| jnum(r.scalars[0])),
        "slowest_at": best.map(|(x, _)| named(&x_names, x)),
        "max_residual": jnum(table.iter().map(|(_, r)| r.scalars[9]).fold(0.0, f64::max)),
    });
    Ok(Report {
        coverage: Some(units.coverage()),
        task: "scan",
        solver: "metastable decomposition per scan point (shift-invert Arnoldi, f64)".into(),
        backend: engine.used(None),
        model: points[0].model,
        columns,
        results,
        stats: None,
        files,
    })
}

/// A point's result from its unit: three state rows and the scalars; P_m of the three states
/// concatenated.
fn decode(unit: PointUnit) -> Result<PointResult, Error> {
    let corrupt = || -> Error {
        let path = std::path::Path::new(CHECKPOINT_DIR);
        checkpoint::corrupt(path, "a metastable scan unit of the wrong shape").into()
    };
    let mut rows = unit.rows;
    let pm = unit.pm.ok_or_else(corrupt)?;
    if rows.len() != 4 || pm.len() % 3 != 0 || pm.is_empty() {
        return Err(corrupt());
    }
    let scalars = rows.pop().ok_or_else(corrupt)?;
    let n1 = pm.len() / 3;
    Ok(PointResult {
        rows,
        pm: pm.chunks_exact(n1).map(|c| c.to_vec()).collect(),
        scalars,
    })
}

/// `metastable.png` (module doc).
fn draw(
    ctx: &Context,
    sc: &Scenario,
    variable: &str,
    n: usize,
    names: &[String],
    table: &[(Vec<f64>, PointResult)],
) -> Result<(), Error> {
    let xs: Vec<f64> = table.iter().map(|(x, _)| x[0]).collect();
    let col = |state: usize, k: usize| table.iter().map(|(_, r)| r.rows[state][k]).collect::<Vec<f64>>();
    let scal = |k: usize| table.iter().map(|(_, r)| r.scalars[k]).collect::<Vec<f64>>();
    let half = n as f64 / 2.0;
    let jz = |s: usize| col(s, 2).iter().map(|v| v / half).collect::<Vec<f64>>();
    let (jz_ss, jz_p, jz_m) = (jz(0), jz(1), jz(2));
    let xi2_p = col(1, 3);
    let (a_p, a_m, a_s) = (scal(2), scal(3), scal(4));
    let (g_p, g_m) = (scal(5), scal(6));
    let l1: Vec<f64> = scal(0).iter().map(|v| v.abs()).collect();
    let mut panels: Vec<(&str, Vec<plot::Series>)> = vec![
        (
            "<Jz> / (N/2)",
            vec![
                plot::Series {
                    name: "rho_ss",
                    y: &jz_ss,
                },
                plot::Series {
                    name: "rho_+",
                    y: &jz_p,
                },
                plot::Series {
                    name: "rho_-",
                    y: &jz_m,
                },
            ],
        ),
        (
            "xi^2 of rho_+",
            vec![plot::Series {
                name: "rho_+",
                y: &xi2_p,
            }],
        ),
        (
            "weights",
            vec![
                plot::Series { name: "a_+", y: &a_p },
                plot::Series { name: "a_-", y: &a_m },
                plot::Series {
                    name: "a_+ + a_-",
                    y: &a_s,
                },
            ],
        ),
        (
            "rates (1/time unit)",
            vec![
                plot::Series {
                    name: "|lambda_1|",
                    y: &l1,
                },
                plot::Series {
                    name: "Gamma_+ (out of rho_+)",
                    y: &g_p,
                },
                plot::Series {
                    name: "Gamma_- (out of rho_-)",
                    y: &g_m,
                },
            ],
        ),
    ];
    let (fid, top, fid_top) = (scal(8), scal(12), scal(13));
    if sc.observables.fidelity.is_some() && names.iter().any(|c| c == "fidelity") {
        panels.insert(
            1,
            (
                "rho_+: CRSS fidelity",
                vec![
                    plot::Series {
                        name: "fidelity of rho_+",
                        y: &fid,
                    },
                    plot::Series {
                        name: "of its j = N/2 part, normalised",
                        y: &fid_top,
                    },
                    plot::Series {
                        name: "j = N/2 weight of rho_+",
                        y: &top,
                    },
                ],
            ),
        );
    }
    plot::line_plot(
        &ctx.path("metastable.png")?,
        &format!("metastable states against {variable}, N = {n}"),
        variable,
        &xs,
        &panels,
    )?;
    Ok(())
}
