//! `[geo]`: where the client's country comes from, and the country rules.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::geo::rules::{Action, Policy, Rule, RuleError};

use super::error::ConfigError;
use super::file::GeoSection;
use super::value::{duration, nets};

#[derive(Debug, Clone, Default)]
pub struct GeoConfig {
    pub database: Option<PathBuf>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<crate::net::IpNet>,
    pub policy: Policy,
    pub reload_interval: Duration,
}

impl GeoConfig {
    /// Validate `[geo]` (absent: no database, no rules); the database path resolves against
    /// `base` and is opened when the server starts.
    pub fn build(g: Option<GeoSection>, base: &Path) -> Result<Self, ConfigError> {
        // An absent section still gets the default reload interval: the reloader's tick is
        // the shorter of the TLS and geo intervals, and a zero tick would spin.
        let g = g.unwrap_or_default();
        let trusted_proxies = nets(
            "geo.trusted_proxies",
            &g.trusted_proxies.unwrap_or_default(),
        )?;
        let mut rules = Vec::with_capacity(g.rules.len());
        for (i, r) in g.rules.into_iter().enumerate() {
            let unknown = match r.unknown.as_deref() {
                None => Action::Allow,
                Some(u) => u.parse().map_err(|e: RuleError| {
                    ConfigError::new(format!("geo.rules[{i}].unknown"), e.0)
                })?,
            };
            rules.push(Rule {
                prefix: r.prefix,
                allow: r.allow,
                deny: r.deny,
                unknown,
            });
        }
        let status = match g.status {
            None => None,
            Some(s) if (400..=599).contains(&s) => Some(s as u16),
            Some(s) => {
                return Err(ConfigError::new(
                    "geo.status",
                    format!("{s} is out of range 400..=599"),
                ))
            }
        };
        let policy = Policy::new(rules, status).map_err(|e| ConfigError::new("geo.rules", e.0))?;
        if !policy.rules().is_empty() && g.database.is_none() {
            return Err(ConfigError::new(
                "geo.database",
                "country rules need a database",
            ));
        }
        Ok(GeoConfig {
            database: g.database.map(|d| base.join(d)),
            trusted_proxies,
            policy,
            reload_interval: duration("geo.reload_interval", g.reload_interval.as_deref(), "10s")?,
        })
    }
}
