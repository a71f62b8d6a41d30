//! HLS playlist handling for the edge (pure functions, no I/O).
//!
//! - [`PlaylistRewriter`]: streaming rewrite that appends the client's token query parameter to
//!   every URI of a playlist (URI lines and the `URI="…"` attribute of the tags that carry one),
//!   so players that drop the playlist's own query when resolving relative URIs (hls.js) keep
//!   sending the token. Works chunk by chunk, suitable for a response body filter.
//! - [`filter_variants`]: drops master-playlist variants above a maximum height (the token's
//!   `mh` claim).
//! - [`is_playlist`]: decides from `Content-Type` and path whether a response is a playlist.
//! - [`encoding`]: the content coding of a playlist body (gzip, deflate, br) and a streaming,
//!   bounded decoder; [`Transform`]: the whole way of one playlist to one viewer (decode,
//!   filter, rewrite), sent as identity.
//! - [`delivery`]: the Low-Latency HLS delivery directives (`_HLS_msn`, `_HLS_part`,
//!   `_HLS_skip`) a player adds to a playlist request; [`parts`]: the partial segments a live
//!   LL-HLS playlist lists (the edge keeps them briefly).
//! - [`TokenPlan`]: a stored playlist's rewrite for a query token made once and cut where the
//!   token goes, so a viewer's copy is a concatenation (the fast paths' hits).

mod attr;
pub mod delivery;
pub mod encoding;
mod filter;
pub mod parts;
mod plan;
mod rewrite;
mod transform;

#[cfg(test)]
mod tests;

pub use filter::filter_variants;
pub use plan::TokenPlan;
pub use rewrite::{PlaylistRewriter, MAX_LINE, URI_TAGS};
pub use transform::Transform;

/// Whether a response is an HLS playlist: `Content-Type` (parameters ignored, case-insensitive)
/// is `application/vnd.apple.mpegurl`, `application/x-mpegurl`, `audio/mpegurl` or
/// `audio/x-mpegurl`, or the path (query ignored) ends in `.m3u8` (case-insensitive).
pub fn is_playlist(content_type: Option<&str>, path: &str) -> bool {
    if let Some(ct) = content_type {
        let mime = ct.split(';').next().unwrap_or("").trim();
        if [
            "application/vnd.apple.mpegurl",
            "application/x-mpegurl",
            "audio/mpegurl",
            "audio/x-mpegurl",
        ]
        .iter()
        .any(|m| mime.eq_ignore_ascii_case(m))
        {
            return true;
        }
    }
    let path = path.split(['?', '#']).next().unwrap_or("");
    let ext = ".m3u8";
    path.len() >= ext.len()
        && path
            .get(path.len() - ext.len()..)
            .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// The height of the rendition a path belongs to, by the naming convention the edge relies on
/// for `mh` (max height) tokens: a path segment, or a file name's stem, that is `<height>p` or
/// ends in `_<height>p` / `-<height>p` (`/title/480p/seg_001.ts`, `/title/video_720p.m3u8`).
/// The tallest one named wins. Paths without such a segment (masters, audio, subtitles) have
/// none, and are not limited by `mh`.
pub fn rendition_height(path: &str) -> Option<u32> {
    path.split('/')
        .filter_map(|segment| {
            let stem = segment.rsplit_once('.').map_or(segment, |(s, _)| s);
            let digits = stem.strip_suffix('p').or_else(|| stem.strip_suffix('P'))?;
            // Bytes, not chars: the byte after the last non-digit one starts a digit (or ends
            // the stem), so it is a char boundary even after a multi-byte character.
            let start = digits
                .bytes()
                .rposition(|b| !b.is_ascii_digit())
                .map_or(0, |i| i + 1);
            let (before, number) = digits.split_at(start);
            let boundary = before.is_empty() || before.ends_with('_') || before.ends_with('-');
            (boundary && (3..=4).contains(&number.len()))
                .then(|| number.parse().ok())
                .flatten()
        })
        .max()
}
