//! Path ACL matching for native tokens.

/// Whether `acl` covers the (already normalised) request `path`.
///
/// `acl` is one or more ACLs joined with `!` (EdgeAuth-compatible); any match passes.
/// - An ACL ending in `/` is a prefix on segment boundaries: `/v/12/` covers `/v/12/a.ts` and
///   `/v/12/x/y.ts`, but not `/v/123/x.ts` (nor `/v/12` itself).
/// - Any other ACL is an exact path: `/v/12/master.m3u8` covers only that path.
///
/// Empty ACL parts never match. No wildcards: `*` is literal here (see
/// [`crate::token::edgeauth::acl_matches`] for EdgeAuth's wildcard ACLs).
pub fn acl_covers(acl: &str, path: &str) -> bool {
    acl.split('!').any(|one| {
        if one.is_empty() {
            false
        } else if one.ends_with('/') {
            path.starts_with(one)
        } else {
            path == one
        }
    })
}
