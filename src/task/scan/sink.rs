//! A scan of evolutions as its two paths share it: the job ([`Job`]: scenario, points, time
//! grid; [`Job::record`] turns a point's saved states into its unit, [`PointUnit`]) and the
//! output files fed one point's unit at a time ([`Sink`]: `observables.csv` at the final time,
//! `scan_evolution.csv` at every save, `pm.csv`, the last point's final state for a Husimi
//! grid). The CPU path ([`super::evolve`]) and the GPU path ([`super::evolve_gpu`]) record and
//! write the same way, and a unit read back from a checkpoint is written as a computed one, so
//! the files depend neither on the backend nor on interrupts, resumes, shards and merges.

use super::unit::PointUnit;
use crate::c64;
use crate::error::{Error, InputError, SolverError};
use crate::output::CsvWriter;
use crate::output::checkpoint::corrupt;
use crate::scenario::{EvolveSpec, Point, Scenario};
use crate::task::checkpoint::CHECKPOINT_DIR;
use crate::task::context::Context;
use crate::task::report::jnum;
use crate::task::rows::{self, StateRef, Table};
use serde_json::Value;

/// The long-format file of a scan of evolutions: `<variable>, t, <observables>` per point and
/// save time.
pub const SCAN_EVOLUTION_CSV: &str = "scan_evolution.csv";

/// Observable columns that need more of rho than its central band |c - r| <= 2.
pub const FULL_MATRIX_COLUMNS: [&str; 3] = ["purity", "lambda_max", "fidelity"];

/// A scan of evolutions: the scenario, its points and the evolution spec.
pub struct Job<'a> {
    pub sc: &'a Scenario,
    pub points: &'a [Point],
    pub variable: &'a str,
    pub spec: &'a EvolveSpec,
}

impl Job<'_> {
    pub fn initial_state(&self, p: &Point) -> Result<Vec<c64>, InputError> {
        self.sc.initial_state(p)
    }

    fn value(&self, p: &Point) -> f64 {
        p.values.get(self.variable).copied().unwrap_or(f64::NAN)
    }

    /// The error of point `index`, named by its index and value.
    pub fn point_error(&self, index: usize, cause: SolverError, others: String) -> Error {
        SolverError::ScanPoint {
            index,
            variable: self.variable.to_string(),
            value: self.value(&self.points[index]),
            cause: Box::new(cause),
            others,
        }
        .into()
    }

    /// One point's statistics in result.json, led by its scan value.
    pub fn point_stats(&self, p: &Point, stats: impl serde::Serialize) -> Value {
        let mut m = serde_json::Map::new();
        m.insert(self.variable.to_string(), jnum(self.value(p)));
        if let Ok(Value::Object(s)) = serde_json::to_value(stats) {
            m.extend(s);
        }
        Value::Object(m)
    }

    /// Does a column need the whole matrix (rather than its central band)?
    pub fn needs_full(&self) -> bool {
        let obs = &self.sc.observables;
        obs.columns
            .iter()
            .any(|c| FULL_MATRIX_COLUMNS.contains(&c.as_str()))
            || obs.husimi.is_some()
    }
}

/// The output files of a scan of evolutions, fed one point's unit at a time.
pub struct Sink<'a> {
    job: &'a Job<'a>,
    observables: CsvWriter,
    evolution: CsvWriter,
    pm: Option<CsvWriter>,
    /// One row per written point (x values, observables at the final time), and the last
    /// point's final state (for a Husimi grid), once written.
    pub table: Table,
}

impl<'a> Sink<'a> {
    pub fn create(job: &'a Job<'a>, ctx: &Context) -> Result<Self, Error> {
        let x_names = rows::scan_x_names(job.sc, job.variable)?;
        let names = rows::observable_names(job.sc);
        let mut evo_header = vec![job.variable.to_string(), "t".to_string()];
        evo_header.extend(names.iter().cloned());
        let n = job.points[0].model.n;
        Ok(Sink {
            job,
            observables: CsvWriter::create(&ctx.path("observables.csv")?, &rows::header(&x_names, &names))?,
            evolution: CsvWriter::create(&ctx.path(SCAN_EVOLUTION_CSV)?, &evo_header)?,
            pm: rows::pm_writer(job.sc, ctx.dir, job.variable, n)?,
            table: Table {
                x_names,
                names,
                rows: Vec::new(),
                last: None,
            },
        })
    }

    /// Write point `i`'s rows from its unit: `scan_evolution.csv` at every save, then its
    /// final row (observables.csv, the table), P_m, the Husimi matrix; returns its statistics.
    pub fn write_point(&mut self, i: usize, unit: PointUnit) -> Result<Value, Error> {
        let times = &self.job.spec.times;
        if unit.rows.len() != times.len() {
            let msg = format!(
                "scan point {i} has {} saves where the time grid has {}",
                unit.rows.len(),
                times.len()
            );
            return Err(corrupt(std::path::Path::new(CHECKPOINT_DIR), msg).into());
        }
        let p = &self.job.points[i];
        let x = self.job.value(p);
        for (obs, t) in unit.rows.iter().zip(times) {
            let mut long = vec![x, *t];
            long.extend(obs);
            self.evolution.row(&long)?;
        }
        let mut full = rows::x_values(p, &self.table.x_names);
        full.extend(unit.rows.last().into_iter().flatten());
        self.observables.row(&full)?;
        self.table.rows.push(full);
        if let (Some(w), Some(pm)) = (self.pm.as_mut(), &unit.pm) {
            let mut r = vec![x];
            r.extend(pm);
            w.row(&r)?;
        }
        let stats = unit.stats_json();
        if unit.husimi.is_some() {
            self.table.last = unit.husimi;
        }
        Ok(stats)
    }
}

impl Job<'_> {
    /// Save `k` of point `i` into its unit: the observable columns of `rho`, and at the final
    /// save what the files need of the final state.
    pub fn record(&self, unit: &mut PointUnit, i: usize, reference: Option<&[c64]>, k: usize, rho: StateRef) {
        let obs = rows::observable_row(rho, &self.sc.observables.columns, reference);
        self.record_row(unit, i, k, obs, Some(rho));
    }

    /// Save the observable columns `obs` of save `k` of point `i`; the exact state `rho`,
    /// where there is one, gives P_m and (the last point's) Husimi matrix at the final time.
    pub fn record_row(&self, unit: &mut PointUnit, i: usize, k: usize, obs: Vec<f64>, rho: Option<StateRef>) {
        unit.rows.push(obs);
        let (Some(rho), true) = (rho, k + 1 == self.spec.times.len()) else {
            return;
        };
        if self.sc.observables.pm {
            unit.pm = Some(rho.pm());
        }
        if self.sc.observables.husimi.is_some() && i + 1 == self.points.len() {
            unit.husimi = Some(rho.husimi_matrix());
        }
    }
}
