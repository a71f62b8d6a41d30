//! The cache: foyer hybrid storage behind pingora-cache, its key, and its freshness policy.
//!
//! - [`store`]: [`store::EdgeStorage`], the `pingora_cache::Storage` implementation.
//! - [`admission`]: which objects the disk tier takes when memory evicts them
//!   (`[cache] disk_admission`).
//! - [`budget`]: the memory fills in flight may hold (`[cache] fill_memory`).
//! - [`handoff`]: the cache lock, with a cold fill handed from its first requester to a
//!   request that only fills.
//! - [`object`]: the stored form of one object (meta + body) and its disk encoding.
//! - [`key`]: the cache key (host + normalised path + query).
//! - [`policy`]: which responses are stored and for how long (read from
//!   [`crate::config::CacheConfig`] as it is); [`parts`]: the LL-HLS part paths the stored
//!   live playlists list, which it keeps briefly.
//! - [`freshness`]: the RFC 9111 / RFC 9213 rules the policy applies (lifetimes, ages,
//!   stale windows, 304 updates, targeted fields).
//! - [`disk`]: the disk tier's health (degraded while its writes may fail, halted after a
//!   failure), [`room`]: the free space it is measured against, [`reopen`]: a halted tier
//!   replaced while the edge runs.

pub mod admission;
pub mod bans;
pub mod budget;
pub mod disk;
pub mod folder;
pub mod freshness;
pub mod handoff;
pub mod key;
pub mod object;
pub mod parts;
pub mod policy;
pub mod purge;
pub mod reopen;
pub mod room;
pub mod store;

use std::fs::File;
use std::time::SystemTime;

use pingora_cache::CacheKey;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use foyer::{
    BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder,
    HybridCachePolicy, PsyncIoEngineConfig, RecoverMode, S3FifoConfig, Spawner, StorageFilter,
};
use mixtrics::registry::prometheus_0_14::PrometheusMetricsRegistry;

use crate::config::CacheConfig;
use bans::Bans;
use disk::{DiskGate, DiskTier};
use object::StoredObject;
use store::EdgeStorage;

/// Counters the storage keeps for `/metrics`.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Bytes of complete objects handed to the hybrid cache.
    pub bytes_admitted: AtomicU64,
    /// Fills that ended without a complete body (origin cut, length mismatch, timeout).
    pub fill_failures: AtomicU64,
    /// Entries that could not be read back (damaged disk data); each was removed.
    pub read_errors: AtomicU64,
    /// Of those, reads the disk tier failed (I/O errors rather than undecodable metas).
    pub disk_read_errors: AtomicU64,
    /// Lookups answered from the memory tier, the disk tier, a fill in progress, or not at all.
    pub hits_memory: AtomicU64,
    pub hits_disk: AtomicU64,
    pub hits_fill: AtomicU64,
    pub misses: AtomicU64,
    /// Objects written to disk on their second request (second-hit admission).
    pub promoted: AtomicU64,
    /// Purges applied (admin API and PURGE method).
    pub purges: AtomicU64,
    /// Cacheable misses streamed uncached because the fills in flight held `fill_memory`.
    pub fills_over_budget: AtomicU64,
}

/// Errors opening the cache.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cache.dir {0}: {1}")]
    Dir(String, std::io::Error),
    #[error("cache.dir {0} is in use by another edge process (one process per cache folder)")]
    Locked(String),
    #[error("cache.dir {0} is still in use by another edge process after waiting {1:?} for it to close the cache")]
    StillLocked(String, std::time::Duration),
    #[error("cannot open the cache: {0}")]
    Foyer(#[from] foyer::Error),
    #[error("cache.dir: cannot load purges: {0}")]
    Bans(std::io::Error),
    #[error("cache.disk: {0}")]
    NoRoom(String),
    #[error("cache.disk: cannot reserve the disk tier's space: {0}")]
    Reserve(std::io::Error),
    #[error("cannot register the disk tier's metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// An opened cache: the storage, the folder lock it holds, and its counters.
pub struct Cache {
    pub storage: EdgeStorage,
    pub stats: Arc<CacheStats>,
    pub bans: Bans,
    /// The disk tier's health; while degraded, foyer writes nothing new to disk.
    pub disk: Arc<DiskTier>,
    dir_lock: File,
}

impl Cache {
    /// Open (and recover) the hybrid cache in `cfg.dir`. Must run inside a tokio runtime that
    /// outlives the cache; foyer's background work is spawned on `spawner`.
    pub async fn open(
        cfg: &CacheConfig,
        registry: &prometheus::Registry,
        spawner: Spawner,
    ) -> Result<Cache, OpenError> {
        Cache::open_after(cfg, registry, spawner, std::time::Duration::ZERO).await
    }

    /// As [`Cache::open`], waiting up to `wait` for another process to release the folder (an
    /// upgrade: the old process flushes and closes its cache first).
    pub async fn open_after(
        cfg: &CacheConfig,
        registry: &prometheus::Registry,
        spawner: Spawner,
        wait: std::time::Duration,
    ) -> Result<Cache, OpenError> {
        let dir = cfg.dir.clone();
        let dir_lock = tokio::task::spawn_blocking(move || folder::lock(&dir, wait))
            .await
            .map_err(|e| OpenError::Dir(cfg.dir.display().to_string(), e.into()))??;
        // A ban older than the longest servable lifetime matches nothing that may be served.
        let bans = Bans::load(&cfg.dir, policy::longest_servable(cfg)).map_err(OpenError::Bans)?;
        let block = cfg.block_size();
        let stats = Arc::new(CacheStats::default());
        refuse_a_tier_without_room(cfg)?;
        // A panic in foyer may have killed its flusher: the tier's health must know.
        disk::watch_foyer_panics();
        let disk = Arc::new(DiskTier::new(
            cfg.dir.clone(),
            cfg.disk,
            block as u64,
            stats.clone(),
            registry,
        )?);
        // Before foyer creates its files: a folder without them has never been written.
        let disk_room = never_written(cfg);
        // One registry wrapper for every hybrid cache this cache opens: a second one would
        // register foyer's metrics again, which fails (see `reopen`).
        let metrics = PrometheusMetricsRegistry::new(registry.clone());
        let objects = open_tiers(cfg, &metrics, spawner.clone(), &disk).await?;
        // foyer has created its files (sparse) and written nothing yet: reserve them before
        // the first object can reach the disk (see `room`).
        let reserved = room::reserve(&cfg.dir).map_err(OpenError::Reserve)?;
        disk.reserved(reserved);
        disk.watch();
        let budget = budget::FillBudget::new(cfg.fill_memory);
        let storage = EdgeStorage::new(
            objects,
            stats.clone(),
            cfg.disk_admission,
            disk_room,
            budget,
        );
        reopen::Reopener {
            cfg: cfg.clone(),
            metrics,
            spawner,
            disk: disk.clone(),
            tiers: storage.tiers(),
        }
        .spawn();
        Ok(Cache {
            storage,
            stats,
            bans,
            disk,
            dir_lock,
        })
    }
}

/// A complete, fresh, unbanned object of the memory tier (see [`Cache::fresh_memory_hit`]).
pub struct FreshHit {
    pub meta: std::sync::Arc<object::DecodedMeta>,
    pub body: bytes::Bytes,
}

impl FreshHit {
    /// The `Age` an answer carries: the object's age when stored plus its time here
    /// (RFC 9111 §4.2.3).
    pub fn age(&self, now: SystemTime) -> u64 {
        freshness::current_age(
            self.meta.initial_age,
            now.duration_since(self.meta.epoch).unwrap_or_default(),
        )
    }

    /// Seconds the object stays fresh from `now`.
    pub fn ttl(&self, now: SystemTime) -> u64 {
        self.meta
            .fresh_until
            .duration_since(now)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

impl Cache {
    /// The object under `key` when the memory tier holds it complete (no fill in flight),
    /// fresh at `now`, decoded, of the variance `variance` computes for its `Vary` (a stored
    /// object without `Vary` needs none) and not purged since it was stored: what a fast path
    /// may answer without the pipeline. Counted as a memory hit (and a second hit for disk
    /// admission). `None` leaves the request to the pipeline, which decides everything else.
    pub fn fresh_memory_hit(
        &self,
        key: &CacheKey,
        host: &str,
        path: &str,
        now: SystemTime,
        variance: impl Fn(&pingora_http::ResponseHeader) -> Option<[u8; 16]>,
    ) -> Option<FreshHit> {
        let mut hash = store::key_of(key);
        let mut object = self.storage.memory_object(hash)?;
        let mut meta = object.decoded()?;
        if meta.header.headers.contains_key(http::header::VARY) {
            // The first variant stored lives under the primary key; others under primary +
            // variance (pingora-cache's layout).
            let wanted = variance(&meta.header)?;
            if meta.variance != Some(wanted) {
                let mut k = key.clone();
                k.set_variance_key(wanted);
                hash = store::key_of(&k);
                object = self.storage.memory_object(hash)?;
                meta = object.decoded()?;
                if meta.variance != Some(wanted) {
                    return None;
                }
            }
        }
        if meta.fresh_until < now
            || self.bans.verdict(host, path, meta.epoch) != bans::Verdict::Keep
        {
            return None;
        }
        self.storage.note_memory_hit(hash, &object);
        Some(FreshHit {
            meta,
            body: object.body,
        })
    }

    /// Remove the stored object under `key` (and any fill of it), as RFC 9111 §4.4 asks after
    /// a successful unsafe request to its URI. Variants stored under other `Vary` values are
    /// older than the next primary copy, so pingora-cache no longer answers with them.
    pub async fn invalidate(&'static self, key: &CacheKey) {
        if let Err(e) = self.remove_stored(key).await {
            tracing::warn!(error = %e, "invalidation failed");
        }
    }

    /// Remove the stored object under `key` and any fill of it: the one storage call behind an
    /// invalidation and a hard purge of one URL.
    pub async fn remove_stored(
        &'static self,
        key: &CacheKey,
    ) -> pingora_error::Result<pingora_cache::storage::PurgeOutcome> {
        use pingora_cache::Storage;
        let compact = key.to_compact();
        let span = pingora_cache::trace::Span::inactive();
        self.storage
            .purge(
                pingora_cache::storage::PurgeTarget::Active(&compact),
                pingora_cache::storage::PurgeType::Invalidation,
                &span.handle(),
            )
            .await
    }

    /// Flush the memory tier to disk and close the cache (graceful shutdown). Objects kept in
    /// memory only by second-hit admission reach the disk here, so a restart finds them.
    pub async fn close(&self) -> foyer::Result<()> {
        // No reopen swaps in a cache after this one is closed.
        self.storage.tiers().close();
        let objects = self.storage.objects();
        objects.memory().flush().await;
        // Let the flushers drain what was just queued before the engine stops accepting.
        objects.storage().wait().await;
        objects.close().await
    }

    /// Release the cache folder's lock (after [`Cache::close`]): a new process taking over
    /// (`edge serve --upgrade`) may open the folder while this one finishes its shutdown.
    pub fn unlock_dir(&self) {
        if let Err(e) = self.dir_lock.unlock() {
            tracing::warn!(error = %e, "cannot unlock the cache folder");
        }
    }
}

/// Open (and recover) the hybrid cache of `cfg` in its folder: memory tier, disk engine, and
/// [`DiskGate`] as the disk's admission filter. Used at start and by [`reopen`].
async fn open_tiers(
    cfg: &CacheConfig,
    metrics: &PrometheusMetricsRegistry,
    spawner: Spawner,
    disk: &Arc<DiskTier>,
) -> foyer::Result<HybridCache<u128, StoredObject>> {
    let block = cfg.block_size();
    let device = FsDeviceBuilder::new(&cfg.dir)
        .with_capacity(cfg.disk as usize)
        .build()?;
    let engine = BlockEngineConfig::new(device)
        .with_block_size(block)
        .with_buffer_pool_size(2 * block)
        .with_submit_queue_size_threshold(4 * block)
        .with_tombstone_log(true)
        // A failed disk write breaks foyer (see `disk`): nothing is offered to the disk
        // while the tier is degraded.
        .with_admission_filter(StorageFilter::new().with_condition(DiskGate(disk.clone())));
    HybridCacheBuilder::new()
        .with_name("edge")
        .with_policy(HybridCachePolicy::WriteOnEviction)
        .with_flush_on_close(true)
        .with_metrics_registry(Box::new(metrics.clone()))
        .memory(cfg.memory as usize)
        .with_shards(8)
        .with_eviction_config(S3FifoConfig::default())
        .with_weighter(|_k: &u128, v: &StoredObject| 16 + v.weight())
        .storage()
        .with_io_engine_config(PsyncIoEngineConfig::new())
        .with_engine_config(engine)
        .with_recover_mode(RecoverMode::Quiet)
        .with_spawner(spawner)
        .build()
        .await
}

/// The disk tier's bytes nothing was ever written to, for the disk admission policy: all of
/// it when the folder has no tier files yet, none when a tier is recovered (its objects may
/// fill it; counting them would need a scan foyer does not expose).
fn never_written(cfg: &CacheConfig) -> u64 {
    if room::held_by(&cfg.dir) == 0 {
        cfg.disk
    } else {
        0
    }
}

/// Refuse a disk tier its filesystem cannot hold whole (see [`room::config_error`]), before
/// foyer creates any file.
fn refuse_a_tier_without_room(cfg: &CacheConfig) -> Result<(), OpenError> {
    if cfg.disk == 0 {
        return Ok(());
    }
    let room = room::Room::measure(&cfg.dir)
        .map_err(|e| OpenError::Dir(cfg.dir.display().to_string(), e))?;
    match room::config_error(cfg.disk, cfg.block_size() as u64, room) {
        Some(why) => Err(OpenError::NoRoom(why)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache opens a tier whose files foyer lays out as `room::tier_bytes` says, all of
    /// them allocated (not sparse); reopened, it reserves nothing new.
    #[tokio::test]
    async fn open_reserves_the_files_foyer_lays_out() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let section = toml::from_str(
            "dir = \"c\"\nmemory = \"4 MiB\"\ndisk = \"21 MiB\"\nmax_object = \"1 MiB\"\n",
        )
        .unwrap();
        let cfg = CacheConfig::build(section, dir.path()).unwrap();
        let files = || -> Vec<std::fs::Metadata> {
            std::fs::read_dir(&cfg.dir)
                .unwrap()
                .filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("foyer-storage-")
                })
                .map(|e| e.metadata().unwrap())
                .collect()
        };
        for _ in 0..2 {
            let cache = Cache::open(
                &cfg,
                &prometheus::Registry::new(),
                tokio::runtime::Handle::current().into(),
            )
            .await
            .unwrap();
            let length: u64 = files().iter().map(|m| m.len()).sum();
            let allocated: u64 = files().iter().map(|m| m.blocks() * 512).sum();
            assert_eq!(length, room::tier_bytes(cfg.disk, cfg.block_size() as u64));
            assert!(allocated >= length, "allocated {allocated} of {length}");
            cache.close().await.unwrap();
            drop(cache);
        }
    }
}
