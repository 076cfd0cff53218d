//! What a task runs with: the output directory, the backend the user asked for (and a GPU
//! context the caller may already hold), and a progress hook. The library reports progress
//! through [`Progress`] and never prints; the CLI draws it.

use crate::backend::BackendChoice;
use crate::backend::SharedGpu;
use std::path::Path;

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

/// A task's run context.
pub struct Context<'a> {
    /// The output directory (created by the dispatcher before the task runs).
    pub dir: &'a Path,
    /// `--backend` as given; a task resolves it with [`super::policy::resolve`].
    pub backend: BackendChoice,
    /// A GPU context the caller already holds (tests share one per binary), used wherever the
    /// policy would create one.
    pub gpu: SharedGpu,
    pub progress: &'a mut dyn Progress,
}

impl Context<'_> {
    /// The path of output file `name`, creating the output directory on first use (a task
    /// refused before it writes anything leaves no directory behind).
    pub fn path(&self, name: &str) -> Result<std::path::PathBuf, crate::error::OutputError> {
        crate::output::create_dir(self.dir)?;
        Ok(self.dir.join(name))
    }
}
