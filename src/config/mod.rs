//! Configuration: `edge.toml` parsed into [`file::FileConfig`] and validated into [`Config`].
//!
//! Two layers, as in Pingora and River: the file structs mirror the TOML and deny unknown
//! keys; [`Config`] holds typed values (socket addresses, durations, byte sizes, enums) and is
//! the only thing the rest of the crate reads. Every error names the key path and the reason:
//! `edge.toml: cache.memory: invalid size "lots"; expected e.g. "64 MiB" or "1 GiB"`.

pub mod file;
pub mod units;

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use file::FileConfig;
use units::{parse_duration, parse_size};

/// The shipped `edge.toml`, compiled in so `edge serve` plays even without the file.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../edge.toml");

/// A configuration error: which key, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path, e.g. `origins[0].nodes[1].addr`; empty when the error has no key.
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError { key: key.into(), reason: reason.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.key, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Whether this node faces players (`edge`) or other edges (`shield`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Edge,
    Shield,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub cache: CacheConfig,
    pub cors: CorsConfig,
    pub purge: PurgeConfig,
    /// Signed tokens; `None` when the section is absent (no token checks).
    pub tokens: Option<TokensConfig>,
    pub tls: Option<TlsConfig>,
    pub geo: GeoConfig,
    /// The embedded control plane under `/api/v1`; `None` = off.
    pub control: Option<ControlSettings>,
    pub origins: Vec<OriginPool>,
    pub demo: Option<DemoConfig>,
}

/// `[control]`: the embedded control plane.
#[derive(Clone)]
pub struct ControlSettings {
    pub database: PathBuf,
    pub admin_token: String,
    pub cdn_hosts: Vec<crate::control::CdnHost>,
    pub playback_slack: Duration,
    pub session_ttl: Duration,
    pub basic_max_height: u32,
    pub standard_max_height: u32,
}

impl fmt::Debug for ControlSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlSettings")
            .field("database", &self.database)
            .field("admin_token", &"<redacted>")
            .field("cdn_hosts", &self.cdn_hosts)
            .finish()
    }
}

/// `[tls]`: certificates for the HTTPS listener (`[server] https`).
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// First = default for clients without SNI (or an unknown name).
    pub certs: Vec<crate::tls::store::CertSpec>,
    /// Names for a development certificate generated when the first cert file is missing.
    pub dev_names: Option<Vec<String>>,
    /// How often the cert/key files are checked for changes (SIGHUP reloads at once).
    pub reload_interval: Duration,
}

/// `[geo]`: client country and country rules.
#[derive(Debug, Clone, Default)]
pub struct GeoConfig {
    pub database: Option<PathBuf>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<crate::net::IpNet>,
    pub policy: crate::geo::rules::Policy,
    pub reload_interval: Duration,
}

/// `[tokens]`: signed segment tokens (DESIGN.md section 3).
#[derive(Debug, Clone)]
pub struct TokensConfig {
    /// Refuse content requests without a valid token (outside `public` prefixes).
    pub required: bool,
    /// Query parameter that carries a token.
    pub param: String,
    /// Cookie that carries a token.
    pub cookie: String,
    pub policy: crate::token::VerifyPolicy,
    /// Keys by id; the `current` one signs.
    pub keyring: std::sync::Arc<crate::token::Keyring>,
    /// Path prefixes served without a token.
    pub public: Vec<String>,
    /// Akamai EdgeAuth 2.0 tokens, accepted as well when configured.
    pub edgeauth: Option<EdgeAuthConfig>,
}

#[derive(Clone)]
pub struct EdgeAuthConfig {
    pub param: String,
    pub key: Vec<u8>,
}

impl fmt::Debug for EdgeAuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EdgeAuthConfig").field("param", &self.param).field("key", &"<redacted>").finish()
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub role: Role,
    /// Plain HTTP listener for players.
    pub http: SocketAddr,
    /// Admin listener: health, readiness, metrics (and later purge).
    pub admin: SocketAddr,
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// How long in-flight requests may finish after SIGTERM before runtimes stop.
    pub grace_period: Duration,
    /// How long runtimes get to stop after the grace period.
    pub shutdown_timeout: Duration,
    /// Base URL printed for players (default: derived from `http`).
    pub public_url: String,
    /// This node's name in `Via` (loop detection); default `edge-<http port>`.
    pub name: String,
    /// HTTPS listener (needs `[tls]`).
    pub https: Option<SocketAddr>,
    /// Answer fresh memory-tier hits in the player front ([`crate::proxy::front`]) rather
    /// than through the full proxy pipeline.
    pub fast_hits: bool,
}

#[derive(Debug, Clone)]
pub struct CacheConfig {
    pub memory: u64,
    pub dir: PathBuf,
    pub disk: u64,
    pub max_object: u64,
    /// How long a cache-lock writer may hold the lock before waiters give up and fetch.
    pub lock_timeout: Duration,
    /// Freshness of a 200 when the origin sends no `Cache-Control`/`Expires`.
    pub default_ttl: Duration,
    /// Freshness of a 404/410 when the origin sends no caching headers.
    pub negative_ttl: Duration,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
    /// With a stale copy to fall back on, how long the origin gets before the stale copy is
    /// served (stale-if-error), instead of the pool's full timeouts.
    pub stale_timeout: Duration,
    /// Upper bound on any freshness lifetime, origin-given or default.
    pub max_ttl: Duration,
    /// Freshness of a VOD (`#EXT-X-ENDLIST`) or master playlist without caching headers.
    pub vod_playlist_ttl: Duration,
    /// A live media playlist without caching headers is fresh for this fraction of its
    /// `#EXT-X-TARGETDURATION`.
    pub live_playlist_fraction: f64,
    pub disk_admission: DiskAdmission,
    /// Per-path-prefix TTLs, longest prefix first.
    pub rules: Vec<TtlRule>,
}

/// When an object is written to the disk tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskAdmission {
    /// On its first fill.
    FirstHit,
    /// When it is requested a second time, so one-hit wonders never churn the disk.
    SecondHit,
}

#[derive(Debug, Clone)]
pub struct TtlRule {
    pub prefix: String,
    pub ttl: Duration,
    /// Apply even when the origin sends Cache-Control/Expires.
    pub override_origin: bool,
}

#[derive(Debug, Clone)]
pub struct PurgeConfig {
    /// Networks allowed to send the `PURGE` method to the player listener.
    pub allow: Vec<crate::net::IpNet>,
}

#[derive(Debug, Clone)]
pub struct CorsConfig {
    /// Allowed `Origin` values; `*` allows any. Empty disables CORS headers.
    pub allow_origins: Vec<String>,
    pub max_age: Duration,
}

#[derive(Debug, Clone)]
pub struct OriginPool {
    pub name: String,
    pub priority: u32,
    pub nodes: Vec<OriginNode>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// How long an idle keep-alive connection to a node is kept for reuse; below the origin's
    /// own keep-alive timeout, so the edge closes first. Zero: connections are not reused.
    pub idle_timeout: Duration,
    /// Further nodes of this pool a request may try after the first fails (then the next pool).
    pub retries: usize,
    /// Bounded-load factor: no node takes more than this × the pool's average in-flight.
    pub load_factor: f64,
    /// Active health checks; `None` = nodes are up unless passive checks eject them.
    pub health: Option<HealthCheck>,
    pub passive: PassiveHealth,
    /// CA certificates (DER) that TLS nodes of this pool are verified against; `None` =
    /// the system roots.
    pub ca: Option<std::sync::Arc<Vec<Vec<u8>>>>,
}

impl Default for PassiveHealth {
    fn default() -> Self {
        PassiveHealth { max_failures: 3, ejection: Duration::from_secs(5), max_ejection: Duration::from_secs(60) }
    }
}

#[derive(Debug, Clone)]
pub struct HealthCheck {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive passing checks that mark a down node up.
    pub healthy_threshold: u32,
    /// Consecutive failing checks that mark an up node down.
    pub unhealthy_threshold: u32,
}

/// Passive ejection: consecutive connect errors, resets, timeouts or 5xx eject a node for
/// `ejection`, doubling on each repeat up to `max_ejection`.
#[derive(Debug, Clone)]
pub struct PassiveHealth {
    pub max_failures: u32,
    pub ejection: Duration,
    pub max_ejection: Duration,
}

#[derive(Debug, Clone)]
pub struct OriginNode {
    pub addr: SocketAddr,
    pub weight: u32,
    /// Host header sent to this node (default: the client's Host).
    pub host: Option<String>,
    /// Connect with TLS (certificate verified against `ca_file` or the system roots).
    pub tls: bool,
    /// SNI and verified name (default: `host`, else the address's host name).
    pub sni: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub listen: SocketAddr,
    pub media: PathBuf,
    /// Path of the demo title's master playlist, as a player requests it through the edge.
    pub title: String,
}

impl Config {
    /// Read and validate a config file. Relative paths inside it resolve against its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("", format!("cannot read file: {e}")))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::parse(&text, &base)
    }

    /// Parse and validate config text; relative paths resolve against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        let raw: FileConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." { String::new() } else { key };
            ConfigError::new(key, first_line(e.inner().message()))
        })?;
        Config::from_file(raw, base)
    }

    fn from_file(raw: FileConfig, base: &Path) -> Result<Config, ConfigError> {
        let s = raw.server;
        let role = match s.role.as_deref().unwrap_or("edge") {
            "edge" => Role::Edge,
            "shield" => Role::Shield,
            other => {
                return Err(ConfigError::new(
                    "server.role",
                    format!("unknown role {other:?}; expected \"edge\" or \"shield\""),
                ))
            }
        };
        let http = addr("server.http", s.http.as_deref().unwrap_or("0.0.0.0:8080"))?;
        let admin = addr("server.admin", s.admin.as_deref().unwrap_or("127.0.0.1:9090"))?;
        if admin == http {
            return Err(ConfigError::new("server.admin", "must differ from server.http"));
        }
        let threads = match s.threads {
            None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            Some(n) if (1..=1024).contains(&n) => n as usize,
            Some(n) => return Err(ConfigError::new("server.threads", format!("{n} is out of range 1..=1024"))),
        };
        let server = ServerConfig {
            role,
            http,
            admin,
            threads,
            grace_period: duration("server.grace_period", s.grace_period.as_deref(), "10s")?,
            shutdown_timeout: duration("server.shutdown_timeout", s.shutdown_timeout.as_deref(), "5s")?,
            public_url: match s.public_url {
                Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                    u.trim_end_matches('/').to_string()
                }
                Some(u) => {
                    return Err(ConfigError::new(
                        "server.public_url",
                        format!("{u:?} must start with http:// or https://"),
                    ))
                }
                None => default_public_url(http),
            },
            https: s.https.as_deref().map(|a| addr("server.https", a)).transpose()?,
            name: match s.name {
                Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) => n,
                Some(n) => return Err(ConfigError::new("server.name", format!("{n:?} must be letters, digits, '-', '_' or '.'"))),
                None => format!("edge-{}", http.port()),
            },
            fast_hits: s.fast_hits.unwrap_or(true),
        };

        let c = raw.cache;
        let memory = size("cache.memory", c.memory.as_deref(), "256 MiB")?;
        if memory < (1 << 20) {
            return Err(ConfigError::new("cache.memory", "must be at least 1 MiB"));
        }
        let disk = size("cache.disk", c.disk.as_deref(), "1 GiB")?;
        let max_object = size("cache.max_object", c.max_object.as_deref(), "64 MiB")?;
        if max_object == 0 {
            return Err(ConfigError::new("cache.max_object", "must be greater than 0"));
        }
        if disk > 0 && disk < 4 * crate::cache::block_size_for(max_object) as u64 {
            return Err(ConfigError::new(
                "cache.disk",
                format!(
                    "{} is too small for cache.max_object = {}: the disk tier needs at least 4 blocks of {}",
                    units::format_size(disk),
                    units::format_size(max_object),
                    units::format_size(crate::cache::block_size_for(max_object) as u64)
                ),
            ));
        }
        let dir = c.dir.as_deref().unwrap_or("data/cache");
        if dir.trim().is_empty() {
            return Err(ConfigError::new("cache.dir", "must not be empty"));
        }
        let cache = CacheConfig {
            memory,
            dir: base.join(dir),
            disk,
            max_object,
            lock_timeout: duration("cache.lock_timeout", c.lock_timeout.as_deref(), "30s")?,
            default_ttl: duration("cache.default_ttl", c.default_ttl.as_deref(), "24h")?,
            negative_ttl: duration("cache.negative_ttl", c.negative_ttl.as_deref(), "10s")?,
            stale_while_revalidate: duration(
                "cache.stale_while_revalidate",
                c.stale_while_revalidate.as_deref(),
                "5s",
            )?,
            stale_if_error: duration("cache.stale_if_error", c.stale_if_error.as_deref(), "5m")?,
            stale_timeout: duration("cache.stale_timeout", c.stale_timeout.as_deref(), "1s")?,
            max_ttl: duration("cache.max_ttl", c.max_ttl.as_deref(), "7d")?,
            vod_playlist_ttl: duration("cache.vod_playlist_ttl", c.vod_playlist_ttl.as_deref(), "1h")?,
            live_playlist_fraction: match c.live_playlist_fraction.unwrap_or(0.5) {
                f if f > 0.0 && f <= 1.0 => f,
                f => return Err(ConfigError::new("cache.live_playlist_fraction", format!("{f} is out of range (0, 1]"))),
            },
            disk_admission: match c.disk_admission.as_deref().unwrap_or("second-hit") {
                "second-hit" => DiskAdmission::SecondHit,
                "first-hit" => DiskAdmission::FirstHit,
                other => {
                    return Err(ConfigError::new(
                        "cache.disk_admission",
                        format!("unknown value {other:?}; expected \"second-hit\" or \"first-hit\""),
                    ))
                }
            },
            rules: ttl_rules(c.rules)?,
        };
        if cache.stale_timeout.is_zero() {
            return Err(ConfigError::new("cache.stale_timeout", "must be greater than 0"));
        }

        let mut allow = Vec::new();
        for (i, net) in raw.purge.allow.unwrap_or_else(|| vec!["127.0.0.1/32".into(), "::1/128".into()]).iter().enumerate() {
            allow.push(parse_net(&format!("purge.allow[{i}]"), net)?);
        }
        let purge = PurgeConfig { allow };
        let tokens = raw.tokens.map(|t| tokens_config(t, base)).transpose()?;
        let tls = raw.tls.map(|t| tls_config(t, base)).transpose()?;
        match (&server.https, &tls) {
            (Some(_), None) => return Err(ConfigError::new("server.https", "needs a [tls] section with certs")),
            (None, Some(_)) => return Err(ConfigError::new("tls", "set [server] https to serve these certificates")),
            _ => {}
        }
        if server.https.is_some_and(|h| h == server.http || h == server.admin) {
            return Err(ConfigError::new("server.https", "must differ from server.http and server.admin"));
        }
        let geo = raw.geo.map(|g| geo_config(g, base)).transpose()?.unwrap_or_default();
        let control = match raw.control {
            Some(c) if c.enabled.unwrap_or(true) => {
                if tokens.is_none() {
                    return Err(ConfigError::new("control", "the control plane signs playback URLs: it needs [tokens]"));
                }
                Some(control_settings(c, base, &server)?)
            }
            _ => None,
        };

        let allow_origins = raw.cors.allow_origins.unwrap_or_else(|| vec!["*".into()]);
        for (i, o) in allow_origins.iter().enumerate() {
            if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                return Err(ConfigError::new(
                    format!("cors.allow_origins[{i}]"),
                    format!("{o:?} must be \"*\" or an origin like \"https://player.example\""),
                ));
            }
        }
        let cors = CorsConfig {
            allow_origins,
            max_age: duration("cors.max_age", raw.cors.max_age.as_deref(), "1h")?,
        };

        let demo = match raw.demo {
            Some(d) if d.enabled.unwrap_or(true) => {
                let title = d.title.unwrap_or_else(|| "/demo/ts/master.m3u8".into());
                if !title.starts_with('/') {
                    return Err(ConfigError::new("demo.title", "must be a path starting with '/'"));
                }
                let listen = addr("demo.listen", d.listen.as_deref().unwrap_or("127.0.0.1:8081"))?;
                if listen == http || listen == admin {
                    return Err(ConfigError::new("demo.listen", "must differ from server.http and server.admin"));
                }
                Some(DemoConfig {
                    listen,
                    media: base.join(d.media.as_deref().unwrap_or("tests/fixtures/media")),
                    title,
                })
            }
            _ => None,
        };

        let mut origins = Vec::with_capacity(raw.origins.len());
        for (i, o) in raw.origins.into_iter().enumerate() {
            origins.push(origin_pool(i, o, base)?);
        }
        if origins.is_empty() {
            match &demo {
                Some(d) => origins.push(OriginPool {
                    name: "demo".into(),
                    priority: 0,
                    nodes: vec![OriginNode { addr: d.listen, weight: 100, host: None, tls: false, sni: None }],
                    connect_timeout: Duration::from_secs(2),
                    read_timeout: Duration::from_secs(10),
                    idle_timeout: DEFAULT_IDLE_TIMEOUT,
                    retries: 0,
                    load_factor: 1.25,
                    health: None,
                    passive: PassiveHealth::default(),
                    ca: None,
                }),
                None => {
                    return Err(ConfigError::new(
                        "origins",
                        "at least one [[origins]] pool is required (or enable [demo])",
                    ))
                }
            }
        }
        let mut names: Vec<&str> = origins.iter().map(|p| p.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(ConfigError::new("origins", format!("pool name {:?} is used twice", w[0])));
        }
        origins.sort_by_key(|p| p.priority);

        Ok(Config { server, cache, cors, purge, tokens, tls, geo, control, origins, demo })
    }

    /// One-line summary printed by `edge check`.
    pub fn summary(&self) -> String {
        let nodes: usize = self.origins.iter().map(|p| p.nodes.len()).sum();
        format!(
            "ok: role={} http={} admin={} cache=memory {} + disk {} in {} (max object {}), {} origin pool(s) with {} node(s){}",
            match self.server.role {
                Role::Edge => "edge",
                Role::Shield => "shield",
            },
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

fn origin_pool(i: usize, o: file::OriginSection, base: &Path) -> Result<OriginPool, ConfigError> {
    let key = format!("origins[{i}]");
    if o.name.trim().is_empty() {
        return Err(ConfigError::new(format!("{key}.name"), "must not be empty"));
    }
    let priority = match o.priority.unwrap_or(0) {
        p if (0..=1000).contains(&p) => p as u32,
        p => return Err(ConfigError::new(format!("{key}.priority"), format!("{p} is out of range 0..=1000"))),
    };
    if o.nodes.is_empty() {
        return Err(ConfigError::new(format!("{key}.nodes"), "a pool needs at least one node"));
    }
    let mut nodes = Vec::with_capacity(o.nodes.len());
    for (j, n) in o.nodes.into_iter().enumerate() {
        let nkey = format!("{key}.nodes[{j}]");
        let weight = match n.weight.unwrap_or(100) {
            w if (1..=10_000).contains(&w) => w as u32,
            w => return Err(ConfigError::new(format!("{nkey}.weight"), format!("{w} is out of range 1..=10000"))),
        };
        // A name in `addr` is the default SNI for a TLS node.
        let name = n.addr.rsplit_once(':').map(|(h, _)| h.trim_matches(|c| c == '[' || c == ']').to_string());
        let sni = n.sni.or_else(|| n.host.clone()).or_else(|| name.filter(|h| h.parse::<std::net::IpAddr>().is_err()));
        nodes.push(OriginNode {
            addr: resolve(&format!("{nkey}.addr"), &n.addr)?,
            weight,
            host: n.host,
            tls: n.tls.unwrap_or(false),
            sni,
        });
    }
    let retries = match o.retries {
        None => nodes.len() - 1,
        Some(r) if (0..=100).contains(&r) => r as usize,
        Some(r) => return Err(ConfigError::new(format!("{key}.retries"), format!("{r} is out of range 0..=100"))),
    };
    let load_factor = match o.load_factor.unwrap_or(1.25) {
        f if (1.0..=100.0).contains(&f) => f,
        f => return Err(ConfigError::new(format!("{key}.load_factor"), format!("{f} is out of range 1.0..=100.0"))),
    };
    let health = match o.health {
        None => None,
        Some(h) => {
            let hk = format!("{key}.health");
            let path = h.path.unwrap_or_else(|| "/healthz".into());
            if !path.starts_with('/') {
                return Err(ConfigError::new(format!("{hk}.path"), format!("{path:?} must start with '/'")));
            }
            let threshold = |name: &str, v: Option<i64>, default: u32| match v {
                None => Ok(default),
                Some(n) if (1..=100).contains(&n) => Ok(n as u32),
                Some(n) => Err(ConfigError::new(format!("{hk}.{name}"), format!("{n} is out of range 1..=100"))),
            };
            Some(HealthCheck {
                path,
                interval: duration(&format!("{hk}.interval"), h.interval.as_deref(), "2s")?,
                timeout: duration(&format!("{hk}.timeout"), h.timeout.as_deref(), "1s")?,
                healthy_threshold: threshold("healthy_threshold", h.healthy_threshold, 2)?,
                unhealthy_threshold: threshold("unhealthy_threshold", h.unhealthy_threshold, 2)?,
            })
        }
    };
    let passive = match o.passive {
        None => PassiveHealth::default(),
        Some(p) => PassiveHealth {
            max_failures: match p.max_failures.unwrap_or(3) {
                n if (1..=1000).contains(&n) => n as u32,
                n => return Err(ConfigError::new(format!("{key}.passive.max_failures"), format!("{n} is out of range 1..=1000"))),
            },
            ejection: duration(&format!("{key}.passive.ejection"), p.ejection.as_deref(), "5s")?,
            max_ejection: duration(&format!("{key}.passive.max_ejection"), p.max_ejection.as_deref(), "60s")?,
        },
    };
    let ca = match o.ca_file {
        None => None,
        Some(f) => {
            let ders = crate::tls::origin::load_ca_file(&base.join(f))
                .map_err(|e| ConfigError::new(format!("{key}.ca_file"), e.to_string()))?;
            Some(std::sync::Arc::new(ders.into_iter().map(|d| d.as_ref().to_vec()).collect()))
        }
    };
    Ok(OriginPool {
        name: o.name,
        priority,
        nodes,
        ca,
        connect_timeout: duration(&format!("{key}.connect_timeout"), o.connect_timeout.as_deref(), "2s")?,
        read_timeout: duration(&format!("{key}.read_timeout"), o.read_timeout.as_deref(), "10s")?,
        idle_timeout: idle_timeout(&format!("{key}.idle_timeout"), o.idle_timeout.as_deref())?,
        retries,
        load_factor,
        health,
        passive,
    })
}

/// Key material from a file (relative to the config) or an environment variable. Errors name
/// the key path and the file or variable, never the material.
fn secret(key: &str, file: Option<&str>, env: Option<&str>, base: &Path) -> Result<Vec<u8>, ConfigError> {
    match (file, env) {
        (Some(f), None) => {
            let path = base.join(f);
            std::fs::read(&path).map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", path.display())))
        }
        (None, Some(var)) => std::env::var(var)
            .map(String::into_bytes)
            .map_err(|_| ConfigError::new(key, format!("environment variable {var} is not set"))),
        _ => Err(ConfigError::new(key, "give exactly one of secret_file / secret_env (key_file / key_env)")),
    }
}

fn tokens_config(t: file::TokensSection, base: &Path) -> Result<TokensConfig, ConfigError> {
    use crate::token::{KeySecret, Keyring, VerifyPolicy};
    let mut keys = Vec::with_capacity(t.keys.len());
    for (i, k) in t.keys.iter().enumerate() {
        let key = format!("tokens.keys[{i}]");
        let material = secret(&key, k.secret_file.as_deref(), k.secret_env.as_deref(), base)?;
        let secret = KeySecret::parse(&material).map_err(|e| ConfigError::new(&key, e.to_string()))?;
        keys.push((k.id.clone(), secret));
    }
    if keys.is_empty() {
        return Err(ConfigError::new("tokens.keys", "at least one key is required"));
    }
    let current = t.current.clone().or_else(|| keys.first().map(|(id, _)| id.clone())).unwrap_or_default();
    let keyring = Keyring::new(keys.iter().map(|(id, s)| (id.clone(), *s.as_bytes())), &current)
        .map_err(|e| ConfigError::new(if t.current.is_some() { "tokens.current" } else { "tokens.keys" }, e.to_string()))?;
    let param = t.param.unwrap_or_else(|| "token".into());
    if param.is_empty() || !param.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(ConfigError::new("tokens.param", format!("{param:?} must be a plain parameter name")));
    }
    let cookie = t.cookie.unwrap_or_else(|| "edge_token".into());
    let mut public = Vec::new();
    for (i, p) in t.public.unwrap_or_default().into_iter().enumerate() {
        if !p.starts_with('/') {
            return Err(ConfigError::new(format!("tokens.public[{i}]"), format!("{p:?} must start with '/'")));
        }
        public.push(p);
    }
    let edgeauth = match t.edgeauth {
        None => None,
        Some(e) => {
            let material = secret("tokens.edgeauth", e.key_file.as_deref(), e.key_env.as_deref(), base)?;
            let hex = String::from_utf8_lossy(&material).trim().to_string();
            let key = crate::token::edgeauth::parse_hex_key(&hex)
                .ok_or_else(|| ConfigError::new("tokens.edgeauth", "the key must be hex (an even number of hex digits)"))?;
            Some(EdgeAuthConfig { param: e.param.unwrap_or_else(|| "hdnts".into()), key })
        }
    };
    Ok(TokensConfig {
        required: t.required.unwrap_or(true),
        param,
        cookie,
        policy: VerifyPolicy {
            leeway: duration("tokens.leeway", t.leeway.as_deref(), "30s")?,
            max_ttl: duration("tokens.max_ttl", t.max_ttl.as_deref(), "24h")?,
        },
        keyring: std::sync::Arc::new(keyring),
        public,
        edgeauth,
    })
}

fn control_settings(c: file::ControlSection, base: &Path, server: &ServerConfig) -> Result<ControlSettings, ConfigError> {
    let admin_token = match (&c.admin_token_file, &c.admin_token_env) {
        (None, None) => String::new(),
        (f, e) => {
            let bytes = secret("control.admin_token", f.as_deref(), e.as_deref(), base)?;
            let token = String::from_utf8(bytes)
                .map_err(|_| ConfigError::new("control.admin_token", "the admin token must be text"))?
                .trim()
                .to_string();
            if token.len() < 16 {
                return Err(ConfigError::new("control.admin_token", "the admin token must be at least 16 characters"));
            }
            token
        }
    };
    let mut cdn_hosts = Vec::new();
    for (i, h) in c.cdn_hosts.unwrap_or_default().into_iter().enumerate() {
        let ok = (h.base_url.starts_with("http://") || h.base_url.starts_with("https://"))
            && h.base_url.splitn(4, '/').nth(3).is_none_or(|rest| rest.is_empty());
        if !ok {
            return Err(ConfigError::new(
                format!("control.cdn_hosts[{i}].base_url"),
                format!("{:?} must be a bare origin like \"https://cdn.example\" (no path)", h.base_url),
            ));
        }
        let priority = u32::try_from(h.priority.unwrap_or(0))
            .map_err(|_| ConfigError::new(format!("control.cdn_hosts[{i}].priority"), "must be 0 or more"))?;
        cdn_hosts.push(crate::control::CdnHost { name: h.name, base_url: h.base_url.trim_end_matches('/').to_string(), priority });
    }
    if cdn_hosts.is_empty() {
        cdn_hosts.push(crate::control::CdnHost { name: "this-edge".into(), base_url: server.public_url.clone(), priority: 0 });
    }
    let height = |key: &str, v: Option<i64>, default: u32| match v {
        None => Ok(default),
        Some(h) if (1..=10_000).contains(&h) => Ok(h as u32),
        Some(h) => Err(ConfigError::new(format!("control.{key}"), format!("{h} is out of range 1..=10000"))),
    };
    Ok(ControlSettings {
        database: base.join(c.database.as_deref().unwrap_or("data/control.db")),
        admin_token,
        cdn_hosts,
        playback_slack: duration("control.playback_slack", c.playback_slack.as_deref(), "1h")?,
        session_ttl: duration("control.session_ttl", c.session_ttl.as_deref(), "7d")?,
        basic_max_height: height("basic_max_height", c.basic_max_height, 480)?,
        standard_max_height: height("standard_max_height", c.standard_max_height, 1080)?,
    })
}

fn tls_config(t: file::TlsSection, base: &Path) -> Result<TlsConfig, ConfigError> {
    if t.certs.is_empty() {
        return Err(ConfigError::new("tls.certs", "at least one { cert, key } pair is required"));
    }
    let certs = t.certs.iter().map(|c| crate::tls::store::CertSpec::new(base.join(&c.cert), base.join(&c.key))).collect();
    if let Some(names) = &t.dev_names {
        if names.is_empty() {
            return Err(ConfigError::new("tls.dev_names", "list at least one name, or leave it out"));
        }
    }
    Ok(TlsConfig {
        certs,
        dev_names: t.dev_names,
        reload_interval: duration("tls.reload_interval", t.reload_interval.as_deref(), "2s")?,
    })
}

fn geo_config(g: file::GeoSection, base: &Path) -> Result<GeoConfig, ConfigError> {
    use crate::geo::rules::{Action, Policy, Rule};
    let mut trusted = Vec::new();
    for (i, net) in g.trusted_proxies.unwrap_or_default().iter().enumerate() {
        trusted.push(parse_net(&format!("geo.trusted_proxies[{i}]"), net)?);
    }
    let mut rules = Vec::new();
    for (i, r) in g.rules.into_iter().enumerate() {
        let unknown = match r.unknown.as_deref() {
            None => Action::Allow,
            Some(u) => u.parse().map_err(|e: crate::geo::rules::RuleError| ConfigError::new(format!("geo.rules[{i}].unknown"), e.0))?,
        };
        rules.push(Rule { prefix: r.prefix, allow: r.allow, deny: r.deny, unknown });
    }
    let status = match g.status {
        None => None,
        Some(s) if (400..=599).contains(&s) => Some(s as u16),
        Some(s) => return Err(ConfigError::new("geo.status", format!("{s} is out of range 400..=599"))),
    };
    let policy = Policy::new(rules, status).map_err(|e| ConfigError::new("geo.rules", e.0))?;
    if !policy.rules().is_empty() && g.database.is_none() {
        return Err(ConfigError::new("geo.database", "country rules need a database"));
    }
    Ok(GeoConfig {
        database: g.database.map(|d| base.join(d)),
        trusted_proxies: trusted,
        policy,
        reload_interval: duration("geo.reload_interval", g.reload_interval.as_deref(), "10s")?,
    })
}

fn ttl_rules(raw: Vec<file::TtlRuleSection>) -> Result<Vec<TtlRule>, ConfigError> {
    let mut rules = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let key = format!("cache.rules[{i}]");
        if !r.prefix.starts_with('/') {
            return Err(ConfigError::new(format!("{key}.prefix"), format!("{:?} must start with '/'", r.prefix)));
        }
        rules.push(TtlRule {
            prefix: r.prefix,
            ttl: parse_duration(&r.ttl).map_err(|e| ConfigError::new(format!("{key}.ttl"), e))?,
            override_origin: r.override_origin.unwrap_or(false),
        });
    }
    // Longest prefix first, so the first match is the most specific.
    rules.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
    Ok(rules)
}

/// An address or network: `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a /32 or /128).
pub fn parse_net(key: &str, text: &str) -> Result<crate::net::IpNet, ConfigError> {
    crate::net::IpNet::parse(text.trim())
        .ok_or_else(|| ConfigError::new(key, format!("{text:?} is not an IP address or network like \"10.0.0.0/8\"")))
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

fn addr(key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse()
        .map_err(|_| ConfigError::new(key, format!("invalid listen address {text:?}; expected IP:port like \"127.0.0.1:8080\"")))
}

/// Origin addresses may be names; they are resolved once, here, so a bad name is a config
/// error rather than a panic inside the proxy.
fn resolve(key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(a) = text.parse() {
        return Ok(a);
    }
    if !text.contains(':') {
        return Err(ConfigError::new(key, format!("{text:?} has no port; expected host:port")));
    }
    text.to_socket_addrs()
        .map_err(|e| ConfigError::new(key, format!("cannot resolve {text:?}: {e}")))?
        .next()
        .ok_or_else(|| ConfigError::new(key, format!("{text:?} resolved to no address")))
}

/// Default `[[origins]] idle_timeout`: under the 5 s keep-alive timeout of Node.js and Apache,
/// the most common short one, so the edge drops an idle connection before the origin does.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// `[[origins]] idle_timeout`: up to an hour (origins close idle connections long before).
fn idle_timeout(key: &str, text: Option<&str>) -> Result<Duration, ConfigError> {
    let Some(text) = text else { return Ok(DEFAULT_IDLE_TIMEOUT) };
    match parse_duration(text) {
        Ok(d) if d <= Duration::from_secs(3600) => Ok(d),
        Ok(_) => Err(ConfigError::new(key, format!("{text:?} is longer than 1h"))),
        Err(e) => Err(ConfigError::new(key, e)),
    }
}

fn duration(key: &str, text: Option<&str>, default: &str) -> Result<Duration, ConfigError> {
    parse_duration(text.unwrap_or(default)).map_err(|e| ConfigError::new(key, e))
}

fn size(key: &str, text: Option<&str>, default: &str) -> Result<u64, ConfigError> {
    parse_size(text.unwrap_or(default)).map_err(|e| ConfigError::new(key, e))
}

fn default_public_url(http: SocketAddr) -> String {
    let host = match http.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
        ip if ip.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}", http.port())
}

#[cfg(test)]
mod tests;
