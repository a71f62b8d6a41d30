//! Disk admission: which complete objects the disk tier takes when the memory tier evicts
//! them (`[cache] disk_admission`, [`DiskAdmission`]).
//!
//! Objects always enter the memory tier; foyer writes an object to disk when memory evicts it
//! (write-on-eviction), unless it was stored memory-only. [`DiskAdmitter::on_store`] decides
//! which, when a fill completes:
//! - `first-hit`: every object may go to disk.
//! - `second-hit`: an object goes to disk once it was requested twice: its first fill is
//!   memory-only and its key is remembered in a doorkeeper (a set of keys, not objects, that
//!   outlives the object's eviction); a memory hit or a later fill of a remembered key admits it.
//!   One-hit wonders never cost a disk write, but an object evicted from memory before its
//!   second request is fetched from the origin again.
//! - `second-hit-when-full` (the default): first-hit while the disk tier has room nothing was
//!   ever written to, second-hit after. Until the disk is full an admitted object evicts nothing,
//!   so admitting it costs one write and saves the origin fetch of its second request; once the
//!   disk is full, a one-hit wonder would push out an object that was asked for, so only objects
//!   requested twice go in. The room is counted from the tier's capacity when the cache opens on
//!   an empty folder (zero when it recovers a tier: its objects may fill it), minus the weight of
//!   every object admitted to disk, whatever the mode decided (a conservative count: an object
//!   still in memory, or admitted twice, has not used its share yet).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::config::DiskAdmission;

/// How many "seen once" keys the doorkeeper remembers before it starts over (TinyLFU-style
/// reset): 1M keys, about 40 MiB at most.
pub const DOORKEEPER_MAX: usize = 1 << 20;

/// The disk admission policy and its state.
#[derive(Debug)]
pub struct DiskAdmitter {
    mode: DiskAdmission,
    /// Keys stored in memory only, waiting for a second request before they may go to disk.
    doorkeeper: Mutex<HashSet<u128>>,
    /// Bytes of the disk tier no admitted object has claimed yet.
    room: AtomicU64,
    /// Under first-hit: keys [`Self::hold`] put in the doorkeeper (about; a reset of the
    /// doorkeeper forgets keys this still counts), so a hit looks there only when some wait.
    held: AtomicU64,
}

impl DiskAdmitter {
    /// The policy `mode` for a disk tier with `room` bytes never written.
    pub fn new(mode: DiskAdmission, room: u64) -> Self {
        DiskAdmitter {
            mode,
            doorkeeper: Mutex::new(HashSet::new()),
            room: AtomicU64::new(room),
            held: AtomicU64::new(0),
        }
    }

    /// A fill of `key` (`weight` bytes) completed: whether the object may go to disk when
    /// memory evicts it (else it is stored memory-only).
    pub fn on_store(&self, key: u128, weight: u64) -> bool {
        let admit = match self.mode {
            DiskAdmission::FirstHit => true,
            DiskAdmission::SecondHit => self.seen_before(key, true),
            DiskAdmission::SecondHitWhenFull => {
                // Forget the key either way: admitted now, it no longer waits for a second hit.
                self.seen_before(key, false) || self.has_room(weight) || {
                    self.remember(key);
                    false
                }
            }
        };
        if admit {
            self.claim(weight);
        }
        admit
    }

    /// A memory hit on `key`: whether it was a memory-only object waiting for its second
    /// request, which now may go to disk (the caller stores it again without the mark).
    pub fn on_memory_hit(&self, key: u128, weight: u64) -> bool {
        // Under first-hit only held keys wait in the doorkeeper: none, mostly.
        if self.mode == DiskAdmission::FirstHit && self.held.load(Ordering::Relaxed) == 0 {
            return false;
        }
        if !lock(&self.doorkeeper).remove(&key) {
            return false;
        }
        if self.mode == DiskAdmission::FirstHit {
            let _ = self
                .held
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(1))
                });
        }
        self.claim(weight);
        true
    }

    /// Bytes of the disk tier no admitted object has claimed yet.
    pub fn room(&self) -> u64 {
        self.room.load(Ordering::Relaxed)
    }

    /// Whether `key` waited in the doorkeeper (and leaves it); with `remember`, a key not
    /// there is added.
    fn seen_before(&self, key: u128, remember: bool) -> bool {
        let mut door = lock(&self.doorkeeper);
        if door.remove(&key) {
            return true;
        }
        if remember {
            insert_bounded(&mut door, key);
        }
        false
    }

    /// A prefetched object ([`super::store::Prefetched`]): stored memory-only whatever the
    /// mode, it waits in the doorkeeper for its first request, which admits it to disk.
    pub fn hold(&self, key: u128) {
        if self.mode == DiskAdmission::FirstHit {
            self.held.fetch_add(1, Ordering::Relaxed);
        }
        self.remember(key);
    }

    fn remember(&self, key: u128) {
        insert_bounded(&mut lock(&self.doorkeeper), key);
    }

    fn has_room(&self, weight: u64) -> bool {
        self.room() >= weight
    }

    fn claim(&self, weight: u64) {
        // Saturating: fetch_update's closure never returns None here.
        let _ = self
            .room
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
                Some(r.saturating_sub(weight))
            });
    }
}

fn insert_bounded(door: &mut HashSet<u128>, key: u128) {
    if door.len() >= DOORKEEPER_MAX {
        door.clear();
    }
    door.insert(key);
}

/// Lock a mutex, recovering from poisoning (nothing holding it can panic, and the request
/// path must never unwrap).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBJ: u64 = 256 * 1024;

    #[test]
    fn a_held_object_waits_for_its_first_request_in_every_mode() {
        for mode in [
            DiskAdmission::FirstHit,
            DiskAdmission::SecondHit,
            DiskAdmission::SecondHitWhenFull,
        ] {
            let a = DiskAdmitter::new(mode, 1 << 30);
            a.hold(7);
            assert!(
                a.on_memory_hit(7, OBJ),
                "{mode:?}: the first request admits it"
            );
            assert!(!a.on_memory_hit(7, OBJ), "{mode:?}: once");
        }
    }

    #[test]
    fn first_hit_admits_every_object() {
        let a = DiskAdmitter::new(DiskAdmission::FirstHit, 0);
        assert!(a.on_store(1, OBJ));
        assert!(a.on_store(2, OBJ));
        assert!(!a.on_memory_hit(2, OBJ), "nothing waits for a second hit");
    }

    #[test]
    fn second_hit_admits_on_the_second_request_even_after_eviction() {
        let a = DiskAdmitter::new(DiskAdmission::SecondHit, 1 << 30);
        assert!(
            !a.on_store(1, OBJ),
            "a first fill is memory-only, room or not"
        );
        // Evicted from memory, fetched again: the doorkeeper outlived the object.
        assert!(a.on_store(1, OBJ));
        assert!(!a.on_store(1, OBJ), "admitted: the key no longer waits");
        assert!(!a.on_store(2, OBJ));
        assert!(
            a.on_memory_hit(2, OBJ),
            "its second request was a memory hit"
        );
        assert!(!a.on_memory_hit(2, OBJ), "promoted once");
    }

    #[test]
    fn second_hit_when_full_admits_everything_until_the_disk_is_claimed() {
        let a = DiskAdmitter::new(DiskAdmission::SecondHitWhenFull, 3 * OBJ);
        assert!(a.on_store(1, OBJ));
        assert!(a.on_store(2, OBJ));
        assert!(a.on_store(3, OBJ));
        assert_eq!(a.room(), 0);
        // Full: one-hit wonders stay in memory; a second request admits them.
        assert!(!a.on_store(4, OBJ));
        assert!(!a.on_store(5, OBJ));
        assert!(a.on_store(4, OBJ), "fetched again after its eviction");
        assert!(a.on_memory_hit(5, OBJ), "hit in memory");
        assert!(
            !a.on_memory_hit(1, OBJ),
            "admitted with room: it never waited"
        );
        assert_eq!(a.room(), 0, "claims saturate");
    }

    #[test]
    fn room_is_claimed_by_every_admission() {
        let a = DiskAdmitter::new(DiskAdmission::SecondHitWhenFull, 2 * OBJ + 10);
        assert!(a.on_store(1, OBJ));
        assert_eq!(a.room(), OBJ + 10);
        assert!(a.on_store(2, OBJ));
        assert!(!a.on_store(3, OBJ), "10 bytes left: not room for an object");
        assert!(a.on_store(3, OBJ));
        assert_eq!(a.room(), 0);
        // Second-hit admissions count too, so the room says when the disk fills.
        let b = DiskAdmitter::new(DiskAdmission::SecondHit, 2 * OBJ);
        b.on_store(1, OBJ);
        assert_eq!(b.room(), 2 * OBJ, "a memory-only object claims nothing");
        assert!(b.on_store(1, OBJ));
        assert_eq!(b.room(), OBJ);
    }

    #[test]
    fn a_recovered_tier_starts_full() {
        let a = DiskAdmitter::new(DiskAdmission::SecondHitWhenFull, 0);
        assert!(!a.on_store(1, OBJ));
        assert!(a.on_store(1, OBJ));
    }

    #[test]
    fn the_doorkeeper_starts_over_when_full() {
        let a = DiskAdmitter::new(DiskAdmission::SecondHit, 0);
        for k in 0..DOORKEEPER_MAX as u128 {
            lock(&a.doorkeeper).insert(k);
        }
        assert!(!a.on_store(u128::MAX, OBJ));
        let door = lock(&a.doorkeeper);
        assert_eq!(door.len(), 1, "reset, then the new key");
        assert!(door.contains(&u128::MAX));
    }
}
