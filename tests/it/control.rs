//! The control plane end to end through the edge, on real sockets: register, login, search,
//! playback (the returned URL plays through the edge), progress, continue-watching; refusals
//! for tier, maturity, country and expired sessions; acknowledged writes survive a kill.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{client, free_port, Edge};

const MEDIA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/media");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const ADMIN: &str = "integration-admin-token-0123456789";

async fn control_edge(session_ttl: &str) -> (Edge, tempfile::TempDir) {
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("admin"), ADMIN).unwrap();
    let cfg = format!(
        "[demo]\nlisten = \"127.0.0.1:{}\"\nmedia = \"{MEDIA}\"\n\
         [tokens]\ncurrent = \"demo\"\nkeys = [{{ id = \"demo\", secret_file = \"{ROOT}/certs/demo-token.TEST-KEY.hex\" }}]\n\
         [geo]\ndatabase = \"{ROOT}/geoip/edge-test.mmdb\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n\
         [control]\ndatabase = \"control.db\"\nadmin_token_file = \"{}/admin\"\nsession_ttl = \"{session_ttl}\"\n",
        free_port(),
        secrets.path().display()
    );
    (Edge::start_with_config(&cfg, "").await, secrets)
}

struct Api<'a> {
    edge: &'a Edge,
    token: Option<String>,
    xff: Option<&'static str>,
    profile: Option<i64>,
}

impl Api<'_> {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
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
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn admin_title(&self, id: &str, rating: &str, heights: &[u32], countries: &[&str]) {
        let renditions: Vec<Value> = heights.iter().map(|h| json!({"height": h, "bandwidth": h * 1000})).collect();
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

async fn login<'a>(edge: &'a Edge, email: &str) -> Api<'a> {
    let anon = Api { edge, token: None, xff: None, profile: None };
    let (s, v) = anon.call(reqwest::Method::POST, "/users", Some(json!({"email": email, "password": "correct horse battery"}))).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = anon.call(reqwest::Method::POST, "/sessions", Some(json!({"email": email, "password": "correct horse battery"}))).await;
    assert_eq!(s, 201, "a session is created: {v}");
    Api { edge, token: Some(v["token"].as_str().unwrap().to_string()), xff: None, profile: None }
}

#[tokio::test]
async fn register_login_search_play_and_continue_watching() {
    let (edge, _s) = control_edge("7d").await;
    let api = login(&edge, "viewer@example.com").await;
    let (s, v) = api.call(reqwest::Method::GET, "/titles/search?q=demo", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["items"][0]["id"], "demo");
    let (s, v) = api.call(reqwest::Method::POST, "/playback/demo", None).await;
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
        let (s, v) = api.call(reqwest::Method::PUT, &format!("/progress/{title}"), Some(json!({"position_seconds": pos}))).await;
        assert!(s == 200 || s == 204, "{s} {v}");
    }
    let (s, v) = api.call(reqwest::Method::GET, "/continue-watching", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["items"][0]["title_id"], "demo", "{v}");
    assert_eq!(v["items"][0]["position_seconds"], 12, "{v}");
    // The API document is served through the edge too.
    let (s, v) = api.call(reqwest::Method::GET, "/openapi.json", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["servers"][0]["url"], "/api/v1");
    assert!(v["paths"]["/playback/{title_id}"]["post"].is_object(), "the playback route is documented");
}

#[tokio::test]
async fn playback_refusals_for_tier_maturity_country_and_expired_sessions() {
    let (edge, _s) = control_edge("2s").await;
    let mut api = login(&edge, "kid@example.com").await;
    api.admin_title("hd-only", "G", &[1080], &[]).await;
    api.admin_title("r-rated", "R", &[240], &[]).await;
    api.admin_title("de-only", "G", &[240], &["DE"]).await;
    // Tier: a basic account sees at most 480p; a 1080p-only title is refused.
    let (s, v) = api.call(reqwest::Method::POST, "/playback/hd-only", None).await;
    assert_eq!((s, v["code"].as_str()), (403, Some("tier")), "{v}");
    // Maturity: a KIDS profile may not play an R title.
    let (s, v) = api.call(reqwest::Method::POST, "/profiles", Some(json!({"display_name": "kid", "language": "en", "maturity": "KIDS"}))).await;
    assert_eq!(s, 201, "{v}");
    api.profile = v["id"].as_i64();
    let (s, v) = api.call(reqwest::Method::POST, "/playback/r-rated", None).await;
    assert_eq!((s, v["code"].as_str()), (403, Some("maturity")), "{v}");
    // Country, from the edge's GeoIP of the client (behind a trusted proxy); a spoofed
    // X-Edge-Country from the client is overwritten by the edge.
    api.xff = Some("198.51.100.7");
    let mut req = client().post(edge.url("/api/v1/playback/de-only")).bearer_auth(api.token.clone().unwrap());
    req = req.header("x-forwarded-for", "198.51.100.7").header("x-edge-country", "DE");
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 451);
    api.xff = Some("203.0.113.9");
    let (s, v) = api.call(reqwest::Method::POST, "/playback/de-only", None).await;
    assert_eq!(s, 200, "{v}");
    // The signed URL carries the title's countries: outside DE the edge refuses it.
    let url = v["url"].as_str().unwrap().to_string();
    let r = client().get(&url).header("x-forwarded-for", "192.0.2.7").send().await.unwrap();
    assert_eq!(r.status(), 451);
    let r = client().get(&url).header("x-forwarded-for", "203.0.113.9").send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Sessions expire.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (s, v) = api.call(reqwest::Method::POST, "/playback/de-only", None).await;
    assert_eq!(s, 401, "{v}");
    let anon = Api { edge: &edge, token: None, xff: None, profile: None };
    assert_eq!(anon.call(reqwest::Method::POST, "/playback/demo", None).await.0, 401);
}

#[tokio::test]
async fn acknowledged_writes_survive_a_kill() {
    let (mut edge, _s) = control_edge("7d").await;
    let api = login(&edge, "durable@example.com").await;
    let token = api.token.clone();
    for i in 0..20 {
        let id = format!("t{i}");
        api.admin_title(&id, "G", &[240], &[]).await;
        let (s, _) = api.call(reqwest::Method::PUT, &format!("/progress/{id}"), Some(json!({"position_seconds": i + 1}))).await;
        assert!(s == 200 || s == 204);
    }
    // SIGKILL: no graceful shutdown, then start again on the same files.
    edge.kill();
    edge.restart_after_stop().await;
    let api = Api { edge: &edge, token, xff: None, profile: None };
    let (s, v) = api.call(reqwest::Method::GET, "/continue-watching?per_page=50", None).await;
    assert_eq!(s, 200, "{v}");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 20, "{v}");
    assert_eq!(items[0]["title_id"], "t19", "newest first");
}
