//! Minimal, lenient HLS attribute-list scanning (`NAME=VALUE,NAME="quoted, value",…`).

/// Location of one attribute value inside an attribute list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AttrValue {
    /// Start of the value (after the opening quote for quoted values).
    pub start: usize,
    /// End of the value (before the closing quote for quoted values).
    pub end: usize,
    /// Whether the value was a quoted string.
    pub quoted: bool,
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while matches!(s.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    i
}

/// Finds attribute `name` (exact, case-sensitive) in `attrs` (the text after `TAG:`).
/// Returns `None` if absent or if the list is malformed before it (e.g. an unterminated quote).
pub(crate) fn find_attr(attrs: &[u8], name: &[u8]) -> Option<AttrValue> {
    let mut i = 0usize;
    loop {
        i = skip_ws(attrs, i);
        let name_start = i;
        while let Some(&c) = attrs.get(i) {
            if c == b'=' || c == b',' {
                break;
            }
            i += 1;
        }
        let this_name = attrs.get(name_start..i)?.trim_ascii_end();
        match attrs.get(i) {
            Some(b'=') => i += 1,
            Some(b',') => {
                i += 1;
                continue;
            }
            _ => return None,
        }
        i = skip_ws(attrs, i);
        let value = if attrs.get(i) == Some(&b'"') {
            let start = i + 1;
            let len = memchr::memchr(b'"', attrs.get(start..)?)?;
            i = start + len + 1;
            AttrValue {
                start,
                end: start + len,
                quoted: true,
            }
        } else {
            let start = i;
            while let Some(&c) = attrs.get(i) {
                if c == b',' {
                    break;
                }
                i += 1;
            }
            AttrValue {
                start,
                end: i,
                quoted: false,
            }
        };
        if this_name == name {
            return Some(value);
        }
        // skip anything up to the next separator
        let rest = attrs.get(i..)?;
        i += memchr::memchr(b',', rest)? + 1;
    }
}
