//! The fan-out's metrics (in the edge's registry, registered when the edge joins a fleet).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

pub struct FleetMetrics {
    /// Bans of other edges applied here.
    pub applied: IntCounter,
    /// Rows read but not applied: `own` (this edge wrote it) or `expired` (older than the
    /// cache's keep window).
    pub skipped: IntCounterVec,
    pub last_applied_id: IntGauge,
    /// The newest id in the table at the last poll: lag = newest - last applied.
    pub newest_id: IntGauge,
    pub poll_errors: IntCounter,
    /// Purges accepted here that could not be written to the database.
    pub publish_failures: IntCounter,
    /// 1 while a wake-up (LISTEN) connection is up; 0 = polling only.
    pub listening: IntGauge,
    /// Insert (database clock) to applied here.
    pub propagation: Histogram,
}

const BUCKETS: &[f64] = &[
    0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];

impl FleetMetrics {
    pub fn new(registry: &Registry) -> Result<FleetMetrics, prometheus::Error> {
        let m = FleetMetrics {
            applied: IntCounter::new(
                "edge_fleet_bans_applied_total",
                "Bans of other edges applied from the fleet database",
            )?,
            skipped: IntCounterVec::new(
                Opts::new(
                    "edge_fleet_bans_skipped_total",
                    "Fleet bans read but not applied: own (written by this edge) or expired",
                ),
                &["reason"],
            )?,
            last_applied_id: IntGauge::new(
                "edge_fleet_last_applied_id",
                "Id of the last fleet ban this edge has applied (or skipped)",
            )?,
            newest_id: IntGauge::new(
                "edge_fleet_newest_id",
                "Newest ban id in the fleet database at the last poll",
            )?,
            poll_errors: IntCounter::new(
                "edge_fleet_poll_errors_total",
                "Failed connections to or reads of the fleet database",
            )?,
            publish_failures: IntCounter::new(
                "edge_fleet_publish_failures_total",
                "Purges applied here that could not be written to the fleet database",
            )?,
            listening: IntGauge::new(
                "edge_fleet_listening",
                "1 while LISTEN/NOTIFY wakes this edge on new bans, 0 while it only polls",
            )?,
            propagation: Histogram::with_opts(
                HistogramOpts::new(
                    "edge_fleet_ban_propagation_seconds",
                    "From a ban's insert into the fleet database (database clock) to applied here",
                )
                .buckets(BUCKETS.to_vec()),
            )?,
        };
        registry.register(Box::new(m.applied.clone()))?;
        registry.register(Box::new(m.skipped.clone()))?;
        registry.register(Box::new(m.last_applied_id.clone()))?;
        registry.register(Box::new(m.newest_id.clone()))?;
        registry.register(Box::new(m.poll_errors.clone()))?;
        registry.register(Box::new(m.publish_failures.clone()))?;
        registry.register(Box::new(m.listening.clone()))?;
        registry.register(Box::new(m.propagation.clone()))?;
        for reason in ["own", "expired"] {
            m.skipped.with_label_values(&[reason]);
        }
        Ok(m)
    }
}
