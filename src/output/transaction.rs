//! A run's output directory as a transaction: a lock, a staging directory, and an atomic
//! commit (the design is in the module doc of [`crate::task::context`]).
//!
//! - [`Transaction::begin`] creates `DIR` if needed and takes `DIR/.dicke.lock` with
//!   `create_new` (it holds `pid`, `host` and `started`). A lock held by a live run, by a run
//!   on another host, or unreadable, refuses the run ([`OutputError::Locked`], naming the
//!   holder and the lock). A lock whose pid no longer exists on this host (`/proc/<pid>`) is
//!   taken over, and said so ([`Transaction::notes`]); staging directories that dead runs left
//!   behind are renamed `failed-<time>-<pid>/` (their flushed rows are kept).
//! - Every file of the run is written into `DIR/.dicke-staging-<pid>/` ([`Transaction::staging`]).
//! - [`Transaction::commit`] (success): the previous run's result.json is removed first (a crash
//!   mid-commit leaves no result.json claiming completeness), then the files the previous run
//!   listed in its result.json that this run did not write, then each staged file is renamed
//!   into `DIR`, result.json last. Other files in `DIR` are left alone.
//! - [`Transaction::fail`] (error): `DIR` is left untouched; if the run wrote anything, the
//!   staging directory (with the failed-run result.json the caller writes into it) is renamed
//!   `DIR/failed-<time>-<pid>/`.
//! - The lock is released when the transaction is dropped (success, error or panic; a panic
//!   moves the staging directory to `failed-*` too), and a `DIR` this run created is removed
//!   again if it is left empty (a run refused before it wrote anything leaves no directory).

use crate::error::OutputError;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The lock file's name in the output directory.
pub const LOCK: &str = ".dicke.lock";
/// Prefix of the staging directory's name (`.dicke-staging-<pid>`).
pub const STAGING_PREFIX: &str = ".dicke-staging-";
/// Prefix of the directories holding the partial output of failed runs.
pub const FAILED_PREFIX: &str = "failed-";
/// Prefix of the directories holding the finished part of interrupted runs.
pub const INTERRUPTED_PREFIX: &str = "interrupted-";
/// The checkpoint directory of a run ([`crate::task::checkpoint`]): kept in `DIR` by a
/// shard, dropped by a complete run.
const CHECKPOINT: &str = super::checkpoint::CHECKPOINT_DIR;

fn werr(path: &Path, e: impl std::fmt::Display) -> OutputError {
    OutputError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// An output directory held by this run.
pub struct Transaction {
    dir: PathBuf,
    staging: PathBuf,
    lock: Option<LockGuard>,
    /// `DIR` did not exist before this run.
    created_dir: bool,
    /// Commit or fail has run.
    finished: bool,
    notes: Vec<String>,
}

impl Transaction {
    /// Lock `dir` (creating it) and name the staging directory (created by the first write).
    pub fn begin(dir: &Path) -> Result<Transaction, OutputError> {
        let created_dir = !dir.exists();
        std::fs::create_dir_all(dir).map_err(|e| werr(dir, e))?;
        let mut notes = Vec::new();
        let lock = match LockGuard::acquire(dir, &mut notes) {
            Ok(l) => l,
            Err(e) => {
                if created_dir {
                    let _ = std::fs::remove_dir(dir);
                }
                return Err(e);
            }
        };
        let mut t = Transaction {
            dir: dir.to_path_buf(),
            staging: dir.join(format!("{STAGING_PREFIX}{}", std::process::id())),
            lock: Some(lock),
            created_dir,
            finished: false,
            notes,
        };
        t.rescue_leftovers();
        Ok(t)
    }

    /// Where the run writes its files.
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// What the transaction did that the user should hear about (a stale lock taken over,
    /// a dead run's partial output kept).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Add a note for the user.
    pub fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// Staging directories of dead runs (we hold the lock, so no live run owns one) become
    /// `failed-<time>-<pid>/`.
    fn rescue_leftovers(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix(STAGING_PREFIX) else {
                continue;
            };
            if !e.path().is_dir() {
                continue;
            }
            let to = unique_failed(&self.dir, pid);
            if std::fs::rename(e.path(), &to).is_ok() {
                self.notes.push(format!(
                    "the partial output of an interrupted run (pid {pid}) was moved to `{}`",
                    to.display()
                ));
            }
        }
    }

    /// `--resume`: move the checkpoint of the newest earlier run of `scenario` (TOML text) and
    /// `shard` that did not finish (`interrupted-*`, `failed-*`, a dead run's staging directory
    /// already renamed by [`Transaction::begin`]) into this run's staging directory, and remove
    /// the rest of that directory (its files are rebuilt from the checkpoint). Returns what it
    /// did, for the user.
    pub fn adopt_checkpoint(
        &mut self,
        scenario: &str,
        shard: Option<super::checkpoint::Shard>,
    ) -> Result<String, OutputError> {
        use super::checkpoint::{Meta, present_units};
        let mut candidates: Vec<(SystemTime, PathBuf, usize)> = Vec::new();
        let mut other = 0;
        for e in std::fs::read_dir(&self.dir)
            .map_err(|e| werr(&self.dir, e))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if !(name.starts_with(FAILED_PREFIX) || name.starts_with(INTERRUPTED_PREFIX)) {
                continue;
            }
            let cp = e.path().join(CHECKPOINT);
            let Ok(meta) = Meta::read(&cp) else { continue };
            if meta.scenario != scenario || meta.shard != shard {
                other += 1;
                continue;
            }
            let when = std::fs::metadata(&cp)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            candidates.push((when, e.path(), present_units(&cp).len()));
        }
        let Some((_, from, units)) = candidates.into_iter().max_by_key(|c| c.0) else {
            return Ok(format!(
                "--resume: no checkpoint of this scenario{} in `{}`{}; starting from the beginning",
                shard.map_or(String::new(), |s| format!(" (shard {}/{})", s.index, s.count)),
                self.dir.display(),
                if other > 0 {
                    format!(" ({other} checkpoint(s) of other scenarios or shards left alone)")
                } else {
                    String::new()
                }
            ));
        };
        std::fs::create_dir_all(&self.staging).map_err(|e| werr(&self.staging, e))?;
        let to = self.staging.join(CHECKPOINT);
        std::fs::rename(from.join(CHECKPOINT), &to).map_err(|e| werr(&to, e))?;
        std::fs::remove_dir_all(&from).map_err(|e| werr(&from, e))?;
        crate::output::sync_dir(&self.dir);
        Ok(format!(
            "--resume: continuing from `{}` ({})",
            from.display(),
            if units > 0 {
                format!("{units} finished unit(s) reused")
            } else {
                "from its last checkpoint".to_string()
            }
        ))
    }

    /// Move the staged `files` (result.json among them, moved last) into `DIR`, removing the
    /// files of the previous run that this run did not write.
    ///
    /// A run that lists `checkpoint` in `files` (a shard) replaces `DIR/checkpoint/` with its
    /// own; any other run drops its staged checkpoint and the previous run's.
    pub fn commit(mut self, files: &[String]) -> Result<(), OutputError> {
        self.finished = true;
        let result = self.dir.join("result.json");
        let previous = previous_files(&result);
        match std::fs::remove_file(&result) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(werr(&result, e)),
            _ => {}
        }
        let staged_checkpoint = self.staging.join(CHECKPOINT);
        if !files.iter().any(|f| f == CHECKPOINT) && staged_checkpoint.is_dir() {
            std::fs::remove_dir_all(&staged_checkpoint).map_err(|e| werr(&staged_checkpoint, e))?;
        }
        let old_checkpoint = self.dir.join(CHECKPOINT);
        if (previous.iter().any(|f| f == CHECKPOINT) || files.iter().any(|f| f == CHECKPOINT))
            && old_checkpoint.is_dir()
        {
            std::fs::remove_dir_all(&old_checkpoint).map_err(|e| werr(&old_checkpoint, e))?;
        }
        for f in previous.iter().filter(|f| !files.contains(f)) {
            let p = self.dir.join(f);
            if plain_name(f) && p.is_file() {
                std::fs::remove_file(&p).map_err(|e| werr(&p, e))?;
            }
        }
        let names: Vec<&String> = files.iter().filter(|f| *f != "result.json").collect();
        // Anything else the task wrote into the staging directory is moved too (never lost).
        if let Ok(entries) = std::fs::read_dir(&self.staging) {
            let extra: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "result.json" && !files.contains(n))
                .collect();
            for n in extra {
                self.rename_in(&n)?;
            }
        }
        for f in names {
            self.rename_in(f)?;
        }
        self.rename_in("result.json")?;
        crate::output::sync_dir(&self.dir);
        std::fs::remove_dir(&self.staging).map_err(|e| werr(&self.staging, e))?;
        Ok(())
    }

    fn rename_in(&self, name: &str) -> Result<(), OutputError> {
        let from = self.staging.join(name);
        let to = self.dir.join(name);
        std::fs::rename(&from, &to)
            .map_err(|e| werr(&to, format!("moving `{}` into place: {e}", from.display())))
    }

    /// A failed run: leave `DIR` as it was; if the run wrote anything, `record` writes the
    /// failed-run result.json into the staging directory (given the files there) and the
    /// staging directory becomes `DIR/failed-<time>-<pid>/`, which is returned.
    pub fn fail(
        self,
        record: impl FnOnce(&Path, Vec<String>) -> Result<(), OutputError>,
    ) -> Result<Option<PathBuf>, OutputError> {
        self.set_aside(FAILED_PREFIX, record)
    }

    /// An interrupted run: as [`Transaction::fail`], into `DIR/interrupted-<time>-<pid>/`
    /// (with its checkpoint, which `--resume` adopts).
    pub fn interrupt(
        self,
        record: impl FnOnce(&Path, Vec<String>) -> Result<(), OutputError>,
    ) -> Result<Option<PathBuf>, OutputError> {
        self.set_aside(INTERRUPTED_PREFIX, record)
    }

    fn set_aside(
        mut self,
        prefix: &str,
        record: impl FnOnce(&Path, Vec<String>) -> Result<(), OutputError>,
    ) -> Result<Option<PathBuf>, OutputError> {
        self.finished = true;
        let mut files: Vec<String> = match std::fs::read_dir(&self.staging) {
            Ok(entries) => entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => return Ok(None),
        };
        if files.is_empty() {
            let _ = std::fs::remove_dir(&self.staging);
            return Ok(None);
        }
        files.sort();
        files.push("result.json".into());
        record(&self.staging, files)?;
        let to = unique_aside(&self.dir, prefix, &std::process::id().to_string());
        std::fs::rename(&self.staging, &to).map_err(|e| werr(&to, e))?;
        crate::output::sync_dir(&self.dir);
        Ok(Some(to))
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.finished && self.staging.is_dir() {
            // A panic: keep what was written, out of the way of the next run.
            let _ = std::fs::rename(
                &self.staging,
                unique_failed(&self.dir, &std::process::id().to_string()),
            );
        }
        drop(self.lock.take());
        if self.created_dir {
            let _ = std::fs::remove_dir(&self.dir); // only if empty
        }
    }
}

/// The `files` of the result.json at `path` (none if absent or unreadable).
fn previous_files(path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    doc["files"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// A bare file name (no separators, not `.`/`..`): only such names are removed from `DIR`.
fn plain_name(f: &str) -> bool {
    !f.is_empty() && f != "." && f != ".." && !f.contains(['/', '\\'])
}

/// `DIR/failed-<UTC time>-<tag>`, with a counter if that exists.
fn unique_failed(dir: &Path, tag: &str) -> PathBuf {
    unique_aside(dir, FAILED_PREFIX, tag)
}

/// `DIR/<prefix><UTC time>-<tag>`, with a counter if that exists.
fn unique_aside(dir: &Path, prefix: &str, tag: &str) -> PathBuf {
    let stamp = utc(SystemTime::now()).replace(['-', ':'], "");
    let base = format!("{prefix}{stamp}-{tag}");
    let mut p = dir.join(&base);
    let mut k = 1;
    while p.exists() {
        p = dir.join(format!("{base}-{k}"));
        k += 1;
    }
    p
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// This host's name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`, else "unknown").
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// The lock file, removed on drop.
struct LockGuard {
    path: PathBuf,
}

/// What a lock file says.
struct Holder {
    pid: u32,
    host: String,
    started: String,
}

impl Holder {
    fn parse(text: &str) -> Option<Holder> {
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
                .map(str::trim)
        };
        Some(Holder {
            pid: field("pid")?.parse().ok()?,
            host: field("host")?.to_string(),
            started: field("started")?.to_string(),
        })
    }

    fn describe(&self) -> String {
        format!("pid {} on host {}, started {}", self.pid, self.host, self.started)
    }

    /// Known dead: on this host, and `/proc` exists but `/proc/<pid>` does not.
    fn dead(&self) -> bool {
        self.host == host()
            && Path::new("/proc/self").exists()
            && !Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

impl LockGuard {
    fn acquire(dir: &Path, notes: &mut Vec<String>) -> Result<LockGuard, OutputError> {
        let path = dir.join(LOCK);
        let content = format!(
            "pid={}\nhost={}\nstarted={}\n",
            std::process::id(),
            host(),
            utc(SystemTime::now())
        );
        let locked = |holder: String| OutputError::Locked {
            lock: path.display().to_string(),
            holder,
        };
        for attempt in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(content.as_bytes())
                        .and_then(|()| f.sync_all())
                        .map_err(|e| werr(&path, e))?;
                    return Ok(LockGuard { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(werr(&path, e)),
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let Some(holder) = Holder::parse(&text) else {
                return Err(locked(format!(
                    "an unknown run (unreadable lock: {:?})",
                    text.trim()
                )));
            };
            if attempt > 0 || !holder.dead() {
                return Err(locked(holder.describe()));
            }
            // Take over a dead run's lock: move it aside under a name of our own, check that
            // it is still the stale one (another run may have taken it over meanwhile), and
            // try again.
            let aside = dir.join(format!("{LOCK}.stale-{}", std::process::id()));
            std::fs::rename(&path, &aside).map_err(|e| werr(&path, e))?;
            if std::fs::read_to_string(&aside).unwrap_or_default() != text {
                let _ = std::fs::rename(&aside, &path);
                return Err(locked("another run that just took over a stale lock".into()));
            }
            let _ = std::fs::remove_file(&aside);
            notes.push(format!(
                "took over the stale lock `{}` of a run that no longer exists ({})",
                path.display(),
                holder.describe()
            ));
        }
        unreachable!("the second attempt returns")
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_civil_time() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_796_203_384);
        assert_eq!(utc(t), "2026-12-02T09:23:04Z");
        assert_eq!(utc(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
        assert_eq!(utc(leap), "2000-02-29T00:00:00Z");
    }

    /// A second transaction on a held directory is refused naming the holder; a lock of a pid
    /// that does not exist is taken over, and said so; the lock goes with the transaction.
    #[test]
    fn lock_refuses_live_and_takes_over_dead() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        let t = Transaction::begin(&dir).unwrap();
        let e = Transaction::begin(&dir).err().unwrap().to_string();
        assert!(
            e.contains(&format!("pid {}", std::process::id())) && e.contains(LOCK) && e.contains("started"),
            "{e}"
        );
        drop(t);
        assert!(!dir.exists(), "an empty directory this run created is removed");
        std::fs::create_dir_all(dir.join(".dicke-staging-4194399")).unwrap();
        std::fs::write(dir.join(".dicke-staging-4194399/observables.csv"), "t\n0\n").unwrap();
        std::fs::write(
            dir.join(LOCK),
            format!("pid=4194399\nhost={}\nstarted=2026-01-01T00:00:00Z\n", host()),
        )
        .unwrap();
        let t = Transaction::begin(&dir).unwrap();
        let notes = t.notes().join("\n");
        assert!(
            notes.contains("took over the stale lock") && notes.contains("pid 4194399"),
            "{notes}"
        );
        assert!(notes.contains("interrupted run (pid 4194399)"), "{notes}");
        drop(t);
        let kept: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(
            kept[0].starts_with(FAILED_PREFIX) && kept[0].ends_with("-4194399"),
            "{kept:?}"
        );
    }
}
