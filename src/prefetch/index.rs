//! Which segment follows which: the media playlists the edge fetched, per rendition, and
//! each rendition's prefetch book-keeping (pure: the caller passes the time).
//!
//! A rendition is a media playlist (host + normalised path). Recording it again (a live
//! playlist's refresh) replaces its segment list; a segment is found by host + normalised
//! path, the same facts the gate gives a request. At most [`MAX_RENDITIONS`] are kept: the
//! one recorded or asked least recently goes first.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use super::playlist::Segment;

/// The most renditions remembered.
pub const MAX_RENDITIONS: usize = 4096;

/// A segment to prefetch: its rendition, number, path and query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Next {
    pub rendition: u64,
    pub msn: u64,
    pub path: String,
    pub query: Option<String>,
}

struct Rendition {
    playlist: String,
    segments: Vec<Segment>,
    /// Segments already prefetched, being prefetched, or found cached: not again.
    started: BTreeSet<u64>,
    in_flight: usize,
    paused_until: Option<Instant>,
    touched: Instant,
}

#[derive(Default)]
pub struct Index {
    renditions: HashMap<u64, Rendition>,
    by_playlist: HashMap<String, u64>,
    /// `host \0 path` of a segment → (rendition, msn).
    by_segment: HashMap<String, (u64, u64)>,
    next_id: u64,
}

fn joined(host: &str, path: &str) -> String {
    let mut s = String::with_capacity(host.len() + 1 + path.len());
    s.push_str(host);
    s.push('\0');
    s.push_str(path);
    s
}

impl Index {
    /// Record the segments of the media playlist `host` + `playlist`.
    pub fn record(&mut self, host: &str, playlist: &str, segments: Vec<Segment>, now: Instant) {
        let pkey = joined(host, playlist);
        let id = match self.by_playlist.get(&pkey) {
            Some(id) => *id,
            None => {
                if self.renditions.len() >= MAX_RENDITIONS {
                    self.evict_one();
                }
                self.next_id += 1;
                self.by_playlist.insert(pkey.clone(), self.next_id);
                self.next_id
            }
        };
        let r = self.renditions.entry(id).or_insert_with(|| Rendition {
            playlist: pkey,
            segments: Vec::new(),
            started: BTreeSet::new(),
            in_flight: 0,
            paused_until: None,
            touched: now,
        });
        for s in &r.segments {
            let k = joined(host, &s.path);
            if self.by_segment.get(&k).is_some_and(|(rid, _)| *rid == id) {
                self.by_segment.remove(&k);
            }
        }
        for s in &segments {
            self.by_segment.insert(joined(host, &s.path), (id, s.msn));
        }
        let first = segments.first().map_or(0, |s| s.msn);
        r.started = r.started.split_off(&first);
        r.segments = segments;
        r.touched = now;
    }

    fn evict_one(&mut self) {
        let Some(id) = self
            .renditions
            .iter()
            .filter(|(_, r)| r.in_flight == 0)
            .min_by_key(|(_, r)| r.touched)
            .map(|(id, _)| *id)
        else {
            return;
        };
        if let Some(r) = self.renditions.remove(&id) {
            self.by_playlist.remove(&r.playlist);
            let host = r.playlist.split('\0').next().unwrap_or("");
            for s in &r.segments {
                let k = joined(host, &s.path);
                if self.by_segment.get(&k).is_some_and(|(rid, _)| *rid == id) {
                    self.by_segment.remove(&k);
                }
            }
        }
    }

    /// The segments after `host` + `path` in its rendition, at most `k`, that were not
    /// started yet; none while the rendition is paused.
    pub fn next(&mut self, host: &str, path: &str, k: usize, now: Instant) -> Vec<Next> {
        let Some(&(id, msn)) = self.by_segment.get(&joined(host, path)) else {
            return Vec::new();
        };
        let Some(r) = self.renditions.get_mut(&id) else {
            return Vec::new();
        };
        r.touched = now;
        if r.paused_until.is_some_and(|t| now < t) {
            return Vec::new();
        }
        let Some(at) = r.segments.iter().position(|s| s.msn == msn) else {
            return Vec::new();
        };
        r.segments[at + 1..]
            .iter()
            .take_while(|s| s.msn <= msn + k as u64)
            .filter(|s| !r.started.contains(&s.msn))
            .map(|s| Next {
                rendition: id,
                msn: s.msn,
                path: s.path.clone(),
                query: s.query.clone(),
            })
            .collect()
    }

    /// Mark a segment as needing no prefetch (found cached); `false` if it already was.
    pub fn settle(&mut self, rendition: u64, msn: u64) -> bool {
        self.renditions
            .get_mut(&rendition)
            .is_some_and(|r| r.started.insert(msn))
    }

    /// Start a prefetch in `rendition` if it has fewer than `limit` in flight (and it is
    /// not started yet).
    pub fn start(&mut self, rendition: u64, msn: u64, limit: usize) -> bool {
        let Some(r) = self.renditions.get_mut(&rendition) else {
            return false;
        };
        if r.in_flight >= limit || r.started.contains(&msn) {
            return false;
        }
        r.started.insert(msn);
        r.in_flight += 1;
        true
    }

    /// A prefetch in `rendition` ended; `pause_until` after an origin error.
    pub fn end(&mut self, rendition: u64, pause_until: Option<Instant>) {
        if let Some(r) = self.renditions.get_mut(&rendition) {
            r.in_flight = r.in_flight.saturating_sub(1);
            if pause_until.is_some() {
                r.paused_until = pause_until;
            }
        }
    }

    /// Renditions remembered.
    pub fn len(&self) -> usize {
        self.renditions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.renditions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn segs(first: u64, n: u64) -> Vec<Segment> {
        (first..first + n)
            .map(|m| Segment {
                msn: m,
                path: format!("/l/{m}.ts"),
                query: None,
            })
            .collect()
    }

    fn msns(v: &[Next]) -> Vec<u64> {
        v.iter().map(|n| n.msn).collect()
    }

    #[test]
    fn successors_up_to_k_and_not_twice() {
        let now = Instant::now();
        let mut ix = Index::default();
        ix.record("h", "/l/i.m3u8", segs(0, 5), now);
        let next = ix.next("h", "/l/1.ts", 2, now);
        assert_eq!(msns(&next), vec![2, 3]);
        assert_eq!(next[0].path, "/l/2.ts");
        assert!(ix.start(next[0].rendition, 2, 2));
        assert!(!ix.start(next[0].rendition, 2, 2), "started once");
        assert!(ix.settle(next[0].rendition, 3));
        assert!(ix.next("h", "/l/1.ts", 2, now).is_empty());
        assert_eq!(msns(&ix.next("h", "/l/3.ts", 2, now)), vec![4]);
        assert!(ix.next("h", "/l/4.ts", 2, now).is_empty(), "the last one");
        assert!(ix.next("other", "/l/1.ts", 2, now).is_empty(), "by host");
        assert!(ix.next("h", "/l/9.ts", 2, now).is_empty());
    }

    #[test]
    fn per_rendition_limit_and_pause() {
        let now = Instant::now();
        let mut ix = Index::default();
        ix.record("h", "/l/i.m3u8", segs(0, 9), now);
        let id = ix.next("h", "/l/0.ts", 3, now)[0].rendition;
        assert!(ix.start(id, 1, 2));
        assert!(ix.start(id, 2, 2));
        assert!(!ix.start(id, 3, 2), "two in flight");
        ix.end(id, None);
        ix.end(id, Some(now + Duration::from_secs(10)));
        assert!(ix.next("h", "/l/5.ts", 2, now).is_empty(), "paused");
        let later = now + Duration::from_secs(11);
        assert_eq!(msns(&ix.next("h", "/l/5.ts", 2, later)), vec![6, 7]);
    }

    #[test]
    fn a_live_refresh_replaces_the_list() {
        let now = Instant::now();
        let mut ix = Index::default();
        ix.record("h", "/l/i.m3u8", segs(10, 3), now);
        let id = ix.next("h", "/l/10.ts", 1, now)[0].rendition;
        assert!(ix.start(id, 11, 1));
        ix.end(id, None);
        ix.record("h", "/l/i.m3u8", segs(11, 3), now);
        assert!(
            ix.next("h", "/l/10.ts", 1, now).is_empty(),
            "gone from the list"
        );
        assert!(!ix.start(id, 11, 1), "11 stays started across the refresh");
        assert_eq!(msns(&ix.next("h", "/l/11.ts", 1, now)), vec![12]);
        assert_eq!(msns(&ix.next("h", "/l/12.ts", 1, now)), vec![13]);
        assert_eq!(ix.len(), 1);
    }

    #[test]
    fn bounded_by_evicting_the_least_recent() {
        let t0 = Instant::now();
        let mut ix = Index::default();
        for i in 0..MAX_RENDITIONS {
            let at = t0 + Duration::from_millis(i as u64);
            ix.record("h", &format!("/r{i}/i.m3u8"), Vec::new(), at);
        }
        ix.record("h", "/new/i.m3u8", segs(0, 2), t0 + Duration::from_secs(10));
        assert_eq!(ix.len(), MAX_RENDITIONS);
        assert!(!ix.by_playlist.contains_key(&joined("h", "/r0/i.m3u8")));
        assert_eq!(msns(&ix.next("h", "/l/0.ts", 1, t0)), vec![1]);
    }
}
