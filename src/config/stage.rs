//! The two stages of a [`super::Config`]: [`Parsed`] (the text validated; no file or network
//! I/O) and [`Loaded`] (key material, CA files and origin names read at start-up by
//! [`super::Config::resolve`]).
//!
//! Only the values that need I/O differ between the stages; each is an associated type here,
//! so a `Config<Parsed>` cannot reach the proxy by mistake and tests can parse text without
//! any file existing.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::ConfigError;

/// What a stage holds where I/O is needed.
pub trait Stage: Clone + fmt::Debug {
    /// `[tokens]` keys: their sources, or the keyring built from them.
    type Keyring: Clone + fmt::Debug;
    /// `[tokens.edgeauth]` key: its source, or the key bytes.
    type EdgeAuthKey: Clone;
    /// `[tokens.cloudfront]` keys: (key pair id, PEM file) pairs, or the public keys.
    type CloudFrontKeys: Clone + fmt::Debug;
    /// An origin node's address: `host:port` text, or the resolved socket address.
    type NodeAddr: Clone + fmt::Debug;
    /// An origin pool's `ca_file`: its path, or the certificates (DER) it holds.
    type Ca: Clone + fmt::Debug;
    /// `[control]`: the control plane's configuration waiting for its admin token, or complete.
    type Control: Clone + fmt::Debug;
}

/// Validated text, before any I/O.
#[derive(Debug, Clone, Copy)]
pub struct Parsed;

/// Ready to serve: every file and name has been read.
#[derive(Debug, Clone, Copy)]
pub struct Loaded;

impl Stage for Parsed {
    type Keyring = KeySources;
    type EdgeAuthKey = SecretSource;
    type CloudFrontKeys = Vec<(String, PathBuf)>;
    type NodeAddr = Pending<String>;
    type Ca = Pending<PathBuf>;
    #[cfg(feature = "control")]
    type Control = PendingControl;
    /// No control plane in this binary: `[control]` is refused while parsing.
    #[cfg(not(feature = "control"))]
    type Control = std::convert::Infallible;
}

impl Stage for Loaded {
    type Keyring = Arc<crate::token::Keyring>;
    type EdgeAuthKey = Vec<u8>;
    type CloudFrontKeys = Arc<crate::token::cloudfront::PublicKeys>;
    type NodeAddr = SocketAddr;
    type Ca = Arc<Vec<Vec<u8>>>;
    #[cfg(feature = "control")]
    type Control = crate::control::ControlConfig;
    #[cfg(not(feature = "control"))]
    type Control = std::convert::Infallible;
}

/// `[tokens]` keys before their material is read (`TokensConfig::resolve`).
#[derive(Debug, Clone)]
pub struct KeySources {
    /// `current`, when given (else the first key signs).
    pub current: Option<String>,
    pub keys: Vec<(String, SecretSource)>,
}

/// The control plane's configuration before its admin token is read: `plane.admin_token` is
/// empty until `PendingControl::resolve` (in `super::control`).
#[cfg(feature = "control")]
#[derive(Debug, Clone)]
pub struct PendingControl {
    pub plane: crate::control::ControlConfig,
    pub admin_token: Option<SecretSource>,
}

/// A value to read at start-up and the key it came from, so the error names that key even
/// after pools are sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending<T> {
    pub key: String,
    pub source: T,
}

/// Where key material comes from: a file (already joined to the config's folder) or an
/// environment variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

impl SecretSource {
    /// Exactly one of the two keys (`secret_file`/`secret_env`, `key_file`/`key_env`, ...).
    pub fn from_keys(
        key: &str,
        file: Option<&str>,
        env: Option<&str>,
        base: &Path,
    ) -> Result<Self, ConfigError> {
        match (file, env) {
            (Some(f), None) => Ok(SecretSource::File(base.join(f))),
            (None, Some(var)) => Ok(SecretSource::Env(var.to_string())),
            _ => Err(ConfigError::new(
                key,
                "give exactly one of secret_file / secret_env (key_file / key_env)",
            )),
        }
    }

    /// Read the material (start-up I/O). Errors name the key and the file or variable, never
    /// the material.
    pub fn read(&self, key: &str) -> Result<Vec<u8>, ConfigError> {
        match self {
            SecretSource::File(path) => std::fs::read(path)
                .map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", path.display()))),
            SecretSource::Env(var) => std::env::var(var).map(String::into_bytes).map_err(|_| {
                ConfigError::new(key, format!("environment variable {var} is not set"))
            }),
        }
    }
}

/// A `host:port` whose port is given (checked while parsing, without I/O).
pub fn check_host_port(key: &str, text: &str) -> Result<(), ConfigError> {
    if text.parse::<SocketAddr>().is_ok() || text.contains(':') {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            format!("{text:?} has no port; expected host:port"),
        ))
    }
}

/// Origin addresses may be names; they are resolved once, at start-up, so a bad name is a
/// config error rather than a failure inside the proxy.
pub fn resolve_host_port(key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(a) = text.parse() {
        return Ok(a);
    }
    check_host_port(key, text)?;
    text.to_socket_addrs()
        .map_err(|e| ConfigError::new(key, format!("cannot resolve {text:?}: {e}")))?
        .next()
        .ok_or_else(|| ConfigError::new(key, format!("{text:?} resolved to no address")))
}
