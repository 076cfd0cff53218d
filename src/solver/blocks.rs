//! The exact permutation-invariant master equation with single-atom processes (PHYSICS.md
//! sections 1 and 3), on the CPU in f64.
//!
//! The state is a [`BlockState`]: one block R_j per irrep 2j = N, N-2, ..., 1 or 0, with
//! sum_j tr R_j = 1 and <A> = sum_j tr(R_j A^(j)). Every block evolves under the model's
//! Hamiltonian and collective dissipators with the irrep-j ladder coefficients (the stencil of
//! [`super::master`], reused per block), plus the single-atom channels. With
//! `a0, a-, a+` = [`individual_weights`] (PHYSICS.md sec. 3):
//!
//! ```text
//! sum_n D[sigma_n^-] R = a0 J- R J+  + a- A- R A-^dag + a+ A+ R A+^dag - {Jz + N/2, R}/2
//! sum_n D[sigma_n^+] R = a0 J+ R J-  + a- B- R B-^dag + a+ B+ R B+^dag - {N/2 - Jz, R}/2
//! sum_n D[sigma_n^z] R = 4 a0 Jz R Jz + 4 a- D- R D-^dag + 4 a+ D+ R D+^dag - N R
//! ```
//!
//! where A-, B-, D- map irrep j to j-1 and A+, B+, D+ map j to j+1:
//! `A-|j,m> = sqrt((j+m)(j+m-1)) |j-1,m-1>`, `A+|j,m> = sqrt((j-m+1)(j-m+2)) |j+1,m-1>`,
//! `B-|j,m> = sqrt((j-m)(j-m-1)) |j-1,m+1>`, `B+|j,m> = sqrt((j+m+1)(j+m+2)) |j+1,m+1>`,
//! `D-|j,m> = sqrt(j^2-m^2) |j-1,m>`, `D+|j,m> = sqrt((j+1)^2-m^2) |j+1,m>`.
//!
//! **Within a block** the single-atom terms have the collective stencil's shape: the jump
//! weights become Gamma + gamma_down a0(j) (J- R J+), w + gamma_up a0(j) (J+ R J-) and
//! Gamma_phi + 4 gamma_phi a0(j) (Jz R Jz), and the losses add, per level k (m = k - j),
//! `-gamma_down (m + N/2)/2 - gamma_up (N/2 - m)/2 + 2 gamma_phi a0 m^2 - gamma_phi N/2`
//! (the last two undo the -(4 gamma_phi a0/2)(m_r^2 + m_c^2) that the merged Jz R Jz weight
//! brings and add the -gamma_phi N of sum_n sigma_n^z sigma_n^z = N). See
//! [`super::master::Coeffs::with_rates`].
//!
//! **Inflow.** Block j receives from j+1 the terms a-(j+1) (X R_{j+1} X^dag) for X = A-, B-, D-
//! (weights gamma_down, gamma_up, 4 gamma_phi) and from j-1 the terms a+(j-1) (X R_{j-1} X^dag)
//! for X = A+, B+, D+. In index form (k = m + j in each block) each of them is
//!
//! ```text
//! (R_j)_{r,c} += f(r + s) f(c + s) (R_src)_{r+s, c+s}
//! ```
//!
//! with a per-level factor f of the source block (rate and weight included) and a shift s:
//! A- s = +2, B- s = 0, D- s = +1 (from j+1); A+ s = 0, B+ s = -2, D+ s = -1 (from j-1). So the
//! jumps keep q = c - r; only the drive changes q (by 1), and the Liouvillian couples block j
//! to j +- 1 only.
//!
//! These coefficients (PHYSICS.md sec. 3 as written) are checked against the full 2^N
//! Lindbladian with every term of the model on at random rates, N = 2..6
//! (`tests/blocks_bruteforce.rs`: 2e-13 in <J>, <Jz^2>, <J+J->, <J^2> over time); no correction
//! to sec. 3 was needed.
//!
//! The drive phase is a gauge, as in [`super::master`]: U = exp(-i phi Jz) commutes with every
//! single-atom dissipator's sum over atoms, and the inflow shifts r and c together, so the
//! factor e^{i phi (r - c)} of each element is the same in the source and the target block.
//! [`evolve`] and [`steady_state`] work in the phi = 0 frame.
//!
//! # Time evolution
//!
//! Dormand-Prince 5(4) ([`super::ode`]) on all blocks as one flat vector; the Liouvillian
//! runs block-parallel (rayon; large blocks split their rows again in the collective
//! stencil). Hermitian initial blocks (every physical state) are integrated as their upper
//! triangles in split re/im planes with the collective solver's packed kernel per block
//! (the inflow maps upper triangles onto upper triangles); anything else takes the full
//! complex storage. Memory: 10 work vectors of sum_j (2j+1)^2 ~ N^3/6 complex numbers at most
//! (N = 200: 1.37e6 elements, 220 MB; about half with packed storage).
//!
//! # Steady state
//!
//! The real form of L on Hermitian blocks (unknowns (R_j)_kk and (Re, Im)(R_j)_rc for r < c,
//! sum_j (2j+1)^2 reals) with one population pinned (that of m = -N/2 in j = N/2 first),
//! solved by nested dissection and a multifrontal LU and refined in twice the working
//! precision: [`crate::solver::hermitian`], [`crate::solver::frontal`]. The pin is exact
//! because the diagonal equations of all blocks sum to zero identically (the dissipator is
//! trace preserving).
//!
//! Ordering: the unknowns form a 3-D lattice (j, m_r, m_c) with nearest-neighbour couplings:
//! the drive moves m_r or m_c by one; a jump moves both by the same 0 or +-1 and j by 0 or
//! +-1 (q = c - r changes only with the drive). Element (r, c) of block b (j = N/2 - b) sits at
//! (b, r + b, c + b) = (b, m_r + N/2, m_c + N/2), so every coupling changes each coordinate by
//! at most one and planes of constant coordinate separate the lattice. 3-D nested dissection
//! gives O(nu^(4/3)) fill and O(nu^2) work in the number of unknowns nu; the populations of
//! every block (the face q = 0) are eliminated last. (The previous solver, faer's supernodal
//! LU under COLAMD, needed nu^1.56 memory: 3.5 GB at N = 100; measured times and memory:
//! BENCHMARKS.md, "Permutation-invariant block master equation".)
//! Populations are not made exactly conservative in floating point as in the collective solver
//! (the rates of one level now flow into three blocks): the refinement brings the residual to
//! the rounding floor, and populations far below 1e-10 carry a relative error that grows as
//! they shrink.
//!
//! **Parity.** When the Hamiltonian is the drive alone (omega0 = chi = chi_z = 0, e.g. seed
//! 000), the antiunitary map sigma(rho) = U conj(rho) U^dag, U = e^{i pi Jz}, commutes with L in
//! the phi = 0 frame: U Jx U^dag = -Jx undoes the sign that conjugation gives -i[H, .], every
//! jump operator (J-, Jz, A+-, B+-, D+-, all real) goes to +-itself, so each dissipator is
//! unchanged. A unique steady state is therefore sigma-invariant: (R_j)_rc is real for even
//! c - r and imaginary for odd. The solve then has one real unknown per element r <= c
//! (sum_j (2j+1)(2j+2)/2 instead of sum_j (2j+1)^2): half the unknowns, about a quarter of
//! the LU work. The residual is still checked on the full complex stencil.
//!
//! Collective-only models conserve J^2: every block then has its own steady state and the
//! steady state is not unique; [`steady_state`] refuses them (use [`super::master`]).

use crate::basis::{Irrep, individual_weights};
use crate::error::SolverError;
use crate::model::{Model, Protocol};
use crate::solver::hermitian::{
    Coupling, PIN_RATIO, Pin, assemble_hermitian_blocks, check_memory, hidx, packed_len, packed_offset,
    solve_memory_estimate, solve_pinned, unknown_coords,
};
use crate::solver::master::{
    Coeffs, EvolveStats, SteadyStats, StencilRates, apply_full, apply_packed_split, gauge,
};
use crate::solver::ode::{self, OdeOptions};
use crate::state::BlockState;
use crate::state::blocks::block_elements;
use num_complex::Complex64 as c64;
use rayon::prelude::*;

/// One inflow term into a block: `(R_target)_{r,c} += coef[r+s] coef[c+s] (R_src)_{r+s,c+s}`.
#[derive(Clone)]
struct Transfer {
    src: usize,
    shift: isize,
    /// Which of the six channels ([`CHANNELS`]) this is, in the order they are applied.
    #[cfg_attr(not(feature = "gpu"), allow(dead_code))] // read by the GPU host only
    channel: usize,
    /// Per source level k, rate and channel weight included.
    coef: Vec<f64>,
}

/// The six inflow channels of a block, in the order [`BlockOp`] adds them: (source block
/// relative to the target, -1 for j+1 and +1 for j-1; shift s). A-, B-, D- from j+1, then A+,
/// B+, D+ from j-1 (module doc).
#[cfg_attr(not(feature = "gpu"), allow(dead_code))] // read by the GPU host only
pub(crate) const CHANNELS: [(isize, isize); 6] = [(-1, 2), (-1, 0), (-1, 1), (1, 0), (1, -2), (1, -1)];

/// The block Liouvillian of a model (phi = 0 frame) as numbers, for the GPU kernel
/// ([`crate::backend::gpu::master_batch`]): exactly the f64 values [`evolve`] uses.
#[cfg_attr(not(feature = "gpu"), allow(dead_code))] // read by the GPU host only
pub(crate) struct BlockStencil {
    /// 2j + 1 per block, largest j first.
    pub dims: Vec<usize>,
    /// Per block and level: [`super::master::Coeffs::levels`].
    pub levels: Vec<Vec<[f64; 8]>>,
    /// Per block and channel ([`CHANNELS`]): the per-source-level factor f (rate and weight
    /// included), or None where [`evolve`] applies no such term.
    pub inflow: Vec<[Option<Vec<f64>>; 6]>,
}

/// Block b's stencil refilled for `model` (see [`BlockOp::apply_at`]).
fn refill_block(co: &mut Coeffs, irrep: &Irrep, rates: &mut StencilRates, model: &Model, with_phase: bool) {
    let (a0, _, _) = individual_weights(model.n, irrep.two_j);
    rates.down_jump = model.gamma_coll + model.gamma_down * a0;
    rates.up_jump = model.pump_coll + model.gamma_up * a0;
    rates.dephase = model.dephase_coll + 4.0 * model.gamma_phi * a0;
    co.fill(model, irrep, with_phase, rates);
}

/// Every block's stencil refilled for `model` by the thread that then applies it (see
/// [`BlockOp::apply_at`]): the coefficient iterator that [`apply_blocks`] and
/// [`apply_packed_blocks`] take.
fn refilled<'a>(
    co: &'a mut [Coeffs],
    irreps: &'a mut [(Irrep, StencilRates)],
    model: &'a Model,
    with_phase: bool,
) -> impl IndexedParallelIterator<Item = &'a Coeffs> + 'a {
    co.par_iter_mut()
        .zip(irreps.par_iter_mut())
        .map(move |(c, (irrep, rates))| {
            refill_block(c, irrep, rates, model, with_phase);
            &*c
        })
}

/// `out` cut into consecutive pieces of the given lengths, each with its index (one per
/// block, to hand to the parallel application).
fn split_blocks<T>(out: &mut [T], lens: impl Iterator<Item = usize>) -> Vec<(usize, &mut [T])> {
    let mut outs = Vec::with_capacity(lens.size_hint().0);
    let mut rest = out;
    for (b, len) in lens.enumerate() {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(len);
        outs.push((b, head));
        rest = tail;
    }
    outs
}

/// The rows r in `lo..hi` of a block of dimension `d` whose source rows `r + shift` lie in a
/// block of dimension `ds` (an inflow term's overlap).
fn overlap(d: usize, ds: usize, shift: isize) -> (usize, usize) {
    let lo = (-shift).max(0) as usize;
    let hi = (d as isize).min(ds as isize - shift).max(0) as usize;
    (lo, hi)
}

/// out = L y on the flat block vector, block b with the b-th coefficients of `co`
/// ([`BlockOp::apply`]).
fn apply_blocks<'a, const PHASED: bool>(
    dims: &[usize],
    offsets: &[usize],
    inflow: &[Vec<Transfer>],
    co: impl IndexedParallelIterator<Item = &'a Coeffs>,
    y: &[c64],
    out: &mut [c64],
) {
    let outs = split_blocks(out, dims.iter().map(|&d| d * d));
    let blk = |b: usize| &y[offsets[b]..offsets[b] + dims[b] * dims[b]];
    outs.into_par_iter().zip(co).for_each(|((b, o), cob)| {
        apply_full::<PHASED>(cob, blk(b), o);
        let d = dims[b];
        for t in &inflow[b] {
            let src = blk(t.src);
            let ds = dims[t.src];
            let s = t.shift;
            // target index i reads source index i + s, both in range
            let (lo, hi) = overlap(d, ds, s);
            for r in lo..hi {
                let rs = (r as isize + s) as usize;
                let cr = t.coef[rs];
                if cr == 0.0 {
                    continue;
                }
                let orow = &mut o[r * d..(r + 1) * d];
                let srow = &src[rs * ds..(rs + 1) * ds];
                let ss = (lo as isize + s) as usize;
                let (oseg, sseg) = (&mut orow[lo..hi], &srow[ss..ss + (hi - lo)]);
                let cseg = &t.coef[ss..ss + (hi - lo)];
                for ((o, v), cc) in oseg.iter_mut().zip(sseg).zip(cseg) {
                    *o += (cr * cc) * v;
                }
            }
        }
    });
}

/// The packed Hermitian form of [`apply_blocks`] ([`BlockOp::apply_packed`]).
fn apply_packed_blocks<'a>(
    dims: &[usize],
    inflow: &[Vec<Transfer>],
    poff: &[usize],
    co: impl IndexedParallelIterator<Item = &'a Coeffs>,
    y: &[f64],
    out: &mut [f64],
) {
    let outs = split_blocks(out, poff.windows(2).map(|w| w[1] - w[0]));
    outs.into_par_iter().zip(co).for_each(|((b, o), cob)| {
        apply_packed_split(cob, &y[poff[b]..poff[b + 1]], o);
        let d = dims[b];
        let p = packed_len(d);
        let (ore, oim) = o.split_at_mut(p);
        for t in &inflow[b] {
            let ds = dims[t.src];
            let ps = packed_len(ds);
            let (sre, sim) = y[poff[t.src]..poff[t.src + 1]].split_at(ps);
            let s = t.shift;
            let (lo, hi) = overlap(d, ds, s);
            for r in lo..hi {
                let rs = (r as isize + s) as usize;
                let cr = t.coef[rs];
                if cr == 0.0 {
                    continue;
                }
                // columns c = r..hi of row r, sources c + s = rs..: contiguous in both
                let len = hi - r;
                let (io, is) = (packed_offset(d, r), packed_offset(ds, rs));
                let cc = &t.coef[rs..rs + len];
                for (k, &cf) in cc.iter().enumerate() {
                    let w = cr * cf;
                    ore[io + k] += w * sre[is + k];
                    oim[io + k] += w * sim[is + k];
                }
            }
        }
    });
}

/// The numbers of the block Liouvillian of `model` (phi = 0 frame), see [`BlockStencil`].
#[cfg_attr(not(feature = "gpu"), allow(dead_code))] // read by the GPU host only
pub(crate) fn stencil(model: &Model) -> BlockStencil {
    let op = BlockOp::new(model, false);
    let inflow = op
        .inflow
        .iter()
        .map(|ts| {
            let mut slots: [Option<Vec<f64>>; 6] = Default::default();
            for t in ts {
                slots[t.channel] = Some(t.coef.clone());
            }
            slots
        })
        .collect();
    BlockStencil {
        levels: op.co.iter().map(Coeffs::levels).collect(),
        dims: op.dims,
        inflow,
    }
}

/// The block Liouvillian of one model: per block the collective-shaped stencil and the inflow.
#[derive(Clone)]
struct BlockOp {
    dims: Vec<usize>,
    offsets: Vec<usize>,
    co: Vec<Coeffs>,
    inflow: Vec<Vec<Transfer>>,
    /// Per block its irrep and stencil rates (for [`BlockOp::refill`]).
    irreps: Vec<(Irrep, StencilRates)>,
}

impl BlockOp {
    fn new(model: &Model, with_phase: bool) -> BlockOp {
        let n = model.n;
        let two_js = crate::basis::two_js(n);
        let (gd, gu, gp) = (model.gamma_down, model.gamma_up, model.gamma_phi);
        let half_n = n as f64 / 2.0;
        let mut dims = Vec::new();
        let mut offsets = Vec::new();
        let mut co = Vec::new();
        let mut inflow = Vec::new();
        let mut irreps = Vec::new();
        let mut off = 0;
        for (b, &t) in two_js.iter().enumerate() {
            let irrep = Irrep::new(t);
            let (a0, _, _) = individual_weights(n, t);
            let extra_loss = irrep
                .m
                .iter()
                .map(|&m| {
                    -0.5 * gd * (m + half_n) - 0.5 * gu * (half_n - m) + 2.0 * gp * a0 * m * m
                        - 0.5 * gp * n as f64
                })
                .collect();
            let rates = StencilRates {
                down_jump: model.gamma_coll + gd * a0,
                up_jump: model.pump_coll + gu * a0,
                dephase: model.dephase_coll + 4.0 * gp * a0,
                extra_loss,
            };
            co.push(Coeffs::with_rates(model, &irrep, with_phase, &rates));
            irreps.push((irrep, rates));
            dims.push(t + 1);
            offsets.push(off);
            off += (t + 1) * (t + 1);

            let mut tr = Vec::new();
            let sq = |x: f64| x.max(0.0).sqrt();
            // Channels 0-2 come from j+1 and 3-5 from j-1 ([`CHANNELS`]); the top block has no
            // j+1 and starts at 3.
            let mut channel = if b == 0 { 3 } else { 0 };
            let mut push = |src: usize, shift: isize, rate: f64, f: &dyn Fn(f64) -> f64, src_dim: usize| {
                if rate > 0.0 {
                    let coef: Vec<f64> = (0..src_dim).map(|k| rate.sqrt() * f(k as f64)).collect();
                    if coef.iter().any(|&c| c != 0.0) {
                        tr.push(Transfer {
                            src,
                            shift,
                            channel,
                            coef,
                        });
                    }
                }
                channel += 1;
            };
            if b > 0 {
                // From j+1 (source 2J = t + 2) through A-, B-, D- with a-(J).
                let tj = (t + 2) as f64;
                let am = individual_weights(n, t + 2).1;
                push(b - 1, 2, gd * am, &|k| sq(k * (k - 1.0)), t + 3);
                push(b - 1, 0, gu * am, &|k| sq((tj - k) * (tj - k - 1.0)), t + 3);
                push(b - 1, 1, 4.0 * gp * am, &|k| sq(k * (tj - k)), t + 3);
            }
            if b + 1 < two_js.len() {
                // From j-1 (source 2J = t - 2) through A+, B+, D+ with a+(J).
                let tj = (t - 2) as f64;
                let ap = individual_weights(n, t - 2).2;
                push(b + 1, 0, gd * ap, &|k| sq((tj - k + 1.0) * (tj - k + 2.0)), t - 1);
                push(b + 1, -2, gu * ap, &|k| sq((k + 1.0) * (k + 2.0)), t - 1);
                push(
                    b + 1,
                    -1,
                    4.0 * gp * ap,
                    &|k| sq((tj + 1.0 - k) * (k + 1.0)),
                    t - 1,
                );
            }
            inflow.push(tr);
        }
        BlockOp {
            dims,
            offsets,
            co,
            inflow,
            irreps,
        }
    }

    fn len(&self) -> usize {
        self.offsets
            .last()
            .map_or(0, |o| o + self.dims.last().map_or(0, |d| d * d))
    }

    /// out = L y on the flat block vector.
    fn apply<const PHASED: bool>(&self, y: &[c64], out: &mut [c64]) {
        apply_blocks::<PHASED>(
            &self.dims,
            &self.offsets,
            &self.inflow,
            self.co.par_iter(),
            y,
            out,
        );
    }

    /// [`Self::apply`] for `model`, a protocol's model at the stage time whose single-atom
    /// rates are those the operator was built with (they alone set the inflow terms and the
    /// per-level losses, which stay as built): each block's stencil is refilled in place
    /// ([`refill_block`]: the numbers of [`BlockOp::new`], no allocation) by the thread that
    /// then applies it. A separate refill pass between two parallel applications idled the
    /// second core (+12-26 % at N = 30-60 on 2 cores).
    fn apply_at<const PHASED: bool>(&mut self, model: &Model, y: &[c64], out: &mut [c64]) {
        let BlockOp {
            dims,
            offsets,
            co,
            inflow,
            irreps,
        } = self;
        let co = refilled(co, irreps, model, PHASED);
        apply_blocks::<PHASED>(dims, offsets, inflow, co, y, out);
    }

    /// Start of block b in the packed Hermitian layout: each block is its upper triangle
    /// (P = d(d+1)/2 elements) as `[re (P) | im (P)]`, the blocks one after the other.
    fn packed_offsets(&self) -> Vec<usize> {
        let mut v = Vec::with_capacity(self.dims.len() + 1);
        let mut o = 0;
        for &d in &self.dims {
            v.push(o);
            o += 2 * packed_len(d);
        }
        v.push(o);
        v
    }

    /// out = L y (phi = 0 frame) on Hermitian blocks in the packed layout: the collective
    /// stencil per block ([`apply_packed_split`]) plus the inflow, which maps upper triangles
    /// onto upper triangles (r and c shift together).
    fn apply_packed(&self, poff: &[usize], y: &[f64], out: &mut [f64]) {
        apply_packed_blocks(&self.dims, &self.inflow, poff, self.co.par_iter(), y, out);
    }

    /// [`Self::apply_packed`] for `model`, refilling as [`Self::apply_at`] does.
    fn apply_packed_at(&mut self, model: &Model, poff: &[usize], y: &[f64], out: &mut [f64]) {
        let BlockOp {
            dims,
            co,
            inflow,
            irreps,
            ..
        } = self;
        let co = refilled(co, irreps, model, false);
        apply_packed_blocks(dims, inflow, poff, co, y, out);
    }

    /// The complex equation of element (r, c) of block b (for the sparse assembly).
    fn couplings(&self, b: usize, r: usize, c: usize, terms: &mut Vec<Coupling>) {
        let n = self.dims[b] as isize;
        for (dr, dc, k) in self.co[b].couplings(r, c) {
            let (rr, cc) = (r as isize + dr, c as isize + dc);
            if rr < 0 || cc < 0 || rr >= n || cc >= n {
                continue;
            }
            terms.push((b, rr as usize, cc as usize, k));
        }
        for t in &self.inflow[b] {
            let ds = self.dims[t.src] as isize;
            let (rs, cs) = (r as isize + t.shift, c as isize + t.shift);
            if rs < 0 || cs < 0 || rs >= ds || cs >= ds {
                continue;
            }
            let (rs, cs) = (rs as usize, cs as usize);
            terms.push((t.src, rs, cs, c64::new(t.coef[rs] * t.coef[cs], 0.0)));
        }
    }
}

/// The block Liouvillian of `model` in the phi = 0 frame as sparse equations, for the sparse
/// complex assembly of [`super::spectrum`].
pub(crate) struct SparseBlocks(BlockOp);

impl SparseBlocks {
    pub(crate) fn new(model: &Model) -> SparseBlocks {
        SparseBlocks(BlockOp::new(model, false))
    }

    /// The blocks' dimensions 2j + 1, largest j first.
    pub(crate) fn dims(&self) -> &[usize] {
        &self.0.dims
    }

    /// The complex equation of element (r, c) of block b (any r, c).
    pub(crate) fn couplings(&self, b: usize, r: usize, c: usize, terms: &mut Vec<Coupling>) {
        self.0.couplings(b, r, c, terms)
    }
}

fn check_shape(model: &Model, s: &BlockState) -> Result<(), SolverError> {
    let expect = BlockState::zeros(model.n);
    if s.n != model.n || s.two_j != expect.two_j || s.data.len() != expect.data.len() {
        return Err(SolverError::Unsupported {
            solver: "blocks",
            message: format!(
                "the block state is for N = {} ({} elements), the model has N = {} ({} elements)",
                s.n,
                s.data.len(),
                model.n,
                expect.data.len()
            ),
        });
    }
    Ok(())
}

/// `out = L rho` in the model's frame (phi as given), any blocks (Hermitian or not).
/// Errors if a state's shape does not match the model's N.
pub fn liouvillian_apply(model: &Model, rho: &BlockState, out: &mut BlockState) -> Result<(), SolverError> {
    check_shape(model, rho)?;
    check_shape(model, out)?;
    let op = BlockOp::new(model, true);
    if model.phi == 0.0 {
        op.apply::<false>(&rho.data, &mut out.data);
    } else {
        op.apply::<true>(&rho.data, &mut out.data);
    }
    Ok(())
}

/// Multiply every block's element (r, c) by g_r conj(g_c) (`inverse`: conj(g_r) g_c), g_k =
/// e^{i phi k}: into (out of) the phi = 0 frame.
fn to_frame(s: &mut [c64], dims: &[usize], offsets: &[usize], phi: f64, inverse: bool) {
    if phi == 0.0 {
        return;
    }
    let g = gauge(dims.first().copied().unwrap_or(0), phi);
    for (&d, &o) in dims.iter().zip(offsets) {
        for r in 0..d {
            for c in 0..d {
                let f = if inverse {
                    g[r].conj() * g[c]
                } else {
                    g[r] * g[c].conj()
                };
                s[o + r * d + c] *= f;
            }
        }
    }
}

/// Integrate the block master equation from `rho0` at `times[0]` and call
/// `on_save(i, times[i], rho)` at every requested time (the first with `rho0` itself).
/// Refuses a state whose shape does not match the model, and a workspace above the memory
/// limit ([`super::master::STEADY_STATE_MEMORY_LIMIT_MIB`]) before allocating it.
pub fn evolve(
    model: &Model,
    rho0: &BlockState,
    times: &[f64],
    opts: &OdeOptions,
    on_save: &mut dyn FnMut(usize, f64, &BlockState),
) -> Result<EvolveStats, SolverError> {
    evolve_protocol(&Protocol::from(*model), rho0, times, opts, on_save)
}

/// [`evolve`] under a time-dependent protocol (`model::schedule`): steps land on every break,
/// each step uses its piece's model (the block operator rebuilt per right-hand side, O(N^2)
/// coefficients against the O(N^3) application); a scheduled drive phase runs on full blocks
/// with the phase in the operator (no constant frame removes it).
pub fn evolve_protocol(
    protocol: &Protocol,
    rho0: &BlockState,
    times: &[f64],
    opts: &OdeOptions,
    on_save: &mut dyn FnMut(usize, f64, &BlockState),
) -> Result<EvolveStats, SolverError> {
    let model = &protocol.base;
    check_shape(model, rho0)?;
    let len = rho0.data.len();
    check_memory(
        format!(
            "time evolution of the {} blocks of N = {} ({len} complex elements, 11 work vectors)",
            rho0.num_blocks(),
            model.n
        ),
        11.0 * 16.0 * len as f64,
    )?;
    let breaks = ode::protocol_breaks(protocol, times, "blocks")?;
    let phased = protocol.names().contains(&"phi");
    let frame_phi = if phased { 0.0 } else { model.phi };
    let fixed = BlockOp::new(model, phased);
    // The operator of the piece starting at `at`, evaluated at t: refilled in place, or
    // rebuilt where a single-atom rate is scheduled (it changes the inflow terms' set).
    let rebuild = ["gamma_down", "gamma_up", "gamma_phi"]
        .iter()
        .any(|r| protocol.names().contains(r));
    let mut work = fixed.clone();
    // The model of the piece starting at `at`, evaluated at t (None: constant parameters);
    // a scheduled single-atom rate rebuilds the operator here, anything else is refilled
    // inside the application.
    let model_at = |work: &mut BlockOp, at: f64, t: f64| -> Option<Model> {
        if protocol.is_constant() {
            return None;
        }
        let m = protocol.model_in(at, t);
        if rebuild {
            *work = BlockOp::new(&m, phased);
            return None;
        }
        Some(m)
    };
    let op = &fixed;
    let tr0 = rho0.trace();
    let mut y0 = rho0.data.clone();
    to_frame(&mut y0, &op.dims, &op.offsets, frame_phi, false);
    let mut out = rho0.clone();
    let (mut max_tr, mut max_herm) = (0.0f64, 0.0f64);
    let scale = rho0.data.iter().map(|z| z.norm()).fold(0.0, f64::max);
    if !phased && rho0.hermiticity_error() <= 1e-12 * scale.max(1e-300) {
        // Hermitian blocks: integrate the upper triangles only (half the work and memory;
        // the result is Hermitian to the last bit), as in the collective solver.
        let poff = op.packed_offsets();
        let mut yp = vec![0.0; poff[op.dims.len()]];
        for (b, &d) in op.dims.iter().enumerate() {
            let (o, p) = (op.offsets[b], packed_len(d));
            for r in 0..d {
                for c in r..d {
                    let v = 0.5 * (y0[o + r * d + c] + y0[o + c * d + r].conj());
                    let i = poff[b] + packed_offset(d, r) + c - r;
                    yp[i] = v.re;
                    yp[i + p] = if c == r { 0.0 } else { v.im };
                }
            }
        }
        drop(y0);
        let st = ode::integrate_real_pieces(
            |at, t, y: &[f64], dy: &mut [f64]| match model_at(&mut work, at, t) {
                Some(m) => work.apply_packed_at(&m, &poff, y, dy),
                None => work.apply_packed(&poff, y, dy),
            },
            &yp,
            times,
            &breaks,
            opts,
            |i, t, y| {
                for (b, &d) in op.dims.iter().enumerate() {
                    let (o, p) = (op.offsets[b], packed_len(d));
                    for r in 0..d {
                        for c in r..d {
                            let k = poff[b] + packed_offset(d, r) + c - r;
                            let v = c64::new(y[k], y[k + p]);
                            out.data[o + r * d + c] = v;
                            out.data[o + c * d + r] = v.conj();
                        }
                    }
                }
                to_frame(&mut out.data, &op.dims, &op.offsets, frame_phi, true);
                max_tr = max_tr.max((out.trace() - tr0).norm());
                on_save(i, t, &out);
            },
        )?;
        return Ok(EvolveStats {
            steps: st.steps,
            rejected: st.rejected,
            rhs_evals: st.rhs_evals,
            max_trace_error: max_tr,
            max_hermiticity_error: 0.0,
            hermitian_storage: true,
        });
    }
    let y0r: &[f64] = bytemuck::cast_slice(&y0);
    let st = ode::integrate_real_pieces(
        |at, t, y: &[f64], dy: &mut [f64]| {
            let (y, dy) = (bytemuck::cast_slice(y), bytemuck::cast_slice_mut(dy));
            match (model_at(&mut work, at, t), phased) {
                (Some(m), true) => work.apply_at::<true>(&m, y, dy),
                (Some(m), false) => work.apply_at::<false>(&m, y, dy),
                (None, true) => work.apply::<true>(y, dy),
                (None, false) => work.apply::<false>(y, dy),
            }
        },
        y0r,
        times,
        &breaks,
        opts,
        |i, t, y: &[f64]| {
            out.data.copy_from_slice(bytemuck::cast_slice(y));
            to_frame(&mut out.data, &op.dims, &op.offsets, frame_phi, true);
            max_tr = max_tr.max((out.trace() - tr0).norm());
            max_herm = max_herm.max(out.hermiticity_error());
            on_save(i, t, &out);
        },
    )?;
    Ok(EvolveStats {
        steps: st.steps,
        rejected: st.rejected,
        rhs_evals: st.rhs_evals,
        max_trace_error: max_tr,
        max_hermiticity_error: max_herm,
        hermitian_storage: false,
    })
}

/// Peak memory (bytes) of [`steady_state`] for `model`: the exact figure of the
/// factorisation's symbolic analysis ([`crate::solver::frontal`]) on the block Liouvillian's
/// pattern with every coupling present, plus the matrix and the solver's vectors
/// ([`crate::solver::hermitian::solve_memory_estimate`]), plus the returned state.
pub fn steady_state_memory_estimate(model: &Model) -> f64 {
    let parity = has_parity(model);
    let elements = block_elements(model.n) as f64;
    // Beyond the limit's reach the pattern itself would be gigabytes: extrapolate the
    // nested-dissection fill of a 3-D lattice, nu^(4/3), from the largest analysed size.
    const ANALYSED_ATOMS: usize = 320;
    if model.n > ANALYSED_ATOMS {
        let at = Model {
            n: ANALYSED_ATOMS,
            ..*model
        };
        let ratio = elements / block_elements(ANALYSED_ATOMS) as f64;
        return steady_state_memory_estimate(&at) * ratio.powf(4.0 / 3.0);
    }
    let full = Model {
        drive: 1.0,
        gamma_coll: 1.0,
        pump_coll: 1.0,
        dephase_coll: 1.0,
        gamma_down: 1.0,
        gamma_up: 1.0,
        gamma_phi: 1.0,
        ..*model
    };
    let op = BlockOp::new(&full, false);
    let coords = unknown_coords(&op.dims, parity, |b, r, c| {
        [b as i32, (r + b) as i32, (c + b) as i32]
    });
    let pin = Pin { block: 0, level: 0 };
    let csr = assemble_hermitian_blocks(&op.dims, 1.0, parity, pin, |b, r, c, t| op.couplings(b, r, c, t));
    solve_memory_estimate(&csr, &coords) + 2.0 * 16.0 * elements
}

/// True when the model's Hamiltonian is the drive alone (omega0 = chi = chi_z = 0): then, in the
/// phi = 0 frame, the steady state obeys rho = U conj(rho) U^dag with U = e^{i pi Jz}
/// (module doc), i.e. (R_j)_rc is real for even c - r and imaginary for odd.
fn has_parity(model: &Model) -> bool {
    model.omega0 == 0.0 && model.chi == 0.0 && model.chi_z == 0.0
}

/// The steady state of a model with single-atom rates: sum_j tr R_j = 1, L rho = 0, every
/// block Hermitian, with a report of its accuracy (module doc for the method). Refuses
/// collective-only models (their steady state is not unique in the block space; the
/// collective solver [`super::master::steady_state`] gives the one of the symmetric subspace) and
/// problems above the memory limit, before allocating.
pub fn steady_state(model: &Model) -> Result<(BlockState, SteadyStats), SolverError> {
    steady_state_with(model, has_parity(model))
}

/// [`steady_state`] with the parity layout on or off (`parity` must only be set when
/// [`has_parity`] holds).
fn steady_state_with(model: &Model, parity: bool) -> Result<(BlockState, SteadyStats), SolverError> {
    if model.is_collective() {
        return Err(SolverError::Unsupported {
            solver: "blocks",
            message: "every single-atom rate is 0, so J^2 is conserved and each block R_j has its own \
                      steady state (not unique); use the collective solver (master) for the j = N/2 one"
                .to_string(),
        });
    }
    if let Some(why) = model.no_unique_steady_state() {
        return Err(SolverError::Unsupported {
            solver: "blocks steady state",
            message: why.to_string(),
        });
    }
    let nb = block_elements(model.n);
    check_memory(
        format!(
            "multifrontal LU of the {nb} x {nb} real block Liouvillian (N = {}), fill included",
            model.n
        ),
        steady_state_memory_estimate(model),
    )?;
    let op = BlockOp::new(model, false);
    debug_assert_eq!(op.len(), nb);
    let unpack = |x: &[f64]| unpack_hermitian(model.n, &op, parity, x);
    let residual_of = |st: &BlockState| {
        let mut l = vec![c64::new(0.0, 0.0); nb];
        op.apply::<false>(&st.data, &mut l);
        l.iter().map(|z| z.norm()).fold(0.0, f64::max)
    };
    let coords = unknown_coords(&op.dims, parity, |b, r, c| {
        [b as i32, (r + b) as i32, (c + b) as i32]
    });
    let what = format!("N = {}", model.n);
    let population = |st: &BlockState, b: usize, k: usize| {
        let (o, d) = (op.offsets[b], op.dims[b]);
        st.data[o + k * d + k].re.abs()
    };
    let mut pin = Pin { block: 0, level: 0 };
    let (mut st, unknowns, nnz, residual_unrefined, refinement_steps, factor_entries) = loop {
        // Scale of the pinned row: 1-norm of the equation it replaces.
        let mut terms = Vec::new();
        op.couplings(pin.block, pin.level, pin.level, &mut terms);
        let s = terms
            .iter()
            .map(|t| t.3.norm())
            .sum::<f64>()
            .max(f64::MIN_POSITIVE.sqrt());
        let csr = assemble_hermitian_blocks(&op.dims, s, parity, pin, |b, r, c, t| op.couplings(b, r, c, t));
        let at = unknown_index(&op.dims, parity, pin);
        let (x, r0, steps, entries) = solve_pinned(&csr, &coords, at, s, &what, |x| residual_of(&unpack(x)))?;
        let st = unpack(&x);
        let largest = op
            .dims
            .iter()
            .enumerate()
            .flat_map(|(b, &d)| (0..d).map(move |k| Pin { block: b, level: k }))
            .max_by(|a, b| population(&st, a.block, a.level).total_cmp(&population(&st, b.block, b.level)))
            .unwrap_or(pin);
        let small =
            population(&st, pin.block, pin.level) < PIN_RATIO * population(&st, largest.block, largest.level);
        if largest != pin && small {
            pin = largest;
            continue;
        }
        break (st, csr.0.len() - 1, csr.2.len(), r0, steps, entries);
    };
    // Residual in the phi = 0 frame: the gauge multiplies each element by a phase, so it has
    // the same size in the model's frame.
    let residual = residual_of(&st);
    to_frame(&mut st.data, &op.dims, &op.offsets, model.phi, true);
    let trace_error = (st.trace() - 1.0).norm();
    let hermiticity_error = st.hermiticity_error();
    Ok((
        st,
        SteadyStats {
            unknowns,
            nnz,
            trace_error,
            hermiticity_error,
            residual,
            residual_unrefined,
            refinement_steps,
            factor_entries,
        },
    ))
}

/// The block state of the real unknowns `x` of [`assemble_hermitian_blocks`] (general or
/// parity layout), divided by its trace.
fn unpack_hermitian(n_atoms: usize, op: &BlockOp, parity: bool, x: &[f64]) -> BlockState {
    let mut st = BlockState::zeros(n_atoms);
    let mut base = 0;
    for (b, &d) in op.dims.iter().enumerate() {
        let o = op.offsets[b];
        let mut p = base; // packed upper triangle, row by row (parity layout)
        for r in 0..d {
            for c in r..d {
                let v = if parity {
                    let x = x[p];
                    p += 1;
                    if (c - r) % 2 == 0 {
                        c64::new(x, 0.0)
                    } else {
                        c64::new(0.0, x)
                    }
                } else if c == r {
                    c64::new(x[base + hidx(d, r, r)], 0.0)
                } else {
                    let i = base + hidx(d, r, c);
                    c64::new(x[i], x[i + 1])
                };
                st.data[o + r * d + c] = v;
                st.data[o + c * d + r] = v.conj();
            }
        }
        base += if parity { packed_len(d) } else { d * d };
    }
    let trace = st.trace().re;
    st.data.iter_mut().for_each(|z| *z /= trace);
    st
}

/// Index of the real unknown of population `pin` in [`assemble_hermitian_blocks`]' layout.
fn unknown_index(dims: &[usize], parity: bool, pin: Pin) -> usize {
    let size = |d: usize| if parity { packed_len(d) } else { d * d };
    let base: usize = dims[..pin.block].iter().map(|&d| size(d)).sum();
    let d = dims[pin.block];
    base + if parity {
        packed_offset(d, pin.level)
    } else {
        hidx(d, pin.level, pin.level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every inflow term sits at the source block and shift its channel number says
    /// ([`CHANNELS`]: the GPU kernel's layout relies on it), in channel order.
    #[test]
    fn transfers_follow_channel_table() {
        for n in [1usize, 2, 5, 8] {
            let model = Model {
                n,
                drive: 1.0,
                gamma_down: 0.6,
                gamma_up: 0.25,
                gamma_phi: 0.35,
                ..Default::default()
            };
            let op = BlockOp::new(&model, false);
            for (b, ts) in op.inflow.iter().enumerate() {
                let mut last = None;
                for t in ts {
                    let (rel, shift) = CHANNELS[t.channel];
                    assert_eq!(t.src as isize, b as isize + rel, "N={n} block {b}");
                    assert_eq!(t.shift, shift, "N={n} block {b}");
                    assert_eq!(t.coef.len(), op.dims[t.src]);
                    assert!(last < Some(t.channel));
                    last = Some(t.channel);
                }
            }
            let st = stencil(&model);
            assert_eq!(st.dims, op.dims);
            let n_terms: usize = st.inflow.iter().map(|s| s.iter().flatten().count()).sum();
            assert_eq!(n_terms, op.inflow.iter().map(Vec::len).sum::<usize>());
        }
    }

    /// The packed Hermitian apply equals the full complex apply on random Hermitian blocks
    /// (all terms on, every individual channel, phi = 0 frame), to rounding (1e-13 of |L|).
    #[test]
    fn packed_apply_matches_full_apply() {
        for n in [1usize, 4, 7] {
            let model = Model {
                n,
                omega0: 0.4,
                drive: 1.7,
                chi: 0.3,
                chi_z: -0.2,
                gamma_coll: 0.8,
                pump_coll: 0.2,
                dephase_coll: 0.3,
                gamma_down: 0.6,
                gamma_up: 0.25,
                gamma_phi: 0.35,
                ..Default::default()
            };
            let op = BlockOp::new(&model, false);
            let poff = op.packed_offsets();
            let mut st = BlockState::zeros(n);
            let mut seed = 0x1234_5678_9abc_def0u64 + n as u64;
            let mut rnd = || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            };
            let mut yp = vec![0.0; poff[op.dims.len()]];
            for (b, &d) in op.dims.iter().enumerate() {
                let (o, p) = (op.offsets[b], packed_len(d));
                for r in 0..d {
                    for c in r..d {
                        let v = if r == c {
                            c64::new(rnd(), 0.0)
                        } else {
                            c64::new(rnd(), rnd())
                        };
                        st.data[o + r * d + c] = v;
                        st.data[o + c * d + r] = v.conj();
                        let i = poff[b] + packed_offset(d, r) + c - r;
                        yp[i] = v.re;
                        yp[i + p] = v.im;
                    }
                }
            }
            let mut full = vec![c64::new(0.0, 0.0); st.data.len()];
            op.apply::<false>(&st.data, &mut full);
            let mut packed = vec![0.0; yp.len()];
            op.apply_packed(&poff, &yp, &mut packed);
            let scale = full.iter().map(|z| z.norm()).fold(0.0, f64::max);
            for (b, &d) in op.dims.iter().enumerate() {
                let (o, p) = (op.offsets[b], packed_len(d));
                for r in 0..d {
                    for c in r..d {
                        let i = poff[b] + packed_offset(d, r) + c - r;
                        let v = c64::new(packed[i], packed[i + p]);
                        let w = full[o + r * d + c];
                        assert!(
                            (v - w).norm() <= 1e-13 * scale,
                            "N={n} block {b} ({r},{c}): {v} vs {w}"
                        );
                    }
                }
            }
        }
    }

    /// The parity layout (half the unknowns) gives the same steady state as the general one,
    /// and the general solution does have the parity: (R_j)_rc real for even c - r, imaginary
    /// for odd (to rounding, 1e-15 on elements <= 1). Seed 000-like model with gamma_up and
    /// gamma_phi on as well, phi != 0 (the parity holds in the phi = 0 frame: compared there).
    #[test]
    fn parity_layout_matches_general_layout() {
        let model = Model {
            n: 9,
            drive: 2.3,
            gamma_coll: 0.8,
            pump_coll: 0.1,
            dephase_coll: 0.2,
            gamma_down: 0.5,
            gamma_up: 0.15,
            gamma_phi: 0.3,
            ..Default::default()
        };
        assert!(has_parity(&model));
        let (a, sa) = steady_state_with(&model, true).unwrap();
        let (b, sb) = steady_state_with(&model, false).unwrap();
        // sum_j d(d+1)/2 real unknowns against sum_j d^2.
        let sum_d: usize = (0..a.num_blocks()).map(|k| a.dim(k)).sum();
        assert_eq!(2 * sa.unknowns, sb.unknowns + sum_d);
        assert!(sa.residual < 1e-13 && sb.residual < 1e-13, "{sa:?} {sb:?}");
        let d = a
            .data
            .iter()
            .zip(&b.data)
            .map(|(x, y)| (x - y).norm())
            .fold(0.0, f64::max);
        assert!(d < 1e-13, "parity vs general: {d:e}");
        for blk in 0..b.num_blocks() {
            let dim = b.dim(blk);
            for r in 0..dim {
                for c in 0..dim {
                    let v = b.block(blk)[r * dim + c];
                    let off = if (c + r) % 2 == 0 { v.im } else { v.re };
                    assert!(off.abs() < 1e-15, "block {blk} ({r},{c}) = {v}");
                }
            }
        }
    }
}
