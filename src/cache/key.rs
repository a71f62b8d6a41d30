//! The cache key: host + normalised path + query.
//!
//! The host is always in the key (a key without it lets one site's object answer for another).
//! Components are length-framed before hashing so `("a", "/bc")` and `("ab", "/c")` differ.

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
    fn host_is_normalised() {
        assert_eq!(request_host(None, Some("Edge.Example:80")), "edge.example");
        assert_eq!(request_host(Some("edge.example."), Some("other")), "edge.example");
        assert_eq!(request_host(None, Some("edge.example:8080")), "edge.example:8080");
        assert_eq!(request_host(None, None), "");
    }
}
