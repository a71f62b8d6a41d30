//! Origin selection on real sockets: failover without client errors, health, retries on
//! hangs and 5xx, a shield tier that fetches each object once, loops, connection reuse.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::{client, edge::metric_value, Edge, Origin, Route};

/// Every path answers `who` from this origin, uncacheable, so every request reaches an origin.
async fn origin_named(who: &'static str, addr: Option<SocketAddr>) -> Origin {
    let o = match addr {
        Some(a) => Origin::start_on(a).await,
        None => Origin::start().await,
    };
    for i in 0..600 {
        o.route(
            &format!("/live/{i}.ts"),
            Route::ok(who).header("cache-control", "no-store"),
        );
    }
    o.route("/healthz", Route::ok("ok"));
    o
}

fn pool(name: &str, priority: u32, nodes: &[SocketAddr]) -> String {
    let nodes: Vec<String> = nodes
        .iter()
        .map(|a| format!("{{ addr = \"{a}\" }}"))
        .collect();
    format!(
        "[[origins]]\nname = \"{name}\"\npriority = {priority}\nnodes = [{}]\nconnect_timeout = \"500ms\"\nread_timeout = \"1s\"\n\
         health = {{ path = \"/healthz\", interval = \"200ms\", timeout = \"300ms\", healthy_threshold = 1, unhealthy_threshold = 1 }}\n\
         passive = {{ max_failures = 2, ejection = \"2s\" }}\n",
        nodes.join(", ")
    )
}

async fn body(edge: &Edge, path: &str) -> Result<(u16, String), String> {
    let r = client()
        .get(edge.url(path))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    Ok((status, r.text().await.map_err(|e| e.to_string())?))
}

#[tokio::test]
async fn failover_across_nodes_and_pools_without_client_errors() {
    let a1 = origin_named("a1", None).await;
    let a2 = origin_named("a2", None).await;
    let b1 = origin_named("b1", None).await;
    let a1_addr = a1.addr;
    let cfg = format!(
        "{}{}",
        pool("cdn-a", 0, &[a1.addr, a2.addr]),
        pool("cdn-b", 1, &[b1.addr])
    );
    let edge = Edge::start_with_config(&cfg, "").await;
    let mut a1 = Some(a1);
    let mut a2 = Some(a2);
    let mut errors = Vec::new();
    let mut served = std::collections::BTreeMap::<String, usize>::new();
    let mut slowest_after_down = Duration::ZERO;
    for i in 0..600 {
        if i == 150 {
            a1.take(); // one node of the primary CDN dies
        }
        if i == 300 {
            a2.take(); // the whole primary CDN is down
        }
        let t0 = Instant::now();
        match body(&edge, &format!("/live/{i}.ts")).await {
            Ok((200, who)) => *served.entry(who).or_default() += 1,
            other => errors.push((i, other)),
        }
        if (340..450).contains(&i) {
            slowest_after_down = slowest_after_down.max(t0.elapsed());
        }
        if i == 450 {
            // The primary comes back: health checks move traffic back to it.
            a1 = Some(origin_named("a1-again", Some(a1_addr)).await);
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
    }
    assert!(errors.is_empty(), "client errors: {errors:?}");
    assert!(
        served.get("a2").copied().unwrap_or(0) > 0 && served.get("b1").copied().unwrap_or(0) >= 100,
        "{served:?}"
    );
    assert!(
        slowest_after_down < Duration::from_millis(300),
        "once health knows the primary is down, no request waits for it: {slowest_after_down:?}"
    );
    let back = served.get("a1-again").copied().unwrap_or(0);
    assert!(
        back >= 140,
        "traffic moved back to the recovered primary: {served:?}"
    );
    assert!(a1.is_some());
    let text = edge.metrics().await;
    assert_eq!(
        metric_value(
            &text,
            &format!(r#"edge_upstream_healthy{{pool="cdn-a",node="{a1_addr}"}}"#)
        ),
        1.0
    );
    let origins = client()
        .get(edge.admin_url("/admin/origins"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        origins.contains("\"cdn-b\"") && origins.contains("\"usable\""),
        "{origins}"
    );
}

#[tokio::test]
async fn a_hanging_node_is_retried_elsewhere_and_ejected() {
    let hang = Origin::start().await;
    let good = origin_named("good", None).await;
    for i in 0..600 {
        hang.route(
            &format!("/live/{i}.ts"),
            Route::ok("late").delay(Duration::from_secs(10)),
        );
    }
    hang.route("/healthz", Route::ok("ok"));
    // A long ejection, so the test's own duration (slow under load) cannot outlast it.
    let cfg =
        pool("p", 0, &[hang.addr, good.addr]).replace("ejection = \"2s\"", "ejection = \"60s\"");
    let edge = Edge::start_with_config(&cfg, "").await;
    let mut slow = 0;
    for i in 0..40 {
        let t0 = Instant::now();
        let (status, who) = body(&edge, &format!("/live/{i}.ts")).await.unwrap();
        assert_eq!((status, who.as_str()), (200, "good"), "request {i}");
        // A wait for the hanging node is a whole read timeout (1 s).
        if t0.elapsed() >= Duration::from_millis(950) {
            slow += 1;
        }
    }
    // Each object hashes to one node; those on the hanging node wait one read timeout until
    // two failures eject it, then none wait.
    assert!(slow <= 2, "{slow} requests waited for the hanging node");
}

#[tokio::test]
async fn a_5xx_node_is_retried_on_another_node() {
    let bad = Origin::start().await;
    let good = origin_named("good", None).await;
    for i in 0..600 {
        bad.route(&format!("/live/{i}.ts"), Route::ok("oops").status(503));
    }
    bad.route("/healthz", Route::ok("ok"));
    let cfg =
        pool("p", 0, &[bad.addr, good.addr]).replace("ejection = \"2s\"", "ejection = \"60s\"");
    let edge = Edge::start_with_config(&cfg, "").await;
    for i in 0..30 {
        assert_eq!(
            body(&edge, &format!("/live/{i}.ts")).await.unwrap(),
            (200, "good".to_string()),
            "request {i}"
        );
    }
    let content: Vec<_> = bad
        .requests()
        .into_iter()
        .filter(|r| r.target.starts_with("/live/"))
        .map(|r| r.target)
        .collect();
    // Each 5xx is counted once, as its status (not again as an error when it is retried).
    let text = edge.metrics().await;
    let as_503 = metric_value(
        &text,
        &format!(
            r#"edge_upstream_requests_total{{pool="p",node="{}",status="503"}}"#,
            bad.addr
        ),
    );
    let as_error = metric_value(
        &text,
        &format!(
            r#"edge_upstream_requests_total{{pool="p",node="{}",status="error"}}"#,
            bad.addr
        ),
    );
    assert_eq!((as_503, as_error), (content.len() as f64, 0.0));
    assert!(
        content.len() <= 3,
        "the 5xx node is ejected after its failures: {content:?}"
    );
}

#[tokio::test]
async fn a_shield_tier_fetches_each_object_from_the_origin_once() {
    let origin = Origin::start().await;
    for i in 0..20 {
        origin.route(
            &format!("/v/s/{i}.ts"),
            Route::ok(format!("object {i}")).delay(Duration::from_millis(50)),
        );
    }
    let shield_pool =
        |o: SocketAddr| format!("[[origins]]\nname = \"origin\"\nnodes = [{{ addr = \"{o}\" }}]\n");
    let mut shields = Vec::new();
    for _ in 0..2 {
        shields
            .push(Edge::start_with_config(&shield_pool(origin.addr), "role = \"shield\"\n").await);
    }
    let shield_nodes: Vec<String> = shields
        .iter()
        .map(|s| format!("{{ addr = \"{}\" }}", s.http))
        .collect();
    // Generous timeouts and no load bound: on a machine loaded far beyond its cores a 2 s
    // connect could fail over to the other shield, and with all 20 requests of an edge in
    // flight at once the bounded-load rule (1.25x the mean) sends a hash's overflow to the
    // other shield, which fetches the object again. Right behaviour both, but not what this
    // test is about (src/origin/ring.rs tests the bounded loads).
    let edge_pool = format!(
        "[[origins]]\nname = \"shields\"\nnodes = [{}]\nconnect_timeout = \"10s\"\nread_timeout = \"30s\"\nload_factor = 100.0\n",
        shield_nodes.join(", ")
    );
    let mut edges = Vec::new();
    for _ in 0..3 {
        edges.push(Edge::start_with_config(&edge_pool, "").await);
    }
    // Players reach every edge under one CDN host name (DNS picks the POP).
    let mut tasks = Vec::new();
    for e in &edges {
        for i in 0..20 {
            let url = e.url(&format!("/v/s/{i}.ts"));
            tasks.push(tokio::spawn(async move {
                client()
                    .get(url)
                    .header("host", "cdn.test")
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            }));
        }
    }
    for (n, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap(), format!("object {}", n % 20));
    }
    for i in 0..20 {
        assert_eq!(
            origin.hits(&format!("/v/s/{i}.ts")),
            1,
            "object {i} reached the origin once"
        );
    }
    // Each object lives on one shield only: the two shields split the 20 objects.
    let mut per_shield = Vec::new();
    for s in &shields {
        let text = s.metrics().await;
        per_shield.push(metric_value(
            &text,
            r#"edge_requests_total{kind="content",status="200",cache="MISS"}"#,
        ));
    }
    assert_eq!(per_shield.iter().sum::<f64>(), 20.0, "{per_shield:?}");
    assert!(
        per_shield.iter().all(|&n| n > 0.0),
        "both shields take a share: {per_shield:?}"
    );
}

#[tokio::test]
async fn a_request_that_already_passed_this_node_is_a_loop() {
    let origin = Origin::start().await;
    let edge = Edge::start_with_config(
        &format!(
            "[[origins]]\nname = \"o\"\nnodes = [{{ addr = \"{}\" }}]\n",
            origin.addr
        ),
        "name = \"edge-loop-test\"\n",
    )
    .await;
    let r = client()
        .get(edge.url("/v/x.ts"))
        .header("via", "1.1 other, 1.1 edge-loop-test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 508);
    assert_eq!(r.headers()["x-edge-reason"], "loop_detected");
    assert_eq!(origin.total_hits(), 0);
    // Pointing an edge at itself is caught on the first hop.
    let port = crate::support::free_port();
    let selfish = Edge::start_with_config(
        &format!("[[origins]]\nname = \"self\"\nnodes = [{{ addr = \"127.0.0.1:{port}\" }}]\n"),
        &format!("name = \"edge-self\"\nhttp = \"127.0.0.1:{port}\"\n"),
    )
    .await;
    let r = client().get(selfish.url("/v/x.ts")).send().await.unwrap();
    assert_eq!(r.status(), 508);
}

#[tokio::test]
async fn upstream_connections_are_reused() {
    let origin = origin_named("o", None).await;
    let edge = Edge::start(origin.addr, "").await;
    for i in 0..100 {
        assert_eq!(body(&edge, &format!("/live/{i}.ts")).await.unwrap().0, 200);
    }
    assert_eq!(origin.total_hits(), 100);
    assert!(
        origin.connections() <= 4,
        "100 requests over {} connections",
        origin.connections()
    );
}
