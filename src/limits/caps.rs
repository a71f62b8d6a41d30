//! `max_connections` and `max_connections_per_ip`: how many player connections are open, in
//! all and per client address, and the [`Permit`] that keeps one counted while it is open.
//!
//! Checked once per connection as it arrives, before anything is read from it: over a cap the
//! connection is closed at once (nginx closes at once when `worker_connections` are used up,
//! and answers 503 over a `limit_conn`). Without a cap, one address holding thousands of idle
//! or half-sent connections used up the process's file descriptors and locked every other
//! client out.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::Limit;
use crate::net::IpNet;

/// The open player connections and the caps on them.
pub struct Caps {
    /// At most this many open connections (0: no cap).
    total: usize,
    /// At most this many per address (0: no cap).
    per_address: usize,
    /// Peers the per-address cap does not apply to: trusted proxies carry many clients.
    exempt: Vec<IpNet>,
    open: AtomicUsize,
    by_address: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection, counted until this is dropped.
pub struct Permit {
    caps: Arc<Caps>,
    address: Option<IpAddr>,
}

impl Caps {
    pub fn new(total: u32, per_address: u32, exempt: Vec<IpNet>) -> Arc<Caps> {
        Arc::new(Caps {
            total: total as usize,
            per_address: per_address as usize,
            exempt,
            open: AtomicUsize::new(0),
            by_address: Mutex::new(HashMap::new()),
        })
    }

    /// Count a new connection from `peer`, or say which cap it is over.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Permit, Limit> {
        let open = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        if self.total > 0 && open > self.total {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Limit::MaxConnections);
        }
        let address = (self.per_address > 0 && !self.exempt.iter().any(|n| n.contains(peer)))
            .then(|| address_of(peer));
        if let Some(a) = address {
            let mut counts = self.counts();
            let n = counts.entry(a).or_insert(0);
            if *n >= self.per_address {
                drop(counts);
                self.open.fetch_sub(1, Ordering::AcqRel);
                return Err(Limit::MaxConnectionsPerIp);
            }
            *n += 1;
        }
        Ok(Permit {
            caps: self.clone(),
            address,
        })
    }

    /// Open connections now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    fn counts(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        // A panic elsewhere while holding the lock leaves consistent counts (each update is
        // one statement), so a poisoned lock is still usable.
        self.by_address.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(a) = self.address {
            let mut counts = self.caps.counts();
            if let Some(n) = counts.get_mut(&a) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&a);
                }
            }
        }
        self.caps.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The address a per-address cap counts: IPv4 as is (also when mapped into IPv6), IPv6 by
/// its /64 — one subscriber's network, which hands its hosts any address in it, so a cap per
/// single IPv6 address would cap nothing.
pub fn address_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// `max_connections` when the config leaves it out and the open-file limit is unknown.
const FALLBACK_TOTAL: u32 = 10_000;

/// The default `max_connections`, read at start: [`half_open_files`] of this process's limits.
pub fn default_total() -> u32 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| half_open_files(&t))
        .unwrap_or(FALLBACK_TOTAL)
}

/// The default `max_connections`: half the process's open-file limit, read from
/// `/proc/self/limits` text. Half, because a player connection that misses opens an origin
/// connection too, and the cache, listeners and admin need descriptors as well (nginx's
/// `worker_connections` likewise counts proxied connections). `None` when the text has no
/// finite limit.
pub fn half_open_files(limits: &str) -> Option<u32> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft: u64 = line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(u32::try_from(soft / 2).unwrap_or(u32::MAX).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(total: u32, per_address: u32, exempt: &[&str]) -> Arc<Caps> {
        let exempt = exempt.iter().map(|n| IpNet::parse(n).unwrap()).collect();
        Caps::new(total, per_address, exempt)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_address_cap_counts_each_address_and_frees_on_close() {
        let c = caps(0, 2, &[]);
        let a1 = c.admit(ip("10.0.0.1")).unwrap();
        let _a2 = c.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(
            c.admit(ip("10.0.0.1")).err(),
            Some(Limit::MaxConnectionsPerIp)
        );
        let _b = c
            .admit(ip("10.0.0.2"))
            .expect("another address has its own count");
        assert_eq!(c.open(), 3);
        drop(a1);
        let _a3 = c
            .admit(ip("10.0.0.1"))
            .expect("a closed connection frees its place");
        assert_eq!(c.open(), 3);
    }

    #[test]
    fn global_cap_and_release() {
        let c = caps(2, 0, &[]);
        let a = c.admit(ip("10.0.0.1")).unwrap();
        let _b = c.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(c.admit(ip("10.0.0.3")).err(), Some(Limit::MaxConnections));
        assert_eq!(c.open(), 2, "a refused connection is not counted");
        drop(a);
        assert!(c.admit(ip("10.0.0.3")).is_ok());
    }

    #[test]
    fn refused_by_address_is_not_left_counted() {
        let c = caps(10, 1, &[]);
        let _a = c.admit(ip("10.0.0.1")).unwrap();
        for _ in 0..5 {
            assert_eq!(
                c.admit(ip("10.0.0.1")).err(),
                Some(Limit::MaxConnectionsPerIp)
            );
        }
        assert_eq!(c.open(), 1);
    }

    #[test]
    fn zero_means_no_cap_and_trusted_proxies_are_exempt() {
        let c = caps(0, 0, &[]);
        let held: Vec<_> = (0..1000)
            .map(|_| c.admit(ip("10.0.0.1")).unwrap())
            .collect();
        assert_eq!(c.open(), 1000);
        drop(held);
        assert_eq!(c.open(), 0);
        let c = caps(0, 1, &["192.0.2.0/24"]);
        let _p: Vec<_> = (0..10)
            .map(|_| c.admit(ip("192.0.2.7")).expect("trusted proxy"))
            .collect();
        assert!(c.counts().is_empty(), "exempt peers are not tracked");
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(address_of(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            address_of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(address_of(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(address_of(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(address_of(ip("192.0.2.1")), ip("192.0.2.1"));
        let c = caps(0, 1, &[]);
        let _a = c.admit(ip("2001:db8::1")).unwrap();
        assert_eq!(
            c.admit(ip("2001:db8::2")).err(),
            Some(Limit::MaxConnectionsPerIp)
        );
        assert!(c.admit(ip("2001:db8:0:1::1")).is_ok());
    }

    #[test]
    fn default_cap_is_half_the_open_file_limit() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max open files            20000                524288               files     \n";
        assert_eq!(half_open_files(text), Some(10000));
        assert_eq!(
            half_open_files(
                "Max open files            unlimited            unlimited            files\n"
            ),
            None
        );
        assert_eq!(half_open_files(""), None);
        assert_eq!(
            half_open_files(
                "Max open files            1                    1                    files\n"
            ),
            Some(1)
        );
    }
}
