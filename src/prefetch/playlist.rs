//! The segments of an HLS media playlist, as the edge will be asked for them (pure).
//!
//! Each media segment URI (a line that is not a tag) gets its media sequence number
//! (`#EXT-X-MEDIA-SEQUENCE` + its position) and is resolved against the playlist's own
//! normalised path (RFC 3986 §5.2, as a player resolves it), then normalised as the gate
//! normalises a request path ([`crate::path::normalize`]). A multivariant playlist (its URIs
//! are playlists), a playlist of byte ranges (one URI is several segments), and URIs with a
//! scheme or an authority (another host's objects) give no segments.

/// A media segment of a playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Media sequence number.
    pub msn: u64,
    /// Normalised absolute path.
    pub path: String,
    /// The URI's own query, as written.
    pub query: Option<String>,
}

/// The most segments kept of one playlist (a two-hour title of 1 s segments).
pub const MAX_SEGMENTS: usize = 8192;

/// The media segments of `body` (a playlist served at `base`, a normalised path), or `None`
/// when it is not a media playlist the edge can follow.
pub fn media_segments(body: &str, base: &str) -> Option<Vec<Segment>> {
    let mut lines = body.lines().map(str::trim);
    if lines.next()? != "#EXTM3U" {
        return None;
    }
    let mut msn: Option<u64> = None;
    let mut out = Vec::new();
    let mut n = 0u64;
    for line in lines {
        if line.is_empty() {
            continue;
        }
        if let Some(tag) = line.strip_prefix('#') {
            if tag.starts_with("EXT-X-STREAM-INF") || tag.starts_with("EXT-X-BYTERANGE") {
                return None;
            }
            if let Some(v) = tag.strip_prefix("EXT-X-MEDIA-SEQUENCE:") {
                msn = Some(v.trim().parse().ok()?);
            }
            continue;
        }
        let first = msn.unwrap_or(0);
        let this = first.checked_add(n)?;
        n += 1;
        if let Some(s) = resolve(base, line) {
            out.push(Segment {
                msn: this,
                path: s.0,
                query: s.1,
            });
        }
    }
    if out.len() > MAX_SEGMENTS {
        out.drain(..out.len() - MAX_SEGMENTS);
    }
    Some(out)
}

/// `uri` resolved against the playlist path `base`: the normalised path and the query.
/// `None` for a URI with a scheme or an authority, or a path that does not normalise.
pub fn resolve(base: &str, uri: &str) -> Option<(String, Option<String>)> {
    let uri = uri.split('#').next().unwrap_or("");
    if uri.is_empty() || uri.starts_with("//") {
        return None;
    }
    // A scheme: letters, digits, `+-.` before a `:` that comes before any `/`, `?`.
    if let Some(colon) = uri.find(':') {
        if !uri[..colon].contains(['/', '?']) {
            return None;
        }
    }
    let (path, query) = match uri.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (uri, None),
    };
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        let dir = base.rsplit_once('/').map_or("", |(d, _)| d);
        format!("{dir}/{path}")
    };
    let path = crate::path::normalize(&remove_dot_segments(&joined)).ok()?;
    Some((path, query.filter(|q| !q.is_empty())))
}

/// RFC 3986 §5.2.4 on an absolute path: `.` and `..` segments resolved, as a player does
/// before it asks (the edge refuses a request path with `..`).
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    for (i, seg) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        match *seg {
            "." | ".." => {
                if *seg == ".." {
                    out.pop();
                }
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(msn: u64, path: &str, query: Option<&str>) -> Segment {
        Segment {
            msn,
            path: path.to_string(),
            query: query.map(str::to_string),
        }
    }

    #[test]
    fn vod_playlist_resolves_against_its_path() {
        let body = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nseg_0.ts\n#EXTINF:2,\n../b/seg_1.ts?v=2\n#EXTINF:2,\n/abs/seg_2.ts\n#EXT-X-ENDLIST\n";
        assert_eq!(
            media_segments(body, "/vod/t/a/index.m3u8").unwrap(),
            vec![
                seg(0, "/vod/t/a/seg_0.ts", None),
                seg(1, "/vod/t/b/seg_1.ts", Some("v=2")),
                seg(2, "/abs/seg_2.ts", None),
            ]
        );
    }

    #[test]
    fn live_playlist_numbers_from_its_media_sequence() {
        let body =
            "#EXTM3U\r\n#EXT-X-MEDIA-SEQUENCE:41\r\n#EXTINF:2,\r\n41.ts\r\n#EXTINF:2,\r\n42.ts\r\n";
        assert_eq!(
            media_segments(body, "/live/c/index.m3u8").unwrap(),
            vec![
                seg(41, "/live/c/41.ts", None),
                seg(42, "/live/c/42.ts", None)
            ]
        );
    }

    #[test]
    fn other_hosts_keep_their_number_but_are_left_out() {
        let body = "#EXTM3U\n#EXTINF:2,\nhttps://cdn.example/0.ts\n#EXTINF:2,\n1.ts\n";
        assert_eq!(
            media_segments(body, "/v/i.m3u8").unwrap(),
            vec![seg(1, "/v/1.ts", None)]
        );
    }

    #[test]
    fn not_followed() {
        assert!(media_segments("not a playlist", "/v/i.m3u8").is_none());
        let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n480p/index.m3u8\n";
        assert!(media_segments(master, "/v/master.m3u8").is_none());
        let ranges = "#EXTM3U\n#EXT-X-BYTERANGE:100@0\n#EXTINF:2,\nall.ts\n";
        assert!(media_segments(ranges, "/v/i.m3u8").is_none());
        let bad_seq = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:x\n#EXTINF:2,\n1.ts\n";
        assert!(media_segments(bad_seq, "/v/i.m3u8").is_none());
    }

    #[test]
    fn dot_segments() {
        assert_eq!(remove_dot_segments("/a/b/../c.ts"), "/a/c.ts");
        assert_eq!(remove_dot_segments("/a/./c.ts"), "/a/c.ts");
        assert_eq!(remove_dot_segments("/../../c.ts"), "/c.ts");
        assert_eq!(remove_dot_segments("/a/b/.."), "/a/");
    }

    #[test]
    fn resolve_cases() {
        assert_eq!(
            resolve("/a/b.m3u8", "c.ts#frag"),
            Some(("/a/c.ts".into(), None))
        );
        assert_eq!(resolve("/a/b.m3u8", "//host/c.ts"), None);
        assert_eq!(resolve("/a/b.m3u8", "data:xyz"), None);
        assert_eq!(
            resolve("/a/b.m3u8", "c.ts?"),
            Some(("/a/c.ts".into(), None))
        );
        assert_eq!(
            resolve("/a/b.m3u8", "x/c:d.ts"),
            Some(("/a/x/c:d.ts".into(), None))
        );
    }
}
