//! `kind = "sweep"`: an approximate method over one or two parameter axes (a grid or a list
//! of points), one independent ODE system per point, integrated in batches
//! ([`crate::solver::cumulant::batch`], CPU, rayon), with per-point reductions on a uniform save
//! grid: the minimum of xi^2 after `t_min` and its time, the late-time mean of <Jz>, the final
//! <J>, xi^2, <J^2>, N_eff (issue 5; `docs/scenarios.md`).
//!
//! Backends (`--backend`, `task.precision`): the CPU batch (rayon, f64) or its WGSL twin
//! [`CumulantBatchGpu`] (f32 or f64, one invocation per point), chosen as for a scan of
//! evolutions ([`super::policy`]): `cpu`; `gpu` (any adapter, lavapipe included); `auto` (a
//! real GPU, else the CPU with the reason in result.json). Precision defaults to f64 where the
//! adapter has SHADER_F64; `precision = "f32"` needs rtol >= 1e-6 and atol >= 1e-8 (the f32
//! error estimate cannot resolve tighter; refused by the parser) and is ignored on the CPU with
//! a note in result.json's backend. f32 results differ from f64 within the bound stated in
//! [`crate::backend::gpu::cumulant_batch`]; xi^2 in f32 resolves about N delta.
//!
//! Points run in chunks of [`CHUNK`]: each chunk's points are evaluated (expressions, initial
//! state), integrated in parallel (rayon, or one GPU run per chunk), and written to `sweep.csv`
//! before the next chunk starts, so a long sweep keeps its finished rows. Memory is O(chunk)
//! plus one number per point for the heat map, estimated and checked against the limit before
//! anything is allocated. A point whose integration fails (step size, step count, non-finite
//! state) does not stop the sweep: its row carries `status` != 0 and the reductions reached so
//! far, and result.json counts and lists the failures. A GPU error (device lost, no progress)
//! stops the sweep with an error; the chunks before it are written.
//!
//! Each chunk is a unit of the run's checkpoint ([`super::checkpoint`], engine "cpu f64",
//! "gpu f32", ...): its payload is the chunk's [`batch::PointResult`] values, exactly. The rows
//! of sweep.csv, the tally, the heat map and result.json are built from the payloads in chunk
//! order (the varying model parameters re-evaluated from the scenario), whether a chunk was
//! integrated now or read back, so an interrupted and resumed sweep, or a merge of shards,
//! writes the files of an uninterrupted one byte for byte. A shard (or an interrupted run)
//! writes the rows of its chunks and no figure.
//!
//! Initial state: the scenario's `[initial]` (any pure j = N/2 state), turned into the nine
//! cumulant variables from its exact collective moments ([`cumulant::from_pure`]); consecutive
//! points with the same N and state reuse it.
//!
//! Schedules (`[model] p = { ramp = ... }`, any parameter but phi and the axes'; their numbers
//! may be expressions of the point's variables): each point's protocol becomes its table of
//! affine pieces on `[t0, t_end]` ([`Pieces`], with the admissibility of its values checked
//! over the span), integrated by [`cumulant::lanes::integrate_batch_lanes_pieces`] (CPU, SIMD
//! lanes, bit for bit the scalar [`batch::integrate_batch_pieces`]) or the kernel's piece tables ([`CumulantBatchGpu::run_pieces_with`]): steps
//! land on every break and each stage uses its piece's parameters. A constant scenario runs
//! exactly the code it ran before (lanes, or the kernel with no pieces). sweep.csv has no
//! column for the schedules (their values are the scenario's functions of t); a scheduled
//! parameter among the varying-parameter columns shows its value at t = 0.
//!
//! [`CumulantBatchGpu::run_pieces_with`]: crate::backend::gpu::cumulant_batch::CumulantBatchGpu::run_pieces_with

use super::checkpoint::{CHECKPOINT_DIR, Dec, Enc};
use super::context::Context;
use super::memory;
use super::policy::{self, Engine, Kernel};
use super::report::{Report, jnum, named};
use crate::error::{Error, InputError};
use crate::model::PARAM_NAMES;
use crate::observe;
use crate::output::{CsvWriter, plot};
#[cfg(feature = "gpu")]
use crate::precision::Precision;
use crate::scenario::{F32_MIN_ATOL, F32_MIN_RTOL, SWEEP_QUANTITIES, Scenario, State, SweepSpec};
use crate::solver::cumulant::pieces::Pieces;
use crate::solver::cumulant::{self, NPAR, NVAR, batch};
use rayon::prelude::*;
use serde_json::json;
use std::time::Instant;

/// Points per chunk (integrated together, then written).
pub const CHUNK: usize = 2048;

/// The sweep's output file.
pub const SWEEP_CSV: &str = "sweep.csv";

/// N and the bits of a resolved initial state (kind, then its numbers; a CRSS depends on
/// Omega and Gamma): points with equal keys share their initial variables.
type StateKey = (usize, [u64; 3]);

/// One evaluated point: its parameters, its protocol's pieces (scheduled points) and initial
/// variables.
struct Prepared {
    par: [f64; NPAR],
    pieces: Option<Pieces>,
    y0: [f64; NVAR],
}

/// Estimated bytes for a sweep of `points` points (module doc): per point one heat-map value
/// and its two coordinates, per chunk the inputs, results and row buffers.
pub fn memory_estimate(points: usize, ncols: usize) -> f64 {
    let per_point = 3.0 * 8.0;
    let per_chunk_point = (NPAR + NVAR) as f64 * 8.0
        + std::mem::size_of::<batch::PointResult>() as f64
        + 16.0 * ncols as f64
        + 256.0;
    per_point * points as f64 + per_chunk_point * CHUNK.min(points) as f64
}

/// Model parameters whose value changes across the sweep: sampled along every axis with the
/// other axes at their first value (a parameter that depends on an axis variable changes
/// along that axis).
pub(super) fn varying_parameters(sc: &Scenario, spec: &SweepSpec) -> Result<Vec<&'static str>, InputError> {
    let first: Vec<f64> = spec.axes.iter().map(|a| a.values[0]).collect();
    let mut samples = Vec::new();
    for (k, a) in spec.axes.iter().enumerate() {
        for v in &a.values {
            let mut c = first.clone();
            c[k] = *v;
            if !spec.grid {
                // A list moves all axes together.
                let i = a.values.iter().position(|x| x == v).unwrap_or(0);
                c = spec.coords(i);
            }
            samples.push(c);
        }
    }
    let models = samples
        .iter()
        .map(|c| point_model(sc, spec, c))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PARAM_NAMES
        .iter()
        .copied()
        .filter(|p| spec.axes.iter().all(|a| a.variable != *p))
        .filter(|p| models.iter().any(|m| m.get(p) != models[0].get(p)))
        .collect())
}

pub(super) fn pins<'a>(spec: &'a SweepSpec, coords: &[f64]) -> Vec<(&'a str, f64)> {
    spec.axes
        .iter()
        .zip(coords)
        .map(|(a, v)| (a.variable.as_str(), *v))
        .collect()
}

fn point_model(sc: &Scenario, spec: &SweepSpec, coords: &[f64]) -> Result<crate::model::Model, InputError> {
    Ok(sc.point(&pins(spec, coords))?.model)
}

/// Where the chunks are integrated.
enum Integrator {
    Cpu,
    #[cfg(feature = "gpu")]
    Gpu(
        Box<crate::backend::gpu::cumulant_batch::CumulantBatchGpu>,
        Precision,
    ),
}

impl Integrator {
    fn new(engine: &Engine) -> Result<Self, Error> {
        Ok(match engine {
            Engine::Cpu { .. } => Integrator::Cpu,
            #[cfg(feature = "gpu")]
            Engine::Gpu { ctx, precision, .. } => Integrator::Gpu(
                Box::new(crate::backend::gpu::cumulant_batch::CumulantBatchGpu::new(
                    std::sync::Arc::clone(ctx),
                )?),
                *precision,
            ),
        })
    }

    /// Integrate a chunk: constant points from `pars`, scheduled ones (`pieces` Some, one
    /// table per point) from their pieces.
    fn run(
        &self,
        pars: &[[f64; NPAR]],
        pieces: Option<&[Pieces]>,
        y0s: &[[f64; NVAR]],
        grid: &batch::SaveGrid,
        bopts: &batch::BatchOptions,
    ) -> Result<Vec<batch::PointResult>, Error> {
        Ok(match (self, pieces) {
            (Integrator::Cpu, None) => cumulant::lanes::integrate_batch_lanes(pars, y0s, grid, bopts),
            (Integrator::Cpu, Some(p)) => cumulant::lanes::integrate_batch_lanes_pieces(p, y0s, grid, bopts),
            #[cfg(feature = "gpu")]
            (Integrator::Gpu(kernel, precision), None) => kernel.run(pars, y0s, grid, bopts, *precision)?,
            #[cfg(feature = "gpu")]
            (Integrator::Gpu(kernel, precision), Some(p)) => {
                let opts = crate::backend::gpu::cumulant_batch::CumulantGpuOptions {
                    precision: *precision,
                    ..Default::default()
                };
                kernel.run_pieces_with(p, y0s, grid, bopts, &opts)?.points
            }
        })
    }

    fn solver(&self) -> &'static str {
        match self {
            Integrator::Cpu => {
                "cumulant (second-order cumulant expansion, 9 real moments per point; CPU batch, adaptive DP5, f64)"
            }
            #[cfg(feature = "gpu")]
            Integrator::Gpu(..) => {
                "cumulant (second-order cumulant expansion, 9 real moments per point; GPU batch cumulant_batch.wgsl, adaptive DP5, see backend.precision)"
            }
        }
    }
}

/// What the chunks accumulate: the heat-map column, the best point, failures, step counts.
#[derive(Default)]
struct Tally {
    heat: Vec<f64>,
    /// (xi2_min, coords, t)
    best: Option<(f64, Vec<f64>, f64)>,
    failures: Vec<serde_json::Value>,
    failed: usize,
    steps: u64,
    rejected: u64,
    integrate_s: f64,
    /// Points integrated by this run (not read back from a checkpoint).
    computed: usize,
}

/// The columns of sweep.csv: the axes, the model parameters they move, the quantities.
fn header(spec: &SweepSpec, varying: &[&str]) -> Vec<String> {
    let mut header: Vec<String> = spec.axes.iter().map(|a| a.variable.clone()).collect();
    header.extend(varying.iter().map(|s| s.to_string()));
    header.extend(SWEEP_QUANTITIES.iter().map(|s| s.to_string()));
    header
}

/// Refuse a sweep whose memory estimate is over the limit (module doc); a scheduled sweep
/// adds its chunk's piece tables, `pieces` per point as at the base point (the CPU's and the
/// GPU upload's copy).
fn refuse_memory(total: usize, ncols: usize, pieces: usize) -> Result<(), Error> {
    let tables = if pieces > 1 {
        (CHUNK.min(total) * pieces) as f64 * 2.0 * (1 + 2 * NPAR) as f64 * 8.0
    } else {
        0.0
    };
    memory::refuse_bytes(
        memory_estimate(total, ncols) + tables,
        format!(
            "a sweep of {total} points (one heat-map value per point, chunks of {CHUNK}{})",
            if pieces > 1 {
                format!(", {pieces} schedule pieces per point")
            } else {
                String::new()
            }
        ),
    )?;
    Ok(())
}

/// The number of schedule pieces of the base point's protocol on the sweep's span (1 for a
/// constant one, or where the base point's own protocol is refused: each point is checked
/// when it is prepared).
fn base_pieces(sc: &Scenario, spec: &SweepSpec) -> Result<usize, Error> {
    let base = sc.point(&[])?;
    if base.schedules.is_empty() {
        return Ok(1);
    }
    Ok(Pieces::new(&base.protocol(), spec.t0, spec.t_end).map_or(1, |p| p.starts.len()))
}

/// Run a validated `kind = "sweep"` scenario.
pub fn run(sc: &Scenario, spec: &SweepSpec, ctx: &mut Context) -> Result<Report, Error> {
    let floors = [
        ("task.rtol", spec.rtol, F32_MIN_RTOL),
        ("task.atol", spec.atol, F32_MIN_ATOL),
    ];
    let kernel = Kernel::Gpu {
        asked: spec.precision,
        cpu_follows_precision: false,
        f32_floors: &floors,
        cpu_only: None,
    };
    let engine = policy::resolve(ctx.backend, &kernel, ctx.gpu.clone())?;
    let integrator = Integrator::new(&engine)?;
    let total = spec.len();
    let varying = varying_parameters(sc, spec)?;
    let header = header(spec, &varying);
    refuse_memory(total, header.len(), base_pieces(sc, spec)?)?;
    let mut units = ctx.units("sweep", engine.tag(), total as u64, CHUNK as u64, "points")?;
    let mut csv = CsvWriter::create(&ctx.path(SWEEP_CSV)?, &header)?;
    let mut tally = Tally {
        heat: Vec::with_capacity(total),
        ..Tally::default()
    };
    let (mut integrate_s, mut computed) = (0.0, 0usize);
    let mut cache: Option<(StateKey, [f64; NVAR])> = None;
    let chunk = |u: usize| u * CHUNK..((u + 1) * CHUNK).min(total);
    units.run(
        ctx.progress,
        "sweep",
        |u| {
            let mut prepared = prepare_chunk(sc, spec, chunk(u), &mut cache)?;
            let pars: Vec<_> = prepared.iter().map(|q| q.par).collect();
            let y0s: Vec<_> = prepared.iter().map(|q| q.y0).collect();
            // A scheduled chunk runs every point from pieces (all points share the scenario's
            // schedules; a constant one would be a single piece).
            let pieces: Option<Vec<Pieces>> = prepared.iter().any(|q| q.pieces.is_some()).then(|| {
                prepared
                    .iter_mut()
                    .map(|q| {
                        q.pieces
                            .take()
                            .unwrap_or_else(|| Pieces::constant(q.par, spec.t0))
                    })
                    .collect()
            });
            let t_int = Instant::now();
            let results = integrator.run(&pars, pieces.as_deref(), &y0s, &grid(spec), &options(spec))?;
            integrate_s += t_int.elapsed().as_secs_f64();
            computed += results.len();
            Ok(encode_chunk(&results))
        },
        |u, payload| {
            let results = decode_chunk(&payload, chunk(u).len())?;
            let extras = chunk_extras(sc, spec, &varying, chunk(u))?;
            write_chunk(spec, &mut csv, chunk(u).start, &results, &extras, &mut tally)
        },
    )?;
    tally.integrate_s = integrate_s;
    tally.computed = computed;
    let mut files = vec![SWEEP_CSV.to_string()];
    if sc.plot
        && units.whole()
        && let Some(f) = draw(sc, spec, ctx.dir, &tally.heat)?
    {
        files.push(f);
    }
    Ok(Report {
        coverage: Some(units.coverage()),
        task: "sweep",
        solver: integrator.solver().into(),
        backend: engine.used(None),
        model: sc.point(&[])?.model,
        columns: header,
        results: results_json(spec, total, &tally),
        stats: Some(stats_json(spec, &tally)),
        files,
    })
}

/// A chunk's unit payload ([`super::checkpoint`]): every point's [`batch::PointResult`],
/// exactly (f64 bits; status and counts as integers).
fn encode_chunk(results: &[batch::PointResult]) -> Vec<u8> {
    let mut e = Enc::default();
    e.u64(results.len() as u64);
    for r in results {
        e.u64(r.status as u64).u64(r.steps).u64(r.rejected);
        let mut v = vec![r.t_reached];
        v.extend(r.y);
        v.extend(r.mean);
        v.extend([r.xi2, r.j2, r.xi2_min, r.t_xi2_min, r.jz_late]);
        e.f64s(&v);
    }
    e.0
}

/// The mirror of [`encode_chunk`], for a chunk of `len` points.
fn decode_chunk(payload: &[u8], len: usize) -> Result<Vec<batch::PointResult>, Error> {
    let bad = |what: String| crate::output::checkpoint::corrupt(std::path::Path::new(CHECKPOINT_DIR), what);
    let mut d = Dec(payload);
    let n = d.u64()? as usize;
    if n != len {
        return Err(bad(format!("a sweep chunk of {n} points where {len} were expected")).into());
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let status = match d.u64()? {
            0 => batch::Status::Ok,
            1 => batch::Status::StepSizeTooSmall,
            2 => batch::Status::TooManySteps,
            3 => batch::Status::NonFinite,
            s => return Err(bad(format!("a sweep point with status {s}")).into()),
        };
        let (steps, rejected) = (d.u64()?, d.u64()?);
        let v = d.f64s()?;
        if v.len() != 1 + NVAR + 3 + 5 {
            return Err(bad(format!("a sweep point of {} numbers", v.len())).into());
        }
        let mut y = [0.0; NVAR];
        y.copy_from_slice(&v[1..1 + NVAR]);
        let m = &v[1 + NVAR..];
        out.push(batch::PointResult {
            status,
            t_reached: v[0],
            y,
            mean: [m[0], m[1], m[2]],
            xi2: m[3],
            j2: m[4],
            xi2_min: m[5],
            t_xi2_min: m[6],
            jz_late: m[7],
            steps,
            rejected,
        });
    }
    Ok(out)
}

fn grid(spec: &SweepSpec) -> batch::SaveGrid {
    batch::SaveGrid {
        t0: spec.t0,
        t_end: spec.t_end,
        nsave: spec.nsave,
        t_min: spec.t_min,
        t_late: spec.t_late,
    }
}

fn options(spec: &SweepSpec) -> batch::BatchOptions {
    batch::BatchOptions {
        rtol: spec.rtol,
        atol: spec.atol,
        max_steps: spec.max_steps as u64,
    }
}

/// Expressions and initial states of the points `range`, evaluated in parallel; consecutive
/// points with the same N and state share their initial variables (`cache`).
fn prepare_chunk(
    sc: &Scenario,
    spec: &SweepSpec,
    range: std::ops::Range<usize>,
    cache: &mut Option<(StateKey, [f64; NVAR])>,
) -> Result<Vec<Prepared>, Error> {
    let evaluated: Vec<(crate::scenario::Point, State)> = range
        .into_par_iter()
        .map(|i| {
            let p = sc.point(&pins(spec, &spec.coords(i)))?;
            let st = sc.initial_spec(&p)?;
            Ok((p, st))
        })
        .collect::<Result<_, InputError>>()?;
    let mut prepared = Vec::with_capacity(evaluated.len());
    for (p, st) in &evaluated {
        // Cache key: N, the state kind and its numbers (a CRSS depends on Omega, Gamma).
        let key = match *st {
            State::Dicke { m } => (p.model.n, [0, m.to_bits(), 0]),
            State::Coherent { theta, phi } => (p.model.n, [1, theta.to_bits(), phi.to_bits()]),
            State::Crss => (
                p.model.n,
                [2, p.model.drive.to_bits(), p.model.gamma_coll.to_bits()],
            ),
        };
        let y0 = match &*cache {
            Some((k, y)) if *k == key => *y,
            _ => {
                let psi = st.amplitudes(&p.model, "initial")?;
                let y = cumulant::from_pure(&psi);
                *cache = Some((key, y));
                y
            }
        };
        let pieces = if p.schedules.is_empty() {
            None
        } else {
            Some(Pieces::new(&p.protocol(), spec.t0, spec.t_end)?)
        };
        prepared.push(Prepared {
            par: cumulant::params(&p.model),
            pieces,
            y0,
        });
    }
    Ok(prepared)
}

/// The varying model parameters' values at the points `range` (sweep.csv's columns after the
/// axes), evaluated in parallel; nothing to evaluate when no parameter varies.
pub(super) fn chunk_extras(
    sc: &Scenario,
    spec: &SweepSpec,
    varying: &[&str],
    range: std::ops::Range<usize>,
) -> Result<Vec<Vec<f64>>, Error> {
    if varying.is_empty() {
        return Ok(vec![Vec::new(); range.len()]);
    }
    let extras = range
        .into_par_iter()
        .map(|i| {
            let m = point_model(sc, spec, &spec.coords(i))?;
            Ok(varying.iter().map(|v| m.get(v).unwrap_or(f64::NAN)).collect())
        })
        .collect::<Result<_, InputError>>()?;
    Ok(extras)
}

/// One chunk's rows of sweep.csv, and what the tally keeps of them.
fn write_chunk(
    spec: &SweepSpec,
    csv: &mut CsvWriter,
    start: usize,
    results: &[batch::PointResult],
    extras: &[Vec<f64>],
    tally: &mut Tally,
) -> Result<(), Error> {
    let heat_col = SWEEP_QUANTITIES
        .iter()
        .position(|q| *q == spec.heatmap)
        .unwrap_or(0);
    for (k, (r, extra)) in results.iter().zip(extras).enumerate() {
        let i = start + k;
        let coords = spec.coords(i);
        let quantities = [
            r.xi2_min,
            10.0 * r.xi2_min.log10(),
            r.t_xi2_min,
            r.jz_late,
            r.mean[0],
            r.mean[1],
            r.mean[2],
            r.xi2,
            r.j2,
            observe::n_eff(r.j2),
            r.steps as f64,
            r.rejected as f64,
            r.status as u32 as f64,
        ];
        let mut row = coords.clone();
        row.extend(extra);
        row.extend(quantities);
        csv.row(&row)?;
        tally.heat.push(quantities[heat_col]);
        tally.steps += r.steps;
        tally.rejected += r.rejected;
        if r.status != batch::Status::Ok {
            tally.failed += 1;
            if tally.failures.len() < 10 {
                tally.failures.push(json!({
                    "point": i,
                    "coords": coords,
                    "status": format!("{:?}", r.status),
                    "t_reached": r.t_reached,
                }));
            }
        } else if r.xi2_min.is_finite() && tally.best.as_ref().is_none_or(|b| r.xi2_min < b.0) {
            tally.best = Some((r.xi2_min, coords, r.t_xi2_min));
        }
    }
    Ok(())
}

fn results_json(spec: &SweepSpec, total: usize, tally: &Tally) -> serde_json::Value {
    let names: Vec<String> = spec.axes.iter().map(|a| a.variable.clone()).collect();
    let best = tally.best.as_ref().map(|(x, c, t)| {
        json!({
            "xi2_min": jnum(*x),
            "xi2_min_dB": jnum(10.0 * x.log10()),
            "t": jnum(*t),
            "at": named(&names, c),
        })
    });
    json!({
        "points": total,
        "layout": if spec.grid { "grid" } else { "list" },
        "axes": spec.axes.iter().map(|a| json!({"variable": a.variable, "n": a.values.len()})).collect::<Vec<_>>(),
        "best": best,
        "failed": tally.failed,
        "failures": tally.failures,
        "t_min": spec.t_min,
        "t_late": spec.t_late,
    })
}

/// Statistics over the points in the files (steps) and those this run integrated (rate).
fn stats_json(spec: &SweepSpec, tally: &Tally) -> serde_json::Value {
    json!({
        "integrator": options(spec),
        "save_grid": grid(spec),
        "steps": tally.steps,
        "rejected": tally.rejected,
        "mean_steps_per_point": tally.steps as f64 / tally.heat.len().max(1) as f64,
        "integrate_wall_s": tally.integrate_s,
        "points_integrated": tally.computed,
        "points_per_s": tally.computed as f64 / tally.integrate_s.max(1e-9),
    })
}

/// Order of `v` ascending, or None when two values are equal (no strictly increasing axis).
pub(super) fn ascending(v: &[f64]) -> Option<Vec<usize>> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    if idx.windows(2).any(|w| v[w[0]] >= v[w[1]]) {
        return None;
    }
    Some(idx)
}

/// The figure: a heat map of the chosen column for a two-axis grid (first axis along x), a
/// line plot of xi2_min, Jz_late and the final xi^2 along a one-axis sweep. A dB column is
/// drawn clipped at 0 dB (above: no squeezing), as seed 002 Fig. S1a does. Lists of two axes
/// get no figure (the points need not form a grid). Returns the file name written.
pub(super) fn draw(
    sc: &Scenario,
    spec: &SweepSpec,
    dir: &std::path::Path,
    heat: &[f64],
) -> Result<Option<String>, Error> {
    let file = "sweep.png";
    let clip = spec.heatmap.ends_with("_dB");
    let title = format!(
        "{}: {}{}",
        sc.title,
        spec.heatmap,
        if clip { " (clipped at 0 dB)" } else { "" }
    );
    let value = |v: f64| if clip && v > 0.0 { 0.0 } else { v };
    if spec.axes.len() == 2 && spec.grid {
        let (ax, ay) = (&spec.axes[0], &spec.axes[1]);
        let (Some(ox), Some(oy)) = (ascending(&ax.values), ascending(&ay.values)) else {
            return Ok(None);
        };
        let xs: Vec<f64> = ox.iter().map(|&i| ax.values[i]).collect();
        let ys: Vec<f64> = oy.iter().map(|&i| ay.values[i]).collect();
        let ny = ay.values.len();
        let mut z = vec![f64::NAN; xs.len() * ys.len()];
        for (jy, &iy) in oy.iter().enumerate() {
            for (jx, &ix) in ox.iter().enumerate() {
                z[jy * xs.len() + jx] = value(heat[ix * ny + iy]);
            }
        }
        plot::heatmap(&dir.join(file), &title, &ax.variable, &ay.variable, &xs, &ys, &z)?;
        return Ok(Some(file.into()));
    }
    if spec.axes.len() == 1 {
        let a = &spec.axes[0];
        let Some(o) = ascending(&a.values) else {
            return Ok(None);
        };
        let xs: Vec<f64> = o.iter().map(|&i| a.values[i]).collect();
        let z: Vec<f64> = o.iter().map(|&i| value(heat[i])).collect();
        plot::line_plot(
            &dir.join(file),
            &title,
            &a.variable,
            &xs,
            &[(spec.heatmap.as_str(), vec![plot::Series { name: "", y: &z }])],
        )?;
        return Ok(Some(file.into()));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_round_trips_exactly() {
        let r = |status, x: f64| batch::PointResult {
            status,
            t_reached: x,
            y: [x, -0.0, f64::NAN, 1e-300, 2.0, 3.0, 4.0, 5.0, 6.0],
            mean: [0.1, 0.2, x],
            xi2: f64::INFINITY,
            j2: 0.7,
            xi2_min: x / 3.0,
            t_xi2_min: 0.4,
            jz_late: -x,
            steps: 17,
            rejected: 3,
        };
        let chunk = vec![
            r(batch::Status::Ok, 0.1),
            r(batch::Status::TooManySteps, 1.0 / 3.0),
            r(batch::Status::NonFinite, -2.5),
        ];
        let bytes = encode_chunk(&chunk);
        let back = decode_chunk(&bytes, 3).unwrap();
        let bits = |c: &[batch::PointResult]| {
            format!(
                "{:?}",
                c.iter()
                    .map(|p| (p.status, p.y.map(f64::to_bits), p.xi2_min.to_bits(), p.steps))
                    .collect::<Vec<_>>()
            )
        };
        assert_eq!(bits(&back), bits(&chunk));
        assert_eq!(back[1].t_reached.to_bits(), chunk[1].t_reached.to_bits());
        assert!(decode_chunk(&bytes, 4).is_err());
        assert!(decode_chunk(&bytes[..bytes.len() - 8], 3).is_err());
    }
}
