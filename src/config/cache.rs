//! `[cache]`: the two tiers' sizes and folder, and the freshness defaults that
//! [`crate::cache::policy`] reads as they are.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::ConfigError;
use super::file::{CacheSection, KeyRuleSection, SliceRuleSection, TtlRuleSection};
use super::units::{format_size, parse_duration};
use super::value::{duration, size};

#[derive(Debug, Clone)]
pub struct CacheConfig {
    pub memory: u64,
    pub dir: PathBuf,
    pub disk: u64,
    pub max_object: u64,
    /// How long a cache-lock writer may hold the lock before waiters give up and fetch.
    pub lock_timeout: Duration,
    /// Bytes the fills in flight may hold in memory ([`crate::cache::budget`]); a cacheable
    /// miss that does not fit streams through uncached.
    pub fill_memory: u64,
    /// An HTTP/2 request whose response is being filled, whose stream takes no data for this
    /// long while the fill waits on it, is reset so the fill goes on at origin speed
    /// ([`crate::proxy::fill_pace`]).
    pub fill_stall: Duration,
    /// Freshness of a 200 when the origin sends no `Cache-Control`/`Expires`.
    pub default_ttl: Duration,
    /// Freshness of a 404/410 when the origin sends no caching headers.
    pub negative_ttl: Duration,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
    /// With a stale copy to fall back on, how long the origin gets before the stale copy is
    /// served (stale-if-error), instead of the pool's full timeouts.
    pub stale_timeout: Duration,
    /// Upper bound on any freshness lifetime, origin-given or default.
    pub max_ttl: Duration,
    /// Freshness of a VOD (`#EXT-X-ENDLIST`) or master playlist without caching headers.
    pub vod_playlist_ttl: Duration,
    /// A live media playlist without caching headers is fresh for this fraction of its
    /// `#EXT-X-TARGETDURATION`.
    pub live_playlist_fraction: f64,
    pub disk_admission: DiskAdmission,
    /// Per-path-prefix TTLs, longest prefix first.
    pub rules: Vec<TtlRule>,
    /// Send players' CMCD on to the origin (it is never part of the cache key).
    pub forward_cmcd: bool,
    /// Per-path-prefix query-parameter policies for the cache key ([`crate::cache::key`]).
    pub keys: Vec<KeyRule>,
    /// Targeted cache-control fields (RFC 9213) in precedence order: `[cache] targeted_field`
    /// when set, then `CDN-Cache-Control`; the first valid one beats `Cache-Control`.
    pub targeted: Vec<http::HeaderName>,
    /// Per-path-prefix slicing of large objects (`[[cache.slices]]`, [`crate::cache::key`]),
    /// longest prefix first.
    pub slices: Vec<SliceRule>,
}

/// `[[cache.slices]]`: GETs under `prefix` are fetched from the origin and cached in slices
/// of `size` bytes, each its own cache entry ([`crate::proxy::slices`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceRule {
    pub prefix: String,
    pub size: u64,
}

/// When an object is written to the disk tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskAdmission {
    /// On its first fill.
    FirstHit,
    /// When it is requested a second time, so one-hit wonders never churn the disk.
    SecondHit,
    /// On its first fill while the disk tier has room nothing was written to, then on its
    /// second request (see [`crate::cache::admission`]).
    SecondHitWhenFull,
}

#[derive(Debug, Clone)]
pub struct TtlRule {
    pub prefix: String,
    pub ttl: Duration,
    /// Apply even when the origin sends Cache-Control/Expires.
    pub override_origin: bool,
}

/// Which query parameters make up the key under a path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryPolicy {
    /// Every parameter (the default).
    All,
    /// None: the path alone names the object.
    None,
    /// Only these parameters.
    Allow(Vec<String>),
    /// Every parameter but these.
    Deny(Vec<String>),
}

/// `[[cache.keys]]`: the query policy for paths under `prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRule {
    pub prefix: String,
    pub query: QueryPolicy,
}

/// Disk block size for a given largest object: an entry must fit in one block.
pub fn block_size_for(max_object: u64) -> usize {
    const MIB: u64 = 1 << 20;
    let with_headers = max_object.saturating_add(256 * 1024);
    let rounded = with_headers.div_ceil(MIB).saturating_mul(MIB);
    usize::try_from(rounded.max(4 * MIB)).unwrap_or(usize::MAX)
}

impl CacheConfig {
    /// Validate `[cache]`; `cache.dir` resolves against `base` (the config file's folder).
    pub fn build(c: CacheSection, base: &Path) -> Result<Self, ConfigError> {
        let memory = size("cache.memory", c.memory.as_deref(), "256 MiB")?;
        if memory < (1 << 20) {
            return Err(ConfigError::new("cache.memory", "must be at least 1 MiB"));
        }
        let disk = size("cache.disk", c.disk.as_deref(), "1 GiB")?;
        let max_object = size("cache.max_object", c.max_object.as_deref(), "64 MiB")?;
        if max_object == 0 {
            return Err(ConfigError::new(
                "cache.max_object",
                "must be greater than 0",
            ));
        }
        let block = block_size_for(max_object) as u64;
        if disk < block.saturating_mul(4) {
            return Err(ConfigError::new(
                "cache.disk",
                format!(
                    "{} is too small for cache.max_object = {}: the disk tier needs at least 4 blocks of {}",
                    format_size(disk),
                    format_size(max_object),
                    format_size(block)
                ),
            ));
        }
        // Default: a quarter of the memory tier, and always room for one largest object.
        let fill_memory = match c.fill_memory.as_deref() {
            None => (memory / 4).max(max_object),
            given => size("cache.fill_memory", given, "0")?,
        };
        if fill_memory == 0 {
            return Err(ConfigError::new(
                "cache.fill_memory",
                "must be greater than 0",
            ));
        }
        let dir = c.dir.as_deref().unwrap_or("data/cache");
        if dir.trim().is_empty() {
            return Err(ConfigError::new("cache.dir", "must not be empty"));
        }
        let cache = CacheConfig {
            memory,
            dir: base.join(dir),
            disk,
            max_object,
            lock_timeout: duration("cache.lock_timeout", c.lock_timeout.as_deref(), "30s")?,
            fill_memory,
            fill_stall: duration("cache.fill_stall", c.fill_stall.as_deref(), "1s")?,
            default_ttl: duration("cache.default_ttl", c.default_ttl.as_deref(), "24h")?,
            negative_ttl: duration("cache.negative_ttl", c.negative_ttl.as_deref(), "10s")?,
            stale_while_revalidate: duration(
                "cache.stale_while_revalidate",
                c.stale_while_revalidate.as_deref(),
                "5s",
            )?,
            stale_if_error: duration("cache.stale_if_error", c.stale_if_error.as_deref(), "5m")?,
            stale_timeout: duration("cache.stale_timeout", c.stale_timeout.as_deref(), "1s")?,
            max_ttl: duration("cache.max_ttl", c.max_ttl.as_deref(), "7d")?,
            vod_playlist_ttl: duration(
                "cache.vod_playlist_ttl",
                c.vod_playlist_ttl.as_deref(),
                "1h",
            )?,
            live_playlist_fraction: match c.live_playlist_fraction.unwrap_or(0.5) {
                f if f > 0.0 && f <= 1.0 => f,
                f => {
                    return Err(ConfigError::new(
                        "cache.live_playlist_fraction",
                        format!("{f} is out of range (0, 1]"),
                    ))
                }
            },
            disk_admission: disk_admission(c.disk_admission.as_deref())?,
            rules: ttl_rules(c.rules)?,
            forward_cmcd: c.forward_cmcd.unwrap_or(false),
            keys: key_rules(c.keys)?,
            targeted: targeted(c.targeted_field.as_deref())?,
            slices: slice_rules(c.slices, max_object)?,
        };
        if cache.stale_timeout.is_zero() {
            return Err(ConfigError::new(
                "cache.stale_timeout",
                "must be greater than 0",
            ));
        }
        if cache.fill_stall.is_zero() {
            return Err(ConfigError::new(
                "cache.fill_stall",
                "must be greater than 0",
            ));
        }
        Ok(cache)
    }

    /// The disk tier's block size (an object must fit in one block).
    pub fn block_size(&self) -> usize {
        block_size_for(self.max_object)
    }

    /// The `[[cache.rules]]` rule for a normalised path: the longest matching prefix.
    pub fn rule_for(&self, path: &str) -> Option<&TtlRule> {
        self.rules.iter().find(|r| path.starts_with(&r.prefix))
    }
}

fn disk_admission(text: Option<&str>) -> Result<DiskAdmission, ConfigError> {
    match text.unwrap_or("second-hit-when-full") {
        "second-hit-when-full" => Ok(DiskAdmission::SecondHitWhenFull),
        "second-hit" => Ok(DiskAdmission::SecondHit),
        "first-hit" => Ok(DiskAdmission::FirstHit),
        other => Err(ConfigError::new(
            "cache.disk_admission",
            format!("unknown value {other:?}; expected \"second-hit-when-full\", \"second-hit\" or \"first-hit\""),
        )),
    }
}

fn ttl_rules(raw: Vec<TtlRuleSection>) -> Result<Vec<TtlRule>, ConfigError> {
    let mut rules = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let key = format!("cache.rules[{i}]");
        if !r.prefix.starts_with('/') {
            return Err(ConfigError::new(
                format!("{key}.prefix"),
                format!("{:?} must start with '/'", r.prefix),
            ));
        }
        rules.push(TtlRule {
            prefix: r.prefix,
            ttl: parse_duration(&r.ttl).map_err(|e| ConfigError::new(format!("{key}.ttl"), e))?,
            override_origin: r.override_origin.unwrap_or(false),
        });
    }
    // Longest prefix first, so the first match is the most specific.
    rules.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
    Ok(rules)
}

/// The smallest slice: below it, a large object would cost the origin a request per few
/// packets and the cache an entry per few kilobytes.
const MIN_SLICE: u64 = 64 * 1024;

fn slice_rules(raw: Vec<SliceRuleSection>, max_object: u64) -> Result<Vec<SliceRule>, ConfigError> {
    let mut rules: Vec<SliceRule> = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let key = format!("cache.slices[{i}]");
        if !r.prefix.starts_with('/') {
            return Err(ConfigError::new(
                format!("{key}.prefix"),
                format!("{:?} must start with '/'", r.prefix),
            ));
        }
        if rules.iter().any(|o| o.prefix == r.prefix) {
            return Err(ConfigError::new(
                format!("{key}.prefix"),
                format!("{:?} is already sliced by an earlier rule", r.prefix),
            ));
        }
        let size = size(&format!("{key}.size"), Some(&r.size), "0")?;
        if size < MIN_SLICE || size > max_object {
            return Err(ConfigError::new(
                format!("{key}.size"),
                format!(
                    "{} is out of range: a slice is at least {} and at most cache.max_object ({}), \
                     since each slice is one cache entry",
                    format_size(size),
                    format_size(MIN_SLICE),
                    format_size(max_object)
                ),
            ));
        }
        rules.push(SliceRule {
            prefix: r.prefix,
            size,
        });
    }
    // Longest prefix first, so the first match is the most specific.
    rules.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
    Ok(rules)
}

fn key_rules(raw: Vec<KeyRuleSection>) -> Result<Vec<KeyRule>, ConfigError> {
    let mut rules = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let key = format!("cache.keys[{i}]");
        if !r.prefix.starts_with('/') {
            return Err(ConfigError::new(
                format!("{key}.prefix"),
                format!("{:?} must start with '/'", r.prefix),
            ));
        }
        let query = match (r.query.as_deref(), r.allow, r.deny) {
            (Some("all"), None, None) => QueryPolicy::All,
            (Some("none"), None, None) => QueryPolicy::None,
            (Some(other), None, None) => {
                return Err(ConfigError::new(
                    format!("{key}.query"),
                    format!("{other:?}: expected \"all\" or \"none\" (or an allow or deny list)"),
                ))
            }
            (None, Some(allow), None) => QueryPolicy::Allow(allow),
            (None, None, Some(deny)) => QueryPolicy::Deny(deny),
            _ => {
                return Err(ConfigError::new(
                    key,
                    "set exactly one of query, allow or deny",
                ))
            }
        };
        rules.push(KeyRule {
            prefix: r.prefix,
            query,
        });
    }
    Ok(rules)
}

/// `[cache] targeted_field`, then `CDN-Cache-Control` (RFC 9213).
fn targeted(field: Option<&str>) -> Result<Vec<http::HeaderName>, ConfigError> {
    let mut fields = Vec::with_capacity(2);
    if let Some(n) = field.map(str::trim) {
        fields.push(http::HeaderName::from_bytes(n.as_bytes()).map_err(|_| {
            ConfigError::new(
                "cache.targeted_field",
                format!("{n:?} is not a valid header field name"),
            )
        })?);
    }
    fields.push(http::HeaderName::from_static("cdn-cache-control"));
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_hold_the_largest_object() {
        assert_eq!(block_size_for(1), 4 << 20);
        assert!(block_size_for(64 << 20) >= (64 << 20) + 256 * 1024);
        assert_eq!(block_size_for(64 << 20) % (1 << 20), 0);
    }
}
