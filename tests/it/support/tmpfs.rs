//! A small tmpfs of its own, for a disk tier that runs out of space (tests run as root, as CI
//! does). Unmounted on drop, also when the test panics; drop it after the edge using it (declare
//! it first), or the unmount finds the filesystem busy and falls back to a lazy one.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

pub struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    /// Mount a tmpfs of `size` bytes on a new temp folder.
    pub fn mount(size: u64) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount -t tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes free on the filesystem now.
    pub fn available(&self) -> u64 {
        fs4::available_space(self.path()).expect("statvfs of the tmpfs")
    }

    /// Write a file that leaves `leave` bytes free; returns its path (remove it to free the space).
    pub fn fill_but(&self, leave: u64) -> PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let want = self.available().saturating_sub(leave);
        let chunk = vec![0x5au8; 1 << 20];
        let mut written = 0u64;
        while written < want {
            let n = chunk.len().min((want - written) as usize);
            match file.write_all(&chunk[..n]) {
                Ok(()) => written += n as u64,
                // The edge took space meanwhile: the filesystem is as full as it gets.
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        // A full filesystem may refuse the sync's metadata too; the bytes are written.
        let _ = file.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}
