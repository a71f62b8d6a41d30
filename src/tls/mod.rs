//! TLS for the listener (downstream) and for origins (upstream).
//!
//! - [`certs`]: `edge certs`: a local development CA and a leaf certificate signed by it
//!   (cargo feature `dev-certs`).
//! - [`store`]: the `[tls] certs = [...]` list: loading and validating PEM cert/key pairs,
//!   the SNI resolver (exact name, then wildcard, then the first certificate as the default)
//!   with atomic reload, and a rustls `ServerConfig` helper.
//! - [`watch`]: change detection for the cert/key files, and how reload is wired (SIGHUP or
//!   polling).
//! - [`origin`]: a CA bundle for `tls = true` origins.
//!
//! Crypto provider: every rustls object built here names the *ring* provider explicitly
//! (`rustls::crypto::ring`), so nothing depends on a process-wide default being installed.
//! Pingora's `TlsSettings::build` installs ring as the process default itself.
//!
//! Every error names the file it is about and why, never the key material.

use std::io;
use std::path::{Path, PathBuf};

#[cfg(feature = "dev-certs")]
pub mod certs;
pub mod origin;
mod pem;
pub mod store;
pub mod watch;

#[cfg(test)]
mod tests;

/// Everything that can go wrong loading, generating or reloading TLS material.
///
/// The `Display` form is a complete, user-facing sentence fragment that starts with the file
/// it is about (`certs/edge.pem: certificate expired on 2025-01-01 00:00:00 UTC`).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read, written or inspected.
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    /// A file was read but its content is unusable (bad PEM, no certificate, no key,
    /// unsupported key type, expired or not yet valid certificate, ...).
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    /// The private key does not belong to the certificate.
    #[error(
        "{}: private key does not match the certificate in {}",
        key.display(),
        cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    /// The configuration itself is unusable (no certificates listed, bad host names, ...).
    #[error("{0}")]
    Config(String),
}

impl TlsError {
    pub(crate) fn io(path: &Path, action: &'static str, source: io::Error) -> Self {
        TlsError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }

    pub(crate) fn invalid(path: &Path, reason: impl Into<String>) -> Self {
        TlsError::Invalid {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// The file this error is about, if it is about one file.
    pub fn path(&self) -> Option<&Path> {
        match self {
            TlsError::Io { path, .. } | TlsError::Invalid { path, .. } => Some(path),
            TlsError::KeyMismatch { key, .. } => Some(key),
            TlsError::Config(_) => None,
        }
    }
}
