//! The exact steady state of one model, as the tasks need it: the j = N/2 solver for
//! collective-only models, the blocks R_j (memory estimated and refused before the
//! factorisation) with single-atom rates. Shared by `kind = "steady_state"` and by the
//! `[initial] state = "steady_state"` start ([`super::initial`]), which is why it is a module
//! of its own (below both).

use super::memory;
use super::rows::OwnedState;
use crate::error::Error;
use crate::model::Model;
use crate::solver::{blocks, master};

/// The steady state of one model and its solver statistics.
pub fn solve(model: &Model) -> Result<(OwnedState, serde_json::Value), Error> {
    if model.is_collective() {
        let (rho, st) = master::steady_state(model)?;
        return Ok((OwnedState::Sym(rho), serde_json::to_value(st).unwrap_or_default()));
    }
    memory::refuse_bytes(
        blocks::steady_state_memory_estimate(model),
        format!(
            "block steady state at N = {} (sparse LU, estimated fill included)",
            model.n
        ),
    )?;
    let (s, st) = blocks::steady_state(model)?;
    Ok((
        OwnedState::Blocks(s),
        serde_json::to_value(st).unwrap_or_default(),
    ))
}
