// Variant "st" of the trajectory kernel, for ladders too long for workgroup memory: one
// workgroup of WG invocations per trajectory, every per-level vector of the trajectory (7
// private ones and the shared stage vector u) in a storage scratch region of 8 (N + 1) complex
// numbers per workgroup slot. Siblings: trajectory_wg.wgsl, trajectory_lane.wgsl.

// Invocations per trajectory (pipeline constant; a power of two <= 256).
override WG: u32 = 256u;

@group(0) @binding(6) var<storage, read_write> scratch: array<C>;
var<workgroup> red: array<R4, 256>;
var<private> sbase: u32;

fn variant_init(slot: u32) {
    sbase = slot * 8u * P.n_levels;
}
fn vl(v: u32, s: u32, i: u32) -> C {
    return scratch[sbase + v * P.n_levels + i];
}
fn vs(v: u32, s: u32, i: u32, x: C) {
    scratch[sbase + v * P.n_levels + i] = x;
}
fn u_ld(i: u32) -> C {
    return scratch[sbase + 7u * P.n_levels + i];
}
fn u_st(i: u32, x: C) {
    scratch[sbase + 7u * P.n_levels + i] = x;
}
fn sync() {
    storageBarrier();
    workgroupBarrier();
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

// PSI and KVP stay in the scratch region between dispatches.
fn save_vectors() {}
fn load_vectors() {}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    if wid.x < P.ntraj {
        run_trajectory(wid.x, li);
    }
}
