//! `[[origins]]`: origin pools, their nodes and health checks. Parsing checks every value;
//! [`OriginPool::resolve`] looks up node names and reads `ca_file` at start-up.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::demo::DemoConfig;
use super::error::ConfigError;
use super::file::{HealthSection, NodeSection, OriginSection, PassiveSection};
use super::stage::{check_host_port, resolve_host_port, Loaded, Parsed, Pending, Stage};
use super::value::{duration, int_in};

#[derive(Debug, Clone)]
pub struct OriginPool<S: Stage = Loaded> {
    pub name: String,
    pub priority: u32,
    pub nodes: Vec<OriginNode<S>>,
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
    pub ca: Option<S::Ca>,
}

#[derive(Debug, Clone)]
pub struct OriginNode<S: Stage = Loaded> {
    pub addr: S::NodeAddr,
    pub weight: u32,
    /// Host header sent to this node (default: the client's Host).
    pub host: Option<String>,
    /// Connect with TLS (certificate verified against `ca_file` or the system roots).
    pub tls: bool,
    /// SNI and verified name (default: `host`, else the address's host name).
    pub sni: Option<String>,
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

impl Default for PassiveHealth {
    fn default() -> Self {
        PassiveHealth {
            max_failures: 3,
            ejection: Duration::from_secs(5),
            max_ejection: Duration::from_secs(60),
        }
    }
}

/// Validate `[[origins]]`: pools sorted by priority, names unique. Without pools, `[demo]`
/// (when on) is the one origin.
pub fn build(
    raw: Vec<OriginSection>,
    base: &Path,
    demo: Option<&DemoConfig>,
) -> Result<Vec<OriginPool<Parsed>>, ConfigError> {
    let mut origins = raw
        .into_iter()
        .enumerate()
        .map(|(i, o)| pool(i, o, base))
        .collect::<Result<Vec<_>, _>>()?;
    if origins.is_empty() {
        let Some(d) = demo else {
            return Err(ConfigError::new(
                "origins",
                "at least one [[origins]] pool is required (or enable [demo])",
            ));
        };
        origins.push(OriginPool {
            name: "demo".into(),
            priority: 0,
            nodes: vec![OriginNode {
                addr: Pending {
                    key: "demo.listen".into(),
                    source: d.listen.to_string(),
                },
                weight: 100,
                host: None,
                tls: false,
                sni: None,
            }],
            connect_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_secs(10),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            retries: 0,
            load_factor: 1.25,
            health: None,
            passive: PassiveHealth::default(),
            ca: None,
        });
    }
    let mut names: Vec<&str> = origins.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(ConfigError::new(
            "origins",
            format!("pool name {:?} is used twice", w[0]),
        ));
    }
    origins.sort_by_key(|p| p.priority);
    Ok(origins)
}

fn pool(i: usize, o: OriginSection, base: &Path) -> Result<OriginPool<Parsed>, ConfigError> {
    let key = format!("origins[{i}]");
    if o.name.trim().is_empty() {
        return Err(ConfigError::new(format!("{key}.name"), "must not be empty"));
    }
    let priority = int_in(&format!("{key}.priority"), o.priority, 0, 0..=1000)?;
    if o.nodes.is_empty() {
        return Err(ConfigError::new(
            format!("{key}.nodes"),
            "a pool needs at least one node",
        ));
    }
    let nodes = o
        .nodes
        .into_iter()
        .enumerate()
        .map(|(j, n)| node(&format!("{key}.nodes[{j}]"), n))
        .collect::<Result<Vec<_>, _>>()?;
    let retries = match o.retries {
        None => nodes.len() - 1,
        Some(r) => int_in(&format!("{key}.retries"), Some(r), 0, 0..=100)? as usize,
    };
    let load_factor = match o.load_factor.unwrap_or(1.25) {
        f if (1.0..=100.0).contains(&f) => f,
        f => {
            return Err(ConfigError::new(
                format!("{key}.load_factor"),
                format!("{f} is out of range 1.0..=100.0"),
            ))
        }
    };
    Ok(OriginPool {
        name: o.name,
        priority,
        nodes,
        ca: o.ca_file.map(|f| Pending {
            key: format!("{key}.ca_file"),
            source: base.join(f),
        }),
        connect_timeout: duration(
            &format!("{key}.connect_timeout"),
            o.connect_timeout.as_deref(),
            "2s",
        )?,
        read_timeout: duration(
            &format!("{key}.read_timeout"),
            o.read_timeout.as_deref(),
            "10s",
        )?,
        idle_timeout: idle_timeout(&format!("{key}.idle_timeout"), o.idle_timeout.as_deref())?,
        retries,
        load_factor,
        health: o
            .health
            .map(|h| health(&format!("{key}.health"), h))
            .transpose()?,
        passive: o
            .passive
            .map(|p| passive(&format!("{key}.passive"), p))
            .transpose()?
            .unwrap_or_default(),
    })
}

fn node(key: &str, n: NodeSection) -> Result<OriginNode<Parsed>, ConfigError> {
    let weight = int_in(&format!("{key}.weight"), n.weight, 100, 1..=10_000)?;
    let addr_key = format!("{key}.addr");
    check_host_port(&addr_key, &n.addr)?;
    // A name in `addr` is the default SNI for a TLS node.
    let name = n
        .addr
        .rsplit_once(':')
        .map(|(h, _)| h.trim_matches(|c| c == '[' || c == ']').to_string());
    let sni = n
        .sni
        .or_else(|| n.host.clone())
        .or_else(|| name.filter(|h| h.parse::<std::net::IpAddr>().is_err()));
    Ok(OriginNode {
        addr: Pending {
            key: addr_key,
            source: n.addr,
        },
        weight,
        host: n.host,
        tls: n.tls.unwrap_or(false),
        sni,
    })
}

fn health(key: &str, h: HealthSection) -> Result<HealthCheck, ConfigError> {
    let path = h.path.unwrap_or_else(|| "/healthz".into());
    if !path.starts_with('/') {
        return Err(ConfigError::new(
            format!("{key}.path"),
            format!("{path:?} must start with '/'"),
        ));
    }
    Ok(HealthCheck {
        path,
        interval: duration(&format!("{key}.interval"), h.interval.as_deref(), "2s")?,
        timeout: duration(&format!("{key}.timeout"), h.timeout.as_deref(), "1s")?,
        healthy_threshold: int_in(
            &format!("{key}.healthy_threshold"),
            h.healthy_threshold,
            2,
            1..=100,
        )?,
        unhealthy_threshold: int_in(
            &format!("{key}.unhealthy_threshold"),
            h.unhealthy_threshold,
            2,
            1..=100,
        )?,
    })
}

fn passive(key: &str, p: PassiveSection) -> Result<PassiveHealth, ConfigError> {
    Ok(PassiveHealth {
        max_failures: int_in(&format!("{key}.max_failures"), p.max_failures, 3, 1..=1000)?,
        ejection: duration(&format!("{key}.ejection"), p.ejection.as_deref(), "5s")?,
        max_ejection: duration(
            &format!("{key}.max_ejection"),
            p.max_ejection.as_deref(),
            "60s",
        )?,
    })
}

impl OriginPool<Parsed> {
    /// Look up the nodes' names and read `ca_file` (start-up I/O).
    pub fn resolve(self) -> Result<OriginPool, ConfigError> {
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for n in self.nodes {
            let addr = resolve_host_port(&n.addr.key, &n.addr.source)?;
            nodes.push(OriginNode {
                addr,
                weight: n.weight,
                host: n.host,
                tls: n.tls,
                sni: n.sni,
            });
        }
        let ca = match self.ca {
            None => None,
            Some(Pending { key, source }) => {
                let ders = crate::tls::origin::load_ca_file(&source)
                    .map_err(|e| ConfigError::new(key, e.to_string()))?;
                Some(Arc::new(
                    ders.into_iter().map(|d| d.as_ref().to_vec()).collect(),
                ))
            }
        };
        Ok(OriginPool {
            name: self.name,
            priority: self.priority,
            nodes,
            connect_timeout: self.connect_timeout,
            read_timeout: self.read_timeout,
            idle_timeout: self.idle_timeout,
            retries: self.retries,
            load_factor: self.load_factor,
            health: self.health,
            passive: self.passive,
            ca,
        })
    }
}

/// Default `[[origins]] idle_timeout`: under the 5 s keep-alive timeout of Node.js and Apache,
/// the most common short one, so the edge drops an idle connection before the origin does.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// `[[origins]] idle_timeout`: up to an hour (origins close idle connections long before).
fn idle_timeout(key: &str, text: Option<&str>) -> Result<Duration, ConfigError> {
    let Some(text) = text else {
        return Ok(DEFAULT_IDLE_TIMEOUT);
    };
    match super::units::parse_duration(text) {
        Ok(d) if d <= Duration::from_secs(3600) => Ok(d),
        Ok(_) => Err(ConfigError::new(key, format!("{text:?} is longer than 1h"))),
        Err(e) => Err(ConfigError::new(key, e)),
    }
}
