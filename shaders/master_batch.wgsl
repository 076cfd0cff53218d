// master_batch: adaptive Dormand-Prince 5(4) integration of the collective master equation
// (PHYSICS.md sections 1-2) for a batch of density matrices of the same N, one workgroup of WG
// invocations per batch element, invocation `lid` owning the matrix elements
// e = lid, lid + WG, ... (row-major, e = r n + c).
//
// The algorithm is that of the CPU twin, src/solver/ode.rs (`integrate_real`: tableau, error
// norm, PI controller, clipping onto the save times, Hairer's initial step) applied to the
// stencil of src/solver/master.rs (`row_interior`, phi = 0 frame: the host rotates rho in and
// out with the gauge e^{i phi k}). Host side and the mapping: src/backend/gpu/master_batch.rs.
//
// Storage per element: SLOTS vectors of n^2 complex numbers (y, two ping-pong stage inputs
// A and B, k1..k7); each stage pass computes k_s = L(Y_s) for the invocation's elements and,
// in the same pass, the next stage input Y_{s+1} (which needs only those elements), so a step
// costs one storage barrier per stage. The slots of y / Y_7 and of k1 / k7 swap on acceptance
// (FSAL) through the slot indices kept in Ctrl.
//
// The integration runs for at most P.attempts step attempts per dispatch; its state lives in
// Ctrl between dispatches, and the host dispatches until every element is done.
//
// Prepended by the registry: master_batch_f32.wgsl | master_batch_f64.wgsl (R, C, R_MAX, powc).

// Invocations per batch element (pipeline constant; a power of two <= 256).
override WG: u32 = 256u;

const SLOTS: u32 = 10u;
const S_K2: u32 = 4u;
const S_K3: u32 = 5u;
const S_K4: u32 = 6u;
const S_K5: u32 = 7u;
const S_K6: u32 = 8u;
const NONE: u32 = 0xffffffffu;

// Ctrl.status (twins of the STATUS_* constants in master_batch.rs).
const ST_INIT: u32 = 0u;
const ST_RUN: u32 = 1u;
const ST_DONE: u32 = 2u;
const ST_SMALL: u32 = 3u;
const ST_MAXSTEPS: u32 = 4u;
const ST_NONFINITE: u32 = 5u;

// Dormand-Prince 5(4) (src/solver/ode.rs). Abstract constants: folded in f64 by the compiler,
// then rounded once to R where used.
const A21 = 1.0 / 5.0;
const A31 = 3.0 / 40.0;
const A32 = 9.0 / 40.0;
const A41 = 44.0 / 45.0;
const A42 = -56.0 / 15.0;
const A43 = 32.0 / 9.0;
const A51 = 19372.0 / 6561.0;
const A52 = -25360.0 / 2187.0;
const A53 = 64448.0 / 6561.0;
const A54 = -212.0 / 729.0;
const A61 = 9017.0 / 3168.0;
const A62 = -355.0 / 33.0;
const A63 = 46732.0 / 5247.0;
const A64 = 49.0 / 176.0;
const A65 = -5103.0 / 18656.0;
const A71 = 35.0 / 384.0;
const A73 = 500.0 / 1113.0;
const A74 = 125.0 / 192.0;
const A75 = -2187.0 / 6784.0;
const A76 = 11.0 / 84.0;
const E1 = 71.0 / 57600.0;
const E3 = -71.0 / 16695.0;
const E4 = 71.0 / 1920.0;
const E5 = -17253.0 / 339200.0;
const E6 = 22.0 / 525.0;
const E7 = -1.0 / 40.0;
const SAFE = 0.9;
const FAC_MIN = 0.2;
const FAC_MAX = 10.0;
const BETA = 0.04;

// Twin of MasterBatchParams<R> (u32 block, then R block; 64 bytes in f32, 96 in f64).
struct Params {
    n: u32,
    nn: u32,
    batch: u32,
    n_saves: u32,
    out_mode: u32,
    out_len: u32,
    attempts: u32,
    max_steps: u32,
    rtol: R,
    atol: R,
    h0: R,
    t0: R,
    span: R,
    hmin_rel: R,
    _pad0: R,
    _pad1: R,
}

// Twin of MasterBatchCtrl<R> (80 bytes in f32, 96 in f64). `t` is the time elapsed since
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
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
// Per element and level k, two vec4: (ure, e, m, dn) and (up, h_{k-1}, h_k, Gamma_phi / 2),
// at coef[(b n + k) 2 + 0/1] (master.rs `Coeffs`, computed in f64 on the host).
@group(0) @binding(1) var<storage, read> coef: array<vec4<R>>;
// Save times minus times[0], as (hi, lo) pairs.
@group(0) @binding(2) var<storage, read> save_t: array<vec2<R>>;
@group(0) @binding(3) var<storage, read_write> ctrl: array<Ctrl>;
// SLOTS x n^2 per element, element-major.
@group(0) @binding(4) var<storage, read_write> work: array<C>;
// P.out_len per (element, save): the full matrix, or the five central diagonals
// q = c - r = -2..2 at (q + 2) n + min(r, c) (P.out_mode = 1).
@group(0) @binding(5) var<storage, read_write> out: array<C>;

var<workgroup> red: array<vec4<R>, 256>;
var<workgroup> wctrl: Ctrl;

fn finite(x: R) -> bool {
    return abs(x) <= R_MAX;
}

// Knuth's TwoSum: s + e = a + b exactly.
fn two_sum(a: R, b: R) -> vec2<R> {
    let s = a + b;
    let bb = s - a;
    return vec2<R>(s, (a - (s - bb)) + (b - bb));
}

// Time pair + step.
fn t_add(t: vec2<R>, h: R) -> vec2<R> {
    let s = two_sum(t.x, h);
    let lo = t.y + s.y;
    let hi = s.x + lo;
    return vec2<R>(hi, lo - (hi - s.x));
}

fn t_le(a: vec2<R>, b: vec2<R>) -> bool {
    return a.x < b.x || (a.x == b.x && a.y <= b.y);
}

// a - b as one R.
fn t_sub(a: vec2<R>, b: vec2<R>) -> R {
    return (a.x - b.x) + (a.y - b.y);
}

// rho_{r,c} of the vector at offset v, 0 outside the matrix.
fn nb(v: u32, r: i32, c: i32) -> C {
    let n = i32(P.n);
    let inside = r >= 0 && r < n && c >= 0 && c < n;
    let idx = select(0, r * n + c, inside);
    return select(C(0.0, 0.0), work[v + u32(idx)], inside);
}

// (L rho)_{rc} in the phi = 0 frame, term by term in the order of master.rs `row_interior`:
// D_rc rho_rc - i S_rc + Gamma jm[r+1] jm[c+1] rho_{r+1,c+1} + w jm[r] jm[c] rho_{r-1,c-1}.
fn lapply(v: u32, cb: u32, r: u32, c: u32) -> C {
    let r0 = coef[cb + 2u * r];
    let r1 = coef[cb + 2u * r + 1u];
    let c0 = coef[cb + 2u * c];
    let c1 = coef[cb + 2u * c + 1u];
    let ri = i32(r);
    let ci = i32(c);
    let z = work[v + r * P.n + c];
    let dm = r0.z - c0.z;
    let dre = r0.x + c0.x - r1.w * dm * dm;
    let dim = c0.y - r0.y;
    let s = r1.y * nb(v, ri - 1, ci) + r1.z * nb(v, ri + 1, ci) - c1.y * nb(v, ri, ci - 1) - c1.z * nb(v, ri, ci + 1);
    let jd = r0.w * c0.w;
    let ju = r1.x * c1.x;
    let bn = nb(v, ri + 1, ci + 1);
    let am = nb(v, ri - 1, ci - 1);
    return C(
        dre * z.x - dim * z.y + s.y + jd * bn.x + ju * am.x,
        dre * z.y + dim * z.x - s.x + jd * bn.y + ju * am.y,
    );
}

// Weights of the real and imaginary part of element (r, c) in the error norm: with a
// Hermitian rho0 the CPU twin integrates the packed upper triangle (r <= c; the diagonal's
// imaginary part is identically 0 there), without it every component counts.
fn weights(herm: bool, r: u32, c: u32) -> vec2<R> {
    if herm {
        return vec2<R>(select(0.0, 1.0, r <= c), select(0.0, 1.0, r < c));
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

// Stage pass: k_out = L(Y at v_in) for the invocation's elements, then, when nxt != NONE,
// the next stage input nxt = y + sum_j cf[j] k_j (j < m; ks[m - 1] is k_out itself), the sum
// in the order of ode.rs `combo_chunk`. mode 1 also accumulates the error norm of the step
// (needs ks = k1, k3, k4, k5, k6 and ynew at v_in; ef = h E), mode 2 the sums of Hairer's d0
// and d1 and a non-finite flag, mode 3 the sum of d2 (ks[0] = f0).
fn pass(
    lid: u32,
    cb: u32,
    v_in: u32,
    k_out: u32,
    y: u32,
    nxt: u32,
    ks_in: array<u32, 6>,
    cf_in: array<R, 6>,
    m: u32,
    mode: u32,
    ef_in: array<R, 6>,
    herm: bool,
) -> vec4<R> {
    var ks = ks_in;
    var cf = cf_in;
    var ef = ef_in;
    let n = P.n;
    var acc4 = vec4<R>(0.0, 0.0, 0.0, 0.0);
    for (var e = lid; e < P.nn; e += WG) {
        let r = e / n;
        let c = e - r * n;
        let k = lapply(v_in, cb, r, c);
        work[k_out + e] = k;
        if nxt != NONE {
            var a = work[y + e];
            for (var j = 0u; j + 1u < m; j++) {
                a += cf[j] * work[ks[j] + e];
            }
            a += cf[m - 1u] * k;
            work[nxt + e] = a;
        }
        if mode == 1u {
            // err_i = sum_j h E_j k_j / (atol + rtol max(|y_i|, |ynew_i|))
            var d = C(0.0, 0.0);
            for (var j = 0u; j < 5u; j++) {
                d += ef[j] * work[ks[j] + e];
            }
            d += ef[5] * k;
            let y0 = work[y + e];
            let y1 = work[v_in + e];
            let sc = P.atol + P.rtol * max(abs(y0), abs(y1));
            let q = d / sc;
            let w = weights(herm, r, c);
            acc4.x += w.x * q.x * q.x + w.y * q.y * q.y;
        } else if mode == 2u {
            let y0 = work[y + e];
            let sc = P.atol + P.rtol * abs(y0);
            let q0 = y0 / sc;
            let q1 = k / sc;
            let w = weights(herm, r, c);
            acc4.x += w.x * q0.x * q0.x + w.y * q0.y * q0.y;
            acc4.y += w.x * q1.x * q1.x + w.y * q1.y * q1.y;
            acc4.z = max(acc4.z, select(1.0, 0.0, finite(k.x) && finite(k.y)));
        } else if mode == 3u {
            let y0 = work[y + e];
            let sc = P.atol + P.rtol * abs(y0);
            let q = (k - work[ks[0] + e]) / sc;
            let w = weights(herm, r, c);
            acc4.x += w.x * q.x * q.x + w.y * q.y * q.y;
        }
    }
    return acc4;
}

// Write the invocation's elements of y to save `idx` of element b.
fn save(lid: u32, b: u32, y: u32, idx: u32) {
    let n = P.n;
    let o = (b * P.n_saves + idx) * P.out_len;
    for (var e = lid; e < P.nn; e += WG) {
        if P.out_mode == 0u {
            out[o + e] = work[y + e];
        } else {
            let r = e / n;
            let c = e - r * n;
            let q = i32(c) - i32(r);
            if q >= -2 && q <= 2 {
                out[o + u32(q + 2) * n + min(r, c)] = work[y + e];
            }
        }
    }
}

// Saves due at the elapsed time cs.t (times[next] <= t), as ode.rs does after each step.
fn save_due(lid: u32, b: u32, cs: ptr<function, Ctrl>) {
    loop {
        if (*cs).next_save >= P.n_saves {
            break;
        }
        if !t_le(save_t[(*cs).next_save], (*cs).t) {
            break;
        }
        save(lid, b, (*cs).slot_y, (*cs).next_save);
        (*cs).next_save += 1u;
    }
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
    let nn = P.nn;
    let base = b * SLOTS * nn;
    let cb = b * 2u * P.n;
    let herm = cs.herm != 0u;
    // Number of real components of the CPU twin's state vector.
    let inv_len = select(1.0 / R(2u * nn), 1.0 / R(P.n * (P.n + 1u)), herm);
    let z6 = array<R, 6>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let none6 = array<u32, 6>(0u, 0u, 0u, 0u, 0u, 0u);

    if cs.status == ST_INIT {
        // k1 = f(y0), with Hairer's d0, d1 and the finiteness check of ode.rs.
        let y = base + cs.slot_y * nn;
        let k1 = base + cs.slot_k1 * nn;
        let s = reduce(pass(lid, cb, y, k1, y, NONE, none6, z6, 0u, 2u, z6, herm), lid);
        cs.rhs_evals = 1u;
        if s.z > 0.0 {
            cs.status = ST_NONFINITE;
        } else {
            save_due(lid, b, &cs);
            if cs.next_save >= P.n_saves {
                cs.status = ST_DONE;
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
                let a = base + cs.slot_a * nn;
                for (var e = lid; e < nn; e += WG) {
                    work[a + e] = work[y + e] + h0 * work[k1 + e];
                }
                storageBarrier();
                let k2 = base + S_K2 * nn;
                let ks = array<u32, 6>(k1, 0u, 0u, 0u, 0u, 0u);
                let s2 = reduce(pass(lid, cb, a, k2, y, NONE, ks, z6, 0u, 3u, z6, herm), lid);
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
        cs.err_old = 1e-4;
        cs.last_rejected = 0u;
    }

    for (var it = 0u; it < P.attempts && cs.status == ST_RUN; it++) {
        let target = save_t[cs.next_save];
        var hs = cs.h;
        let rem = t_sub(target, cs.t);
        let clipped = 1.01 * hs >= rem;
        if clipped {
            hs = rem;
        }
        let hmin = P.hmin_rel * max(abs(P.t0 + cs.t.x), P.span);
        if hs <= hmin {
            cs.h = hs;
            cs.status = ST_SMALL;
            break;
        }
        cs.attempts += 1u;
        if cs.attempts > P.max_steps {
            cs.status = ST_MAXSTEPS;
            break;
        }

        let y = base + cs.slot_y * nn;
        let a = base + cs.slot_a * nn;
        let bb = base + cs.slot_b * nn;
        let k1 = base + cs.slot_k1 * nn;
        let k2 = base + S_K2 * nn;
        let k3 = base + S_K3 * nn;
        let k4 = base + S_K4 * nn;
        let k5 = base + S_K5 * nn;
        let k6 = base + S_K6 * nn;
        let k7 = base + cs.slot_k7 * nn;

        // Y2 = y + h a21 k1
        for (var e = lid; e < nn; e += WG) {
            work[a + e] = work[y + e] + (hs * A21) * work[k1 + e];
        }
        storageBarrier();
        // k2 = f(Y2); Y3 = y + h (a31 k1 + a32 k2)
        pass(lid, cb, a, k2, y, bb, array<u32, 6>(k1, k2, 0u, 0u, 0u, 0u),
             array<R, 6>(hs * A31, hs * A32, 0.0, 0.0, 0.0, 0.0), 2u, 0u, z6, herm);
        storageBarrier();
        pass(lid, cb, bb, k3, y, a, array<u32, 6>(k1, k2, k3, 0u, 0u, 0u),
             array<R, 6>(hs * A41, hs * A42, hs * A43, 0.0, 0.0, 0.0), 3u, 0u, z6, herm);
        storageBarrier();
        pass(lid, cb, a, k4, y, bb, array<u32, 6>(k1, k2, k3, k4, 0u, 0u),
             array<R, 6>(hs * A51, hs * A52, hs * A53, hs * A54, 0.0, 0.0), 4u, 0u, z6, herm);
        storageBarrier();
        pass(lid, cb, bb, k5, y, a, array<u32, 6>(k1, k2, k3, k4, k5, 0u),
             array<R, 6>(hs * A61, hs * A62, hs * A63, hs * A64, hs * A65, 0.0), 5u, 0u, z6, herm);
        storageBarrier();
        // k6 = f(Y6); ynew = y + h (a71 k1 + a73 k3 + a74 k4 + a75 k5 + a76 k6) into B
        pass(lid, cb, a, k6, y, bb, array<u32, 6>(k1, k3, k4, k5, k6, 0u),
             array<R, 6>(hs * A71, hs * A73, hs * A74, hs * A75, hs * A76, 0.0), 5u, 0u, z6, herm);
        storageBarrier();
        // k7 = f(ynew) and the error norm
        let s = reduce(pass(lid, cb, bb, k7, y, NONE, array<u32, 6>(k1, k3, k4, k5, k6, 0u), z6, 0u, 1u,
             array<R, 6>(hs * E1, hs * E3, hs * E4, hs * E5, hs * E6, hs * E7), herm), lid);
        cs.rhs_evals += 6u;
        let err = sqrt(s.x * inv_len);

        if finite(err) && err <= 1.0 {
            cs.steps += 1u;
            if clipped {
                cs.t = target;
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
            save_due(lid, b, &cs);
            if cs.next_save >= P.n_saves {
                cs.status = ST_DONE;
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
