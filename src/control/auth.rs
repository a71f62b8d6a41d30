//! Credentials: argon2id password hashes (argon2's verification compares in constant time),
//! random session tokens (only their SHA-256 is stored and looked up), the admin token (checked
//! with `ring::hmac::verify`) and the clock. The attempt limits are in [`super::limits`].

use std::sync::atomic::{AtomicI64, Ordering};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};

/// Argon2id cost parameters for new password hashes. Existing hashes keep the parameters they
/// were made with (they are part of the stored PHC string), so the cost can be raised later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordHashing {
    /// Memory in KiB (`m`).
    pub memory_kib: u32,
    /// Passes (`t`).
    pub iterations: u32,
    /// Lanes (`p`).
    pub parallelism: u32,
}

impl Default for PasswordHashing {
    /// OWASP's argon2id recommendation: m = 19 MiB, t = 2, p = 1.
    fn default() -> Self {
        PasswordHashing {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl PasswordHashing {
    fn hasher(&self) -> Result<Argon2<'static>, String> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| format!("argon2 parameters: {e}"))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Checks the parameters (at startup).
    pub fn validate(&self) -> Result<(), String> {
        self.hasher().map(|_| ())
    }

    /// An argon2id PHC string for `password` with a fresh 128-bit salt. CPU- and memory-heavy:
    /// call on the blocking pool.
    pub fn hash(&self, password: &str, rng: &SystemRandom) -> Result<String, String> {
        let mut salt = [0u8; 16];
        rng.fill(&mut salt)
            .map_err(|_| "random source failed".to_string())?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| format!("salt: {e}"))?;
        let hash = self
            .hasher()?
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| format!("argon2: {e}"))?;
        Ok(hash.to_string())
    }
}

/// Whether `password` matches the PHC string `hash` (constant time in the hash comparison;
/// uses the parameters stored in `hash`). Call on the blocking pool.
pub fn verify_password(hash: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    if parsed.algorithm != argon2::Algorithm::Argon2id.ident() {
        return false;
    }
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// SHA-256 of a session token (what the store keeps).
pub fn token_hash(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// A new session token (256 random bits, base64url, 43 characters) and its hash.
pub fn new_session_token(rng: &SystemRandom) -> Result<(String, [u8; 32]), String> {
    let mut raw = [0u8; 32];
    rng.fill(&mut raw)
        .map_err(|_| "random source failed".to_string())?;
    let token = URL_SAFE_NO_PAD.encode(raw);
    let hash = token_hash(&token);
    Ok((token, hash))
}

/// The admin token as an HMAC-SHA256 tag under a per-process random key: a presented token is
/// checked with `ring::hmac::verify` (constant time in the tag), never compared with `==`.
/// `Debug` does not print it.
pub struct AdminToken {
    key: ring::hmac::Key,
    tag: ring::hmac::Tag,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl AdminToken {
    pub fn new(token: &str, rng: &dyn SecureRandom) -> Result<AdminToken, String> {
        let key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, rng)
            .map_err(|_| "random source failed".to_string())?;
        let tag = ring::hmac::sign(&key, token.as_bytes());
        Ok(AdminToken { key, tag })
    }

    /// Whether `presented` is the admin token.
    pub fn verify(&self, presented: &str) -> bool {
        ring::hmac::verify(&self.key, presented.as_bytes(), self.tag.as_ref()).is_ok()
    }
}

/// Wall clock in unix seconds with an adjustable offset (tests move time forward).
#[derive(Debug, Default)]
pub struct Clock {
    offset: AtomicI64,
}

impl Clock {
    pub fn now(&self) -> i64 {
        let sys = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        sys.saturating_add(self.offset.load(Ordering::Relaxed))
    }

    /// Moves the clock by `secs` (tests).
    pub fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHashing {
        PasswordHashing {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn hashes_are_argon2id_and_salted() {
        let rng = SystemRandom::new();
        let a = cheap().hash("correct horse", &rng).unwrap();
        let b = cheap().hash("correct horse", &rng).unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{a}");
        assert_ne!(a, b);
        assert!(verify_password(&a, "correct horse"));
        assert!(!verify_password(&a, "correct horsf"));
        assert!(!verify_password("not a hash", "x"));
        // Another algorithm's PHC string is refused.
        let i = a.replacen("$argon2id$", "$argon2i$", 1);
        assert!(!verify_password(&i, "correct horse"));
    }

    #[test]
    fn default_cost_is_owasp() {
        let rng = SystemRandom::new();
        let h = PasswordHashing::default().hash("0123456789", &rng).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password(&h, "0123456789"));
        assert!(PasswordHashing {
            memory_kib: 1,
            iterations: 1,
            parallelism: 1
        }
        .validate()
        .is_err());
    }

    #[test]
    fn session_tokens() {
        let rng = SystemRandom::new();
        let (t1, h1) = new_session_token(&rng).unwrap();
        let (t2, _) = new_session_token(&rng).unwrap();
        assert_eq!(t1.len(), 43);
        assert_ne!(t1, t2);
        assert_eq!(token_hash(&t1), h1);
    }

    #[test]
    fn admin_token_accepts_only_itself() {
        let rng = SystemRandom::new();
        let admin = AdminToken::new("admin-token-0123456789", &rng).unwrap();
        assert!(admin.verify("admin-token-0123456789"));
        assert!(!admin.verify("admin-token-012345678"));
        assert!(!admin.verify("admin-token-0123456789x"));
        assert!(!admin.verify(""));
        assert_eq!(format!("{admin:?}"), "AdminToken(..)");
    }

    #[test]
    fn clock_moves() {
        let c = Clock::default();
        let a = c.now();
        c.advance(1000);
        assert!(c.now() >= a + 1000);
    }
}
