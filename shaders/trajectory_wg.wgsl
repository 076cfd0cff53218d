// Storage variant "wg" of the trajectory kernel: the stage vector u, read across invocations
// by the stencil, lives in workgroup memory; the other per-level vectors live in private
// slots of the invocation that owns the level (level i = lane + s * WG, slot s < PER_LANE).
// Used when 2j + 1 <= min(WG_CAP, WG * PER_LANE). Twin of trajectory_st.wgsl.

var<workgroup> wu: array<C, WG_CAP>;
var<private> pv: array<C, PV_LEN>;

fn variant_init(slot: u32) {}
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
