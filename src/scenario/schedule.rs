//! `[model]` schedules as written: `w = { ramp = [[0.0, 0.8], [1.25, 1.2]] }` and the other
//! forms of [`crate::model::schedule`], with every number a [`Num`] (so `"2*Gamma"` and
//! variables work, evaluated at each point), into a [`Schedule`] at a point.
//!
//! A model parameter is either a number/expression or one table with exactly one of the keys
//! `ramp`, `steps`, `linear`, `triangle` ([`ParamDef`]). Other definitions may not refer to a
//! scheduled parameter (it has no single value); they are checked in `points.rs`.

use super::{Num, Point};
use crate::error::InputError;
use crate::model::Schedule;
use serde::Deserialize;

/// A `[model]` entry: a value or a schedule.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamDef {
    Value(Num),
    Schedule(RawSchedule),
}

impl<'de> Deserialize<'de> for ParamDef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ParamDef, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ParamDef;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a number or an expression string (e.g. 0.5 or \"N/2\"), or a schedule table \
                     ({ ramp = [[t, v], ...] }, { steps = [[t, v], ...] }, \
                     { linear = { start, rate } }, { triangle = { low, high, period } })",
                )
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ParamDef, E> {
                Ok(ParamDef::Value(Num::Int(v)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ParamDef, E> {
                Ok(ParamDef::Value(
                    i64::try_from(v).map(Num::Int).unwrap_or(Num::Float(v as f64)),
                ))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<ParamDef, E> {
                Ok(ParamDef::Value(Num::Float(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ParamDef, E> {
                Ok(ParamDef::Value(Num::Text(v.to_string())))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<ParamDef, A::Error> {
                RawSchedule::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(ParamDef::Schedule)
            }
        }
        d.deserialize_any(V)
    }
}

/// A schedule table as written (exactly one key).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    ramp: Option<Vec<Vec<Num>>>,
    steps: Option<Vec<Vec<Num>>>,
    linear: Option<RawLinear>,
    triangle: Option<RawTriangle>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLinear {
    start: Num,
    rate: Num,
    t0: Option<Num>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTriangle {
    low: Num,
    high: Num,
    period: Num,
    t0: Option<Num>,
}

impl RawSchedule {
    /// The names the schedule's expressions use (checked against the known names).
    pub fn numbers(&self) -> Vec<&Num> {
        let mut v: Vec<&Num> = Vec::new();
        for k in [&self.ramp, &self.steps].into_iter().flatten() {
            v.extend(k.iter().flatten());
        }
        if let Some(l) = &self.linear {
            v.extend([&l.start, &l.rate]);
            v.extend(&l.t0);
        }
        if let Some(t) = &self.triangle {
            v.extend([&t.low, &t.high, &t.period]);
            v.extend(&t.t0);
        }
        v
    }

    /// The schedule at point `p`, validated; errors name `field` (`model.w`) and the entry.
    pub fn at(&self, field: &str, p: &Point) -> Result<Schedule, InputError> {
        let given = [
            self.ramp.is_some(),
            self.steps.is_some(),
            self.linear.is_some(),
            self.triangle.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(InputError::invalid(
                field,
                "a table with none or several of ramp, steps, linear, triangle",
                "exactly one of ramp = [[t, v], ...], steps = [[t, v], ...], \
                 linear = { start, rate, t0 }, triangle = { low, high, period, t0 }",
            ));
        }
        let s = if let Some(k) = &self.ramp {
            Schedule::Ramp(pairs(&format!("{field}.ramp"), k, p)?)
        } else if let Some(k) = &self.steps {
            Schedule::Steps(pairs(&format!("{field}.steps"), k, p)?)
        } else if let Some(l) = &self.linear {
            let f = |w: &str, n: &Num| p.eval(&format!("{field}.linear.{w}"), n);
            Schedule::Linear {
                start: f("start", &l.start)?,
                rate: f("rate", &l.rate)?,
                t0: l.t0.as_ref().map(|n| f("t0", n)).transpose()?.unwrap_or(0.0),
            }
        } else {
            let t = self.triangle.as_ref().expect("one key is given (checked above)");
            let f = |w: &str, n: &Num| p.eval(&format!("{field}.triangle.{w}"), n);
            Schedule::Triangle {
                low: f("low", &t.low)?,
                high: f("high", &t.high)?,
                period: f("period", &t.period)?,
                t0: t.t0.as_ref().map(|n| f("t0", n)).transpose()?.unwrap_or(0.0),
            }
        };
        s.validate(field)?;
        Ok(s)
    }
}

/// `[[t, v], ...]` at a point: each entry exactly two numbers.
fn pairs(field: &str, k: &[Vec<Num>], p: &Point) -> Result<Vec<(f64, f64)>, InputError> {
    k.iter()
        .enumerate()
        .map(|(i, e)| {
            let f = format!("{field}[{i}]");
            match e.as_slice() {
                [t, v] => Ok((p.eval(&f, t)?, p.eval(&f, v)?)),
                _ => Err(InputError::invalid(
                    f,
                    format!("{} numbers", e.len()),
                    "a [time, value] pair",
                )),
            }
        })
        .collect()
}
