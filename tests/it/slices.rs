//! Large objects by slices (`[[cache.slices]]`, issue 18 item 5), against a real nginx serving
//! a 64 MiB file with ranges and validators: a range from a cold cache asks the origin only for
//! the slices it touches, the same range again asks it nothing, a full GET is the file byte
//! for byte, and a file changed at the origin is never answered with slices of two versions.
//! An origin that ignores `Range` (the test origin) still answers, uncached.

use std::time::{Duration, SystemTime};

use crate::support::nginx::{Nginx, NginxOptions};
use crate::support::{bytes_of, client, Edge, Origin, Route};

const MIB: usize = 1 << 20;
/// The object: 64 MiB, cut into 1 MiB slices.
const LEN: usize = 64 * MIB;
const PATH: &str = "/vod/big.mp4";

/// The cache settings: 1 MiB slices under `/vod/`, a memory tier that holds the object.
const SLICES: &str =
    "memory = \"160 MiB\"\n[[cache.slices]]\nprefix = \"/vod/\"\nsize = \"1 MiB\"\n";

/// nginx with a second access log of each request's `Range`, and the edge in front of it.
async fn setup(body: &[u8]) -> (Nginx, Edge) {
    setup_with(body, "").await
}

/// As [`setup`], with more nginx `http` directives.
async fn setup_with(body: &[u8], extra: &str) -> (Nginx, Edge) {
    let nginx = Nginx::start(NginxOptions {
        extra_http: format!(
            "log_format ranges '$uri $http_range $status';\n    access_log ranges.log ranges;\n    {extra}"
        ),
        ..NginxOptions::default()
    })
    .await;
    nginx.put(PATH, body);
    let edge = Edge::start_cache(nginx.addr, SLICES).await;
    (nginx, edge)
}

/// The `Range` and status of each request nginx answered for `PATH`, in its log's order.
fn origin_answers(nginx: &Nginx) -> Vec<String> {
    let log = std::fs::read_to_string(nginx.root().parent().unwrap().join("ranges.log"))
        .unwrap_or_default();
    log.lines()
        .filter_map(|l| l.strip_prefix(&format!("{PATH} ")))
        .map(str::to_string)
        .collect()
}

/// The `Range` values nginx was asked for `PATH`, in its log's order.
fn origin_ranges(nginx: &Nginx) -> Vec<String> {
    let log = std::fs::read_to_string(nginx.root().parent().unwrap().join("ranges.log"))
        .unwrap_or_default();
    log.lines()
        .filter_map(|l| l.strip_prefix(&format!("{PATH} ")))
        .map(|l| l.rsplit_once(' ').map_or(l, |(r, _)| r).to_string())
        .collect()
}

fn slice_range(index: usize) -> String {
    format!("bytes={}-{}", index * MIB, (index + 1) * MIB - 1)
}

/// GET `PATH` with `range`: status, `X-Cache`, `Content-Range` and the body.
async fn get(edge: &Edge, range: Option<&str>) -> (u16, String, Option<String>, Vec<u8>) {
    let mut req = client().get(edge.url(PATH));
    if let Some(r) = range {
        req = req.header("range", r);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let h = |n: &str| {
        resp.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (cache, content_range) = (h("x-cache").unwrap_or_default(), h("content-range"));
    if let Some(cl) = h("content-length") {
        let body = resp.bytes().await.unwrap().to_vec();
        assert_eq!(cl, body.len().to_string());
        return (status, cache, content_range, body);
    }
    (
        status,
        cache,
        content_range,
        resp.bytes().await.unwrap().to_vec(),
    )
}

fn sha256(b: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .to_vec()
}

#[tokio::test]
async fn a_range_from_a_cold_cache_asks_the_origin_only_for_the_slices_it_touches() {
    let body = bytes_of(LEN, 18);
    let (nginx, edge) = setup(&body).await;
    let (a, b) = (5 * MIB + 100, 6 * MIB + 200);
    let range = format!("bytes={a}-{b}");
    let (status, cache, content_range, got) = get(&edge, Some(&range)).await;
    assert_eq!((status, cache.as_str()), (206, "MISS"));
    assert_eq!(
        content_range.as_deref(),
        Some(&*format!("bytes {a}-{b}/{LEN}"))
    );
    assert!(got == body[a..=b], "the bytes of the range");
    let mut want = vec![slice_range(5), slice_range(6)];
    assert_eq!(origin_ranges(&nginx), want, "slices 5 and 6 only");

    // The same range, and a range inside one of its slices: hits, nothing asked of nginx.
    let (status, cache, _, again) = get(&edge, Some(&range)).await;
    assert_eq!((status, cache.as_str()), (206, "HIT"));
    assert!(again == body[a..=b]);
    let inner = format!("bytes={}-{}", 6 * MIB + 7, 6 * MIB + 9);
    let (status, cache, _, three) = get(&edge, Some(&inner)).await;
    assert_eq!(
        (status, cache.as_str(), three.as_slice()),
        (206, "HIT", &body[6 * MIB + 7..=6 * MIB + 9])
    );
    assert_eq!(
        origin_ranges(&nginx),
        want,
        "no origin request for cached slices"
    );

    // An open range at the end touches the last slice only; a suffix needs the first slice
    // for the length, then its own.
    let (status, _, content_range, tail) = get(&edge, Some(&format!("bytes={}-", LEN - 10))).await;
    assert_eq!((status, tail.as_slice()), (206, &body[LEN - 10..]));
    assert_eq!(
        content_range.as_deref(),
        Some(&*format!("bytes {}-{}/{LEN}", LEN - 10, LEN - 1))
    );
    want.push(slice_range(63));
    assert_eq!(origin_ranges(&nginx), want);
    let (status, cache, _, suffix) = get(&edge, Some("bytes=-3000000")).await;
    assert_eq!((status, suffix.as_slice()), (206, &body[LEN - 3_000_000..]));
    assert_eq!(cache, "MISS");
    want.extend([slice_range(0), slice_range(61), slice_range(62)]);
    assert_eq!(origin_ranges(&nginx), want);

    // Past the end: 416 with the length, as nginx answers it.
    let (status, _, content_range, _) = get(&edge, Some(&format!("bytes={LEN}-"))).await;
    assert_eq!(
        (status, content_range.as_deref()),
        (416, Some(&*format!("bytes */{LEN}")))
    );
}

#[tokio::test]
async fn a_full_get_streams_every_slice_in_order_and_is_byte_identical() {
    let body = bytes_of(LEN, 7);
    let (nginx, edge) = setup(&body).await;
    let (status, cache, content_range, got) = get(&edge, None).await;
    assert_eq!((status, cache.as_str(), content_range), (200, "MISS", None));
    assert_eq!(got.len(), LEN);
    assert_eq!(sha256(&got), sha256(&body), "byte-identical, in order");
    let mut asked = origin_ranges(&nginx);
    asked.sort_by_key(|r| {
        r.trim_start_matches("bytes=")
            .split('-')
            .next()
            .and_then(|n| n.parse::<usize>().ok())
    });
    let every: Vec<String> = (0..LEN / MIB).map(slice_range).collect();
    assert_eq!(asked, every, "each slice asked for once");

    let (status, cache, _, again) = get(&edge, None).await;
    assert_eq!((status, cache.as_str()), (200, "HIT"));
    assert_eq!(sha256(&again), sha256(&body));
    assert_eq!(origin_ranges(&nginx).len(), LEN / MIB, "all from the cache");
}

/// Replace the file with `body` and a modification time `secs` ahead, so nginx's `ETag` and
/// `Last-Modified` change.
fn change(nginx: &Nginx, body: &[u8], secs: u64) {
    let file = nginx.root().join(PATH.trim_start_matches('/'));
    std::fs::write(&file, body).unwrap();
    let f = std::fs::File::options().write(true).open(&file).unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(secs))
        .unwrap();
}

#[tokio::test]
async fn a_changed_object_is_refetched_never_answered_with_slices_of_two_versions() {
    let old = bytes_of(LEN, 1);
    let new = bytes_of(LEN, 2);
    let (nginx, edge) = setup(&old).await;
    // Slices 1, 2 and 10, 11 are cached from the old file.
    let r12 = format!("bytes={}-{}", MIB + 10, 3 * MIB - 10);
    let (_, _, _, got) = get(&edge, Some(&r12)).await;
    assert!(got == old[MIB + 10..3 * MIB - 9]);
    let r1011 = format!("bytes={}-{}", 10 * MIB, 12 * MIB - 1);
    let (_, _, _, got) = get(&edge, Some(&r1011)).await;
    assert!(got == old[10 * MIB..12 * MIB]);
    change(&nginx, &new, 100);

    // Slice 2 is cached (old), slice 3 comes from the origin (new): found before anything is
    // sent, so the object's slices are dropped and the answer is all new.
    let r23 = format!("bytes={}-{}", 2 * MIB + 5, 4 * MIB - 5);
    let (status, cache, _, got) = get(&edge, Some(&r23)).await;
    assert_eq!((status, cache.as_str()), (206, "MISS"));
    assert!(
        got == new[2 * MIB + 5..4 * MIB - 4],
        "the new version, whole"
    );
    let asked = origin_ranges(&nginx);
    let count = |r: &str| asked.iter().filter(|a| *a == r).count();
    assert_eq!(count(&slice_range(2)), 2, "slice 2 refetched: {asked:?}");
    assert!(count(&slice_range(3)) >= 1);
    // Slice 1 was dropped with the others: it comes from the origin again, new.
    let (_, cache, _, got) = get(&edge, Some(&r12)).await;
    assert_eq!(cache, "MISS");
    assert!(got == new[MIB + 10..3 * MIB - 9]);
    assert_eq!(
        origin_ranges(&nginx)
            .iter()
            .filter(|a| **a == slice_range(1))
            .count(),
        2
    );

    // Changed again, and this time the slices that differ are met after the answer began
    // (slices 10, 11 cached, 12 not): the response is cut short, never mixed, and the next
    // one is all of the newest version.
    let newer = bytes_of(LEN, 3);
    let (_, _, _, got) = get(&edge, Some(&r1011)).await;
    assert!(got == new[10 * MIB..12 * MIB], "10 and 11 cached, new");
    change(&nginx, &newer, 200);
    let r10to13 = format!("bytes={}-{}", 10 * MIB, 14 * MIB - 1);
    let resp = client()
        .get(edge.url(PATH))
        .header("range", &r10to13)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 206);
    let mut stream = resp;
    let mut received = Vec::new();
    let mut failed = false;
    loop {
        match stream.chunk().await {
            Ok(Some(c)) => received.extend_from_slice(&c),
            Ok(None) => break,
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "a cut answer is an error, not a clean short one");
    assert!(received.len() < 4 * MIB);
    assert!(
        received == new[10 * MIB..10 * MIB + received.len()],
        "only bytes of the version the answer began with"
    );
    let (status, _, _, got) = get(&edge, Some(&r10to13)).await;
    assert_eq!(status, 206);
    assert!(got == newer[10 * MIB..14 * MIB], "all newest");
}

#[tokio::test]
async fn an_origin_that_ignores_range_is_streamed_through_uncached() {
    let body = bytes_of(3 * MIB + 17, 5);
    let origin = Origin::start().await;
    origin.route(PATH, Route::ok(body.clone()));
    let edge = Edge::start_cache(origin.addr, SLICES).await;
    for n in 1..=2 {
        let (status, cache, content_range, got) = get(&edge, Some("bytes=1048576-2097151")).await;
        assert_eq!((status, cache.as_str()), (206, "MISS"));
        assert_eq!(
            content_range.as_deref(),
            Some(&*format!("bytes 1048576-2097151/{}", body.len()))
        );
        assert!(got == body[MIB..2 * MIB]);
        assert_eq!(origin.hits(PATH), n, "not stored");
    }
    let (status, _, _, got) = get(&edge, None).await;
    assert_eq!(status, 200);
    assert!(got == body);
}

/// HTTP/2 (TLS) and HTTP/1 (TLS) clients are answered from the same slices: an HTTP/2 request
/// is put to its slice subrequests in HTTP/1 form, with its authority as `Host`.
#[tokio::test]
async fn http2_and_tls_clients_read_the_same_slices() {
    use crate::support::stalled::{TlsEdge, Transport};
    let body = bytes_of(8 * MIB, 9);
    let origin = Origin::start().await;
    origin.route(PATH, Route::ok(body.clone()).etag("\"b1\"").ranges());
    let pool = format!(
        "[[origins]]\nname = \"test\"\nnodes = [{{ addr = \"{}\" }}]\n",
        origin.addr
    );
    let edge = TlsEdge::start(&pool, SLICES).await;
    let (a, b) = (3 * MIB - 1, 4 * MIB);
    for (transport, want_cache) in [(Transport::TlsH2, "MISS"), (Transport::TlsH1, "HIT")] {
        let r = edge
            .client(transport)
            .get(edge.url(transport, PATH))
            .header("range", format!("bytes={a}-{b}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206, "{transport:?}");
        assert_eq!(r.headers()["x-cache"], want_cache, "{transport:?}");
        assert!(r.bytes().await.unwrap() == body[a..=b], "{transport:?}");
    }
    assert_eq!(origin.hits(PATH), 3, "slices 2, 3 and 4, once");
    let r = edge
        .client(Transport::TlsH2)
        .get(edge.url(Transport::TlsH2, PATH))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap() == body);
    assert_eq!(origin.hits(PATH), 8, "the other five slices");
}

/// A slice past its freshness is revalidated with its own range and validator (nginx answers
/// 304), never served stale from a background revalidation that would not know its range.
#[tokio::test]
async fn an_expired_slice_is_revalidated_with_its_range() {
    let body = bytes_of(4 * MIB, 11);
    let (nginx, edge) = setup_with(&body, "expires 1s;").await;
    let range = format!("bytes={}-{}", MIB / 2, MIB + MIB / 2);
    let (status, _, _, got) = get(&edge, Some(&range)).await;
    assert_eq!(status, 206);
    assert!(got == body[MIB / 2..=MIB + MIB / 2]);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, _, _, got) = get(&edge, Some(&range)).await;
    assert_eq!(status, 206);
    assert!(got == body[MIB / 2..=MIB + MIB / 2]);
    assert_eq!(
        origin_answers(&nginx),
        [
            format!("{} 206", slice_range(0)),
            format!("{} 206", slice_range(1)),
            format!("{} 304", slice_range(0)),
            format!("{} 304", slice_range(1)),
        ],
        "revalidated, slice by slice"
    );
}
