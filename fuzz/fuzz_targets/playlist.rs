//! Playlist bodies → the per-viewer transformation ([`edge::hls::Transform`]: decoding, the
//! `mh` variant filter, the token on every URI), as the proxy's playlist module feeds it.
//!
//! Input: a flags byte, a chunk-size byte, then the playlist.
//! - flags & 3 = the coding: 0 identity; 1 gzip, 2 br, 3 deflate — the playlist encoded here,
//!   or (flags & 4) the input itself as the encoded body, broken or not;
//! - flags & 8: an `mh` (max height) of 480; flags & 16: the rewriter knows its own host.
//!
//! Invariants: no panic; the output does not depend on how the body is cut into chunks; an
//! encoded playlist comes out as its identity twin does; a UTF-8 playlist stays UTF-8; every
//! relative URI line carries the token; with `mh`, the output keeps lines of the input, in order.
#![no_main]

use std::io::Write as _;

use edge::hls::encoding::Coding;
use edge::hls::{PlaylistRewriter, Transform, MAX_LINE};
use libfuzzer_sys::fuzz_target;

const TOKEN: &str = "token=v1.k1.cGF5bG9hZA.bWFj";
const HOST: &str = "edge.test";

fuzz_target!(|data: &[u8]| {
    let Some((&[flags, chunk], body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let coding =
        [Coding::Identity, Coding::Gzip, Coding::Br, Coding::Deflate][usize::from(flags & 3)];
    let raw = flags & 4 != 0;
    let mh = (flags & 8 != 0).then_some(480);
    let own_host = flags & 16 != 0;
    let chunk = usize::from(chunk).max(1);
    let rewriter = || {
        let r = PlaylistRewriter::new(TOKEN.to_string());
        if own_host {
            r.with_own_host(HOST)
        } else {
            r
        }
    };
    let whole = |coding, body: &[u8], size: usize| {
        run(Transform::new(coding, Some(rewriter()), mh), body, size)
    };
    if coding != Coding::Identity && raw {
        // Any bytes as an encoded body: refused or transformed, alike however cut.
        let one = whole(coding, body, usize::MAX).ok();
        assert_eq!(
            one,
            whole(coding, body, chunk).ok(),
            "chunking changes the output"
        );
        return;
    }
    let identity =
        whole(Coding::Identity, body, usize::MAX).expect("an identity body always transforms");
    assert_eq!(
        whole(Coding::Identity, body, chunk).as_ref(),
        Ok(&identity),
        "chunking changes the output"
    );
    if coding != Coding::Identity {
        let encoded = encode(coding, body);
        assert_eq!(
            whole(coding, &encoded, chunk).as_ref(),
            Ok(&identity),
            "{coding:?} differs from identity"
        );
    }
    if std::str::from_utf8(body).is_ok() {
        assert!(
            std::str::from_utf8(&identity).is_ok(),
            "UTF-8 in, not UTF-8 out"
        );
    }
    if let Some(h) = mh {
        // Without a rewriter the filter only drops lines.
        let filtered =
            run(Transform::new(Coding::Identity, None, Some(h)), body, chunk).expect("identity");
        let mut input = body.split_inclusive(|&c| c == b'\n');
        for line in filtered.split_inclusive(|&c| c == b'\n') {
            assert!(
                input.any(|l| l == line),
                "a line that was not in the input: {:?}",
                String::from_utf8_lossy(line)
            );
        }
    }
    for line in identity.split_inclusive(|&c| c == b'\n') {
        if is_relative_uri_line(line) {
            let text = String::from_utf8_lossy(line);
            assert!(
                text.contains(TOKEN),
                "a URI line without the token: {text:?}"
            );
        }
    }
});

/// The body through `t` in chunks of `size`, then its end.
fn run(mut t: Transform, body: &[u8], size: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for c in body.chunks(size.min(body.len()).max(1)) {
        out.extend_from_slice(&t.push(c).map_err(|e| e.to_string())?);
    }
    out.extend_from_slice(&t.finish().map_err(|e| e.to_string())?);
    Ok(out)
}

fn encode(coding: Coding, body: &[u8]) -> Vec<u8> {
    match coding {
        Coding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(body).and_then(|_| e.finish()).expect("gzip")
        }
        Coding::Deflate => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(body).and_then(|_| e.finish()).expect("deflate")
        }
        Coding::Br => {
            let mut out = Vec::new();
            let mut e = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            e.write_all(body).expect("br");
            drop(e);
            out
        }
        Coding::Identity => body.to_vec(),
    }
}

/// A line (with its terminator) that is a URI relative to the playlist (RFC 8216 §4.1: not
/// blank, not a tag or comment), short enough to be rewritten.
fn is_relative_uri_line(line: &[u8]) -> bool {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    if body.len() > MAX_LINE {
        return false;
    }
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let uri = body.trim_ascii();
    if uri.is_empty() || uri[0] == b'#' || uri.starts_with(b"//") {
        return false;
    }
    // `scheme:` (RFC 3986 §3.1) makes it absolute.
    let scheme = uri
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.')));
    !(uri[0].is_ascii_alphabetic() && scheme.is_some_and(|i| uri[i] == b':'))
}
