//! The GPU path of a scan of evolutions: every point in the batched master-equation kernel
//! ([`MasterBatchGpu`]), collective points as one batch of (N+1)^2 matrices, points with
//! single-atom rates as one batch of block states (R_{N/2} = |psi><psi|), in point order. The
//! collective batch takes each point's protocol ([`MasterBatchGpu::run_protocols`]: scheduled
//! parameters; constant points run exactly as constant batches); the caller has sent scheduled
//! phi and scheduled block points to the CPU.
//!
//! The GPU returns only the central band |c - r| <= 2 of each saved matrix or block (5n
//! instead of n^2 numbers: all that the moments of J, <J^2> and P_m read; the observables of a
//! block state are then summed over its blocks by the CPU path's code) unless a column needs
//! the whole matrix (`purity`, `lambda_max`, `fidelity`) or a Husimi grid is asked for.
//! Memory held on the host (every point's saves plus one read-back copy and the initial
//! states) is estimated and refused before anything is allocated.
//!
//! Units ([`crate::task::checkpoint`], one per point): the batch holds only the points missing
//! from the checkpoint (all of them, unless resumed); as it returns, each point's unit is
//! written, then the files are written from the units in point order. An interrupt stops the
//! run before the batch or after it, not inside it.

use super::sink::{Job, Sink};
use super::unit::PointUnit;
use crate::backend::gpu::GpuContext;
use crate::backend::gpu::master_batch::{
    BatchElement, BatchOutput, MasterBatch, MasterBatchError, MasterBatchGpu, MasterBatchOptions, Saves,
    block_state_from_bands,
};
use crate::c64;
use crate::error::{Error, SolverError};
use crate::precision::Precision;
use crate::scenario::Point;
use crate::state::{BlockState, DensityMatrix};
use crate::task::checkpoint::Units;
use crate::task::context::Context;
use crate::task::memory;
use crate::task::rows::{StateRef, Table};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// Run the scan on `gpu`: the points missing from the checkpoint in one batch (a unit each
/// written as the batch returns), then every point's rows from its unit, in point order.
pub fn run(
    job: &Job,
    gpu: &Arc<GpuContext>,
    precision: Precision,
    units: &mut Units,
    ctx: &mut Context,
) -> Result<(Table, Value), Error> {
    let output = if job.needs_full() {
        BatchOutput::Full
    } else {
        BatchOutput::Band
    };
    let missing = units.missing();
    let mut failure = None;
    let mut ran = None;
    if !missing.is_empty() && !ctx.work.replay && !units.stop() {
        let t_batch = Instant::now();
        let (batches, elements) = run_missing(job, gpu, precision, output, &missing, ctx)?;
        failure = put_units(job, units, &missing, elements)?;
        ran = Some((batches, t_batch.elapsed().as_secs_f64()));
    }
    let mut sink = Sink::create(job, ctx)?;
    let mut point_stats = Vec::new();
    units.run(
        ctx.progress,
        "scan (GPU batch)",
        |i| match failure.take() {
            Some((at, e)) if at == i => Err(e),
            _ => Err(SolverError::Unsupported {
                solver: "master_batch",
                message: format!("scan point {i} was not in the batch"),
            }
            .into()),
        },
        |i, payload| {
            point_stats.push(sink.write_point(i, PointUnit::decode(&payload)?)?);
            Ok(())
        },
    )?;
    let stats = match ran {
        Some((batches, batch_wall_s)) => batch_stats(&batches, output, batch_wall_s, point_stats),
        None => json!({
            "mode": "evolve",
            "integrator": "master_batch (GPU): none ran, every point was read back from the checkpoint",
            "precision": precision,
            "points": point_stats,
        }),
    };
    Ok((sink.table, stats))
}

/// The batch of the points `missing` (indices into the job's points), after the host-memory
/// check: the batches that ran and every missing point's element, in order.
fn run_missing(
    job: &Job,
    gpu: &Arc<GpuContext>,
    precision: Precision,
    output: BatchOutput,
    missing: &[usize],
    ctx: &mut Context,
) -> Result<Batches, Error> {
    let points: Vec<Point> = missing.iter().map(|&i| job.points[i].clone()).collect();
    let sub = Job {
        sc: job.sc,
        points: &points,
        variable: job.variable,
        spec: job.spec,
    };
    let psis = initial_states(&sub, output)?;
    let kernel = MasterBatchGpu::new(Arc::clone(gpu))?;
    let options = MasterBatchOptions {
        precision,
        output,
        ..MasterBatchOptions::default()
    };
    ctx.progress.start(1, "scan (GPU batch)");
    let batches = run_batches(&sub, &kernel, &options, &psis);
    ctx.progress.finish();
    batches
}

/// result.json statistics of the batches.
fn batch_stats(
    batches: &[(bool, MasterBatch)],
    output: BatchOutput,
    batch_wall_s: f64,
    point_stats: Vec<Value>,
) -> Value {
    let batch = &batches[0].1;
    let (sym, blk) = (batches.iter().any(|b| !b.0), batches.iter().any(|b| b.0));
    json!({
        "mode": "evolve",
        "integrator": match (sym, blk) {
            (_, false) => "master_batch (GPU, every point in one batch)",
            (false, true) => "master_batch on the blocks R_j (GPU, single-atom rates, every point in one batch)",
            (true, true) => "master_batch (GPU): collective points in one batch, points with single-atom rates in one batch of blocks R_j",
        },
        "precision": batch.precision,
        "adapter": batch.adapter,
        "output": output,
        "lanes": batch.lanes,
        "attempts_per_dispatch": batches.iter().map(|b| b.1.attempts_per_dispatch).max(),
        "chunks": batches.iter().map(|b| b.1.chunks).sum::<usize>(),
        "dispatches": batches.iter().map(|b| b.1.dispatches).sum::<usize>(),
        "batch_wall_s": batch_wall_s,
        "points": point_stats,
    })
}

/// The initial states (one if all points share it), after the host-memory check.
fn initial_states(job: &Job, output: BatchOutput) -> Result<Vec<Vec<c64>>, Error> {
    let points = job.points;
    let n = points[0].model.n;
    let dim = (n + 1) as f64;
    let psis = points
        .iter()
        .map(|p| job.initial_state(p))
        .collect::<Result<Vec<_>, _>>()?;
    let shared = psis.iter().all(|p| *p == psis[0]);
    // Per point and save: the matrix or band of a collective point, every block (or every
    // block's band) of a point with single-atom rates.
    let blocks_len = crate::state::blocks::block_elements(n) as f64;
    let blocks_band: f64 = crate::basis::two_js(n).iter().map(|t| 5.0 * (t + 1) as f64).sum();
    let saves_elems: f64 = points
        .iter()
        .map(|p| match (p.model.is_collective(), output) {
            (true, BatchOutput::Full) => dim * dim,
            (true, BatchOutput::Band) => 5.0 * dim,
            (false, BatchOutput::Full) => blocks_len,
            (false, BatchOutput::Band) => blocks_band,
        })
        .sum();
    let rho0s = if shared { 1.0 } else { points.len() as f64 };
    let rho0_elems = if points.iter().any(|p| !p.model.is_collective()) {
        blocks_len
    } else {
        dim * dim
    };
    let bytes = 16.0 * (2.0 * job.spec.times.len() as f64 * saves_elems + rho0s * rho0_elems);
    memory::refuse_bytes(
        bytes,
        format!(
            "GPU scan of {} points x {} save times at N = {n} ({}), held on the host",
            points.len(),
            job.spec.times.len(),
            match output {
                BatchOutput::Full => "full density matrices: a column needs them",
                BatchOutput::Band => "central bands",
            }
        ),
    )?;
    Ok(if shared { vec![psis[0].clone()] } else { psis })
}

type Element = Result<BatchElement, SolverError>;

/// The batches that ran (blocks kind?, batch) and every point's element in point order.
type Batches = (Vec<(bool, MasterBatch)>, Vec<Element>);

/// The collective batch and the blocks batch (each only if it has points); every point's
/// element in point order.
fn run_batches(
    job: &Job,
    kernel: &MasterBatchGpu,
    options: &MasterBatchOptions,
    psis: &[Vec<c64>],
) -> Result<Batches, Error> {
    let points = job.points;
    let (sym, blk): (Vec<usize>, Vec<usize>) =
        (0..points.len()).partition(|&i| points[i].model.is_collective());
    let shared = psis.len() == 1;
    let rho0s_of = |idx: &[usize]| -> Vec<DensityMatrix> {
        if shared {
            vec![DensityMatrix::from_pure(&psis[0])]
        } else {
            idx.iter().map(|&i| DensityMatrix::from_pure(&psis[i])).collect()
        }
    };
    let to_error = |e: MasterBatchError| match e {
        MasterBatchError::Input(s) => Error::from(s),
        MasterBatchError::Gpu(g) => Error::from(g),
    };
    let ode = super::super::evolve::ode_options(job.spec);
    let times = &job.spec.times;
    let mut batches = Vec::new();
    let mut elements: Vec<Option<Element>> = (0..points.len()).map(|_| None).collect();
    for (idx, blocks_kind) in [(&sym, false), (&blk, true)] {
        if idx.is_empty() {
            continue;
        }
        let rho0s = rho0s_of(idx);
        let mut batch = if blocks_kind {
            let models: Vec<crate::model::Model> = idx.iter().map(|&i| points[i].model).collect();
            let b0: Vec<BlockState> = rho0s.iter().map(BlockState::from_symmetric).collect();
            drop(rho0s);
            kernel.run_blocks(&models, &b0, times, &ode, options)
        } else {
            let protocols: Vec<crate::model::Protocol> = idx.iter().map(|&i| points[i].protocol()).collect();
            kernel.run_protocols(&protocols, &rho0s, times, &ode, options)
        }
        .map_err(to_error)?;
        for (&i, el) in idx.iter().zip(std::mem::take(&mut batch.elements)) {
            elements[i] = Some(el);
        }
        batches.push((blocks_kind, batch));
    }
    let elements = elements
        .into_iter()
        .map(|e| e.unwrap_or_else(|| unreachable!("every point is in one of the two batches")))
        .collect();
    Ok((batches, elements))
}

/// Every computed point's unit into the checkpoint, in point order, up to the first failed
/// point, returned with its error (it stops the run once the points before it are written).
fn put_units(
    job: &Job,
    units: &mut Units,
    missing: &[usize],
    elements: Vec<Element>,
) -> Result<Option<(usize, Error)>, Error> {
    let failed = elements.iter().filter(|e| e.is_err()).count();
    let others = if failed > 1 {
        format!("; {failed} of {} points failed", job.points.len())
    } else {
        String::new()
    };
    for (&i, el) in missing.iter().zip(elements) {
        match el {
            Ok(el) => units.put(i, &record_element(job, i, el)?.encode())?,
            Err(e) => return Ok(Some((i, job.point_error(i, e, others)))),
        }
    }
    Ok(None)
}

/// Point `i`'s unit from its batch element.
fn record_element(job: &Job, i: usize, el: BatchElement) -> Result<PointUnit, Error> {
    let p = &job.points[i];
    let reference = job.sc.reference_state(p)?;
    let reference = reference.as_deref();
    let mut unit = PointUnit::default();
    for k in 0..job.spec.times.len() {
        match &el.saves {
            Saves::Full(v) => job.record(&mut unit, i, reference, k, StateRef::Sym(&v[k])),
            Saves::Band(v) => job.record(
                &mut unit,
                i,
                reference,
                k,
                StateRef::Sym(&v[k].to_density_matrix()),
            ),
            Saves::Blocks(v) => job.record(&mut unit, i, reference, k, StateRef::Blocks(&v[k])),
            Saves::BlockBands(v) => job.record(
                &mut unit,
                i,
                reference,
                k,
                StateRef::Blocks(&block_state_from_bands(&v[k])),
            ),
        }
    }
    unit.stats = job.point_stats(p, el.stats).to_string();
    Ok(unit)
}
