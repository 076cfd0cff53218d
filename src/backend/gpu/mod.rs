//! GPU backend: one [`GpuContext`] (wgpu device, queue and every pipeline, built once) that
//! kernels borrow.
//!
//! Adapter policy ([`GpuOptions`]): a real GPU (discrete, then integrated, then virtual) is
//! always preferred; a software adapter (device type `Cpu`: Mesa's lavapipe/llvmpipe,
//! SwiftShader) is used only when `allow_software` is set, because it runs our kernels 3.5-5x
//! slower than the plain CPU backend (DESIGN.md, "GPU facts"). `--backend auto` should create
//! the context with [`GpuOptions::auto`] and fall back to the CPU on [`GpuError::NoAdapter`];
//! `--backend gpu` uses [`GpuOptions::explicit`], which accepts lavapipe.
//!
//! The device is requested with `adapter.limits()` (the adapter's real limits, not WebGPU's
//! defaults) and with `SHADER_F64` when the adapter has it ([`GpuInfo::has_f64`]). Instance
//! flags come from the build configuration plus the environment, so `WGPU_VALIDATION=1` turns
//! the Vulkan validation layer on and `WGPU_BACKEND=vulkan` restricts the backends. (How CI
//! turns the layer's messages into a failure: `tests/gpu_validation.rs`.)
//!
//! Nothing on a device path panics: no adapter, a failed device request, a shader or
//! validation error, a failed mapping and a lost device all come back as [`GpuError`]. wgpu's
//! default handler for uncaptured errors panics, so the context installs its own and wraps
//! every operation in an error scope.
//!
//! Shaders live in [`shaders`]. The kernels: [`trajectory`] (quantum trajectories),
//! [`master_batch`] (batched master equation), [`cumulant_batch`] (batched cumulant equations),
//! all three run by one batch driver ([`driver`]: chunks, dispatch rounds, suspension and
//! resumption under a software adapter's loop limit, status codes, read-back); and the Philox
//! stream fill used to test that the GPU random numbers are bit-identical to [`crate::rng`]
//! ([`GpuContext::philox_fill`]). Error types live below the backends: [`GpuError`] is
//! [`crate::error::GpuError`].

pub mod cumulant_batch;
pub mod driver;
pub mod master_batch;
pub mod philox_fill;
pub mod shaders;
pub mod trajectory;

use serde::Serialize;
use std::sync::{Arc, Mutex, OnceLock};

pub use crate::error::GpuError;
pub use philox_fill::FillParams;

/// How to pick the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuOptions {
    /// Accept a software (`Cpu`-type) adapter such as lavapipe when no real GPU exists.
    pub allow_software: bool,
    /// Backends to search; `None` means `WGPU_BACKEND` from the environment, else all.
    pub backends: Option<wgpu::Backends>,
}

impl GpuOptions {
    /// For `--backend auto`: real GPUs only (the caller falls back to the CPU backend).
    pub fn auto() -> Self {
        Self {
            allow_software: false,
            backends: None,
        }
    }

    /// For `--backend gpu` and for tests: a real GPU if there is one, else a software adapter.
    pub fn explicit() -> Self {
        Self {
            allow_software: true,
            backends: None,
        }
    }
}

impl Default for GpuOptions {
    fn default() -> Self {
        Self::auto()
    }
}

/// The adapter a context runs on, for `dicke info` and result.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuInfo {
    /// Adapter name, e.g. "NVIDIA H100 80GB HBM3" or "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// wgpu device type: DiscreteGpu, IntegratedGpu, VirtualGpu, Cpu, Other.
    pub device_type: String,
    /// Graphics API: Vulkan, Metal, Dx12, Gl.
    pub backend: String,
    /// Driver name and version.
    pub driver: String,
    /// A software rasteriser (lavapipe, SwiftShader), not a real GPU.
    pub software: bool,
    /// The device was created with SHADER_F64: f64 kernels can run.
    pub has_f64: bool,
}

/// Names of software rasterisers that may not report device type `Cpu` (e.g. through GL).
const SOFTWARE_NAMES: [&str; 4] = ["llvmpipe", "lavapipe", "softpipe", "swiftshader"];

/// Whether an adapter is a software rasteriser.
pub fn is_software(name: &str, device_type: wgpu::DeviceType) -> bool {
    let lower = name.to_ascii_lowercase();
    device_type == wgpu::DeviceType::Cpu || SOFTWARE_NAMES.iter().any(|s| lower.contains(s))
}

/// The selection policy as a score (higher is better), or `Err(why not)` for an adapter that
/// must not be used. Device type first, then a compute-capable native API over GL, then f64.
pub fn adapter_score(
    name: &str,
    device_type: wgpu::DeviceType,
    backend: wgpu::Backend,
    has_f64: bool,
    allow_software: bool,
) -> Result<u32, &'static str> {
    use wgpu::{Backend, DeviceType};
    if backend == Backend::Noop {
        return Err("no-op backend");
    }
    let software = is_software(name, device_type);
    if software && !allow_software {
        return Err("software rasteriser, used only when asked for (--backend gpu)");
    }
    let kind = match device_type {
        _ if software => 0,
        DeviceType::DiscreteGpu => 400,
        DeviceType::IntegratedGpu => 300,
        DeviceType::VirtualGpu => 200,
        DeviceType::Other => 100,
        DeviceType::Cpu => 0,
    };
    let api = match backend {
        Backend::Vulkan | Backend::Metal | Backend::Dx12 => 20,
        _ => 0,
    };
    Ok(kind + api + if has_f64 { 5 } else { 0 })
}

/// Sticky error slots filled by wgpu callbacks (device lost, uncaptured errors).
#[derive(Debug, Default)]
struct Alarms {
    lost: Mutex<Option<String>>,
    uncaptured: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked while holding it; the data (an
    // Option<String> or cached buffers that are rebuilt when too small) is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The GPU: device, queue and every pipeline, created once and shared by all kernels.
pub struct GpuContext {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: GpuInfo,
    limits: wgpu::Limits,
    alarms: Arc<Alarms>,
    philox: philox_fill::PhiloxFillKernel,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl GpuContext {
    /// Pick an adapter by the policy above, create the device and build every pipeline.
    pub fn new(options: &GpuOptions) -> Result<Self, GpuError> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if let Some(b) = options.backends {
            desc.backends = b;
        }
        let backends = desc.backends;
        let instance = wgpu::Instance::new(desc);
        let adapters = pollster::block_on(instance.enumerate_adapters(backends));

        let mut candidates = Vec::new();
        let mut report = Vec::new();
        for (i, adapter) in adapters.into_iter().enumerate() {
            let info = adapter.get_info();
            let f64 = adapter.features().contains(wgpu::Features::SHADER_F64);
            let label = format!("`{}` ({:?}, {:?})", info.name, info.backend, info.device_type);
            match adapter_score(
                &info.name,
                info.device_type,
                info.backend,
                f64,
                options.allow_software,
            ) {
                Ok(score) => candidates.push((score, i, adapter)),
                Err(why) => report.push(format!("{label}: {why}")),
            }
        }
        // Best score first; ties keep enumeration order.
        candidates.sort_by_key(|&(score, i, _)| (std::cmp::Reverse(score), i));

        if candidates.is_empty() {
            let details = if report.is_empty() {
                format!(
                    "no adapter found on backends {backends:?} (no working driver); \
                     install a GPU driver, or Mesa's lavapipe for testing \
                     (apt-get install mesa-vulkan-drivers libvulkan1) and ask for it with --backend gpu"
                )
            } else {
                format!("found only {}", report.join("; "))
            };
            return Err(GpuError::NoAdapter { details });
        }

        let mut last_err = None;
        for (_, _, adapter) in candidates {
            match Self::with_adapter(&adapter) {
                Ok(ctx) => return Ok(ctx),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| GpuError::NoAdapter {
            details: "no candidate adapter".into(),
        }))
    }

    fn with_adapter(adapter: &wgpu::Adapter) -> Result<Self, GpuError> {
        let ainfo = adapter.get_info();
        let has_f64 = adapter.features().contains(wgpu::Features::SHADER_F64);
        let features = if has_f64 {
            wgpu::Features::SHADER_F64
        } else {
            wgpu::Features::empty()
        };
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("dicke.device"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| GpuError::RequestDevice {
            adapter: ainfo.name.clone(),
            message: e.to_string(),
        })?;

        let alarms = Arc::new(Alarms::default());
        {
            let alarms = Arc::clone(&alarms);
            device.set_device_lost_callback(move |reason, message| {
                *lock(&alarms.lost) = Some(format!("{reason:?}: {message}"));
            });
        }
        {
            let alarms = Arc::clone(&alarms);
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                let mut slot = lock(&alarms.uncaptured);
                if slot.is_none() {
                    *slot = Some(e.to_string());
                }
            }));
        }

        let info = GpuInfo {
            software: is_software(&ainfo.name, ainfo.device_type),
            name: ainfo.name,
            device_type: format!("{:?}", ainfo.device_type),
            backend: format!("{:?}", ainfo.backend),
            driver: format!("{} {}", ainfo.driver, ainfo.driver_info)
                .trim()
                .to_string(),
            has_f64,
        };
        let philox = philox_fill::PhiloxFillKernel::new(&device, has_f64)?;
        Ok(Self {
            device,
            queue,
            info,
            limits,
            alarms,
            philox,
        })
    }

    /// The adapter this context runs on.
    pub fn info(&self) -> &GpuInfo {
        &self.info
    }

    /// The device limits (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// Compile a registered WGSL module inside a validation scope; an error names the module.
    pub(crate) fn shader_module(&self, def: &shaders::ShaderDef) -> Result<wgpu::ShaderModule, GpuError> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(def.name),
            source: wgpu::ShaderSource::Wgsl(def.source.into()),
        });
        match pollster::block_on(scope.pop()) {
            None => Ok(module),
            Some(e) => Err(GpuError::Shader {
                module: def.name,
                message: e.to_string(),
            }),
        }
    }

    /// An unmapped buffer of at least `size` bytes, rounded up to a multiple of 16 (wgpu refuses
    /// zero-sized bindings; copies need 4-byte multiples).
    pub(crate) fn padded_buffer(
        &self,
        label: &'static str,
        size: u64,
        usage: wgpu::BufferUsages,
    ) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: size.max(16).next_multiple_of(16),
            usage,
            mapped_at_creation: false,
        })
    }

    /// The bind-group layout and pipeline layout of a compute kernel whose bindings 0, 1, ...
    /// are buffers of the given types, labelled `{label}.bind_group_layout` and
    /// `{label}.pipeline_layout` (`label` e.g. `"dicke.master_batch"`).
    pub(crate) fn compute_layouts(
        &self,
        label: &str,
        buffers: &[wgpu::BufferBindingType],
    ) -> (wgpu::BindGroupLayout, wgpu::PipelineLayout) {
        driver::compute_layouts(&self.device, label, buffers)
    }

    /// `Err` if the device was lost or an error escaped the error scopes since the last check.
    pub fn check(&self) -> Result<(), GpuError> {
        if let Some(reason) = lock(&self.alarms.lost).clone() {
            return Err(GpuError::DeviceLost { reason });
        }
        if let Some(message) = lock(&self.alarms.uncaptured).take() {
            return Err(GpuError::Validation {
                operation: "an earlier GPU operation",
                message,
            });
        }
        Ok(())
    }

    /// Run `f` (encoding, submitting) inside a validation and an out-of-memory error scope,
    /// turning any error it raises into `GpuError::Validation { operation }`.
    pub(crate) fn scoped<T>(
        &self,
        operation: &'static str,
        f: impl FnOnce() -> Result<T, GpuError>,
    ) -> Result<T, GpuError> {
        self.check()?;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = v.or(o) {
            return Err(GpuError::Validation {
                operation,
                message: e.to_string(),
            });
        }
        let out = out?;
        self.check()?;
        Ok(out)
    }

    /// Block until the queue is idle.
    pub(crate) fn wait(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::DeviceLost {
                reason: format!("waiting for the GPU failed: {e}"),
            })?;
        self.check()
    }

    /// Copy `bytes` bytes of the mappable `staging` buffer back to host memory.
    pub(crate) fn read_back(
        &self,
        staging: &wgpu::Buffer,
        label: &'static str,
        bytes: u64,
    ) -> Result<Vec<u8>, GpuError> {
        let slice = staging.slice(..bytes);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            // The receiver outlives the poll below; a send error cannot be acted on anyway.
            let _ = tx.send(r);
        });
        self.wait()?;
        // With several threads on one device (tests share a context), another thread's poll
        // can take this mapping's callback and not yet have run it when our poll returns (seen
        // as "did not complete" with three scans in parallel): wait a bounded time for it,
        // polling again.
        let mut got = rx.try_recv().ok();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while got.is_none() && std::time::Instant::now() < deadline {
            let _ = self.device.poll(wgpu::PollType::Poll);
            got = rx.recv_timeout(std::time::Duration::from_millis(5)).ok();
        }
        match got {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                return Err(GpuError::Buffer {
                    label,
                    message: format!("mapping for read-back failed: {e}"),
                });
            }
            None => {
                self.check()?;
                return Err(GpuError::Buffer {
                    label,
                    message: "mapping for read-back did not complete".into(),
                });
            }
        }
        let out = {
            let view = slice.get_mapped_range().map_err(|e| GpuError::Buffer {
                label,
                message: format!("cannot view mapped range: {e}"),
            })?;
            view.to_vec()
        };
        staging.unmap();
        Ok(out)
    }
}

/// Environment variable that turns "no GPU adapter" in GPU tests from a reported skip into a
/// failure (CI sets it, with lavapipe installed).
pub const REQUIRE_GPU_ENV: &str = "DICKE_REQUIRE_GPU";

fn require_gpu() -> bool {
    std::env::var(REQUIRE_GPU_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Print a skip notice for a test so that it shows in `cargo test` output. Written to the
/// stderr handle directly: libtest captures `eprintln!` and shows it only for failing tests.
pub fn report_skip(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// The shared GPU context for tests (software adapters allowed), created once per test binary.
///
/// Without an adapter it prints `SKIPPED: no GPU adapter ...` to stderr (visible even under
/// libtest's output capture) and returns `None`, so the test is visibly skipped rather than silently passing; with `DICKE_REQUIRE_GPU=1` it
/// panics with the reason instead. For tests only: library code never prints.
pub fn test_context(test: &str) -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Result<Arc<GpuContext>, String>> = OnceLock::new();
    let ctx = CTX.get_or_init(|| {
        GpuContext::new(&GpuOptions::explicit())
            .map(Arc::new)
            .map_err(|e| e.to_string())
    });
    match ctx {
        Ok(ctx) => Some(Arc::clone(ctx)),
        Err(reason) if require_gpu() => {
            panic!("{test}: {REQUIRE_GPU_ENV} is set but no GPU context could be created: {reason}")
        }
        Err(reason) => {
            report_skip(&format!(
                "SKIPPED: no GPU adapter (set {REQUIRE_GPU_ENV}=1 to fail instead): {test}: {reason}"
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wgpu::{Backend, DeviceType};

    #[test]
    fn policy_prefers_real_gpus_and_refuses_software_unless_asked() {
        let s = |name, ty, be, allow| adapter_score(name, ty, be, false, allow);
        let discrete = s("NVIDIA H100", DeviceType::DiscreteGpu, Backend::Vulkan, false).unwrap();
        let integrated = s("Intel UHD", DeviceType::IntegratedGpu, Backend::Vulkan, false).unwrap();
        assert!(discrete > integrated);
        assert!(s("llvmpipe (LLVM 15)", DeviceType::Cpu, Backend::Vulkan, false).is_err());
        // Software through GL may not say Cpu; the name gives it away.
        assert!(s("llvmpipe (LLVM 15)", DeviceType::Other, Backend::Gl, false).is_err());
        let lavapipe = s("llvmpipe (LLVM 15)", DeviceType::Cpu, Backend::Vulkan, true).unwrap();
        assert!(lavapipe < integrated);
        // Same device: a native compute API beats GL, and f64 breaks ties.
        let gl = s("Intel UHD", DeviceType::IntegratedGpu, Backend::Gl, false).unwrap();
        assert!(integrated > gl);
        let with_f64 = adapter_score(
            "Intel UHD",
            DeviceType::IntegratedGpu,
            Backend::Vulkan,
            true,
            false,
        )
        .unwrap();
        assert!(with_f64 > integrated);
        assert!(s("noop", DeviceType::Other, Backend::Noop, true).is_err());
    }

    #[test]
    fn errors_read_as_sentences() {
        let e = GpuError::NoAdapter {
            details: "found only `llvmpipe` (Vulkan, Cpu): software rasteriser".into(),
        };
        assert!(e.to_string().starts_with("no usable GPU adapter: found only"));
    }

    #[test]
    fn context_fill_matches_cpu_or_is_reported_skipped() {
        let Some(ctx) = test_context("backend::gpu::tests::context_fill_matches_cpu_or_is_reported_skipped")
        else {
            return;
        };
        let got = ctx.philox_fill(5, 10, 3, 2).expect("philox_fill");
        let want: Vec<[u32; 4]> = (10..13)
            .flat_map(|t| {
                let mut s = crate::rng::PhiloxStream::new(5, t);
                [s.next_u32x4(), s.next_u32x4()]
            })
            .collect();
        assert_eq!(got, want);
    }
}
