//! The admin listener: health, readiness and metrics.

use crate::support::{client, edge::metric_value, Edge, Origin, Route};

#[tokio::test]
async fn admin_endpoints() {
    let origin = Origin::start().await;
    origin.route("/v/m.ts", Route::ok(vec![1u8; 4096]));
    let edge = Edge::start(origin.addr, "").await;
    let c = client();
    let r = c.get(edge.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, "ok\n".to_string())
    );
    let r = c.get(edge.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, "ready\n".to_string())
    );
    assert_eq!(
        c.get(edge.admin_url("/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.post(edge.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );

    for _ in 0..3 {
        c.get(edge.url("/v/m.ts"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
    // Counted when each request's logging runs, a moment after its answer.
    edge.await_metric(
        r#"edge_request_duration_seconds_count{kind="content",cache="MISS"}"#,
        1.0,
    )
    .await;
    edge.await_metric(
        r#"edge_request_duration_seconds_count{kind="content",cache="HIT"}"#,
        2.0,
    )
    .await;
    let text = edge.metrics().await;
    assert_eq!(
        metric_value(
            &text,
            r#"edge_requests_total{kind="content",status="200",cache="MISS"}"#
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &text,
            r#"edge_requests_total{kind="content",status="200",cache="HIT"}"#
        ),
        2.0
    );
    assert_eq!(
        metric_value(&text, r#"edge_response_bytes_total{cache="HIT"}"#),
        8192.0
    );
    assert_eq!(
        metric_value(
            &text,
            r#"edge_request_duration_seconds_count{kind="content",cache="HIT"}"#
        ),
        2.0
    );
    let mem = metric_value(&text, r#"edge_cache_bytes{tier="memory"}"#);
    assert!(mem >= 4096.0, "memory tier holds the object: {mem}");
    assert!(metric_value(&text, "edge_cache_admitted_bytes_total") >= 4096.0);
    assert_eq!(
        metric_value(&text, r#"edge_cache_objects{tier="memory"}"#),
        1.0
    );
    assert_eq!(
        metric_value(&text, r#"edge_cache_lookups_total{result="memory"}"#),
        2.0
    );
    assert_eq!(
        metric_value(&text, r#"edge_cache_lookups_total{result="miss"}"#),
        1.0
    );
    assert!(
        text.contains("foyer_"),
        "foyer's metrics share the registry"
    );
}
