//! `edge purge`: the command line against a running edge's admin API.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::support::{client, free_port, Edge, Origin, Route};

fn edge_purge(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edge"))
        .arg("purge")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn x_cache(edge: &Edge, path: &str) -> String {
    let r = client().get(edge.url(path)).send().await.unwrap();
    let x = r.headers()["x-cache"].to_str().unwrap().to_string();
    r.bytes().await.unwrap();
    x
}

#[tokio::test]
async fn purges_urls_and_prints_one_line_each() {
    let origin = Origin::start().await;
    let paths = ["/v/a.ts", "/v/b.ts", "/v/c.ts", "/v/d.ts"];
    for p in paths {
        origin.route(p, Route::ok(format!("body of {p}")));
    }
    let edge = Edge::start(origin.addr, "").await;
    for p in paths {
        assert_eq!(x_cache(&edge, p).await, "MISS");
    }
    let url = |p: &str| format!("http://{}{p}", edge.http);
    let (a, b, c) = (url("/v/a.ts"), url("/v/b.ts"), url("/v/c.ts"));
    let admin = edge.admin.to_string();
    let out = edge_purge(&["--admin", &admin, &a, "-", &b], Some(&format!("{c}\n\n")));
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout),
        format!("purged {a}\npurged {c}\npurged {b}\n"),
        "one line per URL, in order"
    );
    for (p, want) in [
        ("/v/a.ts", "MISS"),
        ("/v/b.ts", "MISS"),
        ("/v/c.ts", "MISS"),
        ("/v/d.ts", "HIT"),
    ] {
        assert_eq!(x_cache(&edge, p).await, want, "{p}");
    }
    assert_eq!(origin.hits("/v/a.ts"), 2);
    assert_eq!(edge.metric("edge_cache_purges_total").await, 3.0);

    // The admin address from the config file.
    let cfg = edge.config_path.display().to_string();
    let out = edge_purge(&["-c", &cfg, &url("/v/d.ts")], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(x_cache(&edge, "/v/d.ts").await, "MISS");
}

#[tokio::test]
async fn prefix_and_soft_purges() {
    let origin = Origin::start().await;
    for p in ["/v/t/a.ts", "/v/t/b.ts", "/v/u/a.ts"] {
        origin.route(p, Route::ok(format!("body of {p}")).etag("\"e1\""));
    }
    let edge = Edge::start(origin.addr, "").await;
    for p in ["/v/t/a.ts", "/v/t/b.ts", "/v/u/a.ts"] {
        assert_eq!(x_cache(&edge, p).await, "MISS");
    }
    let admin = edge.admin.to_string();
    let prefix = format!("http://{}/v/t/", edge.http);
    let out = edge_purge(&["--admin", &admin, "--prefix", "--soft", &prefix], None);
    assert_eq!(
        text(&out.stdout),
        format!("purged {prefix}\n"),
        "{}",
        text(&out.stderr)
    );
    let x = x_cache(&edge, "/v/t/b.ts").await;
    assert!(
        x == "REVALIDATED" || x == "STALE",
        "soft: revalidated, not refetched: {x}"
    );
    assert_eq!(
        origin.requests().last().unwrap().header("if-none-match"),
        Some("\"e1\"")
    );
    assert_eq!(x_cache(&edge, "/v/u/a.ts").await, "HIT");
    // A bare path prefix is for every host.
    let out = edge_purge(&["--admin", &admin, "--prefix", "/v/u/"], None);
    assert!(out.status.success());
    assert_eq!(x_cache(&edge, "/v/u/a.ts").await, "MISS");
    let list: serde_json::Value = client()
        .get(edge.admin_url("/admin/bans"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["bans"][0]["host"], serde_json::Value::Null);
    assert_eq!(
        list["bans"][1]["host"].as_str(),
        Some(edge.http.to_string().as_str())
    );
    assert_eq!(list["bans"][1]["soft"], true);
}

#[tokio::test]
async fn refusals_and_an_unreachable_admin_exit_non_zero() {
    let origin = Origin::start().await;
    let edge = Edge::start(origin.addr, "").await;
    let admin = edge.admin.to_string();
    let good = format!("http://{}/v/a.ts", edge.http);
    let out = edge_purge(&["--admin", &admin, "/relative", &good], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        format!("refused /relative: HTTP 400: url \"/relative\" must be absolute (http://host/path)\npurged {good}\n")
    );

    let nobody = format!("127.0.0.1:{}", free_port());
    let out = edge_purge(&["--admin", &nobody, &good], None);
    assert_eq!(out.status.code(), Some(69));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "edge purge: cannot reach the admin listener at {nobody}: "
        )),
        "{err}"
    );
    assert_eq!(text(&out.stdout), "");

    let out = edge_purge(&["--admin", "not an address", &good], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is not a host:port address"),
        "{}",
        text(&out.stderr)
    );
}
