//! Pipelined requests (RFC 9112 §9.3.2): several requests sent before the first answer, in one
//! write or arriving while an answer streams, are all answered, whole and in order, whoever
//! answers each one — the front (fresh memory hits) or the Pingora pipeline (misses, bodies,
//! refusals, conditionals) — on an edge with the front's answers on and on one with
//! `fast_hits = false`, where the pipeline answers everything.

use std::time::Duration;

use crate::support::raw::{Conn, Resp};
use crate::support::{bytes_of, Edge, Origin, Route};

const KEY: [u8; 32] = [0x17; 32];

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: edge.test\r\n\r\n").into_bytes()
}

fn head(path: &str) -> Vec<u8> {
    format!("HEAD {path} HTTP/1.1\r\nHost: edge.test\r\n\r\n").into_bytes()
}

/// The origin's objects: hot ones (filled before each case), cold ones (misses), a slow
/// 1 MiB one and an echo for bodies.
struct Objects {
    hot: Vec<u8>,
    hot2: Vec<u8>,
    big: Vec<u8>,
}

fn objects(origin: &Origin) -> Objects {
    let seg = |body: &[u8]| {
        Route::ok(body.to_vec())
            .header("content-type", "video/mp2t")
            .header("cache-control", "max-age=600")
    };
    let o = Objects {
        hot: bytes_of(100_000, 1),
        hot2: bytes_of(30_000, 2),
        big: bytes_of(1 << 20, 3),
    };
    origin.route("/pub/hot.ts", seg(&o.hot).etag("\"h1\""));
    origin.route("/pub/hot2.ts", seg(&o.hot2));
    for i in 0..9 {
        origin.route(
            &format!("/pub/cold{i}.ts"),
            seg(&bytes_of(50_000 + i * 1000, 10 + i as u64)),
        );
    }
    // 1 MiB in 16 pieces over 1.2 s: a miss that streams for a while.
    origin.route(
        "/pub/big.ts",
        seg(&o.big).paced(16, Duration::from_millis(1200)),
    );
    origin.route(
        "/pub/post",
        Route::ok("posted").header("cache-control", "no-store"),
    );
    o
}

fn cold(i: usize) -> Vec<u8> {
    bytes_of(50_000 + i * 1000, 10 + i as u64)
}

/// An edge with tokens required outside `/pub/`, with or without the front's answers.
async fn edge(origin: &Origin, keys: &tempfile::TempDir, fast_hits: bool) -> Edge {
    std::fs::write(
        keys.path().join("k1.key"),
        KEY.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    )
    .unwrap();
    let cfg = format!(
        "[[origins]]\nname = \"o\"\nnodes = [{{ addr = \"{addr}\" }}]\n\
         [tokens]\nrequired = true\ncurrent = \"k1\"\npublic = [\"/pub/\"]\n\
         keys = [{{ id = \"k1\", secret_file = \"{d}/k1.key\" }}]\n",
        addr = origin.addr,
        d = keys.path().display()
    );
    Edge::start_with_config(&cfg, &format!("fast_hits = {fast_hits}")).await
}

/// Read `expect.len()` responses off `c` and check each one's status and body in order.
async fn expect_in_order(c: &mut Conn, what: &str, expect: &[(bool, u16, &[u8])]) -> Vec<Resp> {
    // Named in the output, should the connection close before an answer.
    eprintln!("case: {what}");
    let mut got = Vec::new();
    for (i, (head_only, status, body)) in expect.iter().enumerate() {
        let r = c.response(*head_only).await;
        assert_eq!(r.status, *status, "{what}: answer {i}: {:?}", r.headers);
        assert_eq!(r.body.len(), body.len(), "{what}: answer {i}: body length");
        assert!(r.body == *body, "{what}: answer {i}: body bytes");
        got.push(r);
    }
    got
}

/// Every case of the issue on one edge flavour; `fast`: whether the front answers hits.
async fn pipelined_cases(fast_hits: bool) {
    let flavour = if fast_hits {
        "fast_hits = true"
    } else {
        "fast_hits = false"
    };
    let origin = Origin::start().await;
    let o = objects(&origin);
    let keys = tempfile::tempdir().unwrap();
    let edge = edge(&origin, &keys, fast_hits).await;
    // Fill the hot objects.
    let mut c = Conn::open(edge.http).await;
    for p in ["/pub/hot.ts", "/pub/hot2.ts"] {
        c.send(&get(p)).await;
        assert_eq!(c.response(false).await.status, 200);
    }
    let hot: &[u8] = &o.hot;
    let hot2: &[u8] = &o.hot2;

    // hit + miss + hit in one write.
    let what = format!("{flavour}: hit, miss, hit");
    let mut c = Conn::open(edge.http).await;
    c.send(
        &[
            get("/pub/hot.ts"),
            get("/pub/cold0.ts"),
            get("/pub/hot2.ts"),
        ]
        .concat(),
    )
    .await;
    let r = expect_in_order(
        &mut c,
        &what,
        &[
            (false, 200, hot),
            (false, 200, &cold(0)),
            (false, 200, hot2),
        ],
    )
    .await;
    let caches: Vec<_> = r
        .iter()
        .map(|r| r.header("x-cache").unwrap_or(""))
        .collect();
    assert_eq!(caches, ["HIT", "MISS", "HIT"], "{what}");

    // miss + hit, then the same connection goes on with a lone request.
    let what = format!("{flavour}: miss, hit");
    c.send(&[get("/pub/cold1.ts"), get("/pub/hot.ts")].concat())
        .await;
    expect_in_order(&mut c, &what, &[(false, 200, &cold(1)), (false, 200, hot)]).await;
    c.send(&get("/pub/hot2.ts")).await;
    expect_in_order(&mut c, &what, &[(false, 200, hot2)]).await;

    // Two misses, then a hit.
    let what = format!("{flavour}: miss, miss, hit");
    let mut c = Conn::open(edge.http).await;
    c.send(
        &[
            get("/pub/cold2.ts"),
            get("/pub/cold3.ts"),
            get("/pub/hot.ts"),
        ]
        .concat(),
    )
    .await;
    expect_in_order(
        &mut c,
        &what,
        &[
            (false, 200, &cold(2)),
            (false, 200, &cold(3)),
            (false, 200, hot),
        ],
    )
    .await;

    // A POST with Content-Length, then a GET, in one write; the body reaches the origin whole.
    let what = format!("{flavour}: POST (Content-Length), GET");
    let body = bytes_of(3000, 4);
    let mut post = format!(
        "POST /pub/post HTTP/1.1\r\nHost: edge.test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    post.extend_from_slice(&body);
    let mut c = Conn::open(edge.http).await;
    c.send(&[post, get("/pub/hot.ts")].concat()).await;
    expect_in_order(&mut c, &what, &[(false, 200, b"posted"), (false, 200, hot)]).await;

    // A chunked POST (with a chunk extension and a trailer), then a GET, in one write.
    let what = format!("{flavour}: POST (chunked), GET");
    let chunked = [
        b"POST /pub/post HTTP/1.1\r\nHost: edge.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec(),
        b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n".to_vec(),
    ]
    .concat();
    c.send(&[chunked.clone(), get("/pub/hot2.ts")].concat())
        .await;
    expect_in_order(
        &mut c,
        &what,
        &[(false, 200, b"posted"), (false, 200, hot2)],
    )
    .await;
    // The same with the body split over writes, the GET behind its last piece.
    let (first, rest) = chunked.split_at(chunked.len() - 20);
    c.send(first).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.send(&[rest.to_vec(), get("/pub/hot.ts")].concat()).await;
    expect_in_order(&mut c, &what, &[(false, 200, b"posted"), (false, 200, hot)]).await;
    let posted: Vec<Vec<u8>> = origin
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.body)
        .collect();
    assert_eq!(
        posted,
        [body, b"hello, world".to_vec(), b"hello, world".to_vec()],
        "{flavour}: the origin got each body whole"
    );

    // A GET arriving while a 1 MiB miss streams from a slow origin, then one in the same write.
    let what = format!("{flavour}: GET behind a streaming miss");
    let mut c = Conn::open(edge.http).await;
    c.send(&get("/pub/big.ts")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.send(&get("/pub/hot.ts")).await;
    let r = expect_in_order(&mut c, &what, &[(false, 200, &o.big), (false, 200, hot)]).await;
    assert_eq!(r[0].header("x-cache"), Some("MISS"), "{what}");
    c.send(&[get("/pub/cold4.ts"), get("/pub/hot2.ts")].concat())
        .await;
    expect_in_order(&mut c, &what, &[(false, 200, &cold(4)), (false, 200, hot2)]).await;

    // HEAD then GET; a HEAD on a miss, then a GET.
    let what = format!("{flavour}: HEAD, GET");
    let mut c = Conn::open(edge.http).await;
    c.send(
        &[
            head("/pub/hot.ts"),
            get("/pub/hot2.ts"),
            head("/pub/cold5.ts"),
            get("/pub/hot.ts"),
        ]
        .concat(),
    )
    .await;
    let r = expect_in_order(
        &mut c,
        &what,
        &[
            (true, 200, b""),
            (false, 200, hot2),
            (true, 200, b""),
            (false, 200, hot),
        ],
    )
    .await;
    assert_eq!(r[0].header("content-length"), Some("100000"), "{what}");

    // A 304 (a conditional the pipeline answers), then a GET.
    let what = format!("{flavour}: 304, GET");
    let conditional =
        b"GET /pub/hot.ts HTTP/1.1\r\nHost: edge.test\r\nIf-None-Match: \"h1\"\r\n\r\n".to_vec();
    c.send(&[conditional, get("/pub/hot2.ts")].concat()).await;
    expect_in_order(&mut c, &what, &[(false, 304, b""), (false, 200, hot2)]).await;

    // A request the gate refuses (no token), then a GET.
    let what = format!("{flavour}: 403, GET");
    c.send(&[get("/v/a/seg.ts"), get("/pub/hot.ts")].concat())
        .await;
    expect_in_order(
        &mut c,
        &what,
        &[(false, 403, b"missing\n"), (false, 200, hot)],
    )
    .await;

    // A head over the front's 8 KiB and 32 fields (the pipeline reads it), then a GET.
    let what = format!("{flavour}: long head, GET");
    let fields: String = (0..40)
        .map(|i| format!("X-Pad-{i}: {}\r\n", "p".repeat(250)))
        .collect();
    let long = format!("GET /pub/hot2.ts HTTP/1.1\r\nHost: edge.test\r\n{fields}\r\n").into_bytes();
    c.send(&[long, get("/pub/hot.ts")].concat()).await;
    expect_in_order(&mut c, &what, &[(false, 200, hot2), (false, 200, hot)]).await;

    // Many in one write, hits and misses mixed.
    let what = format!("{flavour}: twelve in one write");
    let mut burst = Vec::new();
    let mut expect: Vec<Vec<u8>> = Vec::new();
    for i in 0..12 {
        let (path, body) = match i % 3 {
            0 => ("/pub/hot.ts".to_string(), o.hot.clone()),
            1 => (
                format!("/pub/cold{}.ts", 6 + (i / 3) % 2),
                cold(6 + (i / 3) % 2),
            ),
            _ => ("/pub/hot2.ts".to_string(), o.hot2.clone()),
        };
        burst.extend(get(&path));
        expect.push(body);
    }
    let mut c = Conn::open(edge.http).await;
    c.send(&burst).await;
    let expect: Vec<(bool, u16, &[u8])> =
        expect.iter().map(|b| (false, 200, b.as_slice())).collect();
    expect_in_order(&mut c, &what, &expect).await;

    // A client that closes its side right after its requests still gets every answer.
    let what = format!("{flavour}: miss, hit, then the client's FIN");
    let mut c = Conn::open(edge.http).await;
    c.send(&[get("/pub/cold8.ts"), get("/pub/hot2.ts")].concat())
        .await;
    c.shutdown_write().await;
    expect_in_order(&mut c, &what, &[(false, 200, &cold(8)), (false, 200, hot2)]).await;
    assert!(c.closed().await, "{what}: closed after the last answer");

    // Each object came from the origin once: nothing was refetched or lost on the way.
    assert_eq!(origin.hits("/pub/hot.ts"), 1, "{flavour}");
    assert_eq!(origin.hits("/pub/hot2.ts"), 1, "{flavour}");
    assert_eq!(origin.hits("/pub/big.ts"), 1, "{flavour}");
    for i in 0..9 {
        assert_eq!(
            origin.hits(&format!("/pub/cold{i}.ts")),
            1,
            "{flavour}: cold{i}"
        );
    }
    assert_eq!(origin.hits("/pub/post"), 3, "{flavour}");
    assert_eq!(
        origin.hits("/v/a/seg.ts"),
        0,
        "{flavour}: refused at the edge"
    );
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_with_the_front() {
    pipelined_cases(true).await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_by_the_pipeline_alone() {
    pipelined_cases(false).await;
}
