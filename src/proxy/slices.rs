//! Large objects by slices (`[[cache.slices]]`): a GET under a sliced prefix is answered from
//! fixed-size slices of the object, each fetched from the origin with its own `Range` and
//! cached under its own key ([`crate::cache::key::slice_key`]), as nginx's slice module does.
//!
//! Each slice is a Pingora subrequest ([`spawn`]) that runs the ordinary pipeline with a
//! [`SliceOrder`]: the cache lock coalesces concurrent fetches of one slice, the origin is
//! asked for `Range: bytes=k*S-(k+1)*S-1`, and its `206` is stored
//! ([`super::EdgeProxy::slice_cacheable`]). The client's request ([`serve`]) reads the slices
//! its range touches, in order, and writes the bytes of its range:
//!
//! - The first slice asked for tells the object's length (`Content-Range`) and version
//!   (`ETag`, `Last-Modified`, [`plan::Version`]); every later slice must be of the same
//!   version. The slice after the first is asked for before the client's header is written,
//!   so a change found there (a cached slice of the old object next to a fresh one of the
//!   new) drops the object's slices and starts over, once; a change found later, when
//!   bytes of the old version were sent, drops the slices and ends the response with an
//!   error (the client sees a short body, never a mix of versions).
//! - An origin that ignores `Range` (a `200`) is streamed through uncached, the client's
//!   range cut from it; any other first answer (404, 416, 5xx) is passed on as it is.
//! - Slice `k + 1` is asked for while slice `k` is sent, so the origin works one slice ahead.

pub mod plan;

use std::sync::Arc;

use http::header;
use pingora_core::protocols::http::subrequest::server::SubrequestHandle;
use pingora_core::protocols::http::HttpTask;
use pingora_core::protocols::http::ServerSession as HttpSession;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;
use pingora_proxy::subrequest::Ctx as SubrequestCtx;
use pingora_proxy::Session;

use super::gate::ContentRequest;
use super::RequestCtx;
use crate::cache::key;
use crate::state::{EdgeState, Live};
use plan::{Answer, Version, Wanted};

/// The header a slice subrequest's answer carries to [`serve`]: its cache result.
const SLICE_CACHE: &str = "x-edge-slice-cache";

/// What a slice subrequest carries (its user context).
pub struct SliceOrder {
    /// The content request, its key the slice's.
    pub content: ContentRequest,
    pub live: Arc<Live>,
    pub ids: Option<super::request_id::Ids>,
    /// The bytes asked of the origin.
    pub part: Part,
}

/// The inclusive byte range a slice subrequest asks the origin for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub index: u64,
    pub size: u64,
}

impl Part {
    /// The origin request's `Range`.
    pub fn range(&self) -> String {
        let (a, b) = plan::slice_range(self.index, self.size);
        format!("bytes={a}-{b}")
    }
}

/// In a slice subrequest, the order it carries (taken: asked once, in `request_filter`).
pub fn slice_order(session: &mut Session) -> Option<SliceOrder> {
    let user = session.subrequest_ctx.as_mut()?.user_ctx_mut()?;
    let slot = user.downcast_mut::<Option<SliceOrder>>()?;
    slot.take()
}

/// Mark a slice subrequest's answer with its cache result, for [`serve`].
pub fn mark(resp: &mut ResponseHeader, cache: &'static str) -> Result<()> {
    resp.insert_header(SLICE_CACHE, cache)
}

/// Whether a client request is answered from slices: a GET (a HEAD is proxied as ever,
/// storing nothing) under a sliced prefix, on a client's session that can spawn subrequests
/// (never inside a subrequest: a slice is never cut in slices again).
pub fn applies(session: &Session, content: &ContentRequest) -> bool {
    content.slice.is_some()
        && !content.upgrade
        && session.req_header().method == http::Method::GET
        && session.subrequest_ctx.is_none()
        && session.subrequest_spawner.is_some()
}

/// One slice being read: its subrequest's output and where its bytes sit in the object.
struct Slice {
    handle: SubrequestHandle,
    header: Box<ResponseHeader>,
    /// The object offset of the next body byte.
    at: u64,
    /// Body bytes still due (`None`: until the subrequest ends, a pass-through).
    due: Option<u64>,
}

/// How an attempt at answering ended.
enum Assembled {
    /// Answered (the status sent).
    Done(u16),
    /// Slices of two versions met before anything was sent: the object's slices were
    /// dropped; try again.
    Changed,
}

/// Answer the client's GET from slices. Returns the status sent and the cache result
/// (`HIT` when every slice was one).
pub async fn serve(
    state: &'static EdgeState,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<(u16, &'static str)> {
    let mut misses = false;
    for _ in 0..2 {
        if let Assembled::Done(status) = assemble(state, session, ctx, &mut misses).await? {
            return Ok((status, if misses { "MISS" } else { "HIT" }));
        }
    }
    Err(Error::explain(
        ErrorType::HTTPStatus(502),
        "slices: the object changed at the origin twice while being assembled",
    ))
}

async fn assemble(
    state: &'static EdgeState,
    session: &mut Session,
    ctx: &mut RequestCtx,
    misses: &mut bool,
) -> Result<Assembled> {
    let content = ctx
        .content
        .clone()
        .ok_or_else(|| Error::explain(ErrorType::InternalError, "slices without content"))?;
    let size = content
        .slice
        .ok_or_else(|| Error::explain(ErrorType::InternalError, "slices without a size"))?;
    let req = session.req_header();
    let wanted = plan::wanted(
        req.headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        req.headers.contains_key(header::IF_RANGE),
    );
    let first_index = plan::first_slice(wanted, size);
    let mut first = fetch(session, ctx, &content, first_index, size, misses).await?;
    let Some((version, _)) = plan::slice_of(&first.header, first_index, size) else {
        // Not a slice: the origin ignores ranges (a 200) or has none to give.
        return pass_through(session, ctx, first, wanted).await;
    };
    let total = version.total;
    let answer = plan::answer(wanted, total);
    let Some(span) = answer.span(total) else {
        let mut resp = client_header(&first.header, answer, total)?;
        finish_header(&mut resp, ctx, misses)?;
        let status = resp.status.as_u16();
        session.write_response_header(Box::new(resp), true).await?;
        return Ok(Assembled::Done(status));
    };
    let last_index = span.1 / size;
    let mut current = if span.0 / size == first_index {
        first
    } else {
        // A suffix: its first slice is known only now.
        first = fetch(session, ctx, &content, span.0 / size, size, misses).await?;
        if !same_version(&first.header, span.0 / size, size, &version) {
            drop_slices(state, &content, size, total).await;
            return Ok(Assembled::Changed);
        }
        first
    };
    let mut next = None;
    if current.index_after(size) <= last_index {
        let k = current.index_after(size);
        let s = fetch(session, ctx, &content, k, size, misses).await?;
        if !same_version(&s.header, k, size, &version) {
            drop_slices(state, &content, size, total).await;
            return Ok(Assembled::Changed);
        }
        next = Some(s);
    }
    let mut resp = client_header(&current.header, answer, total)?;
    finish_header(&mut resp, ctx, misses)?;
    let status = resp.status.as_u16();
    session.write_response_header(Box::new(resp), false).await?;
    loop {
        send(session, &mut current, span).await?;
        let Some(n) = next.take() else { break };
        current = n;
        // One slice ahead: the origin fills `k + 1` while `k` is sent.
        let k = current.index_after(size);
        if k <= last_index {
            let s = fetch(session, ctx, &content, k, size, misses).await?;
            if !same_version(&s.header, k, size, &version) {
                drop_slices(state, &content, size, total).await;
                return Err(Error::explain(
                    ErrorType::HTTPStatus(502),
                    "slices: the object changed at the origin mid-answer; its slices were dropped",
                ));
            }
            next = Some(s);
        }
    }
    session.write_response_body(None, true).await?;
    Ok(Assembled::Done(status))
}

impl Slice {
    /// The index of the slice after this one (for a slice read from its first byte).
    fn index_after(&self, size: u64) -> u64 {
        self.at / size + 1
    }
}

fn same_version(header: &ResponseHeader, index: u64, size: u64, version: &Version) -> bool {
    plan::slice_of(header, index, size).is_some_and(|(v, _)| &v == version)
}

/// Remove every slice of the object (of its `total` bytes as last seen): the next request
/// fetches them all again, of one version.
async fn drop_slices(state: &'static EdgeState, content: &ContentRequest, size: u64, total: u64) {
    tracing::warn!(
        path = %content.path,
        "slices of two versions of an object met; its slices are dropped"
    );
    for index in 0..plan::slice_count(total, size) {
        state
            .cache
            .invalidate(&key::slice_key(&content.key, size, index))
            .await;
    }
}

/// Start slice `index`'s subrequest and read its response header.
async fn fetch(
    session: &Session,
    ctx: &RequestCtx,
    content: &ContentRequest,
    index: u64,
    size: u64,
    misses: &mut bool,
) -> Result<Slice> {
    let mut handle = spawn(session, ctx, content, Part { index, size })
        .await
        .ok_or_else(|| Error::explain(ErrorType::InternalError, "slices: no subrequest"))?;
    let mut header = loop {
        match handle.rx.recv().await {
            Some(HttpTask::Header(h, _)) if !h.status.is_informational() => break h,
            Some(HttpTask::Header(..)) => continue,
            Some(HttpTask::Failed(e)) => return Err(e),
            Some(_) | None => {
                return Err(Error::explain(
                    ErrorType::ConnectProxyFailure,
                    "slices: a slice ended before its header",
                ))
            }
        }
    };
    if header
        .headers
        .get(SLICE_CACHE)
        .is_none_or(|v| v.as_bytes() != b"HIT")
    {
        *misses = true;
    }
    header.remove_header(SLICE_CACHE);
    let due = plan::slice_of(&header, index, size).map(|(_, len)| len);
    Ok(Slice {
        handle,
        header,
        at: if due.is_some() { index * size } else { 0 },
        due,
    })
}

/// Prepare and start the subrequest of one slice: the client's request without its range,
/// conditionals and `Accept-Encoding` (a slice is the identity bytes of the object).
async fn spawn(
    session: &Session,
    ctx: &RequestCtx,
    content: &ContentRequest,
    part: Part,
) -> Option<SubrequestHandle> {
    let spawner = session.subrequest_spawner.as_ref()?;
    let mut req = session.req_header().clone();
    for name in [
        header::RANGE,
        header::IF_RANGE,
        header::IF_MATCH,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_UNMODIFIED_SINCE,
        header::ACCEPT_ENCODING,
    ] {
        req.remove_header(&name);
    }
    let raw = super::fill_pace::h1_request(&req);
    let mut h1 = HttpSession::new_http1(Box::new(std::io::Cursor::new(raw)));
    if !matches!(h1.read_request().await, Ok(true)) {
        return None;
    }
    let mut slice = content.clone();
    slice.key = key::slice_key(&content.key, part.size, part.index);
    slice.accept_encoding = "identity";
    let order = SliceOrder {
        content: slice,
        live: ctx.live.clone(),
        ids: ctx.ids.clone(),
        part,
    };
    let (sub, handle) = spawner.create_subrequest(
        &h1,
        SubrequestCtx::builder()
            .user_ctx(Box::new(Some(order)))
            .build(),
    );
    tokio::spawn(sub.run());
    Some(handle)
}

/// The client's response header from a slice's: its fields, the answer's status, length
/// and `Content-Range`.
fn client_header(slice: &ResponseHeader, answer: Answer, total: u64) -> Result<ResponseHeader> {
    let (status, len, range) = match answer {
        Answer::Whole => (200, total, None),
        Answer::Part { first, last } => (
            206,
            last - first + 1,
            Some(format!("bytes {first}-{last}/{total}")),
        ),
        Answer::Unsatisfiable => (416, 0, Some(format!("bytes */{total}"))),
    };
    let mut resp = ResponseHeader::build(status, Some(slice.headers.len() + 4))?;
    for (name, value) in slice.headers.iter() {
        if name == header::CONTENT_RANGE
            || name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
        {
            continue;
        }
        resp.append_header(name.clone(), value.clone())?;
    }
    if status == 416 {
        // A 416 describes the request, not the object.
        for name in [header::ETAG, header::LAST_MODIFIED, header::CONTENT_TYPE] {
            resp.remove_header(&name);
        }
    }
    resp.insert_header(header::CONTENT_LENGTH, len.to_string())?;
    resp.insert_header(header::ACCEPT_RANGES, "bytes")?;
    if let Some(range) = range {
        resp.insert_header(header::CONTENT_RANGE, range)?;
    }
    Ok(resp)
}

/// The edge's own fields on a client answer: cache result, CORS, request id.
fn finish_header(resp: &mut ResponseHeader, ctx: &mut RequestCtx, misses: &bool) -> Result<()> {
    let cache = if *misses { "MISS" } else { "HIT" };
    super::compose::apply(
        resp,
        super::compose::edge_headers(&ctx.live, cache, ctx.cors_origin.as_deref()),
    )?;
    if let Some(ids) = &ctx.ids {
        resp.insert_header(super::request_id::REQUEST_ID, ids.request_id.as_str())?;
    }
    ctx.ttfb = Some(ctx.start.elapsed());
    Ok(())
}

/// The first answer was no slice: a `200` (the origin ignores `Range`; it is not stored)
/// has the client's range cut from it; a `206` of another range is an error (502); anything
/// else (404, 416, 5xx) is passed on as it is.
async fn pass_through(
    session: &mut Session,
    ctx: &mut RequestCtx,
    mut slice: Slice,
    wanted: Wanted,
) -> Result<Assembled> {
    if slice.header.status.as_u16() == 206 {
        // A range, but not the one asked for: nothing the client asked can be made of it.
        return Err(Error::explain(
            ErrorType::HTTPStatus(502),
            "slices: the origin answered another range than the slice asked for",
        ));
    }
    let total = (slice.header.status.as_u16() == 200)
        .then(|| slice.header.headers.get(header::CONTENT_LENGTH))
        .flatten()
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    let misses = true;
    let (mut resp, span) = match total {
        Some(total) => {
            let answer = plan::answer(wanted, total);
            (
                client_header(&slice.header, answer, total)?,
                answer.span(total),
            )
        }
        // Another status, or a 200 of unknown length: as it came, whole.
        None => ((*slice.header).clone(), Some((0, u64::MAX - 1))),
    };
    finish_header(&mut resp, ctx, &misses)?;
    let status = resp.status.as_u16();
    let Some(span) = span else {
        session.write_response_header(Box::new(resp), true).await?;
        return Ok(Assembled::Done(status));
    };
    session.write_response_header(Box::new(resp), false).await?;
    slice.due = total;
    send(session, &mut slice, span).await?;
    session.write_response_body(None, true).await?;
    Ok(Assembled::Done(status))
}

/// Send the part of `slice`'s body inside `span` to the client; the whole body is read (so
/// its fill completes), and a body shorter than its `Content-Range` is an error.
async fn send(session: &mut Session, slice: &mut Slice, span: (u64, u64)) -> Result<()> {
    loop {
        let (chunk, end) = match slice.handle.rx.recv().await {
            Some(HttpTask::Body(b, end)) => (b, end),
            Some(HttpTask::Done) => (None, true),
            Some(HttpTask::Trailer(_)) => continue,
            Some(HttpTask::Failed(e)) => return Err(e),
            Some(_) | None => (None, true),
        };
        if let Some(b) = chunk {
            if let Some(due) = slice.due.as_mut() {
                *due = due.checked_sub(b.len() as u64).ok_or_else(|| {
                    Error::explain(ErrorType::InvalidHTTPHeader, "slices: a slice overran")
                })?;
            }
            if let Some(r) = plan::within(slice.at, b.len(), span) {
                session.write_response_body(Some(b.slice(r)), false).await?;
            }
            slice.at += b.len() as u64;
        }
        if end {
            return match slice.due {
                Some(0) | None => Ok(()),
                Some(_) => Err(Error::explain(
                    ErrorType::ConnectProxyFailure,
                    "slices: a slice ended short",
                )),
            };
        }
    }
}
