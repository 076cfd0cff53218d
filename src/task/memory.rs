//! Memory refusals: every task estimates what grows with its input and refuses a request
//! over the limit before anything is allocated.
//!
//! The limit, in order of precedence: the CLI's `--memory-limit MIB` (set process-wide with
//! [`set_memory_limit_mib`] before the run), the environment variable
//! `DICKE_MEMORY_LIMIT_MIB` (a whole number of MiB; anything else is an error naming it), and
//! by default 80 % of the machine's memory (`MemTotal` in /proc/meminfo), or 16 GiB where that
//! is not readable. Refusals name where the limit came from.

use crate::error::{InputError, SolverError};
use crate::model::Model;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable of the memory limit.
pub const MEMORY_LIMIT_ENV: &str = "DICKE_MEMORY_LIMIT_MIB";

/// `--memory-limit`, MiB; `u64::MAX` when not set.
static CLI_LIMIT_MIB: AtomicU64 = AtomicU64::new(u64::MAX);

/// Set the memory limit for this process (the CLI's `--memory-limit`); it takes precedence
/// over `DICKE_MEMORY_LIMIT_MIB` and the default.
pub fn set_memory_limit_mib(mib: u64) {
    CLI_LIMIT_MIB.store(mib.min(u64::MAX - 1), Ordering::Relaxed);
}

/// The memory limit and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryLimit {
    pub mib: u64,
    /// E.g. "--memory-limit", "DICKE_MEMORY_LIMIT_MIB", "default: 80 % of MemTotal".
    pub source: String,
}

/// The memory ceiling for a single request (module doc for the precedence). An unparsable
/// `DICKE_MEMORY_LIMIT_MIB` is an error naming the variable and its value.
pub fn memory_limit() -> Result<MemoryLimit, InputError> {
    let cli = CLI_LIMIT_MIB.load(Ordering::Relaxed);
    if cli != u64::MAX {
        return Ok(MemoryLimit {
            mib: cli,
            source: "--memory-limit".into(),
        });
    }
    match std::env::var(MEMORY_LIMIT_ENV) {
        Ok(text) => parse_limit(&text).map(|mib| MemoryLimit {
            mib,
            source: MEMORY_LIMIT_ENV.into(),
        }),
        Err(std::env::VarError::NotPresent) => Ok(default_limit()),
        Err(std::env::VarError::NotUnicode(v)) => Err(invalid_env(&v.to_string_lossy())),
    }
}

fn invalid_env(text: &str) -> InputError {
    InputError::invalid(
        format!("environment variable {MEMORY_LIMIT_ENV}"),
        format!("\"{text}\""),
        "a whole number of MiB, e.g. 8192 for 8 GiB",
    )
}

/// A limit in MiB as written in `DICKE_MEMORY_LIMIT_MIB`.
fn parse_limit(text: &str) -> Result<u64, InputError> {
    text.trim().parse::<u64>().map_err(|_| invalid_env(text))
}

/// 80 % of MemTotal (/proc/meminfo) where readable, else 16 GiB.
fn default_limit() -> MemoryLimit {
    let total_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| mem_total_kib(&t));
    match total_kib {
        Some(kib) => MemoryLimit {
            mib: kib / 1024 * 8 / 10,
            source: "default: 80 % of MemTotal; set --memory-limit or DICKE_MEMORY_LIMIT_MIB".into(),
        },
        None => MemoryLimit {
            mib: 16 * 1024,
            source: "default; set --memory-limit or DICKE_MEMORY_LIMIT_MIB".into(),
        },
    }
}

/// `MemTotal:  16318480 kB` -> 16318480.
fn mem_total_kib(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Memory ceiling for a single request, MiB (module doc; an unparsable
/// `DICKE_MEMORY_LIMIT_MIB` reads as the default here, and is reported by [`memory_limit`],
/// which [`super::run`] checks first).
pub fn memory_limit_mib() -> u64 {
    memory_limit().unwrap_or_else(|_| default_limit()).mib
}

/// Refuse `bytes` over the limit, naming `what` and where the limit came from.
pub fn refuse_bytes(bytes: f64, what: String) -> Result<(), SolverError> {
    let needed = (bytes / (1024.0 * 1024.0)).ceil() as u64;
    let limit = memory_limit().unwrap_or_else(|_| default_limit());
    if needed > limit.mib {
        return Err(SolverError::TooLarge {
            what,
            needed_mib: needed,
            limit_mib: limit.mib,
            limit_source: format!(", {}", limit.source),
        });
    }
    Ok(())
}
/// Bytes of the time evolution of a model: the (N+1)^2 matrix of a collective model (12
/// copies: the state and the integrator's stages), the blocks otherwise (sum_j (2j+1)^2
/// elements, 11 work vectors).
pub fn evolution_bytes(model: &Model) -> f64 {
    if model.is_collective() {
        let dim = (model.n + 1) as f64;
        16.0 * dim * dim * 12.0
    } else {
        16.0 * 11.0 * crate::state::blocks::block_elements(model.n) as f64
    }
}

/// Refuse a time evolution over the limit ([`evolution_bytes`]).
pub fn refuse_evolution(model: &Model, what: &str) -> Result<(), SolverError> {
    let what = if model.is_collective() {
        format!("{what} at N = {} ((N+1)^2 complex elements x 12)", model.n)
    } else {
        let len = crate::state::blocks::block_elements(model.n);
        format!(
            "{what} at N = {} (blocks R_j: {len} complex elements x 11)",
            model.n
        )
    };
    refuse_bytes(evolution_bytes(model), what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_or_name_the_variable() {
        assert_eq!(parse_limit("8192").unwrap(), 8192);
        let e = parse_limit("8G").unwrap_err().to_string();
        assert!(
            e.contains("DICKE_MEMORY_LIMIT_MIB") && e.contains("\"8G\"") && e.contains("whole number of MiB"),
            "{e}"
        );
        assert_eq!(
            mem_total_kib("MemFree: 1 kB\nMemTotal:   16318480 kB\n"),
            Some(16318480)
        );
        assert_eq!(mem_total_kib("nothing"), None);
    }
}
