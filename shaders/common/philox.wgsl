// Philox4x32-10 counter-based RNG. Twin of src/rng.rs (bit-identical, tested in
// tests/gpu_rng.rs); see its module docs for the stream layout and the float formulas.
//
//   key     = [seed_lo, seed_hi]
//   counter = [draw_lo, draw_hi, traj_lo, traj_hi]   (draw: block index in the trajectory's
//                                                     stream, traj: global trajectory index)
//
// u32 arithmetic only: WGSL has no 64-bit integers by default, so the high word of the 32x32
// product is assembled from 16-bit halves, and 64-bit indices travel as (lo, hi) pairs.

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;

// High word of the 64-bit product a * b.
fn philox_mulhi(a: u32, b: u32) -> u32 {
    let al = a & 0xffffu;
    let ah = a >> 16u;
    let bl = b & 0xffffu;
    let bh = b >> 16u;
    let ll = al * bl;
    let lh = al * bh;
    let hl = ah * bl;
    let hh = ah * bh;
    let cross = (ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
    return hh + (lh >> 16u) + (hl >> 16u) + (cross >> 16u);
}

fn philox_round(c: vec4<u32>, k: vec2<u32>) -> vec4<u32> {
    let hi0 = philox_mulhi(PHILOX_M0, c.x);
    let lo0 = PHILOX_M0 * c.x;
    let hi1 = philox_mulhi(PHILOX_M1, c.z);
    let lo1 = PHILOX_M1 * c.z;
    return vec4<u32>(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
}

// The block for counter `ctr` under `key` (Random123 philox4x32_R(10, ctr, key)).
fn philox4x32_10(ctr: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = philox_round(ctr, key);
    var k = key;
    for (var i = 1u; i < 10u; i = i + 1u) {
        k = k + vec2<u32>(PHILOX_W0, PHILOX_W1);
        c = philox_round(c, k);
    }
    return c;
}

// One trajectory's stream; twin of rng::PhiloxStream. `ctr.xy` is the 64-bit draw index.
struct PhiloxStream {
    key: vec2<u32>,
    ctr: vec4<u32>,
}

// Stream of trajectory `traj` = (lo, hi) under `seed` = (lo, hi), positioned at draw 0.
fn philox_stream(seed: vec2<u32>, traj: vec2<u32>) -> PhiloxStream {
    return PhiloxStream(seed, vec4<u32>(0u, 0u, traj.x, traj.y));
}

// The same stream positioned at block `draw` = (lo, hi).
fn philox_stream_at(seed: vec2<u32>, traj: vec2<u32>, draw: vec2<u32>) -> PhiloxStream {
    return PhiloxStream(seed, vec4<u32>(draw.x, draw.y, traj.x, traj.y));
}

// The next 128-bit block; advances the 64-bit draw index with carry.
fn philox_next(s: ptr<function, PhiloxStream>) -> vec4<u32> {
    let out = philox4x32_10((*s).ctr, (*s).key);
    let lo = (*s).ctr.x + 1u;
    (*s).ctr.x = lo;
    (*s).ctr.y = (*s).ctr.y + select(0u, 1u, lo == 0u);
    return out;
}

// (f32(x >> 9) + 0.5) * 2^-23: in [2^-24, 1 - 2^-24], never 0 or 1; every step exact.
fn philox_uniform_f32(x: u32) -> f32 {
    return (f32(x >> 9u) + 0.5) * 1.1920928955078125e-7;
}

fn philox_uniform4(x: vec4<u32>) -> vec4<f32> {
    return (vec4<f32>(x >> vec4<u32>(9u)) + vec4<f32>(0.5)) * 1.1920928955078125e-7;
}

// 64-bit add of a u32 to a (lo, hi) pair.
fn philox_add64(a: vec2<u32>, b: u32) -> vec2<u32> {
    let lo = a.x + b;
    return vec2<u32>(lo, a.y + select(0u, 1u, lo < b));
}
