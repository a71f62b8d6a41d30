//! `[tokens]`: signed segment tokens (the wire format and check order are in
//! [`crate::token`]; `docs/design.md`, "Tokens"). Parsing keeps where each key comes from;
//! [`TokensConfig::resolve`] reads the material at start-up.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::token::{Claims, KeySecret, Keyring, VerifyPolicy};

use super::error::ConfigError;
use super::file::TokensSection;
use super::stage::{KeySources, Loaded, Parsed, SecretSource, Stage};
use super::value::duration;

#[derive(Debug, Clone)]
pub struct TokensConfig<S: Stage = Loaded> {
    /// Refuse content requests without a valid token (outside `public` prefixes).
    pub required: bool,
    /// Query parameter that carries a token.
    pub param: String,
    /// Cookie that carries a token.
    pub cookie: String,
    pub policy: VerifyPolicy,
    /// Keys by id; the `current` one signs.
    pub keyring: S::Keyring,
    /// Path prefixes served without a token.
    pub public: Vec<String>,
    /// Akamai EdgeAuth 2.0 tokens, accepted as well when configured.
    pub edgeauth: Option<EdgeAuthConfig<S>>,
    /// CloudFront signed URLs and cookies, accepted as well when configured
    /// (`[tokens.cloudfront]`): the public keys by key pair id.
    pub cloudfront: Option<S::CloudFrontKeys>,
}

#[derive(Clone)]
pub struct EdgeAuthConfig<S: Stage = Loaded> {
    pub param: String,
    pub key: S::EdgeAuthKey,
}

impl<S: Stage> fmt::Debug for EdgeAuthConfig<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EdgeAuthConfig")
            .field("param", &self.param)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl TokensConfig<Parsed> {
    /// Validate `[tokens]`; key files resolve against `base` but are not read.
    pub fn build(t: TokensSection, base: &Path) -> Result<Self, ConfigError> {
        let mut keys = Vec::with_capacity(t.keys.len());
        for (i, k) in t.keys.into_iter().enumerate() {
            let key = format!("tokens.keys[{i}]");
            keys.push((
                k.id,
                SecretSource::from_keys(
                    &key,
                    k.secret_file.as_deref(),
                    k.secret_env.as_deref(),
                    base,
                )?,
            ));
        }
        if keys.is_empty() {
            return Err(ConfigError::new(
                "tokens.keys",
                "at least one key is required",
            ));
        }
        let param = t.param.unwrap_or_else(|| "token".into());
        if param.is_empty()
            || !param
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ConfigError::new(
                "tokens.param",
                format!("{param:?} must be a plain parameter name"),
            ));
        }
        let public = t.public.unwrap_or_default();
        if let Some((i, p)) = public.iter().enumerate().find(|(_, p)| !p.starts_with('/')) {
            return Err(ConfigError::new(
                format!("tokens.public[{i}]"),
                format!("{p:?} must start with '/'"),
            ));
        }
        let edgeauth = match t.edgeauth {
            None => None,
            Some(e) => Some(EdgeAuthConfig {
                param: e.param.unwrap_or_else(|| "hdnts".into()),
                key: SecretSource::from_keys(
                    "tokens.edgeauth",
                    e.key_file.as_deref(),
                    e.key_env.as_deref(),
                    base,
                )?,
            }),
        };
        let cloudfront = t.cloudfront.map(cloudfront_keys).transpose()?.map(|keys| {
            keys.into_iter()
                .map(|(id, file)| (id, base.join(file)))
                .collect()
        });
        Ok(TokensConfig {
            cloudfront,
            required: t.required.unwrap_or(true),
            param,
            cookie: t.cookie.unwrap_or_else(|| "edge_token".into()),
            policy: VerifyPolicy {
                leeway: duration("tokens.leeway", t.leeway.as_deref(), "30s")?,
                max_ttl: duration("tokens.max_ttl", t.max_ttl.as_deref(), "24h")?,
            },
            keyring: KeySources {
                current: t.current,
                keys,
            },
            public,
            edgeauth,
        })
    }

    /// Read the key material (start-up I/O) and build the keyring.
    pub fn resolve(self) -> Result<TokensConfig, ConfigError> {
        let KeySources { current, keys } = self.keyring;
        let mut secrets = Vec::with_capacity(keys.len());
        for (i, (id, source)) in keys.into_iter().enumerate() {
            let key = format!("tokens.keys[{i}]");
            let secret = KeySecret::parse(&source.read(&key)?)
                .map_err(|e| ConfigError::new(&key, e.to_string()))?;
            secrets.push((id, secret));
        }
        let signer = current
            .clone()
            .or_else(|| secrets.first().map(|(id, _)| id.clone()))
            .unwrap_or_default();
        let keyring = Keyring::new(
            secrets.iter().map(|(id, s)| (id.clone(), *s.as_bytes())),
            &signer,
        )
        .map_err(|e| {
            ConfigError::new(
                if current.is_some() {
                    "tokens.current"
                } else {
                    "tokens.keys"
                },
                e.to_string(),
            )
        })?;
        let edgeauth = match self.edgeauth {
            None => None,
            Some(e) => {
                let material = e.key.read("tokens.edgeauth")?;
                let hex = String::from_utf8_lossy(&material).trim().to_string();
                let key = crate::token::edgeauth::parse_hex_key(&hex).ok_or_else(|| {
                    ConfigError::new(
                        "tokens.edgeauth",
                        "the key must be hex (an even number of hex digits)",
                    )
                })?;
                Some(EdgeAuthConfig {
                    param: e.param,
                    key,
                })
            }
        };
        let cloudfront = match self.cloudfront {
            None => None,
            Some(keys) => Some(Arc::new(load_cloudfront(keys)?)),
        };
        Ok(TokensConfig {
            cloudfront,
            required: self.required,
            param: self.param,
            cookie: self.cookie,
            policy: self.policy,
            keyring: Arc::new(keyring),
            public: self.public,
            edgeauth,
        })
    }
}

/// `[tokens.cloudfront]`: at least one key, ids valid and unique (checked without I/O).
fn cloudfront_keys(
    c: super::file::CloudFrontSection,
) -> Result<Vec<(String, String)>, ConfigError> {
    if c.keys.is_empty() {
        return Err(ConfigError::new(
            "tokens.cloudfront.keys",
            "at least one key is required: [{ id = \"K…\", public_key_file = \"….pem\" }]",
        ));
    }
    let mut out: Vec<(String, String)> = Vec::with_capacity(c.keys.len());
    for (i, k) in c.keys.into_iter().enumerate() {
        let key = format!("tokens.cloudfront.keys[{i}].id");
        if !crate::token::is_valid_kid(&k.id) {
            return Err(ConfigError::new(
                key,
                format!("{:?} must be 1-32 characters of [A-Za-z0-9_-]", k.id),
            ));
        }
        if out.iter().any(|(id, _)| *id == k.id) {
            return Err(ConfigError::new(
                key,
                format!("duplicate key pair id {:?}", k.id),
            ));
        }
        out.push((k.id, k.public_key_file));
    }
    Ok(out)
}

/// Reads the CloudFront public keys (start-up I/O); errors name the key's file.
fn load_cloudfront(
    keys: Vec<(String, std::path::PathBuf)>,
) -> Result<crate::token::cloudfront::PublicKeys, ConfigError> {
    let mut out = crate::token::cloudfront::PublicKeys::default();
    for (i, (id, path)) in keys.into_iter().enumerate() {
        let key = format!("tokens.cloudfront.keys[{i}].public_key_file");
        let pem = std::fs::read(&path)
            .map_err(|e| ConfigError::new(&key, format!("cannot read {}: {e}", path.display())))?;
        out.add_pem(&id, &pem)
            .map_err(|e| ConfigError::new(&key, format!("{}: {e}", path.display())))?;
    }
    Ok(out)
}

impl TokensConfig {
    /// Sign `claims` (with key `kid`, or the current one) and place the token in `url` the way
    /// this edge reads it back (`/t/<token>/…` or the `param` query parameter).
    pub fn sign_url(
        &self,
        kid: Option<&str>,
        claims: &Claims,
        url: &str,
        style: crate::token::url::Style,
    ) -> Result<String, String> {
        let token = match kid {
            Some(k) => crate::token::sign_with(&self.keyring, k, claims),
            None => crate::token::sign(&self.keyring, claims),
        }
        .map_err(|e| e.to_string())?;
        crate::token::url::signed_url(url, &token, style, &self.param)
            .ok_or_else(|| format!("{url:?} is not an absolute http(s) URL"))
    }
}
