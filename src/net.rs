//! IP networks (CIDR prefixes): the token `ip` claim, `[purge] allow`, `[geo] trusted_proxies`.
//!
//! One type for all three, because a dual-stack listener reports IPv4 clients as
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`): [`IpNet::contains`] matches them against
//! IPv4 networks (and the other way round) everywhere.

use std::fmt;
use std::net::IpAddr;

/// An IP network: an address and a prefix length (a bare address is a full-length prefix).
/// Host bits below the prefix are ignored. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) match
/// the corresponding IPv4 network and vice versa, since dual-stack sockets report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `203.0.113.7`, `203.0.113.0/24`, `2001:db8::1`, `2001:db8::/32`.
    pub fn parse(s: &str) -> Option<IpNet> {
        let (addr, prefix) = match s.split_once('/') {
            None => (s, None),
            Some((a, p)) => (a, Some(p)),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix {
            None => max,
            Some(p) => {
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let p: u8 = p.parse().ok()?;
                if p > max {
                    return None;
                }
                p
            }
        };
        Some(IpNet { addr, prefix })
    }

    /// The network address as written (host bits not cleared).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies inside this network (IPv4-mapped IPv6 handled both ways).
    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.contains_same_family(ip) {
            return true;
        }
        let alt = match ip {
            IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
        };
        self.contains_same_family(alt)
    }

    fn contains_same_family(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}
