//! The token gate: where a request's token rides, whether it is valid for the path, and
//! what the request looks like without it (for the cache key and the origin).
//!
//! Placements, checked in this order: path prefix `/t/<token>/…`, query parameter
//! (`[tokens] param`), EdgeAuth query parameter (`[tokens.edgeauth] param`), cookie. The token
//! is always removed from the path and query, so every viewer shares one cached object.

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
}

/// An accepted token.
#[derive(Debug, Clone)]
pub struct Granted {
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

/// Whether `path` (normalised, without a token prefix) needs a token.
pub fn protects(cfg: &TokensConfig, path: &str) -> bool {
    cfg.required && !cfg.public.iter().any(|p| path.starts_with(p.as_str()))
}

/// Check one request. `path` is already normalised; `cookies` are the request's `Cookie`
/// field values (HTTP/2 may split them into several).
pub fn check<'c>(
    cfg: &TokensConfig,
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
    let checked = |verdict| Checked {
        path: path.clone(),
        query: query.clone(),
        verdict,
    };
    let (native_q, edge_q) = match (native_q, edge_q) {
        (Err(r), _) | (_, Err(r)) => return checked(Err(r)),
        (Ok(a), Ok(b)) => (a, b),
    };
    let cookie_token = cookies
        .into_iter()
        .find_map(|c| token::from_cookie(c, &cfg.cookie))
        .map(str::to_string);

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
    } else if let Some(t) = cookie_token {
        native(t, Placement::Cookie)
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
        }
    }

    fn sign(acl: &str) -> String {
        token::sign(&cfg().keyring, &Claims::new(acl.to_string(), NOW + 600)).unwrap()
    }

    fn run(path: &str, query: Option<&str>, cookie: Option<&str>) -> Checked {
        check(
            &cfg(),
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
}
