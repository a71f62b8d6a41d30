//! SQLite implementation of [`Store`] (bundled SQLite, FTS5 for search).
//!
//! - WAL journal, `synchronous = NORMAL` (a committed transaction survives a crash of the
//!   process; a power loss can lose the last transactions but never corrupts the file),
//!   `foreign_keys = ON`, `busy_timeout` 5 s (other processes on the same file wait instead of
//!   failing).
//! - One writer connection behind a mutex (writes are serialised here, so they never contend
//!   inside the process) and a small pool of reader connections (WAL readers run concurrently
//!   with the writer).
//! - The database holds password hashes, so its file is created 0600 before SQLite opens it
//!   (SQLite gives the `-wal` and `-shm` files the database file's mode); an existing wider
//!   file and its side files are narrowed to 0600 at open.
//! - Every call runs on tokio's blocking pool (`spawn_blocking`), never on the async workers.
//! - Migrations (`src/control/migrations/NNNN_name.sql`, compiled in) are applied in order at
//!   open, each in its own `IMMEDIATE` transaction together with its `schema_version` row. A
//!   database whose version is newer than this build knows is refused.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{
    params, Connection, ErrorCode, OpenFlags, OptionalExtension, Row, TransactionBehavior,
};

use super::{Credentials, PutMode, PutOutcome, SessionLookup, Store, StoreError};
use crate::control::model::{
    ContinueItem, Maturity, NewProfile, Page, Profile, Progress, Rating, Registration, Rendition,
    Tier, Title, User, WatchlistAdd, WatchlistEntry,
};

/// One schema migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    /// The file name without `.sql`.
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order. The file names must be `{version:04}_{name}.sql`.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_initial",
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "0002_title_search",
        sql: include_str!("../migrations/0002_title_search.sql"),
    },
    Migration {
        version: 3,
        name: "0003_watchlist",
        sql: include_str!("../migrations/0003_watchlist.sql"),
    },
];

/// The schema version this build migrates to.
pub fn latest_version() -> u32 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

/// Creates `path` empty with mode 0600 if it does not exist (SQLite treats an empty file as a
/// new database), and narrows it and its `-wal`/`-shm` files to 0600 if they are wider.
fn make_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    let mut side = path.as_os_str().to_owned();
    side.push("-wal");
    let wal = PathBuf::from(&side);
    let mut side = path.as_os_str().to_owned();
    side.push("-shm");
    let shm = PathBuf::from(&side);
    for p in [path, wal.as_path(), shm.as_path()] {
        match std::fs::metadata(p) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))?
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_IDLE_READERS: usize = 8;

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        backend(e)
    }
}

fn is_constraint(e: &rusqlite::Error, extended: i32) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == ErrorCode::ConstraintViolation && f.extended_code == extended)
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    is_constraint(e, rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
        || is_constraint(e, rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

fn is_fk_violation(e: &rusqlite::Error) -> bool {
    is_constraint(e, rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(BUSY_TIMEOUT)?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.pragma_update(None, "trusted_schema", "OFF")?;
    Ok(c)
}

/// Applies pending migrations; returns the resulting version.
fn migrate(c: &mut Connection, now: i64) -> Result<u32, StoreError> {
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
            version    INTEGER PRIMARY KEY,
            name       TEXT    NOT NULL,
            applied_at INTEGER NOT NULL
        )",
    )?;
    let latest = latest_version();
    let mut current = 0;
    for m in MIGRATIONS {
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let v: i64 = tx.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_version",
            [],
            |r| r.get(0),
        )?;
        if v > i64::from(latest) {
            return Err(StoreError::Backend(format!(
                "database schema version {v} is newer than this build supports ({latest})"
            )));
        }
        current = u32::try_from(v).unwrap_or(0);
        if i64::from(m.version) <= v {
            continue;
        }
        tx.execute_batch(m.sql)
            .map_err(|e| StoreError::Backend(format!("migration {}: {e}", m.name)))?;
        tx.execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![m.version, m.name, now],
        )?;
        tx.commit()?;
        current = m.version;
        tracing::info!(
            version = m.version,
            name = m.name,
            "control: applied migration"
        );
    }
    Ok(current)
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a half-done transaction behind (rusqlite rolls
    // back on drop), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `path`, switches it to WAL and migrates it.
    /// Blocking: call from a blocking context (or use [`SqliteStore::open_async`]).
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        make_private(path)
            .map_err(|e| StoreError::Backend(format!("cannot make the database private: {e}")))?;
        let mut writer = connect(path)?;
        let mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "could not switch the database to WAL (journal_mode = {mode})"
            )));
        }
        migrate(&mut writer, now_unix())?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
            }),
        })
    }

    /// [`SqliteStore::open`] on the blocking pool.
    pub async fn open_async(path: PathBuf) -> Result<SqliteStore, StoreError> {
        tokio::task::spawn_blocking(move || SqliteStore::open(&path))
            .await
            .map_err(|e| StoreError::Backend(format!("open task failed: {e}")))?
    }

    /// The applied schema version.
    pub async fn schema_version(&self) -> Result<u32, StoreError> {
        self.read(|c| {
            let v: i64 = c.query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                [],
                |r| r.get(0),
            )?;
            Ok(u32::try_from(v).unwrap_or(0))
        })
        .await
    }

    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = lock(&inner.writer);
            f(&mut c)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = lock(&inner.readers).pop();
            let mut c = match pooled {
                Some(c) => c,
                None => connect(&inner.path)?,
            };
            let r = f(&mut c);
            let mut pool = lock(&inner.readers);
            if pool.len() < MAX_IDLE_READERS {
                pool.push(c);
            }
            r
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}

fn corrupt(what: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnName(format!("corrupt {what}"))
}

fn user_from(r: &Row<'_>, off: usize) -> rusqlite::Result<User> {
    let tier: String = r.get(off + 2)?;
    Ok(User {
        id: r.get(off)?,
        email: r.get(off + 1)?,
        tier: Tier::parse(&tier).ok_or_else(|| corrupt("tier"))?,
        created_at: r.get(off + 3)?,
    })
}

const USER_COLS: &str = "u.id, u.email, u.tier, u.created_at";
const PROFILE_COLS: &str = "id, user_id, display_name, language, maturity, created_at";

fn profile_from(r: &Row<'_>) -> rusqlite::Result<Profile> {
    let m: String = r.get(4)?;
    Ok(Profile {
        id: r.get(0)?,
        user_id: r.get(1)?,
        display_name: r.get(2)?,
        language: r.get(3)?,
        maturity: Maturity::parse(&m).ok_or_else(|| corrupt("maturity"))?,
        created_at: r.get(5)?,
    })
}

const TITLE_COLS: &str = "t.id, t.name, t.description, t.tags, t.rating, t.duration_seconds, \
     t.origin_path, t.acl_path, t.renditions, t.countries, t.available_from, t.available_until";

fn json_col<T: serde::de::DeserializeOwned>(
    r: &Row<'_>,
    i: usize,
    what: &str,
) -> rusqlite::Result<T> {
    let s: String = r.get(i)?;
    serde_json::from_str(&s).map_err(|_| corrupt(what))
}

fn title_from(r: &Row<'_>) -> rusqlite::Result<Title> {
    let rating: String = r.get(4)?;
    let duration: i64 = r.get(5)?;
    let renditions: Vec<Rendition> = json_col(r, 8, "renditions")?;
    Ok(Title {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        tags: json_col(r, 3, "tags")?,
        rating: Rating::parse(&rating).ok_or_else(|| corrupt("rating"))?,
        duration_seconds: u32::try_from(duration).map_err(|_| corrupt("duration"))?,
        origin_path: r.get(6)?,
        acl_path: r.get(7)?,
        renditions,
        countries: json_col(r, 9, "countries")?,
        available_from: r.get(10)?,
        available_until: r.get(11)?,
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("serialise: {e}")))
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn count(c: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<u64, StoreError> {
    let n: i64 = c.prepare_cached(sql)?.query_row(p, |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_user(
        &self,
        reg: &Registration,
        password_hash: String,
        now: i64,
    ) -> Result<(User, Profile), StoreError> {
        let reg = reg.clone();
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let inserted = tx.execute(
                "INSERT INTO users (email, password_hash, tier, created_at) VALUES (?1, ?2, 'basic', ?3)",
                params![reg.email, password_hash, now],
            );
            match inserted {
                Err(e) if is_unique_violation(&e) => return Err(StoreError::Conflict("email")),
                r => r?,
            };
            let user_id = tx.last_insert_rowid();
            let p = &reg.first_profile;
            tx.execute(
                "INSERT INTO profiles (user_id, display_name, language, maturity, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![user_id, p.display_name, p.language, p.maturity.as_str(), now],
            )?;
            let profile_id = tx.last_insert_rowid();
            tx.commit()?;
            Ok((
                User::registered(user_id, &reg.email, now),
                p.stored(profile_id, user_id, now),
            ))
        })
        .await
    }

    async fn credentials(&self, email: &str) -> Result<Option<Credentials>, StoreError> {
        let email = email.to_string();
        self.read(move |c| {
            let sql =
                format!("SELECT {USER_COLS}, u.password_hash FROM users u WHERE u.email = ?1");
            Ok(c.prepare_cached(&sql)?
                .query_row([email], |r| {
                    Ok(Credentials {
                        user: user_from(r, 0)?,
                        password_hash: r.get(4)?,
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn user(&self, id: i64) -> Result<Option<User>, StoreError> {
        self.read(move |c| {
            let sql = format!("SELECT {USER_COLS} FROM users u WHERE u.id = ?1");
            Ok(c.prepare_cached(&sql)?
                .query_row([id], |r| user_from(r, 0))
                .optional()?)
        })
        .await
    }

    async fn set_tier(&self, user_id: i64, tier: Tier) -> Result<Option<User>, StoreError> {
        self.write(move |c| {
            Ok(c.prepare_cached(
                "UPDATE users SET tier = ?2 WHERE id = ?1 RETURNING id, email, tier, created_at",
            )?
            .query_row(params![user_id, tier.as_str()], |r| user_from(r, 0))
            .optional()?)
        })
        .await
    }

    async fn create_session(
        &self,
        token_hash: [u8; 32],
        user_id: i64,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.write(move |c| {
            match c.execute(
                "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![&token_hash[..], user_id, now, expires_at],
            ) {
                Err(e) if is_fk_violation(&e) => Err(StoreError::NotFound("user")),
                Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict("session")),
                r => r.map(|_| ()).map_err(backend),
            }
        })
        .await
    }

    async fn session(&self, token_hash: [u8; 32], now: i64) -> Result<SessionLookup, StoreError> {
        self.read(move |c| {
            let sql = format!(
                "SELECT s.expires_at, {USER_COLS} FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = ?1"
            );
            let row = c
                .prepare_cached(&sql)?
                .query_row([&token_hash[..]], |r| {
                    Ok((r.get::<_, i64>(0)?, user_from(r, 1)?))
                })
                .optional()?;
            Ok(match row {
                None => SessionLookup::Unknown,
                Some((exp, _)) if exp <= now => SessionLookup::Expired,
                Some((_, user)) => SessionLookup::Valid(user),
            })
        })
        .await
    }

    async fn delete_session(&self, token_hash: [u8; 32]) -> Result<bool, StoreError> {
        self.write(move |c| {
            Ok(c.execute(
                "DELETE FROM sessions WHERE token_hash = ?1",
                [&token_hash[..]],
            )? > 0)
        })
        .await
    }

    async fn purge_sessions(&self, now: i64) -> Result<u64, StoreError> {
        self.write(move |c| {
            let n = c.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?;
            Ok(n as u64)
        })
        .await
    }

    async fn create_profile(
        &self,
        user_id: i64,
        p: &NewProfile,
        max: u32,
        now: i64,
    ) -> Result<Profile, StoreError> {
        let p = p.clone();
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = count(
                &tx,
                "SELECT COUNT(*) FROM profiles WHERE user_id = ?1",
                [user_id],
            )?;
            if n >= u64::from(max) {
                return Err(StoreError::LimitReached("profiles"));
            }
            match tx.execute(
                "INSERT INTO profiles (user_id, display_name, language, maturity, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    user_id,
                    p.display_name,
                    p.language,
                    p.maturity.as_str(),
                    now
                ],
            ) {
                Err(e) if is_fk_violation(&e) => return Err(StoreError::NotFound("user")),
                r => r?,
            };
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok(p.stored(id, user_id, now))
        })
        .await
    }

    async fn profiles(&self, user_id: i64) -> Result<Vec<Profile>, StoreError> {
        self.read(move |c| {
            let sql = format!("SELECT {PROFILE_COLS} FROM profiles WHERE user_id = ?1 ORDER BY id");
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map([user_id], profile_from)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn profile(&self, user_id: i64, id: Option<i64>) -> Result<Option<Profile>, StoreError> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {PROFILE_COLS} FROM profiles WHERE user_id = ?1 AND (?2 IS NULL OR id = ?2)
                 ORDER BY id LIMIT 1"
            );
            Ok(c.prepare_cached(&sql)?
                .query_row(params![user_id, id], profile_from)
                .optional()?)
        })
        .await
    }

    async fn put_title(
        &self,
        t: &Title,
        mode: PutMode,
        now: i64,
    ) -> Result<PutOutcome, StoreError> {
        let t = t.clone();
        let tags = to_json(&t.tags)?;
        let renditions = to_json(&t.renditions)?;
        let countries = to_json(&t.countries)?;
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let exists = tx
                .prepare_cached("SELECT 1 FROM titles WHERE id = ?1")?
                .exists([&t.id])?;
            let outcome =
                match (exists, mode) {
                    (true, PutMode::Create) => return Err(StoreError::Conflict("title")),
                    (true, PutMode::IfAbsent) => return Ok(PutOutcome::Kept),
                    (true, PutMode::Upsert) => {
                        tx.execute(
                            "UPDATE titles SET name = ?2, description = ?3, tags = ?4, rating = ?5,
                            duration_seconds = ?6, origin_path = ?7, acl_path = ?8, renditions = ?9,
                            countries = ?10, available_from = ?11, available_until = ?12,
                            updated_at = ?13
                         WHERE id = ?1",
                            params![
                                t.id,
                                t.name,
                                t.description,
                                tags,
                                t.rating.as_str(),
                                t.duration_seconds,
                                t.origin_path,
                                t.acl_path,
                                renditions,
                                countries,
                                t.available_from,
                                t.available_until,
                                now
                            ],
                        )?;
                        PutOutcome::Replaced
                    }
                    (false, _) => {
                        tx.execute(
                        "INSERT INTO titles (id, name, description, tags, rating, duration_seconds,
                            origin_path, acl_path, renditions, countries, available_from,
                            available_until, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)",
                        params![
                            t.id, t.name, t.description, tags, t.rating.as_str(),
                            t.duration_seconds, t.origin_path, t.acl_path, renditions, countries,
                            t.available_from, t.available_until, now
                        ],
                    )?;
                        PutOutcome::Created
                    }
                };
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn delete_title(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.write(move |c| Ok(c.execute("DELETE FROM titles WHERE id = ?1", [id])? > 0))
            .await
    }

    async fn title(&self, id: &str) -> Result<Option<Title>, StoreError> {
        let id = id.to_string();
        self.read(move |c| {
            let sql = format!("SELECT {TITLE_COLS} FROM titles t WHERE t.id = ?1");
            Ok(c.prepare_cached(&sql)?
                .query_row([id], title_from)
                .optional()?)
        })
        .await
    }

    async fn list_titles(&self, offset: u64, limit: u64) -> Result<Page<Title>, StoreError> {
        self.read(move |c| {
            let tx = c.transaction()?;
            let total = count(&tx, "SELECT COUNT(*) FROM titles", [])?;
            let sql = format!(
                "SELECT {TITLE_COLS} FROM titles t ORDER BY t.name COLLATE NOCASE, t.id
                 LIMIT ?1 OFFSET ?2"
            );
            let items = {
                let mut st = tx.prepare_cached(&sql)?;
                let rows = st.query_map([to_i64(limit), to_i64(offset)], title_from)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            tx.commit()?;
            Ok(Page { items, total })
        })
        .await
    }

    async fn search_titles(
        &self,
        terms: &[String],
        offset: u64,
        limit: u64,
    ) -> Result<Page<Title>, StoreError> {
        // Each term as a quoted FTS5 string with a prefix star: the terms hold only letters and
        // digits, so no FTS5 syntax can be injected.
        let query = terms
            .iter()
            .filter(|t| !t.is_empty() && t.chars().all(char::is_alphanumeric))
            .map(|t| format!("\"{t}\"*"))
            .collect::<Vec<_>>()
            .join(" ");
        if query.is_empty() {
            return Ok(Page {
                items: Vec::new(),
                total: 0,
            });
        }
        self.read(move |c| {
            let tx = c.transaction()?;
            let total = count(
                &tx,
                "SELECT COUNT(*) FROM titles_fts WHERE titles_fts MATCH ?1",
                [&query],
            )?;
            let sql = format!(
                "SELECT {TITLE_COLS} FROM titles_fts JOIN titles t ON t.pk = titles_fts.rowid
                 WHERE titles_fts MATCH ?1
                 ORDER BY bm25(titles_fts, 10.0, 1.0, 5.0), t.name COLLATE NOCASE, t.id
                 LIMIT ?2 OFFSET ?3"
            );
            let items = {
                let mut st = tx.prepare_cached(&sql)?;
                let rows =
                    st.query_map(params![query, to_i64(limit), to_i64(offset)], title_from)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            tx.commit()?;
            Ok(Page { items, total })
        })
        .await
    }

    async fn put_progress(
        &self,
        profile_id: i64,
        title_id: &str,
        position_seconds: u32,
        now: i64,
    ) -> Result<Progress, StoreError> {
        let title_id = title_id.to_string();
        self.write(move |c| {
            let r = c
                .prepare_cached(
                    "INSERT INTO progress (profile_id, title_id, position_seconds, updated_at, seq)
                 VALUES (?1, ?2, ?3, ?4,
                         COALESCE((SELECT MAX(seq) FROM progress WHERE profile_id = ?1), 0) + 1)
                 ON CONFLICT (profile_id, title_id) DO UPDATE SET
                     position_seconds = excluded.position_seconds,
                     updated_at = excluded.updated_at,
                     seq = excluded.seq",
                )?
                .execute(params![profile_id, title_id, position_seconds, now]);
            match r {
                Err(e) if is_fk_violation(&e) => Err(StoreError::NotFound("title")),
                r => {
                    r?;
                    Ok(Progress {
                        title_id,
                        position_seconds,
                        updated_at: now,
                    })
                }
            }
        })
        .await
    }

    async fn continue_watching(
        &self,
        profile_id: i64,
        offset: u64,
        limit: u64,
    ) -> Result<Page<ContinueItem>, StoreError> {
        self.read(move |c| {
            let tx = c.transaction()?;
            let total = count(
                &tx,
                "SELECT COUNT(*) FROM progress WHERE profile_id = ?1",
                [profile_id],
            )?;
            let items = {
                let mut st = tx.prepare_cached(
                    "SELECT p.title_id, t.name, t.duration_seconds, p.position_seconds, p.updated_at
                     FROM progress p JOIN titles t ON t.id = p.title_id
                     WHERE p.profile_id = ?1
                     ORDER BY p.seq DESC
                     LIMIT ?2 OFFSET ?3",
                )?;
                let rows =
                    st.query_map(params![profile_id, to_i64(limit), to_i64(offset)], |r| {
                        let d: i64 = r.get(2)?;
                        let p: i64 = r.get(3)?;
                        Ok(ContinueItem {
                            title_id: r.get(0)?,
                            name: r.get(1)?,
                            duration_seconds: u32::try_from(d).map_err(|_| corrupt("duration"))?,
                            position_seconds: u32::try_from(p).map_err(|_| corrupt("position"))?,
                            updated_at: r.get(4)?,
                        })
                    })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            tx.commit()?;
            Ok(Page { items, total })
        })
        .await
    }

    async fn add_to_watchlist(
        &self,
        profile_id: i64,
        title_id: &str,
        now: i64,
    ) -> Result<WatchlistAdd, StoreError> {
        let title_id = title_id.to_string();
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let r = tx
                .prepare_cached(
                    "INSERT INTO watchlist (profile_id, title_id, added_at, seq)
                 VALUES (?1, ?2, ?3,
                         COALESCE((SELECT MAX(seq) FROM watchlist WHERE profile_id = ?1), 0) + 1)
                 ON CONFLICT (profile_id, title_id) DO NOTHING",
                )?
                .execute(params![profile_id, title_id, now]);
            let created = match r {
                Err(e) if is_fk_violation(&e) => return Err(StoreError::NotFound("title")),
                r => r? == 1,
            };
            let added_at: i64 = tx
                .prepare_cached(
                    "SELECT added_at FROM watchlist WHERE profile_id = ?1 AND title_id = ?2",
                )?
                .query_row(params![profile_id, title_id], |r| r.get(0))?;
            tx.commit()?;
            Ok(WatchlistAdd { added_at, created })
        })
        .await
    }

    async fn remove_from_watchlist(
        &self,
        profile_id: i64,
        title_id: &str,
    ) -> Result<bool, StoreError> {
        let title_id = title_id.to_string();
        self.write(move |c| {
            Ok(
                c.prepare_cached("DELETE FROM watchlist WHERE profile_id = ?1 AND title_id = ?2")?
                    .execute(params![profile_id, title_id])?
                    > 0,
            )
        })
        .await
    }

    async fn watchlist(
        &self,
        profile_id: i64,
        offset: u64,
        limit: u64,
    ) -> Result<Page<WatchlistEntry>, StoreError> {
        self.read(move |c| {
            let tx = c.transaction()?;
            let total = count(
                &tx,
                "SELECT COUNT(*) FROM watchlist WHERE profile_id = ?1",
                [profile_id],
            )?;
            let sql = format!(
                "SELECT {TITLE_COLS}, w.added_at FROM watchlist w JOIN titles t ON t.id = w.title_id
                 WHERE w.profile_id = ?1
                 ORDER BY w.seq DESC
                 LIMIT ?2 OFFSET ?3"
            );
            let items = {
                let mut st = tx.prepare_cached(&sql)?;
                let rows =
                    st.query_map(params![profile_id, to_i64(limit), to_i64(offset)], |r| {
                        Ok(WatchlistEntry {
                            title: title_from(r)?,
                            added_at: r.get(12)?,
                        })
                    })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            tx.commit()?;
            Ok(Page { items, total })
        })
        .await
    }
}
