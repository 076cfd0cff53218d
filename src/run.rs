//! Running a validated scenario: the output directory (locked, written through a staging
//! directory and committed atomically: [`crate::output::transaction`], design in
//! [`crate::task::context`]), the task ([`crate::task`]), then result.json
//! ([`crate::task::report::write`]). The library never prints; `main.rs` draws progress
//! through [`Progress`] and prints [`RunSummary::notes`].

use crate::backend::{BackendChoice, BackendUsed, SharedGpu};
use crate::error::Error;
use crate::error::OutputError;
use crate::output::transaction::Transaction;
use crate::scenario::Scenario;
use crate::task::checkpoint::{CHECKPOINT_DIR, META, Meta, present_units, unit_file};
use crate::task::checkpoint::{Shard, WorkPlan, is_interrupt};
use crate::task::{self, Context, Report, report};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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
    /// `--resume`: continue the newest unfinished run of this scenario in `out_dir` from its
    /// checkpoint ([`crate::task::checkpoint`]).
    pub resume: bool,
    /// `--shard k/n` (or Slurm's job array): run one deterministic slice of the units.
    pub shard: Option<Shard>,
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
    let work = WorkPlan {
        shard: opts.shard,
        replay: false,
        scenario: scenario_text(sc)?,
    };
    let mut txn = Transaction::begin(&opts.out_dir)?;
    if opts.resume {
        let note = txn.adopt_checkpoint(&work.scenario, work.shard)?;
        txn.note(note);
    }
    run_in(sc, opts, txn, &work, gpu, progress, None)
}

/// The scenario as run, as TOML text: what identifies a checkpoint, and what a merge runs.
pub fn scenario_text(sc: &Scenario) -> Result<String, Error> {
    toml::to_string(&sc.as_run).map_err(|e| {
        crate::error::InputError::Parse {
            path: "(scenario as run)".into(),
            message: e.to_string(),
        }
        .into()
    })
}

/// Run the task inside the transaction `txn` and finish it: commit (complete), set aside as
/// `interrupted-*` (an interrupt) or `failed-*` (an error). `backend_as` replaces the report's
/// backend (a merge reports the shards' backend, which computed every unit).
fn run_in(
    sc: &Scenario,
    opts: &RunOptions,
    txn: Transaction,
    work: &WorkPlan,
    gpu: SharedGpu,
    progress: &mut dyn Progress,
    backend_as: Option<BackendUsed>,
) -> Result<RunSummary, Error> {
    let t_start = Instant::now();
    let staging = txn.staging().to_path_buf();
    let notes = txn.notes().to_vec();
    let mut ctx = Context {
        dir: &staging,
        backend: opts.backend,
        gpu,
        progress,
        work,
    };
    let written = task::run(sc, &mut ctx).and_then(|mut report| {
        if let Some(b) = &backend_as {
            report.backend = b.clone();
        }
        if work.shard.is_some() {
            report.files.push(task::checkpoint::CHECKPOINT_DIR.into());
        }
        let wall_s = t_start.elapsed().as_secs_f64();
        let (result, files) = report::write(&staging, sc, &opts.overrides, &report, wall_s)?;
        Ok((report, wall_s, result, files))
    });
    let (report, wall_s, result, files) = match written {
        Ok(w) => w,
        Err(e) => return Err(set_aside_failed(sc, opts, txn, e, t_start)),
    };
    if report.interrupted() {
        return Err(set_aside_interrupted(txn, &report));
    }
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

/// An interrupted task's finished part (result.json already written into the staging
/// directory): kept in `interrupted-*`, the error says where and how much.
fn set_aside_interrupted(txn: Transaction, report: &Report) -> Error {
    let done = report
        .coverage
        .as_ref()
        .map_or_else(|| "the finished part".to_string(), |c| c.describe());
    match txn.interrupt(|_, _| Ok(())) {
        Ok(Some(kept)) => Error::Interrupted {
            done,
            kept: kept.display().to_string(),
        },
        Ok(None) => Error::Interrupted {
            done: "nothing".into(),
            kept: "(nothing was written)".into(),
        },
        Err(e) => e.into(),
    }
}

/// A failed task (or one whose integrator saw the interrupt, [`crate::error::SolverError::Interrupted`]):
/// its partial output, with a result.json saying why, kept aside; `DIR` is left as it was.
fn set_aside_failed(sc: &Scenario, opts: &RunOptions, txn: Transaction, e: Error, t_start: Instant) -> Error {
    let wall_s = t_start.elapsed().as_secs_f64();
    let interrupted = is_interrupt(&e);
    let record = |dir: &std::path::Path, files: Vec<String>| {
        report::write_failed(dir, sc, &opts.overrides, &e, wall_s, &files, interrupted)
    };
    // Keeping the partial output is best effort: the run's own error comes first.
    let kept = if interrupted {
        txn.interrupt(record)
    } else {
        txn.fail(record)
    };
    match (kept, interrupted) {
        (Ok(Some(kept)), false) => Error::Failed {
            cause: Box::new(e),
            kept: kept.display().to_string(),
        },
        (Ok(Some(kept)), true) => Error::Interrupted {
            done: format!("the rows finished before the stop ({e})"),
            kept: kept.display().to_string(),
        },
        _ => e,
    }
}

/// A shard's output directory as `dicke merge` reads it.
struct ShardDir {
    dir: PathBuf,
    meta: Meta,
    shard: Shard,
    result: serde_json::Value,
}

fn merge_err(msg: String) -> Error {
    Error::Merge(msg)
}

fn read_shard(dir: &Path) -> Result<ShardDir, Error> {
    let path = dir.join("result.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        merge_err(format!(
            "`{}`: {e} (is it a shard's output directory?)",
            path.display()
        ))
    })?;
    let result: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| merge_err(format!("`{}` is not valid JSON: {e}", path.display())))?;
    if result["status"] != "complete" {
        return Err(merge_err(format!(
            "`{}` has status {} (a shard must have finished; rerun it with --resume)",
            path.display(),
            result["status"]
        )));
    }
    let cp = dir.join(CHECKPOINT_DIR);
    let meta = Meta::read(&cp).map_err(|e| merge_err(format!("`{}`: {e}", dir.display())))?;
    let shard = meta.shard.ok_or_else(|| {
        merge_err(format!(
            "`{}` is the output of a whole run, not of a shard (--shard k/n)",
            dir.display()
        ))
    })?;
    Ok(ShardDir {
        dir: dir.to_path_buf(),
        meta,
        shard,
        result,
    })
}

/// Every shard of one run, each exactly once, each with all of its units.
fn check_shards(shards: &[ShardDir]) -> Result<(), Error> {
    let first = &shards[0];
    for s in &shards[1..] {
        let m = (&s.meta, &first.meta);
        let same = m.0.scenario == m.1.scenario
            && m.0.task == m.1.task
            && m.0.engine == m.1.engine
            && (m.0.units, m.0.unit_size, m.0.items) == (m.1.units, m.1.unit_size, m.1.items)
            && m.0.dicke_version == m.1.dicke_version
            && s.shard.count == first.shard.count;
        if !same {
            return Err(merge_err(format!(
                "`{}` and `{}` are shards of different runs (scenario, task, backend/precision, \
                 shard count or dicke version differ)",
                first.dir.display(),
                s.dir.display()
            )));
        }
    }
    let count = first.shard.count;
    let mut by_index: BTreeMap<usize, &Path> = BTreeMap::new();
    for s in shards {
        if let Some(other) = by_index.insert(s.shard.index, &s.dir) {
            return Err(merge_err(format!(
                "shard {}/{count} is given twice: `{}` and `{}`",
                s.shard.index,
                other.display(),
                s.dir.display()
            )));
        }
    }
    let missing: Vec<String> = (0..count)
        .filter(|k| !by_index.contains_key(k))
        .map(|k| format!("{k}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(merge_err(format!(
            "missing shard(s) {} of {count} (nothing is averaged in without them)",
            missing.join(", ")
        )));
    }
    for s in shards {
        let present = present_units(&s.dir.join(CHECKPOINT_DIR));
        let lacking: Vec<usize> = s
            .shard
            .units(s.meta.units)
            .filter(|u| !present.contains(u))
            .collect();
        if !lacking.is_empty() {
            return Err(merge_err(format!(
                "shard {}/{count} in `{}` lacks the {} {:?} of its units",
                s.shard.index,
                s.dir.display(),
                s.meta.item,
                s.meta.item_ranges(lacking)
            )));
        }
    }
    Ok(())
}

/// The backend the shards ran on, from a shard's result.json.
fn shard_backend(result: &serde_json::Value) -> BackendUsed {
    let b = &result["backend"];
    let s = |k: &str| b[k].as_str().unwrap_or("").to_string();
    BackendUsed {
        name: if s("name") == "gpu" { "gpu" } else { "cpu" },
        device: s("device"),
        precision: if s("precision") == "f32" { "f32" } else { "f64" },
        note: format!("merged from shards; {}", s("note")),
    }
}

/// `dicke merge DIR... --out OUT`: combine the output directories of the shards of one run
/// into exactly the files of that run (module doc of [`crate::task::checkpoint`]). Refuses
/// shards of different runs, a missing or repeated shard, and a shard lacking units.
pub fn merge(dirs: &[PathBuf], out_dir: &Path, progress: &mut dyn Progress) -> Result<RunSummary, Error> {
    if dirs.is_empty() {
        return Err(merge_err("no shard directories given".into()));
    }
    let shards = dirs
        .iter()
        .map(|d| read_shard(d))
        .collect::<Result<Vec<_>, _>>()?;
    check_shards(&shards)?;
    let first = &shards[0];
    let sc = crate::scenario::parse(&first.meta.scenario, "the shards' scenario", &[])?;
    let mut txn = Transaction::begin(out_dir)?;
    let cp = txn.staging().join(CHECKPOINT_DIR);
    crate::output::create_dir(&cp)?;
    for s in &shards {
        for u in s.shard.units(s.meta.units) {
            let name = unit_file(u);
            let (from, to) = (s.dir.join(CHECKPOINT_DIR).join(&name), cp.join(&name));
            // A hard link costs nothing; across filesystems, a copy.
            if std::fs::hard_link(&from, &to).is_err() {
                std::fs::copy(&from, &to).map_err(|e| OutputError::Write {
                    path: to.display().to_string(),
                    message: format!("copying `{}`: {e}", from.display()),
                })?;
            }
        }
    }
    let meta = Meta {
        shard: None,
        ..first.meta.clone()
    };
    let text = serde_json::to_string_pretty(&meta).unwrap_or_default();
    crate::output::write_atomic(&cp.join(META), |w| std::io::Write::write_all(w, text.as_bytes()))?;
    txn.note(format!(
        "merged {} shards of {} {}",
        shards.len(),
        meta.items,
        meta.item
    ));
    let overrides: Vec<String> = first.result["overrides"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default();
    let opts = RunOptions {
        out_dir: out_dir.to_path_buf(),
        backend: BackendChoice::Cpu,
        overrides,
        resume: false,
        shard: None,
    };
    let work = WorkPlan {
        shard: None,
        replay: true,
        scenario: first.meta.scenario.clone(),
    };
    run_in(
        &sc,
        &opts,
        txn,
        &work,
        None,
        progress,
        Some(shard_backend(&first.result)),
    )
}
