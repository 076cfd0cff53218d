// trajectory: Monte-Carlo wave-function trajectories of a collective-only model (PHYSICS.md
// sec. 4), one workgroup of WG invocations per trajectory, invocation `lane` owning the levels
// i = lane + s * WG. The algorithm (waiting time with the norm gap b = r / |psi|^2, Lawson RK4
// with the diagonal part exact from host tables, crossing located on 2^16 quanta per step by a
// cubic Hermite interpolant of the norm) is documented in src/solver/trajectory/mod.rs; the
// CPU twin src/solver/trajectory/twin.rs evaluates every expression below in the same order,
// and every sum over levels as `reduce` does (lane partials in level order, then the tree).
//
// Prepended by the registry: common/philox.wgsl [, common/philox_f64.wgsl],
// trajectory_f32.wgsl | trajectory_f64.wgsl (R, C, R4, draw2, capacities),
// trajectory_wg.wgsl | trajectory_st.wgsl (where vectors live: vl, vs, u_ld, u_st, sync).

// Invocations per trajectory (pipeline constant; a power of two <= 256).
override WG: u32 = 256u;

const QB: u32 = 16u; // trajectory::QUANTUM_BITS
const DEPTH: u32 = 18u; // trajectory::TABLE_DEPTH
const FULL: u32 = 65536u; // trajectory::FULL
const HEAD: u32 = 12u; // trajectory::HEAD_LEN
const RECLEN: u32 = 12u; // trajectory::RECORD_LEN

// Per-level vectors (slots of vl / vs).
const PSI: u32 = 0u; // normalised state at the start of the step
const KVP: u32 = 1u; // V psi
const ACC: u32 = 2u; // the new (unnormalised) state
const KT: u32 = 3u; // stage derivative / jump result
const KVA: u32 = 4u; // V acc
const E1: u32 = 5u; // exp(-i D tau/2)
const E2: u32 = 6u; // exp(-i D tau)

// Twin of backend::gpu::trajectory::TrajParams (48 bytes).
struct TrajParams {
    seed: vec2<u32>,
    first_traj: vec2<u32>,
    ntraj: u32,
    n_levels: u32,
    two_j: u32,
    n_intervals: u32,
    n_saves: u32,
    n_sets: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> P: TrajParams;
// [Gamma, w, Gamma_phi, Re cm, Im cm, Re cp, Im cp, 1/3, 1/6, 0, 0, 0], then (h, q) per step-size set.
@group(0) @binding(1) var<storage, read> rp: array<R>;
// exp(-i D h_set 2^-k) at [(tset * DEPTH + k) * n_levels + i].
@group(0) @binding(2) var<storage, read> table: array<C>;
@group(0) @binding(3) var<storage, read> psi0: array<C>;
// (set, steps) per save interval.
@group(0) @binding(4) var<storage, read> intervals: array<vec2<u32>>;
// RECLEN numbers per (trajectory in this dispatch, save).
@group(0) @binding(5) var<storage, read_write> records: array<R>;

var<workgroup> red: array<R4, 256>;

var<private> lane: u32;
var<private> nlev: u32;
var<private> jr: R;
var<private> cm: C;
var<private> cp: C;

fn cmul(a: C, b: C) -> C {
    return C(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}
// -i z
fn mneg_i(z: C) -> C {
    return C(z.y, -z.x);
}
// a conj(b)
fn mul_conj(a: C, b: C) -> C {
    return C(a.x * b.x + a.y * b.y, a.y * b.x - a.x * b.y);
}
fn norm2(a: C) -> R {
    return a.x * a.x + a.y * a.y;
}
// Re(conj(a) b)
fn re_dot(a: C, b: C) -> R {
    return a.x * b.x + a.y * b.y;
}

fn lvl_m(i: u32) -> R {
    return R(i) - jr;
}
// <m+1|J+|m> = sqrt((j - m)(j + m + 1)), 0 outside the ladder.
fn jp_of(m: R) -> R {
    let x = (jr - m) * (jr + m + 1.0);
    return sqrt(select(R(0.0), x, x > 0.0));
}
fn jpjm(m: R) -> R {
    return (jr + m) * (jr - m + 1.0);
}
fn jmjp(m: R) -> R {
    return (jr - m) * (jr + m + 1.0);
}
// Channel weights per level: Gamma jpjm, w jmjp, Gamma_phi m^2; gamma = their sum.
fn wdown(m: R) -> R {
    return rp[0] * jpjm(m);
}
fn wup(m: R) -> R {
    return rp[1] * jmjp(m);
}
fn wdeph(m: R) -> R {
    return rp[2] * (m * m);
}
fn gam(m: R) -> R {
    return (wdown(m) + wup(m)) + wdeph(m);
}

// (V u)_i = cm jp_{i-1} u_{i-1} + cp jp_i u_{i+1}.
fn vapply(i: u32) -> C {
    let m = lvl_m(i);
    var ul = C(0.0, 0.0);
    var ur = C(0.0, 0.0);
    if i > 0u {
        ul = u_ld(i - 1u);
    }
    if i + 1u < nlev {
        ur = u_ld(i + 1u);
    }
    let t1 = ul * jp_of(m - 1.0);
    let t2 = ur * jp_of(m);
    return cmul(cm, t1) + cmul(cp, t2);
}

// N(u)_i = -i ((V u)_i - c u_i).
fn nstage(i: u32, c: R) -> C {
    return mneg_i(vapply(i) - u_ld(i) * c);
}

// Sum over the workgroup: lane partials, then the pairwise tree; the result is uniform.
fn reduce(x: R4) -> R4 {
    workgroupBarrier();
    red[lane] = x;
    workgroupBarrier();
    var s = WG / 2u;
    loop {
        if s == 0u {
            break;
        }
        if lane < s {
            red[lane] = red[lane] + red[lane + s];
        }
        workgroupBarrier();
        s = s / 2u;
    }
    return workgroupUniformLoad(&red[0]);
}

// E2 = exp(-i D tau), E1 = exp(-i D tau/2) for rq quanta of step-size set `tset`.
fn factors(tset: u32, rq: u32) {
    let base = tset * DEPTH;
    for (var s = 0u; ; s = s + 1u) {
        let i = lane + s * WG;
        if i >= nlev {
            break;
        }
        if rq == FULL {
            vs(E2, s, i, table[base * nlev + i]);
            vs(E1, s, i, table[(base + 1u) * nlev + i]);
        } else {
            var e2 = C(1.0, 0.0);
            var e1 = C(1.0, 0.0);
            for (var p = 0u; p <= QB; p = p + 1u) {
                if ((rq >> p) & 1u) != 0u {
                    e2 = cmul(e2, table[(base + QB - p) * nlev + i]);
                    e1 = cmul(e1, table[(base + QB - p + 1u) * nlev + i]);
                }
            }
            vs(E2, s, i, e2);
            vs(E1, s, i, e1);
        }
    }
}

// One Lawson RK4 step of size tau from PSI (KVP = V psi) into ACC, shift c.
fn lawson(tau: R, c: R) {
    let h2 = tau * 0.5;
    let h3 = tau * rp[7];
    let h6 = tau * rp[8];
    sync();
    for (var s = 0u; ; s = s + 1u) {
        let i = lane + s * WG;
        if i >= nlev {
            break;
        }
        let ps = vl(PSI, s, i);
        let e1 = vl(E1, s, i);
        let e2 = vl(E2, s, i);
        let k1 = mneg_i(vl(KVP, s, i) - ps * c);
        vs(ACC, s, i, cmul(e2, ps) + cmul(e2, k1) * h6);
        u_st(i, cmul(e1, ps) + cmul(e1, k1) * h2);
    }
    sync();
    // k2
    for (var s = 0u; ; s = s + 1u) {
        let i = lane + s * WG;
        if i >= nlev {
            break;
        }
        vs(KT, s, i, nstage(i, c));
    }
    sync();
    for (var s = 0u; ; s = s + 1u) {
        let i = lane + s * WG;
        if i >= nlev {
            break;
        }
        let k = vl(KT, s, i);
        let e1 = vl(E1, s, i);
        vs(ACC, s, i, vl(ACC, s, i) + cmul(e1, k) * h3);
        u_st(i, cmul(e1, vl(PSI, s, i)) + k * h2);
    }
    sync();
    // k3
    for (var s = 0u; ; s = s + 1u) {
        let i = lane + s * WG;
        if i >= nlev {
            break;
        }
        vs(KT, s, i, nstage(i, c));
    }
    sync();
    for (var s = 0u; ; s = s + 1u) {
        let i = lane + s * WG;
        if i >= nlev {
            break;
        }
        let k = vl(KT, s, i);
        let e1 = vl(E1, s, i);
        vs(ACC, s, i, vl(ACC, s, i) + cmul(e1, k) * h3);
        u_st(i, cmul(vl(E2, s, i), vl(PSI, s, i)) + cmul(e1, k) * tau);
    }
    sync();
    // k4
    for (var s = 0u; ; s = s + 1u) {
        let i = lane + s * WG;
        if i >= nlev {
            break;
        }
        vs(ACC, s, i, vl(ACC, s, i) + nstage(i, c) * h6);
    }
}

// u = ACC, KVA = V acc; returns (|acc|^2, acc^dag Gamma acc, Re acc^dag V acc, 0).
fn end_of_step() -> R4 {
    sync();
    for (var s = 0u; ; s = s + 1u) {
        let i = lane + s * WG;
        if i >= nlev {
            break;
        }
        u_st(i, vl(ACC, s, i));
    }
    sync();
    var a = R4(0.0, 0.0, 0.0, 0.0);
    for (var s = 0u; ; s = s + 1u) {
        let i = lane + s * WG;
        if i >= nlev {
            break;
        }
        let kva = vapply(i);
        vs(KVA, s, i, kva);
        let acc = vl(ACC, s, i);
        let a2 = norm2(acc);
        a = a + R4(a2, gam(lvl_m(i)) * a2, re_dot(acc, kva), 0.0);
    }
    return reduce(a);
}

// PSI = u / |u|, KVP = V psi; returns (<Gamma_op>, <V>) of psi.
fn renorm_from_u() -> vec2<R> {
    sync();
    var a = R4(0.0, 0.0, 0.0, 0.0);
    for (var s = 0u; ; s = s + 1u) {
        let i = lane + s * WG;
        if i >= nlev {
            break;
        }
        let kv = vapply(i);
        vs(KT, s, i, kv);
        let x = u_ld(i);
        let a2 = norm2(x);
        a = a + R4(a2, gam(lvl_m(i)) * a2, re_dot(x, kv), 0.0);
    }
    let r = reduce(a);
    let inv = 1.0 / sqrt(r.x);
    let in2 = inv * inv;
    for (var s = 0u; ; s = s + 1u) {
        let i = lane + s * WG;
        if i >= nlev {
            break;
        }
        vs(PSI, s, i, u_ld(i) * inv);
        vs(KVP, s, i, vl(KT, s, i) * inv);
    }
    return vec2<R>(r.y * in2, r.z * in2);
}

// The stencil sums of PSI at save `save` of trajectory slot `t` (trajectory::RECORD_LEN).
fn record(t: u32, save: u32, jumps: u32) {
    sync();
    for (var s = 0u; ; s = s + 1u) {
        let i = lane + s * WG;
        if i >= nlev {
            break;
        }
        u_st(i, vl(PSI, s, i));
    }
    sync();
    var r1 = R4(0.0, 0.0, 0.0, 0.0);
    var r2 = R4(0.0, 0.0, 0.0, 0.0);
    var r3 = R4(0.0, 0.0, 0.0, 0.0);
    for (var s = 0u; ; s = s + 1u) {
        let i = lane + s * WG;
        if i >= nlev {
            break;
        }
        let x = u_ld(i);
        let m = lvl_m(i);
        let a2 = norm2(x);
        r1 = r1 + R4(a2, m * a2, (m * m) * a2, (jpjm(m) + jmjp(m)) * a2);
        var p1 = C(0.0, 0.0);
        var p2 = C(0.0, 0.0);
        var xx = C(0.0, 0.0);
        if i + 1u < nlev {
            let z1 = mul_conj(x, u_ld(i + 1u));
            p1 = z1 * jp_of(m);
            xx = z1 * (jp_of(m) * (m + (m + 1.0)));
        }
        if i + 2u < nlev {
            p2 = mul_conj(x, u_ld(i + 2u)) * (jp_of(m) * jp_of(m + 1.0));
        }
        r2 = r2 + R4(p1.x, p1.y, p2.x, p2.y);
        r3 = r3 + R4(xx.x, xx.y, 0.0, 0.0);
    }
    let s1 = reduce(r1);
    let s2 = reduce(r2);
    let s3 = reduce(r3);
    if lane == 0u {
        let o = (t * P.n_saves + save) * RECLEN;
        records[o] = s1.x;
        records[o + 1u] = s1.y;
        records[o + 2u] = s1.z;
        records[o + 3u] = s1.w;
        records[o + 4u] = s2.x;
        records[o + 5u] = s2.y;
        records[o + 6u] = s2.z;
        records[o + 7u] = s2.w;
        records[o + 8u] = s3.x;
        records[o + 9u] = s3.y;
        records[o + 10u] = R(jumps);
        records[o + 11u] = 0.0;
    }
}

// Cubic Hermite interpolant of |psi|^2 over the trial step at fraction s.
fn hermite(s: R, d0: R, f1: R, d1: R) -> R {
    let s2 = s * s;
    let s3 = s2 * s;
    let h00 = (2.0 * s3 - 3.0 * s2) + 1.0;
    let h10 = (s3 - 2.0 * s2) + s;
    let h01 = 3.0 * s2 - 2.0 * s3;
    let h11 = s3 - s2;
    return ((h00 + h10 * d0) + h01 * f1) + h11 * d1;
}

// Smallest L in 1..=rq with p(L / rq) <= b, by bisection.
fn crossing(rq: u32, tau: R, g0: R, f1: R, g1: R, b: R) -> u32 {
    let d0 = -(g0 * tau);
    let d1 = -(g1 * tau);
    let rqf = R(rq);
    var lo = 0u;
    var hi = rq;
    loop {
        if hi - lo <= 1u {
            break;
        }
        let mid = (lo + hi) >> 1u;
        let s = R(mid) / rqf;
        if hermite(s, d0, f1, d1) <= b {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    return hi;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = wid.x;
    if t >= P.ntraj {
        return;
    }
    lane = li;
    nlev = P.n_levels;
    jr = R(P.two_j) * 0.5;
    cm = C(rp[3], rp[4]);
    cp = C(rp[5], rp[6]);
    variant_init(t);
    var rng = philox_stream(P.seed, philox_add64(P.first_traj, t));

    for (var s = 0u; ; s = s + 1u) {
        let i = lane + s * WG;
        if i >= nlev {
            break;
        }
        u_st(i, psi0[i]);
    }
    var gc = renorm_from_u(); // (<Gamma_op>, <V>) of psi
    var b = draw2(&rng).x;
    var jumps = 0u;
    record(t, 0u, jumps);

    for (var iv = 0u; iv < P.n_intervals; iv = iv + 1u) {
        let ss = intervals[iv];
        let tset = ss.x;
        let h = rp[HEAD + 2u * tset];
        let q = rp[HEAD + 2u * tset + 1u];
        for (var st = 0u; st < ss.y; st = st + 1u) {
            var rq = FULL;
            loop {
                var tau = h;
                if rq != FULL {
                    tau = R(rq) * q;
                }
                factors(tset, rq);
                lawson(tau, gc.y);
                let e = end_of_step();
                if e.x > b {
                    let inv = 1.0 / sqrt(e.x);
                    let in2 = inv * inv;
                    for (var s = 0u; ; s = s + 1u) {
                        let i = lane + s * WG;
                        if i >= nlev {
                            break;
                        }
                        vs(PSI, s, i, vl(ACC, s, i) * inv);
                        vs(KVP, s, i, vl(KVA, s, i) * inv);
                    }
                    gc = vec2<R>(e.y * in2, e.z * in2);
                    b = b / e.x;
                    break;
                }
                // The norm reaches r inside this step: redo it up to the crossing quantum.
                let l = crossing(rq, tau, gc.x, e.x, e.y, b);
                if l < rq {
                    factors(tset, l);
                    lawson(R(l) * q, gc.y);
                    _ = end_of_step();
                }
                var wa = R4(0.0, 0.0, 0.0, 0.0);
                for (var s = 0u; ; s = s + 1u) {
                    let i = lane + s * WG;
                    if i >= nlev {
                        break;
                    }
                    let a2 = norm2(vl(ACC, s, i));
                    let m = lvl_m(i);
                    wa = wa + R4(wdown(m) * a2, wup(m) * a2, wdeph(m) * a2, 0.0);
                }
                let wt = reduce(wa);
                let uu = draw2(&rng);
                let tot = (wt.x + wt.y) + wt.z;
                if tot > 0.0 {
                    let x = uu.x * tot;
                    var ch = 2u;
                    if x < wt.x + wt.y {
                        ch = 1u;
                    }
                    if x < wt.x {
                        ch = 0u;
                    }
                    if ch == 2u && wt.z <= 0.0 {
                        ch = 1u;
                    }
                    if ch == 1u && wt.y <= 0.0 {
                        ch = 0u;
                    }
                    // u holds acc (end_of_step): apply the jump operator.
                    for (var s = 0u; ; s = s + 1u) {
                        let i = lane + s * WG;
                        if i >= nlev {
                            break;
                        }
                        let m = lvl_m(i);
                        var y = C(0.0, 0.0);
                        if ch == 0u {
                            if i + 1u < nlev {
                                y = u_ld(i + 1u) * jp_of(m);
                            }
                        } else if ch == 1u {
                            if i > 0u {
                                y = u_ld(i - 1u) * jp_of(m - 1.0);
                            }
                        } else {
                            y = u_ld(i) * m;
                        }
                        vs(KT, s, i, y);
                    }
                    sync();
                    for (var s = 0u; ; s = s + 1u) {
                        let i = lane + s * WG;
                        if i >= nlev {
                            break;
                        }
                        u_st(i, vl(KT, s, i));
                    }
                    jumps = jumps + 1u;
                }
                gc = renorm_from_u();
                b = uu.y;
                rq = rq - l;
                if rq == 0u {
                    break;
                }
            }
        }
        record(t, iv + 1u, jumps);
    }
}
