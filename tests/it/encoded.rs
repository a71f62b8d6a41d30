//! Encoded playlists through an edge that rewrites them for query tokens and `mh` claims:
//! gzip and br from a real nginx, deflate and br from the raw test origin; bodies that cannot
//! be decoded are refused (clear status, or an unfinished response) and counted, never sent
//! mangled. Also chunked identity playlists, whose end a body filter does not see on a miss.

use std::io::{Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use edge::token::{self, Claims, Keyring};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::nginx::{Nginx, NginxOptions};
use crate::support::{client, Edge, Origin, Route};

const KEY: [u8; 32] = [0x42; 32];
const M3U8: &str = "application/vnd.apple.mpegurl";
const MASTER: &str = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=200000,RESOLUTION=426x240\n240p/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=1280x720\n720p/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1920x1080\n1080p/index.m3u8\n";

/// A media playlist with a URI in every place one can be: `EXT-X-MAP`, `EXT-X-KEY`, segments.
fn media() -> String {
    let mut m = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-KEY:METHOD=AES-128,URI=\"key.bin\"\n");
    for i in 0..50 {
        m.push_str(&format!("#EXTINF:4.000,\nseg_{i:03}.m4s\n"));
    }
    m.push_str("#EXT-X-ENDLIST\n");
    m
}

/// [`media`] as the viewer with token `t` must receive it.
fn media_for(t: &str) -> String {
    media()
        .replace("init.mp4", &format!("init.mp4?token={t}"))
        .replace("key.bin", &format!("key.bin?token={t}"))
        .replace(".m4s\n", &format!(".m4s?token={t}\n"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(claims: &Claims) -> String {
    token::sign(&Keyring::single("k2", &KEY).unwrap(), claims).unwrap()
}

fn grant(mh: Option<u32>) -> String {
    let mut c = Claims::new("/v/", now() + 600);
    c.mh = mh;
    sign(&c)
}

/// An edge in front of `origin` that requires tokens (query parameter `token`).
async fn edge(origin: std::net::SocketAddr) -> (Edge, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let hex: String = KEY.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(keys.path().join("k2.key"), hex).unwrap();
    let cfg = format!(
        "[tokens]\nrequired = true\ncurrent = \"k2\"\nmax_ttl = \"1h\"\nkeys = [{{ id = \"k2\", secret_file = \"{}/k2.key\" }}]\n",
        keys.path().display()
    );
    (Edge::start(origin, &cfg).await, keys)
}

/// A GET with `Accept-Encoding: accept`: status, headers, and the body decoded per its
/// `Content-Encoding` (the edge may send identity or re-encode; the viewer decodes either).
async fn get(url: &str, accept: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let r = client()
        .get(url)
        .header("accept-encoding", accept)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let raw = r.bytes().await.unwrap().to_vec();
    let coding = headers
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_ascii_lowercase());
    let body = match coding.as_deref() {
        None | Some("identity") => raw,
        Some(c) => decode(c, &raw)
            .unwrap_or_else(|e| panic!("body claims {c} but does not decode ({e}): {raw:?}")),
    };
    (status, headers, body)
}

fn decode(coding: &str, raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match coding {
        "gzip" => flate2::read::MultiGzDecoder::new(raw).read_to_end(&mut out)?,
        "deflate" => flate2::read::ZlibDecoder::new(raw).read_to_end(&mut out)?,
        "br" => brotli::Decompressor::new(raw, 4096).read_to_end(&mut out)?,
        other => panic!("unexpected content-encoding {other}"),
    };
    Ok(out)
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(body).unwrap();
    e.finish().unwrap()
}

fn zlib(body: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(body).unwrap();
    e.finish().unwrap()
}

fn br(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
    e.write_all(body).unwrap();
    drop(e);
    out
}

/// What nginx answers the edge's request directly: proof the origin really encodes.
async fn origin_coding(nginx: &Nginx, path: &str, accept: &str) -> Option<String> {
    let r = client()
        .get(format!("http://{}{path}", nginx.addr))
        .header("accept-encoding", accept)
        .header("via", "1.1 edge") // as the edge sends it: nginx must compress proxied requests too
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_string())
}

fn text(body: Vec<u8>) -> String {
    String::from_utf8(body).unwrap_or_else(|e| panic!("not text: {:?}", e.as_bytes()))
}

#[tokio::test]
async fn a_gzip_media_playlist_from_nginx_reaches_a_query_token_viewer_decodable_and_carrying_the_token(
) {
    let nginx = Nginx::start(NginxOptions::default()).await;
    nginx.put("/v/a/240p/index.m3u8", media());
    assert_eq!(
        origin_coding(&nginx, "/v/a/240p/index.m3u8", "gzip")
            .await
            .as_deref(),
        Some("gzip")
    );
    let (edge, _keys) = edge(nginx.addr).await;
    let t = grant(None);
    for want in ["MISS", "HIT"] {
        let (status, h, body) = get(
            &edge.url(&format!("/v/a/240p/index.m3u8?token={t}")),
            "gzip",
        )
        .await;
        assert_eq!(
            (status, h["x-cache"].to_str().unwrap()),
            (200, want),
            "{h:?}"
        );
        assert_eq!(h["cache-control"], "private, no-store");
        assert!(h
            .get("content-length")
            .is_none_or(|n| n.to_str().unwrap() == body.len().to_string()));
        assert_eq!(text(body), media_for(&t), "{want}");
    }
    assert_eq!(
        edge.metric("edge_front_hits_total").await,
        0.0,
        "the front leaves rewritten playlists to the pipeline"
    );
    // The cache kept nginx's bytes: a path-token viewer (nothing to rewrite) gets them as is.
    let (status, h, body) = get(&edge.url(&format!("/t/{t}/v/a/240p/index.m3u8")), "gzip").await;
    assert_eq!((status, h["x-cache"].to_str().unwrap()), (200, "HIT"));
    assert_eq!(h["content-encoding"], "gzip");
    assert_eq!(text(body), media());
    assert_eq!(
        nginx.hits("/v/a/240p/index.m3u8"),
        2,
        "one direct request, one fill"
    );
    assert_eq!(
        edge.metric("edge_playlist_rewrite_failures_total{reason=\"corrupt\"}")
            .await,
        0.0
    );
}

#[tokio::test]
async fn a_gzip_master_from_nginx_is_filtered_by_mh_for_query_and_path_tokens() {
    let nginx = Nginx::start(NginxOptions::default()).await;
    nginx.put("/v/a/master.m3u8", MASTER);
    assert_eq!(
        origin_coding(&nginx, "/v/a/master.m3u8", "gzip")
            .await
            .as_deref(),
        Some("gzip")
    );
    let (edge, _keys) = edge(nginx.addr).await;
    let t = grant(Some(720));
    let want = format!(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=200000,RESOLUTION=426x240\n240p/index.m3u8?token={t}\n#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=1280x720\n720p/index.m3u8?token={t}\n"
    );
    for cache in ["MISS", "HIT"] {
        let (status, h, body) = get(
            &edge.url(&format!("/v/a/master.m3u8?token={t}")),
            "gzip, deflate, br",
        )
        .await;
        assert_eq!((status, h["x-cache"].to_str().unwrap()), (200, cache));
        assert_eq!(text(body), want);
    }
    // A path token: only filtered (no query to carry), from the same cached gzip bytes.
    // (The same Accept-Encoding: `Vary: Accept-Encoding` keeps one variant per class.)
    let (status, _, body) = get(
        &edge.url(&format!("/t/{t}/v/a/master.m3u8")),
        "gzip, deflate, br",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        text(body),
        MASTER.replace(
            "#EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1920x1080\n1080p/index.m3u8\n",
            ""
        )
    );
    assert_eq!(
        nginx.hits("/v/a/master.m3u8"),
        2,
        "one direct request, one fill"
    );
}

#[tokio::test]
async fn a_br_media_playlist_from_nginx_with_the_brotli_module() {
    let nginx = Nginx::start(NginxOptions {
        brotli: true,
        ..NginxOptions::default()
    })
    .await;
    nginx.put("/v/b/index.m3u8", media());
    assert_eq!(
        origin_coding(&nginx, "/v/b/index.m3u8", "br")
            .await
            .as_deref(),
        Some("br")
    );
    let (edge, _keys) = edge(nginx.addr).await;
    let t = grant(None);
    for cache in ["MISS", "HIT"] {
        let (status, h, body) = get(&edge.url(&format!("/v/b/index.m3u8?token={t}")), "br").await;
        assert_eq!((status, h["x-cache"].to_str().unwrap()), (200, cache));
        assert_eq!(text(body), media_for(&t));
    }
}

#[tokio::test]
async fn deflate_and_br_from_the_raw_origin_are_decoded_on_miss_and_hit() {
    let origin = Origin::start().await;
    let m = media();
    // Sent in 7 pieces, so the edge decodes across chunk boundaries.
    let pieces = |r: Route| {
        r.header("content-type", M3U8)
            .header("vary", "Accept-Encoding")
            .paced(7, Duration::from_millis(70))
    };
    origin.route(
        "/v/d/index.m3u8",
        pieces(Route::ok(zlib(m.as_bytes())).header("content-encoding", "deflate")),
    );
    origin.route(
        "/v/r/index.m3u8",
        pieces(Route::ok(br(m.as_bytes())).header("content-encoding", "br")),
    );
    origin.route(
        "/v/g/master.m3u8",
        pieces(Route::ok(gzip(MASTER.as_bytes())).header("content-encoding", "GZIP")),
    );
    let (edge, _keys) = edge(origin.addr).await;
    let t = grant(None);
    for (path, accept) in [("/v/d/index.m3u8", "deflate"), ("/v/r/index.m3u8", "br")] {
        for cache in ["MISS", "HIT"] {
            let (status, h, body) = get(&edge.url(&format!("{path}?token={t}")), accept).await;
            assert_eq!(
                (status, h["x-cache"].to_str().unwrap()),
                (200, cache),
                "{path}"
            );
            assert_eq!(text(body), media_for(&t), "{path} {cache}");
        }
        assert_eq!(origin.hits(path), 1);
    }
    // mh over a Content-Length body (the raw origin sends one; nginx's gzip is chunked)
    let t = grant(Some(240));
    let (_, _, body) = get(&edge.url(&format!("/v/g/master.m3u8?token={t}")), "gzip").await;
    assert_eq!(text(body), format!("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=200000,RESOLUTION=426x240\n240p/index.m3u8?token={t}\n"));
}

/// A GET over a raw socket: the status line's code (0 if none arrived) and every byte after
/// the response head, read until the edge closes or 10 s pass.
async fn raw_body(edge: &Edge, target: &str) -> (u16, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(edge.http).await.unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nhost: edge.test\r\naccept-encoding: gzip\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("edge left the connection open");
    let status = std::str::from_utf8(&buf[..buf.len().min(12)])
        .ok()
        .and_then(|l| l.get(9..12)?.parse().ok())
        .unwrap_or(0);
    let body = match buf.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => buf[i + 4..].to_vec(),
        None => Vec::new(),
    };
    (status, body)
}

#[tokio::test]
async fn a_body_that_claims_gzip_but_is_not_is_never_sent_mangled() {
    let origin = Origin::start().await;
    let m = media();
    // Plain text labelled gzip, and real gzip whose CRC is wrong (every byte decodes; only the
    // trailer shows the damage).
    let mut bad_crc = gzip(m.as_bytes());
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 0x55;
    origin.route(
        "/v/x/plain.m3u8",
        Route::ok(m.clone())
            .header("content-type", M3U8)
            .header("content-encoding", "gzip"),
    );
    origin.route(
        "/v/x/crc.m3u8",
        Route::ok(bad_crc)
            .header("content-type", M3U8)
            .header("content-encoding", "gzip"),
    );
    let (edge, _keys) = edge(origin.addr).await;
    let t = grant(None);
    let mut failures = 0.0;
    for path in ["/v/x/plain.m3u8", "/v/x/crc.m3u8"] {
        for _ in 0..2 {
            // A real client sees an error, not a playlist.
            let url = edge.url(&format!("{path}?token={t}"));
            match client()
                .get(&url)
                .header("accept-encoding", "gzip")
                .send()
                .await
            {
                Err(_) => {}
                Ok(r) => {
                    let status = r.status();
                    let body = r.bytes().await;
                    assert!(
                        body.is_err(),
                        "{path}: {status} with a complete body {body:?}"
                    );
                }
            }
            // On the wire: the 200 head (already out when the body proved bad), then not one byte
            // of body, no last chunk: the connection closes.
            let (status, body) = raw_body(&edge, &format!("{path}?token={t}")).await;
            assert!(status == 0 || status == 200, "{path}: {status}");
            assert!(
                body.is_empty(),
                "{path}: body bytes were sent: {:?}",
                String::from_utf8_lossy(&body)
            );
            failures += 2.0;
            assert_eq!(
                edge.metric("edge_playlist_rewrite_failures_total{reason=\"corrupt\"}")
                    .await,
                failures
            );
        }
    }
}

#[tokio::test]
async fn an_unsupported_coding_is_a_502_with_its_reason_and_the_cache_keeps_the_origin_bytes() {
    let origin = Origin::start().await;
    let fake_zstd = b"\x28\xb5\x2f\xfd not really zstd".to_vec();
    origin.route(
        "/v/z/index.m3u8",
        Route::ok(fake_zstd.clone())
            .header("content-type", M3U8)
            .header("content-encoding", "zstd"),
    );
    origin.route(
        "/v/s/index.m3u8",
        Route::ok(gzip(&gzip(media().as_bytes())))
            .header("content-type", M3U8)
            .header("content-encoding", "gzip, gzip"),
    );
    let (edge, _keys) = edge(origin.addr).await;
    let t = grant(None);
    let mut refused = 0.0;
    for path in ["/v/z/index.m3u8", "/v/s/index.m3u8"] {
        for cache in ["MISS", "HIT"] {
            let r = client()
                .get(edge.url(&format!("{path}?token={t}")))
                .header("accept-encoding", "zstd, gzip")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 502, "{path}");
            assert_eq!(r.headers()["x-edge-reason"], "playlist_undecodable");
            assert_eq!(r.headers()["x-cache"], cache);
            assert!(r.headers().get("content-encoding").is_none());
            assert_eq!(r.text().await.unwrap(), "playlist_undecodable\n");
            refused += 1.0;
            assert_eq!(
                edge.metric(
                    "edge_playlist_rewrite_failures_total{reason=\"unsupported_encoding\"}"
                )
                .await,
                refused
            );
        }
        assert_eq!(origin.hits(path), 1);
    }
    // Nothing to rewrite for a path token: the origin's bytes, coding and all.
    let r = client()
        .get(edge.url(&format!("/t/{t}/v/z/index.m3u8")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["content-encoding"].to_str().unwrap()
        ),
        (200, "zstd")
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), fake_zstd.as_slice());
}

#[tokio::test]
async fn a_playlist_decoding_past_8_mib_is_refused_not_held() {
    let origin = Origin::start().await;
    // ~9 MiB of segment lines: about 40 KiB of gzip.
    let mut big = String::from("#EXTM3U\n#EXT-X-TARGETDURATION:4\n");
    while big.len() <= 9 << 20 {
        big.push_str("#EXTINF:4.000,\nsegment_0000000.ts\n");
    }
    origin.route(
        "/v/big/index.m3u8",
        Route::ok(gzip(big.as_bytes()))
            .header("content-type", M3U8)
            .header("content-encoding", "gzip"),
    );
    let (edge, _keys) = edge(origin.addr).await;
    let t = grant(None);
    let (_, body) = raw_body(&edge, &format!("/v/big/index.m3u8?token={t}")).await;
    assert!(body.is_empty(), "{} body bytes were sent", body.len());
    assert_eq!(
        edge.metric("edge_playlist_rewrite_failures_total{reason=\"too_large\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn a_chunked_identity_playlist_is_filtered_and_rewritten_whole_on_a_miss() {
    // sub_filter makes nginx send static files chunked, as dynamic origins (Node) do.
    let extra_http =
        "sub_filter 'no-such-text' 'x';\n    sub_filter_types application/vnd.apple.mpegurl;"
            .to_string();
    let nginx = Nginx::start(NginxOptions {
        extra_http,
        ..NginxOptions::default()
    })
    .await;
    nginx.put("/v/a/master.m3u8", MASTER);
    nginx.put("/v/a/nonl.m3u8", "#EXTM3U\n#EXTINF:4,\nseg.ts");
    let direct = client()
        .get(format!("http://{}/v/a/master.m3u8", nginx.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.headers()["transfer-encoding"], "chunked");
    let (edge, _keys) = edge(nginx.addr).await;
    let t = grant(Some(720));
    for cache in ["MISS", "HIT"] {
        let (status, h, body) = get(
            &edge.url(&format!("/v/a/master.m3u8?token={t}")),
            "identity",
        )
        .await;
        assert_eq!((status, h["x-cache"].to_str().unwrap()), (200, cache));
        assert!(h.get("content-encoding").is_none());
        assert_eq!(
            text(body),
            format!("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=200000,RESOLUTION=426x240\n240p/index.m3u8?token={t}\n#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=1280x720\n720p/index.m3u8?token={t}\n"),
            "{cache}"
        );
    }
    let t = grant(None);
    for cache in ["MISS", "HIT"] {
        let (_, h, body) = get(&edge.url(&format!("/v/a/nonl.m3u8?token={t}")), "identity").await;
        assert_eq!(h["x-cache"], cache);
        assert_eq!(
            text(body),
            format!("#EXTM3U\n#EXTINF:4,\nseg.ts?token={t}"),
            "the last line has no newline: {cache}"
        );
    }
}
