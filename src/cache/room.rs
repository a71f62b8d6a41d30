//! Room for the disk tier on its filesystem: what the filesystem has, what the tier's files
//! already hold, the rule that decides whether a tier of `cache.disk` can be opened there
//! ([`config_error`], obeyed by [`super::Cache::open`] and `edge check`), the reservation that
//! makes foyer's writes unable to run out of space ([`reserve`]), and the running edge's "may
//! foyer write now" ([`writes_fit`]).
//!
//! foyer creates its files at full length but sparse: a block would take space on the
//! filesystem the first time it is written, and a write that finds the filesystem full panics
//! inside foyer (see [`super::disk`]). So the edge reserves the tier when the cache opens: it
//! allocates every file foyer created to its full length (`fallocate`), and foyer's writes then
//! land in blocks the filesystem has already given it, whatever else fills the filesystem
//! later. Space already allocated is reused in place on ext4, xfs and tmpfs; not so on
//! copy-on-write filesystems (btrfs, ZFS), where any write may need new space: there the
//! reservation promises nothing, and the cache folder should not live on one.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;

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
        Ok(Room {
            total: stats.total_space(),
            available: stats.available_space(),
            held: held_by(dir),
        })
    }

    /// Only the filesystem figures, without scanning the folder (`held` is 0).
    pub fn measure_fs(dir: &Path) -> std::io::Result<Room> {
        let stats = fs4::statvfs(dir)?;
        Ok(Room {
            total: stats.total_space(),
            available: stats.available_space(),
            held: 0,
        })
    }
}

/// How foyer 0.22's file device names its files. Only these count as the tier's: anything
/// else in the folder (bans, the lock, a stray file) is no space the tier can write into. If
/// foyer renames them, nothing counts as held and the rules only get stricter.
const TIER_FILE_PREFIX: &str = "foyer-storage-";

/// The tier's files in `dir` (a folder that cannot be read has none we can count).
fn tier_files(dir: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(TIER_FILE_PREFIX)
        })
        .filter_map(|e| e.metadata().ok().map(|m| (e.path(), m)))
        .filter(|(_, m)| m.is_file())
        .collect()
}

/// Bytes allocated (not apparent length: the files may be sparse) to the tier's files in `dir`.
pub fn held_by(dir: &Path) -> u64 {
    tier_files(dir)
        .iter()
        .map(|(_, m)| m.blocks().saturating_mul(512))
        .sum()
}

/// Allocate every tier file in `dir` to its full length, so that no write foyer makes into it
/// can need new space; returns the bytes the files now hold (their lengths). Blocks already
/// allocated are kept (a restart reserves nothing new).
pub fn reserve(dir: &Path) -> std::io::Result<u64> {
    let mut reserved = 0u64;
    for (path, meta) in tier_files(dir) {
        if meta.len() == 0 {
            continue;
        }
        let file = std::fs::OpenOptions::new().write(true).open(&path)?;
        file.allocate(meta.len())
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        reserved = reserved.saturating_add(meta.len());
    }
    Ok(reserved)
}

/// Whether every write foyer may issue before the next check fits. A tier of `capacity`
/// whose files hold `held` may still allocate `capacity - held`; if that fits in the free
/// space, nothing it writes can fail for space (once reserved, `held` covers `capacity` and
/// this always holds). Otherwise it needs `headroom` free: what foyer may have queued and
/// write before the next check sees the space go.
pub fn writes_fit(room: Room, capacity: u64, headroom: u64) -> bool {
    let unallocated = capacity.saturating_sub(room.held);
    room.available >= unallocated.min(headroom)
}

/// The bytes foyer 0.22's block engine lays out in files for a tier of `disk` bytes with
/// blocks of `block` bytes: `disk` rounded down to its 4 KiB pages, a tombstone log of one
/// 16-byte slot per page, then as many whole blocks as fit in the rest. What the reservation
/// allocates (checked against foyer itself in `super::tests`).
pub fn tier_bytes(disk: u64, block: u64) -> u64 {
    const PAGE: u64 = 4096;
    const SLOTS_PER_PAGE: u64 = PAGE / 16;
    let capacity = disk - disk % PAGE;
    let tombstone_log = (capacity / PAGE)
        .div_ceil(SLOTS_PER_PAGE)
        .saturating_mul(PAGE);
    let blocks = capacity.saturating_sub(tombstone_log) / block.max(1);
    tombstone_log.saturating_add(blocks.saturating_mul(block))
}

/// Why a disk tier of `disk` bytes with blocks of `block` bytes cannot be opened on `room`:
/// its files ([`tier_bytes`]) are larger than the filesystem, or than the free space plus
/// what they already hold (a restart of a reserved tier needs nothing new). `None` when they
/// fit. The cache refuses to open such a tier and `edge check` rejects it: a tier the edge
/// cannot reserve is one it cannot use.
pub fn config_error(disk: u64, block: u64, room: Room) -> Option<String> {
    let needs = tier_bytes(disk, block);
    if needs > room.total {
        Some(format!(
            "{} is larger than its filesystem ({}): the disk tier reserves its files ({}) when the cache opens",
            format_size(disk),
            format_size(room.total),
            format_size(needs)
        ))
    } else if needs > room.available.saturating_add(room.held) {
        Some(format!(
            "{} does not fit in the free space ({} free, {} already held by the cache): the disk tier reserves its files ({}) when the cache opens",
            format_size(disk),
            format_size(room.available),
            format_size(room.held),
            format_size(needs)
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
        Room {
            total: total * MIB,
            available: available * MIB,
            held: held * MIB,
        }
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
    fn the_tier_is_a_tombstone_log_and_whole_blocks() {
        // 96 MiB: 24576 pages, a 384 KiB log, then 23 blocks of 4 MiB (the 24th does not fit).
        assert_eq!(tier_bytes(96 * MIB, 4 * MIB), 384 * 1024 + 92 * MIB);
        // An odd size is first cut to whole pages.
        assert_eq!(tier_bytes(16 * MIB + 100, 4 * MIB), 64 * 1024 + 12 * MIB);
    }

    #[test]
    fn a_tier_larger_than_its_filesystem_or_its_free_space_is_refused() {
        let block = 4 * MIB;
        let w = config_error(96 * MIB, block, room(64, 64, 0)).unwrap();
        assert!(
            w.contains("96.0 MiB is larger than its filesystem (64.0 MiB)"),
            "{w}"
        );
        let w = config_error(96 * MIB, block, room(200, 50, 40)).unwrap();
        assert!(
            w.contains("does not fit in the free space (50.0 MiB free, 40.0 MiB already held"),
            "{w}"
        );
        // A restart of a reserved tier on a full filesystem: its own files count as room.
        let files = tier_bytes(96 * MIB, block);
        assert_eq!(
            config_error(
                96 * MIB,
                block,
                Room {
                    total: 200 * MIB,
                    available: 0,
                    held: files
                }
            ),
            None
        );
        assert!(config_error(
            96 * MIB,
            block,
            Room {
                total: 200 * MIB,
                available: 0,
                held: files - 4096
            }
        )
        .is_some());
        assert_eq!(
            config_error(
                96 * MIB,
                block,
                Room {
                    total: 200 * MIB,
                    available: files,
                    held: 0
                }
            ),
            None
        );
    }

    #[test]
    fn held_counts_the_tiers_allocated_bytes_not_their_length() {
        let dir = tempfile::tempdir().unwrap();
        let sparse =
            std::fs::File::create(dir.path().join("foyer-storage-direct-fs-00000001")).unwrap();
        sparse.set_len(64 * MIB).unwrap();
        std::fs::write(
            dir.path().join("foyer-storage-direct-fs-00000002"),
            vec![7u8; 1 << 20],
        )
        .unwrap();
        // Not the tier's: a file someone else left in the folder.
        std::fs::write(dir.path().join("filler"), vec![7u8; 4 << 20]).unwrap();
        let held = held_by(dir.path());
        assert!((MIB..2 * MIB).contains(&held), "held {held}");
        assert_eq!(held_by(&dir.path().join("missing")), 0);
    }

    #[test]
    fn reserve_allocates_the_tiers_files_to_their_length_and_only_those() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "foyer-storage-direct-fs-00000000",
            "foyer-storage-direct-fs-00000001",
        ] {
            std::fs::File::create(dir.path().join(name))
                .unwrap()
                .set_len(2 * MIB)
                .unwrap();
        }
        let stray = dir.path().join("stray");
        std::fs::File::create(&stray)
            .unwrap()
            .set_len(8 * MIB)
            .unwrap();
        assert!(held_by(dir.path()) < MIB, "sparse before");
        assert_eq!(reserve(dir.path()).unwrap(), 4 * MIB);
        assert!(
            held_by(dir.path()) >= 4 * MIB,
            "held {}",
            held_by(dir.path())
        );
        assert!(
            std::fs::metadata(&stray).unwrap().blocks() * 512 < MIB,
            "a stray file is not the tier's"
        );
        // Again (a restart): nothing new, the same figure.
        assert_eq!(reserve(dir.path()).unwrap(), 4 * MIB);
    }
}
