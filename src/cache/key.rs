//! The cache key: host + normalised path + the query parameters that name the object.
//!
//! The host is always in the key (a key without it lets one site's object answer for another).
//! Components are length-framed before hashing so `("a", "/bc")` and `("ab", "/c")` differ.
//! Which query parameters count is a per-path-prefix policy ([`QueryPolicy`], `[[cache.keys]]`);
//! the ones that count are sorted, so their order does not split the cache, CMCD
//! (CTA-5004 player data, different on every request) never counts, and the LL-HLS delivery
//! directives (`_HLS_msn`, `_HLS_part`, `_HLS_skip`, [`crate::hls::delivery`]) always count.
//!
//! A large object under a `[[cache.slices]]` prefix is never stored whole: each slice of it is
//! stored under the object's key plus the slice size and index ([`slice_key`]), so a range
//! request finds exactly the slices it touches, and a changed slice size never meets slices
//! cut another way.

use pingora_cache::CacheKey;

/// The host a request is for: the URI authority (HTTP/2, absolute-form) or the Host header,
/// lowercased, without a trailing dot or the default port.
pub fn request_host(uri_authority: Option<&str>, host_header: Option<&str>) -> String {
    let raw = uri_authority.or(host_header).unwrap_or("");
    let mut host = raw.trim().to_ascii_lowercase();
    if let Some(stripped) = host.strip_suffix(":80") {
        host = stripped.to_string();
    }
    if let Some(stripped) = host.strip_suffix('.') {
        host = stripped.to_string();
    }
    host
}

/// Build the cache key from the request's host, its normalised path and its query.
pub fn for_request(host: &str, path: &str, query: Option<&str>) -> CacheKey {
    let query = query.unwrap_or("");
    let mut primary = Vec::with_capacity(host.len() + path.len() + query.len() + 12);
    for part in [host, path, query] {
        primary.extend_from_slice(&(part.len() as u32).to_be_bytes());
        primary.extend_from_slice(part.as_bytes());
    }
    CacheKey::new(primary, "")
}

// The policy types are configuration (`[[cache.keys]]`), defined next to the validation that
// builds them; this module gives them their meaning.
pub use crate::config::cache::{KeyRule, QueryPolicy};

/// Query parameters that are never part of a key: Common Media Client Data changes on every
/// request of a player (buffer length, throughput), so keying on it would make every request
/// a miss.
pub const CMCD_PARAM: &str = "CMCD";

fn param_name(param: &str) -> &str {
    param.split_once('=').map_or(param, |(k, _)| k)
}

impl QueryPolicy {
    fn keeps(&self, name: &str) -> bool {
        match self {
            QueryPolicy::All => true,
            QueryPolicy::None => false,
            QueryPolicy::Allow(names) => names.iter().any(|n| n == name),
            QueryPolicy::Deny(names) => !names.iter().any(|n| n == name),
        }
    }
}

/// The part of `query` that goes into the key of `path`: the parameters the most specific
/// rule keeps (all without a rule) and the LL-HLS delivery directives, never CMCD, sorted.
/// `None` when nothing is left.
pub fn key_query(rules: &[KeyRule], path: &str, query: Option<&str>) -> Option<String> {
    let query = query?;
    let policy = key_rule(rules, path).map_or(&QueryPolicy::All, |r| &r.query);
    let mut params: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let name = param_name(p);
            name != CMCD_PARAM && (policy.keeps(name) || crate::hls::delivery::is_directive(name))
        })
        .collect();
    if params.is_empty() {
        return None;
    }
    params.sort_unstable();
    Some(params.join("&"))
}

/// The most specific `[[cache.keys]]` rule for `path` (`None`: every parameter is kept).
pub fn key_rule<'r>(rules: &'r [KeyRule], path: &str) -> Option<&'r KeyRule> {
    rules
        .iter()
        .filter(|r| path.starts_with(r.prefix.as_str()))
        .max_by_key(|r| r.prefix.len())
}

// The slicing rules are configuration (`[[cache.slices]]`), like the query policies.
pub use crate::config::cache::SliceRule;

/// The slice size of the objects under `path` (`None`: stored whole): the most specific
/// `[[cache.slices]]` rule.
pub fn slice_size(rules: &[SliceRule], path: &str) -> Option<u64> {
    rules
        .iter()
        .filter(|r| path.starts_with(r.prefix.as_str()))
        .max_by_key(|r| r.prefix.len())
        .map(|r| r.size)
}

/// The key of slice `index` (bytes `index * size ..`) of the object whose whole key is
/// `object`: the object's framed components, then a framed `slice` marker, size and index.
pub fn slice_key(object: &CacheKey, size: u64, index: u64) -> CacheKey {
    let mut primary = object.primary_key().to_vec();
    primary.extend_from_slice(&5u32.to_be_bytes());
    primary.extend_from_slice(b"slice");
    primary.extend_from_slice(&size.to_be_bytes());
    primary.extend_from_slice(&index.to_be_bytes());
    CacheKey::new(primary, "")
}

/// `query` without the parameter `name` (`None` when nothing is left).
pub fn without_param(query: Option<&str>, name: &str) -> Option<String> {
    let query = query?;
    if !query.split('&').any(|p| param_name(p) == name) {
        return Some(query.to_string());
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && param_name(p) != name)
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_cache::key::CacheHashKey;

    fn bin(host: &str, path: &str, q: Option<&str>) -> [u8; 16] {
        for_request(host, path, q).combined_bin()
    }

    #[test]
    fn host_path_and_query_all_count() {
        let base = bin("a.example", "/v/1.ts", None);
        assert_eq!(base, bin("a.example", "/v/1.ts", None));
        assert_ne!(base, bin("b.example", "/v/1.ts", None));
        assert_ne!(base, bin("a.example", "/v/2.ts", None));
        assert_ne!(base, bin("a.example", "/v/1.ts", Some("x=1")));
        assert_ne!(bin("a", "/bc", None), bin("ab", "/c", None));
    }

    #[test]
    fn query_policies() {
        let rules = vec![
            KeyRule {
                prefix: "/live/".into(),
                query: QueryPolicy::None,
            },
            KeyRule {
                prefix: "/vod/".into(),
                query: QueryPolicy::Allow(vec!["v".into(), "lang".into()]),
            },
            KeyRule {
                prefix: "/vod/ads/".into(),
                query: QueryPolicy::Deny(vec!["utm_source".into()]),
            },
        ];
        let k = |path: &str, q: &str| key_query(&rules, path, Some(q));
        assert_eq!(
            k("/other/a.ts", "b=2&a=1"),
            Some("a=1&b=2".into()),
            "all, sorted"
        );
        assert_eq!(
            k("/other/a.ts", "a=1&CMCD=bl%3D2000%2Cbr%3D800"),
            Some("a=1".into()),
            "CMCD never counts"
        );
        assert_eq!(k("/other/a.ts", "CMCD=x"), None);
        assert_eq!(k("/live/a.ts", "a=1"), None);
        assert_eq!(
            k("/live/a.m3u8", "a=1&_HLS_part=2&_HLS_msn=10&_HLS_skip=YES"),
            Some("_HLS_msn=10&_HLS_part=2&_HLS_skip=YES".into()),
            "LL-HLS delivery directives always count"
        );
        assert_eq!(
            k("/vod/a.m3u8", "_HLS_msn=10&v=1"),
            Some("_HLS_msn=10&v=1".into())
        );
        assert_eq!(
            k("/vod/a.ts", "lang=en&x=1&v=2"),
            Some("lang=en&v=2".into())
        );
        assert_eq!(
            k("/vod/ads/a.ts", "utm_source=x&v=2&z=1"),
            Some("v=2&z=1".into()),
            "the longest prefix wins"
        );
        assert_eq!(key_query(&rules, "/other/a.ts", None), None);
        assert_eq!(k("/other/a.ts", "&&"), None);
    }

    #[test]
    fn params_removed() {
        assert_eq!(
            without_param(Some("a=1&CMCD=x&b"), "CMCD"),
            Some("a=1&b".into())
        );
        assert_eq!(without_param(Some("CMCD=x"), "CMCD"), None);
        assert_eq!(without_param(Some("a=1"), "CMCD"), Some("a=1".into()));
        assert_eq!(without_param(None, "CMCD"), None);
    }

    #[test]
    fn slices_have_their_own_keys() {
        let object = for_request("a.example", "/v/big.mp4", None);
        let k = |size, index| slice_key(&object, size, index).combined_bin();
        assert_ne!(
            k(1 << 22, 0),
            object.combined_bin(),
            "a slice is not the object"
        );
        assert_ne!(k(1 << 22, 0), k(1 << 22, 1));
        assert_ne!(k(1 << 22, 1), k(1 << 21, 1), "slices cut another way");
        assert_eq!(k(1 << 22, 7), k(1 << 22, 7));
        let other = for_request("a.example", "/v/big2.mp4", None);
        assert_ne!(k(1 << 22, 0), slice_key(&other, 1 << 22, 0).combined_bin());
        let rules = vec![
            SliceRule {
                prefix: "/v/".into(),
                size: 4 << 20,
            },
            SliceRule {
                prefix: "/v/mp4/".into(),
                size: 1 << 20,
            },
        ];
        assert_eq!(
            slice_size(&rules, "/v/mp4/a.mp4"),
            Some(1 << 20),
            "longest prefix"
        );
        assert_eq!(slice_size(&rules, "/v/a.mp4"), Some(4 << 20));
        assert_eq!(slice_size(&rules, "/w/a.mp4"), None);
    }

    #[test]
    fn host_is_normalised() {
        assert_eq!(request_host(None, Some("Edge.Example:80")), "edge.example");
        assert_eq!(
            request_host(Some("edge.example."), Some("other")),
            "edge.example"
        );
        assert_eq!(
            request_host(None, Some("edge.example:8080")),
            "edge.example:8080"
        );
        assert_eq!(request_host(None, None), "");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2_000, failure_persistence: None, ..Default::default() })]

        /// The key's query never depends on parameter order and never carries CMCD.
        #[test]
        fn key_query_is_order_free_and_never_keys_cmcd(
            params in proptest::collection::vec(("[a-zA-Z]{1,5}|CMCD", "[a-z0-9%=]{0,6}"), 0..8),
            seed in proptest::prelude::any::<u64>(),
        ) {
            let joined = |ps: &[(String, String)]| ps.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
            let mut shuffled = params.clone();
            // A deterministic shuffle from the seed.
            let n = shuffled.len();
            for i in 0..n {
                let j = ((seed.rotate_left(i as u32) ^ i as u64) % n as u64) as usize;
                shuffled.swap(i, j);
            }
            let a = key_query(&[], "/v/a.ts", Some(&joined(&params)));
            let b = key_query(&[], "/v/a.ts", Some(&joined(&shuffled)));
            proptest::prop_assert_eq!(&a, &b);
            if let Some(q) = a {
                proptest::prop_assert!(!q.split('&').any(|p| p.split('=').next() == Some(CMCD_PARAM)), "{}", q);
            }
        }
    }
}
