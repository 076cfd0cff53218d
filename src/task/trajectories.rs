//! `kind = "trajectories"`: a Monte-Carlo wave-function ensemble from `[initial]`
//! ([`trajectory`]: collective models stay in j = N/2, single-atom rates change the irrep at
//! jumps), on the CPU twin or the WGSL kernel (same Philox streams, same arithmetic).
//!
//! Outputs: `observables.csv` (ensemble means with `jumps` and the standard errors
//! `<name>_se`), `pm.csv` (P_m summed over irreps, with standard errors; CPU only),
//! `trajectories.csv` and `trajectories.png` for the first `save_trajectories` trajectories
//! (their moments, and derived along each: xi^2 and N_eff = 2 sqrt(1/4 + j(j+1)) - 1 = 2j,
//! seed 002 Fig. 2c), with `[observables.fidelity]` also `fidelity` = |<ref|psi_k(t)>|^2
//! along each (seed 000 Fig. 4b; 0 while the trajectory is in j < N/2): computed in the CPU
//! twin as it runs, or for a GPU ensemble by replaying the saved trajectories on the twin
//! ([`trajectory::replay_fidelity`]).

use super::checkpoint::{Coverage, Dec, Enc};
use super::context::Context;
use super::policy::{self, Engine, Kernel};
use super::report::{Report, jnum, named};
use super::rows;
use crate::c64;
use crate::error::Error;
use crate::observe;
use crate::output::{CsvWriter, plot};
use crate::precision::Precision;
use crate::scenario::Scenario;
use crate::solver::trajectory::{self, EnsembleResult, TrajectoryOptions};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

/// The scenario's trajectory task, as [`super::run`] hands it over.
pub struct Spec<'a> {
    pub times: &'a [f64],
    pub options: TrajectoryOptions,
}

/// Run `kind = "trajectories"`.
pub fn run(sc: &Scenario, spec: &Spec, ctx: &mut Context) -> Result<Report, Error> {
    let points = sc.points()?;
    let p = &points[0];
    let psi0 = sc.initial_state(p)?;
    // Validation allows [observables.fidelity] here only with saved trajectories.
    // [analysis.switching]: the on-line classifier (thresholds given or from P_m).
    let switching = sc
        .switching
        .as_ref()
        .map(|sw| super::switching::classifier(sw, &p.model).map(|(c, src)| (sw, c, src)))
        .transpose()?;
    let topts = &TrajectoryOptions {
        reference: sc.reference_state(p)?,
        classifier: switching.as_ref().map(|s| s.1),
        ..spec.options.clone()
    };
    let ntraj = topts.ntraj;
    super::memory::refuse_bytes(
        crate::solver::trajectory::memory_estimate(p.model.n, spec.times.len(), ntraj, topts),
        format!(
            "trajectory ensemble at N = {}, {} save times, {ntraj} trajectories{} (records of a \
             batch of up to 1024 trajectories, sums, kept trajectories)",
            p.model.n,
            spec.times.len(),
            if topts.pm {
                ", P_m per save (N + 1 populations)"
            } else {
                ""
            }
        ),
    )?;
    let kernel = Kernel::Gpu {
        asked: Some(topts.precision),
        cpu_follows_precision: true,
        f32_floors: &[],
        cpu_only: cpu_only(topts).or(trajectory::sched::gpu_refusal(&p.protocol())),
    };
    let engine = policy::resolve(ctx.backend, &kernel, ctx.gpu.clone())?;
    let protocol = p.protocol();
    let (ens, coverage) = ensemble(&engine, &protocol, &psi0, spec.times, topts, ctx)?;
    // A shard's files are data for `dicke merge`; the merged run draws the figures.
    let plot = sc.plot && ctx.work.shard.is_none();
    let backend = engine.used(Some(ens.device.clone()));
    ctx.path("observables.csv")?; // creates the output directory
    let (columns, fin) = write_means(sc, ctx.dir, &ens, spec.times, &protocol)?;
    let mut files = vec!["observables.csv".to_string()];
    if !ens.pm_mean.is_empty() {
        write_pm(ctx.dir, &ens, spec.times, p.model.n)?;
        files.push("pm.csv".into());
    }
    if !ens.trajectories.is_empty() {
        files.extend(write_single(sc, plot, ctx.dir, &ens, spec.times, p.model.n)?);
    }
    if plot {
        let table = rows::Table {
            x_names: vec!["t".into()],
            names: rows::observable_names(sc),
            rows: means_rows(sc, &ens, spec.times, p.model.n),
            last: None,
        };
        files.extend(rows::write_figures(sc, ctx.dir, &table)?);
    }
    let mut switched = serde_json::Value::Null;
    if let Some((sw, c, src)) = &switching {
        let (f, j) = super::switching::write(ctx.dir, sw, c, src, &ens, plot)?;
        files.extend(f);
        switched = j;
    }
    let results = json!({
        "final": named(&columns[1..], &fin[1..]),
        "t_final": jnum(fin.first().copied().unwrap_or(f64::NAN)),
        "ntraj": ens.ntraj,
        "seed": ens.seed,
        "switching": switched,
    });
    let stats = json!({
        "precision": ens.precision,
        "lanes": ens.lanes,
        "rate_bound": ens.rate_bound,
        "steps_per_save": ens.steps,
        "step_sizes": ens.step_sizes,
        "ensemble_wall_s": ens.wall_s,
        "trajectories_per_s": ens.ntraj as f64 / ens.wall_s,
    });
    // result.json's `columns` lists t and the observables (not jumps and the `_se` columns
    // that follow them in observables.csv), as it always has.
    let columns = rows::header(&["t".to_string()], &rows::observable_names(sc));
    Ok(Report {
        coverage: Some(coverage),
        task: "trajectories",
        solver: "trajectories (Monte-Carlo wave function; irrep-changing with single-atom rates)".into(),
        backend,
        model: p.model,
        columns,
        results,
        stats: Some(stats),
        files,
    })
}

/// Trajectories per checkpoint unit: a multiple of the CPU batch (1024), at most about 256
/// units per ensemble (so a unit's sums stay small on disk and any shard count up to 256 gets
/// work). Fixed by `ntraj` alone, so every backend, shard and resume cuts the same units.
pub fn unit_size(ntraj: u64) -> u64 {
    1024 * ntraj.div_ceil(256 * 1024).max(1)
}

/// On the GPU, consecutive units still to compute run together, up to this many
/// trajectories (the device wants many at once; an interrupt waits for the group).
#[cfg(feature = "gpu")]
const GPU_GROUP: u64 = 1 << 16;

/// The ensemble on the resolved backend, unit by unit ([`super::checkpoint`]): each unit's
/// exact sums ([`trajectory::Accumulator`]) are written to the checkpoint as it finishes and
/// folded into the ensemble in unit order, whether computed now or read back (resume, merge).
fn ensemble(
    engine: &Engine,
    protocol: &crate::model::Protocol,
    psi0: &[c64],
    times: &[f64],
    topts: &TrajectoryOptions,
    ctx: &mut Context,
) -> Result<(EnsembleResult, Coverage), Error> {
    let start = Instant::now();
    match engine {
        Engine::Cpu { .. } => {
            let plan = trajectory::cpu_plan_protocol(protocol, psi0, times, topts)?;
            let device = format!("{} rayon threads", rayon::current_num_threads());
            let ran = run_units(ctx, "cpu", &plan, 1, |plan, offset, counts| {
                Ok(vec![trajectory::cpu_unit(plan, offset, counts[0])])
            })?;
            Ok(finish(&plan, ran, "cpu", device, start))
        }
        #[cfg(feature = "gpu")]
        Engine::Gpu { ctx: gpu, .. } => {
            use crate::backend::gpu::trajectory as gt;
            let kernel = gt::TrajectoryGpu::new(std::sync::Arc::clone(gpu))?;
            let plan = gt::gpu_plan_protocol(protocol, psi0, times, topts).map_err(|e| match e {
                trajectory::TrajectoryError::Solver(s) => Error::from(s),
                trajectory::TrajectoryError::Gpu(g) => Error::from(g),
            })?;
            let device = gt::device(&kernel, &plan);
            let ran = run_units(ctx, "gpu", &plan, GPU_GROUP, |plan, offset, counts| {
                Ok(gt::gpu_units(&kernel, plan, offset, counts)?)
            })?;
            Ok(finish(&plan, ran, "gpu", device, start))
        }
    }
}

fn finish(
    plan: &trajectory::Plan,
    (acc, coverage): (trajectory::Accumulator, Coverage),
    backend: &'static str,
    device: String,
    start: Instant,
) -> (EnsembleResult, Coverage) {
    (trajectory::finish(plan, acc, backend, device, start), coverage)
}

/// Drive the units of `plan`: `compute(plan, offset, counts)` reduces the consecutive units
/// starting at trajectory `offset` (of `counts` trajectories each; up to `group` trajectories
/// at once where the backend wants batches); the ensemble's accumulator absorbs every unit in
/// unit order.
fn run_units(
    ctx: &mut Context,
    backend: &str,
    plan: &trajectory::Plan,
    group: u64,
    mut compute: impl FnMut(&trajectory::Plan, u64, &[u64]) -> Result<Vec<trajectory::Accumulator>, Error>,
) -> Result<(trajectory::Accumulator, Coverage), Error> {
    let size = unit_size(plan.ntraj);
    let mut tag = format!("{backend} {} lanes {}", plan.precision.name(), plan.lanes);
    if let Some(c) = &plan.classifier {
        // The classifier's numbers decide the events in a unit's payload.
        tag.push_str(&format!(
            " switching alpha {:e} lo {:e} hi {:e} max_events {}",
            c.alpha, c.lo, c.hi, c.max_events
        ));
    }
    let mut units = ctx.units("trajectories", tag, plan.ntraj, size, "trajectories")?;
    let todo: BTreeSet<usize> = units.range().filter(|u| !units.has(*u)).collect();
    let count = |u: usize| (plan.ntraj - u as u64 * size).min(size);
    let keep = plan.save_trajectories;
    let classify = plan.classifier.is_some();
    let mut total = trajectory::Accumulator::new(plan.n_saves(), keep).classified(classify);
    let mut ready: BTreeMap<usize, trajectory::Accumulator> = BTreeMap::new();
    units.run(
        ctx.progress,
        "trajectories",
        |u| {
            if !ready.contains_key(&u) {
                let mut members = vec![u];
                let mut n = count(u);
                while let Some(&v) = todo.range(members[members.len() - 1] + 1..).next() {
                    if v != members[members.len() - 1] + 1 || n + count(v) > group {
                        break;
                    }
                    n += count(v);
                    members.push(v);
                }
                let counts: Vec<u64> = members.iter().map(|&m| count(m)).collect();
                let accs = compute(plan, u as u64 * size, &counts)?;
                if let Some((index, n)) = accs.iter().find_map(|a| a.overflow()) {
                    return Err(crate::error::InputError::invalid(
                        "analysis.switching.max_events",
                        plan.max_events(),
                        format!(
                            "at least {n}: trajectory {index} changed phase {n} times (raise                              max_events, or widen the window / thresholds if these are spurious                              switches)"
                        ),
                    )
                    .into());
                }
                ready.extend(members.into_iter().zip(accs));
            }
            let acc = ready
                .remove(&u)
                .unwrap_or_else(|| trajectory::Accumulator::new(plan.n_saves(), 0).classified(classify));
            let mut e = Enc::default();
            acc.encode(&mut e);
            Ok(e.0)
        },
        |_, bytes| {
            total.absorb(trajectory::Accumulator::decode(&mut Dec(&bytes), keep, classify)?);
            Ok(())
        },
    )?;
    Ok((total, units.coverage()))
}

/// The ensemble-mean rows: t, the observables, then (not in the plot) jumps and the standard
/// errors.
fn means_rows(sc: &Scenario, ens: &EnsembleResult, times: &[f64], n: usize) -> Vec<Vec<f64>> {
    let extras = &sc.observables.columns;
    times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mom = ens.moments(i, n);
            let mut full = vec![*t];
            // <J^2> = <j(j+1)> over the trajectories' irreps (j = N/2 throughout for a
            // collective model; single-atom processes move it).
            let j2 = ens.mean_of("J2").map_or(f64::NAN, |v| v[i]);
            full.extend(rows::moment_row(&mom, j2, extras, None, None));
            full.push(ens.mean_of("jumps").map_or(f64::NAN, |v| v[i]));
            full.extend(ens.se.iter().map(|se| se[i]));
            full
        })
        .collect()
}

/// `observables.csv`; returns its header and final row.
fn write_means(
    sc: &Scenario,
    dir: &Path,
    ens: &EnsembleResult,
    times: &[f64],
    protocol: &crate::model::Protocol,
) -> Result<(Vec<String>, Vec<f64>), Error> {
    let mut header = rows::header(&["t".to_string()], &rows::observable_names(sc));
    header.push("jumps".into());
    header.extend(trajectory::OBS_NAMES.iter().map(|n| format!("{n}_se")));
    // One column per scheduled parameter: its value at each save (as `evolve` writes them).
    header.extend(protocol.names().into_iter().map(String::from));
    let mut csv = CsvWriter::create(&dir.join("observables.csv"), &header)?;
    let mut rows = means_rows(sc, ens, times, protocol.base.n);
    for (r, &t) in rows.iter_mut().zip(times) {
        r.extend(protocol.values_at(t));
        csv.row(r)?;
    }
    Ok((header, rows.last().cloned().unwrap_or_default()))
}

/// `pm.csv`: P_m over the ensemble (summed over irreps), then its standard errors.
fn write_pm(dir: &Path, ens: &EnsembleResult, times: &[f64], n: usize) -> Result<(), Error> {
    let j = n as f64 / 2.0;
    let mut h = vec!["t".to_string()];
    h.extend((0..=n).map(|k| format!("P({})", k as f64 - j)));
    h.extend((0..=n).map(|k| format!("P({})_se", k as f64 - j)));
    let mut w = CsvWriter::create(&dir.join("pm.csv"), &h)?;
    for (i, t) in times.iter().enumerate() {
        let mut r = vec![*t];
        r.extend(&ens.pm_mean[i]);
        r.extend(&ens.pm_se[i]);
        w.row(&r)?;
    }
    Ok(())
}

/// `trajectories.csv` (and `trajectories.png`): per single trajectory, its recorded moments
/// and, derived from them, its own xi^2 and N_eff.
fn write_single(
    sc: &Scenario,
    plot: bool,
    dir: &Path,
    ens: &EnsembleResult,
    times: &[f64],
    n: usize,
) -> Result<Vec<String>, Error> {
    let kj = trajectory::OBS_NAMES.iter().position(|n| *n == "J2").unwrap_or(0);
    let derived: Vec<Vec<[f64; 2]>> = ens
        .trajectories
        .iter()
        .map(|tr| {
            tr.values
                .iter()
                .map(|v| [trajectory::moments_of(v, n).xi2(), observe::n_eff(v[kj])])
                .collect()
        })
        .collect();
    // With a reference: the fidelity along each trajectory, last.
    let fidelity = ens.trajectories.iter().all(|tr| !tr.fidelity.is_empty());
    let mut h = vec!["traj".to_string(), "t".to_string()];
    h.extend(trajectory::OBS_NAMES.iter().map(|s| s.to_string()));
    h.extend(["xi2".to_string(), "N_eff".to_string()]);
    if fidelity {
        h.push("fidelity".into());
    }
    let mut w = CsvWriter::create(&dir.join("trajectories.csv"), &h)?;
    for (tr, d) in ens.trajectories.iter().zip(&derived) {
        for (i, v) in tr.values.iter().enumerate() {
            let mut r = vec![tr.index as f64, times[i]];
            r.extend(v.iter());
            r.extend(d[i]);
            if fidelity {
                r.push(tr.fidelity[i]);
            }
            w.row(&r)?;
        }
    }
    let mut files = vec!["trajectories.csv".to_string()];
    if plot {
        plot_single(sc, dir, ens, times, &derived, fidelity)?;
        files.push("trajectories.png".into());
    }
    Ok(files)
}

/// The single trajectories themselves (seed 000 Fig. 4, seed 002 Fig. 2c), one line each;
/// with `fidelity`, a last panel of the fidelity along each (seed 000 Fig. 4b).
fn plot_single(
    sc: &Scenario,
    dir: &Path,
    ens: &EnsembleResult,
    times: &[f64],
    derived: &[Vec<[f64; 2]>],
    fidelity: bool,
) -> Result<(), Error> {
    let kz = trajectory::OBS_NAMES.iter().position(|n| *n == "Jz").unwrap_or(0);
    let names: Vec<String> = ens
        .trajectories
        .iter()
        .map(|tr| format!("#{}", tr.index))
        .collect();
    let jz: Vec<Vec<f64>> = ens
        .trajectories
        .iter()
        .map(|tr| tr.values.iter().map(|v| v[kz]).collect())
        .collect();
    let pick =
        |k: usize| -> Vec<Vec<f64>> { derived.iter().map(|d| d.iter().map(|x| x[k]).collect()).collect() };
    let (xi, ne) = (pick(0), pick(1));
    fn mk<'a>(v: &'a [Vec<f64>], names: &'a [String]) -> Vec<plot::Series<'a>> {
        v.iter()
            .zip(names)
            .map(|(y, name)| plot::Series { name, y })
            .collect()
    }
    let fid: Vec<Vec<f64>> = ens.trajectories.iter().map(|tr| tr.fidelity.clone()).collect();
    let mut panels = vec![
        ("<Jz>", mk(&jz, &names)),
        ("xi^2", mk(&xi, &names)),
        ("N_eff", mk(&ne, &names)),
    ];
    if fidelity {
        panels.push(("fidelity", mk(&fid, &names)));
    }
    plot::line_plot(
        &dir.join("trajectories.png"),
        &format!("single trajectories  {}", sc.title),
        "t",
        times,
        &panels,
    )?;
    Ok(())
}

/// Why the ensemble must run on the CPU, if it must: P_m and the level window are accumulated
/// and integrated by the CPU twin only (`backend = "auto"` then runs there; `gpu` is refused);
/// so are the schedules the kernel cannot take (`sched::gpu_refusal`, checked beside it).
fn cpu_only(opts: &TrajectoryOptions) -> Option<&'static str> {
    if opts.pm {
        Some("P_m from trajectories (observables.pm) is accumulated on the CPU only in this version")
    } else if opts.level_window.is_some() {
        Some(
            "task.level_window = true is supported on the CPU backend only (the WGSL kernel \
             integrates every level; set task.level_window = false for the GPU)",
        )
    } else {
        None
    }
}

/// The trajectory options of the scenario's task fields.
#[allow(clippy::too_many_arguments)]
pub fn options(
    ntraj: u64,
    seed: u64,
    f64: bool,
    dt: Option<f64>,
    cfl: Option<f64>,
    save_trajectories: usize,
    pm: bool,
    level_window: bool,
) -> TrajectoryOptions {
    TrajectoryOptions {
        ntraj,
        seed,
        precision: if f64 { Precision::F64 } else { Precision::F32 },
        dt,
        cfl: cfl.unwrap_or(trajectory::DEFAULT_CFL),
        save_trajectories,
        pm,
        level_window: level_window.then(trajectory::LevelWindow::default),
        ..TrajectoryOptions::default()
    }
}
