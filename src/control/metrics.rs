//! The control plane's counters. They are made with the state and registered on the edge's
//! registry by whoever serves the state ([`ControlMetrics::register`]), so the control plane
//! works (and its tests run) without a registry.

use prometheus::{IntCounterVec, Opts, Registry};

/// Counters of password work and refusals.
#[derive(Debug, Clone)]
pub struct ControlMetrics {
    /// `edge_control_password_work_total{op}`: argon2 computations started (`hash` for new
    /// passwords, `verify` for logins). What the attempt limits bound.
    pub password_work: IntCounterVec,
    /// `edge_control_refused_total{reason}`: requests refused before any work, by reason:
    /// `login_account`, `login_address`, `login_busy`, `register` (429) and `edge_secret` (403,
    /// a request to the loopback port without the edge's secret).
    pub refused: IntCounterVec,
}

/// Every refusal reason, exported at 0 from the start so `rate()` and the dashboard see them.
pub const REFUSAL_REASONS: [&str; 5] = [
    "login_account",
    "login_address",
    "login_busy",
    "register",
    "edge_secret",
];

impl ControlMetrics {
    pub fn new() -> Result<ControlMetrics, prometheus::Error> {
        let m = ControlMetrics {
            password_work: IntCounterVec::new(
                Opts::new(
                    "edge_control_password_work_total",
                    "Argon2 computations started by the control plane, by op (hash, verify)",
                ),
                &["op"],
            )?,
            refused: IntCounterVec::new(
                Opts::new(
                    "edge_control_refused_total",
                    "Control plane requests refused before any work, by reason",
                ),
                &["reason"],
            )?,
        };
        for reason in REFUSAL_REASONS {
            m.refused.with_label_values(&[reason]);
        }
        for op in ["hash", "verify"] {
            m.password_work.with_label_values(&[op]);
        }
        Ok(m)
    }

    /// Adds the counters to `registry` (once).
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.password_work.clone()))?;
        registry.register(Box::new(self.refused.clone()))
    }

    pub fn refuse(&self, reason: &'static str) {
        self.refused.with_label_values(&[reason]).inc();
    }

    pub fn work(&self, op: &'static str) {
        self.password_work.with_label_values(&[op]).inc();
    }
}
