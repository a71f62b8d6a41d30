//! Origin choice. For now: pools in priority order, one node per object within a pool
//! (by a stable hash of the path), connect failures moving to the next node, then the next
//! pool. Weighted consistent hashing and health come with the origin-selection work.

use std::time::Duration;

use pingora_core::upstreams::peer::{HttpPeer, Peer};

use crate::config::OriginPool;

/// All configured pools, in priority order.
pub struct Upstreams {
    pools: Vec<OriginPool>,
    /// Every node of every pool, flattened in try order for one key.
    total_nodes: usize,
}

/// The node chosen for one attempt.
#[derive(Debug, Clone)]
pub struct Choice {
    pool: usize,
    node: usize,
    pool_name: String,
    addr: std::net::SocketAddr,
}

impl Choice {
    pub fn pool_name(&self) -> &str {
        &self.pool_name
    }

    pub fn node_label(&self) -> String {
        self.addr.to_string()
    }
}

/// FNV-1a: stable across processes, so every edge maps a path to the same node.
fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

impl Upstreams {
    pub fn new(pools: Vec<OriginPool>) -> Self {
        let total_nodes = pools.iter().map(|p| p.nodes.len()).sum();
        Upstreams { pools, total_nodes }
    }

    /// How many attempts one request may make: each node once.
    pub fn max_tries(&self) -> usize {
        self.total_nodes.max(1)
    }

    /// The node for attempt number `attempt` (0-based) of the object at `path`.
    pub fn choose(&self, path: &str, attempt: usize) -> Option<Choice> {
        let mut remaining = attempt;
        for (pi, pool) in self.pools.iter().enumerate() {
            let n = pool.nodes.len();
            if remaining < n {
                let start = (stable_hash(path) % n as u64) as usize;
                let ni = (start + remaining) % n;
                return Some(Choice { pool: pi, node: ni, pool_name: pool.name.clone(), addr: pool.nodes[ni].addr });
            }
            remaining -= n;
        }
        None
    }

    /// The Pingora peer for a choice, with the pool's timeouts.
    pub fn peer(&self, c: &Choice) -> Box<HttpPeer> {
        let pool = &self.pools[c.pool];
        let mut peer = HttpPeer::new(c.addr, false, String::new());
        let opts = &mut peer.options;
        opts.connection_timeout = Some(pool.connect_timeout);
        opts.total_connection_timeout = Some(pool.connect_timeout + Duration::from_millis(500));
        opts.read_timeout = Some(pool.read_timeout);
        opts.write_timeout = Some(pool.read_timeout);
        opts.idle_timeout = Some(Duration::from_secs(60));
        debug_assert!(peer.address().as_inet().is_some());
        Box::new(peer)
    }

    /// The Host header configured for this node, if any.
    pub fn host_override(&self, c: &Choice) -> Option<&str> {
        self.pools.get(c.pool)?.nodes.get(c.node)?.host.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OriginNode;

    fn pool(name: &str, ports: &[u16]) -> OriginPool {
        OriginPool {
            name: name.into(),
            priority: 0,
            nodes: ports
                .iter()
                .map(|p| OriginNode { addr: format!("127.0.0.1:{p}").parse().unwrap(), weight: 100, host: None })
                .collect(),
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn attempts_walk_every_node_once_then_stop() {
        let u = Upstreams::new(vec![pool("a", &[1, 2]), pool("b", &[3])]);
        assert_eq!(u.max_tries(), 3);
        let mut seen: Vec<_> = (0..3).map(|i| u.choose("/v/x.ts", i).unwrap().addr.port()).collect();
        assert_eq!(seen[2], 3, "the second pool comes after every node of the first");
        seen.sort();
        assert_eq!(seen, vec![1, 2, 3]);
        assert!(u.choose("/v/x.ts", 3).is_none());
    }

    #[test]
    fn same_path_same_node() {
        let u = Upstreams::new(vec![pool("a", &[1, 2, 3, 4])]);
        let first = u.choose("/v/seg1.ts", 0).unwrap().addr;
        for _ in 0..10 {
            assert_eq!(u.choose("/v/seg1.ts", 0).unwrap().addr, first);
        }
    }
}
