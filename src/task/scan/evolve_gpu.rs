//! The GPU path of a scan of evolutions: every point in the batched master-equation kernel
//! ([`MasterBatchGpu`]), collective points as one batch of (N+1)^2 matrices, points with
//! single-atom rates as one batch of block states (R_{N/2} = |psi><psi|), in point order.
//!
//! The GPU returns only the central band |c - r| <= 2 of each saved matrix or block (5n
//! instead of n^2 numbers: all that the moments of J, <J^2> and P_m read; the observables of a
//! block state are then summed over its blocks by the CPU path's code) unless a column needs
//! the whole matrix (`purity`, `lambda_max`, `fidelity`) or a Husimi grid is asked for.
//! Memory held on the host (every point's saves plus one read-back copy and the initial
//! states) is estimated and refused before anything is allocated.

use super::sink::{Job, Sink};
use crate::backend::gpu::GpuContext;
use crate::backend::gpu::master_batch::{
    BatchElement, BatchOutput, MasterBatch, MasterBatchError, MasterBatchGpu, MasterBatchOptions, Saves,
    block_state_from_bands,
};
use crate::c64;
use crate::error::{Error, SolverError};
use crate::precision::Precision;
use crate::state::{BlockState, DensityMatrix};
use crate::task::context::Context;
use crate::task::memory;
use crate::task::rows::{StateRef, Table};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// Run the scan on `gpu`; the output files are created once the memory check passed.
pub fn run(
    job: &Job,
    gpu: &Arc<GpuContext>,
    precision: Precision,
    ctx: &mut Context,
) -> Result<(Table, Value, Precision), Error> {
    let output = if job.needs_full() {
        BatchOutput::Full
    } else {
        BatchOutput::Band
    };
    let psis = initial_states(job, output)?;
    let mut sink = Sink::create(job, ctx)?;
    let kernel = MasterBatchGpu::new(Arc::clone(gpu))?;
    let options = MasterBatchOptions {
        precision,
        output,
        ..MasterBatchOptions::default()
    };
    ctx.progress.start(1, "scan (GPU batch)");
    let t_batch = Instant::now();
    let batches = run_batches(job, &kernel, &options, &psis);
    ctx.progress.finish();
    let (batches, elements) = batches?;
    drop(psis);
    let batch_wall_s = t_batch.elapsed().as_secs_f64();
    let point_stats = write_points(job, &mut sink, elements)?;
    let batch = &batches[0].1;
    let (sym, blk) = (batches.iter().any(|b| !b.0), batches.iter().any(|b| b.0));
    let stats = json!({
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
    });
    Ok((sink.table, stats, batch.precision))
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
        let models: Vec<crate::model::Model> = idx.iter().map(|&i| points[i].model).collect();
        let rho0s = rho0s_of(idx);
        let mut batch = if blocks_kind {
            let b0: Vec<BlockState> = rho0s.iter().map(BlockState::from_symmetric).collect();
            drop(rho0s);
            kernel.run_blocks(&models, &b0, times, &ode, options)
        } else {
            kernel.run(&models, &rho0s, times, &ode, options)
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

/// Every point's saves into the sink, in point order; the first failed point stops the run
/// (the points before it are written).
fn write_points(job: &Job, sink: &mut Sink, elements: Vec<Element>) -> Result<Vec<Value>, Error> {
    let points = job.points;
    let failed = elements.iter().filter(|e| e.is_err()).count();
    let others = if failed > 1 {
        format!("; {failed} of {} points failed", points.len())
    } else {
        String::new()
    };
    let mut point_stats = Vec::new();
    for (i, (p, el)) in points.iter().zip(elements).enumerate() {
        let el = el.map_err(|e| job.point_error(i, e, others.clone()))?;
        let reference = job.sc.reference_state(p)?;
        let reference = reference.as_deref();
        for (k, t) in job.spec.times.iter().enumerate() {
            match &el.saves {
                Saves::Full(v) => sink.save(p, reference, k, *t, StateRef::Sym(&v[k]))?,
                Saves::Band(v) => sink.save(p, reference, k, *t, StateRef::Sym(&v[k].to_density_matrix()))?,
                Saves::Blocks(v) => sink.save(p, reference, k, *t, StateRef::Blocks(&v[k]))?,
                Saves::BlockBands(v) => sink.save(
                    p,
                    reference,
                    k,
                    *t,
                    StateRef::Blocks(&block_state_from_bands(&v[k])),
                )?,
            }
        }
        point_stats.push(job.point_stats(p, el.stats));
    }
    Ok(point_stats)
}
