//! `kind = "scan"`, `mode = "evolve"`: every scan point integrated from `[initial]` over the
//! task's time grid.
//!
//! This is the one master-equation task with a GPU path: the points are independent
//! integrations of the same size, exactly the batch dimension of the batched master-equation
//! kernel, so the GPU runs all of them at once ([`super::evolve_gpu`]: points with
//! single-atom rates as one batch of blocks R_j, collective-only points of the same scan, e.g.
//! a rate scanned from 0, as a second, collective batch). Scheduled parameters (a
//! time-dependent protocol per point) run there too on collective points
//! ([`MasterBatchGpu::run_protocols`], CPU twin `master::evolve_protocol`); a scheduled `phi`,
//! or a schedule at a point with single-atom rates, runs on the CPU (`auto` falls back, `gpu`
//! is refused with the reason).
//!
//! [`MasterBatchGpu::run_protocols`]: crate::backend::gpu::master_batch::MasterBatchGpu::run_protocols The CPU runs [`master::evolve`] /
//! [`blocks::evolve`] (the batch's CPU twins) point after point, writing each point's rows as
//! it finishes. The backend follows [`super::super::policy`].
//!
//! Outputs: `observables.csv` (one row per point, at the final time), `scan_evolution.csv`
//! (long format: `<variable>, t, <observables>` per point and save), `pm.csv` (final P_m per
//! point). A failed point stops the run with an error naming it
//! ([`SolverError::ScanPoint`]); the points before it are written, on both backends alike,
//! so the files do not depend on the backend.
//!
//! Each point is a unit of the run's checkpoint ([`crate::task::checkpoint`]; engine
//! "cpu f64", "gpu f32", ...), its payload what the files need of it ([`super::unit`]): the
//! CPU path stops between points at an interrupt (or inside one, the unit then unfinished);
//! the GPU path integrates every point missing from the checkpoint in one batch, then writes
//! a unit per point, so its interrupt granularity is the batch. A shard writes its points'
//! rows and no figure (nor Husimi grid); the merge draws them.
//!
//! [`master::evolve`]: crate::solver::master::evolve
//! [`blocks::evolve`]: crate::solver::blocks::evolve

pub use super::sink::{FULL_MATRIX_COLUMNS, Job, SCAN_EVOLUTION_CSV, Sink};
use super::unit::PointUnit;
use crate::error::Error;
use crate::precision::Precision;
use crate::scenario::{EvolveSpec, F32_MIN_RTOL, Scenario};
use crate::solver::Method;
use crate::task::approx;
use crate::task::checkpoint::Units;
use crate::task::context::{Context, Progress};
use crate::task::evolve::{evolve_any, ode_options};
use crate::task::memory;
use crate::task::policy::{self, Engine, Kernel};
use crate::task::report::{Report, jnum};
use crate::task::rows;
use serde_json::{Value, json};

/// Run a scan of evolutions (module doc).
pub fn run(
    sc: &Scenario,
    variable: &str,
    spec: &EvolveSpec,
    precision: Option<Precision>,
    ctx: &mut Context,
) -> Result<Report, Error> {
    let points = sc.points()?;
    for p in &points {
        p.protocol()
            .check_span(spec.times[0], spec.times[spec.times.len() - 1])?;
    }
    let phi_scheduled = points
        .iter()
        .any(|p| p.schedules.iter().any(|(n, _)| *n == "phi"));
    let blocks_scheduled = points
        .iter()
        .any(|p| !p.schedules.is_empty() && !p.protocol().is_collective());
    let mixed = sc.initial.as_ref().is_some_and(|s| s.is_mixed());
    let floors = [("task.rtol", spec.rtol, F32_MIN_RTOL)];
    // The approximate methods run on the CPU only (milliseconds per point).
    let kernel = match sc.method {
        Method::Exact => Kernel::Gpu {
            asked: precision,
            cpu_follows_precision: false,
            f32_floors: &floors,
            // The batched kernel takes schedules of the collective equation's parameters but
            // phi (module doc of backend::gpu::master_batch).
            cpu_only: if phi_scheduled {
                Some(
                    "a scheduled model.phi runs on the CPU solvers: the batched GPU \
                     master-equation kernel integrates in the frame of one constant drive phase",
                )
            } else if blocks_scheduled {
                Some(
                    "scheduled parameters at points with single-atom rates (the block equation) \
                     run on the CPU solvers; the batched GPU kernel takes schedules on the \
                     collective equation only (the blocks' inflow factors are built once on the \
                     host)",
                )
            } else {
                mixed.then_some("mixed initial states (thermal, steady_state, from) run on the CPU solvers")
            },
        },
        m => Kernel::CpuOnly {
            solver: approx::cpu_solver(m),
        },
    };
    let engine = policy::resolve(ctx.backend, &kernel, ctx.gpu.clone())?;
    let job = Job {
        sc,
        points: &points,
        variable,
        spec,
    };
    let mut units = ctx.units("scan", engine.tag(), points.len() as u64, 1, "points")?;
    let (table, stats) = match &engine {
        Engine::Cpu { .. } => {
            // One point at a time: the estimate of a single evolution.
            for p in points.iter().filter(|_| sc.method == Method::Exact) {
                memory::refuse_evolution(&p.model, "time evolution of one scan point")?;
            }
            let mut sink = Sink::create(&job, ctx)?;
            let stats = run_cpu(&job, &mut sink, &mut units, ctx.progress)?;
            (sink.table, stats)
        }
        #[cfg(feature = "gpu")]
        Engine::Gpu {
            ctx: gpu, precision, ..
        } => super::evolve_gpu::run(&job, gpu, *precision, &mut units, ctx)?,
    };
    let backend = engine.used(None);
    let mut results = super::scalars(&table.x_names, &table.rows);
    if let Value::Object(m) = &mut results {
        m.insert("mode".into(), json!("evolve"));
        m.insert("t_final".into(), jnum(spec.times[spec.times.len() - 1]));
    }
    let mut files = vec!["observables.csv".to_string(), SCAN_EVOLUTION_CSV.to_string()];
    if sc.observables.pm {
        files.push("pm.csv".into());
    }
    if units.whole() {
        files.extend(rows::write_figures(sc, ctx.dir, &table)?);
    }
    let with_blocks = points.iter().any(|p| !p.model.is_collective());
    if sc.method != Method::Exact {
        results["method"] = json!(sc.method.name());
    }
    Ok(Report {
        coverage: Some(units.coverage()),
        task: "scan",
        solver: if sc.method != Method::Exact {
            format!(
                "{} (time evolution per scan point)",
                super::super::approx::solver_name(sc.method)
            )
        } else {
            format!(
                "{} (time evolution per scan point, {} on {})",
                if with_blocks {
                    "blocks (exact permutation-invariant, single-atom rates)"
                } else {
                    "master (exact collective)"
                },
                backend.precision,
                backend.name
            )
        },
        backend,
        model: points[0].model,
        columns: rows::header(&table.x_names, &table.names),
        results,
        stats: Some(stats),
        files,
    })
}

/// The CPU path: [`evolve_any`] point after point, each point a unit, its rows written as it
/// finishes (or as it is read back from the checkpoint).
fn run_cpu(
    job: &Job,
    sink: &mut Sink,
    units: &mut Units,
    progress: &mut dyn Progress,
) -> Result<Value, Error> {
    let mut point_stats = Vec::new();
    units.run(
        progress,
        "scan (evolve)",
        |i| Ok(evolve_point(job, i)?.encode()),
        |i, payload| {
            point_stats.push(sink.write_point(i, PointUnit::decode(&payload)?)?);
            Ok(())
        },
    )?;
    let method = job.sc.method;
    Ok(json!({
        "mode": "evolve",
        "integrator": if method != Method::Exact {
            "the approximate method's ODEs (CPU, f64), one point after the other"
        } else if job.points.iter().any(|p| !p.model.is_collective()) {
            "blocks::evolve (single-atom rates) / master::evolve (collective-only points) (CPU, f64), one point after the other"
        } else {
            "master::evolve (CPU, f64), one point after the other"
        },
        "precision": "f64",
        "points": point_stats,
    }))
}

/// Point `i` integrated on the CPU: its unit.
fn evolve_point(job: &Job, i: usize) -> Result<PointUnit, Error> {
    let ode = ode_options(job.spec);
    let p = &job.points[i];
    let method = job.sc.method;
    let mut unit = PointUnit::default();
    let st = if method == Method::Exact {
        let rho0 = crate::task::initial::initial_state(job.sc, p)?;
        let reference = job.sc.reference_state(p)?;
        evolve_any(&p.protocol(), &rho0, &job.spec.times, &ode, &mut |k, _, rho| {
            job.record(&mut unit, i, reference.as_deref(), k, rho)
        })
    } else {
        let start = approx::start(job.sc, p, method)?;
        let extras = &job.sc.observables.columns;
        approx::evolve_rows(
            &p.protocol(),
            &start,
            &job.spec.times,
            &ode,
            extras,
            &mut |k, _, row| job.record_row(&mut unit, i, k, row, None),
        )
    };
    let st = st.map_err(|e| job.point_error(i, e, String::new()))?;
    unit.stats = job.point_stats(p, st).to_string();
    Ok(unit)
}
