//! Purges as bans: a purge records "objects stored before time T under this host/path
//! (prefix) are invalid", checked at lookup against the object's stored time. A prefix purge
//! is therefore O(1) however many objects it covers, and nothing is scanned.
//!
//! Bans are kept in `<cache dir>/bans.json` (rewritten atomically on every purge), so purges
//! survive a restart. A ban older than `max_ttl` + `max_ttl` (the longest an object can live,
//! fresh and stale) can no longer match anything and is dropped.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

/// One purge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ban {
    /// Host the ban applies to; `None` = every host.
    pub host: Option<String>,
    /// Path prefix (a purge of one URL is an exact path).
    pub path: String,
    pub exact: bool,
    /// Soft: mark stale (revalidate, a 304 keeps the body) instead of removing.
    pub soft: bool,
    /// When the purge happened, in milliseconds since the epoch.
    pub at_ms: u64,
}

impl Ban {
    fn matches(&self, host: &str, path: &str) -> bool {
        if self.host.as_deref().is_some_and(|h| h != host) {
            return false;
        }
        if self.exact {
            path == self.path
        } else {
            path.starts_with(&self.path)
        }
    }
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The ban list: lock-free reads on the request path, serialized writes.
pub struct Bans {
    list: ArcSwap<Vec<Ban>>,
    file: PathBuf,
    keep_for: Duration,
    write: Mutex<()>,
}

/// What a lookup should do with an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Revalidate (soft purge).
    Expire,
    /// Refetch (hard purge).
    Remove,
}

impl Bans {
    /// Load `dir/bans.json` (missing = no bans; unreadable = an error naming the file).
    pub fn load(dir: &Path, keep_for: Duration) -> std::io::Result<Bans> {
        let file = dir.join("bans.json");
        let list: Vec<Ban> = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", file.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let bans = Bans { list: ArcSwap::from_pointee(list), file, keep_for, write: Mutex::new(()) };
        Ok(bans)
    }

    /// Record a purge now; persists before returning.
    pub fn add(&self, host: Option<String>, path: String, exact: bool, soft: bool) -> std::io::Result<Ban> {
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let now = SystemTime::now();
        let ban = Ban { host, path, exact, soft, at_ms: ms(now) };
        let horizon = ms(now.checked_sub(self.keep_for).unwrap_or(UNIX_EPOCH));
        let mut list: Vec<Ban> = self.list.load().iter().filter(|b| b.at_ms >= horizon).cloned().collect();
        list.push(ban.clone());
        let tmp = self.file.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&list).map_err(std::io::Error::other)?)?;
        std::fs::rename(&tmp, &self.file)?;
        self.list.store(std::sync::Arc::new(list));
        Ok(ban)
    }

    /// The verdict for an object of `host`/`path` last stored (or revalidated) at `stored`.
    pub fn verdict(&self, host: &str, path: &str, stored: SystemTime) -> Verdict {
        let list = self.list.load();
        if list.is_empty() {
            return Verdict::Keep;
        }
        let stored = ms(stored);
        let mut verdict = Verdict::Keep;
        for b in list.iter().filter(|b| b.at_ms >= stored && b.matches(host, path)) {
            if !b.soft {
                return Verdict::Remove;
            }
            verdict = Verdict::Expire;
        }
        verdict
    }

    pub fn len(&self) -> usize {
        self.list.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_exact_host_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let bans = Bans::load(dir.path(), Duration::from_secs(3600)).unwrap();
        let before = SystemTime::now() - Duration::from_secs(5);
        bans.add(None, "/v/title/".into(), false, false).unwrap();
        bans.add(Some("a.example".into()), "/v/other/x.ts".into(), true, true).unwrap();
        assert_eq!(bans.verdict("any", "/v/title/seg1.ts", before), Verdict::Remove);
        assert_eq!(bans.verdict("any", "/v/title2/seg1.ts", before), Verdict::Keep);
        assert_eq!(bans.verdict("a.example", "/v/other/x.ts", before), Verdict::Expire);
        assert_eq!(bans.verdict("b.example", "/v/other/x.ts", before), Verdict::Keep);
        assert_eq!(bans.verdict("a.example", "/v/other/x.ts2", before), Verdict::Keep);
        // Objects stored after the purge are not affected.
        let after = SystemTime::now() + Duration::from_secs(1);
        assert_eq!(bans.verdict("any", "/v/title/seg1.ts", after), Verdict::Keep);
    }

    #[test]
    fn bans_survive_reload_and_old_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        {
            let bans = Bans::load(dir.path(), Duration::from_secs(3600)).unwrap();
            bans.add(None, "/v/".into(), false, false).unwrap();
        }
        let bans = Bans::load(dir.path(), Duration::ZERO).unwrap();
        assert_eq!(bans.len(), 1);
        assert_eq!(bans.verdict("h", "/v/a", SystemTime::now() - Duration::from_secs(1)), Verdict::Remove);
        std::thread::sleep(Duration::from_millis(5));
        bans.add(None, "/w/".into(), false, false).unwrap();
        assert_eq!(bans.len(), 1, "with keep_for = 0 the older ban is dropped on the next write");
    }

    #[test]
    fn a_damaged_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bans.json"), b"{not json").unwrap();
        let err = Bans::load(dir.path(), Duration::from_secs(1)).err().unwrap();
        assert!(err.to_string().contains("bans.json"), "{err}");
    }
}
