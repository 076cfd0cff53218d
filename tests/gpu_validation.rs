//! The canary of CI's step "GPU tests under the Vulkan validation layer" (`.ci/run`).
//!
//! wgpu enables `VK_LAYER_KHRONOS_validation` with `WGPU_VALIDATION=1`, but in a release build
//! it forwards the layer's messages only to the `log` crate and only with `WGPU_DEBUG` as well,
//! and DEBUG makes naga write `OpSource WGSL`, which the SPIR-V validator of Debian 12's layer
//! (1.3.239) does not know: it then rejects every module at that line and checks nothing
//! else in it. So CI runs the GPU tests without DEBUG and lets the layer write its own log
//! (a `vk_layer_settings.txt` with `khronos_validation.log_filename`), and fails when the log
//! is not empty.
//!
//! For that step to be able to fail, this test makes a mistake the project once made
//! (DESIGN.md, GPU facts): WGSL's f64 `exp` passes naga but becomes invalid SPIR-V
//! (GLSL.std.450 Exp takes 16/32-bit floats only), which drivers silently miscompile. The CI
//! step runs it first and requires the layer's log to name `GLSL.std.450 Exp`, which proves
//! the layer is loaded and its log is read. The test itself can only fail on a missing adapter
//! or one without f64; it is ignored in plain `cargo test` runs.
#![cfg(feature = "gpu")] // GPU kernels only exist in builds with the `gpu` feature

use dicke::backend::gpu::test_context;

const BAD_F64: &str = r#"
@group(0) @binding(0) var<storage, read_write> x: array<f64>;
@compute @workgroup_size(1)
fn main() {
    x[0] = exp(x[0]);
}
"#;

#[test]
#[ignore = "canary for .ci/run's validation-layer step, which checks the layer's log"]
fn validation_canary_invalid_f64_exp() {
    let ctx = test_context("validation_canary_invalid_f64_exp")
        .expect("the validation canary needs a GPU adapter (lavapipe in CI)");
    assert!(
        ctx.info().has_f64,
        "the validation canary needs SHADER_F64; adapter `{}` has none",
        ctx.info().name
    );
    let device = ctx.device();
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("dicke.test.bad_f64_exp"),
        source: wgpu::ShaderSource::Wgsl(BAD_F64.into()),
    });
    let _pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("dicke.test.bad_f64_exp"),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let _ = device.poll(wgpu::PollType::wait_indefinitely());
}
