//! [`EdgeStorage`]: pingora-cache [`Storage`] on a foyer hybrid cache (memory + disk tiers).
//!
//! Complete objects live in foyer under the 128-bit hash of the cache key. An object being
//! filled lives in `fills` until its last byte arrived: readers that find it there (the cache
//! lock's waiters) stream its chunks as they land, so a herd on a cold segment costs one
//! origin fetch and every client gets bytes as the origin sends them. A fill is committed to
//! foyer only when it completed and its size matches `Content-Length`; a fill dropped early
//! (origin cut, timeout, too large) is marked failed, so its readers get an error and nothing
//! is stored. Each fill reserves its length in the fill memory budget ([`super::budget`]) for
//! as long as its writer lives.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use foyer::{HybridCache, HybridCacheProperties, Location, Source};
use pingora_cache::key::CacheHashKey;
use pingora_cache::storage::{
    HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget,
    PurgeType,
};
use pingora_cache::trace::SpanHandle;
use pingora_cache::{CacheKey, CacheMeta, Storage};
use pingora_error::{Error, ErrorType, Result};
use tokio::sync::watch;

use super::admission::DiskAdmitter;
use super::budget::FillBudget;
use super::object::StoredObject;
use super::parts::PartPaths;
use super::policy::{playlist_freshness, ListsParts, PlaylistRefine};
use super::reopen::Tiers;
use super::CacheStats;
use crate::config::DiskAdmission;

/// Cache storage: in-flight fills in a map, complete objects in foyer.
pub struct EdgeStorage {
    /// foyer's hybrid cache, behind the handle a reopen of the disk tier swaps: each use
    /// loads the current one (see [`super::reopen`]).
    objects: Arc<Tiers>,
    fills: Mutex<HashMap<u128, Vec<Arc<Fill>>>>,
    next_write: AtomicU64,
    stats: Arc<CacheStats>,
    /// Which objects may go to disk when memory evicts them.
    admitter: DiskAdmitter,
    /// Memory the fills in flight reserved, against `[cache] fill_memory`.
    budget: FillBudget,
    /// The LL-HLS parts the live playlists stored lately list.
    parts: PartPaths,
}

/// Where a fill is: chunks published so far, and whether it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Progress {
    chunks: usize,
    state: FillState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FillState {
    Writing,
    Done,
    Failed,
}

/// An object being written: its meta, the chunks so far, and a watch readers wait on.
struct Fill {
    id: u64,
    meta_internal: Bytes,
    meta_header: Bytes,
    chunks: Mutex<Vec<Bytes>>,
    progress: watch::Sender<Progress>,
}

impl Fill {
    fn chunk(&self, i: usize) -> Option<Bytes> {
        lock(&self.chunks).get(i).cloned()
    }

    fn set_state(&self, state: FillState) {
        self.progress.send_modify(|p| p.state = state);
    }
}

/// What [`EdgeStorage::after_search`] found.
enum AfterSearch {
    Fill(Arc<Fill>),
    Stored(StoredObject),
    Miss,
}

/// Lock a mutex, recovering from poisoning (no code holding these locks can panic, but the
/// request path must never unwrap).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// On the cache key of a prefetch ([`crate::prefetch`]): its fill is stored memory-only and
/// waits for a request, as a first fill does under `second-hit`, whatever the disk
/// admission mode; the first memory hit admits it to disk ([`EdgeStorage::promote`]).
#[derive(Debug, Clone, Copy)]
pub struct Prefetched;

/// An object's weight in the memory tier (the cache's weighter) and its claim on the disk.
pub fn weight(obj: &StoredObject) -> u64 {
    16 + obj.weight() as u64
}

pub fn key_of(key: &impl CacheHashKey) -> u128 {
    u128::from_be_bytes(key.combined_bin())
}

fn internal(msg: &'static str) -> Box<Error> {
    Error::explain(ErrorType::InternalError, msg)
}

impl EdgeStorage {
    pub fn new(
        objects: HybridCache<u128, StoredObject>,
        stats: Arc<CacheStats>,
        admission: DiskAdmission,
        disk_room: u64,
        budget: FillBudget,
    ) -> Self {
        EdgeStorage {
            objects: Arc::new(Tiers::new(objects)),
            fills: Mutex::new(HashMap::new()),
            next_write: AtomicU64::new(1),
            stats,
            admitter: DiskAdmitter::new(admission, disk_room),
            budget,
            parts: PartPaths::default(),
        }
    }

    /// The LL-HLS part paths learnt from the playlists stored ([`super::parts`]).
    pub fn parts(&self) -> &PartPaths {
        &self.parts
    }

    /// The fill memory budget: whether a cacheable response of `len` bytes may be filled.
    pub fn fill_budget(&self) -> &FillBudget {
        &self.budget
    }

    /// Whether a fill of `key` is in flight.
    pub fn filling(&self, key: u128) -> bool {
        lock(&self.fills).contains_key(&key)
    }

    /// Whether `key` is in the memory tier or being filled: a lookup will not miss (a quick
    /// answer without the disk tier, for what may be prepared ahead of a miss).
    pub fn cached_or_filling(&self, key: u128) -> bool {
        self.filling(key) || self.objects.load().memory().contains(&key)
    }

    /// Store a complete object in the memory tier. The disk tier is written when memory
    /// evicts (foyer's write-on-eviction) and on a graceful shutdown's flush. An object the
    /// disk admission policy ([`super::admission`]) does not admit yet is marked memory-only,
    /// so evicting it costs no disk write; a second request ([`Self::promote`]) clears the mark.
    fn admit(&self, key: u128, obj: StoredObject, prefetched: bool) {
        let to_disk = if prefetched {
            self.admitter.hold(key);
            false
        } else {
            self.admitter.on_store(key, weight(&obj))
        };
        if to_disk {
            self.objects.load().insert(key, obj);
        } else {
            self.objects.load().insert_with_properties(
                key,
                obj,
                HybridCacheProperties::default().with_location(Location::InMem),
            );
        }
    }

    /// A memory hit on a memory-only object waiting for its second request: it may now go
    /// to disk when memory evicts it.
    fn promote(&self, key: u128, obj: &StoredObject) {
        if self.admitter.on_memory_hit(key, weight(obj)) {
            self.objects.load().insert(key, obj.clone());
            self.stats.promoted.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A complete object of the memory tier, without waiting on the disk: `None` when the
    /// key is not in memory or a fill of it is in flight (the full pipeline then decides).
    /// Counted as a memory hit by [`Self::note_memory_hit`] once the caller answers with it.
    pub(super) fn memory_object(&self, key: u128) -> Option<StoredObject> {
        if lock(&self.fills).contains_key(&key) {
            return None;
        }
        self.objects
            .load()
            .memory()
            .get(&key)
            .map(|e| e.value().clone())
    }

    /// Account a hit answered from [`Self::memory_object`], as a lookup would.
    pub(super) fn note_memory_hit(&self, key: u128, obj: &StoredObject) {
        self.promote(key, obj);
        self.stats.hits_memory.fetch_add(1, Ordering::Relaxed);
    }

    /// The foyer cache in use now (for closing on shutdown and for statistics).
    pub fn objects(&self) -> Arc<HybridCache<u128, StoredObject>> {
        self.objects.load_full()
    }

    /// The handle on the foyer cache, which a reopen of the disk tier swaps.
    pub fn tiers(&self) -> Arc<Tiers> {
        self.objects.clone()
    }

    fn partial_hit(&self, fill: Arc<Fill>) -> Result<Option<(CacheMeta, HitHandler)>> {
        let meta = CacheMeta::deserialize(&fill.meta_internal, &fill.meta_header)?;
        let progress = fill.progress.subscribe();
        Ok(Some((
            meta,
            Box::new(EdgeHit::Partial(PartialHit {
                fill,
                progress,
                next: 0,
                offset: 0,
                range: (0, None),
            })),
        )))
    }

    /// The newest fill of `key` that has not failed.
    fn active_fill(&self, key: u128) -> Option<Arc<Fill>> {
        lock(&self.fills).get(&key).and_then(|list| {
            list.iter()
                .rev()
                .find(|f| f.progress.borrow().state != FillState::Failed)
                .cloned()
        })
    }

    fn remove_fill(&self, key: u128, id: u64) {
        let mut fills = lock(&self.fills);
        if let Some(list) = fills.get_mut(&key) {
            list.retain(|f| f.id != id);
            if list.is_empty() {
                fills.remove(&key);
            }
        }
    }

    /// The lookup of `hash`: a fill in flight, else what `search` (the tiers' search, a
    /// seam so a test can interleave a fill into it) finds, else a fill or object that
    /// appeared while it searched.
    async fn lookup_around(
        &self,
        hash: u128,
        search: impl std::future::Future<Output = Option<StoredObject>>,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        // A fill in progress wins over a stored (possibly stale) copy: readers then see the
        // fresh object as it streams instead of the old one until the fill completes.
        if let Some(fill) = self.active_fill(hash) {
            self.stats.hits_fill.fetch_add(1, Ordering::Relaxed);
            return self.partial_hit(fill);
        }
        let obj = match search.await {
            Some(obj) => obj,
            None => match self.after_search(hash) {
                AfterSearch::Fill(fill) => {
                    self.stats.hits_fill.fetch_add(1, Ordering::Relaxed);
                    return self.partial_hit(fill);
                }
                AfterSearch::Stored(obj) => obj,
                AfterSearch::Miss => {
                    self.stats.misses.fetch_add(1, Ordering::Relaxed);
                    return Ok(None);
                }
            },
        };
        match obj.meta() {
            Ok(meta) => {
                let end = obj.body.len();
                Ok(Some((
                    meta,
                    Box::new(EdgeHit::Complete(CompleteHit {
                        body: obj.body,
                        start: 0,
                        end,
                        done: false,
                    })),
                )))
            }
            Err(e) => {
                tracing::warn!(error = %e, "cached meta does not decode; removing the entry");
                self.stats.read_errors.fetch_add(1, Ordering::Relaxed);
                self.objects.load().remove(&hash);
                Ok(None)
            }
        }
    }

    /// After a search of the tiers found nothing: a fill may have started while they were
    /// searched (a disk lookup takes a while, more so on a loaded machine), or started *and
    /// finished*. Either is used rather than reporting a miss, which would start a second
    /// origin fetch of an object this edge has. [`EdgeMiss::finish`] stores the object in
    /// memory before its fill leaves the map, so checking the fills first and memory second
    /// sees at least one of the two.
    fn after_search(&self, hash: u128) -> AfterSearch {
        if let Some(fill) = self.active_fill(hash) {
            return AfterSearch::Fill(fill);
        }
        match self.objects.load().memory().get(&hash) {
            Some(entry) => {
                let obj = entry.value().clone();
                self.promote(hash, &obj);
                self.stats.hits_memory.fetch_add(1, Ordering::Relaxed);
                AfterSearch::Stored(obj)
            }
            None => AfterSearch::Miss,
        }
    }

    async fn get_complete(&self, key: u128) -> Option<StoredObject> {
        // The cache loaded now: a reopen may swap the handle while the disk is read.
        let objects = self.objects.load_full();
        match objects.get(&key).await {
            Ok(Some(entry)) => {
                let obj = entry.value().clone();
                match entry.source() {
                    Source::Disk => self.stats.hits_disk.fetch_add(1, Ordering::Relaxed),
                    _ => {
                        self.promote(key, &obj);
                        self.stats.hits_memory.fetch_add(1, Ordering::Relaxed)
                    }
                };
                Some(obj)
            }
            Ok(None) => None,
            Err(e) => {
                // A damaged or unreadable disk entry is a miss, and is dropped so it is refetched.
                tracing::warn!(error = %e, "cache read failed; treating as a miss and removing the entry");
                self.stats.read_errors.fetch_add(1, Ordering::Relaxed);
                self.stats.disk_read_errors.fetch_add(1, Ordering::Relaxed);
                // From the cache that failed the read, not one a reopen swapped in since.
                objects.remove(&key);
                None
            }
        }
    }
}

#[async_trait]
impl Storage for EdgeStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let hash = key_of(key);
        self.lookup_around(hash, self.get_complete(hash)).await
    }

    async fn lookup_streaming_write(
        &'static self,
        key: &CacheKey,
        streaming_write_tag: Option<&[u8]>,
        trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let hash = key_of(key);
        let id = streaming_write_tag
            .and_then(|t| <[u8; 8]>::try_from(t).ok())
            .map(u64::from_be_bytes);
        if let Some(id) = id {
            let fill = lock(&self.fills)
                .get(&hash)
                .and_then(|l| l.iter().find(|f| f.id == id).cloned());
            if let Some(fill) = fill {
                return self.partial_hit(fill);
            }
        }
        self.lookup(key, trace).await
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let hash = key_of(key);
        let (meta_internal, meta_header) = meta.serialize()?;
        let content_length = meta
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<usize>().ok());
        let id = self.next_write.fetch_add(1, Ordering::Relaxed);
        let (progress, _) = watch::channel(Progress {
            chunks: 0,
            state: FillState::Writing,
        });
        let fill = Arc::new(Fill {
            id,
            meta_internal: meta_internal.into(),
            meta_header: meta_header.into(),
            chunks: Mutex::new(Vec::new()),
            progress,
        });
        lock(&self.fills)
            .entry(hash)
            .or_default()
            .push(fill.clone());
        let reserved = content_length.unwrap_or(0) as u64;
        self.budget.take(reserved);
        Ok(Box::new(EdgeMiss {
            refine: meta.extensions().get::<PlaylistRefine>().copied(),
            lists_parts: meta.extensions().get::<ListsParts>().cloned(),
            prefetched: key.extensions.get::<Prefetched>().is_some(),
            storage: self,
            key: hash,
            fill,
            tag: id.to_be_bytes(),
            content_length,
            written: 0,
            reserved,
            finished: false,
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let hash = key_of(target.key());
        let had_fill = lock(&self.fills).remove(&hash).is_some();
        let had_object = self.objects.load().contains(&hash);
        self.objects.load().remove(&hash);
        Ok(if had_fill || had_object {
            PurgeOutcome::Purged(None)
        } else {
            PurgeOutcome::NotFound
        })
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        let hash = key_of(key);
        let Some(old) = self.get_complete(hash).await else {
            return Ok(false);
        };
        let (mut meta_internal, mut meta_header) = meta.serialize()?;
        if let Some(refine) = meta.extensions().get::<PlaylistRefine>() {
            // A 304 to a playlist stored with the default TTL: the policy gave it the
            // provisional TTL; the stored body says which one it really gets (as on a fill).
            let mut m = CacheMeta::deserialize(&meta_internal, &meta_header)?;
            let (ttl, swr) = playlist_freshness(&old.body, refine, m.stale_while_revalidate_sec());
            let sie = m.stale_if_error_sec();
            m.update_freshness(std::time::SystemTime::now() + ttl, swr, sie);
            (meta_internal, meta_header) = m.serialize()?;
        }
        let updated = StoredObject::new(meta_internal.into(), meta_header.into(), old.body);
        // Decoded now, so a fast path can answer the next request (see `finish`).
        let _ = updated.meta();
        self.objects.load().insert(hash, updated);
        Ok(true)
    }

    fn support_streaming_partial_write(&self) -> bool {
        true
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

/// A hit: a complete object (seekable, for ranges) or a fill being streamed.
pub enum EdgeHit {
    Complete(CompleteHit),
    Partial(PartialHit),
}

pub struct CompleteHit {
    body: Bytes,
    start: usize,
    end: usize,
    done: bool,
}

pub struct PartialHit {
    fill: Arc<Fill>,
    progress: watch::Receiver<Progress>,
    next: usize,
    /// Where chunk `next` starts in the body.
    offset: usize,
    /// The bytes to send, `start..end` (a single range of an object still being filled,
    /// such as an LL-HLS part being produced: `bytes=N-` streams from N as it arrives).
    range: (usize, Option<usize>),
}

impl PartialHit {
    /// The next bytes of the range, as the fill receives them.
    async fn read(&mut self) -> Result<Option<Bytes>> {
        loop {
            let (start, end) = self.range;
            if end.is_some_and(|e| self.offset >= e) {
                return Ok(None);
            }
            let Some(chunk) = self.next_chunk().await? else {
                return Ok(None);
            };
            let (from, to) = (self.offset, self.offset + chunk.len());
            self.offset = to;
            let (a, b) = (start.max(from), end.map_or(to, |e| e.min(to)));
            if a < b {
                return Ok(Some(chunk.slice(a - from..b - from)));
            }
        }
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        loop {
            let p = *self.progress.borrow_and_update();
            if self.next < p.chunks {
                let chunk = self
                    .fill
                    .chunk(self.next)
                    .ok_or_else(|| internal("fill chunk missing"))?;
                self.next += 1;
                return Ok(Some(chunk));
            }
            match p.state {
                FillState::Done => return Ok(None),
                FillState::Failed => {
                    return Err(Error::explain(
                        ErrorType::ReadError,
                        "cache fill failed upstream; body incomplete",
                    ))
                }
                FillState::Writing => {
                    if self.progress.changed().await.is_err() {
                        return Err(internal("cache fill writer vanished"));
                    }
                }
            }
        }
    }
}

#[async_trait]
impl HandleHit for EdgeHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        match self {
            EdgeHit::Complete(c) => {
                if c.done || c.start >= c.end {
                    c.done = true;
                    return Ok(None);
                }
                c.done = true;
                Ok(Some(c.body.slice(c.start..c.end)))
            }
            EdgeHit::Partial(p) => p.read().await,
        }
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    /// Single ranges are served from a fill in progress too; multipart ranges (which seek
    /// back and forth) only from a complete object.
    fn can_seek(&self) -> bool {
        true
    }

    fn can_seek_multipart(&self) -> bool {
        matches!(self, EdgeHit::Complete(_))
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        match self {
            EdgeHit::Complete(c) => {
                let len = c.body.len();
                if start >= len {
                    return Error::e_explain(
                        ErrorType::InternalError,
                        format!("seek start {start} beyond body length {len}"),
                    );
                }
                c.start = start;
                c.end = end.map_or(len, |e| e.min(len));
                c.done = false;
                Ok(())
            }
            // Before the first read: the fill's length is in its header (the range filter
            // checked the range against it), its bytes may not have arrived yet.
            EdgeHit::Partial(p) if p.next == 0 => {
                p.range = (start, end);
                Ok(())
            }
            EdgeHit::Partial(_) => {
                Error::e_explain(ErrorType::InternalError, "seek after a fill's first read")
            }
        }
    }

    fn should_count_access(&self) -> bool {
        matches!(self, EdgeHit::Complete(_))
    }

    fn get_eviction_weight(&self) -> usize {
        match self {
            EdgeHit::Complete(c) => c.body.len(),
            EdgeHit::Partial(_) => 0,
        }
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

/// Writes one fill. Dropped without `finish` = the fill failed.
struct EdgeMiss {
    storage: &'static EdgeStorage,
    key: u128,
    fill: Arc<Fill>,
    tag: [u8; 8],
    content_length: Option<usize>,
    written: usize,
    /// Bytes this fill holds in the fill memory budget: its `Content-Length`, or what
    /// arrived so far when it has none. Given back when the writer is dropped.
    reserved: u64,
    finished: bool,
    /// Set for playlists stored with the default TTL: decide live vs VOD from the body.
    refine: Option<PlaylistRefine>,
    /// Set for playlists: record the parts the body lists.
    lists_parts: Option<ListsParts>,
    /// A prefetch's fill ([`Prefetched`]).
    prefetched: bool,
}

#[async_trait]
impl HandleMiss for EdgeMiss {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.written += data.len();
        if self.content_length.is_some_and(|cl| self.written > cl) {
            return Error::e_explain(
                ErrorType::InternalError,
                "origin sent more bytes than Content-Length",
            );
        }
        if self.written as u64 > self.reserved {
            // No Content-Length: the budget holds what arrived.
            self.storage
                .budget
                .take(self.written as u64 - self.reserved);
            self.reserved = self.written as u64;
        }
        let chunks = {
            let mut chunks = lock(&self.fill.chunks);
            chunks.push(data);
            chunks.len()
        };
        self.fill.progress.send_modify(|p| p.chunks = chunks);
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<MissFinishType> {
        if let Some(cl) = self.content_length {
            if cl != self.written {
                // Drop marks the fill failed: nothing is stored, readers get an error.
                return Error::e_explain(
                    ErrorType::InternalError,
                    format!(
                        "body length {} does not match Content-Length {cl}; not caching",
                        self.written
                    ),
                );
            }
        }
        let body = {
            let chunks = lock(&self.fill.chunks);
            if chunks.len() == 1 {
                chunks[0].clone()
            } else {
                let mut buf = BytesMut::with_capacity(self.written);
                for c in chunks.iter() {
                    buf.extend_from_slice(c);
                }
                buf.freeze()
            }
        };
        let size = body.len();
        if let Some(playlist) = &self.lists_parts {
            if let Some(listed) = crate::hls::parts::listed(&playlist.0, &body) {
                self.storage
                    .parts
                    .record(&listed, std::time::Instant::now());
            }
        }
        let (meta_internal, meta_header) = match &self.refine {
            None => (
                self.fill.meta_internal.clone(),
                self.fill.meta_header.clone(),
            ),
            Some(refine) => {
                let mut meta =
                    CacheMeta::deserialize(&self.fill.meta_internal, &self.fill.meta_header)?;
                let (ttl, swr) =
                    playlist_freshness(&body, refine, meta.stale_while_revalidate_sec());
                let sie = meta.stale_if_error_sec();
                meta.update_freshness(std::time::SystemTime::now() + ttl, swr, sie);
                let (i, h) = meta.serialize()?;
                (Bytes::from(i), Bytes::from(h))
            }
        };
        let obj = StoredObject::new(meta_internal, meta_header, body);
        // Decode the meta once now: `Cache::fresh_memory_hit` offers only objects whose meta
        // is decoded, so the first hit after a fill can already take a fast path. (A meta
        // that does not decode is stored anyway; the lookup removes it.)
        let _ = obj.meta();
        let weight = obj.weight();
        // Insert before the fill leaves the map, so a lookup that checks the fills and then
        // memory never falls between the two (`EdgeStorage::after_search`).
        self.storage.admit(self.key, obj, self.prefetched);
        self.storage
            .stats
            .bytes_admitted
            .fetch_add(weight as u64, Ordering::Relaxed);
        self.fill.set_state(FillState::Done);
        self.finished = true;
        self.storage.remove_fill(self.key, self.fill.id);
        Ok(MissFinishType::Created(size))
    }

    fn streaming_write_tag(&self) -> Option<&[u8]> {
        Some(&self.tag)
    }
}

impl Drop for EdgeMiss {
    fn drop(&mut self) {
        self.storage.budget.give_back(self.reserved);
        if !self.finished {
            self.fill.set_state(FillState::Failed);
            self.storage.remove_fill(self.key, self.fill.id);
            self.storage
                .stats
                .fill_failures
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Cache;
    use crate::config::CacheConfig;
    use pingora_cache::trace::Span;
    use pingora_http::ResponseHeader;
    use std::time::{Duration, SystemTime};

    /// A real cache (memory and disk tiers) in a temporary folder, leaked to `'static` as
    /// the server does.
    async fn storage(dir: &std::path::Path) -> &'static EdgeStorage {
        let section = toml::from_str(
            "dir = \"c\"\nmemory = \"4 MiB\"\ndisk = \"21 MiB\"\nmax_object = \"1 MiB\"\n",
        )
        .unwrap();
        let cfg = CacheConfig::build(section, dir).unwrap();
        let cache = Cache::open(
            &cfg,
            &prometheus::Registry::new(),
            tokio::runtime::Handle::current().into(),
        )
        .await
        .unwrap();
        &Box::leak(Box::new(cache)).storage
    }

    /// Start a fill of `key` with `body`, write it whole and finish it (as a miss does).
    async fn fill(storage: &'static EdgeStorage, key: &CacheKey, body: &'static [u8]) {
        let mut header = ResponseHeader::build(200, None).unwrap();
        header
            .insert_header("content-length", body.len().to_string())
            .unwrap();
        let now = SystemTime::now();
        let meta = CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, header);
        let span = Span::inactive();
        let mut miss = storage
            .get_miss_handler(key, &meta, &span.handle())
            .await
            .unwrap();
        miss.write_body(Bytes::from_static(body), true)
            .await
            .unwrap();
        miss.finish().await.unwrap();
    }

    /// A fill that starts and ends while a lookup searches the tiers (a slow disk read on a
    /// loaded machine; seen as a second origin fetch at a shield): the lookup answers with
    /// the stored object instead of a miss that would fetch it from the origin again.
    #[tokio::test]
    async fn a_fill_that_starts_and_ends_during_the_search_is_a_hit() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage(dir.path()).await;
        let key = CacheKey::new("/v/s/1.ts", "");
        let search = async {
            fill(storage, &key, b"object 1").await;
            // What the tiers' search returns: it looked before the object was stored.
            None
        };
        let (_, mut hit) = storage
            .lookup_around(key_of(&key), search)
            .await
            .unwrap()
            .expect("a hit, not a miss");
        assert_eq!(
            hit.read_body().await.unwrap(),
            Some(Bytes::from_static(b"object 1"))
        );
        assert_eq!(storage.stats.misses.load(Ordering::Relaxed), 0);
        assert_eq!(storage.stats.hits_memory.load(Ordering::Relaxed), 1);
    }

    /// Nothing stored and nothing filling: a miss, counted once.
    #[tokio::test]
    async fn nothing_stored_nor_filling_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage(dir.path()).await;
        let key = CacheKey::new("/v/s/2.ts", "");
        let found = storage
            .lookup_around(key_of(&key), async { None })
            .await
            .unwrap();
        assert!(found.is_none());
        assert_eq!(storage.stats.misses.load(Ordering::Relaxed), 1);
    }
}
