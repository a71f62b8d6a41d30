//! CloudFront-compatible signed URLs and signed cookies, for platforms that already sign
//! for Amazon CloudFront.
//!
//! A signature travels as three values, in the query or in cookies:
//!
//! | canned policy | custom policy | cookie names |
//! |---|---|---|
//! | `Expires=<unix seconds>` | `Policy=<b64(policy JSON)>` | `CloudFront-Expires` / `CloudFront-Policy` |
//! | `Signature=<b64(sig)>` | `Signature=<b64(sig)>` | `CloudFront-Signature` |
//! | `Key-Pair-Id=<id>` | `Key-Pair-Id=<id>` | `CloudFront-Key-Pair-Id` |
//!
//! `b64` is CloudFront's URL-safe variant of standard base64 (`+`→`-`, `=`→`_`, `/`→`~`;
//! padding optional here). The signature is RSA-SHA1 PKCS#1 v1.5 over the policy's bytes:
//! for a canned policy the JSON CloudFront builds from the request URL and `Expires`
//! ([`policy::canned`]), for a custom one the decoded `Policy` as sent. It is verified with
//! the public key configured under the `Key-Pair-Id` ([`PublicKeys`]).
//!
//! [`verify`] checks, in this order, and returns the first failure:
//! form (`cf_malformed`) → key id known (`cf_unknown_key`) → signature (`cf_bad_signature`)
//! → policy JSON (`cf_malformed`) → `DateLessThan` (`cf_expired`) → `DateGreaterThan`
//! (`cf_not_yet_valid`) → `Resource` (`cf_resource`) → `IpAddress` (`cf_ip`). A canned
//! policy's resource is inside the signed text, so a canned signature for another URL is
//! `cf_bad_signature`. Times get the edge's leeway; the edge's `max_ttl` does not apply
//! (CloudFront has no such limit).
//!
//! The URL a policy is matched against is built by the caller (`crate::proxy::tokens`):
//! the listener's scheme, the request's host, the normalised path and the query without
//! the CloudFront parameters.

pub mod policy;

use std::fmt;
use std::net::IpAddr;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY};

use crate::token::{Reject, VerifyPolicy};

/// The query parameters of a CloudFront signed URL.
pub const QUERY_PARAMS: [&str; 4] = ["Expires", "Policy", "Signature", "Key-Pair-Id"];
/// The cookies of CloudFront signed cookies, in the order of [`QUERY_PARAMS`].
pub const COOKIES: [&str; 4] = [
    "CloudFront-Expires",
    "CloudFront-Policy",
    "CloudFront-Signature",
    "CloudFront-Key-Pair-Id",
];

/// Longest policy accepted (encoded); CloudFront's own URL limit is 8 KiB.
const MAX_POLICY: usize = 8192;

/// Standard base64 once CloudFront's substitutions are undone; with or without padding.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes CloudFront's URL-safe base64 (`-`, `_`, `~` for `+`, `=`, `/`).
pub fn decode_b64(s: &str) -> Option<Vec<u8>> {
    let std: String = s
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '=',
            '~' => '/',
            c => c,
        })
        .collect();
    B64.decode(std.trim_end_matches('=')).ok()
}

/// The values of one CloudFront signature as the request carried them (query or cookies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Signed<'a> {
    pub expires: Option<&'a str>,
    pub policy: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub key_pair_id: Option<&'a str>,
}

impl<'a> Signed<'a> {
    /// From the four values in the order of [`QUERY_PARAMS`] / [`COOKIES`].
    pub fn from_values(v: [Option<&'a str>; 4]) -> Self {
        let [expires, policy, signature, key_pair_id] = v;
        Signed {
            expires,
            policy,
            signature,
            key_pair_id,
        }
    }

    /// Whether the request carries a CloudFront signature at all: a `Signature`, `Policy` or
    /// `Key-Pair-Id` (an `Expires` alone is an ordinary parameter and stays the origin's).
    pub fn present(&self) -> bool {
        self.signature.is_some() || self.policy.is_some() || self.key_pair_id.is_some()
    }
}

/// Why a public key cannot be used (names no key material).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicKeyError {
    #[error("no '-----BEGIN PUBLIC KEY-----' block found (CloudFront takes the PEM that `openssl rsa -pubout` writes)")]
    NoPublicKey,
    #[error("unparsable PEM: {0}")]
    Pem(String),
    #[error("not an RSA public key")]
    NotRsa,
    #[error("RSA key of {0} bits: CloudFront keys are 2048 bits (2048-8192 accepted)")]
    BadSize(usize),
    #[error("invalid key pair id {0:?}: must be 1-32 characters of [A-Za-z0-9_-]")]
    InvalidId(String),
    #[error("duplicate key pair id {0:?}")]
    DuplicateId(String),
}

/// The RSAPublicKey (PKCS#1 DER, what `ring` verifies with) inside the first `PUBLIC KEY`
/// (SubjectPublicKeyInfo) block of a PEM text, checked to be RSA of 2048–8192 bits.
pub fn rsa_public_key_from_pem(pem: &[u8]) -> Result<Vec<u8>, PublicKeyError> {
    use rustls_pki_types::pem::SectionKind;
    use x509_parser::prelude::FromDer;
    use x509_parser::public_key::PublicKey;
    use x509_parser::x509::SubjectPublicKeyInfo;

    let mut rest = pem;
    let spki = loop {
        match rustls_pki_types::pem::from_buf(&mut rest) {
            Ok(None) => return Err(PublicKeyError::NoPublicKey),
            Ok(Some((SectionKind::PublicKey, der))) => break der,
            Ok(Some(_)) => {}
            Err(e) => return Err(PublicKeyError::Pem(e.to_string())),
        }
    };
    let (_, info) = SubjectPublicKeyInfo::from_der(&spki)
        .map_err(|e| PublicKeyError::Pem(format!("bad SubjectPublicKeyInfo: {e}")))?;
    match info.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let bits = rsa.key_size();
            if !(2048..=8192).contains(&bits) {
                return Err(PublicKeyError::BadSize(bits));
            }
        }
        _ => return Err(PublicKeyError::NotRsa),
    }
    Ok(info.subject_public_key.data.to_vec())
}

/// Public keys by key pair id (the `Key-Pair-Id` CloudFront signers send: a public key id of
/// a key group, `K…`, or a legacy key pair, `APKA…`). `Debug` prints the ids only.
#[derive(Default)]
pub struct PublicKeys {
    entries: Vec<(String, UnparsedPublicKey<Vec<u8>>)>,
}

impl fmt::Debug for PublicKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(id, _)| id))
            .finish()
    }
}

impl PublicKeys {
    /// Adds the key `id` from its PEM text.
    pub fn add_pem(&mut self, id: &str, pem: &[u8]) -> Result<(), PublicKeyError> {
        if !crate::token::is_valid_kid(id) {
            return Err(PublicKeyError::InvalidId(id.to_string()));
        }
        if self.get(id).is_some() {
            return Err(PublicKeyError::DuplicateId(id.to_string()));
        }
        let der = rsa_public_key_from_pem(pem)?;
        self.entries.push((
            id.to_string(),
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, der),
        ));
        Ok(())
    }

    /// The ids, in configuration order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(id, _)| id.as_str())
    }

    fn get(&self, id: &str) -> Option<&UnparsedPublicKey<Vec<u8>>> {
        self.entries.iter().find(|(i, _)| i == id).map(|(_, k)| k)
    }
}

/// What a verified signature allows (for the access log and playlists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub key_pair_id: String,
    /// `true` for a custom policy.
    pub custom: bool,
    pub expires: u64,
}

/// Verifies a CloudFront signature for `url` (see the module doc for the order of checks).
pub fn verify(
    keys: &PublicKeys,
    signed: &Signed<'_>,
    url: &str,
    client: IpAddr,
    now: u64,
    policy: &VerifyPolicy,
) -> Result<Verified, Reject> {
    let (Some(sig), Some(id)) = (signed.signature, signed.key_pair_id) else {
        return Err(Reject::CfMalformed);
    };
    // Exactly one of `Expires` (canned) and `Policy` (custom).
    let message = match (signed.expires, signed.policy) {
        (Some(e), None) => {
            let expires = parse_epoch(e).ok_or(Reject::CfMalformed)?;
            Message::Canned(expires, policy::canned(url, expires).into_bytes())
        }
        (None, Some(p)) if p.len() <= MAX_POLICY => {
            Message::Custom(decode_b64(p).ok_or(Reject::CfMalformed)?)
        }
        _ => return Err(Reject::CfMalformed),
    };
    let sig = decode_b64(sig).ok_or(Reject::CfMalformed)?;
    let key = keys.get(id).ok_or(Reject::CfUnknownKey)?;
    let bytes = match &message {
        Message::Canned(_, b) | Message::Custom(b) => b,
    };
    key.verify(bytes, &sig)
        .map_err(|_| Reject::CfBadSignature)?;

    let leeway = policy.leeway.as_secs();
    let (expires, custom) = match message {
        Message::Canned(expires, _) => (expires, None),
        Message::Custom(json) => {
            let p = policy::parse(&json).ok_or(Reject::CfMalformed)?;
            (p.date_less_than, Some(p))
        }
    };
    // CloudFront serves while `now < DateLessThan`.
    if expires.saturating_add(leeway) <= now {
        return Err(Reject::CfExpired);
    }
    if let Some(p) = &custom {
        if p.date_greater_than
            .is_some_and(|start| start > now.saturating_add(leeway))
        {
            return Err(Reject::CfNotYetValid);
        }
        if p.resource
            .as_deref()
            .is_some_and(|r| !policy::resource_matches(r, url))
        {
            return Err(Reject::CfResource);
        }
        if p.source_ip.as_ref().is_some_and(|n| !n.contains(client)) {
            return Err(Reject::CfIp);
        }
    }
    Ok(Verified {
        key_pair_id: id.to_string(),
        custom: custom.is_some(),
        expires,
    })
}

enum Message {
    Canned(u64, Vec<u8>),
    Custom(Vec<u8>),
}

fn parse_epoch(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests;
