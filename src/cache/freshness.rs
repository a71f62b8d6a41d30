//! HTTP freshness rules (RFC 9111, RFC 9213), as pure functions of headers and a clock.
//!
//! - [`governing`]: which field's directives decide (RFC 9213 §2.1): the first targeted field
//!   (the operator's, then `CDN-Cache-Control`) with a valid, non-empty value, else
//!   `Cache-Control`. When a targeted field governs, `Cache-Control` and `Expires` are ignored.
//! - [`explicit_lifetime`]: the origin's freshness lifetime (§4.2.1): `no-cache` → 0,
//!   `s-maxage`, `max-age`, then `Expires − Date`. A malformed value is a lifetime of 0 (stale:
//!   revalidated on use), never "absent" (which would let a heuristic keep it for a day).
//! - [`corrected_initial_age`]: how old a response already was when it arrived (§4.2.3), from
//!   the upstream's `Age` and `Date`, so an edge behind a shield does not restart the clock.
//! - [`stale_windows`]: stale-while-revalidate / stale-if-error, with the configured defaults
//!   only where the origin did not forbid serving stale (§4.2.4).
//! - [`merge_not_modified`]: a stored response's headers updated from a 304 (§3.2, §4.3.4).
//! - [`current_age`]: the `Age` sent with an answer from the cache (§4.2.3, §5.1).

use std::time::{Duration, SystemTime};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use pingora_cache::cache_control::{CacheControl, DirectiveKey, DirectiveValue, ListValueIter};
use pingora_http::ResponseHeader;

/// The RFC 9213 field targeted at CDNs.
pub const CDN_CACHE_CONTROL: &str = "cdn-cache-control";

/// A delta-seconds directive argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delta {
    Secs(u32),
    /// Present but not a non-negative integer (`max-age=abc`, `max-age=-1`, `max-age=1.5`,
    /// `max-age` without a value).
    Invalid,
}

impl Delta {
    /// The value, with an invalid one read as 0 (the most restrictive reading, §4.2.1).
    pub fn secs_or_zero(self) -> u32 {
        match self {
            Delta::Secs(s) => s,
            Delta::Invalid => 0,
        }
    }
}

/// The response directives a shared cache acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    pub no_store: bool,
    /// Unqualified `private` (the qualified form only lists fields to strip).
    pub private: bool,
    /// Unqualified `no-cache`.
    pub no_cache: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub public: bool,
    pub max_age: Option<Delta>,
    pub s_maxage: Option<Delta>,
    pub stale_while_revalidate: Option<Delta>,
    pub stale_if_error: Option<Delta>,
    /// Field names listed by qualified `private="…"` / `no-cache="…"`: not stored (§5.2.2.4,
    /// §5.2.2.7 allow storing the rest of the response without them).
    pub strip: Vec<String>,
}

impl Directives {
    /// Whether the origin forbade serving this response stale (§4.2.4): `no-cache`,
    /// `must-revalidate`, `proxy-revalidate`, and `s-maxage` (which implies
    /// `proxy-revalidate` for shared caches, §5.2.2.10).
    pub fn forbids_stale(&self) -> bool {
        self.no_cache || self.must_revalidate || self.proxy_revalidate || self.s_maxage.is_some()
    }

    /// Whether a response to a request with `Authorization` may be stored and reused (§3.5).
    pub fn allows_authorized(&self) -> bool {
        self.public || self.s_maxage.is_some() || self.must_revalidate
    }

    /// `Cache-Control` as found in `headers` (quoted arguments accepted, §5.2), `None`
    /// without the field.
    pub fn from_cache_control(headers: &HeaderMap) -> Option<Directives> {
        let cc = CacheControl::from_headers_named("cache-control", headers)?;
        let delta = |key: &DirectiveKey| match cc.directives.get(key) {
            None => None,
            Some(None) => Some(Delta::Invalid),
            Some(Some(v)) => Some(delta_of(v)),
        };
        let mut strip = Vec::new();
        for key in [DirectiveKey::Private, DirectiveKey::NoCache] {
            if let Some(Some(v)) = cc.directives.get(&key) {
                strip.extend(
                    ListValueIter::from(v)
                        .filter_map(|n| std::str::from_utf8(n).ok())
                        .filter(|n| !n.is_empty())
                        .map(str::to_ascii_lowercase),
                );
            }
        }
        Some(Directives {
            no_store: cc.no_store(),
            private: cc.private(),
            no_cache: cc.no_cache(),
            must_revalidate: cc.must_revalidate(),
            proxy_revalidate: cc.proxy_revalidate(),
            public: cc.public(),
            max_age: delta(&DirectiveKey::MaxAge),
            s_maxage: delta(&DirectiveKey::SMaxAge),
            stale_while_revalidate: delta(&DirectiveKey::StaleWhileRevalidate),
            stale_if_error: delta(&DirectiveKey::StaleIfError),
            strip,
        })
    }

    /// A targeted field (RFC 9213 §2.2: a Structured Field Dictionary) from its field lines:
    /// `None` when absent, empty or unparseable, so the next field in line decides.
    pub fn from_targeted<'a>(values: impl Iterator<Item = &'a HeaderValue>) -> Option<Directives> {
        let joined = values
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect::<Vec<_>>()
            .join(", ");
        if joined.is_empty() {
            return None;
        }
        let dict = sfv::Parser::parse_dictionary(joined.as_bytes()).ok()?;
        if dict.is_empty() {
            return None;
        }
        let mut d = Directives::default();
        for (key, entry) in &dict {
            let flag = match entry {
                sfv::ListEntry::Item(i) => i.bare_item != sfv::BareItem::Boolean(false),
                sfv::ListEntry::InnerList(_) => true,
            };
            let delta = || match entry {
                sfv::ListEntry::Item(sfv::Item {
                    bare_item: sfv::BareItem::Integer(n),
                    ..
                }) if *n >= 0 => Some(Delta::Secs(u32::try_from(*n).unwrap_or(u32::MAX))),
                _ => Some(Delta::Invalid),
            };
            match key.as_str() {
                "no-store" => d.no_store |= flag,
                "public" => d.public |= flag,
                "must-revalidate" => d.must_revalidate |= flag,
                "proxy-revalidate" => d.proxy_revalidate |= flag,
                "max-age" => d.max_age = delta(),
                "s-maxage" => d.s_maxage = delta(),
                "stale-while-revalidate" => d.stale_while_revalidate = delta(),
                "stale-if-error" => d.stale_if_error = delta(),
                "private" | "no-cache" => {
                    let names = field_names(entry);
                    if names.is_empty() {
                        if key == "private" {
                            d.private |= flag;
                        } else {
                            d.no_cache |= flag;
                        }
                    }
                    d.strip.extend(names);
                }
                _ => {}
            }
        }
        Some(d)
    }
}

fn delta_of(v: &DirectiveValue) -> Delta {
    match v.parse_as_delta_seconds() {
        Ok(s) => Delta::Secs(s),
        Err(_) => Delta::Invalid,
    }
}

/// Field names of a qualified `private`/`no-cache` in a targeted field: a String holding a
/// comma-separated list, or an Inner List of Strings or Tokens.
fn field_names(entry: &sfv::ListEntry) -> Vec<String> {
    let name = |b: &sfv::BareItem| match b {
        sfv::BareItem::String(s) | sfv::BareItem::Token(s) => Some(s.clone()),
        _ => None,
    };
    let raw: Vec<String> = match entry {
        sfv::ListEntry::Item(i) => name(&i.bare_item).into_iter().collect(),
        sfv::ListEntry::InnerList(l) => l.items.iter().filter_map(|i| name(&i.bare_item)).collect(),
    };
    raw.iter()
        .flat_map(|s| s.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

/// The directives that decide for a response, and where they came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Governing {
    pub directives: Directives,
    /// The targeted field that decided (`Cache-Control` and `Expires` are then ignored), or
    /// `None` when `Cache-Control` (or nothing) decided.
    pub targeted: Option<HeaderName>,
}

/// RFC 9213 §2.1: the first of `targeted` (in order) with a valid, non-empty value decides;
/// else `Cache-Control` (no directives when it is absent too).
pub fn governing(headers: &HeaderMap, targeted: &[HeaderName]) -> Governing {
    for name in targeted {
        if let Some(directives) = Directives::from_targeted(headers.get_all(name).iter()) {
            return Governing {
                directives,
                targeted: Some(name.clone()),
            };
        }
    }
    Governing {
        directives: Directives::from_cache_control(headers).unwrap_or_default(),
        targeted: None,
    }
}

fn http_date(v: &HeaderValue) -> Option<SystemTime> {
    httpdate::parse_http_date(v.to_str().ok()?.trim()).ok()
}

/// The `Date` of a response, when it has exactly one valid one.
pub fn date(headers: &HeaderMap) -> Option<SystemTime> {
    let mut all = headers.get_all(http::header::DATE).iter();
    let first = all.next()?;
    if all.next().is_some() {
        return None;
    }
    http_date(first)
}

/// The origin's freshness lifetime (§4.2.1), `None` when it gave none (then, and only then,
/// a heuristic may apply, §4.2.2). `now` stands in for a missing or invalid `Date`.
pub fn explicit_lifetime(g: &Governing, headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let d = &g.directives;
    if d.no_cache {
        return Some(Duration::ZERO);
    }
    // A shared cache reads s-maxage first (§5.2.2.10).
    if let Some(v) = d.s_maxage.or(d.max_age) {
        return Some(Duration::from_secs(v.secs_or_zero().into()));
    }
    if g.targeted.is_some() {
        return None;
    }
    let mut expires = headers.get_all(http::header::EXPIRES).iter();
    let first = expires.next()?;
    // Several Expires, or one that is not a valid date: already expired (§5.3).
    if expires.next().is_some() {
        return Some(Duration::ZERO);
    }
    let Some(expires) = http_date(first) else {
        return Some(Duration::ZERO);
    };
    // Lifetime = Expires − Date: both from the origin's clock, so a skewed origin clock
    // cancels out (§4.2.1).
    let base = date(headers).unwrap_or(now);
    Some(expires.duration_since(base).unwrap_or(Duration::ZERO))
}

/// The `Age` field value: a non-negative integer, else ignored (0).
pub fn age_value(headers: &HeaderMap) -> Duration {
    let secs = headers
        .get(http::header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    Duration::from_secs(secs)
}

/// How old the response was when it arrived (§4.2.3): the larger of the apparent age (from
/// `Date`) and the upstream's `Age` plus the time the request took.
///
/// `Date` has whole seconds: a message dated 12:00:00 was generated at some time in
/// [12:00:00, 12:00:01), so all it proves is an age of `response_time − Date − 1 s`, and that
/// is the apparent age taken here. §4.2.3 takes `response_time − Date`, the most it could be:
/// a response generated at 12:00:00.99 and received at 12:00:01.01 would be a second old on
/// arrival. An origin with a correct clock then loses up to a second of every lifetime (all
/// of a live playlist's at a fraction of a 1 s target duration: stale when stored, fetched
/// again by the next player), and answers carry `Age: 1` at once, which hls.js's low-latency
/// "CDN tune-in" reads as a second behind live (it then asks for a part a second ahead).
pub fn corrected_initial_age(
    headers: &HeaderMap,
    response_time: SystemTime,
    response_delay: Duration,
) -> Duration {
    let apparent = date(headers)
        .and_then(|d| d.checked_add(Duration::from_secs(1)))
        .and_then(|d| response_time.duration_since(d).ok())
        .unwrap_or(Duration::ZERO);
    apparent.max(age_value(headers).saturating_add(response_delay))
}

/// The stale windows (stale-while-revalidate, stale-if-error) of a response whose explicit
/// lifetime is `explicit`, with the configured defaults where the response names none.
///
/// - The origin forbade stale serving ([`Directives::forbids_stale`]): none at all, neither
///   its own windows nor the defaults.
/// - An explicit zero lifetime (`max-age=0`, `Expires` ≤ `Date`, a malformed lifetime) asks
///   for revalidation on every use: the default stale-while-revalidate does not apply (the
///   origin's own does); the default stale-if-error still does (an unreachable origin is
///   the "disconnected" case of §4.2.4).
pub fn stale_windows(
    d: &Directives,
    explicit: Option<Duration>,
    default_swr: Duration,
    default_sie: Duration,
) -> (Duration, Duration) {
    if d.forbids_stale() {
        return (Duration::ZERO, Duration::ZERO);
    }
    let secs = |v: Delta| Duration::from_secs(v.secs_or_zero().into());
    let default_swr = if explicit == Some(Duration::ZERO) {
        Duration::ZERO
    } else {
        default_swr
    };
    (
        d.stale_while_revalidate.map_or(default_swr, secs),
        d.stale_if_error.map_or(default_sie, secs),
    )
}

/// The `Age` of an answer from the cache: the age the response had when stored plus the
/// time it has been resident since (§4.2.3).
pub fn current_age(initial: Duration, resident: Duration) -> u64 {
    initial.saturating_add(resident).as_secs()
}

/// Headers a 304 does not update in the stored response (§3.2): framing (the stored body
/// stays as it is), `Proxy-Authenticate`, and `Vary` (the variant the stored body was chosen
/// by stays; a change of `Vary` comes with a 200). Hop-by-hop fields are not updated either
/// ([`crate::hop::fields`]).
const NOT_UPDATED_BY_304: [HeaderName; 6] = [
    http::header::CONTENT_LENGTH,
    http::header::TRANSFER_ENCODING,
    http::header::CONTENT_ENCODING,
    http::header::CONTENT_RANGE,
    http::header::PROXY_AUTHENTICATE,
    http::header::VARY,
];

/// The stored response's header updated from a 304 (§3.2, §4.3.4): every field the 304
/// carries replaces the stored one, except [`NOT_UPDATED_BY_304`] and the 304's hop-by-hop
/// fields (`Connection`, what it names, `Keep-Alive`, ...). `Date` and `Age` describe the 304 itself, so the stored
/// ones go even when the 304 has none (its age is computed afresh).
pub fn merge_not_modified(
    stored: &ResponseHeader,
    not_modified: &ResponseHeader,
) -> ResponseHeader {
    let mut merged = stored.clone();
    let hop = crate::hop::fields(&not_modified.headers);
    let skip = |name: &HeaderName| {
        NOT_UPDATED_BY_304.contains(name) || hop.iter().any(|h| h == name.as_str())
    };
    merged.remove_header(&http::header::DATE);
    merged.remove_header(&http::header::AGE);
    for name in not_modified.headers.keys() {
        if skip(name) {
            continue;
        }
        merged.remove_header(name);
        for value in not_modified.headers.get_all(name) {
            // Names and values come from a parsed header, so appending cannot fail.
            let _ = merged.append_header(name.clone(), value.clone());
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn headers(list: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in list {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn http_date_of(secs: u64) -> String {
        httpdate::fmt_http_date(at(secs))
    }

    fn cdn() -> Vec<HeaderName> {
        vec![
            HeaderName::from_static("edge-cache-control"),
            HeaderName::from_static(CDN_CACHE_CONTROL),
        ]
    }

    fn lifetime(list: &[(&str, &str)]) -> Option<u64> {
        let h = headers(list);
        explicit_lifetime(&governing(&h, &cdn()), &h, at(T0)).map(|d| d.as_secs())
    }

    #[test]
    fn cache_control_lifetimes() {
        assert_eq!(
            lifetime(&[]),
            None,
            "no explicit lifetime: a heuristic may apply"
        );
        assert_eq!(lifetime(&[("cache-control", "public")]), None);
        assert_eq!(lifetime(&[("cache-control", "max-age=60")]), Some(60));
        assert_eq!(
            lifetime(&[("cache-control", "max-age=60, s-maxage=5")]),
            Some(5),
            "s-maxage first"
        );
        assert_eq!(
            lifetime(&[("cache-control", "MAX-AGE=60")]),
            Some(60),
            "case-insensitive names"
        );
        assert_eq!(
            lifetime(&[("cache-control", "max-age=\"60\"")]),
            Some(60),
            "quoted form accepted (§5.2)"
        );
        assert_eq!(
            lifetime(&[("cache-control", "no-cache, max-age=60")]),
            Some(0),
            "no-cache wins"
        );
        assert_eq!(lifetime(&[("cache-control", "max-age=0")]), Some(0));
        assert_eq!(
            lifetime(&[("cache-control", "max-age=99999999999")]),
            Some(u64::from(i32::MAX as u32)),
            "overflow caps"
        );
        // Malformed: stale, not "absent" (which would fall through to a day-long heuristic).
        for bad in [
            "max-age=abc",
            "max-age=-1",
            "max-age=1.5",
            "max-age",
            "s-maxage=x, max-age=60",
        ] {
            assert_eq!(lifetime(&[("cache-control", bad)]), Some(0), "{bad}");
        }
        // Directives across field lines.
        assert_eq!(
            lifetime(&[("cache-control", "public"), ("cache-control", "max-age=7")]),
            Some(7)
        );
    }

    #[test]
    fn expires_is_measured_from_date() {
        let date = http_date_of(T0 + 3600); // the origin's clock is an hour fast
        assert_eq!(
            lifetime(&[("date", &date), ("expires", &http_date_of(T0 + 3600 + 30))]),
            Some(30)
        );
        assert_eq!(
            lifetime(&[("expires", &http_date_of(T0 + 30))]),
            Some(30),
            "no Date: our clock"
        );
        assert_eq!(
            lifetime(&[("date", &date), ("expires", &http_date_of(T0))]),
            Some(0),
            "in the past"
        );
        assert_eq!(
            lifetime(&[("expires", "0")]),
            Some(0),
            "invalid date = already expired"
        );
        assert_eq!(
            lifetime(&[
                ("expires", &http_date_of(T0 + 30)),
                ("expires", &http_date_of(T0 + 60))
            ]),
            Some(0)
        );
        assert_eq!(
            lifetime(&[
                ("expires", &http_date_of(T0 + 30)),
                ("cache-control", "max-age=5")
            ]),
            Some(5),
            "max-age wins"
        );
    }

    #[test]
    fn targeted_fields_take_precedence() {
        // RFC 9213: the first valid targeted field decides; Cache-Control and Expires are ignored.
        let both = [
            ("cache-control", "private, max-age=5"),
            ("cdn-cache-control", "max-age=600"),
        ];
        let h = headers(&both);
        let g = governing(&h, &cdn());
        assert_eq!(
            g.targeted.as_ref().map(|n| n.as_str()),
            Some("cdn-cache-control")
        );
        assert!(!g.directives.private);
        assert_eq!(lifetime(&both), Some(600));
        assert_eq!(
            lifetime(&[
                ("edge-cache-control", "max-age=9"),
                ("cdn-cache-control", "max-age=600")
            ]),
            Some(9),
            "operator's first"
        );
        assert_eq!(
            lifetime(&[
                ("cdn-cache-control", "no-store"),
                ("cache-control", "max-age=60")
            ]),
            None,
            "Cache-Control ignored"
        );
        assert!(
            governing(&headers(&[("cdn-cache-control", "no-store")]), &cdn())
                .directives
                .no_store
        );
        assert_eq!(
            lifetime(&[
                ("cdn-cache-control", "no-cache"),
                ("cache-control", "max-age=60")
            ]),
            Some(0)
        );
        // Expires is ignored when a targeted field decides.
        assert_eq!(
            lifetime(&[
                ("cdn-cache-control", "public"),
                ("expires", &http_date_of(T0 + 30))
            ]),
            None
        );
        // Empty or unparseable: ignored, the next in line decides.
        assert_eq!(
            lifetime(&[("cdn-cache-control", ""), ("cache-control", "max-age=60")]),
            Some(60)
        );
        assert_eq!(
            lifetime(&[
                ("cdn-cache-control", "max-age=60 junk("),
                ("cache-control", "max-age=7")
            ]),
            Some(7)
        );
        assert_eq!(
            lifetime(&[
                ("cdn-cache-control", "Max-Age=60"),
                ("cache-control", "max-age=7")
            ]),
            Some(7),
            "SF keys are lowercase"
        );
        // A directive of the wrong type: a malformed lifetime (stale).
        assert_eq!(
            lifetime(&[("cdn-cache-control", "max-age=\"60\"")]),
            Some(0)
        );
        assert_eq!(lifetime(&[("cdn-cache-control", "max-age=1.5")]), Some(0));
        // Not on the target list: no effect.
        let h = headers(&[
            ("other-cache-control", "max-age=1"),
            ("cache-control", "max-age=60"),
        ]);
        assert_eq!(
            explicit_lifetime(&governing(&h, &cdn()), &h, at(T0)),
            Some(Duration::from_secs(60))
        );
        // Without the targeted names, CDN-Cache-Control means nothing.
        let h = headers(&[
            ("cdn-cache-control", "max-age=600"),
            ("cache-control", "max-age=60"),
        ]);
        assert_eq!(
            explicit_lifetime(&governing(&h, &[]), &h, at(T0)),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn qualified_private_and_no_cache_strip_fields() {
        let d = Directives::from_cache_control(&headers(&[(
            "cache-control",
            "private=\"X-User, Set-Cookie\", no-cache=x-b, max-age=60",
        )]))
        .unwrap();
        assert!(!d.private && !d.no_cache);
        assert_eq!(d.strip, ["x-user", "set-cookie", "x-b"]);
        let d = governing(
            &headers(&[("cdn-cache-control", "private=(\"x-user\" x-b), max-age=60")]),
            &cdn(),
        )
        .directives;
        assert!(!d.private);
        assert_eq!(d.strip, ["x-user", "x-b"]);
        assert!(
            governing(&headers(&[("cdn-cache-control", "private")]), &cdn())
                .directives
                .private
        );
    }

    #[test]
    fn authorization_and_stale_permissions() {
        let d =
            |v: &str| Directives::from_cache_control(&headers(&[("cache-control", v)])).unwrap();
        assert!(!d("max-age=60").allows_authorized());
        for ok in [
            "public",
            "s-maxage=5",
            "must-revalidate",
            "max-age=5, public",
        ] {
            assert!(d(ok).allows_authorized(), "{ok}");
        }
        for forbid in [
            "no-cache",
            "must-revalidate",
            "proxy-revalidate",
            "s-maxage=60",
        ] {
            assert!(d(forbid).forbids_stale(), "{forbid}");
        }
        assert!(!d("max-age=0").forbids_stale());
    }

    #[test]
    fn stale_windows_respect_the_origin() {
        let (swr, sie) = (Duration::from_secs(5), Duration::from_secs(300));
        let w = |v: &str, explicit: Option<u64>| {
            let d = Directives::from_cache_control(&headers(&[("cache-control", v)]))
                .unwrap_or_default();
            let (a, b) = stale_windows(&d, explicit.map(Duration::from_secs), swr, sie);
            (a.as_secs(), b.as_secs())
        };
        assert_eq!(w("max-age=60", Some(60)), (5, 300), "defaults");
        assert_eq!(
            w(
                "max-age=60, stale-while-revalidate=7, stale-if-error=9",
                Some(60)
            ),
            (7, 9)
        );
        for forbid in [
            "no-cache",
            "max-age=60, must-revalidate",
            "max-age=60, proxy-revalidate",
            "s-maxage=60",
        ] {
            assert_eq!(w(forbid, Some(60)), (0, 0), "{forbid}");
        }
        assert_eq!(
            w(
                "no-cache, stale-while-revalidate=30, stale-if-error=30",
                Some(0)
            ),
            (0, 0),
            "most restrictive wins"
        );
        assert_eq!(
            w("max-age=0", Some(0)),
            (0, 300),
            "revalidate every use; stale only when the origin fails"
        );
        assert_eq!(
            w("max-age=0, stale-while-revalidate=3", Some(0)),
            (3, 300),
            "the origin's own window"
        );
        assert_eq!(
            w("max-age=60, stale-while-revalidate=x", Some(60)),
            (0, 300),
            "malformed = none"
        );
        assert_eq!(w("", None), (5, 300), "heuristic freshness: defaults");
    }

    #[test]
    fn corrected_initial_age_uses_age_and_date() {
        let now = at(T0);
        let age = |list: &[(&str, &str)], delay: u64| {
            corrected_initial_age(&headers(list), now, Duration::from_secs(delay)).as_secs()
        };
        assert_eq!(age(&[], 0), 0);
        assert_eq!(age(&[("age", "30")], 0), 30);
        assert_eq!(
            age(&[("age", "30")], 2),
            32,
            "plus the time the request took"
        );
        assert_eq!(
            age(&[("date", &http_date_of(T0 - 50))], 0),
            49,
            "apparent age: what Date (whole seconds) proves"
        );
        assert_eq!(
            age(&[("date", &http_date_of(T0 - 50)), ("age", "10")], 0),
            49,
            "the larger one"
        );
        assert_eq!(
            age(&[("date", &http_date_of(T0 + 50)), ("age", "10")], 0),
            10,
            "a fast origin clock is no negative age"
        );
        let within = |ms: u64| {
            let received = at(T0) + Duration::from_millis(ms);
            let list = [("date", http_date_of(T0))];
            let list: Vec<(&str, &str)> = list.iter().map(|(k, v)| (*k, v.as_str())).collect();
            corrected_initial_age(&headers(&list), received, Duration::ZERO)
        };
        assert_eq!(within(990), Duration::ZERO, "Date's own second is no age");
        assert_eq!(
            within(1_010),
            Duration::from_millis(10),
            "generated at .99 and received at 1.01: not a second old"
        );
        assert_eq!(within(2_500), Duration::from_millis(1_500));
        assert_eq!(age(&[("age", "-5")], 0), 0, "invalid Age ignored");
        assert_eq!(age(&[("age", "abc")], 1), 1);
        assert_eq!(
            current_age(Duration::from_secs(30), Duration::from_millis(2500)),
            32
        );
    }

    #[test]
    fn a_304_updates_the_stored_headers() {
        let mut stored = ResponseHeader::build(200, None).unwrap();
        for (k, v) in [
            ("content-length", "1000"),
            ("content-type", "video/mp2t"),
            ("cache-control", "max-age=1"),
            ("etag", "\"v1\""),
            ("x-custom", "old"),
            ("date", "Thu, 01 Jan 2026 00:00:00 GMT"),
            ("age", "40"),
            ("vary", "accept-encoding"),
        ] {
            stored.append_header(k.to_string(), v).unwrap();
        }
        let mut nm = ResponseHeader::build(304, None).unwrap();
        for (k, v) in [
            ("cache-control", "max-age=600"),
            ("etag", "\"v2\""),
            ("x-custom", "new"),
            ("x-custom", "newer"),
            ("expires", "Thu, 01 Jan 2026 00:10:00 GMT"),
            ("content-length", "0"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("vary", "*"),
        ] {
            nm.append_header(k.to_string(), v).unwrap();
        }
        let m = merge_not_modified(&stored, &nm);
        let get = |k: &str| {
            m.headers
                .get_all(k)
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(m.status, 200);
        assert_eq!(get("cache-control"), ["max-age=600"]);
        assert_eq!(get("etag"), ["\"v2\""]);
        assert_eq!(get("x-custom"), ["new", "newer"]);
        assert_eq!(get("expires"), ["Thu, 01 Jan 2026 00:10:00 GMT"]);
        assert_eq!(
            get("content-length"),
            ["1000"],
            "framing stays the stored body's"
        );
        assert_eq!(get("content-type"), ["video/mp2t"]);
        assert_eq!(get("vary"), ["accept-encoding"]);
        assert!(
            get("x-hop").is_empty() && get("keep-alive").is_empty() && get("connection").is_empty()
        );
        assert!(
            get("date").is_empty() && get("age").is_empty(),
            "the 304's own Date/Age, here none"
        );
    }
}
