//! The approximate methods behind the master-equation tasks' columns: `method = "meanfield"`
//! ([`meanfield`]) and `method = "cumulant"` ([`cumulant`]) for `evolve`, `steady_state` and
//! `scan`, writing the same observable columns as the exact solver.
//!
//! - Cumulants carry every first and second collective moment (nine real variables, exact
//!   relations to <J_a> and <{J_a, J_b}>/2: [`cumulant::to_moments`]), so <J>, xi^2, <J^2>,
//!   the second moments, variances and N_eff follow as for an exact state.
//! - Mean field carries the Bloch vector s = <J>/(N/2) only. The columns are those of the
//!   product state rho_1^{(x)N} whose single-atom Bloch vector is s (the individual
//!   factorisation's ansatz; with the collective factorisation |s| = 1 is conserved and this
//!   is the spin coherent state): <J> = N s/2, <{J_a, J_b}>/2 = N delta_ab/4 +
//!   N (N-1) s_a s_b/4, hence xi^2 = 1/|s|^2 and <J^2> = 3N/4 + N (N-1) |s|^2/4. The
//!   fluctuations are the product state's: mean field predicts none of its own.
//!
//! Columns that need the density matrix (`purity`, `lambda_max`, `fidelity`), P_m and the
//! Husimi grid are refused for these methods by the scenario parser.
//!
//! Steady states: mean field's are its stable fixed points ([`meanfield::fixed_points`], all
//! of them, one row each: a bistable point has two rows, told apart by the trailing `branch`
//! column, 0, 1, ... by increasing sz). Cumulants' steady state is the stable fixed point of
//! the closed equations reached from `[initial]` ([`cumulant_steady_state`]: pseudo-transient
//! continuation; the residual is reported, and a point that does not settle is an error naming
//! it).

use super::checks::{self, Budget, Guard};
use super::rows;
use crate::error::Error;
use crate::error::SolverError;
use crate::model::{Model, Protocol};
use crate::observe::Moments;
use crate::scenario::{Point, Scenario};
use crate::solver::Method;
use crate::solver::cumulant::{self, NVAR};
use crate::solver::meanfield::{self, Factorisation};
use crate::solver::ode::OdeOptions;

/// The nine cumulant variables of the product state with single-atom Bloch vector `b`
/// (module doc): s = <sigma^+>-like amplitude (b_x + i b_y)/2, z = b_z, and the two-atom
/// moments products of one-atom ones.
pub fn product_variables(b: [f64; 3]) -> [f64; NVAR] {
    let (sr, si, z) = (0.5 * b[0], 0.5 * b[1], b[2]);
    let mut y = [0.0; NVAR];
    y[cumulant::S_RE] = sr;
    y[cumulant::S_IM] = si;
    y[cumulant::Z] = z;
    y[cumulant::P] = sr * sr + si * si;
    y[cumulant::Q_RE] = sr * sr - si * si;
    y[cumulant::Q_IM] = 2.0 * sr * si;
    y[cumulant::U_RE] = z * sr;
    y[cumulant::U_IM] = z * si;
    y[cumulant::V] = z * z;
    y
}

/// Collective moments of the product state with Bloch vector `b` (module doc).
pub fn product_moments(n: usize, b: [f64; 3]) -> Moments {
    cumulant::to_moments(n, &product_variables(b))
}

/// The observable columns of the mean-field Bloch vector `b` of `n` atoms.
pub fn meanfield_row(n: usize, b: [f64; 3], extras: &[String]) -> Vec<f64> {
    let y = product_variables(b);
    rows::moment_row(
        &cumulant::to_moments(n, &y),
        cumulant::j2(n, &y),
        extras,
        None,
        None,
    )
}

/// The observable columns of the cumulant variables `y` of `n` atoms.
pub fn cumulant_row(n: usize, y: &[f64; NVAR], extras: &[String]) -> Vec<f64> {
    rows::moment_row(
        &cumulant::to_moments(n, y),
        cumulant::j2(n, y),
        extras,
        None,
        None,
    )
}

/// Where an approximate evolution starts: the initial state's Bloch vector (mean field) or
/// its nine cumulant variables (exact for any pure j = N/2 state).
pub enum Start {
    MeanField(Factorisation, [f64; 3]),
    Cumulant([f64; NVAR]),
}

/// Integrate from `start`, calling `on_row(i, t, row)` with the observable columns at every
/// save. Returns the integrator statistics, with the margins of the |<J>| <= N/2 check
/// (`checks`; a violation is flagged there, [`checks`] module doc).
pub fn evolve_rows(
    protocol: &Protocol,
    start: &Start,
    times: &[f64],
    ode: &OdeOptions,
    extras: &[String],
    on_row: &mut dyn FnMut(usize, f64, Vec<f64>),
) -> Result<serde_json::Value, SolverError> {
    evolve_saves(protocol, start, times, ode, extras, &mut |i, t, r, _| {
        on_row(i, t, r)
    })
}

/// The callback of [`evolve_saves`]: save index, time, observable row, moments.
pub type OnSave<'a> = dyn FnMut(usize, f64, Vec<f64>, &Moments) + 'a;

/// [`evolve_rows`] with the collective moments of every save beside its row (mean field: those
/// of its product state, module doc): what `[output] final_state` saves of these methods.
pub fn evolve_saves(
    protocol: &Protocol,
    start: &Start,
    times: &[f64],
    ode: &OdeOptions,
    extras: &[String],
    on_save: &mut OnSave,
) -> Result<serde_json::Value, SolverError> {
    let n = protocol.base.n;
    let mut guard = Guard::new(Budget::evolution(ode));
    let method = match start {
        Start::MeanField(..) => "meanfield",
        Start::Cumulant(_) => "cumulant",
    };
    let mut row = |i: usize, t: f64, r: Vec<f64>, m: &Moments| {
        guard.approx(|| format!("t = {t}"), n, [r[0], r[1], r[2]], method);
        on_save(i, t, r, m)
    };
    let mut st = match start {
        Start::MeanField(f, s0) => meanfield::evolve_protocol(protocol, *f, *s0, times, ode, |i, t, s| {
            row(i, t, meanfield_row(n, s, extras), &product_moments(n, s))
        })
        .map(|st| serde_json::to_value(st).unwrap_or_default())?,
        Start::Cumulant(y0) => cumulant::evolve_protocol(protocol, y0, times, ode, &mut |i, t, y| {
            row(i, t, cumulant_row(n, y, extras), &cumulant::to_moments(n, y))
        })
        .map(|st| serde_json::to_value(st).unwrap_or_default())?,
    };
    checks::record(&mut st, guard.summary());
    Ok(st)
}

/// Flag the rows of an approximate steady state whose |<J>| exceeds N/2 (`checks` in
/// `stats`, [`checks`] module doc; rows lead with <Jx>, <Jy>, <Jz>).
pub fn check_steady_rows(n: usize, rows: &[Vec<f64>], method: Method, stats: &mut serde_json::Value) {
    let mut guard = Guard::new(Budget::steady_state());
    for (b, r) in rows.iter().filter(|r| r[0].is_finite()).enumerate() {
        let at = || match rows.len() {
            1 => "the steady state".to_string(),
            _ => format!("the steady state of branch {b}"),
        };
        guard.approx(at, n, [r[0], r[1], r[2]], method.name());
    }
    checks::record(stats, guard.summary());
}

/// Mean field's steady states: every stable fixed point, by increasing sz (module doc).
pub fn meanfield_steady_states(model: &Model, f: Factorisation) -> Vec<[f64; 3]> {
    meanfield::fixed_points(model, f)
        .points
        .into_iter()
        .filter(|q| q.stability == meanfield::Stability::Stable)
        .map(|q| q.s)
        .collect()
}

/// The cumulant steady state reached from `y0` by pseudo-transient continuation: implicit
/// Euler steps x <- x + (I/dt - J)^{-1} f(x) (J the finite-difference Jacobian of the closed
/// right-hand side f) with dt grown as the residual falls (switched evolution relaxation,
/// dt_{k+1} = dt_k |f_k| / |f_{k+1}|, at most x10 a step), so that it follows the dynamics into
/// the basin it starts in and ends as Newton's method on f = 0. Returns the fixed point and its
/// residual max |dy/dt| relative to the model's rate scale; an error when it does not reach
/// 1e-10 (no stable fixed point: a limit cycle, or a drift along a conserved quantity).
pub fn cumulant_steady_state(model: &Model, y0: &[f64; NVAR]) -> Result<([f64; NVAR], f64), SolverError> {
    let par = cumulant::params(model);
    let f = |y: &[f64; NVAR]| {
        let mut d = [0.0; NVAR];
        cumulant::rhs(&par, y, &mut d);
        d
    };
    let scale = rate_scale(model);
    let residual = |d: &[f64; NVAR]| d.iter().fold(0.0f64, |m, v| m.max(v.abs())) / scale;
    let (mut y, mut d) = (*y0, f(y0));
    let mut dt = 0.1 / scale;
    for _ in 0..2000 {
        let r = residual(&d);
        if r < 1e-13 {
            break;
        }
        let Some(step) = newton_step(&f, &y, &d, 1.0 / dt) else {
            break;
        };
        for k in 0..NVAR {
            y[k] -= step[k];
        }
        let d_new = f(&y);
        let r_new = residual(&d_new);
        dt *= (r / r_new.max(f64::MIN_POSITIVE)).clamp(0.1, 10.0);
        dt = dt.min(1e14 / scale);
        d = d_new;
    }
    let r = residual(&d);
    if r.is_nan() || r >= 1e-10 || y.iter().any(|v| !v.is_finite()) {
        return Err(SolverError::Unsupported {
            solver: "cumulant steady state",
            message: format!(
                "no stable fixed point of the cumulant equations reached from [initial] \
                 (relative residual {r:e}): the dynamics may not settle (a limit cycle or \
                 a slow drift); run kind = \"evolve\" with method = \"cumulant\""
            ),
        });
    }
    Ok((y, r))
}

/// The total rate of the model's terms (normalises the steady-state residual).
fn rate_scale(m: &Model) -> f64 {
    let n = m.n as f64;
    let s = m.omega0.abs()
        + m.drive.abs()
        + n * (m.chi.abs() + m.chi_z.abs() + m.gamma_coll + m.pump_coll + m.dephase_coll)
        + m.gamma_down
        + m.gamma_up
        + m.gamma_phi;
    if s > 0.0 { s } else { 1.0 }
}

/// Solve (J - shift I) dx = d with the finite-difference Jacobian J of `f` at `y` (Gaussian
/// elimination with partial pivoting); None when the matrix is singular.
fn newton_step(
    f: &dyn Fn(&[f64; NVAR]) -> [f64; NVAR],
    y: &[f64; NVAR],
    d: &[f64; NVAR],
    shift: f64,
) -> Option<[f64; NVAR]> {
    let mut a = [[0.0; NVAR + 1]; NVAR];
    for k in 0..NVAR {
        let h = 1e-7 * y[k].abs().max(1e-3);
        let (mut yp, mut ym) = (*y, *y);
        yp[k] += h;
        ym[k] -= h;
        let (fp, fm) = (f(&yp), f(&ym));
        for r in 0..NVAR {
            a[r][k] = (fp[r] - fm[r]) / (2.0 * h);
        }
    }
    for r in 0..NVAR {
        a[r][r] -= shift;
        a[r][NVAR] = d[r];
    }
    let norm = a
        .iter()
        .flat_map(|r| r[..NVAR].iter())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    for c in 0..NVAR {
        let p = (c..NVAR).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
        if a[p][c].abs() <= 1e-13 * norm {
            return None;
        }
        a.swap(c, p);
        let (top, rest) = a.split_at_mut(c + 1);
        let pivot = &top[c];
        for row in rest.iter_mut() {
            let k = row[c] / pivot[c];
            for (x, p) in row[c..].iter_mut().zip(&pivot[c..]) {
                *x -= k * p;
            }
        }
    }
    let mut x = [0.0; NVAR];
    for r in (0..NVAR).rev() {
        let s: f64 = (r + 1..NVAR).map(|q| a[r][q] * x[q]).sum();
        x[r] = (a[r][NVAR] - s) / a[r][r];
    }
    Some(x)
}

/// Where the approximate evolution of `method` starts at point `p`: `[initial]`'s Bloch
/// vector (mean field) or its cumulant variables.
pub fn start(sc: &Scenario, p: &Point, method: Method) -> Result<Start, Error> {
    if let Some(m) = super::initial::mixed_moments(sc, p)? {
        // A mixed start: its moments (mean field: the Bloch vector <J>/(N/2)).
        let n = p.model.n;
        return Ok(match method {
            Method::MeanField(f) => Start::MeanField(f, m.mean.map(|v| v / (n as f64 / 2.0))),
            _ => Start::Cumulant(cumulant::from_moments(n, &m)),
        });
    }
    let state = sc.initial_spec(p)?;
    Ok(match method {
        Method::MeanField(f) => Start::MeanField(f, meanfield::bloch_vector(&p.model, state)?),
        _ => Start::Cumulant(cumulant::from_pure(&state.amplitudes(&p.model, "initial")?)),
    })
}

/// The solver of an approximate method, in words (result.json).
pub fn solver_name(method: Method) -> String {
    match method {
        Method::MeanField(f) => format!(
            "meanfield ({} factorisation; columns of the product state with the mean-field Bloch vector, CPU f64)",
            f.name()
        ),
        _ => "cumulant (second-order cumulant expansion, 9 real moments, CPU f64)".into(),
    }
}

/// The CPU solver a master-equation task runs with `method`, as the backend policy names it in
/// messages: the exact solvers ("master"), or the approximate method.
pub fn cpu_solver(method: Method) -> &'static str {
    match method {
        Method::Exact | Method::Trajectories => "master",
        m => m.name(),
    }
}
