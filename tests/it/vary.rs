//! `Vary` (RFC 9111 §4.1) with an origin that really varies on `Accept-Encoding`: each
//! variant is stored on its own, a body encoded for one client never reaches a client that
//! did not accept it, `Accept-Encoding` spellings share a variant, and `Vary: *` is never
//! answered from the cache. Each request goes through both the front (hits) and the pipeline.

use crate::support::raw::{Conn, Resp};
use crate::support::{Edge, Origin, Route};

const PLAIN: &str = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\nseg_000.ts\n#EXT-X-ENDLIST\n";
const GZIPPED: &[u8] = b"\x1f\x8b pretend-gzip-bytes";

async fn ask(edge: &Edge, path: &str, accept: Option<&str>) -> Resp {
    let admitted = edge.metric("edge_cache_admitted_bytes_total").await;
    let mut c = Conn::open(edge.http).await;
    let ae = accept
        .map(|a| format!("Accept-Encoding: {a}\r\n"))
        .unwrap_or_default();
    c.send(format!("GET {path} HTTP/1.1\r\nHost: edge.test\r\n{ae}\r\n").as_bytes())
        .await;
    let r = c.response(false).await;
    if r.header("x-cache") == Some("MISS") && r.status == 200 {
        edge.await_admitted(admitted).await;
    }
    r
}

#[tokio::test]
async fn variants_by_accept_encoding() {
    let origin = Origin::start().await;
    origin.route(
        "/v/index.m3u8",
        Route::ok(PLAIN)
            .header("content-type", "application/vnd.apple.mpegurl")
            .header("cache-control", "max-age=60")
            .encoded("gzip", GZIPPED),
    );
    let edge = Edge::start(origin.addr, "").await;

    let gz = ask(&edge, "/v/index.m3u8", Some("gzip, deflate")).await;
    assert_eq!(
        (
            gz.status,
            gz.header("content-encoding"),
            gz.header("x-cache")
        ),
        (200, Some("gzip"), Some("MISS"))
    );
    assert!(gz.body == GZIPPED);
    // A client that did not ask for gzip never gets the gzip variant.
    for accept in [None, Some("identity"), Some("gzip;q=0")] {
        let plain = ask(&edge, "/v/index.m3u8", accept).await;
        assert_eq!(plain.header("content-encoding"), None, "{accept:?}");
        assert!(plain.body == PLAIN.as_bytes(), "{accept:?}");
    }
    assert_eq!(
        origin.hits("/v/index.m3u8"),
        2,
        "one fetch per variant (identity spellings share one)"
    );
    // Both variants are now hits, and other spellings of the same preference share them.
    let front_before = edge.metric("edge_front_hits_total").await;
    for (accept, gzipped) in [
        (Some("gzip"), true),
        (Some("deflate, GZIP"), true),
        (None, false),
        (Some("identity"), false),
    ] {
        let r = ask(&edge, "/v/index.m3u8", accept).await;
        assert_eq!(r.header("x-cache"), Some("HIT"), "{accept:?}");
        assert_eq!(
            r.header("content-encoding").is_some(),
            gzipped,
            "{accept:?}"
        );
        assert_eq!(r.body == GZIPPED, gzipped, "{accept:?}");
    }
    assert_eq!(
        edge.metric("edge_front_hits_total").await - front_before,
        4.0,
        "variant hits come from the front"
    );
    assert_eq!(origin.hits("/v/index.m3u8"), 2);
    // The origin is asked with the normalised value the variant is keyed on.
    let seen: Vec<String> = origin
        .requests()
        .iter()
        .filter_map(|r| r.header("accept-encoding").map(str::to_string))
        .collect();
    assert_eq!(seen, vec!["gzip".to_string(), "identity".to_string()]);

    // The same through the pipeline (a conditional request is the pipeline's).
    let mut c = Conn::open(edge.http).await;
    c.send(b"GET /v/index.m3u8 HTTP/1.1\r\nHost: edge.test\r\nAccept-Encoding: gzip\r\nIf-None-Match: \"nope\"\r\n\r\n").await;
    let r = c.response(false).await;
    assert_eq!(
        (r.header("x-cache"), r.header("content-encoding")),
        (Some("HIT"), Some("gzip"))
    );
    c.send(b"GET /v/index.m3u8 HTTP/1.1\r\nHost: edge.test\r\nIf-None-Match: \"nope\"\r\n\r\n")
        .await;
    let r = c.response(false).await;
    assert_eq!(
        (r.header("x-cache"), r.header("content-encoding")),
        (Some("HIT"), None)
    );
    assert!(r.body == PLAIN.as_bytes());
}

#[tokio::test]
async fn vary_star_is_never_answered_from_the_cache() {
    let origin = Origin::start().await;
    origin.route(
        "/v/star.ts",
        Route::ok("star")
            .header("cache-control", "max-age=60")
            .header("vary", "*"),
    );
    origin.route(
        "/v/list.ts",
        Route::ok("list")
            .header("cache-control", "max-age=60")
            .header("vary", "Accept-Language, *"),
    );
    let edge = Edge::start(origin.addr, "").await;
    for _ in 0..3 {
        for p in ["/v/star.ts", "/v/list.ts"] {
            let r = ask(&edge, p, None).await;
            assert_eq!(r.status, 200);
            assert_ne!(r.header("x-cache"), Some("HIT"), "{p}");
        }
    }
    assert_eq!(origin.hits("/v/star.ts"), 3);
    assert_eq!(origin.hits("/v/list.ts"), 3);
}

#[tokio::test]
async fn other_request_headers_make_their_own_variants() {
    let origin = Origin::start().await;
    origin.route(
        "/v/lang.ts",
        Route::ok("body")
            .header("cache-control", "max-age=60")
            .header("vary", "Accept-Language"),
    );
    let edge = Edge::start(origin.addr, "").await;
    let lang = |l: &'static str| {
        let edge = &edge;
        async move {
            let admitted = edge.metric("edge_cache_admitted_bytes_total").await;
            let mut c = Conn::open(edge.http).await;
            c.send(
                format!(
                    "GET /v/lang.ts HTTP/1.1\r\nHost: edge.test\r\nAccept-Language: {l}\r\n\r\n"
                )
                .as_bytes(),
            )
            .await;
            let r = c.response(false).await;
            if r.header("x-cache") == Some("MISS") {
                edge.await_admitted(admitted).await;
            }
            r.header("x-cache").unwrap_or("").to_string()
        }
    };
    assert_eq!(lang("en").await, "MISS");
    assert_eq!(lang("de").await, "MISS");
    assert_eq!(lang("en").await, "HIT");
    assert_eq!(lang("de").await, "HIT");
    assert_eq!(origin.hits("/v/lang.ts"), 2);
}
