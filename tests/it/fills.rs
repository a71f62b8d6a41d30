//! Streamed fills and never-truncated objects.

use std::time::{Duration, Instant};

use crate::support::{bytes_of, client, Edge, Origin, Route};

#[tokio::test]
async fn fifty_waiters_stream_a_slow_fill_as_it_arrives() {
    let origin = Origin::start().await;
    let body = bytes_of(4 * 1024 * 1024, 40);
    // The origin sends 4 MiB in 20 chunks over 2 s.
    origin.route("/v/slow4m.ts", Route::ok(body.clone()).paced(20, Duration::from_secs(2)));
    let edge = Edge::start(origin.addr, "").await;
    let c = client();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let c = c.clone();
        let url = edge.url("/v/slow4m.ts");
        tasks.push(tokio::spawn(async move {
            let mut r = c.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let mut got = Vec::new();
            let first = r.chunk().await.unwrap().expect("a first chunk");
            let first_at = start.elapsed();
            got.extend_from_slice(&first);
            while let Some(chunk) = r.chunk().await.unwrap() {
                got.extend_from_slice(&chunk);
            }
            (first_at, start.elapsed(), got)
        }));
    }
    let mut worst_first = Duration::ZERO;
    let mut worst_done = Duration::ZERO;
    for t in tasks {
        let (first_at, done_at, got) = t.await.unwrap();
        assert!(got == body, "byte-identical bodies");
        worst_first = worst_first.max(first_at);
        worst_done = worst_done.max(done_at);
    }
    let seen: Vec<_> = origin.requests().iter().map(|r| (r.at.duration_since(start), r.headers.clone())).collect();
    assert_eq!(origin.hits("/v/slow4m.ts"), 1, "origin requests: {seen:?}\n{}", edge.log());
    // The origin needs ~1.9 s from its first to its last chunk: every client had bytes long before.
    assert!(worst_first < Duration::from_millis(1200), "slowest first byte at {worst_first:?}");
    assert!(worst_done < Duration::from_secs(5), "slowest client done at {worst_done:?}");
    eprintln!("streamed fill: slowest first byte {worst_first:?}, slowest complete {worst_done:?}");
}

/// Start `waiters` clients on `path` while the origin fails mid-body; each must see an error
/// (never a clean short 200); then the origin heals and the next request refetches in full.
async fn failure_mode(route: Route) {
    let origin = Origin::start().await;
    let body = route.body.clone();
    origin.route("/v/fail.ts", route.clone());
    let edge = Edge::start(origin.addr, "").await;
    let c = client();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let c = c.clone();
        let url = edge.url("/v/fail.ts");
        tasks.push(tokio::spawn(async move {
            match c.get(url).send().await {
                Ok(r) if r.status() == 200 => r.bytes().await.map(|b| b.len()).map_err(|_| ()),
                Ok(r) => {
                    assert!(r.status().is_server_error(), "status {}", r.status());
                    Err(())
                }
                Err(_) => Err(()),
            }
        }));
    }
    for t in tasks {
        if let Ok(len) = t.await.unwrap() {
            panic!("a client got a clean response of {len} bytes (full body is {})", body.len());
        }
    }
    let mut healed = route;
    healed.cut_after = None;
    healed.reset_after = None;
    healed.stall_after = None;
    origin.route("/v/fail.ts", healed);
    let r = c.get(edge.url("/v/fail.ts")).send().await.unwrap();
    assert_eq!(r.headers()["x-cache"], "MISS", "nothing was stored");
    assert!(r.bytes().await.unwrap() == body);
    assert!(edge.metric("edge_cache_fill_failures_total").await >= 1.0);
}

#[tokio::test]
async fn connection_closed_mid_body_is_never_stored() {
    let route = Route::ok(bytes_of(600_000, 41)).delay(Duration::from_millis(200)).paced(6, Duration::from_millis(300)).cut_after(250_000);
    failure_mode(route).await;
}

#[tokio::test]
async fn connection_reset_mid_body_is_never_stored() {
    let route = Route::ok(bytes_of(600_000, 42)).delay(Duration::from_millis(200)).paced(6, Duration::from_millis(300)).reset_after(250_000);
    failure_mode(route).await;
}

#[tokio::test]
async fn origin_stalling_mid_body_times_out_and_is_never_stored() {
    let route = Route::ok(bytes_of(600_000, 43)).delay(Duration::from_millis(200)).stall_after(250_000);
    // A 1 s read timeout for this pool: the stall becomes an error quickly.
    let origin_cfg = |addr| {
        format!("[[origins]]\nname = \"test\"\nnodes = [{{ addr = \"{addr}\" }}]\nconnect_timeout = \"1s\"\nread_timeout = \"1s\"\n")
    };
    let origin = Origin::start().await;
    let body = route.body.clone();
    origin.route("/v/fail.ts", route);
    let edge = Edge::start_with_config(&origin_cfg(origin.addr), "").await;
    let c = client();
    let t0 = Instant::now();
    let r = c.get(edge.url("/v/fail.ts")).send().await.unwrap();
    assert!(r.bytes().await.is_err(), "a stalled fill ends in an error, not a short body");
    assert!(t0.elapsed() < Duration::from_secs(5), "took {:?}", t0.elapsed());
    origin.route("/v/fail.ts", Route::ok(body.clone()));
    let r = c.get(edge.url("/v/fail.ts")).send().await.unwrap();
    assert_eq!(r.headers()["x-cache"], "MISS");
    assert!(r.bytes().await.unwrap() == body);
}
