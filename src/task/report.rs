//! The typed report every task returns, and `result.json`: one envelope, written in one place.
//!
//! A task fills [`Report`] (its solver, the backend that ran, the model it resolved, the CSV
//! columns, scalar results, solver statistics and the files it wrote); [`write`] wraps it
//! with what every run records (crate version and git revision, title, the scenario as run,
//! the `--set` overrides, the wall time) into [`Envelope`] and writes `result.json`.

use super::checkpoint::Coverage;
use crate::backend::BackendUsed;
use crate::error::Error;
use crate::model::Model;
use crate::output;
use crate::scenario::Scenario;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The git revision the binary was built from (`build.rs`; "unknown" outside a git checkout).
pub const GIT_REVISION: &str = env!("DICKE_GIT_REVISION");

/// What a task produced.
#[derive(Debug, Clone)]
pub struct Report {
    /// The task kind as written in the scenario (`evolve`, `scan`, ...).
    pub task: &'static str,
    /// The solver, in words (method, precision, where it ran).
    pub solver: String,
    /// The backend that actually ran, with its device and precision.
    pub backend: BackendUsed,
    /// The resolved model parameters the task reports (the first point of a scan, the base
    /// point of a sweep or fixed-point scan).
    pub model: Model,
    /// The columns of the task's main CSV file.
    pub columns: Vec<String>,
    /// Scalar results (final values, best squeezing, boundaries, ...).
    pub results: Value,
    /// Solver statistics (steps, errors, rates); absent where a task has none.
    pub stats: Option<Value>,
    /// Files written, besides result.json.
    pub files: Vec<String>,
    /// For a task run in units ([`super::checkpoint`]): which items the files hold, and
    /// whether an interrupt stopped the run; `None` for a task that runs whole.
    pub coverage: Option<Coverage>,
}

impl Report {
    /// Did an interrupt stop the task before all of its units?
    pub fn interrupted(&self) -> bool {
        self.coverage.as_ref().is_some_and(|c| c.interrupted)
    }
}

/// result.json.
#[derive(Debug, Serialize)]
pub struct Envelope<'a> {
    /// "complete" (a run's result.json in the output directory); "interrupted" (the finished
    /// part of a run stopped by SIGINT/SIGTERM, `coverage` says which); a failed run's partial
    /// output has "failed" ([`write_failed`]).
    pub status: &'static str,
    pub dicke_version: &'static str,
    pub git_revision: &'static str,
    pub title: &'a str,
    pub task: &'static str,
    pub solver: &'a str,
    pub backend: &'a BackendUsed,
    pub wall_time_s: f64,
    pub overrides: &'a [String],
    /// The scenario as run (after `--set`).
    pub scenario: Value,
    /// Resolved model parameters (NaN written as null).
    pub model: BTreeMap<&'static str, Option<f64>>,
    pub columns: &'a [String],
    pub results: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<&'a Value>,
    /// Every file of the run, result.json included.
    pub files: &'a [String],
    /// Which trajectories / points the files hold (tasks run in units).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<&'a Coverage>,
}

/// Write `dir/result.json` for `report`; returns the document and the full file list.
pub fn write(
    dir: &Path,
    sc: &Scenario,
    overrides: &[String],
    report: &Report,
    wall_time_s: f64,
) -> Result<(Value, Vec<String>), Error> {
    let mut files = report.files.clone();
    files.push("result.json".into());
    let envelope = Envelope {
        status: if report.interrupted() {
            "interrupted"
        } else {
            "complete"
        },
        dicke_version: crate::VERSION,
        git_revision: GIT_REVISION,
        title: &sc.title,
        task: report.task,
        solver: &report.solver,
        backend: &report.backend,
        wall_time_s,
        overrides,
        scenario: toml_to_json(&sc.as_run),
        model: report
            .model
            .values()
            .into_iter()
            .map(|(k, v)| (k, v.is_finite().then_some(v)))
            .collect(),
        columns: &report.columns,
        results: &report.results,
        stats: report.stats.as_ref(),
        files: &files,
        coverage: report.coverage.as_ref(),
    };
    let doc = serde_json::to_value(&envelope).map_err(|e| crate::error::OutputError::Write {
        path: dir.join("result.json").display().to_string(),
        message: e.to_string(),
    })?;
    output::write_json(&dir.join("result.json"), &doc)?;
    Ok((doc, files))
}

/// Write `dir/result.json` for a run that failed with `error` after writing `files` (result.json
/// among them): `status` "failed" (or "interrupted", for an integrator stopped by an
/// interrupt), the error, and the provenance of a complete run.
pub fn write_failed(
    dir: &Path,
    sc: &Scenario,
    overrides: &[String],
    error: &Error,
    wall_time_s: f64,
    files: &[String],
    interrupted: bool,
) -> Result<(), crate::error::OutputError> {
    let doc = serde_json::json!({
        "status": if interrupted { "interrupted" } else { "failed" },
        "error": error.to_string(),
        "dicke_version": crate::VERSION,
        "git_revision": GIT_REVISION,
        "title": sc.title,
        "task": sc.as_run.get("task").and_then(|t| t.get("kind")).map(toml_to_json),
        "wall_time_s": jnum(wall_time_s),
        "overrides": overrides,
        "scenario": toml_to_json(&sc.as_run),
        "files": files,
    });
    output::write_json(&dir.join("result.json"), &doc)
}

/// JSON number, or null for NaN/inf (JSON has no NaN).
pub fn jnum(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// The scenario tree as JSON (non-finite floats as null).
pub fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => jnum(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(t.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect()),
    }
}

/// A JSON object of `names` -> `values` (numbers or null).
pub fn named(names: &[String], values: &[f64]) -> Value {
    Value::Object(
        names
            .iter()
            .zip(values)
            .map(|(k, v)| (k.clone(), jnum(*v)))
            .collect(),
    )
}
