// trajectory: Monte-Carlo wave-function trajectories (PHYSICS.md sec. 4), collective models
// (one irrep, j = N/2) and models with single-atom rates (irrep-changing jumps: the trajectory
// carries its current 2j, its vectors are sized for j = N/2 and hold the levels i = m + j of
// the current irrep). The body shared by every variant: WG invocations per trajectory,
// invocation `lane` owning the levels i = lane + s * WG (WG = 1 in the lane variant: one
// invocation per trajectory, all levels). The algorithm (waiting time with the norm gap b = r / |psi|^2,
// Lawson RK4 with the diagonal part exact from host tables, crossing located on 2^16 quanta per
// step by a cubic Hermite interpolant of the norm) is documented in
// src/solver/trajectory/mod.rs; the CPU twin src/solver/trajectory/twin.rs evaluates every
// expression below in the same order, and every sum over levels as `reduce` does (lane
// partials in level order, then the pairwise tree over the WG lanes).
//
// Time-dependent parameters (P.sched != 0): the twin is Twin::run_sched
// (src/solver/trajectory/twin/scheduled.rs); the segments replace the save intervals, the
// segments' diagonals the exponential table, and every factor is computed by `cexp` (section
// "Scheduled runs" below; module doc of src/solver/trajectory/sched.rs).
//
// Prepended by the registry: common/status.wgsl (ST_INIT, ST_RUN, ST_DONE: the phase of a
// trajectory's resumable state), common/philox.wgsl [, common/philox_f64.wgsl],
// trajectory_f32.wgsl | trajectory_f64.wgsl (R, C, R4, draw2, capacities), then one variant
// (where vectors live and how lanes cooperate: WG, vl, vs, u_ld, u_st, sync, reduce,
// variant_init and the entry point): trajectory_lane.wgsl | trajectory_wg.wgsl |
// trajectory_st.wgsl.

const QB: u32 = 16u; // trajectory::QUANTUM_BITS
const DEPTH: u32 = 18u; // trajectory::TABLE_DEPTH
const FULL: u32 = 65536u; // trajectory::FULL
const HEAD: u32 = 15u; // trajectory::HEAD_LEN
const RECLEN: u32 = 12u; // trajectory::RECORD_LEN

// Per-level vectors (slots of vl / vs).
const PSI: u32 = 0u; // normalised state at the start of the step
const KVP: u32 = 1u; // V psi
const ACC: u32 = 2u; // the new (unnormalised) state
const KT: u32 = 3u; // stage derivative / jump result
const KVA: u32 = 4u; // V acc
const E1: u32 = 5u; // exp(-i D tau/2)
const E2: u32 = 6u; // exp(-i D tau)
const E3: u32 = 4u; // scheduled runs: the second half step's factor, in KVA's slot during lawson

// Scheduled runs (solver::trajectory::sched): reals of the `cexp` constants and per segment,
// and a quarter quantum in steps (2^-18).
const CEXP_LEN: u32 = 20u; // sched::cexp_constants().len()
const SEG_REALS: u32 = 12u; // sched::SEG_REALS
const QQ = 0.000003814697265625;

// Twin of backend::gpu::trajectory::TrajParams (64 bytes).
struct TrajParams {
    seed: vec2<u32>,
    first_traj: vec2<u32>,
    ntraj: u32,
    // N + 1: the vectors' length (stride of every per-level buffer) and the top irrep's ladder.
    n_levels: u32,
    // N: 2j of the initial irrep.
    two_j: u32,
    n_intervals: u32,
    n_saves: u32,
    n_sets: u32,
    // Loop iterations one invocation may spend in this dispatch (lavapipe: module doc of
    // backend::gpu::trajectory); the trajectory suspends before exceeding it.
    budget: u32,
    // Always 0: an opaque value for inv_sqrt.
    zero: u32,
    // Phase changes the switching classifier keeps per trajectory (0: no classifier).
    max_events: u32,
    // Schedules (time-dependent parameters; `sched_factors`): 0 constant parameters; bit 0 a
    // scheduled run (`intervals` holds the segments, `table` their diagonals), bit 1 the
    // stencil or the rates scheduled (V psi and <Gamma_op> recomputed at every step's start).
    sched: u32,
    // Offset in rp of the scheduled block: the `cexp` constants, then SEG_REALS per segment.
    sched_rp: u32,
    pad0: u32,
}

@group(0) @binding(0) var<uniform> P: TrajParams;
// [Gamma, w, Gamma_phi, Re cm, Im cm, Re cp, Im cp, 1/3, 1/6, 1, 2, 3, alpha, lo, hi] (the last
// three: the switching classifier's), then (h, q) per
// step-size set, then per irrep ji = (N - 2j)/2 its nine rates (Plan::kernel_rp):
// the collective channels' [Gamma, w, Gamma_phi] + a0 parts, and A-, A+, B-, B+, D-, D+.
@group(0) @binding(1) var<storage, read> rp: array<R>;
// exp(-i D_top h_set 2^-k) of the top irrep at [(tset * DEPTH + k) * n_levels + m + N/2], then
// (single-atom rates) the irrep scales S at [n_sets * DEPTH * n_levels + row * nirr + ji]
// (Plan::kernel_table): irrep j's entry is S_j * top entry of the same m (`tab`).
@group(0) @binding(2) var<storage, read> table: array<C>;
@group(0) @binding(3) var<storage, read> psi0: array<C>;
// (set, steps) per save interval; scheduled runs: (save index, 0 for none; steps) per segment.
@group(0) @binding(4) var<storage, read> intervals: array<vec2<u32>>;
// RECLEN numbers per (trajectory in this dispatch, save).
@group(0) @binding(5) var<storage, read_write> records: array<R>;
// Resumable state per trajectory slot: [phase (ST_INIT new, ST_RUN suspended, ST_DONE), interval, step,
// remaining quanta, jumps, draw lo, draw hi, 2j] and [b, <Gamma_op>, <V>, smoothed Jz].
@group(0) @binding(7) var<storage, read_write> tstate: array<u32>;
@group(0) @binding(8) var<storage, read_write> rstate: array<R>;
// status[0]: trajectories of this dispatch that suspended unfinished.
@group(0) @binding(9) var<storage, read_write> status: array<atomic<u32>>;
// Switching classifier (P.max_events > 0; `classify`): per trajectory slot t, P.max_events + 2
// words from t * (P.max_events + 2): [phase changes so far, phase (0 undefined, 1 lower,
// 2 upper), the first P.max_events changes as 2 save + upper].
@group(0) @binding(11) var<storage, read_write> events: array<u32>;
// The classifier's smoothed Jz (lane 0's is the one used and persisted).
var<private> sm_jz: R;

var<private> lane: u32;
// The current irrep: 2j, its ladder length 2j + 1, j, its index ji = (N - 2j)/2, the offset of
// its nine rates in rp, and whether any irrep-changing rate is positive (the twin's `ind_on`).
var<private> tj: u32;
var<private> nlev: u32;
var<private> jr: R;
var<private> ji: u32;
var<private> rb: u32;
var<private> ind_on: bool;
var<private> cm: C;
var<private> cp: C;
// The current irrep's collective rates Gamma, w, Gamma_phi (with a0 parts): rp[rb..rb + 3], or
// a scheduled run's values at the current step's midpoint (`sched_enter`).
var<private> rg: vec3<R>;

// Enter irrep 2j = two_j.
fn set_irrep(two_j: u32) {
    tj = two_j;
    nlev = two_j + 1u;
    jr = R(two_j) * 0.5;
    ji = (P.two_j - two_j) / 2u;
    rb = HEAD + 2u * P.n_sets + 9u * ji;
    rg = vec3<R>(rp[rb], rp[rb + 1u], rp[rb + 2u]);
    ind_on = rp[rb + 3u] > 0.0 || rp[rb + 4u] > 0.0 || rp[rb + 5u] > 0.0 || rp[rb + 6u] > 0.0
        || rp[rb + 7u] > 0.0 || rp[rb + 8u] > 0.0;
}

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

// 1 / sqrt(x), rounded twice (sqrt, then the reciprocal) as in the twin. The select on a
// uniform that is always 0 hides the pattern from Mesa's algebraic optimiser, which would
// otherwise fuse 1 / sqrt(x) into an approximate reciprocal square root (rsqrtps + one
// Newton step on lavapipe: not correctly rounded).
fn inv_sqrt(x: R) -> R {
    let s = select(sqrt(x), R(1.0), P.zero == 1u);
    return 1.0 / s;
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
// Channel weights per level: Gamma jpjm, w jmjp, Gamma_phi m^2 (the current irrep's rates);
// gamma = their sum, plus the irrep-changing weights where any is on.
fn wdown(m: R) -> R {
    return rg.x * jpjm(m);
}
fn wup(m: R) -> R {
    return rg.y * jmjp(m);
}
fn wdeph(m: R) -> R {
    return rg.z * (m * m);
}
// |<j'm'|A|jm>|^2 of the irrep-changing channel k (A-, A+, B-, B+, D-, D+; twin `prods` in
// Twin::new), floored at 0: integers, exact in f32 below N = 4094 (and the twin rounds alike).
fn iprod(k: u32, m: R) -> R {
    var x: R;
    switch k {
        case 0u: {
            x = (jr + m) * (jr + m - 1.0);
        }
        case 1u: {
            x = (jr - m + 1.0) * (jr - m + 2.0);
        }
        case 2u: {
            x = (jr - m) * (jr - m - 1.0);
        }
        case 3u: {
            x = (jr + m + 1.0) * (jr + m + 2.0);
        }
        case 4u: {
            x = jr * jr - m * m;
        }
        default: {
            x = (jr + 1.0) * (jr + 1.0) - m * m;
        }
    }
    return select(R(0.0), x, x > 0.0);
}
// Weight rate_k |<j'm'|A_k|jm>|^2 of channel k at level m.
fn wind(k: u32, m: R) -> R {
    return rp[rb + 3u + k] * iprod(k, m);
}
fn gam(m: R) -> R {
    let c = (wdown(m) + wup(m)) + wdeph(m);
    if !ind_on {
        return c;
    }
    return c + (((wind(0u, m) + wind(1u, m)) + (wind(2u, m) + wind(3u, m))) + (wind(4u, m) + wind(5u, m)));
}

// Table row `row` at level i of the current irrep: the top irrep's entry of the same m, times
// the irrep's scale below the top (single-atom rates only).
fn tab(row: u32, i: u32) -> C {
    let e = table[row * P.n_levels + i + ji];
    if ji == 0u {
        return e;
    }
    let nirr = P.two_j / 2u + 1u;
    return cmul(table[P.n_sets * DEPTH * P.n_levels + row * nirr + ji], e);
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

// Multiply (e2, e1) by the table entries of bit p of rq (quantum 2^p: table rows QB - p and
// QB - p + 1), lowest bit first. Unrolled below: a loop would spend lavapipe's loop budget.
fn compose_bit(e: ptr<function, array<C, 2>>, rq: u32, p: u32, base: u32, i: u32) {
    if ((rq >> p) & 1u) != 0u {
        (*e)[0] = cmul((*e)[0], tab(base + QB - p, i));
        (*e)[1] = cmul((*e)[1], tab(base + QB - p + 1u, i));
    }
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
            vs(E2, s, i, tab(base, i));
            vs(E1, s, i, tab(base + 1u, i));
        } else {
            var e = array<C, 2>(C(1.0, 0.0), C(1.0, 0.0));
            compose_bit(&e, rq, 0u, base, i);
            compose_bit(&e, rq, 1u, base, i);
            compose_bit(&e, rq, 2u, base, i);
            compose_bit(&e, rq, 3u, base, i);
            compose_bit(&e, rq, 4u, base, i);
            compose_bit(&e, rq, 5u, base, i);
            compose_bit(&e, rq, 6u, base, i);
            compose_bit(&e, rq, 7u, base, i);
            compose_bit(&e, rq, 8u, base, i);
            compose_bit(&e, rq, 9u, base, i);
            compose_bit(&e, rq, 10u, base, i);
            compose_bit(&e, rq, 11u, base, i);
            compose_bit(&e, rq, 12u, base, i);
            compose_bit(&e, rq, 13u, base, i);
            compose_bit(&e, rq, 14u, base, i);
            compose_bit(&e, rq, 15u, base, i);
            compose_bit(&e, rq, 16u, base, i);
            vs(E2, s, i, e[0]);
            vs(E1, s, i, e[1]);
        }
    }
}

// One Lawson RK4 step of size tau from PSI (KVP = V psi) into ACC, shift c. The second half
// step's factor is slot `eb` (E1: the same as the first half; scheduled runs: E3, carried by
// KVA's slot, which is free until end_of_step); with `tv`, the stages k2, k3 take the stencil
// `vmid` and k4 `vend` (the caller restores cm after).
fn lawson(tau: R, c: R, eb: u32, tv: bool, vmid: C, vend: C) {
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
    if tv {
        set_cm(vmid);
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
        vs(ACC, s, i, vl(ACC, s, i) + cmul(vl(eb, s, i), k) * h3);
        u_st(i, cmul(vl(E1, s, i), vl(PSI, s, i)) + k * h2);
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
        let e1 = vl(eb, s, i);
        vs(ACC, s, i, vl(ACC, s, i) + cmul(e1, k) * h3);
        u_st(i, cmul(vl(E2, s, i), vl(PSI, s, i)) + cmul(e1, k) * tau);
    }
    if tv {
        set_cm(vend);
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
    let inv = inv_sqrt(r.x);
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
        records[o + 11u] = R(tj); // 2j of the current irrep
        if P.max_events > 0u {
            classify(t, save, s1.x, s1.y);
        }
    }
}

// The switching classifier at save `save` of trajectory slot t (solver::trajectory module doc,
// "Switching classifier"; twin: PhaseLog::update): Jz = S_m (1 / |psi|^2) of the record just
// written, smoothed (s = x at save 0, s + alpha (x - s) after), hysteresis on [lo, hi], and a
// phase change logged as 2 save + upper (counted past the capacity: the host reports overflow).
fn classify(t: u32, save: u32, nrm: R, sm: R) {
    let x = sm * (1.0 / nrm);
    if save == 0u {
        sm_jz = x;
    } else {
        sm_jz = sm_jz + rp[12] * (x - sm_jz);
    }
    let eb = t * (P.max_events + 2u);
    let ph = events[eb + 1u];
    var np = ph;
    if sm_jz > rp[14] {
        np = 2u;
    }
    if sm_jz < rp[13] {
        np = 1u;
    }
    if np != ph {
        let c = events[eb];
        if c < P.max_events {
            events[eb + 2u + c] = save * 2u + (np - 1u);
        }
        events[eb] = c + 1u;
        events[eb + 1u] = np;
    }
}

// Smallest L in 1..=rq with p(L / rq) <= b, by bisection, where p is the cubic Hermite
// interpolant of |psi|^2 over the trial step (p(0) = 1, p'(0) = -g0 tau, p(1) = f1,
// p'(1) = -g1 tau) in Horner form, p(s) = 1 + s (c1 + s (c2 + s c3)). The constants 1, 2, 3
// come from rp (trajectory::HEAD_LEN): with literals, Mesa's algebraic optimiser reassociates
// sums around them (e.g. (2 s^3 - 3 s^2) + 1 -> (2 s^3 + 1) - 3 s^2) and the result differs
// from the twin in the last bit.
fn crossing(rq: u32, tau: R, g0: R, f1: R, g1: R, b: R) -> u32 {
    let one = rp[9];
    let two = rp[10];
    let three = rp[11];
    let d0 = -(g0 * tau);
    let d1 = -(g1 * tau);
    let c2 = (three * (f1 - one) - two * d0) - d1;
    let c3 = (two * (one - f1) + d0) + d1;
    // Divisions are written as a reciprocal and a product: Mesa lowers a / b to a * rcp(b),
    // and the twin must round the same way.
    let rinv = 1.0 / R(rq);
    var lo = 0u;
    var hi = rq;
    loop {
        if hi - lo <= 1u {
            break;
        }
        let mid = (lo + hi) >> 1u;
        let s = R(mid) * rinv;
        let p = one + s * (d0 + s * (c2 + s * c3));
        if p <= b {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    return hi;
}

// ---- Scheduled runs (time-dependent parameters; module doc of solver::trajectory::sched and
// its twin src/solver/trajectory/twin/scheduled.rs). A step n of segment iv runs the twin's
// time-dependent Lawson RK4: every scheduled coefficient is a + b ds, ds = (n + p4 2^-18) h the
// time since the segment's start of the point p4 quarter-quanta into the step; the factors
// E(tau) at the sub-step's midpoint and E_a, E_b (tau/2) at its quarter points come from the
// segment's diagonal (table rows 2 iv, 2 iv + 1: (e_a, g_a), (e_b, g_b) per level) through
// `cexp`, the stencil at the stage times from `cm_at`, the rates frozen at the step's
// midpoint. Only +, -, *, floor and comparisons: exact in f64 on every adapter (DESIGN.md).

// The current segment's reals in rp, and its step h.
var<private> seg_rp: u32;
var<private> seg_h: R;

fn set_cm(c: C) {
    cm = c;
    cp = C(c.x, -c.y);
}

fn seg_ds(st: u32, p4: u32) -> R {
    return (R(st) + R(p4) * QQ) * seg_h;
}

// The stencil coefficient cm at p4 quarter-quanta into step st.
fn cm_at(st: u32, p4: u32) -> C {
    let d = seg_ds(st, p4);
    return C(rp[seg_rp + 8u], rp[seg_rp + 9u]) + C(rp[seg_rp + 10u], rp[seg_rp + 11u]) * d;
}

// Enter step st of segment iv: its reals, h, and the rates at the step's midpoint.
fn sched_enter(iv: u32, st: u32) {
    seg_rp = P.sched_rp + CEXP_LEN + SEG_REALS * iv;
    seg_h = rp[seg_rp];
    let d = seg_ds(st, 2u * FULL);
    rg = vec3<R>(rp[seg_rp + 2u] + rp[seg_rp + 3u] * d, rp[seg_rp + 4u] + rp[seg_rp + 5u] * d,
        rp[seg_rp + 6u] + rp[seg_rp + 7u] * d);
}

// One halving of the argument of `cexp` while a part exceeds 1/2.
fn halve(w: ptr<function, C>, s: ptr<function, u32>) {
    let v = *w;
    if v.x > 0.5 || v.x < -0.5 || v.y > 0.5 || v.y < -0.5 {
        *w = v * 0.5;
        *s = *s + 1u;
    }
}
fn horner(w: C, p: C, c: R) -> C {
    let z = cmul(w, p);
    return C(c + z.x, z.y);
}
fn square_if(p: ptr<function, C>, s: u32, j: u32) {
    if s > j {
        *p = cmul(*p, *p);
    }
}

// exp(x + i y) (twin: cexp in twin/scheduled.rs): the phase reduced by whole turns, the
// argument halved into |re|, |im| <= 1/2 (at most 16 times), Taylor of degree 16 in Horner
// form with its coefficients from rp (Mesa reassociates around literals), squared back.
// Unrolled: a loop would spend lavapipe's loop budget.
fn cexp(x: R, y: R) -> C {
    let k = P.sched_rp;
    let n = floor(y * rp[k]);
    var w = C(x, (y - n * rp[k + 1u]) - n * rp[k + 2u]);
    var s = 0u;
    halve(&w, &s);
    halve(&w, &s);
    halve(&w, &s);
    halve(&w, &s);
    halve(&w, &s);
    halve(&w, &s);
    halve(&w, &s);
    halve(&w, &s);
    halve(&w, &s);
    halve(&w, &s);
    halve(&w, &s);
    halve(&w, &s);
    halve(&w, &s);
    halve(&w, &s);
    halve(&w, &s);
    halve(&w, &s);
    var p = C(rp[k + 19u], 0.0);
    p = horner(w, p, rp[k + 18u]);
    p = horner(w, p, rp[k + 17u]);
    p = horner(w, p, rp[k + 16u]);
    p = horner(w, p, rp[k + 15u]);
    p = horner(w, p, rp[k + 14u]);
    p = horner(w, p, rp[k + 13u]);
    p = horner(w, p, rp[k + 12u]);
    p = horner(w, p, rp[k + 11u]);
    p = horner(w, p, rp[k + 10u]);
    p = horner(w, p, rp[k + 9u]);
    p = horner(w, p, rp[k + 8u]);
    p = horner(w, p, rp[k + 7u]);
    p = horner(w, p, rp[k + 6u]);
    p = horner(w, p, rp[k + 5u]);
    p = horner(w, p, rp[k + 4u]);
    p = horner(w, p, rp[k + 3u]);
    square_if(&p, s, 0u);
    square_if(&p, s, 1u);
    square_if(&p, s, 2u);
    square_if(&p, s, 3u);
    square_if(&p, s, 4u);
    square_if(&p, s, 5u);
    square_if(&p, s, 6u);
    square_if(&p, s, 7u);
    square_if(&p, s, 8u);
    square_if(&p, s, 9u);
    square_if(&p, s, 10u);
    square_if(&p, s, 11u);
    square_if(&p, s, 12u);
    square_if(&p, s, 13u);
    square_if(&p, s, 14u);
    square_if(&p, s, 15u);
    return p;
}

// exp(-i (e - i g) tt) with e = a.x + b.x d, g = a.y + b.y d (g: half the decay rate).
fn sfac(a: C, b: C, d: R, tt: R) -> C {
    let en = a.x + b.x * d;
    let gh = a.y + b.y * d;
    return cexp(-(gh * tt), -(en * tt));
}

// The factors of the sub-step of `len` quanta (tau) from quantum `off` of step st of segment
// iv: E2 at its midpoint, E1 and E3 (tau/2) at its quarter points.
fn sched_factors(iv: u32, st: u32, off: u32, len: u32, tau: R) {
    let th = tau * 0.5;
    let d2 = seg_ds(st, 4u * off + 2u * len);
    let d1 = seg_ds(st, 4u * off + len);
    let d3 = seg_ds(st, 4u * off + 3u * len);
    let ra = 2u * iv * P.n_levels;
    let rb2 = ra + P.n_levels;
    for (var s = 0u; ; s = s + 1u) {
        let i = lane + s * WG;
        if i >= nlev {
            break;
        }
        let a = table[ra + i];
        let b = table[rb2 + i];
        vs(E2, s, i, sfac(a, b, d2, tau));
        vs(E1, s, i, sfac(a, b, d1, th));
        vs(E3, s, i, sfac(a, b, d3, th));
    }
}

// One scheduled Lawson step of `len` quanta (tau) from quantum `off` of step st of segment iv
// from PSI into ACC, shift c; cm is the sub-step's start value again after it.
fn sched_lawson(iv: u32, st: u32, off: u32, len: u32, tau: R, c: R) {
    sched_factors(iv, st, off, len, tau);
    lawson(tau, c, E3, true, cm_at(st, 4u * off + 2u * len), cm_at(st, 4u * off + 4u * len));
    set_cm(cm_at(st, 4u * off));
}

// KVP = V psi with this step's stencil; returns (<Gamma_op>, <V>) of PSI (twin: apply_v_sums
// at a step's start).
fn restencil() -> vec2<R> {
    sync();
    for (var s = 0u; ; s = s + 1u) {
        let i = lane + s * WG;
        if i >= nlev {
            break;
        }
        u_st(i, vl(PSI, s, i));
    }
    sync();
    var a = R4(0.0, 0.0, 0.0, 0.0);
    for (var s = 0u; ; s = s + 1u) {
        let i = lane + s * WG;
        if i >= nlev {
            break;
        }
        let kv = vapply(i);
        vs(KVP, s, i, kv);
        let x = vl(PSI, s, i);
        let a2 = norm2(x);
        a = a + R4(a2, gam(lvl_m(i)) * a2, re_dot(x, kv), 0.0);
    }
    let r = reduce(a);
    return vec2<R>(r.y, r.z);
}

// Upper bound of the loop iterations one trial (a step or the rest of one, with a crossing,
// the partial step, a jump and the record that may follow) costs an invocation: l = level-loop
// iterations (levels per invocation + the exit), rc = iterations of one `reduce`.
fn trial_cost(l: u32, rc: u32) -> u32 {
    return 28u * l + 9u * rc + 96u;
}
// What a scheduled trial adds (restencil: two level loops and a reduction, with margin).
fn sched_cost(l: u32, rc: u32) -> u32 {
    return 4u * l + 2u * rc;
}

// Advance trajectory slot t of this dispatch (global index P.first_traj + t), as invocation
// `li` of the WG that share it, until it is done or the next trial could exceed P.budget loop
// iterations; then persist its state (the vectors PSI and KVP through save_vectors).
fn run_trajectory(t: u32, li: u32) {
    lane = li;
    set_irrep(P.two_j);
    cm = C(rp[3], rp[4]);
    cp = C(rp[5], rp[6]);
    variant_init(t);
    let su = t * 8u;
    let sr = t * 4u;
    let phase = tstate[su];
    if phase == ST_DONE {
        return;
    }
    let l = (P.n_levels + WG - 1u) / WG + 1u;
    var cost = trial_cost(l, countTrailingZeros(WG) + 1u);
    if P.sched != 0u {
        cost = cost + sched_cost(l, countTrailingZeros(WG) + 1u);
    }
    var used = cost + 4u * l;
    let traj = philox_add64(P.first_traj, t);
    var rng: PhiloxStream;
    var gc: vec2<R>; // (<Gamma_op>, <V>) of psi
    var b: R;
    var jumps: u32;
    var iv: u32;
    var st: u32;
    var rq: u32;
    if phase == ST_INIT {
        for (var s = 0u; ; s = s + 1u) {
            let i = lane + s * WG;
            if i >= nlev {
                break;
            }
            u_st(i, psi0[i]);
        }
        gc = renorm_from_u();
        rng = philox_stream(P.seed, traj);
        b = draw2(&rng).x;
        jumps = 0u;
        if lane == 0u && P.max_events > 0u {
            events[t * (P.max_events + 2u)] = 0u;
            events[t * (P.max_events + 2u) + 1u] = 0u;
        }
        record(t, 0u, jumps);
        iv = 0u;
        st = 0u;
        rq = FULL;
    } else {
        set_irrep(tstate[su + 7u]);
        load_vectors();
        iv = tstate[su + 1u];
        st = tstate[su + 2u];
        rq = tstate[su + 3u];
        jumps = tstate[su + 4u];
        rng = philox_stream_at(P.seed, traj, vec2<u32>(tstate[su + 5u], tstate[su + 6u]));
        b = rstate[sr];
        gc = vec2<R>(rstate[sr + 1u], rstate[sr + 2u]);
        sm_jz = rstate[sr + 3u];
    }

    var done = false;
    loop {
        if iv >= P.n_intervals {
            done = true;
            break;
        }
        if P.budget - used < cost {
            break;
        }
        used = used + cost;
        let ss = intervals[iv];
        if st >= ss.y {
            if P.sched == 0u {
                record(t, iv + 1u, jumps);
            } else if ss.x > 0u {
                record(t, ss.x, jumps);
            }
            iv = iv + 1u;
            st = 0u;
            rq = FULL;
            continue;
        }
        let tset = ss.x;
        var q: R;
        var tau: R;
        if P.sched == 0u {
            let h = rp[HEAD + 2u * tset];
            q = rp[HEAD + 2u * tset + 1u];
            tau = h;
            if rq != FULL {
                tau = R(rq) * q;
            }
            factors(tset, rq);
            lawson(tau, gc.y, E1, false, cm, cm);
        } else {
            sched_enter(iv, st);
            q = rp[seg_rp + 1u];
            set_cm(cm_at(st, 4u * (FULL - rq)));
            if rq == FULL && (P.sched & 2u) != 0u {
                gc = restencil();
            }
            tau = seg_h;
            if rq != FULL {
                tau = R(rq) * q;
            }
            sched_lawson(iv, st, FULL - rq, rq, tau, gc.y);
        }
        let e = end_of_step();
        if e.x > b {
            let inv = inv_sqrt(e.x);
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
            b = b * (1.0 / e.x);
            st = st + 1u;
            rq = FULL;
            continue;
        }
        // The norm reaches r inside this (part of a) step: redo it up to the crossing quantum.
        let lq = crossing(rq, tau, gc.x, e.x, e.y, b);
        if lq < rq {
            if P.sched == 0u {
                factors(tset, lq);
                lawson(R(lq) * q, gc.y, E1, false, cm, cm);
            } else {
                sched_lawson(iv, st, FULL - rq, lq, R(lq) * q, gc.y);
            }
            _ = end_of_step();
        }
        // Channel weights |C_k acc|^2: the collective ones, and the irrep-changing ones (all
        // zero where no irrep-changing rate is on; reduced anyway, so that every barrier of
        // `reduce` stays in uniform control flow).
        var wa = R4(0.0, 0.0, 0.0, 0.0);
        var wb = R4(0.0, 0.0, 0.0, 0.0);
        var wc = R4(0.0, 0.0, 0.0, 0.0);
        for (var s = 0u; ; s = s + 1u) {
            let i = lane + s * WG;
            if i >= nlev {
                break;
            }
            let a2 = norm2(vl(ACC, s, i));
            let m = lvl_m(i);
            wa = wa + R4(wdown(m) * a2, wup(m) * a2, wdeph(m) * a2, 0.0);
            if ind_on {
                wb = wb + R4(wind(0u, m) * a2, wind(1u, m) * a2, wind(2u, m) * a2, wind(3u, m) * a2);
                wc = wc + R4(wind(4u, m) * a2, wind(5u, m) * a2, 0.0, 0.0);
            }
        }
        let wt = reduce(wa);
        let wi = reduce(wb);
        let wj = reduce(wc);
        let uu = draw2(&rng);
        // Without irrep-changing rates wi, wj are +0 and tot is the collective sum exactly.
        let coll = (wt.x + wt.y) + wt.z;
        let tot = coll + (((wi.x + wi.y) + (wi.z + wi.w)) + (wj.x + wj.y));
        if tot > 0.0 {
            let x = uu.x * tot;
            var ch = 2u;
            if ind_on {
                // The first channel whose cumulative weight exceeds x among those with positive
                // weight, else the last positive one (twin: `choose`).
                let w9 = array<R, 9>(wt.x, wt.y, wt.z, wi.x, wi.y, wi.z, wi.w, wj.x, wj.y);
                var cum = R(0.0);
                var found = false;
                ch = 0u;
                for (var k = 0u; k < 9u; k = k + 1u) {
                    if !found && w9[k] > 0.0 {
                        cum = cum + w9[k];
                        ch = k;
                        if x < cum {
                            found = true;
                        }
                    }
                }
            } else {
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
            }
            // u holds acc (end_of_step): apply the jump operator. An irrep-changing channel
            // k = ch - 3 (twin: IND_CHANNELS) maps level i of 2j to i + di of 2j + dj, with
            // the amplitude sqrt(|<j'm'|A_k|jm>|^2) of the source level.
            var dj = 0i;
            var di = 0i;
            switch ch {
                case 3u: {
                    dj = -2i;
                    di = -2i;
                }
                case 4u: {
                    dj = 2i;
                    di = 0i;
                }
                case 5u: {
                    dj = -2i;
                    di = 0i;
                }
                case 6u: {
                    dj = 2i;
                    di = 2i;
                }
                case 7u: {
                    dj = -2i;
                    di = -1i;
                }
                case 8u: {
                    dj = 2i;
                    di = 1i;
                }
                default: {}
            }
            let n_to = u32(i32(tj) + dj) + 1u;
            for (var s = 0u; ; s = s + 1u) {
                let i = lane + s * WG;
                if i >= n_to {
                    break;
                }
                var y = C(0.0, 0.0);
                if ch == 0u {
                    if i + 1u < nlev {
                        y = u_ld(i + 1u) * jp_of(lvl_m(i));
                    }
                } else if ch == 1u {
                    if i > 0u {
                        y = u_ld(i - 1u) * jp_of(lvl_m(i) - 1.0);
                    }
                } else if ch == 2u {
                    y = u_ld(i) * lvl_m(i);
                } else {
                    let src = i32(i) - di;
                    if src >= 0i && src < i32(nlev) {
                        y = u_ld(u32(src)) * sqrt(iprod(ch - 3u, lvl_m(u32(src))));
                    }
                }
                vs(KT, s, i, y);
            }
            set_irrep(u32(i32(tj) + dj));
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
        if P.sched != 0u {
            // The step's rates again (set_irrep above restored the irrep's constant ones), and
            // V at the jump time for the next sub-step's k1.
            sched_enter(iv, st);
            set_cm(cm_at(st, 4u * (FULL - rq + lq)));
        }
        gc = renorm_from_u();
        b = uu.y;
        rq = rq - lq;
        if rq == 0u {
            st = st + 1u;
            rq = FULL;
        }
    }

    if done {
        if lane == 0u {
            tstate[su] = ST_DONE;
        }
        return;
    }
    save_vectors();
    if lane == 0u {
        tstate[su] = ST_RUN;
        tstate[su + 1u] = iv;
        tstate[su + 2u] = st;
        tstate[su + 3u] = rq;
        tstate[su + 4u] = jumps;
        tstate[su + 5u] = rng.ctr.x;
        tstate[su + 6u] = rng.ctr.y;
        tstate[su + 7u] = tj;
        rstate[sr] = b;
        rstate[sr + 1u] = gc.x;
        rstate[sr + 2u] = gc.y;
        rstate[sr + 3u] = sm_jz;
        atomicAdd(&status[0], 1u);
    }
}
