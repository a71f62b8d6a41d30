//! Next-segment prefetch's requests ([`crate::prefetch`] keeps the book).
//!
//! [`on_request`] is the one rule both request paths call for a content request they
//! admitted (the front for a hit it answers, the pipeline's `request_filter` for the rest):
//! under a `[[prefetch]]` prefix, a GET for segment N of a recorded rendition starts
//! prefetches of N+1..N+k.
//!
//! - Each successor is admitted by the gate as the player's own request would be: the
//!   player's request with the successor's path (after the player's path token prefix, if
//!   any) and query (plus the query parameters the gate took off the player's, its token),
//!   with the player's header fields (cookies) and address. So a prefetch has the cache key
//!   the player's request will have, and never gets past a token or country rule the player
//!   would not; a refused successor is not prefetched.
//! - A successor in memory or being filled is not prefetched. The others start while the
//!   rule's bounds allow ([`crate::prefetch::Prefetcher::start`]), each as a Pingora
//!   subrequest carrying a [`PrefetchOrder`] through the ordinary pipeline, like a filler
//!   ([`super::fill_pace`]): the cache lock coalesces it with players (one arriving
//!   meanwhile waits on the prefetch's fill), the origin is asked as for the player (hop-by-hop
//!   fields out, the key's host), and its key carries [`Prefetched`]: stored memory-only
//!   until a request hits it.
//! - A prefetch answered 4xx/5xx is not stored (`EdgeProxy::response_cache_filter`) and
//!   pauses prefetch for its rendition for the rule's `pause`.
//!
//! [`Capture`] records the media playlists the pipeline fetches under a prefix.

use std::sync::Arc;

use http::header;
use pingora_core::protocols::http::HttpTask;
use pingora_core::protocols::http::ServerSession as HttpSession;
use pingora_http::ResponseHeader;
use pingora_proxy::subrequest::Ctx as SubrequestCtx;
use pingora_proxy::Session;

use super::gate::{self, Admission, ContentRequest, Headers, RequestView};
use crate::cache::store::{key_of, Prefetched};
use crate::config::prefetch::rule_for;
use crate::hls::encoding::{Coding, Decoder};
use crate::prefetch::{Outcome, Prefetcher, Ticket};
use crate::state::{EdgeState, Live};

/// The header a prefetch subrequest's answer carries to its reader: whether it fills the
/// cache (`fill`) or not (`none`).
pub const PREFETCH_FILL: &str = "x-edge-prefetch";

/// What a prefetch subrequest carries (its user context).
pub struct PrefetchOrder {
    /// The successor's content request as the gate admitted it, its key marked
    /// [`Prefetched`].
    pub content: ContentRequest,
    pub live: Arc<Live>,
    pub ids: Option<super::request_id::Ids>,
}

/// In a prefetch subrequest, the order it carries (taken: asked once, in `request_filter`).
pub fn order(session: &mut Session) -> Option<PrefetchOrder> {
    let user = session.subrequest_ctx.as_mut()?.user_ctx_mut()?;
    let slot = user.downcast_mut::<Option<PrefetchOrder>>()?;
    slot.take()
}

/// Mark a prefetch subrequest's answer: whether it fills the cache.
pub fn mark(resp: &mut ResponseHeader, fills: bool) -> pingora_error::Result<()> {
    resp.insert_header(PREFETCH_FILL, if fills { "fill" } else { "none" })
}

/// Fields of the player's request a prefetch does not copy: framing, hop-by-hop fields and
/// what asks for a part or a condition of one object.
const NOT_COPIED: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "proxy-connection",
    "range",
    "if-range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
];

/// The one prefetch rule: `content` (admitted from `view`) may start prefetches of the
/// segments after it; a request for a prefetched object counts it used.
pub fn on_request(
    state: &'static EdgeState,
    live: &Arc<Live>,
    view: &RequestView<'_>,
    content: &ContentRequest,
) {
    let rules = &live.config.prefetch;
    if rules.is_empty() || view.method != "GET" || content.slice.is_some() || content.upgrade {
        return;
    }
    let Some(rule) = rule_for(rules, &content.path) else {
        return;
    };
    let book: &'static Prefetcher = &state.prefetch;
    book.requested(key_of(&content.key));
    let next = book.next(rule, &content.host, &content.path);
    if next.is_empty() {
        return;
    }
    let Some(spawner) = book.spawner.get() else {
        return;
    };
    // A path token sits before the path the key has: the successors' paths get it too.
    let prefix = crate::path::normalize(view.path)
        .ok()
        .and_then(|p| p.strip_suffix(content.path.as_str()).map(str::to_string))
        .unwrap_or_default();
    let extra = taken_params(view.query, content.query.as_deref());
    let now = super::unix_now();
    for n in next {
        let path = format!("{prefix}{}", n.path);
        let query = join_query(n.query.as_deref(), &extra);
        let target_len = path.len() + query.as_ref().map_or(0, |q| q.len() + 1);
        let successor = RequestView {
            path: &path,
            query: query.as_deref(),
            line_len: gate::line_len("GET", target_len),
            ..*view
        };
        let decision = gate::admit(&successor, state, live, now);
        let Admission::Content(mut c) = decision.admission else {
            continue;
        };
        if c.slice.is_some() || c.upgrade {
            continue;
        }
        let key = key_of(&c.key);
        if state.cache.storage.cached_or_filling(key) {
            book.settle(&n);
            continue;
        }
        let Some(ticket) = book.start(rule, &n, key) else {
            continue;
        };
        c.key.extensions.insert(Prefetched);
        let raw = request(&c, view.headers);
        let order = PrefetchOrder {
            content: c,
            live: live.clone(),
            ids: Some(decision.ids),
        };
        tokio::spawn(run(spawner, raw, order, ticket, book));
    }
}

/// The HTTP/1.1 head of a prefetch: GET of the successor's origin target with the player's
/// fields.
fn request(c: &ContentRequest, headers: Headers<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(c.target().as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(c.host.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut field = |name: &str, value: &[u8]| {
        if NOT_COPIED.iter().any(|n| name.eq_ignore_ascii_case(n)) {
            return;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    match headers {
        Headers::H1(list) => list.iter().for_each(|h| field(h.name, h.value)),
        Headers::Map(map) => map
            .iter()
            .for_each(|(k, v)| field(k.as_str(), v.as_bytes())),
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The parameters of the player's `query` the gate took off (`kept` is what it kept):
/// its token, CMCD. The successor's request carries them as the player's next one will.
fn taken_params(query: Option<&str>, kept: Option<&str>) -> Vec<String> {
    let kept: Vec<&str> = kept.map_or(Vec::new(), |k| k.split('&').collect());
    query
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty() && !kept.contains(p))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn join_query(own: Option<&str>, extra: &[String]) -> Option<String> {
    let parts: Vec<&str> = own
        .into_iter()
        .chain(extra.iter().map(String::as_str))
        .collect();
    (!parts.is_empty()).then(|| parts.join("&"))
}

/// Run one prefetch and read its answer to the end; the ticket says how it ended.
async fn run(
    spawner: &'static pingora_proxy::SubrequestSpawner,
    raw: Vec<u8>,
    order: PrefetchOrder,
    mut ticket: Ticket,
    book: &'static Prefetcher,
) {
    let mut h1 = HttpSession::new_http1(Box::new(std::io::Cursor::new(raw)));
    if !matches!(h1.read_request().await, Ok(true)) {
        return ticket.finish(Outcome::NotStored);
    }
    let (sub, mut handle) = spawner.create_subrequest(
        &h1,
        SubrequestCtx::builder()
            .user_ctx(Box::new(Some(order)))
            .build(),
    );
    tokio::spawn(sub.run());
    let header = loop {
        match handle.rx.recv().await {
            Some(HttpTask::Header(h, _)) if !h.status.is_informational() => break h,
            Some(HttpTask::Header(..)) => continue,
            // Failed before a header: the ticket, dropped, pauses the rendition.
            _ => return,
        }
    };
    if header.status.as_u16() >= 400 {
        return;
    }
    let fills = header
        .headers
        .get(PREFETCH_FILL)
        .is_some_and(|v| v.as_bytes() == b"fill");
    if !fills {
        return ticket.finish(Outcome::NotStored);
    }
    if let Some(len) = header
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
    {
        ticket.hold(len);
    }
    let counted_length = header.headers.contains_key(header::CONTENT_LENGTH);
    loop {
        match handle.rx.recv().await {
            Some(HttpTask::Body(b, end)) => {
                if let Some(b) = b {
                    book.metrics.bytes.inc_by(b.len() as u64);
                    if !counted_length {
                        ticket.hold(b.len() as u64);
                    }
                }
                if end {
                    break;
                }
            }
            Some(HttpTask::Done) => break,
            Some(HttpTask::Trailer(_)) => continue,
            // Failed or cut: nothing stored (a fill that ends short is failed).
            _ => return,
        }
    }
    ticket.finish(Outcome::Stored);
}

/// A media playlist the pipeline is fetching under a `[[prefetch]]` prefix, read as it
/// arrives and recorded at its end.
pub struct Capture {
    host: String,
    path: String,
    decoder: Decoder,
    body: Vec<u8>,
}

impl Capture {
    /// For an origin response to `content`: a capture when it is a `200` playlist under a
    /// prefetch prefix in a coding the edge decodes.
    pub fn of(resp: &ResponseHeader, content: &ContentRequest, live: &Live) -> Option<Capture> {
        if resp.status != http::StatusCode::OK
            || rule_for(&live.config.prefetch, &content.path).is_none()
        {
            return None;
        }
        let ct = resp
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if !crate::hls::is_playlist(ct, &content.path) {
            return None;
        }
        let coding = Coding::from_header(
            resp.headers
                .get_all(header::CONTENT_ENCODING)
                .iter()
                .map(|v| v.as_bytes()),
        )
        .ok()?;
        Some(Capture {
            host: content.host.clone(),
            path: content.path.clone(),
            decoder: Decoder::new(coding, crate::prefetch::MAX_PLAYLIST),
            body: Vec::new(),
        })
    }

    /// The next chunk of the origin's body; `false` once the capture gave up (too large,
    /// not decodable).
    pub fn push(&mut self, chunk: &[u8]) -> bool {
        match self.decoder.push(chunk) {
            Ok(b) => {
                self.body.extend_from_slice(&b);
                true
            }
            Err(_) => false,
        }
    }

    /// The body ended: record the playlist.
    pub fn finish(mut self, book: &Prefetcher) {
        if let Ok(b) = self.decoder.finish() {
            self.body.extend_from_slice(&b);
            book.record_playlist(&self.host, &self.path, &self.body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_parameters_ride_along() {
        assert_eq!(
            taken_params(Some("v=1&token=abc&CMCD=x"), Some("v=1")),
            vec!["token=abc".to_string(), "CMCD=x".to_string()]
        );
        assert!(taken_params(None, None).is_empty());
        assert!(taken_params(Some("a=1"), Some("a=1")).is_empty());
        assert_eq!(
            join_query(Some("v=2"), &["token=abc".to_string()]).as_deref(),
            Some("v=2&token=abc")
        );
        assert_eq!(join_query(None, &[]), None);
        assert_eq!(
            join_query(None, &["token=abc".to_string()]).as_deref(),
            Some("token=abc")
        );
    }
}
