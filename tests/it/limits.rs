//! Player connection limits on raw sockets: the whole-head timeout, the send timeout and the
//! connection caps (global and per address), each with a short configured limit. Every wait
//! is bounded. nginx's behaviour, for comparison, is noted at each test.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::raw::Conn;
use crate::support::{bytes_of, client, Edge, Origin, Route};

fn pool(origin: &Origin) -> String {
    format!(
        "[[origins]]\nname = \"o\"\nnodes = [{{ addr = \"{}\" }}]\n",
        origin.addr
    )
}

fn limit(name: &str) -> String {
    format!("edge_connection_limits_total{{limit=\"{name}\"}}")
}

/// Player connections open on the plain HTTP listener.
const OPEN: &str = r#"edge_open_connections{listener="http"}"#;

const GET_A: &[u8] = b"GET /v/a.ts HTTP/1.1\r\nhost: edge.test\r\n\r\n";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Wait (at most 5 s) until `sample` reads `want`.
async fn await_metric(edge: &Edge, sample: &str, want: f64) {
    for _ in 0..100 {
        if edge.metric(sample).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{sample} is {} after 5 s, want {want}",
        edge.metric(sample).await
    );
}

/// One request on a held connection, answered in full.
async fn served(c: &mut Conn) {
    c.send(GET_A).await;
    let r = c.response(false).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"a");
}

/// Send `prefix` at once, then the rest of a head one byte every 300 ms; how long until the
/// edge closed the connection (at most 5 s) and what it answered.
async fn trickle(addr: SocketAddr, prefix: Vec<u8>) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    let (mut rd, mut wr) = TcpStream::connect(addr).await.unwrap().into_split();
    // At most 40 bytes × 300 ms; stops at the first write the edge refuses.
    let writer = tokio::spawn(async move {
        if wr.write_all(&prefix).await.is_err() {
            return;
        }
        for b in b"x-trickled: 0123456789abcdef\r\n\r\n" {
            if wr.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), rd.read_to_end(&mut got)).await;
    let closed_at = started.elapsed();
    writer.abort();
    assert!(read.is_ok(), "the connection was still open after 5 s");
    (closed_at, got)
}

/// nginx: `client_header_timeout 60s` — one timer for the whole head, from the connection's
/// start; it closes without an answer. The edge: `header_timeout` the same way, answering 408.
/// A head trickled a byte every 300 ms with a 1 s limit is cut at ~1 s on both paths: a short
/// head the front would answer, a head over the front's 8 KiB (the pipeline's), and on an
/// edge without the front's answers (`fast_hits = false`).
#[tokio::test]
async fn a_head_trickled_byte_by_byte_is_cut_at_the_header_timeout() {
    let origin = Origin::start().await;
    origin.route("/v/a.ts", Route::ok("a"));
    let edge = Edge::start_with_config(&pool(&origin), "header_timeout = \"1s\"").await;
    let pipeline =
        Edge::start_with_config(&pool(&origin), "header_timeout = \"1s\"\nfast_hits = false").await;
    let short = b"GET /v/a.ts HTTP/1.1\r\nhost: edge.test\r\n".to_vec();
    // Over the front's 8 KiB, within the head size limits (no field over 8 KiB).
    let fields: String = (0..5)
        .map(|i| format!("x-long-{i}: {}\r\n", "v".repeat(2_000)))
        .collect();
    let long = format!("GET /v/a.ts HTTP/1.1\r\nhost: edge.test\r\n{fields}").into_bytes();
    let cases = [
        (edge.http, short.clone()),
        (edge.http, long),
        (pipeline.http, short),
    ];
    let runs = futures_join(
        cases
            .iter()
            .map(|(addr, prefix)| trickle(*addr, prefix.clone())),
    )
    .await;
    for (i, (closed_at, got)) in runs.into_iter().enumerate() {
        assert!(
            closed_at >= Duration::from_millis(900) && closed_at < Duration::from_millis(1600),
            "case {i}: closed after {closed_at:?}"
        );
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("HTTP/1.1 408 "),
            "case {i}: answer {text:?}"
        );
        eprintln!("trickled head, case {i}: closed after {closed_at:?}");
    }
    assert_eq!(
        edge.metric(&limit("header_timeout")).await,
        2.0,
        "counted before the close"
    );
    assert_eq!(pipeline.metric(&limit("header_timeout")).await, 1.0);
    assert_eq!(
        origin.total_hits(),
        0,
        "no partial request reached the origin"
    );
}

/// Run futures side by side; their outputs in order.
async fn futures_join<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// The clock is per head, not per connection: a client that waits half the limit and then
/// sends its head is served, and a keep-alive connection may idle longer than the limit
/// between requests (the idle timeout applies there, as nginx's `keepalive_timeout`).
#[tokio::test]
async fn honest_clients_are_not_cut_by_the_header_timeout() {
    let origin = Origin::start().await;
    origin.route("/v/a.ts", Route::ok("a"));
    let edge = Edge::start_with_config(&pool(&origin), "header_timeout = \"1s\"").await;
    let mut c = Conn::open(edge.http).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    served(&mut c).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    served(&mut c).await;
    // A head split in two parts 400 ms apart is whole within the limit.
    c.send(b"GET /v/a.ts HTTP/1.1\r\n").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    c.send(b"host: edge.test\r\n\r\n").await;
    let r = c.response(false).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"a"[..]));
    assert_eq!(edge.metric(&limit("header_timeout")).await, 0.0);
}

/// Hold `n` served connections from `from`, one address each in turn.
async fn hold(edge: &Edge, from: &[&str]) -> Vec<Conn> {
    let mut held = Vec::new();
    for addr in from {
        let mut c = Conn::open_from(edge.http, ip(addr)).await;
        // Served once: admitted before the next one arrives.
        served(&mut c).await;
        held.push(c);
    }
    held
}

/// Close `held`, wait until the edge counts none open, and check that `n` new connections
/// from `from` are accepted and served.
async fn freed(edge: &Edge, held: Vec<Conn>, from: &str, n: usize) {
    drop(held);
    await_metric(edge, OPEN, 0.0).await;
    let again = hold(edge, &vec![from; n]).await;
    assert_eq!(edge.metric(OPEN).await, n as f64);
    drop(again);
}

/// nginx: no per-address cap by default (`limit_conn` answers 503 when configured). The edge:
/// `max_connections_per_ip` (256 by default), over it a new connection is closed at once.
#[tokio::test]
async fn the_per_address_cap_closes_the_sixth_connection_of_an_address() {
    let origin = Origin::start().await;
    origin.route("/v/a.ts", Route::ok("a"));
    let edge = Edge::start_with_config(&pool(&origin), "max_connections_per_ip = 5").await;
    let mut held = hold(&edge, &["127.0.0.1"; 5]).await;
    assert_eq!(edge.metric(OPEN).await, 5.0);
    let mut sixth = Conn::open_from(edge.http, ip("127.0.0.1")).await;
    assert!(
        sixth.closed().await,
        "the sixth connection from 127.0.0.1 must be closed"
    );
    assert_eq!(edge.metric(&limit("max_connections_per_ip")).await, 1.0);
    // Another address has its own count.
    let mut other = Conn::open_from(edge.http, ip("127.0.0.2")).await;
    served(&mut other).await;
    for c in &mut held {
        served(c).await;
    }
    drop(other);
    assert_eq!(edge.metric(&limit("max_connections")).await, 0.0);
    freed(&edge, held, "127.0.0.1", 5).await;
}

/// nginx: `worker_connections` (512 per worker by default, counting proxied connections too);
/// when they are used up, a new connection is closed at once. The edge: `max_connections`
/// (half the open-file limit by default), the same.
#[tokio::test]
async fn the_global_cap_closes_connections_over_it_from_any_address() {
    let origin = Origin::start().await;
    origin.route("/v/a.ts", Route::ok("a"));
    let edge = Edge::start_with_config(
        &pool(&origin),
        "max_connections = 5\nmax_connections_per_ip = 0",
    )
    .await;
    let mut held = hold(
        &edge,
        &[
            "127.0.0.1",
            "127.0.0.1",
            "127.0.0.2",
            "127.0.0.2",
            "127.0.0.3",
        ],
    )
    .await;
    for addr in ["127.0.0.4", "127.0.0.1"] {
        let mut over = Conn::open_from(edge.http, ip(addr)).await;
        assert!(
            over.closed().await,
            "a sixth connection (from {addr}) must be closed"
        );
    }
    assert_eq!(edge.metric(&limit("max_connections")).await, 2.0);
    for c in &mut held {
        served(c).await;
    }
    assert_eq!(edge.metric(&limit("max_connections_per_ip")).await, 0.0);
    freed(&edge, held, "127.0.0.4", 5).await;
}

/// A client with a 4 KiB receive buffer that asks for `path` and never reads.
async fn reads_nothing(addr: SocketAddr, path: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: edge.test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    s
}

/// Read what the edge sent until it closed (at most 10 s); the bytes read.
async fn drain(mut s: TcpStream) -> usize {
    let mut total = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return total,
            Ok(Ok(n)) => total += n,
            Err(_) => panic!("the connection is still open after {total} bytes"),
        }
    }
    panic!("the connection is still open after 10 s")
}

/// nginx: `send_timeout 60s` — a connection whose writes make no progress for that long is
/// closed. The edge: `send_timeout`, on both request paths: a cold 4 MiB object through the
/// pipeline and a warm one the front answers, each to a client that reads nothing; both are
/// cut a little after the limit (once the socket buffers are full), while others are served.
#[tokio::test]
async fn clients_that_read_nothing_are_cut_at_the_send_timeout() {
    let origin = Origin::start().await;
    let cold = bytes_of(4 << 20, 31);
    let warm = bytes_of(4 << 20, 32);
    origin.route("/v/cold.ts", Route::ok(cold.clone()));
    origin.route("/v/warm.ts", Route::ok(warm.clone()));
    let edge = Edge::start_with_config(&pool(&origin), "send_timeout = \"1s\"").await;
    let c = client();
    let got = c
        .get(edge.url("/v/warm.ts"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(got == warm, "warm object primed");
    let started = Instant::now();
    let stalled = [
        reads_nothing(edge.http, "/v/cold.ts").await,
        reads_nothing(edge.http, "/v/warm.ts").await,
    ];
    // Others are served meanwhile, in full.
    for (path, body) in [("/v/warm.ts", &warm), ("/v/cold.ts", &cold)] {
        let t = Instant::now();
        let got = c
            .get(edge.url(path))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(
            got == *body,
            "{path} served in full next to the stalled clients"
        );
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "{path} took {:?}",
            t.elapsed()
        );
    }
    drop(c);
    await_metric(&edge, &limit("send_timeout"), 2.0).await;
    let cut_at = started.elapsed();
    assert!(cut_at < Duration::from_secs(5), "cut after {cut_at:?}");
    for s in stalled {
        let n = drain(s).await;
        assert!(
            n < 4 << 20,
            "a stalled client got {n} bytes: the whole object, not cut"
        );
    }
    await_metric(&edge, OPEN, 0.0).await;
    eprintln!("send timeout: both stalled clients cut within {cut_at:?}");
}

/// A client over HTTP/2 (TLS, ALPN h2) that trusts the edge's development CA in `dir`, from
/// the local address `from`.
fn h2_client(dir: &std::path::Path, https: SocketAddr, from: &str) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.join("edge-dev-ca.pem")).unwrap())
        .unwrap();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .resolve("a.test", https)
        .local_address(ip(from))
        .build()
        .unwrap()
}

/// nginx applies `client_header_timeout` to the HTTP/2 connection preface too. The edge: a
/// TLS connection that negotiates h2 and sends nothing is closed at `header_timeout`.
#[tokio::test]
async fn an_http2_connection_without_its_preface_is_cut_at_the_header_timeout() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    edge::tls::certs::generate_dev(dir.path(), &["a.test".into()]).unwrap();
    let https: SocketAddr = format!("127.0.0.1:{}", crate::support::free_port())
        .parse()
        .unwrap();
    let d = dir.path().display();
    let cfg = format!(
        "[tls]\ncerts = [{{ cert = \"{d}/edge.pem\", key = \"{d}/edge-key.pem\" }}]\n{}",
        pool(&origin)
    );
    let edge = Edge::start_with_config(
        &cfg,
        &format!("https = \"{https}\"\nheader_timeout = \"1s\"\n"),
    )
    .await;

    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(dir.path().join("edge-dev-ca.pem")).unwrap();
    for cert in
        <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::pem_slice_iter(
            &ca,
        )
    {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let started = Instant::now();
    let tcp = TcpStream::connect(https).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // The edge's SETTINGS arrive, then the close; the client never sends its preface.
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut got)).await;
    let closed_at = started.elapsed();
    assert!(read.is_ok(), "the connection was still open after 5 s");
    assert!(
        closed_at >= Duration::from_millis(900) && closed_at < Duration::from_millis(1600),
        "closed after {closed_at:?}"
    );
    assert_eq!(edge.metric(&limit("header_timeout")).await, 1.0);
    assert_eq!(edge.metric(OPEN).await, 0.0);
}

/// HTTP/2 over TLS: the caps hold for TLS connections (counted after the handshake), and a
/// stream whose flow-control window the client never opens again is reset after the send
/// timeout — a stall no socket write shows, as the client's HTTP/2 stack keeps reading the
/// socket. nginx (`send_timeout`) applies the same timer to HTTP/2 streams.
#[tokio::test]
async fn over_http2_the_caps_and_the_send_timeout_hold() {
    let origin = Origin::start().await;
    let big = bytes_of(4 << 20, 33);
    origin.route("/v/big.ts", Route::ok(big.clone()));
    origin.route("/v/a.ts", Route::ok("a"));
    let dir = tempfile::tempdir().unwrap();
    edge::tls::certs::generate_dev(dir.path(), &["a.test".into()]).unwrap();
    let https: SocketAddr = format!("127.0.0.1:{}", crate::support::free_port())
        .parse()
        .unwrap();
    let d = dir.path().display();
    let cfg = format!(
        "[tls]\ncerts = [{{ cert = \"{d}/edge.pem\", key = \"{d}/edge-key.pem\" }}]\n{}",
        pool(&origin)
    );
    let server =
        format!("https = \"{https}\"\nsend_timeout = \"1s\"\nmax_connections_per_ip = 1\n");
    let edge = Edge::start_with_config(&cfg, &server).await;

    // One connection per address: a second client from 127.0.0.1 is closed after its handshake.
    let first = h2_client(dir.path(), https, "127.0.0.1");
    let r = first.get("https://a.test/v/a.ts").send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.bytes().await.unwrap(), "a");
    let second = h2_client(dir.path(), https, "127.0.0.1");
    assert!(
        second.get("https://a.test/v/a.ts").send().await.is_err(),
        "over the per-address cap"
    );
    assert_eq!(edge.metric(&limit("max_connections_per_ip")).await, 1.0);
    drop((first, second));
    await_metric(&edge, OPEN, 0.0).await;

    // Cached first, so the stall is the client's alone (not a fill's).
    let other = h2_client(dir.path(), https, "127.0.0.2");
    let got = other
        .get("https://a.test/v/big.ts")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(got == big);
    // Headers taken, body never read: the client's stream window (2 MiB) fills and stays shut.
    let stalled = h2_client(dir.path(), https, "127.0.0.1");
    let r = stalled.get("https://a.test/v/big.ts").send().await.unwrap();
    assert_eq!(
        (r.version(), r.status().as_u16()),
        (reqwest::Version::HTTP_2, 200)
    );
    // Another address is served meanwhile, in full.
    let got = other
        .get("https://a.test/v/big.ts")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(got == big, "served in full next to the stalled stream");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let body = tokio::time::timeout(Duration::from_secs(5), r.bytes())
        .await
        .expect("the stalled stream ends");
    assert!(
        body.is_err(),
        "the stalled stream must be reset, not completed after the wait"
    );
    assert_eq!(edge.metric(&limit("send_timeout")).await, 1.0);
}
