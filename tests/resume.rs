//! Interrupt, resume, shards and merge of a trajectory ensemble, with real runs of the binary
//! killed by real signals (issue 12): the files of an interrupted-then-resumed run, and of
//! four shards merged, are byte for byte those of one uninterrupted run; a missing or repeated
//! shard is refused; an evolution stopped by SIGTERM keeps its finished rows as "interrupted"
//! and resumes from its checkpoint to the same files.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// 8 units of 1024 trajectories at N = 60 (about a second per unit on one core), so that a
/// signal sent after the first unit lands well before the last.
const ENSEMBLE: &str = r#"
title = "resume test ensemble"
[model]
N = 60
Gamma = 1.0
chi = 0.9
Omega = 40.0
[initial]
state = "dicke"
m = "-N/2"
[task]
kind = "trajectories"
ntraj = 8192
seed = 7
t_end = 0.2
n_times = 41
save_trajectories = 3
precision = "f64"
[observables]
columns = ["var_Jz"]
"#;

const FILES: [&str; 2] = ["observables.csv", "trajectories.csv"];

fn dicke(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dicke"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run the dicke binary")
}

fn spawn(args: &[&str], dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dicke"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the dicke binary")
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success(), "kill {sig}");
}

/// Wait until `path` exists (a unit file, a CSV row) or the child ends; panics after 120 s.
fn wait_for(child: &mut Child, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the run ended ({status}) before the signal could be sent");
        }
        assert!(start.elapsed() < Duration::from_secs(120), "timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The staging directory's first unit file of the run `child` into `out`.
fn first_unit(out: &Path, child: &Child) -> PathBuf {
    out.join(format!(".dicke-staging-{}", child.id()))
        .join("checkpoint")
        .join("u0000000.bin")
}

fn assert_same_files(a: &Path, b: &Path) {
    for f in FILES {
        let (x, y) = (
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
        );
        assert!(x == y, "{f} differs between {} and {}", a.display(), b.display());
    }
}

fn result(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("result.json")).unwrap()).unwrap()
}

/// The one subdirectory of `dir` whose name starts with `prefix`.
fn only_dir(dir: &Path, prefix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    assert_eq!(found.len(), 1, "{prefix}* in {}: {found:?}", dir.display());
    found[0].clone()
}

#[test]
fn trajectories_resume_and_merge_equal_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("s.toml"), ENSEMBLE).unwrap();
    let run = |out: &str, extra: &[&str]| {
        let mut a = vec!["run", "s.toml", "--backend", "cpu", "--out", out];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let go = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = dicke(&args, dir);
        assert!(
            o.status.success(),
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr)
        );
        o
    };
    go(run("one", &[]));
    let one = dir.join("one");
    assert_eq!(result(&one)["coverage"]["done"], serde_json::json!([[0, 8192]]));

    // Four shards, merged.
    for k in 0..4 {
        go(run(&format!("shard{k}"), &["--shard", &format!("{k}/4")]));
    }
    assert!(
        dir.join("shard1/checkpoint/meta.json").is_file(),
        "a shard keeps its checkpoint"
    );
    go(
        ["merge", "shard0", "shard1", "shard2", "shard3", "--out", "merged"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    );
    assert_same_files(&one, &dir.join("merged"));
    assert_eq!(result(&one)["results"], result(&dir.join("merged"))["results"]);
    assert!(
        !dir.join("merged/checkpoint").exists(),
        "a merged run is a whole run"
    );
    // A missing and a repeated shard are refused, naming them.
    let e = dicke(&["merge", "shard0", "shard1", "shard3", "--out", "bad"], dir);
    let msg = String::from_utf8_lossy(&e.stderr);
    assert!(
        !e.status.success() && msg.contains("missing shard(s) 2/4"),
        "{msg}"
    );
    let e = dicke(
        &[
            "merge", "shard0", "shard1", "shard1", "shard2", "shard3", "--out", "bad",
        ],
        dir,
    );
    let msg = String::from_utf8_lossy(&e.stderr);
    assert!(
        !e.status.success() && msg.contains("shard 1/4 is given twice"),
        "{msg}"
    );
    assert!(!dir.join("bad").exists(), "a refused merge writes nothing");

    // SIGINT after the first unit: exit 130, the finished units kept as "interrupted"; then
    // --resume finishes the rest.
    let args = run("intr", &[]);
    let mut child = spawn(&args.iter().map(String::as_str).collect::<Vec<_>>(), dir);
    let out = dir.join("intr");
    let unit = first_unit(&out, &child);
    wait_for(&mut child, || unit.exists());
    signal(&child, "-INT");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "exit status of an interrupted run");
    let kept = only_dir(&out, "interrupted-");
    let r = result(&kept);
    assert_eq!(r["status"], "interrupted");
    let done = r["coverage"]["done"][0][1].as_u64().unwrap();
    assert!(
        (1024..8192).contains(&done) && done.is_multiple_of(1024),
        "coverage {}",
        r["coverage"]
    );
    assert_eq!(
        r["results"]["ntraj"].as_u64(),
        Some(done),
        "the means are of the finished trajectories"
    );
    go(run("intr", &["--resume"]));
    assert_same_files(&one, &out);
    let r = result(&out);
    assert_eq!(r["status"], "complete");
    assert_eq!(r["coverage"]["units_reused"].as_u64(), Some(done / 1024));
    assert!(!kept.exists(), "the adopted checkpoint's directory is gone");

    // kill -9 after the first unit: the staging directory survives; --resume continues it.
    let args = run("killed", &[]);
    let mut child = spawn(&args.iter().map(String::as_str).collect::<Vec<_>>(), dir);
    let out = dir.join("killed");
    let unit = first_unit(&out, &child);
    wait_for(&mut child, || unit.exists());
    signal(&child, "-KILL");
    child.wait().unwrap();
    let o = go(run("killed", &["--resume"]));
    let note = String::from_utf8_lossy(&o.stderr);
    assert!(
        note.contains("--resume: continuing from") && note.contains("failed-"),
        "{note}"
    );
    assert_same_files(&one, &out);
    assert!(result(&out)["coverage"]["units_reused"].as_u64().unwrap() >= 1);

    // A checkpoint of another scenario is not resumed: the run starts afresh and says so.
    let o = go(run("one", &["--resume", "--set", "task.seed=8"]));
    let note = String::from_utf8_lossy(&o.stderr);
    assert!(note.contains("no checkpoint of this scenario"), "{note}");
}

const EVOLVE: &str = r#"
title = "long evolve"
[model]
N = 100
Gamma = 1.0
chi = 0.9
Omega = 150.0
[initial]
state = "dicke"
m = "-N/2"
[task]
kind = "evolve"
t_end = 6.0
n_times = 201
[observables]
pm = true
"#;

/// An evolution runs whole: SIGTERM stops the integrator between two steps, the rows saved so
/// far are kept with status "interrupted" beside the last checkpoint (here after every save,
/// `DICKE_CHECKPOINT_INTERVAL_S=0`), and `--resume` continues from it to the files of an
/// uninterrupted run, byte for byte.
#[test]
fn evolve_interrupted_then_resumed_equals_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("s.toml"), EVOLVE).unwrap();
    let run = |out: &str, resume: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dicke"));
        c.args(["run", "s.toml", "--backend", "cpu", "--out", out])
            .current_dir(dir)
            .env("DICKE_CHECKPOINT_INTERVAL_S", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if resume {
            c.arg("--resume");
        }
        c
    };
    let o = run("one", false).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut child = run("ev", false).spawn().unwrap();
    let staging = dir.join("ev").join(format!(".dicke-staging-{}", child.id()));
    let (csv, cp) = (
        staging.join("observables.csv"),
        staging.join("checkpoint/evolve.bin"),
    );
    wait_for(&mut child, || {
        cp.exists() && std::fs::read_to_string(&csv).is_ok_and(|t| t.lines().count() > 5)
    });
    signal(&child, "-TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let kept = only_dir(&dir.join("ev"), "interrupted-");
    let r = result(&kept);
    assert_eq!(r["status"], "interrupted");
    assert!(r["error"].as_str().unwrap().contains("interrupted at t ="), "{r}");
    let (_, rows) = common::read_csv(&kept.join("observables.csv"));
    assert!(rows.len() >= 5 && rows.len() < 201, "{} rows", rows.len());
    assert!(
        !dir.join("ev/result.json").exists(),
        "nothing claims to be complete"
    );
    let o = run("ev", true).output().unwrap();
    let note = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && note.contains("from its last checkpoint"),
        "{note}"
    );
    for f in ["observables.csv", "pm.csv"] {
        let (a, b) = (
            std::fs::read(dir.join("one").join(f)).unwrap(),
            std::fs::read(dir.join("ev").join(f)).unwrap(),
        );
        assert!(a == b, "{f} of the resumed evolution differs from one run's");
    }
    assert!(
        !dir.join("ev/checkpoint").exists(),
        "a complete run keeps no checkpoint"
    );
    // An evolution runs whole: no shards.
    let o = dicke(&["run", "s.toml", "--out", "sh", "--shard", "0/2"], dir);
    let msg = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && msg.contains("--shard") && msg.contains("runs whole"),
        "{msg}"
    );
}
