//! `kind = "metastable"` (and the points of a scan with `mode = "metastable"`,
//! [`crate::task::scan::metastable`]): the steady state as a mixture of two metastable states,
//! `rho_ss ~ a_+ rho_+ + a_- rho_-`, from the slowest eigenmode rho_1 of L
//! ([`crate::solver::metastable`], seed 000 eqs. 4-5 and 9-10), with the switching rates
//! `Gamma_+- = |lambda_1| a_-+` it predicts. rho_+ is the state with the lower <Jz>.
//!
//! Outputs:
//! - `metastable.csv`: one row per state, `state` = `ss`, `plus`, `minus`, then the observable
//!   columns (Jx, Jy, Jz, xi2, J2 and `[observables] columns`, e.g. N_eff, fidelity with
//!   `[observables.fidelity]`), `weight` (a_+, a_-; 1 for ss) and `rate_out` (Gamma_+,
//!   Gamma_-: the rate out of that state; NaN for ss);
//! - `pm.csv`: `m, ss, plus, minus, mixture` (P_m of each state and of a_+ rho_+ + a_- rho_-);
//! - `metastable.png`: P_m of rho_ss and of a_+- rho_+- (seed 000 Fig. 3b);
//! - result.json: lambda_1, lambda_2, a_+, a_-, a_+ + a_-, Gamma_+-, the P_m distance of the
//!   decomposition, the CRSS fidelity of rho_+ (with `[observables.fidelity]`), the eigenpairs'
//!   residuals, and `a_plus_blocks` / `a_minus_blocks`: the weights with block traces taken
//!   without degeneracies (QuTiP PIQS's convention, which seed 000's quoted weights follow;
//!   [`crate::solver::metastable::Metastable::a_plus_blocks`]); `top_weight_plus`, the share
//!   tr R_{N/2} of rho_+ in j = N/2, and `fidelity_plus_top` = fidelity_plus / top_weight_plus,
//!   the CRSS fidelity of rho_+'s j = N/2 part (with single-atom rates rho_+ also holds the
//!   shallower plateau in j = N/2 - 1, which the CRSS cannot overlap).
//!
//! CPU only (one sparse LU and a short Arnoldi run).

use super::context::Context;
use super::policy::{self, Kernel};
use super::report::{Report, jnum};
use super::rows::{self, StateRef};
use super::spectrum::space_of;
use crate::error::Error;
use crate::output::{CsvWriter, plot};
use crate::scenario::{Point, Scenario};
use crate::solver::metastable::{self, Metastable};
use serde_json::json;

/// The three states, in row order.
pub const STATES: [&str; 3] = ["ss", "plus", "minus"];

/// The scalar results of one point, in this order (also the scan's observables.csv columns).
pub const SCALARS: [&str; 14] = [
    "lambda1",
    "lambda2",
    "a_plus",
    "a_minus",
    "a_sum",
    "rate_plus",
    "rate_minus",
    "pm_distance",
    "fidelity_plus",
    "residual",
    "a_plus_blocks",
    "a_minus_blocks",
    "top_weight_plus",
    "fidelity_plus_top",
];

/// One point's results: a row per state (observables, weight, rate_out), P_m per state, the
/// [`SCALARS`].
pub struct PointResult {
    pub rows: Vec<Vec<f64>>,
    pub pm: Vec<Vec<f64>>,
    pub scalars: Vec<f64>,
}

/// The columns after `state` in metastable.csv.
pub fn row_names(sc: &Scenario) -> Vec<String> {
    let mut names = rows::observable_names(sc);
    names.push("weight".into());
    names.push("rate_out".into());
    names
}

/// Decompose the steady state at one point.
pub fn solve_point(sc: &Scenario, p: &Point) -> Result<PointResult, Error> {
    let reference = sc.reference_state(p)?;
    let m = metastable::decompose(&p.model, space_of(&p.model))?;
    let extras = &sc.observables.columns;
    let states = [&m.steady, &m.plus, &m.minus];
    let weights = [1.0, m.a_plus, m.a_minus];
    let rates = [f64::NAN, m.rate_plus, m.rate_minus];
    let mut out_rows = Vec::new();
    for k in 0..3 {
        let mut r = rows::observable_row(StateRef::Blocks(states[k]), extras, reference.as_deref());
        r.push(weights[k]);
        r.push(rates[k]);
        out_rows.push(r);
    }
    let fidelity_plus = match reference.as_deref() {
        Some(psi) => crate::observe::fidelity_blocks(&m.plus, psi),
        None => f64::NAN,
    };
    let pm = states.iter().map(|s| crate::observe::pm_blocks(s)).collect();
    Ok(PointResult {
        rows: out_rows,
        pm,
        scalars: scalars(&m, fidelity_plus),
    })
}

fn scalars(m: &Metastable, fidelity_plus: f64) -> Vec<f64> {
    vec![
        m.lambda1.re,
        m.lambda2.map_or(f64::NAN, |v| v.re),
        m.a_plus,
        m.a_minus,
        m.a_plus + m.a_minus,
        m.rate_plus,
        m.rate_minus,
        m.pm_distance,
        fidelity_plus,
        m.residual_1.max(m.residual_steady),
        m.a_plus_blocks,
        m.a_minus_blocks,
        // The j = N/2 block's share of rho_+, and the CRSS fidelity of that block normalised
        // (the CRSS lives in j = N/2; seed 000 Fig. 3c's "fidelity" is this one).
        m.plus.block_trace(0).re,
        fidelity_plus / m.plus.block_trace(0).re,
    ]
}

/// `pm.csv` rows of one point: `[x,] m, ss, plus, minus, mixture`.
pub fn pm_rows(x: &[f64], r: &PointResult) -> Vec<Vec<f64>> {
    let (a_p, a_m) = (r.scalars[2], r.scalars[3]);
    let n = r.pm[0].len() - 1;
    (0..=n)
        .map(|i| {
            let mut row = x.to_vec();
            let (ss, p, q) = (r.pm[0][i], r.pm[1][i], r.pm[2][i]);
            row.extend([i as f64 - n as f64 / 2.0, ss, p, q, a_p * p + a_m * q]);
            row
        })
        .collect()
}

/// The header of pm.csv after the x columns.
pub const PM_COLUMNS: [&str; 5] = ["m", "ss", "plus", "minus", "mixture"];

/// Run `kind = "metastable"`.
pub fn run(sc: &Scenario, ctx: &mut Context) -> Result<Report, Error> {
    let engine = policy::resolve(
        ctx.backend,
        &Kernel::CpuOnly { solver: "metastable" },
        ctx.gpu.clone(),
    )?;
    let points = sc.points()?;
    let p = &points[0];
    ctx.progress.start(1, "metastable decomposition");
    let r = solve_point(sc, p).map_err(|e| match e {
        Error::Solver(cause) => super::checks::at_point("metastable", p, cause).into(),
        other => other,
    })?;
    ctx.progress.set(1);
    ctx.progress.finish();
    let mut columns = vec!["state".to_string()];
    columns.extend(row_names(sc));
    let mut csv = CsvWriter::create(&ctx.path("metastable.csv")?, &columns)?;
    for (label, row) in STATES.iter().zip(&r.rows) {
        csv.row_labelled(&[], label, row)?;
    }
    let pm_header: Vec<String> = PM_COLUMNS.iter().map(|s| s.to_string()).collect();
    let mut pm = CsvWriter::create(&ctx.path("pm.csv")?, &pm_header)?;
    let pm_table = pm_rows(&[], &r);
    for row in &pm_table {
        pm.row(row)?;
    }
    let mut files = vec!["metastable.csv".to_string(), "pm.csv".to_string()];
    if sc.plot {
        draw_pm(ctx, p.model.n, &pm_table, &r.scalars)?;
        files.push("metastable.png".into());
    }
    let results: serde_json::Map<String, serde_json::Value> = SCALARS
        .iter()
        .zip(&r.scalars)
        .map(|(k, v)| (k.to_string(), jnum(*v)))
        .collect();
    Ok(Report {
        coverage: None,
        task: "metastable",
        solver: "metastable decomposition of the slowest Liouvillian eigenmode (shift-invert Arnoldi, f64)"
            .into(),
        backend: engine.used(None),
        model: p.model,
        columns,
        results: json!(results),
        stats: None,
        files,
    })
}

/// `metastable.png`: P_m of rho_ss, a_+ rho_+, a_- rho_- and their sum against m.
fn draw_pm(ctx: &Context, n: usize, table: &[Vec<f64>], s: &[f64]) -> Result<(), Error> {
    let (a_p, a_m) = (s[2], s[3]);
    let m: Vec<f64> = table.iter().map(|r| r[0]).collect();
    let col = |k: usize, w: f64| table.iter().map(|r| w * r[k]).collect::<Vec<f64>>();
    let (ss, p, q, mix) = (col(1, 1.0), col(2, a_p), col(3, a_m), col(4, 1.0));
    let names = [
        "rho_ss".to_string(),
        format!("a+ rho+ (a+ = {a_p:.3})"),
        format!("a- rho- (a- = {a_m:.3})"),
        "a+ rho+ + a- rho-".to_string(),
    ];
    let series = vec![
        plot::Series {
            name: &names[0],
            y: &ss,
        },
        plot::Series {
            name: &names[1],
            y: &p,
        },
        plot::Series {
            name: &names[2],
            y: &q,
        },
        plot::Series {
            name: &names[3],
            y: &mix,
        },
    ];
    plot::line_plot(
        &ctx.path("metastable.png")?,
        &format!("metastable decomposition, N = {n}: P_m of the steady state and its two phases"),
        "m (eigenvalue of Jz)",
        &m,
        &[("P_m", series)],
    )?;
    Ok(())
}
