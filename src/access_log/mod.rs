//! The access log: one line per answered request, from the front and the pipeline alike
//! ([`crate::proxy::record::RequestRecord::emit`] makes it), written by one thread of its
//! own ([`writer`]).
//!
//! A request never waits for the log: its line goes into a bounded channel (`[log] buffer`
//! lines) with `try_send`; when the writer is behind and the channel is full, the line is
//! dropped and counted (`edge_access_log_dropped_total`). Written lines are counted
//! (`edge_access_log_lines_total`), failed opens and writes too
//! (`edge_access_log_write_errors_total`, logged once until a write succeeds again); neither
//! ever stops the edge. `SIGUSR1` ([`AccessLog::reopen`]) closes the file and opens its path
//! again, for rotation by `mv` (logrotate without `copytruncate`). `[log]` reloads live
//! except `buffer` (the channel is made once).

pub mod ids;
pub mod line;
mod writer;

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use prometheus::{IntCounter, Registry};

use crate::config::{LogConfig, LogTarget};

/// What the requests and the writer share.
struct Shared {
    target: Mutex<LogTarget>,
    /// Set by `SIGUSR1` or a new target: the writer closes what it has open.
    reopen: AtomicBool,
    lines: IntCounter,
    errors: IntCounter,
    /// Whether the last failure was logged (reset by a success).
    error_logged: AtomicBool,
}

impl Shared {
    fn target(&self) -> LogTarget {
        self.target
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn written(&self, n: usize) {
        self.lines.inc_by(n as u64);
        self.error_logged.store(false, Ordering::Relaxed);
    }

    fn failed(&self, what: &str, lines: usize) {
        self.errors.inc();
        if !self.error_logged.swap(true, Ordering::Relaxed) {
            tracing::error!(
                lines,
                "access log: {what}; lines are lost until a write succeeds (counted in edge_access_log_write_errors_total)"
            );
        }
    }
}

/// The access log's sending end, shared by every request.
pub struct AccessLog {
    tx: SyncSender<Vec<u8>>,
    shared: Arc<Shared>,
    dropped: IntCounter,
}

impl AccessLog {
    /// Make the channel (`cfg.buffer` lines), start the writer thread and register the
    /// metrics in `registry`.
    pub fn start(cfg: &LogConfig, registry: &Registry) -> Result<AccessLog, StartError> {
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let shared = Arc::new(Shared {
            target: Mutex::new(cfg.access.clone()),
            reopen: AtomicBool::new(false),
            lines: counter("edge_access_log_lines_total", "Access-log lines written")?,
            errors: counter(
                "edge_access_log_write_errors_total",
                "Access-log opens and writes that failed (their lines are lost)",
            )?,
            error_logged: AtomicBool::new(false),
        });
        let dropped = counter(
            "edge_access_log_dropped_total",
            "Access-log lines dropped because the writer was behind (the buffer was full)",
        )?;
        let (tx, rx) = sync_channel(cfg.buffer);
        let for_writer = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("edge-access-log".into())
            .spawn(move || writer::run(rx, for_writer))
            .map_err(StartError::Thread)?;
        Ok(AccessLog {
            tx,
            shared,
            dropped,
        })
    }

    /// Queue one finished line; never waits. A full buffer drops it (counted).
    pub fn submit(&self, line: Vec<u8>) {
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.dropped.inc(),
        }
    }

    /// `SIGUSR1`: the file is closed and its path opened again before the next line.
    pub fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Release);
    }

    /// After a reload: a new target is opened before the next line.
    pub fn retarget(&self, target: &LogTarget) {
        let mut t = self.shared.target.lock().unwrap_or_else(|p| p.into_inner());
        if *t != *target {
            *t = target.clone();
            self.reopen();
        }
    }
}

/// Why the access log could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot start the writer thread: {0}")]
    Thread(std::io::Error),
}

/// Whether a line of a request with this cache result is written under `cfg`: never when
/// the log is off; a `HIT` with probability `hit_sample`; everything else always.
pub fn wanted(cfg: &LogConfig, cache: &str) -> bool {
    if cfg.access == LogTarget::Off {
        return false;
    }
    cache != "HIT" || sampled(cfg.hit_sample)
}

/// `true` with probability `rate` (a per-thread xorshift: no shared state, no syscall).
fn sampled(rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 {
        return false;
    }
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new().build_hasher().finish() | 1
        });
    }
    let x = STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    });
    ((x >> 11) as f64 / (1u64 << 53) as f64) < rate
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn sampling_keeps_about_the_rate_and_never_misses() {
        let mut cfg = LogConfig {
            access: LogTarget::Stdout,
            ..LogConfig::default()
        };
        cfg.hit_sample = 0.25;
        let kept = (0..20_000).filter(|_| wanted(&cfg, "HIT")).count();
        assert!((4_000..6_000).contains(&kept), "{kept}");
        assert!((0..100).all(|_| wanted(&cfg, "MISS")));
        cfg.hit_sample = 0.0;
        assert!(!(0..1000).any(|_| wanted(&cfg, "HIT")));
        assert!(wanted(&cfg, "STALE"));
        cfg.access = LogTarget::Off;
        assert!(!wanted(&cfg, "MISS"));
    }

    fn wait_for(what: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !what() {
            assert!(Instant::now() < deadline, "timed out");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn lines_reach_the_file_and_a_reopen_follows_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let cfg = LogConfig {
            access: LogTarget::File(path.clone()),
            ..LogConfig::default()
        };
        let log = AccessLog::start(&cfg, &Registry::new()).unwrap();
        log.submit(b"one\n".to_vec());
        wait_for(|| std::fs::read_to_string(&path).unwrap_or_default() == "one\n");
        let rotated = dir.path().join("access.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        log.submit(b"two\n".to_vec());
        wait_for(|| log.shared.lines.get() == 2);
        assert_eq!(std::fs::read_to_string(&rotated).unwrap(), "one\ntwo\n");
        log.reopen();
        log.submit(b"three\n".to_vec());
        wait_for(|| std::fs::read_to_string(&path).unwrap_or_default() == "three\n");
        assert_eq!(log.dropped.get(), 0);
    }

    #[test]
    fn an_unopenable_file_is_counted_not_fatal() {
        let cfg = LogConfig {
            access: LogTarget::File("/nonexistent-dir/x/access.log".into()),
            ..LogConfig::default()
        };
        let log = AccessLog::start(&cfg, &Registry::new()).unwrap();
        log.submit(b"lost\n".to_vec());
        wait_for(|| log.shared.errors.get() >= 1);
        assert_eq!(log.shared.lines.get(), 0);
    }
}
