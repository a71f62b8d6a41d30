//! The edge's proof on the control plane's loopback port.
//!
//! The control plane listens on a loopback port that any local process can reach, and it
//! trusts `X-Edge-Client-IP` (login limits) and `X-Edge-Country` (geo restrictions). So every
//! request must carry [`EDGE_SECRET_HEADER`] with this process's secret, which the proxy adds to
//! each request it forwards to `/api/v1`; anything else gets 403 before any handler runs, and
//! its `X-Edge-*` headers are never read.
//!
//! The secret is a random HMAC-SHA256 key made at start from `ring::rand`, never written
//! anywhere; the header carries its tag over a fixed label, and the check is
//! `ring::hmac::verify` (a constant-time comparison). A new process has a new secret.

use axum::http::HeaderValue;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;
use ring::rand::SecureRandom;

/// The header the edge sends the secret in.
pub const EDGE_SECRET_HEADER: &str = "x-edge-secret";

/// What the tag signs: fixes the meaning of the key to this one use.
const LABEL: &[u8] = b"edge control plane loopback v1";

/// A per-process secret shared by the proxy (sends it) and the control plane (checks it).
/// `Debug` does not print it.
#[derive(Clone)]
pub struct EdgeSecret {
    key: hmac::Key,
    header: HeaderValue,
}

impl std::fmt::Debug for EdgeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EdgeSecret(..)")
    }
}

impl EdgeSecret {
    /// A new random secret.
    pub fn generate(rng: &dyn SecureRandom) -> Result<EdgeSecret, String> {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, rng)
            .map_err(|_| "random source failed".to_string())?;
        let tag = hmac::sign(&key, LABEL);
        let mut header = HeaderValue::from_str(&URL_SAFE_NO_PAD.encode(tag.as_ref()))
            .map_err(|e| format!("edge secret header: {e}"))?;
        header.set_sensitive(true);
        Ok(EdgeSecret { key, header })
    }

    /// The value of [`EDGE_SECRET_HEADER`] to send (marked sensitive: kept out of HPACK tables
    /// and debug output).
    pub fn header_value(&self) -> HeaderValue {
        self.header.clone()
    }

    /// Whether `presented` is this secret (constant time in its content).
    pub fn verify(&self, presented: Option<&HeaderValue>) -> bool {
        let Some(raw) = presented.and_then(|v| URL_SAFE_NO_PAD.decode(v.as_bytes()).ok()) else {
            return false;
        };
        hmac::verify(&self.key, LABEL, &raw).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    #[test]
    fn only_the_own_secret_verifies() {
        let rng = SystemRandom::new();
        let a = EdgeSecret::generate(&rng).unwrap();
        let b = EdgeSecret::generate(&rng).unwrap();
        let va = a.header_value();
        assert_eq!(va.len(), 43, "256-bit tag, base64url");
        assert!(va.is_sensitive());
        assert!(a.verify(Some(&va)));
        assert!(a.clone().verify(Some(&va)), "clones share the secret");
        assert!(!b.verify(Some(&va)), "each process has its own");
        assert!(!a.verify(None));
        for bad in ["", "x", "not base64!", &va.to_str().unwrap()[..42]] {
            assert!(
                !a.verify(Some(&HeaderValue::from_str(bad).unwrap())),
                "{bad:?}"
            );
        }
        let mut flipped = va.to_str().unwrap().to_string();
        let first = if flipped.starts_with('A') { "B" } else { "A" };
        flipped.replace_range(..1, first);
        assert!(!a.verify(Some(&HeaderValue::from_str(&flipped).unwrap())));
        assert_eq!(format!("{a:?}"), "EdgeSecret(..)");
    }
}
