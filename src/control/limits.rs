//! Attempt limits of the control plane, kept in memory (they reset when the process restarts).
//!
//! Every argon2 computation costs tens of milliseconds of CPU and `memory_kib` of memory, so
//! limits are *reserved before the hash runs*: a login or registration either gets a place
//! under every limit at once (atomically, under one lock) or is refused with 429 straight
//! away. N parallel wrong passwords for one account therefore cost at most the limit in argon2
//! work; the rest are refused before any hashing.
//!
//! Login keys, and why each exists:
//! - **(account, address)**: `per_account` failures per `window` lock *that address* out of
//!   *that account*. Failures from another address never lock the owner out: the owner logging
//!   in from their own address with the right password always reaches the password check.
//! - **address**: `per_ip` failures per `window` over all accounts lock that address out of
//!   every account (credential stuffing from one place).
//! - **account in flight**: at most `per_account` password checks of one account run at once,
//!   whatever their addresses. More are refused with `Retry-After: 1`: a slow-down of parallel
//!   guessing from many addresses, never a lockout (a check lasts milliseconds).
//!
//! A distributed attack (many addresses against one account) is bounded by `per_account` per
//! address per window and by the in-flight bound; it cannot lock the owner out.
//!
//! Registrations: every registration that reaches the hash counts against its address
//! (`RegisterLimits::per_ip` per `window`), whether it then succeeds or not (the cost is the
//! hash, not the row).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// Failed-login limits (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Failures per account from one client address per window before that address gets 429
    /// for that account; also the number of checks of one account that may run at once.
    pub per_account: u32,
    /// Failures per client address (over all accounts) per window before it gets 429.
    pub per_ip: u32,
    pub window: Duration,
}

impl Default for LoginLimits {
    /// 5 failures per account and address, 20 per address, in 15 minutes.
    fn default() -> Self {
        LoginLimits {
            per_account: 5,
            per_ip: 20,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// Registration limits: attempts per client address per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisterLimits {
    pub per_ip: u32,
    pub window: Duration,
}

impl Default for RegisterLimits {
    /// 10 registrations per address per hour.
    fn default() -> Self {
        RegisterLimits {
            per_ip: 10,
            window: Duration::from_secs(3600),
        }
    }
}

/// Why an attempt was refused (the metric label) and when to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// `login_account`, `login_address`, `login_busy` or `register`.
    pub reason: &'static str,
    /// Seconds, at least 1.
    pub retry_after: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// Login failures of an account from one address.
    AccountFrom(String, String),
    /// Login failures from an address.
    Address(String),
    /// Password checks of an account in flight (no events).
    Checking(String),
    /// Registrations from an address.
    Register(String),
}

impl Key {
    fn reason(&self) -> &'static str {
        match self {
            Key::AccountFrom(..) => "login_account",
            Key::Address(_) => "login_address",
            Key::Checking(_) => "login_busy",
            Key::Register(_) => "register",
        }
    }
}

/// Recent events (unix seconds, oldest first, at most `limit` kept) and reservations in flight.
#[derive(Debug, Default)]
struct Bucket {
    events: VecDeque<i64>,
    pending: u32,
}

impl Bucket {
    fn prune(&mut self, now: i64, window: i64) {
        while self
            .events
            .front()
            .is_some_and(|&t| t.saturating_add(window) <= now)
        {
            self.events.pop_front();
        }
    }

    /// Seconds until a place frees, when events and reservations together fill `limit`.
    fn full(&self, limit: u32, now: i64, window: i64) -> Option<i64> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let used = self.events.len().saturating_add(self.pending as usize);
        if used < limit {
            return None;
        }
        if self.events.len() >= limit {
            // The bucket reopens when enough of the oldest events age out.
            let oldest = self
                .events
                .get(self.events.len() - limit)
                .copied()
                .unwrap_or(now);
            Some((oldest.saturating_add(window) - now).max(1))
        } else {
            // Full only with reservations in flight: they settle within a password check.
            Some(1)
        }
    }

    fn record(&mut self, now: i64, limit: u32) {
        self.events.push_back(now);
        while self.events.len() > usize::try_from(limit).unwrap_or(usize::MAX) {
            self.events.pop_front();
        }
    }

    fn idle(&self) -> bool {
        self.events.is_empty() && self.pending == 0
    }
}

/// Above this many buckets, aged-out ones are swept before a new one is added.
const MAX_BUCKETS: usize = 100_000;

/// The in-memory limiter of logins and registrations.
#[derive(Debug)]
pub struct Limiter {
    login: LoginLimits,
    register: RegisterLimits,
    buckets: Mutex<HashMap<Key, Bucket>>,
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl Limiter {
    pub fn new(login: LoginLimits, register: RegisterLimits) -> Self {
        Limiter {
            login,
            register,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn rule(&self, key: &Key) -> (u32, i64) {
        match key {
            Key::AccountFrom(..) | Key::Checking(_) => {
                (self.login.per_account, secs(self.login.window))
            }
            Key::Address(_) => (self.login.per_ip, secs(self.login.window)),
            Key::Register(_) => (self.register.per_ip, secs(self.register.window)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Bucket>> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a place under every key at once, or none: `Err` names the key that is full (the
    /// one with the longest wait).
    fn reserve(&self, keys: &[Key], now: i64) -> Result<(), Refusal> {
        let mut buckets = self.lock();
        let mut refusal: Option<Refusal> = None;
        for key in keys {
            let (limit, window) = self.rule(key);
            let Some(b) = buckets.get_mut(key) else {
                continue;
            };
            b.prune(now, window);
            if let Some(wait) = b.full(limit, now, window) {
                let wait = u64::try_from(wait).unwrap_or(1);
                if refusal.is_none_or(|r| wait > r.retry_after) {
                    refusal = Some(Refusal {
                        reason: key.reason(),
                        retry_after: wait,
                    });
                }
            }
        }
        if let Some(r) = refusal {
            return Err(r);
        }
        if buckets.len() >= MAX_BUCKETS {
            buckets.retain(|k, b| {
                let (_, window) = self.rule(k);
                b.prune(now, window);
                !b.idle()
            });
        }
        for key in keys {
            let b = buckets.entry(key.clone()).or_default();
            b.pending = b.pending.saturating_add(1);
        }
        Ok(())
    }

    /// Releases the reservations of `keys`; the keys in `failed` also record an event at `now`;
    /// the buckets in `forget` are dropped.
    fn settle(&self, keys: &[Key], failed: &[&Key], forget: &[&Key], now: i64) {
        let mut buckets = self.lock();
        for key in keys {
            let (limit, _) = self.rule(key);
            let Some(b) = buckets.get_mut(key) else {
                continue;
            };
            b.pending = b.pending.saturating_sub(1);
            if failed.contains(&key) {
                b.record(now, limit);
            }
            if b.idle() || (forget.contains(&key) && b.pending == 0) {
                buckets.remove(key);
            } else if forget.contains(&key) {
                b.events.clear();
            }
        }
    }

    /// Reserves a login of `account` (normalised email) from `address` before its password is
    /// checked. Resolve the attempt with [`LoginAttempt::succeeded`] or [`LoginAttempt::failed`].
    pub fn login(
        &self,
        account: &str,
        address: &str,
        now: i64,
    ) -> Result<LoginAttempt<'_>, Refusal> {
        let keys = [
            Key::AccountFrom(account.to_string(), address.to_string()),
            Key::Address(address.to_string()),
            Key::Checking(account.to_string()),
        ];
        self.reserve(&keys, now)?;
        Ok(LoginAttempt {
            limiter: self,
            keys,
            now,
            settled: false,
        })
    }

    /// Counts a registration from `address` (before its password is hashed), or refuses it.
    pub fn register(&self, address: &str, now: i64) -> Result<(), Refusal> {
        let keys = [Key::Register(address.to_string())];
        self.reserve(&keys, now)?;
        self.settle(&keys, &[&keys[0]], &[], now);
        Ok(())
    }
}

/// A login that holds places under the limits while its password is checked. Dropped without
/// being resolved (the client went away, or the store failed) it counts as a failure, so an
/// attempt cannot escape the count by aborting.
#[derive(Debug)]
pub struct LoginAttempt<'a> {
    limiter: &'a Limiter,
    keys: [Key; 3],
    now: i64,
    settled: bool,
}

impl LoginAttempt<'_> {
    /// The password was right: the failures of this account from this address are forgotten
    /// (the address's failures on other accounts stay).
    pub fn succeeded(mut self, now: i64) {
        self.settled = true;
        self.limiter.settle(&self.keys, &[], &[&self.keys[0]], now);
    }

    /// The password was wrong (or the account unknown).
    pub fn failed(mut self, now: i64) {
        self.settled = true;
        self.limiter
            .settle(&self.keys, &[&self.keys[0], &self.keys[1]], &[], now);
    }
}

impl Drop for LoginAttempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.limiter
                .settle(&self.keys, &[&self.keys[0], &self.keys[1]], &[], self.now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> Limiter {
        Limiter::new(
            LoginLimits {
                per_account: 3,
                per_ip: 5,
                window: Duration::from_secs(100),
            },
            RegisterLimits {
                per_ip: 2,
                window: Duration::from_secs(50),
            },
        )
    }

    #[test]
    fn reservations_count_before_the_outcome() {
        let l = limiter();
        // Three checks of one account in flight from one address: the fourth is refused at
        // once, before any of them has failed.
        let held: Vec<_> = (0..3)
            .map(|_| l.login("a@x", "1.1.1.1", 0).unwrap())
            .collect();
        let r = l.login("a@x", "1.1.1.1", 0).unwrap_err();
        assert_eq!(r.retry_after, 1);
        // From another address the account is busy too (three checks in flight): a slow-down.
        assert_eq!(
            l.login("a@x", "2.2.2.2", 0).unwrap_err().reason,
            "login_busy"
        );
        for a in held {
            a.failed(0);
        }
        // Three failures from 1.1.1.1: that address waits for the window.
        let r = l.login("a@x", "1.1.1.1", 10).unwrap_err();
        assert_eq!(
            r,
            Refusal {
                reason: "login_account",
                retry_after: 90
            }
        );
        // The owner from another address is not locked out, and succeeds.
        l.login("a@x", "2.2.2.2", 10).unwrap().succeeded(10);
        // After the window 1.1.1.1 may try again.
        l.login("a@x", "1.1.1.1", 100).unwrap().succeeded(100);
    }

    #[test]
    fn per_address_limit_spans_accounts_and_success_forgets_only_its_pair() {
        let l = limiter();
        for i in 0..2 {
            l.login(&format!("u{i}@x"), "9.9.9.9", 0).unwrap().failed(0);
            l.login(&format!("u{i}@x"), "9.9.9.9", 0).unwrap().failed(0);
        }
        // Two failures on u0: a success forgets them, so three more are possible.
        l.login("u0@x", "9.9.9.9", 1).unwrap().succeeded(1);
        l.login("u2@x", "9.9.9.9", 1).unwrap().failed(1);
        // Five failures from the address (the success did not erase the address's count).
        assert_eq!(
            l.login("u3@x", "9.9.9.9", 2).unwrap_err().reason,
            "login_address"
        );
        assert!(l.login("u3@x", "8.8.8.8", 2).is_ok());
    }

    #[test]
    fn an_abandoned_attempt_counts_as_a_failure() {
        let l = limiter();
        for _ in 0..3 {
            drop(l.login("a@x", "1.1.1.1", 0).unwrap());
        }
        assert_eq!(
            l.login("a@x", "1.1.1.1", 0).unwrap_err().reason,
            "login_account"
        );
    }

    #[test]
    fn registrations_per_address_and_window() {
        let l = limiter();
        l.register("1.1.1.1", 0).unwrap();
        l.register("1.1.1.1", 10).unwrap();
        assert_eq!(
            l.register("1.1.1.1", 20),
            Err(Refusal {
                reason: "register",
                retry_after: 30
            })
        );
        l.register("2.2.2.2", 20).unwrap();
        l.register("1.1.1.1", 50).unwrap();
        // Idle buckets are dropped: nothing grows with settled logins.
        l.login("a@x", "3.3.3.3", 0).unwrap().succeeded(0);
        assert!(!l
            .lock()
            .keys()
            .any(|k| matches!(k, Key::Checking(_) | Key::AccountFrom(..))));
    }
}
