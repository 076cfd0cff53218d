//! The engine model (PHYSICS.md section 1).
//!
//! ```text
//! H = omega0 Jz + Omega (cos phi Jx + sin phi Jy) + chi J+J- + chi_z Jz^2
//! drho/dt = -i[H, rho]
//!         + Gamma D[J-] + w D[J+] + Gamma_phi D[Jz]                               (collective)
//!         + sum_n ( gamma_down D[sigma_n^-] + gamma_up D[sigma_n^+] + gamma_phi D[sigma_n^z] ) (individual)
//! ```
//! with `D[O] rho = O rho O^dag - {O^dag O, rho}/2`, hbar = 1, `J- = sum_n sigma_n^-`.
//!
//! The parameter names in [`PARAM_NAMES`] are the contract used by scenario files, `--set`
//! overrides and output columns.

pub mod schedule;

pub use schedule::{Protocol, Schedule};

use crate::error::InputError;
use serde::Serialize;

/// Names of the model parameters, in the order they are reported.
pub const PARAM_NAMES: [&str; 12] = [
    "N",
    "omega0",
    "Omega",
    "phi",
    "chi",
    "chi_z",
    "Gamma",
    "w",
    "Gamma_phi",
    "gamma_down",
    "gamma_up",
    "gamma_phi",
];

/// Parameters of the engine model. Field names follow PHYSICS.md with Rust casing; the
/// scenario names are in [`PARAM_NAMES`] and [`Model::get`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Model {
    /// Number of atoms N >= 1.
    pub n: usize,
    /// Atomic detuning omega0 (coefficient of Jz).
    pub omega0: f64,
    /// Drive amplitude Omega (coefficient of cos phi Jx + sin phi Jy).
    pub drive: f64,
    /// Drive phase phi.
    pub phi: f64,
    /// Exchange chi (coefficient of J+J-).
    pub chi: f64,
    /// One-axis twisting chi_z (coefficient of Jz^2).
    pub chi_z: f64,
    /// Collective decay Gamma, D[J-].
    pub gamma_coll: f64,
    /// Collective pumping w, D[J+].
    pub pump_coll: f64,
    /// Collective dephasing Gamma_phi, D[Jz].
    pub dephase_coll: f64,
    /// Individual decay gamma_down, D[sigma_n^-].
    pub gamma_down: f64,
    /// Individual pumping gamma_up, D[sigma_n^+].
    pub gamma_up: f64,
    /// Individual dephasing gamma_phi, D[sigma_n^z].
    pub gamma_phi: f64,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            n: 1,
            omega0: 0.0,
            drive: 0.0,
            phi: 0.0,
            chi: 0.0,
            chi_z: 0.0,
            gamma_coll: 0.0,
            pump_coll: 0.0,
            dephase_coll: 0.0,
            gamma_down: 0.0,
            gamma_up: 0.0,
            gamma_phi: 0.0,
        }
    }
}

/// Largest N accepted anywhere (the Dicke ladder has N+1 levels; beyond this even a single
/// state vector is unreasonable and N would not round-trip through f64 expressions exactly).
pub const MAX_N: usize = 10_000_000;

impl Model {
    /// Value of a parameter by its scenario name.
    pub fn get(&self, name: &str) -> Option<f64> {
        Some(match name {
            "N" => self.n as f64,
            "omega0" => self.omega0,
            "Omega" => self.drive,
            "phi" => self.phi,
            "chi" => self.chi,
            "chi_z" => self.chi_z,
            "Gamma" => self.gamma_coll,
            "w" => self.pump_coll,
            "Gamma_phi" => self.dephase_coll,
            "gamma_down" => self.gamma_down,
            "gamma_up" => self.gamma_up,
            "gamma_phi" => self.gamma_phi,
            _ => return None,
        })
    }

    /// Set a parameter by its scenario name (no validation: [`Model::from_values`] checks
    /// values from input; this is for values already checked, e.g. a validated schedule).
    /// Unknown names and N are ignored (N is not time-dependent).
    pub fn set(&mut self, name: &str, v: f64) {
        match name {
            "omega0" => self.omega0 = v,
            "Omega" => self.drive = v,
            "phi" => self.phi = v,
            "chi" => self.chi = v,
            "chi_z" => self.chi_z = v,
            "Gamma" => self.gamma_coll = v,
            "w" => self.pump_coll = v,
            "Gamma_phi" => self.dephase_coll = v,
            "gamma_down" => self.gamma_down = v,
            "gamma_up" => self.gamma_up = v,
            "gamma_phi" => self.gamma_phi = v,
            _ => {}
        }
    }

    /// Build a validated model from (name, value) pairs; missing parameters are 0 (N has no
    /// default and must be given). Every value must be finite, rates >= 0, N a whole number >= 1.
    pub fn from_values<'a>(values: impl IntoIterator<Item = (&'a str, f64)>) -> Result<Model, InputError> {
        let mut m = Model::default();
        let mut have_n = false;
        for (name, v) in values {
            let field = format!("model.{name}");
            if !v.is_finite() {
                return Err(InputError::invalid(field, v, "a finite number"));
            }
            let rate = |v: f64| -> Result<f64, InputError> {
                if v < 0.0 {
                    Err(InputError::invalid(format!("model.{name}"), v, "a rate >= 0"))
                } else {
                    Ok(v)
                }
            };
            match name {
                "N" => {
                    if v < 1.0 || v.fract() != 0.0 || v > MAX_N as f64 {
                        return Err(InputError::invalid(
                            field,
                            v,
                            format!("a whole number of atoms, 1 <= N <= {MAX_N}"),
                        ));
                    }
                    m.n = v as usize;
                    have_n = true;
                }
                "omega0" => m.omega0 = v,
                "Omega" => m.drive = v,
                "phi" => m.phi = v,
                "chi" => m.chi = v,
                "chi_z" => m.chi_z = v,
                "Gamma" => m.gamma_coll = rate(v)?,
                "w" => m.pump_coll = rate(v)?,
                "Gamma_phi" => m.dephase_coll = rate(v)?,
                "gamma_down" => m.gamma_down = rate(v)?,
                "gamma_up" => m.gamma_up = rate(v)?,
                "gamma_phi" => m.gamma_phi = rate(v)?,
                other => {
                    return Err(InputError::invalid(
                        format!("model.{other}"),
                        v,
                        format!("one of the model parameters {}", PARAM_NAMES.join(", ")),
                    ));
                }
            }
        }
        if !have_n {
            return Err(InputError::invalid(
                "model.N",
                "(missing)",
                "the number of atoms N >= 1",
            ));
        }
        Ok(m)
    }

    /// True when every individual (single-atom) rate is zero: J^2 is then conserved and the
    /// state lives in the j = N/2 irrep (N+1 levels).
    pub fn is_collective(&self) -> bool {
        self.gamma_down == 0.0 && self.gamma_up == 0.0 && self.gamma_phi == 0.0
    }

    /// Why the model has no unique steady state, or None when it has one (as far as the rates
    /// tell). Decided from the rates alone, before any solver runs:
    /// - no dissipative rate at all (Gamma, w, Gamma_phi, gamma_down, gamma_up, gamma_phi all
    ///   0): the dynamics is unitary, every eigenstate of H is stationary, and the steady-state
    ///   equation L rho = 0, tr rho = 1 is singular;
    /// - only dephasing (Gamma_phi and/or gamma_phi) without a drive (Omega = 0): dephasing
    ///   and the Jz-diagonal Hamiltonian conserve every population, so any diagonal state is
    ///   stationary. With a drive the steady state of pure dephasing is unique (the maximally
    ///   mixed state: the only operator commuting with Jz (resp. every sigma_z^i) and with the
    ///   drive's nearest-neighbour couplings is the identity), so that case is accepted.
    pub fn no_unique_steady_state(&self) -> Option<&'static str> {
        let relaxing =
            self.gamma_coll > 0.0 || self.pump_coll > 0.0 || self.gamma_down > 0.0 || self.gamma_up > 0.0;
        let dephasing = self.dephase_coll > 0.0 || self.gamma_phi > 0.0;
        if relaxing {
            None
        } else if !dephasing {
            Some(
                "no dissipation (Gamma, w, Gamma_phi, gamma_down, gamma_up and gamma_phi are all 0):                  the dynamics is unitary, so a steady state is not unique (every eigenstate of H is                  stationary); add a dissipative rate > 0, or use kind = \"evolve\"",
            )
        } else if self.drive == 0.0 {
            Some(
                "only dephasing (Gamma_phi / gamma_phi) and no drive (Omega = 0): every population is                  conserved, so the steady state is not unique; add a decay or pump rate, or a drive",
            )
        } else {
            None
        }
    }

    /// The names of the individual rates that are nonzero (for error messages).
    pub fn individual_terms(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.gamma_down != 0.0 {
            v.push("gamma_down");
        }
        if self.gamma_up != 0.0 {
            v.push("gamma_up");
        }
        if self.gamma_phi != 0.0 {
            v.push("gamma_phi");
        }
        v
    }

    /// All parameters as (name, value) in [`PARAM_NAMES`] order.
    pub fn values(&self) -> Vec<(&'static str, f64)> {
        PARAM_NAMES
            .iter()
            .map(|&n| (n, self.get(n).unwrap_or(f64::NAN)))
            .collect()
    }
}
