//! CMCD analytics (CTA-5004): what players send in the `CMCD` query parameter and the
//! `CMCD-*` fields moves the `edge_cmcd_*` metrics, labelled by `[cmcd] prefixes` and cache
//! result, on the pipeline (a miss) and the front (a fresh memory hit) alike, and goes into
//! the access log's JSON lines.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::raw::{Conn, Resp};
use crate::support::{Edge, Origin, Route};

async fn get(c: &mut Conn, target: &str, extra: &str) -> Resp {
    c.send(format!("GET {target} HTTP/1.1\r\nHost: edge.test\r\n{extra}\r\n").as_bytes())
        .await;
    c.response(false).await
}

/// The JSON access-log line of request `id` (waiting up to 5 s for it).
async fn log_line(edge: &Edge, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(edge.dir().join("access.log")).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["request_id"] == id)
        {
            return line;
        }
        assert!(Instant::now() < deadline, "no log line {id}:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn cmcd_moves_the_qoe_metrics_on_both_paths_and_goes_into_the_log() {
    let origin = Origin::start().await;
    for p in ["/v/seg.ts", "/w/master.m3u8"] {
        origin.route(
            p,
            Route::ok(format!("object {p}")).header("cache-control", "max-age=60"),
        );
    }
    let edge = Edge::start(
        origin.addr,
        "[cmcd]\nprefixes = [\"/v/\", \"/x/\"]\n[log]\naccess = \"access.log\"\n",
    )
    .await;
    let mut c = Conn::open(edge.http).await;

    // 1. A miss (the pipeline), CMCD in the query as hls.js sends it.
    let admitted = edge.metric("edge_cache_admitted_bytes_total").await;
    let r = get(
        &mut c,
        "/v/seg.ts?CMCD=br%3D800%2Cmtp%3D5000%2Cot%3Dv%2Csid%3D%22s-1%22%2Csu",
        "X-Request-Id: miss-1\r\n",
    )
    .await;
    assert_eq!((r.status, r.header("x-cache")), (200, Some("MISS")));
    edge.await_admitted(admitted).await;

    // 2. A fresh memory hit (the front), CMCD in the four header fields.
    let front = edge.metric("edge_front_hits_total").await;
    let r = get(
        &mut c,
        "/v/seg.ts",
        "X-Request-Id: hit-1\r\nCMCD-Object: br=1600,ot=v\r\nCMCD-Request: mtp=20000\r\nCMCD-Status: bs\r\nCMCD-Session: sid=\"s-1\"\r\n",
    )
    .await;
    assert_eq!((r.status, r.header("x-cache")), (200, Some("HIT")));
    assert_eq!(edge.metric("edge_front_hits_total").await, front + 1.0);

    // 3. Another prefix, not configured: `other`; a manifest.
    let r = get(&mut c, "/w/master.m3u8?CMCD=ot%3Dm%2Csu", "").await;
    assert_eq!(r.status, 200);
    // 4. CMCD that does not parse; 5. none at all.
    let r = get(&mut c, "/v/seg.ts?CMCD=br%3D", "").await;
    assert_eq!((r.status, r.header("x-cache")), (200, Some("HIT")));
    let r = get(&mut c, "/v/seg.ts", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(origin.total_hits(), 2, "CMCD never splits the cache");

    let want = [
        (
            r#"edge_cmcd_requests_total{prefix="/v/",cache="MISS",ot="v"}"#,
            1.0,
        ),
        (
            r#"edge_cmcd_requests_total{prefix="/v/",cache="HIT",ot="v"}"#,
            1.0,
        ),
        (
            r#"edge_cmcd_requests_total{prefix="/v/",cache="HIT",ot="none"}"#,
            1.0,
        ),
        (
            r#"edge_cmcd_requests_total{prefix="other",cache="MISS",ot="m"}"#,
            1.0,
        ),
        (
            r#"edge_cmcd_bitrate_bytes_per_second_count{prefix="/v/",cache="MISS"}"#,
            1.0,
        ),
        (
            r#"edge_cmcd_bitrate_bytes_per_second_sum{prefix="/v/",cache="MISS"}"#,
            100e3,
        ),
        (
            r#"edge_cmcd_bitrate_bytes_per_second_bucket{prefix="/v/",cache="MISS",le="100000"}"#,
            1.0,
        ),
        (
            r#"edge_cmcd_bitrate_bytes_per_second_bucket{prefix="/v/",cache="MISS",le="50000"}"#,
            0.0,
        ),
        (
            r#"edge_cmcd_bitrate_bytes_per_second_sum{prefix="/v/",cache="HIT"}"#,
            200e3,
        ),
        (
            r#"edge_cmcd_throughput_bytes_per_second_sum{prefix="/v/",cache="MISS"}"#,
            625e3,
        ),
        (
            r#"edge_cmcd_throughput_bytes_per_second_sum{prefix="/v/",cache="HIT"}"#,
            2.5e6,
        ),
        (r#"edge_cmcd_startup_total{prefix="/v/",cache="MISS"}"#, 1.0),
        (r#"edge_cmcd_startup_total{prefix="/v/",cache="HIT"}"#, 0.0),
        (
            r#"edge_cmcd_startup_total{prefix="other",cache="MISS"}"#,
            1.0,
        ),
        (
            r#"edge_cmcd_buffer_starvation_total{prefix="/v/",cache="HIT"}"#,
            1.0,
        ),
        (
            r#"edge_cmcd_buffer_starvation_total{prefix="/v/",cache="MISS"}"#,
            0.0,
        ),
        (r#"edge_cmcd_malformed_total{prefix="/v/"}"#, 1.0),
    ];
    // Requests are counted when their logging phase runs, a moment after the answer.
    edge.await_metric(want[2].0, 1.0).await;
    let text = edge.metrics().await;
    for (sample, value) in want {
        assert_eq!(
            crate::support::edge::metric_value(&text, sample),
            value,
            "{sample}"
        );
    }
    let total: f64 = text
        .lines()
        .filter(|l| l.starts_with("edge_cmcd_requests_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(total, 4.0, "the request without CMCD is not counted");

    let miss = log_line(&edge, "miss-1").await;
    assert_eq!(
        miss["cmcd"],
        serde_json::json!({"br": 800, "mtp": 5000, "ot": "v", "sid": "s-1", "su": true})
    );
    let hit = log_line(&edge, "hit-1").await;
    assert_eq!(hit["cache"], "HIT");
    assert_eq!(
        hit["cmcd"],
        serde_json::json!({"br": 1600, "bs": true, "mtp": 20000, "ot": "v", "sid": "s-1"})
    );
}
