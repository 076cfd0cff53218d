//! The up-front cost line of a run: before a task starts, [`line`] says in one line how much
//! work it is (points, trajectories, saves, the state's size) and the memory its largest
//! request needs, so that a batch job's log shows what it is in for before the first progress
//! line. [`super::run`] hands it to [`super::Progress::estimate`]; the CLI prints it on stderr.
//!
//! The memory figures are the very estimates the tasks refuse requests over the limit with
//! ([`super::memory`], the solvers' `memory_estimate` functions), so the line and a refusal
//! never disagree. No running time is predicted: the step counts of the adaptive integrators
//! depend on the dynamics and are only known as they run (the progress log gives rates).

use super::memory;
use crate::error::Error;
use crate::model::{Model, PARAM_NAMES};
use crate::scenario::{EvolveSpec, SWEEP_QUANTITIES, ScanMode, Scenario, Task};
use crate::solver::{Method, blocks, master, trajectory};

/// The cost line of `sc`'s task (module doc), without the leading "estimate: ".
pub fn line(sc: &Scenario) -> Result<String, Error> {
    let points = sc.points()?;
    let model = &points[0].model;
    Ok(match &sc.task {
        Task::Evolve { times, max_steps, .. } => format!(
            "evolve, {}; {}",
            state_cost(sc.method, model, false),
            saves(times, *max_steps)
        ),
        Task::SteadyState => format!("steady_state, {}", state_cost(sc.method, model, true)),
        Task::Spectrum { k, target, .. } => format!(
            "spectrum, {k} eigenvalues nearest {target}: {} (one complex sparse LU, about twice the \
             steady state's)",
            state_cost(sc.method, model, true)
        ),
        Task::Correlation(_) | Task::Fisher(_) => response_line(sc, points.len(), model),
        Task::Metastable => format!(
            "metastable decomposition (a few eigenvalues nearest 0): {} (one complex sparse LU)",
            state_cost(sc.method, model, true)
        ),
        Task::Scan { values, mode, .. } => {
            let steady = !matches!(mode, ScanMode::Evolve { .. });
            let largest = points
                .iter()
                .map(|p| bytes(sc.method, &p.model, steady))
                .fold(0.0, f64::max);
            let what = match mode {
                ScanMode::SteadyState => "steady state".to_string(),
                ScanMode::Evolve { spec, .. } => format!("evolution, {}", spec_saves(spec)),
                ScanMode::Spectrum { k, target, .. } => {
                    format!("{k} Liouvillian eigenvalues nearest {target}, one complex sparse LU")
                }
                ScanMode::Metastable => "metastable decomposition, one complex sparse LU".to_string(),
            };
            format!(
                "scan of {} points ({what} each), N = {}: {}",
                values.len(),
                model.n,
                per_point(largest, sc.method)
            )
        }
        Task::Trajectories {
            times,
            ntraj,
            seed,
            save_trajectories,
            f64,
            dt,
            cfl,
            level_window,
        } => {
            let opts = super::trajectories::options(
                *ntraj,
                *seed,
                *f64,
                *dt,
                *cfl,
                *save_trajectories,
                sc.observables.pm,
                *level_window,
            );
            let steps = match dt {
                Some(dt) => format!(
                    ", ~{:.0} steps each (dt = {dt})",
                    ((times[times.len() - 1] - times[0]) / dt).ceil()
                ),
                None => String::new(),
            };
            format!(
                "{ntraj} trajectories x {} saves at N = {}{steps}, {} host memory",
                times.len(),
                model.n,
                mib(trajectory::memory_estimate(model.n, times.len(), *ntraj, &opts))
            )
        }
        Task::FixedPoints {
            values, integrate, ..
        } => format!(
            "mean-field fixed points at {} values{}, negligible memory",
            values.len(),
            if integrate.is_some() {
                " (and an integration from [initial] at each)"
            } else {
                ""
            }
        ),
        Task::Sweep(spec) if spec.method == "exact" => format!(
            "exact sweep of {} points (one population rate equation of N + 1 levels each, saves per \
             point from its own t_end, at most {} steps each), {}",
            spec.len(),
            spec.max_steps,
            mib(super::sweep_exact::memory_estimate(sc, spec)?)
        ),
        Task::Sweep(spec) => {
            let ncols = spec.axes.len() + PARAM_NAMES.len() + SWEEP_QUANTITIES.len();
            format!(
                "sweep of {} points ({} ODEs, {} saves each, at most {} steps each), {}",
                spec.len(),
                spec.method,
                spec.nsave,
                spec.max_steps,
                mib(super::sweep::memory_estimate(spec.len(), ncols))
            )
        }
    })
}

/// The cost line of `kind = "correlation"` and `kind = "fisher"` (`npoints` points, the first
/// one's `model`).
fn response_line(sc: &Scenario, npoints: usize, model: &Model) -> String {
    match &sc.task {
        Task::Correlation(spec) => format!(
            "correlation <{}(t+tau) {}(t)>, {} delays up to tau = {}{}: {}",
            spec.a.name(),
            spec.b.name(),
            spec.taus.len(),
            spec.taus[spec.taus.len() - 1],
            if npoints > 1 {
                format!(" at {} points", npoints)
            } else {
                String::new()
            },
            state_cost(sc.method, model, false)
        ),
        Task::Fisher(spec) => {
            let (states, quantum) = super::fisher::memory_bytes(model);
            format!(
                "fisher information on {} at {} point(s), up to {} steady states each, N = {}: {} \
                 (steady states and differences){}",
                spec.parameter,
                npoints,
                2 * crate::solver::fisher::MAX_LEVELS + 1,
                model.n,
                mib(states),
                if spec.qfi {
                    format!(", {} (F_Q eigendecompositions)", mib(quantum))
                } else {
                    String::new()
                }
            )
        }
        _ => String::new(),
    }
}

/// The state's size and memory of one evolution / steady state of `model` with `method`.
fn state_cost(method: Method, model: &Model, steady: bool) -> String {
    let n = model.n;
    match method {
        Method::MeanField(_) => "meanfield (3 variables), negligible memory".into(),
        Method::Cumulant => "cumulant (9 variables), negligible memory".into(),
        _ if model.is_collective() => {
            let dim = (n + 1) * (n + 1);
            format!(
                "N = {n}: density matrix of j = N/2, {dim} elements (Liouvillian dimension \
                 {dim}), {}{}",
                mib(bytes(method, model, steady)),
                if steady { " (sparse LU, fill included)" } else { "" }
            )
        }
        _ => format!(
            "N = {n} with single-atom rates: blocks R_j, {} elements, {}{}",
            crate::state::blocks::block_elements(n),
            mib(bytes(method, model, steady)),
            if steady { " (sparse LU, fill included)" } else { "" }
        ),
    }
}

/// Bytes of one exact evolution or steady state (0 for the approximate methods).
fn bytes(method: Method, model: &Model, steady: bool) -> f64 {
    match (method, steady) {
        (Method::MeanField(_) | Method::Cumulant, _) => 0.0,
        (_, false) => memory::evolution_bytes(model),
        (_, true) if model.is_collective() => master::steady_state_memory_estimate(model.n + 1),
        (_, true) => blocks::steady_state_memory_estimate(model),
    }
}

fn per_point(bytes: f64, method: Method) -> String {
    match method {
        Method::MeanField(_) | Method::Cumulant => format!("{}, negligible memory", method.name()),
        _ => format!("{} for the largest point (CPU path)", mib(bytes)),
    }
}

fn saves(times: &[f64], max_steps: usize) -> String {
    format!(
        "{} saves up to t = {}, at most {max_steps} steps (task.max_steps)",
        times.len(),
        times[times.len() - 1]
    )
}

fn spec_saves(spec: &EvolveSpec) -> String {
    saves(&spec.times, spec.max_steps)
}

/// "~3.2 MiB", "~1.2 GiB", "< 0.1 MiB".
fn mib(bytes: f64) -> String {
    let m = bytes / (1024.0 * 1024.0);
    if m >= 1024.0 {
        format!("~{:.1} GiB", m / 1024.0)
    } else if m >= 0.1 {
        format!("~{m:.1} MiB")
    } else {
        "< 0.1 MiB".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(text: &str) -> Scenario {
        crate::scenario::parse(text, "test", &[]).unwrap()
    }

    #[test]
    fn an_evolution_names_its_size_and_the_memory_the_refusal_uses() {
        let sc = scenario(
            "[model]\nN = 100\nGamma = 1\n[initial]\nstate = \"dicke\"\nm = \"-N/2\"\n\
             [task]\nkind = \"evolve\"\nt_end = 1\nn_times = 11\n",
        );
        let l = line(&sc).unwrap();
        // 10201 complex elements x 12 copies x 16 bytes = 1.87 MiB.
        assert!(
            l.contains("Liouvillian dimension 10201") && l.contains("~1.9 MiB") && l.contains("11 saves"),
            "{l}"
        );
    }

    #[test]
    fn trajectories_and_sizes_read_in_words() {
        let sc = scenario(
            "[model]\nN = 10\nGamma = 1\n[initial]\nstate = \"dicke\"\nm = \"-N/2\"\n\
             [task]\nkind = \"trajectories\"\nt_end = 1\nn_times = 5\nntraj = 200000\ndt = 0.01\n",
        );
        let l = line(&sc).unwrap();
        assert!(
            l.starts_with("200000 trajectories x 5 saves at N = 10, ~100 steps each"),
            "{l}"
        );
        assert_eq!(mib(1.5 * 1024.0 * 1024.0 * 1024.0), "~1.5 GiB");
        assert_eq!(mib(1000.0), "< 0.1 MiB");
    }
}
