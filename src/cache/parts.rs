//! Which paths are Low-Latency HLS partial segments, learnt from the live playlists the edge
//! stores, and how long such a part may be kept.
//!
//! A part is listed by its playlist for a few target durations and then only the segment
//! that holds the same media is (RFC 8216bis §6.2.2: parts older than three target
//! durations may be removed), so keeping it as long as a segment only fills the cache with
//! bytes no player asks for again. When a live media playlist with parts is stored
//! ([`super::store`]) every `#EXT-X-PART` and part `#EXT-X-PRELOAD-HINT` path it lists is
//! recorded here with the part lifetime, [`PART_TARGETS`] × `#EXT-X-TARGETDURATION`; the
//! policy ([`super::policy::decide`]) caps the freshness of a response for a recorded path
//! at it (an operator's `override_origin` rule still wins). The playlist names a hinted part
//! before any player asks for it, so even the first fill of a part knows it is one.
//!
//! Bounded: at most [`CAPACITY`] paths; a record lives twice its part lifetime (a part
//! requested later than that is no longer listed), and expired records make room first.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A part's lifetime, in target durations of the playlist that lists it.
pub const PART_TARGETS: f64 = 3.0;

/// The most paths remembered.
pub const CAPACITY: usize = 65_536;

/// The recorded part paths.
#[derive(Debug, Default)]
pub struct PartPaths {
    known: Mutex<HashMap<String, Known>>,
}

#[derive(Debug, Clone, Copy)]
struct Known {
    lifetime: Duration,
    until: Instant,
}

/// The lifetime of the parts of a playlist with this target duration (seconds).
pub fn part_lifetime(target_duration: f64) -> Duration {
    Duration::from_secs_f64((target_duration * PART_TARGETS).clamp(0.1, 86_400.0))
}

impl PartPaths {
    /// Record the parts a stored live playlist lists.
    pub fn record(&self, listed: &crate::hls::parts::Listed, now: Instant) {
        let lifetime = part_lifetime(listed.target_duration);
        let until = now + lifetime * 2;
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() + listed.paths.len() > CAPACITY {
            known.retain(|_, k| k.until > now);
        }
        for path in &listed.paths {
            if known.len() >= CAPACITY && !known.contains_key(path) {
                break;
            }
            known.insert(path.clone(), Known { lifetime, until });
        }
    }

    /// The longest `path` may be kept, if a live playlist listed it as a part lately.
    pub fn lifetime(&self, path: &str, now: Instant) -> Option<Duration> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known
            .get(path)
            .filter(|k| k.until > now)
            .map(|k| k.lifetime)
    }

    /// How many paths are recorded (expired ones included until they make room).
    pub fn len(&self) -> usize {
        self.known.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::parts::Listed;

    fn listed(target: f64, paths: &[&str]) -> Listed {
        Listed {
            target_duration: target,
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn recorded_parts_get_the_part_lifetime_until_they_expire() {
        let parts = PartPaths::default();
        let t0 = Instant::now();
        parts.record(&listed(2.0, &["/l/s1.0.m4s", "/l/s1.1.m4s"]), t0);
        assert_eq!(
            parts.lifetime("/l/s1.0.m4s", t0),
            Some(Duration::from_secs(6))
        );
        assert_eq!(
            parts.lifetime("/l/s1.m4s", t0),
            None,
            "a segment is not a part"
        );
        assert_eq!(
            parts.lifetime("/l/s1.1.m4s", t0 + Duration::from_secs(11)),
            Some(Duration::from_secs(6))
        );
        assert_eq!(
            parts.lifetime("/l/s1.1.m4s", t0 + Duration::from_secs(12)),
            None
        );
        // Listed again: known again.
        let t1 = t0 + Duration::from_secs(20);
        parts.record(&listed(1.0, &["/l/s1.1.m4s"]), t1);
        assert_eq!(
            parts.lifetime("/l/s1.1.m4s", t1),
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn bounded() {
        let parts = PartPaths::default();
        let t0 = Instant::now();
        let many: Vec<String> = (0..CAPACITY + 10).map(|i| format!("/p/{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        parts.record(&listed(1.0, &refs), t0);
        assert_eq!(parts.len(), CAPACITY);
        // Once they expired, new ones take their place.
        let later = t0 + Duration::from_secs(10);
        parts.record(&listed(1.0, &["/new"]), later);
        assert_eq!(parts.len(), 1);
        assert!(parts.lifetime("/new", later).is_some());
    }

    #[test]
    fn lifetimes() {
        assert_eq!(part_lifetime(1.0), Duration::from_secs(3));
        assert_eq!(part_lifetime(0.0), Duration::from_millis(100));
        assert_eq!(part_lifetime(1e12), Duration::from_secs(86_400));
    }
}
