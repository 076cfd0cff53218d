// Precision prelude of the f64 master_batch module (needs SHADER_F64). Only arithmetic and
// sqrt run in f64: WGSL's f64 pow/exp/log return garbage on the drivers measured (DESIGN.md),
// so the controller's power is evaluated in f32. It only chooses the next step size (relative
// error ~1e-7 in h, which the error control absorbs); it never enters the solution.
// Twin: `impl Real for f64` in src/backend/gpu/master_batch.rs.

alias R = f64;
alias C = vec2<f64>;

const R_MAX: f64 = 1.7976931348623157e308lf;

// x^y evaluated in f32 with x clamped to [1e-30, 1e30] (see above).
fn powc(x: R, y: f32) -> R {
    return f64(pow(f32(clamp(x, 1e-30lf, 1e30lf)), y));
}
