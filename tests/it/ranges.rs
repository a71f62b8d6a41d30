//! Range requests served from cached objects: 206 single and multi-range, 416.

use crate::support::{bytes_of, client, Edge, Origin, Route};

async fn warmed(body: &[u8]) -> (Origin, Edge) {
    let origin = Origin::start().await;
    origin.route(
        "/v/r.ts",
        Route::ok(body.to_vec()).header("content-type", "video/mp2t"),
    );
    let edge = Edge::start(origin.addr, "").await;
    let r = client().get(edge.url("/v/r.ts")).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), body.len());
    (origin, edge)
}

#[tokio::test]
async fn single_range_on_a_hit() {
    let body = bytes_of(100_000, 10);
    let (origin, edge) = warmed(&body).await;
    let c = client();
    let r = c
        .get(edge.url("/v/r.ts"))
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(r.headers()["content-range"], "bytes 1000-1999/100000");
    assert_eq!(r.headers()["content-length"], "1000");
    assert_eq!(r.bytes().await.unwrap(), &body[1000..2000]);

    let r = c
        .get(edge.url("/v/r.ts"))
        .header("range", "bytes=-500")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 99500-99999/100000");
    assert_eq!(r.bytes().await.unwrap(), &body[99_500..]);

    let r = c
        .get(edge.url("/v/r.ts"))
        .header("range", "bytes=99990-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), &body[99_990..]);
    assert_eq!(
        origin.hits("/v/r.ts"),
        1,
        "ranges come from the cached object"
    );
}

#[tokio::test]
async fn multi_range_on_a_hit() {
    let body = bytes_of(50_000, 11);
    let (origin, edge) = warmed(&body).await;
    let r = client()
        .get(edge.url("/v/r.ts"))
        .header("range", "bytes=0-9,100-109")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("multipart/byteranges; boundary="), "{ct}");
    let boundary = ct.split("boundary=").nth(1).unwrap().to_string();
    let text = r.bytes().await.unwrap();
    let text = String::from_utf8_lossy(&text);
    assert_eq!(
        text.matches(&format!("--{boundary}")).count(),
        3,
        "two parts and the closing delimiter:\n{text}"
    );
    assert!(
        text.contains("Content-Range: bytes 0-9/50000")
            || text.contains("content-range: bytes 0-9/50000"),
        "{text}"
    );
    assert!(text.contains("bytes 100-109/50000"), "{text}");
    assert!(text.contains(&*String::from_utf8_lossy(&body[100..110])));
    assert_eq!(origin.hits("/v/r.ts"), 1);
}

#[tokio::test]
async fn unsatisfiable_range_is_416() {
    let body = bytes_of(1000, 12);
    let (_origin, edge) = warmed(&body).await;
    let r = client()
        .get(edge.url("/v/r.ts"))
        .header("range", "bytes=5000-6000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */1000");
}

#[tokio::test]
async fn range_on_a_cold_object_fills_the_cache_once() {
    let origin = Origin::start().await;
    let body = bytes_of(64_000, 13);
    origin.route("/v/cold.ts", Route::ok(body.clone()));
    let edge = Edge::start(origin.addr, "").await;
    let c = client();
    let r = c
        .get(edge.url("/v/cold.ts"))
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), &body[10..20]);
    assert!(
        origin.requests()[0].header("range").is_none(),
        "the edge fetches the whole object to cache it"
    );
    let r = c.get(edge.url("/v/cold.ts")).send().await.unwrap();
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(r.bytes().await.unwrap(), body);
    assert_eq!(origin.hits("/v/cold.ts"), 1);
}

/// A suffix range of an empty object selects nothing (RFC 9110 §14.1.1): 416, as nginx
/// answers. Pingora alone overflowed computing `Content-Range` and dropped the connection.
/// `bytes=-0` is unsatisfiable on any object, also inside a set with other ranges.
#[tokio::test]
async fn ranges_that_select_nothing() {
    let (origin, edge) = warmed(b"").await;
    let c = client();
    for range in ["bytes=-5", "bytes=-1,-2"] {
        let r = c
            .get(edge.url("/v/r.ts"))
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 416, "{range}");
        assert_eq!(r.headers()["content-range"], "bytes */0", "{range}");
    }
    let r = c.get(edge.url("/v/r.ts")).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.bytes().await.unwrap().len()),
        (200, 0)
    );
    assert_eq!(origin.hits("/v/r.ts"), 1);

    let body = bytes_of(1000, 14);
    origin.route("/v/s.ts", Route::ok(body.clone()));
    let r = c.get(edge.url("/v/s.ts")).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap(), body);
    let r = c
        .get(edge.url("/v/s.ts"))
        .header("range", "bytes=0-9,-0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 0-9/1000");
    assert_eq!(r.bytes().await.unwrap(), &body[..10]);
}
