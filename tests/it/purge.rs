//! Purge: admin API by URL and by prefix, soft purge, the PURGE method, persistence.

use std::time::Duration;

use crate::support::{client, Edge, Origin, Route};

async fn purge(edge: &Edge, body: &str) -> (u16, String) {
    let r = client()
        .post(edge.admin_url("/admin/purge"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn cache_of(edge: &Edge, path: &str) -> String {
    let r = client().get(edge.url(path)).send().await.unwrap();
    let x = r.headers()["x-cache"].to_str().unwrap().to_string();
    r.bytes().await.unwrap();
    x
}

async fn origin_with(paths: &[&str]) -> Origin {
    let origin = Origin::start().await;
    for p in paths {
        origin.route(p, Route::ok(format!("body of {p}")).etag("\"e1\""));
    }
    origin
}

#[tokio::test]
async fn purge_one_url() {
    let origin = origin_with(&["/v/t/a.ts", "/v/t/b.ts"]).await;
    let edge = Edge::start(origin.addr, "").await;
    for p in ["/v/t/a.ts", "/v/t/b.ts"] {
        assert_eq!(cache_of(&edge, p).await, "MISS");
    }
    let host = edge.http.to_string();
    let (status, body) = purge(&edge, &format!(r#"{{"url": "http://{host}/v/t/a.ts"}}"#)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"purged\""), "{body}");
    assert_eq!(cache_of(&edge, "/v/t/a.ts").await, "MISS");
    assert_eq!(cache_of(&edge, "/v/t/b.ts").await, "HIT");
    assert_eq!(origin.hits("/v/t/a.ts"), 2);
    assert_eq!(edge.metric("edge_cache_purges_total").await, 1.0);
}

#[tokio::test]
async fn purge_a_prefix_on_segment_boundaries() {
    let paths = ["/v/t/a.ts", "/v/t/hd/b.ts", "/v/t2/c.ts", "/v/u/d.ts"];
    let origin = origin_with(&paths).await;
    let edge = Edge::start(origin.addr, "").await;
    for p in paths {
        assert_eq!(cache_of(&edge, p).await, "MISS");
    }
    assert_eq!(purge(&edge, r#"{"prefix": "/v/t/"}"#).await.0, 200);
    assert_eq!(cache_of(&edge, "/v/t/a.ts").await, "MISS");
    assert_eq!(cache_of(&edge, "/v/t/hd/b.ts").await, "MISS");
    assert_eq!(
        cache_of(&edge, "/v/t2/c.ts").await,
        "HIT",
        "/v/t/ does not cover /v/t2/"
    );
    assert_eq!(cache_of(&edge, "/v/u/d.ts").await, "HIT");
    // Refetched objects are newer than the ban: hits again.
    assert_eq!(cache_of(&edge, "/v/t/a.ts").await, "HIT");
}

#[tokio::test]
async fn soft_purge_revalidates_and_keeps_the_body_on_304() {
    let origin = origin_with(&["/v/s/a.ts"]).await;
    let edge = Edge::start(origin.addr, "").await;
    assert_eq!(cache_of(&edge, "/v/s/a.ts").await, "MISS");
    assert_eq!(
        purge(&edge, r#"{"prefix": "/v/s/", "soft": true}"#).await.0,
        200
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    let x = cache_of(&edge, "/v/s/a.ts").await;
    assert!(
        x == "REVALIDATED" || x == "STALE",
        "soft purge revalidates: {x}"
    );
    let reqs = origin.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].header("if-none-match"), Some("\"e1\""));
}

#[tokio::test]
async fn purge_method_from_allowed_networks_only() {
    let origin = origin_with(&["/v/p/a.ts"]).await;
    let edge = Edge::start(origin.addr, "").await;
    assert_eq!(cache_of(&edge, "/v/p/a.ts").await, "MISS");
    let c = client();
    let purge = reqwest::Method::from_bytes(b"PURGE").unwrap();
    let r = c
        .request(purge.clone(), edge.url("/v/p/a.ts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(cache_of(&edge, "/v/p/a.ts").await, "MISS");

    let locked = Edge::start(origin.addr, "[purge]\nallow = [\"10.0.0.0/8\"]\n").await;
    assert_eq!(cache_of(&locked, "/v/p/a.ts").await, "MISS");
    let r = c
        .request(purge, locked.url("/v/p/a.ts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(cache_of(&locked, "/v/p/a.ts").await, "HIT");
}

#[tokio::test]
async fn purges_survive_a_restart() {
    let origin = origin_with(&["/v/r/a.ts", "/v/keep.ts"]).await;
    let mut edge = Edge::start(origin.addr, "").await;
    for p in ["/v/r/a.ts", "/v/keep.ts"] {
        assert_eq!(cache_of(&edge, p).await, "MISS");
    }
    assert_eq!(purge(&edge, r#"{"prefix": "/v/r/"}"#).await.0, 200);
    edge.restart().await;
    assert_eq!(
        cache_of(&edge, "/v/keep.ts").await,
        "HIT",
        "the disk tier came back"
    );
    assert_eq!(
        cache_of(&edge, "/v/r/a.ts").await,
        "MISS",
        "and so did the purge"
    );
}

#[tokio::test]
async fn bad_purge_requests_are_400() {
    let origin = Origin::start().await;
    let edge = Edge::start(origin.addr, "").await;
    for body in [
        "{",
        "{}",
        r#"{"url": "/relative"}"#,
        r#"{"prefix": "/v/%2e%2e/"}"#,
    ] {
        let (status, text) = purge(&edge, body).await;
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains("\"error\""), "{text}");
    }
    let r = client()
        .get(edge.admin_url("/admin/purge"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}
