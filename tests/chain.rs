//! Chained protocols (issue 15 item 2): `[output] final_state = true` writes the state at the
//! last save (`final_state.json` + `final_state.npy`, `output::final_state`), and `[initial]
//! state = { from = "DIR" }` starts a later run from it.
//!
//! - A run split in two (0 -> t1 saving the final state, then t1 -> t2 from it with
//!   `t_start = t1` and the same schedule) equals one run 0 -> t2: on the Dicke manifold, on
//!   the blocks (and a manifold state embedded into a blocks run), with cumulants and with
//!   mean field.
//! - The chained run's time is its own: a second leg from t = 0 with the schedule shifted by
//!   t1 gives the same rows as the second half of the single run.
//! - Cross starts: the moments a cumulant or mean-field run starts from equal the exact
//!   state's.
//! - Every error path names `initial.state.from`: missing directory, missing header, another
//!   N, a kind the method cannot start from, a truncated, corrupt or non-finite data file, a
//!   header that is not dicke's or of another version, a mangled npy header; pure-state tasks
//!   refuse it; a failed chained run leaves the earlier results as they were.
//!
//! Tolerance of a split against one run: each run's saved states are within the evolution
//! budget of checks.rs, delta = 4 (atol + rtol) per density-matrix entry (the measured global
//! error of DP5 is well inside it), and the split carries the first leg's error into the
//! second, so the two differ by at most 3 delta per entry (first leg, second leg, single run;
//! a Lindblad evolution is contractive, so an error is not amplified). An expectation value
//! <J_a> moves by at most W delta per entry error, W = (N/2 + 1)(N + 1) in j = N/2 (checks.rs)
//! and sum_j (j + 1)(2j + 1) on the blocks. The approximate methods integrate O(1) variables
//! (Bloch vector, cumulant variables) under the same controller, whose error the moments
//! carry scaled by N/2 (first moments) and N^2/4 (second moments).

mod common;

use dicke::backend::BackendChoice;
use dicke::output::final_state::{self, SavedState, Source};
use dicke::run::{self, NoProgress, RunOptions};
use dicke::scenario::parse;
use std::path::{Path, PathBuf};

const RTOL: f64 = 1e-10;
const ATOL: f64 = 1e-12;
/// checks.rs's evolution budget per entry at RTOL, ATOL.
const DELTA: f64 = 4.0 * (RTOL + ATOL);

/// Run scenario text into `dir` on the CPU; the error as its message.
fn run_text(text: &str, dir: &Path) -> Result<run::RunSummary, String> {
    let sc = parse(text, "chain.toml", &[]).map_err(|e| e.to_string())?;
    let opts = RunOptions {
        out_dir: dir.to_path_buf(),
        backend: BackendChoice::Cpu,
        overrides: Vec::new(),
        resume: false,
        shard: None,
    };
    run::execute(&sc, &opts, &mut NoProgress).map_err(|e| e.to_string())
}

fn ok(text: &str, dir: &Path) -> run::RunSummary {
    run_text(text, dir).unwrap_or_else(|e| panic!("{e}\n--- scenario ---\n{text}"))
}

fn err(text: &str, dir: &Path) -> String {
    match run_text(text, dir) {
        Ok(_) => panic!("expected an error\n--- scenario ---\n{text}"),
        Err(e) => e,
    }
}

/// `[task]` of an evolution over [t0, t1] with `n` saves at the tight tolerances.
fn task(t0: f64, t1: f64, n: usize, method: &str) -> String {
    format!(
        "[task]\nkind = \"evolve\"\nmethod = \"{method}\"\nt_start = {t0}\nt_end = {t1}\n\
         n_times = {n}\nrtol = {RTOL}\natol = {ATOL}\n"
    )
}

/// A scenario: `model` lines, `initial` lines, the task, and `final_state`.
fn scenario(model: &str, initial: &str, task: &str, save: bool) -> String {
    format!(
        "[model]\n{model}\n[initial]\n{initial}\n{task}[observables]\ncolumns = {cols}\n\
         [output]\nplot = false\nfinal_state = {save}\n",
        cols = if task.contains("\"exact\"") {
            "[\"JxJx\", \"JzJz\", \"JxJz\"]"
        } else {
            "[\"JxJx\", \"JzJz\", \"JxJz\", \"var_Jz\"]"
        }
    )
}

fn from(dir: &Path) -> String {
    format!("state = {{ from = \"{}\" }}", dir.display())
}

fn csv(dir: &Path) -> (Vec<String>, Vec<Vec<f64>>) {
    common::read_csv(&dir.join("observables.csv"))
}

/// The saved state of `dir` for N atoms, through the library's reader.
fn saved(dir: &Path, n: usize) -> (final_state::Header, SavedState) {
    let s = dir.display().to_string();
    let src = Source {
        field: "test",
        dir: &s,
        path: dir.to_path_buf(),
    };
    let h = final_state::read_header(&src, n).unwrap();
    let state = final_state::read_data(&src, &h, n).unwrap();
    (h, state)
}

/// Largest |a - b| over the rows `a` against the rows of `b` from `skip`, for the columns
/// `cols` (time column 0 compared exactly after `shift`).
fn max_row_diff(a: &[Vec<f64>], b: &[Vec<f64>], skip: usize, shift: f64, cols: &[usize]) -> f64 {
    assert_eq!(a.len() + skip, b.len());
    let mut worst = 0.0f64;
    for (ra, rb) in a.iter().zip(&b[skip..]) {
        assert!((ra[0] + shift - rb[0]).abs() < 1e-12, "t {} vs {}", ra[0], rb[0]);
        for &c in cols {
            worst = worst.max((ra[c] - rb[c]).abs());
        }
    }
    worst
}

/// Largest |a - b| over two saved density matrices (manifold or blocks).
fn state_diff(a: &SavedState, b: &SavedState) -> f64 {
    let (x, y) = match (a, b) {
        (SavedState::Manifold(x), SavedState::Manifold(y)) => (&x.data, &y.data),
        (SavedState::Blocks(x), SavedState::Blocks(y)) => (&x.data, &y.data),
        _ => panic!("different kinds"),
    };
    x.iter().zip(y).map(|(p, q)| (p - q).norm()).fold(0.0, f64::max)
}

/// W of the header comment: the largest factor by which an entry error moves <J_a>.
fn w_manifold(n: usize) -> f64 {
    (n as f64 / 2.0 + 1.0) * (n as f64 + 1.0)
}

fn w_blocks(n: usize) -> f64 {
    dicke::basis::two_js(n)
        .iter()
        .map(|&t| (t as f64 / 2.0 + 1.0) * (t as f64 + 1.0))
        .sum()
}

/// Split 0 -> 1 -> 2 against 0 -> 2 for one model and method; returns (worst <J_a>-column
/// difference, the two final states).
fn split(model: &str, initial: &str, method: &str, n: usize) -> (f64, SavedState, SavedState) {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    ok(&scenario(model, initial, &task(0.0, 1.0, 11, method), true), &a);
    let s = ok(&scenario(model, &from(&a), &task(1.0, 2.0, 11, method), true), &b);
    assert_eq!(s.result["results"]["initial_from"]["t"], 1.0);
    ok(&scenario(model, initial, &task(0.0, 2.0, 21, method), true), &c);
    let ((_, rb), (_, rc)) = (csv(&b), csv(&c));
    // Jx, Jy, Jz.
    let worst = max_row_diff(&rb, &rc, 10, 0.0, &[1, 2, 3]);
    let (hb, sb) = saved(&b, n);
    let (hc, sc) = saved(&c, n);
    assert_eq!((hb.t, hc.t), (2.0, 2.0));
    assert_eq!(hb.model, hc.model, "the model at the final time");
    (worst, sb, sc)
}

const PUMPED: &str = "N = 10\nGamma = 1\nw = 0.3\nOmega = { ramp = [[0, 0.5], [2, 3.0]] }";

#[test]
fn manifold_split_equals_one_run() {
    let (worst, b, c) = split(PUMPED, "state = \"coherent\"\ntheta = 2.0", "exact", 10);
    let d = state_diff(&b, &c);
    eprintln!("manifold N = 10: max |rho_split - rho_one| = {d:e}, max |<J> diff| = {worst:e}");
    assert!(matches!(b, SavedState::Manifold(_)));
    assert!(d < 3.0 * DELTA, "{d:e}");
    assert!(worst < 3.0 * DELTA * w_manifold(10), "{worst:e}");
}

#[test]
fn blocks_split_equals_one_run() {
    let model =
        "N = 6\nGamma = 1\ngamma_down = 0.3\ngamma_phi = 0.2\nOmega = { ramp = [[0, 0.5], [2, 3.0]] }";
    let (worst, b, c) = split(model, "state = \"dicke\"\nm = \"-N/2 + 1\"", "exact", 6);
    let d = state_diff(&b, &c);
    eprintln!("blocks N = 6: max |R_split - R_one| = {d:e}, max |<J> diff| = {worst:e}");
    assert!(matches!(b, SavedState::Blocks(_)));
    assert!(d < 3.0 * DELTA, "{d:e}");
    assert!(worst < 3.0 * DELTA * w_blocks(6), "{worst:e}");
}

/// A manifold state starts a blocks run as R_{N/2} (other blocks 0): a collective leg then a
/// leg with single-atom decay equals one blocks run whose gamma_down steps on at t1.
#[test]
fn manifold_state_starts_a_blocks_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    let base = "N = 6\nGamma = 1\nOmega = 2";
    let initial = "state = \"dicke\"\nm = \"-N/2\"";
    ok(&scenario(base, initial, &task(0.0, 1.0, 11, "exact"), true), &a);
    assert!(matches!(saved(&a, 6).1, SavedState::Manifold(_)));
    let leg = format!("{base}\ngamma_down = 0.4");
    ok(&scenario(&leg, &from(&a), &task(1.0, 2.0, 11, "exact"), true), &b);
    let stepped = format!("{base}\ngamma_down = {{ steps = [[0, 0], [1, 0.4]] }}");
    ok(
        &scenario(&stepped, initial, &task(0.0, 2.0, 21, "exact"), true),
        &c,
    );
    let ((_, rb), (_, rc)) = (csv(&b), csv(&c));
    let worst = max_row_diff(&rb, &rc, 10, 0.0, &[1, 2, 3]);
    let d = state_diff(&saved(&b, 6).1, &saved(&c, 6).1);
    eprintln!("manifold -> blocks N = 6: max |R diff| = {d:e}, max |<J> diff| = {worst:e}");
    assert!(d < 3.0 * DELTA, "{d:e}");
    assert!(worst < 3.0 * DELTA * w_blocks(6), "{worst:e}");
}

#[test]
fn cumulant_and_meanfield_splits_equal_one_run() {
    let n = 40;
    let model =
        format!("N = {n}\nGamma = 0.05\nw = 0.01\nchi = 0.02\nOmega = {{ ramp = [[0, 0.5], [2, 3.0]] }}");
    for method in ["cumulant", "meanfield"] {
        let (worst, b, c) = split(&model, "state = \"coherent\"\ntheta = 2.5", method, n);
        let (SavedState::Moments(mb), SavedState::Moments(mc)) = (&b, &c) else {
            panic!("{method}: moments expected");
        };
        let second = (0..3)
            .flat_map(|a| (0..3).map(move |b| (a, b)))
            .map(|(i, j)| (mb.second[i][j] - mc.second[i][j]).abs())
            .fold(0.0, f64::max);
        eprintln!("{method} N = {n}: max |<J> diff| = {worst:e}, max |second-moment diff| = {second:e}");
        // O(1) variables within 3 delta, scaled by N/2 and N^2/4 (header comment).
        let nf = n as f64;
        assert!(worst < 3.0 * DELTA * nf / 2.0, "{method}: {worst:e}");
        assert!(second < 3.0 * DELTA * nf * nf / 4.0, "{method}: {second:e}");
    }
}

/// The chained run's time is its own: a second leg from t = 0 whose schedule is the first's
/// shifted by t1 gives the rows of the second half of one run (times shifted by t1).
#[test]
fn a_chained_run_restarts_its_own_clock() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    let model = |omega: &str| format!("N = 10\nGamma = 1\nw = 0.3\nOmega = {omega}");
    let whole = model("{ ramp = [[0, 0.5], [2, 3.0]] }");
    let initial = "state = \"dicke\"\nm = \"-N/2\"";
    ok(&scenario(&whole, initial, &task(0.0, 1.0, 11, "exact"), true), &a);
    // Omega(t) = 0.5 + 1.25 t: at t1 = 1 it is 1.75; the second leg from its own t = 0.
    let shifted = model("{ ramp = [[0, 1.75], [1, 3.0]] }");
    let s = ok(
        &scenario(&shifted, &from(&a), &task(0.0, 1.0, 11, "exact"), false),
        &b,
    );
    ok(
        &scenario(&whole, initial, &task(0.0, 2.0, 21, "exact"), false),
        &c,
    );
    let ((hb, rb), (_, rc)) = (csv(&b), csv(&c));
    assert_eq!(hb.last().map(String::as_str), Some("Omega"));
    let worst = max_row_diff(&rb, &rc, 10, 1.0, &[1, 2, 3, hb.len() - 1]);
    eprintln!("restarted clock: max diff = {worst:e}");
    assert!(worst < 3.0 * DELTA * w_manifold(10), "{worst:e}");
    assert!(
        !s.files.iter().any(|f| f.starts_with("final_state")),
        "{:?}",
        s.files
    );
}

/// A scan of evolutions starts every point from the saved state: its final rows equal single
/// chained evolutions at the scanned values (the same CPU solver from the same state).
#[test]
fn a_scan_of_evolutions_starts_every_point_from_the_saved_state() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let model = |omega: &str| format!("N = 10\nGamma = 1\nw = 0.3\nOmega = {omega}");
    let initial = "state = \"coherent\"\ntheta = 2.0";
    ok(
        &scenario(&model("1"), initial, &task(0.0, 0.5, 6, "exact"), true),
        &a,
    );
    let scan = format!(
        "[model]\n{}\n[initial]\n{}\n[task]\nkind = \"scan\"\nmode = \"evolve\"\n\
         variable = \"Omega\"\nvalues = [0.5, 2.0]\nt_end = 0.4\nn_times = 5\nrtol = {RTOL}\n\
         atol = {ATOL}\n[output]\nplot = false\n",
        model("1"),
        from(&a)
    );
    let s = tmp.path().join("scan");
    ok(&scan, &s);
    let (header, rows) = csv(&s);
    assert_eq!(header[0], "Omega");
    for (k, omega) in ["0.5", "2.0"].iter().enumerate() {
        let one = tmp.path().join(format!("one{k}"));
        ok(
            &scenario(&model(omega), &from(&a), &task(0.0, 0.4, 5, "exact"), false),
            &one,
        );
        let (_, r) = csv(&one);
        let last = r.last().unwrap();
        for c in 1..=3 {
            assert!(
                (rows[k][c] - last[c]).abs() < 1e-12,
                "Omega = {omega}, column {c}: {} vs {}",
                rows[k][c],
                last[c]
            );
        }
    }
}

/// Mean field and cumulants start from the moments of an exact state: their first row is the
/// exact run's last (rounding only: the moments are copied or recomputed from rho).
#[test]
fn approximate_methods_start_from_the_moments_of_a_density_matrix() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    ok(
        &scenario(
            PUMPED,
            "state = \"coherent\"\ntheta = 2.0",
            &task(0.0, 0.5, 6, "exact"),
            true,
        ),
        &a,
    );
    let (_, ra) = csv(&a);
    let last = ra.last().unwrap();
    for (method, cols) in [("cumulant", vec![1, 2, 3, 6, 7, 8]), ("meanfield", vec![1, 2, 3])] {
        let b = tmp.path().join(method);
        ok(
            &scenario(PUMPED, &from(&a), &task(0.0, 0.1, 2, method), false),
            &b,
        );
        let (_, rb) = csv(&b);
        for &c in &cols {
            let scale = last[c].abs().max(1.0);
            assert!(
                (rb[0][c] - last[c]).abs() < 1e-12 * scale,
                "{method} column {c}: {} vs {}",
                rb[0][c],
                last[c]
            );
        }
    }
}

/// Write a file's bytes with `f` applied.
fn mangle(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).unwrap();
    f(&mut bytes);
    std::fs::write(path, bytes).unwrap();
}

fn fnv1a64(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn copy_dir(from: &Path, to: &Path) -> PathBuf {
    std::fs::create_dir_all(to).unwrap();
    for f in [final_state::HEADER_FILE, final_state::DATA_FILE] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
    to.to_path_buf()
}

/// Every error names `initial.state.from` and the directory as written, and says what was
/// expected; none is a panic.
#[test]
fn every_bad_source_is_an_input_error_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    let initial = "state = \"coherent\"\ntheta = 2.0";
    ok(
        &scenario(PUMPED, initial, &task(0.0, 0.2, 3, "exact"), true),
        &good,
    );
    let moments = tmp.path().join("moments");
    ok(
        &scenario(PUMPED, initial, &task(0.0, 0.2, 3, "cumulant"), true),
        &moments,
    );
    let out = tmp.path().join("out");
    let try_from = |dir: &Path, model: &str, method: &str| -> String {
        let e = err(
            &scenario(model, &from(dir), &task(0.0, 0.1, 2, method), false),
            &out,
        );
        assert!(
            e.contains("`initial.state.from`") && e.contains(&format!("\"{}\"", dir.display())),
            "{e}"
        );
        assert!(!out.exists(), "a refused run leaves nothing: {e}");
        e
    };
    let expect = |e: &str, words: &[&str]| {
        for w in words {
            assert!(e.contains(w), "`{w}` missing in: {e}");
        }
    };
    // A missing directory; a directory without the files.
    let e = try_from(&tmp.path().join("nowhere"), PUMPED, "exact");
    expect(&e, &["not a directory", "current directory"]);
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    expect(
        &try_from(&empty, PUMPED, "exact"),
        &["final_state.json", "final_state = true"],
    );
    // Another N.
    let e = try_from(&good, &PUMPED.replace("N = 10", "N = 12"), "exact");
    expect(&e, &["N = 12", "N = 10"]);
    // Moments cannot start the exact method (they can start cumulants).
    expect(
        &try_from(&moments, PUMPED, "exact"),
        &["\"moments\"", "cumulant", "do not determine"],
    );
    ok(
        &scenario(PUMPED, &from(&moments), &task(0.0, 0.1, 2, "cumulant"), false),
        &out,
    );
    std::fs::remove_dir_all(&out).unwrap();
    // A truncated data file.
    let d = copy_dir(&good, &tmp.path().join("truncated"));
    mangle(&d.join(final_state::DATA_FILE), |b| b.truncate(b.len() - 8));
    expect(&try_from(&d, PUMPED, "exact"), &["truncated", "bytes"]);
    // A flipped bit in the data: the hash.
    let d = copy_dir(&good, &tmp.path().join("corrupt"));
    mangle(&d.join(final_state::DATA_FILE), |b| {
        let k = b.len() - 20;
        b[k] ^= 1
    });
    expect(&try_from(&d, PUMPED, "exact"), &["hash", "corrupt"]);
    // A mangled npy header of the same length.
    let d = copy_dir(&good, &tmp.path().join("npy"));
    mangle(&d.join(final_state::DATA_FILE), |b| b[12] = b'X');
    expect(&try_from(&d, PUMPED, "exact"), &["npy header"]);
    // A NaN with a matching hash: the finite check.
    let d = copy_dir(&good, &tmp.path().join("nan"));
    let data = std::fs::read(d.join(final_state::DATA_FILE)).unwrap();
    let start = data.len() - 121 * 16;
    let mut nan = data.clone();
    nan[start..start + 8].copy_from_slice(&f64::NAN.to_le_bytes());
    std::fs::write(d.join(final_state::DATA_FILE), &nan).unwrap();
    let hash = fnv1a64(&nan[start..]);
    let old = fnv1a64(&data[start..]);
    mangle(&d.join(final_state::HEADER_FILE), |b| {
        *b = String::from_utf8(b.clone())
            .unwrap()
            .replace(&old, &hash)
            .into_bytes()
    });
    expect(&try_from(&d, PUMPED, "exact"), &["finite", "NaN"]);
    // Headers: garbage, not dicke's, another version, fields that do not parse.
    let d = copy_dir(&good, &tmp.path().join("garbage"));
    std::fs::write(d.join(final_state::HEADER_FILE), b"\x00\x01 not json").unwrap();
    expect(&try_from(&d, PUMPED, "exact"), &["not JSON"]);
    let header = std::fs::read_to_string(good.join(final_state::HEADER_FILE)).unwrap();
    let variants = [
        (
            "format",
            header.replace("dicke-final-state", "something-else"),
            "`format`",
        ),
        (
            "version",
            header.replace("\"version\": 1", "\"version\": 2"),
            "version 2",
        ),
        (
            "fields",
            header.replace("\"kind\": \"manifold\"", "\"kind\": 7"),
            "do not parse",
        ),
        (
            "kind",
            header.replace("\"kind\": \"manifold\"", "\"kind\": \"blocks\""),
            "`data`",
        ),
    ];
    for (name, text, word) in variants {
        let d = copy_dir(&good, &tmp.path().join(name));
        std::fs::write(d.join(final_state::HEADER_FILE), text).unwrap();
        expect(&try_from(&d, PUMPED, "exact"), &[word]);
    }
}

/// Pure-state tasks refuse `from` at load, as they refuse the other mixed states; so does a
/// fidelity reference; `final_state = true` is for kind = "evolve" only; the table's shape.
#[test]
fn from_is_refused_where_only_pure_states_or_no_final_state_fit() {
    let model = "[model]\nN = 4\nGamma = 1\nOmega = 1\n";
    let traj = format!(
        "{model}[initial]\nstate = {{ from = \"x\" }}\n[task]\nkind = \"trajectories\"\nntraj = 4\nt_end = 1\n"
    );
    let tmp = tempfile::tempdir().unwrap();
    let e = err(&traj, &tmp.path().join("t"));
    assert!(
        e.contains("initial.state") && e.contains("{ from = \"x\" }") && e.contains("pure state"),
        "{e}"
    );
    let fid = format!(
        "{model}[initial]\nstate = \"dicke\"\nm = -2\n[observables]\ncolumns = [\"fidelity\"]\n\
         fidelity = {{ state = {{ from = \"x\" }} }}\n[task]\nkind = \"evolve\"\nt_end = 1\n"
    );
    let e = parse(&fid, "t", &[]).unwrap_err().to_string();
    assert!(
        e.contains("observables.fidelity.state") && e.contains("pure state"),
        "{e}"
    );
    let steady = format!("{model}[task]\nkind = \"steady_state\"\n[output]\nfinal_state = true\n");
    let e = parse(&steady, "t", &[]).unwrap_err().to_string();
    assert!(
        e.contains("output.final_state") && e.contains("kind = \"evolve\"") && e.contains("steady_state"),
        "{e}"
    );
    let evolve = |state: &str| format!("{model}[initial]\n{state}\n[task]\nkind = \"evolve\"\nt_end = 1\n");
    for (state, words) in [
        ("state = { form = \"x\" }", vec!["unknown field `form`", "from"]),
        ("state = { from = 3 }", vec!["invalid type"]),
        ("state = {}", vec!["missing field `from`"]),
        (
            "state = { from = \"\" }",
            vec!["initial.state.from", "output directory"],
        ),
        (
            "state = { from = \"x\" }\nm = 1",
            vec!["initial.m", "no `m`", "{ from = \"x\" }"],
        ),
        ("state = { from = \"x\" }\nw = 1", vec!["initial.w", "no `w`"]),
    ] {
        let e = parse(&evolve(state), "t", &[]).unwrap_err().to_string();
        for w in words {
            assert!(e.contains(w), "{state}: `{w}` missing in: {e}");
        }
    }
}

/// A chained run into its own directory replaces the final state when it completes; one that
/// fails leaves the earlier run's files byte for byte (the output transaction).
#[test]
fn chaining_in_place_and_failures_keep_earlier_results() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let initial = "state = \"coherent\"\ntheta = 2.0";
    ok(
        &scenario(PUMPED, initial, &task(0.0, 0.5, 6, "exact"), true),
        &dir,
    );
    let files = |d: &Path| -> Vec<Vec<u8>> {
        [
            "final_state.json",
            "final_state.npy",
            "observables.csv",
            "result.json",
        ]
        .iter()
        .map(|f| std::fs::read(d.join(f)).unwrap())
        .collect()
    };
    let before = files(&dir);
    // Two failing legs: another N (refused before anything is written) and a solver failure
    // (max_steps = 1, after the first row: its partial output goes to failed-*).
    let e = err(
        &scenario(
            &PUMPED.replace("N = 10", "N = 8"),
            &from(&dir),
            &task(0.5, 1.0, 6, "exact"),
            true,
        ),
        &dir,
    );
    assert!(e.contains("N = 8"), "{e}");
    assert_eq!(files(&dir), before);
    let steps = task(0.5, 1.0, 6, "exact").replace("[task]\n", "[task]\nmax_steps = 1\n");
    let e = err(&scenario(PUMPED, &from(&dir), &steps, true), &dir);
    assert!(e.contains("failed-"), "{e}");
    assert_eq!(files(&dir), before, "a failed run changes nothing in DIR");
    // In place: reads the old state, then replaces it.
    ok(
        &scenario(PUMPED, &from(&dir), &task(0.5, 1.0, 6, "exact"), true),
        &dir,
    );
    let (h, _) = saved(&dir, 10);
    assert_eq!(h.t, 1.0);
}

/// End to end through the binary: `--set output.final_state=true`, then a chained run; the
/// file list and `results.initial_from`; the memory limit checked before the numbers are read.
#[test]
fn cli_chains_two_runs() {
    use common::{Toml, run_scenario};
    let first = scenario(
        PUMPED,
        "state = \"dicke\"\nm = \"-N/2\"",
        &task(0.0, 0.3, 4, "exact"),
        false,
    );
    let a = run_scenario(Toml::Text(&first), &["--set", "output.final_state=true"]);
    a.assert_ok();
    let files = a.result()["files"].clone();
    assert!(
        files.as_array().unwrap().iter().any(|f| f == "final_state.npy")
            && files.as_array().unwrap().iter().any(|f| f == "final_state.json"),
        "{files}"
    );
    let header = a.json("final_state.json");
    assert_eq!(header["format"], "dicke-final-state");
    assert_eq!(header["version"], 1);
    assert_eq!(header["kind"], "manifold");
    assert_eq!(header["N"], 10);
    assert_eq!(header["t"], 0.3);
    // Omega at t = 0.3 on its ramp: 0.5 + 1.25 * 0.3.
    assert!((header["model"]["Omega"].as_f64().unwrap() - 0.875).abs() < 1e-12);
    assert_eq!(header["data"]["shape"], serde_json::json!([11, 11]));
    let second = scenario(PUMPED, &from(&a.out), &task(0.3, 0.6, 4, "cumulant"), false);
    let b = run_scenario(Toml::Text(&second), &[]);
    b.assert_ok();
    let r = b.result();
    assert_eq!(r["results"]["initial_from"]["kind"], "manifold");
    assert_eq!(r["results"]["initial_from"]["t"], 0.3);
    assert_eq!(r["results"]["initial_from"]["method"], "exact");
    let c = run_scenario(Toml::Text(&second), &["--memory-limit", "0"]);
    assert!(!c.ok);
    assert!(
        c.stderr.contains("reading the final state") && c.stderr.contains("--memory-limit"),
        "{}",
        c.stderr
    );
}
