//! The listener's certificates: loading and validating `[tls] certs`, and choosing one per
//! connection by SNI.
//!
//! ```toml
//! [tls]
//! certs = [
//!   { cert = "certs/edge.pem", key = "certs/edge-key.pem" },   # first = default
//!   { cert = "certs/other.pem", key = "certs/other-key.pem" },
//! ]
//! ```
//!
//! Selection ([`CertSet::select`], used by [`SniResolver`]): the SNI name is lower-cased and
//! a trailing dot dropped; then an exact SAN DNS name wins, then a wildcard SAN (`*.example.com`
//! matches `a.example.com`, not `a.b.example.com` nor `example.com`), then the first configured
//! certificate, which also serves clients that send no SNI (including connections made to an IP
//! address, which never carry SNI). When two certificates list the same name, the one listed
//! first wins.
//!
//! With Pingora (rustls backend) the resolver replaces the cert/key paths:
//!
//! ```text
//! let resolver = Arc::new(SniResolver::load(&specs)?);
//! let mut tls = pingora_core::listeners::tls::TlsSettings::intermediate("", "")?; // paths unused
//! tls.set_cert_resolver(resolver.clone());
//! tls.enable_h2();                                   // ALPN h2, http/1.1
//! proxy_service.add_tls_with_settings("0.0.0.0:443", None, tls);
//! ```
//!
//! Keep the `Arc<SniResolver>` for reloads (see `super::watch`).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, ServerConfig};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

use super::{pem, TlsError};

/// ALPN protocols offered by [`server_config`], in order of preference.
pub const ALPN_H2_HTTP1: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// A certificate warns in the log when it expires within this long.
const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// One `{ cert = "...", key = "..." }` entry of `[tls] certs`. Both may name the same file
/// when it holds the chain and the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertSpec {
    /// PEM: the leaf certificate first, then any intermediates.
    pub cert: PathBuf,
    /// PEM: exactly one private key (PKCS#8, PKCS#1 RSA or SEC1 EC), unencrypted.
    pub key: PathBuf,
}

impl CertSpec {
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        CertSpec {
            cert: cert.into(),
            key: key.into(),
        }
    }
}

/// One loaded, validated certificate.
pub struct CertEntry {
    spec: CertSpec,
    names: Vec<String>,
    not_after: SystemTime,
    key: Arc<CertifiedKey>,
}

impl CertEntry {
    /// The files it was loaded from.
    pub fn spec(&self) -> &CertSpec {
        &self.spec
    }

    /// The names it serves, from its subjectAltName: DNS names (lower case, wildcards as
    /// `*.example.com`) and IP addresses, in certificate order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// End of the leaf certificate's validity.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// The chain and signing key handed to rustls.
    pub fn certified_key(&self) -> &Arc<CertifiedKey> {
        &self.key
    }
}

impl fmt::Debug for CertEntry {
    // The key stays out of Debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertEntry")
            .field("cert", &self.spec.cert)
            .field("key", &self.spec.key)
            .field("names", &self.names)
            .field("not_after", &self.not_after)
            .finish()
    }
}

/// A validated, non-empty set of certificates with the name index used for SNI.
#[derive(Debug)]
pub struct CertSet {
    entries: Vec<CertEntry>,
    /// Exact DNS names and IP addresses (lower case) -> index in `entries`.
    exact: HashMap<String, usize>,
    /// `*.example.com` is stored as `example.com` -> index in `entries`.
    wildcard: HashMap<String, usize>,
}

impl CertSet {
    /// The certificates in configuration order; the first is the default.
    pub fn entries(&self) -> &[CertEntry] {
        &self.entries
    }

    /// All names of all certificates, in configuration order, for logs.
    pub fn names(&self) -> Vec<String> {
        self.entries
            .iter()
            .flat_map(|e| e.names.iter().cloned())
            .collect()
    }

    /// The certificate for a TLS SNI name (`None`: the client sent none).
    /// `None` only if the set is empty, which [`load`] never returns.
    pub fn select(&self, server_name: Option<&str>) -> Option<&CertEntry> {
        let index = server_name
            .and_then(|name| self.index_for(name))
            .unwrap_or(0);
        self.entries.get(index).or_else(|| self.entries.first())
    }

    fn index_for(&self, name: &str) -> Option<usize> {
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        if let Some(&i) = self.exact.get(&name) {
            return Some(i);
        }
        let (_first, parent) = name.split_once('.')?;
        if parent.is_empty() {
            return None;
        }
        self.wildcard.get(parent).copied()
    }
}

/// Loads and validates every spec (all or nothing): files readable, PEM parsable, a
/// certificate and exactly one supported private key, key matching the certificate, the leaf
/// currently valid and naming at least one DNS name or IP address.
pub fn load(specs: &[CertSpec]) -> Result<CertSet, TlsError> {
    load_at(specs, OffsetDateTime::now_utc())
}

pub(crate) fn load_at(specs: &[CertSpec], now: OffsetDateTime) -> Result<CertSet, TlsError> {
    if specs.is_empty() {
        return Err(TlsError::Config(
            "[tls] certs is empty: at least one { cert, key } pair is needed".into(),
        ));
    }
    let mut set = CertSet {
        entries: Vec::with_capacity(specs.len()),
        exact: HashMap::new(),
        wildcard: HashMap::new(),
    };
    for spec in specs {
        let entry = load_one(spec, now)?;
        let index = set.entries.len();
        for name in &entry.names {
            match name.strip_prefix("*.") {
                Some(parent) => set.wildcard.entry(parent.to_string()).or_insert(index),
                None => set.exact.entry(name.clone()).or_insert(index),
            };
        }
        set.entries.push(entry);
    }
    Ok(set)
}

fn load_one(spec: &CertSpec, now: OffsetDateTime) -> Result<CertEntry, TlsError> {
    let cert_path = spec.cert.as_path();
    let key_path = spec.key.as_path();
    let cert_bytes = pem::read(cert_path)?;
    let chain = pem::certs(cert_path, &cert_bytes)?;
    let key_der = if key_path == cert_path {
        pem::key(key_path, &cert_bytes)?
    } else {
        pem::key(key_path, &pem::read(key_path)?)?
    };

    let (names, not_after) = {
        let leaf_der = chain.first().map(|c| c.as_ref()).unwrap_or_default();
        let leaf = pem::x509(cert_path, 0, leaf_der)?;
        pem::check_validity(cert_path, &leaf, now)?;
        let names = san_names(cert_path, &leaf)?;
        if names.is_empty() {
            return Err(TlsError::invalid(
                cert_path,
                "certificate has no DNS name or IP address in subjectAltName \
                 (clients ignore the subject CN)",
            ));
        }
        if leaf.is_ca() {
            tracing::warn!(
                cert = %cert_path.display(),
                "the first certificate is a CA certificate (basicConstraints CA:TRUE); \
                 many clients refuse it as a server certificate"
            );
        }
        check_chain(cert_path, &chain, now)?;
        let not_after = leaf.validity().not_after.to_datetime();
        if not_after - now < EXPIRY_WARNING {
            tracing::warn!(
                cert = %cert_path.display(),
                not_after = %pem::fmt_time(not_after),
                "certificate expires soon"
            );
        }
        (names, to_system_time(not_after))
    };

    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key_der).map_err(|e| {
        TlsError::invalid(
            key_path,
            format!("unsupported private key (RSA, ECDSA P-256/P-384 or Ed25519 expected): {e}"),
        )
    })?;
    let key = CertifiedKey::new(chain, signing_key);
    match key.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::KeyMismatch {
                cert: spec.cert.clone(),
                key: spec.key.clone(),
            })
        }
        Err(e) => {
            return Err(TlsError::invalid(
                cert_path,
                format!("cannot check the key against the certificate: {e}"),
            ))
        }
    }
    Ok(CertEntry {
        spec: spec.clone(),
        names,
        not_after,
        key: Arc::new(key),
    })
}

/// The DNS names (lower case, trailing dot removed) and IP addresses of the leaf's SAN.
fn san_names(path: &std::path::Path, leaf: &X509Certificate<'_>) -> Result<Vec<String>, TlsError> {
    let san = leaf
        .subject_alternative_name()
        .map_err(|e| TlsError::invalid(path, format!("bad subjectAltName extension: {e}")))?;
    let mut names: Vec<String> = Vec::new();
    let Some(san) = san else {
        return Ok(names);
    };
    for general_name in &san.value.general_names {
        let name = match general_name {
            GeneralName::DNSName(dns) => {
                let dns = dns.strip_suffix('.').unwrap_or(dns).to_ascii_lowercase();
                let supported = match dns.strip_prefix("*.") {
                    Some(rest) => !rest.contains('*'),
                    None => !dns.contains('*'),
                };
                if !supported {
                    tracing::warn!(
                        cert = %path.display(),
                        name = %dns,
                        "unsupported wildcard form ignored (only `*.domain` is matched)"
                    );
                    continue;
                }
                dns
            }
            GeneralName::IPAddress(bytes) => match ip_from_bytes(bytes) {
                Some(ip) => ip.to_string(),
                None => continue,
            },
            _ => continue,
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::from(v4));
    }
    <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from)
}

/// Intermediates must parse; an expired one or a chain out of order only warns (a client may
/// still build a path through another intermediate it has).
fn check_chain(
    path: &std::path::Path,
    chain: &[rustls_pki_types::CertificateDer<'static>],
    now: OffsetDateTime,
) -> Result<(), TlsError> {
    let mut previous: Option<X509Certificate<'_>> = None;
    for (i, der) in chain.iter().enumerate() {
        let cert = pem::x509(path, i, der)?;
        if i > 0 && cert.validity().not_after.to_datetime() < now {
            tracing::warn!(cert = %path.display(), index = i + 1, "intermediate certificate expired");
        }
        if let Some(prev) = &previous {
            if prev.issuer().as_raw() != cert.subject().as_raw() {
                tracing::warn!(
                    cert = %path.display(),
                    index = i + 1,
                    "certificate chain out of order: certificate is not the issuer of the one before it"
                );
            }
        }
        previous = Some(cert);
    }
    Ok(())
}

fn to_system_time(t: OffsetDateTime) -> SystemTime {
    let secs = t.unix_timestamp();
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH
    }
}

/// The SNI certificate resolver of the listener. Holds the current [`CertSet`] in an
/// [`ArcSwap`]: handshakes read it lock-free, [`SniResolver::reload`] replaces it atomically.
pub struct SniResolver {
    current: ArcSwap<CertSet>,
}

impl SniResolver {
    pub fn new(set: CertSet) -> Self {
        SniResolver {
            current: ArcSwap::from_pointee(set),
        }
    }

    /// [`load`] and wrap.
    pub fn load(specs: &[CertSpec]) -> Result<Self, TlsError> {
        Ok(SniResolver::new(load(specs)?))
    }

    /// Loads `specs` (which may differ from the previous list) and swaps them in. On error the
    /// previous set stays in service and the error is returned for the caller to log.
    /// Handshakes already past certificate selection keep the certificate they chose.
    pub fn reload(&self, specs: &[CertSpec]) -> Result<(), TlsError> {
        let set = load(specs)?;
        self.current.store(Arc::new(set));
        Ok(())
    }

    /// The set in service now.
    pub fn current(&self) -> Arc<CertSet> {
        self.current.load_full()
    }

    /// All names served, for logs.
    pub fn names(&self) -> Vec<String> {
        self.current.load().names()
    }
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("names", &self.names())
            .finish()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let set = self.current.load();
        set.select(client_hello.server_name())
            .map(|entry| Arc::clone(&entry.key))
    }
}

/// A rustls server config (TLS 1.2 and 1.3, ring provider, no client auth) that takes its
/// certificates from `resolver` and offers ALPN `h2` then `http/1.1`.
///
/// With Pingora the same resolver plugs in as
/// `TlsSettings::set_cert_resolver(resolver)` + `enable_h2()` instead.
pub fn server_config(resolver: Arc<SniResolver>) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(format!("building the TLS server config: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN_H2_HTTP1.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}
