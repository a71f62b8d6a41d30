//! Reloading `edge.toml` while serving (SIGHUP, `POST /admin/reload`) and draining
//! (`POST /admin/drain`): what changes, what waits for a restart, and that nothing in flight
//! or in the cache is lost.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use edge::token::{self, Claims, Keyring};

use crate::support::{bytes_of, client, Edge, Origin, Route};

const OLD_KEY: [u8; 32] = [0x17; 32];
const NEW_KEY: [u8; 32] = [0x42; 32];

fn signed(id: &str, key: [u8; 32]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    token::sign(
        &Keyring::single(id, &key).unwrap(),
        &Claims::new("/", now + 600),
    )
    .unwrap()
}

/// Key files `old.key` and `new.key` in a folder of their own.
fn key_files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let hex = |k: &[u8]| k.iter().map(|b| format!("{b:02x}")).collect::<String>();
    std::fs::write(dir.path().join("old.key"), hex(&OLD_KEY)).unwrap();
    std::fs::write(dir.path().join("new.key"), hex(&NEW_KEY)).unwrap();
    dir
}

/// One origin pool on `origin`, and tokens with the keys `ids` (the first signs).
fn rest(origin: std::net::SocketAddr, keys: &tempfile::TempDir, ids: &[&str]) -> String {
    let d = keys.path().display();
    let list: Vec<String> = ids
        .iter()
        .map(|id| format!("{{ id = \"{id}\", secret_file = \"{d}/{id}.key\" }}"))
        .collect();
    format!(
        "[[origins]]\nname = \"o\"\nnodes = [{{ addr = \"{origin}\" }}]\nconnect_timeout = \"1s\"\nread_timeout = \"5s\"\n\
         [tokens]\nrequired = true\ncurrent = \"{}\"\nkeys = [{}]\n",
        ids[0],
        list.join(", ")
    )
}

fn ttl_rule(ttl: &str) -> String {
    format!("stale_while_revalidate = \"0s\"\nstale_if_error = \"0s\"\n[[cache.rules]]\nprefix = \"/live/\"\nttl = \"{ttl}\"\n")
}

/// Four clients for about 3 s across a SIGHUP that rotates the token key (the old one
/// removed), moves the origin pool to another origin and shortens a TTL rule: not one request
/// fails, and 1 s after the signal the new settings hold on the front (hits) and the pipeline
/// (misses) alike, while what the cache held before is still a hit.
#[tokio::test]
async fn a_reload_under_load_rotates_keys_swaps_origins_and_ttl_rules_without_a_failed_request() {
    let hot = bytes_of(64 * 1024, 7);
    let (a, b) = (Origin::start().await, Origin::start().await);
    for o in [&a, &b] {
        o.route(
            "/v/hot.ts",
            Route::ok(hot.clone()).header("cache-control", "max-age=600"),
        );
        o.route(
            "/v/pass.ts",
            Route::ok("pass").header("cache-control", "no-store"),
        );
        o.route("/live/before.ts", Route::ok("before"));
        o.route("/live/after.ts", Route::ok("after"));
    }
    let keys = key_files();
    let mut edge =
        Edge::start_full(&rest(a.addr, &keys, &["old", "new"]), "", &ttl_rule("1h")).await;
    let (old, new) = (signed("old", OLD_KEY), signed("new", NEW_KEY));
    let c = client();
    let get = |path: &str, token: &str| c.get(edge.url(&format!("{path}?token={token}"))).send();

    // Before: both keys are accepted; the hot object and a /live/ object (1 h rule) are stored.
    for t in [&old, &new] {
        assert_eq!(get("/v/pass.ts", t).await.unwrap().status(), 200);
    }
    for p in ["/v/hot.ts", "/live/before.ts"] {
        get(p, &new).await.unwrap().bytes().await.unwrap();
        assert_eq!(
            get(p, &new).await.unwrap().headers()["x-cache"],
            "HIT",
            "{p} stored"
        );
    }

    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(3);
    let load: Vec<_> = (0..4)
        .map(|i| {
            let (failures, done, hot) = (failures.clone(), done.clone(), hot.clone());
            let path = if i % 2 == 0 {
                "/v/hot.ts"
            } else {
                "/v/pass.ts"
            };
            let url = edge.url(&format!("{path}?token={new}"));
            let c = client();
            tokio::spawn(async move {
                // Bounded: 3 s, and at most 5000 requests per client.
                for _ in 0..5000 {
                    if Instant::now() >= until {
                        break;
                    }
                    let ok = match c.get(&url).send().await {
                        Ok(r) if r.status() == 200 => match r.bytes().await {
                            Ok(body) => path != "/v/hot.ts" || body == hot,
                            Err(_) => false,
                        },
                        _ => false,
                    };
                    if !ok {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(800)).await;
    edge.rewrite_config(&rest(b.addr, &keys, &["new"]), "", &ttl_rule("1s"));
    edge.signal("HUP");
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The old key is gone: refused on a hit (the front) and on a pass-through (the pipeline).
    for p in ["/v/hot.ts", "/v/pass.ts"] {
        let r = get(p, &old).await.unwrap();
        assert_eq!(r.status(), 403, "{p} with the removed key:\n{}", edge.log());
        assert_eq!(r.headers()["x-edge-reason"], "unknown_key");
    }
    // Requests go to the new pool only.
    let (a_before, b_before) = (a.hits("/v/pass.ts"), b.hits("/v/pass.ts"));
    assert!(
        b_before > 0,
        "the load reached the new origin within 1 s of the signal"
    );
    assert_eq!(
        get("/v/pass.ts", &new).await.unwrap().text().await.unwrap(),
        "pass"
    );
    // (The load runs on: the new origin counts more than this one request.)
    assert_eq!(
        a.hits("/v/pass.ts"),
        a_before,
        "the new request went to the new origin"
    );
    assert!(b.hits("/v/pass.ts") > b_before);
    // The cache survived: what was stored is still a hit, bytes and all.
    let r = get("/v/hot.ts", &new).await.unwrap();
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert!(r.bytes().await.unwrap() == hot);
    // The new TTL rule holds for what is stored from now on; what was stored keeps its own.
    get("/live/after.ts", &new)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        get("/live/before.ts", &new).await.unwrap().headers()["x-cache"],
        "HIT",
        "stored under the 1 h rule"
    );
    assert_ne!(
        get("/live/after.ts", &new).await.unwrap().headers()["x-cache"],
        "HIT",
        "stored under the 1 s rule"
    );
    assert_eq!(b.hits("/live/after.ts"), 2, "refetched after its 1 s");
    assert_eq!(a.hits("/live/after.ts"), 0);

    for l in load {
        l.await.unwrap();
    }
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "failed requests across the reload:\n{}",
        edge.log()
    );
    assert!(
        done.load(Ordering::Relaxed) >= 40,
        "the load ran: {} requests",
        done.load(Ordering::Relaxed)
    );
    assert_eq!(
        a.hits("/v/pass.ts"),
        a_before,
        "nothing went to the old origin after the reload"
    );
    assert!(edge.log().contains("config reloaded"), "{}", edge.log());
    assert!(edge.running());
    edge.terminate();
    assert!(edge.wait_exit(Duration::from_secs(15)).await.0.success());
}

/// `POST /admin/reload` answers what it applied and what needs a restart (those keep their
/// running values, and keep being reported until a restart); a bad file is a 400 with the
/// line `edge check` prints, by the admin endpoint and by SIGHUP alike, and the running
/// config stays.
#[tokio::test]
async fn admin_reload_reports_changes_and_restart_only_keys_and_refuses_a_bad_file() {
    let origin = Origin::start().await;
    origin.route("/v/a.ts", Route::ok("a"));
    let pool = format!(
        "[[origins]]\nname = \"o\"\nnodes = [{{ addr = \"{}\" }}]\n",
        origin.addr
    );
    let mut edge = Edge::start_full(&pool, "", "default_ttl = \"10s\"").await;

    let (status, body) = edge.reload().await;
    assert_eq!(
        (status, body.clone()),
        (200, serde_json::json!({"applied": [], "needs_restart": []})),
        "the same file: {body}"
    );

    edge.rewrite_config(
        &pool,
        "threads = 3\nname = \"renamed\"",
        "default_ttl = \"20s\"\nmemory = \"32 MiB\"",
    );
    // fill_memory defaults to a quarter of memory: it changes with it.
    let want = serde_json::json!({"applied": ["server.name", "cache.default_ttl"], "needs_restart": ["server.threads", "cache.memory", "cache.fill_memory"]});
    assert_eq!(edge.reload().await, (200, want));
    let r = client().get(edge.url("/v/a.ts")).send().await.unwrap();
    assert!(
        r.headers()["cache-status"]
            .to_str()
            .unwrap()
            .starts_with("renamed;"),
        "{:?}",
        r.headers()
    );
    let want = serde_json::json!({"applied": [], "needs_restart": ["server.threads", "cache.memory", "cache.fill_memory"]});
    assert_eq!(
        edge.reload().await,
        (200, want),
        "restart-only keys are reported until a restart"
    );

    edge.rewrite_config(&pool, "name = \"renamed\"", "default_ttl = \"soon\"");
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_edge"))
        .args(["check", "--config"])
        .arg(&edge.config_path)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(64));
    let line = String::from_utf8_lossy(&check.stderr).trim().to_string();
    assert!(line.contains("cache.default_ttl"), "{line}");
    let (status, body) = edge.reload().await;
    assert_eq!((status, body["error"].as_str()), (400, Some(line.as_str())));
    // Logged once for the endpoint's try; wait for the signal's.
    let failed = format!("config reload failed; the running config stays: {line}");
    assert_eq!(edge.log().matches(&failed).count(), 1, "{}", edge.log());
    edge.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while edge.log().matches(&failed).count() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        edge.log().matches(&failed).count(),
        2,
        "SIGHUP logs the same line:\n{}",
        edge.log()
    );
    // Four reloads through the endpoint (three applied, one failed) and the failed SIGHUP.
    assert_eq!(
        edge.metric(r#"edge_config_reloads_total{result="applied"}"#)
            .await,
        3.0
    );
    assert_eq!(
        edge.metric(r#"edge_config_reloads_total{result="failed"}"#)
            .await,
        2.0
    );
    assert!(edge.running());
    let r = client().get(edge.url("/v/a.ts")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["cache-status"]
            .to_str()
            .unwrap()
            .starts_with("renamed;"),
        "the running config stayed"
    );
}

/// `POST /admin/drain`: readiness fails from then on, and requests are still served (misses
/// and hits).
#[tokio::test]
async fn drain_fails_readiness_while_requests_are_still_served() {
    let origin = Origin::start().await;
    origin.route(
        "/v/a.ts",
        Route::ok("a").header("cache-control", "max-age=60"),
    );
    origin.route(
        "/v/b.ts",
        Route::ok("b").header("cache-control", "max-age=60"),
    );
    let edge = Edge::start(origin.addr, "").await;
    let c = client();
    assert_eq!(
        c.get(edge.url("/v/a.ts")).send().await.unwrap().status(),
        200
    );
    let r = c.post(edge.admin_url("/admin/drain")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"draining": true})
    );
    for url in [edge.admin_url("/readyz"), edge.url("/readyz")] {
        let r = c.get(url).send().await.unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(r.text().await.unwrap(), "draining\n");
    }
    let hit = c.get(edge.url("/v/a.ts")).send().await.unwrap();
    assert_eq!(
        (
            hit.status().as_u16(),
            hit.headers()["x-cache"].to_str().unwrap()
        ),
        (200, "HIT")
    );
    let miss = c.get(edge.url("/v/b.ts")).send().await.unwrap();
    assert_eq!(
        (
            miss.status().as_u16(),
            miss.headers()["x-cache"].to_str().unwrap()
        ),
        (200, "MISS")
    );
    assert_eq!(miss.text().await.unwrap(), "b");
    assert_eq!(
        c.get(edge.admin_url("/admin/drain"))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
}

/// A reload swaps geo rules, CORS and the purge ACL on the next request, and the health checks
/// follow the pools: the removed pool's node is checked no more, the new one's from then on.
#[tokio::test]
async fn a_reload_swaps_geo_rules_cors_the_purge_acl_and_health_checks() {
    let (a, b) = (Origin::start().await, Origin::start().await);
    for o in [&a, &b] {
        o.route("/healthz", Route::ok("ok"));
        o.route(
            "/v/geo/a.ts",
            Route::ok("g").header("cache-control", "no-store"),
        );
    }
    let db = concat!(env!("CARGO_MANIFEST_DIR"), "/geoip/edge-test.mmdb");
    let config = |origin: std::net::SocketAddr, cors: &str, purge: &str, rules: &str| {
        format!(
            "[[origins]]\nname = \"o\"\nnodes = [{{ addr = \"{origin}\" }}]\n\
             health = {{ path = \"/healthz\", interval = \"100ms\", timeout = \"300ms\" }}\n\
             [cors]\nallow_origins = [\"{cors}\"]\n[purge]\nallow = [\"{purge}\"]\n[geo]\ndatabase = \"{db}\"\n{rules}"
        )
    };
    let edge = Edge::start_full(
        &config(a.addr, "https://a.example", "127.0.0.1/32", ""),
        "",
        "",
    )
    .await;
    let c = client();
    let get = |origin: &'static str| {
        c.get(edge.url("/v/geo/a.ts"))
            .header("origin", origin)
            .send()
    };
    let r = get("https://a.example").await.unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["access-control-allow-origin"].to_str().unwrap()
        ),
        (200, "https://a.example")
    );
    let purge = || {
        c.request(
            reqwest::Method::from_bytes(b"PURGE").unwrap(),
            edge.url("/v/geo/a.ts"),
        )
        .send()
    };
    assert_eq!(purge().await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(a.hits("/healthz") > 0, "the first pool is checked");

    let deny = "[[geo.rules]]\nprefix = \"/v/geo/\"\nallow = [\"GB\"]\nunknown = \"deny\"\n";
    edge.rewrite_config(
        &config(b.addr, "https://b.example", "10.0.0.0/8", deny),
        "",
        "",
    );
    let (status, body) = edge.reload().await;
    assert_eq!(
        (status, body),
        (
            200,
            serde_json::json!({"applied": ["cors", "purge", "geo.rules", "origins"], "needs_restart": []})
        )
    );
    let a_checks = a.hits("/healthz");

    // 127.0.0.1 has no country in the test database: the new rule refuses it.
    let r = get("https://b.example").await.unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["x-edge-reason"].to_str().unwrap()
        ),
        (451, "country_unknown")
    );
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://b.example"
    );
    let r = get("https://a.example").await.unwrap();
    assert!(
        r.headers().get("access-control-allow-origin").is_none(),
        "the old CORS origin is gone"
    );
    let r = purge().await.unwrap();
    assert_eq!(r.status(), 403, "127.0.0.1 may no longer purge");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        a.hits("/healthz") <= a_checks + 1,
        "the removed pool is checked no more (at most one check in flight)"
    );
    assert!(b.hits("/healthz") >= 2, "the new pool is checked");
    assert_eq!(
        b.hits("/v/geo/a.ts") + a.hits("/v/geo/a.ts"),
        1,
        "only the request before the reload reached an origin"
    );
}

/// A reload that leaves `[[origins]]` as it was keeps the pools' health: a node ejected before
/// stays ejected (new pools would start every node healthy).
#[tokio::test]
async fn a_reload_without_origin_changes_keeps_node_health() {
    let closed = crate::support::free_port();
    let config = |cors: &str| {
        format!(
            "[[origins]]\nname = \"o\"\nnodes = [{{ addr = \"127.0.0.1:{closed}\" }}]\nconnect_timeout = \"1s\"\n\
             passive = {{ max_failures = 1, ejection = \"60s\" }}\n[cors]\nallow_origins = [\"{cors}\"]\n"
        )
    };
    let edge = Edge::start_full(&config("https://a.example"), "", "").await;
    let ejected = || async {
        let v: serde_json::Value = client()
            .get(edge.admin_url("/admin/origins"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["pools"][0]["nodes"][0]["ejected_for_ms"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(ejected().await, 0);
    let r = client().get(edge.url("/v/a.ts")).send().await.unwrap();
    assert_eq!(r.status(), 502, "the only node is down");
    assert!(ejected().await > 50_000, "one failure ejects it for 60 s");
    edge.rewrite_config(&config("https://b.example"), "", "");
    assert_eq!(
        edge.reload().await,
        (
            200,
            serde_json::json!({"applied": ["cors"], "needs_restart": []})
        )
    );
    assert!(ejected().await > 50_000, "still ejected after the reload");
}

/// `edge reload` and `edge drain` from the command line (what the systemd unit and the
/// Kubernetes preStop hook run): one line each, exit 0; a refused file exits 1 with the
/// config's error line and the running config stays; an unreachable admin exits 69.
#[tokio::test]
async fn reload_and_drain_commands_talk_to_the_admin_listener() {
    let origin = Origin::start().await;
    origin.route("/v/a.ts", Route::ok("a"));
    let pool = format!(
        "[[origins]]\nname = \"o\"\nnodes = [{{ addr = \"{}\" }}]\n",
        origin.addr
    );
    let edge = Edge::start_full(&pool, "", "default_ttl = \"10s\"").await;
    let admin = edge.admin_url("").trim_start_matches("http://").to_string();
    let run = |cmd: &'static str, admin: String| async move {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_edge"))
                .args([cmd, "--admin", &admin])
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };

    edge.rewrite_config(&pool, "name = \"renamed\"", "default_ttl = \"10s\"");
    let out = run("reload", admin.clone()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "reloaded: applied server.name; needs a restart: nothing\n"
    );
    let r = client().get(edge.url("/v/a.ts")).send().await.unwrap();
    assert!(r.headers()["cache-status"]
        .to_str()
        .unwrap()
        .starts_with("renamed;"));

    edge.rewrite_config(&pool, "", "default_ttl = \"soon\"");
    let out = run("reload", admin.clone()).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("reload refused (the running config stays): ")
            && err.contains("cache.default_ttl"),
        "{err}"
    );
    let r = client().get(edge.url("/v/a.ts")).send().await.unwrap();
    assert!(
        r.headers()["cache-status"]
            .to_str()
            .unwrap()
            .starts_with("renamed;"),
        "the running config stays"
    );

    assert_eq!(
        client()
            .get(edge.admin_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let out = run("drain", admin.clone()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        client()
            .get(edge.admin_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    assert_eq!(
        client()
            .get(edge.url("/v/a.ts"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "still serving"
    );

    let closed = format!("127.0.0.1:{}", crate::support::free_port());
    let out = run("drain", closed).await;
    assert_eq!(out.status.code(), Some(69));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the admin listener"));
}
