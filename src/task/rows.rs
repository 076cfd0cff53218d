//! The observable columns of the master-equation tasks (`evolve`, `steady_state`, `scan`) and
//! the files they share: `observables.csv` rows, `pm.csv`, the Husimi grid and the main plot.
//!
//! A state is the (N+1) x (N+1) density matrix of the symmetric subspace (collective-only
//! models) or the blocks R_j of a permutation-invariant state (single-atom rates,
//! [`crate::solver::blocks`]); the observables of a block state are sums over its blocks,
//! the fidelity and Husimi Q read R_{N/2} (exact: the reference and every coherent state lie
//! in j = N/2), purity and lambda_max are those of the full 2^N state (degeneracies via
//! ln-gamma; [`crate::observe`]).

use crate::c64;
use crate::error::{Error, InputError, OutputError};
use crate::observe;
use crate::output::{CsvWriter, plot};
use crate::scenario::{BASE_OBSERVABLES, Point, Scenario};
use crate::state::{BlockState, DensityMatrix};
use std::path::Path;

/// A state the master-equation tasks produce.
#[derive(Clone, Copy)]
pub enum StateRef<'a> {
    Sym(&'a DensityMatrix),
    Blocks(&'a BlockState),
}

/// An owned [`StateRef`].
pub enum OwnedState {
    Sym(DensityMatrix),
    Blocks(BlockState),
}

impl OwnedState {
    pub fn as_ref(&self) -> StateRef<'_> {
        match self {
            OwnedState::Sym(r) => StateRef::Sym(r),
            OwnedState::Blocks(s) => StateRef::Blocks(s),
        }
    }
}

impl StateRef<'_> {
    /// A copy of the state as the final-state file holds it ([`crate::output::final_state`]).
    pub fn to_saved(&self) -> crate::output::final_state::SavedState {
        use crate::output::final_state::SavedState;
        match self {
            StateRef::Sym(r) => SavedState::Manifold((*r).clone()),
            StateRef::Blocks(s) => SavedState::Blocks((*s).clone()),
        }
    }

    pub fn pm(&self) -> Vec<f64> {
        match self {
            StateRef::Sym(r) => observe::pm(r),
            StateRef::Blocks(s) => observe::pm_blocks(s),
        }
    }

    /// The matrix a Husimi grid reads: rho itself, or R_{N/2}, exact for the full state
    /// because every spin coherent state lies in j = N/2 ([`crate::observe`] module doc).
    pub fn husimi_matrix(&self) -> DensityMatrix {
        match self {
            StateRef::Sym(r) => (*r).clone(),
            StateRef::Blocks(s) => s.block_matrix(0),
        }
    }
}

/// The observable names of a scenario: base then extras.
pub fn observable_names(sc: &Scenario) -> Vec<String> {
    let mut names: Vec<String> = BASE_OBSERVABLES.iter().map(|s| s.to_string()).collect();
    names.extend(sc.observables.columns.iter().cloned());
    names
}

/// The observable columns (base then extras) for a state.
pub fn observable_row(state: StateRef, extras: &[String], reference: Option<&[c64]>) -> Vec<f64> {
    let (mom, j2) = match state {
        StateRef::Sym(rho) => (observe::moments(rho), observe::j2(rho)),
        StateRef::Blocks(s) => (observe::moments_blocks(s), observe::j2_blocks(s)),
    };
    moment_row(&mom, j2, extras, Some(state), reference)
}

/// The observable columns from moments; the columns that need the density matrix itself
/// (`purity`, `lambda_max`, `fidelity`) are NaN without one (scenario validation refuses
/// them for tasks that have none).
pub fn moment_row(
    mom: &observe::Moments,
    j2: f64,
    extras: &[String],
    rho: Option<StateRef>,
    reference: Option<&[c64]>,
) -> Vec<f64> {
    let xi2 = mom.xi2();
    let mut row = vec![mom.mean[0], mom.mean[1], mom.mean[2], xi2, j2];
    row.extend(
        extras
            .iter()
            .map(|c| extra_column(c, mom, xi2, j2, rho, reference)),
    );
    row
}

fn extra_column(
    c: &str,
    mom: &observe::Moments,
    xi2: f64,
    j2: f64,
    rho: Option<StateRef>,
    reference: Option<&[c64]>,
) -> f64 {
    let cov = || mom.covariance();
    match c {
        "JxJx" => mom.second[0][0],
        "JyJy" => mom.second[1][1],
        "JzJz" => mom.second[2][2],
        "JxJy" => mom.second[0][1],
        "JxJz" => mom.second[0][2],
        "JyJz" => mom.second[1][2],
        "var_Jx" => cov()[0][0],
        "var_Jy" => cov()[1][1],
        "var_Jz" => cov()[2][2],
        "xi2_dB" => 10.0 * xi2.log10(),
        "N_eff" => observe::n_eff(j2),
        "Jp_abs" => (mom.mean[0] * mom.mean[0] + mom.mean[1] * mom.mean[1]).sqrt(),
        // Of the full 2^N-dimensional state: for blocks the degeneracies enter.
        "purity" => match rho {
            Some(StateRef::Sym(r)) => r.data.iter().map(|z| z.norm_sqr()).sum(),
            Some(StateRef::Blocks(s)) => observe::purity_blocks(s),
            None => f64::NAN,
        },
        "lambda_max" => match rho {
            Some(StateRef::Sym(r)) => observe::largest_eigenvalue(r),
            Some(StateRef::Blocks(s)) => observe::largest_eigenvalue_blocks(s),
            None => f64::NAN,
        },
        "fidelity" => match (rho, reference) {
            (Some(StateRef::Sym(r)), Some(psi)) => observe::fidelity_pure(r, psi),
            (Some(StateRef::Blocks(s)), Some(psi)) => observe::fidelity_blocks(s, psi),
            _ => f64::NAN,
        },
        _ => f64::NAN, // unreachable: names are validated in scenario::validate
    }
}

/// `pm.csv` with the leading column `x`, if the scenario asks for P_m.
pub fn pm_writer(sc: &Scenario, dir: &Path, x: &str, n: usize) -> Result<Option<CsvWriter>, OutputError> {
    if !sc.observables.pm {
        return Ok(None);
    }
    let j = n as f64 / 2.0;
    let mut h = vec![x.to_string()];
    h.extend((0..=n).map(|k| format!("P({})", k as f64 - j)));
    Ok(Some(CsvWriter::create(&dir.join("pm.csv"), &h)?))
}

/// x columns then observable names.
pub fn header(x_names: &[String], names: &[String]) -> Vec<String> {
    x_names.iter().chain(names).cloned().collect()
}

/// A point's values of the scan columns `x_names` (NaN for a name it does not set).
pub fn x_values(p: &Point, x_names: &[String]) -> Vec<f64> {
    x_names
        .iter()
        .map(|n| p.values.get(n).copied().unwrap_or(f64::NAN))
        .collect()
}

/// The x columns of a scan: the scanned variable, then every model parameter it moves.
pub fn scan_x_names(sc: &Scenario, variable: &str) -> Result<Vec<String>, InputError> {
    let mut v = vec![variable.to_string()];
    v.extend(
        sc.varying_parameters()?
            .into_iter()
            .filter(|n| *n != variable)
            .map(str::to_string),
    );
    Ok(v)
}

/// The rows of a master-equation task and what its figures read.
pub struct Table {
    /// x columns (`t`, or the scan variable and the parameters it moves; none for a single
    /// steady state).
    pub x_names: Vec<String>,
    /// Observable names (base then extras).
    pub names: Vec<String>,
    pub rows: Vec<Vec<f64>>,
    /// The final / steady state (kept for a Husimi grid).
    pub last: Option<DensityMatrix>,
}

/// Husimi Q of the final / steady state (`husimi.csv`, `husimi.png`) and the main plot
/// (`plot.png`); returns the files written.
pub fn write_figures(sc: &Scenario, dir: &Path, table: &Table) -> Result<Vec<String>, Error> {
    let mut files = Vec::new();
    if let (Some((nt, np)), Some(rho)) = (sc.observables.husimi, &table.last) {
        files.extend(write_husimi(sc, dir, rho, nt, np)?);
    }
    if sc.plot {
        let xs: Vec<f64> = if table.x_names.is_empty() {
            vec![0.0]
        } else {
            table.rows.iter().map(|r| r[0]).collect()
        };
        draw_plot(
            &dir.join("plot.png"),
            sc,
            &table.x_names,
            &xs,
            &table.names,
            &table.rows,
        )?;
        files.push("plot.png".into());
    }
    Ok(files)
}

fn write_husimi(
    sc: &Scenario,
    dir: &Path,
    rho: &DensityMatrix,
    nt: usize,
    np: usize,
) -> Result<Vec<String>, Error> {
    use std::f64::consts::PI;
    let thetas: Vec<f64> = (0..nt).map(|i| PI * (i as f64 + 0.5) / nt as f64).collect();
    let phis: Vec<f64> = (0..np)
        .map(|i| -PI + 2.0 * PI * (i as f64 + 0.5) / np as f64)
        .collect();
    let q = observe::husimi_q(rho, &thetas, &phis);
    let mut w = CsvWriter::create(
        &dir.join("husimi.csv"),
        &["theta".into(), "phi".into(), "Q".into()],
    )?;
    for (a, th) in thetas.iter().enumerate() {
        for (b, ph) in phis.iter().enumerate() {
            w.row(&[*th, *ph, q[a * np + b]])?;
        }
    }
    let mut files = vec!["husimi.csv".to_string()];
    if sc.plot {
        plot::heatmap(
            &dir.join("husimi.png"),
            &format!("Husimi Q  {}", sc.title),
            "phi",
            "theta",
            &phis,
            &thetas,
            &q,
        )?;
        files.push("husimi.png".into());
    }
    Ok(files)
}

/// `plot.png`: <J> and xi^2, then up to four extra observables, against the x column.
fn draw_plot(
    path: &Path,
    sc: &Scenario,
    x_names: &[String],
    xs: &[f64],
    names: &[String],
    rows: &[Vec<f64>],
) -> Result<(), Error> {
    let nx = x_names.len();
    let col = |name: &str| -> Vec<f64> {
        let i = names
            .iter()
            .position(|n| n == name)
            .map(|i| i + nx)
            .unwrap_or(usize::MAX);
        rows.iter()
            .map(|r| r.get(i).copied().unwrap_or(f64::NAN))
            .collect()
    };
    type Panel = (String, Vec<(String, Vec<f64>)>);
    let mut panels: Vec<Panel> = vec![
        (
            "<J>".into(),
            vec![
                ("Jx".into(), col("Jx")),
                ("Jy".into(), col("Jy")),
                ("Jz".into(), col("Jz")),
            ],
        ),
        ("xi^2".into(), vec![("xi2".into(), col("xi2"))]),
    ];
    for e in names.iter().skip(BASE_OBSERVABLES.len()).take(4) {
        panels.push((e.clone(), vec![(e.clone(), col(e))]));
    }
    let series: Vec<(&str, Vec<plot::Series>)> = panels
        .iter()
        .map(|(label, s)| {
            (
                label.as_str(),
                s.iter()
                    .map(|(n, y)| plot::Series { name: n, y })
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let x_label = x_names.first().map(String::as_str).unwrap_or("point");
    let title = if sc.title.is_empty() {
        "dicke"
    } else {
        sc.title.as_str()
    };
    plot::line_plot(path, title, x_label, xs, &series)?;
    Ok(())
}
