// philox_fill: draws blocks first_draw .. first_draw + draws of the Philox stream of each
// trajectory first_traj .. first_traj + ntraj under `seed`, one invocation per trajectory, and
// writes them to out[i * draws + d]. mode 0: the raw u32x4 blocks; mode 1: the f32 uniforms
// (philox_uniform4), bit-cast to u32. A test kernel: the GPU side of tests/gpu_rng.rs.
// Prepended by the registry: common/philox.wgsl.

// Twin of backend::gpu::FillParams (48 bytes).
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
@group(0) @binding(1) var<storage, read_write> out: array<vec4<u32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i >= params.ntraj {
        return;
    }
    var s = philox_stream_at(params.seed, philox_add64(params.first_traj, i), params.first_draw);
    let base = i * params.draws;
    for (var d = 0u; d < params.draws; d = d + 1u) {
        let x = philox_next(&s);
        if params.mode == 1u {
            out[base + d] = bitcast<vec4<u32>>(philox_uniform4(x));
        } else {
            out[base + d] = x;
        }
    }
}
