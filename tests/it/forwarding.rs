//! What the edge forwards (RFC 9110 §7.6.1, RFC 9112 §3.2): hop-by-hop fields removed both
//! ways (on misses and from stored responses), the origin asked in origin-form with the host
//! the cache key has, `Upgrade` passed on only where `[server] upgrade_prefixes` allows it
//! (and never before the token gate), and the unkeyed forwarding fields only when
//! `[server] forward_headers` lists them.

use crate::support::raw::Conn;
use crate::support::{Edge, Origin, Route};

#[tokio::test]
async fn hop_by_hop_fields_are_removed_both_ways() {
    let origin = Origin::start().await;
    origin.route(
        "/v/a.ts",
        Route::ok("body")
            .header("cache-control", "max-age=60")
            .header("connection", "X-Origin-Secret")
            .header("x-origin-secret", "s")
            .header("keep-alive", "timeout=5")
            .header("x-kept", "yes"),
    );
    let edge = Edge::start(origin.addr, "").await;
    let mut c = Conn::open(edge.http).await;
    for expected in ["MISS", "HIT"] {
        let admitted = edge.metric("edge_cache_admitted_bytes_total").await;
        c.send(
            b"GET /v/a.ts HTTP/1.1\r\nHost: edge.test\r\nConnection: keep-alive, X-Client-Secret\r\nX-Client-Secret: c\r\n\
              Keep-Alive: timeout=9\r\nUpgrade: websocket\r\nProxy-Authorization: Basic eDp5\r\nTE: trailers\r\nX-Forwarded-Ok: 1\r\n\
              X-Forwarded-Host: evil.example\r\nX-Original-URL: /admin\r\nX-HTTP-Method-Override: DELETE\r\nForwarded: host=evil\r\n\r\n",
        )
        .await;
        let r = c.response(false).await;
        assert_eq!((r.status, r.header("x-cache")), (200, Some(expected)));
        assert_eq!(r.header("x-kept"), Some("yes"));
        for gone in ["x-origin-secret", "keep-alive"] {
            assert_eq!(r.header(gone), None, "{gone} on a {expected}");
        }
        if expected == "MISS" {
            edge.await_admitted(admitted).await;
        }
    }
    let seen = &origin.requests()[0];
    for gone in [
        "x-client-secret",
        "keep-alive",
        "upgrade",
        "proxy-authorization",
        "te",
        "x-forwarded-host",
        "x-original-url",
        "x-http-method-override",
        "forwarded",
    ] {
        assert_eq!(seen.header(gone), None, "{gone} reached the origin");
    }
    assert!(seen
        .header("connection")
        .is_none_or(|v| !v.to_ascii_lowercase().contains("x-client-secret")));
    assert_eq!(
        seen.header("x-forwarded-ok"),
        Some("1"),
        "end-to-end fields pass"
    );
}

#[tokio::test]
async fn absolute_form_and_host_reach_the_origin_normalised() {
    let origin = Origin::start().await;
    origin.route(
        "/v/b.ts",
        Route::ok("b").header("cache-control", "max-age=60"),
    );
    let edge = Edge::start(origin.addr, "").await;
    let mut c = Conn::open(edge.http).await;
    // Pingora refuses an absolute-form target whose authority disagrees with Host (stricter
    // than RFC 9112 §3.2.2, which lets the target win).
    let mut refused = Conn::open(edge.http).await;
    refused
        .send(b"GET http://edge.test/v/b.ts HTTP/1.1\r\nHost: other.test\r\n\r\n")
        .await;
    assert_eq!(refused.response(false).await.status, 400);
    c.send(b"GET http://Edge.Test:80/v/b.ts HTTP/1.1\r\nHost: Edge.Test:80\r\n\r\n")
        .await;
    let r = c.response(false).await;
    assert_eq!(
        (r.status, r.header("x-cache")),
        (200, Some("MISS")),
        "{:?} {:?}",
        r.headers,
        String::from_utf8_lossy(&r.body)
    );
    let seen = origin.requests();
    assert_eq!(seen[0].target, "/v/b.ts", "origin-form to the origin");
    assert_eq!(seen[0].header("host"), Some("edge.test"), "the key's host");
    // Same key as an origin-form request for edge.test.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    c.send(b"GET /v/b.ts HTTP/1.1\r\nHost: EDGE.test.\r\n\r\n")
        .await;
    assert_eq!(c.response(false).await.header("x-cache"), Some("HIT"));
    assert_eq!(origin.hits("/v/b.ts"), 1);
}

#[tokio::test]
async fn forward_headers_pass_only_the_listed_fields() {
    let origin = Origin::start().await;
    origin.route(
        "/v/f.ts",
        Route::ok("f").header("cache-control", "max-age=60"),
    );
    let cfg = format!(
        "[[origins]]\nname = \"o\"\nnodes = [{{ addr = \"{}\" }}]\n",
        origin.addr
    );
    let edge = Edge::start_with_config(&cfg, "forward_headers = [\"X-Forwarded-Proto\"]").await;
    let mut c = Conn::open(edge.http).await;
    c.send(b"GET /v/f.ts HTTP/1.1\r\nHost: edge.test\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\n\r\n").await;
    assert_eq!(c.response(false).await.status, 200);
    let seen = &origin.requests()[0];
    assert_eq!(
        seen.header("x-forwarded-proto"),
        Some("https"),
        "listed: forwarded"
    );
    assert_eq!(seen.header("x-forwarded-host"), None, "not listed: removed");
}

/// A WebSocket-style upgrade: tunnelled on a configured prefix (after the token gate), not
/// elsewhere — there the origin never sees `Upgrade`, and a `101` it sends anyway is refused
/// (Pingora will not switch one side only) rather than turned into a tunnel.
#[tokio::test]
async fn upgrade_only_on_configured_prefixes() {
    let origin = Origin::start().await;
    for p in ["/ws/chat", "/pub/chat", "/pub/ws/chat"] {
        origin.route(p, Route::ok("plain").switch());
    }
    let keys = tempfile::tempdir().unwrap();
    std::fs::write(keys.path().join("k1.key"), "42".repeat(32)).unwrap();
    let cfg = format!(
        "[[origins]]\nname = \"o\"\nnodes = [{{ addr = \"{}\" }}]\n\
         [tokens]\nrequired = true\ncurrent = \"k1\"\npublic = [\"/pub/\"]\nkeys = [{{ id = \"k1\", secret_file = \"{}/k1.key\" }}]\n",
        origin.addr,
        keys.path().display()
    );
    let edge = Edge::start_with_config(&cfg, "upgrade_prefixes = [\"/pub/ws/\", \"/ws/\"]").await;
    let upgrade = |path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: edge.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    };

    // A configured prefix without a token: the token gate answers first, nothing reaches the origin.
    let mut c = Conn::open(edge.http).await;
    c.send(upgrade("/ws/chat").as_bytes()).await;
    assert_eq!(c.response(false).await.status, 403);
    assert_eq!(origin.total_hits(), 0);

    // A configured (public) prefix: 101 with the origin's Upgrade, then bytes both ways.
    let mut c = Conn::open(edge.http).await;
    c.send(upgrade("/pub/ws/chat").as_bytes()).await;
    let r = c.response(false).await;
    assert_eq!(
        (r.status, r.header("upgrade"), r.header("connection")),
        (101, Some("websocket"), Some("upgrade")),
        "{:?}",
        r.headers
    );
    assert!(r.header("sec-websocket-accept").is_some());
    for msg in [&b"ping"[..], b"\x81\x05hello"] {
        c.send(msg).await;
        assert_eq!(
            c.read_raw(msg.len()).await,
            msg,
            "echoed through the tunnel"
        );
    }
    let seen = origin.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("upgrade"), Some("websocket"));
    assert_eq!(seen[0].header("connection"), Some("upgrade"));
    assert_eq!(
        seen[0].header("sec-websocket-key"),
        Some("dGhlIHNhbXBsZSBub25jZQ==")
    );
    assert_eq!(
        edge.metric("edge_cache_admitted_bytes_total").await,
        0.0,
        "a tunnel is never stored"
    );

    // Elsewhere (a public path, so only the prefix differs): no Upgrade reaches the origin,
    // and its 101 does not open a tunnel.
    let mut c = Conn::open(edge.http).await;
    c.send(upgrade("/pub/chat").as_bytes()).await;
    let r = c.response(false).await;
    assert_eq!(
        r.status, 502,
        "a 101 to a request sent without Upgrade is the origin's error: {:?}",
        r.headers
    );
    assert!(c.closed().await, "and the connection is not a tunnel");
    let seen = origin.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].header("upgrade"), None);
    assert!(seen[1]
        .header("connection")
        .is_none_or(|v| !v.to_ascii_lowercase().contains("upgrade")));
}
