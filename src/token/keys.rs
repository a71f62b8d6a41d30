//! Token keys: the [`Keyring`] (rotation) and loading 256-bit secrets from files or env values.
//!
//! Nothing here ever formats key material: `Debug` prints key ids only and errors name the
//! key id or file, never the bytes.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::hmac;

/// Length of a token key: 256 bits.
pub const KEY_LEN: usize = 32;

/// Largest key file read (a key in any accepted encoding is far smaller).
const MAX_KEY_FILE: u64 = 4096;

/// Whether `kid` is a valid key id: 1–32 characters of `[A-Za-z0-9_-]`.
pub fn is_valid_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= 32
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Errors building a keyring or loading a key. Never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The keyring would be empty.
    #[error("no token keys configured")]
    Empty,
    /// A key id is not 1–32 characters of `[A-Za-z0-9_-]`.
    #[error("invalid token key id {0:?}: must be 1-32 characters of [A-Za-z0-9_-]")]
    InvalidId(String),
    /// A key id appears twice.
    #[error("duplicate token key id {0:?}")]
    DuplicateId(String),
    /// The `current` id is not one of the keys.
    #[error("current token key id {0:?} is not among the configured keys")]
    UnknownCurrent(String),
    /// A secret is not 32 bytes.
    #[error(
        "token key {id:?}: secret must be exactly {KEY_LEN} bytes (256 bits), got {len} bytes"
    )]
    BadLength {
        /// The key id.
        id: String,
        /// The secret's length in bytes.
        len: usize,
    },
    /// Key material in an unrecognised encoding (no file involved, e.g. an env value).
    #[error("token key: {0}")]
    Format(&'static str),
    /// A key file could not be read or decoded.
    #[error("token key file {}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why (an I/O error or an encoding problem; never the contents).
        reason: String,
    },
}

/// A 256-bit secret. `Debug` is redacted; the bytes are zeroed (best effort) on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySecret([u8; KEY_LEN]);

impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySecret(<redacted>)")
    }
}

impl Drop for KeySecret {
    fn drop(&mut self) {
        self.0.fill(0);
    }
}

impl AsRef<[u8]> for KeySecret {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

const FORMAT_HELP: &str =
    "expected 32 raw bytes, 64 hex characters, or base64 (standard or URL-safe) of 32 bytes";

impl KeySecret {
    /// Exactly 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<KeySecret> {
        let arr: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(KeySecret(arr))
    }

    /// Decodes key material: exactly 32 raw bytes (taken as they are), otherwise, after trimming
    /// ASCII whitespace, 64 hex characters or base64 (standard or URL-safe, padded or not) of
    /// 32 bytes. Usable for env values too.
    pub fn parse(material: &[u8]) -> Result<KeySecret, KeyError> {
        if let Some(k) = KeySecret::from_bytes(material) {
            return Ok(k);
        }
        let t = material.trim_ascii();
        if t.len() == 2 * KEY_LEN && t.iter().all(u8::is_ascii_hexdigit) {
            let mut out = [0u8; KEY_LEN];
            for (o, pair) in out.iter_mut().zip(t.chunks_exact(2)) {
                match (
                    hex_val(pair.first().copied()),
                    hex_val(pair.get(1).copied()),
                ) {
                    (Some(h), Some(l)) => *o = (h << 4) | l,
                    _ => return Err(KeyError::Format(FORMAT_HELP)),
                }
            }
            return Ok(KeySecret(out));
        }
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            if let Ok(bytes) = engine.decode(t) {
                return match KeySecret::from_bytes(&bytes) {
                    Some(k) => Ok(k),
                    None => Err(KeyError::Format(
                        "base64 key material does not decode to 32 bytes",
                    )),
                };
            }
        }
        Err(KeyError::Format(FORMAT_HELP))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

pub(crate) fn hex_val(c: Option<u8>) -> Option<u8> {
    match c? {
        c @ b'0'..=b'9' => Some(c - b'0'),
        c @ b'a'..=b'f' => Some(c - b'a' + 10),
        c @ b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Loads a 256-bit key from a file (see [`KeySecret::parse`] for the accepted encodings).
/// Errors name the file, never its contents.
pub fn load_key_file(path: &Path) -> Result<KeySecret, KeyError> {
    let file_err = |reason: String| KeyError::File {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| file_err(e.to_string()))?;
    let mut buf = Vec::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| file_err(e.to_string()))?;
    if buf.len() as u64 > MAX_KEY_FILE {
        buf.fill(0);
        return Err(file_err(format!("larger than {MAX_KEY_FILE} bytes")));
    }
    let res = KeySecret::parse(&buf).map_err(|e| match e {
        KeyError::Format(m) => file_err(m.to_string()),
        other => file_err(other.to_string()),
    });
    buf.fill(0);
    res
}

struct Entry {
    id: String,
    key: hmac::Key,
}

/// Token keys by id plus the id of the `current` signing key. Verifiers accept every listed key
/// (rotation: add the new key, make it current, drop the old one once its tokens expired).
///
/// `Debug` prints the ids only.
pub struct Keyring {
    entries: Vec<Entry>,
    current: usize,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current_id())
            .field("ids", &self.ids().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    /// Builds a keyring from `(id, secret)` pairs; `current` names the signing key.
    /// Ids must be valid and unique, secrets exactly 32 bytes, `current` one of the ids.
    pub fn new<I, S, K>(keys: I, current: &str) -> Result<Keyring, KeyError>
    where
        I: IntoIterator<Item = (S, K)>,
        S: Into<String>,
        K: AsRef<[u8]>,
    {
        let mut entries: Vec<Entry> = Vec::new();
        for (id, secret) in keys {
            let id: String = id.into();
            if !is_valid_kid(&id) {
                return Err(KeyError::InvalidId(id));
            }
            let secret = secret.as_ref();
            if secret.len() != KEY_LEN {
                return Err(KeyError::BadLength {
                    id,
                    len: secret.len(),
                });
            }
            if entries.iter().any(|e| e.id == id) {
                return Err(KeyError::DuplicateId(id));
            }
            entries.push(Entry {
                key: hmac::Key::new(hmac::HMAC_SHA256, secret),
                id,
            });
        }
        if entries.is_empty() {
            return Err(KeyError::Empty);
        }
        let current = entries
            .iter()
            .position(|e| e.id == current)
            .ok_or_else(|| KeyError::UnknownCurrent(current.to_string()))?;
        Ok(Keyring { entries, current })
    }

    /// A keyring with one key, which is current.
    pub fn single(id: &str, secret: &[u8]) -> Result<Keyring, KeyError> {
        Keyring::new([(id, secret)], id)
    }

    /// The id of the signing key.
    pub fn current_id(&self) -> &str {
        self.entries
            .get(self.current)
            .map(|e| e.id.as_str())
            .unwrap_or("")
    }

    /// All key ids, in configuration order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.id.as_str())
    }

    /// Whether a key with this id is listed.
    pub fn contains(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    pub(crate) fn get(&self, id: &str) -> Option<&hmac::Key> {
        self.entries.iter().find(|e| e.id == id).map(|e| &e.key)
    }
}
