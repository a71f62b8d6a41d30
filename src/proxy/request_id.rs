//! A request's id and its W3C trace context (`traceparent`), decided once by the gate for
//! both paths: the front echoes the id on its hits; the pipeline echoes it too and sends it,
//! with the trace context, on every origin request; both log it.
//!
//! - `X-Request-Id`: the client's, when it is sane (1–128 visible ASCII bytes, one field);
//!   otherwise a new one: 32 hex digits, a random per-process prefix and a counter (unique
//!   without a random-number call per request).
//! - `traceparent` (W3C Trace Context Level 1, §3.2): a valid one from the client continues
//!   its trace: the origin gets the same trace id and flags with a new parent id (the edge's
//!   span, whose parent is the client's); `tracestate` passes unchanged. An invalid one is
//!   dropped (§3.2.2: a vendor must not pass on what it cannot parse). When the client sent
//!   none the edge starts no trace: a cache in front of video starts millions of one-span
//!   traces nobody samples; the request id is the correlation key.

use super::gate::Headers;
pub use crate::access_log::ids::IdSource;

pub const REQUEST_ID: &str = "x-request-id";
pub const TRACEPARENT: &str = "traceparent";
/// The longest client request id kept.
const MAX_ID: usize = 128;

/// The trace a request continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// 32 hex digits, as the client sent it.
    pub trace_id: String,
    /// The client's span (the parent of the edge's).
    pub client_span: String,
    /// The edge's span: the parent id the origin sees.
    pub span: String,
    pub flags: String,
}

impl Trace {
    /// The `traceparent` sent to the origin.
    pub fn header(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.span, self.flags)
    }
}

/// A request's id and trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub request_id: String,
    pub trace: Option<Trace>,
}

/// Set the origin request's `X-Request-Id` and `traceparent` (the edge's span); without a
/// trace to continue, the client's `traceparent` and `tracestate` do not go on (§3.2.2, §3.3).
pub fn forward(ids: &Ids, req: &mut pingora_http::RequestHeader) -> pingora_error::Result<()> {
    req.insert_header(REQUEST_ID, ids.request_id.as_str())?;
    match &ids.trace {
        Some(t) => req.insert_header(TRACEPARENT, t.header())?,
        None => {
            req.remove_header(TRACEPARENT);
            req.remove_header("tracestate");
        }
    }
    Ok(())
}

/// The ids of a request with these header fields.
pub fn of(headers: Headers<'_>, source: &IdSource) -> Ids {
    let request_id = single(headers, REQUEST_ID)
        .and_then(sane_request_id)
        .map_or_else(|| source.request_id(), str::to_string);
    let trace = single(headers, TRACEPARENT)
        .and_then(parse_traceparent)
        .map(|(trace_id, client_span, flags)| Trace {
            trace_id: trace_id.to_string(),
            client_span: client_span.to_string(),
            span: source.span_id(),
            flags: flags.to_string(),
        });
    Ids { request_id, trace }
}

/// The value of `name` when the request has exactly one such field.
fn single<'a>(headers: Headers<'a>, name: &str) -> Option<&'a [u8]> {
    let mut all = headers.all(name);
    let first = all.next()?;
    all.next().is_none().then_some(first)
}

/// A client's request id, when it is fit to log and send on: 1–128 visible ASCII bytes.
fn sane_request_id(v: &[u8]) -> Option<&str> {
    if v.is_empty() || v.len() > MAX_ID || !v.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return None;
    }
    std::str::from_utf8(v).ok()
}

/// `version-traceid-parentid-flags` (W3C Trace Context §3.2.2): lower-case hex, trace and
/// parent ids not all zero, version `ff` invalid; a version 00 value is exactly 55 bytes, a
/// later version may carry more after a `-` (§3.2.4: read as version 00).
fn parse_traceparent(v: &[u8]) -> Option<(&str, &str, &str)> {
    let v = std::str::from_utf8(v).ok()?.trim_matches([' ', '\t']);
    if v.len() < 55 || !v.is_char_boundary(55) {
        return None;
    }
    let (head, rest) = v.split_at(55);
    let mut parts = head.split('-');
    let (version, trace_id, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    let ok = hex(version, 2)
        && version != "ff"
        && (rest.is_empty() || (version != "00" && rest.starts_with('-')))
        && hex(trace_id, 32)
        && nonzero(trace_id)
        && hex(parent, 16)
        && nonzero(parent)
        && hex(flags, 2);
    ok.then_some((trace_id, parent, flags))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(fields: &[(&'static str, &'static [u8])], source: &IdSource) -> Ids {
        let h: Vec<httparse::Header> = fields
            .iter()
            .map(|(name, value)| httparse::Header { name, value })
            .collect();
        of(Headers::H1(&h), source)
    }

    const TP: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn client_request_id_kept_when_sane() {
        let s = IdSource::new();
        assert_eq!(
            ids(&[("X-Request-Id", b"abc-123")], &s).request_id,
            "abc-123"
        );
        let long = [b'a'; 128];
        let owned: &'static [u8] = Box::leak(Box::new(long));
        assert_eq!(ids(&[("x-request-id", owned)], &s).request_id.len(), 128);
        for bad in [
            &b""[..],
            b"has space",
            b"tab\there",
            b"\xc3\xa9",
            b"quote\"ok?\x7f",
            &[b'a'; 129][..],
        ] {
            let owned: &'static [u8] = Box::leak(bad.to_vec().into_boxed_slice());
            let id = ids(&[("x-request-id", owned)], &s).request_id;
            assert_eq!(id.len(), 32, "{}", bad.escape_ascii());
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        // Two ids: which one would the origin see? Neither.
        let two = ids(&[("x-request-id", b"a"), ("x-request-id", b"b")], &s);
        assert_eq!(two.request_id.len(), 32);
    }

    #[test]
    fn generated_ids_differ() {
        let s = IdSource::new();
        let a = ids(&[], &s).request_id;
        let b = ids(&[], &s).request_id;
        assert_ne!(a, b);
        assert_eq!(a[..16], b[..16], "one prefix per process");
        assert_ne!(IdSource::new().request_id()[..16], a[..16]);
    }

    #[test]
    fn traceparent_continued_with_a_new_span() {
        let s = IdSource::new();
        let t = ids(&[("traceparent", TP)], &s).trace.unwrap();
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.client_span, "00f067aa0ba902b7");
        assert_eq!(t.flags, "01");
        assert_ne!(t.span, t.client_span);
        assert_eq!(t.span.len(), 16);
        let h = t.header();
        assert!(h.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{h}");
        assert!(h.ends_with("-01"));
        assert_eq!(parse_traceparent(h.as_bytes()).unwrap().1, t.span);
        // A later version with more fields is read as version 00.
        let v1 = b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra";
        assert!(parse_traceparent(v1).is_some());
        assert_eq!(ids(&[], &s).trace, None, "no trace is started");
    }

    #[test]
    fn invalid_traceparents_are_dropped() {
        for bad in [
            &b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"[..],
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736x00f067aa0ba902b7-01",
            b"",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{}", bad.escape_ascii());
        }
        let s = IdSource::new();
        assert_eq!(
            ids(&[("traceparent", TP), ("traceparent", TP)], &s).trace,
            None
        );
    }
}
