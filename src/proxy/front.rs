//! The player listener's front door: fresh memory-tier hits answered without the full
//! proxy pipeline.
//!
//! Pingora's proxy pipeline spends ~16 µs of CPU on a cache hit of a small playlist: session
//! and module setup, the cache state machine, the meta and header rebuilds, several large
//! future moves (issue 3 has the profile). Players ask for the same hot playlists and
//! segments over and over, so the front reads each HTTP/1 request head itself and answers
//! the ones it can from the memory tier: the same status, headers and body the pipeline
//! would send, the same metrics and access-log line.
//!
//! What a request *is* — allowed or refused, which host, path, key and token — the front
//! never decides itself: it calls the pipeline's own gate ([`super::gate::admit`]). It only
//! adds "can I answer this myself": a plain `GET`/`HEAD` (whole, or one plain byte range)
//! that the gate admitted as content, for an object that [`crate::cache::Cache::fresh_memory_hit`]
//! offers (complete, fresh, unpurged, of the request's variance) as a 200 with a matching
//! `Content-Length`. The response headers come from [`super::compose`], as on the pipeline.
//! A playlist the pipeline rewrites for its viewer (query token, `mh`) is rewritten here by the
//! pipeline's own transform and sent as the pipeline sends it ([`rewrite`]). Everything else — local answers and refusals,
//! multipart or unsatisfiable ranges, conditionals, `Authorization`, bodies, `Upgrade`,
//! stale or missing objects, shutdown — and every HTTP/2 connection goes to the Pingora
//! proxy unchanged; the bytes already read are handed over as the start of the next
//! request, and the connection comes back to the front after. `[server] fast_hits = false`
//! turns the front's answers off. tests/it/differential.rs proves both paths answer alike.
//!
//! Pipelined requests (RFC 9112 §9.3.2) are answered in order, one at a time: the pipeline
//! gets one request and not a byte of the next ([`handover`], with the request's end found by
//! [`framing`]), and the front reads on from what came after it. Only a request whose end the
//! front cannot be sure of (a malformed head, an `Upgrade`, `CONNECT`, a contradictory length)
//! gets every byte, as before: Pingora answers it and closes the connection if more was there.
//!
//! Every player connection enters here ([`Front::process_new`]), so the connection limits
//! ([`crate::limits`]) hold in this one place for both paths: the caps as it arrives, the
//! send timeout around its stream, and the whole-head timeout on every HTTP/1 head — the
//! front reads each head whole, also the ones it hands over, so the pipeline never reads one.
//! For the same reason two head rules are applied here, before Pingora's parser: a head still
//! arriving that already broke a size limit ([`crate::limits::size`]; whole heads are the
//! gate's) and a request line Pingora would percent-encode rather than refuse are answered
//! (414/431, 400) as the gate answers, and the connection closed.

mod framing;
mod handover;
mod rewrite;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::{Buf, Bytes, BytesMut};
use pingora_core::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream, ServerApp};
use pingora_core::protocols::http::v2::server::H2Options;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::{Stream, ALPN};
use pingora_core::server::ShutdownWatch;
use pingora_proxy::HttpProxy;
use prometheus::IntCounter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::gate::{self, Admission, Headers, Kind, RequestView};
use super::record::RequestRecord;
use super::{compose, EdgeProxy};
use crate::limits::caps::{self, Caps};
use crate::limits::guard::{self as send_guard, SendGuard};
use crate::limits::head::{self, HeadClock, Wait};
use crate::limits::size;
use crate::limits::Limit;
use crate::state::{EdgeState, Live};
use framing::Framing;
use handover::Handover;

/// A request head longer than this goes to the pipeline (which allows much larger ones).
const HEAD_MAX: usize = 8 * 1024;
/// A request with more header lines than this goes to the pipeline.
pub(crate) const MAX_HEADERS: usize = 32;
/// How long an idle keep-alive connection waits for its next request (Pingora's default).
const IDLE: Duration = Duration::from_secs(60);

/// How long after its accept a connection that has answered nothing may still send its first
/// request once the edge shuts down (a request already on its way when the signal came).
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);
/// Bodies up to this size are copied next to the head so the answer leaves in one write.
const COALESCE_MAX: usize = 64 * 1024;
/// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n` (RFC 9113 §3.4).
const H2_PREFACE_LEN: usize = 24;
/// The answer to a head that did not arrive whole in time (RFC 9110 §15.5.9).
const REQUEST_TIMEOUT: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// The player-facing service: the front, then the Pingora proxy for everything else.
pub struct Front {
    proxy: Arc<HttpProxy<EdgeProxy>>,
    /// HTTP/2 connections: the proxy with a send timeout on each stream.
    h2: Arc<H2>,
    state: &'static EdgeState,
    /// `max_connections`, `max_connections_per_ip`.
    caps: Arc<Caps>,
    /// `edge_connection_limits_total{limit="send_timeout"}`, bound once.
    send_timeouts: IntCounter,
}

/// Pingora's HTTP/2 handling with Pingora's write timeout set on every stream: a client can
/// stall an HTTP/2 response by granting no flow-control window, with no socket write pending
/// for the [`SendGuard`] to see. Pingora's HTTP/2 write timeout runs per window reservation,
/// so it too measures a stall, not a whole body. (On HTTP/1 Pingora's write timeout would
/// cover a whole body write — a 64 MiB hit is one — so it is left off there.)
///
/// An HTTP/2 connection without open streams closes after the same idle time as an HTTP/1
/// keep-alive connection (Pingora keeps it forever by default; nginx: `keepalive_timeout`).
struct H2 {
    proxy: Arc<HttpProxy<EdgeProxy>>,
    send_timeout: Duration,
    /// The proxy's options with the idle timeout.
    options: HttpServerOptions,
    /// `[server] max_head`.
    max_head: u32,
}

#[async_trait]
impl HttpServerApp for H2 {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        session.set_write_timeout(Some(self.send_timeout));
        self.proxy.process_new_http(session, shutdown).await
    }

    /// Pingora's bounded defaults, with `max_head` as the largest header list a client may
    /// send (the h2 codec answers a larger one 431; h2 counts 32 bytes more per field).
    fn h2_options(&self) -> Option<H2Options> {
        let mut options = self
            .proxy
            .h2_options()
            .unwrap_or_else(pingora_core::protocols::http::v2::server::default_h2_options);
        options.max_header_list_size(self.max_head);
        Some(options)
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        Some(&self.options)
    }
}

/// The proxy's HTTP server options (Pingora's defaults) with HTTP/2's idle timeout.
fn h2_options(proxy: &HttpProxy<EdgeProxy>) -> HttpServerOptions {
    let mut options = proxy.server_options().cloned().unwrap_or_default();
    options.h2_idle_timeout = Some(IDLE);
    options
}

/// A hit the front answers.
struct Reply {
    head: BytesMut,
    body: Option<Bytes>,
    head_only: bool,
    /// 200, or 206 for a single range.
    status: u16,
    /// Body bytes sent (0 for HEAD).
    sent: usize,
    /// What its access-log line needs, when one is written (the request head is gone by
    /// then).
    log: Option<Box<HitLog>>,
    /// The request's CMCD, for the metrics and the log.
    cmcd: Option<Box<crate::cmcd::Report>>,
}

/// The parts of a front hit's request that its access-log line shows.
struct HitLog {
    client: IpAddr,
    host: String,
    /// The target as sent.
    target: String,
    query_rule: Option<String>,
    ids: super::request_id::Ids,
    token: Option<super::tokens::Granted>,
    range: Option<String>,
    user_agent: Option<String>,
    referer: Option<String>,
}

impl HitLog {
    fn details(&self) -> super::record::Details<'_> {
        let (path, query) = self
            .target
            .split_once('?')
            .map_or((self.target.as_str(), None), |(p, q)| (p, Some(q)));
        super::record::Details {
            method: "",
            proto: "HTTP/1.1",
            host: &self.host,
            path,
            query,
            query_rule: self.query_rule.as_deref(),
            client: self.client,
            ttfb: None,
            ids: Some(&self.ids),
            token: self.token.as_ref(),
            reason: None,
            range: self.range.as_deref().map(std::borrow::Cow::Borrowed),
            user_agent: self.user_agent.as_deref().map(std::borrow::Cow::Borrowed),
            referer: self.referer.as_deref().map(std::borrow::Cow::Borrowed),
            upstream: None,
            upstream_status: None,
            error: None,
        }
    }
}

enum Next {
    /// A complete request head of this many bytes that the front answers.
    Answer(usize, Box<Reply>),
    /// The pipeline takes the request (the bytes read so far go with it); when its head is
    /// whole and its end sure, the head's length and the body's framing, so that it gets
    /// that request alone ([`Handover`]).
    Pipeline(Option<(usize, Framing)>),
    /// More bytes are needed.
    Partial,
    /// A head refused before the pipeline sees it (still arriving and over a size limit, or
    /// a request line no target can be read from): answered, connection closed.
    Refuse(gate::Reply),
}

impl Front {
    pub fn new(proxy: HttpProxy<EdgeProxy>, state: &'static EdgeState) -> Self {
        let start = state.live();
        let limits = start.config.server.limits;
        let total = limits.max_connections.unwrap_or_else(caps::default_total);
        tracing::info!(
            max_connections = total,
            max_connections_per_ip = limits.max_connections_per_ip,
            header_timeout = ?limits.header_timeout,
            send_timeout = ?limits.send_timeout,
            "player connection limits (0: no cap)"
        );
        let caps = Caps::new(
            total,
            limits.max_connections_per_ip,
            start.config.geo.trusted_proxies.clone(),
        );
        let proxy = Arc::new(proxy);
        // Prefetches run as subrequests of this proxy, whichever path starts them.
        let app: Arc<dyn pingora_proxy::Subrequest + Send + Sync> = proxy.clone();
        let _ = state
            .prefetch
            .spawner
            .set(pingora_proxy::SubrequestSpawner::new(app));
        Front {
            h2: Arc::new(H2 {
                options: h2_options(&proxy),
                proxy: proxy.clone(),
                send_timeout: limits.send_timeout,
                max_head: u32::try_from(start.config.server.head.max_head).unwrap_or(u32::MAX),
            }),
            proxy,
            state,
            caps,
            send_timeouts: state
                .metrics
                .connection_limits
                .with_label_values(&[Limit::SendTimeout.label()]),
        }
    }

    fn counter(&self, limit: Limit) -> IntCounter {
        self.state
            .metrics
            .connection_limits
            .with_label_values(&[limit.label()])
    }

    fn count(&self, limit: Limit) {
        self.counter(limit).inc();
    }

    /// Look at the bytes read so far: a request the front answers, one for the pipeline, or
    /// not a whole head yet. `checked`: a prefix of `buf` seen before without an end of head.
    fn inspect(&self, buf: &[u8], checked: usize, client: IpAddr, tls: bool) -> Next {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(n)) => match self.decide(&req, client, tls) {
                Some(reply) => Next::Answer(n, Box::new(reply)),
                None => Next::Pipeline(framing::of(&req).map(|f| (n, f))),
            },
            Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
                // A head that will not fit the limits is refused before the rest is read.
                let head = head_end(buf).map_or(buf, |end| &buf[..end]);
                if let Some(o) = size::check_partial(&self.state.live().config.server.head, head) {
                    self.count(o.limit());
                    return Next::Refuse(gate::oversize(o));
                }
                if buf.len() < HEAD_MAX && head.len() == buf.len() {
                    Next::Partial
                } else if head::pipeline_reads_more(buf, checked) {
                    // Longer or with more fields than the front answers: the pipeline takes
                    // it, once whole — read here, under the head clock.
                    Next::Partial
                } else {
                    Next::Pipeline(framing::of_long_head(buf))
                }
            }
            // A request line with bytes a target may not hold: refused here, where Pingora
            // would percent-encode them and forward the request.
            Err(httparse::Error::Token | httparse::Error::Version) => {
                Next::Refuse(gate::bad_request_line())
            }
            // Malformed otherwise (the pipeline's parser sees the same fault): the pipeline
            // answers (400 and such).
            _ => Next::Pipeline(framing::of_long_head(buf)),
        }
    }

    /// Whether this request is a fresh memory hit the front may answer, and the answer. The
    /// gate decides what the request is, exactly as for the pipeline; the front only adds
    /// "can I answer this myself".
    fn decide(&self, req: &httparse::Request<'_, '_>, peer: IpAddr, tls: bool) -> Option<Reply> {
        // The request's one snapshot of the reloadable settings.
        let live = self.state.live();
        if !live.config.server.fast_hits {
            return None;
        }
        let state = self.state;
        let (plain, admitted) = plain_content(state, &live, req, peer, tls, super::unix_now())?;
        let Admitted {
            cors_origin,
            client,
            ids,
            content,
        } = admitted;
        let now = SystemTime::now();
        let headers = Headers::H1(req.headers);
        let fast = super::fast_hit::find(state, &content, headers, now)?;
        let hit = fast.hit;
        let len = hit.body.len();
        let edge_headers = compose::edge_headers(&live, "HIT", cors_origin.as_deref());
        let mut reply = if fast.rewrites {
            // Sent whole (the pipeline ignores `Range` on it too), rewritten for its viewer.
            let body = super::playlist::rewrite_hit(&live, &content, &hit)?;
            rewrite::reply(
                &hit,
                now,
                body,
                plain.head_only,
                &edge_headers,
                &ids.request_id,
            )
        } else {
            let (status, part) = match plain.range {
                None => (200, 0..len),
                Some(r) => (206, single_range(r, len)?),
            };
            reply(
                &hit,
                now,
                status,
                part,
                plain.head_only,
                &edge_headers,
                &ids.request_id,
            )
        };
        // The hit the front answers starts prefetches as the pipeline's would.
        super::prefetch::on_request(
            state,
            &live,
            &view_of(req, req.headers, &plain, peer, tls),
            &content,
        );
        reply.cmcd = content.cmcd;
        if crate::access_log::wanted(&live.config.log, "HIT") {
            let text = |name| super::record::field(headers, name).map(|v| v.into_owned());
            reply.log = Some(Box::new(HitLog {
                client,
                host: content.host,
                target: req.path.unwrap_or("").to_string(),
                query_rule: content.query_rule,
                ids,
                token: content.token,
                range: text("range"),
                user_agent: text("user-agent"),
                referer: text("referer"),
            }));
        }
        Some(reply)
    }

    /// Write a reply and account it like the pipeline's `logging` would.
    async fn answer(
        &self,
        stream: &mut Stream,
        reply: Reply,
        started: Instant,
    ) -> std::io::Result<()> {
        // Counted before the write, so a client that has its answer sees it counted.
        self.state.metrics.front_hits.inc();
        stream.write_all(&reply.head).await?;
        if let Some(body) = &reply.body {
            stream.write_all(body).await?;
        }
        stream.flush().await?;
        let record = RequestRecord {
            kind: Kind::Content,
            status: reply.status,
            cache: "HIT",
            bytes: reply.sent,
            elapsed: started.elapsed(),
            cmcd: reply.cmcd.as_deref(),
        };
        let details = reply.log.as_deref().map(|l| super::record::Details {
            method: if reply.head_only { "HEAD" } else { "GET" },
            // The head leaves in the first write.
            ttfb: Some(record.elapsed),
            ..l.details()
        });
        record.emit(self.state, &self.state.live(), details);
        Ok(())
    }

    /// The head being read did not arrive whole in time: count it, and when part of one
    /// arrived, answer 408 (RFC 9110 §15.5.9; nginx closes without an answer) and close.
    async fn head_timed_out(&self, stream: &mut Stream, buf: &[u8]) -> Option<Stream> {
        self.count(Limit::HeaderTimeout);
        if !buf.is_empty() {
            let _ = pingora_timeout::fast_timeout::fast_timeout(Duration::from_secs(1), async {
                stream.write_all(REQUEST_TIMEOUT).await?;
                stream.flush().await?;
                // Half-close first, so the answer is not lost to a reset if the client sends
                // more before the connection is dropped.
                AsyncWriteExt::shutdown(stream).await
            })
            .await;
        }
        None
    }

    /// Answer a head the front refuses itself as the gate would answer it, and close without
    /// reading the rest (as nginx does).
    async fn refuse(
        &self,
        stream: &mut Stream,
        reply: gate::Reply,
        client: IpAddr,
    ) -> Option<Stream> {
        let started = Instant::now();
        // The head was never read whole: its id is a new one (no client id could be read).
        let ids = super::request_id::Ids {
            request_id: self.state.ids.request_id(),
            trace: None,
        };
        let head = local_answer(&reply, &ids.request_id);
        let _ = pingora_timeout::fast_timeout::fast_timeout(Duration::from_secs(2), async {
            stream.write_all(&head).await?;
            stream.flush().await?;
            AsyncWriteExt::shutdown(stream).await?;
            // A lingering close: what the client still sends is read and dropped (briefly),
            // so the close is not a reset that could destroy the answer before it is read.
            let mut scratch = [0u8; 4096];
            while stream.read(&mut scratch).await? > 0 {}
            Ok::<_, std::io::Error>(())
        })
        .await;
        let record = RequestRecord {
            kind: reply.kind,
            status: reply.status,
            cache: "NONE",
            bytes: reply.body.len(),
            elapsed: started.elapsed(),
            cmcd: None,
        };
        let live = self.state.live();
        // The head was never read whole: no method or target to show.
        let details = crate::access_log::wanted(&live.config.log, record.cache).then(|| {
            super::record::Details {
                method: "-",
                proto: "HTTP/1.1",
                host: "",
                path: "-",
                query: None,
                query_rule: None,
                client,
                ttfb: None,
                ids: Some(&ids),
                token: None,
                reason: reply
                    .headers
                    .iter()
                    .find(|(k, _)| *k == "x-edge-reason")
                    .map(|(_, v)| v.as_str()),
                range: None,
                user_agent: None,
                referer: None,
                upstream: None,
                upstream_status: None,
                error: None,
            }
        });
        record.emit(self.state, &live, details);
        None
    }

    /// Serve one HTTP/1 connection (which arrived at `accepted`): hits here, the rest through
    /// the pipeline.
    async fn serve_h1(
        self: &Arc<Self>,
        mut stream: Stream,
        client: IpAddr,
        accepted: Instant,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let mut watch = shutdown.clone();
        // The listener's scheme, for CloudFront policies (the gate's `RequestView::tls`).
        let tls = pingora_core::protocols::Ssl::get_ssl_digest(&*stream).is_some();
        let mut buf = BytesMut::with_capacity(4096);
        let mut clock = HeadClock::start(
            self.state.live().config.server.limits.header_timeout,
            accepted,
        );
        // A prefix of `buf` inspected before and found to hold no end of head.
        let mut checked = 0;
        // Whether a request has been answered on this connection (see the shutdown branch).
        let mut answered = false;
        loop {
            // Take the next request head, or give the connection to the pipeline.
            let mut to_pipeline = *watch.borrow();
            let mut request = None;
            while !to_pipeline {
                let started = Instant::now();
                match self.inspect(&buf, checked, client, tls) {
                    Next::Answer(n, reply) => {
                        if self.answer(&mut stream, *reply, started).await.is_err() {
                            return None;
                        }
                        buf.advance(n);
                        checked = 0;
                        answered = true;
                        clock.next_request(!buf.is_empty(), Instant::now());
                        to_pipeline = *watch.borrow();
                        continue;
                    }
                    Next::Pipeline(framed) => {
                        request = framed;
                        to_pipeline = true;
                    }
                    Next::Refuse(reply) => return self.refuse(&mut stream, reply, client).await,
                    Next::Partial => {
                        checked = buf.len();
                        if buf.capacity() - buf.len() < 1024 {
                            buf.reserve(4096);
                        }
                        let (wait, idle) = match clock.wait(Instant::now()) {
                            Wait::Idle => (IDLE, true),
                            Wait::For(left) => (left, false),
                            Wait::Expired => return self.head_timed_out(&mut stream, &buf).await,
                        };
                        let read = tokio::select! {
                            biased;
                            // Pingora's shared coarse timers: a tokio timer per read would wake
                            // the runtime's driver (an eventfd write) on every request.
                            r = pingora_timeout::fast_timeout::fast_timeout(wait, stream.read_buf(&mut buf)) => r,
                            _ = watch.changed() => {
                                // Shutting down: an idle connection closes, a started request
                                // is finished by the pipeline (which answers it with close).
                                // A connection accepted a moment ago that has answered nothing
                                // may have its first request on the way: closing it would leave
                                // its client with no answer and nothing to retry on (RFC 9112
                                // §9.3.1 lets clients retry on reused connections only), so it
                                // gets FIRST_REQUEST_GRACE to send one.
                                if buf.is_empty() && !answered {
                                    let left = FIRST_REQUEST_GRACE.saturating_sub(accepted.elapsed());
                                    let first = pingora_timeout::fast_timeout::fast_timeout(
                                        left,
                                        stream.read_buf(&mut buf),
                                    );
                                    if !matches!(first.await, Ok(Ok(n)) if n > 0) {
                                        return None;
                                    }
                                }
                                if buf.is_empty() {
                                    return None;
                                }
                                to_pipeline = true;
                                continue;
                            }
                        };
                        match read {
                            Ok(Ok(n)) if n > 0 => clock.arrived(Instant::now()),
                            // The head's time is up.
                            Err(_) if !idle => return self.head_timed_out(&mut stream, &buf).await,
                            // Closed, failed or idle too long.
                            _ => return None,
                        }
                    }
                }
            }
            // One request through the Pingora pipeline, then back to the front with the bytes
            // that came after it.
            let (s, rest) = self
                .through_pipeline(stream, std::mem::take(&mut buf), request, shutdown)
                .await?;
            stream = s;
            buf = rest;
            checked = 0;
            answered = true;
            clock.next_request(!buf.is_empty(), Instant::now());
        }
    }
}

impl Front {
    /// Hand the request at the start of `buf` to the Pingora pipeline and wait for its answer.
    /// `request`: its head's length and body framing, when known; the pipeline then reads that
    /// request alone and the bytes after it come back with the stream (pipelined requests,
    /// [`Handover`]). Without it, the pipeline gets every byte, and closes the connection after
    /// its answer if any were left over. `None` when the connection is not to be reused.
    async fn through_pipeline(
        &self,
        stream: Stream,
        buf: BytesMut,
        request: Option<(usize, Framing)>,
        shutdown: &ShutdownWatch,
    ) -> Option<(Stream, BytesMut)> {
        let (stream, prefix) = match request {
            Some((head, framing)) => Handover::split(stream, buf, head, framing),
            None => (stream, buf),
        };
        let mut session = ServerSession::new_http1(stream);
        session.set_keepalive(if *shutdown.borrow() {
            None
        } else {
            Some(IDLE.as_secs())
        });
        if !prefix.is_empty() {
            session.set_pipelined_prefix(prefix);
        }
        let reused = self.proxy.process_new_http(session, shutdown).await?;
        let (stream, _settings) = reused.consume();
        match request {
            Some(_) => Handover::take_back(stream),
            // Pingora reuses a connection only when it read no byte past the request.
            None => Some((stream, BytesMut::with_capacity(4096))),
        }
    }
}

/// What the gate said of a request the front may answer.
pub(crate) struct Admitted {
    /// The CORS origin to allow.
    pub(crate) cors_origin: Option<String>,
    /// The client (after a trusted `X-Forwarded-For`).
    pub(crate) client: IpAddr,
    pub(crate) ids: super::request_id::Ids,
    pub(crate) content: gate::ContentRequest,
}

/// A request the front may answer from a fresh memory hit: a [`Plain`] one that the gate
/// (given `now`, unix seconds) admitted as content.
pub(crate) fn plain_content<'a>(
    state: &EdgeState,
    live: &Live,
    req: &httparse::Request<'_, 'a>,
    peer: IpAddr,
    tls: bool,
    now: u64,
) -> Option<(Plain<'a>, Admitted)> {
    let plain = Plain::of(req)?;
    let view = view_of(req, req.headers, &plain, peer, tls);
    let gate::Decision {
        cors_origin,
        client,
        ids,
        admission,
    } = gate::admit(&view, state, live, now);
    let Admission::Content(content) = admission else {
        return None;
    };
    // A sliced object is never stored whole: its slices are assembled by the pipeline.
    if content.slice.is_some() {
        return None;
    }
    Some((
        plain,
        Admitted {
            cors_origin,
            client,
            ids,
            content,
        },
    ))
}

/// The gate's view of a plain request.
fn view_of<'a>(
    req: &httparse::Request<'_, '_>,
    headers: &'a [httparse::Header<'a>],
    plain: &Plain<'a>,
    peer: IpAddr,
    tls: bool,
) -> RequestView<'a> {
    RequestView {
        method: if plain.head_only { "HEAD" } else { "GET" },
        version: http::Version::HTTP_11,
        path: plain.path,
        query: plain.query,
        authority: None,
        headers: Headers::H1(headers),
        peer,
        tls,
        line_len: gate::line_len(req.method.unwrap_or(""), plain.target_len),
    }
}

/// A request the front could answer itself: `GET` or `HEAD` on HTTP/1.1, an origin-form
/// target of plain bytes, at most one `Range`, `Connection` at most `keep-alive`, and none of
/// the fields whose handling needs the pipeline ([`PIPELINE_HEADERS`]).
pub(crate) struct Plain<'a> {
    pub(crate) head_only: bool,
    pub(crate) target_len: usize,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) range: Option<&'a str>,
}

impl<'a> Plain<'a> {
    fn of(req: &httparse::Request<'_, 'a>) -> Option<Plain<'a>> {
        let head_only = match req.method? {
            "GET" => false,
            "HEAD" => true,
            _ => return None,
        };
        if req.version != Some(1) {
            return None;
        }
        let target = req.path?;
        if !target.starts_with('/') || !target.bytes().all(plain_target_byte) {
            return None;
        }
        let mut range = None;
        for h in req.headers.iter() {
            let name = h.name;
            if name.eq_ignore_ascii_case("range") {
                if range.replace(std::str::from_utf8(h.value).ok()?).is_some() {
                    return None;
                }
            } else if name.eq_ignore_ascii_case("connection") {
                if !h.value.trim_ascii().eq_ignore_ascii_case(b"keep-alive") {
                    return None;
                }
            } else if PIPELINE_HEADERS
                .iter()
                .any(|p| name.eq_ignore_ascii_case(p))
            {
                return None;
            }
        }
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        Some(Plain {
            head_only,
            target_len: target.len(),
            path,
            query,
            range,
        })
    }
}

/// The answer to a front hit: the status line, the stored header's memo, the per-answer
/// headers (as the pipeline's range filter and Pingora would set them: length, range,
/// `Date`, `Age`), the edge's headers, and the body (copied next to the head when small, so
/// the answer leaves in one write).
fn reply(
    hit: &crate::cache::FreshHit,
    now: SystemTime,
    status: u16,
    part: std::ops::Range<usize>,
    head_only: bool,
    edge_headers: &[(&'static str, String)],
    request_id: &str,
) -> Reply {
    let len = hit.body.len();
    let memo = hit
        .meta
        .memo
        .get_or_init(|| compose::memo_of(&hit.meta.header));
    let sent = if head_only { 0 } else { part.len() };
    let coalesce = sent <= COALESCE_MAX;
    let mut head = BytesMut::with_capacity(300 + memo.len() + if coalesce { sent } else { 0 });
    if status == 200 {
        head.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        head.extend_from_slice(memo);
        head.extend_from_slice(
            format!("Content-Length: {len}\r\nAccept-Ranges: bytes\r\n").as_bytes(),
        );
    } else {
        // As the pipeline's range filter: 206, the part's length, no Accept-Ranges.
        head.extend_from_slice(b"HTTP/1.1 206 Partial Content\r\n");
        head.extend_from_slice(memo);
        let (first, last) = (part.start, part.end - 1);
        head.extend_from_slice(
            format!(
                "Content-Length: {}\r\nContent-Range: bytes {first}-{last}/{len}\r\n",
                part.len()
            )
            .as_bytes(),
        );
    }
    end_of_head(&mut head, hit, now, edge_headers, request_id);
    let body = if head_only {
        None
    } else if coalesce {
        head.extend_from_slice(&hit.body[part]);
        None
    } else {
        Some(hit.body.slice(part))
    };
    Reply {
        head,
        body,
        head_only,
        status,
        sent,
        log: None,
        cmcd: None,
    }
}

/// The rest of a hit's head after its framing: `Date`, `Age`, the edge's headers, the
/// request id, and `Connection`.
fn end_of_head(
    head: &mut BytesMut,
    hit: &crate::cache::FreshHit,
    now: SystemTime,
    edge_headers: &[(&'static str, String)],
    request_id: &str,
) {
    head.extend_from_slice(b"Date: ");
    head.extend_from_slice(pingora_core::protocols::http::date::get_cached_date().as_bytes());
    head.extend_from_slice(b"\r\nAge: ");
    head.extend_from_slice(hit.age(now).to_string().as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in edge_headers {
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"x-request-id: ");
    head.extend_from_slice(request_id.as_bytes());
    head.extend_from_slice(b"\r\nConnection: keep-alive\r\n\r\n");
}

/// Where a head in `buf` ends (just past the line end of its last field), if it does.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = memchr::memmem::find(buf, b"\n\r\n");
    let lf = memchr::memmem::find(buf, b"\n\n");
    crlf.into_iter().chain(lf).min().map(|i| i + 1)
}

/// A local answer of the gate's on the wire, as the pipeline's `respond` writes it, closing
/// the connection.
fn local_answer(reply: &gate::Reply, request_id: &str) -> Vec<u8> {
    let reason = http::StatusCode::from_u16(reply.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\n",
        reply.status,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("x-request-id: {request_id}\r\n"));
    let mut head = head.into_bytes();
    head.extend_from_slice(b"Date: ");
    head.extend_from_slice(pingora_core::protocols::http::date::get_cached_date().as_bytes());
    head.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    head.extend_from_slice(reply.body.as_bytes());
    head
}

/// The byte range of a `Range` header the front answers itself: one range, in one of the
/// plain forms `a-b`, `a-` or `-n`, that is satisfiable (as the pipeline would answer it,
/// with an end past the object clamped to its last byte). Anything else — several ranges,
/// spaces, an unsatisfiable or empty range — is `None`, and the pipeline answers it (206
/// multipart, 416, or the whole object).
pub(crate) fn single_range(value: &str, len: usize) -> Option<std::ops::Range<usize>> {
    let (unit, spec) = value.split_once('=')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let number = |s: &str| -> Option<usize> {
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if first.is_empty() {
        let n = number(last)?;
        return (n > 0 && len > 0).then(|| len.saturating_sub(n)..len);
    }
    let start = number(first)?;
    if start >= len {
        return None;
    }
    let end = if last.is_empty() {
        len - 1
    } else {
        number(last)?.min(len - 1)
    };
    (end >= start).then_some(start..end + 1)
}

/// Request headers whose handling needs the full pipeline.
pub(crate) const PIPELINE_HEADERS: [&str; 10] = [
    // RFC 9111 §3.5: the pipeline decides whether a stored response may answer it.
    "authorization",
    "content-length",
    "transfer-encoding",
    "if-range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "expect",
    "upgrade",
];

/// Bytes the front accepts in a request target (RFC 3986 path and query characters);
/// anything else (fragments, quotes, braces, ...) is left to the pipeline's parser.
fn plain_target_byte(b: u8) -> bool {
    super::gate::reg_name_byte(b) || matches!(b, b'/' | b'?' | b':' | b'@')
}

#[async_trait]
impl ServerApp for Front {
    /// Every player connection, plain or TLS (after the handshake), HTTP/1 or HTTP/2: the
    /// connection caps first (over one, the connection is closed at once), then the send
    /// timeout around its stream for whoever writes to it.
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let accepted = Instant::now();
        let client =
            send_guard::peer_ip(&stream).unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        // Held until the connection closes: it counts as open until then.
        let _open = match self.caps.admit(client) {
            Ok(permit) => permit,
            Err(limit) => {
                self.count(limit);
                return None;
            }
        };
        let limits = self.state.live().config.server.limits;
        let h2 = matches!(stream.selected_alpn_proto(), Some(ALPN::H2));
        let guard = SendGuard::new(stream, limits.send_timeout, self.send_timeouts.clone());
        if h2 {
            // The connection preface is HTTP/2's first head: it gets `header_timeout` too.
            let guard = guard
                .first_bytes_within(
                    H2_PREFACE_LEN,
                    limits.header_timeout,
                    self.counter(Limit::HeaderTimeout),
                )
                .batching_writes();
            return ServerApp::process_new(&self.h2, Box::new(guard), shutdown).await;
        }
        self.serve_h1(Box::new(guard), client, accepted, shutdown)
            .await
    }

    async fn cleanup(&self) {
        self.proxy.http_cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges_as_the_pipeline_reads_them() {
        let len = 1000;
        for (value, want) in [
            ("bytes=0-", Some(0..1000)),
            ("bytes=0-0", Some(0..1)),
            ("bytes=10-19", Some(10..20)),
            ("BYTES=10-19", Some(10..20)),
            ("bytes=990-5000", Some(990..1000)),
            ("bytes=999-", Some(999..1000)),
            ("bytes=-100", Some(900..1000)),
            ("bytes=-5000", Some(0..1000)),
            // Left to the pipeline: unsatisfiable, empty, several, odd syntax.
            ("bytes=1000-", None),
            ("bytes=20-10", None),
            ("bytes=-0", None),
            ("bytes=", None),
            ("bytes=-", None),
            ("bytes=0-1,5-6", None),
            ("bytes= 0-1", None),
            ("bytes=+1-2", None),
            ("items=0-1", None),
            ("bytes=99999999999999999999-", None),
        ] {
            assert_eq!(single_range(value, len), want, "{value}");
        }
        assert_eq!(
            single_range("bytes=-1", 0),
            None,
            "nothing to slice in an empty body"
        );
    }

    #[test]
    fn target_bytes() {
        assert!("/v/title/720p/seg_001.ts?a=1&b=%2F"
            .bytes()
            .all(plain_target_byte));
        for bad in [
            "/a#b", "/a b", "/a\"", "/a{b}", "/a\\b", "/a|b", "/a^b", "/a<b>", "/a`",
        ] {
            assert!(!bad.bytes().all(plain_target_byte), "{bad}");
        }
    }
}
