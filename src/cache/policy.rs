//! Which origin responses are stored, and for how long.
//!
//! In order:
//! 1. Never stored: statuses outside [`cacheable_status`] (so every 5xx), `no-store`, `private`,
//!    and responses that set cookies.
//! 2. A `[[cache.rules]]` rule with `override_origin = true` for the path sets the TTL.
//! 3. Origin `Cache-Control` (s-maxage, max-age) or `Expires`; `no-cache` is stored but always
//!    revalidated.
//! 4. A rule for the path without `override_origin`.
//! 5. Defaults by kind: playlists are stored as *live* (1 s) until their body is seen, then
//!    [`playlist_ttl`] gives VOD/master playlists `vod_playlist_ttl` and live media playlists
//!    `live_playlist_fraction` × `#EXT-X-TARGETDURATION`; 404/410 get `negative_ttl`; every
//!    other cacheable response gets `default_ttl`.
//!
//! The policy is the `[cache]` section itself ([`CacheConfig`]): no copy of its fields.
//! Every lifetime is capped at `max_ttl`. `stale-while-revalidate`/`stale-if-error` come from
//! the response's Cache-Control, else from the config defaults.

use std::time::{Duration, SystemTime};

use pingora_cache::cache_control::{CacheControl, InterpretCacheControl};
use pingora_cache::filters::{calculate_fresh_until, calculate_serve_stale_durations};
use pingora_cache::{CacheMeta, CacheMetaDefaults, NoCacheReason, RespCacheable};
use pingora_http::ResponseHeader;

use crate::config::CacheConfig;

/// Freshness assumed for a playlist until its body says whether it is live.
pub const PLAYLIST_PROVISIONAL_TTL: Duration = Duration::from_secs(1);

/// Attached to the cache meta of a playlist whose TTL is the default: the storage calls
/// [`playlist_ttl`] with the complete body before committing it.
#[derive(Debug, Clone, Copy)]
pub struct PlaylistRefine {
    pub vod_ttl: Duration,
    pub live_fraction: f64,
}

/// Statuses an edge may store.
pub fn cacheable_status(status: u16) -> bool {
    matches!(status, 200 | 203 | 204 | 300 | 301 | 308 | 404 | 410)
}

/// Whether a response is an HLS playlist, by content type or path.
pub fn is_playlist(resp: &ResponseHeader, path: &str) -> bool {
    crate::hls::is_playlist(resp.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), path)
}

fn secs_u32(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// Decide whether `resp` (for the normalised request `path`) is stored, and build its meta.
pub fn decide(resp: &ResponseHeader, path: &str, policy: &CacheConfig, now: SystemTime) -> RespCacheable {
    let status = resp.status.as_u16();
    if !cacheable_status(status) || resp.headers.contains_key(http::header::SET_COOKIE) {
        return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
    }
    let cc = CacheControl::from_resp_headers(resp);
    if cc.as_ref().is_some_and(|cc| cc.no_store() || cc.private()) {
        return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
    }
    let rule = policy.rule_for(path);
    let no_defaults = CacheMetaDefaults::new(|_| None, 0, 0);
    let mut refine = None;
    let fresh_until = match rule {
        Some(r) if r.override_origin => now + r.ttl,
        _ => match calculate_fresh_until(now, cc.as_ref(), resp, false, &no_defaults) {
            Some(t) => t,
            None if cc.as_ref().is_some_and(|cc| cc.no_cache()) => now - Duration::from_secs(1),
            None => {
                let ttl = match rule {
                    Some(r) => r.ttl,
                    None if matches!(status, 404 | 410) => policy.negative_ttl,
                    None if status == 200 && is_playlist(resp, path) => {
                        refine = Some(PlaylistRefine {
                            vod_ttl: policy.vod_playlist_ttl,
                            live_fraction: policy.live_playlist_fraction,
                        });
                        PLAYLIST_PROVISIONAL_TTL
                    }
                    None => policy.default_ttl,
                };
                if ttl.is_zero() {
                    return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
                }
                now + ttl
            }
        },
    };
    let fresh_until = fresh_until.min(now + policy.max_ttl);
    let stale_defaults =
        CacheMetaDefaults::new(|_| None, secs_u32(policy.stale_while_revalidate), secs_u32(policy.stale_if_error));
    let (swr, sie) = calculate_serve_stale_durations(cc.as_ref(), &stale_defaults);
    let cap = secs_u32(policy.max_ttl);
    let mut header = resp.clone();
    if let Some(cc) = &cc {
        cc.strip_private_headers(&mut header);
    }
    let mut meta = CacheMeta::new(fresh_until, now, swr.min(cap), sie.min(cap), header);
    if let Some(r) = refine {
        meta.extensions_mut().insert(r);
    }
    RespCacheable::Cacheable(meta)
}

/// How long a playlist with this body stays fresh: VOD media playlists (`#EXT-X-ENDLIST` or
/// `PLAYLIST-TYPE:VOD`) and master playlists get `vod_ttl`; live media playlists get
/// `live_fraction × TARGETDURATION`; anything unrecognisable keeps the provisional TTL.
pub fn playlist_ttl(body: &[u8], refine: &PlaylistRefine) -> Duration {
    let text = String::from_utf8_lossy(body);
    let mut target = None;
    for line in text.lines() {
        let line = line.trim();
        if line == "#EXT-X-ENDLIST" || line == "#EXT-X-PLAYLIST-TYPE:VOD" || line.starts_with("#EXT-X-STREAM-INF") {
            return refine.vod_ttl;
        }
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            target = v.trim().parse::<f64>().ok().filter(|t| t.is_finite() && *t > 0.0 && *t < 86_400.0);
        }
    }
    match target {
        Some(t) => Duration::from_secs_f64(t * refine.live_fraction).max(Duration::from_millis(100)),
        None => PLAYLIST_PROVISIONAL_TTL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CacheConfig {
        let section = toml::from_str(
            "default_ttl = \"24h\"\nnegative_ttl = \"10s\"\nvod_playlist_ttl = \"1h\"\nlive_playlist_fraction = 0.5\n\
             max_ttl = \"7d\"\nstale_while_revalidate = \"5s\"\nstale_if_error = \"5m\"\n\
             [[rules]]\nprefix = \"/live/\"\nttl = \"2s\"\n\
             [[rules]]\nprefix = \"/live/sports/\"\nttl = \"1s\"\noverride_origin = true\n",
        )
        .unwrap();
        CacheConfig::build(section, std::path::Path::new("/")).unwrap()
    }

    fn resp(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn decide_at(r: &ResponseHeader, path: &str) -> Option<(u64, u32, u32, bool)> {
        let now = SystemTime::now();
        match decide(r, path, &policy(), now) {
            RespCacheable::Cacheable(meta) => Some((
                meta.fresh_until().duration_since(now).map(|d| d.as_secs()).unwrap_or(0),
                meta.stale_while_revalidate_sec(),
                meta.stale_if_error_sec(),
                meta.extensions().get::<PlaylistRefine>().is_some(),
            )),
            RespCacheable::Uncacheable(_) => None,
        }
    }

    fn ttl(r: &ResponseHeader) -> Option<u64> {
        decide_at(r, "/v/x.ts").map(|t| t.0)
    }

    #[test]
    fn defaults_apply_without_origin_headers() {
        assert_eq!(decide_at(&resp(200, &[]), "/v/x.ts"), Some((86_400, 5, 300, false)));
        assert_eq!(decide_at(&resp(404, &[]), "/v/x.ts"), Some((10, 5, 300, false)));
    }

    #[test]
    fn origin_headers_win_over_defaults_and_plain_rules() {
        assert_eq!(ttl(&resp(200, &[("cache-control", "max-age=60")])), Some(60));
        assert_eq!(ttl(&resp(200, &[("cache-control", "max-age=60, s-maxage=120")])), Some(120));
        assert_eq!(
            decide_at(&resp(200, &[("cache-control", "max-age=60, stale-while-revalidate=7, stale-if-error=9")]), "/v/x"),
            Some((60, 7, 9, false))
        );
        assert_eq!(decide_at(&resp(200, &[("cache-control", "max-age=60")]), "/live/a.ts").map(|t| t.0), Some(60));
        assert_eq!(decide_at(&resp(200, &[]), "/live/a.ts").map(|t| t.0), Some(2));
    }

    #[test]
    fn override_rules_beat_origin_headers() {
        assert_eq!(decide_at(&resp(200, &[("cache-control", "max-age=600")]), "/live/sports/a.ts").map(|t| t.0), Some(1));
    }

    #[test]
    fn lifetimes_are_capped() {
        assert_eq!(ttl(&resp(200, &[("cache-control", "max-age=99999999")])), Some(7 * 86_400));
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
        assert_eq!(ttl(&resp(200, &[("cache-control", "no-cache")])), Some(0));
    }

    #[test]
    fn playlists_are_provisional_until_their_body_is_seen() {
        let r = resp(200, &[("content-type", "application/vnd.apple.mpegurl")]);
        assert_eq!(decide_at(&r, "/v/index"), Some((1, 5, 300, true)));
        assert_eq!(decide_at(&resp(200, &[]), "/v/index.m3u8").map(|t| t.3), Some(true));
        // Origin headers: no refinement.
        let r = resp(200, &[("content-type", "application/vnd.apple.mpegurl"), ("cache-control", "max-age=2")]);
        assert_eq!(decide_at(&r, "/v/index.m3u8"), Some((2, 5, 300, false)));
    }

    #[test]
    fn playlist_ttl_by_kind() {
        let refine = PlaylistRefine { vod_ttl: Duration::from_secs(3600), live_fraction: 0.5 };
        let vod = b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\na.ts\n#EXT-X-ENDLIST\n";
        assert_eq!(playlist_ttl(vod, &refine), Duration::from_secs(3600));
        let master = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow.m3u8\n";
        assert_eq!(playlist_ttl(master, &refine), Duration::from_secs(3600));
        let live = b"#EXTM3U\r\n#EXT-X-TARGETDURATION:6\r\n#EXT-X-MEDIA-SEQUENCE:100\r\n#EXTINF:6,\r\na.ts\r\n";
        assert_eq!(playlist_ttl(live, &refine), Duration::from_secs(3));
        assert_eq!(playlist_ttl(b"garbage", &refine), PLAYLIST_PROVISIONAL_TTL);
        assert_eq!(playlist_ttl(b"#EXT-X-TARGETDURATION:nan\n", &refine), PLAYLIST_PROVISIONAL_TTL);
    }
}
