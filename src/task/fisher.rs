//! `kind = "fisher"`: the Fisher information of the steady state with respect to a model
//! parameter p ([`crate::solver::fisher`]: Ridders-extrapolated central differences of exact
//! steady states, F_C of P_m, F_Q from the symmetric logarithmic derivative), and the
//! error-propagation sensitivity delta p = sqrt(Var O)/|d<O>/dp| of an observable O. CPU only,
//! f64; a scan (`variable` with values) gives one row per point.
//!
//! Outputs:
//! - `fisher.csv`: [the scanned variable,] p, `F_C`, `F_Q`, `delta_p_error_propagation`,
//!   `dO_dp`, `Var_O`, `O_mean`, `bound_C` = 1/sqrt(F_C), `bound_Q` = 1/sqrt(F_Q),
//!   `derivative_error` (relative error estimate of d rho/dp); F_Q is NaN with `qfi = false`;
//! - result.json: the same per point, the F_Q method (diagonal shortcut or eigendecomposition),
//!   the steady states solved; for seed 004's pumping model with p = w, `F_thermal`, the exact
//!   Var(Jz)/w^2 of the thermal state exp(-beta Jz)/Z, beta = -ln(w/Gamma) (App. D);
//! - with more than one point, `fisher.png`: F_C, F_Q (and F_thermal) against the variable,
//!   and delta p beside the Cramer-Rao bounds.
//!
//! Refusals before anything runs: with `qfi = true` the dense eigendecompositions of F_Q
//! (8 complex (N+1)^2 matrices, [`fisher::quantum_memory_bytes`]), naming `task.qfi`; each
//! point's steady-state solve (the estimates of [`super::estimate`]) with the differences'
//! tableau ([`fisher::difference_bytes`]).

use super::context::Context;
use super::memory;
use super::policy::{self, Kernel};
use super::report::{Report, jnum};
use crate::error::Error;
use crate::model::Model;
use crate::output::CsvWriter;
use crate::output::plot::{self, Series};
use crate::scenario::{FisherSpec, Scenario};
use crate::solver::correlation::is_pumping_model;
use crate::solver::fisher::{self, Fisher};
use crate::solver::{blocks, master};
use serde_json::{Value, json};

/// The columns of fisher.csv after the scanned variable and the parameter.
pub const COLUMNS: [&str; 9] = [
    "F_C",
    "F_Q",
    "delta_p_error_propagation",
    "dO_dp",
    "Var_O",
    "O_mean",
    "bound_C",
    "bound_Q",
    "derivative_error",
];

/// Var(Jz)/w^2 of the thermal state p_m ~ (w/Gamma)^m of seed 004 (App. D), by direct sums
/// with weights relative to the largest (no overflow at any N).
pub fn thermal_fisher_w(n: usize, gamma: f64, w: f64) -> f64 {
    let ln_r = (w / gamma).ln();
    let j = n as f64 / 2.0;
    let top = (0..=n)
        .map(|k| (k as f64 - j) * ln_r)
        .fold(f64::NEG_INFINITY, f64::max);
    let (mut z, mut s1, mut s2) = (0.0, 0.0, 0.0);
    for k in 0..=n {
        let m = k as f64 - j;
        let p = (m * ln_r - top).exp();
        z += p;
        s1 += m * p;
        s2 += m * m * p;
    }
    let mean = s1 / z;
    (s2 / z - mean * mean) / (w * w)
}

/// Bytes of one point: (the steady-state solve with the differences' tableau, the F_Q
/// eigendecompositions). An undriven collective model takes the O(N) detailed-balance path
/// (no factorisation).
pub fn memory_bytes(model: &Model) -> (f64, f64) {
    let steady = match (model.is_collective(), model.drive == 0.0) {
        (true, true) => 3.0 * 16.0 * ((model.n + 1) * (model.n + 1)) as f64,
        (true, false) => master::steady_state_memory_estimate(model.n + 1),
        (false, _) => blocks::steady_state_memory_estimate(model),
    };
    (
        steady + fisher::difference_bytes(model),
        fisher::quantum_memory_bytes(model),
    )
}

/// Refuse a point whose F_Q eigendecompositions (named with `task.qfi`, checked first: they
/// are the part a user can switch off), steady-state solve or differences exceed the memory
/// limit.
fn refuse(model: &Model, qfi: bool) -> Result<(), Error> {
    let (states, quantum) = memory_bytes(model);
    if qfi {
        memory::refuse_bytes(
            quantum,
            format!(
                "the dense eigendecompositions of the quantum Fisher information at N = {} \
                 (task.qfi = false skips F_Q and keeps F_C)",
                model.n
            ),
        )?;
    }
    memory::refuse_bytes(
        states,
        format!(
            "the steady states and their Ridders differences (Fisher information) at N = {}",
            model.n
        ),
    )?;
    Ok(())
}

/// Run `kind = "fisher"` (module doc).
pub fn run(sc: &Scenario, spec: &FisherSpec, ctx: &mut Context) -> Result<Report, Error> {
    let engine = policy::resolve(
        ctx.backend,
        &Kernel::CpuOnly { solver: "fisher" },
        ctx.gpu.clone(),
    )?;
    let points = sc.points()?;
    for p in &points {
        refuse(&p.model, spec.qfi)?;
    }
    let variable = spec.scan.as_ref().map(|(v, _)| v.clone());
    let mut columns: Vec<String> = variable
        .iter()
        .filter(|v| **v != spec.parameter)
        .cloned()
        .collect();
    columns.push(spec.parameter.clone());
    columns.extend(COLUMNS.iter().map(|s| s.to_string()));
    let mut csv = CsvWriter::create(&ctx.path("fisher.csv")?, &columns)?;
    ctx.progress.start(points.len() as u64, "fisher");
    let mut rows: Vec<(f64, Fisher, Option<f64>)> = Vec::with_capacity(points.len());
    for (i, p) in points.iter().enumerate() {
        let f = fisher::fisher(&p.model, &spec.parameter, spec.observable, spec.step, spec.qfi)
            .map_err(|e| super::checks::at_point("fisher", p, e))?;
        let x = variable
            .as_ref()
            .and_then(|v| p.values.get(v).copied())
            .unwrap_or(f.value);
        let thermal = (is_pumping_model(&p.model) && spec.parameter == "w")
            .then(|| thermal_fisher_w(p.model.n, p.model.gamma_coll, p.model.pump_coll));
        let mut row: Vec<f64> = if columns.len() > COLUMNS.len() + 1 {
            vec![x]
        } else {
            vec![]
        };
        row.extend(csv_row(&f));
        csv.row(&row)?;
        rows.push((x, f, thermal));
        ctx.progress.set(i as u64 + 1);
    }
    ctx.progress.finish();
    let mut files = vec!["fisher.csv".to_string()];
    if sc.plot && rows.len() > 1 {
        draw(
            ctx,
            spec,
            variable.as_deref().unwrap_or(&spec.parameter),
            &rows,
            points[0].model.n,
        )?;
        files.push("fisher.png".into());
    }
    let summaries: Vec<Value> = rows
        .iter()
        .map(|(x, f, th)| summary(spec, variable.as_deref(), *x, f, *th))
        .collect();
    let results = if summaries.len() == 1 {
        summaries[0].clone()
    } else {
        json!({ "parameter": spec.parameter, "observable": spec.observable.name(), "points": summaries })
    };
    Ok(Report {
        coverage: None,
        task: "fisher",
        solver: "fisher (Ridders-extrapolated central differences of exact steady states, f64)".into(),
        backend: engine.used(None),
        model: points[0].model,
        columns,
        results,
        stats: None,
        files,
    })
}

/// The numbers of one fisher.csv row after the variable (module doc).
fn csv_row(f: &Fisher) -> [f64; 10] {
    let fq = f.f_quantum.unwrap_or(f64::NAN);
    [
        f.value,
        f.f_classical,
        fq,
        f.delta_error_propagation,
        f.d_mean,
        f.variance,
        f.mean,
        1.0 / f.f_classical.sqrt(),
        1.0 / fq.sqrt(),
        f.derivative_error,
    ]
}

/// result.json's entry of one point.
fn summary(spec: &FisherSpec, variable: Option<&str>, x: f64, f: &Fisher, thermal: Option<f64>) -> Value {
    let fq = f.f_quantum.unwrap_or(f64::NAN);
    let mut v = json!({
        "parameter": spec.parameter,
        "value": jnum(f.value),
        "observable": spec.observable.name(),
        "F_C": jnum(f.f_classical),
        "F_Q": f.f_quantum.map_or(Value::Null, jnum),
        "F_Q_method": match (f.f_quantum, f.diagonal) {
            (None, _) => "not computed (qfi = false)",
            (Some(_), true) => "diagonal in m: sum over (j, m) of (dp)^2/p",
            (Some(_), false) => "symmetric logarithmic derivative, per-block eigendecomposition",
        },
        "delta_p_error_propagation": jnum(f.delta_error_propagation),
        "bound_C": jnum(1.0 / f.f_classical.sqrt()),
        "bound_Q": jnum(1.0 / fq.sqrt()),
        "dO_dp": jnum(f.d_mean),
        "Var_O": jnum(f.variance),
        "O_mean": jnum(f.mean),
        "derivative_error": jnum(f.derivative_error),
        "step": jnum(f.step),
        "steady_states_solved": f.solves,
        "F_thermal": thermal.map_or(Value::Null, jnum),
    });
    if let Some(name) = variable.filter(|v| *v != spec.parameter) {
        v[name] = jnum(x);
    }
    v
}

/// fisher.png: the informations, and the sensitivities against the bounds.
fn draw(
    ctx: &Context,
    spec: &FisherSpec,
    xname: &str,
    rows: &[(f64, Fisher, Option<f64>)],
    n: usize,
) -> Result<(), Error> {
    let x: Vec<f64> = rows.iter().map(|r| r.0).collect();
    let col = |f: &dyn Fn(&Fisher) -> f64| -> Vec<f64> { rows.iter().map(|r| f(&r.1)).collect() };
    let fc = col(&|f| f.f_classical);
    let fq = col(&|f| f.f_quantum.unwrap_or(f64::NAN));
    let th: Vec<f64> = rows.iter().map(|r| r.2.unwrap_or(f64::NAN)).collect();
    let dp = col(&|f| f.delta_error_propagation);
    let bq = col(&|f| 1.0 / f.f_quantum.unwrap_or(f.f_classical).sqrt());
    let p = &spec.parameter;
    let o = spec.observable.name();
    let mut info = vec![
        Series {
            name: "F_C (of P_m)",
            y: &fc,
        },
        Series {
            name: "F_Q (SLD)",
            y: &fq,
        },
    ];
    if th.iter().any(|v| v.is_finite()) {
        info.push(Series {
            name: "Var(Jz)/w^2 (thermal state)",
            y: &th,
        });
    }
    let dp_name = format!("sqrt(Var {o}) / |d<{o}>/d{p}|");
    let sens = vec![
        Series {
            name: &dp_name,
            y: &dp,
        },
        Series {
            name: "1/sqrt(F_Q) (Cramer-Rao)",
            y: &bq,
        },
    ];
    let info_label = format!("F_{p} (1/({p} unit)^2)");
    let sens_label = format!("delta {p} ({p} unit)");
    plot::line_plot(
        &ctx.path("fisher.png")?,
        &format!("Fisher information of the steady state with respect to {p}, N = {n}"),
        xname,
        &x,
        &[(&info_label, info), (&sens_label, sens)],
    )?;
    Ok(())
}
