//! The file format of `edge.toml`: serde structs that mirror the file one to one.
//!
//! Every struct denies unknown fields, so a typo is an error that names the key. Values stay
//! close to their text form here (durations and sizes are strings); each section's module
//! (`super::server`, `super::cache`, ...) turns its section into typed, validated values.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub cache: CacheSection,
    #[serde(default)]
    pub cors: CorsSection,
    #[serde(default)]
    pub purge: PurgeSection,
    pub tokens: Option<TokensSection>,
    pub tls: Option<TlsSection>,
    pub geo: Option<GeoSection>,
    pub control: Option<ControlSection>,
    #[serde(default)]
    pub origins: Vec<OriginSection>,
    pub demo: Option<DemoSection>,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub cmcd: CmcdSection,
    #[serde(default)]
    pub prefetch: Vec<PrefetchSection>,
}

/// `[[prefetch]]`: next-segment prefetch under a path prefix (`super::prefetch`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefetchSection {
    pub prefix: String,
    pub segments: Option<i64>,
    pub concurrency: Option<i64>,
    pub max_bytes: Option<String>,
    pub pause: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub role: Option<String>,
    pub http: Option<String>,
    pub admin: Option<String>,
    pub threads: Option<i64>,
    pub grace_period: Option<String>,
    pub shutdown_timeout: Option<String>,
    pub public_url: Option<String>,
    pub name: Option<String>,
    pub https: Option<String>,
    pub fast_hits: Option<bool>,
    pub header_timeout: Option<String>,
    pub send_timeout: Option<String>,
    pub max_connections: Option<i64>,
    pub max_connections_per_ip: Option<i64>,
    pub max_request_line: Option<String>,
    pub max_header_field: Option<String>,
    pub max_head: Option<String>,
    pub forward_headers: Option<Vec<String>>,
    pub upgrade_prefixes: Option<Vec<String>>,
    pub upgrade_socket: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSection {
    pub memory: Option<String>,
    pub dir: Option<String>,
    pub disk: Option<String>,
    pub max_object: Option<String>,
    pub lock_timeout: Option<String>,
    pub fill_memory: Option<String>,
    pub fill_stall: Option<String>,
    pub default_ttl: Option<String>,
    pub negative_ttl: Option<String>,
    pub stale_while_revalidate: Option<String>,
    pub stale_if_error: Option<String>,
    pub stale_timeout: Option<String>,
    pub max_ttl: Option<String>,
    pub vod_playlist_ttl: Option<String>,
    pub live_playlist_fraction: Option<f64>,
    pub disk_admission: Option<String>,
    pub targeted_field: Option<String>,
    #[serde(default)]
    pub rules: Vec<TtlRuleSection>,
    /// Send players' CMCD (`CMCD=` query parameter, `CMCD-*` headers) on to the origin.
    pub forward_cmcd: Option<bool>,
    #[serde(default)]
    pub keys: Vec<KeyRuleSection>,
    #[serde(default)]
    pub slices: Vec<SliceRuleSection>,
}

/// `[[cache.slices]]`: objects under a path prefix fetched and cached in slices of `size`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SliceRuleSection {
    pub prefix: String,
    pub size: String,
}

/// `[[cache.keys]]`: which query parameters make up the cache key under a path prefix.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRuleSection {
    pub prefix: String,
    /// `"all"` or `"none"`.
    pub query: Option<String>,
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TtlRuleSection {
    pub prefix: String,
    pub ttl: String,
    pub override_origin: Option<bool>,
}

/// `[log]`: the access log.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// `"off"`, `"stdout"` or a file path.
    pub access: Option<String>,
    /// `"json"` or `"text"`.
    pub format: Option<String>,
    pub hit_sample: Option<f64>,
    pub buffer: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeSection {
    pub allow: Option<Vec<String>>,
    /// The fleet's PostgreSQL URL, or `"off"` (src/fleet/).
    pub fleet: Option<String>,
    /// How often the fleet's bans table is polled (a duration).
    pub fleet_poll: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmcdSection {
    /// Path prefixes the CMCD metrics are labelled by.
    pub prefixes: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSection {
    pub allow_origins: Option<Vec<String>>,
    pub max_age: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginSection {
    pub name: String,
    pub priority: Option<i64>,
    pub nodes: Vec<NodeSection>,
    pub connect_timeout: Option<String>,
    pub read_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub retries: Option<i64>,
    pub load_factor: Option<f64>,
    pub ca_file: Option<String>,
    pub health: Option<HealthSection>,
    pub passive: Option<PassiveSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSection {
    pub path: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub healthy_threshold: Option<i64>,
    pub unhealthy_threshold: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassiveSection {
    pub max_failures: Option<i64>,
    pub ejection: Option<String>,
    pub max_ejection: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    pub addr: String,
    pub weight: Option<i64>,
    pub host: Option<String>,
    pub tls: Option<bool>,
    pub sni: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoSection {
    pub enabled: Option<bool>,
    pub listen: Option<String>,
    pub media: Option<String>,
    pub title: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensSection {
    pub required: Option<bool>,
    pub param: Option<String>,
    pub cookie: Option<String>,
    pub leeway: Option<String>,
    pub max_ttl: Option<String>,
    pub current: Option<String>,
    #[serde(default)]
    pub keys: Vec<TokenKeySection>,
    pub public: Option<Vec<String>>,
    pub edgeauth: Option<EdgeAuthSection>,
    pub cloudfront: Option<CloudFrontSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudFrontSection {
    #[serde(default)]
    pub keys: Vec<CloudFrontKeySection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudFrontKeySection {
    pub id: String,
    pub public_key_file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenKeySection {
    pub id: String,
    pub secret_file: Option<String>,
    pub secret_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeAuthSection {
    pub param: Option<String>,
    pub key_file: Option<String>,
    pub key_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    #[serde(default)]
    pub certs: Vec<CertSection>,
    /// Generate a development CA + certificate for these names when the first cert is missing.
    pub dev_names: Option<Vec<String>>,
    pub reload_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertSection {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoSection {
    pub database: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub status: Option<i64>,
    pub reload_interval: Option<String>,
    #[serde(default)]
    pub rules: Vec<GeoRuleSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoRuleSection {
    pub prefix: String,
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
    pub unknown: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlSection {
    pub enabled: Option<bool>,
    pub database: Option<String>,
    pub admin_token_file: Option<String>,
    pub admin_token_env: Option<String>,
    pub cdn_hosts: Option<Vec<CdnHostSection>>,
    pub playback_slack: Option<String>,
    pub session_ttl: Option<String>,
    pub basic_max_height: Option<i64>,
    pub standard_max_height: Option<i64>,
    pub login_failures_per_account: Option<i64>,
    pub login_failures_per_address: Option<i64>,
    pub login_window: Option<String>,
    pub registrations_per_address: Option<i64>,
    pub registration_window: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdnHostSection {
    pub name: String,
    pub base_url: String,
    pub priority: Option<i64>,
}
