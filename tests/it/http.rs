//! Request handling on the player listener: path normalisation, local answers, CORS.

use crate::support::{client, raw_get, Edge, Origin, Route};

#[tokio::test]
async fn ambiguous_paths_are_refused_with_400() {
    let origin = Origin::start().await;
    origin.route("/v/secret.ts", Route::ok("secret"));
    let edge = Edge::start(origin.addr, "").await;
    let c = client();
    for (path, reason) in [
        ("/v/a%2Fb.ts", "encoded_slash"),
        ("/v/%2e%2e/secret.ts", "encoded_dot"),
        ("/v/x/../secret.ts", "dot_segment"),
        ("/v/a%5Csecret.ts", "backslash"),
        ("/v/a%00.ts", "control_byte"),
        ("/v/a%zz.ts", "bad_escape"),
    ] {
        let (status, head) = raw_get(edge.http, path).await;
        assert_eq!(status, 400, "{path}: {head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("x-edge-reason: {reason}")),
            "{path}: {head}"
        );
    }
    // The same through a normal client, which resolves dot segments before sending.
    assert_eq!(
        c.get(edge.url("/v/a%2Fb.ts"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        origin.total_hits(),
        0,
        "nothing ambiguous reaches the origin"
    );
}

#[tokio::test]
async fn equivalent_paths_share_one_object_and_the_origin_sees_the_normal_form() {
    let origin = Origin::start().await;
    origin.route("/v/title/seg.ts", Route::ok("seg"));
    let edge = Edge::start(origin.addr, "").await;
    let c = client();
    for path in [
        "/v/title/seg.ts",
        "//v/./title//seg.ts",
        "/v/%74itle/seg.ts",
    ] {
        let r = c.get(edge.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.text().await.unwrap(), "seg");
    }
    assert_eq!(origin.hits("/v/title/seg.ts"), 1);
    assert_eq!(origin.requests()[0].target, "/v/title/seg.ts");
}

#[tokio::test]
async fn health_is_answered_locally() {
    let origin = Origin::start().await;
    let edge = Edge::start(origin.addr, "").await;
    let c = client();
    let r = c.get(edge.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok\n");
    assert_eq!(
        c.get(edge.url("/readyz")).send().await.unwrap().status(),
        200
    );
    assert_eq!(origin.total_hits(), 0);
}

#[tokio::test]
async fn cors_for_any_origin() {
    let origin = Origin::start().await;
    origin.route("/v/c.ts", Route::ok("c"));
    let edge = Edge::start(origin.addr, "").await;
    let c = client();
    let r = c
        .request(reqwest::Method::OPTIONS, edge.url("/v/c.ts"))
        .header("origin", "https://player.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "range")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert!(r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("GET"));
    assert_eq!(r.headers()["access-control-allow-headers"], "range");
    assert_eq!(r.headers()["access-control-max-age"], "3600");
    assert_eq!(origin.total_hits(), 0, "preflights never reach the origin");

    let r = c
        .get(edge.url("/v/c.ts"))
        .header("origin", "https://player.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(
        exposed.contains("Content-Length") && exposed.contains("Content-Range"),
        "{exposed}"
    );
}

#[tokio::test]
async fn cors_for_listed_origins_only() {
    let origin = Origin::start().await;
    origin.route("/v/c.ts", Route::ok("c"));
    let edge = Edge::start(
        origin.addr,
        "[cors]\nallow_origins = [\"https://player.example\"]\n",
    )
    .await;
    let c = client();
    let r = c
        .get(edge.url("/v/c.ts"))
        .header("origin", "https://player.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://player.example"
    );
    assert!(r.headers().get_all("vary").iter().any(|v| v == "Origin"));
    // The cached object answers a second, disallowed origin without CORS headers.
    let r = c
        .get(edge.url("/v/c.ts"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert!(r.headers().get("access-control-allow-origin").is_none());
}
