//! A FUSE passthrough filesystem whose reads and writes fail with EIO on demand (the script
//! `eio_fs.py` next to this file: fusepy over libfuse2, installed by `.ci/deps test`), for a
//! disk tier on a failing disk. Needs root and /dev/fuse ([`EioFs::unavailable`] says why a
//! test cannot run). Unmounted on drop, also when the test panics; drop it after the edge
//! using it (declare it first).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

/// The Python that has Debian's `python3-fusepy` (not a pyenv or venv `python3` on `PATH`).
const PYTHON: &str = "/usr/bin/python3";

pub struct EioFs {
    /// The real folder the mount mirrors; also holds the switch file.
    backing: TempDir,
    mount: TempDir,
    child: Child,
}

impl EioFs {
    /// Why a FUSE filesystem cannot be mounted here, if it cannot: not root, no /dev/fuse, or
    /// no fusepy (`.ci/deps test` installs it).
    pub fn unavailable() -> Option<String> {
        if !Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
        {
            return Some("mounting a FUSE filesystem needs root".into());
        }
        if !Path::new("/dev/fuse").exists() {
            return Some("/dev/fuse is missing".into());
        }
        let fusepy = Command::new(PYTHON)
            .args(["-c", "import fusepy"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !fusepy {
            return Some(format!(
                "{PYTHON} cannot import fusepy (run `bash .ci/deps test`)"
            ));
        }
        None
    }

    /// Mount a new passthrough filesystem on a temp folder; its I/O works until [`Self::fail`].
    pub async fn mount() -> EioFs {
        let backing = tempfile::tempdir().unwrap();
        let mount = tempfile::tempdir().unwrap();
        std::fs::create_dir(backing.path().join("data")).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/eio_fs.py");
        let child = Command::new(PYTHON)
            .arg(script)
            .arg(backing.path().join("data"))
            .arg(mount.path())
            .arg(backing.path().join("EIO"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start eio_fs.py");
        let fs = EioFs {
            backing,
            mount,
            child,
        };
        for _ in 0..100 {
            if fs.mounted() {
                return fs;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("eio_fs.py did not mount within 5 s");
    }

    fn mounted(&self) -> bool {
        let target = self.mount.path().to_string_lossy().to_string();
        std::fs::read_to_string("/proc/self/mounts").is_ok_and(|m| {
            m.lines()
                .any(|l| l.split(' ').nth(1) == Some(target.as_str()) && l.contains("fuse"))
        })
    }

    pub fn path(&self) -> &Path {
        self.mount.path()
    }

    fn switch(&self) -> PathBuf {
        self.backing.path().join("EIO")
    }

    /// From now on every read, write, sync and allocation fails with EIO (`on`), or none.
    pub fn fail(&self, on: bool) {
        if on {
            std::fs::write(self.switch(), b"").unwrap();
        } else {
            std::fs::remove_file(self.switch()).unwrap();
        }
    }
}

impl Drop for EioFs {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.switch());
        let unmounted = Command::new("umount")
            .arg(self.mount.path())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.mount.path())
                .status();
        }
        // The unmount ends the script; if it did not, end it (our child, by its pid).
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
