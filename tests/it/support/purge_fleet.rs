//! Edges that fan purges out through a shared PostgreSQL database (`[purge] fleet`,
//! src/fleet/): the config lines that join one, and the waits and purges a fleet test needs.
//!
//! An edge joins with `Edge::start(origin, &purge_fleet::join(&url))` (the lines are a
//! `[purge]` section: append them to `extra`). Every edge of a fleet must be asked with the
//! same `Host` ([`HOST`]): a purge names a host, and each test edge listens on its own port.

use std::time::{Duration, Instant};

use super::{client, Edge};

/// The `Host` every request of a fleet test carries.
pub const HOST: &str = "cdn.example";

/// `[purge]` lines joining the fleet of `url` (PURGE allowed from loopback, as by default).
pub fn join(url: &str) -> String {
    format!("[purge]\nfleet = \"{url}\"\nfleet_poll = \"1s\"\n")
}

/// GET `path` from `edge` as [`HOST`]: status and `x-cache`.
pub async fn get(edge: &Edge, path: &str) -> (u16, String) {
    let r = client()
        .get(edge.url(path))
        .header("host", HOST)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let x = r
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    r.bytes().await.unwrap();
    (status, x)
}

/// `POST /admin/purge` with `body` on `edge`: status and JSON answer.
pub async fn admin_purge(edge: &Edge, body: &str) -> (u16, serde_json::Value) {
    let r = client()
        .post(edge.admin_url("/admin/purge"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// The `PURGE` method for `path` on `edge`'s player listener as [`HOST`]: status and body.
pub async fn purge_method(edge: &Edge, path: &str, soft: bool) -> (u16, String) {
    let mut req = client()
        .request(
            reqwest::Method::from_bytes(b"PURGE").unwrap(),
            edge.url(path),
        )
        .header("host", HOST);
    if soft {
        req = req.header("soft-purge", "1");
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Wait until `edge` has applied `n` bans of other edges (at most `limit`); returns how long
/// it took.
pub async fn await_applied(edge: &Edge, n: f64, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let have = edge.metric("edge_fleet_bans_applied_total").await;
        if have >= n {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{have} fleet bans applied, not {n}, within {limit:?}:\n{}",
            edge.log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The `q` quantile of a Prometheus histogram in `metrics` text: the upper bound of the first
/// bucket holding it (`f64::INFINITY` past the last).
pub fn quantile(metrics: &str, name: &str, q: f64) -> f64 {
    let buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&format!("{name}_bucket{{le=\""))?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |b| b.1);
    buckets
        .iter()
        .find(|(_, c)| *c >= q * total)
        .map_or(f64::INFINITY, |b| b.0)
}
