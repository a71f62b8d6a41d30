//! PostgreSQL implementation of [`Store`] (`[control] database = "postgres://…"`), for edges
//! that share one control plane.
//!
//! - A pool of connections (deadpool-postgres, [`POOL_SIZE`]); statements are prepared once
//!   per connection. No TLS: run it on a private network or through a local proxy.
//! - Connection loss is [`StoreError::Unavailable`] (503 to clients). A broken connection is
//!   dropped when it comes back to the pool and a new one is made on the next call, so the
//!   store recovers by itself when the server is back; waiting for a connection is bounded
//!   ([`CONNECT_TIMEOUT`], [`WAIT_TIMEOUT`]), so calls fail fast while it is down.
//! - Migrations (`src/control/migrations/postgres/NNNN_name.sql`, the same versions and names
//!   as SQLite's) are applied in order at open, each in its own transaction together with its
//!   `schema_version` row, under a transaction-level advisory lock: several edges starting at
//!   once apply each migration exactly once. A database whose version is newer than this
//!   build knows is refused.
//! - Search: a `tsvector` column (GIN index) written with each title from text folded in Rust
//!   ([`super::search`]), queried with prefix terms and ranked name > tags > description.
//! - Writes that read-then-write lock what they read (`FOR UPDATE`) or use `ON CONFLICT`, so
//!   they stay correct under READ COMMITTED with writers on other edges.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::search::{fold, prefix_query};
use super::sqlite::Migration;
use super::{Credentials, PutMode, PutOutcome, SessionLookup, Store, StoreError};
use crate::control::model::{
    ContinueItem, Maturity, NewProfile, Page, Profile, Progress, Rating, Registration, Rendition,
    Tier, Title, User, WatchlistAdd, WatchlistEntry,
};

/// Every migration, in order: the same versions and names as [`super::sqlite::MIGRATIONS`].
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_initial",
        sql: include_str!("../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "0002_title_search",
        sql: include_str!("../migrations/postgres/0002_title_search.sql"),
    },
    Migration {
        version: 3,
        name: "0003_watchlist",
        sql: include_str!("../migrations/postgres/0003_watchlist.sql"),
    },
];

/// Connections per edge.
pub const POOL_SIZE: usize = 16;
/// Connecting to the server (when the URL sets no `connect_timeout`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Waiting for a free or new connection of the pool.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Key of the advisory lock held while migrating ("edgemigr" in ASCII).
const MIGRATION_LOCK: i64 = 0x6564_6765_6d69_6772;

/// The PostgreSQL store. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("status", &self.pool.status())
            .finish()
    }
}

/// Whether a server error means the connection or the server is gone (SQLSTATE class 08,
/// shutdown and start-up states), rather than a problem with the statement.
fn is_unavailable_state(code: &SqlState) -> bool {
    code.code().starts_with("08")
        || *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
}

fn is_io(e: &tokio_postgres::Error) -> bool {
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

fn pg(e: tokio_postgres::Error) -> StoreError {
    match e.code() {
        Some(code) if is_unavailable_state(code) => StoreError::Unavailable(e.to_string()),
        Some(_) => StoreError::Backend(e.to_string()),
        // No SQLSTATE: the connection closed, failed (I/O) or timed out — or a local problem
        // (a type mismatch: a bug), which stays a 500.
        None if e.is_closed() || is_io(&e) || e.to_string().contains("timeout") => {
            StoreError::Unavailable(e.to_string())
        }
        None => StoreError::Backend(e.to_string()),
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        pg(e)
    }
}

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(e) => pg(e),
            PoolError::Timeout(t) => {
                StoreError::Unavailable(format!("no database connection ({t:?} timeout)"))
            }
            e => StoreError::Backend(format!("pool: {e}")),
        }
    }
}

fn is_state(e: &tokio_postgres::Error, state: &SqlState) -> bool {
    e.code() == Some(state)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("corrupt {what}"))
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("serialise: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|_| corrupt(what))
}

const USER_COLS: &str = "u.id, u.email, u.tier, u.created_at";
const PROFILE_COLS: &str = "id, user_id, display_name, language, maturity, created_at";
const TITLE_COLS: &str = "t.id, t.name, t.description, t.tags, t.rating, t.duration_seconds, \
     t.origin_path, t.acl_path, t.renditions, t.countries, t.available_from, t.available_until";

/// The `search` column of a title: name (A), tags (B), description (D), folded.
const SEARCH_EXPR: &str = "setweight(to_tsvector('simple'::regconfig, $14), 'A') \
     || setweight(to_tsvector('simple'::regconfig, $15), 'B') \
     || setweight(to_tsvector('simple'::regconfig, $16), 'D')";

/// `ts_rank` weights for {D, C, B, A}: name 10, tags 5, description 1, as SQLite's bm25.
const RANK_WEIGHTS: &str = "'{0.1, 0.1, 0.5, 1.0}'";

fn user_from(r: &Row, off: usize) -> Result<User, StoreError> {
    let tier: String = r.try_get(off + 2)?;
    Ok(User {
        id: r.try_get(off)?,
        email: r.try_get(off + 1)?,
        tier: Tier::parse(&tier).ok_or_else(|| corrupt("tier"))?,
        created_at: r.try_get(off + 3)?,
    })
}

fn profile_from(r: &Row) -> Result<Profile, StoreError> {
    let m: String = r.try_get(4)?;
    Ok(Profile {
        id: r.try_get(0)?,
        user_id: r.try_get(1)?,
        display_name: r.try_get(2)?,
        language: r.try_get(3)?,
        maturity: Maturity::parse(&m).ok_or_else(|| corrupt("maturity"))?,
        created_at: r.try_get(5)?,
    })
}

fn u32_col(r: &Row, i: usize, what: &str) -> Result<u32, StoreError> {
    let v: i64 = r.try_get(i)?;
    u32::try_from(v).map_err(|_| corrupt(what))
}

fn title_from(r: &Row) -> Result<Title, StoreError> {
    let rating: String = r.try_get(4)?;
    let renditions: Vec<Rendition> = from_json(r.try_get(8)?, "renditions")?;
    Ok(Title {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        description: r.try_get(2)?,
        tags: from_json(r.try_get(3)?, "tags")?,
        rating: Rating::parse(&rating).ok_or_else(|| corrupt("rating"))?,
        duration_seconds: u32_col(r, 5, "duration")?,
        origin_path: r.try_get(6)?,
        acl_path: r.try_get(7)?,
        renditions,
        countries: from_json(r.try_get(9)?, "countries")?,
        available_from: r.try_get(10)?,
        available_until: r.try_get(11)?,
    })
}

/// The text the search column is built from: (name, tags, description), folded.
fn search_texts(t: &Title) -> (String, String, String) {
    (fold(&t.name), fold(&t.tags.join(" ")), fold(&t.description))
}

/// Applies pending migrations; returns the resulting version.
/// Insert `p` as a profile of `user_id` in `tx`: the statement a registration and a new
/// profile both run.
async fn insert_profile(
    tx: &deadpool_postgres::Transaction<'_>,
    user_id: i64,
    p: &NewProfile,
    now: i64,
) -> Result<Profile, StoreError> {
    let st = tx
        .prepare_cached(
            "INSERT INTO profiles (user_id, display_name, language, maturity, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .await?;
    let maturity = p.maturity.as_str();
    let id: i64 = tx
        .query_one(
            &st,
            &[&user_id, &p.display_name, &p.language, &maturity, &now],
        )
        .await?
        .try_get(0)?;
    Ok(p.stored(id, user_id, now))
}

async fn migrate(pool: &Pool, now: i64) -> Result<u32, StoreError> {
    let latest = MIGRATIONS.last().map(|m| m.version).unwrap_or(0);
    let mut c = pool.get().await?;
    {
        // Two edges creating the table at once would collide in the catalog: lock first.
        let tx = c.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (
                version    BIGINT PRIMARY KEY,
                name       TEXT   NOT NULL,
                applied_at BIGINT NOT NULL
            )",
        )
        .await?;
        tx.commit().await?;
    }
    let mut current = 0;
    for m in MIGRATIONS {
        let tx = c.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        let v: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_version",
                &[],
            )
            .await?
            .try_get(0)?;
        if v > i64::from(latest) {
            return Err(StoreError::Backend(format!(
                "database schema version {v} is newer than this build supports ({latest})"
            )));
        }
        current = u32::try_from(v).unwrap_or(0);
        if i64::from(m.version) <= v {
            continue;
        }
        tx.batch_execute(m.sql)
            .await
            .map_err(|e| StoreError::Backend(format!("migration {}: {e}", m.name)))?;
        tx.execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)",
            &[&i64::from(m.version), &m.name, &now],
        )
        .await?;
        tx.commit().await?;
        current = m.version;
        tracing::info!(
            version = m.version,
            name = m.name,
            "control: applied migration"
        );
    }
    Ok(current)
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl PgStore {
    /// One page of a profile's rows (`page`: `$1` the profile, `$2` limit, `$3` offset) and
    /// their count (`count`: `$1` the profile), read on one snapshot.
    async fn profile_page(
        &self,
        count: &str,
        page: &str,
        profile_id: i64,
        offset: u64,
        limit: u64,
    ) -> Result<(i64, Vec<Row>), StoreError> {
        let mut c = self.pool.get().await?;
        let tx = snapshot(&mut c).await?;
        let st = tx.prepare_cached(count).await?;
        let total: i64 = tx.query_one(&st, &[&profile_id]).await?.try_get(0)?;
        let st = tx.prepare_cached(page).await?;
        let rows = tx
            .query(&st, &[&profile_id, &to_i64(limit), &to_i64(offset)])
            .await?;
        tx.commit().await?;
        Ok((total, rows))
    }

    /// Connects to `url` (a `postgres://` URL or libpq key=value string), migrates the
    /// database and indexes titles that have no search column yet.
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        let mut cfg = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Backend(format!("invalid PostgreSQL URL: {e}")))?;
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(CONNECT_TIMEOUT);
        }
        if cfg.get_application_name().is_none() {
            cfg.application_name("edge");
        }
        let manager = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(WAIT_TIMEOUT))
            .create_timeout(Some(WAIT_TIMEOUT))
            .recycle_timeout(Some(WAIT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Backend(format!("pool: {e}")))?;
        migrate(&pool, now_unix()).await?;
        let store = PgStore { pool };
        store.index_unsearchable().await?;
        Ok(store)
    }

    /// The applied schema version.
    pub async fn schema_version(&self) -> Result<u32, StoreError> {
        let c = self.pool.get().await?;
        let v: i64 = c
            .query_one(
                "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_version",
                &[],
            )
            .await?
            .try_get(0)?;
        Ok(u32::try_from(v).unwrap_or(0))
    }

    /// Fills the search column of titles written before migration 0002.
    async fn index_unsearchable(&self) -> Result<(), StoreError> {
        let c = self.pool.get().await?;
        let sql = format!("SELECT {TITLE_COLS} FROM titles t WHERE t.search IS NULL");
        for row in c.query(&sql, &[]).await? {
            let t = title_from(&row)?;
            let (name, tags, description) = search_texts(&t);
            c.execute(
                "UPDATE titles SET search = \
                     setweight(to_tsvector('simple'::regconfig, $2), 'A') \
                  || setweight(to_tsvector('simple'::regconfig, $3), 'B') \
                  || setweight(to_tsvector('simple'::regconfig, $4), 'D') \
                 WHERE id = $1",
                &[&t.id, &name, &tags, &description],
            )
            .await?;
        }
        Ok(())
    }
}

/// A read-only transaction on one snapshot (repeatable read): a count and the page it
/// counts read the same rows.
async fn snapshot(
    c: &mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'_>, tokio_postgres::Error> {
    c.build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
}

#[async_trait]
impl Store for PgStore {
    async fn create_user(
        &self,
        reg: &Registration,
        password_hash: String,
        now: i64,
    ) -> Result<(User, Profile), StoreError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let st = tx
            .prepare_cached(
                "INSERT INTO users (email, password_hash, tier, created_at)
                 VALUES ($1, $2, 'basic', $3) RETURNING id",
            )
            .await?;
        let user_id: i64 = match tx.query_one(&st, &[&reg.email, &password_hash, &now]).await {
            Err(e) if is_state(&e, &SqlState::UNIQUE_VIOLATION) => {
                return Err(StoreError::Conflict("email"))
            }
            r => r?.try_get(0)?,
        };
        let p = &reg.first_profile;
        let profile = insert_profile(&tx, user_id, p, now).await?;
        tx.commit().await?;
        Ok((User::registered(user_id, &reg.email, now), profile))
    }

    async fn credentials(&self, email: &str) -> Result<Option<Credentials>, StoreError> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached(&format!(
                "SELECT {USER_COLS}, u.password_hash FROM users u WHERE u.email = $1"
            ))
            .await?;
        match c.query_opt(&st, &[&email]).await? {
            Some(r) => Ok(Some(Credentials {
                user: user_from(&r, 0)?,
                password_hash: r.try_get(4)?,
            })),
            None => Ok(None),
        }
    }

    async fn user(&self, id: i64) -> Result<Option<User>, StoreError> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached(&format!("SELECT {USER_COLS} FROM users u WHERE u.id = $1"))
            .await?;
        c.query_opt(&st, &[&id])
            .await?
            .map(|r| user_from(&r, 0))
            .transpose()
    }

    async fn set_tier(&self, user_id: i64, tier: Tier) -> Result<Option<User>, StoreError> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached(
                "UPDATE users u SET tier = $2 WHERE u.id = $1
                 RETURNING u.id, u.email, u.tier, u.created_at",
            )
            .await?;
        c.query_opt(&st, &[&user_id, &tier.as_str()])
            .await?
            .map(|r| user_from(&r, 0))
            .transpose()
    }

    async fn create_session(
        &self,
        token_hash: [u8; 32],
        user_id: i64,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached(
                "INSERT INTO sessions (token_hash, user_id, created_at, expires_at)
                 VALUES ($1, $2, $3, $4)",
            )
            .await?;
        match c
            .execute(&st, &[&&token_hash[..], &user_id, &now, &expires_at])
            .await
        {
            Err(e) if is_state(&e, &SqlState::FOREIGN_KEY_VIOLATION) => {
                Err(StoreError::NotFound("user"))
            }
            Err(e) if is_state(&e, &SqlState::UNIQUE_VIOLATION) => {
                Err(StoreError::Conflict("session"))
            }
            r => r.map(|_| ()).map_err(pg),
        }
    }

    async fn session(&self, token_hash: [u8; 32], now: i64) -> Result<SessionLookup, StoreError> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached(&format!(
                "SELECT s.expires_at, {USER_COLS} FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = $1"
            ))
            .await?;
        Ok(match c.query_opt(&st, &[&&token_hash[..]]).await? {
            None => SessionLookup::Unknown,
            Some(r) => {
                let exp: i64 = r.try_get(0)?;
                if exp <= now {
                    SessionLookup::Expired
                } else {
                    SessionLookup::Valid(user_from(&r, 1)?)
                }
            }
        })
    }

    async fn delete_session(&self, token_hash: [u8; 32]) -> Result<bool, StoreError> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached("DELETE FROM sessions WHERE token_hash = $1")
            .await?;
        Ok(c.execute(&st, &[&&token_hash[..]]).await? > 0)
    }

    async fn purge_sessions(&self, now: i64) -> Result<u64, StoreError> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached("DELETE FROM sessions WHERE expires_at <= $1")
            .await?;
        Ok(c.execute(&st, &[&now]).await?)
    }

    async fn create_profile(
        &self,
        user_id: i64,
        p: &NewProfile,
        max: u32,
        now: i64,
    ) -> Result<Profile, StoreError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        // Locking the account serialises profile creation per account (the count below stays
        // true until commit, whichever edge writes).
        let st = tx
            .prepare_cached("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
            .await?;
        if tx.query_opt(&st, &[&user_id]).await?.is_none() {
            return Err(StoreError::NotFound("user"));
        }
        let st = tx
            .prepare_cached("SELECT COUNT(*) FROM profiles WHERE user_id = $1")
            .await?;
        let n: i64 = tx.query_one(&st, &[&user_id]).await?.try_get(0)?;
        if to_u64(n) >= u64::from(max) {
            return Err(StoreError::LimitReached("profiles"));
        }
        let profile = insert_profile(&tx, user_id, p, now).await?;
        tx.commit().await?;
        Ok(profile)
    }

    async fn profiles(&self, user_id: i64) -> Result<Vec<Profile>, StoreError> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached(&format!(
                "SELECT {PROFILE_COLS} FROM profiles WHERE user_id = $1 ORDER BY id"
            ))
            .await?;
        c.query(&st, &[&user_id])
            .await?
            .iter()
            .map(profile_from)
            .collect()
    }

    async fn profile(&self, user_id: i64, id: Option<i64>) -> Result<Option<Profile>, StoreError> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached(&format!(
                "SELECT {PROFILE_COLS} FROM profiles
                 WHERE user_id = $1 AND ($2::BIGINT IS NULL OR id = $2)
                 ORDER BY id LIMIT 1"
            ))
            .await?;
        c.query_opt(&st, &[&user_id, &id])
            .await?
            .as_ref()
            .map(profile_from)
            .transpose()
    }

    async fn put_title(
        &self,
        t: &Title,
        mode: PutMode,
        now: i64,
    ) -> Result<PutOutcome, StoreError> {
        let tags = to_json(&t.tags)?;
        let renditions = to_json(&t.renditions)?;
        let countries = to_json(&t.countries)?;
        let (s_name, s_tags, s_desc) = search_texts(t);
        let duration = i64::from(t.duration_seconds);
        let params: [&(dyn ToSql + Sync); 16] = [
            &t.id,
            &t.name,
            &t.description,
            &tags,
            &t.rating.as_str(),
            &duration,
            &t.origin_path,
            &t.acl_path,
            &renditions,
            &countries,
            &t.available_from,
            &t.available_until,
            &now,
            &s_name,
            &s_tags,
            &s_desc,
        ];
        let c = self.pool.get().await?;
        let insert = c
            .prepare_cached(&format!(
                "INSERT INTO titles (id, name, description, tags, rating, duration_seconds,
                    origin_path, acl_path, renditions, countries, available_from,
                    available_until, created_at, updated_at, search)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13,
                    {SEARCH_EXPR})
                 ON CONFLICT (id) DO NOTHING"
            ))
            .await?;
        let update = c
            .prepare_cached(&format!(
                "UPDATE titles SET name = $2, description = $3, tags = $4, rating = $5,
                    duration_seconds = $6, origin_path = $7, acl_path = $8, renditions = $9,
                    countries = $10, available_from = $11, available_until = $12,
                    updated_at = $13, search = {SEARCH_EXPR}
                 WHERE id = $1"
            ))
            .await?;
        match mode {
            PutMode::Create | PutMode::IfAbsent => {
                if c.execute(&insert, &params).await? == 1 {
                    Ok(PutOutcome::Created)
                } else if mode == PutMode::Create {
                    Err(StoreError::Conflict("title"))
                } else {
                    Ok(PutOutcome::Kept)
                }
            }
            // Update first; insert when absent; a concurrent insert in between makes the
            // insert a no-op and the second update replaces it.
            PutMode::Upsert => {
                if c.execute(&update, &params).await? == 1 {
                    return Ok(PutOutcome::Replaced);
                }
                if c.execute(&insert, &params).await? == 1 {
                    return Ok(PutOutcome::Created);
                }
                c.execute(&update, &params).await?;
                Ok(PutOutcome::Replaced)
            }
        }
    }

    async fn delete_title(&self, id: &str) -> Result<bool, StoreError> {
        let c = self.pool.get().await?;
        let st = c.prepare_cached("DELETE FROM titles WHERE id = $1").await?;
        Ok(c.execute(&st, &[&id]).await? > 0)
    }

    async fn title(&self, id: &str) -> Result<Option<Title>, StoreError> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached(&format!(
                "SELECT {TITLE_COLS} FROM titles t WHERE t.id = $1"
            ))
            .await?;
        c.query_opt(&st, &[&id])
            .await?
            .as_ref()
            .map(title_from)
            .transpose()
    }

    async fn list_titles(&self, offset: u64, limit: u64) -> Result<Page<Title>, StoreError> {
        let mut c = self.pool.get().await?;
        let tx = snapshot(&mut c).await?;
        let st = tx.prepare_cached("SELECT COUNT(*) FROM titles").await?;
        let total: i64 = tx.query_one(&st, &[]).await?.try_get(0)?;
        let st = tx
            .prepare_cached(&format!(
                "SELECT {TITLE_COLS} FROM titles t ORDER BY lower(t.name), t.id
                 LIMIT $1 OFFSET $2"
            ))
            .await?;
        let rows = tx.query(&st, &[&to_i64(limit), &to_i64(offset)]).await?;
        tx.commit().await?;
        Ok(Page {
            items: rows.iter().map(title_from).collect::<Result<_, _>>()?,
            total: to_u64(total),
        })
    }

    async fn search_titles(
        &self,
        terms: &[String],
        offset: u64,
        limit: u64,
    ) -> Result<Page<Title>, StoreError> {
        let Some(query) = prefix_query(terms) else {
            return Ok(Page {
                items: Vec::new(),
                total: 0,
            });
        };
        let mut c = self.pool.get().await?;
        let tx = snapshot(&mut c).await?;
        let st = tx
            .prepare_cached(
                "SELECT COUNT(*) FROM titles WHERE search @@ to_tsquery('simple'::regconfig, $1)",
            )
            .await?;
        let total: i64 = tx.query_one(&st, &[&query]).await?.try_get(0)?;
        let st = tx
            .prepare_cached(&format!(
                "SELECT {TITLE_COLS} FROM titles t, to_tsquery('simple'::regconfig, $1) q
                 WHERE t.search @@ q
                 ORDER BY ts_rank({RANK_WEIGHTS}, t.search, q) DESC, lower(t.name), t.id
                 LIMIT $2 OFFSET $3"
            ))
            .await?;
        let rows = tx
            .query(&st, &[&query, &to_i64(limit), &to_i64(offset)])
            .await?;
        tx.commit().await?;
        Ok(Page {
            items: rows.iter().map(title_from).collect::<Result<_, _>>()?,
            total: to_u64(total),
        })
    }

    async fn put_progress(
        &self,
        profile_id: i64,
        title_id: &str,
        position_seconds: u32,
        now: i64,
    ) -> Result<Progress, StoreError> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached(
                "INSERT INTO progress (profile_id, title_id, position_seconds, updated_at, seq)
                 VALUES ($1, $2, $3, $4, nextval('progress_seq'))
                 ON CONFLICT (profile_id, title_id) DO UPDATE SET
                     position_seconds = excluded.position_seconds,
                     updated_at = excluded.updated_at,
                     seq = excluded.seq",
            )
            .await?;
        let position = i64::from(position_seconds);
        match c
            .execute(&st, &[&profile_id, &title_id, &position, &now])
            .await
        {
            Err(e) if is_state(&e, &SqlState::FOREIGN_KEY_VIOLATION) => {
                Err(StoreError::NotFound("title"))
            }
            r => {
                r?;
                Ok(Progress {
                    title_id: title_id.to_string(),
                    position_seconds,
                    updated_at: now,
                })
            }
        }
    }

    async fn continue_watching(
        &self,
        profile_id: i64,
        offset: u64,
        limit: u64,
    ) -> Result<Page<ContinueItem>, StoreError> {
        let (total, rows) = self
            .profile_page(
                "SELECT COUNT(*) FROM progress WHERE profile_id = $1",
                "SELECT p.title_id, t.name, t.duration_seconds, p.position_seconds, p.updated_at
                 FROM progress p JOIN titles t ON t.id = p.title_id
                 WHERE p.profile_id = $1
                 ORDER BY p.seq DESC
                 LIMIT $2 OFFSET $3",
                profile_id,
                offset,
                limit,
            )
            .await?;
        let items = rows
            .iter()
            .map(|r| {
                Ok(ContinueItem {
                    title_id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    duration_seconds: u32_col(r, 2, "duration")?,
                    position_seconds: u32_col(r, 3, "position")?,
                    updated_at: r.try_get(4)?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Page {
            items,
            total: to_u64(total),
        })
    }

    async fn add_to_watchlist(
        &self,
        profile_id: i64,
        title_id: &str,
        now: i64,
    ) -> Result<WatchlistAdd, StoreError> {
        let c = self.pool.get().await?;
        let insert = c
            .prepare_cached(
                "INSERT INTO watchlist (profile_id, title_id, added_at, seq)
                 VALUES ($1, $2, $3, nextval('watchlist_seq'))
                 ON CONFLICT (profile_id, title_id) DO NOTHING
                 RETURNING added_at",
            )
            .await?;
        let listed = c
            .prepare_cached(
                "SELECT added_at FROM watchlist WHERE profile_id = $1 AND title_id = $2",
            )
            .await?;
        // Insert, or read the entry that is there. An entry removed by another writer between
        // the two statements makes the insert succeed on the next round.
        for _ in 0..3 {
            match c.query_opt(&insert, &[&profile_id, &title_id, &now]).await {
                Err(e) if is_state(&e, &SqlState::FOREIGN_KEY_VIOLATION) => {
                    return Err(StoreError::NotFound("title"))
                }
                Ok(Some(r)) => {
                    return Ok(WatchlistAdd {
                        added_at: r.try_get(0)?,
                        created: true,
                    })
                }
                r => {
                    r?;
                }
            }
            if let Some(r) = c.query_opt(&listed, &[&profile_id, &title_id]).await? {
                return Ok(WatchlistAdd {
                    added_at: r.try_get(0)?,
                    created: false,
                });
            }
        }
        Err(StoreError::Backend(
            "watchlist entry added and removed concurrently three times".into(),
        ))
    }

    async fn remove_from_watchlist(
        &self,
        profile_id: i64,
        title_id: &str,
    ) -> Result<bool, StoreError> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached("DELETE FROM watchlist WHERE profile_id = $1 AND title_id = $2")
            .await?;
        Ok(c.execute(&st, &[&profile_id, &title_id]).await? > 0)
    }

    async fn watchlist(
        &self,
        profile_id: i64,
        offset: u64,
        limit: u64,
    ) -> Result<Page<WatchlistEntry>, StoreError> {
        let (total, rows) = self
            .profile_page(
                "SELECT COUNT(*) FROM watchlist WHERE profile_id = $1",
                &format!(
                    "SELECT {TITLE_COLS}, w.added_at FROM watchlist w JOIN titles t ON t.id = w.title_id
                     WHERE w.profile_id = $1
                     ORDER BY w.seq DESC
                     LIMIT $2 OFFSET $3"
                ),
                profile_id,
                offset,
                limit,
            )
            .await?;
        let items = rows
            .iter()
            .map(|r| {
                Ok(WatchlistEntry {
                    title: title_from(r)?,
                    added_at: r.try_get(12)?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Page {
            items,
            total: to_u64(total),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_match_sqlite_versions_and_names() {
        let pg: Vec<(u32, &str)> = MIGRATIONS.iter().map(|m| (m.version, m.name)).collect();
        let lite: Vec<(u32, &str)> = super::super::sqlite::MIGRATIONS
            .iter()
            .map(|m| (m.version, m.name))
            .collect();
        assert_eq!(pg, lite, "both dialects have the same versioned steps");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/control/migrations/postgres");
        for m in MIGRATIONS {
            let on_disk =
                std::fs::read_to_string(dir.join(format!("{}.sql", m.name))).expect("read");
            assert_eq!(on_disk, m.sql);
        }
    }

    #[test]
    fn connection_states_are_unavailable_and_statement_errors_are_not() {
        assert!(is_unavailable_state(&SqlState::CONNECTION_FAILURE));
        assert!(is_unavailable_state(&SqlState::ADMIN_SHUTDOWN));
        assert!(is_unavailable_state(&SqlState::CANNOT_CONNECT_NOW));
        assert!(!is_unavailable_state(&SqlState::UNIQUE_VIOLATION));
        assert!(!is_unavailable_state(&SqlState::UNDEFINED_TABLE));
    }
}
