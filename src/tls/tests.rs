use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::certs::{self, generate_dev};
use super::store::{self, server_config, CertSpec, SniResolver};
use super::watch::{fingerprint, PollOutcome, Poller};
use super::{origin, TlsError};

// ---------------------------------------------------------------------------------------
// helpers

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A throwaway CA for hand-made test certificates.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
    pem: String,
}

impl TestCa {
    fn new() -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "edge test CA");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes `<stem>.pem` + `<stem>-key.pem` for `sans`, valid from..until (default: now
    /// -1 day .. +30 days).
    fn issue(
        &self,
        dir: &Path,
        stem: &str,
        sans: &[&str],
        validity: Option<(OffsetDateTime, OffsetDateTime)>,
    ) -> CertSpec {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names(sans)).unwrap();
        let now = OffsetDateTime::now_utc();
        let (nb, na) = validity.unwrap_or((
            now - time::Duration::days(1),
            now + time::Duration::days(30),
        ));
        params.not_before = nb;
        params.not_after = na;
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let spec = CertSpec::new(
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}-key.pem")),
        );
        std::fs::write(&spec.cert, cert.pem()).unwrap();
        std::fs::write(&spec.key, key.serialize_pem()).unwrap();
        spec
    }
}

fn err_of<T: std::fmt::Debug>(r: Result<T, TlsError>) -> String {
    r.expect_err("expected an error").to_string()
}

/// DNS names and IPs in a DER certificate's SAN.
fn san_of(der: &[u8]) -> Vec<String> {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            GeneralName::IPAddress(b) if b.len() == 4 => {
                Some(std::net::IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()).to_string())
            }
            _ => None,
        })
        .collect()
}

/// Accepts any server certificate: lets the tests see which one the server chose even when
/// it does not match the requested name.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

enum Trust<'a> {
    Any,
    Roots(&'a [CertificateDer<'static>]),
}

#[derive(Debug)]
struct Handshake {
    /// SAN of the leaf the server presented.
    san: Vec<String>,
    alpn: Option<Vec<u8>>,
}

/// A full TLS handshake over an in-memory pipe, then one echo round trip.
/// `sni`: `None` sends no SNI.
async fn handshake(
    resolver: &Arc<SniResolver>,
    sni: Option<&str>,
    trust: Trust<'_>,
    alpn: &[&[u8]],
) -> Result<Handshake, String> {
    let server_cfg = Arc::new(server_config(Arc::clone(resolver)).map_err(|e| e.to_string())?);
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let mut client_cfg = match trust {
        Trust::Any => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
            .with_no_client_auth(),
        Trust::Roots(roots) => {
            let mut store = RootCertStore::empty();
            for r in roots {
                store.add(r.clone()).unwrap();
            }
            builder.with_root_certificates(store).with_no_client_auth()
        }
    };
    client_cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = match sni {
        Some(n) => ServerName::try_from(n.to_string()).unwrap(),
        None => {
            client_cfg.enable_sni = false;
            ServerName::try_from("no-sni.invalid").unwrap()
        }
    };
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let acceptor = tokio_rustls::TlsAcceptor::from(server_cfg);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_cfg));
    let server = tokio::spawn(async move {
        let mut tls = acceptor
            .accept(server_io)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        tls.write_all(&buf).await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    });
    let mut tls = connector
        .connect(name, client_io)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(b"ping").await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4];
    tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    assert_eq!(&buf, b"ping");
    server.await.unwrap()?;
    let (_, conn) = tls.get_ref();
    let leaf = conn.peer_certificates().unwrap()[0].clone();
    Ok(Handshake {
        san: san_of(&leaf),
        alpn: conn.alpn_protocol().map(|p| p.to_vec()),
    })
}

// ---------------------------------------------------------------------------------------
// generate_dev

#[test]
fn generate_dev_writes_ca_and_leaf_that_load() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let paths = generate_dev(
        &out,
        &names(&["localhost", "127.0.0.1", "edge.test", "*.edge.test"]),
    )
    .unwrap();
    assert!(paths.ca_created);
    assert_eq!(paths.cert, out.join("edge.pem"));
    assert_eq!(paths.key, out.join("edge-key.pem"));
    assert_eq!(paths.ca_cert, out.join("edge-dev-ca.pem"));
    assert_eq!(paths.ca_key, out.join("edge-dev-ca-key.pem"));
    assert_eq!(
        paths.names,
        names(&["localhost", "127.0.0.1", "edge.test", "*.edge.test"])
    );

    let set = store::load(&[paths.spec()]).unwrap();
    assert_eq!(
        set.names(),
        names(&["localhost", "127.0.0.1", "edge.test", "*.edge.test"])
    );
    // leaf + CA
    let chain = set.entries()[0].certified_key().cert.clone();
    assert_eq!(chain.len(), 2);
    let ca_pem = std::fs::read(&paths.ca_cert).unwrap();
    let ca_der =
        <rustls_pki_types::CertificateDer as rustls_pki_types::pem::PemObject>::pem_slice_iter(
            &ca_pem[..],
        )
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(chain[1], ca_der);

    // validity: leaf ~1 year, CA ~10 years; the CA is a CA, the leaf is not
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let (_, leaf) = X509Certificate::from_der(&chain[0]).unwrap();
    let (_, ca) = X509Certificate::from_der(&chain[1]).unwrap();
    let days = |c: &X509Certificate<'_>| (c.validity().not_after.timestamp() - now) / 86400;
    assert!(
        (363..=366).contains(&days(&leaf)),
        "leaf days {}",
        days(&leaf)
    );
    assert!((3648..=3651).contains(&days(&ca)), "ca days {}", days(&ca));
    assert!(ca.is_ca());
    assert!(!leaf.is_ca());
    assert!(leaf.validity().not_before.timestamp() < now);
    assert_eq!(
        san_of(&chain[0]),
        names(&["localhost", "127.0.0.1", "edge.test", "*.edge.test"])
    );
}

#[cfg(unix)]
#[test]
fn generate_dev_key_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let paths = generate_dev(dir.path(), &names(&["localhost"])).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&paths.key), 0o600);
    assert_eq!(mode(&paths.ca_key), 0o600);
    assert_eq!(
        mode(&paths.cert) & 0o077 & !0o044,
        0,
        "cert is not group/world writable"
    );
    // no temporary files left behind
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn generate_dev_reuses_the_ca_and_the_new_leaf_chains_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let first = generate_dev(dir.path(), &names(&["localhost"])).unwrap();
    let ca_before = std::fs::read(&first.ca_cert).unwrap();
    let ca_key_before = std::fs::read(&first.ca_key).unwrap();
    let leaf_before = std::fs::read(&first.cert).unwrap();

    let second = generate_dev(dir.path(), &names(&["edge.test", "*.edge.test", "::1"])).unwrap();
    assert!(!second.ca_created);
    assert_eq!(std::fs::read(&second.ca_cert).unwrap(), ca_before);
    assert_eq!(std::fs::read(&second.ca_key).unwrap(), ca_key_before);
    assert_ne!(std::fs::read(&second.cert).unwrap(), leaf_before);

    // A real verifier accepts the new leaf for each name, with only the CA trusted.
    let ca_der =
        <rustls_pki_types::CertificateDer as rustls_pki_types::pem::PemObject>::pem_slice_iter(
            &ca_before[..],
        )
        .next()
        .unwrap()
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(ca_der).unwrap();
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .unwrap();
    let set = store::load(&[second.spec()]).unwrap();
    let chain = &set.entries()[0].certified_key().cert;
    for name in ["edge.test", "a.edge.test", "::1"] {
        verifier
            .verify_server_cert(
                &chain[0],
                &chain[1..],
                &ServerName::try_from(name).unwrap(),
                &[],
                UnixTime::now(),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // and not for a name it does not carry
    assert!(verifier
        .verify_server_cert(
            &chain[0],
            &chain[1..],
            &ServerName::try_from("localhost").unwrap(),
            &[],
            UnixTime::now(),
        )
        .is_err());
}

#[test]
fn generate_dev_normalises_and_rejects_names() {
    let dir = tempfile::tempdir().unwrap();
    let p = generate_dev(
        dir.path(),
        &names(&[" EDGE.Test. ", "edge.test", "", "127.0.0.1"]),
    )
    .unwrap();
    assert_eq!(p.names, names(&["edge.test", "127.0.0.1"]));

    for bad in [
        "bad name",
        "-edge.test",
        "edge-.test",
        "a..b",
        "*.",
        "a.*.b",
        "*",
        "under_score.test",
        "é.test",
    ] {
        let e = err_of(generate_dev(dir.path(), &names(&[bad])));
        assert!(e.contains("invalid certificate name"), "{bad}: {e}");
    }
    let e = err_of(generate_dev(dir.path(), &names(&["", " "])));
    assert!(e.contains("no certificate names"), "{e}");
    let e = err_of(generate_dev(dir.path(), &[]));
    assert!(e.contains("no certificate names"), "{e}");
}

#[test]
fn generate_dev_refuses_half_a_ca_and_an_expired_ca() {
    let dir = tempfile::tempdir().unwrap();
    let p = generate_dev(dir.path(), &names(&["localhost"])).unwrap();

    // 11 years later the CA has expired: clear error, nothing replaced.
    let later = OffsetDateTime::now_utc() + time::Duration::days(11 * 365);
    let e = err_of(certs::generate_dev_at(
        dir.path(),
        &names(&["localhost"]),
        later,
    ));
    assert!(e.contains("edge-dev-ca.pem: certificate expired on"), "{e}");
    assert!(e.contains("to create a new CA"), "{e}");

    std::fs::remove_file(&p.ca_key).unwrap();
    let e = err_of(generate_dev(dir.path(), &names(&["localhost"])));
    assert!(e.contains("edge-dev-ca.pem: found without"), "{e}");
    assert!(e.contains("edge-dev-ca-key.pem"), "{e}");
}

#[test]
fn generate_dev_refuses_a_ca_key_of_another_ca() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let pa = generate_dev(a.path(), &names(&["localhost"])).unwrap();
    let pb = generate_dev(b.path(), &names(&["localhost"])).unwrap();
    std::fs::copy(&pb.ca_key, &pa.ca_key).unwrap();
    let e = err_of(generate_dev(a.path(), &names(&["localhost"])));
    assert!(
        e.contains("edge-dev-ca-key.pem: private key does not match"),
        "{e}"
    );
}

#[test]
fn generate_dev_errors_when_out_dir_is_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain");
    std::fs::write(&file, "x").unwrap();
    let e = err_of(generate_dev(&file, &names(&["localhost"])));
    assert!(e.contains("plain: cannot create the directory"), "{e}");
}

// ---------------------------------------------------------------------------------------
// load: error cases name the file and the reason

struct Fixture {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    ca: TestCa,
    good: CertSpec,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let ca = TestCa::new();
    let good = ca.issue(&path, "good", &["good.test"], None);
    Fixture {
        _dir: dir,
        dir: path,
        ca,
        good,
    }
}

fn write(dir: &Path, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

#[test]
fn load_missing_files() {
    let f = fixture();
    let e = err_of(store::load(&[CertSpec::new(
        f.dir.join("nope.pem"),
        &f.good.key,
    )]));
    assert!(e.contains("nope.pem: cannot read: "), "{e}");
    let e = err_of(store::load(&[CertSpec::new(
        &f.good.cert,
        f.dir.join("nokey.pem"),
    )]));
    assert!(e.contains("nokey.pem: cannot read: "), "{e}");
    let e = err_of(store::load(&[]));
    assert!(e.contains("at least one"), "{e}");
}

#[test]
fn load_empty_and_garbage_files() {
    let f = fixture();
    let empty = write(&f.dir, "empty.pem", "");
    let e = err_of(store::load(&[CertSpec::new(&empty, &f.good.key)]));
    assert!(e.ends_with("empty.pem: file is empty"), "{e}");
    let blank = write(&f.dir, "blank.pem", "\n  \n");
    let e = err_of(store::load(&[CertSpec::new(&blank, &f.good.key)]));
    assert!(e.ends_with("blank.pem: file is empty"), "{e}");
    let e = err_of(store::load(&[CertSpec::new(&f.good.cert, &empty)]));
    assert!(e.ends_with("empty.pem: file is empty"), "{e}");

    let garbage = write(&f.dir, "garbage.pem", "this is not a certificate\n");
    let e = err_of(store::load(&[CertSpec::new(&garbage, &f.good.key)]));
    assert!(e.contains("garbage.pem: not a PEM file"), "{e}");

    let binary = write(&f.dir, "binary.pem", [0x30u8, 0x82, 0x01, 0x00, 0xff, 0x00]);
    let e = err_of(store::load(&[CertSpec::new(&binary, &f.good.key)]));
    assert!(
        e.contains("binary.pem: not a PEM file (it looks like binary DER"),
        "{e}"
    );

    let bad_b64 = write(
        &f.dir,
        "badb64.pem",
        "-----BEGIN CERTIFICATE-----\n!!!! not base64 !!!!\n-----END CERTIFICATE-----\n",
    );
    let e = err_of(store::load(&[CertSpec::new(&bad_b64, &f.good.key)]));
    assert!(e.contains("badb64.pem: unparsable PEM"), "{e}");

    let unterminated = write(
        &f.dir,
        "unterminated.pem",
        "-----BEGIN CERTIFICATE-----\nMIIB\n",
    );
    let e = err_of(store::load(&[CertSpec::new(&unterminated, &f.good.key)]));
    assert!(e.contains("unterminated.pem: unparsable PEM"), "{e}");

    let not_der = write(
        &f.dir,
        "notder.pem",
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    );
    let e = err_of(store::load(&[CertSpec::new(&not_der, &f.good.key)]));
    assert!(
        e.contains("notder.pem: certificate #1 is not valid X.509"),
        "{e}"
    );
}

#[test]
fn load_files_with_the_wrong_content() {
    let f = fixture();
    // swapped cert and key
    let e = err_of(store::load(&[CertSpec::new(&f.good.key, &f.good.cert)]));
    assert!(
        e.contains("good-key.pem: no certificate found: the file holds a private key"),
        "{e}"
    );
    let e = err_of(store::load(&[CertSpec::new(&f.good.cert, &f.good.cert)]));
    assert!(
        e.contains("good.pem: no private key found: the file holds a certificate"),
        "{e}"
    );

    // a key file with two keys
    let key = std::fs::read_to_string(&f.good.key).unwrap();
    let other = KeyPair::generate().unwrap().serialize_pem();
    let two = write(&f.dir, "two-keys.pem", format!("{key}{other}"));
    let e = err_of(store::load(&[CertSpec::new(&f.good.cert, &two)]));
    assert!(
        e.contains("two-keys.pem: holds 2 private keys; expected exactly one"),
        "{e}"
    );

    // an encrypted key
    let enc = write(
        &f.dir,
        "enc.pem",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    let e = err_of(store::load(&[CertSpec::new(&f.good.cert, &enc)]));
    assert!(
        e.contains("enc.pem: encrypted private keys are not supported"),
        "{e}"
    );

    // a key block that is no key rustls supports
    let junk_key = write(
        &f.dir,
        "junk-key.pem",
        "-----BEGIN PRIVATE KEY-----\naGVsbG8gd29ybGQ=\n-----END PRIVATE KEY-----\n",
    );
    let e = err_of(store::load(&[CertSpec::new(&f.good.cert, &junk_key)]));
    assert!(e.contains("junk-key.pem: unsupported private key"), "{e}");
}

#[test]
fn load_key_of_another_certificate() {
    let f = fixture();
    let other = f.ca.issue(&f.dir, "other", &["other.test"], None);
    let e = err_of(store::load(&[CertSpec::new(&f.good.cert, &other.key)]));
    assert_eq!(
        e,
        format!(
            "{}: private key does not match the certificate in {}",
            other.key.display(),
            f.good.cert.display()
        )
    );
    // never key material in the message
    let key_pem = std::fs::read_to_string(&other.key).unwrap();
    let body_line = key_pem.lines().nth(1).unwrap();
    assert!(!e.contains(body_line));
}

#[test]
fn load_expired_and_not_yet_valid() {
    let f = fixture();
    let expired = f.ca.issue(
        &f.dir,
        "expired",
        &["old.test"],
        Some((
            rcgen::date_time_ymd(2020, 1, 1),
            rcgen::date_time_ymd(2025, 1, 1),
        )),
    );
    let e = err_of(store::load(&[f.good.clone(), expired.clone()]));
    assert!(
        e.ends_with("expired.pem: certificate expired on 2025-01-01 00:00:00 UTC"),
        "{e}"
    );

    let future = f.ca.issue(
        &f.dir,
        "future",
        &["new.test"],
        Some((
            rcgen::date_time_ymd(2100, 1, 1),
            rcgen::date_time_ymd(2101, 1, 1),
        )),
    );
    let e = err_of(store::load(&[future]));
    assert!(
        e.ends_with("future.pem: certificate is not valid before 2100-01-01 00:00:00 UTC"),
        "{e}"
    );
}

#[test]
fn load_certificate_without_names() {
    let f = fixture();
    let spec = f.ca.issue(&f.dir, "nonames", &[], None);
    let e = err_of(store::load(&[spec]));
    assert!(
        e.contains("nonames.pem: certificate has no DNS name or IP address"),
        "{e}"
    );
}

#[test]
fn load_combined_cert_and_key_file() {
    let f = fixture();
    let both = format!(
        "{}{}",
        std::fs::read_to_string(&f.good.cert).unwrap(),
        std::fs::read_to_string(&f.good.key).unwrap()
    );
    let p = write(&f.dir, "combined.pem", both);
    let set = store::load(&[CertSpec::new(&p, &p)]).unwrap();
    assert_eq!(set.names(), names(&["good.test"]));
}

#[test]
fn load_accepts_p384_and_ed25519_keys() {
    // ECDSA P-384 and Ed25519 keys from rcgen (PKCS#8) load and match.
    let f = fixture();
    for (stem, alg) in [
        ("p384", &rcgen::PKCS_ECDSA_P384_SHA384),
        ("ed25519", &rcgen::PKCS_ED25519),
    ] {
        let key = KeyPair::generate_for(alg).unwrap();
        let params = CertificateParams::new(names(&[&format!("{stem}.test")])).unwrap();
        let cert = params.signed_by(&key, &f.ca.issuer).unwrap();
        let spec = CertSpec::new(
            write(&f.dir, &format!("{stem}.pem"), cert.pem()),
            write(&f.dir, &format!("{stem}-key.pem"), key.serialize_pem()),
        );
        store::load(&[spec]).unwrap_or_else(|e| panic!("{stem}: {e}"));
    }
}

#[test]
fn error_path_accessor() {
    let e = TlsError::KeyMismatch {
        cert: "c.pem".into(),
        key: "k.pem".into(),
    };
    assert_eq!(e.path(), Some(Path::new("k.pem")));
    assert_eq!(TlsError::Config("x".into()).path(), None);
}

// ---------------------------------------------------------------------------------------
// selection

fn sni_fixture() -> (Fixture, Vec<CertSpec>) {
    let f = fixture();
    let default =
        f.ca.issue(&f.dir, "default", &["default.test", "192.0.2.10"], None);
    let exact = f.ca.issue(&f.dir, "exact", &["www.example.com"], None);
    let wild =
        f.ca.issue(&f.dir, "wild", &["*.example.com", "api.other.test"], None);
    // lists www.example.com again: the earlier certificate keeps it
    let dup =
        f.ca.issue(&f.dir, "dup", &["www.example.com", "dup.test"], None);
    (f, vec![default, exact, wild, dup])
}

#[test]
fn select_exact_then_wildcard_then_default() {
    let (_f, specs) = sni_fixture();
    let set = store::load(&specs).unwrap();
    let pick = |name: Option<&str>| set.select(name).unwrap().names()[0].clone();
    assert_eq!(pick(Some("www.example.com")), "www.example.com");
    assert_eq!(pick(Some("WWW.Example.COM")), "www.example.com");
    assert_eq!(pick(Some("www.example.com.")), "www.example.com");
    assert_eq!(pick(Some("a.example.com")), "*.example.com");
    assert_eq!(pick(Some("API.other.test")), "*.example.com");
    assert_eq!(pick(Some("dup.test")), "www.example.com"); // 4th cert: first name is www
                                                           // wildcard covers one label only
    assert_eq!(pick(Some("a.b.example.com")), "default.test");
    assert_eq!(pick(Some("example.com")), "default.test");
    assert_eq!(pick(Some("unknown.test")), "default.test");
    assert_eq!(pick(Some("")), "default.test");
    assert_eq!(pick(Some(".")), "default.test");
    assert_eq!(pick(None), "default.test");
    assert_eq!(
        set.names(),
        names(&[
            "default.test",
            "192.0.2.10",
            "www.example.com",
            "*.example.com",
            "api.other.test",
            "www.example.com",
            "dup.test"
        ])
    );
    assert_eq!(set.entries().len(), 4);
    assert!(set.entries()[0].not_after() > std::time::SystemTime::now());
    assert_eq!(set.entries()[1].spec(), &specs[1]);
}

#[tokio::test]
async fn handshake_picks_certificate_by_sni() {
    let (_f, specs) = sni_fixture();
    let resolver = Arc::new(SniResolver::load(&specs).unwrap());
    let h2 = &[b"h2".as_slice(), b"http/1.1".as_slice()];
    for (sni, expect) in [
        (Some("www.example.com"), "www.example.com"),
        (Some("a.example.com"), "*.example.com"),
        (Some("a.b.example.com"), "default.test"),
        (Some("nothing.test"), "default.test"),
        (None, "default.test"),
    ] {
        let h = handshake(&resolver, sni, Trust::Any, h2).await.unwrap();
        assert_eq!(h.san[0], expect, "sni {sni:?}");
    }
}

#[tokio::test]
async fn handshake_verifies_with_the_dev_ca_and_negotiates_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let p = generate_dev(
        dir.path(),
        &names(&["localhost", "127.0.0.1", "edge.test", "*.edge.test"]),
    )
    .unwrap();
    let ca_pem = std::fs::read(&p.ca_cert).unwrap();
    let ca = vec![
        <rustls_pki_types::CertificateDer as rustls_pki_types::pem::PemObject>::pem_slice_iter(
            &ca_pem[..],
        )
        .next()
        .unwrap()
        .unwrap(),
    ];
    let resolver = Arc::new(SniResolver::load(&[p.spec()]).unwrap());
    let both: &[&[u8]] = &[b"h2", b"http/1.1"];

    for name in ["localhost", "edge.test", "a.edge.test", "127.0.0.1"] {
        // 127.0.0.1: rustls sends no SNI for an IP; the default cert carries the IP SAN
        let h = handshake(&resolver, Some(name), Trust::Roots(&ca), both)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(h.alpn.as_deref(), Some(&b"h2"[..]), "{name}");
    }
    // a name the certificate lacks fails verification
    let e = handshake(&resolver, Some("other.test"), Trust::Roots(&ca), both)
        .await
        .unwrap_err();
    assert!(
        e.contains("certificate") || e.contains("NotValidForName"),
        "{e}"
    );

    // ALPN: http/1.1-only clients get http/1.1, clients without ALPN get none
    let h = handshake(
        &resolver,
        Some("edge.test"),
        Trust::Roots(&ca),
        &[b"http/1.1"],
    )
    .await
    .unwrap();
    assert_eq!(h.alpn.as_deref(), Some(&b"http/1.1"[..]));
    let h = handshake(&resolver, Some("edge.test"), Trust::Roots(&ca), &[])
        .await
        .unwrap();
    assert_eq!(h.alpn, None);
}

#[tokio::test]
async fn reload_swaps_certificates_and_a_bad_reload_keeps_the_old() {
    let f = fixture();
    let spec = f.ca.issue(&f.dir, "live", &["one.test"], None);
    let resolver = Arc::new(SniResolver::load(std::slice::from_ref(&spec)).unwrap());
    let alpn: &[&[u8]] = &[b"h2"];
    assert_eq!(
        handshake(&resolver, Some("one.test"), Trust::Any, alpn)
            .await
            .unwrap()
            .san,
        names(&["one.test"])
    );

    // new content at the same paths
    f.ca.issue(&f.dir, "live", &["two.test"], None);
    resolver.reload(std::slice::from_ref(&spec)).unwrap();
    assert_eq!(resolver.names(), names(&["two.test"]));
    assert_eq!(
        handshake(&resolver, Some("one.test"), Trust::Any, alpn)
            .await
            .unwrap()
            .san,
        names(&["two.test"])
    );

    // a broken cert file: error, old set still served
    std::fs::write(&spec.cert, "garbage").unwrap();
    let e = resolver
        .reload(std::slice::from_ref(&spec))
        .unwrap_err()
        .to_string();
    assert!(e.contains("live.pem: not a PEM file"), "{e}");
    assert_eq!(resolver.names(), names(&["two.test"]));
    assert_eq!(
        handshake(&resolver, Some("two.test"), Trust::Any, alpn)
            .await
            .unwrap()
            .san,
        names(&["two.test"])
    );

    // a different list of specs can be swapped in too
    let other = f.ca.issue(&f.dir, "other", &["three.test"], None);
    resolver.reload(&[other, f.good.clone()]).unwrap();
    assert_eq!(resolver.names(), names(&["three.test", "good.test"]));
    assert!(format!("{resolver:?}").contains("three.test"));
}

// ---------------------------------------------------------------------------------------
// watch

#[test]
fn fingerprint_changes_with_the_files() {
    let f = fixture();
    let specs = vec![f.good.clone()];
    let a = fingerprint(&specs);
    assert_eq!(a, fingerprint(&specs));
    f.ca.issue(&f.dir, "good", &["good.test", "more.test"], None);
    let b = fingerprint(&specs);
    assert_ne!(a, b);
    std::fs::remove_file(&f.good.key).unwrap();
    let c = fingerprint(&specs);
    assert_ne!(b, c);
    assert_eq!(c, fingerprint(&specs));
    assert_ne!(fingerprint(&[]), c);
}

#[test]
fn poller_reloads_on_change_and_reports_a_bad_version_once() {
    let f = fixture();
    let specs = vec![f.good.clone()];
    let resolver = SniResolver::load(&specs).unwrap();
    let mut poller = Poller::new(specs.clone());
    assert_eq!(poller.specs(), &specs[..]);
    assert!(matches!(poller.poll(&resolver), PollOutcome::Unchanged));

    f.ca.issue(&f.dir, "good", &["new.test"], None);
    assert!(matches!(poller.poll(&resolver), PollOutcome::Reloaded));
    assert_eq!(resolver.names(), names(&["new.test"]));
    assert!(matches!(poller.poll(&resolver), PollOutcome::Unchanged));

    // the key of another cert: fails, old kept, not retried until the files change
    let other = f.ca.issue(&f.dir, "other", &["other.test"], None);
    std::fs::copy(&other.key, &f.good.key).unwrap();
    match poller.poll(&resolver) {
        PollOutcome::Failed(e) => assert!(e.to_string().contains("does not match"), "{e}"),
        o => panic!("{o:?}"),
    }
    assert_eq!(resolver.names(), names(&["new.test"]));
    assert!(matches!(poller.poll(&resolver), PollOutcome::Unchanged));

    f.ca.issue(&f.dir, "good", &["fixed.test"], None);
    assert!(matches!(poller.poll(&resolver), PollOutcome::Reloaded));
    assert_eq!(resolver.names(), names(&["fixed.test"]));
}

// ---------------------------------------------------------------------------------------
// origin CA bundle

#[test]
fn origin_ca_bundle() {
    let f = fixture();
    let ca2 = TestCa::new();
    // Two CAs with text around them, as in system bundles.
    let (ca1_pem, ca2_pem) = (&f.ca.pem, &ca2.pem);
    let bundle = write(
        &f.dir,
        "bundle.pem",
        format!("# first\n{ca1_pem}\n# second\n{ca2_pem}"),
    );
    let certs = origin::load_ca_file(&bundle).unwrap();
    assert_eq!(certs, vec![f.ca.der.clone(), ca2.der.clone()]);
    assert_eq!(origin::load_root_store(&bundle).unwrap().len(), 2);

    let e = err_of(origin::load_ca_file(&f.dir.join("missing-ca.pem")));
    assert!(e.contains("missing-ca.pem: cannot read"), "{e}");
    let e = err_of(origin::load_ca_file(&write(&f.dir, "e.pem", "")));
    assert!(e.ends_with("e.pem: file is empty"), "{e}");
    let e = err_of(origin::load_ca_file(&f.good.key));
    assert!(e.contains("good-key.pem: no CA certificate found"), "{e}");
    let e = err_of(origin::load_ca_file(&write(&f.dir, "g.pem", "garbage")));
    assert!(e.contains("g.pem: not a PEM file"), "{e}");
    let bad = write(
        &f.dir,
        "bad-ca.pem",
        format!(
            "{ca1_pem}-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n"
        ),
    );
    let e = err_of(origin::load_ca_file(&bad));
    assert!(
        e.contains("bad-ca.pem: certificate #2 is not valid X.509"),
        "{e}"
    );
}
