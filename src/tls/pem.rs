//! Reading PEM files and parsing certificates, with errors that name the file.

use std::path::Path;

use rustls_pki_types::pem::SectionKind;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::TlsError;

/// Reads a whole file; the error names the file.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::io(path, "read", e))
}

/// The PEM sections of one file that matter to us.
#[derive(Default)]
pub(crate) struct Sections {
    pub certs: Vec<CertificateDer<'static>>,
    pub keys: Vec<PrivateKeyDer<'static>>,
    /// The file has an encrypted private key (which rustls cannot use).
    pub encrypted_key: bool,
}

/// Splits a PEM file into its certificates and private keys. Text around the PEM blocks is
/// ignored (as OpenSSL does); a block with a broken body is an error.
pub(crate) fn sections(path: &Path, bytes: &[u8]) -> Result<Sections, TlsError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(TlsError::invalid(path, "file is empty"));
    }
    if !contains(bytes, b"-----BEGIN ") {
        let hint = if bytes.first() == Some(&0x30) {
            "not a PEM file (it looks like binary DER; convert it with `openssl x509 -inform der` \
             or `openssl pkey -inform der`)"
        } else {
            "not a PEM file (no '-----BEGIN ...-----' block found)"
        };
        return Err(TlsError::invalid(path, hint));
    }
    let mut out = Sections {
        encrypted_key: contains(bytes, b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
            || contains(bytes, b"Proc-Type: 4,ENCRYPTED"),
        ..Sections::default()
    };
    // PEM parsing by rustls-pki-types (rustls-pemfile is unmaintained and now wraps it).
    let mut rest = bytes;
    loop {
        match rustls_pki_types::pem::from_buf(&mut rest) {
            Ok(None) => break,
            Ok(Some((SectionKind::Certificate, der))) => out.certs.push(CertificateDer::from(der)),
            Ok(Some((SectionKind::RsaPrivateKey, der))) => {
                out.keys.push(PrivateKeyDer::Pkcs1(der.into()))
            }
            Ok(Some((SectionKind::PrivateKey, der))) => {
                out.keys.push(PrivateKeyDer::Pkcs8(der.into()))
            }
            Ok(Some((SectionKind::EcPrivateKey, der))) => {
                out.keys.push(PrivateKeyDer::Sec1(der.into()))
            }
            Ok(Some(_)) => {} // CRLs, CSRs, public keys: not ours to use
            Err(e) => {
                return Err(TlsError::invalid(
                    path,
                    format!("unparsable PEM (corrupt base64 or a missing END line): {e}"),
                ))
            }
        }
    }
    Ok(out)
}

/// The certificates of a PEM file (leaf first); at least one.
pub(crate) fn certs(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let s = sections(path, bytes)?;
    if s.certs.is_empty() {
        let reason = if s.keys.is_empty() {
            "no certificate found (expected a '-----BEGIN CERTIFICATE-----' block)"
        } else {
            "no certificate found: the file holds a private key (are `cert` and `key` swapped?)"
        };
        return Err(TlsError::invalid(path, reason));
    }
    Ok(s.certs)
}

/// The single private key of a PEM file.
pub(crate) fn key(path: &Path, bytes: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    let s = sections(path, bytes)?;
    let n = s.keys.len();
    let mut keys = s.keys.into_iter();
    match (keys.next(), n) {
        (Some(k), 1) => Ok(k),
        (Some(_), n) => Err(TlsError::invalid(
            path,
            format!("holds {n} private keys; expected exactly one"),
        )),
        (None, _) if s.encrypted_key => Err(TlsError::invalid(
            path,
            "encrypted private keys are not supported (decrypt it with `openssl pkey`)",
        )),
        (None, _) if !s.certs.is_empty() => Err(TlsError::invalid(
            path,
            "no private key found: the file holds a certificate (are `cert` and `key` swapped?)",
        )),
        (None, _) => Err(TlsError::invalid(
            path,
            "no private key found (expected a '-----BEGIN PRIVATE KEY-----', \
             '-----BEGIN RSA PRIVATE KEY-----' or '-----BEGIN EC PRIVATE KEY-----' block)",
        )),
    }
}

/// Parses one DER certificate; `index` is 0 for the first in the file.
pub(crate) fn x509<'a>(
    path: &Path,
    index: usize,
    der: &'a [u8],
) -> Result<X509Certificate<'a>, TlsError> {
    match X509Certificate::from_der(der) {
        Ok((_, cert)) => Ok(cert),
        Err(e) => Err(TlsError::invalid(
            path,
            format!("certificate #{} is not valid X.509: {e}", index + 1),
        )),
    }
}

/// Checks the validity period against `now`.
pub(crate) fn check_validity(
    path: &Path,
    cert: &X509Certificate<'_>,
    now: OffsetDateTime,
) -> Result<(), TlsError> {
    let validity = cert.validity();
    let not_before = validity.not_before.to_datetime();
    let not_after = validity.not_after.to_datetime();
    if now < not_before {
        return Err(TlsError::invalid(
            path,
            format!("certificate is not valid before {}", fmt_time(not_before)),
        ));
    }
    if now > not_after {
        return Err(TlsError::invalid(
            path,
            format!("certificate expired on {}", fmt_time(not_after)),
        ));
    }
    Ok(())
}

/// `2025-01-01 00:00:00 UTC`
pub(crate) fn fmt_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
