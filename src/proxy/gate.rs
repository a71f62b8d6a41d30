//! The admission gate: one pure function, [`admit`], decides what a player request is and
//! whether it may proceed. Both request paths call it — the HTTP/1 [`super::front`] and the
//! Pingora pipeline's `request_filter` (HTTP/1, HTTP/2, TLS) — so a request rule written here
//! holds on every path by construction (docs/design.md, "Request flow").
//!
//! Checks, in order:
//! 0. the head: its size ([`crate::limits::size`]) → 414/431, and its framing (a
//!    `Transfer-Encoding` other than one `chunked`, [`framing`]) → 501/400; both close the
//!    connection;
//! 1. the client address (the peer, or `X-Forwarded-For` from `[geo] trusted_proxies`) and the
//!    CORS origin;
//! 2. the target path, normalised once ([`crate::path`]); ambiguous paths → 400;
//! 3. the host (RFC 9112 §3.2): an absolute-form/HTTP/2 authority wins over `Host`; an HTTP/1.1
//!    request without `Host`, with several, or with an invalid one → 400;
//! 4. a forwarding loop (our own name in `Via`) → 508;
//! 5. `PURGE` from `[purge] allow` (else 403); `/healthz`, `/readyz`, CORS preflights;
//! 6. `/api/v1` → the control plane;
//! 7. the token gate ([`super::tokens`], including the `mh` rendition limit) → 403 with a
//!    reason code; on a path that needs a token only GET, HEAD and OPTIONS, and TRACE
//!    nowhere → 405;
//! 8. country rules (by path prefix and the token's `cc` claim) → 451 (or the configured status);
//! 9. content: host, path and query without tokens (and CMCD), the cache key under the
//!    `[[cache.keys]]` query policy, the token granted, the normalised `Accept-Encoding`,
//!    whether an `Upgrade` is forwarded (`[server] upgrade_prefixes`), and the player's CMCD
//!    ([`crate::cmcd`], parsed here once for the metrics and the log of either path).
//!
//! Every request also gets its id and trace context here ([`super::request_id`]), whatever
//! the verdict.
//!
//! The gate never writes: it returns an [`Admission`] and the caller answers, counts and logs.

use std::net::IpAddr;

use http::Version;
use pingora_cache::CacheKey;

use super::tokens;
use crate::cache::key;
use crate::cors;
use crate::state::{EdgeState, Live};
use crate::token::Reject;

/// What a request turned out to be, for routing and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Content,
    /// `/api/v1`: forwarded to the control plane, never cached, no playback token.
    Api,
    Local,
    Preflight,
    Rejected,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Content => "content",
            Kind::Api => "api",
            Kind::Local => "local",
            Kind::Preflight => "preflight",
            Kind::Rejected => "rejected",
        }
    }
}

/// A request's header fields, as either path parsed them.
#[derive(Clone, Copy)]
pub enum Headers<'a> {
    /// The front's `httparse` parse of an HTTP/1 head.
    H1(&'a [httparse::Header<'a>]),
    /// Pingora's request header (HTTP/1 or HTTP/2).
    Map(&'a http::HeaderMap),
}

/// A header map with at most this many fields is searched by reading it, not by its hash
/// index: `get_all` with a `&str` name parses and hashes the name on every call, which cost
/// the HTTP/2 hot path ~4 % of its CPU in the gate's and the fast path's dozen lookups of
/// names a player's request rarely has (`loadtest/perf-edge-h2-hot_playlist.txt`).
const SCAN_MAX: usize = 12;

impl<'a> Headers<'a> {
    /// Every value of `name` (lower-case), in arrival order.
    pub fn all<'n>(self, name: &'n str) -> impl Iterator<Item = &'a [u8]> + 'n
    where
        'a: 'n,
    {
        let (h1, scan, map) = match self {
            Headers::H1(h) => (
                Some(
                    h.iter()
                        .filter(move |h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| h.value),
                ),
                None,
                None,
            ),
            // Case-insensitive, as `get_all` is (the map's names are lower-case).
            Headers::Map(m) if m.len() <= SCAN_MAX => (
                None,
                Some(
                    m.iter()
                        .filter(move |(k, _)| k.as_str().eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.as_bytes()),
                ),
                None,
            ),
            Headers::Map(m) => (
                None,
                None,
                Some(m.get_all(name).into_iter().map(|v| v.as_bytes())),
            ),
        };
        h1.into_iter()
            .flatten()
            .chain(scan.into_iter().flatten())
            .chain(map.into_iter().flatten())
    }

    /// The first value of `name` as text (`None` when absent or not visible ASCII/UTF-8).
    pub fn first(self, name: &str) -> Option<&'a str> {
        self.all(name)
            .next()
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    pub fn has(self, name: &str) -> bool {
        self.all(name).next().is_some()
    }

    /// Each field's name and value lengths, for [`crate::limits::size`].
    pub fn sizes(self) -> impl Iterator<Item = (usize, usize)> + 'a {
        let (h1, map) = match self {
            Headers::H1(h) => (Some(h.iter().map(|h| (h.name.len(), h.value.len()))), None),
            Headers::Map(m) => (
                None,
                Some(m.iter().map(|(k, v)| (k.as_str().len(), v.len()))),
            ),
        };
        h1.into_iter().flatten().chain(map.into_iter().flatten())
    }
}

/// The parts of a request the gate reads.
#[derive(Clone, Copy)]
pub struct RequestView<'a> {
    pub method: &'a str,
    pub version: Version,
    /// The target's path as sent (before normalisation).
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The target's authority: absolute-form on HTTP/1, `:authority` on HTTP/2.
    pub authority: Option<&'a str>,
    pub headers: Headers<'a>,
    /// The socket peer.
    pub peer: IpAddr,
    /// The connection is TLS (the listener's scheme is `https`).
    pub tls: bool,
    /// The request line's length as sent (`method SP target SP version`), for
    /// [`crate::limits::size`].
    pub line_len: usize,
}

/// The length of the request line `method SP target SP HTTP/x.y`.
pub fn line_len(method: &str, target: usize) -> usize {
    method.len() + 1 + target + 1 + "HTTP/1.1".len()
}

impl<'a> RequestView<'a> {
    /// The view of a request Pingora parsed, which came over TLS when `tls`.
    pub fn of(req: &'a pingora_http::RequestHeader, peer: IpAddr, tls: bool) -> Self {
        RequestView {
            method: req.method.as_str(),
            version: req.version,
            path: req.uri.path(),
            query: req.uri.query(),
            // HTTP/2's `:authority`; on HTTP/1 Pingora keeps an absolute-form authority out of
            // the Uri (and has already refused one that disagrees with `Host`).
            authority: req.uri.authority().map(|a| a.as_str()).or_else(|| {
                pingora_http::authority::raw_target_authority(req.raw_path())
                    .authority()
                    .and_then(|a| std::str::from_utf8(a).ok())
            }),
            headers: Headers::Map(&req.headers),
            peer,
            tls,
            line_len: line_len(req.method.as_str(), req.raw_path().len()),
        }
    }
}

/// The gate's verdict, with what every outcome needs.
pub struct Decision {
    /// The client (after trusted `X-Forwarded-For`).
    pub client: IpAddr,
    /// `Access-Control-Allow-Origin` to send, when the request's `Origin` is allowed.
    pub cors_origin: Option<String>,
    /// The request id and trace context ([`super::request_id`]).
    pub ids: super::request_id::Ids,
    pub admission: Admission,
}

// `Content` is what nearly every request is; boxing it would cost an allocation per request
// to shrink the rare variants.
#[allow(clippy::large_enum_variant)]
pub enum Admission {
    /// Answered by the edge itself.
    Local(Reply),
    /// An allowed `PURGE` of this host's path (every query variant unless exact).
    Purge(crate::cache::purge::Purge),
    /// Forwarded to the embedded control plane.
    Api {
        path: String,
    },
    Content(ContentRequest),
}

/// Why a request was refused, for the refusal metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Token(Reject),
    /// Blocked by a country rule; the client's country, or `unknown`.
    Geo(String),
    /// A head over a size limit (counted in `edge_connection_limits_total`).
    Limit(crate::limits::Limit),
    /// A body framing the edge does not take (`Transfer-Encoding`).
    Framing,
}

impl Refusal {
    /// Whether the connection must close after the answer: the rest of the head or the body
    /// was not read, or cannot be delimited.
    pub fn closes(&self) -> bool {
        matches!(self, Refusal::Limit(_) | Refusal::Framing)
    }
}

/// A complete answer from the edge.
#[derive(Debug, Clone)]
pub struct Reply {
    pub kind: Kind,
    pub status: u16,
    pub body: String,
    /// Extra headers (reason code, CORS).
    pub headers: Vec<(&'static str, String)>,
    pub refusal: Option<Refusal>,
}

/// A content request that passed the gate.
#[derive(Debug, Clone)]
pub struct ContentRequest {
    /// Normalised as in the cache key.
    pub host: String,
    /// The normalised path without a token prefix: the one for the key and the origin.
    pub path: String,
    /// The query the origin is asked with: without token parameters (and without CMCD
    /// unless `[cache] forward_cmcd`).
    pub query: Option<String>,
    /// The query as the cache key has it ([`key::key_query`]).
    pub key_query: Option<String>,
    /// The prefix of the `[[cache.keys]]` rule that made `key_query` (`None`: the default,
    /// every parameter), for the access log.
    pub query_rule: Option<String>,
    pub key: CacheKey,
    pub token: Option<tokens::Granted>,
    /// Whether the origin request's target differs from the one sent (tokens or dot segments
    /// removed, absolute-form made origin-form).
    pub rewritten: bool,
    /// The request's `Accept-Encoding`, normalised ([`super::vary::accept_encoding`]): what
    /// the origin is asked with, and what `Vary: Accept-Encoding` variants are keyed on.
    pub accept_encoding: &'static str,
    /// An HTTP/1.1 `Upgrade` request on a `[server] upgrade_prefixes` path: forwarded with its
    /// `Upgrade`, uncached, and tunnelled after a `101`. Elsewhere `Upgrade` is dropped.
    pub upgrade: bool,
    /// The slice size when the path is under a `[[cache.slices]]` prefix
    /// ([`key::slice_size`]): a GET is served from slices ([`super::slices`]).
    pub slice: Option<u64>,
    /// The player's CMCD ([`crate::cmcd`]), for the metrics and the access log; boxed, as
    /// most requests carry none.
    pub cmcd: Option<Box<crate::cmcd::Report>>,
    /// An LL-HLS blocking playlist reload (`_HLS_msn`, [`crate::hls::delivery`]): its answer
    /// is kept by the rules for blocking responses ([`crate::cache::policy::Exchange`]).
    pub blocking: bool,
}

impl ContentRequest {
    /// What picks the origin node: host + path + the key's query, the same on every edge, so
    /// a shield tier sees each object from one node.
    pub fn route_key(&self) -> Vec<u8> {
        format!(
            "{}{}?{}",
            self.host,
            self.path,
            self.key_query.as_deref().unwrap_or("")
        )
        .into_bytes()
    }

    /// The origin-form target the origin is asked for.
    pub fn target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

/// Decide one request by the settings of `live` (the request's snapshot of
/// [`EdgeState::live`]). `now` is unix seconds (token expiry).
pub fn admit(req: &RequestView<'_>, state: &EdgeState, live: &Live, now: u64) -> Decision {
    let client = client_ip(req, &live.config.geo.trusted_proxies);
    let cors_origin = live.cors.allow_origin(req.headers.first("origin"));
    let admission = admission(req, state, live, client, cors_origin.as_deref(), now);
    Decision {
        client,
        cors_origin,
        ids: super::request_id::of(req.headers, &state.ids),
        admission,
    }
}

fn admission(
    req: &RequestView<'_>,
    state: &EdgeState,
    live: &Live,
    client: IpAddr,
    cors_origin: Option<&str>,
    now: u64,
) -> Admission {
    if let Err(o) =
        crate::limits::size::check(&live.config.server.head, req.line_len, req.headers.sizes())
    {
        return Admission::Local(oversize(o));
    }
    if let Err((status, reason)) = framing(req.headers) {
        let mut reply = reply(
            Kind::Rejected,
            status,
            &format!("{reason}\n"),
            vec![("x-edge-reason", reason.to_string())],
        );
        reply.refusal = Some(Refusal::Framing);
        return Admission::Local(reply);
    }
    let path = match crate::path::normalize(req.path) {
        Ok(p) => p,
        Err(e) => return bad_request("bad request path\n", e.code()),
    };
    let host = match host_of(req) {
        Ok(h) => h,
        Err(code) => return bad_request("bad host\n", code),
    };
    let me = &live.config.server.name;
    let looped = req.headers.all("via").any(|v| {
        std::str::from_utf8(v).is_ok_and(|v| {
            v.split(',')
                .any(|hop| hop.split_whitespace().nth(1) == Some(me.as_str()))
        })
    });
    if looped {
        return local(
            Kind::Rejected,
            508,
            "loop_detected\n",
            vec![("x-edge-reason", "loop_detected".into())],
        );
    }
    if let Some(local) = local_route(req, state, live, &host, &path, cors_origin) {
        return local;
    }
    // Without the `control` feature `state.control` is always `None`: nothing to route.
    #[cfg(feature = "control")]
    if state.control.is_some()
        && path
            .strip_prefix(crate::control::routes::API_PREFIX)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    {
        return Admission::Api { path };
    }

    let mut query = req.query.map(str::to_string);
    let mut path = path;
    let mut token = None;
    if let Some(tc) = &live.config.tokens {
        let cookies = req
            .headers
            .all("cookie")
            .filter_map(|v| std::str::from_utf8(v).ok());
        let site = tokens::Site {
            tls: req.tls,
            host: &host,
        };
        let checked = tokens::check(tc, site, &path, query.as_deref(), cookies, client, now);
        path = checked.path;
        query = checked.query;
        match checked.verdict {
            Ok(granted) => token = granted,
            Err(reason) => {
                let mut headers = cors_headers(live, cors_origin);
                headers.push(("x-edge-reason", reason.code().to_string()));
                return Admission::Local(Reply {
                    kind: Kind::Rejected,
                    status: 403,
                    body: format!("{}\n", reason.code()),
                    headers,
                    refusal: Some(Refusal::Token(reason)),
                });
            }
        }
    }

    // Viewer tokens are for reading: on a path that needs one, only GET, HEAD and OPTIONS; and
    // TRACE (it reflects the request, cookies included) nowhere.
    let protected = live
        .config
        .tokens
        .as_ref()
        .is_some_and(|tc| tokens::protects(tc, &path));
    if req.method == "TRACE" || (protected && !matches!(req.method, "GET" | "HEAD" | "OPTIONS")) {
        return local(
            Kind::Rejected,
            405,
            "method_not_allowed\n",
            vec![
                ("allow", "GET, HEAD, OPTIONS".into()),
                ("x-edge-reason", "method_not_allowed".into()),
            ],
        );
    }

    // Country rules (by path prefix, and the token's `cc` claim).
    let token_cc = token
        .as_ref()
        .and_then(|g: &tokens::Granted| g.claims.as_ref())
        .and_then(|c| c.cc.as_deref());
    let policy = &live.config.geo.policy;
    if token_cc.is_some() || policy.rule_for(&path).is_some() {
        let country = state.geo.as_ref().and_then(|g| g.lookup(client));
        if let Err(blocked) = policy.check(&path, country.as_ref().map(|c| c.as_str()), token_cc) {
            let mut headers = cors_headers(live, cors_origin);
            headers.push(("x-edge-reason", blocked.reason.to_string()));
            return Admission::Local(Reply {
                kind: Kind::Rejected,
                status: policy.status(),
                body: format!("{}\n", blocked.reason),
                headers,
                refusal: Some(Refusal::Geo(
                    blocked.country.unwrap_or_else(|| "unknown".into()),
                )),
            });
        }
    }

    let cmcd = cmcd_report(req, live, &path);
    let cache = &live.config.cache;
    let key_query = key::key_query(&cache.keys, &path, query.as_deref());
    let query_rule = key::key_rule(&cache.keys, &path).map(|r| r.prefix.clone());
    if !cache.forward_cmcd {
        query = key::without_param(query.as_deref(), key::CMCD_PARAM);
    }
    // An absolute-form target goes to the origin in origin-form (RFC 9112 §3.2.2).
    let rewritten = path != req.path || query.as_deref() != req.query || req.authority.is_some();
    let key = key::for_request(&host, &path, key_query.as_deref());
    let blocking = crate::hls::delivery::blocks(key_query.as_deref());
    let accept_encoding = super::vary::accept_encoding(req.headers);
    let upgrade = req.version == Version::HTTP_11
        && req.headers.has("upgrade")
        && live
            .config
            .server
            .upgrade_prefixes
            .iter()
            .any(|p| path.starts_with(p.as_str()));
    let slice = key::slice_size(&cache.slices, &path);
    Admission::Content(ContentRequest {
        slice,
        host,
        path,
        query,
        key_query,
        query_rule,
        key,
        token,
        rewritten,
        accept_encoding,
        upgrade,
        cmcd,
        blocking,
    })
}

/// The request's CMCD (from its query as sent and its `CMCD-*` fields), labelled by the
/// `[cmcd]` prefix of its path.
fn cmcd_report(req: &RequestView<'_>, live: &Live, path: &str) -> Option<Box<crate::cmcd::Report>> {
    let fields = crate::cmcd::HEADERS
        .into_iter()
        .flat_map(|name| req.headers.all(name));
    crate::cmcd::of(req.query, fields).map(|data| {
        Box::new(crate::cmcd::Report {
            prefix: live.config.cmcd.label(path).to_string(),
            data,
        })
    })
}

/// `PURGE`, health, readiness and CORS preflights.
fn local_route(
    req: &RequestView<'_>,
    state: &EdgeState,
    live: &Live,
    host: &str,
    path: &str,
    cors_origin: Option<&str>,
) -> Option<Admission> {
    let get_or_head = matches!(req.method, "GET" | "HEAD");
    Some(match (req.method, path) {
        ("PURGE", _) => {
            if !live.config.purge.allow.iter().any(|n| n.contains(req.peer)) {
                return Some(local(
                    Kind::Local,
                    403,
                    "purge not allowed from this address\n",
                    Vec::new(),
                ));
            }
            Admission::Purge(crate::cache::purge::Purge {
                host: Some(host.to_string()),
                path: path.to_string(),
                query: req.query.map(str::to_string),
                exact: true,
                soft: req.headers.first("soft-purge") == Some("1"),
            })
        }
        (_, "/healthz") if get_or_head => local(Kind::Local, 200, "ok\n", Vec::new()),
        (_, "/readyz") if get_or_head => {
            let (status, body) = state.readiness();
            local(Kind::Local, status, body, Vec::new())
        }
        ("OPTIONS", _) if req.headers.has("access-control-request-method") => {
            let mut headers = cors_headers(live, cors_origin);
            if cors_origin.is_some() {
                headers.push((
                    "access-control-allow-methods",
                    cors::ALLOW_METHODS.to_string(),
                ));
                if let Some(requested) = req
                    .headers
                    .first("access-control-request-headers")
                    .filter(|v| !v.is_empty())
                {
                    headers.push(("access-control-allow-headers", requested.to_string()));
                }
                headers.push(("access-control-max-age", live.cors.max_age().to_string()));
            }
            local(Kind::Preflight, 204, "", headers)
        }
        _ => return None,
    })
}

fn local(kind: Kind, status: u16, body: &str, headers: Vec<(&'static str, String)>) -> Admission {
    Admission::Local(reply(kind, status, body, headers))
}

fn reply(kind: Kind, status: u16, body: &str, headers: Vec<(&'static str, String)>) -> Reply {
    Reply {
        kind,
        status,
        body: body.to_string(),
        headers,
        refusal: None,
    }
}

/// The answer to a request line that is not `method SP target SP version` with a target of
/// URI characters (RFC 9112 §3: 400). Pingora's parser would percent-encode such a target
/// (spaces, control bytes) and forward it; the front, which reads every HTTP/1 head, refuses
/// it instead, as nginx does.
pub fn bad_request_line() -> Reply {
    let mut r = reply(
        Kind::Rejected,
        400,
        "bad_request_line\n",
        vec![("x-edge-reason", "bad_request_line".to_string())],
    );
    r.refusal = Some(Refusal::Framing);
    r
}

/// The answer to a head over a size limit (the front sends it too, for a head it stops
/// reading).
pub fn oversize(o: crate::limits::size::Oversize) -> Reply {
    let mut r = reply(
        Kind::Rejected,
        o.status(),
        &format!("{}\n", o.reason()),
        vec![("x-edge-reason", o.reason().to_string())],
    );
    r.refusal = Some(Refusal::Limit(o.limit()));
    r
}

/// A request's `Transfer-Encoding` (RFC 9112 §6.1): the edge decodes `chunked` only, so
/// any other coding is answered 501 Not Implemented, as RFC 9112 §6.1 says (nginx: 501), and
/// `chunked` applied twice (§6.1: a sender must not) 400. The label is not lost on the way to
/// the origin: the request never goes there. (A final coding other than `chunked` and
/// `Transfer-Encoding` on HTTP/1.0 are refused by Pingora's parser with 400 before the gate,
/// per RFC 9112 §6.3 and §6.1; HTTP/2 has no `Transfer-Encoding`.)
fn framing(headers: Headers<'_>) -> Result<(), (u16, &'static str)> {
    let mut chunked = 0;
    for value in headers.all("transfer-encoding") {
        for coding in value.split(|&b| b == b',') {
            let coding = coding.trim_ascii();
            // Empty list elements are allowed and ignored (RFC 9110 §5.6.1).
            if coding.is_empty() {
                continue;
            }
            if !coding.eq_ignore_ascii_case(b"chunked") {
                return Err((501, "transfer_coding_not_implemented"));
            }
            chunked += 1;
        }
    }
    if chunked > 1 {
        return Err((400, "chunked_twice"));
    }
    Ok(())
}

fn bad_request(body: &str, code: &str) -> Admission {
    local(
        Kind::Rejected,
        400,
        body,
        vec![("x-edge-reason", code.to_string())],
    )
}

/// The request's host, normalised as in the cache key (RFC 9112 §3.2, §3.2.2): the target's
/// authority when it has one, else `Host`; an HTTP/1.1 request must carry exactly one valid
/// `Host`.
fn host_of(req: &RequestView<'_>) -> Result<String, &'static str> {
    let mut hosts = req.headers.all("host");
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err("duplicate_host");
    }
    let host = match first {
        // An empty `Host` names no host: only a target with an authority may go without one
        // (nginx answers 400 too).
        Some(v) if v.trim_ascii().is_empty() && req.authority.is_none() => return Err("bad_host"),
        Some(v) => Some(
            std::str::from_utf8(v)
                .ok()
                .filter(|h| valid_host(h))
                .ok_or("bad_host")?,
        ),
        None if req.version == Version::HTTP_11 && req.authority.is_none() => {
            return Err("missing_host")
        }
        None => None,
    };
    if let Some(a) = req.authority {
        if !valid_host(a) {
            return Err("bad_host");
        }
    }
    Ok(key::request_host(req.authority, host))
}

/// RFC 9110 §7.2 / RFC 3986 §3.2.2: `host [ ":" port ]`, host a reg-name, an IPv4 address or
/// a bracketed IPv6 literal. Empty is allowed (a target without an authority).
fn valid_host(h: &str) -> bool {
    let (name, port) = match h.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, after)) => {
                if v6.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                (
                    None,
                    after
                        .strip_prefix(':')
                        .map(Some)
                        .unwrap_or(if after.is_empty() { None } else { Some("x") }),
                )
            }
            None => return false,
        },
        None => match h.rsplit_once(':') {
            Some((n, p)) => (Some(n), Some(p)),
            None => (Some(h), None),
        },
    };
    let name_ok = name.is_none_or(|n| n.bytes().all(reg_name_byte));
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    name_ok && port_ok
}

/// A byte of an RFC 3986 `reg-name`: unreserved, sub-delims or `%` (percent-encoding). The
/// front's request-target check ([`super::front`]) builds on the same set.
pub(crate) fn reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'%'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
}

/// The client's address: the socket peer, or from `X-Forwarded-For` when the peer is a
/// trusted proxy (`[geo] trusted_proxies`).
fn client_ip(req: &RequestView<'_>, trusted: &[crate::net::IpNet]) -> IpAddr {
    if trusted.is_empty() {
        return req.peer;
    }
    let xff: Vec<&str> = req
        .headers
        .all("x-forwarded-for")
        .filter_map(|v| std::str::from_utf8(v).ok())
        .collect();
    if xff.is_empty() {
        return req.peer;
    }
    crate::geo::client_ip(req.peer, Some(&xff.join(",")), trusted)
}

/// The CORS headers of a response to a request whose `Origin` is allowed as `allowed`.
pub fn cors_headers(live: &Live, allowed: Option<&str>) -> Vec<(&'static str, String)> {
    let Some(origin) = allowed else {
        return Vec::new();
    };
    let mut h = vec![
        ("access-control-allow-origin", origin.to_string()),
        (
            "access-control-expose-headers",
            cors::EXPOSE_HEADERS.to_string(),
        ),
    ];
    if live.cors.varies() {
        h.push(("vary", "Origin".to_string()));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for ok in [
            "edge.example",
            "edge.example:8080",
            "127.0.0.1:80",
            "[::1]:8080",
            "[::1]",
            "",
            "a_b.example",
        ] {
            assert!(valid_host(ok), "{ok}");
        }
        for bad in [
            "local host",
            "localhost/x",
            "a@b",
            "[::1",
            "[zz]",
            "edge:80x",
            "edge:123456",
            "a\tb",
            "[::1]x",
        ] {
            assert!(!valid_host(bad), "{bad}");
        }
    }

    #[test]
    fn transfer_codings() {
        let te = |v: &'static [u8]| {
            [httparse::Header {
                name: "Transfer-Encoding",
                value: v,
            }]
        };
        for ok in [
            &b"chunked"[..],
            b"Chunked",
            b" chunked ",
            b"chunked,",
            b", chunked",
        ] {
            assert_eq!(
                framing(Headers::H1(&te(ok))),
                Ok(()),
                "{}",
                ok.escape_ascii()
            );
        }
        for (bad, status) in [
            (&b"gzip, chunked"[..], 501),
            (b"xchunked", 501),
            (b"chunked, identity", 501),
            (b"identity", 501),
            (b"chunked, chunked", 400),
        ] {
            assert_eq!(
                framing(Headers::H1(&te(bad))).map_err(|e| e.0),
                Err(status),
                "{}",
                bad.escape_ascii()
            );
        }
        let two = [
            httparse::Header {
                name: "Transfer-Encoding",
                value: b"gzip",
            },
            httparse::Header {
                name: "transfer-encoding",
                value: b"chunked",
            },
        ];
        assert_eq!(
            framing(Headers::H1(&two)).map_err(|e| e.0),
            Err(501),
            "codings over two fields"
        );
        assert_eq!(framing(Headers::H1(&[])), Ok(()));
    }

    #[test]
    fn headers_from_either_parse() {
        let raw = [
            httparse::Header {
                name: "Cookie",
                value: b"a=1",
            },
            httparse::Header {
                name: "Host",
                value: b"h",
            },
            httparse::Header {
                name: "cookie",
                value: b"b=2",
            },
        ];
        let h1 = Headers::H1(&raw);
        let mut map = http::HeaderMap::new();
        map.append("cookie", "a=1".parse().unwrap());
        map.append("host", "h".parse().unwrap());
        map.append("cookie", "b=2".parse().unwrap());
        for h in [h1, Headers::Map(&map)] {
            assert_eq!(
                h.all("cookie").collect::<Vec<_>>(),
                vec![&b"a=1"[..], &b"b=2"[..]]
            );
            assert_eq!(h.first("host"), Some("h"));
            assert!(!h.has("origin"));
            let mut sizes: Vec<_> = h.sizes().collect();
            sizes.sort();
            assert_eq!(sizes, vec![(4, 1), (6, 3), (6, 3)]);
        }
    }

    /// Small maps are read field by field, larger ones through the hash index: both give
    /// every value of a name in order, as `get_all` does.
    #[test]
    fn map_lookups_agree_with_get_all_at_every_size() {
        let names = ["cookie", "x-a", "cmcd-request", "host", "range", "x-b"];
        for n in 0..(2 * SCAN_MAX + 3) {
            let mut map = http::HeaderMap::new();
            for i in 0..n {
                map.append(names[i % names.len()], format!("v{i}").parse().unwrap());
            }
            for name in names
                .iter()
                .chain(&["if-range", "authorization", "Cookie", "X-A"])
            {
                let want: Vec<&[u8]> = map.get_all(*name).iter().map(|v| v.as_bytes()).collect();
                let got: Vec<&[u8]> = Headers::Map(&map).all(name).collect();
                assert_eq!(got, want, "{name} in a map of {n}");
                assert_eq!(Headers::Map(&map).has(name), !want.is_empty());
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 4_000, failure_persistence: None, ..Default::default() })]

        /// `Host` validation never panics, and what it accepts has no byte that could end or
        /// split a path, a header or a URI authority.
        #[test]
        fn host_validation(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            let h = String::from_utf8_lossy(&raw);
            if valid_host(&h) {
                proptest::prop_assert!(!h.bytes().any(|b| matches!(b, b'/' | b'\\' | b'@' | b'?' | b'#' | b' ' | b'\r' | b'\n' | 0)), "{:?}", h);
            }
        }
    }
}
