//! The token gate: where a request's token rides, whether it is valid for the path, and
//! what the request looks like without it (for the cache key and the origin).
//!
//! Placements, checked in this order: path prefix `/t/<token>/…`, query parameter
//! (`[tokens] param`), EdgeAuth query parameter (`[tokens.edgeauth] param`), CloudFront query
//! parameters (`[tokens.cloudfront]`), cookie, CloudFront cookies. The token is always removed
//! from the path and query, so every viewer shares one cached object.
//!
//! A CloudFront policy is matched against the URL the edge rebuilds from the request
//! ([`Site::url`]): `http` or `https` by the listener the request came in on, the request's
//! host (the target's authority or `Host`, lower-cased, without a default port), the
//! normalised path without a `/t/<token>` prefix, and the query without the edge's own token
//! parameters and without the CloudFront parameters (the rest in its original order and
//! bytes).

use std::net::IpAddr;

use crate::config::TokensConfig;
use crate::token::{self, Claims, QueryToken, Reject};

/// Where the accepted token came from (decides how playlists carry it onward).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    Path,
    Query,
    EdgeAuthQuery,
    Cookie,
    /// CloudFront `Expires`/`Policy`, `Signature`, `Key-Pair-Id` query parameters.
    CloudFrontQuery,
    /// CloudFront signed cookies.
    CloudFrontCookie,
}

/// An accepted token.
#[derive(Debug, Clone)]
pub struct Granted {
    /// The token as it rides; for [`Placement::CloudFrontQuery`] the query parameters to carry
    /// (`Policy=…&Signature=…&Key-Pair-Id=…`), for [`Placement::CloudFrontCookie`] the
    /// `Key-Pair-Id`.
    pub token: String,
    pub placement: Placement,
    /// Native tokens' claims (`None` for EdgeAuth).
    pub claims: Option<Claims>,
}

/// The request with the token taken out, and the verdict.
#[derive(Debug)]
pub struct Checked {
    /// The normalised path without a `/t/<token>` prefix.
    pub path: String,
    /// The query without token parameters (`None` when nothing is left).
    pub query: Option<String>,
    /// `Ok(None)`: no token needed and none given.
    pub verdict: Result<Option<Granted>, Reject>,
}

fn strip_query(
    query: Option<&str>,
    param: &str,
) -> (Option<String>, Result<Option<String>, Reject>) {
    let Some(q) = query else {
        return (None, Ok(None));
    };
    match token::from_query(q, param) {
        QueryToken::Absent => (Some(q.to_string()), Ok(None)),
        QueryToken::Found { token, rest } => (
            (!rest.is_empty()).then_some(rest),
            Ok(Some(token.into_owned())),
        ),
        QueryToken::Duplicate => (Some(q.to_string()), Err(Reject::Malformed)),
    }
}

/// Where a request arrived: what a CloudFront policy's `Resource` is matched against.
#[derive(Debug, Clone, Copy)]
pub struct Site<'a> {
    /// The request came in over TLS (`https`).
    pub tls: bool,
    /// The request's host, normalised as in the cache key.
    pub host: &'a str,
}

impl Site<'_> {
    /// The URL of `path` and `query` at this site (see the module doc).
    pub fn url(&self, path: &str, query: Option<&str>) -> String {
        let (scheme, default_port) = if self.tls {
            ("https", ":443")
        } else {
            ("http", ":80")
        };
        let host = self.host.strip_suffix(default_port).unwrap_or(self.host);
        match query {
            Some(q) => format!("{scheme}://{host}{path}?{q}"),
            None => format!("{scheme}://{host}{path}"),
        }
    }
}

/// The CloudFront signature values in `query`, and the query without them. `None` when the
/// query carries no CloudFront signature (the query is kept whole); a repeated parameter is
/// `cf_malformed`.
#[allow(clippy::type_complexity)]
fn cloudfront_query(
    query: Option<&str>,
) -> Option<(Option<String>, Result<[Option<String>; 4], Reject>)> {
    let mut rest = query.map(str::to_string);
    let mut values: [Option<String>; 4] = Default::default();
    for (slot, name) in values.iter_mut().zip(token::cloudfront::QUERY_PARAMS) {
        let (r, v) = strip_query(rest.as_deref(), name);
        match v {
            Ok(v) => *slot = v,
            Err(_) => return Some((query.map(str::to_string), Err(Reject::CfMalformed))),
        }
        rest = r;
    }
    let signed = token::cloudfront::Signed::from_values(values.each_ref().map(|v| v.as_deref()));
    signed.present().then_some((rest, Ok(values)))
}

/// The query parameters that carry a CloudFront signature on to playlist URIs, in the order
/// CloudFront's own signers write them.
fn cloudfront_carried(values: &[Option<String>; 4]) -> String {
    const VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    values
        .iter()
        .zip(token::cloudfront::QUERY_PARAMS)
        .filter_map(|(v, name)| {
            v.as_deref()
                .map(|v| format!("{name}={}", percent_encoding::utf8_percent_encode(v, VALUE)))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Whether `path` (normalised, without a token prefix) needs a token.
pub fn protects(cfg: &TokensConfig, path: &str) -> bool {
    cfg.required && !cfg.public.iter().any(|p| path.starts_with(p.as_str()))
}

/// Check one request. `path` is already normalised; `cookies` are the request's `Cookie`
/// field values (HTTP/2 may split them into several).
pub fn check<'c>(
    cfg: &TokensConfig,
    site: Site<'_>,
    path: &str,
    query: Option<&str>,
    cookies: impl IntoIterator<Item = &'c str>,
    client: IpAddr,
    now: u64,
) -> Checked {
    // Take every placement out of the request first, so the cache key never carries a token.
    let (path_token, path) = match token::from_path(path) {
        Some((t, rest)) => (Some(t.to_string()), rest.to_string()),
        None => (None, path.to_string()),
    };
    let (query, native_q) = strip_query(query, &cfg.param);
    let (query, edge_q) = match &cfg.edgeauth {
        Some(ea) => strip_query(query.as_deref(), &ea.param),
        None => (query, Ok(None)),
    };
    let (query, cf_q) = match &cfg.cloudfront {
        Some(_) => match cloudfront_query(query.as_deref()) {
            Some((rest, values)) => (rest, Some(values)),
            None => (query, None),
        },
        None => (query, None),
    };
    let checked = |verdict| Checked {
        path: path.clone(),
        query: query.clone(),
        verdict,
    };
    let (native_q, edge_q, cf_q) = match (native_q, edge_q, cf_q.transpose()) {
        (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return checked(Err(r)),
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
    };
    let cookies: Vec<&str> = cookies.into_iter().collect();
    let cookie_token = cookies
        .iter()
        .find_map(|c| token::from_cookie(c, &cfg.cookie))
        .map(str::to_string);
    let cloudfront = |signed: &token::cloudfront::Signed<'_>| {
        let keys = cfg.cloudfront.as_deref().ok_or(Reject::CfUnknownKey)?;
        let url = site.url(&path, query.as_deref());
        token::cloudfront::verify(keys, signed, &url, client, now, &cfg.policy)
    };
    let cf_cookies = cfg.cloudfront.as_ref().map(|_| {
        token::cloudfront::Signed::from_values(
            token::cloudfront::COOKIES
                .map(|name| cookies.iter().find_map(|c| token::from_cookie(c, name))),
        )
    });

    let native = |t: String, placement| {
        let claims = token::verify(&cfg.keyring, &t, &path, client, now, &cfg.policy)?;
        // `mh` holds on every request, not only in the master's variant list: a rendition
        // taller than the viewer's tier is refused however its URL was found.
        if let (Some(mh), Some(height)) = (claims.mh, crate::hls::rendition_height(&path)) {
            if height > mh {
                return Err(Reject::RenditionNotAllowed);
            }
        }
        Ok(Some(Granted {
            token: t,
            placement,
            claims: Some(claims),
        }))
    };
    let verdict = if let Some(t) = path_token {
        native(t, Placement::Path)
    } else if let Some(t) = native_q {
        native(t, Placement::Query)
    } else if let (Some(t), Some(ea)) = (edge_q, &cfg.edgeauth) {
        token::edgeauth::verify(&ea.key, &t, &path, client, now, &cfg.policy).map(|_| {
            Some(Granted {
                token: t,
                placement: Placement::EdgeAuthQuery,
                claims: None,
            })
        })
    } else if let Some(values) = cf_q {
        let signed =
            token::cloudfront::Signed::from_values(values.each_ref().map(|v| v.as_deref()));
        cloudfront(&signed).map(|_| {
            Some(Granted {
                token: cloudfront_carried(&values),
                placement: Placement::CloudFrontQuery,
                claims: None,
            })
        })
    } else if let Some(t) = cookie_token {
        native(t, Placement::Cookie)
    } else if let Some(signed) = cf_cookies.filter(|s| s.present()) {
        cloudfront(&signed).map(|v| {
            Some(Granted {
                token: v.key_pair_id,
                placement: Placement::CloudFrontCookie,
                claims: None,
            })
        })
    } else if !protects(cfg, &path) {
        Ok(None)
    } else {
        Err(Reject::Missing)
    };
    checked(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EdgeAuthConfig;
    use crate::token::{Keyring, VerifyPolicy};
    use std::sync::Arc;

    const NOW: u64 = 1_800_000_000;
    const SITE: Site<'static> = Site {
        tls: false,
        host: "edge.test",
    };

    fn cfg() -> TokensConfig {
        TokensConfig {
            required: true,
            param: "token".into(),
            cookie: "edge_token".into(),
            policy: VerifyPolicy::default(),
            keyring: Arc::new(Keyring::single("k1", &[7u8; 32]).unwrap()),
            public: vec!["/public/".into()],
            edgeauth: Some(EdgeAuthConfig {
                param: "hdnts".into(),
                key: vec![1, 2, 3, 4],
            }),
            cloudfront: Some(Arc::new(Default::default())),
        }
    }

    fn sign(acl: &str) -> String {
        token::sign(&cfg().keyring, &Claims::new(acl.to_string(), NOW + 600)).unwrap()
    }

    fn run(path: &str, query: Option<&str>, cookie: Option<&str>) -> Checked {
        check(
            &cfg(),
            SITE,
            path,
            query,
            cookie,
            "192.0.2.1".parse().unwrap(),
            NOW,
        )
    }

    #[test]
    fn path_tokens_are_stripped_and_checked() {
        let t = sign("/v/a/");
        let c = run(&format!("/t/{t}/v/a/seg.ts"), Some("x=1"), None);
        assert_eq!(c.path, "/v/a/seg.ts");
        assert_eq!(c.query.as_deref(), Some("x=1"));
        let g = c.verdict.unwrap().unwrap();
        assert_eq!(g.placement, Placement::Path);
        assert_eq!(g.token, t);
        let c = run(&format!("/t/{t}/v/b/seg.ts"), None, None);
        assert_eq!(c.verdict.unwrap_err(), Reject::AclMismatch);
    }

    #[test]
    fn query_tokens_are_stripped_and_checked() {
        let t = sign("/v/a/");
        let c = run("/v/a/seg.ts", Some(&format!("a=1&token={t}&b=2")), None);
        assert_eq!(c.query.as_deref(), Some("a=1&b=2"));
        assert_eq!(c.verdict.unwrap().unwrap().placement, Placement::Query);
        let c = run("/v/a/seg.ts", Some(&format!("token={t}")), None);
        assert_eq!(c.query, None);
        let c = run("/v/a/seg.ts", Some(&format!("token={t}&token={t}")), None);
        assert_eq!(c.verdict.unwrap_err(), Reject::Malformed);
    }

    #[test]
    fn cookie_tokens() {
        let t = sign("/v/a/");
        let c = run(
            "/v/a/seg.ts",
            None,
            Some(&format!("other=1; edge_token={t}")),
        );
        assert_eq!(c.verdict.unwrap().unwrap().placement, Placement::Cookie);
    }

    #[test]
    fn missing_public_and_optional() {
        assert_eq!(
            run("/v/a/seg.ts", None, None).verdict.unwrap_err(),
            Reject::Missing
        );
        assert!(run("/public/logo.png", None, None)
            .verdict
            .unwrap()
            .is_none());
        let mut optional = cfg();
        optional.required = false;
        let c = check(
            &optional,
            SITE,
            "/v/a/seg.ts",
            None,
            None,
            "192.0.2.1".parse().unwrap(),
            NOW,
        );
        assert!(c.verdict.unwrap().is_none());
        // A bad token is refused even where none is required.
        let c = check(
            &optional,
            SITE,
            "/v/a/seg.ts",
            Some("token=v1.k1.x.y"),
            None,
            "192.0.2.1".parse().unwrap(),
            NOW,
        );
        assert!(c.verdict.is_err());
    }

    #[test]
    fn edgeauth_param_is_stripped() {
        let c = run("/v/a/seg.ts", Some("hdnts=exp=1~acl=/*~hmac=00&z=9"), None);
        assert_eq!(c.query.as_deref(), Some("z=9"));
        assert!(c.verdict.is_err(), "a forged EdgeAuth token is refused");
    }

    #[test]
    fn cloudfront_params_are_stripped_only_when_signed() {
        // No key configured under this id: refused, and every CloudFront parameter is out of
        // the query the origin and the key see.
        let c = run(
            "/v/a/seg.ts",
            Some("a=1&Expires=1800000600&Signature=abc&Key-Pair-Id=K1&b=2"),
            None,
        );
        assert_eq!(c.query.as_deref(), Some("a=1&b=2"));
        assert_eq!(c.verdict.unwrap_err(), Reject::CfUnknownKey);
        let c = run(
            "/v/a/seg.ts",
            Some("Policy=e30_&Signature=abc&Key-Pair-Id=K1&Signature=x"),
            None,
        );
        assert_eq!(c.verdict.unwrap_err(), Reject::CfMalformed);
        // `Expires` alone is the origin's own parameter.
        let t = sign("/v/a/");
        let c = run("/v/a/seg.ts", Some(&format!("Expires=5&token={t}")), None);
        assert_eq!(c.query.as_deref(), Some("Expires=5"));
        assert!(c.verdict.is_ok());
        // Cookies: present only with a signature, key pair id or policy cookie.
        let c = run(
            "/v/a/seg.ts",
            None,
            Some("CloudFront-Key-Pair-Id=K1; CloudFront-Expires=9"),
        );
        assert_eq!(c.verdict.unwrap_err(), Reject::CfMalformed);
        let c = run("/v/a/seg.ts", None, Some("CloudFront-Expires=9"));
        assert_eq!(c.verdict.unwrap_err(), Reject::Missing);
    }

    #[test]
    fn urls_of_a_site() {
        let s = |tls, host| Site { tls, host };
        assert_eq!(s(false, "h").url("/v/a.ts", None), "http://h/v/a.ts");
        assert_eq!(
            s(true, "h:443").url("/v/a.ts", Some("x=1")),
            "https://h/v/a.ts?x=1"
        );
        assert_eq!(s(false, "h:8080").url("/", None), "http://h:8080/");
        assert_eq!(s(true, "h:8443").url("/", None), "https://h:8443/");
        assert_eq!(
            cloudfront_carried(&[
                None,
                Some("e30_".into()),
                Some("a~b-c".into()),
                Some("K1".into())
            ]),
            "Policy=e30_&Signature=a~b-c&Key-Pair-Id=K1"
        );
    }
}
