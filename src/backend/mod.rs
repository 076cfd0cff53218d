//! Compute backends.
//!
//! `Cpu` is the reference for every kernel and the default where there is no GPU. The GPU
//! backend (wgpu compute shaders, `gpu`, behind the default Cargo feature `gpu`) runs what
//! comes in batches large enough to fill a device: quantum trajectories, scans of evolutions
//! (`kind = "scan"`, `mode = "evolve"`: every scan point's density matrix in one
//! `master_batch`) and cumulant sweeps (`kind = "sweep"`: one `cumulant_batch` invocation per
//! parameter point). Which backend a task runs on is decided in one place,
//! `crate::task::policy`.

#[cfg(feature = "gpu")]
pub mod gpu;

use crate::error::InputError;
use serde::Serialize;

/// A GPU context a caller already holds and hands to a run (tests share one per binary).
#[cfg(feature = "gpu")]
pub type SharedGpu = Option<std::sync::Arc<gpu::GpuContext>>;
/// Without the `gpu` feature there is no GPU context to hand over (`SharedGpu` is always None).
#[cfg(not(feature = "gpu"))]
pub type SharedGpu = Option<NoGpu>;

/// The GPU context of a build without the `gpu` feature: there is none (uninhabited).
#[cfg(not(feature = "gpu"))]
#[derive(Debug, Clone)]
pub enum NoGpu {}

/// What the user asked for (`--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    Auto,
    Cpu,
    Gpu,
}

impl std::str::FromStr for BackendChoice {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, InputError> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "cpu" => Ok(BackendChoice::Cpu),
            "gpu" => Ok(BackendChoice::Gpu),
            other => Err(InputError::invalid("--backend", other, "one of auto, cpu, gpu")),
        }
    }
}

/// The backend a run actually used, recorded in result.json.
#[derive(Debug, Clone, Serialize)]
pub struct BackendUsed {
    /// "cpu" or "gpu".
    pub name: &'static str,
    /// Device description: CPU threads, or the adapter name.
    pub device: String,
    /// Floating-point precision of the kernels that ran.
    pub precision: &'static str,
    /// Why this backend was chosen (e.g. auto's fallback reason).
    pub note: String,
}

/// A wgpu adapter as reported by `dicke info`.
#[derive(Debug, Clone, Serialize)]
pub struct AdapterReport {
    pub name: String,
    pub device_type: String,
    pub backend: String,
    pub driver: String,
    pub shader_f64: bool,
}

/// Enumerate the wgpu adapters on this machine (all backends). Never fails: no adapter is an
/// empty list (always, in a build without the `gpu` feature).
#[cfg(not(feature = "gpu"))]
pub fn adapters() -> Vec<AdapterReport> {
    Vec::new()
}

/// Enumerate the wgpu adapters on this machine (all backends). Never fails: no adapter is an
/// empty list.
#[cfg(feature = "gpu")]
pub fn adapters() -> Vec<AdapterReport> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let list = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    list.into_iter()
        .map(|a| {
            let info = a.get_info();
            AdapterReport {
                name: info.name,
                device_type: format!("{:?}", info.device_type),
                backend: format!("{:?}", info.backend),
                driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
                shader_f64: a.features().contains(wgpu::Features::SHADER_F64),
            }
        })
        .collect()
}
