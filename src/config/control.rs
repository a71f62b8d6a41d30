//! `[control]`: the embedded control plane, configured straight into the control plane's
//! own [`ControlConfig`]. Only the admin token waits for start-up ([`PendingControl::resolve`]).

use std::path::Path;

use std::time::Duration;

use crate::control::{
    is_origin_url, CdnHost, ControlConfig, Database, LoginLimits, RegisterLimits, TierHeights,
    Title,
};

use super::error::ConfigError;
use super::file::{CdnHostSection, ControlSection};
use super::server::ServerConfig;
use super::stage::{PendingControl, SecretSource};
use super::value::{duration, int_in};

/// What `[control]` needs from the rest of the file.
pub struct Context<'a> {
    pub base: &'a Path,
    pub server: &'a ServerConfig,
    pub has_tokens: bool,
    /// The demo title is seeded into the catalog when `[demo]` is on.
    pub has_demo: bool,
}

/// Validate `[control]`: `None` when absent or `enabled = false`.
pub fn build(
    c: Option<ControlSection>,
    cx: &Context<'_>,
) -> Result<Option<PendingControl>, ConfigError> {
    let Some(c) = c.filter(|c| c.enabled.unwrap_or(true)) else {
        return Ok(None);
    };
    if !cx.has_tokens {
        return Err(ConfigError::new(
            "control",
            "the control plane signs playback URLs: it needs [tokens]",
        ));
    }
    let admin_token = match (&c.admin_token_file, &c.admin_token_env) {
        (None, None) => None,
        (f, e) => Some(SecretSource::from_keys(
            "control.admin_token",
            f.as_deref(),
            e.as_deref(),
            cx.base,
        )?),
    };
    let mut cdn_hosts = cdn_hosts(c.cdn_hosts.unwrap_or_default())?;
    if cdn_hosts.is_empty() {
        cdn_hosts.push(CdnHost {
            name: "this-edge".into(),
            base_url: cx.server.public_url.clone(),
            priority: 0,
        });
    }
    let database = Database::parse(c.database.as_deref().unwrap_or("data/control.db"), cx.base)
        .map_err(|reason| ConfigError::new("control.database", reason))?;
    let mut plane = ControlConfig::new(database, "");
    plane.cdn_hosts = cdn_hosts;
    plane.playback_slack = duration("control.playback_slack", c.playback_slack.as_deref(), "1h")?;
    plane.session_ttl = duration("control.session_ttl", c.session_ttl.as_deref(), "7d")?;
    plane.tier_max_height = TierHeights {
        basic: int_in(
            "control.basic_max_height",
            c.basic_max_height,
            480,
            1..=10_000,
        )?,
        standard: int_in(
            "control.standard_max_height",
            c.standard_max_height,
            1080,
            1..=10_000,
        )?,
        premium: u32::MAX,
    };
    plane.login_limits = LoginLimits {
        per_account: int_in(
            "control.login_failures_per_account",
            c.login_failures_per_account,
            5,
            1..=1000,
        )?,
        per_ip: int_in(
            "control.login_failures_per_address",
            c.login_failures_per_address,
            20,
            1..=1_000_000,
        )?,
        window: window("control.login_window", c.login_window.as_deref(), "15m")?,
    };
    plane.register_limits = RegisterLimits {
        per_ip: int_in(
            "control.registrations_per_address",
            c.registrations_per_address,
            10,
            1..=1_000_000,
        )?,
        window: window(
            "control.registration_window",
            c.registration_window.as_deref(),
            "1h",
        )?,
    };
    plane.seed = cx.has_demo.then(Title::demo);
    Ok(Some(PendingControl { plane, admin_token }))
}

/// A limit window: at least a second (the limiter counts in seconds), at most a week.
fn window(key: &str, text: Option<&str>, default: &str) -> Result<Duration, ConfigError> {
    let d = duration(key, text, default)?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(7 * 24 * 3600) {
        return Err(ConfigError::new(
            key,
            format!("{d:?} is out of range 1s..=7d"),
        ));
    }
    Ok(d)
}

fn cdn_hosts(raw: Vec<CdnHostSection>) -> Result<Vec<CdnHost>, ConfigError> {
    let mut hosts = Vec::with_capacity(raw.len());
    for (i, h) in raw.into_iter().enumerate() {
        // The control plane checks these again when it opens; here they get their key path.
        if h.name.is_empty() {
            return Err(ConfigError::new(
                format!("control.cdn_hosts[{i}].name"),
                "must not be empty",
            ));
        }
        if hosts.iter().any(|o: &CdnHost| o.name == h.name) {
            return Err(ConfigError::new(
                format!("control.cdn_hosts[{i}].name"),
                format!("{:?} is used twice", h.name),
            ));
        }
        if !is_origin_url(&h.base_url) {
            return Err(ConfigError::new(
                format!("control.cdn_hosts[{i}].base_url"),
                format!(
                    "{:?} must be a bare origin like \"https://cdn.example\" (no path)",
                    h.base_url
                ),
            ));
        }
        let priority = u32::try_from(h.priority.unwrap_or(0)).map_err(|_| {
            ConfigError::new(
                format!("control.cdn_hosts[{i}].priority"),
                "must be 0 or more",
            )
        })?;
        hosts.push(CdnHost {
            name: h.name,
            base_url: h.base_url.trim_end_matches('/').to_string(),
            priority,
        });
    }
    Ok(hosts)
}

impl PendingControl {
    /// Read the admin token (start-up I/O); without one the admin API stays off.
    pub fn resolve(self) -> Result<ControlConfig, ConfigError> {
        let mut plane = self.plane;
        if let Some(source) = self.admin_token {
            let bytes = source.read("control.admin_token")?;
            let token = String::from_utf8(bytes)
                .map_err(|_| {
                    ConfigError::new("control.admin_token", "the admin token must be text")
                })?
                .trim()
                .to_string();
            if token.len() < 16 {
                return Err(ConfigError::new(
                    "control.admin_token",
                    "the admin token must be at least 16 characters",
                ));
            }
            plane.admin_token = token;
        }
        Ok(plane)
    }
}
