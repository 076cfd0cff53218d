//! Helpers shared by the integration tests (each test binary includes this with `mod common;`;
//! not every binary uses every helper, hence the `allow`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

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

/// The scenario of a [`run_scenario`] call.
pub enum Toml<'a> {
    /// A file, by its path relative to the repository root (`scenarios/quickstart.toml`); it
    /// need not exist.
    File(&'a str),
    /// Scenario text, written to `scenario.toml` in the run's temporary directory.
    Text(&'a str),
}

/// What one `dicke run` left behind: its exit status, stdout, stderr and output directory.
pub struct Outputs {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
    /// The `--out` directory, `<tmp>/out` (absent unless the run created it).
    pub out: PathBuf,
    /// The temporary directory holding `out` (removed on drop).
    pub tmp: tempfile::TempDir,
}

impl Outputs {
    /// Panics with stdout and stderr unless the run succeeded.
    pub fn assert_ok(&self) -> &Self {
        assert!(self.ok, "stdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }

    /// An output file's path.
    pub fn path(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }

    /// Header and numeric rows of an output CSV ([`read_csv`]).
    pub fn csv(&self, name: &str) -> (Vec<String>, Vec<Vec<f64>>) {
        read_csv(&self.path(name))
    }

    /// An output JSON file, parsed.
    pub fn json(&self, name: &str) -> serde_json::Value {
        let path = self.path(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// `result.json`, parsed.
    pub fn result(&self) -> serde_json::Value {
        self.json("result.json")
    }

    /// The output file starts with the PNG signature.
    pub fn assert_png(&self, name: &str) {
        let png = std::fs::read(self.path(name)).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
}

/// Run `dicke run <scenario> --out <tmp>/out <args...>` from the repository root (a fresh
/// temporary directory per call) and collect what it left: the write-run-read shape of the
/// end-to-end tests.
pub fn run_scenario(toml: Toml, args: &[&str]) -> Outputs {
    run_scenario_env(toml, args, &[])
}

/// [`run_scenario`] with extra environment variables (e.g. `DICKE_MEMORY_LIMIT_MIB`).
pub fn run_scenario_env(toml: Toml, args: &[&str], env: &[(&str, &str)]) -> Outputs {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = match toml {
        Toml::File(path) => PathBuf::from(path),
        Toml::Text(text) => {
            let path = tmp.path().join("scenario.toml");
            std::fs::write(&path, text).unwrap();
            path
        }
    };
    let out = tmp.path().join("out");
    let output = Command::new(env!("CARGO_BIN_EXE_dicke"))
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run the dicke binary");
    Outputs {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        out,
        tmp,
    }
}

/// Is there a GPU adapter for `test` (`backend::gpu::test_context`: a missing adapter fails
/// under `DICKE_REQUIRE_GPU=1`)? Always false in a build without the `gpu` feature.
pub fn gpu_available(test: &str) -> bool {
    #[cfg(feature = "gpu")]
    {
        dicke::backend::gpu::test_context(test).is_some()
    }
    #[cfg(not(feature = "gpu"))]
    {
        let _ = test;
        false
    }
}
