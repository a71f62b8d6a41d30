//! The client address behind trusted proxies (`X-Forwarded-For`).

use std::net::{IpAddr, SocketAddr};

use crate::net::IpNet;

/// The address to geolocate for a request from `peer` carrying `xff` (the
/// `X-Forwarded-For` value; several headers joined with `,` in order).
///
/// - `peer` not in `trusted`: `peer`. The header is ignored, since anyone can send one.
/// - `peer` trusted: walk the header from the right (the entry the trusted peer appended)
///   and return the first address that is not in `trusted`; when every entry is trusted,
///   the left-most one. A malformed entry ends the walk at the last good address (the
///   trusted one to its right, or `peer`). Empty list elements are skipped.
///
/// Entries may be bare addresses, `[v6]`, `[v6]:port` or `v4:port`. IPv4-mapped IPv6
/// (`::ffff:1.2.3.4`) counts as the IPv4 address, for `peer`, entries and the result.
pub fn client_ip(peer: IpAddr, xff: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let Some(xff) = xff else {
        return peer;
    };
    let mut last_good = peer;
    for entry in xff.rsplit(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let Some(ip) = parse_entry(entry) else {
            return last_good;
        };
        if !is_trusted(ip, trusted) {
            return ip;
        }
        last_good = ip;
    }
    last_good
}

/// `ip` (canonicalised) is inside one of `trusted`.
pub fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|net| net.contains(ip))
}

fn parse_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(inner) = entry.strip_prefix('[').and_then(|e| e.strip_suffix(']')) {
        return inner.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    }
    // `1.2.3.4:5678` or `[2001:db8::1]:443`
    entry
        .parse::<SocketAddr>()
        .ok()
        .map(|sa| sa.ip().to_canonical())
}
