//! The shipped demo: an edge with the embedded demo origin plays the sample title in ffmpeg.

use std::process::Command;

use crate::support::{client, free_port, Edge};

const MEDIA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/media");

async fn demo_edge_with_tokens() -> Edge {
    let root = env!("CARGO_MANIFEST_DIR");
    let cfg = format!(
        "[demo]\nlisten = \"127.0.0.1:{}\"\nmedia = \"{MEDIA}\"\ntitle = \"/demo/ts/master.m3u8\"\n\
         [tokens]\nrequired = true\ncurrent = \"demo\"\nkeys = [{{ id = \"demo\", secret_file = \"{root}/certs/demo-token.TEST-KEY.hex\" }}]\n",
        free_port()
    );
    Edge::start_with_config(&cfg, "").await
}

async fn demo_edge() -> Edge {
    let demo = format!("[demo]\nlisten = \"127.0.0.1:{}\"\nmedia = \"{MEDIA}\"\ntitle = \"/demo/ts/master.m3u8\"\n", free_port());
    Edge::start_with_config(&demo, "").await
}

fn ffmpeg_plays(url: &str) {
    let out = Command::new("ffmpeg")
        .args([
            "-nostdin", "-v", "error", "-i", url, "-map", "0", "-c", "copy", "-f", "null", "-",
        ])
        .output()
        .expect("ffmpeg must be installed (bash .ci/deps test)");
    assert!(
        out.status.success(),
        "ffmpeg failed on {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.trim().is_empty(),
        "ffmpeg reported errors on {url}: {err}"
    );
}

#[tokio::test]
async fn demo_title_plays_through_the_edge_in_ffmpeg() {
    let edge = demo_edge().await;
    let printed = edge.log();
    let url = edge.url("/demo/ts/master.m3u8");
    assert!(
        printed.contains(&format!("edge: play {url}")),
        "start prints the playback URL:\n{printed}"
    );

    let fmp4 = edge.url("/demo/fmp4/master.m3u8");
    let (u1, u2) = (url.clone(), fmp4.clone());
    tokio::task::spawn_blocking(move || {
        ffmpeg_plays(&u1);
        ffmpeg_plays(&u2);
    })
    .await
    .unwrap();
    // ffmpeg asks with `Range: bytes=0-`, so answers are 206 as well as 200.
    let count = |cache: &'static str| {
        let edge = &edge;
        async move {
            let mut n = 0.0;
            for status in ["200", "206"] {
                n += edge
                    .metric(&format!(
                        r#"edge_requests_total{{kind="content",status="{status}",cache="{cache}"}}"#
                    ))
                    .await;
            }
            n
        }
    };
    let misses = count("MISS").await;
    assert!(
        misses >= 10.0,
        "playlists and segments were fetched through the edge: {misses}"
    );

    // A second viewer is served from cache.
    let u1 = url.clone();
    tokio::task::spawn_blocking(move || ffmpeg_plays(&u1))
        .await
        .unwrap();
    let hits = count("HIT").await;
    assert!(hits >= 5.0, "the second play hits the cache: {hits}");

    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/vnd.apple.mpegurl");
    assert!(r.text().await.unwrap().starts_with("#EXTM3U"));
}

#[tokio::test]
async fn the_signed_demo_urls_play_in_both_token_styles() {
    let edge = demo_edge_with_tokens().await;
    let log = edge.log();
    let path_url = log
        .lines()
        .find_map(|l| l.strip_prefix("edge: play "))
        .expect("signed path URL printed")
        .to_string();
    let query_url = log
        .lines()
        .find_map(|l| l.strip_prefix("edge: play (query token) "))
        .expect("signed query URL printed")
        .to_string();
    assert!(path_url.contains("/t/v1.demo."), "{path_url}");
    assert!(
        query_url.contains("master.m3u8?token=v1.demo."),
        "{query_url}"
    );
    // Unsigned, the title is refused.
    let r = client()
        .get(edge.url("/demo/ts/master.m3u8"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    for url in [
        path_url.clone(),
        query_url.clone(),
        query_url.replace("/ts/", "/fmp4/"),
        path_url.replace("/ts/", "/fmp4/"),
    ] {
        tokio::task::spawn_blocking(move || ffmpeg_plays(&url))
            .await
            .unwrap();
    }
    let rejected: f64 = edge
        .metrics()
        .await
        .lines()
        .filter(|l| l.starts_with("edge_token_rejections_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(rejected, 1.0, "only the unsigned request was refused");
}
