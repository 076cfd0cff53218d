//! Result files (the output contract later tools and users parse):
//!
//! - `DIR/observables.csv`: a header row, then one row per save time or scan point. Columns:
//!   `t` (or, for a scan, the scanned variable followed by every model parameter that varies
//!   with it), then `Jx, Jy, Jz, xi2, J2`, then any requested extra observables by name.
//!   Rows are written and flushed as each point finishes, so an interrupted long run keeps
//!   its finished work.
//! - `DIR/result.json`: the scenario as run, crate version, backend, wall time, scalar results
//!   and solver statistics.
//! - `DIR/plot.png`: the main observables ([`plot`]).
//! - optional `pm.csv` (P_m per row) and `husimi.csv` / `husimi.png`.
//! - `DIR/scan_evolution.csv` for a scan of evolutions (`mode = "evolve"`): long format,
//!   `<variable>, t, <observables>` for every point and save time, so that the per-point table
//!   above (final time) keeps the shape of a steady-state scan.
//! - `DIR/fixed_points.csv` (and `fixed_points_collective.csv` with `factorisation = "both"`)
//!   for `kind = "fixed_points"`: `<variable>, Omega, sx, sy, sz, stable, center, max_re_eig`,
//!   `eig1_re, eig1_im, .., eig3_im` (every Jacobian eigenvalue, leading first),
//!   one row per mean-field fixed point (no `observables.csv`; `docs/scenarios.md`).

pub mod plot;

use crate::error::OutputError;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

fn werr(path: &Path, e: impl std::fmt::Display) -> OutputError {
    OutputError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Create the output directory.
pub fn create_dir(dir: &Path) -> Result<(), OutputError> {
    std::fs::create_dir_all(dir).map_err(|e| werr(dir, e))
}

/// A CSV table written row by row (flushed after each row).
pub struct CsvWriter {
    path: PathBuf,
    file: BufWriter<File>,
    ncols: usize,
}

impl CsvWriter {
    pub fn create(path: &Path, header: &[String]) -> Result<CsvWriter, OutputError> {
        let file = File::create(path).map_err(|e| werr(path, e))?;
        let mut w = CsvWriter {
            path: path.to_path_buf(),
            file: BufWriter::new(file),
            ncols: header.len(),
        };
        writeln!(w.file, "{}", header.join(",")).map_err(|e| werr(path, e))?;
        w.file.flush().map_err(|e| werr(path, e))?;
        Ok(w)
    }

    /// Write one row; values in shortest round-trip form (`NaN` for undefined entries), whole
    /// numbers below 2^53 as integers (flags such as `stable` read 1 or 0, counts and N read as
    /// written; every entry still parses back to the same f64).
    pub fn row(&mut self, values: &[f64]) -> Result<(), OutputError> {
        debug_assert_eq!(values.len(), self.ncols);
        let line: Vec<String> = values.iter().map(|&v| csv_number(v)).collect();
        writeln!(self.file, "{}", line.join(",")).map_err(|e| werr(&self.path, e))?;
        self.file.flush().map_err(|e| werr(&self.path, e))
    }
}

/// One CSV entry: an integer for whole numbers of magnitude below 2^53 (exact in f64), else
/// the shortest round-trip scientific form.
fn csv_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
        format!("{}", v as i64)
    } else {
        format!("{v:e}")
    }
}

/// Write a JSON document (pretty-printed).
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), OutputError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| werr(path, e))?;
    std::fs::write(path, text + "\n").map_err(|e| werr(path, e))
}

#[cfg(test)]
mod tests {
    use super::csv_number;

    /// Flags and counts read as integers; every entry parses back to the same f64 (NaN and
    /// infinities included), so CSV consumers lose nothing.
    #[test]
    fn csv_numbers_round_trip_and_flags_are_integers() {
        assert_eq!(csv_number(1.0), "1");
        assert_eq!(csv_number(0.0), "0");
        assert_eq!(csv_number(-0.0), "0");
        assert_eq!(csv_number(-54.0), "-54");
        assert_eq!(csv_number(0.5), "5e-1");
        for v in [
            1.0,
            -3.0,
            0.1,
            -2.5e-300,
            1e300,
            9_007_199_254_740_991.0,
            9_007_199_254_740_992.0,
            std::f64::consts::PI,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            let back: f64 = csv_number(v).parse().unwrap();
            assert_eq!(back, v, "{v}");
        }
        assert!(csv_number(f64::NAN).parse::<f64>().unwrap().is_nan());
    }
}
