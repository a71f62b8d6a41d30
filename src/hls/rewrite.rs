//! Streaming playlist URI rewriter.

use bytes::Bytes;

use crate::hls::attr::find_attr;

/// Longest line rewritten. A line whose bytes before `\n` (a trailing `\r` included) exceed
/// this is passed through unchanged, and is never buffered beyond this size: once the partial
/// line exceeds it, it is emitted as it arrives until its newline. Real playlist lines are far
/// shorter; this bounds memory per response.
pub const MAX_LINE: usize = 64 * 1024;

/// Tags whose `URI="…"` attribute is rewritten. Every other tag and comment is left unchanged.
pub const URI_TAGS: [&str; 9] = [
    "EXT-X-KEY",
    "EXT-X-SESSION-KEY",
    "EXT-X-MAP",
    "EXT-X-MEDIA",
    "EXT-X-I-FRAME-STREAM-INF",
    "EXT-X-PART",
    "EXT-X-PRELOAD-HINT",
    "EXT-X-RENDITION-REPORT",
    "EXT-X-SESSION-DATA",
];

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Streaming rewriter: appends a query parameter (the client's token) to every URI of an HLS
/// playlist.
///
/// - URI lines (non-blank lines whose first non-blank byte is not `#`) and the `URI="…"`
///   attribute of the tags in [`URI_TAGS`] get `?<append>` or `&<append>` (inserted before any
///   `#fragment`); an existing parameter with the same name is replaced (all its occurrences).
/// - Absolute (`scheme:…`) and scheme-relative (`//host/…`) URIs are left alone, so the token
///   never leaks to another host, unless their host is the one given to
///   [`with_own_host`](Self::with_own_host) (http/https and scheme-relative only). `data:`,
///   `skd:` and every other scheme are always left alone.
/// - Everything else is byte-for-byte unchanged, line endings (`\n`, `\r\n`) included.
///   Lines over [`MAX_LINE`] are passed through unchanged.
///
/// Feed body chunks to [`push`](Self::push) and call [`finish`](Self::finish) at end of stream;
/// the concatenated output is the same however the input is split into chunks.
///
/// `Debug` shows the parameter name, never the appended value (a bearer token).
#[derive(Clone)]
pub struct PlaylistRewriter {
    append: Vec<u8>,
    /// The names of the parameters in `append` (one, or several joined by `&`).
    params: Vec<Vec<u8>>,
    own_host: Option<Vec<u8>>,
    buf: Vec<u8>,
    passthrough: bool,
    max_line: usize,
}

impl std::fmt::Debug for PlaylistRewriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaylistRewriter")
            .field(
                "params",
                &self
                    .params
                    .iter()
                    .map(|p| String::from_utf8_lossy(p))
                    .collect::<Vec<_>>(),
            )
            .field(
                "own_host",
                &self.own_host.as_deref().map(String::from_utf8_lossy),
            )
            .field("buffered", &self.buf.len())
            .field("passthrough", &self.passthrough)
            .field("max_line", &self.max_line)
            .finish()
    }
}

impl PlaylistRewriter {
    /// `append` is the query fragment added to every URI, e.g. `token=v1.k1.xxx.yyy`, or
    /// several parameters joined by `&` (a CloudFront signature); each parameter's name is the
    /// part before its first `=`, and a URI's own parameters of those names are replaced. Bytes that would break a playlist line
    /// or a quoted attribute (controls, space, `"`, `#`, non-ASCII, …) are percent-encoded. An
    /// empty `append` makes the rewriter an identity.
    pub fn new(append: String) -> Self {
        let append = sanitize(append.as_bytes());
        let params = append
            .split(|&c| c == b'&')
            .map(|part| match memchr::memchr(b'=', part) {
                Some(i) => part.get(..i).unwrap_or(&[]).to_vec(),
                None => part.to_vec(),
            })
            .collect();
        PlaylistRewriter {
            append,
            params,
            own_host: None,
            buf: Vec::new(),
            passthrough: false,
            max_line: MAX_LINE,
        }
    }

    /// Also rewrite absolute `http(s)://host/…` and `//host/…` URIs whose authority is `host`
    /// (case-insensitive; `host` or `host:port` as in the URIs; a `:80`/`:443` suffix is
    /// ignored on both sides). URIs with userinfo (`user@host`) are never rewritten.
    pub fn with_own_host(mut self, host: impl Into<String>) -> Self {
        let h = host.into();
        self.own_host = Some(strip_default_port(h.as_bytes()).to_ascii_lowercase());
        self
    }

    /// Overrides [`MAX_LINE`] (mainly for tests).
    pub fn with_max_line(mut self, max_line: usize) -> Self {
        self.max_line = max_line;
        self
    }

    /// Rewrites every complete line in `chunk` (together with any buffered partial line) and
    /// returns the output so far; a trailing partial line is kept for the next call.
    pub fn push(&mut self, chunk: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(chunk.len() + chunk.len() / 8 + 64);
        let mut rest = chunk;
        if self.passthrough {
            match memchr::memchr(b'\n', rest) {
                None => return Bytes::copy_from_slice(rest),
                Some(i) => {
                    let (head, tail) = rest.split_at(i + 1);
                    out.extend_from_slice(head);
                    rest = tail;
                    self.passthrough = false;
                }
            }
        }
        while !rest.is_empty() {
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    let (line, tail) = rest.split_at(i + 1);
                    if self.buf.is_empty() {
                        self.emit_line(line, &mut out);
                    } else {
                        let mut full = std::mem::take(&mut self.buf);
                        full.extend_from_slice(line);
                        self.emit_line(&full, &mut out);
                        full.clear();
                        self.buf = full;
                    }
                    rest = tail;
                }
                None => {
                    if self.buf.len() + rest.len() > self.max_line {
                        out.extend_from_slice(&self.buf);
                        out.extend_from_slice(rest);
                        self.buf.clear();
                        self.passthrough = true;
                    } else {
                        self.buf.extend_from_slice(rest);
                    }
                    break;
                }
            }
        }
        Bytes::from(out)
    }

    /// Flushes the last (unterminated) line, if any, and resets the rewriter for reuse.
    pub fn finish(&mut self) -> Bytes {
        self.passthrough = false;
        if self.buf.is_empty() {
            return Bytes::new();
        }
        let line = std::mem::take(&mut self.buf);
        let mut out = Vec::with_capacity(line.len() + self.append.len() + 1);
        self.emit_line(&line, &mut out);
        Bytes::from(out)
    }

    /// Rewrites a whole playlist at once (same result as `push` + `finish`).
    pub fn rewrite_all(&mut self, playlist: &[u8]) -> Vec<u8> {
        let mut out = self.push(playlist).to_vec();
        out.extend_from_slice(&self.finish());
        out
    }

    /// `line` includes its `\n` if it has one.
    fn emit_line(&self, line: &[u8], out: &mut Vec<u8>) {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        if body.len() > self.max_line || self.append.is_empty() {
            out.extend_from_slice(line);
            return;
        }
        let content = body.strip_suffix(b"\r").unwrap_or(body);
        match self.rewrite_line(content) {
            Some(new) => {
                out.extend_from_slice(&new);
                out.extend_from_slice(line.get(content.len()..).unwrap_or(&[]));
            }
            None => out.extend_from_slice(line),
        }
    }

    /// `content` excludes the line terminator. `None` means unchanged.
    fn rewrite_line(&self, content: &[u8]) -> Option<Vec<u8>> {
        let bom = if content.starts_with(BOM) {
            BOM.len()
        } else {
            0
        };
        let after_bom = content.get(bom..)?;
        let lead = after_bom.iter().position(|c| !c.is_ascii_whitespace())?; // blank line → unchanged
        let start = bom + lead;
        let s = content.get(start..)?;
        if s.first() == Some(&b'#') {
            return self.rewrite_tag(content, start);
        }
        let trail = s
            .iter()
            .rev()
            .take_while(|c| c.is_ascii_whitespace())
            .count();
        let end = content.len() - trail;
        let uri = content.get(start..end)?;
        let new = self.rewrite_uri(uri)?;
        let mut line = Vec::with_capacity(content.len() + self.append.len() + 1);
        line.extend_from_slice(content.get(..start)?);
        line.extend_from_slice(&new);
        line.extend_from_slice(content.get(end..)?);
        Some(line)
    }

    /// `content[start]` is `#`.
    fn rewrite_tag(&self, content: &[u8], start: usize) -> Option<Vec<u8>> {
        let tag = content.get(start + 1..)?;
        let colon = memchr::memchr(b':', tag)?;
        let name = tag.get(..colon)?;
        if !URI_TAGS.iter().any(|t| t.as_bytes() == name) {
            return None;
        }
        let attrs_at = start + 1 + colon + 1;
        let attrs = content.get(attrs_at..)?;
        let v = find_attr(attrs, b"URI")?;
        if !v.quoted {
            return None;
        }
        let (vs, ve) = (attrs_at + v.start, attrs_at + v.end);
        let new = self.rewrite_uri(content.get(vs..ve)?)?;
        let mut line = Vec::with_capacity(content.len() + self.append.len() + 1);
        line.extend_from_slice(content.get(..vs)?);
        line.extend_from_slice(&new);
        line.extend_from_slice(content.get(ve..)?);
        Some(line)
    }

    /// `None` means leave the URI alone.
    fn rewrite_uri(&self, uri: &[u8]) -> Option<Vec<u8>> {
        if uri.is_empty() {
            return None;
        }
        if let Some(after) = uri.strip_prefix(b"//") {
            if !self.is_own_authority(after) {
                return None;
            }
        } else if let Some(scheme_len) = scheme_len(uri) {
            let scheme = uri.get(..scheme_len)?;
            let is_http =
                scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https");
            let after = uri.get(scheme_len + 1..)?.strip_prefix(b"//")?;
            if !is_http || !self.is_own_authority(after) {
                return None;
            }
        }
        Some(self.add_param(uri))
    }

    fn is_own_authority(&self, after_slashes: &[u8]) -> bool {
        let Some(own) = &self.own_host else {
            return false;
        };
        let end = after_slashes
            .iter()
            .position(|&c| matches!(c, b'/' | b'?' | b'#'))
            .unwrap_or(after_slashes.len());
        let authority = after_slashes.get(..end).unwrap_or(&[]);
        if authority.is_empty() || authority.contains(&b'@') {
            return false;
        }
        strip_default_port(authority).eq_ignore_ascii_case(own)
    }

    fn add_param(&self, uri: &[u8]) -> Vec<u8> {
        let (before_frag, frag) = match memchr::memchr(b'#', uri) {
            Some(i) => uri.split_at(i),
            None => (uri, &[][..]),
        };
        let mut out = Vec::with_capacity(uri.len() + self.append.len() + 1);
        match memchr::memchr(b'?', before_frag) {
            None => {
                out.extend_from_slice(before_frag);
                out.push(b'?');
                out.extend_from_slice(&self.append);
            }
            Some(q) => {
                let (path, query) = before_frag.split_at(q + 1); // path includes '?'
                out.extend_from_slice(path);
                let mut replaced = false;
                let mut first = true;
                let mut parts: Vec<&[u8]> = Vec::new();
                for pair in query.split(|&c| c == b'&') {
                    let name = match memchr::memchr(b'=', pair) {
                        Some(i) => pair.get(..i).unwrap_or(pair),
                        None => pair,
                    };
                    if self.params.iter().any(|p| p.as_slice() == name) {
                        if !replaced {
                            parts.push(&self.append);
                            replaced = true;
                        }
                    } else {
                        parts.push(pair);
                    }
                }
                if replaced {
                    for p in parts {
                        if !first {
                            out.push(b'&');
                        }
                        out.extend_from_slice(p);
                        first = false;
                    }
                } else {
                    out.extend_from_slice(query);
                    if !query.is_empty() && !query.ends_with(b"&") {
                        out.push(b'&');
                    }
                    out.extend_from_slice(&self.append);
                }
            }
        }
        out.extend_from_slice(frag);
        out
    }
}

/// Length of the URI scheme if `uri` starts with `scheme:` (RFC 3986: ALPHA *(ALPHA / DIGIT /
/// "+" / "-" / ".")).
fn scheme_len(uri: &[u8]) -> Option<usize> {
    if !uri.first()?.is_ascii_alphabetic() {
        return None;
    }
    for (i, &c) in uri.iter().enumerate() {
        if c == b':' {
            return Some(i);
        }
        if !(c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.')) {
            return None;
        }
    }
    None
}

fn strip_default_port(authority: &[u8]) -> &[u8] {
    authority
        .strip_suffix(b":443")
        .or_else(|| authority.strip_suffix(b":80"))
        .unwrap_or(authority)
}

/// Percent-encodes bytes that must not appear raw in a playlist URI.
pub(super) fn sanitize(s: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(s.len());
    for &c in s {
        let bad = !c.is_ascii_graphic()
            || matches!(
                c,
                b'"' | b'#' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
            );
        if bad {
            out.push(b'%');
            out.push(HEX.get(usize::from(c >> 4)).copied().unwrap_or(b'0'));
            out.push(HEX.get(usize::from(c & 0xF)).copied().unwrap_or(b'0'));
        } else {
            out.push(c);
        }
    }
    out
}
