// Precision prelude of the f64 trajectory modules (needs SHADER_F64): the working type R and
// its complex C = vec2<R> (x = re, y = im), the capacities of the workgroup-memory variant, and
// the random-number conversion. Twin: `impl Real for f64` in src/solver/trajectory/twin.rs.
// The kernel uses only +, -, *, /, sqrt, floor and comparisons in f64: every exponential is
// tabulated on the host, or (schedules) computed by the kernel's own polynomial `cexp` (f64
// exp/log/sin/cos are broken in WGSL, DESIGN.md).
// Prepended by the registry: common/philox.wgsl, common/philox_f64.wgsl.

alias R = f64;
alias C = vec2<f64>;
alias R4 = vec4<f64>;

// Largest ladder kept in workgroup memory: u (16 KiB) plus the reduction scratch (256 x 32 B).
const WG_CAP: u32 = 1024u;
const PER_LANE: u32 = 4u;
const PV_LEN: u32 = 28u; // 7 vectors x PER_LANE

// The two uniforms of the next block: words (0, 1) and (2, 3) (rng::uniform_f64).
fn draw2(s: ptr<function, PhiloxStream>) -> C {
    return philox_uniform2_f64(philox_next(s));
}
