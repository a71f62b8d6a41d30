//! Weighted consistent hashing with bounded loads: which node of a pool serves a key.
//!
//! Pure data structure, no I/O. The proxy builds one [`Ring`] per origin pool, hashes the cache key
//! once with [`Ring::hash_key`], and either walks [`Ring::candidates`] (skipping unhealthy nodes) or
//! calls [`Ring::select`], which also keeps a hot key from piling onto one node. [`InFlight`] counts
//! in-flight upstream requests per node for `select`.
//!
//! # Placement (ketama-style)
//! A node with weight `w` gets `ceil(w × VNODES_PER_100_WEIGHT / 100)` points on a 64-bit circle:
//! [`VNODES_PER_100_WEIGHT`] points at the default weight 100, proportionally more or fewer for other
//! weights, none at weight 0. Point `r` of a node is `xxh64(id + "-" + r, seed 0)` (decimal `r`,
//! `r = 0, 1, …`), so adding or removing a node never moves another node's points. Points are sorted
//! by `(hash, id)`, which breaks the (rare) ties the same way whatever order the nodes were given
//! in. A key hashes to `xxh64(key, seed 0)` and belongs to the first point at or after it, wrapping
//! round. Only if a pool's points would exceed [`MAX_POINTS`] are all counts scaled down together.
//!
//! XXH64 comes from the `twox-hash` crate and is pinned by the published test vectors: every edge
//! and shield process, whatever its version, must map a key to the same node.
//! (std's `DefaultHasher` is neither specified nor stable, and `RandomState` is seeded per process.)
//!
//! # Node identity
//! Node indices are positions in the `&[NodeSpec]` given to [`Ring::new`]. Specs sharing an `id`
//! are one node: the first occurrence gets the summed weight, later ones get no points and are
//! never returned.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::iter::FusedIterator;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Points per node at weight 100 (the config default): 40 per unit of weight. Classic ketama's
/// 160 leaves a node's share off by ~7% (one standard deviation, 4 equal nodes) and the worst of
/// four off by ~10% typically; 4000 brings those to ~1.4% and ~2%. Changing it remaps keys, so
/// processes of different versions would disagree: `placement_is_pinned` guards it.
pub const VNODES_PER_100_WEIGHT: u64 = 4000;

/// Upper bound on a ring's points (about 12 bytes each), reached only with extreme weights; past
/// it every node's count is scaled down by the same factor (each node keeping at least one point).
pub const MAX_POINTS: u64 = 1 << 20;

/// One node as configured: a stable identity (e.g. `"10.0.0.1:8080"`) and a relative weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub id: String,
    pub weight: u32,
}

/// A consistent-hash ring over the nodes of one pool. Immutable; rebuild it when nodes change.
#[derive(Debug, Clone)]
pub struct Ring {
    /// Sorted point hashes, with `owners[i]` the node index of `hashes[i]` (kept apart so the
    /// binary search touches only the hashes).
    hashes: Vec<u64>,
    owners: Vec<u32>,
    /// Effective weight per node index: 0 for weight-0 and duplicate specs.
    weights: Vec<u64>,
    /// Nodes owning at least one point: the length of a full `candidates` walk.
    placed: usize,
}

impl Ring {
    /// Builds the ring. Never fails: an empty slice or all-zero weights give an empty ring, whose
    /// lookups return nothing.
    pub fn new(nodes: &[NodeSpec]) -> Ring {
        // Coalesce duplicate ids into their first occurrence. Indices past u32::MAX get no points.
        let mut weights = vec![0u64; nodes.len()];
        let mut first: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, n) in nodes.iter().enumerate().take(u32::MAX as usize) {
            let at = *first.entry(n.id.as_str()).or_insert(i);
            weights[at] = weights[at].saturating_add(u64::from(n.weight));
        }

        // u128: weights summed over duplicate specs can be large enough to overflow a product.
        let mut counts: Vec<u128> = weights
            .iter()
            .map(|&w| (u128::from(w) * u128::from(VNODES_PER_100_WEIGHT)).div_ceil(100))
            .collect();
        let total: u128 = counts.iter().sum();
        if total > u128::from(MAX_POINTS) {
            for c in counts.iter_mut().filter(|c| **c > 0) {
                *c = (*c * u128::from(MAX_POINTS) / total).max(1);
            }
        }

        let mut points: Vec<(u64, u32)> = Vec::with_capacity(counts.iter().sum::<u128>() as usize);
        let mut buf = String::new();
        for (i, &count) in counts.iter().enumerate() {
            let id = nodes[i].id.as_str();
            for r in 0..count {
                buf.clear();
                let _ = write!(buf, "{id}-{r}");
                points.push((xxh64(buf.as_bytes()), i as u32));
            }
        }
        points.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| nodes[a.1 as usize].id.cmp(&nodes[b.1 as usize].id))
        });

        Ring {
            hashes: points.iter().map(|p| p.0).collect(),
            owners: points.iter().map(|p| p.1).collect(),
            placed: counts.iter().filter(|&&c| c > 0).count(),
            weights,
        }
    }

    /// The stable hash of a key (XXH64, seed 0), to pass to [`Ring::candidates`] or [`Ring::select`].
    pub fn hash_key(key: &[u8]) -> u64 {
        xxh64(key)
    }

    /// Number of node indices (the length of the slice given to [`Ring::new`]), placed or not.
    pub fn node_count(&self) -> usize {
        self.weights.len()
    }

    /// True when no node has a point, so every lookup returns nothing.
    pub fn is_empty(&self) -> bool {
        self.placed == 0
    }

    /// Total points on the ring.
    pub fn points(&self) -> usize {
        self.hashes.len()
    }

    /// Distinct nodes in ring order from the key's position: the key's primary node first, then
    /// the next distinct node clockwise, and so on. Each node with points appears exactly once;
    /// weight-0 and duplicate specs never appear. Allocates only for pools of more than 128 nodes.
    pub fn candidates(&self, key_hash: u64) -> Candidates<'_> {
        let pos = self.hashes.partition_point(|&h| h < key_hash);
        Candidates {
            owners: &self.owners,
            pos: if pos == self.owners.len() { 0 } else { pos },
            steps: 0,
            remaining: self.placed,
            seen: Seen::new(self.weights.len()),
        }
    }

    /// The key's node under bounded loads, or `None` when no eligible node has points.
    ///
    /// Walks [`Ring::candidates`], skips nodes for which `is_eligible` is false, and takes the first
    /// node `i` with `in_flight(i) + 1 <= cap(i)`, where, over the eligible nodes with points,
    ///
    /// ```text
    /// cap(i) = ceil(c × (T + 1) × w(i) / W)
    ///        = ceil(c × (T + 1) / E × w(i) / avg_w)
    /// T = Σ in_flight,  W = Σ w,  E = their count,  avg_w = W / E,  c = load_factor
    /// ```
    ///
    /// (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with Bounded Loads", with each node's
    /// share of the `c × (T + 1)` budget in proportion to its weight.) The cap is computed exactly
    /// in integers, with `c` rounded to thousandths. Because the caps sum to at least
    /// `c × (T + 1) > T`, some eligible node is always under its cap when `c >= 1`; should none be
    /// (only if the callbacks change their answers mid-call), the first eligible candidate is
    /// returned. `load_factor` below 1 or NaN counts as 1 (strict balance); `f64::INFINITY`
    /// disables the bound, giving plain consistent hashing with failover.
    ///
    /// Calls `is_eligible` and `in_flight` once per node to total the load (O(nodes)), then again
    /// along the walk; they should answer consistently for the duration of the call.
    pub fn select(
        &self,
        key_hash: u64,
        is_eligible: impl Fn(usize) -> bool,
        in_flight: impl Fn(usize) -> u64,
        load_factor: f64,
    ) -> Option<usize> {
        let (mut total, mut weight) = (0u64, 0u64);
        for (i, &w) in self.weights.iter().enumerate() {
            if w > 0 && is_eligible(i) {
                total = total.saturating_add(in_flight(i));
                weight = weight.saturating_add(w);
            }
        }
        if weight == 0 {
            return None;
        }
        // The cap in integers, with the load factor in thousandths: in floats an exact cap such as
        // 1.1 × 300 × 200 / 600 = 110 can come out as 110.00000000000001, so ceil gives 111.
        let budget = if load_factor == f64::INFINITY {
            u128::MAX // every cap at least 2^54
        } else {
            let c_milli = if load_factor >= 1.0 {
                (load_factor * 1000.0).round() as u64 // saturates at u64::MAX
            } else {
                1000
            };
            u128::from(c_milli).saturating_mul(u128::from(total) + 1)
        };
        let per_weight = 1000 * u128::from(weight);

        let mut first = None;
        for i in self.candidates(key_hash).filter(|&i| is_eligible(i)) {
            first = first.or(Some(i));
            let cap = budget
                .saturating_mul(u128::from(self.weights[i]))
                .div_ceil(per_weight);
            if u128::from(in_flight(i)) < cap {
                return Some(i);
            }
        }
        first
    }
}

/// Iterator returned by [`Ring::candidates`].
#[derive(Debug, Clone)]
pub struct Candidates<'a> {
    owners: &'a [u32],
    pos: usize,
    /// Points visited; a full circle ends the walk even if `remaining` were wrong.
    steps: usize,
    remaining: usize,
    seen: Seen,
}

impl Iterator for Candidates<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.remaining > 0 && self.steps < self.owners.len() {
            let node = self.owners[self.pos] as usize;
            self.pos = if self.pos + 1 == self.owners.len() {
                0
            } else {
                self.pos + 1
            };
            self.steps += 1;
            if self.seen.insert(node) {
                self.remaining -= 1;
                return Some(node);
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining))
    }
}

impl FusedIterator for Candidates<'_> {}

/// Node indices already yielded: a bitmap, inline for pools of up to 128 nodes.
#[derive(Debug, Clone)]
enum Seen {
    Inline([u64; 2]),
    Heap(Vec<u64>),
}

impl Seen {
    fn new(nodes: usize) -> Seen {
        if nodes <= 128 {
            Seen::Inline([0; 2])
        } else {
            Seen::Heap(vec![0; nodes.div_ceil(64)])
        }
    }

    /// Adds `node`; true if it was not there yet.
    fn insert(&mut self, node: usize) -> bool {
        let words: &mut [u64] = match self {
            Seen::Inline(words) => words,
            Seen::Heap(words) => words,
        };
        let Some(word) = words.get_mut(node / 64) else {
            return false;
        };
        let bit = 1u64 << (node % 64);
        let fresh = *word & bit == 0;
        *word |= bit;
        fresh
    }
}

/// In-flight upstream requests per node index, for [`Ring::select`]'s `in_flight`. Size it to the
/// ring's [`Ring::node_count`] and rebuild it with the ring. Counts are advisory (relaxed atomics).
#[derive(Debug, Default)]
pub struct InFlight {
    counts: Box<[AtomicU64]>,
}

impl InFlight {
    pub fn new(nodes: usize) -> InFlight {
        InFlight {
            counts: (0..nodes).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Number of counters.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Current count for `node`; 0 for an index out of range.
    pub fn get(&self, node: usize) -> u64 {
        self.counts
            .get(node)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Counts one request to `node` until the returned guard is dropped. The guard owns an `Arc`,
    /// so it can live in a per-request context across awaits. An index out of range is not counted.
    pub fn acquire(self: &Arc<Self>, node: usize) -> InFlightGuard {
        if let Some(c) = self.counts.get(node) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        InFlightGuard {
            counters: Arc::clone(self),
            node,
        }
    }
}

/// One counted in-flight request (see [`InFlight::acquire`]); decrements its node on drop.
#[derive(Debug)]
#[must_use = "the request stops being counted when the guard is dropped"]
pub struct InFlightGuard {
    counters: Arc<InFlight>,
    node: usize,
}

impl InFlightGuard {
    /// The node index being counted.
    pub fn node(&self) -> usize {
        self.node
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if let Some(c) = self.counters.counts.get(self.node) {
            c.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// XXH64 with seed 0 (the `twox-hash` crate; pinned by the published vectors in the tests).
fn xxh64(input: &[u8]) -> u64 {
    twox_hash::XxHash64::oneshot(0, input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn specs(ids: &[&str], weights: &[u32]) -> Vec<NodeSpec> {
        ids.iter()
            .zip(weights)
            .map(|(id, &weight)| NodeSpec {
                id: id.to_string(),
                weight,
            })
            .collect()
    }

    fn equal(ids: &[&str]) -> Vec<NodeSpec> {
        specs(ids, &vec![100; ids.len()])
    }

    const IDS: [&str; 5] = [
        "10.0.0.1:8080",
        "10.0.0.2:8080",
        "10.0.0.3:8080",
        "10.0.0.4:8080",
        "10.0.0.5:8080",
    ];

    /// Cache-key-like keys: `n` distinct segment paths, hashed.
    fn keys(n: usize) -> impl Iterator<Item = u64> {
        (0..n)
            .map(|i| Ring::hash_key(format!("/v/title-{}/1080p/seg-{i:06}.ts", i % 97).as_bytes()))
    }

    fn primary(ring: &Ring, key: u64) -> usize {
        ring.candidates(key).next().expect("non-empty ring")
    }

    /// Share of `n` keys per node index.
    fn shares(ring: &Ring, n: usize) -> Vec<f64> {
        let mut counts = vec![0usize; ring.node_count()];
        keys(n).for_each(|k| counts[primary(ring, k)] += 1);
        counts.iter().map(|&c| c as f64 / n as f64).collect()
    }

    const UNBOUNDED: f64 = f64::INFINITY;

    #[test]
    fn xxh64_matches_published_vectors() {
        for (input, want) in [
            ("", 0xef46_db37_51d8_e999),
            ("a", 0xd24e_c4f1_a98c_6e5b),
            ("abc", 0x44bc_2cf5_ad77_0999),
            ("edge-ring/v1", 0xc27a_af87_406a_20d2),
            ("0123456789abcdef0123456789abcdef!", 0x8aff_f4da_ac4e_677e),
            (
                "/v/title/1080p/seg-00042.ts?x=the-quick-brown-fox-jumps-over-the-lazy-dog-0123456789",
                0x8678_5fc6_3461_0d29,
            ),
        ] {
            assert_eq!(Ring::hash_key(input.as_bytes()), want, "{input:?}");
        }
    }

    #[test]
    fn placement_is_pinned() {
        // Fleet-wide agreement: these must never change, whatever the version.
        let ring = Ring::new(&specs(&IDS[..3], &[100, 200, 100]));
        assert_eq!(ring.points(), 16_000);
        let got: Vec<usize> = [
            "/a.ts",
            "/b.ts",
            "/v/t/master.m3u8",
            "/v/t/seg-1.ts",
            "/v/t/seg-2.ts",
            "/v/t/seg-3.ts",
        ]
        .iter()
        .map(|k| primary(&ring, Ring::hash_key(k.as_bytes())))
        .collect();
        assert_eq!(got, vec![2, 2, 1, 1, 0, 1]);
    }

    #[test]
    fn same_specs_in_any_order_map_keys_identically() {
        let a = Ring::new(&specs(&IDS, &[100, 200, 100, 50, 300]));
        let mut shuffled = specs(&IDS, &[100, 200, 100, 50, 300]);
        shuffled.reverse();
        shuffled.rotate_left(2);
        let b = Ring::new(&shuffled);
        let id_a = |i: usize| IDS[i];
        let id_b = |i: usize| shuffled[i].id.as_str();
        for (n, k) in keys(10_000).enumerate() {
            assert_eq!(id_a(primary(&a, k)), id_b(primary(&b, k)));
            if n < 1000 {
                let order_a: Vec<&str> = a.candidates(k).map(id_a).collect();
                let order_b: Vec<&str> = b.candidates(k).map(id_b).collect();
                assert_eq!(order_a, order_b);
            }
        }
    }

    #[test]
    fn four_equal_nodes_share_keys_within_5_percent_relative() {
        let s = shares(&Ring::new(&equal(&IDS[..4])), 100_000);
        println!("shares: {s:?}");
        for share in s {
            assert!(
                (share / 0.25 - 1.0).abs() <= 0.05,
                "share {share} outside 25% ± 5% relative"
            );
        }
    }

    #[test]
    fn shares_follow_weights_within_5_percent_relative() {
        let s = shares(&Ring::new(&specs(&IDS[..3], &[100, 200, 300])), 100_000);
        println!("shares: {s:?}");
        for (share, want) in s.iter().zip([1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0]) {
            assert!(
                (share / want - 1.0).abs() <= 0.05,
                "share {share} vs {want}"
            );
        }
    }

    #[test]
    fn adding_a_fifth_node_moves_a_fifth_of_keys_only_to_it() {
        let (four, five) = (Ring::new(&equal(&IDS[..4])), Ring::new(&equal(&IDS)));
        let mut moved = 0;
        for k in keys(100_000) {
            let (before, after) = (primary(&four, k), primary(&five, k));
            if before != after {
                assert_eq!(after, 4, "a key moved between old nodes");
                moved += 1;
            }
        }
        let frac = moved as f64 / 100_000.0;
        println!("moved: {frac}");
        assert!((frac - 0.2).abs() <= 0.02, "moved {frac}");
    }

    #[test]
    fn removing_one_of_five_moves_only_its_keys() {
        let five = Ring::new(&equal(&IDS));
        let rest = [IDS[0], IDS[1], IDS[3], IDS[4]];
        let four = Ring::new(&equal(&rest));
        let mut moved = 0;
        for k in keys(100_000) {
            let (before, after) = (IDS[primary(&five, k)], rest[primary(&four, k)]);
            if before != after {
                assert_eq!(before, IDS[2], "a key of a remaining node moved");
                moved += 1;
            } else {
                assert_ne!(before, IDS[2]);
            }
        }
        let frac = moved as f64 / 100_000.0;
        println!("moved: {frac}");
        assert!((frac - 0.2).abs() <= 0.02, "moved {frac}");
    }

    #[test]
    fn ineligible_node_sends_its_keys_to_their_next_candidate_only() {
        let ring = Ring::new(&equal(&IDS[..4]));
        let down = 1;
        let mut inherited = [0usize; 4];
        for k in keys(20_000) {
            let chosen = ring.select(k, |i| i != down, |_| 0, UNBOUNDED);
            let order: Vec<usize> = ring.candidates(k).collect();
            if order[0] == down {
                assert_eq!(chosen, Some(order[1]));
                inherited[order[1]] += 1;
            } else {
                assert_eq!(chosen, Some(order[0]));
            }
        }
        // The failed node's keys spread over the survivors instead of landing on one neighbour.
        let total: usize = inherited.iter().sum();
        println!("inherited: {inherited:?}");
        for (i, &n) in inherited.iter().enumerate().filter(|&(i, _)| i != down) {
            assert!(
                (0.25..=0.42).contains(&(n as f64 / total as f64)),
                "node {i} took {n}/{total}"
            );
        }
    }

    #[test]
    fn candidates_list_every_placed_node_once_from_the_primary() {
        let ring = Ring::new(&specs(&IDS, &[100, 0, 300, 1, 100]));
        for k in keys(2000) {
            let mut order: Vec<usize> = ring.candidates(k).collect();
            assert_eq!(order[0], primary(&ring, k));
            order.sort_unstable();
            assert_eq!(order, vec![0, 2, 3, 4]);
        }
        // Past 128 nodes the seen-set moves to the heap.
        let ids: Vec<String> = (0..200)
            .map(|i| format!("10.1.{}.{}:80", i / 256, i % 256))
            .collect();
        let big: Vec<NodeSpec> = ids
            .iter()
            .map(|id| NodeSpec {
                id: id.clone(),
                weight: 1,
            })
            .collect();
        let ring = Ring::new(&big);
        assert_eq!(ring.points(), 200 * 40);
        for k in keys(50) {
            let mut order: Vec<usize> = ring.candidates(k).collect();
            order.sort_unstable();
            assert_eq!(order, (0..200).collect::<Vec<_>>());
        }
    }

    #[test]
    fn empty_rings_and_no_eligible_node_give_none() {
        for ring in [Ring::new(&[]), Ring::new(&specs(&IDS[..2], &[0, 0]))] {
            assert!(ring.is_empty());
            assert_eq!(ring.points(), 0);
            assert_eq!(ring.candidates(42).next(), None);
            assert_eq!(ring.select(42, |_| true, |_| 0, 1.25), None);
        }
        let ring = Ring::new(&equal(&IDS));
        assert_eq!(ring.select(42, |_| false, |_| 0, 1.25), None);
        // Weight 0 nodes are never chosen, even when they alone are eligible.
        let ring = Ring::new(&specs(&IDS[..2], &[0, 100]));
        assert_eq!(ring.select(42, |i| i == 0, |_| 0, 1.25), None);
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        // Duplicate ids are one node with the summed weight, at the first index.
        let ring = Ring::new(&specs(&[IDS[0], IDS[0], IDS[1]], &[100, 100, 200]));
        let s = shares(&ring, 20_000);
        assert_eq!(s[1], 0.0);
        assert!((s[0] - 0.5).abs() < 0.03, "{s:?}");
        // Huge weights are scaled under MAX_POINTS, keeping proportions.
        let ring = Ring::new(&specs(&IDS[..3], &[u32::MAX, u32::MAX, u32::MAX / 2]));
        assert!(ring.points() as u64 <= MAX_POINTS + 3);
        let s = shares(&ring, 20_000);
        assert!((s[2] - 0.2).abs() < 0.02, "{s:?}");
        let ring = Ring::new(&specs(&IDS[..2], &[1, 10_000]));
        assert_eq!(ring.points(), 40 + 400_000);
        // Nonsense load factors behave as 1 (or unbounded for +inf); extreme loads saturate.
        let ring = Ring::new(&equal(&IDS[..4]));
        for c in [
            f64::NAN,
            f64::NEG_INFINITY,
            -1.0,
            0.0,
            0.5,
            f64::INFINITY,
            f64::MAX,
        ] {
            assert!(ring.select(7, |_| true, |_| u64::MAX, c).is_some());
            assert!(ring.select(7, |_| true, |i| i as u64, c).is_some());
        }
        // Indices out of range in InFlight are ignored.
        let counters = Arc::new(InFlight::new(2));
        drop(counters.acquire(9));
        assert_eq!(counters.get(9), 0);
    }

    #[test]
    fn hot_key_overflows_to_the_next_candidates() {
        let ring = Ring::new(&equal(&IDS[..4]));
        let key = Ring::hash_key(b"/live/channel-1/playlist.m3u8");
        let order: Vec<usize> = ring.candidates(key).collect();
        // All ten in-flight requests on the primary: cap = ceil(1.25 × 11 / 4) = 4, so it is full.
        let load = |i: usize| if i == order[0] { 10 } else { 0 };
        assert_eq!(ring.select(key, |_| true, load, 1.25), Some(order[1]));
        // Without the bound it stays on the primary.
        assert_eq!(ring.select(key, |_| true, load, UNBOUNDED), Some(order[0]));

        // 1000 concurrent requests for the one key: the primary fills to its cap, the rest
        // overflows in ring order, and no node passes ceil(1.25 × 1000 / 4) = 313.
        let counters = Arc::new(InFlight::new(4));
        let guards: Vec<InFlightGuard> = (0..1000)
            .map(|_| {
                let i = ring
                    .select(key, |_| true, |i| counters.get(i), 1.25)
                    .expect("a node");
                counters.acquire(i)
            })
            .collect();
        let loads: Vec<u64> = (0..4).map(|i| counters.get(i)).collect();
        println!(
            "hot key loads by ring order: {:?}",
            order.iter().map(|&i| loads[i]).collect::<Vec<_>>()
        );
        assert!(loads.iter().all(|&l| l > 0 && l <= 313), "{loads:?}");
        assert_eq!(loads[order[0]], *loads.iter().max().unwrap_or(&0));
        drop(guards);
        assert!((0..4).all(|i| counters.get(i) == 0));
    }

    #[test]
    fn simulated_load_never_exceeds_the_cap() {
        let weights = [100, 200, 300, 100, 100];
        let ring = Ring::new(&specs(&IDS, &weights));
        let counters = Arc::new(InFlight::new(5));
        let c = 1.25;
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut live: Vec<InFlightGuard> = Vec::new();
        let mut overflowed = 0;
        for step in 0..50_000u64 {
            // A few hot keys take most requests; node 3 is down for a stretch.
            let r = next();
            let key = if r % 10 < 7 { r % 5 } else { r };
            let key = Ring::hash_key(&key.to_le_bytes());
            let up = |i: usize| !(i == 3 && (10_000..20_000).contains(&step));
            let i = ring
                .select(key, up, |i| counters.get(i), c)
                .expect("a node is up");
            assert!(up(i));
            // The cap, recomputed here from its definition.
            let eligible = (0..5).filter(|&j| up(j));
            let total: u64 = eligible.clone().map(|j| counters.get(j)).sum();
            let weight: u64 = eligible.map(|j| weights[j] as u64).sum();
            let cap = (1250 * (total + 1) * weights[i] as u64).div_ceil(1000 * weight);
            assert!(
                counters.get(i) < cap,
                "step {step}: node {i} at {} with cap {cap}",
                counters.get(i)
            );
            if Some(i) != ring.candidates(key).find(|&j| up(j)) {
                overflowed += 1;
            }
            live.push(counters.acquire(i));
            // Keep about 200 requests in flight; finish a random one.
            if live.len() > 200 {
                drop(live.swap_remove((next() % live.len() as u64) as usize));
            }
        }
        println!("overflowed {overflowed} of 50000");
        assert!(overflowed > 0);
        drop(live);
        assert!((0..5).all(|i| counters.get(i) == 0));
    }

    #[test]
    fn arrivals_only_keep_every_node_under_its_cap() {
        let weights = [100, 300, 200];
        let ring = Ring::new(&specs(&IDS[..3], &weights));
        let loads: Vec<Cell<u64>> = (0..3).map(|_| Cell::new(0)).collect();
        for (n, key) in keys(3000).map(|k| k % 3).enumerate() {
            let i = ring
                .select(key, |_| true, |i| loads[i].get(), 1.1)
                .expect("a node");
            loads[i].set(loads[i].get() + 1);
            let total = n as u64 + 1;
            for (j, l) in loads.iter().enumerate() {
                let cap = (1100 * total * weights[j] as u64).div_ceil(1000 * 600);
                assert!(l.get() <= cap, "node {j} at {} over {cap}", l.get());
            }
        }
    }

    #[test]
    fn falls_back_to_the_first_eligible_candidate_when_all_are_over_cap() {
        // An inconsistent in_flight (0 while totalling, then 5 along the walk) leaves every node
        // over its cap of 1: the first eligible candidate is still returned.
        let ring = Ring::new(&equal(&IDS[..4]));
        let calls = Cell::new(0);
        let load = |_| {
            calls.set(calls.get() + 1);
            if calls.get() <= 4 {
                0
            } else {
                5
            }
        };
        let order: Vec<usize> = ring.candidates(99).collect();
        assert_eq!(
            ring.select(99, |i| i != order[0], load, 1.0),
            Some(order[1])
        );
    }

    #[test]
    fn in_flight_guard_counts_until_dropped() {
        fn owned<T: Send + Sync + 'static>(_: &T) {}
        let counters = Arc::new(InFlight::new(3));
        let a = counters.acquire(1);
        let b = counters.acquire(1);
        owned(&a);
        assert_eq!((a.node(), counters.get(1), counters.get(0)), (1, 2, 0));
        drop(a);
        assert_eq!(counters.get(1), 1);
        let t = std::thread::spawn(move || drop(b));
        t.join().expect("thread");
        assert_eq!(counters.get(1), 0);
    }

    /// Rough cost of a lookup: `cargo test --release -- --ignored --nocapture select_cost`.
    #[test]
    #[ignore]
    fn select_cost() {
        for n in [4usize, 16] {
            let ids: Vec<String> = (0..n).map(|i| format!("10.0.0.{i}:8080")).collect();
            let ring = Ring::new(
                &ids.iter()
                    .map(|id| NodeSpec {
                        id: id.clone(),
                        weight: 100,
                    })
                    .collect::<Vec<_>>(),
            );
            let counters = Arc::new(InFlight::new(n));
            let hashes: Vec<u64> = keys(1 << 16).collect();
            let rounds = 2_000_000usize;
            let start = std::time::Instant::now();
            let mut sink = 0usize;
            for r in 0..rounds {
                let k = hashes[r & 0xffff];
                sink += ring
                    .select(k, |i| i != 1, |i| counters.get(i), 1.25)
                    .unwrap_or(0);
            }
            let select_ns = start.elapsed().as_nanos() as f64 / rounds as f64;
            let start = std::time::Instant::now();
            for r in 0..rounds {
                sink += ring.candidates(hashes[r & 0xffff]).next().unwrap_or(0);
            }
            let primary_ns = start.elapsed().as_nanos() as f64 / rounds as f64;
            let key = b"/v/title-42/1080p/seg-000042.ts";
            let start = std::time::Instant::now();
            for _ in 0..rounds {
                sink += Ring::hash_key(std::hint::black_box(key)) as usize & 1;
            }
            let hash_ns = start.elapsed().as_nanos() as f64 / rounds as f64;
            println!(
                "{n} nodes, {} points: select {select_ns:.0} ns, primary {primary_ns:.0} ns, hash_key(31 B) {hash_ns:.1} ns ({sink})",
                ring.points()
            );
        }
    }
}
