//! Which origin responses are stored, and for how long.
//!
//! Origin `Cache-Control` (s-maxage, max-age) and `Expires` win when present. Without them a
//! cacheable success gets `default_ttl` and a 404/410 gets `negative_ttl`. Never stored:
//! 5xx and other statuses not listed in [`cacheable_status`], `no-store`, `private`, and
//! responses that set cookies. `stale-while-revalidate`/`stale-if-error` come from the
//! response's Cache-Control, else from the config defaults.

use std::time::{Duration, SystemTime};

use pingora_cache::cache_control::{CacheControl, InterpretCacheControl};
use pingora_cache::filters::{calculate_fresh_until, calculate_serve_stale_durations};
use pingora_cache::{CacheMeta, CacheMetaDefaults, NoCacheReason, RespCacheable};
use pingora_http::ResponseHeader;

/// TTL policy from `[cache]`.
#[derive(Debug, Clone)]
pub struct TtlPolicy {
    pub default_ttl: Duration,
    pub negative_ttl: Duration,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
}

impl TtlPolicy {
    pub fn from_config(c: &crate::config::CacheConfig) -> Self {
        TtlPolicy {
            default_ttl: c.default_ttl,
            negative_ttl: c.negative_ttl,
            stale_while_revalidate: c.stale_while_revalidate,
            stale_if_error: c.stale_if_error,
        }
    }
}

/// Statuses an edge may store.
pub fn cacheable_status(status: u16) -> bool {
    matches!(status, 200 | 203 | 204 | 300 | 301 | 308 | 404 | 410)
}

fn secs_u32(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// Decide whether `resp` is stored and build its cache meta.
pub fn decide(resp: &ResponseHeader, policy: &TtlPolicy, now: SystemTime) -> RespCacheable {
    let status = resp.status.as_u16();
    if !cacheable_status(status) {
        return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
    }
    if resp.headers.contains_key(http::header::SET_COOKIE) {
        return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
    }
    let cc = CacheControl::from_resp_headers(resp);
    if cc.as_ref().is_some_and(|cc| cc.no_store() || cc.private()) {
        return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
    }
    // Origin headers first (a no-cache response is stored but always revalidated).
    let no_defaults = CacheMetaDefaults::new(|_| None, 0, 0);
    let from_origin = calculate_fresh_until(now, cc.as_ref(), resp, false, &no_defaults);
    let fresh_until = match from_origin {
        Some(t) => t,
        None if cc.as_ref().is_some_and(|cc| cc.no_cache()) => now - Duration::from_secs(1),
        None => {
            let ttl = if matches!(status, 404 | 410) { policy.negative_ttl } else { policy.default_ttl };
            if ttl.is_zero() {
                return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
            }
            now + ttl
        }
    };
    let stale_defaults =
        CacheMetaDefaults::new(|_| None, secs_u32(policy.stale_while_revalidate), secs_u32(policy.stale_if_error));
    let (swr, sie) = calculate_serve_stale_durations(cc.as_ref(), &stale_defaults);
    let mut header = resp.clone();
    if let Some(cc) = &cc {
        cc.strip_private_headers(&mut header);
    }
    RespCacheable::Cacheable(CacheMeta::new(fresh_until, now, swr, sie, header))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> TtlPolicy {
        TtlPolicy {
            default_ttl: Duration::from_secs(3600),
            negative_ttl: Duration::from_secs(10),
            stale_while_revalidate: Duration::from_secs(5),
            stale_if_error: Duration::from_secs(300),
        }
    }

    fn resp(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn ttl(r: &ResponseHeader) -> Option<(u64, u32, u32)> {
        let now = SystemTime::now();
        match decide(r, &policy(), now) {
            RespCacheable::Cacheable(meta) => Some((
                meta.fresh_until().duration_since(now).map(|d| d.as_secs()).unwrap_or(0),
                meta.stale_while_revalidate_sec(),
                meta.stale_if_error_sec(),
            )),
            RespCacheable::Uncacheable(_) => None,
        }
    }

    #[test]
    fn defaults_apply_without_origin_headers() {
        assert_eq!(ttl(&resp(200, &[])), Some((3600, 5, 300)));
        assert_eq!(ttl(&resp(404, &[])), Some((10, 5, 300)));
    }

    #[test]
    fn origin_headers_win() {
        assert_eq!(ttl(&resp(200, &[("cache-control", "max-age=60")])).map(|t| t.0), Some(60));
        assert_eq!(ttl(&resp(200, &[("cache-control", "max-age=60, s-maxage=120")])).map(|t| t.0), Some(120));
        assert_eq!(
            ttl(&resp(200, &[("cache-control", "max-age=60, stale-while-revalidate=7, stale-if-error=9")])),
            Some((60, 7, 9))
        );
    }

    #[test]
    fn never_stored() {
        for status in [500, 502, 503, 504, 302, 206, 401, 403] {
            assert_eq!(ttl(&resp(status, &[])), None, "status {status}");
        }
        assert_eq!(ttl(&resp(200, &[("cache-control", "no-store")])), None);
        assert_eq!(ttl(&resp(200, &[("cache-control", "private, max-age=60")])), None);
        assert_eq!(ttl(&resp(200, &[("set-cookie", "a=b")])), None);
    }

    #[test]
    fn no_cache_is_stored_but_stale() {
        assert_eq!(ttl(&resp(200, &[("cache-control", "no-cache")])).map(|t| t.0), Some(0));
    }
}
