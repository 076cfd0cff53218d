//! Where an exact evolution starts, as a state: `[initial]`'s pure states as |psi><psi|, and
//! the mixed ones (issue 15), which need the solvers and so are built here rather than in the
//! scenario layer:
//!
//! - `state = "thermal"`, `beta`: rho = exp(-beta Jz)/Z in j = N/2 (seed 004: the steady state
//!   of collective decay and pumping at w/Gamma = e^-beta), computed with the largest weight
//!   factored out so that no exponent overflows;
//! - `state = "steady_state"` with parameter overrides: the exact steady state of the model at
//!   those values ([`super::exact_steady::solve`]: j = N/2, or the blocks R_j with single-atom
//!   rates, the same memory refusals), so a protocol can start where an adiabatic one would be;
//! - `state = { from = "DIR" }`: the final state an earlier run saved in DIR
//!   ([`crate::output::final_state`]; the path relative to the current directory, as `--out`
//!   is, so `from` names what the first run's `--out` named). Its header is checked first (N
//!   equal to the model's, the data file's length), then the memory the numbers need
//!   ([`read_from`]), then the numbers (hash, finite). A density matrix (`manifold`, or
//!   `blocks`) starts the exact solvers: a manifold state is R_{N/2} of a blocks run with every
//!   other block 0 ([`super::evolve::evolve_any`] embeds it, exactly), a blocks state runs on
//!   the blocks even under a collective model. Mean field and cumulants start from the moments
//!   of any kind (a density matrix's are computed, as for `steady_state`). Moments cannot start
//!   an exact evolution (they do not determine the state): refused, naming the method to use.
//!
//! A chained run's time is its own: the saved state is the state at the run's first save time
//! (`t_start`, default 0), whatever `t` the earlier run ended at. To continue a schedule across
//! the split, give the second run `t_start` = the saved `t` (in its final_state.json and
//! result.json) and the same schedule; to restart a protocol, write its schedule from t = 0.

use super::memory;
use super::rows::OwnedState;
use crate::error::{Error, InputError};
use crate::output::final_state::{self, SavedState, Source};
use crate::scenario::{Mixed, Point, Scenario};
use crate::state::DensityMatrix;
use crate::{c64, observe};
use std::path::PathBuf;

/// The field a `from` directory's errors name.
pub const FROM_FIELD: &str = "initial.state.from";

/// The initial state of an exact evolution at point `p`.
pub fn initial_state(sc: &Scenario, p: &Point) -> Result<OwnedState, Error> {
    let mixed = match &sc.initial {
        Some(spec) => p.mixed("initial", spec)?,
        None => None,
    };
    Ok(match mixed {
        None => OwnedState::Sym(DensityMatrix::from_pure(&sc.initial_state(p)?)),
        Some(Mixed::Thermal { beta }) => OwnedState::Sym(thermal(p.model.n, beta)),
        Some(Mixed::SteadyState(model)) => super::exact_steady::solve(&model)?.0,
        Some(Mixed::From { dir }) => match read_from(&dir, p.model.n)? {
            SavedState::Manifold(rho) => OwnedState::Sym(rho),
            SavedState::Blocks(b) => OwnedState::Blocks(b),
            SavedState::Moments(_) => {
                let method = final_state::read_header(&source(&dir), p.model.n)
                    .map(|h| h.method)
                    .unwrap_or_default();
                return Err(source(&dir)
                    .error(format!(
                        "a density matrix (kind \"manifold\" or \"blocks\") to start the exact \
                         method; {} holds kind \"moments\" (of a {method} run), which do not \
                         determine the state: start method = \"cumulant\" or \"meanfield\" from it",
                        final_state::HEADER_FILE
                    ))
                    .into());
            }
        },
    })
}

/// The moments a mixed `[initial]` gives mean field and cumulants (None for a pure one): those
/// of the state (`thermal`, `steady_state`), or of what a `from` directory holds (moments as
/// saved; a density matrix's computed).
pub fn mixed_moments(sc: &Scenario, p: &Point) -> Result<Option<observe::Moments>, Error> {
    let mixed = match &sc.initial {
        Some(spec) => p.mixed("initial", spec)?,
        None => None,
    };
    Ok(match mixed {
        None => None,
        Some(Mixed::From { dir }) => Some(match read_from(&dir, p.model.n)? {
            SavedState::Moments(m) => m,
            SavedState::Manifold(rho) => observe::moments(&rho),
            SavedState::Blocks(b) => observe::moments_blocks(&b),
        }),
        Some(_) => Some(moments(&initial_state(sc, p)?)),
    })
}

fn source(dir: &str) -> Source<'_> {
    Source {
        field: FROM_FIELD,
        dir,
        path: PathBuf::from(dir),
    }
}

/// The final state saved in `dir` for a model of `n` atoms: the header checked, the memory
/// of the numbers refused over the limit (twice the data: the numbers as read and the state
/// built from them), then the numbers ([`final_state`] module doc).
pub fn read_from(dir: &str, n: usize) -> Result<SavedState, Error> {
    let src = source(dir);
    let header = final_state::read_header(&src, n)?;
    memory::refuse_bytes(
        2.0 * header.data_bytes() as f64,
        format!(
            "reading the final state in `{dir}` ({} bytes of kind {})",
            header.data_bytes(),
            header.kind
        ),
    )?;
    Ok(final_state::read_data(&src, &header, n)?)
}

/// result.json's record of a chained start (`results.initial_from`: the directory, its kind,
/// time, method and model); None unless `[initial]` is `{ from = "DIR" }`.
pub fn provenance(sc: &Scenario, p: &Point) -> Result<Option<serde_json::Value>, InputError> {
    let Some(crate::scenario::StateSpec::From { dir }) = &sc.initial else {
        return Ok(None);
    };
    let h = final_state::read_header(&source(dir), p.model.n)?;
    Ok(Some(serde_json::json!({
        "dir": dir,
        "kind": h.kind,
        "t": h.t,
        "method": h.method,
        "model": h.model,
    })))
}

/// exp(-beta Jz)/Z in the Dicke basis (index k <-> m = k - N/2).
pub fn thermal(n: usize, beta: f64) -> DensityMatrix {
    let j = n as f64 / 2.0;
    let expo: Vec<f64> = (0..=n).map(|k| -beta * (k as f64 - j)).collect();
    let top = expo.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = expo.iter().map(|e| (e - top).exp()).collect();
    let z: f64 = w.iter().sum();
    let mut rho = DensityMatrix::zeros(n + 1);
    for (k, wk) in w.iter().enumerate() {
        rho.data[k * (n + 1) + k] = c64::new(wk / z, 0.0);
    }
    rho
}

/// The moments of a state (for the approximate methods' start).
pub fn moments(state: &OwnedState) -> observe::Moments {
    match state {
        OwnedState::Sym(rho) => observe::moments(rho),
        OwnedState::Blocks(s) => observe::moments_blocks(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// <Jz> of exp(-beta Jz)/Z against -d ln Z / d beta, Z = sinh((N+1) beta/2)/sinh(beta/2).
    #[test]
    fn thermal_state_has_the_closed_form_mean() {
        for (n, beta) in [(10usize, 0.3), (100, -0.05), (2000, 2.0)] {
            let rho = thermal(n, beta);
            let jz = observe::moments(&rho).mean[2];
            let (a, b) = ((n as f64 + 1.0) / 2.0, 0.5);
            let want = -(a / (a * beta).tanh() - b / (b * beta).tanh());
            assert!((jz - want).abs() < 1e-10 * n as f64, "N = {n}: {jz} vs {want}");
            assert!((rho.trace().re - 1.0).abs() < 1e-13);
        }
    }
}
