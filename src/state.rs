//! [`EdgeState`]: what every request reads, built once at start by [`crate::server`] and
//! leaked to `'static` there (the pingora-cache storage and lock must be `'static`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pingora_cache::lock::CacheKeyLockImpl;

use crate::cache::Cache;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::origin::pools::Pools;
use crate::cors::Cors;

/// State shared by every request.
pub struct EdgeState {
    pub config: Config,
    pub metrics: Metrics,
    pub cache: &'static Cache,
    pub lock: &'static CacheKeyLockImpl,
    pub cors: Cors,
    pub pools: Pools,
    /// The HTTPS listener's certificates (reloadable).
    pub tls: Option<Arc<crate::tls::store::SniResolver>>,
    /// The GeoIP database (reloadable).
    pub geo: Option<Arc<crate::geo::Geo>>,
    /// The embedded control plane's loopback address, when it runs.
    pub control: Option<SocketAddr>,
    /// The secret the control plane requires on every request (sent by the proxy on each
    /// `/api/v1` request it forwards), when it runs.
    pub control_secret: Option<crate::control::EdgeSecret>,
    /// Set once the player listener accepts connections.
    pub ready: AtomicBool,
    /// Set when shutdown starts: `/readyz` turns 503 so load balancers drain this node.
    pub draining: AtomicBool,
}

impl EdgeState {
    /// `/readyz`: 503 `starting` until the player listener accepts connections, 200 `ready`,
    /// then 503 `draining` once shutdown has started.
    pub fn readiness(&self) -> (u16, &'static str) {
        if self.draining.load(Ordering::Relaxed) {
            (503, "draining\n")
        } else if self.ready.load(Ordering::Relaxed) {
            (200, "ready\n")
        } else {
            (503, "starting\n")
        }
    }
}
