//! Putting a token into a URL, in either placement the edge accepts.

/// Where a signed URL carries its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `/t/<token>/path`: relative playlist URIs inherit it, no rewriting needed.
    Path,
    /// `path?token=<token>`: the edge rewrites playlists so every URI carries it.
    Query,
}

/// `url` with `token` placed in `style` (`param` names the query parameter). Any existing
/// query and fragment are kept. Returns `None` when `url` is not an absolute http(s) URL.
pub fn signed_url(url: &str, token: &str, style: Style, param: &str) -> Option<String> {
    let scheme_end = url.find("://")? + 3;
    let scheme = url.get(..scheme_end)?;
    if scheme != "http://" && scheme != "https://" {
        return None;
    }
    let rest = url.get(scheme_end..)?;
    let path_start = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(path_start);
    if authority.is_empty() {
        return None;
    }
    let (path_and_query, fragment) = match tail.find('#') {
        Some(i) => tail.split_at(i),
        None => (tail, ""),
    };
    let (path, query) = match path_and_query.find('?') {
        Some(i) => (&path_and_query[..i], Some(&path_and_query[i + 1..])),
        None => (path_and_query, None),
    };
    let path = if path.is_empty() { "/" } else { path };
    Some(match style {
        Style::Path => {
            let q = query.map(|q| format!("?{q}")).unwrap_or_default();
            format!("{scheme}{authority}/t/{token}{path}{q}{fragment}")
        }
        Style::Query => {
            let q = match query {
                Some(q) if !q.is_empty() => format!("?{q}&{param}={token}"),
                _ => format!("?{param}={token}"),
            };
            format!("{scheme}{authority}{path}{q}{fragment}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_styles() {
        let u = "http://127.0.0.1:8080/demo/ts/master.m3u8";
        assert_eq!(
            signed_url(u, "TOK", Style::Path, "token").unwrap(),
            "http://127.0.0.1:8080/t/TOK/demo/ts/master.m3u8"
        );
        assert_eq!(
            signed_url(u, "TOK", Style::Query, "token").unwrap(),
            "http://127.0.0.1:8080/demo/ts/master.m3u8?token=TOK"
        );
        let u = "https://cdn.example/v/a.m3u8?x=1#t=5";
        assert_eq!(
            signed_url(u, "T", Style::Query, "tk").unwrap(),
            "https://cdn.example/v/a.m3u8?x=1&tk=T#t=5"
        );
        assert_eq!(
            signed_url(u, "T", Style::Path, "tk").unwrap(),
            "https://cdn.example/t/T/v/a.m3u8?x=1#t=5"
        );
        assert_eq!(
            signed_url("http://h", "T", Style::Path, "tk").unwrap(),
            "http://h/t/T/"
        );
        assert!(signed_url("/v/a.m3u8", "T", Style::Path, "tk").is_none());
        assert!(signed_url("ftp://h/a", "T", Style::Path, "tk").is_none());
        assert!(signed_url("http:///a", "T", Style::Path, "tk").is_none());
    }
}
