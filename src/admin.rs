//! The admin listener (default `127.0.0.1:9090`). Every endpoint, in one `match`:
//!
//! | method | path       | answer                                                   |
//! |--------|------------|----------------------------------------------------------|
//! | GET    | `/healthz` | 200 `ok` while the process runs                          |
//! | GET    | `/readyz`  | 503 `starting`, then 200 `ready` once the player listener accepts connections, then 503 `draining` after SIGTERM/SIGQUIT or `POST /admin/drain` |
//! | GET    | `/metrics` | Prometheus text: edge metrics and foyer's, one registry |
//! | GET    | `/admin/origins` | JSON health summary of every origin pool and node |
//! | POST   | `/admin/purge` | JSON `{"url": ...}` or `{"prefix": ..., "host"?: ...}`, `"soft"?: bool` (see [`crate::cache::purge`]): 200 `{"purged": ban, "fleet": "off" \| "sent", "fleet_id"?}`, or 202 with `"fleet": "unavailable"` when it holds on this edge only ([`crate::fleet`]) |
//! | POST   | `/admin/reload` | re-read `edge.toml` ([`crate::reload`]): 200 `{"applied": [...], "needs_restart": [...]}`, or 400 `{"error": "<file>: <key>: <reason>"}` and the running config stays (409 when running on the built-in config) |
//! | POST   | `/admin/drain` | `/readyz` turns 503 `draining` for good; requests are still served. 200 `{"draining": true}` |
//! | GET    | `/admin/bans` | JSON `{"count", "keep_for_s", "bans": [...]}`: the live bans, newest first, at most `?limit=N` (default 1000, at most 100000) |
//!
//! Anything else is 404; a known path with another method is 405. The listener is meant for
//! loopback or a management network: it has no authentication of its own, and its mutating
//! endpoints (purge, reload, drain) are open to whoever reaches it, as its metrics are.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;

use crate::state::EdgeState;

pub struct AdminApp {
    pub state: &'static EdgeState,
}

fn text(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let len = body.len();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    if let Ok(v) = content_type.parse() {
        h.insert(http::header::CONTENT_TYPE, v);
    }
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    resp
}

impl AdminApp {
    fn refresh_gauges(&self) {
        let s = self.state;
        let m = &s.metrics;
        let objects = s.cache.storage.objects();
        m.cache_bytes
            .with_label_values(&["memory"])
            .set(objects.memory().usage() as i64);
        // foyer keeps entry and block counts in the shared registry: derive the tier gauges.
        let families = m.registry.gather();
        let gauge = |name: &str, label: Option<(&str, &str)>| -> f64 {
            families
                .iter()
                .filter(|f| f.name() == name)
                .flat_map(|f| f.get_metric().iter())
                .filter(|mt| {
                    label.is_none_or(|(k, v)| {
                        mt.get_label()
                            .iter()
                            .any(|l| l.name() == k && l.value() == v)
                    })
                })
                .map(|mt| mt.get_gauge().get_value())
                .sum()
        };
        m.cache_objects
            .with_label_values(&["memory"])
            .set(gauge("foyer_memory_entries", None) as i64);
        let used_blocks: f64 = ["evictable", "writing", "reclaiming"]
            .iter()
            .map(|t| gauge("foyer_storage_block_engine_block", Some(("type", t))))
            .sum();
        let block = gauge("foyer_storage_block_engine_block_size_bytes", None);
        m.cache_bytes
            .with_label_values(&["disk"])
            .set((used_blocks * block) as i64);
        let stats = &s.cache.stats;
        // Counters kept by the storage as atomics, mirrored into Prometheus at scrape time.
        let sync = |counter: &prometheus::IntCounter, value: u64| {
            let have = counter.get();
            if value > have {
                counter.inc_by(value - have);
            }
        };
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        sync(&m.cache_fill_failures, load(&stats.fill_failures));
        sync(&m.cache_read_errors, load(&stats.read_errors));
        sync(&m.cache_bytes_admitted, load(&stats.bytes_admitted));
        sync(&m.cache_purges, load(&stats.purges));
        sync(&m.cache_promoted, load(&stats.promoted));
        sync(&m.cache_fills_over_budget, load(&stats.fills_over_budget));
        m.cache_fill_bytes
            .set(i64::try_from(s.cache.storage.fill_budget().reserved()).unwrap_or(i64::MAX));
        for (result, value) in [
            ("memory", &stats.hits_memory),
            ("disk", &stats.hits_disk),
            ("fill", &stats.hits_fill),
            ("miss", &stats.misses),
        ] {
            sync(&m.cache_lookups.with_label_values(&[result]), load(value));
        }
        let now = crate::origin::health::now_ms();
        for p in &s.live().pools.pools {
            // Exported at 0 for every pool, so `rate()` sees the series before the first retry.
            m.upstream_retries
                .with_label_values(&[&p.cfg.name, "reused_connection"]);
            for (n, h) in p.cfg.nodes.iter().zip(&p.health) {
                let node = n.addr.to_string();
                m.upstream_healthy
                    .with_label_values(&[&p.cfg.name, &node])
                    .set(i64::from(h.usable(now)));
                m.upstream_nodes.export(&p.cfg.name, &node);
            }
        }
        let disk = objects.statistics();
        sync(&m.cache_disk_write_bytes, disk.disk_write_bytes() as u64);
        sync(&m.cache_disk_read_bytes, disk.disk_read_bytes() as u64);
    }
}

/// Largest admin request body read.
const MAX_BODY: usize = 64 * 1024;

fn json(status: StatusCode, value: serde_json::Value) -> Response<Vec<u8>> {
    let mut body = value.to_string().into_bytes();
    body.push(b'\n');
    text(status, "application/json", body)
}

impl AdminApp {
    fn origins(&self) -> serde_json::Value {
        let now = crate::origin::health::now_ms();
        let live = self.state.live_full();
        let pools: Vec<_> = live
            .pools
            .pools
            .iter()
            .map(|p| {
                let nodes: Vec<_> = p
                    .cfg
                    .nodes
                    .iter()
                    .zip(&p.health)
                    .map(|(n, h)| {
                        serde_json::json!({
                            "addr": n.addr.to_string(),
                            "weight": n.weight,
                            "up": h.is_up(),
                            "usable": h.usable(now),
                            "ejected_for_ms": crate::origin::health::remaining(h.ejected_until_ms(), now).as_millis() as u64,
                        })
                    })
                    .collect();
                serde_json::json!({
                    "name": p.cfg.name,
                    "priority": p.cfg.priority,
                    "active_checks": p.cfg.health.as_ref().map(|h| h.path.clone()),
                    "nodes": nodes,
                })
            })
            .collect();
        serde_json::json!({ "role": match live.config.server.role {
            crate::config::Role::Edge => "edge",
            crate::config::Role::Shield => "shield",
        }, "name": live.config.server.name, "pools": pools })
    }

    /// `POST /admin/reload`: the file is read off the async workers (it may name key files
    /// and origin host names to look up).
    async fn reload(&self) -> Response<Vec<u8>> {
        let state = self.state;
        match tokio::task::spawn_blocking(move || crate::reload::reload(state)).await {
            Ok(Ok(outcome)) => json(StatusCode::OK, serde_json::json!(outcome)),
            Ok(Err(e @ crate::reload::ReloadError::NoFile)) => json(
                StatusCode::CONFLICT,
                serde_json::json!({"error": e.to_string()}),
            ),
            Ok(Err(e)) => json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": e.to_string()}),
            ),
            Err(_) => json(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"error": "the reload did not finish"}),
            ),
        }
    }

    /// `POST /admin/drain`: readiness fails from now on, so load balancers move players away
    /// while this node keeps serving whatever still comes.
    fn drain(&self) -> Response<Vec<u8>> {
        self.state.draining.store(true, Ordering::Relaxed);
        tracing::info!("drain asked for on the admin listener: /readyz answers 503 draining");
        json(StatusCode::OK, serde_json::json!({"draining": true}))
    }

    async fn purge(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY {
                        return json(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            serde_json::json!({"error": "body too large"}),
                        );
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(_) => {
                    return json(
                        StatusCode::BAD_REQUEST,
                        serde_json::json!({"error": "unreadable body"}),
                    )
                }
            }
        }
        let purge = match crate::cache::purge::parse(&body) {
            Ok(p) => p,
            Err(e) => return json(StatusCode::BAD_REQUEST, serde_json::json!({"error": e})),
        };
        match self.state.purge(purge).await {
            Ok((ban, sent)) => purged(&ban, &sent),
            Err(e) => {
                tracing::error!(error = %e, "purge could not be recorded");
                json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    serde_json::json!({"error": "purge could not be recorded"}),
                )
            }
        }
    }
}

/// The answer to an applied purge: 200 when this edge is alone or the fleet got it, 202 when
/// it holds here but the fleet database could not be reached ([`crate::fleet`]).
fn purged(ban: &crate::cache::bans::Ban, sent: &crate::fleet::Sent) -> Response<Vec<u8>> {
    use crate::fleet::Sent;
    let mut body = serde_json::json!({"purged": ban, "fleet": sent.label()});
    match sent {
        Sent::Sent(id) => body["fleet_id"] = serde_json::json!(id),
        Sent::Unavailable(_) => {
            body["error"] = serde_json::json!(
                "applied on this edge only: the fleet database is unavailable; purge again to reach the fleet"
            );
        }
        Sent::Off => {}
    }
    let status = match sent {
        Sent::Unavailable(_) => StatusCode::ACCEPTED,
        Sent::Off | Sent::Sent(_) => StatusCode::OK,
    };
    json(status, body)
}

/// `GET /admin/bans`: the live bans, newest first (see [`crate::cache::bans::Bans::list`]).
fn bans(state: &EdgeState, query: Option<&str>) -> Response<Vec<u8>> {
    const DEFAULT: usize = 1000;
    const MAX: usize = 100_000;
    let mut limit = DEFAULT;
    for (k, v) in query
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
    {
        match (k, v.parse::<usize>()) {
            ("limit", Ok(n)) if n <= MAX => limit = n,
            ("limit", _) => {
                return json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"error": format!("limit must be a number from 0 to {MAX}")}),
                )
            }
            _ => {}
        }
    }
    let bans = &state.cache.bans;
    let (count, list) = bans.list(limit);
    json(
        StatusCode::OK,
        serde_json::json!({"count": count, "keep_for_s": bans.keep_for().as_secs(), "bans": list}),
    )
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let method = req.method.clone();
        let path = req.uri.path().to_string();
        let get = method == http::Method::GET || method == http::Method::HEAD;
        match (get, path.as_str()) {
            (true, "/healthz") => text(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
            (true, "/readyz") => {
                let (status, body) = self.state.readiness();
                text(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                    "text/plain",
                    body.as_bytes().to_vec(),
                )
            }
            (true, "/metrics") => {
                self.refresh_gauges();
                text(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    self.state.metrics.render(),
                )
            }
            (true, "/admin/origins") => json(StatusCode::OK, self.origins()),
            (true, "/admin/bans") => bans(self.state, session.req_header().uri.query()),
            (false, "/admin/purge") if method == http::Method::POST => self.purge(session).await,
            (false, "/admin/reload") if method == http::Method::POST => self.reload().await,
            (false, "/admin/drain") if method == http::Method::POST => self.drain(),
            (
                _,
                "/healthz" | "/readyz" | "/metrics" | "/admin/purge" | "/admin/origins"
                | "/admin/reload" | "/admin/drain" | "/admin/bans",
            ) => text(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                b"method not allowed\n".to_vec(),
            ),
            _ => text(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        }
    }
}
