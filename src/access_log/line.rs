//! One access-log line: its fields ([`Entry`]) and its two forms, JSON and text. Pure.
//!
//! What a line never holds: a token. The `/t/<token>/` path prefix and the token query
//! parameters are written as `REDACTED`; cookies and `Authorization` are not logged at all.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

/// What replaces a token in a logged path or query.
pub const REDACTED: &str = "REDACTED";

/// The fields of one line, in the order the JSON form writes them.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// RFC 3339, UTC, milliseconds: when the answer was complete.
    pub ts: String,
    /// The client (after a trusted `X-Forwarded-For`).
    pub client: IpAddr,
    /// `content`, `api`, `local`, `preflight`, `rejected`.
    pub kind: &'static str,
    pub method: &'a str,
    /// `HTTP/1.1`, `HTTP/2`.
    pub proto: &'static str,
    pub host: Cow<'a, str>,
    /// The path as sent, the token prefix redacted.
    pub path: Cow<'a, str>,
    /// The query as sent, token parameters redacted.
    pub query: Option<Cow<'a, str>>,
    /// The `[[cache.keys]]` rule whose query policy made the cache key (its prefix); `None`
    /// for the default (every parameter) and for requests that have no key.
    pub query_rule: Option<&'a str>,
    pub status: u16,
    /// Body bytes sent.
    pub bytes: usize,
    /// The request's `Range`.
    pub range: Option<Cow<'a, str>>,
    /// `HIT`, `MISS`, `STALE`, `EXPIRED`, `REVALIDATED`, `BYPASS`; `NONE` for answers that
    /// are not content.
    pub cache: &'static str,
    /// Time to the response head, milliseconds.
    pub ttfb_ms: Option<f64>,
    /// Time to the last byte, milliseconds.
    pub ms: f64,
    /// The origin node (address) of the last attempt.
    pub upstream: Option<String>,
    pub upstream_status: Option<u16>,
    pub request_id: &'a str,
    /// The W3C trace id the request continued.
    pub trace_id: Option<&'a str>,
    /// The verified token's key id and session id.
    pub kid: Option<&'a str>,
    pub sid: Option<&'a str>,
    pub country: Option<&'a str>,
    pub user_agent: Option<Cow<'a, str>>,
    pub referer: Option<Cow<'a, str>>,
    /// A refusal's reason code (`x-edge-reason`).
    pub reason: Option<&'a str>,
    /// The pipeline's error, when the exchange failed.
    pub error: Option<String>,
    /// The player's CMCD (CTA-5004): the keys it sent that the edge reads
    /// ([`crate::cmcd::Cmcd`]), in the JSON form only.
    pub cmcd: Option<&'a crate::cmcd::Cmcd>,
}

/// Milliseconds with microsecond precision.
pub fn millis(d: std::time::Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// The JSON form: one object and a newline.
pub fn json(e: &Entry<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    // Serialising plain fields into a Vec cannot fail.
    if serde_json::to_writer(&mut out, e).is_err() {
        out.clear();
        out.extend_from_slice(b"{}");
    }
    out.push(b'\n');
    out
}

/// The text form, combined-log-like (README, "Access logs"):
///
/// ```text
/// client - - [ts] "method path?query proto" status bytes "referer" "user_agent" cache=… ms=…
/// ttfb_ms=… upstream=… upstream_status=… request_id=… trace_id=… kid=… sid=… country=…
/// range="…" query_rule=… reason=… kind=… host=…
/// ```
///
/// Absent values are `-`; quoted values escape `"`, `\` and bytes outside printable ASCII
/// as `\xHH`, as nginx does; unquoted values are escaped the same way and never hold a space.
pub fn text(e: &Entry<'_>) -> Vec<u8> {
    let mut s = String::with_capacity(400);
    let target = match &e.query {
        Some(q) => format!("{}?{q}", e.path),
        None => e.path.to_string(),
    };
    let _ = write!(
        s,
        "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\"",
        e.client,
        e.ts,
        escape(e.method, true),
        escape(&target, true),
        e.proto,
        e.status,
        e.bytes,
        opt_quoted(e.referer.as_deref()),
        opt_quoted(e.user_agent.as_deref()),
    );
    let ttfb = e.ttfb_ms.map(|t| format!("{t:.3}"));
    let upstream_status = e.upstream_status.map(|s| s.to_string());
    for (k, v) in [
        ("cache", Some(e.cache)),
        ("ms", Some(format!("{:.3}", e.ms).as_str())),
        ("ttfb_ms", ttfb.as_deref()),
        ("upstream", e.upstream.as_deref()),
        ("upstream_status", upstream_status.as_deref()),
        ("request_id", Some(e.request_id)),
        ("trace_id", e.trace_id),
        ("kid", e.kid),
        ("sid", e.sid),
        ("country", e.country),
    ] {
        let _ = write!(s, " {k}={}", word(v));
    }
    let _ = write!(s, " range=\"{}\"", opt_quoted(e.range.as_deref()));
    for (k, v) in [
        ("query_rule", e.query_rule),
        ("reason", e.reason),
        ("kind", Some(e.kind)),
        ("host", Some(&*e.host)),
    ] {
        let _ = write!(s, " {k}={}", word(v));
    }
    s.push('\n');
    s.into_bytes()
}

fn word(v: Option<&str>) -> Cow<'_, str> {
    v.map_or(Cow::Borrowed("-"), |v| escape(v, false))
}

fn opt_quoted(v: Option<&str>) -> Cow<'_, str> {
    v.map_or(Cow::Borrowed("-"), |v| escape(v, true))
}

/// `v` with `"`, `\`, bytes outside printable ASCII (and, unquoted, spaces) as `\xHH`.
fn escape(v: &str, quoted: bool) -> Cow<'_, str> {
    let plain =
        |b: u8| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\' || (quoted && b == b' ');
    if v.bytes().all(plain) {
        return Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len() + 8);
    for b in v.bytes() {
        if plain(b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02X}");
        }
    }
    Cow::Owned(out)
}

/// A path with the token of a `/t/<token>/` prefix redacted. The gate looks for the prefix
/// in the normalised path (`/./t/…`, `//t/…` and `/%74/…` carry a token too): such a path is
/// written normalised, with the token redacted. A path the gate refused as ambiguous (`..`,
/// encoded slashes, ...) is written with the segment after every `t` segment redacted.
pub fn redact_path(path: &str) -> Cow<'_, str> {
    let prefix = crate::token::extract::PATH_PREFIX;
    match crate::path::normalize(path) {
        Ok(n) => match crate::token::from_path(&n) {
            Some((_, rest)) => Cow::Owned(format!("{prefix}{REDACTED}{rest}")),
            None => Cow::Borrowed(path),
        },
        Err(_) => {
            let segments: Vec<&str> = path.split('/').collect();
            let after_t = |i: usize| {
                i > 0 && {
                    let s = segments[i - 1];
                    s == "t" || s.eq_ignore_ascii_case("%74")
                }
            };
            if !(0..segments.len()).any(after_t) {
                return Cow::Borrowed(path);
            }
            let out: Vec<&str> = segments
                .iter()
                .enumerate()
                .map(|(i, s)| if after_t(i) { REDACTED } else { s })
                .collect();
            Cow::Owned(out.join("/"))
        }
    }
}

/// A query with the values of the parameters `names` redacted (every occurrence).
pub fn redact_query<'q>(query: &'q str, names: &[&str]) -> Cow<'q, str> {
    let is_token = |pair: &str| {
        let name = pair.split_once('=').map_or(pair, |(n, _)| n);
        names.contains(&name)
    };
    if !query.split('&').any(is_token) {
        return Cow::Borrowed(query);
    }
    let pairs: Vec<Cow<'_, str>> = query
        .split('&')
        .map(|pair| {
            if is_token(pair) {
                let name = pair.split_once('=').map_or(pair, |(n, _)| n);
                Cow::Owned(format!("{name}={REDACTED}"))
            } else {
                Cow::Borrowed(pair)
            }
        })
        .collect();
    Cow::Owned(pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry<'static> {
        Entry {
            ts: "2026-11-27T19:43:29.123Z".into(),
            client: "203.0.113.7".parse().unwrap(),
            kind: "content",
            method: "GET",
            proto: "HTTP/1.1",
            host: "edge.example".into(),
            path: "/v/a/seg.ts".into(),
            query: Some("a=1".into()),
            query_rule: Some("/v/"),
            status: 206,
            bytes: 100,
            range: Some("bytes=0-99".into()),
            cache: "HIT",
            ttfb_ms: Some(0.25),
            ms: 1.5,
            upstream: None,
            upstream_status: None,
            request_id: "rid-1",
            trace_id: None,
            kid: Some("k1"),
            sid: Some("s 1"),
            country: Some("GB"),
            user_agent: Some("Player \"x\"\u{1}é".into()),
            referer: None,
            reason: None,
            error: None,
            cmcd: None,
        }
    }

    #[test]
    fn json_line_parses_back_with_every_byte() {
        let line = json(&entry());
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["user_agent"], "Player \"x\"\u{1}é");
        assert_eq!(v["client"], "203.0.113.7");
        assert_eq!(v["status"], 206);
        assert_eq!(v["range"], "bytes=0-99");
        assert_eq!(v["upstream"], serde_json::Value::Null);
        assert_eq!(v["ms"], 1.5);
    }

    #[test]
    fn text_line() {
        let line = String::from_utf8(text(&entry())).unwrap();
        assert_eq!(
            line,
            "203.0.113.7 - - [2026-11-27T19:43:29.123Z] \"GET /v/a/seg.ts?a=1 HTTP/1.1\" 206 100 \"-\" \
             \"Player \\x22x\\x22\\x01\\xC3\\xA9\" cache=HIT ms=1.500 ttfb_ms=0.250 upstream=- \
             upstream_status=- request_id=rid-1 trace_id=- kid=k1 sid=s\\x201 country=GB \
             range=\"bytes=0-99\" query_rule=/v/ reason=- kind=content host=edge.example\n"
        );
    }

    #[test]
    fn tokens_are_redacted() {
        assert_eq!(redact_path("/t/abc.def/v/a.ts"), "/t/REDACTED/v/a.ts");
        assert_eq!(redact_path("/t/abc"), "/t/REDACTED/");
        assert_eq!(redact_path("/v/t/abc/x"), "/v/t/abc/x");
        for sneaky in [
            "/./t/abc/v/a.ts",
            "//t/abc/v/a.ts",
            "/%74/abc/v/a.ts",
            "/x/../t/abc/v/a.ts",
        ] {
            let r = redact_path(sneaky);
            assert!(!r.contains("abc"), "{sneaky}: {r}");
        }
        assert_eq!(
            redact_query("a=1&token=SECRET&b&token=S2", &["token", "hdnts"]),
            "a=1&token=REDACTED&b&token=REDACTED"
        );
        assert_eq!(redact_query("hdnts", &["hdnts"]), "hdnts=REDACTED");
        assert!(matches!(
            redact_query("a=1&tokenx=2", &["token"]),
            Cow::Borrowed(_)
        ));
    }
}
