//! The fill memory budget (`[cache] fill_memory`): bytes that fills in flight may hold.
//!
//! A fill keeps its body in memory until it is stored whole ([`super::store`]), so without a
//! bound the edge's memory grows with concurrency × object size. A fill reserves its
//! `Content-Length` when it starts (a fill without one reserves what arrives, as it arrives)
//! and gives it back when it ends. A cacheable miss whose length does not fit next to the
//! fills in flight is not filled: it streams from the origin to its client uncached
//! ([`FillBudget::fits`], asked by the proxy's `response_cache_filter`). The check and the
//! reservation are separate steps, so concurrent misses on different worker threads can pass
//! the check together: the budget can be exceeded by about one object per worker thread.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes reserved by fills in flight, against a limit.
#[derive(Debug)]
pub struct FillBudget {
    limit: u64,
    reserved: AtomicU64,
}

impl FillBudget {
    pub fn new(limit: u64) -> FillBudget {
        FillBudget {
            limit,
            reserved: AtomicU64::new(0),
        }
    }

    /// Whether a fill of `len` bytes (`None`: not known) fits next to the fills in flight.
    /// One of unknown length fits while anything is left.
    pub fn fits(&self, len: Option<u64>) -> bool {
        fits(self.limit, self.reserved(), len)
    }

    /// Reserve `n` bytes for a fill (always granted: [`Self::fits`] decided before).
    pub fn take(&self, n: u64) {
        self.reserved.fetch_add(n, Ordering::Relaxed);
    }

    /// Give back `n` bytes a fill reserved.
    pub fn give_back(&self, n: u64) {
        // Never below zero, whatever the order of concurrent calls.
        let _ = self
            .reserved
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
                Some(r.saturating_sub(n))
            });
    }

    /// Bytes reserved now.
    pub fn reserved(&self) -> u64 {
        self.reserved.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }
}

/// Whether `len` more bytes fit under `limit` with `reserved` taken.
fn fits(limit: u64, reserved: u64, len: Option<u64>) -> bool {
    match len {
        Some(n) => reserved.checked_add(n).is_some_and(|total| total <= limit),
        None => reserved < limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_length_fits_up_to_the_limit_exactly() {
        assert!(fits(10, 0, Some(10)));
        assert!(fits(10, 4, Some(6)));
        assert!(!fits(10, 4, Some(7)));
        assert!(!fits(10, 0, Some(11)));
        assert!(fits(10, 10, Some(0)));
        assert!(!fits(u64::MAX, u64::MAX, Some(1)), "no overflow");
    }

    #[test]
    fn an_unknown_length_fits_while_anything_is_left() {
        assert!(fits(10, 9, None));
        assert!(!fits(10, 10, None));
        assert!(!fits(10, 12, None));
    }

    #[test]
    fn reservations_come_back_and_never_go_below_zero() {
        let b = FillBudget::new(100);
        b.take(60);
        assert!(!b.fits(Some(41)));
        assert!(b.fits(Some(40)));
        b.take(30);
        b.give_back(60);
        assert_eq!(b.reserved(), 30);
        b.give_back(50);
        assert_eq!(b.reserved(), 0);
        assert!(b.fits(Some(100)));
    }
}
