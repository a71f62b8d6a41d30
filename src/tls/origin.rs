//! Origin-side TLS (`tls = true` origins): the CA bundle that verifies an origin's
//! certificate.
//!
//! With Pingora's rustls backend a per-origin CA list goes in `HttpPeer::options.ca` as
//! `Arc<[WrappedX509]>` (`pingora_core::utils::tls::WrappedX509::new(der.to_vec(), parse_x509)`).
//! `parse_x509` panics on DER it cannot parse, which is why every certificate returned here
//! has already been parsed (and accepted as a rustls trust anchor).

use std::path::Path;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use super::{pem, TlsError};

/// Reads a PEM bundle of CA certificates (one or more `BEGIN CERTIFICATE` blocks; text in
/// between is ignored). Each one must be valid X.509 usable as a trust anchor. An expired CA
/// only warns (bundles often carry old roots).
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = pem::read(path)?;
    let sections = pem::sections(path, &bytes)?;
    if sections.certs.is_empty() {
        return Err(TlsError::invalid(
            path,
            "no CA certificate found (expected '-----BEGIN CERTIFICATE-----' blocks)",
        ));
    }
    if !sections.keys.is_empty() {
        tracing::warn!(ca_file = %path.display(), "CA bundle contains a private key; it is ignored and should not be there");
    }
    let now = OffsetDateTime::now_utc();
    let mut probe = RootCertStore::empty();
    for (i, der) in sections.certs.iter().enumerate() {
        let x509 = pem::x509(path, i, der)?;
        if x509.validity().not_after.to_datetime() < now {
            tracing::warn!(ca_file = %path.display(), index = i + 1, "CA certificate expired");
        }
        probe.add(der.clone()).map_err(|e| {
            TlsError::invalid(
                path,
                format!(
                    "certificate #{} cannot be used as a trust anchor: {e}",
                    i + 1
                ),
            )
        })?;
    }
    Ok(sections.certs)
}

/// [`load_ca_file`] as a rustls root store (for a rustls `ClientConfig`).
pub fn load_root_store(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for der in load_ca_file(path)? {
        store
            .add(der)
            .map_err(|e| TlsError::invalid(path, format!("unusable CA certificate: {e}")))?;
    }
    Ok(store)
}
