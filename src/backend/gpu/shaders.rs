//! The shader registry: every WGSL module the crate compiles, in one list.
//!
//! WGSL has no `#include`, so each module is its kernel file with the common files it needs
//! prepended at compile time (`concat!(include_str!(..))`, as in the wgpu examples and vello):
//! no string templating, no preprocessor, and a missing file is a build error. A plain unit
//! test parses and validates every module with naga under the capabilities the device is asked
//! for (FLOAT64 only for modules that need f64), so a broken shader fails `cargo test` on any
//! machine, GPU or not.

use wgpu::naga::valid::Capabilities;

/// One WGSL module: a kernel file plus the common files it needs, with one compute entry point.
#[derive(Debug, Clone, Copy)]
pub struct ShaderDef {
    /// Registry name; also the pipeline's label suffix (`dicke.<name>`).
    pub name: &'static str,
    /// Compute entry point.
    pub entry: &'static str,
    /// The full WGSL source (common files first).
    pub source: &'static str,
    /// Uses `f64`: compiled only on devices with `Features::SHADER_F64`.
    pub needs_f64: bool,
}

impl ShaderDef {
    /// Test helper: assert that the WGSL struct `name` of this module, as naga lays it out,
    /// has `size` bytes and each `(field, offset)` of its Rust twin (`#[repr(C)]`, offsets from
    /// `std::mem::offset_of!`). Shared by every kernel host's layout test.
    #[cfg(test)]
    pub(crate) fn assert_struct_layout(&self, name: &str, size: usize, fields: &[(&str, usize)]) {
        use wgpu::naga::TypeInner;
        let module = wgpu::naga::front::wgsl::parse_str(self.source).expect("parses");
        let (_, ty) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{}: no struct {name} in WGSL", self.name));
        let TypeInner::Struct { members, span } = &ty.inner else {
            panic!("{}: {name} is not a struct", self.name)
        };
        assert_eq!(*span as usize, size, "{}: size of {name}", self.name);
        for &(field, offset) in fields {
            let m = members
                .iter()
                .find(|m| m.name.as_deref() == Some(field))
                .unwrap_or_else(|| panic!("{}: {name}.{field} missing", self.name));
            assert_eq!(m.offset as usize, offset, "{}: {name}.{field}", self.name);
        }
    }

    /// The wgpu features this module needs from the device.
    pub fn features(&self) -> wgpu::Features {
        if self.needs_f64 {
            wgpu::Features::SHADER_F64
        } else {
            wgpu::Features::empty()
        }
    }
}

/// Philox stream test kernel: u32x4 blocks or f32 uniforms per (trajectory, draw).
pub const PHILOX_FILL: ShaderDef = ShaderDef {
    name: "philox_fill",
    entry: "main",
    source: concat!(
        include_str!("../../../shaders/common/philox.wgsl"),
        include_str!("../../../shaders/philox_fill.wgsl"),
    ),
    needs_f64: false,
};

/// Philox stream test kernel: f64 uniforms per (trajectory, draw).
pub const PHILOX_FILL_F64: ShaderDef = ShaderDef {
    name: "philox_fill_f64",
    entry: "main",
    source: concat!(
        include_str!("../../../shaders/common/philox.wgsl"),
        include_str!("../../../shaders/common/philox_f64.wgsl"),
        include_str!("../../../shaders/philox_fill_f64.wgsl"),
    ),
    needs_f64: true,
};

/// Trajectory kernel, f32, one invocation per trajectory (src/backend/gpu/trajectory.rs).
pub const TRAJECTORY_LANE_F32: ShaderDef = ShaderDef {
    name: "trajectory_lane_f32",
    entry: "main",
    source: concat!(
        include_str!("../../../shaders/common/status.wgsl"),
        include_str!("../../../shaders/common/philox.wgsl"),
        include_str!("../../../shaders/trajectory_f32.wgsl"),
        include_str!("../../../shaders/trajectory_lane.wgsl"),
        include_str!("../../../shaders/trajectory.wgsl"),
    ),
    needs_f64: false,
};

/// Trajectory kernel, f64, one invocation per trajectory.
pub const TRAJECTORY_LANE_F64: ShaderDef = ShaderDef {
    name: "trajectory_lane_f64",
    entry: "main",
    source: concat!(
        include_str!("../../../shaders/common/status.wgsl"),
        include_str!("../../../shaders/common/philox.wgsl"),
        include_str!("../../../shaders/common/philox_f64.wgsl"),
        include_str!("../../../shaders/trajectory_f64.wgsl"),
        include_str!("../../../shaders/trajectory_lane.wgsl"),
        include_str!("../../../shaders/trajectory.wgsl"),
    ),
    needs_f64: true,
};

/// Trajectory kernel, f32, one workgroup per trajectory, stage vector in workgroup memory.
pub const TRAJECTORY_WG_F32: ShaderDef = ShaderDef {
    name: "trajectory_wg_f32",
    entry: "main",
    source: concat!(
        include_str!("../../../shaders/common/status.wgsl"),
        include_str!("../../../shaders/common/philox.wgsl"),
        include_str!("../../../shaders/trajectory_f32.wgsl"),
        include_str!("../../../shaders/trajectory_wg.wgsl"),
        include_str!("../../../shaders/trajectory.wgsl"),
    ),
    needs_f64: false,
};

/// Trajectory kernel, f32, one workgroup per trajectory, every vector in storage.
pub const TRAJECTORY_ST_F32: ShaderDef = ShaderDef {
    name: "trajectory_st_f32",
    entry: "main",
    source: concat!(
        include_str!("../../../shaders/common/status.wgsl"),
        include_str!("../../../shaders/common/philox.wgsl"),
        include_str!("../../../shaders/trajectory_f32.wgsl"),
        include_str!("../../../shaders/trajectory_st.wgsl"),
        include_str!("../../../shaders/trajectory.wgsl"),
    ),
    needs_f64: false,
};

/// Trajectory kernel, f64, one workgroup per trajectory, stage vector in workgroup memory.
pub const TRAJECTORY_WG_F64: ShaderDef = ShaderDef {
    name: "trajectory_wg_f64",
    entry: "main",
    source: concat!(
        include_str!("../../../shaders/common/status.wgsl"),
        include_str!("../../../shaders/common/philox.wgsl"),
        include_str!("../../../shaders/common/philox_f64.wgsl"),
        include_str!("../../../shaders/trajectory_f64.wgsl"),
        include_str!("../../../shaders/trajectory_wg.wgsl"),
        include_str!("../../../shaders/trajectory.wgsl"),
    ),
    needs_f64: true,
};

/// Trajectory kernel, f64, one workgroup per trajectory, every vector in storage.
pub const TRAJECTORY_ST_F64: ShaderDef = ShaderDef {
    name: "trajectory_st_f64",
    entry: "main",
    source: concat!(
        include_str!("../../../shaders/common/status.wgsl"),
        include_str!("../../../shaders/common/philox.wgsl"),
        include_str!("../../../shaders/common/philox_f64.wgsl"),
        include_str!("../../../shaders/trajectory_f64.wgsl"),
        include_str!("../../../shaders/trajectory_st.wgsl"),
        include_str!("../../../shaders/trajectory.wgsl"),
    ),
    needs_f64: true,
};

/// Batched master equation, f32 (src/backend/gpu/master_batch.rs).
pub const MASTER_BATCH_F32: ShaderDef = ShaderDef {
    name: "master_batch_f32",
    entry: "main",
    source: concat!(
        include_str!("../../../shaders/master_batch_f32.wgsl"),
        include_str!("../../../shaders/common/dp5.wgsl"),
        include_str!("../../../shaders/common/status.wgsl"),
        include_str!("../../../shaders/common/time.wgsl"),
        include_str!("../../../shaders/master_batch.wgsl"),
    ),
    needs_f64: false,
};

/// Batched cumulant equations, f32, one invocation per parameter point
/// (src/backend/gpu/cumulant_batch.rs). The precision prelude is master_batch's (R, R_MAX,
/// powc: the same working type and the same f32 controller power).
pub const CUMULANT_BATCH_F32: ShaderDef = ShaderDef {
    name: "cumulant_batch_f32",
    entry: "main",
    source: concat!(
        include_str!("../../../shaders/master_batch_f32.wgsl"),
        include_str!("../../../shaders/common/dp5.wgsl"),
        include_str!("../../../shaders/common/status.wgsl"),
        include_str!("../../../shaders/common/time.wgsl"),
        include_str!("../../../shaders/cumulant_batch.wgsl"),
    ),
    needs_f64: false,
};

/// Batched cumulant equations, f64 (arithmetic and sqrt only in f64).
pub const CUMULANT_BATCH_F64: ShaderDef = ShaderDef {
    name: "cumulant_batch_f64",
    entry: "main",
    source: concat!(
        include_str!("../../../shaders/master_batch_f64.wgsl"),
        include_str!("../../../shaders/common/dp5.wgsl"),
        include_str!("../../../shaders/common/status.wgsl"),
        include_str!("../../../shaders/common/time.wgsl"),
        include_str!("../../../shaders/cumulant_batch.wgsl"),
    ),
    needs_f64: true,
};

/// Batched master equation, f64 (arithmetic and sqrt only in f64).
pub const MASTER_BATCH_F64: ShaderDef = ShaderDef {
    name: "master_batch_f64",
    entry: "main",
    source: concat!(
        include_str!("../../../shaders/master_batch_f64.wgsl"),
        include_str!("../../../shaders/common/dp5.wgsl"),
        include_str!("../../../shaders/common/status.wgsl"),
        include_str!("../../../shaders/common/time.wgsl"),
        include_str!("../../../shaders/master_batch.wgsl"),
    ),
    needs_f64: true,
};

/// Every module the crate compiles.
pub const MODULES: &[ShaderDef] = &[
    PHILOX_FILL,
    PHILOX_FILL_F64,
    TRAJECTORY_LANE_F32,
    TRAJECTORY_LANE_F64,
    TRAJECTORY_WG_F32,
    TRAJECTORY_ST_F32,
    TRAJECTORY_WG_F64,
    TRAJECTORY_ST_F64,
    MASTER_BATCH_F32,
    MASTER_BATCH_F64,
    CUMULANT_BATCH_F32,
    CUMULANT_BATCH_F64,
];

/// The naga capabilities a device created with `features` validates shaders under (the subset
/// of wgpu-core's mapping that our kernels can touch; everything else stays off).
pub fn naga_capabilities(features: wgpu::Features) -> Capabilities {
    let mut caps = Capabilities::empty();
    caps.set(
        Capabilities::FLOAT64,
        features.contains(wgpu::Features::SHADER_F64),
    );
    caps.set(
        Capabilities::SHADER_INT64,
        features.contains(wgpu::Features::SHADER_INT64),
    );
    caps.set(
        Capabilities::SUBGROUP,
        features.contains(wgpu::Features::SUBGROUP),
    );
    caps
}

/// Parse and validate `def` with naga under the capabilities of a device that has exactly the
/// features the module declares. `Err` carries naga's report with the source location.
pub fn validate(def: &ShaderDef) -> Result<(), String> {
    use wgpu::naga::{front::wgsl, valid};
    let module = wgsl::parse_str(def.source).map_err(|e| e.emit_to_string(def.source))?;
    let caps = naga_capabilities(def.features());
    valid::Validator::new(valid::ValidationFlags::all(), caps)
        .validate(&module)
        .map_err(|e| e.emit_to_string(def.source))?;
    let entry = module
        .entry_points
        .iter()
        .find(|ep| ep.name == def.entry)
        .ok_or_else(|| format!("no entry point `{}`", def.entry))?;
    if entry.stage != wgpu::naga::ShaderStage::Compute {
        return Err(format!("entry point `{}` is not a compute shader", def.entry));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_parses_and_validates() {
        let mut failures = Vec::new();
        for def in MODULES {
            if let Err(e) = validate(def) {
                failures.push(format!("shader module `{}`:\n{e}", def.name));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn module_names_are_unique() {
        for (i, a) in MODULES.iter().enumerate() {
            assert!(
                MODULES[i + 1..].iter().all(|b| b.name != a.name),
                "duplicate `{}`",
                a.name
            );
        }
    }

    /// The validation really uses the requested capabilities, not `all()`: an f64 module is
    /// rejected without FLOAT64, so an f32 module that slips into f64 would fail too.
    #[test]
    fn f64_module_is_rejected_without_float64() {
        let as_f32 = ShaderDef {
            needs_f64: false,
            ..PHILOX_FILL_F64
        };
        assert!(validate(&as_f32).is_err());
    }
}
