//! Runtime checks of the states the master-equation tasks write (`evolve`, `steady_state`,
//! `scan`): a result that is not a physical state fails the run (exact solvers) or is flagged
//! in result.json (approximate methods) instead of being written as if it were.
//!
//! # What a physical state satisfies
//!
//! - **Exact states** ([`StateRef`]: the (N+1) x (N+1) matrix of j = N/2, or the blocks R_j):
//!   unit trace; every population non-negative (the diagonal of rho, or of every block R_j,
//!   which is p_j times a density matrix); and |<J>| <= N/2, since <J.n> <= j_max = N/2 for
//!   every unit vector n and every state of N spin-1/2 atoms (this implies the weaker
//!   |<J>|^2 <= j(j+1) of the j = N/2 irrep).
//! - **Approximate methods** (mean field, cumulants; only moments): |<J>| <= N/2. Mean field
//!   keeps its Bloch vector in the unit ball, so a violation is an integration error; the
//!   second-order cumulant truncation need not keep the moments of any state, so a violation
//!   is physics of the approximation. Both are *flagged* (stats `checks.warnings` in
//!   result.json) and the run continues.
//!
//! # Budgets: how far a state may miss before it is a violation
//!
//! **Evolutions** (DP5, [`crate::solver::ode`]): the controller accepts a step when the RMS over
//! the real components of e_i / (atol + rtol |y_i|) is at most 1, and density-matrix entries
//! satisfy |y_i| <= 1, so each step commits errors of order `atol + rtol` per entry. A Lindblad
//! evolution is trace-norm contractive, so those errors are not amplified, and in the
//! asymptotic regime of the error estimate the global error stays within a small multiple of
//! the local tolerance. Measured (Omega = 1 from the south pole for 20 time units; the most
//! negative population over the saves, in units of atol + rtol with rtol = atol):
//!
//! | rtol = atol | N = 20, Gamma = 0.01 (collective) | N = 8, gamma_down = 0.01 (blocks) |
//! |---|---|---|
//! | 1e-8 / 1e-6 | 0 | 0 |
//! | 1e-5 | 0.83 | 2.2 |
//! | 1e-4 | 8.1 | 7.5 |
//! | 1e-3 | 9.4 | 21 |
//! | 1e-2 | 9.8 (P_m = -0.2) | 5.2 (at the first save, -0.1) |
//!
//! and at most 0.075 in every shipped scenario (`scenarios/*.toml`, default or tighter
//! tolerances). The budget is `EVOLVE_FACTOR (atol + rtol) + ROUNDING` with
//! [`EVOLVE_FACTOR`] = 4: above the asymptotic regime, below the loose one, where the saved
//! states miss the accuracy asked for by an order of magnitude. The trace is a linear invariant that every Runge-Kutta method conserves exactly,
//! so its error is rounding only and the same budget is generous for it. For |<J>|, an error
//! of delta in every entry moves <J_a> by at most delta sum_k |A_kk'| <= delta W, with
//! W = sum over blocks of (j+1)(2j+1) (the column sums of J_x, J_y, J_z in each irrep are at most
//! j + 1, over 2j + 1 rows), so |<J>| may exceed N/2 by sqrt(3) W delta.
//!
//! **Steady states** (sparse LU with iterative refinement, no tolerance to set): rounding gives
//! errors of order eps times the condition number of the Liouvillian; [`STEADY_BUDGET`] =
//! sqrt(eps) ~ 1.5e-8 admits condition numbers up to 1e8, beyond which a steady state is not
//! resolved in f64 anyway.
//!
//! [`ROUNDING`] = 1e7 eps ~ 2.2e-9: f64 rounding of O(1) entries accumulated over the default
//! `task.max_steps` of 10^7 steps; it keeps the tightest allowed tolerances (rtol = 1e-14) from
//! turning rounding into violations.
//!
//! A violation in an exact solver ends the run with [`SolverError::Unphysical`] naming the
//! quantity, the time and the likely cause; the rows before it are written (the run's
//! partial output is kept apart, `task::context` module doc), none after it. Every check's
//! margins go to the task's statistics (`checks`), violated or not.

use super::rows::StateRef;
use crate::error::SolverError;
use crate::observe;
use crate::scenario::Point;
use crate::solver::ode::OdeOptions;
use serde::Serialize;

/// Multiple of `atol + rtol` an evolution's state may miss by (module doc).
pub const EVOLVE_FACTOR: f64 = 4.0;
/// Rounding floor of every evolution budget: 1e7 eps (module doc).
pub const ROUNDING: f64 = 1e7 * f64::EPSILON;
/// Budget of a steady state: sqrt(eps) (module doc).
pub const STEADY_BUDGET: f64 = 1.4901161193847656e-8;

/// How far a state may miss, how that follows from the solver, and what to change if it does.
#[derive(Debug, Clone)]
pub struct Budget {
    pub delta: f64,
    pub derivation: String,
    pub advice: String,
}

impl Budget {
    /// The budget of a DP5 evolution with `ode`'s tolerances (module doc).
    pub fn evolution(ode: &OdeOptions) -> Budget {
        Budget {
            delta: EVOLVE_FACTOR * (ode.atol + ode.rtol) + ROUNDING,
            derivation: format!(
                "{EVOLVE_FACTOR} (atol + rtol) + 1e7 eps with rtol = {:e}, atol = {:e}",
                ode.rtol, ode.atol
            ),
            advice: format!(
                "the tolerances are too loose for this problem (the integrator's error estimate \
                 no longer bounds its error); rerun with smaller task.rtol / task.atol (now {:e} / \
                 {:e}; the defaults are 1e-8 / 1e-10)",
                ode.rtol, ode.atol
            ),
        }
    }

    /// The budget of a steady state (module doc).
    pub fn steady_state() -> Budget {
        Budget {
            delta: STEADY_BUDGET,
            derivation: "sqrt(eps): rounding of a solve with condition number up to 1e8".into(),
            advice: "the steady-state solve is ill-conditioned (a nearly conserved quantity, or \
                     rates many orders of magnitude apart); check the model's rates, or evolve \
                     towards the steady state with kind = \"evolve\""
                .into(),
        }
    }
}

/// The margins of every state checked so far (result.json stats `checks`).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The budget the margins were held to.
    pub budget: f64,
    /// max |tr rho - 1| (exact states).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_trace_error: Option<f64>,
    /// The most negative population (exact states; 0 when none is negative).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_population: Option<f64>,
    /// max |<J>| / (N/2) (at most 1 for a physical state).
    pub max_j_over_half_n: f64,
    /// Flagged violations of an approximate method (the run continued).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Checks every state of one task point in turn (module doc): [`Guard::exact`] for exact
/// states (a violation is an error), [`Guard::approx`] for moments (a violation is a warning).
pub struct Guard {
    budget: Budget,
    summary: Summary,
    violation: Option<SolverError>,
}

/// At most this many warnings are kept per point (the first ones; the margins say the rest).
const MAX_WARNINGS: usize = 3;

impl Guard {
    pub fn new(budget: Budget) -> Guard {
        Guard {
            summary: Summary {
                budget: budget.delta,
                max_trace_error: None,
                min_population: None,
                max_j_over_half_n: 0.0,
                warnings: Vec::new(),
            },
            budget,
            violation: None,
        }
    }

    /// True once an exact state failed: the caller writes nothing after it.
    pub fn failed(&self) -> bool {
        self.violation.is_some()
    }

    /// Check an exact state at `at` ("t = 1.5", "the steady state"); returns false (and keeps
    /// the error for [`Guard::finish`]) on the first violation.
    pub fn exact(&mut self, at: impl FnOnce() -> String, state: StateRef) -> bool {
        if self.failed() {
            return false;
        }
        let m = measure(state);
        let s = &mut self.summary;
        s.max_trace_error = Some(s.max_trace_error.unwrap_or(0.0).max(m.trace_error));
        s.min_population = Some(s.min_population.unwrap_or(0.0).min(m.min_population.0));
        s.max_j_over_half_n = s.max_j_over_half_n.max(m.j_norm / m.half_n);
        let delta = self.budget.delta;
        // `x <= limit` is false for a NaN: a state with a NaN fails.
        let within = |x: f64, limit: f64| x <= limit;
        let check = if !within(m.trace_error, delta) {
            Some(format!("trace of the state = {:.6}", m.trace))
        } else if !within(-m.min_population.0, delta) {
            Some(format!(
                "population {} = {:.3e}",
                m.min_population.1, m.min_population.0
            ))
        } else if !within(m.j_norm, m.half_n + 3f64.sqrt() * m.weight * delta) {
            Some(format!("|<J>| = {:.6} > N/2 = {}", m.j_norm, m.half_n))
        } else {
            None
        };
        let Some(check) = check else { return true };
        self.violation = Some(SolverError::Unphysical {
            check,
            at: at(),
            budget: delta,
            derivation: self.budget.derivation.clone(),
            advice: self.budget.advice.clone(),
        });
        false
    }

    /// Check the mean spin `mean` = (<Jx>, <Jy>, <Jz>) of an approximate method's `n` atoms at
    /// `at`: |<J>| > (N/2)(1 + delta) is flagged, never an error (module doc).
    pub fn approx(&mut self, at: impl FnOnce() -> String, n: usize, mean: [f64; 3], method: &str) {
        let half_n = n as f64 / 2.0;
        let ratio = norm(mean) / half_n;
        self.summary.max_j_over_half_n = self.summary.max_j_over_half_n.max(ratio);
        if ratio <= 1.0 + self.budget.delta || self.summary.warnings.len() >= MAX_WARNINGS {
            return;
        }
        self.summary.warnings.push(format!(
            "{method}: |<J>| = {:.6} exceeds N/2 = {half_n} by {:.2e} at {} (beyond the budget \
             {:.1e}): the moments are not those of any state of N atoms{}",
            ratio * half_n,
            ratio - 1.0,
            at(),
            self.budget.delta,
            if method == "cumulant" {
                " (the second-order cumulant truncation does not keep them physical)"
            } else {
                ""
            }
        ));
    }

    /// The margins, or the first violation of an exact state.
    pub fn finish(self) -> Result<Summary, SolverError> {
        match self.violation {
            Some(e) => Err(e),
            None => Ok(self.summary),
        }
    }

    /// The margins so far (also after a violation).
    pub fn summary(&self) -> &Summary {
        &self.summary
    }
}

/// Add the margins to a task's statistics object as `checks`.
pub fn record(stats: &mut serde_json::Value, summary: &Summary) {
    if let (serde_json::Value::Object(m), Ok(v)) = (stats, serde_json::to_value(summary)) {
        m.insert("checks".into(), v);
    }
}

/// A single-point task's failure with the task and the point it ran at
/// ([`SolverError::AtPoint`]); a scan point's error ([`SolverError::ScanPoint`]) and a memory
/// refusal (which names N itself) pass unchanged.
pub fn at_point(task: &'static str, p: &Point, cause: SolverError) -> SolverError {
    if matches!(
        cause,
        SolverError::ScanPoint { .. }
            | SolverError::TooLarge { .. }
            | SolverError::AtPoint { .. }
            // An interrupt is not the point's failure: `run` recognises it as it is.
            | SolverError::Interrupted { .. }
    ) {
        return cause;
    }
    SolverError::AtPoint {
        task,
        point: describe(p),
        cause: Box::new(cause),
    }
}

/// "N = 10, Gamma = 1, Omega = 20": N, then the model parameters and variables that are not
/// zero (at most [`MAX_LISTED`]; "..." for the rest).
pub fn describe(p: &Point) -> String {
    let mut parts = vec![format!("N = {}", p.model.n)];
    let listed: Vec<String> = p
        .values
        .iter()
        .filter(|(k, v)| k.as_str() != "N" && **v != 0.0)
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    let more = listed.len() > MAX_LISTED;
    parts.extend(listed.into_iter().take(MAX_LISTED));
    if more {
        parts.push("...".into());
    }
    parts.join(", ")
}

/// Quantities [`describe`] lists at most.
const MAX_LISTED: usize = 8;

/// What the checks read from an exact state.
struct Measured {
    trace: f64,
    trace_error: f64,
    /// The most negative population (0 if none) and which one, in words.
    min_population: (f64, String),
    j_norm: f64,
    half_n: f64,
    /// W = sum over blocks of (j+1)(2j+1) (module doc).
    weight: f64,
}

fn measure(state: StateRef) -> Measured {
    let (trace, mom, min_population, weight) = match state {
        StateRef::Sym(rho) => {
            let n = rho.dim.saturating_sub(1);
            let (k, p) = (0..rho.dim)
                .map(|k| (k, rho.get(k, k).re))
                .fold((0, 0.0), |a, b| if b.1 < a.1 { b } else { a });
            let which = format!("P(m = {})", k as f64 - n as f64 / 2.0);
            (rho.trace().re, observe::moments(rho), (p, which), weight(&[n]))
        }
        StateRef::Blocks(s) => {
            let mut worst = (0.0, String::new());
            for b in 0..s.num_blocks() {
                let (d, blk) = (s.dim(b), s.block(b));
                let j = s.two_j[b] as f64 / 2.0;
                for k in 0..d {
                    if blk[k * d + k].re < worst.0 {
                        worst = (
                            blk[k * d + k].re,
                            format!("<j={j}, m={}|R_j|j, m={0}>", k as f64 - j),
                        );
                    }
                }
            }
            (s.trace().re, observe::moments_blocks(s), worst, weight(&s.two_j))
        }
    };
    Measured {
        trace,
        trace_error: (trace - 1.0).abs(),
        min_population,
        j_norm: norm(mom.mean),
        half_n: mom.n as f64 / 2.0,
        weight,
    }
}

/// W = sum over the irreps 2j of (j+1)(2j+1) (module doc).
fn weight(two_js: &[usize]) -> f64 {
    two_js
        .iter()
        .map(|&t| (t as f64 / 2.0 + 1.0) * (t as f64 + 1.0))
        .sum()
}

fn norm(v: [f64; 3]) -> f64 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::c64;
    use crate::state::{BlockState, DensityMatrix};

    fn defaults() -> Budget {
        Budget::evolution(&OdeOptions::default())
    }

    #[test]
    fn a_physical_state_passes_and_its_margins_are_recorded() {
        let psi = crate::state::pure::coherent(6, 1.0, 0.3);
        let rho = DensityMatrix::from_pure(&psi);
        let mut g = Guard::new(defaults());
        assert!(g.exact(|| "t = 0".into(), StateRef::Sym(&rho)));
        let blocks = BlockState::from_symmetric(&rho);
        assert!(g.exact(|| "t = 1".into(), StateRef::Blocks(&blocks)));
        let s = g.finish().unwrap();
        assert!(s.max_trace_error.unwrap() < 1e-14, "{s:?}");
        assert!((s.max_j_over_half_n - 1.0).abs() < 1e-12, "{s:?}");
    }

    #[test]
    fn a_negative_population_beyond_the_budget_is_an_error_naming_it() {
        // diag(1.1, -0.1): trace 1, population P(m = 1/2) = -0.1 (N = 1).
        let mut rho = DensityMatrix::zeros(2);
        rho.data[0] = c64::new(1.1, 0.0);
        rho.data[3] = c64::new(-0.1, 0.0);
        let mut g = Guard::new(defaults());
        assert!(!g.exact(|| "t = 2".into(), StateRef::Sym(&rho)));
        assert!(g.failed());
        let e = g.finish().unwrap_err().to_string();
        assert!(
            e.contains("population P(m = 0.5) = -1.000e-1")
                && e.contains("t = 2")
                && e.contains("task.rtol")
                && e.contains("4 (atol + rtol)"),
            "{e}"
        );
        // The same state within a loose budget passes: the budget, not the sign, decides.
        let loose = Budget {
            delta: 0.2,
            ..defaults()
        };
        let mut g = Guard::new(loose);
        assert!(g.exact(|| "t = 2".into(), StateRef::Sym(&rho)));
    }

    #[test]
    fn trace_and_bloch_bound_violations_are_errors() {
        let mut rho = DensityMatrix::zeros(2);
        rho.data[0] = c64::new(0.6, 0.0);
        rho.data[3] = c64::new(0.6, 0.0);
        let e = Guard::new(defaults());
        let mut g = e;
        assert!(!g.exact(|| "t = 0".into(), StateRef::Sym(&rho)));
        assert!(
            g.finish()
                .unwrap_err()
                .to_string()
                .contains("trace of the state = 1.200000")
        );
        // Populations (1/2, 1/2) with coherence 0.9: <Jx> = 0.9 > N/2 = 0.5, trace 1.
        let mut rho = DensityMatrix::zeros(2);
        rho.data[0] = c64::new(0.5, 0.0);
        rho.data[3] = c64::new(0.5, 0.0);
        rho.data[1] = c64::new(0.9, 0.0);
        rho.data[2] = c64::new(0.9, 0.0);
        let mut g = Guard::new(defaults());
        assert!(!g.exact(|| "the steady state".into(), StateRef::Sym(&rho)));
        let e = g.finish().unwrap_err().to_string();
        assert!(e.contains("|<J>| = 0.9") && e.contains("the steady state"), "{e}");
    }

    #[test]
    fn approximate_methods_are_flagged_not_failed() {
        let mut g = Guard::new(defaults());
        g.approx(|| "t = 1".into(), 10, [0.0, 0.0, -5.0], "cumulant");
        assert!(g.summary().warnings.is_empty());
        g.approx(|| "t = 2".into(), 10, [3.0, 0.0, -4.5], "cumulant");
        let s = g.finish().unwrap();
        assert_eq!(s.warnings.len(), 1);
        assert!(
            s.warnings[0].contains("exceeds N/2 = 5") && s.warnings[0].contains("t = 2"),
            "{s:?}"
        );
    }
}
