//! What both fast paths — the HTTP/1 front ([`super::front`]) and the HTTP/2 hot path
//! ([`super::hot`]) — may answer without the pipeline: a fresh memory hit of the content
//! request the gate admitted ([`crate::cache::Cache::fresh_memory_hit`]), stored as a 200 whose
//! `Content-Length` matches its body; and whether it is a playlist the pipeline rewrites for
//! its viewer (then sent whole, rewritten). One rule for both, so they cannot drift apart
//! (tests/it/differential.rs compares each with the pipeline).

use std::time::SystemTime;

use super::gate::{ContentRequest, Headers};
use crate::cache::FreshHit;
use crate::state::EdgeState;

/// A stored object a fast path may answer.
pub struct FastHit {
    pub hit: FreshHit,
    /// A playlist rewritten for its viewer (query token, `mh`): sent whole, rewritten.
    pub rewrites: bool,
}

/// The fast-path hit for `content` (admitted by the gate), asked with request `headers`.
pub fn find(
    state: &EdgeState,
    content: &ContentRequest,
    headers: Headers<'_>,
    now: SystemTime,
) -> Option<FastHit> {
    let hit =
        state
            .cache
            .fresh_memory_hit(&content.key, &content.host, &content.path, now, |h| {
                super::vary::variance(h, headers)
            })?;
    let header = &hit.meta.header;
    let length_matches = header
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        == Some(hit.body.len());
    if header.status != http::StatusCode::OK || !length_matches {
        return None;
    }
    let content_type = header
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let rewrites = super::rewrites_playlist(
        content.token.as_ref(),
        http::StatusCode::OK,
        content_type,
        &content.path,
    );
    Some(FastHit { hit, rewrites })
}
