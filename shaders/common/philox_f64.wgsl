// f64 conversion for Philox draws; needs Features::SHADER_F64 (naga Capabilities::FLOAT64), so
// it is concatenated only into f64 modules. Twin of rng::uniform_f64.

// (hi * 2^20 + (lo >> 12) + 0.5) * 2^-52: in [2^-53, 1 - 2^-53], never 0 or 1; every step
// exact (integers below 2^52 plus one half, times a power of two).
fn philox_uniform_f64(lo: u32, hi: u32) -> f64 {
    return (f64(hi) * 1048576.0lf + f64(lo >> 12u) + 0.5lf) * 2.220446049250313e-16lf;
}

// Two f64 uniforms from one block: words (x, y) and (z, w), the second of each pair high.
fn philox_uniform2_f64(x: vec4<u32>) -> vec2<f64> {
    return vec2<f64>(philox_uniform_f64(x.x, x.y), philox_uniform_f64(x.z, x.w));
}
