//! The control plane's configuration (one struct, built by `crate::config::control` from
//! `[control]`, or by tests), the CDN hosts it hands out, and its start-up errors.

use std::time::Duration;

use super::auth::PasswordHashing;
use super::database::Database;
use super::limits::{LoginLimits, RegisterLimits};
use super::model::{SeedTitle, TierHeights};

/// Configuration of the control plane. `Debug` does not print the admin token.
#[derive(Clone)]
pub struct ControlConfig {
    /// SQLite file (created with its parent folder if missing, WAL mode) or PostgreSQL URL.
    pub database: Database,
    /// Bearer token for the admin calls (`/admin/*`). Empty disables the admin API.
    pub admin_token: String,
    /// CDN hosts handed to players (`base_url` an origin like `http://127.0.0.1:8080`, without
    /// a path). Lower `priority` is preferred; unhealthy hosts go last.
    pub cdn_hosts: Vec<CdnHost>,
    /// Maximum rendition height per subscription tier.
    pub tier_max_height: TierHeights,
    /// Playback token lifetime = title duration + this.
    pub playback_slack: Duration,
    /// Lifetime of a login session.
    pub session_ttl: Duration,
    /// Title inserted at startup when no title with its id exists ([`super::Title::demo`]).
    pub seed: Option<SeedTitle>,
    /// Failed-login limits (per account and address, per address; see [`super::limits`]).
    pub login_limits: LoginLimits,
    /// Registrations per client address.
    pub register_limits: RegisterLimits,
    /// Argon2id cost for new password hashes.
    pub password_hashing: PasswordHashing,
    /// Profiles per account.
    pub max_profiles: u32,
    /// The edge's token cookie (`[tokens] cookie`): playback sets it for the title's folder.
    pub playback_cookie: String,
}

impl std::fmt::Debug for ControlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlConfig")
            .field("database", &self.database)
            .field(
                "admin_token",
                &if self.admin_token.is_empty() {
                    "(disabled)"
                } else {
                    "(set)"
                },
            )
            .field("cdn_hosts", &self.cdn_hosts)
            .field("tier_max_height", &self.tier_max_height)
            .field("playback_slack", &self.playback_slack)
            .field("session_ttl", &self.session_ttl)
            .field("seed", &self.seed.as_ref().map(|t| &t.id))
            .field("login_limits", &self.login_limits)
            .field("register_limits", &self.register_limits)
            .field("password_hashing", &self.password_hashing)
            .field("max_profiles", &self.max_profiles)
            .finish()
    }
}

impl ControlConfig {
    /// A configuration with the defaults: no CDN hosts, tiers 480/1080/unlimited, slack 1 h,
    /// sessions 7 days, no seed, 5 failed logins per account and address / 20 per address per
    /// 15 min, 10 registrations per address per hour, OWASP argon2id cost, 5 profiles per
    /// account, playback cookie `edge_token`.
    pub fn new(database: impl Into<Database>, admin_token: impl Into<String>) -> Self {
        ControlConfig {
            database: database.into(),
            admin_token: admin_token.into(),
            cdn_hosts: Vec::new(),
            tier_max_height: TierHeights::default(),
            playback_slack: Duration::from_secs(3600),
            session_ttl: Duration::from_secs(7 * 24 * 3600),
            seed: None,
            login_limits: LoginLimits::default(),
            register_limits: RegisterLimits::default(),
            password_hashing: PasswordHashing::default(),
            max_profiles: 5,
            playback_cookie: "edge_token".into(),
        }
    }
}

/// A CDN host players can be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdnHost {
    pub name: String,
    /// `http(s)://host[:port]` (no path); `/t/<token>` and the title's path are appended.
    pub base_url: String,
    /// Lower is preferred.
    pub priority: u32,
}

/// `http(s)://authority` with an optional trailing `/` and nothing else. The edge takes the
/// token from the start of the path (`/t/<token>/…`), so a base path would break the ACL.
pub fn is_origin_url(u: &str) -> bool {
    let rest = match u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
    {
        Some(r) => r.strip_suffix('/').unwrap_or(r),
        None => return false,
    };
    !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b'?' | b'#' | b'\\' | b'@'))
}

/// Health of CDN hosts, provided by the edge.
pub trait CdnHealth: Send + Sync {
    fn healthy(&self, host: &CdnHost) -> bool;
}

/// Every host is healthy (for setups without health checks).
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysHealthy;

impl CdnHealth for AlwaysHealthy {
    fn healthy(&self, _host: &CdnHost) -> bool {
        true
    }
}

/// Why the control plane could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control plane configuration: {0}")]
    Config(String),
    #[error("control plane database: {0}")]
    Database(String),
    #[error("control plane server: {0}")]
    Io(#[from] std::io::Error),
}
