//! Configuration: `edge.toml` parsed into [`file::FileConfig`], validated into a
//! [`Config<Parsed>`], then resolved into the [`Config`] the edge runs with.
//!
//! Two layers, as in Pingora and River: the file structs mirror the TOML and deny unknown
//! keys; [`Config`] holds typed values (socket addresses, durations, byte sizes, enums) and is
//! the only thing the rest of the crate reads. Each section has its own module holding its
//! runtime struct next to the validation that builds it (`TryFrom<file::XSection>` or
//! `build`). Every error names the key path and the reason:
//! `edge.toml: cache.memory: invalid size "lots"; expected e.g. "64 MiB" or "1 GiB"`.
//!
//! Parsing is pure: [`Config::parse`] reads no file, environment variable or DNS name. The
//! I/O (token keys, the EdgeAuth key, the admin token, origin CA files, origin host names)
//! happens in one start-up step, [`Config::resolve`]; [`Config::load`] does both, for
//! `edge check` and `edge serve` alike (`docs/design.md`, "Configuration").

pub mod cache;
pub mod cmcd;
#[cfg(feature = "control")]
pub mod control;
pub mod cors;
pub mod demo;
pub mod error;
pub mod features;
pub mod file;
pub mod geo;
pub mod log;
pub mod origins;
pub mod prefetch;
pub mod purge;
pub mod server;
pub mod stage;
pub mod tls;
pub mod tokens;
pub mod units;
pub mod value;

use std::path::Path;

pub use cache::{CacheConfig, DiskAdmission, KeyRule, QueryPolicy, TtlRule};
pub use cmcd::CmcdConfig;
pub use cors::CorsConfig;
pub use demo::DemoConfig;
pub use error::ConfigError;
pub use geo::GeoConfig;
pub use log::{LogConfig, LogFormat, LogTarget};
pub use origins::{HealthCheck, OriginNode, OriginPool, PassiveHealth};
pub use prefetch::PrefetchRule;
pub use purge::PurgeConfig;
pub use server::{ConnectionLimits, Role, ServerConfig};
pub use stage::{Loaded, Parsed, Stage};
pub use tls::TlsConfig;
pub use tokens::{EdgeAuthConfig, TokensConfig};

use file::FileConfig;

/// The shipped `edge.toml`, compiled in so `edge serve` plays even without the file.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../edge.toml");

/// The whole configuration. `Config` (= `Config<Loaded>`) is what the edge runs with;
/// `Config<Parsed>` is the validated text before the start-up I/O ([`stage`]).
#[derive(Debug, Clone)]
pub struct Config<S: Stage = Loaded> {
    pub server: ServerConfig,
    pub cache: CacheConfig,
    pub cors: CorsConfig,
    pub purge: PurgeConfig,
    /// Signed tokens; `None` when the section is absent (no token checks).
    pub tokens: Option<TokensConfig<S>>,
    pub tls: Option<TlsConfig>,
    pub geo: GeoConfig,
    /// The embedded control plane under `/api/v1`; `None` = off.
    pub control: Option<S::Control>,
    /// Sorted by priority.
    pub origins: Vec<OriginPool<S>>,
    pub demo: Option<DemoConfig>,
    /// `[log]`: the access log.
    pub log: LogConfig,
    /// `[cmcd]`: the CMCD metrics' content prefixes.
    pub cmcd: CmcdConfig,
    /// `[[prefetch]]`: next-segment prefetch rules (none: off).
    pub prefetch: Vec<PrefetchRule>,
}

impl Config {
    /// Read, validate and resolve a config file. Relative paths inside it resolve against its
    /// folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("", format!("cannot read file: {e}")))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::load_str(&text, &base)
    }

    /// [`Config::parse`] then [`Config::resolve`]: config text ready to serve.
    pub fn load_str(text: &str, base: &Path) -> Result<Config, ConfigError> {
        Config::parse(text, base)?.resolve()
    }
}

impl Config<Parsed> {
    /// Parse and validate config text, without I/O; relative paths resolve against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config<Parsed>, ConfigError> {
        let de = toml::Deserializer::new(text);
        let raw: FileConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." { String::new() } else { key };
            ConfigError::new(key, first_line(e.inner().message()))
        })?;
        Config::from_file(raw, base)
    }

    fn from_file(raw: FileConfig, base: &Path) -> Result<Config<Parsed>, ConfigError> {
        let mut server = ServerConfig::try_from(raw.server)?;
        let cache = CacheConfig::build(raw.cache, base)?;
        server.upgrade_socket = server::upgrade_socket(&server.upgrade_socket, base, &cache.dir)?;
        let purge = PurgeConfig::try_from(raw.purge)?;
        let tokens = raw
            .tokens
            .map(|t| TokensConfig::build(t, base))
            .transpose()?;
        let tls = raw.tls.map(|t| TlsConfig::build(t, base)).transpose()?;
        match (&server.https, &tls) {
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "server.https",
                    "needs a [tls] section with certs",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "tls",
                    "set [server] https to serve these certificates",
                ))
            }
            _ => {}
        }
        let geo = GeoConfig::build(raw.geo, base)?;
        let cors = CorsConfig::try_from(raw.cors)?;
        let demo = DemoConfig::build(raw.demo, base, &server)?;
        #[cfg(feature = "control")]
        let control = control::build(
            raw.control,
            &control::Context {
                base,
                server: &server,
                has_tokens: tokens.is_some(),
                has_demo: demo.is_some(),
            },
        )?;
        #[cfg(not(feature = "control"))]
        let control = {
            let on = raw.control.is_some_and(|c| c.enabled.unwrap_or(true));
            features::require("control", "control", on, false).map(|()| None)?
        };
        // Playback sets the edge's own token cookie, by the name `[tokens]` reads it under.
        #[cfg(feature = "control")]
        let control = control.map(|mut c| {
            if let Some(t) = &tokens {
                c.plane.playback_cookie = t.cookie.clone();
            }
            c
        });
        #[cfg(feature = "control")]
        let purge = purge::join_control_database(
            purge,
            control
                .as_ref()
                .map(|c: &stage::PendingControl| &c.plane.database),
        );
        let origins = origins::build(raw.origins, base, demo.as_ref())?;
        let log = LogConfig::build(raw.log, base)?;
        let cmcd = CmcdConfig::build(raw.cmcd)?;
        let prefetch = prefetch::build(raw.prefetch)?;
        Ok(Config {
            server,
            cache,
            cors,
            purge,
            tokens,
            tls,
            geo,
            control,
            origins,
            demo,
            log,
            cmcd,
            prefetch,
        })
    }

    /// The start-up I/O: read the token keys, the EdgeAuth key and the admin token, look up
    /// origin host names and read origin CA files. Errors name the key as parsing does.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        Ok(Config {
            tokens: self.tokens.map(TokensConfig::resolve).transpose()?,
            #[cfg(feature = "control")]
            control: self
                .control
                .map(stage::PendingControl::resolve)
                .transpose()?,
            #[cfg(not(feature = "control"))]
            control: self.control.map(|none| match none {}),
            origins: self
                .origins
                .into_iter()
                .map(OriginPool::resolve)
                .collect::<Result<_, _>>()?,
            server: self.server,
            cache: self.cache,
            cors: self.cors,
            purge: self.purge,
            tls: self.tls,
            geo: self.geo,
            demo: self.demo,
            log: self.log,
            cmcd: self.cmcd,
            prefetch: self.prefetch,
        })
    }
}

impl<S: Stage> Config<S> {
    /// One-line summary printed by `edge check`.
    pub fn summary(&self) -> String {
        let nodes: usize = self.origins.iter().map(|p| p.nodes.len()).sum();
        format!(
            "ok: role={} http={} admin={} cache=memory {} + disk {} in {} (max object {}), {} origin pool(s) with {} node(s){}",
            self.server.role.as_str(),
            self.server.http,
            self.server.admin,
            units::format_size(self.cache.memory),
            units::format_size(self.cache.disk),
            self.cache.dir.display(),
            units::format_size(self.cache.max_object),
            self.origins.len(),
            nodes,
            if self.demo.is_some() { ", demo origin on" } else { "" }
        )
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;
