//! File version stamps for reload-on-change polling (certificate files, the GeoIP database).

use std::path::Path;
use std::time::UNIX_EPOCH;

/// Identity of one version of a file: length, modification time (ns) and inode. A rewrite in
/// place changes the length or time; an atomic rename-over changes the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileStamp {
    len: u64,
    mtime_ns: u128,
    inode: u64,
}

impl FileStamp {
    pub fn of(path: &Path) -> std::io::Result<FileStamp> {
        let meta = std::fs::metadata(path)?;
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Ok(FileStamp {
            len: meta.len(),
            mtime_ns,
            inode,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_and_replace_change_the_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a");
        std::fs::write(&f, "one").unwrap();
        let first = FileStamp::of(&f).unwrap();
        assert_eq!(
            FileStamp::of(&f).unwrap(),
            first,
            "unchanged file, same stamp"
        );
        std::fs::write(&f, "three").unwrap();
        let rewritten = FileStamp::of(&f).unwrap();
        assert_ne!(rewritten, first, "rewritten with another length");
        let g = dir.path().join("b");
        std::fs::write(&g, "three").unwrap();
        std::fs::rename(&g, &f).unwrap();
        assert_ne!(
            FileStamp::of(&f).unwrap(),
            rewritten,
            "replaced by rename: another inode"
        );
        assert!(FileStamp::of(&dir.path().join("missing")).is_err());
    }
}
