//! `<cache dir>/bans.log`: the bans on disk, one JSON object per line, appended on every purge
//! (one `write` of one whole line; synced by [`super::Bans`] within a second), so a purge costs
//! the same with a million bans as with none.
//!
//! Crash safety: a line is complete only with its `\n`; a torn last line (a crash in the
//! middle of a write) is ignored on reading and dropped by the next rewrite. A complete line
//! that does not parse is damage, not a torn write, and is an error naming the file and line.
//! A rewrite (compaction) writes `bans.log.tmp`, syncs it and renames it over the log.
//!
//! An older edge kept its bans in `bans.json` (a JSON array rewritten on every purge): it is
//! read once, and removed after the first rewrite has carried its bans over.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::Ban;

pub const FILE: &str = "bans.log";
const LEGACY: &str = "bans.json";

/// The open log, positioned at its end.
pub struct Log {
    file: File,
    path: PathBuf,
    /// Complete lines in the file: what compaction compares with the live set.
    lines: usize,
}

/// What [`Log::open`] found.
pub struct Loaded {
    pub log: Log,
    pub bans: Vec<Ban>,
    /// The file needs a rewrite before appending: a torn tail, or bans from `bans.json`.
    pub dirty: bool,
}

fn damaged(path: &Path, what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}

/// The bans in a log's bytes, and whether its last line is torn.
pub fn parse(path: &Path, bytes: &[u8]) -> io::Result<(Vec<Ban>, bool)> {
    let mut bans = Vec::new();
    let mut rest = bytes;
    let mut line_no = 0;
    while let Some(end) = memchr::memchr(b'\n', rest) {
        line_no += 1;
        let line = &rest[..end];
        rest = &rest[end + 1..];
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let ban = serde_json::from_slice(line)
            .map_err(|e| damaged(path, format!("line {line_no}: {e}")))?;
        bans.push(ban);
    }
    Ok((bans, !rest.is_empty()))
}

fn line_of(ban: &Ban) -> io::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(ban).map_err(io::Error::other)?;
    line.push(b'\n');
    Ok(line)
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Log {
    /// Read `dir/bans.log` (and a `bans.json` left by an older edge); missing = no bans.
    pub fn open(dir: &Path) -> io::Result<Loaded> {
        let path = dir.join(FILE);
        let (mut bans, torn) = match std::fs::read(&path) {
            Ok(bytes) => parse(&path, &bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), false),
            Err(e) => return Err(damaged(&path, e.to_string())),
        };
        let lines = bans.len();
        let legacy = dir.join(LEGACY);
        let mut dirty = torn;
        match std::fs::read(&legacy) {
            Ok(bytes) => {
                let old: Vec<Ban> =
                    serde_json::from_slice(&bytes).map_err(|e| damaged(&legacy, e.to_string()))?;
                bans.extend(old);
                dirty = true;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(damaged(&legacy, e.to_string())),
        }
        let file = open_append(&path).map_err(|e| damaged(&path, e.to_string()))?;
        Ok(Loaded {
            log: Log { file, path, lines },
            bans,
            dirty,
        })
    }

    /// Append one ban (written, not yet synced: see [`Log::syncer`]).
    pub fn append(&mut self, ban: &Ban) -> io::Result<()> {
        let line = line_of(ban)?;
        let len = self.file.metadata()?.len();
        if let Err(e) = self.file.write_all(&line) {
            // A part of a line (disk full) would glue onto the next one: cut it off.
            let _ = self.file.set_len(len);
            return Err(e);
        }
        self.lines += 1;
        Ok(())
    }

    /// A second handle on the log, to `fdatasync` it without holding the writer's lock.
    pub fn syncer(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// Replace the file by exactly `live` (compaction), atomically.
    pub fn rewrite<'a>(&mut self, live: impl Iterator<Item = &'a Ban>) -> io::Result<()> {
        let tmp = self.path.with_extension("log.tmp");
        let mut out = io::BufWriter::new(File::create(&tmp)?);
        let mut lines = 0;
        for ban in live {
            out.write_all(&line_of(ban)?)?;
            lines += 1;
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            // The rename is durable once the folder is; and the old format can go.
            File::open(dir)?.sync_all()?;
            match std::fs::remove_file(dir.join(LEGACY)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        self.file = open_append(&self.path)?;
        self.lines = lines;
        Ok(())
    }

    pub fn lines(&self) -> usize {
        self.lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(path: &str, at_ms: u64) -> Ban {
        Ban {
            host: None,
            path: path.into(),
            exact: true,
            soft: false,
            at_ms,
        }
    }

    #[test]
    fn appends_and_reads_back_ignoring_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut loaded = Log::open(dir.path()).unwrap();
        assert!(loaded.bans.is_empty() && !loaded.dirty);
        loaded.log.append(&ban("/a", 1)).unwrap();
        loaded.log.append(&ban("/b", 2)).unwrap();
        drop(loaded);
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE))
            .unwrap();
        f.write_all(br#"{"host":null,"path":"/c","ex"#).unwrap();
        let loaded = Log::open(dir.path()).unwrap();
        assert_eq!(loaded.bans, vec![ban("/a", 1), ban("/b", 2)]);
        assert!(loaded.dirty, "a torn tail asks for a rewrite");
        assert_eq!(loaded.log.lines(), 2);
    }

    #[test]
    fn a_damaged_complete_line_is_an_error_naming_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let good = String::from_utf8(line_of(&ban("/a", 1)).unwrap()).unwrap();
        std::fs::write(dir.path().join(FILE), format!("{good}{{not json}}\n{good}")).unwrap();
        let err = Log::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("bans.log: line 2"), "{err}");
    }

    #[test]
    fn rewrite_keeps_only_the_live_set_and_takes_over_bans_json() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(LEGACY),
            serde_json::to_vec(&vec![ban("/old", 1)]).unwrap(),
        )
        .unwrap();
        let mut loaded = Log::open(dir.path()).unwrap();
        assert_eq!(loaded.bans, vec![ban("/old", 1)]);
        assert!(loaded.dirty);
        let live = [ban("/old", 1), ban("/new", 5)];
        loaded.log.rewrite(live.iter()).unwrap();
        loaded.log.append(&ban("/after", 6)).unwrap();
        assert_eq!(loaded.log.lines(), 3);
        assert!(!dir.path().join(LEGACY).exists());
        let again = Log::open(dir.path()).unwrap();
        assert_eq!(
            again.bans,
            vec![ban("/old", 1), ban("/new", 5), ban("/after", 6)]
        );
        assert!(!again.dirty);
    }
}
