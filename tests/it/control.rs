//! The control plane end to end through the edge, on real sockets: register, login, search,
//! playback (the returned URL plays through the edge), progress, continue-watching, the
//! watchlist; refusals for tier, maturity, country and expired sessions; acknowledged writes
//! survive a kill; attempt limits reserved before hashing, registration limits, the loopback
//! port's edge secret and the database's file modes.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{client, free_port, Edge};

const MEDIA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/media");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const ADMIN: &str = "integration-admin-token-0123456789";

async fn control_edge(session_ttl: &str) -> (Edge, tempfile::TempDir) {
    control_edge_with(session_ttl, "").await
}

/// [`control_edge`] with `extra` lines in `[control]`.
async fn control_edge_with(session_ttl: &str, extra: &str) -> (Edge, tempfile::TempDir) {
    control_edge_on("control.db", session_ttl, extra).await
}

/// [`control_edge_with`] on `database` (a SQLite path or a PostgreSQL URL).
pub(crate) async fn control_edge_on(
    database: &str,
    session_ttl: &str,
    extra: &str,
) -> (Edge, tempfile::TempDir) {
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("admin"), ADMIN).unwrap();
    let cfg = format!(
        "[demo]\nlisten = \"127.0.0.1:{}\"\nmedia = \"{MEDIA}\"\n\
         [tokens]\ncurrent = \"demo\"\nkeys = [{{ id = \"demo\", secret_file = \"{ROOT}/certs/demo-token.TEST-KEY.hex\" }}]\n\
         [geo]\ndatabase = \"{ROOT}/geoip/edge-test.mmdb\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n\
         [control]\ndatabase = \"{database}\"\nadmin_token_file = \"{}/admin\"\nsession_ttl = \"{session_ttl}\"\n{extra}",
        free_port(),
        secrets.path().display()
    );
    (Edge::start_with_config(&cfg, "").await, secrets)
}

pub(crate) struct Api<'a> {
    pub(crate) edge: &'a Edge,
    pub(crate) token: Option<String>,
    pub(crate) xff: Option<&'static str>,
    pub(crate) profile: Option<i64>,
}

impl Api<'_> {
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = client().request(method, self.edge.url(&format!("/api/v1{path}")));
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        if let Some(x) = self.xff {
            rb = rb.header("x-forwarded-for", x);
        }
        if let Some(p) = self.profile {
            rb = rb.header("x-profile-id", p.to_string());
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub(crate) async fn admin_title(
        &self,
        id: &str,
        rating: &str,
        heights: &[u32],
        countries: &[&str],
    ) {
        let renditions: Vec<Value> = heights
            .iter()
            .map(|h| json!({"height": h, "bandwidth": h * 1000}))
            .collect();
        let r = client()
            .put(self.edge.url(&format!("/api/v1/admin/titles/{id}")))
            .bearer_auth(ADMIN)
            .json(&json!({
                "name": format!("Title {id}"), "description": "test", "tags": ["t"], "rating": rating,
                "duration_seconds": 20, "origin_path": "/demo/ts/master.m3u8", "acl_path": "/demo/",
                "renditions": renditions, "countries": countries,
            }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
}

pub(crate) async fn login<'a>(edge: &'a Edge, email: &str) -> Api<'a> {
    let anon = Api {
        edge,
        token: None,
        xff: None,
        profile: None,
    };
    let (s, v) = anon
        .call(
            reqwest::Method::POST,
            "/users",
            Some(json!({"email": email, "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = anon
        .call(
            reqwest::Method::POST,
            "/sessions",
            Some(json!({"email": email, "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(s, 201, "a session is created: {v}");
    Api {
        edge,
        token: Some(v["token"].as_str().unwrap().to_string()),
        xff: None,
        profile: None,
    }
}

#[tokio::test]
async fn register_login_search_play_and_continue_watching() {
    let (edge, _s) = control_edge("7d").await;
    let api = login(&edge, "viewer@example.com").await;
    let (s, v) = api
        .call(reqwest::Method::GET, "/titles/search?q=demo", None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["items"][0]["id"], "demo");
    let (s, v) = api
        .call(reqwest::Method::POST, "/playback/demo", None)
        .await;
    assert_eq!(s, 200, "{v}");
    let url = v["url"].as_str().unwrap().to_string();
    assert!(url.contains("/t/v1.demo."), "{url}");
    // The returned URL plays through the edge: the master and a segment answer 200.
    let master = client().get(&url).send().await.unwrap();
    assert_eq!(master.status(), 200);
    let body = master.text().await.unwrap();
    assert!(body.contains("480p/index.m3u8"), "{body}");
    let seg = url.replace("master.m3u8", "240p/seg_000.ts");
    let r = client().get(&seg).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().len() > 10_000);
    // Progress, newest first.
    for (title, pos) in [("demo", 5), ("demo", 12)] {
        let (s, v) = api
            .call(
                reqwest::Method::PUT,
                &format!("/progress/{title}"),
                Some(json!({"position_seconds": pos})),
            )
            .await;
        assert!(s == 200 || s == 204, "{s} {v}");
    }
    let (s, v) = api
        .call(reqwest::Method::GET, "/continue-watching", None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["items"][0]["title_id"], "demo", "{v}");
    assert_eq!(v["items"][0]["position_seconds"], 12, "{v}");
    // The API document is served through the edge too.
    let (s, v) = api.call(reqwest::Method::GET, "/openapi.json", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["servers"][0]["url"], "/api/v1");
    assert!(
        v["paths"]["/playback/{title_id}"]["post"].is_object(),
        "the playback route is documented"
    );
}

/// The `Set-Cookie` of a playback answer, and the `Cookie` value a player sends back.
async fn playback_cookie(api: &Api<'_>, title: &str) -> (String, String) {
    let r = client()
        .post(api.edge.url(&format!("/api/v1/playback/{title}")))
        .bearer_auth(api.token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let pair = set.split(';').next().unwrap().trim().to_string();
    (set, pair)
}

/// ffmpeg plays `url` with `cookie` sent on every request (the master, the variant playlists
/// and their segments): a player that carries a cookie and no token.
fn ffmpeg_plays_with_cookie(url: &str, cookie: &str) -> Result<(), String> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-headers"])
        .arg(format!("Cookie: {cookie}\r\n"))
        .args(["-i", url, "-map", "0", "-c", "copy", "-f", "null", "-"])
        .output()
        .expect("ffmpeg must be installed (bash .ci/deps test)");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if out.status.success() && err.is_empty() {
        Ok(())
    } else {
        Err(err)
    }
}

#[tokio::test]
async fn the_playback_cookie_plays_the_title_from_an_unsigned_manifest_url() {
    let (edge, _s) = control_edge("7d").await;
    let api = login(&edge, "cookie@example.com").await;
    let (set, cookie) = playback_cookie(&api, "demo").await;
    // The edge's own token cookie, for the title's folder only, not readable by scripts.
    assert!(cookie.starts_with("edge_token=v1.demo."), "{set}");
    let attrs: Vec<&str> = set.split(';').skip(1).map(str::trim).collect();
    for want in ["Path=/demo/", "Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(attrs.contains(&want), "{want} in {set}");
    }
    let max_age: i64 = attrs
        .iter()
        .find_map(|a| a.strip_prefix("Max-Age="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (20..=3700).contains(&max_age),
        "title duration + slack: {set}"
    );

    // An unsigned master URL: with the cookie every playlist and segment answers 200.
    let master = edge.url("/demo/ts/master.m3u8");
    let get = |url: String, cookie: Option<String>| async move {
        let mut rb = client().get(url);
        if let Some(c) = cookie {
            rb = rb.header("cookie", c);
        }
        let r = rb.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    };
    let (s, body) = get(master.clone(), Some(cookie.clone())).await;
    assert_eq!(s, 200, "{body}");
    let variants: Vec<&str> = body.lines().filter(|l| l.ends_with(".m3u8")).collect();
    assert_eq!(variants.len(), 3, "{body}");
    for v in &variants {
        let url = edge.url(&format!("/demo/ts/{v}"));
        let (s, media) = get(url.clone(), Some(cookie.clone())).await;
        assert_eq!(s, 200, "{url}");
        assert!(
            !media.contains("token="),
            "cookie viewers get the playlist as it is"
        );
        let seg = media.lines().find(|l| l.ends_with(".ts")).unwrap();
        let folder = v.rsplit_once('/').unwrap().0;
        let (s, _) = get(
            edge.url(&format!("/demo/ts/{folder}/{seg}")),
            Some(cookie.clone()),
        )
        .await;
        assert_eq!(s, 200, "{folder}/{seg}");
        // Without the cookie: refused.
        let (s, body) = get(edge.url(&format!("/demo/ts/{folder}/{seg}")), None).await;
        assert_eq!((s, body.as_str()), (403, "missing\n"));
    }
    assert_eq!(get(master.clone(), None).await.0, 403);
    // A real player: ffmpeg plays the whole title with the cookie, and not without it.
    let (m, c) = (master.clone(), cookie.clone());
    let played = tokio::task::spawn_blocking(move || {
        (
            ffmpeg_plays_with_cookie(&m, &c),
            ffmpeg_plays_with_cookie(&m, "other=1"),
        )
    })
    .await
    .unwrap();
    assert_eq!(played.0, Ok(()));
    assert!(played.1.is_err(), "without the cookie ffmpeg cannot play");
}

#[tokio::test]
async fn playback_refusals_for_tier_maturity_country_and_expired_sessions() {
    let (edge, _s) = control_edge("2s").await;
    let mut api = login(&edge, "kid@example.com").await;
    api.admin_title("hd-only", "G", &[1080], &[]).await;
    api.admin_title("r-rated", "R", &[240], &[]).await;
    api.admin_title("de-only", "G", &[240], &["DE"]).await;
    // Tier: a basic account sees at most 480p; a 1080p-only title is refused.
    let (s, v) = api
        .call(reqwest::Method::POST, "/playback/hd-only", None)
        .await;
    assert_eq!((s, v["code"].as_str()), (403, Some("tier")), "{v}");
    // Maturity: a KIDS profile may not play an R title.
    let (s, v) = api
        .call(
            reqwest::Method::POST,
            "/profiles",
            Some(json!({"display_name": "kid", "language": "en", "maturity": "KIDS"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    api.profile = v["id"].as_i64();
    let (s, v) = api
        .call(reqwest::Method::POST, "/playback/r-rated", None)
        .await;
    assert_eq!((s, v["code"].as_str()), (403, Some("maturity")), "{v}");
    // Country, from the edge's GeoIP of the client (behind a trusted proxy); a spoofed
    // X-Edge-Country from the client is overwritten by the edge.
    api.xff = Some("198.51.100.7");
    let mut req = client()
        .post(edge.url("/api/v1/playback/de-only"))
        .bearer_auth(api.token.clone().unwrap());
    req = req
        .header("x-forwarded-for", "198.51.100.7")
        .header("x-edge-country", "DE");
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 451);
    api.xff = Some("203.0.113.9");
    let (s, v) = api
        .call(reqwest::Method::POST, "/playback/de-only", None)
        .await;
    assert_eq!(s, 200, "{v}");
    // The signed URL carries the title's countries: outside DE the edge refuses it.
    let url = v["url"].as_str().unwrap().to_string();
    let r = client()
        .get(&url)
        .header("x-forwarded-for", "192.0.2.7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 451);
    let r = client()
        .get(&url)
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Sessions expire.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (s, v) = api
        .call(reqwest::Method::POST, "/playback/de-only", None)
        .await;
    assert_eq!(s, 401, "{v}");
    let anon = Api {
        edge: &edge,
        token: None,
        xff: None,
        profile: None,
    };
    assert_eq!(
        anon.call(reqwest::Method::POST, "/playback/demo", None)
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn acknowledged_writes_survive_a_kill() {
    let (mut edge, _s) = control_edge("7d").await;
    let api = login(&edge, "durable@example.com").await;
    let token = api.token.clone();
    for i in 0..20 {
        let id = format!("t{i}");
        api.admin_title(&id, "G", &[240], &[]).await;
        let (s, _) = api
            .call(
                reqwest::Method::PUT,
                &format!("/progress/{id}"),
                Some(json!({"position_seconds": i + 1})),
            )
            .await;
        assert!(s == 200 || s == 204);
    }
    // SIGKILL: no graceful shutdown, then start again on the same files.
    edge.kill();
    edge.restart_after_stop().await;
    let api = Api {
        edge: &edge,
        token,
        xff: None,
        profile: None,
    };
    let (s, v) = api
        .call(reqwest::Method::GET, "/continue-watching?per_page=50", None)
        .await;
    assert_eq!(s, 200, "{v}");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 20, "{v}");
    assert_eq!(items[0]["title_id"], "t19", "newest first");
}

/// A JSON POST through the edge as client `xff` (the test config trusts 127.0.0.1 as a proxy).
async fn post_as(
    edge: &Edge,
    path: &str,
    xff: &str,
    body: Value,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let r = client()
        .post(edge.url(&format!("/api/v1{path}")))
        .header("x-forwarded-for", xff)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    )
}

const OWNER_PASSWORD: &str = "correct horse battery";

/// 40 parallel wrong passwords for one account from one address: at most the limit (5) reach
/// argon2 (counted in `edge_control_password_work_total`), the rest are 429 at once; the owner
/// still logs in from their own address. On a limiter that counts after hashing, all 40 were
/// checked and answered 401, and the owner was locked out for 15 minutes.
#[tokio::test]
async fn parallel_wrong_logins_reach_the_hasher_at_most_the_limit() {
    let (edge, _s) = control_edge("7d").await;
    let (s, v, _) = post_as(
        &edge,
        "/users",
        "203.0.113.9",
        json!({"email": "owner@example.com", "password": OWNER_PASSWORD}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let verify = r#"edge_control_password_work_total{op="verify"}"#;
    let before = edge.metric(verify).await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let rb = client()
            .post(edge.url("/api/v1/sessions"))
            .header("x-forwarded-for", "198.51.100.7")
            .json(&json!({"email": "owner@example.com", "password": "not the password"}));
        set.spawn(async move { rb.send().await.unwrap().status().as_u16() });
    }
    let answers = set.join_all().await;
    let wrong = answers.iter().filter(|&&s| s == 401).count();
    let limited = answers.iter().filter(|&&s| s == 429).count();
    assert_eq!(wrong + limited, 40, "only 401 and 429: {answers:?}");
    assert!(
        (1..=5).contains(&wrong),
        "{wrong} of 40 wrong passwords were checked: {answers:?}"
    );
    let checked = edge.metric(verify).await - before;
    assert_eq!(
        checked, wrong as f64,
        "argon2 ran once per checked attempt, never for a refused one"
    );
    // The attacking address stays locked out of the account, with a Retry-After.
    let (s, v, h) = post_as(
        &edge,
        "/sessions",
        "198.51.100.7",
        json!({"email": "owner@example.com", "password": OWNER_PASSWORD}),
    )
    .await;
    assert_eq!((s, v["code"].as_str()), (429, Some("rate_limited")), "{v}");
    assert!(h.get("retry-after").is_some());
    // The owner from their own address is not.
    let (s, v, _) = post_as(
        &edge,
        "/sessions",
        "203.0.113.9",
        json!({"email": "owner@example.com", "password": OWNER_PASSWORD}),
    )
    .await;
    assert_eq!(
        s, 201,
        "the owner logs in despite another address's failures: {v}"
    );
}

/// Registration is limited per client address (`registrations_per_address`), before the hash.
#[tokio::test]
async fn registration_flood_from_one_address_gets_429() {
    let (edge, _s) = control_edge_with("7d", "registrations_per_address = 3\n").await;
    for i in 0..3 {
        let (s, v, _) = post_as(
            &edge,
            "/users",
            "198.51.100.8",
            json!({"email": format!("r{i}@example.com"), "password": OWNER_PASSWORD}),
        )
        .await;
        assert_eq!(s, 201, "{v}");
    }
    let hashes = r#"edge_control_password_work_total{op="hash"}"#;
    let before = edge.metric(hashes).await;
    for i in 3..6 {
        let (s, v, h) = post_as(
            &edge,
            "/users",
            "198.51.100.8",
            json!({"email": format!("r{i}@example.com"), "password": OWNER_PASSWORD}),
        )
        .await;
        assert_eq!((s, v["code"].as_str()), (429, Some("rate_limited")), "{v}");
        let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=3600).contains(&retry), "{retry}");
    }
    assert_eq!(
        edge.metric(hashes).await,
        before,
        "refused registrations cost no hash"
    );
    assert_eq!(
        edge.metric(r#"edge_control_refused_total{reason="register"}"#)
            .await,
        3.0
    );
    // Another address registers normally.
    let (s, v, _) = post_as(
        &edge,
        "/users",
        "203.0.113.10",
        json!({"email": "other@example.com", "password": OWNER_PASSWORD}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
}

/// The control plane's loopback port, found in the edge's log.
async fn loopback_port(edge: &Edge) -> u16 {
    for _ in 0..100 {
        let log = edge.log();
        let port = log
            .lines()
            .filter(|l| l.contains("control: API listening"))
            .find_map(|l| {
                let rest = &l[l.find("127.0.0.1:")? + "127.0.0.1:".len()..];
                rest.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .ok()
            });
        if let Some(p) = port {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no control plane address in the log:\n{}", edge.log());
}

/// A local process calling the loopback port directly, with its own `X-Edge-Country` and
/// `X-Edge-Client-IP`, is refused: only requests carrying the edge's per-process secret are
/// served. Through the edge the same calls work.
#[tokio::test]
async fn the_loopback_port_refuses_requests_that_did_not_come_through_the_edge() {
    let (edge, _s) = control_edge("7d").await;
    let api = login(&edge, "local@example.com").await;
    api.admin_title("de-only", "G", &[240], &["DE"]).await;
    let token = api.token.clone().unwrap();
    let port = loopback_port(&edge).await;
    assert_ne!(port, edge.http.port());
    let direct = |path: &str| format!("http://127.0.0.1:{port}/api/v1{path}");
    // Forged country for a DE-only title: refused, not a signed URL.
    let r = client()
        .post(direct("/playback/de-only"))
        .bearer_auth(&token)
        .header("x-edge-country", "DE")
        .header("x-edge-client-ip", "192.0.2.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["code"], "forbidden", "{v}");
    assert!(v.get("url").is_none(), "{v}");
    // Logins and registrations (which trust X-Edge-Client-IP for their limits) too, and a
    // guessed secret.
    for (path, body) in [
        (
            "/sessions",
            json!({"email": "local@example.com", "password": "correct horse battery"}),
        ),
        (
            "/users",
            json!({"email": "new@example.com", "password": "correct horse battery"}),
        ),
    ] {
        for secret in [None, Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")] {
            let mut rb = client()
                .post(direct(path))
                .header("x-edge-client-ip", "192.0.2.2")
                .json(&body);
            if let Some(s) = secret {
                rb = rb.header("x-edge-secret", s);
            }
            assert_eq!(rb.send().await.unwrap().status(), 403, "{path}");
        }
    }
    assert_eq!(
        edge.metric(r#"edge_control_refused_total{reason="edge_secret"}"#)
            .await,
        5.0
    );
    // A client cannot smuggle a secret through the edge either: the edge replaces the header.
    let r = client()
        .get(edge.url("/api/v1/titles"))
        .header(
            "x-edge-secret",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Through the edge the country comes from GeoIP: DE is served.
    let r = client()
        .post(edge.url("/api/v1/playback/de-only"))
        .bearer_auth(&token)
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// `control.db` (password hashes) and its WAL files are created 0600.
#[tokio::test]
async fn the_control_database_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let (edge, _s) = control_edge("7d").await;
    let _api = login(&edge, "files@example.com").await;
    for name in ["control.db", "control.db-wal", "control.db-shm"] {
        let mode = std::fs::metadata(edge.dir().join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{name}: {mode:o}");
    }
}

/// The watchlist through the edge: add, list (the catalog's title view), remove, with every
/// answer fresh from the control plane (the GET after a DELETE is not an old copy), and another
/// account refused its profile.
#[tokio::test]
async fn watchlist_through_the_edge() {
    let (edge, _s) = control_edge("7d").await;
    let api = login(&edge, "saver@example.com").await;
    let (s, v) = api.call(reqwest::Method::GET, "/profiles", None).await;
    assert_eq!(s, 200, "{v}");
    let pid = v["items"][0]["id"].as_i64().unwrap();
    let list = format!("/profiles/{pid}/watchlist");
    let entry = format!("/profiles/{pid}/watchlist/demo");

    let (s, v) = api.call(reqwest::Method::PUT, &entry, None).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["title"]["id"], "demo", "{v}");
    let (s, v) = api.call(reqwest::Method::PUT, &entry, None).await;
    assert_eq!(s, 200, "listed already: {v}");
    let (s, v) = api.call(reqwest::Method::GET, &list, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["items"][0]["title_id"], "demo", "{v}");
    assert!(v["items"][0]["title"]["name"].is_string(), "{v}");

    let other = login(&edge, "snoop@example.com").await;
    let (s, v) = other.call(reqwest::Method::GET, &list, None).await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(v["code"], "profile_not_found", "{v}");

    let (s, v) = api.call(reqwest::Method::DELETE, &entry, None).await;
    assert_eq!(s, 204, "{v}");
    let (s, v) = api.call(reqwest::Method::GET, &list, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["total"], 0, "{v}");
    let (s, v) = api.call(reqwest::Method::DELETE, &entry, None).await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(v["code"], "not_found", "{v}");
}
