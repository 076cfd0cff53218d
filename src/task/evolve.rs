//! `kind = "evolve"`: the exact time evolution from `[initial]`, observables at every save.
//!
//! Collective-only models conserve J^2 and run [`master::evolve`] in the j = N/2 irrep
//! ((N+1)^2 density matrix); models with single-atom rates run [`blocks::evolve`] on the
//! permutation-invariant blocks R_j from R_{N/2} = |psi0><psi0|. Rows of `observables.csv`
//! (and `pm.csv`) are written as each save is reached. With `[output] final_state = true` the
//! state at the last save (the density matrix or blocks, or mean field's / cumulants'
//! moments) is written as `final_state.json` + `final_state.npy`
//! ([`crate::output::final_state`]), for a later run's `[initial] state = { from = "DIR" }`
//! ([`super::initial`]). CPU only: a single evolution has no
//! batch to fill a GPU with (a scan of evolutions does: [`super::scan::evolve`]).

use super::approx;
use super::checks::{self, Budget, Guard};
use super::context::Context;
use super::evolve_checkpoint::{EVOLVE_FILE, EvolveCheckpoint, Written};
use super::memory;
use super::policy::{self, Kernel};
use super::report::{Report, jnum, named};
use super::rows::{self, OwnedState, StateRef, Table};
use crate::c64;
use crate::error::{Error, OutputError, SolverError};
use crate::model::Protocol;
use crate::observe::Moments;
use crate::output::CsvWriter;
use crate::output::final_state::{self, SavedState};
use crate::scenario::{EvolveSpec, Scenario};
use crate::solver::ode::OdeOptions;
use crate::solver::{Method, blocks, master};
use crate::state::BlockState;
use serde_json::json;
use std::cell::RefCell;
use std::rc::Rc;

/// The ODE options of an evolution spec.
pub fn ode_options(spec: &EvolveSpec) -> OdeOptions {
    OdeOptions {
        rtol: spec.rtol,
        atol: spec.atol,
        max_steps: spec.max_steps,
        h0: None,
    }
}

/// Evolve `psi0` under `model`: the collective solver for collective-only models, the block
/// solver (from R_{N/2} = |psi0><psi0|) otherwise. Every saved state is checked
/// ([`checks::Guard`]) before `on_save` sees it: after a state that is not physical beyond the
/// tolerances' budget nothing more is saved and the violation is the error. Returns the
/// statistics as JSON, with the checks' margins (`checks`).
pub fn evolve_any(
    protocol: &Protocol,
    start: &OwnedState,
    times: &[f64],
    ode: &OdeOptions,
    on_save: &mut dyn FnMut(usize, f64, StateRef),
) -> Result<serde_json::Value, SolverError> {
    let mut guard = Guard::new(Budget::evolution(ode));
    let mut save = |i: usize, t: f64, state: StateRef| {
        if guard.exact(|| format!("t = {t}"), state) {
            on_save(i, t, state)
        }
    };
    let mut blocks_from = |b0: &BlockState| {
        blocks::evolve_protocol(protocol, b0, times, ode, &mut |i, t, s| {
            save(i, t, StateRef::Blocks(s))
        })
        .map(|st| serde_json::to_value(st).unwrap_or_default())
    };
    // A state with weight outside j = N/2 (a block steady state) runs on the blocks even
    // under a collective protocol: the blocks R_j < N/2 then evolve on their own.
    let st = match start {
        OwnedState::Sym(rho0) if protocol.is_collective() => {
            let storage = master::Storage::Auto;
            master::evolve_protocol(protocol, rho0, times, ode, storage, &mut |i, t, rho| {
                save(i, t, StateRef::Sym(rho))
            })
            .map(|st| serde_json::to_value(st).unwrap_or_default())
        }
        OwnedState::Sym(rho0) => blocks_from(&BlockState::from_symmetric(rho0)),
        OwnedState::Blocks(b0) => blocks_from(b0),
    };
    // A violation comes first: an integrator failure after it has the same cause.
    let summary = guard.finish()?;
    let mut st = st?;
    checks::record(&mut st, &summary);
    Ok(st)
}

/// The solver in words.
pub fn solver_name(protocol: &Protocol) -> String {
    if protocol.is_collective() {
        "master (exact collective, f64)".into()
    } else {
        "blocks (exact permutation-invariant master equation, single-atom rates, f64)".into()
    }
}

/// Where the evolution starts: the exact solver's pure state (and the fidelity reference), or
/// an approximate method's variables ([`approx::Start`]).
enum Start {
    Exact {
        rho0: OwnedState,
        reference: Option<Vec<c64>>,
    },
    Approx(approx::Start),
}

/// Run `kind = "evolve"` with the scenario's method: the exact solver, or mean field /
/// cumulants ([`approx`]) writing the same columns; with `decay_fit` (exact method), the
/// late-time decay rate of that column ([`decay_fit`](super::decay_fit)).
pub fn run(
    sc: &Scenario,
    spec: &EvolveSpec,
    decay_fit: Option<&str>,
    ctx: &mut Context,
) -> Result<Report, Error> {
    let method = sc.method;
    let solver = approx::cpu_solver(method);
    let engine = policy::resolve(ctx.backend, &Kernel::CpuOnly { solver }, ctx.gpu.clone())?;
    let points = sc.points()?;
    let p = &points[0];
    let protocol = p.protocol();
    protocol.check_span(spec.times[0], spec.times[spec.times.len() - 1])?;
    // Refusals and the start before any file is created.
    let start = start_of(sc, p)?;
    let from = super::initial::provenance(sc, p)?;
    let extras = &sc.observables.columns;
    let mut table = Table {
        x_names: vec!["t".to_string()],
        names: rows::observable_names(sc)
            .into_iter()
            .chain(protocol.names().into_iter().map(String::from))
            .collect(),
        rows: Vec::new(),
        last: None,
    };
    let columns = rows::header(&table.x_names, &table.names);
    let mut csv = CsvWriter::create(&ctx.path("observables.csv")?, &columns)?;
    let mut pm_csv = rows::pm_writer(sc, ctx.dir, "t", p.model.n)?;
    let mut write_err: Option<OutputError> = None;
    let times = &spec.times;
    let hook_err = Rc::new(RefCell::new(None));
    // The exact solver checkpoints (module doc of `evolve_checkpoint`); resumed rows first.
    let (hooks, written) = match &start {
        Start::Exact { .. } => checkpoints(ctx, times.len(), &hook_err)?,
        Start::Approx(_) => (None, Default::default()),
    };
    let progress = &mut *ctx.progress;
    progress.start(times.len() as u64, "evolve");
    // One row of observables.csv (and of pm.csv).
    let mut emit = |full: Vec<f64>, pm: Option<Vec<f64>>| {
        let mut write = || -> Result<(), OutputError> {
            csv.row(&full)?;
            if let (Some(w), Some(r)) = (pm_csv.as_mut(), pm.as_ref()) {
                w.row(r)?;
            }
            Ok(())
        };
        if let Err(e) = write() {
            write_err.get_or_insert(e);
        }
        let mut w = written.borrow_mut();
        w.rows.push(full.clone());
        w.pm_rows.extend(pm);
        table.rows.push(full);
    };
    let resumed = std::mem::take(&mut *written.borrow_mut());
    let mut pm_rows = resumed.pm_rows.into_iter();
    let n_resumed = resumed.rows.len();
    for full in resumed.rows {
        emit(full, pm_rows.next());
    }
    progress.set(n_resumed as u64);
    // The state at the last save, for `[output] final_state`.
    let mut last: Option<(f64, SavedState)> = None;
    // One save: the observable columns, and the exact state where there is one (P_m, Husimi;
    // an approximate method's moments only for the final state).
    let mut on_save = |i: usize, t: f64, row: Vec<f64>, state: Option<StateRef>, mom: Option<&Moments>| {
        if sc.final_state && i + 1 == times.len() {
            last = state
                .map(|s| s.to_saved())
                .or(mom.map(|m| SavedState::Moments(*m)))
                .map(|s| (t, s));
        }
        let mut full = vec![t];
        full.extend(row);
        full.extend(protocol.values_at(t));
        let pm = match (sc.observables.pm, state) {
            (true, Some(rho)) => Some(std::iter::once(t).chain(rho.pm()).collect()),
            _ => None,
        };
        emit(full, pm);
        if let (true, true, Some(rho)) = (i + 1 == times.len(), sc.observables.husimi.is_some(), state) {
            table.last = Some(rho.husimi_matrix());
        }
        progress.set(i as u64 + 1);
    };
    let ode = ode_options(spec);
    let st = match &start {
        Start::Exact { rho0, reference } => {
            let mut evolve = || {
                evolve_any(&protocol, rho0, times, &ode, &mut |i, t, rho| {
                    on_save(
                        i,
                        t,
                        rows::observable_row(rho, extras, reference.as_deref()),
                        Some(rho),
                        None,
                    )
                })
            };
            match hooks {
                Some(h) => crate::solver::ode::with_checkpoints(Box::new(h), evolve).0,
                None => evolve(),
            }
        }
        Start::Approx(s) => approx::evolve_saves(&protocol, s, times, &ode, extras, &mut |i, t, row, m| {
            on_save(i, t, row, None, Some(m))
        }),
    };
    progress.finish();
    let st = st.map_err(|e| checks::at_point("evolve", p, e))?;
    if let Some(e) = write_err.or(hook_err.take()) {
        return Err(e.into());
    }
    let mut results = final_results(&table, method, from);
    let mut files = vec!["observables.csv".to_string()];
    if sc.observables.pm {
        files.push("pm.csv".into());
    }
    files.extend(rows::write_figures(sc, ctx.dir, &table)?);
    files.extend(write_final_state(ctx, &protocol, method, last)?);
    let exact = matches!(start, Start::Exact { .. });
    analyses(
        sc,
        p,
        spec,
        &table,
        decay_fit.filter(|_| exact),
        ctx,
        &mut results,
        &mut files,
    )?;
    Ok(Report {
        coverage: None,
        task: "evolve",
        solver: match method {
            Method::Exact => solver_name(&protocol),
            m => approx::solver_name(m),
        },
        backend: engine.used(None),
        model: p.model,
        columns,
        results,
        stats: Some(st),
        files,
    })
}

/// Where the evolution of `p` starts with the scenario's method (refusing an exact evolution
/// beyond the memory limit first).
fn start_of(sc: &Scenario, p: &crate::scenario::Point) -> Result<Start, Error> {
    Ok(match sc.method {
        Method::Exact => {
            memory::refuse_evolution(&p.model, "time evolution")?;
            Start::Exact {
                rho0: super::initial::initial_state(sc, p)?,
                reference: sc.reference_state(p)?,
            }
        }
        m => Start::Approx(approx::start(sc, p, m)?),
    })
}

/// result.json's `results` of an evolution: the last row by name, its time, the method (an
/// approximate one), and where a chained run started (`initial_from`).
fn final_results(table: &Table, method: Method, from: Option<serde_json::Value>) -> serde_json::Value {
    let fin = table.rows.last().cloned().unwrap_or_default();
    let mut results = json!({
        "final": named(&table.names, &fin[1..]),
        "t_final": jnum(fin.first().copied().unwrap_or(f64::NAN)),
    });
    if method != Method::Exact {
        results["method"] = json!(method.name());
    }
    if let Some(from) = from {
        results["initial_from"] = from;
    }
    results
}

/// `final_state.json` / `final_state.npy` of the state at the last save (with `[output]
/// final_state = true`: `last` is then set), the model at that time in the header.
fn write_final_state(
    ctx: &Context,
    protocol: &Protocol,
    method: Method,
    last: Option<(f64, SavedState)>,
) -> Result<Vec<String>, Error> {
    let Some((t, state)) = last else {
        return Ok(Vec::new());
    };
    let method = match method {
        Method::MeanField(f) => format!("meanfield ({} factorisation)", f.name()),
        m => m.name().to_string(),
    };
    let about = final_state::Provenance {
        t,
        method: &method,
        model: protocol.at(t).values(),
    };
    crate::output::create_dir(ctx.dir)?;
    Ok(final_state::write(ctx.dir, &state, &about)?)
}

/// The analyses of an evolution's rows: `[analysis.hysteresis]` and (exact method)
/// `decay_fit`, into result.json's `results` and the file list.
#[allow(clippy::too_many_arguments)]
fn analyses(
    sc: &Scenario,
    p: &crate::scenario::Point,
    spec: &EvolveSpec,
    table: &Table,
    decay_fit: Option<&str>,
    ctx: &Context,
    results: &mut serde_json::Value,
    files: &mut Vec<String>,
) -> Result<(), Error> {
    if let Some(h) = &sc.hysteresis {
        let (entry, figure) = super::hysteresis::run(sc, h, p, table, ctx.dir)?;
        results["hysteresis"] = entry;
        files.extend(figure);
    }
    if let Some(name) = decay_fit {
        let (fit, figure) = super::decay_fit::run(sc, p, spec, table, name, ctx.dir)?;
        results["decay_fit"] = fit;
        files.extend(figure);
    }
    Ok(())
}

/// The checkpoint hooks of an exact evolution of `saves` saves, and the rows a resumed
/// checkpoint holds (read back from `checkpoint/evolve.bin`; empty for a fresh run).
fn checkpoints(
    ctx: &Context,
    saves: usize,
    error: &Rc<RefCell<Option<OutputError>>>,
) -> Result<(Option<EvolveCheckpoint>, Rc<RefCell<Written>>), Error> {
    let every = super::checkpoint::interval()?;
    // One unit of all saves: the checkpoint's identity (meta.json) without units of work.
    ctx.units("evolve", "cpu f64".into(), saves as u64, saves as u64, "saves")?;
    let path = ctx.dir.join(super::checkpoint::CHECKPOINT_DIR).join(EVOLVE_FILE);
    let (resume, written) = if path.is_file() {
        let (r, w) = super::evolve_checkpoint::read(&path)?;
        (Some(r), w)
    } else {
        (None, Written::default())
    };
    let written = Rc::new(RefCell::new(written));
    let hooks = EvolveCheckpoint::new(path, every, Rc::clone(&written), resume, Rc::clone(error));
    Ok((Some(hooks), written))
}
