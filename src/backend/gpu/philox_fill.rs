//! Philox stream fill: the GPU side of the bit-identity tests between `shaders/common/philox.wgsl`
//! and [`crate::rng`]. Kernels `shaders/philox_fill.wgsl` (u32x4 blocks or f32 uniforms) and
//! `shaders/philox_fill_f64.wgsl` (f64 uniforms); one invocation per trajectory, each drawing
//! its blocks in order through `philox_next`, exactly as a trajectory kernel will.
//!
//! Output layout: `out[i * draws + d]` = block `d` of trajectory `first_traj + i`. Large
//! requests are split into dispatches that fit one storage binding; the split does not change
//! the numbers because each trajectory's stream depends only on (seed, trajectory index).

use super::shaders::{self, ShaderDef};
use super::{GpuContext, GpuError, lock};
use bytemuck::{Pod, Zeroable};
use std::sync::Mutex;

/// Uniform parameters of the fill kernels. WGSL twin: `struct FillParams` in
/// `shaders/philox_fill.wgsl` and `shaders/philox_fill_f64.wgsl` (48 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct FillParams {
    /// Seed, low word first.
    pub seed: [u32; 2],
    /// Global index of the first trajectory, low word first.
    pub first_traj: [u32; 2],
    /// Index of the first block drawn in every stream, low word first.
    pub first_draw: [u32; 2],
    pub ntraj: u32,
    pub draws: u32,
    /// 0: raw u32x4 blocks; 1: f32 uniforms bit-cast to u32 (philox_fill only).
    pub mode: u32,
    pub _pad: [u32; 3],
}

const WORKGROUP: u32 = 64;
/// Bytes per output element: vec4<u32> and vec2<f64> are both 16.
const ELEM: u64 = 16;
/// Largest output buffer kept around between calls.
const MAX_CHUNK_BYTES: u64 = 64 << 20;

const MODE_U32: u32 = 0;
const MODE_F32: u32 = 1;

/// One fill request (trajectories `first_traj..+ntraj`, blocks `first_draw..+draws`).
#[derive(Debug, Clone, Copy)]
struct Request {
    mode: u32,
    seed: u64,
    first_traj: u64,
    ntraj: u32,
    first_draw: u64,
    draws: u32,
}

/// Buffers reused across calls; grown when a request needs more.
struct FillBuffers {
    params: wgpu::Buffer,
    out: wgpu::Buffer,
    staging: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    capacity: u64,
}

pub(super) struct PhiloxFillKernel {
    layout: wgpu::BindGroupLayout,
    fill: wgpu::ComputePipeline,
    fill_f64: Option<wgpu::ComputePipeline>,
    buffers: Mutex<Option<FillBuffers>>,
}

fn pipeline(
    device: &wgpu::Device,
    layout: &wgpu::PipelineLayout,
    def: &ShaderDef,
    label: &'static str,
) -> Result<wgpu::ComputePipeline, GpuError> {
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(def.source.into()),
    });
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(GpuError::Shader {
            module: def.name,
            message: e.to_string(),
        });
    }
    super::driver::pipeline(device, layout, def, &module, label, &[], true)
}

impl PhiloxFillKernel {
    pub(super) fn new(device: &wgpu::Device, has_f64: bool) -> Result<Self, GpuError> {
        let (layout, pipeline_layout) = super::driver::compute_layouts(
            device,
            "dicke.philox_fill",
            &[
                wgpu::BufferBindingType::Uniform,
                wgpu::BufferBindingType::Storage { read_only: false },
            ],
        );
        let fill = pipeline(
            device,
            &pipeline_layout,
            &shaders::PHILOX_FILL,
            "dicke.philox_fill",
        )?;
        let fill_f64 = if has_f64 {
            Some(pipeline(
                device,
                &pipeline_layout,
                &shaders::PHILOX_FILL_F64,
                "dicke.philox_fill_f64",
            )?)
        } else {
            None
        };
        Ok(Self {
            layout,
            fill,
            fill_f64,
            buffers: Mutex::new(None),
        })
    }
}

impl GpuContext {
    /// Blocks `0..draws_per_traj` of the Philox streams of trajectories
    /// `first_traj .. first_traj + ntraj` under `seed`, trajectory-major:
    /// element `i * draws_per_traj + d` is `rng::block(seed, first_traj + i, d)`.
    pub fn philox_fill(
        &self,
        seed: u64,
        first_traj: u64,
        ntraj: u32,
        draws_per_traj: u32,
    ) -> Result<Vec<[u32; 4]>, GpuError> {
        self.philox_fill_at(seed, first_traj, ntraj, 0, draws_per_traj)
    }

    /// As [`philox_fill`](Self::philox_fill), from block `first_draw` on (wrapping at 2^64):
    /// element `i * draws_per_traj + d` is `rng::block(seed, first_traj + i, first_draw + d)`.
    pub fn philox_fill_at(
        &self,
        seed: u64,
        first_traj: u64,
        ntraj: u32,
        first_draw: u64,
        draws_per_traj: u32,
    ) -> Result<Vec<[u32; 4]>, GpuError> {
        let req = Request {
            mode: MODE_U32,
            seed,
            first_traj,
            ntraj,
            first_draw,
            draws: draws_per_traj,
        };
        let bytes = self.fill(&self.philox.fill, req)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// As [`philox_fill`](Self::philox_fill), converted on the GPU to f32 uniforms
    /// (`philox_uniform4`, twin of `rng::uniform_f32`).
    pub fn philox_fill_uniform_f32(
        &self,
        seed: u64,
        first_traj: u64,
        ntraj: u32,
        draws_per_traj: u32,
    ) -> Result<Vec<[f32; 4]>, GpuError> {
        let req = Request {
            mode: MODE_F32,
            seed,
            first_traj,
            ntraj,
            first_draw: 0,
            draws: draws_per_traj,
        };
        let bytes = self.fill(&self.philox.fill, req)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// As [`philox_fill`](Self::philox_fill), converted on the GPU to two f64 uniforms per block
    /// (`philox_uniform2_f64`, twin of `rng::uniform_f64`). Needs SHADER_F64.
    pub fn philox_fill_uniform_f64(
        &self,
        seed: u64,
        first_traj: u64,
        ntraj: u32,
        draws_per_traj: u32,
    ) -> Result<Vec<[f64; 2]>, GpuError> {
        let pipeline = self.philox.fill_f64.as_ref().ok_or_else(|| GpuError::NoF64 {
            what: "philox_fill_uniform_f64",
            adapter: self.info.name.clone(),
        })?;
        let req = Request {
            mode: MODE_U32,
            seed,
            first_traj,
            ntraj,
            first_draw: 0,
            draws: draws_per_traj,
        };
        let bytes = self.fill(pipeline, req)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    fn fill(&self, pipeline: &wgpu::ComputePipeline, req: Request) -> Result<Vec<u8>, GpuError> {
        let Request {
            mode,
            seed,
            first_traj,
            ntraj,
            first_draw,
            draws,
        } = req;
        if ntraj == 0 || draws == 0 {
            return Ok(Vec::new());
        }
        let per_traj = ELEM * u64::from(draws);
        let binding_limit = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        let chunk_bytes = binding_limit.min(MAX_CHUNK_BYTES);
        if per_traj > chunk_bytes {
            return Err(GpuError::TooLarge {
                what: format!("philox_fill of {draws} blocks per trajectory"),
                bytes: per_traj,
                limit: chunk_bytes,
            });
        }
        let max_dispatch = u64::from(self.limits.max_compute_workgroups_per_dimension) * u64::from(WORKGROUP);
        let chunk_traj = (chunk_bytes / per_traj).min(max_dispatch).min(u64::from(ntraj)) as u32;

        // Held for the whole call: one fill at a time uses the cached buffers. On error they are
        // dropped and rebuilt by the next call.
        let mut guard = lock(&self.philox.buffers);
        let need = u64::from(chunk_traj) * per_traj;
        let buf = match guard.take() {
            Some(b) if b.capacity >= need => b,
            _ => self.fill_buffers(need)?,
        };

        let mut out = Vec::with_capacity((u64::from(ntraj) * per_traj) as usize);
        let mut done = 0u32;
        while done < ntraj {
            let n = chunk_traj.min(ntraj - done);
            let start = first_traj.wrapping_add(u64::from(done));
            let params = FillParams {
                seed: crate::rng::key_for_seed(seed),
                first_traj: [start as u32, (start >> 32) as u32],
                first_draw: [first_draw as u32, (first_draw >> 32) as u32],
                ntraj: n,
                draws,
                mode,
                _pad: [0; 3],
            };
            let bytes = u64::from(n) * per_traj;
            self.scoped("philox_fill dispatch", || {
                self.queue
                    .write_buffer(&buf.params, 0, bytemuck::bytes_of(&params));
                let mut enc = self
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("dicke.philox_fill.encoder"),
                    });
                {
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("dicke.philox_fill.pass"),
                        timestamp_writes: None,
                    });
                    pass.set_pipeline(pipeline);
                    pass.set_bind_group(0, &buf.bind_group, &[]);
                    pass.dispatch_workgroups(n.div_ceil(WORKGROUP), 1, 1);
                }
                enc.copy_buffer_to_buffer(&buf.out, 0, &buf.staging, 0, bytes);
                self.queue.submit([enc.finish()]);
                Ok(())
            })?;
            out.extend(self.read_back(&buf.staging, "dicke.philox_fill.staging", bytes)?);
            done += n;
        }
        *guard = Some(buf);
        Ok(out)
    }

    fn fill_buffers(&self, capacity: u64) -> Result<FillBuffers, GpuError> {
        self.scoped("philox_fill buffer allocation", || {
            let params = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("dicke.philox_fill.params"),
                size: std::mem::size_of::<FillParams>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let out = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("dicke.philox_fill.out"),
                size: capacity,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("dicke.philox_fill.staging"),
                size: capacity,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("dicke.philox_fill.bind_group"),
                layout: &self.philox.layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: params.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: out.as_entire_binding(),
                    },
                ],
            });
            Ok(FillBuffers {
                params,
                out,
                staging,
                bind_group,
                capacity,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_params_layout_matches_wgsl() {
        // WGSL: vec2<u32> fields align to 8, u32 to 4; the struct is padded to 48 bytes.
        assert_eq!(std::mem::size_of::<FillParams>(), 48);
        assert_eq!(std::mem::offset_of!(FillParams, seed), 0);
        assert_eq!(std::mem::offset_of!(FillParams, first_traj), 8);
        assert_eq!(std::mem::offset_of!(FillParams, first_draw), 16);
        assert_eq!(std::mem::offset_of!(FillParams, ntraj), 24);
        assert_eq!(std::mem::offset_of!(FillParams, draws), 28);
        assert_eq!(std::mem::offset_of!(FillParams, mode), 32);
    }

    /// The Rust struct and its WGSL twins (as naga lays them out) agree field by field.
    #[test]
    fn fill_params_match_naga_layout() {
        let rust = [
            ("seed", std::mem::offset_of!(FillParams, seed)),
            ("first_traj", std::mem::offset_of!(FillParams, first_traj)),
            ("first_draw", std::mem::offset_of!(FillParams, first_draw)),
            ("ntraj", std::mem::offset_of!(FillParams, ntraj)),
            ("draws", std::mem::offset_of!(FillParams, draws)),
            ("mode", std::mem::offset_of!(FillParams, mode)),
        ];
        for def in [shaders::PHILOX_FILL, shaders::PHILOX_FILL_F64] {
            def.assert_struct_layout("FillParams", std::mem::size_of::<FillParams>(), &rust);
        }
    }
}
