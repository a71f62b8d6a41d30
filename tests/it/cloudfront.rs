//! CloudFront signed URLs and signed cookies through a real edge, signed by openssl
//! (`support::cloudfront`): canned and custom policies, wildcards, every refusal with its
//! reason and metric, the parameters kept out of the cache key and the origin request,
//! playlists carrying the signature, and the listener's scheme in the URL a policy names.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::cloudfront::{custom_policy, CfSigner};
use crate::support::{client, free_port, Edge, Origin, Route};

const MASTER: &str =
    "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=200000,RESOLUTION=426x240\n240p/index.m3u8\n";
const MEDIA: &str = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:4.0,\nseg_000.m4s\n#EXT-X-ENDLIST\n";
const M3U8: &str = "application/vnd.apple.mpegurl";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn title(origin: &Origin) {
    origin.route(
        "/v/a/master.m3u8",
        Route::ok(MASTER).header("content-type", M3U8),
    );
    origin.route(
        "/v/a/240p/index.m3u8",
        Route::ok(MEDIA).header("content-type", M3U8),
    );
    origin.route("/v/a/240p/init.mp4", Route::ok("init-a"));
    origin.route("/v/a/240p/seg_000.m4s", Route::ok("segment-a"));
    origin.route("/v/b/seg.ts", Route::ok("segment-b"));
}

/// `[tokens]` with a native key (the section needs one) and `[tokens.cloudfront]`.
fn tokens_config(dir: &std::path::Path, cf: &str) -> String {
    std::fs::write(dir.join("k1.key"), "42".repeat(32)).unwrap();
    format!(
        "[tokens]\nrequired = true\nmax_ttl = \"1h\"\nkeys = [{{ id = \"k1\", secret_file = \"{}/k1.key\" }}]\n{cf}",
        dir.display()
    )
}

async fn setup(signer: &CfSigner) -> (Origin, Edge, tempfile::TempDir) {
    let origin = Origin::start().await;
    title(&origin);
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[log]\naccess = \"access.log\"\n{}",
        tokens_config(dir.path(), &signer.config(&[]))
    );
    let edge = Edge::start(origin.addr, &cfg).await;
    (origin, edge, dir)
}

async fn get(url: &str, cookie: Option<&str>) -> (u16, String, String) {
    let mut req = client().get(url);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let r = req.send().await.unwrap();
    let reason = r
        .headers()
        .get("x-edge-reason")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (r.status().as_u16(), reason, r.text().await.unwrap())
}

#[tokio::test]
async fn canned_and_custom_urls_play_one_cached_object_without_the_signature() {
    let cf = CfSigner::new("K2CANNED");
    let (origin, edge, _dir) = setup(&cf).await;
    let base = format!("http://{}", edge.http);
    // Canned: the exact URL, its own query included.
    let url = format!("{base}/v/a/240p/seg_000.m4s?x=1");
    let q = cf.canned_query(&url, now() + 300);
    let r = client().get(format!("{url}&{q}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-cache"], "MISS");
    assert_eq!(r.text().await.unwrap(), "segment-a");
    // Custom: a wildcard resource; the same object is a hit.
    let policy = custom_policy(&format!("{base}/v/a/*"), now() + 300, None, None);
    let q = cf.custom_query(&policy);
    let r = client()
        .get(format!("{base}/v/a/240p/seg_000.m4s?x=1&{q}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(r.text().await.unwrap(), "segment-a");
    // The parameters may come in any order, around the URL's own.
    let (k, v) = q.split_once('&').unwrap();
    let r = get(&format!("{base}/v/a/240p/seg_000.m4s?{v}&x=1&{k}"), None).await;
    assert_eq!(r.0, 200, "{r:?}");
    assert_eq!(origin.hits("/v/a/240p/seg_000.m4s"), 1);
    let seen = &origin.requests()[0];
    assert_eq!(
        seen.target, "/v/a/240p/seg_000.m4s?x=1",
        "the origin never sees the signature"
    );
    assert_eq!(
        edge.metric(r#"edge_token_rejections_total{reason="cf_bad_signature"}"#)
            .await,
        0.0
    );
    // The access log redacts the signature (and policy).
    let sig = &q[q.find("Signature=").unwrap() + 10..][..20];
    let log = wait_for_log(&edge, 3).await;
    assert!(log.contains("seg_000.m4s") && !log.contains(sig), "{log}");
}

/// The access log once it has `lines` lines (or what it has after 5 s).
async fn wait_for_log(edge: &Edge, lines: usize) -> String {
    let mut text = String::new();
    for _ in 0..50 {
        text = std::fs::read_to_string(edge.dir().join("access.log")).unwrap_or_default();
        if text.lines().count() >= lines {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    text
}

#[tokio::test]
async fn every_cloudfront_refusal_is_a_403_with_its_reason_and_metric() {
    let cf = CfSigner::new("K2MAIN");
    let stranger = CfSigner::new("K2STRANGER");
    let (origin, edge, _dir) = setup(&cf).await;
    let base = format!("http://{}", edge.http);
    let seg = format!("{base}/v/a/240p/seg_000.m4s");
    let t = now();
    let forged = {
        // A key pair the edge knows under the wrong id: another key's signature.
        let q = stranger.canned_query(&seg, t + 300);
        q.replace("K2STRANGER", "K2MAIN")
    };
    let tampered = {
        // One character of a valid signature changed.
        let q = cf.canned_query(&seg, t + 300);
        let i = q.find("Signature=").unwrap() + 10 + 20;
        let mut b = q.into_bytes();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    let cases: Vec<(String, &str)> = vec![
        (seg.clone(), "missing"),
        (format!("{seg}?Signature=abc"), "cf_malformed"),
        (
            format!("{seg}?Policy=%%%&Signature=abc&Key-Pair-Id=K2MAIN"),
            "cf_malformed",
        ),
        (
            format!("{seg}?{}", stranger.canned_query(&seg, t + 300)),
            "cf_unknown_key",
        ),
        (format!("{seg}?{forged}"), "cf_bad_signature"),
        (format!("{seg}?{tampered}"), "cf_bad_signature"),
        // A canned signature for another URL.
        (
            format!(
                "{seg}?{}",
                cf.canned_query(&format!("{base}/v/b/seg.ts"), t + 300)
            ),
            "cf_bad_signature",
        ),
        (
            format!("{seg}?{}", cf.canned_query(&seg, t - 120)),
            "cf_expired",
        ),
        (
            format!(
                "{seg}?{}",
                cf.custom_query(&custom_policy(&format!("{base}/v/*"), t - 120, None, None))
            ),
            "cf_expired",
        ),
        (
            format!(
                "{seg}?{}",
                cf.custom_query(&custom_policy(
                    &format!("{base}/v/*"),
                    t + 900,
                    Some(t + 600),
                    None
                ))
            ),
            "cf_not_yet_valid",
        ),
        (
            format!(
                "{seg}?{}",
                cf.custom_query(&custom_policy(
                    &format!("{base}/v/b/*"),
                    t + 300,
                    None,
                    None
                ))
            ),
            "cf_resource",
        ),
        (
            format!(
                "{seg}?{}",
                cf.custom_query(&custom_policy(
                    "https://other.example/v/*",
                    t + 300,
                    None,
                    None
                ))
            ),
            "cf_resource",
        ),
        (
            format!(
                "{seg}?{}",
                cf.custom_query(&custom_policy(
                    &format!("{base}/v/*"),
                    t + 300,
                    None,
                    Some("203.0.113.0/24")
                ))
            ),
            "cf_ip",
        ),
    ];
    for (url, reason) in &cases {
        let (status, got, body) = get(url, None).await;
        assert_eq!((status, got.as_str()), (403, *reason), "{url}");
        assert_eq!(body, format!("{reason}\n"));
    }
    for (reason, n) in [
        ("missing", 1.0),
        ("cf_malformed", 2.0),
        ("cf_unknown_key", 1.0),
        ("cf_bad_signature", 3.0),
        ("cf_expired", 2.0),
        ("cf_not_yet_valid", 1.0),
        ("cf_resource", 2.0),
        ("cf_ip", 1.0),
    ] {
        let got = edge
            .metric(&format!(
                r#"edge_token_rejections_total{{reason="{reason}"}}"#
            ))
            .await;
        assert_eq!(got, n, "{reason}");
    }
    assert_eq!(origin.total_hits(), 0, "nothing refused reaches the origin");
    // The client's own range: allowed when it holds the client (127.0.0.1), and `?` wildcards.
    let ok = cf.custom_query(&custom_policy(
        &format!("http*://{}/v/a/240p/seg_00?.m4s", edge.http),
        t + 300,
        Some(t - 60),
        Some("127.0.0.0/8"),
    ));
    assert_eq!(get(&format!("{seg}?{ok}"), None).await.0, 200);
}

#[tokio::test]
async fn signed_cookies_play_without_any_query() {
    let cf = CfSigner::new("K2COOKIE");
    let (origin, edge, _dir) = setup(&cf).await;
    let base = format!("http://{}", edge.http);
    let custom = cf.custom_cookies(&custom_policy(
        &format!("{base}/v/a/*"),
        now() + 300,
        None,
        None,
    ));
    let jar = format!("theme=dark; {custom}");
    for (path, body) in [
        ("/v/a/master.m3u8", MASTER),
        ("/v/a/240p/index.m3u8", MEDIA),
        ("/v/a/240p/seg_000.m4s", "segment-a"),
    ] {
        let r = get(&format!("{base}{path}"), Some(&jar)).await;
        assert_eq!((r.0, r.2.as_str()), (200, body), "{path}: {r:?}");
    }
    // Playlists fetched with cookies are the origin's bytes: nothing to carry.
    let r = get(&format!("{base}/v/b/seg.ts"), Some(&jar)).await;
    assert_eq!((r.0, r.1.as_str()), (403, "cf_resource"));
    // Canned cookies cover their one URL.
    let seg = format!("{base}/v/b/seg.ts");
    let canned = cf.canned_cookies(&seg, now() + 300);
    assert_eq!(get(&seg, Some(&canned)).await.2, "segment-b");
    let r = get(&format!("{base}/v/a/240p/seg_000.m4s"), Some(&canned)).await;
    assert_eq!((r.0, r.1.as_str()), (403, "cf_bad_signature"));
    // Expired cookies.
    let old = cf.custom_cookies(&custom_policy(
        &format!("{base}/*"),
        now() - 100,
        None,
        None,
    ));
    let r = get(&seg, Some(&old)).await;
    assert_eq!((r.0, r.1.as_str()), (403, "cf_expired"));
    let r = get(&seg, None).await;
    assert_eq!((r.0, r.1.as_str()), (403, "missing"));
    // Each URL above was fetched once; nothing refused reached the origin.
    assert_eq!(origin.total_hits(), 4);
}

#[tokio::test]
async fn query_signed_playlists_carry_the_signature_to_every_uri() {
    let cf = CfSigner::new("K2PLAY");
    let (origin, edge, _dir) = setup(&cf).await;
    let base = format!("http://{}", edge.http);
    let q = cf.custom_query(&custom_policy(
        &format!("{base}/v/a/*"),
        now() + 300,
        None,
        None,
    ));
    let master = get(&format!("{base}/v/a/master.m3u8?{q}"), None).await;
    assert_eq!(master.0, 200, "{master:?}");
    assert!(
        master.2.contains(&format!("240p/index.m3u8?{q}\n")),
        "{}",
        master.2
    );
    let media = get(&format!("{base}/v/a/240p/index.m3u8?{q}"), None).await;
    assert!(
        media.2.contains(&format!("URI=\"init.mp4?{q}\"")),
        "{}",
        media.2
    );
    // A player follows every URI as written.
    let seg_uri = media.2.lines().find(|l| l.starts_with("seg_000")).unwrap();
    let r = get(&format!("{base}/v/a/240p/{seg_uri}"), None).await;
    assert_eq!((r.0, r.2.as_str()), (200, "segment-a"));
    let init = get(&format!("{base}/v/a/240p/init.mp4?{q}"), None).await;
    assert_eq!((init.0, init.2.as_str()), (200, "init-a"));
    // The cache kept the origin's bytes: a cookie viewer gets them unchanged.
    let jar = cf.custom_cookies(&custom_policy(
        &format!("{base}/v/a/*"),
        now() + 300,
        None,
        None,
    ));
    let plain = get(&format!("{base}/v/a/master.m3u8"), Some(&jar)).await;
    assert_eq!(plain.2, MASTER);
    assert_eq!(origin.hits("/v/a/master.m3u8"), 1);
}

/// A client of the edge's HTTPS listener that trusts its dev CA (HTTP/1 only, so cache hits
/// are the front's).
fn https_client(ca: &std::path::Path, https: SocketAddr) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca.join("edge-dev-ca.pem")).unwrap())
        .unwrap();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .resolve("cdn.test", https)
        .http1_only()
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_url_a_policy_names_has_the_listeners_scheme_and_the_requests_host() {
    let cf = CfSigner::new("K2TLS");
    let origin = Origin::start().await;
    title(&origin);
    let dir = tempfile::tempdir().unwrap();
    edge::tls::certs::generate_dev(dir.path(), &["cdn.test".into()]).unwrap();
    let https: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let d = dir.path().display();
    let cfg = format!(
        "[tls]\ncerts = [{{ cert = \"{d}/edge.pem\", key = \"{d}/edge-key.pem\" }}]\n\
         [[origins]]\nname = \"o\"\nnodes = [{{ addr = \"{}\" }}]\n{}",
        origin.addr,
        tokens_config(dir.path(), &cf.config(&[]))
    );
    let edge = Edge::start_with_config(&cfg, &format!("https = \"{https}\"\n")).await;
    let c = https_client(dir.path(), https);
    let port = https.port();
    let https_url = format!("https://cdn.test:{port}/v/a/240p/seg_000.m4s");
    let http_url = format!("http://cdn.test:{port}/v/a/240p/seg_000.m4s");
    let canned_https = cf.canned_query(&https_url, now() + 300);
    let canned_http = cf.canned_query(&http_url, now() + 300);
    let only_http = cf.custom_query(&custom_policy("http://cdn.test*", now() + 300, None, None));
    let both = cf.custom_query(&custom_policy(
        "http*://cdn.test:*/v/*",
        now() + 300,
        None,
        None,
    ));
    let other_host = cf.custom_query(&custom_policy(
        "https://other.test:*",
        now() + 300,
        None,
        None,
    ));
    let status = |r: reqwest::Response| {
        (
            r.status().as_u16(),
            r.headers()
                .get("x-edge-reason")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default(),
        )
    };
    // Twice each: the miss through the pipeline, the hit through the front, over TLS.
    for round in 0..2 {
        for (q, want) in [
            (&canned_https, (200, "")),
            (&canned_http, (403, "cf_bad_signature")),
            (&only_http, (403, "cf_resource")),
            (&both, (200, "")),
            (&other_host, (403, "cf_resource")),
        ] {
            let r = c.get(format!("{https_url}?{q}")).send().await.unwrap();
            assert_eq!(
                status(r),
                (want.0, want.1.to_string()),
                "round {round}: {q}"
            );
        }
    }
    assert!(edge.metric("edge_front_hits_total").await >= 1.0);
    // The plain listener is `http`: the http canned URL (of the plain port) plays there.
    let plain = format!("http://cdn.test:{}/v/a/240p/seg_000.m4s", edge.http.port());
    let q = cf.canned_query(&plain, now() + 300);
    let r = client()
        .get(format!("http://{}/v/a/240p/seg_000.m4s?{q}", edge.http))
        .header("host", format!("cdn.test:{}", edge.http.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), (200, String::new()));
    // One fetch per host (`cdn.test:<https port>`, `cdn.test:<http port>`): the refusals and
    // the front's hits never reached the origin.
    assert_eq!(origin.hits("/v/a/240p/seg_000.m4s"), 2);
}
