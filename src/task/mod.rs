//! The task layer: one module per task kind, each taking its validated spec and a run
//! [`Context`] and returning a typed [`Report`].
//!
//! ```text
//! scenario TOML --scenario::load--> Scenario (validated)
//!      --run::execute_on--> task::run (dispatch on the kind)
//!           --> evolve | steady_state | scan (steady_state / evolve) | trajectories
//!               | fixed_points | sweep | spectrum | metastable | correlation | fisher
//!                 each: policy::resolve (backend) -> solver(s) / GPU kernel host
//!                       -> data files (CSV, PNG) in the output directory -> Report
//!      --report::write--> result.json (one envelope for every task)
//! ```
//!
//! A new task kind is one new module here and one arm in [`run`]; it resolves its backend
//! through [`policy::resolve`] (declaring what it can run on the GPU), writes its files through
//! [`Context::path`], and returns a [`Report`]; result.json is written by the dispatcher's
//! caller in one place ([`report::write`]). Shared pieces: [`rows`] (observable columns of
//! master-equation states, `pm.csv`, Husimi grid, main plot), [`memory`] (refusals before
//! allocation), [`checks`] (every written state checked; a single-point failure named with its
//! point), [`estimate`] (the cost line handed to [`Progress::estimate`] before a run).

pub mod approx;
pub mod checkpoint;
pub mod checks;
pub mod context;
pub mod correlation;
pub mod decay_fit;
pub mod estimate;
pub mod evolve;
pub mod evolve_checkpoint;
pub mod exact_steady;
pub mod fisher;
pub mod fixed_points;
pub mod hysteresis;
pub mod initial;
pub mod memory;
pub mod metastable;
pub mod policy;
pub mod progress;
pub mod report;
pub mod rows;
pub mod scan;
pub mod spectrum;
pub mod steady_state;
pub mod sweep;
pub mod sweep_exact;
pub mod switching;
pub mod trajectories;

pub use context::{Context, NoProgress, Progress};
pub use report::Report;

use crate::error::{Error, SolverError};
use crate::scenario::{Scenario, Task};

/// Run the scenario's task (module doc). A panic that escapes a solver is contained here and
/// returned as [`SolverError::Panicked`] naming the task kind, never an abort of the caller.
pub fn run(sc: &Scenario, ctx: &mut Context) -> Result<Report, Error> {
    memory::memory_limit()?;
    if let Some(shard) = ctx.work.shard
        && !matches!(
            sc.task,
            Task::Trajectories { .. } | Task::Sweep(_) | Task::Scan { .. }
        )
    {
        return Err(crate::error::InputError::invalid(
            "--shard",
            format!("{}/{}", shard.index, shard.count),
            format!(
                "no --shard for kind = \"{}\", which runs whole (shards split trajectories, \
                 sweeps and scans)",
                sc.task.kind()
            ),
        )
        .into());
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // The cost line before anything runs; a scenario whose points cannot be evaluated
        // gets none here and its error from the task.
        if let Ok(text) = estimate::line(sc) {
            ctx.progress.estimate(&text);
        }
        dispatch(sc, ctx)
    }))
    .unwrap_or_else(|payload| Err(panicked(sc.task.kind(), payload.as_ref()).into()))
}

/// The error of a contained panic: its message (a `&str` or `String` payload) and the task.
fn panicked(task: &str, payload: &(dyn std::any::Any + Send)) -> SolverError {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string());
    SolverError::Panicked {
        task: task.to_string(),
        message,
    }
}

fn dispatch(sc: &Scenario, ctx: &mut Context) -> Result<Report, Error> {
    match &sc.task {
        Task::Evolve {
            times,
            rtol,
            atol,
            max_steps,
            decay_fit,
        } => {
            let spec = crate::scenario::EvolveSpec {
                times: times.clone(),
                rtol: *rtol,
                atol: *atol,
                max_steps: *max_steps,
            };
            evolve::run(sc, &spec, decay_fit.as_deref(), ctx)
        }
        Task::SteadyState => steady_state::run(sc, ctx),
        Task::Spectrum { k, target, sector } => spectrum::run(sc, *k, *target, *sector, ctx),
        Task::Metastable => metastable::run(sc, ctx),
        Task::Correlation(spec) => correlation::run(sc, spec, ctx),
        Task::Fisher(spec) => fisher::run(sc, spec, ctx),
        Task::Scan { variable, mode, .. } => scan::run(sc, variable, mode, ctx),
        Task::Trajectories {
            times,
            ntraj,
            seed,
            save_trajectories,
            f64,
            dt,
            cfl,
            level_window,
        } => {
            let spec = trajectories::Spec {
                times,
                options: trajectories::options(
                    *ntraj,
                    *seed,
                    *f64,
                    *dt,
                    *cfl,
                    *save_trajectories,
                    sc.observables.pm,
                    *level_window,
                ),
            };
            trajectories::run(sc, &spec, ctx)
        }
        Task::FixedPoints {
            variable,
            values,
            factorisations,
            boundary_tol,
            integrate,
            collective,
            collective_set,
        } => {
            let spec = fixed_points::Spec {
                variable,
                values,
                factorisations,
                boundary_tol: *boundary_tol,
                integrate: integrate.as_ref(),
                collective: collective.as_deref(),
                collective_set,
            };
            fixed_points::run(sc, &spec, ctx)
        }
        Task::Sweep(spec) if spec.method == "exact" => sweep_exact::run(sc, spec, ctx),
        Task::Sweep(spec) => sweep::run(sc, spec, ctx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_payload_becomes_an_error_naming_the_task() {
        let caught = std::panic::catch_unwind(|| panic!("index {} out of range", 7)).unwrap_err();
        let e = Error::from(panicked("steady_state", caught.as_ref())).to_string();
        assert!(
            e.contains("steady_state") && e.contains("index 7 out of range"),
            "{e}"
        );
        let caught = std::panic::catch_unwind(|| std::panic::panic_any(3_u8)).unwrap_err();
        let e = panicked("evolve", caught.as_ref()).to_string();
        assert!(e.contains("evolve") && e.contains("without a message"), "{e}");
    }
}
