//! Playlist delivery: a playlist rewritten for one viewer ([`crate::hls::Transform`]: decoded
//! from the origin's content coding, variants above the token's `mh` removed, every URI
//! carrying a query token; for a DASH MPD, its Representations above `mh` removed) on its way
//! out.
//!
//! It runs as a Pingora downstream module, not in `ProxyHttp::response_body_filter`, because
//! only a module sees the end of every response: on a cache miss (and on a body Pingora ends by
//! its length) the last task is a bare `Done` that reaches `response_done_filter` and no
//! `ProxyHttp` filter. A playlist that is held until its end (`mh` filtering, encoded bodies)
//! and a last line without a newline are sent from there. The proxy's `response_filter` decides
//! and hands the module a [`PlaylistOut`] ([`PlaylistModule::deliver`]); every other response
//! passes through untouched.
//!
//! The HTTP/1 front answers a fresh memory hit of such a playlist itself, with the same
//! [`transform`] run over the whole stored body and the same header edit ([`rewritten_header`]).

use std::any::Any;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::modules::http::{HttpModule, HttpModuleBuilder, Module};
use pingora_error::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;

use crate::hls::encoding::DecodeError;
use crate::metrics::Metrics;
use crate::state::Live;

use super::gate::ContentRequest;
use super::tokens;

/// `x-edge-reason` (and body) of a playlist that cannot be rewritten for the viewer.
pub const PLAYLIST_UNDECODABLE: &str = "playlist_undecodable";

/// One playlist on its way to one viewer.
pub struct PlaylistOut {
    delivery: Delivery,
    /// The request's path, for the log line of a failure.
    path: String,
}

enum Delivery {
    Rewrite(crate::hls::Transform),
    /// The body's coding cannot be decoded: the viewer gets this error body instead (once).
    Refused(Option<Bytes>),
}

impl PlaylistOut {
    /// A playlist body transformed by `transform`.
    pub fn rewrite(transform: crate::hls::Transform, path: &str) -> PlaylistOut {
        PlaylistOut {
            delivery: Delivery::Rewrite(transform),
            path: path.to_string(),
        }
    }

    /// A playlist that cannot be decoded (counted and logged here): the viewer gets a 502
    /// `playlist_undecodable` instead.
    pub fn refused(metrics: &Metrics, e: &DecodeError, path: &str) -> PlaylistOut {
        failed(metrics, e, path);
        let body = Bytes::from(format!("{PLAYLIST_UNDECODABLE}\n"));
        PlaylistOut {
            delivery: Delivery::Refused(Some(body)),
            path: path.to_string(),
        }
    }

    /// The response header for the viewer: identity body of unknown length, or the refusal.
    pub fn edit_header(&self, resp: &mut ResponseHeader, version: http::Version) -> Result<()> {
        match &self.delivery {
            Delivery::Rewrite(_) => {
                rewritten_header(resp)?;
                if version == http::Version::HTTP_11 {
                    resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
                }
            }
            Delivery::Refused(body) => {
                // With a query token the playlist must carry it; sending the origin's bytes
                // untouched would strand the player, and rewriting them would mangle them.
                let mut h = ResponseHeader::build(502, Some(4))?;
                h.insert_header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
                h.insert_header(
                    http::header::CONTENT_LENGTH,
                    body.as_ref().map_or(0, Bytes::len).to_string(),
                )?;
                h.insert_header(http::header::CACHE_CONTROL, "no-store")?;
                h.insert_header("x-edge-reason", PLAYLIST_UNDECODABLE)?;
                *resp = h;
            }
        }
        Ok(())
    }

    fn push(&mut self, chunk: &[u8], end: bool) -> std::result::Result<Bytes, DecodeError> {
        match &mut self.delivery {
            Delivery::Rewrite(t) if end => t.push_last(chunk),
            Delivery::Rewrite(t) => t.push(chunk),
            Delivery::Refused(body) => Ok(body.take().unwrap_or_default()),
        }
    }
}

/// The transformation of the playlist (or MPD) `resp` for the viewer of `content`: its URIs
/// carrying the viewer's query token, its variants above the token's `mh` removed, decoded
/// from its content coding; an error when that coding cannot be decoded. `None` without a
/// token (or token settings). Whether a response needs one at all is
/// [`super::rewrites_playlist`].
pub fn transform(
    live: &Live,
    content: &ContentRequest,
    resp: &ResponseHeader,
) -> Option<std::result::Result<crate::hls::Transform, DecodeError>> {
    let g = content.token.as_ref()?;
    let tc = live.config.tokens.as_ref()?;
    let append = match g.placement {
        // The parameters as they came, already encoded.
        tokens::Placement::CloudFrontQuery => Some(g.token.clone()),
        _ => query_param(g, tc).map(|(name, value)| format!("{name}={value}")),
    };
    let codings = resp.headers.get_all(http::header::CONTENT_ENCODING);
    let content_type = resp
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    // An MPD is only filtered by `mh` (its URIs are not rewritten: DASH plays with path
    // or cookie tokens, README "DASH").
    let mpd = !crate::hls::is_playlist(content_type, &content.path)
        && crate::dash::is_mpd(content_type, &content.path);
    let rewriter = append
        .filter(|_| !mpd)
        .map(|a| crate::hls::PlaylistRewriter::new(a).with_own_host(content.host.clone()));
    let max_height = g.claims.as_ref().and_then(|c| c.mh);
    let coding = crate::hls::encoding::Coding::from_header(codings.iter().map(|v| v.as_bytes()));
    Some(coding.map(|coding| {
        let t = crate::hls::Transform::new(coding, rewriter, max_height);
        if mpd {
            t.mpd()
        } else {
            t
        }
    }))
}

/// The query parameter (name, percent-encoded value) a playlist's URIs get for a viewer whose
/// token came as one query parameter; `None` for the other placements (a CloudFront query is
/// several parameters; path and cookie tokens reach the segments by themselves).
fn query_param<'a>(
    g: &tokens::Granted,
    tc: &'a crate::config::tokens::TokensConfig,
) -> Option<(&'a str, String)> {
    const VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let encode = |v: &str| percent_encoding::utf8_percent_encode(v, VALUE).to_string();
    match g.placement {
        tokens::Placement::Query => Some((tc.param.as_str(), encode(&g.token))),
        tokens::Placement::EdgeAuthQuery => tc
            .edgeauth
            .as_ref()
            .map(|ea| (ea.param.as_str(), encode(&g.token))),
        tokens::Placement::CloudFrontQuery
        | tokens::Placement::Path
        | tokens::Placement::Cookie
        | tokens::Placement::CloudFrontCookie => None,
    }
}

/// The body of a fresh memory hit of a playlist for the viewer of `content`, as the
/// pipeline would send it (the fast paths' answer; `None` when it cannot be decoded, which
/// the pipeline then refuses and counts).
///
/// The common case — an identity playlist, one query token, no `mh` filter — comes from the
/// object's [`TokenPlan`](crate::hls::TokenPlan), made at its first such hit and kept with it:
/// one copy of the body per viewer instead of a rewrite. Everything else is [`transform`]ed.
pub fn rewrite_hit(
    live: &Live,
    content: &ContentRequest,
    hit: &crate::cache::FreshHit,
) -> Option<Bytes> {
    if let Some(body) = planned(live, content, hit) {
        return Some(body);
    }
    let t = transform(live, content, &hit.meta.header)?.ok()?;
    rewrite_whole(t, &hit.body)
}

/// [`rewrite_hit`] from the object's plan, when it applies.
fn planned(live: &Live, content: &ContentRequest, hit: &crate::cache::FreshHit) -> Option<Bytes> {
    let g = content.token.as_ref()?;
    if g.claims.as_ref().is_some_and(|c| c.mh.is_some()) {
        return None;
    }
    let tc = live.config.tokens.as_ref()?;
    let (name, value) = query_param(g, tc)?;
    let header = &hit.meta.header;
    let content_type = header
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !crate::hls::is_playlist(content_type, &content.path) {
        return None;
    }
    let codings = header.headers.get_all(http::header::CONTENT_ENCODING);
    let coding = crate::hls::encoding::Coding::from_header(codings.iter().map(|v| v.as_bytes()));
    if !matches!(coding, Ok(crate::hls::encoding::Coding::Identity)) {
        return None;
    }
    let memo = hit.meta.body_memo.get_or_init(|| {
        let plan = crate::hls::TokenPlan::new(&hit.body, name, &content.host);
        std::sync::Arc::new(plan)
    });
    let plan = memo
        .downcast_ref::<Option<crate::hls::TokenPlan>>()?
        .as_ref()?;
    if !plan.fits(name, &content.host) {
        return None;
    }
    plan.apply(&value)
}

/// The header edit of a rewritten playlist, but its framing (`Transfer-Encoding` on HTTP/1.1):
/// the body changes length and goes out decoded (the cache keeps the origin's coding); and it
/// now carries a viewer's token, so no shared cache downstream may keep it.
pub fn rewritten_header(resp: &mut ResponseHeader) -> Result<()> {
    resp.remove_header(&http::header::CONTENT_LENGTH);
    resp.remove_header(&http::header::CONTENT_ENCODING);
    resp.insert_header(http::header::CACHE_CONTROL, "private, no-store")?;
    Ok(())
}

/// The whole rewritten body of a stored playlist, in one go (`None` when it cannot be
/// decoded: the pipeline then refuses it, and counts that).
fn rewrite_whole(mut t: crate::hls::Transform, body: &[u8]) -> Option<Bytes> {
    t.push_last(body).ok()
}

/// Count and log a playlist that cannot be rewritten for its viewer.
fn failed(metrics: &Metrics, e: &DecodeError, path: &str) {
    metrics
        .playlist_rewrite_failures
        .with_label_values(&[e.reason()])
        .inc();
    tracing::warn!(path, error = %e, "playlist not rewritten: {PLAYLIST_UNDECODABLE}");
}

/// Builds a [`PlaylistModule`] per request.
pub struct PlaylistModuleBuilder {
    pub metrics: &'static Metrics,
}

impl HttpModuleBuilder for PlaylistModuleBuilder {
    fn init(&self) -> Module {
        Box::new(PlaylistModule {
            metrics: self.metrics,
            out: None,
            ended: false,
        })
    }
}

/// The per-request module: idle unless [`deliver`](Self::deliver) gave it a playlist.
pub struct PlaylistModule {
    metrics: &'static Metrics,
    out: Option<PlaylistOut>,
    ended: bool,
}

impl PlaylistModule {
    /// Transform this response's body on its way out.
    pub fn deliver(&mut self, out: PlaylistOut) {
        self.out = Some(out);
        self.ended = false;
    }

    /// The next piece of the body to send, or an error that ends the response unfinished.
    fn next(&mut self, chunk: &[u8], end: bool) -> Result<Option<Bytes>> {
        let Some(out) = self.out.as_mut() else {
            return Ok(None);
        };
        if self.ended {
            return Ok(None);
        }
        self.ended = end;
        match out.push(chunk, end) {
            Ok(b) => Ok(Some(b)),
            Err(e) => {
                // The header is already out: ending the response unfinished (no last chunk,
                // a stream reset) is the error the viewer can see. Nothing of the body was
                // sent: encoded and filtered bodies are held until proven whole.
                self.ended = true;
                failed(self.metrics, &e, &out.path);
                Err(Error::explain(
                    ErrorType::Custom(PLAYLIST_UNDECODABLE),
                    e.to_string(),
                ))
            }
        }
    }
}

#[async_trait]
impl HttpModule for PlaylistModule {
    fn response_body_filter(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        if self.out.is_none() {
            return Ok(());
        }
        let chunk = body.take().unwrap_or_default();
        let next = self.next(&chunk, end_of_stream)?.unwrap_or_default();
        *body = (!next.is_empty() || end_of_stream).then_some(next);
        Ok(())
    }

    fn response_done_filter(&mut self) -> Result<Option<Bytes>> {
        Ok(self.next(&[], true)?.filter(|b| !b.is_empty()))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::encoding::Coding;
    use crate::hls::{PlaylistRewriter, Transform};

    fn module() -> PlaylistModule {
        let metrics: &'static Metrics = Box::leak(Box::new(Metrics::new().unwrap()));
        let mut built = PlaylistModuleBuilder { metrics }.init();
        assert!(built
            .as_any_mut()
            .downcast_mut::<PlaylistModule>()
            .is_some_and(|m| m.out.is_none()));
        PlaylistModule {
            metrics,
            out: None,
            ended: false,
        }
    }

    fn rewrite(mh: Option<u32>) -> PlaylistOut {
        let rw = PlaylistRewriter::new("token=t".into());
        PlaylistOut::rewrite(
            Transform::new(Coding::Identity, Some(rw), mh),
            "/v/index.m3u8",
        )
    }

    fn body(m: &mut PlaylistModule, chunk: &str) -> Option<Bytes> {
        let mut b = Some(Bytes::copy_from_slice(chunk.as_bytes()));
        m.response_body_filter(&mut b, false).unwrap();
        b
    }

    #[test]
    fn responses_without_a_playlist_pass_through() {
        let mut m = module();
        assert_eq!(
            body(&mut m, "segment bytes"),
            Some(Bytes::from_static(b"segment bytes"))
        );
        assert_eq!(m.response_done_filter().unwrap(), None);
    }

    #[test]
    fn a_body_ended_by_done_sends_its_rest_from_the_done_filter() {
        // streamed rewrite: the last line (no newline) waits for the end
        let mut m = module();
        m.deliver(rewrite(None));
        assert_eq!(
            body(&mut m, "#EXTM3U\na.ts\nb."),
            Some(Bytes::from_static(b"#EXTM3U\na.ts?token=t\n"))
        );
        assert_eq!(body(&mut m, "ts"), None);
        assert_eq!(
            m.response_done_filter().unwrap(),
            Some(Bytes::from_static(b"b.ts?token=t"))
        );
        assert_eq!(m.response_done_filter().unwrap(), None, "once");
        // held (mh): everything from the done filter
        let mut m = module();
        m.deliver(rewrite(Some(720)));
        assert_eq!(
            body(
                &mut m,
                "#EXTM3U\n#EXT-X-STREAM-INF:RESOLUTION=1x1080\nhi.m3u8\n"
            ),
            None
        );
        assert_eq!(
            body(&mut m, "#EXT-X-STREAM-INF:RESOLUTION=1x360\nlo.m3u8\n"),
            None
        );
        let out = m.response_done_filter().unwrap().unwrap();
        assert_eq!(
            out,
            Bytes::from_static(b"#EXTM3U\n#EXT-X-STREAM-INF:RESOLUTION=1x360\nlo.m3u8?token=t\n")
        );
    }

    #[test]
    fn a_body_ended_by_its_last_chunk_is_not_sent_twice() {
        let mut m = module();
        m.deliver(rewrite(Some(720)));
        let mut b = Some(Bytes::from_static(b"#EXTM3U\nx.m3u8"));
        m.response_body_filter(&mut b, true).unwrap();
        assert_eq!(b, Some(Bytes::from_static(b"#EXTM3U\nx.m3u8?token=t")));
        assert_eq!(m.response_done_filter().unwrap(), None);
    }

    #[test]
    fn an_undecodable_body_is_an_error_and_counted() {
        let mut m = module();
        let rw = PlaylistRewriter::new("token=t".into());
        m.deliver(PlaylistOut::rewrite(
            Transform::new(Coding::Gzip, Some(rw), None),
            "/v/x.m3u8",
        ));
        let mut b = Some(Bytes::from_static(b"#EXTM3U\nplain text said to be gzip\n"));
        let e = m.response_body_filter(&mut b, false).unwrap_err();
        assert_eq!(e.etype(), &ErrorType::Custom(PLAYLIST_UNDECODABLE));
        assert_eq!(b, None, "nothing of the body goes out");
        assert_eq!(
            m.metrics
                .playlist_rewrite_failures
                .with_label_values(&["corrupt"])
                .get(),
            1
        );
        assert_eq!(m.response_done_filter().unwrap(), None);
    }

    #[test]
    fn a_refusal_sends_its_error_body_once() {
        let mut m = module();
        let e = DecodeError::Unsupported("zstd".into());
        m.deliver(PlaylistOut::refused(m.metrics, &e, "/v/z.m3u8"));
        assert_eq!(
            body(&mut m, "origin bytes"),
            Some(Bytes::from_static(b"playlist_undecodable\n"))
        );
        assert_eq!(body(&mut m, "more origin bytes"), None);
        assert_eq!(m.response_done_filter().unwrap(), None);
        assert_eq!(
            m.metrics
                .playlist_rewrite_failures
                .with_label_values(&["unsupported_encoding"])
                .get(),
            1
        );
        let mut h = ResponseHeader::build(200, None).unwrap();
        h.insert_header("content-encoding", "zstd").unwrap();
        PlaylistOut::refused(m.metrics, &e, "/v/z.m3u8")
            .edit_header(&mut h, http::Version::HTTP_11)
            .unwrap();
        assert_eq!(h.status, 502);
        assert!(h.headers.get("content-encoding").is_none());
        assert_eq!(h.headers["content-length"], "21");
        assert_eq!(h.headers["x-edge-reason"], PLAYLIST_UNDECODABLE);
    }
}
