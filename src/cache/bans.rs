//! Purges as bans: a purge records "objects stored before time T under this host/path
//! (prefix) are invalid", checked at lookup against the object's stored time. A prefix purge
//! is therefore O(1) however many objects it covers, and nothing is scanned.
//!
//! - [`index`]: the lookup structure (a hash map for exact URLs, a patricia trie for
//!   prefixes): a lookup costs the same with 100,000 bans as with one.
//! - [`log`]: `<cache dir>/bans.log`, appended on every purge and compacted at start and when
//!   it holds more than [`COMPACT_FACTOR`] times the live bans, so bans survive a restart.
//!
//! A ban matters only for objects stored before it, and only while such an object may still
//! be served: it is kept for `keep_for` (the cache's longest servable lifetime,
//! [`crate::cache::policy::longest_servable`]) and dropped by the first purge, listing or
//! start after that. Until it is dropped it is still obeyed, which is only more cautious.
//!
//! Reads (every cache lookup) take a shared lock on the index, or nothing at all while there
//! are no bans; purges are serialized by the writer's mutex and hold the index's exclusive
//! lock only to insert one entry (or to drop expired ones).
//!
//! Durability: a purge is in the log (one `write`) before it is answered, so it survives a
//! crash of the process; a thread `fdatasync`s the log within [`SYNC_EVERY`] of a purge, so
//! a power loss can lose at most that last second of purges. (An `fdatasync` per purge costs
//! 0.4 ms on an idle disk and 4-16 ms on a busy one: 10,000 purges would take minutes.)

pub mod index;
pub mod log;

use std::collections::VecDeque;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The log is rewritten once it holds more than this many times the live bans (plus
/// [`COMPACT_SLACK`] lines, so a small set is not rewritten on every purge).
pub const COMPACT_FACTOR: usize = 2;
const COMPACT_SLACK: usize = 1024;
/// How soon after a purge the log reaches the disk.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);

/// One purge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ban {
    /// Host the ban applies to; `None` = every host.
    pub host: Option<Arc<str>>,
    /// Path prefix (a purge of one URL is an exact path).
    pub path: Arc<str>,
    pub exact: bool,
    /// Soft: mark stale (revalidate, a 304 keeps the body) instead of removing.
    pub soft: bool,
    /// When the purge happened, in milliseconds since the epoch.
    pub at_ms: u64,
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What a lookup should do with an object (ordered by strength).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Keep,
    /// Revalidate (soft purge).
    Expire,
    /// Refetch (hard purge).
    Remove,
}

/// What only the writer touches: the bans in time order (oldest first) and the log.
struct Writer {
    order: VecDeque<Ban>,
    log: log::Log,
    /// A handle on the current log file for `fdatasync` outside the lock.
    sync: Arc<File>,
    /// Appended to since the last `fdatasync`.
    dirty: bool,
}

/// The ban list: shared-lock reads on the request path, serialized writes.
pub struct Bans {
    index: RwLock<index::Index>,
    /// Live bans: lookups skip the lock while it is 0.
    live: AtomicUsize,
    writer: Arc<Mutex<Writer>>,
    keep_for: Duration,
}

fn lock(w: &Mutex<Writer>) -> std::sync::MutexGuard<'_, Writer> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sync the log every [`SYNC_EVERY`] while purges come in; ends with the [`Bans`].
fn spawn_syncer(writer: std::sync::Weak<Mutex<Writer>>) -> std::io::Result<()> {
    let run = move || loop {
        std::thread::sleep(SYNC_EVERY);
        let Some(w) = writer.upgrade() else { return };
        let file = {
            let mut g = lock(&w);
            if !std::mem::take(&mut g.dirty) {
                continue;
            }
            g.sync.clone()
        };
        drop(w);
        if let Err(e) = file.sync_data() {
            tracing::warn!(error = %e, "bans: syncing bans.log failed");
        }
    };
    std::thread::Builder::new()
        .name("edge-bans-sync".into())
        .spawn(run)
        .map(drop)
}

impl Bans {
    /// Load `dir/bans.log` (missing = no bans; damaged = an error naming the file), drop the
    /// bans older than `keep_for`, and compact the log if that or a torn line left it longer
    /// than the live set.
    pub fn load(dir: &Path, keep_for: Duration) -> std::io::Result<Bans> {
        let loaded = log::Log::open(dir)?;
        let mut all = loaded.bans;
        let read = all.len();
        all.sort_by_key(|b| b.at_ms);
        let horizon = ms(SystemTime::now()).saturating_sub(keep_for.as_millis() as u64);
        let order: VecDeque<Ban> = all.into_iter().filter(|b| b.at_ms >= horizon).collect();
        let mut log = loaded.log;
        if loaded.dirty || order.len() != read || log.lines() != order.len() {
            log.rewrite(order.iter())?;
        }
        let mut index = index::Index::default();
        for b in &order {
            index.insert(b);
        }
        let live = AtomicUsize::new(order.len());
        let sync = Arc::new(log.syncer()?);
        let writer = Arc::new(Mutex::new(Writer {
            order,
            log,
            sync,
            dirty: false,
        }));
        spawn_syncer(Arc::downgrade(&writer))?;
        Ok(Bans {
            index: RwLock::new(index),
            live,
            writer,
            keep_for,
        })
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        lock(&self.writer)
    }

    fn index_mut(&self) -> std::sync::RwLockWriteGuard<'_, index::Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Drop the bans older than `keep_for` at `now_ms` (they are at the front).
    fn expire(&self, w: &mut Writer, now_ms: u64) {
        let horizon = now_ms.saturating_sub(self.keep_for.as_millis() as u64);
        let n = w.order.iter().take_while(|b| b.at_ms < horizon).count();
        if n == 0 {
            return;
        }
        let mut index = self.index_mut();
        for b in w.order.drain(..n) {
            index.remove(&b);
        }
        drop(index);
        self.live.store(w.order.len(), Ordering::Release);
    }

    /// Record a purge now: obeyed at once, in the log before this returns (see the module
    /// doc on durability).
    pub fn add(
        &self,
        host: Option<String>,
        path: String,
        exact: bool,
        soft: bool,
    ) -> std::io::Result<Ban> {
        let mut w = self.writer();
        let now = ms(SystemTime::now());
        self.expire(&mut w, now);
        // Never earlier than the last ban (a clock step back): the list stays in time order.
        let at_ms = now.max(w.order.back().map_or(0, |b| b.at_ms));
        let ban = Ban {
            host: host.map(Arc::from),
            path: Arc::from(path),
            exact,
            soft,
            at_ms,
        };
        w.log.append(&ban)?;
        w.dirty = true;
        self.index_mut().insert(&ban);
        w.order.push_back(ban.clone());
        self.live.store(w.order.len(), Ordering::Release);
        if w.log.lines() > COMPACT_FACTOR * w.order.len() + COMPACT_SLACK {
            let Writer {
                order, log, sync, ..
            } = &mut *w;
            // On failure the log as it is stays valid (only longer): go on appending.
            match log.rewrite(order.iter()).and_then(|()| log.syncer()) {
                Ok(file) => *sync = Arc::new(file),
                Err(e) => tracing::warn!(error = %e, "bans: compacting the log failed"),
            }
        }
        Ok(ban)
    }

    /// The verdict for an object of `host`/`path` last stored (or revalidated) at `stored`.
    pub fn verdict(&self, host: &str, path: &str, stored: SystemTime) -> Verdict {
        if self.live.load(Ordering::Acquire) == 0 {
            return Verdict::Keep;
        }
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        index.verdict(host, path, ms(stored))
    }

    /// The live bans, newest first, at most `limit` of them, and how many there are in all.
    pub fn list(&self, limit: usize) -> (usize, Vec<Ban>) {
        let mut w = self.writer();
        self.expire(&mut w, ms(SystemTime::now()));
        (
            w.order.len(),
            w.order.iter().rev().take(limit).cloned().collect(),
        )
    }

    /// How long a ban is kept.
    pub fn keep_for(&self) -> Duration {
        self.keep_for
    }

    pub fn len(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_exact_host_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let bans = Bans::load(dir.path(), Duration::from_secs(3600)).unwrap();
        let before = SystemTime::now() - Duration::from_secs(5);
        assert_eq!(
            bans.verdict("any", "/v/title/seg1.ts", before),
            Verdict::Keep
        );
        bans.add(None, "/v/title/".into(), false, false).unwrap();
        bans.add(Some("a.example".into()), "/v/other/x.ts".into(), true, true)
            .unwrap();
        assert_eq!(
            bans.verdict("any", "/v/title/seg1.ts", before),
            Verdict::Remove
        );
        assert_eq!(
            bans.verdict("any", "/v/title2/seg1.ts", before),
            Verdict::Keep
        );
        assert_eq!(
            bans.verdict("a.example", "/v/other/x.ts", before),
            Verdict::Expire
        );
        assert_eq!(
            bans.verdict("b.example", "/v/other/x.ts", before),
            Verdict::Keep
        );
        assert_eq!(
            bans.verdict("a.example", "/v/other/x.ts2", before),
            Verdict::Keep
        );
        // Objects stored after the purge are not affected.
        let after = SystemTime::now() + Duration::from_secs(1);
        assert_eq!(
            bans.verdict("any", "/v/title/seg1.ts", after),
            Verdict::Keep
        );
    }

    #[test]
    fn bans_survive_reload_and_old_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        {
            let bans = Bans::load(dir.path(), Duration::from_secs(3600)).unwrap();
            bans.add(None, "/v/".into(), false, false).unwrap();
        }
        let bans = Bans::load(dir.path(), Duration::from_secs(3600)).unwrap();
        assert_eq!(bans.len(), 1);
        assert_eq!(
            bans.verdict("h", "/v/a", SystemTime::now() - Duration::from_secs(1)),
            Verdict::Remove
        );
        drop(bans);
        std::thread::sleep(Duration::from_millis(5));
        let bans = Bans::load(dir.path(), Duration::from_millis(1)).unwrap();
        assert_eq!(bans.len(), 0, "past keep_for a ban is gone at start");
        assert_eq!(
            bans.verdict("h", "/v/a", UNIX_EPOCH + Duration::from_secs(1)),
            Verdict::Keep
        );
        let text = std::fs::read_to_string(dir.path().join(log::FILE)).unwrap();
        assert_eq!(text, "", "and the log was compacted");
    }

    #[test]
    fn expired_bans_are_dropped_by_the_next_purge() {
        let dir = tempfile::tempdir().unwrap();
        let bans = Bans::load(dir.path(), Duration::from_millis(20)).unwrap();
        bans.add(None, "/v/".into(), false, false).unwrap();
        bans.add(None, "/v/a.ts".into(), true, false).unwrap();
        assert_eq!(bans.len(), 2);
        std::thread::sleep(Duration::from_millis(40));
        bans.add(None, "/w/".into(), false, true).unwrap();
        assert_eq!(bans.len(), 1);
        let (total, list) = bans.list(10);
        assert_eq!((total, list.len()), (1, 1));
        assert_eq!(&*list[0].path, "/w/");
        assert_eq!(bans.verdict("h", "/v/a.ts", UNIX_EPOCH), Verdict::Keep);
    }

    #[test]
    fn the_log_is_compacted_when_it_outgrows_the_live_set() {
        let dir = tempfile::tempdir().unwrap();
        let bans = Bans::load(dir.path(), Duration::from_millis(20)).unwrap();
        let file = dir.path().join(log::FILE);
        let lines = || std::fs::read_to_string(&file).unwrap().lines().count();
        // Bans expire 20 ms after they are made, so the live set stays small while the log
        // grows, until it passes COMPACT_FACTOR times the live set plus the slack.
        let mut shrank = false;
        let mut last = 0;
        for i in 0..4 * COMPACT_SLACK {
            bans.add(None, format!("/v/{i}"), true, false).unwrap();
            let now = lines();
            if now < last {
                shrank = true;
                break;
            }
            last = now;
            assert!(
                now <= COMPACT_FACTOR * bans.len() + COMPACT_SLACK + 1,
                "{now} lines for {} live bans",
                bans.len()
            );
        }
        assert!(
            shrank,
            "the log was never compacted ({last} lines, {} live)",
            bans.len()
        );
        assert_eq!(
            lines(),
            bans.len(),
            "a compacted log holds exactly the live bans"
        );
    }

    #[test]
    fn newest_first_listing_with_a_limit() {
        let dir = tempfile::tempdir().unwrap();
        let bans = Bans::load(dir.path(), Duration::from_secs(3600)).unwrap();
        for i in 0..5 {
            bans.add(Some("h".into()), format!("/{i}"), true, false)
                .unwrap();
        }
        let (total, list) = bans.list(2);
        assert_eq!(total, 5);
        let paths: Vec<&str> = list.iter().map(|b| &*b.path).collect();
        assert_eq!(paths, ["/4", "/3"]);
        assert!(list[0].at_ms >= list[1].at_ms);
    }
}
