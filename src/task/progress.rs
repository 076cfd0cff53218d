//! The progress hook of the task layer: the library reports progress through [`Progress`] and
//! never prints; the CLI draws it. (Its own module so that [`super::context`] and
//! [`super::checkpoint`], which both use it, do not import each other.)

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
