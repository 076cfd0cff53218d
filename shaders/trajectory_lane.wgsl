// Variant "lane" of the trajectory kernel: one invocation per trajectory (WG = 1 in the body:
// the invocation owns every level), LANE_GROUP trajectories per workgroup, no barriers and no
// workgroup memory. Every per-level vector lives in a storage scratch region interleaved over
// the trajectories of the dispatch (element (v, i) of trajectory slot t at
// (v * n_levels + i) * ntraj + t, n_levels = N + 1 whatever the current irrep), so neighbouring invocations touch neighbouring words.
// Sums over levels are sequential in level order: the twin's `lanes = 1`.
// Siblings: trajectory_wg.wgsl, trajectory_st.wgsl.

const WG: u32 = 1u;
const LANE_GROUP: u32 = 64u; // backend::gpu::trajectory::LANE_GROUP

@group(0) @binding(6) var<storage, read_write> scratch: array<C>;
var<private> slot: u32;

fn variant_init(t: u32) {
    slot = t;
}
fn vl(v: u32, s: u32, i: u32) -> C {
    return scratch[(v * P.n_levels + i) * P.ntraj + slot];
}
fn vs(v: u32, s: u32, i: u32, x: C) {
    scratch[(v * P.n_levels + i) * P.ntraj + slot] = x;
}
fn u_ld(i: u32) -> C {
    return scratch[(7u * P.n_levels + i) * P.ntraj + slot];
}
fn u_st(i: u32, x: C) {
    scratch[(7u * P.n_levels + i) * P.ntraj + slot] = x;
}
fn sync() {}
fn reduce(x: R4) -> R4 {
    return x;
}

// PSI and KVP stay in the scratch region between dispatches.
fn save_vectors() {}
fn load_vectors() {}

@compute @workgroup_size(LANE_GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if gid.x < P.ntraj {
        run_trajectory(gid.x, 0u);
    }
}
