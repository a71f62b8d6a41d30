//! Prometheus metrics, all in one registry that foyer's own metrics also write to.
//! Names follow docs/design.md, "Metrics". Per listener: [`connections`]; per origin node:
//! [`upstream`]; players' CMCD: [`cmcd`].

pub mod cmcd;
pub mod connections;
pub mod upstream;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The edge's metrics.
pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub bytes_sent: IntCounterVec,
    pub upstream_requests: IntCounterVec,
    pub upstream_duration: HistogramVec,
    pub upstream_retries: IntCounterVec,
    pub cache_coalesced: IntCounter,
    pub cache_objects: IntGaugeVec,
    pub cache_bytes: IntGaugeVec,
    pub cache_fill_failures: IntCounter,
    pub cache_read_errors: IntCounter,
    pub cache_bytes_admitted: IntCounter,
    pub cache_lookups: IntCounterVec,
    pub cache_purges: IntCounter,
    pub cache_promoted: IntCounter,
    /// Bytes the fills in flight reserved against `[cache] fill_memory`.
    pub cache_fill_bytes: IntGauge,
    /// Cacheable misses streamed uncached because the fill memory budget was full.
    pub cache_fills_over_budget: IntCounter,
    pub front_hits: IntCounter,
    pub cache_disk_write_bytes: IntCounter,
    pub cache_disk_read_bytes: IntCounter,
    pub token_rejections: IntCounterVec,
    pub upstream_healthy: IntGaugeVec,
    pub geo_blocked: IntCounterVec,
    /// Config reloads ([`crate::reload`]), by result: `applied` or `failed`.
    pub config_reloads: IntCounterVec,
    /// `requests`, `request_duration` and `bytes_sent` bound once for content hits (200 and
    /// 206), the answers a fast path gives most: a label lookup per hit costs more than the
    /// increment.
    hot: [(u16, IntCounter, prometheus::Histogram, IntCounter); 2],
    pub playlist_rewrite_failures: IntCounterVec,
    /// Player connections ended or refused by a limit ([`crate::limits::Limit`]).
    pub connection_limits: IntCounterVec,
    /// Connections per listener: open now and accepted.
    pub connections: connections::Connections,
    /// Per origin node: answer times and body bytes received.
    pub upstream_nodes: upstream::UpstreamNodes,
    /// Quality of experience from the players' CMCD.
    pub cmcd: cmcd::CmcdMetrics,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "edge_requests_total",
                "Requests answered, by kind (content, local, preflight), status and cache result",
            ),
            &["kind", "status", "cache"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "edge_request_duration_seconds",
                "Time from request to last byte sent",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["kind", "cache"],
        )?;
        let bytes_sent = IntCounterVec::new(
            Opts::new(
                "edge_response_bytes_total",
                "Response body bytes sent to clients, by cache result",
            ),
            &["cache"],
        )?;
        let upstream_requests = IntCounterVec::new(
            Opts::new(
                "edge_upstream_requests_total",
                "Requests sent to origins, by pool, node and status (or error)",
            ),
            &["pool", "node", "status"],
        )?;
        let upstream_duration = HistogramVec::new(
            HistogramOpts::new(
                "edge_upstream_duration_seconds",
                "Time from choosing an origin to its response header",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["pool"],
        )?;
        let upstream_retries = IntCounterVec::new(
            Opts::new(
                "edge_upstream_retries_total",
                "Requests sent again to the same node without counting against it, by pool and reason (reused_connection: the origin had closed the pooled connection)",
            ),
            &["pool", "reason"],
        )?;
        let cache_coalesced = IntCounter::new(
            "edge_cache_coalesced_total",
            "Requests that waited on another request's fill instead of going to the origin",
        )?;
        let cache_objects = IntGaugeVec::new(
            Opts::new("edge_cache_objects", "Objects in the cache by tier"),
            &["tier"],
        )?;
        let cache_bytes = IntGaugeVec::new(
            Opts::new("edge_cache_bytes", "Bytes in the cache by tier"),
            &["tier"],
        )?;
        let cache_fill_failures = IntCounter::new(
            "edge_cache_fill_failures_total",
            "Fills dropped because the origin body was incomplete (nothing stored)",
        )?;
        let cache_read_errors = IntCounter::new(
            "edge_cache_read_errors_total",
            "Cache entries that could not be read back (damaged); each was removed and refetched",
        )?;
        let cache_bytes_admitted = IntCounter::new(
            "edge_cache_admitted_bytes_total",
            "Bytes of complete objects admitted to the cache",
        )?;
        let cache_lookups = IntCounterVec::new(
            Opts::new("edge_cache_lookups_total", "Cache lookups by result: memory, disk (tier hits), fill (joined a fill in progress), miss"),
            &["result"],
        )?;
        let cache_purges = IntCounter::new(
            "edge_cache_purges_total",
            "Purges applied (admin API and PURGE method)",
        )?;
        let cache_promoted = IntCounter::new(
            "edge_cache_promoted_total",
            "Objects written to disk on their second request",
        )?;
        let cache_fill_bytes = IntGauge::new(
            "edge_cache_fill_bytes",
            "Bytes of fills in flight held in memory (reserved by Content-Length), bounded by [cache] fill_memory",
        )?;
        registry.register(Box::new(cache_fill_bytes.clone()))?;
        let cache_fills_over_budget = IntCounter::new(
            "edge_cache_fills_over_budget_total",
            "Cacheable misses streamed to their client uncached because the fills in flight held [cache] fill_memory",
        )?;
        registry.register(Box::new(cache_fills_over_budget.clone()))?;
        let front_hits = IntCounter::new(
            "edge_front_hits_total",
            "Fresh memory hits answered without the full proxy pipeline: by the HTTP/1 player front, or on HTTP/2 right after the gate (also counted in edge_requests_total)",
        )?;
        let cache_disk_write_bytes = IntCounter::new(
            "edge_cache_disk_write_bytes_total",
            "Bytes written to the disk tier",
        )?;
        let cache_disk_read_bytes = IntCounter::new(
            "edge_cache_disk_read_bytes_total",
            "Bytes read from the disk tier",
        )?;
        let token_rejections = IntCounterVec::new(
            Opts::new(
                "edge_token_rejections_total",
                "Requests refused with 403 for their token, by reason code",
            ),
            &["reason"],
        )?;
        for reject in crate::token::Reject::ALL {
            token_rejections.with_label_values(&[reject.code()]);
        }
        registry.register(Box::new(token_rejections.clone()))?;
        let upstream_healthy = IntGaugeVec::new(
            Opts::new(
                "edge_upstream_healthy",
                "1 when the origin node takes requests (up and not ejected), else 0",
            ),
            &["pool", "node"],
        )?;
        registry.register(Box::new(upstream_healthy.clone()))?;
        let geo_blocked = IntCounterVec::new(
            Opts::new(
                "edge_geo_blocked_total",
                "Requests refused by country rules, by client country (or unknown)",
            ),
            &["country"],
        )?;
        registry.register(Box::new(geo_blocked.clone()))?;
        let config_reloads = IntCounterVec::new(
            Opts::new("edge_config_reloads_total", "Config reloads (SIGHUP, POST /admin/reload), by result: applied, failed (the running config stayed)"),
            &["result"],
        )?;
        for result in ["applied", "failed"] {
            config_reloads.with_label_values(&[result]);
        }
        registry.register(Box::new(config_reloads.clone()))?;
        let playlist_rewrite_failures = IntCounterVec::new(
            Opts::new(
                "edge_playlist_rewrite_failures_total",
                "Playlists that could not be rewritten for a viewer (body undecodable: unsupported_encoding, corrupt, too_large); none was sent mangled",
            ),
            &["reason"],
        )?;
        for reason in crate::hls::encoding::DecodeError::REASONS {
            playlist_rewrite_failures.with_label_values(&[reason]);
        }
        registry.register(Box::new(playlist_rewrite_failures.clone()))?;
        let connection_limits = IntCounterVec::new(
            Opts::new(
                "edge_connection_limits_total",
                "Player connections ended or refused by a limit: header_timeout (head not whole in time), send_timeout (no write progress), max_connections, max_connections_per_ip (refused at accept), request_line (414), header_field, head_size (431)",
            ),
            &["limit"],
        )?;
        for limit in crate::limits::Limit::ALL {
            connection_limits.with_label_values(&[limit.label()]);
        }
        registry.register(Box::new(connection_limits.clone()))?;
        let connections = connections::Connections::register(&registry)?;
        let upstream_nodes = upstream::UpstreamNodes::register(&registry)?;
        let cmcd = cmcd::CmcdMetrics::register(&registry)?;
        registry.register(Box::new(cache_lookups.clone()))?;
        registry.register(Box::new(cache_purges.clone()))?;
        registry.register(Box::new(cache_promoted.clone()))?;
        registry.register(Box::new(front_hits.clone()))?;
        registry.register(Box::new(cache_disk_write_bytes.clone()))?;
        registry.register(Box::new(cache_disk_read_bytes.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(bytes_sent.clone()))?;
        registry.register(Box::new(upstream_requests.clone()))?;
        registry.register(Box::new(upstream_duration.clone()))?;
        registry.register(Box::new(upstream_retries.clone()))?;
        registry.register(Box::new(cache_coalesced.clone()))?;
        registry.register(Box::new(cache_objects.clone()))?;
        registry.register(Box::new(cache_bytes.clone()))?;
        registry.register(Box::new(cache_fill_failures.clone()))?;
        registry.register(Box::new(cache_read_errors.clone()))?;
        registry.register(Box::new(cache_bytes_admitted.clone()))?;
        let hot = [200u16, 206].map(|status| {
            let s = status.to_string();
            (
                status,
                requests.with_label_values(&["content", &s, "HIT"]),
                request_duration.with_label_values(&["content", "HIT"]),
                bytes_sent.with_label_values(&["HIT"]),
            )
        });
        Ok(Metrics {
            registry,
            requests,
            request_duration,
            bytes_sent,
            upstream_requests,
            upstream_duration,
            upstream_retries,
            cache_coalesced,
            cache_objects,
            cache_bytes,
            cache_fill_failures,
            cache_read_errors,
            cache_bytes_admitted,
            cache_lookups,
            cache_purges,
            cache_promoted,
            cache_fill_bytes,
            cache_fills_over_budget,
            front_hits,
            cache_disk_write_bytes,
            cache_disk_read_bytes,
            token_rejections,
            upstream_healthy,
            geo_blocked,
            config_reloads,
            hot,
            playlist_rewrite_failures,
            connection_limits,
            connections,
            upstream_nodes,
            cmcd,
        })
    }

    /// Count one answered request: by kind, status and cache result; its duration; its
    /// body bytes.
    pub fn observe_request(
        &self,
        kind: &str,
        status: u16,
        cache: &str,
        elapsed: std::time::Duration,
        bytes: usize,
    ) {
        if kind == "content" && cache == "HIT" {
            if let Some((_, requests, duration, sent)) = self.hot.iter().find(|h| h.0 == status) {
                requests.inc();
                duration.observe(elapsed.as_secs_f64());
                sent.inc_by(bytes as u64);
                return;
            }
        }
        let status_label = http::StatusCode::from_u16(status)
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|_| status.to_string());
        self.requests
            .with_label_values(&[kind, &status_label, cache])
            .inc();
        self.request_duration
            .with_label_values(&[kind, cache])
            .observe(elapsed.as_secs_f64());
        self.bytes_sent
            .with_label_values(&[cache])
            .inc_by(bytes as u64);
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(16 * 1024);
        let families = self.registry.gather();
        if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_label_is_exported_before_any_refusal() {
        let m = Metrics::new().unwrap();
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&m.registry.gather())
            .unwrap();
        for reject in crate::token::Reject::ALL {
            let line = format!(
                "edge_token_rejections_total{{reason=\"{}\"}} 0",
                reject.code()
            );
            assert!(text.lines().any(|l| l == line), "missing {line}");
        }
        for reason in crate::hls::encoding::DecodeError::REASONS {
            let line = format!("edge_playlist_rewrite_failures_total{{reason=\"{reason}\"}} 0");
            assert!(text.lines().any(|l| l == line), "missing {line}");
        }
        for limit in crate::limits::Limit::ALL {
            let line = format!(
                "edge_connection_limits_total{{limit=\"{}\"}} 0",
                limit.label()
            );
            assert!(text.lines().any(|l| l == line), "missing {line}");
        }
        for listener in ["http", "https", "admin"] {
            let line = format!("edge_open_connections{{listener=\"{listener}\"}} 0");
            assert!(text.lines().any(|l| l == line), "missing {line}");
        }
    }
}
