//! Hysteresis loops of a ramped protocol (seed 004 Fig. 3b): where an observable crosses a
//! level while a scheduled parameter p(t) goes up and down, and the loop's width.
//!
//! Input: the saves t_i, p(t_i) and y(t_i). A crossing is a sign change of y - level between
//! two saves, located by linear interpolation (its error is that of the save spacing: O(dt^2)
//! in y'' terms); it belongs to the up leg when p increases over that interval and to the down
//! leg when it decreases (an interval where p is constant gives no leg). The width is
//! |p_up - p_down| of the first crossing on each leg (seed 004: the crossings of the loop with
//! <Jz> = 0), and NaN when a leg has none.

use serde::Serialize;

/// One located crossing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Crossing {
    pub t: f64,
    /// The parameter's value at the crossing.
    pub p: f64,
    /// True on the up leg (p increasing).
    pub up: bool,
}

/// The crossings and the loop width.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Loop {
    pub crossings: Vec<Crossing>,
    /// |p_up - p_down| of the first crossing on each leg (NaN without both).
    pub width: f64,
    /// The first up-leg and down-leg crossing values (NaN when absent).
    pub p_up: f64,
    pub p_down: f64,
}

/// Locate the crossings of `y = level` along the saves (module doc).
pub fn crossings(t: &[f64], p: &[f64], y: &[f64], level: f64) -> Loop {
    let mut out = Vec::new();
    for i in 1..t.len().min(p.len()).min(y.len()) {
        let (a, b) = (y[i - 1] - level, y[i] - level);
        // Opposite signs, or a start exactly on the level (an end on it is the next
        // interval's start, so no crossing counts twice).
        let crosses = (a < 0.0 && b > 0.0) || (a > 0.0 && b < 0.0) || (a == 0.0 && b != 0.0);
        if !(crosses && a.is_finite() && b.is_finite()) {
            continue;
        }
        let dp = p[i] - p[i - 1];
        if dp == 0.0 {
            continue;
        }
        let f = a / (a - b);
        out.push(Crossing {
            t: t[i - 1] + f * (t[i] - t[i - 1]),
            p: p[i - 1] + f * dp,
            up: dp > 0.0,
        });
    }
    let first = |up: bool| out.iter().find(|c| c.up == up).map_or(f64::NAN, |c| c.p);
    let (p_up, p_down) = (first(true), first(false));
    Loop {
        width: (p_up - p_down).abs(),
        p_up,
        p_down,
        crossings: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loop of y = tanh(k (p - p0 -+ d)) on a triangle p(t): the crossings are at p0 + d on
    /// the way up and p0 - d on the way down, width 2 d, to the interpolation error.
    #[test]
    fn a_shifted_loop_has_the_shift_as_width() {
        let (p0, d) = (1.0, 0.05);
        let n = 2001;
        let t: Vec<f64> = (0..n).map(|i| 2.0 * i as f64 / (n - 1) as f64).collect();
        let p: Vec<f64> = t.iter().map(|&t| 0.8 + 0.4 * (1.0 - (t - 1.0).abs())).collect();
        let y: Vec<f64> = t
            .iter()
            .zip(&p)
            .map(|(&t, &p)| {
                let s = if t <= 1.0 { d } else { -d };
                (20.0 * (p - p0 - s)).tanh()
            })
            .collect();
        let l = crossings(&t, &p, &y, 0.0);
        assert_eq!(l.crossings.len(), 2);
        assert!(
            (l.p_up - 1.05).abs() < 1e-5 && (l.p_down - 0.95).abs() < 1e-5,
            "{l:?}"
        );
        assert!((l.width - 0.1).abs() < 1e-5);
        let none = crossings(&t, &p, &vec![1.0; n], 0.0);
        assert!(none.crossings.is_empty() && none.width.is_nan());
    }
}
