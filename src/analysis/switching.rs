//! Switching statistics of a two-phase telegraph signal (seed 000 Fig. 4 and eqs. 9-10, the
//! telegraph rate equation of seed 003): host-side, from the phase changes that the trajectory
//! classifier emits ([`crate::solver::trajectory`], "Switching classifier").
//!
//! # Phases, dwells, censoring
//!
//! A trajectory's phase is undefined until its smoothed observable first crosses a threshold;
//! every later [`Event`] is a switch. The phase entered at event i lasts from `t(save_i)` to
//! `t(save_{i+1})` (a **complete** dwell when event i is itself a switch), or to the last save
//! `t_end` (right-censored). The dwell that starts at the first classification is
//! left-truncated (it did not start with a switch). Both kinds are flagged `censored` in
//! [`Dwell`] and left out of the dwell-time histogram; they still count in the rates below.
//!
//! # Rates: exponential maximum likelihood with censoring
//!
//! A Markov two-state process leaves phase p at rate G_p whatever the time already spent in
//! it (memoryless), so over observation windows the likelihood of G_p is
//! `G_p^k exp(-G_p T)`, with k the switches out of p and T the total time spent in p (censored
//! and truncated dwells included). Its maximum is `G_p = k / T`, and since k is Poisson with
//! mean `G_p T`, the exact (Garwood) 95 % interval is
//!
//! ```text
//! [ chi2_{2k}(0.025) / (2 T),  chi2_{2k+2}(0.975) / (2 T) ]      (lower end 0 when k = 0)
//! ```
//!
//! with chi-square quantiles from `statrs`. With `t_burn`, only the parts of dwells after
//! `t_burn` count, and only switches at t > t_burn.
//!
//! # Telegraph fit (seed 000 eq. 10, seed 003)
//!
//! The fraction of classified trajectories in the upper phase obeys
//! `dp/dt = -G_ul p + G_lu (1 - p)`, i.e.
//!
//! ```text
//! p(t) = p_inf + (p0 - p_inf) exp(-G (t - t0)),   G = G_ul + G_lu,   p_inf = G_lu / G,
//! ```
//!
//! fitted to p(t) at the saves from `t0` (the first save at or after `t_burn` where every
//! trajectory is classified) by Levenberg-Marquardt least squares on (p_inf, p0, G), unit
//! weights. The standard errors are `sqrt(diag((J^T J)^-1) RSS/(n - 3))`: they treat the saves
//! as independent, which they are not (the same trajectories at neighbouring saves), so they
//! understate the uncertainty; the counted rates' intervals are the reliable ones. The rates
//! follow as `G_lu = p_inf G`, `G_ul = (1 - p_inf) G`, with errors propagated through the fit's
//! covariance.

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// One phase change of one trajectory: at save `save` it entered the upper (`upper`) or lower
/// phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub save: usize,
    pub upper: bool,
}

/// The phase changes of one trajectory, in save order.
#[derive(Debug, Clone, PartialEq)]
pub struct TrajectoryEvents {
    /// Global trajectory index.
    pub trajectory: u64,
    pub events: Vec<Event>,
}

/// One stay in a phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dwell {
    pub trajectory: u64,
    pub upper: bool,
    pub start: f64,
    pub duration: f64,
    /// Left-truncated (starts at the first classification) or right-censored (cut by t_end).
    pub censored: bool,
    /// Ends with a switch (not cut by t_end).
    pub ends_in_switch: bool,
}

/// Every dwell of every trajectory (`times[save]`: the save times; the last is t_end).
pub fn dwells(trajectories: &[TrajectoryEvents], times: &[f64]) -> Vec<Dwell> {
    let t_end = times.last().copied().unwrap_or(0.0);
    let mut out = Vec::new();
    for tr in trajectories {
        for (i, e) in tr.events.iter().enumerate() {
            let start = times[e.save.min(times.len() - 1)];
            let next = tr.events.get(i + 1).map(|n| times[n.save.min(times.len() - 1)]);
            let end = next.unwrap_or(t_end);
            out.push(Dwell {
                trajectory: tr.trajectory,
                upper: e.upper,
                start,
                duration: end - start,
                censored: i == 0 || next.is_none(),
                ends_in_switch: next.is_some(),
            });
        }
    }
    out
}

/// The rate out of one phase ([module doc](self)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Switches out of the phase (after t_burn).
    pub switches: u64,
    /// Time spent in the phase (after t_burn), censored dwells included.
    pub time: f64,
    /// Complete dwells (both ends switches, starting at or after t_burn).
    pub complete: u64,
    pub rate: f64,
    /// Exact 95 % interval.
    pub lo95: f64,
    pub hi95: f64,
}

/// Exact (Garwood) 95 % interval of a Poisson rate from `k` events in exposure `t`:
/// `[chi2_{2k}(0.025)/(2t), chi2_{2k+2}(0.975)/(2t)]`; NaN without exposure.
pub fn poisson_interval(k: u64, t: f64) -> (f64, f64) {
    if t.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || !t.is_finite() {
        return (f64::NAN, f64::NAN);
    }
    let q = |dof: f64, p: f64| ChiSquared::new(dof).map_or(f64::NAN, |c| c.inverse_cdf(p));
    let lo = if k == 0 {
        0.0
    } else {
        q(2.0 * k as f64, 0.025) / (2.0 * t)
    };
    (lo, q(2.0 * k as f64 + 2.0, 0.975) / (2.0 * t))
}

/// Rates out of the lower and upper phase (`[lower, upper]`) from the dwells, counting only
/// what lies after `t_burn`.
pub fn rates(dwells: &[Dwell], t_burn: f64) -> [Rate; 2] {
    let mut k = [0u64; 2];
    let mut time = [0.0f64; 2];
    let mut complete = [0u64; 2];
    for d in dwells {
        let p = usize::from(d.upper);
        let end = d.start + d.duration;
        time[p] += (end - d.start.max(t_burn)).max(0.0);
        if d.ends_in_switch && end > t_burn {
            k[p] += 1;
        }
        if !d.censored && d.start >= t_burn {
            complete[p] += 1;
        }
    }
    std::array::from_fn(|p| {
        let (lo95, hi95) = poisson_interval(k[p], time[p]);
        Rate {
            switches: k[p],
            time: time[p],
            complete: complete[p],
            rate: if time[p] > 0.0 {
                k[p] as f64 / time[p]
            } else {
                f64::NAN
            },
            lo95,
            hi95,
        }
    })
}

/// Per save: trajectories classified upper and lower (`[upper, lower]` counts), from the events.
pub fn occupation(trajectories: &[TrajectoryEvents], n_saves: usize) -> Vec<[u64; 2]> {
    // Difference arrays: +1 where a phase starts, -1 where it ends.
    let mut diff = vec![[0i64; 2]; n_saves + 1];
    for tr in trajectories {
        for (i, e) in tr.events.iter().enumerate() {
            let p = usize::from(!e.upper);
            let s = e.save.min(n_saves);
            let end = tr.events.get(i + 1).map_or(n_saves, |n| n.save.min(n_saves));
            diff[s][p] += 1;
            diff[end][p] -= 1;
        }
    }
    let mut run = [0i64; 2];
    diff[..n_saves]
        .iter()
        .map(|d| {
            run[0] += d[0];
            run[1] += d[1];
            [run[0].max(0) as u64, run[1].max(0) as u64]
        })
        .collect()
}

/// The upper-phase fraction `upper / (upper + lower)` per save from save `i0` on (0 where none
/// is classified).
pub fn upper_fraction(trajectories: &[TrajectoryEvents], n_saves: usize, i0: usize) -> Vec<f64> {
    occupation(trajectories, n_saves)[i0.min(n_saves)..]
        .iter()
        .map(|o| o[0] as f64 / (o[0] + o[1]).max(1) as f64)
        .collect()
}

/// The standard error of the telegraph fit's G from `k` interleaved groups of trajectories
/// (trajectory i in group i mod k): the groups are independent, unlike the saves of one
/// ensemble, so `sd(G_g) / sqrt(k)` is an honest error where the least-squares one is not.
/// Returns (se, number of groups fitted); None with fewer than 2 fitted groups.
pub fn telegraph_group_se(
    trajectories: &[TrajectoryEvents],
    times: &[f64],
    i0: usize,
    g_guess: f64,
    k: usize,
) -> Option<(f64, usize)> {
    let gs: Vec<f64> = (0..k)
        .filter_map(|g| {
            let sub: Vec<TrajectoryEvents> = trajectories.iter().skip(g).step_by(k).cloned().collect();
            let p = upper_fraction(&sub, times.len(), i0);
            telegraph_fit(&times[i0..], &p, g_guess).map(|f| f.g)
        })
        .collect();
    if gs.len() < 2 {
        return None;
    }
    let n = gs.len() as f64;
    let mean = gs.iter().sum::<f64>() / n;
    let sd = (gs.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    Some((sd / n.sqrt(), gs.len()))
}

/// The telegraph fit ([module doc](self)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TelegraphFit {
    /// First fitted time, and the number of fitted saves.
    pub t0: f64,
    pub points: usize,
    pub p_inf: f64,
    pub p0: f64,
    /// G = G_ul + G_lu.
    pub g: f64,
    pub se_p_inf: f64,
    pub se_p0: f64,
    pub se_g: f64,
    /// Rate lower -> upper `p_inf G` and upper -> lower `(1 - p_inf) G`, with propagated errors.
    pub g_lu: f64,
    pub se_g_lu: f64,
    pub g_ul: f64,
    pub se_g_ul: f64,
    /// Root-mean-square residual.
    pub rms: f64,
}

/// Solve the 3x3 system `a x = b` (Gaussian elimination with partial pivoting); None if
/// singular.
fn solve3(mut a: [[f64; 3]; 3], mut b: [f64; 3]) -> Option<[f64; 3]> {
    for c in 0..3 {
        let piv = (c..3).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
        if a[piv][c].abs() < 1e-300 || !a[piv][c].is_finite() {
            return None;
        }
        a.swap(c, piv);
        b.swap(c, piv);
        for r in c + 1..3 {
            let f = a[r][c] / a[c][c];
            let pivot_row = a[c];
            for (x, p) in a[r][c..].iter_mut().zip(&pivot_row[c..]) {
                *x -= f * p;
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = [0.0; 3];
    for c in (0..3).rev() {
        let s: f64 = (c + 1..3).map(|k| a[c][k] * x[k]).sum();
        x[c] = (b[c] - s) / a[c][c];
    }
    Some(x)
}

/// Normal matrix J^T J, gradient J^T r and residual sum of squares of the model
/// `p_inf + (p0 - p_inf) e^{-g s}` at parameters `q = [p_inf, p0, g]`.
fn normal(s: &[f64], p: &[f64], q: [f64; 3]) -> ([[f64; 3]; 3], [f64; 3], f64) {
    let mut jtj = [[0.0; 3]; 3];
    let mut jtr = [0.0; 3];
    let mut rss = 0.0;
    for (&si, &pi) in s.iter().zip(p) {
        let e = (-q[2] * si).exp();
        let r = pi - (q[0] + (q[1] - q[0]) * e);
        let j = [1.0 - e, e, -(q[1] - q[0]) * si * e];
        for a in 0..3 {
            jtr[a] += j[a] * r;
            for b in 0..3 {
                jtj[a][b] += j[a] * j[b];
            }
        }
        rss += r * r;
    }
    (jtj, jtr, rss)
}

/// Fit `p(t) = p_inf + (p0 - p_inf) e^{-G (t - t0)}` to `(t, p)` (at least 4 points),
/// starting from `g_guess` (> 0). None when the fit does not converge to finite values.
pub fn telegraph_fit(t: &[f64], p: &[f64], g_guess: f64) -> Option<TelegraphFit> {
    let n = t.len().min(p.len());
    if n < 4 {
        return None;
    }
    let t0 = t[0];
    let s: Vec<f64> = t[..n].iter().map(|x| x - t0).collect();
    let tail = &p[n - n / 5 - 1..n];
    let mut q = [tail.iter().sum::<f64>() / tail.len() as f64, p[0], g_guess];
    let (_, _, mut rss) = normal(&s, &p[..n], q);
    let mut lambda = 1e-3;
    for _ in 0..200 {
        let (jtj, jtr, _) = normal(&s, &p[..n], q);
        let mut a = jtj;
        for (k, row) in a.iter_mut().enumerate() {
            row[k] *= 1.0 + lambda;
        }
        let Some(d) = solve3(a, jtr) else { break };
        let trial = [q[0] + d[0], q[1] + d[1], (q[2] + d[2]).max(1e-12 * g_guess)];
        let (_, _, r2) = normal(&s, &p[..n], trial);
        if r2 < rss {
            let done = (rss - r2) <= 1e-14 * rss;
            q = trial;
            rss = r2;
            lambda = (lambda * 0.3).max(1e-12);
            if done {
                break;
            }
        } else {
            lambda *= 10.0;
            if lambda > 1e12 {
                break;
            }
        }
    }
    let (jtj, _, _) = normal(&s, &p[..n], q);
    let var = rss / (n - 3) as f64;
    let col = |k: usize| solve3(jtj, std::array::from_fn(|i| f64::from(u8::from(i == k))));
    let cov = [col(0)?, col(1)?, col(2)?];
    let c = |a: usize, b: usize| cov[a][b] * var;
    // G_lu = p_inf G, G_ul = (1 - p_inf) G: gradients (G, 0, p_inf) and (-G, 0, 1 - p_inf).
    let prop = |g: [f64; 3]| -> f64 {
        let mut v = 0.0;
        for a in 0..3 {
            for b in 0..3 {
                v += g[a] * g[b] * c(a, b);
            }
        }
        v.max(0.0).sqrt()
    };
    let fit = TelegraphFit {
        t0,
        points: n,
        p_inf: q[0],
        p0: q[1],
        g: q[2],
        se_p_inf: c(0, 0).max(0.0).sqrt(),
        se_p0: c(1, 1).max(0.0).sqrt(),
        se_g: c(2, 2).max(0.0).sqrt(),
        g_lu: q[0] * q[2],
        se_g_lu: prop([q[2], 0.0, q[0]]),
        g_ul: (1.0 - q[0]) * q[2],
        se_g_ul: prop([-q[2], 0.0, 1.0 - q[0]]),
        rms: (rss / n as f64).sqrt(),
    };
    [fit.p_inf, fit.g, fit.se_g]
        .iter()
        .all(|x| x.is_finite())
        .then_some(fit)
}

/// Core-set thresholds from a bimodal distribution `pm[k]` over the values `m[k]`: the two
/// highest local maxima (strict on one side, so plateaus count once), separated by a lower
/// point; `lo`/`hi` are the lower/upper peak itself (a phase is entered only on reaching the
/// other phase's most probable value, so recrossings of the barrier are not counted; README,
/// "Switching statistics"). Returns `(lo, hi, [m_low_peak, m_min, m_high_peak])`, or why the
/// distribution is not bimodal.
pub fn thresholds_from_distribution(m: &[f64], pm: &[f64]) -> Result<(f64, f64, [f64; 3]), String> {
    let n = m.len().min(pm.len());
    let mut peaks: Vec<usize> = (0..n)
        .filter(|&k| {
            let left = k == 0 || pm[k] > pm[k - 1];
            let right = k + 1 == n || pm[k] >= pm[k + 1];
            left && right && pm[k] > 0.0
        })
        .collect();
    if peaks.len() < 2 {
        return Err(format!(
            "the steady-state distribution P_m has {} local maximum; it is not bimodal",
            peaks.len()
        ));
    }
    peaks.sort_by(|&a, &b| pm[b].total_cmp(&pm[a]));
    let (a, b) = (peaks[0].min(peaks[1]), peaks[0].max(peaks[1]));
    let kmin = (a..=b).min_by(|&i, &j| pm[i].total_cmp(&pm[j])).unwrap_or(a);
    if kmin == a || kmin == b || pm[kmin] >= pm[a].min(pm[b]) {
        return Err("the two highest maxima of P_m are not separated by a minimum; it is not bimodal".into());
    }
    Ok((m[a], m[b], [m[a], m[kmin], m[b]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal deterministic generator (SplitMix64) for the synthetic signals.
    struct Mix(u64);
    impl Mix {
        fn uniform(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
    }

    /// Telegraph events of `ntraj` trajectories with rates lower -> upper `g_lu`, upper ->
    /// lower `g_ul`, sampled on saves of spacing `dt` up to save `n_saves - 1`, starting in
    /// the lower phase (classified at save 0).
    fn telegraph(
        seed: u64,
        ntraj: u64,
        g_lu: f64,
        g_ul: f64,
        dt: f64,
        n_saves: usize,
    ) -> Vec<TrajectoryEvents> {
        let mut rng = Mix(seed);
        (0..ntraj)
            .map(|trajectory| {
                let mut events = vec![Event {
                    save: 0,
                    upper: false,
                }];
                let (mut t, mut upper) = (0.0, false);
                loop {
                    let g = if upper { g_ul } else { g_lu };
                    t += -rng.uniform().ln() / g;
                    let save = (t / dt).ceil() as usize;
                    if save >= n_saves {
                        break;
                    }
                    upper = !upper;
                    // Two switches inside one save interval are one unseen excursion.
                    if events.last().is_some_and(|e| e.save == save) {
                        events.pop();
                    } else {
                        events.push(Event { save, upper });
                    }
                }
                TrajectoryEvents { trajectory, events }
            })
            .collect()
    }

    /// Known rates are recovered within their 95 % intervals, and over 200 independent
    /// synthetic ensembles the intervals cover the true rate 95 % of the time: accepted
    /// within 3 binomial standard deviations (sqrt(200 x 0.95 x 0.05) = 3.1, i.e. 181..=199),
    /// deterministic with these seeds. Fine saves (dt = 0.01/G) keep the discretisation bias
    /// (unseen excursions, ~G dt) far below the statistical error (~1/sqrt(k) ~ 6 %).
    #[test]
    fn rates_recovered_with_covering_intervals() {
        let (g_lu, g_ul) = (0.02, 0.05);
        let (dt, n_saves) = (0.2, 20_001);
        let times: Vec<f64> = (0..n_saves).map(|i| i as f64 * dt).collect();
        let mut covered = [0u32; 2];
        for seed in 0..200u64 {
            let ev = telegraph(seed, 4, g_lu, g_ul, dt, n_saves);
            let r = rates(&dwells(&ev, &times), 0.0);
            for (p, g) in [(0, g_lu), (1, g_ul)] {
                covered[p] += u32::from(r[p].lo95 <= g && g <= r[p].hi95);
            }
            if seed == 0 {
                for (p, g) in [(0, g_lu), (1, g_ul)] {
                    assert!(
                        r[p].lo95 <= g && g <= r[p].hi95,
                        "phase {p}: {g} outside {:?}",
                        r[p]
                    );
                    assert!(r[p].switches > 50, "{:?}", r[p]);
                }
            }
        }
        for c in covered {
            assert!((181..=199).contains(&c), "coverage {c}/200");
        }
    }

    /// The telegraph fit of the upper-phase fraction recovers G = G_lu + G_ul and p_inf =
    /// G_lu / G (4000 trajectories from the lower phase: binomial noise 0.008 per save, so
    /// G within 5 % and p_inf within 0.02 are several standard errors).
    #[test]
    fn telegraph_fit_recovers_relaxation() {
        let (g_lu, g_ul) = (0.02, 0.05);
        let (dt, n_saves) = (1.0, 301);
        let ev = telegraph(7, 4000, g_lu, g_ul, dt, n_saves);
        let occ = occupation(&ev, n_saves);
        let t: Vec<f64> = (0..n_saves).map(|i| i as f64 * dt).collect();
        let p: Vec<f64> = occ.iter().map(|o| o[0] as f64 / (o[0] + o[1]) as f64).collect();
        let fit = telegraph_fit(&t, &p, 0.01).expect("fit");
        assert!((fit.g / (g_lu + g_ul) - 1.0).abs() < 0.05, "{fit:?}");
        assert!((fit.p_inf - g_lu / (g_lu + g_ul)).abs() < 0.02, "{fit:?}");
        assert!(fit.p0.abs() < 0.02, "{fit:?}");
        assert!(fit.se_g > 0.0 && fit.se_g < 0.05 * fit.g, "{fit:?}");
    }

    #[test]
    fn dwells_flag_censoring_and_occupation_counts() {
        let ev = vec![TrajectoryEvents {
            trajectory: 3,
            events: vec![
                Event {
                    save: 1,
                    upper: false,
                },
                Event { save: 3, upper: true },
                Event {
                    save: 4,
                    upper: false,
                },
            ],
        }];
        let times = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        let d = dwells(&ev, &times);
        assert_eq!(d.len(), 3);
        assert!(d[0].censored && d[0].ends_in_switch && d[0].duration == 2.0);
        assert!(!d[1].censored && d[1].upper && d[1].duration == 1.0);
        assert!(d[2].censored && !d[2].ends_in_switch && d[2].duration == 1.0);
        let r = rates(&d, 0.0);
        assert_eq!(
            (r[0].switches, r[0].time, r[1].switches, r[1].time),
            (1, 3.0, 1, 1.0)
        );
        assert_eq!((r[0].complete, r[1].complete), (0, 1));
        // With t_burn = 2.5: 0.5 of the first dwell and its switch at t = 3 count.
        let r = rates(&d, 2.5);
        assert_eq!((r[0].switches, r[0].time), (1, 1.5));
        let occ = occupation(&ev, times.len());
        assert_eq!(occ, vec![[0, 0], [0, 1], [0, 1], [1, 0], [0, 1], [0, 1]]);
        let (lo, hi) = poisson_interval(0, 10.0);
        assert!(lo == 0.0 && (hi - 3.6889 / 10.0).abs() < 1e-4, "{hi}");
        let (lo, hi) = poisson_interval(10, 1.0);
        assert!(
            (lo - 4.7954).abs() < 1e-3 && (hi - 18.3904).abs() < 1e-3,
            "{lo} {hi}"
        );
    }

    #[test]
    fn thresholds_from_bimodal_distribution() {
        let m: Vec<f64> = (0..9).map(|k| k as f64 - 4.0).collect();
        let pm = [0.05, 0.3, 0.1, 0.02, 0.01, 0.05, 0.2, 0.25, 0.02];
        let (lo, hi, at) = thresholds_from_distribution(&m, &pm).unwrap();
        assert_eq!(at, [-3.0, 0.0, 3.0]);
        assert_eq!((lo, hi), (-3.0, 3.0));
        let one = [0.1, 0.2, 0.4, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0];
        assert!(
            thresholds_from_distribution(&m, &one)
                .unwrap_err()
                .contains("not bimodal")
        );
    }
}
