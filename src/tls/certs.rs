//! `edge certs`: development certificates signed by a local CA.
//!
//! `generate_dev(out, names)` writes, in `out`:
//!
//! | file                  | what                                            | mode |
//! |-----------------------|-------------------------------------------------|------|
//! | `edge-dev-ca.pem`     | the local CA certificate (10 years), created once and reused | 0644 |
//! | `edge-dev-ca-key.pem` | its private key                                 | 0600 |
//! | `edge.pem`            | leaf for `names` (1 year) followed by the CA    | 0644 |
//! | `edge-key.pem`        | the leaf's private key                          | 0600 |
//!
//! Keys are ECDSA P-256. Names are DNS names (`localhost`, `edge.test`, `*.edge.test`) or IP
//! addresses (`127.0.0.1`, `::1`). Trust the CA in a browser or pass it to a client
//! (`curl --cacert certs/edge-dev-ca.pem`); regenerating the leaf keeps the same CA, so the
//! trust stays valid. Files are written to a temporary name and renamed into place, so a
//! running edge that polls them never reads a half-written file.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::prelude::X509Name;

use super::store::{self, CertSpec};
use super::{pem, TlsError};

pub const CA_CERT_FILE: &str = "edge-dev-ca.pem";
pub const CA_KEY_FILE: &str = "edge-dev-ca-key.pem";
pub const CERT_FILE: &str = "edge.pem";
pub const KEY_FILE: &str = "edge-key.pem";

const CA_VALIDITY_DAYS: i64 = 3650;
const LEAF_VALIDITY_DAYS: i64 = 365;
/// Backdating of `not_before`, for clocks slightly behind.
const BACKDATE: Duration = Duration::hours(1);

/// What [`generate_dev`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedPaths {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    /// Leaf + CA chain.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// False when an existing CA in `out_dir` was reused.
    pub ca_created: bool,
    /// The names in the leaf, normalised (trimmed, DNS names lower-cased, duplicates dropped).
    pub names: Vec<String>,
}

impl GeneratedPaths {
    /// The leaf as a `[tls] certs` entry.
    pub fn spec(&self) -> CertSpec {
        CertSpec::new(&self.cert, &self.key)
    }
}

/// Creates (or reuses) the development CA in `out_dir` and issues a fresh leaf certificate for
/// `names`, replacing `edge.pem` / `edge-key.pem`. The result is checked by loading it the way
/// the listener does.
pub fn generate_dev(out_dir: &Path, names: &[String]) -> Result<GeneratedPaths, TlsError> {
    generate_dev_at(out_dir, names, OffsetDateTime::now_utc())
}

pub(crate) fn generate_dev_at(
    out_dir: &Path,
    names: &[String],
    now: OffsetDateTime,
) -> Result<GeneratedPaths, TlsError> {
    let names = normalize_names(names)?;
    std::fs::create_dir_all(out_dir)
        .map_err(|e| TlsError::io(out_dir, "create the directory", e))?;
    let paths = GeneratedPaths {
        ca_cert: out_dir.join(CA_CERT_FILE),
        ca_key: out_dir.join(CA_KEY_FILE),
        cert: out_dir.join(CERT_FILE),
        key: out_dir.join(KEY_FILE),
        ca_created: false,
        names,
    };

    let ca = match (paths.ca_cert.exists(), paths.ca_key.exists()) {
        (true, true) => load_ca(&paths.ca_cert, &paths.ca_key, now)?,
        (false, false) => create_ca(&paths.ca_cert, &paths.ca_key, now)?,
        (true, false) | (false, true) => {
            let (present, missing) = if paths.ca_cert.exists() {
                (&paths.ca_cert, &paths.ca_key)
            } else {
                (&paths.ca_key, &paths.ca_cert)
            };
            return Err(TlsError::invalid(
                present,
                format!(
                    "found without {}: restore it, or delete this file to create a new CA",
                    missing.display()
                ),
            ));
        }
    };
    let paths = GeneratedPaths {
        ca_created: ca.created,
        ..paths
    };

    // The leaf.
    let leaf_key = KeyPair::generate().map_err(gen_err)?;
    let mut params = CertificateParams::new(paths.names.clone()).map_err(gen_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        paths.names.first().cloned().unwrap_or_default(),
    );
    dn.push(DnType::OrganizationName, "edge development certificate");
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - BACKDATE;
    params.not_after = (now + Duration::days(LEAF_VALIDITY_DAYS)).min(ca.not_after);
    let leaf = params.signed_by(&leaf_key, &ca.issuer).map_err(gen_err)?;

    // A reused CA's subject is rebuilt from its parsed form: make sure the leaf's issuer
    // name came out byte-identical, or clients could not chain the leaf to the CA.
    {
        let leaf_x509 = pem::x509(&paths.cert, 0, leaf.der())?;
        let ca_x509 = pem::x509(&paths.ca_cert, 0, &ca.der)?;
        if leaf_x509.issuer().as_raw() != ca_x509.subject().as_raw() {
            return Err(TlsError::invalid(
                &paths.ca_cert,
                "cannot reproduce this CA's subject name exactly; delete it and its key \
                 to create a new CA",
            ));
        }
    }

    let chain = format!("{}{}", ensure_newline(leaf.pem()), ensure_newline(ca.pem));
    write_atomic(&paths.key, leaf_key.serialize_pem().as_bytes(), true)?;
    write_atomic(&paths.cert, chain.as_bytes(), false)?;

    store::load_at(&[paths.spec()], now)?;
    Ok(paths)
}

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate: PEM text (one block) and DER.
    pem: String,
    der: Vec<u8>,
    not_after: OffsetDateTime,
    created: bool,
}

fn create_ca(cert_path: &Path, key_path: &Path, now: OffsetDateTime) -> Result<Ca, TlsError> {
    let key = KeyPair::generate().map_err(gen_err)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "edge development CA");
    dn.push(
        DnType::OrganizationName,
        "edge (local development only, not trusted)",
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(CA_VALIDITY_DAYS);
    let cert = params.self_signed(&key).map_err(gen_err)?;
    let pem_text = cert.pem();
    write_atomic(key_path, key.serialize_pem().as_bytes(), true)?;
    write_atomic(cert_path, pem_text.as_bytes(), false)?;
    Ok(Ca {
        not_after: params.not_after,
        der: cert.der().to_vec(),
        pem: pem_text,
        issuer: Issuer::new(params, key),
        created: true,
    })
}

fn load_ca(cert_path: &Path, key_path: &Path, now: OffsetDateTime) -> Result<Ca, TlsError> {
    let cert_bytes = pem::read(cert_path)?;
    let der = pem::certs(cert_path, &cert_bytes)?
        .into_iter()
        .next()
        .map(|c| c.as_ref().to_vec())
        .unwrap_or_default();
    let key_text = String::from_utf8(pem::read(key_path)?)
        .map_err(|_| TlsError::invalid(key_path, "not a PEM file (not text)"))?;
    // Validates the PEM structure first, for a precise message.
    pem::key(key_path, key_text.as_bytes())?;
    let key = KeyPair::from_pem(&key_text)
        .map_err(|e| TlsError::invalid(key_path, format!("unsupported CA private key: {e}")))?;

    let x509 = pem::x509(cert_path, 0, &der)?;
    if !x509.is_ca() {
        return Err(TlsError::invalid(
            cert_path,
            "not a CA certificate (basicConstraints CA:TRUE missing)",
        ));
    }
    if let Err(e) = pem::check_validity(cert_path, &x509, now) {
        return Err(TlsError::invalid(
            cert_path,
            format!(
                "{e}; delete it and {} to create a new CA",
                key_path.display()
            ),
        ));
    }
    if rcgen::PublicKeyData::subject_public_key_info(&key) != x509.public_key().raw {
        return Err(TlsError::KeyMismatch {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
        });
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = dn_from_x509(cert_path, x509.subject())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let not_after = x509.validity().not_after.to_datetime();
    let pem_text = first_pem_block(&String::from_utf8_lossy(&cert_bytes))
        .ok_or_else(|| TlsError::invalid(cert_path, "no certificate found"))?;
    Ok(Ca {
        issuer: Issuer::new(params, key),
        pem: pem_text,
        der,
        not_after,
        created: false,
    })
}

/// Rebuilds an rcgen name from a parsed one (the string types OpenSSL and rcgen use).
fn dn_from_x509(path: &Path, name: &X509Name<'_>) -> Result<DistinguishedName, TlsError> {
    let unsupported = |what: &str| {
        TlsError::invalid(
            path,
            format!(
                "cannot reuse this CA: its subject has {what}; delete it and its key to \
                 create a new CA"
            ),
        )
    };
    let mut dn = DistinguishedName::new();
    for attr in name.iter_attributes() {
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| unsupported("an attribute with an oversized OID"))?
            .collect();
        let ty = match oid.as_slice() {
            [2, 5, 4, 3] => DnType::CommonName,
            [2, 5, 4, 6] => DnType::CountryName,
            [2, 5, 4, 7] => DnType::LocalityName,
            [2, 5, 4, 8] => DnType::StateOrProvinceName,
            [2, 5, 4, 10] => DnType::OrganizationName,
            [2, 5, 4, 11] => DnType::OrganizationalUnitName,
            other => DnType::CustomDnType(other.to_vec()),
        };
        let text = std::str::from_utf8(attr.as_slice())
            .map_err(|_| unsupported("a non-UTF-8 attribute"))?;
        let value = match attr.attr_value().tag() {
            Tag::Utf8String => DnValue::Utf8String(text.to_string()),
            Tag::PrintableString => DnValue::PrintableString(
                text.try_into()
                    .map_err(|_| unsupported("an invalid PrintableString"))?,
            ),
            Tag::Ia5String => DnValue::Ia5String(
                text.try_into()
                    .map_err(|_| unsupported("an invalid IA5String"))?,
            ),
            _ => return Err(unsupported("an attribute of an unusual string type")),
        };
        dn.push(ty, value);
    }
    Ok(dn)
}

/// Trims, lower-cases DNS names, drops duplicates, and checks every name is an IP address or
/// a DNS name (optionally `*.` + at least one more label).
fn normalize_names(names: &[String]) -> Result<Vec<String>, TlsError> {
    let mut out: Vec<String> = Vec::new();
    for raw in names {
        let name = raw.trim();
        if name.is_empty() {
            continue;
        }
        let name = match name.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => {
                let dns = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
                check_dns_name(&dns).map_err(|why| {
                    TlsError::Config(format!("invalid certificate name {name:?}: {why}"))
                })?;
                dns
            }
        };
        if !out.contains(&name) {
            out.push(name);
        }
    }
    if out.is_empty() {
        return Err(TlsError::Config(
            "no certificate names given (e.g. --names localhost,127.0.0.1,edge.test)".into(),
        ));
    }
    Ok(out)
}

fn check_dns_name(name: &str) -> Result<(), &'static str> {
    if name.len() > 253 {
        return Err("longer than 253 characters");
    }
    let rest = match name.strip_prefix("*.") {
        Some(rest) => rest,
        None => name,
    };
    if rest.is_empty() {
        return Err("a wildcard needs a domain after `*.`");
    }
    for label in rest.split('.') {
        if label.is_empty() {
            return Err("empty label");
        }
        if label.len() > 63 {
            return Err("a label is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("only letters, digits, '-' and '.' are allowed (and `*.` as a prefix)");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label starts or ends with '-'");
        }
    }
    Ok(())
}

fn first_pem_block(text: &str) -> Option<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = text.find(BEGIN)?;
    let len = text.get(start..)?.find(END)? + END.len();
    text.get(start..start + len)
        .map(|block| format!("{block}\n"))
}

fn ensure_newline(mut s: String) -> String {
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// Writes `path.tmp` then renames it over `path`. Keys get mode 0600 (on Unix).
fn write_atomic(path: &Path, bytes: &[u8], secret: bool) -> Result<(), TlsError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(TlsError::io(&tmp, "remove", e)),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options
        .open(&tmp)
        .map_err(|e| TlsError::io(&tmp, "create", e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| TlsError::io(&tmp, "write", e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| TlsError::io(path, "replace", e))
}

fn gen_err(e: rcgen::Error) -> TlsError {
    TlsError::Config(format!("certificate generation failed: {e}"))
}
