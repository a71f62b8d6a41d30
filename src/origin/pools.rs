//! The origin pools of one edge: which node each attempt of a request goes to.
//!
//! Pools are tried in priority order. Within a pool the object's key picks its node on a
//! weighted consistent-hash ring with bounded loads ([`super::ring`]), skipping nodes that
//! are down, ejected, or already tried by this request; after `retries` further nodes the
//! request moves to the next pool (multi-CDN failover). When health says no node anywhere is
//! usable, untried nodes are still tried in ring order: trying beats failing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pingora_core::upstreams::peer::HttpPeer;

use super::health::{now_ms, NodeHealth};
use super::ring::{InFlight, InFlightGuard, NodeSpec, Ring};
use crate::config::OriginPool;

/// In-flight requests on a node below which its objects never overflow to other nodes.
pub const BALANCE_FLOOR: u64 = 16;

/// One pool with its ring, health and in-flight counters.
pub struct Pool {
    pub cfg: OriginPool,
    /// The pool's CA certificates in Pingora's form, parsed once.
    ca: Option<Arc<pingora_core::protocols::tls::CaType>>,
    ring: Ring,
    inflight: Arc<InFlight>,
    pub health: Vec<Arc<NodeHealth>>,
}

/// All pools, in priority order.
pub struct Pools {
    pub pools: Vec<Pool>,
}

/// The node chosen for one attempt. Holds the node's in-flight slot until dropped.
#[derive(Debug)]
pub struct Choice {
    pub pool: usize,
    pub node: usize,
    pub addr: SocketAddr,
    pool_name: String,
    _slot: InFlightGuard,
}

impl Choice {
    pub fn pool_name(&self) -> &str {
        &self.pool_name
    }

    pub fn node_label(&self) -> String {
        self.addr.to_string()
    }
}

impl Pools {
    pub fn new(cfg: Vec<OriginPool>) -> Pools {
        let pools = cfg
            .into_iter()
            .map(|p| {
                let specs: Vec<NodeSpec> = p
                    .nodes
                    .iter()
                    .map(|n| NodeSpec {
                        id: n.addr.to_string(),
                        weight: n.weight,
                    })
                    .collect();
                let ca = p.ca.as_ref().map(|ders| {
                    let certs: Vec<pingora_core::utils::tls::WrappedX509> = ders
                        .iter()
                        .map(|d| {
                            pingora_core::utils::tls::WrappedX509::new(
                                d.clone(),
                                pingora_core::utils::tls::parse_x509,
                            )
                        })
                        .collect();
                    // Each certificate was parsed when the config was loaded.
                    Arc::<pingora_core::protocols::tls::CaType>::from(certs.into_boxed_slice())
                });
                Pool {
                    ca,
                    ring: Ring::new(&specs),
                    inflight: Arc::new(InFlight::new(specs.len())),
                    health: specs
                        .iter()
                        .map(|_| Arc::new(NodeHealth::default()))
                        .collect(),
                    cfg: p,
                }
            })
            .collect();
        Pools { pools }
    }

    /// Upper bound on attempts for one request: per pool, 1 + retries (at most its nodes).
    pub fn max_tries(&self) -> usize {
        self.pools
            .iter()
            .map(|p| (p.cfg.retries + 1).min(p.cfg.nodes.len()))
            .sum::<usize>()
            .max(1)
    }

    /// The node for the next attempt of the object with `key`, given the nodes already tried.
    pub fn choose(&self, key: &[u8], tried: &[(usize, usize)]) -> Option<Choice> {
        let hash = Ring::hash_key(key);
        let now = now_ms();
        let tried_in = |p: usize| tried.iter().filter(|(tp, _)| *tp == p).count();
        let untried = |p: usize, n: usize| !tried.contains(&(p, n));
        for (pi, pool) in self.pools.iter().enumerate() {
            if tried_in(pi) > pool.cfg.retries {
                continue;
            }
            let eligible =
                |n: usize| untried(pi, n) && pool.health.get(n).is_some_and(|h| h.usable(now));
            // Bounded loads only once the object's own node is busy: at light load every
            // object stays on its node, which is what lets a shield tier fetch it once.
            let primary = pool.ring.candidates(hash).find(|&n| eligible(n));
            let pick = match primary {
                Some(n) if pool.inflight.get(n) < BALANCE_FLOOR => Some(n),
                _ => pool.ring.select(
                    hash,
                    eligible,
                    |n| pool.inflight.get(n),
                    pool.cfg.load_factor,
                ),
            };
            if let Some(n) = pick {
                return self.choice(pi, n);
            }
        }
        // Nothing healthy: try what has not been tried, in ring order.
        for (pi, pool) in self.pools.iter().enumerate() {
            if tried_in(pi) > pool.cfg.retries {
                continue;
            }
            if let Some(n) = pool.ring.candidates(hash).find(|&n| untried(pi, n)) {
                return self.choice(pi, n);
            }
        }
        None
    }

    /// Whether another attempt could go somewhere after `tried`.
    pub fn has_alternative(&self, key: &[u8], tried: &[(usize, usize)]) -> bool {
        tried.len() < self.max_tries() && self.choose(key, tried).is_some()
    }

    fn choice(&self, pool: usize, node: usize) -> Option<Choice> {
        let p = self.pools.get(pool)?;
        let n = p.cfg.nodes.get(node)?;
        Some(Choice {
            pool,
            node,
            addr: n.addr,
            pool_name: p.cfg.name.clone(),
            _slot: p.inflight.acquire(node),
        })
    }

    pub fn health(&self, c: &Choice) -> Option<&NodeHealth> {
        self.pools
            .get(c.pool)?
            .health
            .get(c.node)
            .map(|h| h.as_ref())
    }

    pub fn pool(&self, c: &Choice) -> Option<&Pool> {
        self.pools.get(c.pool)
    }

    /// The Pingora peer for a choice, with its pool's timeouts and TLS settings.
    pub fn peer(&self, c: &Choice) -> Box<HttpPeer> {
        self.peer_for(c.pool, c.node, None)
    }

    /// The peer for node `node` of pool `pool`; `timeout` overrides every timeout (health checks).
    pub fn peer_for(&self, pool: usize, node: usize, timeout: Option<Duration>) -> Box<HttpPeer> {
        let Some(p) = self.pools.get(pool) else {
            return Box::new(HttpPeer::new(
                SocketAddr::from(([127, 0, 0, 1], 9)),
                false,
                String::new(),
            ));
        };
        let n = p.cfg.nodes.get(node);
        let addr = n
            .map(|n| n.addr)
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9)));
        let tls = n.is_some_and(|n| n.tls);
        let sni = n.and_then(|n| n.sni.clone()).unwrap_or_default();
        let mut peer = HttpPeer::new(addr, tls, sni);
        let o = &mut peer.options;
        let connect = timeout.unwrap_or(p.cfg.connect_timeout);
        o.connection_timeout = Some(connect);
        o.total_connection_timeout = Some(timeout.unwrap_or(connect + Duration::from_millis(500)));
        o.read_timeout = Some(timeout.unwrap_or(p.cfg.read_timeout));
        o.write_timeout = Some(timeout.unwrap_or(p.cfg.read_timeout));
        o.idle_timeout = Some(p.cfg.idle_timeout);
        if tls {
            o.ca = p.ca.clone();
            o.alpn = pingora_core::protocols::ALPN::H1;
        }
        Box::new(peer)
    }

    /// The Host header configured for this node, if any.
    pub fn host_override(&self, c: &Choice) -> Option<&str> {
        self.pools
            .get(c.pool)?
            .cfg
            .nodes
            .get(c.node)?
            .host
            .as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{OriginNode, PassiveHealth};

    fn pool(name: &str, ports: &[u16], retries: usize) -> OriginPool {
        OriginPool {
            name: name.into(),
            priority: 0,
            nodes: ports
                .iter()
                .map(|p| OriginNode {
                    addr: format!("127.0.0.1:{p}").parse().unwrap(),
                    weight: 100,
                    host: None,
                    tls: false,
                    sni: None,
                })
                .collect(),
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(4),
            retries,
            load_factor: 1.25,
            health: None,
            passive: PassiveHealth::default(),
            ca: None,
        }
    }

    fn walk(p: &Pools, key: &[u8]) -> Vec<u16> {
        let mut tried = Vec::new();
        let mut ports = Vec::new();
        while let Some(c) = p.choose(key, &tried) {
            tried.push((c.pool, c.node));
            ports.push(c.addr.port());
        }
        ports
    }

    #[test]
    fn attempts_walk_the_pool_then_the_next_pool() {
        let p = Pools::new(vec![pool("a", &[1, 2, 3], 1), pool("b", &[4], 0)]);
        assert_eq!(p.max_tries(), 3);
        let ports = walk(&p, b"/v/x.ts");
        assert_eq!(ports.len(), 3, "{ports:?}");
        assert!(ports[..2].iter().all(|&x| x <= 3) && ports[0] != ports[1]);
        assert_eq!(ports[2], 4);
    }

    #[test]
    fn the_same_key_picks_the_same_node_and_unusable_nodes_are_skipped() {
        let p = Pools::new(vec![pool("a", &[1, 2, 3, 4], 3)]);
        let first = p.choose(b"/v/seg1.ts", &[]).unwrap();
        assert_eq!(
            p.choose(b"/v/seg1.ts", &[]).unwrap().addr,
            first.addr,
            "light load: no overflow"
        );
        let h = p.health(&first).unwrap();
        for _ in 0..3 {
            h.on_failure(&PassiveHealth::default(), now_ms());
        }
        let next = p.choose(b"/v/seg1.ts", &[]).unwrap();
        assert_ne!(next.addr, first.addr, "an ejected node is skipped");
    }

    #[test]
    fn a_busy_node_overflows_to_the_next() {
        let p = Pools::new(vec![pool("a", &[1, 2, 3, 4], 3)]);
        let first = p.choose(b"/hot", &[]).unwrap().addr;
        let held: Vec<Choice> = (0..BALANCE_FLOOR)
            .map(|_| p.choose(b"/hot", &[]).unwrap())
            .collect();
        assert!(
            held.iter().all(|c| c.addr == first),
            "below the floor the hot key stays put"
        );
        let next = p.choose(b"/hot", &[]).unwrap();
        assert_ne!(next.addr, first, "past the floor and the cap, it overflows");
    }

    #[test]
    fn peers_keep_idle_connections_for_the_pool_idle_timeout() {
        let mut cfg = pool("a", &[1], 0);
        cfg.idle_timeout = Duration::from_millis(1500);
        let p = Pools::new(vec![cfg]);
        let c = p.choose(b"/k", &[]).unwrap();
        assert_eq!(
            p.peer(&c).options.idle_timeout,
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn with_every_node_down_untried_nodes_are_still_tried() {
        let p = Pools::new(vec![pool("a", &[1, 2], 1)]);
        for pl in &p.pools {
            for h in &pl.health {
                for _ in 0..3 {
                    h.on_failure(&PassiveHealth::default(), now_ms());
                }
            }
        }
        assert_eq!(walk(&p, b"/k").len(), 2);
    }
}
