//! The ban list at scale: `GET /admin/bans`, the append-only `bans.log` across restarts and
//! crashes, and bans dropped once nothing they could match may still be served.

use std::io::Write;
use std::time::Duration;

use crate::support::{client, Edge, Origin, Route};

async fn purge(edge: &Edge, body: &str) -> u16 {
    let r = client()
        .post(edge.admin_url("/admin/purge"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

async fn bans(edge: &Edge, query: &str) -> (u16, serde_json::Value) {
    let r = client()
        .get(edge.admin_url(&format!("/admin/bans{query}")))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or_default(),
    )
}

fn paths(list: &serde_json::Value) -> Vec<String> {
    list["bans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["path"].as_str().unwrap().to_string())
        .collect()
}

async fn x_cache(edge: &Edge, path: &str) -> String {
    let r = client().get(edge.url(path)).send().await.unwrap();
    let x = r.headers()["x-cache"].to_str().unwrap().to_string();
    r.bytes().await.unwrap();
    x
}

#[tokio::test]
async fn bans_are_listed_newest_first() {
    let origin = Origin::start().await;
    let edge = Edge::start(origin.addr, "").await;
    let (status, empty) = bans(&edge, "").await;
    assert_eq!(status, 200);
    assert_eq!(empty["count"], 0);
    // The default [cache]: 7 d fresh at most plus 7 d of stale windows.
    assert_eq!(empty["keep_for_s"], 14 * 86_400);
    let host = edge.http.to_string();
    assert_eq!(
        purge(&edge, &format!(r#"{{"url": "http://{host}/v/a.ts"}}"#)).await,
        200
    );
    assert_eq!(
        purge(&edge, r#"{"prefix": "/v/t/", "soft": true}"#).await,
        200
    );
    assert_eq!(
        purge(&edge, r#"{"prefix": "/v/u/", "host": "cdn.example"}"#).await,
        200
    );
    let (_, all) = bans(&edge, "").await;
    assert_eq!(all["count"], 3);
    assert_eq!(paths(&all), ["/v/u/", "/v/t/", "/v/a.ts"]);
    let newest = &all["bans"][0];
    assert_eq!(
        (
            newest["host"].as_str(),
            newest["exact"].as_bool(),
            newest["soft"].as_bool()
        ),
        (Some("cdn.example"), Some(false), Some(false))
    );
    assert_eq!(
        all["bans"][1]["host"],
        serde_json::Value::Null,
        "a prefix without host is for every host"
    );
    assert_eq!(all["bans"][1]["soft"], true);
    assert_eq!(all["bans"][2]["host"].as_str(), Some(host.as_str()));
    assert_eq!(all["bans"][2]["exact"], true);
    let (_, two) = bans(&edge, "?limit=2").await;
    assert_eq!((two["count"].as_u64(), paths(&two).len()), (Some(3), 2));
    assert_eq!(bans(&edge, "?limit=lots").await.0, 400);
    let r = client()
        .post(edge.admin_url("/admin/bans"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

/// `[cache]` lines that make every ban expire 2 s after it was made: 1 s fresh at most (the
/// live playlist bound is 86400 s x 0.00001 < 1 s) plus 1 s of stale windows.
const SHORT_LIVES: &str =
    "max_ttl = \"1s\"\nvod_playlist_ttl = \"1s\"\nlive_playlist_fraction = 0.00001";

#[tokio::test]
async fn expired_bans_are_dropped_and_live_ones_survive_a_restart() {
    let origin = Origin::start().await;
    origin.route(
        "/v/new/a.ts",
        Route::ok("new a").header("cache-control", "max-age=1"),
    );
    let mut edge = Edge::start_cache(origin.addr, SHORT_LIVES).await;
    assert_eq!(bans(&edge, "").await.1["keep_for_s"], 2);
    assert_eq!(purge(&edge, r#"{"prefix": "/v/old/"}"#).await, 200);
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(x_cache(&edge, "/v/new/a.ts").await, "MISS");
    assert_eq!(purge(&edge, r#"{"prefix": "/v/new/"}"#).await, 200);
    let (_, list) = bans(&edge, "").await;
    assert_eq!(
        paths(&list),
        ["/v/new/"],
        "the older ban expired: dropped by the next purge"
    );
    assert_eq!(
        x_cache(&edge, "/v/new/a.ts").await,
        "MISS",
        "the new ban applies"
    );
    assert_eq!(origin.hits("/v/new/a.ts"), 2);

    edge.restart().await;
    let (_, list) = bans(&edge, "").await;
    assert_eq!(
        paths(&list),
        ["/v/new/"],
        "the live ban came back from bans.log"
    );
    let log = std::fs::read_to_string(edge.cache_dir().join("bans.log")).unwrap();
    assert_eq!(
        log.lines().count(),
        1,
        "compacted at start to the live set:\n{log}"
    );

    // Past its 2 s, a restart drops it too.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    edge.restart().await;
    assert_eq!(bans(&edge, "").await.1["count"], 0);
    assert_eq!(
        std::fs::read_to_string(edge.cache_dir().join("bans.log")).unwrap(),
        ""
    );
}

#[tokio::test]
async fn a_crash_keeps_every_answered_purge_and_a_torn_line_is_ignored() {
    let origin = Origin::start().await;
    origin.route("/v/c/a.ts", Route::ok("a").etag("\"1\""));
    origin.route("/v/keep.ts", Route::ok("k").etag("\"2\""));
    let mut edge = Edge::start(origin.addr, "").await;
    for p in ["/v/c/a.ts", "/v/keep.ts"] {
        assert_eq!(x_cache(&edge, p).await, "MISS");
    }
    // A graceful restart writes both objects to the disk tier, where a crash leaves them.
    edge.restart().await;
    for i in 0..20 {
        assert_eq!(
            purge(&edge, &format!(r#"{{"prefix": "/v/x{i}/"}}"#)).await,
            200
        );
    }
    assert_eq!(purge(&edge, r#"{"prefix": "/v/c/"}"#).await, 200);
    edge.kill();
    // What a crash in the middle of an append leaves: part of a line, no newline.
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(edge.cache_dir().join("bans.log"))
        .unwrap();
    log.write_all(br#"{"host":null,"path":"/v/kee"#).unwrap();
    drop(log);
    edge.restart_after_stop().await;
    let (_, list) = bans(&edge, "?limit=1").await;
    assert_eq!(list["count"], 21, "every answered purge survived the crash");
    assert_eq!(paths(&list), ["/v/c/"]);
    assert_eq!(x_cache(&edge, "/v/c/a.ts").await, "MISS", "and is obeyed");
    assert_eq!(
        x_cache(&edge, "/v/keep.ts").await,
        "HIT",
        "the torn ban was not applied"
    );
    let text = std::fs::read_to_string(edge.cache_dir().join("bans.log")).unwrap();
    assert!(
        text.ends_with('\n') && text.lines().count() == 21,
        "the torn tail was compacted away:\n{text}"
    );
}

#[tokio::test]
async fn a_damaged_ban_log_stops_the_start_with_its_name_and_line() {
    let origin = Origin::start().await;
    let mut edge = Edge::start(origin.addr, "").await;
    assert_eq!(purge(&edge, r#"{"prefix": "/v/"}"#).await, 200);
    edge.terminate();
    edge.wait_exit(Duration::from_secs(15)).await;
    let file = edge.cache_dir().join("bans.log");
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("garbage\n{good}")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edge"))
        .args(["serve", "--config"])
        .arg(&edge.config_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bans.log: line 1"), "{err}");
}
