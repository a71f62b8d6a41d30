//! Akamai EdgeAuth 2.0 ("Auth Token 2.0") verification, for migrating customers.
//!
//! Token: `~`-separated `name=value` fields, e.g.
//! `ip=203.0.113.7~st=1700000000~exp=1700003600~acl=/v/title/*~id=abc~data=x~hmac=<hex>`.
//! Fields: `ip`, `st`, `exp` (required), `acl` or `url`, `id`, `data`; `hmac` must be last.
//! Unknown fields are tolerated (they are covered by the MAC).
//!
//! The MAC is HMAC-SHA256, keyed with the binary key (the hex-decoded EdgeAuth "encryption
//! key", see [`parse_hex_key`]), over the token text before `~hmac=`, hex-encoded. For URL
//! tokens (no `acl`, no `url` field in the token) the signed text additionally ends with
//! `~url=<path>`, where `<path>` is the request path (the `escape_early = false` default of
//! the reference generators). A `url=` field written into the token is an exact path match.
//! Only SHA-256 is supported; `salt` is not.
//!
//! ACLs may hold several patterns joined by `!`; `*` matches any run of characters (also `/`).

use std::net::IpAddr;

use ring::hmac;

use crate::net::IpNet;
use crate::token::keys::hex_val;
use crate::token::wire::MAX_TOKEN_LEN;
use crate::token::{Reject, VerifyPolicy};

/// The fields of a verified EdgeAuth token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EdgeAuthClaims {
    /// `ip=`: client address (or CIDR prefix).
    pub ip: Option<String>,
    /// `st=`: start time, unix seconds.
    pub st: Option<u64>,
    /// `exp=`: expiry, unix seconds.
    pub exp: u64,
    /// `acl=`: wildcard ACL(s), `!`-separated.
    pub acl: Option<String>,
    /// `url=` in the token, or the request path for URL tokens.
    pub url: Option<String>,
    /// `id=`: session id.
    pub id: Option<String>,
    /// `data=`: opaque payload.
    pub data: Option<String>,
}

/// Decodes an EdgeAuth hex key (even length, at least 2 hex digits) to bytes.
pub fn parse_hex_key(hex: &str) -> Option<Vec<u8>> {
    let hex = hex.trim();
    if hex.is_empty() || !hex.len().is_multiple_of(2) {
        return None;
    }
    decode_hex(hex.as_bytes())
}

fn decode_hex(h: &[u8]) -> Option<Vec<u8>> {
    if !h.len().is_multiple_of(2) {
        return None;
    }
    h.chunks_exact(2)
        .map(|p| Some((hex_val(p.first().copied())? << 4) | hex_val(p.get(1).copied())?))
        .collect()
}

/// Whether one EdgeAuth ACL pattern matches `path`: `*` matches any sequence (including empty
/// and including `/`); everything else is literal.
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if Some(&c) == text.get(t) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|r| r.iter().all(|&c| c == b'*'))
}

/// Whether the EdgeAuth ACL (patterns joined by `!`) covers `path`. Empty patterns never match.
pub fn acl_matches(acl: &str, path: &str) -> bool {
    acl.split('!')
        .any(|p| !p.is_empty() && wildcard_match(p.as_bytes(), path.as_bytes()))
}

fn parse_u64(s: &str) -> Result<u64, Reject> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Reject::Malformed);
    }
    s.parse().map_err(|_| Reject::Malformed)
}

fn set_once<'a>(slot: &mut Option<&'a str>, v: &'a str) -> Result<(), Reject> {
    if slot.is_some() {
        return Err(Reject::Malformed);
    }
    *slot = Some(v);
    Ok(())
}

/// Verifies an EdgeAuth 2.0 token (the value only, without `__token__=`/`hdnts=`).
///
/// `key` is the binary key. Order: form (`malformed`) → MAC (`bad_signature`) → `exp`
/// (`expired`) → `st` (`not_yet_valid`) → lifetime (`ttl_too_long`) → ACL/URL
/// (`acl_mismatch`) → IP (`ip_mismatch`). An empty token is `missing`.
pub fn verify(
    key: &[u8],
    token: &str,
    path: &str,
    client_ip: IpAddr,
    now_unix: u64,
    policy: &VerifyPolicy,
) -> Result<EdgeAuthClaims, Reject> {
    if token.is_empty() {
        return Err(Reject::Missing);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(Reject::Malformed);
    }
    // The hmac field is the last one; everything before its '~' is signed.
    let (signed, hmac_field) = token.rsplit_once('~').ok_or(Reject::Malformed)?;
    let mac_hex = hmac_field.strip_prefix("hmac=").ok_or(Reject::Malformed)?;
    if mac_hex.len() != 64 {
        return Err(Reject::Malformed);
    }
    let mac = decode_hex(mac_hex.as_bytes()).ok_or(Reject::Malformed)?;

    let (mut ip, mut st, mut exp, mut acl, mut url, mut id, mut data) =
        (None, None, None, None, None, None, None);
    for field in signed.split('~') {
        let (name, value) = field.split_once('=').ok_or(Reject::Malformed)?;
        match name {
            "ip" => set_once(&mut ip, value)?,
            "st" => set_once(&mut st, value)?,
            "exp" => set_once(&mut exp, value)?,
            "acl" => set_once(&mut acl, value)?,
            "url" => set_once(&mut url, value)?,
            "id" => set_once(&mut id, value)?,
            "data" => set_once(&mut data, value)?,
            "hmac" => return Err(Reject::Malformed),
            _ => {}
        }
    }
    let exp = parse_u64(exp.ok_or(Reject::Malformed)?)?;
    let st = st.map(parse_u64).transpose()?;
    if acl.is_some() && url.is_some() {
        return Err(Reject::Malformed);
    }
    let url_token = acl.is_none() && url.is_none();

    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let result = if url_token {
        let mut msg = Vec::with_capacity(signed.len() + 5 + path.len());
        msg.extend_from_slice(signed.as_bytes());
        msg.extend_from_slice(b"~url=");
        msg.extend_from_slice(path.as_bytes());
        hmac::verify(&key, &msg, &mac)
    } else {
        hmac::verify(&key, signed.as_bytes(), &mac)
    };
    result.map_err(|_| Reject::BadSignature)?;

    let net = match ip {
        Some(s) => Some(IpNet::parse(s).ok_or(Reject::Malformed)?),
        None => None,
    };
    policy.check_times(exp, st, now_unix)?;
    let covered = match (acl, url) {
        (Some(a), _) => acl_matches(a, path),
        (None, Some(u)) => u == path,
        (None, None) => true, // the path is inside the MAC
    };
    if !covered {
        return Err(Reject::AclMismatch);
    }
    if let Some(net) = net {
        if !net.contains(client_ip) {
            return Err(Reject::IpMismatch);
        }
    }
    Ok(EdgeAuthClaims {
        ip: ip.map(str::to_string),
        st,
        exp,
        acl: acl.map(str::to_string),
        url: Some(url.unwrap_or(path).to_string()).filter(|_| acl.is_none()),
        id: id.map(str::to_string),
        data: data.map(str::to_string),
    })
}
