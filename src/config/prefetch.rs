//! `[[prefetch]]`: next-segment prefetch per path prefix ([`crate::prefetch`]). Off unless a
//! rule is configured.

use std::time::Duration;

use super::error::ConfigError;
use super::file::PrefetchSection;
use super::units::{parse_duration, parse_size};

/// Most segments ahead a rule may ask for.
pub const MAX_SEGMENTS: usize = 10;
/// Most prefetches in flight a rule may allow.
pub const MAX_CONCURRENCY: usize = 256;
/// The longest `pause` after an origin error.
pub const MAX_PAUSE: Duration = Duration::from_secs(3600);

/// One `[[prefetch]]` rule: a player's request for segment N of a media playlist under
/// `prefix` fetches segments N+1..N+`segments` into the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefetchRule {
    pub prefix: String,
    /// How many segments ahead (k); also the most in flight for one rendition.
    pub segments: usize,
    /// The most prefetches in flight under this prefix, all renditions together.
    pub concurrency: usize,
    /// The most bytes of prefetches in flight under this prefix (by `Content-Length`, or
    /// as they arrive without one).
    pub max_bytes: u64,
    /// After an origin error (4xx/5xx) on a prefetch, no prefetch for that rendition for
    /// this long.
    pub pause: Duration,
}

/// The rules, in file order; each prefix at most once.
pub fn build(raw: Vec<PrefetchSection>) -> Result<Vec<PrefetchRule>, ConfigError> {
    let mut rules: Vec<PrefetchRule> = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("prefetch[{i}].{k}");
        if !r.prefix.starts_with('/') || r.prefix.chars().any(|c| c.is_control()) {
            return Err(ConfigError::new(
                key("prefix"),
                format!("{:?} must be a path prefix starting with \"/\"", r.prefix),
            ));
        }
        if rules.iter().any(|p| p.prefix == r.prefix) {
            return Err(ConfigError::new(
                key("prefix"),
                format!("{:?} is listed twice", r.prefix),
            ));
        }
        let segments = r.segments.unwrap_or(2);
        if !(1..=MAX_SEGMENTS as i64).contains(&segments) {
            return Err(ConfigError::new(
                key("segments"),
                format!("{segments} is out of range; expected 1 to {MAX_SEGMENTS}"),
            ));
        }
        let concurrency = r.concurrency.unwrap_or(4);
        if !(1..=MAX_CONCURRENCY as i64).contains(&concurrency) {
            return Err(ConfigError::new(
                key("concurrency"),
                format!("{concurrency} is out of range; expected 1 to {MAX_CONCURRENCY}"),
            ));
        }
        let max_bytes = parse_size(r.max_bytes.as_deref().unwrap_or("64 MiB"))
            .map_err(|e| ConfigError::new(key("max_bytes"), e))?;
        if max_bytes == 0 {
            return Err(ConfigError::new(
                key("max_bytes"),
                "must be more than 0 bytes",
            ));
        }
        let pause = parse_duration(r.pause.as_deref().unwrap_or("10s"))
            .map_err(|e| ConfigError::new(key("pause"), e))?;
        if pause > MAX_PAUSE {
            return Err(ConfigError::new(key("pause"), "must be at most 1h"));
        }
        rules.push(PrefetchRule {
            prefix: r.prefix,
            segments: segments as usize,
            concurrency: concurrency as usize,
            max_bytes,
            pause,
        });
    }
    Ok(rules)
}

/// The rule for a (normalised) path: the longest prefix that matches.
pub fn rule_for<'a>(rules: &'a [PrefetchRule], path: &str) -> Option<&'a PrefetchRule> {
    rules
        .iter()
        .filter(|r| path.starts_with(r.prefix.as_str()))
        .max_by_key(|r| r.prefix.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(prefix: &str) -> PrefetchSection {
        PrefetchSection {
            prefix: prefix.to_string(),
            segments: None,
            concurrency: None,
            max_bytes: None,
            pause: None,
        }
    }

    #[test]
    fn defaults_and_longest_prefix() {
        let rules = build(vec![section("/vod/"), section("/vod/live/")]).unwrap();
        assert_eq!(rules[0].segments, 2);
        assert_eq!(rules[0].concurrency, 4);
        assert_eq!(rules[0].max_bytes, 64 << 20);
        assert_eq!(rules[0].pause, Duration::from_secs(10));
        assert_eq!(rule_for(&rules, "/vod/a/1.ts").unwrap().prefix, "/vod/");
        assert_eq!(
            rule_for(&rules, "/vod/live/1.ts").unwrap().prefix,
            "/vod/live/"
        );
        assert!(rule_for(&rules, "/other/1.ts").is_none());
        assert!(rule_for(&[], "/vod/1.ts").is_none());
    }

    #[test]
    fn refusals_name_the_key() {
        let e = build(vec![section("vod/")]).unwrap_err();
        assert_eq!(e.key, "prefetch[0].prefix");
        let e = build(vec![section("/a/"), section("/a/")]).unwrap_err();
        assert_eq!(e.key, "prefetch[1].prefix");
        for (field, bad) in [("segments", 0), ("segments", 11), ("concurrency", 0)] {
            let mut s = section("/a/");
            match field {
                "segments" => s.segments = Some(bad),
                _ => s.concurrency = Some(bad),
            }
            let e = build(vec![s]).unwrap_err();
            assert_eq!(e.key, format!("prefetch[0].{field}"));
            assert!(e.to_string().contains("out of range"), "{e}");
        }
        let mut s = section("/a/");
        s.max_bytes = Some("lots".into());
        assert_eq!(build(vec![s]).unwrap_err().key, "prefetch[0].max_bytes");
        let mut s = section("/a/");
        s.max_bytes = Some("0".into());
        assert_eq!(build(vec![s]).unwrap_err().key, "prefetch[0].max_bytes");
        let mut s = section("/a/");
        s.pause = Some("2h".into());
        assert_eq!(build(vec![s]).unwrap_err().key, "prefetch[0].pause");
    }
}
