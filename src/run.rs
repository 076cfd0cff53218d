//! Running a validated scenario: the output directory (locked, written through a staging
//! directory and committed atomically: [`crate::output::transaction`], design in
//! [`crate::task::context`]), the task ([`crate::task`]), then result.json
//! ([`crate::task::report::write`]). The library never prints; `main.rs` draws progress
//! through [`Progress`] and prints [`RunSummary::notes`].

use crate::backend::{BackendChoice, BackendUsed, SharedGpu};
use crate::error::Error;
use crate::output::transaction::Transaction;
use crate::scenario::Scenario;
use crate::task::{self, Context, report};
use std::path::PathBuf;
use std::time::Instant;

pub use crate::task::memory::memory_limit_mib;
pub use crate::task::scan::evolve::SCAN_EVOLUTION_CSV;
pub use crate::task::{NoProgress, Progress};

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
    /// What the output directory's transaction did that the user should hear about (a stale
    /// lock taken over, an interrupted run's partial output moved to `failed-*`).
    pub notes: Vec<String>,
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
    gpu: SharedGpu,
    progress: &mut dyn Progress,
) -> Result<RunSummary, Error> {
    let t_start = Instant::now();
    let txn = Transaction::begin(&opts.out_dir)?;
    let staging = txn.staging().to_path_buf();
    let notes = txn.notes().to_vec();
    let mut ctx = Context {
        dir: &staging,
        backend: opts.backend,
        gpu,
        progress,
    };
    let written = task::run(sc, &mut ctx).and_then(|report| {
        let wall_s = t_start.elapsed().as_secs_f64();
        let (result, files) = report::write(&staging, sc, &opts.overrides, &report, wall_s)?;
        Ok((report, wall_s, result, files))
    });
    let (report, wall_s, result, files) = match written {
        Ok(w) => w,
        Err(e) => {
            let wall_s = t_start.elapsed().as_secs_f64();
            // Keeping the partial output is best effort: the run's own error comes first.
            let kept =
                txn.fail(|dir, files| report::write_failed(dir, sc, &opts.overrides, &e, wall_s, &files));
            return Err(match kept {
                Ok(Some(kept)) => Error::Failed {
                    cause: Box::new(e),
                    kept: kept.display().to_string(),
                },
                _ => e,
            });
        }
    };
    txn.commit(&files)?;
    Ok(RunSummary {
        out_dir: opts.out_dir.clone(),
        backend: report.backend,
        wall_s,
        files,
        result,
        notes,
    })
}
