//! Purge requests, from the admin API (`POST /admin/purge`) or the `PURGE` method.
//!
//! Admin body (JSON), one of:
//! - `{"url": "http://host/v/title/seg1.ts"}`: that path on that host (every query variant).
//! - `{"prefix": "/v/title/"}` or `{"prefix": "/v/title/", "host": "cdn.example"}`: everything
//!   under the prefix (on every host, or on one).
//!
//! Add `"soft": true` to mark objects stale instead of removing them: the next request
//! revalidates with the origin (`If-None-Match`/`If-Modified-Since`) and a 304 keeps the body.
//! Every purge is a [`super::bans::Ban`]; a hard purge of one URL also frees its storage now.

use serde::Deserialize;

use super::bans::Ban;
use super::{key, Cache};

/// A validated purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purge {
    pub host: Option<String>,
    pub path: String,
    pub query: Option<String>,
    pub exact: bool,
    pub soft: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    url: Option<String>,
    prefix: Option<String>,
    host: Option<String>,
    #[serde(default)]
    soft: bool,
}

/// Parse and validate an admin purge body. Errors are short and safe to show the caller.
pub fn parse(body: &[u8]) -> Result<Purge, String> {
    let b: Body = serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    match (b.url, b.prefix) {
        (Some(url), None) => {
            if b.host.is_some() {
                return Err("\"host\" goes with \"prefix\"; a \"url\" names its own host".into());
            }
            let uri: http::Uri = url.parse().map_err(|_| format!("invalid url {url:?}"))?;
            let host = uri
                .authority()
                .map(|a| key::request_host(Some(a.as_str()), None));
            let Some(host) = host else {
                return Err(format!("url {url:?} must be absolute (http://host/path)"));
            };
            let path =
                crate::path::normalize(uri.path()).map_err(|e| format!("url path refused: {e}"))?;
            Ok(Purge {
                host: Some(host),
                path,
                query: uri.query().map(str::to_string),
                exact: true,
                soft: b.soft,
            })
        }
        (None, Some(prefix)) => {
            let path =
                crate::path::normalize(&prefix).map_err(|e| format!("prefix refused: {e}"))?;
            let host = b.host.map(|h| key::request_host(None, Some(&h)));
            Ok(Purge {
                host,
                path,
                query: None,
                exact: false,
                soft: b.soft,
            })
        }
        _ => Err("give exactly one of \"url\" or \"prefix\"".into()),
    }
}

/// Apply a purge: record the ban (persisted), and for a hard purge of one URL remove its
/// stored object now.
pub async fn apply(cache: &'static Cache, p: Purge) -> std::io::Result<Ban> {
    let ban = cache
        .bans
        .add(p.host.clone(), p.path.clone(), p.exact, p.soft)?;
    if p.exact && !p.soft {
        if let Some(host) = &p.host {
            let k = key::for_request(host, &p.path, p.query.as_deref());
            if let Err(e) = cache.remove_stored(&k).await {
                tracing::warn!(error = %e, "purge: removing the stored object failed; the ban still applies");
            }
        }
    }
    cache
        .stats
        .purges
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(ban)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_prefixes() {
        let p = parse(br#"{"url": "http://CDN.example/v/t/./seg1.ts?x=1"}"#).unwrap();
        assert_eq!(
            p,
            Purge {
                host: Some("cdn.example".into()),
                path: "/v/t/seg1.ts".into(),
                query: Some("x=1".into()),
                exact: true,
                soft: false
            }
        );
        let p = parse(br#"{"prefix": "/v/t/", "soft": true}"#).unwrap();
        assert_eq!(
            p,
            Purge {
                host: None,
                path: "/v/t/".into(),
                query: None,
                exact: false,
                soft: true
            }
        );
        let p = parse(br#"{"prefix": "/v/t/", "host": "A.example"}"#).unwrap();
        assert_eq!(p.host.as_deref(), Some("a.example"));
    }

    #[test]
    fn refuses_bad_bodies() {
        for (body, want) in [
            (&br#"{"#[..], "invalid JSON"),
            (br#"{}"#, "exactly one"),
            (br#"{"url": "/v/a", "prefix": "/v/"}"#, "exactly one"),
            (br#"{"url": "/v/a"}"#, "must be absolute"),
            (br#"{"url": "http://h/v/a", "host": "h"}"#, "goes with"),
            (br#"{"prefix": "/v/%2e%2e/"}"#, "prefix refused"),
            (br#"{"prefix": "/v/", "extra": 1}"#, "unknown field"),
        ] {
            let err = parse(body).unwrap_err();
            assert!(
                err.contains(want),
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
