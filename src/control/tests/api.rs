//! End-to-end API tests on real sockets.

use std::net::{IpAddr, Ipv4Addr};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::support::*;
use crate::token::{self, Reject, VerifyPolicy};

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));

/// Splits a signed path-style URL into (origin, token, path) and checks the token verifies
/// for `path`, returning its claims.
fn verify_url(url: &str, now: i64) -> (String, token::Claims) {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .expect("scheme");
    let slash = rest.find('/').expect("path");
    let (tok, path) = token::from_path(&rest[slash..]).expect("path token");
    let claims = token::verify(
        &keyring(),
        tok,
        path,
        CLIENT,
        u64::try_from(now).expect("now"),
        &VerifyPolicy::default(),
    )
    .expect("token verifies for the manifest path");
    (path.to_string(), claims)
}

fn token_of(url: &str) -> String {
    let i = url.find("/t/").expect("/t/");
    let rest = &url[i + 3..];
    rest[..rest.find('/').expect("/")].to_string()
}

async fn full_viewer_flow(b: Backend) {
    let s = TestServer::start(b).await;

    // Register: basic tier, one ADULT profile named after the email.
    let r = s.register("Alice@Example.com").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["email"], "alice@example.com");
    assert_eq!(r.body["tier"], "basic");
    assert_eq!(r.body["profiles"][0]["display_name"], "alice");
    assert_eq!(r.body["profiles"][0]["maturity"], "ADULT");
    assert_eq!(r.body["profiles"][0]["tier"], "basic");
    assert!(!r.text.contains("argon2"), "no hash in responses");

    // Log in (email case-insensitive).
    let l = s
        .login_from("ALICE@example.com", PASSWORD, "192.0.2.1")
        .await;
    assert_eq!(l.status, StatusCode::CREATED, "{}", l.text);
    let tok = l.body["token"].as_str().expect("token").to_string();
    assert_eq!(tok.len(), 43);
    let now = s.state.now();
    let exp = l.body["expires_at"].as_i64().expect("expires_at");
    assert!((exp - now - 7 * 24 * 3600).abs() <= 5, "7 day session");
    // Only the SHA-256 of the token is stored.
    let stored = raw_sql(
        &s.db,
        "SELECT lower(hex(token_hash)) FROM sessions",
        "SELECT encode(token_hash, 'hex') FROM sessions",
    );
    let want: String = crate::control::auth::token_hash(&tok)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(stored, want);

    let me = s.get("/users/me", Some(&tok)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["profiles"].as_array().map(Vec::len), Some(1));

    // Search (prefix match on a tag word).
    let found = s.get("/titles/search?q=sampl", None).await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.text);
    assert_eq!(found.body["total"], 1);
    assert_eq!(found.body["items"][0]["id"], "demo");
    assert_eq!(found.body["items"][0]["maturity"], "KIDS");
    assert!(
        found.body["items"][0].get("origin_path").is_none(),
        "CDN paths are not public"
    );

    // Playback: signed URL on the preferred host, fallback on the other.
    let p = s.playback("demo", &tok, &[("X-Edge-Country", "FR")]).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);
    assert_eq!(p.body["cdn"], "primary");
    let url = p.body["url"].as_str().expect("url");
    assert!(url.starts_with("http://127.0.0.1:8080/t/v1.ctl."), "{url}");
    assert!(url.ends_with("/demo/ts/master.m3u8"), "{url}");
    let now = s.state.now();
    let (path, claims) = verify_url(url, now);
    assert_eq!(path, "/demo/ts/master.m3u8");
    assert_eq!(claims.acl, "/demo/");
    assert_eq!(claims.mh, Some(480));
    assert_eq!(claims.cc, None);
    let exp = i64::try_from(claims.exp).expect("exp");
    assert!(
        (exp - (now + 20 + 3600)).abs() <= 5,
        "exp = now + duration + slack"
    );
    assert_eq!(p.body["expires_at"].as_i64(), Some(exp));
    assert_eq!(p.body["max_height"], 480);
    let heights: Vec<u64> = p.body["renditions"]
        .as_array()
        .expect("renditions")
        .iter()
        .filter_map(|r| r["height"].as_u64())
        .collect();
    assert_eq!(heights, [240, 360, 480]);
    // The token covers the title's folder (both packagings) and nothing else.
    let t = token_of(url);
    let kr = keyring();
    let pol = VerifyPolicy::default();
    let now_u = u64::try_from(now).expect("now");
    assert!(token::verify(&kr, &t, "/demo/fmp4/master.m3u8", CLIENT, now_u, &pol).is_ok());
    assert_eq!(
        token::verify(&kr, &t, "/other/master.m3u8", CLIENT, now_u, &pol),
        Err(Reject::AclMismatch)
    );
    let fallbacks = p.body["fallbacks"].as_array().expect("fallbacks");
    assert_eq!(fallbacks.len(), 1);
    let fb = fallbacks[0].as_str().expect("fallback");
    assert!(fb.starts_with("https://cdn2.example.net/t/v1.ctl."), "{fb}");
    assert_eq!(verify_url(fb, now).0, "/demo/ts/master.m3u8");
    assert_eq!(token_of(fb), t);

    // When the primary is down, the backup is chosen and the primary becomes the fallback.
    s.health.set_down("primary", true);
    let p2 = s.playback("demo", &tok, &[]).await;
    assert_eq!(p2.status, StatusCode::OK);
    assert_eq!(p2.body["cdn"], "backup");
    assert!(p2.body["fallbacks"][0]
        .as_str()
        .is_some_and(|u| u.starts_with("http://127.0.0.1:8080/")));
    s.health.set_down("primary", false);

    // Progress: idempotent upsert, continue-watching newest first.
    let put = |pos: u32| {
        s.call(
            Method::PUT,
            "/progress/demo",
            Some(&tok),
            &[],
            Some(json!({ "position_seconds": pos })),
        )
    };
    let r = put(7).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["position_seconds"], 7);
    assert_eq!(put(12).await.status, StatusCode::OK);
    assert_eq!(put(12).await.status, StatusCode::OK);
    let cw = s.get("/continue-watching", Some(&tok)).await;
    assert_eq!(cw.status, StatusCode::OK, "{}", cw.text);
    assert_eq!(cw.body["total"], 1);
    assert_eq!(cw.body["items"][0]["title_id"], "demo");
    assert_eq!(cw.body["items"][0]["position_seconds"], 12);
    assert_eq!(cw.body["items"][0]["duration_seconds"], 20);

    // Logout revokes the token.
    let out = s
        .call(Method::DELETE, "/sessions/current", Some(&tok), &[], None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    s.playback("demo", &tok, &[])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    s.stop().await.expect("clean stop");
}

async fn continue_watching_order_and_paging(b: Backend) {
    let s = TestServer::start(b).await;
    for i in 0..5 {
        s.create_title(title_json(
            &format!("t{i}"),
            &format!("Title {i}"),
            "G",
            &[360],
        ))
        .await;
    }
    let (_, _, tok) = s.user("order@example.com").await;
    for i in [0, 1, 2, 3, 4, 2] {
        let r = s
            .call(
                Method::PUT,
                &format!("/progress/t{i}"),
                Some(&tok),
                &[],
                Some(json!({ "position_seconds": 10 + i })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let ids = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["title_id"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let p1 = s.get("/continue-watching?per_page=2", Some(&tok)).await;
    assert_eq!(p1.body["total"], 5);
    assert_eq!(ids(&p1.body), ["t2", "t4"]);
    let p2 = s
        .get("/continue-watching?per_page=2&page=2", Some(&tok))
        .await;
    assert_eq!(ids(&p2.body), ["t3", "t1"]);
    let p3 = s
        .get("/continue-watching?per_page=2&page=3", Some(&tok))
        .await;
    assert_eq!(ids(&p3.body), ["t0"]);
    let p4 = s
        .get("/continue-watching?per_page=2&page=4", Some(&tok))
        .await;
    assert_eq!(ids(&p4.body), Vec::<String>::new());

    // Progress is per profile.
    let kid = s
        .call(
            Method::POST,
            "/profiles",
            Some(&tok),
            &[],
            Some(json!({ "display_name": "Kid", "maturity": "KIDS" })),
        )
        .await;
    assert_eq!(kid.status, StatusCode::CREATED, "{}", kid.text);
    let kid_id = kid.body["id"].as_i64().expect("id").to_string();
    let k = s
        .call(
            Method::GET,
            "/continue-watching",
            Some(&tok),
            &[("X-Profile-Id", &kid_id)],
            None,
        )
        .await;
    assert_eq!(k.body["total"], 0);

    // Deleting a title removes its progress.
    assert_eq!(
        s.admin(Method::DELETE, "/admin/titles/t2", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let after = s.get("/continue-watching", Some(&tok)).await;
    assert_eq!(after.body["total"], 4);
    assert_eq!(ids(&after.body)[0], "t4");
}

async fn tier_refusals_and_upgrades(b: Backend) {
    let s = TestServer::start(b).await;
    s.create_title(title_json("uhd", "Ultra", "G", &[2160]))
        .await;
    s.create_title(title_json("ladder", "Ladder", "G", &[360, 720, 1080, 2160]))
        .await;
    let (uid, _, tok) = s.user("tier@example.com").await;

    s.playback("uhd", &tok, &[])
        .await
        .assert_error(StatusCode::FORBIDDEN, "tier");
    let basic = s.playback("ladder", &tok, &[]).await;
    assert_eq!(basic.status, StatusCode::OK);
    assert_eq!(basic.body["renditions"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        verify_url(basic.body["url"].as_str().expect("url"), s.state.now())
            .1
            .mh,
        Some(480)
    );

    s.set_tier(uid, "standard").await;
    let std = s.playback("ladder", &tok, &[]).await;
    assert_eq!(std.status, StatusCode::OK);
    assert_eq!(std.body["max_height"], 1080);
    assert_eq!(std.body["renditions"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        verify_url(std.body["url"].as_str().expect("url"), s.state.now())
            .1
            .mh,
        Some(1080)
    );
    s.playback("uhd", &tok, &[])
        .await
        .assert_error(StatusCode::FORBIDDEN, "tier");

    s.set_tier(uid, "premium").await;
    let prem = s.playback("uhd", &tok, &[]).await;
    assert_eq!(prem.status, StatusCode::OK, "{}", prem.text);
    assert_eq!(prem.body["max_height"], Value::Null);
    let (path, claims) = verify_url(prem.body["url"].as_str().expect("url"), s.state.now());
    assert_eq!(path, "/v/uhd/hls/master.m3u8");
    assert_eq!(claims.acl, "/v/uhd/hls/");
    assert_eq!(claims.mh, None, "premium: no height limit");
    // The profile list shows the account's tier.
    let profiles = s.get("/profiles", Some(&tok)).await;
    assert_eq!(profiles.body["items"][0]["tier"], "premium");

    // Admin tier errors.
    s.admin(
        Method::PUT,
        "/admin/users/999999/tier",
        Some(json!({"tier": "premium"})),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found");
    let bad = s
        .admin(
            Method::PUT,
            &format!("/admin/users/{uid}/tier"),
            Some(json!({"tier": "gold"})),
        )
        .await;
    bad.assert_error(StatusCode::BAD_REQUEST, "invalid");
    assert!(bad.body["fields"]["tier"].is_string());
}

async fn maturity_profiles(b: Backend) {
    let s = TestServer::start(b).await;
    s.create_title(title_json("r-movie", "Gritty", "R", &[360]))
        .await;
    s.create_title(title_json("teen-movie", "Teen", "PG-13", &[360]))
        .await;
    s.create_title(title_json("pg-movie", "Family", "PG", &[360]))
        .await;
    let (_, adult, tok) = s.user("family@example.com").await;
    let mk = |name: &str, m: &str| {
        s.call(
            Method::POST,
            "/profiles",
            Some(&tok),
            &[],
            Some(json!({ "display_name": name, "maturity": m, "language": "pt-BR" })),
        )
    };
    let kids = mk("Kids", "KIDS").await;
    assert_eq!(kids.status, StatusCode::CREATED, "{}", kids.text);
    assert_eq!(kids.body["language"], "pt-BR");
    let kids = kids.body["id"].as_i64().expect("id").to_string();
    let teen = mk("Teen", "TEEN").await.body["id"]
        .as_i64()
        .expect("id")
        .to_string();
    let adult = adult.to_string();

    let cases = [
        (&kids, "pg-movie", None),
        (&kids, "teen-movie", Some("maturity")),
        (&kids, "r-movie", Some("maturity")),
        (&teen, "teen-movie", None),
        (&teen, "r-movie", Some("maturity")),
        (&adult, "r-movie", None),
    ];
    for (profile, title, refusal) in cases {
        let r = s.playback(title, &tok, &[("X-Profile-Id", profile)]).await;
        match refusal {
            None => assert_eq!(r.status, StatusCode::OK, "{profile} {title}: {}", r.text),
            Some(code) => r.assert_error(StatusCode::FORBIDDEN, code),
        }
    }
    // Default profile = the first (adult).
    assert_eq!(
        s.playback("r-movie", &tok, &[]).await.status,
        StatusCode::OK
    );

    // Profile selection errors.
    s.playback("r-movie", &tok, &[("X-Profile-Id", "abc")])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid");
    let (_, other_profile, _) = s.user("stranger@example.com").await;
    s.playback(
        "r-movie",
        &tok,
        &[("X-Profile-Id", &other_profile.to_string())],
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "profile_not_found");

    // Profile limit (5 per account) and validation.
    mk("Three", "ADULT").await;
    mk("Four", "ADULT").await;
    mk("Five", "ADULT")
        .await
        .assert_error(StatusCode::CONFLICT, "limit_reached");
    let list = s.get("/profiles", Some(&tok)).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(5));
    let bad = s
        .call(
            Method::POST,
            "/profiles",
            Some(&tok),
            &[],
            Some(json!({ "display_name": "", "maturity": "BABY", "language": "!" })),
        )
        .await;
    bad.assert_error(StatusCode::BAD_REQUEST, "invalid");
    for f in ["display_name", "maturity", "language"] {
        assert!(bad.body["fields"][f].is_string(), "{f}: {}", bad.text);
    }
}

async fn country_and_window_refusals(b: Backend) {
    let s = TestServer::start(b).await;
    let mut geo = title_json("geo", "Geo Locked", "G", &[360]);
    geo["countries"] = json!(["us", "CA"]);
    s.create_title(geo).await;
    let now = s.state.now();
    let mut later = title_json("later", "Coming Soon", "G", &[360]);
    later["available_from"] = json!(now + 3600);
    s.create_title(later).await;
    let mut gone = title_json("gone", "Expired Licence", "G", &[360]);
    gone["available_until"] = json!(now - 10);
    s.create_title(gone).await;
    let (_, _, tok) = s.user("geo@example.com").await;

    s.playback("geo", &tok, &[])
        .await
        .assert_error(StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, "country");
    s.playback("geo", &tok, &[("X-Edge-Country", "FR")])
        .await
        .assert_error(StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, "country");
    s.playback("geo", &tok, &[("X-Edge-Country", "??")])
        .await
        .assert_error(StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, "country");
    let ok = s.playback("geo", &tok, &[("X-Edge-Country", "us")]).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let (_, claims) = verify_url(ok.body["url"].as_str().expect("url"), s.state.now());
    assert_eq!(claims.cc, Some(vec!["CA".to_string(), "US".to_string()]));
    assert!(claims.allows_country("us") && !claims.allows_country("FR"));

    s.playback("later", &tok, &[])
        .await
        .assert_error(StatusCode::FORBIDDEN, "not_available");
    s.playback("gone", &tok, &[])
        .await
        .assert_error(StatusCode::FORBIDDEN, "not_available");
    s.state.clock().advance(3601);
    assert_eq!(s.playback("later", &tok, &[]).await.status, StatusCode::OK);

    s.playback("nope", &tok, &[])
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    s.playback("bad%20id", &tok, &[])
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

async fn sessions_expire(b: Backend) {
    let s = TestServer::start(b).await;
    let (_, _, tok) = s.user("expiry@example.com").await;
    assert_eq!(s.playback("demo", &tok, &[]).await.status, StatusCode::OK);
    s.state.clock().advance(7 * 24 * 3600 + 1);
    s.playback("demo", &tok, &[])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "session_expired");
    let r = s.get("/profiles", Some(&tok)).await;
    r.assert_error(StatusCode::UNAUTHORIZED, "session_expired");
    assert!(r.headers.get("www-authenticate").is_some());
    // Purging removes expired sessions; the token is then simply unknown.
    assert_eq!(
        s.state
            .store()
            .purge_sessions(s.state.now())
            .await
            .expect("purge"),
        1
    );
    s.get("/profiles", Some(&tok))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    // No token / garbage tokens.
    s.call(Method::POST, "/playback/demo", None, &[], None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    s.call(
        Method::POST,
        "/playback/demo",
        None,
        &[("Authorization", "Basic abc")],
        None,
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    let long = "x".repeat(5000);
    s.playback("demo", &long, &[])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
}

async fn bad_input_is_400_with_fields(b: Backend) {
    let s = TestServer::start(b).await;
    let r = s
        .call(
            Method::POST,
            "/users",
            None,
            &[],
            Some(json!({ "email": "not-an-email", "password": "short" })),
        )
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid");
    assert!(r.body["fields"]["email"].is_string(), "{}", r.text);
    assert!(r.body["fields"]["password"].is_string(), "{}", r.text);

    let r = s
        .call(Method::POST, "/users", None, &[], Some(json!({})))
        .await;
    assert_eq!(r.body["fields"]["email"], "required");

    // Wrong JSON type: the field is named.
    let r = s
        .call(
            Method::POST,
            "/users",
            None,
            &[],
            Some(json!({ "email": 5, "password": "0123456789" })),
        )
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid");
    assert!(
        r.body["fields"]["email"]
            .as_str()
            .is_some_and(|m| m.contains("invalid type")),
        "{}",
        r.text
    );
    // Unknown fields are refused.
    let r = s
        .call(
            Method::POST,
            "/users",
            None,
            &[],
            Some(json!({ "email": "a@b.co", "password": "0123456789", "admin": true })),
        )
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid");

    // Not JSON / wrong content type / too large.
    let raw = |ct: &str, body: Vec<u8>| {
        s.client
            .post(s.url("/users"))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let r = Resp::from(
        raw("application/json", b"{\"email\":".to_vec())
            .await
            .expect("send"),
    )
    .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid");
    let r = Resp::from(raw("application/json", b"{]".to_vec()).await.expect("send")).await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid");
    let r = Resp::from(raw("text/plain", b"{}".to_vec()).await.expect("send")).await;
    r.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let big = format!("{{\"email\":\"{}\"}}", "a".repeat(100 * 1024));
    let r = Resp::from(
        raw("application/json", big.into_bytes())
            .await
            .expect("send"),
    )
    .await;
    r.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    // Duplicate email.
    assert_eq!(
        s.register("dup@example.com").await.status,
        StatusCode::CREATED
    );
    s.register("DUP@example.com")
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");

    // Paging and search parameters.
    let r = s.get("/titles?per_page=0&page=x", None).await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid");
    assert!(r.body["fields"]["per_page"].is_string() && r.body["fields"]["page"].is_string());
    s.get("/titles?per_page=101", None)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid");
    s.get("/titles/search", None)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid");
    s.get("/titles/search?q=%22*%28", None)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid");
    let long_q = format!("/titles/search?q={}", "a".repeat(201));
    s.get(&long_q, None)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid");

    // Progress validation.
    let (_, _, tok) = s.user("progress@example.com").await;
    let put = |body: Value| s.call(Method::PUT, "/progress/demo", Some(&tok), &[], Some(body));
    let r = put(json!({ "position_seconds": 21 })).await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid");
    assert!(r.body["fields"]["position_seconds"].is_string());
    put(json!({ "position_seconds": -1 }))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid");
    put(json!({}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid");
    s.call(
        Method::PUT,
        "/progress/missing",
        Some(&tok),
        &[],
        Some(json!({ "position_seconds": 1 })),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found");

    // Admin title validation: every problem is reported.
    let r = s
        .admin(Method::POST, "/admin/titles", Some(json!({ "id": "x y", "rating": "XXX", "origin_path": "relative", "countries": ["USA"] })))
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid");
    for f in [
        "id",
        "name",
        "rating",
        "duration_seconds",
        "origin_path",
        "renditions",
        "countries",
    ] {
        assert!(r.body["fields"][f].is_string(), "{f}: {}", r.text);
    }

    // Undecodable path parameters and unknown routes and methods are JSON too.
    s.get("/titles/%FF%FE", None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    s.get("/nope", None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    s.call(Method::PATCH, "/titles", None, &[], None)
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

async fn login_rate_limits(b: Backend) {
    let s = TestServer::start(b).await;
    s.user("victim@example.com").await;
    let ip = "203.0.113.5";
    for _ in 0..5 {
        s.login_from("victim@example.com", "wrong password!", ip)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    // That address is limited now, even with the right password.
    let r = s.login_from("victim@example.com", PASSWORD, ip).await;
    r.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry = r.retry_after();
    assert!((1..=900).contains(&retry), "{retry}");
    // The owner, from their own address, is not locked out by someone else's failures.
    assert_eq!(
        s.login_from("victim@example.com", PASSWORD, "203.0.113.99")
            .await
            .status,
        StatusCode::CREATED
    );
    // After the window the account can log in again.
    s.state.clock().advance(15 * 60);
    assert_eq!(
        s.login_from("victim@example.com", PASSWORD, ip)
            .await
            .status,
        StatusCode::CREATED
    );

    // A success resets the account's counter.
    for _ in 0..4 {
        s.login_from("victim@example.com", "wrong password!", "203.0.113.6")
            .await;
    }
    assert_eq!(
        s.login_from("victim@example.com", PASSWORD, "203.0.113.6")
            .await
            .status,
        StatusCode::CREATED
    );
    for _ in 0..4 {
        s.login_from("victim@example.com", "wrong password!", "203.0.113.7")
            .await;
    }
    assert_eq!(
        s.login_from("victim@example.com", PASSWORD, "203.0.113.7")
            .await
            .status,
        StatusCode::CREATED
    );

    // Per address: 20 failures over many (unknown) accounts block the address, not others.
    let attacker = "198.51.100.66";
    for i in 0..20 {
        s.login_from(
            &format!("guess{}@example.com", i / 4),
            "wrong password!",
            attacker,
        )
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    s.login_from("victim@example.com", PASSWORD, attacker)
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(
        s.login_from("victim@example.com", PASSWORD, "198.51.100.67")
            .await
            .status,
        StatusCode::CREATED
    );

    // Missing fields are 400, not counted.
    let r = s
        .call(
            Method::POST,
            "/sessions",
            None,
            &[],
            Some(json!({ "email": "victim@example.com" })),
        )
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(r.body["fields"]["password"], "required");
}

/// Places under the limits are taken before the password check: of 40 parallel wrong
/// passwords for one account from one address, at most the limit reach argon2 and the rest are
/// refused at once; the owner logs in from another address meanwhile.
async fn parallel_wrong_passwords_are_refused_before_hashing(b: Backend) {
    let s = TestServer::start(b).await;
    s.user("target@example.com").await;
    let verify = || {
        s.state
            .metrics()
            .password_work
            .with_label_values(&["verify"])
            .get()
    };
    let before = verify();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let rb = s
            .client
            .post(s.url("/sessions"))
            .header("X-Edge-Client-IP", "198.51.100.20")
            .json_body(&json!({ "email": "target@example.com", "password": "wrong password!" }));
        set.spawn(async move { rb.send().await.expect("send").status() });
    }
    let answers: Vec<StatusCode> = set.join_all().await;
    let wrong = answers
        .iter()
        .filter(|&&st| st == StatusCode::UNAUTHORIZED)
        .count();
    let limited = answers
        .iter()
        .filter(|&&st| st == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(wrong + limited, 40, "{answers:?}");
    assert!(
        (1..=5).contains(&wrong),
        "{wrong} wrong passwords were checked"
    );
    let checked = verify() - before;
    assert_eq!(
        checked,
        u64::try_from(wrong).expect("count"),
        "argon2 ran only for the admitted"
    );
    let refused = s
        .state
        .metrics()
        .refused
        .with_label_values(&["login_account"])
        .get()
        + s.state
            .metrics()
            .refused
            .with_label_values(&["login_busy"])
            .get();
    assert_eq!(refused, u64::try_from(limited).expect("count"));
    let l = s
        .login_from("target@example.com", PASSWORD, "203.0.113.50")
        .await;
    assert_eq!(l.status, StatusCode::CREATED, "{}", l.text);
}

/// Registrations are limited per client address, before the hash.
async fn registrations_are_limited_per_address(b: Backend) {
    let s = TestServer::start_with(b, |c| c.register_limits.per_ip = 3).await;
    let hashes = || {
        s.state
            .metrics()
            .password_work
            .with_label_values(&["hash"])
            .get()
    };
    let register = |email: String, ip: &'static str| {
        let s = &s;
        async move {
            s.call(
                Method::POST,
                "/users",
                None,
                &[("X-Edge-Client-IP", ip)],
                Some(json!({ "email": email, "password": PASSWORD })),
            )
            .await
        }
    };
    for i in 0..3 {
        let r = register(format!("r{i}@example.com"), "198.51.100.30").await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let before = hashes();
    let r = register("r3@example.com".into(), "198.51.100.30").await;
    r.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry = r.retry_after();
    assert!((1..=3600).contains(&retry), "{retry}");
    assert_eq!(hashes(), before, "a refused registration costs no hash");
    // Another address is not affected; after the window the first may register again.
    let r = register("r4@example.com".into(), "198.51.100.31").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    s.state.clock().advance(3600);
    let r = register("r5@example.com".into(), "198.51.100.30").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

/// Without the edge's secret the loopback port answers 403 to everything, whatever
/// `X-Edge-Country`/`X-Edge-Client-IP` say.
async fn the_port_refuses_requests_without_the_edge_secret(b: Backend) {
    let s = TestServer::start(b).await;
    let (_, _, token) = s.user("local@example.com").await;
    let plain = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let other =
        crate::control::EdgeSecret::generate(&ring::rand::SystemRandom::new()).expect("secret");
    for secret in [
        None,
        Some(other.header_value()),
        Some("".parse().expect("value")),
    ] {
        for (method, path) in [
            (Method::GET, "/titles"),
            (Method::POST, "/playback/demo"),
            (Method::GET, "/nope"),
        ] {
            let mut rb = plain
                .request(method.clone(), s.url(path))
                .bearer_auth(&token)
                .header("x-edge-country", "DE")
                .header("x-edge-client-ip", "192.0.2.99");
            if let Some(v) = &secret {
                rb = rb.header(crate::control::EDGE_SECRET_HEADER, v.clone());
            }
            let r = Resp::from(rb.send().await.expect("send")).await;
            r.assert_error(StatusCode::FORBIDDEN, "forbidden");
            assert_eq!(r.headers["cache-control"], "no-store");
        }
    }
    let refused = s
        .state
        .metrics()
        .refused
        .with_label_values(&["edge_secret"])
        .get();
    assert_eq!(refused, 9);
    // With the secret the same request is served.
    assert_eq!(s.get("/titles", None).await.status, StatusCode::OK);
}

/// The database and its WAL files are private to the edge's user; a folder the control plane
/// creates is too, and an older world-readable database is narrowed at open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    let s = TestServer::start(Backend::Sqlite).await;
    s.user("files@example.com").await;
    let crate::control::Database::Sqlite(db) = s.db.clone() else {
        unreachable!("a SQLite test server")
    };
    let side = |suffix: &str| {
        let mut p = db.clone().into_os_string();
        p.push(suffix);
        std::path::PathBuf::from(p)
    };
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&side("-wal")), 0o600);
    assert_eq!(mode(&side("-shm")), 0o600);
    assert_eq!(mode(db.parent().expect("folder")), 0o700);
    s.stop().await.expect("stop");

    let dir = tempfile::tempdir().expect("tempdir");
    let old = dir.path().join("old.db");
    std::fs::write(&old, b"").expect("create");
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let state = crate::control::AppState::open(
        config(old.clone()),
        keyring(),
        std::sync::Arc::new(crate::control::AlwaysHealthy),
    )
    .await
    .expect("open");
    assert_eq!(mode(&old), 0o600);
    drop(state);
}

async fn admin_catalog_management(b: Backend) {
    let s = TestServer::start(b).await;
    let body = title_json("space", "Space Odyssey", "PG", &[360, 720]);
    // Authorisation.
    s.call(Method::POST, "/admin/titles", None, &[], Some(body.clone()))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    s.call(
        Method::POST,
        "/admin/titles",
        Some("wrong"),
        &[],
        Some(body.clone()),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let (_, _, user_tok) = s.user("notadmin@example.com").await;
    s.call(
        Method::DELETE,
        "/admin/titles/demo",
        Some(&user_tok),
        &[],
        None,
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");

    // Create, conflict, read.
    let r = s
        .admin(Method::POST, "/admin/titles", Some(body.clone()))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.headers["location"], "/api/v1/titles/space");
    assert_eq!(r.body["acl_path"], "/v/space/hls/");
    assert_eq!(r.body["maturity"], "KIDS");
    s.admin(Method::POST, "/admin/titles", Some(body.clone()))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
    let g = s.get("/titles/space", None).await;
    assert_eq!(g.status, StatusCode::OK);
    assert_eq!(g.body["name"], "Space Odyssey");
    assert_eq!(
        s.get("/titles/search?q=odyssey", None).await.body["total"],
        1
    );

    // Replace: search follows the new text.
    let mut replaced = body.clone();
    replaced["name"] = json!("Ocean Voyage");
    replaced["description"] = json!("Waves.");
    replaced["tags"] = json!(["sea"]);
    replaced.as_object_mut().expect("object").remove("id");
    let r = s
        .admin(Method::PUT, "/admin/titles/space", Some(replaced))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        s.get("/titles/search?q=odyssey", None).await.body["total"],
        0
    );
    assert_eq!(
        s.get("/titles/search?q=voyage", None).await.body["total"],
        1
    );
    assert_eq!(s.get("/titles/search?q=sea", None).await.body["total"], 1);
    // PUT creates when absent; mismatched ids are refused.
    let r = s
        .admin(
            Method::PUT,
            "/admin/titles/fresh",
            Some(title_json("fresh", "Fresh", "G", &[240])),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = s
        .admin(
            Method::PUT,
            "/admin/titles/fresh",
            Some(title_json("other", "Fresh", "G", &[240])),
        )
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid");
    assert!(r.body["fields"]["id"].is_string());

    // Delete.
    assert_eq!(
        s.admin(Method::DELETE, "/admin/titles/space", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    s.get("/titles/space", None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        s.get("/titles/search?q=voyage", None).await.body["total"],
        0
    );
    s.admin(Method::DELETE, "/admin/titles/space", None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

async fn admin_disabled_without_token(b: Backend) {
    let s = TestServer::start_with(b, |c| c.admin_token.clear()).await;
    s.call(Method::DELETE, "/admin/titles/demo", Some(""), &[], None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    s.admin(Method::DELETE, "/admin/titles/demo", None)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(s.get("/titles/demo", None).await.status, StatusCode::OK);
}

async fn listing_and_search_paging(b: Backend) {
    let s = TestServer::start(b).await;
    for i in 0..25 {
        let mut t = title_json(&format!("m{i:02}"), &format!("Movie {i:02}"), "G", &[360]);
        if i % 5 == 0 {
            t["description"] = json!("A story about dragons and knights.");
        }
        s.create_title(t).await;
    }
    let p1 = s.get("/titles?per_page=10", None).await;
    assert_eq!(p1.status, StatusCode::OK);
    assert_eq!(p1.body["total"], 26);
    assert_eq!(p1.body["page"], 1);
    assert_eq!(p1.body["per_page"], 10);
    let names: Vec<&str> = p1.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names[0], "Demo");
    assert_eq!(names[1], "Movie 00");
    let p3 = s.get("/titles?per_page=10&page=3", None).await;
    assert_eq!(p3.body["items"].as_array().map(Vec::len), Some(6));
    let far = s.get("/titles?page=99", None).await;
    assert_eq!(far.body["items"].as_array().map(Vec::len), Some(0));
    assert_eq!(far.body["total"], 26);

    let d = s.get("/titles/search?q=dragon&per_page=2", None).await;
    assert_eq!(d.body["total"], 5);
    assert_eq!(d.body["items"].as_array().map(Vec::len), Some(2));
    // Every word must match; FTS syntax in the query is inert.
    assert_eq!(
        s.get("/titles/search?q=dragons%20movie%2005", None)
            .await
            .body["total"],
        1
    );
    assert_eq!(
        s.get("/titles/search?q=dragons%20OR%20demo", None)
            .await
            .body["total"],
        0
    );
    let r = s
        .get("/titles/search?q=%22dragons%22%20NEAR(x)%20*", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Name matches rank before description matches.
    let mut t = title_json("dragonfly", "Dragonfly", "G", &[360]);
    t["description"] = json!("Insects.");
    s.create_title(t).await;
    let r = s.get("/titles/search?q=dragon", None).await;
    assert_eq!(r.body["items"][0]["id"], "dragonfly");
}

async fn internal_errors_do_not_leak(b: Backend) {
    let s = TestServer::start(b).await;
    let (_, _, tok) = s.user("leak@example.com").await;
    raw_sql(&s.db, "DROP TABLE progress", "DROP TABLE progress");
    let r = s.get("/continue-watching", Some(&tok)).await;
    r.assert_error(StatusCode::INTERNAL_SERVER_ERROR, "internal");
    assert_eq!(r.body["message"], "internal error");
    let lower = r.text.to_lowercase();
    for needle in [
        "sqlite",
        "postgres",
        "relation",
        "progress",
        "table",
        "control.db",
        "/tmp",
        "127.0.0.1",
    ] {
        assert!(!lower.contains(needle), "{needle} leaked: {}", r.text);
    }
}

async fn concurrent_writes_all_land(b: Backend) {
    let s = TestServer::start(b).await;
    for i in 0..50 {
        s.create_title(title_json(
            &format!("c{i}"),
            &format!("Concurrent {i}"),
            "G",
            &[360],
        ))
        .await;
    }
    let (_, _, tok) = s.user("busy@example.com").await;
    // 50 parallel writes to distinct titles.
    let mut tasks = Vec::new();
    for i in 0..50u32 {
        let client = s.client.clone();
        let url = s.url(&format!("/progress/c{i}"));
        let tok = tok.clone();
        tasks.push(tokio::spawn(async move {
            client
                .put(url)
                .bearer_auth(tok)
                .json_body(&json!({ "position_seconds": i + 1 }))
                .send()
                .await
                .map(|r| r.status())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("join").expect("send"), StatusCode::OK);
    }
    let all = s.get("/continue-watching?per_page=100", Some(&tok)).await;
    assert_eq!(all.body["total"], 50);
    let mut seen: Vec<u64> = all.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["position_seconds"].as_u64())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=50).collect::<Vec<u64>>());

    // 50 parallel writes to one title: one row, holding one of the written values.
    let mut tasks = Vec::new();
    for i in 0..50u32 {
        let client = s.client.clone();
        let url = s.url("/progress/c0");
        let tok = tok.clone();
        tasks.push(tokio::spawn(async move {
            client
                .put(url)
                .bearer_auth(tok)
                .json_body(&json!({ "position_seconds": 100 + i }))
                .send()
                .await
                .map(|r| r.status())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("join").expect("send"), StatusCode::OK);
    }
    let all = s.get("/continue-watching?per_page=100", Some(&tok)).await;
    assert_eq!(all.body["total"], 50);
    assert_eq!(all.body["items"][0]["title_id"], "c0");
    let pos = all.body["items"][0]["position_seconds"]
        .as_u64()
        .expect("pos");
    assert!((100..150).contains(&pos));

    // 20 parallel registrations: distinct accounts.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let client = s.client.clone();
        let url = s.url("/users");
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .json_body(&json!({ "email": format!("u{i}@example.com"), "password": PASSWORD }))
                .send()
                .await
                .expect("send");
            (r.status(), json_of(r).await["id"].as_i64())
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        let (st, id) = t.await.expect("join");
        assert_eq!(st, StatusCode::CREATED);
        ids.push(id.expect("id"));
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 20);
}

async fn no_cdn_hosts_is_503_and_responses_are_not_cacheable(b: Backend) {
    let s = TestServer::start_with(b, |c| c.cdn_hosts.clear()).await;
    let (_, _, tok) = s.user("nocdn@example.com").await;
    let r = s.playback("demo", &tok, &[]).await;
    r.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    for resp in [&r, &s.get("/titles", None).await] {
        assert_eq!(resp.headers["cache-control"], "no-store");
        assert_eq!(resp.headers["x-content-type-options"], "nosniff");
    }
}

async fn startup_checks_and_restart(b: Backend) {
    // Bad configuration is refused before anything is opened.
    let dir = tempfile::tempdir().expect("tempdir");
    let health = std::sync::Arc::new(TestHealth::default());
    let mut cfg = config(dir.path().join("a.db"));
    cfg.cdn_hosts[0].base_url = "cdn.example".into();
    let e = crate::control::AppState::open(cfg, keyring(), health.clone())
        .await
        .expect_err("bad url");
    assert!(matches!(e, crate::control::ControlError::Config(_)), "{e}");
    let mut cfg = config(dir.path().join("a.db"));
    cfg.cdn_hosts[0].base_url = "https://cdn.example/prefix".into();
    assert!(
        crate::control::AppState::open(cfg, keyring(), health.clone())
            .await
            .is_err(),
        "path prefixes are refused"
    );
    let mut cfg = config(dir.path().join("a.db"));
    cfg.cdn_hosts[1].name = "backup".into();
    assert!(
        crate::control::AppState::open(cfg, keyring(), health.clone())
            .await
            .is_err()
    );
    let mut cfg = config(dir.path().join("a.db"));
    if let Some(seed) = cfg.seed.as_mut() {
        seed.origin_path = "nope".into();
    }
    assert!(
        crate::control::AppState::open(cfg, keyring(), health.clone())
            .await
            .is_err()
    );
    assert!(!dir.path().join("a.db").exists());

    // serve_state() on a real listener; data survives a graceful restart; the seed is not
    // re-applied over an admin's change. Each start has a new edge secret.
    let db = match b {
        Backend::Sqlite => crate::control::Database::Sqlite(dir.path().join("nested").join("c.db")),
        Backend::Postgres => b.fresh_database(dir.path()),
    };
    let run = |db: crate::control::Database| async move {
        let state = crate::control::AppState::open(
            config(db),
            keyring(),
            std::sync::Arc::new(crate::control::AlwaysHealthy),
        )
        .await
        .expect("open");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let c = edge_client(state.edge_secret());
        let task = tokio::spawn(crate::control::serve_state(listener, state, async move {
            let _ = rx.await;
        }));
        (format!("http://{addr}/api/v1"), tx, task, c)
    };
    let (base, tx, task, c) = run(db.clone()).await;
    let r = c
        .put(format!("{base}/admin/titles/demo"))
        .bearer_auth(ADMIN)
        .json_body(
            &json!({ "name": "Renamed Demo", "rating": "G", "duration_seconds": 20,
                        "origin_path": "/demo/ts/master.m3u8", "acl_path": "/demo/",
                        "renditions": [{ "height": 240, "bandwidth": 1 }] }),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    tx.send(()).expect("shutdown");
    task.await.expect("join").expect("serve ok");

    let (base, tx, task, c) = run(db.clone()).await;
    let t = json_of(
        c.get(format!("{base}/titles/demo"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(t["name"], "Renamed Demo");
    tx.send(()).expect("shutdown");
    task.await.expect("join").expect("serve ok");
}

#[test]
fn config_debug_hides_the_admin_token() {
    let c = config("x.db");
    let d = format!("{c:?}");
    assert!(!d.contains(ADMIN), "{d}");
    assert!(d.contains("(set)"));
}

on_both_stores!(
    full_viewer_flow,
    continue_watching_order_and_paging,
    tier_refusals_and_upgrades,
    maturity_profiles,
    country_and_window_refusals,
    sessions_expire,
    bad_input_is_400_with_fields,
    login_rate_limits,
    parallel_wrong_passwords_are_refused_before_hashing,
    registrations_are_limited_per_address,
    the_port_refuses_requests_without_the_edge_secret,
    admin_catalog_management,
    admin_disabled_without_token,
    listing_and_search_paging,
    internal_errors_do_not_leak,
    concurrent_writes_all_land,
    no_cdn_hosts_is_503_and_responses_are_not_cacheable,
    startup_checks_and_restart,
);
