//! The ban index: what a lookup asks, "has this host/path been purged since `stored`?", in time
//! independent of the number of bans.
//!
//! - Exact bans (one URL) live in a hash map keyed by path: one probe.
//! - Prefix bans live in a patricia trie keyed by prefix: one walk down the trie along the
//!   request path visits exactly the stored prefixes of that path (`common_prefixes`), so the
//!   cost grows with the path's length, not with the number of bans.
//!
//! Under each key sits a short list of hosts (`None` = every host), and for each only the
//! newest hard and the newest soft ban: an older ban of the same kind on the same key can
//! match nothing the newer one does not, so it need not be kept here (the time-ordered list
//! in [`super::Bans`] still has it for listing and expiry).

use std::collections::HashMap;
use std::sync::Arc;

use patricia_tree::PatriciaMap;

use super::{Ban, Verdict};

/// The newest hard and soft ban of one key and host, in ms since the epoch (0 = none).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Newest {
    hard: u64,
    soft: u64,
}

impl Newest {
    fn slot(&mut self, soft: bool) -> &mut u64 {
        if soft {
            &mut self.soft
        } else {
            &mut self.hard
        }
    }

    fn verdict(&self, stored_ms: u64) -> Verdict {
        // A ban at or after the store time applies (same millisecond: the ban wins).
        if self.hard != 0 && self.hard >= stored_ms {
            Verdict::Remove
        } else if self.soft != 0 && self.soft >= stored_ms {
            Verdict::Expire
        } else {
            Verdict::Keep
        }
    }

    fn is_empty(&self) -> bool {
        self.hard == 0 && self.soft == 0
    }
}

/// Bans of one path or prefix, per host. Almost always one or two entries.
type Hosts = Vec<(Option<Arc<str>>, Newest)>;

fn record(hosts: &mut Hosts, ban: &Ban) {
    let at = match hosts.iter_mut().find(|(h, _)| *h == ban.host) {
        Some((_, n)) => n,
        None => {
            hosts.push((ban.host.clone(), Newest::default()));
            let last = hosts.len() - 1;
            &mut hosts[last].1
        }
    };
    let slot = at.slot(ban.soft);
    *slot = (*slot).max(ban.at_ms);
}

/// Forget `ban` if it is still the newest of its kind; true when `hosts` is left empty.
fn forget(hosts: &mut Hosts, ban: &Ban) -> bool {
    if let Some(i) = hosts.iter().position(|(h, _)| *h == ban.host) {
        let slot = hosts[i].1.slot(ban.soft);
        if *slot == ban.at_ms {
            *slot = 0;
        }
        if hosts[i].1.is_empty() {
            hosts.swap_remove(i);
        }
    }
    hosts.is_empty()
}

fn worst(hosts: &Hosts, host: &str, stored_ms: u64, mut verdict: Verdict) -> Verdict {
    for (h, n) in hosts {
        if h.as_deref().is_none_or(|h| h == host) {
            verdict = verdict.max(n.verdict(stored_ms));
        }
    }
    verdict
}

#[derive(Default)]
pub struct Index {
    exact: HashMap<Arc<str>, Hosts>,
    prefix: PatriciaMap<Hosts>,
}

impl Index {
    pub fn insert(&mut self, ban: &Ban) {
        if ban.exact {
            record(self.exact.entry(ban.path.clone()).or_default(), ban);
        } else {
            match self.prefix.get_mut(ban.path.as_bytes()) {
                Some(hosts) => record(hosts, ban),
                None => {
                    let mut hosts = Hosts::new();
                    record(&mut hosts, ban);
                    self.prefix.insert(ban.path.as_bytes(), hosts);
                }
            }
        }
    }

    /// Undo [`Index::insert`] for an expired ban (a no-op where a newer ban replaced it).
    pub fn remove(&mut self, ban: &Ban) {
        if ban.exact {
            if self
                .exact
                .get_mut(&*ban.path)
                .is_some_and(|hosts| forget(hosts, ban))
            {
                self.exact.remove(&*ban.path);
            }
        } else if self
            .prefix
            .get_mut(ban.path.as_bytes())
            .is_some_and(|hosts| forget(hosts, ban))
        {
            self.prefix.remove(ban.path.as_bytes());
        }
    }

    /// The strongest verdict of every ban matching `host`/`path` made at or after `stored_ms`.
    pub fn verdict(&self, host: &str, path: &str, stored_ms: u64) -> Verdict {
        let mut verdict = match self.exact.get(path) {
            Some(hosts) => worst(hosts, host, stored_ms, Verdict::Keep),
            None => Verdict::Keep,
        };
        if verdict == Verdict::Remove || self.prefix.is_empty() {
            return verdict;
        }
        for hosts in self.prefix.common_prefix_values(path.as_bytes()) {
            verdict = worst(hosts, host, stored_ms, verdict);
            if verdict == Verdict::Remove {
                break;
            }
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(host: Option<&str>, path: &str, exact: bool, soft: bool, at_ms: u64) -> Ban {
        Ban {
            host: host.map(Arc::from),
            path: path.into(),
            exact,
            soft,
            at_ms,
        }
    }

    /// The old scan over every ban, which the index must agree with.
    fn scan(bans: &[Ban], host: &str, path: &str, stored_ms: u64) -> Verdict {
        let mut v = Verdict::Keep;
        for b in bans {
            let host_ok = b.host.as_deref().is_none_or(|h| h == host);
            let path_ok = if b.exact {
                path == &*b.path
            } else {
                path.starts_with(&*b.path)
            };
            if b.at_ms >= stored_ms && host_ok && path_ok {
                v = v.max(if b.soft {
                    Verdict::Expire
                } else {
                    Verdict::Remove
                });
            }
        }
        v
    }

    #[test]
    fn agrees_with_a_scan_of_every_ban() {
        let hosts = [None, Some("a.example"), Some("b.example")];
        let paths = [
            "/",
            "/v",
            "/v/",
            "/v/t/",
            "/v/t/a.ts",
            "/v/t2/a.ts",
            "/w/a.ts",
        ];
        let mut bans = Vec::new();
        let mut index = Index::default();
        let mut t = 10;
        for (i, p) in paths.iter().enumerate() {
            for (j, h) in hosts.iter().enumerate() {
                if (i + j) % 3 == 0 {
                    continue;
                }
                let b = ban(*h, p, (i * 7 + j) % 2 == 0, (i + 2 * j) % 3 == 0, t);
                t += 10;
                index.insert(&b);
                bans.push(b);
            }
        }
        for host in ["a.example", "b.example", "c.example"] {
            for path in paths.iter().chain(&["/v/t/a.tsx", "/x", ""]) {
                for stored in (0..t + 10).step_by(5) {
                    assert_eq!(
                        index.verdict(host, path, stored),
                        scan(&bans, host, path, stored),
                        "{host}{path} @{stored}"
                    );
                }
            }
        }
        // Expire the older half in order, as `Bans` does: the index still agrees.
        let cut = bans.len() / 2;
        for b in &bans[..cut] {
            index.remove(b);
        }
        for host in ["a.example", "c.example"] {
            for path in paths {
                for stored in (0..t + 10).step_by(5) {
                    assert_eq!(
                        index.verdict(host, path, stored),
                        scan(&bans[cut..], host, path, stored),
                        "{host}{path} @{stored}"
                    );
                }
            }
        }
        for b in &bans[cut..] {
            index.remove(b);
        }
        assert!(
            index.exact.is_empty() && index.prefix.is_empty(),
            "every key is gone with its last ban"
        );
    }

    #[test]
    fn a_newer_ban_on_the_same_key_survives_the_older_ones_expiry() {
        let mut index = Index::default();
        let old = ban(None, "/v/a.ts", true, false, 100);
        let new = ban(None, "/v/a.ts", true, false, 200);
        index.insert(&old);
        index.insert(&new);
        index.remove(&old);
        assert_eq!(index.verdict("h", "/v/a.ts", 150), Verdict::Remove);
        assert_eq!(index.verdict("h", "/v/a.ts", 201), Verdict::Keep);
    }

    #[test]
    fn prefixes_are_byte_prefixes() {
        let mut index = Index::default();
        index.insert(&ban(None, "/v/t", false, true, 100));
        index.insert(&ban(Some("h"), "/v/t/", false, false, 100));
        assert_eq!(index.verdict("h", "/v/t2/x", 50), Verdict::Expire);
        assert_eq!(index.verdict("h", "/v/t/x", 50), Verdict::Remove);
        assert_eq!(index.verdict("other", "/v/t/x", 50), Verdict::Expire);
        assert_eq!(index.verdict("h", "/v/", 50), Verdict::Keep);
    }
}
