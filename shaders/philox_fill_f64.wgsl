// philox_fill_f64: like philox_fill, but writes the two f64 uniforms of each block
// (philox_uniform2_f64) to out[i * draws + d]. Needs SHADER_F64.
// Prepended by the registry: common/philox.wgsl, common/philox_f64.wgsl.

// Twin of backend::gpu::FillParams (48 bytes); `mode` is unused here.
struct FillParams {
    seed: vec2<u32>,
    first_traj: vec2<u32>,
    first_draw: vec2<u32>,
    ntraj: u32,
    draws: u32,
    mode: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: FillParams;
@group(0) @binding(1) var<storage, read_write> out: array<vec2<f64>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i >= params.ntraj {
        return;
    }
    var s = philox_stream_at(params.seed, philox_add64(params.first_traj, i), params.first_draw);
    let base = i * params.draws;
    for (var d = 0u; d < params.draws; d = d + 1u) {
        out[base + d] = philox_uniform2_f64(philox_next(&s));
    }
}
