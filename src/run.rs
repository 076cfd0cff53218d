//! Running a validated scenario: build the model and states, call the solver, compute the
//! observables, and write the output contract ([`crate::output`]).
//!
//! The library reports progress through [`Progress`] and never prints; `main.rs` draws it.
//!
//! # Which exact solver
//!
//! Collective-only models (every single-atom rate 0) conserve J^2 and run [`master`] in the
//! j = N/2 irrep. Models with `gamma_down`, `gamma_up` or `gamma_phi` run the
//! permutation-invariant block solver [`blocks`] for `evolve`, `steady_state` and both kinds
//! of scan (per point: a scan may mix both). The initial state is R_{N/2} = |psi><psi|; the
//! observables of a block state are sums over blocks, the fidelity and Husimi Q read R_{N/2}
//! (exact: the reference and the coherent states lie in j = N/2), purity and lambda_max are
//! those of the full 2^N state (degeneracies via ln-gamma; [`crate::observe`]). Trajectories
//! with single-atom rates change irrep at jumps, on both backends ([`trajectory`]); the GPU
//! batch of a scan of evolutions runs both collective and single-atom models (below).
//!
//! # Mean-field fixed points (`kind = "fixed_points"`)
//!
//! [`meanfield`] at each scan value (per factorisation; the collective curve may run on the
//! model changed by `task.collective_set`), rows written as each point finishes, then the
//! boundaries bisected between scan points and the branch plot. CPU only.
//!
//! # Scans of evolutions (`kind = "scan"`, `mode = "evolve"`)
//!
//! Every scan point is integrated from the scenario's initial state over the task's time
//! grid. This is the one master-equation task with a GPU path: the points are independent
//! integrations of the same size, exactly the batch dimension of
//! [`MasterBatchGpu`](crate::backend::gpu::master_batch::MasterBatchGpu), so `--backend gpu`
//! runs all of them in one batch (points with single-atom rates as one batch of blocks R_j,
//! `run_blocks`; collective-only points of the same scan, e.g. a rate scanned from 0, as a
//! second, collective batch), while a single `evolve` or a steady state (one sparse LU)
//! has no batch to fill a GPU with and stays on the CPU. `--backend cpu` runs
//! [`master::evolve`] / [`blocks::evolve`] (the batch's CPU twins) point after point, writing
//! each point's rows as it finishes; `auto` takes a real GPU when there is one and never a
//! software adapter (lavapipe is slower than the CPU twin, DESIGN.md), as for trajectories.
//! The GPU returns
//! only the central band |c - r| <= 2 of each saved matrix or block (5n instead of n^2
//! numbers: all that the moments of J, <J^2> and P_m read; the observables of a block state
//! are then summed over its blocks by the same code as the CPU path's) unless a column needs
//! the whole matrix (`purity`, `lambda_max`, `fidelity`) or a Husimi grid is asked for. A failed point stops
//! the run with an error naming it ([`SolverError::ScanPoint`]); the points before it are
//! written, on both backends alike, so the files do not depend on the backend.

use crate::backend::gpu::master_batch::{
    BatchOutput, MasterBatchError, MasterBatchGpu, MasterBatchOptions, Saves, block_state_from_bands,
};
use crate::backend::gpu::trajectory::run_gpu;
use crate::backend::gpu::{GpuContext, GpuOptions};
use crate::backend::{self, BackendChoice, BackendUsed};
use crate::c64;
use crate::error::{Error, InputError, OutputError, SolverError};
use crate::observe;
use crate::output::{self, CsvWriter, plot};
use crate::scenario::{BASE_OBSERVABLES, EvolveSpec, F32_MIN_RTOL, Point, ScanMode, Scenario, State, Task};
use crate::solver::blocks;
use crate::solver::master;
use crate::solver::meanfield;
use crate::solver::ode::OdeOptions;
use crate::solver::trajectory::{self, Precision, TrajectoryOptions};
use crate::state::{BlockState, DensityMatrix, pure};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The long-format file of a scan of evolutions: `<variable>, t, <observables>` per point and
/// save time.
pub const SCAN_EVOLUTION_CSV: &str = "scan_evolution.csv";

/// Observable columns that need more of rho than its central band |c - r| <= 2.
const FULL_MATRIX_COLUMNS: [&str; 3] = ["purity", "lambda_max", "fidelity"];

/// Progress reporting hook (the CLI draws an indicatif bar).
pub trait Progress {
    fn start(&mut self, total: u64, what: &str);
    fn set(&mut self, done: u64);
    fn finish(&mut self);
}

/// A [`Progress`] that does nothing (tests, library use).
pub struct NoProgress;
impl Progress for NoProgress {
    fn start(&mut self, _: u64, _: &str) {}
    fn set(&mut self, _: u64) {}
    fn finish(&mut self) {}
}

/// Options from the command line.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub out_dir: PathBuf,
    pub backend: BackendChoice,
    /// The `--set` overrides as given (recorded in result.json).
    pub overrides: Vec<String>,
}

/// What a run produced (also written to result.json).
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub out_dir: PathBuf,
    pub backend: BackendUsed,
    pub wall_s: f64,
    pub files: Vec<String>,
    pub result: serde_json::Value,
}

/// Memory ceiling for a single request, MiB (override with `DICKE_MEMORY_LIMIT_MIB`).
pub fn memory_limit_mib() -> u64 {
    std::env::var("DICKE_MEMORY_LIMIT_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16 * 1024)
}

/// Build the pure state `spec` for the model at `point`.
pub fn pure_state(point: &Point, field: &str, state: State) -> Result<Vec<c64>, InputError> {
    let n = point.model.n;
    match state {
        State::Dicke { m } => pure::dicke(n, m).map_err(|_| {
            InputError::invalid(
                format!("{field}.m"),
                m,
                format!(
                    "a value in -N/2..N/2 = -{}..{} in integer steps",
                    n as f64 / 2.0,
                    n as f64 / 2.0
                ),
            )
        }),
        State::Coherent { theta, phi } => Ok(pure::coherent(n, theta, phi)),
        State::Crss => {
            if point.model.gamma_coll <= 0.0 {
                return Err(InputError::invalid(
                    format!("{field}.state"),
                    "\"crss\"",
                    "a model with Gamma > 0 (the CRSS amplitude is b = -i Omega/Gamma)",
                ));
            }
            Ok(pure::crss(n, point.model.drive, point.model.gamma_coll))
        }
    }
}

/// A state the master-equation tasks produce: the (N+1) x (N+1) density matrix of the
/// symmetric subspace (collective-only models) or the blocks R_j of a permutation-invariant
/// state (models with single-atom rates, [`blocks`]).
#[derive(Clone, Copy)]
enum StateRef<'a> {
    Sym(&'a DensityMatrix),
    Blocks(&'a BlockState),
}

/// An owned [`StateRef`].
enum OwnedState {
    Sym(DensityMatrix),
    Blocks(BlockState),
}

impl OwnedState {
    fn as_ref(&self) -> StateRef<'_> {
        match self {
            OwnedState::Sym(r) => StateRef::Sym(r),
            OwnedState::Blocks(s) => StateRef::Blocks(s),
        }
    }
}

impl StateRef<'_> {
    fn pm(&self) -> Vec<f64> {
        match self {
            StateRef::Sym(r) => observe::pm(r),
            StateRef::Blocks(s) => observe::pm_blocks(s),
        }
    }

    /// The matrix a Husimi grid reads: rho itself, or the j = N/2 block R_{N/2}, which is exact
    /// for the full state because every spin coherent state lies in j = N/2
    /// ([`crate::observe`] module doc).
    fn husimi_matrix(&self) -> DensityMatrix {
        match self {
            StateRef::Sym(r) => (*r).clone(),
            StateRef::Blocks(s) => s.block_matrix(0),
        }
    }
}

/// The observable columns (base then extras) for a state.
fn observable_row(state: StateRef, extras: &[String], reference: Option<&[c64]>) -> Vec<f64> {
    let (mom, j2) = match state {
        StateRef::Sym(rho) => (observe::moments(rho), observe::j2(rho)),
        StateRef::Blocks(s) => (observe::moments_blocks(s), observe::j2_blocks(s)),
    };
    moment_row(&mom, j2, extras, Some(state), reference)
}

/// The observable columns from moments; the columns that need the density matrix itself
/// (`purity`, `lambda_max`, `fidelity`) are NaN without one (scenario validation refuses
/// them for tasks that have none).
fn moment_row(
    mom: &observe::Moments,
    j2: f64,
    extras: &[String],
    rho: Option<StateRef>,
    reference: Option<&[c64]>,
) -> Vec<f64> {
    let xi2 = mom.xi2();
    let cov = mom.covariance();
    let mut row = vec![mom.mean[0], mom.mean[1], mom.mean[2], xi2, j2];
    for c in extras {
        row.push(match c.as_str() {
            "JxJx" => mom.second[0][0],
            "JyJy" => mom.second[1][1],
            "JzJz" => mom.second[2][2],
            "JxJy" => mom.second[0][1],
            "JxJz" => mom.second[0][2],
            "JyJz" => mom.second[1][2],
            "var_Jx" => cov[0][0],
            "var_Jy" => cov[1][1],
            "var_Jz" => cov[2][2],
            "xi2_dB" => 10.0 * xi2.log10(),
            "N_eff" => observe::n_eff(j2),
            "Jp_abs" => (mom.mean[0] * mom.mean[0] + mom.mean[1] * mom.mean[1]).sqrt(),
            // Of the full 2^N-dimensional state: for blocks the degeneracies enter.
            "purity" => match rho {
                Some(StateRef::Sym(r)) => r.data.iter().map(|z| z.norm_sqr()).sum(),
                Some(StateRef::Blocks(s)) => observe::purity_blocks(s),
                None => f64::NAN,
            },
            "lambda_max" => match rho {
                Some(StateRef::Sym(r)) => observe::largest_eigenvalue(r),
                Some(StateRef::Blocks(s)) => observe::largest_eigenvalue_blocks(s),
                None => f64::NAN,
            },
            "fidelity" => match (rho, reference) {
                (Some(StateRef::Sym(r)), Some(psi)) => observe::fidelity_pure(r, psi),
                (Some(StateRef::Blocks(s)), Some(psi)) => observe::fidelity_blocks(s, psi),
                _ => f64::NAN,
            },
            _ => f64::NAN, // unreachable: names are validated in scenario::validate
        });
    }
    row
}

fn refuse_if_too_large(n: usize, copies: f64, what: &str) -> Result<(), SolverError> {
    let dim = (n + 1) as f64;
    refuse_bytes(
        16.0 * dim * dim * copies,
        format!("{what} at N = {n} ((N+1)^2 complex elements x {copies})"),
    )
}

fn refuse_bytes(bytes: f64, what: String) -> Result<(), SolverError> {
    let needed = (bytes / (1024.0 * 1024.0)).ceil() as u64;
    let limit = memory_limit_mib();
    if needed > limit {
        return Err(SolverError::TooLarge {
            what,
            needed_mib: needed,
            limit_mib: limit,
        });
    }
    Ok(())
}

/// [`refuse_if_too_large`] for the time evolution of a model: the (N+1)^2 matrix of a
/// collective model, the blocks (sum_j (2j+1)^2 elements, 11 work vectors) otherwise.
fn refuse_evolution_if_too_large(model: &crate::model::Model, what: &str) -> Result<(), SolverError> {
    if model.is_collective() {
        refuse_if_too_large(model.n, 12.0, what)
    } else {
        let len = crate::state::blocks::block_elements(model.n) as f64;
        refuse_bytes(
            16.0 * 11.0 * len,
            format!(
                "{what} at N = {} (blocks R_j: {len} complex elements x 11)",
                model.n
            ),
        )
    }
}

/// Evolve `psi0` under `model`: the collective solver for collective-only models, the block
/// solver (from R_{N/2} = |psi0><psi0|) otherwise. Returns the statistics as JSON.
fn evolve_any(
    model: &crate::model::Model,
    psi0: &[c64],
    times: &[f64],
    ode: &OdeOptions,
    on_save: &mut dyn FnMut(usize, f64, StateRef),
) -> Result<serde_json::Value, SolverError> {
    let rho0 = DensityMatrix::from_pure(psi0);
    let st = if model.is_collective() {
        master::evolve(model, &rho0, times, ode, &mut |i, t, rho| {
            on_save(i, t, StateRef::Sym(rho))
        })?
    } else {
        let b0 = BlockState::from_symmetric(&rho0);
        drop(rho0);
        blocks::evolve(model, &b0, times, ode, &mut |i, t, s| {
            on_save(i, t, StateRef::Blocks(s))
        })?
    };
    Ok(serde_json::to_value(st).unwrap_or_default())
}

/// Run a scenario and write its outputs into `opts.out_dir`.
pub fn execute(sc: &Scenario, opts: &RunOptions, progress: &mut dyn Progress) -> Result<RunSummary, Error> {
    execute_on(sc, opts, None, progress)
}

/// [`execute`] with a GPU context the caller already holds (tests share one per test binary;
/// a program running many scenarios creates the device once). It is used wherever `execute`
/// would create one: for `--backend gpu`, and for `--backend auto` only if it is a real GPU
/// (auto never runs on a software adapter).
pub fn execute_on(
    sc: &Scenario,
    opts: &RunOptions,
    gpu: Option<Arc<GpuContext>>,
    progress: &mut dyn Progress,
) -> Result<RunSummary, Error> {
    if let Task::Sweep(spec) = &sc.task {
        return crate::sweep::execute(sc, spec, opts, gpu, progress);
    }
    let t_start = Instant::now();
    if let Task::FixedPoints { .. } = sc.task {
        return fixed_points_task(sc, opts, progress, t_start);
    }
    let points = sc.points()?;
    // Single-atom rates: the block solver runs the master-equation tasks, irrep-changing
    // trajectories the trajectories task.
    let mut backend = match sc.task {
        // Resolved where they run: both have a GPU path.
        Task::Trajectories { .. }
        | Task::Scan {
            mode: ScanMode::Evolve { .. },
            ..
        } => None,
        _ => Some(backend::cpu_only(opts.backend, "master")?),
    };
    let dir = &opts.out_dir;
    output::create_dir(dir)?;
    let extras = &sc.observables.columns;
    let mut names: Vec<String> = BASE_OBSERVABLES.iter().map(|s| s.to_string()).collect();
    names.extend(extras.iter().cloned());
    let mut files = vec!["observables.csv".to_string(), "result.json".to_string()];

    let (x_names, xs, rows, last_rho, scalars, stats) = match &sc.task {
        Task::Sweep(_) => {
            return Err(SolverError::Unsupported {
                solver: "run",
                message: "kind = \"sweep\" runs in crate::sweep".into(),
            }
            .into());
        }
        Task::Trajectories {
            times,
            ntraj,
            seed,
            save_trajectories,
            f64,
            dt,
            cfl,
        } => {
            let p = &points[0];
            let spec = sc.initial.as_ref().ok_or_else(|| {
                InputError::invalid(
                    "initial",
                    "(missing)",
                    "an [initial] table for kind = \"trajectories\"",
                )
            })?;
            let psi0 = pure_state(p, "initial", p.state("initial", spec)?)?;
            let topts = TrajectoryOptions {
                ntraj: *ntraj,
                seed: *seed,
                precision: if *f64 { Precision::F64 } else { Precision::F32 },
                dt: *dt,
                cfl: cfl.unwrap_or(trajectory::DEFAULT_CFL),
                save_trajectories: *save_trajectories,
                pm: sc.observables.pm,
                ..TrajectoryOptions::default()
            };
            progress.start(1, "trajectories");
            let (ens, used) = run_trajectories(opts.backend, gpu.clone(), &p.model, &psi0, times, &topts)?;
            progress.finish();
            backend = Some(used);
            let x_names = vec!["t".to_string()];
            let mut header = header(&x_names, &names);
            let se_names: Vec<String> = trajectory::OBS_NAMES.iter().map(|n| format!("{n}_se")).collect();
            header.push("jumps".into());
            header.extend(se_names.iter().cloned());
            let mut csv = CsvWriter::create(&dir.join("observables.csv"), &header)?;
            let mut rows = Vec::new();
            for (i, t) in times.iter().enumerate() {
                let mom = ens.moments(i, p.model.n);
                let mut full = vec![*t];
                // <J^2> = <j(j+1)> over the trajectories' irreps (j = N/2 throughout for a
                // collective model; single-atom processes move it).
                let j2 = ens.mean_of("J2").map_or(f64::NAN, |v| v[i]);
                full.extend(moment_row(&mom, j2, extras, None, None));
                full.push(ens.mean_of("jumps").map_or(f64::NAN, |v| v[i]));
                full.extend(ens.se.iter().map(|se| se[i]));
                csv.row(&full)?;
                rows.push(full);
            }
            if !ens.pm_mean.is_empty() {
                // P_m over the ensemble (summed over irreps), then its standard errors.
                let n = p.model.n;
                let j = n as f64 / 2.0;
                let mut h = vec!["t".to_string()];
                h.extend((0..=n).map(|k| format!("P({})", k as f64 - j)));
                h.extend((0..=n).map(|k| format!("P({})_se", k as f64 - j)));
                let mut w = CsvWriter::create(&dir.join("pm.csv"), &h)?;
                for (i, t) in times.iter().enumerate() {
                    let mut r = vec![*t];
                    r.extend(&ens.pm_mean[i]);
                    r.extend(&ens.pm_se[i]);
                    w.row(&r)?;
                }
            }
            if !ens.trajectories.is_empty() {
                // Per single trajectory, besides the recorded moments: its own squeezing xi^2
                // and effective atom number N_eff = 2 sqrt(1/4 + j(j+1)) - 1 = 2j (seed 002
                // Fig. 2c plots both along single trajectories).
                let kj = trajectory::OBS_NAMES.iter().position(|n| *n == "J2").unwrap_or(0);
                let kz = trajectory::OBS_NAMES.iter().position(|n| *n == "Jz").unwrap_or(0);
                let derived: Vec<Vec<[f64; 2]>> = ens
                    .trajectories
                    .iter()
                    .map(|tr| {
                        tr.values
                            .iter()
                            .map(|v| [trajectory::moments_of(v, p.model.n).xi2(), observe::n_eff(v[kj])])
                            .collect()
                    })
                    .collect();
                let mut h = vec!["traj".to_string(), "t".to_string()];
                h.extend(trajectory::OBS_NAMES.iter().map(|s| s.to_string()));
                h.extend(["xi2".to_string(), "N_eff".to_string()]);
                let mut w = CsvWriter::create(&dir.join("trajectories.csv"), &h)?;
                for (tr, d) in ens.trajectories.iter().zip(&derived) {
                    for (i, v) in tr.values.iter().enumerate() {
                        let mut r = vec![tr.index as f64, times[i]];
                        r.extend(v.iter());
                        r.extend(d[i]);
                        w.row(&r)?;
                    }
                }
                files.push("trajectories.csv".into());
                if sc.plot {
                    // The single trajectories themselves (seed 000 Fig. 4, seed 002 Fig. 2c),
                    // one line per trajectory.
                    let names: Vec<String> = ens
                        .trajectories
                        .iter()
                        .map(|tr| format!("#{}", tr.index))
                        .collect();
                    let jz: Vec<Vec<f64>> = ens
                        .trajectories
                        .iter()
                        .map(|tr| tr.values.iter().map(|v| v[kz]).collect())
                        .collect();
                    let pick = |k: usize| -> Vec<Vec<f64>> {
                        derived.iter().map(|d| d.iter().map(|x| x[k]).collect()).collect()
                    };
                    let (xi, ne) = (pick(0), pick(1));
                    fn mk<'a>(v: &'a [Vec<f64>], names: &'a [String]) -> Vec<plot::Series<'a>> {
                        v.iter()
                            .zip(names)
                            .map(|(y, name)| plot::Series { name, y })
                            .collect()
                    }
                    plot::line_plot(
                        &dir.join("trajectories.png"),
                        &format!("single trajectories  {}", sc.title),
                        "t",
                        times,
                        &[
                            ("<Jz>", mk(&jz, &names)),
                            ("xi^2", mk(&xi, &names)),
                            ("N_eff", mk(&ne, &names)),
                        ],
                    )?;
                    files.push("trajectories.png".into());
                }
            }
            let fin = rows.last().cloned().unwrap_or_default();
            let scalars = json!({
                "final": header[1..].iter().zip(&fin[1..]).map(|(k, v)| (k.clone(), jnum(*v))).collect::<serde_json::Map<_, _>>(),
                "t_final": fin.first().copied().unwrap_or(f64::NAN),
                "ntraj": ens.ntraj,
                "seed": ens.seed,
            });
            let stats = json!({
                "precision": ens.precision,
                "lanes": ens.lanes,
                "rate_bound": ens.rate_bound,
                "steps_per_save": ens.steps,
                "step_sizes": ens.step_sizes,
                "ensemble_wall_s": ens.wall_s,
                "trajectories_per_s": ens.ntraj as f64 / ens.wall_s,
            });
            let xs: Vec<f64> = times.clone();
            (x_names, xs, rows, None, scalars, stats)
        }
        Task::Evolve {
            times,
            rtol,
            atol,
            max_steps,
        } => {
            let p = &points[0];
            refuse_evolution_if_too_large(&p.model, "time evolution")?;
            let spec = sc.initial.as_ref().ok_or_else(|| {
                InputError::invalid("initial", "(missing)", "an [initial] table for kind = \"evolve\"")
            })?;
            let psi0 = pure_state(p, "initial", p.state("initial", spec)?)?;
            let reference = reference_state(sc, p)?;
            let x_names = vec!["t".to_string()];
            let mut csv = CsvWriter::create(&dir.join("observables.csv"), &header(&x_names, &names))?;
            let mut pm_csv = pm_writer(sc, dir, "t", p.model.n)?;
            let ode = OdeOptions {
                rtol: *rtol,
                atol: *atol,
                max_steps: *max_steps,
                h0: None,
            };
            let mut rows = Vec::new();
            let mut last = None;
            let mut write_err = None;
            progress.start(times.len() as u64, "evolve");
            let st = evolve_any(&p.model, &psi0, times, &ode, &mut |i, t, rho| {
                let row = observable_row(rho, extras, reference.as_deref());
                let mut full = vec![t];
                full.extend(&row);
                if let Err(e) = csv.row(&full) {
                    write_err.get_or_insert(e);
                }
                if let Some(w) = pm_csv.as_mut() {
                    let mut r = vec![t];
                    r.extend(rho.pm());
                    if let Err(e) = w.row(&r) {
                        write_err.get_or_insert(e);
                    }
                }
                rows.push(full);
                if i + 1 == times.len() && sc.observables.husimi.is_some() {
                    last = Some(rho.husimi_matrix());
                }
                progress.set(i as u64 + 1);
            });
            progress.finish();
            let st = st?;
            if let Some(e) = write_err {
                return Err(e.into());
            }
            let fin = rows.last().cloned().unwrap_or_default();
            let scalars = json!({
                "final": names.iter().zip(&fin[1..]).map(|(k, v)| (k.clone(), jnum(*v))).collect::<serde_json::Map<_, _>>(),
                "t_final": fin.first().copied().unwrap_or(f64::NAN),
            });
            let xs: Vec<f64> = rows.iter().map(|r| r[0]).collect();
            (x_names, xs, rows, last, scalars, st)
        }
        Task::Scan {
            variable,
            mode: ScanMode::Evolve { spec, precision },
            ..
        } => {
            let job = ScanEvolve {
                sc,
                points: &points,
                variable,
                spec,
                precision: *precision,
                dir,
                names: &names,
            };
            let (out, used) = scan_evolve(&job, opts.backend, gpu, progress)?;
            backend = Some(used);
            files.push(SCAN_EVOLUTION_CSV.into());
            out
        }
        Task::FixedPoints { .. } => return fixed_points_task(sc, opts, progress, t_start),
        Task::SteadyState | Task::Scan { .. } => {
            let (x_names, pinned): (Vec<String>, Option<&str>) = match &sc.task {
                Task::Scan { variable, .. } => (scan_x_names(sc, variable)?, Some(variable.as_str())),
                _ => (vec![], None),
            };
            let mut csv = CsvWriter::create(&dir.join("observables.csv"), &header(&x_names, &names))?;
            let mut pm_csv = match pinned {
                Some(v) => pm_writer(sc, dir, v, points[0].model.n)?,
                None => pm_writer(sc, dir, "point", points[0].model.n)?,
            };
            let mut rows = Vec::new();
            let mut stats = Vec::new();
            let mut last = None;
            progress.start(
                points.len() as u64,
                if pinned.is_some() { "scan" } else { "steady state" },
            );
            for (i, p) in points.iter().enumerate() {
                let reference = reference_state(sc, p)?;
                // Collective-only models: the j = N/2 solver; single-atom rates: the blocks.
                let (owned, st) = if p.model.is_collective() {
                    let (rho, st) = master::steady_state(&p.model)?;
                    (OwnedState::Sym(rho), serde_json::to_value(st).unwrap_or_default())
                } else {
                    refuse_bytes(
                        blocks::steady_state_memory_estimate(&p.model),
                        format!(
                            "block steady state at N = {} (sparse LU, estimated fill included)",
                            p.model.n
                        ),
                    )?;
                    let (s, st) = blocks::steady_state(&p.model)?;
                    (
                        OwnedState::Blocks(s),
                        serde_json::to_value(st).unwrap_or_default(),
                    )
                };
                let state = owned.as_ref();
                let obs = observable_row(state, extras, reference.as_deref());
                let xvals: Vec<f64> = x_names
                    .iter()
                    .map(|n| p.values.get(n).copied().unwrap_or(f64::NAN))
                    .collect();
                let mut full = xvals.clone();
                full.extend(&obs);
                csv.row(&full)?;
                if let Some(w) = pm_csv.as_mut() {
                    let mut r = if xvals.is_empty() {
                        vec![i as f64]
                    } else {
                        vec![xvals[0]]
                    };
                    r.extend(state.pm());
                    w.row(&r)?;
                }
                rows.push(full);
                stats.push(st);
                if sc.observables.husimi.is_some() {
                    last = Some(state.husimi_matrix());
                }
                progress.set(i as u64 + 1);
            }
            progress.finish();
            let nx = x_names.len();
            let scalars = if pinned.is_some() {
                scan_scalars(&x_names, &rows)
            } else {
                json!({
                    "steady_state": names.iter().zip(&rows[0][nx..]).map(|(k, v)| (k.clone(), jnum(*v))).collect::<serde_json::Map<_, _>>(),
                })
            };
            let xs: Vec<f64> = if nx > 0 {
                rows.iter().map(|r| r[0]).collect()
            } else {
                vec![0.0]
            };
            let stats = if stats.len() == 1 {
                stats.pop().unwrap_or_default()
            } else {
                serde_json::Value::Array(stats)
            };
            (x_names, xs, rows, last, scalars, stats)
        }
    };
    if sc.observables.pm {
        files.push("pm.csv".into());
    }

    // Husimi Q of the final / steady state.
    if let (Some((nt, np)), Some(rho)) = (sc.observables.husimi, &last_rho) {
        let thetas: Vec<f64> = (0..nt)
            .map(|i| std::f64::consts::PI * (i as f64 + 0.5) / nt as f64)
            .collect();
        let phis: Vec<f64> = (0..np)
            .map(|i| -std::f64::consts::PI + 2.0 * std::f64::consts::PI * (i as f64 + 0.5) / np as f64)
            .collect();
        let q = observe::husimi_q(rho, &thetas, &phis);
        let mut w = CsvWriter::create(
            &dir.join("husimi.csv"),
            &["theta".into(), "phi".into(), "Q".into()],
        )?;
        for (a, th) in thetas.iter().enumerate() {
            for (b, ph) in phis.iter().enumerate() {
                w.row(&[*th, *ph, q[a * np + b]])?;
            }
        }
        files.push("husimi.csv".into());
        if sc.plot {
            plot::heatmap(
                &dir.join("husimi.png"),
                &format!("Husimi Q  {}", sc.title),
                "phi",
                "theta",
                &phis,
                &thetas,
                &q,
            )?;
            files.push("husimi.png".into());
        }
    }

    if sc.plot {
        draw_plot(&dir.join("plot.png"), sc, &x_names, &xs, &names, &rows)?;
        files.push("plot.png".into());
    }

    let backend = backend.ok_or_else(|| SolverError::Unsupported {
        solver: "run",
        message: "no backend was selected".into(),
    })?;
    let wall_s = t_start.elapsed().as_secs_f64();
    let task_name = match sc.task {
        Task::Evolve { .. } => "evolve",
        Task::Trajectories { .. } => "trajectories",
        Task::SteadyState => "steady_state",
        Task::Scan { .. } => "scan",
        Task::FixedPoints { .. } => "fixed_points",
        Task::Sweep(_) => "sweep",
    };
    let with_blocks = points.iter().any(|p| !p.model.is_collective());
    let solver = match sc.task {
        Task::Trajectories { .. } => {
            "trajectories (Monte-Carlo wave function; irrep-changing with single-atom rates)".to_string()
        }
        Task::Scan {
            mode: ScanMode::Evolve { .. },
            ..
        } => format!(
            "{} (time evolution per scan point, {} on {})",
            if with_blocks {
                "blocks (exact permutation-invariant, single-atom rates)"
            } else {
                "master (exact collective)"
            },
            backend.precision,
            backend.name
        ),
        _ if with_blocks => {
            "blocks (exact permutation-invariant master equation, single-atom rates, f64)".to_string()
        }
        _ => "master (exact collective, f64)".to_string(),
    };
    let result = json!({
        "dicke_version": crate::VERSION,
        "title": sc.title,
        "task": task_name,
        "solver": solver,
        "backend": backend,
        "wall_time_s": wall_s,
        "overrides": opts.overrides,
        "scenario": toml_to_json(&sc.as_run),
        "model": points[0].model.values().into_iter().map(|(k, v)| (k.to_string(), jnum(v))).collect::<serde_json::Map<_, _>>(),
        "columns": header(&x_names, &names),
        "results": scalars,
        "stats": stats,
        "files": files,
    });
    output::write_json(&dir.join("result.json"), &result)?;
    Ok(RunSummary {
        out_dir: dir.clone(),
        backend,
        wall_s,
        files,
        result,
    })
}

fn reference_state(sc: &Scenario, p: &Point) -> Result<Option<Vec<c64>>, InputError> {
    sc.observables
        .fidelity
        .as_ref()
        .map(|spec| pure_state(p, "observables.fidelity", p.state("observables.fidelity", spec)?))
        .transpose()
}

fn pm_writer(sc: &Scenario, dir: &Path, x: &str, n: usize) -> Result<Option<CsvWriter>, Error> {
    if !sc.observables.pm {
        return Ok(None);
    }
    let j = n as f64 / 2.0;
    let mut h = vec![x.to_string()];
    h.extend((0..=n).map(|k| format!("P({})", k as f64 - j)));
    Ok(Some(CsvWriter::create(&dir.join("pm.csv"), &h)?))
}

fn header(x_names: &[String], names: &[String]) -> Vec<String> {
    x_names.iter().chain(names).cloned().collect()
}

/// JSON number, or null for NaN/inf (JSON has no NaN).
fn jnum(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

pub(crate) fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => json!(s),
        toml::Value::Integer(i) => json!(i),
        toml::Value::Float(f) => jnum(*f),
        toml::Value::Boolean(b) => json!(b),
        toml::Value::Datetime(d) => json!(d.to_string()),
        toml::Value::Array(a) => serde_json::Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => {
            serde_json::Value::Object(t.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect())
        }
    }
}

fn draw_plot(
    path: &Path,
    sc: &Scenario,
    x_names: &[String],
    xs: &[f64],
    names: &[String],
    rows: &[Vec<f64>],
) -> Result<(), Error> {
    let nx = x_names.len();
    let col = |name: &str| -> Vec<f64> {
        let i = names
            .iter()
            .position(|n| n == name)
            .map(|i| i + nx)
            .unwrap_or(usize::MAX);
        rows.iter()
            .map(|r| r.get(i).copied().unwrap_or(f64::NAN))
            .collect()
    };
    let (jx, jy, jz, xi2) = (col("Jx"), col("Jy"), col("Jz"), col("xi2"));
    type Panel = (String, Vec<(String, Vec<f64>)>);
    let mut panels: Vec<Panel> = vec![
        (
            "<J>".into(),
            vec![("Jx".into(), jx), ("Jy".into(), jy), ("Jz".into(), jz)],
        ),
        ("xi^2".into(), vec![("xi2".into(), xi2)]),
    ];
    for e in names.iter().skip(BASE_OBSERVABLES.len()).take(4) {
        panels.push((e.clone(), vec![(e.clone(), col(e))]));
    }
    let series: Vec<(&str, Vec<plot::Series>)> = panels
        .iter()
        .map(|(label, s)| {
            (
                label.as_str(),
                s.iter()
                    .map(|(n, y)| plot::Series { name: n, y })
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let x_label = x_names.first().map(String::as_str).unwrap_or("point");
    let title = if sc.title.is_empty() {
        "dicke"
    } else {
        sc.title.as_str()
    };
    plot::line_plot(path, title, x_label, xs, &series)?;
    Ok(())
}

/// Run a trajectory ensemble on the backend the user asked for: `cpu`; `gpu` (any adapter,
/// lavapipe included, an error if none); `auto` (a real GPU when one exists, else the CPU with
/// the reason recorded).
fn run_trajectories(
    choice: BackendChoice,
    provided: Option<Arc<GpuContext>>,
    model: &crate::model::Model,
    psi0: &[c64],
    times: &[f64],
    topts: &TrajectoryOptions,
) -> Result<(trajectory::EnsembleResult, BackendUsed), Error> {
    let cpu = |note: String| -> Result<(trajectory::EnsembleResult, BackendUsed), Error> {
        let ens = trajectory::run_cpu(model, psi0, times, topts)?;
        let used = BackendUsed {
            name: "cpu",
            device: ens.device.clone(),
            precision: ens.precision.name(),
            note,
        };
        Ok((ens, used))
    };
    let gpu =
        |ctx: Arc<GpuContext>, note: String| -> Result<(trajectory::EnsembleResult, BackendUsed), Error> {
            let engine = crate::backend::gpu::trajectory::TrajectoryGpu::new(ctx)?;
            let ens = run_gpu(&engine, model, psi0, times, topts).map_err(|e| match e {
                trajectory::TrajectoryError::Solver(s) => Error::from(s),
                trajectory::TrajectoryError::Gpu(g) => Error::from(g),
            })?;
            let info = engine.context().info();
            let used = BackendUsed {
                name: "gpu",
                device: format!("{} ({}, {})", info.name, info.device_type, info.backend),
                precision: ens.precision.name(),
                note,
            };
            Ok((ens, used))
        };
    match choice {
        BackendChoice::Cpu => cpu("requested".into()),
        BackendChoice::Gpu => gpu(explicit_context(provided)?, "requested".into()),
        // P_m is accumulated on the CPU only (run_gpu refuses it with a message).
        BackendChoice::Auto if topts.pm => cpu(
            "auto: P_m from trajectories (observables.pm) is accumulated on the CPU only in this version"
                .into(),
        ),
        BackendChoice::Auto => match auto_context(provided) {
            Ok(ctx) => gpu(ctx, "auto: real GPU adapter found".into()),
            Err(why) => cpu(format!("auto: no real GPU adapter, running on the CPU ({why})")),
        },
    }
}

/// `--backend gpu`: the caller's context, else a new one that accepts any adapter (lavapipe
/// included: asked for explicitly).
fn explicit_context(provided: Option<Arc<GpuContext>>) -> Result<Arc<GpuContext>, Error> {
    match provided {
        Some(ctx) => Ok(ctx),
        None => Ok(Arc::new(GpuContext::new(&GpuOptions::explicit())?)),
    }
}

/// `--backend auto`: a real GPU (the caller's context if it is one), else why not.
fn auto_context(provided: Option<Arc<GpuContext>>) -> Result<Arc<GpuContext>, String> {
    match provided {
        Some(ctx) if !ctx.info().software => Ok(ctx),
        Some(ctx) => Err(format!(
            "adapter `{}` is a software rasteriser, used only with --backend gpu",
            ctx.info().name
        )),
        None => GpuContext::new(&GpuOptions::auto())
            .map(Arc::new)
            .map_err(|e| e.to_string()),
    }
}

/// The x columns of a scan: the scanned variable, then every model parameter it moves.
fn scan_x_names(sc: &Scenario, variable: &str) -> Result<Vec<String>, InputError> {
    let mut v = vec![variable.to_string()];
    v.extend(
        sc.varying_parameters()?
            .into_iter()
            .filter(|n| *n != variable)
            .map(str::to_string),
    );
    Ok(v)
}

/// result.json scalars of a scan: the best squeezing over the points and where.
fn scan_scalars(x_names: &[String], rows: &[Vec<f64>]) -> serde_json::Value {
    let xi = x_names.len() + 3; // xi2 column
    let best = rows
        .iter()
        .filter(|r| r[xi].is_finite())
        .min_by(|a, b| a[xi].total_cmp(&b[xi]));
    json!({
        "points": rows.len(),
        "min_xi2": best.map(|r| jnum(r[xi])),
        "min_xi2_dB": best.map(|r| jnum(10.0 * r[xi].log10())),
        "min_xi2_at": best.map(|r| x_names.iter().zip(r).map(|(k, v)| (k.clone(), jnum(*v))).collect::<serde_json::Map<_, _>>()),
    })
}

/// What the match arms of [`execute_on`] produce: x column names, x values (for the plot),
/// rows, the final / steady state (for a Husimi grid), result scalars, solver statistics.
type TaskOutput = (
    Vec<String>,
    Vec<f64>,
    Vec<Vec<f64>>,
    Option<DensityMatrix>,
    serde_json::Value,
    serde_json::Value,
);

/// A scan of evolutions as [`execute_on`] hands it over.
struct ScanEvolve<'a> {
    sc: &'a Scenario,
    points: &'a [Point],
    variable: &'a str,
    spec: &'a EvolveSpec,
    precision: Option<Precision>,
    dir: &'a Path,
    /// Observable columns (base then extras).
    names: &'a [String],
}

impl ScanEvolve<'_> {
    fn initial_state(&self, p: &Point) -> Result<Vec<c64>, InputError> {
        let spec = self.sc.initial.as_ref().ok_or_else(|| {
            InputError::invalid(
                "initial",
                "(missing)",
                "an [initial] table for kind = \"scan\" with mode = \"evolve\"",
            )
        })?;
        pure_state(p, "initial", p.state("initial", spec)?)
    }

    fn value(&self, p: &Point) -> f64 {
        p.values.get(self.variable).copied().unwrap_or(f64::NAN)
    }

    /// The error of point `index`, named by its index and value.
    fn point_error(&self, index: usize, cause: SolverError, others: String) -> Error {
        SolverError::ScanPoint {
            index,
            variable: self.variable.to_string(),
            value: self.value(&self.points[index]),
            cause: Box::new(cause),
            others,
        }
        .into()
    }

    /// One point's statistics in result.json, led by its scan value.
    fn point_stats(&self, p: &Point, stats: impl serde::Serialize) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert(self.variable.to_string(), jnum(self.value(p)));
        if let Ok(serde_json::Value::Object(s)) = serde_json::to_value(stats) {
            m.extend(s);
        }
        serde_json::Value::Object(m)
    }
}

/// The output files of a scan of evolutions, fed one saved state at a time.
struct ScanSink<'a> {
    job: &'a ScanEvolve<'a>,
    x_names: Vec<String>,
    observables: CsvWriter,
    evolution: CsvWriter,
    pm: Option<CsvWriter>,
    /// One row per finished point: x values, observables at the final time.
    rows: Vec<Vec<f64>>,
    /// The final state of the last finished point (for a Husimi grid of a pinned scan).
    last: Option<DensityMatrix>,
}

impl ScanSink<'_> {
    /// Save `k` (time `t`) of point `p`; the last save also writes the point's final row.
    fn save(
        &mut self,
        p: &Point,
        reference: Option<&[c64]>,
        k: usize,
        t: f64,
        rho: StateRef,
    ) -> Result<(), OutputError> {
        let obs = observable_row(rho, &self.job.sc.observables.columns, reference);
        let x = self.job.value(p);
        let mut long = vec![x, t];
        long.extend(&obs);
        self.evolution.row(&long)?;
        if k + 1 == self.job.spec.times.len() {
            let mut full: Vec<f64> = self
                .x_names
                .iter()
                .map(|n| p.values.get(n).copied().unwrap_or(f64::NAN))
                .collect();
            full.extend(&obs);
            self.observables.row(&full)?;
            self.rows.push(full);
            if let Some(w) = self.pm.as_mut() {
                let mut r = vec![x];
                r.extend(rho.pm());
                w.row(&r)?;
            }
            if self.job.sc.observables.husimi.is_some() {
                self.last = Some(rho.husimi_matrix());
            }
        }
        Ok(())
    }
}

/// Where a batched task (a scan of evolutions, a sweep) runs.
pub(crate) enum BatchEngine {
    Cpu {
        note: String,
    },
    Gpu {
        ctx: Arc<GpuContext>,
        precision: Precision,
        note: String,
    },
}

/// The backend policy of a batched task with a GPU kernel in f32 and f64 and an f64 CPU twin
/// (a scan of evolutions, a sweep; module doc): `cpu`; `gpu` (any adapter, an error if none or
/// if it cannot run the requested precision); `auto` (a real GPU that can run it, else the CPU
/// with the reason recorded). Precision: as asked, else f64 where the adapter has SHADER_F64,
/// else f32. `f32_floors` are the tolerances the f32 kernel needs, as (field, value, minimum):
/// an explicit f32 below them is refused by the scenario parser already; here they refuse (gpu)
/// or route to the CPU (auto) the default f32 of an adapter without f64.
pub(crate) fn batch_engine(
    choice: BackendChoice,
    gpu: Option<Arc<GpuContext>>,
    asked: Option<Precision>,
    f32_floors: &[(&'static str, f64, f64)],
) -> Result<BatchEngine, Error> {
    let cpu_note = |note: String| {
        let note = match asked {
            Some(Precision::F32) => {
                format!("{note}; precision = \"f32\" is the GPU kernel's, the CPU integrator runs in f64")
            }
            _ => note,
        };
        Ok(BatchEngine::Cpu { note })
    };
    let resolve = |ctx: &GpuContext| {
        asked.unwrap_or(if ctx.info().has_f64 {
            Precision::F64
        } else {
            Precision::F32
        })
    };
    let below = |precision: Precision| {
        if precision == Precision::F32 {
            f32_floors.iter().find(|(_, v, min)| v < min).copied()
        } else {
            None
        }
    };
    match choice {
        BackendChoice::Cpu => cpu_note("requested".into()),
        BackendChoice::Gpu => {
            let ctx = explicit_context(gpu)?;
            let precision = resolve(&ctx);
            if let Some((field, value, min)) = below(precision) {
                return Err(InputError::invalid(
                    field,
                    value,
                    format!(
                        "{} >= {min:e}: adapter `{}` has no SHADER_F64, so the task runs the f32 \
                         kernel, whose error estimate is computed in f32; or run with --backend cpu",
                        field.trim_start_matches("task."),
                        ctx.info().name
                    ),
                )
                .into());
            }
            Ok(BatchEngine::Gpu {
                ctx,
                precision,
                note: "requested".into(),
            })
        }
        BackendChoice::Auto => match auto_context(gpu) {
            Err(why) => cpu_note(format!("auto: no real GPU adapter, running on the CPU ({why})")),
            Ok(ctx) => {
                let precision = resolve(&ctx);
                let name = ctx.info().name.clone();
                if precision == Precision::F64 && !ctx.info().has_f64 {
                    cpu_note(format!(
                        "auto: GPU adapter `{name}` has no SHADER_F64 and precision = \"f64\" was \
                         asked; running on the CPU"
                    ))
                } else if let Some((field, value, min)) = below(precision) {
                    cpu_note(format!(
                        "auto: GPU adapter `{name}` has no SHADER_F64 and {} = {value:e} is below \
                         the f32 kernel's {min:e}; running on the CPU",
                        field.trim_start_matches("task.")
                    ))
                } else {
                    Ok(BatchEngine::Gpu {
                        ctx,
                        precision,
                        note: "auto: real GPU adapter found".into(),
                    })
                }
            }
        },
    }
}

/// Run a scan of evolutions (module doc) and write observables.csv (final time per point),
/// scan_evolution.csv (every point and save) and pm.csv.
fn scan_evolve(
    job: &ScanEvolve,
    choice: BackendChoice,
    gpu: Option<Arc<GpuContext>>,
    progress: &mut dyn Progress,
) -> Result<(TaskOutput, BackendUsed), Error> {
    let (sc, points, spec) = (job.sc, job.points, job.spec);
    // The GPU kernel integrates the collective master equation (one block) and the block
    // master equation of single-atom rates (the blocks R_j with their inflow): the points of
    // each kind run as one batch.
    let engine = batch_engine(
        choice,
        gpu,
        job.precision,
        &[("task.rtol", spec.rtol, F32_MIN_RTOL)],
    )?;
    let n = points[0].model.n;
    let dim = n + 1;
    let times = &spec.times;
    let ode = OdeOptions {
        rtol: spec.rtol,
        atol: spec.atol,
        max_steps: spec.max_steps,
        h0: None,
    };
    let needs_full = sc
        .observables
        .columns
        .iter()
        .any(|c| FULL_MATRIX_COLUMNS.contains(&c.as_str()))
        || sc.observables.husimi.is_some();
    let output = if needs_full {
        BatchOutput::Full
    } else {
        BatchOutput::Band
    };

    // Memory, before anything is allocated. The CPU integrates one point at a time (the
    // estimate of a single evolution); the GPU checks its own bindings, and the host holds
    // every point's saves (c64) plus one read-back copy of them and the initial states.
    let psis: Vec<Vec<c64>> = match &engine {
        BatchEngine::Cpu { .. } => {
            for p in points {
                refuse_evolution_if_too_large(&p.model, "time evolution of one scan point")?;
            }
            Vec::new()
        }
        BatchEngine::Gpu { .. } => {
            let psis = points
                .iter()
                .map(|p| job.initial_state(p))
                .collect::<Result<Vec<_>, _>>()?;
            let shared = psis.iter().all(|p| *p == psis[0]);
            // Per point and save: the matrix or band of a collective point, every block (or
            // every block's band) of a point with single-atom rates.
            let blocks_len = crate::state::blocks::block_elements(n) as f64;
            let blocks_band: f64 = crate::basis::two_js(n).iter().map(|t| 5.0 * (t + 1) as f64).sum();
            let saves_elems: f64 = points
                .iter()
                .map(|p| match (p.model.is_collective(), output) {
                    (true, BatchOutput::Full) => (dim * dim) as f64,
                    (true, BatchOutput::Band) => (5 * dim) as f64,
                    (false, BatchOutput::Full) => blocks_len,
                    (false, BatchOutput::Band) => blocks_band,
                })
                .sum();
            let rho0s = if shared { 1.0 } else { points.len() as f64 };
            let rho0_elems = if points.iter().any(|p| !p.model.is_collective()) {
                blocks_len
            } else {
                (dim * dim) as f64
            };
            let bytes = 16.0 * (2.0 * times.len() as f64 * saves_elems + rho0s * rho0_elems);
            let needed_mib = (bytes / (1024.0 * 1024.0)).ceil() as u64;
            let limit_mib = memory_limit_mib();
            if needed_mib > limit_mib {
                return Err(SolverError::TooLarge {
                    what: format!(
                        "GPU scan of {} points x {} save times at N = {n} ({}), held on the host",
                        points.len(),
                        times.len(),
                        match output {
                            BatchOutput::Full => "full density matrices: a column needs them",
                            BatchOutput::Band => "central bands",
                        }
                    ),
                    needed_mib,
                    limit_mib,
                }
                .into());
            }
            if shared { vec![psis[0].clone()] } else { psis }
        }
    };

    let x_names = scan_x_names(sc, job.variable)?;
    let dir = job.dir;
    let mut evo_header = vec![job.variable.to_string(), "t".to_string()];
    evo_header.extend(job.names.iter().cloned());
    let mut sink = ScanSink {
        job,
        observables: CsvWriter::create(&dir.join("observables.csv"), &header(&x_names, job.names))?,
        evolution: CsvWriter::create(&dir.join(SCAN_EVOLUTION_CSV), &evo_header)?,
        pm: pm_writer(sc, dir, job.variable, n)?,
        x_names,
        rows: Vec::new(),
        last: None,
    };
    let mut point_stats = Vec::new();
    let (stats, used) = match engine {
        BatchEngine::Cpu { note } => {
            progress.start(points.len() as u64, "scan (evolve)");
            for (i, p) in points.iter().enumerate() {
                let psi0 = job.initial_state(p)?;
                let reference = reference_state(sc, p)?;
                let mut write_err = None;
                let st = evolve_any(&p.model, &psi0, times, &ode, &mut |k, t, rho| {
                    if let Err(e) = sink.save(p, reference.as_deref(), k, t, rho) {
                        write_err.get_or_insert(e);
                    }
                });
                if let Some(e) = write_err {
                    return Err(e.into());
                }
                let st = st.map_err(|e| job.point_error(i, e, String::new()))?;
                point_stats.push(job.point_stats(p, st));
                progress.set(i as u64 + 1);
            }
            progress.finish();
            let stats = json!({
                "mode": "evolve",
                "integrator": if points.iter().any(|p| !p.model.is_collective()) {
                    "blocks::evolve (single-atom rates) / master::evolve (collective-only points) (CPU, f64), one point after the other"
                } else {
                    "master::evolve (CPU, f64), one point after the other"
                },
                "precision": "f64",
                "points": point_stats,
            });
            let used = BackendUsed {
                name: "cpu",
                device: format!("{} rayon threads", rayon::current_num_threads()),
                precision: "f64",
                note,
            };
            (stats, used)
        }
        BatchEngine::Gpu { ctx, precision, note } => {
            let kernel = MasterBatchGpu::new(Arc::clone(&ctx))?;
            let options = MasterBatchOptions {
                precision,
                output,
                ..MasterBatchOptions::default()
            };
            // Collective points as one batch of (N+1)^2 matrices, points with single-atom
            // rates as one batch of block states (R_{N/2} = |psi><psi|), in point order.
            let (sym, blk): (Vec<usize>, Vec<usize>) =
                (0..points.len()).partition(|&i| points[i].model.is_collective());
            let shared = psis.len() == 1;
            let rho0_of = |i: usize| DensityMatrix::from_pure(&psis[if shared { 0 } else { i }]);
            let group_rho0s = |idx: &[usize]| -> Vec<DensityMatrix> {
                if shared {
                    vec![rho0_of(0)]
                } else {
                    idx.iter().map(|&i| rho0_of(i)).collect()
                }
            };
            progress.start(1, "scan (GPU batch)");
            let t_batch = Instant::now();
            let to_error = |e: MasterBatchError| match e {
                MasterBatchError::Input(s) => Error::from(s),
                MasterBatchError::Gpu(g) => Error::from(g),
            };
            let mut batches = Vec::new();
            let mut elements: Vec<
                Option<Result<crate::backend::gpu::master_batch::BatchElement, SolverError>>,
            > = (0..points.len()).map(|_| None).collect();
            for (idx, blocks_kind) in [(&sym, false), (&blk, true)] {
                if idx.is_empty() {
                    continue;
                }
                let models: Vec<crate::model::Model> = idx.iter().map(|&i| points[i].model).collect();
                let rho0s = group_rho0s(idx);
                let batch = if blocks_kind {
                    let b0: Vec<BlockState> = rho0s.iter().map(BlockState::from_symmetric).collect();
                    drop(rho0s);
                    kernel.run_blocks(&models, &b0, times, &ode, &options)
                } else {
                    kernel.run(&models, &rho0s, times, &ode, &options)
                };
                let mut batch = match batch {
                    Ok(b) => b,
                    Err(e) => {
                        progress.finish();
                        return Err(to_error(e));
                    }
                };
                for (&i, el) in idx.iter().zip(std::mem::take(&mut batch.elements)) {
                    elements[i] = Some(el);
                }
                batches.push((blocks_kind, batch));
            }
            progress.finish();
            drop(psis);
            let batch_wall_s = t_batch.elapsed().as_secs_f64();
            let failed = elements.iter().filter(|e| matches!(e, Some(Err(_)))).count();
            let others = if failed > 1 {
                format!("; {failed} of {} points failed", points.len())
            } else {
                String::new()
            };
            for (i, (p, el)) in points.iter().zip(elements).enumerate() {
                let Some(el) = el else {
                    unreachable!("every point is in one of the two batches")
                };
                let el = el.map_err(|e| job.point_error(i, e, others.clone()))?;
                let reference = reference_state(sc, p)?;
                for (k, t) in times.iter().enumerate() {
                    match &el.saves {
                        Saves::Full(v) => sink.save(p, reference.as_deref(), k, *t, StateRef::Sym(&v[k]))?,
                        Saves::Band(v) => sink.save(
                            p,
                            reference.as_deref(),
                            k,
                            *t,
                            StateRef::Sym(&v[k].to_density_matrix()),
                        )?,
                        Saves::Blocks(v) => {
                            sink.save(p, reference.as_deref(), k, *t, StateRef::Blocks(&v[k]))?
                        }
                        Saves::BlockBands(v) => sink.save(
                            p,
                            reference.as_deref(),
                            k,
                            *t,
                            StateRef::Blocks(&block_state_from_bands(&v[k])),
                        )?,
                    }
                }
                point_stats.push(job.point_stats(p, el.stats));
            }
            let batch = &batches[0].1;
            let info = ctx.info();
            let stats = json!({
                "mode": "evolve",
                "integrator": match (sym.is_empty(), blk.is_empty()) {
                    (_, true) => "master_batch (GPU, every point in one batch)",
                    (true, false) => "master_batch on the blocks R_j (GPU, single-atom rates, every point in one batch)",
                    (false, false) => "master_batch (GPU): collective points in one batch, points with single-atom rates in one batch of blocks R_j",
                },
                "precision": batch.precision,
                "adapter": batch.adapter,
                "output": output,
                "lanes": batch.lanes,
                "attempts_per_dispatch": batches.iter().map(|b| b.1.attempts_per_dispatch).max(),
                "chunks": batches.iter().map(|b| b.1.chunks).sum::<usize>(),
                "dispatches": batches.iter().map(|b| b.1.dispatches).sum::<usize>(),
                "batch_wall_s": batch_wall_s,
                "points": point_stats,
            });
            let used = BackendUsed {
                name: "gpu",
                device: format!("{} ({}, {})", info.name, info.device_type, info.backend),
                precision: batch.precision.name(),
                note,
            };
            (stats, used)
        }
    };
    let ScanSink {
        x_names, rows, last, ..
    } = sink;
    let mut scalars = scan_scalars(&x_names, &rows);
    if let serde_json::Value::Object(m) = &mut scalars {
        m.insert("mode".into(), json!("evolve"));
        m.insert("t_final".into(), jnum(times[times.len() - 1]));
    }
    let xs: Vec<f64> = rows.iter().map(|r| r[0]).collect();
    Ok(((x_names, xs, rows, last, scalars, stats), used))
}

/// The output file of the fixed points of one factorisation: `fixed_points.csv`, and
/// `fixed_points_collective.csv` for the collective curve when both are asked for.
fn fixed_points_file(f: meanfield::Factorisation, both: bool) -> &'static str {
    match (f, both) {
        (meanfield::Factorisation::Collective, true) => "fixed_points_collective.csv",
        _ => "fixed_points.csv",
    }
}

/// `kind = "fixed_points"`: mean-field fixed points per scan value and factorisation
/// (`solver::meanfield`), one CSV row per fixed point, the boundaries in result.json, and a
/// plot of sz against the scanned variable (stable solid, unstable dashed, one colour per
/// factorisation).
fn fixed_points_task(
    sc: &Scenario,
    opts: &RunOptions,
    progress: &mut dyn Progress,
    t_start: Instant,
) -> Result<RunSummary, Error> {
    let Task::FixedPoints {
        variable,
        values,
        factorisations,
        boundary_tol,
        integrate,
        collective,
        collective_set,
    } = &sc.task
    else {
        return Err(SolverError::Unsupported {
            solver: "mean field",
            message: "not a fixed_points task".into(),
        }
        .into());
    };
    let backend = backend::cpu_only(opts.backend, "mean field")?;
    let dir = &opts.out_dir;
    output::create_dir(dir)?;
    let both = factorisations.len() > 1;
    let header: Vec<String> = [
        variable.as_str(),
        "Omega",
        "sx",
        "sy",
        "sz",
        "stable",
        "center",
        "max_re_eig",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut files = Vec::new();
    let mut results = serde_json::Map::new();
    // Per factorisation: (x, sz, stable) of every fixed point, for the plot.
    type Curve = (meanfield::Factorisation, Vec<(f64, f64, bool)>);
    let mut curves: Vec<Curve> = Vec::new();
    let mut ends: Vec<Curve> = Vec::new();
    progress.start((factorisations.len() * values.len()) as u64, "fixed points");
    let mut done = 0;
    for &f in factorisations {
        // The collective curve may run on its own model (task.collective_set).
        let src: &Scenario = match (f, collective) {
            (meanfield::Factorisation::Collective, Some(c)) => c,
            _ => sc,
        };
        let at = |x: f64| -> Result<(Point, meanfield::FixedPoints), Error> {
            let p = src.point(&[(variable.as_str(), x)])?;
            let fp = meanfield::fixed_points(&p.model, f);
            Ok((p, fp))
        };
        let file = fixed_points_file(f, both);
        let mut csv = CsvWriter::create(&dir.join(file), &header)?;
        // With t_end: where a run of the ODE from [initial] ends, next to all fixed points.
        let end_file = file.replace("fixed_points", "meanfield_final");
        let mut end_csv = match integrate {
            Some(_) => {
                let h: Vec<String> = [variable.as_str(), "Omega", "sx", "sy", "sz", "distance_to_stable"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                files.push(end_file.clone());
                Some(CsvWriter::create(&dir.join(&end_file), &h)?)
            }
            None => None,
        };
        let mut end_curve = Vec::new();
        let mut sigs = Vec::new();
        let mut degenerate = Vec::new();
        let mut unphysical = 0;
        let mut curve = Vec::new();
        let mut radius = None;
        for (i, &x) in values.iter().enumerate() {
            let (p, fp) = at(x)?;
            for q in &fp.points {
                let stable = q.stability == meanfield::Stability::Stable;
                let center = q.stability == meanfield::Stability::Center;
                csv.row(&[
                    x,
                    p.model.drive,
                    q.s[0],
                    q.s[1],
                    q.s[2],
                    f64::from(u8::from(stable)),
                    f64::from(u8::from(center)),
                    q.max_re(),
                ])?;
                curve.push((x, q.s[2], stable));
            }
            for d in &fp.degenerate {
                degenerate.push(json!({ variable.as_str(): jnum(x), "note": d }));
            }
            if let (Some(spec), Some(w), Some(init)) = (integrate, end_csv.as_mut(), &src.initial) {
                let s0 = meanfield::bloch_vector(&p.model, p.state("initial", init)?)?;
                let ode = OdeOptions {
                    rtol: spec.rtol,
                    atol: spec.atol,
                    max_steps: spec.max_steps,
                    h0: None,
                };
                let mut fin = s0;
                meanfield::evolve(&p.model, f, s0, &spec.times, &ode, |_, _, s| fin = s).map_err(|e| {
                    SolverError::ScanPoint {
                        index: i,
                        variable: variable.clone(),
                        value: x,
                        cause: Box::new(e),
                        others: String::new(),
                    }
                })?;
                let d = fp
                    .points
                    .iter()
                    .filter(|q| q.stability == meanfield::Stability::Stable)
                    .map(|q| (0..3).map(|k| (q.s[k] - fin[k]).powi(2)).sum::<f64>().sqrt())
                    .fold(f64::NAN, f64::min);
                w.row(&[x, p.model.drive, fin[0], fin[1], fin[2], d])?;
                end_curve.push((x, fin[2], true));
            }
            unphysical += fp.unphysical_roots;
            radius = fp.sphere_radius;
            let (ns, nc) = fp.signature();
            sigs.push((ns, nc));
            done += 1;
            progress.set(done);
        }
        let bounds = meanfield::boundaries(values, &sigs, *boundary_tol, |x| {
            at(x).map(|(_, fp)| fp.signature())
        })?;
        let bjson: Vec<serde_json::Value> = bounds
            .iter()
            .map(|b| {
                json!({
                    "at": jnum(b.at),
                    "tol": jnum(b.tol),
                    "stable_before": b.before.0,
                    "stable_after": b.after.0,
                    "centers_before": b.before.1,
                    "centers_after": b.after.1,
                })
            })
            .collect();
        let mut r = json!({
            "file": file,
            "boundaries": bjson,
            "boundary_tol": jnum(*boundary_tol),
            "unphysical_roots_dropped": unphysical,
            "degenerate": degenerate,
            "sphere_radius": radius.map(jnum),
        });
        if f == meanfield::Factorisation::Collective && !collective_set.is_empty() {
            r["collective_set"] = json!(collective_set);
            r["model"] = json!(
                src.point(&[])?
                    .model
                    .values()
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), jnum(v)))
                    .collect::<serde_json::Map<_, _>>()
            );
        }
        if let Some(spec) = integrate {
            r["integration"] = json!({
                "file": end_file,
                "t_end": jnum(spec.times[1]),
                "rtol": jnum(spec.rtol),
                "atol": jnum(spec.atol),
            });
        }
        results.insert(f.name().to_string(), r);
        files.push(file.to_string());
        curves.push((f, curve));
        if integrate.is_some() {
            ends.push((f, end_curve));
        }
    }
    progress.finish();
    if sc.plot {
        let mut sets: Vec<plot::BranchSet> = curves
            .iter()
            .map(|(f, c)| plot::BranchSet {
                name: match f {
                    meanfield::Factorisation::Individual => "individual",
                    meanfield::Factorisation::Collective => "collective (Dicke)",
                },
                colour: match f {
                    meanfield::Factorisation::Individual => 0,
                    meanfield::Factorisation::Collective => 3,
                },
                points: c,
                markers: false,
            })
            .collect();
        for (f, c) in &ends {
            sets.push(plot::BranchSet {
                name: match f {
                    meanfield::Factorisation::Individual => "individual: run from [initial] ends",
                    meanfield::Factorisation::Collective => "collective: run from [initial] ends",
                },
                colour: match f {
                    meanfield::Factorisation::Individual => 2,
                    meanfield::Factorisation::Collective => 1,
                },
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
        files.push("plot.png".into());
    }
    files.push("result.json".into());
    let wall_s = t_start.elapsed().as_secs_f64();
    let base = sc.point(&[])?;
    let result = json!({
        "dicke_version": crate::VERSION,
        "title": sc.title,
        "task": "fixed_points",
        "solver": "meanfield (fixed points of the mean-field equations, CPU f64)",
        "backend": backend,
        "wall_time_s": wall_s,
        "overrides": opts.overrides,
        "scenario": toml_to_json(&sc.as_run),
        "model": base.model.values().into_iter().map(|(k, v)| (k.to_string(), jnum(v))).collect::<serde_json::Map<_, _>>(),
        "columns": header,
        "results": results,
        "files": files,
    });
    output::write_json(&dir.join("result.json"), &result)?;
    Ok(RunSummary {
        out_dir: dir.clone(),
        backend,
        wall_s,
        files,
        result,
    })
}
