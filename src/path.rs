//! Request path normalisation: the one path used for the token ACL, the cache key and the
//! upstream request.
//!
//! Percent-encoded unreserved characters are decoded and other escapes upper-cased; repeated
//! slashes collapse; `.` segments are removed. Ambiguous forms that proxies and origins are
//! known to read differently are refused instead of guessed at: encoded `/`, `\` and `.`,
//! NUL and other control bytes, backslashes, malformed escapes, and `..` segments.

use std::fmt;

/// Why a path was refused (answered with 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    NotAbsolute,
    EncodedSlash,
    EncodedDot,
    BadEscape,
    Backslash,
    ControlByte,
    DotDot,
}

impl PathError {
    /// Short reason code sent in the 400 body.
    pub fn code(&self) -> &'static str {
        match self {
            PathError::NotAbsolute => "path_not_absolute",
            PathError::EncodedSlash => "encoded_slash",
            PathError::EncodedDot => "encoded_dot",
            PathError::BadEscape => "bad_escape",
            PathError::Backslash => "backslash",
            PathError::ControlByte => "control_byte",
            PathError::DotDot => "dot_segment",
        }
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~')
}

/// Normalise a request path (without its query). See the module docs for the rules.
pub fn normalize(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    // Pass 1: escapes and forbidden bytes, building a canonical byte string.
    let mut canon: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex);
                let lo = bytes.get(i + 2).copied().and_then(hex);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(PathError::BadEscape);
                };
                let v = hi * 16 + lo;
                match v {
                    b'/' => return Err(PathError::EncodedSlash),
                    b'\\' => return Err(PathError::Backslash),
                    b'.' => return Err(PathError::EncodedDot),
                    0..=0x1f | 0x7f => return Err(PathError::ControlByte),
                    v if unreserved(v) => canon.push(v),
                    v => {
                        const HEX: &[u8; 16] = b"0123456789ABCDEF";
                        canon.extend_from_slice(&[
                            b'%',
                            HEX[(v >> 4) as usize],
                            HEX[(v & 15) as usize],
                        ]);
                    }
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            0..=0x1f | 0x7f => return Err(PathError::ControlByte),
            _ => {
                canon.push(b);
                i += 1;
            }
        }
    }
    // Pass 2: segments. Empty segments (repeated slashes) and `.` vanish; `..` is refused.
    let trailing_slash = canon.ends_with(b"/") || canon.ends_with(b"/.");
    let mut out = String::with_capacity(canon.len());
    for seg in canon.split(|&c| c == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => return Err(PathError::DotDot),
            seg => {
                out.push('/');
                // Escapes were validated and non-ASCII bytes kept as they came; the input
                // was a &str, so the segment is valid UTF-8 up to our ASCII rewrites.
                out.push_str(&String::from_utf8_lossy(seg));
            }
        }
    }
    if out.is_empty() || (trailing_slash && !out.ends_with('/')) {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        let cases = [
            ("/", "/"),
            ("/v/title/master.m3u8", "/v/title/master.m3u8"),
            ("//v///title/", "/v/title/"),
            ("/v/./title/./a.ts", "/v/title/a.ts"),
            ("/v/%74itle/a.ts", "/v/title/a.ts"),
            ("/v/a%20b.ts", "/v/a%20b.ts"),
            ("/v/a%2cb.ts", "/v/a%2Cb.ts"),
            ("/v/caf%C3%A9", "/v/caf%C3%A9"),
            ("/v/title/.", "/v/title/"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn ambiguous_forms_are_refused() {
        let cases = [
            ("v/a", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
            ("/v/a%2Fb", PathError::EncodedSlash),
            ("/v/a%2fb", PathError::EncodedSlash),
            ("/v/%2E%2E/secret", PathError::EncodedDot),
            ("/v/%2e./secret", PathError::EncodedDot),
            ("/v/..%2fsecret", PathError::EncodedSlash),
            ("/v/../secret", PathError::DotDot),
            ("/..", PathError::DotDot),
            ("/v\\..\\secret", PathError::Backslash),
            ("/v/%5C..", PathError::Backslash),
            ("/v/a%00.ts", PathError::ControlByte),
            ("/v/a\u{0}.ts", PathError::ControlByte),
            ("/v/a%0d%0aX: y", PathError::ControlByte),
            ("/v/a%zz", PathError::BadEscape),
            ("/v/a%4", PathError::BadEscape),
            ("/v/a%", PathError::BadEscape),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw), Err(want), "{raw:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 4_000, failure_persistence: None, ..Default::default() })]

        /// Any request target: never a panic; an accepted path is absolute, has no dot
        /// segments or empty escapes left, and normalising it again changes nothing.
        #[test]
        fn normalize_is_total_and_idempotent(raw in "[/a-zA-Z0-9%._~\\\\-]{0,40}") {
            if let Ok(p) = normalize(&raw) {
                proptest::prop_assert!(p.starts_with('/'));
                proptest::prop_assert!(!p.split('/').any(|s| s == "." || s == ".."), "{}", p);
                let again = normalize(&p);
                proptest::prop_assert_eq!(again.as_deref(), Ok(p.as_str()));
            }
        }

        #[test]
        fn normalize_never_panics_on_bytes(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = normalize(&String::from_utf8_lossy(&raw));
        }
    }
}
