//! Master playlist variant filter (the token's `mh` claim).

use crate::hls::attr::find_attr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stream,
    IFrame,
}

#[derive(Debug)]
struct Entry {
    kind: Kind,
    /// Line index of the tag.
    tag: usize,
    /// Line index of the URI line (stream variants).
    uri: Option<usize>,
    height: Option<u32>,
}

/// The line without its terminator, BOM and leading whitespace.
fn content(line: &[u8]) -> &[u8] {
    let l = line.strip_suffix(b"\n").unwrap_or(line);
    let l = l.strip_suffix(b"\r").unwrap_or(l);
    let l = l.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(l);
    let lead = l
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(l.len());
    l.get(lead..).unwrap_or(&[])
}

fn height(attrs: &[u8]) -> Option<u32> {
    let v = find_attr(attrs, b"RESOLUTION")?;
    let val = attrs.get(v.start..v.end)?.trim_ascii();
    let x = val.iter().position(|&c| c == b'x' || c == b'X')?;
    let (w, h) = (val.get(..x)?, val.get(x + 1..)?);
    if w.is_empty() || !w.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if h.is_empty() || h.len() > 9 || !h.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(h).ok()?.parse().ok()
}

/// Removes `#EXT-X-STREAM-INF` variants (the tag and its URI line) and
/// `#EXT-X-I-FRAME-STREAM-INF` entries whose `RESOLUTION=WxH` has `H > max_height`.
///
/// - Entries without a (parsable) `RESOLUTION` are kept.
/// - If every `EXT-X-STREAM-INF` variant would go, the lowest ones are kept: every variant at
///   the smallest height (several codecs/bitrates may share it, and a player may support only
///   one of them), and I-frame entries up to that height.
/// - Lines between a `EXT-X-STREAM-INF` tag and its URI line (comments, unknown tags) are kept.
/// - Everything else is byte-for-byte unchanged; a playlist without variants (a media playlist)
///   is returned as is.
pub fn filter_variants(master: &[u8], max_height: u32) -> Vec<u8> {
    let lines: Vec<&[u8]> = master.split_inclusive(|&c| c == b'\n').collect();
    let mut entries: Vec<Entry> = Vec::new();
    let mut pending: Option<usize> = None; // index into entries of a stream tag awaiting its URI
    for (i, line) in lines.iter().enumerate() {
        let c = content(line);
        if c.is_empty() {
            continue;
        }
        if let Some(attrs) = c.strip_prefix(b"#EXT-X-STREAM-INF:") {
            entries.push(Entry {
                kind: Kind::Stream,
                tag: i,
                uri: None,
                height: height(attrs),
            });
            pending = Some(entries.len() - 1);
        } else if let Some(attrs) = c.strip_prefix(b"#EXT-X-I-FRAME-STREAM-INF:") {
            entries.push(Entry {
                kind: Kind::IFrame,
                tag: i,
                uri: None,
                height: height(attrs),
            });
        } else if c.first() != Some(&b'#') {
            if let Some(e) = pending.take().and_then(|p| entries.get_mut(p)) {
                e.uri = Some(i);
            }
        }
    }

    let too_high = |e: &Entry, limit: u32| e.height.is_some_and(|h| h > limit);
    let streams: Vec<&Entry> = entries.iter().filter(|e| e.kind == Kind::Stream).collect();
    let mut limit = max_height;
    if !streams.is_empty() && streams.iter().all(|e| too_high(e, max_height)) {
        if let Some(lowest) = streams.iter().filter_map(|e| e.height).min() {
            limit = lowest;
        }
    }
    let mut drop = vec![false; lines.len()];
    for e in &entries {
        let remove = too_high(e, limit);
        if remove {
            for idx in std::iter::once(e.tag).chain(e.uri) {
                if let Some(d) = drop.get_mut(idx) {
                    *d = true;
                }
            }
        }
    }
    if !drop.iter().any(|&d| d) {
        return master.to_vec();
    }
    let mut out = Vec::with_capacity(master.len());
    for (line, d) in lines.iter().zip(drop) {
        if !d {
            out.extend_from_slice(line);
        }
    }
    out
}
