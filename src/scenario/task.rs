//! `[task]`: what to compute, one validated [`Task`] per `kind`. Each kind takes its own
//! fields and refuses the others (an error naming the field and the kind); the number checks
//! shared with the axes (positive, whole counts, time grids, precision) are in `fields`.

use super::axes::{scan_axis, sweep_spec};
use super::fields::{MAX_CFL, atol, count, positive, precision, rtol, time_grid};
use super::raw::RawTask;
use super::response::{CorrelationSpec, FisherSpec, correlation_task, fisher_task};
use super::{Num, Point, Scenario, SweepSpec};
use crate::analysis::scaling::Law;
use crate::c64;
use crate::error::InputError;
use crate::precision::Precision;
use crate::solver::meanfield::Factorisation;

/// What to compute.
#[derive(Debug, Clone)]
pub enum Task {
    /// Time evolution from the initial state, saving at `times`; `decay_fit` names the
    /// observable column whose late-time decay rate is fitted (the Liouvillian gap from
    /// dynamics, `analysis::decay`).
    Evolve {
        times: Vec<f64>,
        rtol: f64,
        atol: f64,
        max_steps: usize,
        decay_fit: Option<String>,
    },
    /// A Monte-Carlo wave-function ensemble from the initial state, saving at `times`.
    Trajectories {
        times: Vec<f64>,
        ntraj: u64,
        seed: u64,
        save_trajectories: usize,
        f64: bool,
        dt: Option<f64>,
        cfl: Option<f64>,
        /// Integrate each trajectory's occupied levels only (`solver::trajectory`, "Level
        /// window"); CPU only.
        level_window: bool,
    },
    /// The steady state of the model.
    SteadyState,
    /// At each value of `variable`: the steady state, or the evolution from the initial state
    /// ([`ScanMode`]).
    Scan {
        variable: String,
        values: Vec<f64>,
        mode: ScanMode,
    },
    /// Mean field (`solver::meanfield`): every fixed point and its stability at each value of
    /// `variable`, and the boundaries where the number of stable fixed points changes.
    FixedPoints {
        variable: String,
        values: Vec<f64>,
        factorisations: Vec<Factorisation>,
        /// Bisection tolerance of the boundaries, in units of the scanned variable.
        boundary_tol: f64,
        /// With `[initial]` and `task.t_end`: also integrate the mean-field ODEs from the
        /// initial state's Bloch vector to t_end at every point (times = [0, t_end]).
        integrate: Option<EvolveSpec>,
        /// The scenario the collective factorisation runs on when `task.collective_set`
        /// changes the model for it (e.g. seed 000's Dicke curve: single-atom decay off).
        collective: Option<Box<Scenario>>,
        /// The overrides that made `collective`, as written.
        collective_set: Vec<String>,
    },
    /// An approximate method (cumulants) over one or two parameter axes ([`SweepSpec`]).
    Sweep(SweepSpec),
    /// The `k` eigenvalues of the exact Liouvillian nearest `target` (`solver::spectrum`),
    /// restricted to the coherences c - r = `sector` where given.
    Spectrum {
        k: usize,
        target: c64,
        sector: Option<i64>,
    },
    /// The steady state as a mixture of two metastable states, from the slowest eigenmode of
    /// L (`solver::metastable`).
    Metastable,
    /// Two-time correlation C(tau) by the quantum regression theorem (`solver::correlation`).
    Correlation(CorrelationSpec),
    /// Fisher information of the steady state with respect to a model parameter
    /// (`solver::fisher`).
    Fisher(FisherSpec),
}

impl Task {
    /// The task kind as written in `[task] kind` (for error messages).
    pub fn kind(&self) -> &'static str {
        match self {
            Task::Evolve { .. } => "evolve",
            Task::Trajectories { .. } => "trajectories",
            Task::SteadyState => "steady_state",
            Task::Scan { .. } => "scan",
            Task::FixedPoints { .. } => "fixed_points",
            Task::Sweep(_) => "sweep",
            Task::Spectrum { .. } => "spectrum",
            Task::Metastable => "metastable",
            Task::Correlation(_) => "correlation",
            Task::Fisher(_) => "fisher",
        }
    }
}

/// Save times and integrator settings of a time evolution: `kind = "evolve"` and a scan with
/// `mode = "evolve"` take the same fields, parsed and checked by one function.
#[derive(Debug, Clone, PartialEq)]
pub struct EvolveSpec {
    pub times: Vec<f64>,
    pub rtol: f64,
    pub atol: f64,
    pub max_steps: usize,
}

/// What a `kind = "scan"` task computes at each point (`task.mode`).
#[derive(Debug, Clone, PartialEq)]
pub enum ScanMode {
    /// The steady state (`mode = "steady_state"`, the default).
    SteadyState,
    /// The evolution from the initial state over `spec.times` (`mode = "evolve"`). `precision`
    /// is the GPU kernel's (None: f64 where the adapter has SHADER_F64, else f32); the CPU
    /// integrator always runs in f64.
    Evolve {
        spec: EvolveSpec,
        precision: Option<Precision>,
    },
    /// The `k` Liouvillian eigenvalues nearest `target` (`mode = "spectrum"`), as
    /// `kind = "spectrum"` at each point; with `minimize`, at the value of a second variable
    /// that minimises the gap at that point; with `fit`, a scaling law of the gap against the
    /// scanned variable.
    Spectrum {
        k: usize,
        target: c64,
        sector: Option<i64>,
        minimize: Option<Minimize>,
        fit: Option<Law>,
    },
    /// The metastable decomposition at each point (`mode = "metastable"`), as
    /// `kind = "metastable"`.
    Metastable,
}

/// `[task.minimize]`: the gap minimised over `variable` in [lo, hi] at every scan point (a
/// coarse grid, then golden-section search to `tol`).
#[derive(Debug, Clone, PartialEq)]
pub struct Minimize {
    pub variable: String,
    pub lo: f64,
    pub hi: f64,
    pub tol: f64,
}

/// The f32 GPU kernel computes its error estimate in f32, so below this rtol the estimate
/// measures rounding rather than truncation (module doc of `backend::gpu::master_batch`).
pub const F32_MIN_RTOL: f64 = 1e-6;

/// The f32 cumulant batch kernel's atol floor: its variables are O(1) moments whose f32
/// rounding (~6e-8) an atol below ~1e-8 would measure (module doc of
/// `backend::gpu::cumulant_batch`).
pub const F32_MIN_ATOL: f64 = 1e-8;

/// Refuse every field of `names` that is present: it has no meaning for `context`
/// (e.g. `kind = "evolve"`); `hint` (may be empty) says what to do instead.
pub(super) fn refuse(names: &[(&str, bool)], context: &str, hint: &str) -> Result<(), InputError> {
    for (name, present) in names {
        if *present {
            return Err(InputError::invalid(
                format!("task.{name}"),
                "(given)",
                format!("no `{name}` for {context}{hint}"),
            ));
        }
    }
    Ok(())
}

/// The time grid and integrator fields of `kind = "evolve"` and of a scan with
/// `mode = "evolve"` (`context` names the task in errors).
pub(super) fn evolve_spec(t: &RawTask, base: &Point, context: &str) -> Result<EvolveSpec, InputError> {
    Ok(EvolveSpec {
        times: time_grid(t, base, context)?,
        rtol: rtol(base, &t.rtol, 1e-8)?,
        atol: atol(base, &t.atol, 1e-10)?,
        max_steps: count(base, "task.max_steps", &t.max_steps, 10_000_000.0, 1e12)?,
    })
}

/// Which fields of each group `[task]` has: a kind refuses the groups it does not take.
struct Present {
    evolve: [(&'static str, bool); 7],
    traj: [(&'static str, bool); 6],
    precision: [(&'static str, bool); 1],
    sweep: [(&'static str, bool); 6],
    scan: [(&'static str, bool); 6],
    fixed_points: [(&'static str, bool); 3],
    spectrum: [(&'static str, bool); 4],
    scaling: [(&'static str, bool); 2],
    correlation: [(&'static str, bool); 9],
    fisher: [(&'static str, bool); 4],
}

impl Present {
    fn of(t: &RawTask) -> Present {
        Present {
            evolve: [
                ("t_start", t.t_start.is_some()),
                ("t_end", t.t_end.is_some()),
                ("n_times", t.n_times.is_some()),
                ("times", t.times.is_some()),
                ("rtol", t.rtol.is_some()),
                ("atol", t.atol.is_some()),
                ("max_steps", t.max_steps.is_some()),
            ],
            traj: [
                ("ntraj", t.ntraj.is_some()),
                ("seed", t.seed.is_some()),
                ("save_trajectories", t.save_trajectories.is_some()),
                ("dt", t.dt.is_some()),
                ("cfl", t.cfl.is_some()),
                ("level_window", t.level_window.is_some()),
            ],
            precision: [("precision", t.precision.is_some())],
            sweep: [
                ("method", t.method.is_some()),
                ("layout", t.layout.is_some()),
                ("axes", t.axes.is_some()),
                ("t_min", t.t_min.is_some()),
                ("t_late", t.t_late.is_some()),
                ("heatmap", t.heatmap.is_some()),
            ],
            scan: [
                ("mode", t.mode.is_some()),
                ("variable", t.variable.is_some()),
                ("values", t.values.is_some()),
                ("start", t.start.is_some()),
                ("stop", t.stop.is_some()),
                ("num", t.num.is_some()),
            ],
            fixed_points: [
                ("factorisation", t.factorisation.is_some()),
                ("boundary_tol", t.boundary_tol.is_some()),
                ("collective_set", t.collective_set.is_some()),
            ],
            spectrum: [
                ("k", t.k.is_some()),
                ("target", t.target.is_some()),
                ("target_im", t.target_im.is_some()),
                ("sector", t.sector.is_some()),
            ],
            scaling: [("minimize", t.minimize.is_some()), ("fit", t.fit.is_some())],
            correlation: [
                ("a", t.a.is_some()),
                ("b", t.b.is_some()),
                ("tau_end", t.tau_end.is_some()),
                ("n_tau", t.n_tau.is_some()),
                ("taus", t.taus.is_some()),
                ("at", t.at.is_some()),
                ("spectrum", t.spectrum.is_some()),
                ("omega_max", t.omega_max.is_some()),
                ("n_omega", t.n_omega.is_some()),
            ],
            fisher: [
                ("parameter", t.parameter.is_some()),
                ("observable", t.observable.is_some()),
                ("step", t.step.is_some()),
                ("qfi", t.qfi.is_some()),
            ],
        }
    }
}

/// The validated task of `[task]` (`sc` for the names an axis may scan, `base` for numbers).
pub(super) fn task(t: &RawTask, sc: &Scenario, base: &Point) -> Result<Task, InputError> {
    let f = Present::of(t);
    let kind = format!("kind = \"{}\"", t.kind);
    // `method` (and `factorisation` with mean field) also choose the physics method of the
    // master-equation tasks (super::method); the sweep and fixed-point kinds read them here.
    let takes_method = matches!(
        t.kind.as_str(),
        "evolve" | "steady_state" | "scan" | "trajectories"
    );
    refuse(
        match (t.kind.as_str(), takes_method) {
            ("sweep", _) => &[],
            (_, true) => &f.sweep[1..],
            _ => &f.sweep,
        },
        &kind,
        " (sweep fields: kind = \"sweep\")",
    )?;
    if t.kind != "fixed_points" {
        refuse(
            if takes_method {
                &f.fixed_points[1..]
            } else {
                &f.fixed_points
            },
            &kind,
            " (mean-field fields, for kind = \"fixed_points\")",
        )?;
    }
    if t.kind != "spectrum" && !(t.kind == "scan" && t.mode.as_deref() == Some("spectrum")) {
        refuse(
            &f.spectrum,
            &kind,
            " (spectrum fields, for kind = \"spectrum\" or a scan with mode = \"spectrum\")",
        )?;
    }
    if !(t.kind == "scan" && t.mode.as_deref() == Some("spectrum")) {
        refuse(&f.scaling, &kind, " (for a scan with mode = \"spectrum\")")?;
    }
    response_fields(t, &f, &kind)?;
    decay_fit_kind(t)?;
    match t.kind.as_str() {
        // The trajectory ensemble is the evolve task's `method = "trajectories"`.
        "evolve" if t.method.as_deref() == Some("trajectories") => trajectories_task(t, base, &f),
        "evolve" => evolve_task(t, sc, base, &f),
        "trajectories" => trajectories_task(t, base, &f),
        "steady_state" => {
            let ctx = "kind = \"steady_state\"";
            refuse(&f.traj, ctx, "")?;
            refuse(&f.precision, ctx, "")?;
            refuse(&f.scan, ctx, "")?;
            refuse(&f.evolve, ctx, "")?;
            Ok(Task::SteadyState)
        }
        "scan" => scan_task(t, sc, base, &f),
        "spectrum" => spectrum_task(t, base, &f),
        "metastable" => {
            metastable_fields(&f, "kind = \"metastable\"")?;
            refuse(&f.scan, "kind = \"metastable\"", "")?;
            Ok(Task::Metastable)
        }
        "fixed_points" => fixed_points_task(t, sc, base, &f),
        "correlation" | "fisher" => response_task(t, sc, base, &f, &kind),
        "sweep" => {
            let ctx = "kind = \"sweep\"";
            refuse(&f.scan, ctx, " (its axes are [[task.axes]] tables)")?;
            refuse(&f.traj, ctx, "")?;
            Ok(Task::Sweep(sweep_spec(t, sc, base)?))
        }
        other => Err(InputError::invalid(
            "task.kind",
            format!("\"{other}\""),
            "one of \"evolve\", \"trajectories\", \"steady_state\", \"scan\", \"fixed_points\", \"sweep\", \"spectrum\", \"metastable\", \"correlation\", \"fisher\"",
        )),
    }
}

/// The fields of `kind = "correlation"` and `kind = "fisher"` are refused by every other kind.
fn response_fields(t: &RawTask, f: &Present, kind: &str) -> Result<(), InputError> {
    if t.kind != "correlation" {
        refuse(
            &f.correlation,
            kind,
            " (correlation fields, for kind = \"correlation\")",
        )?;
    }
    if t.kind != "fisher" {
        refuse(
            &f.fisher,
            kind,
            " (Fisher-information fields, for kind = \"fisher\")",
        )?;
    }
    Ok(())
}

/// `kind = "correlation"` and `kind = "fisher"` (`super::response`): no trajectory, precision
/// or time-grid fields (a correlation's delays are `tau_end`/`n_tau`/`taus`; its integrator
/// takes rtol, atol, max_steps, which a Fisher information, made of steady states, refuses), no
/// scan mode.
fn response_task(
    t: &RawTask,
    sc: &Scenario,
    base: &Point,
    f: &Present,
    ctx: &str,
) -> Result<Task, InputError> {
    refuse(&f.traj, ctx, "")?;
    refuse(&f.precision, ctx, " (it runs on the CPU in f64)")?;
    refuse(
        &f.scan[..1],
        ctx,
        " (a scan here is `variable` with `values` or `start`/`stop`/`num`)",
    )?;
    if t.kind == "correlation" {
        refuse(
            &f.evolve[..4],
            ctx,
            " (the delays are tau_end and n_tau, or taus)",
        )?;
        Ok(Task::Correlation(correlation_task(t, sc, base)?))
    } else {
        refuse(&f.evolve, ctx, " (it solves steady states, no time evolution)")?;
        Ok(Task::Fisher(fisher_task(t, sc, base)?))
    }
}

/// A metastable decomposition takes no fields of its own (it computes the few eigenvalues it
/// needs) and refuses the time grid and trajectory fields.
fn metastable_fields(f: &Present, ctx: &str) -> Result<(), InputError> {
    refuse(&f.traj, ctx, "")?;
    refuse(&f.precision, ctx, " (the decomposition runs on the CPU in f64)")?;
    refuse(&f.evolve, ctx, "")
}

/// `kind = "spectrum"`: `k` (default 10), `target` (real, default 0), `sector` (a whole number,
/// optional; the U(1) check is the solver's, on the resolved model).
fn spectrum_task(t: &RawTask, base: &Point, f: &Present) -> Result<Task, InputError> {
    refuse(&f.scan, "kind = \"spectrum\"", "")?;
    let (k, target, sector) = spectrum_fields(t, base, f, "kind = \"spectrum\"")?;
    Ok(Task::Spectrum { k, target, sector })
}

/// The fields of a spectrum (`kind = "spectrum"`, or a scan's `mode = "spectrum"`): `k`,
/// `target` and `target_im` (sigma = target + i target_im, default 0), `sector`.
fn spectrum_fields(
    t: &RawTask,
    base: &Point,
    f: &Present,
    ctx: &str,
) -> Result<(usize, c64, Option<i64>), InputError> {
    refuse(&f.traj, ctx, "")?;
    refuse(&f.precision, ctx, " (the spectrum runs on the CPU in f64)")?;
    refuse(&f.evolve, ctx, "")?;
    let k = count(base, "task.k", &t.k, 10.0, 1e5)?;
    let part = |field: &str, n: &Option<Num>| -> Result<f64, InputError> {
        let v = match n {
            None => 0.0,
            Some(n) => base.eval(field, n)?,
        };
        if !v.is_finite() {
            return Err(InputError::invalid(field, v, "a finite number"));
        }
        Ok(v)
    };
    // The target sigma = target + i target_im (e.g. near an oscillation frequency).
    let target = c64::new(
        part("task.target", &t.target)?,
        part("task.target_im", &t.target_im)?,
    );
    let sector = match &t.sector {
        None => None,
        Some(n) => {
            let q = base.eval("task.sector", n)?;
            if q.fract() != 0.0 || q.abs() > 1e9 {
                return Err(InputError::invalid("task.sector", q, "a whole number q = m - m'"));
            }
            Some(q as i64)
        }
    };
    Ok((k, target, sector))
}

/// `task.decay_fit` only on `kind = "evolve"` with the exact method (the method's name is
/// checked here only where it is one of the others; `super::method` checks the rest).
fn decay_fit_kind(t: &RawTask) -> Result<(), InputError> {
    let Some(name) = &t.decay_fit else {
        return Ok(());
    };
    let expected = "no `decay_fit` here: the late-time decay fit is for kind = \"evolve\" with \
                    method = \"exact\" (the master equation), whose <O>(inf) is the exact steady state";
    match (t.kind.as_str(), t.method.as_deref()) {
        ("evolve", None | Some("exact")) => Ok(()),
        ("evolve", Some(m)) if !matches!(m, "meanfield" | "cumulant" | "trajectories") => Ok(()),
        (kind, method) => Err(InputError::invalid(
            "task.decay_fit",
            format!("\"{name}\""),
            format!(
                "{expected} (this is kind = \"{kind}\"{})",
                method.map(|m| format!(", method = \"{m}\"")).unwrap_or_default()
            ),
        )),
    }
}

/// `task.decay_fit`: one of the observable columns the evolution writes.
fn decay_fit(t: &RawTask, sc: &Scenario) -> Result<Option<String>, InputError> {
    let Some(name) = &t.decay_fit else {
        return Ok(None);
    };
    let mut columns: Vec<String> = super::BASE_OBSERVABLES.iter().map(|c| c.to_string()).collect();
    columns.extend(sc.observables.columns.iter().cloned());
    if columns.contains(name) {
        Ok(Some(name.clone()))
    } else {
        Err(InputError::invalid(
            "task.decay_fit",
            format!("\"{name}\""),
            format!(
                "the name of an observable column the evolution writes: one of {} (others: add \
                 them to [observables] columns)",
                columns.join(", ")
            ),
        ))
    }
}

/// `kind = "evolve"`.
fn evolve_task(t: &RawTask, sc: &Scenario, base: &Point, f: &Present) -> Result<Task, InputError> {
    let ctx = "kind = \"evolve\"";
    refuse(&f.scan, ctx, "")?;
    refuse(&f.traj, ctx, "")?;
    refuse(&f.precision, ctx, " (the CPU integrator runs in f64)")?;
    let EvolveSpec {
        times,
        rtol,
        atol,
        max_steps,
    } = evolve_spec(t, base, ctx)?;
    Ok(Task::Evolve {
        times,
        rtol,
        atol,
        max_steps,
        decay_fit: decay_fit(t, sc)?,
    })
}

/// `kind = "trajectories"`.
fn trajectories_task(t: &RawTask, base: &Point, f: &Present) -> Result<Task, InputError> {
    let ctx = "kind = \"trajectories\"";
    refuse(&f.scan, ctx, "")?;
    refuse(&f.evolve[4..], ctx, "")?; // rtol, atol, max_steps
    let times = time_grid(t, base, ctx)?;
    let ntraj = count(base, "task.ntraj", &t.ntraj, 1000.0, 1e9)?;
    let seed = match &t.seed {
        None => 0.0,
        Some(n) => base.eval("task.seed", n)?,
    };
    if !(0.0..=9.007_199_254_740_992e15).contains(&seed) || seed.fract() != 0.0 {
        return Err(InputError::invalid(
            "task.seed",
            seed,
            "a whole number in 0..=2^53",
        ));
    }
    let save = match &t.save_trajectories {
        None => 0,
        Some(n) => {
            let v = base.eval("task.save_trajectories", n)?;
            if v < 0.0 || v.fract() != 0.0 || v > (ntraj as f64).min(10_000.0) {
                return Err(InputError::invalid(
                    "task.save_trajectories",
                    v,
                    format!("a whole number in 0..={}", ntraj.min(10_000)),
                ));
            }
            v as usize
        }
    };
    let opt_pos = |field: &str, n: &Option<Num>| -> Result<Option<f64>, InputError> {
        n.as_ref().map(|_| positive(base, field, n, 1.0)).transpose()
    };
    Ok(Task::Trajectories {
        times,
        ntraj: ntraj as u64,
        seed: seed as u64,
        save_trajectories: save,
        f64: precision(t)? == Some(Precision::F64),
        dt: opt_pos("task.dt", &t.dt)?,
        cfl: opt_pos("task.cfl", &t.cfl)?
            .map(|c| {
                if c > MAX_CFL {
                    Err(InputError::invalid(
                        "task.cfl",
                        c,
                        format!(
                            "a step in (0, {MAX_CFL}] x 1/Lambda (beyond it RK4's deterministic error \
                             exceeds the ensemble's standard error; it is unstable beyond 1.4)"
                        ),
                    ))
                } else {
                    Ok(c)
                }
            })
            .transpose()?,
        level_window: level_window(t)?,
    })
}

/// `task.level_window`: a boolean, false when absent.
fn level_window(t: &RawTask) -> Result<bool, InputError> {
    match &t.level_window {
        None => Ok(false),
        Some(toml::Value::Boolean(b)) => Ok(*b),
        Some(other) => Err(InputError::invalid(
            "task.level_window",
            other,
            "true or false (true: integrate only the levels each trajectory occupies; CPU backend \
             only)",
        )),
    }
}

/// `kind = "scan"`: the mode, then the axis.
fn scan_task(t: &RawTask, sc: &Scenario, base: &Point, f: &Present) -> Result<Task, InputError> {
    refuse(&f.traj, "kind = \"scan\"", "")?;
    let mode = match t.mode.as_deref() {
        None | Some("steady_state") => {
            let hint = " (set mode = \"evolve\" for a scan of time evolutions)";
            let ctx = "kind = \"scan\" with mode = \"steady_state\"";
            refuse(&f.evolve, ctx, hint)?;
            refuse(&f.precision, ctx, hint)?;
            ScanMode::SteadyState
        }
        Some("evolve") => scan_evolve_mode(t, base)?,
        Some("spectrum") => {
            let (k, target, sector) =
                spectrum_fields(t, base, f, "kind = \"scan\" with mode = \"spectrum\"")?;
            ScanMode::Spectrum {
                k,
                target,
                sector,
                minimize: minimize_fields(t, sc, base)?,
                fit: fit_field(t)?,
            }
        }
        Some("metastable") => {
            metastable_fields(f, "kind = \"scan\" with mode = \"metastable\"")?;
            ScanMode::Metastable
        }
        Some(other) => {
            return Err(InputError::invalid(
                "task.mode",
                format!("\"{other}\""),
                "\"steady_state\" (the default: one steady state per point), \"evolve\" \
                 (the evolution from [initial] at each point) \"spectrum\" (Liouvillian \
                 eigenvalues at each point) or \"metastable\" (the metastable decomposition at \
                 each point)",
            ));
        }
    };
    let over_n = matches!(mode, ScanMode::Spectrum { .. } | ScanMode::Metastable);
    let (variable, values) = scan_axis(t, sc, base, "kind = \"scan\"", over_n)?;
    if let ScanMode::Spectrum {
        minimize: Some(m), ..
    } = &mode
        && m.variable == variable
    {
        return Err(InputError::invalid(
            "task.minimize.variable",
            format!("\"{}\"", m.variable),
            "a variable other than the scanned one",
        ));
    }
    Ok(Task::Scan {
        variable,
        values,
        mode,
    })
}

/// `[task.minimize]` (scan of spectra only; refused elsewhere by `Present`).
fn minimize_fields(t: &RawTask, sc: &Scenario, base: &Point) -> Result<Option<Minimize>, InputError> {
    let Some(m) = &t.minimize else { return Ok(None) };
    let variable = m.variable.clone().ok_or_else(|| {
        InputError::invalid(
            "task.minimize.variable",
            "(missing)",
            "the variable or model parameter to minimise the gap over",
        )
    })?;
    if !sc.defs.contains_key(&variable) && !crate::model::PARAM_NAMES.contains(&variable.as_str())
        || variable == "N"
    {
        return Err(InputError::invalid(
            "task.minimize.variable",
            format!("\"{variable}\""),
            "a continuous variable of [variables] or a model parameter",
        ));
    }
    let bracket = m.bracket.as_ref().ok_or_else(|| {
        InputError::invalid(
            "task.minimize.bracket",
            "(missing)",
            "[lo, hi], the search interval",
        )
    })?;
    let vals = bracket
        .iter()
        .map(|n| base.eval("task.minimize.bracket", n))
        .collect::<Result<Vec<f64>, _>>()?;
    let [lo, hi] = vals[..] else {
        return Err(InputError::invalid(
            "task.minimize.bracket",
            format!("{vals:?}"),
            "two numbers [lo, hi]",
        ));
    };
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(InputError::invalid(
            "task.minimize.bracket",
            format!("[{lo}, {hi}]"),
            "finite numbers with lo < hi",
        ));
    }
    let tol = match &m.tol {
        None => 1e-3 * (hi - lo),
        Some(n) => base.eval("task.minimize.tol", n)?,
    };
    if !(tol > 1e-9 * (hi - lo) && tol < hi - lo) {
        return Err(InputError::invalid(
            "task.minimize.tol",
            tol,
            format!(
                "a tolerance in ({:e}, {}) (a fraction of the bracket)",
                1e-9 * (hi - lo),
                hi - lo
            ),
        ));
    }
    Ok(Some(Minimize {
        variable,
        lo,
        hi,
        tol,
    }))
}

/// `fit = "power" | "exponential"` of a scan of spectra.
fn fit_field(t: &RawTask) -> Result<Option<Law>, InputError> {
    match t.fit.as_deref() {
        None => Ok(None),
        Some("power") => Ok(Some(Law::Power)),
        Some("exponential") => Ok(Some(Law::Exponential)),
        Some(other) => Err(InputError::invalid(
            "task.fit",
            format!("\"{other}\""),
            "\"power\" (gap = A v^b) or \"exponential\" (gap = A e^(b v))",
        )),
    }
}

/// `mode = "evolve"` of a scan: the evolve fields and the GPU precision (f32 floors rtol).
fn scan_evolve_mode(t: &RawTask, base: &Point) -> Result<ScanMode, InputError> {
    let spec = evolve_spec(t, base, "kind = \"scan\" with mode = \"evolve\"")?;
    let precision = precision(t)?;
    if precision == Some(Precision::F32) && spec.rtol < F32_MIN_RTOL {
        return Err(InputError::invalid(
            "task.rtol",
            spec.rtol,
            format!(
                "rtol >= {F32_MIN_RTOL:e} with precision = \"f32\" (the f32 GPU \
                 kernel computes its error estimate in f32, so a tighter rtol \
                 measures rounding); use precision = \"f64\" for tighter tolerances"
            ),
        ));
    }
    Ok(ScanMode::Evolve { spec, precision })
}

/// `kind = "fixed_points"`: the optional run from [initial], the factorisations, the axis,
/// the boundary tolerance, `collective_set`.
fn fixed_points_task(t: &RawTask, sc: &Scenario, base: &Point, f: &Present) -> Result<Task, InputError> {
    let ctx = "kind = \"fixed_points\"";
    refuse(&f.traj, ctx, "")?;
    refuse(&f.precision, ctx, "")?;
    // t_start, n_times, times: only the end point of a run is kept.
    refuse(
        &f.evolve[..4]
            .iter()
            .filter(|f| f.0 != "t_end")
            .copied()
            .collect::<Vec<_>>(),
        ctx,
        " (a run from [initial] keeps only its end point: give t_end)",
    )?;
    refuse(&f.scan[..1], ctx, "")?; // mode
    let integrate = fixed_points_run(t, base, f)?;
    let factorisations = factorisations(t)?;
    let (variable, values) = scan_axis(t, sc, base, ctx, false)?;
    let span = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let boundary_tol = positive(
        base,
        "task.boundary_tol",
        &t.boundary_tol,
        1e-9 * span.max(1e-300),
    )?;
    let collective_set = t.collective_set.clone().unwrap_or_default();
    if !collective_set.is_empty() && !factorisations.contains(&Factorisation::Collective) {
        return Err(InputError::invalid(
            "task.collective_set",
            format!("{collective_set:?}"),
            "no `collective_set` unless factorisation = \"collective\" or \"both\" (it changes the model of the collective curve)",
        ));
    }
    Ok(Task::FixedPoints {
        variable,
        values,
        factorisations,
        boundary_tol,
        integrate,
        collective: None,
        collective_set,
    })
}

/// The run of a `fixed_points` task from [initial] to `t_end` (None without `t_end`, when
/// the integrator fields are refused).
fn fixed_points_run(t: &RawTask, base: &Point, f: &Present) -> Result<Option<EvolveSpec>, InputError> {
    if t.t_end.is_none() {
        refuse(
            &f.evolve[4..],
            "kind = \"fixed_points\"",
            " without t_end (they set the run from [initial])",
        )?;
        return Ok(None);
    }
    let t_end = positive(base, "task.t_end", &t.t_end, 1.0)?;
    Ok(Some(EvolveSpec {
        times: vec![0.0, t_end],
        rtol: rtol(base, &t.rtol, 1e-10)?,
        atol: atol(base, &t.atol, 1e-12)?,
        max_steps: count(base, "task.max_steps", &t.max_steps, 10_000_000.0, 1e12)?,
    }))
}

/// `task.factorisation`: individual (the default), collective or both.
fn factorisations(t: &RawTask) -> Result<Vec<Factorisation>, InputError> {
    Ok(match t.factorisation.as_deref() {
        None | Some("individual") => vec![Factorisation::Individual],
        Some("collective") => vec![Factorisation::Collective],
        Some("both") => vec![Factorisation::Individual, Factorisation::Collective],
        Some(other) => {
            return Err(InputError::invalid(
                "task.factorisation",
                format!("\"{other}\""),
                "\"individual\" (the default), \"collective\" or \"both\"",
            ));
        }
    })
}
