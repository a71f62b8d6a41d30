//! The GeoIP database: a MaxMind DB (`.mmdb`) Country or City file, read into memory.
//!
//! The file is read with `Reader::open_readfile` (a copy in memory: ~10 MB for GeoLite2
//! Country, ~60 MB for City) rather than memory-mapped: maxminddb's `open_mmap` is an
//! `unsafe fn` (a file truncated under the mapping is undefined behaviour) and this crate
//! forbids `unsafe`. Replacing the file is therefore always safe: the old copy stays in
//! memory until the new one has loaded.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use maxminddb::{MaxMindDbError, Reader};
use serde::Deserialize;

use crate::stamp::FileStamp;
use std::sync::Mutex;

/// Why a GeoIP database cannot be used. The message starts with the file.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("{}: cannot read the GeoIP database: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a usable MaxMind DB (.mmdb) file: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
}

impl GeoError {
    pub fn path(&self) -> &Path {
        match self {
            GeoError::Io { path, .. } | GeoError::Invalid { path, .. } => path,
        }
    }
}

/// An ISO 3166-1 alpha-2 country code, upper case (`GB`). Copy, no allocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Two ASCII letters, any case; anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => Some(CountryCode([
                a.to_ascii_uppercase(),
                b.to_ascii_uppercase(),
            ])),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> [u8; 2] {
        self.0
    }

    pub fn as_str(&self) -> &str {
        // Always two ASCII letters (see `parse`).
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountryCode({})", self.as_str())
    }
}

impl AsRef<str> for CountryCode {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// The part of a GeoLite2/GeoIP2 Country or City record we read (strings borrowed from the
/// database, nothing else decoded).
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    country: Option<Place<'a>>,
    #[serde(borrow)]
    registered_country: Option<Place<'a>>,
}

#[derive(Deserialize)]
struct Place<'a> {
    #[serde(borrow)]
    iso_code: Option<&'a str>,
}

/// The stamp of the database file, as a [`GeoError`] naming the file when it cannot be read.
fn stamp_of(path: &Path) -> Result<FileStamp, GeoError> {
    FileStamp::of(path).map_err(|source| GeoError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// An opened, verified GeoIP database.
pub struct Db {
    reader: Reader<Vec<u8>>,
    path: PathBuf,
    stamp: FileStamp,
}

impl Db {
    /// Opens and fully verifies `path` (search tree, data section and metadata, via
    /// maxminddb's `verify`): a corrupt, truncated, empty or non-mmdb file is an error that
    /// names the file. Verification walks the whole file: milliseconds for a Country
    /// database, up to a few seconds for City; run reloads off the request path.
    pub fn open(path: &Path) -> Result<Db, GeoError> {
        let stamp = stamp_of(path)?;
        let bytes = std::fs::read(path).map_err(|source| GeoError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Db::from_bytes(path, bytes, stamp)
    }

    fn from_bytes(path: &Path, bytes: Vec<u8>, stamp: FileStamp) -> Result<Db, GeoError> {
        let invalid = |reason: String| GeoError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        if bytes.is_empty() {
            return Err(invalid("the file is empty".into()));
        }
        let reader = Reader::from_source(bytes).map_err(|e| invalid(describe(&e)))?;
        reader.verify().map_err(|e| invalid(describe(&e)))?;
        let meta = reader.metadata();
        if meta.ip_version != 6 {
            tracing::warn!(
                geoip = %path.display(),
                "IPv4-only GeoIP database: IPv6 clients will have no country"
            );
        }
        let kind = meta.database_type.to_ascii_lowercase();
        if !(kind.contains("country") || kind.contains("city") || kind.contains("enterprise")) {
            tracing::warn!(
                geoip = %path.display(),
                database_type = %meta.database_type,
                "GeoIP database is not a Country/City database: lookups may find no country"
            );
        }
        Ok(Db {
            reader,
            path: path.to_path_buf(),
            stamp,
        })
    }

    /// The country of `ip`: `country.iso_code`, else `registered_country.iso_code`.
    /// IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is looked up as IPv4. `None`: not in the
    /// database, no country in the record, or a lookup error (logged at debug level).
    pub fn lookup(&self, ip: IpAddr) -> Option<CountryCode> {
        let ip = ip.to_canonical();
        if ip.is_ipv6() && self.reader.metadata().ip_version == 4 {
            return None;
        }
        let result = match self.reader.lookup(ip) {
            Ok(result) => result,
            Err(e) => {
                tracing::debug!(%ip, "GeoIP lookup failed: {e}");
                return None;
            }
        };
        let record: Record<'_> = match result.decode() {
            Ok(Some(record)) => record,
            Ok(None) => return None,
            Err(e) => {
                tracing::debug!(%ip, "GeoIP record not decodable: {e}");
                return None;
            }
        };
        let iso =
            |place: Option<Place<'_>>| place.and_then(|p| p.iso_code).and_then(CountryCode::parse);
        iso(record.country).or_else(|| iso(record.registered_country))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `database_type` from the metadata (`GeoLite2-Country`, `GeoIP2-City`, ...).
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// Build time of the database, seconds since the Unix epoch.
    pub fn build_epoch(&self) -> u64 {
        self.reader.metadata().build_epoch
    }
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.path)
            .field("database_type", &self.database_type())
            .field("build_epoch", &self.build_epoch())
            .finish()
    }
}

fn describe(e: &MaxMindDbError) -> String {
    match e {
        MaxMindDbError::InvalidDatabase { message, .. }
            if message.contains("metadata") || message.contains("Metadata") =>
        {
            format!("{e} (no MaxMind DB metadata: not an .mmdb file, or truncated)")
        }
        _ => e.to_string(),
    }
}

/// The database in service, swappable at run time. Lookups are lock-free.
pub struct Geo {
    path: PathBuf,
    current: ArcSwap<Db>,
    /// The last file version a reload was attempted for (successful or not), so a bad file
    /// is reported once, not at every poll.
    /// `None`: the file was missing at the last check.
    attempted: Mutex<Option<FileStamp>>,
}

impl Geo {
    /// Opens the database at `path` (see [`Db::open`]).
    pub fn open(path: impl Into<PathBuf>) -> Result<Geo, GeoError> {
        let path = path.into();
        let db = Db::open(&path)?;
        Ok(Geo {
            attempted: Mutex::new(Some(db.stamp)),
            current: ArcSwap::from_pointee(db),
            path,
        })
    }

    pub fn lookup(&self, ip: IpAddr) -> Option<CountryCode> {
        self.current.load().lookup(ip)
    }

    /// The database in service now.
    pub fn db(&self) -> Arc<Db> {
        self.current.load_full()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// For a background poll: if the file's (len, mtime, inode) differ from the version last
    /// tried, opens it and swaps it in. `Ok(true)`: reloaded; `Ok(false)`: unchanged. On
    /// error the old database stays in service; the same bad version is not retried (nor
    /// reported again) until the file changes again. A missing file is an error each time
    /// it is first noticed missing.
    pub fn reload_if_changed(&self) -> Result<bool, GeoError> {
        let mut attempted = self.attempted.lock().unwrap_or_else(|p| p.into_inner());
        let stamp = match stamp_of(&self.path) {
            Ok(stamp) => stamp,
            // Missing: report once, then notice the file's return as a change.
            Err(e) => {
                return if attempted.take().is_some() {
                    Err(e)
                } else {
                    Ok(false)
                }
            }
        };
        if *attempted == Some(stamp) {
            return Ok(false);
        }
        *attempted = Some(stamp);
        drop(attempted);
        self.load_stamped(stamp).map(|()| true)
    }

    /// Re-reads the file now, changed or not (e.g. on SIGHUP). On error the old database
    /// stays in service.
    pub fn reload(&self) -> Result<(), GeoError> {
        let stamp = stamp_of(&self.path)?;
        *self.attempted.lock().unwrap_or_else(|p| p.into_inner()) = Some(stamp);
        self.load_stamped(stamp)
    }

    fn load_stamped(&self, stamp: FileStamp) -> Result<(), GeoError> {
        let bytes = std::fs::read(&self.path).map_err(|source| GeoError::Io {
            path: self.path.clone(),
            source,
        })?;
        let db = Db::from_bytes(&self.path, bytes, stamp)?;
        self.current.store(Arc::new(db));
        Ok(())
    }
}

impl fmt::Debug for Geo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Geo")
            .field("db", &*self.current.load())
            .finish()
    }
}
