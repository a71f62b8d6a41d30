//! Which origin responses are stored, and for how long (the RFC rules themselves are in
//! [`super::freshness`]).
//!
//! The directives come from the first valid targeted field (`[cache] targeted_field`, then
//! `CDN-Cache-Control`, RFC 9213), else `Cache-Control` and `Expires`. In order:
//! 1. Never stored: statuses outside [`cacheable_status`] (so every 5xx), `no-store`, `private`,
//!    responses that set cookies, and responses to requests with `Authorization` unless they
//!    say `public`, `s-maxage` or `must-revalidate` (RFC 9111 §3.5).
//! 2. A `[[cache.rules]]` rule with `override_origin = true` for the path sets the TTL.
//! 3. The origin's explicit lifetime: `no-cache` (0), `s-maxage`, `max-age`, `Expires − Date`;
//!    a malformed one is 0. Zero means stored but revalidated on every use.
//! 4. Only without an explicit lifetime, heuristics (RFC 9111 §4.2.2): a rule for the path
//!    without `override_origin`, else defaults by kind: playlists (HLS and DASH MPDs) are
//!    stored as *live* (1 s) until their body is seen, then [`playlist_ttl`] gives VOD/master
//!    playlists and static MPDs `vod_playlist_ttl`, live media playlists
//!    `live_playlist_fraction` × `#EXT-X-TARGETDURATION` and dynamic MPDs
//!    `live_playlist_fraction` × `minimumUpdatePeriod`; 404/410 get `negative_ttl`; every other
//!    cacheable response gets `default_ttl` (a CDN choice: RFC 9111 suggests 10 % of the time
//!    since `Last-Modified`, which for a live segment written a second ago would mean
//!    revalidating it every 100 ms).
//!
//! Answers to LL-HLS blocking playlist reloads (`_HLS_msn`, [`crate::hls::delivery`]) name a
//! fixed point of the stream, so without an explicit lifetime a live one lives
//! [`BLOCKING_TARGETS`] × `#EXT-X-TARGETDURATION` (RFC 8216bis §6.2.5.2 suggests six target
//! durations), and a refusal of a media sequence number not produced yet (404/410, or the 400
//! the RFC asks for one too far ahead) is kept at most [`BLOCKING_NEGATIVE_TTL`]: long
//! enough to answer a herd of players with one origin request, short enough not to deny the
//! part once it exists.
//!
//! A Low-Latency HLS part (a path a stored live playlist lists as `#EXT-X-PART` or part
//! `#EXT-X-PRELOAD-HINT`, [`super::parts`]) is kept at most its part lifetime (a few target
//! durations), whatever its own lifetime says, unless an `override_origin` rule sets one: it
//! is asked for only while its playlist lists it. To learn them, every stored playlist
//! carries [`ListsParts`] to the storage, which reads its parts when its body is complete.
//!
//! The policy is the `[cache]` section itself ([`CacheConfig`]): no copy of its fields.
//! Every lifetime is capped at `max_ttl`, and the response's age on arrival (its upstream's
//! `Age`/`Date`, RFC 9111 §4.2.3) is taken off it. `stale-while-revalidate`/`stale-if-error`
//! come from the response, else from the config defaults, and are 0 where the origin forbade
//! serving stale (see [`freshness::stale_windows`]); a live media playlist with the default
//! lifetime is never served stale while revalidating ([`playlist_freshness`]).

use std::time::{Duration, SystemTime};

use pingora_cache::{CacheMeta, NoCacheReason, RespCacheable};
use pingora_http::{RequestHeader, ResponseHeader};

use super::freshness;
use crate::config::CacheConfig;

/// Freshness assumed for a playlist until its body says whether it is live.
pub const PLAYLIST_PROVISIONAL_TTL: Duration = Duration::from_secs(1);

/// The lifetime of a live playlist answering a blocking reload, in target durations.
pub const BLOCKING_TARGETS: f64 = 6.0;

/// The longest a refusal (404, 410, 400) of a blocking reload is kept.
pub const BLOCKING_NEGATIVE_TTL: Duration = Duration::from_secs(1);

/// Attached to the cache meta of a playlist whose TTL is the default: the storage calls
/// [`playlist_ttl`] with the complete body before committing it.
#[derive(Debug, Clone, Copy)]
pub struct PlaylistRefine {
    pub vod_ttl: Duration,
    pub live_fraction: f64,
    /// The longest a live playlist may be fresh: `max_ttl` for a blocking reload's answer
    /// (so it never outlives what [`longest_servable`] allows for), else unbounded.
    pub live_cap: Duration,
}

/// Attached to the cache meta of every stored playlist: its path, against which the storage
/// resolves the parts its body lists ([`super::parts`]).
#[derive(Debug, Clone)]
pub struct ListsParts(pub std::sync::Arc<str>);

/// Statuses an edge may store.
pub fn cacheable_status(status: u16) -> bool {
    matches!(status, 200 | 203 | 204 | 300 | 301 | 308 | 404 | 410)
}

/// Whether a response is an HLS playlist or a DASH MPD, by content type or path.
pub fn is_playlist(resp: &ResponseHeader, path: &str) -> bool {
    let content_type = resp
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    crate::hls::is_playlist(content_type, path) || crate::dash::is_mpd(content_type, path)
}

fn secs_u32(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// What the policy knows of the exchange besides the response.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    /// When the response (its header) arrived.
    pub now: SystemTime,
    /// How long the origin took to answer (request sent → response header), part of the
    /// response's corrected initial age (RFC 9111 §4.2.3).
    pub response_delay: Duration,
    /// The request carried `Authorization` (RFC 9111 §3.5).
    pub authorization: bool,
    /// The request was an LL-HLS blocking playlist reload (`_HLS_msn`).
    pub blocking: bool,
    /// The path is an LL-HLS part a live playlist listed lately: the longest it may be kept
    /// ([`super::parts::PartPaths::lifetime`]).
    pub part: Option<Duration>,
}

impl Exchange {
    /// An exchange at `now` without `Authorization` that took no time.
    pub fn at(now: SystemTime) -> Exchange {
        Exchange {
            now,
            response_delay: Duration::ZERO,
            authorization: false,
            blocking: false,
            part: None,
        }
    }
}

/// Whether a request carries `Authorization` (the edge's own tokens travel in the path,
/// the query or a cookie, never there).
pub fn has_authorization(req: &RequestHeader) -> bool {
    req.headers.contains_key(http::header::AUTHORIZATION)
}

/// Whether a stored response may answer this request (RFC 9111 §3.5): a request with
/// `Authorization` is answered from the cache only when the stored response says a shared
/// cache may reuse it (`public`, `s-maxage`, `must-revalidate`); otherwise it goes to the
/// origin (and its response is stored only if it says so, see [`decide`]).
pub fn may_serve_stored(
    req: &RequestHeader,
    stored: &ResponseHeader,
    policy: &CacheConfig,
) -> bool {
    !has_authorization(req)
        || freshness::governing(&stored.headers, &policy.targeted)
            .directives
            .allows_authorized()
}

/// Decide whether `resp` (for the normalised request `path`) is stored, and build its meta.
///
/// The stored header carries the response's corrected initial age as `Age` (absent when 0):
/// answers from the cache add their resident time to it.
pub fn decide(
    resp: &ResponseHeader,
    path: &str,
    policy: &CacheConfig,
    ex: Exchange,
) -> RespCacheable {
    let now = ex.now;
    let status = resp.status.as_u16();
    let refused_block = ex.blocking && matches!(status, 400 | 404 | 410);
    if !(cacheable_status(status) || refused_block)
        || resp.headers.contains_key(http::header::SET_COOKIE)
    {
        return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
    }
    let governing = freshness::governing(&resp.headers, &policy.targeted);
    let d = &governing.directives;
    if d.no_store || d.private || (ex.authorization && !d.allows_authorized()) {
        return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
    }
    let explicit = freshness::explicit_lifetime(&governing, &resp.headers, now);
    // The wait before a blocking reload's answer is the origin holding it until the part
    // exists (RFC 8216bis §6.2.5.2): the playlist is made when it is sent, so that wait is
    // no age. Counted, a 1 s hold would make the answer a second old on arrival, which
    // hls.js's "CDN tune-in" reads from `Age` as a second behind live and asks for a part a
    // second ahead — a request held that long times out in hls.js (after 3 part targets).
    let delay = if ex.blocking {
        Duration::ZERO
    } else {
        ex.response_delay
    };
    let age = freshness::corrected_initial_age(&resp.headers, now, delay);
    let rule = policy.rule_for(path);
    let mut refine = None;
    // An operator's override is this edge's lifetime from arrival; the origin's lifetime
    // counts from the response's generation, so its age is taken off (§4.2.3).
    let (lifetime, aged) = match (rule, explicit) {
        (Some(r), _) if r.override_origin => (r.ttl, false),
        (_, Some(l)) => (l, true),
        // Heuristic freshness (§4.2.2): only without an explicit lifetime, and every status
        // in `cacheable_status` is heuristically cacheable.
        (rule, None) => {
            let ttl = match rule {
                Some(r) => r.ttl,
                None if refused_block => policy.negative_ttl.min(BLOCKING_NEGATIVE_TTL),
                None if matches!(status, 404 | 410) => policy.negative_ttl,
                None if status == 200 && is_playlist(resp, path) => {
                    refine = Some(PlaylistRefine {
                        vod_ttl: policy.vod_playlist_ttl,
                        live_fraction: if ex.blocking {
                            BLOCKING_TARGETS
                        } else {
                            policy.live_playlist_fraction
                        },
                        live_cap: if ex.blocking {
                            policy.max_ttl
                        } else {
                            Duration::MAX
                        },
                    });
                    PLAYLIST_PROVISIONAL_TTL
                }
                None => policy.default_ttl,
            };
            if ttl.is_zero() {
                return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
            }
            // A playlist's heuristic lifetime counts from the arrival of its body (see
            // [`playlist_freshness`]), so the provisional one until then is not aged either:
            // aged, an answer a second old (a shield's `Age: 1`) would be stored stale and
            // every request until the body is in would go to the origin.
            (ttl, refine.is_none())
        }
    };
    let lifetime = match (ex.part, rule) {
        (Some(_), Some(r)) if r.override_origin => lifetime,
        (Some(part), _) => lifetime.min(part),
        (None, _) => lifetime,
    };
    let lifetime = lifetime.min(policy.max_ttl);
    let remaining = if aged {
        lifetime.saturating_sub(age)
    } else {
        lifetime
    };
    // Zero left: stored, but stale at once, so every use revalidates.
    let fresh_until = if remaining.is_zero() {
        now - Duration::from_secs(1)
    } else {
        now + remaining
    };
    let (swr, sie) = freshness::stale_windows(
        d,
        explicit,
        policy.stale_while_revalidate,
        policy.stale_if_error,
    );
    // A stale refusal of a future msn would deny a part that exists by then.
    let swr = if refused_block && explicit.is_none() {
        Duration::ZERO
    } else {
        swr
    };
    let cap = secs_u32(policy.max_ttl);
    let mut header = resp.clone();
    for name in &d.strip {
        header.remove_header(name.as_str());
    }
    header.remove_header(&http::header::AGE);
    if age.as_secs() > 0 {
        // Cannot fail: a number is a valid header value.
        let _ = header.insert_header(http::header::AGE, age.as_secs().to_string());
    }
    let mut meta = CacheMeta::new(
        fresh_until,
        now,
        secs_u32(swr).min(cap),
        secs_u32(sie).min(cap),
        header,
    );
    if let Some(r) = refine {
        meta.extensions_mut().insert(r);
    }
    if status == 200 && is_playlist(resp, path) {
        meta.extensions_mut().insert(ListsParts(path.into()));
    }
    RespCacheable::Cacheable(meta)
}

/// How long a playlist with this body stays fresh: VOD media playlists (`#EXT-X-ENDLIST` or
/// `PLAYLIST-TYPE:VOD`) and master playlists get `vod_ttl`; live media playlists get
/// `live_fraction × TARGETDURATION`. An MPD ([`crate::dash::refresh`]): static (or dynamic
/// without updates) gets `vod_ttl`, dynamic `live_fraction × minimumUpdatePeriod`. Anything
/// unrecognisable keeps the provisional TTL.
pub fn playlist_ttl(body: &[u8], refine: &PlaylistRefine) -> Duration {
    refined(body, refine).0
}

/// [`playlist_ttl`], and whether the body is a live manifest (a live media playlist or a
/// dynamic MPD that updates).
fn refined(body: &[u8], refine: &PlaylistRefine) -> (Duration, bool) {
    if body.trim_ascii_start().starts_with(b"<") {
        return match crate::dash::refresh(body) {
            Some(crate::dash::Refresh::Fixed) => (refine.vod_ttl, false),
            Some(crate::dash::Refresh::Every(period)) => (live(period.as_secs_f64(), refine), true),
            None => (PLAYLIST_PROVISIONAL_TTL, false),
        };
    }
    let text = String::from_utf8_lossy(body);
    let mut target = None;
    for line in text.lines() {
        let line = line.trim();
        if line == "#EXT-X-ENDLIST"
            || line == "#EXT-X-PLAYLIST-TYPE:VOD"
            || line.starts_with("#EXT-X-STREAM-INF")
        {
            return (refine.vod_ttl, false);
        }
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            target = v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|t| t.is_finite() && *t > 0.0 && *t < 86_400.0);
        }
    }
    match target {
        Some(t) => (live(t, refine), true),
        None => (PLAYLIST_PROVISIONAL_TTL, false),
    }
}

/// The TTL of a live manifest that changes every `period` seconds (under a day), within the
/// cap (`live_cap`: a blocking reload's answer lives longer, never past `max_ttl`).
fn live(period: f64, refine: &PlaylistRefine) -> Duration {
    Duration::from_secs_f64(period.min(86_400.0) * refine.live_fraction)
        .max(Duration::from_millis(100))
        .min(refine.live_cap)
}

/// A playlist's freshness from its body ([`playlist_ttl`]) and its `stale-while-revalidate`
/// window: none for a live media playlist (or dynamic MPD), whose stale copy is a player behind live (with a
/// lifetime of half a target duration, every reload would get the previous playlist while
/// a background refresh fetched the next one); a live playlist past its lifetime waits for
/// the origin (one request, through the cache lock) instead. `stale-if-error` is unchanged.
pub fn playlist_freshness(body: &[u8], refine: &PlaylistRefine, swr: u32) -> (Duration, u32) {
    let (ttl, live) = refined(body, refine);
    (ttl, if live { 0 } else { swr })
}

/// The longest an object may be served after it was stored or last revalidated: the longest
/// freshness lifetime (`max_ttl` caps every lifetime the policy gives, but a playlist's is set
/// after the cap from its body: `vod_playlist_ttl`, or `live_playlist_fraction` of a target
/// duration under a day; a blocking reload's answer is capped at `max_ttl`) plus the longest stale window (`stale-while-revalidate` and
/// `stale-if-error` are capped at `max_ttl`). A purge older than this matches no object that
/// may still be served, so the ban list drops it ([`super::bans`]).
pub fn longest_servable(policy: &CacheConfig) -> Duration {
    let live_playlist = Duration::from_secs_f64(86_400.0 * policy.live_playlist_fraction);
    let fresh = policy
        .max_ttl
        .max(policy.vod_playlist_ttl)
        .max(live_playlist)
        .max(PLAYLIST_PROVISIONAL_TTL);
    fresh.saturating_add(policy.max_ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CacheConfig {
        let section = toml::from_str(
            "default_ttl = \"24h\"\nnegative_ttl = \"10s\"\nvod_playlist_ttl = \"1h\"\nlive_playlist_fraction = 0.5\n\
             max_ttl = \"7d\"\nstale_while_revalidate = \"5s\"\nstale_if_error = \"5m\"\n\
             targeted_field = \"Edge-Cache-Control\"\n\
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
        decide_with(r, path, Exchange::at(SystemTime::now()))
    }

    fn decide_with(r: &ResponseHeader, path: &str, ex: Exchange) -> Option<(u64, u32, u32, bool)> {
        let now = ex.now;
        match decide(r, path, &policy(), ex) {
            RespCacheable::Cacheable(meta) => Some((
                meta.fresh_until()
                    .duration_since(now)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
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
        assert_eq!(
            decide_at(&resp(200, &[]), "/v/x.ts"),
            Some((86_400, 5, 300, false))
        );
        assert_eq!(
            decide_at(&resp(404, &[]), "/v/x.ts"),
            Some((10, 5, 300, false))
        );
    }

    #[test]
    fn origin_headers_win_over_defaults_and_plain_rules() {
        assert_eq!(
            ttl(&resp(200, &[("cache-control", "max-age=60")])),
            Some(60)
        );
        assert_eq!(
            ttl(&resp(200, &[("cache-control", "max-age=60, s-maxage=120")])),
            Some(120)
        );
        assert_eq!(
            decide_at(
                &resp(
                    200,
                    &[(
                        "cache-control",
                        "max-age=60, stale-while-revalidate=7, stale-if-error=9"
                    )]
                ),
                "/v/x"
            ),
            Some((60, 7, 9, false))
        );
        assert_eq!(
            decide_at(&resp(200, &[("cache-control", "max-age=60")]), "/live/a.ts").map(|t| t.0),
            Some(60)
        );
        assert_eq!(
            decide_at(&resp(200, &[]), "/live/a.ts").map(|t| t.0),
            Some(2)
        );
    }

    #[test]
    fn override_rules_beat_origin_headers() {
        assert_eq!(
            decide_at(
                &resp(200, &[("cache-control", "max-age=600")]),
                "/live/sports/a.ts"
            )
            .map(|t| t.0),
            Some(1)
        );
    }

    #[test]
    fn lifetimes_are_capped() {
        assert_eq!(
            ttl(&resp(200, &[("cache-control", "max-age=99999999")])),
            Some(7 * 86_400)
        );
    }

    #[test]
    fn the_longest_servable_lifetime_bounds_every_lifetime_and_stale_window() {
        let p = policy();
        assert_eq!(longest_servable(&p), Duration::from_secs(14 * 86_400));
        // A playlist's TTL is set after the max_ttl cap: it can be the longer one.
        let mut short = policy();
        short.max_ttl = Duration::from_secs(60);
        short.vod_playlist_ttl = Duration::from_secs(3600);
        assert_eq!(
            longest_servable(&short),
            Duration::from_secs(86_400 / 2 + 60),
            "a live playlist: half a day"
        );
        short.vod_playlist_ttl = Duration::from_secs(2 * 86_400);
        assert_eq!(
            longest_servable(&short),
            Duration::from_secs(2 * 86_400 + 60)
        );
        // Every lifetime and window the policy hands out fits.
        let r = resp(
            200,
            &[(
                "cache-control",
                "max-age=999999999, stale-while-revalidate=999999999, stale-if-error=999999999",
            )],
        );
        let (ttl, swr, sie, _) = decide_at(&r, "/v/a.ts").unwrap();
        assert!(Duration::from_secs(ttl + u64::from(swr.max(sie))) <= longest_servable(&p));
    }

    #[test]
    fn never_stored() {
        for status in [500, 502, 503, 504, 302, 206, 401, 403] {
            assert_eq!(ttl(&resp(status, &[])), None, "status {status}");
        }
        assert_eq!(ttl(&resp(200, &[("cache-control", "no-store")])), None);
        assert_eq!(
            ttl(&resp(200, &[("cache-control", "private, max-age=60")])),
            None
        );
        assert_eq!(ttl(&resp(200, &[("set-cookie", "a=b")])), None);
    }

    #[test]
    fn no_cache_is_stored_but_stale() {
        assert_eq!(ttl(&resp(200, &[("cache-control", "no-cache")])), Some(0));
    }

    #[test]
    fn no_stale_defaults_where_the_origin_wants_revalidation() {
        // The configured defaults (5 s / 300 s) never apply to these.
        for cc in [
            "no-cache",
            "max-age=60, must-revalidate",
            "max-age=60, proxy-revalidate",
            "s-maxage=60",
        ] {
            let got =
                decide_at(&resp(200, &[("cache-control", cc)]), "/v/x.ts").map(|t| (t.1, t.2));
            assert_eq!(got, Some((0, 0)), "{cc}");
        }
        assert_eq!(
            decide_at(&resp(200, &[("cache-control", "max-age=0")]), "/v/x.ts"),
            Some((0, 0, 300, false))
        );
        // A malformed lifetime is stale, not a day of default_ttl.
        assert_eq!(
            ttl(&resp(200, &[("cache-control", "max-age=soon")])),
            Some(0)
        );
    }

    #[test]
    fn expires_counts_from_the_origins_date() {
        let now = SystemTime::now();
        let date = httpdate::fmt_http_date(now + Duration::from_secs(3600));
        let expires = httpdate::fmt_http_date(now + Duration::from_secs(3600 + 30));
        let got = ttl(&resp(200, &[("date", &date), ("expires", &expires)])).unwrap();
        assert!((29..=30).contains(&got), "{got}");
        let past = httpdate::fmt_http_date(now - Duration::from_secs(10));
        assert_eq!(
            decide_at(&resp(200, &[("expires", &past)]), "/v/x.ts"),
            Some((0, 0, 300, false))
        );
    }

    #[test]
    fn the_upstream_age_is_taken_off_the_lifetime() {
        let now = SystemTime::now();
        let ex = Exchange {
            now,
            response_delay: Duration::from_secs(1),
            authorization: false,
            blocking: false,
            part: None,
        };
        let r = resp(200, &[("cache-control", "max-age=60"), ("age", "20")]);
        assert_eq!(decide_with(&r, "/v/x.ts", ex).map(|t| t.0), Some(39));
        let RespCacheable::Cacheable(meta) = decide(&r, "/v/x.ts", &policy(), ex) else {
            panic!()
        };
        assert_eq!(
            meta.headers().get("age").unwrap(),
            "21",
            "stored: the corrected initial age"
        );
        // Older than its lifetime already: stored stale.
        let r = resp(200, &[("cache-control", "max-age=60"), ("age", "90")]);
        assert_eq!(decide_with(&r, "/v/x.ts", ex).map(|t| t.0), Some(0));
        // Heuristic lifetimes too; an operator's override counts from arrival.
        assert_eq!(
            decide_with(&resp(200, &[("age", "400")]), "/v/x.ts", ex).map(|t| t.0),
            Some(86_400 - 401)
        );
        assert_eq!(
            decide_with(&resp(200, &[("age", "400")]), "/live/sports/a.ts", ex).map(|t| t.0),
            Some(1)
        );
        let RespCacheable::Cacheable(meta) =
            decide(&resp(200, &[]), "/v/x.ts", &policy(), Exchange::at(now))
        else {
            panic!()
        };
        assert!(meta.headers().get("age").is_none());
    }

    #[test]
    fn authorization_needs_the_response_to_allow_sharing() {
        let ex = Exchange {
            authorization: true,
            ..Exchange::at(SystemTime::now())
        };
        let with = |cc: &str| {
            decide_with(&resp(200, &[("cache-control", cc)]), "/v/x.ts", ex).map(|t| t.0)
        };
        assert_eq!(with("max-age=60"), None);
        assert_eq!(decide_with(&resp(200, &[]), "/v/x.ts", ex), None);
        assert_eq!(with("public, max-age=60"), Some(60));
        assert_eq!(with("s-maxage=60"), Some(60));
        assert_eq!(with("max-age=60, must-revalidate"), Some(60));
        // Request side.
        let mut req = RequestHeader::build("GET", b"/v/x.ts", None).unwrap();
        let stored = resp(200, &[("cache-control", "max-age=60")]);
        assert!(may_serve_stored(&req, &stored, &policy()));
        req.insert_header("authorization", "Bearer x").unwrap();
        assert!(!may_serve_stored(&req, &stored, &policy()));
        assert!(may_serve_stored(
            &req,
            &resp(200, &[("cache-control", "public, max-age=60")]),
            &policy()
        ));
        assert!(may_serve_stored(
            &req,
            &resp(200, &[("cdn-cache-control", "public")]),
            &policy()
        ));
    }

    #[test]
    fn targeted_fields_decide_for_the_edge() {
        // Cache-Control private, CDN-Cache-Control says the CDN may keep it for 10 minutes.
        let r = resp(
            200,
            &[
                ("cache-control", "private, max-age=5"),
                ("cdn-cache-control", "max-age=600"),
            ],
        );
        assert_eq!(ttl(&r), Some(600));
        let r = resp(
            200,
            &[
                ("cache-control", "max-age=600"),
                ("cdn-cache-control", "no-store"),
            ],
        );
        assert_eq!(ttl(&r), None);
        let r = resp(
            200,
            &[
                ("edge-cache-control", "max-age=7"),
                ("cdn-cache-control", "max-age=600"),
            ],
        );
        assert_eq!(ttl(&r), Some(7));
        // Qualified private: stored without the named fields.
        let r = resp(
            200,
            &[
                ("cache-control", "private=\"x-user\", max-age=60"),
                ("x-user", "alice"),
            ],
        );
        let RespCacheable::Cacheable(meta) =
            decide(&r, "/v/x.ts", &policy(), Exchange::at(SystemTime::now()))
        else {
            panic!()
        };
        assert!(meta.headers().get("x-user").is_none());
    }

    #[test]
    fn playlists_are_provisional_until_their_body_is_seen() {
        let r = resp(200, &[("content-type", "application/vnd.apple.mpegurl")]);
        assert_eq!(decide_at(&r, "/v/index"), Some((1, 5, 300, true)));
        assert_eq!(
            decide_at(&resp(200, &[]), "/v/index.m3u8").map(|t| t.3),
            Some(true)
        );
        // Origin headers: no refinement.
        let r = resp(
            200,
            &[
                ("content-type", "application/vnd.apple.mpegurl"),
                ("cache-control", "max-age=2"),
            ],
        );
        assert_eq!(decide_at(&r, "/v/index.m3u8"), Some((2, 5, 300, false)));
    }

    #[test]
    fn playlist_ttl_by_kind() {
        let refine = PlaylistRefine {
            vod_ttl: Duration::from_secs(3600),
            live_fraction: 0.5,
            live_cap: Duration::MAX,
        };
        let vod = b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\na.ts\n#EXT-X-ENDLIST\n";
        assert_eq!(playlist_ttl(vod, &refine), Duration::from_secs(3600));
        let master = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow.m3u8\n";
        assert_eq!(playlist_ttl(master, &refine), Duration::from_secs(3600));
        let live = b"#EXTM3U\r\n#EXT-X-TARGETDURATION:6\r\n#EXT-X-MEDIA-SEQUENCE:100\r\n#EXTINF:6,\r\na.ts\r\n";
        assert_eq!(playlist_ttl(live, &refine), Duration::from_secs(3));
        assert_eq!(playlist_ttl(b"garbage", &refine), PLAYLIST_PROVISIONAL_TTL);
        assert_eq!(
            playlist_ttl(b"#EXT-X-TARGETDURATION:nan\n", &refine),
            PLAYLIST_PROVISIONAL_TTL
        );
    }

    #[test]
    fn mpd_ttl_by_type() {
        let refine = PlaylistRefine {
            vod_ttl: Duration::from_secs(3600),
            live_fraction: 0.5,
            live_cap: Duration::MAX,
        };
        let stat = b"<?xml version=\"1.0\"?>\n<MPD type=\"static\" mediaPresentationDuration=\"PT20S\"><Period/></MPD>\n";
        assert_eq!(playlist_ttl(stat, &refine), Duration::from_secs(3600));
        let live = b"\n<MPD type=\"dynamic\" minimumUpdatePeriod=\"PT6S\"><Period/></MPD>";
        assert_eq!(playlist_ttl(live, &refine), Duration::from_secs(3));
        let every_segment = b"<MPD type=\"dynamic\" minimumUpdatePeriod=\"PT0S\"/>";
        assert_eq!(
            playlist_ttl(every_segment, &refine),
            Duration::from_millis(100)
        );
        assert_eq!(playlist_ttl(b"<html/>", &refine), PLAYLIST_PROVISIONAL_TTL);
        let r = resp(200, &[("content-type", "application/dash+xml")]);
        assert_eq!(
            decide_at(&r, "/v/manifest").map(|t| t.3),
            Some(true),
            "refined by body"
        );
        assert_eq!(
            decide_at(&resp(200, &[]), "/v/a.mpd").map(|t| t.3),
            Some(true)
        );
    }

    #[test]
    fn live_playlists_are_not_served_stale_while_revalidating() {
        let refine = PlaylistRefine {
            vod_ttl: Duration::from_secs(3600),
            live_fraction: 0.5,
            live_cap: Duration::MAX,
        };
        let live = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n";
        assert_eq!(
            playlist_freshness(live, &refine, 5),
            (Duration::from_secs(1), 0)
        );
        let vod = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-ENDLIST\n";
        assert_eq!(
            playlist_freshness(vod, &refine, 5),
            (Duration::from_secs(3600), 5)
        );
        assert_eq!(
            playlist_freshness(b"garbage", &refine, 5),
            (PLAYLIST_PROVISIONAL_TTL, 5)
        );
    }

    #[test]
    fn blocking_reloads_keep_answers_longer_and_refusals_briefly() {
        let blocking = Exchange {
            blocking: true,
            ..Exchange::at(SystemTime::now())
        };
        let playlist = resp(200, &[("content-type", "application/vnd.apple.mpegurl")]);
        let meta = |r: &ResponseHeader, ex: Exchange| match decide(r, "/ll/p.m3u8", &policy(), ex) {
            RespCacheable::Cacheable(m) => Some(m),
            RespCacheable::Uncacheable(_) => None,
        };
        let refine = |ex| {
            *meta(&playlist, ex)
                .unwrap()
                .extensions()
                .get::<PlaylistRefine>()
                .unwrap()
        };
        let live = b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\na.ts\n";
        assert_eq!(
            playlist_ttl(live, &refine(blocking)),
            Duration::from_secs(24),
            "six target durations"
        );
        assert_eq!(
            playlist_ttl(live, &refine(Exchange::at(SystemTime::now()))),
            Duration::from_secs(2),
            "a plain reload keeps live_playlist_fraction"
        );
        let vod = b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-ENDLIST\n";
        assert_eq!(
            playlist_ttl(vod, &refine(blocking)),
            Duration::from_secs(3600)
        );
        // A refusal of a future msn: briefly (negative_ttl is 10 s), 400 included.
        for status in [400, 404, 410] {
            let m = meta(&resp(status, &[]), blocking).expect("stored");
            let left = m.fresh_until().duration_since(blocking.now).unwrap();
            assert!(left <= BLOCKING_NEGATIVE_TTL, "{status}: {left:?}");
            assert_eq!(
                m.stale_while_revalidate_sec(),
                0,
                "{status}: never served stale"
            );
        }
        assert!(meta(&resp(400, &[]), Exchange::at(SystemTime::now())).is_none());
        assert_eq!(
            decide_at(&resp(404, &[]), "/ll/p.m3u8").map(|t| t.0),
            Some(10)
        );
        // The origin's own lifetime still wins.
        let m = meta(&resp(404, &[("cache-control", "max-age=5")]), blocking).unwrap();
        assert_eq!(
            m.fresh_until().duration_since(blocking.now).unwrap(),
            Duration::from_secs(5)
        );
        assert!(meta(&resp(503, &[]), blocking).is_none());
        // The origin's hold before a blocking answer is no age; another request's wait is.
        let six = resp(200, &[("cache-control", "max-age=6")]);
        let held = |blocking| Exchange {
            blocking,
            response_delay: Duration::from_secs(2),
            ..Exchange::at(SystemTime::now())
        };
        let left = |ex: Exchange| {
            let m = meta(&six, ex).unwrap();
            m.fresh_until().duration_since(ex.now).unwrap()
        };
        assert_eq!(
            left(held(true)),
            Duration::from_secs(6),
            "held 2 s, still 6 s"
        );
        assert_eq!(
            left(held(false)),
            Duration::from_secs(4),
            "took 2 s: 4 s left"
        );
        // A playlist's provisional lifetime (until its body says live or VOD) is not aged.
        let aged = resp(
            200,
            &[
                ("content-type", "application/vnd.apple.mpegurl"),
                ("age", "5"),
            ],
        );
        let now = SystemTime::now();
        let m = meta(&aged, Exchange::at(now)).unwrap();
        assert_eq!(
            m.fresh_until().duration_since(now).unwrap(),
            PLAYLIST_PROVISIONAL_TTL
        );
    }

    #[test]
    fn parts_are_kept_their_part_lifetime_and_playlists_name_theirs() {
        let part = Exchange {
            part: Some(Duration::from_secs(3)),
            ..Exchange::at(SystemTime::now())
        };
        let secs = |headers: &[(&str, &str)], path: &str, ex: Exchange| {
            decide_with(&resp(200, headers), path, ex).map(|t| t.0)
        };
        // Whatever the origin or the defaults say, at most the part lifetime...
        assert_eq!(
            secs(&[("cache-control", "max-age=60")], "/ll/s1.0.m4s", part),
            Some(3)
        );
        assert_eq!(secs(&[], "/ll/s1.0.m4s", part), Some(3));
        assert_eq!(
            secs(&[("cache-control", "max-age=1")], "/ll/s1.0.m4s", part),
            Some(1)
        );
        // ... and a segment (not a known part) keeps its own.
        let plain = Exchange::at(SystemTime::now());
        assert_eq!(
            secs(&[("cache-control", "max-age=60")], "/ll/s1.m4s", plain),
            Some(60)
        );
        // An operator's override still decides.
        let short = Exchange {
            part: Some(Duration::from_millis(500)),
            ..plain
        };
        assert_eq!(
            secs(
                &[("cache-control", "max-age=60")],
                "/live/sports/s1.0.m4s",
                short
            ),
            Some(1)
        );
        // A stored playlist carries its path to the storage; other objects do not.
        let lists = |r: &ResponseHeader, path: &str| match decide(r, path, &policy(), plain) {
            RespCacheable::Cacheable(m) => {
                m.extensions().get::<ListsParts>().map(|l| l.0.to_string())
            }
            RespCacheable::Uncacheable(_) => None,
        };
        let playlist = resp(200, &[("cache-control", "max-age=1")]);
        assert_eq!(
            lists(&playlist, "/ll/p.m3u8").as_deref(),
            Some("/ll/p.m3u8")
        );
        assert_eq!(lists(&playlist, "/ll/s1.0.m4s"), None);
        assert_eq!(lists(&resp(404, &[]), "/ll/p.m3u8"), None);
    }
}
