//! Stale serving: stale-while-revalidate, stale-if-error bounded by stale_timeout, and
//! revalidation with conditional requests.

use std::time::{Duration, Instant};

use crate::support::{client, Edge, Origin, Route};

async fn edge_for(origin: &Origin) -> Edge {
    let cfg = format!(
        "[[origins]]\nname = \"test\"\nnodes = [{{ addr = \"{}\" }}]\nconnect_timeout = \"5s\"\nread_timeout = \"10s\"\n",
        origin.addr
    );
    Edge::start_with_config_cache(&cfg, "stale_timeout = \"1s\"\n").await
}

#[tokio::test]
async fn stale_while_revalidate_answers_at_once_and_refreshes_once() {
    let origin = Origin::start().await;
    origin.route(
        "/v/swr.m3u8",
        Route::ok("v1").header("cache-control", "max-age=1, stale-while-revalidate=30"),
    );
    let edge = edge_for(&origin).await;
    let c = client();
    assert_eq!(
        c.get(edge.url("/v/swr.m3u8"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "v1"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // The origin is slow now: the stale copy must not wait for it.
    origin.route(
        "/v/swr.m3u8",
        Route::ok("v2")
            .header("cache-control", "max-age=60")
            .delay(Duration::from_millis(500)),
    );
    let t0 = Instant::now();
    let r = c.get(edge.url("/v/swr.m3u8")).send().await.unwrap();
    assert_eq!(r.headers()["x-cache"], "STALE");
    assert_eq!(r.text().await.unwrap(), "v1");
    assert!(
        t0.elapsed() < Duration::from_millis(400),
        "served stale in {:?}",
        t0.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let r = c.get(edge.url("/v/swr.m3u8")).send().await.unwrap();
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(
        r.text().await.unwrap(),
        "v2",
        "the background refresh stored the new copy"
    );
    assert_eq!(
        origin.hits("/v/swr.m3u8"),
        2,
        "exactly one background refresh"
    );
}

#[tokio::test]
async fn stale_if_error_when_the_origin_is_down() {
    let mut origin = Some(Origin::start().await);
    let o = origin.as_ref().unwrap();
    o.route(
        "/v/sie.ts",
        Route::ok("kept").header("cache-control", "max-age=1, stale-if-error=60"),
    );
    let edge = edge_for(o).await;
    let c = client();
    c.get(edge.url("/v/sie.ts"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    origin.take(); // the origin is gone: connections are refused
    let t0 = Instant::now();
    let r = c.get(edge.url("/v/sie.ts")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-cache"], "STALE");
    assert_eq!(r.text().await.unwrap(), "kept");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn stale_if_error_when_the_origin_hangs_is_bounded_by_stale_timeout() {
    let origin = Origin::start().await;
    origin.route(
        "/v/hang.ts",
        Route::ok("kept").header("cache-control", "max-age=1, stale-if-error=60"),
    );
    let edge = edge_for(&origin).await;
    let c = client();
    c.get(edge.url("/v/hang.ts"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // The pool's read timeout is 10 s; stale_timeout is 1 s.
    origin.route(
        "/v/hang.ts",
        Route::ok("late").delay(Duration::from_secs(8)),
    );
    let t0 = Instant::now();
    let r = c.get(edge.url("/v/hang.ts")).send().await.unwrap();
    let took = t0.elapsed();
    assert_eq!(r.headers()["x-cache"], "STALE");
    assert_eq!(r.text().await.unwrap(), "kept");
    assert!(
        took < Duration::from_millis(2500),
        "stale answer took {took:?}"
    );
}

#[tokio::test]
async fn stale_if_error_when_the_origin_answers_5xx() {
    let origin = Origin::start().await;
    origin.route(
        "/v/5xx.ts",
        Route::ok("kept").header("cache-control", "max-age=1, stale-if-error=60"),
    );
    let edge = edge_for(&origin).await;
    let c = client();
    c.get(edge.url("/v/5xx.ts"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    origin.route("/v/5xx.ts", Route::ok("oops").status(503));
    let r = c.get(edge.url("/v/5xx.ts")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-cache"], "STALE");
    assert_eq!(r.text().await.unwrap(), "kept");
}

#[tokio::test]
async fn revalidation_uses_etags_and_keeps_the_body_on_304() {
    let origin = Origin::start().await;
    let body = crate::support::bytes_of(100_000, 50);
    origin.route(
        "/v/etag.ts",
        Route::ok(body.clone())
            .etag("\"v1\"")
            .header("cache-control", "max-age=1"),
    );
    let edge = Edge::start_with_config_cache(
        &format!(
            "[[origins]]\nname = \"test\"\nnodes = [{{ addr = \"{}\" }}]\n",
            origin.addr
        ),
        "stale_while_revalidate = \"0s\"\n",
    )
    .await;
    let c = client();
    c.get(edge.url("/v/etag.ts"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = c.get(edge.url("/v/etag.ts")).send().await.unwrap();
    assert_eq!(r.headers()["x-cache"], "REVALIDATED");
    assert!(r.bytes().await.unwrap() == body);
    let reqs = origin.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        reqs[1].header("if-none-match"),
        Some("\"v1\""),
        "a conditional request"
    );
    // The 304 refreshed the meta: fresh again for max-age.
    let r = c.get(edge.url("/v/etag.ts")).send().await.unwrap();
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(origin.hits("/v/etag.ts"), 2);
}
