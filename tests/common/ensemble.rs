//! An ensemble of trajectories run as independent batches (disjoint trajectory indices, i.e.
//! disjoint random streams), pooled into the whole ensemble, with the batch-means standard
//! error of xi^2. Included with `#[path = "common/ensemble.rs"] mod ensemble;` by the tests
//! that compare trajectories with another solver (tests/trajectory_blocks.rs,
//! tests/cumulant_trajectories.rs).
//!
//! xi^2 of the ensemble-averaged state is a nonlinear function of the means, not a mean over
//! trajectories, so the ensemble carries no standard error for it: the batches give one, the
//! sample standard deviation of their xi^2 over sqrt(number of batches).

use dicke::solver::trajectory::{self, EnsembleResult, N_OBS};

/// Batches of equal size `per`, pooled.
pub struct Pooled<'a> {
    pub batches: &'a [EnsembleResult],
    pub per: u64,
}

impl Pooled<'_> {
    /// Mean and standard error of observable `k` (`OBS_NAMES` order) at save `t` over the
    /// whole ensemble: exactly those of the `batches * per` trajectories, combined from the
    /// batch means and standard errors (a batch's sum of squares is
    /// `(per - 1) se^2 per + per mean^2`, `se^2 per` being its sample variance).
    pub fn mean_se(&self, k: usize, t: usize) -> (f64, f64) {
        let (nb, pf) = (self.batches.len() as f64, self.per as f64);
        let total = nb * pf;
        let mean = self.batches.iter().map(|e| e.mean[k][t]).sum::<f64>() / nb;
        let s2: f64 = self
            .batches
            .iter()
            .map(|e| (pf - 1.0) * e.se[k][t] * e.se[k][t] * pf + pf * e.mean[k][t] * e.mean[k][t])
            .sum();
        let var = ((s2 - total * mean * mean) / (total - 1.0)).max(0.0);
        (mean, (var / total).sqrt())
    }

    /// xi^2 of the pooled ensemble-averaged state at save `t` (`n` atoms) and its batch-means
    /// standard error (module doc).
    pub fn xi2_se(&self, t: usize, n: usize) -> (f64, f64) {
        let v: [f64; N_OBS] = std::array::from_fn(|k| self.mean_se(k, t).0);
        let xi2 = trajectory::moments_of(&v, n).xi2();
        let nb = self.batches.len() as f64;
        let mean = self.batches.iter().map(|e| e.xi2[t]).sum::<f64>() / nb;
        let var = self
            .batches
            .iter()
            .map(|e| (e.xi2[t] - mean).powi(2))
            .sum::<f64>()
            / (nb - 1.0);
        (xi2, (var / nb).sqrt())
    }
}
