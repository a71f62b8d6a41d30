//! CloudFront signatures made the way a platform makes them, independently of the edge: an
//! RSA key pair from `openssl genrsa`, policies written out as JSON here, and signatures from
//! `openssl dgst -sha1 -sign`, encoded in CloudFront's URL-safe base64.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;

/// An RSA key pair under a key pair id, as configured in CloudFront.
pub struct CfSigner {
    pub id: String,
    dir: tempfile::TempDir,
}

fn openssl(args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl (bash .ci/deps test installs it)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.unwrap_or(b"")).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// CloudFront's base64: standard, then `+`→`-`, `=`→`_`, `/`→`~`.
pub fn cf_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .replace('+', "-")
        .replace('=', "_")
        .replace('/', "~")
}

/// A custom policy's JSON, as CloudFront's documentation writes it.
pub fn custom_policy(resource: &str, less: u64, greater: Option<u64>, ip: Option<&str>) -> String {
    let mut condition = format!(r#""DateLessThan":{{"AWS:EpochTime":{less}}}"#);
    if let Some(g) = greater {
        condition += &format!(r#","DateGreaterThan":{{"AWS:EpochTime":{g}}}"#);
    }
    if let Some(ip) = ip {
        condition += &format!(r#","IpAddress":{{"AWS:SourceIp":"{ip}"}}"#);
    }
    format!(r#"{{"Statement":[{{"Resource":"{resource}","Condition":{{{condition}}}}}]}}"#)
}

/// The canned policy CloudFront signs for `url` until `expires`.
pub fn canned_policy(url: &str, expires: u64) -> String {
    format!(
        r#"{{"Statement":[{{"Resource":"{url}","Condition":{{"DateLessThan":{{"AWS:EpochTime":{expires}}}}}}}]}}"#
    )
}

impl CfSigner {
    /// A new 2048-bit key pair.
    pub fn new(id: &str) -> CfSigner {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("private.pem");
        let public = dir.path().join("public.pem");
        openssl(&["genrsa", "-out", private.to_str().unwrap(), "2048"], None);
        openssl(
            &[
                "rsa",
                "-in",
                private.to_str().unwrap(),
                "-pubout",
                "-out",
                public.to_str().unwrap(),
            ],
            None,
        );
        CfSigner {
            id: id.to_string(),
            dir,
        }
    }

    pub fn public_key_path(&self) -> PathBuf {
        self.dir.path().join("public.pem")
    }

    /// `[tokens.cloudfront]` naming this key (and `others`).
    pub fn config(&self, others: &[&CfSigner]) -> String {
        let keys: Vec<String> = std::iter::once(self)
            .chain(others.iter().copied())
            .map(|s| {
                format!(
                    "{{ id = \"{}\", public_key_file = \"{}\" }}",
                    s.id,
                    s.public_key_path().display()
                )
            })
            .collect();
        format!("[tokens.cloudfront]\nkeys = [{}]\n", keys.join(", "))
    }

    /// RSA-SHA1 PKCS#1 v1.5 over `policy`, in CloudFront's base64.
    pub fn sign(&self, policy: &str) -> String {
        let private = self.dir.path().join("private.pem");
        cf_b64(&openssl(
            &["dgst", "-sha1", "-sign", private.to_str().unwrap()],
            Some(policy.as_bytes()),
        ))
    }

    /// `Expires=…&Signature=…&Key-Pair-Id=…` for `url` (the URL without these parameters).
    pub fn canned_query(&self, url: &str, expires: u64) -> String {
        format!(
            "Expires={expires}&Signature={}&Key-Pair-Id={}",
            self.sign(&canned_policy(url, expires)),
            self.id
        )
    }

    /// `Policy=…&Signature=…&Key-Pair-Id=…` for a custom policy.
    pub fn custom_query(&self, policy: &str) -> String {
        format!(
            "Policy={}&Signature={}&Key-Pair-Id={}",
            cf_b64(policy.as_bytes()),
            self.sign(policy),
            self.id
        )
    }

    /// A `Cookie` value with the signed cookies of a custom policy.
    pub fn custom_cookies(&self, policy: &str) -> String {
        format!(
            "CloudFront-Policy={}; CloudFront-Signature={}; CloudFront-Key-Pair-Id={}",
            cf_b64(policy.as_bytes()),
            self.sign(policy),
            self.id
        )
    }

    /// A `Cookie` value with the signed cookies of a canned policy for `url`.
    pub fn canned_cookies(&self, url: &str, expires: u64) -> String {
        format!(
            "CloudFront-Expires={expires}; CloudFront-Signature={}; CloudFront-Key-Pair-Id={}",
            self.sign(&canned_policy(url, expires)),
            self.id
        )
    }
}
