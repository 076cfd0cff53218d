//! Memory refusals: every task estimates what grows with its input and refuses a request
//! over the limit before anything is allocated.

use crate::error::SolverError;
use crate::model::Model;

/// Memory ceiling for a single request, MiB (override with `DICKE_MEMORY_LIMIT_MIB`).
pub fn memory_limit_mib() -> u64 {
    std::env::var("DICKE_MEMORY_LIMIT_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16 * 1024)
}

/// Refuse `bytes` over the limit, naming `what`.
pub fn refuse_bytes(bytes: f64, what: String) -> Result<(), SolverError> {
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

/// The time evolution of a model: the (N+1)^2 matrix of a collective model (12 copies: the
/// state and the integrator's stages), the blocks otherwise (sum_j (2j+1)^2 elements, 11
/// work vectors).
pub fn refuse_evolution(model: &Model, what: &str) -> Result<(), SolverError> {
    if model.is_collective() {
        let dim = (model.n + 1) as f64;
        refuse_bytes(
            16.0 * dim * dim * 12.0,
            format!("{what} at N = {} ((N+1)^2 complex elements x 12)", model.n),
        )
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
