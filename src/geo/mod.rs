//! Geo-restriction: the client's country from a MaxMind GeoIP database, and per-path
//! country rules.
//!
//! - [`db`]: [`Db`] (one opened `.mmdb` file: country lookup) and [`Geo`] (the database in
//!   service, reloadable when the file changes).
//! - [`xff`]: [`client_ip`], the address to geolocate behind trusted proxies.
//! - [`rules`]: [`Policy`]: allow/deny lists per path prefix plus a token's `cc` claim.
//!
//! Per request: `let ip = client_ip(peer, xff, &trusted); let cc = geo.lookup(ip);
//! policy.check(path, cc.as_ref().map(CountryCode::as_str), claims.cc.as_deref())`, answering
//! `policy.status()` on `Err(Blocked)`.
//!
//! The repository's `geoip/edge-test.mmdb` maps only documentation ranges (see
//! `geoip/README.md`); production uses a GeoLite2/GeoIP2 Country or City file.

pub mod db;
pub mod rules;
pub mod xff;

pub use db::{CountryCode, Db, Geo, GeoError};
pub use rules::{Action, Blocked, Policy, Rule, RuleError};
pub use xff::{client_ip, is_trusted};

#[cfg(test)]
mod tests;
