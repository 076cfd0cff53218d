//! A point's time-dependent protocol ([`crate::model::schedule`]) as the batched integrators
//! carry it: pieces of the flat parameter array of [`super::params`], each affine in time.
//!
//! # Form
//!
//! The protocol's breaks inside the save grid's span `(t0, t_end)` cut it into pieces
//! `[s_k, s_{k+1})` (`s_0 = t0`). On piece k every flat parameter is
//!
//! ```text
//! par_j(t) = p0_j + p1_j tau,   tau = t - s_k,
//! p0 = params(protocol.at(s_k)),  p1 = params(m'),  m' = the piece's rates dv/dt, phi as at s_k
//! ```
//!
//! `params` is linear in every model parameter but N and phi (`Omega cos phi`,
//! `Omega sin phi`, the rest one to one), so `p1` is `params` of the rates with N = 0 and the
//! drive phase of the point: exact for every schedulable parameter except phi, whose cos and
//! sin are not affine in t. A scheduled phi is refused here (the WGSL twin has no f64 cos/sin;
//! `kind = "evolve"` with method cumulant honours it). The stage times of a Dormand-Prince step
//! from t with step h are `tau = (t - s_k) + c_i h`; a step never crosses a break (the step
//! control lands on each, [`super::batch`]), and its last stages at `tau = t + h - s_k` use
//! this piece's formula (module doc of [`crate::model::schedule`]: why pieces). The single
//! point integrator [`super::evolve_protocol`] evaluates `params(protocol.model_in(at, t))`
//! instead: the same affine functions rounded in another order, so the two agree to rounding
//! (`tests/cumulant.rs`).

use super::{NPAR, params};
use crate::error::InputError;
use crate::model::{Model, Protocol};

/// Scheduled parameters the pieces cannot carry (module doc).
pub const NOT_AFFINE: [&str; 1] = ["phi"];

/// Breaks and save times closer than this (relative to the span and the clock) count as one
/// time: four times the integrators' step-size floor `16 eps max(|t|, span)`, so that no step
/// is ever asked to cover the rounding gap between a break and a save (`0.6` against
/// `3 * 0.2`) or between two breaks (`1.2` against a triangle's `3 * 0.4`).
pub fn snap(t0: f64, t_end: f64) -> f64 {
    64.0 * f64::EPSILON * t0.abs().max(t_end.abs()).max(t_end - t0)
}

/// One point's protocol on a span as affine pieces of the flat parameters (module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct Pieces {
    /// Start of each piece: `starts[0] = t0`, then the breaks inside `(t0, t_end)`, increasing.
    pub starts: Vec<f64>,
    /// The flat parameters at each piece's start.
    pub p0: Vec<[f64; NPAR]>,
    /// Their rates d/dt on each piece.
    pub p1: Vec<[f64; NPAR]>,
}

impl Pieces {
    /// The pieces of `protocol` on `[t0, t_end]`. Errors (naming the parameter): a scheduled
    /// phi ([`NOT_AFFINE`]), too many breaks, or a value that is not admissible over the span.
    pub fn new(protocol: &Protocol, t0: f64, t_end: f64) -> Result<Pieces, InputError> {
        if let Some(name) = protocol.names().into_iter().find(|n| NOT_AFFINE.contains(n)) {
            return Err(InputError::invalid(
                format!("model.{name}"),
                "(a schedule)",
                "a number for kind = \"sweep\": the batched integrators carry each piece of a \
                 protocol as affine functions of time and phi enters through cos phi and sin phi; \
                 schedule phi in kind = \"evolve\" (method cumulant) or a scan with mode = \"evolve\"",
            ));
        }
        protocol.check_span(t0, t_end)?;
        // (start, the time whose piece formula applies): breaks within `snap` of the previous
        // start (or of t_end) merge into it, with the later piece's formula.
        let gap = snap(t0, t_end);
        let mut cuts: Vec<(f64, f64)> = vec![(t0, t0)];
        for b in protocol.breaks(t0, t_end)? {
            let last = cuts.len() - 1;
            if b - cuts[last].0 <= gap {
                cuts[last].1 = b;
            } else if t_end - b > gap {
                cuts.push((b, b));
            }
        }
        let mut pc = Pieces {
            starts: Vec::with_capacity(cuts.len()),
            p0: Vec::with_capacity(cuts.len()),
            p1: Vec::with_capacity(cuts.len()),
        };
        for &(s, at) in &cuts {
            let rates = Model {
                phi: protocol.base.phi,
                ..protocol.rates_model(at)
            };
            pc.p0.push(params(&protocol.model_in(at, s)));
            pc.p1.push(params(&rates));
            pc.starts.push(s);
        }
        Ok(pc)
    }

    /// The constant parameters `par` from `t0` on: one piece, no rate.
    pub fn constant(par: [f64; NPAR], t0: f64) -> Pieces {
        Pieces {
            starts: vec![t0],
            p0: vec![par],
            p1: vec![[0.0; NPAR]],
        }
    }

    /// The breaks: the starts after the first.
    pub fn breaks(&self) -> &[f64] {
        &self.starts[1..]
    }

    /// The flat parameters on piece `k` at `tau` after its start: `p0 + p1 tau`.
    pub fn at(&self, k: usize, tau: f64) -> [f64; NPAR] {
        std::array::from_fn(|j| self.p0[k][j] + self.p1[k][j] * tau)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Schedule;

    fn protocol(schedules: Vec<(&'static str, Schedule)>) -> Protocol {
        Protocol {
            base: Model {
                n: 10,
                drive: 2.0,
                phi: 0.3,
                gamma_coll: 1.0,
                chi: 0.5,
                ..Model::default()
            },
            schedules,
        }
    }

    /// The pieces evaluate to `params(protocol.model_in(at, t))` on every piece, at points
    /// inside and at the end of each (rounding of O(1) parameters: 1e-14).
    #[test]
    fn pieces_equal_the_protocol() {
        let p = protocol(vec![
            ("Omega", Schedule::Ramp(vec![(0.0, 2.0), (1.0, 3.0), (1.5, 1.0)])),
            ("chi", Schedule::Steps(vec![(0.0, 0.5), (0.7, -0.25)])),
            (
                "Gamma",
                Schedule::Triangle {
                    low: 0.5,
                    high: 1.5,
                    period: 1.0,
                    t0: 0.0,
                },
            ),
        ]);
        let pc = Pieces::new(&p, 0.0, 2.0).unwrap();
        // The triangle's kinks at 1.0 and 1.5 coincide with the ramp's: one break each.
        assert_eq!(pc.starts, vec![0.0, 0.5, 0.7, 1.0, 1.5]);
        for k in 0..pc.starts.len() {
            let s = pc.starts[k];
            let e = pc.starts.get(k + 1).copied().unwrap_or(2.0);
            for f in [0.0, 0.3, 1.0] {
                let t = s + f * (e - s);
                let want = params(&p.model_in(s, t));
                let got = pc.at(k, t - s);
                for j in 0..NPAR {
                    assert!((want[j] - got[j]).abs() < 1e-14, "piece {k} t {t} par {j}");
                }
            }
        }
        // Breaks within rounding of each other merge (the later piece's formula from the
        // earlier start); so do breaks within rounding of t0 and t_end.
        let close = protocol(vec![
            ("chi", Schedule::Steps(vec![(0.0, 0.5), (1.2, 0.7)])),
            ("Gamma", Schedule::Steps(vec![(0.0, 1.0), (3.0 * 0.4, 2.0)])),
            ("w", Schedule::Steps(vec![(0.0, 0.0), (1e-17, 0.1)])),
        ]);
        assert_eq!(3.0 * 0.4, 1.2000000000000002);
        let m = Pieces::new(&close, 0.0, 2.0).unwrap();
        assert_eq!(m.starts, vec![0.0, 1.2]);
        assert_eq!((m.p0[0][7], m.p0[1][4], m.p0[1][6]), (0.1, 0.7, 2.0));
        let end = Pieces::new(&close, 0.0, 1.2 + 1e-15).unwrap();
        assert_eq!(end.starts, vec![0.0]);
        // A constant protocol: one piece, no rate.
        let c = Pieces::new(&protocol(vec![]), 0.0, 2.0).unwrap();
        assert_eq!((c.starts.len(), c.p1[0]), (1, [0.0; NPAR]));
        assert_eq!(c.at(0, 1.3), params(&protocol(vec![]).base));
    }

    #[test]
    fn phi_and_bad_values_are_refused_by_name() {
        let phi = protocol(vec![("phi", Schedule::Steps(vec![(1.0, 0.2)]))]);
        let e = Pieces::new(&phi, 0.0, 2.0).unwrap_err().to_string();
        assert!(e.contains("model.phi"), "{e}");
        let neg = protocol(vec![(
            "Gamma",
            Schedule::Linear {
                start: 1.0,
                rate: -1.0,
                t0: 0.0,
            },
        )]);
        let e = Pieces::new(&neg, 0.0, 2.0).unwrap_err().to_string();
        assert!(e.contains("model.Gamma"), "{e}");
    }
}
