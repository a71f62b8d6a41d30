//! HTTP/2 hot hits: a fresh memory hit answered in `request_filter`, right after the gate,
//! without pingora-cache's lookup, hit handler and serve machinery.
//!
//! HTTP/2 connections never meet the HTTP/1 front ([`super::front`]), so without this every
//! HTTP/2 hit pays the whole cache state machine (the lookup, the cache lock check, the meta
//! clone, the hit handler's reads). The rule for what may be answered here is the front's:
//! the request the gate admitted as content, a plain `GET`/`HEAD` (none of
//! [`super::front::PIPELINE_HEADERS`]), an object [`crate::cache::Cache::fresh_memory_hit`]
//! offers as a 200 with a matching `Content-Length`. The answer is built by the pipeline's own
//! routines on a copy of the stored header — its range filter ([`super::range::range_type`],
//! whole or one range; several or none satisfiable go to the pipeline), the playlist rewrite
//! for the viewer ([`super::playlist::transform`]), the edge's headers ([`super::compose`]),
//! `Age`, the request id — and written by the same Pingora session, which adds `Date`. So it
//! is the pipeline's answer; tests/it/differential.rs compares both over HTTP/2 and TLS.
//! `[server] fast_hits = false` turns it off with the front.

use bytes::Bytes;
use pingora_http::ResponseHeader;
use pingora_proxy::{RangeType, Session};

use super::gate::{self, ContentRequest};
use crate::state::{EdgeState, Live};

/// A fresh memory hit to answer here: the response header and body to send.
pub struct Hot {
    pub header: ResponseHeader,
    /// `None` for `HEAD`.
    pub body: Option<Bytes>,
}

/// The answer to `content` (admitted by the gate) when it is an HTTP/2 fresh memory hit this
/// path answers; `None` leaves the request to the pipeline. `cors_origin`, `request_id`: the
/// gate's.
pub fn answer(
    state: &EdgeState,
    live: &Live,
    session: &Session,
    content: &ContentRequest,
    cors_origin: Option<&str>,
    request_id: &str,
) -> Option<Hot> {
    if !live.config.server.fast_hits || !session.as_downstream().is_http2() {
        return None;
    }
    let req = session.req_header();
    let head_only = match req.method {
        http::Method::GET => false,
        http::Method::HEAD => true,
        _ => return None,
    };
    if content.slice.is_some()
        || content.upgrade
        || super::front::PIPELINE_HEADERS
            .iter()
            .any(|h| gate::Headers::Map(&req.headers).has(h))
    {
        return None;
    }
    let now = std::time::SystemTime::now();
    let fast = super::fast_hit::find(state, content, gate::Headers::Map(&req.headers), now)?;
    let hit = fast.hit;
    let stored = &hit.meta.header;
    let len = hit.body.len();
    let mut header = stored.clone();
    let body = if fast.rewrites {
        // Sent whole (the pipeline ignores `Range` on it too), rewritten for its viewer.
        let body = super::playlist::rewrite_hit(live, content, &hit)?;
        super::playlist::rewritten_header(&mut header).ok()?;
        body
    } else {
        match super::range::range_type(req, &mut header) {
            RangeType::None => hit.body.clone(),
            RangeType::Single(r) if r.start <= r.end && r.end <= len => hit.body.slice(r),
            _ => return None,
        }
    };
    super::compose::apply(
        &mut header,
        super::compose::edge_headers(live, "HIT", cors_origin),
    )
    .ok()?;
    header.insert_header(http::header::AGE, hit.age(now)).ok()?;
    header
        .insert_header(super::request_id::REQUEST_ID, request_id)
        .ok()?;
    Some(Hot {
        header,
        body: (!head_only).then_some(body),
    })
}
