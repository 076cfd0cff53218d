//! Time-dependent model parameters: schedules and the protocol they form.
//!
//! Every schedule is a piecewise-affine function of time, `v(t) = v_k + s_k (t - t_k)` on its
//! piece `[t_k, t_{k+1})`:
//!
//! ```text
//! ramp     = [[t0, v0], [t1, v1], ...]   linear between the knots, held at v0 before t0
//!                                        and at the last value after the last knot
//! steps    = [[t0, v0], [t1, v1], ...]   v_k on [t_k, t_{k+1}), v0 before t0
//! linear   = { start, rate, t0 = 0 }     start + rate (t - t0) for t >= t0, start before
//! triangle = { low, high, period, t0 = 0 }  periodic: low at t0 + k T, high at t0 + (k + 1/2) T
//!                                        (low before t0)
//! ```
//!
//! # Why pieces, not a function of t
//!
//! The integrators land their steps on every break (a kink of a ramp, a jump of a step) and
//! evaluate the right-hand side of a step with the formula of the piece the step lies in
//! ([`Protocol::model_in`]), extended affinely to the step's ends. A step of an adaptive
//! Runge-Kutta method evaluates its last stage at its end point; evaluating there with the
//! next piece's value would put a jump inside one step's error estimate, which the controller
//! answers by shrinking the step towards zero. With pieces, each step sees one smooth (affine)
//! parameter and the method keeps its order across a protocol.
//!
//! A [`Protocol`] is the base model (every parameter's value at the point) with the schedules of
//! some parameters; a protocol without schedules is the constant model, and every solver that
//! takes a protocol runs the constant case exactly as before.

use super::{Model, PARAM_NAMES};
use crate::error::InputError;

/// One parameter's schedule (module doc).
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Piecewise linear through the knots (times strictly increasing), held outside.
    Ramp(Vec<(f64, f64)>),
    /// Piecewise constant: the k-th value from the k-th time on (times strictly increasing).
    Steps(Vec<(f64, f64)>),
    /// `start + rate (t - t0)` from `t0` on, `start` before.
    Linear { start: f64, rate: f64, t0: f64 },
    /// Periodic triangle between `low` and `high` with period `period`, starting at `low` at `t0`.
    Triangle {
        low: f64,
        high: f64,
        period: f64,
        t0: f64,
    },
}

/// Most knots or steps in one schedule, and most breaks of a protocol inside one run (a
/// triangle of a tiny period over a long run would otherwise ask for unbounded work).
pub const MAX_BREAKS: usize = 1_000_000;

impl Schedule {
    /// Check the schedule's own shape (times increasing, period > 0, values finite); errors
    /// name `field` (e.g. `model.w`).
    pub fn validate(&self, field: &str) -> Result<(), InputError> {
        let finite = |what: &str, v: f64| -> Result<(), InputError> {
            if v.is_finite() {
                Ok(())
            } else {
                Err(InputError::invalid(
                    format!("{field}.{what}"),
                    v,
                    "a finite number",
                ))
            }
        };
        match self {
            Schedule::Ramp(k) | Schedule::Steps(k) => {
                let what = if matches!(self, Schedule::Ramp(_)) {
                    "ramp"
                } else {
                    "steps"
                };
                if k.is_empty() || k.len() > MAX_BREAKS {
                    return Err(InputError::invalid(
                        format!("{field}.{what}"),
                        format!("{} entries", k.len()),
                        format!("1 to {MAX_BREAKS} [time, value] pairs"),
                    ));
                }
                for (i, &(t, v)) in k.iter().enumerate() {
                    finite(&format!("{what}[{i}]"), t)?;
                    finite(&format!("{what}[{i}]"), v)?;
                    if i > 0 && t <= k[i - 1].0 {
                        return Err(InputError::invalid(
                            format!("{field}.{what}[{i}]"),
                            t,
                            format!("a time greater than the previous one ({})", k[i - 1].0),
                        ));
                    }
                }
                Ok(())
            }
            Schedule::Linear { start, rate, t0 } => {
                finite("start", *start)?;
                finite("rate", *rate)?;
                finite("t0", *t0)
            }
            Schedule::Triangle {
                low,
                high,
                period,
                t0,
            } => {
                finite("low", *low)?;
                finite("high", *high)?;
                finite("t0", *t0)?;
                if !(period.is_finite() && *period > 0.0) {
                    return Err(InputError::invalid(
                        format!("{field}.period"),
                        period,
                        "a period > 0",
                    ));
                }
                Ok(())
            }
        }
    }

    /// The value at `t` (the piece containing `t`; at a break, the piece that starts there).
    pub fn value(&self, t: f64) -> f64 {
        self.value_in(t, t)
    }

    /// The value at `t` of the affine formula of the piece containing `at` (module doc: the
    /// integrators evaluate a step with the formula of the piece the step lies in).
    pub fn value_in(&self, at: f64, t: f64) -> f64 {
        match self {
            Schedule::Ramp(k) => {
                let i = k.partition_point(|&(tk, _)| tk <= at);
                if i == 0 {
                    k[0].1
                } else if i == k.len() {
                    k[k.len() - 1].1
                } else {
                    let ((t0, v0), (t1, v1)) = (k[i - 1], k[i]);
                    v0 + (v1 - v0) * ((t - t0) / (t1 - t0))
                }
            }
            Schedule::Steps(k) => {
                let i = k.partition_point(|&(tk, _)| tk <= at);
                k[i.saturating_sub(1)].1
            }
            Schedule::Linear { start, rate, t0 } => {
                if at < *t0 {
                    *start
                } else {
                    start + rate * (t - t0)
                }
            }
            Schedule::Triangle {
                low,
                high,
                period,
                t0,
            } => {
                if at < *t0 {
                    return *low;
                }
                let half = 0.5 * period;
                let k = ((at - t0) / half).floor();
                let tk = t0 + k * half;
                let s = (high - low) / half;
                if (k as i64).rem_euclid(2) == 0 {
                    low + s * (t - tk)
                } else {
                    high - s * (t - tk)
                }
            }
        }
    }

    /// The rate dv/dt of the affine formula of the piece containing `at` (0 where the value is
    /// held or stepped): with [`Schedule::value_in`]`(at, at)` it gives the piece as
    /// `v(at) + rate (t - at)`, the form the batched integrators carry
    /// ([`crate::solver::cumulant::pieces`]).
    pub fn rate_in(&self, at: f64) -> f64 {
        match self {
            Schedule::Ramp(k) => {
                let i = k.partition_point(|&(tk, _)| tk <= at);
                if i == 0 || i == k.len() {
                    0.0
                } else {
                    let ((t0, v0), (t1, v1)) = (k[i - 1], k[i]);
                    (v1 - v0) / (t1 - t0)
                }
            }
            Schedule::Steps(_) => 0.0,
            Schedule::Linear { rate, t0, .. } => {
                if at < *t0 {
                    0.0
                } else {
                    *rate
                }
            }
            Schedule::Triangle {
                low,
                high,
                period,
                t0,
            } => {
                if at < *t0 {
                    return 0.0;
                }
                let half = 0.5 * period;
                let k = ((at - t0) / half).floor();
                let s = (high - low) / half;
                if (k as i64).rem_euclid(2) == 0 { s } else { -s }
            }
        }
    }

    /// The breaks (kinks and jumps) strictly inside `(t0, t1)`, increasing; `None` when there
    /// would be more than [`MAX_BREAKS`].
    pub fn breaks(&self, t0: f64, t1: f64) -> Option<Vec<f64>> {
        let inside = |t: f64| t > t0 && t < t1;
        match self {
            Schedule::Ramp(k) | Schedule::Steps(k) => {
                Some(k.iter().map(|&(t, _)| t).filter(|&t| inside(t)).collect())
            }
            Schedule::Linear { t0: s, .. } => Some(if inside(*s) { vec![*s] } else { vec![] }),
            Schedule::Triangle { period, t0: s, .. } => {
                let half = 0.5 * period;
                let first = ((t0 - s) / half).floor().max(0.0);
                let count = ((t1 - s) / half).ceil() - first;
                if count > MAX_BREAKS as f64 {
                    return None;
                }
                let mut v = Vec::new();
                let mut k = first;
                loop {
                    let t = s + k * half;
                    if t >= t1 {
                        break;
                    }
                    if inside(t) {
                        v.push(t);
                    }
                    k += 1.0;
                }
                Some(v)
            }
        }
    }

    /// The smallest and largest value over `[t0, t1]` (an affine piece takes its extrema at
    /// its ends, so the breaks and the ends suffice).
    pub fn range(&self, t0: f64, t1: f64) -> (f64, f64) {
        let mut ts = self.breaks(t0, t1).unwrap_or_default();
        ts.push(t0);
        ts.push(t1);
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for &t in &ts {
            // Both sides of a break: the left limit (previous piece) and the value.
            for v in [self.value_in(t - 0.0, t), self.value_in(prev(t), t)] {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        (lo, hi)
    }
}

/// The largest float below `t` (the previous piece's side of a break).
fn prev(t: f64) -> f64 {
    if t == 0.0 {
        -f64::MIN_POSITIVE
    } else if t > 0.0 {
        f64::from_bits(t.to_bits() - 1)
    } else {
        f64::from_bits(t.to_bits() + 1)
    }
}

/// Parameters that a schedule may drive: every model parameter but N (the Hilbert space).
pub fn schedulable(name: &str) -> bool {
    name != "N" && PARAM_NAMES.contains(&name)
}

/// The base model with the schedules of some of its parameters (module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct Protocol {
    /// Every parameter's value at the point (a scheduled one: its value at t = 0).
    pub base: Model,
    /// (parameter name, schedule), in [`PARAM_NAMES`] order.
    pub schedules: Vec<(&'static str, Schedule)>,
}

impl From<Model> for Protocol {
    fn from(base: Model) -> Self {
        Protocol {
            base,
            schedules: Vec::new(),
        }
    }
}

impl Protocol {
    /// True when no parameter is scheduled.
    pub fn is_constant(&self) -> bool {
        self.schedules.is_empty()
    }

    /// True when no single-atom rate is nonzero at any time: J^2 is conserved (a scheduled
    /// single-atom rate counts as nonzero).
    pub fn is_collective(&self) -> bool {
        self.individual_terms().is_empty()
    }

    /// The single-atom rates that are nonzero or scheduled (for messages and solver choice).
    pub fn individual_terms(&self) -> Vec<&'static str> {
        let mut v = self.base.individual_terms();
        for (name, _) in &self.schedules {
            if matches!(*name, "gamma_down" | "gamma_up" | "gamma_phi") && !v.contains(name) {
                v.push(name);
            }
        }
        v
    }

    /// The scheduled parameters' names, in [`PARAM_NAMES`] order.
    pub fn names(&self) -> Vec<&'static str> {
        self.schedules.iter().map(|(n, _)| *n).collect()
    }

    /// The model at `t` (at a break: the piece that starts there).
    pub fn at(&self, t: f64) -> Model {
        self.model_in(t, t)
    }

    /// The model at `t` with every schedule on the formula of its piece containing `at`.
    pub fn model_in(&self, at: f64, t: f64) -> Model {
        let mut m = self.base;
        for (name, s) in &self.schedules {
            m.set(name, s.value_in(at, t));
        }
        m
    }

    /// The scheduled parameters' rates dv/dt on their pieces containing `at`, in
    /// [`Protocol::names`] order ([`Schedule::rate_in`]).
    pub fn rates_in(&self, at: f64) -> Vec<f64> {
        self.schedules.iter().map(|(_, s)| s.rate_in(at)).collect()
    }

    /// The scheduled parameters' rates on their pieces containing `at` as a model: every
    /// parameter 0 (N too) but the scheduled ones, set to dv/dt. A quantity linear in the
    /// parameters at fixed N has, on that piece, the slope it takes at this model (with the
    /// caller's N where N multiplies parameters).
    pub fn rates_model(&self, at: f64) -> Model {
        let mut m = Model {
            n: 0,
            ..Model::default()
        };
        for (name, r) in self.names().iter().zip(self.rates_in(at)) {
            m.set(name, r);
        }
        m
    }

    /// The union of every schedule's breaks strictly inside `(t0, t1)`, increasing, without
    /// repeats; an error naming the parameter when there are more than [`MAX_BREAKS`].
    pub fn breaks(&self, t0: f64, t1: f64) -> Result<Vec<f64>, InputError> {
        let mut all = Vec::new();
        for (name, s) in &self.schedules {
            let b = s.breaks(t0, t1).filter(|b| b.len() + all.len() <= MAX_BREAKS);
            let Some(b) = b else {
                return Err(InputError::invalid(
                    format!("model.{name}"),
                    "a schedule with more kinks than the run can step onto",
                    format!("at most {MAX_BREAKS} breaks between t = {t0} and {t1} (a longer period)"),
                ));
            };
            all.extend(b);
        }
        all.sort_by(f64::total_cmp);
        all.dedup();
        Ok(all)
    }

    /// Check that every scheduled value over `[t0, t1]` is admissible for its parameter (a
    /// rate stays >= 0): the error names the parameter, the offending value and the time span.
    pub fn check_span(&self, t0: f64, t1: f64) -> Result<(), InputError> {
        for (name, s) in &self.schedules {
            let (lo, hi) = s.range(t0, t1);
            for v in [lo, hi] {
                let mut m = self.base;
                m.set(name, v);
                Model::from_values(m.values()).map_err(|e| {
                    InputError::invalid(
                        format!("model.{name}"),
                        format!("{v} (the schedule's value between t = {t0} and {t1})"),
                        format!("a schedule whose values are admissible: {e}"),
                    )
                })?;
            }
        }
        Ok(())
    }

    /// The scheduled parameters' values at `t`, in [`Protocol::names`] order (the columns
    /// `observables.csv` carries).
    pub fn values_at(&self, t: f64) -> Vec<f64> {
        self.schedules.iter().map(|(_, s)| s.value(t)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramp_is_piecewise_linear_and_held_outside() {
        let s = Schedule::Ramp(vec![(0.0, 0.8), (1.25, 1.2), (2.5, 0.8)]);
        assert_eq!(s.value(-1.0), 0.8);
        assert!((s.value(0.625) - 1.0).abs() < 1e-15);
        assert_eq!(s.value(1.25), 1.2);
        assert!((s.value(1.875) - 1.0).abs() < 1e-15);
        assert_eq!(s.value(9.0), 0.8);
        assert_eq!(s.breaks(0.0, 2.5).unwrap(), vec![1.25]);
        assert_eq!(s.breaks(-1.0, 3.0).unwrap(), vec![0.0, 1.25, 2.5]);
        // The formula of the piece before the kink, extended past it.
        assert!((s.value_in(1.0, 1.5) - 1.28).abs() < 1e-12);
        assert_eq!(s.range(0.0, 2.5), (0.8, 1.2));
    }

    #[test]
    fn steps_triangle_and_linear() {
        let s = Schedule::Steps(vec![(1.0, 2.0), (2.0, 3.0)]);
        assert_eq!(
            (s.value(0.5), s.value(1.0), s.value(1.5), s.value(2.5)),
            (2.0, 2.0, 2.0, 3.0)
        );
        assert_eq!(s.value_in(1.9, 2.0), 2.0);
        let tri = Schedule::Triangle {
            low: 1.0,
            high: 3.0,
            period: 2.0,
            t0: 0.0,
        };
        for (t, v) in [
            (0.0, 1.0),
            (0.5, 2.0),
            (1.0, 3.0),
            (1.5, 2.0),
            (2.0, 1.0),
            (4.5, 2.0),
        ] {
            assert!((tri.value(t) - v).abs() < 1e-14, "t = {t}");
        }
        assert_eq!(tri.breaks(0.0, 3.0).unwrap(), vec![1.0, 2.0]);
        assert_eq!(tri.range(0.2, 2.9), (1.0, 3.0));
        let lin = Schedule::Linear {
            start: 1.0,
            rate: 0.5,
            t0: 1.0,
        };
        assert_eq!((lin.value(0.0), lin.value(3.0)), (1.0, 2.0));
        assert_eq!(lin.range(0.0, 3.0), (1.0, 2.0));
        let many = Schedule::Triangle {
            low: 0.0,
            high: 1.0,
            period: 1e-9,
            t0: 0.0,
        };
        assert!(many.breaks(0.0, 10.0).is_none());
    }

    /// `value_in(at, at) + rate_in(at) (t - at)` is the piece's formula (rounding only).
    #[test]
    fn rate_in_is_the_slope_of_the_piece() {
        let all = [
            Schedule::Ramp(vec![(0.5, 0.8), (1.25, 1.2), (2.5, 0.2)]),
            Schedule::Steps(vec![(1.0, 2.0), (2.0, 3.0)]),
            Schedule::Linear {
                start: 1.0,
                rate: -0.5,
                t0: 1.0,
            },
            Schedule::Triangle {
                low: 1.0,
                high: 3.0,
                period: 2.0,
                t0: 0.25,
            },
        ];
        for s in &all {
            for at in [0.0, 0.6, 1.0, 1.3, 2.0, 2.4, 3.1] {
                for dt in [0.0, 0.01, 0.2] {
                    let t = at + dt;
                    let affine = s.value_in(at, at) + s.rate_in(at) * (t - at);
                    assert!((affine - s.value_in(at, t)).abs() < 1e-14, "{s:?} at {at} t {t}");
                }
            }
        }
        assert_eq!(all[0].rate_in(1.0), (1.2 - 0.8) / (1.25 - 0.5));
        assert_eq!(all[3].rate_in(1.5), -2.0);
    }

    #[test]
    fn protocol_checks_rates_over_the_span() {
        let base = Model {
            n: 4,
            gamma_coll: 1.0,
            ..Model::default()
        };
        let p = Protocol {
            base,
            schedules: vec![(
                "w",
                Schedule::Linear {
                    start: 1.0,
                    rate: -0.5,
                    t0: 0.0,
                },
            )],
        };
        assert!(p.check_span(0.0, 2.0).is_ok());
        let e = p.check_span(0.0, 3.0).unwrap_err().to_string();
        assert!(e.contains("model.w") && e.contains("-0.5"), "{e}");
        assert_eq!(p.at(1.0).pump_coll, 0.5);
        assert_eq!(p.values_at(1.0), vec![0.5]);
    }
}
