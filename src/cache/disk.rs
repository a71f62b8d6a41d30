//! [`DiskTier`]: the disk tier's health, healthy or degraded.
//!
//! foyer 0.22 does not survive a failed disk write: after ENOSPC or EIO its flusher keeps a
//! block it already handed back (`assertion failed: inserted`), its tombstone log loses its
//! page buffer (`unwrap` on `None`), the flusher task dies and the tier never writes again,
//! and the panics poison its locks. It gives no hook on its I/O (its device and I/O-engine
//! traits name private types) and reports a failed write only in its log. So the edge keeps
//! foyer's writes from failing rather than recovering after them. ENOSPC cannot happen: the
//! cache reserves the tier's files when it opens ([`super::room::reserve`]). A watch still
//! checks, every [`CHECK_EVERY`], whether the writes foyer may issue fit in the free space
//! plus what its files hold ([`super::room::writes_fit`]; after the reservation they always do,
//! unless the reserved space is lost); while they do not, the tier is degraded and
//! [`DiskGate`], foyer's admission filter, rejects every entry: nothing new is written to disk,
//! objects live in memory only, disk hits are still served.
//!
//! A write failure foyer meets anyway (EIO) shows up as an `ERROR` event of `foyer_storage`,
//! which [`FoyerErrors`], a tracing layer, counts (its failed reads are counted by the storage,
//! which drops the entry); a panic in foyer's code is seen by a panic hook
//! ([`watch_foyer_panics`]). After either, foyer's engine may never write again (the flusher
//! lost its block or died), so the tier is **halted**: degraded, counted as `op="write"` or
//! `op="panic"`, logged as an error, until [`super::reopen`] has replaced the hybrid cache
//! with one opened anew on the same folder (once the folder takes writes again) and calls
//! [`DiskTier::reopened`]. Objects in memory stay servable throughout.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foyer::{Statistics, StorageFilterCondition, StorageFilterResult};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use super::room::{held_by, writes_fit, Room};
use super::CacheStats;

/// How often the watch measures the filesystem.
pub const CHECK_EVERY: Duration = Duration::from_millis(500);
/// How often the watch may scan the cache folder for what the tier's files hold (one `stat`
/// per block file: thousands on a large tier). Between scans it uses the last figure, which
/// only understates what they hold, so the watch errs towards degrading.
pub const SCAN_EVERY: Duration = Duration::from_secs(10);
/// Disk writes foyer may issue after a check, in blocks: its flush buffer (2 blocks) and its
/// submit queue (4 blocks), as configured in [`super::Cache::open`].
pub const HEADROOM_BLOCKS: u64 = 6;

/// Failed disk writes foyer reported in its log, since the process started (see
/// [`FoyerErrors`]; a log event has no way back to a particular cache, and there is one per
/// process).
static REPORTED_WRITE_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Panics in foyer's code since the process started (see [`watch_foyer_panics`]).
static FOYER_PANICS: AtomicU64 = AtomicU64::new(0);

/// Count the panics raised in foyer's code (its source files are in crates named `foyer-…`),
/// then let the previous panic hook report them as before. Installed once per process.
pub fn watch_foyer_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.location().is_some_and(|l| in_foyer(l.file())) {
                FOYER_PANICS.fetch_add(1, Ordering::Relaxed);
            }
            previous(info);
        }));
    });
}

/// Whether a panic at `file` is foyer's: a source file of one of its crates (`foyer-storage`,
/// `foyer-memory`, ..., from the registry or a git checkout).
fn in_foyer(file: &str) -> bool {
    file.split(['/', '\\'])
        .any(|dir| dir == "foyer" || dir.starts_with("foyer-"))
}

/// Why the tier is degraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The writes foyer may issue do not fit in the free space.
    Space,
    /// foyer reported a failed write or one of its tasks panicked: its engine may never write
    /// again, until the tier is reopened.
    Halted,
}

/// The disk tier's health and its metrics.
pub struct DiskTier {
    dir: PathBuf,
    /// The bytes foyer's files may occupy: `cache.disk` until [`Self::reserved`] gives what
    /// the reservation allocated.
    capacity: AtomicU64,
    headroom: u64,
    degraded: AtomicBool,
    /// Where foyer's reports are counted ([`REPORTED_WRITE_ERRORS`]; a test's own counter).
    reports: &'static AtomicU64,
    /// Where panics in foyer are counted ([`FOYER_PANICS`]; a test's own counter).
    panics: &'static AtomicU64,
    watch: Mutex<Watch>,
    stats: Arc<CacheStats>,
    errors_write: IntCounter,
    errors_read: IntCounter,
    errors_space: IntCounter,
    errors_panic: IntCounter,
    degraded_gauge: IntGauge,
    reopens_ok: IntCounter,
    reopens_failed: IntCounter,
}

/// What the watch remembers between checks.
#[derive(Debug, Default)]
struct Watch {
    reason: Option<Reason>,
    /// What the tier's files held at the last scan, and when that was.
    held: u64,
    scanned: Option<Instant>,
    reported_seen: u64,
    read_errors_seen: u64,
    panics_seen: u64,
    halted: bool,
}

impl DiskTier {
    /// The health of a tier of `capacity` bytes with blocks of `block` bytes in `dir`, its
    /// metrics registered in `registry`. Healthy until the first [`Self::check`].
    pub fn new(
        dir: PathBuf,
        capacity: u64,
        block: u64,
        stats: Arc<CacheStats>,
        registry: &Registry,
    ) -> Result<DiskTier, prometheus::Error> {
        let errors = IntCounterVec::new(
            Opts::new(
                "edge_disk_tier_errors_total",
                "Disk tier failures by op: write (foyer reported a failed write: the tier is halted until reopened), read (a disk read failed; the entry was dropped), space (the filesystem got too full for the tier's next writes), panic (a task of foyer's panicked: the tier is halted until reopened)",
            ),
            &["op"],
        )?;
        let degraded_gauge = IntGauge::new(
            "edge_disk_tier_degraded",
            "1 while the disk tier is degraded (no new disk writes: full filesystem, or halted after a failed write or a panic in foyer until it is reopened), else 0",
        )?;
        let reopens = IntCounterVec::new(
            Opts::new(
                "edge_disk_tier_reopens_total",
                "Tries to reopen a halted disk tier, by result: ok (a new disk engine took over the folder), failed (the folder still failed I/O or foyer did not open; tried again later)",
            ),
            &["result"],
        )?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(degraded_gauge.clone()))?;
        registry.register(Box::new(reopens.clone()))?;
        let read_errors_seen = stats.disk_read_errors.load(Ordering::Relaxed);
        Ok(DiskTier {
            dir,
            capacity: AtomicU64::new(capacity),
            headroom: block.saturating_mul(HEADROOM_BLOCKS),
            degraded: AtomicBool::new(false),
            reports: &REPORTED_WRITE_ERRORS,
            panics: &FOYER_PANICS,
            watch: Mutex::new(Watch {
                reported_seen: REPORTED_WRITE_ERRORS.load(Ordering::Relaxed),
                read_errors_seen,
                panics_seen: FOYER_PANICS.load(Ordering::Relaxed),
                ..Watch::default()
            }),
            stats,
            errors_write: errors.with_label_values(&["write"]),
            errors_read: errors.with_label_values(&["read"]),
            errors_space: errors.with_label_values(&["space"]),
            errors_panic: errors.with_label_values(&["panic"]),
            degraded_gauge,
            reopens_ok: reopens.with_label_values(&["ok"]),
            reopens_failed: reopens.with_label_values(&["failed"]),
        })
    }

    /// The tier's files were allocated to `bytes` in all (see [`super::room::reserve`]): what
    /// foyer may occupy, and so what [`writes_fit`] compares with what they hold.
    pub fn reserved(&self, bytes: u64) {
        self.capacity.store(bytes, Ordering::Relaxed);
    }

    /// Whether the tier takes no new writes now.
    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Measure and update the state (blocking: a `statvfs` and, when space is short, a scan
    /// of the cache folder).
    pub fn check(&self, now: Instant) {
        let mut watch = self.watch.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.measure(&mut watch, now);
        let reported = self.reports.load(Ordering::Relaxed);
        if reported > watch.reported_seen {
            self.errors_write.inc_by(reported - watch.reported_seen);
            watch.reported_seen = reported;
            if !watch.halted {
                tracing::error!("the disk cache (foyer) failed a write: the disk tier is halted, objects stay in memory; it is reopened once its folder takes writes again");
            }
            watch.halted = true;
        }
        let read_errors = self.stats.disk_read_errors.load(Ordering::Relaxed);
        if read_errors > watch.read_errors_seen {
            self.errors_read
                .inc_by(read_errors - watch.read_errors_seen);
            watch.read_errors_seen = read_errors;
        }
        let panics = self.panics.load(Ordering::Relaxed);
        if panics > watch.panics_seen {
            self.errors_panic.inc_by(panics - watch.panics_seen);
            watch.panics_seen = panics;
            if !watch.halted {
                tracing::error!("a task of the disk cache (foyer) panicked: the disk tier is halted, objects stay in memory; it is reopened once its folder takes writes again");
            }
            watch.halted = true;
        }
        let reason = match room {
            _ if watch.halted => Some(Reason::Halted),
            Ok(room) if writes_fit(room, self.capacity.load(Ordering::Relaxed), self.headroom) => {
                None
            }
            Ok(_) => Some(Reason::Space),
            Err(ref e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot measure the cache folder's filesystem");
                Some(Reason::Space)
            }
        };
        if reason == watch.reason {
            return;
        }
        match (watch.reason, reason) {
            (_, Some(r)) => {
                if r == Reason::Space {
                    self.errors_space.inc();
                }
                let free = room.as_ref().map(|r| r.available).unwrap_or(0);
                tracing::warn!(reason = ?r, free_bytes = free, "disk tier degraded: objects stay in memory, nothing new is written to disk");
            }
            (Some(_), None) => {
                tracing::warn!("disk tier healthy again: evicted objects are written to disk")
            }
            (None, None) => {}
        }
        watch.reason = reason;
        self.degraded.store(reason.is_some(), Ordering::Relaxed);
        self.degraded_gauge.set(i64::from(reason.is_some()));
    }

    /// Whether the tier is halted (a failed write or a panic in foyer): [`super::reopen`]
    /// replaces the hybrid cache while it is.
    pub fn halted(&self) -> bool {
        self.watch.lock().unwrap_or_else(|e| e.into_inner()).halted
    }

    /// A reopen replaced the hybrid cache: what foyer reported and the panics it raised so
    /// far were the old engine's, and the new one starts healthy (checked now, so the gate
    /// admits again at once unless space is short).
    pub fn reopened(&self, now: Instant) {
        {
            let mut watch = self.watch.lock().unwrap_or_else(|e| e.into_inner());
            watch.halted = false;
            watch.reported_seen = self.reports.load(Ordering::Relaxed);
            watch.panics_seen = self.panics.load(Ordering::Relaxed);
        }
        self.reopens_ok.inc();
        self.check(now);
    }

    /// A try to reopen the tier failed; it stays halted.
    pub fn reopen_failed(&self) {
        self.reopens_failed.inc();
    }

    /// The filesystem's figures and what the tier's files hold. The folder is scanned only
    /// when the free space alone does not show that the whole tier fits, the files are not
    /// known to hold the whole tier yet, and the last scan is [`SCAN_EVERY`] old.
    fn measure(&self, watch: &mut Watch, now: Instant) -> std::io::Result<Room> {
        let mut room = Room::measure_fs(&self.dir)?;
        let capacity = self.capacity.load(Ordering::Relaxed);
        let stale = watch
            .scanned
            .is_none_or(|t| now.duration_since(t) >= SCAN_EVERY);
        if room.available < capacity && watch.held < capacity && stale {
            watch.held = held_by(&self.dir);
            watch.scanned = Some(now);
        }
        room.held = watch.held;
        Ok(room)
    }

    /// Check now, then every [`CHECK_EVERY`] on the current tokio runtime (the cache's), for
    /// as long as it runs.
    pub fn watch(self: &Arc<Self>) {
        self.check(Instant::now());
        let tier = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(CHECK_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let t = tier.clone();
                if tokio::task::spawn_blocking(move || t.check(Instant::now()))
                    .await
                    .is_err()
                {
                    tracing::warn!("disk tier check failed");
                }
            }
        });
    }
}

/// foyer's admission filter condition: reject every entry while the tier is degraded.
#[derive(Clone)]
pub struct DiskGate(pub Arc<DiskTier>);

impl std::fmt::Debug for DiskGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskGate")
            .field("degraded", &self.0.degraded())
            .finish()
    }
}

impl StorageFilterCondition for DiskGate {
    fn filter(
        &self,
        _stats: &Arc<Statistics>,
        _hash: u64,
        _estimated_size: usize,
    ) -> StorageFilterResult {
        if self.0.degraded() {
            StorageFilterResult::Reject
        } else {
            StorageFilterResult::Admit
        }
    }
}

/// A tracing layer that counts foyer's reports of failed disk writes (its `ERROR` events other
/// than a failed load, which the storage counts as a read error when the lookup fails), the
/// only way foyer tells. Install it with a filter of its own (see [`FoyerErrors::layer`]) so
/// the log filter (`RUST_LOG`) cannot hide the reports from it.
pub struct FoyerErrors;

impl FoyerErrors {
    /// The layer, filtered to `ERROR` events of `foyer_storage`.
    pub fn layer<S>() -> impl tracing_subscriber::Layer<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        use tracing_subscriber::Layer;
        FoyerErrors.with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target("foyer_storage", tracing::Level::ERROR),
        )
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for FoyerErrors {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut message = Message(String::new());
        event.record(&mut message);
        if !is_load_error(&message.0) {
            REPORTED_WRITE_ERRORS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Whether an error event of foyer's is about a failed load (a read), by its message:
/// `[block engine load]: load error` in foyer 0.22.
fn is_load_error(message: &str) -> bool {
    message.starts_with("[block engine load]")
}

/// The `message` field of a tracing event.
struct Message(String);

impl tracing::field::Visit for Message {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tier with blocks of `block` bytes, counting foyer's reports in a counter of its own
    /// (the process-wide one is shared by every test).
    fn tier(dir: &std::path::Path, capacity: u64, block: u64) -> (DiskTier, Registry) {
        let registry = Registry::new();
        let mut t = DiskTier::new(
            dir.to_path_buf(),
            capacity,
            block,
            Arc::new(CacheStats::default()),
            &registry,
        )
        .unwrap();
        t.reports = Box::leak(Box::new(AtomicU64::new(0)));
        t.panics = Box::leak(Box::new(AtomicU64::new(0)));
        let w = t.watch.get_mut().unwrap();
        w.reported_seen = 0;
        w.panics_seen = 0;
        (t, registry)
    }

    fn sample(registry: &Registry, line: &str) -> bool {
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        text.lines().any(|l| l == line)
    }

    #[test]
    fn a_tier_that_fits_is_healthy() {
        let dir = tempfile::tempdir().unwrap();
        let (t, registry) = tier(dir.path(), 1 << 20, 4 << 20);
        t.check(Instant::now());
        assert!(!t.degraded());
        assert!(sample(&registry, "edge_disk_tier_degraded 0"));
        assert!(sample(
            &registry,
            "edge_disk_tier_errors_total{op=\"space\"} 0"
        ));
    }

    #[test]
    fn a_tier_larger_than_its_filesystem_is_degraded_and_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let total = fs4::total_space(dir.path()).unwrap();
        // Blocks as large as the filesystem: the headroom (6 blocks) cannot be free.
        let (t, registry) = tier(dir.path(), total.saturating_mul(4), total);
        t.check(Instant::now());
        t.check(Instant::now());
        assert!(t.degraded());
        assert!(sample(
            &registry,
            "edge_disk_tier_errors_total{op=\"space\"} 1"
        ));
        assert!(sample(&registry, "edge_disk_tier_degraded 1"));
    }

    #[test]
    fn a_reported_write_failure_halts_the_tier_until_it_is_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let (t, registry) = tier(dir.path(), 1 << 20, 4 << 20);
        let start = Instant::now();
        t.check(start);
        t.reports.fetch_add(1, Ordering::Relaxed);
        t.check(start);
        assert!(t.degraded());
        assert!(t.halted());
        assert!(sample(
            &registry,
            "edge_disk_tier_errors_total{op=\"write\"} 1"
        ));
        assert!(sample(&registry, "edge_disk_tier_degraded 1"));
        // Time alone does not end it.
        t.check(start + Duration::from_secs(3600));
        assert!(t.degraded());
        // A reopen does; reports of the old engine that arrive with it are not counted again.
        t.reports.fetch_add(2, Ordering::Relaxed);
        t.reopened(start + Duration::from_secs(3601));
        assert!(!t.halted());
        assert!(!t.degraded());
        assert!(sample(&registry, "edge_disk_tier_degraded 0"));
        assert!(sample(
            &registry,
            "edge_disk_tier_reopens_total{result=\"ok\"} 1"
        ));
        t.check(start + Duration::from_secs(3602));
        assert!(!t.degraded());
        assert!(sample(
            &registry,
            "edge_disk_tier_errors_total{op=\"write\"} 1"
        ));
        // The new engine's own failure halts it again.
        t.reports.fetch_add(1, Ordering::Relaxed);
        t.check(start + Duration::from_secs(3603));
        assert!(t.halted());
        assert!(sample(
            &registry,
            "edge_disk_tier_errors_total{op=\"write\"} 2"
        ));
    }

    #[test]
    fn load_errors_are_not_write_errors() {
        assert!(is_load_error("[block engine load]: load error"));
        assert!(!is_load_error("[flusher]: flush data error"));
        assert!(!is_load_error("[block engine flusher]: io task error"));
    }

    #[test]
    fn a_panic_in_foyer_halts_the_tier_until_it_is_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let (t, registry) = tier(dir.path(), 1 << 20, 4 << 20);
        let start = Instant::now();
        t.check(start);
        assert!(!t.degraded());
        t.panics.fetch_add(1, Ordering::Relaxed);
        t.check(start);
        assert!(t.degraded());
        assert!(sample(
            &registry,
            "edge_disk_tier_errors_total{op=\"panic\"} 1"
        ));
        assert!(sample(&registry, "edge_disk_tier_degraded 1"));
        t.check(start + Duration::from_secs(300));
        assert!(t.degraded());
        assert!(sample(&registry, "edge_disk_tier_degraded 1"));
        t.reopened(start + Duration::from_secs(301));
        assert!(!t.degraded());
        assert!(sample(
            &registry,
            "edge_disk_tier_errors_total{op=\"panic\"} 1"
        ));
    }

    #[test]
    fn panics_are_foyers_when_raised_in_its_crates() {
        assert!(in_foyer(
            "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/foyer-storage-0.22.6/src/engine/block/flusher.rs"
        ));
        assert!(in_foyer("foyer-memory-0.22.6/src/raw.rs"));
        assert!(!in_foyer("src/cache/disk.rs"));
        assert!(!in_foyer(
            "/root/.cargo/registry/src/x/pingora-cache-0.9.1/src/lib.rs"
        ));
        assert!(!in_foyer("/work/foyerish/src/lib.rs"));
    }

    #[test]
    fn the_gate_rejects_while_degraded() {
        let dir = tempfile::tempdir().unwrap();
        let (t, _r) = tier(dir.path(), 1 << 20, 4 << 20);
        let t = Arc::new(t);
        let gate = DiskGate(t.clone());
        let stats = Arc::new(Statistics::new(foyer::Throttle::default()));
        assert_eq!(gate.filter(&stats, 1, 10), StorageFilterResult::Admit);
        t.degraded.store(true, Ordering::Relaxed);
        assert_eq!(gate.filter(&stats, 1, 10), StorageFilterResult::Reject);
    }
}
