//! Zero-downtime binary upgrade (README, "Upgrade"): a second process of the same binary,
//! started with `edge serve --upgrade`, takes the listening sockets and then the cache folder
//! over from the running edge while clients keep requesting.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{bytes_of, Edge, Origin, Route};

/// Objects warmed before the upgrade.
const OBJECTS: usize = 12;
const BODY: usize = 48 * 1024;

/// One answer as a client saw it.
struct Answer {
    status: u16,
    x_cache: String,
    body: Vec<u8>,
    /// The server said `Connection: close`.
    close: bool,
}

/// What went wrong with one exchange.
enum Failure {
    /// Nothing came back on a kept-alive connection: the server closed it while idle (it is
    /// stopping). RFC 9112 §9.3.1 lets a client retry such an idempotent request on a new
    /// connection, as every HTTP client does.
    IdleClosed,
    /// Anything else: a refused or reset connection, a cut or malformed answer, a timeout.
    Error(String),
}

/// Send one GET on `stream` and read the whole answer (Content-Length framing).
fn exchange(stream: &mut BufReader<TcpStream>, path: &str, close: bool) -> Result<Answer, Failure> {
    // The host the warm-up's client sent: the same cache keys.
    let host = stream
        .get_ref()
        .peer_addr()
        .map_err(|e| Failure::Error(format!("peer: {e}")))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: {host}\r\n{}\r\n",
        if close { "connection: close\r\n" } else { "" }
    );
    if let Err(e) = stream.get_mut().write_all(request.as_bytes()) {
        return Err(match e.kind() {
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                Failure::IdleClosed
            }
            _ => Failure::Error(format!("write: {e}")),
        });
    }
    let mut line = String::new();
    match stream.read_line(&mut line) {
        Ok(0) => return Err(Failure::IdleClosed),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            return Err(Failure::IdleClosed)
        }
        Err(e) => return Err(Failure::Error(format!("status line: {e}"))),
        Ok(_) => {}
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Failure::Error(format!("bad status line {line:?}")))?;
    let (mut length, mut x_cache, mut close_after) = (None, String::new(), false);
    loop {
        let mut field = String::new();
        match stream.read_line(&mut field) {
            Ok(0) => return Err(Failure::Error("head cut".into())),
            Err(e) => return Err(Failure::Error(format!("head: {e}"))),
            Ok(_) => {}
        }
        let field = field.trim_end();
        if field.is_empty() {
            break;
        }
        let Some((name, value)) = field.split_once(':') else {
            return Err(Failure::Error(format!("bad field {field:?}")));
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "x-cache" => x_cache = value.to_string(),
            "connection" => close_after = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let length = length.ok_or_else(|| Failure::Error("no content-length".into()))?;
    let mut body = vec![0; length];
    stream
        .read_exact(&mut body)
        .map_err(|e| Failure::Error(format!("body: {e}")))?;
    Ok(Answer {
        status,
        x_cache,
        body,
        close: close_after,
    })
}

/// Whether the server has closed `s` (it reads as end of stream without blocking).
fn closed_by_peer(s: &TcpStream) -> bool {
    if s.set_nonblocking(true).is_err() {
        return true;
    }
    let closed =
        !matches!(s.peek(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    s.set_nonblocking(false).is_err() || closed
}

fn connect(addr: SocketAddr) -> Result<BufReader<TcpStream>, Failure> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| Failure::Error(format!("connect: {e}")))?;
    // Generous: a connection that arrives while neither process accepts waits in the queue.
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    Ok(BufReader::new(s))
}

/// What one client thread saw.
#[derive(Default)]
struct Tally {
    requests: usize,
    ok: usize,
    hits: usize,
    /// `X-Cache` of the answers that were not hits.
    not_hits: Vec<String>,
    not_2xx: Vec<u16>,
    wrong_bodies: usize,
    errors: Vec<String>,
    /// Kept-alive connections found closed by the server before the next request.
    closed_while_idle: usize,
    /// Requests retried on a new connection after a kept-alive one was closed while idle.
    idle_retries: usize,
    /// Why, for the HTTPS clients (which cannot tell an idle close from other send errors).
    retried: Vec<String>,
    slowest: Duration,
}

/// Request the warmed objects in turn until `stop` (at most 20,000 requests or 60 s):
/// `keep_alive` reuses one connection while the server keeps it, otherwise each request gets
/// a new one.
fn client(
    addr: SocketAddr,
    keep_alive: bool,
    offset: usize,
    stop: Arc<AtomicBool>,
    bodies: Arc<Vec<Vec<u8>>>,
) -> Tally {
    let mut t = Tally::default();
    let started = Instant::now();
    let mut conn: Option<BufReader<TcpStream>> = None;
    for n in 0..20_000 {
        if stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(60) {
            break;
        }
        let i = (n + offset) % OBJECTS;
        let path = format!("/v/seg{i}.ts");
        let begun = Instant::now();
        t.requests += 1;
        let mut attempt = 0;
        let answer = loop {
            attempt += 1;
            // As HTTP clients do before reusing a pooled connection: one the server has closed
            // reads as end of stream, and is not used again.
            if conn.as_ref().is_some_and(|c| closed_by_peer(c.get_ref())) {
                conn = None;
                t.closed_while_idle += 1;
            }
            let reused = conn.is_some();
            let mut c = match conn.take() {
                Some(c) => c,
                None => match connect(addr) {
                    Ok(c) => c,
                    Err(Failure::Error(e)) => break Err(e),
                    Err(Failure::IdleClosed) => break Err("connect".into()),
                },
            };
            match exchange(&mut c, &path, !keep_alive) {
                Ok(a) => {
                    if keep_alive && !a.close {
                        conn = Some(c);
                    }
                    break Ok(a);
                }
                Err(Failure::IdleClosed) if reused && attempt == 1 => {
                    t.idle_retries += 1;
                    continue;
                }
                Err(Failure::IdleClosed) => break Err("closed with no answer".into()),
                Err(Failure::Error(e)) => break Err(e),
            }
        };
        t.slowest = t.slowest.max(begun.elapsed());
        match answer {
            Ok(a) if (200..300).contains(&a.status) => {
                t.ok += 1;
                if a.x_cache == "HIT" {
                    t.hits += 1;
                } else {
                    t.not_hits.push(format!("{path}: {}", a.x_cache));
                }
                if a.body != bodies[i] {
                    t.wrong_bodies += 1;
                }
            }
            Ok(a) => t.not_2xx.push(a.status),
            Err(e) => t.errors.push(e),
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    t
}

/// Under continuous requests (keep-alive and new connections), a second process takes over:
/// no connection error, no non-2xx answer, the old process exits 0 after draining, and the
/// objects stored before the upgrade are hits in the new process (the origin never sees them
/// again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_under_load_drops_nothing_and_keeps_the_cache_warm() {
    upgrade_under_load(false).await;
}

/// The same with HTTPS clients too (HTTP/2 multiplexed on one connection, and HTTP/1.1 over
/// TLS): the TLS listener is handed over like the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_under_load_keeps_https_and_http2_clients() {
    upgrade_under_load(true).await;
}

/// An HTTPS client (reqwest: pooled connections, HTTP/2 when `h2`) for the edge's dev CA in
/// `certs`, resolving `edge.test` to `https`.
fn https_client(certs: &std::path::Path, https: SocketAddr, h2: bool) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(certs.join("edge-dev-ca.pem")).unwrap())
        .unwrap();
    let b = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .resolve("edge.test", https);
    if h2 { b } else { b.http1_only() }.build().unwrap()
}

/// Request the warmed objects over HTTPS until `stop` (at most 20,000 requests or 60 s).
async fn https_loop(
    client: reqwest::Client,
    offset: usize,
    stop: Arc<AtomicBool>,
    bodies: Arc<Vec<Vec<u8>>>,
) -> Tally {
    let mut t = Tally::default();
    let started = Instant::now();
    for n in 0..20_000 {
        if stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(60) {
            break;
        }
        let i = (n + offset) % OBJECTS;
        let begun = Instant::now();
        t.requests += 1;
        let fetch = || async {
            let r = client
                .get(format!("https://edge.test/v/seg{i}.ts"))
                .send()
                .await?;
            let status = r.status().as_u16();
            let x_cache = r
                .headers()
                .get("x-cache")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            Ok::<_, reqwest::Error>((status, x_cache, r.bytes().await?))
        };
        let answer = match fetch().await {
            // A pooled connection the server closed while the request was on its way (the
            // race of every keep-alive close, RFC 9112 §9.3.1): hyper reports a send error
            // and no answer byte came; retried once, as for the plain clients.
            Err(e) if e.is_request() && !e.is_timeout() && !e.is_body() => {
                t.idle_retries += 1;
                t.retried.push(format!("offset {offset}: {e:?}"));
                fetch().await
            }
            other => other,
        };
        t.slowest = t.slowest.max(begun.elapsed());
        match answer {
            Ok((status, x_cache, body)) if (200..300).contains(&status) => {
                t.ok += 1;
                if x_cache == "HIT" {
                    t.hits += 1;
                } else {
                    t.not_hits.push(format!("https seg{i}: {x_cache}"));
                }
                if body != bodies[i] {
                    t.wrong_bodies += 1;
                }
            }
            Ok((status, _, _)) => t.not_2xx.push(status),
            Err(e) => t.errors.push(format!("https (offset {offset}): {e:?}")),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    t
}

async fn upgrade_under_load(tls: bool) {
    let origin = Origin::start().await;
    let bodies: Vec<Vec<u8>> = (0..OBJECTS).map(|i| bytes_of(BODY, i as u64)).collect();
    for (i, body) in bodies.iter().enumerate() {
        origin.route(
            &format!("/v/seg{i}.ts"),
            Route::ok(body.clone()).header("cache-control", "max-age=600"),
        );
    }
    let certs = tempfile::tempdir().unwrap();
    let https: SocketAddr = format!("127.0.0.1:{}", crate::support::free_port())
        .parse()
        .unwrap();
    let mut edge = if tls {
        edge::tls::certs::generate_dev(certs.path(), &["edge.test".into()]).unwrap();
        let d = certs.path().display();
        Edge::start_with_config(
            &format!(
                "[tls]\ncerts = [{{ cert = \"{d}/edge.pem\", key = \"{d}/edge-key.pem\" }}]\n\
                 [[origins]]\nname = \"o\"\nnodes = [{{ addr = \"{}\" }}]\n",
                origin.addr
            ),
            &format!("https = \"{https}\"\n"),
        )
        .await
    } else {
        Edge::start(origin.addr, "").await
    };
    let old_pid = edge.pid();
    // Warm: a miss stores each object, the second request is a hit. The key holds the host:
    // the HTTPS clients ask for `edge.test`, the plain ones for the listener's address.
    let http = crate::support::client();
    let mut urls = vec![(http.clone(), edge.url("/v/seg"))];
    let (h2, h1s) = if tls {
        let h2 = https_client(certs.path(), https, true);
        urls.push((h2.clone(), "https://edge.test/v/seg".to_string()));
        (Some(h2), Some(https_client(certs.path(), https, false)))
    } else {
        (None, None)
    };
    for (client, base) in &urls {
        for i in 0..OBJECTS {
            let url = format!("{base}{i}.ts");
            let before = edge.metric("edge_cache_admitted_bytes_total").await;
            let r = client.get(&url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["x-cache"], "MISS");
            r.bytes().await.unwrap();
            edge.await_admitted(before).await;
            let r = client.get(&url).send().await.unwrap();
            assert_eq!(r.headers()["x-cache"], "HIT", "{url} warmed");
        }
    }
    let warmed_hits = origin.total_hits();
    assert_eq!(
        warmed_hits,
        OBJECTS * urls.len(),
        "one origin request per object and host"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let bodies = Arc::new(bodies);
    let clients: Vec<_> = (0..4)
        .map(|n| {
            let (stop, bodies, addr) = (stop.clone(), bodies.clone(), edge.http);
            std::thread::spawn(move || client(addr, n % 2 == 0, n * 3, stop, bodies))
        })
        .collect();
    // Two request loops share the HTTP/2 connection; one runs HTTP/1.1 over TLS.
    let secure: Vec<_> = [(h2.clone(), 1), (h2, 5), (h1s, 7)]
        .into_iter()
        .filter_map(|(c, offset)| Some((c?, offset)))
        .map(|(c, offset)| tokio::spawn(https_loop(c, offset, stop.clone(), bodies.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;

    let upgrade_started = Instant::now();
    let mut old = edge.start_upgrade();
    let status = edge.wait_old_exit(&mut old, Duration::from_secs(40)).await;
    let old_gone = upgrade_started.elapsed();
    edge.await_ready().await;
    // The new process alone serves for a while.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut tallies: Vec<Tally> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    for task in secure {
        tallies.push(task.await.unwrap());
    }

    let log = edge.log();
    assert!(
        status.success(),
        "the old edge exits 0 after draining: {status}\n{log}"
    );
    assert_ne!(edge.pid(), old_pid);
    let sum = |f: fn(&Tally) -> usize| tallies.iter().map(f).sum::<usize>();
    let errors: Vec<&String> = tallies.iter().flat_map(|t| &t.errors).collect();
    let not_2xx: Vec<&u16> = tallies.iter().flat_map(|t| &t.not_2xx).collect();
    let slowest = tallies.iter().map(|t| t.slowest).max().unwrap_or_default();
    println!(
        "upgrade: {} requests, {} ok, {} hits, {} kept-alive connections closed while idle, {} requests retried after such a close, slowest {slowest:?}, old process gone after {old_gone:?}",
        sum(|t| t.requests),
        sum(|t| t.ok),
        sum(|t| t.hits),
        sum(|t| t.closed_while_idle),
        sum(|t| t.idle_retries),
    );
    let retried: Vec<&String> = tallies.iter().flat_map(|t| &t.retried).collect();
    if !retried.is_empty() {
        println!("upgrade: HTTPS requests retried once: {retried:?}");
    }
    assert!(errors.is_empty(), "connection errors: {errors:?}\n{log}");
    // The old process closes each kept-alive connection once, when it stops: at most one
    // retry per keep-alive client (2 plain, 1 HTTP/1.1 over TLS; HTTP/2 gets a GOAWAY).
    let keep_alive_clients = if tls { 3 } else { 2 };
    assert!(
        sum(|t| t.idle_retries) <= keep_alive_clients,
        "more retries than kept-alive connections"
    );
    assert!(not_2xx.is_empty(), "non-2xx answers: {not_2xx:?}\n{log}");
    assert_eq!(sum(|t| t.wrong_bodies), 0, "every body is the object's");
    let not_hits: Vec<&String> = tallies.iter().flat_map(|t| &t.not_hits).collect();
    assert!(
        not_hits.is_empty(),
        "every request is a hit, across the upgrade: {not_hits:?}\n{log}"
    );
    assert!(sum(|t| t.requests) > 100, "the clients kept requesting");
    assert_eq!(
        origin.total_hits(),
        warmed_hits,
        "no object stored before the upgrade was fetched again"
    );
    // The new process answered from the cache it opened warm (the disk tier: the old process
    // flushed its memory tier there).
    for (client, base) in &urls {
        for (i, body) in bodies.iter().enumerate() {
            let r = client.get(format!("{base}{i}.ts")).send().await.unwrap();
            assert_eq!(r.headers()["x-cache"], "HIT");
            assert_eq!(r.bytes().await.unwrap(), body);
        }
    }
    assert!(
        edge.metric("edge_cache_lookups_total{result=\"disk\"}")
            .await
            > 0.0,
        "the new process read the objects from its disk tier"
    );
    assert_eq!(
        edge.metric("edge_cache_lookups_total{result=\"miss\"}")
            .await,
        0.0,
        "the new process missed nothing"
    );
    assert!(
        log.contains("upgrade: the cache folder is released"),
        "{log}"
    );
    assert!(log.contains("upgrade: listeners received"), "{log}");
    // The new process holds the folder now.
    let lock = std::fs::read_to_string(edge.cache_dir().join("LOCK")).unwrap();
    assert_eq!(lock.trim(), edge.pid().to_string());
}

/// `edge serve --upgrade` with no edge running on the cache folder refuses to start, saying so.
#[tokio::test]
async fn an_upgrade_needs_a_running_edge() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("edge.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhttp = \"127.0.0.1:{}\"\nadmin = \"127.0.0.1:{}\"\n[cache]\ndir = \"cache\"\nmemory = \"8 MiB\"\ndisk = \"16 MiB\"\nmax_object = \"1 MiB\"\n[[origins]]\nname = \"o\"\nnodes = [{{ addr = \"127.0.0.1:1\" }}]\n",
            crate::support::free_port(),
            crate::support::free_port()
        ),
    )
    .unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_edge"))
            .args(["serve", "--upgrade", "--config"])
            .arg(&config)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no running edge holds cache.dir"), "{err}");
}
