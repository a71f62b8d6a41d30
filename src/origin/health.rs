//! Node health: active checks (consecutive passes/failures against thresholds) and passive
//! ejection (consecutive request failures eject a node for a back-off that doubles on repeats).
//! A node is usable when its last active verdict is up and it is not ejected.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{HealthCheck, PassiveHealth};

/// Milliseconds since the epoch (the clock ejections are measured on).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The health of one origin node. Lock-free: read on every request.
#[derive(Debug)]
pub struct NodeHealth {
    up: AtomicBool,
    check_passes: AtomicU32,
    check_failures: AtomicU32,
    consecutive_failures: AtomicU32,
    ejected_until_ms: AtomicU64,
    ejections: AtomicU32,
}

impl Default for NodeHealth {
    fn default() -> Self {
        NodeHealth {
            up: AtomicBool::new(true),
            check_passes: AtomicU32::new(0),
            check_failures: AtomicU32::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
        }
    }
}

impl NodeHealth {
    /// Whether requests may go to this node now.
    pub fn usable(&self, now_ms: u64) -> bool {
        self.up.load(Ordering::Relaxed) && self.ejected_until_ms.load(Ordering::Relaxed) <= now_ms
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub fn ejected_until_ms(&self) -> u64 {
        self.ejected_until_ms.load(Ordering::Relaxed)
    }

    /// A request got a good response from this node.
    pub fn on_success(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
    }

    /// A request to this node failed (connect error, reset, timeout, 5xx). Returns true when
    /// this failure ejected the node.
    pub fn on_failure(&self, cfg: &PassiveHealth, now_ms: u64) -> bool {
        let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n < cfg.max_failures {
            return false;
        }
        self.consecutive_failures.store(0, Ordering::Relaxed);
        let repeats = self.ejections.fetch_add(1, Ordering::Relaxed).min(16);
        let backoff = cfg
            .ejection
            .saturating_mul(1 << repeats)
            .min(cfg.max_ejection);
        self.ejected_until_ms
            .store(now_ms + backoff.as_millis() as u64, Ordering::Relaxed);
        true
    }

    /// An active check finished. Returns the new up/down verdict when it changed. Checks
    /// decide up/down only: a passive ejection runs its whole back-off (the check path can be
    /// fine while content fails), and after it the node serves again if the checks pass.
    pub fn on_check(&self, ok: bool, cfg: &HealthCheck) -> Option<bool> {
        if ok {
            self.check_failures.store(0, Ordering::Relaxed);
            let passes = self.check_passes.fetch_add(1, Ordering::Relaxed) + 1;
            if passes >= cfg.healthy_threshold && !self.up.swap(true, Ordering::Relaxed) {
                return Some(true);
            }
        } else {
            self.check_passes.store(0, Ordering::Relaxed);
            let failures = self.check_failures.fetch_add(1, Ordering::Relaxed) + 1;
            if failures >= cfg.unhealthy_threshold && self.up.swap(false, Ordering::Relaxed) {
                return Some(false);
            }
        }
        None
    }
}

/// How long until a passive ejection ends, for reports.
pub fn remaining(until_ms: u64, now_ms: u64) -> Duration {
    Duration::from_millis(until_ms.saturating_sub(now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passive() -> PassiveHealth {
        PassiveHealth {
            max_failures: 3,
            ejection: Duration::from_secs(5),
            max_ejection: Duration::from_secs(12),
        }
    }

    fn check() -> HealthCheck {
        HealthCheck {
            path: "/healthz".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 2,
        }
    }

    #[test]
    fn passive_ejection_backs_off_and_success_resets_the_count() {
        let h = NodeHealth::default();
        let t = 1_000_000;
        assert!(!h.on_failure(&passive(), t));
        h.on_success();
        assert!(!h.on_failure(&passive(), t));
        assert!(!h.on_failure(&passive(), t));
        assert!(h.usable(t));
        assert!(
            h.on_failure(&passive(), t),
            "third consecutive failure ejects"
        );
        assert!(!h.usable(t + 4_999));
        assert!(h.usable(t + 5_000));
        for _ in 0..3 {
            h.on_failure(&passive(), t + 5_000);
        }
        assert!(!h.usable(t + 14_999), "second ejection doubles to 10 s");
        for _ in 0..3 {
            h.on_failure(&passive(), t + 20_000);
        }
        assert_eq!(
            remaining(h.ejected_until_ms(), t + 20_000),
            Duration::from_secs(12),
            "capped at max_ejection"
        );
    }

    #[test]
    fn active_checks_use_thresholds_and_readmit() {
        let h = NodeHealth::default();
        assert_eq!(h.on_check(false, &check()), None);
        assert_eq!(h.on_check(false, &check()), Some(false));
        assert!(!h.usable(0));
        assert_eq!(h.on_check(true, &check()), None);
        assert_eq!(h.on_check(true, &check()), Some(true));
        assert!(h.usable(0));
        // Passing checks do not cut a passive ejection short; its back-off ends it.
        for _ in 0..3 {
            h.on_failure(&passive(), 1_000);
        }
        h.on_check(true, &check());
        h.on_check(true, &check());
        assert!(!h.usable(2_000));
        assert!(h.usable(6_000));
        // A node that is down stays out even after its ejection ends, until checks pass.
        h.on_check(false, &check());
        h.on_check(false, &check());
        assert!(!h.usable(10_000));
    }
}
