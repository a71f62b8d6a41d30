//! The adversarial raw-socket suite (issue 13): request smuggling variants, header abuse,
//! odd request lines and targets, oversized heads and upgrades, each as exact bytes on a
//! fresh connection, with the answer the edge must give and nginx's answer beside it.
//!
//! Every row goes to three servers: an edge whose HTTP/1 front answers fresh memory hits, an
//! edge with `fast_hits = false` (every request through the Pingora pipeline), and a real
//! nginx reverse proxy (Debian's nginx 1.22, `proxy_pass` with its defaults). Both edges must
//! give the row's `edge` answer and send the row's `origin` count of requests to their
//! origin; nginx must give the row's `nginx` answer, so the note is checked, not copied. No
//! request ever reaches any origin as `/smuggled`: the smuggling rows hide a second request
//! there. Where the edge and nginx differ, the row says why.
//!
//! Not here: pipelining (tests/it/front.rs and the pipelining work), slow clients (a head
//! trickled past `header_timeout`, stalled reads: tests/it/limits.rs).

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::nginx::{Nginx, NginxOptions};
use crate::support::{Edge, Origin, Route};

/// What a server did with a row's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Got {
    /// The final status of its first answer (after any `100 Continue`).
    Status(u16),
    /// Closed the connection without an answer.
    Close,
    /// Answered with bytes that are not an HTTP/1 response (an HTTP/0.9 body).
    Raw,
}
use Got::{Close, Raw, Status};

struct Row {
    what: &'static str,
    request: Vec<u8>,
    /// Both edges' answer.
    edge: Got,
    /// Requests the row sends to an edge's origin (fresh objects are answered from the cache).
    origin: usize,
    /// nginx 1.22's answer to the same bytes.
    nginx: Got,
}

fn row(
    what: &'static str,
    request: impl Into<Vec<u8>>,
    edge: Got,
    origin: usize,
    nginx: Got,
) -> Row {
    Row {
        what,
        request: request.into(),
        edge,
        origin,
        nginx,
    }
}

/// A request hidden after a message's body, for the smuggling rows.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: edge.test\r\n\r\n";

fn get(extra: &str) -> String {
    format!("GET /a HTTP/1.1\r\nHost: edge.test\r\n{extra}\r\n")
}

fn post(extra: &str, body: &str) -> String {
    format!("POST /p HTTP/1.1\r\nHost: edge.test\r\n{extra}\r\n{body}")
}

/// Send `bytes` on a fresh connection, then read until the server closes or is quiet for a
/// moment after a whole answer (at most 5 s), and say what came back.
async fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> Got {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server may close before it has read everything (a refusal): not an error here.
    let _ = s.write_all(bytes).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let whole = first_answer(&buf).is_some_and(|(_, complete)| complete);
        let wait = if whole {
            Duration::from_millis(200)
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        match tokio::time::timeout(wait, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    match first_answer(&buf) {
        Some((status, _)) => Status(status),
        None if buf.is_empty() => Close,
        None => Raw,
    }
}

/// The final status of the first response in `buf` (1xx other than 101 skipped), and
/// whether its body is complete (or not known to be incomplete).
fn first_answer(mut buf: &[u8]) -> Option<(u16, bool)> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.starts_with(b"HTTP/") => return None,
            _ => return None,
        };
        let status = resp.code?;
        if (100..200).contains(&status) && status != 101 {
            buf = &buf[n..];
            continue;
        }
        let len = resp
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| {
                std::str::from_utf8(h.value)
                    .ok()?
                    .trim()
                    .parse::<usize>()
                    .ok()
            });
        return Some((status, len.is_none_or(|l| buf.len() - n >= l)));
    }
}

/// The rows. `/a` is a cached object (filled before the rows run: answered without the
/// origin, by the front on the first edge); `/p` is not cacheable (`no-store`) and takes
/// request bodies.
fn rows() -> Vec<Row> {
    let long_target = format!("/a?{}", "q".repeat(9000));
    let long_field = format!("X-Long: {}\r\n", "v".repeat(9000));
    let big_head: String = (0..40)
        .map(|i| format!("X-F{i}: {}\r\n", "v".repeat(1000)))
        .collect();
    let many = |n: usize| (0..n).map(|i| format!("X-H{i}: v\r\n")).collect::<String>();
    vec![
        // --- Smuggling: framing that two parsers could read two ways.
        // RFC 9112 §6.1/§6.3: TE overrides CL, and the connection closes after the answer (so
        // the bytes after the chunked body are never read as a request); refusing is allowed
        // too, and nginx does. Pingora's parser drops the CL before the gate could see it.
        row("CL and TE together: TE wins, CL is dropped, the connection closes after", post("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", &format!("0\r\n\r\n{SMUGGLED}")), Status(200), 1, Status(400)),
        row("TE and CL together, TE first", post("Transfer-Encoding: chunked\r\nContent-Length: 50\r\n", &format!("0\r\n\r\n{SMUGGLED}")), Status(200), 1, Status(400)),
        row("TE: chunked with a trailing space", post("Transfer-Encoding: chunked \r\n", "0\r\n\r\n"), Status(200), 1, Status(200)),
        row("TE: Chunked (case)", post("Transfer-Encoding: Chunked\r\n", "0\r\n\r\n"), Status(200), 1, Status(200)),
        // RFC 9112 §6.3: a final coding other than chunked → 400 and close (nginx: 501).
        row("TE: xchunked", post("Transfer-Encoding: xchunked\r\n", &format!("0\r\n\r\n{SMUGGLED}")), Status(400), 0, Status(501)),
        row("TE: chunked, identity", post("Transfer-Encoding: chunked, identity\r\n", &format!("0\r\n\r\n{SMUGGLED}")), Status(400), 0, Status(501)),
        // RFC 9112 §6.1: a coding the edge does not implement → 501 (was: forwarded without its gzip label).
        row("TE: gzip, chunked", post("Transfer-Encoding: gzip, chunked\r\n", &format!("0\r\n\r\n{SMUGGLED}")), Status(501), 0, Status(501)),
        row("TE: chunked in two fields", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", &format!("0\r\n\r\n{SMUGGLED}")), Status(400), 0, Status(400)),
        // RFC 9112 §6.1: TE on HTTP/1.0 is faulty framing.
        row("TE on HTTP/1.0", format!("POST /p HTTP/1.0\r\nHost: edge.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"), Status(400), 0, Status(400)),
        row("TE with a space before the colon", post("Transfer-Encoding : chunked\r\nContent-Length: 5\r\n", &format!("0\r\n\r\n{SMUGGLED}")), Status(400), 0, Status(400)),
        row("TE folded onto the previous line", post("X-A: 1\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", &format!("0\r\n\r\n{SMUGGLED}")), Status(400), 0, Status(400)),
        row("two equal Content-Lengths", post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"), Status(200), 1, Status(400)),
        row("two different Content-Lengths", post("Content-Length: 5\r\nContent-Length: 50\r\n", &format!("hello{SMUGGLED}")), Status(400), 0, Status(400)),
        row("Content-Length with a sign", post("Content-Length: +5\r\n", "hello"), Status(400), 0, Status(400)),
        row("Content-Length with leading zeros", post("Content-Length: 005\r\n", "hello"), Status(200), 1, Status(200)),
        row("Content-Length in hex", post("Content-Length: 0x5\r\n", "hello"), Status(400), 0, Status(400)),
        row("Content-Length negative", post("Content-Length: -1\r\n", ""), Status(400), 0, Status(400)),
        row("a GET whose body is a request", get(&format!("Content-Length: {}\r\n", SMUGGLED.len())) + SMUGGLED, Status(200), 0, Status(200)),
        row("chunk size overflow", post("Transfer-Encoding: chunked\r\n", &format!("fffffffffffffffff1\r\nx\r\n0\r\n\r\n{SMUGGLED}")), Status(400), 0, Status(400)),
        row("chunk extensions", post("Transfer-Encoding: chunked\r\n", "5;ext=1;b=\"q\"\r\nhello\r\n0\r\n\r\n"), Status(200), 1, Status(200)),
        // --- Line endings, folding, whitespace, control bytes.
        row("bare LF line endings", "GET /a HTTP/1.1\nHost: edge.test\n\n", Status(200), 0, Status(200)),
        row("bare CR line endings", "GET /a HTTP/1.1\rHost: edge.test\r\r", Status(400), 0, Status(400)),
        row("obs-fold continuation line", get("X-A: 1\r\n 2\r\n"), Status(400), 0, Status(400)),
        row("whitespace before the colon", get("X-A : 1\r\n"), Status(400), 0, Status(400)),
        row("NUL in a field value", get("X-A: a\0b\r\n"), Status(400), 0, Status(400)),
        row("a control byte in a field value", get("X-A: a\x01b\r\n"), Status(400), 0, Status(200)),
        row("NUL in the target", "GET /a\0b HTTP/1.1\r\nHost: edge.test\r\n\r\n", Status(400), 0, Status(400)),
        // RFC 9112 §3: 400 (Pingora alone would percent-encode the space and forward it).
        row("a space in the target", "GET /a b HTTP/1.1\r\nHost: edge.test\r\n\r\n", Status(400), 0, Status(400)),
        // --- Targets and Host.
        row("absolute-form with another host", "GET http://other.test/a HTTP/1.1\r\nHost: edge.test\r\n\r\n", Status(400), 0, Status(200)),
        row("absolute-form with our host", "GET http://edge.test/a HTTP/1.1\r\nHost: edge.test\r\n\r\n", Status(200), 0, Status(200)),
        row("Host with userinfo", "GET /a HTTP/1.1\r\nHost: user@edge.test\r\n\r\n", Status(400), 0, Status(200)),
        row("Host with a bad port", "GET /a HTTP/1.1\r\nHost: edge.test:99999999\r\n\r\n", Status(400), 0, Status(200)),
        row("empty Host", "GET /a HTTP/1.1\r\nHost:\r\n\r\n", Status(400), 0, Status(400)),
        row("two Hosts", "GET /a HTTP/1.1\r\nHost: edge.test\r\nHost: other.test\r\n\r\n", Status(400), 0, Status(400)),
        // Another key (no host): a miss.
        row("no Host on HTTP/1.0", "GET /a HTTP/1.0\r\n\r\n", Status(200), 1, Status(200)),
        // Pingora answers CONNECT 405 itself: the edge is no forward proxy.
        row("CONNECT", "CONNECT edge.test:443 HTTP/1.1\r\nHost: edge.test:443\r\n\r\n", Status(405), 0, Status(400)),
        row("OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: edge.test\r\n\r\n", Status(400), 0, Status(400)),
        // --- Sizes (the edge: 414/431 with nginx's limits; nginx answers 400 for fields).
        row("request line over 8 KiB", format!("GET {long_target} HTTP/1.1\r\nHost: edge.test\r\n\r\n"), Status(414), 0, Status(414)),
        row("a header field over 8 KiB", get(&long_field), Status(431), 0, Status(400)),
        row("a head over 32 KiB", get(&big_head), Status(431), 0, Status(400)),
        row("100 small header fields", get(&many(100)), Status(200), 0, Status(200)),
        // Pingora takes at most 256 fields; nginx counts only bytes.
        row("300 small header fields", get(&many(300)), Status(400), 0, Status(200)),
        // --- Request lines.
        row("HTTP/0.9 request line", "GET /a\r\n\r\n", Status(400), 0, Raw),
        row("HTTP/2.0 on an HTTP/1 connection", "GET /a HTTP/2.0\r\nHost: edge.test\r\n\r\n", Status(400), 0, Status(505)),
        row("HTTP/1.2", "GET /a HTTP/1.2\r\nHost: edge.test\r\n\r\n", Status(400), 0, Status(200)),
        // Methods are case-sensitive (RFC 9110 §9.1): `get` is another method, forwarded
        // uncached (and, being unsafe, it would invalidate the object, hence `/p`).
        row("lower-case method", "get /p HTTP/1.1\r\nHost: edge.test\r\n\r\n", Status(200), 1, Status(400)),
        // --- Expect and upgrades.
        row("Expect: 100-continue", post("Expect: 100-continue\r\nContent-Length: 5\r\n", "hello"), Status(200), 1, Status(200)),
        row("Upgrade: h2c is ignored", get("Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"), Status(200), 0, Status(200)),
        row("Upgrade: websocket where none is configured", get("Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"), Status(200), 0, Status(200)),
    ]
}

#[tokio::test]
async fn every_row_through_both_edges_and_nginx() {
    let origin = Origin::start().await;
    origin.route(
        "/a",
        Route::ok("object a\n").header("cache-control", "max-age=600"),
    );
    origin.route(
        "/p",
        Route::ok("posted\n").header("cache-control", "no-store"),
    );
    let cfg = format!(
        "[[origins]]\nname = \"o\"\nnodes = [{{ addr = \"{}\" }}]\n",
        origin.addr
    );
    let fast = Edge::start_with_config(&cfg, "name = \"edge-adv\"").await;
    let slow = Edge::start_with_config(&cfg, "name = \"edge-adv\"\nfast_hits = false").await;
    let nginx_origin = Origin::start().await;
    nginx_origin.route("/a", Route::ok("object a\n"));
    nginx_origin.route("/p", Route::ok("posted\n"));
    let nginx = Nginx::start(NginxOptions {
        proxy_to: Some(nginx_origin.addr),
        ..NginxOptions::default()
    })
    .await;
    for edge in [&fast, &slow] {
        assert_eq!(
            exchange(edge.http, get("").as_bytes()).await,
            Status(200),
            "fill /a"
        );
        edge.await_admitted(0.0).await;
    }
    let rows = rows();
    let mut wrong = Vec::new();
    for r in &rows {
        for (name, edge) in [("front edge", &fast), ("pipeline edge", &slow)] {
            let before = origin.total_hits();
            let got = exchange(edge.http, &r.request).await;
            let sent = origin.total_hits() - before;
            if got != r.edge || sent != r.origin {
                wrong.push(format!(
                    "{}: {name} gave {got:?} and sent {sent} to the origin; want {:?} and {}",
                    r.what, r.edge, r.origin
                ));
            }
        }
        let got = exchange(nginx.addr, &r.request).await;
        if got != r.nginx {
            wrong.push(format!(
                "{}: nginx gave {got:?}; the row says {:?}",
                r.what, r.nginx
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} rows:\n{}",
        wrong.len(),
        rows.len(),
        wrong.join("\n")
    );
    assert_eq!(
        origin.hits("/smuggled"),
        0,
        "a smuggled request reached the edges' origin"
    );
    for edge in [&fast, &slow] {
        for (limit, n) in [
            ("request_line", 1.0),
            ("header_field", 1.0),
            ("head_size", 1.0),
        ] {
            assert_eq!(
                edge.metric(&format!(
                    "edge_connection_limits_total{{limit=\"{limit}\"}}"
                ))
                .await,
                n,
                "{limit}"
            );
        }
    }
}

/// A head over a limit gets the same answer whether the front cuts it while it arrives (the
/// rest never sent) or the gate sees it whole through the pipeline.
#[tokio::test]
async fn an_oversized_head_is_answered_alike_cut_or_whole() {
    use crate::support::raw::Conn;
    let origin = Origin::start().await;
    let cfg = format!(
        "[[origins]]\nname = \"o\"\nnodes = [{{ addr = \"{}\" }}]\n",
        origin.addr
    );
    let edge = Edge::start_with_config(&cfg, "max_header_field = \"1 KiB\"").await;
    let head = get(&format!("X-Long: {}\r\n", "v".repeat(2000)));
    let mut whole = Conn::open(edge.http).await;
    whole.send(head.as_bytes()).await;
    let whole = whole.response(false).await;
    let mut cut = Conn::open(edge.http).await;
    cut.send(&head.as_bytes()[..1500]).await;
    let cut_answer = cut.response(false).await;
    assert!(cut.closed().await, "closed without waiting for the rest");
    assert_eq!((whole.status, cut_answer.status), (431, 431));
    let strip = |r: &crate::support::raw::Resp| {
        let mut h = r.headers.clone();
        h.remove("date");
        // Generated per answer.
        assert!(h.remove("x-request-id").is_some(), "a request id");
        h
    };
    assert_eq!(strip(&whole), strip(&cut_answer));
    assert_eq!(whole.body, cut_answer.body);
    assert_eq!(
        cut_answer.header("x-edge-reason"),
        Some("header_field_too_large")
    );
    assert_eq!(cut_answer.header("connection"), Some("close"));
    assert_eq!(
        edge.metric("edge_connection_limits_total{limit=\"header_field\"}")
            .await,
        2.0
    );
    // The pipeline counts its answer a moment after sending it.
    let answered = "edge_requests_total{kind=\"rejected\",status=\"431\",cache=\"NONE\"}";
    edge.await_metric(answered, 2.0).await;
    assert_eq!(edge.metric(answered).await, 2.0);
    assert_eq!(origin.total_hits(), 0);
}
