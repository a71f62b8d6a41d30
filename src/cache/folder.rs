//! The cache folder's lock: one process at a time writes a folder (foyer does not lock it, and
//! two writers would corrupt each other). The lock is an exclusive `flock` on `dir/LOCK`, whose
//! content is the holder's process id — what `edge serve --upgrade` reads to find the running
//! edge it takes over from (as nginx's pid file).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::OpenError;

/// How often a process waiting for the folder tries the lock again.
const RETRY: Duration = Duration::from_millis(20);

/// The lock file of the cache folder `dir`.
pub fn lock_path(dir: &Path) -> std::path::PathBuf {
    dir.join("LOCK")
}

/// Take the exclusive lock on `dir/LOCK` and write this process's id into it. `wait`: how long
/// to keep trying while another process holds it (an upgrade waits for the old process to
/// flush and close its cache); zero fails at once.
pub fn lock(dir: &Path, wait: Duration) -> Result<File, OpenError> {
    let shown = dir.display().to_string();
    std::fs::create_dir_all(dir).map_err(|e| OpenError::Dir(shown.clone(), e))?;
    let mut file = File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(lock_path(dir))
        .map_err(|e| OpenError::Dir(shown.clone(), e))?;
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(RETRY)
            }
            Err(std::fs::TryLockError::WouldBlock) if wait.is_zero() => {
                return Err(OpenError::Locked(shown))
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(OpenError::StillLocked(shown, wait))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(OpenError::Dir(shown, e)),
        }
    }
    // The pid is a courtesy for operators and `--upgrade`; the lock itself is the flock.
    let pid = std::process::id().to_string();
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(pid.as_bytes()));
    if let Err(e) = written {
        tracing::warn!(error = %e, "cannot write the pid into the cache folder's LOCK file");
    }
    Ok(file)
}

/// The process id of the edge holding `dir`'s lock; `None` when nobody holds it (or the file
/// names no process).
pub fn holder(dir: &Path) -> Option<u32> {
    let mut file = File::options().read(true).open(lock_path(dir)).ok()?;
    match file.try_lock_shared() {
        // Free: nobody runs on this folder (the content is a stopped process's id).
        Ok(()) => None,
        Err(_) => {
            let mut text = String::new();
            file.read_to_string(&mut text).ok()?;
            parse_pid(&text)
        }
    }
}

fn parse_pid(text: &str) -> Option<u32> {
    text.trim().parse().ok().filter(|&p| p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_dir_is_locked_by_one_process() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock(dir.path(), Duration::ZERO).unwrap();
        assert!(matches!(
            lock(dir.path(), Duration::ZERO),
            Err(OpenError::Locked(_))
        ));
        drop(first);
        assert!(lock(dir.path(), Duration::ZERO).is_ok());
    }

    #[test]
    fn the_holder_is_named_while_the_lock_is_held() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(holder(dir.path()), None, "no LOCK file");
        let held = lock(dir.path(), Duration::ZERO).unwrap();
        assert_eq!(holder(dir.path()), Some(std::process::id()));
        drop(held);
        assert_eq!(holder(dir.path()), None, "a stopped holder is no holder");
    }

    #[test]
    fn a_waiting_lock_gets_the_folder_once_released_and_gives_up_after_its_wait() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path(), Duration::ZERO).unwrap();
        let start = Instant::now();
        assert!(matches!(
            lock(dir.path(), Duration::from_millis(100)),
            Err(OpenError::StillLocked(_, _))
        ));
        assert!(start.elapsed() >= Duration::from_millis(100));
        let path = dir.path().to_path_buf();
        let waiter = std::thread::spawn(move || lock(&path, Duration::from_secs(5)).is_ok());
        std::thread::sleep(Duration::from_millis(100));
        drop(held);
        assert!(waiter.join().unwrap(), "the waiter takes the released lock");
    }

    #[test]
    fn pids() {
        assert_eq!(parse_pid("1234\n"), Some(1234));
        assert_eq!(parse_pid(""), None);
        assert_eq!(parse_pid("0"), None);
        assert_eq!(parse_pid("x"), None);
    }
}
