//! Switching statistics from trajectories (`[analysis.switching]`, issue 13 item 4): the on-line
//! classifier of the CPU twin and of the WGSL kernel emit the same phase changes, and the
//! counted switching rates of seed 000's bistable model at N = 18 add up to the Liouvillian
//! gap lambda_1 (seed 000 eq. 10: Gamma_+- = lambda_1 a_-+, a_+ + a_- ~ 1). The statistics
//! themselves are unit-tested on synthetic telegraph signals in `analysis::switching`.
//!
//! GPU tests use `backend::gpu::test_context`: without an adapter they print `SKIPPED: ...`
//! and return; with `DICKE_REQUIRE_GPU=1` (CI, lavapipe) a missing adapter fails them.

use dicke::analysis::switching::{self as stats, Event, TrajectoryEvents};
use dicke::model::Model;
use dicke::solver::trajectory::{
    Classifier, EnsembleResult, Precision, TrajectoryOptions, decode_event, run_cpu,
};
use dicke::state::pure;

/// Seed 000 (PHYSICS.md sec. 1 mapping, as scenarios/bistability_steady_state.toml): gamma =
/// gamma_1D + gamma_F = 1, Gamma_MF = (N - 1) gamma_1D = 15.5, Omega = 2 x Gamma_MF / 4.
fn seed000(n: usize, x: f64) -> Model {
    let g1d = 15.5 / (n as f64 - 1.0);
    Model {
        n,
        gamma_coll: g1d,
        gamma_down: 1.0 - g1d,
        drive: 2.0 * x * 15.5 / 4.0,
        ..Default::default()
    }
}

/// The engine's Liouvillian gap at N = 18, x = 0.70 (`kind = "spectrum"` on the blocks,
/// `solver::spectrum::eigenvalues`).
const LAMBDA_1: f64 = 0.010734;

/// Thresholds on the smoothed Jz at N = 18, x = 0.70 (P_m has the lower peak at m = -7 and
/// only a shoulder at m ~ -1 here, so they are given): lower phase below -5, upper above -3.
fn classifier(window: f64, dt_save: f64) -> Classifier {
    Classifier {
        alpha: -(-dt_save / window).exp_m1(),
        lo: -5.0,
        hi: -3.0,
        max_events: 256,
    }
}

fn events(ens: &EnsembleResult) -> Vec<TrajectoryEvents> {
    ens.changes
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

/// Seed 000 at N = 18, x = 0.70, 64 trajectories to t = 1500 saved every 1/gamma, smoothing
/// window 6/gamma: the two counted rates (exponential MLE) add up to lambda_1 within their
/// combined 95 % interval (half-widths in quadrature), and the stationary upper fraction of
/// the telegraph fit agrees with the counted G_lu / (G_lu + G_ul) within 0.05 (the fraction
/// of 64 correlated trajectories: about 2.5 of its standard deviations). About 12 s of CPU.
///
/// Measured (README, "Switching statistics"): the counted sum depends on the window through
/// missed short dwells and spurious ones (window 3: +21 %, 6: +1 %, 10: -14 % against
/// lambda_1); the telegraph fit's G is about half of lambda_1 at this ensemble size (the rise
/// from the initial state is delayed and the fraction is noisy), and is not asserted. The
/// window 6 was picked after measuring 3, 6 and 10 on this seed, so this agreement is not an
/// independent check of the window: choosing it from the dwell statistics is open (issue 13).
#[test]
fn cpu_counted_rates_add_up_to_the_liouvillian_gap_n18() {
    let n = 18;
    let model = seed000(n, 0.70);
    let psi0 = pure::dicke(n, -(n as f64) / 2.0).unwrap();
    let times: Vec<f64> = (0..=1500).map(|i| i as f64).collect();
    let opts = TrajectoryOptions {
        ntraj: 64,
        seed: 1,
        precision: Precision::F64,
        classifier: Some(classifier(6.0, 1.0)),
        ..Default::default()
    };
    let start = std::time::Instant::now();
    let ens = run_cpu(&model, &psi0, &times, &opts).unwrap();
    let ev = events(&ens);
    let [lower, upper] = stats::rates(&stats::dwells(&ev, &times), 0.0);
    let sum = lower.rate + upper.rate;
    let lo = sum - (lower.rate - lower.lo95).hypot(upper.rate - upper.lo95);
    let hi = sum + (lower.hi95 - lower.rate).hypot(upper.hi95 - upper.rate);
    let occ = stats::occupation(&ev, times.len());
    let p: Vec<f64> = occ
        .iter()
        .map(|o| o[0] as f64 / (o[0] + o[1]).max(1) as f64)
        .collect();
    let fit = stats::telegraph_fit(&times[1..], &p[1..], sum).expect("telegraph fit");
    eprintln!(
        "N = 18, x = 0.70: G_lu = {:.5} [{:.5}, {:.5}] ({} switches), G_ul = {:.5} [{:.5}, {:.5}] \
         ({} switches), sum {sum:.5} [{lo:.5}, {hi:.5}] vs lambda_1 {LAMBDA_1}; telegraph G = \
         {:.5} +- {:.5}, p_inf = {:.3}; {:.1} s",
        lower.rate,
        lower.lo95,
        lower.hi95,
        lower.switches,
        upper.rate,
        upper.lo95,
        upper.hi95,
        upper.switches,
        fit.g,
        fit.se_g,
        fit.p_inf,
        start.elapsed().as_secs_f64()
    );
    assert!(
        lower.switches > 100 && upper.switches > 100,
        "{lower:?} {upper:?}"
    );
    assert!(
        lo <= LAMBDA_1 && LAMBDA_1 <= hi,
        "sum {sum} [{lo}, {hi}] vs {LAMBDA_1}"
    );
    let counted = lower.rate / sum;
    assert!(
        (fit.p_inf - counted).abs() < 0.05,
        "p_inf {} vs counted {counted}",
        fit.p_inf
    );
}

/// The kernel's classifier emits the twin's phase changes exactly: N = 18, x = 0.70, 8
/// trajectories to t = 300 (f64, the workgroup mapping with one level per invocation, where
/// kernel and twin agree bit for bit on lavapipe: lanes = 32 for 19 levels), both ways.
#[cfg(feature = "gpu")]
#[test]
fn gpu_classifier_matches_cpu_twin_events() {
    use dicke::backend::gpu::test_context;
    use dicke::backend::gpu::trajectory::{TrajectoryGpu, run_gpu};
    let test = "gpu_classifier_matches_cpu_twin_events";
    let Some(ctx) = test_context(test) else { return };
    if !ctx.info().has_f64 {
        dicke::backend::gpu::report_skip(&format!("SKIPPED: {test}: the adapter has no SHADER_F64"));
        return;
    }
    let engine = TrajectoryGpu::new(ctx).expect("trajectory pipelines");
    let n = 18;
    let model = seed000(n, 0.70);
    let psi0 = pure::dicke(n, -(n as f64) / 2.0).unwrap();
    let times: Vec<f64> = (0..=300).map(|i| i as f64).collect();
    let opts = TrajectoryOptions {
        ntraj: 8,
        seed: 3,
        precision: Precision::F64,
        lanes: 32,
        classifier: Some(classifier(6.0, 1.0)),
        ..Default::default()
    };
    let start = std::time::Instant::now();
    let gpu = run_gpu(&engine, &model, &psi0, &times, &opts).unwrap();
    let gpu_s = start.elapsed().as_secs_f64();
    let cpu = run_cpu(&model, &psi0, &times, &opts).unwrap();
    let switches: u32 = cpu.changes.iter().map(|c| c.count.saturating_sub(1)).sum();
    eprintln!(
        "{test}: {} trajectories, {switches} switches (after the first classification), GPU {gpu_s:.1} s",
        cpu.changes.len()
    );
    assert_eq!(cpu.changes.len(), 8);
    assert!(switches >= 4, "too few switches to compare: {:?}", cpu.changes);
    assert_eq!(gpu.changes, cpu.changes);
    assert_eq!(gpu.mean, cpu.mean, "the records differ");
}
