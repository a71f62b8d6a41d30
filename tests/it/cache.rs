//! Caching behaviour: hits, coalescing, keys, what is never stored.

use std::time::Duration;

use crate::support::{bytes_of, client, Edge, Origin, Route};

#[tokio::test]
async fn miss_then_hit_with_one_origin_request() {
    let origin = Origin::start().await;
    let body = bytes_of(200_000, 1);
    origin.route(
        "/v/a/seg1.ts",
        Route::ok(body.clone()).header("content-type", "video/mp2t"),
    );
    let edge = Edge::start(origin.addr, "").await;
    let c = client();

    let r1 = c.get(edge.url("/v/a/seg1.ts")).send().await.unwrap();
    assert_eq!(r1.status(), 200);
    assert_eq!(r1.headers()["x-cache"], "MISS");
    assert_eq!(r1.headers()["content-type"], "video/mp2t");
    assert_eq!(r1.bytes().await.unwrap(), body);

    let r2 = c.get(edge.url("/v/a/seg1.ts")).send().await.unwrap();
    assert_eq!(r2.status(), 200);
    assert_eq!(r2.headers()["x-cache"], "HIT");
    assert!(r2.headers().contains_key("age"), "hits carry Age");
    assert_eq!(r2.bytes().await.unwrap(), body);

    assert_eq!(origin.hits("/v/a/seg1.ts"), 1);
    // Counted when the request's logging phase runs, a moment after the client has the body.
    edge.await_metric(
        r#"edge_requests_total{kind="content",status="200",cache="HIT"}"#,
        1.0,
    )
    .await;
    assert_eq!(
        edge.metric(r#"edge_requests_total{kind="content",status="200",cache="HIT"}"#)
            .await,
        1.0
    );
    assert_eq!(
        edge.metric(r#"edge_requests_total{kind="content",status="200",cache="MISS"}"#)
            .await,
        1.0
    );
    assert_eq!(
        edge.metric(&format!(
            r#"edge_upstream_requests_total{{pool="test",node="{}",status="200"}}"#,
            origin.addr
        ))
        .await,
        1.0
    );
    let via = origin.requests()[0].header("via").map(str::to_string);
    assert_eq!(
        via,
        Some(format!("1.1 edge-{}", edge.http.port())),
        "Via names this node"
    );
}

#[tokio::test]
async fn fifty_concurrent_cold_requests_make_one_origin_request() {
    let origin = Origin::start().await;
    let body = bytes_of(512 * 1024, 2);
    origin.route(
        "/v/hot.ts",
        Route::ok(body.clone())
            .delay(Duration::from_millis(300))
            .paced(8, Duration::from_millis(300)),
    );
    let edge = Edge::start(origin.addr, "").await;
    let c = client();

    let mut tasks = Vec::new();
    for _ in 0..50 {
        let c = c.clone();
        let url = edge.url("/v/hot.ts");
        tasks.push(tokio::spawn(async move {
            let r = c.get(url).send().await.unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap())
        }));
    }
    for t in tasks {
        let (status, got) = t.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(got.len(), body.len());
        assert!(got == body, "every client gets identical bytes");
    }
    assert_eq!(
        origin.hits("/v/hot.ts"),
        1,
        "one origin fetch fills every waiter"
    );
    let coalesced = edge.metric("edge_cache_coalesced_total").await;
    assert!(
        coalesced >= 1.0,
        "waiters are counted as coalesced, got {coalesced}"
    );
}

#[tokio::test]
async fn same_path_on_two_hosts_is_two_objects() {
    let origin = Origin::start().await;
    origin.route("/v/x.m3u8", Route::ok("").echo_host());
    let edge = Edge::start(origin.addr, "").await;
    let c = client();
    for _ in 0..2 {
        for host in ["a.example", "b.example"] {
            let r = c
                .get(edge.url("/v/x.m3u8"))
                .header("host", host)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.text().await.unwrap(), format!("{host}/v/x.m3u8"));
        }
    }
    assert_eq!(origin.hits("/v/x.m3u8"), 2, "one fetch per host, then hits");
}

#[tokio::test]
async fn query_is_part_of_the_key() {
    let origin = Origin::start().await;
    origin.route("/v/q.ts", Route::ok("q"));
    let edge = Edge::start(origin.addr, "").await;
    let c = client();
    for q in ["?a=1", "?a=2", "?a=1"] {
        assert_eq!(
            c.get(edge.url(&format!("/v/q.ts{q}")))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(origin.hits("/v/q.ts"), 2);
}

#[tokio::test]
async fn post_is_never_cached() {
    let origin = Origin::start().await;
    origin.route("/api/thing", Route::ok("made"));
    let edge = Edge::start(origin.addr, "").await;
    let c = client();
    for _ in 0..3 {
        let r = c
            .post(edge.url("/api/thing"))
            .body("x=1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-cache"], "BYPASS");
        assert_eq!(r.text().await.unwrap(), "made");
    }
    assert_eq!(origin.hits("/api/thing"), 3);
    // A GET afterwards is a miss: no POST response was stored under the key.
    let r = c.get(edge.url("/api/thing")).send().await.unwrap();
    assert_eq!(r.headers()["x-cache"], "MISS");
    assert_eq!(origin.hits("/api/thing"), 4);
}

#[tokio::test]
async fn origin_errors_are_passed_on_and_never_cached() {
    let origin = Origin::start().await;
    origin.route("/v/broken.ts", Route::ok("internal error").status(500));
    origin.route("/v/busy.ts", Route::ok("busy").status(503));
    let edge = Edge::start(origin.addr, "").await;
    let c = client();
    for _ in 0..3 {
        let r = c.get(edge.url("/v/broken.ts")).send().await.unwrap();
        assert_eq!(r.status(), 500);
        assert_eq!(r.text().await.unwrap(), "internal error");
        assert_eq!(
            c.get(edge.url("/v/busy.ts")).send().await.unwrap().status(),
            503
        );
    }
    assert_eq!(origin.hits("/v/broken.ts"), 3);
    assert_eq!(origin.hits("/v/busy.ts"), 3);
}

#[tokio::test]
async fn no_store_private_and_cookies_are_not_cached() {
    let origin = Origin::start().await;
    origin.route("/a", Route::ok("a").header("cache-control", "no-store"));
    origin.route(
        "/b",
        Route::ok("b").header("cache-control", "private, max-age=60"),
    );
    origin.route("/c", Route::ok("c").header("set-cookie", "s=1"));
    let edge = Edge::start(origin.addr, "").await;
    let c = client();
    for _ in 0..2 {
        for p in ["/a", "/b", "/c"] {
            assert_eq!(c.get(edge.url(p)).send().await.unwrap().status(), 200);
        }
    }
    for p in ["/a", "/b", "/c"] {
        assert_eq!(origin.hits(p), 2, "{p} must not be stored");
    }
}

#[tokio::test]
async fn a_cut_body_is_an_error_and_not_stored() {
    let origin = Origin::start().await;
    let body = bytes_of(300_000, 3);
    origin.route("/v/cut.ts", Route::ok(body.clone()).cut_after(100_000));
    let edge = Edge::start(origin.addr, "").await;
    let c = client();
    let r = c.get(edge.url("/v/cut.ts")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the header was already on its way");
    assert!(
        r.bytes().await.is_err(),
        "the client must see an incomplete body, not a clean short 200"
    );
    // Now the origin is healthy: the next request fetches again and gets everything.
    origin.route("/v/cut.ts", Route::ok(body.clone()));
    let r = c.get(edge.url("/v/cut.ts")).send().await.unwrap();
    assert_eq!(r.headers()["x-cache"], "MISS");
    assert_eq!(r.bytes().await.unwrap(), body);
    assert_eq!(origin.hits("/v/cut.ts"), 2);
    assert!(edge.metric("edge_cache_fill_failures_total").await >= 1.0);
}

#[tokio::test]
async fn objects_over_max_object_stream_through_uncached() {
    let origin = Origin::start().await;
    let body = bytes_of(9 * 1024 * 1024, 4); // the test config's max_object is 8 MiB
    origin.route("/v/big.mp4", Route::ok(body.clone()));
    let edge = Edge::start(origin.addr, "").await;
    let c = client();
    for _ in 0..2 {
        let r = c.get(edge.url("/v/big.mp4")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.bytes().await.unwrap() == body);
    }
    assert_eq!(origin.hits("/v/big.mp4"), 2);
}
