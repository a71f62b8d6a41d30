//! The player front: fresh memory hits answered without the proxy pipeline, byte for byte
//! what the pipeline would answer, and every other request handed to the pipeline intact
//! on the same connection.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::raw::Conn;
use crate::support::{bytes_of, client, Edge, Origin, Route};

const M3U8: &str = "application/vnd.apple.mpegurl";
const PLAYLIST: &str =
    "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\nseg_000.ts\n#EXT-X-ENDLIST\n";

fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: edge.test\r\n{extra}\r\n").into_bytes()
}

async fn front_hits(edge: &Edge) -> f64 {
    edge.metric("edge_front_hits_total").await
}

fn origin_with_objects(origin: &Origin) -> Vec<u8> {
    let seg = bytes_of(200_000, 7);
    origin.route(
        "/v/a/seg_000.ts",
        Route::ok(seg.clone())
            .header("content-type", "video/mp2t")
            .header("cache-control", "public, max-age=600")
            .etag("\"s0\""),
    );
    origin.route(
        "/v/a/index.m3u8",
        Route::ok(PLAYLIST).header("content-type", M3U8),
    );
    origin.route(
        "/v/a/big.ts",
        Route::ok(bytes_of(3 << 20, 8)).header("content-type", "video/mp2t"),
    );
    seg
}

/// The same requests through an edge with the front and one without give the same status,
/// headers (but `Date`/`Age`) and bytes.
#[tokio::test]
async fn front_answers_exactly_as_the_pipeline_does() {
    let origin = Origin::start().await;
    let seg = origin_with_objects(&origin);
    let cors = "[cors]\nallow_origins = [\"https://player.example\"]\n";
    let cfg = format!(
        "[[origins]]\nname = \"test\"\nnodes = [{{ addr = \"{}\" }}]\n{cors}",
        origin.addr
    );
    let fast = Edge::start_with_config(&cfg, "name = \"edge-front\"").await;
    let slow = Edge::start_with_config(&cfg, "name = \"edge-front\"\nfast_hits = false").await;

    let requests: Vec<(Vec<u8>, bool)> = vec![
        (get("/v/a/seg_000.ts", ""), false),
        (
            b"HEAD /v/a/seg_000.ts HTTP/1.1\r\nHost: edge.test\r\n\r\n".to_vec(),
            true,
        ),
        (
            get("/v/a/seg_000.ts", "Origin: https://player.example\r\n"),
            false,
        ),
        (
            get(
                "/v/a/seg_000.ts",
                "Origin: https://elsewhere.example\r\nConnection: keep-alive\r\n",
            ),
            false,
        ),
        (
            get(
                "/v/a/index.m3u8",
                "User-Agent: test-player/1.0\r\nAccept: */*\r\n",
            ),
            false,
        ),
        (get("/v/a/big.ts", ""), false),
        (get("/v/a/./seg_000.ts", ""), false),
        (get("/v/a/seg_000.ts", "Range: bytes=0-\r\n"), false),
        (get("/v/a/seg_000.ts", "Range: bytes=10-19\r\n"), false),
        (get("/v/a/seg_000.ts", "Range: bytes=-100\r\n"), false),
        (
            get(
                "/v/a/seg_000.ts",
                "Range: bytes=199990-300000\r\nOrigin: https://player.example\r\n",
            ),
            false,
        ),
        (get("/v/a/big.ts", "Range: bytes=1000000-\r\n"), false),
        (
            b"HEAD /v/a/seg_000.ts HTTP/1.1\r\nHost: edge.test\r\nRange: bytes=5-9\r\n\r\n"
                .to_vec(),
            true,
        ),
    ];
    let mut answers = Vec::new();
    for edge in [&fast, &slow] {
        let mut c = Conn::open(edge.http).await;
        // Fill each object (misses through the pipeline), then the same requests as hits.
        for p in ["/v/a/seg_000.ts", "/v/a/index.m3u8", "/v/a/big.ts"] {
            c.send(&get(p, "")).await;
            assert_eq!(c.response(false).await.header("x-cache"), Some("MISS"));
        }
        let mut got = Vec::new();
        for (req, head_only) in &requests {
            c.send(req).await;
            got.push(c.response(*head_only).await);
        }
        answers.push(got);
    }
    for (i, (f, s)) in answers[0].iter().zip(&answers[1]).enumerate() {
        let what = String::from_utf8_lossy(&requests[i].0)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        let ranged = String::from_utf8_lossy(&requests[i].0).contains("Range:");
        assert_eq!(f.status, if ranged { 206 } else { 200 }, "{what}");
        assert_eq!(f.status, s.status, "{what}");
        assert_eq!(f.header("x-cache"), Some("HIT"), "{what}");
        let strip = |h: &BTreeMap<String, String>| {
            let mut h = h.clone();
            assert!(
                h.remove("date").is_some() && h.remove("age").is_some(),
                "{what}: Date and Age present"
            );
            // Generated per answer.
            assert!(h.remove("x-request-id").is_some(), "{what}: a request id");
            h
        };
        assert_eq!(strip(&f.headers), strip(&s.headers), "{what}: same headers");
        assert!(f.body == s.body, "{what}: same body");
    }
    assert!(answers[0][0].body == seg);
    assert_eq!(
        answers[0][1].header("content-length"),
        Some("200000"),
        "HEAD carries the length, no body"
    );
    assert_eq!(
        answers[0][2].header("access-control-allow-origin"),
        Some("https://player.example")
    );
    assert_eq!(answers[0][2].header("vary"), Some("Origin"));
    assert_eq!(answers[0][3].header("access-control-allow-origin"), None);
    assert_eq!(answers[0][5].body.len(), 3 << 20);
    assert!(
        answers[0][7].body == seg[..]
            && answers[0][7].header("content-range") == Some("bytes 0-199999/200000")
    );
    assert!(
        answers[0][8].body == seg[10..20]
            && answers[0][8].header("content-range") == Some("bytes 10-19/200000")
    );
    assert!(answers[0][9].body == seg[199_900..]);
    assert!(
        answers[0][10].body == seg[199_990..]
            && answers[0][10].header("content-range") == Some("bytes 199990-199999/200000")
    );
    assert_eq!(answers[0][11].body.len(), (3 << 20) - 1_000_000);
    assert_eq!(
        answers[0][12].header("content-length"),
        Some("5"),
        "HEAD with a range: the part's length, no body"
    );
    assert_eq!(
        answers[0][8].header("accept-ranges"),
        None,
        "206 answers carry no Accept-Ranges"
    );

    // The front answered every hit on `fast` and none on `slow`; both count them alike.
    let n = requests.len() as f64;
    let partial = answers[0].iter().filter(|r| r.status == 206).count() as f64;
    let body_bytes: usize = answers[0].iter().map(|r| r.body.len()).sum();
    assert_eq!(front_hits(&fast).await, n);
    assert_eq!(front_hits(&slow).await, 0.0);
    for edge in [&fast, &slow] {
        // Each answer is counted a moment after it is written.
        edge.await_metric(
            r#"edge_request_duration_seconds_count{kind="content",cache="HIT"}"#,
            n,
        )
        .await;
        assert_eq!(
            edge.metric(r#"edge_requests_total{kind="content",status="200",cache="HIT"}"#)
                .await,
            n - partial
        );
        assert_eq!(
            edge.metric(r#"edge_requests_total{kind="content",status="206",cache="HIT"}"#)
                .await,
            partial
        );
        assert_eq!(
            edge.metric(r#"edge_cache_lookups_total{result="memory"}"#)
                .await,
            n
        );
        assert_eq!(
            edge.metric(r#"edge_response_bytes_total{cache="HIT"}"#)
                .await,
            body_bytes as f64
        );
    }
    assert_eq!(
        origin.total_hits(),
        6,
        "three fills per edge, every other request a hit"
    );
}

/// Requests the pipeline must see go to it, on the same connection, and the connection
/// comes back to the front afterwards.
#[tokio::test]
async fn front_steps_aside_for_what_needs_the_pipeline() {
    let origin = Origin::start().await;
    let seg = origin_with_objects(&origin);
    origin.route("/v/upload", Route::ok("stored"));
    let edge = Edge::start(origin.addr, "").await;
    let mut c = Conn::open(edge.http).await;
    c.send(&get("/v/a/seg_000.ts", "")).await;
    assert_eq!(c.response(false).await.header("x-cache"), Some("MISS"));

    // Several ranges: a multipart 206 from the pipeline; an unsatisfiable one: 416.
    c.send(&get("/v/a/seg_000.ts", "Range: bytes=0-1,10-19\r\n"))
        .await;
    let r = c.response(false).await;
    assert_eq!(r.status, 206);
    assert!(r
        .header("content-type")
        .is_some_and(|t| t.starts_with("multipart/byteranges")));
    c.send(&get("/v/a/seg_000.ts", "Range: bytes=500000-\r\n"))
        .await;
    assert_eq!(c.response(false).await.status, 416);
    // If-Range that does not match: the whole object, from the pipeline.
    c.send(&get(
        "/v/a/seg_000.ts",
        "Range: bytes=0-1\r\nIf-Range: \"other\"\r\n",
    ))
    .await;
    let r = c.response(false).await;
    assert_eq!((r.status, r.body.len()), (200, seg.len()));
    // Conditional: 304.
    c.send(&get("/v/a/seg_000.ts", "If-None-Match: \"s0\"\r\n"))
        .await;
    assert_eq!(c.response(false).await.status, 304);
    // A request that already passed this node: loop refused.
    let via = format!("Via: 1.1 edge-{}\r\n", edge.http.port());
    c.send(&get("/v/a/seg_000.ts", &via)).await;
    assert_eq!(c.response(false).await.status, 508);
    // A request with a body goes to the origin with its body.
    c.send(b"POST /v/upload HTTP/1.1\r\nHost: edge.test\r\nContent-Length: 5\r\n\r\nhello")
        .await;
    let r = c.response(false).await;
    assert_eq!((r.status, r.body.as_slice()), (200, b"stored".as_slice()));
    assert_eq!(origin.hits("/v/upload"), 1);
    // Local routes.
    c.send(&get("/healthz", "")).await;
    assert_eq!(c.response(false).await.body, b"ok\n");
    // A path the pipeline refuses.
    c.send(&get("/v/a/%2e%2e/seg_000.ts", "")).await;
    assert_eq!(c.response(false).await.status, 400);
    assert_eq!(
        front_hits(&edge).await,
        0.0,
        "none of those was answered by the front"
    );

    // Back on the front, same connection.
    c.send(&get("/v/a/seg_000.ts", "")).await;
    let r = c.response(false).await;
    assert_eq!((r.status, r.header("x-cache")), (200, Some("HIT")));
    assert!(r.body == seg);
    assert_eq!(front_hits(&edge).await, 1.0);

    // `Connection: close` is the pipeline's: answered, then the connection closes.
    c.send(&get("/v/a/seg_000.ts", "Connection: close\r\n"))
        .await;
    let r = c.response(false).await;
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert!(c.closed().await, "closed after Connection: close");
    assert_eq!(front_hits(&edge).await, 1.0);
    assert_eq!(
        origin.hits("/v/a/seg_000.ts"),
        1,
        "every GET of the segment after the first was a hit"
    );
}

/// Pipelined requests are answered in order, across the front and the pipeline; a head
/// split over several reads is put together first.
#[tokio::test]
async fn pipelined_and_split_requests() {
    let origin = Origin::start().await;
    let seg = origin_with_objects(&origin);
    origin.route("/v/a/cold.ts", Route::ok("cold-object"));
    let edge = Edge::start(origin.addr, "").await;
    let mut c = Conn::open(edge.http).await;
    c.send(&get("/v/a/seg_000.ts", "")).await;
    c.response(false).await;

    // Two hits in one write.
    let mut two = get("/v/a/seg_000.ts", "");
    two.extend(get("/v/a/seg_000.ts", ""));
    c.send(&two).await;
    for _ in 0..2 {
        let r = c.response(false).await;
        assert_eq!(r.header("x-cache"), Some("HIT"));
        assert!(r.body == seg);
    }
    // A hit then a miss in one write: the miss goes to the pipeline with the bytes read.
    let mut mixed = get("/v/a/seg_000.ts", "");
    mixed.extend(get("/v/a/cold.ts", ""));
    c.send(&mixed).await;
    let r = c.response(false).await;
    assert_eq!(r.header("x-cache"), Some("HIT"));
    let r = c.response(false).await;
    assert_eq!(
        (r.header("x-cache"), r.body.as_slice()),
        (Some("MISS"), b"cold-object".as_slice())
    );
    // A head in three pieces.
    let req = get("/v/a/cold.ts", "Accept: */*\r\n");
    for part in req.chunks(req.len() / 3 + 1) {
        c.send(part).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = c.response(false).await;
    assert_eq!(
        (r.header("x-cache"), r.body.as_slice()),
        (Some("HIT"), b"cold-object".as_slice())
    );
    assert_eq!(front_hits(&edge).await, 4.0);
    assert_eq!(
        (origin.hits("/v/a/seg_000.ts"), origin.hits("/v/a/cold.ts")),
        (1, 1)
    );

    // Pipelined behind a request the pipeline takes: the pipeline gets that one alone, the
    // front answers the next (tests/it/pipelining.rs has every other case).
    let mut c = Conn::open(edge.http).await;
    let mut mixed = get("/v/a/other.ts", "");
    mixed.extend(get("/v/a/seg_000.ts", ""));
    c.send(&mixed).await;
    assert_eq!(c.response(false).await.status, 404);
    let r = c.response(false).await;
    assert_eq!(r.header("x-cache"), Some("HIT"));
    assert!(r.body == seg);
    assert_eq!(front_hits(&edge).await, 5.0);
}

/// Expired and purged objects are the pipeline's (revalidation, refetch); the front never
/// answers with them.
#[tokio::test]
async fn stale_and_purged_objects_go_through_the_pipeline() {
    let origin = Origin::start().await;
    origin.route(
        "/v/short.ts",
        Route::ok("short-lived").header("cache-control", "max-age=1"),
    );
    origin.route(
        "/v/long.ts",
        Route::ok("long-lived").header("cache-control", "max-age=600"),
    );
    let edge = Edge::start(origin.addr, "").await;
    let c = client();
    for p in ["/v/short.ts", "/v/long.ts", "/v/short.ts", "/v/long.ts"] {
        assert_eq!(c.get(edge.url(p)).send().await.unwrap().status(), 200);
    }
    assert_eq!(front_hits(&edge).await, 2.0);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let r = c.get(edge.url("/v/short.ts")).send().await.unwrap();
    assert_ne!(
        r.headers()["x-cache"],
        "HIT",
        "an expired object is not a plain hit"
    );
    assert_eq!(r.text().await.unwrap(), "short-lived");
    // Fetched again (STALE answers refresh in the background).
    for _ in 0..50 {
        if origin.hits("/v/short.ts") >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(origin.hits("/v/short.ts"), 2, "expired: fetched again");

    let purge = c
        .post(edge.admin_url("/admin/purge"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"url": "{}"}}"#, edge.url("/v/long.ts")))
        .send()
        .await
        .unwrap();
    assert_eq!(purge.status(), 200);
    let admitted = edge.metric("edge_cache_admitted_bytes_total").await;
    let r = c.get(edge.url("/v/long.ts")).send().await.unwrap();
    assert_eq!(
        r.headers()["x-cache"],
        "MISS",
        "a purged object is refetched"
    );
    r.bytes().await.unwrap();
    edge.await_admitted(admitted).await;
    assert_eq!(origin.hits("/v/long.ts"), 2);
    assert_eq!(
        front_hits(&edge).await,
        2.0,
        "neither the expired nor the purged object came from the front"
    );
    // And the refetched copy is a front hit again.
    assert_eq!(
        c.get(edge.url("/v/long.ts"))
            .send()
            .await
            .unwrap()
            .headers()["x-cache"],
        "HIT"
    );
    assert_eq!(front_hits(&edge).await, 3.0);
}

/// With tokens required, the front checks them with the pipeline's gate: good tokens in any
/// placement get hits, bad ones the pipeline's 403 with its reason, and playlists that carry
/// a query token are rewritten by the pipeline.
#[tokio::test]
async fn tokens_are_checked_before_a_front_hit() {
    use edge::token::{self, Claims, Keyring};
    const KEY: [u8; 32] = [0x42; 32];
    let origin = Origin::start().await;
    let seg = origin_with_objects(&origin);
    let keys = tempfile::tempdir().unwrap();
    let hex: String = KEY.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(keys.path().join("k.key"), hex).unwrap();
    let cfg = format!(
        "[tokens]\nrequired = true\ncurrent = \"k\"\nkeys = [{{ id = \"k\", secret_file = \"{}/k.key\" }}]\n",
        keys.path().display()
    );
    let edge = Edge::start(origin.addr, &cfg).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ring = Keyring::new([("k", KEY)], "k").unwrap();
    let good = token::sign(&ring, &Claims::new("/v/a/", now + 600)).unwrap();
    let other = token::sign(&ring, &Claims::new("/v/b/", now + 600)).unwrap();
    let forged = token::sign(
        &Keyring::new([("k", [0x17; 32])], "k").unwrap(),
        &Claims::new("/v/a/", now + 600),
    )
    .unwrap();

    let mut c = Conn::open(edge.http).await;
    c.send(&get(&format!("/v/a/seg_000.ts?token={good}"), ""))
        .await;
    assert_eq!(c.response(false).await.header("x-cache"), Some("MISS"));
    for req in [
        get(&format!("/v/a/seg_000.ts?token={good}"), ""),
        get(&format!("/t/{good}/v/a/seg_000.ts"), ""),
        get("/v/a/seg_000.ts", &format!("Cookie: edge_token={good}\r\n")),
    ] {
        c.send(&req).await;
        let r = c.response(false).await;
        assert_eq!((r.status, r.header("x-cache")), (200, Some("HIT")));
        assert!(r.body == seg);
    }
    assert_eq!(front_hits(&edge).await, 3.0);

    for (req, reason) in [
        (get("/v/a/seg_000.ts", ""), "missing"),
        (
            get(&format!("/v/a/seg_000.ts?token={other}"), ""),
            "acl_mismatch",
        ),
        (
            get(&format!("/v/a/seg_000.ts?token={forged}"), ""),
            "bad_signature",
        ),
    ] {
        c.send(&req).await;
        let r = c.response(false).await;
        assert_eq!((r.status, r.header("x-edge-reason")), (403, Some(reason)));
    }
    // A playlist with a query token is rewritten for it: by the pipeline on the miss, by the
    // front (with the pipeline's transform) on the hit.
    for expect in ["MISS", "HIT"] {
        c.send(&get(&format!("/v/a/index.m3u8?token={good}"), ""))
            .await;
        let r = c.response(false).await;
        assert_eq!(r.header("x-cache"), Some(expect));
        let text = String::from_utf8(r.body).unwrap();
        assert!(text.contains(&format!("seg_000.ts?token={good}")), "{text}");
    }
    assert_eq!(
        front_hits(&edge).await,
        4.0,
        "refusals are not front hits; the rewritten playlist's hit is"
    );
    assert_eq!(
        edge.metric(r#"edge_token_rejections_total{reason="acl_mismatch"}"#)
            .await,
        1.0
    );
}

/// Mangled request heads (bytes flipped, cut, duplicated, control characters) never take the
/// edge down: each gets an answer or a closed connection, and hits keep working after.
#[tokio::test]
async fn mangled_heads_never_break_the_front() {
    let origin = Origin::start().await;
    let seg = origin_with_objects(&origin);
    let edge = Edge::start(origin.addr, "").await;
    let mut c = Conn::open(edge.http).await;
    c.send(&get("/v/a/seg_000.ts", "")).await;
    c.response(false).await;

    let base = get(
        "/v/a/seg_000.ts?x=1",
        "Origin: https://p.example\r\nCookie: a=b\r\n",
    );
    let noise = bytes_of(4096, 99);
    let specials = [
        b'\0', b'\r', b'\n', b' ', b':', b'%', b'?', b'#', b'\x7f', b'\xff', b'/', b'.',
    ];
    for i in 0..150usize {
        let mut req = base.clone();
        let r = |k: usize| noise[(i * 7 + k * 13) % noise.len()] as usize;
        match i % 5 {
            0 => req[r(0) % base.len()] = specials[r(1) % specials.len()],
            1 => req.truncate(r(0) % base.len()),
            2 => {
                let at = r(0) % base.len();
                let dup = req[at..].to_vec();
                req.extend_from_slice(&dup);
            }
            3 => {
                for k in 0..4 {
                    let at = r(k) % req.len();
                    req[at] = noise[(i + k) % noise.len()];
                }
            }
            _ => req
                .splice(
                    r(0) % base.len()..r(0) % base.len(),
                    std::iter::repeat_n(b'a', 9000),
                )
                .for_each(drop),
        }
        let mut raw = TcpStream::connect(edge.http).await.unwrap();
        raw.write_all(&req).await.unwrap();
        let _ = raw.shutdown().await;
        let mut sink = Vec::new();
        // An answer, or a close; either way within the bound.
        let read = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut sink)).await;
        assert!(read.is_ok(), "case {i}: no answer and no close within 5 s");
    }
    // Still serving, from the front.
    let before = front_hits(&edge).await;
    c.send(&get("/v/a/seg_000.ts", "")).await;
    let r = c.response(false).await;
    assert_eq!(r.header("x-cache"), Some("HIT"));
    assert!(r.body == seg);
    assert_eq!(front_hits(&edge).await, before + 1.0);
}

/// The access log (`[log]`) has one line per request in the same form whether the pipeline
/// or the front answered it.
#[tokio::test]
async fn access_log_lines_are_the_same_from_front_and_pipeline() {
    let origin = Origin::start().await;
    origin_with_objects(&origin);
    let edge = Edge::start(origin.addr, "[log]\naccess = \"access.log\"\n").await;
    let mut c = Conn::open(edge.http).await;
    for _ in 0..2 {
        let admitted = edge.metric("edge_cache_admitted_bytes_total").await;
        c.send(&get("/v/a/index.m3u8", "User-Agent: p/1\r\n")).await;
        if c.response(false).await.header("x-cache") == Some("MISS") {
            edge.await_admitted(admitted).await;
        }
    }
    assert_eq!(front_hits(&edge).await, 1.0);
    edge.await_metric("edge_access_log_lines_total", 2.0).await;
    let text = std::fs::read_to_string(edge.dir().join("access.log")).unwrap();
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "one line per request:\n{text}");
    // Either may be written first.
    lines.sort_by_key(|l| l["cache"] != "MISS");
    assert_eq!(lines[0]["cache"], "MISS");
    assert_eq!(lines[0]["upstream"], origin.addr.to_string());
    assert_eq!(lines[0]["upstream_status"], 200);
    assert_eq!(lines[1]["cache"], "HIT");
    assert_eq!(lines[1]["upstream"], serde_json::Value::Null);
    for l in &mut lines {
        let l = l.as_object_mut().unwrap();
        for varies in [
            "ts",
            "ms",
            "ttfb_ms",
            "cache",
            "upstream",
            "upstream_status",
            "request_id",
        ] {
            assert!(l.remove(varies).is_some(), "{varies}");
        }
    }
    assert_eq!(lines[0], lines[1], "the same fields from both paths");
    assert_eq!(lines[0]["bytes"], PLAYLIST.len());
    assert_eq!(lines[0]["user_agent"], "p/1");
}
