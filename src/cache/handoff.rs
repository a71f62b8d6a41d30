//! [`HandoffLock`]: the cache lock, where the request elected to fill a cold key may hand the
//! fill to another request and wait on it like every other viewer.
//!
//! pingora-cache elects one writer per cold key (the first request that misses) and that
//! request fetches the object in the loop that also writes its own client. Where that loop
//! waits on its client (an HTTP/2 stream's flow-control window, which Pingora 0.9 writes
//! without its queued writes), the fill waits with it ([`crate::proxy::fill_pace`]). So a
//! request may carry a [`Delegate`] on its cache key: when the lock elects it, the delegate
//! receives the write permit (to give to a request that only fills, and reads nothing but
//! its origin) and the elected request becomes a reader of that fill. The filling request
//! carries the matching [`Handed`] slot on its key and is elected with the handed permit.
//!
//! Only cold misses are handed over; a revalidation (`stale_writer`) keeps its writer.
//! A permit that never reaches its filler is released as a transient error when dropped, so
//! the readers elect a writer again (the delegating request among them, which then fills
//! itself as it would have without a delegate).
//!
//! It also closes a gap between pingora-cache's lookup and its lock: a request whose lookup
//! missed asks for the lock only afterwards, and if the writer of that key finished and
//! released the lock in between, the request is elected writer of an object the cache now
//! holds — a second origin fetch (seen with a herd of LL-HLS players on a part that takes
//! 12 ms to fetch). A request carrying [`Recheck`] on its key (the pipeline's content
//! requests) and elected for a key the cache now holds or fills waits on its own released
//! lock instead, which sends it back to the lookup: once per request, so a stored object the
//! request cannot use (a forced miss) still gets its writer on the second try.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pingora_cache::lock::{CacheKeyLock, CacheLock, LockStatus, Locked, WritePermit};
use pingora_cache::CacheKey;

/// The cache lock with hand-over; leaked once at start ([`HandoffLock::leak`]) like the
/// storage, as pingora-cache wants a `'static` lock.
pub struct HandoffLock {
    inner: &'static CacheLock,
    /// Whether the cache holds or fills a key now (a lookup would not miss).
    present: Option<&'static Present>,
}

/// See [`HandoffLock::leak_with`].
pub type Present = dyn Fn(&CacheKey) -> bool + Send + Sync;

/// On the cache key of a request whose election as writer is checked once against the cache
/// (see the module's last paragraph).
#[derive(Clone, Default)]
pub struct Recheck(Arc<AtomicBool>);

impl Recheck {
    /// True the first time only.
    fn first(&self) -> bool {
        !self.0.swap(true, Ordering::AcqRel)
    }
}

type Start = Box<dyn FnOnce(HandedPermit) + Send>;

/// On the cache key of a request that wants its fill done by another request: `start` gets
/// the permit if this request is elected writer of a cold key. Used at most once.
#[derive(Clone)]
pub struct Delegate(Arc<Mutex<Option<Start>>>);

impl Delegate {
    pub fn new(start: impl FnOnce(HandedPermit) + Send + 'static) -> Self {
        Delegate(Arc::new(Mutex::new(Some(Box::new(start)))))
    }

    fn take(&self) -> Option<Start> {
        lock(&self.0).take()
    }

    /// Whether the lock elected its request and handed the permit on.
    pub fn started(&self) -> bool {
        lock(&self.0).is_none()
    }
}

/// On the cache key of the request that fills for a delegating one: where its permit waits.
#[derive(Clone, Default)]
pub struct Handed(Arc<Mutex<Option<HandedPermit>>>);

impl Handed {
    /// Leave the permit for the filler's lookup.
    pub fn put(&self, permit: HandedPermit) {
        *lock(&self.0) = Some(permit);
    }

    fn take(&self) -> Option<WritePermit> {
        lock(&self.0).take().and_then(|mut h| h.permit.take())
    }
}

/// A write permit on its way from the elected request to its filler. Dropped before it got
/// there (the filler never looked the key up), it releases the lock as a transient error:
/// the readers compete for the write lock again.
pub struct HandedPermit {
    permit: Option<WritePermit>,
    key: CacheKey,
    lock: &'static CacheLock,
}

impl Drop for HandedPermit {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.lock
                .release(&self.key, permit, LockStatus::TransientError);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl HandoffLock {
    /// A lock whose writers hold it at most `age_timeout`, leaked for the life of the process.
    pub fn leak(age_timeout: std::time::Duration) -> &'static HandoffLock {
        let inner: &'static CacheLock = Box::leak(CacheLock::new_boxed(age_timeout));
        Box::leak(Box::new(HandoffLock {
            inner,
            present: None,
        }))
    }

    /// [`Self::leak`], with `present` telling whether the cache holds or fills a key now,
    /// checked once for a request carrying [`Recheck`] when it is elected writer.
    pub fn leak_with(
        age_timeout: std::time::Duration,
        present: &'static Present,
    ) -> &'static HandoffLock {
        let inner: &'static CacheLock = Box::leak(CacheLock::new_boxed(age_timeout));
        Box::leak(Box::new(HandoffLock {
            inner,
            present: Some(present),
        }))
    }

    /// A write permit taken for a key the cache holds or fills already (its writer finished
    /// between this request's lookup and its lock): released at once as done, and this
    /// request waits on it like a reader, so it looks the key up again.
    fn already_there(&self, key: &CacheKey, stale_writer: bool) -> bool {
        !stale_writer
            && self.present.is_some_and(|present| {
                key.extensions.get::<Recheck>().is_some_and(Recheck::first) && present(key)
            })
    }
}

impl CacheKeyLock for HandoffLock {
    fn lock(&self, key: &CacheKey, stale_writer: bool) -> Locked {
        if let Some(permit) = key.extensions.get::<Handed>().and_then(Handed::take) {
            return Locked::Write(permit);
        }
        let locked = self.inner.lock(key, stale_writer);
        let Locked::Write(permit) = locked else {
            return locked;
        };
        if self.already_there(key, stale_writer) {
            // The permit is in the table: this is a read lock on it, released at once.
            let read = self.inner.lock(key, false);
            self.inner.release(key, permit, LockStatus::Done);
            return read;
        }
        let start = match key.extensions.get::<Delegate>() {
            Some(d) if !stale_writer => d.take(),
            _ => None,
        };
        let Some(start) = start else {
            return Locked::Write(permit);
        };
        // The permit is in the table: this is a read lock on it. Taken before the filler
        // starts, which could otherwise release the lock before this request waits on it.
        let read = self.inner.lock(key, false);
        // The key kept with the permit must not hold the delegate (which holds the filler,
        // which holds the permit).
        let mut bare = key.clone();
        bare.extensions = http::Extensions::new();
        start(HandedPermit {
            permit: Some(permit),
            key: bare,
            lock: self.inner,
        });
        read
    }

    fn release(&self, key: &CacheKey, permit: WritePermit, reason: LockStatus) {
        self.inner.release(key, permit, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(path: &str) -> CacheKey {
        CacheKey::new(path, "")
    }

    fn with<T: Clone + Send + Sync + 'static>(path: &str, ext: T) -> CacheKey {
        let mut k = key(path);
        k.extensions.insert(ext);
        k
    }

    /// Whether `locked` is a write lock; one is released (a permit dropped unreleased is a
    /// dangling lock, which pingora-cache asserts against).
    fn elected(locks: &HandoffLock, k: &CacheKey, locked: Locked) -> bool {
        match locked {
            Locked::Write(p) => {
                locks.release(k, p, LockStatus::Done);
                true
            }
            Locked::Read(_) => false,
        }
    }

    #[tokio::test]
    async fn an_elected_delegate_waits_on_the_fill_it_handed_over() {
        let locks = HandoffLock::leak(Duration::from_secs(5));
        let slot = Handed::default();
        let to_filler = slot.clone();
        let delegate = Delegate::new(move |p| to_filler.put(p));
        let Locked::Read(read) = locks.lock(&with("/a", delegate.clone()), false) else {
            panic!("the delegating request waits");
        };
        assert!(delegate.take().is_none(), "the delegate starts one filler");
        // A third request waits too.
        assert!(matches!(locks.lock(&key("/a"), false), Locked::Read(_)));
        // The filler is elected with the handed permit, and its release wakes the readers.
        let filler_key = with("/a", slot.clone());
        let Locked::Write(permit) = locks.lock(&filler_key, false) else {
            panic!("the filler writes");
        };
        assert!(slot.take().is_none(), "the permit is taken once");
        locks.release(&filler_key, permit, LockStatus::Done);
        tokio::time::timeout(Duration::from_secs(1), read.wait())
            .await
            .expect("released");
        assert_eq!(read.lock_status(), LockStatus::Done);
        // The key is free again: the next miss is elected as usual.
        let k = key("/a");
        assert!(elected(locks, &k, locks.lock(&k, false)));
    }

    #[tokio::test]
    async fn a_permit_that_never_reaches_its_filler_lets_the_readers_compete_again() {
        let locks = HandoffLock::leak(Duration::from_secs(5));
        let delegate = Delegate::new(drop::<HandedPermit>);
        let Locked::Read(read) = locks.lock(&with("/b", delegate), false) else {
            panic!("the delegating request waits");
        };
        tokio::time::timeout(Duration::from_secs(1), read.wait())
            .await
            .expect("released");
        assert_eq!(read.lock_status(), LockStatus::TransientError);
        let k = key("/b");
        assert!(
            elected(locks, &k, locks.lock(&k, false)),
            "the retry is elected"
        );
    }

    #[tokio::test]
    async fn an_elected_request_for_a_key_the_cache_now_holds_looks_it_up_again_once() {
        // The cache holds "/held" (its writer finished after this request's lookup missed).
        let present: &'static Present = Box::leak(Box::new(|k: &CacheKey| {
            k.primary_key_str() == Some("/held")
        }));
        let locks = HandoffLock::leak_with(Duration::from_secs(5), present);
        let k = with("/held", Recheck::default());
        let Locked::Read(read) = locks.lock(&k, false) else {
            panic!("not elected: the key is there");
        };
        tokio::time::timeout(Duration::from_secs(1), read.wait())
            .await
            .expect("released at once");
        assert_eq!(read.lock_status(), LockStatus::Done, "back to the lookup");
        // Its second election stands (a stored object it could not use: a forced miss).
        assert!(elected(locks, &k, locks.lock(&k, false)));
        // A key the cache does not hold, a revalidation, and a key without the marker are
        // elected as usual.
        let cold = with("/cold", Recheck::default());
        assert!(elected(locks, &cold, locks.lock(&cold, false)));
        let stale = with("/held", Recheck::default());
        assert!(elected(locks, &stale, locks.lock(&stale, true)));
        let bare = key("/held");
        assert!(elected(locks, &bare, locks.lock(&bare, false)));
    }

    #[test]
    fn revalidations_and_keys_without_extensions_lock_as_usual() {
        let locks = HandoffLock::leak(Duration::from_secs(5));
        let c = key("/c");
        let first = locks.lock(&c, false);
        assert!(matches!(locks.lock(&c, false), Locked::Read(_)));
        // A filler whose permit was already taken (or never put) waits like anyone.
        assert!(matches!(
            locks.lock(&with("/c", Handed::default()), false),
            Locked::Read(_)
        ));
        assert!(elected(locks, &c, first));
        let started = Arc::new(Mutex::new(false));
        let s = started.clone();
        let d = with("/d", Delegate::new(move |_p| *lock(&s) = true));
        assert!(elected(locks, &d, locks.lock(&d, true)), "a stale writer");
        assert!(!*lock(&started));
    }
}
