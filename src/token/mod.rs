//! Signed segment tokens (`docs/design.md`, "Tokens").
//!
//! Wire form (URL-safe base64 without padding):
//!
//! ```text
//! v1.<kid>.<b64url(payload)>.<b64url(mac)>
//! ```
//!
//! - `kid`: 1–32 characters of `[A-Za-z0-9_-]`, names a key of the [`Keyring`].
//! - `payload`: compact JSON of [`Claims`] (`None` fields omitted; unknown fields ignored on
//!   decode for forward compatibility; wrong types rejected).
//! - `mac`: HMAC-SHA256 with the key named by `kid` over the bytes
//!   `"edge-token/v1." + kid + "." + payload_b64`, verified in constant time
//!   (`ring::hmac::verify`).
//!
//! [`verify`] checks, in this order, and returns the first failure as a [`Reject`]:
//! form (`malformed`) → kid known (`unknown_key`) → mac (`bad_signature`) → claims JSON
//! (`malformed`) → `exp < now - leeway` (`expired`) → `nbf > now + leeway` (`not_yet_valid`) →
//! `exp - now > max_ttl` (`ttl_too_long`) → ACL (`acl_mismatch`) → IP (`ip_mismatch`).
//!
//! [`sign`]/[`sign_with`] return `Result` (unknown key id, invalid claims, oversized token).
//!
//! The module is pure: no I/O except [`load_key_file`], no clocks (callers pass `now`).
//!
//! Other pieces:
//! - [`extract`]: pull a token out of a `/t/<token>/…` path, a query string or a cookie header.
//! - [`edgeauth`]: verification of Akamai EdgeAuth 2.0 tokens (`st=…~exp=…~acl=…~hmac=…`).
//! - [`cloudfront`]: verification of CloudFront signed URLs and signed cookies (RSA-SHA1 over
//!   a canned or custom policy).
//! - [`testvec`]: a fixed known-answer vector for checking other implementations.

mod acl;
mod claims;
pub mod cloudfront;
pub mod edgeauth;
pub mod extract;
mod keys;
pub mod testvec;
pub mod url;
mod wire;

#[cfg(test)]
mod tests;

pub use crate::net::IpNet;
pub use acl::acl_covers;
pub use claims::{Claims, ClaimsError};
pub use extract::{from_cookie, from_path, from_query, QueryToken};
pub use keys::{is_valid_kid, load_key_file, KeyError, KeySecret, Keyring, KEY_LEN};
pub use wire::{sign, sign_with, verify, SignError, MAX_TOKEN_LEN, VERSION_PREFIX};

use std::time::Duration;

/// Why a token was refused. [`Reject::code`] is the short reason code used in 403 bodies and as
/// the `reason` label of `edge_token_rejections_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Reject {
    /// No token was presented.
    #[error("token missing")]
    Missing,
    /// The token (or its claims) could not be parsed.
    #[error("token malformed")]
    Malformed,
    /// The MAC does not match.
    #[error("token signature invalid")]
    BadSignature,
    /// The key id is not in the keyring.
    #[error("token key id unknown")]
    UnknownKey,
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// The request path is not covered by the token's ACL.
    #[error("token ACL does not cover the path")]
    AclMismatch,
    /// The client address is not the token's `ip`.
    #[error("token bound to another client address")]
    IpMismatch,
    /// `exp - now` exceeds the policy's `max_ttl`.
    #[error("token lifetime exceeds the maximum")]
    TtlTooLong,
    /// The path is a rendition taller than the token's `mh` (max height) allows.
    #[error("token does not allow this rendition")]
    RenditionNotAllowed,
    /// A CloudFront signature whose parameters or policy could not be parsed.
    #[error("CloudFront signature malformed")]
    CfMalformed,
    /// A CloudFront `Key-Pair-Id` with no configured public key.
    #[error("CloudFront key pair id unknown")]
    CfUnknownKey,
    /// A CloudFront signature that does not verify (for a canned policy: also another URL).
    #[error("CloudFront signature invalid")]
    CfBadSignature,
    /// A CloudFront policy's `DateLessThan` has passed.
    #[error("CloudFront policy expired")]
    CfExpired,
    /// A CloudFront policy's `DateGreaterThan` is still ahead.
    #[error("CloudFront policy not yet valid")]
    CfNotYetValid,
    /// A CloudFront policy's `Resource` does not match the request's URL.
    #[error("CloudFront policy resource does not match the URL")]
    CfResource,
    /// A CloudFront policy's `IpAddress` does not hold the client.
    #[error("CloudFront policy bound to other client addresses")]
    CfIp,
}

impl Reject {
    /// Every variant, in declaration order (metrics pre-register each one's [`Reject::code`]).
    pub const ALL: [Reject; 17] = [
        Reject::Missing,
        Reject::Malformed,
        Reject::BadSignature,
        Reject::UnknownKey,
        Reject::Expired,
        Reject::NotYetValid,
        Reject::AclMismatch,
        Reject::IpMismatch,
        Reject::TtlTooLong,
        Reject::RenditionNotAllowed,
        Reject::CfMalformed,
        Reject::CfUnknownKey,
        Reject::CfBadSignature,
        Reject::CfExpired,
        Reject::CfNotYetValid,
        Reject::CfResource,
        Reject::CfIp,
    ];

    /// The short, stable reason code.
    pub const fn code(&self) -> &'static str {
        match self {
            Reject::Missing => "missing",
            Reject::Malformed => "malformed",
            Reject::BadSignature => "bad_signature",
            Reject::UnknownKey => "unknown_key",
            Reject::Expired => "expired",
            Reject::NotYetValid => "not_yet_valid",
            Reject::AclMismatch => "acl_mismatch",
            Reject::IpMismatch => "ip_mismatch",
            Reject::TtlTooLong => "ttl_too_long",
            Reject::RenditionNotAllowed => "rendition_not_allowed",
            Reject::CfMalformed => "cf_malformed",
            Reject::CfUnknownKey => "cf_unknown_key",
            Reject::CfBadSignature => "cf_bad_signature",
            Reject::CfExpired => "cf_expired",
            Reject::CfNotYetValid => "cf_not_yet_valid",
            Reject::CfResource => "cf_resource",
            Reject::CfIp => "cf_ip",
        }
    }
}

/// Verification policy: clock-skew leeway and the longest lifetime a token may still have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyPolicy {
    /// Clock skew tolerated on `exp` and `nbf` (default 30 s). Whole seconds are used.
    pub leeway: Duration,
    /// Tokens with `exp - now > max_ttl` are refused (default 24 h). Whole seconds are used.
    pub max_ttl: Duration,
}

impl Default for VerifyPolicy {
    fn default() -> Self {
        VerifyPolicy {
            leeway: Duration::from_secs(30),
            max_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

impl VerifyPolicy {
    /// Shared time checks (native tokens and EdgeAuth): expired → not yet valid → TTL too long.
    pub(crate) fn check_times(&self, exp: u64, nbf: Option<u64>, now: u64) -> Result<(), Reject> {
        let leeway = self.leeway.as_secs();
        if exp.saturating_add(leeway) < now {
            return Err(Reject::Expired);
        }
        if let Some(nbf) = nbf {
            if nbf > now.saturating_add(leeway) {
                return Err(Reject::NotYetValid);
            }
        }
        if exp.saturating_sub(now) > self.max_ttl.as_secs() {
            return Err(Reject::TtlTooLong);
        }
        Ok(())
    }
}
