//! Per origin node: `edge_upstream_response_seconds{pool,node}`, the time from a connection
//! to the node being ready (new or reused) to the node's response header — the node's answer
//! time without the connect — and `edge_upstream_received_bytes_total{pool,node}`, the response
//! body bytes received from it (as sent, before any decoding; fills and uncached responses
//! alike).
//!
//! The labels are a pool's `name` and a node's configured `addr`, never request data, so the
//! series are bounded by the config. [`UpstreamNodes::export`] shows every configured node at
//! zero before its first request (the admin listener calls it at each scrape).

use std::time::Instant;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};

/// Origin answer times: from a co-located shield (a millisecond) to a slow origin near the
/// pool's `read_timeout` (10 s by default).
pub const RESPONSE_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The two per-node families.
pub struct UpstreamNodes {
    response: HistogramVec,
    received: IntCounterVec,
}

impl UpstreamNodes {
    pub fn register(registry: &Registry) -> Result<UpstreamNodes, prometheus::Error> {
        let response = HistogramVec::new(
            HistogramOpts::new(
                "edge_upstream_response_seconds",
                "Time from the connection to the origin node being ready (new or reused) to its response header, by pool and node",
            )
            .buckets(RESPONSE_BUCKETS.to_vec()),
            &["pool", "node"],
        )?;
        let received = IntCounterVec::new(
            Opts::new(
                "edge_upstream_received_bytes_total",
                "Response body bytes received from origin nodes (as sent, before decoding), by pool and node",
            ),
            &["pool", "node"],
        )?;
        registry.register(Box::new(response.clone()))?;
        registry.register(Box::new(received.clone()))?;
        Ok(UpstreamNodes { response, received })
    }

    /// Export a configured node's series (at zero until it is used).
    pub fn export(&self, pool: &str, node: &str) {
        self.response.with_label_values(&[pool, node]);
        self.received.with_label_values(&[pool, node]);
    }

    /// One attempt on a node whose connection is ready now: its series, bound once.
    pub fn attempt(&self, pool: &str, node: &str) -> NodeAttempt {
        NodeAttempt {
            since: Some(Instant::now()),
            response: self.response.with_label_values(&[pool, node]),
            received: self.received.with_label_values(&[pool, node]),
        }
    }
}

/// The metrics of one attempt on one node, carried in the request's context.
pub struct NodeAttempt {
    /// When the connection was ready; taken by the first final response header.
    since: Option<Instant>,
    response: Histogram,
    received: IntCounter,
}

impl NodeAttempt {
    /// The node's response header arrived with `status`. Interim (1xx) heads other than
    /// `101 Switching Protocols` are not the answer: the clock runs on to the final one.
    pub fn header(&mut self, status: u16) {
        if (100..200).contains(&status) && status != 101 {
            return;
        }
        if let Some(t) = self.since.take() {
            self.response.observe(t.elapsed().as_secs_f64());
        }
    }

    /// A piece of the node's response body arrived.
    pub fn body(&self, bytes: usize) {
        self.received.inc_by(bytes as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(registry: &Registry, line_start: &str) -> Option<String> {
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        text.lines()
            .find(|l| l.starts_with(line_start))
            .map(|l| l.rsplit(' ').next().unwrap_or("").to_string())
    }

    #[test]
    fn one_observation_per_attempt_and_bytes_per_node() {
        let registry = Registry::new();
        let u = UpstreamNodes::register(&registry).unwrap();
        u.export("p", "10.0.0.2:80");
        let mut a = u.attempt("p", "10.0.0.1:80");
        a.header(100);
        a.header(200);
        a.header(200);
        a.body(1000);
        a.body(24);
        let mut b = u.attempt("p", "10.0.0.1:80");
        b.header(304);
        let count = r#"edge_upstream_response_seconds_count{node="10.0.0.1:80",pool="p"}"#;
        assert_eq!(sample(&registry, count).as_deref(), Some("2"));
        let bytes = r#"edge_upstream_received_bytes_total{node="10.0.0.1:80",pool="p"}"#;
        assert_eq!(sample(&registry, bytes).as_deref(), Some("1024"));
        // The exported node shows at zero.
        let idle = r#"edge_upstream_response_seconds_count{node="10.0.0.2:80",pool="p"}"#;
        assert_eq!(sample(&registry, idle).as_deref(), Some("0"));
        let idle = r#"edge_upstream_received_bytes_total{node="10.0.0.2:80",pool="p"}"#;
        assert_eq!(sample(&registry, idle).as_deref(), Some("0"));
    }

    #[test]
    fn a_switch_is_an_answer() {
        let registry = Registry::new();
        let u = UpstreamNodes::register(&registry).unwrap();
        u.attempt("p", "n:1").header(101);
        let count = r#"edge_upstream_response_seconds_count{node="n:1",pool="p"}"#;
        assert_eq!(sample(&registry, count).as_deref(), Some("1"));
    }
}
