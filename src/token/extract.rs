//! Pulling a token out of a request: path prefix, query parameter or cookie.
//! Pure string functions; the caller decides which placements are enabled and in which order.

use std::borrow::Cow;

/// Path prefix that carries a token: `/t/<token>/rest…`.
pub const PATH_PREFIX: &str = "/t/";

/// Splits `/t/<token>/v/title/x.ts` into (`<token>`, `/v/title/x.ts`).
///
/// Returns `None` when the path does not start with `/t/`. With the prefix but no further `/`
/// (`/t/<token>`), the rest is `/`. The token may be empty (`/t//x.ts` → `("", "/x.ts")`), which
/// [`crate::token::verify`] reports as `missing`.
pub fn from_path(path: &str) -> Option<(&str, &str)> {
    let after = path.strip_prefix(PATH_PREFIX)?;
    match after.find('/') {
        Some(i) => Some((after.get(..i)?, after.get(i..)?)),
        None => Some((after, "/")),
    }
}

/// Result of looking for a token in a query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryToken<'a> {
    /// The parameter is not present.
    Absent,
    /// Present exactly once.
    Found {
        /// The value, percent-decoded when it contained valid `%XX` escapes forming UTF-8
        /// (otherwise as sent). `token` without `=` gives an empty value.
        token: Cow<'a, str>,
        /// The query without that parameter: the other parameters in their original order and
        /// bytes, joined with `&` (empty when nothing else was there).
        rest: String,
    },
    /// Present more than once: ambiguous, the caller should reject it as `malformed`.
    Duplicate,
}

/// Finds `param` in `query` (the part after `?`, without the `?`). Parameter names are compared
/// byte for byte (not decoded).
pub fn from_query<'a>(query: &'a str, param: &str) -> QueryToken<'a> {
    let mut found: Option<&'a str> = None;
    let mut rest: Vec<&str> = Vec::new();
    if query.is_empty() {
        return QueryToken::Absent;
    }
    for pair in query.split('&') {
        let (name, value) = match pair.split_once('=') {
            Some((n, v)) => (n, v),
            None => (pair, ""),
        };
        if name == param {
            if found.is_some() {
                return QueryToken::Duplicate;
            }
            found = Some(value);
        } else {
            rest.push(pair);
        }
    }
    match found {
        None => QueryToken::Absent,
        Some(value) => QueryToken::Found {
            token: percent_decode(value),
            rest: rest.join("&"),
        },
    }
}

fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let h = crate::token::keys::hex_val(b.get(i + 1).copied());
            let l = crate::token::keys::hex_val(b.get(i + 2).copied());
            match (h, l) {
                (Some(h), Some(l)) => {
                    out.push((h << 4) | l);
                    i += 3;
                }
                _ => return Cow::Borrowed(s),
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    match String::from_utf8(out) {
        Ok(d) => Cow::Owned(d),
        Err(_) => Cow::Borrowed(s),
    }
}

/// Finds cookie `name` in a `Cookie` header value (`a=1; token=…; b=2`). The first occurrence
/// wins; surrounding double quotes are removed. An empty value (a cleared cookie) is `None`.
pub fn from_cookie<'a>(cookie_header_value: &'a str, name: &str) -> Option<&'a str> {
    for pair in cookie_header_value.split(';') {
        let Some((n, v)) = pair.split_once('=') else {
            continue;
        };
        if n.trim() != name {
            continue;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .unwrap_or(v);
        return if v.is_empty() { None } else { Some(v) };
    }
    None
}
