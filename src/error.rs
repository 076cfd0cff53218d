//! Error types. One enum per layer, variants carrying the data a user needs to fix the input
//! (field, value, what was expected); the crate `Error` wraps them. The library never panics
//! on user input and never prints: `main` formats these with `{:#}`.

use thiserror::Error;

/// Errors in user input: scenario files, `--set` overrides, model parameters.
#[derive(Debug, Error)]
pub enum InputError {
    #[error("cannot read scenario file `{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("scenario `{path}` is not valid TOML / does not match the format: {message}")]
    Parse { path: String, message: String },
    #[error("field `{field}` = {value}: expected {expected}")]
    Invalid {
        field: String,
        value: String,
        expected: String,
    },
    #[error("expression for `{field}` = \"{text}\": {message}")]
    Expression {
        field: String,
        text: String,
        message: String,
    },
    #[error("`--set {text}`: {message}")]
    Override { text: String, message: String },
}

/// Errors raised by solvers at run time.
#[derive(Debug, Error)]
pub enum SolverError {
    #[error("{solver}: {message}")]
    Unsupported { solver: &'static str, message: String },
    /// The step size fell to the rounding floor of t: the error estimate cannot be met.
    #[error(
        "the adaptive integrator could not advance past t = {t}: the step size fell to {dt:e}, \
         where f64 rounding of t swamps the step (stiff dynamics, a rate far larger than the \
         others, or a tolerance f64 cannot meet); try a smaller t_end, looser task.rtol / \
         task.atol, or kind = \"steady_state\" / \"trajectories\" for the long-time behaviour"
    )]
    StepSizeTooSmall { t: f64, dt: f64 },
    /// A NaN or infinity in the state or its derivative.
    #[error(
        "the state became non-finite (NaN or infinite) at t = {t}: the dynamics blew up (an \
         approximate method's equations diverging, or a rate or drive so large that the explicit \
         integrator overflowed); check the model's rates, or try a smaller t_end"
    )]
    NonFinite { t: f64 },
    /// The step budget (`task.max_steps`, attempts accepted or rejected) ran out.
    #[error(
        "the adaptive integrator took more than {max_steps} steps before t = {t} (task.max_steps \
         = {max_steps}): the dynamics are stiff (a rate far larger than the others forces steps \
         far shorter than the save interval); raise task.max_steps above {max_steps}, shorten \
         t_end, or use kind = \"steady_state\" / \"trajectories\" for the long-time behaviour"
    )]
    TooManySteps { t: f64, max_steps: usize },
    /// A stop was requested (SIGINT/SIGTERM, [`crate::interrupt`]); the integrator stopped
    /// between two steps.
    #[error("interrupted at t = {t}")]
    Interrupted { t: f64 },
    #[error("sparse LU failed: {0}")]
    Factorization(String),
    /// One point of a scan failed; the run stops there (points before it are written).
    /// `cause` is in the message rather than a `#[source]` so that both `{}` and `{:#}` show it
    /// exactly once.
    #[error("scan point {index} ({variable} = {value}): {cause}{others}")]
    ScanPoint {
        index: usize,
        variable: String,
        value: f64,
        cause: Box<SolverError>,
        /// E.g. "; 2 of 16 points failed" when a batch reports more than one failure.
        others: String,
    },
    /// A failure of a single-point task (`evolve`, `steady_state`) with the point it ran at,
    /// e.g. "task evolve at N = 10, Gamma = 1, Omega = 20" (a scan names its point with
    /// [`SolverError::ScanPoint`]). `cause` is in the message, as for `ScanPoint`.
    #[error("task {task} at {point}: {cause}")]
    AtPoint {
        task: &'static str,
        /// N and the model parameters and variables that are not zero.
        point: String,
        cause: Box<SolverError>,
    },
    /// A state failed a runtime check (`task::checks`): not a physical state, beyond the
    /// numerical budget of the solver that produced it.
    #[error(
        "{check} at {at}: not a physical state, beyond the numerical budget {budget:.1e} \
         ({derivation}); {advice}"
    )]
    Unphysical {
        /// What was measured, e.g. "population <j=5, m=-2|R_j|j, m=-2> = -1.9e-1".
        check: String,
        /// Where: "t = 10" or "the steady state".
        at: String,
        budget: f64,
        /// How the budget follows from the solver's tolerances.
        derivation: String,
        /// The likely cause and what to change.
        advice: String,
    },
    /// A solver panicked (a bug, or an input no check caught); contained at the task boundary.
    #[error(
        "task `{task}` stopped: internal error in a solver ({message}); please report this with the scenario"
    )]
    Panicked { task: String, message: String },
    #[error("request needs about {needed_mib} MiB (limit {limit_mib} MiB{limit_source}): {what}")]
    TooLarge {
        what: String,
        needed_mib: u64,
        limit_mib: u64,
        /// Where the limit came from, e.g. ", --memory-limit" (empty for a fixed limit).
        limit_source: String,
    },
}

/// Errors from the GPU backend, each with what a user needs to act on it. Defined here, below
/// the backends (re-exported as `backend::gpu::GpuError`), and free of wgpu types, so that this
/// module compiles without the GPU backend.
#[derive(Debug, Error)]
pub enum GpuError {
    #[error("no usable GPU adapter: {details}")]
    NoAdapter { details: String },
    #[error("GPU adapter `{adapter}` refused to create a device: {message}")]
    RequestDevice { adapter: String, message: String },
    #[error("GPU device was lost ({reason}); rerun, or use --backend cpu")]
    DeviceLost { reason: String },
    #[error("shader module `{module}` failed to compile on this device: {message}")]
    Shader { module: &'static str, message: String },
    #[error("GPU validation error in {operation}: {message}")]
    Validation {
        operation: &'static str,
        message: String,
    },
    #[error("GPU buffer `{label}`: {message}")]
    Buffer { label: &'static str, message: String },
    #[error("{what} needs {bytes} bytes in one GPU buffer binding; this device allows {limit}")]
    TooLarge { what: String, bytes: u64, limit: u64 },
    #[error("{what} needs f64 shaders (SHADER_F64), which adapter `{adapter}` does not support")]
    NoF64 { what: &'static str, adapter: String },
}

/// Errors writing results.
#[derive(Debug, Error)]
pub enum OutputError {
    #[error("cannot write `{path}`: {message}")]
    Write { path: String, message: String },
    #[error(
        "the output directory is in use: `{lock}` is held by {holder}; wait for that run to end or \
         choose another --out (if no such run is alive, remove `{lock}`)"
    )]
    Locked { lock: String, holder: String },
}

/// The crate-wide error.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Solver(#[from] SolverError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    Gpu(#[from] GpuError),
    /// A run that failed after writing some files: the cause, and the directory its partial
    /// output was moved to (`run::execute`; the previous run's files are left as they were).
    #[error(
        "{cause} (partial output kept in `{kept}`; the earlier files in the output directory are unchanged)"
    )]
    Failed { cause: Box<Error>, kept: String },
    /// A run stopped by SIGINT/SIGTERM: what it finished is in `kept` (with result.json
    /// `status` "interrupted" and, where the task checkpoints, the finished units), and
    /// `dicke run --resume` continues it.
    #[error(
        "interrupted: {done} kept in `{kept}` (the earlier files in the output directory are \
         unchanged); rerun with --resume to continue"
    )]
    Interrupted { done: String, kept: String },
    /// Shards that cannot be merged (`dicke merge`): missing, duplicated or inconsistent.
    #[error("merge: {0}")]
    Merge(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl InputError {
    /// Shorthand for the most common error: a field with a bad value.
    pub fn invalid(field: impl Into<String>, value: impl ToString, expected: impl Into<String>) -> Self {
        InputError::Invalid {
            field: field.into(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }
}
