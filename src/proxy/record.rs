//! One record per answered request, for the metrics and the access log, written the same way
//! by the pipeline's `logging` phase and by the front.

use std::time::Duration;

use super::gate::Kind;
use crate::metrics::Metrics;

/// What one request was and how it was answered.
pub struct RequestRecord<'a> {
    pub kind: Kind,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    /// `HIT`, `MISS`, ... for content; `NONE` otherwise.
    pub cache: &'static str,
    /// Body bytes sent.
    pub bytes: usize,
    pub elapsed: Duration,
}

impl RequestRecord<'_> {
    /// Count the request and write its access-log line (target `edge::access`, off unless
    /// `RUST_LOG` turns it on). `upstream` and `error` are only computed when the line is
    /// written.
    pub fn emit(
        &self,
        metrics: &Metrics,
        upstream: impl FnOnce() -> String,
        error: impl FnOnce() -> String,
    ) {
        metrics.observe_request(
            self.kind.as_str(),
            self.status,
            self.cache,
            self.elapsed,
            self.bytes,
        );
        if !tracing::enabled!(target: "edge::access", tracing::Level::INFO) {
            return;
        }
        tracing::info!(
            target: "edge::access",
            method = %self.method,
            path = %self.path,
            status = self.status,
            cache = self.cache,
            bytes = self.bytes,
            ms = self.elapsed.as_secs_f64() * 1000.0,
            upstream = upstream(),
            error = error(),
        );
    }
}
