// Precision prelude of the f32 trajectory modules: the working type R and its complex
// C = vec2<R> (x = re, y = im), the capacities of the workgroup-memory variant, and the
// random-number conversion. Twin: `impl Real for f32` in src/solver/trajectory/twin.rs.
// Prepended by the registry: common/philox.wgsl.

alias R = f32;
alias C = vec2<f32>;
alias R4 = vec4<f32>;

// Largest ladder (2j + 1 levels) kept in workgroup memory: the stage vector u (16 KiB) plus
// the reduction scratch (256 x 16 B); private slots per invocation for the other vectors.
const WG_CAP: u32 = 2048u;
const PER_LANE: u32 = 8u;
const PV_LEN: u32 = 56u; // 7 vectors x PER_LANE

// The two uniforms of the next block: words 0 and 1 (rng::uniform_f32).
fn draw2(s: ptr<function, PhiloxStream>) -> C {
    let x = philox_next(s);
    return C(philox_uniform_f32(x.x), philox_uniform_f32(x.y));
}
