// Storage variant "st" of the trajectory kernel, for ladders too long for workgroup memory:
// every per-level vector of the trajectory (7 private ones and the shared stage vector u)
// lives in a storage scratch region of 8 (2j + 1) complex numbers per workgroup slot.
// Twin of trajectory_wg.wgsl.

@group(0) @binding(6) var<storage, read_write> scratch: array<C>;
var<private> sbase: u32;

fn variant_init(slot: u32) {
    sbase = slot * 8u * nlev;
}
fn vl(v: u32, s: u32, i: u32) -> C {
    return scratch[sbase + v * nlev + i];
}
fn vs(v: u32, s: u32, i: u32, x: C) {
    scratch[sbase + v * nlev + i] = x;
}
fn u_ld(i: u32) -> C {
    return scratch[sbase + 7u * nlev + i];
}
fn u_st(i: u32, x: C) {
    scratch[sbase + 7u * nlev + i] = x;
}
fn sync() {
    storageBarrier();
    workgroupBarrier();
}
