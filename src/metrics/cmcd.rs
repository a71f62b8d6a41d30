//! Quality of experience from the players' CMCD ([`crate::cmcd`]), per content prefix
//! (`[cmcd] prefixes`, else `other`) and cache result:
//!
//! - `edge_cmcd_requests_total{prefix,cache,ot}`: requests that carried CMCD, by object type
//!   (`ot`, `none` when not sent);
//! - `edge_cmcd_bitrate_bytes_per_second{prefix,cache}`: the requested object's encoded
//!   bitrate (`br`, sent in kbit/s; exported in the base unit, bytes per second);
//! - `edge_cmcd_throughput_bytes_per_second{prefix,cache}`: the player's measured throughput
//!   (`mtp`);
//! - `edge_cmcd_buffer_starvation_total{prefix,cache}`: requests after the buffer ran empty
//!   (`bs`);
//! - `edge_cmcd_startup_total{prefix,cache}`: requests needed to start playback (`su`);
//! - `edge_cmcd_malformed_total{prefix}`: requests with a CMCD source that did not parse.
//!
//! Cardinality is bounded by the config and by enums, never by request data: at most
//! 33 prefixes × the cache results × 10 object types.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::cmcd::Cmcd;

/// Bitrates in bytes per second (Prometheus' base unit), from an audio-only rendition to 4K:
/// 100 kbit/s (12,500 B/s) to 102.4 Mbit/s, doubling.
pub const BPS_BUCKETS: &[f64] = &[
    12_500.0, 25_000.0, 50_000.0, 100_000.0, 200_000.0, 400_000.0, 800_000.0, 1.6e6, 3.2e6, 6.4e6,
    1.28e7,
];

/// Bytes per second in `kbps` kbit/s (CMCD's unit).
fn bytes_per_second(kbps: u64) -> f64 {
    kbps as f64 * 125.0
}

/// The `ot` label of a request that sent no object type.
const NO_TYPE: &str = "none";

pub struct CmcdMetrics {
    requests: IntCounterVec,
    bitrate: HistogramVec,
    throughput: HistogramVec,
    starvation: IntCounterVec,
    startup: IntCounterVec,
    malformed: IntCounterVec,
}

impl CmcdMetrics {
    pub fn register(registry: &Registry) -> Result<CmcdMetrics, prometheus::Error> {
        let labels = &["prefix", "cache"];
        let bps = |name: &str, help: &str| {
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(BPS_BUCKETS.to_vec()),
                labels,
            )
        };
        let m = CmcdMetrics {
            requests: IntCounterVec::new(
                Opts::new(
                    "edge_cmcd_requests_total",
                    "Requests that carried CMCD (CTA-5004), by content prefix, cache result and object type (ot; none when not sent)",
                ),
                &["prefix", "cache", "ot"],
            )?,
            bitrate: bps(
                "edge_cmcd_bitrate_bytes_per_second",
                "Encoded bitrate of the requested object (CMCD br), by content prefix and cache result",
            )?,
            throughput: bps(
                "edge_cmcd_throughput_bytes_per_second",
                "Throughput the player measured (CMCD mtp), by content prefix and cache result",
            )?,
            starvation: IntCounterVec::new(
                Opts::new(
                    "edge_cmcd_buffer_starvation_total",
                    "Requests whose player's buffer ran empty since its last request (CMCD bs), by content prefix and cache result",
                ),
                labels,
            )?,
            startup: IntCounterVec::new(
                Opts::new(
                    "edge_cmcd_startup_total",
                    "Requests for an object needed to start or restart playback (CMCD su), by content prefix and cache result",
                ),
                labels,
            )?,
            malformed: IntCounterVec::new(
                Opts::new(
                    "edge_cmcd_malformed_total",
                    "Requests with CMCD that did not parse (that source was ignored), by content prefix",
                ),
                &["prefix"],
            )?,
        };
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.bitrate.clone()))?;
        registry.register(Box::new(m.throughput.clone()))?;
        registry.register(Box::new(m.starvation.clone()))?;
        registry.register(Box::new(m.startup.clone()))?;
        registry.register(Box::new(m.malformed.clone()))?;
        Ok(m)
    }

    /// Count one answered request's CMCD: `prefix` is its `[cmcd]` label, `cache` its cache
    /// result.
    pub fn observe(&self, prefix: &str, cache: &str, c: &Cmcd) {
        let ot = c.ot.map_or(NO_TYPE, |t| t.code());
        self.requests.with_label_values(&[prefix, cache, ot]).inc();
        let labels = [prefix, cache];
        if let Some(br) = c.br {
            self.bitrate
                .with_label_values(&labels)
                .observe(bytes_per_second(br));
        }
        if let Some(mtp) = c.mtp {
            self.throughput
                .with_label_values(&labels)
                .observe(bytes_per_second(mtp));
        }
        if c.bs {
            self.starvation.with_label_values(&labels).inc();
        }
        if c.su {
            self.startup.with_label_values(&labels).inc();
        }
        if c.malformed {
            self.malformed.with_label_values(&[prefix]).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_moves_its_series() {
        let registry = Registry::new();
        let m = CmcdMetrics::register(&registry).unwrap();
        let c = crate::cmcd::of(None, [&b"br=800,mtp=5000,ot=v,su,bs"[..]]).unwrap();
        m.observe("/demo/", "MISS", &c);
        m.observe("/demo/", "HIT", &Cmcd::default());
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        for line in [
            "edge_cmcd_requests_total{cache=\"MISS\",ot=\"v\",prefix=\"/demo/\"} 1",
            "edge_cmcd_requests_total{cache=\"HIT\",ot=\"none\",prefix=\"/demo/\"} 1",
            "edge_cmcd_bitrate_bytes_per_second_sum{cache=\"MISS\",prefix=\"/demo/\"} 100000",
            "edge_cmcd_bitrate_bytes_per_second_bucket{cache=\"MISS\",prefix=\"/demo/\",le=\"50000\"} 0",
            "edge_cmcd_bitrate_bytes_per_second_bucket{cache=\"MISS\",prefix=\"/demo/\",le=\"100000\"} 1",
            "edge_cmcd_throughput_bytes_per_second_sum{cache=\"MISS\",prefix=\"/demo/\"} 625000",
            "edge_cmcd_buffer_starvation_total{cache=\"MISS\",prefix=\"/demo/\"} 1",
            "edge_cmcd_startup_total{cache=\"MISS\",prefix=\"/demo/\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("edge_cmcd_startup_total{cache=\"HIT\""));
    }
}
