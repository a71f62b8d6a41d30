//! RFC 9111 §4.4: a non-error response to an unsafe method (POST, PUT, DELETE, PATCH)
//! invalidates the stored response for its target URI and for same-host `Location` /
//! `Content-Location` URIs; an error response invalidates nothing.

use crate::support::raw::Conn;
use crate::support::{Edge, Origin, Route};

async fn send(edge: &Edge, method: &str, path: &str) -> (u16, String) {
    let admitted = edge.metric("edge_cache_admitted_bytes_total").await;
    let mut c = Conn::open(edge.http).await;
    let body = if method == "GET" { "" } else { "x=1" };
    c.send(
        format!(
            "{method} {path} HTTP/1.1\r\nHost: edge.test\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    let r = c.response(false).await;
    let label = r.header("x-cache").unwrap_or("").to_string();
    if method == "GET" && label == "MISS" {
        edge.await_admitted(admitted).await;
    }
    (r.status, label)
}

#[tokio::test]
async fn successful_unsafe_requests_invalidate() {
    let origin = Origin::start().await;
    let cc = "max-age=600";
    origin.route(
        "/v/a.ts",
        Route::ok("a")
            .header("cache-control", cc)
            .header("location", "/v/b.ts")
            .header("content-location", "http://edge.test/v/c.ts"),
    );
    origin.route("/v/b.ts", Route::ok("b").header("cache-control", cc));
    origin.route("/v/c.ts", Route::ok("c").header("cache-control", cc));
    origin.route("/v/d.ts", Route::ok("d").header("cache-control", cc));
    origin.route(
        "/v/other-host.ts",
        Route::ok("o")
            .header("cache-control", cc)
            .header("location", "http://elsewhere.test/v/d.ts"),
    );
    origin.route(
        "/v/gone.ts",
        Route::ok("gone").status(404).header("cache-control", cc),
    );
    let edge = Edge::start(origin.addr, "").await;
    for p in ["/v/a.ts", "/v/b.ts", "/v/c.ts", "/v/d.ts", "/v/gone.ts"] {
        assert_eq!(send(&edge, "GET", p).await.1, "MISS", "{p}");
        assert_eq!(send(&edge, "GET", p).await.1, "HIT", "{p}");
    }
    // POST to a: a, and b (Location) and c (Content-Location, same host) are invalidated.
    assert_eq!(send(&edge, "POST", "/v/a.ts").await.0, 200);
    for (p, want) in [
        ("/v/a.ts", "MISS"),
        ("/v/b.ts", "MISS"),
        ("/v/c.ts", "MISS"),
        ("/v/d.ts", "HIT"),
    ] {
        assert_eq!(
            send(&edge, "GET", p).await.1,
            want,
            "{p} after POST /v/a.ts"
        );
    }
    // DELETE and PUT invalidate their own target; another host's Location is left alone.
    for method in ["DELETE", "PUT", "PATCH"] {
        assert_eq!(send(&edge, method, "/v/d.ts").await.0, 200);
        assert_eq!(
            send(&edge, "GET", "/v/d.ts").await.1,
            "MISS",
            "after {method}"
        );
    }
    send(&edge, "POST", "/v/other-host.ts").await;
    assert_eq!(
        send(&edge, "GET", "/v/d.ts").await.1,
        "HIT",
        "a Location on another host invalidates nothing here"
    );
    // An error answer invalidates nothing.
    assert_eq!(send(&edge, "DELETE", "/v/gone.ts").await.0, 404);
    assert_eq!(send(&edge, "GET", "/v/gone.ts").await.1, "HIT");
}
