//! The files of a checkpoint ([`crate::task::checkpoint`] has the design): `meta.json` (what
//! the units are units of), one `u<index>.bin` per finished unit, and the shard arithmetic
//! that `run`, `merge` and the transaction share.
//!
//! Unit file: the magic `DICKEU1\0`, the task's payload ([`Enc`]/[`Dec`]: u64 lengths, f64
//! bits, little endian) and the payload's length as a trailer; written to a temporary name,
//! synced and renamed, so a unit file is complete or absent.

use crate::error::{InputError, OutputError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;

/// The checkpoint directory inside a run's staging (and a shard's output) directory.
pub const CHECKPOINT_DIR: &str = "checkpoint";
/// What the checkpoint is of (scenario, task, engine, units).
pub const META: &str = "meta.json";
const MAGIC: &[u8; 8] = b"DICKEU1\0";

/// Shard `index` of `count` (0-based, as Slurm's `--array=0-(count-1)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

/// The most shards a run may be split into (a shard smaller than one unit runs nothing).
pub const MAX_SHARDS: usize = 100_000;

impl Shard {
    /// `k/n` with `0 <= k < n <= MAX_SHARDS`.
    pub fn parse(text: &str) -> Result<Shard, InputError> {
        let bad = || {
            InputError::invalid(
                "--shard",
                format!("{text:?}"),
                format!(
                    "k/n with integers 0 <= k < n <= {MAX_SHARDS} (k counts from 0, as Slurm's --array=0-(n-1))"
                ),
            )
        };
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let (k, n): (usize, usize) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if n == 0 || n > MAX_SHARDS || k >= n {
            return Err(bad());
        }
        Ok(Shard { index: k, count: n })
    }

    /// The shard of a Slurm job array task: index `SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN`
    /// (MIN defaults to 0) of `SLURM_ARRAY_TASK_COUNT`; `None` outside a job array.
    pub fn from_slurm(var: impl Fn(&str) -> Option<String>) -> Result<Option<Shard>, InputError> {
        let (Some(id), Some(count)) = (var("SLURM_ARRAY_TASK_ID"), var("SLURM_ARRAY_TASK_COUNT")) else {
            return Ok(None);
        };
        let num = |name: &str, v: &str| {
            v.trim().parse::<usize>().map_err(|_| {
                InputError::invalid(name, format!("{v:?}"), "a non-negative integer (Slurm job array)")
            })
        };
        let min = match var("SLURM_ARRAY_TASK_MIN") {
            Some(m) => num("SLURM_ARRAY_TASK_MIN", &m)?,
            None => 0,
        };
        let (id, count) = (
            num("SLURM_ARRAY_TASK_ID", &id)?,
            num("SLURM_ARRAY_TASK_COUNT", &count)?,
        );
        if id < min || count == 0 || id - min >= count {
            return Err(InputError::invalid(
                "SLURM_ARRAY_TASK_ID",
                id,
                format!(
                    "an index in SLURM_ARRAY_TASK_MIN .. MIN + SLURM_ARRAY_TASK_COUNT = {min} .. {} \
                     (a job array over consecutive indices, e.g. --array=0-{})",
                    min + count,
                    count.saturating_sub(1)
                ),
            ));
        }
        Shard::parse(&format!("{}/{count}", id - min)).map(Some)
    }

    /// The units of `total` this shard runs: a contiguous, deterministic slice.
    pub fn units(&self, total: usize) -> Range<usize> {
        let at = |k: usize| (total as u128 * k as u128 / self.count as u128) as usize;
        at(self.index)..at(self.index + 1)
    }
}

/// How a run treats its units (set by `run` from the command line).
#[derive(Debug, Clone, Default)]
pub struct WorkPlan {
    /// Run only this shard's units.
    pub shard: Option<Shard>,
    /// A merge: every unit is read back from the checkpoint; computing one is an error.
    pub replay: bool,
    /// The scenario as run (TOML text): the checkpoint's identity.
    pub scenario: String,
}

/// `checkpoint/meta.json`: what the units are units of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub dicke_version: String,
    pub task: String,
    /// The scenario as run, TOML text.
    pub scenario: String,
    /// Backend and precision of the unit results (units of different engines never mix).
    pub engine: String,
    /// Number of units and items (trajectories, points) per unit; the last may be short.
    pub units: usize,
    pub unit_size: u64,
    pub items: u64,
    /// The item the units count ("trajectories", "points").
    pub item: String,
    pub shard: Option<Shard>,
}

impl Meta {
    /// Read `dir/meta.json`.
    pub fn read(dir: &Path) -> Result<Meta, OutputError> {
        let path = dir.join(META);
        let text = std::fs::read_to_string(&path).map_err(|e| corrupt(&path, e))?;
        serde_json::from_str(&text).map_err(|e| corrupt(&path, e))
    }

    /// The item ranges of `units` (sorted unit indices), merged where consecutive.
    pub fn item_ranges(&self, units: impl IntoIterator<Item = usize>) -> Vec<[u64; 2]> {
        let mut out: Vec<[u64; 2]> = Vec::new();
        for u in units {
            let r = [
                u as u64 * self.unit_size,
                ((u as u64 + 1) * self.unit_size).min(self.items),
            ];
            match out.last_mut() {
                Some(last) if last[1] == r[0] => last[1] = r[1],
                _ => out.push(r),
            }
        }
        out
    }
}

pub fn corrupt(path: &Path, e: impl std::fmt::Display) -> OutputError {
    OutputError::Write {
        path: path.display().to_string(),
        message: format!("unreadable checkpoint: {e}"),
    }
}

/// The unit file of unit `u`.
pub fn unit_file(u: usize) -> String {
    format!("u{u:07}.bin")
}

/// The unit indices with a file in checkpoint directory `dir`.
pub fn present_units(dir: &Path) -> BTreeSet<usize> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix('u')?.strip_suffix(".bin")?.parse().ok()
        })
        .collect()
}

pub fn write_unit(path: &Path, payload: &[u8]) -> Result<(), OutputError> {
    let mut bytes = Vec::with_capacity(payload.len() + 16);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(payload);
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    crate::output::write_atomic(path, |w| std::io::Write::write_all(w, &bytes))
}

pub fn read_unit(path: &Path) -> Result<Vec<u8>, OutputError> {
    let bytes = std::fs::read(path).map_err(|e| corrupt(path, e))?;
    let n = bytes.len();
    if n < 16 || &bytes[..8] != MAGIC {
        return Err(corrupt(path, "not a dicke unit file"));
    }
    let len = u64::from_le_bytes(bytes[n - 8..].try_into().unwrap_or([0; 8])) as usize;
    if len != n - 16 {
        return Err(corrupt(path, "truncated unit file"));
    }
    Ok(bytes[8..n - 8].to_vec())
}

/// A unit payload being written: u64 counts and f64 bits, little endian.
#[derive(Default)]
pub struct Enc(pub Vec<u8>);

impl Enc {
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A length-prefixed f64 slice.
    pub fn f64s(&mut self, v: &[f64]) -> &mut Self {
        self.u64(v.len() as u64);
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
        }
        self
    }
    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
}

/// A unit payload being read (the mirror of [`Enc`]); any shortfall is a corrupt unit.
pub struct Dec<'a>(pub &'a [u8]);

impl Dec<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], OutputError> {
        if self.0.len() < n {
            return Err(OutputError::Write {
                path: CHECKPOINT_DIR.into(),
                message: "unreadable checkpoint: a unit payload ends early".into(),
            });
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    pub fn u64(&mut self) -> Result<u64, OutputError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap_or([0; 8])))
    }
    /// A length-prefixed f64 slice (its length checked against what is left).
    pub fn f64s(&mut self) -> Result<Vec<f64>, OutputError> {
        let n = self.u64()? as usize;
        let bytes = self.take(n.saturating_mul(8))?;
        Ok(bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect())
    }
    pub fn str(&mut self) -> Result<String, OutputError> {
        let n = self.u64()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_units() {
        for total in [0, 1, 5, 64, 1000] {
            for count in [1, 3, 4, 7, 64] {
                let mut next = 0;
                for index in 0..count {
                    let r = Shard { index, count }.units(total);
                    assert_eq!(r.start, next, "total {total} shards {count}");
                    next = r.end;
                }
                assert_eq!(next, total);
            }
        }
        assert_eq!(Shard::parse("2/4").unwrap(), Shard { index: 2, count: 4 });
        for bad in ["4/4", "1", "a/2", "-1/3", "0/0", "1/2/3"] {
            let e = Shard::parse(bad).unwrap_err().to_string();
            assert!(e.contains("--shard") && e.contains("k/n"), "{bad}: {e}");
        }
    }

    #[test]
    fn slurm_array_variables_name_a_shard() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(a, _)| *a == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(Shard::from_slurm(env(&[])).unwrap(), None);
        let s = Shard::from_slurm(env(&[
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "3"),
        ]));
        assert_eq!(s.unwrap(), Some(Shard { index: 2, count: 4 }));
        let e = Shard::from_slurm(env(&[
            ("SLURM_ARRAY_TASK_ID", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("SLURM_ARRAY_TASK_ID") && e.contains("0 .. 4"), "{e}");
        let e = Shard::from_slurm(env(&[
            ("SLURM_ARRAY_TASK_ID", "x"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("SLURM_ARRAY_TASK_ID") && e.contains("\"x\""), "{e}");
    }

    #[test]
    fn payloads_round_trip_exactly_and_truncation_is_detected() {
        let tmp = tempfile::tempdir().unwrap();
        let v = [0.1, -0.0, f64::NAN, 1e-300, f64::INFINITY];
        let mut e = Enc::default();
        e.u64(7).f64s(&v).str("xi2");
        let path = tmp.path().join(unit_file(3));
        write_unit(&path, &e.0).unwrap();
        let bytes = read_unit(&path).unwrap();
        let mut d = Dec(&bytes);
        assert_eq!(d.u64().unwrap(), 7);
        let back = d.f64s().unwrap();
        assert!(back.iter().zip(&v).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert_eq!(d.str().unwrap(), "xi2");
        assert!(d.u64().is_err());
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 3]).unwrap();
        assert!(read_unit(&path).is_err());
        assert_eq!(present_units(tmp.path()).into_iter().collect::<Vec<_>>(), vec![3]);
    }
}
