//! `[analysis.switching]` of `kind = "trajectories"` (issue 13 item 4; seed 000 Fig. 4 and
//! eqs. 9-10): the classifier's parameters before the run ([`classifier`]: thresholds given,
//! or from the exact steady state's bimodal P_m), and after it the statistics of
//! [`crate::analysis::switching`] written as `switching.csv` (one row per dwell:
//! `trajectory, phase, start, duration, censored`; phase 0 = lower, 1 = upper; censored 1 for
//! the left-truncated first and the right-censored last dwell), `switching.json` (rates out of
//! each phase with exact 95 % intervals, counts, times, thresholds and their source, window,
//! telegraph fit) and `switching.png` (dwell-time histograms of the complete dwells, log
//! scale, with the exponential law of the counted rate).
//!
//! Thresholds from P_m: the two highest local maxima of the steady state's P_m, the lowest
//! point between them; `lo`/`hi` are the lower/upper peak (core sets).

use super::report::jnum;
use crate::analysis::switching::{self as stats, Dwell, Event, Rate, TrajectoryEvents};
use crate::error::{Error, InputError};
use crate::model::Model;
use crate::output::{CsvWriter, plot, write_json};
use crate::scenario::SwitchingSpec;
use crate::solver::trajectory::{Classifier, EnsembleResult, PhaseChanges, decode_event};
use serde_json::{Value, json};
use std::path::Path;

/// Largest estimated memory of the exact steady state solved for the thresholds (bytes); beyond
/// it `thresholds` must be given.
const MAX_THRESHOLD_SOLVE_BYTES: f64 = 2e9;

/// The classifier of `spec` for `model`, and where its thresholds came from (result JSON).
pub fn classifier(spec: &SwitchingSpec, model: &Model) -> Result<(Classifier, Value), Error> {
    let (lo, hi, source) = match spec.thresholds {
        Some([lo, hi]) => (lo, hi, json!({"source": "given"})),
        None => thresholds_from_steady_state(model)?,
    };
    let c = Classifier {
        alpha: spec.alpha(),
        lo,
        hi,
        max_events: spec.max_events,
    };
    Ok((c, source))
}

fn no_thresholds(why: String) -> Error {
    InputError::invalid(
        "analysis.switching.thresholds",
        "not given",
        format!("thresholds = [lo, hi] (Jz values): {why}"),
    )
    .into()
}

/// `(lo, hi, source)` from P_m of the exact steady state (module doc).
fn thresholds_from_steady_state(model: &Model) -> Result<(f64, f64, Value), Error> {
    let bytes = if model.is_collective() {
        0.0
    } else {
        crate::solver::blocks::steady_state_memory_estimate(model)
    };
    if bytes > MAX_THRESHOLD_SOLVE_BYTES {
        return Err(no_thresholds(format!(
            "the exact steady state at N = {} (estimated {:.1} GB) is too large to find them \
             from its P_m",
            model.n,
            bytes / 1e9
        )));
    }
    let (state, _) = super::steady_state::solve(model)?;
    let pm = match &state {
        super::rows::OwnedState::Sym(rho) => crate::observe::pm(rho),
        super::rows::OwnedState::Blocks(s) => crate::observe::pm_blocks(s),
    };
    let half = model.n as f64 / 2.0;
    let m: Vec<f64> = (0..pm.len()).map(|k| k as f64 - half).collect();
    let (lo, hi, at) = stats::thresholds_from_distribution(&m, &pm)
        .map_err(|why| no_thresholds(format!("{why} at this point")))?;
    let source = json!({
        "source": "steady-state P_m (exact solver): lo, hi at its two peaks (core sets)",
        "peak_low_m": at[0],
        "minimum_m": at[1],
        "peak_high_m": at[2],
    });
    Ok((lo, hi, source))
}

/// The events of every trajectory in the analysis' form.
pub fn events_of(changes: &[PhaseChanges]) -> Vec<TrajectoryEvents> {
    changes
        .iter()
        .map(|c| TrajectoryEvents {
            trajectory: c.index,
            events: c
                .events
                .iter()
                .map(|&e| {
                    let (save, upper) = decode_event(e);
                    Event { save, upper }
                })
                .collect(),
        })
        .collect()
}

fn rate_json(r: &Rate) -> Value {
    json!({
        "rate": jnum(r.rate),
        "ci95": [jnum(r.lo95), jnum(r.hi95)],
        "switches": r.switches,
        "time": jnum(r.time),
        "complete_dwells": r.complete,
    })
}

/// Groups of trajectories for the telegraph fit's honest error (at least 8 trajectories
/// each, at most this many groups).
const TELEGRAPH_GROUPS: usize = 8;

/// The upper-phase fraction among classified trajectories from the first save at or after
/// `t_burn` where every trajectory is classified, and its telegraph fit (module doc of
/// [`crate::analysis::switching`]).
fn telegraph(events: &[TrajectoryEvents], times: &[f64], t_burn: f64, ntraj: u64, g_guess: f64) -> Value {
    let occ = stats::occupation(events, times.len());
    let first = (0..times.len()).find(|&i| times[i] >= t_burn && occ[i][0] + occ[i][1] == ntraj);
    let Some(i0) = first else {
        return json!({"fit": null, "why": "no save after t_burn with every trajectory classified"});
    };
    let t = &times[i0..];
    let p = stats::upper_fraction(events, times.len(), i0);
    // Independent groups give the honest error (module doc of analysis::switching).
    let groups = (ntraj / 8).clamp(2, TELEGRAPH_GROUPS as u64) as usize;
    let grouped = (ntraj >= 8)
        .then(|| stats::telegraph_group_se(events, times, i0, g_guess, groups))
        .flatten();
    match stats::telegraph_fit(t, &p, g_guess) {
        None => json!({"fit": null, "why": "the least-squares fit did not converge"}),
        Some(f) => json!({
            "G_se_groups": grouped.map(|(se, _)| jnum(se)),
            "groups": grouped.map(|(_, k)| k),
            "model": "p_up(t) = p_inf + (p0 - p_inf) exp(-G (t - t0)), G = G_lu + G_ul, p_inf = G_lu / G",
            "t0": jnum(f.t0),
            "points": f.points,
            "G": jnum(f.g), "G_se": jnum(f.se_g),
            "p_inf": jnum(f.p_inf), "p_inf_se": jnum(f.se_p_inf),
            "p0": jnum(f.p0), "p0_se": jnum(f.se_p0),
            "lower_to_upper": jnum(f.g_lu), "lower_to_upper_se": jnum(f.se_g_lu),
            "upper_to_lower": jnum(f.g_ul), "upper_to_lower_se": jnum(f.se_g_ul),
            "rms_residual": jnum(f.rms),
            "errors": "the *_se: least squares, unit weights, sqrt(diag((J^T J)^-1) RSS/(n-3)); \
                       saves are correlated (the same trajectories), so these understate the \
                       uncertainty. G_se_groups: sd of G over `groups` interleaved groups of \
                       trajectories (independent) / sqrt(groups), the honest error of G \
                       (null with fewer than 8 trajectories)",
        }),
    }
}

/// Write `switching.csv`, `switching.json` and (with `plot`) `switching.png`; returns the
/// files and the JSON (also for result.json).
pub fn write(
    dir: &Path,
    spec: &SwitchingSpec,
    c: &Classifier,
    source: &Value,
    ens: &EnsembleResult,
    plot: bool,
) -> Result<(Vec<String>, Value), Error> {
    let times = &ens.times;
    let events = events_of(&ens.changes);
    let dwells = stats::dwells(&events, times);
    let mut csv = CsvWriter::create(
        &dir.join("switching.csv"),
        &["trajectory", "phase", "start", "duration", "censored"].map(String::from),
    )?;
    for d in &dwells {
        csv.row(&[
            d.trajectory as f64,
            f64::from(u8::from(d.upper)),
            d.start,
            d.duration,
            f64::from(u8::from(d.censored)),
        ])?;
    }
    let [lower, upper] = stats::rates(&dwells, spec.t_burn);
    let sum = lower.rate + upper.rate;
    let quad = |a: f64, b: f64| a.hypot(b);
    let g_guess = if sum.is_finite() && sum > 0.0 {
        sum
    } else {
        1.0 / (times[times.len() - 1] - times[0]).max(f64::MIN_POSITIVE)
    };
    let classified = events.iter().filter(|e| !e.events.is_empty()).count();
    let out = json!({
        "observable": "Jz",
        "phases": {"0": "lower", "1": "upper"},
        "thresholds": {"lo": c.lo, "hi": c.hi, "from": source},
        "window": spec.window,
        "window_default": !spec.window_given,
        "alpha": c.alpha,
        "dt_save": spec.dt_save,
        "t_burn": spec.t_burn,
        "max_events": c.max_events,
        "ntraj": ens.ntraj,
        "classified_trajectories": classified,
        "dwells": dwells.len(),
        "lower_to_upper": rate_json(&lower),
        "upper_to_lower": rate_json(&upper),
        "sum": {
            "rate": jnum(sum),
            "ci95": [jnum(sum - quad(lower.rate - lower.lo95, upper.rate - upper.lo95)),
                     jnum(sum + quad(lower.hi95 - lower.rate, upper.hi95 - upper.rate))],
            "interval": "sum of the two rates; half-widths of the exact intervals added in quadrature",
        },
        "rates_method": "exponential maximum likelihood with censoring: switches out of a phase / \
                         time spent in it after t_burn; exact Poisson (chi-square) 95 % intervals",
        "telegraph": telegraph(&events, times, spec.t_burn, ens.ntraj, g_guess),
    });
    write_json(&dir.join("switching.json"), &out)?;
    let mut files = vec!["switching.csv".to_string(), "switching.json".to_string()];
    if plot {
        histogram(dir, &dwells, spec.t_burn, &[lower, upper])?;
        files.push("switching.png".into());
    }
    Ok((files, out))
}

/// `switching.png`: per phase, log10 of the number of complete dwells (starting after t_burn)
/// per bin of dwell time, and the exponential law of the counted rate,
/// `n_complete (e^{-G a} - e^{-G b})` for the bin [a, b).
fn histogram(dir: &Path, dwells: &[Dwell], t_burn: f64, rates: &[Rate; 2]) -> Result<(), Error> {
    const BINS: usize = 30;
    let complete = |upper: bool| -> Vec<f64> {
        dwells
            .iter()
            .filter(|d| d.upper == upper && !d.censored && d.start >= t_burn)
            .map(|d| d.duration)
            .collect()
    };
    let (lo, hi) = (complete(false), complete(true));
    let top = lo.iter().chain(&hi).cloned().fold(0.0, f64::max);
    let width = if top > 0.0 { top / BINS as f64 } else { 1.0 };
    let x: Vec<f64> = (0..BINS).map(|b| (b as f64 + 0.5) * width).collect();
    let series = |d: &[f64], rate: f64| -> (Vec<f64>, Vec<f64>) {
        let mut counts = vec![0.0f64; BINS];
        for &v in d {
            counts[((v / width) as usize).min(BINS - 1)] += 1.0;
        }
        let n = d.len() as f64;
        let law = (0..BINS)
            .map(|b| {
                let (a, e) = (b as f64 * width, (b + 1) as f64 * width);
                (n * ((-rate * a).exp() - (-rate * e).exp())).log10()
            })
            .collect();
        let logc = counts
            .iter()
            .map(|&c| if c > 0.0 { c.log10() } else { f64::NAN })
            .collect();
        (logc, law)
    };
    let (cl, ll) = series(&lo, rates[0].rate);
    let (cu, lu) = series(&hi, rates[1].rate);
    let name = |p: &str, r: &Rate| format!("exp. law, G_{p} = {:.4} (MLE)", r.rate);
    let (nl, nu) = (name("lu", &rates[0]), name("ul", &rates[1]));
    let panels = vec![
        (
            "log10 count, lower phase",
            vec![
                plot::Series {
                    name: "complete dwells in the lower phase",
                    y: &cl,
                },
                plot::Series { name: &nl, y: &ll },
            ],
        ),
        (
            "log10 count, upper phase",
            vec![
                plot::Series {
                    name: "complete dwells in the upper phase",
                    y: &cu,
                },
                plot::Series { name: &nu, y: &lu },
            ],
        ),
    ];
    plot::line_plot(
        &dir.join("switching.png"),
        &format!(
            "dwell-time histograms ({} + {} complete dwells, bin {width:.3})",
            lo.len(),
            hi.len()
        ),
        "dwell time t (time unit of the model's rates, e.g. 1/gamma)",
        &x,
        &panels,
    )?;
    Ok(())
}
