//! The headers the edge sets on a content response, one routine for both request paths:
//! the pipeline applies them to the stored or origin header ([`apply`]), the front writes
//! them after the stored header's memo ([`memo_of`]). Either way the edge's values replace
//! any the origin stored — `X-Cache`, `Cache-Status` (RFC 9211) and the CORS headers are
//! never duplicated — and `Vary: Origin` is added next to the origin's own `Vary`.

use bytes::{Bytes, BytesMut};
use pingora_http::ResponseHeader;

use crate::state::Live;

/// Stored or origin headers the edge replaces with its own on every content response.
const REPLACED: [&str; 4] = [
    "x-cache",
    "cache-status",
    "access-control-allow-origin",
    "access-control-expose-headers",
];

/// Headers a fast path writes itself for each answer (framing, timing, connection).
const PER_ANSWER: [http::HeaderName; 6] = [
    http::header::CONTENT_LENGTH,
    http::header::DATE,
    http::header::AGE,
    http::header::ACCEPT_RANGES,
    http::header::CONNECTION,
    http::header::TRANSFER_ENCODING,
];

/// The edge's own headers for a content response with cache result `cache` (`HIT`, `MISS`,
/// ...) to a request whose `Origin` is allowed as `cors_origin`.
pub fn edge_headers(
    live: &Live,
    cache: &'static str,
    cors_origin: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut h = Vec::with_capacity(5);
    h.push(("x-cache", cache.to_string()));
    h.push((
        "cache-status",
        cache_status(&live.config.server.name, cache),
    ));
    h.extend(super::gate::cors_headers(live, cors_origin));
    h
}

/// Apply the edge's headers to a response header on its way out of the pipeline.
pub fn apply(
    resp: &mut ResponseHeader,
    headers: Vec<(&'static str, String)>,
) -> pingora_error::Result<()> {
    for name in REPLACED {
        resp.remove_header(name);
    }
    for (k, v) in headers {
        // `Vary: Origin` joins the origin's own `Vary`; everything else is the edge's alone.
        resp.append_header(k, v)?;
    }
    Ok(())
}

/// A stored header in HTTP/1 wire form without what every answer sets itself (framing,
/// `Date`, `Age`, `Connection`) and what the edge replaces: the part a fast path can copy
/// as it is. Each line ends in CRLF.
pub fn memo_of(header: &ResponseHeader) -> Bytes {
    let mut h = header.clone();
    for name in &PER_ANSWER {
        h.remove_header(name);
    }
    for name in REPLACED {
        h.remove_header(name);
    }
    let mut buf = BytesMut::with_capacity(256);
    h.header_to_h1_wire(&mut buf);
    buf.freeze()
}

/// RFC 9211 `Cache-Status` for this node (`name`, e.g. `edge-8080`) and a cache result.
pub fn cache_status(name: &str, cache: &str) -> String {
    let params = match cache {
        "HIT" => "hit",
        "STALE" => "hit; detail=stale",
        "MISS" => "fwd=uri-miss",
        "EXPIRED" => "fwd=stale",
        "REVALIDATED" => "fwd=stale; fwd-status=304",
        _ => "fwd=bypass",
    };
    let token = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b));
    if token {
        format!("{name}; {params}")
    } else {
        format!("\"{}\"; {params}", name.replace(['\\', '"'], ""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_status_values() {
        assert_eq!(cache_status("edge-8080", "HIT"), "edge-8080; hit");
        assert_eq!(cache_status("edge-8080", "MISS"), "edge-8080; fwd=uri-miss");
        assert_eq!(
            cache_status("edge-8080", "REVALIDATED"),
            "edge-8080; fwd=stale; fwd-status=304"
        );
        assert_eq!(cache_status("pop 1", "BYPASS"), "\"pop 1\"; fwd=bypass");
    }

    #[test]
    fn memo_drops_what_each_answer_sets() {
        let mut h = ResponseHeader::build(200, None).unwrap();
        for (k, v) in [
            ("content-type", "video/mp2t"),
            ("content-length", "3"),
            ("x-cache", "ORIGIN"),
            ("age", "9"),
            ("access-control-allow-origin", "*"),
            ("etag", "\"a\""),
        ] {
            h.append_header(k, v).unwrap();
        }
        let memo = String::from_utf8(memo_of(&h).to_vec())
            .unwrap()
            .to_ascii_lowercase();
        assert!(
            memo.contains("content-type: video/mp2t\r\n") && memo.contains("etag: \"a\"\r\n"),
            "{memo}"
        );
        for gone in [
            "content-length",
            "x-cache",
            "age",
            "access-control-allow-origin",
        ] {
            assert!(!memo.contains(gone), "{gone} in {memo}");
        }
    }
}
