//! A fill runs at the origin's pace, not at its first requester's.
//!
//! Pingora reads a miss from the origin, writes it to the cache and writes it to the client
//! that asked in one loop per request. When that client's socket (or HTTP/2 window) takes no
//! more data, the loop waits in the write, so it stops reading the origin and stops writing
//! the fill — and every other viewer of the object, reading the fill
//! ([`crate::cache::store`]), waits with it. Issue 13: one client that never read held a
//! whole audience of a cold segment.
//!
//! - HTTP/1 (plain and TLS): Pingora's cancel-safe proxy-task writes
//!   ([`queue_writes`]): the client's next write is queued and the loop keeps reading the
//!   origin into the fill meanwhile. The client reads its own bytes from the fill, as any
//!   viewer does, at its own pace; its connection is bounded by `send_timeout` as always.
//! - HTTP/2: Pingora 0.9 has no such writes for HTTP/2 streams, so the loop would wait on
//!   its stream's flow-control window: a client reading slowly but steadily would set the
//!   pace of the fill. So an HTTP/2 GET that may miss prepares a **filler** ([`delegate`]): a
//!   Pingora subrequest (a copy of its request, with the content request the gate already
//!   admitted, [`FillOrder`]) whose only client drains what it is sent. When the cache lock
//!   elects the HTTP/2 request to fill a cold key, it hands the write permit to the filler
//!   ([`crate::cache::handoff`]), starts it, and waits on the lock like every other viewer;
//!   the filler fetches the object at the origin's pace, and the HTTP/2 request then reads
//!   the fill from the cache at its own pace, as any viewer does. A response the filler finds
//!   uncacheable (or over `fill_memory`) releases the lock at once: the filler stops
//!   ([`filler_stops`]) and the HTTP/2 request asks the origin itself, as lock waiters do;
//!   for a minute after that, that key's HTTP/2 requests fill themselves ([`Unstored`]), so an
//!   uncacheable object costs the origin one extra request a minute, not one per request.
//! - Where an HTTP/2 request still fills itself (a revalidation, or a filler that never
//!   started), a write that makes no progress for `[cache] fill_stall` while the fill is in
//!   flight fails ([`stall_timeout`]); the stream is reset and the fill goes on without it.
//!   Once the fill is complete, the usual `send_timeout` applies again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use pingora_cache::CachePhase;
use pingora_core::protocols::http::ServerSession as HttpSession;
use pingora_http::RequestHeader;
use pingora_proxy::subrequest::Ctx as SubrequestCtx;
use pingora_proxy::Session;

use super::gate::ContentRequest;
use crate::cache::handoff::{Delegate, Handed};
use crate::state::Live;

/// What a filler subrequest carries from the request it fills for (its user context).
pub struct FillOrder {
    /// The content request the gate admitted for the viewer; its key holds the permit slot.
    pub content: ContentRequest,
    /// The viewer's settings snapshot, so both run with the same config.
    pub live: Arc<Live>,
    /// The viewer's request id and trace context: the origin sees the filler's request as
    /// the viewer's.
    pub ids: Option<crate::proxy::request_id::Ids>,
}

/// Whether an HTTP/2 request may hand its fill to a filler: a GET (a HEAD fills nothing; an
/// upgrade is a tunnel), on a connection that can spawn subrequests, unless its key `needs_none`:
/// in the memory tier or being filled (a hit or a lock waiter needs no filler; a disk hit
/// prepares one for nothing), or recently found [`Unstored`].
pub fn may_delegate(
    http2: bool,
    method: &Method,
    upgrade: bool,
    can_spawn: bool,
    needs_none: bool,
) -> bool {
    http2 && method == Method::GET && !upgrade && can_spawn && !needs_none
}

/// Prepare the filler of `content` and put its [`Delegate`] on `content.key`. The filler
/// starts only if the lock elects this request to fill; otherwise it is dropped unstarted.
/// Returns the delegate (to ask later whether it started), `None` if this session cannot
/// spawn subrequests.
pub async fn delegate(
    session: &Session,
    content: &mut ContentRequest,
    live: &Arc<Live>,
    ids: Option<&crate::proxy::request_id::Ids>,
) -> Option<Delegate> {
    let spawner = session.subrequest_spawner.as_ref()?;
    // Pingora copies a subrequest's request from its parent in HTTP/1 form, and would write
    // an HTTP/2 request line as `HTTP/2`, which its own parser refuses: the filler is copied
    // from an HTTP/1.1 rendering of the request instead.
    let raw = h1_request(session.req_header());
    let mut h1 = HttpSession::new_http1(Box::new(std::io::Cursor::new(raw)));
    if !matches!(h1.read_request().await, Ok(true)) {
        return None;
    }
    let slot = Handed::default();
    let mut filled = content.clone();
    filled.key.extensions.insert(slot.clone());
    let order = FillOrder {
        content: filled,
        live: live.clone(),
        ids: ids.cloned(),
    };
    let (filler, handle) = spawner.create_subrequest(
        &h1,
        SubrequestCtx::builder()
            .user_ctx(Box::new(Some(order)))
            .build(),
    );
    let d = Delegate::new(move |permit| {
        slot.put(permit);
        // The filler's client: takes everything at once, so only the origin sets the pace.
        handle.drain_tasks();
        tokio::spawn(filler.run());
    });
    content.key.extensions.insert(d.clone());
    Some(d)
}

/// `req` as an HTTP/1.1 request head: origin-form target, `Host` from the target's authority
/// (an HTTP/2 request carries it there), then the other fields.
pub fn h1_request(req: &RequestHeader) -> Vec<u8> {
    let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let authority = req.uri.authority().map(|a| a.as_str().as_bytes());
    if let Some(a) = authority {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in req.headers.iter() {
        if authority.is_some() && name == http::header::HOST {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Keys whose filler found the response not stored, for a while: their HTTP/2 requests fill
/// themselves rather than prepare a filler that would stop at the header and cost the
/// origin a second request (an uncacheable object would otherwise cost two every time).
pub struct Unstored {
    keys: Mutex<HashMap<u128, Instant>>,
}

/// How long a key found unstored is remembered.
const UNSTORED_FOR: Duration = Duration::from_secs(60);
/// How many keys are remembered before the memory starts over.
const UNSTORED_MAX: usize = 1 << 16;

impl Default for Unstored {
    fn default() -> Self {
        Unstored {
            keys: Mutex::new(HashMap::new()),
        }
    }
}

impl Unstored {
    pub fn note(&self, key: u128, now: Instant) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= UNSTORED_MAX {
            keys.clear();
        }
        keys.insert(key, now);
    }

    /// Whether `key` was found unstored less than [`UNSTORED_FOR`] ago.
    pub fn recent(&self, key: u128, now: Instant) -> bool {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        match keys.get(&key) {
            Some(at) if now.saturating_duration_since(*at) < UNSTORED_FOR => true,
            Some(_) => {
                keys.remove(&key);
                false
            }
            None => false,
        }
    }
}

/// In a filler subrequest, the order it carries (taken: asked once, in `request_filter`).
/// `None` for every other request, Pingora's own background revalidations included.
pub fn fill_order(session: &mut Session) -> Option<FillOrder> {
    let user = session.subrequest_ctx.as_mut()?.user_ctx_mut()?;
    let slot = user.downcast_mut::<Option<FillOrder>>()?;
    slot.take()
}

/// Whether a filler stops at its response header: it fills the cache or does nothing (the
/// request it filled for goes to the origin itself once the lock says the response is not
/// stored, so reading on would fetch the body twice).
pub fn filler_stops(phase: CachePhase, cache_enabled: bool) -> bool {
    !cache_enabled || !matches!(phase, CachePhase::Miss)
}

/// Let an HTTP/1 response be written by queued (cancel-safe) writes, so the loop serving a
/// miss keeps filling while its client is slow. No effect on HTTP/2 sessions.
pub fn queue_writes(session: &mut Session) {
    session.set_proxy_tasks_enabled(true);
}

/// The write timeout an HTTP/2 response needs now: `fill_stall` while this request is the
/// one filling the cache (a miss whose fill is in flight), else `send_timeout`. `None` for
/// every other response (HTTP/1, hits, uncached).
pub fn stall_timeout(
    http2: bool,
    phase: CachePhase,
    filling: bool,
    fill_stall: Duration,
    send_timeout: Duration,
) -> Option<Duration> {
    if !http2 || !matches!(phase, CachePhase::Miss | CachePhase::Expired) {
        return None;
    }
    Some(if filling { fill_stall } else { send_timeout })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_millis(250);
    const SEND: Duration = Duration::from_secs(60);

    #[test]
    fn an_http2_fill_writer_waits_at_most_fill_stall_while_the_fill_is_in_flight() {
        assert_eq!(
            stall_timeout(true, CachePhase::Miss, true, STALL, SEND),
            Some(STALL)
        );
        assert_eq!(
            stall_timeout(true, CachePhase::Expired, true, STALL, SEND),
            Some(STALL)
        );
        // The fill is stored: nobody waits on this client any more.
        assert_eq!(
            stall_timeout(true, CachePhase::Miss, false, STALL, SEND),
            Some(SEND)
        );
    }

    #[test]
    fn only_http2_gets_that_may_miss_hand_their_fills_over() {
        assert!(may_delegate(true, &Method::GET, false, true, false));
        assert!(
            !may_delegate(false, &Method::GET, false, true, false),
            "HTTP/1 queues"
        );
        assert!(!may_delegate(true, &Method::HEAD, false, true, false));
        assert!(
            !may_delegate(true, &Method::GET, true, true, false),
            "an upgrade"
        );
        assert!(
            !may_delegate(true, &Method::GET, false, false, false),
            "no spawner"
        );
        assert!(
            !may_delegate(true, &Method::GET, false, true, true),
            "a hit or a waiter"
        );
    }

    #[test]
    fn an_http2_request_is_rendered_as_http1_1_with_its_authority_as_host() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.set_uri(http::Uri::from_static("https://a.test:8443/v/x.ts?q=1"));
        req.set_version(http::Version::HTTP_2);
        req.insert_header("accept-encoding", "gzip").unwrap();
        req.insert_header("host", "other.test").unwrap();
        assert_eq!(
            String::from_utf8(h1_request(&req)).unwrap(),
            "GET /v/x.ts?q=1 HTTP/1.1\r\nhost: a.test:8443\r\naccept-encoding: gzip\r\n\r\n"
        );
        // An HTTP/1 request (origin-form) keeps its Host.
        let mut req = RequestHeader::build("GET", b"/a", None).unwrap();
        req.insert_header("host", "b.test").unwrap();
        assert_eq!(
            String::from_utf8(h1_request(&req)).unwrap(),
            "GET /a HTTP/1.1\r\nhost: b.test\r\n\r\n"
        );
    }

    #[test]
    fn a_key_found_unstored_is_remembered_for_a_minute() {
        let u = Unstored::default();
        let t0 = Instant::now();
        assert!(!u.recent(7, t0));
        u.note(7, t0);
        assert!(u.recent(7, t0 + Duration::from_secs(59)));
        assert!(!u.recent(8, t0));
        assert!(!u.recent(7, t0 + UNSTORED_FOR));
        assert!(!u.recent(7, t0), "forgotten once expired");
    }

    #[test]
    fn a_filler_stops_unless_it_fills() {
        assert!(!filler_stops(CachePhase::Miss, true));
        assert!(filler_stops(CachePhase::Miss, false));
        assert!(filler_stops(CachePhase::Bypass, true));
    }

    #[test]
    fn other_responses_keep_their_timeouts() {
        assert_eq!(
            stall_timeout(false, CachePhase::Miss, true, STALL, SEND),
            None,
            "HTTP/1 queues its writes"
        );
        assert_eq!(
            stall_timeout(true, CachePhase::Hit, true, STALL, SEND),
            None,
            "a reader holds no fill"
        );
        assert_eq!(
            stall_timeout(true, CachePhase::Bypass, false, STALL, SEND),
            None
        );
    }
}
