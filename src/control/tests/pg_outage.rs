//! Losing the PostgreSQL server: while it is down every API call that needs it answers a
//! clear 503 (`unavailable`, `Retry-After`) quickly, without restarting anything the API
//! works again once the server is back, and no write the API acknowledged is lost when the
//! server crashes mid-load (immediate shutdown, then WAL recovery).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::pg_server::PgServer;
use super::support::{title_json, Resp, TestServer};
use crate::control::Database;

/// Writers during the crash, one title each.
const WRITERS: usize = 4;

/// Retries `call` every 200 ms until it answers `want` (at most `limit`).
async fn until_status<F, Fut>(want: StatusCode, limit: Duration, mut call: F) -> Resp
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Resp>,
{
    let deadline = Instant::now() + limit;
    loop {
        let r = call().await;
        if r.status == want || Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_loss_is_503_then_recovers_without_losing_acknowledged_writes() {
    let mut pg = PgServer::start();
    pg.psql("postgres", "CREATE DATABASE outage")
        .expect("create database");
    let dir = tempfile::tempdir().expect("tempdir");
    let s = TestServer::start_on(Database::Postgres(pg.url("outage")), dir, |_| {}).await;
    for i in 0..WRITERS {
        s.create_title(title_json(
            &format!("t{i}"),
            &format!("Title {i}"),
            "G",
            &[240],
        ))
        .await;
    }
    let (_, _, tok) = s.user("outage@example.com").await;
    let s = Arc::new(s);
    let tok = Arc::new(tok);

    // Writers: each moves its title's position forward, remembering the last one the API
    // acknowledged (200) and the last one it sent.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for i in 0..WRITERS {
        let (s, tok, stop) = (s.clone(), tok.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut acked = 0u32;
            let mut sent = 0u32;
            let mut refused = 0u32;
            // Bounded: at most 100 000 writes, and the test stops them.
            for pos in 1..100_000u32 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                sent = pos;
                let r = s
                    .call(
                        Method::PUT,
                        &format!("/progress/t{i}"),
                        Some(&tok),
                        &[],
                        Some(json!({ "position_seconds": pos })),
                    )
                    .await;
                match r.status {
                    StatusCode::OK => acked = pos,
                    StatusCode::SERVICE_UNAVAILABLE => {
                        r.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
                        assert_eq!(r.retry_after(), 1);
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    other => panic!("writer {i}: unexpected {other}: {}", r.text),
                }
            }
            (acked, sent, refused)
        }));
    }

    // Let writes land, then crash the server under them.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pg.crash();

    // While it is down: 503 with the stable code, fast (the pool does not hang).
    let t0 = Instant::now();
    let r = s.get("/continue-watching", Some(&tok)).await;
    r.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(r.headers["cache-control"], "no-store");
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "answered in {:?}",
        t0.elapsed()
    );
    let r = s.get("/titles/t0", None).await;
    r.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    for needle in ["postgres", "127.0.0.1", "connection", "outage"] {
        assert!(
            !r.text.to_lowercase().contains(needle),
            "{needle}: {}",
            r.text
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Back: the same API, no restart of the control plane, works again.
    pg.restart();
    let r = until_status(StatusCode::OK, Duration::from_secs(20), || {
        s.get("/continue-watching", Some(&tok))
    })
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut results = Vec::new();
    for w in writers {
        results.push(w.await.expect("writer"));
    }
    assert!(
        results.iter().any(|&(_, _, refused)| refused > 0),
        "the writers saw the outage: {results:?}"
    );

    // Every acknowledged position is stored (or a later one that was sent).
    let r = s.get("/continue-watching?per_page=100", Some(&tok)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let items = r.body["items"].as_array().expect("items");
    for (i, &(acked, sent, _)) in results.iter().enumerate() {
        assert!(acked > 0, "writer {i} had writes acknowledged");
        let stored = items
            .iter()
            .find(|it| it["title_id"] == format!("t{i}"))
            .and_then(|it| it["position_seconds"].as_u64())
            .expect("progress of the title");
        assert!(
            u64::from(acked) <= stored && stored <= u64::from(sent),
            "writer {i}: acknowledged {acked}, sent {sent}, stored {stored}"
        );
    }
    // Logins (a read and a session write) work too.
    let l = s
        .login_from("outage@example.com", super::support::PASSWORD, "192.0.2.9")
        .await;
    assert_eq!(l.status, StatusCode::CREATED, "{}", l.text);
}
