//! Result files (the output contract later tools and users parse):
//!
//! - `DIR/observables.csv`: a header row, then one row per save time or scan point. Columns:
//!   `t` (or, for a scan, the scanned variable followed by every model parameter that varies
//!   with it), then `Jx, Jy, Jz, xi2, J2`, then any requested extra observables by name.
//!   Rows are written and flushed as each point finishes (into the run's staging directory,
//!   [`transaction`]), so an interrupted long run keeps its finished work.
//! - `DIR/result.json`: `status` ("complete"), the scenario as run, crate version, backend,
//!   wall time, scalar results and solver statistics; written atomically ([`write_atomic`]),
//!   and last: a run's files appear in `DIR` only when it finished ([`transaction`]).
//! - `DIR/plot.png`: the main observables ([`plot`]).
//! - optional `pm.csv` (P_m per row) and `husimi.csv` / `husimi.png`.
//! - `DIR/scan_evolution.csv` for a scan of evolutions (`mode = "evolve"`): long format,
//!   `<variable>, t, <observables>` for every point and save time, so that the per-point table
//!   above (final time) keeps the shape of a steady-state scan.
//! - `DIR/fixed_points.csv` (and `fixed_points_collective.csv` with `factorisation = "both"`)
//!   for `kind = "fixed_points"`: `<variable>, Omega, sx, sy, sz, stable, center, max_re_eig`,
//!   `eig1_re, eig1_im, .., eig3_im` (every Jacobian eigenvalue, leading first),
//!   one row per mean-field fixed point (no `observables.csv`; `docs/scenarios.md`).
//! - `DIR/final_state.json` and `DIR/final_state.npy` (`kind = "evolve"` with `[output]
//!   final_state = true`): the state at the last save, for `[initial] state = { from = "DIR" }`
//!   ([`final_state`]: the format, its version, and the checks on reading it back).

pub mod checkpoint;
pub mod final_state;
pub mod plot;
pub mod transaction;

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

impl CsvWriter {
    /// Write one row with a text entry between numbers: `lead`, then `label`, then `values`
    /// (e.g. a scan's x columns, the state's name, its observables). `label` must not need
    /// quoting (no comma, quote or newline: the callers pass fixed names).
    pub fn row_labelled(&mut self, lead: &[f64], label: &str, values: &[f64]) -> Result<(), OutputError> {
        debug_assert_eq!(lead.len() + 1 + values.len(), self.ncols);
        debug_assert!(!label.contains([',', '"', '\n']));
        let mut line: Vec<String> = lead.iter().map(|&v| csv_number(v)).collect();
        line.push(label.to_string());
        line.extend(values.iter().map(|&v| csv_number(v)));
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

/// Write a JSON document (pretty-printed) atomically ([`write_atomic`]).
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), OutputError> {
    write_atomic(path, |w| {
        serde_json::to_writer_pretty(&mut *w, value).map_err(std::io::Error::other)?;
        w.write_all(b"\n")
    })
}

/// Write `path` atomically: `fill` writes a temporary file in the same directory
/// (`.<name>.tmp-<pid>`), which is flushed, fsynced and renamed over `path` (a rename within
/// one filesystem is atomic), then the directory is fsynced. A reader sees the old file or the
/// whole new one, never a part; on an error the temporary file is removed and `path` is left
/// as it was.
pub fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), OutputError> {
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut w = BufWriter::new(File::create(&tmp)?);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(werr(path, e));
    }
    if let Some(dir) = path.parent() {
        sync_dir(dir);
    }
    Ok(())
}

/// Fsync a directory so that renames in it survive a crash (best effort; Unix only).
pub fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::{csv_number, write_atomic, write_json};
    use std::io::Write;

    /// The atomic writer replaces the file whole and leaves no temporary file; a write that
    /// fails part-way leaves the old file byte-identical and no partial file anywhere.
    #[test]
    fn json_is_written_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("result.json");
        write_json(&path, &serde_json::json!({"status": "complete", "n": 1})).unwrap();
        let first = std::fs::read(&path).unwrap();
        let back: serde_json::Value = serde_json::from_slice(&first).unwrap();
        assert_eq!(back["n"], 1);
        let names = || -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(), ["result.json"]);
        // A writer that dies after 2 MB: the final path keeps the old document.
        let e = write_atomic(&path, |w| {
            w.write_all(&vec![b'x'; 2 << 20])?;
            Err(std::io::Error::other("killed"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("killed"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), first);
        assert_eq!(names(), ["result.json"]);
        // A new document replaces the old one whole.
        write_json(&path, &serde_json::json!({"status": "complete", "n": 2})).unwrap();
        let back: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back["n"], 2);
        assert_eq!(names(), ["result.json"]);
    }

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
