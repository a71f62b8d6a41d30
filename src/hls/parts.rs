//! The partial segments a Low-Latency HLS media playlist lists (RFC 8216bis §4.4.4.9
//! `#EXT-X-PART`, §4.4.5.3 `#EXT-X-PRELOAD-HINT:TYPE=PART`), as request paths.
//!
//! A part is requested only while the playlist lists it (the last few target durations), so
//! the edge keeps one far shorter than a segment (`cache::parts`); this is how it tells a
//! part's path from a segment's: the live playlists it stores name them.

use super::attr;

/// The parts of a live LL-HLS media playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    /// `#EXT-X-TARGETDURATION`, seconds.
    pub target_duration: f64,
    /// The path of every part and preload-hinted part, resolved against the playlist's
    /// path (query left out: the edge's paths have none).
    pub paths: Vec<String>,
}

/// The parts `body` (the playlist at `playlist_path`, a normalised absolute path) lists, if
/// it is a live media playlist with parts (`#EXT-X-PART-INF`, a target duration, no
/// `#EXT-X-ENDLIST`: in a finished playlist parts are as durable as segments).
pub fn listed(playlist_path: &str, body: &[u8]) -> Option<Listed> {
    let text = std::str::from_utf8(body).ok()?;
    let mut target = None;
    let mut part_inf = false;
    let mut paths = Vec::new();
    for line in text.lines().map(str::trim) {
        if line == "#EXT-X-ENDLIST" {
            return None;
        }
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            target = v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|t| t.is_finite() && *t > 0.0);
        } else if line.starts_with("#EXT-X-PART-INF:") {
            part_inf = true;
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-PART:") {
            paths.extend(value(attrs, "URI").and_then(|u| resolve(playlist_path, u)));
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            if value(attrs, "TYPE") == Some("PART") {
                paths.extend(value(attrs, "URI").and_then(|u| resolve(playlist_path, u)));
            }
        }
    }
    (part_inf && !paths.is_empty()).then_some(Listed {
        target_duration: target?,
        paths,
    })
}

/// The value of attribute `name` in a tag's attribute list.
fn value<'a>(attrs: &'a str, name: &str) -> Option<&'a str> {
    let v = attr::find_attr(attrs.as_bytes(), name.as_bytes())?;
    attrs.get(v.start..v.end)
}

/// The path a URI in the playlist at `base` names: an absolute URL's path (whatever its
/// host: an edge serves one origin's names per path), an absolute path, or a relative one
/// against `base`'s folder, with `.` and `..` segments resolved (RFC 3986 §5.2). Query and
/// fragment are dropped.
fn resolve(base: &str, uri: &str) -> Option<String> {
    let uri = uri.split(['?', '#']).next().unwrap_or("");
    let joined = if let Some(rest) = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"))
    {
        rest.find('/').map(|i| rest[i..].to_string())?
    } else if let Some(rest) = uri.strip_prefix("//") {
        rest.find('/').map(|i| rest[i..].to_string())?
    } else if uri.starts_with('/') {
        uri.to_string()
    } else if uri.is_empty() {
        return None;
    } else {
        let folder = base.rsplit_once('/').map_or("", |(f, _)| f);
        format!("{folder}/{uri}")
    };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = joined.split('/').skip(1).collect();
    for (i, s) in segments.iter().enumerate() {
        match *s {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
        // A trailing `.`/`..` names a folder.
        if i + 1 == segments.len() && (*s == "." || *s == "..") {
            out.push("");
        }
    }
    Some(format!("/{}", out.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LL: &str = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n\
        #EXT-X-PART-INF:PART-TARGET=0.5\n#EXT-X-MEDIA-SEQUENCE:10\n\
        #EXT-X-MAP:URI=\"init.mp4\"\n\
        #EXT-X-PART:DURATION=0.5,URI=\"s10.0.m4s\",INDEPENDENT=YES\n\
        #EXT-X-PART:DURATION=0.5,URI=\"../other/s10.1.m4s?x=1\"\n\
        #EXTINF:2.0,\ns10.m4s\n\
        #EXT-X-PART:DURATION=0.5,URI=\"/abs/s11.0.m4s\"\n\
        #EXT-X-PART:DURATION=0.5,URI=\"https://cdn.example/x/s11.1.m4s\",BYTERANGE=\"100@0\"\n\
        #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s11.2.m4s\"\n\
        #EXT-X-PRELOAD-HINT:TYPE=MAP,URI=\"init2.mp4\"\n\
        #EXT-X-RENDITION-REPORT:URI=\"alt.m3u8\",LAST-MSN=11,LAST-PART=1\n";

    #[test]
    fn parts_and_part_hints_resolved() {
        let l = listed("/live/ch1/p.m3u8", LL.as_bytes()).unwrap();
        assert_eq!(l.target_duration, 2.0);
        assert_eq!(
            l.paths,
            [
                "/live/ch1/s10.0.m4s",
                "/live/other/s10.1.m4s",
                "/abs/s11.0.m4s",
                "/x/s11.1.m4s",
                "/live/ch1/s11.2.m4s",
            ],
            "segments, the map, other hints and rendition reports are not parts"
        );
    }

    #[test]
    fn only_live_playlists_with_parts() {
        let ended = format!("{LL}#EXT-X-ENDLIST\n");
        assert_eq!(listed("/l/p.m3u8", ended.as_bytes()), None);
        let plain = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n";
        assert_eq!(listed("/l/p.m3u8", plain.as_bytes()), None);
        let no_target = LL.replace("#EXT-X-TARGETDURATION:2\n", "");
        assert_eq!(listed("/l/p.m3u8", no_target.as_bytes()), None);
        assert_eq!(listed("/l/p.m3u8", b"\xff\xfe"), None);
        let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n";
        assert_eq!(listed("/l/p.m3u8", master.as_bytes()), None);
    }

    #[test]
    fn resolution() {
        assert_eq!(
            resolve("/a/b/p.m3u8", "c.m4s").as_deref(),
            Some("/a/b/c.m4s")
        );
        assert_eq!(
            resolve("/a/b/p.m3u8", "./c.m4s").as_deref(),
            Some("/a/b/c.m4s")
        );
        assert_eq!(
            resolve("/a/b/p.m3u8", "../../../c.m4s").as_deref(),
            Some("/c.m4s")
        );
        assert_eq!(resolve("/p.m3u8", "c.m4s").as_deref(), Some("/c.m4s"));
        assert_eq!(
            resolve("/a/p.m3u8", "//h/x/c.m4s").as_deref(),
            Some("/x/c.m4s")
        );
        assert_eq!(resolve("/a/p.m3u8", "http://h").as_deref(), None);
        assert_eq!(resolve("/a/p.m3u8", "").as_deref(), None);
        assert_eq!(
            resolve("/a/p.m3u8", "c.m4s#t=1").as_deref(),
            Some("/a/c.m4s")
        );
    }
}
