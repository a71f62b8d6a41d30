//! Token text → verification (native `v1` tokens and EdgeAuth 2.0) and the token gate's
//! extraction from every placement (path prefix, query parameter, cookie).
//!
//! Input: a selector byte, then text.
//! - 0: a whole token; `$M` in it becomes the MAC of what precedes it (`v1.<kid>.<payload>`),
//!   so the fuzzer gets past the signature check to the claims.
//! - 1: a claims payload (JSON), signed as a token with key `k1`.
//! - 2: claims fields, one a line (acl, exp offset, nbf offset, ip, mh): signed, then presented
//!   in every placement.
//! - 3: an EdgeAuth token; `$H` becomes the MAC of what precedes its `~hmac=`.
//! - 0xCF (before the others): a CloudFront custom policy, parsed, and presented unsigned in
//!   the query and in cookies.
//!
//! Invariants: no panic; a token that verifies carries the MAC of its own text under the
//! key it names (checked here with `ring` directly, not through the crate), and its claims
//! cover the path and the time; claims that sign verify back to themselves from every
//! placement, with the token taken out of the path and query; a token changed in one
//! character no longer verifies; a CloudFront policy that parses has `DateLessThan`, and no
//! CloudFront signature is granted without a configured key.
#![no_main]

use std::net::IpAddr;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use edge::config::{EdgeAuthConfig, TokensConfig};
use edge::proxy::tokens::{self, Placement};
use edge::token::{self, Claims, Keyring, Reject, SignError, VerifyPolicy};
use libfuzzer_sys::fuzz_target;
use ring::hmac;

const NOW: u64 = 1_800_000_000;
const SECRET: [u8; 32] = [7; 32];
const EDGEAUTH_KEY: [u8; 4] = [1, 2, 3, 4];
const PATH: &str = "/v/a/seg.ts";
const SITE: tokens::Site<'static> = tokens::Site {
    tls: false,
    host: "edge.test",
};

fn client() -> IpAddr {
    [192, 0, 2, 1].into()
}

fn config() -> TokensConfig {
    TokensConfig {
        required: true,
        param: "token".into(),
        cookie: "edge_token".into(),
        policy: VerifyPolicy::default(),
        keyring: Arc::new(Keyring::single("k1", &SECRET).expect("keyring")),
        public: vec!["/public/".into()],
        edgeauth: Some(EdgeAuthConfig {
            param: "hdnts".into(),
            key: EDGEAUTH_KEY.to_vec(),
        }),
        cloudfront: Some(Arc::new(Default::default())),
    }
}

fn mac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), msg)
        .as_ref()
        .to_vec()
}

fn native_mac(kid: &str, payload: &str) -> String {
    URL_SAFE_NO_PAD.encode(mac(
        &SECRET,
        format!("edge-token/v1.{kid}.{payload}").as_bytes(),
    ))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let cfg = config();
    if mode == 0xCF {
        cloudfront(&cfg, text);
        return;
    }
    match mode % 4 {
        0 => {
            let t = match text.split_once("$M") {
                Some((signed, after)) => {
                    let mut parts = signed.trim_end_matches('.').splitn(3, '.');
                    let (_, kid, payload) = (
                        parts.next(),
                        parts.next().unwrap_or(""),
                        parts.next().unwrap_or(""),
                    );
                    format!("{signed}{}{after}", native_mac(kid, payload))
                }
                None => text.to_string(),
            };
            native(&cfg, &t);
        }
        1 => {
            let payload = URL_SAFE_NO_PAD.encode(text);
            native(
                &cfg,
                &format!("v1.k1.{payload}.{}", native_mac("k1", &payload)),
            );
        }
        2 => round_trip(&cfg, text),
        _ => {
            let t = match text.split_once("~hmac=$H") {
                Some((signed, after)) => format!(
                    "{signed}~hmac={}{after}",
                    hex(&mac(&EDGEAUTH_KEY, signed.as_bytes()))
                ),
                None => text.to_string(),
            };
            if let Ok(claims) =
                token::edgeauth::verify(&EDGEAUTH_KEY, &t, PATH, client(), NOW, &cfg.policy)
            {
                let (signed, mac_hex) = t
                    .rsplit_once("~hmac=")
                    .expect("a verified EdgeAuth token has an hmac field");
                // A token with neither `acl` nor `url` signs the path too.
                let scoped = signed
                    .split('~')
                    .any(|f| f.starts_with("acl=") || f.starts_with("url="));
                let msg = if scoped {
                    signed.to_string()
                } else {
                    format!("{signed}~url={PATH}")
                };
                assert_eq!(
                    mac_hex.to_ascii_lowercase(),
                    hex(&mac(&EDGEAUTH_KEY, msg.as_bytes())),
                    "{t:?} verifies without its MAC"
                );
                assert!(claims.exp + 30 >= NOW, "{t:?}: expired but accepted");
            }
        }
    }
});

/// Verify `t` at [`PATH`]; what verifies must carry its own MAC and cover the path and time.
fn native(cfg: &TokensConfig, t: &str) {
    let Ok(claims) = token::verify(&cfg.keyring, t, PATH, client(), NOW, &cfg.policy) else {
        return;
    };
    let parts: Vec<&str> = t.split('.').collect();
    assert_eq!(parts.len(), 4, "{t:?}");
    assert_eq!((parts[0], parts[1]), ("v1", "k1"), "{t:?}");
    assert_eq!(
        parts[3],
        native_mac(parts[1], parts[2]),
        "{t:?} verifies without its MAC"
    );
    assert!(
        token::acl_covers(&claims.acl, PATH),
        "{t:?}: ACL {:?} does not cover {PATH}",
        claims.acl
    );
    assert!(
        claims.exp + 30 >= NOW && claims.exp <= NOW + 24 * 3600,
        "{t:?}: exp {} accepted",
        claims.exp
    );
    assert!(
        claims.nbf.is_none_or(|nbf| nbf <= NOW + 30),
        "{t:?}: nbf accepted"
    );
    assert!(
        claims.validate().is_ok(),
        "{t:?}: invalid claims accepted: {claims:?}"
    );
    // What verified signs again to a token that verifies to the same claims.
    let again = token::sign(&cfg.keyring, &claims).expect("verified claims sign");
    assert_eq!(
        token::verify(&cfg.keyring, &again, PATH, client(), NOW, &cfg.policy),
        Ok(claims)
    );
}

/// Claims from `text`'s lines: signed, verified at a path the ACL covers, from every placement.
fn round_trip(cfg: &TokensConfig, text: &str) {
    let mut lines = text.split('\n');
    let acl = lines.next().unwrap_or("").to_string();
    let offset = |s: Option<&str>| {
        s.and_then(|s| s.trim().parse::<i64>().ok())
            .map(|o| NOW.saturating_add_signed(o))
    };
    let exp = offset(lines.next()).unwrap_or(NOW + 600);
    let mut claims = Claims::new(acl, exp);
    claims.nbf = offset(lines.next());
    claims.ip = lines.next().filter(|s| !s.is_empty()).map(str::to_string);
    claims.mh = lines.next().and_then(|s| s.trim().parse().ok());
    let t = match token::sign(&cfg.keyring, &claims) {
        Ok(t) => t,
        Err(SignError::TooLong) => return,
        Err(e) => {
            assert!(
                claims.validate().is_err(),
                "valid claims do not sign ({e}): {claims:?}"
            );
            return;
        }
    };
    // A path the ACL covers: its first ACL, with a segment added under a prefix.
    let first = claims.acl.split('!').next().unwrap_or("");
    let path = if first.ends_with('/') {
        format!("{first}seg.ts")
    } else {
        first.to_string()
    };
    let client = claims
        .ip
        .as_deref()
        .and_then(|ip| ip.split('/').next()?.parse().ok())
        .unwrap_or_else(client);
    let verdict = token::verify(&cfg.keyring, &t, &path, client, NOW, &cfg.policy);
    let in_time = exp.saturating_add(30) >= NOW
        && exp <= NOW + 24 * 3600
        && claims.nbf.is_none_or(|n| n <= NOW + 30);
    match &verdict {
        Ok(back) => assert_eq!(back, &claims),
        Err(Reject::Expired | Reject::NotYetValid | Reject::TtlTooLong) => {
            assert!(!in_time, "{claims:?}: {verdict:?}")
        }
        Err(e) => panic!("signed claims {claims:?} refused at {path:?} from {client}: {e:?}"),
    }
    // One character changed: refused.
    let bytes = t.as_bytes();
    for (i, c) in [(bytes.len() / 2, b'A'), (bytes.len() - 1, b'B'), (3, b'x')] {
        let mut changed = bytes.to_vec();
        changed[i] = if changed[i] == c { b'C' } else { c };
        let changed = String::from_utf8(changed).expect("ASCII");
        assert!(
            token::verify(&cfg.keyring, &changed, &path, client, NOW, &cfg.policy).is_err(),
            "{changed:?} verifies"
        );
    }
    // (A path under `/t/` is itself read as a path token.)
    if verdict.is_err()
        || !path.starts_with('/')
        || path.starts_with("/t/")
        || path.contains(['?', '#'])
        || claims.mh.is_some()
    {
        return;
    }
    // Every placement: the same grant, and the token out of the path and query.
    let placements = [
        (
            format!("/t/{t}{path}"),
            Some("x=1".to_string()),
            None,
            Placement::Path,
        ),
        (
            path.clone(),
            Some(format!("x=1&token={t}")),
            None,
            Placement::Query,
        ),
        (
            path.clone(),
            Some("x=1".to_string()),
            Some(format!("a=b; edge_token={t}")),
            Placement::Cookie,
        ),
    ];
    for (p, q, cookie, placement) in placements {
        let checked = tokens::check(cfg, SITE, &p, q.as_deref(), cookie.as_deref(), client, NOW);
        let granted = checked
            .verdict
            .unwrap_or_else(|e| panic!("{placement:?} {p:?} {q:?}: {e:?}"))
            .expect("a grant");
        assert_eq!(
            (granted.placement, granted.token.as_str()),
            (placement, t.as_str())
        );
        assert_eq!(granted.claims.as_ref(), Some(&claims));
        assert_eq!(
            (checked.path.as_str(), checked.query.as_deref()),
            (path.as_str(), Some("x=1"))
        );
    }
}

/// A CloudFront policy: parsed, then presented (with a made-up signature) in the query and in
/// cookies to an edge that has no CloudFront key: never granted, never a panic, and the
/// CloudFront parameters are out of the query.
fn cloudfront(cfg: &TokensConfig, text: &str) {
    if let Some(p) = token::cloudfront::policy::parse(text.as_bytes()) {
        let _ = p
            .resource
            .as_deref()
            .map(|r| token::cloudfront::policy::resource_matches(r, "http://edge.test/v/a/seg.ts"));
    }
    let policy = base64::engine::general_purpose::STANDARD
        .encode(text)
        .replace('+', "-")
        .replace('=', "_")
        .replace('/', "~");
    let query = format!("x=1&Policy={policy}&Signature=AAAA&Key-Pair-Id=K1");
    let checked = tokens::check(cfg, SITE, PATH, Some(&query), None, client(), NOW);
    assert!(checked.verdict.is_err(), "{text:?} granted");
    assert_eq!(checked.query.as_deref(), Some("x=1"));
    let cookie =
        format!("CloudFront-Policy={policy}; CloudFront-Signature=AAAA; CloudFront-Key-Pair-Id=K1");
    let checked = tokens::check(cfg, SITE, PATH, None, Some(cookie.as_str()), client(), NOW);
    assert!(checked.verdict.is_err(), "{text:?} granted from cookies");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
