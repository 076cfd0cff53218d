//! The output directory as a transaction (`output::transaction`, design in the module doc of
//! `task::context`): a second run into a directory in use is refused naming the first; a failed
//! run leaves an earlier complete run byte-identical and keeps its partial output in
//! `failed-*/`; a run leaves no file of an earlier run of another scenario that it did not write.
//! End to end through the `dicke` binary, several runs into one `--out` directory.

mod common;
use common::read_csv;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// An evolution of a few seconds (N = 100, tight tolerances), with `pm.csv`.
const LONG: &str = r#"
title = "test: a long-ish evolution"
[model]
N = 100
Gamma = 1.0
chi = "1.875 * Gamma / 2"
Omega = "1.48 * N * Gamma / 2"
[initial]
state = "dicke"
m = "-N/2"
[task]
kind = "evolve"
t_end = 6.0
n_times = 301
rtol = 1e-10
atol = 1e-12
[observables]
pm = true
[output]
plot = false
"#;

/// A quick evolution with a plot and `pm.csv`.
const EVOLVE: &str = r#"
title = "test: scenario A, an evolution"
[model]
N = 10
Gamma = 1.0
Omega = "2 * N * Gamma / 2"
[initial]
state = "dicke"
m = "-N/2"
[task]
kind = "evolve"
t_end = 0.2
n_times = 11
[observables]
pm = true
"#;

/// A scan of evolutions (tests/scan_evolve.rs): its points take 29, 53 and 67 steps, so
/// `task.max_steps=40` fails the second point after the first was written.
const SCAN: &str = r#"
title = "test: scan of evolutions"
[variables]
u = 1.0
[model]
N = 12
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
values = [0.5, 1.48, 2.09]
t_end = 0.1
n_times = 6
[output]
plot = false
"#;

/// A scenario file `name` in `tmp` holding `text`.
fn scenario(tmp: &Path, name: &str, text: &str) -> PathBuf {
    let path = tmp.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn dicke(scenario: &Path, out: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dicke"));
    c.arg("run")
        .arg(scenario)
        .arg("--out")
        .arg(out)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn run(scenario: &Path, out: &Path, args: &[&str]) -> Output {
    dicke(scenario, out, args).output().expect("run the dicke binary")
}

fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every entry of `dir` (name -> contents; directories as empty).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let bytes = if e.path().is_file() {
                std::fs::read(e.path()).unwrap()
            } else {
                Vec::new()
            };
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Two runs into one directory: the second is refused while the first holds the lock (the
/// error names the first's pid, its start time and the lock), writes nothing, and the first
/// finishes with its own files intact (one header, one row per save time; no rows of the
/// second run interleaved).
#[test]
fn a_second_run_into_a_directory_in_use_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let long = scenario(tmp.path(), "long.toml", LONG);
    let quick = scenario(tmp.path(), "quick.toml", EVOLVE);
    let first = dicke(&long, &out, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lock = out.join(".dicke.lock");
    let t0 = Instant::now();
    while !lock.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the first run never took the lock"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let second = run(&quick, &out, &[]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success(),
        "the second run was not refused: {stderr}"
    );
    assert!(
        stderr.contains(&format!("pid {}", first.id()))
            && stderr.contains("started")
            && stderr.contains(".dicke.lock")
            && stderr.contains("in use"),
        "{stderr}"
    );
    let first = first.wait_with_output().unwrap();
    assert_ok(&first);
    let names: Vec<String> = snapshot(&out).into_keys().collect();
    assert_eq!(
        names,
        ["observables.csv", "pm.csv", "result.json"],
        "lock and staging are gone"
    );
    let res = json(&out.join("result.json"));
    assert_eq!(res["status"], "complete");
    assert_eq!(res["title"], "test: a long-ish evolution");
    for csv in ["observables.csv", "pm.csv"] {
        let (header, rows) = read_csv(&out.join(csv));
        assert_eq!(rows.len(), 301, "{csv}");
        assert_eq!(header[0], "t");
        assert!(rows.iter().all(|r| r.len() == header.len()), "{csv}");
        assert!(
            rows.windows(2).all(|w| w[1][0] > w[0][0]),
            "{csv}: times increase"
        );
    }
    assert_eq!(
        read_csv(&out.join("pm.csv")).0.len(),
        102,
        "N = 100: t then 101 P_m"
    );
}

/// A failed run (the scan's second point exceeds `task.max_steps`) into a directory holding a
/// complete run leaves that run's files byte-identical; its partial output (the first point's
/// rows) is in `failed-*/` with a result.json of status "failed" and the error, and the error
/// says where.
#[test]
fn a_failed_run_leaves_the_earlier_run_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let scan = scenario(tmp.path(), "scan.toml", SCAN);
    assert_ok(&run(&scan, &out, &[]));
    let before = snapshot(&out);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        ["observables.csv", "result.json", "scan_evolution.csv"]
    );
    let failed = run(&scan, &out, &["--set", "task.max_steps=40"]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(
        stderr.contains("scan point 1 (u = 1.48)") && stderr.contains("more than 40 steps"),
        "{stderr}"
    );
    let mut after = snapshot(&out);
    let kept: Vec<String> = after
        .keys()
        .filter(|k| k.starts_with("failed-"))
        .cloned()
        .collect();
    assert_eq!(kept.len(), 1, "{:?}", after.keys());
    after.remove(&kept[0]);
    assert!(after == before, "the complete run's files changed");
    assert!(
        stderr.contains(&kept[0]) && stderr.contains("partial output"),
        "{stderr}"
    );
    let kept = out.join(&kept[0]);
    let res = json(&kept.join("result.json"));
    assert_eq!(res["status"], "failed");
    assert!(res["error"].as_str().unwrap().contains("scan point 1"), "{res}");
    assert_eq!(res["task"], "scan");
    assert_eq!(res["overrides"][0], "task.max_steps=40");
    let (_, rows) = read_csv(&kept.join("observables.csv"));
    assert_eq!(rows.len(), 1, "the first point's row survives");
    assert_eq!(rows[0][0], 0.5);
    let (_, evo) = read_csv(&kept.join("scan_evolution.csv"));
    let point0 = evo.iter().filter(|r| r[0] == 0.5).count();
    assert_eq!(point0, 6, "the first point's save times survive");
    let mut files: Vec<String> = res["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    files.sort();
    // The scan runs in units: the first point's is kept for `--resume` (task::checkpoint).
    assert_eq!(
        files,
        [
            "checkpoint",
            "observables.csv",
            "result.json",
            "scan_evolution.csv"
        ]
    );
    assert!(kept.join("checkpoint").join("u0000000.bin").exists());
    // A run refused before it writes anything leaves nothing behind.
    let refused = run(&scan, &out, &["--set", "N=-3"]);
    assert!(!refused.status.success());
    assert_eq!(snapshot(&out).len(), 4, "{:?}", snapshot(&out).keys());
}

/// Scenario A (an evolution: plot, pm.csv) then scenario B (a scan of evolutions) into one
/// directory: B's files and result.json, no file of A that B did not write, and a file of the
/// user's own left alone.
#[test]
fn a_run_leaves_no_stale_file_of_another_scenario() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let a = scenario(tmp.path(), "a.toml", EVOLVE);
    let b = scenario(tmp.path(), "b.toml", SCAN);
    assert_ok(&run(&a, &out, &[]));
    let first: Vec<String> = snapshot(&out).into_keys().collect();
    assert_eq!(first, ["observables.csv", "plot.png", "pm.csv", "result.json"]);
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    assert_ok(&run(&b, &out, &[]));
    let names: Vec<String> = snapshot(&out).into_keys().collect();
    assert_eq!(
        names,
        [
            "notes.txt",
            "observables.csv",
            "result.json",
            "scan_evolution.csv"
        ]
    );
    let res = json(&out.join("result.json"));
    assert_eq!(res["status"], "complete");
    assert_eq!(res["task"], "scan");
    let (header, rows) = read_csv(&out.join("observables.csv"));
    assert_eq!(header[0], "u");
    assert_eq!(rows.len(), 3);
    assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "mine");
}

/// A lock left by a run that no longer exists on this host (a pid above Linux's largest) is
/// taken over, with a note on stderr; the dead run's staging directory (its flushed rows) is
/// moved to `failed-*/`; the new run completes and removes the lock.
#[test]
fn a_stale_lock_of_a_dead_run_is_taken_over() {
    let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") else {
        eprintln!("SKIPPED: no /proc (the liveness check needs it)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(out.join(".dicke-staging-4194399")).unwrap();
    std::fs::write(out.join(".dicke-staging-4194399/observables.csv"), "t,Jz\n0,-5\n").unwrap();
    std::fs::write(
        out.join(".dicke.lock"),
        format!(
            "pid=4194399\nhost={}\nstarted=2026-01-01T00:00:00Z\n",
            host.trim()
        ),
    )
    .unwrap();
    let a = scenario(tmp.path(), "a.toml", EVOLVE);
    let o = run(&a, &out, &[]);
    assert_ok(&o);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("note: took over the stale lock") && stderr.contains("pid 4194399"),
        "{stderr}"
    );
    let names: Vec<String> = snapshot(&out).into_keys().collect();
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(
        names[0].starts_with("failed-") && names[0].ends_with("-4194399"),
        "{names:?}"
    );
    assert_eq!(
        &names[1..],
        ["observables.csv", "plot.png", "pm.csv", "result.json"]
    );
    let rescued = std::fs::read_to_string(out.join(&names[0]).join("observables.csv")).unwrap();
    assert_eq!(rescued, "t,Jz\n0,-5\n");
}
