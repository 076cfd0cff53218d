//! Units of work in `kind = "sweep"` and `kind = "scan"` (`task::checkpoint`; a sweep's unit
//! is a chunk of points, a scan's one point), end to end through the `dicke` binary, for a
//! sweep, a scan of evolutions (CPU) and a scan of steady states:
//!
//! - the shards `0/4 .. 3/4` merged by `dicke merge` give the files of one run, byte for byte
//!   (every CSV; result.json `results`), and a missing or a repeated shard is refused with an
//!   error naming it;
//! - a run stopped by SIGINT once its first unit is in `checkpoint/` exits with 130 and keeps
//!   its finished part in `interrupted-*` (result.json status "interrupted", `coverage`); a
//!   run killed by SIGKILL leaves its staging directory; either way `--resume` completes the
//!   run with the files of an uninterrupted one, byte for byte, reusing the finished units;
//! - on a GPU (lavapipe in CI), the shards of a GPU scan merge to the files of one GPU run.
//!
//! Sizes: the shard scenarios run in well under a second; the interrupted ones in 2-4 s on
//! 2 cores (a sweep of 16000 points in 8 chunks, 24 scan points of N = 100, 40 steady states
//! of N = 100), so that a signal sent after the first unit lands mid-run.

mod common;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A cumulant sweep over a `nu` x 100 grid (2048 points a chunk), `t_end` long.
fn sweep(nu: usize, t_end: f64) -> String {
    format!(
        r#"
title = "test: a sweep in chunks"
[variables]
u = 0.9
lg = 0.3
gamma_s = "10^lg"
[model]
N = 100
Gamma = 1.0
chi = "Gamma"
Omega = "u * N / 2"
gamma_down = "gamma_s * Gamma"
[initial]
state = "coherent"
theta = "pi / 2"
phi = "pi"
[task]
kind = "sweep"
method = "cumulant"
t_end = {t_end}
n_times = 11
t_min = 0.1
rtol = 1e-6
atol = 1e-9
[[task.axes]]
variable = "u"
start = 0.5
stop = 1.1
num = {nu}
[[task.axes]]
variable = "lg"
start = -1.0
stop = 1.0
num = 100
"#
    )
}

/// A scan of evolutions of `num` points at `n` atoms, with P_m.
fn scan(n: usize, num: usize) -> String {
    format!(
        r#"
title = "test: a scan of evolutions in units"
[variables]
u = 1.0
[model]
N = {n}
Gamma = 1.0
chi = "1.875 * Gamma / 2"
Omega = "u * N * Gamma / 2"
[initial]
state = "dicke"
m = "-N/2"
[task]
kind = "scan"
mode = "evolve"
variable = "u"
start = 0.5
stop = 2.75
num = {num}
t_end = 0.5
n_times = 21
rtol = 1e-8
atol = 1e-10
[observables]
columns = ["var_Jz", "xi2_dB"]
pm = true
"#
    )
}

/// A scan of steady states of `num` points at `n` atoms, with P_m.
fn steady(n: usize, num: usize) -> String {
    format!(
        r#"
title = "test: a scan of steady states in units"
[variables]
x = 0.9
Omega_c = "N/2 * sqrt(Gamma^2 + 4*chi^2)"
[model]
N = {n}
Gamma = 1.0
chi = "1.875 * Gamma / 2"
Omega = "x * Omega_c"
[task]
kind = "scan"
variable = "x"
start = 0.2
stop = 1.4
num = {num}
[observables]
columns = ["var_Jz", "xi2_dB"]
pm = true
"#
    )
}

/// A scenario file in `dir`.
fn write_scenario(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("scenario.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn dicke(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dicke"));
    c.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn run(scenario: &Path, out: &Path, args: &[&str]) -> Output {
    let mut c = dicke(&["run"]);
    c.arg(scenario).arg("--out").arg(out).args(args);
    c.output().expect("run the dicke binary")
}

fn merge(dirs: &[PathBuf], out: &Path) -> Output {
    let mut c = dicke(&["merge"]);
    c.args(dirs).arg("--out").arg(out);
    c.output().expect("run the dicke binary")
}

fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The CSV files of `dir`, sorted by name.
fn csvs(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".csv"))
        .collect();
    v.sort();
    v
}

/// `dir` holds the files of the complete run in `reference`: the same CSV files byte for
/// byte, the same file list and `results` in result.json.
fn assert_same_run(reference: &Path, dir: &Path) {
    let names = csvs(reference);
    assert!(!names.is_empty());
    assert_eq!(csvs(dir), names, "{}", dir.display());
    for name in &names {
        let (a, b) = (reference.join(name), dir.join(name));
        let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
        assert!(
            a == b,
            "{name} differs from the uninterrupted run's ({} vs {} bytes)",
            b.len(),
            a.len()
        );
    }
    let (a, b) = (
        json(&reference.join("result.json")),
        json(&dir.join("result.json")),
    );
    assert_eq!(b["status"], "complete");
    assert_eq!(a["results"], b["results"]);
    assert_eq!(a["files"], b["files"]);
    assert_eq!(b["coverage"]["done"], a["coverage"]["done"]);
    assert!(
        !dir.join("checkpoint").exists(),
        "a complete run keeps no checkpoint"
    );
}

/// One uninterrupted run of `text` into `<tmp>/whole`.
fn whole_run(tmp: &Path, text: &str, args: &[&str]) -> PathBuf {
    let scenario = write_scenario(tmp, text);
    let out = tmp.join("whole");
    assert_ok(&run(&scenario, &out, args));
    out
}

/// Shards 0/n .. (n-1)/n of `text`, merged, give the files of one run; merging without shard
/// n/2, or with shard 1 twice, is refused with an error naming the shard.
fn shards_merge(text: &str, args: &[&str], n: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let whole = whole_run(tmp.path(), text, args);
    let scenario = tmp.path().join("scenario.toml");
    let shards: Vec<PathBuf> = (0..n).map(|k| tmp.path().join(format!("shard{k}"))).collect();
    for (k, dir) in shards.iter().enumerate() {
        let shard = format!("{k}/{n}");
        let mut a = args.to_vec();
        a.extend(["--shard", &shard]);
        assert_ok(&run(&scenario, dir, &a));
        let r = json(&dir.join("result.json"));
        assert_eq!(r["coverage"]["shard"]["index"], k);
        assert!(dir.join("checkpoint").join("meta.json").exists());
        assert!(!dir.join("plot.png").exists() && !dir.join("sweep.png").exists());
    }
    let merged = tmp.path().join("merged");
    assert_ok(&merge(&shards, &merged));
    assert_same_run(&whole, &merged);
    let r = json(&merged.join("result.json"));
    assert_eq!(r["coverage"]["units_reused"], r["coverage"]["units"]);

    let missing = [&shards[..n / 2], &shards[n / 2 + 1..]].concat();
    let o = merge(&missing, &tmp.path().join("m2"));
    let err = String::from_utf8_lossy(&o.stderr);
    let want = format!("missing shard(s) {}/{n}", n / 2);
    assert!(!o.status.success() && err.contains(&want), "{err}");
    let twice = [&shards[..], &shards[1..2]].concat();
    let o = merge(&twice, &tmp.path().join("m3"));
    let err = String::from_utf8_lossy(&o.stderr);
    let want = format!("shard 1/{n} is given twice");
    assert!(!o.status.success() && err.contains(&want), "{err}");
    assert!(err.contains("shard1"), "{err}");
    assert!(!tmp.path().join("m2").exists() && !tmp.path().join("m3").exists());
}

#[test]
fn sweep_shards_merge_to_the_files_of_one_run() {
    // 10000 points: 5 chunks of 2048, so shard 0/4 has one chunk and 3/4 two.
    shards_merge(&sweep(100, 1.0), &["--backend", "cpu"], 4);
}

#[test]
fn scan_evolve_shards_merge_to_the_files_of_one_run() {
    shards_merge(&scan(30, 10), &["--backend", "cpu"], 4);
}

#[test]
fn scan_steady_state_shards_merge_to_the_files_of_one_run() {
    shards_merge(&steady(30, 10), &["--backend", "cpu"], 4);
}

/// The long runs' scenarios and their uninterrupted runs (each made once per test binary).
struct Long {
    text: String,
    tmp: tempfile::TempDir,
}

impl Long {
    fn whole(&self) -> PathBuf {
        self.tmp.path().join("whole")
    }
}

fn long(cell: &'static OnceLock<Long>, text: fn() -> String) -> &'static Long {
    cell.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let text = text();
        whole_run(tmp.path(), &text, &["--backend", "cpu"]);
        Long { text, tmp }
    })
}

static SWEEP: OnceLock<Long> = OnceLock::new();
static SCAN: OnceLock<Long> = OnceLock::new();
static STEADY: OnceLock<Long> = OnceLock::new();

fn long_sweep() -> &'static Long {
    long(&SWEEP, || sweep(160, 10.0))
}
fn long_scan() -> &'static Long {
    long(&SCAN, || scan(100, 24))
}
fn long_steady() -> &'static Long {
    long(&STEADY, || steady(100, 40))
}

/// Start a run of `scenario` into `out`, wait until its first unit is in the staging
/// directory's `checkpoint/`, send `signal` (`-INT`, `-KILL`) and wait for the run to end.
fn signal_after_first_unit(scenario: &Path, out: &Path, signal: &str) -> Output {
    let mut c = dicke(&["run"]);
    c.arg(scenario).arg("--out").arg(out).args(["--backend", "cpu"]);
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the dicke binary");
    let pid = child.id();
    let cp = out.join(format!(".dicke-staging-{pid}")).join("checkpoint");
    let t0 = Instant::now();
    loop {
        let unit = std::fs::read_dir(&cp).ok().is_some_and(|d| {
            d.flatten().any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with('u') && n.ends_with(".bin")
            })
        });
        if unit {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            let o = child.wait_with_output().unwrap();
            panic!(
                "the run ended before its first unit was seen: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "no unit after 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    child.wait_with_output().unwrap()
}

/// The `prefix*` directories in `dir`.
fn kept(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect()
}

/// `--resume` in `out` completes the run with the files of the uninterrupted one, reusing
/// the finished units, and leaves no partial run behind.
fn resume_completes(long: &Long, scenario: &Path, out: &Path) {
    let o = run(scenario, out, &["--backend", "cpu", "--resume"]);
    assert_ok(&o);
    assert_same_run(&long.whole(), out);
    let cov = json(&out.join("result.json"))["coverage"].clone();
    assert!(cov["units_reused"].as_u64().unwrap() >= 1, "{cov}");
    assert_eq!(cov["interrupted"], false);
    for prefix in ["interrupted-", "failed-", ".dicke-staging-"] {
        assert!(
            kept(out, prefix).is_empty(),
            "{prefix}* left in {}",
            out.display()
        );
    }
}

/// SIGINT after the first unit: exit 130, the finished part in `interrupted-*` with status
/// "interrupted" and its coverage; then `--resume`.
fn interrupt_then_resume(long: &Long) {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write_scenario(tmp.path(), &long.text);
    let out = tmp.path().join("out");
    let o = signal_after_first_unit(&scenario, &out, "-INT");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("--resume"), "{err}");
    let dirs = kept(&out, "interrupted-");
    assert_eq!(dirs.len(), 1, "{err}");
    let r = json(&dirs[0].join("result.json"));
    assert_eq!(r["status"], "interrupted");
    let cov = &r["coverage"];
    assert_eq!(cov["interrupted"], true);
    let (done, units) = (
        cov["units_done"].as_u64().unwrap(),
        cov["units"].as_u64().unwrap(),
    );
    assert!(done >= 1 && done < units, "{cov}");
    assert!(dirs[0].join("checkpoint").join("meta.json").exists());
    assert!(
        !out.join("result.json").exists(),
        "an interrupted run commits nothing"
    );
    resume_completes(long, &scenario, &out);
}

/// SIGKILL after the first unit: the staging directory is left; `--resume` takes it over.
fn kill_then_resume(long: &Long) {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write_scenario(tmp.path(), &long.text);
    let out = tmp.path().join("out");
    let o = signal_after_first_unit(&scenario, &out, "-KILL");
    assert_eq!(o.status.signal(), Some(9));
    assert_eq!(kept(&out, ".dicke-staging-").len(), 1);
    resume_completes(long, &scenario, &out);
}

#[test]
fn sweep_interrupted_resumes_to_the_files_of_one_run() {
    interrupt_then_resume(long_sweep());
}

#[test]
fn sweep_killed_resumes_to_the_files_of_one_run() {
    kill_then_resume(long_sweep());
}

#[test]
fn scan_evolve_interrupted_resumes_to_the_files_of_one_run() {
    interrupt_then_resume(long_scan());
}

#[test]
fn scan_evolve_killed_resumes_to_the_files_of_one_run() {
    kill_then_resume(long_scan());
}

#[test]
fn scan_steady_state_interrupted_resumes_to_the_files_of_one_run() {
    interrupt_then_resume(long_steady());
}

#[test]
fn scan_steady_state_killed_resumes_to_the_files_of_one_run() {
    kill_then_resume(long_steady());
}

/// The shards of a GPU scan (each a batch of its points) merge to the files of one GPU run:
/// a point's result does not depend on the other points of its batch.
#[test]
fn gpu_scan_shards_merge_to_the_files_of_one_gpu_run() {
    if !common::gpu_available("gpu_scan_shards_merge_to_the_files_of_one_gpu_run") {
        return;
    }
    // Two shards: every GPU run compiles its kernels (seconds on lavapipe).
    shards_merge(&scan(8, 4), &["--backend", "gpu"], 2);
}
