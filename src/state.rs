//! [`EdgeState`]: what every request reads, built once at start by [`crate::server`] and
//! leaked to `'static` there (the pingora-cache storage and lock must be `'static`).
//!
//! The settings a reload may change ([`Live`]: the config, the CORS policy, the origin pools)
//! sit behind one [`ArcSwap`]: a request takes one snapshot ([`EdgeState::live`]) and reads
//! every such setting from it, so it never sees half of an old config and half of a new one;
//! [`crate::reload`] swaps in the next snapshot. Everything else here lives as long as the
//! process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora_cache::lock::CacheKeyLockImpl;

use crate::cache::Cache;
use crate::config::Config;
use crate::cors::Cors;
use crate::metrics::Metrics;
use crate::origin::pools::Pools;

/// The settings a reload swaps as one: read by a request from one snapshot.
pub struct Live {
    /// The running config. Settings that need a restart keep their start-up values here
    /// ([`crate::reload`] pins them), so what this says is what runs.
    pub config: Config,
    pub cors: Cors,
    /// Kept across a reload that leaves `[[origins]]` as it was (node health and in-flight
    /// counts carry on); new pools otherwise.
    pub pools: Arc<Pools>,
}

impl Live {
    /// The snapshot for `config`, reusing `pools` when given.
    pub fn new(config: Config, pools: Option<Arc<Pools>>) -> Live {
        Live {
            cors: Cors::new(&config.cors),
            pools: pools.unwrap_or_else(|| Arc::new(Pools::new(config.origins.clone()))),
            config,
        }
    }
}

/// State shared by every request.
pub struct EdgeState {
    /// The reloadable settings; read through [`EdgeState::live`].
    pub live: ArcSwap<Live>,
    /// The file the config was read from (what a reload re-reads); `None` for the built-in
    /// copy.
    pub source: Option<PathBuf>,
    pub metrics: Metrics,
    pub cache: &'static Cache,
    pub lock: &'static CacheKeyLockImpl,
    /// The HTTPS listener's certificates (reloadable).
    pub tls: Option<Arc<crate::tls::store::SniResolver>>,
    /// The GeoIP database (reloadable).
    pub geo: Option<Arc<crate::geo::Geo>>,
    /// The embedded control plane's loopback address, when it runs.
    pub control: Option<SocketAddr>,
    /// The secret the control plane requires on every request (sent by the proxy on each
    /// `/api/v1` request it forwards), when it runs.
    #[cfg(feature = "control")]
    pub control_secret: Option<crate::control::EdgeSecret>,
    /// This edge's membership of a purge fleet ([`crate::fleet`]), when it joined one.
    pub fleet: Option<&'static crate::fleet::Fleet>,
    /// The access log's sending end ([`crate::access_log`]).
    pub access_log: crate::access_log::AccessLog,
    /// Request and span ids (`crate::proxy::request_id`).
    pub ids: crate::access_log::ids::IdSource,
    /// Next-segment prefetch's book ([`crate::prefetch`]).
    pub prefetch: crate::prefetch::Prefetcher,
    /// Set once the player listener accepts connections.
    pub ready: AtomicBool,
    /// Set when shutdown starts or on `POST /admin/drain`: `/readyz` turns 503 so load
    /// balancers drain this node (requests are still served).
    pub draining: AtomicBool,
}

impl EdgeState {
    /// Apply a purge on this edge and hand it to the fleet, if any ([`crate::fleet::purge`]).
    pub async fn purge(
        &self,
        p: crate::cache::purge::Purge,
    ) -> std::io::Result<(crate::cache::bans::Ban, crate::fleet::Sent)> {
        crate::fleet::purge(self.cache, self.fleet, p).await
    }

    /// The current settings, for the span of one request phase (an `ArcSwap` load: no lock,
    /// no reference count). Hold it briefly; [`EdgeState::live_full`] to keep it.
    pub fn live(&self) -> arc_swap::Guard<Arc<Live>> {
        self.live.load()
    }

    /// The current settings, to keep for a whole request (the pipeline's context).
    pub fn live_full(&self) -> Arc<Live> {
        self.live.load_full()
    }

    /// `/readyz`: 503 `starting` until the player listener accepts connections, 200 `ready`,
    /// then 503 `draining` once shutdown has started or a drain was asked for.
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
