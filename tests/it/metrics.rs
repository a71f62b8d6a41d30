//! The per-listener, per-node and per-cache-status metrics against what really happened on
//! the sockets: connections a client holds open, requests and bytes two real origins saw,
//! bytes a client received. Every wait is bounded.

use std::net::SocketAddr;
use std::time::Duration;

use edge::tls::certs::generate_dev;
use tokio::net::TcpStream;

use crate::support::{bytes_of, client, free_port, Edge, Origin, Route};

fn open(listener: &str) -> String {
    format!("edge_open_connections{{listener=\"{listener}\"}}")
}

fn accepted(listener: &str) -> String {
    format!("edge_connections_accepted_total{{listener=\"{listener}\"}}")
}

/// Wait (at most 5 s) until the three listeners' open gauges read `want` (http, https, admin).
/// The scrape itself is one open admin connection.
async fn await_open(edge: &Edge, want: [f64; 3]) {
    let mut seen = [f64::NAN; 3];
    for _ in 0..100 {
        let text = edge.metrics().await;
        seen =
            ["http", "https", "admin"].map(|l| crate::support::edge::metric_value(&text, &open(l)));
        if seen == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("open connections (http, https, admin) are {seen:?} after 5 s, want {want:?}");
}

/// An HTTP/1 client over TLS trusting the dev CA in `dir`, with one pooled connection.
fn https_client(dir: &std::path::Path) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.join("edge-dev-ca.pem")).unwrap())
        .unwrap();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .http1_only()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap()
}

#[tokio::test]
async fn open_connections_are_counted_per_listener_until_they_close() {
    let origin = Origin::start().await;
    origin.route(
        "/v/a.ts",
        Route::ok("a").header("cache-control", "max-age=60"),
    );
    let certs = tempfile::tempdir().unwrap();
    generate_dev(certs.path(), &["127.0.0.1".into()]).unwrap();
    let https: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let d = certs.path().display();
    let cfg = format!(
        "[tls]\ncerts = [{{ cert = \"{d}/edge.pem\", key = \"{d}/edge-key.pem\" }}]\n\
         [[origins]]\nname = \"o\"\nnodes = [{{ addr = \"{}\" }}]\n",
        origin.addr
    );
    let edge = Edge::start_with_config(&cfg, &format!("https = \"{https}\"\n")).await;
    await_open(&edge, [0.0, 0.0, 1.0]).await;
    let before = edge.metrics().await;
    let accepted_before = ["http", "https", "admin"]
        .map(|l| crate::support::edge::metric_value(&before, &accepted(l)));

    // 3 plain connections that send nothing, 1 kept alive after a request (HTTP/1 front
    // hit), 2 TLS connections kept alive after a request each, 2 idle admin connections.
    let mut plain = Vec::new();
    for _ in 0..3 {
        plain.push(TcpStream::connect(edge.http).await.unwrap());
    }
    let kept = client();
    for _ in 0..2 {
        let r = kept.get(edge.url("/v/a.ts")).send().await.unwrap();
        assert_eq!(r.bytes().await.unwrap().as_ref(), b"a");
    }
    let tls: Vec<reqwest::Client> = (0..2).map(|_| https_client(certs.path())).collect();
    for c in &tls {
        let r = c
            .get(format!("https://127.0.0.1:{}/v/a.ts", https.port()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.bytes().await.unwrap().as_ref(), b"a");
    }
    let mut admin = Vec::new();
    for _ in 0..2 {
        admin.push(TcpStream::connect(edge.admin).await.unwrap());
    }
    await_open(&edge, [4.0, 2.0, 3.0]).await;
    let during = edge.metrics().await;
    let counted = ["http", "https", "admin"]
        .map(|l| crate::support::edge::metric_value(&during, &accepted(l)));
    assert_eq!(counted[0] - accepted_before[0], 4.0, "http accepted");
    assert_eq!(counted[1] - accepted_before[1], 2.0, "https accepted");
    // The admin connections held, plus the scrapes in between (one connection each).
    assert!(counted[2] - accepted_before[2] >= 2.0, "admin accepted");

    // Closed one kind at a time: each listener goes back to its baseline.
    drop(tls);
    await_open(&edge, [4.0, 0.0, 3.0]).await;
    drop(plain);
    drop(kept);
    await_open(&edge, [0.0, 0.0, 3.0]).await;
    drop(admin);
    await_open(&edge, [0.0, 0.0, 1.0]).await;
}

/// A connection refused at a cap is counted as accepted and leaves nothing counted open.
#[tokio::test]
async fn a_connection_refused_at_a_cap_is_not_left_open() {
    let origin = Origin::start().await;
    origin.route("/v/a.ts", Route::ok("a"));
    let cfg = format!(
        "[[origins]]\nname = \"o\"\nnodes = [{{ addr = \"{}\" }}]\n",
        origin.addr
    );
    let edge = Edge::start_with_config(&cfg, "max_connections_per_ip = 1").await;
    let held = TcpStream::connect(edge.http).await.unwrap();
    await_open(&edge, [1.0, 0.0, 1.0]).await;
    let before = edge.metric(&accepted("http")).await;
    let mut refused = Vec::new();
    for _ in 0..5 {
        refused.push(TcpStream::connect(edge.http).await.unwrap());
    }
    for _ in 0..100 {
        if edge.metric(&accepted("http")).await == before + 5.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(edge.metric(&accepted("http")).await, before + 5.0);
    assert_eq!(
        edge.metric(r#"edge_connection_limits_total{limit="max_connections_per_ip"}"#)
            .await,
        5.0
    );
    await_open(&edge, [1.0, 0.0, 1.0]).await;
    drop(refused);
    drop(held);
    await_open(&edge, [0.0, 0.0, 1.0]).await;
}

fn node(metric: &str, pool: &str, addr: SocketAddr) -> String {
    format!("{metric}{{pool=\"{pool}\",node=\"{addr}\"}}")
}

/// Two nodes in one pool, objects hashed to each: every node's answer-time count and body
/// bytes received are what that origin served; bytes sent by cache status are what the
/// client received, for the misses and then the hits.
#[tokio::test]
async fn upstream_time_and_bytes_per_node_and_bytes_by_cache_status() {
    let a = Origin::start().await;
    let b = Origin::start().await;
    let paths: Vec<(String, usize)> = (0..16)
        .map(|i| (format!("/v/seg{i}.ts"), 1000 + i * 377))
        .collect();
    for (i, (path, len)) in paths.iter().enumerate() {
        for o in [&a, &b] {
            o.route(
                path,
                Route::ok(bytes_of(*len, i as u64)).header("cache-control", "max-age=60"),
            );
        }
    }
    let cfg = format!(
        "[[origins]]\nname = \"p\"\nnodes = [{{ addr = \"{}\" }}, {{ addr = \"{}\" }}]\n",
        a.addr, b.addr
    );
    let edge = Edge::start_with_config(&cfg, "").await;
    // Exported at zero before the first request.
    let text = edge.metrics().await;
    for o in [&a, &b] {
        for m in [
            "edge_upstream_response_seconds_count",
            "edge_upstream_received_bytes_total",
        ] {
            let zero = text.lines().any(|l| {
                l.starts_with(m) && l.contains(&format!("node=\"{}\"", o.addr)) && l.ends_with(" 0")
            });
            assert!(zero, "{m} for {} exported at 0:\n{text}", o.addr);
        }
    }

    let c = client();
    let mut received = 0;
    for (path, len) in &paths {
        let r = c.get(edge.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-cache"], "MISS");
        let body = r.bytes().await.unwrap();
        assert_eq!(body.len(), *len);
        received += body.len();
    }
    for o in [&a, &b] {
        let hits: Vec<usize> = paths
            .iter()
            .filter(|(p, _)| o.hits(p) == 1)
            .map(|(_, len)| *len)
            .collect();
        assert!(!hits.is_empty(), "the ring put objects on both nodes");
        assert_eq!(o.total_hits(), hits.len());
        let count = node("edge_upstream_response_seconds_count", "p", o.addr);
        let bytes = node("edge_upstream_received_bytes_total", "p", o.addr);
        edge.await_metric(&count, hits.len() as f64).await;
        assert_eq!(edge.metric(&count).await, hits.len() as f64, "{count}");
        assert_eq!(
            edge.metric(&bytes).await,
            hits.iter().sum::<usize>() as f64,
            "{bytes}"
        );
        let inf = format!(
            "edge_upstream_response_seconds_bucket{{pool=\"p\",node=\"{}\",le=\"+Inf\"}}",
            o.addr
        );
        assert_eq!(edge.metric(&inf).await, hits.len() as f64);
    }
    let sent_miss = r#"edge_response_bytes_total{cache="MISS"}"#;
    edge.await_metric(sent_miss, received as f64).await;
    assert_eq!(edge.metric(sent_miss).await, received as f64);

    // The hits: answered from the cache, nothing more from the origins.
    let mut hit_bytes = 0;
    for (path, len) in paths.iter().take(4) {
        let r = c.get(edge.url(path)).send().await.unwrap();
        assert_eq!(r.headers()["x-cache"], "HIT");
        let body = r.bytes().await.unwrap();
        assert_eq!(body.len(), *len);
        hit_bytes += body.len();
    }
    let sent_hit = r#"edge_response_bytes_total{cache="HIT"}"#;
    edge.await_metric(sent_hit, hit_bytes as f64).await;
    assert_eq!(edge.metric(sent_hit).await, hit_bytes as f64);
    assert_eq!(edge.metric(sent_miss).await, received as f64);
    assert_eq!(a.total_hits() + b.total_hits(), paths.len());
    for o in [&a, &b] {
        let count = node("edge_upstream_response_seconds_count", "p", o.addr);
        assert_eq!(
            edge.metric(&count).await,
            o.total_hits() as f64,
            "hits add nothing"
        );
    }
}
