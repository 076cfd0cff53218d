// master_batch: adaptive Dormand-Prince 5(4) integration of the master equation for a batch of
// states of the same N, one workgroup of WG invocations per batch element. A state is a set of
// blocks: the collective master equation (PHYSICS.md sections 1-2) is one block (j = N/2) with
// no inflow; the permutation-invariant block master equation with single-atom processes
// (section 3) is one block R_j per irrep, each with the collective-shaped stencil of its own
// coefficients plus the inflow terms from j +- 1:
//   (R_j)_{r,c} += f(r + s) f(c + s) (R_src)_{r+s,c+s}   (src/solver/blocks.rs `Transfer`).
// Invocation `lid` owns the flat elements e = lid, lid + WG, ... of the concatenated row-major
// blocks; `Walk` carries (block, r, c) along.
//
// The algorithm is that of the CPU twins, src/solver/ode.rs (`integrate_real`: tableau, error
// norm, PI controller, clipping onto the save times, Hairer's initial step) applied to the
// stencil of src/solver/master.rs (`row_interior`) and the inflow of src/solver/blocks.rs
// (`BlockOp::apply_packed`), phi = 0 frame (the host rotates rho in and out with the gauge
// e^{i phi k}). Host side and the mapping: src/backend/gpu/master_batch.rs.
//
// Storage per element: SLOTS vectors of P.len complex numbers (y, two ping-pong stage inputs
// A and B, k1..k7); each stage pass computes k_s = L(Y_s) for the invocation's elements and,
// in the same pass, the next stage input Y_{s+1} (which needs only those elements), so a step
// costs one storage barrier per stage. The slots of y / Y_7 and of k1 / k7 swap on acceptance
// (FSAL) through the slot indices kept in Ctrl.
//
// A dispatch runs at most P.attempts step attempts and at most P.loop_budget loop iterations
// per invocation (llvmpipe ends every loop of a shader invocation after 65535 iterations in
// total, LP_MAX_TGSI_LOOP_ITERATIONS: the kernel counts its own and stops first). The state
// lives in Ctrl between dispatches (saves still pending resume first), and the host
// dispatches until every element is done.
//
// Prepended by the registry: master_batch_f32.wgsl | master_batch_f64.wgsl (R, C, R_MAX, powc),
// then common/dp5.wgsl (the Dormand-Prince tableau and controller constants),
// common/status.wgsl (the ST_* status codes of Ctrl.status) and common/time.wgsl (time pairs
// hi + lo: two_sum, t_add, t_le, t_sub; finite).

// Invocations per batch element (pipeline constant; a power of two <= 256).
override WG: u32 = 256u;
// Whether the batch has inflow terms (the block equation; pipeline constant). The collective
// pipeline sets it false, so that its elements carry no inflow code: llvmpipe runs branches
// under masks, and the dead inflow branch made the collective kernel measurably slower.
override INFLOW: bool = true;
// Whether the elements follow time-dependent protocols (pipeline constant; collective equation
// only). Then `coef` holds the model-independent level numbers (m, jpjm, jmjp, jp_{k-1}, jp_k,
// jm_{k+1}, jm_k) and `icoef` each element's table of affine pieces (`piece_model`), and the
// stencil's coefficients are formed from the piece's parameters at every stage's time
// (`lapply_sched`). The constant pipeline sets it false and keeps the host's coefficients.
override SCHED: bool = false;

const SLOTS: u32 = 10u;
const S_K2: u32 = 4u;
const S_K3: u32 = 5u;
const S_K4: u32 = 6u;
const S_K5: u32 = 7u;
const S_K6: u32 = 8u;

// Twin of MasterBatchParams{F32,F64}: a u32 block, then an R block (80 bytes in f32, 112 in f64).
struct Params {
    // Blocks per state, complex elements per state (sum of d^2), levels per state (sum of d),
    // inflow coefficients per element, real components of the CPU twin's packed Hermitian
    // vector (sum of d (d + 1)).
    n_blocks: u32,
    len: u32,
    levels: u32,
    icoef_len: u32,
    herm_len: u32,
    batch: u32,
    n_saves: u32,
    out_mode: u32,
    out_len: u32,
    attempts: u32,
    max_steps: u32,
    loop_budget: u32,
    rtol: R,
    atol: R,
    h0: R,
    t0: R,
    span: R,
    hmin_rel: R,
    // A break within `tiny` of a save is that save's; a step ending within `tiny` of a break
    // ends on it (ode.rs `integrate_real_pieces`, 64 eps max(|t0|, |t_end|, span) in f64).
    tiny: R,
    _pad4: R,
}

// Twin of MasterBatchCtrl{F32,F64} (80 bytes in f32, 96 in f64). `t` is the time elapsed since
// times[0] as an unevaluated sum hi + lo, so that in f32 it is exact to ~2^-48 relative and
// the step sizes, not the clock, carry the rounding.
struct Ctrl {
    t: vec2<R>,
    h: R,
    err_old: R,
    status: u32,
    next_save: u32,
    attempts: u32,
    steps: u32,
    rejected: u32,
    rhs_evals: u32,
    last_rejected: u32,
    herm: u32,
    slot_y: u32,
    slot_a: u32,
    slot_b: u32,
    slot_k1: u32,
    slot_k7: u32,
    // The protocol piece the element is on (SCHED).
    piece: u32,
    _pad1: u32,
    _pad2: u32,
}

// Twin of MasterBatchBlock (128 bytes): block b of every state (the layout is shared by the
// batch). d = 2j + 1; voff: first flat element; band_off: first entry of its band output;
// lvl: first level (coefficients at coef[(elem levels + lvl + k) 2 + 0/1]); ntr inflow terms,
// tr[t] = (source block's voff, shift s as i32 bits, offset of its factors f in the element's
// icoef, source block's d), in the order the CPU twin adds them (the source's offset and size
// sit in the term itself: no dependent load of its Block per element).
struct Block {
    d: u32,
    voff: u32,
    band_off: u32,
    lvl: u32,
    ntr: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    tr: array<vec4<u32>, 6>,
}

// Offsets of the vectors of one element in `work`.
struct Offs {
    y: u32,
    a: u32,
    b: u32,
    k1: u32,
    k2: u32,
    k3: u32,
    k4: u32,
    k5: u32,
    k6: u32,
    k7: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
// Per element and level k (all blocks' levels in a row), two vec4: (ure, E, m, dn) and
// (up, h_{k-1}, h_k, Gamma_phi / 2), at coef[(b P.levels + k) 2 + 0/1] (master.rs `Coeffs`,
// computed in f64 on the host).
@group(0) @binding(1) var<storage, read> coef: array<vec4<R>>;
// Save times minus times[0], as (hi, lo) pairs.
@group(0) @binding(2) var<storage, read> save_t: array<vec2<R>>;
@group(0) @binding(3) var<storage, read_write> ctrl: array<Ctrl>;
// SLOTS x P.len per element, element-major.
@group(0) @binding(4) var<storage, read_write> work: array<C>;
// P.out_len per (element, save): the full blocks, or per block the five central diagonals
// q = c - r = -2..2 at band_off + (q + 2) d + min(r, c) (P.out_mode = 1).
@group(0) @binding(5) var<storage, read_write> out: array<C>;
@group(0) @binding(6) var<storage, read> blocks: array<Block>;
// Inflow factors f per element (P.icoef_len each), per (block, term) and source level; with
// SCHED the element's piece table instead (`piece_model`).
@group(0) @binding(7) var<storage, read> icoef: array<R>;

var<workgroup> red: array<vec4<R>, 256>;
var<workgroup> wctrl: Ctrl;


// work[i] where `ok`, else 0 (the load stays in bounds either way).
fn ld(i: u32, alt: u32, ok: bool) -> C {
    return select(C(0.0, 0.0), work[select(alt, i, ok)], ok);
}

// The stencil part of (L rho)_{rc} in the phi = 0 frame for the d x d block at offset v with
// level coefficients from coef[cb], term by term in the order of master.rs `row_interior`:
// D_rc rho_rc - i S_rc + Gamma jm[r+1] jm[c+1] rho_{r+1,c+1} + w jm[r] jm[c] rho_{r-1,c-1};
// neighbours outside the block are 0.
fn lapply(v: u32, cb: u32, n: u32, r: u32, c: u32) -> C {
    let r0 = coef[cb + 2u * r];
    let r1 = coef[cb + 2u * r + 1u];
    let c0 = coef[cb + 2u * c];
    let c1 = coef[cb + 2u * c + 1u];
    let i = v + r * n + c;
    let rm = r > 0u;
    let rp = r + 1u < n;
    let cm = c > 0u;
    let cp = c + 1u < n;
    let z = work[i];
    let dm = r0.z - c0.z;
    let dre = r0.x + c0.x - r1.w * dm * dm;
    let dim = c0.y - r0.y;
    let s = r1.y * ld(i - n, i, rm) + r1.z * ld(i + n, i, rp) - c1.y * ld(i - 1u, i, cm) - c1.z * ld(i + 1u, i, cp);
    let jd = r0.w * c0.w;
    let ju = r1.x * c1.x;
    let bn = ld(i + n + 1u, i, rp && cp);
    let am = ld(i - n - 1u, i, rm && cm);
    return C(
        dre * z.x - dim * z.y + s.y + jd * bn.x + ju * am.x,
        dre * z.y + dim * z.x - s.x + jd * bn.y + ju * am.y,
    );
}

// The model parameters of a scheduled element at one stage time, as the stencil uses them.
struct Mp {
    // omega0, Omega / 2, chi, chi_z
    a: vec4<R>,
    // Gamma, w, Gamma_phi / 2
    b: vec4<R>,
}

// Words per piece of an element's table in `icoef`: the piece's start (time since times[0] as
// hi, lo), then the values at the start of omega0, Omega, chi, chi_z, Gamma, w, Gamma_phi, then
// their rates: value(t) = v + rate tau, tau = t - start (src/model/schedule.rs: affine pieces).
const PIECE: u32 = 16u;

// Start of piece k of the element whose table begins at ib.
fn piece_start(ib: u32, k: u32) -> vec2<R> {
    let o = ib + PIECE * k;
    return vec2<R>(icoef[o], icoef[o + 1u]);
}

// The parameters of piece k at tau after its start (zeros without SCHED: unused).
fn piece_model(ib: u32, k: u32, tau: R) -> Mp {
    if !SCHED {
        return Mp(vec4<R>(0.0, 0.0, 0.0, 0.0), vec4<R>(0.0, 0.0, 0.0, 0.0));
    }
    let o = ib + PIECE * k + 2u;
    let om0 = icoef[o] + icoef[o + 7u] * tau;
    let om = icoef[o + 1u] + icoef[o + 8u] * tau;
    let chi = icoef[o + 2u] + icoef[o + 9u] * tau;
    let chiz = icoef[o + 3u] + icoef[o + 10u] * tau;
    let gam = icoef[o + 4u] + icoef[o + 11u] * tau;
    let w = icoef[o + 5u] + icoef[o + 12u] * tau;
    let gph = icoef[o + 6u] + icoef[o + 13u] * tau;
    return Mp(vec4<R>(om0, 0.5 * om, chi, chiz), vec4<R>(gam, w, 0.5 * gph, 0.0));
}

// lapply for a scheduled element: the same terms in the same order, with the coefficients of
// master.rs `Coeffs::with_rates` formed from the parameters mp and the level numbers at
// coef[cb + 2k] = (m, jpjm, jmjp, jp_{k-1}), coef[cb + 2k + 1] = (jp_k, jm_{k+1}, jm_k, 0)
// (jp_{-1} = 0, jm_{n} = 0). The jump weights are Gamma jm jm and w jm jm, affine in the rates
// (the CPU's (sqrt(Gamma) jm)(sqrt(Gamma) jm) to rounding): no sqrt of a rate.
fn lapply_sched(v: u32, cb: u32, n: u32, r: u32, c: u32, mp: Mp) -> C {
    let r0 = coef[cb + 2u * r];
    let r1 = coef[cb + 2u * r + 1u];
    let c0 = coef[cb + 2u * c];
    let c1 = coef[cb + 2u * c + 1u];
    let i = v + r * n + c;
    let rm = r > 0u;
    let rp = r + 1u < n;
    let cm = c > 0u;
    let cp = c + 1u < n;
    let z = work[i];
    let ur = -0.5 * (mp.b.x * r0.y + mp.b.y * r0.z);
    let uc = -0.5 * (mp.b.x * c0.y + mp.b.y * c0.z);
    let er = mp.a.x * r0.x + mp.a.z * r0.y + mp.a.w * r0.x * r0.x;
    let ec = mp.a.x * c0.x + mp.a.z * c0.y + mp.a.w * c0.x * c0.x;
    let dm = r0.x - c0.x;
    let dre = ur + uc - mp.b.z * dm * dm;
    let dim = ec - er;
    let hd = mp.a.y;
    let s = (hd * r0.w) * ld(i - n, i, rm) + (hd * r1.x) * ld(i + n, i, rp) - (hd * c0.w) * ld(i - 1u, i, cm)
        - (hd * c1.x) * ld(i + 1u, i, cp);
    let jd = (mp.b.x * r1.y) * c1.y;
    let ju = (mp.b.y * r1.z) * c1.z;
    let bn = ld(i + n + 1u, i, rp && cp);
    let am = ld(i - n - 1u, i, rm && cm);
    return C(
        dre * z.x - dim * z.y + s.y + jd * bn.x + ju * am.x,
        dre * z.y + dim * z.x - s.x + jd * bn.y + ju * am.y,
    );
}

// One inflow term t of the block (blocks.rs `BlockOp::apply_packed`):
// f(r + s) f(c + s) (R_src)_{r+s,c+s} for the vector at offset v, 0 where out of range; the
// weight f f is formed first, as on the CPU.
fn xfer(v: u32, ib: u32, t: vec4<u32>, r: u32, c: u32) -> C {
    let ds = t.w;
    let s = bitcast<i32>(t.y);
    let rs = i32(r) + s;
    let cs = i32(c) + s;
    let ok = rs >= 0 && cs >= 0 && rs < i32(ds) && cs < i32(ds);
    let rr = u32(select(0, rs, ok));
    let cc = u32(select(0, cs, ok));
    let wf = icoef[ib + t.z + rr] * icoef[ib + t.z + cc];
    let z = work[v + t.x + rr * ds + cc];
    return select(C(0.0, 0.0), wf * z, ok);
}

// (L rho)_e for the walk's element: the block's stencil, then its inflow terms in order
// (written out, not looped: llvmpipe's loop limit counts every loop iteration).
fn lelem(v: u32, cb: u32, ib: u32, w: Walk, mp: Mp) -> C {
    if SCHED {
        return lapply_sched(v + w.voff, cb + 2u * w.lvl, w.d, w.r, w.c, mp);
    }
    var k = lapply(v + w.voff, cb + 2u * w.lvl, w.d, w.r, w.c);
    if INFLOW && w.ntr > 0u {
        let b = w.b;
        k += xfer(v, ib, blocks[b].tr[0], w.r, w.c);
        if w.ntr > 1u {
            k += xfer(v, ib, blocks[b].tr[1], w.r, w.c);
        }
        if w.ntr > 2u {
            k += xfer(v, ib, blocks[b].tr[2], w.r, w.c);
        }
        if w.ntr > 3u {
            k += xfer(v, ib, blocks[b].tr[3], w.r, w.c);
        }
        if w.ntr > 4u {
            k += xfer(v, ib, blocks[b].tr[4], w.r, w.c);
        }
        if w.ntr > 5u {
            k += xfer(v, ib, blocks[b].tr[5], w.r, w.c);
        }
    }
    return k;
}

// Weights of the real and imaginary part of element (r, c) of a block in the error norm: with
// a Hermitian rho0 the CPU twin integrates each block's packed upper triangle (r <= c; the
// diagonal's imaginary part is identically 0 there), without it every component counts.
fn weights(herm: bool, r: u32, c: u32) -> vec2<R> {
    if herm {
        return vec2<R>(select(R(0.0), R(1.0), r <= c), select(R(0.0), R(1.0), r < c));
    }
    return vec2<R>(1.0, 1.0);
}

// Sum of .xy and max of .zw over the workgroup; call from uniform control flow.
fn reduce(v: vec4<R>, lid: u32) -> vec4<R> {
    // The leading barrier keeps this reduction's writes away from the previous one's readers.
    workgroupBarrier();
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if lid < s {
            let a = red[lid];
            let o = red[lid + s];
            red[lid] = vec4<R>(a.xy + o.xy, max(a.zw, o.zw));
        }
        workgroupBarrier();
    }
    return workgroupUniformLoad(&red[0]);
}

// The element loop of a pass, block by block: in block b, e = voff + lid, voff + lid + WG, ...
// with (r, c) stepped without a division. A loop over the blocks around a loop over a block's
// elements, not one flat loop: llvmpipe runs both sides of a branch under masks, so a block
// search inside the element loop would cost loop iterations for every element (measured: it
// broke the loop budget). WGSL has no closures, so each pass below repeats this double loop
// around its own body; the uniform switch on the pass kind stays outside the loop (a switch
// inside the loop would cost every case for every element).
struct Walk {
    e: u32,
    r: u32,
    c: u32,
    dq: u32,
    dr: u32,
    b: u32,
    d: u32,
    // first element past the block
    end: u32,
    voff: u32,
    lvl: u32,
    ntr: u32,
}

fn walk_start(lid: u32, b: u32) -> Walk {
    let d = blocks[b].d;
    let voff = blocks[b].voff;
    let dq = WG / d;
    let r = lid / d;
    return Walk(voff + lid, r, lid - r * d, dq, WG - dq * d, b, d, voff + d * d, voff, blocks[b].lvl, blocks[b].ntr);
}

fn walk_next(w: ptr<function, Walk>) {
    (*w).e += WG;
    (*w).c += (*w).dr;
    (*w).r += (*w).dq;
    if (*w).c >= (*w).d {
        (*w).c -= (*w).d;
        (*w).r += 1u;
    }
}

// One pass: k_out = L(Y at v_in) for the invocation's elements, and by `st`
//   1: Hairer's d0, d1 sums and a non-finite flag (init, v_in = y, k_out = k1);
//   2..6: the next stage input into nxt, e.g. st 2: Y3 = y + h (a31 k1 + a32 k2), summed in the
//         order of ode.rs `combo_chunk`; st 6 writes ynew;
//   7: the error norm sum of the step (v_in = ynew);
//   8: Hairer's d2 sum (init, v_in = y + h0 f0, k_out = scratch);
//   9: k_out only (the first stage again after a break, SCHED).
// mp: the scheduled element's parameters at the stage's time (SCHED).
fn stage(lid: u32, cb: u32, ib: u32, st: u32, v_in: u32, k_out: u32, nxt: u32, o: Offs, h: R, herm: bool, mp: Mp) -> vec4<R> {
    var acc = vec4<R>(0.0, 0.0, 0.0, 0.0);
    switch st {
        case 2u: {
            for (var b = 0u; b < P.n_blocks; b++) {
                for (var w = walk_start(lid, b); w.e < w.end; walk_next(&w)) {
                    let e = w.e;
                    let k = lelem(v_in, cb, ib, w, mp);
                    work[k_out + e] = k;
                    work[nxt + e] = work[o.y + e] + (h * A31) * work[o.k1 + e] + (h * A32) * k;
                }
            }
        }
        case 3u: {
            for (var b = 0u; b < P.n_blocks; b++) {
                for (var w = walk_start(lid, b); w.e < w.end; walk_next(&w)) {
                    let e = w.e;
                    let k = lelem(v_in, cb, ib, w, mp);
                    work[k_out + e] = k;
                    work[nxt + e] = work[o.y + e] + (h * A41) * work[o.k1 + e] + (h * A42) * work[o.k2 + e]
                        + (h * A43) * k;
                }
            }
        }
        case 4u: {
            for (var b = 0u; b < P.n_blocks; b++) {
                for (var w = walk_start(lid, b); w.e < w.end; walk_next(&w)) {
                    let e = w.e;
                    let k = lelem(v_in, cb, ib, w, mp);
                    work[k_out + e] = k;
                    work[nxt + e] = work[o.y + e] + (h * A51) * work[o.k1 + e] + (h * A52) * work[o.k2 + e]
                        + (h * A53) * work[o.k3 + e] + (h * A54) * k;
                }
            }
        }
        case 5u: {
            for (var b = 0u; b < P.n_blocks; b++) {
                for (var w = walk_start(lid, b); w.e < w.end; walk_next(&w)) {
                    let e = w.e;
                    let k = lelem(v_in, cb, ib, w, mp);
                    work[k_out + e] = k;
                    work[nxt + e] = work[o.y + e] + (h * A61) * work[o.k1 + e] + (h * A62) * work[o.k2 + e]
                        + (h * A63) * work[o.k3 + e] + (h * A64) * work[o.k4 + e] + (h * A65) * k;
                }
            }
        }
        case 6u: {
            for (var b = 0u; b < P.n_blocks; b++) {
                for (var w = walk_start(lid, b); w.e < w.end; walk_next(&w)) {
                    let e = w.e;
                    let k = lelem(v_in, cb, ib, w, mp);
                    work[k_out + e] = k;
                    work[nxt + e] = work[o.y + e] + (h * A71) * work[o.k1 + e] + (h * A73) * work[o.k3 + e]
                        + (h * A74) * work[o.k4 + e] + (h * A75) * work[o.k5 + e] + (h * A76) * k;
                }
            }
        }
        case 7u: {
            for (var b = 0u; b < P.n_blocks; b++) {
                for (var w = walk_start(lid, b); w.e < w.end; walk_next(&w)) {
                    let e = w.e;
                    let k = lelem(v_in, cb, ib, w, mp);
                    work[k_out + e] = k;
                    // err_i = h sum_j E_j k_j / (atol + rtol max(|y_i|, |ynew_i|))
                    let d = (h * E1) * work[o.k1 + e] + (h * E3) * work[o.k3 + e] + (h * E4) * work[o.k4 + e]
                        + (h * E5) * work[o.k5 + e] + (h * E6) * work[o.k6 + e] + (h * E7) * k;
                    let sc = P.atol + P.rtol * max(abs(work[o.y + e]), abs(work[v_in + e]));
                    let q = d / sc;
                    let wt = weights(herm, w.r, w.c);
                    acc.x += wt.x * q.x * q.x + wt.y * q.y * q.y;
                }
            }
        }
        case 1u: {
            for (var b = 0u; b < P.n_blocks; b++) {
                for (var w = walk_start(lid, b); w.e < w.end; walk_next(&w)) {
                    let e = w.e;
                    let k = lelem(v_in, cb, ib, w, mp);
                    work[k_out + e] = k;
                    let y0 = work[o.y + e];
                    let sc = P.atol + P.rtol * abs(y0);
                    let q0 = y0 / sc;
                    let q1 = k / sc;
                    let wt = weights(herm, w.r, w.c);
                    acc.x += wt.x * q0.x * q0.x + wt.y * q0.y * q0.y;
                    acc.y += wt.x * q1.x * q1.x + wt.y * q1.y * q1.y;
                    acc.z = max(acc.z, select(R(1.0), R(0.0), finite(k.x) && finite(k.y)));
                }
            }
        }
        case 9u: {
            for (var b = 0u; b < P.n_blocks; b++) {
                for (var w = walk_start(lid, b); w.e < w.end; walk_next(&w)) {
                    work[k_out + w.e] = lelem(v_in, cb, ib, w, mp);
                }
            }
        }
        default: {
            for (var b = 0u; b < P.n_blocks; b++) {
                for (var w = walk_start(lid, b); w.e < w.end; walk_next(&w)) {
                    let e = w.e;
                    let k = lelem(v_in, cb, ib, w, mp);
                    work[k_out + e] = k;
                    let sc = P.atol + P.rtol * abs(work[o.y + e]);
                    let q = (k - work[o.k1 + e]) / sc;
                    let wt = weights(herm, w.r, w.c);
                    acc.x += wt.x * q.x * q.x + wt.y * q.y * q.y;
                }
            }
        }
    }
    return acc;
}

// Write the invocation's elements of the vector at offset y to save `idx` of element b.
fn save(lid: u32, b: u32, y: u32, idx: u32) {
    let o = (b * P.n_saves + idx) * P.out_len;
    if P.out_mode == 0u {
        for (var e = lid; e < P.len; e += WG) {
            out[o + e] = work[y + e];
        }
    } else {
        for (var b = 0u; b < P.n_blocks; b++) {
            let bo = o + blocks[b].band_off;
            for (var w = walk_start(lid, b); w.e < w.end; walk_next(&w)) {
                let q = i32(w.c) - i32(w.r);
                if q >= -2 && q <= 2 {
                    out[bo + u32(q + 2) * w.d + min(w.r, w.c)] = work[y + w.e];
                }
            }
        }
    }
}

fn offsets(base: u32, cs: Ctrl) -> Offs {
    let nn = P.len;
    return Offs(
        base + cs.slot_y * nn,
        base + cs.slot_a * nn,
        base + cs.slot_b * nn,
        base + cs.slot_k1 * nn,
        base + S_K2 * nn,
        base + S_K3 * nn,
        base + S_K4 * nn,
        base + S_K5 * nn,
        base + S_K6 * nn,
        base + cs.slot_k7 * nn,
    );
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = wid.x;
    if b >= P.batch {
        return;
    }
    if lid == 0u {
        wctrl = ctrl[b];
    }
    var cs = workgroupUniformLoad(&wctrl);
    if cs.status >= ST_DONE {
        return;
    }
    let nn = P.len;
    let base = b * SLOTS * nn;
    let cb = b * 2u * P.levels;
    let ib = b * P.icoef_len;
    let herm = cs.herm != 0u;
    // Number of real components of the CPU twin's state vector.
    let inv_len = select(1.0 / R(2u * nn), 1.0 / R(P.herm_len), herm);
    // Loop iterations (per invocation) of one element pass, a reduction, an attempt and a save;
    // a pass over the blocks runs at most ceil(len / WG) + n_blocks element iterations (each
    // block adds at most one partial round), n_blocks block iterations and n_blocks + 1 loop
    // exits, and is charged 8 more for the exit tests of the switch's other cases (in case
    // llvmpipe enters them under an empty mask); `used` counts against P.loop_budget.
    let per_pass = (nn + WG - 1u) / WG + 3u * P.n_blocks + 9u;
    let red_cost = countTrailingZeros(WG) + 1u;
    // (A scheduled element may recompute its first stage after a break: one pass more.)
    let attempt_cost = 7u * per_pass + red_cost + 2u + select(0u, per_pass, SCHED);
    let save_cost = per_pass + 1u;
    var used = 0u;

    if cs.status == ST_INIT {
        // k1 = f(y0) with Hairer's d0, d1 and the finiteness check of ode.rs.
        let o = offsets(base, cs);
        let tau0 = t_sub(cs.t, piece_start(ib, cs.piece));
        let s = reduce(stage(lid, cb, ib, 1u, o.y, o.k1, 0u, o, 0.0, herm, piece_model(ib, cs.piece, tau0)), lid);
        used += per_pass + red_cost;
        cs.rhs_evals = 1u;
        cs.err_old = 1e-4;
        cs.last_rejected = 0u;
        if s.z > 0.0 {
            cs.status = ST_NONFINITE;
        } else if t_le(save_t[P.n_saves - 1u], cs.t) {
            // Every save is at times[0]: nothing to integrate (no initial step, as ode.rs).
            cs.status = ST_RUN;
        } else if P.h0 > 0.0 {
            cs.h = min(P.h0, P.span);
            cs.status = ST_RUN;
        } else {
            // Hairer's starting step (ode.rs `initial_step`).
            let d0 = sqrt(s.x * inv_len);
            let d1 = sqrt(s.y * inv_len);
            var h0 = 0.01 * d0 / d1;
            if d0 < 1e-5 || d1 < 1e-5 || !(h0 > 0.0) {
                h0 = 1e-6;
            }
            h0 = min(h0, P.span);
            // A = y + h0 f0 (own elements only: no barrier needed before it).
            for (var e = lid; e < nn; e += WG) {
                work[o.a + e] = work[o.y + e] + h0 * work[o.k1 + e];
            }
            storageBarrier();
            let mp2 = piece_model(ib, cs.piece, tau0 + h0);
            let s2 = reduce(stage(lid, cb, ib, 8u, o.a, o.k2, 0u, o, 0.0, herm, mp2), lid);
            used += 2u * per_pass + red_cost;
            cs.rhs_evals += 1u;
            let d2 = sqrt(s2.x * inv_len) / h0;
            let dm = max(d1, d2);
            var h1 = max(h0 * 1e-3, 1e-6);
            if !(dm <= 1e-15) {
                h1 = powc(0.01 / dm, 0.2);
            }
            cs.h = min(min(100.0 * h0, h1), P.span);
            cs.status = ST_RUN;
        }
    }

    var it = 0u;
    loop {
        if cs.status != ST_RUN {
            break;
        }
        // Saves due at t (times[next] <= t, as ode.rs after each step), as far as the budget
        // allows; the rest resume in the next dispatch before any further step.
        loop {
            if cs.next_save >= P.n_saves || !t_le(save_t[cs.next_save], cs.t) || used + save_cost > P.loop_budget {
                break;
            }
            save(lid, b, base + cs.slot_y * nn, cs.next_save);
            used += save_cost;
            cs.next_save += 1u;
        }
        if cs.next_save >= P.n_saves {
            cs.status = ST_DONE;
            break;
        }
        var tgt = save_t[cs.next_save];
        if t_le(tgt, cs.t) || it >= P.attempts || used + attempt_cost > P.loop_budget {
            break;
        }
        // The next break is the target when it lies more than `tiny` before the save (ode.rs);
        // pieces past the element's last have their start beyond the last save.
        let n_pieces = P.icoef_len / PIECE;
        if SCHED && cs.piece + 1u < n_pieces {
            let bt = piece_start(ib, cs.piece + 1u);
            if t_sub(tgt, bt) > P.tiny {
                tgt = bt;
            }
        }
        it += 1u;
        used += attempt_cost;

        var hs = cs.h;
        let rem = t_sub(tgt, cs.t);
        let clipped = 1.01 * hs >= rem;
        if clipped {
            hs = rem;
        }
        if hs <= P.hmin_rel * max(abs(P.t0 + cs.t.x), P.span) {
            cs.h = hs;
            cs.status = ST_SMALL;
            break;
        }
        cs.attempts += 1u;
        if cs.attempts > P.max_steps {
            cs.status = ST_MAXSTEPS;
            break;
        }

        let o = offsets(base, cs);
        // Time of the step's start on its piece (SCHED), and the stages' parameters.
        let tau = t_sub(cs.t, piece_start(ib, cs.piece));
        // Y2 = y + h a21 k1
        for (var e = lid; e < nn; e += WG) {
            work[o.a + e] = work[o.y + e] + (hs * A21) * work[o.k1 + e];
        }
        storageBarrier();
        _ = stage(lid, cb, ib, 2u, o.a, o.k2, o.b, o, hs, herm, piece_model(ib, cs.piece, tau + C2 * hs));
        storageBarrier();
        _ = stage(lid, cb, ib, 3u, o.b, o.k3, o.a, o, hs, herm, piece_model(ib, cs.piece, tau + C3 * hs));
        storageBarrier();
        _ = stage(lid, cb, ib, 4u, o.a, o.k4, o.b, o, hs, herm, piece_model(ib, cs.piece, tau + C4 * hs));
        storageBarrier();
        _ = stage(lid, cb, ib, 5u, o.b, o.k5, o.a, o, hs, herm, piece_model(ib, cs.piece, tau + C5 * hs));
        storageBarrier();
        // k6 = f(Y6); ynew = y + h (a71 k1 + a73 k3 + a74 k4 + a75 k5 + a76 k6) into B
        let mp_end = piece_model(ib, cs.piece, tau + hs);
        _ = stage(lid, cb, ib, 6u, o.a, o.k6, o.b, o, hs, herm, mp_end);
        storageBarrier();
        // k7 = f(ynew) and the error norm
        let s = reduce(stage(lid, cb, ib, 7u, o.b, o.k7, 0u, o, hs, herm, mp_end), lid);
        cs.rhs_evals += 6u;
        let err = sqrt(s.x * inv_len);

        if finite(err) && err <= 1.0 {
            cs.steps += 1u;
            if clipped {
                cs.t = tgt;
            } else {
                cs.t = t_add(cs.t, hs);
            }
            let sy = cs.slot_y;
            cs.slot_y = cs.slot_b;
            cs.slot_b = sy;
            let sk = cs.slot_k1;
            cs.slot_k1 = cs.slot_k7;
            cs.slot_k7 = sk;
            let fac = clamp(powc(err, 0.2 - 0.75 * BETA) / powc(cs.err_old, BETA) / SAFE, 1.0 / FAC_MAX, 1.0 / FAC_MIN);
            cs.err_old = max(err, 1e-4);
            var h_new = hs / fac;
            if cs.last_rejected != 0u {
                h_new = min(h_new, hs);
            }
            cs.last_rejected = 0u;
            if clipped {
                cs.h = max(h_new, cs.h);
            } else {
                cs.h = h_new;
            }
            if SCHED && cs.piece + 1u < n_pieces && t_sub(piece_start(ib, cs.piece + 1u), cs.t) <= P.tiny {
                // Onto a break: the next piece from here on, and k1 = f(t, y) again with its
                // formula (the FSAL stage belongs to the old piece), as ode.rs.
                cs.piece += 1u;
                let o2 = offsets(base, cs);
                let mp1 = piece_model(ib, cs.piece, t_sub(cs.t, piece_start(ib, cs.piece)));
                storageBarrier();
                _ = stage(lid, cb, ib, 9u, o2.y, o2.k1, 0u, o2, 0.0, herm, mp1);
                storageBarrier();
                cs.rhs_evals += 1u;
            }
        } else {
            cs.rejected += 1u;
            cs.last_rejected = 1u;
            if !finite(err) {
                cs.h = hs * 0.1;
            } else {
                cs.h = hs / min(1.0 / FAC_MIN, powc(err, 0.2 - 0.75 * BETA) / SAFE);
            }
            if cs.h <= P.hmin_rel * max(abs(P.t0 + cs.t.x), P.span) {
                cs.status = select(ST_NONFINITE, ST_SMALL, finite(err));
            }
        }
    }

    if lid == 0u {
        ctrl[b] = cs;
    }
}
