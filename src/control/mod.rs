//! The embedded control plane: an HTTP API under `/api/v1` for accounts and profiles, the
//! catalog, playback authorisation (signed manifest URLs), watch progress and per-profile
//! watchlists, on an embedded SQLite database or on a PostgreSQL server shared by several edges
//! ([`Database`]).
//!
//! The edge forwards `/api/v1/*` unchanged to [`serve_state`]'s loopback listener, adding
//! `X-Edge-Client-IP` (client address, used for the attempt limits), `X-Edge-Country`
//! (ISO 3166 alpha-2 from GeoIP, absent when unknown, used for geo restrictions) and
//! `X-Edge-Secret` ([`edge_secret`]). Requests without the secret are refused with 403 before
//! any handler runs, so other local processes cannot forge the first two headers.
//!
//! Layout (each module depends only on those listed before it):
//! - [`model`]: domain types and input validation.
//! - [`database`]: which database `[control] database` names (SQLite path or PostgreSQL URL).
//! - [`store`]: the [`store::Store`] trait and its SQLite and PostgreSQL implementations
//!   (migrations in `migrations/*.sql` and `migrations/postgres/*.sql`).
//! - [`error`]: JSON errors with stable codes.
//! - [`auth`]: argon2id passwords, session tokens, clock.
//! - [`limits`]: login and registration limits, reserved before any password hashing.
//! - [`edge_secret`]: the per-process secret that proves a request came through the edge.
//! - [`metrics`]: counters of password work and refusals.
//! - [`settings`]: [`ControlConfig`], CDN hosts and their health.
//! - [`routes`]: the route table (data only), from which both the router and the OpenAPI
//!   document are built; [`openapi`]: the OpenAPI 3 document.
//! - [`api`]: the HTTP handlers, shared state and extractors.
//! - [`router`]: the axum router binding each route of the table to its handler.
//! - [`serve`](mod@serve): [`serve_state`], the router run until shutdown.
//!
//! This file only declares and re-exports.

pub mod api;
pub mod auth;
pub mod database;
pub mod edge_secret;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod router;
pub mod routes;
pub mod serve;
pub mod settings;
pub mod store;

#[cfg(test)]
mod tests;

pub use api::AppState;
pub use auth::PasswordHashing;
pub use database::Database;
pub use edge_secret::{EdgeSecret, EDGE_SECRET_HEADER};
pub use limits::{LoginLimits, RegisterLimits};
pub use metrics::ControlMetrics;
pub use model::{Maturity, Rating, Rendition, SeedTitle, Tier, TierHeights, Title};
pub use router::router;
pub use routes::ROUTES;
pub use serve::serve_state;
pub use settings::{is_origin_url, AlwaysHealthy, CdnHealth, CdnHost, ControlConfig, ControlError};
