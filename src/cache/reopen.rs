//! Reopening a halted disk tier while the edge runs.
//!
//! After a failed write or a panic in foyer, foyer 0.22's block engine may never write again
//! (see [`super::disk`]), and foyer cannot reopen an engine under a running hybrid cache. So
//! the storage holds the hybrid cache behind a swappable handle, [`Tiers`] (each use loads the
//! current cache once), and [`Reopener`] replaces the cache while the tier is halted. It waits
//! [`FIRST_WAIT`] before its first try and doubles the wait after each try up to [`MAX_WAIT`]
//! ([`wait_before`]); the waits start over once a reopened tier stayed healthy for
//! [`MAX_WAIT`]. A try:
//!
//! 1. probes the cache folder ([`probe`]): a page written, synced, read back and removed. A
//!    folder that still fails I/O fails the try (counted `result="failed"`), and nothing else
//!    is done;
//! 2. closes the old cache's disk engine, waiting at most [`CLOSE_WAIT`]: foyer then takes no
//!    more writes or deletes and has finished those in flight, so nothing of the old engine
//!    writes to the files the new one opens (a close that does not finish in time fails the
//!    try; the next one waits for it again);
//! 3. opens a new hybrid cache on the same folder, recovering the objects its files hold.
//!    Recovering is safe after a failure: foyer checks each entry's checksum (and its key)
//!    when it reads it, so an entry the failure left torn is a miss, removed, never wrong
//!    bytes; the blocks' indexes are checksummed too, so recovery skips a torn one;
//! 4. copies the old memory tier into the new one, swaps the handle, and closes the old cache
//!    (bounded), so that what its broken engine still logs or panics on while closing is
//!    counted before the tier is reported healthy ([`DiskTier::reopened`]). Lookups and
//!    inserts in flight finish on the cache they loaded (a miss at worst); an object stored in
//!    the old cache between the copy and the swap is not in the new one: a miss, fetched
//!    again.
//!
//! The memory tier is kept: objects in memory stay servable while the tier is halted and
//! after the reopen.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use foyer::{HybridCache, Spawner};
use mixtrics::registry::prometheus_0_14::PrometheusMetricsRegistry;

use super::disk::{DiskTier, CHECK_EVERY};
use super::object::StoredObject;
use crate::config::CacheConfig;

/// The wait before the first try to reopen a halted tier.
pub const FIRST_WAIT: Duration = Duration::from_secs(1);
/// The longest wait between two tries.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// How long a try waits for the old disk engine to close.
pub const CLOSE_WAIT: Duration = Duration::from_secs(10);
/// How long a try waits for the copy of the old memory tier (foyer waits for the old
/// engine's flushers after collecting the entries).
const COPY_WAIT: Duration = Duration::from_secs(5);
/// The probe's file in the cache folder (not one of foyer's: `room` counts only those).
const PROBE: &str = ".edge-probe";

type Objects = HybridCache<u128, StoredObject>;

/// The hybrid cache in use, swapped by a reopen; closed on shutdown, after which no reopen
/// swaps in another.
pub struct Tiers {
    current: ArcSwap<Objects>,
    closed: Mutex<bool>,
}

impl Tiers {
    pub fn new(objects: Objects) -> Tiers {
        Tiers {
            current: ArcSwap::from_pointee(objects),
            closed: Mutex::new(false),
        }
    }

    /// The cache in use, for a use that does not wait (cheap; not to be held across an await).
    pub fn load(&self) -> arc_swap::Guard<Arc<Objects>> {
        self.current.load()
    }

    /// The cache in use, to keep across an await.
    pub fn load_full(&self) -> Arc<Objects> {
        self.current.load_full()
    }

    /// Put `new` in place of the cache in use, unless the cache was closed (then `new` comes
    /// back to be dropped).
    fn swap(&self, new: Objects) -> Result<Arc<Objects>, Objects> {
        let closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
        if *closed {
            return Err(new);
        }
        Ok(self.current.swap(Arc::new(new)))
    }

    /// The edge is shutting down: no reopen from now on.
    pub fn close(&self) {
        *self.closed.lock().unwrap_or_else(|e| e.into_inner()) = true;
    }

    fn is_closed(&self) -> bool {
        *self.closed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The wait before try number `tries` (0 for the first): [`FIRST_WAIT`] doubled per try,
/// at most [`MAX_WAIT`].
pub fn wait_before(tries: u32) -> Duration {
    FIRST_WAIT
        .checked_mul(1u32.checked_shl(tries).unwrap_or(u32::MAX))
        .unwrap_or(MAX_WAIT)
        .min(MAX_WAIT)
}

/// Whether the folder `dir` takes a write again: a page written and synced, read back the
/// same, removed.
pub fn probe(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(PROBE);
    let page: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
    let result = (|| {
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&page)?;
        file.sync_all()?;
        let mut back = Vec::with_capacity(page.len());
        std::fs::File::open(&path)?.read_to_end(&mut back)?;
        if back != page {
            return Err(std::io::Error::other("the probe read back other bytes"));
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&path);
    result
}

/// What it takes to open the hybrid cache again, and the handle to swap it in.
pub struct Reopener {
    pub cfg: CacheConfig,
    /// The registry wrapper the first cache was opened with: foyer's metrics are registered
    /// once per wrapper, and a second wrapper of the same registry would register them again.
    pub metrics: PrometheusMetricsRegistry,
    pub spawner: Spawner,
    pub disk: Arc<DiskTier>,
    pub tiers: Arc<Tiers>,
}

/// Why a try failed, for the log.
type Failure = String;

impl Reopener {
    /// Watch the tier on the current tokio runtime (the cache's) for as long as it runs.
    pub fn spawn(self) {
        tokio::spawn(Arc::new(self).run());
    }

    async fn run(self: Arc<Self>) {
        let mut tries = 0u32;
        let mut healthy_since: Option<Instant> = None;
        // A close of an old engine that did not finish within a try.
        let mut closing: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            if self.tiers.is_closed() {
                return;
            }
            let disk = self.disk.clone();
            let halted = tokio::task::spawn_blocking(move || disk.halted())
                .await
                .unwrap_or(false);
            if !halted {
                let since = *healthy_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= MAX_WAIT {
                    tries = 0;
                }
                continue;
            }
            healthy_since = None;
            tokio::time::sleep(wait_before(tries)).await;
            tries = tries.saturating_add(1);
            // Each try in a task of its own: a panic anywhere in it (foyer's broken engine
            // panics on the locks its failure poisoned) fails that try, never this loop.
            let me = self.clone();
            let mut pending = closing.take();
            let attempt = tokio::spawn(async move {
                let result = me.try_once(&mut pending).await;
                (result, pending)
            })
            .await;
            let result = match attempt {
                Ok((result, pending)) => {
                    closing = pending;
                    result
                }
                Err(e) => Err(format!("the try panicked: {e}")),
            };
            match result {
                Ok(kept) => {
                    tracing::warn!(
                        objects_in_memory = kept,
                        "disk tier reopened: a new disk engine took over the cache folder"
                    );
                    let disk = self.disk.clone();
                    let _ =
                        tokio::task::spawn_blocking(move || disk.reopened(Instant::now())).await;
                }
                Err(why) => {
                    self.disk.reopen_failed();
                    tracing::warn!(
                        reason = %why,
                        retry_in = ?wait_before(tries),
                        "cannot reopen the disk tier yet"
                    );
                }
            }
        }
    }

    /// One try (see the module's steps); the number of objects kept in memory.
    async fn try_once(
        &self,
        closing: &mut Option<tokio::task::JoinHandle<()>>,
    ) -> Result<usize, Failure> {
        let dir = self.cfg.dir.clone();
        tokio::task::spawn_blocking(move || probe(&dir))
            .await
            .map_err(|e| format!("probe: {e}"))?
            .map_err(|e| format!("the cache folder still fails I/O: {e}"))?;

        let old = self.tiers.load_full();
        let close = closing.get_or_insert_with(|| {
            let storage = old.storage().clone();
            // A task of its own: foyer may panic on the locks its failure poisoned.
            tokio::spawn(async move {
                if let Err(e) = storage.close().await {
                    tracing::warn!(error = %e, "closing the halted disk engine");
                }
            })
        });
        match tokio::time::timeout(CLOSE_WAIT, close).await {
            Err(_) => return Err("the halted disk engine has not closed yet".to_string()),
            Ok(Err(e)) => {
                // The engine stopped taking writes before anything that can panic (it marks
                // itself inactive first), and its flusher is gone: it writes no more.
                tracing::warn!(error = %e, "closing the halted disk engine panicked");
            }
            Ok(Ok(())) => {}
        }
        *closing = None;

        let new = super::open_tiers(&self.cfg, &self.metrics, self.spawner.clone(), &self.disk)
            .await
            .map_err(|e| format!("foyer: {e}"))?;
        let dir = self.cfg.dir.clone();
        let reserved = tokio::task::spawn_blocking(move || super::room::reserve(&dir))
            .await
            .map_err(|e| format!("reserve: {e}"))?
            .map_err(|e| format!("cannot reserve the disk tier's space: {e}"))?;
        self.disk.reserved(reserved);

        // The predicate sees every entry and keeps it (false: nothing is evicted). A task of
        // its own: after visiting the entries, foyer waits on the old engine, whose poisoned
        // locks may panic (manager.rs `wait_reclaim`); that must not end this reopener.
        let kept: Arc<Mutex<Vec<(u128, StoredObject)>>> = Arc::default();
        let memory = old.memory().clone();
        let into = kept.clone();
        let copy = tokio::spawn(async move {
            memory
                .flush_if(move |k, v| {
                    into.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((*k, v.clone()));
                    false
                })
                .await;
        });
        match tokio::time::timeout(COPY_WAIT, copy).await {
            Ok(Err(e)) => tracing::warn!(error = %e, "copying the old memory tier panicked"),
            Err(_) => tracing::warn!("copying the old memory tier did not finish"),
            Ok(Ok(())) => {}
        }
        let kept = std::mem::take(&mut *kept.lock().unwrap_or_else(|e| e.into_inner()));
        let count = kept.len();
        for (key, object) in kept {
            if !new.memory().contains(&key) {
                new.insert(key, object);
            }
        }
        if self.tiers.swap(new).is_err() {
            return Err("the cache is closing".to_string());
        }
        // Close the old cache now rather than when its last user drops it: foyer's close waits
        // for the old flusher, whose broken tombstone log may panic then, and this must happen
        // before the tier is reported healthy (those panics and errors are the old engine's).
        // Its memory tier was copied: emptied first (not through foyer's pipe), its close has
        // nothing to offer the closed engine, which would log a warning per object.
        old.memory().clear();
        let closed = tokio::spawn(async move { old.close().await });
        match tokio::time::timeout(CLOSE_WAIT, closed).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "closing the old disk cache"),
            Ok(Err(e)) => tracing::warn!(error = %e, "closing the old disk cache panicked"),
            Err(_) => tracing::warn!("the old disk cache has not closed yet"),
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Cache;
    use bytes::Bytes;
    use pingora_cache::trace::Span;
    use pingora_cache::{CacheKey, CacheMeta, Storage};
    use std::time::SystemTime;

    fn key(i: usize) -> CacheKey {
        CacheKey::new(format!("/v/{i}.ts"), "")
    }

    fn body(i: usize) -> Bytes {
        Bytes::from(vec![i as u8; 64 * 1024 + i])
    }

    /// Store object `i` as a fill does.
    async fn fill(cache: &'static Cache, i: usize) {
        let mut header = pingora_http::ResponseHeader::build(200, None).unwrap();
        header
            .insert_header("content-length", body(i).len().to_string())
            .unwrap();
        let now = SystemTime::now();
        let meta = CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, header);
        let span = Span::inactive();
        let mut miss = cache
            .storage
            .get_miss_handler(&key(i), &meta, &span.handle())
            .await
            .unwrap();
        miss.write_body(body(i), true).await.unwrap();
        miss.finish().await.unwrap();
    }

    /// The body a lookup of object `i` answers with, `None` on a miss.
    async fn lookup(cache: &'static Cache, i: usize) -> Option<Bytes> {
        let span = Span::inactive();
        let (_, mut hit) = cache
            .storage
            .lookup(&key(i), &span.handle())
            .await
            .unwrap()?;
        let mut out = Vec::new();
        while let Some(chunk) = hit.read_body().await.unwrap() {
            out.extend_from_slice(&chunk);
        }
        Some(out.into())
    }

    /// Lookups running while the hybrid cache is replaced three times answer with the right
    /// bytes (or a miss), nothing panics, and the objects of the memory tier are still hits
    /// afterwards.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lookups_during_reopens_get_the_right_bytes_and_memory_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let section = toml::from_str(
            "dir = \"c\"\nmemory = \"4 MiB\"\ndisk = \"21 MiB\"\nmax_object = \"1 MiB\"\n",
        )
        .unwrap();
        let cfg = CacheConfig::build(section, dir.path()).unwrap();
        let registry = prometheus::Registry::new();
        let cache: &'static Cache = Box::leak(Box::new(
            Cache::open(&cfg, &registry, tokio::runtime::Handle::current().into())
                .await
                .unwrap(),
        ));
        for i in 0..8 {
            fill(cache, i).await;
        }
        let reopener = Reopener {
            cfg: cfg.clone(),
            metrics: PrometheusMetricsRegistry::new(prometheus::Registry::new()),
            spawner: tokio::runtime::Handle::current().into(),
            disk: cache.disk.clone(),
            tiers: cache.storage.tiers(),
        };
        let first = Arc::as_ptr(&cache.storage.objects());
        let readers: Vec<_> = (0..2)
            .map(|r| {
                tokio::spawn(async move {
                    let mut hits = 0;
                    for n in 0..300 {
                        let i = (n + r) % 8;
                        if let Some(got) = lookup(cache, i).await {
                            assert_eq!(got, body(i), "object {i}");
                            hits += 1;
                        }
                        tokio::task::yield_now().await;
                    }
                    hits
                })
            })
            .collect();
        let mut closing = None;
        for _ in 0..3 {
            assert_eq!(reopener.try_once(&mut closing).await, Ok(8));
        }
        for r in readers {
            assert!(r.await.unwrap() > 0);
        }
        assert_ne!(Arc::as_ptr(&cache.storage.objects()), first, "swapped");
        for i in 0..8 {
            assert_eq!(lookup(cache, i).await, Some(body(i)), "object {i} kept");
        }
        cache.close().await.unwrap();
        // Closed: no reopen swaps another cache in.
        assert!(reopener.try_once(&mut closing).await.is_err());
    }

    #[test]
    fn waits_double_from_one_second_to_a_minute() {
        assert_eq!(wait_before(0), Duration::from_secs(1));
        assert_eq!(wait_before(1), Duration::from_secs(2));
        assert_eq!(wait_before(5), Duration::from_secs(32));
        assert_eq!(wait_before(6), MAX_WAIT);
        assert_eq!(wait_before(40), MAX_WAIT);
        assert_eq!(wait_before(u32::MAX), MAX_WAIT);
    }

    #[test]
    fn a_folder_that_takes_writes_passes_the_probe_and_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        probe(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let gone = dir.path().join("gone");
        assert!(probe(&gone).is_err());
    }
}
