//! Request and span ids: a random prefix per process and a counter, so an id is unique
//! without a random-number call per request ([`crate::proxy::request_id`] decides when one
//! is made).

use std::sync::atomic::{AtomicU64, Ordering};

/// Makes ids: a random prefix for this process and a counter.
pub struct IdSource {
    prefix: u64,
    next: AtomicU64,
}

impl Default for IdSource {
    fn default() -> Self {
        IdSource::new()
    }
}

impl IdSource {
    pub fn new() -> IdSource {
        use ring::rand::SecureRandom;
        let mut seed = [0u8; 16];
        // Without the system's randomness (never seen), the clock and pid still differ
        // between processes.
        if ring::rand::SystemRandom::new().fill(&mut seed).is_err() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            seed = (now ^ u128::from(std::process::id()) << 64).to_le_bytes();
        }
        let (a, b) = seed.split_at(8);
        IdSource {
            prefix: u64::from_le_bytes(a.try_into().unwrap_or_default()),
            next: AtomicU64::new(u64::from_le_bytes(b.try_into().unwrap_or_default())),
        }
    }

    fn bump(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// A new request id: 32 lower-case hex digits.
    pub fn request_id(&self) -> String {
        format!("{:016x}{:016x}", self.prefix, self.bump())
    }

    /// A new span id: 16 hex digits, never all zero (§3.2.2.4).
    pub fn span_id(&self) -> String {
        let x = mix(self.prefix ^ self.bump());
        format!("{:016x}", x.max(1))
    }
}

/// SplitMix64's finaliser: consecutive counters give unrelated-looking span ids.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
