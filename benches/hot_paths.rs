//! Criterion benchmarks of the per-request hot paths: token verification, the cache key,
//! the origin ring lookup, path normalisation, the playlist rewrite and the ban (purge) check
//! of every cache hit, with 0 and 100,000 bans.
//!
//! `cargo bench --bench hot_paths`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use edge::hls::PlaylistRewriter;
use edge::origin::ring::{NodeSpec, Ring};
use edge::token::{self, Claims, Keyring, VerifyPolicy};

const NOW: u64 = 1_800_000_000;

fn tokens(c: &mut Criterion) {
    let ring = Keyring::new([("k2", [0x42u8; 32]), ("k1", [0x17u8; 32])], "k2").unwrap();
    let mut claims = Claims::new("/v/title/", NOW + 3600);
    claims.sid = Some("session-123".into());
    let tok = token::sign(&ring, &claims).unwrap();
    let policy = VerifyPolicy::default();
    let ip = "192.0.2.10".parse().unwrap();
    c.bench_function("token_verify", |b| {
        b.iter(|| {
            token::verify(
                &ring,
                black_box(&tok),
                black_box("/v/title/720p/seg_00042.ts"),
                ip,
                NOW,
                &policy,
            )
            .unwrap()
        })
    });
    let forged = format!("{}A", &tok[..tok.len() - 1]);
    c.bench_function("token_verify_bad_signature", |b| {
        b.iter(|| {
            token::verify(
                &ring,
                black_box(&forged),
                "/v/title/720p/seg_00042.ts",
                ip,
                NOW,
                &policy,
            )
            .unwrap_err()
        })
    });
}

fn cache_key(c: &mut Criterion) {
    c.bench_function("cache_key", |b| {
        b.iter(|| {
            edge::cache::key::for_request(
                black_box("cdn.example"),
                black_box("/v/title/720p/seg_00042.ts"),
                None,
            )
        })
    });
    c.bench_function("path_normalize", |b| {
        b.iter(|| edge::path::normalize(black_box("/v/title/./720p//seg_%30042.ts")).unwrap())
    });
}

fn origin_ring(c: &mut Criterion) {
    let nodes: Vec<NodeSpec> = (0..8)
        .map(|i| NodeSpec {
            id: format!("10.0.0.{i}:8080"),
            weight: 100,
        })
        .collect();
    let ring = Ring::new(&nodes);
    let key = b"cdn.example/v/title/720p/seg_00042.ts?";
    c.bench_function("ring_lookup_8_nodes", |b| {
        b.iter(|| {
            ring.select(Ring::hash_key(black_box(key)), |_| true, |_| 3, 1.25)
                .unwrap()
        })
    });
}

fn playlist(c: &mut Criterion) {
    let mut media = String::from(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-MAP:URI=\"init.mp4\"\n",
    );
    for i in 0..5000 {
        media.push_str(&format!("#EXTINF:4.000,\nseg_{i:05}.m4s\n"));
    }
    media.push_str("#EXT-X-ENDLIST\n");
    let append = format!("token={}", "v1.k2.eyJleHAiOjE4MDAwMDM2MDAsImFjbCI6Ii92L3RpdGxlLyJ9.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2ln");
    let mut g = c.benchmark_group("playlist_rewrite");
    g.throughput(Throughput::Bytes(media.len() as u64));
    g.bench_function("vod_5000_segments", |b| {
        b.iter(|| {
            let mut rw = PlaylistRewriter::new(append.clone());
            let mut out = 0;
            for chunk in media.as_bytes().chunks(16 * 1024) {
                out += rw.push(chunk).len();
            }
            out + rw.finish().len()
        })
    });
    g.finish();
}

fn cache_meta(c: &mut Criterion) {
    use pingora_cache::CacheMeta;
    use pingora_http::ResponseHeader;
    use std::time::SystemTime;
    let mut h = ResponseHeader::build(200, None).unwrap();
    for (k, v) in [
        ("content-type", "video/mp2t"),
        ("content-length", "1048576"),
        ("etag", "\"5f3a-1a2b3c\""),
        ("last-modified", "Sat, 21 Nov 2026 04:55:06 GMT"),
        ("cache-control", "public, max-age=86400"),
        ("accept-ranges", "bytes"),
    ] {
        h.insert_header(k, v).unwrap();
    }
    let now = SystemTime::now();
    let meta = CacheMeta::new(now, now, 5, 300, h.clone());
    let (internal, header) = meta.serialize().unwrap();
    c.bench_function("cache_meta_deserialize", |b| {
        b.iter(|| CacheMeta::deserialize(black_box(&internal), black_box(&header)).unwrap())
    });
    c.bench_function("cache_meta_rebuild_from_decoded", |b| {
        b.iter(|| {
            let mut m = CacheMeta::new(now, now, 5, 300, black_box(&h).clone());
            m.set_epoch_override(now);
            m
        })
    });
}

/// `n` bans as `bans.log` lines, made an hour ago: 90 % exact URLs, 10 % prefixes, and among
/// them a ban of the looked-up URL and of three of its prefixes (older than the object, so
/// the lookup does all its work and still answers Keep).
fn ban_log(n: usize, at_ms: u64) -> String {
    use edge::cache::bans::Ban;
    let ban = |path: String, exact: bool| Ban {
        host: Some("cdn.example".into()),
        path: path.into(),
        exact,
        soft: false,
        at_ms,
    };
    let mut bans: Vec<Ban> = (0..n.saturating_sub(4))
        .map(|i| {
            if i % 10 == 9 {
                ban(format!("/v/title{i}/"), false)
            } else {
                ban(format!("/v/title{}/720p/seg_{i:05}.ts", i % 1000), true)
            }
        })
        .collect();
    if n >= 4 {
        bans.push(ban("/v/title/720p/seg_00042.ts".into(), true));
        for p in ["/", "/v/", "/v/title/"] {
            bans.push(ban(p.into(), false));
        }
    }
    bans.iter()
        .map(|b| serde_json::to_string(b).unwrap() + "\n")
        .collect()
}

fn bans(c: &mut Criterion) {
    use edge::cache::bans::{Ban, Bans, Verdict};
    use std::time::{SystemTime, UNIX_EPOCH};
    let now = SystemTime::now();
    let hour_ago = (now - Duration::from_secs(3600))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for n in [0, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bans.log"), ban_log(n, hour_ago)).unwrap();
        let bans = Bans::load(dir.path(), Duration::from_secs(14 * 86_400)).unwrap();
        assert_eq!(bans.len(), n);
        c.bench_function(&format!("ban_check_{n}_bans"), |b| {
            b.iter(|| {
                assert_eq!(
                    bans.verdict(
                        black_box("cdn.example"),
                        black_box("/v/title/720p/seg_00042.ts"),
                        now
                    ),
                    Verdict::Keep
                )
            })
        });
        if n > 0 {
            let before = now - Duration::from_secs(7200);
            c.bench_function(&format!("ban_check_{n}_bans_banned"), |b| {
                b.iter(|| {
                    assert_eq!(
                        bans.verdict(
                            black_box("cdn.example"),
                            black_box("/v/title7/720p/seg_00007.ts"),
                            before
                        ),
                        Verdict::Remove
                    )
                })
            });
            // The lookup this replaced: every ban scanned on every hit.
            let list: Vec<Ban> = ban_log(n, hour_ago)
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let stored = now.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
            c.bench_function(&format!("ban_scan_{n}_bans_before"), |b| {
                b.iter(|| {
                    let (host, path) = (
                        black_box("cdn.example"),
                        black_box("/v/title/720p/seg_00042.ts"),
                    );
                    list.iter().any(|b| {
                        b.at_ms >= stored
                            && b.host.as_deref().is_none_or(|h| h == host)
                            && if b.exact {
                                path == &*b.path
                            } else {
                                path.starts_with(&*b.path)
                            }
                    })
                })
            });
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = tokens, cache_key, origin_ring, playlist, cache_meta, bans
}
criterion_main!(benches);
