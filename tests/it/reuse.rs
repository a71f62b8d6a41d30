//! Upstream keep-alive on real sockets: a pooled connection the origin closes just as the edge
//! reuses it (unanswered, over plain TCP or TLS) is retried once on a fresh connection, never a
//! client error and never a strike against the node; a POST is never replayed; the pool's
//! `idle_timeout` drops connections before the origin does. Against a real Node.js server,
//! behind a link with a real network's latency, requests spaced around its keep-alive close
//! never fail.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{client, Edge, Origin, Route};

/// A one-node pool whose first counted failure ejects the node for 30 s: any strike shows.
fn solo_pool(addr: SocketAddr, extra: &str) -> String {
    format!(
        "[[origins]]\nname = \"solo\"\nnodes = [{{ addr = \"{addr}\" }}]\nconnect_timeout = \"1s\"\nread_timeout = \"5s\"\n\
         passive = {{ max_failures = 1, ejection = \"30s\" }}\n{extra}"
    )
}

/// `/admin/origins` for the only node: (usable, ejected_for_ms).
async fn solo_health(edge: &Edge) -> (bool, u64) {
    let v: serde_json::Value = reqwest::get(edge.admin_url("/admin/origins"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let node = &v["pools"][0]["nodes"][0];
    (
        node["usable"].as_bool().unwrap(),
        node["ejected_for_ms"].as_u64().unwrap(),
    )
}

fn upstream(node: SocketAddr, status: &str) -> String {
    format!("edge_upstream_requests_total{{node=\"{node}\",pool=\"solo\",status=\"{status}\"}}")
}

const RETRIES: &str = "edge_upstream_retries_total{pool=\"solo\",reason=\"reused_connection\"}";

#[tokio::test]
async fn a_reused_connection_the_origin_drops_unanswered_is_retried_on_a_fresh_one() {
    let origin = Origin::start().await;
    for i in 0..20 {
        origin.route(
            &format!("/live/{i}.ts"),
            Route::ok(format!("seg {i}"))
                .header("cache-control", "no-store")
                .close_reused(),
        );
    }
    let edge = Edge::start_with_config(&solo_pool(origin.addr, ""), "").await;
    let c = client();
    let mut answers = Vec::new();
    for i in 0..20 {
        let r = c
            .get(edge.url(&format!("/live/{i}.ts")))
            .send()
            .await
            .unwrap();
        answers.push((r.status().as_u16(), r.text().await.unwrap()));
    }
    let expected: Vec<(u16, String)> = (0..20).map(|i| (200, format!("seg {i}"))).collect();
    assert_eq!(answers, expected, "{}", edge.log());

    // Odd requests open a connection the pool keeps; even ones find it, lose it to the
    // origin's close, and are answered on a fresh connection that is not pooled.
    assert_eq!(origin.connections(), 20, "one connection per request");
    assert_eq!(
        origin.total_hits(),
        30,
        "10 first requests + 10 × (dropped + retried)"
    );
    assert_eq!(edge.metric(RETRIES).await, 10.0);
    assert_eq!(
        edge.metric(&upstream(origin.addr, "error")).await,
        0.0,
        "a stale connection is not an origin error"
    );
    assert_eq!(edge.metric(&upstream(origin.addr, "200")).await, 20.0);
    assert_eq!(
        solo_health(&edge).await,
        (true, 0),
        "the node was never ejected"
    );
    let healthy = format!(
        "edge_upstream_healthy{{node=\"{}\",pool=\"solo\"}}",
        origin.addr
    );
    assert_eq!(edge.metric(&healthy).await, 1.0);
}

#[tokio::test]
async fn the_fresh_retry_is_bounded_and_its_failure_counts_against_the_node() {
    // `/warm` pools a connection; `/gone` is dropped on every connection, fresh or reused.
    let origin = Origin::start().await;
    origin.route(
        "/warm",
        Route::ok("warm").header("cache-control", "no-store"),
    );
    origin.route("/gone", Route::ok("never sent").drop_from(0));
    let edge = Edge::start_with_config(&solo_pool(origin.addr, ""), "").await;
    let c = client();
    assert_eq!(c.get(edge.url("/warm")).send().await.unwrap().status(), 200);
    let r = c.get(edge.url("/gone")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(
        origin.hits("/gone"),
        2,
        "the reused connection, then one fresh one: no more"
    );
    assert_eq!(origin.connections(), 2);
    assert_eq!(edge.metric(RETRIES).await, 1.0);
    assert_eq!(
        edge.metric(&upstream(origin.addr, "error")).await,
        1.0,
        "the fresh connection's failure is the origin's"
    );
    let (usable, ejected_for_ms) = solo_health(&edge).await;
    assert!(
        !usable && ejected_for_ms > 20_000,
        "one strike ejects the node here: {usable} {ejected_for_ms}"
    );
}

#[tokio::test]
async fn a_post_is_never_replayed_and_a_stale_connection_is_no_strike() {
    // RFC 9110 §9.2.2: a proxy must not retry a non-idempotent request on its own; the origin
    // may have acted on it before closing.
    let origin = Origin::start().await;
    origin.route(
        "/warm",
        Route::ok("warm").header("cache-control", "no-store"),
    );
    origin.route("/upload", Route::ok("stored").close_reused());
    let edge = Edge::start_with_config(&solo_pool(origin.addr, ""), "").await;
    let c = client();
    assert_eq!(c.get(edge.url("/warm")).send().await.unwrap().status(), 200);
    let r = c
        .post(edge.url("/upload"))
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(
        origin.hits("/upload"),
        1,
        "the POST reached the origin once"
    );
    assert_eq!(edge.metric(RETRIES).await, 0.0);
    assert_eq!(
        solo_health(&edge).await,
        (true, 0),
        "a stale keep-alive is not the node failing"
    );
    // A GET after it is answered as usual.
    assert_eq!(
        c.get(edge.url("/warm"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "warm"
    );
}

#[tokio::test]
async fn the_pool_idle_timeout_closes_connections_before_the_origin_would() {
    // With `idle_timeout` under the gap between requests, no request is sent on a pooled
    // connection, so an origin that drops reused connections never gets the chance.
    let origin = Origin::start().await;
    for i in 0..5 {
        origin.route(
            &format!("/live/{i}.ts"),
            Route::ok(format!("seg {i}"))
                .header("cache-control", "no-store")
                .close_reused(),
        );
    }
    let edge =
        Edge::start_with_config(&solo_pool(origin.addr, "idle_timeout = \"150ms\"\n"), "").await;
    let c = client();
    for i in 0..5 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let r = c
            .get(edge.url(&format!("/live/{i}.ts")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), format!("seg {i}"));
    }
    assert_eq!(
        (origin.connections(), origin.total_hits()),
        (5, 5),
        "a new connection per request, none dropped"
    );
    assert_eq!(edge.metric(RETRIES).await, 0.0);
}

/// A real Node.js HTTP server (`http` module): every path answers `node <path>` uncacheable.
struct NodeOrigin {
    addr: SocketAddr,
    child: tokio::process::Child,
}

const NODE_SERVER: &str = r#"
const http = require('http');
const server = http.createServer((req, res) => {
  res.setHeader('cache-control', 'no-store');
  res.end('node ' + req.url);
});
const ka = Number(process.env.KEEPALIVE_MS || '0');
if (ka > 0) server.keepAliveTimeout = ka;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
"#;

impl NodeOrigin {
    /// Start `node` with `server.keepAliveTimeout = keep_alive_ms` (`None`: Node's default, 5 s).
    async fn start(keep_alive_ms: Option<u64>) -> NodeOrigin {
        let mut cmd = tokio::process::Command::new("node");
        cmd.arg("-e")
            .arg(NODE_SERVER)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(ms) = keep_alive_ms {
            cmd.env("KEEPALIVE_MS", ms.to_string());
        }
        let mut child = cmd
            .spawn()
            .expect("node (installed by `bash .ci/deps test`)");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(10),
            BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .unwrap()
        .unwrap();
        let port: u16 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("node printed {line:?}"));
        NodeOrigin {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
        }
    }
}

impl Drop for NodeOrigin {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A TCP relay that delays every byte and every close by `delay` each way: the network between
/// an edge and a distant origin. On loopback an origin's close reaches the edge within
/// microseconds, so the edge almost never reuses a connection the origin is closing; across
/// a real network the close is in flight for half a round trip, and every request sent in
/// that time meets a closed connection.
struct Latency {
    addr: SocketAddr,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Latency {
    async fn start(to: SocketAddr, delay: Duration) -> Latency {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tasks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let t = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((near, _)) = listener.accept().await {
                let Ok(far) = TcpStream::connect(to).await else {
                    continue;
                };
                let (near_r, near_w) = near.into_split();
                let (far_r, far_w) = far.into_split();
                let there = tokio::spawn(delayed(near_r, far_w, delay));
                let back = tokio::spawn(delayed(far_r, near_w, delay));
                t.lock()
                    .unwrap()
                    .extend([there.abort_handle(), back.abort_handle()]);
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        Latency { addr, tasks }
    }
}

impl Drop for Latency {
    fn drop(&mut self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

/// Copy `from` to `to`, each chunk and the end of stream `delay` after it was read.
async fn delayed(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let read = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            // A reset reads as an end of stream: the edge then sees a close, as after a FIN.
            let n = from.read(&mut buf).await.unwrap_or(0);
            if tx
                .send((tokio::time::Instant::now() + delay, buf[..n].to_vec()))
                .is_err()
                || n == 0
            {
                return;
            }
        }
    };
    let write = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if chunk.is_empty() {
                let _ = to.shutdown().await;
                return;
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(read, write);
}

/// One request per gap (each gap measured from the previous answer): statuses other than 200
/// and transport errors, with the gap before them.
async fn spaced(edge: &Edge, gaps: &[Duration]) -> Vec<(Duration, String)> {
    let c = client();
    let mut failures = Vec::new();
    for (i, gap) in gaps.iter().enumerate() {
        tokio::time::sleep(*gap).await;
        let path = format!("/live/{i}.ts");
        match c.get(edge.url(&path)).send().await {
            Ok(r) if r.status() == 200 => {
                let body = r.text().await.unwrap_or_default();
                if body != format!("node {path}") {
                    failures.push((*gap, format!("body {body:?}")));
                }
            }
            Ok(r) => failures.push((*gap, r.status().to_string())),
            Err(e) => failures.push((*gap, e.to_string())),
        }
    }
    failures
}

/// Gaps of `offsets_ms` around `close`.
fn around(close: Duration, offsets_ms: &[i64]) -> Vec<Duration> {
    offsets_ms
        .iter()
        .map(|&ms| {
            let d = Duration::from_millis(ms.unsigned_abs());
            if ms < 0 {
                close.saturating_sub(d)
            } else {
                close + d
            }
        })
        .collect()
}

/// How long `node` really keeps an idle connection open after a response (Node 20 adds a
/// second to `keepAliveTimeout`; other versions may not).
async fn idle_close(node: SocketAddr) -> Duration {
    let mut s = TcpStream::connect(node).await.unwrap();
    s.write_all(b"GET /probe HTTP/1.1\r\nhost: probe\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let mut answered = None;
    tokio::time::timeout(Duration::from_secs(15), async {
        while s.read(&mut buf).await.unwrap_or(0) > 0 {
            answered.get_or_insert_with(Instant::now);
        }
    })
    .await
    .expect("node closes an idle connection within 15 s");
    answered.expect("node answered the probe").elapsed()
}

#[tokio::test]
async fn node_with_a_1s_keep_alive_timeout_and_requests_spaced_around_it() {
    let node = NodeOrigin::start(Some(1000)).await;
    // A wide link (150 ms each way) makes the race window 300 ms wide, far more than the jitter
    // of Node's idle timer (tens of ms) or of a loaded CI machine's scheduling: with 20 ms the
    // window was 40 ms and a CI run could step over it without one race.
    let link = Latency::start(node.addr, Duration::from_millis(150)).await;
    // Node closes before the edge's default idle timeout would: its close races each reuse.
    let edge = Edge::start_with_config(&solo_pool(link.addr, ""), "").await;
    let close = idle_close(node.addr).await;
    eprintln!("node closes idle connections after {close:?}");
    // Node's answer reaches the client 150 ms after Node sent it; its close reaches the edge
    // 150 ms after Node closed. A request the edge sends less than 150 ms before that FIN
    // arrives reuses the connection, and reaches Node after Node closed it when it was sent
    // less than 150 ms before Node's close: gaps in (close - 300 ms, close) can race. Six gaps
    // in that window, two after it (the edge has seen the FIN: a fresh connection, no retry).
    // A first request with no gap opens the connection. In practice a sweep sees 1 to 3 races
    // (timers on both sides move the window), and could see none: up to three sweeps, until
    // one does.
    let mut gaps = vec![Duration::ZERO];
    gaps.extend(around(close, &[-280, -230, -180, -130, -80, -30, 60, 200]));
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut sweeps = 0;
    let mut retried = 0.0;
    while sweeps < 3 && retried < 1.0 {
        failures.extend(spaced(&edge, &gaps).await);
        retried = edge.metric(RETRIES).await;
        sweeps += 1;
    }
    eprintln!(
        "node 1 s keep-alive: {sweeps} sweeps of {} requests in {:?}, {retried} retried on a fresh connection",
        gaps.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {failures:?}",
        failures.len(),
        sweeps * gaps.len()
    );
    assert!(
        retried >= 1.0,
        "some request met a connection Node was closing (else this test proved nothing)"
    );
    assert_eq!(solo_health(&edge).await, (true, 0));
}

#[tokio::test]
async fn node_with_its_default_keep_alive_and_the_edge_default_idle_timeout() {
    // Node closes idle connections 5 s after a response (Node 20: 6 s, it adds a second); the
    // edge stops reusing them after 4 s, so requests spaced around Node's close never meet a
    // connection Node is closing.
    let node = NodeOrigin::start(None).await;
    let link = Latency::start(node.addr, Duration::from_millis(20)).await;
    let edge = Edge::start_with_config(&solo_pool(link.addr, ""), "").await;
    let close = idle_close(node.addr).await;
    eprintln!("node closes idle connections after {close:?}");
    let gaps = around(close, &[-35, -25, -15, -5]);
    let failures = spaced(&edge, &gaps).await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(
        edge.metric(RETRIES).await,
        0.0,
        "the edge closed first: nothing stale to retry"
    );
    assert_eq!(solo_health(&edge).await, (true, 0));
}

#[tokio::test]
async fn over_tls_a_reused_connection_closed_without_close_notify_is_retried_too() {
    // Origins often close TLS keep-alive connections without a close_notify (Node's destroy()
    // does): the edge reads an unexpected end of stream instead of a clean close.
    let certs = tempfile::tempdir().unwrap();
    edge::tls::certs::generate_dev(certs.path(), &["origin.test".into()]).unwrap();
    let origin = Origin::start_tls(certs.path()).await;
    for i in 0..6 {
        origin.route(
            &format!("/live/{i}.ts"),
            Route::ok(format!("seg {i}"))
                .header("cache-control", "no-store")
                .close_reused(),
        );
    }
    let ca = certs.path().join("edge-dev-ca.pem");
    let pool = format!(
        "[[origins]]\nname = \"solo\"\nca_file = \"{}\"\nnodes = [{{ addr = \"{}\", tls = true, sni = \"origin.test\" }}]\n\
         passive = {{ max_failures = 1, ejection = \"30s\" }}\n",
        ca.display(),
        origin.addr
    );
    let edge = Edge::start_with_config(&pool, "").await;
    let c = client();
    let mut answers = Vec::new();
    for i in 0..6 {
        let r = c
            .get(edge.url(&format!("/live/{i}.ts")))
            .send()
            .await
            .unwrap();
        answers.push((r.status().as_u16(), r.text().await.unwrap()));
    }
    let expected: Vec<(u16, String)> = (0..6).map(|i| (200, format!("seg {i}"))).collect();
    assert_eq!(answers, expected, "{}", edge.log());
    assert_eq!(edge.metric(RETRIES).await, 3.0);
    assert_eq!(solo_health(&edge).await, (true, 0));
}
