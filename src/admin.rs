//! The admin listener (default `127.0.0.1:9090`). Every endpoint, in one `match`:
//!
//! | method | path       | answer                                                   |
//! |--------|------------|----------------------------------------------------------|
//! | GET    | `/healthz` | 200 `ok` while the process runs                          |
//! | GET    | `/readyz`  | 200 `ready`; 503 `draining` once shutdown has started    |
//! | GET    | `/metrics` | Prometheus text: edge metrics and foyer's, one registry |
//!
//! Anything else is 404; a known path with another method is 405.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;

use crate::proxy::EdgeState;

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
    h.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    resp
}

impl AdminApp {
    fn refresh_gauges(&self) {
        let s = self.state;
        let m = &s.metrics;
        let objects = s.cache.storage.objects();
        m.cache_bytes.with_label_values(&["memory"]).set(objects.memory().usage() as i64);
        let stats = &s.cache.stats;
        let sync = |counter: &prometheus::IntCounter, value: u64| {
            let have = counter.get();
            if value > have {
                counter.inc_by(value - have);
            }
        };
        sync(&m.cache_fill_failures, stats.fill_failures.load(Ordering::Relaxed));
        sync(&m.cache_read_errors, stats.read_errors.load(Ordering::Relaxed));
        sync(&m.cache_bytes_admitted, stats.bytes_admitted.load(Ordering::Relaxed));
    }
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
                if self.state.draining.load(Ordering::Relaxed) {
                    text(StatusCode::SERVICE_UNAVAILABLE, "text/plain", b"draining\n".to_vec())
                } else {
                    text(StatusCode::OK, "text/plain", b"ready\n".to_vec())
                }
            }
            (true, "/metrics") => {
                self.refresh_gauges();
                text(StatusCode::OK, "text/plain; version=0.0.4", self.state.metrics.render())
            }
            (false, "/healthz" | "/readyz" | "/metrics") => {
                text(StatusCode::METHOD_NOT_ALLOWED, "text/plain", b"method not allowed\n".to_vec())
            }
            _ => text(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        }
    }
}
