//! The player-facing proxy: a thin [`ProxyHttp`] dispatcher over pure functions.
//!
//! On HTTP/1 connections [`front`] comes first and answers fresh memory hits itself; every
//! other request runs these phases, in the order Pingora runs them (DESIGN.md section 2):
//! 1. `request_filter`: normalise the path ([`crate::path`]), answer `/healthz`, `/readyz`
//!    and CORS preflights locally, refuse ambiguous paths with 400, check tokens
//!    ([`tokens`]) and country rules, answer `PURGE`.
//! 2. `request_cache_filter` / `cache_key_callback`: GET and HEAD are cached under
//!    [`crate::cache::key::for_request`]; the cache lock coalesces a herd into one fetch.
//! 3. `upstream_peer`: origin choice ([`crate::origin::pools`]); connect failures retry on
//!    the next node; a request that met a pooled connection the origin had closed retries
//!    once on a fresh connection to the same node ([`crate::origin::reuse`]).
//! 4. `response_cache_filter`: [`crate::cache::policy::decide`].
//! 5. `response_filter`: `X-Cache`, CORS headers, playlist rewriting set up (Pingora adds
//!    `Age` on hits); `response_body_filter` rewrites playlists for the viewer's token.
//! 6. `logging`: metrics and one access-log line.

pub mod cors;
pub mod front;
pub mod tokens;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, StatusCode};
use pingora_cache::lock::CacheKeyLockImpl;
use pingora_cache::storage::HitHandler;
use pingora_cache::{CacheKey, CacheMeta, CachePhase, ForcedFreshness, RespCacheable};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{ProxyHttp, Session};

use crate::cache::bans::Verdict;
use crate::cache::key;
use crate::cache::policy::{self, TtlPolicy};
use crate::cache::Cache;
use crate::config::Config;
use crate::metrics::Metrics;
use cors::Cors;
use crate::origin::pools::{Choice, Pools};
use crate::origin::reuse::{self, FreshRetry};

/// State shared by every request, built once at start.
pub struct EdgeState {
    pub config: Config,
    pub metrics: Metrics,
    pub cache: &'static Cache,
    pub lock: &'static CacheKeyLockImpl,
    pub ttl: TtlPolicy,
    pub cors: Cors,
    pub pools: Pools,
    /// The HTTPS listener's certificates (reloadable).
    pub tls: Option<std::sync::Arc<crate::tls::store::SniResolver>>,
    /// The GeoIP database (reloadable).
    pub geo: Option<std::sync::Arc<crate::geo::Geo>>,
    /// The embedded control plane's loopback address, when it runs.
    pub control: Option<std::net::SocketAddr>,
    /// Set once the player listener accepts connections.
    pub ready: AtomicBool,
    /// Set when shutdown starts: `/readyz` turns 503 so load balancers drain this node.
    pub draining: AtomicBool,
}

impl EdgeState {
    /// `/readyz`: 503 `starting` until the player listener accepts connections, 200 `ready`,
    /// then 503 `draining` once shutdown has started.
    pub fn readiness(&self) -> (u16, &'static str) {
        if self.draining.load(Ordering::Relaxed) {
            (503, "draining\n")
        } else if self.ready.load(Ordering::Relaxed) {
            (200, "ready\n")
        } else {
            (503, "starting\n")
        }
    }
}

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
    fn as_str(self) -> &'static str {
        match self {
            Kind::Content => "content",
            Kind::Api => "api",
            Kind::Local => "local",
            Kind::Preflight => "preflight",
            Kind::Rejected => "rejected",
        }
    }
}

/// Per-request context.
pub struct RequestCtx {
    start: Instant,
    kind: Kind,
    /// The normalised path: the one for the cache key and the origin request.
    path: String,
    /// The request's host, normalised as in the cache key.
    host: String,
    /// The client address (peer, or X-Forwarded-For behind a trusted proxy).
    client: std::net::IpAddr,
    /// `Access-Control-Allow-Origin` to send, when the request's Origin is allowed.
    cors_origin: Option<String>,
    /// Nodes this request already tried, as (pool, node): a retry goes elsewhere.
    tried: Vec<(usize, usize)>,
    /// What picks the node: host + path + query (the same on every edge, so a shield tier
    /// sees each object from one node).
    route_key: Vec<u8>,
    upstream: Option<Choice>,
    /// Whether this node attempt may still be retried on a fresh connection.
    fresh_retry: FreshRetry,
    upstream_started: Option<Instant>,
    /// The response status of the current attempt, once its header arrived.
    upstream_status: Option<u16>,
    /// Status answered locally (health, preflight, rejections).
    local_status: Option<u16>,
    /// The accepted token, if the request carried one.
    token: Option<tokens::Granted>,
    /// Set when this response is a playlist rewritten for the viewer's token.
    playlist: Option<PlaylistOut>,
}

/// A playlist being rewritten on its way to the viewer: every URI carries the token, and
/// variants above the token's `mh` (max height) are removed from master playlists.
struct PlaylistOut {
    rewriter: Option<crate::hls::PlaylistRewriter>,
    max_height: Option<u32>,
    /// With `max_height`, the whole playlist is gathered first (masters are small).
    gathered: Vec<u8>,
    /// The body length the response announced (before the rewrite removed the header).
    expected: Option<usize>,
    received: usize,
    ended: bool,
}

impl PlaylistOut {
    fn push(&mut self, chunk: &[u8], end: bool) -> Bytes {
        if self.max_height.is_some() {
            self.gathered.extend_from_slice(chunk);
            if !end {
                return Bytes::new();
            }
            let all = std::mem::take(&mut self.gathered);
            let filtered = crate::hls::filter_variants(&all, self.max_height.unwrap_or(u32::MAX));
            return match &mut self.rewriter {
                Some(rw) => Bytes::from(rw.rewrite_all(&filtered)),
                None => Bytes::from(filtered),
            };
        }
        match &mut self.rewriter {
            Some(rw) => {
                let out = rw.push(chunk);
                if !end {
                    return out;
                }
                let tail = rw.finish();
                let mut all = Vec::with_capacity(out.len() + tail.len());
                all.extend_from_slice(&out);
                all.extend_from_slice(&tail);
                Bytes::from(all)
            }
            None => Bytes::copy_from_slice(chunk),
        }
    }
}

/// The proxy.
pub struct EdgeProxy {
    pub state: &'static EdgeState,
}

fn cache_label(phase: CachePhase) -> &'static str {
    match phase {
        CachePhase::Hit => "HIT",
        CachePhase::Miss => "MISS",
        CachePhase::Stale | CachePhase::StaleUpdating => "STALE",
        CachePhase::Expired => "EXPIRED",
        CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => "REVALIDATED",
        _ => "BYPASS",
    }
}

/// The client's address: the socket peer, or from `X-Forwarded-For` when the peer is a
/// trusted proxy (`[geo] trusted_proxies`).
fn client_ip(session: &Session, trusted: &[crate::net::IpNet]) -> std::net::IpAddr {
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    if trusted.is_empty() {
        return peer;
    }
    let xff: Vec<&str> = session
        .req_header()
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if xff.is_empty() {
        return peer;
    }
    crate::geo::client_ip(peer, Some(&xff.join(",")), trusted)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Write a complete small response from the edge itself.
async fn respond(session: &mut Session, status: u16, body: &str, extra: &[(&str, String)]) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(4 + extra.len()))?;
    resp.insert_header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    for (k, v) in extra {
        resp.insert_header(k.to_string(), v.as_str())?;
    }
    let head_only = session.req_header().method == Method::HEAD || body.is_empty();
    session.write_response_header(Box::new(resp), head_only).await?;
    if !head_only {
        session.write_response_body(Some(Bytes::copy_from_slice(body.as_bytes())), true).await?;
    }
    Ok(())
}

impl EdgeProxy {
    /// Count a failed attempt in the metrics only.
    fn upstream_counted(&self, ctx: &RequestCtx, what: &str) {
        if ctx.kind == Kind::Api {
            return;
        }
        let Some(choice) = &ctx.upstream else { return };
        self.state.metrics.upstream_requests.with_label_values(&[choice.pool_name(), &choice.node_label(), what]).inc();
    }

    /// Count a failed attempt against its node (passive health) and in the metrics.
    fn upstream_failed(&self, ctx: &RequestCtx, what: &str) {
        self.upstream_counted(ctx, what);
        if ctx.kind == Kind::Api {
            return;
        }
        let Some(choice) = &ctx.upstream else { return };
        if let Some(pool) = self.state.pools.pool(choice) {
            if let Some(h) = pool.health.get(choice.node) {
                if h.on_failure(&pool.cfg.passive, crate::origin::health::now_ms()) {
                    tracing::warn!(pool = choice.pool_name(), node = %choice.addr, "origin node ejected after consecutive failures");
                }
            }
        }
    }

    /// The node and peer of the next attempt: the same node on a fresh connection after a
    /// stale pooled one ([`reuse`]), else the next node the pools choose.
    fn next_attempt(&self, ctx: &mut RequestCtx) -> Result<(Choice, Box<HttpPeer>)> {
        let pools = &self.state.pools;
        if ctx.fresh_retry == FreshRetry::Pending {
            if let Some(same) = ctx.upstream.take() {
                ctx.fresh_retry = FreshRetry::Used;
                ctx.upstream_status = None;
                let mut peer = pools.peer(&same);
                reuse::fresh(&mut peer);
                return Ok((same, peer));
            }
        }
        let choice = pools
            .choose(&ctx.route_key, &ctx.tried)
            .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "no origin node left to try"))?;
        ctx.tried.push((choice.pool, choice.node));
        ctx.fresh_retry = FreshRetry::Unused;
        ctx.upstream_status = None;
        let peer = pools.peer(&choice);
        Ok((choice, peer))
    }

    /// After a failed attempt: when it met a pooled connection the origin had closed and the
    /// request may be sent again ([`reuse::may_resend`]), mark the next attempt as the same
    /// node on a fresh connection and count it. Not a strike against the node.
    fn resend_on_fresh_connection(&self, session: &Session, ctx: &mut RequestCtx, e: &Error, reused: bool) -> bool {
        if ctx.kind == Kind::Api || !reuse::is_stale(e, reused, ctx.upstream_status.is_some()) {
            return false;
        }
        let body_truncated = session.as_ref().retry_buffer_truncated();
        if !reuse::may_resend(&session.req_header().method, body_truncated, session.response_written().is_some(), ctx.fresh_retry) {
            return false;
        }
        let Some(choice) = &ctx.upstream else { return false };
        ctx.fresh_retry = FreshRetry::Pending;
        self.state.metrics.upstream_retries.with_label_values(&[choice.pool_name(), "reused_connection"]).inc();
        true
    }

    /// `PURGE /path` from an allowed network: ban that path on this host (every query
    /// variant); `Soft-Purge: 1` marks it stale instead.
    async fn purge_method(&self, session: &mut Session, ctx: &RequestCtx, path: String) -> Result<u16> {
        let peer = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        let allowed = peer.is_some_and(|ip| self.state.config.purge.allow.iter().any(|n| n.contains(ip)));
        if !allowed {
            respond(session, 403, "purge not allowed from this address\n", &[]).await?;
            return Ok(403);
        }
        let soft = session.req_header().headers.get("soft-purge").is_some_and(|v| v.as_bytes() == b"1");
        let purge = crate::cache::purge::Purge {
            host: Some(ctx.host.clone()),
            path,
            query: session.req_header().uri.query().map(str::to_string),
            exact: true,
            soft,
        };
        match crate::cache::purge::apply(self.state.cache, purge).await {
            Ok(_) => {
                respond(session, 200, "purged\n", &[]).await?;
                Ok(200)
            }
            Err(e) => {
                tracing::error!(error = %e, "purge could not be recorded");
                respond(session, 500, "purge failed\n", &[]).await?;
                Ok(500)
            }
        }
    }

    /// Whether this response is a playlist that must be rewritten for the viewer's token.
    fn rewrites_playlist(&self, resp: &ResponseHeader, ctx: &RequestCtx) -> bool {
        rewrites_playlist(
            ctx.token.as_ref(),
            resp.status,
            resp.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
            &ctx.path,
        )
    }

    fn playlist_out(&self, resp: &ResponseHeader, ctx: &RequestCtx) -> Option<PlaylistOut> {
        if !self.rewrites_playlist(resp, ctx) {
            return None;
        }
        let g = ctx.token.as_ref()?;
        let tc = self.state.config.tokens.as_ref()?;
        const VALUE: &percent_encoding::AsciiSet =
            &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
        let encode = |v: &str| percent_encoding::utf8_percent_encode(v, VALUE).to_string();
        let append = match g.placement {
            tokens::Placement::Query => Some(format!("{}={}", tc.param, encode(&g.token))),
            tokens::Placement::EdgeAuthQuery => tc.edgeauth.as_ref().map(|ea| format!("{}={}", ea.param, encode(&g.token))),
            tokens::Placement::Path | tokens::Placement::Cookie => None,
        };
        let expected = resp
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        Some(PlaylistOut {
            rewriter: append.map(|a| crate::hls::PlaylistRewriter::new(a).with_own_host(ctx.host.clone())),
            max_height: g.claims.as_ref().and_then(|c| c.mh),
            gathered: Vec::new(),
            expected,
            received: 0,
            ended: false,
        })
    }

    fn cors_headers(&self, ctx: &RequestCtx) -> Vec<(&'static str, String)> {
        cors_headers(self.state, ctx.cors_origin.as_deref())
    }
}

/// Whether a response is a playlist that must be rewritten for the viewer's token (query
/// tokens ride on every URI; an `mh` claim filters variants).
fn rewrites_playlist(token: Option<&tokens::Granted>, status: StatusCode, content_type: Option<&str>, path: &str) -> bool {
    let Some(g) = token else { return false };
    let has_work = matches!(g.placement, tokens::Placement::Query | tokens::Placement::EdgeAuthQuery)
        || g.claims.as_ref().is_some_and(|c| c.mh.is_some());
    has_work && status == StatusCode::OK && crate::hls::is_playlist(content_type, path)
}

/// One access-log line (target `edge::access`, off unless `RUST_LOG` turns it on), written
/// by the pipeline's `logging` and by the front alike. `upstream` and `error` are only
/// computed when the line is written.
#[allow(clippy::too_many_arguments)]
fn access_log(
    method: &str,
    path: &str,
    status: u16,
    cache: &str,
    bytes: usize,
    elapsed: Duration,
    upstream: impl FnOnce() -> String,
    error: impl FnOnce() -> String,
) {
    if !tracing::enabled!(target: "edge::access", tracing::Level::INFO) {
        return;
    }
    tracing::info!(
        target: "edge::access",
        method = %method,
        path = %path,
        status,
        cache,
        bytes,
        ms = elapsed.as_secs_f64() * 1000.0,
        upstream = upstream(),
        error = error(),
    );
}

/// The CORS headers of a response to a request whose `Origin` is allowed as `allowed`.
fn cors_headers(state: &EdgeState, allowed: Option<&str>) -> Vec<(&'static str, String)> {
    let Some(origin) = allowed else { return Vec::new() };
    let mut h = vec![
        ("access-control-allow-origin", origin.to_string()),
        ("access-control-expose-headers", cors::EXPOSE_HEADERS.to_string()),
    ];
    if state.cors.varies() {
        h.push(("vary", "Origin".to_string()));
    }
    h
}

#[async_trait]
impl ProxyHttp for EdgeProxy {
    type CTX = RequestCtx;

    /// No downstream modules: Pingora's default adds a (disabled) compression module that
    /// costs an allocation and a filter pass on every request. Video is not recompressed.
    fn init_downstream_modules(&self, _modules: &mut pingora_core::modules::http::HttpModules) {}

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            start: Instant::now(),
            kind: Kind::Content,
            path: String::new(),
            host: String::new(),
            client: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            cors_origin: None,
            tried: Vec::new(),
            route_key: Vec::new(),
            upstream: None,
            fresh_retry: FreshRetry::Unused,
            upstream_started: None,
            upstream_status: None,
            local_status: None,
            token: None,
            playlist: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.client = client_ip(session, &self.state.config.geo.trusted_proxies);
        let req = session.req_header();
        let origin = req.headers.get(http::header::ORIGIN).and_then(|v| v.to_str().ok());
        ctx.cors_origin = self.state.cors.allow_origin(origin);

        let path = match crate::path::normalize(req.uri.path()) {
            Ok(p) => p,
            Err(e) => {
                ctx.kind = Kind::Rejected;
                ctx.local_status = Some(400);
                let extra = [("x-edge-reason", e.code().to_string())];
                respond(session, 400, "bad request path\n", &extra).await?;
                return Ok(true);
            }
        };

        ctx.host = key::request_host(
            req.uri.authority().map(|a| a.as_str()),
            req.headers.get(http::header::HOST).and_then(|v| v.to_str().ok()),
        );
        // A request that already passed this node is a forwarding loop.
        let me = &self.state.config.server.name;
        let looped = req.headers.get_all(http::header::VIA).iter().any(|v| {
            v.to_str().is_ok_and(|v| v.split(',').any(|hop| hop.split_whitespace().nth(1) == Some(me.as_str())))
        });
        if looped {
            ctx.kind = Kind::Rejected;
            ctx.local_status = Some(508);
            respond(session, 508, "loop_detected\n", &[("x-edge-reason", "loop_detected".to_string())]).await?;
            return Ok(true);
        }
        if req.method.as_str() == "PURGE" {
            ctx.kind = Kind::Local;
            let status = self.purge_method(session, ctx, path).await?;
            ctx.local_status = Some(status);
            return Ok(true);
        }

        match (req.method.clone(), path.as_str()) {
            (Method::GET | Method::HEAD, "/healthz") => {
                ctx.kind = Kind::Local;
                ctx.local_status = Some(200);
                respond(session, 200, "ok\n", &[]).await?;
                return Ok(true);
            }
            (Method::GET | Method::HEAD, "/readyz") => {
                ctx.kind = Kind::Local;
                let (status, body) = self.state.readiness();
                ctx.local_status = Some(status);
                respond(session, status, body, &[]).await?;
                return Ok(true);
            }
            (Method::OPTIONS, _) if req.headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD) => {
                ctx.kind = Kind::Preflight;
                let requested = req
                    .headers
                    .get(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let mut extra = self.cors_headers(ctx);
                if ctx.cors_origin.is_some() {
                    extra.push(("access-control-allow-methods", cors::ALLOW_METHODS.to_string()));
                    if !requested.is_empty() {
                        extra.push(("access-control-allow-headers", requested));
                    }
                    extra.push(("access-control-max-age", self.state.cors.max_age().to_string()));
                }
                ctx.local_status = Some(204);
                respond(session, 204, "", &extra).await?;
                return Ok(true);
            }
            _ => {}
        }

        if self.state.control.is_some() && (path == "/api/v1" || path.starts_with("/api/v1/")) {
            ctx.kind = Kind::Api;
            ctx.path = path;
            return Ok(false);
        }

        let mut path = path;
        let raw_query = session.req_header().uri.query().map(str::to_string);
        let mut query = raw_query.clone();
        if let Some(tc) = &self.state.config.tokens {
            let req = session.req_header();
            let cookie = req.headers.get(http::header::COOKIE).and_then(|v| v.to_str().ok());
            let checked = tokens::check(tc, &path, query.as_deref(), cookie, ctx.client, unix_now());
            path = checked.path;
            query = checked.query;
            match checked.verdict {
                Ok(granted) => ctx.token = granted,
                Err(reason) => {
                    ctx.kind = Kind::Rejected;
                    ctx.local_status = Some(403);
                    self.state.metrics.token_rejections.with_label_values(&[reason.code()]).inc();
                    let mut extra = self.cors_headers(ctx);
                    extra.push(("x-edge-reason", reason.code().to_string()));
                    respond(session, 403, &format!("{}\n", reason.code()), &extra).await?;
                    return Ok(true);
                }
            }
        }

        // Country rules (by path prefix, and the token's `cc` claim).
        let token_cc = ctx.token.as_ref().and_then(|g| g.claims.as_ref()).and_then(|c| c.cc.clone());
        let policy = &self.state.config.geo.policy;
        if token_cc.is_some() || policy.rule_for(&path).is_some() {
            let country = self.state.geo.as_ref().and_then(|g| g.lookup(ctx.client));
            if let Err(blocked) = policy.check(&path, country.as_ref().map(|c| c.as_str()), token_cc.as_deref()) {
                let status = policy.status();
                ctx.kind = Kind::Rejected;
                ctx.local_status = Some(status);
                let label = blocked.country.as_deref().unwrap_or("unknown");
                self.state.metrics.geo_blocked.with_label_values(&[label]).inc();
                let mut extra = self.cors_headers(ctx);
                extra.push(("x-edge-reason", blocked.reason.to_string()));
                respond(session, status, &format!("{}\n", blocked.reason), &extra).await?;
                return Ok(true);
            }
        }

        // The normalised path (and the query without tokens) is what the origin sees too.
        if path != session.req_header().uri.path() || query != raw_query {
            let uri = match &query {
                Some(q) => format!("{path}?{q}"),
                None => path.clone(),
            };
            let uri: http::Uri = uri.parse().map_err(|_| Error::explain(ErrorType::InvalidHTTPHeader, "bad uri"))?;
            session.req_header_mut().set_uri(uri);
        }
        ctx.route_key = format!("{}{}?{}", ctx.host, path, query.as_deref().unwrap_or("")).into_bytes();
        ctx.path = path;
        Ok(false)
    }

    fn request_cache_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        if ctx.kind == Kind::Content && matches!(session.req_header().method, Method::GET | Method::HEAD) {
            session.cache.enable(&self.state.cache.storage, None, None, Some(self.state.lock), None);
            session.cache.set_max_file_size_bytes(self.state.config.cache.max_object as usize);
        }
        Ok(())
    }

    fn cache_key_callback(&self, session: &Session, ctx: &mut RequestCtx) -> Result<CacheKey> {
        Ok(key::for_request(&ctx.host, &ctx.path, session.req_header().uri.query()))
    }

    async fn cache_hit_filter(
        &self,
        _session: &mut Session,
        meta: &CacheMeta,
        _hit: &mut HitHandler,
        _is_fresh: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<ForcedFreshness>> {
        // The epoch is when the object was stored or last revalidated.
        Ok(match self.state.cache.bans.verdict(&ctx.host, &ctx.path, meta.epoch()) {
            Verdict::Keep => None,
            Verdict::Expire => Some(ForcedFreshness::ForceExpired),
            Verdict::Remove => Some(ForcedFreshness::ForceMiss),
        })
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        if ctx.kind == Kind::Api {
            let addr = self.state.control.ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "no control plane"))?;
            let mut peer = HttpPeer::new(addr, false, String::new());
            peer.options.read_timeout = Some(Duration::from_secs(30));
            return Ok(Box::new(peer));
        }
        let (choice, mut peer) = self.next_attempt(ctx)?;
        // With a stale copy to fall back on, a down or slow origin must not hold the client
        // for the pool's full timeouts: give it `stale_timeout`, then stale-if-error answers.
        if matches!(session.cache.phase(), CachePhase::Expired | CachePhase::Stale | CachePhase::StaleUpdating) {
            let t = self.state.config.cache.stale_timeout;
            let o = &mut peer.options;
            o.connection_timeout = o.connection_timeout.map(|c| c.min(t));
            o.total_connection_timeout = o.total_connection_timeout.map(|c| c.min(t));
            o.read_timeout = o.read_timeout.map(|c| c.min(t));
        }
        ctx.upstream = Some(choice);
        ctx.upstream_started = Some(Instant::now());
        Ok(peer)
    }

    fn fail_to_connect(&self, _session: &mut Session, _peer: &HttpPeer, ctx: &mut RequestCtx, mut e: Box<Error>) -> Box<Error> {
        self.upstream_failed(ctx, "connect_error");
        // The connection never opened: safe to try another node for any method.
        if self.state.pools.has_alternative(&ctx.route_key, &ctx.tried) {
            e.set_retry(true);
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if self.resend_on_fresh_connection(session, ctx, &e, client_reused) {
            e.set_retry(true);
            return e;
        }
        if reuse::is_stale(&e, client_reused, ctx.upstream_status.is_some()) {
            // The origin closed an idle connection: not a strike against the node.
            self.upstream_counted(ctx, "error");
        } else if e.esource() == &pingora_error::ErrorSource::Upstream {
            self.upstream_failed(ctx, "error");
        }
        // Idempotent requests move to another node when nothing was sent to the client yet.
        let retry = session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated()
            && session.response_written().is_none()
            && self.state.pools.has_alternative(&ctx.route_key, &ctx.tried);
        e.set_retry(retry);
        e
    }

    async fn upstream_request_filter(&self, _session: &mut Session, req: &mut RequestHeader, ctx: &mut RequestCtx) -> Result<()> {
        if ctx.kind == Kind::Api {
            // The control plane trusts exactly these two headers: always set by the edge,
            // never passed through from the client.
            req.insert_header("x-edge-client-ip", ctx.client.to_string())?;
            req.remove_header("x-edge-country");
            if let Some(cc) = self.state.geo.as_ref().and_then(|g| g.lookup(ctx.client)) {
                req.insert_header("x-edge-country", cc.as_str())?;
            }
            return Ok(());
        }
        if let Some(choice) = &ctx.upstream {
            if let Some(host) = self.state.pools.host_override(choice) {
                req.insert_header(http::header::HOST, host)?;
            }
        }
        req.append_header(http::header::VIA, format!("1.1 {}", self.state.config.server.name))?;
        Ok(())
    }

    async fn upstream_response_filter(&self, session: &mut Session, resp: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
        let status = resp.status.as_u16();
        ctx.upstream_status = Some(status);
        if ctx.kind == Kind::Api {
            return Ok(());
        }
        if let Some(choice) = &ctx.upstream {
            let m = &self.state.metrics;
            m.upstream_requests.with_label_values(&[choice.pool_name(), &choice.node_label(), &status.to_string()]).inc();
            if let Some(t) = ctx.upstream_started {
                m.upstream_duration.with_label_values(&[choice.pool_name()]).observe(t.elapsed().as_secs_f64());
            }
        }
        if status >= 500 {
            if let (Some(choice), Some(pool)) = (&ctx.upstream, ctx.upstream.as_ref().and_then(|c| self.state.pools.pool(c))) {
                if let Some(h) = pool.health.get(choice.node) {
                    h.on_failure(&pool.cfg.passive, crate::origin::health::now_ms());
                }
            }
            // Another node may have it: an idempotent request tries there instead of
            // handing the client this node's error.
            if session.req_header().method.is_idempotent() && self.state.pools.has_alternative(&ctx.route_key, &ctx.tried) {
                let mut e = Error::explain(ErrorType::HTTPStatus(status), "origin node answered 5xx; trying another");
                e.set_retry(true);
                return Err(e);
            }
        } else if let Some(h) = ctx.upstream.as_ref().and_then(|c| self.state.pools.health(c)) {
            h.on_success();
        }
        Ok(())
    }

    fn response_cache_filter(&self, _session: &Session, resp: &ResponseHeader, ctx: &mut RequestCtx) -> Result<RespCacheable> {
        Ok(policy::decide(resp, &ctx.path, &self.state.ttl, SystemTime::now()))
    }

    async fn response_filter(&self, session: &mut Session, resp: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
        // Phases without a cache result (disabled, uninitialised) read as BYPASS.
        resp.insert_header("x-cache", cache_label(session.cache.phase()))?;
        if let Some(out) = self.playlist_out(resp, ctx) {
            // The body changes length; and it now carries a viewer's token, so no shared
            // cache downstream may keep it.
            resp.remove_header(&http::header::CONTENT_LENGTH);
            if session.req_header().version == http::Version::HTTP_11 {
                resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
            }
            resp.insert_header(http::header::CACHE_CONTROL, "private, no-store")?;
            ctx.playlist = Some(out);
        }
        for (k, v) in self.cors_headers(ctx) {
            if k == "vary" {
                resp.append_header(k, v)?;
            } else {
                resp.insert_header(k, v)?;
            }
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if let Some(out) = &mut ctx.playlist {
            let chunk = body.take().unwrap_or_default();
            out.received += chunk.len();
            // Pingora can end a Content-Length body with a task this filter never sees, so
            // the end is also recognised by length.
            let end = end_of_stream || out.expected.is_some_and(|n| out.received >= n);
            if out.ended {
                return Ok(None);
            }
            out.ended = end;
            let rewritten = out.push(&chunk, end);
            *body = (!rewritten.is_empty() || end_of_stream).then_some(rewritten);
        }
        Ok(None)
    }

    fn range_header_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora_proxy::RangeType {
        // A playlist rewritten per viewer is always sent whole.
        if self.rewrites_playlist(resp, ctx) {
            return pingora_proxy::RangeType::None;
        }
        pingora_proxy::range_header_filter(session.req_header(), resp, Some(200))
    }

    fn should_serve_stale(&self, _session: &mut Session, _ctx: &mut RequestCtx, error: Option<&Error>) -> bool {
        // Serve stale on origin failure (within stale-if-error) and during revalidation
        // (within stale-while-revalidate); the windows themselves live in the cache meta.
        match error {
            None => true,
            Some(e) => e.esource() == &pingora_error::ErrorSource::Upstream || matches!(e.etype(), ErrorType::HTTPStatus(s) if *s >= 500),
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let m = &self.state.metrics;
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .or(ctx.local_status)
            .unwrap_or(if e.is_some() { 502 } else { 0 });
        let cache = if ctx.kind == Kind::Content { cache_label(session.cache.phase()) } else { "NONE" };
        let kind = ctx.kind.as_str();
        let status_label = StatusCode::from_u16(status).map(|s| s.as_str().to_string()).unwrap_or_else(|_| status.to_string());
        m.requests.with_label_values(&[kind, &status_label, cache]).inc();
        let elapsed = ctx.start.elapsed();
        m.request_duration.with_label_values(&[kind, cache]).observe(elapsed.as_secs_f64());
        let sent = session.body_bytes_sent();
        m.bytes_sent.with_label_values(&[cache]).inc_by(sent as u64);
        if session.cache.lock_duration().is_some_and(|d| d > Duration::ZERO) {
            m.cache_coalesced.inc();
        }
        access_log(
            session.req_header().method.as_str(),
            session.req_header().uri.path(),
            status,
            cache,
            sent,
            elapsed,
            || ctx.upstream.as_ref().map(|c| c.node_label()).unwrap_or_default(),
            || e.map(|e| e.to_string()).unwrap_or_default(),
        );
    }
}
