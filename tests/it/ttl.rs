//! Freshness policy for video: live and VOD playlists, origin headers, negative caching.

use std::time::Duration;

use crate::support::{client, Edge, Origin, Route};

const LIVE: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:2.0,\nseg7.ts\n#EXTINF:2.0,\nseg8.ts\n";
const VOD: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:2.0,\nseg0.ts\n#EXT-X-ENDLIST\n";
const M3U8: &str = "application/vnd.apple.mpegurl";

/// An edge without stale serving, so an expired object is refetched in the foreground.
async fn edge_without_stale(origin: &Origin) -> Edge {
    let cfg = format!(
        "[[origins]]\nname = \"test\"\nnodes = [{{ addr = \"{}\" }}]\n",
        origin.addr
    );
    Edge::start_with_config_cache(
        &cfg,
        "stale_while_revalidate = \"0s\"\nstale_if_error = \"0s\"\nnegative_ttl = \"1s\"\n",
    )
    .await
}

#[tokio::test]
async fn live_playlist_is_fresh_for_half_its_target_duration() {
    let origin = Origin::start().await;
    origin.route(
        "/live/ch1/index.m3u8",
        Route::ok(LIVE).header("content-type", M3U8),
    );
    let edge = edge_without_stale(&origin).await;
    let c = client();
    let get = || c.get(edge.url("/live/ch1/index.m3u8")).send();
    assert_eq!(get().await.unwrap().headers()["x-cache"], "MISS");
    assert_eq!(get().await.unwrap().headers()["x-cache"], "HIT");
    assert_eq!(origin.hits("/live/ch1/index.m3u8"), 1);
    // TARGETDURATION 2 s × 0.5 = 1 s.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let r = get().await.unwrap();
    assert_ne!(r.headers()["x-cache"], "HIT");
    assert_eq!(r.text().await.unwrap(), LIVE);
    assert_eq!(origin.hits("/live/ch1/index.m3u8"), 2);
}

#[tokio::test]
async fn vod_playlist_and_segments_stay_fresh() {
    let origin = Origin::start().await;
    origin.route(
        "/v/t/index.m3u8",
        Route::ok(VOD).header("content-type", M3U8),
    );
    origin.route("/v/t/seg0.ts", Route::ok(vec![1u8; 1000]));
    let edge = edge_without_stale(&origin).await;
    let c = client();
    for p in ["/v/t/index.m3u8", "/v/t/seg0.ts"] {
        c.get(edge.url(p))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for p in ["/v/t/index.m3u8", "/v/t/seg0.ts"] {
        let r = c.get(edge.url(p)).send().await.unwrap();
        assert_eq!(r.headers()["x-cache"], "HIT", "{p}");
        assert_eq!(origin.hits(p), 1, "{p}");
    }
}

#[tokio::test]
async fn origin_cache_control_wins_and_rules_apply() {
    let origin = Origin::start().await;
    origin.route(
        "/v/short.ts",
        Route::ok("s").header("cache-control", "max-age=1"),
    );
    origin.route("/live/x.ts", Route::ok("x"));
    origin.route(
        "/forced/y.ts",
        Route::ok("y").header("cache-control", "max-age=3600"),
    );
    let rules = "[[cache.rules]]\nprefix = \"/live/\"\nttl = \"1s\"\n[[cache.rules]]\nprefix = \"/forced/\"\nttl = \"1s\"\noverride_origin = true\n";
    let edge = Edge::start_with_config_cache(
        &format!(
            "[[origins]]\nname = \"test\"\nnodes = [{{ addr = \"{}\" }}]\n",
            origin.addr
        ),
        &format!("stale_while_revalidate = \"0s\"\nstale_if_error = \"0s\"\n{rules}"),
    )
    .await;
    let c = client();
    for _ in 0..2 {
        for p in ["/v/short.ts", "/live/x.ts", "/forced/y.ts"] {
            c.get(edge.url(p))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for p in ["/v/short.ts", "/live/x.ts", "/forced/y.ts"] {
        c.get(edge.url(p))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            origin.hits(p),
            2,
            "{p}: one fetch, one hit, then expired after 1 s"
        );
    }
}

#[tokio::test]
async fn not_found_is_cached_briefly() {
    let origin = Origin::start().await;
    let edge = edge_without_stale(&origin).await;
    let c = client();
    for _ in 0..3 {
        assert_eq!(
            c.get(edge.url("/v/missing.ts"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
    }
    assert_eq!(origin.hits("/v/missing.ts"), 1);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        c.get(edge.url("/v/missing.ts"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(origin.hits("/v/missing.ts"), 2);
}
