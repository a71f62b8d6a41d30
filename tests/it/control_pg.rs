//! Two edges on one PostgreSQL control plane (`[control] database = "postgres://…"`), real
//! processes and a throwaway server: an account registered through one edge logs in, gets
//! playback and writes progress through the other; while the database is down `/api/v1`
//! answers 503 and content is still served; both recover when it is back.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::control::{control_edge_on, login, Api};
use crate::support::postgres::PgServer;
use crate::support::{client, Edge};

const PASSWORD: &str = "correct horse battery";

/// Logs `email` in through `edge` (the account exists).
async fn session<'a>(edge: &'a Edge, email: &str) -> Api<'a> {
    let anon = Api {
        edge,
        token: None,
        xff: None,
        profile: None,
    };
    let (s, v) = anon
        .call(
            Method::POST,
            "/sessions",
            Some(json!({ "email": email, "password": PASSWORD })),
        )
        .await;
    assert_eq!(s, 201, "login through this edge: {v}");
    Api {
        edge,
        token: Some(v["token"].as_str().expect("token").to_string()),
        xff: None,
        profile: None,
    }
}

/// Polls `GET path` on `api` every 200 ms until it answers `want` (at most 20 s).
async fn until(api: &Api<'_>, path: &str, want: u16) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, _) = api.call(Method::GET, path, None).await;
        if s == want || Instant::now() > deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_edges_share_accounts_sessions_and_progress() {
    let mut pg = PgServer::start();
    pg.psql("postgres", "CREATE DATABASE fleet")
        .expect("create database");
    let url = pg.url("fleet");
    let (a, _sa) = control_edge_on(&url, "7d", "").await;
    let (b, _sb) = control_edge_on(&url, "7d", "").await;

    // Registered on A, logged in on B; a session made on A works on B.
    let on_a = login(&a, "fleet@example.com").await;
    let on_b = session(&b, "fleet@example.com").await;
    let a_token_on_b = Api {
        edge: &b,
        token: on_a.token.clone(),
        xff: None,
        profile: None,
    };
    let (s, v) = a_token_on_b.call(Method::GET, "/users/me", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["email"], "fleet@example.com");

    // A title added by an admin on A plays through B.
    on_a.admin_title("shared", "G", &[240], &[]).await;
    let (s, v) = on_b.call(Method::POST, "/playback/shared", None).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = on_b
        .call(Method::GET, "/titles/search?q=shared", None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["total"], 1, "{v}");

    // Progress written on A is newest on B.
    for (title, pos) in [("demo", 5), ("shared", 7)] {
        let (s, v) = on_a
            .call(
                Method::PUT,
                &format!("/progress/{title}"),
                Some(json!({ "position_seconds": pos })),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }
    let (s, v) = on_b.call(Method::GET, "/continue-watching", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["items"][0]["title_id"], "shared", "{v}");
    assert_eq!(v["items"][1]["position_seconds"], 5, "{v}");

    // A signed URL from B, played once so the master playlist is cached.
    let (s, v) = on_b.call(Method::POST, "/playback/demo", None).await;
    assert_eq!(s, 200, "{v}");
    let master = v["url"].as_str().expect("url").to_string();
    assert_eq!(
        client().get(&master).send().await.expect("get").status(),
        200
    );

    // The database goes away: the API says 503, content is still served.
    pg.stop();
    let (s, v) = on_b.call(Method::GET, "/continue-watching", None).await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["code"], "unavailable", "{v}");
    let (s, _) = on_a.call(Method::GET, "/titles/demo", None).await;
    assert_eq!(s, 503);
    let r = client().get(&master).send().await.expect("get");
    assert_eq!(r.status(), 200, "content does not need the database");
    assert!(r.text().await.expect("body").contains("#EXTM3U"));

    // Back: both edges recover without a restart.
    pg.restart();
    assert_eq!(until(&on_a, "/continue-watching", 200).await, 200);
    assert_eq!(until(&on_b, "/continue-watching", 200).await, 200);
    let (s, v) = on_b.call(Method::GET, "/continue-watching", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["total"], 2, "nothing acknowledged was lost: {v}");
}
