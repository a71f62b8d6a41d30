//! `[server]`: this node's role, listeners, threads and shutdown timings.

use std::net::SocketAddr;
use std::time::Duration;

use super::error::ConfigError;
use super::file::ServerSection;
use super::value::{addr, duration, int_in, size};
use crate::limits::size::HeadLimits;

/// Whether this node faces players (`edge`) or other edges (`shield`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Edge,
    Shield,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Edge => "edge",
            Role::Shield => "shield",
        }
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
    /// Answer fresh memory-tier hits in the player front (`proxy::front`) rather than through
    /// the full proxy pipeline.
    pub fast_hits: bool,
    /// Player connection limits.
    pub limits: ConnectionLimits,
    /// Request head size limits (414/431).
    pub head: HeadLimits,
    /// Unkeyed forwarding fields (lower-case) passed on to origins rather than removed
    /// ([`crate::hop::strip_unkeyed`]).
    pub forward_headers: Vec<String>,
    /// Path prefixes where `Upgrade` is forwarded (a tunnel after a `101`); empty: nowhere.
    pub upgrade_prefixes: Vec<String>,
    /// The unix socket a new process (`edge serve --upgrade`) takes the listeners over on;
    /// default `upgrade.sock` in the cache folder ([`upgrade_socket`]).
    pub upgrade_socket: std::path::PathBuf,
}

/// `max_request_line`, `max_header_field`, `max_head`: each 256 bytes to Pingora's 1 MiB head,
/// the head at least as large as a line.
fn head_limits(s: &ServerSection) -> Result<HeadLimits, ConfigError> {
    let d = HeadLimits::default();
    let one = |key: &str, text: Option<&str>, default: usize| -> Result<usize, ConfigError> {
        let n = size(key, text, &default.to_string())?;
        if !(256..=crate::limits::head::PIPELINE_HEAD_MAX as u64).contains(&n) {
            return Err(ConfigError::new(
                key,
                format!("{n} bytes is out of range 256 B..=1 MiB"),
            ));
        }
        Ok(n as usize)
    };
    let h = HeadLimits {
        max_request_line: one(
            "server.max_request_line",
            s.max_request_line.as_deref(),
            d.max_request_line,
        )?,
        max_header_field: one(
            "server.max_header_field",
            s.max_header_field.as_deref(),
            d.max_header_field,
        )?,
        max_head: one("server.max_head", s.max_head.as_deref(), d.max_head)?,
    };
    if h.max_head < h.max_request_line.max(h.max_header_field) {
        return Err(ConfigError::new(
            "server.max_head",
            "must be at least max_request_line and max_header_field",
        ));
    }
    Ok(h)
}

/// `forward_headers`: names from [`crate::hop::UNKEYED`] (every other field is forwarded
/// anyway), lower-cased.
fn forward_headers(list: Option<&[String]>) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    for (i, name) in list.unwrap_or_default().iter().enumerate() {
        let lower = name.trim().to_ascii_lowercase();
        if !crate::hop::UNKEYED.contains(&lower.as_str()) {
            return Err(ConfigError::new(
                format!("server.forward_headers[{i}]"),
                format!(
                    "{name:?} is not a field the edge removes; the list takes: {}",
                    crate::hop::UNKEYED.join(", ")
                ),
            ));
        }
        out.push(lower);
    }
    Ok(out)
}

/// `upgrade_prefixes`: path prefixes, each starting with `/`.
fn upgrade_prefixes(list: Option<&[String]>) -> Result<Vec<String>, ConfigError> {
    let list = list.unwrap_or_default();
    for (i, p) in list.iter().enumerate() {
        if !p.starts_with('/') {
            return Err(ConfigError::new(
                format!("server.upgrade_prefixes[{i}]"),
                format!("{p:?} must start with '/'"),
            ));
        }
    }
    Ok(list.to_vec())
}

/// What one player connection may take (`crate::limits` applies them): how long a request
/// head and a stalled response write may last, and how many connections are open at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A request head must arrive whole within this long, counted from the connection's start
    /// (its first request) or from the head's first byte (later requests).
    pub header_timeout: Duration,
    /// A response write that makes no progress for this long closes the connection.
    pub send_timeout: Duration,
    /// Open player connections at most; `None`: half the process's file descriptor limit,
    /// read at start; `Some(0)`: no cap.
    pub max_connections: Option<u32>,
    /// Open connections per client address (IPv6: per /64) at most; 0: no cap.
    pub max_connections_per_ip: u32,
}

impl ConnectionLimits {
    fn build(s: &ServerSection) -> Result<Self, ConfigError> {
        let positive =
            |key: &str, text: Option<&str>, default: &str| -> Result<Duration, ConfigError> {
                let d = duration(key, text, default)?;
                if d.is_zero() {
                    return Err(ConfigError::new(key, "must be greater than 0"));
                }
                Ok(d)
            };
        Ok(ConnectionLimits {
            header_timeout: positive("server.header_timeout", s.header_timeout.as_deref(), "20s")?,
            send_timeout: positive("server.send_timeout", s.send_timeout.as_deref(), "60s")?,
            max_connections: s
                .max_connections
                .map(|n| int_in("server.max_connections", Some(n), 0, 0..=10_000_000))
                .transpose()?,
            max_connections_per_ip: int_in(
                "server.max_connections_per_ip",
                s.max_connections_per_ip,
                256,
                0..=10_000_000,
            )?,
        })
    }
}

impl TryFrom<ServerSection> for ServerConfig {
    type Error = ConfigError;

    fn try_from(s: ServerSection) -> Result<Self, ConfigError> {
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
        let admin = addr(
            "server.admin",
            s.admin.as_deref().unwrap_or("127.0.0.1:9090"),
        )?;
        if admin == http {
            return Err(ConfigError::new(
                "server.admin",
                "must differ from server.http",
            ));
        }
        let threads = match s.threads {
            None => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            Some(n) if (1..=1024).contains(&n) => n as usize,
            Some(n) => {
                return Err(ConfigError::new(
                    "server.threads",
                    format!("{n} is out of range 1..=1024"),
                ))
            }
        };
        let https = s
            .https
            .as_deref()
            .map(|a| addr("server.https", a))
            .transpose()?;
        if https.is_some_and(|h| h == http || h == admin) {
            return Err(ConfigError::new(
                "server.https",
                "must differ from server.http and server.admin",
            ));
        }
        let limits = ConnectionLimits::build(&s)?;
        Ok(ServerConfig {
            // Resolved against the config's folder and the cache folder by the caller.
            upgrade_socket: s.upgrade_socket.clone().map(Into::into).unwrap_or_default(),
            limits,
            head: head_limits(&s)?,
            forward_headers: forward_headers(s.forward_headers.as_deref())?,
            upgrade_prefixes: upgrade_prefixes(s.upgrade_prefixes.as_deref())?,
            role,
            http,
            admin,
            threads,
            grace_period: duration("server.grace_period", s.grace_period.as_deref(), "10s")?,
            shutdown_timeout: duration(
                "server.shutdown_timeout",
                s.shutdown_timeout.as_deref(),
                "5s",
            )?,
            public_url: public_url(s.public_url, http)?,
            https,
            name: match s.name {
                Some(n)
                    if !n.is_empty()
                        && n.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) =>
                {
                    n
                }
                Some(n) => {
                    return Err(ConfigError::new(
                        "server.name",
                        format!("{n:?} must be letters, digits, '-', '_' or '.'"),
                    ))
                }
                None => format!("edge-{}", http.port()),
            },
            fast_hits: s.fast_hits.unwrap_or(true),
        })
    }
}

/// Longest unix socket path Linux takes (`sun_path` is 108 bytes with its NUL).
const SOCKET_PATH_MAX: usize = 107;

/// `server.upgrade_socket`: as given (relative to the config's folder `base`), else
/// `upgrade.sock` in the cache folder — one edge per cache folder, so one socket per edge.
pub fn upgrade_socket(
    given: &std::path::Path,
    base: &std::path::Path,
    cache_dir: &std::path::Path,
) -> Result<std::path::PathBuf, ConfigError> {
    let path = if given.as_os_str().is_empty() {
        cache_dir.join("upgrade.sock")
    } else {
        base.join(given)
    };
    let len = path.as_os_str().len();
    if len > SOCKET_PATH_MAX {
        let why = if given.as_os_str().is_empty() {
            " (the default, in cache.dir)"
        } else {
            ""
        };
        return Err(ConfigError::new(
            "server.upgrade_socket",
            format!(
                "{}{why} is {len} bytes; a unix socket path has at most {SOCKET_PATH_MAX}: set a shorter path",
                path.display()
            ),
        ));
    }
    Ok(path)
}

fn public_url(given: Option<String>, http: SocketAddr) -> Result<String, ConfigError> {
    match given {
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
            Ok(u.trim_end_matches('/').to_string())
        }
        Some(u) => Err(ConfigError::new(
            "server.public_url",
            format!("{u:?} must start with http:// or https://"),
        )),
        None => Ok(default_public_url(http)),
    }
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
