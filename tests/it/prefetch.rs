//! Next-segment prefetch (`[[prefetch]]`, issue 16 item 6): a player's request for segment N
//! of a media playlist the edge fetched makes the edge fetch N+1..N+k into the cache, so the
//! player's next requests are hits and the origin is asked once per segment; on both request
//! paths (a front hit and the pipeline), for VOD and live playlists; bounded; stopped by an
//! origin error, which is never stored; off by default.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::support::{bytes_of, client, Edge, Origin, Route};

const SEG_LEN: usize = 64 * 1024;

fn origins(origin: std::net::SocketAddr) -> String {
    format!(
        "[[origins]]\nname = \"test\"\nnodes = [{{ addr = \"{origin}\" }}]\nconnect_timeout = \"1s\"\nread_timeout = \"5s\"\n"
    )
}

fn rule(extra: &str) -> String {
    format!("[[prefetch]]\nprefix = \"/vod/\"\n{extra}\n")
}

fn segment_body(i: u64) -> Bytes {
    Bytes::from(bytes_of(SEG_LEN, 100 + i))
}

fn segment(i: u64) -> Route {
    Route::ok(segment_body(i)).header("cache-control", "max-age=600")
}

/// A VOD media playlist of `n` segments `seg_<i>.ts` next to it, served with its segments.
fn vod(origin: &Origin, n: u64, seg: impl Fn(u64) -> Route) {
    let mut text = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n");
    for i in 0..n {
        text.push_str(&format!("#EXTINF:2.0,\nseg_{i}.ts\n"));
        origin.route(&format!("/vod/t/seg_{i}.ts"), seg(i));
    }
    text.push_str("#EXT-X-ENDLIST\n");
    origin.route(
        "/vod/t/index.m3u8",
        Route::ok(text)
            .header("content-type", "application/vnd.apple.mpegurl")
            .header("cache-control", "max-age=600"),
    );
}

fn seg_path(i: u64) -> String {
    format!("/vod/t/seg_{i}.ts")
}

/// Wait (at most 5 s) until the origin was asked for `path` `n` times.
async fn await_hits(origin: &Origin, path: &str, n: usize) {
    for _ in 0..250 {
        if origin.hits(path) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{path} was asked {} times, not {n}", origin.hits(path));
}

async fn stored(edge: &Edge, n: f64) {
    edge.await_metric("edge_prefetch_total{result=\"stored\"}", n)
        .await;
}

/// Segment 1 asked: 2 and 3 reach the origin once each, become hits, and are counted
/// stored and used; the hit on 2 prefetches 4. The same on an edge whose every request
/// runs the pipeline (`fast_hits = false`): there the hits are pipeline hits.
#[tokio::test]
async fn the_next_segments_are_fetched_once_and_hit() {
    for server_extra in ["", "fast_hits = false"] {
        let origin = Origin::start().await;
        vod(&origin, 8, segment);
        let cfg = format!("{}{}", origins(origin.addr), rule("segments = 2"));
        let edge = Edge::start_with_config(&cfg, server_extra).await;
        let (x, _) = edge.get_cached("/vod/t/index.m3u8").await;
        assert_eq!(x, "MISS");
        let (x, body) = edge.get_cached(&seg_path(1)).await;
        assert_eq!((x.as_str(), body), ("MISS", segment_body(1).to_vec()));
        stored(&edge, 2.0).await;
        for i in [2, 3] {
            assert_eq!(origin.hits(&seg_path(i)), 1, "{server_extra}: segment {i}");
        }
        for i in [2, 3] {
            let (x, body) = edge.get_cached(&seg_path(i)).await;
            assert_eq!(x, "HIT", "{server_extra}: segment {i}");
            assert_eq!(body, segment_body(i).to_vec());
        }
        // Asked 2 (a hit): 3 is there, 4 is fetched; asked 3: 5.
        stored(&edge, 4.0).await;
        for i in 1..=5 {
            assert_eq!(origin.hits(&seg_path(i)), 1, "{server_extra}: segment {i}");
        }
        assert_eq!(origin.hits(&seg_path(0)), 0);
        assert_eq!(origin.hits(&seg_path(6)), 0, "never more than k ahead");
        assert_eq!(
            edge.metric("edge_prefetch_total{result=\"used\"}").await,
            2.0
        );
        assert_eq!(
            edge.metric("edge_prefetch_bytes_total").await,
            4.0 * SEG_LEN as f64
        );
        assert_eq!(
            edge.metric("edge_prefetch_total{result=\"cancelled\"}")
                .await,
            0.0
        );
        // Prefetched objects were stored memory-only: the disk tier has room, so every
        // other object went to disk at once, and only the two prefetched objects a player
        // asked for were promoted to disk by that request (4 and 5 were not).
        assert_eq!(
            edge.metric("edge_cache_promoted_total").await,
            2.0,
            "{server_extra}"
        );
    }
}

/// Without a `[[prefetch]]` rule the origin sees exactly what players ask for.
#[tokio::test]
async fn off_by_default() {
    let origin = Origin::start().await;
    vod(&origin, 4, segment);
    let edge = Edge::start(origin.addr, "").await;
    edge.get_cached("/vod/t/index.m3u8").await;
    edge.get_cached(&seg_path(1)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(origin.total_hits(), 2);
    assert_eq!(
        edge.metric("edge_prefetch_total{result=\"started\"}").await,
        0.0
    );
}

/// A player asking for a segment being prefetched joins that fill: one origin request.
#[tokio::test]
async fn a_player_arriving_mid_prefetch_joins_it() {
    let origin = Origin::start().await;
    vod(&origin, 4, |i| {
        if i == 1 {
            segment(i).delay(Duration::from_secs(3))
        } else {
            segment(i)
        }
    });
    let cfg = format!("{}{}", origins(origin.addr), rule("segments = 1"));
    let edge = Edge::start_with_config(&cfg, "").await;
    edge.get_cached("/vod/t/index.m3u8").await;
    edge.get_cached(&seg_path(0)).await;
    await_hits(&origin, &seg_path(1), 1).await;
    let (_, body) = edge.get_cached(&seg_path(1)).await;
    assert_eq!(body, segment_body(1).to_vec());
    assert_eq!(origin.hits(&seg_path(1)), 1);
    edge.await_metric("edge_cache_coalesced_total", 1.0).await;
    assert_eq!(
        edge.metric("edge_cache_coalesced_total").await,
        1.0,
        "the player waited on the prefetch's fill"
    );
    assert_eq!(
        edge.metric("edge_prefetch_total{result=\"used\"}").await,
        1.0
    );
}

/// The origin answers the prefetch of segment 2 with a cacheable 404: it is not stored
/// (the player's own request goes to the origin), and prefetch stops for the rendition for
/// its `pause`.
#[tokio::test]
async fn an_origin_error_stops_prefetch_and_is_not_stored() {
    let origin = Origin::start().await;
    vod(&origin, 6, |i| {
        if i == 2 {
            Route::ok("gone")
                .status(404)
                .header("cache-control", "max-age=600")
        } else {
            segment(i)
        }
    });
    let cfg = format!(
        "{}{}",
        origins(origin.addr),
        rule("segments = 1\npause = \"1m\"")
    );
    let edge = Edge::start_with_config(&cfg, "").await;
    edge.get_cached("/vod/t/index.m3u8").await;
    edge.get_cached(&seg_path(1)).await;
    edge.await_metric("edge_prefetch_total{result=\"cancelled\"}", 1.0)
        .await;
    assert_eq!(origin.hits(&seg_path(2)), 1);
    let r = client().get(edge.url(&seg_path(2))).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        origin.hits(&seg_path(2)),
        2,
        "the prefetch's 404 was not stored"
    );
    // Paused: asking 2 and 3 prefetches neither 3 nor 4.
    edge.get_cached(&seg_path(3)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        origin.hits(&seg_path(3)),
        1,
        "3 was the player's own request"
    );
    assert_eq!(origin.hits(&seg_path(4)), 0);
    assert_eq!(
        edge.metric("edge_prefetch_total{result=\"stored\"}").await,
        0.0
    );
}

/// With `concurrency = 2` and `segments = 4`, one request starts two prefetches (the rest
/// are counted busy), and the origin never has more than two of them at once.
#[tokio::test]
async fn bounds_hold() {
    let origin = Origin::start().await;
    let delay = Duration::from_millis(600);
    vod(&origin, 8, |i| segment(i).delay(delay));
    let cfg = format!(
        "{}{}",
        origins(origin.addr),
        rule("segments = 4\nconcurrency = 2")
    );
    let edge = Edge::start_with_config(&cfg, "").await;
    edge.get_cached("/vod/t/index.m3u8").await;
    edge.get_cached(&seg_path(0)).await;
    stored(&edge, 2.0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let prefetched: Vec<Instant> = origin
        .requests()
        .iter()
        .filter(|r| r.target.starts_with("/vod/t/seg_") && r.target != seg_path(0))
        .map(|r| r.at)
        .collect();
    assert_eq!(prefetched.len(), 2, "two of the four started");
    assert!(edge.metric("edge_prefetch_total{result=\"busy\"}").await >= 1.0);
    // At most two answers pending at the origin at any time.
    for a in &prefetched {
        let overlapping = prefetched
            .iter()
            .filter(|b| **b <= *a && *a < **b + delay)
            .count();
        assert!(overlapping <= 2);
    }
}

/// A live playlist: its segments are followed across a refresh of the playlist.
#[tokio::test]
async fn live_playlist() {
    let origin = Origin::start().await;
    let live = |first: u64| {
        let mut text = format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
        );
        for i in first..first + 3 {
            text.push_str(&format!("#EXTINF:2.0,\n{i}.ts\n"));
        }
        Route::ok(text)
            .header("content-type", "application/vnd.apple.mpegurl")
            .header("cache-control", "max-age=1")
    };
    for i in 100..110 {
        origin.route(&format!("/vod/live/{i}.ts"), segment(i));
    }
    origin.route("/vod/live/index.m3u8", live(100));
    let cfg = format!("{}{}", origins(origin.addr), rule("segments = 1"));
    let edge = Edge::start_with_config(&cfg, "").await;
    edge.get_cached("/vod/live/index.m3u8").await;
    edge.get_cached("/vod/live/101.ts").await;
    await_hits(&origin, "/vod/live/102.ts", 1).await;
    assert_eq!(
        origin.hits("/vod/live/103.ts"),
        0,
        "not in the playlist yet"
    );
    // The encoder moves on; the player reloads the playlist once it expired.
    origin.route("/vod/live/index.m3u8", live(101));
    // (Its lifetime is the edge's live rule's, and a stale copy may answer while it is
    // fetched again: ask until the origin was asked.)
    for _ in 0..50 {
        if origin.hits("/vod/live/index.m3u8") >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        edge.get_cached("/vod/live/index.m3u8").await;
    }
    assert_eq!(origin.hits("/vod/live/index.m3u8"), 2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (x, body) = edge.get_cached("/vod/live/102.ts").await;
    assert_eq!((x.as_str(), body), ("HIT", segment_body(102).to_vec()));
    await_hits(&origin, "/vod/live/103.ts", 1).await;
    stored(&edge, 2.0).await;
    assert_eq!(origin.hits("/vod/live/102.ts"), 1);
}

/// With query tokens, a prefetch is admitted as the player's next request: it carries the
/// player's token (so it has the key the player's request will have, and the origin is
/// asked without the token), and a token that does not cover the next segment prefetches
/// nothing.
#[tokio::test]
async fn a_prefetch_is_admitted_with_the_players_token() {
    use edge::token::{self, Claims, Keyring};
    const KEY: [u8; 32] = [0x42; 32];
    let origin = Origin::start().await;
    vod(&origin, 6, segment);
    let keys = tempfile::tempdir().unwrap();
    let hex: String = KEY.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(keys.path().join("k.key"), hex).unwrap();
    let cfg = format!(
        "{}[tokens]\nrequired = true\ncurrent = \"k\"\nmax_ttl = \"1h\"\nkeys = [{{ id = \"k\", secret_file = \"{}/k.key\" }}]\n{}",
        origins(origin.addr),
        keys.path().display(),
        rule("segments = 1")
    );
    let edge = Edge::start_with_config(&cfg, "").await;
    let ring = Keyring::new([("k", KEY)], "k").unwrap();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let grant = |acl: &str| token::sign(&ring, &Claims::new(acl, exp)).unwrap();
    let title = grant("/vod/t/");
    let (_, playlist) = edge
        .get_cached(&format!("/vod/t/index.m3u8?token={title}"))
        .await;
    assert!(String::from_utf8(playlist)
        .unwrap()
        .contains(&format!("seg_1.ts?token={title}")));
    edge.get_cached(&format!("{}?token={title}", seg_path(1)))
        .await;
    stored(&edge, 1.0).await;
    let asked = origin.requests();
    let seg2 = asked
        .iter()
        .find(|r| r.target.starts_with(&seg_path(2)))
        .expect("segment 2 prefetched");
    assert_eq!(
        seg2.target,
        seg_path(2),
        "the origin is asked without the token"
    );
    let (x, body) = edge
        .get_cached(&format!("{}?token={title}", seg_path(2)))
        .await;
    assert_eq!((x.as_str(), body), ("HIT", segment_body(2).to_vec()));
    // Without a token the prefetched segment is refused like any other object.
    let r = client().get(edge.url(&seg_path(3))).send().await.unwrap();
    assert_eq!(r.status(), 403);
    // A token for segment 4 alone: 5 is not prefetched.
    let one = grant(&seg_path(4));
    edge.get_cached(&format!("{}?token={one}", seg_path(4)))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        origin.hits(&seg_path(5)),
        0,
        "the gate refused the prefetch"
    );
}

/// Over HTTP/2 (TLS), where every request runs the pipeline, a segment request prefetches the
/// next one too, and its request then is a hit.
#[tokio::test]
async fn over_http2() {
    let origin = Origin::start().await;
    vod(&origin, 4, segment);
    let dir = tempfile::tempdir().unwrap();
    edge::tls::certs::generate_dev(dir.path(), &["a.test".into()]).unwrap();
    let https: std::net::SocketAddr = format!("127.0.0.1:{}", crate::support::free_port())
        .parse()
        .unwrap();
    let d = dir.path().display();
    let cfg = format!(
        "[tls]\ncerts = [{{ cert = \"{d}/edge.pem\", key = \"{d}/edge-key.pem\" }}]\n{}{}",
        origins(origin.addr),
        rule("segments = 1")
    );
    let edge = Edge::start_with_config(&cfg, &format!("https = \"{https}\"\n")).await;
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(dir.path().join("edge-dev-ca.pem")).unwrap())
            .unwrap();
    let h2 = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .resolve("a.test", https)
        .build()
        .unwrap();
    let get = |path: String| {
        let h2 = h2.clone();
        async move {
            let r = h2
                .get(format!("https://a.test:{}{path}", https.port()))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.version(), reqwest::Version::HTTP_2);
            let x = r.headers()["x-cache"].to_str().unwrap().to_string();
            (x, r.bytes().await.unwrap().to_vec())
        }
    };
    get("/vod/t/index.m3u8".to_string()).await;
    get(seg_path(1)).await;
    stored(&edge, 1.0).await;
    let (x, body) = get(seg_path(2)).await;
    assert_eq!((x.as_str(), body), ("HIT", segment_body(2).to_vec()));
    assert_eq!(origin.hits(&seg_path(2)), 1);
}
