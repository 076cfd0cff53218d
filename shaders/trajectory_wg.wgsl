// Variant "wg" of the trajectory kernel: one workgroup of WG invocations per trajectory; the
// stage vector u, read across invocations by the stencil, lives in workgroup memory, the other
// per-level vectors in private slots of the invocation that owns the level (level
// i = lane + s * WG, slot s < PER_LANE). Used when 2j + 1 <= min(WG_CAP, WG * PER_LANE).
// Siblings: trajectory_st.wgsl, trajectory_lane.wgsl.

// Invocations per trajectory (pipeline constant; a power of two <= 256).
override WG: u32 = 256u;

var<workgroup> wu: array<C, WG_CAP>;
var<workgroup> red: array<R4, 256>;
var<private> pv: array<C, PV_LEN>;

var<private> wslot: u32;

fn variant_init(slot: u32) {
    wslot = slot;
}
fn vl(v: u32, s: u32, i: u32) -> C {
    return pv[v * PER_LANE + s];
}
fn vs(v: u32, s: u32, i: u32, x: C) {
    pv[v * PER_LANE + s] = x;
}
fn u_ld(i: u32) -> C {
    return wu[i];
}
fn u_st(i: u32, x: C) {
    wu[i] = x;
}
fn sync() {
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

// PSI and KVP (private) are kept between dispatches in `vsave`: 2 (N + 1) per trajectory slot.
@group(0) @binding(10) var<storage, read_write> vsave: array<C>;
fn save_vectors() {
    let base = wslot * 2u * P.n_levels;
    for (var s = 0u; ; s = s + 1u) {
        let i = lane + s * WG;
        if i >= nlev {
            break;
        }
        vsave[base + i] = vl(PSI, s, i);
        vsave[base + P.n_levels + i] = vl(KVP, s, i);
    }
}
fn load_vectors() {
    let base = wslot * 2u * P.n_levels;
    for (var s = 0u; ; s = s + 1u) {
        let i = lane + s * WG;
        if i >= nlev {
            break;
        }
        vs(PSI, s, i, vsave[base + i]);
        vs(KVP, s, i, vsave[base + P.n_levels + i]);
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    if wid.x < P.ntraj {
        run_trajectory(wid.x, li);
    }
}
