//! The front's answer to a fresh memory hit of a playlist rewritten for its viewer (a query
//! token on every URI, variants above the token's `mh` removed, decoded): the pipeline's
//! answer, byte for byte. The body is the pipeline's transform run over the whole stored body
//! ([`crate::proxy::playlist::transform`]); the head is the stored header with the pipeline's
//! edit ([`crate::proxy::playlist::rewritten_header`]), kept with the object as its rewrite
//! memo, and the body goes out chunked as the pipeline sends it on HTTP/1.1 (one chunk).

use bytes::{Bytes, BytesMut};
use std::time::SystemTime;

use super::{end_of_head, Reply};
use crate::proxy::{compose, playlist};

/// The answer: 200, the rewritten `body` in one chunk (none for `HEAD`).
pub(super) fn reply(
    hit: &crate::cache::FreshHit,
    now: SystemTime,
    body: Bytes,
    head_only: bool,
    edge_headers: &[(&'static str, String)],
    request_id: &str,
) -> Reply {
    let memo = hit
        .meta
        .rewrite_memo
        .get_or_init(|| memo_of(&hit.meta.header));
    let sent = if head_only { 0 } else { body.len() };
    let mut head = BytesMut::with_capacity(340 + memo.len() + sent);
    head.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    head.extend_from_slice(memo);
    head.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    end_of_head(&mut head, hit, now, edge_headers, request_id);
    if !head_only {
        chunked(&mut head, &body);
    }
    Reply {
        head,
        body: None,
        head_only,
        status: 200,
        sent,
        log: None,
        cmcd: None,
    }
}

/// The stored header as the pipeline edits it for a rewritten playlist, in the form of
/// [`compose::memo_of`].
fn memo_of(stored: &pingora_http::ResponseHeader) -> Bytes {
    let mut h = stored.clone();
    // The edit only inserts a field; the stored header is well formed.
    if playlist::rewritten_header(&mut h).is_err() {
        return compose::memo_of(stored);
    }
    compose::memo_of(&h)
}

/// `body` as one chunk and the last chunk (RFC 9112 §7.1); an empty body is the last chunk
/// alone.
fn chunked(out: &mut BytesMut, body: &[u8]) {
    if !body.is_empty() {
        out.extend_from_slice(format!("{:X}\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_chunk_then_the_last() {
        let mut out = BytesMut::new();
        chunked(&mut out, &[b'a'; 26]);
        assert_eq!(&out[..], b"1A\r\naaaaaaaaaaaaaaaaaaaaaaaaaa\r\n0\r\n\r\n");
        let mut out = BytesMut::new();
        chunked(&mut out, b"");
        assert_eq!(&out[..], b"0\r\n\r\n");
    }

    #[test]
    fn the_memo_carries_the_pipelines_edit() {
        let mut h = pingora_http::ResponseHeader::build(200, None).unwrap();
        for (k, v) in [
            ("content-type", "application/vnd.apple.mpegurl"),
            ("content-length", "30"),
            ("content-encoding", "gzip"),
            ("cache-control", "max-age=2"),
            ("etag", "\"p\""),
        ] {
            h.append_header(k, v).unwrap();
        }
        let memo = String::from_utf8(memo_of(&h).to_vec())
            .unwrap()
            .to_ascii_lowercase();
        assert!(
            memo.contains("cache-control: private, no-store\r\n"),
            "{memo}"
        );
        assert!(memo.contains("etag: \"p\"\r\n"), "{memo}");
        for gone in ["content-length", "content-encoding", "max-age"] {
            assert!(!memo.contains(gone), "{gone} in {memo}");
        }
    }
}
