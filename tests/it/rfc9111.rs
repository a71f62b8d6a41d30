//! HTTP caching rules (RFC 9111, RFC 9213) against a raw origin: revalidation where the origin
//! asks for it, `Expires` against `Date`, the upstream's `Age` (two tiers), 304 header
//! updates, client conditionals, `Authorization`, and targeted cache-control fields.

use std::time::{Duration, Instant, SystemTime};

use crate::support::{client, Edge, Origin, Route};

fn pool(addr: std::net::SocketAddr) -> String {
    format!("[[origins]]\nname = \"test\"\nnodes = [{{ addr = \"{addr}\" }}]\n")
}

/// An edge with the shipped stale defaults (stale-while-revalidate 5 s, stale-if-error 5 m).
async fn edge_with_defaults(origin: &Origin) -> Edge {
    Edge::start(origin.addr, "").await
}

/// An edge that never serves stale while revalidating: an expired object is fetched in the
/// foreground, so a test sees at once whether it was expired.
async fn edge_without_swr(upstream: std::net::SocketAddr, cache_extra: &str) -> Edge {
    Edge::start_with_config_cache(
        &pool(upstream),
        &format!("stale_while_revalidate = \"0s\"\n{cache_extra}"),
    )
    .await
}

async fn get(
    c: &reqwest::Client,
    url: String,
    headers: &[(&str, &str)],
) -> (u16, String, String, reqwest::header::HeaderMap) {
    let mut req = c.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let h = r.headers().clone();
    let label = h
        .get("x-cache")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, label, r.text().await.unwrap(), h)
}

fn age_of(h: &reqwest::header::HeaderMap) -> u64 {
    h.get("age")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// `no-cache`, `max-age=0`, a past `Expires` and a malformed `max-age` all mean "revalidate
/// before every use": the default stale-while-revalidate must not answer with the old copy.
#[tokio::test]
async fn responses_the_origin_wants_revalidated_are_never_served_stale() {
    let origin = Origin::start().await;
    let past = http_date(SystemTime::now() - Duration::from_secs(60));
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("/v/no-cache.ts", vec![("cache-control", "no-cache".into())]),
        (
            "/v/max-age-0.ts",
            vec![("cache-control", "max-age=0".into())],
        ),
        ("/v/expires-past.ts", vec![("expires", past.clone())]),
        ("/v/expires-invalid.ts", vec![("expires", "0".into())]),
        (
            "/v/malformed.ts",
            vec![("cache-control", "max-age=soon".into())],
        ),
        (
            "/v/quoted-no-cache.ts",
            vec![("cache-control", "public, no-cache, max-age=\"600\"".into())],
        ),
    ];
    let route = |body: &str, headers: &[(&str, String)]| {
        headers
            .iter()
            .fold(Route::ok(body.to_string()), |r, (k, v)| r.header(k, v))
    };
    for (path, headers) in &cases {
        origin.route(path, route("v1", headers));
    }
    let edge = edge_with_defaults(&origin).await;
    let c = client();
    for (path, _) in &cases {
        let (status, _, body, _) = get(&c, edge.url(path), &[]).await;
        assert_eq!((status, body.as_str()), (200, "v1"), "{path}");
    }
    for (path, headers) in &cases {
        origin.route(path, route("v2", headers));
    }
    for (path, _) in &cases {
        let (status, label, body, _) = get(&c, edge.url(path), &[]).await;
        assert_eq!(
            (status, body.as_str()),
            (200, "v2"),
            "{path}: the origin's current copy, not a stale one ({label})"
        );
        assert_ne!(label, "STALE", "{path}");
        assert_eq!(origin.hits(path), 2, "{path}");
    }
}

/// Where the origin forbade serving stale (no-cache, must-revalidate, proxy-revalidate,
/// s-maxage), the default stale-if-error does not hide its errors either (RFC 9111 §4.2.4).
#[tokio::test]
async fn no_stale_if_error_where_the_origin_forbade_stale() {
    let origin = Origin::start().await;
    let paths = [
        ("/v/e-no-cache.ts", "no-cache"),
        ("/v/e-must.ts", "max-age=1, must-revalidate"),
        ("/v/e-proxy.ts", "max-age=1, proxy-revalidate"),
        ("/v/e-smaxage.ts", "s-maxage=1"),
    ];
    for (p, cc) in paths {
        origin.route(p, Route::ok("kept").header("cache-control", cc));
    }
    let edge = edge_with_defaults(&origin).await;
    let c = client();
    for (p, _) in paths {
        assert_eq!(get(&c, edge.url(p), &[]).await.0, 200, "{p}");
    }
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for (p, _) in paths {
        origin.route(p, Route::ok("down").status(503));
    }
    for (p, _) in paths {
        let (status, label, body, _) = get(&c, edge.url(p), &[]).await;
        assert_eq!(
            (status, body.as_str()),
            (503, "down"),
            "{p}: not the stale copy ({label})"
        );
    }
}

/// A 304 to such a revalidation keeps the stored body (and is a conditional request).
#[tokio::test]
async fn max_age_zero_revalidates_with_a_conditional_request() {
    let origin = Origin::start().await;
    origin.route(
        "/v/zero.ts",
        Route::ok("body")
            .etag("\"z1\"")
            .header("cache-control", "max-age=0"),
    );
    let edge = edge_with_defaults(&origin).await;
    let c = client();
    assert_eq!(get(&c, edge.url("/v/zero.ts"), &[]).await.2, "body");
    let (status, label, body, _) = get(&c, edge.url("/v/zero.ts"), &[]).await;
    assert_eq!(
        (status, label.as_str(), body.as_str()),
        (200, "REVALIDATED", "body")
    );
    let reqs = origin.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].header("if-none-match"), Some("\"z1\""));
}

/// `Expires` is measured from the origin's `Date`, so an origin clock an hour fast does not
/// keep a 2-second object for an hour.
#[tokio::test]
async fn expires_is_measured_from_the_origins_date() {
    let origin = Origin::start().await;
    let skewed = SystemTime::now() + Duration::from_secs(3600);
    origin.route(
        "/v/skew.ts",
        Route::ok("v1")
            .header("date", &http_date(skewed))
            .header("expires", &http_date(skewed + Duration::from_secs(2))),
    );
    let edge = edge_without_swr(origin.addr, "").await;
    let c = client();
    get(&c, edge.url("/v/skew.ts"), &[]).await;
    assert_eq!(get(&c, edge.url("/v/skew.ts"), &[]).await.1, "HIT");
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let (_, label, _, _) = get(&c, edge.url("/v/skew.ts"), &[]).await;
    assert_ne!(
        label, "HIT",
        "expired 2 s after Date, whatever the origin's clock says"
    );
    assert_eq!(origin.hits("/v/skew.ts"), 2);
}

/// The `Age` an upstream sends counts: in the `Age` of every hit (front and pipeline), and
/// against the lifetime (a response already older than its max-age is stale on arrival).
#[tokio::test]
async fn the_upstream_age_counts() {
    let origin = Origin::start().await;
    origin.route(
        "/v/aged.ts",
        Route::ok("aged")
            .header("cache-control", "max-age=3600")
            .header("age", "100"),
    );
    origin.route(
        "/v/old.ts",
        Route::ok("old")
            .header("cache-control", "max-age=60")
            .header("age", "90"),
    );
    let edge = edge_without_swr(origin.addr, "").await;
    let c = client();
    let (_, label, _, h) = get(&c, edge.url("/v/aged.ts"), &[]).await;
    assert_eq!((label.as_str(), age_of(&h)), ("MISS", 100));
    // Hits until one is the front's (the fill commits just after the miss's last byte); a
    // conditional that does not match always takes the pipeline.
    let mut front = 0.0;
    for _ in 0..50 {
        let (_, label, _, h) = get(&c, edge.url("/v/aged.ts"), &[]).await;
        assert_eq!(label, "HIT");
        assert!((100..=102).contains(&age_of(&h)), "hit Age {}", age_of(&h));
        front = edge.metric("edge_front_hits_total").await;
        if front > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(front, 1.0, "one hit came from the front");
    let (status, label, _, h) = get(
        &c,
        edge.url("/v/aged.ts"),
        &[("if-none-match", "\"other\"")],
    )
    .await;
    assert_eq!((status, label.as_str()), (200, "HIT"));
    assert!(
        (100..=102).contains(&age_of(&h)),
        "pipeline hit Age {}",
        age_of(&h)
    );
    assert_eq!(edge.metric("edge_front_hits_total").await, 1.0);

    get(&c, edge.url("/v/old.ts"), &[]).await;
    let (_, label, _, _) = get(&c, edge.url("/v/old.ts"), &[]).await;
    assert_ne!(label, "HIT", "90 s old with max-age=60: stale on arrival");
    assert_eq!(origin.hits("/v/old.ts"), 2);
}

/// Two tiers, edge → shield → origin: the edge's copy expires when the origin's lifetime
/// ends (max-age counted from the origin's answer), not a full max-age after the edge
/// fetched it from the shield.
#[tokio::test]
async fn behind_a_shield_the_copy_expires_with_the_origins_lifetime() {
    let origin = Origin::start().await;
    origin.route(
        "/v/tier.ts",
        Route::ok("tier").header("cache-control", "max-age=4"),
    );
    let shield = Edge::start_full(
        &pool(origin.addr),
        "role = \"shield\"\n",
        "stale_while_revalidate = \"0s\"\n",
    )
    .await;
    let edge = edge_without_swr(shield.http, "").await;
    let c = client();
    // One host for both tiers (it is part of the cache key).
    let host = [("host", "tier.test")];
    let t0 = Instant::now();
    assert_eq!(get(&c, shield.url("/v/tier.ts"), &host).await.1, "MISS");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    // The edge fills from the shield's 2-second-old copy.
    let (_, label, body, h) = get(&c, edge.url("/v/tier.ts"), &host).await;
    assert_eq!((label.as_str(), body.as_str()), ("MISS", "tier"));
    assert!(age_of(&h) >= 2, "the shield's Age: {}", age_of(&h));
    let (_, label, _, h) = get(&c, edge.url("/v/tier.ts"), &host).await;
    assert_eq!(label, "HIT");
    assert!(
        age_of(&h) >= 2,
        "the edge's hit counts the shield's age: {}",
        age_of(&h)
    );
    assert_eq!(origin.hits("/v/tier.ts"), 1);
    // At 5 s the origin's 4 s are over (the edge's own 4 s would last until 6.2 s).
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(t0.elapsed())).await;
    let (_, label, body, _) = get(&c, edge.url("/v/tier.ts"), &host).await;
    assert!(
        t0.elapsed() < Duration::from_millis(6000),
        "the test ran too slowly to tell: {:?}",
        t0.elapsed()
    );
    assert_ne!(
        label, "HIT",
        "the edge's copy outlived the origin's lifetime"
    );
    assert_eq!(body, "tier");
    assert_eq!(
        origin.hits("/v/tier.ts"),
        2,
        "edge and shield both expired: one origin fetch"
    );
}

/// A 304 updates the stored headers (RFC 9111 §3.2): Cache-Control, Expires, custom fields,
/// Last-Modified; the body and its framing stay.
#[tokio::test]
async fn a_304_updates_the_stored_headers() {
    let origin = Origin::start().await;
    let body = crate::support::bytes_of(10_000, 9);
    origin.route(
        "/v/upd.ts",
        Route::ok(body.clone())
            .etag("\"u1\"")
            .header("cache-control", "max-age=1")
            .header("x-custom", "old")
            .header("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
    );
    let edge = edge_without_swr(origin.addr, "").await;
    let c = client();
    get(&c, edge.url("/v/upd.ts"), &[]).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    // Same ETag: the origin answers 304, now with new headers.
    origin.route(
        "/v/upd.ts",
        Route::ok("unused")
            .etag("\"u1\"")
            .header("cache-control", "max-age=60")
            .header("x-custom", "new")
            .header("last-modified", "Tue, 02 Jan 2024 00:00:00 GMT"),
    );
    let r = c.get(edge.url("/v/upd.ts")).send().await.unwrap();
    assert_eq!(r.headers()["x-cache"], "REVALIDATED");
    assert_eq!(r.headers()["x-custom"], "new");
    assert!(r.bytes().await.unwrap() == body);
    for _ in 0..2 {
        let r = c.get(edge.url("/v/upd.ts")).send().await.unwrap();
        assert_eq!(r.headers()["x-cache"], "HIT");
        assert_eq!(r.headers()["cache-control"], "max-age=60");
        assert_eq!(r.headers()["x-custom"], "new");
        assert_eq!(
            r.headers()["last-modified"],
            "Tue, 02 Jan 2024 00:00:00 GMT"
        );
        assert_eq!(r.headers()["content-length"], "10000");
        assert!(r.bytes().await.unwrap() == body);
    }
    assert_eq!(
        origin.hits("/v/upd.ts"),
        2,
        "fresh for the 304's max-age=60"
    );
}

/// A playlist without caching headers revalidated with a 304 keeps the TTL its body gives
/// it (here `vod_playlist_ttl`), not the 1 s assumed before a body is seen.
#[tokio::test]
async fn a_304_keeps_a_playlists_own_ttl() {
    let origin = Origin::start().await;
    let vod = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg0.ts\n#EXT-X-ENDLIST\n";
    origin.route(
        "/v/p/index.m3u8",
        Route::ok(vod)
            .etag("\"p1\"")
            .header("content-type", "application/vnd.apple.mpegurl"),
    );
    let edge = edge_without_swr(origin.addr, "vod_playlist_ttl = \"3s\"\n").await;
    let c = client();
    get(&c, edge.url("/v/p/index.m3u8"), &[]).await;
    tokio::time::sleep(Duration::from_millis(3300)).await;
    let (_, label, body, _) = get(&c, edge.url("/v/p/index.m3u8"), &[]).await;
    assert_eq!((label.as_str(), body.as_str()), ("REVALIDATED", vod));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, label, _, _) = get(&c, edge.url("/v/p/index.m3u8"), &[]).await;
    assert_eq!(label, "HIT", "fresh for vod_playlist_ttl after the 304");
    assert_eq!(origin.hits("/v/p/index.m3u8"), 2);
}

/// Conditional requests from clients are answered 304 from a fresh copy (RFC 9110 §13):
/// If-None-Match (weak comparison), If-Modified-Since; a non-matching one gets the 200.
#[tokio::test]
async fn client_conditionals_are_answered_from_the_cache() {
    let origin = Origin::start().await;
    let lm = "Mon, 01 Jan 2024 00:00:00 GMT";
    origin.route(
        "/v/cond.ts",
        Route::ok("cond")
            .etag("\"c1\"")
            .header("cache-control", "max-age=600")
            .header("last-modified", lm),
    );
    let edge = edge_with_defaults(&origin).await;
    let c = client();
    get(&c, edge.url("/v/cond.ts"), &[]).await;
    for (h, v, want) in [
        ("if-none-match", "\"c1\"", 304),
        ("if-none-match", "W/\"c1\"", 304),
        ("if-none-match", "\"x\", \"c1\"", 304),
        ("if-none-match", "*", 304),
        ("if-none-match", "\"c2\"", 200),
        ("if-modified-since", lm, 304),
        ("if-modified-since", "Sun, 31 Dec 2023 00:00:00 GMT", 200),
    ] {
        let (status, label, body, _) = get(&c, edge.url("/v/cond.ts"), &[(h, v)]).await;
        assert_eq!((status, label.as_str()), (want, "HIT"), "{h}: {v}");
        assert_eq!(body, if want == 200 { "cond" } else { "" }, "{h}: {v}");
    }
    assert_eq!(origin.hits("/v/cond.ts"), 1);
}

/// RFC 9111 §3.5: a response to a request with `Authorization` is not stored unless it says
/// a shared cache may (`public`, `s-maxage`, `must-revalidate`), and such a request is not
/// answered from a stored response that does not say so (front or pipeline).
#[tokio::test]
async fn authorization_is_not_shared() {
    let origin = Origin::start().await;
    origin.route(
        "/v/private.ts",
        Route::ok("alice's").header("cache-control", "max-age=600"),
    );
    origin.route(
        "/v/anon.ts",
        Route::ok("anon").header("cache-control", "max-age=600"),
    );
    origin.route(
        "/v/public.ts",
        Route::ok("shared").header("cache-control", "public, max-age=600"),
    );
    let edge = edge_with_defaults(&origin).await;
    let c = client();
    let auth = [("authorization", "Bearer alice")];

    // Stored? Not from an authorized request without permission.
    assert_eq!(get(&c, edge.url("/v/private.ts"), &auth).await.2, "alice's");
    let (_, label, _, _) = get(&c, edge.url("/v/private.ts"), &[]).await;
    assert_ne!(label, "HIT");
    assert_eq!(
        origin.hits("/v/private.ts"),
        2,
        "the authorized response was not stored"
    );

    // Served? Not to an authorized request, even when stored (and in the memory tier).
    get(&c, edge.url("/v/anon.ts"), &[]).await;
    // Until the front answers it: the authorized request then finds it in the memory tier.
    for _ in 0..50 {
        assert_eq!(get(&c, edge.url("/v/anon.ts"), &[]).await.1, "HIT");
        if edge.metric("edge_front_hits_total").await > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(edge.metric("edge_front_hits_total").await, 1.0);
    let (status, label, _, _) = get(&c, edge.url("/v/anon.ts"), &auth).await;
    assert_eq!(status, 200);
    assert_ne!(label, "HIT");
    assert_eq!(origin.hits("/v/anon.ts"), 2);
    assert_eq!(
        origin.requests().last().unwrap().header("authorization"),
        Some("Bearer alice")
    );
    assert_eq!(
        get(&c, edge.url("/v/anon.ts"), &[]).await.1,
        "HIT",
        "the shared copy is still there"
    );

    // `public`: stored and shared.
    get(&c, edge.url("/v/public.ts"), &auth).await;
    assert_eq!(get(&c, edge.url("/v/public.ts"), &auth).await.1, "HIT");
    assert_eq!(get(&c, edge.url("/v/public.ts"), &[]).await.1, "HIT");
    assert_eq!(origin.hits("/v/public.ts"), 1);
}

/// RFC 9213: `CDN-Cache-Control` decides for the edge over `Cache-Control`, an operator's
/// targeted field over both; the fields are forwarded (other CDN tiers read them too).
#[tokio::test]
async fn targeted_fields_take_precedence_over_cache_control() {
    let origin = Origin::start().await;
    origin.route(
        "/v/cdn.ts",
        Route::ok("a")
            .header("cache-control", "private")
            .header("cdn-cache-control", "max-age=600"),
    );
    origin.route(
        "/v/nostore.ts",
        Route::ok("b")
            .header("cache-control", "max-age=600")
            .header("cdn-cache-control", "no-store"),
    );
    origin.route(
        "/v/mine.ts",
        Route::ok("c")
            .header("cache-control", "max-age=600")
            .header("cdn-cache-control", "max-age=600")
            .header("edge-cache-control", "no-store"),
    );
    origin.route(
        "/v/bad.ts",
        Route::ok("d")
            .header("cache-control", "max-age=600")
            .header("cdn-cache-control", "max-age=60 junk("),
    );
    let edge = edge_with_defaults_targeted(&origin).await;
    let c = client();
    for _ in 0..2 {
        for p in ["/v/cdn.ts", "/v/nostore.ts", "/v/mine.ts", "/v/bad.ts"] {
            get(&c, edge.url(p), &[]).await;
        }
    }
    let (_, label, _, h) = get(&c, edge.url("/v/cdn.ts"), &[]).await;
    assert_eq!(label, "HIT");
    assert_eq!(h["cdn-cache-control"], "max-age=600", "forwarded");
    assert_eq!(
        h["cache-control"], "private",
        "the browser's directives are untouched"
    );
    assert_eq!(
        origin.hits("/v/cdn.ts"),
        1,
        "CDN-Cache-Control beat Cache-Control: private"
    );
    assert_eq!(
        origin.hits("/v/nostore.ts"),
        2,
        "CDN-Cache-Control: no-store beat max-age"
    );
    assert_eq!(
        origin.hits("/v/mine.ts"),
        2,
        "the operator's field beat CDN-Cache-Control"
    );
    assert_eq!(
        origin.hits("/v/bad.ts"),
        1,
        "an unparseable targeted field is ignored"
    );
}

async fn edge_with_defaults_targeted(origin: &Origin) -> Edge {
    Edge::start_with_config_cache(
        &pool(origin.addr),
        "targeted_field = \"Edge-Cache-Control\"\n",
    )
    .await
}
