//! Process lifecycle: warm restart on the same cache dir, graceful shutdown, start errors.

use std::time::Duration;

use crate::support::{bytes_of, client, free_port, Edge, Origin, Route};

#[tokio::test]
async fn objects_survive_a_restart() {
    let origin = Origin::start().await;
    let bodies: Vec<Vec<u8>> = (0..5)
        .map(|i| bytes_of(100_000 + i * 1000, 20 + i as u64))
        .collect();
    for (i, b) in bodies.iter().enumerate() {
        origin.route(&format!("/v/w/{i}.ts"), Route::ok(b.clone()));
    }
    let mut edge = Edge::start(origin.addr, "").await;
    let c = client();
    for i in 0..bodies.len() {
        let r = c
            .get(edge.url(&format!("/v/w/{i}.ts")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-cache"], "MISS");
        r.bytes().await.unwrap();
    }
    edge.restart().await;
    for (i, b) in bodies.iter().enumerate() {
        let r = c
            .get(edge.url(&format!("/v/w/{i}.ts")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-cache"], "HIT", "object {i} after restart");
        assert!(
            r.bytes().await.unwrap() == *b,
            "object {i} bytes after restart"
        );
    }
    assert_eq!(
        origin.total_hits(),
        bodies.len(),
        "zero origin requests after the restart"
    );
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish_within_the_grace_period() {
    let origin = Origin::start().await;
    let body = bytes_of(200_000, 30);
    origin.route(
        "/v/slow.ts",
        Route::ok(body.clone()).paced(5, Duration::from_millis(600)),
    );
    let mut edge = Edge::start(origin.addr, "").await;
    let c = client();
    let prober = client();
    assert_eq!(
        prober
            .get(edge.admin_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let url = edge.url("/v/slow.ts");
    let inflight =
        tokio::spawn(async move { c.get(url).send().await.unwrap().bytes().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(150)).await;
    edge.terminate();
    // Readiness drops at once: a prober on a kept-alive connection reads 503 `draining`, a new
    // connection is refused (Pingora stops accepting). It never reads `ready` again.
    let mut drained = false;
    for _ in 0..50 {
        match prober.get(edge.admin_url("/readyz")).send().await {
            Ok(r) if r.status() == 503 => {
                assert_eq!(r.text().await.unwrap(), "draining\n");
                drained = true;
                break;
            }
            Ok(r) => assert_eq!(r.status(), 200, "before the signal lands"),
            Err(_) => {
                drained = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(drained, "readiness dropped within a second of SIGTERM");
    let got = inflight.await.unwrap();
    assert!(got == body, "the in-flight response completed");
    // grace_period = 1s and shutdown_timeout = 1s in the test config.
    let (status, took) = edge.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "clean exit: {status}");
    assert!(took < Duration::from_secs(4), "exit took {took:?}");
}

/// A connection accepted just before SIGTERM whose first request arrives just after it gets
/// its answer (with `Connection: close`), not a close with nothing: its client has nothing it
/// could retry on (seen in the upgrade test under load).
#[tokio::test]
async fn a_request_on_its_way_when_the_signal_comes_is_answered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let origin = Origin::start().await;
    let body = bytes_of(10_000, 31);
    origin.route("/v/first.ts", Route::ok(body.clone()));
    let mut edge = Edge::start(origin.addr, "").await;
    // Cached first, so the answer does not depend on the origin during the shutdown.
    let c = client();
    c.get(edge.url("/v/first.ts")).send().await.unwrap();
    let mut conn = tokio::net::TcpStream::connect(edge.http).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    edge.terminate();
    tokio::time::sleep(Duration::from_millis(200)).await;
    conn.write_all(b"GET /v/first.ts HTTP/1.1\r\nHost: edge.test\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut got))
        .await
        .expect("answered and closed within 5 s")
        .unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "answered: {text:.200}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "and told the connection closes: {text:.400}"
    );
    assert!(got.ends_with(&body), "the whole body");
    let (status, _) = edge.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "clean exit: {status}");
}

#[tokio::test]
async fn a_busy_port_is_a_clear_start_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("edge.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nhttp = \"127.0.0.1:{port}\"\nadmin = \"127.0.0.1:{}\"\n[cache]\ndir = \"c\"\ndisk = \"64 MiB\"\nmax_object = \"1 MiB\"\n\
             [[origins]]\nname = \"o\"\nnodes = [{{ addr = \"127.0.0.1:9\" }}]\n",
            free_port()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edge"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("server.http: cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn a_second_process_cannot_share_a_cache_dir() {
    let origin = Origin::start().await;
    let edge = Edge::start(origin.addr, "").await;
    let cfg = edge.dir().join("second.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nhttp = \"127.0.0.1:{}\"\nadmin = \"127.0.0.1:{}\"\n[cache]\ndir = \"cache\"\nmemory = \"64 MiB\"\ndisk = \"128 MiB\"\nmax_object = \"8 MiB\"\n\
             [[origins]]\nname = \"o\"\nnodes = [{{ addr = \"{}\" }}]\n",
            free_port(),
            free_port(),
            origin.addr
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edge"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is in use by another edge process"), "{err}");
}

/// HUP, USR1 and USR2 never end the process (their default action would): with no TLS or
/// GeoIP configured, and with both. QUIT then drains like TERM: readiness fails at once (no
/// attempt to hand the listeners to another process first, which is what Pingora does with
/// QUIT, holding the stop for 5 s), and the process exits 0.
#[tokio::test]
async fn operator_signals_never_kill_the_edge() {
    let origin = Origin::start().await;
    origin.route(
        "/v/a.ts",
        Route::ok("a").header("cache-control", "max-age=60"),
    );
    let db = concat!(env!("CARGO_MANIFEST_DIR"), "/geoip/edge-test.mmdb");
    let plain = Edge::start(origin.addr, "").await;
    let certs = tempfile::tempdir().unwrap();
    let https = format!("127.0.0.1:{}", free_port());
    let full = Edge::start_with_config(
        &format!(
            "[[origins]]\nname = \"o\"\nnodes = [{{ addr = \"{}\" }}]\n[geo]\ndatabase = \"{db}\"\n\
             [tls]\ncerts = [{{ cert = \"{d}/edge.pem\", key = \"{d}/edge-key.pem\" }}]\ndev_names = [\"localhost\"]\n",
            origin.addr,
            d = certs.path().display()
        ),
        &format!("https = \"{https}\""),
    )
    .await;
    for mut edge in [plain, full] {
        for sig in ["HUP", "USR1", "USR2", "HUP"] {
            edge.signal(sig);
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(
                edge.running(),
                "SIGHUP/USR1/USR2 ended the edge ({sig}):\n{}",
                edge.log()
            );
            let r = client().get(edge.url("/v/a.ts")).send().await.unwrap();
            assert_eq!(r.status(), 200, "serving after {sig}");
        }
        assert!(
            edge.log().contains("SIGUSR1"),
            "the edge says what it did with USR1:\n{}",
            edge.log()
        );
        // HUP re-read the same file: nothing changed, nothing waits for a restart.
        assert!(edge.log().contains("config reloaded"), "{}", edge.log());
        assert!(!edge.log().contains("until a restart"), "{}", edge.log());
        // A prober on a kept-alive connection reads 503 `draining`; a new connection is
        // refused once Pingora stops accepting.
        let prober = client();
        assert_eq!(
            prober
                .get(edge.admin_url("/readyz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        edge.signal("QUIT");
        let mut ready = 200;
        // Bounded: 1 s of 50 ms probes.
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            ready = match prober.get(edge.admin_url("/readyz")).send().await {
                Ok(r) => r.status().as_u16(),
                Err(_) => 503,
            };
            if ready != 200 {
                break;
            }
        }
        assert_eq!(ready, 503, "QUIT starts draining at once:\n{}", edge.log());
        let (status, _) = edge.wait_exit(Duration::from_secs(15)).await;
        assert!(status.success(), "QUIT drains and exits 0: {status}");
    }
}
