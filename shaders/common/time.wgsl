// Time as an unevaluated pair hi + lo (vec2<R>) and the finiteness test of the batched
// integrators (master_batch.wgsl, cumulant_batch.wgsl), on the working type R and its largest
// finite value R_MAX from the precision prelude (master_batch_f32.wgsl | master_batch_f64.wgsl).
// Prepended by the registry (src/backend/gpu/shaders.rs). In f32 the pair keeps the clock exact
// to ~2^-48 relative, so the step sizes, not the clock, carry the rounding.

fn finite(x: R) -> bool {
    return abs(x) <= R_MAX;
}

// Knuth's TwoSum: s + e = a + b exactly.
fn two_sum(a: R, b: R) -> vec2<R> {
    let s = a + b;
    let bb = s - a;
    return vec2<R>(s, (a - (s - bb)) + (b - bb));
}

// Time pair + step.
fn t_add(t: vec2<R>, h: R) -> vec2<R> {
    let s = two_sum(t.x, h);
    let lo = t.y + s.y;
    let hi = s.x + lo;
    return vec2<R>(hi, lo - (hi - s.x));
}

fn t_le(a: vec2<R>, b: vec2<R>) -> bool {
    return a.x < b.x || (a.x == b.x && a.y <= b.y);
}

// a - b as one R.
fn t_sub(a: vec2<R>, b: vec2<R>) -> R {
    return (a.x - b.x) + (a.y - b.y);
}
