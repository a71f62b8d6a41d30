//! What the edge forwards (RFC 9110 §7.6.1, RFC 9112 §3.2): hop-by-hop fields removed both
//! ways (on misses and from stored responses), the origin asked in origin-form with the host
//! the cache key has, and `Upgrade` never passed on (no tunnels past the token gate).

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
    for gone in ["x-client-secret", "keep-alive", "upgrade", "proxy-authorization", "te", "x-forwarded-host", "x-original-url", "x-http-method-override", "forwarded"] {
        assert_eq!(seen.header(gone), None, "{gone} reached the origin");
    }
    assert!(seen.header("connection").is_none_or(|v| !v.to_ascii_lowercase().contains("x-client-secret")));
    assert_eq!(seen.header("x-forwarded-ok"), Some("1"), "end-to-end fields pass");
}

#[tokio::test]
async fn absolute_form_and_host_reach_the_origin_normalised() {
    let origin = Origin::start().await;
    origin.route("/v/b.ts", Route::ok("b").header("cache-control", "max-age=60"));
    let edge = Edge::start(origin.addr, "").await;
    let mut c = Conn::open(edge.http).await;
    // Pingora refuses an absolute-form target whose authority disagrees with Host (stricter
    // than RFC 9112 §3.2.2, which lets the target win).
    let mut refused = Conn::open(edge.http).await;
    refused.send(b"GET http://edge.test/v/b.ts HTTP/1.1\r\nHost: other.test\r\n\r\n").await;
    assert_eq!(refused.response(false).await.status, 400);
    c.send(b"GET http://Edge.Test:80/v/b.ts HTTP/1.1\r\nHost: Edge.Test:80\r\n\r\n").await;
    let r = c.response(false).await;
    assert_eq!((r.status, r.header("x-cache")), (200, Some("MISS")), "{:?} {:?}", r.headers, String::from_utf8_lossy(&r.body));
    let seen = origin.requests();
    assert_eq!(seen[0].target, "/v/b.ts", "origin-form to the origin");
    assert_eq!(seen[0].header("host"), Some("edge.test"), "the key's host");
    // Same key as an origin-form request for edge.test.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    c.send(b"GET /v/b.ts HTTP/1.1\r\nHost: EDGE.test.\r\n\r\n").await;
    assert_eq!(c.response(false).await.header("x-cache"), Some("HIT"));
    assert_eq!(origin.hits("/v/b.ts"), 1);
}
