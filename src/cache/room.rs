//! Room for the disk tier on its filesystem: what the filesystem has, what the tier's files
//! already hold, and the two rules that compare them (the running edge's "may foyer write
//! now", [`writes_fit`], and `edge check`'s warning, [`config_warning`]).
//!
//! foyer creates its files at full length but sparse: a block takes space on the filesystem
//! the first time it is written, not when the cache opens. So a tier larger than the free space
//! starts fine and meets ENOSPC later, in foyer's flusher (see [`super::disk`]). Space already
//! allocated to the tier's files is reused in place (ext4, xfs, tmpfs; not so on copy-on-write
//! filesystems such as btrfs or ZFS, where any write may need new space).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::config::units::format_size;

/// The filesystem holding the cache folder, and the tier's share of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// Size of the filesystem.
    pub total: u64,
    /// Space an unprivileged writer may still take (`f_bavail`: root may dip into the
    /// reserve, but the reserve is not ours to plan with).
    pub available: u64,
    /// Bytes already allocated to the files in the cache folder.
    pub held: u64,
}

impl Room {
    /// Measure the filesystem of `dir` (or of its nearest existing ancestor, for a folder the
    /// edge will create) and what the files in `dir` hold.
    pub fn measure(dir: &Path) -> std::io::Result<Room> {
        let existing = dir.ancestors().find(|p| p.exists()).unwrap_or(dir);
        let stats = fs4::statvfs(existing)?;
        Ok(Room { total: stats.total_space(), available: stats.available_space(), held: held_by(dir) })
    }

    /// Only the filesystem figures, without scanning the folder (`held` is 0).
    pub fn measure_fs(dir: &Path) -> std::io::Result<Room> {
        let stats = fs4::statvfs(dir)?;
        Ok(Room { total: stats.total_space(), available: stats.available_space(), held: 0 })
    }
}

/// How foyer 0.22's file device names its files. Only these count as the tier's: anything
/// else in the folder (bans, the lock, a stray file) is no space the tier can write into. If
/// foyer renames them, nothing counts as held and the rules only get stricter.
const TIER_FILE_PREFIX: &str = "foyer-storage-";

/// Bytes allocated (not apparent length: the files are sparse) to the tier's files in `dir`.
/// A folder that cannot be read holds nothing we can count.
pub fn held_by(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(TIER_FILE_PREFIX))
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.blocks().saturating_mul(512))
        .sum()
}

/// Whether every write foyer may issue before the next check fits. A tier of `capacity`
/// whose files hold `held` may still allocate `capacity - held`; if that fits in the free
/// space, nothing it writes can fail for space. Otherwise it needs `headroom` free: what foyer
/// may have queued and write before the next check sees the space go.
pub fn writes_fit(room: Room, capacity: u64, headroom: u64) -> bool {
    let unallocated = capacity.saturating_sub(room.held);
    room.available >= unallocated.min(headroom)
}

/// `edge check`'s warning for a disk tier of `disk` bytes: larger than the filesystem (it can
/// never be filled), or larger than the free space plus what the tier's files already hold
/// (it does not fit now: the tier runs degraded when the filesystem fills). `None` when it fits.
pub fn config_warning(disk: u64, room: Room) -> Option<String> {
    if disk > room.total {
        Some(format!(
            "{} is larger than its filesystem ({}): the disk tier runs degraded (memory only) once the filesystem is full",
            format_size(disk),
            format_size(room.total)
        ))
    } else if disk > room.available.saturating_add(room.held) {
        Some(format!(
            "{} does not fit in the free space ({} free, {} already held by the cache): the disk tier runs degraded (memory only) once the filesystem is full",
            format_size(disk),
            format_size(room.available),
            format_size(room.held)
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn room(total: u64, available: u64, held: u64) -> Room {
        Room { total: total * MIB, available: available * MIB, held: held * MIB }
    }

    #[test]
    fn a_tier_that_fits_whole_never_waits_for_headroom() {
        // 10 MiB free, 8 MiB of the tier still unallocated: fits although headroom is 24 MiB.
        assert!(writes_fit(room(100, 10, 88), 96 * MIB, 24 * MIB));
        // Fully allocated: its writes reuse its own space, even on a full filesystem.
        assert!(writes_fit(room(100, 0, 96), 96 * MIB, 24 * MIB));
    }

    #[test]
    fn a_tier_that_does_not_fit_needs_headroom() {
        assert!(writes_fit(room(64, 30, 0), 96 * MIB, 24 * MIB));
        assert!(writes_fit(room(64, 24, 0), 96 * MIB, 24 * MIB));
        assert!(!writes_fit(room(64, 23, 0), 96 * MIB, 24 * MIB));
        assert!(!writes_fit(room(64, 1, 40), 96 * MIB, 24 * MIB));
    }

    #[test]
    fn check_warns_about_a_tier_larger_than_its_filesystem_or_its_free_space() {
        let w = config_warning(96 * MIB, room(64, 64, 0)).unwrap();
        assert!(w.contains("larger than its filesystem (64.0 MiB)"), "{w}");
        let w = config_warning(96 * MIB, room(200, 50, 40)).unwrap();
        assert!(w.contains("does not fit in the free space (50.0 MiB free, 40.0 MiB already held"), "{w}");
        // A restart of a full tier: its own files count as room.
        assert_eq!(config_warning(96 * MIB, room(200, 10, 96)), None);
        assert_eq!(config_warning(96 * MIB, room(200, 100, 0)), None);
    }

    #[test]
    fn held_counts_the_tiers_allocated_bytes_not_their_length() {
        let dir = tempfile::tempdir().unwrap();
        let sparse = std::fs::File::create(dir.path().join("foyer-storage-direct-fs-00000001")).unwrap();
        sparse.set_len(64 * MIB).unwrap();
        std::fs::write(dir.path().join("foyer-storage-direct-fs-00000002"), vec![7u8; 1 << 20]).unwrap();
        // Not the tier's: a file someone else left in the folder.
        std::fs::write(dir.path().join("filler"), vec![7u8; 4 << 20]).unwrap();
        let held = held_by(dir.path());
        assert!((MIB..2 * MIB).contains(&held), "held {held}");
        assert_eq!(held_by(&dir.path().join("missing")), 0);
    }
}
