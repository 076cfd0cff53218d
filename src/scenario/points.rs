//! Evaluating a scenario's definitions at a point: model parameters and variables form one
//! namespace, numbers are taken as written, expressions evaluated in dependency order (unknown
//! names, then cycles, are errors naming the key).

use super::expr::{Expr, Scope};
use super::{CorrelationSpec, FisherSpec, Num, Point, Scenario, Task};
use crate::error::InputError;
use crate::model::{Model, PARAM_NAMES, Protocol, Schedule};
use std::collections::BTreeMap;

/// Definitions on the way to a point: the values known so far and the expressions pending.
type Known = BTreeMap<String, f64>;
type Pending = Vec<(String, Expr)>;

impl Point {
    fn scope(&self) -> Scope {
        let mut s = Scope::new();
        for (k, v) in &self.values {
            s.set(k, *v);
        }
        s
    }

    /// The time-dependent model of this point (constant when nothing is scheduled).
    pub fn protocol(&self) -> Protocol {
        Protocol {
            base: self.model,
            schedules: self.schedules.clone(),
        }
    }

    /// Evaluate a number-or-expression field against this point.
    pub fn eval(&self, field: &str, n: &Num) -> Result<f64, InputError> {
        match n {
            Num::Int(i) => Ok(*i as f64),
            Num::Float(f) => {
                if f.is_finite() {
                    Ok(*f)
                } else {
                    Err(InputError::invalid(field, f, "a finite number"))
                }
            }
            Num::Text(t) => Expr::parse(field, t)?.eval(field, &self.scope()),
        }
    }
}

impl Scenario {
    /// Evaluate every model parameter and variable with the given pinned values (a scan
    /// variable's value), in dependency order.
    pub fn point(&self, pins: &[(&str, f64)]) -> Result<Point, InputError> {
        let (mut known, mut pending) = self.literals(pins)?;
        for (n, v) in pins {
            known.entry(n.to_string()).or_insert(*v);
        }
        // Model parameters not given default to 0 and may be referenced (a scheduled one has
        // no single value: a reference to it is an error of `check_names`).
        for p in PARAM_NAMES {
            if p != "N" && !self.defs.contains_key(p) && !self.schedules.contains_key(p) {
                known.entry(p.to_string()).or_insert(0.0);
            }
        }
        self.check_names(&known, &pending)?;
        self.resolve(&mut known, &mut pending)?;
        let mut point = Point {
            model: Model::default(),
            schedules: Vec::new(),
            values: known,
        };
        point.schedules = self.schedules_at(&point)?;
        // A scheduled parameter's base value: the schedule at t = 0.
        for (name, s) in &point.schedules {
            point.values.insert(name.to_string(), s.value(0.0));
        }
        point.model = Model::from_values(
            PARAM_NAMES
                .iter()
                .filter_map(|p| point.values.get(*p).map(|v| (*p, *v))),
        )?;
        Ok(point)
    }

    /// The schedules of the scheduled parameters at a point whose values are resolved.
    fn schedules_at(&self, p: &Point) -> Result<Vec<(&'static str, Schedule)>, InputError> {
        let mut out = Vec::new();
        for name in PARAM_NAMES {
            if let Some(raw) = self.schedules.get(name) {
                let field = format!("model.{name}");
                for n in raw.numbers() {
                    if let Num::Text(t) = n {
                        let e = Expr::parse(&field, t)?;
                        self.check_expression(&field, &e, &p.values)?;
                    }
                }
                out.push((name, raw.at(&field, p)?));
            }
        }
        Ok(out)
    }

    /// An expression's names are known values (not scheduled parameters, not unknown).
    fn check_expression(&self, field: &str, e: &Expr, known: &Known) -> Result<(), InputError> {
        for id in e.identifiers() {
            if self.schedules.contains_key(&id) || !known.contains_key(&id) {
                return Err(self.name_error(field.to_string(), e, &id));
            }
        }
        Ok(())
    }

    /// The error for an expression that uses `id`, which is unknown or scheduled.
    fn name_error(&self, field: String, e: &Expr, id: &str) -> InputError {
        let message = if self.schedules.contains_key(id) {
            format!(
                "`{id}` is scheduled (a function of time) and has no single value here; \
                 name the number it needs as a variable and use that in both places"
            )
        } else {
            format!(
                "unknown name `{id}` (known: model parameters and variables {})",
                self.variable_names.join(", ")
            )
        };
        InputError::Expression {
            field,
            text: e.text().to_string(),
            message,
        }
    }

    /// The pinned and literal definitions (known), and the parsed expressions (pending).
    fn literals(&self, pins: &[(&str, f64)]) -> Result<(Known, Pending), InputError> {
        let mut known = Known::new();
        let mut pending = Pending::new();
        for (k, v) in &self.defs {
            if let Some((_, pv)) = pins.iter().find(|(n, _)| n == k) {
                known.insert(k.clone(), *pv);
                continue;
            }
            let field = self.field_name(k);
            match v {
                Num::Int(i) => {
                    known.insert(k.clone(), *i as f64);
                }
                Num::Float(f) => {
                    if !f.is_finite() {
                        return Err(InputError::invalid(field, f, "a finite number"));
                    }
                    known.insert(k.clone(), *f);
                }
                Num::Text(t) => {
                    pending.push((k.clone(), Expr::parse(&field, t)?));
                }
            }
        }
        Ok((known, pending))
    }

    /// Unknown names are reported before cycles.
    fn check_names(&self, known: &Known, pending: &Pending) -> Result<(), InputError> {
        for (k, e) in pending {
            for id in e.identifiers() {
                if !known.contains_key(&id) && !pending.iter().any(|(n, _)| *n == id) {
                    return Err(self.name_error(self.field_name(k), e, &id));
                }
            }
        }
        Ok(())
    }

    /// Evaluate the pending expressions in dependency order into `known`.
    fn resolve(&self, known: &mut Known, pending: &mut Pending) -> Result<(), InputError> {
        while !pending.is_empty() {
            let ready = pending
                .iter()
                .position(|(_, e)| e.identifiers().iter().all(|id| known.contains_key(id)));
            let Some(i) = ready else {
                let (k, e) = &pending[0];
                let names: Vec<&str> = pending.iter().map(|(n, _)| n.as_str()).collect();
                return Err(InputError::Expression {
                    field: self.field_name(k),
                    text: e.text().to_string(),
                    message: format!("circular definitions among {}", names.join(", ")),
                });
            };
            let (k, e) = pending.swap_remove(i);
            let mut scope = Scope::new();
            for (n, v) in known.iter() {
                scope.set(n, *v);
            }
            let v = e.eval(&self.field_name(&k), &scope)?;
            known.insert(k, v);
        }
        Ok(())
    }

    fn field_name(&self, k: &str) -> String {
        if PARAM_NAMES.contains(&k) {
            format!("model.{k}")
        } else {
            format!("variables.{k}")
        }
    }

    /// The points this scenario runs: one per scan value, or the single base point.
    pub fn points(&self) -> Result<Vec<Point>, InputError> {
        match &self.task {
            Task::Scan { variable, values, .. } | Task::FixedPoints { variable, values, .. } => values
                .iter()
                .map(|v| self.point(&[(variable.as_str(), *v)]))
                .collect(),
            Task::Correlation(CorrelationSpec {
                scan: Some((variable, values)),
                ..
            })
            | Task::Fisher(FisherSpec {
                scan: Some((variable, values)),
                ..
            }) => values
                .iter()
                .map(|v| self.point(&[(variable.as_str(), *v)]))
                .collect(),
            _ => Ok(vec![self.point(&[])?]),
        }
    }

    /// For a scan: the model parameters whose value changes across the scan (in
    /// PARAM_NAMES order), written as columns after the scanned variable.
    pub fn varying_parameters(&self) -> Result<Vec<&'static str>, InputError> {
        let pts = self.points()?;
        Ok(PARAM_NAMES
            .iter()
            .copied()
            .filter(|p| {
                let first = pts[0].model.get(p);
                pts.iter().any(|q| q.model.get(p) != first)
            })
            .collect())
    }
}
