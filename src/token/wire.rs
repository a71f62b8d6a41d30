//! The `v1` wire form: signing and verification.

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;

use crate::token::acl::acl_covers;
use crate::token::claims::{Claims, ClaimsError};
use crate::token::keys::{is_valid_kid, Keyring};
use crate::token::{Reject, VerifyPolicy};

/// Version prefix of the wire form.
pub const VERSION_PREFIX: &str = "v1";

/// Domain-separation prefix of the MAC input.
const MAC_DOMAIN: &[u8] = b"edge-token/v1.";

/// Longer tokens are refused as `malformed` before any decoding (bounds the work per request).
pub const MAX_TOKEN_LEN: usize = 4096;

/// Length of an HMAC-SHA256 tag.
const MAC_LEN: usize = 32;

/// Why a token could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// `sign_with` named a key id that is not in the keyring.
    #[error("token key id {0:?} is not in the keyring")]
    UnknownKey(String),
    /// The claims are invalid (they would never verify).
    #[error(transparent)]
    InvalidClaims(#[from] ClaimsError),
    /// The claims could not be serialised (not expected to happen).
    #[error("token claims could not be serialised")]
    Serialize,
    /// The token would exceed [`MAX_TOKEN_LEN`] and never verify.
    #[error("token would be longer than {MAX_TOKEN_LEN} bytes")]
    TooLong,
}

fn mac_input(kid: &str, payload_b64: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(MAC_DOMAIN.len() + kid.len() + 1 + payload_b64.len());
    m.extend_from_slice(MAC_DOMAIN);
    m.extend_from_slice(kid.as_bytes());
    m.push(b'.');
    m.extend_from_slice(payload_b64.as_bytes());
    m
}

/// Signs `claims` with the keyring's current key.
pub fn sign(keyring: &Keyring, claims: &Claims) -> Result<String, SignError> {
    sign_with(keyring, keyring.current_id(), claims)
}

/// Signs `claims` with the key `kid`.
pub fn sign_with(keyring: &Keyring, kid: &str, claims: &Claims) -> Result<String, SignError> {
    let key = keyring
        .get(kid)
        .ok_or_else(|| SignError::UnknownKey(kid.to_string()))?;
    claims.validate()?;
    let payload = serde_json::to_vec(claims).map_err(|_| SignError::Serialize)?;
    let payload_b64 = URL_SAFE_NO_PAD.encode(payload);
    let tag = hmac::sign(key, &mac_input(kid, &payload_b64));
    let token = format!(
        "{VERSION_PREFIX}.{kid}.{payload_b64}.{}",
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    );
    if token.len() > MAX_TOKEN_LEN {
        return Err(SignError::TooLong);
    }
    Ok(token)
}

fn is_b64url(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Verifies a `v1` token for a request and returns its claims.
///
/// `path` is the already-normalised request path (without the `/t/<token>` prefix), `now_unix`
/// the current time in unix seconds. An empty token is [`Reject::Missing`]. Checks run in the
/// order documented on the [module](crate::token); the first failure is returned.
/// Base64 is decoded strictly (no padding, canonical trailing bits), so exactly one string
/// verifies for given claims and key.
pub fn verify(
    keyring: &Keyring,
    token: &str,
    path: &str,
    client_ip: IpAddr,
    now_unix: u64,
    policy: &VerifyPolicy,
) -> Result<Claims, Reject> {
    if token.is_empty() {
        return Err(Reject::Missing);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(Reject::Malformed);
    }
    // 1. form
    let mut parts = token.split('.');
    let (Some(version), Some(kid), Some(payload_b64), Some(mac_b64), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(Reject::Malformed);
    };
    if version != VERSION_PREFIX || !is_valid_kid(kid) || !is_b64url(payload_b64) {
        return Err(Reject::Malformed);
    }
    let mac = URL_SAFE_NO_PAD
        .decode(mac_b64)
        .map_err(|_| Reject::Malformed)?;
    if mac.len() != MAC_LEN {
        return Err(Reject::Malformed);
    }
    // 2. key
    let key = keyring.get(kid).ok_or(Reject::UnknownKey)?;
    // 3. mac (constant time)
    hmac::verify(key, &mac_input(kid, payload_b64), &mac).map_err(|_| Reject::BadSignature)?;
    // 4. claims
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| Reject::Malformed)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| Reject::Malformed)?;
    claims.validate().map_err(|_| Reject::Malformed)?;
    // 5-7. times
    policy.check_times(claims.exp, claims.nbf, now_unix)?;
    // 8. acl
    if !acl_covers(&claims.acl, path) {
        return Err(Reject::AclMismatch);
    }
    // 9. ip
    if let Some(ip) = &claims.ip {
        match crate::net::IpNet::parse(ip) {
            Some(net) if net.contains(client_ip) => {}
            Some(_) => return Err(Reject::IpMismatch),
            None => return Err(Reject::Malformed),
        }
    }
    Ok(claims)
}
