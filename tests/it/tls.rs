//! HTTPS on real TLS handshakes: h2 and h1 over ALPN, certificates by SNI (exact, wildcard,
//! default), caching and ranges over h2, reload without restart, bad files.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use edge::tls::certs::generate_dev;

use crate::support::{bytes_of, free_port, Edge, Origin, Route};

fn ca(dir: &Path) -> reqwest::Certificate {
    reqwest::Certificate::from_pem(&std::fs::read(dir.join("edge-dev-ca.pem")).unwrap()).unwrap()
}

/// A client trusting only `roots`, resolving every test name to the edge's HTTPS address.
fn https_client(
    roots: &[reqwest::Certificate],
    https: SocketAddr,
    h1_only: bool,
) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .tls_built_in_root_certs(false);
    for r in roots {
        b = b.add_root_certificate(r.clone());
    }
    for name in ["a.test", "x.b.test", "other.test"] {
        b = b.resolve(name, https);
    }
    if h1_only {
        b = b.http1_only();
    }
    b.build().unwrap()
}

struct Setup {
    origin: Origin,
    edge: Edge,
    https: SocketAddr,
    a: tempfile::TempDir,
    b: tempfile::TempDir,
}

async fn setup() -> Setup {
    let origin = Origin::start().await;
    origin.route(
        "/v/seg.ts",
        Route::ok(bytes_of(100_000, 70)).header("content-type", "video/mp2t"),
    );
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    generate_dev(a.path(), &["a.test".into(), "127.0.0.1".into()]).unwrap();
    generate_dev(b.path(), &["*.b.test".into()]).unwrap();
    let https: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (ad, bd) = (a.path().display(), b.path().display());
    let cfg = format!(
        "[tls]\ncerts = [{{ cert = \"{ad}/edge.pem\", key = \"{ad}/edge-key.pem\" }}, {{ cert = \"{bd}/edge.pem\", key = \"{bd}/edge-key.pem\" }}]\n\
         reload_interval = \"200ms\"\n[[origins]]\nname = \"o\"\nnodes = [{{ addr = \"{}\" }}]\n",
        origin.addr
    );
    let edge = Edge::start_with_config(&cfg, &format!("https = \"{https}\"\n")).await;
    Setup {
        origin,
        edge,
        https,
        a,
        b,
    }
}

#[tokio::test]
async fn h2_is_negotiated_and_caching_and_ranges_work_over_it() {
    let s = setup().await;
    let c = https_client(&[ca(s.a.path())], s.https, false);
    let r = c.get("https://a.test/v/seg.ts").send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.headers()["x-cache"], "MISS");
    assert_eq!(r.bytes().await.unwrap().len(), 100_000);
    let r = c
        .get("https://a.test/v/seg.ts")
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.version(), r.status().as_u16()),
        (reqwest::Version::HTTP_2, 206)
    );
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(r.headers()["content-range"], "bytes 10-19/100000");
    assert_eq!(r.bytes().await.unwrap(), &bytes_of(100_000, 70)[10..20]);
    // HTTP/1.1 clients fall back over the same listener.
    let h1 = https_client(&[ca(s.a.path())], s.https, true);
    let r = h1.get("https://a.test/v/seg.ts").send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(
        s.origin.hits("/v/seg.ts"),
        1,
        "one object for h1, h2 and plain HTTP alike"
    );
}

/// Many streams answered together on one HTTP/2 connection share writes (the connection holds
/// small writes until the codec flushes, large ones go straight through after them): every
/// answer still arrives whole and in its own stream — small hits, 100 KB hits and ranges mixed,
/// 60 at once.
#[tokio::test]
async fn many_streams_at_once_on_one_h2_connection_each_get_their_own_bytes() {
    let s = setup().await;
    s.origin.route(
        "/v/small.m3u8",
        Route::ok(bytes_of(700, 3)).header("content-type", "application/vnd.apple.mpegurl"),
    );
    let c = https_client(&[ca(s.a.path())], s.https, false);
    // Stored first, so that every request below is a hit.
    for path in ["/v/small.m3u8", "/v/seg.ts"] {
        let r = c.get(format!("https://a.test{path}")).send().await.unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        r.bytes().await.unwrap();
    }
    let small = bytes_of(700, 3);
    let seg = bytes_of(100_000, 70);
    let mut asks = Vec::new();
    for i in 0..60usize {
        let c = c.clone();
        asks.push(tokio::spawn(async move {
            let (path, range) = match i % 4 {
                0 | 1 => ("/v/small.m3u8", None),
                2 => ("/v/seg.ts", None),
                _ => (
                    "/v/seg.ts",
                    Some(format!("bytes={}-{}", i * 100, i * 100 + 99)),
                ),
            };
            let mut req = c.get(format!("https://a.test{path}"));
            if let Some(r) = &range {
                req = req.header("range", r);
            }
            let r = req.send().await.unwrap();
            let version = r.version();
            let cache = r.headers()["x-cache"].to_str().unwrap().to_string();
            (i, range.is_some(), version, cache, r.bytes().await.unwrap())
        }));
    }
    for ask in asks {
        let (i, ranged, version, cache, body) = ask.await.unwrap();
        assert_eq!(version, reqwest::Version::HTTP_2, "request {i}");
        assert_eq!(cache, "HIT", "request {i}");
        match i % 4 {
            0 | 1 => assert_eq!(body, small, "request {i}"),
            2 => assert_eq!(body, seg, "request {i}"),
            _ => {
                assert!(ranged);
                assert_eq!(body, &seg[i * 100..i * 100 + 100], "request {i}");
            }
        }
    }
    assert_eq!(s.origin.hits("/v/small.m3u8"), 1);
    assert_eq!(s.origin.hits("/v/seg.ts"), 1);
}

#[tokio::test]
async fn the_certificate_is_chosen_by_sni() {
    let s = setup().await;
    let only_a = https_client(&[ca(s.a.path())], s.https, false);
    let only_b = https_client(&[ca(s.b.path())], s.https, false);
    // Exact name: the a.test certificate (signed by CA a only).
    assert_eq!(
        only_a
            .get("https://a.test/healthz")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(only_b.get("https://a.test/healthz").send().await.is_err());
    // Wildcard: *.b.test.
    assert_eq!(
        only_b
            .get("https://x.b.test/healthz")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(only_a.get("https://x.b.test/healthz").send().await.is_err());
    // No SNI (an IP address): the default, first certificate, which also names 127.0.0.1.
    let r = only_a
        .get(format!("https://127.0.0.1:{}/healthz", s.https.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn certificates_reload_without_a_restart_and_bad_files_keep_the_old_ones() {
    let s = setup().await;
    let old = https_client(&[ca(s.a.path())], s.https, false);
    assert_eq!(
        old.get("https://a.test/healthz")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // A new CA and certificate for a.test replace the files in place.
    let fresh = tempfile::tempdir().unwrap();
    generate_dev(fresh.path(), &["a.test".into(), "127.0.0.1".into()]).unwrap();
    for f in ["edge.pem", "edge-key.pem"] {
        std::fs::copy(fresh.path().join(f), s.a.path().join(f)).unwrap();
    }
    let new = https_client(&[ca(fresh.path())], s.https, false);
    let mut served_new = false;
    for _ in 0..50 {
        if new
            .get("https://a.test/healthz")
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            served_new = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        served_new,
        "the new certificate is served without a restart"
    );
    // The connection opened before the reload still works (it was not dropped).
    assert_eq!(
        old.get("https://a.test/healthz")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // A broken file is refused: the new certificate stays in service.
    std::fs::write(
        s.a.path().join("edge.pem"),
        b"-----BEGIN CERTIFICATE-----\ngarbage\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let again = https_client(&[ca(fresh.path())], s.https, false);
    assert_eq!(
        again
            .get("https://a.test/healthz")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(
        s.edge.log().contains("do not load"),
        "the failed reload is logged:\n{}",
        s.edge.log()
    );
}

#[tokio::test]
async fn bad_certificate_files_are_clear_start_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = tempfile::tempdir().unwrap();
    generate_dev(good.path(), &["a.test".into()]).unwrap();
    let other = tempfile::tempdir().unwrap();
    generate_dev(other.path(), &["b.test".into()]).unwrap();
    std::fs::write(dir.path().join("garbage.pem"), b"not a certificate").unwrap();
    let (g, o) = (good.path().display(), other.path().display());
    let d = dir.path().display();
    let cases = [
        (
            format!("{d}/missing.pem"),
            format!("{g}/edge-key.pem"),
            "missing.pem",
        ),
        (
            format!("{d}/garbage.pem"),
            format!("{g}/edge-key.pem"),
            "garbage.pem",
        ),
        (format!("{g}/edge.pem"), format!("{o}/edge-key.pem"), "edge"),
    ];
    for (cert, key, names) in cases {
        let cfg = dir.path().join("edge.toml");
        std::fs::write(
            &cfg,
            format!(
                "[server]\nhttp = \"127.0.0.1:{}\"\nadmin = \"127.0.0.1:{}\"\nhttps = \"127.0.0.1:{}\"\n\
                 [tls]\ncerts = [{{ cert = \"{cert}\", key = \"{key}\" }}]\n[cache]\ndir = \"{d}/c\"\ndisk = \"64 MiB\"\nmax_object = \"1 MiB\"\n\
                 [[origins]]\nname = \"o\"\nnodes = [{{ addr = \"127.0.0.1:9\" }}]\n",
                free_port(),
                free_port(),
                free_port()
            ),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_edge"))
            .args(["serve", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(69), "{cert} {key}: {err}");
        assert!(
            err.starts_with("edge: tls: ") && err.contains(names),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[tokio::test]
async fn tls_origins_are_verified_against_the_pool_ca() {
    let certs = tempfile::tempdir().unwrap();
    generate_dev(certs.path(), &["origin.test".into()]).unwrap();
    let origin = Origin::start_tls(certs.path()).await;
    origin.route("/v/secure.ts", Route::ok("over tls"));
    let ca_file = certs.path().join("edge-dev-ca.pem");
    let pool = |ca: &str, sni: &str| {
        format!(
            "[[origins]]\nname = \"tls\"\nca_file = \"{ca}\"\nnodes = [{{ addr = \"{}\", tls = true, sni = \"{sni}\" }}]\n",
            origin.addr
        )
    };
    let edge =
        Edge::start_with_config(&pool(&ca_file.display().to_string(), "origin.test"), "").await;
    let r = crate::support::client()
        .get(edge.url("/v/secure.ts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "over tls");
    // A name the certificate does not carry fails verification: an upstream error, never the body.
    let other = tempfile::tempdir().unwrap();
    generate_dev(other.path(), &["elsewhere.test".into()]).unwrap();
    let wrong_ca = other.path().join("edge-dev-ca.pem");
    for (ca, sni) in [
        (ca_file.display().to_string(), "wrong.test"),
        (wrong_ca.display().to_string(), "origin.test"),
    ] {
        let bad = Edge::start_with_config(&pool(&ca, sni), "").await;
        let r = crate::support::client()
            .get(bad.url("/v/secure.ts"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 502, "sni {sni}");
        assert!(
            bad.metric(&format!(
                r#"edge_upstream_requests_total{{pool="tls",node="{}",status="connect_error"}}"#,
                origin.addr
            ))
            .await
                >= 1.0
        );
    }
    assert_eq!(
        origin.hits("/v/secure.ts"),
        1,
        "unverified connections never sent the request"
    );
}

/// The head size limits hold on HTTP/2 too: the gate measures `:path` and each field (414,
/// 431, counted), and the h2 codec refuses a header list over `max_head` (431) before any
/// stream is opened.
#[tokio::test]
async fn head_limits_hold_on_h2() {
    let s = setup().await;
    let c = https_client(&[ca(s.a.path())], s.https, false);
    let r = c
        .get(format!("https://a.test/v/seg.ts?q={}", "q".repeat(9000)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.version(), r.status().as_u16()),
        (reqwest::Version::HTTP_2, 414)
    );
    let r = c
        .get("https://a.test/v/seg.ts")
        .header("x-long", "v".repeat(9000))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()
                .get("x-edge-reason")
                .map(|v| v.to_str().unwrap())
        ),
        (431, Some("header_field_too_large"))
    );
    let mut big = c.get("https://a.test/v/seg.ts");
    for i in 0..40 {
        big = big.header(format!("x-f{i}"), "v".repeat(1000));
    }
    let r = big.send().await.unwrap();
    assert_eq!(
        (r.version(), r.status().as_u16()),
        (reqwest::Version::HTTP_2, 431)
    );
    assert!(
        r.headers().get("x-edge-reason").is_none(),
        "the h2 codec's 431, before the gate"
    );
    assert_eq!(
        s.edge
            .metric("edge_connection_limits_total{limit=\"head_size\"}")
            .await,
        0.0
    );
    assert_eq!(s.origin.hits("/v/seg.ts"), 0, "nothing reached the origin");
    for limit in ["request_line", "header_field"] {
        assert_eq!(
            s.edge
                .metric(&format!(
                    "edge_connection_limits_total{{limit=\"{limit}\"}}"
                ))
                .await,
            1.0,
            "{limit}"
        );
    }
    // A head within the limits still passes.
    let r = c
        .get("https://a.test/v/seg.ts")
        .header("x-ok", "v".repeat(4000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
