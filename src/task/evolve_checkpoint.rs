//! Checkpoints of an exact evolution (`kind = "evolve"`, [`super::evolve`]): the integrator's
//! [`Resume`] state (time, state vector, step proposal, controller memory, counters) and every
//! row written so far, in `checkpoint/evolve.bin`, replaced atomically at most every
//! [`super::checkpoint::interval`] (`DICKE_CHECKPOINT_INTERVAL_S`, default 60 s) after a save.
//!
//! `--resume` reads it back: the rows are written again (exact f64 bits, so the CSV bytes are
//! the same) and the integrator continues from the saved step ([`crate::solver::ode`],
//! "Checkpoints"), so the resumed run's files equal an uninterrupted run's. The checkpoint's
//! identity (scenario, task) is the run's `checkpoint/meta.json`, checked when it is opened.

use super::checkpoint::{Dec, Enc};
use crate::error::OutputError;
use crate::solver::ode::{Checkpoints, OdeStats, Resume};
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The checkpoint file of an evolution, in the checkpoint directory.
pub const EVOLVE_FILE: &str = "evolve.bin";

/// The rows written so far: observables.csv's, and pm.csv's (empty without P_m).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Written {
    pub rows: Vec<Vec<f64>>,
    pub pm_rows: Vec<Vec<f64>>,
}

/// The hooks the integrator calls (module doc).
pub struct EvolveCheckpoint {
    path: PathBuf,
    every: Duration,
    last: Instant,
    written: Rc<RefCell<Written>>,
    resume: Option<Resume>,
    /// The first write error (reported by the task after the integration).
    error: Rc<RefCell<Option<OutputError>>>,
}

impl EvolveCheckpoint {
    /// Hooks writing to `path`, sharing the rows in `written`, resuming from `resume`.
    /// Write errors go to `error` (the first one is kept).
    pub fn new(
        path: PathBuf,
        every: Duration,
        written: Rc<RefCell<Written>>,
        resume: Option<Resume>,
        error: Rc<RefCell<Option<OutputError>>>,
    ) -> Self {
        EvolveCheckpoint {
            path,
            every,
            last: Instant::now(),
            written,
            resume,
            error,
        }
    }
}

impl Checkpoints for EvolveCheckpoint {
    fn resume(&mut self) -> Option<Resume> {
        self.resume.take()
    }

    fn due(&mut self) -> bool {
        self.last.elapsed() >= self.every
    }

    fn save(&mut self, state: &Resume) {
        let bytes = encode(state, &self.written.borrow());
        let w = crate::output::write_atomic(&self.path, |w| std::io::Write::write_all(w, &bytes));
        if let Err(e) = w {
            self.error.borrow_mut().get_or_insert(e);
        }
        self.last = Instant::now();
    }
}

fn encode(r: &Resume, w: &Written) -> Vec<u8> {
    let mut e = Enc::default();
    e.u64(r.next as u64)
        .f64s(&[r.t, r.h, r.err_old])
        .u64(r.attempts as u64);
    let s = r.stats;
    e.u64(s.steps as u64)
        .u64(s.rejected as u64)
        .u64(s.rhs_evals as u64);
    e.f64s(&r.y);
    for rows in [&w.rows, &w.pm_rows] {
        e.u64(rows.len() as u64);
        for row in rows {
            e.f64s(row);
        }
    }
    e.0
}

/// Read the checkpoint at `path`: the integrator state and the rows written before it.
pub fn read(path: &std::path::Path) -> Result<(Resume, Written), OutputError> {
    let bytes = std::fs::read(path).map_err(|e| crate::output::checkpoint::corrupt(path, e))?;
    let mut d = Dec(&bytes);
    let next = d.u64()? as usize;
    let th = d.f64s()?;
    let [t, h, err_old] = th[..] else {
        return Err(crate::output::checkpoint::corrupt(path, "bad evolve checkpoint"));
    };
    let attempts = d.u64()? as usize;
    let stats = OdeStats {
        steps: d.u64()? as usize,
        rejected: d.u64()? as usize,
        rhs_evals: d.u64()? as usize,
    };
    let y = d.f64s()?;
    let mut lists = [Vec::new(), Vec::new()];
    for list in &mut lists {
        let n = d.u64()? as usize;
        for _ in 0..n.min(bytes.len()) {
            list.push(d.f64s()?);
        }
    }
    let [rows, pm_rows] = lists;
    if rows.len() != next {
        return Err(crate::output::checkpoint::corrupt(
            path,
            "rows and saves disagree",
        ));
    }
    let resume = Resume {
        next,
        t,
        h,
        err_old,
        attempts,
        stats,
        y,
    };
    Ok((resume, Written { rows, pm_rows }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkpoint_round_trips_exactly() {
        let tmp = tempfile::tempdir().unwrap();
        let r = Resume {
            next: 2,
            t: 0.1 + 0.2,
            h: 1e-3 / 3.0,
            err_old: 0.7,
            attempts: 17,
            stats: OdeStats {
                steps: 15,
                rejected: 2,
                rhs_evals: 93,
            },
            y: vec![1.0 / 3.0, -0.0, 5e-310],
        };
        let w = Written {
            rows: vec![vec![0.0, 1.5], vec![0.1, f64::NAN]],
            pm_rows: vec![vec![0.0, 1.0]],
        };
        let path = tmp.path().join(EVOLVE_FILE);
        std::fs::write(&path, encode(&r, &w)).unwrap();
        let (r2, w2) = read(&path).unwrap();
        assert_eq!(
            r2.y.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            r.y.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(
            (r2.next, r2.t, r2.h, r2.err_old, r2.attempts, r2.stats),
            (r.next, r.t, r.h, r.err_old, r.attempts, r.stats)
        );
        assert_eq!(w2.rows[1][1].to_bits(), f64::NAN.to_bits());
        assert_eq!(w2.pm_rows, w.pm_rows);
        std::fs::write(&path, &encode(&r, &w)[..40]).unwrap();
        assert!(read(&path).is_err());
    }
}
