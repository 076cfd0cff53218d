// Precision prelude of the f32 master_batch module: the working type R, the complex C = vec2<R>
// (x = re, y = im), the largest finite R, and the power used by the step-size controller.
// Twin: `impl Real for f32` in src/backend/gpu/master_batch.rs.

alias R = f32;
alias C = vec2<f32>;

const R_MAX: f32 = 3.40282347e38;

// x^y for the step-size controller and the initial-step estimate, with x clamped to
// [1e-30, 1e30] (the controller clamps its factor far inside that range anyway).
fn powc(x: R, y: f32) -> R {
    return pow(clamp(x, 1e-30, 1e30), y);
}
