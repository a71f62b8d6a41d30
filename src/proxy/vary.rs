//! `Vary` (RFC 9111 §4.1): a stored response is used only for requests whose values of the
//! header fields it names match those it was stored for. The variance — those values hashed —
//! is computed here once for both request paths (the pipeline's `cache_vary_filter` and the
//! front's memory hits), from the request as the gate sees it.
//!
//! `Accept-Encoding` is normalised before it is hashed (and the origin is asked with the
//! normalised value, see [`accept_encoding`]), so the dozens of spellings players and browsers
//! send make three variants, not dozens. `Vary: *` is never stored (see the policy).

use pingora_cache::VarianceBuilder;
use pingora_http::ResponseHeader;

use super::gate::Headers;

/// The encodings the edge distinguishes: which of `br` and `gzip` the request accepts. The
/// origin is asked with exactly that set, so a stored variant's encoding is always
/// acceptable to every request of the same class, and an origin without brotli still
/// compresses for a client that takes both.
pub fn accept_encoding(headers: Headers<'_>) -> &'static str {
    let mut gzip = false;
    let mut br = false;
    for value in headers.all("accept-encoding") {
        let Ok(value) = std::str::from_utf8(value) else {
            continue;
        };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            // `q=0` means "not acceptable" (RFC 9110 §12.5.3).
            let refused = parts.any(|p| {
                let p = p.trim();
                p.len() >= 2
                    && p[..2].eq_ignore_ascii_case("q=")
                    && p[2..].trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
            });
            if refused {
                continue;
            }
            match coding.as_str() {
                "br" => br = true,
                "gzip" | "x-gzip" => gzip = true,
                "*" => {
                    br = true;
                    gzip = true;
                }
                _ => {}
            }
        }
    }
    match (br, gzip) {
        (true, true) => "br, gzip",
        (true, false) => "br",
        (false, true) => "gzip",
        (false, false) => "identity",
    }
}

/// Whether a response's `Vary` names `*` (it can never be matched, so it is never stored).
pub fn varies_on_everything(resp: &ResponseHeader) -> bool {
    fields(resp).any(|f| f == "*")
}

fn fields(resp: &ResponseHeader) -> impl Iterator<Item = String> + '_ {
    resp.headers
        .get_all(http::header::VARY)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|f| f.trim().to_ascii_lowercase())
        .filter(|f| !f.is_empty())
}

/// The variance of `resp` for a request: `None` when the response does not vary (or only on
/// `*`, which is never stored), else the hash of the request's values of the named fields.
pub fn variance(resp: &ResponseHeader, req: Headers<'_>) -> Option<[u8; 16]> {
    let mut names: Vec<String> = fields(resp).collect();
    if names.is_empty() || names.iter().any(|f| f == "*") {
        return None;
    }
    names.sort();
    names.dedup();
    let mut vb = VarianceBuilder::new();
    for name in names {
        let value: Vec<u8> = if name == "accept-encoding" {
            accept_encoding(req).as_bytes().to_vec()
        } else {
            let mut joined = Vec::new();
            for (i, v) in req.all(&name).enumerate() {
                if i > 0 {
                    joined.extend_from_slice(b", ");
                }
                joined.extend_from_slice(v.trim_ascii());
            }
            joined
        };
        vb.add_owned_name_value(name, value);
    }
    vb.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut m = http::HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    fn resp(vary: &[&str]) -> ResponseHeader {
        let mut r = ResponseHeader::build(200, None).unwrap();
        for v in vary {
            r.append_header("vary", *v).unwrap();
        }
        r
    }

    #[test]
    fn accept_encoding_normalised() {
        for (value, want) in [
            ("gzip, deflate, br, zstd", "br, gzip"),
            ("br", "br"),
            ("gzip, deflate", "gzip"),
            ("br;q=0, gzip", "gzip"),
            ("gzip;q=0", "identity"),
            ("GZIP", "gzip"),
            ("identity", "identity"),
            ("*", "br, gzip"),
            ("", "identity"),
        ] {
            let m = map(&[("accept-encoding", value)]);
            assert_eq!(accept_encoding(Headers::Map(&m)), want, "{value}");
        }
        assert_eq!(accept_encoding(Headers::Map(&map(&[]))), "identity");
    }

    #[test]
    fn variance_follows_the_named_fields_only() {
        let r = resp(&["Accept-Encoding"]);
        let v = |pairs: &[(&str, &str)]| variance(&r, Headers::Map(&map(pairs)));
        assert!(v(&[]).is_some());
        assert_eq!(
            v(&[("accept-encoding", "gzip, deflate")]),
            v(&[("accept-encoding", "deflate, gzip")])
        );
        assert_ne!(v(&[("accept-encoding", "gzip")]), v(&[]));
        assert_eq!(
            v(&[("accept-encoding", "gzip"), ("x-other", "1")]),
            v(&[("accept-encoding", "gzip")])
        );
        assert_eq!(
            variance(
                &resp(&[]),
                Headers::Map(&map(&[("accept-encoding", "gzip")]))
            ),
            None
        );
        assert_eq!(variance(&resp(&["*"]), Headers::Map(&map(&[]))), None);
        assert!(varies_on_everything(&resp(&["accept-encoding, *"])));
        let two = resp(&["x-a", "X-B"]);
        assert_ne!(
            variance(&two, Headers::Map(&map(&[("x-a", "1"), ("x-b", "2")]))),
            variance(&two, Headers::Map(&map(&[("x-a", "1"), ("x-b", "3")])))
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2_000, failure_persistence: None, ..Default::default() })]

        /// Any `Accept-Encoding`: never a panic, always one of the four classes, and never a
        /// class naming a coding the header refused or did not name.
        #[test]
        fn accept_encoding_classes(value in "[a-zA-Z0-9*,;=. -]{0,40}") {
            let Ok(v) = http::HeaderValue::from_str(&value) else { return Ok(()) };
            let mut m = http::HeaderMap::new();
            m.insert(http::header::ACCEPT_ENCODING, v);
            let class = accept_encoding(Headers::Map(&m));
            proptest::prop_assert!(["br, gzip", "br", "gzip", "identity"].contains(&class));
            let lower = value.to_ascii_lowercase();
            if class.contains("br") {
                proptest::prop_assert!(lower.contains("br") || lower.contains('*'), "{} -> {}", value, class);
            }
        }
    }
}
