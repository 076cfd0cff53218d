//! Where an exact evolution starts, as a state: `[initial]`'s pure states as |psi><psi|, and
//! the mixed ones (issue 15), which need the solvers and so are built here rather than in the
//! scenario layer:
//!
//! - `state = "thermal"`, `beta`: rho = exp(-beta Jz)/Z in j = N/2 (seed 004: the steady state
//!   of collective decay and pumping at w/Gamma = e^-beta), computed with the largest weight
//!   factored out so that no exponent overflows;
//! - `state = "steady_state"` with parameter overrides: the exact steady state of the model at
//!   those values ([`super::exact_steady::solve`]: j = N/2, or the blocks R_j with single-atom
//!   rates, the same memory refusals), so a protocol can start where an adiabatic one would be.

use super::rows::OwnedState;
use crate::error::Error;
use crate::scenario::{Mixed, Point, Scenario};
use crate::state::DensityMatrix;
use crate::{c64, observe};

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
    })
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
