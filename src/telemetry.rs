//! Process-wide metrics beside the request metrics of [`crate::metrics`], in the same registry:
//!
//! - `edge_build_info{version}` = 1, so dashboards can show (and alerts can compare) versions;
//! - the standard `process_*` metrics (resident memory, open and maximum file descriptors, CPU
//!   seconds, threads, start time) from prometheus' process collector (Linux `/proc`);
//! - `edge_tls_certificate_expiry_timestamp_seconds{name, file}`: when each certificate the
//!   player listener serves expires, read from the live certificate set at scrape time, so a
//!   reloaded certificate shows at the next scrape (the alert rules in deploy/prometheus/ fire
//!   on it before expiry).

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, IntGaugeVec, Opts, Registry};

use crate::tls::store::SniResolver;

/// Register the build, process and certificate metrics.
pub fn register(
    registry: &Registry,
    tls: Option<Arc<SniResolver>>,
) -> Result<(), prometheus::Error> {
    let build = IntGaugeVec::new(
        Opts::new(
            "edge_build_info",
            "1, labelled with the running edge's version",
        ),
        &["version"],
    )?;
    build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    registry.register(Box::new(build))?;
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    if let Some(resolver) = tls {
        let gauge = GaugeVec::new(
            Opts::new(
                "edge_tls_certificate_expiry_timestamp_seconds",
                "End of validity (Unix time) of each certificate the player listener serves, by its first name and file",
            ),
            &["name", "file"],
        )?;
        registry.register(Box::new(CertExpiry { resolver, gauge }))?;
    }
    Ok(())
}

/// Reads the certificate set the listener serves now at each scrape.
struct CertExpiry {
    resolver: Arc<SniResolver>,
    gauge: GaugeVec,
}

impl Collector for CertExpiry {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // Rebuilt each time: a certificate removed by a reload must not linger.
        self.gauge.reset();
        for entry in self.resolver.current().entries() {
            let name = entry.names().first().map(String::as_str).unwrap_or("");
            let file = entry.spec().cert.display().to_string();
            let at = entry
                .not_after()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            self.gauge.with_label_values(&[name, file.as_str()]).set(at);
        }
        self.gauge.collect()
    }
}
