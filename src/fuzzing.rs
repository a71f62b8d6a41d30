//! Entry points for the fuzz targets in `fuzz/` (issue #13), not an API: thin wrappers that
//! reach the request-head and range handling of both request paths without making their
//! internals public, and an [`EdgeState`] built from the shipped `edge.toml`.
//!
//! - [`front_content`]: what the HTTP/1 front makes of a head (httparse, [`Plain`], the gate):
//!   the content request it would answer from a fresh memory hit.
//! - [`pipeline_admission`]: what the Pingora pipeline makes of the same bytes (Pingora's own
//!   HTTP/1 head parser, then the gate), for comparing the two.
//! - [`front_range`] and [`pipeline_range`]: the front's single-range reader and the
//!   pipeline's range decision.
//!
//! [`Plain`]: crate::proxy::front

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use bytes::BytesMut;
use pingora_cache::lock::{CacheKeyLockImpl, CacheLock};
use pingora_core::protocols::http::ServerSession;
use pingora_http::{RequestHeader, ResponseHeader};

use crate::cache::Cache;
use crate::config::Config;
use crate::proxy::front;
use crate::proxy::gate::{self, Admission, ContentRequest, RequestView};
use crate::state::EdgeState;

/// What the front would answer itself from a fresh memory hit.
#[derive(Debug)]
pub struct FrontContent<'a> {
    /// Length of the request head.
    pub head_len: usize,
    pub head_only: bool,
    /// The `Range` value, when one was sent.
    pub range: Option<&'a str>,
    pub content: ContentRequest,
}

/// The content request the front would look up in the memory tier for the head at the start
/// of `buf` (and answer on a fresh hit), as [`crate::proxy::front`] reads it; `None` when the
/// pipeline takes the request or the head is not whole yet.
pub fn front_content<'b>(
    state: &EdgeState,
    buf: &'b [u8],
    peer: IpAddr,
    now: u64,
) -> Option<FrontContent<'b>> {
    let mut headers = [httparse::EMPTY_HEADER; front::MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(head_len) = req.parse(buf).ok()? else {
        return None;
    };
    let (plain, admitted) = front::plain_content(state, &state.live(), &req, peer, false, now)?;
    let content = admitted.content;
    Some(FrontContent {
        head_len,
        head_only: plain.head_only,
        range: plain.range,
        content,
    })
}

/// What the pipeline decides for the request head at the start of `buf`: `Err` with Pingora's
/// error when its HTTP/1 parser refuses the head (the client gets a 400 or the connection
/// closes) or it is not whole, `Ok(None)` when the bytes end before anything was read.
pub fn pipeline_admission(
    state: &EdgeState,
    buf: &[u8],
    peer: IpAddr,
    now: u64,
) -> Result<Option<(RequestHeader, Admission)>, String> {
    let req = match pipeline_head(buf)? {
        Some(req) => req,
        None => return Ok(None),
    };
    let admission = gate::admit(
        &RequestView::of(&req, peer, false),
        state,
        &state.live(),
        now,
    )
    .admission;
    Ok(Some((req, admission)))
}

/// Pingora's parse of a request head, as the front hands bytes to the pipeline (its
/// pipelined prefix, so the parse needs no reads).
fn pipeline_head(buf: &[u8]) -> Result<Option<RequestHeader>, String> {
    let (client, server) = tokio::io::duplex(64);
    // The client has sent everything: a head that is not whole meets the end of the stream.
    drop(server);
    let mut session = ServerSession::new_http1(Box::new(client));
    session.set_pipelined_prefix(BytesMut::from(buf));
    match runtime().block_on(session.read_request()) {
        Ok(true) => Ok(Some(session.req_header().clone())),
        Ok(false) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("fuzzing runtime: {e}"))
    })
}

/// The front's reading of a `Range` value on an object of `len` bytes.
pub fn front_range(value: &str, len: usize) -> Option<std::ops::Range<usize>> {
    front::single_range(value, len)
}

/// The pipeline's answer to a `GET` with this `Range` value on a 200 of `len` bytes: the range
/// decision and the response header it leaves (status, `Content-Range`, `Content-Length`).
/// `None` when the value is no valid header value.
pub fn pipeline_range(
    value: &[u8],
    len: usize,
) -> Option<(pingora_proxy::RangeType, ResponseHeader)> {
    let mut req = RequestHeader::build("GET", b"/", None).ok()?;
    req.insert_header(
        http::header::RANGE,
        http::HeaderValue::from_bytes(value).ok()?,
    )
    .ok()?;
    let mut resp = ResponseHeader::build(200, None).ok()?;
    resp.insert_header(http::header::CONTENT_LENGTH, len.to_string())
        .ok()?;
    let range = crate::proxy::range::range_type(&req, &mut resp);
    Some((range, resp))
}

/// An [`EdgeState`] from the `edge.toml` in `root` (the repository), as `edge serve` builds
/// it, with a small cache in a fresh temporary folder, the control plane marked as running
/// (nothing listens: the gate only routes to it) and no TLS. Panics when it cannot be built.
pub fn state(root: &Path) -> &'static EdgeState {
    let mut config = Config::load(&root.join("edge.toml")).unwrap_or_else(|e| panic!("{e}"));
    config.cache.max_object = 1024 * 1024;
    config.cache.memory = 16 * 1024 * 1024;
    config.cache.disk = 4 * config.cache.block_size() as u64;
    config.cache.dir = std::env::temp_dir().join(format!("edge-fuzz-{}", std::process::id()));
    let metrics = crate::metrics::Metrics::new().unwrap_or_else(|e| panic!("{e}"));
    let runtime = runtime();
    let cache = runtime
        .block_on(Cache::open(
            &config.cache,
            &metrics.registry,
            runtime.handle().clone().into(),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let cache: &'static Cache = Box::leak(Box::new(cache));
    let lock: &'static CacheKeyLockImpl =
        Box::leak(CacheLock::new_boxed(config.cache.lock_timeout));
    let geo =
        config.geo.database.clone().map(|p| {
            std::sync::Arc::new(crate::geo::Geo::open(p).unwrap_or_else(|e| panic!("{e}")))
        });
    let access_log = crate::access_log::AccessLog::start(&config.log, &metrics.registry)
        .unwrap_or_else(|e| panic!("{e}"));
    let prefetch =
        crate::prefetch::Prefetcher::new(&metrics.registry).unwrap_or_else(|e| panic!("{e}"));
    Box::leak(Box::new(EdgeState {
        access_log,
        ids: crate::access_log::ids::IdSource::new(),
        control: config
            .control
            .is_some()
            .then(|| std::net::SocketAddr::from(([127, 0, 0, 1], 9))),
        live: arc_swap::ArcSwap::from_pointee(crate::state::Live::new(config, None)),
        source: None,
        metrics,
        cache,
        lock,
        tls: None,
        geo,
        #[cfg(feature = "control")]
        control_secret: None,
        fleet: None,
        prefetch,
        ready: AtomicBool::new(true),
        draining: AtomicBool::new(false),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_paths_read_a_plain_head_alike() {
        let state = state(Path::new(env!("CARGO_MANIFEST_DIR")));
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        let head = b"GET /v/public.ts?a=1 HTTP/1.1\r\nHost: edge.test\r\nRange: bytes=0-9\r\n\r\nGET /next";
        // The shipped config wants a token for everything: a refusal on both paths.
        assert!(front_content(state, head, peer, 1_800_000_000).is_none());
        let (req, admission) = pipeline_admission(state, head, peer, 1_800_000_000)
            .unwrap()
            .unwrap();
        assert_eq!(req.uri.path(), "/v/public.ts");
        let Admission::Local(reply) = admission else {
            panic!("not refused")
        };
        assert_eq!(reply.status, 403);
        // With a token both admit the same content.
        let live = state.live();
        let tokens = live.config.tokens.as_ref().unwrap();
        let token = crate::token::sign(
            &tokens.keyring,
            &crate::token::Claims::new("/v/", 1_800_000_600),
        )
        .unwrap();
        let head = format!("HEAD /v/a.ts?token={token}&b=2 HTTP/1.1\r\nHost: Edge.Test\r\nRange: bytes=0-9\r\n\r\n");
        let front = front_content(state, head.as_bytes(), peer, 1_800_000_000).unwrap();
        assert_eq!(
            (front.head_len, front.head_only, front.range),
            (head.len(), true, Some("bytes=0-9"))
        );
        assert_eq!(
            (
                front.content.host.as_str(),
                front.content.path.as_str(),
                front.content.query.as_deref()
            ),
            ("edge.test", "/v/a.ts", Some("b=2"))
        );
        let Some((_, Admission::Content(pipeline))) =
            pipeline_admission(state, head.as_bytes(), peer, 1_800_000_000).unwrap()
        else {
            panic!("not content")
        };
        assert_eq!(pipeline.key.primary_key(), front.content.key.primary_key());
        assert!(
            pipeline_admission(state, b"GET / HTTP/1.1\r\nHost: a", peer, 0).is_err(),
            "not whole"
        );
        assert!(pipeline_admission(state, b"GET / HTTP/1.1\r\nHo st: a\r\n\r\n", peer, 0).is_err());
    }

    #[test]
    fn ranges_of_both_paths() {
        assert_eq!(front_range("bytes=2-", 10), Some(2..10));
        let (range, resp) = pipeline_range(b"bytes=2-", 10).unwrap();
        assert_eq!(range, pingora_proxy::RangeType::Single(2..10));
        assert_eq!(resp.headers.get("content-range").unwrap(), "bytes 2-9/10");
    }
}
