//! A request to stop, raised by SIGINT/SIGTERM (installed by the CLI) and read by the
//! long-running loops: the task layer between units of work (a chunk of trajectories or sweep
//! points, a scan point), the adaptive integrator between steps. A loop that sees the request
//! finishes the unit in hand and stops; the run is then written as `interrupted`
//! ([`crate::task::checkpoint`]). The library never installs a handler itself.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Ask every running loop to stop at its next unit boundary.
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Has a stop been requested?
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// Clear the request (a program that runs several scenarios, tests).
pub fn clear() {
    REQUESTED.store(false, Ordering::SeqCst);
}
