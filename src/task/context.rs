//! What a task runs with: the directory it writes into, the backend the user asked for (and a
//! GPU context the caller may already hold), and a progress hook. The library reports progress
//! through [`Progress`] and never prints; the CLI draws it.
//!
//! # Output directories are transactions
//!
//! A task never writes into the output directory `DIR` itself: [`Context::dir`] is the run's
//! staging directory `DIR/.dicke-staging-<pid>/` ([`crate::output::transaction`]), and every
//! file goes there through [`Context::path`] (or a path joined to `ctx.dir`). `run::execute`:
//!
//! 1. **Lock.** `DIR/.dicke.lock` is created exclusively (`create_new`; it holds the pid, host
//!    and start time). A second run into `DIR` is refused with an error naming the first (pid,
//!    host, start time) and the lock path, so two runs never interleave rows in one file. The
//!    lock is removed when the run ends, however it ends (a drop guard). A lock whose pid does
//!    not exist on this host (`/proc/<pid>`) is taken over, and the run says so; a lock from
//!    another host, or unreadable, is never taken over (remove it by hand if that run is gone).
//! 2. **Stage.** CSV rows are flushed as they finish, into the staging directory: a killed run's
//!    finished rows survive there, and the next run into `DIR` moves such a leftover staging
//!    directory to `DIR/failed-<time>-<pid>/` and says so.
//! 3. **Commit** (success). result.json (`status` "complete") is written into the staging
//!    directory; then the previous run's `DIR/result.json` is removed, the files it listed in
//!    `files` that this run did not write are removed (no file of another scenario is left to
//!    be read as this run's; other files in `DIR` are left alone), every staged file is renamed
//!    into `DIR` (atomic within a filesystem) and result.json last. `DIR` holds a result.json
//!    only when every file it lists is this run's.
//! 4. **Fail** (an error). `DIR` is left exactly as it was (an earlier complete run stays
//!    complete). If the run wrote anything, a result.json with `status` "failed" and the error
//!    is written beside its partial files and the staging directory is renamed
//!    `DIR/failed-<time>-<pid>/`; the error says where ([`crate::error::Error::Failed`]). A run
//!    refused before it wrote anything leaves nothing (and no `DIR` if it created it).
//!
//! result.json is always written atomically (temporary file, fsync, rename:
//! [`crate::output::write_atomic`]).

use crate::backend::BackendChoice;
use crate::backend::SharedGpu;
use std::path::Path;

/// Progress reporting hook (the CLI draws an indicatif bar).
pub trait Progress {
    fn start(&mut self, total: u64, what: &str);
    fn set(&mut self, done: u64);
    fn finish(&mut self);
    /// One line of what the run will cost (work, memory), before it starts
    /// ([`super::estimate`]); the CLI prints it. Ignored by default.
    fn estimate(&mut self, _text: &str) {}
}

/// A [`Progress`] that does nothing (tests, library use).
pub struct NoProgress;
impl Progress for NoProgress {
    fn start(&mut self, _: u64, _: &str) {}
    fn set(&mut self, _: u64) {}
    fn finish(&mut self) {}
}

/// A task's run context.
pub struct Context<'a> {
    /// The directory the task writes into: the run's staging directory inside the output
    /// directory (module doc), created by the first [`Context::path`].
    pub dir: &'a Path,
    /// `--backend` as given; a task resolves it with [`super::policy::resolve`].
    pub backend: BackendChoice,
    /// A GPU context the caller already holds (tests share one per binary), used wherever the
    /// policy would create one.
    pub gpu: SharedGpu,
    pub progress: &'a mut dyn Progress,
}

impl Context<'_> {
    /// The path of output file `name` in the staging directory, creating it on first use (a
    /// task refused before it writes anything leaves nothing behind).
    pub fn path(&self, name: &str) -> Result<std::path::PathBuf, crate::error::OutputError> {
        crate::output::create_dir(self.dir)?;
        Ok(self.dir.join(name))
    }
}
