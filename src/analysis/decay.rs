//! The late-time decay rate of a relaxing series: d(t) = <O>(t) - <O>(inf) ~ A e^{-lambda t}.
//!
//! At late times a master-equation evolution relaxes along its slowest Liouvillian mode,
//! d(t) = sum_k c_k e^{-lambda_k t} -> c_1 e^{-lambda_1 t} (real lambda_1 > 0, the gap, when
//! the slowest mode is real and O couples to it), so ln|d| is a straight line of slope
//! -lambda_1 there. [`fit`] finds that line.
//!
//! # The fit
//!
//! Weighted linear least squares of y_i = ln|d_i| = c - lambda t_i over a window of samples.
//! With sigma the absolute accuracy of d (the caller's estimate, from the integrator's atol),
//! the error of y_i is about sqrt((sigma/|d_i|)^2 + eps^2) (relative error eps of the samples
//! above the floor, taken as the unit): the weights w_i = d_i^2 / (d_i^2 + sigma^2) are ~1 in
//! the window and fall off towards the floor. The slope's standard error is the usual one with
//! the scale estimated from the residuals r_i:
//!
//! ```text
//! s^2 = sum w_i r_i^2 / (n - 2),   stderr = sqrt(s^2 / sum w_i (t_i - tbar_w)^2)
//! ```
//!
//! # The window (chosen automatically)
//!
//! 1. Usable samples: finite, |d_i| > floor = 1e3 sigma ([`FLOOR_FACTOR`]). The tail is the
//!    last run of consecutive usable samples of one sign, ending at the last usable sample e
//!    (a sign change inside the tail: relaxation that oscillates, a complex slowest mode).
//! 2. Candidate windows [a, e] all end at e, from the shortest, [`MIN_SAMPLES`] samples, to
//!    the whole tail (at most [`MAX_CANDIDATES`] starts, evenly spaced). A window agrees when
//!    its slope lambda(a) is within [`AGREE_SIGMAS`] standard errors of the slope lambda_h(a)
//!    of its latter half (the last ceil((e - a + 1) / 2) samples), plus the slope resolution
//!    that the accuracy of d allows there:
//!
//!    ```text
//!    |lambda(a) - lambda_h(a)| <= 2 stderr_h(a) + acc_h(a),
//!    acc(range) = 2 sigma / min|d| / (t_e - t_start of the range)
//!    ```
//!
//!    (an error sigma of d moves ln|d| by up to sigma/|d|; smooth, noise-free data such as an
//!    integrator's has tiny residuals, and without acc the slight bend that the error makes
//!    near the floor would reject every window). An earlier transient bends ln|d| and makes
//!    every window reaching into it disagree. The longest agreeing window (the earliest a;
//!    not "grow until the first disagreement": with noise, 2-sigma tests of hundreds of
//!    nested windows fail by chance, ~4 % each, long before the transient) sits where the
//!    transient's bias is at the test's threshold, picked as the extreme of many noisy tests;
//!    the window fitted is its latter three quarters (a margin of a quarter of its length,
//!    over which the transient's bias falls by e^{-(lambda_2 - lambda_1) x margin}). Measured
//!    on two exponentials plus noise (this module's tests): without the margin the fitted
//!    rate sat ~1.3 standard errors of the systematic term off, always on the transient's side.
//! 3. If no window agrees, the tail is not yet single-exponential (t_end too short for the
//!    faster modes to die out): no fit ([`NoFit::NotSingleExponential`]).
//!
//! # The uncertainty
//!
//! - `stderr`: the window's slope error from its residuals (above);
//! - `systematic` = |lambda - lambda_h| + sqrt(stderr_h^2 - stderr^2): the fit on the
//!   window against the fit on its latter half (the curvature left in the window), at its
//!   upper one-sigma value (the difference of the nested fits has that standard error);
//! - `accuracy`: acc of the whole window (above);
//!
//! combined as lambda_err = sqrt(stderr^2 + systematic^2 + accuracy^2).
//!
//! Nothing here panics: empty, non-finite or mismatched input gives a [`NoFit`].

use std::fmt;

/// Fewest samples in a fitted window (its latter half: 4, two residual degrees of freedom).
pub const MIN_SAMPLES: usize = 8;
/// The floor of usable |d| in units of its accuracy sigma.
pub const FLOOR_FACTOR: f64 = 1e3;
/// A window grows while its slope is within this many standard errors of its latter half's.
pub const AGREE_SIGMAS: f64 = 2.0;

/// A fitted decay: ln|d| = `intercept` - `lambda` t on samples `window.0..=window.1`.
#[derive(Debug, Clone, PartialEq)]
pub struct DecayFit {
    pub lambda: f64,
    /// The slope's standard error from the residuals.
    pub stderr: f64,
    /// |lambda - lambda_h| + its standard error: the window's fit against its latter half's.
    pub systematic: f64,
    /// 2 sigma / min|d| / (window length): the slope an error sigma of d can make.
    pub accuracy: f64,
    /// sqrt(stderr^2 + systematic^2 + accuracy^2).
    pub lambda_err: f64,
    pub intercept: f64,
    /// The sign of d in the window (+1 or -1).
    pub sign: f64,
    /// First and last sample of the window (inclusive indices).
    pub window: (usize, usize),
    /// The absolute floor of usable |d| (FLOOR_FACTOR x sigma).
    pub floor: f64,
}

/// Why there is no fit, with what the caller needs to say what to change.
#[derive(Debug, Clone, PartialEq)]
pub enum NoFit {
    /// t and d differ in length, or a time is not finite / not increasing.
    BadInput(String),
    /// Fewer than [`MIN_SAMPLES`] samples of the tail are above the floor: `usable` of them,
    /// `sign_changes` sign changes among the samples above the floor, `lambda_estimate` from
    /// the tail's end points where it has two.
    TooFewSamples {
        usable: usize,
        sign_changes: usize,
        floor: f64,
        lambda_estimate: Option<f64>,
    },
    /// Every window at the end bends (its slope disagrees with its latter half's);
    /// `lambda_estimate` is the shortest window's slope, `t_needed` a suggested t_end.
    NotSingleExponential {
        sign_changes: usize,
        lambda_estimate: f64,
        t_needed: f64,
    },
}

impl NoFit {
    /// A short machine-readable code of the reason.
    pub fn code(&self) -> &'static str {
        match self {
            NoFit::BadInput(_) => "bad_input",
            NoFit::TooFewSamples { sign_changes, .. } if *sign_changes >= 2 => "oscillating",
            NoFit::TooFewSamples { .. } => "below_floor",
            NoFit::NotSingleExponential { sign_changes, .. } if *sign_changes >= 2 => "oscillating",
            NoFit::NotSingleExponential { .. } => "not_single_exponential",
        }
    }

    /// A suggested t_end where one can be given.
    pub fn t_needed(&self) -> Option<f64> {
        match self {
            NoFit::NotSingleExponential { t_needed, .. } => Some(*t_needed),
            _ => None,
        }
    }
}

impl fmt::Display for NoFit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let osc = |n: usize| {
            if n >= 2 {
                format!(
                    "; d(t) changes sign {n} times above the floor (oscillating relaxation: the slowest \
                     mode is complex or O couples to a complex pair; fit another observable)"
                )
            } else {
                String::new()
            }
        };
        match self {
            NoFit::BadInput(m) => write!(f, "no fit: {m}"),
            NoFit::TooFewSamples {
                usable,
                sign_changes,
                floor,
                lambda_estimate,
            } => {
                write!(
                    f,
                    "only {usable} samples of the late-time tail have |d| above the accuracy floor \
                     {floor:.3e} (at least {MIN_SAMPLES} of one sign are needed)"
                )?;
                match lambda_estimate {
                    _ if *sign_changes >= 2 => {}
                    Some(l) if *l > 0.0 => write!(
                        f,
                        ": d decays at ~{l:.3e}; save more densely or end at t_end ~ a few / lambda \
                         ~ {:.3e}",
                        5.0 / l
                    )?,
                    _ => write!(f, ": <O> is at its steady value (or too close to it) throughout")?,
                }
                write!(f, "{}", osc(*sign_changes))
            }
            NoFit::NotSingleExponential {
                sign_changes,
                lambda_estimate,
                t_needed,
            } => write!(
                f,
                "the tail is not single-exponential: no window ending at the last usable sample \
                 has the slope of its latter half (faster modes have not died out; the last \
                 {MIN_SAMPLES} samples decay at ~{lambda_estimate:.4e}); run longer, t_end ~ \
                 {t_needed:.4e}{}",
                osc(*sign_changes)
            ),
        }
    }
}

/// A weighted straight line y = intercept + slope t and the slope's standard error.
#[derive(Debug, Clone, Copy)]
struct Line {
    slope: f64,
    intercept: f64,
    se: f64,
}

/// Weighted least squares of `y` on `t` (weights `w`); None with fewer than 3 points or no
/// spread in t.
fn line(t: &[f64], y: &[f64], w: &[f64]) -> Option<Line> {
    let n = t.len();
    if n < 3 {
        return None;
    }
    let sw: f64 = w.iter().sum();
    let tbar = t.iter().zip(w).map(|(t, w)| t * w).sum::<f64>() / sw;
    let ybar = y.iter().zip(w).map(|(y, w)| y * w).sum::<f64>() / sw;
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for i in 0..n {
        sxx += w[i] * (t[i] - tbar).powi(2);
        sxy += w[i] * (t[i] - tbar) * (y[i] - ybar);
    }
    if sxx.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = ybar - slope * tbar;
    let ss: f64 = (0..n)
        .map(|i| w[i] * (y[i] - intercept - slope * t[i]).powi(2))
        .sum();
    let se = (ss / (n - 2) as f64 / sxx).sqrt();
    Some(Line { slope, intercept, se })
}

/// The samples in log form: ln|d|, weights, and which are usable (module doc, step 1).
struct Logs {
    y: Vec<f64>,
    w: Vec<f64>,
    usable: Vec<bool>,
}

fn logs(d: &[f64], sigma: f64, floor: f64) -> Logs {
    let usable: Vec<bool> = d.iter().map(|v| v.is_finite() && v.abs() > floor).collect();
    Logs {
        y: d.iter().map(|v| v.abs().ln()).collect(),
        w: d.iter().map(|v| v * v / (v * v + sigma * sigma)).collect(),
        usable,
    }
}

/// Sign changes between consecutive samples above the floor.
fn sign_changes(d: &[f64], usable: &[bool]) -> usize {
    let signs: Vec<bool> = d
        .iter()
        .zip(usable)
        .filter(|(_, u)| **u)
        .map(|(v, _)| *v > 0.0)
        .collect();
    signs.windows(2).filter(|p| p[0] != p[1]).count()
}

/// The tail (module doc, step 1): inclusive indices (s, e), or None without a usable sample.
fn tail(d: &[f64], usable: &[bool]) -> Option<(usize, usize)> {
    let e = usable.iter().rposition(|u| *u)?;
    let positive = d[e] > 0.0;
    let mut s = e;
    while s > 0 && usable[s - 1] && (d[s - 1] > 0.0) == positive {
        s -= 1;
    }
    Some((s, e))
}

/// Check the inputs: equal lengths, finite increasing times, a positive finite sigma.
fn check(t: &[f64], d: &[f64], sigma: f64) -> Result<(), NoFit> {
    if t.len() != d.len() {
        return Err(NoFit::BadInput(format!(
            "{} times but {} values",
            t.len(),
            d.len()
        )));
    }
    if t.iter().any(|v| !v.is_finite()) || t.windows(2).any(|p| p[1] <= p[0]) {
        return Err(NoFit::BadInput("the times are not finite and increasing".into()));
    }
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(NoFit::BadInput(format!(
            "the accuracy sigma = {sigma} is not a positive number"
        )));
    }
    Ok(())
}

/// Most candidate window starts tried (evenly spaced over the tail when it is longer): each
/// candidate costs a fit of O(window) samples.
const MAX_CANDIDATES: usize = 400;

/// One candidate window [a, e]: the fit on it and on its latter half, and the slope
/// resolution the accuracy sigma allows on each (module doc).
struct Window {
    a: usize,
    full: Line,
    half: Line,
    acc_full: f64,
    acc_half: f64,
}

impl Window {
    /// The window's fit agrees with its latter half's (module doc, step 2).
    fn agrees(&self) -> bool {
        (self.full.slope - self.half.slope).abs() <= AGREE_SIGMAS * self.half.se + self.acc_half
    }
}

/// The samples of a fit and where the tail ends.
struct Samples<'a> {
    t: &'a [f64],
    d: &'a [f64],
    logs: Logs,
    sigma: f64,
    e: usize,
}

impl Samples<'_> {
    /// The slope an error sigma of d can make over [a, e]: 2 sigma / min|d| / (t_e - t_a).
    fn accuracy(&self, a: usize) -> f64 {
        let dmin = self.d[a..=self.e]
            .iter()
            .fold(f64::INFINITY, |m, v| m.min(v.abs()));
        2.0 * self.sigma / dmin / (self.t[self.e] - self.t[a])
    }

    fn line(&self, a: usize) -> Option<Line> {
        let r = a..=self.e;
        line(&self.t[r.clone()], &self.logs.y[r.clone()], &self.logs.w[r])
    }

    /// The candidate window starting at `a`.
    fn window(&self, a: usize) -> Option<Window> {
        let h = self.e + 1 - (self.e + 1 - a).div_ceil(2);
        Some(Window {
            a,
            full: self.line(a)?,
            half: self.line(h)?,
            acc_full: self.accuracy(a),
            acc_half: self.accuracy(h),
        })
    }
}

/// Fit d(t) ~ A e^{-lambda t} at late times (module doc): `t` the sample times (increasing),
/// `d` the deviations from the asymptotic value, `sigma` the absolute accuracy of d.
pub fn fit(t: &[f64], d: &[f64], sigma: f64) -> Result<DecayFit, NoFit> {
    check(t, d, sigma)?;
    let floor = FLOOR_FACTOR * sigma;
    let logs = logs(d, sigma, floor);
    let changes = sign_changes(d, &logs.usable);
    let too_few = |usable: usize, estimate: Option<f64>| NoFit::TooFewSamples {
        usable,
        sign_changes: changes,
        floor,
        lambda_estimate: estimate,
    };
    let Some((s, e)) = tail(d, &logs.usable) else {
        return Err(too_few(0, None));
    };
    if e + 1 - s < MIN_SAMPLES {
        let estimate = (e > s).then(|| -(logs.y[e] - logs.y[s]) / (t[e] - t[s]));
        return Err(too_few(e + 1 - s, estimate));
    }
    let samples = Samples { t, d, logs, sigma, e };
    // The longest agreeing window (the earliest start), over at most MAX_CANDIDATES starts
    // and always the shortest window.
    let shortest = e + 1 - MIN_SAMPLES;
    let stride = (shortest - s).div_ceil(MAX_CANDIDATES).max(1);
    let starts = std::iter::once(shortest).chain((s..shortest).rev().step_by(stride));
    // From the back: the earliest start first, stopping at the first that agrees.
    let longest = starts
        .filter_map(|a| samples.window(a).filter(Window::agrees))
        .next_back();
    // The margin: the latter three quarters of the longest agreeing window (module doc).
    let best = longest.and_then(|w| {
        let a = (w.a + (e + 1 - w.a) / 4).min(shortest);
        samples.window(a).or(Some(w))
    });
    let Some(best) = best else {
        let estimate = samples.window(shortest).map_or(f64::NAN, |w| -w.full.slope);
        let span = t[e] - t[0];
        let t_needed = t[0] + (2.0 * span).max(if estimate > 0.0 { 10.0 / estimate } else { 0.0 });
        return Err(NoFit::NotSingleExponential {
            sign_changes: changes,
            lambda_estimate: estimate,
            t_needed,
        });
    };
    Ok(result(best, d[e].signum(), e, floor))
}

/// The fit of the chosen window and its error terms (module doc).
fn result(w: Window, sign: f64, e: usize, floor: f64) -> DecayFit {
    let spread = (w.half.se.powi(2) - w.full.se.powi(2)).max(0.0).sqrt();
    let systematic = (w.full.slope - w.half.slope).abs() + spread;
    DecayFit {
        lambda: -w.full.slope,
        stderr: w.full.se,
        systematic,
        accuracy: w.acc_full,
        lambda_err: (w.full.se.powi(2) + systematic.powi(2) + w.acc_full.powi(2)).sqrt(),
        intercept: w.full.intercept,
        sign,
        window: (w.a, e),
        floor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic pseudo-random number in [-1, 1) (an LCG; no dependency).
    fn noise(state: &mut u64) -> f64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    /// Two exponentials, a slow one (rate 0.05) and a fast transient (rate 1, 50 x the
    /// amplitude), plus relative noise 1e-6, for 40 noise seeds: the fit recovers the slow
    /// rate within its stated error (at least 38 of the 40 seeds within lambda_err, all
    /// within 2 lambda_err; measured: all 40, the worst at 0.53 lambda_err), and the window
    /// starts after the transient has died (50 e^{-0.95 t} below ~10 x the noise: t > ~ 14).
    #[test]
    fn two_exponentials_give_the_slow_rate_and_exclude_the_transient() {
        let t: Vec<f64> = (0..400).map(|i| i as f64 * 0.5).collect();
        let (mut within, mut worst) = (0, 0.0f64);
        for seed in 0..40u64 {
            let mut rng = seed * 7919 + 1;
            let d: Vec<f64> = t
                .iter()
                .map(|&t| {
                    let v = 2.0 * (-0.05 * t).exp() + 100.0 * (-t).exp();
                    v * (1.0 + 1e-6 * noise(&mut rng))
                })
                .collect();
            let f = fit(&t, &d, 1e-12).unwrap();
            let z = (f.lambda - 0.05).abs() / f.lambda_err;
            if seed == 0 || z > 1.0 {
                eprintln!(
                    "seed {seed}: z = {z:.2} {f:?} window t = [{}, {}]",
                    t[f.window.0], t[f.window.1]
                );
            }
            within += usize::from(z <= 1.0);
            worst = worst.max(z);
            assert!(f.lambda_err < 1e-6 * 0.05, "{f:?}");
            assert!(t[f.window.0] > 12.0, "the transient is in the window: {f:?}");
            assert_eq!(f.window.1, t.len() - 1);
            assert!(f.window.1 - f.window.0 > 250, "a long window: {f:?}");
        }
        eprintln!("{within} of 40 within lambda_err, worst |lambda - 0.05| / lambda_err = {worst:.2}");
        assert!(within >= 38 && worst < 2.0, "{within} {worst}");
    }

    /// The floor ends the tail: samples of pure noise below it are not fitted.
    #[test]
    fn the_floor_ends_the_tail() {
        let t: Vec<f64> = (0..200).map(|i| i as f64).collect();
        let d: Vec<f64> = t.iter().map(|&t| (-0.1 * t).exp() + 1e-12).collect();
        let f = fit(&t, &d, 1e-11).unwrap();
        assert!(d[f.window.1] > 1e-8 && d[f.window.1 + 1] <= 1e-8, "{f:?}");
        assert!((f.lambda - 0.1).abs() < 1e-3, "{f:?}");
    }

    /// An oscillating relaxation (complex pair) has no single-exponential tail.
    #[test]
    fn oscillations_are_reported_not_fitted() {
        let t: Vec<f64> = (0..500).map(|i| i as f64 * 0.1).collect();
        let d: Vec<f64> = t.iter().map(|&t| (-0.1 * t).exp() * (2.0 * t).cos()).collect();
        let e = fit(&t, &d, 1e-12).unwrap_err();
        assert_eq!(e.code(), "oscillating", "{e}");
        assert!(e.to_string().contains("changes sign"), "{e}");
    }

    /// Too short a run: the shortest window still bends, and the reason says what t_end to use.
    #[test]
    fn a_short_run_says_what_t_end_is_needed() {
        let t: Vec<f64> = (0..50).map(|i| i as f64 * 0.1).collect();
        let d: Vec<f64> = t.iter().map(|&t| (-0.1 * t).exp() + (-t).exp()).collect();
        let e = fit(&t, &d, 1e-14).unwrap_err();
        assert_eq!(e.code(), "not_single_exponential", "{e}");
        assert!(e.t_needed().unwrap() > 9.0, "{e}");
    }

    /// Bad input is a NoFit, never a panic.
    #[test]
    fn bad_input_is_no_fit() {
        assert_eq!(fit(&[0.0, 1.0], &[1.0], 1e-10).unwrap_err().code(), "bad_input");
        assert_eq!(
            fit(&[1.0, 0.0], &[1.0, 1.0], 1e-10).unwrap_err().code(),
            "bad_input"
        );
        assert_eq!(
            fit(&[0.0, 1.0], &[1.0, 1.0], 0.0).unwrap_err().code(),
            "bad_input"
        );
        assert_eq!(fit(&[], &[], 1e-10).unwrap_err().code(), "below_floor");
        let e = fit(&[0.0, 1.0, 2.0], &[0.0, f64::NAN, 0.0], 1e-10).unwrap_err();
        assert_eq!(e.code(), "below_floor");
    }
}
