//! Low-Latency HLS delivery directives (RFC 8216bis §6.2.5): the query parameters a player
//! adds to a media playlist request to ask for a *blocking playlist reload* (`_HLS_msn`, and
//! `_HLS_part` with it: "answer once the playlist holds this media sequence number / part") or
//! a *playlist delta update* (`_HLS_skip=YES|v2`).
//!
//! Each names a different response, so they always count in the cache key, whatever the
//! `[[cache.keys]]` policy of the path says: a blocking request keyed without them would be
//! answered with whatever playlist the edge holds, which may lack the part the player waits
//! for. Keyed with them, concurrent players waiting for the same (playlist, msn, part) share
//! one origin request through the cache lock, and the answer, which names a fixed point of the
//! stream, may be kept longer than a plain live playlist (`cache::policy`).

/// The delivery directives' parameter names.
pub const DIRECTIVES: [&str; 3] = ["_HLS_msn", "_HLS_part", "_HLS_skip"];

/// Whether a query parameter name is a delivery directive.
pub fn is_directive(name: &str) -> bool {
    DIRECTIVES.contains(&name)
}

/// Whether a request query asks for a blocking playlist reload: it carries `_HLS_msn`.
/// (`_HLS_part` without `_HLS_msn` is a client error the origin answers with 400.)
pub fn blocks(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .any(|p| p.split_once('=').map_or(p, |(k, _)| k) == "_HLS_msn")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_and_blocking() {
        assert!(DIRECTIVES.iter().all(|d| is_directive(d)));
        assert!(!is_directive("_hls_msn"), "names are case-sensitive");
        assert!(!is_directive("token"));
        assert!(blocks(Some("_HLS_msn=12")));
        assert!(blocks(Some("token=x&_HLS_part=1&_HLS_msn=12")));
        assert!(!blocks(Some("_HLS_part=1")));
        assert!(!blocks(Some("_HLS_skip=YES")));
        assert!(!blocks(Some("x_HLS_msn=1&_HLS_msnx=2")));
        assert!(!blocks(None));
    }
}
