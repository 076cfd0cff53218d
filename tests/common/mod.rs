//! Helpers shared by the integration tests (each test binary includes this with `mod common;`).

use std::path::Path;

/// Header and numeric rows of a CSV file the engine wrote (panics with the path if absent).
pub fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header = lines
        .next()
        .expect("header")
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(|v| v.parse::<f64>().expect("number")).collect())
        .collect();
    (header, rows)
}
