//! The cache key's query policy (`[[cache.keys]]`) and CMCD (CTA-5004): player analytics in
//! the query never split the cache, parameter order does not either, and the origin gets
//! CMCD only when `[cache] forward_cmcd = true`.

use std::process::Command;

use crate::support::raw::Conn;
use crate::support::{Edge, Origin, Route};

async fn ask(edge: &Edge, target: &str, extra: &str) -> String {
    let admitted = edge.metric("edge_cache_admitted_bytes_total").await;
    let mut c = Conn::open(edge.http).await;
    c.send(format!("GET {target} HTTP/1.1\r\nHost: edge.test\r\n{extra}\r\n").as_bytes())
        .await;
    let r = c.response(false).await;
    assert_eq!(r.status, 200, "{target}");
    let label = r.header("x-cache").unwrap_or("").to_string();
    if label == "MISS" {
        edge.await_admitted(admitted).await;
    }
    label
}

async fn origin_with(paths: &[&str]) -> Origin {
    let origin = Origin::start().await;
    for p in paths {
        origin.route(
            p,
            Route::ok(format!("object {p}")).header("cache-control", "max-age=60"),
        );
    }
    origin
}

#[tokio::test]
async fn cmcd_never_splits_the_cache_and_is_not_forwarded_by_default() {
    let origin = origin_with(&["/v/seg.ts"]).await;
    let edge = Edge::start(origin.addr, "").await;
    let cmcd = [
        "bl%3D2000%2Cbr%3D800%2Cot%3Dv",
        "bl%3D4000%2Cbr%3D800%2Cot%3Dv%2Cmtp%3D25400",
        "bl%3D100%2Cbs",
    ];
    let mut labels = Vec::new();
    for (i, c) in cmcd.iter().enumerate() {
        labels.push(
            ask(
                &edge,
                &format!("/v/seg.ts?CMCD={c}"),
                &format!("CMCD-Request: bl={i}00\r\nCMCD-Session: sid=\"x\"\r\n"),
            )
            .await,
        );
    }
    assert_eq!(labels, ["MISS", "HIT", "HIT"]);
    assert_eq!(origin.hits("/v/seg.ts"), 1);
    assert_eq!(
        edge.metric("edge_front_hits_total").await,
        2.0,
        "the hits come from the front"
    );
    let seen = &origin.requests()[0];
    assert_eq!(seen.target, "/v/seg.ts", "CMCD stays at the edge");
    assert_eq!(seen.header("cmcd-request"), None);
    assert_eq!(seen.header("cmcd-session"), None);
    // Other parameters still count, in any order.
    assert_eq!(ask(&edge, "/v/seg.ts?b=2&a=1&CMCD=x", "").await, "MISS");
    assert_eq!(ask(&edge, "/v/seg.ts?a=1&b=2", "").await, "HIT");
    assert_eq!(
        origin.requests()[1].target,
        "/v/seg.ts?b=2&a=1",
        "the origin gets the query as sent, less CMCD"
    );
}

#[tokio::test]
async fn cmcd_can_be_forwarded() {
    let origin = origin_with(&["/v/seg.ts"]).await;
    let edge = Edge::start_with_config_cache(
        &format!(
            "[[origins]]\nname = \"o\"\nnodes = [{{ addr = \"{}\" }}]\n",
            origin.addr
        ),
        "forward_cmcd = true",
    )
    .await;
    assert_eq!(
        ask(&edge, "/v/seg.ts?CMCD=bl%3D1", "CMCD-Request: bl=1\r\n").await,
        "MISS"
    );
    assert_eq!(ask(&edge, "/v/seg.ts?CMCD=bl%3D2", "").await, "HIT");
    let seen = &origin.requests()[0];
    assert_eq!(seen.target, "/v/seg.ts?CMCD=bl%3D1");
    assert_eq!(seen.header("cmcd-request"), Some("bl=1"));
}

#[tokio::test]
async fn per_prefix_query_policies() {
    let origin = origin_with(&["/live/a.ts", "/vod/a.ts", "/ads/a.ts", "/all/a.ts"]).await;
    let keys = "[[cache.keys]]\nprefix = \"/live/\"\nquery = \"none\"\n\
                [[cache.keys]]\nprefix = \"/vod/\"\nallow = [\"v\"]\n\
                [[cache.keys]]\nprefix = \"/ads/\"\ndeny = [\"utm_source\", \"session\"]\n";
    let edge = Edge::start_with_config_cache(
        &format!(
            "[[origins]]\nname = \"o\"\nnodes = [{{ addr = \"{}\" }}]\n",
            origin.addr
        ),
        keys,
    )
    .await;
    let cases = [
        ("/live/a.ts?x=1", "MISS"),
        ("/live/a.ts?x=2", "HIT"),
        ("/live/a.ts", "HIT"),
        ("/vod/a.ts?v=1&x=1", "MISS"),
        ("/vod/a.ts?x=2&v=1", "HIT"),
        ("/vod/a.ts?v=2", "MISS"),
        ("/ads/a.ts?id=7&utm_source=a&session=1", "MISS"),
        ("/ads/a.ts?session=2&id=7", "HIT"),
        ("/ads/a.ts?id=8", "MISS"),
        ("/all/a.ts?x=1", "MISS"),
        ("/all/a.ts?x=2", "MISS"),
    ];
    for (target, want) in cases {
        assert_eq!(ask(&edge, target, "").await, want, "{target}");
    }
    assert_eq!(origin.hits("/live/a.ts"), 1);
    assert_eq!(origin.hits("/vod/a.ts"), 2);
    assert_eq!(origin.hits("/ads/a.ts"), 2);
    assert_eq!(origin.hits("/all/a.ts"), 2);
}

#[test]
fn a_bad_key_rule_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    for (rule, expected) in [
        (
            "prefix = \"/v/\"\nquery = \"some\"",
            "cache.keys[0].query: \"some\": expected \"all\" or \"none\"",
        ),
        (
            "prefix = \"/v/\"\nquery = \"none\"\nallow = [\"a\"]",
            "cache.keys[0]: set exactly one of query, allow or deny",
        ),
        (
            "prefix = \"v/\"\nquery = \"none\"",
            "cache.keys[0].prefix: \"v/\" must start with '/'",
        ),
    ] {
        let path = dir.path().join("edge.toml");
        std::fs::write(&path, format!("[[origins]]\nname = \"o\"\nnodes = [{{ addr = \"127.0.0.1:9\" }}]\n[[cache.keys]]\n{rule}\n")).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_edge"))
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{rule}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{rule}: {err}");
    }
}
