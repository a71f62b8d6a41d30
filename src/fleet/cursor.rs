//! `<cache dir>/fleet.json`: how far this edge has applied the fleet's bans, and who it is.
//!
//! `{"fleet": "<the database's fleet id>", "last": <last applied id>, "edge": <this edge's id>}`.
//! A restart resumes after `last`; a cursor of another database (another fleet id) starts
//! from 0. `edge` marks the rows this edge wrote (it applied them when it accepted them) and
//! stays the same across restarts. Written by rename after each applied batch, not synced:
//! a lost or damaged file only means applying some bans again, which is harmless (a ban
//! applied twice removes nothing more than once, bar objects fetched in between).

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const FILE: &str = "fleet.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub fleet: String,
    pub last: i64,
    pub edge: i64,
}

impl Cursor {
    /// A new edge's cursor: nothing applied, a fresh identity from `seed`.
    pub fn fresh(seed: u64) -> Cursor {
        Cursor {
            fleet: String::new(),
            last: 0,
            // Positive, so it never collides with a sentinel in SQL.
            edge: (seed >> 1) as i64,
        }
    }

    /// Read `dir/fleet.json`; missing or unreadable = [`Cursor::fresh`] (logged).
    pub fn load(dir: &Path, seed: u64) -> Cursor {
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(file = %path.display(), error = %e, "fleet: unreadable cursor; applying the fleet's bans from the start");
                Cursor::fresh(seed)
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Cursor::fresh(seed),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "fleet: unreadable cursor; applying the fleet's bans from the start");
                Cursor::fresh(seed)
            }
        }
    }

    /// Joined the database named `fleet`: a cursor of another one starts over (its ids mean
    /// nothing here). Returns whether it was reset.
    pub fn join(&mut self, fleet: &str) -> bool {
        if self.fleet == fleet {
            return false;
        }
        self.fleet = fleet.to_string();
        self.last = 0;
        true
    }

    /// Write it to `dir/fleet.json` (through a temporary file and a rename).
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let path = dir.join(FILE);
        let tmp: PathBuf = dir.join(format!("{FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec(self).map_err(io::Error::other)?)?;
        std::fs::rename(&tmp, &path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_fresh_when_missing_or_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = Cursor::load(dir.path(), 42);
        assert_eq!(fresh, Cursor::fresh(42));
        assert!(fresh.edge > 0);
        let c = Cursor {
            fleet: "f1".into(),
            last: 17,
            edge: 5,
        };
        c.save(dir.path()).unwrap();
        assert_eq!(Cursor::load(dir.path(), 1), c);
        std::fs::write(dir.path().join(FILE), b"{\"fleet\":").unwrap();
        assert_eq!(Cursor::load(dir.path(), 9), Cursor::fresh(9));
    }

    #[test]
    fn another_database_starts_over_keeping_the_identity() {
        let mut c = Cursor {
            fleet: "f1".into(),
            last: 17,
            edge: 5,
        };
        assert!(!c.join("f1"));
        assert_eq!(c.last, 17);
        assert!(c.join("f2"));
        assert_eq!((c.fleet.as_str(), c.last, c.edge), ("f2", 0, 5));
    }
}
