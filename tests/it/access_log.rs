//! The access log (`[log]`): one JSON (or text) line per request from the front and the
//! pipeline alike, tokens redacted, `X-Request-Id` and `traceparent` handed on, rotation on
//! `SIGUSR1`, hit sampling, and a writer that can fall behind without holding a request.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use edge::token::{self, Claims, Keyring};
use serde_json::Value;

use crate::support::raw::{Conn, Resp};
use crate::support::{bytes_of, client, Edge, Origin, Route};

const KEY: [u8; 32] = [0x42; 32];
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn log_cfg(extra: &str) -> String {
    format!("[log]\naccess = \"access.log\"\n{extra}\n")
}

fn log_path(edge: &Edge) -> PathBuf {
    edge.dir().join("access.log")
}

/// The lines of `path` once it has at least `n` (waiting up to 5 s).
async fn lines_at_least(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} has {} lines, want {n}:\n{text}",
            path.display(),
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn json_lines(path: &Path, n: usize) -> Vec<Value> {
    lines_at_least(path, n)
        .await
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The one line with this request id (lines of concurrent or back-to-back requests may be
/// written in either order).
fn by_request_id<'a>(lines: &'a [Value], id: &str) -> &'a Value {
    let mut found = lines.iter().filter(|l| l["request_id"] == id);
    let line = found
        .next()
        .unwrap_or_else(|| panic!("no line {id}: {lines:?}"));
    assert!(found.next().is_none(), "two lines {id}");
    line
}

fn is_hex_id(v: &str) -> bool {
    v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn get(c: &mut Conn, target: &str, extra: &str) -> Resp {
    c.send(format!("GET {target} HTTP/1.1\r\nHost: edge.test\r\n{extra}\r\n").as_bytes())
        .await;
    c.response(false).await
}

fn segment_origin(origin: &Origin) -> Vec<u8> {
    let seg = bytes_of(5000, 3);
    origin.route(
        "/v/a/seg_000.ts",
        Route::ok(seg.clone())
            .header("content-type", "video/mp2t")
            .header("cache-control", "public, max-age=600"),
    );
    seg
}

/// A pipeline MISS and a front HIT with a range: every field, in one JSON object per line;
/// the client's request id is echoed and sent to the origin, a missing one is generated.
#[tokio::test]
async fn miss_and_front_hit_lines_carry_every_field() {
    let origin = Origin::start().await;
    let seg = segment_origin(&origin);
    let edge = Edge::start(origin.addr, &log_cfg("")).await;
    let mut c = Conn::open(edge.http).await;

    let admitted = edge.metric("edge_cache_admitted_bytes_total").await;
    let miss = get(
        &mut c,
        "/v/a/seg_000.ts?b=2&a=1",
        "X-Request-Id: client-id-1\r\nUser-Agent: Player \"9\"\té\r\nReferer: https://player.example/watch\r\n",
    )
    .await;
    assert_eq!(miss.status, 200);
    assert_eq!(miss.header("x-cache"), Some("MISS"));
    assert_eq!(miss.header("x-request-id"), Some("client-id-1"));
    assert_eq!(
        origin.requests()[0].header("x-request-id"),
        Some("client-id-1")
    );
    edge.await_admitted(admitted).await;

    let front = edge.metric("edge_front_hits_total").await;
    let hit = get(&mut c, "/v/a/seg_000.ts?b=2&a=1", "Range: bytes=0-99\r\n").await;
    assert_eq!(hit.status, 206);
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert!(hit.body == seg[..100]);
    assert_eq!(edge.metric("edge_front_hits_total").await, front + 1.0);
    let generated = hit
        .header("x-request-id")
        .expect("an id on a front hit")
        .to_string();
    assert!(is_hex_id(&generated), "{generated}");
    assert_eq!(origin.total_hits(), 1);

    let lines = json_lines(&log_path(&edge), 2).await;
    let (m, h) = (
        by_request_id(&lines, "client-id-1"),
        by_request_id(&lines, &generated),
    );
    assert_eq!(m["method"], "GET");
    assert_eq!(m["proto"], "HTTP/1.1");
    assert_eq!(m["host"], "edge.test");
    assert_eq!(m["path"], "/v/a/seg_000.ts");
    assert_eq!(m["query"], "b=2&a=1");
    assert_eq!(m["client"], "127.0.0.1");
    assert_eq!(m["kind"], "content");
    assert_eq!(m["status"], 200);
    assert_eq!(m["bytes"], 5000);
    assert_eq!(m["cache"], "MISS");
    assert_eq!(m["upstream"], origin.addr.to_string());
    assert_eq!(m["upstream_status"], 200);
    assert_eq!(m["request_id"], "client-id-1");
    assert_eq!(m["user_agent"], "Player \"9\"\té");
    assert_eq!(m["referer"], "https://player.example/watch");
    assert_eq!(m["range"], Value::Null);
    assert!(m["ms"].as_f64().unwrap() >= m["ttfb_ms"].as_f64().unwrap());
    let ts = m["ts"].as_str().unwrap();
    assert!(
        ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[19] == b'.',
        "RFC 3339 with ms: {ts}"
    );

    assert_eq!(h["status"], 206);
    assert_eq!(h["bytes"], 100);
    assert_eq!(h["cache"], "HIT");
    assert_eq!(h["range"], "bytes=0-99");
    assert_eq!(h["upstream"], Value::Null);
    assert_eq!(h["upstream_status"], Value::Null);
    assert_eq!(h["request_id"], generated.as_str());
    assert_eq!(h["path"], "/v/a/seg_000.ts");
    assert_eq!(h["host"], "edge.test");
    assert!(h["ttfb_ms"].as_f64().is_some());
    assert_eq!(edge.metric("edge_access_log_lines_total").await, 2.0);
    assert_eq!(edge.metric("edge_access_log_dropped_total").await, 0.0);
}

/// A generated id goes to the origin too, and is the one the client gets back.
#[tokio::test]
async fn a_generated_request_id_is_sent_upstream_and_echoed() {
    let origin = Origin::start().await;
    origin.route("/v/a/x.ts", Route::ok("x"));
    let edge = Edge::start(origin.addr, "").await;
    let r = client().get(edge.url("/v/a/x.ts")).send().await.unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(is_hex_id(&id), "{id}");
    assert_eq!(
        origin.requests()[0].header("x-request-id"),
        Some(id.as_str())
    );
    // Another request, another id; one that is not sane is replaced.
    let r = client()
        .get(edge.url("/v/a/x.ts"))
        .header("x-request-id", "a".repeat(200))
        .send()
        .await
        .unwrap();
    let id2 = r.headers()["x-request-id"].to_str().unwrap();
    assert!(is_hex_id(id2) && id2 != id, "{id2}");
}

/// A valid `traceparent` continues upstream: the same trace id and flags, the edge's span as
/// the parent, `tracestate` unchanged; an invalid one is not passed on.
#[tokio::test]
async fn traceparent_is_continued_with_a_new_parent() {
    let origin = Origin::start().await;
    origin.route("/v/a/t1.ts", Route::ok("1"));
    origin.route("/v/a/t2.ts", Route::ok("2"));
    let edge = Edge::start(origin.addr, &log_cfg("")).await;
    let sent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    let r = client()
        .get(edge.url("/v/a/t1.ts"))
        .header("traceparent", &sent)
        .header("tracestate", "vendor=abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = &origin.requests()[0];
    let tp = seen.header("traceparent").expect("traceparent upstream");
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_eq!((parts[0], parts[1], parts[3]), ("00", TRACE_ID, "01"));
    assert_ne!(
        parts[2], CLIENT_SPAN,
        "the edge's span is the origin's parent"
    );
    assert!(parts[2].len() == 16 && parts[2] != "0000000000000000");
    assert_eq!(seen.header("tracestate"), Some("vendor=abc"));

    client()
        .get(edge.url("/v/a/t2.ts"))
        .header("traceparent", format!("00-{TRACE_ID}-0000000000000000-01"))
        .header("tracestate", "vendor=abc")
        .send()
        .await
        .unwrap();
    let seen = &origin.requests()[1];
    assert_eq!(seen.header("traceparent"), None);
    assert_eq!(seen.header("tracestate"), None);

    let lines = json_lines(&log_path(&edge), 2).await;
    let line = |path: &str| lines.iter().find(|l| l["path"] == path).unwrap();
    assert_eq!(line("/v/a/t1.ts")["trace_id"], TRACE_ID);
    assert_eq!(line("/v/a/t2.ts")["trace_id"], Value::Null);
}

/// An HTTP/2 miss hands its fill to a filler subrequest (`fill_pace`): the origin still sees
/// the viewer's request id and trace, and the viewer gets the same id back.
#[tokio::test]
async fn an_http2_miss_handed_to_a_filler_carries_the_viewers_id_and_trace() {
    use crate::support::stalled::{TlsEdge, Transport};
    let origin = Origin::start().await;
    origin.route("/v/a/h2.ts", Route::ok(vec![7u8; 64 * 1024]));
    origin.route("/v/a/h2b.ts", Route::ok(vec![8u8; 64 * 1024]));
    let edge = TlsEdge::start(
        &format!(
            "[[origins]]\nname = \"o\"\nnodes = [{{ addr = \"{}\" }}]\n",
            origin.addr
        ),
        "",
    )
    .await;
    let h2 = edge.client(Transport::TlsH2);
    let sent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    let r = h2
        .get(edge.url(Transport::TlsH2, "/v/a/h2.ts"))
        .header("x-request-id", "viewer-1")
        .header("traceparent", &sent)
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.headers()["x-request-id"], "viewer-1");
    assert_eq!(r.headers()["x-cache"], "MISS");
    assert_eq!(r.bytes().await.unwrap().len(), 64 * 1024);
    assert_eq!(origin.hits("/v/a/h2.ts"), 1);
    let seen = &origin.requests()[0];
    assert_eq!(seen.header("x-request-id"), Some("viewer-1"));
    let tp = seen.header("traceparent").expect("traceparent upstream");
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", TRACE_ID, "01"),
        "{tp}"
    );
    assert_ne!(
        parts[2], CLIENT_SPAN,
        "the edge's span is the origin's parent"
    );
    // Without an id of its own, the id the viewer is given is the one the origin saw.
    let r = h2
        .get(edge.url(Transport::TlsH2, "/v/a/h2b.ts"))
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(is_hex_id(&id), "{id}");
    r.bytes().await.unwrap();
    let seen = origin
        .requests()
        .into_iter()
        .find(|q| q.target == "/v/a/h2b.ts")
        .unwrap();
    assert_eq!(seen.header("x-request-id"), Some(id.as_str()));
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Tokens never reach the log (path, query or cookie); a verified one gives its `kid` and
/// `sid`; a refusal gives its reason.
#[tokio::test]
async fn tokens_are_redacted_and_refusals_give_their_reason() {
    let origin = Origin::start().await;
    origin.route("/v/a/seg.ts", Route::ok("segment"));
    let keys = tempfile::tempdir().unwrap();
    let hex: String = KEY.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(keys.path().join("k2.key"), hex).unwrap();
    let cfg = format!(
        "[tokens]\nrequired = true\ncurrent = \"k2\"\nmax_ttl = \"1h\"\n\
         keys = [{{ id = \"k2\", secret_file = \"{}/k2.key\" }}]\n{}",
        keys.path().display(),
        log_cfg("")
    );
    let edge = Edge::start(origin.addr, &cfg).await;
    let ring = Keyring::single("k2", &KEY).unwrap();
    let mut claims = Claims::new("/v/a/", now() + 600);
    claims.sid = Some("session-7".into());
    let tok = token::sign(&ring, &claims).unwrap();
    let forged = token::sign(
        &Keyring::single("k2", &[1u8; 32]).unwrap(),
        &Claims::new("/v/a/", now() + 600),
    )
    .unwrap();

    let asked =
        |target: String, id: &str| client().get(edge.url(&target)).header("x-request-id", id);
    let r = asked(format!("/t/{tok}/v/a/seg.ts"), "r1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = asked(format!("/v/a/seg.ts?x=1&token={tok}"), "r2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = asked("/v/a/seg.ts".into(), "r3")
        .header("cookie", format!("edge_token={tok}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = asked(format!("/t/{forged}/v/a/seg.ts"), "r4")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Forms the gate normalises (a token all the same) and refuses (`..`): redacted too.
    let mut c = Conn::open(edge.http).await;
    let r = get(
        &mut c,
        &format!("/./t/{tok}/v/a/seg.ts"),
        "X-Request-Id: r5\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    let r = get(
        &mut c,
        &format!("/v/x/../t/{tok}/v/a/seg.ts"),
        "X-Request-Id: r6\r\n",
    )
    .await;
    assert_eq!(r.status, 400);

    let lines = json_lines(&log_path(&edge), 6).await;
    let line = |id: &str| by_request_id(&lines, id);
    assert_eq!(line("r1")["path"], "/t/REDACTED/v/a/seg.ts");
    assert_eq!(line("r1")["kid"], "k2");
    assert_eq!(line("r1")["sid"], "session-7");
    assert_eq!(line("r2")["path"], "/v/a/seg.ts");
    assert_eq!(line("r2")["query"], "x=1&token=REDACTED");
    assert_eq!(line("r2")["sid"], "session-7");
    assert_eq!(line("r3")["status"], 200);
    assert_eq!(line("r3")["kid"], "k2");
    assert_eq!(line("r4")["status"], 403);
    assert_eq!(line("r4")["kind"], "rejected");
    assert_eq!(line("r4")["reason"], "bad_signature");
    assert_eq!(line("r4")["path"], "/t/REDACTED/v/a/seg.ts");
    assert_eq!(line("r4")["kid"], Value::Null);
    assert_eq!(line("r5")["path"], "/t/REDACTED/v/a/seg.ts");
    assert_eq!(line("r6")["status"], 400);
    assert_eq!(line("r6")["path"], "/v/x/../t/REDACTED/v/a/seg.ts");
    let whole = std::fs::read_to_string(log_path(&edge)).unwrap();
    let mac = tok.rsplit('.').next().unwrap();
    for secret in [tok.as_str(), forged.as_str(), mac] {
        assert!(!whole.contains(secret), "a token in the log:\n{whole}");
    }
}

/// `mv` then `SIGUSR1`: the lines before go to the moved file, the lines after to a new one.
#[tokio::test]
async fn sigusr1_reopens_the_file_after_a_move() {
    let origin = Origin::start().await;
    origin.route("/v/a/r.ts", Route::ok("r"));
    let edge = Edge::start(origin.addr, &log_cfg("")).await;
    let path = log_path(&edge);
    client()
        .get(edge.url("/v/a/r.ts?n=1"))
        .send()
        .await
        .unwrap();
    lines_at_least(&path, 1).await;
    let rotated = edge.dir().join("access.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    client()
        .get(edge.url("/v/a/r.ts?n=2"))
        .send()
        .await
        .unwrap();
    lines_at_least(&rotated, 2).await;
    edge.signal("USR1");
    // The signal is handled by a background task: keep asking until a line lands anew.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut n = 3;
    while !path.exists() {
        assert!(Instant::now() < deadline, "no new file:\n{}", edge.log());
        client()
            .get(edge.url(&format!("/v/a/r.ts?n={n}")))
            .send()
            .await
            .unwrap();
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    edge.await_metric("edge_access_log_lines_total", f64::from(n - 1))
        .await;
    let new = json_lines(&path, 1).await;
    let old = json_lines(&rotated, 2).await;
    assert_eq!(old[0]["query"], "n=1");
    assert_eq!(old[1]["query"], "n=2");
    let first_new: u32 = new[0]["query"].as_str().unwrap()[2..].parse().unwrap();
    assert!(first_new >= 3);
    let all = old.len() + new.len();
    assert_eq!(all, n as usize - 1, "every line in one of the files");
}

/// `hit_sample = 0.0`: misses are written, hits (front and pipeline) are not.
#[tokio::test]
async fn hit_sampling_zero_keeps_misses_only() {
    let origin = Origin::start().await;
    segment_origin(&origin);
    let edge = Edge::start(origin.addr, &log_cfg("hit_sample = 0.0")).await;
    let mut c = Conn::open(edge.http).await;
    let admitted = edge.metric("edge_cache_admitted_bytes_total").await;
    assert_eq!(
        get(&mut c, "/v/a/seg_000.ts", "").await.header("x-cache"),
        Some("MISS")
    );
    edge.await_admitted(admitted).await;
    for _ in 0..5 {
        assert_eq!(
            get(&mut c, "/v/a/seg_000.ts", "").await.header("x-cache"),
            Some("HIT")
        );
    }
    // Through the pipeline (a conditional is not the front's) and still a HIT.
    let r = get(&mut c, "/v/a/seg_000.ts", "If-None-Match: \"nope\"\r\n").await;
    assert_eq!(r.header("x-cache"), Some("HIT"));
    let miss2 = get(&mut c, "/v/a/none.ts", "").await;
    assert_eq!(miss2.status, 404);
    edge.await_metric(
        "edge_requests_total{kind=\"content\",status=\"404\",cache=\"MISS\"}",
        1.0,
    )
    .await;
    let lines = json_lines(&log_path(&edge), 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines_after = json_lines(&log_path(&edge), 2).await;
    assert_eq!(lines.len(), lines_after.len());
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().all(|l| l["cache"] == "MISS"), "{lines:?}");
}

/// A writer that cannot write (a FIFO nobody reads: its open never returns) and a one-line
/// buffer: requests are answered, the lines are dropped and counted.
#[tokio::test]
async fn a_blocked_writer_drops_lines_and_never_holds_a_request() {
    let origin = Origin::start().await;
    origin.route(
        "/v/a/f.ts",
        Route::ok("f").header("cache-control", "max-age=600"),
    );
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo");
    let edge = Edge::start(
        origin.addr,
        &format!("[log]\naccess = \"{}\"\nbuffer = 1\n", fifo.display()),
    )
    .await;
    let mut c = Conn::open(edge.http).await;
    let started = Instant::now();
    for _ in 0..50 {
        let r = get(&mut c, "/v/a/f.ts", "").await;
        assert_eq!(r.status, 200);
        assert!(r.body == b"f");
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    edge.await_metric("edge_access_log_dropped_total", 45.0)
        .await;
    assert_eq!(edge.metric("edge_access_log_lines_total").await, 0.0);
}

/// `format = "text"`: the documented combined-like line.
#[tokio::test]
async fn text_format_line() {
    let origin = Origin::start().await;
    origin.route("/v/a/t.ts", Route::ok("text"));
    let edge = Edge::start(origin.addr, &log_cfg("format = \"text\"")).await;
    let mut c = Conn::open(edge.http).await;
    get(
        &mut c,
        "/v/a/t.ts?q=1",
        "X-Request-Id: rid-9\r\nUser-Agent: ua \"x\"\r\n",
    )
    .await;
    let lines = lines_at_least(&log_path(&edge), 1).await;
    let l = &lines[0];
    assert!(l.starts_with("127.0.0.1 - - ["), "{l}");
    assert!(
        l.contains(
            "] \"GET /v/a/t.ts?q=1 HTTP/1.1\" 200 4 \"-\" \"ua \\x22x\\x22\" cache=MISS ms="
        ),
        "{l}"
    );
    assert!(
        l.contains(&format!(
            " upstream={} upstream_status=200 request_id=rid-9 ",
            origin.addr
        )),
        "{l}"
    );
    assert!(l.ends_with(" kind=content host=edge.test"), "{l}");
}

/// `[log]` reloads live: `access` moves to another file on SIGHUP.
#[tokio::test]
async fn a_reload_moves_the_log() {
    let origin = Origin::start().await;
    origin.route("/v/a/m.ts", Route::ok("m"));
    let edge = Edge::start(origin.addr, "").await;
    client()
        .get(edge.url("/v/a/m.ts?n=1"))
        .send()
        .await
        .unwrap();
    let path = log_path(&edge);
    assert!(!path.exists());
    edge.rewrite_config(
        &format!(
            "[[origins]]\nname = \"test\"\nnodes = [{{ addr = \"{}\" }}]\nconnect_timeout = \"1s\"\nread_timeout = \"5s\"\n{}",
            origin.addr,
            log_cfg("")
        ),
        "",
        "",
    );
    let (status, outcome) = edge.reload().await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["applied"], serde_json::json!(["log.access"]));
    client()
        .get(edge.url("/v/a/m.ts?n=2"))
        .send()
        .await
        .unwrap();
    let lines = json_lines(&path, 1).await;
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["query"], "n=2");
}
