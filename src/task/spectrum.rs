//! `kind = "spectrum"`: the `k` eigenvalues of the exact Liouvillian nearest `target`
//! ([`crate::solver::spectrum`]): the j = N/2 manifold for collective-only models, the
//! permutation-invariant blocks R_j with single-atom rates; `sector = q` restricts to the
//! coherences m - m' = q (models without a drive).
//!
//! Output `spectrum.csv`: one row per eigenvalue, `k, re, im, residual`, sorted by |re| then
//! im (k = 0 the steady state where it is among them); result.json's results hold `gap`, the
//! smallest |re| among the others, `gap_im`, the smallest nonzero |im| among them ([`Gaps`]),
//! and the number of eigenvalues. CPU only (one sparse LU).

use super::context::Context;
use super::policy::{self, Kernel};
use super::report::Report;
use crate::error::Error;
use crate::output::{CsvWriter, plot};
use crate::scenario::Scenario;
use crate::solver::spectrum::{self, Space, SpectrumOptions};
use num_complex::Complex64 as c64;
use serde_json::json;

/// The CSV columns.
pub const COLUMNS: [&str; 4] = ["k", "re", "im", "residual"];

/// Run `kind = "spectrum"`.
pub fn run(
    sc: &Scenario,
    k: usize,
    target: c64,
    sector: Option<i64>,
    ctx: &mut Context,
) -> Result<Report, Error> {
    let engine = policy::resolve(
        ctx.backend,
        &Kernel::CpuOnly { solver: "spectrum" },
        ctx.gpu.clone(),
    )?;
    let points = sc.points()?;
    let model = points[0].model;
    let space = space_of(&model);
    ctx.progress.start(1, "spectrum");
    let sp =
        solve(&model, k, target, sector).map_err(|e| super::checks::at_point("spectrum", &points[0], e))?;
    ctx.progress.set(1);
    ctx.progress.finish();
    let columns: Vec<String> = COLUMNS.iter().map(|s| s.to_string()).collect();
    let mut csv = CsvWriter::create(&ctx.path("spectrum.csv")?, &columns)?;
    for (i, p) in sp.pairs.iter().enumerate() {
        csv.row(&[i as f64, p.value.re, p.value.im, p.residual])?;
    }
    // The steady state is the exact 0 the solver adds back (module doc of solver::spectrum).
    let values: Vec<c64> = sp.pairs.iter().map(|p| p.value).collect();
    let gaps = gap(&sp.pairs.iter().map(|p| (p.value, p.residual)).collect::<Vec<_>>());
    let worst = sp.pairs.iter().map(|p| p.residual).fold(0.0, f64::max);
    let results = json!({
        "gap": gaps.re,
        "gap_im": gaps.im,
        "eigenvalues": sp.pairs.len(),
        "steady_state_included": gaps.has_steady,
        "max_residual": worst,
        "space": space,
        "sector": sector,
        "target": target.re,
        "target_im": target.im,
    });
    let mut files = vec!["spectrum.csv".to_string()];
    if sc.plot {
        draw(model.n, ctx, &values)?;
        files.push("spectrum.png".into());
    }
    let solver = match space {
        Space::Collective => "spectrum (shift-invert Arnoldi on the j = N/2 Liouvillian, f64)",
        Space::Blocks => "spectrum (shift-invert Arnoldi on the permutation-invariant blocks, f64)",
    };
    Ok(Report {
        coverage: None,
        task: "spectrum",
        solver: solver.into(),
        backend: engine.used(None),
        model,
        columns,
        results,
        stats: serde_json::to_value(&sp.stats).ok(),
        files,
    })
}

/// The space the model's Liouvillian lives in: the j = N/2 manifold, or the blocks R_j with
/// single-atom rates.
pub fn space_of(model: &crate::model::Model) -> Space {
    if model.is_collective() {
        Space::Collective
    } else {
        Space::Blocks
    }
}

/// The `k` eigenvalues of `model`'s Liouvillian nearest `target` (in `sector`).
pub fn solve(
    model: &crate::model::Model,
    k: usize,
    target: c64,
    sector: Option<i64>,
) -> Result<spectrum::Spectrum, crate::error::SolverError> {
    let opts = SpectrumOptions {
        k,
        target,
        sector,
        ..Default::default()
    };
    spectrum::eigenvalues(model, space_of(model), &opts)
}

/// The gaps of a computed spectrum (sorted as [`spectrum::eigenvalues`] returns it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gaps {
    /// Whether the steady state (the exact 0 the solver adds back) is among the values (it
    /// sorts first).
    pub has_steady: bool,
    /// The smallest |Re| among the other eigenvalues.
    pub re: Option<f64>,
    /// The smallest nonzero |Im| among them (seed 001 Figs. 11-12: the imaginary gap; real
    /// eigenvalues do not count: a real branch, e.g. of relaxation between mean-field orbits,
    /// exists on both sides of Omega_c). An |Im| counts as zero below its accuracy,
    /// `max(IM_ZERO, sqrt(residual)) max(|lambda|, 1)`: two nearly equal real eigenvalues of a
    /// non-normal L (a near Jordan block) come out as a complex pair whose |Im| is of the order
    /// of the square root of the perturbation (measured: 1e-7 .. 3e-4 at N = 200, |lambda| ~ 100,
    /// residuals ~1e-11, where the genuinely complex pairs have |Im| >= 0.06).
    pub im: Option<f64>,
}

/// Imaginary parts below this fraction of max(|lambda|, 1) are rounding (the eigensolver's
/// relative accuracy is ~1e-12, its residual tolerance).
pub const IM_ZERO: f64 = 1e-9;

/// The gaps of eigenvalues with their residuals, `(lambda, residual)` ([`Gaps`]).
pub fn gap(pairs: &[(c64, f64)]) -> Gaps {
    let has_steady = pairs.first().is_some_and(|p| p.0 == c64::new(0.0, 0.0));
    let others = &pairs[usize::from(has_steady)..];
    Gaps {
        has_steady,
        re: others.iter().map(|p| p.0.re.abs()).reduce(f64::min),
        im: others
            .iter()
            .filter(|(v, r)| v.im.abs() > IM_ZERO.max(r.sqrt()) * v.norm().max(1.0))
            .map(|(v, _)| v.im.abs())
            .reduce(f64::min),
    }
}

/// `spectrum.png`: the eigenvalues in the complex plane (seed 001 Figs. 11-12, seed 004
/// App. C), as markers (x = Re lambda, y = Im lambda, in the model's rate units).
fn draw(n: usize, ctx: &Context, values: &[c64]) -> Result<(), Error> {
    // Imaginary parts at the rounding floor of |lambda| (real spectra, e.g. seed 004) are
    // drawn as 0 rather than stretched into an axis of 1e-28.
    let floor = 1e-10 * values.iter().map(|v| v.norm()).fold(1.0, f64::max);
    let mut points: Vec<(f64, f64, bool)> = values
        .iter()
        .map(|v| (v.re, if v.im.abs() < floor { 0.0 } else { v.im }, true))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let set = plot::BranchSet {
        name: "eigenvalues of L",
        colour: 0,
        points: &points,
        markers: true,
    };
    plot::branch_plot(
        &ctx.path("spectrum.png")?,
        &format!("Liouvillian eigenvalues nearest the target, N = {}", n),
        "Re lambda (rate units of the model)",
        "Im lambda (rate units of the model)",
        &[set],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real gap is the smallest |Re| after the steady state; the imaginary gap the
    /// smallest |Im| among the complex eigenvalues, real ones (|Im| at rounding) left out.
    #[test]
    fn gaps_of_a_mixed_spectrum() {
        let v = [
            (c64::new(0.0, 0.0), 1e-16),
            (c64::new(-0.5, 1e-13), 1e-12),
            (c64::new(-1.0, -2.0), 1e-12),
            (c64::new(-1.0, 2.0), 1e-12),
            (c64::new(-3.0, 0.25), 1e-12),
            // A split near-double real eigenvalue: |Im| below sqrt(residual) |lambda| = 1e-4.
            (c64::new(-100.0, 5e-5), 1e-12),
        ];
        let g = gap(&v);
        assert!(g.has_steady);
        assert_eq!(g.re, Some(0.5));
        assert_eq!(g.im, Some(0.25));
        let real = gap(&[(c64::new(-2.0, 0.0), 0.0), (c64::new(-7.0, -1e-12), 0.0)]);
        assert!(!real.has_steady);
        assert_eq!((real.re, real.im), (Some(2.0), None));
    }
}
