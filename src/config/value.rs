//! Typed values from their text in `edge.toml`, each error naming the key it came from.

use std::net::SocketAddr;
use std::time::Duration;

use super::error::ConfigError;
use super::units::{parse_duration, parse_size};

/// A listen address: `IP:port`, never a name (a listener binds one address).
pub fn addr(key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| {
        ConfigError::new(
            key,
            format!("invalid listen address {text:?}; expected IP:port like \"127.0.0.1:8080\""),
        )
    })
}

/// A duration such as `30s` or `1h 30m`, or `default` when the key is absent.
pub fn duration(key: &str, text: Option<&str>, default: &str) -> Result<Duration, ConfigError> {
    parse_duration(text.unwrap_or(default)).map_err(|e| ConfigError::new(key, e))
}

/// A byte size such as `64 MiB`, or `default` when the key is absent.
pub fn size(key: &str, text: Option<&str>, default: &str) -> Result<u64, ConfigError> {
    parse_size(text.unwrap_or(default)).map_err(|e| ConfigError::new(key, e))
}

/// An address or network: `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a /32 or /128).
pub fn net(key: &str, text: &str) -> Result<crate::net::IpNet, ConfigError> {
    crate::net::IpNet::parse(text.trim()).ok_or_else(|| {
        ConfigError::new(
            key,
            format!("{text:?} is not an IP address or network like \"10.0.0.0/8\""),
        )
    })
}

/// Every entry of a list of networks, keyed `key[i]`.
pub fn nets(key: &str, list: &[String]) -> Result<Vec<crate::net::IpNet>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, n)| net(&format!("{key}[{i}]"), n))
        .collect()
}

/// An integer in `range`, or `default` when the key is absent.
pub fn int_in(
    key: &str,
    v: Option<i64>,
    default: u32,
    range: std::ops::RangeInclusive<i64>,
) -> Result<u32, ConfigError> {
    match v {
        None => Ok(default),
        Some(n) if range.contains(&n) => Ok(n as u32),
        Some(n) => Err(ConfigError::new(
            key,
            format!("{n} is out of range {}..={}", range.start(), range.end()),
        )),
    }
}
