//! The claims carried in a token's payload.

use serde::{Deserialize, Serialize};

use crate::net::IpNet;

/// Claims of a `v1` token. Serialised as compact JSON in this field order, `None` fields
/// omitted. Unknown fields are ignored when decoding; wrong types are errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Expiry, unix seconds (required).
    pub exp: u64,
    /// Not before, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Path ACL (required): a prefix ending in `/` (covers everything below it, on segment
    /// boundaries) or an exact path; several ACLs may be joined with `!`. Each starts with `/`.
    pub acl: String,
    /// Session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Client address or CIDR prefix (`203.0.113.7`, `203.0.113.0/24`, `2001:db8::/32`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Allowed countries, ISO 3166 alpha-2 uppercase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cc: Option<Vec<String>>,
    /// Maximum rendition height the viewer may see (for the master playlist filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mh: Option<u32>,
}

/// Why a set of claims is not valid (names the field; never contains secrets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid claim `{field}`: {reason}")]
pub struct ClaimsError {
    /// The offending claim.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
}

fn err(field: &'static str, reason: &'static str) -> ClaimsError {
    ClaimsError { field, reason }
}

impl Claims {
    /// Claims with only the required fields.
    pub fn new(acl: impl Into<String>, exp: u64) -> Self {
        Claims {
            exp,
            nbf: None,
            acl: acl.into(),
            sid: None,
            ip: None,
            cc: None,
            mh: None,
        }
    }

    /// Checks the claim values (not times): ACL shape, `ip` syntax, `cc` codes.
    /// [`crate::token::sign`] refuses invalid claims and [`crate::token::verify`] reports them as
    /// `malformed`.
    pub fn validate(&self) -> Result<(), ClaimsError> {
        if self.acl.is_empty() {
            return Err(err("acl", "empty"));
        }
        for part in self.acl.split('!') {
            if !part.starts_with('/') {
                return Err(err("acl", "every ACL must start with '/'"));
            }
            if part.bytes().any(|b| b.is_ascii_control()) {
                return Err(err("acl", "control character"));
            }
        }
        if let Some(ip) = &self.ip {
            if IpNet::parse(ip).is_none() {
                return Err(err("ip", "not an IP address or CIDR prefix"));
            }
        }
        if let Some(cc) = &self.cc {
            if cc
                .iter()
                .any(|c| c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()))
            {
                return Err(err(
                    "cc",
                    "country codes must be ISO 3166 alpha-2 uppercase",
                ));
            }
        }
        Ok(())
    }

    /// Whether the `cc` claim allows `country` (ISO alpha-2, compared case-insensitively).
    /// Tokens without `cc` allow every country.
    pub fn allows_country(&self, country: &str) -> bool {
        match &self.cc {
            None => true,
            Some(list) => list.iter().any(|c| c.eq_ignore_ascii_case(country)),
        }
    }

    /// The parsed `ip` claim, if present and valid.
    pub fn ip_net(&self) -> Option<IpNet> {
        self.ip.as_deref().and_then(IpNet::parse)
    }
}
