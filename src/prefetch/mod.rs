//! Next-segment prefetch (`[[prefetch]]`, issue 16 item 6): when a player asks for segment N
//! of a rendition whose media playlist the edge fetched, the edge fetches N+1..N+k into the
//! cache in the background, so the player's next requests are hits.
//!
//! This module keeps the book: which segment follows which ([`index`], fed from the media
//! playlists the pipeline fetches, [`playlist`]), what is in flight (per rendition at most
//! `segments`; per rule at most `concurrency` and `max_bytes`), which renditions are paused
//! after an origin error, which prefetched objects a request later used, and the metrics.
//! The requests themselves (admitted by the gate as the player's, run as Pingora subrequests
//! through the ordinary pipeline, so the cache lock coalesces a player arriving meanwhile)
//! are [`crate::proxy::prefetch`]'s.
//!
//! Metrics: `edge_prefetch_total{result}`: `started`, `stored` (a prefetch filled the
//! cache), `used` (a later request asked for a prefetched object), `wasted` (a stored
//! prefetch no request asked for within [`WASTED_AFTER`]), `cancelled` (the origin answered
//! 4xx/5xx or failed), `busy` (not started: a bound was reached);
//! `edge_prefetch_bytes_total`: body bytes the prefetches fetched from the origin.

pub mod index;
pub mod playlist;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

use crate::config::PrefetchRule;
pub use index::Next;

/// A prefetched object no request asked for within this long counts as wasted.
pub const WASTED_AFTER: Duration = Duration::from_secs(120);
/// The most prefetched objects remembered for the used/wasted count.
const MAX_PENDING: usize = 1 << 16;
/// The most bytes of one playlist recorded.
pub const MAX_PLAYLIST: usize = 4 << 20;

/// How a prefetch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The object is now in the cache, filled by this prefetch.
    Stored,
    /// Nothing to do after all (someone else filled it, or it is not cacheable).
    NotStored,
    /// The origin answered an error or failed; the rendition pauses.
    Failed,
}

#[derive(Default)]
struct Load {
    in_flight: usize,
    bytes: u64,
}

pub struct PrefetchMetrics {
    total: IntCounterVec,
    pub bytes: IntCounter,
}

impl PrefetchMetrics {
    fn register(registry: &Registry) -> Result<PrefetchMetrics, prometheus::Error> {
        let total = IntCounterVec::new(
            Opts::new(
                "edge_prefetch_total",
                "Next-segment prefetches, by result: started, stored, used, wasted, cancelled, busy",
            ),
            &["result"],
        )?;
        let bytes = IntCounter::new(
            "edge_prefetch_bytes_total",
            "Body bytes next-segment prefetches fetched from the origin",
        )?;
        registry.register(Box::new(total.clone()))?;
        registry.register(Box::new(bytes.clone()))?;
        for r in ["started", "stored", "used", "wasted", "cancelled", "busy"] {
            total.with_label_values(&[r]);
        }
        Ok(PrefetchMetrics { total, bytes })
    }

    pub fn count(&self, result: &str) {
        self.total.with_label_values(&[result]).inc();
    }
}

/// The prefetch book, one per process (in [`crate::state::EdgeState`]).
pub struct Prefetcher {
    index: Mutex<index::Index>,
    /// Per rule prefix: prefetches and bytes in flight.
    loads: Mutex<HashMap<String, Load>>,
    /// Objects (by cache key hash) prefetched, or being prefetched, that no request asked
    /// for yet, and since when.
    pending: Mutex<HashMap<u128, Instant>>,
    pub metrics: PrefetchMetrics,
    /// What starts the background requests (the proxy's subrequest spawner), set once the
    /// proxy exists.
    pub spawner: OnceLock<pingora_proxy::SubrequestSpawner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Prefetcher {
    pub fn new(registry: &Registry) -> Result<Prefetcher, prometheus::Error> {
        Ok(Prefetcher {
            index: Mutex::new(index::Index::default()),
            loads: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            metrics: PrefetchMetrics::register(registry)?,
            spawner: OnceLock::new(),
        })
    }

    /// Record a media playlist the edge fetched (`body` decoded), served at `host` + `path`.
    pub fn record_playlist(&self, host: &str, path: &str, body: &[u8]) {
        let Ok(text) = std::str::from_utf8(body) else {
            return;
        };
        if let Some(segments) = playlist::media_segments(text, path) {
            lock(&self.index).record(host, path, segments, Instant::now());
        }
    }

    /// A request for the object `key`: if it was prefetched, it is used.
    pub fn requested(&self, key: u128) {
        if lock(&self.pending).remove(&key).is_some() {
            self.metrics.count("used");
        }
    }

    /// The segments to prefetch after `host` + `path` by `rule`.
    pub fn next(&self, rule: &PrefetchRule, host: &str, path: &str) -> Vec<Next> {
        lock(&self.index).next(host, path, rule.segments, Instant::now())
    }

    /// A segment found cached or being filled: not prefetched, not looked at again.
    pub fn settle(&self, next: &Next) {
        lock(&self.index).settle(next.rendition, next.msn);
    }

    /// Start the prefetch of `next` (object `key`) under `rule`, if every bound allows it.
    pub fn start(&'static self, rule: &PrefetchRule, next: &Next, key: u128) -> Option<Ticket> {
        {
            let mut loads = lock(&self.loads);
            let load = loads.entry(rule.prefix.clone()).or_default();
            if load.in_flight >= rule.concurrency || load.bytes >= rule.max_bytes {
                drop(loads);
                self.metrics.count("busy");
                return None;
            }
            if !lock(&self.index).start(next.rendition, next.msn, rule.segments) {
                return None;
            }
            load.in_flight += 1;
        }
        self.note_pending(key);
        self.metrics.count("started");
        Some(Ticket {
            book: self,
            prefix: rule.prefix.clone(),
            pause: rule.pause,
            rendition: next.rendition,
            key,
            bytes: 0,
            outcome: None,
        })
    }

    fn note_pending(&self, key: u128) {
        let now = Instant::now();
        let mut pending = lock(&self.pending);
        let before = pending.len();
        pending.retain(|_, at| now.saturating_duration_since(*at) < WASTED_AFTER);
        let mut wasted = before - pending.len();
        if pending.len() >= MAX_PENDING {
            wasted += pending.len();
            pending.clear();
        }
        pending.insert(key, now);
        drop(pending);
        if wasted > 0 {
            self.metrics
                .total
                .with_label_values(&["wasted"])
                .inc_by(wasted as u64);
        }
    }
}

/// One prefetch in flight: holds its place in the bounds until dropped.
pub struct Ticket {
    book: &'static Prefetcher,
    prefix: String,
    pause: Duration,
    rendition: u64,
    key: u128,
    bytes: u64,
    outcome: Option<Outcome>,
}

impl Ticket {
    /// `n` more bytes of this prefetch are in flight (its `Content-Length` once its header
    /// arrived, or each chunk as it arrives without one). A prefetch that started is never
    /// cut short for its bytes (a player may be reading its fill): the rule's `max_bytes`
    /// is checked when a prefetch starts, so it is passed by at most one object.
    pub fn hold(&mut self, n: u64) {
        let mut loads = lock(&self.book.loads);
        let load = loads.entry(self.prefix.clone()).or_default();
        load.bytes = load.bytes.saturating_add(n);
        self.bytes = self.bytes.saturating_add(n);
    }

    /// How it ended (else: dropped without an outcome, counted as cancelled).
    pub fn finish(mut self, outcome: Outcome) {
        self.outcome = Some(outcome);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let book = self.book;
        if let Some(load) = lock(&book.loads).get_mut(&self.prefix) {
            load.in_flight = load.in_flight.saturating_sub(1);
            load.bytes = load.bytes.saturating_sub(self.bytes);
        }
        let outcome = self.outcome.unwrap_or(Outcome::Failed);
        let pause = (outcome == Outcome::Failed).then(|| Instant::now() + self.pause);
        lock(&book.index).end(self.rendition, pause);
        match outcome {
            Outcome::Stored => book.metrics.count("stored"),
            Outcome::NotStored => {
                lock(&book.pending).remove(&self.key);
            }
            Outcome::Failed => {
                lock(&book.pending).remove(&self.key);
                book.metrics.count("cancelled");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> &'static Prefetcher {
        Box::leak(Box::new(Prefetcher::new(&Registry::new()).unwrap()))
    }

    fn rule(segments: usize, concurrency: usize, max_bytes: u64) -> PrefetchRule {
        PrefetchRule {
            prefix: "/v/".into(),
            segments,
            concurrency,
            max_bytes,
            pause: Duration::from_secs(10),
        }
    }

    const PLAYLIST: &[u8] = b"#EXTM3U\n#EXTINF:2,\n0.ts\n#EXTINF:2,\n1.ts\n#EXTINF:2,\n2.ts\n#EXTINF:2,\n3.ts\n#EXTINF:2,\n4.ts\n";

    fn count(b: &Prefetcher, r: &str) -> u64 {
        b.metrics.total.with_label_values(&[r]).get()
    }

    #[test]
    fn concurrency_and_bytes_bound_what_starts() {
        let b = book();
        b.record_playlist("h", "/v/i.m3u8", PLAYLIST);
        let r = rule(3, 2, 100);
        let next = b.next(&r, "h", "/v/0.ts");
        assert_eq!(next.len(), 3);
        let mut t1 = b.start(&r, &next[0], 1).unwrap();
        t1.hold(150);
        assert!(b.start(&r, &next[1], 2).is_none(), "over max_bytes");
        t1.finish(Outcome::NotStored);
        let t2 = b.start(&r, &next[1], 2).unwrap();
        let t3 = b.start(&r, &next[2], 3).unwrap();
        let more = b.next(&r, "h", "/v/3.ts");
        assert!(b.start(&r, &more[0], 4).is_none(), "two in flight");
        assert_eq!(count(b, "busy"), 2);
        t2.finish(Outcome::Stored);
        t3.finish(Outcome::NotStored);
        assert_eq!(count(b, "stored"), 1);
        b.requested(2);
        b.requested(2);
        b.requested(3);
        assert_eq!(count(b, "used"), 1, "a stored prefetch, used once");
    }

    #[test]
    fn an_error_pauses_the_rendition() {
        let b = book();
        b.record_playlist("h", "/v/i.m3u8", PLAYLIST);
        let r = rule(1, 4, 1 << 20);
        let next = b.next(&r, "h", "/v/0.ts");
        drop(b.start(&r, &next[0], 1).unwrap());
        assert!(b.next(&r, "h", "/v/1.ts").is_empty(), "paused");
        assert_eq!(count(b, "cancelled"), 1, "dropped without an outcome");
    }
}
