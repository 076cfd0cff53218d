//! The backend policy: one function, [`resolve`], maps the requested backend (`--backend`),
//! what the task can run on the GPU ([`Kernel`]) and the adapter to the backend that runs and
//! the reason, for every task.
//!
//! - `cpu`: the CPU (every task has a CPU path; it is the reference of every kernel).
//! - `gpu`: any adapter (lavapipe included: asked for explicitly); an error if there is none,
//!   if the task has no GPU kernel, or if the adapter cannot run the requested precision.
//! - `auto` (the default): a real GPU when one exists and can run the task, else the CPU with
//!   the reason recorded in result.json. Software adapters are never chosen by `auto`: they
//!   are slower than the CPU twins (DESIGN.md).
//!
//! Precision: as asked, else f64 where the adapter has SHADER_F64, else f32. The f32 kernels
//! need tolerances above `f32_floors` (their error estimate is computed in f32): an explicit
//! f32 below them is refused by the scenario parser; here they refuse (`gpu`) or route to the
//! CPU (`auto`) the default f32 of an adapter without f64.

use crate::backend::{BackendChoice, BackendUsed, SharedGpu};
#[cfg(feature = "gpu")]
use crate::error::InputError;
use crate::error::{Error, SolverError};
use crate::precision::Precision;

/// What a task can run on the GPU.
pub enum Kernel<'a> {
    /// No GPU kernel; `solver` names the CPU solver in messages.
    CpuOnly { solver: &'static str },
    /// A WGSL kernel with a CPU twin.
    Gpu {
        /// The precision the scenario asked for (None: the adapter's best).
        asked: Option<Precision>,
        /// The CPU twin runs the asked precision (trajectories) rather than always f64 (the
        /// batched integrators).
        cpu_follows_precision: bool,
        /// Tolerances the f32 kernel needs: (field, value, minimum).
        f32_floors: &'a [(&'static str, f64, f64)],
        /// Why this configuration runs on the CPU only: `auto` falls back, `gpu` is refused.
        cpu_only: Option<&'a str>,
    },
}

/// The resolved backend.
pub enum Engine {
    Cpu {
        /// The precision the CPU path runs.
        precision: Precision,
        note: String,
    },
    #[cfg(feature = "gpu")]
    Gpu {
        ctx: std::sync::Arc<crate::backend::gpu::GpuContext>,
        precision: Precision,
        note: String,
    },
}

impl Engine {
    /// Backend and precision in a checkpoint's `engine` ("cpu f64", "gpu f32"): units of
    /// different engines are never mixed ([`super::checkpoint`]).
    pub fn tag(&self) -> String {
        match self {
            Engine::Cpu { precision, .. } => format!("cpu {}", precision.name()),
            #[cfg(feature = "gpu")]
            Engine::Gpu { precision, .. } => format!("gpu {}", precision.name()),
        }
    }

    /// The record of this backend for result.json; `device` overrides the default CPU
    /// description (the trajectory twin names its SIMD path).
    pub fn used(&self, cpu_device: Option<String>) -> BackendUsed {
        match self {
            Engine::Cpu { precision, note } => BackendUsed {
                name: "cpu",
                device: cpu_device.unwrap_or_else(cpu_threads),
                precision: precision.name(),
                note: note.clone(),
            },
            #[cfg(feature = "gpu")]
            Engine::Gpu { ctx, precision, note } => {
                let info = ctx.info();
                BackendUsed {
                    name: "gpu",
                    device: format!("{} ({}, {})", info.name, info.device_type, info.backend),
                    precision: precision.name(),
                    note: note.clone(),
                }
            }
        }
    }
}

/// The CPU device description.
pub fn cpu_threads() -> String {
    format!("{} rayon threads", rayon::current_num_threads())
}

/// Resolve the backend of a task (module doc).
pub fn resolve(requested: BackendChoice, kernel: &Kernel, gpu: SharedGpu) -> Result<Engine, Error> {
    if requested == BackendChoice::Gpu && !cfg!(feature = "gpu") {
        return gpu_explicit(gpu, None, &[]);
    }
    match kernel {
        Kernel::CpuOnly { solver } => cpu_only(requested, solver),
        Kernel::Gpu {
            asked,
            cpu_follows_precision,
            f32_floors,
            cpu_only,
        } => {
            let cpu = |note: String| {
                let precision = match (cpu_follows_precision, asked) {
                    (true, Some(p)) => *p,
                    _ => Precision::F64,
                };
                let note = match (cpu_follows_precision, asked) {
                    (false, Some(Precision::F32)) => format!(
                        "{note}; precision = \"f32\" is the GPU kernel's, the CPU integrator runs in f64"
                    ),
                    _ => note,
                };
                Ok(Engine::Cpu { precision, note })
            };
            match requested {
                BackendChoice::Cpu => cpu("requested".into()),
                BackendChoice::Auto if cpu_only.is_some() => cpu(format!("auto: {}", cpu_only.unwrap_or(""))),
                BackendChoice::Gpu if cpu_only.is_some() => Err(SolverError::Unsupported {
                    solver: "gpu",
                    message: format!("{}; run with --backend cpu or auto", cpu_only.unwrap_or("")),
                }
                .into()),
                BackendChoice::Gpu => gpu_explicit(gpu, *asked, f32_floors),
                BackendChoice::Auto => gpu_auto(gpu, *asked, f32_floors, cpu),
            }
        }
    }
}

/// A task with only a CPU solver: `auto` resolves to the CPU, `gpu` is refused with a
/// message rather than silently run elsewhere.
fn cpu_only(requested: BackendChoice, solver: &'static str) -> Result<Engine, Error> {
    let note = match requested {
        BackendChoice::Cpu => "requested".to_string(),
        BackendChoice::Auto => format!("auto: the {solver} solver runs on the CPU in this version"),
        BackendChoice::Gpu => {
            return Err(SolverError::Unsupported {
                solver,
                message: "has no GPU kernel for this task (the GPU runs kind = \"trajectories\" and \
                          kind = \"scan\" with mode = \"evolve\", a batch of evolutions, and \
                          kind = \"sweep\"); run with --backend cpu or auto"
                    .into(),
            }
            .into());
        }
    };
    Ok(Engine::Cpu {
        precision: Precision::F64,
        note,
    })
}

/// The f32 floor a precision violates, if any.
#[cfg(feature = "gpu")]
fn below(precision: Precision, floors: &[(&'static str, f64, f64)]) -> Option<(&'static str, f64, f64)> {
    if precision == Precision::F32 {
        floors.iter().find(|(_, v, min)| v < min).copied()
    } else {
        None
    }
}

#[cfg(feature = "gpu")]
fn best_precision(ctx: &crate::backend::gpu::GpuContext, asked: Option<Precision>) -> Precision {
    asked.unwrap_or(if ctx.info().has_f64 {
        Precision::F64
    } else {
        Precision::F32
    })
}

/// `--backend gpu`: the caller's context, else a new one on any adapter.
#[cfg(feature = "gpu")]
fn gpu_explicit(
    gpu: SharedGpu,
    asked: Option<Precision>,
    floors: &[(&'static str, f64, f64)],
) -> Result<Engine, Error> {
    use crate::backend::gpu::{GpuContext, GpuOptions};
    let ctx = match gpu {
        Some(ctx) => ctx,
        None => std::sync::Arc::new(GpuContext::new(&GpuOptions::explicit())?),
    };
    let precision = best_precision(&ctx, asked);
    if let Some((field, value, min)) = below(precision, floors) {
        return Err(InputError::invalid(
            field,
            value,
            format!(
                "{} >= {min:e}: adapter `{}` has no SHADER_F64, so the task runs the f32 \
                 kernel, whose error estimate is computed in f32; or run with --backend cpu",
                field.trim_start_matches("task."),
                ctx.info().name
            ),
        )
        .into());
    }
    Ok(Engine::Gpu {
        ctx,
        precision,
        note: "requested".into(),
    })
}

/// `--backend auto`: a real GPU that can run the task, else the CPU and why.
#[cfg(feature = "gpu")]
fn gpu_auto(
    gpu: SharedGpu,
    asked: Option<Precision>,
    floors: &[(&'static str, f64, f64)],
    cpu: impl Fn(String) -> Result<Engine, Error>,
) -> Result<Engine, Error> {
    use crate::backend::gpu::{GpuContext, GpuOptions};
    let ctx = match gpu {
        Some(ctx) if !ctx.info().software => ctx,
        Some(ctx) => {
            return cpu(format!(
                "auto: no real GPU adapter, running on the CPU (adapter `{}` is a software \
                 rasteriser, used only with --backend gpu)",
                ctx.info().name
            ));
        }
        None => match GpuContext::new(&GpuOptions::auto()) {
            Ok(ctx) => std::sync::Arc::new(ctx),
            Err(e) => return cpu(format!("auto: no real GPU adapter, running on the CPU ({e})")),
        },
    };
    let precision = best_precision(&ctx, asked);
    let name = ctx.info().name.clone();
    if precision == Precision::F64 && !ctx.info().has_f64 {
        cpu(format!(
            "auto: GPU adapter `{name}` has no SHADER_F64 and precision = \"f64\" was asked; \
             running on the CPU"
        ))
    } else if let Some((field, value, min)) = below(precision, floors) {
        cpu(format!(
            "auto: GPU adapter `{name}` has no SHADER_F64 and {} = {value:e} is below the f32 \
             kernel's {min:e}; running on the CPU",
            field.trim_start_matches("task.")
        ))
    } else {
        Ok(Engine::Gpu {
            ctx,
            precision,
            note: "auto: real GPU adapter found".into(),
        })
    }
}

/// A build without the `gpu` feature: `--backend gpu` says so.
#[cfg(not(feature = "gpu"))]
fn gpu_explicit(_: SharedGpu, _: Option<Precision>, _: &[(&'static str, f64, f64)]) -> Result<Engine, Error> {
    Err(SolverError::Unsupported {
        solver: "gpu",
        message: "this build of dicke has no GPU support (built without the `gpu` feature); \
                  run with --backend cpu or auto, or rebuild with default features"
            .into(),
    }
    .into())
}

#[cfg(not(feature = "gpu"))]
fn gpu_auto(
    _: SharedGpu,
    _: Option<Precision>,
    _: &[(&'static str, f64, f64)],
    cpu: impl Fn(String) -> Result<Engine, Error>,
) -> Result<Engine, Error> {
    cpu("auto: no real GPU adapter, running on the CPU (this build has no GPU support: built without the `gpu` feature)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(e: &Engine) -> &str {
        match e {
            Engine::Cpu { note, .. } => note,
            #[cfg(feature = "gpu")]
            Engine::Gpu { note, .. } => note,
        }
    }

    /// The decisions that need no adapter: `cpu` always runs, a CPU-only task refuses `gpu`
    /// naming the solver, a configuration the kernel cannot run refuses `gpu` with its
    /// reason, and the CPU twin of a batched kernel runs f64 and says so when f32 was asked.
    #[test]
    fn policy_without_an_adapter() {
        let cpu_only = Kernel::CpuOnly { solver: "master" };
        let e = resolve(BackendChoice::Cpu, &cpu_only, None).unwrap();
        assert_eq!(note(&e), "requested");
        let err = resolve(BackendChoice::Gpu, &cpu_only, None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("no GPU kernel") || err.contains("no GPU support"),
            "{err}"
        );
        let kernel = Kernel::Gpu {
            asked: Some(Precision::F32),
            cpu_follows_precision: false,
            f32_floors: &[],
            cpu_only: Some("P_m is CPU only"),
        };
        let err = resolve(BackendChoice::Gpu, &kernel, None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("P_m is CPU only") || err.contains("no GPU support"),
            "{err}"
        );
        let e = resolve(BackendChoice::Auto, &kernel, None).unwrap();
        assert!(note(&e).starts_with("auto: "), "{}", note(&e));
        let batch = Kernel::Gpu {
            asked: Some(Precision::F32),
            cpu_follows_precision: false,
            f32_floors: &[],
            cpu_only: None,
        };
        match resolve(BackendChoice::Cpu, &batch, None).unwrap() {
            Engine::Cpu { precision, note } => {
                assert_eq!(precision, Precision::F64);
                assert!(note.contains("the CPU integrator runs in f64"), "{note}");
            }
            #[cfg(feature = "gpu")]
            Engine::Gpu { .. } => panic!("cpu requested"),
        }
        let twin = Kernel::Gpu {
            asked: Some(Precision::F32),
            cpu_follows_precision: true,
            f32_floors: &[],
            cpu_only: None,
        };
        match resolve(BackendChoice::Cpu, &twin, None).unwrap() {
            Engine::Cpu { precision, .. } => assert_eq!(precision, Precision::F32),
            #[cfg(feature = "gpu")]
            Engine::Gpu { .. } => panic!("cpu requested"),
        }
    }
}
