// cumulant_batch: the closed second-order cumulant equations of the engine model (nine real
// variables per parameter point, src/solver/cumulant/mod.rs `rhs`) integrated by adaptive
// Dormand-Prince 5(4), one invocation per parameter point, with the per-point reductions of
// the save grid (minimum of xi^2 after t_min and its save index, sum of <Jz> after t_late).
//
// The CPU twin is `integrate_point` in src/solver/cumulant/batch.rs; this file follows it line
// by line (tableau, error norm, PI controller, rejection rule, Hairer's starting step, clipping
// onto save times, the step-size floor). Host side, mapping and precision:
// src/backend/gpu/cumulant_batch.rs.
//
// Schedules (time-dependent parameters, src/solver/cumulant/pieces.rs): a scheduled point has
// a table of pieces in `pieces` (pidx[b] = (first record, count); count 0: a constant point,
// which reads `par` as before). A record is the piece's start (elapsed since t0, as a time
// pair), its 12 parameters at the start (p0) and their rates (p1); stage i of a step from t
// uses p0 + p1 tau with tau = (t - start) + c_i h. The step is clipped onto the next break as
// onto a save time, and after landing on it k1 is recomputed with the next piece (the FSAL
// stage belongs to the old one). Twin: batch.rs `run_point` / `Control` / `Ramp`.
//
// A dispatch runs at most P.attempts step attempts and P.loop_budget loop iterations per
// invocation (llvmpipe ends every loop of an invocation after 65535 iterations in total: the
// kernel counts its own and stops first). The whole integration state, including k1 (FSAL),
// lives in `st` between dispatches; saves still pending resume first.
//
// Prepended by the registry: master_batch_f32.wgsl | master_batch_f64.wgsl (R, R_MAX, powc),
// then common/dp5.wgsl (the Dormand-Prince tableau and controller constants),
// common/status.wgsl (the ST_* status codes of State.status) and common/time.wgsl (time pairs
// hi + lo: two_sum, t_add, t_le, t_sub; finite).

override WG: u32 = 64u;

const NV: u32 = 9u;

// Loop iterations charged per phase (twins of LOOP_* in cumulant_batch.rs): a 9-component
// loop is charged 10 (its exit test included); an attempt runs seven such loops, all_finite
// on a non-finite rejection and the outer and save loops' tests (82), the start four loops
// and one all_finite pair (50); both rounded up with margin.
const COST_INIT: u32 = 60u;
const COST_ATTEMPT: u32 = 90u;
const COST_SAVE: u32 = 2u;

// Twin of CumulantBatchParams{F32,F64} (a u32 block, then an R block).
struct Params {
    points: u32,
    n_saves: u32,
    attempts: u32,
    max_steps: u32,
    loop_budget: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    rtol: R,
    atol: R,
    // Absolute start time and span of the save grid.
    t0: R,
    span: R,
    // Step-size floor relative to max(|t|, span): 16 f64::EPSILON, as batch.rs.
    hmin_rel: R,
    // Breaks within this of a save are taken at the save (pieces::snap).
    snap: R,
    _pad4: R,
    _pad5: R,
}

// Twin of CumulantBatchState{F32,F64}: the integration state of one point. `t` is the time
// elapsed since t0 as an unevaluated sum hi + lo (in f32 exact to ~2^-48 relative).
struct State {
    y: array<R, 9>,
    k1: array<R, 9>,
    t: vec2<R>,
    h: R,
    err_old: R,
    xi2_min: R,
    jz_sum: R,
    status: u32,
    next_save: u32,
    attempts: u32,
    steps: u32,
    rejected: u32,
    last_rejected: u32,
    // Save index of the xi^2 minimum (0xffffffff: none yet).
    k_min: u32,
    jz_count: u32,
    // The current piece of a scheduled point (breaks passed).
    piece: u32,
    _pad_c0: u32,
    _pad_c1: u32,
    _pad_c2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
// 12 parameters per point (cumulant::params, cos/sin of phi folded in on the host).
@group(0) @binding(1) var<storage, read> par: array<R>;
// Save times minus t0 as (hi, lo) pairs.
@group(0) @binding(2) var<storage, read> save_t: array<vec2<R>>;
// Per save: bit 0 = t_k >= t_min, bit 1 = t_k >= t_late (decided on the host in f64).
@group(0) @binding(3) var<storage, read> save_flag: array<u32>;
@group(0) @binding(4) var<storage, read_write> st: array<State>;
// Piece records of the scheduled points (REC numbers each: start pair, p0[12], p1[12]).
@group(0) @binding(5) var<storage, read> pieces: array<R>;
// Per point: (first record, number of pieces); 0 pieces: constant parameters from `par`.
@group(0) @binding(6) var<storage, read> pidx: array<vec2<u32>>;

const REC: u32 = 26u;

// Twelve numbers from `a` at offset o (written out: a loop would count against llvmpipe's
// loop limit at every stage).
fn load12(o: u32, from_par: bool) -> array<R, 12> {
    if from_par {
        return array<R, 12>(par[o], par[o + 1u], par[o + 2u], par[o + 3u], par[o + 4u], par[o + 5u],
            par[o + 6u], par[o + 7u], par[o + 8u], par[o + 9u], par[o + 10u], par[o + 11u]);
    }
    return array<R, 12>(pieces[o], pieces[o + 1u], pieces[o + 2u], pieces[o + 3u], pieces[o + 4u],
        pieces[o + 5u], pieces[o + 6u], pieces[o + 7u], pieces[o + 8u], pieces[o + 9u], pieces[o + 10u],
        pieces[o + 11u]);
}

// The start of record r (elapsed since t0, a time pair).
fn piece_start(r: u32) -> vec2<R> {
    return vec2<R>(pieces[r * REC], pieces[r * REC + 1u]);
}

// The parameters of one piece: p0 (or a constant point's par) and p1.
struct Piece {
    sched: bool,
    p0: array<R, 12>,
    p1: array<R, 12>,
}

fn load_piece(b: u32, piece: u32) -> Piece {
    let ix = pidx[b];
    if ix.y == 0u {
        return Piece(false, load12(b * 12u, true), array<R, 12>());
    }
    let o = (ix.x + piece) * REC;
    return Piece(true, load12(o + 2u, false), load12(o + 14u, false));
}

// batch.rs `Ramp::at`: the parameters at tau after the piece's start.
fn stage_par(pc: Piece, tau: R) -> array<R, 12> {
    if !pc.sched {
        return pc.p0;
    }
    let a = pc.p0;
    let r = pc.p1;
    return array<R, 12>(a[0] + r[0] * tau, a[1] + r[1] * tau, a[2] + r[2] * tau, a[3] + r[3] * tau,
        a[4] + r[4] * tau, a[5] + r[5] * tau, a[6] + r[6] * tau, a[7] + r[7] * tau, a[8] + r[8] * tau,
        a[9] + r[9] * tau, a[10] + r[10] * tau, a[11] + r[11] * tau);
}


fn all_finite(v: array<R, 9>) -> bool {
    var ok = true;
    for (var i = 0u; i < NV; i++) {
        ok = ok && finite(v[i]);
    }
    return ok;
}

// Complex helpers (x = re, y = im).
fn cm(a: vec2<R>, b: vec2<R>) -> vec2<R> {
    return vec2<R>(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

fn cj(a: vec2<R>) -> vec2<R> {
    return vec2<R>(a.x, -a.y);
}

// i a
fn ci(a: vec2<R>) -> vec2<R> {
    return vec2<R>(-a.y, a.x);
}

// The closed right-hand side with the parameters pr: cumulant::close_third then
// cumulant::open_rhs, term by term.
fn rhs(pr: array<R, 12>, y: array<R, 9>) -> array<R, 9> {
    let n = pr[0];
    let omega0 = pr[1];
    let eta = vec2<R>(0.5 * pr[2], 0.5 * pr[3]);
    let chi = pr[4];
    let chi_z = pr[5];
    let gam = pr[6];
    let w = pr[7];
    let gam_phi = pr[8];
    let gd = pr[9] + gam;
    let gu = pr[10] + w;
    let gp = pr[11] + 0.25 * gam_phi;
    let big_g = gd + gu;
    let small_g = gd - gu;
    let gamma2 = 0.5 * big_g + 2.0 * gp;
    let delta = omega0 + chi;
    let kappa = 0.5 * (gam - w);
    let cpl = vec2<R>(kappa, chi_z - chi);
    let rot = vec2<R>(-gamma2, delta);

    let s = vec2<R>(y[0], y[1]);
    let z = y[2];
    let p = y[3];
    let q = vec2<R>(y[4], y[5]);
    let u = vec2<R>(y[6], y[7]);
    let v = y[8];

    // close_third
    let ss = cm(s, s);
    let t1 = p * z + 2.0 * cm(u, cj(s)).x - 2.0 * dot(s, s) * z;
    let t2 = q * z + 2.0 * cm(u, s) - 2.0 * ss * z;
    let t3c = cm(q, cj(s)) + 2.0 * p * s - 2.0 * cm(ss, cj(s));
    let t4 = v * s + 2.0 * u * z - 2.0 * z * z * s;

    let n1 = n - 1.0;
    let n2 = n - 2.0;
    let ieta = ci(eta);
    let ietac = ci(cj(eta));

    let ds = cm(rot, s) - ieta * z + n1 * cm(cpl, u);
    let drive_z = (-2.0 * cm(ietac, s) + 2.0 * cm(ieta, cj(s))).x;
    let dz = drive_z - big_g * z - small_g - 4.0 * kappa * n1 * p;
    let dp = -2.0 * gamma2 * p - 2.0 * cm(cj(eta), u).y
        + 0.5 * gam * (z + v)
        + 0.5 * w * (v - z)
        + gam_phi * p
        + 2.0 * kappa * n2 * t1;
    let dq = 2.0 * cm(rot, q) - gam_phi * q - 2.0 * cm(ieta, u) + 2.0 * n2 * cm(cpl, t2);
    let du = cm(rot - vec2<R>(big_g, 0.0), u) - small_g * s - 2.0 * cm(ietac, q) + 2.0 * ieta * p - ieta * v
        + gam * (-0.5 * s - u)
        + w * (0.5 * s - u)
        + ci((chi_z - chi) * s)
        + n2 * (-4.0 * kappa * t3c + cm(cpl, t4));
    let dv = (-4.0 * cm(ietac, u) + 4.0 * cm(ieta, cj(u))).x - 2.0 * big_g * v - 2.0 * small_g * z
        + 4.0 * (gam + w) * p
        - 8.0 * kappa * n2 * t1;
    return array<R, 9>(ds.x, ds.y, dz, dp, dq.x, dq.y, du.x, du.y, dv);
}

fn cross3(a: vec3<R>, b: vec3<R>) -> vec3<R> {
    return vec3<R>(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x);
}

// x^T C y for the symmetric covariance given by its diagonal cd and off-diagonal co
// (xy, xz, yz), summed in the order of observe::quad (a, b = 0..2 row by row).
fn quad(cd: vec3<R>, co: vec3<R>, x: vec3<R>, y: vec3<R>) -> R {
    var s = x.x * cd.x * y.x;
    s += x.x * co.x * y.y;
    s += x.x * co.y * y.z;
    s += x.y * co.x * y.x;
    s += x.y * cd.y * y.y;
    s += x.y * co.z * y.z;
    s += x.z * co.y * y.x;
    s += x.z * co.z * y.y;
    s += x.z * cd.z * y.z;
    return s;
}

// (valid, <Jz>, xi^2) of the state y of N atoms: cumulant::to_moments then
// observe::Moments::xi2 (min_perp_variance), without loops. valid = false where |<J>| = 0 or
// is not finite (xi^2 infinite on the CPU, never a minimum).
struct Obs {
    valid: bool,
    jz: R,
    xi2: R,
}

fn observe(b: u32, y: array<R, 9>) -> Obs {
    let nf = par[b * 12u];
    let pairs = nf * (nf - 1.0);
    let jz = 0.5 * nf * y[2];
    let jpjm = 0.5 * nf * (1.0 + y[2]) + pairs * y[3];
    let jmjp = jpjm - 2.0 * jz;
    let jp2_re = pairs * y[4];
    let jp2_im = pairs * y[5];
    let x_re = pairs * y[6];
    let x_im = pairs * y[7];
    let zz = 0.25 * nf + 0.25 * pairs * y[8];
    let xx = 0.25 * (jpjm + jmjp + 2.0 * jp2_re);
    let yy = 0.25 * (jpjm + jmjp - 2.0 * jp2_re);
    let xy = 0.5 * jp2_im;
    let xz = 0.5 * x_re;
    let yz = 0.5 * x_im;
    let mean = vec3<R>(nf * y[0], nf * y[1], jz);

    let m2 = dot(mean, mean);
    let len = sqrt(m2);
    if len == 0.0 || !finite(len) {
        return Obs(false, jz, 0.0);
    }
    let u = mean / len;
    // The axis least aligned with u (the first of equal ones, as Iterator::min_by).
    var ax = vec3<R>(1.0, 0.0, 0.0);
    var amin = abs(u.x);
    if abs(u.y) < amin {
        ax = vec3<R>(0.0, 1.0, 0.0);
        amin = abs(u.y);
    }
    if abs(u.z) < amin {
        ax = vec3<R>(0.0, 0.0, 1.0);
    }
    let e1r = cross3(u, ax);
    let e1 = e1r / sqrt(dot(e1r, e1r));
    let e2 = cross3(u, e1);
    // Covariance second - mean mean^T.
    let cd = vec3<R>(xx - mean.x * mean.x, yy - mean.y * mean.y, zz - mean.z * mean.z);
    let co = vec3<R>(xy - mean.x * mean.y, xz - mean.x * mean.z, yz - mean.y * mean.z);
    let a = quad(cd, co, e1, e1);
    let bb = quad(cd, co, e1, e2);
    let d = quad(cd, co, e2, e2);
    let half_diff = 0.5 * (a - d);
    // hypot without overflow: scale by the larger magnitude.
    let hm = max(abs(half_diff), abs(bb));
    var r = R(0.0);
    if hm > 0.0 {
        let hx = half_diff / hm;
        let hy = bb / hm;
        r = hm * sqrt(hx * hx + hy * hy);
    }
    let lam = 0.5 * (a + d) - r;
    return Obs(true, jz, nf * lam / m2);
}

// Record save k at state y (batch.rs `Reduce::save`).
fn save(b: u32, k: u32, y: array<R, 9>, s: ptr<function, State>) {
    let f = save_flag[k];
    if f == 0u {
        return;
    }
    let ob = observe(b, y);
    if (f & 1u) != 0u && ob.valid && ob.xi2 < (*s).xi2_min {
        (*s).xi2_min = ob.xi2;
        (*s).k_min = k;
    }
    if (f & 2u) != 0u {
        (*s).jz_sum += ob.jz;
        (*s).jz_count += 1u;
    }
}

// y + sum_j a_j k_j (a_j = h times a tableau entry), accumulated in the order of batch.rs
// `combo`. One function per stage count, each naming exactly its own stages: a shared
// five-stage version with zero weights would add 0 * inf = NaN for a non-finite unused stage.
fn combo1(y: array<R, 9>, a1: R, k1: array<R, 9>) -> array<R, 9> {
    var o: array<R, 9>;
    for (var i = 0u; i < NV; i++) {
        o[i] = y[i] + a1 * k1[i];
    }
    return o;
}

fn combo2(y: array<R, 9>, a1: R, k1: array<R, 9>, a2: R, k2: array<R, 9>) -> array<R, 9> {
    var o: array<R, 9>;
    for (var i = 0u; i < NV; i++) {
        var acc = y[i];
        acc += a1 * k1[i];
        acc += a2 * k2[i];
        o[i] = acc;
    }
    return o;
}

fn combo3(y: array<R, 9>, a1: R, k1: array<R, 9>, a2: R, k2: array<R, 9>, a3: R, k3: array<R, 9>) -> array<R, 9> {
    var o: array<R, 9>;
    for (var i = 0u; i < NV; i++) {
        var acc = y[i];
        acc += a1 * k1[i];
        acc += a2 * k2[i];
        acc += a3 * k3[i];
        o[i] = acc;
    }
    return o;
}

fn combo4(y: array<R, 9>, a1: R, k1: array<R, 9>, a2: R, k2: array<R, 9>, a3: R, k3: array<R, 9>, a4: R, k4: array<R, 9>) -> array<R, 9> {
    var o: array<R, 9>;
    for (var i = 0u; i < NV; i++) {
        var acc = y[i];
        acc += a1 * k1[i];
        acc += a2 * k2[i];
        acc += a3 * k3[i];
        acc += a4 * k4[i];
        o[i] = acc;
    }
    return o;
}

fn combo5(y: array<R, 9>, a1: R, k1: array<R, 9>, a2: R, k2: array<R, 9>, a3: R, k3: array<R, 9>, a4: R, k4: array<R, 9>, a5: R, k5: array<R, 9>) -> array<R, 9> {
    var o: array<R, 9>;
    for (var i = 0u; i < NV; i++) {
        var acc = y[i];
        acc += a1 * k1[i];
        acc += a2 * k2[i];
        acc += a3 * k3[i];
        acc += a4 * k4[i];
        acc += a5 * k5[i];
        o[i] = acc;
    }
    return o;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    if b >= P.points {
        return;
    }
    var s = st[b];
    if s.status >= ST_DONE {
        return;
    }
    let span = P.span;
    var used = 0u;
    let ix = pidx[b];
    var pc = load_piece(b, s.piece);

    if s.status == ST_INIT {
        used += COST_INIT;
        let y = s.y;
        let f0 = rhs(pc.p0, y);
        s.k1 = f0;
        save(b, 0u, y, &s);
        s.next_save = 1u;
        s.err_old = 1e-4;
        s.last_rejected = 0u;
        if !all_finite(y) || !all_finite(f0) {
            s.status = ST_NONFINITE;
        } else if s.next_save >= P.n_saves {
            s.status = ST_DONE;
        } else {
            // Hairer's starting step.
            var d0 = R(0.0);
            var d1 = R(0.0);
            for (var i = 0u; i < NV; i++) {
                let sc = P.atol + P.rtol * abs(y[i]);
                let a = y[i] / sc;
                let c = f0[i] / sc;
                d0 += a * a;
                d1 += c * c;
            }
            d0 = sqrt(d0 / R(NV));
            d1 = sqrt(d1 / R(NV));
            var h0 = R(1e-6);
            if !(d0 < 1e-5 || d1 < 1e-5) {
                h0 = 0.01 * d0 / d1;
            }
            h0 = min(h0, span);
            let f1 = rhs(stage_par(pc, h0), combo1(y, h0, f0));
            var d2 = R(0.0);
            for (var i = 0u; i < NV; i++) {
                let sc = P.atol + P.rtol * abs(y[i]);
                let c = (f1[i] - f0[i]) / sc;
                d2 += c * c;
            }
            d2 = sqrt(d2 / R(NV)) / h0;
            let dm = max(d1, d2);
            var h1 = max(h0 * 1e-3, 1e-6);
            if !(dm <= 1e-15) {
                h1 = powc(0.01 / dm, 0.2);
            }
            s.h = min(min(100.0 * h0, h1), span);
            s.status = ST_RUN;
        }
    }

    var it = 0u;
    loop {
        if s.status != ST_RUN {
            break;
        }
        // Saves due at t (resumed first after a dispatch boundary).
        loop {
            if s.next_save >= P.n_saves || !t_le(save_t[s.next_save], s.t) || used + COST_SAVE > P.loop_budget {
                break;
            }
            save(b, s.next_save, s.y, &s);
            used += COST_SAVE;
            s.next_save += 1u;
        }
        if s.next_save >= P.n_saves {
            s.status = ST_DONE;
            break;
        }
        var tgt = save_t[s.next_save];
        if t_le(tgt, s.t) || it >= P.attempts || used + COST_ATTEMPT > P.loop_budget {
            break;
        }
        it += 1u;
        used += COST_ATTEMPT;
        // The next break, when it comes before (or with) the next save.
        var to_break = false;
        var tau0 = R(0.0);
        if pc.sched {
            tau0 = t_sub(s.t, piece_start(ix.x + s.piece));
            if s.piece + 1u < ix.y {
                // batch.rs `propose`: a break within P.snap of the save is taken at the save.
                let gap = t_sub(piece_start(ix.x + s.piece + 1u), tgt);
                if gap <= P.snap {
                    if gap < -P.snap {
                        tgt = piece_start(ix.x + s.piece + 1u);
                    }
                    to_break = true;
                }
            }
        }

        var hs = s.h;
        let rem = t_sub(tgt, s.t);
        // batch.rs: clipped = t + 1.01 hs >= target
        let clipped = 1.01 * hs >= rem;
        if clipped {
            hs = rem;
        }
        if hs <= P.hmin_rel * max(abs(P.t0 + s.t.x), span) {
            s.h = hs;
            s.status = ST_SMALL;
            break;
        }
        s.attempts += 1u;
        if s.attempts > P.max_steps {
            s.status = ST_MAXSTEPS;
            break;
        }

        let y = s.y;
        let k1 = s.k1;
        let k2 = rhs(stage_par(pc, tau0 + hs * C2), combo1(y, hs * A21, k1));
        let k3 = rhs(stage_par(pc, tau0 + hs * C3), combo2(y, hs * A31, k1, hs * A32, k2));
        let k4 = rhs(stage_par(pc, tau0 + hs * C4), combo3(y, hs * A41, k1, hs * A42, k2, hs * A43, k3));
        let k5 = rhs(stage_par(pc, tau0 + hs * C5), combo4(y, hs * A51, k1, hs * A52, k2, hs * A53, k3, hs * A54, k4));
        let k6 = rhs(stage_par(pc, tau0 + hs), combo5(y, hs * A61, k1, hs * A62, k2, hs * A63, k3, hs * A64, k4, hs * A65, k5));
        let ynew = combo5(y, hs * A71, k1, hs * A73, k3, hs * A74, k4, hs * A75, k5, hs * A76, k6);
        let k7 = rhs(stage_par(pc, tau0 + hs), ynew);
        var sum = R(0.0);
        for (var i = 0u; i < NV; i++) {
            let acc = (hs * E1) * k1[i] + (hs * E3) * k3[i] + (hs * E4) * k4[i] + (hs * E5) * k5[i]
                + (hs * E6) * k6[i] + (hs * E7) * k7[i];
            let q = acc / (P.atol + P.rtol * max(abs(y[i]), abs(ynew[i])));
            sum += q * q;
        }
        let err = sqrt(sum / R(NV));

        if finite(err) && err <= 1.0 {
            s.steps += 1u;
            if clipped {
                s.t = tgt;
            } else {
                s.t = t_add(s.t, hs);
            }
            s.y = ynew;
            s.k1 = k7;
            let fac = clamp(powc(err, 0.2 - 0.75 * BETA) / powc(s.err_old, BETA) / SAFE, 1.0 / FAC_MAX, 1.0 / FAC_MIN);
            s.err_old = max(err, 1e-4);
            var h_new = hs / fac;
            if s.last_rejected != 0u {
                h_new = min(h_new, hs);
            }
            s.last_rejected = 0u;
            if clipped {
                s.h = max(h_new, s.h);
            } else {
                s.h = h_new;
            }
            if clipped && to_break {
                // On a break: the next piece's formula from here on.
                s.piece += 1u;
                pc = load_piece(b, s.piece);
                s.k1 = rhs(pc.p0, ynew);
            }
        } else {
            s.rejected += 1u;
            s.last_rejected = 1u;
            if !finite(err) {
                if !all_finite(y) {
                    s.h = hs;
                    s.status = ST_NONFINITE;
                    break;
                }
                s.h = hs * 0.1;
            } else {
                s.h = hs / min(1.0 / FAC_MIN, powc(err, 0.2 - 0.75 * BETA) / SAFE);
            }
            if s.h <= P.hmin_rel * max(abs(P.t0 + s.t.x), span) {
                s.status = select(ST_NONFINITE, ST_SMALL, finite(err));
                break;
            }
        }
    }
    st[b] = s;
}
