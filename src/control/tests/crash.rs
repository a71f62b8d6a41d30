//! Crash safety: the server runs in a child process (this test binary re-run on the ignored
//! `crash_child` test), is killed with SIGKILL while writes are in flight, and every write it
//! acknowledged must be in the database when it is opened again.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::support::{config, json_of, keyring, title_json, JsonBody, ADMIN, PASSWORD};
use crate::control::store::sqlite::SqliteStore;
use crate::control::store::Store;
use crate::control::{serve_state, AlwaysHealthy, AppState, EDGE_SECRET_HEADER};

const ENV_DB: &str = "EDGE_CONTROL_CRASH_CHILD_DB";
const READY: &str = "CONTROL_CRASH_CHILD_LISTENING=";

/// The child: serves the database named by `ENV_DB` until killed. Does nothing when run
/// without it (e.g. by `cargo test -- --ignored`).
#[test]
#[ignore = "helper process of crash_keeps_every_acknowledged_write"]
fn crash_child() {
    let Ok(db) = std::env::var(ENV_DB) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = AppState::open(
            config(std::path::PathBuf::from(db)),
            keyring(),
            Arc::new(AlwaysHealthy),
        )
        .await
        .expect("open");
        // The parent sends the secret like the edge would.
        let secret = state.edge_secret().header_value();
        println!("{READY}{addr} {}", secret.to_str().expect("ascii"));
        let _ = serve_state(listener, state, std::future::pending()).await;
    });
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn crash_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("crash.db");
    let this_module = module_path!()
        .split_once("::")
        .map(|(_, m)| m)
        .unwrap_or(module_path!());
    let child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            format!("{this_module}::crash_child").as_str(),
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_DB, &db)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest may print "test … ... " on the same line first.
            if let Some(i) = line.find(READY) {
                let _ = tx.send(line[i + READY.len()..].trim().to_string());
            }
        }
    });
    let ready = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("child listening");
    let (addr, secret) = ready.split_once(' ').expect("address and secret");
    let base = format!("http://{addr}/api/v1");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let acked: Vec<(String, u32)> = rt.block_on(async {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            EDGE_SECRET_HEADER,
            reqwest::header::HeaderValue::from_str(secret).expect("header"),
        );
        let c = reqwest::Client::builder()
            .no_proxy()
            .default_headers(headers)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let r = c
            .post(format!("{base}/users"))
            .json_body(&json!({ "email": "crash@example.com", "password": PASSWORD }))
            .send()
            .await
            .expect("register");
        assert_eq!(r.status(), reqwest::StatusCode::CREATED);
        let login = json_of(
            c.post(format!("{base}/sessions"))
                .json_body(&json!({ "email": "crash@example.com", "password": PASSWORD }))
                .send()
                .await
                .expect("login"),
        )
        .await;
        let tok = login["token"].as_str().expect("token").to_string();
        for i in 0..40 {
            let r = c
                .post(format!("{base}/admin/titles"))
                .bearer_auth(ADMIN)
                .json_body(&title_json(
                    &format!("k{i}"),
                    &format!("Crash {i}"),
                    "G",
                    &[360],
                ))
                .send()
                .await
                .expect("title");
            assert_eq!(r.status(), reqwest::StatusCode::CREATED);
        }
        let mut acked = Vec::new();
        // Sequential acknowledged writes.
        for i in 0..20u32 {
            let r = c
                .put(format!("{base}/progress/k{i}"))
                .bearer_auth(&tok)
                .json_body(&json!({ "position_seconds": i + 1 }))
                .send()
                .await
                .expect("progress");
            assert_eq!(r.status(), reqwest::StatusCode::OK);
            acked.push((format!("k{i}"), i + 1));
        }
        // A concurrent burst, killed mid-way: only what was acknowledged is required.
        let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<(String, u32)>();
        for i in 20..40u32 {
            let c = c.clone();
            let url = format!("{base}/progress/k{i}");
            let tok = tok.clone();
            let ack_tx = ack_tx.clone();
            tokio::spawn(async move {
                if let Ok(r) = c
                    .put(url)
                    .bearer_auth(tok)
                    .json_body(&json!({ "position_seconds": i + 1 }))
                    .send()
                    .await
                {
                    if r.status() == reqwest::StatusCode::OK {
                        let _ = ack_tx.send((format!("k{i}"), i + 1));
                    }
                }
            });
        }
        drop(ack_tx);
        for _ in 0..5 {
            if let Some(a) = ack_rx.recv().await {
                acked.push(a);
            }
        }
        // SIGKILL: no graceful shutdown, no checkpoint, no destructors in the child.
        child.0.kill().expect("kill");
        let _ = child.0.wait();
        while let Some(a) = ack_rx.recv().await {
            acked.push(a);
        }
        acked
    });
    assert!(acked.len() >= 25, "{}", acked.len());
    let wal = dir.path().join("crash.db-wal");
    assert!(
        std::fs::metadata(&wal)
            .map(|m| m.len() > 0)
            .unwrap_or(false),
        "the WAL file is there to recover from"
    );

    // Reopen (recovers from the WAL) and find every acknowledged write.
    rt.block_on(async {
        let store = SqliteStore::open_async(db.clone())
            .await
            .expect("reopen after crash");
        let creds = store
            .credentials("crash@example.com")
            .await
            .expect("creds")
            .expect("account");
        let profile = store
            .profile(creds.user.id, None)
            .await
            .expect("profile")
            .expect("profile");
        let page = store
            .continue_watching(profile.id, 0, 100)
            .await
            .expect("progress");
        for (title, pos) in &acked {
            let found = page.items.iter().find(|i| &i.title_id == title);
            assert_eq!(
                found.map(|i| i.position_seconds),
                Some(*pos),
                "acknowledged write {title}={pos} lost"
            );
        }
        assert_eq!(store.list_titles(0, 100).await.expect("titles").total, 41);
        let c = rusqlite::Connection::open(&db).expect("open");
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("check");
        assert_eq!(ok, "ok");
    });
}
