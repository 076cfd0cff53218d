//! Progress on stderr for the `dicke` binary (the library reports through
//! [`dicke::run::Progress`] and never prints).
//!
//! Before a run: one `estimate:` line with its cost (work and memory, [`dicke::task::estimate`]).
//! On a terminal: an indicatif bar. Without one (batch jobs, cluster schedulers, `2> log`):
//! one line every `DICKE_PROGRESS_INTERVAL_S` seconds (default 10) with what runs, done/total,
//! the rate and the ETA, printed by a heartbeat thread, so that a phase that does not advance
//! (a stiff evolution between two saves) still shows that it is alive and for how long.

use dicke::run::Progress;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The CLI's [`Progress`]: a bar on a terminal, a periodic log line otherwise.
#[derive(Default)]
pub struct CliProgress {
    bar: Option<ProgressBar>,
    log: Option<Heartbeat>,
}

/// The log-line reporter of one phase.
struct Heartbeat {
    done: Arc<AtomicU64>,
    stop: Arc<(Mutex<bool>, std::sync::Condvar)>,
    finished: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    what: String,
    total: u64,
    started: Instant,
}

/// Seconds between log lines (`DICKE_PROGRESS_INTERVAL_S`, default 10).
fn interval() -> Duration {
    let s = std::env::var("DICKE_PROGRESS_INTERVAL_S")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0)
        .unwrap_or(10.0);
    Duration::from_secs_f64(s)
}

/// One log line: what, done/total, elapsed, rate and ETA.
fn line(what: &str, done: u64, total: u64, elapsed: Duration) -> String {
    let t = elapsed.as_secs_f64();
    let rate = done as f64 / t.max(1e-9);
    let eta = if done > 0 && total > done {
        format!(", eta {:.0} s", (total - done) as f64 / rate)
    } else {
        String::new()
    };
    format!("progress: {what} {done}/{total} after {t:.0} s ({rate:.3}/s{eta})")
}

impl Heartbeat {
    fn start(total: u64, what: &str) -> Heartbeat {
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let finished = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let (d, s, w) = (Arc::clone(&done), Arc::clone(&stop), what.to_string());
        let thread = std::thread::spawn(move || {
            let (lock, cv) = &*s;
            let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
            // `end` may have run before this thread took the lock: its notification is then
            // lost, and waiting first would hold the process for a whole interval.
            while !*stopped {
                let (g, timeout) = cv
                    .wait_timeout(stopped, interval())
                    .unwrap_or_else(|e| e.into_inner());
                stopped = g;
                if !*stopped && timeout.timed_out() {
                    eprintln!(
                        "{}",
                        line(&w, d.load(Ordering::Relaxed), total, started.elapsed())
                    );
                }
            }
        });
        Heartbeat {
            done,
            stop,
            finished,
            thread: Some(thread),
            what: what.to_string(),
            total,
            started,
        }
    }

    fn end(&mut self) {
        if self.finished.swap(true, Ordering::Relaxed) {
            return;
        }
        let (lock, cv) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // A closing line only for phases long enough to have logged.
        if self.started.elapsed() >= interval() {
            let done = self.done.load(Ordering::Relaxed);
            eprintln!(
                "{} (finished)",
                line(&self.what, done, self.total, self.started.elapsed())
            );
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.end();
    }
}

impl Progress for CliProgress {
    fn start(&mut self, total: u64, what: &str) {
        self.finish();
        if std::io::stderr().is_terminal() {
            let pb = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{msg:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} (eta {eta})",
            ) {
                pb.set_style(style);
            }
            pb.set_message(what.to_string());
            self.bar = Some(pb);
        } else {
            self.log = Some(Heartbeat::start(total, what));
        }
    }

    fn set(&mut self, done: u64) {
        if let Some(pb) = &self.bar {
            pb.set_position(done);
        }
        if let Some(h) = &self.log {
            h.done.store(done, Ordering::Relaxed);
        }
    }

    /// The run's cost line ([`dicke::task::estimate`]), on a terminal and in a log alike.
    fn estimate(&mut self, text: &str) {
        eprintln!("estimate: {text}");
    }

    fn finish(&mut self) {
        if let Some(pb) = self.bar.take() {
            pb.finish_and_clear();
        }
        if let Some(mut h) = self.log.take() {
            h.end();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::line;
    use std::time::Duration;

    #[test]
    fn log_line_has_rate_and_eta() {
        let l = line("scan", 5, 20, Duration::from_secs(10));
        assert_eq!(l, "progress: scan 5/20 after 10 s (0.500/s, eta 30 s)");
        assert!(!line("evolve", 0, 101, Duration::from_secs(20)).contains("eta"));
    }
}
