//! The per-profile watchlist, on both stores: the store contract (idempotent add, newest
//! first with ties in add order, cascades from titles and profiles) and the API (paging,
//! ownership, unknown titles, maturity).

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::support::*;
use crate::control::api::open_store;
use crate::control::model::{Maturity, NewProfile, Registration, Title};
use crate::control::store::{PutMode, StoreError};

fn titled(id: &str) -> Title {
    let mut t = Title::demo();
    t.id = id.into();
    t.name = format!("Title {id}");
    t.origin_path = format!("/{id}/master.m3u8");
    t.acl_path = format!("/{id}/");
    t
}

async fn store_contract(b: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = b.fresh_database(dir.path());
    let s = open_store(&db).await.expect("open store");
    for i in 0..4 {
        s.put_title(&titled(&format!("w{i}")), PutMode::Create, 1)
            .await
            .expect("title");
    }
    let reg = Registration {
        email: "w@example.com".into(),
        password: "unused".into(),
        first_profile: NewProfile {
            display_name: "w".into(),
            language: "en".into(),
            maturity: Maturity::Adult,
        },
    };
    let (u, p) = s.create_user(&reg, "hash".into(), 1).await.expect("user");
    let other = s
        .create_profile(u.id, &reg.first_profile, 5, 1)
        .await
        .expect("profile");
    let ids = |page: &crate::control::model::Page<crate::control::model::WatchlistEntry>| {
        page.items
            .iter()
            .map(|e| e.title.id.clone())
            .collect::<Vec<_>>()
    };

    let a = s.add_to_watchlist(p.id, "w0", 100).await.expect("add");
    assert!(a.created);
    assert_eq!(a.added_at, 100);
    // Adding again keeps the first time (and place).
    let again = s.add_to_watchlist(p.id, "w0", 200).await.expect("add");
    assert!(!again.created, "{b:?}");
    assert_eq!(again.added_at, 100, "{b:?}");
    // Three adds in the same second: newest first still, in add order.
    for id in ["w1", "w2", "w3"] {
        assert!(
            s.add_to_watchlist(p.id, id, 300)
                .await
                .expect("add")
                .created
        );
    }
    let page = s.watchlist(p.id, 0, 10).await.expect("list");
    assert_eq!(page.total, 4);
    assert_eq!(ids(&page), ["w3", "w2", "w1", "w0"], "{b:?}");
    assert_eq!(page.items[0].title, titled("w3"), "the full title");
    assert_eq!(page.items[3].added_at, 100);
    let window = s.watchlist(p.id, 1, 2).await.expect("list");
    assert_eq!(
        (window.total, ids(&window)),
        (4, vec!["w2".into(), "w1".into()])
    );

    // Unknown title; another profile's list is its own.
    assert!(matches!(
        s.add_to_watchlist(p.id, "nope", 1).await,
        Err(StoreError::NotFound("title"))
    ));
    assert_eq!(s.watchlist(other.id, 0, 10).await.expect("list").total, 0);
    assert!(!s.remove_from_watchlist(other.id, "w0").await.expect("rm"));

    // Remove: once.
    assert!(s.remove_from_watchlist(p.id, "w1").await.expect("rm"));
    assert!(!s.remove_from_watchlist(p.id, "w1").await.expect("rm"));
    // A removed title added again is the newest.
    assert!(
        s.add_to_watchlist(p.id, "w1", 400)
            .await
            .expect("add")
            .created
    );
    assert_eq!(
        ids(&s.watchlist(p.id, 0, 10).await.expect("list")),
        ["w1", "w3", "w2", "w0"]
    );

    // A deleted title leaves every list; a deleted profile takes its entries with it.
    assert!(
        s.add_to_watchlist(other.id, "w2", 500)
            .await
            .expect("add")
            .created
    );
    assert!(s.delete_title("w2").await.expect("delete"));
    assert_eq!(
        ids(&s.watchlist(p.id, 0, 10).await.expect("list")),
        ["w1", "w3", "w0"]
    );
    assert_eq!(s.watchlist(other.id, 0, 10).await.expect("list").total, 0);
    let rows = |sql: &str| raw_sql(&db, sql, sql);
    assert_eq!(rows("SELECT COUNT(*) FROM watchlist"), "3");
    let del = format!("DELETE FROM profiles WHERE id = {}", p.id);
    rows(&del);
    assert_eq!(rows("SELECT COUNT(*) FROM watchlist"), "0", "{b:?}");
    assert_eq!(s.watchlist(p.id, 0, 10).await.expect("list").total, 0);
}

/// `{method} /profiles/{profile}/watchlist[/{title}]` with `token`.
async fn wl(
    s: &TestServer,
    method: Method,
    profile: &str,
    title: Option<&str>,
    token: Option<&str>,
) -> Resp {
    let path = match title {
        Some(t) => format!("/profiles/{profile}/watchlist/{t}"),
        None => format!("/profiles/{profile}/watchlist"),
    };
    s.call(method, &path, token, &[], None).await
}

fn item_ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["title_id"].as_str().unwrap_or("").to_string())
        .collect()
}

async fn add_list_page_remove(b: Backend) {
    let s = TestServer::start(b).await;
    for i in 0..7 {
        s.create_title(title_json(
            &format!("w{i}"),
            &format!("Title {i}"),
            "G",
            &[360],
        ))
        .await;
    }
    let (_, pid, tok) = s.user("list@example.com").await;
    let pid = pid.to_string();
    let tok = Some(tok.as_str());

    let now = s.state.now();
    let first = wl(&s, Method::PUT, &pid, Some("w0"), tok).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert_eq!(first.body["title_id"], "w0");
    assert_eq!(first.body["title"]["name"], "Title 0");
    assert_eq!(first.body["title"]["maturity"], "KIDS");
    assert!(
        first.body["title"].get("origin_path").is_none(),
        "catalog view"
    );
    let added_at = first.body["added_at"].as_i64().expect("added_at");
    assert!((now..now + 5).contains(&added_at), "{added_at} vs {now}");
    // Idempotent: 200, the first time kept.
    s.state.clock().advance(60);
    let again = wl(&s, Method::PUT, &pid, Some("w0"), tok).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["added_at"], added_at);
    for i in 1..7 {
        let r = wl(&s, Method::PUT, &pid, Some(&format!("w{i}")), tok).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    // Re-adding an old entry does not move it.
    assert_eq!(
        wl(&s, Method::PUT, &pid, Some("w0"), tok).await.status,
        StatusCode::OK
    );

    // Pages of 3: newest first, no duplicates, no gaps, the total on each page.
    let mut seen = Vec::new();
    for page in 1..=4 {
        let r = s
            .get(
                &format!("/profiles/{pid}/watchlist?per_page=3&page={page}"),
                tok,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["total"], 7);
        assert_eq!(r.body["page"], page);
        assert_eq!(r.body["per_page"], 3);
        let ids = item_ids(&r.body);
        assert_eq!(ids.len(), [3, 3, 1, 0][page - 1], "page {page}");
        seen.extend(ids);
    }
    assert_eq!(seen, ["w6", "w5", "w4", "w3", "w2", "w1", "w0"]);
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len());
    let all = wl(&s, Method::GET, &pid, None, tok).await;
    assert_eq!(all.body["per_page"], 20, "the catalog's default");
    assert_eq!(all.body["items"][6]["added_at"], added_at);
    assert_eq!(
        all.body["items"][0]["title"]["renditions"][0]["height"],
        360
    );

    // Remove: 204, then 404; unknown and malformed titles are 404 too.
    let rm = wl(&s, Method::DELETE, &pid, Some("w3"), tok).await;
    assert_eq!(rm.status, StatusCode::NO_CONTENT, "{}", rm.text);
    assert!(rm.text.is_empty());
    wl(&s, Method::DELETE, &pid, Some("w3"), tok)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    wl(&s, Method::DELETE, &pid, Some("a.b"), tok)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    wl(&s, Method::PUT, &pid, Some("missing"), tok)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    let after = wl(&s, Method::GET, &pid, None, tok).await;
    assert_eq!(after.body["total"], 6);
    assert!(!item_ids(&after.body).contains(&"w3".to_string()));

    // A title deleted from the catalog leaves the list.
    assert_eq!(
        s.admin(Method::DELETE, "/admin/titles/w6", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let after = wl(&s, Method::GET, &pid, None, tok).await;
    assert_eq!(after.body["total"], 5);
    assert_eq!(item_ids(&after.body)[0], "w5");

    // Paging errors are the catalog's.
    let bad = s
        .get(&format!("/profiles/{pid}/watchlist?per_page=101"), tok)
        .await;
    bad.assert_error(StatusCode::BAD_REQUEST, "invalid");
    assert!(bad.body["fields"]["per_page"].is_string(), "{}", bad.text);
}

async fn ownership_and_maturity(b: Backend) {
    let s = TestServer::start(b).await;
    s.create_title(title_json("fam", "Family", "PG", &[360]))
        .await;
    s.create_title(title_json("gritty", "Gritty", "R", &[360]))
        .await;
    let (_, adult, tok) = s.user("owner@example.com").await;
    let adult = adult.to_string();
    let kids = s
        .call(
            Method::POST,
            "/profiles",
            Some(&tok),
            &[],
            Some(serde_json::json!({ "display_name": "Kids", "maturity": "KIDS" })),
        )
        .await;
    assert_eq!(kids.status, StatusCode::CREATED, "{}", kids.text);
    let kids = kids.body["id"].as_i64().expect("id").to_string();
    let tok = Some(tok.as_str());

    // Maturity: a KIDS profile cannot save an R title (as playback refuses it).
    wl(&s, Method::PUT, &kids, Some("gritty"), tok)
        .await
        .assert_error(StatusCode::FORBIDDEN, "maturity");
    assert_eq!(
        wl(&s, Method::PUT, &kids, Some("fam"), tok).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        wl(&s, Method::PUT, &adult, Some("gritty"), tok)
            .await
            .status,
        StatusCode::CREATED
    );
    // Lists are per profile.
    assert_eq!(
        item_ids(&wl(&s, Method::GET, &kids, None, tok).await.body),
        ["fam"]
    );
    assert_eq!(
        item_ids(&wl(&s, Method::GET, &adult, None, tok).await.body),
        ["gritty"]
    );

    // Another account's profile gets the refusal X-Profile-Id gets: 404 profile_not_found,
    // for every method, and changes nothing.
    let (_, _, stranger) = s.user("stranger@example.com").await;
    let stranger = Some(stranger.as_str());
    for (m, title) in [
        (Method::GET, None),
        (Method::PUT, Some("fam")),
        (Method::DELETE, Some("gritty")),
    ] {
        wl(&s, m.clone(), &adult, title, stranger)
            .await
            .assert_error(StatusCode::NOT_FOUND, "profile_not_found");
        wl(&s, m.clone(), "999999", title, tok)
            .await
            .assert_error(StatusCode::NOT_FOUND, "profile_not_found");
        wl(&s, m.clone(), "abc", title, tok)
            .await
            .assert_error(StatusCode::NOT_FOUND, "profile_not_found");
        wl(&s, m, &adult, title, None)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    // The same refusal progress's profile selection gives.
    s.call(
        Method::GET,
        "/continue-watching",
        stranger,
        &[("X-Profile-Id", &adult)],
        None,
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "profile_not_found");
    assert_eq!(
        item_ids(&wl(&s, Method::GET, &adult, None, tok).await.body),
        ["gritty"]
    );
}

/// Parallel adds of one title: one is the add (201), the others find it listed (200) with the
/// same time; parallel adds of different titles all land, each once.
async fn parallel_adds(b: Backend) {
    let s = TestServer::start(b).await;
    for i in 0..8 {
        s.create_title(title_json(&format!("p{i}"), "Parallel", "G", &[360]))
            .await;
    }
    let (_, pid, tok) = s.user("parallel@example.com").await;
    // Each PUT on its own task, all started before any is awaited.
    let put = |title: String| {
        let rb = s
            .client
            .put(s.url(&format!("/profiles/{pid}/watchlist/{title}")))
            .bearer_auth(&tok);
        tokio::spawn(async move { Resp::from(rb.send().await.expect("send")).await })
    };
    let join = |tasks: Vec<tokio::task::JoinHandle<Resp>>| async move {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("join"));
        }
        out
    };
    let same = join((0..8).map(|_| put("p0".into())).collect()).await;
    let created = same
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{b:?}: {same:?}");
    assert!(same
        .iter()
        .all(|r| r.status.is_success() && r.body["added_at"] == same[0].body["added_at"]));
    let others = join((1..8).map(|i| put(format!("p{i}"))).collect()).await;
    assert!(others.iter().all(|r| r.status == StatusCode::CREATED));
    let all = s
        .get(
            &format!("/profiles/{pid}/watchlist?per_page=100"),
            Some(&tok),
        )
        .await;
    assert_eq!(all.body["total"], 8, "{}", all.text);
    let ids: BTreeSet<String> = item_ids(&all.body).into_iter().collect();
    assert_eq!(ids.len(), 8);
    assert_eq!(item_ids(&all.body).last().map(String::as_str), Some("p0"));
}

on_both_stores!(
    store_contract,
    add_list_page_remove,
    ownership_and_maturity,
    parallel_adds
);
