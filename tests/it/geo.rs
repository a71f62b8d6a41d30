//! Country rules with the test GeoIP database: allowed, denied, unknown, spoofed
//! X-Forwarded-For, IPv6, token `cc` claims, reloads and bad databases.

use std::time::Duration;

use crate::support::{client, free_port, Edge, Origin, Route};

const DB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/geoip/edge-test.mmdb");

async fn geo_edge(origin: &Origin, db: &str, trusted: &str, extra: &str) -> Edge {
    let cfg = format!(
        "[geo]\ndatabase = \"{db}\"\ntrusted_proxies = [{trusted}]\nreload_interval = \"200ms\"\n\
         [[geo.rules]]\nprefix = \"/v/uk-only/\"\nallow = [\"GB\"]\nunknown = \"deny\"\n\
         [[geo.rules]]\nprefix = \"/v/not-us/\"\ndeny = [\"US\"]\n\
         [[origins]]\nname = \"o\"\nnodes = [{{ addr = \"{}\" }}]\n{extra}",
        origin.addr
    );
    Edge::start_with_config(&cfg, "").await
}

async fn origin() -> Origin {
    let o = Origin::start().await;
    o.route(
        "/v/uk-only/a.ts",
        Route::ok("uk").header("cache-control", "no-store"),
    );
    o.route(
        "/v/not-us/a.ts",
        Route::ok("not-us").header("cache-control", "no-store"),
    );
    o
}

async fn get(edge: &Edge, path: &str, xff: Option<&str>) -> (u16, String) {
    let mut rb = client().get(edge.url(path));
    if let Some(x) = xff {
        rb = rb.header("x-forwarded-for", x);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let reason = r
        .headers()
        .get("x-edge-reason")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, reason)
}

#[tokio::test]
async fn allowed_denied_unknown_and_ipv6() {
    let o = origin().await;
    let edge = geo_edge(&o, DB, "\"127.0.0.1/32\"", "").await;
    assert_eq!(
        get(&edge, "/v/uk-only/a.ts", Some("192.0.2.7")).await,
        (200, String::new()),
        "GB"
    );
    assert_eq!(
        get(&edge, "/v/uk-only/a.ts", Some("198.51.100.7")).await,
        (451, "country_not_allowed".into()),
        "US"
    );
    assert_eq!(
        get(&edge, "/v/uk-only/a.ts", None).await,
        (451, "country_unknown".into()),
        "127.0.0.1 is not in the database"
    );
    assert_eq!(
        get(&edge, "/v/uk-only/a.ts", Some("2001:db8:1::5")).await,
        (200, String::new()),
        "GB over IPv6"
    );
    assert_eq!(
        get(&edge, "/v/uk-only/a.ts", Some("2001:db8:2::5")).await.0,
        451,
        "US over IPv6"
    );
    assert_eq!(
        get(&edge, "/v/not-us/a.ts", Some("198.51.100.7")).await,
        (451, "country_denied".into())
    );
    assert_eq!(
        get(&edge, "/v/not-us/a.ts", Some("203.0.113.9")).await.0,
        200,
        "DE"
    );
    assert_eq!(
        get(&edge, "/v/not-us/a.ts", None).await.0,
        200,
        "unknown is allowed by default"
    );
    // The right-most untrusted address counts: a client-supplied left entry is ignored.
    assert_eq!(
        get(&edge, "/v/uk-only/a.ts", Some("192.0.2.7, 198.51.100.7"))
            .await
            .0,
        451
    );
    assert_eq!(
        get(&edge, "/v/uk-only/a.ts", Some("198.51.100.7, 192.0.2.7"))
            .await
            .0,
        200
    );
    assert_eq!(
        edge.metric(r#"edge_geo_blocked_total{country="US"}"#).await,
        4.0
    );
    assert_eq!(
        edge.metric(r#"edge_geo_blocked_total{country="unknown"}"#)
            .await,
        1.0
    );
    assert_eq!(
        o.hits("/v/uk-only/a.ts"),
        3,
        "only the three allowed requests reach the origin"
    );
}

#[tokio::test]
async fn x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let o = origin().await;
    let edge = geo_edge(&o, DB, "\"10.0.0.0/8\"", "").await;
    // The peer (127.0.0.1) is not a trusted proxy: its X-Forwarded-For claim is a spoof.
    assert_eq!(
        get(&edge, "/v/uk-only/a.ts", Some("192.0.2.7")).await,
        (451, "country_unknown".into())
    );
}

#[tokio::test]
async fn token_country_claims_restrict_titles() {
    use edge::token::{self, Claims, Keyring};
    let o = origin().await;
    o.route("/v/any/a.ts", Route::ok("any"));
    let keys = tempfile::tempdir().unwrap();
    std::fs::write(keys.path().join("k.key"), "42".repeat(32)).unwrap();
    let extra = format!(
        "[tokens]\nkeys = [{{ id = \"k\", secret_file = \"{}/k.key\" }}]\n",
        keys.path().display()
    );
    let edge = geo_edge(&o, DB, "\"127.0.0.1/32\"", &extra).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = Claims::new("/v/any/", now + 600);
    claims.cc = Some(vec!["DE".into()]);
    let t = token::sign(&Keyring::single("k", &[0x42; 32]).unwrap(), &claims).unwrap();
    let path = format!("/v/any/a.ts?token={t}");
    assert_eq!(
        get(&edge, &path, Some("203.0.113.9")).await.0,
        200,
        "DE may watch"
    );
    assert_eq!(
        get(&edge, &path, Some("192.0.2.7")).await,
        (451, "token_country".into()),
        "GB may not"
    );
    assert_eq!(
        get(&edge, &path, None).await,
        (451, "token_country".into()),
        "unknown may not"
    );
}

#[tokio::test]
async fn a_changed_database_is_reloaded_and_a_bad_one_keeps_the_old() {
    let o = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("geo.mmdb");
    let original = std::fs::read(DB).unwrap();
    std::fs::write(&db, &original).unwrap();
    let edge = geo_edge(&o, &db.display().to_string(), "\"127.0.0.1/32\"", "").await;
    assert_eq!(
        get(&edge, "/v/uk-only/a.ts", Some("192.0.2.7")).await.0,
        200
    );
    // A broken file: refused, the old database keeps answering.
    std::fs::write(&db, b"not a database").unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        get(&edge, "/v/uk-only/a.ts", Some("192.0.2.7")).await.0,
        200
    );
    assert!(edge.log().contains("does not load"), "{}", edge.log());
    // The same data with GB re-labelled FR: the reload takes effect without a restart.
    let pos = original.windows(2).position(|w| w == b"GB").unwrap();
    let mut changed = original.clone();
    changed[pos..pos + 2].copy_from_slice(b"FR");
    std::fs::write(&db, &changed).unwrap();
    let mut now_blocked = false;
    for _ in 0..40 {
        if get(&edge, "/v/uk-only/a.ts", Some("192.0.2.7")).await.0 == 451 {
            now_blocked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(now_blocked, "192.0.2.7 is FR after the reload");
}

#[tokio::test]
async fn a_corrupt_database_is_a_clear_start_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bad.mmdb");
    std::fs::write(&db, vec![7u8; 4096]).unwrap();
    let cfg = dir.path().join("edge.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nhttp = \"127.0.0.1:{}\"\nadmin = \"127.0.0.1:{}\"\n[cache]\ndir = \"{}/c\"\ndisk = \"64 MiB\"\nmax_object = \"1 MiB\"\n\
             [geo]\ndatabase = \"{}\"\n[[origins]]\nname = \"o\"\nnodes = [{{ addr = \"127.0.0.1:9\" }}]\n",
            free_port(),
            free_port(),
            dir.path().display(),
            db.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edge"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert!(
        err.starts_with("edge: geo.database: ") && err.contains("bad.mmdb"),
        "{err}"
    );
}
