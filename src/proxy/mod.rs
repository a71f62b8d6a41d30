//! The player-facing proxy: the [`ProxyHttp`] phases, each short, over pure functions.
//!
//! On HTTP/1 connections [`front`] comes first and answers fresh memory hits itself; every
//! other request runs these phases, in the order Pingora runs them (docs/design.md, "Request
//! flow"):
//! 1. `request_filter`: [`gate::admit`] decides (the same function the front calls) and this
//!    phase carries the verdict out: a local answer, a purge, the control plane, or content.
//!    A GET under a `[[cache.slices]]` prefix is answered here from slice subrequests
//!    ([`slices`]), each of which runs these phases under its slice's key.
//!    An HTTP/2 fresh memory hit is answered here too ([`hot`]), by the pipeline's own
//!    header routines, without the cache machinery of step 2.
//! 2. `request_cache_filter` / `cache_key_callback`: GET and HEAD are cached under the key the
//!    gate computed; the cache lock coalesces a herd into one fetch; `cache_vary_filter`
//!    picks the variant ([`vary`]). `cache_hit_filter`: a request with `Authorization` is
//!    answered only from a response that allows it
//!    ([`crate::cache::policy::may_serve_stored`]); purges (bans).
//! 3. `upstream_peer`: origin choice ([`crate::origin::pools`]); connect failures retry on
//!    the next node; a request that met a pooled connection the origin had closed retries
//!    once on a fresh connection to the same node ([`crate::origin::reuse`]).
//!    `upstream_request_filter`: hop-by-hop fields out ([`crate::hop`]), the key's
//!    host, `Via`, the normalised `Accept-Encoding`.
//!    `connected_to_upstream` and `upstream_response_body_filter`: the node's answer time
//!    and body bytes ([`crate::metrics::upstream`]).
//! 4. `upstream_response_filter`: hop-by-hop fields out, unsafe methods invalidate;
//!    `response_cache_filter`: [`crate::cache::policy::decide`], on a revalidation's 304
//!    after its headers are merged into the stored ones ([`crate::cache::freshness`]).
//! 5. `response_filter`: playlist delivery handed to the [`playlist`] downstream module
//!    (decoded, filtered and rewritten for the viewer's token), then the edge's headers
//!    ([`compose`]) and `Age` on hits (the stored age plus the time in this cache).
//! 6. `logging`: one [`record::RequestRecord`] for the metrics and the access log.

pub mod compose;
pub mod fast_hit;
pub mod fill_pace;
pub mod front;
pub mod gate;
pub mod hot;
pub mod playlist;
pub mod prefetch;
pub mod range;
pub mod record;
pub mod request_id;
pub mod slices;
pub mod tokens;
pub mod vary;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, StatusCode};
use pingora_cache::storage::HitHandler;
use pingora_cache::{CacheKey, CacheMeta, CachePhase, ForcedFreshness, RespCacheable};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{ProxyHttp, Session};

use crate::cache::bans::Verdict;
use crate::cache::freshness;
use crate::cache::policy;
use crate::hop;
use crate::metrics::upstream::NodeAttempt;
use crate::origin::pools::Choice;
use crate::origin::reuse::{self, FreshRetry};
use crate::state::{EdgeState, Live};
use gate::{Admission, ContentRequest, Kind, Reply};
use playlist::PlaylistOut;
use record::RequestRecord;

/// Per-request context.
pub struct RequestCtx {
    /// The reloadable settings this request runs with, taken once when it starts: a reload
    /// in the middle of it changes nothing for it (its origin choices index these pools).
    live: Arc<Live>,
    start: Instant,
    kind: Kind,
    /// The client address (peer, or X-Forwarded-For behind a trusted proxy).
    client: std::net::IpAddr,
    /// `Access-Control-Allow-Origin` to send, when the request's Origin is allowed.
    cors_origin: Option<String>,
    /// The content request the gate admitted (`None` for every other kind).
    content: Option<ContentRequest>,
    /// What picks the origin node ([`ContentRequest::route_key`]).
    route_key: Vec<u8>,
    /// Nodes this request already tried, as (pool, node): a retry goes elsewhere.
    tried: Vec<(usize, usize)>,
    upstream: Option<Choice>,
    /// Whether this node attempt may still be retried on a fresh connection.
    fresh_retry: FreshRetry,
    upstream_started: Option<Instant>,
    /// The response status of the current attempt, once its header arrived.
    upstream_status: Option<u16>,
    /// The current attempt's per-node metrics, from its connection being ready.
    node_attempt: Option<NodeAttempt>,
    /// Status answered locally (health, preflight, rejections).
    local_status: Option<u16>,
    /// The origin's 304 to a revalidation, until its headers update the stored ones.
    not_modified: Option<Box<ResponseHeader>>,
    /// The request id and trace context the gate gave the request.
    ids: Option<request_id::Ids>,
    /// A local answer's reason code (`x-edge-reason`), for the access log.
    reason: Option<String>,
    /// When the response head was ready to go (time to first byte).
    ttfb: Option<Duration>,
    /// The target as the client sent it, when the origin is asked for another one (tokens
    /// out), for the access log.
    client_target: Option<String>,
    /// This request's hand-over of its fill ([`fill_pace`]): the delegate it prepared, or
    /// that it is the filler itself.
    fill: Fill,
    /// The cache result of an answer the cache machinery did not make: assembled from slices
    /// ([`slices::serve`]), or an HTTP/2 hot hit ([`hot`]).
    answered_cache: Option<&'static str>,
    /// A media playlist being fetched under a `[[prefetch]]` prefix, recorded at its end.
    playlist: Option<prefetch::Capture>,
}

/// A request's part in a fill handed over ([`fill_pace::delegate`]).
enum Fill {
    /// Fills itself if elected (HTTP/1, hits, anything that prepared no filler).
    Own,
    /// Prepared a filler; [`Delegate::started`] says whether the lock handed it the fill.
    Delegated(crate::cache::handoff::Delegate),
    /// A filler subrequest: its only client is a drain.
    Filler,
    /// A filler that stopped at a response not stored (its error is not logged).
    Stopped,
    /// A slice subrequest ([`slices`]): asks the origin for this part of the object.
    Slice(slices::Part),
    /// A prefetch subrequest ([`prefetch`]): fills the cache ahead of a player.
    Prefetch,
}

impl RequestCtx {
    fn token(&self) -> Option<&tokens::Granted> {
        self.content.as_ref().and_then(|c| c.token.as_ref())
    }

    fn path(&self) -> &str {
        self.content.as_ref().map_or("", |c| c.path.as_str())
    }

    /// Whether this request was elected to fill and handed the fill to its filler.
    fn handed_over(&self) -> bool {
        matches!(&self.fill, Fill::Delegated(d) if d.started())
    }
}

/// The proxy.
pub struct EdgeProxy {
    pub state: &'static EdgeState,
    /// Keys whose HTTP/2 fillers found the response not stored ([`fill_pace::Unstored`]).
    unstored: fill_pace::Unstored,
}

impl EdgeProxy {
    pub fn new(state: &'static EdgeState) -> Self {
        EdgeProxy {
            state,
            unstored: fill_pace::Unstored::default(),
        }
    }
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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Write a complete small response from the edge itself, with the request's id.
async fn respond(session: &mut Session, reply: &Reply, ctx: &RequestCtx) -> Result<()> {
    let mut resp = ResponseHeader::build(reply.status, Some(5 + reply.headers.len()))?;
    if let Some(ids) = &ctx.ids {
        resp.insert_header(request_id::REQUEST_ID, ids.request_id.as_str())?;
    }
    resp.insert_header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    resp.insert_header(http::header::CONTENT_LENGTH, reply.body.len().to_string())?;
    resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    for (k, v) in &reply.headers {
        resp.append_header(*k, v.as_str())?;
    }
    let head_only = session.req_header().method == Method::HEAD || reply.body.is_empty();
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session
            .write_response_body(Some(Bytes::copy_from_slice(reply.body.as_bytes())), true)
            .await?;
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
        self.state
            .metrics
            .upstream_requests
            .with_label_values(&[choice.pool_name(), &choice.node_label(), what])
            .inc();
    }

    /// Count a failed attempt against its node (passive health) and in the metrics.
    fn upstream_failed(&self, ctx: &RequestCtx, what: &str) {
        self.upstream_counted(ctx, what);
        if ctx.kind == Kind::Api {
            return;
        }
        let Some(choice) = &ctx.upstream else { return };
        if let Some(pool) = ctx.live.pools.pool(choice) {
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
        let pools = Arc::clone(&ctx.live.pools);
        if ctx.fresh_retry == FreshRetry::Pending {
            if let Some(same) = ctx.upstream.take() {
                ctx.fresh_retry = FreshRetry::Used;
                ctx.upstream_status = None;
                let mut peer = pools.peer(&same);
                reuse::fresh(&mut peer);
                return Ok((same, peer));
            }
        }
        let choice = pools.choose(&ctx.route_key, &ctx.tried).ok_or_else(|| {
            Error::explain(ErrorType::ConnectNoRoute, "no origin node left to try")
        })?;
        ctx.tried.push((choice.pool, choice.node));
        ctx.fresh_retry = FreshRetry::Unused;
        ctx.upstream_status = None;
        let peer = pools.peer(&choice);
        Ok((choice, peer))
    }

    /// After a failed attempt: when it met a pooled connection the origin had closed and the
    /// request may be sent again ([`reuse::may_resend`]), mark the next attempt as the same
    /// node on a fresh connection and count it. Not a strike against the node.
    fn resend_on_fresh_connection(
        &self,
        session: &Session,
        ctx: &mut RequestCtx,
        e: &Error,
        reused: bool,
    ) -> bool {
        if ctx.kind == Kind::Api || !reuse::is_stale(e, reused, ctx.upstream_status.is_some()) {
            return false;
        }
        let body_truncated = session.as_ref().retry_buffer_truncated();
        if !reuse::may_resend(
            &session.req_header().method,
            body_truncated,
            session.response_written().is_some(),
            ctx.fresh_retry,
        ) {
            return false;
        }
        let Some(choice) = &ctx.upstream else {
            return false;
        };
        ctx.fresh_retry = FreshRetry::Pending;
        self.state
            .metrics
            .upstream_retries
            .with_label_values(&[choice.pool_name(), "reused_connection"])
            .inc();
        true
    }

    /// The attempt's connection to its node is ready: its per-node metrics start (the
    /// control plane is no origin node and has none).
    fn start_node_attempt(&self, ctx: &mut RequestCtx) {
        ctx.node_attempt = ctx.upstream.as_ref().map(|c| {
            self.state
                .metrics
                .upstream_nodes
                .attempt(c.pool_name(), &c.node_label())
        });
    }

    /// An allowed `PURGE`: ban that path on this host; `Soft-Purge: 1` marks it stale. 202
    /// when it holds here but the fleet did not get it ([`crate::fleet`]).
    async fn purge(
        &self,
        session: &mut Session,
        purge: crate::cache::purge::Purge,
        ctx: &RequestCtx,
    ) -> Result<u16> {
        let (status, body) = match self.state.purge(purge).await {
            Ok((_, crate::fleet::Sent::Unavailable(_))) => (
                202,
                "purged on this edge only: the fleet database is unavailable\n",
            ),
            Ok(_) => (200, "purged\n"),
            Err(e) => {
                tracing::error!(error = %e, "purge could not be recorded");
                (500, "purge failed\n")
            }
        };
        let reply = Reply {
            kind: Kind::Local,
            status,
            body: body.to_string(),
            headers: Vec::new(),
            refusal: None,
        };
        respond(session, &reply, ctx).await?;
        Ok(status)
    }

    /// RFC 9111 §4.4: a non-error response to an unsafe method invalidates the target URI and
    /// the same-host URIs in `Location` and `Content-Location`.
    async fn invalidate_after_unsafe(&self, resp: &ResponseHeader, ctx: &RequestCtx) {
        let Some(c) = &ctx.content else { return };
        let cache = self.state.cache;
        cache.invalidate(&c.key).await;
        for field in [http::header::LOCATION, http::header::CONTENT_LOCATION] {
            let Some(target) = resp.headers.get(&field).and_then(|v| v.to_str().ok()) else {
                continue;
            };
            let Ok(uri) = target.parse::<http::Uri>() else {
                continue;
            };
            let same_host = uri
                .authority()
                .is_none_or(|a| crate::cache::key::request_host(Some(a.as_str()), None) == c.host);
            let Ok(path) = crate::path::normalize(uri.path()) else {
                continue;
            };
            if same_host && path.starts_with('/') {
                let query =
                    crate::cache::key::key_query(&ctx.live.config.cache.keys, &path, uri.query());
                cache
                    .invalidate(&crate::cache::key::for_request(
                        &c.host,
                        &path,
                        query.as_deref(),
                    ))
                    .await;
            }
        }
    }

    /// [`fill_pace::stall_timeout`] for the response being written.
    fn pace_fill(&self, session: &mut Session, live: &Live) {
        let http2 = session.as_downstream().is_http2();
        let phase = session.cache.phase();
        if !http2 || !matches!(phase, CachePhase::Miss | CachePhase::Expired) {
            return;
        }
        let filling = self
            .state
            .cache
            .storage
            .filling(crate::cache::store::key_of(session.cache.cache_key()));
        let cfg = &live.config;
        let timeout = fill_pace::stall_timeout(
            http2,
            phase,
            filling,
            cfg.cache.fill_stall,
            cfg.server.limits.send_timeout,
        );
        if timeout.is_some() {
            session.as_downstream_mut().set_write_timeout(timeout);
        }
    }

    /// Write an HTTP/2 hot hit ([`hot`]) and account it as the front does.
    async fn serve_hot(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        hot: hot::Hot,
    ) -> Result<()> {
        // Counted before the write, so a client that has its answer sees it counted.
        self.state.metrics.front_hits.inc();
        ctx.local_status = Some(hot.header.status.as_u16());
        ctx.answered_cache = Some("HIT");
        ctx.ttfb = Some(ctx.start.elapsed());
        let head_only = hot.body.is_none();
        session
            .write_response_header(Box::new(hot.header), head_only)
            .await?;
        if let Some(body) = hot.body {
            session.write_response_body(Some(body), true).await?;
        }
        Ok(())
    }

    /// For an HTTP/2 GET that may miss, the filler its fill would be handed to
    /// ([`fill_pace::delegate`]).
    async fn prepare_filler(&self, session: &Session, ctx: &mut RequestCtx) {
        let Some(content) = ctx.content.as_mut() else {
            return;
        };
        let key = crate::cache::store::key_of(&content.key);
        let needs_none = self.state.cache.storage.cached_or_filling(key)
            || self.unstored.recent(key, Instant::now());
        if !fill_pace::may_delegate(
            session.as_downstream().is_http2(),
            &session.req_header().method,
            content.upgrade,
            session.subrequest_spawner.is_some(),
            needs_none,
        ) {
            return;
        }
        if let Some(d) = fill_pace::delegate(session, content, &ctx.live, ctx.ids.as_ref()).await {
            ctx.fill = Fill::Delegated(d);
        }
    }

    /// The cache result a client is told: a request that handed its fill over read it as a
    /// waiter, but it was the miss.
    fn cache_result(session: &Session, ctx: &RequestCtx) -> &'static str {
        if let Some(c) = ctx.answered_cache {
            c
        } else if ctx.handed_over() {
            "MISS"
        } else {
            cache_label(session.cache.phase())
        }
    }

    /// Whether a cacheable response fits in the fill memory budget; one that does not is
    /// counted and streams through uncached.
    fn fits_fill_budget(&self, resp: &ResponseHeader) -> bool {
        let len = resp
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let storage = &self.state.cache.storage;
        if storage.fill_budget().fits(len) {
            return true;
        }
        self.state
            .cache
            .stats
            .fills_over_budget
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        false
    }

    /// Whether a slice subrequest's response is stored: a `206` that is exactly its slice
    /// ([`slices::plan::slice_of`]), under the policy a `200` of the object would meet
    /// (anything else, e.g. the `200` of an origin that ignores `Range`, streams through).
    fn slice_cacheable(
        &self,
        resp: &ResponseHeader,
        part: slices::Part,
        ctx: &RequestCtx,
        ex: policy::Exchange,
        revalidated: bool,
    ) -> RespCacheable {
        // A revalidated slice's stored header is a 206 already; a new one must be its slice.
        if !revalidated && slices::plan::slice_of(resp, part.index, part.size).is_none() {
            return RespCacheable::Uncacheable(pingora_cache::NoCacheReason::Custom("not_a_slice"));
        }
        let mut whole = resp.clone();
        if whole.set_status(StatusCode::OK).is_err() {
            return RespCacheable::Uncacheable(pingora_cache::NoCacheReason::Custom("not_a_slice"));
        }
        match policy::decide(&whole, ctx.path(), &ctx.live.config.cache, ex) {
            RespCacheable::Cacheable(mut meta) => {
                // A stale slice is revalidated by its own subrequest, which alone knows its
                // range: Pingora's background revalidation would ask for the whole object.
                meta.disable_serve_stale();
                if meta.response_header_mut().set_status(resp.status).is_err() {
                    return RespCacheable::Uncacheable(pingora_cache::NoCacheReason::Custom(
                        "not_a_slice",
                    ));
                }
                if !revalidated && !self.fits_fill_budget(resp) {
                    return RespCacheable::Uncacheable(pingora_cache::NoCacheReason::Custom(
                        "fill_memory",
                    ));
                }
                RespCacheable::Cacheable(meta)
            }
            decision => decision,
        }
    }

    /// Feed a media playlist being fetched under a prefetch prefix to its capture, and
    /// record it at its end ([`prefetch::Capture`]).
    fn capture_playlist(&self, body: Option<&[u8]>, end: bool, ctx: &mut RequestCtx) {
        let Some(capture) = ctx.playlist.as_mut() else {
            return;
        };
        if body.is_some_and(|b| !capture.push(b)) {
            ctx.playlist = None;
            return;
        }
        if end {
            if let Some(c) = ctx.playlist.take() {
                c.finish(&self.state.prefetch);
            }
        }
    }

    /// Count a refusal the gate made, by reason.
    fn count_refusal(&self, refusal: &gate::Refusal) {
        let m = &self.state.metrics;
        match refusal {
            gate::Refusal::Token(reason) => {
                m.token_rejections.with_label_values(&[reason.code()]).inc()
            }
            gate::Refusal::Geo(country) => {
                m.geo_blocked.with_label_values(&[country.as_str()]).inc()
            }
            gate::Refusal::Limit(limit) => m
                .connection_limits
                .with_label_values(&[limit.label()])
                .inc(),
            gate::Refusal::Framing => {}
        }
    }

    /// Whether this response is a playlist that must be rewritten for the viewer's token.
    fn rewrites_playlist(&self, resp: &ResponseHeader, ctx: &RequestCtx) -> bool {
        rewrites_playlist(
            ctx.token(),
            resp.status,
            resp.headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            ctx.path(),
        )
    }

    fn playlist_out(&self, resp: &ResponseHeader, ctx: &RequestCtx) -> Option<PlaylistOut> {
        if !self.rewrites_playlist(resp, ctx) {
            return None;
        }
        let c = ctx.content.as_ref()?;
        Some(match playlist::transform(&ctx.live, c, resp)? {
            Ok(t) => PlaylistOut::rewrite(t, &c.path),
            Err(e) => PlaylistOut::refused(&self.state.metrics, &e, &c.path),
        })
    }
}

/// The `Age` of an answer from a stored response (RFC 9111 §4.2.3): its age when stored
/// (the stored `Age`) plus its time in this cache. `None` when the answer is the origin's
/// (Pingora sets only the resident time on hits).
fn answer_age(cache: &pingora_cache::HttpCache) -> Option<u64> {
    if !matches!(
        cache.phase(),
        CachePhase::Hit | CachePhase::Stale | CachePhase::StaleUpdating
    ) {
        return None;
    }
    let meta = cache.maybe_cache_meta()?;
    Some(freshness::current_age(
        freshness::age_value(meta.headers()),
        meta.age(),
    ))
}

/// The access-log details of a request the pipeline answered.
fn log_details<'a>(
    session: &'a Session,
    ctx: &'a RequestCtx,
    e: Option<&Error>,
) -> record::Details<'a> {
    let req = session.req_header();
    let headers = gate::Headers::Map(&req.headers);
    let content = ctx.content.as_ref();
    // The target as the client sent it (tokens are redacted when written).
    let (path, query) = match ctx.client_target.as_deref() {
        Some(raw) => raw
            .split_once('?')
            .map_or((raw, None), |(p, q)| (p, Some(q))),
        None => (req.uri.path(), req.uri.query()),
    };
    record::Details {
        method: req.method.as_str(),
        proto: match req.version {
            http::Version::HTTP_2 => "HTTP/2",
            http::Version::HTTP_10 => "HTTP/1.0",
            _ => "HTTP/1.1",
        },
        host: content.map_or_else(|| headers.first("host").unwrap_or(""), |c| c.host.as_str()),
        path,
        query,
        query_rule: content.and_then(|c| c.query_rule.as_deref()),
        client: ctx.client,
        ttfb: ctx.ttfb,
        ids: ctx.ids.as_ref(),
        token: ctx.token(),
        reason: ctx.reason.as_deref(),
        range: record::field(headers, "range"),
        user_agent: record::field(headers, "user-agent"),
        referer: record::field(headers, "referer"),
        upstream: ctx.upstream.as_ref().map(|c| c.node_label()),
        upstream_status: ctx.upstream_status,
        error: e.map(|e| e.to_string()),
    }
}

/// Whether a response is a playlist that must be rewritten for the viewer's token (query
/// tokens ride on every URI; an `mh` claim filters variants), or an MPD an `mh` claim
/// filters (its `Representation`s).
fn rewrites_playlist(
    token: Option<&tokens::Granted>,
    status: StatusCode,
    content_type: Option<&str>,
    path: &str,
) -> bool {
    let Some(g) = token else { return false };
    let has_work = matches!(
        g.placement,
        tokens::Placement::Query
            | tokens::Placement::EdgeAuthQuery
            | tokens::Placement::CloudFrontQuery
    ) || g.claims.as_ref().is_some_and(|c| c.mh.is_some());
    let mh = g.claims.as_ref().is_some_and(|c| c.mh.is_some());
    has_work
        && status == StatusCode::OK
        && (crate::hls::is_playlist(content_type, path)
            || (mh && crate::dash::is_mpd(content_type, path)))
}

#[async_trait]
impl ProxyHttp for EdgeProxy {
    type CTX = RequestCtx;

    /// One downstream module, the playlist delivery ([`playlist`]: it must see the end of
    /// every response). Not Pingora's default compression module: video is not recompressed.
    fn init_downstream_modules(&self, modules: &mut pingora_core::modules::http::HttpModules) {
        modules.add_module(Box::new(playlist::PlaylistModuleBuilder {
            metrics: &self.state.metrics,
        }));
    }

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            live: self.state.live_full(),
            start: Instant::now(),
            kind: Kind::Content,
            client: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            cors_origin: None,
            content: None,
            route_key: Vec::new(),
            tried: Vec::new(),
            upstream: None,
            fresh_retry: FreshRetry::Unused,
            upstream_started: None,
            upstream_status: None,
            node_attempt: None,
            local_status: None,
            not_modified: None,
            fill: Fill::Own,
            answered_cache: None,
            playlist: None,
            ids: None,
            reason: None,
            ttfb: None,
            client_target: None,
        }
    }

    /// HTTP/2 requests hand their fills over ([`fill_pace`]); sliced objects are read by
    /// subrequests ([`slices`]).
    fn allow_spawning_subrequest(&self, session: &Session, ctx: &RequestCtx) -> bool {
        session.as_downstream().is_http2() || !ctx.live.config.cache.slices.is_empty()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        // A filler was admitted as the request it fills for.
        if let Some(order) = fill_pace::fill_order(session) {
            ctx.live = order.live;
            ctx.route_key = order.content.route_key();
            ctx.content = Some(order.content);
            ctx.ids = order.ids;
            ctx.fill = Fill::Filler;
            return Ok(false);
        }
        if let Some(order) = prefetch::order(session) {
            ctx.live = order.live;
            ctx.route_key = order.content.route_key();
            ctx.content = Some(order.content);
            ctx.ids = order.ids;
            ctx.fill = Fill::Prefetch;
            return Ok(false);
        }
        if let Some(order) = slices::slice_order(session) {
            ctx.live = order.live;
            ctx.route_key = order.content.route_key();
            ctx.content = Some(order.content);
            ctx.ids = order.ids;
            ctx.fill = Fill::Slice(order.part);
            return Ok(false);
        }
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let view = gate::RequestView::of(session.req_header(), peer, tls);
        let decision = gate::admit(&view, self.state, &ctx.live, unix_now());
        // A player's request (Pingora's own background revalidations are subrequests).
        if let (Admission::Content(content), None) = (&decision.admission, &session.subrequest_ctx)
        {
            prefetch::on_request(self.state, &ctx.live, &view, content);
        }
        ctx.client = decision.client;
        ctx.cors_origin = decision.cors_origin;
        ctx.ids = Some(decision.ids);
        match decision.admission {
            Admission::Local(reply) => {
                ctx.kind = reply.kind;
                ctx.local_status = Some(reply.status);
                ctx.reason = reply
                    .headers
                    .iter()
                    .find(|(k, _)| *k == "x-edge-reason")
                    .map(|(_, v)| v.clone());
                if let Some(r) = &reply.refusal {
                    self.count_refusal(r);
                    if r.closes() {
                        session.set_keepalive(None);
                    }
                }
                respond(session, &reply, ctx).await?;
                Ok(true)
            }
            Admission::Purge(purge) => {
                ctx.kind = Kind::Local;
                ctx.local_status = Some(self.purge(session, purge, ctx).await?);
                Ok(true)
            }
            Admission::Api { .. } => {
                ctx.kind = Kind::Api;
                Ok(false)
            }
            Admission::Content(content) => {
                // The normalised path (and the query without tokens) is what the origin sees too.
                if content.rewritten {
                    ctx.client_target =
                        Some(String::from_utf8_lossy(session.req_header().raw_path()).into_owned());
                    let uri = content
                        .target()
                        .parse()
                        .map_err(|_| Error::explain(ErrorType::InvalidHTTPHeader, "bad uri"))?;
                    session.req_header_mut().set_uri(uri);
                }
                ctx.route_key = content.route_key();
                if slices::applies(session, &content) {
                    ctx.content = Some(content);
                    let (status, cache) = slices::serve(self.state, session, ctx).await?;
                    ctx.local_status = Some(status);
                    ctx.answered_cache = Some(cache);
                    return Ok(true);
                }
                let request_id = ctx.ids.as_ref().map_or("", |i| i.request_id.as_str());
                let cors = ctx.cors_origin.as_deref();
                if let Some(hot) =
                    hot::answer(self.state, &ctx.live, session, &content, cors, request_id)
                {
                    ctx.content = Some(content);
                    self.serve_hot(session, ctx, hot).await?;
                    return Ok(true);
                }
                ctx.content = Some(content);
                self.prepare_filler(session, ctx).await;
                Ok(false)
            }
        }
    }

    fn request_cache_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        // An upgrade is a tunnel, never a cacheable exchange.
        let cacheable = ctx.content.as_ref().is_some_and(|c| !c.upgrade);
        if cacheable && matches!(session.req_header().method, Method::GET | Method::HEAD) {
            session.cache.enable(
                &self.state.cache.storage,
                None,
                None,
                Some(self.state.lock),
                None,
            );
            session
                .cache
                .set_max_file_size_bytes(ctx.live.config.cache.max_object as usize);
            fill_pace::queue_writes(session);
        }
        Ok(())
    }

    fn cache_key_callback(&self, _session: &Session, ctx: &mut RequestCtx) -> Result<CacheKey> {
        let c = ctx.content.as_ref().ok_or_else(|| {
            Error::explain(
                ErrorType::InternalError,
                "cache key without a content request",
            )
        })?;
        // Checked once against the cache if the lock elects it writer after its lookup
        // missed (`cache::handoff`: a writer may have finished in between).
        let mut key = c.key.clone();
        key.extensions
            .insert(crate::cache::handoff::Recheck::default());
        Ok(key)
    }

    async fn cache_hit_filter(
        &self,
        session: &mut Session,
        meta: &CacheMeta,
        _hit: &mut HitHandler,
        _is_fresh: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<ForcedFreshness>> {
        // `Authorization` (RFC 9111 §3.5): only a response that allows sharing answers it.
        if !policy::may_serve_stored(
            session.req_header(),
            meta.response_header(),
            &ctx.live.config.cache,
        ) {
            return Ok(Some(ForcedFreshness::ForceMiss));
        }
        // The epoch is when the object was stored or last revalidated.
        let Some(c) = &ctx.content else {
            return Ok(None);
        };
        Ok(
            match self
                .state
                .cache
                .bans
                .verdict(&c.host, &c.path, meta.epoch())
            {
                Verdict::Keep => None,
                Verdict::Expire => Some(ForcedFreshness::ForceExpired),
                Verdict::Remove => Some(ForcedFreshness::ForceMiss),
            },
        )
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        if ctx.kind == Kind::Api {
            let addr = self
                .state
                .control
                .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "no control plane"))?;
            let mut peer = HttpPeer::new(addr, false, String::new());
            peer.options.read_timeout = Some(Duration::from_secs(30));
            return Ok(Box::new(peer));
        }
        let (choice, mut peer) = self.next_attempt(ctx)?;
        // With a stale copy to fall back on, a down or slow origin must not hold the client
        // for the pool's full timeouts: give it `stale_timeout`, then stale-if-error answers.
        if matches!(
            session.cache.phase(),
            CachePhase::Expired | CachePhase::Stale | CachePhase::StaleUpdating
        ) {
            let t = ctx.live.config.cache.stale_timeout;
            let o = &mut peer.options;
            o.connection_timeout = o.connection_timeout.map(|c| c.min(t));
            o.total_connection_timeout = o.total_connection_timeout.map(|c| c.min(t));
            o.read_timeout = o.read_timeout.map(|c| c.min(t));
        }
        ctx.upstream = Some(choice);
        ctx.node_attempt = None;
        ctx.upstream_started = Some(Instant::now());
        Ok(peer)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        self.upstream_failed(ctx, "connect_error");
        // The connection never opened: safe to try another node for any method.
        if ctx.live.pools.has_alternative(&ctx.route_key, &ctx.tried) {
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
            && ctx.live.pools.has_alternative(&ctx.route_key, &ctx.tried);
        e.set_retry(retry);
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        hop::strip_request(req);
        if ctx.content.as_ref().is_some_and(|c| c.upgrade) {
            hop::forward_upgrade(session.req_header(), req)?;
        }
        if let Some(ids) = &ctx.ids {
            request_id::forward(ids, req)?;
        }
        if ctx.kind == Kind::Api {
            // The control plane trusts exactly these two headers: always set by the edge,
            // never passed through from the client.
            req.insert_header("x-edge-client-ip", ctx.client.to_string())?;
            req.remove_header("x-edge-country");
            if let Some(cc) = self.state.geo.as_ref().and_then(|g| g.lookup(ctx.client)) {
                req.insert_header("x-edge-country", cc.as_str())?;
            }
            // Proves to the control plane's loopback port that the request came through here.
            #[cfg(feature = "control")]
            if let Some(secret) = &self.state.control_secret {
                req.insert_header(crate::control::EDGE_SECRET_HEADER, secret.header_value())?;
            }
            return Ok(());
        }
        hop::strip_unkeyed(req, &ctx.live.config.server.forward_headers);
        // The origin sees the host as the cache key has it (or the pool's override).
        let host = ctx
            .upstream
            .as_ref()
            .and_then(|choice| ctx.live.pools.host_override(choice));
        match (host, &ctx.content) {
            (Some(h), _) => req.insert_header(http::header::HOST, h)?,
            (None, Some(c)) => req.insert_header(http::header::HOST, c.host.as_str())?,
            (None, None) => {}
        }
        req.append_header(
            http::header::VIA,
            format!("1.1 {}", ctx.live.config.server.name),
        )?;
        if let Some(c) = &ctx.content {
            // The origin is asked with the normalised encoding the cache variant is keyed on.
            req.insert_header(http::header::ACCEPT_ENCODING, c.accept_encoding)?;
            if !ctx.live.config.cache.forward_cmcd {
                for name in ["cmcd-request", "cmcd-object", "cmcd-status", "cmcd-session"] {
                    req.remove_header(name);
                }
            }
        }
        if let Fill::Slice(part) = &ctx.fill {
            req.insert_header(http::header::RANGE, part.range())?;
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let status = resp.status.as_u16();
        ctx.upstream_status = Some(status);
        if let Some(a) = &mut ctx.node_attempt {
            a.header(status);
        }
        // The answer carries this request's id, never one the origin stored with it.
        resp.remove_header(request_id::REQUEST_ID);
        if ctx.kind == Kind::Api {
            return Ok(());
        }
        // Before the response is stored: hop-by-hop fields belong to the origin's connection.
        if status == 101 && ctx.content.as_ref().is_some_and(|c| c.upgrade) {
            hop::strip_switching(resp)?;
        } else {
            hop::strip_response(resp);
        }
        if !session.req_header().method.is_safe() && (200..400).contains(&status) {
            self.invalidate_after_unsafe(resp, ctx).await;
        }
        if let Some(c) = &ctx.content {
            ctx.playlist = prefetch::Capture::of(resp, c, &ctx.live);
        }
        if status == 304 && session.cache.phase() == CachePhase::Stale {
            // A revalidation: `response_cache_filter` updates the stored headers from it.
            ctx.not_modified = Some(Box::new(resp.clone()));
        }
        if let Some(choice) = &ctx.upstream {
            let m = &self.state.metrics;
            m.upstream_requests
                .with_label_values(&[
                    choice.pool_name(),
                    &choice.node_label(),
                    &status.to_string(),
                ])
                .inc();
            if let Some(t) = ctx.upstream_started {
                m.upstream_duration
                    .with_label_values(&[choice.pool_name()])
                    .observe(t.elapsed().as_secs_f64());
            }
        }
        if status >= 500 {
            if let (Some(choice), Some(pool)) = (
                &ctx.upstream,
                ctx.upstream.as_ref().and_then(|c| ctx.live.pools.pool(c)),
            ) {
                if let Some(h) = pool.health.get(choice.node) {
                    h.on_failure(&pool.cfg.passive, crate::origin::health::now_ms());
                }
            }
            // Another node may have it: an idempotent request tries there instead of
            // handing the client this node's error.
            if session.req_header().method.is_idempotent()
                && ctx.live.pools.has_alternative(&ctx.route_key, &ctx.tried)
            {
                let mut e = Error::explain(
                    ErrorType::HTTPStatus(status),
                    "origin node answered 5xx; trying another",
                );
                e.set_retry(true);
                return Err(e);
            }
        } else if let Some(h) = ctx.upstream.as_ref().and_then(|c| ctx.live.pools.health(c)) {
            h.on_success();
        }
        Ok(())
    }

    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<RespCacheable> {
        // On a 304, `resp` is Pingora's merge (a few fields); RFC 9111 §3.2 wants them all.
        let revalidated = ctx.not_modified.is_some();
        let merged;
        let resp = match ctx.not_modified.take() {
            Some(not_modified) => {
                merged = freshness::merge_not_modified(resp, &not_modified);
                &merged
            }
            None => resp,
        };
        if vary::varies_on_everything(resp) {
            return Ok(RespCacheable::Uncacheable(
                pingora_cache::NoCacheReason::OriginNotCache,
            ));
        }
        let ex = policy::Exchange {
            now: SystemTime::now(),
            response_delay: ctx.upstream_started.map_or(Duration::ZERO, |t| t.elapsed()),
            authorization: policy::has_authorization(session.req_header()),
            blocking: ctx.content.as_ref().is_some_and(|c| c.blocking),
            part: self
                .state
                .cache
                .storage
                .parts()
                .lifetime(ctx.path(), std::time::Instant::now()),
        };
        if let Fill::Slice(part) = ctx.fill {
            return Ok(self.slice_cacheable(resp, part, ctx, ex, revalidated));
        }
        // A prefetch never stores an error: the player's own request asks again.
        if matches!(ctx.fill, Fill::Prefetch) && resp.status.as_u16() >= 400 {
            return Ok(RespCacheable::Uncacheable(
                pingora_cache::NoCacheReason::Custom("prefetch_error"),
            ));
        }
        Ok(
            match policy::decide(resp, ctx.path(), &ctx.live.config.cache, ex) {
                // A 304 updates the stored headers: no body is filled.
                RespCacheable::Cacheable(_) if !revalidated && !self.fits_fill_budget(resp) => {
                    RespCacheable::Uncacheable(pingora_cache::NoCacheReason::Custom("fill_memory"))
                }
                decision => decision,
            },
        )
    }

    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        _ctx: &mut RequestCtx,
        req: &RequestHeader,
    ) -> Option<[u8; 16]> {
        vary::variance(meta.response_header(), gate::Headers::Map(&req.headers))
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if matches!(ctx.fill, Fill::Filler) {
            if fill_pace::filler_stops(session.cache.phase(), session.cache.enabled()) {
                if let Some(c) = &ctx.content {
                    self.unstored
                        .note(crate::cache::store::key_of(&c.key), Instant::now());
                }
                ctx.fill = Fill::Stopped;
                return Err(Error::explain(
                    ErrorType::InternalError,
                    "filler: the response is not stored",
                ));
            }
            return Ok(());
        }
        if matches!(ctx.fill, Fill::Slice(_)) {
            return slices::mark(resp, cache_label(session.cache.phase()));
        }
        if matches!(ctx.fill, Fill::Prefetch) {
            let fills = !fill_pace::filler_stops(session.cache.phase(), session.cache.enabled());
            return prefetch::mark(resp, fills);
        }
        if let Some(out) = self.playlist_out(resp, ctx) {
            out.edit_header(resp, session.req_header().version)?;
            // A HEAD response has no body to transform (nor room for one).
            if session.req_header().method != Method::HEAD {
                if let Some(m) = session
                    .downstream_modules_ctx
                    .get_mut::<playlist::PlaylistModule>()
                {
                    m.deliver(out);
                }
            }
        }
        // Phases without a cache result (disabled, uninitialised) read as BYPASS.
        compose::apply(
            resp,
            compose::edge_headers(
                &ctx.live,
                Self::cache_result(session, ctx),
                ctx.cors_origin.as_deref(),
            ),
        )?;
        if let Some(age) = answer_age(&session.cache) {
            resp.insert_header(http::header::AGE, age)?;
        }
        if let Some(ids) = &ctx.ids {
            resp.insert_header(request_id::REQUEST_ID, ids.request_id.as_str())?;
        }
        ctx.ttfb = Some(ctx.start.elapsed());
        Ok(())
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        _fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora_core::protocols::Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        self.start_node_attempt(ctx);
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if let (Some(a), Some(b)) = (&ctx.node_attempt, body.as_ref()) {
            a.body(b.len());
        }
        self.capture_playlist(body.as_deref(), end_of_stream, ctx);
        Ok(None)
    }

    fn response_body_filter(
        &self,
        session: &mut Session,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        self.pace_fill(session, &ctx.live);
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
        range::range_type(session.req_header(), resp)
    }

    /// A filler's stop at a response not stored is how it ends, not a failure.
    fn suppress_error_log(&self, _session: &Session, ctx: &RequestCtx, _error: &Error) -> bool {
        matches!(ctx.fill, Fill::Stopped)
    }

    fn should_serve_stale(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
        error: Option<&Error>,
    ) -> bool {
        // Serve stale on origin failure (within stale-if-error) and during revalidation
        // (within stale-while-revalidate); the windows themselves live in the cache meta.
        match error {
            None => true,
            Some(e) => {
                e.esource() == &pingora_error::ErrorSource::Upstream
                    || matches!(e.etype(), ErrorType::HTTPStatus(s) if *s >= 500)
            }
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        // A filler is not a client's request: its origin request is counted upstream.
        if matches!(
            ctx.fill,
            Fill::Filler | Fill::Stopped | Fill::Slice(_) | Fill::Prefetch
        ) {
            return;
        }
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .or(ctx.local_status)
            .unwrap_or(if e.is_some() { 502 } else { 0 });
        if session
            .cache
            .lock_duration()
            .is_some_and(|d| d > Duration::ZERO)
            && !ctx.handed_over()
        {
            self.state.metrics.cache_coalesced.inc();
        }
        // Pingora's write timeout is set on HTTP/2 streams only (`front::H2`): a flow-control
        // window the client kept shut for `send_timeout`.
        if e.is_some_and(|e| e.etype == ErrorType::WriteTimedout) {
            self.state
                .metrics
                .connection_limits
                .with_label_values(&[crate::limits::Limit::SendTimeout.label()])
                .inc();
        }
        let record = RequestRecord {
            kind: ctx.kind,
            status,
            cache: if ctx.kind == Kind::Content {
                Self::cache_result(session, ctx)
            } else {
                "NONE"
            },
            bytes: session.body_bytes_sent(),
            elapsed: ctx.start.elapsed(),
            cmcd: ctx.content.as_ref().and_then(|c| c.cmcd.as_deref()),
        };
        let details = crate::access_log::wanted(&ctx.live.config.log, record.cache)
            .then(|| log_details(session, ctx, e));
        record.emit(self.state, &ctx.live, details);
    }
}
