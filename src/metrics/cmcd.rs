//! Quality of experience from the players' CMCD ([`crate::cmcd`]), per content prefix
//! (`[cmcd] prefixes`, else `other`) and cache result:
//!
//! - `edge_cmcd_requests_total{prefix,cache,ot}`: requests that carried CMCD, by object type
//!   (`ot`, `none` when not sent);
//! - `edge_cmcd_bitrate_kbps{prefix,cache}`: the requested object's encoded bitrate (`br`);
//! - `edge_cmcd_throughput_kbps{prefix,cache}`: the player's measured throughput (`mtp`);
//! - `edge_cmcd_buffer_starvation_total{prefix,cache}`: requests after the buffer ran empty
//!   (`bs`);
//! - `edge_cmcd_startup_total{prefix,cache}`: requests needed to start playback (`su`);
//! - `edge_cmcd_malformed_total{prefix}`: requests with a CMCD source that did not parse.
//!
//! Cardinality is bounded by the config and by enums, never by request data: at most
//! 33 prefixes × the cache results × 10 object types.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::cmcd::Cmcd;

/// Bitrates in kbit/s, from an audio-only rendition to 4K.
pub const KBPS_BUCKETS: &[f64] = &[
    100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0, 6400.0, 12800.0, 25600.0, 51200.0, 102400.0,
];

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
        let kbps = |name: &str, help: &str| {
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(KBPS_BUCKETS.to_vec()),
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
            bitrate: kbps(
                "edge_cmcd_bitrate_kbps",
                "Encoded bitrate of the requested object (CMCD br), kbit/s, by content prefix and cache result",
            )?,
            throughput: kbps(
                "edge_cmcd_throughput_kbps",
                "Throughput the player measured (CMCD mtp), kbit/s, by content prefix and cache result",
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
            self.bitrate.with_label_values(&labels).observe(br as f64);
        }
        if let Some(mtp) = c.mtp {
            self.throughput
                .with_label_values(&labels)
                .observe(mtp as f64);
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
            "edge_cmcd_bitrate_kbps_sum{cache=\"MISS\",prefix=\"/demo/\"} 800",
            "edge_cmcd_bitrate_kbps_bucket{cache=\"MISS\",prefix=\"/demo/\",le=\"400\"} 0",
            "edge_cmcd_bitrate_kbps_bucket{cache=\"MISS\",prefix=\"/demo/\",le=\"800\"} 1",
            "edge_cmcd_throughput_kbps_sum{cache=\"MISS\",prefix=\"/demo/\"} 5000",
            "edge_cmcd_buffer_starvation_total{cache=\"MISS\",prefix=\"/demo/\"} 1",
            "edge_cmcd_startup_total{cache=\"MISS\",prefix=\"/demo/\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("edge_cmcd_startup_total{cache=\"HIT\""));
    }
}
