//! A scan of evolutions as its two paths share it: the job ([`Job`]: scenario, points, time
//! grid) and the output files fed one saved state at a time ([`Sink`]: `observables.csv` at
//! the final time, `scan_evolution.csv` at every save, `pm.csv`, the last state for a Husimi
//! grid). The CPU path ([`super::evolve`]) and the GPU path ([`super::evolve_gpu`]) write
//! through the same sink, so the files do not depend on the backend.

use crate::c64;
use crate::error::{Error, InputError, OutputError, SolverError};
use crate::output::CsvWriter;
use crate::scenario::{EvolveSpec, Point, Scenario};
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

/// The output files of a scan of evolutions, fed one saved state at a time.
pub struct Sink<'a> {
    job: &'a Job<'a>,
    observables: CsvWriter,
    evolution: CsvWriter,
    pm: Option<CsvWriter>,
    /// One row per finished point (x values, observables at the final time), and the final
    /// state of the last finished point (for a Husimi grid).
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

    /// Save `k` (time `t`) of point `p`; the last save also writes the point's final row.
    pub fn save(
        &mut self,
        p: &Point,
        reference: Option<&[c64]>,
        k: usize,
        t: f64,
        rho: StateRef,
    ) -> Result<(), OutputError> {
        let obs = rows::observable_row(rho, &self.job.sc.observables.columns, reference);
        self.save_row(p, k, t, obs, Some(rho))
    }

    /// Save the observable columns `obs` of save `k` of point `p`; the exact state `rho`, where
    /// there is one, feeds P_m and the Husimi grid of the final time.
    pub fn save_row(
        &mut self,
        p: &Point,
        k: usize,
        t: f64,
        obs: Vec<f64>,
        rho: Option<StateRef>,
    ) -> Result<(), OutputError> {
        let x = self.job.value(p);
        let mut long = vec![x, t];
        long.extend(&obs);
        self.evolution.row(&long)?;
        if k + 1 < self.job.spec.times.len() {
            return Ok(());
        }
        let mut full: Vec<f64> = self
            .table
            .x_names
            .iter()
            .map(|n| p.values.get(n).copied().unwrap_or(f64::NAN))
            .collect();
        full.extend(&obs);
        self.observables.row(&full)?;
        self.table.rows.push(full);
        if let (Some(w), Some(rho)) = (self.pm.as_mut(), rho) {
            let mut r = vec![x];
            r.extend(rho.pm());
            w.row(&r)?;
        }
        if let (true, Some(rho)) = (self.job.sc.observables.husimi.is_some(), rho) {
            self.table.last = Some(rho.husimi_matrix());
        }
        Ok(())
    }
}
