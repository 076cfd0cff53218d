// Status codes of an element's resumable state in the batch kernels (master_batch.wgsl,
// cumulant_batch.wgsl: Ctrl.status / State.status; trajectory.wgsl: the phase word of a
// trajectory's tstate, which uses the first three). Prepended by the registry
// (src/backend/gpu/shaders.rs). Twins: the ST_* constants of src/backend/gpu/driver.rs. A status
// >= ST_DONE is final.
const ST_INIT: u32 = 0u;
const ST_RUN: u32 = 1u;
const ST_DONE: u32 = 2u;
const ST_SMALL: u32 = 3u;
const ST_MAXSTEPS: u32 = 4u;
const ST_NONFINITE: u32 = 5u;
