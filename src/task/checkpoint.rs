//! Units of work: checkpoints, resume, shards and merges (issue 12).
//!
//! A long task divides its work into **units** fixed by the scenario alone (never by the
//! backend, the shard or an interrupt): a block of trajectories of an ensemble, a chunk of
//! sweep points, one scan point. Each finished unit's result is written, exactly (raw f64
//! bits), to `checkpoint/u<index>.bin` in the run's staging directory before the next unit
//! starts; the task builds its output files from the units in unit order, whether a unit was
//! computed now or read back. Three things follow:
//!
//! - **Interrupt.** SIGINT/SIGTERM ([`crate::interrupt`]) stop the unit loop at the next unit
//!   boundary; the files of the finished units and result.json (`status` "interrupted",
//!   `coverage`: which items are in the files) are kept in `DIR/interrupted-<time>-<pid>/`,
//!   beside `checkpoint/`. A `kill -9` leaves the staging directory with its finished units;
//!   the next run into `DIR` moves it to `failed-<time>-<pid>/`.
//! - **Resume.** `dicke run --resume` adopts the newest such `checkpoint/` of the same
//!   scenario (the scenario as run, TOML text, compared exactly; the task, backend and
//!   precision, unit layout and shard must match too), reads its units back and computes only
//!   the missing ones. The files are then the files of an uninterrupted run: bit-identical,
//!   because a unit's result does not depend on when it ran (Philox streams per trajectory,
//!   independent points) and the reduction over units runs in unit order either way.
//! - **Shards and merge.** `--shard k/n` (or Slurm's `SLURM_ARRAY_TASK_ID` /
//!   `SLURM_ARRAY_TASK_COUNT`) runs the contiguous units `[total k / n, total (k+1) / n)` and
//!   keeps `checkpoint/` in its output directory; `dicke merge DIR... --out OUT` checks that
//!   the shards are of one scenario and cover every unit exactly once, then runs the task in
//!   replay mode ([`WorkPlan::replay`]: every unit read back, nothing computed), which writes
//!   exactly the files of one run.
//!
//! The files (meta.json, unit files, payload codec) and the shard arithmetic are in
//! [`crate::output::checkpoint`].

use super::context::Context;
use super::progress::Progress;
use crate::error::{Error, InputError, SolverError};
pub use crate::output::checkpoint::{
    CHECKPOINT_DIR, Dec, Enc, META, Meta, Shard, WorkPlan, present_units, read_unit, unit_file, write_unit,
};
use serde::Serialize;
use std::collections::BTreeSet;
use std::ops::Range;
use std::path::PathBuf;

/// Which items of the task the run's files hold (result.json `coverage`).
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    /// "trajectories" or "points".
    pub item: String,
    /// Items of the whole run, and those in this run's files as `[start, end)` ranges.
    pub total: u64,
    pub done: Vec<[u64; 2]>,
    pub units: usize,
    pub unit_size: u64,
    pub units_done: usize,
    /// Units read back from a checkpoint (resume, merge) rather than computed by this run.
    pub units_reused: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// The loop stopped at a requested interrupt.
    pub interrupted: bool,
}

impl Coverage {
    /// "1024 of 4096 trajectories" (for messages).
    pub fn describe(&self) -> String {
        let n: u64 = self.done.iter().map(|r| r[1] - r[0]).sum();
        format!("{n} of {} {}", self.total, self.item)
    }
}

impl Context<'_> {
    /// The units of a task run in units ([`super::checkpoint`]): `units` units of `unit_size`
    /// `item`s (`items` in all), whose results are of `engine` (backend and precision). Opens
    /// the run's checkpoint (adopted by `--resume`, or a merge's), checking it is of this run.
    pub fn units(
        &self,
        task: &str,
        engine: String,
        items: u64,
        unit_size: u64,
        item: &str,
    ) -> Result<Units, crate::error::Error> {
        let unit_size = unit_size.max(1);
        let meta = Meta {
            dicke_version: crate::VERSION.to_string(),
            task: task.to_string(),
            scenario: self.work.scenario.clone(),
            engine,
            units: items.div_ceil(unit_size) as usize,
            unit_size,
            items,
            item: item.to_string(),
            shard: self.work.shard,
        };
        Units::open(self.dir.join(CHECKPOINT_DIR), meta, self.work)
    }
}

/// A task's units in this run (module doc), opened by [`super::Context::units`].
pub struct Units {
    dir: PathBuf,
    meta: Meta,
    range: Range<usize>,
    present: BTreeSet<usize>,
    /// Units [`Units::put`] wrote in this run.
    fresh: BTreeSet<usize>,
    replay: bool,
    done: Vec<usize>,
    reused: usize,
    interrupted: bool,
}

impl Units {
    /// Open (or check) the checkpoint in `dir` for `meta` under `plan`.
    pub fn open(dir: PathBuf, meta: Meta, plan: &WorkPlan) -> Result<Units, Error> {
        crate::output::create_dir(&dir)?;
        if dir.join(META).exists() {
            let old = Meta::read(&dir)?;
            check_same(&old, &meta, plan.replay)?;
        } else {
            let text = serde_json::to_string_pretty(&meta)
                .map_err(|e| crate::output::checkpoint::corrupt(&dir.join(META), e))?;
            crate::output::write_atomic(&dir.join(META), |w| std::io::Write::write_all(w, text.as_bytes()))?;
        }
        let range = match meta.shard {
            Some(s) => s.units(meta.units),
            None => 0..meta.units,
        };
        if let (Some(s), true) = (meta.shard, range.is_empty()) {
            return Err(InputError::invalid(
                "--shard",
                format!("{}/{}", s.index, s.count),
                format!(
                    "a shard with work: this run has {} unit(s) of {} {} (use at most {} shards)",
                    meta.units, meta.unit_size, meta.item, meta.units
                ),
            )
            .into());
        }
        Ok(Units {
            present: present_units(&dir),
            fresh: BTreeSet::new(),
            dir,
            meta,
            range,
            replay: plan.replay,
            done: Vec::new(),
            reused: 0,
            interrupted: false,
        })
    }

    /// The units this run covers (its shard's, or all).
    pub fn range(&self) -> Range<usize> {
        self.range.clone()
    }

    /// The item range `[start, end)` of unit `u`.
    pub fn items(&self, u: usize) -> Range<u64> {
        let s = self.meta.unit_size;
        u as u64 * s..((u as u64 + 1) * s).min(self.meta.items)
    }

    /// Is unit `u` in the checkpoint already?
    pub fn has(&self, u: usize) -> bool {
        self.present.contains(&u)
    }

    /// The units of this run not in the checkpoint yet (what a batch backend computes at once).
    pub fn missing(&self) -> Vec<usize> {
        self.range().filter(|u| !self.has(*u)).collect()
    }

    /// Do this run's files hold the whole run (no shard, no interrupt)? Figures are drawn
    /// only then: a shard's or an interrupted run's are drawn by the merge or the resume.
    pub fn whole(&self) -> bool {
        self.meta.shard.is_none() && !self.interrupted
    }

    /// Write unit `u`'s payload, computed ahead of [`Units::run`] (a batch backend computes
    /// all missing units at once), so that an interrupt after the batch keeps it; `run` then
    /// reads it back as a unit of this run (not counted as reused).
    pub fn put(&mut self, u: usize, payload: &[u8]) -> Result<(), Error> {
        write_unit(&self.dir.join(unit_file(u)), payload)?;
        self.present.insert(u);
        self.fresh.insert(u);
        Ok(())
    }

    /// Should the loop stop before the next unit? (An interrupt was requested.)
    pub fn stop(&mut self) -> bool {
        if crate::interrupt::requested() {
            self.interrupted = true;
        }
        self.interrupted
    }

    /// Unit `u`'s payload: read back from the checkpoint, else `compute`d and written there.
    /// A merge never computes (a missing unit is an error).
    pub fn get(
        &mut self,
        u: usize,
        compute: impl FnOnce() -> Result<Vec<u8>, Error>,
    ) -> Result<Vec<u8>, Error> {
        let path = self.dir.join(unit_file(u));
        if self.present.contains(&u) {
            let bytes = read_unit(&path)?;
            if !self.fresh.remove(&u) {
                self.reused += 1;
            }
            self.done.push(u);
            return Ok(bytes);
        }
        if self.replay {
            return Err(Error::Merge(format!(
                "unit {u} ({} {:?}) is in none of the shards",
                self.meta.item,
                self.items(u)
            )));
        }
        let payload = compute()?;
        write_unit(&path, &payload)?;
        self.present.insert(u);
        self.done.push(u);
        Ok(payload)
    }

    /// What the run's files hold.
    pub fn coverage(&self) -> Coverage {
        let mut done = self.done.clone();
        done.sort_unstable();
        Coverage {
            item: self.meta.item.clone(),
            total: self.meta.items,
            done: self.meta.item_ranges(done.iter().copied()),
            units: self.meta.units,
            unit_size: self.meta.unit_size,
            units_done: done.len(),
            units_reused: self.reused,
            shard: self.meta.shard,
            interrupted: self.interrupted,
        }
    }

    /// Drive the units of this run in order: `consume(u, payload)` for each, the payload read
    /// back or computed by `compute(u)`; stops early at an interrupt. Progress counts items.
    pub fn run(
        &mut self,
        progress: &mut dyn Progress,
        what: &str,
        mut compute: impl FnMut(usize) -> Result<Vec<u8>, Error>,
        mut consume: impl FnMut(usize, Vec<u8>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let range = self.range();
        let span = self.items(range.start).start..self.items(range.end.max(1) - 1).end;
        progress.start(span.end.saturating_sub(span.start), what);
        for u in range {
            if !self.has(u) && self.stop() {
                break;
            }
            let payload = match self.get(u, || compute(u)) {
                Ok(p) => p,
                // An integrator stopped mid-unit by the interrupt: the unit is not finished.
                Err(e) if is_interrupt(&e) => {
                    self.interrupted = true;
                    break;
                }
                Err(e) => return Err(e),
            };
            consume(u, payload)?;
            progress.set(self.items(u).end - span.start);
        }
        progress.finish();
        Ok(())
    }
}

/// Did an integrator stop at a requested interrupt ([`SolverError::Interrupted`], also as the
/// cause of a scan point's error)?
pub fn is_interrupt(e: &Error) -> bool {
    match e {
        Error::Solver(SolverError::Interrupted { .. }) => true,
        Error::Solver(SolverError::ScanPoint { cause, .. } | SolverError::AtPoint { cause, .. }) => {
            matches!(**cause, SolverError::Interrupted { .. })
        }
        _ => false,
    }
}

/// A resumed or merged checkpoint must be of the same scenario, task and unit layout (and,
/// unless merging, engine and shard).
fn check_same(old: &Meta, new: &Meta, replay: bool) -> Result<(), Error> {
    let mut diffs = Vec::new();
    let mut field = |name: &str, a: String, b: String| {
        if a != b {
            diffs.push(format!("{name}: checkpoint {a}, this run {b}"));
        }
    };
    field("task", old.task.clone(), new.task.clone());
    field("units", old.units.to_string(), new.units.to_string());
    field("unit size", old.unit_size.to_string(), new.unit_size.to_string());
    field("items", old.items.to_string(), new.items.to_string());
    if !replay {
        field("backend/precision", old.engine.clone(), new.engine.clone());
        field("shard", format!("{:?}", old.shard), format!("{:?}", new.shard));
        field(
            "dicke version",
            old.dicke_version.clone(),
            new.dicke_version.clone(),
        );
    }
    if old.scenario != new.scenario {
        diffs.push("the scenario differs".into());
    }
    if diffs.is_empty() {
        return Ok(());
    }
    Err(InputError::invalid(
        "--resume",
        "the checkpoint found",
        format!(
            "a checkpoint of this run; it differs: {} (run without --resume, or with the \
             checkpoint's options)",
            diffs.join("; ")
        ),
    )
    .into())
}

/// Default seconds between two checkpoints of a task that runs whole (an evolution).
pub const DEFAULT_INTERVAL_S: f64 = 60.0;

/// Seconds between two checkpoints of a task that runs whole: `DICKE_CHECKPOINT_INTERVAL_S`
/// (0 = after every save), else [`DEFAULT_INTERVAL_S`].
pub fn interval() -> Result<std::time::Duration, InputError> {
    let Ok(text) = std::env::var("DICKE_CHECKPOINT_INTERVAL_S") else {
        return Ok(std::time::Duration::from_secs_f64(DEFAULT_INTERVAL_S));
    };
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && (0.0..=1e9).contains(&s) => Ok(std::time::Duration::from_secs_f64(s)),
        _ => Err(InputError::invalid(
            "DICKE_CHECKPOINT_INTERVAL_S",
            format!("{text:?}"),
            "seconds between checkpoints, a number from 0 (every save) to 1e9",
        )),
    }
}
