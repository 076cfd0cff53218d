//! A resolved pure-state specification of the symmetric irrep j = N/2 (PHYSICS.md sections 2
//! and 8): what a scenario's `[initial]` or `[observables.fidelity]` table names once its
//! numbers are evaluated at a point (`crate::scenario` resolves it and re-exports this type as
//! `scenario::State`), with its range checks against a model and its amplitudes ([`pure`]).
//!
//! It lives in the state layer so that solvers (the mean-field Bloch vector,
//! `solver::meanfield::bloch_vector`) can take one without depending on the scenario parser.

use crate::c64;
use crate::error::InputError;
use crate::model::Model;
use crate::state::pure;

/// A resolved pure state specification (numbers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PureSpec {
    /// |j = N/2, m>.
    Dicke { m: f64 },
    /// Spin coherent state along (sin theta cos phi, sin theta sin phi, cos theta).
    Coherent { theta: f64, phi: f64 },
    /// The coherently radiating spin state (PHYSICS.md sec. 8) for the model's Omega, Gamma.
    Crss,
}

impl PureSpec {
    /// Range checks against `model` (N, Gamma): m in -N/2..N/2 in integer steps, a CRSS needs
    /// Gamma > 0. `field` names the table in errors (`initial`, `observables.fidelity`).
    pub fn check(&self, model: &Model, field: &str) -> Result<(), InputError> {
        let j = model.n as f64 / 2.0;
        match *self {
            PureSpec::Dicke { m } => {
                let k = m + j;
                if k < 0.0 || k > 2.0 * j || k.fract() != 0.0 {
                    return Err(m_out_of_range(field, m, model.n));
                }
            }
            PureSpec::Coherent { .. } => {}
            PureSpec::Crss => check_crss(model, field)?,
        }
        Ok(())
    }

    /// The amplitude vector (length N + 1, index k = m + j) of this state for `model`: N, and
    /// for a CRSS the amplitude b = -i Omega/Gamma. `field` names the table in errors.
    pub fn amplitudes(&self, model: &Model, field: &str) -> Result<Vec<c64>, InputError> {
        let n = model.n;
        match *self {
            PureSpec::Dicke { m } => pure::dicke(n, m).map_err(|_| m_out_of_range(field, m, n)),
            PureSpec::Coherent { theta, phi } => Ok(pure::coherent(n, theta, phi)),
            PureSpec::Crss => {
                check_crss(model, field)?;
                Ok(pure::crss(n, model.drive, model.gamma_coll))
            }
        }
    }
}

/// `{field}.m` outside -N/2..N/2 or off the integer steps.
fn m_out_of_range(field: &str, m: f64, n: usize) -> InputError {
    let j = n as f64 / 2.0;
    InputError::invalid(
        format!("{field}.m"),
        m,
        format!("a value in -N/2..N/2 = {}..{} in integer steps", -j, j),
    )
}

/// A CRSS needs Gamma > 0 (its amplitude is b = -i Omega/Gamma).
fn check_crss(model: &Model, field: &str) -> Result<(), InputError> {
    if model.gamma_coll <= 0.0 {
        return Err(InputError::invalid(
            format!("{field}.state"),
            "\"crss\"",
            "a model with Gamma > 0 (the CRSS amplitude is b = -i Omega/Gamma)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_and_amplitudes_agree_on_range_and_messages() {
        let model = Model {
            n: 4,
            gamma_coll: 1.0,
            drive: 0.5,
            ..Model::default()
        };
        let ok = PureSpec::Dicke { m: -1.0 };
        ok.check(&model, "initial").unwrap();
        assert_eq!(
            ok.amplitudes(&model, "initial").unwrap(),
            pure::dicke(4, -1.0).unwrap()
        );
        for m in [0.5, 3.0, f64::NAN] {
            let s = PureSpec::Dicke { m };
            let e = s.check(&model, "initial").unwrap_err().to_string();
            assert_eq!(e, s.amplitudes(&model, "initial").unwrap_err().to_string());
            assert!(e.contains("initial.m") && e.contains("-2..2"), "{e}");
        }
        let dark = Model {
            gamma_coll: 0.0,
            ..model
        };
        let e = PureSpec::Crss
            .check(&dark, "observables.fidelity")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            PureSpec::Crss
                .amplitudes(&dark, "observables.fidelity")
                .unwrap_err()
                .to_string()
        );
        assert!(
            e.contains("observables.fidelity.state") && e.contains("Gamma > 0"),
            "{e}"
        );
        assert_eq!(
            PureSpec::Crss.amplitudes(&model, "initial").unwrap(),
            pure::crss(4, 0.5, 1.0)
        );
    }
}
