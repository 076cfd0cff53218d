//! `[task.minimize]` of a scan of spectra: at each scan point, the value of a second variable
//! in [lo, hi] where the Liouvillian gap (smallest |Re lambda| besides the steady state) is
//! smallest (seed 000 Fig. 2d: the minimum over Omega at each N).
//!
//! The gap need not be unimodal over the whole bracket, so a coarse grid of [`GRID`] points
//! locates the basin of the smallest value first; golden-section search then shrinks the
//! interval between that point's grid neighbours to `tol` (each step keeps the minimum of a
//! unimodal function inside, with one new evaluation). The point's spectrum is the one at the
//! best value evaluated. About GRID + 1.44 log2(2 (hi - lo) / ((GRID - 1) tol)) spectra per
//! point (23 for the default tol = 1e-3 of the bracket).

use crate::error::{Error, SolverError};
use crate::scenario::{Minimize, Scenario};
use crate::solver::spectrum::Spectrum;
use crate::task::spectrum::gap;

/// Points of the coarse grid over the bracket.
pub const GRID: usize = 9;

/// The value of `m.variable` minimising the gap at the scan point `variable = value`, and the
/// spectrum there; `solve` computes a spectrum at a model.
pub fn minimize(
    sc: &Scenario,
    variable: &str,
    value: f64,
    m: &Minimize,
    solve: impl Fn(&crate::model::Model) -> Result<Spectrum, SolverError>,
) -> Result<(f64, Spectrum), Error> {
    let eval = |x: f64| -> Result<(f64, Spectrum), Error> {
        let p = sc.point(&[(variable, value), (m.variable.as_str(), x)])?;
        let sp = solve(&p.model)?;
        let values: Vec<_> = sp.pairs.iter().map(|p| (p.value, p.residual)).collect();
        Ok((gap(&values).re.unwrap_or(f64::INFINITY), sp))
    };
    let step = (m.hi - m.lo) / (GRID - 1) as f64;
    let mut best: Option<(f64, f64, Spectrum)> = None;
    let keep = |x: f64, g: f64, sp: Spectrum, best: &mut Option<(f64, f64, Spectrum)>| {
        if best.as_ref().is_none_or(|b| g < b.1) {
            *best = Some((x, g, sp));
        }
    };
    for i in 0..GRID {
        let x = m.lo + step * i as f64;
        let (g, sp) = eval(x)?;
        keep(x, g, sp, &mut best);
    }
    let x_grid = best.as_ref().map_or(m.lo, |b| b.0);
    let (mut a, mut b) = ((x_grid - step).max(m.lo), (x_grid + step).min(m.hi));
    let r = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (b - r * (b - a), a + r * (b - a));
    let (mut gc, spc) = eval(c)?;
    keep(c, gc, spc, &mut best);
    let (mut gd, spd) = eval(d)?;
    keep(d, gd, spd, &mut best);
    while b - a > m.tol {
        if gc < gd {
            (b, d, gd) = (d, c, gc);
            c = b - r * (b - a);
            let (g, sp) = eval(c)?;
            gc = g;
            keep(c, g, sp, &mut best);
        } else {
            (a, c, gc) = (c, d, gd);
            d = a + r * (b - a);
            let (g, sp) = eval(d)?;
            gd = g;
            keep(d, g, sp, &mut best);
        }
    }
    best.map(|(x, _, sp)| (x, sp)).ok_or_else(|| {
        SolverError::Unsupported {
            solver: "spectrum",
            message: "no gap evaluated".into(),
        }
        .into()
    })
}
