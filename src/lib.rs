//! # edge: an edge CDN caching proxy and origin shield for video streaming
//!
//! Layout of the crate (one concept per module):
//!
//! - [`access_log`]: the access log's lines and the thread that writes them.
//! - [`cli`]: the `edge` command line (`serve`, `check`, `sign`, `certs`, `purge`, `reload`,
//!   `drain`).
//! - [`config`]: `edge.toml`: its file structs, one module per section, the validated
//!   [`config::Config`] and the start-up step that reads key and CA files.
//! - [`server`]: builds the Pingora server (proxy, admin, demo origin) and runs it;
//!   [`signals`]: what each operator signal does; [`upgrade`]: handing the listeners and the
//!   cache folder to a new process (`edge serve --upgrade`).
//! - [`state`]: what every request reads; [`reload`]: re-reading `edge.toml` while serving
//!   (SIGHUP, `POST /admin/reload`).
//! - [`proxy`]: the `ProxyHttp` implementation, request phases and origin choice; its
//!   [`proxy::front`] answers fresh memory hits on HTTP/1 before the Pingora pipeline.
//! - [`cache`]: foyer-backed `pingora_cache::Storage`, cache key and TTL policy.
//! - [`cors`]: which player origins may read responses, and the CORS headers.
//! - [`path`]: request path normalisation shared by the cache key and the origin request.
//! - [`admin`]: the admin listener (`/healthz`, `/readyz`, `/metrics`, `/admin/...`: origins,
//!   purge, bans, reload, drain).
//! - [`metrics`]: the Prometheus registry and the edge's metrics; [`telemetry`]: build,
//!   process and certificate-expiry metrics in the same registry.
//! - [`demo`]: the embedded demo origin serving the sample HLS title (cargo feature `demo`).
//! - [`token`], [`hls`]: signed tokens and the playlist rewriter (pure); [`cmcd`]: players'
//!   CTA-5004 data, read for the QoE metrics and the access log (pure); [`dash`]: MPEG-DASH
//!   manifests (TTL, `mh` filter; pure).
//! - [`origin`]: origin pools, consistent hashing, health.
//! - [`prefetch`]: next-segment prefetch's book (`[[prefetch]]`: which segment follows which,
//!   the bounds, the metrics); the background requests are [`proxy::prefetch`]'s.
//! - [`control`]: the embedded control plane (`/api/v1`: users, catalog, playback, progress;
//!   cargo feature `control`).
//! - [`fleet`]: purge fan-out: a purge accepted by one edge reaches every edge of the fleet
//!   through a shared PostgreSQL database (cargo feature `fleet`, part of `control`).
//! - [`tls`]: certificates (SNI resolver with reload, dev CA with cargo feature `dev-certs`),
//!   [`geo`]: GeoIP and country rules.
//!
//! Cargo features (all default): `control`, `demo`, `dev-certs`, `fleet`. Without them the binary is a
//! proxy only; a config that enables one is refused naming the key ([`config::features`]).
//! - [`limits`]: player connection limits (whole-head and send timeouts, connection caps),
//!   applied where [`proxy::front`] accepts a connection.
//! - [`hop`]: hop-by-hop and unkeyed fields, removed from what the edge forwards and stores.
//! - `fuzzing` (hidden): entry points for the fuzz targets in `fuzz/`.
//! - [`net`]: IP networks (token `ip` claims, purge and trusted-proxy lists); [`stamp`]: file
//!   version stamps for reload-on-change polling.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod cache;
pub mod cli;
pub mod cmcd;
pub mod config;
#[cfg(feature = "control")]
pub mod control;
pub mod cors;
pub mod dash;
#[cfg(feature = "demo")]
pub mod demo;
pub mod fleet;
#[doc(hidden)]
pub mod fuzzing;
pub mod geo;
pub mod hls;
pub mod hop;
pub mod limits;
pub mod metrics;
pub mod net;
pub mod origin;
pub mod path;
pub mod prefetch;
pub mod proxy;
pub mod reload;
pub mod server;
pub mod signals;
pub mod stamp;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod token;
pub mod upgrade;

#[cfg(test)]
mod module_graph;
